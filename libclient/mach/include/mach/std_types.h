/* mach/std_types.h — the standard Mach types in one include. */
#ifndef _MACH_STD_TYPES_H_
#define _MACH_STD_TYPES_H_

#include <mach/boolean.h>
#include <mach/kern_return.h>
#include <mach/port.h>
#include <mach/vm_types.h>

#endif /* _MACH_STD_TYPES_H_ */
