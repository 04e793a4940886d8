/*
 * Receiving a volatile region from libportd's pool: the runner (a libportd
 * task) sends a segment of its volatile pool to the service this program
 * checks in. It arrives as MACH_MSG_OOL_VOLATILE_DESCRIPTOR, mapped privately;
 * the segment stays in flight while mapped, and vm_deallocate unmaps it and
 * gives it back to the sender (the runner checks its pool at each step while
 * this program runs).
 */
#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t region;
} volatile_msg_t;

typedef struct {
  volatile_msg_t msg;
  mach_msg_max_trailer_t trailer;
} volatile_rcv_t;

typedef struct {
  mach_msg_header_t header;
  mach_msg_max_trailer_t trailer;
} empty_rcv_t;

/* An empty message with `id` through a send right we keep. */
static void tell(mach_port_t to, int id) {
  mach_msg_header_t m;
  memset(&m, 0, sizeof m);
  m.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  m.msgh_size = sizeof m;
  m.msgh_remote_port = to;
  m.msgh_id = id;
  CHECK_KR(mach_msg(&m, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, MACH_MSG_TIMEOUT_NONE,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
}

static void wait_for(mach_port_t port, int id) {
  empty_rcv_t m;
  memset(&m, 0, sizeof m);
  CHECK_KR(mach_msg(&m.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof m, port, 20000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(m.header.msgh_id, id);
}

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, "test.mach.ool_volatile_receive", &port));
  printf("READY\n");
  fflush(stdout);

  volatile_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 20000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.body.msgh_descriptor_count, 1);
  CHECK_EQ(in.msg.region.type, MACH_MSG_OOL_VOLATILE_DESCRIPTOR);
  CHECK_EQ(in.msg.region.size, 5000);
  unsigned char* data = (unsigned char*)in.msg.region.address;
  CHECK(data != NULL);
  for (int i = 0; i < 5000; ++i) {
    if (data[i] != (unsigned char)(i * 3)) FAIL_AT("byte %d is %u", i, data[i]);
  }
  data[0] = 0xee; /* our private copy */

  /* The runner checks its segment is still in flight while we map it, then
   * asks us to let it go, and checks it is back. */
  const mach_port_t runner = in.msg.base.header.msgh_remote_port;
  CHECK_EQ(MACH_MSGH_BITS_REMOTE(in.msg.base.header.msgh_bits), MACH_MSG_TYPE_PORT_SEND);
  tell(runner, 1);
  wait_for(port, 2);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)data, in.msg.region.size));
  tell(runner, 3);
  wait_for(port, 4);
  return test_pass("ool_volatile_receive");
}
