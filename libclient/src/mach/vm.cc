#include "libclient/src/mach/vm.h"

#include <fcntl.h>
#include <mach/mach_vm.h>
#include <mach/vm_map.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "libclient/src/mach/task_state.h"
#include "libclient/src/volatile_pool.h"

namespace portd::mach {

namespace {

constexpr int kReadWrite = PROT_READ | PROT_WRITE;

// The memfd of one shared buffer. A region partly deallocated is several
// pieces of one memfd; the memfd is closed with its last piece.
struct Backing {
  proto::UniqueFd fd;
  size_t length = 0;  // the memfd's size, and the whole region's: whole pages
};

struct Piece {
  size_t length = 0;
  size_t offset = 0;  // where in the memfd the piece starts
  std::shared_ptr<Backing> backing;
};

// A private copy of a piece, made for a child of fork().
struct ForkCopy {
  uintptr_t address = 0;
  size_t length = 0;
  void* copy = nullptr;
};

struct VmState {
  std::mutex mu;
  // Shared regions (or what is left of them), by start address; they never
  // overlap. At most max_backings() memfds, each at least kSharedMinBytes,
  // and every piece at least a page: bounded by the memory they describe.
  std::map<uintptr_t, Piece> pieces;
  size_t backings = 0;  // distinct memfds in `pieces`
  // Release signals of received volatile regions, by mapped address.
  std::map<uintptr_t, int> releases;
  // Between fork()'s prepare handler and the parent's or child's.
  std::vector<ForkCopy> fork_copies;
};

VmState& state() {
  static auto* s = new VmState;  // never destroyed: used until exit
  return *s;
}

size_t page_size() {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

// Rounds `size` up to whole pages; false if that overflows.
bool round_to_pages(uint64_t size, size_t* out) {
  const uint64_t mask = page_size() - 1;
  if (size > SIZE_MAX - mask) return false;
  *out = static_cast<size_t>((size + mask) & ~mask);
  return true;
}

void* as_pointer(uintptr_t address) { return reinterpret_cast<void*>(address); }

// How many shared regions the process may have at once: each holds an fd, and
// a program must keep most of its fd limit for itself.
size_t max_backings() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 16;
  const rlim_t quarter = limit.rlim_cur == RLIM_INFINITY ? 4096 : limit.rlim_cur / 4;
  return static_cast<size_t>(std::clamp<rlim_t>(quarter, 16, 4096));
}

// Drops [start, end) from the table. Pieces that stick out keep their outer
// parts; the dropped part of a memfd that is still in use is punched out of
// it (its pages are freed), and a memfd no piece uses any more is closed.
void forget_locked(VmState& s, uintptr_t start, uintptr_t end) {
  auto it = s.pieces.lower_bound(start);
  if (it != s.pieces.begin()) {
    auto before = std::prev(it);
    if (before->first + before->second.length > start) it = before;
  }
  while (it != s.pieces.end() && it->first < end) {
    const uintptr_t piece_start = it->first;
    Piece piece = std::move(it->second);
    s.pieces.erase(it);
    const uintptr_t piece_end = piece_start + piece.length;
    const uintptr_t cut_start = std::max(piece_start, start);
    const uintptr_t cut_end = std::min(piece_end, end);
    if (piece_start < cut_start) {
      s.pieces.emplace(piece_start, Piece{cut_start - piece_start, piece.offset, piece.backing});
    }
    if (cut_end < piece_end) {
      s.pieces.emplace(cut_end, Piece{piece_end - cut_end, piece.offset + (cut_end - piece_start),
                                      piece.backing});
    }
    if (piece.backing.use_count() == 1) {
      --s.backings;  // its last piece: the memfd is closed with `piece`
    } else {
      ::fallocate(piece.backing->fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(piece.offset + (cut_start - piece_start)),
                  static_cast<off_t>(cut_end - cut_start));
    }
    it = s.pieces.lower_bound(piece_end);
  }
}

void insert_locked(VmState& s, uintptr_t start, size_t length, proto::UniqueFd fd) {
  auto backing = std::make_shared<Backing>();
  backing->fd = std::move(fd);
  backing->length = length;
  s.pieces.emplace(start, Piece{length, 0, std::move(backing)});
  ++s.backings;
}

// Maps `length` bytes at *address (or anywhere, with VM_FLAGS_ANYWHERE):
// `fd` shared (and populated, if `populate`) if valid, else private anonymous
// memory.
kern_return_t map_locked(uint64_t* address, size_t length, int flags, int fd, bool populate) {
  const bool anywhere = (flags & VM_FLAGS_ANYWHERE) != 0;
  int map_flags = fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (fd >= 0 && populate) map_flags |= MAP_POPULATE;
  void* hint = nullptr;
  if (!anywhere) {
    hint = as_pointer(static_cast<uintptr_t>(*address));
    map_flags |= (flags & VM_FLAGS_OVERWRITE) != 0 ? MAP_FIXED : MAP_FIXED_NOREPLACE;
  }
  void* p = ::mmap(hint, length, kReadWrite, map_flags, fd, 0);
  if (p == MAP_FAILED) {
    if (errno == EEXIST || errno == ENOMEM) return KERN_NO_SPACE;
    return KERN_INVALID_ADDRESS;
  }
  if (!anywhere && p != hint) {  // an old kernel that ignores MAP_FIXED_NOREPLACE
    ::munmap(p, length);
    return KERN_NO_SPACE;
  }
  *address = reinterpret_cast<uintptr_t>(p);
  return KERN_SUCCESS;
}

// False if [address, address + length) is known not to be one mapping of
// `fd` any more: the program unmapped or replaced it behind the table's back
// (munmap, mmap MAP_FIXED). Sending the memfd then would send stale bytes and
// take the program's new memory away. Without /proc, nothing is known.
bool still_mapped(uintptr_t address, size_t length, int fd) {
  static const bool have_map_files = ::access("/proc/self/map_files", F_OK) == 0;
  if (!have_map_files) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx",
                static_cast<unsigned long>(address), static_cast<unsigned long>(address + length));
  struct stat mapped {};
  struct stat file {};
  // ENOENT: no mapping with exactly that range. Anything else (EACCES where
  // map_files is closed to the process) says nothing.
  if (::stat(path, &mapped) != 0) return errno != ENOENT;
  if (::fstat(fd, &file) != 0) return false;
  return mapped.st_ino == file.st_ino && mapped.st_dev == file.st_dev;
}

// A memfd of `length` bytes for a region over kSharedMaxBytes: sized, not
// allocated, so its pages are allocated as they are first touched, like
// anonymous memory (SharedBuffer::allocate would allocate them all at once).
// Invalid if it cannot be made.
proto::UniqueFd make_sparse_memfd(size_t length) {
  proto::UniqueFd fd = detail::make_memfd("portd-vm");
  if (fd && ::ftruncate(fd.get(), static_cast<off_t>(length)) != 0) fd.reset();
  return fd;
}

kern_return_t allocate(mach_port_t target, uint64_t* address, uint64_t size, int flags) {
  if (target != kTaskSelfName) return MACH_SEND_INVALID_DEST;
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  try {
    return allocate_user_region(address, size, flags);
  } catch (const std::bad_alloc&) {
    return KERN_RESOURCE_SHORTAGE;
  }
}

kern_return_t deallocate(mach_port_t target, uint64_t address, uint64_t size) {
  if (target != kTaskSelfName) return MACH_SEND_INVALID_DEST;
  if (size > SIZE_MAX || address > UINTPTR_MAX) return KERN_INVALID_ADDRESS;
  return deallocate_region(static_cast<uintptr_t>(address), static_cast<size_t>(size));
}

// ---- fork() ------------------------------------------------------------------------
//
// A shared region would be shared with a child of fork(), where Mach gives
// the child its own copy. So before the fork each piece is copied into fresh
// private memory (read from its memfd, holes skipped, so the untouched pages
// of a sparse region stay unallocated) and the shared mapping is marked
// MADV_DONTFORK. The child moves the copies to the regions' addresses and
// forgets the table (its memory is its own, private now; the memfds are its
// parent's); the parent drops the copies. A piece that cannot be copied (no
// memory) stays shared with the child; the parent's later sends of it are
// then copies, since a memfd the child maps writable cannot be sealed.

// Copies `length` bytes at `offset` of `fd` to `to`, data ranges only.
bool copy_from_memfd(int fd, size_t offset, size_t length, unsigned char* to) {
  const off_t end = static_cast<off_t>(offset + length);
  off_t at = static_cast<off_t>(offset);
  while (at < end) {
    off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0) return errno == ENXIO;  // no data after `at`: all holes
    if (data >= end) return true;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    while (data < hole) {
      const ssize_t n = ::pread(fd, to + (data - static_cast<off_t>(offset)),
                                static_cast<size_t>(hole - data), data);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
    }
    at = hole;
  }
  return true;
}

