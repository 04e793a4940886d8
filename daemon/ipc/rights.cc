// Rights moving between name spaces and messages, rights released, ports
// dying.
//
// Copyin happens in two steps so that a failed operation changes nothing:
// plan_right() checks every right an operation needs against the space,
// counting what earlier rights of the same operation already took (so
// "MOVE_SEND x, MOVE_SEND x" with one uref fails as a whole), and only when
// every right checks out does copyin() take them. copyin() cannot fail.
//
// Reference and count rules (the invariants the unit tests check):
//  * Every Entry with a port, and every HeldRight, holds one Port::refs.
//  * Port::srights counts send rights: one per Entry with kTypeSend
//    (whatever its urefs) plus one per held send right.
//  * Port::sorights counts send-once rights, in entries and held.
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

CoreImpl::Tally& tally_for(std::vector<CoreImpl::Tally>& tallies, Name name) {
  for (auto& t : tallies)
    if (t.name == name) return t;
  tallies.push_back(CoreImpl::Tally{name});
  return tallies.back();
}

}  // namespace

bool CoreImpl::plan_right(Space& space, Name name, Disposition d, std::vector<Tally>& tallies,
                          Planned* out) {
  *out = Planned{};
  out->name = name;
  out->disposition = d;
  if (!valid_disposition(static_cast<uint8_t>(d))) return false;
  if (name == kNameNull) {
    out->null = true;
    return true;
  }
  const bool send_like =
      d == Disposition::kMoveSend || d == Disposition::kCopySend || d == Disposition::kMoveSendOnce;
  if (name == kNameDead) {
    out->dead = true;
    return send_like;
  }
  Entry* e = lookup(space, name);
  if (e == nullptr) return false;
  out->slot = name_index(name);
  Tally& t = tally_for(tallies, name);
  switch (d) {
    case Disposition::kMoveReceive:
    case Disposition::kMakeSend:
    case Disposition::kMakeSendOnce:
      if (!(e->bits & kTypeReceive) || t.receive_taken) return false;
      if (d == Disposition::kMoveReceive) t.receive_taken = true;
      out->port = e->port;
      return true;
    case Disposition::kCopySend:
    case Disposition::kMoveSend: {
      const bool take = d == Disposition::kMoveSend;
      if (e->bits & kTypeSend) {
        if (e->urefs <= t.send_taken) return false;
        if (take) ++t.send_taken;
        out->port = e->port;
        return true;
      }
      if (e->bits & kTypeDeadName) {
        if (e->urefs <= t.dead_taken) return false;
        if (take) ++t.dead_taken;
        out->dead = true;
        return true;
      }
      return false;
    }
    case Disposition::kMoveSendOnce:
      if (e->bits & kTypeSendOnce) {
        if (t.so_taken) return false;
        t.so_taken = true;
        out->port = e->port;
        return true;
      }
      if (e->bits & kTypeDeadName) {
        if (e->urefs <= t.dead_taken) return false;
        ++t.dead_taken;
        out->dead = true;
        return true;
      }
      return false;
    default: return false;
  }
}

HeldRight CoreImpl::copyin(Space& space, const Planned& p, Port* transit_dest, uint32_t* held_slot,
                           Effects& fx) {
  if (held_slot != nullptr) *held_slot = 0;
  if (p.null) return HeldRight{nullptr, right_type_of(p.disposition)};
  if (p.dead) {
    HeldRight r;
    r.dead = true;
    r.type = right_type_of(p.disposition);
    const bool moves =
        p.disposition == Disposition::kMoveSend || p.disposition == Disposition::kMoveSendOnce;
    if (p.slot != 0 && moves) {
      Entry& e = space.table[p.slot];
      assert(e.bits & kTypeDeadName);
      if (--e.urefs == 0) {
        e.bits = 0;
        if (held_slot != nullptr) {
          ++e.holds;
          *held_slot = p.slot;
        }
        free_slot(space, p.slot, space.account);
      }
    }
    return r;
  }

  Entry& e = space.table[p.slot];
  Port* port = p.port;
  assert(port != nullptr && port->active);
  HeldRight r;
  r.port = port;
  port_ref(port);
  bool emptied = false;
  switch (p.disposition) {
    case Disposition::kMoveReceive:
      r.type = RightType::kReceive;
      e.bits &= ~kTypeReceive;
      // The port stays charged to this task until a receiver takes the
      // right (copyout) or it dies (release_right): moving ports into
      // messages must not let a task hold more than its quota.
      r.maker = space.account;
      ++space.account->refs;
      detach_receiver(port, Status::kRcvPortChanged, fx);
      port->transit_dest = transit_dest;
      emptied = true;
      break;
    case Disposition::kMakeSend:
      r.type = RightType::kSend;
      ++port->mscount;
      ++port->srights;
      break;
    case Disposition::kCopySend:
      r.type = RightType::kSend;
      ++port->srights;
      break;
    case Disposition::kMoveSend:
      r.type = RightType::kSend;
      if (--e.urefs == 0) {
        e.bits &= ~kTypeSend;  // the entry's count passes to the held right
        emptied = true;
      } else {
        ++port->srights;
      }
      break;
    case Disposition::kMakeSendOnce:
      r.type = RightType::kSendOnce;
      ++port->sorights;
      r.maker = space.account;
      ++space.account->refs;
      charge_force(space.account, Limit::kSendOnceRights, 1);
      break;
    case Disposition::kMoveSendOnce:
      r.type = RightType::kSendOnce;
      e.bits &= ~kTypeSendOnce;
      r.maker = e.maker;
      e.maker = nullptr;
      emptied = true;
      break;
    default: assert(false);
  }
  if (emptied && (e.bits & (kTypeSend | kTypeReceive | kTypeSendOnce)) == 0) {
    if (e.request != nullptr) {
      DnRequest* req = e.request;
      HeldRight so = std::move(req->notify);
      req->notify = {};
      cancel_dn_request(req);
      notify(std::move(so), Notify::kPortDeleted, p.name, fx);
    }
    unmap_port(space, port, p.slot);
    e.port = nullptr;
    port_unref(port);
    if (e.bits == 0) {
      if (held_slot != nullptr) {
        ++e.holds;
        *held_slot = p.slot;
      }
      free_slot(space, p.slot, space.account);
    }
  }
  return r;
}

