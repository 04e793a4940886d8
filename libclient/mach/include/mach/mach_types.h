/*
 * mach/mach_types.h — the port-typed handles of Mach's interfaces. In user
 * space each is a port name. portd has one task port (mach_task_self()) and
 * no thread, host or memory-object ports.
 */
#ifndef _MACH_MACH_TYPES_H_
#define _MACH_MACH_TYPES_H_

#include <mach/message.h>
#include <mach/port.h>
#include <mach/vm_types.h>

typedef mach_port_t task_t;
typedef mach_port_t task_name_t;
typedef mach_port_t task_port_t;
typedef mach_port_t ipc_space_t;
typedef mach_port_t vm_map_t;
typedef mach_port_t vm_map_read_t;
typedef mach_port_t thread_t;
typedef mach_port_t thread_act_t;
typedef mach_port_t host_t;
typedef mach_port_t clock_serv_t;

typedef task_t* task_array_t;
typedef thread_t* thread_array_t;

#define TASK_NULL ((task_t)0)
#define THREAD_NULL ((thread_t)0)
#define VM_MAP_NULL ((vm_map_t)0)
#define IPC_SPACE_NULL ((ipc_space_t)0)

#endif /* _MACH_MACH_TYPES_H_ */
