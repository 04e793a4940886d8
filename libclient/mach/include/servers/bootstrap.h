/*
 * servers/bootstrap.h — the bootstrap name server (launchd's liblaunch
 * interface), backed by portd's registry.
 *
 * bootstrap_port is a name the library recognises, 0x00000002
 * (PORTD_BOOTSTRAP_PORT_NAME; like mach_task_self(), a name with index 0 that
 * no right can have). It is valid from program start, in every process and
 * after fork(): the calls below send to the daemon's registry over the
 * calling task's own connection. Any other `bp` gives MACH_SEND_INVALID_DEST.
 * It cannot be sent in a message (it is no right), and
 * mach_port_deallocate() of it does nothing.
 *
 * Names are 1 to 127 bytes. A name belongs to the uid that bound it and goes
 * away when its port dies (docs/semantics.md).
 */
#ifndef _SERVERS_BOOTSTRAP_H_
#define _SERVERS_BOOTSTRAP_H_

#include <mach/kern_return.h>
#include <mach/message.h>
#include <mach/port.h>
#include <mach/portd_config.h>
#include <mach/std_types.h>

#define BOOTSTRAP_MAX_NAME_LEN 128
#define BOOTSTRAP_MAX_CMD_LEN 512

typedef char name_t[BOOTSTRAP_MAX_NAME_LEN];
typedef char cmd_t[BOOTSTRAP_MAX_CMD_LEN];
typedef name_t* name_array_t;
typedef int bootstrap_status_t;
typedef bootstrap_status_t* bootstrap_status_array_t;

#define BOOTSTRAP_MAX_LOOKUP_COUNT 20

#define BOOTSTRAP_SUCCESS 0
#define BOOTSTRAP_NOT_PRIVILEGED 1100
#define BOOTSTRAP_NAME_IN_USE 1101
#define BOOTSTRAP_UNKNOWN_SERVICE 1102
#define BOOTSTRAP_SERVICE_ACTIVE 1103
#define BOOTSTRAP_BAD_COUNT 1104
#define BOOTSTRAP_NO_MEMORY 1105
#define BOOTSTRAP_NO_CHILDREN 1106

#define BOOTSTRAP_STATUS_INACTIVE 0
#define BOOTSTRAP_STATUS_ACTIVE 1
#define BOOTSTRAP_STATUS_ON_DEMAND 2

#define PORTD_BOOTSTRAP_PORT_NAME ((mach_port_t)0x00000002)

/*
 * Service names are declared `const char*` where launchd's header says
 * `name_t` or `const name_t`: the same thing to the compiler's calling
 * convention (an array parameter is a pointer), but GCC then does not warn
 * that a string literal is shorter than 128 bytes, and C++ accepts a literal.
 */

PORTD_MACH_BEGIN_DECLS

extern mach_port_t bootstrap_port;

/* The daemon makes a port for `service_name` and gives back its receive
 * right (BOOTSTRAP_SERVICE_ACTIVE if the name is bound already). */
kern_return_t bootstrap_check_in(mach_port_t bp, const char* service_name, mach_port_t* sp);

/* A send right to the port bound to `service_name`, at once
 * (BOOTSTRAP_UNKNOWN_SERVICE if none). */
kern_return_t bootstrap_look_up(mach_port_t bp, const char* service_name, mach_port_t* sp);

/* Binds `service_name` to a send right made from `sp` (a send or receive
 * right of the caller's; BOOTSTRAP_NAME_IN_USE if bound already).
 * MACH_PORT_NULL unbinds a name the caller's uid bound. */
kern_return_t bootstrap_register(mach_port_t bp, const char* service_name, mach_port_t sp);

/* BOOTSTRAP_STATUS_ACTIVE if `service_name` is bound, else
 * BOOTSTRAP_UNKNOWN_SERVICE. */
kern_return_t bootstrap_status(mach_port_t bp, const char* service_name,
                               bootstrap_status_t* service_active);

/* Text for a bootstrap code; other codes as mach_error_string(). */
const char* bootstrap_strerror(kern_return_t r);

PORTD_MACH_END_DECLS

#endif /* _SERVERS_BOOTSTRAP_H_ */
