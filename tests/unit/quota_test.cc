// Quotas: each limit refuses with a status, names the limit, and leaves
// nothing behind.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

class QuotaTest : public CoreTest {
 protected:
  static Limits tight() {
    Limits l;
    l.per_task.ports = 4;
    l.per_task.port_sets = 1;
    l.per_task.queued_messages = 3;
    l.per_task.queued_bytes = 100;
    l.per_task.parked_requests = 2;
    l.per_task.notify_requests = 1;
    l.per_task.bootstrap_names = 1;
    l.per_task.send_once_rights = 2;
    l.per_uid.ports = 6;
    l.max_inline_body = 64;
    l.max_descriptors = 4;
    return l;
  }
  QuotaTest() : CoreTest(tight()) {}

  // Task t can make no more ports: refused, naming the limit.
  void expect_ports_full(TaskId t) {
    Name n = kNameNull;
    EXPECT_EQ(core.allocate(t, Right::kReceive, &n), Status::kResourceShortage);
    EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  }
};

TEST_F(QuotaTest, PortsPerTaskAndPerUid) {
  for (int i = 0; i < 4; ++i) port(kA);
  Name n = kNameNull;
  EXPECT_EQ(core.allocate(kA, Right::kReceive, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  EXPECT_EQ(name_count(kA), 4u);
  // kC shares kA's uid (1000): 2 more reach the uid's limit of 6.
  port(kC);
  port(kC);
  EXPECT_EQ(core.allocate(kC, Right::kReceive, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  // Another uid is not affected.
  EXPECT_EQ(core.allocate(kB, Right::kReceive, &n), Status::kSuccess);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNone);
}

TEST_F(QuotaTest, PortSets) {
  pset();
  Name n;
  EXPECT_EQ(core.allocate(kA, Right::kPortSet, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPortSets);
}

TEST_F(QuotaTest, QueuedMessagesAndBytesAreChargedToTheSenderUntilReceived) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 10, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, std::string(60, 'a'))), Status::kSuccess);
  const std::string before = snapshot(kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2, std::string(60, 'b'))),
            Status::kSendNoBuffer);
  EXPECT_EQ(core.last_refused_limit(), Limit::kQueuedBytes);
  EXPECT_EQ(snapshot(kB), before);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 4)), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 5)), Status::kSendNoBuffer);
  EXPECT_EQ(core.last_refused_limit(), Limit::kQueuedMessages);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 6, std::string(60, 'c'))), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.queued_messages, 3u);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.queued_bytes, 60u);
}

TEST_F(QuotaTest, MessageSizeAndDescriptorLimits) {
  auto [r, s] = port_with_sender(kA, kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, std::string(65, 'x'))),
            Status::kSendTooLarge);
  EXPECT_EQ(core.last_refused_limit(), Limit::kMessageBytes);
  MessageIn m = msg(s);
  m.descriptors = {
      OolPortsIn{{kNameNull, kNameNull, kNameNull, kNameNull}, Disposition::kCopySend}};
  EXPECT_EQ(send(kB, m), Status::kSendTooLarge);
  EXPECT_EQ(core.last_refused_limit(), Limit::kMessageDescriptors);
  // A port descriptor counts once: four of them are within the limit of 4,
  // as the codec counts them.
  m.descriptors.assign(4, PortDescIn{kNameNull, Disposition::kCopySend});
  EXPECT_EQ(send(kB, m), Status::kSuccess);
  m = msg(s);
  m.descriptors.assign(5, PortDescIn{kNameNull, Disposition::kCopySend});
  EXPECT_EQ(send(kB, m), Status::kSendTooLarge);
  EXPECT_EQ(core.last_refused_limit(), Limit::kMessageDescriptors);
}

