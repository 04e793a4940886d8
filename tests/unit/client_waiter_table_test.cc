// libportd's table of calls awaiting a reply (libclient/src/waiter_table.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "libclient/src/waiter_table.h"

namespace portd::detail {
namespace {

struct W {
  int tag = 0;
  bool sleeping = false;
};

TEST(WaiterTableTest, TakeFindsEachWaiterOnceInAnyOrder) {
  WaiterTable<W> table;
  W a{1}, b{2}, c{3};
  table.add(10, &a);
  table.add(11, &b);
  table.add(12, &c);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.take(11), &b);
  EXPECT_EQ(table.take(11), nullptr);
  EXPECT_EQ(table.take(99), nullptr);
  EXPECT_EQ(table.take(12), &c);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.take(10), &a);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.capacity_used(), 0u);
}

TEST(WaiterTableTest, FindIfReturnsTheOldestMatchingLiveWaiter) {
  WaiterTable<W> table;
  W a{1, true}, b{2, false}, c{3, true};
  table.add(1, &a);
  table.add(2, &b);
  table.add(3, &c);
  EXPECT_EQ(table.find_if([](const W& w) { return w.sleeping; }), &a);
  ASSERT_EQ(table.take(1), &a);
  EXPECT_EQ(table.find_if([](const W& w) { return w.sleeping; }), &c);
  EXPECT_EQ(table.find_if([](const W& w) { return w.tag == 9; }), nullptr);
}

TEST(WaiterTableTest, ForEachVisitsOnlyLiveWaiters) {
  WaiterTable<W> table;
  W w[4] = {{1}, {2}, {3}, {4}};
  for (int i = 0; i < 4; ++i) table.add(uint64_t(i), &w[i]);
  ASSERT_EQ(table.take(1), &w[1]);
  std::vector<int> seen;
  table.for_each([&](W& x) { seen.push_back(x.tag); });
  EXPECT_EQ(seen, (std::vector<int>{1, 3, 4}));
  table.clear();
  seen.clear();
  table.for_each([&](W& x) { seen.push_back(x.tag); });
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(table.size(), 0u);
}

// One call waits while 10,000 others come and go: the holes they leave
// behind it are compacted away, so the table stays small, and the old call
// is still found.
TEST(WaiterTableTest, ALongWaitDoesNotLetHolesPileUp) {
  WaiterTable<W> table;
  W old{0}, other{1};
  table.add(1, &old);
  size_t most = 0;
  for (uint64_t id = 2; id < 10002; ++id) {
    table.add(id, &other);
    ASSERT_EQ(table.take(id), &other);
    most = std::max(most, table.capacity_used());
  }
  EXPECT_LE(most, 2u * 1u + 16u + 1u);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.take(1), &old);
  EXPECT_EQ(table.capacity_used(), 0u);
}

}  // namespace
}  // namespace portd::detail