void before_fork() {
  VmState& s = state();
  s.mu.lock();
  s.fork_copies.clear();
  try {
    s.fork_copies.reserve(s.pieces.size());
  } catch (const std::bad_alloc&) {
    return;  // no copies: the child shares the regions (see above)
  }
  for (const auto& [address, piece] : s.pieces) {
    // Populated (one bulk fault) unless sparse: only its data is copied.
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (piece.backing->length <= kSharedMaxBytes) flags |= MAP_POPULATE;
    void* copy = ::mmap(nullptr, piece.length, kReadWrite, flags, -1, 0);
    if (copy == MAP_FAILED) continue;
    if (!copy_from_memfd(piece.backing->fd.get(), piece.offset, piece.length,
                         static_cast<unsigned char*>(copy)) ||
        ::madvise(as_pointer(address), piece.length, MADV_DONTFORK) != 0) {
      ::munmap(copy, piece.length);
      continue;
    }
    s.fork_copies.push_back(ForkCopy{address, piece.length, copy});
  }
}

void after_fork_in_parent() {
  VmState& s = state();
  for (const ForkCopy& c : s.fork_copies) {
    ::munmap(c.copy, c.length);
    ::madvise(as_pointer(c.address), c.length, MADV_DOFORK);
  }
  s.fork_copies.clear();
  s.mu.unlock();
}

