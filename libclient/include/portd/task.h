// portd::Task: one connection to the portd daemon, and the name space of
// rights that comes with it.
//
// A Task is made with Task::connect() and shared (std::shared_ptr) by
// everything that uses it: every method may be called from many threads at
// once. Requests are pipelined on one Unix socket; a thread blocked in
// receive() (its request parked in the daemon) never holds up another
// thread's send or rpc. When the connection ends, for whatever reason, the
// daemon releases every right the task held (DESIGN section 4).
//
// Two layers:
//  * The raw layer mirrors the daemon's operations one to one and speaks raw
//    names, as mach_port_* and mach_msg do (the Mach-compatible C API sits on
//    it). Statuses are Mach's codes, exactly as the daemon answers them.
//  * Conveniences return move-only handles (portd/rights.h) that release
//    their right when they go away: make_port(), make_port_set(),
//    check_in(), look_up(), rpc().
//
// Timeouts are enforced by the daemon; the library waits for its answer.
//
// Connection loss. Once the connection is gone (the daemon went away, it
// closed the connection over a protocol violation, or disconnect() was
// called), every call in progress wakes and every later call returns at once
// with KERN_INVALID_TASK (Status::kInvalidTask): the task, and every right it
// had, is dead. connected() and failure() say so and why.
//
// fork(): a Task belongs to the process that connected it. In a child, every
// method returns KERN_INVALID_TASK without touching the socket and handle
// destructors do nothing; the child connects a Task of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portd/export.h"
#include "portd/memory.h"
#include "portd/message.h"
#include "portd/result.h"
#include "portd/rights.h"
#include "portd/status.h"
#include "portd/types.h"

namespace portd {

class Introspection;

namespace detail {
class Connection;
class VolatilePool;
struct OutgoingRegions;
struct ReplyData;
struct IncomingRegion;
}  // namespace detail

// The limit that refused this thread's most recent request to the daemon,
// by the name the daemon gave it ("queued_bytes", "ports", "connections"...;
// docs/operating.md lists them), or "" if that request was not refused by
// one. Calls that answer a bare Status (send, insert_right, ...) have no
// other way to say which quota it was; Results say it in detail() too.
PORTD_API std::string last_refused_limit();

// The daemon's socket path, resolved as portd and portctl resolve it:
// `explicit_path` if not empty, else $PORTD_SOCKET, else
// $XDG_RUNTIME_DIR/portd.sock, else /run/portd/portd.sock.
PORTD_API std::string resolve_socket_path(std::string_view explicit_path = {});

struct ConnectOptions {
  // Empty: resolved as portd and portctl do ($PORTD_SOCKET, then
  // $XDG_RUNTIME_DIR/portd.sock, then /run/portd/portd.sock).
  std::string socket_path;
  // Shown by portctl; empty: this process's /proc/self/comm.
  std::string command;
  // Bodies larger than this travel out of line (copy mode); never more than
  // the daemon's inline-body limit. Task::set_ool_threshold changes it.
  size_t ool_threshold = 64 << 10;
  // The most the volatile pool may hold (Task::volatile_buffer).
  size_t volatile_pool_bytes = size_t{512} << 20;
  // The highest protocol version to ask for; 0: the library's newest. 1
  // keeps send_batch and receive_batch on pipelined single requests (as
  // with a daemon of version 1): for tests and benchmarks.
  uint32_t protocol_version = 0;
};

class PORTD_API Task : public std::enable_shared_from_this<Task> {
 public:
  // Connects and negotiates the protocol version. Fails with
  //   KERN_INVALID_TASK       nothing listens at the path (detail: the errno
  //                           text; the path is resolve_socket_path()),
  //   KERN_NO_ACCESS          the socket's permissions refuse us,
  //   KERN_INVALID_ARGUMENT   the path does not fit a sockaddr_un,
  //   KERN_NOT_SUPPORTED      the daemon speaks no version we know,
  // or the status the daemon answered the hello with.
  static Result<std::shared_ptr<Task>> connect(const ConnectOptions& options = {});

  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // ---- the connection ------------------------------------------------------
  const std::string& socket_path() const { return socket_path_; }
  uint64_t id() const { return task_id_; }  // the daemon's id for this task
  uint32_t daemon_pid() const { return daemon_pid_; }
  uint32_t protocol_version() const { return version_; }
  // Largest inline body the daemon accepts.
  uint32_t max_inline_body() const { return max_inline_body_; }
  // Bodies larger than this are sent out of line, in copy mode, and come
  // back to a receiver of this API as its body. The daemon's inline-body
  // limit caps it.
  size_t ool_threshold() const;
  void set_ool_threshold(size_t bytes);

