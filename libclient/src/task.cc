#include "portd/task.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "libclient/src/codec.h"
#include "libclient/src/connection.h"
#include "libclient/src/identity.h"
#include "libclient/src/volatile_pool.h"
#include "portd/proto/socket_path.h"

namespace portd {

namespace {

using detail::ReplyData;

// One request being built. Small requests fit the first segment; a message's
// body gets room up front so the frame stays in one or two segments.
// The first segment is this thread's scratch when it is free (no allocation
// and no clearing of a fresh segment per request; a request built while
// another of the thread's is alive, as in send_batch, gets a heap segment).
struct Request {
  explicit Request(size_t extra_bytes = 0)
      : scratch(thread_scratch(kFirstSegmentWords + extra_bytes / 8),
                kFirstSegmentWords + extra_bytes / 8),
        builder(*scratch) {}
  static constexpr unsigned kFirstSegmentWords = 128;
  // The thread's scratch, grown (up to kMaxScratchWords) to hold a request
  // of `words`: a thread that sends batches builds them without allocating.
  static proto::Scratch& thread_scratch(size_t words) {
    thread_local proto::Scratch scratch(kScratchWords);
    scratch.grow_to(words, kMaxScratchWords);
    return scratch;
  }
  static constexpr size_t kScratchWords = 1024;
  static constexpr size_t kMaxScratchWords = size_t{32} << 10;  // 256 KiB
  proto::ScratchBuilder scratch;
  capnp::MallocMessageBuilder& builder;
  wire::Request::Builder root = builder.initRoot<wire::Request>();
};

size_t message_bytes(const OutgoingMessage& message, bool body_out_of_line) {
  size_t bytes = (body_out_of_line ? 0 : message.body().size()) + 64;
  for (const auto& d : message.descriptors()) {
    bytes += 32;
    if (const auto* ports = std::get_if<OolPortsDescriptor>(&d)) bytes += 4 * ports->names.size();
  }
  return bytes;
}

// Copies `text` into a Text field (a string_view need not end in a NUL,
// which capnp::Text::Reader requires).
void copy_text(capnp::Text::Builder field, std::string_view text) {
  if (!text.empty()) std::memcpy(field.begin(), text.data(), text.size());
}

template <typename Builder>
void set_service(Builder builder, std::string_view service) {
  copy_text(builder.initName(static_cast<unsigned>(service.size())), service);
}

std::string command_name() {
  std::ifstream comm("/proc/self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// A send that got this far took the message (and its rights) with it.
bool send_consumed(Status status) {
  return status == Status::kSuccess || status == Status::kSendWillNotify;
}

// For send_receive: the receive phase's statuses mean the send happened.
bool send_receive_consumed(Status status) {
  const auto v = static_cast<uint32_t>(status);
  return send_consumed(status) || (v & 0xfffff000u) == 0x10004000u;
}

}  // namespace

// ---- cancelling ------------------------------------------------------------------

namespace detail {

// What a Canceller's copies share: whether it was used, and the requests of
// the calls in progress with it (by id, once their frames are written, so a
// cancel never overtakes its request on the socket), with their tasks.
struct CancelState {
  std::mutex mu;
  bool cancelled = false;
  std::vector<std::pair<uint64_t, std::weak_ptr<Task>>> in_flight;

  static void post(const std::weak_ptr<Task>& task, uint64_t id) noexcept {
    if (auto t = task.lock()) t->post_cancel(id);
  }
};

}  // namespace detail

Canceller Canceller::create() {
  Canceller c;
  c.state_ = std::make_shared<detail::CancelState>();
  return c;
}

void Canceller::cancel() const noexcept {
  if (!state_) return;
  std::vector<std::pair<uint64_t, std::weak_ptr<Task>>> targets;
  {
    std::lock_guard<std::mutex> guard(state_->mu);
    state_->cancelled = true;
    targets.swap(state_->in_flight);
  }
  for (const auto& [id, task] : targets) detail::CancelState::post(task, id);
}

bool Canceller::cancelled() const noexcept {
  if (!state_) return false;
  std::lock_guard<std::mutex> guard(state_->mu);
  return state_->cancelled;
}

void Task::post_cancel(uint64_t request_id) noexcept {
  try {
    Request request;
    request.root.setCancel(request_id);
    connection_->post(request.builder);
  } catch (...) {
    // Out of memory: the call waits for its own outcome.
  }
}

namespace {

// This thread's last refusal by a limit (last_refused_limit()).
thread_local std::string t_refused_limit;

void note_refused_limit(const std::string& limit) {
  if (!limit.empty() || !t_refused_limit.empty()) t_refused_limit = limit;
}

// The outcome of one round trip, as a Result: the transport's failure, the
// daemon's status (naming the limit that refused it), or the reply.
class TaskCall {
 public:
  TaskCall(detail::Connection& connection, capnp::MessageBuilder& request,
           std::vector<UniqueFd> fds = {})
      : connection_(connection) {
    transport_ = connection.call(request, std::move(fds), &reply_);
    note_refused_limit(reply_.limit);
  }
  // A call `canceller` may give up; if it has been used already the call
  // does not happen and its status is `interrupted`.
  TaskCall(detail::Connection& connection, capnp::MessageBuilder& request,
           std::vector<UniqueFd> fds, Task& task, const Canceller& canceller, Status interrupted)
      : connection_(connection) {
    detail::CancelState* state = canceller.state().get();
    if (state == nullptr) {
      transport_ = connection.call(request, std::move(fds), &reply_);
      note_refused_limit(reply_.limit);
      return;
    }
    if (canceller.cancelled()) {
      note_refused_limit({});
      transport_ = interrupted;
      return;
    }
    uint64_t sent_id = 0;
    std::weak_ptr<Task> weak = task.weak_from_this();
    // Runs inside Connection::call, which must not see an exception.
    transport_ = connection.call(request, std::move(fds), &reply_, [&](uint64_t id) noexcept {
      sent_id = id;
      bool now = false;
      try {
        std::lock_guard<std::mutex> guard(state->mu);
        now = state->cancelled;
        if (!now) state->in_flight.emplace_back(id, weak);
      } catch (...) {
        return;  // out of memory: this call cannot be cancelled
      }
      if (now) detail::CancelState::post(weak, id);  // cancelled while it was being written
    });
    note_refused_limit(reply_.limit);
    std::lock_guard<std::mutex> guard(state->mu);
    std::erase_if(state->in_flight, [&](const auto& entry) { return entry.first == sent_id; });
  }
  Status status() const { return ok(transport_) ? reply_.status : transport_; }
  bool answered(wire::Reply::Which which) const {
    return ok(transport_) && ok(reply_.status) && reply_.which == which;
  }
  // A message delivered with MACH_RCV_HEADER_ERROR or MACH_RCV_BODY_ERROR:
  // some of its rights could not be named (they arrive as MACH_PORT_NULL).
  bool delivered_with_error() const {
    return ok(transport_) && reply_.which == wire::Reply::MESSAGE &&
           (reply_.status == Status::kRcvHeaderError || reply_.status == Status::kRcvBodyError);
  }
  ReplyData& reply() { return reply_; }

  // The failure as a Result: why, in detail, if we know.
  template <typename T>
  Result<T> error() const {
    if (!ok(transport_)) {
      if (transport_ == Status::kInvalidTask) {
        return Result<T>(transport_, "not connected to portd: " + connection_.failure());
      }
      return Result<T>(transport_);
    }
    if (ok(reply_.status)) {
      return Result<T>(Status::kFailure, "the daemon's reply does not carry the expected value");
    }
    if (!reply_.limit.empty()) {
      return Result<T>(reply_.status, "refused by the " + reply_.limit + " limit");
    }
    return Result<T>(reply_.status);
  }

 private:
  detail::Connection& connection_;
  Status transport_;
  ReplyData reply_;
};

// Most fds one frame may carry: the daemon's limit (proto::FrameLimits).
constexpr size_t kMaxFdsPerFrame = proto::FrameLimits{}.max_fds_per_frame;

// Most messages the library puts in one batch request.
constexpr uint32_t kMaxBatch = 1024;

// Room a batch request leaves in a frame for what message_bytes() does not
// count (the request's own fields, list and segment overhead).
constexpr size_t kBatchFrameHeadroom = 4096;

UniqueFd dup_fd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

}  // namespace

// ---- connecting ----------------------------------------------------------------

std::string last_refused_limit() { return t_refused_limit; }

std::string resolve_socket_path(std::string_view explicit_path) {
  return proto::resolve_socket_path(explicit_path);
}

Task::Task(std::unique_ptr<detail::Connection> connection, std::string socket_path)
    : connection_(std::move(connection)), socket_path_(std::move(socket_path)) {}

Task::~Task() = default;

Result<std::shared_ptr<Task>> Task::connect(const ConnectOptions& options) {
  std::string path = proto::resolve_socket_path(options.socket_path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Result<std::shared_ptr<Task>>(Status::kInvalidArgument, "socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());

  proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Result<std::shared_ptr<Task>>(Status::kResourceShortage,
                                         std::string("socket: ") + std::strerror(errno));
  }
  int r;
  do {
    r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    const int err = errno;
    const Status status =
        (err == EACCES || err == EPERM) ? Status::kNoAccess : Status::kInvalidTask;
    return Result<std::shared_ptr<Task>>(status, std::strerror(err));
  }

  std::shared_ptr<Task> task(
      new Task(std::make_unique<detail::Connection>(std::move(fd)), std::move(path)));
  task->ool_threshold_.store(options.ool_threshold);
  task->pool_ = std::make_shared<detail::VolatilePool>(options.volatile_pool_bytes);

  Request request;
  auto hello = request.root.initHello();
  const uint32_t asked = options.protocol_version != 0
                             ? std::min<uint32_t>(options.protocol_version, wire::PROTOCOL_VERSION)
                             : wire::PROTOCOL_VERSION;
  hello.setVersion(asked);
  const std::string command = options.command.empty() ? command_name() : options.command;
  copy_text(hello.initCommand(static_cast<unsigned>(command.size())), command);
  TaskCall call(*task->connection_, request.builder);
  if (!call.answered(wire::Reply::HELLO)) {
    auto error = call.error<std::shared_ptr<Task>>();
    return Result<std::shared_ptr<Task>>(error.status(), "hello refused: " + error.detail());
  }
  const auto& info = call.reply().hello;
  if (info.version == 0 || info.version > asked) {
    return Result<std::shared_ptr<Task>>(Status::kNotSupported,
                                         "the daemon speaks protocol version " +
                                             std::to_string(info.version) + ", this library " +
                                             std::to_string(wire::PROTOCOL_VERSION));
  }
  task->version_ = info.version;
  task->task_id_ = info.task;
  task->daemon_pid_ = info.daemon_pid;
  task->max_inline_body_ = info.max_inline_body;
  task->max_frame_bytes_ =
      info.max_frame_bytes != 0 ? info.max_frame_bytes : proto::FrameLimits{}.max_frame_bytes;
  if (info.max_frame_bytes != 0) task->connection_->set_max_frame_bytes(info.max_frame_bytes);
  // Batch requests: version 2 on, never more than the library would put in
  // one frame's worth of statuses.
  if (info.version >= 2) task->max_batch_ = std::min<uint32_t>(info.max_batch, kMaxBatch);
  return task;
}

bool Task::connected() const { return connection_->alive(); }

size_t Task::ool_threshold() const {
  return std::min<size_t>(ool_threshold_.load(std::memory_order_relaxed), max_inline_body_);
}

void Task::set_ool_threshold(size_t bytes) {
  ool_threshold_.store(bytes, std::memory_order_relaxed);
}

Result<VolatileBuffer> Task::volatile_buffer(size_t size) {
  auto lease = pool_->lend(size);
  if (!lease) return Result<VolatileBuffer>(lease.status(), lease.detail());
  return VolatileBuffer(std::move(*lease));
}

VolatilePoolStats Task::volatile_pool_stats() { return pool_->stats(); }

std::string Task::failure() const { return connection_->failure(); }

void Task::disconnect() { connection_->shutdown("disconnected by the client"); }

void Task::release_nowait(Name name, Right right, bool deallocate) noexcept {
  try {
    Request request;
    if (deallocate) {
      request.root.initDeallocate().setName(name);
    } else {
      auto mod = request.root.initModRefs();
      mod.setName(name);
      mod.setRight(static_cast<uint32_t>(right));
      mod.setDelta(-1);
    }
    connection_->post(request.builder);
  } catch (...) {
    // Out of memory: the right stays until the task ends.
  }
}

// ---- port management ----------------------------------------------------------

Result<Name> Task::allocate(Right right) {
  Request request;
  request.root.initAllocate().setRight(static_cast<uint32_t>(right));
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::NAME)) return call.error<Name>();
  return call.reply().name;
}

Status Task::deallocate(Name name) {
  Request request;
  request.root.initDeallocate().setName(name);
  return TaskCall(*connection_, request.builder).status();
}

Status Task::mod_refs(Name name, Right right, int32_t delta) {
  Request request;
  auto mod = request.root.initModRefs();
  mod.setName(name);
  mod.setRight(static_cast<uint32_t>(right));
  mod.setDelta(delta);
  return TaskCall(*connection_, request.builder).status();
}

Status Task::destroy(Name name) {
  Request request;
  request.root.initDestroy().setName(name);
  return TaskCall(*connection_, request.builder).status();
}

Status Task::insert_right(Name name, Name right, Disposition disposition) {
  Request request;
  auto insert = request.root.initInsertRight();
  insert.setName(name);
  insert.setRight(right);
  insert.setDisposition(static_cast<uint8_t>(disposition));
  return TaskCall(*connection_, request.builder).status();
}

Result<ExtractedRight> Task::extract_right(Name name, Disposition disposition) {
  Request request;
  auto extract = request.root.initExtractRight();
  extract.setName(name);
  extract.setDisposition(static_cast<uint8_t>(disposition));
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::EXTRACTED)) return call.error<ExtractedRight>();
  return call.reply().extracted;
}

