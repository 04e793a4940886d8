/*
 * Port sets: members, receiving from the set in arrival order with
 * msgh_local_port naming the member, moving members in and out, and the
 * errors.
 */
#include "mach_test.h"

static natural_t in_set(mach_port_t p) {
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(mach_task_self(), p, MACH_PORT_RECEIVE_STATUS,
                                    (mach_port_info_t)&status, &count));
  return status.mps_pset;
}

int main(void) {
  const mach_port_t self = mach_task_self();
  simple_rcv_t in;
  mach_port_t set = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_PORT_SET, &set));
  mach_port_t a = make_port_with_send();
  mach_port_t b = make_port_with_send();
  CHECK_OK(mach_port_move_member(self, a, set));
  CHECK_OK(mach_port_insert_member(self, b, set));
  CHECK_EQ(in_set(a), 1);
  CHECK_EQ(in_set(b), 1);
  CHECK_KR(mach_port_move_member(self, a, set), KERN_ALREADY_IN_SET);

  mach_port_name_array_t members = NULL;
  mach_msg_type_number_t count = 0;
  CHECK_OK(mach_port_get_set_status(self, set, &members, &count));
  CHECK_EQ(count, 2);
  CHECK((members[0] == a && members[1] == b) || (members[0] == b && members[1] == a));
  CHECK_OK(vm_deallocate(self, (vm_address_t)members, count * sizeof *members));

  /* Empty set: nothing to receive. */
  CHECK_KR(receive_simple(set, &in, 0), MACH_RCV_TIMED_OUT);

  /* Arrival order across members; local port is the member. */
  CHECK_KR(send_simple(b, MACH_MSG_TYPE_COPY_SEND, 1, 10, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(a, MACH_MSG_TYPE_COPY_SEND, 2, 20, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(b, MACH_MSG_TYPE_COPY_SEND, 3, 30, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_KR(receive_simple(set, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 1);
  CHECK_EQ(in.msg.header.msgh_local_port, b);
  CHECK_KR(receive_simple(set, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 2);
  CHECK_EQ(in.msg.header.msgh_local_port, a);
  CHECK_EQ(in.msg.value, 20);
  /* A member can still be received from directly. */
  CHECK_KR(receive_simple(b, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 3);

  /* Out of the set: its messages no longer show up there. */
  CHECK_OK(mach_port_extract_member(self, a, set));
  CHECK_EQ(in_set(a), 0);
  CHECK_KR(mach_port_extract_member(self, a, set), KERN_NOT_IN_SET);
  CHECK_KR(send_simple(a, MACH_MSG_TYPE_COPY_SEND, 4, 40, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_KR(receive_simple(set, &in, 0), MACH_RCV_TIMED_OUT);
  CHECK_KR(receive_simple(a, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 4);
  CHECK_OK(mach_port_move_member(self, b, MACH_PORT_NULL));
  CHECK_KR(mach_port_move_member(self, b, MACH_PORT_NULL), KERN_NOT_IN_SET);

  /* A set receives only: no send right can be made from it. */
  CHECK_KR(mach_port_insert_right(self, set, set, MACH_MSG_TYPE_MAKE_SEND), KERN_INVALID_RIGHT);
  CHECK_KR(mach_port_move_member(self, a, b), KERN_INVALID_RIGHT);

  /* Destroying the set leaves its members as they were. */
  CHECK_OK(mach_port_move_member(self, a, set));
  CHECK_OK(mach_port_destroy(self, set));
  CHECK_EQ(in_set(a), 0);
  CHECK_KR(send_simple(a, MACH_MSG_TYPE_COPY_SEND, 5, 50, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_KR(receive_simple(a, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 5);
  return test_pass("port_sets");
}
