// The process's Mach task: the one portd::Task behind mach_task_self(), and
// the names the C API reserves.
//
// The Task is connected on first use (Task::connect() with default options,
// so $PORTD_SOCKET and the usual fallbacks decide the socket). A failed
// connect is retried by the next call; once connected, the Task stays for the
// life of the process, dead or alive, exactly as a Mach task's name space
// does. In a child made by fork() the parent's Task is dropped (never used,
// never destroyed: threads that held references to it did not survive the
// fork) and the child connects a Task of its own on first use.
#pragma once

#include <mach/mach_types.h>

#include <memory>

#include "portd/task.h"

namespace portd::mach {

// mach_task_self() and bootstrap_port: names with index 0, which the daemon
// never gives out (see <mach/port.h>).
inline constexpr mach_port_name_t kTaskSelfName = 0x00000001;
inline constexpr mach_port_name_t kBootstrapName = 0x00000002;

inline bool is_reserved_name(mach_port_name_t name) {
  return name == kTaskSelfName || name == kBootstrapName;
}

// The process's Task, connecting it if need be. nullptr, with *status
// KERN_INVALID_TASK, if the daemon cannot be reached.
std::shared_ptr<Task> process_task(kern_return_t* status);

// process_task(), for calls that name a task port: anything but
// mach_task_self() gives MACH_SEND_INVALID_DEST, as on XNU.
std::shared_ptr<Task> task_for(mach_port_t task_name, kern_return_t* status);

}  // namespace portd::mach
