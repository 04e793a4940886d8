// libportd's RAII handles and message building against the real daemon: a
// handle releases its right when it goes away (checked with names() and
// get_refs() from the same task, whose requests the daemon handles in order),
// release() gives the name up, and messages built from handles consume them
// only when the send succeeds.
#include <gtest/gtest.h>

#include <chrono>
#include <type_traits>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

// Rights, and the memory and messages that hold them, have one owner: they
// move, they are never copied (a copy would release a right twice).
template <typename T>
constexpr bool kMoveOnly =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>;
static_assert(kMoveOnly<ReceiveRight>);
static_assert(kMoveOnly<SendRight>);
static_assert(kMoveOnly<SendOnceRight>);
static_assert(kMoveOnly<PortSet>);
static_assert(kMoveOnly<SharedBuffer>);
static_assert(kMoveOnly<VolatileBuffer>);
static_assert(kMoveOnly<OolRegion>);
static_assert(kMoveOnly<MappedRegion>);
static_assert(!std::is_copy_constructible_v<OutgoingMessage> &&
              std::is_move_constructible_v<OutgoingMessage>);

class ClientRightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path());
    ASSERT_NE(task_, nullptr);
  }

  ReceiveRight make_port() {
    auto port = task_->make_port();
    EXPECT_EQ(port.status(), Status::kSuccess);
    return port.ok() ? std::move(*port) : ReceiveRight();
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

TEST_F(ClientRightsTest, ReceiveRightDiesWithItsHandle) {
  Name name;
  {
    ReceiveRight port = make_port();
    name = port.name();
    EXPECT_EQ(port.task(), task_);
    EXPECT_TRUE(static_cast<bool>(port));
    EXPECT_EQ(*task_->type(name), kTypeReceive);
  }
  EXPECT_FALSE(has_name(*task_, name));
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
}

TEST_F(ClientRightsTest, ReleaseGivesTheNameUp) {
  ReceiveRight port = make_port();
  const Name name = port.release();
  EXPECT_FALSE(static_cast<bool>(port));
  EXPECT_EQ(port.name(), kNameNull);
  port = ReceiveRight();  // an empty handle releases nothing
  EXPECT_EQ(*task_->type(name), kTypeReceive);
  // adopt() takes it back; reset() releases it now.
  ReceiveRight again = ReceiveRight::adopt(task_, name);
  again.reset();
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
}

TEST_F(ClientRightsTest, MoveAssignmentReleasesTheOldRight) {
  ReceiveRight a = make_port();
  ReceiveRight b = make_port();
  const Name old_a = a.name();
  const Name kept = b.name();
  a = std::move(b);
  EXPECT_EQ(a.name(), kept);
  EXPECT_EQ(b.name(), kNameNull);
  EXPECT_EQ(task_->type(old_a).status(), Status::kInvalidName);
  EXPECT_EQ(*task_->type(kept), kTypeReceive);
}

TEST_F(ClientRightsTest, SendRightsCountOneReferenceEach) {
  ReceiveRight port = make_port();
  auto first = port.make_send();
  ASSERT_EQ(first.status(), Status::kSuccess);
  EXPECT_EQ(first->name(), port.name());
  auto second = port.make_send();
  ASSERT_EQ(second.status(), Status::kSuccess);
  auto third = first->copy();
  ASSERT_EQ(third.status(), Status::kSuccess);
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 3u);
  EXPECT_EQ(port.status()->mscount, 2u);  // copy() made no new right

  second->reset();
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 2u);
  { SendRight gone = std::move(*third); }
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 1u);
  *first = SendRight();
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 0u);
  EXPECT_EQ(*task_->type(port.name()), kTypeReceive);
}

TEST_F(ClientRightsTest, SendRightOutlivingItsPortReleasesADeadName) {
  ReceiveRight port = make_port();
  const Name name = port.name();
  auto send = port.make_send();
  ASSERT_TRUE(send.ok());
  port.reset();
  EXPECT_EQ(*task_->type(name), kTypeDeadName);
  send->reset();
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
}

TEST_F(ClientRightsTest, UnusedSendOnceRightFiresASendOnceNotification) {
  ReceiveRight port = make_port();
  auto once = port.make_send_once();
  ASSERT_EQ(once.status(), Status::kSuccess);
  const Name once_name = once->name();
  EXPECT_NE(once_name, port.name());
  EXPECT_EQ(*task_->type(once_name), kTypeSendOnce);
  EXPECT_EQ(port.status()->sorights, 1u);
  once->reset();
  EXPECT_EQ(task_->type(once_name).status(), Status::kInvalidName);
  // Mach: a send-once right destroyed unused sends MACH_NOTIFY_SEND_ONCE to
  // its port, through the right itself, which is used up on receipt.
  EXPECT_EQ(port.status()->msgcount, 1u);
  EXPECT_EQ(port.status()->sorights, 1u);
  auto notification = port.receive(ReceiveOptions{1000ms});
  ASSERT_EQ(notification.status(), Status::kSuccess);
  EXPECT_EQ(notification->id, static_cast<int32_t>(Notification::kSendOnce));
  EXPECT_EQ(port.status()->sorights, 0u);
}

