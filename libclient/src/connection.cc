#include "libclient/src/connection.h"

#include <capnp/serialize.h>
#include <fcntl.h>
#include <kj/exception.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <unordered_set>

#include "libclient/src/identity.h"

namespace portd::detail {

namespace {

// What we accept from the daemon. Its replies are bounded by its own limits;
// these only keep a broken daemon from making us allocate without bound.
proto::FrameLimits reply_limits() {
  proto::FrameLimits limits;
  limits.max_frame_bytes = 16u << 20;
  limits.traversal_limit_words = 2 * (limits.max_frame_bytes / 8);
  return limits;
}

// Until the daemon says otherwise in its hello reply: proto's default.
constexpr uint32_t kDefaultMaxFrameBytes = proto::FrameLimits{}.max_frame_bytes;

// A writer that is not the leader re-checks this often whether it should
// read, so that replies never pile up unread while it waits for room.
constexpr int kWriterPollMs = 50;

std::string errno_text(int err) { return std::strerror(err); }

// Every Connection of this process. A child made by fork() inherits the
// parent's sockets; if it kept them open, the daemon would not see a parent
// that exits (or closes its Task) go away while the child lives, and the
// parent's task and rights would outlive it. The fork handler below makes
// the child let go of every inherited socket.
struct Registry {
  std::mutex mu;
  std::unordered_set<Connection*> live;  // guarded by mu
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: used until exit
  return *r;
}

void before_fork() { registry().mu.lock(); }
void after_fork_in_parent() { registry().mu.unlock(); }
void after_fork_in_child() {
  identity_after_fork();  // first: drop_inherited_socket() asks whose socket it is
  Registry& r = registry();
  for (Connection* c : r.live) c->drop_inherited_socket();
  r.mu.unlock();
}

void register_connection(Connection* c) {
  static const bool installed = [] {
    ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
    return true;
  }();
  (void)installed;
  std::lock_guard<std::mutex> guard(registry().mu);
  registry().live.insert(c);
}

void unregister_connection(Connection* c) {
  std::lock_guard<std::mutex> guard(registry().mu);
  registry().live.erase(c);
}

}  // namespace

Connection::Connection(proto::UniqueFd fd)
    : fd_(std::move(fd)),
      pid_(process_id()),
      max_frame_bytes_(kDefaultMaxFrameBytes),
      reader_(reply_limits()) {
  register_connection(this);
}

Connection::~Connection() { unregister_connection(this); }

void Connection::drop_inherited_socket() noexcept {
  if (!fd_.valid() || owned_by_this_process()) return;
  int placeholder = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (placeholder < 0) placeholder = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (placeholder < 0) return;
  ::dup3(placeholder, fd_.get(), O_CLOEXEC);
  ::close(placeholder);
}

bool Connection::owned_by_this_process() const { return process_id() == pid_; }

bool Connection::alive() const { return owned_by_this_process() && !dead_.load(); }

std::string Connection::failure() const {
  if (!owned_by_this_process()) return "the connection belongs to the parent process";
  std::lock_guard<std::mutex> guard(mu_);
  return failure_;
}

bool Connection::frame_too_large(capnp::MessageBuilder& request) const {
  const uint64_t bytes = capnp::computeSerializedSizeInWords(request) * sizeof(capnp::word);
  return bytes > max_frame_bytes_.load(std::memory_order_relaxed);
}

Status Connection::call(capnp::MessageBuilder& request, std::vector<proto::UniqueFd> fds,
                        ReplyData* reply, const OnWritten& on_written) {
  if (!owned_by_this_process()) return Status::kInvalidTask;
  const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  request.getRoot<wire::Request>().setId(id);
  if (frame_too_large(request)) return Status::kSendTooLarge;

  Waiter me;
  me.reply = reply;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (dead_.load()) return Status::kInvalidTask;
    waiters_.add(id, &me);
  }
  // A failed write fails the connection, which completes `me`.
  write_frame(request, std::move(fds));
  if (on_written) on_written(id);

  std::unique_lock<std::mutex> lock(mu_);
  wait_for(lock, me);
  return me.status;
}

