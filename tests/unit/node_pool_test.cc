// NodePool (daemon/ipc/node_pool.h): freed blocks are reused by size class,
// large requests bypass the pool, and the pooled containers behave as the
// standard ones while their nodes come and go.
#include "daemon/ipc/node_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>

namespace portd::ipc {
namespace {

TEST(NodePoolTest, AFreedBlockServesTheNextRequestOfItsClass) {
  NodePool pool;
  void* a = pool.allocate(40);
  void* b = pool.allocate(40);
  EXPECT_NE(a, b);
  pool.deallocate(a, 40);
  // 33..48 bytes share a class with 40: the freed block comes back.
  EXPECT_EQ(pool.allocate(48), a);
  void* c = pool.allocate(16);  // another class: a fresh block
  EXPECT_NE(c, a);
  EXPECT_NE(c, b);
  pool.deallocate(b, 40);
  pool.deallocate(a, 48);
  pool.deallocate(c, 16);
  // Last freed, first reused.
  EXPECT_EQ(pool.allocate(33), a);
  EXPECT_EQ(pool.allocate(34), b);
  pool.deallocate(a, 33);
  pool.deallocate(b, 34);
}

TEST(NodePoolTest, LargeBlocksAreNotKept) {
  NodePool pool;
  void* big = pool.allocate(NodePool::kMaxBytes + 1);
  pool.deallocate(big, NodePool::kMaxBytes + 1);
  void* small = pool.allocate(NodePool::kMaxBytes);
  pool.deallocate(small, NodePool::kMaxBytes);
  EXPECT_EQ(pool.allocate(NodePool::kMaxBytes), small);
  pool.deallocate(small, NodePool::kMaxBytes);
}

struct Counted {
  Counted() { ++live; }
  ~Counted() { --live; }
  static inline int live = 0;
  uint64_t payload[3] = {1, 2, 3};
};

TEST(NodePoolTest, ObjectsAreConstructedAndDestroyed) {
  NodePool pool;
  Counted* a = pool.create<Counted>();
  EXPECT_EQ(Counted::live, 1);
  EXPECT_EQ(a->payload[2], 3u);
  pool.destroy(a);
  EXPECT_EQ(Counted::live, 0);
  Counted* b = pool.create<Counted>();
  EXPECT_EQ(b, a);
  EXPECT_EQ(b->payload[0], 1u);  // constructed afresh in the reused block
  pool.destroy(b);
}

TEST(NodePoolTest, PooledContainersMatchTheStandardOnes) {
  NodePool pool;
  PooledMap<uint64_t, uint64_t> map{&pool};
  PooledSet<uint64_t> set{&pool};
  std::map<uint64_t, uint64_t> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t key = rng() % 512;
    if (rng() % 2 == 0) {
      map[key] = static_cast<uint64_t>(i);
      set.insert(key);
      model[key] = static_cast<uint64_t>(i);
    } else {
      EXPECT_EQ(map.erase(key), model.erase(key));
      set.erase(key);
    }
  }
  ASSERT_EQ(map.size(), model.size());
  ASSERT_EQ(set.size(), model.size());
  for (const auto& [key, value] : model) {
    ASSERT_EQ(map.count(key), 1u);
    EXPECT_EQ(map.at(key), value);
    EXPECT_EQ(set.count(key), 1u);
  }
}

}  // namespace
}  // namespace portd::ipc
