#include "portd/notification.h"

#include <cstring>

#include "portd/task.h"

namespace portd {

namespace {

// The NDR record MIG writes on a little-endian host, as the daemon sends it.
constexpr unsigned char kNdrRecord[8] = {0, 0, 0, 0, 1, 0, 0, 0};

bool starts_with_ndr(const ReceivedMessage& m) {
  return m.body.size() >= sizeof kNdrRecord &&
         std::memcmp(m.body.data(), kNdrRecord, sizeof kNdrRecord) == 0;
}

// The one 32-bit field after the NDR record, if the body is exactly that.
std::optional<uint32_t> field_of(const ReceivedMessage& m) {
  if (m.body.size() != sizeof kNdrRecord + 4 || !starts_with_ndr(m)) return std::nullopt;
  uint32_t v;
  std::memcpy(&v, m.body.data() + sizeof kNdrRecord, sizeof v);
  return v;
}

}  // namespace

std::optional<ReceivedNotification> parse_notification(const std::shared_ptr<Task>& task,
                                                       ReceivedMessage& message) {
  // Only the daemon sends notifications, always through a send-once right,
  // never with a reply port.
  if (message.trailer.sender_task != 0 || message.local_type != RightType::kSendOnce ||
      message.remote != kNameNull)
    return std::nullopt;
  ReceivedNotification n;
  n.port = message.local;
  switch (static_cast<Notification>(message.id)) {
    case Notification::kPortDeleted:
    case Notification::kMsgAccepted:
    case Notification::kDeadName:
    case Notification::kNoSenders: {
      const auto value = field_of(message);
      if (!value || !message.descriptors.empty()) return std::nullopt;
      n.kind = static_cast<Notification>(message.id);
      if (n.kind == Notification::kNoSenders) {
        n.mscount = *value;
      } else {
        n.name = *value;
      }
      if (n.kind == Notification::kDeadName && n.name != kNameNull && n.name != kNameDead)
        n.dead_name = SendRight::adopt(task, n.name);
      return n;
    }
    case Notification::kSendOnce:
      if (message.body.size() != sizeof kNdrRecord || !starts_with_ndr(message) ||
          !message.descriptors.empty())
        return std::nullopt;
      n.kind = Notification::kSendOnce;
      return n;
    case Notification::kPortDestroyed: {
      if (!message.body.empty() || message.descriptors.size() != 1) return std::nullopt;
      auto* port = std::get_if<ReceivedPort>(&message.descriptors[0]);
      if (port == nullptr || port->type != RightType::kReceive) return std::nullopt;
      n.kind = Notification::kPortDestroyed;
      if (port->name != kNameNull && port->name != kNameDead) {
        n.name = port->name;
        n.receive_right = ReceiveRight::adopt(task, port->name);
      }
      port->name = kNameNull;  // owned by the notification now
      return n;
    }
    default: return std::nullopt;
  }
}

SendOptions cache_on_full(const ReceiveRight& notify, std::chrono::milliseconds wait_first) {
  SendOptions o;
  o.timeout = wait_first;
  o.cache = true;
  o.notify = notify.name();
  o.notify_disposition = Disposition::kMakeSendOnce;
  return o;
}

}  // namespace portd
