// NodePool: free lists for the small objects that come and go with every
// parked request (hash-table nodes, waiters), so that parking a request and
// completing it reuse memory instead of calling malloc and free each time.
//
// A block of n bytes (n <= kMaxBytes) belongs to a size class of kGrain-byte
// steps; a freed block goes onto its class's list and the next allocation of
// that class takes it back. Larger requests (a hash table's bucket array)
// go to operator new and delete as usual. The pool only ever holds what was
// once in use at the same time, which the parked-request quotas bound, and
// gives it all back when it is destroyed. Not synchronized: the core has one
// thread.
//
// NodeAllocator<T> is the standard allocator interface over a pool; all
// allocators of one pool compare equal. The pool must outlive every
// container that uses it (declare it first).
#pragma once

#include <cstddef>
#include <functional>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace portd::ipc {

class NodePool {
 public:
  static constexpr size_t kGrain = 16;
  static constexpr size_t kMaxBytes = 256;

  NodePool() = default;
  ~NodePool() {
    for (Free*& head : free_) {
      while (head != nullptr) {
        Free* next = head->next;
        ::operator delete(head);
        head = next;
      }
    }
  }
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  void* allocate(size_t bytes) {
    if (bytes == 0 || bytes > kMaxBytes) return ::operator new(bytes);
    const size_t c = (bytes - 1) / kGrain;
    if (Free* f = free_[c]) {
      free_[c] = f->next;
      return f;
    }
    return ::operator new((c + 1) * kGrain);
  }
  void deallocate(void* p, size_t bytes) {
    if (bytes == 0 || bytes > kMaxBytes) {
      ::operator delete(p);
      return;
    }
    const size_t c = (bytes - 1) / kGrain;
    free_[c] = new (p) Free{free_[c]};
  }

  // One object of type T in a block of the pool.
  template <typename T>
  T* create() {
    return new (allocate(sizeof(T))) T();
  }
  template <typename T>
  void destroy(T* p) {
    p->~T();
    deallocate(p, sizeof(T));
  }

 private:
  struct Free {
    Free* next;
  };
  Free* free_[kMaxBytes / kGrain] = {};
};

template <typename T>
class NodeAllocator {
 public:
  using value_type = T;
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

  NodeAllocator(NodePool* pool) noexcept : pool_(pool) {}  // NOLINT: implicit by design
  template <typename U>
  NodeAllocator(const NodeAllocator<U>& other) noexcept : pool_(other.pool()) {}

  T* allocate(size_t n) {
    return static_cast<T*>(n == 1 ? pool_->allocate(sizeof(T)) : ::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1)
      pool_->deallocate(p, sizeof(T));
    else
      ::operator delete(p);
  }
  NodePool* pool() const noexcept { return pool_; }

  template <typename U>
  bool operator==(const NodeAllocator<U>& other) const noexcept {
    return pool_ == other.pool();
  }

 private:
  NodePool* pool_;
};

template <typename K, typename V>
using PooledMap =
    std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, NodeAllocator<std::pair<const K, V>>>;
template <typename K>
using PooledSet = std::unordered_set<K, std::hash<K>, std::equal_to<K>, NodeAllocator<K>>;

}  // namespace portd::ipc
