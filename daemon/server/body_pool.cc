#include "daemon/server/body_pool.h"

#include <utility>

namespace portd::server {

namespace {

std::vector<std::vector<uint8_t>>& spares() {
  thread_local std::vector<std::vector<uint8_t>> pool;
  return pool;
}

}  // namespace

std::vector<uint8_t> BodyPool::take() {
  auto& pool = spares();
  if (pool.empty()) return {};
  std::vector<uint8_t> body = std::move(pool.back());
  pool.pop_back();
  return body;
}

void BodyPool::give(std::vector<uint8_t>&& body) {
  auto& pool = spares();
  const size_t capacity = body.capacity();
  if (capacity == 0 || capacity > kMaxCapacity || pool.size() >= kMaxBuffers) {
    std::vector<uint8_t>().swap(body);
    return;
  }
  if (pool.capacity() == 0) pool.reserve(kMaxBuffers);
  body.clear();
  pool.push_back(std::move(body));
}

size_t BodyPool::spare() { return spares().size(); }

}  // namespace portd::server
