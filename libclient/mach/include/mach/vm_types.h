/*
 * mach/vm_types.h — Mach's machine-sized integer types for a 64-bit user
 * program (XNU's i386/vm_types.h and mach/vm_types.h).
 */
#ifndef _MACH_VM_TYPES_H_
#define _MACH_VM_TYPES_H_

#include <mach/portd_config.h>
#include <stdint.h>

typedef unsigned int natural_t;
typedef int integer_t;

typedef uintptr_t vm_offset_t;
typedef uintptr_t vm_size_t;
typedef vm_offset_t vm_address_t;
typedef vm_offset_t pointer_t;
typedef uint64_t mach_vm_address_t;
typedef uint64_t mach_vm_offset_t;
typedef uint64_t mach_vm_size_t;
typedef uint64_t vm_map_offset_t;
typedef uint64_t vm_map_address_t;
typedef uint64_t vm_map_size_t;
typedef int vm_prot_t;
typedef unsigned int vm_inherit_t;

PORTD_MACH_STATIC_ASSERT(sizeof(natural_t) == 4, "natural_t is 32 bits");
PORTD_MACH_STATIC_ASSERT(sizeof(vm_size_t) == sizeof(void*), "vm_size_t is pointer-sized");

#endif /* _MACH_VM_TYPES_H_ */
