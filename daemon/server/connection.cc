#include "daemon/server/connection.h"

#include <kj/exception.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "daemon/server/body_pool.h"
#include "daemon/server/server.h"

namespace portd::server {

std::string_view close_reason_name(CloseReason reason) {
  switch (reason) {
    case CloseReason::kEof: return "eof";
    case CloseReason::kError: return "error";
    case CloseReason::kViolation: return "violation";
    case CloseReason::kRefused: return "refused";
    case CloseReason::kShutdown: return "shutdown";
  }
  return "unknown";
}

Connection::Connection(Server& server, proto::UniqueFd fd, ipc::TaskId task,
                       const ipc::Credentials& creds)
    : server_(server),
      fd_(std::move(fd)),
      watch_(server.io(), fd_.get(), *this),
      task_(task),
      creds_(creds),
      connected_unix_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()),
      reader_(server.options().frame_limits),
      handshake_timer_(server.io()) {
  writer_.set_body_release(&BodyPool::give);
}

Connection::~Connection() = default;

void Connection::start() {
  const auto timeout = server_.options().handshake_timeout;
  handshake_timer_.expires_after(timeout);
  handshake_timer_.async_wait([self = shared_from_this(), timeout](const asio::error_code& ec) {
    if (ec || self->closed_ || self->hello_done_) return;
    self->close(CloseReason::kRefused, "no hello within " + std::to_string(timeout.count()) +
                                           " ms (connection.handshake_timeout_ms)");
  });
  if (watch_.error()) {
    // epoll refused the socket (ENOMEM, or the user's epoll watch limit).
    // Closed from a posted handler: the server is still adding it.
    asio::post(server_.io(), [self = shared_from_this()] {
      self->close(CloseReason::kError,
                  "cannot watch the socket: " + self->watch_.error().message());
    });
    return;
  }
  schedule_read();
}

// ---------------------------------------------------------------------------
// Reading

void Connection::schedule_read() {
  // A read attempt in a later turn: used to start, to go on after the budget
  // ran out (letting the other connections have theirs) and to resume after
  // backpressure. Waiting for readability is only done once a read found the
  // socket empty.
  if (read_scheduled_ || closed_) return;
  read_scheduled_ = true;
  asio::post(server_.io(), [self = shared_from_this()] {
    self->read_scheduled_ = false;
    self->read_some();
  });
}

void Connection::wait_readable() {
  if (watch_.read_pending() || closed_) return;
  watch_.wait_read(shared_from_this());
}

SocketWatch::Attempt Connection::try_read() {
  // Inside the reactor: only read. What was read is handled by read_ready().
  last_read_ = reader_.read_from(fd_.get());
  if (last_read_ == -EAGAIN) return SocketWatch::Attempt::kAgain;
  if (last_read_ > 0 && !reader_.drained()) return SocketWatch::Attempt::kMore;
  return SocketWatch::Attempt::kDrained;
}

void Connection::read_ready(const asio::error_code& ec) {
  if (closed_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    close(CloseReason::kError, ec.message());
    return;
  }
  if (closing_) return;  // nothing more is read from a refused client
  // Bytes were read while paused (the pause came from another connection's
  // request while this wait was pending): they are handled now, which is at
  // most one read more than the limit; reading then stops until
  // resume_reading().
  Server::ReadBatch batch(server_);  // replies flushed when this returns
  size_t budget = server_.options().read_budget;
  if (!after_read(last_read_, budget)) return;
  while (after_read(reader_.read_from(fd_.get()), budget)) {
  }
}

void Connection::read_some() {
  if (closed_ || paused_ || closing_) return;
  Server::ReadBatch batch(server_);  // replies flushed when this returns
  size_t budget = server_.options().read_budget;
  while (after_read(reader_.read_from(fd_.get()), budget)) {
  }
}

