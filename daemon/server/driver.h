// Driver: carries decoded requests to the core and the core's effects out.
//
// One Driver per daemon, on the event-loop thread, beside the one ipc::Core.
// For each request it calls the core, replies at once when the operation
// finished, or parks it when the core says it must wait (kSendInProgress,
// kRcvInProgress): the parked request is remembered under a fresh WaitToken
// (never reused), with its connection's task, its request id and, when it has
// a timeout, an asio::steady_timer that calls core.expire(). The core later
// completes it through Effects::completions, which the driver routes to the
// task's connection by task id and to the parked request by token.
//
// sendReceive is two phases here: the send runs first; when it succeeds (at
// once or on completion) the receive starts under the same request id. A
// failed send is the final answer, as in Mach.
//
// sendBatch runs each message as a send of its own, in order, each under a
// token of its own. A message that must wait is parked like a send (with a
// timer for what is left of the batch's timeout) and holds the rest of the
// batch back, charged to the task, until it has its outcome; the batch
// (under a token of the request's, in the task's in-progress table) answers
// once every message has its outcome. Cancelling it interrupts the waiting
// message and the rest. receiveBatch receives
// the first message as a receive would (parking if it must) and then takes
// what is queued already, while another message surely fits the reply
// frame.
//
// Ownership: the driver owns the attachment table (the OOL fds of messages in
// flight) and every timer. Replies leave through a ReplySink, which drops them
// if the task's connection is gone. Completions for tasks that have detached
// are dropped (their attachments closed), never dereferenced.
#pragma once

#include <capnp/message.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/ipc/node_pool.h"
#include "daemon/server/attachments.h"
#include "daemon/server/codec.h"
#include "portd/proto/frame.h"
#include "portd/proto/unique_fd.h"

namespace portd::server {

// Where replies go: the connection that serves a task.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  // Queues one reply frame (and the fds that travel with it) for `task`. If
  // the task has no connection any more the frame is dropped and its fds
  // closed.
  virtual void post_reply(ipc::TaskId task, capnp::MessageBuilder& reply,
                          std::vector<proto::UniqueFd> fds) = 0;
  // The same for a reply whose message body is not copied into it but sent
  // from `body` (encode_message's BodyIn::kPlaced and kReferenced; `at` is
  // what it returned): a sink that keeps the frame keeps `body` with it.
  // This one, for sinks that only read the reply, copies the body into the
  // unfilled field and serializes the reply before `body` goes, as
  // post_reply does.
  virtual void post_reply_with_body(ipc::TaskId task, capnp::MessageBuilder& reply,
                                    std::vector<proto::UniqueFd> fds, std::vector<uint8_t> body,
                                    const void* at);
};

// Received bodies at least this large are not copied into their reply but
// sent from the queued body (FrameWriter::append): two copies of the body
// less on the event-loop thread, into the reply's segment and out of it.
// From kReferenceBodyBytes on, the body is a segment of its own, so the
// reply needs no zeroed segment that large; below, it is a field of the
// reply's first segment left unfilled.
inline constexpr size_t kPlaceBodyBytes = 1024;
inline constexpr size_t kReferenceBodyBytes = 16 * 1024;

class Driver {
 public:
  // `frame_limits`: what a reply frame may hold (the frame size clients are
  // told at hello, and the fds per frame); receiveBatch stays within them.
  Driver(asio::io_context& io, ipc::Core& core, ReplySink& sink,
         const proto::FrameLimits& frame_limits = {});
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  ipc::Core& core() { return core_; }

  // A connection said hello: its task is created in the core.
  Status attach(ipc::TaskId task, const ipc::Credentials& creds);
  // Its connection is gone (whatever the reason): every timer of the task is
  // cancelled, its parked requests forgotten, and the core destroys the task
  // (releasing its rights, with the effects that has on other tasks).
  void detach(ipc::TaskId task);
  bool attached(ipc::TaskId task) const { return tasks_.count(task) != 0; }

  // Carries out one request of an attached task (anything but hello). `fds`
  // are the descriptors its frame brought (request.fd_count of them).
  void handle(ipc::TaskId task, DecodedRequest&& request, std::vector<proto::UniqueFd> fds);

  // Introspection, for tests and portctl.
  // Requests waiting (a sendBatch counts once, however many of its messages
  // wait).
  size_t parked_count() const;
  size_t timer_count() const;
  size_t attachment_count() const { return attachments_.size(); }
  // sendBatch requests waiting for a parked message.
  size_t batch_count() const { return batches_.size(); }