TEST_F(QuotaTest, ParkedRequests) {
  Name r = port(kA);
  EXPECT_EQ(recv_park(kA, r, 1), Status::kRcvInProgress);
  EXPECT_EQ(recv_park(kA, r, 2), Status::kRcvInProgress);
  EXPECT_EQ(recv_park(kA, r, 3), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kParkedRequests);
  core.cancel(1, fx);
  EXPECT_EQ(recv_park(kA, r, 3), Status::kRcvInProgress);
  core.cancel(2, fx);
  core.cancel(3, fx);
}

TEST_F(QuotaTest, NotifyRequestsAndSendOnceRights) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kA, kB);
  Name n = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(core.request_notification(kB, s2, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNotifyRequests);
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, n, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  EXPECT_EQ(core.extract_right(kB, n, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kSendOnceRights);
}

TEST_F(QuotaTest, BootstrapNames) {
  Name n;
  ASSERT_EQ(core.bootstrap_check_in(kA, "one", &n, fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_check_in(kA, "two", &n, fx), Status::kBootstrapNoMemory);
  EXPECT_EQ(core.last_refused_limit(), Limit::kBootstrapNames);
  ASSERT_EQ(core.bootstrap_unregister(kA, "one", fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_check_in(kA, "two", &n, fx), Status::kSuccess);
}

TEST_F(QuotaTest, InsertRightMakingASendOnceRightIsCharged) {
  Name r = port(kA);
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  const std::string before = snapshot(kA);
  EXPECT_EQ(core.insert_right(kA, make_name(500, 1), r, Disposition::kMakeSendOnce, fx),
            Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kSendOnceRights);
  EXPECT_EQ(snapshot(kA), before);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.send_once_rights, 2u);
  // Used up: destroyed unused, its send-once notification carries it (and
  // its charge) until received.
  ASSERT_EQ(core.deallocate(kA, so, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.send_once_rights, 2u);
  EXPECT_EQ(recv(kA, r).msg.id, 71);
  EXPECT_EQ(core.insert_right(kA, make_name(500, 1), r, Disposition::kMakeSendOnce, fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kA, make_name(500, 1)), kTypeSendOnce);
}

TEST_F(QuotaTest, CacheOnFullCountsTheNotificationsSendOnceRight) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  Name notify = port(kB);
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, notify, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kSuccess);
  Name so2;
  ASSERT_EQ(core.extract_right(kB, notify, Disposition::kMakeSendOnce, &so2, &t, fx),
            Status::kSuccess);
  SendOptions cache = now();
  cache.cache = true;
  cache.notify = notify;
  cache.thread = 7;
  const std::string before = snapshot(kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), cache), Status::kSendNoBuffer);
  EXPECT_EQ(core.last_refused_limit(), Limit::kSendOnceRights);
  EXPECT_EQ(snapshot(kB), before);
  // One right used up: the cached send's notification right fits again.
  ASSERT_EQ(core.deallocate(kB, so2, fx), Status::kSuccess);
  EXPECT_EQ(recv(kB, notify).msg.id, 71);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 3), cache), Status::kSendWillNotify);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.send_once_rights, 2u);
}

TEST_F(QuotaTest, ABlockedSendsReceiveRightStaysChargedAndComesBack) {
  // kB sends a receive right of its own to a full port and waits. The port
  // stays charged to kB while it waits, so kB can make only three more; when
  // the send times out the right comes back under its name, charged once.
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  Name carried = port(kB);
  MessageIn m = msg(s, Disposition::kCopySend, 2);
  m.descriptors.push_back(PortDescIn{carried, Disposition::kMoveReceive});
  ASSERT_EQ(send(kB, m, wait(), 9), Status::kSendInProgress);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.ports, 1u);
  for (int i = 0; i < 3; ++i) port(kB);
  expect_ports_full(kB);
  check();
  core.expire(9, fx);
  auto c = completion(9);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendTimedOut);
  EXPECT_EQ(type_of(kB, carried), kTypeReceive);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.ports, 4u);
  expect_ports_full(kB);
  ASSERT_EQ(core.mod_refs(kB, carried, Right::kReceive, -1, fx), Status::kSuccess);
  Name n;
  EXPECT_EQ(core.allocate(kB, Right::kReceive, &n), Status::kSuccess);
}

