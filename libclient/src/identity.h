// The process's pid and the calling thread's tid, without a system call each
// time. glibc caches neither, and a request used to ask for both: two of the
// six system calls a client made per round trip.
//
// Both are read once and kept; fork() makes them stale in the child, so the
// library's fork handler (connection.cc) calls identity_after_fork() in the
// child before anything else. A child made by a raw clone() that skips
// pthread_atfork handlers would keep its parent's values; such a child must
// not use the library (it could not use the parent's sockets either).
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace portd::detail {

pid_t process_id();
uint64_t thread_id();
// In the child of fork(), from its atfork handler: forget the parent's pid
// and the forking thread's tid.
void identity_after_fork();

}  // namespace portd::detail
