// Port sets through the real daemon, with the messages coming from other
// processes: arrival order across members and senders, which member each
// message came through, a member that dies or moves away leaving the set, a
// destroyed set leaving plain ports (and waking its receiver), and a set of
// many members.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/cross_process.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

class ClientPortSetsTest : public CrossProcessTest {
 protected:
  void SetUp() override {
    CrossProcessTest::SetUp();
    auto set = task_->make_port_set();
    ASSERT_TRUE(set.ok());
    set_ = std::move(*set);
  }

  // `n` new ports, each in the set.
  std::vector<ReceiveRight> members(size_t n) {
    std::vector<ReceiveRight> out;
    for (size_t i = 0; i < n; ++i) {
      out.push_back(make_port());
      EXPECT_EQ(set_.insert(out.back()), Status::kSuccess);
    }
    return out;
  }

  // Starts an agent and gives it a send right to each of `ports`, in order.
  std::unique_ptr<Child> agent(AgentHandle* handle, const std::vector<ReceiveRight>& ports) {
    OutgoingMessage rights;
    for (const auto& p : ports) rights.add_port(p, Disposition::kMakeSend);
    return spawn_agent(handle, &rights);
  }

  PortSet set_;
};

TEST_F(ClientPortSetsTest, ArrivalOrderAcrossMembersAndProcessesAndWhichMember) {
  auto ports = members(3);
  ASSERT_EQ(ports.size(), 3u);
  AgentHandle one, two;
  auto c1 = agent(&one, ports);
  auto c2 = agent(&two, ports);

  // (agent, member, id): the order the daemon sees them in.
  struct Step {
    AgentHandle* who;
    pid_t pid;
    uint32_t member;
    int32_t id;
  };
  const Step steps[] = {{&one, c1->pid(), 0, 1}, {&two, c2->pid(), 2, 2}, {&one, c1->pid(), 1, 3},
                        {&two, c2->pid(), 0, 4}, {&two, c2->pid(), 1, 5}, {&one, c1->pid(), 2, 6}};
  for (const auto& s : steps) ASSERT_EQ(s.who->send(s.member, s.id), Status::kSuccess);
  for (const auto& p : ports) EXPECT_EQ(p.status()->msgcount, 2u);

  uint64_t seqno[3] = {0, 0, 0};
  for (const auto& s : steps) {
    auto m = set_.receive(at_once());
    ASSERT_EQ(m.status(), Status::kSuccess) << "id " << s.id;
    EXPECT_EQ(m->id, s.id);
    EXPECT_EQ(m->local, ports[s.member].name());
    EXPECT_EQ(m->local_type, RightType::kSend);
    EXPECT_EQ(m->trailer.pid, static_cast<uint32_t>(s.pid));
    EXPECT_EQ(m->trailer.seqno, seqno[s.member]++);  // per member, not per set
  }
  EXPECT_EQ(set_.receive(at_once()).status(), Status::kRcvTimedOut);

  // A thread blocked on the set gets the next message of any member.
  Result<ReceivedMessage> blocked(Status::kFailure);
  std::thread receiver([&] { blocked = set_.receive(wait_up_to()); });
  ASSERT_EQ(two.send(1, 7), Status::kSuccess);
  receiver.join();
  ASSERT_EQ(blocked.status(), Status::kSuccess);
  EXPECT_EQ(blocked->id, 7);
  EXPECT_EQ(blocked->local, ports[1].name());
  EXPECT_EQ(blocked->trailer.pid, static_cast<uint32_t>(c2->pid()));

  one.exit();
  two.exit();
  EXPECT_EQ(c1->wait(), 0);
  EXPECT_EQ(c2->wait(), 0);
}

