// FifoVector: first in, first out, across the slot reuse and reclaiming
// that keep it from allocating once warm.
#include "portd/fifo_vector.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace portd {
namespace {

std::vector<int> contents(const FifoVector<int>& q) { return {q.begin(), q.end()}; }

TEST(FifoVector, KeepsOrderAcrossReuseAndReclaim) {
  FifoVector<int> q;
  EXPECT_TRUE(q.empty());
  int next_in = 0, next_out = 0;
  // Never empty for long: pops leave slots at the front until they are
  // most of the vector, and then it is reclaimed.
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 3; ++i) q.emplace_back(next_in++);
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(q.front(), next_out++);
      q.pop_front();
    }
    ASSERT_EQ(q.size(), static_cast<size_t>(next_in - next_out));
  }
  std::vector<int> expected;
  for (int v = next_out; v < next_in; ++v) expected.push_back(v);
  EXPECT_EQ(contents(q), expected);
  while (!q.empty()) {
    EXPECT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
  EXPECT_EQ(q.size(), 0u);
  q.push_back(7);
  EXPECT_EQ(contents(q), std::vector<int>{7});
  EXPECT_EQ(q.back(), 7);
}

TEST(FifoVector, APoppedElementLetsGoOfWhatItHeld) {
  FifoVector<std::shared_ptr<std::string>> q;
  auto held = std::make_shared<std::string>("held");
  q.push_back(std::shared_ptr<std::string>(held));
  q.emplace_back(std::make_shared<std::string>("next"));
  EXPECT_EQ(held.use_count(), 2);
  q.pop_front();
  EXPECT_EQ(held.use_count(), 1);  // not kept alive by the spent slot
  EXPECT_EQ(*q.front(), "next");
}

}  // namespace
}  // namespace portd
