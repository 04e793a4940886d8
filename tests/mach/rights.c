/*
 * Rights and reference counts: allocate, insert (under the port's name and
 * under a chosen one), extract, mod_refs, get_refs, type, names, destroy (of
 * every kind of right), deallocate, dead names, the urefs cap, construct and
 * destruct, attributes (with armed requests), and the names the library
 * reserves.
 */
#include "mach_test.h"

static mach_port_urefs_t refs(mach_port_t name, mach_port_right_t right) {
  mach_port_urefs_t n = 0;
  CHECK_OK(mach_port_get_refs(mach_task_self(), name, right, &n));
  return n;
}

static mach_port_type_t type_of(mach_port_t name) {
  mach_port_type_t t = 0;
  CHECK_OK(mach_port_type(mach_task_self(), name, &t));
  return t;
}

static void check_listed(mach_port_t name, mach_port_type_t expected) {
  mach_port_name_array_t names = NULL;
  mach_port_type_array_t types = NULL;
  mach_msg_type_number_t ncount = 0, tcount = 0;
  CHECK_OK(mach_port_names(mach_task_self(), &names, &ncount, &types, &tcount));
  CHECK_EQ(ncount, tcount);
  int found = 0;
  for (mach_msg_type_number_t i = 0; i < ncount; ++i) {
    if (names[i] == name) {
      ++found;
      CHECK_EQ(types[i], expected);
    }
  }
  CHECK_EQ(found, 1);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)names, ncount * sizeof *names));
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)types, tcount * sizeof *types));
}

