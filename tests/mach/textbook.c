/*
 * The textbook example: a server makes a port and publishes it with the
 * bootstrap server; a client (another process) looks it up, builds a header
 * by hand and sends; the server receives it, with the trailer naming the
 * client. Then the classic request/reply: the client sends a reply port
 * (MAKE_SEND_ONCE) and the server answers through it (MOVE_SEND_ONCE).
 */
#include "mach_test.h"

typedef struct {
  mach_msg_header_t header;
  char text[64];
  int number;
} message_t;

typedef struct {
  message_t msg;
  mach_msg_audit_trailer_t trailer;
} received_t;

static name_t service;

static int client(void* arg) {
  (void)arg;
  mach_port_t server = MACH_PORT_NULL;
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &server));

  /* One-way message. */
  message_t msg;
  memset(&msg, 0, sizeof msg);
  msg.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0);
  msg.header.msgh_size = sizeof msg;
  msg.header.msgh_remote_port = server;
  msg.header.msgh_local_port = MACH_PORT_NULL;
  msg.header.msgh_id = 4711;
  strcpy(msg.text, "Hello, Mach!");
  msg.number = 42;
  CHECK_KR(mach_msg(&msg.header, MACH_SEND_MSG, sizeof msg, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);

  /* Request and reply. */
  mach_port_t reply_port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &reply_port));
  memset(&msg, 0, sizeof msg);
  msg.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE);
  msg.header.msgh_size = sizeof msg;
  msg.header.msgh_remote_port = server;
  msg.header.msgh_local_port = reply_port;
  msg.header.msgh_id = 100;
  strcpy(msg.text, "ping");
  msg.number = 7;
  CHECK_KR(mach_msg(&msg.header, MACH_SEND_MSG, sizeof msg, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);

  received_t reply;
  memset(&reply, 0, sizeof reply);
  CHECK_KR(mach_msg(&reply.msg.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof reply, reply_port,
                    10000, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(reply.msg.header.msgh_id, 200);
  CHECK_EQ(reply.msg.header.msgh_size, sizeof(message_t));
  CHECK_EQ(reply.msg.header.msgh_local_port, reply_port);
  CHECK_EQ(reply.msg.header.msgh_remote_port, MACH_PORT_NULL);
  CHECK_EQ(reply.msg.header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND_ONCE));
  CHECK(strcmp(reply.msg.text, "pong") == 0);
  CHECK_EQ(reply.msg.number, 14);
  /* The send-once right was used up by the reply: only the reply port,
   * and the server's send right, remain. */
  mach_port_type_t type = 0;
  CHECK_OK(mach_port_type(mach_task_self(), reply_port, &type));
  CHECK_EQ(type, MACH_PORT_TYPE_RECEIVE);
  CHECK_EQ(name_count(), 2);
  return 0;
}

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));
  CHECK_OK(mach_port_insert_right(mach_task_self(), port, port, MACH_MSG_TYPE_MAKE_SEND));
  unique_name(service, "textbook");
  CHECK_OK(bootstrap_register(bootstrap_port, service, port));

  pid_t pid = spawn_child(client, NULL);

  received_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(
      mach_msg(&in.msg.header,
               MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_TYPE(MACH_MSG_TRAILER_FORMAT_0) |
                   MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT),
               0, sizeof in, port, 10000, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 4711);
  CHECK_EQ(in.msg.header.msgh_size, sizeof(message_t));
  CHECK_EQ(in.msg.header.msgh_bits, MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND));
  CHECK_EQ(in.msg.header.msgh_remote_port, MACH_PORT_NULL);
  CHECK_EQ(in.msg.header.msgh_local_port, port);
  CHECK_EQ(in.msg.header.msgh_voucher_port, MACH_PORT_NULL);
  CHECK(strcmp(in.msg.text, "Hello, Mach!") == 0);
  CHECK_EQ(in.msg.number, 42);
  CHECK_EQ(in.trailer.msgh_trailer_type, MACH_MSG_TRAILER_FORMAT_0);
  CHECK_EQ(in.trailer.msgh_trailer_size, sizeof(mach_msg_audit_trailer_t));
  CHECK_EQ(in.trailer.msgh_seqno, 0);
  CHECK_EQ(in.trailer.msgh_sender.val[0], geteuid());
  CHECK_EQ(in.trailer.msgh_sender.val[1], getegid());
  CHECK_EQ(in.trailer.msgh_audit.val[1], geteuid());
  CHECK_EQ(in.trailer.msgh_audit.val[2], getegid());
  CHECK_EQ(in.trailer.msgh_audit.val[5], pid);

  /* The request carries a send-once reply right. */
  memset(&in, 0, sizeof in);
  CHECK_KR(
      mach_msg(&in.msg.header,
               MACH_RCV_MSG | MACH_RCV_TIMEOUT | MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_SEQNO),
               0, sizeof in, port, 10000, MACH_PORT_NULL),
      MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.header.msgh_id, 100);
  CHECK_EQ(in.msg.header.msgh_bits,
           MACH_MSGH_BITS(MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_MSG_TYPE_PORT_SEND));
  CHECK(MACH_PORT_VALID(in.msg.header.msgh_remote_port));
  CHECK_EQ(in.trailer.msgh_trailer_size, sizeof(mach_msg_seqno_trailer_t));
  CHECK_EQ(in.trailer.msgh_seqno, 1);
  CHECK(strcmp(in.msg.text, "ping") == 0);

  message_t reply;
  memset(&reply, 0, sizeof reply);
  reply.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0);
  reply.header.msgh_size = sizeof reply;
  reply.header.msgh_remote_port = in.msg.header.msgh_remote_port;
  reply.header.msgh_id = in.msg.header.msgh_id + 100;
  strcpy(reply.text, "pong");
  reply.number = in.msg.number * 2;
  CHECK_KR(mach_msg(&reply.header, MACH_SEND_MSG, sizeof reply, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);

  CHECK_EQ(wait_child(pid), 0);
  return test_pass("textbook");
}
