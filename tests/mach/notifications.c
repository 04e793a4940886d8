/*
 * Notifications laid out as Mach lays them out: dead-name (72), no-senders
 * (70), send-once (71), port-deleted (65) and port-destroyed (69), each with
 * its msgh_id, msgh_size, header bits, field and the kernel's trailer tokens.
 */
#include "mach_test.h"

typedef union {
  mach_dead_name_notification_t dead_name;
  mach_port_deleted_notification_t deleted;
  mach_no_senders_notification_t no_senders;
  mach_send_once_notification_t send_once;
  mach_port_destroyed_notification_t destroyed;
  struct {
    mach_msg_header_t header;
    char room[256];
  } any;
} notification_t;

static void receive_notification(mach_port_t notify, notification_t* n, mach_msg_id_t id,
                                 mach_msg_size_t size) {
  memset(n, 0, sizeof *n);
  CHECK_KR(
      mach_msg(&n->any.header,
               MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT),
               0, sizeof *n, notify, 5000, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK_EQ(n->any.header.msgh_id, id);
  CHECK_EQ(n->any.header.msgh_size, size);
  CHECK_EQ(n->any.header.msgh_local_port, notify);
  CHECK_EQ(n->any.header.msgh_remote_port, MACH_PORT_NULL);
  CHECK_EQ(MACH_MSGH_BITS_LOCAL(n->any.header.msgh_bits), MACH_MSG_TYPE_PORT_SEND_ONCE);
  CHECK_EQ(MACH_MSGH_BITS_REMOTE(n->any.header.msgh_bits), 0);
  /* From the "kernel": XNU's kernel tokens. */
  const mach_msg_audit_trailer_t* t =
      (const mach_msg_audit_trailer_t*)((const char*)n + round_msg(size));
  CHECK_EQ(t->msgh_trailer_size, sizeof(mach_msg_audit_trailer_t));
  CHECK_EQ(t->msgh_sender.val[0], 0);
  CHECK_EQ(t->msgh_sender.val[1], 1);
  for (int i = 0; i < 8; ++i) CHECK_EQ(t->msgh_audit.val[i], 0);
}

/* A child that checks a service in and holds it until told to go. */
struct holder {
  name_t service;
  int go[2];
};

static int hold_service(void* arg) {
  struct holder* h = (struct holder*)arg;
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, h->service, &port));
  close(h->go[1]);
  char byte;
  if (read(h->go[0], &byte, 1) < 0) return 2;
  return 0; /* exiting destroys the port */
}

/* Starts a holder and returns a send right to its port. */
static mach_port_t start_holder(struct holder* h, pid_t* pid, const char* stem) {
  unique_name(h->service, stem);
  CHECK(pipe(h->go) == 0);
  *pid = spawn_child(hold_service, h);
  mach_port_t send = MACH_PORT_NULL;
  for (int i = 0; i < 500; ++i) {
    if (bootstrap_look_up(bootstrap_port, h->service, &send) == BOOTSTRAP_SUCCESS) break;
    usleep(10 * 1000);
  }
  CHECK(MACH_PORT_VALID(send));
  return send;
}

static void stop_holder(struct holder* h, pid_t pid) {
  close(h->go[1]);
  close(h->go[0]);
  CHECK_EQ(wait_child(pid), 0);
}

