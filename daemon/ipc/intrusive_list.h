// IntrusiveList: a doubly linked list whose links live inside the elements.
//
// The core's queues (messages on a port, messages across a port set, waiting
// receivers and senders, dead-name requests) must give O(1) insertion at the
// tail and O(1) removal of any element, without allocating. An element may
// sit in several lists at once, one Link member per list. The list never owns
// its elements.
#pragma once

#include <cassert>
#include <cstddef>

namespace portd::ipc {

struct Link {
  Link* prev = nullptr;
  Link* next = nullptr;
  void* owner = nullptr;  // the element this link is embedded in
  bool linked() const { return next != nullptr; }
};

template <typename T, Link T::*kLink>
class IntrusiveList {
 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() { assert(empty()); }

  bool empty() const { return head_.next == &head_; }
  size_t size() const { return size_; }

  T* front() const { return empty() ? nullptr : from_link(head_.next); }
  T* back() const { return empty() ? nullptr : from_link(head_.prev); }

  void push_back(T* item) { insert_before(&head_, item); }
  void push_front(T* item) { insert_before(head_.next, item); }

  // Inserts `item` before `pos` (pos must be in this list).
  void insert_before(T* pos, T* item) { insert_before(&(pos->*kLink), item); }

  void remove(T* item) {
    Link& l = item->*kLink;
    assert(l.linked());
    l.prev->next = l.next;
    l.next->prev = l.prev;
    l.prev = l.next = nullptr;
    --size_;
  }

  T* pop_front() {
    T* item = front();
    if (item != nullptr) remove(item);
    return item;
  }

  T* next(const T* item) const {
    const Link* n = (item->*kLink).next;
    return n == &head_ ? nullptr : from_link(n);
  }

  T* prev(const T* item) const {
    const Link* p = (item->*kLink).prev;
    return p == &head_ ? nullptr : from_link(p);
  }

  // Inserts `item` after `pos` (pos must be in this list).
  void insert_after(T* pos, T* item) { insert_before((pos->*kLink).next, item); }

  static bool linked(const T* item) { return (item->*kLink).linked(); }

  // Iteration that tolerates removal of the current element.
  template <typename F>
  void for_each(F&& f) const {
    for (Link* l = head_.next; l != &head_;) {
      Link* n = l->next;
      f(from_link(l));
      l = n;
    }
  }

 private:
  void insert_before(Link* pos, T* item) {
    Link& l = item->*kLink;
    assert(!l.linked());
    l.owner = item;
    l.prev = pos->prev;
    l.next = pos;
    pos->prev->next = &l;
    pos->prev = &l;
    ++size_;
  }

  static T* from_link(const Link* l) { return static_cast<T*>(l->owner); }

  Link head_;
  size_t size_ = 0;
};

}  // namespace portd::ipc
