// libportd's notification conveniences against the real daemon:
// parse_notification() for every kind, the rights it adopts, and the
// refusal of look-alikes a task sends; requests armed on handles
// (NotifyTarget from a port or a moved send-once right), the previous
// request's right handed back, cancels; cache_on_full().
#include <gtest/gtest.h>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

class ClientNotifyApiTest : public CrossProcessTest {
 protected:
  ReceivedNotification next_notification(const ReceiveRight& port) {
    auto m = port.receive(wait_up_to());
    EXPECT_EQ(m.status(), Status::kSuccess);
    if (!m) return {};
    auto n = parse_notification(task_, *m);
    EXPECT_TRUE(n.has_value()) << "id " << m->id;
    return n ? std::move(*n) : ReceivedNotification{};
  }
};

TEST_F(ClientNotifyApiTest, DeadNameOwnsTheExtraReferenceOfTheDeadName) {
  ReceiveRight port = make_port();
  ReceiveRight notify = make_port();
  auto send = port.make_send();
  ASSERT_TRUE(send.ok());
  auto previous = send->request_dead_name(notify);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  EXPECT_FALSE(static_cast<bool>(*previous));
  EXPECT_EQ(*task_->type(send->name()), kTypeSend | kTypeReceive | kTypeDnRequest);
  const Name name = send->name();
  port.reset();

  ReceivedNotification n = next_notification(notify);
  EXPECT_EQ(n.kind, Notification::kDeadName);
  EXPECT_EQ(n.name, name);
  EXPECT_EQ(n.port, notify.name());
  EXPECT_EQ(n.dead_name.name(), name);
  EXPECT_EQ(*task_->get_refs(name, Right::kDeadName), 2u);
  n.dead_name.reset();  // what Mach leaves to the receiver
  EXPECT_EQ(*task_->get_refs(name, Right::kDeadName), 1u);
  send->reset();
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
}

TEST_F(ClientNotifyApiTest, DeadNameOnAPortAlreadyDeadComesAtOnce) {
  ReceiveRight port = make_port();
  ReceiveRight notify = make_port();
  auto send = port.make_send();
  ASSERT_TRUE(send.ok());
  port.reset();
  ASSERT_EQ(send->request_dead_name(notify).status(), Status::kSuccess);
  auto m = notify.receive(at_once());  // sent before the request's answer
  ASSERT_EQ(m.status(), Status::kSuccess);
  auto n = parse_notification(task_, *m);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, Notification::kDeadName);
  EXPECT_EQ(n->name, send->name());
}

TEST_F(ClientNotifyApiTest, PortDeletedAndCancel) {
  ReceiveRight port = make_port();
  ReceiveRight notify = make_port();
  auto first = port.make_send_once();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->request_dead_name(notify).ok());
  // Re-arming hands the previous request's right back as a handle.
  auto previous = first->request_dead_name(notify);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  ASSERT_TRUE(static_cast<bool>(*previous));
  EXPECT_EQ(*task_->type(previous->name()), kTypeSendOnce);
  EXPECT_EQ(notify.status()->sorights, 2u);
  previous->reset();  // an unused send-once right: a send-once notification
  EXPECT_EQ(next_notification(notify).kind, Notification::kSendOnce);

  const Name name = first->name();
  first->reset();
  ReceivedNotification n = next_notification(notify);
  EXPECT_EQ(n.kind, Notification::kPortDeleted);
  EXPECT_EQ(n.name, name);
  EXPECT_FALSE(static_cast<bool>(n.dead_name));
  // The send-once right itself fired at `port` when it was dropped unused.
  EXPECT_EQ(next_notification(port).kind, Notification::kSendOnce);

  // cancel_dead_name gives the right back and nothing fires.
  auto second = port.make_send();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second->request_dead_name(notify).ok());
  auto cancelled = second->cancel_dead_name();
  ASSERT_EQ(cancelled.status(), Status::kSuccess);
  ASSERT_TRUE(static_cast<bool>(*cancelled));
  EXPECT_EQ(*task_->type(second->name()) & kTypeDnRequest, 0u);
  cancelled->release();  // keep it, unused: no send-once notification
  second->reset();
  port.reset();
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
}

