/*
 * Helpers for the Mach conformance tests: plain C over the Mach headers.
 *
 * Each test is a program that a GoogleTest runner (mach_conformance_test.cc)
 * starts against a fresh portd daemon, with PORTD_SOCKET set. A check that
 * fails prints where and why on stderr and ends the process with status 1;
 * a program that gets to the end prints "PASS <name>" and exits 0. Forked
 * children report through their exit status (wait_child()).
 */
#ifndef PORTD_TESTS_MACH_TEST_H
#define PORTD_TESTS_MACH_TEST_H

#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FAIL_AT(...)                                                        \
  do {                                                                      \
    fprintf(stderr, "[pid %d] %s:%d: ", (int)getpid(), __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                                           \
    fprintf(stderr, "\n");                                                  \
    _exit(1);                                                               \
  } while (0)

#define CHECK(cond)                                  \
  do {                                               \
    if (!(cond)) FAIL_AT("CHECK failed: %s", #cond); \
  } while (0)

/* `expr` must return exactly `expected` (a kern_return_t / mach_msg_return_t). */
#define CHECK_KR(expr, expected)                                                  \
  do {                                                                            \
    const kern_return_t kr_ = (expr);                                             \
    const kern_return_t want_ = (expected);                                       \
    if (kr_ != want_)                                                             \
      FAIL_AT("%s returned 0x%x (%s), expected 0x%x (%s)", #expr, (unsigned)kr_,  \
              mach_error_string(kr_), (unsigned)want_, mach_error_string(want_)); \
  } while (0)

#define CHECK_OK(expr) CHECK_KR(expr, KERN_SUCCESS)

#define CHECK_EQ(a, b)                                                                            \
  do {                                                                                            \
    const long long a_ = (long long)(a);                                                          \
    const long long b_ = (long long)(b);                                                          \
    if (a_ != b_)                                                                                 \
      FAIL_AT("%s == %s: %lld (0x%llx) != %lld (0x%llx)", #a, #b, a_, (unsigned long long)a_, b_, \
              (unsigned long long)b_);                                                            \
  } while (0)

static inline int test_pass(const char* name) {
  printf("PASS %s\n", name);
  fflush(stdout);
  return 0;
}

/* Forks; the child runs `body` and exits with its return value. */
static inline pid_t spawn_child(int (*body)(void* arg), void* arg) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) FAIL_AT("fork failed");
  if (pid == 0) _exit(body(arg));
  return pid;
}

/* The child's exit status; a child killed by a signal counts as 128+signal. */
static inline int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* A bootstrap name nobody else uses. */
static inline void unique_name(name_t out, const char* stem) {
  static int counter = 0;
  snprintf(out, BOOTSTRAP_MAX_NAME_LEN, "test.mach.%s.%d.%d", stem, (int)getpid(), ++counter);
}

/* A receive right with a send right under the same name. */
static inline mach_port_t make_port_with_send(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));
  CHECK_OK(mach_port_insert_right(mach_task_self(), port, port, MACH_MSG_TYPE_MAKE_SEND));
  return port;
}

/* A simple message: header and one int. */
typedef struct {
  mach_msg_header_t header;
  int value;
} simple_msg_t;

typedef struct {
  simple_msg_t msg;
  mach_msg_max_trailer_t trailer;
} simple_rcv_t;

static inline mach_msg_return_t send_simple(mach_port_t dest, mach_msg_type_name_t disposition,
                                            mach_msg_id_t id, int value, mach_msg_option_t extra,
                                            mach_msg_timeout_t timeout, mach_port_t notify) {
  simple_msg_t m;
  memset(&m, 0, sizeof m);
  m.header.msgh_bits = MACH_MSGH_BITS(disposition, 0);
  m.header.msgh_size = sizeof m;
  m.header.msgh_remote_port = dest;
  m.header.msgh_local_port = MACH_PORT_NULL;
  m.header.msgh_id = id;
  m.value = value;
  return mach_msg(&m.header, MACH_SEND_MSG | extra, sizeof m, 0, MACH_PORT_NULL, timeout, notify);
}

static inline mach_msg_return_t receive_simple(mach_port_t port, simple_rcv_t* out,
                                               mach_msg_timeout_t timeout) {
  memset(out, 0, sizeof *out);
  return mach_msg(&out->msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof *out, port, timeout,
                  MACH_PORT_NULL);
}

/* How many names the task has. */
static inline mach_msg_type_number_t name_count(void) {
  mach_port_name_array_t names = NULL;
  mach_port_type_array_t types = NULL;
  mach_msg_type_number_t ncount = 0, tcount = 0;
  CHECK_OK(mach_port_names(mach_task_self(), &names, &ncount, &types, &tcount));
  CHECK_EQ(ncount, tcount);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)names, ncount * sizeof *names));
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)types, tcount * sizeof *types));
  return ncount;
}

#endif /* PORTD_TESTS_MACH_TEST_H */
