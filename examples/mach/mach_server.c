/*
 * mach_server: a Mach server as it would be written for macOS.
 *
 * Checks in "portd.example.mach" with the bootstrap server and answers each
 * request with the text upper-cased, through the send-once reply right the
 * client sent with it. A request with id QUIT ends it.
 *
 *   $ ./mach_server &
 *   $ ./mach_client hello        # prints HELLO
 *   $ ./mach_client --quit
 */
#include <ctype.h>
#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <string.h>

#include "example.h"

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  kern_return_t kr = bootstrap_check_in(bootstrap_port, EXAMPLE_SERVICE, &port);
  if (kr != BOOTSTRAP_SUCCESS) {
    fprintf(stderr, "bootstrap_check_in: %s\n", bootstrap_strerror(kr));
    return 1;
  }
  printf("mach_server: serving %s\n", EXAMPLE_SERVICE);
  fflush(stdout);

  for (;;) {
    example_request_rcv_t in;
    memset(&in, 0, sizeof in);
    kr = mach_msg(&in.msg.header, MACH_RCV_MSG, 0, sizeof in, port, MACH_MSG_TIMEOUT_NONE,
                  MACH_PORT_NULL);
    if (kr != MACH_MSG_SUCCESS) {
      mach_error("mach_msg(receive):", kr);
      return 1;
    }
    if (in.msg.header.msgh_id == EXAMPLE_QUIT) break;

    example_message_t reply;
    memset(&reply, 0, sizeof reply);
    reply.header.msgh_bits = MACH_MSGH_BITS(MACH_MSGH_BITS_REMOTE(in.msg.header.msgh_bits), 0);
    reply.header.msgh_size = sizeof reply;
    reply.header.msgh_remote_port = in.msg.header.msgh_remote_port;
    reply.header.msgh_id = in.msg.header.msgh_id + 100;
    for (size_t i = 0; i < sizeof reply.text - 1 && in.msg.text[i] != 0; ++i) {
      reply.text[i] = (char)toupper((unsigned char)in.msg.text[i]);
    }
    kr = mach_msg(&reply.header, MACH_SEND_MSG | MACH_SEND_TIMEOUT, sizeof reply, 0, MACH_PORT_NULL,
                  1000, MACH_PORT_NULL);
    if (kr != MACH_MSG_SUCCESS) {
      mach_error("mach_msg(reply):", kr);
      mach_msg_destroy(&reply.header);
    }
  }
  printf("mach_server: done\n");
  return 0;
}
