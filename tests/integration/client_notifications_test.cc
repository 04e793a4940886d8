// Notifications through the real daemon, each caused by another process and
// most by its death (SIGKILL: the connection just drops): dead-name (72),
// port-deleted (65), no-senders (70) with its make-send count and sync rule,
// send-once (71) and port-destroyed (69). Each test checks the exact id,
// body bytes, the port it arrived on and that it came from the daemon.
// (message-accepted, 66, is in client_cache_test.cc.)
#include <gtest/gtest.h>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

class ClientNotificationsTest : public CrossProcessTest {
 protected:
  // Receives the next message on `port` and checks that it is a daemon
  // notification with `id`, arrived through a send-once right.
  ReceivedMessage notification(const ReceiveRight& port, Notification id) {
    auto n = port.receive(wait_up_to());
    EXPECT_EQ(n.status(), Status::kSuccess);
    if (!n) return {};
    EXPECT_EQ(n->id, static_cast<int32_t>(id));
    EXPECT_EQ(n->local, port.name());
    EXPECT_EQ(n->local_type, RightType::kSendOnce);
    EXPECT_EQ(n->remote, kNameNull);
    EXPECT_EQ(n->trailer.sender_task, 0u);
    EXPECT_EQ(n->trailer.pid, 0u);
    return std::move(*n);
  }

  // The NDR record followed by `field`, as Mach lays the body out.
  static std::vector<std::byte> body_with(uint32_t field) {
    auto body = ndr_record();
    const auto* p = reinterpret_cast<const std::byte*>(&field);
    body.insert(body.end(), p, p + sizeof field);
    return body;
  }

  Result<Name> request(Name name, Notification variant, uint32_t sync, const ReceiveRight& notify) {
    return task_->request_notification(name, variant, sync, notify.name(),
                                       Disposition::kMakeSendOnce);
  }

  // A port the agent receives on, and our send right to it: when the agent
  // dies the port dies with it, which a dead-name request on the send right
  // tells us. Used to know the daemon has finished with an agent's death.
  SendRight give_port_to(AgentHandle& agent) {
    ReceiveRight port = make_port();
    auto send = port.make_send();
    EXPECT_TRUE(send.ok());
    OutgoingMessage give;
    give.add_port(std::move(port));
    EXPECT_EQ(agent.call(agent::kTake, give).status, Status::kSuccess);
    return send.ok() ? std::move(*send) : SendRight();
  }
};

TEST_F(ClientNotificationsTest, DeadNameWhenTheOwnerIsKilled) {
  AgentHandle agent;
  auto child = spawn_agent(&agent);
  const Name watched = agent.inbox().name();
  ReceiveRight notify = make_port();
  auto previous = request(watched, Notification::kDeadName, 0, notify);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  EXPECT_EQ(*previous, kNameNull);
  EXPECT_EQ(*task_->type(watched), kTypeSend | kTypeDnRequest);

  ASSERT_TRUE(kill_child(*child));
  ReceivedMessage n = notification(notify, Notification::kDeadName);
  EXPECT_EQ(n.body, body_with(watched));
  EXPECT_TRUE(n.descriptors.empty());
  EXPECT_EQ(*task_->type(watched), kTypeDeadName);
  // One reference for our send right, one the notification brought.
  EXPECT_EQ(*task_->get_refs(watched, Right::kDeadName), 2u);
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(task_->deallocate(watched), Status::kSuccess);
}

TEST_F(ClientNotificationsTest, PortDeletedWhenTheWatchedNameGoesFirst) {
  AgentHandle agent;
  auto child = spawn_agent(&agent);
  SendRight detector = give_port_to(agent);
  ReceiveRight notify = make_port();
  auto watched = agent.inbox().copy();
  ASSERT_TRUE(watched.ok());
  const Name name = watched->name();
  ASSERT_TRUE(request(name, Notification::kDeadName, 0, notify).ok());
  ASSERT_TRUE(request(detector.name(), Notification::kDeadName, 0, notify).ok());

  // Our last references to the agent's inbox go: the name is deleted.
  watched->reset();
  agent = AgentHandle();
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
  ReceivedMessage n = notification(notify, Notification::kPortDeleted);
  EXPECT_EQ(n.body, body_with(name));

  // The agent dies: only the detector's request is left to fire.
  ASSERT_TRUE(kill_child(*child));
  ReceivedMessage dead = notification(notify, Notification::kDeadName);
  EXPECT_EQ(dead.body, body_with(detector.name()));
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
}

