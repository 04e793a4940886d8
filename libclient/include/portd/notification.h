// Notifications as values: what the daemon's notification messages say
// (DESIGN 2.3), and the send options for cache-on-full.
//
// The daemon sends a notification as an ordinary message with Mach's id
// (Notification) through a send-once right the requester supplied, so it
// arrives on a port like any other message, mixed with ordinary traffic.
// parse_notification() tells the two apart and reads the payload:
//
//   id  kind              payload (after Mach's 8-byte NDR record)
//   65  port-deleted      the name the request was on (it is gone now)
//   66  message-accepted  the sender's name for the destination of its
//                         cached message
//   69  port-destroyed    (no NDR record) the receive right, as a port
//                         descriptor: it is the receiver's now
//   70  no-senders        the port's make-send count
//   71  send-once         nothing: a send-once right was destroyed unused
//   72  dead-name         the name that became a dead name, which carries
//                         one extra user reference for the notification
//
// Only the daemon can send one: a message with a notification id from a task
// (trailer.sender_task != 0) is not a notification and is left alone.
//
// Requesting notifications with handles: ReceiveRight::request_no_senders,
// request_port_destroyed, and SendRight/SendOnceRight::request_dead_name
// (portd/rights.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "portd/export.h"
#include "portd/message.h"
#include "portd/rights.h"
#include "portd/types.h"

namespace portd {

class Task;

// A notification, parsed. It owns the rights the notification carried: the
// receive right of a port-destroyed notification and the extra user
// reference of a dead-name notification's dead name, released with it
// unless taken (std::move, release()).
struct ReceivedNotification {
  Notification kind = Notification::kSendOnce;
  // dead-name and port-deleted: the receiver's name the request was on.
  // message-accepted: the sender's name for the destination of its cached
  // message. port-destroyed: the receive right's name (receive_right owns
  // it). Otherwise kNameNull.
  Name name = kNameNull;
  // no-senders: the make-send count when the last send right went.
  uint32_t mscount = 0;
  // port-destroyed: the receive right (empty if the receiver could not
  // name it: the message then arrived with MACH_RCV_BODY_ERROR and the port
  // died).
  ReceiveRight receive_right;
  // dead-name: the user reference the notification added to the dead name
  // `name` (Mach leaves it to the receiver to deallocate it; this handle
  // does so when it goes).
  SendRight dead_name;
  // The receiver's name of the port the notification arrived on.
  Name port = kNameNull;
};

// Reads `message` as a notification from the daemon. Returns nullopt, and
// leaves `message` untouched, if it is not one: its id is not a notification
// id, a task sent it, or it does not have the notification's layout. On
// success the rights the notification carries are adopted for `task` (the
// task that received it) and `message`'s port descriptor, if any, is
// cleared, so nothing is owned twice.
PORTD_API std::optional<ReceivedNotification> parse_notification(const std::shared_ptr<Task>& task,
                                                                 ReceivedMessage& message);

// Send options for cache-on-full (DESIGN 2.1): when the destination's queue
// is full, wait up to `wait_first` (0: not at all), then let the daemon keep
// the message: send() answers PORTD_SEND_WILL_NOTIFY (Status::kSendWillNotify)
// and a message-accepted notification arrives on `notify` when the message
// enters the queue. If the destination dies first, a send-once notification
// arrives there instead. One cached message per sending thread may be
// pending; another fails with PORTD_SEND_NOTIFY_IN_PROGRESS.
PORTD_API SendOptions cache_on_full(const ReceiveRight& notify,
                                    std::chrono::milliseconds wait_first = {});

}  // namespace portd
