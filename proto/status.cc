#include "portd/status.h"

namespace portd {

namespace {

struct StatusText {
  Status status;
  std::string_view name;
  std::string_view description;
};

constexpr StatusText kStatusTexts[] = {
    {Status::kSuccess, "KERN_SUCCESS", "(os/kern) successful"},
    {Status::kInvalidAddress, "KERN_INVALID_ADDRESS", "(os/kern) invalid address"},
    {Status::kProtectionFailure, "KERN_PROTECTION_FAILURE", "(os/kern) protection failure"},
    {Status::kNoSpace, "KERN_NO_SPACE", "(os/kern) no space available"},
    {Status::kInvalidArgument, "KERN_INVALID_ARGUMENT", "(os/kern) invalid argument"},
    {Status::kFailure, "KERN_FAILURE", "(os/kern) failure"},
    {Status::kResourceShortage, "KERN_RESOURCE_SHORTAGE", "(os/kern) resource shortage"},
    {Status::kNotReceiver, "KERN_NOT_RECEIVER", "(os/kern) not receiver"},
    {Status::kNoAccess, "KERN_NO_ACCESS", "(os/kern) no access"},
    {Status::kAlreadyInSet, "KERN_ALREADY_IN_SET", "(os/kern) already in set"},
    {Status::kNotInSet, "KERN_NOT_IN_SET", "(os/kern) not in set"},
    {Status::kNameExists, "KERN_NAME_EXISTS", "(os/kern) name exists"},
    {Status::kAborted, "KERN_ABORTED", "(os/kern) aborted"},
    {Status::kInvalidName, "KERN_INVALID_NAME", "(os/kern) invalid name"},
    {Status::kInvalidTask, "KERN_INVALID_TASK", "(os/kern) invalid task"},
    {Status::kInvalidRight, "KERN_INVALID_RIGHT", "(os/kern) invalid right"},
    {Status::kInvalidValue, "KERN_INVALID_VALUE", "(os/kern) invalid value"},
    {Status::kUrefsOverflow, "KERN_UREFS_OVERFLOW", "(os/kern) urefs overflow"},
    {Status::kInvalidCapability, "KERN_INVALID_CAPABILITY", "(os/kern) invalid capability"},
    {Status::kRightExists, "KERN_RIGHT_EXISTS", "(os/kern) right exists"},
    {Status::kNotSupported, "KERN_NOT_SUPPORTED", "(os/kern) not supported"},
    {Status::kOperationTimedOut, "KERN_OPERATION_TIMED_OUT", "(os/kern) operation timed out"},
    {Status::kDenied, "KERN_DENIED", "(os/kern) denied"},
    {Status::kNotFound, "KERN_NOT_FOUND", "(os/kern) not found"},
    {Status::kSendInProgress, "MACH_SEND_IN_PROGRESS", "(ipc/send) in progress"},
    {Status::kSendInvalidData, "MACH_SEND_INVALID_DATA", "(ipc/send) invalid data"},
    {Status::kSendInvalidDest, "MACH_SEND_INVALID_DEST", "(ipc/send) invalid destination port"},
    {Status::kSendTimedOut, "MACH_SEND_TIMED_OUT", "(ipc/send) timed out"},
    {Status::kSendInterrupted, "MACH_SEND_INTERRUPTED", "(ipc/send) interrupted"},
    {Status::kSendMsgTooSmall, "MACH_SEND_MSG_TOO_SMALL",
     "(ipc/send) message size changed while being copied"},
    {Status::kSendInvalidReply, "MACH_SEND_INVALID_REPLY", "(ipc/send) invalid reply port"},
    {Status::kSendInvalidRight, "MACH_SEND_INVALID_RIGHT", "(ipc/send) invalid port right"},
    {Status::kSendInvalidNotify, "MACH_SEND_INVALID_NOTIFY", "(ipc/send) invalid notify port"},
    {Status::kSendInvalidMemory, "MACH_SEND_INVALID_MEMORY", "(ipc/send) invalid memory"},
    {Status::kSendNoBuffer, "MACH_SEND_NO_BUFFER", "(ipc/send) no space for message"},
    {Status::kSendTooLarge, "MACH_SEND_TOO_LARGE", "(ipc/send) message too large"},
    {Status::kSendInvalidType, "MACH_SEND_INVALID_TYPE", "(ipc/send) invalid msg-type"},
    {Status::kSendInvalidHeader, "MACH_SEND_INVALID_HEADER", "(ipc/send) invalid header"},
    {Status::kSendInvalidTrailer, "MACH_SEND_INVALID_TRAILER", "(ipc/send) invalid trailer"},
    {Status::kSendInvalidOptions, "MACH_SEND_INVALID_OPTIONS", "(ipc/send) invalid options"},
    {Status::kSendWillNotify, "PORTD_SEND_WILL_NOTIFY",
     "(ipc/send) message cached, msg-accepted notification will follow"},
    {Status::kSendNotifyInProgress, "PORTD_SEND_NOTIFY_IN_PROGRESS",
     "(ipc/send) a cached message from this thread is still pending"},
    {Status::kRcvInProgress, "MACH_RCV_IN_PROGRESS", "(ipc/rcv) in progress"},
    {Status::kRcvInvalidName, "MACH_RCV_INVALID_NAME", "(ipc/rcv) invalid name"},
    {Status::kRcvTimedOut, "MACH_RCV_TIMED_OUT", "(ipc/rcv) timed out"},
    {Status::kRcvTooLarge, "MACH_RCV_TOO_LARGE", "(ipc/rcv) msg too large"},
    {Status::kRcvInterrupted, "MACH_RCV_INTERRUPTED", "(ipc/rcv) interrupted"},
    {Status::kRcvPortChanged, "MACH_RCV_PORT_CHANGED", "(ipc/rcv) port moved into set"},
    {Status::kRcvInvalidNotify, "MACH_RCV_INVALID_NOTIFY", "(ipc/rcv) invalid notify port"},
    {Status::kRcvInvalidData, "MACH_RCV_INVALID_DATA", "(ipc/rcv) invalid msg-buffer"},
    {Status::kRcvPortDied, "MACH_RCV_PORT_DIED", "(ipc/rcv) port died"},
    {Status::kRcvInSet, "MACH_RCV_IN_SET", "(ipc/rcv) port is in a set"},
    {Status::kRcvHeaderError, "MACH_RCV_HEADER_ERROR", "(ipc/rcv) header error"},
    {Status::kRcvBodyError, "MACH_RCV_BODY_ERROR", "(ipc/rcv) body error"},
    {Status::kBootstrapNotPrivileged, "BOOTSTRAP_NOT_PRIVILEGED", "Permission denied"},
    {Status::kBootstrapNameInUse, "BOOTSTRAP_NAME_IN_USE", "Service name already exists"},
    {Status::kBootstrapUnknownService, "BOOTSTRAP_UNKNOWN_SERVICE", "Unknown service name"},
    {Status::kBootstrapServiceActive, "BOOTSTRAP_SERVICE_ACTIVE", "Service is active"},
    {Status::kBootstrapBadCount, "BOOTSTRAP_BAD_COUNT", "Too many lookups were requested"},
    {Status::kBootstrapNoMemory, "BOOTSTRAP_NO_MEMORY", "Out of memory"},
};

const StatusText* find(Status s) noexcept {
  for (const auto& t : kStatusTexts)
    if (t.status == s) return &t;
  return nullptr;
}

}  // namespace

std::string_view status_name(Status s) noexcept {
  const StatusText* t = find(s);
  return t ? t->name : std::string_view("UNKNOWN_STATUS");
}

std::string_view status_description(Status s) noexcept {
  const StatusText* t = find(s);
  return t ? t->description : std::string_view("(portd) unknown error code");
}

}  // namespace portd
