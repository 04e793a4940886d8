/*
 * mach/notify.h — notification message ids and layouts, as XNU has them.
 *
 * Request notifications with mach_port_request_notification() (port-destroyed,
 * no-senders, dead-name); port-deleted and send-once notifications come
 * unasked. Each message arrives from the daemon with msgh_id set to the id
 * below, msgh_local_port the notify port (a send-once right was used), and the
 * layout of the matching struct: header, NDR record, then the one field
 * (msgh_size 36), except send-once (the header alone, msgh_size 24) and
 * port-destroyed (a complex message carrying the receive right).
 *
 * portd extension: PORTD_NOTIFY_MSG_ACCEPTED. A message sent with
 * PORTD_SEND_NOTIFY (<mach/message.h>) and cached because its destination's
 * queue was full produces this notification when it enters the queue;
 * not_port is the sender's name for the destination. GNU Mach calls it
 * MACH_NOTIFY_MSG_ACCEPTED with id 66, which XNU uses for
 * MACH_NOTIFY_SEND_POSSIBLE, so portd gives it MACH_NOTIFY_FIRST + 011 (73),
 * an id XNU leaves unused. (The daemon sends GNU's 66; the library turns it
 * into 73 for every message whose sender is the daemon itself.)
 */
#ifndef _MACH_NOTIFY_H_
#define _MACH_NOTIFY_H_

#include <mach/message.h>
#include <mach/ndr.h>
#include <mach/port.h>
#include <mach/portd_config.h>

#define MACH_NOTIFY_FIRST 0100
#define MACH_NOTIFY_PORT_DELETED (MACH_NOTIFY_FIRST + 001)
#define MACH_NOTIFY_SEND_POSSIBLE (MACH_NOTIFY_FIRST + 002)
#define MACH_NOTIFY_PORT_DESTROYED (MACH_NOTIFY_FIRST + 005)
#define MACH_NOTIFY_NO_SENDERS (MACH_NOTIFY_FIRST + 006)
#define MACH_NOTIFY_SEND_ONCE (MACH_NOTIFY_FIRST + 007)
#define MACH_NOTIFY_DEAD_NAME (MACH_NOTIFY_FIRST + 010)
#define MACH_NOTIFY_LAST (MACH_NOTIFY_FIRST + 015)

/* portd extension (see above). */
#define PORTD_NOTIFY_MSG_ACCEPTED (MACH_NOTIFY_FIRST + 011)

typedef mach_port_t notify_port_t;

#pragma pack(push, 4)

typedef struct {
  mach_msg_header_t not_header;
  NDR_record_t NDR;
  mach_port_name_t not_port;
  mach_msg_format_0_trailer_t trailer;
} mach_port_deleted_notification_t;

typedef struct {
  mach_msg_header_t not_header;
  NDR_record_t NDR;
  mach_port_name_t not_port;
  mach_msg_format_0_trailer_t trailer;
} mach_send_possible_notification_t;

typedef struct {
  mach_msg_header_t not_header;
  mach_msg_body_t not_body;
  mach_msg_port_descriptor_t not_port;
  mach_msg_format_0_trailer_t trailer;
} mach_port_destroyed_notification_t;

typedef struct {
  mach_msg_header_t not_header;
  NDR_record_t NDR;
  mach_msg_type_number_t not_count;
  mach_msg_format_0_trailer_t trailer;
} mach_no_senders_notification_t;

typedef struct {
  mach_msg_header_t not_header;
  mach_msg_format_0_trailer_t trailer;
} mach_send_once_notification_t;

typedef struct {
  mach_msg_header_t not_header;
  NDR_record_t NDR;
  mach_port_name_t not_port;
  mach_msg_format_0_trailer_t trailer;
} mach_dead_name_notification_t;

/* portd extension: PORTD_NOTIFY_MSG_ACCEPTED. */
typedef struct {
  mach_msg_header_t not_header;
  NDR_record_t NDR;
  mach_port_name_t not_port;
  mach_msg_format_0_trailer_t trailer;
} portd_msg_accepted_notification_t;

#pragma pack(pop)

PORTD_MACH_STATIC_ASSERT(sizeof(mach_dead_name_notification_t) == 56,
                         "dead-name notification: 36 bytes and a 20-byte trailer");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_dead_name_notification_t, not_port) == 32,
                         "not_port after the header and the NDR record");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_no_senders_notification_t) == 56,
                         "no-senders notification: 36 bytes and a trailer");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_send_once_notification_t) == 44,
                         "send-once notification: the header and a trailer");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_destroyed_notification_t) == 60,
                         "port-destroyed notification: 40 bytes and a trailer");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_port_destroyed_notification_t, not_port) == 28,
                         "the receive right's descriptor after the body count");

#endif /* _MACH_NOTIFY_H_ */
