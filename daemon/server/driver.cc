#include "daemon/server/driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <type_traits>

#include "daemon/server/body_pool.h"

namespace portd::server {

namespace {

// Longer timeouts than this (Mach's mach_msg_timeout_t is 32-bit ms) wait
// forever: no timer is armed.
constexpr int64_t kMaxTimeoutMs = int64_t{1} << 32;

// A name reply for allocate, check-in, look-up and the previous notification
// right.
void set_name(wire::Reply::Builder reply, ipc::Name name) { reply.setName(name); }

}  // namespace

Driver::Driver(asio::io_context& io, ipc::Core& core, ReplySink& sink,
               const proto::FrameLimits& frame_limits)
    : io_(io),
      core_(core),
      sink_(sink),
      frame_limits_(frame_limits),
      alive_(std::make_shared<bool>(true)) {}

Driver::~Driver() {
  *alive_ = false;
  // Timers cancel on destruction; their handlers see operation_aborted (or
  // a dead alive_ flag) and touch nothing.
  parked_.clear();
}

size_t Driver::parked_count() const {
  size_t n = batches_.size();
  for (const auto& [token, p] : parked_) n += p.kind != ParkedKind::kBatchSend;
  return n;
}

size_t Driver::timer_count() const {
  size_t n = 0;
  for (const auto& [token, p] : parked_) n += p.timer != nullptr;
  return n;
}

void Driver::tick_clock() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  core_.set_now_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

Status Driver::attach(ipc::TaskId task, const ipc::Credentials& creds) {
  const Status s = core_.task_create(task, creds);
  if (ok(s)) tasks_.try_emplace(task, &nodes_);
  return s;
}

void Driver::detach(ipc::TaskId task) {
  auto it = tasks_.find(task);
  if (it == tasks_.end()) return;
  for (const auto& [request_id, token] : it->second.in_progress) {
    if (auto b = batches_.find(token); b != batches_.end()) {
      // Its waiting message goes with the task, in the core; the rest were
      // never sent.
      parked_.erase(b->second.waiting);
      drop_rest(b->second, true, Status::kSuccess);
      batches_.erase(b);
    }
    parked_.erase(token);
  }
  tasks_.erase(it);
  ipc::Effects& fx = fx_;
  core_.task_destroy(task, fx);
  absorb(fx);
  drain();
}

// ---------------------------------------------------------------------------
// Requests

void Driver::handle(ipc::TaskId task, DecodedRequest&& request, std::vector<proto::UniqueFd> fds) {
  auto it = tasks_.find(task);
  if (it == tasks_.end()) return;  // not attached: the connection checks hello first
  TaskState& state = it->second;
  const uint64_t id = request.id;

  if (request.refused()) {
    if (request.carries_message) core_.count_refused_send();
    reply_status(task, id, request.refusal.status, request.refusal.limit);
    return;  // fds close here
  }
  if (state.in_progress.count(id) != 0) {
    reply_status(task, id, Status::kInvalidArgument);
    return;
  }
  tick_clock();

  std::visit(
      [&](auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, req::Cancel>) {
          do_cancel(task, state, id, body);
        } else if constexpr (std::is_same_v<T, req::Send>) {
          do_send(task, id, body.message, body.options, std::move(fds), nullptr);
        } else if constexpr (std::is_same_v<T, req::SendReceive>) {
          do_send(task, id, body.message, body.send, std::move(fds), &body.receive);
        } else if constexpr (std::is_same_v<T, req::Receive>) {
          do_receive(task, id, body.options);
        } else if constexpr (std::is_same_v<T, req::SendBatch>) {
          do_send_batch(task, state, id, body, std::move(fds));
        } else if constexpr (std::is_same_v<T, req::ReceiveBatch>) {
          do_receive_batch(task, id, body.options, body.max);
        } else if constexpr (std::is_same_v<T, req::BootstrapLookUp>) {
          do_look_up(task, id, body);
        } else if constexpr (std::is_same_v<T, req::Hello>) {
          // A second hello: the protocol is already negotiated.
          reply_status(task, id, Status::kInvalidArgument);
        } else if constexpr (std::is_same_v<T, std::monostate>) {
          reply_status(task, id, Status::kInvalidArgument);
        } else {
          RequestBody& whole = request.body;
          do_simple(task, id, whole);
        }
      },
      request.body);
  drain();
}

