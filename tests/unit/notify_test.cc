// Notifications: dead-name, port-deleted, no-senders, send-once,
// port-destroyed and message-accepted, with their ids and payloads.
#include <cstring>

#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

// The field after the 8-byte NDR record.
uint32_t field(const MessageOut& m) {
  EXPECT_EQ(m.body.size(), 12u);
  uint32_t v = 0;
  if (m.body.size() >= 12) std::memcpy(&v, m.body.data() + 8, 4);
  return v;
}

// A send-once right in `holder` to port `name` of `owner`.
class NotifyTest : public CoreTest {
 protected:
  Name send_once_to(TaskId owner, Name name, TaskId holder) {
    Name so = kNameNull;
    RightType t;
    EXPECT_EQ(core.extract_right(owner, name, Disposition::kMakeSendOnce, &so, &t, fx),
              Status::kSuccess);
    return owner == holder ? so : give(owner, so, Disposition::kMoveSendOnce, holder);
  }
  SendOptions cache_to(Name notify_port, uint64_t thread = 1, int64_t timeout_ms = 0) {
    SendOptions o;
    o.timeout_ms = timeout_ms;
    o.cache = true;
    o.notify = notify_port;
    o.thread = thread;
    return o;
  }
};

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

// ---- port-deleted -----------------------------------------------------------

TEST_F(NotifyTest, PortDeletedWhenTheLastRightLeavesInAMessage) {
  auto [r, s] = port_with_sender(kA, kB);
  Name n = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kMoveSend, 3)), Status::kSuccess);
  uint32_t t;
  EXPECT_EQ(core.type(kB, s, &t), Status::kInvalidName);
  Received got = recv(kB, n);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 65);
  EXPECT_EQ(field(got.msg), s);
  EXPECT_EQ(recv(kA, r).msg.id, 3);
}

TEST_F(NotifyTest, PortDeletedWhenTheRequesterDies) {
  // kB watches kA's port r through a send-once right to kC's port n.
  auto [r, s] = port_with_sender(kA, kB);
  Name n = port(kC);
  Name so = send_once_to(kC, n, kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, so, Disposition::kMoveSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.notify_requests, 1u);
  core.task_destroy(kB, fx);
  Received got = recv(kC, n);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 65);
  EXPECT_EQ(field(got.msg), s);  // kB's name, as Mach sends it
  EXPECT_EQ(status_of(kC, n).sorights, 0u);
  EXPECT_FALSE(status_of(kA, r).srights);
}

// ---- no-senders --------------------------------------------------------------

TEST_F(NotifyTest, NoSendersWhenTheLastHolderDies) {
  Name r = port();
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 1, r, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  send_right(kA, r, kB);
  send_right(kA, r, kB);  // two user references, one name: still one sender
  EXPECT_EQ(status_of(kA, r).mscount, 2u);
  core.task_destroy(kB, fx);
  Received got = recv(kA, r);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 70);
  EXPECT_EQ(field(got.msg), 2u);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
}

TEST_F(NotifyTest, NoSendersWhenTheLastSendRightDiesInADestroyedMessage) {
  Name r = port();
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 1, r, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  Name s = send_right(kA, r, kB);
  auto [q, to_q] = port_with_sender(kC, kB);
  MessageIn m = msg(to_q);
  m.descriptors.push_back(PortDescIn{s, Disposition::kMoveSend});
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_TRUE(status_of(kA, r).srights);  // in transit, still a sender
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
  ASSERT_EQ(core.mod_refs(kC, q, Right::kReceive, -1, fx), Status::kSuccess);
  Received got = recv(kA, r);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 70);
  EXPECT_EQ(field(got.msg), 1u);
}

