// Name spaces: slots, generations, the free list and dead-name conversion.
//
// A name is (index << 8) | generation. A slot's generation changes each time
// the slot is reused, so a name kept after its right went away never reaches
// the slot's next occupant. Free slots are reused first-in first-out, which
// keeps a freed index (and its generation) out of circulation for as long as
// possible.
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

Name CoreImpl::name_of(const Space& space, uint32_t index) const {
  return make_name(index, space.table[index].gen);
}

Entry* CoreImpl::lookup(Space& space, Name name) {
  if (name == kNameNull || name == kNameDead) return nullptr;
  const uint32_t index = name_index(name);
  if (index == 0 || index >= space.table.size()) return nullptr;
  Entry& e = space.table[index];
  if (e.bits == 0 || e.gen != name_gen(name)) return nullptr;
  if (e.port != nullptr && !e.port->active) convert_dead(space, index, e);
  return &e;
}

uint32_t CoreImpl::alloc_slot(Space& space, Account* account) {
  if (!charge(account, Limit::kNames, 1)) return 0;
  while (!space.free_list.empty()) {
    auto [index, epoch] = space.free_list.front();
    space.free_list.pop_front();
    Entry& e = space.table[index];
    if (!e.in_free_list || e.free_epoch != epoch) continue;  // taken by name since
    e.in_free_list = false;
    e.gen = (e.gen + 1) & kNameGenMask;
    ++space.live;
    return index;
  }
  const auto index = static_cast<uint32_t>(space.table.size());
  assert(index < (1u << (32 - kNameGenBits)) - 1);
  space.table.emplace_back();
  space.table.back().gen = 1;
  ++space.live;
  return index;
}

uint32_t CoreImpl::alloc_slot_named(Space& space, Name name, Account* account) {
  const uint32_t index = name_index(name);
  if (index == 0 || name == kNameDead) return 0;
  if (index < space.table.size()) {
    Entry& e = space.table[index];
    if (e.bits != 0 || e.holds != 0) return 0;
  }
  if (!charge(account, Limit::kNames, 1)) return 0;
  while (space.table.size() <= index) {
    space.table.emplace_back();
    Entry& fresh = space.table.back();
    fresh.gen = 1;
    const auto fresh_index = static_cast<uint32_t>(space.table.size() - 1);
    if (fresh_index != index) push_free(space, fresh_index);
  }
  Entry& e = space.table[index];
  e.in_free_list = false;  // any queued copy is now stale
  e.gen = name_gen(name);
  ++space.live;
  return index;
}

void CoreImpl::push_free(Space& space, uint32_t index) {
  Entry& e = space.table[index];
  e.in_free_list = true;
  ++e.free_epoch;
  space.free_list.emplace_back(index, e.free_epoch);
}

void CoreImpl::free_slot(Space& space, uint32_t index, Account* account) {
  Entry& e = space.table[index];
  assert(e.bits == 0 && e.request == nullptr);
  e.urefs = 0;
  e.port = nullptr;
  e.pset = nullptr;
  e.maker = nullptr;
  if (e.holds != 0) return;  // still charged; released by release_hold
  uncharge(account, Limit::kNames, 1);
  --space.live;
  push_free(space, index);
}

void CoreImpl::release_hold(Space& space, uint32_t index, Account* account) {
  Entry& e = space.table[index];
  assert(e.holds > 0);
  if (--e.holds == 0 && e.bits == 0) free_slot(space, index, account);
}

void CoreImpl::unmap_port(Space& space, Port* port, uint32_t index) {
  auto it = space.by_port.find(port);
  if (it != space.by_port.end() && it->second == index) space.by_port.erase(it);
}

uint32_t CoreImpl::slot_for_port(const Space& space, const Port* port) const {
  auto it = space.by_port.find(const_cast<Port*>(port));
  return it == space.by_port.end() ? 0 : it->second;
}

void CoreImpl::convert_dead(Space& space, uint32_t index, Entry& e) {
  Port* p = e.port;
  assert(p != nullptr && !p->active);
  assert(!(e.bits & kTypeReceive));
  uint32_t urefs = 0;
  if (e.bits & kTypeSend) {
    urefs = e.urefs;
    assert(p->srights > 0);
    --p->srights;
    unmap_port(space, p, index);
  }
  if (e.bits & kTypeSendOnce) {
    urefs = 1;
    assert(p->sorights > 0);
    --p->sorights;
    uncharge(e.maker, Limit::kSendOnceRights, 1);
    account_unref(e.maker);
    e.maker = nullptr;
  }
  e.bits = kTypeDeadName;
  e.urefs = urefs;
  e.port = nullptr;
  port_unref(p);
}

void CoreImpl::entry_lost_right(Space& space, uint32_t index, uint32_t bit, Effects& fx) {
  Entry& e = space.table[index];
  Port* p = e.port;
  assert(p != nullptr && (e.bits & bit));
  port_ref(p);  // keeps p alive through what follows
  switch (bit) {
    case kTypeReceive:
      e.bits &= ~kTypeReceive;
      detach_receiver(p, Status::kRcvPortDied, fx);
      ++space.account->refs;  // destroy_receive takes the charge with a reference
      destroy_receive(p, space.account, fx);
      break;
    case kTypeSend:
      e.bits &= ~kTypeSend;
      e.urefs = 0;
      drop_send_count(p, fx);
      break;
    case kTypeSendOnce: {
      e.bits &= ~kTypeSendOnce;
      HeldRight so{p, RightType::kSendOnce, false, e.maker};
      port_ref(p);
      e.maker = nullptr;
      release_right(std::move(so), fx);
      break;
    }
    default: assert(false);
  }
  // The entry may have been converted meanwhile (a dead-name request fired
  // when the port died): then it is a dead name and stays.
  if ((e.bits & (kTypeSend | kTypeReceive | kTypeSendOnce)) == 0 && e.port == p) {
    if (e.request != nullptr) {
      DnRequest* r = e.request;
      HeldRight so = std::move(r->notify);
      r->notify = {};
      cancel_dn_request(r);
      notify(std::move(so), Notify::kPortDeleted, name_of(space, index), fx);
    }
    unmap_port(space, p, index);
    e.port = nullptr;
    port_unref(p);  // the entry's reference
    if (e.bits == 0) free_slot(space, index, space.account);
  }
  port_unref(p);
}

}  // namespace portd::ipc
