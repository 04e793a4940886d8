// Move-only RAII handles for rights.
//
// A handle owns one right in its task's name space: a receive right, one user
// reference of a send right, a send-once right, or a port set. When the handle
// is destroyed (or reset, or assigned over) the right is released through the
// daemon without waiting for the answer: the request is written to the socket
// and its reply discarded. Requests on one connection are handled in order, so
// anything the same task asks afterwards sees the right gone.
//
//   ReceiveRight  released with mod_refs(name, RECEIVE, -1): the port dies.
//   SendRight     released with deallocate(name): one user reference of the
//                 send right, or of the dead name it became.
//   SendOnceRight released with deallocate(name): an unused send-once right
//                 fires a send-once notification, as in Mach.
//   PortSet       released with mod_refs(name, PORT_SET, -1).
//
// release() gives ownership up and returns the raw name, for code that goes on
// with the name-based layer of Task; adopt() takes a raw name over.
//
// Notifications about a right are requested on its handle
// (request_no_senders, request_port_destroyed, request_dead_name); the
// previous request's send-once right comes back as a handle.
//
// A handle keeps its Task alive. A receive right and the send rights to the
// same port share one name in a task, so a ReceiveRight and SendRights made
// from it have equal name()s; each handle still owns only its own right.
//
// Handles are not synchronized: one handle must not be used by two threads at
// once (different handles on one Task may be).
#pragma once

#include <memory>

#include "portd/export.h"
#include "portd/result.h"
#include "portd/types.h"

namespace portd {

class Task;
class ReceiveRight;
class SendRight;
class SendOnceRight;
struct ReceivedMessage;

namespace detail {

// What the handles have in common: a task, a name, and how to let go.
class PORTD_API RightHandle {
 public:
  Name name() const noexcept { return name_; }
  const std::shared_ptr<Task>& task() const noexcept { return task_; }
  explicit operator bool() const noexcept { return name_ != kNameNull; }

  // Gives the right up without releasing it; the handle becomes empty.
  Name release() noexcept;
  // Releases the right now (fire and forget); the handle becomes empty.
  void reset() noexcept;

 protected:
  enum class Kind : uint8_t { kReceive, kSend, kSendOnce, kPortSet };

  explicit RightHandle(Kind kind) noexcept : kind_(kind) {}
  RightHandle(Kind kind, std::shared_ptr<Task> task, Name name) noexcept
      : task_(std::move(task)), name_(name), kind_(kind) {}
  RightHandle(RightHandle&& other) noexcept;
  RightHandle& operator=(RightHandle&& other) noexcept;
  ~RightHandle();

 private:
  std::shared_ptr<Task> task_;
  Name name_ = kNameNull;
  Kind kind_;
};

}  // namespace detail

// Where a notification is to go: a send-once right made from a port of the
// caller's (MAKE_SEND_ONCE; the port stays the caller's), or a send-once
// right the caller gives up (MOVE_SEND_ONCE; the handle is emptied only if
// the request succeeds). Built implicitly from either, for the request_*
// methods below.
class PORTD_API NotifyTarget {
 public:
  NotifyTarget(const ReceiveRight& port) noexcept;  // NOLINT: implicit on purpose
  NotifyTarget(SendOnceRight&& right) noexcept;     // NOLINT
  NotifyTarget(const NotifyTarget&) = delete;
  NotifyTarget& operator=(const NotifyTarget&) = delete;

 private:
  friend class ReceiveRight;
  friend class SendRight;
  friend class SendOnceRight;

  // Arms `variant` on `name` of `task` towards this target; on success a
  // moved send-once handle lets go of its name.
  Result<SendOnceRight> request_on(const std::shared_ptr<Task>& task, Name name,
                                   Notification variant, uint32_t sync) const;
  static Result<SendOnceRight> cancel_on(const std::shared_ptr<Task>& task, Name name,
                                         Notification variant);

  const ReceiveRight* port_ = nullptr;
  SendOnceRight* moved_ = nullptr;
};

class PORTD_API ReceiveRight : public detail::RightHandle {
 public:
  ReceiveRight() noexcept : RightHandle(Kind::kReceive) {}
  // Takes over `name`, which must denote a receive right of `task`.
  static ReceiveRight adopt(std::shared_ptr<Task> task, Name name) noexcept;

  ReceiveRight(ReceiveRight&&) noexcept = default;
  ReceiveRight& operator=(ReceiveRight&&) noexcept = default;

