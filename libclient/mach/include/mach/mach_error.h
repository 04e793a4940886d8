/*
 * mach/mach_error.h — turning Mach error codes into text.
 *
 * mach_error_string() knows every code portd returns: KERN_*, MACH_SEND_*,
 * MACH_RCV_*, BOOTSTRAP_* and the PORTD_* extensions; it never returns NULL.
 */
#ifndef _MACH_MACH_ERROR_H_
#define _MACH_MACH_ERROR_H_

#include <mach/error.h>
#include <mach/portd_config.h>

PORTD_MACH_BEGIN_DECLS

/* A static string describing `error_value`, e.g. "(os/kern) invalid name". */
char* mach_error_string(mach_error_t error_value);

/* Prints "<str> <mach_error_string(error_value)> (0x<hex>)" on stderr. */
void mach_error(const char* str, mach_error_t error_value);

/* The system and subsystem of `error_value`, e.g. "(ipc/send)". */
char* mach_error_type(mach_error_t error_value);

/*
 * portd extension. The quota or limit that refused this thread's most recent
 * call into the daemon, by name ("queued_bytes", "ports", ...), or "" if that
 * call was not refused by one: what KERN_RESOURCE_SHORTAGE, KERN_NO_SPACE,
 * MACH_SEND_NO_BUFFER or BOOTSTRAP_NO_MEMORY cannot say. Valid until this
 * thread's next call to it.
 */
const char* portd_last_refused_limit(void);

PORTD_MACH_END_DECLS

#endif /* _MACH_MACH_ERROR_H_ */