TEST_F(QuotaTest, AReceiveRightInTransitIsChargedToItsSenderUntilItIsReceived) {
  // Without this, a task could make ports up to its limit, send them all
  // away into a queue, and make as many again, without bound.
  auto [inbox, to_inbox] = port_with_sender(kB, kA);
  Name carried = port(kA);
  for (int i = 0; i < 3; ++i) port(kA);
  MessageIn m = msg(to_inbox, Disposition::kCopySend, 1);
  m.descriptors.push_back(PortDescIn{carried, Disposition::kMoveReceive});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  EXPECT_EQ(type_of(kA, carried), 0u);
  Account* a = core.impl().find_task(kA)->account;
  EXPECT_EQ(a->used.ports, 4u);
  EXPECT_EQ(a->uid_account->used.ports, 4u);
  expect_ports_full(kA);
  check();
  // Received: the charge passes to the receiver (kB, another uid).
  Received got = recv(kB, inbox);
  ASSERT_EQ(got.status, Status::kSuccess);
  const Name arrived = std::get<PortDescOut>(got.msg.descriptors.at(0)).name;
  EXPECT_EQ(type_of(kB, arrived), kTypeReceive);
  EXPECT_EQ(a->used.ports, 3u);
  EXPECT_EQ(a->uid_account->used.ports, 3u);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.ports, 2u);
  Name n;
  EXPECT_EQ(core.allocate(kA, Right::kReceive, &n), Status::kSuccess);
  check();
}

TEST_F(QuotaTest, AReceiveRightMovedWithinItsTaskSurvivesALoweredLimit) {
  // A reload may lower a limit below what a task holds; nothing held is
  // taken away, and moving a receive right to another name in the same
  // space is not a new charge.
  Name a = port(kA);
  port(kA);
  port(kA);
  Limits lower = tight();
  lower.per_task.ports = 1;
  core.set_limits(lower);
  Name moved;
  RightType type;
  ASSERT_EQ(core.extract_right(kA, a, Disposition::kMoveReceive, &moved, &type, fx),
            Status::kSuccess);
  EXPECT_EQ(type, RightType::kReceive);
  EXPECT_EQ(type_of(kA, moved), kTypeReceive);
  const Name renamed = make_name(7, 0x2a);
  ASSERT_EQ(core.insert_right(kA, renamed, moved, Disposition::kMoveReceive, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kA, renamed), kTypeReceive);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 3u);
  expect_ports_full(kA);
}