void Connection::wait_for(std::unique_lock<std::mutex>& lock, Waiter& me) {
  while (!me.done) {
    if (!leader_) {
      leader_ = true;
      lead(lock, me);
      continue;
    }
    me.sleeping = true;
    me.cv.wait(lock);
    me.sleeping = false;
  }
}

void Connection::call_batch(std::span<capnp::MessageBuilder* const> requests,
                            std::span<std::vector<proto::UniqueFd>> fds,
                            std::span<ReplyData> replies, std::span<Status> transport) {
  const size_t n = requests.size();
  if (!owned_by_this_process()) {
    for (size_t i = 0; i < n; ++i) transport[i] = Status::kInvalidTask;
    return;
  }
  std::unique_ptr<Waiter[]> waiters(new Waiter[n]);
  std::vector<bool> sent(n, false);
  std::vector<uint64_t> ids(n, 0);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = next_id_.fetch_add(1, std::memory_order_relaxed);
    requests[i]->getRoot<wire::Request>().setId(ids[i]);
    if (frame_too_large(*requests[i])) {
      transport[i] = Status::kSendTooLarge;
      continue;
    }
    waiters[i].reply = &replies[i];
    sent[i] = true;
  }
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (dead_.load()) {
      for (size_t i = 0; i < n; ++i)
        if (sent[i]) transport[i] = Status::kInvalidTask;
      return;
    }
    for (size_t i = 0; i < n; ++i)
      if (sent[i]) waiters_.add(ids[i], &waiters[i]);
  }
  {
    // One write for the whole batch; a failure fails the connection, which
    // completes every waiter.
    std::lock_guard<std::mutex> guard(write_mu_);
    if (!dead_.load()) {
      for (size_t i = 0; i < n; ++i)
        if (sent[i]) writer_.append(*requests[i], std::move(fds[i]));
      flush_locked();
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (size_t i = 0; i < n; ++i) {
    if (!sent[i]) continue;
    wait_for(lock, waiters[i]);
    transport[i] = waiters[i].status;
  }
}

void Connection::post(capnp::MessageBuilder& request) noexcept {
  if (!owned_by_this_process() || dead_.load()) return;
  try {
    request.getRoot<wire::Request>().setId(next_id_.fetch_add(1, std::memory_order_relaxed));
    if (frame_too_large(request)) return;
    write_frame(request, {});
  } catch (...) {
    // Out of memory while encoding: the right stays until the task ends.
  }
}

void Connection::shutdown(const std::string& reason) {
  if (!owned_by_this_process()) return;
  fail(reason);
}

Status Connection::write_frame(capnp::MessageBuilder& request, std::vector<proto::UniqueFd> fds) {
  std::lock_guard<std::mutex> guard(write_mu_);
  if (dead_.load()) return Status::kInvalidTask;
  writer_.append(request, std::move(fds));
  return flush_locked();
}

Status Connection::flush_locked() {
  for (;;) {
    const int r = writer_.write_to(fd_.get());
    if (r == 0) return Status::kSuccess;
    if (r != -EAGAIN) {
      fail("write to the daemon failed: " + errno_text(-r));
      return Status::kInvalidTask;
    }
    wait_writable();
    if (dead_.load()) return Status::kInvalidTask;
  }
}

void Connection::wait_writable() {
  bool leading = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (dead_.load()) return;
    if (!leader_) leader_ = leading = true;
  }
  pollfd p{fd_.get(), static_cast<short>(POLLOUT | (leading ? POLLIN : 0)), 0};
  const int r = ::poll(&p, 1, leading ? -1 : kWriterPollMs);
  if (r < 0 && errno != EINTR) fail("poll failed: " + errno_text(errno));
  if (leading) {
    if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (read_once()) drain();
    }
    std::unique_lock<std::mutex> lock(mu_);
    stop_leading(lock);
  }
}