  // ---- out-of-line memory (portd/memory.h) --------------------------------
  // A segment of this task's pool of pre-faulted shared segments, for a
  // volatile region: write `size` bytes into it and add it to a message
  // (OutgoingMessage::add_ool_volatile). KERN_RESOURCE_SHORTAGE when what is
  // lent and in flight fills the pool (ConnectOptions::volatile_pool_bytes).
  Result<VolatileBuffer> volatile_buffer(size_t size);
  VolatilePoolStats volatile_pool_stats();
  bool connected() const;
  // Why the connection ended ("" while connected).
  std::string failure() const;
  // Ends the connection: calls in progress wake with KERN_INVALID_TASK and
  // the daemon releases every right of this task.
  void disconnect();

  // ---- raw layer: port management (mach_port_*) ----------------------------
  // RECEIVE, PORT_SET or DEAD_NAME.
  Result<Name> allocate(Right right);
  Status deallocate(Name name);
  Status mod_refs(Name name, Right right, int32_t delta);
  Status destroy(Name name);
  // Gives `name` the right made from `right` (mach_port_insert_right).
  Status insert_right(Name name, Name right, Disposition disposition);
  Result<ExtractedRight> extract_right(Name name, Disposition disposition);
  Result<uint32_t> get_refs(Name name, Right right);
  Result<uint32_t> type(Name name);  // kType* bits
  Result<std::vector<NameInfo>> names();
  Result<PortStatus> get_attributes(Name name);
  Status set_qlimit(Name name, uint32_t qlimit);
  // Moves a receive right into the set `after`, or out of its set
  // (after == kNameNull).
  Status move_member(Name member, Name after);
  // Arms (or with notify == kNameNull cancels) a notification; returns the
  // name of the previous request's send-once right, or kNameNull.
  Result<Name> request_notification(Name name, Notification variant, uint32_t sync, Name notify,
                                    Disposition notify_disposition);

  // ---- raw layer: messaging ------------------------------------------------
  // Consumes `message` iff it succeeds (kSuccess, or kSendWillNotify when
  // cached): see portd/message.h. Fails before anything is sent with the
  // message's problem() if it has one, MACH_SEND_TOO_LARGE if it would not
  // fit in a frame (or its regions need more than 64 fds), and
  // KERN_RESOURCE_SHORTAGE if a large body cannot be put out of line.
  Status send(OutgoingMessage& message, const SendOptions& options = {});
  // From a receive right or a port set. MACH_RCV_TOO_LARGE comes with a value
  // whose needed_size is set.
  Result<ReceivedMessage> receive(Name name, const ReceiveOptions& options = {});
  // Send then receive in one request (one round trip: the RPC shape). A send
  // failure (a MACH_SEND_* status or a kern_return_t) leaves `message` as it
  // was; once the send has happened, `message` is consumed whatever the
  // receive's outcome (MACH_RCV_* statuses). send_options.cancel (or, if it
  // is empty, receive_options.cancel) gives the call up in either phase.
  Result<ReceivedMessage> send_receive(OutgoingMessage& message, const SendOptions& send_options,
                                       Name receive_name, const ReceiveOptions& receive_options);

  // ---- raw layer: batched messaging ---------------------------------------
  // Sends each message as send() would, in order, in one round trip: with a
  // daemon of protocol version 2, in batch requests (up to the daemon's
  // batch limit of messages each, within the frame and fd limits), else as
  // pipelined send requests written before any answer is awaited. Returns one
  // status per message; each message is consumed iff its own send
  // succeeded. A message refused before sending (its problem(), a region
  // that cannot be made) is skipped and the others still go. With
  // options.cancel set, the messages are sent one by one. Afterwards
  // last_refused_limit() names the limit that refused the last of these
  // messages a limit refused, or is "" if none was.
  std::vector<Status> send_batch(std::span<OutgoingMessage> messages,
                                 const SendOptions& options = {});
  // Up to `max` messages from a receive right or port set: the first is
  // waited for as `options` say, the others are taken only if they are
  // queued already (never waiting), all in one round trip; the daemon may
  // return fewer than are queued so that its reply stays within a frame
  // (its bytes, and 64 fds: one per out-of-line region, two for a volatile
  // region with a release signal). Messages come in the
  // order they were received. Fails as receive()
  // does when the first receive fails (MACH_RCV_TOO_LARGE comes without the
  // needed size here: receive() gives it). A message delivered with
  // MACH_RCV_HEADER_ERROR or MACH_RCV_BODY_ERROR is in the batch, and the
  // result carries that status. The later receives never destroy a message
  // too large for options.max_size: it stays queued. With options.cancel
  // set, or max <= 1, it is one receive().
  Result<std::vector<ReceivedMessage>> receive_batch(Name name, size_t max,
                                                     const ReceiveOptions& options = {});