Result<uint32_t> Task::get_refs(Name name, Right right) {
  Request request;
  auto get = request.root.initGetRefs();
  get.setName(name);
  get.setRight(static_cast<uint32_t>(right));
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::REFS)) return call.error<uint32_t>();
  return call.reply().value;
}

Result<uint32_t> Task::type(Name name) {
  Request request;
  request.root.initType().setName(name);
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::TYPE)) return call.error<uint32_t>();
  return call.reply().value;
}

Result<std::vector<NameInfo>> Task::names() {
  Request request;
  request.root.setNames();
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::NAMES)) return call.error<std::vector<NameInfo>>();
  return std::move(call.reply().names);
}

Result<PortStatus> Task::get_attributes(Name name) {
  Request request;
  request.root.initGetAttributes().setName(name);
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::ATTRIBUTES)) return call.error<PortStatus>();
  return call.reply().attributes;
}

Status Task::set_qlimit(Name name, uint32_t qlimit) {
  Request request;
  auto set = request.root.initSetAttributes();
  set.setName(name);
  set.setQlimit(qlimit);
  return TaskCall(*connection_, request.builder).status();
}

Status Task::move_member(Name member, Name after) {
  Request request;
  auto move = request.root.initMoveMember();
  move.setMember(member);
  move.setAfter(after);
  return TaskCall(*connection_, request.builder).status();
}

