#include "daemon/server/socket_watch.h"

#include <sys/epoll.h>

#include <asio/detail/reactor.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/error.hpp>
#include <asio/version.hpp>
#include <cstdint>
#include <type_traits>
#include <utility>

// The reactor interface below is Asio's internal one: check that it is the
// one this file was written against.
static_assert(ASIO_VERSION >= 102200 && ASIO_VERSION < 102300,
              "SocketWatch uses Asio 1.22's reactor interface (asio::detail); check "
              "epoll_reactor::start_op and reactor_op before building with another Asio");
static_assert(std::is_same_v<asio::detail::reactor, asio::detail::epoll_reactor>,
              "SocketWatch expects Asio's epoll reactor");

namespace portd::server {

namespace {

using asio::detail::reactor;
using asio::detail::reactor_op;

// One wait of a SocketWatch. Kept in the watch and reused; `keep` holds the
// owner (and so the watch) alive while the reactor or the scheduler holds
// the operation.
class WatchOp : public reactor_op {
 public:
  WatchOp(perform_func_type perform, func_type complete)
      : reactor_op(asio::error_code(), perform, complete) {}

  SocketWatch::Owner* owner = nullptr;
  reactor::per_descriptor_data* data = nullptr;
  std::shared_ptr<void> keep;
  // A write wait is started after EAGAIN: its speculative attempt (made
  // inside start_op) must not report the socket writable.
  bool starting = false;
};

// The events of the descriptor's latest epoll report. The reactor keeps them
// in the descriptor's state (an operation's task_result_, a protected member
// of a private base) and passes them to perform_io, which calls the
// operations' attempts; this reads them there. In a speculative attempt
// (start_op) they are those of an earlier report: at worst one read more.
uint32_t reported_events(reactor::per_descriptor_data data) {
  struct Peek : asio::detail::scheduler_operation {
    static unsigned int of(asio::detail::scheduler_operation* op) {
      return op->*(&Peek::task_result_);
    }
  };
  // descriptor_state derives privately from scheduler_operation: only a
  // C-style cast converts to an inaccessible base.
  return Peek::of((asio::detail::scheduler_operation*)data);  // NOLINT
}

reactor_op::status perform_read(reactor_op* base) {
  auto* op = static_cast<WatchOp*>(base);
  switch (op->owner->try_read()) {
    case SocketWatch::Attempt::kAgain: return reactor_op::not_done;
    case SocketWatch::Attempt::kMore: return reactor_op::done;
    case SocketWatch::Attempt::kDrained:
      // A short read emptied the socket of bytes, but an end of stream or an
      // error may have come with them in the same report: then no new edge
      // will come, and the next wait must read first (done keeps the
      // reactor's next attempt speculative).
      if ((reported_events(*op->data) & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0)
        return reactor_op::done;
      // Otherwise the reactor queues the next read without an attempt of its
      // own until epoll reports the socket again.
      return reactor_op::done_and_exhausted;
  }
  return reactor_op::done;
}

reactor_op::status perform_write(reactor_op* base) {
  auto* op = static_cast<WatchOp*>(base);
  return op->starting ? reactor_op::not_done : reactor_op::done;
}

// `owner` is the scheduler, or null when the io_context is destroyed with
// the operation still queued: then only the reference is dropped.
template <bool kRead>
void complete(void* owner, asio::detail::operation* base, const asio::error_code&, std::size_t) {
  auto* op = static_cast<WatchOp*>(base);
  std::shared_ptr<void> keep = std::move(op->keep);  // may be the last reference: used last
  if (owner == nullptr) return;
  const asio::error_code ec = op->ec_;
  op->ec_ = asio::error_code();
  if constexpr (kRead)
    op->owner->read_ready(ec);
  else
    op->owner->write_ready(ec);
}

}  // namespace

struct SocketWatch::State {
  State(asio::io_context& io, int descriptor)
      : r(asio::use_service<reactor>(io)),
        fd(descriptor),
        read_op(&perform_read, &complete<true>),
        write_op(&perform_write, &complete<false>) {}

  reactor& r;
  const int fd;
  reactor::per_descriptor_data data = nullptr;
  bool registered = false;
  WatchOp read_op;
  WatchOp write_op;
};

SocketWatch::SocketWatch(asio::io_context& io, int fd, Owner& owner)
    : state_(std::make_unique<State>(io, fd)) {
  state_->read_op.owner = &owner;
  state_->write_op.owner = &owner;
  state_->read_op.data = &state_->data;
  if (const int err = state_->r.register_descriptor(fd, state_->data); err != 0) {
    error_ = asio::error_code(err, asio::system_category());
    state_->r.cleanup_descriptor_data(state_->data);  // data is null after
    return;
  }
  state_->registered = true;
}

SocketWatch::~SocketWatch() { close(); }

void SocketWatch::wait_read(std::shared_ptr<void> keep) {
  WatchOp& op = state_->read_op;
  op.keep = std::move(keep);
  op.ec_ = asio::error_code();
  // Speculative: no epoll_ctl. If the last attempt emptied the socket the
  // reactor only queues the operation; otherwise it attempts a read first.
  state_->r.start_op(reactor::read_op, state_->fd, state_->data, &op, false, true);
}

void SocketWatch::wait_write(std::shared_ptr<void> keep) {
  WatchOp& op = state_->write_op;
  op.keep = std::move(keep);
  op.ec_ = asio::error_code();
  // The first write wait adds EPOLLOUT to the registration (one epoll_ctl in
  // the connection's life); later ones only queue.
  op.starting = true;
  state_->r.start_op(reactor::write_op, state_->fd, state_->data, &op, false, true);
  op.starting = false;
}

bool SocketWatch::read_pending() const { return state_->read_op.keep != nullptr; }
bool SocketWatch::write_pending() const { return state_->write_op.keep != nullptr; }

void SocketWatch::close() {
  if (!state_->registered) return;
  state_->registered = false;
  // closing: the caller closes the fd next, which removes it from epoll.
  state_->r.deregister_descriptor(state_->fd, state_->data, true);
  state_->r.cleanup_descriptor_data(state_->data);
}

}  // namespace portd::server
