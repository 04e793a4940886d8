// Out-of-line port arrays through the C++ API: several arrays of different
// dispositions in one message (with a port descriptor and a memory region
// between them), MACH_PORT_NULL and MACH_PORT_DEAD inside arrays, the
// receiver in another process using every right it got, and the sender's
// name space afterwards. A failed send gives every right back.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

class OolPortsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "ool-ports");
    ASSERT_NE(task_, nullptr);
  }

  ReceiveRight port() {
    auto p = task_->make_port();
    EXPECT_TRUE(p);
    return std::move(*p);
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

// The arrays of the message, in order.
enum Array { kMoveSend, kCopySend, kMakeSend, kMakeSendOnce, kMoveReceive, kMoveSendOnce, kRaw };

TEST_F(OolPortsTest, ArraysOfEveryDispositionWithNullAndDeadNames) {
  const std::string service = unique_service("arrays");
  const std::string socket = daemon_.socket_path();
  ReceiveRight p1 = port(), p2 = port();
  // Rights to give by move.
  auto s1 = p1.make_send(), s2 = p2.make_send();
  auto so1 = p1.make_send_once(), so2 = p2.make_send_once();
  ASSERT_TRUE(s1 && s2 && so1 && so2);
  ReceiveRight r3 = port(), r4 = port();
  const Name so1_name = so1->name(), so2_name = so2->name();
  const Name r3_name = r3.name(), r4_name = r4.name();
  // Rights to give by reference: copied, or made from p1 and p2.
  auto c1 = p1.make_send(), c2 = p2.make_send();
  ASSERT_TRUE(c1 && c2);
  // A dead name: a send right whose port died.
  ReceiveRight doomed = port();
  auto dead = doomed.make_send();
  ASSERT_TRUE(dead);
  doomed.reset();
  ASSERT_EQ(*task_->type(dead->name()), kTypeDeadName);  // requests are handled in order

  Child receiver([&]() -> int {
    auto task = Task::connect(ConnectOptions{socket, "arrays-receiver"});
    if (!task) return 2;
    auto inbox = (*task)->check_in(service);
    if (!inbox) return 3;
    auto got = inbox->receive(ReceiveOptions{30000ms});
    if (!got) return 4;
    if (got->descriptors.size() != 9) return 5;
    // Between the arrays: a port descriptor and a memory region.
    if (!std::holds_alternative<ReceivedPort>(got->descriptors[2])) return 6;
    const auto* region = std::get_if<ReceivedOolMemory>(&got->descriptors[5]);
    if (region == nullptr || region->size != 5 ||
        std::memcmp(region->bytes().data(), "bytes", 5) != 0)
      return 7;
    auto array = [&](size_t i) -> const ReceivedOolPorts& {
      return std::get<ReceivedOolPorts>(got->descriptors[i]);
    };
    const auto& move_send = array(0);
    const auto& copy_send = array(1);
    const auto& make_send = array(3);
    const auto& make_send_once = array(4);
    const auto& move_receive = array(6);
    const auto& move_send_once = array(7);
    const auto& raw = array(8);
    if (move_send.type != RightType::kSend || copy_send.type != RightType::kSend ||
        make_send.type != RightType::kSend || make_send_once.type != RightType::kSendOnce ||
        move_receive.type != RightType::kReceive || move_send_once.type != RightType::kSendOnce ||
        raw.type != RightType::kSend)
      return 8;
    if (move_send.names.size() != 2 || copy_send.names.size() != 2 || make_send.names.size() != 2 ||
        make_send_once.names.size() != 1 || move_receive.names.size() != 2 ||
        move_send_once.names.size() != 2 || raw.names.size() != 3)
      return 9;
    // Send rights to one port share one name: p1 arrived four times (moved,
    // copied, made, and copied again in the raw array), p2 three times.
    const Name to_p1 = move_send.names[0], to_p2 = move_send.names[1];
    if (copy_send.names[0] != to_p1 || make_send.names[0] != to_p1 || raw.names[2] != to_p1)
      return 10;
    if (copy_send.names[1] != to_p2 || make_send.names[1] != to_p2) return 11;
    if (*(*task)->get_refs(to_p1, Right::kSend) != 4) return 12;
    if (*(*task)->get_refs(to_p2, Right::kSend) != 3) return 13;
    // Null and dead names travel as they are.
    if (raw.names[0] != kNameNull || raw.names[1] != kNameDead) return 14;
    // Each send-once right has a name of its own.
    const Name once_a = make_send_once.names[0];
    const Name once_b = move_send_once.names[0], once_c = move_send_once.names[1];
    if (once_a == once_b || once_b == once_c || once_a == once_c) return 15;
    for (Name n : {once_a, once_b, once_c})
      if (*(*task)->type(n) != kTypeSendOnce) return 16;
    for (Name n : move_receive.names)
      if (*(*task)->type(n) != kTypeReceive) return 17;

    // Use them: a message through each kind of right.
    auto send_to = [&](Name name, Disposition d, int32_t id) {
      OutgoingMessage m;
      m.set_remote(name, d).set_id(id);
      return (*task)->send(m);
    };
    if (send_to(once_a, Disposition::kMoveSendOnce, 1) != Status::kSuccess) return 18;  // p1
    if (send_to(once_c, Disposition::kMoveSendOnce, 2) != Status::kSuccess) return 19;  // p2
    if (send_to(to_p1, Disposition::kCopySend, 3) != Status::kSuccess) return 20;
    // The receive rights came with their ports: send to them and receive.
    for (Name n : move_receive.names) {
      if (send_to(n, Disposition::kMakeSend, 4) != Status::kSuccess) return 21;
      auto own = (*task)->receive(n, ReceiveOptions{5000ms});
      if (!own || own->id != 4) return 22;
    }
    // once_b is p1's: left unused, it fires a send-once notification when
    // this task goes away.
    return 0;
  });

  auto server = task_->look_up(service, 10000ms);
  ASSERT_TRUE(server);
  auto bytes = OolRegion::copy("bytes", 5);
  ASSERT_TRUE(bytes);
  std::vector<SendRight> moved_sends;
  moved_sends.push_back(std::move(*s1));
  moved_sends.push_back(std::move(*s2));
  std::vector<SendRight> copied{};
  copied.push_back(std::move(*c1));
  copied.push_back(std::move(*c2));
  std::vector<ReceiveRight> makers;
  makers.push_back(std::move(p1));
  makers.push_back(std::move(p2));
  std::vector<ReceiveRight> moved_receives;
  moved_receives.push_back(std::move(r3));
  moved_receives.push_back(std::move(r4));
  std::vector<SendOnceRight> moved_once;
  moved_once.push_back(std::move(*so1));
  moved_once.push_back(std::move(*so2));
  auto extra = task_->make_port();
  ASSERT_TRUE(extra);

  OutgoingMessage m;
  m.set_remote(*server)
      .add_ool_ports(std::move(moved_sends))                                                // 0
      .add_ool_ports(copied)                                                                // 1
      .add_port(*extra, Disposition::kMakeSend)                                             // 2
      .add_ool_ports(makers, Disposition::kMakeSend)                                        // 3
      .add_ool_ports(std::span(makers).first(1), Disposition::kMakeSendOnce)                // 4
      .add_ool(std::move(*bytes))                                                           // 5
      .add_ool_ports(std::move(moved_receives))                                             // 6
      .add_ool_ports(std::move(moved_once))                                                 // 7
      .add_ool_ports({kNameNull, dead->name(), copied[0].name()}, Disposition::kCopySend);  // 8
  EXPECT_EQ(m.held_rights(), 6u);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(m.held_rights(), 0u);

  // The receiver used the rights: p1 got ids 1 and 3, p2 got id 2.
  auto a = makers[0].receive(ReceiveOptions{10000ms});
  auto b = makers[0].receive(ReceiveOptions{10000ms});
  auto c = makers[1].receive(ReceiveOptions{10000ms});
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->id + b->id, 4);
  EXPECT_EQ(c->id, 2);
  EXPECT_EQ(receiver.wait(), 0);
  // Its unused send-once right to p1 fired when it went away.
  auto notification = makers[0].receive(ReceiveOptions{10000ms});
  ASSERT_TRUE(notification);
  EXPECT_EQ(notification->id, static_cast<int32_t>(Notification::kSendOnce));

  // Our space: moved rights are gone, the rest stayed.
  EXPECT_EQ(task_->type(so1_name).status(), Status::kInvalidName);
  EXPECT_EQ(task_->type(so2_name).status(), Status::kInvalidName);
  EXPECT_EQ(task_->type(r3_name).status(), Status::kInvalidName);
  EXPECT_EQ(task_->type(r4_name).status(), Status::kInvalidName);
  // p1's name: its receive right, and the one send reference `copied[0]` owns
  // (s1 moved away; the copies and makes made new rights for the receiver).
  EXPECT_EQ(*task_->type(makers[0].name()), kTypeReceive | kTypeSend);
  EXPECT_EQ(*task_->get_refs(makers[0].name(), Right::kSend), 1u);
  EXPECT_EQ(*task_->get_refs(dead->name(), Right::kDeadName), 1u);
}