void Driver::do_cancel(ipc::TaskId task, TaskState& state, uint64_t id, const req::Cancel& r) {
  auto it = state.in_progress.find(r.target);
  if (it == state.in_progress.end()) {
    // Finished already (its reply is on its way) or never existed.
    reply_status(task, id, Status::kNotFound);
    return;
  }
  ipc::Effects& fx = fx_;
  if (auto b = batches_.find(it->second); b != batches_.end()) {
    // A sendBatch: its waiting message is interrupted, and its completion
    // ends the batch (the rest are interrupted unsent) and answers it.
    b->second.interrupted = true;
    core_.cancel(b->second.waiting, fx);
    absorb(fx);
  } else {
    core_.cancel(it->second, fx);
    absorb(fx);
  }
  drain();  // the cancelled request's own reply goes first
  reply_status(task, id, Status::kSuccess);
}

Status Driver::attach_ool(ipc::MessageIn& message, std::vector<proto::UniqueFd>& fds,
                          std::string* why) {
  // The codec checked that the frame brought exactly the fds the OOL
  // descriptors take: the region's, then its release fd if it has one. All
  // are checked before any is registered; every fd closes with `fds` if one
  // is refused.
  size_t next = 0;
  for (size_t i = 0; i < message.descriptors.size(); ++i) {
    auto* ool = std::get_if<ipc::OolIn>(&message.descriptors[i]);
    if (ool == nullptr) continue;
    const std::string which =
        ool->is_body ? "out-of-line body" : "descriptor " + std::to_string(i) + " (memory)";
    if (next + ool->fds() > fds.size()) {
      *why = which + ": its fd is missing";
      return Status::kSendInvalidMemory;
    }
    if (!ok(check_ool_fd(fds[next].get(), ool->size, ool->is_volatile, why)) ||
        (ool->release_signal && !ok(check_release_fd(fds[next + 1].get(), why)))) {
      *why = which + ": " + *why;
      return Status::kSendInvalidMemory;
    }
    next += ool->fds();
  }
  next = 0;
  for (auto& d : message.descriptors) {
    auto* ool = std::get_if<ipc::OolIn>(&d);
    if (ool == nullptr) continue;
    AttachmentFds entry;
    entry.region = std::move(fds[next++]);
    if (ool->release_signal) entry.release = std::move(fds[next++]);
    ool->attachment = attachments_.add(std::move(entry));
  }
  return Status::kSuccess;
}

void Driver::release_ool(const ipc::MessageIn& message) {
  for (const auto& d : message.descriptors)
    if (const auto* ool = std::get_if<ipc::OolIn>(&d); ool != nullptr && ool->attachment != 0)
      attachments_.release(ool->attachment);
}

void Driver::release_ool(const ipc::MessageOut& message) {
  for (const auto& d : message.descriptors)
    if (const auto* ool = std::get_if<ipc::OolOut>(&d)) attachments_.release(ool->attachment);
}

void Driver::do_send(ipc::TaskId task, uint64_t id, ipc::MessageIn& message,
                     const ipc::SendOptions& options, std::vector<proto::UniqueFd> fds,
                     const ipc::ReceiveOptions* then_receive) {
  std::string why;
  if (Status s = attach_ool(message, fds, &why); !ok(s)) {
    spdlog::debug("task {}: request {} refused: {} ({})", task, id, why, status_name(s));
    core_.count_refused_send();
    reply_status(task, id, s);
    return;
  }
  const ipc::WaitToken token = next_token_++;
  ipc::Effects& fx = fx_;
  const Status s = core_.send(task, message, options, token, fx);
  const ipc::Limit limit = refused_limit(s);
  absorb(fx);  // completions wait in pending_, after this request's own reply
  if (s == Status::kSendInProgress) {
    park(token, task, id, then_receive ? ParkedKind::kSendThenReceive : ParkedKind::kSend,
         options.timeout_ms, then_receive);
  } else if (s == Status::kSendWillNotify) {
    // Cached: the core owns the message (and its attachments) now. As in GNU
    // Mach, the status ends a send-then-receive before its receive.
    reply_status(task, id, s);
  } else if (!ok(s)) {
    // Nothing was consumed: the attachments are still ours.
    release_ool(message);
    reply_status(task, id, s, limit);
  } else if (then_receive != nullptr) {
    do_receive(task, id, *then_receive);
  } else {
    reply_status(task, id, s);
  }
}

