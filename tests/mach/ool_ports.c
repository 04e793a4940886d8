/*
 * Out-of-line port arrays: a complex message with port descriptors and an
 * OOL-ports descriptor whose array (from vm_allocate) the send deallocates;
 * the receiver gets its own array, freeable with vm_deallocate, and rights
 * under its own names. mach_msg_destroy releases what a message holds.
 */
#include <sys/mman.h>

#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_port_descriptor_t single;
  mach_msg_ool_ports_descriptor_t array;
  int tail;
} ports_msg_t;

typedef struct {
  ports_msg_t msg;
  mach_msg_max_trailer_t trailer;
} ports_rcv_t;

static int mapped(const void* p) {
  return msync((void*)((uintptr_t)p & ~(uintptr_t)vm_page_mask), vm_page_size, MS_ASYNC) == 0;
}

int main(void) {
  const mach_port_t self = mach_task_self();
  mach_port_t port = make_port_with_send();
  mach_port_t carried[3];
  for (int i = 0; i < 3; ++i) carried[i] = make_port_with_send();

  vm_address_t array = 0;
  CHECK_OK(vm_allocate(self, &array, 3 * sizeof(mach_port_t), VM_FLAGS_ANYWHERE));
  memcpy((void*)array, carried, sizeof carried);

  ports_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = port;
  out.base.header.msgh_id = 9;
  out.base.body.msgh_descriptor_count = 2;
  out.single.name = carried[0];
  out.single.disposition = MACH_MSG_TYPE_MAKE_SEND_ONCE;
  out.single.type = MACH_MSG_PORT_DESCRIPTOR;
  out.array.address = (void*)array;
  out.array.count = 3;
  out.array.deallocate = TRUE;
  out.array.copy = MACH_MSG_VIRTUAL_COPY;
  out.array.disposition = MACH_MSG_TYPE_COPY_SEND;
  out.array.type = MACH_MSG_OOL_PORTS_DESCRIPTOR;
  out.tail = 0x5a5a;
  CHECK(mapped((void*)array));
  CHECK_KR(
      mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK(!mapped((void*)array)); /* deallocate=TRUE: the array is gone */

  ports_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 0,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_size, sizeof(ports_msg_t));
  CHECK(in.msg.base.header.msgh_bits & MACH_MSGH_BITS_COMPLEX);
  CHECK_EQ(in.msg.base.body.msgh_descriptor_count, 2);
  CHECK_EQ(in.msg.single.type, MACH_MSG_PORT_DESCRIPTOR);
  CHECK_EQ(in.msg.single.disposition, MACH_MSG_TYPE_PORT_SEND_ONCE);
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(self, in.msg.single.name, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_SEND_ONCE);
  CHECK_EQ(in.msg.array.type, MACH_MSG_OOL_PORTS_DESCRIPTOR);
  CHECK_EQ(in.msg.array.disposition, MACH_MSG_TYPE_PORT_SEND);
  CHECK_EQ(in.msg.array.count, 3);
  CHECK_EQ(in.msg.array.deallocate, TRUE);
  CHECK(in.msg.array.address != NULL);
  const mach_port_t* names = (const mach_port_t*)in.msg.array.address;
  for (int i = 0; i < 3; ++i) {
    /* Our own ports come back under the names we have for them. */
    CHECK_EQ(names[i], carried[i]);
    mach_port_urefs_t refs = 0;
    CHECK_OK(mach_port_get_refs(self, names[i], MACH_PORT_RIGHT_SEND, &refs));
    CHECK_EQ(refs, 2);
  }
  CHECK_EQ(in.msg.tail, 0x5a5a);

  /* mach_msg_destroy releases the rights and frees the array. */
  const void* received_array = in.msg.array.address;
  mach_msg_destroy(&in.msg.base.header);
  CHECK(!mapped(received_array));
  for (int i = 0; i < 3; ++i) {
    mach_port_urefs_t refs = 0;
    CHECK_OK(mach_port_get_refs(self, carried[i], MACH_PORT_RIGHT_SEND, &refs));
    CHECK_EQ(refs, 1);
  }
  /* The send-once right was destroyed: a send-once notification on its port. */
  simple_rcv_t note;
  CHECK_KR(receive_simple(carried[0], &note, 5000), MACH_MSG_SUCCESS);
  CHECK_EQ(note.msg.header.msgh_id, MACH_NOTIFY_SEND_ONCE);

  /* A failed send keeps the array (and every right). */
  CHECK_OK(vm_allocate(self, &array, 3 * sizeof(mach_port_t), VM_FLAGS_ANYWHERE));
  memcpy((void*)array, carried, sizeof carried);
  out.array.address = (void*)array;
  out.base.header.msgh_remote_port = 0x4444403;
  CHECK_KR(
      mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_SEND_INVALID_DEST);
  CHECK(mapped((void*)array));
  CHECK_OK(vm_deallocate(self, array, 3 * sizeof(mach_port_t)));

  /* A complex message with no descriptors: the data stays where it was. */
  struct {
    mach_msg_base_t base;
    int value;
  } empty;
  memset(&empty, 0, sizeof empty);
  empty.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  empty.base.header.msgh_remote_port = port;
  empty.base.header.msgh_size = sizeof empty;
  empty.value = 99;
  CHECK_KR(mach_msg(&empty.base.header, MACH_SEND_MSG, sizeof empty, 0, MACH_PORT_NULL, 0,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 0,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_size, sizeof empty);
  CHECK_EQ(in.msg.base.body.msgh_descriptor_count, 0);
  CHECK_EQ(((int*)&in.msg.base)[7], 99);

  /* Descriptors the library cannot send. */
  out.base.header.msgh_remote_port = port;
  out.array.address = NULL;
  out.array.count = 0;
  out.single.type = MACH_MSG_GUARDED_PORT_DESCRIPTOR;
  CHECK_KR(
      mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_SEND_INVALID_TYPE);
  out.single.type = MACH_MSG_PORT_DESCRIPTOR;
  out.base.body.msgh_descriptor_count = 50;
  CHECK_KR(
      mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_SEND_MSG_TOO_SMALL);
  return test_pass("ool_ports");
}