TEST_F(QuotaTest, AReceiveRightOnItsWayToABackupPortStaysCharged) {
  // Without this, make a port, ask for port-destroyed to a backup, destroy
  // the receive right, repeat: each port would pile up in the backup's queue
  // (notifications do not count against it) charged to nobody.
  Name backup = port(kA);
  Name prev;
  for (int i = 0; i < 2; ++i) {  // two: tight() allows two send-once rights
    Name p = port(kA);
    ASSERT_EQ(core.request_notification(kA, p, Notify::kPortDestroyed, 0, backup,
                                        Disposition::kMakeSendOnce, &prev, fx),
              Status::kSuccess);
    ASSERT_EQ(core.mod_refs(kA, p, Right::kReceive, -1, fx), Status::kSuccess);
  }
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 3u);
  port(kA);
  expect_ports_full(kA);
  check();
  // Received back, each is charged once; destroyed, it is not charged at all.
  Received got = recv(kA, backup);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, static_cast<int32_t>(Notify::kPortDestroyed));
  const Name back = std::get<PortDescOut>(got.msg.descriptors.at(0)).name;
  EXPECT_EQ(type_of(kA, back), kTypeReceive);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 4u);
  ASSERT_EQ(core.mod_refs(kA, back, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 3u);
  // The backup itself dies with the other right still queued on it: both
  // charges end; the port made last is all kA pays for.
  ASSERT_EQ(core.mod_refs(kA, backup, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 1u);
  check();
}

TEST_F(QuotaTest, AReceiveRightThatDiesInTransitReleasesItsSendersCharge) {
  auto [inbox, to_inbox] = port_with_sender(kB, kA);
  // Dies with the queue it is in.
  MessageIn m = msg(to_inbox, Disposition::kCopySend, 1);
  m.descriptors.push_back(PortDescIn{port(kA), Disposition::kMoveReceive});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 1u);
  ASSERT_EQ(core.mod_refs(kB, inbox, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kA)->account->used.ports, 0u);
  check();
  // Its sender dies first: the charge outlives the task (on its uid) until
  // the message is received.
  auto [inbox2, to_inbox2] = port_with_sender(kB, kA);
  MessageIn m2 = msg(to_inbox2, Disposition::kCopySend, 2);
  m2.descriptors.push_back(PortDescIn{port(kA), Disposition::kMoveReceive});
  ASSERT_EQ(send(kA, m2), Status::kSuccess);
  core.task_destroy(kA, fx);
  ASSERT_NE(core.impl().uid_account(1000), nullptr);
  EXPECT_EQ(core.impl().uid_account(1000)->used.ports, 1u);
  Received got = recv(kB, inbox2);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(type_of(kB, std::get<PortDescOut>(got.msg.descriptors.at(0)).name), kTypeReceive);
  EXPECT_EQ(core.impl().uid_account(1000)->used.ports, 0u);  // kC still holds uid 1000
  check();
}

TEST_F(QuotaTest, ChargesOfADeadSenderLiveUntilItsMessagesAreReceived) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, "x")), Status::kSuccess);
  core.task_destroy(kB, fx);
  ASSERT_NE(core.impl().uid_account(1001), nullptr);
  EXPECT_EQ(core.impl().uid_account(1001)->used.queued_messages, 1u);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(core.impl().uid_account(1001), nullptr);
}

TEST_F(QuotaTest, AReceiveRightTheReceiverCannotHoldDiesAndTheBodyErrorSaysSo) {
  // kB holds its 4 ports; the one that arrives would be a fifth.
  Name dest = port(kB);
  for (int i = 0; i < 3; ++i) port(kB);
  Name to_dest = send_right(kB, dest, kA);
  auto [moving, to_moving] = port_with_sender(kA, kC);
  MessageIn m = msg(to_dest, Disposition::kCopySend, 9, "carried");
  m.descriptors.push_back(PortDescIn{moving, Disposition::kMoveReceive});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  Received got = recv(kB, dest);
  EXPECT_EQ(got.status, Status::kRcvBodyError);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  EXPECT_EQ(got.msg.id, 9);
  EXPECT_EQ(body_of(got.msg), "carried");
  ASSERT_EQ(got.msg.descriptors.size(), 1u);
  EXPECT_EQ(std::get<PortDescOut>(got.msg.descriptors[0]).name, kNameNull);
  EXPECT_EQ(type_of(kC, to_moving), kTypeDeadName);
}

// The receiver's name space is full: rights that cannot be named are
// destroyed (with the notifications that causes) and the message still
// arrives, with MACH_RCV_HEADER_ERROR when the reply right was among them.
class NameQuotaTest : public CoreTest {
 protected:
  static Limits names(uint64_t n) {
    Limits l;
    l.per_task.names = n;
    return l;
  }
  NameQuotaTest() : CoreTest(names(4)) {}
};