TEST_F(OolPortsTest, AFailedSendGivesEveryArrayRightBack) {
  ReceiveRight dest = port();
  ReceiveRight p = port();
  auto s = p.make_send();
  auto so = p.make_send_once();
  ASSERT_TRUE(s && so);
  const Name s_name = s->name(), so_name = so->name();
  std::vector<SendRight> sends;
  sends.push_back(std::move(*s));
  std::vector<SendOnceRight> onces;
  onces.push_back(std::move(*so));
  OutgoingMessage m;
  m.set_remote(dest, Disposition::kMakeSend)
      .add_ool_ports(std::move(sends))
      .add_ool_ports(std::move(onces))
      .add_ool_ports({0x7fff00}, Disposition::kCopySend);  // names nothing
  EXPECT_EQ(task_->send(m), Status::kSendInvalidRight);
  EXPECT_EQ(m.held_rights(), 2u);
  EXPECT_EQ(*task_->type(s_name), kTypeReceive | kTypeSend);  // p's name holds both
  EXPECT_EQ(*task_->get_refs(s_name, Right::kSend), 1u);
  EXPECT_EQ(*task_->type(so_name), kTypeSendOnce);
  EXPECT_EQ(task_->get_attributes(dest.name())->msgcount, 0u);
}

}  // namespace
}  // namespace portd::testing
