// Server: the daemon's event-loop side. Owns the core, the driver, the
// listening socket and the connection table.
//
//   Server ── Listener (socket file + lock)
//     │ ├──── Core (all ports, rights, queues; no I/O)
//     │ ├──── Driver (requests → core, effects → replies, timers, OOL fds)
//     │ └──── Introspector (portctl's requests and monitor subscriptions)
//     └────── Connection per client (one task each): framing, backpressure
//
// Everything runs on the io_context's one thread. The server accepts with
// SOCK_CLOEXEC | SOCK_NONBLOCK, reads each peer's credentials with
// SO_PEERCRED, and gives every connection a task id from a counter (never
// reused). It counts each uid's connections against its limit
// (ipc::Limits::connections_per_uid). Replies are batched: a connection that
// got output is marked dirty and all dirty connections are flushed once per
// event-loop turn (at the end of the read batch that produced the replies, or
// by a posted handler).
//
// A Server can be built on any listening socket: one it created
// (Listener::open) or one systemd passed (Listener::adopt).
#pragma once

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/server/connection.h"
#include "daemon/server/driver.h"
#include "daemon/server/introspect.h"
#include "daemon/server/listener.h"
#include "portd/proto/frame.h"

namespace portd::server {

struct ServerOptions {
  proto::FrameLimits frame_limits;
  ipc::Limits limits;
  // Bytes one connection may read in one event-loop turn before the others
  // get theirs.
  size_t read_budget = 256 * 1024;
  // Unsent reply bytes, or fds, above which a connection is no longer read
  // from (fds handed to the writer are no longer charged by the core).
  size_t max_unsent = 16u << 20;
  size_t max_unsent_fds = 1024;
  // A connection that has not said hello this long after it was accepted is
  // closed.
  std::chrono::milliseconds handshake_timeout{10000};
};

// Connections over their uid's limit (ipc::Limits::connections_per_uid) are
// accepted, so that their hello can be answered with the limit's name, but
// at most this many wait for it at once; past that they are closed at once.
inline constexpr size_t kMaxRefusedConnections = 64;

class Server : public ReplySink, public TaskDirectory {
 public:
  Server(asio::io_context& io, Listener listener, ServerOptions options = {});
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting. False (and logged) if the listening socket cannot be
  // watched.
  bool start();
  // Stops accepting, closes every connection (destroying its task, as on a
  // disconnect), and removes the socket file. The io_context then runs out
  // of work. Idempotent.
  void stop();

  // Reconfiguration (SIGHUP). New limits apply to charges made and requests
  // decoded from now on; nothing already held is taken away. Frame limits
  // are not changed here: every client learned them at hello.
  void set_limits(const ipc::Limits& limits);
  void set_unsent_limits(size_t max_unsent, size_t max_unsent_fds);
  // For connections accepted from now on.
  void set_handshake_timeout(std::chrono::milliseconds timeout);
  // Called with the number of connections after one is accepted or closed
  // (not while stopping).
  void set_connection_observer(std::function<void(size_t)> observer);

  const std::string& socket_path() const { return socket_path_; }
  const ServerOptions& options() const { return options_; }
  asio::io_context& io() { return io_; }
  ipc::Core& core() { return core_; }
  Driver& driver() { return driver_; }
  Introspector& introspector() { return introspector_; }
  size_t connection_count() const { return connections_.size(); }

  // TaskDirectory: a task's command and connection time, from its
  // connection; a uid's connections, counted against its limit (those
  // refused at hello are not).
  bool describe(ipc::TaskId task, TaskDetails* out) const override;
  uint64_t uid_connections(uint32_t uid) const override;

  // ReplySink.
  void post_reply(ipc::TaskId task, capnp::MessageBuilder& reply,
                  std::vector<proto::UniqueFd> fds) override;
  void post_reply_with_body(ipc::TaskId task, capnp::MessageBuilder& reply,
                            std::vector<proto::UniqueFd> fds, std::vector<uint8_t> body,
                            const void* at) override;

  // For connections.
  void mark_dirty(Connection& connection);
  // While a ReadBatch lives (a connection handling what one readiness
  // brought), replies are not flushed by a posted handler: the batch's end
  // flushes every dirty connection, in the same event-loop turn. That saves
  // the posted handler's extra turn (an epoll_wait) per request.
  class ReadBatch {
   public:
    explicit ReadBatch(Server& server) : server_(server) { ++server_.batch_depth_; }
    ~ReadBatch() {
      if (--server_.batch_depth_ == 0 && !server_.dirty_.empty()) server_.flush_dirty();
    }
    ReadBatch(const ReadBatch&) = delete;
    ReadBatch& operator=(const ReadBatch&) = delete;

   private:
    Server& server_;
  };
  void connection_closed(Connection& connection);

 private:
  void wait_accept();
  void accept_ready();
  void on_accepted(int fd);
  void flush_dirty();

  asio::io_context& io_;
  ServerOptions options_;
  Listener listener_;
  std::string socket_path_;
  asio::posix::stream_descriptor accept_watch_;
  asio::steady_timer accept_retry_;
  ipc::Core core_;
  Driver driver_;
  Introspector introspector_;
  ipc::TaskId next_task_ = 1;
  std::unordered_map<ipc::TaskId, std::shared_ptr<Connection>> connections_;
  // Connections per uid, against ipc::Limits::connections_per_uid (no entry
  // for a uid with none), and those over it that wait to be told so.
  std::unordered_map<uint32_t, uint64_t> uid_connections_;
  size_t refused_connections_ = 0;
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::shared_ptr<Connection>> flushing_;  // kept: no allocation per flush
  bool flush_posted_ = false;
  int batch_depth_ = 0;
  bool stopping_ = false;
  std::function<void(size_t)> observer_;
  // Handlers that capture `this` check it: false once the server is gone.
  std::shared_ptr<bool> alive_;
};

}  // namespace portd::server
