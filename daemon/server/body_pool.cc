#include "daemon/server/body_pool.h"

#include <utility>

namespace portd::server {

namespace {

struct Spares {
  std::vector<std::vector<uint8_t>> small;   // capacity <= kMaxCapacity
  std::vector<std::vector<uint8_t>> medium;  // kMaxCapacity < capacity <= kMaxMediumCapacity
};

Spares& spares() {
  thread_local Spares pool;
  return pool;
}

std::vector<uint8_t> pop_back(std::vector<std::vector<uint8_t>>& from) {
  std::vector<uint8_t> body = std::move(from.back());
  from.pop_back();
  return body;
}

}  // namespace

std::vector<uint8_t> BodyPool::take(size_t size) {
  Spares& pool = spares();
  if (size <= kMaxCapacity) {
    // A small buffer holds anything up to kMaxCapacity once it has grown; a
    // smaller one grows in the caller's assign.
    return pool.small.empty() ? std::vector<uint8_t>{} : pop_back(pool.small);
  }
  if (size <= kMaxMediumCapacity) {
    // The newest one that holds `size` (the class is short: kMaxMediumBuffers).
    auto& medium = pool.medium;
    for (size_t i = medium.size(); i-- > 0;) {
      if (medium[i].capacity() < size) continue;
      if (i + 1 != medium.size()) std::swap(medium[i], medium.back());
      return pop_back(medium);
    }
  }
  return {};
}

void BodyPool::give(std::vector<uint8_t>&& body) {
  Spares& pool = spares();
  const size_t capacity = body.capacity();
  std::vector<std::vector<uint8_t>>* into = nullptr;
  size_t limit = 0;
  if (capacity == 0) {
    // nothing to keep
  } else if (capacity <= kMaxCapacity) {
    into = &pool.small;
    limit = kMaxBuffers;
  } else if (capacity <= kMaxMediumCapacity) {
    into = &pool.medium;
    limit = kMaxMediumBuffers;
  }
  if (into == nullptr || into->size() >= limit) {
    std::vector<uint8_t>().swap(body);
    return;
  }
  if (into->capacity() == 0) into->reserve(limit);
  body.clear();
  into->push_back(std::move(body));
}

size_t BodyPool::spare() { return spares().small.size() + spares().medium.size(); }

void BodyPool::release_all() {
  spares().small.clear();
  spares().medium.clear();
}

}  // namespace portd::server