Result<Name> Task::request_notification(Name name, Notification variant, uint32_t sync, Name notify,
                                        Disposition notify_disposition) {
  Request request;
  auto req = request.root.initRequestNotification();
  req.setName(name);
  req.setVariant(static_cast<int32_t>(variant));
  req.setSync(sync);
  req.setNotify(notify);
  req.setNotifyDisposition(static_cast<uint8_t>(notify_disposition));
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::NAME)) return call.error<Name>();
  return call.reply().name;
}

// ---- messaging ----------------------------------------------------------------

Status Task::check_message(const OutgoingMessage& message) const {
  if (!ok(message.problem_)) return message.problem_;
  if (message.task_ != nullptr && message.task_ != this) return Status::kSendInvalidRight;
  return Status::kSuccess;
}

Status Task::prepare_regions(const OutgoingMessage& message, detail::OutgoingRegions* out) const {
  const bool body_out_of_line = message.body().size() > ool_threshold();
  size_t needed = body_out_of_line ? 1 : 0;
  for (const auto& d : message.descriptors())
    if (const auto* region = std::get_if<OolRegion>(&d)) needed += region->pooled() ? 2 : 1;
  if (needed > kMaxFdsPerFrame) return Status::kSendTooLarge;
  if (body_out_of_line) {
    auto body = OolRegion::copy(message.body());
    if (!body) return body.status();
    out->body = std::move(*body);
  }

  // The message keeps its regions until the send succeeds: the frame gets
  // duplicates, which the writer closes once they are sent.
  auto add = [&](const OolRegion& region) {
    UniqueFd fd = dup_fd(region.fd());
    if (!fd) return false;
    out->fds.push_back(std::move(fd));
    if (region.pooled()) {
      int ends[2];
      if (::pipe2(ends, O_CLOEXEC) != 0) return false;
      out->release_reads.emplace_back(ends[0]);
      out->fds.emplace_back(ends[1]);
    }
    return true;
  };
  for (const auto& d : message.descriptors())
    if (const auto* region = std::get_if<OolRegion>(&d); region != nullptr && !add(*region))
      return Status::kResourceShortage;
  if (out->body && !add(*out->body)) return Status::kResourceShortage;
  return Status::kSuccess;
}

