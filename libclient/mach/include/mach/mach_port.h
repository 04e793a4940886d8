/*
 * mach/mach_port.h — managing the rights in a task's name space.
 *
 * `task` must be mach_task_self(): portd has no other task ports, and any
 * other name gives MACH_SEND_INVALID_DEST (what XNU's calls return for a
 * task port name they cannot use). Statuses are the daemon's, unchanged;
 * docs/semantics.md lists them per call. Arrays returned by mach_port_names()
 * and mach_port_get_set_status() are allocated as by vm_allocate(): free them
 * with vm_deallocate(mach_task_self(), (vm_address_t)array, count *
 * sizeof *array).
 */
#ifndef _MACH_MACH_PORT_H_
#define _MACH_MACH_PORT_H_

#include <mach/mach_types.h>
#include <mach/message.h>
#include <mach/port.h>
#include <mach/portd_config.h>

PORTD_MACH_BEGIN_DECLS

kern_return_t mach_port_names(ipc_space_t task, mach_port_name_array_t* names,
                              mach_msg_type_number_t* namesCnt, mach_port_type_array_t* types,
                              mach_msg_type_number_t* typesCnt);

kern_return_t mach_port_type(ipc_space_t task, mach_port_name_t name, mach_port_type_t* ptype);

/* MACH_PORT_RIGHT_RECEIVE, _PORT_SET or _DEAD_NAME. */
kern_return_t mach_port_allocate(ipc_space_t task, mach_port_right_t right, mach_port_name_t* name);

kern_return_t mach_port_destroy(ipc_space_t task, mach_port_name_t name);

kern_return_t mach_port_deallocate(ipc_space_t task, mach_port_name_t name);

kern_return_t mach_port_get_refs(ipc_space_t task, mach_port_name_t name, mach_port_right_t right,
                                 mach_port_urefs_t* refs);

kern_return_t mach_port_mod_refs(ipc_space_t task, mach_port_name_t name, mach_port_right_t right,
                                 mach_port_delta_t delta);

/* Moves a receive right into the set `after`, or out of its set
 * (after == MACH_PORT_NULL). */
kern_return_t mach_port_move_member(ipc_space_t task, mach_port_name_t member,
                                    mach_port_name_t after);

/* mach_port_move_member into `pset`; out of `pset`, which it must be in. */
kern_return_t mach_port_insert_member(ipc_space_t task, mach_port_name_t name,
                                      mach_port_name_t pset);
kern_return_t mach_port_extract_member(ipc_space_t task, mach_port_name_t name,
                                       mach_port_name_t pset);

/* The receive rights in the set `name`. */
kern_return_t mach_port_get_set_status(ipc_space_t task, mach_port_name_t name,
                                       mach_port_name_array_t* members,
                                       mach_msg_type_number_t* membersCnt);

/* MACH_NOTIFY_PORT_DESTROYED, MACH_NOTIFY_NO_SENDERS or MACH_NOTIFY_DEAD_NAME;
 * `notify` a receive right (MACH_MSG_TYPE_MAKE_SEND_ONCE) or a send-once
 * right (MACH_MSG_TYPE_MOVE_SEND_ONCE), or MACH_PORT_NULL to cancel. */
kern_return_t mach_port_request_notification(ipc_space_t task, mach_port_name_t name,
                                             mach_msg_id_t msgid, mach_port_mscount_t sync,
                                             mach_port_t notify, mach_msg_type_name_t notifyPoly,
                                             mach_port_t* previous);

kern_return_t mach_port_insert_right(ipc_space_t task, mach_port_name_t name, mach_port_t poly,
                                     mach_msg_type_name_t polyPoly);

kern_return_t mach_port_extract_right(ipc_space_t task, mach_port_name_t name,
                                      mach_msg_type_name_t msgt_name, mach_port_t* poly,
                                      mach_msg_type_name_t* polyPoly);

/* MACH_PORT_LIMITS_INFO, MACH_PORT_RECEIVE_STATUS or MACH_PORT_INFO_EXT. A
 * count smaller than the flavor's gives KERN_FAILURE, as on XNU. */
kern_return_t mach_port_get_attributes(ipc_space_t task, mach_port_name_t name,
                                       mach_port_flavor_t flavor, mach_port_info_t port_info_out,
                                       mach_msg_type_number_t* port_info_outCnt);

/* MACH_PORT_LIMITS_INFO (queue limit 0 to MACH_PORT_QLIMIT_MAX). */
kern_return_t mach_port_set_attributes(ipc_space_t task, mach_port_name_t name,
                                       mach_port_flavor_t flavor, mach_port_info_t port_info,
                                       mach_msg_type_number_t port_infoCnt);

/* A new receive right; MPO_QLIMIT sets its queue limit, MPO_INSERT_SEND_RIGHT
 * adds a send right under the same name. All or nothing. `context` and the
 * guard flags are accepted and not enforced. */
kern_return_t mach_port_construct(ipc_space_t task, mach_port_options_ptr_t options,
                                  mach_port_context_t context, mach_port_name_t* name);

/* Drops `srdelta` (<= 0) send rights of `name`, then its receive right. */
kern_return_t mach_port_destruct(ipc_space_t task, mach_port_name_t name, mach_port_delta_t srdelta,
                                 mach_port_context_t guard);

/* Guards are not enforced by portd: these check that `name` is a receive
 * right and succeed. */
kern_return_t mach_port_guard(ipc_space_t task, mach_port_name_t name, mach_port_context_t guard,
                              boolean_t strict);
kern_return_t mach_port_unguard(ipc_space_t task, mach_port_name_t name, mach_port_context_t guard);

PORTD_MACH_END_DECLS

#endif /* _MACH_MACH_PORT_H_ */
