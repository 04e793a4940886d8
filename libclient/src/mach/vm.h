// Memory as Mach hands it out: page-aligned, zero-filled regions that
// vm_deallocate() unmaps. The C API returns out-of-line arrays
// (mach_port_names, received out-of-line ports) in such regions.
#pragma once

#include <mach/kern_return.h>
#include <mach/vm_types.h>

#include <cstddef>

namespace portd::mach {

// Maps `size` bytes (rounded up to pages) anywhere; nullptr if it fails.
void* allocate_region(size_t size);

// Unmaps the pages that [address, address + size) touches, and closes the
// release signals of received volatile regions that started there.
kern_return_t deallocate_region(uintptr_t address, size_t size);

// A received volatile region mapped at `address`: `release_fd` is closed when
// vm_deallocate unmaps that address, which tells the sender's pool the
// segment is free again (docs/ool.md).
void track_release(uintptr_t address, int release_fd);

}  // namespace portd::mach
