// Rights and user references: deallocate, mod_refs, destroy, insert_right,
// extract_right, get_refs; and the rule that a failed operation changes
// nothing.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using RightTest = CoreTest;

TEST_F(RightTest, SendUrefsCountUpAndDownToTheCap) {
  Name r = port();
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  EXPECT_EQ(refs(kA, r, Right::kSend), 1u);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, 9, fx), Status::kSuccess);
  EXPECT_EQ(refs(kA, r, Right::kSend), 10u);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, kUrefsMax, fx), Status::kUrefsOverflow);
  EXPECT_EQ(refs(kA, r, Right::kSend), 10u);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, kUrefsMax - 10, fx), Status::kSuccess);
  EXPECT_EQ(refs(kA, r, Right::kSend), kUrefsMax);
  EXPECT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kUrefsOverflow);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, -static_cast<int32_t>(kUrefsMax) - 1, fx),
            Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, -static_cast<int32_t>(kUrefsMax), fx),
            Status::kSuccess);
  EXPECT_EQ(type_of(kA, r), kTypeReceive);
  EXPECT_FALSE(status_of(kA, r).srights);
}

TEST_F(RightTest, DeallocateReleasesOneUref) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.mod_refs(kB, s, Right::kSend, 1, fx), Status::kSuccess);
  EXPECT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  EXPECT_EQ(refs(kB, s, Right::kSend), 1u);
  EXPECT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  uint32_t t;
  EXPECT_EQ(core.type(kB, s, &t), Status::kInvalidName);
  EXPECT_FALSE(status_of(kA, r).srights);
}

TEST_F(RightTest, DeallocateStatuses) {
  Name r = port();
  Name set = pset();
  EXPECT_EQ(core.deallocate(kA, kNameNull, fx), Status::kSuccess);
  EXPECT_EQ(core.deallocate(kA, kNameDead, fx), Status::kSuccess);
  EXPECT_EQ(core.deallocate(kA, 0x4242, fx), Status::kInvalidName);
  const std::string before = snapshot(kA);
  EXPECT_EQ(core.deallocate(kA, r, fx), Status::kInvalidRight);
  EXPECT_EQ(core.deallocate(kA, set, fx), Status::kInvalidRight);
  EXPECT_EQ(snapshot(kA), before);
  EXPECT_EQ(core.deallocate(99, r, fx), Status::kInvalidTask);
}

TEST_F(RightTest, ModRefsStatusesChangeNothingOnFailure) {
  Name r = port();
  Name set = pset();
  Name d = kNameNull;
  ASSERT_EQ(core.allocate(kA, Right::kDeadName, &d), Status::kSuccess);
  const std::string before = snapshot(kA);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kSend, 1, fx), Status::kInvalidRight);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kReceive, 1, fx), Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kReceive, -2, fx), Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kReceive, 0, fx), Status::kSuccess);
  EXPECT_EQ(core.mod_refs(kA, set, Right::kPortSet, 1, fx), Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, set, Right::kReceive, -1, fx), Status::kInvalidRight);
  EXPECT_EQ(core.mod_refs(kA, d, Right::kDeadName, -2, fx), Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, d, Right::kSend, -1, fx), Status::kInvalidRight);
  EXPECT_EQ(core.mod_refs(kA, r, static_cast<Right>(7), -1, fx), Status::kInvalidValue);
  EXPECT_EQ(core.mod_refs(kA, kNameNull, Right::kSend, -1, fx), Status::kSuccess);
  EXPECT_EQ(core.mod_refs(kA, kNameNull, Right::kReceive, -1, fx), Status::kInvalidName);
  EXPECT_EQ(snapshot(kA), before);
  EXPECT_EQ(core.mod_refs(kA, d, Right::kDeadName, 2, fx), Status::kSuccess);
  EXPECT_EQ(refs(kA, d, Right::kDeadName), 3u);
  EXPECT_EQ(core.mod_refs(kA, d, Right::kDeadName, -3, fx), Status::kSuccess);
  uint32_t t;
  EXPECT_EQ(core.type(kA, d, &t), Status::kInvalidName);
}

