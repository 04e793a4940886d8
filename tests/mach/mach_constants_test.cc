// The Mach headers compiled as C++: every constant, size and offset of XNU's
// 64-bit user ABI that MACH-ABI.md lists has XNU's value; every status code
// they define is the portd::Status the daemon answers with; and the
// extension's values are ones XNU leaves unused. (Compile-time checks: a
// wrong value fails the build of this test.)
#include <gtest/gtest.h>
#include <mach/mach.h>
#include <servers/bootstrap.h>

#include <cstddef>
#include <type_traits>

#include "portd/status.h"
#include "portd/types.h"

namespace {

using portd::Status;

constexpr int code(Status s) { return static_cast<int>(s); }

static_assert(KERN_SUCCESS == code(Status::kSuccess));
static_assert(KERN_INVALID_ADDRESS == code(Status::kInvalidAddress));
static_assert(KERN_PROTECTION_FAILURE == code(Status::kProtectionFailure));
static_assert(KERN_NO_SPACE == code(Status::kNoSpace));
static_assert(KERN_INVALID_ARGUMENT == code(Status::kInvalidArgument));
static_assert(KERN_FAILURE == code(Status::kFailure));
static_assert(KERN_RESOURCE_SHORTAGE == code(Status::kResourceShortage));
static_assert(KERN_NOT_RECEIVER == code(Status::kNotReceiver));
static_assert(KERN_NO_ACCESS == code(Status::kNoAccess));
static_assert(KERN_ALREADY_IN_SET == code(Status::kAlreadyInSet));
static_assert(KERN_NOT_IN_SET == code(Status::kNotInSet));
static_assert(KERN_NAME_EXISTS == code(Status::kNameExists));
static_assert(KERN_ABORTED == code(Status::kAborted));
static_assert(KERN_INVALID_NAME == code(Status::kInvalidName));
static_assert(KERN_INVALID_TASK == code(Status::kInvalidTask));
static_assert(KERN_INVALID_RIGHT == code(Status::kInvalidRight));
static_assert(KERN_INVALID_VALUE == code(Status::kInvalidValue));
static_assert(KERN_UREFS_OVERFLOW == code(Status::kUrefsOverflow));
static_assert(KERN_INVALID_CAPABILITY == code(Status::kInvalidCapability));
static_assert(KERN_RIGHT_EXISTS == code(Status::kRightExists));
static_assert(KERN_NOT_SUPPORTED == code(Status::kNotSupported));
static_assert(KERN_OPERATION_TIMED_OUT == code(Status::kOperationTimedOut));
static_assert(KERN_DENIED == code(Status::kDenied));
static_assert(KERN_NOT_FOUND == code(Status::kNotFound));

static_assert(MACH_SEND_IN_PROGRESS == code(Status::kSendInProgress));
static_assert(MACH_SEND_INVALID_DATA == code(Status::kSendInvalidData));
static_assert(MACH_SEND_INVALID_DEST == code(Status::kSendInvalidDest));
static_assert(MACH_SEND_TIMED_OUT == code(Status::kSendTimedOut));
static_assert(MACH_SEND_INTERRUPTED == code(Status::kSendInterrupted));
static_assert(MACH_SEND_MSG_TOO_SMALL == code(Status::kSendMsgTooSmall));
static_assert(MACH_SEND_INVALID_REPLY == code(Status::kSendInvalidReply));
static_assert(MACH_SEND_INVALID_RIGHT == code(Status::kSendInvalidRight));
static_assert(MACH_SEND_INVALID_NOTIFY == code(Status::kSendInvalidNotify));
static_assert(MACH_SEND_INVALID_MEMORY == code(Status::kSendInvalidMemory));
static_assert(MACH_SEND_NO_BUFFER == code(Status::kSendNoBuffer));
static_assert(MACH_SEND_TOO_LARGE == code(Status::kSendTooLarge));
static_assert(MACH_SEND_INVALID_TYPE == code(Status::kSendInvalidType));
static_assert(MACH_SEND_INVALID_HEADER == code(Status::kSendInvalidHeader));
static_assert(MACH_SEND_INVALID_TRAILER == code(Status::kSendInvalidTrailer));
static_assert(MACH_SEND_INVALID_OPTIONS == code(Status::kSendInvalidOptions));
static_assert(PORTD_SEND_WILL_NOTIFY == code(Status::kSendWillNotify));
static_assert(PORTD_SEND_NOTIFY_IN_PROGRESS == code(Status::kSendNotifyInProgress));

static_assert(MACH_RCV_IN_PROGRESS == code(Status::kRcvInProgress));
static_assert(MACH_RCV_INVALID_NAME == code(Status::kRcvInvalidName));
static_assert(MACH_RCV_TIMED_OUT == code(Status::kRcvTimedOut));
static_assert(MACH_RCV_TOO_LARGE == code(Status::kRcvTooLarge));
static_assert(MACH_RCV_INTERRUPTED == code(Status::kRcvInterrupted));
static_assert(MACH_RCV_PORT_CHANGED == code(Status::kRcvPortChanged));
static_assert(MACH_RCV_INVALID_NOTIFY == code(Status::kRcvInvalidNotify));
static_assert(MACH_RCV_INVALID_DATA == code(Status::kRcvInvalidData));
static_assert(MACH_RCV_PORT_DIED == code(Status::kRcvPortDied));
static_assert(MACH_RCV_IN_SET == code(Status::kRcvInSet));
static_assert(MACH_RCV_HEADER_ERROR == code(Status::kRcvHeaderError));
static_assert(MACH_RCV_BODY_ERROR == code(Status::kRcvBodyError));

static_assert(BOOTSTRAP_NOT_PRIVILEGED == code(Status::kBootstrapNotPrivileged));
static_assert(BOOTSTRAP_NAME_IN_USE == code(Status::kBootstrapNameInUse));
static_assert(BOOTSTRAP_UNKNOWN_SERVICE == code(Status::kBootstrapUnknownService));
static_assert(BOOTSTRAP_SERVICE_ACTIVE == code(Status::kBootstrapServiceActive));
static_assert(BOOTSTRAP_BAD_COUNT == code(Status::kBootstrapBadCount));
static_assert(BOOTSTRAP_NO_MEMORY == code(Status::kBootstrapNoMemory));

// The C API passes these straight to the C++ layer.
static_assert(MACH_PORT_TYPE_SEND == portd::kTypeSend);
static_assert(MACH_PORT_TYPE_RECEIVE == portd::kTypeReceive);
static_assert(MACH_PORT_TYPE_SEND_ONCE == portd::kTypeSendOnce);
static_assert(MACH_PORT_TYPE_PORT_SET == portd::kTypePortSet);
static_assert(MACH_PORT_TYPE_DEAD_NAME == portd::kTypeDeadName);
static_assert(MACH_PORT_TYPE_DNREQUEST == portd::kTypeDnRequest);
static_assert(MACH_MSG_TYPE_MOVE_RECEIVE == static_cast<int>(portd::Disposition::kMoveReceive));
static_assert(MACH_MSG_TYPE_MAKE_SEND_ONCE == static_cast<int>(portd::Disposition::kMakeSendOnce));
static_assert(MACH_PORT_QLIMIT_DEFAULT == portd::kQueueLimitDefault);
static_assert(MACH_PORT_QLIMIT_MAX == portd::kQueueLimitMax);
static_assert(MACH_NOTIFY_DEAD_NAME == static_cast<int>(portd::Notification::kDeadName));
static_assert(MACH_NOTIFY_NO_SENDERS == static_cast<int>(portd::Notification::kNoSenders));
static_assert(MACH_NOTIFY_PORT_DESTROYED == static_cast<int>(portd::Notification::kPortDestroyed));
static_assert(std::is_same_v<mach_port_t, uint32_t>);

// XNU's 64-bit user ABI, value by value (../shared/MACH-ABI.md): programs
// built against these headers must mean on portd what they mean on macOS.
// Types and layouts.
static_assert(sizeof(natural_t) == 4 && sizeof(mach_port_t) == 4 && sizeof(mach_port_name_t) == 4 &&
              sizeof(mach_msg_timeout_t) == 4);
static_assert(std::is_same_v<mach_msg_id_t, int> && std::is_same_v<kern_return_t, int> &&
              std::is_same_v<mach_msg_return_t, kern_return_t>);
static_assert(MACH_MSG_TIMEOUT_NONE == 0);
static_assert(sizeof(mach_msg_header_t) == 24);
static_assert(offsetof(mach_msg_header_t, msgh_bits) == 0 &&
              offsetof(mach_msg_header_t, msgh_size) == 4 &&
              offsetof(mach_msg_header_t, msgh_remote_port) == 8 &&
              offsetof(mach_msg_header_t, msgh_local_port) == 12 &&
              offsetof(mach_msg_header_t, msgh_voucher_port) == 16 &&
              offsetof(mach_msg_header_t, msgh_id) == 20);
static_assert(sizeof(mach_msg_body_t) == 4 && sizeof(mach_msg_base_t) == 28);
static_assert(sizeof(mach_msg_port_descriptor_t) == 12 && sizeof(mach_msg_ool_descriptor_t) == 16 &&
              sizeof(mach_msg_ool_ports_descriptor_t) == 16);
static_assert(offsetof(mach_msg_ool_descriptor_t, size) == 12 &&
              offsetof(mach_msg_ool_ports_descriptor_t, count) == 12);
static_assert(MACH_MSG_PORT_DESCRIPTOR == 0 && MACH_MSG_OOL_DESCRIPTOR == 1 &&
              MACH_MSG_OOL_PORTS_DESCRIPTOR == 2 && MACH_MSG_OOL_VOLATILE_DESCRIPTOR == 3 &&
              MACH_MSG_GUARDED_PORT_DESCRIPTOR == 4);
static_assert(MACH_MSG_PHYSICAL_COPY == 0 && MACH_MSG_VIRTUAL_COPY == 1 && MACH_MSG_ALLOCATE == 2);
// Header bits and dispositions.
static_assert(MACH_MSGH_BITS_REMOTE_MASK == 0x1f && MACH_MSGH_BITS_LOCAL_MASK == 0x1f00 &&
              MACH_MSGH_BITS_VOUCHER_MASK == 0x1f0000 && MACH_MSGH_BITS_COMPLEX == 0x80000000u);
static_assert(MACH_MSGH_BITS(3, 5) == (3 | (5 << 8)) && MACH_MSGH_BITS_REMOTE(0x1213) == 0x13 &&
              MACH_MSGH_BITS_LOCAL(0x1213) == 0x12);
static_assert(MACH_MSG_TYPE_MOVE_RECEIVE == 16 && MACH_MSG_TYPE_MOVE_SEND == 17 &&
              MACH_MSG_TYPE_MOVE_SEND_ONCE == 18 && MACH_MSG_TYPE_COPY_SEND == 19 &&
              MACH_MSG_TYPE_MAKE_SEND == 20 && MACH_MSG_TYPE_MAKE_SEND_ONCE == 21 &&
              MACH_MSG_TYPE_COPY_RECEIVE == 22);
static_assert(MACH_MSG_TYPE_PORT_RECEIVE == 16 && MACH_MSG_TYPE_PORT_SEND == 17 &&
              MACH_MSG_TYPE_PORT_SEND_ONCE == 18 && MACH_MSG_TYPE_PORT_NAME == 15);
// Options and trailers.
static_assert(MACH_SEND_MSG == 0x1 && MACH_RCV_MSG == 0x2 && MACH_RCV_LARGE == 0x4 &&
              MACH_SEND_TIMEOUT == 0x10 && MACH_SEND_INTERRUPT == 0x40 &&
              MACH_SEND_NOTIFY == 0x80 && MACH_RCV_TIMEOUT == 0x100 && MACH_RCV_INTERRUPT == 0x400);
static_assert(MACH_RCV_TRAILER_TYPE(0x12) == (0x2u << 28) &&
              MACH_RCV_TRAILER_ELEMENTS(0x13) == (0x3u << 24));
static_assert(MACH_RCV_TRAILER_NULL == 0 && MACH_RCV_TRAILER_SEQNO == 1 &&
              MACH_RCV_TRAILER_SENDER == 2 && MACH_RCV_TRAILER_AUDIT == 3 &&
              MACH_RCV_TRAILER_CTX == 4);
static_assert(sizeof(mach_msg_trailer_t) == 8 && sizeof(mach_msg_seqno_trailer_t) == 12 &&
              sizeof(mach_msg_security_trailer_t) == 20 && sizeof(mach_msg_audit_trailer_t) == 52);
static_assert(offsetof(mach_msg_audit_trailer_t, msgh_audit) == 20 && sizeof(audit_token_t) == 32);
// Return codes.
static_assert(MACH_MSG_SUCCESS == 0 && MACH_SEND_IN_PROGRESS == 0x10000001 &&
              MACH_SEND_INVALID_DATA == 0x10000002 && MACH_SEND_INVALID_DEST == 0x10000003 &&
              MACH_SEND_TIMED_OUT == 0x10000004 && MACH_SEND_INTERRUPTED == 0x10000007 &&
              MACH_SEND_MSG_TOO_SMALL == 0x10000008 && MACH_SEND_INVALID_REPLY == 0x10000009 &&
              MACH_SEND_INVALID_RIGHT == 0x1000000a && MACH_SEND_INVALID_NOTIFY == 0x1000000b &&
              MACH_SEND_INVALID_MEMORY == 0x1000000c && MACH_SEND_NO_BUFFER == 0x1000000d &&
              MACH_SEND_TOO_LARGE == 0x1000000e && MACH_SEND_INVALID_TYPE == 0x1000000f &&
              MACH_SEND_INVALID_HEADER == 0x10000010 && MACH_SEND_INVALID_TRAILER == 0x10000011 &&
              MACH_SEND_INVALID_OPTIONS == 0x10000013);
static_assert(MACH_RCV_IN_PROGRESS == 0x10004001 && MACH_RCV_INVALID_NAME == 0x10004002 &&
              MACH_RCV_TIMED_OUT == 0x10004003 && MACH_RCV_TOO_LARGE == 0x10004004 &&
              MACH_RCV_INTERRUPTED == 0x10004005 && MACH_RCV_PORT_CHANGED == 0x10004006 &&
              MACH_RCV_INVALID_NOTIFY == 0x10004007 && MACH_RCV_INVALID_DATA == 0x10004008 &&
              MACH_RCV_PORT_DIED == 0x10004009 && MACH_RCV_IN_SET == 0x1000400a &&
              MACH_RCV_HEADER_ERROR == 0x1000400b && MACH_RCV_BODY_ERROR == 0x1000400c);
static_assert(KERN_SUCCESS == 0 && KERN_INVALID_ADDRESS == 1 && KERN_PROTECTION_FAILURE == 2 &&
              KERN_NO_SPACE == 3 && KERN_INVALID_ARGUMENT == 4 && KERN_FAILURE == 5 &&
              KERN_RESOURCE_SHORTAGE == 6 && KERN_NOT_RECEIVER == 7 && KERN_NO_ACCESS == 8 &&
              KERN_ALREADY_IN_SET == 11 && KERN_NOT_IN_SET == 12 && KERN_NAME_EXISTS == 13 &&
              KERN_ABORTED == 14 && KERN_INVALID_NAME == 15 && KERN_INVALID_TASK == 16 &&
              KERN_INVALID_RIGHT == 17 && KERN_INVALID_VALUE == 18 && KERN_UREFS_OVERFLOW == 19 &&
              KERN_INVALID_CAPABILITY == 20 && KERN_RIGHT_EXISTS == 21 &&
              KERN_NOT_SUPPORTED == 46 && KERN_OPERATION_TIMED_OUT == 49 && KERN_DENIED == 53 &&
              KERN_NOT_FOUND == 56);
// Ports.
static_assert(MACH_PORT_NULL == 0 && MACH_PORT_DEAD == ~0u);
static_assert(MACH_PORT_RIGHT_SEND == 0 && MACH_PORT_RIGHT_RECEIVE == 1 &&
              MACH_PORT_RIGHT_SEND_ONCE == 2 && MACH_PORT_RIGHT_PORT_SET == 3 &&
              MACH_PORT_RIGHT_DEAD_NAME == 4);
static_assert(MACH_PORT_TYPE_SEND == 0x10000 && MACH_PORT_TYPE_RECEIVE == 0x20000 &&
              MACH_PORT_TYPE_SEND_ONCE == 0x40000 && MACH_PORT_TYPE_PORT_SET == 0x80000 &&
              MACH_PORT_TYPE_DEAD_NAME == 0x100000 && MACH_PORT_TYPE_DNREQUEST == 0x80000000u);
static_assert(MACH_PORT_QLIMIT_ZERO == 0 && MACH_PORT_QLIMIT_BASIC == 5 &&
              MACH_PORT_QLIMIT_SMALL == 16 && MACH_PORT_QLIMIT_LARGE == 1024 &&
              MACH_PORT_QLIMIT_DEFAULT == 5 && MACH_PORT_QLIMIT_MAX == 1024);
static_assert(MACH_PORT_LIMITS_INFO == 1 && MACH_PORT_RECEIVE_STATUS == 2);
static_assert(sizeof(mach_port_limits_t) == 4 && sizeof(mach_port_status_t) == 40 &&
              MACH_PORT_RECEIVE_STATUS_COUNT == 10 && MACH_PORT_LIMITS_INFO_COUNT == 1);
static_assert(MACH_PORT_UREFS_MAX == 0xffff);
// Notifications.
static_assert(MACH_NOTIFY_FIRST == 64 && MACH_NOTIFY_PORT_DELETED == 65 &&
              MACH_NOTIFY_SEND_POSSIBLE == 66 && MACH_NOTIFY_PORT_DESTROYED == 69 &&
              MACH_NOTIFY_NO_SENDERS == 70 && MACH_NOTIFY_SEND_ONCE == 71 &&
              MACH_NOTIFY_DEAD_NAME == 72);
static_assert(sizeof(NDR_record_t) == 8);
static_assert(offsetof(mach_dead_name_notification_t, not_port) == 32 &&
              offsetof(mach_no_senders_notification_t, not_count) == 32 &&
              offsetof(mach_port_destroyed_notification_t, not_port) == 28);
// Bootstrap.
static_assert(sizeof(name_t) == 128 && BOOTSTRAP_MAX_NAME_LEN == 128);
static_assert(BOOTSTRAP_SUCCESS == 0 && BOOTSTRAP_NOT_PRIVILEGED == 1100 &&
              BOOTSTRAP_NAME_IN_USE == 1101 && BOOTSTRAP_UNKNOWN_SERVICE == 1102 &&
              BOOTSTRAP_SERVICE_ACTIVE == 1103 && BOOTSTRAP_BAD_COUNT == 1104 &&
              BOOTSTRAP_NO_MEMORY == 1105);

// The extension's values are ones XNU does not use.
static_assert(PORTD_NOTIFY_MSG_ACCEPTED > MACH_NOTIFY_DEAD_NAME &&
              PORTD_NOTIFY_MSG_ACCEPTED <= MACH_NOTIFY_LAST);
static_assert((PORTD_SEND_NOTIFY &
               (MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_LARGE_IDENTITY |
                MACH_SEND_TIMEOUT | MACH_SEND_OVERRIDE | MACH_SEND_INTERRUPT | MACH_SEND_NOTIFY |
                MACH_SEND_ALWAYS | MACH_SEND_TRAILER | MACH_SEND_NOIMPORTANCE |
                MACH_SEND_IMPORTANCE | MACH_SEND_SYNC_OVERRIDE | MACH_SEND_PROPAGATE_QOS |
                MACH_SEND_KERNEL | MACH_SEND_SYNC_BOOTSTRAP_CHECKIN | MACH_RCV_TIMEOUT |
                MACH_RCV_INTERRUPT | MACH_RCV_VOUCHER | MACH_RCV_GUARDED_DESC | MACH_RCV_SYNC_WAIT |
                MACH_RCV_SYNC_PEEK | MACH_MSG_STRICT_REPLY | MACH_RCV_TRAILER_TYPE(0xf) |
                MACH_RCV_TRAILER_ELEMENTS(0xf))) == 0);

TEST(MachConstants, TrailerSizes) {
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(0), 8u);
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_SEQNO)), 12u);
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_SENDER)), 20u);
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT)), 52u);
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_CTX)), 60u);
  EXPECT_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AV)), 68u);
  EXPECT_EQ(MAX_TRAILER_SIZE, 68u);
}

TEST(MachConstants, HeaderMacros) {
  const mach_msg_bits_t bits =
      MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE) |
      MACH_MSGH_BITS_COMPLEX;
  EXPECT_EQ(MACH_MSGH_BITS_REMOTE(bits), static_cast<unsigned>(MACH_MSG_TYPE_COPY_SEND));
  EXPECT_EQ(MACH_MSGH_BITS_LOCAL(bits), static_cast<unsigned>(MACH_MSG_TYPE_MAKE_SEND_ONCE));
  EXPECT_TRUE(MACH_MSGH_BITS_IS_COMPLEX(bits));
  EXPECT_EQ(MACH_PORT_TYPE(MACH_PORT_RIGHT_DEAD_NAME), 0x100000u);
  EXPECT_EQ(sizeof(mach_port_deleted_notification_t) - sizeof(mach_msg_format_0_trailer_t), 36u);
}

}  // namespace