void Task::regions_sent(OutgoingMessage& message, detail::OutgoingRegions& regions) {
  size_t next = 0;
  for (auto& d : message.descriptors_) {
    auto* region = std::get_if<OolRegion>(&d);
    if (region == nullptr || !region->pooled()) continue;
    region->lease_->sent(std::move(regions.release_reads[next++]));
  }
}

Status Task::map_regions(detail::ReplyData& reply, Status status) {
  if (!reply.message) return status;
  return map_regions(*reply.message, reply.regions, status);
}

Status Task::map_regions(ReceivedMessage& m, std::vector<detail::IncomingRegion>& regions,
                         Status status) {
  bool failed = false;
  for (auto& r : regions) {
    auto mapped = MappedRegion::map(r.fd.get(), r.size, r.is_volatile, std::move(r.release));
    r.fd.reset();
    if (r.is_body) {
      // The body, sent out of line: it follows the inline bytes.
      if (!mapped) {
        failed = true;
        continue;
      }
      const auto bytes = mapped->bytes();
      m.body.insert(m.body.end(), bytes.begin(), bytes.end());
      continue;
    }
    if (!mapped) {
      failed = true;
      continue;
    }
    std::get<ReceivedOolMemory>(m.descriptors[r.index]).memory = std::move(*mapped);
  }
  regions.clear();
  return failed && ok(status) ? Status::kRcvBodyError : status;
}

