#include "libclient/src/identity.h"

#include <unistd.h>

#include <atomic>

namespace portd::detail {

namespace {

std::atomic<pid_t> g_pid{0};  // 0: not read yet
// Per thread: 0 until read. A new thread starts at 0, so it reads its own.
thread_local uint64_t t_tid = 0;

}  // namespace

pid_t process_id() {
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

uint64_t thread_id() {
  if (t_tid == 0) t_tid = static_cast<uint64_t>(::gettid());
  return t_tid;
}

void identity_after_fork() {
  g_pid.store(::getpid(), std::memory_order_relaxed);
  t_tid = 0;  // the child's only thread is the one that forked
}

}  // namespace portd::detail
