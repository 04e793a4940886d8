// Connection: one Unix socket to the daemon, shared by every thread of a Task.
//
// Requests are pipelined: a thread writes its request and then waits for the
// reply with its id, whatever other threads are waiting for. There is no
// reader thread. The reader is whichever waiting thread found nobody reading
// (leader/follower):
//
//   * A thread that needs a reply registers a Waiter under its request id,
//     writes its frame, and then, if no thread is the leader, becomes it.
//   * The leader reads frames and hands each reply to its Waiter (the reply
//     is decoded by the leader, stored through the waiter's pointer, and the
//     waiter's condition variable is signalled). Replies with no waiter
//     (fire-and-forget requests from handle destructors) are discarded.
//   * When the leader's own reply arrives it finishes the frames already
//     buffered, gives up leadership, and wakes one sleeping waiter, which
//     becomes the next leader. A waiter is only ever woken when its reply is
//     there or when leadership is free, and checks both under the mutex
//     before it sleeps, so no wake-up is lost.
//
// A thread blocked in receive (its request parked in the daemon) may be the
// leader for a long time; that is fine, since it reads every frame as it
// arrives (sleeping in a blocking recvmsg, so a wake-up costs one system
// call and no thread hop). Writes never wait for the leader: they take write_mu_, append to
// the FrameWriter and flush it from the writing thread, polling for POLLOUT
// when the socket is full. While it waits for POLLOUT, a writer with no
// leader around reads what has arrived too, so a daemon that stops reading
// until its replies are taken cannot deadlock us.
//
// Locks: write_mu_ may be held while taking mu_, never the other way round.
// The FrameReader belongs to whoever holds the leader role (leader_, set and
// cleared under mu_). The socket fd lives as long as the Connection; failure
// shuts it down (which wakes a leader blocked in poll) but never closes it.
//
// Failure. When the socket reports an error or end of stream, a frame is
// malformed, or disconnect() is called, every waiter completes with
// kInvalidTask and so does every later call.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "libclient/src/codec.h"
#include "libclient/src/waiter_table.h"
#include "portd/proto/frame.h"
#include "portd/proto/unique_fd.h"
#include "portd/status.h"

namespace portd::detail {

class Connection {
 public:
  // `fd` is a connected stream socket.
  explicit Connection(proto::UniqueFd fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Called once a request's frame has been written, with its id: from then
  // on the daemon knows the request, so a cancel naming it cannot overtake
  // it.
  using OnWritten = std::function<void(uint64_t id)>;

  // Sends `request` (its id is set here) with `fds`, and waits for the
  // reply, which is decoded into `*reply`. Returns kSuccess once a reply has
  // arrived (the daemon's status is reply->status), kInvalidTask if the
  // connection is or becomes unusable, or kSendTooLarge (nothing sent) if
  // the frame would exceed the daemon's frame limit.
  Status call(capnp::MessageBuilder& request, std::vector<proto::UniqueFd> fds, ReplyData* reply,
              const OnWritten& on_written = {});

  // Pipelined calls: writes every request (ids set here, frames appended in
  // order and written together), then waits for every reply. transport[i]
  // is what call() would have returned for request i, replies[i] its reply.
  // A request too large for the frame limit is not sent (kSendTooLarge);
  // the others are. `fds[i]` travel with request i.
  void call_batch(std::span<capnp::MessageBuilder* const> requests,
                  std::span<std::vector<proto::UniqueFd>> fds, std::span<ReplyData> replies,
                  std::span<Status> transport);

  // Sends `request` and does not wait: its reply will be discarded.
  void post(capnp::MessageBuilder& request) noexcept;

  // Ends the connection, waking every waiter with kInvalidTask.
  void shutdown(const std::string& reason);

  bool alive() const;
  std::string failure() const;

  // The largest frame the daemon accepts (from its hello reply).
  void set_max_frame_bytes(uint32_t bytes) { max_frame_bytes_ = bytes; }

  // False in a forked child: the socket belongs to the parent.
  bool owned_by_this_process() const;

  // In a forked child (called from the fork handler, with one thread): puts
  // a placeholder in place of the inherited socket, so that this process no
  // longer holds the parent's connection open. The fd number stays taken
  // until the Connection is destroyed, so nothing is closed twice.
  void drop_inherited_socket() noexcept;

 private:
  struct Waiter {
    std::condition_variable cv;
    ReplyData* reply = nullptr;
    Status status = Status::kSuccess;
    bool done = false;
    bool sleeping = false;
  };

  Status write_frame(capnp::MessageBuilder& request, std::vector<proto::UniqueFd> fds);
  // Writes what the writer holds (write_mu_ held).
  Status flush_locked();
  // Waits until `me` is done, leading when nobody does. `lock` holds mu_.
  void wait_for(std::unique_lock<std::mutex>& lock, Waiter& me);
  // Waits until the socket takes more bytes; reads too if nobody leads.
  void wait_writable();
  // Called with `lock` held and leader_ just set by this thread; returns with
  // `lock` held and leadership given up, once `me` is done.
  void lead(std::unique_lock<std::mutex>& lock, Waiter& me);
  // Hands out every complete frame in the reader's buffer. False if the
  // stream cannot go on (the connection has been failed). `self`: the
  // calling thread's own waiter, if it leads for one.
  bool drain(Waiter* self = nullptr);
  // Reads once from the socket: after poll said so, or with `wait`, sleeping
  // until something arrives. False if the connection has been failed.
  bool read_once(bool wait = false);
  void handle_frame(Waiter* self);
  // Gives leadership up and wakes a sleeping waiter to take it. `lock` held.
  void stop_leading(std::unique_lock<std::mutex>& lock);
  void fail(const std::string& reason);
  void fail_locked(const std::string& reason);
  bool frame_too_large(capnp::MessageBuilder& request) const;

  const proto::UniqueFd fd_;
  const pid_t pid_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint32_t> max_frame_bytes_;

  std::mutex write_mu_;
  proto::FrameWriter writer_;  // guarded by write_mu_

  mutable std::mutex mu_;
  WaiterTable<Waiter> waiters_;    // guarded by mu_
  bool leader_ = false;            // guarded by mu_
  std::atomic<bool> dead_{false};  // written under mu_
  std::string failure_;            // guarded by mu_

  proto::FrameReader reader_;  // used only by the leader
};

}  // namespace portd::detail