TEST_F(RightTest, DestroyingTheReceiveRightLeavesTheSendRightsDead) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kSend, 2, fx), Status::kSuccess);
  EXPECT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  // Our own entry keeps its urefs as a dead name, and so does kB's.
  EXPECT_EQ(type_of(kA, r), kTypeDeadName);
  EXPECT_EQ(refs(kA, r, Right::kDeadName), 3u);
  EXPECT_EQ(type_of(kB, s), kTypeDeadName);
  EXPECT_EQ(refs(kB, s, Right::kDeadName), 1u);
  EXPECT_EQ(refs(kB, s, Right::kSend), 0u);
  EXPECT_EQ(core.deallocate(kB, s, fx), Status::kSuccess);
  uint32_t t;
  EXPECT_EQ(core.type(kB, s, &t), Status::kInvalidName);
}

TEST_F(RightTest, DestroyRemovesEveryRightUnderTheName) {
  Name r = port();
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  EXPECT_EQ(core.destroy(kA, r, fx), Status::kSuccess);
  uint32_t t;
  EXPECT_EQ(core.type(kA, r, &t), Status::kInvalidName);
  EXPECT_EQ(core.destroy(kA, r, fx), Status::kInvalidName);
  EXPECT_EQ(core.destroy(kA, kNameNull, fx), Status::kSuccess);
  Name set = pset();
  EXPECT_EQ(core.destroy(kA, set, fx), Status::kSuccess);
  EXPECT_EQ(name_count(kA), 0u);
}

TEST_F(RightTest, InsertRightStatuses) {
  Name r = port();
  Name other = port();
  const std::string before = snapshot(kA);
  // A send right for r may only live under r's name.
  EXPECT_EQ(core.insert_right(kA, make_name(40, 1), r, Disposition::kMakeSend, fx),
            Status::kRightExists);
  EXPECT_EQ(core.insert_right(kA, other, r, Disposition::kMakeSend, fx), Status::kNameExists);
  EXPECT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSendOnce, fx), Status::kNameExists);
  EXPECT_EQ(core.insert_right(kA, r, 0x777, Disposition::kMakeSend, fx), Status::kInvalidName);
  EXPECT_EQ(core.insert_right(kA, r, r, Disposition::kCopySend, fx), Status::kInvalidRight);
  EXPECT_EQ(core.insert_right(kA, r, r, static_cast<Disposition>(3), fx), Status::kInvalidValue);
  EXPECT_EQ(core.insert_right(kA, kNameNull, r, Disposition::kMakeSend, fx), Status::kInvalidValue);
  EXPECT_EQ(snapshot(kA), before);
}

TEST_F(RightTest, InsertRightCanChooseAFreshName) {
  Name r = port();
  const Name chosen = make_name(7, 0x2a);
  Name so_chosen = make_name(9, 3);
  ASSERT_EQ(core.insert_right(kA, so_chosen, r, Disposition::kMakeSendOnce, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kA, so_chosen), kTypeSendOnce);
  // Moving the receive right to a chosen name renames it.
  ASSERT_EQ(core.insert_right(kA, chosen, r, Disposition::kMoveReceive, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kA, chosen), kTypeReceive);
  uint32_t t;
  EXPECT_EQ(core.type(kA, r, &t), Status::kInvalidName);
  // The slots skipped on the way are free and get used later.
  EXPECT_EQ(name_count(kA), 2u);
  for (int i = 0; i < 10; ++i) port();
  EXPECT_EQ(name_count(kA), 12u);
  check();
}

