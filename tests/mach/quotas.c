/*
 * Quotas through the Mach API. The runner starts the daemon with
 * --quota-task-ports 3 and --quota-task-queued-messages 2: going over either
 * answers Mach's status for it, portd_last_refused_limit() names the limit,
 * and nothing is left half done.
 */
#include "mach_test.h"

static void check_limit(const char* expected) {
  const char* limit = portd_last_refused_limit();
  if (strcmp(limit, expected) != 0)
    FAIL_AT("portd_last_refused_limit() is \"%s\", expected \"%s\"", limit, expected);
}

int main(void) {
  const mach_port_t self = mach_task_self();
  mach_port_t ports[4] = {MACH_PORT_NULL, MACH_PORT_NULL, MACH_PORT_NULL, MACH_PORT_NULL};
  for (int i = 0; i < 3; ++i)
    CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &ports[i]));
  check_limit("");
  const mach_msg_type_number_t names = name_count();
  CHECK_KR(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &ports[3]), KERN_RESOURCE_SHORTAGE);
  check_limit("ports");
  CHECK_EQ(ports[3], MACH_PORT_NULL);
  CHECK_EQ(name_count(), names);

  /* Queued messages are charged to the sender until received. */
  mach_port_t port = ports[0];
  CHECK_OK(mach_port_insert_right(self, port, port, MACH_MSG_TYPE_MAKE_SEND));
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 10, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 2, 20, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 3, 30, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_SEND_NO_BUFFER);
  check_limit("queued_messages");
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(status.mps_msgcount, 2);
  simple_rcv_t in;
  CHECK_KR(receive_simple(port, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 1);
  check_limit("");
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 3, 30, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(receive_simple(port, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 2);
  CHECK_KR(receive_simple(port, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 3);

  /* A port given back makes room. */
  CHECK_OK(mach_port_mod_refs(self, ports[2], MACH_PORT_RIGHT_RECEIVE, -1));
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &ports[3]));
  return test_pass("quotas");
}