bool Connection::after_read(long n, size_t& budget) {
  if (n == -EAGAIN) {
    wait_readable();
    return false;
  }
  if (n == 0) {
    close(CloseReason::kEof, "end of stream");
    return false;
  }
  if (n == -EPROTO) {
    close(CloseReason::kViolation, reader_.error());
    return false;
  }
  if (n < 0) {
    close(n == -ECONNRESET ? CloseReason::kEof : CloseReason::kError,
          std::string("recvmsg: ") + std::strerror(static_cast<int>(-n)));
    return false;
  }
  if (!process_frames()) return false;
  if (paused_ || closing_) return false;  // resumed by flush()
  if (reader_.drained()) {
    // The socket had no more than this: another recvmsg would only say
    // EAGAIN. New bytes make the socket readable again.
    wait_readable();
    return false;
  }
  if (static_cast<size_t>(n) >= budget) {
    schedule_read();
    return false;
  }
  budget -= static_cast<size_t>(n);
  return true;
}

bool Connection::process_frames() {
  for (;;) {
    switch (reader_.next()) {
      case proto::FrameReader::Next::kNeedMore:
        // A frame's fds arrive with its first bytes, so with no partial
        // frame buffered every fd received must have been claimed.
        if (reader_.buffered_bytes() == 0 && reader_.pending_fds() != 0) {
          close(CloseReason::kViolation,
                std::to_string(reader_.pending_fds()) + " fds sent without a frame declaring them");
          return false;
        }
        return true;
      case proto::FrameReader::Next::kError:
        close(CloseReason::kViolation, reader_.error());
        return false;
      case proto::FrameReader::Next::kFrame:
        if (!on_frame()) return false;
        if (closing_) return true;  // nothing more is read from a refused client
        break;
    }
  }
}

bool Connection::on_frame() {
  DecodedRequest request;
  std::vector<proto::UniqueFd> fds;
  std::string violation;
  // Cap'n Proto throws on malformed input; this is the one place it is
  // caught. Decoding finishes before the core is called, so nothing is left
  // half done.
  kj::Maybe<kj::Exception> exception = kj::runCatchingExceptions([&] {
    auto root = reader_.frame().getRoot<wire::Request>();
    const uint16_t fd_count = root.getFdCount();
    if (!reader_.take_fds(fd_count, &fds)) {
      violation = "frame declares " + std::to_string(fd_count) + " fds but " +
                  std::to_string(reader_.pending_fds()) + " arrived";
      return;
    }
    decode_request(root, server_.options().limits, &request);
  });
  KJ_IF_MAYBE (e, exception) {
    close(CloseReason::kViolation, "malformed frame: " + std::string(e->getDescription().cStr()));
    return false;
  }
  if (!violation.empty()) {
    close(CloseReason::kViolation, violation);
    return false;
  }

  if (!hello_done_) {
    const auto* hello = std::get_if<req::Hello>(&request.body);
    if (hello == nullptr) {
      close(CloseReason::kViolation,
            request.refused() ? "first request refused: " + std::string(request.refusal.why)
                              : std::string("first request is not hello"));
      return false;
    }
    return on_hello(request.id, *hello);
  }
  if (request.refused())
    spdlog::debug("task {}: request {} refused: {} ({})", task_, request.id, request.refusal.why,
                  status_name(request.refusal.status));
  if (!request.refused() && is_introspection(request.body)) {
    server_.introspector().handle(task_, creds_, request.id, request.body);
    return !closed_;
  }
  server_.driver().handle(task_, std::move(request), std::move(fds));
  return !closed_;
}

bool Connection::on_hello(uint64_t id, const req::Hello& hello) {
  command_ = hello.command;
  if (refused_at_hello_ != ipc::Limit::kNone) {
    refuse_and_close(id, Status::kResourceShortage, refused_at_hello_,
                     "uid " + std::to_string(creds_.uid) + " is over its " +
                         std::string(ipc::limit_name(refused_at_hello_)) + " limit of " +
                         std::to_string(server_.options().limits.connections_per_uid) +
                         " (quota.uid.connections)");
    return true;
  }
  if (hello.version == 0) {
    refuse_and_close(id, Status::kNotSupported, ipc::Limit::kNone, "protocol version 0");
    return true;
  }
  const Status s = server_.driver().attach(task_, creds_);
  if (!ok(s)) {
    const ipc::Limit limit = server_.core().last_refused_limit();
    refuse_and_close(
        id, s, limit,
        "task refused by the core: " + std::string(status_name(s)) +
            (limit != ipc::Limit::kNone ? " (" + std::string(ipc::limit_name(limit)) + ")"
                                        : std::string()));
    return true;
  }
  hello_done_ = true;
  handshake_timer_.cancel();
  const uint32_t version = std::min<uint32_t>(hello.version, wire::PROTOCOL_VERSION);

  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, id, Status::kSuccess);
  auto h = reply.initHello();
  h.setVersion(version);
  h.setTask(task_);
  h.setDaemonPid(static_cast<uint32_t>(::getpid()));
  h.setMaxFrameBytes(server_.options().frame_limits.max_frame_bytes);
  h.setMaxInlineBody(server_.options().limits.max_inline_body);
  h.setMaxBatch(server_.options().limits.max_batch);
  send(message);
  spdlog::info("task {} hello: pid {} uid {} command '{}' version {}", task_, creds_.pid,
               creds_.uid, command_, version);
  return true;
}

