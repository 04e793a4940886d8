/*
 * A task killed with SIGKILL: everything it held is released and everyone
 * else sees it. Its port's send rights become dead names (with a dead-name
 * notification where one was asked for), a sender blocked on its full queue
 * wakes with MACH_SEND_INVALID_DEST, and its bootstrap name goes away.
 */
#include <pthread.h>
#include <signal.h>

#include "mach_test.h"

static name_t service;
static mach_port_t victim_port;

static int victim(void* arg) {
  int* ready = (int*)arg;
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &port));
  mach_port_limits_t limits = {1};
  CHECK_OK(mach_port_set_attributes(mach_task_self(), port, MACH_PORT_LIMITS_INFO,
                                    (mach_port_info_t)&limits, MACH_PORT_LIMITS_INFO_COUNT));
  close(ready[1]);
  for (;;) pause();
  return 0;
}

struct blocked_send {
  mach_msg_return_t result;
  volatile int started;
};

static void* send_to_full_queue(void* arg) {
  struct blocked_send* b = (struct blocked_send*)arg;
  __atomic_store_n(&b->started, 1, __ATOMIC_SEQ_CST);
  b->result = send_simple(victim_port, MACH_MSG_TYPE_COPY_SEND, 2, 0, 0, MACH_MSG_TIMEOUT_NONE,
                          MACH_PORT_NULL);
  return NULL;
}

int main(void) {
  const mach_port_t self = mach_task_self();
  unique_name(service, "victim");
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t pid = spawn_child(victim, ready);
  close(ready[1]);
  char byte;
  CHECK(read(ready[0], &byte, 1) == 0);
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &victim_port));

  mach_port_t notify = MACH_PORT_NULL, previous = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &notify));
  CHECK_OK(mach_port_request_notification(self, victim_port, MACH_NOTIFY_DEAD_NAME, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));

  /* Fill the victim's queue (limit 1), and block a thread behind it. */
  CHECK_KR(send_simple(victim_port, MACH_MSG_TYPE_COPY_SEND, 1, 0, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  struct blocked_send blocked = {0, 0};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, send_to_full_queue, &blocked) == 0);
  while (!__atomic_load_n(&blocked.started, __ATOMIC_SEQ_CST)) usleep(1000);
  usleep(50 * 1000);

  CHECK(kill(pid, SIGKILL) == 0);
  CHECK_EQ(wait_child(pid), 128 + SIGKILL);

  union {
    mach_dead_name_notification_t n;
    char room[256];
  } dead;
  memset(&dead, 0, sizeof dead);
  CHECK_KR(mach_msg(&dead.n.not_header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof dead, notify,
                    10000, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(dead.n.not_header.msgh_id, MACH_NOTIFY_DEAD_NAME);
  CHECK_EQ(dead.n.not_port, victim_port);

  CHECK(pthread_join(thread, NULL) == 0);
  CHECK_KR(blocked.result, MACH_SEND_INVALID_DEST);

  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(self, victim_port, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_DEAD_NAME);
  CHECK_KR(send_simple(victim_port, MACH_MSG_TYPE_COPY_SEND, 3, 0, 0, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_DEST);
  mach_port_t again = MACH_PORT_NULL;
  CHECK_KR(bootstrap_look_up(bootstrap_port, service, &again), BOOTSTRAP_UNKNOWN_SERVICE);
  /* The name can be checked in anew. */
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &again));
  return test_pass("killed_task");
}
