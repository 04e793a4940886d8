// portd/status.h — the one vocabulary of outcomes shared by the daemon's core,
// the wire protocol and libportd.
//
// Every operation answers with a Status. The values are Mach's: kern_return_t
// codes for port management, mach_msg_return_t codes for send and receive, and
// launchd's bootstrap codes for the name registry. The three ranges do not
// overlap, so one enum holds them all and the Mach-compatible C API can hand a
// Status to a Mach program without translation. The two cache-on-full codes
// are portd extensions (GNU Mach has them, XNU does not; see MACH-ABI.md) and
// use values XNU leaves unused.
//
// Standard library only: this header is included by the pure core.
#pragma once

#include <cstdint>
#include <string_view>

namespace portd {

enum class Status : int32_t {
  // kern_return_t
  kSuccess = 0,
  kInvalidAddress = 1,
  kProtectionFailure = 2,
  kNoSpace = 3,
  kInvalidArgument = 4,
  kFailure = 5,
  kResourceShortage = 6,
  kNotReceiver = 7,
  kNoAccess = 8,
  kAlreadyInSet = 11,
  kNotInSet = 12,
  kNameExists = 13,
  kAborted = 14,
  kInvalidName = 15,
  kInvalidTask = 16,
  kInvalidRight = 17,
  kInvalidValue = 18,
  kUrefsOverflow = 19,
  kInvalidCapability = 20,
  kRightExists = 21,
  kNotSupported = 46,
  kOperationTimedOut = 49,
  kDenied = 53,
  kNotFound = 56,

  // mach_msg_return_t, send side
  kSendInProgress = 0x10000001,
  kSendInvalidData = 0x10000002,
  kSendInvalidDest = 0x10000003,
  kSendTimedOut = 0x10000004,
  kSendInterrupted = 0x10000007,
  kSendMsgTooSmall = 0x10000008,
  kSendInvalidReply = 0x10000009,
  kSendInvalidRight = 0x1000000a,
  kSendInvalidNotify = 0x1000000b,
  kSendInvalidMemory = 0x1000000c,
  kSendNoBuffer = 0x1000000d,
  kSendTooLarge = 0x1000000e,
  kSendInvalidType = 0x1000000f,
  kSendInvalidHeader = 0x10000010,
  kSendInvalidTrailer = 0x10000011,
  kSendInvalidOptions = 0x10000013,
  // portd extensions (GNU Mach's MACH_SEND_WILL_NOTIFY and
  // MACH_SEND_NOTIFY_IN_PROGRESS, at values XNU does not use).
  kSendWillNotify = 0x10000040,
  kSendNotifyInProgress = 0x10000041,

  // mach_msg_return_t, receive side
  kRcvInProgress = 0x10004001,
  kRcvInvalidName = 0x10004002,
  kRcvTimedOut = 0x10004003,
  kRcvTooLarge = 0x10004004,
  kRcvInterrupted = 0x10004005,
  kRcvPortChanged = 0x10004006,
  kRcvInvalidNotify = 0x10004007,
  kRcvInvalidData = 0x10004008,
  kRcvPortDied = 0x10004009,
  kRcvInSet = 0x1000400a,
  kRcvHeaderError = 0x1000400b,
  kRcvBodyError = 0x1000400c,

  // bootstrap (launchd)
  kBootstrapNotPrivileged = 1100,
  kBootstrapNameInUse = 1101,
  kBootstrapUnknownService = 1102,
  kBootstrapServiceActive = 1103,
  kBootstrapBadCount = 1104,
  kBootstrapNoMemory = 1105,
};

// The Mach spelling of a status, e.g. "KERN_INVALID_NAME" or
// "MACH_SEND_TIMED_OUT". Unknown values give "UNKNOWN_STATUS".
std::string_view status_name(Status s) noexcept;

// A short human description, as mach_error_string gives.
std::string_view status_description(Status s) noexcept;

constexpr bool ok(Status s) noexcept { return s == Status::kSuccess; }

}  // namespace portd
