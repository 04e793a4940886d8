/*
 * Send and receive in one mach_msg call (the RPC shape): the client sends a
 * request carrying a MAKE_SEND_ONCE reply right and receives the reply in
 * the same call, into the same buffer or (mach_msg_overwrite) another. A send
 * that fails returns its error and receives nothing. Then mach_msg_send and
 * mach_msg_receive, the one-way wrappers.
 */
#include "mach_test.h"

typedef struct {
  mach_msg_header_t header;
  int value;
} request_t;

typedef struct {
  request_t msg;
  mach_msg_trailer_t trailer;
} request_rcv_t;

static name_t service;
static const int kCalls = 200;

static int server(void* arg) {
  int* ready = (int*)arg;
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &port));
  close(ready[1]);
  for (int i = 0; i < kCalls + 1; ++i) {
    request_rcv_t in;
    memset(&in, 0, sizeof in);
    CHECK_KR(mach_msg(&in.msg.header, MACH_RCV_MSG, 0, sizeof in, port, 0, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(MACH_MSGH_BITS_REMOTE(in.msg.header.msgh_bits), MACH_MSG_TYPE_PORT_SEND_ONCE);
    request_t reply;
    memset(&reply, 0, sizeof reply);
    reply.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0);
    reply.header.msgh_size = sizeof reply;
    reply.header.msgh_remote_port = in.msg.header.msgh_remote_port;
    reply.header.msgh_id = in.msg.header.msgh_id + 100;
    reply.value = in.msg.value * 2;
    CHECK_KR(
        mach_msg(&reply.header, MACH_SEND_MSG, sizeof reply, 0, MACH_PORT_NULL, 0, MACH_PORT_NULL),
        MACH_MSG_SUCCESS);
  }
  return 0;
}

int main(void) {
  const mach_port_t self = mach_task_self();
  unique_name(service, "rpc");
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t pid = spawn_child(server, ready);
  close(ready[1]);
  char byte;
  CHECK(read(ready[0], &byte, 1) == 0); /* the server has checked in */
  mach_port_t server_port = MACH_PORT_NULL;
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &server_port));
  mach_port_t reply_port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(self, MACH_PORT_RIGHT_RECEIVE, &reply_port));
  const mach_msg_type_number_t names_before = name_count();

  for (int i = 0; i < kCalls; ++i) {
    request_rcv_t buffer;
    memset(&buffer, 0, sizeof buffer);
    buffer.msg.header.msgh_bits =
        MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    buffer.msg.header.msgh_size = sizeof buffer.msg;
    buffer.msg.header.msgh_remote_port = server_port;
    buffer.msg.header.msgh_local_port = reply_port;
    buffer.msg.header.msgh_id = 1000 + i;
    buffer.msg.value = i;
    CHECK_KR(mach_msg(&buffer.msg.header, MACH_SEND_MSG | MACH_RCV_MSG, sizeof buffer.msg,
                      sizeof buffer, reply_port, MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(buffer.msg.header.msgh_id, 1100 + i);
    CHECK_EQ(buffer.msg.value, 2 * i);
    CHECK_EQ(buffer.msg.header.msgh_local_port, reply_port);
    CHECK_EQ(buffer.msg.header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND_ONCE));
  }
  /* No send-once right was left behind. */
  CHECK_EQ(name_count(), names_before);

  /* mach_msg_overwrite: the reply lands in a separate buffer. */
  request_t request;
  memset(&request, 0, sizeof request);
  request.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE);
  request.header.msgh_size = sizeof request;
  request.header.msgh_remote_port = server_port;
  request.header.msgh_local_port = reply_port;
  request.header.msgh_id = 5;
  request.value = 21;
  request_rcv_t reply;
  memset(&reply, 0, sizeof reply);
  CHECK_KR(mach_msg_overwrite(&request.header, MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT,
                              sizeof request, sizeof reply, reply_port, 10000, MACH_PORT_NULL,
                              &reply.msg.header, 0),
           MACH_MSG_SUCCESS);
  CHECK_EQ(reply.msg.header.msgh_id, 105);
  CHECK_EQ(reply.msg.value, 42);
  CHECK_EQ(request.header.msgh_id, 5); /* the send buffer is left alone */
  CHECK_EQ(request.value, 21);

  /* A send that fails: its error, and no receive. */
  request.header.msgh_remote_port = 0x7777703;
  CHECK_KR(mach_msg(&request.header, MACH_SEND_MSG | MACH_RCV_MSG, sizeof request, sizeof reply,
                    reply_port, MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_SEND_INVALID_DEST);
  /* A receive half that fails after the send happened: the receive's error,
   * and the message was sent. */
  request.header.msgh_remote_port = reply_port;
  request.header.msgh_local_port = MACH_PORT_NULL;
  request.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, 0);
  CHECK_KR(mach_msg(&request.header, MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT,
                    sizeof request, sizeof reply, server_port, 0, MACH_PORT_NULL),
           MACH_RCV_INVALID_NAME);
  memset(&reply, 0, sizeof reply);
  CHECK_KR(mach_msg(&reply.msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof reply, reply_port,
                    0, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(reply.msg.header.msgh_id, 5);

  /* mach_msg_send and mach_msg_receive: msgh_size is the size sent, and for
     the receive the buffer's size, msgh_local_port the port received on. */
  memset(&request, 0, sizeof request);
  request.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, 0);
  request.header.msgh_size = sizeof request;
  request.header.msgh_remote_port = reply_port;
  request.header.msgh_id = 6;
  request.value = 66;
  CHECK_KR(mach_msg_send(&request.header), MACH_MSG_SUCCESS);
  memset(&reply, 0, sizeof reply);
  reply.msg.header.msgh_size = sizeof reply;
  reply.msg.header.msgh_local_port = reply_port;
  CHECK_KR(mach_msg_receive(&reply.msg.header), MACH_MSG_SUCCESS);
  CHECK_EQ(reply.msg.header.msgh_id, 6);
  CHECK_EQ(reply.msg.header.msgh_size, sizeof request);
  CHECK_EQ(reply.msg.value, 66);
  /* Too small a buffer: the message is destroyed, as mach_msg without
     MACH_RCV_LARGE does. */
  CHECK_KR(mach_msg_send(&request.header), MACH_MSG_SUCCESS);
  memset(&reply, 0, sizeof reply);
  reply.msg.header.msgh_size = sizeof(mach_msg_header_t);
  reply.msg.header.msgh_local_port = reply_port;
  CHECK_KR(mach_msg_receive(&reply.msg.header), MACH_RCV_TOO_LARGE);
  CHECK_KR(mach_msg(&reply.msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof reply, reply_port,
                    0, MACH_PORT_NULL),
           MACH_RCV_TIMED_OUT);
  CHECK_EQ(wait_child(pid), 0);
  return test_pass("send_receive");
}
