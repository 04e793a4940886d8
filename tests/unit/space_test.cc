// Name spaces: names, generations, allocation, the kinds of entries.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using SpaceTest = CoreTest;

TEST_F(SpaceTest, NamesAreNeverNullOrDeadAndCarryAGeneration) {
  Name a = port();
  Name b = port();
  EXPECT_NE(a, kNameNull);
  EXPECT_NE(a, kNameDead);
  EXPECT_NE(a, b);
  EXPECT_EQ(name_index(a), 1u);
  EXPECT_EQ(name_index(b), 2u);
  EXPECT_EQ(name_gen(a), 1u);
}

TEST_F(SpaceTest, AllocateGivesTheRequestedKind) {
  Name r = kNameNull, s = kNameNull, d = kNameNull;
  EXPECT_EQ(core.allocate(kA, Right::kReceive, &r), Status::kSuccess);
  EXPECT_EQ(core.allocate(kA, Right::kPortSet, &s), Status::kSuccess);
  EXPECT_EQ(core.allocate(kA, Right::kDeadName, &d), Status::kSuccess);
  EXPECT_EQ(type_of(kA, r), kTypeReceive);
  EXPECT_EQ(type_of(kA, s), kTypePortSet);
  EXPECT_EQ(type_of(kA, d), kTypeDeadName);
  EXPECT_EQ(refs(kA, d, Right::kDeadName), 1u);
  Name x = 123;
  EXPECT_EQ(core.allocate(kA, Right::kSend, &x), Status::kInvalidValue);
  EXPECT_EQ(x, kNameNull);
  EXPECT_EQ(core.allocate(kA, static_cast<Right>(9), &x), Status::kInvalidValue);
  EXPECT_EQ(name_count(kA), 3u);
}

TEST_F(SpaceTest, AStaleNameNeverReachesTheSlotsNextOccupant) {
  Name first = port();
  ASSERT_EQ(core.mod_refs(kA, first, Right::kReceive, -1, fx), Status::kSuccess);
  // Free slots are reused oldest first; with one slot free it comes back with
  // a new generation.
  Name second = port();
  EXPECT_EQ(name_index(second), name_index(first));
  EXPECT_NE(second, first);
  uint32_t t = 0;
  EXPECT_EQ(core.type(kA, first, &t), Status::kInvalidName);
  EXPECT_EQ(core.type(kA, second, &t), Status::kSuccess);
  EXPECT_EQ(core.mod_refs(kA, first, Right::kReceive, -1, fx), Status::kInvalidName);
  EXPECT_EQ(type_of(kA, second), kTypeReceive);
}

TEST_F(SpaceTest, FreedSlotsAreReusedFirstInFirstOut) {
  Name a = port();
  Name b = port();
  Name c = port();
  ASSERT_EQ(core.mod_refs(kA, b, Right::kReceive, -1, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, a, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(name_index(port()), name_index(b));
  EXPECT_EQ(name_index(port()), name_index(a));
  EXPECT_EQ(name_index(port()), 4u);
  (void)c;
}

TEST_F(SpaceTest, NamesFromAnotherTaskMeanNothingHere) {
  Name mine = port(kA);
  uint32_t t = 0;
  // kB has no names at all yet.
  EXPECT_EQ(core.type(kB, mine, &t), Status::kInvalidName);
  EXPECT_EQ(core.mod_refs(kB, mine, Right::kReceive, -1, fx), Status::kInvalidName);
  EXPECT_EQ(type_of(kA, mine), kTypeReceive);
}

TEST_F(SpaceTest, NamesListsEveryNameWithItsType) {
  Name r = port();
  Name s = pset();
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  std::vector<NameInfo> v;
  ASSERT_EQ(core.names(kA, &v), Status::kSuccess);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, r);
  EXPECT_EQ(v[0].type, kTypeReceive | kTypeSend);
  EXPECT_EQ(v[1].name, s);
  EXPECT_EQ(v[1].type, kTypePortSet);
}

TEST_F(SpaceTest, ReceiveAndSendShareOneNameSendOnceGetsItsOwn) {
  Name r = port();
  ASSERT_EQ(core.insert_right(kA, r, r, Disposition::kMakeSend, fx), Status::kSuccess);
  Name s = kNameNull;
  RightType t;
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSend, &s, &t, fx), Status::kSuccess);
  EXPECT_EQ(s, r);
  EXPECT_EQ(t, RightType::kSend);
  EXPECT_EQ(refs(kA, r, Right::kSend), 2u);
  Name so1 = kNameNull, so2 = kNameNull;
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so1, &t, fx), Status::kSuccess);
  ASSERT_EQ(core.extract_right(kA, r, Disposition::kMakeSendOnce, &so2, &t, fx), Status::kSuccess);
  EXPECT_EQ(t, RightType::kSendOnce);
  EXPECT_NE(so1, r);
  EXPECT_NE(so1, so2);
  EXPECT_EQ(type_of(kA, so1), kTypeSendOnce);
  EXPECT_EQ(status_of(kA, r).sorights, 2u);
  // Dropping the send-once rights unused sends two send-once notifications
  // to the port.
  EXPECT_EQ(core.deallocate(kA, so1, fx), Status::kSuccess);
  EXPECT_EQ(core.deallocate(kA, so2, fx), Status::kSuccess);
  EXPECT_EQ(status_of(kA, r).msgcount, 2u);
  EXPECT_EQ(recv(kA, r).msg.id, static_cast<int32_t>(Notify::kSendOnce));
}

TEST_F(SpaceTest, NameLimitRefusesWithNoSpaceAndNamesTheLimit) {
  Limits l;
  l.per_task.names = 3;
  core.set_limits(l);
  Name a = port(), b = port(), c = port();
  (void)a;
  (void)b;
  (void)c;
  Name d = kNameNull;
  EXPECT_EQ(core.allocate(kA, Right::kReceive, &d), Status::kNoSpace);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNames);
  EXPECT_EQ(d, kNameNull);
  EXPECT_EQ(name_count(kA), 3u);
  core.set_limits(Limits{});
}

}  // namespace
}  // namespace portd::ipc::testing