int main(void) {
  const mach_port_t self = mach_task_self();
  notification_t n;
  mach_port_t notify = MACH_PORT_NULL, previous = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &notify));

  /* Dead name: another task's port dies. */
  struct holder h;
  pid_t pid;
  mach_port_t remote = start_holder(&h, &pid, "deadname");
  CHECK_OK(mach_port_request_notification(self, remote, MACH_NOTIFY_DEAD_NAME, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_EQ(previous, MACH_PORT_NULL);
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(self, remote, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_DNREQUEST);
  stop_holder(&h, pid);
  receive_notification(notify, &n, MACH_NOTIFY_DEAD_NAME, 36);
  CHECK_EQ(n.dead_name.not_port, remote);
  CHECK_EQ(n.dead_name.NDR.int_rep, NDR_INT_LITTLE_ENDIAN);
  CHECK_OK(mach_port_type(self, remote, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_DEAD_NAME);
  mach_port_urefs_t refs = 0;
  CHECK_OK(mach_port_get_refs(self, remote, MACH_PORT_RIGHT_DEAD_NAME, &refs));
  CHECK_EQ(refs, 2); /* the send right's, and the notification's */
  CHECK_OK(mach_port_mod_refs(self, remote, MACH_PORT_RIGHT_DEAD_NAME, -2));
  /* A dead-name request on a dead name: refused, unless sync asks for the
   * notification at once. */
  mach_port_t dead = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_DEAD_NAME, &dead));
  CHECK_KR(mach_port_request_notification(self, dead, MACH_NOTIFY_DEAD_NAME, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous),
           KERN_INVALID_ARGUMENT);
  CHECK_OK(mach_port_request_notification(self, dead, MACH_NOTIFY_DEAD_NAME, 1, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_EQ(previous, MACH_PORT_NULL);
  receive_notification(notify, &n, MACH_NOTIFY_DEAD_NAME, 36);
  CHECK_EQ(n.dead_name.not_port, dead);
  CHECK_OK(mach_port_get_refs(self, dead, MACH_PORT_RIGHT_DEAD_NAME, &refs));
  CHECK_EQ(refs, 2); /* the name's own, and the notification's */
  CHECK_OK(mach_port_mod_refs(self, dead, MACH_PORT_RIGHT_DEAD_NAME, -2));

  /* Port deleted: the name with a dead-name request goes away first. */
  remote = start_holder(&h, &pid, "deleted");
  CHECK_OK(mach_port_request_notification(self, remote, MACH_NOTIFY_DEAD_NAME, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_OK(mach_port_deallocate(self, remote));
  receive_notification(notify, &n, MACH_NOTIFY_PORT_DELETED, 36);
  CHECK_EQ(n.deleted.not_port, remote);
  stop_holder(&h, pid);

  /* No senders: the last send right goes; the field is the make-send count. */
  mach_port_t port = make_port_with_send();
  CHECK_OK(mach_port_insert_right(self, port, port, MACH_MSG_TYPE_MAKE_SEND));
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_EQ(previous, MACH_PORT_NULL);
  CHECK_OK(mach_port_deallocate(self, port));
  CHECK_KR(mach_msg(&n.any.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof n, notify, 0,
                    MACH_PORT_NULL),
           MACH_RCV_TIMED_OUT);
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_SEND, -1));
  receive_notification(notify, &n, MACH_NOTIFY_NO_SENDERS, 36);
  CHECK_EQ(n.no_senders.not_count, 2);

  /* No senders with a sync: with no senders left, a request fires at once
   * only if the make-send count (2 now) has reached sync. */
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 3, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_EQ(previous, MACH_PORT_NULL);
  CHECK_KR(mach_msg(&n.any.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof n, notify, 0,
                    MACH_PORT_NULL),
           MACH_RCV_TIMED_OUT);
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_NO_SENDERS, 2, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK(MACH_PORT_VALID(previous)); /* the sync-3 request's send-once right */
  receive_notification(notify, &n, MACH_NOTIFY_NO_SENDERS, 36);
  CHECK_EQ(n.no_senders.not_count, 2);
  CHECK_OK(mach_port_deallocate(self, previous));
  receive_notification(notify, &n, MACH_NOTIFY_SEND_ONCE, sizeof(mach_msg_header_t));

  /* Send once: a send-once right destroyed unused. */
  mach_port_t once = MACH_PORT_NULL;
  mach_msg_type_name_t once_type = 0;
  CHECK_OK(mach_port_extract_right(self, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE, &once, &once_type));
  CHECK_OK(mach_port_deallocate(self, once));
  receive_notification(notify, &n, MACH_NOTIFY_SEND_ONCE, sizeof(mach_msg_header_t));

  /* Port destroyed: the receive right comes back to the backup port. */
  CHECK_OK(mach_port_request_notification(self, port, MACH_NOTIFY_PORT_DESTROYED, 0, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_OK(mach_port_mod_refs(self, port, MACH_PORT_RIGHT_RECEIVE, -1));
  receive_notification(notify, &n, MACH_NOTIFY_PORT_DESTROYED,
                       sizeof(mach_msg_base_t) + sizeof(mach_msg_port_descriptor_t));
  CHECK(n.destroyed.not_header.msgh_bits & MACH_MSGH_BITS_COMPLEX);
  CHECK_EQ(n.destroyed.not_body.msgh_descriptor_count, 1);
  CHECK_EQ(n.destroyed.not_port.type, MACH_MSG_PORT_DESCRIPTOR);
  CHECK_EQ(n.destroyed.not_port.disposition, MACH_MSG_TYPE_PORT_RECEIVE);
  const mach_port_t back = n.destroyed.not_port.name;
  CHECK(MACH_PORT_VALID(back));
  CHECK_OK(mach_port_type(self, back, &type));
  CHECK_EQ(type & MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_RECEIVE);

  /* Cancelling a request hands back the previous send-once right. */
  CHECK_OK(mach_port_request_notification(self, back, MACH_NOTIFY_NO_SENDERS, 5, notify,
                                          MACH_MSG_TYPE_MAKE_SEND_ONCE, &previous));
  CHECK_OK(mach_port_request_notification(self, back, MACH_NOTIFY_NO_SENDERS, 0, MACH_PORT_NULL, 0,
                                          &previous));
  CHECK(MACH_PORT_VALID(previous));
  CHECK_OK(mach_port_type(self, previous, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_SEND_ONCE);
  return test_pass("notifications");
}
