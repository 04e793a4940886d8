#include "libclient/src/mach/task_state.h"

#include <mach/mach_init.h>
#include <mach/message.h>
#include <pthread.h>
#include <servers/bootstrap.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

namespace portd::mach {

namespace {

struct TaskState {
  std::mutex mu;
  std::shared_ptr<Task> task;  // guarded by mu
  bool warned = false;         // guarded by mu: one line on stderr per process
};

TaskState& state() {
  static TaskState* s = new TaskState;  // never destroyed: used until exit
  return *s;
}

// fork(): the child starts without a task. The parent's is kept out of reach
// and never destroyed (threads that held references to it are gone, and
// libportd already let go of the inherited socket).
void before_fork() { state().mu.lock(); }
void after_fork_in_parent() { state().mu.unlock(); }
void after_fork_in_child() {
  TaskState& s = state();
  if (s.task) new std::shared_ptr<Task>(std::move(s.task));  // deliberately leaked
  s.task.reset();
  s.warned = false;
  s.mu.unlock();
}

const bool kForkHandlersInstalled = [] {
  ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  return true;
}();

}  // namespace

std::shared_ptr<Task> process_task(kern_return_t* status) {
  TaskState& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  if (s.task) return s.task;
  auto task = Task::connect();
  if (!task) {
    if (!s.warned) {
      s.warned = true;
      std::fprintf(stderr, "portd: cannot connect to %s: %s (%s)\n", resolve_socket_path().c_str(),
                   task.detail().c_str(), std::string(status_name(task.status())).c_str());
    }
    *status = KERN_INVALID_TASK;
    return nullptr;
  }
  s.task = std::move(*task);
  return s.task;
}

std::shared_ptr<Task> task_for(mach_port_t task_name, kern_return_t* status) {
  if (task_name != kTaskSelfName) {
    *status = MACH_SEND_INVALID_DEST;
    return nullptr;
  }
  return process_task(status);
}

}  // namespace portd::mach

// ---- the C interface -------------------------------------------------------------

#pragma GCC visibility push(default)
extern "C" {

mach_port_t mach_task_self_ = portd::mach::kTaskSelfName;
mach_port_t bootstrap_port = portd::mach::kBootstrapName;

vm_size_t vm_page_size = static_cast<vm_size_t>(::sysconf(_SC_PAGESIZE));
vm_size_t vm_page_mask = vm_page_size - 1;
int vm_page_shift = __builtin_ctzl(vm_page_size);

mach_port_t mach_task_self(void) {
  kern_return_t status = KERN_SUCCESS;
  (void)portd::mach::process_task(&status);
  return portd::mach::kTaskSelfName;
}

}  // extern "C"
#pragma GCC visibility pop