Status Task::send(OutgoingMessage& message, const SendOptions& options) {
  if (Status s = check_message(message); !ok(s)) return s;
  detail::OutgoingRegions regions;
  if (Status s = prepare_regions(message, &regions); !ok(s)) return s;
  Request request(message_bytes(message, regions.body.has_value()));
  auto send = request.root.initSend();
  if (Status s = detail::encode_message(message, regions.body ? &*regions.body : nullptr,
                                        send.initMessage());
      !ok(s))
    return s;
  detail::encode_send_options(options, detail::thread_id(), send.initOptions());
  request.root.setFdCount(static_cast<uint16_t>(regions.fds.size()));
  const Status status = TaskCall(*connection_, request.builder, std::move(regions.fds), *this,
                                 options.cancel, Status::kSendInterrupted)
                            .status();
  if (send_consumed(status)) {
    regions_sent(message, regions);
    message.consumed();
  }
  return status;
}

namespace {

// A receive's outcome, regions mapped.
Result<ReceivedMessage> received(TaskCall& call,
                                 Status (*map_regions)(detail::ReplyData&, Status)) {
  if (call.answered(wire::Reply::MESSAGE) || call.delivered_with_error()) {
    const Status s = map_regions(call.reply(), call.status());
    if (ok(s)) return std::move(*call.reply().message);
    return Result<ReceivedMessage>::with_value(s, std::move(*call.reply().message));
  }
  if (call.status() == Status::kRcvTooLarge) {
    ReceivedMessage too_large;
    too_large.needed_size = call.reply().needed_size;
    return Result<ReceivedMessage>::with_value(Status::kRcvTooLarge, std::move(too_large));
  }
  return call.error<ReceivedMessage>();
}

}  // namespace

Result<ReceivedMessage> Task::receive(Name name, const ReceiveOptions& options) {
  Request request;
  detail::encode_receive_options(name, options, request.root.initReceive());
  TaskCall call(*connection_, request.builder, {}, *this, options.cancel, Status::kRcvInterrupted);
  return received(call, &Task::map_regions);
}

Result<ReceivedMessage> Task::send_receive(OutgoingMessage& message,
                                           const SendOptions& send_options, Name receive_name,
                                           const ReceiveOptions& receive_options) {
  if (Status s = check_message(message); !ok(s)) return s;
  detail::OutgoingRegions regions;
  if (Status s = prepare_regions(message, &regions); !ok(s)) return s;
  Request request(message_bytes(message, regions.body.has_value()));
  auto rpc = request.root.initSendReceive();
  if (Status s = detail::encode_message(message, regions.body ? &*regions.body : nullptr,
                                        rpc.initMessage());
      !ok(s))
    return s;
  detail::encode_send_options(send_options, detail::thread_id(), rpc.initSendOptions());
  detail::encode_receive_options(receive_name, receive_options, rpc.initReceiveOptions());
  request.root.setFdCount(static_cast<uint16_t>(regions.fds.size()));
  // Either canceller gives the call up, in whichever phase it is.
  const Canceller& canceller = send_options.cancel ? send_options.cancel : receive_options.cancel;
  TaskCall call(*connection_, request.builder, std::move(regions.fds), *this, canceller,
                Status::kSendInterrupted);
  if (send_receive_consumed(call.status())) {
    regions_sent(message, regions);
    message.consumed();
  }
  return received(call, &Task::map_regions);
}

// ---- pipelined messaging --------------------------------------------------------

std::vector<Status> Task::send_batch(std::span<OutgoingMessage> messages,
                                     const SendOptions& options) {
  const size_t n = messages.size();
  std::vector<Status> statuses(n, Status::kSuccess);
  if (options.cancel) {
    std::string limit;
    for (size_t i = 0; i < n; ++i) {
      statuses[i] = send(messages[i], options);
      if (!t_refused_limit.empty()) limit = t_refused_limit;
    }
    note_refused_limit(limit);
    return statuses;
  }
  if (max_batch_ != 0) return send_batched(messages, options);
  std::vector<std::unique_ptr<Request>> requests;
  std::vector<detail::OutgoingRegions> regions(n);
  std::vector<size_t> index;  // message of each request
  requests.reserve(n);
  index.reserve(n);
  const uint64_t thread = detail::thread_id();
  for (size_t i = 0; i < n; ++i) {
    OutgoingMessage& message = messages[i];
    if (Status s = check_message(message); !ok(s)) {
      statuses[i] = s;
      continue;
    }
    if (Status s = prepare_regions(message, &regions[i]); !ok(s)) {
      statuses[i] = s;
      continue;
    }
    auto request = std::make_unique<Request>(message_bytes(message, regions[i].body.has_value()));
    auto send = request->root.initSend();
    if (Status s = detail::encode_message(message, regions[i].body ? &*regions[i].body : nullptr,
                                          send.initMessage());
        !ok(s)) {
      statuses[i] = s;
      continue;
    }
    detail::encode_send_options(options, thread, send.initOptions());
    request->root.setFdCount(static_cast<uint16_t>(regions[i].fds.size()));
    requests.push_back(std::move(request));
    index.push_back(i);
  }
  const size_t m = requests.size();
  std::vector<capnp::MessageBuilder*> builders(m);
  std::vector<std::vector<UniqueFd>> fds(m);
  std::vector<ReplyData> replies(m);
  std::vector<Status> transport(m, Status::kSuccess);
  for (size_t k = 0; k < m; ++k) {
    builders[k] = &requests[k]->builder;
    fds[k] = std::move(regions[index[k]].fds);
  }
  connection_->call_batch(builders, fds, replies, transport);
  std::string limit;  // that refused the last message a limit refused
  for (size_t k = 0; k < m; ++k) {
    const size_t i = index[k];
    const Status status = ok(transport[k]) ? replies[k].status : transport[k];
    statuses[i] = status;
    if (ok(transport[k]) && !replies[k].limit.empty()) limit = replies[k].limit;
    if (send_consumed(status)) {
      regions_sent(messages[i], regions[i]);
      messages[i].consumed();
    }
  }
  note_refused_limit(limit);
  return statuses;
}

