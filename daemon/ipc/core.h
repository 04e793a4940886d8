// Core: the whole of portd's Mach semantics, with no I/O.
//
// The core owns every task's name space, every port and port set, every
// queued message and the bootstrap registry. The shell (daemon/server) calls
// one operation at a time from its single event-loop thread, so the core
// needs no locks. Each operation takes the calling task's id and returns a
// Status; what it causes elsewhere (a parked receive that now has its message,
// a blocked sender that may go on, attachments to close) is appended to an
// Effects the caller passes in and carries out afterwards.
//
// Rules every operation keeps:
//  * Consumed if and only if it succeeded: an operation that fails leaves the
//    caller's space exactly as it was (no reference taken, no right moved).
//  * Names are checked here, in one place: a name that does not denote the
//    right an operation needs is refused with the Mach status for it.
//  * Every resource is charged to a task and its uid (limits.h); a refusal
//    by a limit records which, in last_refused_limit().
//
// Waiting. An operation that must wait (a send to a full queue, a receive on
// an empty one, a look-up of a name not yet registered) is parked under the
// WaitToken the shell gives it and returns kSendInProgress (sends) or
// kRcvInProgress (receives and look-ups). It completes later, as a
// Completion in the Effects of whatever operation unblocked it. The shell
// owns time: when a parked operation's deadline passes it calls expire(),
// and when the client gives up, cancel(). A timeout of 0 never parks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/ipc/limits.h"
#include "daemon/ipc/message.h"
#include "daemon/ipc/types.h"

namespace portd::ipc {

struct SendOptions {
  // < 0: wait for room as long as it takes; 0: never wait; n: the shell will
  // call expire() after n ms.
  int64_t timeout_ms = -1;
  // Cache-on-full (DESIGN 2.1): when the queue is full (after the wait, if
  // any), keep the message, answer kSendWillNotify, and send a
  // message-accepted notification through `notify` when it enters the queue.
  bool cache = false;
  Name notify = kNameNull;
  Disposition notify_disposition = Disposition::kMakeSendOnce;
  // The sending thread as the client identifies it: one cached message per
  // (task, thread) may be pending.
  uint64_t thread = 0;
  // The shell charged this message's queued-message, byte, out-of-line and
  // fd charges to the sender already (hold_charges): a send that takes the
  // message adopts them; one that fails leaves them with the shell.
  bool prepaid = false;
};

// What one message's send charges its sender (Core::hold_charges).
struct SendCharge {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t ool_bytes = 0;
  uint64_t fds = 0;

  SendCharge& operator+=(const SendCharge& o) {
    messages += o.messages;
    bytes += o.bytes;
    ool_bytes += o.ool_bytes;
    fds += o.fds;
    return *this;
  }
};

struct ReceiveOptions {
  Name name = kNameNull;  // a receive right or a port set
  int64_t timeout_ms = -1;
  // Buffer size in Mach layout bytes (0: no limit) and MACH_RCV_LARGE.
  uint32_t max_size = 0;
  bool large = false;
  uint32_t trailer_size = 0;
  // Most fds the message's regions may hold (one per region, two with a
  // release signal). A queued message holding more stays queued and the
  // receive answers kRcvTooLarge, as with `large`. A receiveBatch sets it
  // for the messages after its first, so that its reply frame stays within
  // the fds one frame may carry; the wire cannot set it.
  uint64_t max_fds = UINT64_MAX;
};

// The outcome of a parked operation.
struct Completion {
  WaitToken token = 0;
  TaskId task = 0;
  Status status = Status::kSuccess;
  std::optional<MessageOut> message;  // a receive that got its message
  uint32_t needed_size = 0;           // kRcvTooLarge: the size it needs
  Name name = kNameNull;              // a look-up: the send right's name
  Limit limit = Limit::kNone;         // refused by this limit
};

struct Effects {
  std::vector<Completion> completions;
  // Attachments of messages destroyed unreceived: the shell closes them.
  std::vector<AttachmentId> released;

  void clear() {
    completions.clear();
    released.clear();
  }
  bool empty() const { return completions.empty() && released.empty(); }
};

// One entry of names(): a name and its MACH_PORT_TYPE_* bits.
struct NameInfo {
  Name name = kNameNull;
  uint32_t type = 0;
};

// mach_port_status_t.
struct PortStatus {
  Name pset = kNameNull;
  uint32_t seqno = 0;
  uint32_t mscount = 0;
  uint32_t qlimit = 0;
  uint32_t msgcount = 0;
  uint32_t sorights = 0;
  bool srights = false;
  bool pdrequest = false;
  bool nsrequest = false;
  uint32_t flags = 0;
};

struct BootstrapEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t pid = 0;
  PortId port = 0;
  int64_t since_unix_ms = 0;
};

class CoreImpl;
class MessageObserver;

class Core {
 public:
  explicit Core(const Limits& limits = {});
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  const Limits& limits() const;
  // Takes effect for charges made from now on; nothing already held is
  // taken away.
  void set_limits(const Limits& limits);

  // The limit that refused the most recent operation, or kNone.
  Limit last_refused_limit() const;

  // The clock the registry stamps names with (Unix ms); the shell sets it.
  void set_now_unix_ms(int64_t now);

