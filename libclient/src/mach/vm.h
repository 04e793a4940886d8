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

// Unmaps the pages that [address, address + size) touches.
kern_return_t deallocate_region(uintptr_t address, size_t size);

}  // namespace portd::mach