Name CoreImpl::copyout(Space& space, HeldRight&& in, Effects& fx, bool* ok, uint32_t preferred) {
  HeldRight r = std::move(in);
  in = {};
  *ok = true;
  if (r.port == nullptr) return r.dead ? kNameDead : kNameNull;
  Port* port = r.port;
  const Task* owner = find_task(space.task);
  if (owner == nullptr || owner->dying) {
    release_right(std::move(r), fx);
    *ok = false;
    return kNameNull;
  }
  if (!port->active) {
    // A right to a dead port arrives as MACH_PORT_DEAD.
    release_right(std::move(r), fx);
    return kNameDead;
  }
  auto usable = [&](uint32_t index) {
    return index != 0 && index < space.table.size() && space.table[index].bits == 0 &&
           space.table[index].holds != 0;
  };
  // A held slot (see PendingSend) is still charged as a name; its hold is
  // released by whoever placed it.
  auto place = [&](uint32_t index_hint) -> uint32_t {
    return usable(index_hint) ? index_hint : alloc_slot(space, space.account);
  };

  switch (r.type) {
    case RightType::kSend: {
      if (uint32_t index = slot_for_port(space, port); index != 0) {
        Entry& e = space.table[index];
        if (e.bits & kTypeSend) {
          if (e.urefs < kUrefsMax) ++e.urefs;  // at the cap, the extra right is dropped
          --port->srights;                     // the entry already counts one
        } else {
          e.bits |= kTypeSend;
          e.urefs = 1;
        }
        port_unref(port);  // the entry already holds one
        return name_of(space, index);
      }
      const uint32_t index = place(preferred);
      if (index == 0) {
        release_right(std::move(r), fx);
        *ok = false;
        return kNameNull;
      }
      Entry& e = space.table[index];
      e.bits = kTypeSend;
      e.urefs = 1;
      e.port = port;
      space.by_port[port] = index;
      return name_of(space, index);
    }
    case RightType::kSendOnce: {
      const uint32_t index = place(preferred);
      if (index == 0) {
        release_right(std::move(r), fx);
        *ok = false;
        return kNameNull;
      }
      Entry& e = space.table[index];
      e.bits = kTypeSendOnce;
      e.urefs = 1;
      e.port = port;
      e.maker = r.maker;
      return name_of(space, index);
    }
    case RightType::kReceive: {
      // The charge passes from whoever put the right in transit to this
      // task. Back to the same account (a restored send, a right moved to
      // another name) it simply stays, whatever the limit is now.
      Account* was = r.maker;
      r.maker = nullptr;
      const bool same = was == space.account;
      if (!same) uncharge(was, Limit::kPorts, 1);
      account_unref(was);
      if (!same && !charge(space.account, Limit::kPorts, 1)) {
        release_right(std::move(r), fx);
        *ok = false;
        return kNameNull;
      }
      uint32_t index = slot_for_port(space, port);
      if (index != 0) {
        space.table[index].bits |= kTypeReceive;
        port_unref(port);
      } else {
        index = place(preferred);
        if (index == 0) {
          uncharge(space.account, Limit::kPorts, 1);
          release_right(std::move(r), fx);
          *ok = false;
          return kNameNull;
        }
        Entry& e = space.table[index];
        e.bits = kTypeReceive;
        e.urefs = 0;
        e.port = port;
        space.by_port[port] = index;
      }
      port->receiver = &space;
      port->receiver_name = name_of(space, index);
      port->transit_dest = nullptr;
      return port->receiver_name;
    }
    default: assert(false); return kNameNull;
  }
}

HeldRight CoreImpl::make_send_once(Port* port, Account* maker) {
  HeldRight r{port, RightType::kSendOnce, false, maker};
  port_ref(port);
  ++port->sorights;
  if (maker != nullptr) {
    ++maker->refs;
    charge_force(maker, Limit::kSendOnceRights, 1);
  }
  return r;
}

