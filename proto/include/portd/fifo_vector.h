// FifoVector: a first-in first-out queue in one vector. Standard library
// only, like status.h beside it: the pure core uses it too.
//
// Slots popped from the front are reused once the queue empties, and
// reclaimed when they are most of it. So a queue that keeps being filled and
// emptied allocates nothing once it has grown to its working size, where a
// std::deque allocates a node every few elements as it moves along and frees
// one behind it. Unlike a deque, adding to it may move the elements: hold no
// reference across emplace_back or push_back.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace portd {

template <class T>
class FifoVector {
 public:
  bool empty() const { return first_ == items_.size(); }
  size_t size() const { return items_.size() - first_; }
  T& front() { return items_[first_]; }
  const T& front() const { return items_[first_]; }
  T& back() { return items_.back(); }
  template <class... Args>
  T& emplace_back(Args&&... args) {
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  void push_back(T&& v) { items_.push_back(std::move(v)); }
  void pop_front() {
    items_[first_] = T{};  // lets go of what it held now
    if (++first_ == items_.size()) {
      items_.clear();
      first_ = 0;
    } else if (first_ >= kReclaimAt && 2 * first_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(first_));
      first_ = 0;
    }
  }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(first_); }
  auto end() const { return items_.end(); }

 private:
  static constexpr size_t kReclaimAt = 32;
  std::vector<T> items_;
  size_t first_ = 0;
};

}  // namespace portd
