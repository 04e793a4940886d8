/*
 * Moving a receive right to another process: the right travels in a port
 * descriptor (MOVE_RECEIVE); the queue goes with it (messages already sent
 * arrive at the new owner), the sender's send right still reaches the port,
 * and the old owner is left with the send right only.
 */
#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_port_descriptor_t port;
} carry_msg_t;

typedef struct {
  carry_msg_t msg;
  mach_msg_max_trailer_t trailer;
} carry_rcv_t;

static name_t service;

static int new_owner(void* arg) {
  int* ready = (int*)arg;
  mach_port_t inbox = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &inbox));
  close(ready[1]);
  carry_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, inbox,
                    10000, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_id, 500);
  CHECK_EQ(in.msg.port.disposition, MACH_MSG_TYPE_PORT_RECEIVE);
  const mach_port_t moved = in.msg.port.name;
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(mach_task_self(), moved, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_RECEIVE);
  /* The queue came along, in order, then what was sent after the move. */
  for (int id = 1; id <= 3; ++id) {
    simple_rcv_t m;
    CHECK_KR(receive_simple(moved, &m, 10000), MACH_MSG_SUCCESS);
    CHECK_EQ(m.msg.header.msgh_id, id);
    CHECK_EQ(m.msg.header.msgh_local_port, moved);
  }
  return 0;
}

int main(void) {
  const mach_port_t self = mach_task_self();
  unique_name(service, "move");
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t pid = spawn_child(new_owner, ready);
  close(ready[1]);
  char byte;
  CHECK(read(ready[0], &byte, 1) == 0);
  mach_port_t inbox = MACH_PORT_NULL;
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &inbox));

  mach_port_t port = make_port_with_send();
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 0, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 2, 0, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);

  carry_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = inbox;
  out.base.header.msgh_id = 500;
  out.base.body.msgh_descriptor_count = 1;
  out.port.name = port;
  out.port.disposition = MACH_MSG_TYPE_MOVE_RECEIVE;
  out.port.type = MACH_MSG_PORT_DESCRIPTOR;
  CHECK_KR(
      mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);

  /* We keep the send right, and it still reaches the port. */
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(self, port, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_SEND);
  simple_rcv_t in;
  CHECK_KR(receive_simple(port, &in, 0), MACH_RCV_INVALID_NAME);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 3, 0, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(wait_child(pid), 0);

  /* The new owner exited: the port died with it. */
  for (int i = 0; i < 500; ++i) {
    CHECK_OK(mach_port_type(self, port, &type));
    if (type == MACH_PORT_TYPE_DEAD_NAME) break;
    usleep(10 * 1000);
  }
  CHECK_EQ(type, MACH_PORT_TYPE_DEAD_NAME);
  return test_pass("move_receive");
}
