/*
 * Error codes and their text: mach_msg's argument checks, the bootstrap
 * server's codes, mach_error_string and bootstrap_strerror.
 */
#include "mach_test.h"

int main(void) {
  const mach_port_t self = mach_task_self();
  mach_port_t port = make_port_with_send();
  simple_msg_t m;

  /* Sizes: at least a header, whole words. */
  memset(&m, 0, sizeof m);
  m.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  m.header.msgh_remote_port = port;
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, 20, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_MSG_TOO_SMALL);
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, 26, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_MSG_TOO_SMALL);
  /* Header rights. */
  m.header.msgh_remote_port = MACH_PORT_NULL;
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_DEST);
  m.header.msgh_remote_port = port;
  m.header.msgh_bits = MACH_MSGH_BITS(0, 0);
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_HEADER);
  m.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_COPY_SEND);
  m.header.msgh_local_port = 0x5555503;
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_REPLY);
  m.header.msgh_local_port = MACH_PORT_NULL;
  /* The bootstrap and task ports are no rights to send to. */
  m.header.msgh_remote_port = bootstrap_port;
  m.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_DEST);
  m.header.msgh_remote_port = port;
  /* XNU's send-possible notification is not there; vouchers neither. */
  CHECK_KR(
      mach_msg(&m.header, MACH_SEND_MSG | MACH_SEND_NOTIFY, sizeof m, 0, MACH_PORT_NULL, 0, port),
      MACH_SEND_INVALID_OPTIONS);
  m.header.msgh_bits = MACH_MSGH_BITS_SET(MACH_MSG_TYPE_COPY_SEND, 0, MACH_MSG_TYPE_COPY_SEND, 0);
  m.header.msgh_voucher_port = port;
  CHECK_KR(mach_msg(&m.header, MACH_SEND_MSG, sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
           MACH_SEND_INVALID_VOUCHER);
  m.header.msgh_voucher_port = MACH_PORT_NULL;
  /* Hints XNU takes are accepted. */
  m.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  CHECK_KR(
      mach_msg(&m.header,
               MACH_SEND_MSG | MACH_SEND_NOIMPORTANCE | MACH_SEND_OVERRIDE | MACH_SEND_INTERRUPT,
               sizeof m, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);

  /* Receive checks. */
  simple_rcv_t in;
  CHECK_KR(receive_simple(MACH_PORT_NULL, &in, 0), MACH_RCV_INVALID_NAME);
  CHECK_KR(receive_simple(0x6666603, &in, 0), MACH_RCV_INVALID_NAME);
  CHECK_KR(mach_msg(&in.msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_TYPE(1), 0,
                    sizeof in, port, 0, MACH_PORT_NULL),
           MACH_RCV_INVALID_TRAILER);
  /* Every trailer size, with the fields XNU puts in each. */
  for (int elements = 0; elements <= 8; ++elements) {
    CHECK_KR(send_simple(port, MACH_MSG_TYPE_COPY_SEND, 1, 1, 0, 0, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    memset(&in, 0xff, sizeof in);
    const mach_msg_option_t option =
        MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_ELEMENTS(elements);
    CHECK_KR(mach_msg(&in.msg.header, option, 0, sizeof in, port, 0, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(in.trailer.msgh_trailer_type, MACH_MSG_TRAILER_FORMAT_0);
    CHECK_EQ(in.trailer.msgh_trailer_size, REQUESTED_TRAILER_SIZE(option));
    if (elements >= MACH_RCV_TRAILER_SENDER) CHECK_EQ(in.trailer.msgh_sender.val[0], geteuid());
    if (elements >= MACH_RCV_TRAILER_AUDIT) CHECK_EQ(in.trailer.msgh_audit.val[5], getpid());
    if (elements >= MACH_RCV_TRAILER_CTX) CHECK_EQ(in.trailer.msgh_context, 0);
    /* Nothing is written past the trailer asked for. */
    const unsigned char* after = (const unsigned char*)&in.trailer + in.trailer.msgh_trailer_size;
    if (in.trailer.msgh_trailer_size < sizeof in.trailer) CHECK_EQ(*after, 0xff);
  }
  CHECK_EQ(REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT)), 52);

  /* The bootstrap server. */
  name_t name;
  unique_name(name, "errors");
  mach_port_t a = MACH_PORT_NULL, b = MACH_PORT_NULL;
  CHECK_KR(bootstrap_look_up(bootstrap_port, name, &a), BOOTSTRAP_UNKNOWN_SERVICE);
  CHECK_OK(bootstrap_check_in(bootstrap_port, name, &a));
  CHECK_KR(bootstrap_check_in(bootstrap_port, name, &b), BOOTSTRAP_SERVICE_ACTIVE);
  CHECK_KR(bootstrap_register(bootstrap_port, name, port), BOOTSTRAP_NAME_IN_USE);
  bootstrap_status_t active = 0;
  CHECK_OK(bootstrap_status(bootstrap_port, name, &active));
  CHECK_EQ(active, BOOTSTRAP_STATUS_ACTIVE);
  name_t other;
  unique_name(other, "errors");
  CHECK_OK(bootstrap_register(bootstrap_port, other, port));
  CHECK_OK(bootstrap_look_up(bootstrap_port, other, &b));
  CHECK_EQ(b, port);
  CHECK_OK(bootstrap_register(bootstrap_port, other, MACH_PORT_NULL)); /* unbinds */
  CHECK_KR(bootstrap_look_up(bootstrap_port, other, &b), BOOTSTRAP_UNKNOWN_SERVICE);
  char long_name[200];
  memset(long_name, 'x', sizeof long_name);
  long_name[sizeof long_name - 1] = 0;
  CHECK_KR(bootstrap_look_up(bootstrap_port, long_name, &b), KERN_INVALID_ARGUMENT);
  CHECK_KR(bootstrap_look_up(MACH_PORT_NULL, name, &b), MACH_SEND_INVALID_DEST);
  CHECK_KR(bootstrap_look_up(port, name, &b), MACH_SEND_INVALID_DEST);

  /* Text. */
  CHECK(strcmp(mach_error_string(KERN_SUCCESS), "(os/kern) successful") == 0);
  CHECK(strcmp(mach_error_string(KERN_INVALID_NAME), "(os/kern) invalid name") == 0);
  CHECK(strcmp(mach_error_string(MACH_SEND_INVALID_DEST), "(ipc/send) invalid destination port") ==
        0);
  CHECK(strcmp(mach_error_string(MACH_RCV_TIMED_OUT), "(ipc/rcv) timed out") == 0);
  CHECK(strcmp(mach_error_string(KERN_MEMORY_FAILURE), "(os/kern) memory failure") == 0);
  CHECK(strcmp(mach_error_string(MACH_RCV_BODY_ERROR | MACH_MSG_VM_SPACE),
               "(ipc/rcv) body error") == 0);
  CHECK(strstr(mach_error_string(PORTD_SEND_WILL_NOTIFY), "cached") != NULL);
  CHECK(strcmp(mach_error_string(0x0badf00d), "(portd) unknown error code") == 0);
  CHECK(strcmp(mach_error_type(MACH_SEND_TIMED_OUT), "(ipc/send)") == 0);
  CHECK(strcmp(mach_error_type(KERN_INVALID_ARGUMENT), "(os/kern)") == 0);
  CHECK(strcmp(bootstrap_strerror(BOOTSTRAP_UNKNOWN_SERVICE), "Unknown service name") == 0);
  CHECK(strcmp(bootstrap_strerror(BOOTSTRAP_SERVICE_ACTIVE), "Service name already exists") == 0);
  CHECK(strcmp(bootstrap_strerror(KERN_INVALID_NAME), "(os/kern) invalid name") == 0);
  (void)self;
  return test_pass("errors");
}