TEST_F(NotifyTest, RequestsTravelWithTheReceiveRight) {
  // kA arms no-senders on r towards its own port n, then gives r to kC: the
  // request belongs to the port, so n still hears when the last sender goes.
  auto [r, s] = port_with_sender(kA, kB);
  Name n = port(kA);
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  Name moved = give(kA, r, Disposition::kMoveReceive, kC);
  EXPECT_TRUE(status_of(kC, moved).nsrequest);
  EXPECT_EQ(status_of(kC, moved).mscount, 1u);
  ASSERT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  Received got = recv(kA, n);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 70);
  EXPECT_EQ(field(got.msg), 1u);
  EXPECT_FALSE(status_of(kC, moved).nsrequest);
}

TEST_F(NotifyTest, CancellingNoSendersAndPortDestroyedHandsBackTheirRights) {
  Name r = port();
  Name n = port();
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 5, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, n,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(status_of(kA, n).sorights, 2u);
  ASSERT_EQ(core.request_notification(kA, r, Notify::kNoSenders, 0, kNameNull,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kA, prev), kTypeSendOnce);
  EXPECT_FALSE(status_of(kA, r).nsrequest);
  Name prev_pd;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, kNameNull,
                                      Disposition::kMakeSendOnce, &prev_pd, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kA, prev_pd), kTypeSendOnce);
  EXPECT_NE(prev_pd, prev);
  EXPECT_FALSE(status_of(kA, r).pdrequest);
  // Nothing fires any more: the port just dies.
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(recv(kA, n).status, Status::kRcvTimedOut);
  EXPECT_EQ(status_of(kA, n).sorights, 2u);  // the two handed back
}

// ---- port-destroyed ------------------------------------------------------------

TEST_F(NotifyTest, PortDestroyedWhenTheOwnerDies) {
  auto [r, s] = port_with_sender(kA, kB);
  Name backup = port(kC);
  Name so = send_once_to(kC, backup, kA);
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, so,
                                      Disposition::kMoveSendOnce, &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 11)), Status::kSuccess);
  EXPECT_EQ(recv(kA, r).msg.trailer.seqno, 0u);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 12)), Status::kSuccess);
  core.task_destroy(kA, fx);
  EXPECT_EQ(type_of(kB, s), kTypeSend);  // the port lives on
  Received got = recv(kC, backup);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 69);
  EXPECT_TRUE(got.msg.body.empty());
  ASSERT_EQ(got.msg.descriptors.size(), 1u);
  const auto d = std::get<PortDescOut>(got.msg.descriptors[0]);
  EXPECT_EQ(d.type, RightType::kReceive);
  EXPECT_EQ(type_of(kC, d.name), kTypeReceive);
  EXPECT_FALSE(status_of(kC, d.name).pdrequest);  // one-shot
  Received queued = recv(kC, d.name);
  EXPECT_EQ(queued.msg.id, 12);
  EXPECT_EQ(queued.msg.trailer.seqno, 1u);
}

TEST_F(NotifyTest, PortDestroyedWithADeadBackupLetsThePortDie) {
  auto [r, s] = port_with_sender(kA, kB);
  Name backup = port(kC);
  Name so = send_once_to(kC, backup, kA);
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, so,
                                      Disposition::kMoveSendOnce, &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kC, backup, Right::kReceive, -1, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
  EXPECT_EQ(core.impl().ports().size(), 0u);
}

