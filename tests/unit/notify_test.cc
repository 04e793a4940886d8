// Notifications: dead-name, port-deleted, no-senders, send-once,
// port-destroyed and message-accepted, with their ids and payloads.
#include <cstring>

#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using NotifyTest = CoreTest;

// The field after the 8-byte NDR record.
uint32_t field(const MessageOut& m) {
  EXPECT_EQ(m.body.size(), 12u);
  uint32_t v = 0;
  if (m.body.size() >= 12) std::memcpy(&v, m.body.data() + 8, 4);
  return v;
}

TEST_F(NotifyTest, DeadNameFiresWhenThePortDiesAndAddsAUref) {
  auto [r, s] = port_with_sender(kA, kB);
  Name notify_port = port(kB);
  Name prev = 1;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, notify_port,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(prev, kNameNull);
  EXPECT_EQ(type_of(kB, s), kTypeSend | kTypeDnRequest);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  Received n = recv(kB, notify_port);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 72);
  EXPECT_EQ(field(n.msg), s);
  EXPECT_EQ(n.msg.local_type, RightType::kSendOnce);
  EXPECT_EQ(n.msg.trailer.sender, 0u);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
  EXPECT_EQ(refs(kB, s, Right::kDeadName), 2u);
}

TEST_F(NotifyTest, PortDeletedWhenTheNameGoesAwayFirst) {
  auto [r, s] = port_with_sender(kA, kB);
  Name notify_port = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, notify_port,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  Received n = recv(kB, notify_port);
  EXPECT_EQ(n.msg.id, 65);
  EXPECT_EQ(field(n.msg), s);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(recv(kB, notify_port).status, Status::kRcvTimedOut);
}

TEST_F(NotifyTest, RequestReturnsThePreviousRightAndCancels) {
  auto [r, s] = port_with_sender(kA, kB);
  Name n1 = port(kB), n2 = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n1, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n2, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kB, prev), kTypeSendOnce);
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, kNameNull,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kB, prev), kTypeSendOnce);
  EXPECT_EQ(type_of(kB, s), kTypeSend);
  EXPECT_EQ(status_of(kB, n2).sorights, 1u);
}

TEST_F(NotifyTest, RequestStatuses) {
  auto [r, s] = port_with_sender(kA, kB);
  Name n = port(kB);
  Name prev;
  const std::string before = snapshot(kB);
  EXPECT_EQ(core.request_notification(kB, s, Notify::kNoSenders, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kInvalidRight);
  EXPECT_EQ(core.request_notification(kB, s, Notify::kPortDestroyed, 0, n,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kInvalidRight);
  EXPECT_EQ(core.request_notification(kB, s, Notify::kSendOnce, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kInvalidValue);
  EXPECT_EQ(core.request_notification(kB, 0x4444, Notify::kDeadName, 0, n,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kInvalidName);
  EXPECT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, s, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kInvalidCapability);
  EXPECT_EQ(
      core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kCopySend, &prev, fx),
      Status::kInvalidValue);
  EXPECT_EQ(snapshot(kB), before);
}

TEST_F(NotifyTest, DeadNameOnANameAlreadyDead) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  Name n = port(kB);
  Name prev;
  EXPECT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kInvalidArgument);
  EXPECT_EQ(core.request_notification(kB, s, Notify::kDeadName, 1, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  Received got = recv(kB, n);
  EXPECT_EQ(got.msg.id, 72);
  EXPECT_EQ(field(got.msg), s);
  EXPECT_EQ(refs(kB, s, Right::kDeadName), 2u);
}

TEST_F(NotifyTest, NoSendersCarriesTheMakeSendCountAndFiresOnce) {
  Name r = port();
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 1, r, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_TRUE(status_of(kA, r).nsrequest);
  Name s = send_right(kA, r, kB);  // register (make-send), look-up (copy), unregister
  EXPECT_EQ(status_of(kA, r).mscount, 1u);
  ASSERT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  Received n = recv(kA, r);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 70);
  EXPECT_EQ(field(n.msg), 1u);
  EXPECT_FALSE(status_of(kA, r).nsrequest);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
}

TEST_F(NotifyTest, NoSendersFiresAtOnceWhenAlreadyTrueAndSyncIsMet) {
  Name r = port();
  Name s = send_right(kA, r, kB);
  ASSERT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  Name prev;
  // mscount is 1: a sync of 2 waits for another make-send...
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 2, r, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
  // ...while a sync of 1 is already met.
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 1, r, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kA, prev), kTypeSendOnce);  // the sync-2 request's right
  Received n = recv(kA, r);
  EXPECT_EQ(n.msg.id, 70);
  EXPECT_EQ(field(n.msg), 1u);
}

TEST_F(NotifyTest, SendOnceRightDestroyedUnusedNotifiesItsPort) {
  Name r = port();
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  Name so_b = give(kA, so, Disposition::kMoveSendOnce, kB);
  core.task_destroy(kB, fx);  // including by task death
  Received n = recv(kA, r);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 71);
  EXPECT_EQ(n.msg.body.size(), 8u);
  EXPECT_EQ(status_of(kA, r).sorights, 0u);
  (void)so_b;
}

