// Full queues across processes: cache-on-full (DESIGN 2.1) through the real
// daemon, with the destination in another process (PORTD_SEND_WILL_NOTIFY,
// message-accepted naming the destination, one cached message per sending
// thread, wait-then-cache, the destination dying first), and the messages
// that never count against a queue limit (send-once replies, notifications).
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

using Clock = std::chrono::steady_clock;

class ClientCacheTest : public CrossProcessTest {
 protected:
  // A port with queue limit `qlimit` handed to a new agent (as its
  // receives[0]); we keep a send right to it.
  std::unique_ptr<Child> agent_with_port(AgentHandle* agent, SendRight* to_port,
                                         uint32_t qlimit = 1) {
    ReceiveRight port = make_port();
    EXPECT_EQ(port.set_qlimit(qlimit), Status::kSuccess);
    auto send = port.make_send();
    EXPECT_TRUE(send.ok());
    if (send) *to_port = std::move(*send);
    OutgoingMessage give;
    give.add_port(std::move(port));
    return spawn_agent(agent, &give);
  }

  static std::vector<std::byte> body_with(uint32_t field) {
    auto body = ndr_record();
    const auto* p = reinterpret_cast<const std::byte*>(&field);
    body.insert(body.end(), p, p + sizeof field);
    return body;
  }

  // The next message on `port` must be the daemon's notification `id`.
  void expect_notification(const ReceiveRight& port, Notification id,
                           const std::vector<std::byte>& body) {
    auto n = port.receive(wait_up_to());
    ASSERT_EQ(n.status(), Status::kSuccess);
    EXPECT_EQ(n->id, static_cast<int32_t>(id));
    EXPECT_EQ(n->trailer.sender_task, 0u);
    EXPECT_EQ(n->local_type, RightType::kSendOnce);
    EXPECT_EQ(n->body, body);
  }
};

TEST_F(ClientCacheTest, CachedSendIsAcceptedLaterAndMessageAcceptedNamesTheDestination) {
  AgentHandle agent;
  SendRight dest;
  auto child = agent_with_port(&agent, &dest);
  ReceiveRight notify = make_port();
  ASSERT_EQ(send_text(*task_, dest, 1, "fills the queue"), Status::kSuccess);

  OutgoingMessage cached;
  cached.set_remote(dest).set_id(2).set_body("cached");
  EXPECT_EQ(task_->send(cached, cache_on_full(notify)), Status::kSendWillNotify);
  EXPECT_EQ(cached.remote(), kNameNull);  // consumed: the daemon holds it
  // This thread has a cached message pending: another is refused, and the
  // message (and anything it holds) stays ours.
  ReceiveRight carried = make_port();
  OutgoingMessage refused;
  refused.set_remote(dest).set_id(3).add_port(carried, Disposition::kMakeSend);
  EXPECT_EQ(task_->send(refused, cache_on_full(notify)), Status::kSendNotifyInProgress);
  EXPECT_EQ(refused.remote(), dest.name());
  EXPECT_EQ(carried.status()->mscount, 0u);
  // Another thread has its own allowance.
  Status other = Status::kFailure;
  std::thread([&] {
    OutgoingMessage m;
    m.set_remote(dest).set_id(4).set_body("other thread");
    other = task_->send(m, cache_on_full(notify));
  }).join();
  EXPECT_EQ(other, Status::kSendWillNotify);
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(notify.status()->sorights, 2u);  // one per cached message

  // The agent takes them one by one; each cached message entering the queue
  // sends message-accepted with our name for the destination.
  for (int32_t id : {1, 2, 4}) {
    auto got = agent.receive(0, 0);
    ASSERT_EQ(got.status, Status::kSuccess);
    EXPECT_EQ(got.a, id);
    EXPECT_EQ(got.c, ::getpid());
    if (id != 4) expect_notification(notify, Notification::kMsgAccepted, body_with(dest.name()));
  }
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(notify.status()->sorights, 0u);
  // The refused message was left intact: it goes now that there is room.
  EXPECT_EQ(task_->send(refused, cache_on_full(notify)), Status::kSuccess);
  EXPECT_EQ(carried.status()->mscount, 1u);
  agent.exit();
  EXPECT_EQ(child->wait(), 0);
}

