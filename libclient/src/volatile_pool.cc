#include "libclient/src/volatile_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

namespace portd::detail {

namespace {

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

proto::UniqueFd make_memfd(const char* name) {
  // Kernels since 6.3 warn about memfds that do not say whether they may be
  // executed; older ones refuse the flag with EINVAL.
  int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  if (fd < 0 && errno == EINVAL) fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  return proto::UniqueFd(fd);
}

// ---- VolatileLease ----------------------------------------------------------------

VolatileLease::VolatileLease(std::shared_ptr<VolatilePool> pool, VolatileSegment* segment,
                             size_t size)
    : pool_(std::move(pool)), segment_(segment), size_(size) {}

VolatileLease::~VolatileLease() { pool_->give_back(segment_, std::move(release_read_)); }

// ---- VolatilePool -----------------------------------------------------------------

VolatilePool::~VolatilePool() {
  // Leases hold the pool, so nothing is lent now. Segments in flight are
  // unmapped here; their receivers have mappings of their own.
  for (auto& s : segments_) ::munmap(s->map, s->capacity);
}

void VolatilePool::set_max_bytes(size_t bytes) {
  std::lock_guard<std::mutex> guard(mu_);
  max_bytes_ = bytes;
}

void VolatilePool::give_back(VolatileSegment* segment, proto::UniqueFd release_read) {
  std::lock_guard<std::mutex> guard(mu_);
  if (release_read) {
    segment->release = std::move(release_read);
    segment->state = VolatileSegment::State::kInFlight;
  } else {
    segment->state = VolatileSegment::State::kFree;
  }
}

void VolatilePool::reclaim_locked() {
  std::vector<pollfd> fds;
  std::vector<VolatileSegment*> which;
  for (auto& s : segments_) {
    if (s->state != VolatileSegment::State::kInFlight) continue;
    fds.push_back(pollfd{s->release.get(), POLLIN, 0});
    which.push_back(s.get());
  }
  if (fds.empty()) return;
  int n;
  do {
    n = ::poll(fds.data(), fds.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    // Nobody writes to the pipe, so the only event is end of file: every
    // write end is closed. (POLLIN without POLLHUP would mean a holder wrote
    // to it; that does not release anything.)
    if ((fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) == 0) continue;
    which[i]->release.reset();
    which[i]->state = VolatileSegment::State::kFree;
  }
}

void VolatilePool::destroy_locked(size_t index) {
  VolatileSegment& s = *segments_[index];
  ::munmap(s.map, s.capacity);
  bytes_ -= s.capacity;
  segments_.erase(segments_.begin() + static_cast<ptrdiff_t>(index));
}

bool VolatilePool::make_room_locked(size_t needed) {
  auto fits = [&] {
    return segments_.size() < kMaxSegments && needed <= max_bytes_ && bytes_ <= max_bytes_ - needed;
  };
  while (!fits()) {
    size_t victim = segments_.size();
    for (size_t i = 0; i < segments_.size(); ++i) {
      if (segments_[i]->state != VolatileSegment::State::kFree) continue;
      if (victim == segments_.size() || segments_[i]->capacity > segments_[victim]->capacity)
        victim = i;
    }
    if (victim == segments_.size()) return false;
    destroy_locked(victim);
  }
  return true;
}

Result<std::shared_ptr<VolatileLease>> VolatilePool::lend(size_t size) {
  using R = Result<std::shared_ptr<VolatileLease>>;
  if (size > (size_t{1} << 62)) return R(Status::kInvalidArgument, "size too large");
  const size_t capacity = std::max(kMinCapacity, std::bit_ceil(size));

  std::lock_guard<std::mutex> guard(mu_);
  reclaim_locked();
  // Best fit among free segments.
  VolatileSegment* best = nullptr;
  for (auto& s : segments_) {
    if (s->state != VolatileSegment::State::kFree || s->capacity < size) continue;
    if (best == nullptr || s->capacity < best->capacity) best = s.get();
  }
  if (best != nullptr) {
    best->state = VolatileSegment::State::kLent;
    ++reused_;
    return std::make_shared<VolatileLease>(shared_from_this(), best, size);
  }

  if (!make_room_locked(capacity)) {
    return R(Status::kResourceShortage, "volatile pool exhausted: " + std::to_string(bytes_) +
                                            " of " + std::to_string(max_bytes_) + " bytes in " +
                                            std::to_string(segments_.size()) +
                                            " segments are lent or in flight");
  }

  // A new segment, faulted in once and for all.
  proto::UniqueFd rw = make_memfd("portd-volatile");
  if (!rw) return R(Status::kResourceShortage, errno_text("memfd_create", errno));
  if (int err = ::posix_fallocate(rw.get(), 0, static_cast<off_t>(capacity)); err != 0)
    return R(Status::kResourceShortage, errno_text("posix_fallocate", err));
  if (::fcntl(rw.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return R(Status::kResourceShortage, errno_text("sealing a segment", errno));
  // What receivers get: the same file, opened read-only.
  const std::string path = "/proc/self/fd/" + std::to_string(rw.get());
  proto::UniqueFd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ro) return R(Status::kResourceShortage, errno_text("reopening a segment read-only", errno));
  void* map =
      ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rw.get(), 0);
  if (map == MAP_FAILED) return R(Status::kResourceShortage, errno_text("mmap", errno));

  auto segment = std::make_unique<VolatileSegment>();
  segment->map = static_cast<std::byte*>(map);
  segment->capacity = capacity;
  segment->ro = std::move(ro);
  segment->state = VolatileSegment::State::kLent;
  VolatileSegment* raw = segment.get();
  segments_.push_back(std::move(segment));
  bytes_ += capacity;
  ++created_;
  return std::make_shared<VolatileLease>(shared_from_this(), raw, size);
}

VolatilePoolStats VolatilePool::stats() {
  std::lock_guard<std::mutex> guard(mu_);
  reclaim_locked();
  VolatilePoolStats s;
  s.segments = segments_.size();
  s.bytes = bytes_;
  for (const auto& seg : segments_) {
    s.lent += seg->state == VolatileSegment::State::kLent;
    s.in_flight += seg->state == VolatileSegment::State::kInFlight;
  }
  s.created = created_;
  s.reused = reused_;
  return s;
}

}  // namespace portd::detail
