/* mach/mach_vm.h — the 64-bit forms of vm_allocate() and vm_deallocate()
 * (<mach/vm_map.h> says how they behave). */
#ifndef _MACH_MACH_VM_H_
#define _MACH_MACH_VM_H_

#include <mach/mach_types.h>
#include <mach/portd_config.h>
#include <mach/vm_statistics.h>
#include <mach/vm_types.h>

PORTD_MACH_BEGIN_DECLS

kern_return_t mach_vm_allocate(vm_map_t target, mach_vm_address_t* address, mach_vm_size_t size,
                               int flags);
kern_return_t mach_vm_deallocate(vm_map_t target, mach_vm_address_t address, mach_vm_size_t size);

PORTD_MACH_END_DECLS

#endif /* _MACH_MACH_VM_H_ */