void after_fork_in_child() {
  VmState& s = state();
  for (const ForkCopy& c : s.fork_copies) {
    ::mremap(c.copy, c.length, c.length, MREMAP_MAYMOVE | MREMAP_FIXED, as_pointer(c.address));
  }
  s.fork_copies.clear();
  s.pieces.clear();  // closes the parent's memfds
  s.backings = 0;
  s.mu.unlock();
}

const bool kForkHandlersInstalled = [] {
  ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  return true;
}();

}  // namespace

void* allocate_region(size_t size) {
  if (size == 0) return nullptr;
  size_t length = 0;
  if (!round_to_pages(size, &length)) return nullptr;
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  uint64_t address = 0;
  if (map_locked(&address, length, VM_FLAGS_ANYWHERE, -1, false) != KERN_SUCCESS) return nullptr;
  // Addresses the kernel gives out again were unmapped behind our back.
  forget_locked(s, static_cast<uintptr_t>(address), static_cast<uintptr_t>(address) + length);
  return as_pointer(static_cast<uintptr_t>(address));
}

kern_return_t allocate_user_region(uint64_t* address, uint64_t size, int flags) {
  if (size == 0) {
    *address = 0;
    return KERN_SUCCESS;
  }
  size_t length = 0;
  if (!round_to_pages(size, &length)) return KERN_NO_SPACE;
  const bool anywhere = (flags & VM_FLAGS_ANYWHERE) != 0;
  if (!anywhere && (*address & (page_size() - 1)) != 0) return KERN_INVALID_ADDRESS;
  VmState& s = state();
  bool shared = length >= kSharedMinBytes;
  const bool sparse = length > kSharedMaxBytes;
  if (shared) {
    std::lock_guard<std::mutex> guard(s.mu);
    shared = s.backings < max_backings();
  }
  // Made outside the lock: populating a large buffer takes a while. A
  // buffer that cannot be made (no memory, no fds) leaves anonymous memory.
  SharedBufferParts parts;
  if (shared && !sparse) {
    if (auto buffer = SharedBuffer::allocate(length)) parts = buffer->release();
  } else if (shared) {
    parts.fd = make_sparse_memfd(length).release();
  }
  proto::UniqueFd fd(parts.fd);

  std::lock_guard<std::mutex> guard(s.mu);
  if (fd && s.backings >= max_backings()) {
    ::munmap(parts.address, parts.mapped);
    parts.address = nullptr;
    fd.reset();
  }
  kern_return_t kr = KERN_SUCCESS;
  if (fd && anywhere && parts.address != nullptr) {
    *address = reinterpret_cast<uintptr_t>(parts.address);
  } else {
    // At a fixed address the buffer's own mapping goes, and the memfd is
    // mapped where the caller asked; a sparse memfd has no mapping yet.
    if (parts.address != nullptr) ::munmap(parts.address, parts.mapped);
    kr = map_locked(address, length, flags, fd.get(), !sparse);
    if (kr != KERN_SUCCESS && fd && kr != KERN_NO_SPACE) {
      fd.reset();  // no shared mapping to be had: anonymous memory will do
      kr = map_locked(address, length, flags, -1, false);
    }
  }
  if (kr != KERN_SUCCESS) return kr;
  const auto start = static_cast<uintptr_t>(*address);
  // What the table had there is gone: replaced (VM_FLAGS_OVERWRITE), or
  // unmapped behind our back (the kernel gave the addresses out again).
  forget_locked(s, start, start + length);
  if (fd) {
    try {
      insert_locked(s, start, length, std::move(fd));
    } catch (const std::bad_alloc&) {
      ::munmap(as_pointer(start), length);
      return KERN_RESOURCE_SHORTAGE;
    }
  }
  return KERN_SUCCESS;
}