TEST_F(ClientRightsTest, PortSetHandle) {
  auto set = task_->make_port_set();
  ASSERT_EQ(set.status(), Status::kSuccess);
  ReceiveRight a = make_port();
  ReceiveRight b = make_port();
  EXPECT_EQ(set->insert(a), Status::kSuccess);
  EXPECT_EQ(a.status()->pset, set->name());
  EXPECT_EQ(set->remove(b), Status::kNotInSet);
  EXPECT_EQ(set->insert(b), Status::kSuccess);
  EXPECT_EQ(set->remove(b), Status::kSuccess);
  EXPECT_EQ(b.status()->pset, kNameNull);

  OutgoingMessage m;
  m.set_remote(a, Disposition::kMakeSend).set_body("via set");
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto r = set->receive(ReceiveOptions{1000ms});
  ASSERT_EQ(r.status(), Status::kSuccess);
  EXPECT_EQ(r->local, a.name());
  EXPECT_EQ(r->body_text(), "via set");
  EXPECT_EQ(set->receive(ReceiveOptions{0ms}).status(), Status::kRcvTimedOut);

  const Name set_name = set->name();
  set->reset();
  EXPECT_EQ(task_->type(set_name).status(), Status::kInvalidName);
  EXPECT_EQ(a.status()->pset, kNameNull);  // the set's death freed its member
}

TEST_F(ClientRightsTest, EmptyHandlesRefuseEverything) {
  ReceiveRight port;
  EXPECT_EQ(port.make_send().status(), Status::kInvalidName);
  EXPECT_EQ(port.receive().status(), Status::kRcvInvalidName);
  SendRight send;
  EXPECT_EQ(send.copy().status(), Status::kInvalidName);
  PortSet set;
  EXPECT_EQ(set.insert(port), Status::kInvalidName);
}

TEST_F(ClientRightsTest, MovedSendRightTravelsOnlyIfTheSendSucceeds) {
  ReceiveRight port = make_port();
  ASSERT_EQ(port.set_qlimit(1), Status::kSuccess);
  ReceiveRight carried = make_port();
  auto to_carried = carried.make_send();
  ASSERT_TRUE(to_carried.ok());

  OutgoingMessage fill;
  fill.set_remote(port, Disposition::kMakeSend);
  ASSERT_EQ(task_->send(fill), Status::kSuccess);

  // The queue is full: this send fails and the message keeps its right.
  OutgoingMessage m;
  m.set_remote(port, Disposition::kMakeSend).add_port(std::move(*to_carried));
  EXPECT_EQ(to_carried->name(), kNameNull);  // the handle moved into the message
  EXPECT_EQ(m.held_rights(), 1u);
  EXPECT_EQ(task_->send(m, SendOptions{0ms}), Status::kSendTimedOut);
  EXPECT_EQ(m.held_rights(), 1u);
  EXPECT_EQ(*task_->get_refs(carried.name(), Right::kSend), 1u);

  // Room again: the same message goes, and its right with it.
  ASSERT_EQ(port.receive(ReceiveOptions{0ms}).status(), Status::kSuccess);
  EXPECT_EQ(task_->send(m, SendOptions{0ms}), Status::kSuccess);
  EXPECT_EQ(m.held_rights(), 0u);
  // The right left our space with the message and comes back on receipt
  // under the receive right's name (one reference).
  EXPECT_EQ(*task_->get_refs(carried.name(), Right::kSend), 0u);
  auto r = port.receive(ReceiveOptions{0ms});
  ASSERT_EQ(r.status(), Status::kSuccess);
  ASSERT_EQ(r->descriptors.size(), 1u);
  const auto& desc = std::get<ReceivedPort>(r->descriptors[0]);
  EXPECT_EQ(desc.name, carried.name());
  EXPECT_EQ(desc.type, RightType::kSend);
  EXPECT_EQ(*task_->get_refs(carried.name(), Right::kSend), 1u);
  SendRight::adopt(task_, desc.name).reset();
  EXPECT_EQ(*task_->get_refs(carried.name(), Right::kSend), 0u);
}

