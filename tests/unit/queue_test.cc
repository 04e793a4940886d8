// Queues: the four full-queue behaviours, rendezvous, waiting receivers,
// FIFO order of waiting senders and receivers, timeouts and cancellation.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using QueueTest = CoreTest;

TEST_F(QueueTest, ReturnAtOnceWhenFullAndNothingConsumed) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, "one")), Status::kSuccess);
  Name so_port = port(kB);
  MessageIn m = msg(s, Disposition::kMoveSend, 2, "two");
  m.local = so_port;
  m.local_disposition = Disposition::kMakeSendOnce;
  const std::string before = snapshot(kB);
  EXPECT_EQ(send(kB, m), Status::kSendTimedOut);
  EXPECT_EQ(snapshot(kB), before);
  EXPECT_EQ(std::string(m.body.begin(), m.body.end()), "two");  // the caller keeps its message
  EXPECT_EQ(status_of(kA, r).msgcount, 1u);
}

TEST_F(QueueTest, WaitingSendersEnterInTheOrderTheyStartedWaiting) {
  auto [r, s] = port_with_sender(kA, kB);
  Name s_c = send_right(kA, r, kC);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), wait(), 10), Status::kSendInProgress);
  EXPECT_EQ(send(kC, msg(s_c, Disposition::kCopySend, 3), wait(), 11), Status::kSendInProgress);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 4), wait(), 12), Status::kSendInProgress);
  EXPECT_TRUE(fx.completions.empty());
  for (int expect : {1, 2, 3, 4}) {
    Received m = recv(kA, r);
    ASSERT_EQ(m.status, Status::kSuccess);
    EXPECT_EQ(m.msg.id, expect);
    if (expect < 4) {
      // Taking one lets exactly the next waiting sender in.
      auto c = completion(9 + expect);
      ASSERT_TRUE(c.has_value()) << expect;
      EXPECT_EQ(c->status, Status::kSuccess);
      EXPECT_EQ(c->task, expect == 2 ? kC : kB);
    }
  }
  EXPECT_TRUE(fx.completions.empty());
}

TEST_F(QueueTest, WaitWithTimeoutFailsAndHandsTheRightsBack) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s)), Status::kSuccess);
  const std::string before = snapshot(kB);
  MessageIn m = msg(s, Disposition::kMoveSend, 7);
  m.descriptors.push_back(PortDescIn{s2, Disposition::kMoveSend});
  SendOptions o;
  o.timeout_ms = 50;
  ASSERT_EQ(send(kB, m, o, 20), Status::kSendInProgress);
  // While it waits the rights are in the message.
  uint32_t t;
  EXPECT_EQ(core.type(kB, s2, &t), Status::kInvalidName);
  core.expire(20, fx);
  auto c = completion(20);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendTimedOut);
  // Back by the same names.
  EXPECT_EQ(snapshot(kB), before);
  EXPECT_EQ(status_of(kA, r).msgcount, 1u);
  EXPECT_EQ(core.impl().counters().messages_refused, 1u);
}

TEST_F(QueueTest, CancelInterruptsAWaitingSend) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  const std::string before = snapshot(kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kMoveSend), wait(), 5), Status::kSendInProgress);
  core.cancel(5, fx);
  auto c = completion(5);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendInterrupted);
  EXPECT_EQ(snapshot(kB), before);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
  core.cancel(5, fx);  // unknown now: ignored
  EXPECT_TRUE(fx.completions.empty());
}

TEST_F(QueueTest, RendezvousCompletesOnlyWhenAReceiverTakesIt) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSendTimedOut);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), wait(), 30), Status::kSendInProgress);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3), wait(), 31), Status::kSendInProgress);
  EXPECT_TRUE(fx.completions.empty());
  EXPECT_EQ(status_of(kA, r).msgcount, 2u);  // visible to receivers, senders still waiting
  Received m = recv(kA, r);
  EXPECT_EQ(m.msg.id, 2);
  auto c = completion(30);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSuccess);
  EXPECT_FALSE(completion(31).has_value());
  EXPECT_EQ(recv(kA, r).msg.id, 3);
  EXPECT_TRUE(completion(31).has_value());
}

TEST_F(QueueTest, RendezvousWithAWaitingReceiverGoesStraightThrough) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  ASSERT_EQ(recv_park(kA, r, 40), Status::kRcvInProgress);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 9, "hi")), Status::kSuccess);
  auto c = completion(40);
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(c->message.has_value());
  EXPECT_EQ(c->message->id, 9);
  EXPECT_EQ(body_of(*c->message), "hi");
  EXPECT_EQ(c->message->local, r);
}

TEST_F(QueueTest, SendOnceRepliesAlwaysFit) {
  Name r = port();
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  Name so = kNameNull;
  RightType t;
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  Name so_b = give(kA, so, Disposition::kMoveSendOnce, kB);
  EXPECT_EQ(send(kB, msg(so_b, Disposition::kMoveSendOnce, 5)), Status::kSuccess);
  Received m = recv(kA, r);
  EXPECT_EQ(m.msg.id, 5);
  EXPECT_EQ(m.msg.local_type, RightType::kSendOnce);
  EXPECT_EQ(status_of(kA, r).sorights, 0u);
}