kern_return_t deallocate_region(uintptr_t address, size_t size) {
  if (size == 0) return KERN_SUCCESS;
  const uintptr_t mask = page_size() - 1;
  const uintptr_t start = address & ~mask;
  if (address + size < address || address + size > UINTPTR_MAX - mask) {
    return KERN_INVALID_ADDRESS;
  }
  const uintptr_t end = (address + size + mask) & ~mask;
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  if (::munmap(as_pointer(start), end - start) != 0) return KERN_INVALID_ADDRESS;
  forget_locked(s, start, end);
  for (auto it = s.releases.lower_bound(start); it != s.releases.end() && it->first < end;) {
    ::close(it->second);
    it = s.releases.erase(it);
  }
  return KERN_SUCCESS;
}

void track_release(uintptr_t address, int release_fd) {
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  auto [it, inserted] = s.releases.emplace(address, release_fd);
  if (!inserted) {  // an address reused without vm_deallocate: the old one is gone
    ::close(it->second);
    it->second = release_fd;
  }
}

std::optional<OolRegion> move_whole_region(uintptr_t address, uint64_t size, MovedRegion* moved) {
  size_t length = 0;
  if (size == 0 || (address & (page_size() - 1)) != 0 || !round_to_pages(size, &length)) {
    return std::nullopt;
  }
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  auto it = s.pieces.find(address);
  if (it == s.pieces.end()) return std::nullopt;
  Piece& piece = it->second;
  if (piece.offset != 0 || piece.length != piece.backing->length || piece.length != length ||
      piece.backing.use_count() != 1) {
    return std::nullopt;  // part of a region: sent by copy
  }
  if (!still_mapped(address, length, piece.backing->fd.get())) {
    forget_locked(s, address, address + length);
    return std::nullopt;
  }
  // Kept to give the bytes back if sealing or the send fails.
  proto::UniqueFd keep(::fcntl(piece.backing->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!keep) return std::nullopt;
  // The reservation replaces the shared mapping in one step: the addresses
  // stay ours, and the memfd keeps no writable mapping, so it can be sealed.
  void* reserved = ::mmap(as_pointer(address), length, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (reserved == MAP_FAILED) return std::nullopt;
  // Move mode, as for any SharedBuffer: the buffer is already unmapped (the
  // reservation), so OolRegion::seal only seals it.
  SharedBufferParts parts;
  parts.fd = piece.backing->fd.release();
  parts.size = length;
  parts.mapped = length;
  s.pieces.erase(it);
  --s.backings;
  auto region = OolRegion::seal(SharedBuffer::adopt(parts), size);
  if (!region) {
    // Someone else maps the memfd writable (a child of fork() that could
    // not be given a copy): the region stays the caller's, and is copied.
    void* again =
        ::mmap(as_pointer(address), length, kReadWrite, MAP_SHARED | MAP_FIXED, keep.get(), 0);
    if (again != MAP_FAILED) {
      try {
        insert_locked(s, address, length, std::move(keep));
      } catch (const std::bad_alloc&) {
        // Untracked, the region still works; only its sends are copies.
      }
    }
    return std::nullopt;
  }
  moved->address = address;
  moved->mapped = length;
  moved->keep = std::move(keep);
  return std::move(*region);
}

void finish_moved_region(MovedRegion&& moved) {
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  ::munmap(as_pointer(moved.address), moved.mapped);
  moved.keep.reset();
}

void restore_moved_region(MovedRegion&& moved) {
  VmState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  ::mmap(as_pointer(moved.address), moved.mapped, kReadWrite, MAP_PRIVATE | MAP_FIXED,
         moved.keep.get(), 0);
  moved.keep.reset();
}

}  // namespace portd::mach

#pragma GCC visibility push(default)
extern "C" {

kern_return_t vm_allocate(vm_map_t target_task, vm_address_t* address, vm_size_t size, int flags) {
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  uint64_t a = *address;
  const kern_return_t kr = portd::mach::allocate(target_task, &a, size, flags);
  if (kr == KERN_SUCCESS) *address = static_cast<vm_address_t>(a);
  return kr;
}

kern_return_t vm_deallocate(vm_map_t target_task, vm_address_t address, vm_size_t size) {
  return portd::mach::deallocate(target_task, address, size);
}

kern_return_t mach_vm_allocate(vm_map_t target, mach_vm_address_t* address, mach_vm_size_t size,
                               int flags) {
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  return portd::mach::allocate(target, address, size, flags);
}

kern_return_t mach_vm_deallocate(vm_map_t target, mach_vm_address_t address, mach_vm_size_t size) {
  return portd::mach::deallocate(target, address, size);
}

}  // extern "C"
#pragma GCC visibility pop
