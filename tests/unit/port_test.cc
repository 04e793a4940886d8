// Ports: attributes, queue limits, death.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using PortTest = CoreTest;

TEST_F(PortTest, FreshPortStatus) {
  Name r = port();
  PortStatus s = status_of(kA, r);
  EXPECT_EQ(s.pset, kNameNull);
  EXPECT_EQ(s.seqno, 0u);
  EXPECT_EQ(s.mscount, 0u);
  EXPECT_EQ(s.qlimit, kQueueLimitDefault);
  EXPECT_EQ(s.msgcount, 0u);
  EXPECT_EQ(s.sorights, 0u);
  EXPECT_FALSE(s.srights);
  EXPECT_FALSE(s.pdrequest);
  EXPECT_FALSE(s.nsrequest);
}

TEST_F(PortTest, StatusFollowsTraffic) {
  Name r = port();
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  ASSERT_EQ(send(kA, msg(r)), Status::kSuccess);
  ASSERT_EQ(send(kA, msg(r)), Status::kSuccess);
  PortStatus s = status_of(kA, r);
  EXPECT_EQ(s.msgcount, 2u);
  EXPECT_EQ(s.mscount, 1u);
  EXPECT_TRUE(s.srights);
  Received m = recv(kA, r);
  EXPECT_EQ(m.msg.trailer.seqno, 0u);
  EXPECT_EQ(recv(kA, r).msg.trailer.seqno, 1u);
  EXPECT_EQ(status_of(kA, r).seqno, 2u);
}

TEST_F(PortTest, AttributesNeedTheReceiveRight) {
  auto [r, s] = port_with_sender(kA, kB);
  PortStatus st;
  EXPECT_EQ(core.get_attributes(kB, s, &st), Status::kInvalidRight);
  EXPECT_EQ(core.get_attributes(kB, 0x5555, &st), Status::kInvalidName);
  EXPECT_EQ(core.set_qlimit(kB, s, 3, fx), Status::kInvalidRight);
  EXPECT_EQ(core.set_qlimit(kA, r, kQueueLimitMax + 1, fx), Status::kInvalidValue);
  EXPECT_EQ(status_of(kA, r).qlimit, kQueueLimitDefault);
  EXPECT_EQ(core.set_qlimit(kA, r, kQueueLimitMax, fx), Status::kSuccess);
  EXPECT_EQ(status_of(kA, r).qlimit, kQueueLimitMax);
  EXPECT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  EXPECT_EQ(status_of(kA, r).qlimit, 0u);
}

TEST_F(PortTest, PortIdsAreNeverReused) {
  Name a = port();
  const PortId first = core.impl().ports().begin()->first;
  ASSERT_EQ(core.mod_refs(kA, a, Right::kReceive, -1, fx), Status::kSuccess);
  port();
  EXPECT_GT(core.impl().ports().begin()->first, first);
}

TEST_F(PortTest, DeathDestroysQueuedMessagesAndTheRightsInThem) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  // kB sends its send right to r2 inside a message to r; when r dies the
  // message is destroyed and r2 loses that sender.
  MessageIn m = msg(s);
  m.descriptors.push_back(PortDescIn{s2, Disposition::kMoveSend});
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_TRUE(status_of(kC, r2).srights);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_FALSE(status_of(kC, r2).srights);
  EXPECT_EQ(core.impl().counters().messages_destroyed, 1u);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
}

TEST_F(PortTest, DeathOfAChainOfPortsInTransitIsIterative) {
  // Port k's receive right travels inside a message queued on port k-1; the
  // first port's death must take the whole chain down without recursion.
  constexpr int kChain = 2000;
  Name head = port();
  ASSERT_EQ(core.insert_right(kA, head, head, Disposition::kMakeSend, fx), Status::kSuccess);
  Name prev = head;
  for (int i = 0; i < kChain; ++i) {
    Name next = port();
    ASSERT_EQ(core.insert_right(kA, next, next, Disposition::kMakeSend, fx), Status::kSuccess);
    MessageIn m = msg(prev);
    m.descriptors.push_back(PortDescIn{next, Disposition::kMoveReceive});
    ASSERT_EQ(send(kA, m), Status::kSuccess);
    if (prev != head) {
      ASSERT_EQ(core.deallocate(kA, prev, fx), Status::kSuccess);
    }
    prev = next;
  }
  ASSERT_EQ(core.deallocate(kA, prev, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().ports().size(), static_cast<size_t>(kChain + 1));
  ASSERT_EQ(core.mod_refs(kA, head, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(core.impl().ports().size(), 0u);
}

}  // namespace
}  // namespace portd::ipc::testing