Result<std::vector<ReceivedMessage>> Task::receive_batch(Name name, size_t max,
                                                         const ReceiveOptions& options) {
  std::vector<ReceivedMessage> out;
  if (max <= 1 || options.cancel) {
    auto one = receive(name, options);
    if (!one) return Result<std::vector<ReceivedMessage>>(one.status(), one.detail());
    out.push_back(std::move(*one));
    return out;
  }
  if (max_batch_ != 0) return receive_batched(name, max, options);
  // The later receives never wait, and leave a message too large for the
  // buffer queued (MACH_RCV_LARGE) rather than destroy it.
  ReceiveOptions rest = options;
  rest.timeout = std::chrono::milliseconds(0);
  rest.large = true;
  std::vector<std::unique_ptr<Request>> requests(max);
  std::vector<capnp::MessageBuilder*> builders(max);
  for (size_t k = 0; k < max; ++k) {
    requests[k] = std::make_unique<Request>();
    detail::encode_receive_options(name, k == 0 ? options : rest, requests[k]->root.initReceive());
    builders[k] = &requests[k]->builder;
  }
  std::vector<std::vector<UniqueFd>> fds(max);
  std::vector<ReplyData> replies(max);
  std::vector<Status> transport(max, Status::kSuccess);
  connection_->call_batch(builders, fds, replies, transport);
  out.reserve(max);
  Status first_error = Status::kSuccess;
  for (size_t k = 0; k < max; ++k) {
    ReplyData& reply = replies[k];
    if (ok(transport[k]) && reply.which == wire::Reply::MESSAGE && reply.message) {
      // Delivered, perhaps with MACH_RCV_HEADER_ERROR or _BODY_ERROR.
      const Status s = map_regions(reply, reply.status);
      if (!ok(s) && ok(first_error)) first_error = s;
      out.push_back(std::move(*reply.message));
      continue;
    }
    if (k != 0) continue;  // a later receive found nothing queued
    if (!ok(transport[k])) {
      if (transport[k] == Status::kInvalidTask)
        return Result<std::vector<ReceivedMessage>>(
            transport[k], "not connected to portd: " + connection_->failure());
      return Result<std::vector<ReceivedMessage>>(transport[k]);
    }
    if (!reply.limit.empty())
      return Result<std::vector<ReceivedMessage>>(reply.status,
                                                  "refused by the " + reply.limit + " limit");
    return Result<std::vector<ReceivedMessage>>(ok(reply.status) ? Status::kFailure : reply.status);
  }
  if (!ok(first_error))
    return Result<std::vector<ReceivedMessage>>::with_value(first_error, std::move(out));
  return out;
}

// ---- batched messaging (protocol version 2) ---------------------------------------