void Driver::do_send_batch(ipc::TaskId task, TaskState& state, uint64_t id, req::SendBatch& r,
                           std::vector<proto::UniqueFd> fds) {
  SendBatchState batch;
  batch.task = task;
  batch.request_id = id;
  batch.request = std::move(r);
  batch.fds = std::move(fds);
  batch.statuses.assign(batch.request.messages.size(), Status::kSuccess);
  const int64_t timeout_ms = batch.request.options.timeout_ms;
  if (timeout_ms > 0 && timeout_ms <= kMaxTimeoutMs) {
    batch.has_deadline = true;
    batch.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  const ipc::WaitToken batch_token = next_token_++;
  if (run_batch(batch_token, batch)) {
    reply_send_batch(task, id, batch);
    return;
  }
  state.in_progress[id] = batch_token;
  batches_.emplace(batch_token, std::move(batch));
}

ipc::SendCharge Driver::charge_of(const SendBatchState& batch, size_t i) {
  const ipc::MessageIn& m = batch.request.messages[i];
  ipc::SendCharge c;
  c.messages = 1;
  c.bytes = m.body.size();
  for (const auto& d : m.descriptors)
    if (const auto* ool = std::get_if<ipc::OolIn>(&d)) c.ool_bytes += ool->size;
  c.fds = batch.request.fd_counts[i];
  return c;
}

void Driver::hold_rest(SendBatchState& batch, size_t from) {
  const size_t n = batch.request.messages.size();
  charges_.clear();
  for (size_t k = from; k < n; ++k)
    charges_.push_back(batch.request.refusals[k].status == Status::kSuccess ? charge_of(batch, k)
                                                                            : ipc::SendCharge{});
  core_.hold_charges(batch.task, charges_, &batch.held, &refused_by_);
  batch.held_from = from;
  for (size_t k = from; k < n; ++k) {
    Refusal& refusal = batch.request.refusals[k];
    // Refused as its send would be, with the messages before it queued or
    // waiting.
    if (refusal.status == Status::kSuccess && !batch.held[k - from]) {
      refusal.status = Status::kSendNoBuffer;
      refusal.limit = refused_by_[k - from];
    }
  }
}

void Driver::release_held(SendBatchState& batch) {
  if (batch.held_from == SIZE_MAX) return;
  ipc::SendCharge total;
  // (A message's flag is cleared once its send has taken or given back its
  // hold.)
  for (size_t k = batch.held_from; k < batch.request.messages.size(); ++k)
    if (batch.held[k - batch.held_from]) total += charge_of(batch, k);
  core_.release_charges(batch.task, total);
  batch.held_from = SIZE_MAX;
  batch.held.clear();
}

void Driver::drop_rest(SendBatchState& batch, bool sender_died, Status status) {
  release_held(batch);
  const size_t n = batch.request.messages.size();
  for (size_t i = batch.next; i < n; ++i) {
    const Refusal& refused = batch.request.refusals[i];
    if (refused.status != Status::kSuccess) {
      core_.count_refused_send();
      set_outcome(batch, i, refused.status, refused.limit);
    } else if (sender_died) {
      core_.count_dropped_sends(1);
    } else {
      core_.count_refused_send();
      batch.statuses[i] = status;
    }
  }
  batch.next = n;
}

bool Driver::run_batch(ipc::WaitToken batch_token, SendBatchState& batch) {
  if (batch.interrupted) {
    drop_rest(batch, false, Status::kSendInterrupted);
    return true;
  }
  req::SendBatch& r = batch.request;
  const size_t n = r.messages.size();
  std::vector<proto::UniqueFd> mine;
  std::string why;
  ipc::Effects& fx = fx_;
  while (batch.next < n) {
    const size_t i = batch.next++;
    // This message's fds, in frame order (the codec checked the total).
    mine.clear();
    for (size_t k = 0; k < r.fd_counts[i]; ++k)
      mine.push_back(std::move(batch.fds[batch.next_fd++]));
    if (r.refusals[i].status != Status::kSuccess) {
      core_.count_refused_send();
      set_outcome(batch, i, r.refusals[i].status, r.refusals[i].limit);
      continue;  // its fds close
    }
    // A held message's send adopts its hold; a refused one gives it back.
    const bool held = i >= batch.held_from && batch.held[i - batch.held_from];
    if (held) batch.held[i - batch.held_from] = 0;
    ipc::MessageIn& message = r.messages[i];
    if (Status s = attach_ool(message, mine, &why); !ok(s)) {
      spdlog::debug("task {}: request {} message {} refused: {} ({})", batch.task, batch.request_id,
                    i, why, status_name(s));
      if (held) core_.release_charges(batch.task, charge_of(batch, i));
      core_.count_refused_send();
      batch.statuses[i] = s;
      continue;
    }
    ipc::SendOptions options = r.options;
    options.prepaid = held;
    if (batch.has_deadline) {
      // What is left of the batch's timeout (at least 1 ms while any is).
      const auto left = batch.deadline - std::chrono::steady_clock::now();
      options.timeout_ms =
          left.count() > 0 ? std::chrono::ceil<std::chrono::milliseconds>(left).count() : 0;
    }
    const ipc::WaitToken token = next_token_++;
    const Status s = core_.send(batch.task, message, options, token, fx);
    set_outcome(batch, i, s, refused_limit(s));
    absorb(fx);
    if (s == Status::kSendInProgress) {
      park(token, batch.task, batch.request_id, ParkedKind::kBatchSend, options.timeout_ms, nullptr,
           static_cast<uint32_t>(i), batch_token);
      batch.waiting = token;
      if (batch.held_from == SIZE_MAX) hold_rest(batch, i + 1);
      return false;
    }
    if (!ok(s) && s != Status::kSendWillNotify) {
      release_ool(message);  // nothing was consumed
      if (held) core_.release_charges(batch.task, charge_of(batch, i));
    }
  }
  return true;
}

void Driver::set_outcome(SendBatchState& batch, size_t i, Status status, ipc::Limit limit) {
  batch.statuses[i] = status;
  if (limit != ipc::Limit::kNone) batch.limit = limit;
}

void Driver::reply_send_batch(ipc::TaskId task, uint64_t id, const SendBatchState& batch) {
  const std::vector<Status>& statuses = batch.statuses;
  proto::ScratchBuilder message(scratch_);
  auto reply = message->initRoot<wire::Reply>();
  // The reply's status is the request's (success); its limit is the one
  // that refused the last message a limit refused.
  encode_reply_header(reply, id, Status::kSuccess, batch.limit);
  auto list = reply.initSendStatuses(static_cast<unsigned>(statuses.size()));
  for (size_t i = 0; i < statuses.size(); ++i)
    list.set(static_cast<unsigned>(i), static_cast<int32_t>(statuses[i]));
  sink_.post_reply(task, *message, {});
}

void Driver::do_receive_batch(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options,
                              uint32_t max) {
  const ipc::WaitToken token = next_token_++;
  ipc::MessageOut out;
  uint32_t needed = 0;
  ipc::Effects& fx = fx_;
  const Status s = core_.receive(task, options, token, &out, &needed, fx);
  const ipc::Limit limit = refused_limit(s);
  absorb(fx);
  if (s == Status::kRcvInProgress) {
    park(token, task, id, ParkedKind::kReceiveBatch, options.timeout_ms, &options, max);
  } else if (carries_message(s)) {
    finish_receive_batch(task, id, options, max, out, s, limit);
  } else {
    reply_status(task, id, s, limit, needed);
  }
}

size_t Driver::encoded_bound(const ipc::MessageOut& message) {
  size_t bytes = kEncodedMessageOverhead + ((message.body.size() + 7) & ~size_t{7});
  for (const auto& d : message.descriptors) {
    bytes += kEncodedDescriptorBytes;
    if (const auto* ports = std::get_if<ipc::OolPortsOut>(&d))
      bytes += ((4 * ports->names.size() + 7) & ~size_t{7});
  }
  return bytes;
}

void Driver::finish_receive_batch(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options,
                                  uint32_t max, ipc::MessageOut& first, Status status,
                                  ipc::Limit limit) {
  // Whatever is queued behind the first message, while another surely fits
  // the frame: any message takes at most `worst` bytes (the limits a send
  // is held to), and the core leaves queued one whose regions would take the
  // frame past the fds it may carry (ReceiveOptions::max_fds).
  const ipc::Limits& limits = core_.limits();
  const size_t worst = kEncodedMessageOverhead + limits.max_inline_body +
                       (kEncodedDescriptorBytes + 8) * size_t{limits.max_descriptors};
  // The frame limit clients are told at hello, and never over what libportd
  // accepts in a reply (16 MiB; a daemon may allow larger requests).
  constexpr size_t kClientReplyFrameBytes = size_t{16} << 20;
  const size_t frame = std::min<size_t>(frame_limits_.max_frame_bytes, kClientReplyFrameBytes);
  // The same for fds: never over what libportd accepts in one frame.
  const size_t max_fds =
      std::min<size_t>(frame_limits_.max_fds_per_frame, proto::FrameLimits{}.max_fds_per_frame);
  taken_.clear();
  size_t bytes = 64 + encoded_bound(first);
  size_t fds = 0;
  auto count_fds = [](const ipc::MessageOut& m) {
    size_t n = 0;
    for (const auto& d : m.descriptors)
      if (const auto* ool = std::get_if<ipc::OolOut>(&d)) n += ool->fds();
    return n;
  };
  fds += count_fds(first);
  taken_.push_back(Taken{std::move(first), status, limit});
  ipc::ReceiveOptions rest = options;
  rest.timeout_ms = 0;
  rest.large = true;  // a message too large for the buffer stays queued
  ipc::Effects& fx = fx_;
  while (taken_.size() < max && fds < max_fds && bytes + worst <= frame) {
    rest.max_fds = max_fds - fds;
    // Received in place: a message is not moved once more.
    Taken& next = taken_.emplace_back();
    uint32_t needed = 0;
    const Status s = core_.receive(task, rest, next_token_++, &next.message, &needed, fx);
    absorb(fx);
    if (!carries_message(s)) {  // nothing more queued, or too large
      taken_.pop_back();
      break;
    }
    next.status = s;
    next.limit = refused_limit(s);
    bytes += encoded_bound(next.message);
    fds += count_fds(next.message);
  }

  // The OOL fds leave the table and travel with the reply, message after
  // message, each in descriptor order.
  std::vector<proto::UniqueFd> reply_fds;
  std::vector<proto::UniqueFd> its;
  for (Taken& t : taken_) {
    its.clear();
    if (!take_ool_fds(t.message, &its)) {
      // Our bug (see reply_message): the message goes without its regions,
      // whose fds close here.
      spdlog::error("task {}: received message refers to an unknown attachment", task);
      std::erase_if(t.message.descriptors,
                    [](const auto& d) { return std::holds_alternative<ipc::OolOut>(d); });
      t.status = Status::kRcvBodyError;
      continue;
    }
    for (auto& fd : its) reply_fds.push_back(std::move(fd));
  }
  // `bytes` bounds the reply: a batch larger than the scratch gets one heap
  // segment of that size rather than a chain of growing ones.
  proto::ScratchBuilder message(scratch_, bytes / sizeof(capnp::word) + 1);
  auto reply = message->initRoot<wire::Reply>();
  encode_reply_header(reply, id, status, limit);
  reply.setFdCount(static_cast<uint16_t>(reply_fds.size()));
  auto list = reply.initMessages(static_cast<unsigned>(taken_.size()));
  for (size_t i = 0; i < taken_.size(); ++i) {
    Taken& t = taken_[i];
    auto b = list[static_cast<unsigned>(i)];
    b.setStatus(static_cast<int32_t>(t.status));
    if (t.limit != ipc::Limit::kNone) b.setLimit(std::string(ipc::limit_name(t.limit)));
    encode_message(t.message, b.initMessage());
  }
  sink_.post_reply(task, *message, std::move(reply_fds));
  for (Taken& t : taken_) BodyPool::give(std::move(t.message.body));
  taken_.clear();
}

void Driver::do_receive(ipc::TaskId task, uint64_t id, const ipc::ReceiveOptions& options) {
  const ipc::WaitToken token = next_token_++;
  ipc::MessageOut out;
  uint32_t needed = 0;
  ipc::Effects& fx = fx_;
  const Status s = core_.receive(task, options, token, &out, &needed, fx);
  const ipc::Limit limit = refused_limit(s);
  absorb(fx);
  if (s == Status::kRcvInProgress) {
    park(token, task, id, ParkedKind::kReceive, options.timeout_ms);
  } else if (carries_message(s)) {
    reply_message(task, id, out, s, limit);
  } else {
    reply_status(task, id, s, limit, needed);
  }
}

void Driver::do_look_up(ipc::TaskId task, uint64_t id, const req::BootstrapLookUp& r) {
  const ipc::WaitToken token = next_token_++;
  ipc::Name name = ipc::kNameNull;
  ipc::Effects& fx = fx_;
  const Status s = core_.bootstrap_look_up(task, r.name, r.timeout_ms, token, &name, fx);
  const ipc::Limit limit = refused_limit(s);
  absorb(fx);
  if (s == Status::kRcvInProgress) {
    park(token, task, id, ParkedKind::kLookUp, r.timeout_ms);
  } else {
    proto::ScratchBuilder message(scratch_);
    auto reply = message->initRoot<wire::Reply>();
    encode_reply_header(reply, id, s, limit);
    if (ok(s)) set_name(reply, name);
    sink_.post_reply(task, *message, {});
  }
}

void Driver::do_simple(ipc::TaskId task, uint64_t id, RequestBody& body) {
  proto::ScratchBuilder message(scratch_);
  auto reply = message->initRoot<wire::Reply>();
  ipc::Effects& fx = fx_;
  Status s = Status::kSuccess;

  std::visit(
      [&](auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, req::Allocate>) {
          ipc::Name name = ipc::kNameNull;
          s = core_.allocate(task, r.right, &name);
          if (ok(s)) set_name(reply, name);
        } else if constexpr (std::is_same_v<T, req::Deallocate>) {
          s = core_.deallocate(task, r.name, fx);
        } else if constexpr (std::is_same_v<T, req::ModRefs>) {
          s = core_.mod_refs(task, r.name, r.right, r.delta, fx);
        } else if constexpr (std::is_same_v<T, req::Destroy>) {
          s = core_.destroy(task, r.name, fx);
        } else if constexpr (std::is_same_v<T, req::InsertRight>) {
          s = core_.insert_right(task, r.name, r.right, r.disposition, fx);
        } else if constexpr (std::is_same_v<T, req::ExtractRight>) {
          ipc::Name name = ipc::kNameNull;
          ipc::RightType type = ipc::RightType::kNone;
          s = core_.extract_right(task, r.name, r.disposition, &name, &type, fx);
          if (ok(s)) {
            auto e = reply.initExtracted();
            e.setName(name);
            e.setType(static_cast<uint8_t>(type));
          }
        } else if constexpr (std::is_same_v<T, req::GetRefs>) {
          uint32_t refs = 0;
          s = core_.get_refs(task, r.name, r.right, &refs);
          if (ok(s)) reply.setRefs(refs);
        } else if constexpr (std::is_same_v<T, req::Type>) {
          uint32_t type = 0;
          s = core_.type(task, r.name, &type);
          if (ok(s)) reply.setType(type);
        } else if constexpr (std::is_same_v<T, req::Names>) {
          std::vector<ipc::NameInfo> names;
          s = core_.names(task, &names);
          if (ok(s)) encode_names(names, reply);
        } else if constexpr (std::is_same_v<T, req::GetAttributes>) {
          ipc::PortStatus status;
          s = core_.get_attributes(task, r.name, &status);
          if (ok(s)) encode_port_status(status, reply.initAttributes());
        } else if constexpr (std::is_same_v<T, req::SetAttributes>) {
          s = core_.set_qlimit(task, r.name, r.qlimit, fx);
        } else if constexpr (std::is_same_v<T, req::MoveMember>) {
          s = core_.move_member(task, r.member, r.after, fx);
        } else if constexpr (std::is_same_v<T, req::RequestNotification>) {
          ipc::Name previous = ipc::kNameNull;
          s = core_.request_notification(task, r.name, r.variant, r.sync, r.notify,
                                         r.notify_disposition, &previous, fx);
          if (ok(s)) set_name(reply, previous);
        } else if constexpr (std::is_same_v<T, req::BootstrapCheckIn>) {
          ipc::Name name = ipc::kNameNull;
          s = core_.bootstrap_check_in(task, r.name, &name, fx);
          if (ok(s)) set_name(reply, name);
        } else if constexpr (std::is_same_v<T, req::BootstrapRegister>) {
          s = core_.bootstrap_register(task, r.name, r.port, fx);
        } else if constexpr (std::is_same_v<T, req::BootstrapUnregister>) {
          s = core_.bootstrap_unregister(task, r.name, fx);
        } else if constexpr (std::is_same_v<T, req::BootstrapList>) {
          std::vector<ipc::BootstrapEntry> entries;
          s = core_.bootstrap_list(task, &entries);
          if (ok(s)) encode_bootstrap_list(entries, reply);
        } else {
          // Handled by handle() itself; cannot get here.
          s = Status::kInvalidArgument;
        }
      },
      body);

  if (!ok(s)) {
    // Whatever an error path may have started to fill in goes: a fresh
    // header-only reply.
    capnp::MallocMessageBuilder error;
    auto e = error.initRoot<wire::Reply>();
    encode_reply_header(e, id, s, refused_limit(s));
    sink_.post_reply(task, error, {});
  } else {
    encode_reply_header(reply, id, s);
    sink_.post_reply(task, *message, {});
  }
  absorb(fx);
}

