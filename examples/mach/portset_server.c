/*
 * portset_server: one thread serving several ports through a port set.
 *
 * Makes three ports, puts them in a set, and forks a child (a task of its
 * own) that sends two messages to each port through send rights it looked up
 * with the bootstrap server. The parent receives all six from the set and
 * prints which port each came through, in arrival order.
 */
#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  mach_msg_header_t header;
  int value;
} small_t;

typedef struct {
  small_t msg;
  mach_msg_trailer_t trailer;
} small_rcv_t;

#define CHECK(expr)                                               \
  do {                                                            \
    kern_return_t kr_ = (expr);                                   \
    if (kr_ != KERN_SUCCESS) {                                    \
      fprintf(stderr, "%s: %s\n", #expr, mach_error_string(kr_)); \
      return 1;                                                   \
    }                                                             \
  } while (0)

static char names[3][BOOTSTRAP_MAX_NAME_LEN];

static int child(void) {
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i) {
      mach_port_t port = MACH_PORT_NULL;
      CHECK(bootstrap_look_up(bootstrap_port, names[i], &port));
      small_t m;
      memset(&m, 0, sizeof m);
      m.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
      m.header.msgh_size = sizeof m;
      m.header.msgh_remote_port = port;
      m.header.msgh_id = 10 * (i + 1) + round;
      m.value = i;
      CHECK(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL));
      CHECK(mach_port_deallocate(mach_task_self(), port));
    }
  }
  return 0;
}

int main(void) {
  mach_port_t set = MACH_PORT_NULL;
  mach_port_t ports[3];
  CHECK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_PORT_SET, &set));
  for (int i = 0; i < 3; ++i) {
    snprintf(names[i], sizeof names[i], "portd.example.portset.%d.%d", (int)getpid(), i);
    CHECK(bootstrap_check_in(bootstrap_port, names[i], &ports[i]));
    CHECK(mach_port_move_member(mach_task_self(), ports[i], set));
  }

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(child());

  for (int n = 0; n < 6; ++n) {
    small_rcv_t in;
    memset(&in, 0, sizeof in);
    CHECK(mach_msg(&in.msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, set, 10000,
                   MACH_PORT_NULL));
    int which = -1;
    for (int i = 0; i < 3; ++i)
      if (in.msg.header.msgh_local_port == ports[i]) which = i;
    printf("message %d through port %d (id %d)\n", n + 1, which, in.msg.header.msgh_id);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
