/*
 * Every full-queue behaviour, from the sender's side: wait for room (the
 * default), wait at most n ms (MACH_SEND_TIMEOUT), return at once (timeout
 * 0), and cache-on-full (PORTD_SEND_NOTIFY): PORTD_SEND_WILL_NOTIFY, one
 * pending per thread (PORTD_SEND_NOTIFY_IN_PROGRESS), and the
 * PORTD_NOTIFY_MSG_ACCEPTED notification. Also: the rendezvous limit 0, and
 * messages to send-once rights, which never count against the limit.
 */
#include <pthread.h>

#include "mach_test.h"

static mach_port_t port;

struct blocked_send {
  mach_msg_return_t result;
  volatile int done;
};

static void* send_and_wait(void* arg) {
  struct blocked_send* b = (struct blocked_send*)arg;
  b->result =
      send_simple(port, MACH_MSG_TYPE_COPY_SEND, 3, 3, 0, MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL);
  __atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void set_qlimit(mach_port_t p, natural_t limit) {
  mach_port_limits_t limits = {limit};
  CHECK_OK(mach_port_set_attributes(mach_task_self(), p, MACH_PORT_LIMITS_INFO,
                                    (mach_port_info_t)&limits, MACH_PORT_LIMITS_INFO_COUNT));
}

static natural_t queued(mach_port_t p) {
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(mach_task_self(), p, MACH_PORT_RECEIVE_STATUS,
                                    (mach_port_info_t)&status, &count));
  return status.mps_msgcount;
}

int main(void) {
  simple_rcv_t in;
  port = make_port_with_send();
  set_qlimit(port, 1);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 1, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(queued(port), 1);

  /* Return at once. Nothing is consumed: the send right keeps its count. */
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 2, 2, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_SEND_TIMED_OUT);
  mach_port_urefs_t refs = 0;
  CHECK_OK(mach_port_get_refs(mach_task_self(), port, MACH_PORT_RIGHT_SEND, &refs));
  CHECK_EQ(refs, 1);

  /* Wait at most 200 ms. */
  double start = now_ms();
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 2, 2, MACH_SEND_TIMEOUT, 200, MACH_PORT_NULL),
           MACH_SEND_TIMED_OUT);
  CHECK(now_ms() - start >= 190);
  CHECK_EQ(queued(port), 1);

  /* Wait for room: a thread blocks until a message is received. */
  struct blocked_send blocked = {0, 0};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, send_and_wait, &blocked) == 0);
  usleep(100 * 1000);
  CHECK_EQ(__atomic_load_n(&blocked.done, __ATOMIC_SEQ_CST), 0);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 1);
  CHECK(pthread_join(thread, NULL) == 0);
  CHECK_KR(blocked.result, MACH_MSG_SUCCESS);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 3);

  /* Replies always fit: a message to a send-once right passes a full queue. */
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 4, 4, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_KR(
      send_simple(port, MACH_MSG_TYPE_MAKE_SEND_ONCE, 5, 5, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK_EQ(queued(port), 2);
  CHECK_KR(receive_simple(port, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 4);
  CHECK_KR(receive_simple(port, &in, 0), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 5);
  CHECK_EQ(in.msg.header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND_ONCE));

  /* Cache-on-full. */
  mach_port_t notify = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &notify));
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 10, 10, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  /* The notify port must be a receive right of ours. */
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 12, 12, PORTD_SEND_NOTIFY, 0, 0x7777703),
           MACH_SEND_INVALID_NOTIFY);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 11, 11, PORTD_SEND_NOTIFY, 0, notify),
           PORTD_SEND_WILL_NOTIFY);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 12, 12, PORTD_SEND_NOTIFY, 0, notify),
           PORTD_SEND_NOTIFY_IN_PROGRESS);
  CHECK_EQ(queued(port), 1);
  union {
    portd_msg_accepted_notification_t n;
    char buffer[256];
  } accepted;
  memset(&accepted, 0, sizeof accepted);
  CHECK_KR(mach_msg(&accepted.n.not_header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof accepted,
                    notify, 0, MACH_PORT_NULL),
           MACH_RCV_TIMED_OUT);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 10);
  /* Room: the cached message enters the queue and the sender is told. */
  CHECK_KR(
      mach_msg(&accepted.n.not_header,
               MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_SENDER),
               0, sizeof accepted, notify, 5000, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK_EQ(accepted.n.not_header.msgh_id, PORTD_NOTIFY_MSG_ACCEPTED);
  CHECK_EQ(accepted.n.not_header.msgh_size, 36);
  CHECK_EQ(accepted.n.not_header.msgh_local_port, notify);
  CHECK_EQ(accepted.n.not_header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND_ONCE));
  CHECK_EQ(accepted.n.not_port, port);
  CHECK_EQ(accepted.n.NDR.int_rep, NDR_record.int_rep);
  CHECK_EQ(accepted.n.trailer.msgh_sender.val[0], 0);
  CHECK_EQ(accepted.n.trailer.msgh_sender.val[1], 1);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 11);
  CHECK_EQ(in.msg.value, 11);

  /* Wait a while, then cache. */
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 20, 20, 0, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  start = now_ms();
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 21, 21, PORTD_SEND_NOTIFY | MACH_SEND_TIMEOUT,
                       100, notify),
           PORTD_SEND_WILL_NOTIFY);
  CHECK(now_ms() - start >= 90);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 20);
  CHECK_KR(receive_simple(port, &in, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 21);
  CHECK_KR(mach_msg(&accepted.n.not_header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof accepted,
                    notify, 5000, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(accepted.n.not_header.msgh_id, PORTD_NOTIFY_MSG_ACCEPTED);

  /* Rendezvous: with limit 0 and nobody receiving, a send cannot complete. */
  set_qlimit(port, 0);
  CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 30, 30, MACH_SEND_TIMEOUT, 0, MACH_PORT_NULL),
           MACH_SEND_TIMED_OUT);
  return test_pass("full_queue");
}