// ---------------------------------------------------------------------------
// Parking and timers

void Driver::park(ipc::WaitToken token, ipc::TaskId task, uint64_t request_id, ParkedKind kind,
                  int64_t timeout_ms, const ipc::ReceiveOptions* then_receive, uint32_t index,
                  ipc::WaitToken batch) {
  Parked p;
  p.task = task;
  p.request_id = request_id;
  p.kind = kind;
  p.index = index;
  p.batch = batch;
  if (then_receive != nullptr) p.then_receive = *then_receive;
  if (timeout_ms > 0 && timeout_ms <= kMaxTimeoutMs) {
    p.timer = std::make_unique<asio::steady_timer>(io_, std::chrono::milliseconds(timeout_ms));
    std::weak_ptr<bool> alive = alive_;
    p.timer->async_wait([this, alive, token](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      auto flag = alive.lock();
      if (!flag || !*flag) return;
      on_timer(token);
    });
  }
  parked_.emplace(token, std::move(p));
  // A batch's message is found through its batch (do_send_batch).
  if (kind == ParkedKind::kBatchSend) return;
  if (auto t = tasks_.find(task); t != tasks_.end()) t->second.in_progress[request_id] = token;
}

void Driver::on_timer(ipc::WaitToken token) {
  // The request may have completed after the timer fired and before this
  // handler ran: then the token is gone and there is nothing to do.
  if (parked_.count(token) == 0) return;
  tick_clock();
  ipc::Effects& fx = fx_;
  core_.expire(token, fx);
  absorb(fx);
  drain();
}

