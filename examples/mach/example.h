/* The message the example server and client exchange. */
#ifndef PORTD_EXAMPLE_H
#define PORTD_EXAMPLE_H

#include <mach/mach.h>

#define EXAMPLE_SERVICE "portd.example.mach"
#define EXAMPLE_REQUEST 1000
#define EXAMPLE_QUIT 1999

typedef struct {
  mach_msg_header_t header;
  char text[128];
} example_message_t;

typedef struct {
  example_message_t msg;
  mach_msg_trailer_t trailer;
} example_request_rcv_t;

#endif
