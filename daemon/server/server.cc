#include "daemon/server/server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace portd::server {

namespace {

// Connections accepted in one turn before the others get theirs.
constexpr int kAcceptBatch = 64;
// Out of fds (EMFILE, ENFILE...): wait this long before accepting again
// instead of spinning on a listening socket that stays readable.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

DaemonInfo daemon_info(const std::string& socket_path) {
  DaemonInfo info;
  info.version = PORTD_VERSION;
  info.protocol = wire::PROTOCOL_VERSION;
  info.pid = static_cast<uint32_t>(::getpid());
  info.uid = static_cast<uint32_t>(::geteuid());
  info.socket = socket_path;
  info.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  return info;
}

}  // namespace

Server::Server(asio::io_context& io, Listener listener, ServerOptions options)
    : io_(io),
      options_(std::move(options)),
      listener_(std::move(listener)),
      socket_path_(listener_.path()),
      accept_watch_(io),
      accept_retry_(io),
      core_(options_.limits),
      driver_(io, core_, *this, options_.frame_limits),
      introspector_(io, core_, *this, *this, daemon_info(socket_path_)),
      alive_(std::make_shared<bool>(true)) {}

Server::~Server() {
  stop();
  *alive_ = false;
}

bool Server::start() {
  asio::error_code ec;
  accept_watch_.assign(listener_.fd(), ec);
  if (ec) {
    spdlog::critical("cannot watch the listening socket: {}", ec.message());
    return false;
  }
  wait_accept();
  return true;
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  asio::error_code ignored;
  accept_retry_.cancel();
  accept_watch_.cancel(ignored);
  if (accept_watch_.is_open()) accept_watch_.release();  // the Listener owns the fd
  listener_.close();

  // Close every connection as if it had gone away: each task is destroyed
  // and its timers cancelled.
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(connections_.size());
  for (auto& [task, c] : connections_) all.push_back(c);
  for (auto& c : all) c->close(CloseReason::kShutdown, "daemon stopping");
  dirty_.clear();
}

void Server::set_limits(const ipc::Limits& limits) {
  options_.limits = limits;
  core_.set_limits(limits);
}

void Server::set_unsent_limits(size_t max_unsent, size_t max_unsent_fds) {
  options_.max_unsent = max_unsent;
  options_.max_unsent_fds = max_unsent_fds;
}

void Server::set_handshake_timeout(std::chrono::milliseconds timeout) {
  options_.handshake_timeout = timeout;
}

void Server::set_connection_observer(std::function<void(size_t)> observer) {
  observer_ = std::move(observer);
}

// ---------------------------------------------------------------------------
// Accepting

void Server::wait_accept() {
  if (stopping_) return;
  std::weak_ptr<bool> alive = alive_;
  accept_watch_.async_wait(asio::posix::descriptor_base::wait_read,
                           [this, alive](const asio::error_code& ec) {
                             if (ec == asio::error::operation_aborted) return;
                             auto flag = alive.lock();
                             if (!flag || !*flag || stopping_) return;
                             if (ec) {
                               spdlog::error("listening socket: {}", ec.message());
                               return;
                             }
                             accept_ready();
                           });
}

void Server::accept_ready() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd = accept_connection(listener_.fd());
    if (fd == -EAGAIN) {
      wait_accept();
      return;
    }
    if (fd < 0) {
      spdlog::warn("accept: {}; retrying in {} ms", std::strerror(-fd), kAcceptBackoff.count());
      std::weak_ptr<bool> alive = alive_;
      accept_retry_.expires_after(kAcceptBackoff);
      accept_retry_.async_wait([this, alive](const asio::error_code& ec) {
        auto flag = alive.lock();
        if (ec || !flag || !*flag) return;
        wait_accept();
      });
      return;
    }
    on_accepted(fd);
  }
  std::weak_ptr<bool> alive = alive_;
  asio::post(io_, [this, alive] {
    auto flag = alive.lock();
    if (flag && *flag && !stopping_) accept_ready();
  });
}

