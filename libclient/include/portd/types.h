// The vocabulary of libportd's API: names, rights, dispositions, and the
// plain structs the daemon's answers come in.
//
// Values are Mach's (MACH-ABI.md), so the Mach-compatible C API passes them
// through unchanged: a Name is a mach_port_name_t, Right a
// MACH_PORT_RIGHT_*, Disposition a MACH_MSG_TYPE_* and the kType* bits are
// MACH_PORT_TYPE_*.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "portd/export.h"

namespace portd {

// A name in the calling task's name space (mach_port_name_t). A name means
// nothing in another task.
using Name = uint32_t;
inline constexpr Name kNameNull = 0;            // MACH_PORT_NULL
inline constexpr Name kNameDead = 0xffffffffu;  // MACH_PORT_DEAD

// MACH_PORT_RIGHT_*.
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

// MACH_MSG_TYPE_*: how a message, insert_right or extract_right takes a right
// from the caller's name space.
enum class Disposition : uint8_t {
  kNone = 0,
  kMoveReceive = 16,
  kMoveSend = 17,
  kMoveSendOnce = 18,
  kCopySend = 19,
  kMakeSend = 20,
  kMakeSendOnce = 21,
};

// MACH_MSG_TYPE_PORT_*: the kind of a right once it has arrived.
enum class RightType : uint8_t {
  kNone = 0,
  kReceive = 16,
  kSend = 17,
  kSendOnce = 18,
};

// Notification message ids (MACH_NOTIFY_*; message-accepted is GNU Mach's).
enum class Notification : int32_t {
  kPortDeleted = 65,
  kMsgAccepted = 66,
  kPortDestroyed = 69,
  kNoSenders = 70,
  kSendOnce = 71,
  kDeadName = 72,
};

inline constexpr uint32_t kQueueLimitDefault = 5;  // MACH_PORT_QLIMIT_DEFAULT
inline constexpr uint32_t kQueueLimitMax = 1024;   // MACH_PORT_QLIMIT_MAX

// One entry of Task::names(): a name and its kType* bits.
struct NameInfo {
  Name name = kNameNull;
  uint32_t type = 0;
};

// mach_port_status_t, from Task::get_attributes().
struct PortStatus {
  Name pset = kNameNull;  // the set the port is in, or kNameNull
  uint32_t seqno = 0;
  uint32_t mscount = 0;  // make-send count
  uint32_t qlimit = 0;
  uint32_t msgcount = 0;  // messages queued
  uint32_t sorights = 0;  // send-once rights outstanding
  bool srights = false;   // send rights exist
  bool pdrequest = false;
  bool nsrequest = false;
  uint32_t flags = 0;
};

// What extract_right hands back: the right's new name and its kind.
struct ExtractedRight {
  Name name = kNameNull;
  RightType type = RightType::kNone;
};

// One name in the bootstrap registry.
struct BootstrapEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t pid = 0;
  uint64_t port = 0;  // the daemon's port id
  int64_t since_unix_ms = 0;
};

// What the daemon tells the receiver about a message's sender.
struct Trailer {
  uint64_t seqno = 0;  // the receiving port's sequence number
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t sender_task = 0;  // the daemon's task id; 0 for a notification
};

namespace detail {
struct CancelState;
}

// Gives up calls blocked in the daemon, from another thread: the wire's
// cancel. Make one with Canceller::create() and put it in the options of the
// calls it is to stop (SendOptions::cancel, ReceiveOptions::cancel); copies
// share one state, so one canceller can stop many calls, of many threads.
//
// cancel() ends every such call the daemon is holding: a send that waits for
// room (or a send-then-receive still sending) returns MACH_SEND_INTERRUPTED
// with its message untouched, a receive (or the receive of a
// send-then-receive) MACH_RCV_INTERRUPTED. It is for good: a call that starts
// afterwards with it returns the same status at once, without reaching the
// daemon, which is what a server loop wants at shutdown. A call the daemon
// has already answered keeps its answer.
class PORTD_API Canceller {
 public:
  // No canceller: the calls cannot be cancelled (the default in options).
  Canceller() noexcept = default;
  static Canceller create();

  explicit operator bool() const noexcept { return state_ != nullptr; }
  void cancel() const noexcept;
  bool cancelled() const noexcept;

  // For the library: the shared state.
  const std::shared_ptr<detail::CancelState>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::CancelState> state_;
};

// How a send behaves when the destination's queue is full (DESIGN 2.1).
struct SendOptions {
  // nullopt: wait for room as long as it takes. 0: fail at once with
  // MACH_SEND_TIMED_OUT. n: wait at most n, then fail (or cache, below).
  std::optional<std::chrono::milliseconds> timeout;
  // Cache-on-full: the daemon keeps the message although the queue is full,
  // answers PORTD_SEND_WILL_NOTIFY (kSendWillNotify), and sends a
  // message-accepted notification through `notify` when it enters the queue.
  // One cached message per sending thread may be pending (the library sends
  // the thread's gettid()).
  bool cache = false;
  Name notify = kNameNull;
  Disposition notify_disposition = Disposition::kMakeSendOnce;
  // Lets another thread give the send up while it waits (see Canceller).
  Canceller cancel{};
};

// How a receive waits and what it accepts.
struct ReceiveOptions {
  // nullopt: wait for a message as long as it takes. 0: return at once with
  // MACH_RCV_TIMED_OUT if none is queued. n: wait at most n.
  std::optional<std::chrono::milliseconds> timeout;
  // The receiver's buffer in Mach layout bytes (header, descriptors, body and
  // trailer_size); 0 means no limit. A message that does not fit is refused
  // with MACH_RCV_TOO_LARGE and ReceivedMessage::needed_size set; with
  // `large` it stays queued, without it it is destroyed (MACH_RCV_LARGE).
  uint32_t max_size = 0;
  bool large = false;
  uint32_t trailer_size = 0;
  // Lets another thread give the receive up while it waits (see Canceller).
  Canceller cancel{};
};

}  // namespace portd