TEST_F(NotifyTest, PortDestroyedThatWouldQueueTheRightOnItselfLetsThePortDie) {
  // r's backup is b, and b's receive right travels in a message queued on r:
  // handing r's receive right to b would put it in its own queue.
  auto [r, s] = port_with_sender(kA, kB);
  Name b = port(kA);
  Name prev;
  ASSERT_EQ(core.request_notification(kA, r, Notify::kPortDestroyed, 0, b,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  MessageIn m = msg(r, Disposition::kMakeSend);
  m.descriptors.push_back(PortDescIn{b, Disposition::kMoveReceive});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  ASSERT_EQ(core.impl().ports().size(), 2u);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
  EXPECT_EQ(core.impl().ports().size(), 0u);
  // The same for a port registered as its own backup.
  auto [r2, s2] = port_with_sender(kA, kB);
  ASSERT_EQ(core.request_notification(kA, r2, Notify::kPortDestroyed, 0, r2,
                                      Disposition::kMakeSendOnce, &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r2, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kB, s2), kTypeDeadName);
  EXPECT_EQ(core.impl().ports().size(), 0u);
}

// ---- exemption -------------------------------------------------------------------

TEST_F(NotifyTest, NotificationsIgnoreTheQueueLimit) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [n, to_n] = port_with_sender(kB, kC);
  ASSERT_EQ(core.set_qlimit(kB, n, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kC, msg(to_n, Disposition::kCopySend, 1)), Status::kSuccess);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(status_of(kB, n).msgcount, 2u);
  // Still full for ordinary senders.
  EXPECT_EQ(send(kC, msg(to_n, Disposition::kCopySend, 2)), Status::kSendTimedOut);
  EXPECT_EQ(recv(kB, n).msg.id, 1);
  EXPECT_EQ(recv(kB, n).msg.id, 72);
}

// ---- cache-on-full -----------------------------------------------------------------

TEST_F(NotifyTest, WaitThenCacheEndingWhileTheThreadHasACachedMessageGivesTheRightsBack) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name n = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), cache_to(n, 7)), Status::kSendWillNotify);
  const std::string before = snapshot(kB);
  MessageIn m = msg(s, Disposition::kCopySend, 3);
  m.descriptors.push_back(PortDescIn{s2, Disposition::kMoveSend});
  ASSERT_EQ(send(kB, m, cache_to(n, 7, 50), 400), Status::kSendInProgress);
  core.expire(400, fx);
  auto c = completion(400);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendNotifyInProgress);
  EXPECT_EQ(snapshot(kB), before);
  EXPECT_TRUE(status_of(kC, r2).srights);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(recv(kA, r).msg.id, 2);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
}

TEST_F(NotifyTest, CachedMessageOnARendezvousPortIsAcceptedWhenTaken) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  Name n = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 4), cache_to(n)), Status::kSendWillNotify);
  EXPECT_EQ(status_of(kA, r).msgcount, 1u);
  EXPECT_EQ(recv(kB, n).status, Status::kRcvTimedOut);
  EXPECT_EQ(recv(kA, r).msg.id, 4);
  Received got = recv(kB, n);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 66);
  EXPECT_EQ(field(got.msg), s);
}

TEST_F(NotifyTest, CachedMessageFollowsItsPortToANewReceiver) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name n = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), cache_to(n)), Status::kSendWillNotify);
  Name moved = give(kA, r, Disposition::kMoveReceive, kC);
  EXPECT_EQ(status_of(kC, moved).msgcount, 1u);
  EXPECT_EQ(recv(kC, moved).msg.id, 1);
  Received got = recv(kB, n);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 66);
  EXPECT_EQ(field(got.msg), s);
  Received second = recv(kC, moved);
  EXPECT_EQ(second.msg.id, 2);
  EXPECT_EQ(second.msg.trailer.seqno, 1u);
}

TEST_F(NotifyTest, CachedMessageOutlivesItsSenderAndItsNotifyPort) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  Name n = port(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  MessageIn m = msg(s, Disposition::kCopySend, 2, "cached");
  m.descriptors.push_back(PortDescIn{s2, Disposition::kMoveSend});
  ASSERT_EQ(send(kB, m, cache_to(n)), Status::kSendWillNotify);
  ASSERT_EQ(core.mod_refs(kB, n, Right::kReceive, -1, fx), Status::kSuccess);
  core.task_destroy(kB, fx);
  check();
  EXPECT_TRUE(status_of(kC, r2).srights);  // the right in the cached message
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  Received got = recv(kA, r);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 2);
  EXPECT_EQ(body_of(got.msg), "cached");
  EXPECT_EQ(got.msg.trailer.sender, kB);
  const auto d = std::get<PortDescOut>(got.msg.descriptors.at(0));
  EXPECT_EQ(type_of(kA, d.name), kTypeSend);
}

}  // namespace
}  // namespace portd::ipc::testing