void Connection::refuse_and_close(uint64_t id, Status status, ipc::Limit limit, std::string why) {
  capnp::MallocMessageBuilder message;
  encode_reply_header(message.initRoot<wire::Reply>(), id, status, limit);
  send(message);
  closing_ = true;
  closing_reason_ = CloseReason::kRefused;
  closing_why_ = std::move(why);
}

// ---------------------------------------------------------------------------
// Writing

void Connection::send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds) {
  if (closed_) return;  // fds close here
  writer_.append(frame, std::move(fds));
  queued();
}

void Connection::send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds,
                      std::vector<uint8_t> body, const void* at) {
  if (closed_) return;  // fds close here
  writer_.append(frame, std::move(fds), std::move(body), at);
  queued();
}

void Connection::queued() {
  const auto& o = server_.options();
  if (!paused_ &&
      (writer_.pending_bytes() > o.max_unsent || writer_.pending_fds() > o.max_unsent_fds)) {
    paused_ = true;
    spdlog::debug("task {}: {} reply bytes and {} fds unsent, reading paused", task_,
                  writer_.pending_bytes(), writer_.pending_fds());
  }
  server_.mark_dirty(*this);
}

void Connection::wait_writable() {
  if (watch_.write_pending() || closed_) return;
  watch_.wait_write(shared_from_this());
}

void Connection::write_ready(const asio::error_code& ec) {
  if (closed_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    close(CloseReason::kError, ec.message());
    return;
  }
  flush();
}

void Connection::flush() {
  if (closed_ || watch_.write_pending()) return;
  const int r = writer_.write_to(fd_.get());
  if (r == 0) {
    if (closing_) {
      close(closing_reason_, closing_why_);
      return;
    }
    if (paused_) resume_reading();
    return;
  }
  if (r == -EAGAIN) {
    const auto& o = server_.options();
    if (paused_ && writer_.pending_bytes() <= o.max_unsent / 2 &&
        writer_.pending_fds() <= o.max_unsent_fds / 2)
      resume_reading();
    wait_writable();
    return;
  }
  close(r == -EPIPE || r == -ECONNRESET ? CloseReason::kEof : CloseReason::kError,
        std::string("sendmsg: ") + std::strerror(-r));
}

void Connection::resume_reading() {
  paused_ = false;
  spdlog::debug("task {}: {} reply bytes and {} fds unsent, reading resumed", task_,
                writer_.pending_bytes(), writer_.pending_fds());
  schedule_read();
}

// ---------------------------------------------------------------------------
// Closing

void Connection::close(CloseReason reason, std::string_view why) {
  if (closed_) return;
  closed_ = true;
  auto self = shared_from_this();  // the server's table may hold the last reference

  const auto level = reason == CloseReason::kViolation || reason == CloseReason::kError
                         ? spdlog::level::warn
                         : spdlog::level::info;
  spdlog::log(level, "task {} disconnected ({}: {}): pid {} uid {} command '{}'", task_,
              close_reason_name(reason), why, creds_.pid, creds_.uid, command_);

  handshake_timer_.cancel();
  watch_.close();  // pending waits complete with operation_aborted
  fd_.reset();
  server_.connection_closed(*this);
}

}  // namespace portd::server
