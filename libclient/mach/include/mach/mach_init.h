/*
 * mach/mach_init.h — the calling task, and the page size.
 *
 * mach_task_self() connects this process to the portd daemon on first use
 * (the socket is $PORTD_SOCKET, else $XDG_RUNTIME_DIR/portd.sock, else
 * /run/portd/portd.sock) and returns the task's name for itself. If the daemon
 * cannot be reached, a line on stderr says why, and calls on the task fail
 * with KERN_INVALID_TASK until a later call connects. Once connected, the task
 * lives as long as the connection: if the daemon goes away, every call fails
 * with KERN_INVALID_TASK.
 *
 * The name is the same in every process, 0x00000001 (PORTD_TASK_SELF_NAME):
 * portd gives no port a name with index 0 (<mach/port.h>), so it can never
 * clash with a right. mach_task_self_ holds it too.
 *
 * fork(): the child is a new task. It connects on its first call, holds none
 * of the parent's rights (as on Mach), and its bootstrap_port works
 * (<servers/bootstrap.h>).
 */
#ifndef _MACH_MACH_INIT_H_
#define _MACH_MACH_INIT_H_

#include <mach/mach_types.h>
#include <mach/portd_config.h>

#define PORTD_TASK_SELF_NAME ((mach_port_t)0x00000001)

PORTD_MACH_BEGIN_DECLS

mach_port_t mach_task_self(void);
extern mach_port_t mach_task_self_;

/* A new receive right (mach_port_allocate(RECEIVE)), or MACH_PORT_NULL. */
mach_port_t mach_reply_port(void);

extern vm_size_t vm_page_size;
extern vm_size_t vm_page_mask;
extern int vm_page_shift;

PORTD_MACH_END_DECLS

#define current_task() mach_task_self()

#define trunc_page(x) ((x) & (~(vm_page_size - 1)))
#define round_page(x) trunc_page((x) + (vm_page_size - 1))

#endif /* _MACH_MACH_INIT_H_ */
