/* mach/machine/vm_types.h — where Apple keeps natural_t; ours is mach/vm_types.h. */
#ifndef _MACH_MACHINE_VM_TYPES_H_
#define _MACH_MACHINE_VM_TYPES_H_
#include <mach/vm_types.h>
#endif
