/*
 * MACH_RCV_LARGE: a message too large for the buffer stays queued and the
 * size it needs (with the requested trailer) comes back in msgh_size.
 * Without MACH_RCV_LARGE the message is destroyed, and the rights it carried
 * are released.
 */
#include "mach_test.h"

typedef struct {
  mach_msg_header_t header;
  char data[100];
} big_msg_t;

typedef struct {
  mach_msg_base_t base;
  mach_msg_port_descriptor_t port;
  char data[100];
} big_complex_t;

static natural_t queued(mach_port_t p, boolean_t* srights) {
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(mach_task_self(), p, MACH_PORT_RECEIVE_STATUS,
                                    (mach_port_info_t)&status, &count));
  if (srights) *srights = status.mps_srights;
  return status.mps_msgcount;
}

int main(void) {
  mach_port_t port = make_port_with_send();
  big_msg_t out;
  memset(&out, 0, sizeof out);
  out.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  out.header.msgh_size = sizeof out;
  out.header.msgh_remote_port = port;
  out.header.msgh_id = 77;
  for (int i = 0; i < 100; ++i) out.data[i] = (char)i;
  CHECK_KR(mach_msg(&out.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);

  union {
    mach_msg_header_t header;
    char bytes[512];
  } in;
  /* Too small, with MACH_RCV_LARGE: the needed size, the message stays. */
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.header, MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_TIMEOUT, 0, 64, port, 0,
                    MACH_PORT_NULL),
           MACH_RCV_TOO_LARGE);
  CHECK_EQ(in.header.msgh_size, sizeof(big_msg_t) + sizeof(mach_msg_trailer_t));
  CHECK_EQ(queued(port, NULL), 1);
  /* The needed size counts the trailer asked for. */
  CHECK_KR(mach_msg(&in.header,
                    MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_TIMEOUT |
                        MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT),
                    0, sizeof(big_msg_t) + sizeof(mach_msg_trailer_t), port, 0, MACH_PORT_NULL),
           MACH_RCV_TOO_LARGE);
  CHECK_EQ(in.header.msgh_size, sizeof(big_msg_t) + sizeof(mach_msg_audit_trailer_t));
  /* Exactly big enough. */
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.header, MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_TIMEOUT, 0,
                    sizeof(big_msg_t) + sizeof(mach_msg_trailer_t), port, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.header.msgh_id, 77);
  CHECK_EQ(in.header.msgh_size, sizeof(big_msg_t));
  const big_msg_t* got = (const big_msg_t*)&in;
  for (int i = 0; i < 100; ++i) CHECK_EQ(got->data[i], i);
  CHECK_EQ(queued(port, NULL), 0);

  /* Without MACH_RCV_LARGE the message is destroyed, with its rights: the
   * send right it carried goes, and with it the other port's last sender. */
  mach_port_t other = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &other));
  big_complex_t c;
  memset(&c, 0, sizeof c);
  c.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  c.base.header.msgh_size = sizeof c;
  c.base.header.msgh_remote_port = port;
  c.base.header.msgh_id = 78;
  c.base.body.msgh_descriptor_count = 1;
  c.port.name = other;
  c.port.disposition = MACH_MSG_TYPE_MAKE_SEND;
  c.port.type = MACH_MSG_PORT_DESCRIPTOR;
  CHECK_KR(mach_msg(&c.base.header, MACH_SEND_MSG, sizeof c, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  boolean_t srights = FALSE;
  CHECK_EQ(queued(other, &srights), 0);
  CHECK_EQ(srights, TRUE);
  CHECK_KR(mach_msg(&in.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 64, port, 0, MACH_PORT_NULL),
           MACH_RCV_TOO_LARGE);
  CHECK_EQ(queued(port, NULL), 0);
  CHECK_EQ(queued(other, &srights), 0);
  CHECK_EQ(srights, FALSE);
  CHECK_KR(
      mach_msg(&in.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 0, MACH_PORT_NULL),
      MACH_RCV_TIMED_OUT);
  return test_pass("rcv_large");
}
