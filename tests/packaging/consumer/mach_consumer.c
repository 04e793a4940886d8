/* A C program outside the portd tree, built against an installed portd with
 * the Mach-compatible API: <mach/mach.h> and <servers/bootstrap.h>. It checks
 * a service in, looks it up, sends itself a message with mach_msg and prints
 * what arrived.
 *
 *   mach_consumer LABEL    prints "LABEL: hello from LABEL (message 42)"
 */
#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  mach_msg_header_t header;
  char text[64];
} message_t;

typedef struct {
  message_t message;
  mach_msg_trailer_t trailer;
} received_t;

int main(int argc, char** argv) {
  const char* label = argc > 1 ? argv[1] : "mach";
  name_t service;
  snprintf(service, sizeof service, "portd.packaging.%s", label);

  mach_port_t port = MACH_PORT_NULL, right = MACH_PORT_NULL;
  kern_return_t kr = bootstrap_check_in(bootstrap_port, service, &port);
  if (kr != KERN_SUCCESS) {
    fprintf(stderr, "%s: bootstrap_check_in: %d\n", label, kr);
    return 1;
  }
  kr = bootstrap_look_up(bootstrap_port, service, &right);
  if (kr != KERN_SUCCESS) {
    fprintf(stderr, "%s: bootstrap_look_up: %d\n", label, kr);
    return 1;
  }

  message_t out;
  memset(&out, 0, sizeof out);
  out.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  out.header.msgh_size = sizeof out;
  out.header.msgh_remote_port = right;
  out.header.msgh_id = 42;
  snprintf(out.text, sizeof out.text, "hello from %s", label);
  mach_msg_return_t mr = mach_msg(&out.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                                  MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL);
  if (mr != MACH_MSG_SUCCESS) {
    fprintf(stderr, "%s: mach_msg send: %#x\n", label, mr);
    return 1;
  }

  received_t in;
  memset(&in, 0, sizeof in);
  mr = mach_msg(&in.message.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 5000,
                MACH_PORT_NULL);
  if (mr != MACH_MSG_SUCCESS) {
    fprintf(stderr, "%s: mach_msg receive: %#x\n", label, mr);
    return 1;
  }
  printf("%s: %s (message %d)\n", label, in.message.text, in.message.header.msgh_id);
  return in.message.header.msgh_id == 42 ? 0 : 1;
}
