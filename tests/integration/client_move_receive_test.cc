// Moving a receive right (MOVE_RECEIVE) to another process through the real
// daemon: the new owner receives on it, with the queue, sequence number,
// queue limit, make-send count and senders carried over; a thread of the old
// owner blocked on it wakes with MACH_RCV_PORT_CHANGED; a blocked sender in a
// third process follows the port; and a receive right cannot be sent into
// its own queue, directly or through a chain of rights in transit.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

using ClientMoveReceiveTest = CrossProcessTest;

TEST_F(ClientMoveReceiveTest, TheNewOwnerReceivesWithQueueSeqnoAndSendersCarriedOver) {
  ReceiveRight port = make_port();
  ASSERT_EQ(port.set_qlimit(3), Status::kSuccess);
  const Name old_name = port.name();
  OutgoingMessage send_right;
  send_right.add_port(port, Disposition::kMakeSend);
  AgentHandle sender;
  auto s = spawn_agent(&sender, &send_right);
  ASSERT_EQ(sender.send(0, 1), Status::kSuccess);
  ASSERT_EQ(sender.send(0, 2), Status::kSuccess);
  auto first = port.receive(at_once());
  ASSERT_EQ(first.status(), Status::kSuccess);
  EXPECT_EQ(first->id, 1);
  EXPECT_EQ(first->trailer.seqno, 0u);

  OutgoingMessage give;
  give.add_port(std::move(port));
  AgentHandle receiver;
  auto r = spawn_agent(&receiver, &give);
  EXPECT_EQ(task_->type(old_name).status(), Status::kInvalidName);

  auto status = receiver.status(0);
  ASSERT_EQ(status.status, Status::kSuccess);
  EXPECT_EQ(status.a, 3);  // qlimit
  EXPECT_EQ(status.b, 1);  // make-send count
  EXPECT_EQ(status.c, 1);  // the message still queued
  EXPECT_EQ(status.d, 1);  // the sender's right still counts
  auto second = receiver.receive(0, 0);
  ASSERT_EQ(second.status, Status::kSuccess);
  EXPECT_EQ(second.a, 2);
  EXPECT_EQ(second.b, 1);  // seqno goes on
  EXPECT_EQ(second.c, s->pid());
  EXPECT_EQ(second.d, 1);  // local is the new owner's name
  // The sender's right reaches the new owner.
  ASSERT_EQ(sender.send(0, 3), Status::kSuccess);
  auto third = receiver.receive(0, 0);
  ASSERT_EQ(third.status, Status::kSuccess);
  EXPECT_EQ(third.a, 3);
  EXPECT_EQ(third.b, 2);

  sender.exit();
  receiver.exit();
  EXPECT_EQ(s->wait(), 0);
  EXPECT_EQ(r->wait(), 0);
}

TEST_F(ClientMoveReceiveTest, AThreadBlockedOnTheOldNameWakesWithPortChanged) {
  AgentHandle receiver;
  auto r = spawn_agent(&receiver);
  // Should the move overtake the receive (it had not started waiting), the
  // receive finds no such name: try again with another port.
  Status woken = Status::kFailure;
  for (int attempt = 0; attempt < 5; ++attempt) {
    ReceiveRight port = make_port();
    const Name name = port.name();
    std::thread blocked([&] { woken = task_->receive(name, wait_up_to()).status(); });
    std::this_thread::sleep_for(50ms);
    OutgoingMessage give;
    give.add_port(std::move(port));
    EXPECT_EQ(receiver.call(agent::kTake, give).status, Status::kSuccess);
    blocked.join();
    if (woken != Status::kRcvInvalidName) break;
  }
  EXPECT_EQ(woken, Status::kRcvPortChanged);
  receiver.exit();
  EXPECT_EQ(r->wait(), 0);
}

TEST_F(ClientMoveReceiveTest, ABlockedSenderInAnotherProcessFollowsTheMovedPort) {
  ReceiveRight port = make_port();
  ASSERT_EQ(port.set_qlimit(1), Status::kSuccess);
  OutgoingMessage send_right;
  send_right.add_port(port, Disposition::kMakeSend);
  AgentHandle sender;
  auto s = spawn_agent(&sender, &send_right);
  // Both agents are forked before any other thread runs here: a child forked
  // while another thread allocates can hang on that thread's allocator lock
  // (GCC 12's ASan runtime takes no such lock around fork).
  AgentHandle receiver;
  auto r = spawn_agent(&receiver);
  ASSERT_EQ(sender.send(0, 1), Status::kSuccess);
  Status blocked = Status::kFailure;
  std::thread waits([&] { blocked = sender.send(0, 2, -1); });  // waits for room

  OutgoingMessage give;
  give.add_port(std::move(port));
  EXPECT_EQ(receiver.call(agent::kTake, give).status, Status::kSuccess);
  EXPECT_EQ(receiver.receive(0, 0).a, 1);
  auto second = receiver.receive(0, static_cast<int64_t>(kWait.count()));
  waits.join();
  EXPECT_EQ(blocked, Status::kSuccess);
  EXPECT_EQ(second.status, Status::kSuccess);
  EXPECT_EQ(second.a, 2);
  EXPECT_EQ(second.c, s->pid());
  sender.exit();
  receiver.exit();
  EXPECT_EQ(s->wait(), 0);
  EXPECT_EQ(r->wait(), 0);
}

TEST_F(ClientMoveReceiveTest, AReceiveRightCannotBeSentIntoItsOwnQueue) {
  // Directly: nothing is consumed, the message still holds the handle.
  ReceiveRight port = make_port();
  const Name name = port.name();
  OutgoingMessage into_itself;
  into_itself.set_remote(port, Disposition::kMakeSend).add_port(std::move(port));
  EXPECT_EQ(task_->send(into_itself), Status::kSendInvalidRight);
  EXPECT_EQ(into_itself.held_rights(), 1u);
  EXPECT_EQ(*task_->type(name), kTypeReceive);
  EXPECT_EQ(task_->get_attributes(name)->mscount, 0u);

  // Through a chain across processes: our port P travels in a message queued
  // on the agent's port Q; the agent then tries to send Q's receive right to
  // P, which would put Q in its own queue.
  ReceiveRight q = make_port();
  auto to_q = q.make_send();
  ASSERT_TRUE(to_q.ok());
  ReceiveRight p = make_port();
  OutgoingMessage rights;
  rights.add_port(std::move(q)).add_port(p, Disposition::kMakeSend);
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);
  OutgoingMessage carry_p;
  carry_p.set_remote(*to_q).set_id(9).add_port(std::move(p));
  ASSERT_EQ(task_->send(carry_p), Status::kSuccess);
  auto refused = agent.give_receive(0, 0);
  EXPECT_EQ(refused.status, Status::kSendInvalidRight);
  EXPECT_EQ(refused.a, kTypeReceive);  // Q is still the agent's
  // Q's queue still has P, as it was.
  auto kept = agent.status(0);
  EXPECT_EQ(kept.c, 1);
  agent.exit();
  EXPECT_EQ(child->wait(), 0);
}

}  // namespace
}  // namespace portd::testing