// ---------------------------------------------------------------------------
// Effects

void Driver::absorb(ipc::Effects& fx) {
  for (ipc::AttachmentId id : fx.released) attachments_.release(id);
  for (auto& c : fx.completions) {
    if (spare_completions_.empty()) {
      pending_.push_back(std::move(c));
    } else {
      pending_.splice(pending_.end(), spare_completions_, spare_completions_.begin());
      pending_.back() = std::move(c);
    }
  }
  fx.clear();
}

void Driver::drain() {
  // Each completion is handled where it waits (see pending_). A drain
  // reached from within one returns at once: this one goes on with what was
  // added, in the same order.
  if (draining_) return;
  draining_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{draining_};
  while (!pending_.empty()) {
    complete(pending_.front());
    if (spare_completions_.size() < kSpareCompletions) {
      pending_.front().message.reset();  // lets go of what it held
      spare_completions_.splice(spare_completions_.begin(), pending_, pending_.begin());
    } else {
      pending_.pop_front();
    }
  }
}

void Driver::complete(ipc::Completion& c) {
  auto it = parked_.find(c.token);
  if (it == parked_.end()) {
    // Its task detached (the core drops those without completions, but be
    // safe): nobody to tell. A message it carried is dropped with its fds.
    if (c.message) release_ool(*c.message);
    return;
  }
  Parked p = std::move(it->second);
  parked_.erase(it);  // cancels the timer
  if (p.kind != ParkedKind::kBatchSend)
    if (auto t = tasks_.find(p.task); t != tasks_.end()) t->second.in_progress.erase(p.request_id);
  if (p.task != c.task)
    spdlog::error("completion for token {} names task {}, parked by task {}", c.token, c.task,
                  p.task);

  switch (p.kind) {
    case ParkedKind::kSend: reply_status(p.task, p.request_id, c.status, c.limit); break;
    case ParkedKind::kSendThenReceive:
      if (ok(c.status)) {
        do_receive(p.task, p.request_id, p.then_receive);
      } else {
        reply_status(p.task, p.request_id, c.status, c.limit);
      }
      break;
    case ParkedKind::kReceive:
      if (carries_message(c.status) && c.message) {
        reply_message(p.task, p.request_id, *c.message, c.status, c.limit);
      } else {
        if (c.message) release_ool(*c.message);
        reply_status(p.task, p.request_id, c.status, c.limit, c.needed_size);
      }
      break;
    case ParkedKind::kReceiveBatch:
      if (carries_message(c.status) && c.message) {
        finish_receive_batch(p.task, p.request_id, p.then_receive, p.index, *c.message, c.status,
                             c.limit);
      } else {
        if (c.message) release_ool(*c.message);
        reply_status(p.task, p.request_id, c.status, c.limit, c.needed_size);
      }
      break;
    case ParkedKind::kBatchSend: {
      auto b = batches_.find(p.batch);
      if (b == batches_.end()) break;  // cannot happen: the batch outlives its messages
      SendBatchState& batch = b->second;
      set_outcome(batch, p.index, c.status, c.limit);
      batch.waiting = 0;
      if (!run_batch(p.batch, batch)) break;  // the next waits
      if (auto t = tasks_.find(p.task); t != tasks_.end())
        t->second.in_progress.erase(batch.request_id);
      reply_send_batch(p.task, batch.request_id, batch);
      batches_.erase(b);
      break;
    }
    case ParkedKind::kLookUp: {
      proto::ScratchBuilder message(scratch_);
      auto reply = message->initRoot<wire::Reply>();
      encode_reply_header(reply, p.request_id, c.status, c.limit);
      if (ok(c.status)) set_name(reply, c.name);
      sink_.post_reply(p.task, *message, {});
      break;
    }
  }
}