  // A new send right to this port (insert_right with MAKE_SEND): one more
  // user reference under this port's name.
  Result<SendRight> make_send() const;
  // A new send-once right to this port (extract_right with MAKE_SEND_ONCE),
  // under a name of its own.
  Result<SendOnceRight> make_send_once() const;

  Result<ReceivedMessage> receive() const;
  Result<ReceivedMessage> receive(const ReceiveOptions& options) const;

  Status set_qlimit(uint32_t qlimit) const;
  Result<PortStatus> status() const;

  // ---- notifications (portd/notification.h parses them) ----
  // Each returns the previous request's send-once right, if there was one
  // (an empty handle otherwise): dropping it fires a send-once notification
  // at its port, as in Mach. `notify` must belong to this handle's task
  // (KERN_INVALID_ARGUMENT otherwise).
  //
  // No-senders (70): when the last send right to this port goes away. If
  // there is none now and the make-send count is at least `sync`, it fires
  // at once.
  Result<SendOnceRight> request_no_senders(const NotifyTarget& notify, uint32_t sync = 0) const;
  // Port-destroyed (69): when this receive right would be destroyed (this
  // handle released, the task gone), it is sent to `backup` instead and the
  // port lives on with its queue.
  Result<SendOnceRight> request_port_destroyed(const NotifyTarget& backup) const;
  Result<SendOnceRight> cancel_no_senders() const;
  Result<SendOnceRight> cancel_port_destroyed() const;

 private:
  ReceiveRight(std::shared_ptr<Task> task, Name name) noexcept
      : RightHandle(Kind::kReceive, std::move(task), name) {}
};

class PORTD_API SendRight : public detail::RightHandle {
 public:
  SendRight() noexcept : RightHandle(Kind::kSend) {}
  // Takes over one user reference of the send right (or dead name) `name`.
  static SendRight adopt(std::shared_ptr<Task> task, Name name) noexcept;

  SendRight(SendRight&&) noexcept = default;
  SendRight& operator=(SendRight&&) noexcept = default;

  // Another user reference of the same right (mod_refs +1), same name.
  Result<SendRight> copy() const;

  // Dead-name (72): when the port dies, `notify` hears it (the name stays,
  // as a dead name). If the port is dead already, the notification comes at
  // once. Once the name goes away before the port dies (the last reference
  // released or sent away), a port-deleted notification (65) comes instead.
  // Returns the previous request's send-once right, if any. The request is
  // on the name: every handle of the right shares it.
  Result<SendOnceRight> request_dead_name(const NotifyTarget& notify) const;
  Result<SendOnceRight> cancel_dead_name() const;

 private:
  SendRight(std::shared_ptr<Task> task, Name name) noexcept
      : RightHandle(Kind::kSend, std::move(task), name) {}
};

class PORTD_API SendOnceRight : public detail::RightHandle {
 public:
  SendOnceRight() noexcept : RightHandle(Kind::kSendOnce) {}
  static SendOnceRight adopt(std::shared_ptr<Task> task, Name name) noexcept;

  SendOnceRight(SendOnceRight&&) noexcept = default;
  SendOnceRight& operator=(SendOnceRight&&) noexcept = default;

  // As SendRight::request_dead_name, for the name of this send-once right.
  Result<SendOnceRight> request_dead_name(const NotifyTarget& notify) const;
  Result<SendOnceRight> cancel_dead_name() const;

 private:
  SendOnceRight(std::shared_ptr<Task> task, Name name) noexcept
      : RightHandle(Kind::kSendOnce, std::move(task), name) {}
};

class PORTD_API PortSet : public detail::RightHandle {
 public:
  PortSet() noexcept : RightHandle(Kind::kPortSet) {}
  static PortSet adopt(std::shared_ptr<Task> task, Name name) noexcept;

  PortSet(PortSet&&) noexcept = default;
  PortSet& operator=(PortSet&&) noexcept = default;

  // Moves `member` into this set (out of any set it was in).
  Status insert(const ReceiveRight& member) const;
  // Takes `member` out of this set (move_member to MACH_PORT_NULL).
  Status remove(const ReceiveRight& member) const;

  // The next message queued on any member, in arrival order across the set;
  // ReceivedMessage::local names the member it came through.
  Result<ReceivedMessage> receive() const;
  Result<ReceivedMessage> receive(const ReceiveOptions& options) const;

 private:
  PortSet(std::shared_ptr<Task> task, Name name) noexcept
      : RightHandle(Kind::kPortSet, std::move(task), name) {}
};

}  // namespace portd