TEST_F(QueueTest, ReceiveReturnsAtOnceWaitsAndTimesOut) {
  Name r = port();
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
  ASSERT_EQ(recv_park(kA, r, 50), Status::kRcvInProgress);
  core.expire(50, fx);
  auto c = completion(50);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kRcvTimedOut);
  EXPECT_FALSE(c->message.has_value());
  EXPECT_EQ(recv(kA, 0x31337).status, Status::kRcvInvalidName);
  auto [r2, s2] = port_with_sender(kB, kA);
  EXPECT_EQ(recv(kA, s2).status, Status::kRcvInvalidName);
}

TEST_F(QueueTest, SeveralWaitingReceiversEachGetADifferentMessageInOrder) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(recv_park(kA, r, 60), Status::kRcvInProgress);
  ASSERT_EQ(recv_park(kA, r, 61), Status::kRcvInProgress);
  ASSERT_EQ(recv_park(kA, r, 62), Status::kRcvInProgress);
  EXPECT_EQ(recv_park(kA, r, 62), Status::kInvalidArgument);  // token in use
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, i)), Status::kSuccess);
  for (int i = 1; i <= 3; ++i) {
    auto c = completion(59 + i);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->message->id, i);
  }
  EXPECT_EQ(status_of(kA, r).msgcount, 0u);
}

TEST_F(QueueTest, PortDeathWakesBlockedSenderAndWaitingReceiver) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  MessageIn m = msg(s, Disposition::kCopySend, 1);
  m.descriptors.push_back(PortDescIn{s2, Disposition::kMoveSend});
  const std::string before = snapshot(kB);
  ASSERT_EQ(send(kB, m, wait(), 80), Status::kSendInProgress);
  Name r3 = port(kA);
  ASSERT_EQ(recv_park(kA, r3, 81), Status::kRcvInProgress);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  auto c = completion(80);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSendInvalidDest);
  // The moved send right came back; the destination is a dead name now.
  EXPECT_EQ(type_of(kB, s2), kTypeSend);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
  ASSERT_EQ(core.mod_refs(kA, r3, Right::kReceive, -1, fx), Status::kSuccess);
  auto c2 = completion(81);
  ASSERT_TRUE(c2.has_value());
  EXPECT_EQ(c2->status, Status::kRcvPortDied);
  // Everything else is as before the send.
  ASSERT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r3, Right::kReceive, 0, fx), Status::kInvalidName);
  (void)before;
}

TEST_F(QueueTest, LoweringAndRaisingTheLimitAdmitsWaitingSenders) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), wait(), 90), Status::kSendInProgress);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3), wait(), 91), Status::kSendInProgress);
  ASSERT_EQ(core.set_qlimit(kA, r, 3, fx), Status::kSuccess);
  EXPECT_TRUE(completion(90).has_value());
  EXPECT_TRUE(completion(91).has_value());
  EXPECT_EQ(status_of(kA, r).msgcount, 3u);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(recv(kA, r).msg.id, i);
}

TEST_F(QueueTest, MessagesFromOneSenderArriveInOrder) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 2, fx), Status::kSuccess);
  int sent = 0, received = 0;
  WaitToken token = 1000;
  for (int round = 0; round < 50; ++round) {
    Status st = send(kB, msg(s, Disposition::kCopySend, sent), wait(), ++token);
    ASSERT_TRUE(st == Status::kSuccess || st == Status::kSendInProgress);
    ++sent;
    if (round % 3 == 2) {
      Received m = recv(kA, r);
      ASSERT_EQ(m.status, Status::kSuccess);
      EXPECT_EQ(m.msg.id, received++);
    }
  }
  while (received < sent) {
    Received m = recv(kA, r);
    ASSERT_EQ(m.status, Status::kSuccess);
    EXPECT_EQ(m.msg.id, received++);
  }
}

TEST_F(QueueTest, ExemptMessagesTakeNoRoomFromCountedOnes) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  for (int i = 1; i <= 3; ++i) {
    Name so = kNameNull;
    RightType t;
    ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
    Name so_b = give(kA, so, Disposition::kMoveSendOnce, kB);
    EXPECT_EQ(send(kB, msg(so_b, Disposition::kMoveSendOnce, i)), Status::kSuccess);
  }
  EXPECT_EQ(status_of(kA, r).msgcount, 3u);
  // Three replies queued, and the one counted slot is still free.
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 4)), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 5)), Status::kSendTimedOut);
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(recv(kA, r).msg.id, i);
  EXPECT_EQ(recv(kA, r).status, Status::kRcvTimedOut);
}

TEST_F(QueueTest, BlockedSendersFollowTheMovedReceiveRight) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), wait(), 40), Status::kSendInProgress);
  Name moved = give(kA, r, Disposition::kMoveReceive, kC);
  EXPECT_FALSE(completion(40).has_value());
  EXPECT_EQ(status_of(kC, moved).qlimit, 1u);
  EXPECT_EQ(recv(kC, moved).msg.id, 1);
  auto c = completion(40);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSuccess);
  Received second = recv(kC, moved);
  EXPECT_EQ(second.msg.id, 2);
  EXPECT_EQ(second.msg.trailer.seqno, 1u);
}

}  // namespace
}  // namespace portd::ipc::testing
