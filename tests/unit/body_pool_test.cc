// BodyPool: small body buffers come back for reuse, within its bounds.
#include "daemon/server/body_pool.h"

#include <gtest/gtest.h>

#include <thread>

namespace portd::server {
namespace {

TEST(BodyPool, AGivenBufferComesBackEmptyWithItsCapacity) {
  BodyPool::release_all();
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
  BodyPool::release_all();
  BodyPool::give(std::vector<uint8_t>(BodyPool::kMaxMediumCapacity + 1));
  BodyPool::give(std::vector<uint8_t>());
  EXPECT_EQ(BodyPool::spare(), 0u);
  BodyPool::give(std::vector<uint8_t>(BodyPool::kMaxCapacity));
  BodyPool::give(std::vector<uint8_t>(BodyPool::kMaxMediumCapacity));
  EXPECT_EQ(BodyPool::spare(), 2u);
  BodyPool::release_all();
}

TEST(BodyPool, KeepsAtMostItsCountInEachClass) {
  BodyPool::release_all();
  for (size_t i = 0; i < BodyPool::kMaxBuffers + 10; ++i) BodyPool::give(std::vector<uint8_t>(16));
  EXPECT_EQ(BodyPool::spare(), BodyPool::kMaxBuffers);
  for (size_t i = 0; i < BodyPool::kMaxMediumBuffers + 10; ++i)
    BodyPool::give(std::vector<uint8_t>(4096));
  EXPECT_EQ(BodyPool::spare(), BodyPool::kMaxBuffers + BodyPool::kMaxMediumBuffers);
  BodyPool::release_all();
}

TEST(BodyPool, AMediumBodyGetsAKeptBufferThatHoldsIt) {
  BodyPool::release_all();
  std::vector<uint8_t> four(4096), eight(8192);
  const uint8_t* four_storage = four.data();
  const uint8_t* eight_storage = eight.data();
  BodyPool::give(std::move(eight));
  BodyPool::give(std::move(four));
  // 6 KiB: only the 8 KiB buffer holds it, though the 4 KiB one is newer.
  std::vector<uint8_t> got = BodyPool::take(6 * 1024);
  EXPECT_EQ(got.data(), eight_storage);
  EXPECT_EQ(got.size(), 0u);
  EXPECT_EQ(BodyPool::take(6 * 1024).capacity(), 0u);  // nothing else holds it
  got = BodyPool::take(4096);
  EXPECT_EQ(got.data(), four_storage);
  EXPECT_EQ(BodyPool::spare(), 0u);
  // A small body does not take a medium buffer, nor a body too large for
  // the pool any buffer.
  BodyPool::give(std::vector<uint8_t>(4096));
  EXPECT_EQ(BodyPool::take(64).capacity(), 0u);
  EXPECT_EQ(BodyPool::take(BodyPool::kMaxMediumCapacity + 1).capacity(), 0u);
  EXPECT_EQ(BodyPool::spare(), 1u);
  BodyPool::release_all();
}

TEST(BodyPool, EachThreadHasItsOwn) {
  BodyPool::release_all();
  BodyPool::give(std::vector<uint8_t>(16));
  size_t seen = 99;
  std::thread([&] { seen = BodyPool::spare(); }).join();
  EXPECT_EQ(seen, 0u);
  EXPECT_EQ(BodyPool::spare(), 1u);
  BodyPool::release_all();
}

}  // namespace
}  // namespace portd::server
