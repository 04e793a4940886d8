// mach_error_string and friends. The text of every code portd itself
// returns comes from portd::status_description (portd/status.h); the other
// codes of <mach/kern_return.h> and <mach/message.h> have theirs here.
#include <mach/mach_error.h>
#include <mach/message.h>
#include <mach/ndr.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "portd/status.h"
#include "portd/task.h"

namespace portd::mach {
namespace {

struct Text {
  mach_error_t code;
  const char* text;
};

// Codes of XNU's headers that the daemon never answers.
constexpr Text kOtherTexts[] = {
    {KERN_MEMORY_FAILURE, "(os/kern) memory failure"},
    {KERN_MEMORY_ERROR, "(os/kern) memory error"},
    {KERN_INVALID_HOST, "(os/kern) invalid host"},
    {KERN_MEMORY_PRESENT, "(os/kern) memory present"},
    {KERN_MEMORY_DATA_MOVED, "(os/kern) memory data moved"},
    {KERN_MEMORY_RESTART_COPY, "(os/kern) memory restart copy"},
    {KERN_INVALID_PROCESSOR_SET, "(os/kern) invalid processor set"},
    {KERN_POLICY_LIMIT, "(os/kern) policy limit"},
    {KERN_INVALID_POLICY, "(os/kern) invalid policy"},
    {KERN_INVALID_OBJECT, "(os/kern) invalid object"},
    {KERN_ALREADY_WAITING, "(os/kern) already waiting"},
    {KERN_DEFAULT_SET, "(os/kern) default set"},
    {KERN_EXCEPTION_PROTECTED, "(os/kern) exception protected"},
    {KERN_INVALID_LEDGER, "(os/kern) invalid ledger"},
    {KERN_INVALID_MEMORY_CONTROL, "(os/kern) invalid memory control"},
    {KERN_INVALID_SECURITY, "(os/kern) invalid security"},
    {KERN_NOT_DEPRESSED, "(os/kern) not depressed"},
    {KERN_TERMINATED, "(os/kern) terminated"},
    {KERN_LOCK_SET_DESTROYED, "(os/kern) lock set destroyed"},
    {KERN_LOCK_UNSTABLE, "(os/kern) lock unstable"},
    {KERN_LOCK_OWNED, "(os/kern) lock owned"},
    {KERN_LOCK_OWNED_SELF, "(os/kern) lock owned self"},
    {KERN_SEMAPHORE_DESTROYED, "(os/kern) semaphore destroyed"},
    {KERN_RPC_SERVER_TERMINATED, "(os/kern) rpc server terminated"},
    {KERN_RPC_TERMINATE_ORPHAN, "(os/kern) rpc terminate orphan"},
    {KERN_RPC_CONTINUE_ORPHAN, "(os/kern) rpc continue orphan"},
    {KERN_NODE_DOWN, "(os/kern) node down"},
    {KERN_NOT_WAITING, "(os/kern) not waiting"},
    {KERN_CODESIGN_ERROR, "(os/kern) code signature error"},
    {KERN_POLICY_STATIC, "(os/kern) policy is static"},
    {KERN_INSUFFICIENT_BUFFER_SIZE, "(os/kern) insufficient input buffer size"},
    {MACH_SEND_INVALID_VOUCHER, "(ipc/send) invalid voucher"},
    {MACH_SEND_INVALID_CONTEXT, "(ipc/send) invalid context for reply"},
    {MACH_SEND_NO_GRANT_DEST, "(ipc/send) destination does not accept port rights"},
    {MACH_SEND_MSG_FILTERED, "(ipc/send) message filtered"},
    {MACH_RCV_INVALID_TYPE, "(ipc/rcv) invalid msg-type"},
    {MACH_RCV_SCATTER_SMALL, "(ipc/rcv) scatter list too small"},
    {MACH_RCV_INVALID_TRAILER, "(ipc/rcv) invalid trailer"},
    {MACH_RCV_INVALID_REPLY, "(ipc/rcv) invalid reply port"},
    {MACH_RCV_INVALID_ARGUMENTS, "(ipc/rcv) invalid receive arguments"},
    {1106 /* BOOTSTRAP_NO_CHILDREN */, "Subset not found"},
};

// The text of `code`, or nullptr if we have none.
const char* text_of(mach_error_t code) {
  const std::string_view d = status_description(static_cast<Status>(code));
  if (status_name(static_cast<Status>(code)) != "UNKNOWN_STATUS") return d.data();
  for (const Text& t : kOtherTexts)
    if (t.code == code) return t.text;
  return nullptr;
}

}  // namespace
}  // namespace portd::mach

#pragma GCC visibility push(default)
extern "C" {

NDR_record_t NDR_record = {0, 0, 0, 0, NDR_INT_LITTLE_ENDIAN, NDR_CHAR_ASCII, NDR_FLOAT_IEEE, 0};

char* mach_error_string(mach_error_t error_value) {
  const char* text = portd::mach::text_of(error_value);
  // A receive that failed to copy part of a message out carries extra bits
  // (MACH_MSG_IPC_SPACE and friends): describe the code without them.
  if (text == nullptr && err_get_system(error_value) == 4) {
    text = portd::mach::text_of(error_value & ~MACH_MSG_MASK);
  }
  return const_cast<char*>(text != nullptr ? text : "(portd) unknown error code");
}

char* mach_error_type(mach_error_t error_value) {
  const int system = err_get_system(error_value);
  const int sub = err_get_sub(error_value);
  if (system == 0 && sub == 0) return const_cast<char*>("(os/kern)");
  if (system == 4 && sub == 0) return const_cast<char*>("(ipc/send)");
  if (system == 4 && sub == 1) return const_cast<char*>("(ipc/rcv)");
  if (system == 4 && sub == 2) return const_cast<char*>("(ipc/mig)");
  return const_cast<char*>("(unknown/unknown)");
}

const char* portd_last_refused_limit(void) {
  thread_local std::string text;
  text = portd::last_refused_limit();
  return text.c_str();
}

void mach_error(const char* str, mach_error_t error_value) {
  std::fprintf(stderr, "%s %s (0x%x)\n", str != nullptr ? str : "", mach_error_string(error_value),
               static_cast<unsigned>(error_value));
}

}  // extern "C"
#pragma GCC visibility pop