TEST_F(ClientPortSetsTest, AMemberThatDiesLeavesTheSetAndItsSendersSeeADeadName) {
  auto ports = members(2);
  ASSERT_EQ(ports.size(), 2u);
  AgentHandle peer;
  auto child = agent(&peer, ports);
  ASSERT_EQ(peer.send(0, 1), Status::kSuccess);
  ASSERT_EQ(peer.send(1, 2), Status::kSuccess);
  const Name dead = ports[0].name();
  ports[0].reset();  // its queued message goes with it
  EXPECT_EQ(task_->type(dead).status(), Status::kInvalidName);

  auto m = set_.receive(at_once());
  ASSERT_EQ(m.status(), Status::kSuccess);
  EXPECT_EQ(m->id, 2);
  EXPECT_EQ(m->local, ports[1].name());
  EXPECT_EQ(set_.receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(ports[1].status()->pset, set_.name());

  // The other process's send right is a dead name now.
  EXPECT_EQ(peer.send(0, 3), Status::kSendInvalidDest);
  auto probe = peer.probe(0);
  EXPECT_EQ(probe.status, Status::kSuccess);
  EXPECT_EQ(probe.a, kTypeDeadName);
  peer.exit();
  EXPECT_EQ(child->wait(), 0);
}

TEST_F(ClientPortSetsTest, AMemberMovedToAnotherProcessLeavesTheSet) {
  auto ports = members(2);
  ASSERT_EQ(ports.size(), 2u);
  AgentHandle peer;
  auto child = agent(&peer, ports);
  ASSERT_EQ(peer.send(0, 1), Status::kSuccess);
  ASSERT_EQ(peer.send(1, 2), Status::kSuccess);
  ASSERT_EQ(peer.send(0, 3), Status::kSuccess);

  // Member 0 goes to the agent, with its two messages.
  OutgoingMessage give;
  give.add_port(std::move(ports[0]));
  auto took = peer.call(agent::kTake, give);
  EXPECT_EQ(took.b, 1);
  auto m = set_.receive(at_once());
  ASSERT_EQ(m.status(), Status::kSuccess);
  EXPECT_EQ(m->id, 2);
  EXPECT_EQ(set_.receive(at_once()).status(), Status::kRcvTimedOut);
  for (int32_t id : {1, 3}) {
    auto got = peer.receive(0, 0);
    EXPECT_EQ(got.status, Status::kSuccess);
    EXPECT_EQ(got.a, id);
    EXPECT_EQ(got.d, 1);  // it came through the moved port's new name
  }
  // What is sent to it now goes to the agent, not to our set.
  ASSERT_EQ(peer.send(0, 4), Status::kSuccess);
  EXPECT_EQ(peer.receive(0, 0).a, 4);
  EXPECT_EQ(set_.receive(at_once()).status(), Status::kRcvTimedOut);
  peer.exit();
  EXPECT_EQ(child->wait(), 0);
}

TEST_F(ClientPortSetsTest, DestroyingTheSetLeavesPlainPortsAndWakesItsReceiver) {
  auto ports = members(2);
  ASSERT_EQ(ports.size(), 2u);
  AgentHandle peer;
  auto child = agent(&peer, ports);
  ASSERT_EQ(peer.send(1, 1), Status::kSuccess);
  ASSERT_EQ(peer.send(0, 2), Status::kSuccess);

  // A thread waiting on a set with nothing for it (an empty set of ours)
  // wakes with MACH_RCV_PORT_DIED when the set is destroyed. Should the
  // destroy overtake the receive (it had not started waiting yet), the
  // receive finds no set at all: try again.
  Status woken = Status::kFailure;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto empty = task_->make_port_set();
    ASSERT_TRUE(empty.ok());
    const Name name = empty->name();
    std::thread receiver([&] { woken = task_->receive(name, wait_up_to()).status(); });
    std::this_thread::sleep_for(50ms);
    empty->reset();
    receiver.join();
    if (woken != Status::kRcvInvalidName) break;
  }
  EXPECT_EQ(woken, Status::kRcvPortDied);

  const Name set_name = set_.name();
  set_.reset();
  EXPECT_EQ(task_->type(set_name).status(), Status::kInvalidName);
  for (const auto& p : ports) EXPECT_EQ(p.status()->pset, kNameNull);
  auto first = ports[1].receive(at_once());
  ASSERT_EQ(first.status(), Status::kSuccess);
  EXPECT_EQ(first->id, 1);
  auto second = ports[0].receive(at_once());
  ASSERT_EQ(second.status(), Status::kSuccess);
  EXPECT_EQ(second->id, 2);
  // They are ordinary ports: the other process still reaches them.
  ASSERT_EQ(peer.send(0, 3), Status::kSuccess);
  EXPECT_EQ(ports[0].receive(at_once())->id, 3);
  peer.exit();
  EXPECT_EQ(child->wait(), 0);
}

// 1000 members, half of them joining after the other process has sent to
// every member in a scrambled order: the set still hands the messages out in
// exactly the order they arrived, each naming its member.
TEST_F(ClientPortSetsTest, ASetWithManyMembersKeepsArrivalOrder) {
  constexpr uint32_t kMembers = 1000;
  constexpr uint32_t kStride = 7919;  // prime, so k * stride % n visits every member once
  auto ports = members(kMembers / 2);
  ASSERT_EQ(ports.size(), kMembers / 2);
  for (uint32_t i = kMembers / 2; i < kMembers; ++i) {
    auto p = task_->make_port();
    ASSERT_TRUE(p.ok());
    ports.push_back(std::move(*p));
  }
  AgentHandle peer;
  auto child = agent(&peer, ports);
  std::vector<std::byte> stride;
  agent::put(stride, kStride);
  auto sent = peer.call(agent::kSendAll, stride);
  ASSERT_EQ(sent.status, Status::kSuccess);
  ASSERT_EQ(sent.a, kMembers);
  for (uint32_t i = kMembers / 2; i < kMembers; ++i)
    ASSERT_EQ(set_.insert(ports[i]), Status::kSuccess);

  int wrong = 0;
  for (uint32_t k = 0; k < kMembers; ++k) {
    const uint32_t index = (k * kStride) % kMembers;
    auto m = set_.receive(at_once());
    if (!m || m->id != static_cast<int32_t>(index) || m->local != ports[index].name()) {
      ++wrong;
      ADD_FAILURE() << "message " << k << ": " << status_name(m.status()) << " id "
                    << (m.has_value() ? m->id : -1) << ", expected " << index;
      if (wrong > 5) break;
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(set_.receive(at_once()).status(), Status::kRcvTimedOut);
  peer.exit();
  EXPECT_EQ(child->wait(), 0);
}

}  // namespace
}  // namespace portd::testing
