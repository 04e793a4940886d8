// WaiterTable: the calls of a Connection that await a reply, by request id.
//
// Ids are taken in increasing order and the daemon mostly answers in that
// order, so the table is a vector searched from its oldest live entry: a
// reply finds its waiter in a step or two, and once the vector has grown an
// entry costs no allocation (a hash map allocated a node per call). A taken
// entry leaves a hole; the oldest live entry moves past holes, and when
// holes outnumber live entries (a call that waits long while many others
// come and go) the vector is compacted, so its size stays within twice the
// live entries plus a small constant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace portd::detail {

template <typename Waiter>
class WaiterTable {
 public:
  void add(uint64_t id, Waiter* waiter) {
    entries_.push_back({id, waiter});
    ++live_;
  }

  // Removes the entry for `id` and returns its waiter; nullptr if none.
  Waiter* take(uint64_t id) {
    for (size_t i = head_; i < entries_.size(); ++i) {
      Entry& e = entries_[i];
      if (e.waiter == nullptr || e.id != id) continue;
      Waiter* waiter = e.waiter;
      e.waiter = nullptr;
      --live_;
      tidy();
      return waiter;
    }
    return nullptr;
  }

  // The oldest live waiter for which `pred` holds; nullptr if none.
  template <typename Pred>
  Waiter* find_if(Pred pred) const {
    for (size_t i = head_; i < entries_.size(); ++i)
      if (entries_[i].waiter != nullptr && pred(*entries_[i].waiter)) return entries_[i].waiter;
    return nullptr;
  }

  template <typename F>
  void for_each(F f) const {
    for (size_t i = head_; i < entries_.size(); ++i)
      if (entries_[i].waiter != nullptr) f(*entries_[i].waiter);
  }

  void clear() {
    entries_.clear();
    head_ = 0;
    live_ = 0;
  }

  size_t size() const { return live_; }
  // Entries held, holes included (for tests of the bound).
  size_t capacity_used() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t id;
    Waiter* waiter;
  };
  static constexpr size_t kSlack = 16;

  void tidy() {
    if (live_ == 0) {
      clear();
      return;
    }
    while (entries_[head_].waiter == nullptr) ++head_;
    const size_t held = entries_.size() - head_;
    if (head_ + held > 2 * live_ + kSlack) {
      size_t out = 0;
      for (size_t i = head_; i < entries_.size(); ++i)
        if (entries_[i].waiter != nullptr) entries_[out++] = entries_[i];
      entries_.resize(out);
      head_ = 0;
    }
  }

  std::vector<Entry> entries_;
  size_t head_ = 0;  // no live entry before it
  size_t live_ = 0;
};

}  // namespace portd::detail
