// Out-of-line memory: regions that travel beside a message through shared
// memory, never through the socket (DESIGN section 3, docs/ool.md).
//
// Sending. An OutgoingMessage holds an OolRegion for each out-of-line memory
// descriptor. A region is made in one of three modes:
//
//   copy      OolRegion::copy(bytes): the library copies the bytes into a
//             fresh memfd (posix_fallocate, then write) and seals it
//             (SHRINK, GROW, WRITE, then SEAL). The caller keeps its bytes.
//   move      OolRegion::seal(std::move(buffer)): zero copy. The caller built
//             the data in a SharedBuffer (a library-allocated memfd mapped
//             shared and writable); sealing unmaps the buffer and seals the
//             memfd, so the caller's mapping is gone from then on.
//   volatile  Task::volatile_buffer(n) lends a segment of the task's pool of
//             pre-faulted shared segments; the caller writes into it and adds
//             it to a message. The segment is not sealed (the receiver is told
//             so) and goes back to the pool once the receiver lets it go.
//
// Sealed regions are immutable, so one region can be sent any number of
// times (OolRegion::share) and every receiver sees the same bytes. The daemon
// checks seals and sizes and refuses anything else with
// MACH_SEND_INVALID_MEMORY.
//
// Receiving. Each region arrives mapped MAP_PRIVATE (copy-on-write) in a
// MappedRegion: the receiver reads the bytes as they were at send time (a
// volatile region: as its sender last wrote them) and may write its own copy,
// which no one else sees. Destroying the MappedRegion unmaps it and, for a
// volatile region, gives the segment back to its sender's pool.
//
// C-level code (the Mach API, vm_allocate) keeps raw parts in tables of its
// own: release() gives a buffer's or mapping's parts up, adopt() takes them
// over again.
//
// None of these types is synchronized: one object, one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "portd/export.h"
#include "portd/proto/unique_fd.h"
#include "portd/result.h"

namespace portd {

using UniqueFd = proto::UniqueFd;

class OutgoingMessage;

namespace detail {
class VolatileLease;
}

// ---- sending -----------------------------------------------------------------

// The raw parts of a SharedBuffer.
struct SharedBufferParts {
  int fd = -1;              // the memfd, read-write, unsealed
  void* address = nullptr;  // its MAP_SHARED read-write mapping
  size_t size = 0;          // bytes the owner asked for
  size_t mapped = 0;        // bytes mapped (and the memfd's size): whole pages
};

// A writable shared-memory buffer made by the library, to build data in for
// move mode (OolRegion::seal). Move-only; destruction unmaps and closes it.
class PORTD_API SharedBuffer {
 public:
  // A zero-filled buffer of `size` bytes (its memfd and mapping are rounded
  // up to whole pages), populated in bulk: posix_fallocate, MAP_POPULATE.
  // KERN_RESOURCE_SHORTAGE (detail: the errno text) if the memory or the fds
  // are not there.
  static Result<SharedBuffer> allocate(size_t size);
  // Takes over parts made by allocate() and given up by release().
  static SharedBuffer adopt(const SharedBufferParts& parts) noexcept;

  SharedBuffer() = default;
  ~SharedBuffer();
  SharedBuffer(SharedBuffer&& other) noexcept;
  SharedBuffer& operator=(SharedBuffer&& other) noexcept;
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  std::byte* data() const noexcept { return static_cast<std::byte*>(parts_.address); }
  size_t size() const noexcept { return parts_.size; }
  std::span<std::byte> bytes() const noexcept { return {data(), size()}; }
  int fd() const noexcept { return parts_.fd; }
  explicit operator bool() const noexcept { return parts_.fd >= 0; }

  // Gives the memfd and mapping up; the buffer becomes empty.
  SharedBufferParts release() noexcept;
  // Unmaps and closes now.
  void reset() noexcept;

 private:
  friend class OolRegion;
  SharedBufferParts parts_;
};

// A writable segment lent by a task's volatile pool (Task::volatile_buffer).
// Fill it and hand it to OutgoingMessage::add_ool_volatile. Dropped unsent,
// it goes straight back to the pool.
class PORTD_API VolatileBuffer {
 public:
  VolatileBuffer() = default;
  ~VolatileBuffer();
  VolatileBuffer(VolatileBuffer&&) noexcept;
  VolatileBuffer& operator=(VolatileBuffer&&) noexcept;
  VolatileBuffer(const VolatileBuffer&) = delete;
  VolatileBuffer& operator=(const VolatileBuffer&) = delete;

  std::byte* data() const noexcept;
  size_t size() const noexcept;
  std::span<std::byte> bytes() const noexcept { return {data(), size()}; }
  explicit operator bool() const noexcept { return lease_ != nullptr; }