TEST_F(NameQuotaTest, UnnameableRightsAreDestroyedAndTheMessageArrives) {
  Name dest = port(kB);
  Name to_dest = send_right(kB, dest, kA);
  Name reply = port(kA);
  Name dead;
  while (core.allocate(kB, Right::kDeadName, &dead) == Status::kSuccess) {
  }
  EXPECT_EQ(core.last_refused_limit(), Limit::kNames);
  MessageIn m = msg(to_dest, Disposition::kCopySend, 21, "body");
  m.local = reply;
  m.local_disposition = Disposition::kMakeSendOnce;
  m.descriptors.push_back(PortDescIn{reply, Disposition::kMakeSend});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  Received got = recv(kB, dest);
  EXPECT_EQ(got.status, Status::kRcvHeaderError);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNames);
  EXPECT_EQ(got.msg.id, 21);
  EXPECT_EQ(body_of(got.msg), "body");
  EXPECT_EQ(got.msg.remote, kNameNull);
  EXPECT_EQ(got.msg.remote_type, RightType::kSendOnce);
  EXPECT_EQ(std::get<PortDescOut>(got.msg.descriptors.at(0)).name, kNameNull);
  // The reply right was destroyed unused: its port hears so.
  Received n = recv(kA, reply);
  ASSERT_EQ(n.status, Status::kSuccess);
  EXPECT_EQ(n.msg.id, 71);
  EXPECT_FALSE(status_of(kA, reply).srights);
  // Only the body right missing: MACH_RCV_BODY_ERROR.
  MessageIn m2 = msg(to_dest, Disposition::kCopySend, 22);
  m2.descriptors.push_back(PortDescIn{reply, Disposition::kMakeSend});
  ASSERT_EQ(send(kA, m2), Status::kSuccess);
  got = recv(kB, dest);
  EXPECT_EQ(got.status, Status::kRcvBodyError);
  EXPECT_EQ(got.msg.id, 22);
}

TEST_F(NameQuotaTest, AParkedReceiveAndALookUpNameTheLimitThatRefusedTheirRight) {
  Name dest = port(kB);
  Name to_dest = send_right(kB, dest, kA);
  Name extra = port(kA);
  Name dead;
  while (core.allocate(kB, Right::kDeadName, &dead) == Status::kSuccess) {
  }
  ASSERT_EQ(recv_park(kB, dest, 1), Status::kRcvInProgress);
  MessageIn m = msg(to_dest, Disposition::kCopySend, 5);
  m.descriptors.push_back(PortDescIn{extra, Disposition::kMakeSend});
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  auto c = completion(1);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kRcvBodyError);
  EXPECT_EQ(c->limit, Limit::kNames);
  // The sender's operation succeeded and records no limit.
  EXPECT_EQ(core.last_refused_limit(), Limit::kNone);

  Name got;
  ASSERT_EQ(core.bootstrap_look_up(kB, "later", -1, 2, &got, fx), Status::kRcvInProgress);
  ASSERT_EQ(core.bootstrap_register(kA, "later", extra, fx), Status::kSuccess);
  c = completion(2);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kBootstrapNoMemory);
  EXPECT_EQ(c->limit, Limit::kNames);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNone);
}

TEST_F(NameQuotaTest, ALookUpOfAPortAlreadyNamedNeedsNoNewName) {
  Name served = port(kA);
  Name other = port(kA);
  ASSERT_EQ(core.bootstrap_register(kA, "served", served, fx), Status::kSuccess);
  ASSERT_EQ(core.bootstrap_register(kA, "other", other, fx), Status::kSuccess);
  Name held = kNameNull;
  ASSERT_EQ(core.bootstrap_look_up(kB, "served", 0, 0, &held, fx), Status::kSuccess);
  Name dead;
  while (core.allocate(kB, Right::kDeadName, &dead) == Status::kSuccess) {
  }
  ASSERT_EQ(name_count(kB), 4u);
  // The name kB already has for the port takes one more reference.
  Name again = kNameNull;
  EXPECT_EQ(core.bootstrap_look_up(kB, "served", 0, 0, &again, fx), Status::kSuccess);
  EXPECT_EQ(again, held);
  EXPECT_EQ(refs(kB, held, Right::kSend), 2u);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNone);
  // A port kB has no name for would need a fifth.
  Name none = kNameNull;
  EXPECT_EQ(core.bootstrap_look_up(kB, "other", 0, 0, &none, fx), Status::kBootstrapNoMemory);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNames);
  EXPECT_EQ(none, kNameNull);
  EXPECT_EQ(name_count(kB), 4u);
}