 private:
  enum class ParkedKind { kSend, kSendThenReceive, kReceive, kLookUp, kBatchSend, kReceiveBatch };

  struct Parked {
    ipc::TaskId task = 0;
    uint64_t request_id = 0;
    ParkedKind kind = ParkedKind::kSend;
    ipc::ReceiveOptions then_receive;  // kSendThenReceive: the second phase; kReceiveBatch: options
    ipc::WaitToken batch = 0;          // kBatchSend: the batch's token
    uint32_t index = 0;                // kBatchSend: the message's; kReceiveBatch: max
    std::unique_ptr<asio::steady_timer> timer;
  };

  // A sendBatch with a message waiting for room. Its messages go one after
  // another, as a thread would send them: the one that waits holds the rest
  // back (they are charged to the task meanwhile, Core::hold_charges), and
  // its outcome lets the next go. One status per message, filled as each
  // gets its outcome.
  struct SendBatchState {
    ipc::TaskId task = 0;
    uint64_t request_id = 0;
    req::SendBatch request;            // the messages, moved from the request
    std::vector<proto::UniqueFd> fds;  // the frame's, every message's in order
    std::vector<Status> statuses;
    size_t next = 0;              // the next message to send
    size_t next_fd = 0;           // its first fd
    size_t held_from = SIZE_MAX;  // messages from here on are held (charged)...
    std::vector<uint8_t> held;    // ...those with held[i - held_from] set
    ipc::WaitToken waiting = 0;   // the message that waits for room
    bool interrupted = false;     // cancelled: the rest are not sent
    bool has_deadline = false;    // a timeout: no message waits past the deadline
    std::chrono::steady_clock::time_point deadline;
    // The limit that refused the last message a limit refused, so far in
    // message order: the reply's `limit` (Limit::kNone if none did).
    ipc::Limit limit = ipc::Limit::kNone;
  };
  struct TaskState {
    explicit TaskState(ipc::NodePool* nodes) : in_progress(nodes) {}
    // Parked requests by request id, for cancel and duplicate detection.
    ipc::PooledMap<uint64_t, ipc::WaitToken> in_progress;
  };

  // One handler per request kind; each replies or parks.
  void do_cancel(ipc::TaskId task, TaskState& state, uint64_t id, const req::Cancel& r);
  void do_send(ipc::TaskId task, uint64_t id, ipc::MessageIn& message,
               const ipc::SendOptions& options, std::vector<proto::UniqueFd> fds,
               const ipc::ReceiveOptions* then_receive);
  void do_receive(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options);
  void do_look_up(ipc::TaskId task, uint64_t id, const req::BootstrapLookUp& r);
  void do_simple(ipc::TaskId task, uint64_t id, RequestBody& body);
  void do_send_batch(ipc::TaskId task, TaskState& state, uint64_t id, req::SendBatch& r,
                     std::vector<proto::UniqueFd> fds);
  void do_receive_batch(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options,
                        uint32_t max);
  // The first message of a receiveBatch is `first` (received with `status`):
  // takes up to max - 1 more that are queued and answers.
  void finish_receive_batch(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options,
                            uint32_t max, ipc::MessageOut& first, Status status, ipc::Limit limit);
  // Sends the batch's messages from `next` on until one must wait (false:
  // it is parked under `batch_token`) or every message has its outcome
  // (true).
  bool run_batch(ipc::WaitToken batch_token, SendBatchState& batch);
  // Holds (charges) the messages from `from` on that are not refused; one
  // that does not fit a limit is refused as its send would be.
  void hold_rest(SendBatchState& batch, size_t from);
  // Gives back the holds of the messages not sent yet.
  void release_held(SendBatchState& batch);
  // What message i's send will charge.
  static ipc::SendCharge charge_of(const SendBatchState& batch, size_t i);
  // The batch ends unsent from `next` on: each held message is released,
  // and counted (dropped: its sender died; or refused with `status`).
  void drop_rest(SendBatchState& batch, bool sender_died, Status status);
  void reply_send_batch(ipc::TaskId task, uint64_t id, const SendBatchState& batch);
  // Records message i's outcome, and the limit that refused it if one did.
  static void set_outcome(SendBatchState& batch, size_t i, Status status, ipc::Limit limit);
  // An upper bound of the bytes `message` adds to a reply frame.
  static size_t encoded_bound(const ipc::MessageOut& message);