std::vector<Status> Task::send_batched(std::span<OutgoingMessage> messages,
                                       const SendOptions& options) {
  const size_t n = messages.size();
  std::vector<Status> statuses(n, Status::kSuccess);
  std::vector<detail::OutgoingRegions> regions(n);
  std::vector<size_t> ready;  // the messages that go to the daemon, in order
  ready.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    OutgoingMessage& message = messages[i];
    Status s = check_message(message);
    if (ok(s)) s = detail::check_dispositions(message);
    if (ok(s)) s = prepare_regions(message, &regions[i]);
    if (!ok(s)) {
      statuses[i] = s;
      continue;
    }
    ready.push_back(i);
  }

  // Requests of up to max_batch_ messages, each within the frame limit and
  // the fds a frame may carry.
  struct Group {
    size_t begin = 0, end = 0;  // into `ready`
    size_t bytes = 0;
    size_t fds = 0;
  };
  std::vector<Group> groups;
  const size_t frame_room =
      max_frame_bytes_ > kBatchFrameHeadroom ? max_frame_bytes_ - kBatchFrameHeadroom : 0;
  for (size_t k = 0; k < ready.size(); ++k) {
    const size_t i = ready[k];
    const size_t bytes = message_bytes(messages[i], regions[i].body.has_value());
    const size_t fds = regions[i].fds.size();
    if (groups.empty() || groups.back().end - groups.back().begin >= max_batch_ ||
        groups.back().bytes + bytes > frame_room || groups.back().fds + fds > kMaxFdsPerFrame)
      groups.push_back(Group{k, k, 0, 0});
    Group& g = groups.back();
    g.end = k + 1;
    g.bytes += bytes;
    g.fds += fds;
  }

  const uint64_t thread = detail::thread_id();
  const size_t m = groups.size();
  std::vector<std::unique_ptr<Request>> requests(m);
  std::vector<capnp::MessageBuilder*> builders(m);
  std::vector<std::vector<UniqueFd>> fds(m);
  for (size_t g = 0; g < m; ++g) {
    const Group& group = groups[g];
    requests[g] = std::make_unique<Request>(group.bytes + 64);
    auto batch = requests[g]->root.initSendBatch();
    auto list = batch.initMessages(static_cast<unsigned>(group.end - group.begin));
    fds[g].reserve(group.fds);
    for (size_t k = group.begin; k < group.end; ++k) {
      const size_t i = ready[k];
      // Cannot fail: check_dispositions passed.
      detail::encode_message(messages[i], regions[i].body ? &*regions[i].body : nullptr,
                             list[static_cast<unsigned>(k - group.begin)]);
      for (auto& fd : regions[i].fds) fds[g].push_back(std::move(fd));
    }
    detail::encode_send_options(options, thread, batch.initOptions());
    requests[g]->root.setFdCount(static_cast<uint16_t>(group.fds));
    builders[g] = &requests[g]->builder;
  }
  std::vector<ReplyData> replies(m);
  std::vector<Status> transport(m, Status::kSuccess);
  connection_->call_batch(builders, fds, replies, transport);
  std::string limit;  // that refused the last message a limit refused
  for (size_t g = 0; g < m; ++g) {
    const Group& group = groups[g];
    const ReplyData& reply = replies[g];
    const bool answered = ok(transport[g]) && reply.which == wire::Reply::SEND_STATUSES &&
                          reply.send_statuses.size() == group.end - group.begin;
    // A request refused as a whole: every message has its status. A batch
    // limit lowered (by a reload) since hello refuses it before sending
    // anything: then each of its messages goes on its own.
    const bool over_limit = ok(transport[g]) && reply.status == Status::kInvalidArgument &&
                            reply.limit == "batch_messages";
    const Status whole = !ok(transport[g])   ? transport[g]
                         : !ok(reply.status) ? reply.status
                                             : Status::kFailure;
    // The daemon names the limit that refused the last of the request's
    // messages a limit refused (or that refused the request as a whole).
    if (!over_limit && ok(transport[g]) && !reply.limit.empty()) limit = reply.limit;
    for (size_t k = group.begin; k < group.end; ++k) {
      const size_t i = ready[k];
      if (over_limit) {
        statuses[i] = send(messages[i], options);
        if (!t_refused_limit.empty()) limit = t_refused_limit;
        continue;
      }
      const Status status = answered ? reply.send_statuses[k - group.begin] : whole;
      statuses[i] = status;
      if (send_consumed(status)) {
        regions_sent(messages[i], regions[i]);
        messages[i].consumed();
      }
    }
  }
  note_refused_limit(limit);
  return statuses;
}

