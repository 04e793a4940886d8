/*
 * Receiving out-of-line memory: the runner (a raw client of the daemon, not
 * libportd: a memfd sealed by someone else) sends a message with two
 * regions, 1 MiB and empty, to the service this program checks in. The
 * region arrives mapped into our address space, readable and writable (a
 * private copy), and vm_deallocate unmaps it.
 */
#include <sys/mman.h>

#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t big;
  mach_msg_ool_descriptor_t empty;
  int tail;
} ool_msg_t;

typedef struct {
  ool_msg_t msg;
  mach_msg_max_trailer_t trailer;
} ool_rcv_t;

static int mapped(const void* p) {
  return msync((void*)((uintptr_t)p & ~(uintptr_t)vm_page_mask), vm_page_size, MS_ASYNC) == 0;
}

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, "test.mach.ool_receive", &port));
  printf("READY\n");
  fflush(stdout);

  ool_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 20000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_id, 321);
  CHECK_EQ(in.msg.base.header.msgh_size, sizeof(ool_msg_t));
  CHECK(in.msg.base.header.msgh_bits & MACH_MSGH_BITS_COMPLEX);
  CHECK_EQ(in.msg.base.body.msgh_descriptor_count, 2);
  CHECK_EQ(in.msg.big.type, MACH_MSG_OOL_DESCRIPTOR);
  CHECK_EQ(in.msg.big.size, 1 << 20);
  CHECK_EQ(in.msg.big.deallocate, TRUE);
  CHECK_EQ(in.msg.big.copy, MACH_MSG_VIRTUAL_COPY);
  unsigned char* data = (unsigned char*)in.msg.big.address;
  CHECK(data != NULL);
  CHECK_EQ((uintptr_t)data & vm_page_mask, 0);
  for (size_t i = 0; i < (1u << 20); ++i) {
    if (data[i] != (unsigned char)(i * 7)) FAIL_AT("byte %zu is %u", i, data[i]);
  }
  data[0] = 0xff; /* our own copy */
  CHECK_EQ(in.msg.empty.type, MACH_MSG_OOL_DESCRIPTOR);
  CHECK_EQ(in.msg.empty.size, 0);
  CHECK(in.msg.empty.address == NULL);
  CHECK_EQ(in.msg.tail, 0x600d);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)data, in.msg.big.size));
  CHECK(!mapped(data));
  return test_pass("ool_receive");
}
