/*
 * mach/mach.h — the Mach interface portd provides, in one include.
 *
 * portd brings Mach ports to Linux in user space: a daemon owns the ports and
 * this library (libportd, `pkg-config --cflags --libs portd-mach`) speaks to
 * it. What is supported, and what differs from XNU and why: docs/mach.md.
 */
#ifndef _MACH_H_
#define _MACH_H_

#include <mach/boolean.h>
#include <mach/error.h>
#include <mach/kern_return.h>
#include <mach/mach_error.h>
#include <mach/mach_init.h>
#include <mach/mach_port.h>
#include <mach/mach_types.h>
#include <mach/mach_vm.h>
#include <mach/message.h>
#include <mach/ndr.h>
#include <mach/notify.h>
#include <mach/port.h>
#include <mach/std_types.h>
#include <mach/task.h>
#include <mach/task_special_ports.h>
#include <mach/vm_map.h>
#include <mach/vm_statistics.h>
#include <mach/vm_types.h>

#endif /* _MACH_H_ */