  // Registers a send's OOL fds as attachments, in descriptor order, after
  // checking them. On failure nothing stays registered and `why` says which
  // region was refused and what is wrong with it.
  Status attach_ool(ipc::MessageIn& message, std::vector<proto::UniqueFd>& fds, std::string* why);
  void release_ool(const ipc::MessageIn& message);
  void release_ool(const ipc::MessageOut& message);

  void park(ipc::WaitToken token, ipc::TaskId task, uint64_t request_id, ParkedKind kind,
            int64_t timeout_ms, const ipc::ReceiveOptions* then_receive = nullptr,
            uint32_t index = 0, ipc::WaitToken batch = 0);
  void on_timer(ipc::WaitToken token);

  // Effects: released attachments are closed at once, completions queued and
  // handled by drain() in order (a completion may start a receive, whose
  // effects join the queue).
  void absorb(ipc::Effects& fx);
  void drain();
  void complete(ipc::Completion& c);

  void reply_status(ipc::TaskId task, uint64_t id, Status status,
                    ipc::Limit limit = ipc::Limit::kNone, uint32_t needed_size = 0);
  // A received message; `limit` names the quota that kept one of its rights
  // from being named (with MACH_RCV_HEADER_ERROR or MACH_RCV_BODY_ERROR).
  // Takes the fds of `message`'s OOL regions out of the attachment table and
  // appends them to `fds` in descriptor order (a region's fd, then its
  // release fd). False if the table lacked one (our bug): what was taken is
  // still appended, with invalid fds for the missing.
  bool take_ool_fds(const ipc::MessageOut& message, std::vector<proto::UniqueFd>* fds);
  void reply_message(ipc::TaskId task, uint64_t id, ipc::MessageOut& message,
                     Status status = Status::kSuccess, ipc::Limit limit = ipc::Limit::kNone);
  static bool carries_message(Status status);
  ipc::Limit refused_limit(Status status) const;
  void tick_clock();

  asio::io_context& io_;
  ipc::Core& core_;
  ReplySink& sink_;
  const proto::FrameLimits frame_limits_;
  Attachments attachments_;
  // The first segment of every reply built here (no allocation per reply).
  // Room for a receiveBatch of a few hundred small messages: capnp zeroes
  // only what a reply used, so a larger scratch costs nothing per reply,
  // while a smaller one made every batch reply allocate a second segment.
  static constexpr size_t kScratchWords = size_t{32} << 10;  // 256 KiB
  proto::Scratch scratch_{kScratchWords};
  ipc::WaitToken next_token_ = 1;
  // Nodes of the parked-request tables: parking a request and completing it
  // cost no heap allocation once the pool has grown to the peak. Declared
  // before the tables.
  ipc::NodePool nodes_;
  ipc::PooledMap<ipc::WaitToken, Parked> parked_{&nodes_};
  std::unordered_map<ipc::TaskId, TaskState> tasks_;
  // sendBatch requests with parked messages, by the batch's token.
  std::unordered_map<ipc::WaitToken, SendBatchState> batches_;
  // receiveBatch: the messages of the reply being built (reused).
  struct Taken {
    ipc::MessageOut message;
    Status status = Status::kSuccess;
    ipc::Limit limit = ipc::Limit::kNone;
  };
  std::vector<Taken> taken_;
  std::vector<ipc::SendCharge> charges_;  // hold_rest's (reused)
  std::vector<ipc::Limit> refused_by_;    // hold_rest's: what refused each hold
  // Completions in order. Each is handled where it waits: list nodes stay
  // put as more are added. A handled node goes to spare_completions_ (up to
  // kSpareCompletions) for the next one, so a steady stream allocates none.
  std::list<ipc::Completion> pending_;
  std::list<ipc::Completion> spare_completions_;
  static constexpr size_t kSpareCompletions = 64;
  // What the core's calls report, absorbed right after each call. One object
  // kept for its vectors' capacity: a local Effects allocated its completion
  // vector on every send that woke a receiver. (A call absorbing another's
  // effects early, were one nested in another, changes nothing: absorb only
  // moves them on in order.)
  ipc::Effects fx_;
  bool draining_ = false;  // drain() is running
  // Set while the driver is being destroyed: timer handlers must not run.
  std::shared_ptr<bool> alive_;
};

}  // namespace portd::server
