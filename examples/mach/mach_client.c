/*
 * mach_client: looks "portd.example.mach" up and sends the text of its
 * argument; the request and its reply are one mach_msg call (send and
 * receive), with a reply port the client made. `--quit` stops the server.
 */
#include <mach/mach.h>
#include <servers/bootstrap.h>
#include <stdio.h>
#include <string.h>

#include "example.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TEXT | --quit\n", argv[0]);
    return 2;
  }
  mach_port_t server = MACH_PORT_NULL;
  kern_return_t kr = bootstrap_look_up(bootstrap_port, EXAMPLE_SERVICE, &server);
  if (kr != BOOTSTRAP_SUCCESS) {
    fprintf(stderr, "bootstrap_look_up: %s\n", bootstrap_strerror(kr));
    return 1;
  }

  example_request_rcv_t buffer;
  memset(&buffer, 0, sizeof buffer);
  buffer.msg.header.msgh_size = sizeof buffer.msg;
  buffer.msg.header.msgh_remote_port = server;
  if (strcmp(argv[1], "--quit") == 0) {
    buffer.msg.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
    buffer.msg.header.msgh_id = EXAMPLE_QUIT;
    kr = mach_msg(&buffer.msg.header, MACH_SEND_MSG, sizeof buffer.msg, 0, MACH_PORT_NULL,
                  MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL);
    if (kr != MACH_MSG_SUCCESS) mach_error("mach_msg:", kr);
    return kr == MACH_MSG_SUCCESS ? 0 : 1;
  }

  mach_port_t reply_port = mach_reply_port();
  buffer.msg.header.msgh_bits =
      MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE);
  buffer.msg.header.msgh_local_port = reply_port;
  buffer.msg.header.msgh_id = EXAMPLE_REQUEST;
  strncpy(buffer.msg.text, argv[1], sizeof buffer.msg.text - 1);
  kr = mach_msg(&buffer.msg.header, MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT,
                sizeof buffer.msg, sizeof buffer, reply_port, 10000, MACH_PORT_NULL);
  if (kr != MACH_MSG_SUCCESS) {
    mach_error("mach_msg:", kr);
    return 1;
  }
  printf("%s\n", buffer.msg.text);
  mach_port_mod_refs(mach_task_self(), reply_port, MACH_PORT_RIGHT_RECEIVE, -1);
  mach_port_deallocate(mach_task_self(), server);
  return 0;
}
