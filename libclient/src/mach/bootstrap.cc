// The bootstrap calls of launchd's liblaunch, over portd's registry.
// bootstrap_port is a reserved name (task_state.h); the calls go out on the
// calling process's own task, so they work the same in a forked child.
#include <mach/mach_error.h>
#include <servers/bootstrap.h>

#include <cstring>
#include <string_view>

#include "libclient/src/mach/task_state.h"

namespace portd::mach {
namespace {

kern_return_t kr_of(Status s) { return static_cast<kern_return_t>(s); }

// A name_t's text: up to the first NUL, at most BOOTSTRAP_MAX_NAME_LEN bytes
// (the daemon refuses one that long, having no room for the NUL).
std::string_view service_of(const char* name) {
  return {name, ::strnlen(name, BOOTSTRAP_MAX_NAME_LEN)};
}

// The task behind `bp`, which must be bootstrap_port.
std::shared_ptr<Task> registry_task(mach_port_t bp, kern_return_t* status) {
  if (bp != kBootstrapName) {
    *status = MACH_SEND_INVALID_DEST;
    return nullptr;
  }
  return process_task(status);
}

}  // namespace
}  // namespace portd::mach

using portd::mach::kr_of;
using portd::mach::registry_task;
using portd::mach::service_of;

#pragma GCC visibility push(default)
extern "C" {

kern_return_t bootstrap_check_in(mach_port_t bp, const char* service_name, mach_port_t* sp) {
  kern_return_t status = KERN_SUCCESS;
  auto task = registry_task(bp, &status);
  if (!task) return status;
  if (service_name == nullptr || sp == nullptr) return KERN_INVALID_ARGUMENT;
  auto port = task->bootstrap_check_in(service_of(service_name));
  if (!port) return kr_of(port.status());
  *sp = *port;
  return BOOTSTRAP_SUCCESS;
}

kern_return_t bootstrap_look_up(mach_port_t bp, const char* service_name, mach_port_t* sp) {
  kern_return_t status = KERN_SUCCESS;
  auto task = registry_task(bp, &status);
  if (!task) return status;
  if (service_name == nullptr || sp == nullptr) return KERN_INVALID_ARGUMENT;
  auto port = task->bootstrap_look_up(service_of(service_name));
  if (!port) return kr_of(port.status());
  *sp = *port;
  return BOOTSTRAP_SUCCESS;
}

kern_return_t bootstrap_register(mach_port_t bp, const char* service_name, mach_port_t sp) {
  kern_return_t status = KERN_SUCCESS;
  auto task = registry_task(bp, &status);
  if (!task) return status;
  if (service_name == nullptr) return KERN_INVALID_ARGUMENT;
  if (sp == MACH_PORT_NULL) return kr_of(task->bootstrap_unregister(service_of(service_name)));
  return kr_of(task->bootstrap_register(service_of(service_name), sp));
}

kern_return_t bootstrap_status(mach_port_t bp, const char* service_name,
                               bootstrap_status_t* service_active) {
  kern_return_t status = KERN_SUCCESS;
  auto task = registry_task(bp, &status);
  if (!task) return status;
  if (service_name == nullptr || service_active == nullptr) return KERN_INVALID_ARGUMENT;
  auto port = task->bootstrap_look_up(service_of(service_name));
  if (!port) return kr_of(port.status());
  (void)task->deallocate(*port);
  *service_active = BOOTSTRAP_STATUS_ACTIVE;
  return BOOTSTRAP_SUCCESS;
}

const char* bootstrap_strerror(kern_return_t r) {
  switch (r) {
    case BOOTSTRAP_SUCCESS: return "Success";
    case BOOTSTRAP_NOT_PRIVILEGED: return "Permission denied";
    case BOOTSTRAP_NAME_IN_USE:
    case BOOTSTRAP_SERVICE_ACTIVE: return "Service name already exists";
    case BOOTSTRAP_UNKNOWN_SERVICE: return "Unknown service name";
    case BOOTSTRAP_BAD_COUNT: return "Too many lookups were requested in one request";
    case BOOTSTRAP_NO_MEMORY: return "Out of memory";
    case BOOTSTRAP_NO_CHILDREN: return "Subset not found";
    default: return mach_error_string(r);
  }
}

}  // extern "C"
#pragma GCC visibility pop