TEST_F(NotifyTest, PortDestroyedSendsTheReceiveRightToTheBackup) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 11)), Status::kSuccess);
  Name backup = port(kC);
  Name backup_send = send_right(kC, backup, kA);
  Name so;
  RightType t;
  // kA needs a send-once right to the backup: make one in kC and hand it over.
  ASSERT_EQ(core.extract_right(kC, backup, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kSuccess);
  Name so_a = give(kC, so, Disposition::kMoveSendOnce, kA);
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, so_a,
                                      Disposition::kMoveSendOnce, &prev, fx),
            Status::kSuccess);
  EXPECT_TRUE(status_of(kA, r).pdrequest);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  // The port lives on, in the notification.
  EXPECT_EQ(type_of(kB, s), kTypeSend);
  Received n = recv(kC, backup);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 69);
  const auto& d = std::get<PortDescOut>(n.msg.descriptors.at(0));
  EXPECT_EQ(d.type, RightType::kReceive);
  EXPECT_EQ(recv(kC, d.name).msg.id, 11);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 12)), Status::kSuccess);
  EXPECT_EQ(recv(kC, d.name).msg.id, 12);
  (void)backup_send;
}

TEST_F(NotifyTest, CacheOnFullNotifiesWhenTheMessageEntersTheQueue) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name notify_port = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  SendOptions o = now();
  o.cache = true;
  o.notify = notify_port;
  o.thread = 42;
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), o), Status::kSendWillNotify);
  // One pending per thread.
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 3), o), Status::kSendNotifyInProgress);
  o.thread = 43;
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 4), o), Status::kSendWillNotify);
  EXPECT_EQ(recv(kB, notify_port).status, Status::kRcvTimedOut);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  Received n = recv(kB, notify_port);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 66);
  EXPECT_EQ(field(n.msg), s);
  // Thread 42 may cache again now.
  o.thread = 42;
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 5), o), Status::kSendWillNotify);
  EXPECT_EQ(recv(kA, r).msg.id, 2);
  EXPECT_EQ(recv(kA, r).msg.id, 4);
  EXPECT_EQ(recv(kA, r).msg.id, 5);
  EXPECT_EQ(recv(kB, notify_port).msg.id, 66);
  EXPECT_EQ(recv(kB, notify_port).msg.id, 66);
}

TEST_F(NotifyTest, CacheWithATimeoutWaitsFirst) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name notify_port = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  SendOptions o;
  o.timeout_ms = 20;
  o.cache = true;
  o.notify = notify_port;
  o.thread = 1;
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), o, 300), Status::kSendInProgress);
  core.expire(300, fx);
  auto c = completion(300);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendWillNotify);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(recv(kB, notify_port).msg.id, 66);
  EXPECT_EQ(recv(kA, r).msg.id, 2);
}

TEST_F(NotifyTest, CacheWithATimeoutThatGetsInInTimeIsAPlainSuccess) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name notify_port = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  SendOptions o;
  o.timeout_ms = 1000;
  o.cache = true;
  o.notify = notify_port;
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), o, 301), Status::kSendInProgress);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  auto c = completion(301);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSuccess);
  EXPECT_EQ(recv(kB, notify_port).status, Status::kRcvTimedOut);
}

TEST_F(NotifyTest, CachedMessageToAPortThatDiesIsDestroyedAndTheSenderHears) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name notify_port = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  SendOptions o = now();
  o.cache = true;
  o.notify = notify_port;
  MessageIn m = msg(s, Disposition::kCopySend, 2);
  m.descriptors = {PortDescIn{s2, Disposition::kMoveSend}};
  ASSERT_EQ(send(kB, m, o), Status::kSendWillNotify);
  EXPECT_TRUE(status_of(kC, r2).srights);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  // The right inside it was released, and the unused notify right says so.
  EXPECT_FALSE(status_of(kC, r2).srights);
  Received n = recv(kB, notify_port);
  EXPECT_EQ(n.msg.id, 71);
}

TEST_F(NotifyTest, InvalidNotifyPortIsRefusedBeforeAnythingHappens) {
  auto [r, s] = port_with_sender(kA, kB);
  SendOptions o = now();
  o.cache = true;
  o.notify = s;  // a send right, not a receive right
  const std::string before = snapshot(kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kMoveSend), o), Status::kSendInvalidNotify);
  EXPECT_EQ(snapshot(kB), before);
}

TEST_F(NotifyTest, TaskDeathMakesDeadNamesElsewhereAndFiresTheirRequests) {
  auto [r, s] = port_with_sender(kA, kB);
  Name n = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  core.task_destroy(kA, fx);
  EXPECT_EQ(recv(kB, n).msg.id, 72);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
}

}  // namespace
}  // namespace portd::ipc::testing
