// The core's vocabulary: names, ids, rights and dispositions.
//
// These follow Mach's user ABI (MACH-ABI.md) so that values pass through the
// wire protocol and the Mach-compatible C API unchanged. Standard library
// only, like everything in daemon/ipc.
#pragma once

#include <cstdint>

#include "portd/status.h"

namespace portd::ipc {

using portd::Status;

// A task is one client connection; its id is never reused.
using TaskId = uint64_t;
// A port's daemon-wide id; never reused.
using PortId = uint64_t;
// A name in one task's name space (mach_port_name_t).
using Name = uint32_t;
// Identifies one parked operation (a blocked send, receive or look-up). The
// shell chooses tokens; they must be unique among operations in progress.
using WaitToken = uint64_t;
// Identifies an out-of-line attachment (an fd the shell holds). The core
// never sees the fd itself: it counts, charges and hands back attachment ids.
using AttachmentId = uint64_t;

inline constexpr Name kNameNull = 0;            // MACH_PORT_NULL
inline constexpr Name kNameDead = 0xffffffffu;  // MACH_PORT_DEAD

// Names are (index << 8) | generation, as in XNU.
inline constexpr uint32_t kNameGenBits = 8;
inline constexpr uint32_t kNameGenMask = (1u << kNameGenBits) - 1;
constexpr uint32_t name_index(Name n) { return n >> kNameGenBits; }
constexpr uint32_t name_gen(Name n) { return n & kNameGenMask; }
constexpr Name make_name(uint32_t index, uint32_t gen) {
  return (index << kNameGenBits) | (gen & kNameGenMask);
}

// MACH_PORT_RIGHT_*: what mod_refs, get_refs and allocate talk about.
enum class Right : uint32_t {
  kSend = 0,
  kReceive = 1,
  kSendOnce = 2,
  kPortSet = 3,
  kDeadName = 4,
};

// MACH_PORT_TYPE_* bits, as type() and names() report them.
inline constexpr uint32_t kTypeSend = 1u << 16;
inline constexpr uint32_t kTypeReceive = 1u << 17;
inline constexpr uint32_t kTypeSendOnce = 1u << 18;
inline constexpr uint32_t kTypePortSet = 1u << 19;
inline constexpr uint32_t kTypeDeadName = 1u << 20;
inline constexpr uint32_t kTypeDnRequest = 0x80000000u;

// MACH_MSG_TYPE_*: how a message (or insert/extract) takes a right from the
// sender's space.
enum class Disposition : uint8_t {
  kNone = 0,
  kMoveReceive = 16,
  kMoveSend = 17,
  kMoveSendOnce = 18,
  kCopySend = 19,
  kMakeSend = 20,
  kMakeSendOnce = 21,
};

// MACH_MSG_TYPE_PORT_*: the kind of a right once it is in a message.
enum class RightType : uint8_t {
  kNone = 0,
  kReceive = 16,
  kSend = 17,
  kSendOnce = 18,
};

constexpr bool valid_disposition(uint8_t d) { return d >= 16 && d <= 21; }

// The right a disposition produces.
constexpr RightType right_type_of(Disposition d) {
  switch (d) {
    case Disposition::kMoveReceive: return RightType::kReceive;
    case Disposition::kMoveSend:
    case Disposition::kCopySend:
    case Disposition::kMakeSend: return RightType::kSend;
    case Disposition::kMoveSendOnce:
    case Disposition::kMakeSendOnce: return RightType::kSendOnce;
    default: return RightType::kNone;
  }
}

// Notification message ids (MACH_NOTIFY_*). Message-accepted is GNU Mach's.
enum class Notify : int32_t {
  kPortDeleted = 65,
  kMsgAccepted = 66,
  kPortDestroyed = 69,
  kNoSenders = 70,
  kSendOnce = 71,
  kDeadName = 72,
};

inline constexpr uint32_t kQueueLimitDefault = 5;  // MACH_PORT_QLIMIT_DEFAULT
inline constexpr uint32_t kQueueLimitMax = 1024;   // MACH_PORT_QLIMIT_MAX
inline constexpr uint32_t kUrefsMax = 0xffff;      // MACH_PORT_UREFS_MAX

// A task's credentials, read with SO_PEERCRED when it connects.
struct Credentials {
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

}  // namespace portd::ipc