TEST_F(RightTest, ExtractRightMakesAndMovesRights) {
  Name r = port();
  Name out = kNameNull;
  RightType type;
  EXPECT_EQ(core.extract_right(kA, r, Disposition::kCopySend, &out, &type, fx),
            Status::kInvalidRight);
  EXPECT_EQ(core.extract_right(kA, 0x999, Disposition::kMakeSend, &out, &type, fx),
            Status::kInvalidName);
  EXPECT_EQ(core.extract_right(kA, r, Disposition::kMakeSend, &out, &type, fx), Status::kSuccess);
  EXPECT_EQ(out, r);
  EXPECT_EQ(status_of(kA, r).mscount, 1u);
  EXPECT_EQ(core.extract_right(kA, r, Disposition::kMoveReceive, &out, &type, fx),
            Status::kSuccess);
  EXPECT_EQ(type, RightType::kReceive);
  EXPECT_EQ(out, r);  // it rejoins the entry that still holds the send right
  EXPECT_EQ(type_of(kA, r), kTypeReceive | kTypeSend);
}

TEST_F(RightTest, ExtractRightStatusesChangeNothingOnFailure) {
  auto [other, s] = port_with_sender(kB, kA);
  Name r = port();
  Name set = pset();
  Name d = kNameNull;
  ASSERT_EQ(core.allocate(kA, Right::kDeadName, &d), Status::kSuccess);
  const std::string before = snapshot(kA);
  const std::string before_b = snapshot(kB);
  auto refused = [&](Name name, Disposition disposition, Status expect) {
    Name out = 0x1234;
    RightType type = RightType::kSend;
    EXPECT_EQ(core.extract_right(kA, name, disposition, &out, &type, fx), expect);
    EXPECT_EQ(out, kNameNull);
    EXPECT_EQ(type, RightType::kNone);
    EXPECT_EQ(snapshot(kA), before);
    EXPECT_EQ(snapshot(kB), before_b);
  };
  refused(r, static_cast<Disposition>(3), Status::kInvalidValue);
  refused(0x999, Disposition::kMakeSend, Status::kInvalidName);
  refused(kNameNull, Disposition::kMakeSend, Status::kInvalidName);
  refused(r, Disposition::kCopySend, Status::kInvalidRight);      // no send right here
  refused(r, Disposition::kMoveSendOnce, Status::kInvalidRight);  // nor a send-once right
  refused(s, Disposition::kMakeSend, Status::kInvalidRight);      // making needs the receive right
  refused(s, Disposition::kMakeSendOnce, Status::kInvalidRight);
  refused(s, Disposition::kMoveReceive, Status::kInvalidRight);
  refused(set, Disposition::kMoveSend, Status::kInvalidRight);
  refused(d, Disposition::kMoveReceive, Status::kInvalidRight);

  // Quotas: a send-once right over the limit, a right that needs a name
  // when none is left.
  Limits l;
  l.per_task.send_once_rights = 0;
  core.set_limits(l);
  refused(r, Disposition::kMakeSendOnce, Status::kResourceShortage);
  l = Limits{};
  l.per_task.names = name_count(kA);
  core.set_limits(l);
  refused(s, Disposition::kMoveSend, Status::kNoSpace);  // one uref: the right leaves its name
  core.set_limits(Limits{});
}

TEST_F(RightTest, GetRefsReportsEachKind) {
  Name r = port();
  Name set = pset();
  EXPECT_EQ(refs(kA, r, Right::kReceive), 1u);
  EXPECT_EQ(refs(kA, r, Right::kSend), 0u);
  EXPECT_EQ(refs(kA, set, Right::kPortSet), 1u);
  uint32_t u = 5;
  EXPECT_EQ(core.get_refs(kA, kNameNull, Right::kSend, &u), Status::kSuccess);
  EXPECT_EQ(u, 0u);
  EXPECT_EQ(core.get_refs(kA, kNameNull, Right::kReceive, &u), Status::kInvalidName);
  EXPECT_EQ(core.get_refs(kA, r, static_cast<Right>(12), &u), Status::kInvalidValue);
  EXPECT_EQ(core.get_refs(kA, 0x12345, Right::kSend, &u), Status::kInvalidName);
}

}  // namespace
}  // namespace portd::ipc::testing