TEST_F(ClientNotifyApiTest, NoSendersWithItsCountAndSync) {
  ReceiveRight port = make_port();
  ReceiveRight notify = make_port();
  {
    auto a = port.make_send();
    auto b = port.make_send();
    ASSERT_TRUE(a.ok() && b.ok());
    auto previous = port.request_no_senders(notify);
    ASSERT_EQ(previous.status(), Status::kSuccess);
    EXPECT_FALSE(static_cast<bool>(*previous));
    EXPECT_TRUE(port.status()->nsrequest);
  }
  ReceivedNotification n = next_notification(notify);
  EXPECT_EQ(n.kind, Notification::kNoSenders);
  EXPECT_EQ(n.mscount, 2u);
  EXPECT_EQ(n.name, kNameNull);
  // Sync 3 > 2: armed, not fired; cancel hands the right back.
  ASSERT_TRUE(port.request_no_senders(notify, 3).ok());
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  auto cancelled = port.cancel_no_senders();
  ASSERT_TRUE(cancelled.ok());
  EXPECT_TRUE(static_cast<bool>(*cancelled));
  EXPECT_FALSE(port.status()->nsrequest);
}

TEST_F(ClientNotifyApiTest, PortDestroyedGivesTheReceiveRightAsAHandle) {
  ReceiveRight backup = make_port();
  Name name;
  {
    ReceiveRight port = make_port();
    name = port.name();
    ASSERT_EQ(send_text(*task_, *port.make_send(), 5, "kept"), Status::kSuccess);
    auto previous = port.request_port_destroyed(backup);
    ASSERT_EQ(previous.status(), Status::kSuccess);
    EXPECT_TRUE(port.status()->pdrequest);
  }  // the handle goes: the right goes to `backup` instead of dying
  auto m = backup.receive(wait_up_to());
  ASSERT_EQ(m.status(), Status::kSuccess);
  auto n = parse_notification(task_, *m);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, Notification::kPortDestroyed);
  EXPECT_EQ(n->port, backup.name());
  ASSERT_TRUE(static_cast<bool>(n->receive_right));
  EXPECT_EQ(n->name, n->receive_right.name());
  // The message no longer names it: one owner only.
  EXPECT_EQ(std::get<ReceivedPort>(m->descriptors.at(0)).name, kNameNull);
  auto kept = n->receive_right.receive(at_once());
  ASSERT_EQ(kept.status(), Status::kSuccess);
  EXPECT_EQ(kept->body_text(), "kept");
  (void)name;
}

TEST_F(ClientNotifyApiTest, AMovedSendOnceTargetIsTakenOnlyIfTheRequestSucceeds) {
  ReceiveRight port = make_port();
  // A send-once right whose port died is a dead name: refused, and the
  // handle keeps it.
  auto stale = make_port().make_send_once();
  ASSERT_TRUE(stale.ok());
  const Name stale_name = stale->name();
  EXPECT_EQ(*task_->type(stale_name), kTypeDeadName);
  EXPECT_EQ(port.request_port_destroyed(std::move(*stale)).status(), Status::kInvalidCapability);
  EXPECT_EQ(stale->name(), stale_name);
  EXPECT_FALSE(port.status()->pdrequest);

  ReceiveRight backup = make_port();
  auto once = backup.make_send_once();
  ASSERT_TRUE(once.ok());
  const Name once_name = once->name();
  auto armed = port.request_port_destroyed(std::move(*once));
  ASSERT_EQ(armed.status(), Status::kSuccess);
  EXPECT_EQ(once->name(), kNameNull);  // the request holds it now
  EXPECT_EQ(task_->type(once_name).status(), Status::kInvalidName);
  EXPECT_TRUE(port.status()->pdrequest);
  EXPECT_EQ(backup.status()->sorights, 1u);
  // Cancelled, it comes back as a handle.
  auto back = port.cancel_port_destroyed();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*task_->type(back->name()), kTypeSendOnce);
  EXPECT_FALSE(port.status()->pdrequest);
}

