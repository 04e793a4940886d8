// Messages: what a sender builds (OutgoingMessage) and what a receiver gets
// (ReceivedMessage).
//
// An OutgoingMessage names its destination (remote), an optional reply port
// (local), an id, inline body bytes and descriptors. Every right it carries is
// named in the sender's space with a disposition (MACH_MSG_TYPE_*): handles
// given by reference are copied or made (COPY_SEND, MAKE_SEND,
// MAKE_SEND_ONCE) and stay the caller's; handles given by move (MOVE_*) are
// held by the message. Task::send consumes the message if and only if the send
// succeeded: on success the held handles let go of their names (the rights now
// travel with the message); on failure the message is left exactly as it was,
// still holding its rights, so it can be sent again, or dropped, which
// releases them. The raw overloads (a Name and a Disposition) hold nothing:
// the caller keeps track of raw names, as a Mach program does.
//
// Out-of-line memory (portd/memory.h, docs/ool.md): the message holds an
// OolRegion per region, made in copy, move or volatile mode; a body larger
// than the task's threshold (64 KiB by default) travels out of line too, in
// copy mode, and comes back as the receiver's body. Out-of-line port arrays
// carry one disposition for all their names, MACH_PORT_NULL and
// MACH_PORT_DEAD included.
//
// A ReceivedMessage is plain data: every name in it is in the receiver's
// space, and the rights it carries are the receiver's to use or release
// (adopt them into handles, or deallocate them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portd/export.h"
#include "portd/memory.h"
#include "portd/proto/unique_fd.h"
#include "portd/rights.h"
#include "portd/status.h"
#include "portd/types.h"

namespace portd {

using UniqueFd = proto::UniqueFd;

// A single right carried in a message.
struct PortDescriptor {
  Name name = kNameNull;
  Disposition disposition = Disposition::kNone;
};

// Out-of-line memory as a Mach program describes it
// (mach_msg_ool_descriptor_t): the bytes at `address` are copied when the
// descriptor is added (copy mode, as OolRegion::copy). `deallocate` and
// `is_volatile` travel as flags; the caller frees its own memory. For zero
// copy use add_ool_move or add_ool_volatile.
struct OolMemoryDescriptor {
  const void* address = nullptr;
  uint64_t size = 0;
  bool deallocate = false;
  bool is_volatile = false;
};

// An out-of-line array of rights, one disposition for all
// (mach_msg_ool_ports_descriptor_t).
struct OolPortsDescriptor {
  std::vector<Name> names;
  Disposition disposition = Disposition::kNone;
};

// Out-of-line memory (mach_msg_ool_descriptor_t) is an OolRegion
// (portd/memory.h).
using Descriptor = std::variant<PortDescriptor, OolRegion, OolPortsDescriptor>;

class PORTD_API OutgoingMessage {
 public:
  OutgoingMessage();
  ~OutgoingMessage();
  OutgoingMessage(OutgoingMessage&&) noexcept;
  OutgoingMessage& operator=(OutgoingMessage&&) noexcept;
  OutgoingMessage(const OutgoingMessage&) = delete;
  OutgoingMessage& operator=(const OutgoingMessage&) = delete;

  // ---- destination (msgh_remote_port) ----
  OutgoingMessage& set_remote(Name name, Disposition disposition);
  OutgoingMessage& set_remote(const SendRight& right);  // COPY_SEND
  OutgoingMessage& set_remote(SendRight&& right);       // MOVE_SEND
  OutgoingMessage& set_remote(SendOnceRight&& right);   // MOVE_SEND_ONCE
  // To a port the caller receives on: MAKE_SEND or MAKE_SEND_ONCE.
  OutgoingMessage& set_remote(const ReceiveRight& port, Disposition make);

  // ---- reply port (msgh_local_port) ----
  OutgoingMessage& set_local(Name name, Disposition disposition);
  // The usual reply port: MAKE_SEND_ONCE (or MAKE_SEND) from a receive right.
  OutgoingMessage& set_local(const ReceiveRight& port,
                             Disposition make = Disposition::kMakeSendOnce);
  OutgoingMessage& set_local(const SendRight& right);  // COPY_SEND
  OutgoingMessage& set_local(SendRight&& right);       // MOVE_SEND
  OutgoingMessage& set_local(SendOnceRight&& right);   // MOVE_SEND_ONCE

  // ---- descriptors, in order ----
  OutgoingMessage& add_port(Name name, Disposition disposition);
  OutgoingMessage& add_port(ReceiveRight&& right);    // MOVE_RECEIVE
  OutgoingMessage& add_port(const SendRight& right);  // COPY_SEND
  OutgoingMessage& add_port(SendRight&& right);       // MOVE_SEND
  OutgoingMessage& add_port(SendOnceRight&& right);   // MOVE_SEND_ONCE
  // MAKE_SEND or MAKE_SEND_ONCE from a receive right the caller keeps.
  OutgoingMessage& add_port(const ReceiveRight& port, Disposition make);

  // Out-of-line port arrays: one disposition for every name. Raw names may
  // include kNameNull and kNameDead, which travel as they are.
  OutgoingMessage& add_ool_ports(std::vector<Name> names, Disposition disposition);
  OutgoingMessage& add_ool_ports(std::vector<SendRight>&& rights);      // MOVE_SEND each
  OutgoingMessage& add_ool_ports(std::vector<SendOnceRight>&& rights);  // MOVE_SEND_ONCE each
  OutgoingMessage& add_ool_ports(std::vector<ReceiveRight>&& rights);   // MOVE_RECEIVE each
  OutgoingMessage& add_ool_ports(std::span<const SendRight> rights);    // COPY_SEND each
  // MAKE_SEND or MAKE_SEND_ONCE from receive rights the caller keeps.
  OutgoingMessage& add_ool_ports(std::span<const ReceiveRight> ports, Disposition make);