  // ---- tasks ------------------------------------------------------------
  Status task_create(TaskId task, const Credentials& creds);
  // The task is gone: every right it holds is released (its ports die,
  // send-once rights fire, requests are cancelled), its parked operations
  // are dropped without completions, and messages it had queued stay queued.
  void task_destroy(TaskId task, Effects& fx);
  bool task_exists(TaskId task) const;

  // ---- port management (mach_port_*) -------------------------------------
  Status allocate(TaskId task, Right right, Name* out);
  Status deallocate(TaskId task, Name name, Effects& fx);
  Status mod_refs(TaskId task, Name name, Right right, int32_t delta, Effects& fx);
  Status destroy(TaskId task, Name name, Effects& fx);
  Status insert_right(TaskId task, Name name, Name right, Disposition disposition, Effects& fx);
  Status extract_right(TaskId task, Name name, Disposition disposition, Name* out,
                       RightType* out_type, Effects& fx);
  Status get_refs(TaskId task, Name name, Right right, uint32_t* out);
  Status type(TaskId task, Name name, uint32_t* out);
  Status names(TaskId task, std::vector<NameInfo>* out);
  Status get_attributes(TaskId task, Name name, PortStatus* out);
  Status set_qlimit(TaskId task, Name name, uint32_t qlimit, Effects& fx);
  Status move_member(TaskId task, Name member, Name after, Effects& fx);
  // variant: kPortDestroyed, kNoSenders or kDeadName. notify == kNameNull
  // cancels. The previous request's send-once right, if any, is put in the
  // caller's space and its name returned in *previous.
  Status request_notification(TaskId task, Name name, Notify variant, uint32_t sync, Name notify,
                              Disposition notify_disposition, Name* previous, Effects& fx);

  // ---- messaging ----------------------------------------------------------
  // On success the message is queued (or handed to a waiting receiver). On
  // failure nothing was consumed: the message's rights are still the
  // sender's, and `message` still holds what the caller passed (its body
  // and attachments unchanged). Parked: returns kSendInProgress.
  Status send(TaskId task, MessageIn& message, const SendOptions& options, WaitToken token,
              Effects& fx);
  // On success fills *out. Parked: returns kRcvInProgress.
  Status receive(TaskId task, const ReceiveOptions& options, WaitToken token, MessageOut* out,
                 uint32_t* needed_size, Effects& fx);

  // A send the shell refused before it reached the core (a message it could
  // not decode, an out-of-line fd it would not take): counted as sent and
  // refused, as if the core had refused it.
  void count_refused_send();

  // Messages the shell holds for a task before it sends them (a sendBatch's
  // messages behind one that waits for room) are charged to the task as the
  // sends will charge them: queued messages and bytes, out-of-line bytes and
  // fds in flight. hold_charges() charges all of `c` or, if any of it would
  // pass a per-task or per-uid limit, nothing. hold_charges() takes the
  // messages in order, as their sends would come: held[i] says whether
  // charges[i] was held (all false for an unknown task), and refused_by[i]
  // names the limit that refused a charge not held (Limit::kNone for one
  // held, one with nothing to hold, or an unknown task). A send with
  // SendOptions::prepaid adopts its message's hold; release_charges() gives
  // back holds (their sum) whose messages are dropped or refused.
  void hold_charges(TaskId task, std::span<const SendCharge> charges, std::vector<uint8_t>* held,
                    std::vector<Limit>* refused_by);
  void release_charges(TaskId task, const SendCharge& total);
  // `n` held messages the shell dropped unsent because their sender died:
  // counted as sent and destroyed (sender died), as a blocked send is.
  void count_dropped_sends(uint64_t n);

  // A parked operation's deadline passed: it completes with its timed-out
  // status (a cache-on-full send is cached instead). Unknown tokens are
  // ignored: the operation completed already.
  void expire(WaitToken token, Effects& fx);
  // The client gave the operation up: it completes with kSendInterrupted,
  // kRcvInterrupted or kAborted. Unknown tokens are ignored.
  void cancel(WaitToken token, Effects& fx);
  bool is_parked(WaitToken token) const;

  // ---- bootstrap -----------------------------------------------------------
  Status bootstrap_check_in(TaskId task, std::string_view name, Name* out, Effects& fx);
  Status bootstrap_register(TaskId task, std::string_view name, Name port, Effects& fx);
  // timeout_ms 0: answer at once; otherwise park (kRcvInProgress) until the
  // name is registered or the shell expires the token.
  Status bootstrap_look_up(TaskId task, std::string_view name, int64_t timeout_ms, WaitToken token,
                           Name* out, Effects& fx);
  Status bootstrap_unregister(TaskId task, std::string_view name, Effects& fx);
  Status bootstrap_list(TaskId task, std::vector<BootstrapEntry>* out);

  // ---- monitoring -------------------------------------------------------------
  // Message events go to `observer` (monitor.h) until it is replaced or reset
  // with nullptr. With none installed, no event is built.
  void set_observer(MessageObserver* observer);

  // For the shell and tests: the implementation (introspection lives there).
  CoreImpl& impl() { return *impl_; }
  const CoreImpl& impl() const { return *impl_; }

 private:
  std::unique_ptr<CoreImpl> impl_;
};

}  // namespace portd::ipc
