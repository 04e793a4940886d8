// Connection: one client socket, which is one task.
//
// Reading: wait until the socket is readable (SocketWatch: registered with
// epoll once, no system call per wait), then recvmsg (FrameReader) in a
// loop until the socket is empty or the per-turn budget is spent (so one busy client cannot
// starve the others), decoding and dispatching every complete frame as it
// arrives. Writing: replies are appended to the FrameWriter and the server
// flushes every dirty connection once per event-loop turn, so a burst of
// requests is answered with few sendmsg calls; when the socket is full the
// connection waits until it is writable. Backpressure: while more than
// ServerOptions::max_unsent bytes wait to be sent, the connection stops
// reading until they drain.
//
// The first frame must be hello, within the handshake timeout (else the
// connection closes with a log line). Anything the stream cannot recover from (a
// malformed frame, a Cap'n Proto exception while decoding it, a frame that
// declares more fds than it brought, stray fds, a request before hello) is a
// protocol violation: one warn line, the socket closes and the task is
// destroyed. A well-formed but invalid request only gets an error reply.
//
// Lifetime: connections are shared_ptrs held by the server's table and by
// their own pending handlers; after close() every handler finds closed() set
// and returns without touching the server.
#pragma once

#include <capnp/message.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/ipc/types.h"
#include "daemon/server/codec.h"
#include "daemon/server/socket_watch.h"
#include "portd/proto/frame.h"
#include "portd/proto/unique_fd.h"

namespace portd::server {

class Server;

enum class CloseReason { kEof, kError, kViolation, kRefused, kShutdown };
std::string_view close_reason_name(CloseReason reason);

class Connection : public std::enable_shared_from_this<Connection>, private SocketWatch::Owner {
 public:
  // `fd`: the accepted socket, non-blocking.
  Connection(Server& server, proto::UniqueFd fd, ipc::TaskId task, const ipc::Credentials& creds);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading, and the handshake timer: a connection that has not said
  // hello within ServerOptions::handshake_timeout is closed.
  void start();
  // A connection over a limit (the uid's connections): its hello is answered
  // with KERN_RESOURCE_SHORTAGE naming `limit`, and it closes. Before start().
  void refuse_at_hello(ipc::Limit limit) { refused_at_hello_ = limit; }
  ipc::Limit refused_at_hello() const { return refused_at_hello_; }

  // Queues a frame; the server flushes it at the end of this turn.
  void send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds = {});
  // The same for a frame whose body is sent from `body`, at `at`
  // (FrameWriter::append): kept until sent, not copied, then given back to
  // the BodyPool.
  void send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds,
            std::vector<uint8_t> body, const void* at);
  // Writes what the socket takes now; waits for writability if it is full.
  void flush();
  // Closes the socket, logs why, and has the server destroy the task.
  // Idempotent.
  void close(CloseReason reason, std::string_view why);

  ipc::TaskId task() const { return task_; }
  const ipc::Credentials& credentials() const { return creds_; }
  const std::string& command() const { return command_; }
  int64_t connected_unix_ms() const { return connected_unix_ms_; }
  bool closed() const { return closed_; }
  bool said_hello() const { return hello_done_; }
  size_t unsent_bytes() const { return writer_.pending_bytes(); }

  // Bookkeeping for the server's flush pass.
  bool dirty_ = false;

 private:
  void schedule_read();
  void wait_readable();
  void wait_writable();
  void read_some();
  // One read's outcome (FrameReader::read_from's value): closes, waits or
  // dispatches the frames it completed. True if the caller should read
  // again; `budget` is what this turn may still read.
  bool after_read(long n, size_t& budget);
  // SocketWatch::Owner.
  SocketWatch::Attempt try_read() override;
  void read_ready(const asio::error_code& ec) override;
  void write_ready(const asio::error_code& ec) override;
  void resume_reading();
  // Decodes and dispatches the complete frames in the reader. False if the
  // connection closed meanwhile.
  bool process_frames();
  bool on_frame();
  bool on_hello(uint64_t id, const req::Hello& hello);
  // After a frame was queued: backpressure, and the flush at the turn's end.
  void queued();
  void refuse_and_close(uint64_t id, Status status, ipc::Limit limit, std::string why);

  Server& server_;
  proto::UniqueFd fd_;
  SocketWatch watch_;   // after fd_: deregisters before the fd closes
  long last_read_ = 0;  // try_read()'s recvmsg result, for read_ready()
  const ipc::TaskId task_;
  const ipc::Credentials creds_;
  std::string command_;
  const int64_t connected_unix_ms_;
  proto::FrameReader reader_;
  proto::FrameWriter writer_;

  asio::steady_timer handshake_timer_;
  ipc::Limit refused_at_hello_ = ipc::Limit::kNone;
  bool hello_done_ = false;
  bool closed_ = false;
  bool read_scheduled_ = false;
  bool paused_ = false;  // backpressure: not reading until the output drains
  // Set when the connection is to close once its last reply has gone out.
  bool closing_ = false;
  CloseReason closing_reason_ = CloseReason::kRefused;
  std::string closing_why_;
};

}  // namespace portd::server
