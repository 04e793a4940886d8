// Canceller: another thread gives up calls blocked in the real daemon (the
// wire's cancel). A blocked receive ends with MACH_RCV_INTERRUPTED, a send
// waiting for room with MACH_SEND_INTERRUPTED and its message untouched, a
// send-then-receive in its receive phase with MACH_RCV_INTERRUPTED and its
// message consumed; one canceller stops many calls and stays cancelled;
// answered calls keep their answers.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

using ClientCancelTest = CrossProcessTest;

ReceiveOptions forever_with(const Canceller& c) {
  ReceiveOptions o;
  o.cancel = c;
  return o;
}

TEST_F(ClientCancelTest, CancelWakesAReceiveBlockedForever) {
  ReceiveRight port = make_port();
  Canceller stop = Canceller::create();
  EXPECT_TRUE(static_cast<bool>(stop));
  EXPECT_FALSE(stop.cancelled());
  Status got = Status::kFailure;
  std::thread receiver([&] { got = port.receive(forever_with(stop)).status(); });
  std::this_thread::sleep_for(50ms);  // most likely parked by now; either way the same outcome
  stop.cancel();
  receiver.join();
  EXPECT_EQ(got, Status::kRcvInterrupted);
  EXPECT_TRUE(stop.cancelled());
  // The port is as it was: a message sent now is there for the next receive.
  ASSERT_EQ(send_text(*task_, *port.make_send(), 4), Status::kSuccess);
  EXPECT_EQ(port.receive(at_once())->id, 4);
}

TEST_F(ClientCancelTest, CancelGivesUpABlockedSendAndLeavesTheMessage) {
  ReceiveRight port = make_port();
  ASSERT_EQ(port.set_qlimit(1), Status::kSuccess);
  auto to_port = port.make_send();
  ASSERT_TRUE(to_port.ok());
  ASSERT_EQ(send_text(*task_, *to_port, 1), Status::kSuccess);
  ReceiveRight carried = make_port();
  auto carried_send = carried.make_send();
  ASSERT_TRUE(carried_send.ok());

  OutgoingMessage m;
  m.set_remote(*to_port).set_id(2).add_port(std::move(*carried_send));
  Canceller stop = Canceller::create();
  SendOptions wait_for_room;
  wait_for_room.cancel = stop;
  Status sent = Status::kFailure;
  std::thread sender([&] { sent = task_->send(m, wait_for_room); });
  std::this_thread::sleep_for(50ms);
  stop.cancel();
  sender.join();
  EXPECT_EQ(sent, Status::kSendInterrupted);
  EXPECT_EQ(m.remote(), to_port->name());
  EXPECT_EQ(m.held_rights(), 1u);
  EXPECT_EQ(*task_->get_refs(carried.name(), Right::kSend), 1u);  // back where it was
  EXPECT_EQ(port.status()->msgcount, 1u);
  // The same message goes once there is room (a fresh call, no canceller).
  ASSERT_EQ(port.receive(at_once())->id, 1);
  EXPECT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(port.receive(at_once())->id, 2);
}

TEST_F(ClientCancelTest, OneCancellerStopsManyCallsAndStaysCancelled) {
  std::vector<ReceiveRight> ports;
  for (int i = 0; i < 3; ++i) ports.push_back(make_port());
  Canceller stop = Canceller::create();
  const Canceller copy = stop;  // copies share the state
  Status got[3] = {Status::kFailure, Status::kFailure, Status::kFailure};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] { got[i] = ports[i].receive(forever_with(stop)).status(); });
  std::this_thread::sleep_for(50ms);
  copy.cancel();
  for (auto& t : threads) t.join();
  for (Status s : got) EXPECT_EQ(s, Status::kRcvInterrupted);
  EXPECT_TRUE(stop.cancelled());

  // For good: a later call ends at once, before the daemon sees it; the
  // message queued there stays.
  ASSERT_EQ(send_text(*task_, *ports[0].make_send(), 7), Status::kSuccess);
  EXPECT_EQ(ports[0].receive(forever_with(stop)).status(), Status::kRcvInterrupted);
  EXPECT_EQ(ports[0].status()->msgcount, 1u);
  OutgoingMessage m;
  m.set_remote(ports[1], Disposition::kMakeSend).set_id(8);
  SendOptions with_stop;
  with_stop.cancel = stop;
  EXPECT_EQ(task_->send(m, with_stop), Status::kSendInterrupted);
  EXPECT_EQ(m.remote(), ports[1].name());
  EXPECT_EQ(ports[1].status()->msgcount, 0u);
}

TEST_F(ClientCancelTest, AnsweredCallsKeepTheirAnswers) {
  ReceiveRight port = make_port();
  ASSERT_EQ(send_text(*task_, *port.make_send(), 3, "there"), Status::kSuccess);
  Canceller stop = Canceller::create();
  auto got = port.receive(forever_with(stop));
  ASSERT_EQ(got.status(), Status::kSuccess);
  EXPECT_EQ(got->body_text(), "there");
  stop.cancel();  // nothing in flight: no effect on anything
  EXPECT_EQ(got->id, 3);
  EXPECT_EQ(port.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_FALSE(Canceller().cancelled());  // the empty one
  Canceller().cancel();                   // is harmless
}

TEST_F(ClientCancelTest, SendReceiveCancelledWhileWaitingForTheReply) {
  ReceiveRight server = make_port();  // nobody answers
  ReceiveRight reply = make_port();
  Canceller stop = Canceller::create();
  ReceiveOptions wait_reply;
  wait_reply.cancel = stop;
  OutgoingMessage request;
  request.set_remote(server, Disposition::kMakeSend).set_id(5);
  Status got = Status::kFailure;
  std::thread caller([&] { got = task_->rpc(request, reply, {}, wait_reply).status(); });
  // Once the request has arrived the call is in its receive phase.
  auto delivered = server.receive(wait_up_to());
  ASSERT_EQ(delivered.status(), Status::kSuccess);
  EXPECT_EQ(delivered->id, 5);
  EXPECT_EQ(delivered->remote_type, RightType::kSendOnce);
  stop.cancel();
  caller.join();
  EXPECT_EQ(got, Status::kRcvInterrupted);
  EXPECT_EQ(request.remote(), kNameNull);  // the send happened: consumed
  // The reply right still works: an answer now waits on the reply port.
  OutgoingMessage answer;
  answer.set_remote(SendOnceRight::adopt(task_, delivered->remote)).set_id(6);
  ASSERT_EQ(task_->send(answer), Status::kSuccess);
  EXPECT_EQ(reply.receive(at_once())->id, 6);
}

}  // namespace
}  // namespace portd::testing
