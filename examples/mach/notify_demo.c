/*
 * notify_demo: Mach notifications.
 *
 * A child checks a service in and exits; the parent, holding a send right to
 * the child's port with a dead-name request on it, gets a dead-name
 * notification. Then a no-senders notification on a port of the parent's
 * own, when its last send right goes away.
 */
#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(expr)                                               \
  do {                                                            \
    kern_return_t kr_ = (expr);                                   \
    if (kr_ != KERN_SUCCESS) {                                    \
      fprintf(stderr, "%s: %s\n", #expr, mach_error_string(kr_)); \
      return 1;                                                   \
    }                                                             \
  } while (0)

typedef union {
  mach_dead_name_notification_t dead_name;
  mach_no_senders_notification_t no_senders;
  struct {
    mach_msg_header_t header;
    char room[128];
  } any;
} notification_t;

int main(void) {
  const mach_port_t self = mach_task_self();
  char service[BOOTSTRAP_MAX_NAME_LEN];
  snprintf(service, sizeof service, "portd.example.notify.%d", (int)getpid());
  int go[2];
  if (pipe(go) != 0) return 1;

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    mach_port_t port = MACH_PORT_NULL;
    CHECK(bootstrap_check_in(bootstrap_port, service, &port));
    close(go[1]);
    char byte;
    return read(go[0], &byte, 1) < 0; /* exits when told: its port dies */
  }
  close(go[0]);

  mach_port_t remote = MACH_PORT_NULL;
  for (int i = 0; i < 500; ++i) {
    if (bootstrap_look_up(bootstrap_port, service, &remote) == BOOTSTRAP_SUCCESS) break;
    usleep(10000);
  }
  mach_port_t notify = MACH_PORT_NULL, previous = MACH_PORT_NULL;
  CHECK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &notify));
  CHECK(mach_port_request_notification(self, remote, MACH_NOTIFY_DEAD_NAME, 0, notify,
                                       MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  close(go[1]);
  waitpid(pid, NULL, 0);

  notification_t n;
  memset(&n, 0, sizeof n);
  CHECK(mach_msg(&n.any.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof n, notify, 10000,
                 MACH_PORT_NULL));
  if (n.any.header.msgh_id == MACH_NOTIFY_DEAD_NAME) {
    printf("dead-name notification: name 0x%x died\n", n.dead_name.not_port);
  }

  mach_port_t port = MACH_PORT_NULL;
  CHECK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &port));
  CHECK(mach_port_insert_right(self, port, port, MACH_MSG_TYPE_MAKE_SEND));
  CHECK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 0, notify,
                                       MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK(mach_port_deallocate(self, port));
  memset(&n, 0, sizeof n);
  CHECK(mach_msg(&n.any.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof n, notify, 10000,
                 MACH_PORT_NULL));
  if (n.any.header.msgh_id == MACH_NOTIFY_NO_SENDERS) {
    printf("no-senders notification: make-send count %u\n", n.no_senders.not_count);
  }
  return 0;
}