void CoreImpl::drop_send_count(Port* p, Effects& fx) {
  assert(p->srights > 0);
  if (--p->srights == 0 && p->active && !p->ns_request.empty()) {
    HeldRight so = std::move(p->ns_request);
    p->ns_request = {};
    notify(std::move(so), Notify::kNoSenders, p->mscount, fx);
  }
}

void CoreImpl::consume_send_once(HeldRight&& in) {
  HeldRight so = std::move(in);
  in = {};
  if (so.port == nullptr) return;
  assert(so.type == RightType::kSendOnce && so.port->sorights > 0);
  --so.port->sorights;
  uncharge(so.maker, Limit::kSendOnceRights, 1);
  account_unref(so.maker);
  port_unref(so.port);
}

void CoreImpl::release_right(HeldRight&& in, Effects& fx) {
  HeldRight r = std::move(in);
  in = {};
  Port* p = r.port;
  if (p == nullptr) return;
  switch (r.type) {
    case RightType::kSend:
      drop_send_count(p, fx);
      port_unref(p);
      break;
    case RightType::kSendOnce:
      // A send-once right destroyed unused tells its receiver so, through
      // the right itself.
      if (p->active)
        notify(std::move(r), Notify::kSendOnce, 0, fx);
      else
        consume_send_once(std::move(r));
      break;
    case RightType::kReceive:
      destroy_receive(p, r.maker, fx);  // the charge ends, or rides on
      port_unref(p);
      break;
    default: assert(false);
  }
}

void CoreImpl::port_unref(Port* p) {
  assert(p->refs > 0);
  if (--p->refs != 0) return;
  assert(!p->active && p->queue.empty() && p->senders.empty() && p->receivers.empty());
  delete p;
  --port_objects_;
}

bool CoreImpl::circular(const Port* p, const Port* dest) {
  // Follow where each receive right in transit is going; if that leads back
  // to p, nobody could ever receive p's messages.
  for (const Port* x = dest; x != nullptr; x = x->transit_dest) {
    if (x == p) return true;
    if (x->receiver != nullptr || !x->active) return false;
  }
  return false;
}

void CoreImpl::detach_receiver(Port* p, Status wake, Effects& fx) {
  if (p->receiver == nullptr) return;
  if (p->pset != nullptr) set_remove(p);
  while (Waiter* w = p->receivers.pop_front()) wake_waiter(w, wake, fx);
  p->receiver = nullptr;
  p->receiver_name = kNameNull;
}

void CoreImpl::destroy_receive(Port* p, Account* charged, Effects& fx) {
  assert(p->active && p->receiver == nullptr);
  if (!p->pd_request.empty()) {
    // The backup-port pattern: the receive right goes to the registered port
    // instead of dying (unless that would make a cycle).
    HeldRight so = std::move(p->pd_request);
    p->pd_request = {};
    if (so.port->active && !circular(p, so.port)) {
      notify_port_destroyed(std::move(so), p, charged, fx);
      return;
    }
    release_right(std::move(so), fx);
  }
  uncharge(charged, Limit::kPorts, 1);
  account_unref(charged);
  kill_port(p, fx);
}

void CoreImpl::kill_port(Port* p, Effects& fx) {
  if (!p->active) return;
  p->active = false;
  ports_.erase(p->id);
  if (p->pset != nullptr) set_remove(p);
  port_ref(p);  // until reaped
  dying_.push_back(p);
  reap(fx);
}

void CoreImpl::reap(Effects& fx) {
  if (reaping_) return;
  reaping_ = true;
  while (!dying_.empty()) {
    Port* p = dying_.back();
    dying_.pop_back();
    // Receivers waiting on it.
    while (Waiter* w = p->receivers.pop_front()) wake_waiter(w, Status::kRcvPortDied, fx);
    // Senders waiting for room: blocked ones get their rights back with
    // invalid-destination; cached ones are destroyed and their notify right,
    // unused, tells the sender through a send-once notification.
    while (PendingSend* ps = p->senders.pop_front()) {
      if (ps->token != 0)
        fail_pending(ps, Status::kSendInvalidDest, fx);
      else
        drop_cached(ps, fx);
    }
    // Queued messages.
    while (Message* m = p->queue.front()) {
      unqueue(m);
      if (PendingSend* ps = m->rendezvous) {
        if (ps->token != 0)
          fail_pending(ps, Status::kSendInvalidDest, fx);
        else
          drop_cached(ps, fx);
      } else {
        count_destroyed(m, DestroyReason::kPortDied);
        if (observer_ != nullptr) observe(MessageEventKind::kDestroy, p, m);
        destroy_message(m, fx);
      }
    }
    if (!p->ns_request.empty()) {
      HeldRight so = std::move(p->ns_request);
      p->ns_request = {};
      release_right(std::move(so), fx);
    }
    if (!p->pd_request.empty()) {
      HeldRight so = std::move(p->pd_request);
      p->pd_request = {};
      release_right(std::move(so), fx);
    }
    fire_dead_names(p, fx);
    if (p->registered != 0) unbind_port(p, fx);
    port_unref(p);
  }
  reaping_ = false;
}

}  // namespace portd::ipc
