// BodyPool: small body buffers come back for reuse, within its bounds.
#include "daemon/server/body_pool.h"

#include <gtest/gtest.h>

#include <thread>

namespace portd::server {
namespace {

// Empties this thread's pool.
void drain() {
  while (BodyPool::spare() != 0) (void)BodyPool::take();
}

TEST(BodyPool, AGivenBufferComesBackEmptyWithItsCapacity) {
  drain();
  std::vector<uint8_t> body(64, 7);
  const uint8_t* storage = body.data();
  BodyPool::give(std::move(body));
  EXPECT_EQ(BodyPool::spare(), 1u);
  std::vector<uint8_t> again = BodyPool::take();
  EXPECT_EQ(again.size(), 0u);
  EXPECT_GE(again.capacity(), 64u);
  EXPECT_EQ(again.data(), storage);
  EXPECT_EQ(BodyPool::spare(), 0u);
  EXPECT_EQ(BodyPool::take().capacity(), 0u);  // none spare: a fresh, empty one
}

TEST(BodyPool, LargeAndEmptyBuffersAreNotKept) {
  drain();
  BodyPool::give(std::vector<uint8_t>(BodyPool::kMaxCapacity + 1));
  BodyPool::give(std::vector<uint8_t>());
  EXPECT_EQ(BodyPool::spare(), 0u);
  BodyPool::give(std::vector<uint8_t>(BodyPool::kMaxCapacity));
  EXPECT_EQ(BodyPool::spare(), 1u);
  drain();
}

TEST(BodyPool, KeepsAtMostItsCount) {
  drain();
  for (size_t i = 0; i < BodyPool::kMaxBuffers + 10; ++i) BodyPool::give(std::vector<uint8_t>(16));
  EXPECT_EQ(BodyPool::spare(), BodyPool::kMaxBuffers);
  drain();
}

TEST(BodyPool, EachThreadHasItsOwn) {
  drain();
  BodyPool::give(std::vector<uint8_t>(16));
  size_t seen = 99;
  std::thread([&] { seen = BodyPool::spare(); }).join();
  EXPECT_EQ(seen, 0u);
  EXPECT_EQ(BodyPool::spare(), 1u);
  drain();
}

}  // namespace
}  // namespace portd::server
