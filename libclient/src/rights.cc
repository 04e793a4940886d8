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

// ---- SendOnceRight -----------------------------------------------------------

SendOnceRight SendOnceRight::adopt(std::shared_ptr<Task> task, Name name) noexcept {
  return SendOnceRight(std::move(task), name);
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