int main(void) {
  const mach_port_t self = mach_task_self();
  CHECK_EQ(self, mach_task_self_);
  CHECK_EQ(name_count(), 0);

  /* A receive right, then send rights made from it. */
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &port));
  CHECK(MACH_PORT_VALID(port));
  CHECK_EQ(type_of(port), MACH_PORT_TYPE_RECEIVE);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_RECEIVE), 1);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 0);
  CHECK_OK(mach_port_insert_right(self, port, port, MACH_MSG_TYPE_MAKE_SEND));
  CHECK_EQ(type_of(port), MACH_PORT_TYPE_SEND_RECEIVE);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 1);
  check_listed(port, MACH_PORT_TYPE_SEND_RECEIVE);
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, 2));
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 3);
  CHECK_OK(mach_port_deallocate(self, port));
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 2);
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, -2));
  CHECK_EQ(type_of(port), MACH_PORT_TYPE_RECEIVE);
  CHECK_KR(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, -1), KERN_INVALID_RIGHT);
  CHECK_KR(mach_port_deallocate(self, port), KERN_INVALID_RIGHT);

  /* The urefs cap. */
  CHECK_OK(mach_port_insert_right(self, port, port, MACH_MSG_TYPE_MAKE_SEND));
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, MACH_PORT_UREFS_MAX - 1));
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), MACH_PORT_UREFS_MAX);
  CHECK_KR(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, 1), KERN_UREFS_OVERFLOW);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), MACH_PORT_UREFS_MAX);
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, -(int)(MACH_PORT_UREFS_MAX - 1)));
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 1);

  /* A send-once right has a name of its own; destroying it unused sends a
   * send-once notification (the header alone) to its port. */
  mach_port_t once = MACH_PORT_NULL;
  mach_msg_type_name_t once_type = 0;
  CHECK_OK(mach_port_extract_right(self, port, MACH_MSG_TYPE_MAKE_SEND_ONCE, &once, &once_type));
  CHECK(once != port);
  CHECK_EQ(once_type, MACH_MSG_TYPE_PORT_SEND_ONCE);
  CHECK_EQ(type_of(once), MACH_PORT_TYPE_SEND_ONCE);
  CHECK_EQ(refs(once, MACH_PORT_RIGHT_SEND_ONCE), 1);
  CHECK_OK(mach_port_deallocate(self, once));
  mach_port_type_t gone = 0;
  CHECK_KR(mach_port_type(self, once, &gone), KERN_INVALID_NAME);
  union {
    mach_send_once_notification_t n;
    char buffer[128];
  } so;
  memset(&so, 0, sizeof so);
  CHECK_KR(mach_msg(&so.n.not_header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof so, port, 5000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(so.n.not_header.msgh_id, MACH_NOTIFY_SEND_ONCE);
  CHECK_EQ(so.n.not_header.msgh_size, sizeof(mach_msg_header_t));
  CHECK_EQ(so.n.not_header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND_ONCE));
  CHECK_EQ(so.n.not_header.msgh_local_port, port);
  CHECK_EQ(so.n.trailer.msgh_trailer_size, sizeof(mach_msg_trailer_t));

  /* extract_right COPY_SEND gives another reference under the same name;
   * MAKE_SEND increments the make-send count. */
  mach_port_t copy = MACH_PORT_NULL;
  mach_msg_type_name_t copy_type = 0;
  CHECK_OK(mach_port_extract_right(self, port, MACH_MSG_TYPE_COPY_SEND, &copy, &copy_type));
  CHECK_EQ(copy, port);
  CHECK_EQ(copy_type, MACH_MSG_TYPE_PORT_SEND);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 2);

  /* Attributes. */
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_EQ(count, 10);
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(count, MACH_PORT_RECEIVE_STATUS_COUNT);
  CHECK_EQ(status.mps_pset, 0);
  CHECK_EQ(status.mps_qlimit, MACH_PORT_QLIMIT_DEFAULT);
  CHECK_EQ(status.mps_msgcount, 0);
  CHECK_EQ(status.mps_srights, TRUE);
  CHECK_EQ(status.mps_sorights, 0);
  CHECK_EQ(status.mps_nsrequest, FALSE);
  const mach_port_mscount_t mscount = status.mps_mscount;
  CHECK_EQ(mscount, 2); /* the two MAKE_SEND insertions; COPY_SEND makes nothing */
  /* extract_right MAKE_SEND makes one: a reference more, and the count. */
  CHECK_OK(mach_port_extract_right(self, port, MACH_MSG_TYPE_MAKE_SEND, &copy, &copy_type));
  CHECK_EQ(copy, port);
  CHECK_EQ(copy_type, MACH_MSG_TYPE_PORT_SEND);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_SEND), 3);
  count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(status.mps_mscount, 3);
  CHECK_OK(mach_port_deallocate(self, port));
  /* Armed requests show in the status. */
  CHECK_EQ(status.mps_pdrequest, FALSE);
  mach_port_t notify = MACH_PORT_NULL, previous = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &notify));
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_PORT_DESTROYED, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(status.mps_nsrequest, TRUE);
  CHECK_EQ(status.mps_pdrequest, TRUE);
  /* Cancelled, each hands back its send-once right (destroyed here: two
     send-once notifications to `notify`, which goes with them). */
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 0, MACH_PORT_NULL, 0,
                                          &previous));
  CHECK_EQ(type_of(previous), MACH_PORT_TYPE_SEND_ONCE);
  CHECK_OK(mach_port_deallocate(self, previous));
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_PORT_DESTROYED, 0, MACH_PORT_NULL,
                                          0, &previous));
  CHECK_EQ(type_of(previous), MACH_PORT_TYPE_SEND_ONCE);
  CHECK_OK(mach_port_deallocate(self, previous));
  CHECK_OK(mach_port_mod_refs(self, notify, MACH_PORT_RIGHT_RECEIVE, -1));
  count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(status.mps_nsrequest, FALSE);
  CHECK_EQ(status.mps_pdrequest, FALSE);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 1, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_MAKE_SEND_ONCE, 2, 2, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count));
  CHECK_EQ(status.mps_msgcount, 2);
  CHECK_EQ(status.mps_seqno, 1); /* the send-once notification was received */
  count = MACH_PORT_RECEIVE_STATUS_COUNT - 1;
  CHECK_KR(mach_port_get_attributes(self, port, MACH_PORT_RECEIVE_STATUS, (mach_port_info_t)&status,
                                    &count),
           KERN_FAILURE);
  mach_port_limits_t limits = {7};
  CHECK_OK(mach_port_set_attributes(self, port, MACH_PORT_LIMITS_INFO, (mach_port_info_t)&limits,
                                    MACH_PORT_LIMITS_INFO_COUNT));
  limits.mpl_qlimit = 0;
  count = MACH_PORT_LIMITS_INFO_COUNT;
  CHECK_OK(mach_port_get_attributes(self, port, MACH_PORT_LIMITS_INFO, (mach_port_info_t)&limits,
                                    &count));
  CHECK_EQ(limits.mpl_qlimit, 7);
  limits.mpl_qlimit = MACH_PORT_QLIMIT_MAX + 1;
  CHECK_KR(mach_port_set_attributes(self, port, MACH_PORT_LIMITS_INFO, (mach_port_info_t)&limits,
                                    MACH_PORT_LIMITS_INFO_COUNT),
           KERN_INVALID_VALUE);
  CHECK_KR(mach_port_get_attributes(self, port, 99, (mach_port_info_t)&limits, &count),
           KERN_INVALID_ARGUMENT);

  /* Destroying a receive right that also has send rights leaves a dead
   * name with those references; its queued messages go with it. */
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_RECEIVE, -1));
  CHECK_EQ(type_of(port), MACH_PORT_TYPE_DEAD_NAME);
  CHECK_EQ(refs(port, MACH_PORT_RIGHT_DEAD_NAME), 2);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 1, 0, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_DEST);
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_DEAD_NAME, -2));
  CHECK_KR(mach_port_type(self, port, &gone), KERN_INVALID_NAME);

  /* Port sets and dead names can be allocated too; destroy removes any. */
  mach_port_t set = MACH_PORT_NULL, dead = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_PORT_SET, &set));
  CHECK_EQ(type_of(set), MACH_PORT_TYPE_PORT_SET);
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_DEAD_NAME, &dead));
  CHECK_EQ(type_of(dead), MACH_PORT_TYPE_DEAD_NAME);
  CHECK_EQ(refs(dead, MACH_PORT_RIGHT_DEAD_NAME), 1);
  CHECK_OK(mach_port_mod_refs(self, dead, MACH_PORT_RIGHT_DEAD_NAME, 1));
  CHECK_EQ(refs(dead, MACH_PORT_RIGHT_DEAD_NAME), 2);
  CHECK_OK(mach_port_destroy(self, dead));
  CHECK_OK(mach_port_destroy(self, set));
  CHECK_EQ(name_count(), 0);

  /* Errors. */
  mach_port_t bogus = MACH_PORT_NULL;
  CHECK_KR(mach_port_allocate(self, MACH_PORT_RIGHT_SEND, &bogus), KERN_INVALID_VALUE);
  CHECK_KR(mach_port_allocate(0x1234, MACH_PORT_RIGHT_RECEIVE, &bogus), MACH_SEND_INVALID_DEST);
  CHECK_KR(mach_port_allocate(MACH_PORT_NULL, MACH_PORT_RIGHT_RECEIVE, &bogus),
           MACH_SEND_INVALID_DEST);
  CHECK_KR(mach_port_deallocate(self, 0x12345603), KERN_INVALID_NAME);
  CHECK_OK(mach_port_deallocate(self, MACH_PORT_NULL));
  CHECK_OK(mach_port_deallocate(self, MACH_PORT_DEAD));

  /* mach_port_construct: queue limit and send right, all at once. */
  mach_port_options_t options;
  memset(&options, 0, sizeof options);
  options.flags = MPO_QLIMIT | MPO_INSERT_SEND_RIGHT;
  options.mpl.mpl_qlimit = 1;
  mach_port_t constructed = MACH_PORT_NULL;
  CHECK_OK(mach_port_construct(self, &options, 0, &constructed));
  CHECK_EQ(type_of(constructed), MACH_PORT_TYPE_SEND_RECEIVE);
  count = MACH_PORT_LIMITS_INFO_COUNT;
  CHECK_OK(mach_port_get_attributes(self, constructed, MACH_PORT_LIMITS_INFO,
                                    (mach_port_info_t)&limits, &count));
  CHECK_EQ(limits.mpl_qlimit, 1);
  CHECK_KR(mach_port_destruct(self, constructed, 1, 0), KERN_INVALID_VALUE);
  CHECK_OK(mach_port_destruct(self, constructed, -1, 0));
  CHECK_KR(mach_port_type(self, constructed, &gone), KERN_INVALID_NAME);
  options.flags = MPO_QLIMIT;
  options.mpl.mpl_qlimit = MACH_PORT_QLIMIT_MAX + 1;
  CHECK_KR(mach_port_construct(self, &options, 0, &constructed), KERN_INVALID_VALUE);
  options.flags = MPO_CONTEXT_AS_GUARD | MPO_STRICT;
  CHECK_OK(mach_port_construct(self, &options, 0x1234, &constructed));
  CHECK_EQ(type_of(constructed), MACH_PORT_TYPE_RECEIVE);
  CHECK_OK(mach_port_destruct(self, constructed, 0, 0x1234));
  CHECK_EQ(name_count(), 0);

  /* insert_right: more of the same port's rights under its own name, a
     receive right moved to a name of the caller's choosing, and the
     refusals. */
  mach_port_t p = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &p));
  const mach_port_t chosen = 0x00004001; /* index 0x40, generation 1: free */
  CHECK_KR(mach_port_type(self, chosen, &gone), KERN_INVALID_NAME);
  CHECK_OK(mach_port_insert_right(self, chosen, p, MACH_MSG_TYPE_MOVE_RECEIVE));
  CHECK_KR(mach_port_type(self, p, &gone), KERN_INVALID_NAME);
  CHECK_EQ(type_of(chosen), MACH_PORT_TYPE_RECEIVE);
  p = chosen;
  CHECK_OK(mach_port_insert_right(self, p, p, MACH_MSG_TYPE_MAKE_SEND));
  CHECK_OK(mach_port_insert_right(self, p, p, MACH_MSG_TYPE_COPY_SEND));
  CHECK_EQ(refs(p, MACH_PORT_RIGHT_SEND), 2);
  CHECK_OK(mach_port_insert_right(self, p, p, MACH_MSG_TYPE_MOVE_SEND)); /* onto itself */
  CHECK_EQ(refs(p, MACH_PORT_RIGHT_SEND), 2);
  /* One name per port: a send right for it under another name. */
  CHECK_KR(mach_port_insert_right(self, 0x00004101, p, MACH_MSG_TYPE_MAKE_SEND), KERN_RIGHT_EXISTS);
  /* A name already in use for something else. */
  mach_port_t other = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &other));
  CHECK_KR(mach_port_insert_right(self, other, p, MACH_MSG_TYPE_MAKE_SEND), KERN_NAME_EXISTS);
  CHECK_KR(mach_port_insert_right(self, MACH_PORT_NULL, p, MACH_MSG_TYPE_MAKE_SEND),
           KERN_INVALID_VALUE);
  CHECK_KR(mach_port_insert_right(self, 0x00004201, 0x00004301, MACH_MSG_TYPE_MAKE_SEND),
           KERN_INVALID_NAME);
  CHECK_KR(mach_port_insert_right(self, 0x00004201, other, MACH_MSG_TYPE_COPY_SEND),
           KERN_INVALID_RIGHT);
  /* Refused calls changed nothing. */
  CHECK_EQ(refs(p, MACH_PORT_RIGHT_SEND), 2);
  CHECK_EQ(type_of(other), MACH_PORT_TYPE_RECEIVE);
  CHECK_KR(mach_port_type(self, 0x00004101, &gone), KERN_INVALID_NAME);
  CHECK_KR(mach_port_type(self, 0x00004201, &gone), KERN_INVALID_NAME);

  /* mach_port_destroy of a receive right: every right under the name goes
     and the name is free; a send-once right to the port (a name of its own)
     turns into a dead name; the queued message is destroyed. */
  mach_port_t dead_so = MACH_PORT_NULL;
  mach_msg_type_name_t so_type = 0;
  CHECK_OK(mach_port_extract_right(self, p, MACH_MSG_TYPE_MAKE_SEND_ONCE, &dead_so, &so_type));
  CHECK_KR(send_simple(p, MACH_MSG_TYPE_COPY_SEND, 1, 1, 0, 0, MACH_PORT_NULL), MACH_MSG_SUCCESS);
  CHECK_OK(mach_port_destroy(self, p));
  CHECK_KR(mach_port_type(self, p, &gone), KERN_INVALID_NAME);
  CHECK_EQ(type_of(dead_so), MACH_PORT_TYPE_DEAD_NAME);
  CHECK_EQ(refs(dead_so, MACH_PORT_RIGHT_DEAD_NAME), 1);
  CHECK_OK(mach_port_destroy(self, dead_so));
  CHECK_OK(mach_port_destroy(self, other));
  CHECK_EQ(name_count(), 0);

  /* The reserved names: the task's own port and the bootstrap port. */
  mach_port_t bp = MACH_PORT_NULL;
  CHECK_OK(task_get_bootstrap_port(self, &bp));
  CHECK_EQ(bp, bootstrap_port);
  CHECK_OK(task_get_special_port(self, TASK_KERNEL_PORT, &bp));
  CHECK_EQ(bp, self);
  CHECK_EQ(type_of(bootstrap_port), MACH_PORT_TYPE_SEND);
  CHECK_OK(mach_port_deallocate(self, bootstrap_port));
  CHECK_OK(mach_port_deallocate(self, self));
  CHECK(MACH_PORT_INDEX(self) == 0 && MACH_PORT_INDEX(bootstrap_port) == 0);
  mach_port_t reply = mach_reply_port();
  CHECK(MACH_PORT_VALID(reply));
  CHECK_EQ(type_of(reply), MACH_PORT_TYPE_RECEIVE);
  return test_pass("rights");
}
