// VolatilePool: a task's pool of pre-faulted shared segments for volatile
// out-of-line memory (DESIGN section 3, docs/ool.md).
//
// A segment is a memfd sealed against shrinking and growing (never against
// writing), filled with posix_fallocate and mapped MAP_SHARED|MAP_POPULATE
// read-write in the sender, so writing into it never faults. Receivers get a
// read-only open of the same memfd (/proc/self/fd reopen): they can map it
// privately but never write the sender's pages, truncate it or seal it.
//
// The return path. Each send of a segment makes a fresh pipe; the write end
// travels with the region (the wire's releaseSignal fd), the read end stays
// in the segment. Whoever holds the write end (the daemon while the message
// is queued, then the receiver, which closes it after unmapping) keeps the
// segment in flight. When the last copy closes (release, the receiver's
// death, or the message destroyed unreceived, since the daemon closes its
// fds then) the read end reports end of file, and the next lend() reclaims
// the segment with one poll() over every segment in flight. No daemon round
// trip, no memory a receiver can write: a receiver can only keep the segment
// it was given (by holding its fd), never release or touch another one.
//
// Bounds: at most kMaxSegments segments and `max_bytes` of them. Capacities
// are powers of two from kMinCapacity, so segments are reused across nearby
// sizes. When no free segment fits and a new one would exceed the bounds,
// free segments are unmapped (largest first) to make room; if what is lent
// and in flight already fills the pool, lend() fails with
// KERN_RESOURCE_SHORTAGE and the caller can fall back to copy mode.
//
// Thread-safe: one mutex. Leases (what a VolatileBuffer and an unsent
// message hold) keep the pool alive, so they may outlive the Task.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "portd/memory.h"
#include "portd/proto/unique_fd.h"
#include "portd/result.h"

namespace portd::detail {

class VolatilePool;

struct VolatileSegment {
  enum class State { kFree, kLent, kInFlight };

  std::byte* map = nullptr;  // the sender's MAP_SHARED read-write mapping
  size_t capacity = 0;       // bytes mapped, and the memfd's size
  proto::UniqueFd ro;        // read-only open of the memfd: what is sent
  proto::UniqueFd release;   // in flight: the read end of the release pipe
  State state = State::kFree;
};

// One segment lent out: owned by a VolatileBuffer, then by an OolRegion.
class VolatileLease {
 public:
  VolatileLease(std::shared_ptr<VolatilePool> pool, VolatileSegment* segment, size_t size);
  // Gives the segment back: in flight if sent() was called, else free.
  ~VolatileLease();
  VolatileLease(const VolatileLease&) = delete;
  VolatileLease& operator=(const VolatileLease&) = delete;

  std::byte* data() const { return segment_->map; }
  size_t size() const { return size_; }
  size_t capacity() const { return segment_->capacity; }
  void set_size(size_t size) { size_ = size; }
  int ro_fd() const { return segment_->ro.get(); }
  // The region was sent with the write end of a pipe whose read end this is.
  void sent(proto::UniqueFd release_read) { release_read_ = std::move(release_read); }

 private:
  std::shared_ptr<VolatilePool> pool_;
  VolatileSegment* segment_;
  size_t size_;
  proto::UniqueFd release_read_;
};

class VolatilePool : public std::enable_shared_from_this<VolatilePool> {
 public:
  static constexpr size_t kMaxSegments = 64;
  static constexpr size_t kMinCapacity = 64 << 10;

  explicit VolatilePool(size_t max_bytes) : max_bytes_(max_bytes) {}
  ~VolatilePool();
  VolatilePool(const VolatilePool&) = delete;
  VolatilePool& operator=(const VolatilePool&) = delete;

  // A segment of at least `size` bytes (size 0 gets the smallest).
  Result<std::shared_ptr<VolatileLease>> lend(size_t size);
  VolatilePoolStats stats();
  void set_max_bytes(size_t bytes);

 private:
  friend class VolatileLease;
  void give_back(VolatileSegment* segment, proto::UniqueFd release_read);
  // Segments whose release pipe reports end of file become free.
  void reclaim_locked();
  // Unmaps free segments, largest first, until `needed` more bytes and one
  // more segment fit the bounds. False if they cannot be made to fit.
  bool make_room_locked(size_t needed);
  void destroy_locked(size_t index);

  std::mutex mu_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  uint64_t created_ = 0;
  uint64_t reused_ = 0;
  std::vector<std::unique_ptr<VolatileSegment>> segments_;
};

// A memfd that may be sealed, close-on-exec, not executable where the kernel
// knows MFD_NOEXEC_SEAL. Invalid on failure (errno set).
proto::UniqueFd make_memfd(const char* name);

}  // namespace portd::detail
