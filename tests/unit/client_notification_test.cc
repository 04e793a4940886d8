// parse_notification() on messages built by hand: every layout the daemon
// sends is read exactly, and anything else (a task as sender, a reply port,
// a body of the wrong size or without the NDR record, a wrong descriptor) is
// not a notification and leaves the message untouched. The end-to-end
// behaviour is in tests/integration/client_notify_api_test.cc.
#include <gtest/gtest.h>

#include <cstring>

#include "portd/notification.h"

namespace portd {
namespace {

std::vector<std::byte> ndr() {
  return {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
          std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}};
}

std::vector<std::byte> ndr_and(uint32_t field) {
  auto b = ndr();
  b.resize(12);
  std::memcpy(b.data() + 8, &field, 4);
  return b;
}

ReceivedMessage from_daemon(Notification id, std::vector<std::byte> body) {
  ReceivedMessage m;
  m.id = static_cast<int32_t>(id);
  m.local = 0x1203;
  m.local_type = RightType::kSendOnce;
  m.body = std::move(body);
  return m;
}

TEST(ClientNotification, ReadsEveryKindTheDaemonSends) {
  for (auto kind :
       {Notification::kPortDeleted, Notification::kMsgAccepted, Notification::kDeadName}) {
    auto m = from_daemon(kind, ndr_and(0x4507));
    auto n = parse_notification(nullptr, m);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(n->kind, kind);
    EXPECT_EQ(n->name, 0x4507u);
    EXPECT_EQ(n->mscount, 0u);
    EXPECT_EQ(n->port, 0x1203u);
  }
  auto ns = from_daemon(Notification::kNoSenders, ndr_and(9));
  auto n = parse_notification(nullptr, ns);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->mscount, 9u);
  EXPECT_EQ(n->name, kNameNull);

  auto so = from_daemon(Notification::kSendOnce, ndr());
  n = parse_notification(nullptr, so);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, Notification::kSendOnce);

  auto pd = from_daemon(Notification::kPortDestroyed, {});
  pd.descriptors.emplace_back(ReceivedPort{0x2201, RightType::kReceive});
  n = parse_notification(nullptr, pd);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, Notification::kPortDestroyed);
  EXPECT_EQ(n->name, 0x2201u);
  EXPECT_EQ(n->receive_right.name(), 0x2201u);
  EXPECT_EQ(std::get<ReceivedPort>(pd.descriptors[0]).name, kNameNull);
  n->receive_right.release();

  // A port-destroyed whose right could not be named: the kind, no right.
  auto unnamed = from_daemon(Notification::kPortDestroyed, {});
  unnamed.descriptors.emplace_back(ReceivedPort{kNameNull, RightType::kReceive});
  n = parse_notification(nullptr, unnamed);
  ASSERT_TRUE(n.has_value());
  EXPECT_FALSE(static_cast<bool>(n->receive_right));
}

TEST(ClientNotification, AnythingElseIsNotANotificationAndStaysAsItWas) {
  std::vector<ReceivedMessage> others;
  auto forged = from_daemon(Notification::kDeadName, ndr_and(5));
  forged.trailer.sender_task = 7;  // a task sent it
  others.push_back(std::move(forged));
  auto with_reply = from_daemon(Notification::kDeadName, ndr_and(5));
  with_reply.remote = 0x301;
  others.push_back(std::move(with_reply));
  auto via_send_right = from_daemon(Notification::kDeadName, ndr_and(5));
  via_send_right.local_type = RightType::kSend;
  others.push_back(std::move(via_send_right));
  others.push_back(from_daemon(static_cast<Notification>(64), ndr_and(5)));  // not a kind
  others.push_back(from_daemon(Notification::kNoSenders, ndr()));            // too short
  auto long_body = ndr_and(5);
  long_body.push_back(std::byte{0});
  others.push_back(from_daemon(Notification::kDeadName, long_body));
  auto no_ndr = ndr_and(5);
  no_ndr[4] = std::byte{2};
  others.push_back(from_daemon(Notification::kPortDeleted, no_ndr));
  others.push_back(from_daemon(Notification::kSendOnce, ndr_and(0)));  // send-once has no field
  auto pd_send = from_daemon(Notification::kPortDestroyed, {});
  pd_send.descriptors.emplace_back(ReceivedPort{0x2201, RightType::kSend});
  others.push_back(std::move(pd_send));
  others.push_back(from_daemon(Notification::kPortDestroyed, {}));  // no right at all
  auto extra = from_daemon(Notification::kNoSenders, ndr_and(1));
  extra.descriptors.emplace_back(ReceivedPort{0x2201, RightType::kSend});
  others.push_back(std::move(extra));

  for (size_t i = 0; i < others.size(); ++i) {
    ReceivedMessage& m = others[i];
    const auto body = m.body;
    const size_t descriptors = m.descriptors.size();
    EXPECT_FALSE(parse_notification(nullptr, m).has_value()) << "case " << i;
    EXPECT_EQ(m.body, body);
    EXPECT_EQ(m.descriptors.size(), descriptors);
    if (!m.descriptors.empty()) {
      EXPECT_EQ(std::get<ReceivedPort>(m.descriptors[0]).name, 0x2201u);
    }
  }
}

TEST(ClientNotification, CacheOnFullOptions) {
  ReceiveRight notify = ReceiveRight::adopt(nullptr, 0x503);
  SendOptions o = cache_on_full(notify, std::chrono::milliseconds(250));
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(250));
  EXPECT_TRUE(o.cache);
  EXPECT_EQ(o.notify, 0x503u);
  EXPECT_EQ(o.notify_disposition, Disposition::kMakeSendOnce);
  EXPECT_EQ(cache_on_full(notify).timeout, std::chrono::milliseconds(0));
  notify.release();
}

}  // namespace
}  // namespace portd