void Connection::lead(std::unique_lock<std::mutex>& lock, Waiter& me) {
  lock.unlock();
  for (;;) {
    const bool alive = drain(&me);
    lock.lock();  // held from here to stop_leading when the loop ends
    if (!alive || me.done) break;
    lock.unlock();
    // The socket is blocking: the leader sleeps in recvmsg itself (one
    // system call per wake-up, no poll first); fail() shuts the socket
    // down, which wakes it.
    if (!read_once(/*wait=*/true)) {
      lock.lock();
      break;
    }
  }
  stop_leading(lock);
}

void Connection::stop_leading(std::unique_lock<std::mutex>& lock) {
  leader_ = false;
  if (dead_.load()) return;
  if (Waiter* w = waiters_.find_if([](const Waiter& w) { return w.sleeping; })) w->cv.notify_one();
}

bool Connection::read_once(bool wait) {
  const long n = reader_.read_from(fd_.get(), wait);
  if (n > 0 || n == -EAGAIN) return true;
  if (n == 0) {
    fail("the daemon closed the connection");
  } else if (n == -EPROTO) {
    fail("protocol violation by the daemon: " + reader_.error());
  } else {
    fail("read from the daemon failed: " + errno_text(static_cast<int>(-n)));
  }
  return false;
}

bool Connection::drain(Waiter* self) {
  for (;;) {
    switch (reader_.next()) {
      case proto::FrameReader::Next::kNeedMore: return true;
      case proto::FrameReader::Next::kError:
        fail("malformed frame from the daemon: " + reader_.error());
        return false;
      case proto::FrameReader::Next::kFrame:
        handle_frame(self);
        if (dead_.load()) return false;
        break;
    }
  }
}

void Connection::handle_frame(Waiter* self) {
  wire::Reply::Reader reply;
  uint64_t id = 0;
  uint16_t fd_count = 0;
  try {
    reply = reader_.frame().getRoot<wire::Reply>();
    id = reply.getId();
    fd_count = reply.getFdCount();
  } catch (const kj::Exception& e) {
    fail("malformed reply from the daemon: " + std::string(e.getDescription().cStr()));
    return;
  }
  std::vector<proto::UniqueFd> fds;
  if (!reader_.take_fds(fd_count, &fds)) {
    fail("reply declares " + std::to_string(fd_count) + " fds that did not arrive");
    return;
  }
  // The waiter leaves the table before its reply is decoded into place (its
  // ReplyData is fresh and nobody else touches it until `done`), so a
  // failure meanwhile does not complete it under the decoder's feet: this
  // frame's handling completes it either way.
  Waiter* waiter = nullptr;
  {
    std::lock_guard<std::mutex> guard(mu_);
    waiter = waiters_.take(id);
  }
  if (waiter == nullptr) return;  // nobody waits (or the connection failed): discarded
  std::string error;
  const bool decoded = decode_reply(reply, fds, waiter->reply, &error);
  if (!decoded) fail(error);
  if (waiter == self) {
    // The leader's own reply: the waiter left the table, so nobody else
    // touches it, and the thread that waits on it is this one (it reads
    // `done` once this returns). No lock, no wake-up.
    waiter->status = decoded ? Status::kSuccess : Status::kInvalidTask;
    waiter->done = true;
    return;
  }
  std::lock_guard<std::mutex> guard(mu_);
  waiter->status = decoded ? Status::kSuccess : Status::kInvalidTask;
  waiter->done = true;
  // Under the lock: the waiter cannot return (and destroy its cv) before.
  waiter->cv.notify_one();
}

void Connection::fail(const std::string& reason) {
  std::lock_guard<std::mutex> guard(mu_);
  fail_locked(reason);
}

void Connection::fail_locked(const std::string& reason) {
  if (!dead_.load()) {
    failure_ = reason;
    dead_.store(true);
    // Wakes a leader blocked in poll; the fd stays open until we are gone.
    ::shutdown(fd_.get(), SHUT_RDWR);
  }
  waiters_.for_each([](Waiter& waiter) {
    waiter.status = Status::kInvalidTask;
    waiter.done = true;
    waiter.cv.notify_one();
  });
  waiters_.clear();
}

}  // namespace portd::detail