TEST_F(ClientNotificationsTest, PortDeletedWhenTheRequesterIsKilled) {
  // The agent watches a port of ours, and its notifications come to us.
  ReceiveRight watched = make_port();
  ReceiveRight notify = make_port();
  OutgoingMessage rights;
  rights.add_port(watched, Disposition::kMakeSend).add_port(notify, Disposition::kMakeSendOnce);
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);
  auto armed = agent.request(agent::kWatch, 0, 0);
  ASSERT_EQ(armed.status, Status::kSuccess);
  const auto agents_name = static_cast<Name>(armed.b);
  EXPECT_TRUE(watched.status()->srights);
  EXPECT_EQ(notify.status()->sorights, 1u);

  ASSERT_TRUE(kill_child(*child));
  ReceivedMessage n = notification(notify, Notification::kPortDeleted);
  EXPECT_EQ(n.body, body_with(agents_name));  // the name in the dead task's space, as Mach sends
  EXPECT_FALSE(watched.status()->srights);
  EXPECT_EQ(notify.status()->sorights, 0u);
}

TEST_F(ClientNotificationsTest, NoSendersCarriesTheMakeSendCountAndKeepsTheSyncRule) {
  ReceiveRight port = make_port();
  ReceiveRight notify = make_port();
  OutgoingMessage one_right, another_right;
  one_right.add_port(port, Disposition::kMakeSend);
  another_right.add_port(port, Disposition::kMakeSend);
  AgentHandle first, second;
  auto c1 = spawn_agent(&first, &one_right);
  auto c2 = spawn_agent(&second, &another_right);
  SendRight first_alive = give_port_to(first);
  EXPECT_EQ(port.status()->mscount, 2u);
  ASSERT_EQ(request(port.name(), Notification::kNoSenders, 1, notify).status(), Status::kSuccess);
  ASSERT_TRUE(request(first_alive.name(), Notification::kDeadName, 0, notify).ok());

  // The first holder leaves normally: one sender is left, nothing fires.
  first.exit();
  EXPECT_EQ(c1->wait(), 0);
  ReceivedMessage gone = notification(notify, Notification::kDeadName);
  EXPECT_EQ(gone.body, body_with(first_alive.name()));
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_TRUE(port.status()->srights);

  // The second is killed: no senders, and the count of send rights made.
  ASSERT_TRUE(kill_child(*c2));
  ReceivedMessage n = notification(notify, Notification::kNoSenders);
  EXPECT_EQ(n.body, body_with(2));
  EXPECT_FALSE(port.status()->nsrequest);

  // Sync: with no senders and a make-send count of 2, a request with sync 3
  // waits for a third send right to come and go...
  ASSERT_EQ(request(port.name(), Notification::kNoSenders, 3, notify).status(), Status::kSuccess);
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  OutgoingMessage third_right;
  third_right.add_port(port, Disposition::kMakeSend);
  AgentHandle third;
  auto c3 = spawn_agent(&third, &third_right);
  third.exit();
  EXPECT_EQ(c3->wait(), 0);
  EXPECT_EQ(notification(notify, Notification::kNoSenders).body, body_with(3));
  // ...while sync 3 is met at once now.
  ASSERT_EQ(request(port.name(), Notification::kNoSenders, 3, notify).status(), Status::kSuccess);
  auto at_once_n = notify.receive(at_once());
  ASSERT_EQ(at_once_n.status(), Status::kSuccess);
  EXPECT_EQ(at_once_n->id, static_cast<int32_t>(Notification::kNoSenders));
  EXPECT_EQ(at_once_n->body, body_with(3));
}

