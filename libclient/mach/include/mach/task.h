/* mach/task.h — the task calls portd has. */
#ifndef _MACH_TASK_H_
#define _MACH_TASK_H_

#include <mach/mach_types.h>
#include <mach/portd_config.h>
#include <mach/task_special_ports.h>

PORTD_MACH_BEGIN_DECLS

/* TASK_KERNEL_PORT gives mach_task_self(), TASK_BOOTSTRAP_PORT
 * bootstrap_port's value; other ports KERN_INVALID_ARGUMENT. Releasing the
 * result with mach_port_deallocate() is allowed and does nothing. */
kern_return_t task_get_special_port(task_t task, int which_port, mach_port_t* special_port);

PORTD_MACH_END_DECLS

#endif /* _MACH_TASK_H_ */