// ---------------------------------------------------------------------------
// Replies

ipc::Limit Driver::refused_limit(Status status) const {
  return ok(status) ? ipc::Limit::kNone : core_.last_refused_limit();
}

void Driver::reply_status(ipc::TaskId task, uint64_t id, Status status, ipc::Limit limit,
                          uint32_t needed_size) {
  proto::ScratchBuilder message(scratch_);
  auto reply = message->initRoot<wire::Reply>();
  encode_reply_header(reply, id, status, limit);
  if (needed_size != 0) reply.setNeededSize(needed_size);
  sink_.post_reply(task, *message, {});
}

void ReplySink::post_reply_with_body(ipc::TaskId task, capnp::MessageBuilder& reply,
                                     std::vector<proto::UniqueFd> fds, std::vector<uint8_t> body,
                                     const void* at) {
  // A placed body's field is still zeros; a referenced one is body itself.
  if (at != nullptr && at != body.data())
    std::memcpy(const_cast<void*>(at), body.data(), body.size());
  post_reply(task, reply, std::move(fds));
}

bool Driver::carries_message(Status status) {
  // A receive whose reply or body rights could not all be named still
  // delivers the message (with those names MACH_PORT_NULL).
  return ok(status) || status == Status::kRcvHeaderError || status == Status::kRcvBodyError;
}

