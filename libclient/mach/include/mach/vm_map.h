/*
 * mach/vm_map.h — vm_allocate() and vm_deallocate().
 *
 * `target_task` must be mach_task_self(). vm_allocate gives zero-filled,
 * page-aligned memory (size rounded up to pages; size 0 gives address 0).
 * VM_FLAGS_ANYWHERE picks the address; without it, *address is used and an
 * occupied range gives KERN_NO_SPACE (VM_FLAGS_OVERWRITE replaces what is
 * there). The memory is private to the process: after fork() the child has
 * its own copy, as with Mach's default inheritance. vm_deallocate unmaps the
 * whole pages of any memory, as on Mach. (Zero-copy out-of-line sends from
 * such regions come with out-of-line memory support: docs/mach.md.)
 */
#ifndef _MACH_VM_MAP_H_
#define _MACH_VM_MAP_H_

#include <mach/mach_types.h>
#include <mach/portd_config.h>
#include <mach/vm_statistics.h>
#include <mach/vm_types.h>

PORTD_MACH_BEGIN_DECLS

kern_return_t vm_allocate(vm_map_t target_task, vm_address_t* address, vm_size_t size, int flags);
kern_return_t vm_deallocate(vm_map_t target_task, vm_address_t address, vm_size_t size);

PORTD_MACH_END_DECLS

#endif /* _MACH_VM_MAP_H_ */