  // Out-of-line memory (portd/memory.h). The message holds the region until
  // it is sent. A region that cannot be made is remembered, and send()
  // refuses the message with its status (nothing is sent).
  OutgoingMessage& add_ool(OolRegion&& region);
  // Copy mode: the bytes are copied into a fresh sealed memfd now.
  OutgoingMessage& add_ool_copy(std::span<const std::byte> bytes);
  // Move mode: `buffer` is unmapped and sealed now; its first `size` bytes
  // (default all) travel. If it cannot be sealed, `buffer` stays the
  // caller's and send() answers MACH_SEND_INVALID_MEMORY.
  OutgoingMessage& add_ool_move(SharedBuffer&& buffer, std::optional<size_t> size = {});
  // Volatile mode: a segment of the task's pool (Task::volatile_buffer).
  OutgoingMessage& add_ool_volatile(VolatileBuffer&& buffer, std::optional<size_t> size = {});
  // Mach-shaped: copies `memory.size` bytes from `memory.address` now.
  OutgoingMessage& add_ool_memory(const OolMemoryDescriptor& memory);

  // ---- id and body ----
  OutgoingMessage& set_id(int32_t id) {
    id_ = id;
    return *this;
  }
  OutgoingMessage& set_body(std::span<const std::byte> bytes);
  OutgoingMessage& set_body(std::string_view text);
  std::vector<std::byte>& body() { return body_; }
  // A body over the task's threshold (Task::set_ool_threshold) is sent out
  // of line in copy mode; the receiver gets it back as its body.

  Name remote() const { return remote_; }
  Disposition remote_disposition() const { return remote_disposition_; }
  Name local() const { return local_; }
  Disposition local_disposition() const { return local_disposition_; }
  int32_t id() const { return id_; }
  const std::vector<std::byte>& body() const { return body_; }
  const std::vector<Descriptor>& descriptors() const { return descriptors_; }
  // The first problem met while building, which send() will answer with
  // (kSuccess if none).
  Status problem() const { return problem_; }
  // Handles given by move that the message holds until it is sent.
  size_t held_rights() const { return held_.size(); }

 private:
  friend class Task;
  using Held = std::variant<ReceiveRight, SendRight, SendOnceRight>;

  void note_task(const std::shared_ptr<Task>& task);
  // A disposition that makes a right from a receive right the caller keeps.
  Disposition check_make(Disposition make);
  void note_problem(Status status);
  // The message was sent: held handles let go of their names, and the
  // message is reset to empty.
  void consumed();

  Name remote_ = kNameNull;
  Disposition remote_disposition_ = Disposition::kNone;
  Name local_ = kNameNull;
  Disposition local_disposition_ = Disposition::kNone;
  int32_t id_ = 0;
  std::vector<std::byte> body_;
  std::vector<Descriptor> descriptors_;
  std::optional<Held> remote_held_;
  std::optional<Held> local_held_;
  std::vector<Held> held_;  // descriptors' rights given by move
  // The task the handles belong to; names from two tasks cannot be mixed.
  const Task* task_ = nullptr;
  // The first misuse found while building (handles of two tasks, a MOVE_*
  // asked of a handle given by reference); send refuses the message with it.
  Status problem_ = Status::kSuccess;
};

// A right that arrived in a message, named in the receiver's space
// (kNameDead for a right whose port died in transit).
struct ReceivedPort {
  Name name = kNameNull;
  RightType type = RightType::kNone;
};

// Out-of-line memory as received: mapped copy-on-write (MAP_PRIVATE). The
// receiver reads the bytes as they were sent and may write its own copy.
// `memory` unmaps when destroyed; for a volatile region that also gives the
// segment back to its sender. If the region could not be mapped, `memory` is
// empty and the receive answered MACH_RCV_BODY_ERROR.
struct ReceivedOolMemory {
  uint64_t size = 0;
  bool is_volatile = false;  // the sender may still be writing to it
  bool deallocate = false;   // the sender gave its buffer up (move mode)
  MappedRegion memory;

  std::span<std::byte> bytes() const { return memory.bytes(); }
};

struct ReceivedOolPorts {
  std::vector<Name> names;
  RightType type = RightType::kNone;
};

using ReceivedDescriptor = std::variant<ReceivedPort, ReceivedOolMemory, ReceivedOolPorts>;

struct ReceivedMessage {
  Name remote = kNameNull;  // the reply right, if the sender gave one
  RightType remote_type = RightType::kNone;
  Name local = kNameNull;  // the port it was queued on (a member, for a set)
  RightType local_type = RightType::kNone;
  int32_t id = 0;
  std::vector<std::byte> body;
  std::vector<ReceivedDescriptor> descriptors;
  Trailer trailer;
  // With MACH_RCV_TOO_LARGE: the buffer size the message needs (Mach layout,
  // requested trailer included). Everything else is empty then.
  uint32_t needed_size = 0;

  std::string_view body_text() const {
    return {reinterpret_cast<const char*>(body.data()), body.size()};
  }
};

}  // namespace portd
