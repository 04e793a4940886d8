// Messages as the core's callers see them.
//
// MessageIn is a message as its sender describes it: names in the sender's
// space and a disposition for each right. The core copies the rights in
// (moving them out of the sender's space into the message), queues the
// message, and on receipt copies them out into the receiver's space, which
// produces a MessageOut: names in the receiver's space and the type of each
// right. Bodies are moved, never copied, on the way through.
//
// Out-of-line memory is opaque here: the shell holds the fds and gives the
// core an AttachmentId and a size to count and charge.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "daemon/ipc/types.h"

namespace portd::ipc {

struct PortDescIn {
  Name name = kNameNull;  // kNameNull and kNameDead travel as they are
  Disposition disposition = Disposition::kNone;
};

// One region; its attachment holds one fd, or two with a release signal
// (volatile regions: a pipe the receiver closes when it lets the region go).
// A body region is the message's body sent out of line: it counts as body
// bytes in the Mach layout size, not as a descriptor.
struct OolIn {
  AttachmentId attachment = 0;
  uint64_t size = 0;
  bool is_volatile = false;
  bool deallocate = false;
  bool release_signal = false;
  bool is_body = false;

  uint64_t fds() const { return release_signal ? 2 : 1; }
};

struct OolPortsIn {
  std::vector<Name> names;
  Disposition disposition = Disposition::kNone;
};

using DescriptorIn = std::variant<PortDescIn, OolIn, OolPortsIn>;

struct MessageIn {
  Name remote = kNameNull;
  Disposition remote_disposition = Disposition::kNone;
  Name local = kNameNull;
  Disposition local_disposition = Disposition::kNone;
  int32_t id = 0;
  std::vector<uint8_t> body;
  std::vector<DescriptorIn> descriptors;
};

struct PortDescOut {
  Name name = kNameNull;
  RightType type = RightType::kNone;
};

struct OolOut {
  AttachmentId attachment = 0;
  uint64_t size = 0;
  bool is_volatile = false;
  bool deallocate = false;
  bool release_signal = false;
  bool is_body = false;

  uint64_t fds() const { return release_signal ? 2 : 1; }
};

struct OolPortsOut {
  std::vector<Name> names;
  RightType type = RightType::kNone;
};

using DescriptorOut = std::variant<PortDescOut, OolOut, OolPortsOut>;

struct Trailer {
  uint64_t seqno = 0;
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  TaskId sender = 0;  // 0: the daemon (a notification)
};

struct MessageOut {
  Name remote = kNameNull;  // the reply right, in the receiver's space
  RightType remote_type = RightType::kNone;
  Name local = kNameNull;  // the receiver's name of the port it came through
  RightType local_type = RightType::kNone;
  int32_t id = 0;
  std::vector<uint8_t> body;
  std::vector<DescriptorOut> descriptors;
  Trailer trailer;
};

// Mach layout sizes, used for MACH_RCV_LARGE and msgh_size.
inline constexpr uint32_t kMachHeaderSize = 24;
inline constexpr uint32_t kMachBodySize = 4;
inline constexpr uint32_t kMachPortDescriptorSize = 12;
inline constexpr uint32_t kMachOolDescriptorSize = 16;

// The size a message occupies in Mach layout, trailer excluded: header, then
// for a complex message the descriptor count and descriptors, then the body.
// A body region (the body sent out of line) counts as body bytes. Works on
// any descriptor variant ordered port, memory, port array whose memory
// alternative has `size` and `is_body`.
template <typename Descriptors>
uint64_t mach_size(const Descriptors& descriptors, uint64_t body_bytes) {
  uint64_t size = kMachHeaderSize + body_bytes;
  uint64_t described = 0;
  for (const auto& d : descriptors) {
    if (d.index() == 0) {
      described += kMachPortDescriptorSize;
    } else if (d.index() == 1 && std::get<1>(d).is_body) {
      size += std::get<1>(d).size;
    } else {
      described += kMachOolDescriptorSize;
    }
  }
  if (described != 0) size += kMachBodySize + described;
  return size;
}

}  // namespace portd::ipc