TEST_F(ClientCacheTest, CacheWithATimeoutWaitsFirst) {
  AgentHandle agent;
  SendRight dest;
  auto child = agent_with_port(&agent, &dest);
  ReceiveRight notify = make_port();
  ASSERT_EQ(send_text(*task_, dest, 1), Status::kSuccess);

  // Nobody makes room: cached once the wait is over.
  const auto start = Clock::now();
  EXPECT_EQ(send_text(*task_, dest, 2, {}, cache_on_full(notify, 100ms)), Status::kSendWillNotify);
  EXPECT_GE(Clock::now() - start, 100ms);
  EXPECT_EQ(agent.receive(0, 0).a, 1);
  expect_notification(notify, Notification::kMsgAccepted, body_with(dest.name()));
  // The queue holds message 2 now. Room made during the wait: a plain
  // success, and no notification ever.
  Status waited = Status::kFailure;
  std::thread sender(
      [&] { waited = send_text(*task_, dest, 3, {}, cache_on_full(notify, kWait)); });
  auto got = agent.receive(0, static_cast<int64_t>(kWait.count()));
  sender.join();
  EXPECT_EQ(got.a, 2);
  EXPECT_EQ(waited, Status::kSuccess);
  EXPECT_EQ(agent.receive(0, 0).a, 3);
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(notify.status()->sorights, 0u);
  agent.exit();
  EXPECT_EQ(child->wait(), 0);
}

TEST_F(ClientCacheTest, DestinationDyingFirstDestroysTheMessageAndTheSenderHears) {
  AgentHandle agent;
  SendRight dest;
  auto child = agent_with_port(&agent, &dest);
  ReceiveRight notify = make_port();
  ASSERT_EQ(send_text(*task_, dest, 1), Status::kSuccess);
  // The cached message carries a send right to `carried`, whose no-senders
  // request tells us when the message has been destroyed.
  ReceiveRight carried = make_port();
  ReceiveRight carried_notify = make_port();
  OutgoingMessage cached;
  cached.set_remote(dest).set_id(2).add_port(carried, Disposition::kMakeSend);
  ASSERT_EQ(task_->send(cached, cache_on_full(notify)), Status::kSendWillNotify);
  ASSERT_TRUE(carried.request_no_senders(carried_notify, 1).ok());
  EXPECT_TRUE(carried.status()->srights);

  ASSERT_TRUE(kill_child(*child));
  // The unused notify right: a send-once notification, nothing after NDR.
  expect_notification(notify, Notification::kSendOnce, ndr_record());
  expect_notification(carried_notify, Notification::kNoSenders, body_with(1));
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(*task_->type(dest.name()), kTypeDeadName);
  EXPECT_EQ(notify.status()->sorights, 0u);

  // Nothing is pending for this thread any more: it may cache again.
  ReceiveRight full = make_port();
  ASSERT_EQ(full.set_qlimit(0), Status::kSuccess);
  OutgoingMessage again;
  again.set_remote(full, Disposition::kMakeSend).set_id(3);
  EXPECT_EQ(task_->send(again, cache_on_full(notify)), Status::kSendWillNotify);
}

TEST_F(ClientCacheTest, SendOnceRepliesAndNotificationsIgnoreTheQueueLimit) {
  ReceiveRight port = make_port();
  ASSERT_EQ(port.set_qlimit(1), Status::kSuccess);
  OutgoingMessage rights;
  rights.add_port(port, Disposition::kMakeSend);
  for (int i = 0; i < 3; ++i) rights.add_port(port, Disposition::kMakeSendOnce);
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);

  ASSERT_EQ(agent.send(0, 1, 0), Status::kSuccess);
  EXPECT_EQ(agent.send(0, 2, 0), Status::kSendTimedOut);  // full for ordinary messages
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(agent.reply(i, 10 + i), Status::kSuccess);
  EXPECT_EQ(port.status()->msgcount, 4u);
  EXPECT_EQ(agent.send(0, 3, 0), Status::kSendTimedOut);  // and still full

  // A notification into a full queue.
  EXPECT_EQ(port.status()->sorights, 3u);  // the replies' rights, used up on receipt
  auto previous = task_->request_notification(agent.inbox().name(), Notification::kDeadName, 0,
                                              port.name(), Disposition::kMakeSendOnce);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  const Name watched = agent.inbox().name();
  ASSERT_TRUE(kill_child(*child));
  // Nothing is received until the notification is in: five in a queue of 1.
  const auto deadline = Clock::now() + kWait;
  while (port.status()->msgcount < 5 && Clock::now() < deadline) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(port.status()->msgcount, 5u);
  for (int32_t id : {1, 10, 11, 12}) {
    auto m = port.receive(at_once());
    ASSERT_EQ(m.status(), Status::kSuccess);
    EXPECT_EQ(m->id, id);
    EXPECT_EQ(m->local_type, id == 1 ? RightType::kSend : RightType::kSendOnce);
  }
  expect_notification(port, Notification::kDeadName, body_with(watched));
}

}  // namespace
}  // namespace portd::testing