TEST_F(ClientRightsTest, DroppingAnUnsentMessageReleasesItsRights) {
  ReceiveRight carried = make_port();
  const Name name = carried.name();
  {
    OutgoingMessage m;
    m.add_port(std::move(carried));
  }
  EXPECT_EQ(task_->type(name).status(), Status::kInvalidName);
}

TEST_F(ClientRightsTest, ReplacingAMovedDestinationReleasesTheFirst) {
  ReceiveRight port = make_port();
  auto first = port.make_send();
  auto second = port.make_send();
  ASSERT_TRUE(first.ok() && second.ok());
  OutgoingMessage m;
  m.set_remote(std::move(*first));
  m.set_remote(std::move(*second));
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 1u);
  EXPECT_EQ(m.remote_disposition(), Disposition::kMoveSend);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(*task_->get_refs(port.name(), Right::kSend), 0u);
  EXPECT_EQ(port.status()->msgcount, 1u);
}

TEST_F(ClientRightsTest, CopiedAndMadeRightsStayTheCallers) {
  ReceiveRight port = make_port();
  ReceiveRight other = make_port();
  auto send = other.make_send();
  ASSERT_TRUE(send.ok());
  OutgoingMessage m;
  m.set_remote(port, Disposition::kMakeSend)
      .add_port(*send)                               // COPY_SEND
      .add_port(other, Disposition::kMakeSendOnce);  // MAKE_SEND_ONCE
  EXPECT_EQ(m.held_rights(), 0u);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(*task_->get_refs(other.name(), Right::kSend), 1u);  // ours, untouched
  auto r = port.receive(ReceiveOptions{0ms});
  ASSERT_EQ(r.status(), Status::kSuccess);
  ASSERT_EQ(r->descriptors.size(), 2u);
  EXPECT_EQ(std::get<ReceivedPort>(r->descriptors[0]).type, RightType::kSend);
  EXPECT_EQ(std::get<ReceivedPort>(r->descriptors[1]).type, RightType::kSendOnce);
  EXPECT_EQ(*task_->get_refs(other.name(), Right::kSend), 2u);
}

TEST_F(ClientRightsTest, OutOfLinePortArrayOfMovedRights) {
  ReceiveRight port = make_port();
  std::vector<ReceiveRight> targets;
  std::vector<SendRight> rights;
  for (int i = 0; i < 3; ++i) {
    targets.push_back(make_port());
    auto s = targets.back().make_send();
    ASSERT_TRUE(s.ok());
    rights.push_back(std::move(*s));
  }
  OutgoingMessage m;
  m.set_remote(port, Disposition::kMakeSend).add_ool_ports(std::move(rights));
  EXPECT_EQ(m.held_rights(), 3u);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto r = port.receive(ReceiveOptions{0ms});
  ASSERT_EQ(r.status(), Status::kSuccess);
  ASSERT_EQ(r->descriptors.size(), 1u);
  const auto& array = std::get<ReceivedOolPorts>(r->descriptors[0]);
  EXPECT_EQ(array.type, RightType::kSend);
  ASSERT_EQ(array.names.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(array.names[i], targets[i].name());
}

TEST_F(ClientRightsTest, HandlesOfAnotherTaskAreRefused) {
  auto other_task = connect_or_die(daemon_.socket_path(), "other");
  ASSERT_NE(other_task, nullptr);
  auto foreign = other_task->make_port();
  ASSERT_TRUE(foreign.ok());
  ReceiveRight port = make_port();
  OutgoingMessage m;
  m.set_remote(port, Disposition::kMakeSend).add_port(*foreign, Disposition::kMakeSend);
  EXPECT_EQ(task_->send(m), Status::kSendInvalidRight);
  EXPECT_EQ(port.status()->msgcount, 0u);

  OutgoingMessage bad_make;
  bad_make.set_remote(port, Disposition::kMoveReceive);  // not a make
  EXPECT_EQ(task_->send(bad_make), Status::kSendInvalidType);

  auto set = task_->make_port_set();
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->insert(*foreign), Status::kInvalidArgument);
}

TEST_F(ClientRightsTest, CheckInAndLookUpGiveHandles) {
  const std::string service = unique_service("rights");
  auto checked_in = task_->check_in(service);
  ASSERT_EQ(checked_in.status(), Status::kSuccess);
  auto looked_up = task_->look_up(service);
  ASSERT_EQ(looked_up.status(), Status::kSuccess);
  EXPECT_EQ(looked_up->name(), checked_in->name());
  EXPECT_EQ(task_->look_up(unique_service("none")).status(), Status::kBootstrapUnknownService);
  // The receive right dies with its handle, and the name with its port.
  checked_in->reset();
  looked_up->reset();
  EXPECT_EQ(task_->bootstrap_look_up(service).status(), Status::kBootstrapUnknownService);
}

}  // namespace
}  // namespace portd::testing