 private:
  friend class OolRegion;
  friend class Task;
  explicit VolatileBuffer(std::shared_ptr<detail::VolatileLease> lease) noexcept;
  std::shared_ptr<detail::VolatileLease> lease_;
};

// A region ready to travel: a sealed memfd (copy and move modes, or an fd the
// caller made) or a volatile pool segment. Move-only; what a message holds
// for each out-of-line memory descriptor until it is sent.
class PORTD_API OolRegion {
 public:
  // Copy mode: a fresh sealed memfd holding a copy of `bytes`.
  // KERN_RESOURCE_SHORTAGE (detail: the errno text) if it cannot be made.
  static Result<OolRegion> copy(std::span<const std::byte> bytes);
  static Result<OolRegion> copy(const void* data, size_t size);
  // Move mode: unmaps `buffer` and seals its memfd; the first `size` bytes
  // (default: all of buffer.size()) belong to the message, deallocate is set.
  // Fails, leaving `buffer` with the caller (mapped again, possibly at another
  // address), with MACH_SEND_INVALID_MEMORY if the memfd cannot be sealed
  // (someone else still maps it writable) or `size` is over buffer.size().
  static Result<OolRegion> seal(SharedBuffer&& buffer, std::optional<size_t> size = {});
  // Volatile mode: the lent segment; the first `size` bytes (default all)
  // belong to the message.
  static Result<OolRegion> lend(VolatileBuffer&& buffer, std::optional<size_t> size = {});
  // An fd the caller prepared itself, sent as it is: the daemon checks it
  // (sealed unless `is_volatile`; at least `size` bytes). For baselines,
  // tests and code that makes its own memfds.
  static OolRegion adopt(UniqueFd fd, uint64_t size, bool is_volatile = false,
                         bool deallocate = false) noexcept;

  OolRegion() = default;
  ~OolRegion();
  OolRegion(OolRegion&&) noexcept;
  OolRegion& operator=(OolRegion&&) noexcept;
  OolRegion(const OolRegion&) = delete;
  OolRegion& operator=(const OolRegion&) = delete;

  // Another handle on the same sealed region (the fd duplicated): send the
  // same bytes to several ports without copying them again. Volatile
  // regions are lent once: KERN_INVALID_ARGUMENT.
  Result<OolRegion> share() const;

  uint64_t size() const noexcept { return size_; }
  bool is_volatile() const noexcept { return lease_ != nullptr || adopted_volatile_; }
  bool deallocate() const noexcept { return deallocate_; }
  // A segment of a task's volatile pool: it travels with a release signal
  // (docs/ool.md).
  bool pooled() const noexcept { return lease_ != nullptr; }
  // The fd the receiver will get (a read-only one for a pool segment).
  int fd() const noexcept;
  explicit operator bool() const noexcept { return fd() >= 0; }

 private:
  friend class Task;
  friend class OutgoingMessage;
  UniqueFd fd_;
  uint64_t size_ = 0;
  bool deallocate_ = false;
  bool adopted_volatile_ = false;
  std::shared_ptr<detail::VolatileLease> lease_;
};

// How the task's volatile pool is used (Task::volatile_pool_stats).
struct VolatilePoolStats {
  size_t segments = 0;   // segments the pool holds
  size_t bytes = 0;      // their total size
  size_t lent = 0;       // in a VolatileBuffer or an unsent message
  size_t in_flight = 0;  // sent, not yet released by their receiver
  uint64_t created = 0;  // segments made since the task connected
  uint64_t reused = 0;   // times a segment was lent again
};

// ---- receiving ---------------------------------------------------------------

// The raw parts of a MappedRegion.
struct MappedRegionParts {
  void* address = nullptr;  // MAP_PRIVATE mapping, readable and writable
  size_t size = 0;          // the region's bytes
  size_t mapped = 0;        // bytes mapped: whole pages
  int release_fd = -1;      // volatile: the sender's release signal
  bool is_volatile = false;
};

// A received region, mapped copy-on-write. Move-only; destruction unmaps it
// and then (volatile) closes the release signal, which gives the segment
// back to the sender's pool.
class PORTD_API MappedRegion {
 public:
  MappedRegion() = default;
  ~MappedRegion();
  MappedRegion(MappedRegion&&) noexcept;
  MappedRegion& operator=(MappedRegion&&) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  // Maps `fd` (MAP_PRIVATE, read and write): `size` bytes; `release_fd` is
  // kept until the mapping goes. The fd itself is not kept. A region sealed
  // neither against shrinking nor (unless volatile) against writing is
  // refused: KERN_INVALID_ARGUMENT. Zero bytes map to an empty region.
  static Result<MappedRegion> map(int fd, uint64_t size, bool is_volatile,
                                  UniqueFd release_fd = {});
  static MappedRegion adopt(const MappedRegionParts& parts) noexcept;

  std::byte* data() const noexcept { return static_cast<std::byte*>(parts_.address); }
  size_t size() const noexcept { return parts_.size; }
  std::span<std::byte> bytes() const noexcept { return {data(), size()}; }
  bool is_volatile() const noexcept { return parts_.is_volatile; }
  bool mapped() const noexcept { return parts_.address != nullptr; }

  MappedRegionParts release() noexcept;
  // Unmaps now and lets a volatile segment go back to its sender.
  void reset() noexcept;

 private:
  MappedRegionParts parts_;
};

}  // namespace portd