  // ---- raw layer: bootstrap -----------------------------------------------
  // The daemon makes a port for `service` and hands back its receive right.
  Result<Name> bootstrap_check_in(std::string_view service);
  // Binds `service` to a send right the caller holds (name of a send or
  // receive right).
  Status bootstrap_register(std::string_view service, Name port);
  // A send right to the service's port. timeout 0: answer at once; nullopt:
  // wait until the name appears; n: wait at most n.
  Result<Name> bootstrap_look_up(
      std::string_view service,
      std::optional<std::chrono::milliseconds> timeout = std::chrono::milliseconds(0));
  Status bootstrap_unregister(std::string_view service);
  Result<std::vector<BootstrapEntry>> bootstrap_list();

  // ---- conveniences: handles ---------------------------------------------
  Result<ReceiveRight> make_port();
  Result<PortSet> make_port_set();
  Result<ReceiveRight> check_in(std::string_view service);
  Result<SendRight> look_up(
      std::string_view service,
      std::optional<std::chrono::milliseconds> timeout = std::chrono::milliseconds(0));
  // A request and its reply in one round trip: sends `request` with
  // `reply_port` as its reply port (MAKE_SEND_ONCE) and receives the reply on
  // it. The request's destination must already be set.
  Result<ReceivedMessage> rpc(OutgoingMessage& request, const ReceiveRight& reply_port,
                              const SendOptions& send_options = {},
                              const ReceiveOptions& receive_options = {});

 private:
  friend class detail::RightHandle;
  friend class Introspection;
  friend struct detail::CancelState;

  Task(std::unique_ptr<detail::Connection> connection, std::string socket_path);
  // Releases a right and does not wait for the daemon's answer.
  void release_nowait(Name name, Right right, bool deallocate) noexcept;
  // Asks the daemon to give up request `request_id` (answer discarded).
  void post_cancel(uint64_t request_id) noexcept;
  Status check_message(const OutgoingMessage& message) const;
  // Puts a large body out of line and gathers the fds the message's regions
  // send (docs/ool.md).
  Status prepare_regions(const OutgoingMessage& message, detail::OutgoingRegions* out) const;
  // The send went through: pooled segments are in flight from now on.
  static void regions_sent(OutgoingMessage& message, detail::OutgoingRegions& regions);
  // Maps the regions of a received message (a body region becomes the body).
  // MACH_RCV_BODY_ERROR if one could not be mapped, else `status`.
  static Status map_regions(detail::ReplyData& reply, Status status);
  static Status map_regions(ReceivedMessage& message, std::vector<detail::IncomingRegion>& regions,
                            Status status);
  // send_batch and receive_batch with the batch requests of protocol
  // version 2 (the pipelined requests of version 1 otherwise).
  std::vector<Status> send_batched(std::span<OutgoingMessage> messages, const SendOptions& options);
  Result<std::vector<ReceivedMessage>> receive_batched(Name name, size_t max,
                                                       const ReceiveOptions& options);

  std::unique_ptr<detail::Connection> connection_;
  std::string socket_path_;
  uint64_t task_id_ = 0;
  uint32_t daemon_pid_ = 0;
  uint32_t version_ = 0;
  uint32_t max_inline_body_ = 0;
  uint32_t max_frame_bytes_ = 0;
  uint32_t max_batch_ = 0;  // 0: the daemon has no batch requests
  std::atomic<size_t> ool_threshold_{64 << 10};
  std::shared_ptr<detail::VolatilePool> pool_;
};

}  // namespace portd