// The counters account for every message a client sends: received,
// destroyed (with a reason) or refused, or still in flight.
class CounterTest : public CoreTest {
 protected:
  void expect_balanced() {
    const Counters& n = core.impl().counters();
    EXPECT_EQ(n.messages_sent, n.messages_received + n.messages_destroyed + n.messages_refused +
                                   n.messages_in_flight);
    EXPECT_EQ(n.messages_destroyed,
              n.destroyed_port_died + n.destroyed_too_large + n.destroyed_sender_died);
  }
};

TEST_F(CounterTest, EverySendEndsReceivedDestroyedOrRefused) {
  const Counters& n = core.impl().counters();
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2)), Status::kSendTimedOut);
  EXPECT_EQ(send(kB, msg(kNameNull)), Status::kSendInvalidDest);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3, "a longer body"), wait(), 5),
            Status::kSendInProgress);
  EXPECT_EQ(n.messages_sent, 4u);
  EXPECT_EQ(n.messages_refused, 2u);
  EXPECT_EQ(n.messages_in_flight, 2u);
  expect_balanced();

  EXPECT_EQ(recv(kA, r).msg.id, 1);  // and message 3 enters the queue
  ASSERT_TRUE(completion(5).has_value());
  ReceiveOptions small;
  small.max_size = 30;
  EXPECT_EQ(recv(kA, r, small).status, Status::kRcvTooLarge);  // message 3 destroyed
  EXPECT_EQ(n.messages_received, 1u);
  EXPECT_EQ(n.destroyed_too_large, 1u);
  expect_balanced();

  // A blocked sender that dies: its message goes with it. The one it had
  // queued stays, and dies with its port.
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 4)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 5), wait(), 6), Status::kSendInProgress);
  core.task_destroy(kB, fx);
  EXPECT_EQ(n.destroyed_sender_died, 1u);
  EXPECT_EQ(n.messages_in_flight, 1u);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(n.destroyed_port_died, 1u);

  EXPECT_EQ(n.messages_sent, 6u);
  EXPECT_EQ(n.messages_received, 1u);
  EXPECT_EQ(n.messages_destroyed, 3u);
  EXPECT_EQ(n.messages_refused, 2u);
  EXPECT_EQ(n.messages_in_flight, 0u);
  EXPECT_EQ(n.notifications, 0u);
  expect_balanced();
}

TEST_F(CounterTest, ACachedMessageWhosePortDiesIsDestroyedAndNotificationsCountApart) {
  const Counters& n = core.impl().counters();
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  Name notify = port(kB);
  SendOptions cache = now();
  cache.cache = true;
  cache.notify = notify;
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), cache), Status::kSendWillNotify);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(n.messages_sent, 2u);
  EXPECT_EQ(n.destroyed_port_died, 2u);  // the queued one and the cached one
  EXPECT_EQ(n.messages_refused, 0u);
  // The cached message's unused notify right told kB: a send-once
  // notification, received.
  EXPECT_EQ(n.notifications, 1u);
  EXPECT_EQ(recv(kB, notify).msg.id, 71);
  EXPECT_EQ(n.notifications_received, 1u);
  EXPECT_EQ(n.messages_received, 0u);
  expect_balanced();
  // A notification that dies unreceived.
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, notify, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kSuccess);
  ASSERT_EQ(core.deallocate(kB, so, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kB, notify, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(n.notifications, 2u);
  EXPECT_EQ(n.notifications_destroyed, 1u);
  EXPECT_EQ(n.messages_destroyed, 2u);
  expect_balanced();
}

}  // namespace
}  // namespace portd::ipc::testing
