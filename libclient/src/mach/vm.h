// Memory as Mach hands it out: page-aligned, zero-filled regions that
// vm_deallocate() unmaps.
//
// Two kinds. vm_allocate() regions of kSharedMinBytes up to kSharedMaxBytes
// are libportd shared buffers (SharedBuffer::allocate: a memfd, allocated in
// bulk, mapped MAP_SHARED and populated); larger ones are memfds sized but
// not allocated (their pages come as they are touched). The memfds are kept
// in a table here. Such a region, sent whole with deallocate=TRUE, travels zero
// copy: move_whole_region() takes it out of the sender's address space and
// seals its memfd with OolRegion::seal (move mode, docs/ool.md), and the
// receiver maps that same memfd. Smaller regions, regions past the fd
// budget, and the arrays the library itself returns (mach_port_names,
// received out-of-line port arrays) are private anonymous memory, sent by
// copy.
//
// A shared region partly deallocated becomes pieces of one memfd (the freed
// range is punched out of it); a piece is sent by copy. In a child of fork()
// every shared region is replaced by a private copy, so the child's memory is
// its own as on Mach (docs/mach.md, "Memory").
#pragma once

#include <mach/kern_return.h>
#include <mach/vm_types.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "portd/memory.h"
#include "portd/proto/unique_fd.h"

namespace portd::mach {

// vm_allocate()'s regions of at least this many bytes are shared buffers
// (libportd's out-of-line threshold: smaller data is cheaper to copy).
inline constexpr size_t kSharedMinBytes = size_t{64} << 10;
// Up to this many bytes they are allocated and populated in full at once;
// larger ones are sparse memfds (an allocation that large is often a
// reservation of address space that the program fills sparsely).
inline constexpr size_t kSharedMaxBytes = size_t{256} << 20;

// Maps `size` bytes (rounded up to pages) of private anonymous memory
// anywhere; nullptr if it fails. For arrays the library returns.
void* allocate_region(size_t size);

// vm_allocate() for the calling task: `flags` VM_FLAGS_ANYWHERE or a fixed
// address (VM_FLAGS_OVERWRITE to replace what is there).
kern_return_t allocate_user_region(uint64_t* address, uint64_t size, int flags);

// Unmaps the pages that [address, address + size) touches, whatever they
// are; forgets shared regions (or the parts of them) that were there, and
// closes the release signals of received volatile regions that started there.
kern_return_t deallocate_region(uintptr_t address, size_t size);

// A received volatile region mapped at `address`: `release_fd` is closed when
// vm_deallocate unmaps that address, which tells the sender's pool the
// segment is free again (docs/ool.md).
void track_release(uintptr_t address, int release_fd);

// A shared region on its way out zero copy. Its addresses hold an
// inaccessible reservation (nobody else gets them meanwhile) until
// finish_moved_region() or restore_moved_region().
struct MovedRegion {
  uintptr_t address = 0;
  size_t mapped = 0;
  proto::UniqueFd keep;  // the memfd, now sealed: to give the bytes back
};

// If [address, address + size) is exactly one whole shared region (address
// its start, size rounding up to its length): takes it out of the table and
// out of the address space, seals its memfd and returns the region to add
// to the message (deallocate set), filling `moved`. Otherwise, or if the
// memfd cannot be sealed (the region is then left as it was), nothing: the
// caller copies.
std::optional<OolRegion> move_whole_region(uintptr_t address, uint64_t size, MovedRegion* moved);
// The send happened: the reservation goes, as deallocate=TRUE promises.
void finish_moved_region(MovedRegion&& moved);
// The send did not happen: the same bytes come back at the same address, as
// a private copy-on-write mapping of the sealed memfd (untracked: later
// sends of them are copies).
void restore_moved_region(MovedRegion&& moved);

}  // namespace portd::mach