TEST_F(ClientNotifyApiTest, TargetsOfAnotherTaskOrEmptyAreRefused) {
  auto other = connect_or_die(daemon_.socket_path(), "other");
  ASSERT_NE(other, nullptr);
  auto foreign = other->make_port();
  ASSERT_TRUE(foreign.ok());
  ReceiveRight port = make_port();
  EXPECT_EQ(port.request_no_senders(*foreign).status(), Status::kInvalidArgument);
  ReceiveRight empty;
  EXPECT_EQ(port.request_no_senders(empty).status(), Status::kInvalidArgument);
  EXPECT_EQ(empty.request_no_senders(port).status(), Status::kInvalidName);
  EXPECT_FALSE(port.status()->nsrequest);
}

TEST_F(ClientNotifyApiTest, MessagesFromTasksAreNeverNotifications) {
  ReceiveRight port = make_port();
  auto send = port.make_send_once();
  ASSERT_TRUE(send.ok());
  // A look-alike: a dead-name notification's id and body, sent by a task
  // through a send-once right.
  std::vector<std::byte> body = ndr_record();
  body.resize(12);
  OutgoingMessage forged;
  forged.set_remote(std::move(*send)).set_id(72).set_body(body);
  ASSERT_EQ(task_->send(forged), Status::kSuccess);
  auto m = port.receive(at_once());
  ASSERT_EQ(m.status(), Status::kSuccess);
  EXPECT_FALSE(parse_notification(task_, *m).has_value());
  EXPECT_EQ(m->id, 72);
  EXPECT_EQ(m->body, body);
}

TEST_F(ClientNotifyApiTest, CacheOnFullOptions) {
  ReceiveRight dest = make_port();
  ReceiveRight notify = make_port();
  ASSERT_EQ(dest.set_qlimit(0), Status::kSuccess);
  const SendOptions o = cache_on_full(notify, 20ms);
  EXPECT_EQ(o.timeout, 20ms);
  EXPECT_TRUE(o.cache);
  EXPECT_EQ(o.notify, notify.name());
  EXPECT_EQ(o.notify_disposition, Disposition::kMakeSendOnce);
  EXPECT_EQ(cache_on_full(notify).timeout, 0ms);
  OutgoingMessage m;
  m.set_remote(dest, Disposition::kMakeSend).set_id(3);
  EXPECT_EQ(task_->send(m, o), Status::kSendWillNotify);
  EXPECT_EQ(dest.receive(at_once())->id, 3);
  ReceivedNotification n = next_notification(notify);
  EXPECT_EQ(n.kind, Notification::kMsgAccepted);
  EXPECT_EQ(n.name, dest.name());

  // A cached send-then-receive ends with the send's status: nothing is
  // received, the message is consumed.
  ReceiveRight reply = make_port();
  ASSERT_EQ(send_text(*task_, *reply.make_send(), 9, "waiting on the reply port"),
            Status::kSuccess);
  OutgoingMessage rpc;
  rpc.set_remote(dest, Disposition::kMakeSend).set_local(reply, Disposition::kMakeSendOnce);
  auto r = task_->send_receive(rpc, cache_on_full(notify), reply.name(), wait_up_to());
  EXPECT_EQ(r.status(), Status::kSendWillNotify);
  EXPECT_EQ(rpc.remote(), kNameNull);
  EXPECT_EQ(reply.receive(at_once())->id, 9);
}

}  // namespace
}  // namespace portd::testing