void Server::on_accepted(int fd) {
  proto::UniqueFd owned(fd);
  ipc::Credentials creds;
  if (!peer_credentials(fd, &creds)) {
    spdlog::warn("dropping a connection whose credentials cannot be read: {}",
                 std::strerror(errno));
    return;
  }
  const uint64_t limit = options_.limits.connections_per_uid;
  auto counted = uid_connections_.find(creds.uid);
  const uint64_t used = counted == uid_connections_.end() ? 0 : counted->second;
  const bool over = used >= limit;
  if (over && refused_connections_ >= kMaxRefusedConnections) {
    spdlog::warn(
        "uid {} is at its limit of {} connections (quota.uid.connections): connection from pid {} "
        "closed at once ({} others wait to be told so)",
        creds.uid, limit, creds.pid, refused_connections_);
    return;  // `owned` closes it
  }
  const ipc::TaskId task = next_task_++;
  auto connection = std::make_shared<Connection>(*this, std::move(owned), task, creds);
  connections_.emplace(task, connection);
  if (over) {
    connection->refuse_at_hello(ipc::Limit::kConnections);
    ++refused_connections_;
    spdlog::warn(
        "uid {} is at its limit of {} connections (quota.uid.connections): task {} (pid {}) "
        "will be refused at hello",
        creds.uid, limit, task, creds.pid);
  } else {
    ++uid_connections_[creds.uid];
    spdlog::info("task {} connected: pid {} uid {} gid {}", task, creds.pid, creds.uid, creds.gid);
  }
  connection->start();
  if (observer_) observer_(connections_.size());
}

void Server::connection_closed(Connection& connection) {
  const ipc::TaskId task = connection.task();
  auto it = connections_.find(task);
  if (it == connections_.end()) return;
  // Keep the connection alive until we are done with it (the caller holds a
  // reference too).
  std::shared_ptr<Connection> keep = std::move(it->second);
  connections_.erase(it);
  if (connection.refused_at_hello() != ipc::Limit::kNone) {
    --refused_connections_;
  } else if (auto c = uid_connections_.find(connection.credentials().uid);
             c != uid_connections_.end() && --c->second == 0) {
    uid_connections_.erase(c);
  }
  introspector_.forget(task);
  driver_.detach(task);  // may post replies to other tasks
  if (observer_ && !stopping_) observer_(connections_.size());
}

uint64_t Server::uid_connections(uint32_t uid) const {
  auto it = uid_connections_.find(uid);
  return it == uid_connections_.end() ? 0 : it->second;
}

bool Server::describe(ipc::TaskId task, TaskDetails* out) const {
  auto it = connections_.find(task);
  if (it == connections_.end()) return false;
  out->command = it->second->command();
  out->connected_unix_ms = it->second->connected_unix_ms();
  return true;
}

// ---------------------------------------------------------------------------
// Replies

void Server::post_reply(ipc::TaskId task, capnp::MessageBuilder& reply,
                        std::vector<proto::UniqueFd> fds) {
  auto it = connections_.find(task);
  if (it == connections_.end()) return;  // gone; the fds close here
  it->second->send(reply, std::move(fds));
}

void Server::post_reply_with_body(ipc::TaskId task, capnp::MessageBuilder& reply,
                                  std::vector<proto::UniqueFd> fds, std::vector<uint8_t> body,
                                  const void* at) {
  auto it = connections_.find(task);
  if (it == connections_.end()) return;
  it->second->send(reply, std::move(fds), std::move(body), at);
}

void Server::mark_dirty(Connection& connection) {
  // Already listed: nothing to do, and no reference count taken.
  if (connection.dirty_) return;
  connection.dirty_ = true;
  dirty_.push_back(connection.shared_from_this());
  if (flush_posted_ || batch_depth_ > 0) return;
  flush_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  asio::post(io_, [this, alive] {
    auto flag = alive.lock();
    if (flag && *flag) flush_dirty();
  });
}

void Server::flush_dirty() {
  flush_posted_ = false;
  flushing_.swap(dirty_);  // dirty_ takes flushing_'s empty vector
  for (auto& c : flushing_) {
    c->dirty_ = false;
    c->flush();
  }
  flushing_.clear();
}

}  // namespace portd::server