TEST_F(ClientNotificationsTest, SendOnceWhenItsHolderIsKilledOrItsMessageDies) {
  ReceiveRight port = make_port();
  ReceiveRight reply = make_port();
  ReceiveRight queue = make_port();
  auto to_queue = queue.make_send();
  ASSERT_TRUE(to_queue.ok());
  OutgoingMessage rights;
  rights.add_port(port, Disposition::kMakeSendOnce).add_port(std::move(queue));
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);
  EXPECT_EQ(port.status()->sorights, 1u);
  // A request with a send-once reply right, queued on a port of the agent's
  // that the agent never reads.
  OutgoingMessage request;
  request.set_remote(*to_queue).set_local(reply, Disposition::kMakeSendOnce).set_id(5);
  ASSERT_EQ(task_->send(request), Status::kSuccess);
  EXPECT_EQ(reply.status()->sorights, 1u);

  ASSERT_TRUE(kill_child(*child));
  // The right the agent held, and the one in the destroyed request.
  for (const ReceiveRight* p : {&port, &reply}) {
    ReceivedMessage n = notification(*p, Notification::kSendOnce);
    EXPECT_EQ(n.body, ndr_record());  // nothing after the NDR record
    EXPECT_TRUE(n.descriptors.empty());
    EXPECT_EQ(p->status()->sorights, 0u);
    EXPECT_EQ(p->receive(at_once()).status(), Status::kRcvTimedOut);
  }
  EXPECT_EQ(*task_->type(to_queue->name()), kTypeDeadName);
}

TEST_F(ClientNotificationsTest, PortDestroyedHandsTheReceiveRightBackWhenTheOwnerIsKilled) {
  // Our port goes to the agent with three messages queued; the agent takes
  // one, names our port `backup` as its backup, and is killed.
  ReceiveRight port = make_port();
  auto send = port.make_send();
  ASSERT_TRUE(send.ok());
  for (int32_t id = 1; id <= 3; ++id) ASSERT_EQ(send_text(*task_, *send, id), Status::kSuccess);
  ASSERT_EQ(port.set_qlimit(7), Status::kSuccess);
  ReceiveRight backup = make_port();
  OutgoingMessage rights;
  rights.add_port(std::move(port)).add_port(backup, Disposition::kMakeSendOnce);
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);
  auto first = agent.receive(0, 0);
  ASSERT_EQ(first.status, Status::kSuccess);
  EXPECT_EQ(first.a, 1);
  EXPECT_EQ(first.b, 0);  // seqno
  EXPECT_EQ(first.c, ::getpid());
  ASSERT_EQ(agent.request(agent::kBackup, 0, 0).status, Status::kSuccess);

  ASSERT_TRUE(kill_child(*child));
  ReceivedMessage n = notification(backup, Notification::kPortDestroyed);
  EXPECT_TRUE(n.body.empty());
  ASSERT_EQ(n.descriptors.size(), 1u);
  const auto right = std::get<ReceivedPort>(n.descriptors[0]);
  EXPECT_EQ(right.type, RightType::kReceive);
  // It joins the name of the send right we kept.
  EXPECT_EQ(right.name, send->name());
  ReceiveRight back = ReceiveRight::adopt(task_, right.name);
  EXPECT_EQ(*task_->type(right.name), kTypeReceive | kTypeSend);
  auto status = back.status();
  EXPECT_EQ(status->msgcount, 2u);
  EXPECT_EQ(status->qlimit, 7u);
  EXPECT_EQ(status->mscount, 1u);
  EXPECT_FALSE(status->pdrequest);  // fired once, gone
  for (uint64_t seqno : {1u, 2u}) {
    auto m = back.receive(at_once());
    ASSERT_EQ(m.status(), Status::kSuccess);
    EXPECT_EQ(m->id, static_cast<int32_t>(seqno + 1));
    EXPECT_EQ(m->trailer.seqno, seqno);
  }
  // The port never died: our send right still reaches it.
  ASSERT_EQ(send_text(*task_, *send, 4), Status::kSuccess);
  EXPECT_EQ(back.receive(at_once())->id, 4);
}

}  // namespace
}  // namespace portd::testing
