// SocketWatch: a connection socket registered with the io_context's reactor
// once, and waited on without a system call per wait.
//
// Why not asio's own socket: Asio 1.22 registers every descriptor with epoll
// edge-triggered, and each async_wait re-arms it with an
// epoll_ctl(EPOLL_CTL_MOD) before it waits, so that readiness that already
// exists is reported again. A connection waits for readability after every
// request it reads, so that was a fourth system call per request (beside
// epoll_wait, recvmsg and sendmsg). Asio skips the re-arm only for its
// speculative operations (async_receive and the like), which read with
// recv(): that would drop the fds a client sends with SCM_RIGHTS.
//
// A SocketWatch starts reactor operations of its own, speculative ones, whose
// attempt is the connection's recvmsg (FrameReader::read_from, fds and all).
// The reactor calls the attempt when epoll reports the socket (or at once, if
// the last attempt did not empty it); an attempt that emptied the socket says
// so, and the next read operation is then queued without trying and without
// an epoll_ctl. New bytes raise a new edge, so nothing is missed: that is how
// Asio's own speculative reads work.
//
// This uses Asio's reactor interface (asio::detail), which is not a public
// API: it is pinned to Asio 1.22's epoll reactor (Debian 12's libasio-dev)
// by the checks in socket_watch.cc, and server_test / the client integration
// tests exercise every path (reads, EOF, errors, fds, writability, close).
//
// Everything runs on the io_context's one thread.
#pragma once

#include <asio/error_code.hpp>
#include <asio/io_context.hpp>
#include <memory>

namespace portd::server {

class SocketWatch {
 public:
  // What one read attempt found.
  enum class Attempt {
    kAgain,    // nothing to read: wait for the socket to become readable
    kMore,     // read something; the socket may hold more
    kDrained,  // read something (or the end, or an error) and the socket is empty
  };

  // The connection's side. try_read() runs inside the reactor and must only
  // read (one recvmsg into its buffer); the *_ready() calls run as
  // completions, with asio::error::operation_aborted once the watch was
  // closed.
  class Owner {
   public:
    virtual Attempt try_read() = 0;
    virtual void read_ready(const asio::error_code& ec) = 0;
    virtual void write_ready(const asio::error_code& ec) = 0;

   protected:
    ~Owner() = default;
  };

  // Registers `fd` (non-blocking; still owned by the caller). On failure,
  // error() is set and nothing can be waited for.
  SocketWatch(asio::io_context& io, int fd, Owner& owner);
  // Deregisters if close() was not called. No operation may be pending (they
  // keep the owner alive).
  ~SocketWatch();
  SocketWatch(const SocketWatch&) = delete;
  SocketWatch& operator=(const SocketWatch&) = delete;

  const asio::error_code& error() const { return error_; }

  // Calls owner.try_read() when the socket may have bytes (possibly at
  // once), until one attempt reads something; then owner.read_ready().
  // `keep` (the owner's shared_ptr) is held until then. One at a time.
  void wait_read(std::shared_ptr<void> keep);
  // Calls owner.write_ready() once the socket has become writable after this
  // call (the caller saw EAGAIN). One at a time.
  void wait_write(std::shared_ptr<void> keep);
  bool read_pending() const;
  bool write_pending() const;

  // Deregisters the descriptor (before the caller closes it): pending waits
  // complete with operation_aborted. Idempotent.
  void close();

 private:
  struct State;
  std::unique_ptr<State> state_;
  asio::error_code error_;
};

}  // namespace portd::server
