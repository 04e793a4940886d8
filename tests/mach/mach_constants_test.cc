// The Mach headers compiled as C++: every status code they define is the
// portd::Status the daemon answers with, and the option bits, ids and sizes
// the library relies on are XNU's.
#include <gtest/gtest.h>
#include <mach/mach.h>
#include <servers/bootstrap.h>

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
