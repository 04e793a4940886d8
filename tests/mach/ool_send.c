/*
 * Sending out-of-line memory through mach_msg: a small vm_allocate'd region
 * (under 64 KiB: anonymous memory) sent with deallocate=TRUE (copied at send
 * time into a sealed memfd, then the sender's pages are unmapped; larger
 * regions go zero copy, ool_zero_copy.c), and a volatile descriptor of a stack buffer
 * (copied too; delivered as volatile). The program sends them to itself and
 * checks what arrives.
 */
#include <sys/mman.h>

#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t region;
  mach_msg_ool_descriptor_t small;
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
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));

  const vm_size_t size = 3 * 4096 + 100;
  vm_address_t region = 0;
  CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
  unsigned char* bytes = (unsigned char*)region;
  for (vm_size_t i = 0; i < size; ++i) bytes[i] = (unsigned char)(i * 13 + 1);
  char small[10] = "volatile!";

  ool_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = port;
  out.base.header.msgh_id = 77;
  out.base.body.msgh_descriptor_count = 2;
  out.region.type = MACH_MSG_OOL_DESCRIPTOR;
  out.region.address = (void*)region;
  out.region.size = (mach_msg_size_t)size;
  out.region.deallocate = TRUE;
  out.region.copy = MACH_MSG_VIRTUAL_COPY;
  out.small.type = MACH_MSG_OOL_VOLATILE_DESCRIPTOR;
  out.small.address = small;
  out.small.size = sizeof small;
  out.small.copy = MACH_MSG_VIRTUAL_COPY;
  out.tail = 0x7a11;
  CHECK_KR(mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  /* deallocate=TRUE: the sender's pages are gone once the send succeeded. */
  CHECK(!mapped(bytes));
  memset(small, 'x', sizeof small); /* copied at send time: not seen */

  ool_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 5000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_id, 77);
  CHECK_EQ(in.msg.base.body.msgh_descriptor_count, 2);
  CHECK_EQ(in.msg.region.type, MACH_MSG_OOL_DESCRIPTOR);
  CHECK_EQ(in.msg.region.size, size);
  const unsigned char* got = (const unsigned char*)in.msg.region.address;
  CHECK(got != NULL);
  for (vm_size_t i = 0; i < size; ++i) {
    if (got[i] != (unsigned char)(i * 13 + 1)) FAIL_AT("byte %lu is %u", (unsigned long)i, got[i]);
  }
  CHECK_EQ(in.msg.small.type, MACH_MSG_OOL_VOLATILE_DESCRIPTOR);
  CHECK_EQ(in.msg.small.size, sizeof small);
  CHECK(memcmp(in.msg.small.address, "volatile!", sizeof small) == 0);
  CHECK_EQ(in.msg.tail, 0x7a11);
  CHECK_OK(
      vm_deallocate(mach_task_self(), (vm_address_t)in.msg.region.address, in.msg.region.size));
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)in.msg.small.address, in.msg.small.size));
  CHECK(!mapped(got));

  /* A region without an address is invalid memory; nothing is sent. */
  out.region.address = NULL;
  out.region.deallocate = FALSE;
  CHECK_KR(mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_SEND_INVALID_MEMORY);
  mach_port_status_t status;
  mach_msg_type_number_t count = MACH_PORT_RECEIVE_STATUS_COUNT;
  CHECK_OK(mach_port_get_attributes(mach_task_self(), port, MACH_PORT_RECEIVE_STATUS,
                                    (mach_port_info_t)&status, &count));
  CHECK_EQ(status.mps_msgcount, 0);
  return test_pass("ool_send");
}