Result<std::vector<ReceivedMessage>> Task::receive_batched(Name name, size_t max,
                                                           const ReceiveOptions& options) {
  using Batch = Result<std::vector<ReceivedMessage>>;
  // The first request waits as `options` say; more requests (when max is
  // over the daemon's batch limit) take only what is queued, leaving a
  // message too large for the buffer queued.
  ReceiveOptions rest = options;
  rest.timeout = std::chrono::milliseconds(0);
  rest.large = true;
  const size_t m = (max + max_batch_ - 1) / max_batch_;
  std::vector<std::unique_ptr<Request>> requests(m);
  std::vector<capnp::MessageBuilder*> builders(m);
  for (size_t k = 0; k < m; ++k) {
    requests[k] = std::make_unique<Request>();
    auto batch = requests[k]->root.initReceiveBatch();
    detail::encode_receive_options(name, k == 0 ? options : rest, batch.initOptions());
    batch.setMax(static_cast<uint32_t>(std::min<size_t>(max - k * max_batch_, max_batch_)));
    builders[k] = &requests[k]->builder;
  }
  std::vector<std::vector<UniqueFd>> fds(m);
  std::vector<ReplyData> replies(m);
  std::vector<Status> transport(m, Status::kSuccess);
  connection_->call_batch(builders, fds, replies, transport);

  std::vector<ReceivedMessage> out;
  Status first_error = Status::kSuccess;
  for (size_t k = 0; k < m; ++k) {
    ReplyData& reply = replies[k];
    if (ok(transport[k]) && reply.which == wire::Reply::MESSAGES) {
      if (out.empty()) out.reserve(std::min<size_t>(max, reply.batch.size() * m));
      for (auto& entry : reply.batch) {
        // Delivered, perhaps with MACH_RCV_HEADER_ERROR or _BODY_ERROR.
        const Status s = map_regions(entry.message, entry.regions, entry.status);
        if (!ok(s) && ok(first_error)) first_error = s;
        out.push_back(std::move(entry.message));
      }
      continue;
    }
    if (k != 0) continue;  // a later request found nothing queued
    if (!ok(transport[k])) {
      if (transport[k] == Status::kInvalidTask)
        return Batch(transport[k], "not connected to portd: " + connection_->failure());
      return Batch(transport[k]);
    }
    if (reply.status == Status::kInvalidArgument && reply.limit == "batch_messages") {
      // The daemon's batch limit was lowered since hello: one message.
      auto one = receive(name, options);
      if (!one) return Batch(one.status(), one.detail());
      out.push_back(std::move(*one));
      return out;
    }
    if (!reply.limit.empty())
      return Batch(reply.status, "refused by the " + reply.limit + " limit");
    return Batch(ok(reply.status) ? Status::kFailure : reply.status);
  }
  if (!ok(first_error)) return Batch::with_value(first_error, std::move(out));
  return out;
}

// ---- bootstrap ----------------------------------------------------------------

Result<Name> Task::bootstrap_check_in(std::string_view service) {
  Request request;
  set_service(request.root.initBootstrapCheckIn(), service);
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::NAME)) return call.error<Name>();
  return call.reply().name;
}

Status Task::bootstrap_register(std::string_view service, Name port) {
  Request request;
  auto reg = request.root.initBootstrapRegister();
  set_service(reg, service);
  reg.setPort(port);
  return TaskCall(*connection_, request.builder).status();
}

Result<Name> Task::bootstrap_look_up(std::string_view service,
                                     std::optional<std::chrono::milliseconds> timeout) {
  Request request;
  auto look_up = request.root.initBootstrapLookUp();
  set_service(look_up, service);
  look_up.setTimeoutMs(detail::wire_timeout(timeout));
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::NAME)) return call.error<Name>();
  return call.reply().name;
}

Status Task::bootstrap_unregister(std::string_view service) {
  Request request;
  set_service(request.root.initBootstrapUnregister(), service);
  return TaskCall(*connection_, request.builder).status();
}

Result<std::vector<BootstrapEntry>> Task::bootstrap_list() {
  Request request;
  request.root.setBootstrapList();
  TaskCall call(*connection_, request.builder);
  if (!call.answered(wire::Reply::BOOTSTRAP_LIST)) {
    return call.error<std::vector<BootstrapEntry>>();
  }
  return std::move(call.reply().bootstrap);
}

// ---- conveniences ----------------------------------------------------------------

Result<ReceiveRight> Task::make_port() {
  auto name = allocate(Right::kReceive);
  if (!name) return Result<ReceiveRight>(name.status(), name.detail());
  return ReceiveRight::adopt(shared_from_this(), *name);
}

Result<PortSet> Task::make_port_set() {
  auto name = allocate(Right::kPortSet);
  if (!name) return Result<PortSet>(name.status(), name.detail());
  return PortSet::adopt(shared_from_this(), *name);
}

Result<ReceiveRight> Task::check_in(std::string_view service) {
  auto name = bootstrap_check_in(service);
  if (!name) return Result<ReceiveRight>(name.status(), name.detail());
  return ReceiveRight::adopt(shared_from_this(), *name);
}

Result<SendRight> Task::look_up(std::string_view service,
                                std::optional<std::chrono::milliseconds> timeout) {
  auto name = bootstrap_look_up(service, timeout);
  if (!name) return Result<SendRight>(name.status(), name.detail());
  return SendRight::adopt(shared_from_this(), *name);
}

Result<ReceivedMessage> Task::rpc(OutgoingMessage& request, const ReceiveRight& reply_port,
                                  const SendOptions& send_options,
                                  const ReceiveOptions& receive_options) {
  if (reply_port.task().get() != this) return Status::kRcvInvalidName;
  request.set_local(reply_port, Disposition::kMakeSendOnce);
  return send_receive(request, send_options, reply_port.name(), receive_options);
}

}  // namespace portd
