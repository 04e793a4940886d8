#include "portd/message.h"

#include <cstdint>
#include <cstring>

namespace portd {

namespace {

// The name a held handle had, and the handle let go of it.
void let_go(std::variant<ReceiveRight, SendRight, SendOnceRight>& held) {
  std::visit([](auto& handle) { handle.release(); }, held);
}

}  // namespace

OutgoingMessage::OutgoingMessage() = default;
OutgoingMessage::~OutgoingMessage() = default;
OutgoingMessage::OutgoingMessage(OutgoingMessage&&) noexcept = default;
OutgoingMessage& OutgoingMessage::operator=(OutgoingMessage&&) noexcept = default;

void OutgoingMessage::note_task(const std::shared_ptr<Task>& task) {
  if (!task) return;
  if (task_ == nullptr) {
    task_ = task.get();
  } else if (task_ != task.get() && problem_ == Status::kSuccess) {
    problem_ = Status::kSendInvalidRight;
  }
}

Disposition OutgoingMessage::check_make(Disposition make) {
  if (make != Disposition::kMakeSend && make != Disposition::kMakeSendOnce)
    note_problem(Status::kSendInvalidType);
  return make;
}

void OutgoingMessage::note_problem(Status status) {
  if (problem_ == Status::kSuccess) problem_ = status;
}

// ---- remote ------------------------------------------------------------------

OutgoingMessage& OutgoingMessage::set_remote(Name name, Disposition disposition) {
  remote_held_.reset();
  remote_ = name;
  remote_disposition_ = disposition;
  return *this;
}

OutgoingMessage& OutgoingMessage::set_remote(const SendRight& right) {
  note_task(right.task());
  remote_held_.reset();
  remote_ = right.name();
  remote_disposition_ = Disposition::kCopySend;
  return *this;
}

OutgoingMessage& OutgoingMessage::set_remote(SendRight&& right) {
  note_task(right.task());
  remote_ = right.name();
  remote_disposition_ = Disposition::kMoveSend;
  remote_held_ = Held(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::set_remote(SendOnceRight&& right) {
  note_task(right.task());
  remote_ = right.name();
  remote_disposition_ = Disposition::kMoveSendOnce;
  remote_held_ = Held(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::set_remote(const ReceiveRight& port, Disposition make) {
  note_task(port.task());
  remote_held_.reset();
  remote_ = port.name();
  remote_disposition_ = check_make(make);
  return *this;
}

// ---- local -------------------------------------------------------------------

OutgoingMessage& OutgoingMessage::set_local(Name name, Disposition disposition) {
  local_held_.reset();
  local_ = name;
  local_disposition_ = disposition;
  return *this;
}

OutgoingMessage& OutgoingMessage::set_local(const ReceiveRight& port, Disposition make) {
  note_task(port.task());
  local_held_.reset();
  local_ = port.name();
  local_disposition_ = check_make(make);
  return *this;
}

OutgoingMessage& OutgoingMessage::set_local(const SendRight& right) {
  note_task(right.task());
  local_held_.reset();
  local_ = right.name();
  local_disposition_ = Disposition::kCopySend;
  return *this;
}

OutgoingMessage& OutgoingMessage::set_local(SendRight&& right) {
  note_task(right.task());
  local_ = right.name();
  local_disposition_ = Disposition::kMoveSend;
  local_held_ = Held(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::set_local(SendOnceRight&& right) {
  note_task(right.task());
  local_ = right.name();
  local_disposition_ = Disposition::kMoveSendOnce;
  local_held_ = Held(std::move(right));
  return *this;
}

// ---- descriptors -------------------------------------------------------------

OutgoingMessage& OutgoingMessage::add_port(Name name, Disposition disposition) {
  descriptors_.emplace_back(PortDescriptor{name, disposition});
  return *this;
}

OutgoingMessage& OutgoingMessage::add_port(ReceiveRight&& right) {
  note_task(right.task());
  descriptors_.emplace_back(PortDescriptor{right.name(), Disposition::kMoveReceive});
  held_.emplace_back(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_port(const SendRight& right) {
  note_task(right.task());
  descriptors_.emplace_back(PortDescriptor{right.name(), Disposition::kCopySend});
  return *this;
}

OutgoingMessage& OutgoingMessage::add_port(SendRight&& right) {
  note_task(right.task());
  descriptors_.emplace_back(PortDescriptor{right.name(), Disposition::kMoveSend});
  held_.emplace_back(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_port(SendOnceRight&& right) {
  note_task(right.task());
  descriptors_.emplace_back(PortDescriptor{right.name(), Disposition::kMoveSendOnce});
  held_.emplace_back(std::move(right));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_port(const ReceiveRight& port, Disposition make) {
  note_task(port.task());
  descriptors_.emplace_back(PortDescriptor{port.name(), check_make(make)});
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_ports(std::vector<Name> names, Disposition disposition) {
  descriptors_.emplace_back(OolPortsDescriptor{std::move(names), disposition});
  return *this;
}

namespace {

// An array of rights given by move: the message holds the handles.
template <typename Handle, typename Held, typename Note>
OolPortsDescriptor hold_all(std::vector<Handle>& rights, Disposition disposition,
                            std::vector<Held>& held, Note note) {
  OolPortsDescriptor array;
  array.disposition = disposition;
  array.names.reserve(rights.size());
  for (auto& right : rights) {
    note(right.task());
    array.names.push_back(right.name());
    held.emplace_back(std::move(right));
  }
  rights.clear();
  return array;
}

}  // namespace

OutgoingMessage& OutgoingMessage::add_ool_ports(std::vector<SendRight>&& rights) {
  auto note = [this](const std::shared_ptr<Task>& t) { note_task(t); };
  descriptors_.emplace_back(hold_all(rights, Disposition::kMoveSend, held_, note));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_ports(std::vector<SendOnceRight>&& rights) {
  auto note = [this](const std::shared_ptr<Task>& t) { note_task(t); };
  descriptors_.emplace_back(hold_all(rights, Disposition::kMoveSendOnce, held_, note));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_ports(std::vector<ReceiveRight>&& rights) {
  auto note = [this](const std::shared_ptr<Task>& t) { note_task(t); };
  descriptors_.emplace_back(hold_all(rights, Disposition::kMoveReceive, held_, note));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_ports(std::span<const SendRight> rights) {
  OolPortsDescriptor array;
  array.disposition = Disposition::kCopySend;
  array.names.reserve(rights.size());
  for (const auto& right : rights) {
    note_task(right.task());
    array.names.push_back(right.name());
  }
  descriptors_.emplace_back(std::move(array));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_ports(std::span<const ReceiveRight> ports,
                                                Disposition make) {
  OolPortsDescriptor array;
  array.disposition = check_make(make);
  array.names.reserve(ports.size());
  for (const auto& port : ports) {
    note_task(port.task());
    array.names.push_back(port.name());
  }
  descriptors_.emplace_back(std::move(array));
  return *this;
}

// ---- out-of-line memory --------------------------------------------------------

OutgoingMessage& OutgoingMessage::add_ool(OolRegion&& region) {
  if (!region) note_problem(Status::kSendInvalidMemory);
  descriptors_.emplace_back(std::move(region));
  return *this;
}

OutgoingMessage& OutgoingMessage::add_ool_copy(std::span<const std::byte> bytes) {
  auto region = OolRegion::copy(bytes);
  if (!region) {
    note_problem(region.status());
    return *this;
  }
  return add_ool(std::move(*region));
}

OutgoingMessage& OutgoingMessage::add_ool_move(SharedBuffer&& buffer, std::optional<size_t> size) {
  auto region = OolRegion::seal(std::move(buffer), size);
  if (!region) {
    note_problem(region.status());
    return *this;
  }
  return add_ool(std::move(*region));
}

OutgoingMessage& OutgoingMessage::add_ool_volatile(VolatileBuffer&& buffer,
                                                   std::optional<size_t> size) {
  auto region = OolRegion::lend(std::move(buffer), size);
  if (!region) {
    note_problem(region.status());
    return *this;
  }
  return add_ool(std::move(*region));
}

OutgoingMessage& OutgoingMessage::add_ool_memory(const OolMemoryDescriptor& memory) {
  if (memory.address == nullptr && memory.size != 0) {
    note_problem(Status::kSendInvalidMemory);
    return *this;
  }
  if (memory.size > SIZE_MAX) {
    note_problem(Status::kSendTooLarge);
    return *this;
  }
  auto region = OolRegion::copy(memory.address, static_cast<size_t>(memory.size));
  if (!region) {
    note_problem(region.status());
    return *this;
  }
  region->deallocate_ = memory.deallocate;
  region->adopted_volatile_ = memory.is_volatile;
  return add_ool(std::move(*region));
}

// ---- body --------------------------------------------------------------------

OutgoingMessage& OutgoingMessage::set_body(std::span<const std::byte> bytes) {
  body_.assign(bytes.begin(), bytes.end());
  return *this;
}

OutgoingMessage& OutgoingMessage::set_body(std::string_view text) {
  body_.resize(text.size());
  if (!text.empty()) std::memcpy(body_.data(), text.data(), text.size());
  return *this;
}

void OutgoingMessage::consumed() {
  if (remote_held_) let_go(*remote_held_);
  if (local_held_) let_go(*local_held_);
  for (auto& held : held_) let_go(held);
  // Empty again, as a fresh message, except that the body keeps its buffer
  // when it is small: a message object reused for the next send (as a
  // sending loop does) allocates nothing; a large buffer is given back.
  constexpr size_t kKeptBodyCapacity = size_t{64} << 10;
  std::vector<std::byte> body = std::move(body_);
  *this = OutgoingMessage();
  if (body.capacity() <= kKeptBodyCapacity) {
    body.clear();
    body_ = std::move(body);
  }
}

}  // namespace portd