bool Driver::take_ool_fds(const ipc::MessageOut& message, std::vector<proto::UniqueFd>* fds) {
  bool complete = true;
  for (const auto& d : message.descriptors) {
    if (const auto* ool = std::get_if<ipc::OolOut>(&d)) {
      AttachmentFds entry = attachments_.take(ool->attachment);
      if (!entry.region || entry.release.valid() != ool->release_signal) complete = false;
      fds->push_back(std::move(entry.region));
      if (ool->release_signal) fds->push_back(std::move(entry.release));
    }
  }
  return complete;
}

void Driver::reply_message(ipc::TaskId task, uint64_t id, ipc::MessageOut& out, Status status,
                           ipc::Limit limit) {
  // The OOL fds leave the table and travel with the reply; the writer closes
  // them once sent.
  std::vector<proto::UniqueFd> fds;
  if (!take_ool_fds(out, &fds)) {
    // Our bug, not the client's: the core delivered an attachment the shell
    // does not hold. Refuse the message rather than send a short fd list.
    spdlog::error("task {}: received message refers to an unknown attachment", task);
    reply_status(task, id, Status::kRcvBodyError);
    return;
  }
  proto::ScratchBuilder message(scratch_);
  auto reply = message->initRoot<wire::Reply>();
  encode_reply_header(reply, id, status, limit);
  reply.setFdCount(static_cast<uint16_t>(fds.size()));
  static_assert(BodyPool::kMaxMediumCapacity >= kReferenceBodyBytes,
                "a body copied into its reply goes back to the pool");
  if (out.body.size() >= kPlaceBodyBytes) {
    const void* at = encode_message(
        out, reply.initMessage(),
        out.body.size() >= kReferenceBodyBytes ? BodyIn::kReferenced : BodyIn::kPlaced, &*message);
    sink_.post_reply_with_body(task, *message, std::move(fds), std::move(out.body), at);
  } else {
    encode_message(out, reply.initMessage());
    sink_.post_reply(task, *message, std::move(fds));
    BodyPool::give(std::move(out.body));
  }
}

}  // namespace portd::server
