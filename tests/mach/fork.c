/*
 * fork(): the child is a fresh task with its own connection. It holds none of
 * the parent's rights, its names mean nothing to the parent (and the
 * parent's to it), and its bootstrap port works. The parent's task is
 * untouched by the child's life and death.
 */
#include "mach_test.h"

static name_t service;
static mach_port_t parent_port;

static int child(void* arg) {
  (void)arg;
  const mach_port_t self = mach_task_self();
  CHECK_EQ(self, mach_task_self_);
  CHECK_EQ(name_count(), 0);
  mach_port_type_t type = 0;
  CHECK_KR(mach_port_type(self, parent_port, &type), KERN_INVALID_NAME);
  mach_port_t bp = MACH_PORT_NULL;
  CHECK_OK(task_get_bootstrap_port(self, &bp));
  CHECK_EQ(bp, bootstrap_port);
  mach_port_t server = MACH_PORT_NULL;
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &server));
  CHECK_KR(send_simple(server, MACH_MSG_TYPE_COPY_SEND, 7, (int)getpid(), 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  /* A port of the child's own, left behind when it exits. */
  mach_port_t mine = make_port_with_send();
  CHECK(MACH_PORT_VALID(mine));
  return 0;
}

/* A grandchild, forked by a child that never used Mach, is fresh as well. */
static int middle(void* arg) {
  pid_t pid = spawn_child(child, arg);
  return wait_child(pid);
}

int main(void) {
  const mach_port_t self = mach_task_self();
  unique_name(service, "fork");
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &parent_port));
  const mach_msg_type_number_t names = name_count();

  for (int round = 0; round < 2; ++round) {
    pid_t pid = spawn_child(round == 0 ? child : middle, NULL);
    simple_rcv_t in;
    memset(&in, 0, sizeof in);
    CHECK_KR(mach_msg(&in.msg.header,
                      MACH_RCV_MSG | MACH_RCV_TIMEOUT |
                          MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT),
                      0, sizeof in, parent_port, 10000, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(in.msg.header.msgh_id, 7);
    CHECK_EQ(in.trailer.msgh_audit.val[5], in.msg.value); /* the sender is the child */
    CHECK(in.msg.value != getpid());
    CHECK_EQ(wait_child(pid), 0);
  }

  /* The parent's rights are as they were. */
  CHECK_EQ(name_count(), names);
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(self, parent_port, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_RECEIVE);
  return test_pass("fork");
}
