#include "portd/rights.h"

#include <utility>

#include "portd/message.h"
#include "portd/task.h"

namespace portd {

namespace detail {

RightHandle::RightHandle(RightHandle&& other) noexcept
    : task_(std::move(other.task_)),
      name_(std::exchange(other.name_, kNameNull)),
      kind_(other.kind_) {}

RightHandle& RightHandle::operator=(RightHandle&& other) noexcept {
  if (this != &other) {
    reset();
    task_ = std::move(other.task_);
    name_ = std::exchange(other.name_, kNameNull);
  }
  return *this;
}

RightHandle::~RightHandle() { reset(); }

Name RightHandle::release() noexcept {
  task_.reset();
  return std::exchange(name_, kNameNull);
}

void RightHandle::reset() noexcept {
  if (task_ && name_ != kNameNull && name_ != kNameDead) {
    switch (kind_) {
      case Kind::kReceive: task_->release_nowait(name_, Right::kReceive, false); break;
      case Kind::kPortSet: task_->release_nowait(name_, Right::kPortSet, false); break;
      case Kind::kSend: task_->release_nowait(name_, Right::kSend, true); break;
      case Kind::kSendOnce: task_->release_nowait(name_, Right::kSendOnce, true); break;
    }
  }
  task_.reset();
  name_ = kNameNull;
}

}  // namespace detail

// ---- NotifyTarget --------------------------------------------------------------

NotifyTarget::NotifyTarget(const ReceiveRight& port) noexcept : port_(&port) {}
NotifyTarget::NotifyTarget(SendOnceRight&& right) noexcept : moved_(&right) {}

namespace {

// The previous request's send-once right, as a handle (empty if none).
Result<SendOnceRight> previous_right(const std::shared_ptr<Task>& task, Result<Name> previous) {
  if (!previous) return Result<SendOnceRight>(previous.status(), previous.detail());
  if (*previous == kNameNull) return SendOnceRight();
  return SendOnceRight::adopt(task, *previous);
}

}  // namespace

Result<SendOnceRight> NotifyTarget::request_on(const std::shared_ptr<Task>& task, Name name,
                                               Notification variant, uint32_t sync) const {
  if (!task) return Status::kInvalidName;
  const detail::RightHandle& target =
      port_ != nullptr ? static_cast<const detail::RightHandle&>(*port_) : *moved_;
  // An empty target (or another task's) would be read as a cancel, or as a
  // name of this task that means something else: refused here.
  if (target.task() != task) return Status::kInvalidArgument;
  const Disposition d = port_ != nullptr ? Disposition::kMakeSendOnce : Disposition::kMoveSendOnce;
  auto previous = task->request_notification(name, variant, sync, target.name(), d);
  if (previous.ok() && moved_ != nullptr) moved_->release();
  return previous_right(task, std::move(previous));
}

Result<SendOnceRight> NotifyTarget::cancel_on(const std::shared_ptr<Task>& task, Name name,
                                              Notification variant) {
  if (!task) return Status::kInvalidName;
  return previous_right(
      task, task->request_notification(name, variant, 0, kNameNull, Disposition::kMakeSendOnce));
}

// ---- ReceiveRight ------------------------------------------------------------

ReceiveRight ReceiveRight::adopt(std::shared_ptr<Task> task, Name name) noexcept {
  return ReceiveRight(std::move(task), name);
}

Result<SendRight> ReceiveRight::make_send() const {
  if (!task()) return Status::kInvalidName;
  Status s = task()->insert_right(name(), name(), Disposition::kMakeSend);
  if (!ok(s)) return s;
  return SendRight::adopt(task(), name());
}

Result<SendOnceRight> ReceiveRight::make_send_once() const {
  if (!task()) return Status::kInvalidName;
  auto extracted = task()->extract_right(name(), Disposition::kMakeSendOnce);
  if (!extracted) return Result<SendOnceRight>(extracted.status(), extracted.detail());
  return SendOnceRight::adopt(task(), extracted->name);
}

Result<ReceivedMessage> ReceiveRight::receive() const { return receive(ReceiveOptions{}); }

Result<ReceivedMessage> ReceiveRight::receive(const ReceiveOptions& options) const {
  if (!task()) return Status::kRcvInvalidName;
  return task()->receive(name(), options);
}

Status ReceiveRight::set_qlimit(uint32_t qlimit) const {
  if (!task()) return Status::kInvalidName;
  return task()->set_qlimit(name(), qlimit);
}

Result<PortStatus> ReceiveRight::status() const {
  if (!task()) return Status::kInvalidName;
  return task()->get_attributes(name());
}

Result<SendOnceRight> ReceiveRight::request_no_senders(const NotifyTarget& notify,
                                                       uint32_t sync) const {
  return notify.request_on(task(), name(), Notification::kNoSenders, sync);
}

Result<SendOnceRight> ReceiveRight::request_port_destroyed(const NotifyTarget& backup) const {
  return backup.request_on(task(), name(), Notification::kPortDestroyed, 0);
}

Result<SendOnceRight> ReceiveRight::cancel_no_senders() const {
  return NotifyTarget::cancel_on(task(), name(), Notification::kNoSenders);
}

Result<SendOnceRight> ReceiveRight::cancel_port_destroyed() const {
  return NotifyTarget::cancel_on(task(), name(), Notification::kPortDestroyed);
}

// ---- SendRight ---------------------------------------------------------------

SendRight SendRight::adopt(std::shared_ptr<Task> task, Name name) noexcept {
  return SendRight(std::move(task), name);
}

Result<SendRight> SendRight::copy() const {
  if (!task()) return Status::kInvalidName;
  Status s = task()->mod_refs(name(), Right::kSend, 1);
  if (!ok(s)) return s;
  return SendRight(task(), name());
}

// A dead-name request asks for the notification at once (sync) if the port
// has died already: whoever asks wants to know it is dead, whenever it died.
Result<SendOnceRight> SendRight::request_dead_name(const NotifyTarget& notify) const {
  return notify.request_on(task(), name(), Notification::kDeadName, 1);
}

Result<SendOnceRight> SendRight::cancel_dead_name() const {
  return NotifyTarget::cancel_on(task(), name(), Notification::kDeadName);
}

// ---- SendOnceRight -----------------------------------------------------------

SendOnceRight SendOnceRight::adopt(std::shared_ptr<Task> task, Name name) noexcept {
  return SendOnceRight(std::move(task), name);
}

Result<SendOnceRight> SendOnceRight::request_dead_name(const NotifyTarget& notify) const {
  return notify.request_on(task(), name(), Notification::kDeadName, 1);
}

Result<SendOnceRight> SendOnceRight::cancel_dead_name() const {
  return NotifyTarget::cancel_on(task(), name(), Notification::kDeadName);
}

// ---- PortSet -----------------------------------------------------------------

PortSet PortSet::adopt(std::shared_ptr<Task> task, Name name) noexcept {
  return PortSet(std::move(task), name);
}

Status PortSet::insert(const ReceiveRight& member) const {
  if (!task()) return Status::kInvalidName;
  if (member.task() != task()) return Status::kInvalidArgument;
  return task()->move_member(member.name(), name());
}

Status PortSet::remove(const ReceiveRight& member) const {
  if (!task()) return Status::kInvalidName;
  if (member.task() != task()) return Status::kInvalidArgument;
  // move_member to MACH_PORT_NULL takes a port out of whatever set it is in;
  // Mach's extract_member refuses a port that is not in this one.
  auto attributes = task()->get_attributes(member.name());
  if (!attributes) return attributes.status();
  if (attributes->pset != name()) return Status::kNotInSet;
  return task()->move_member(member.name(), kNameNull);
}

Result<ReceivedMessage> PortSet::receive() const { return receive(ReceiveOptions{}); }

Result<ReceivedMessage> PortSet::receive(const ReceiveOptions& options) const {
  if (!task()) return Status::kRcvInvalidName;
  return task()->receive(name(), options);
}

}  // namespace portd
