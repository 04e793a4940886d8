// The mach_port_* operations on a task's own name space.
//
// Statuses follow XNU's for the same call: KERN_INVALID_NAME when the name
// denotes nothing, KERN_INVALID_RIGHT when it denotes something without the
// right asked for, KERN_INVALID_VALUE for arguments out of range.
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

bool valid_right(Right r) {
  return static_cast<uint32_t>(r) <= static_cast<uint32_t>(Right::kDeadName);
}

uint32_t bit_of(Right r) {
  switch (r) {
    case Right::kSend: return kTypeSend;
    case Right::kReceive: return kTypeReceive;
    case Right::kSendOnce: return kTypeSendOnce;
    case Right::kPortSet: return kTypePortSet;
    case Right::kDeadName: return kTypeDeadName;
  }
  return 0;
}

}  // namespace

Status CoreImpl::allocate(TaskId task_id, Right right, Name* out) {
  *out = kNameNull;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Space& space = t->space;
  switch (right) {
    case Right::kReceive: {
      if (!can_charge(space.account, Limit::kPorts, 1)) return Status::kResourceShortage;
      const uint32_t index = alloc_slot(space, space.account);
      if (index == 0) return Status::kNoSpace;
      charge_force(space.account, Limit::kPorts, 1);
      auto* p = new Port;
      ++port_objects_;
      p->id = next_port_id_++;
      p->refs = 1;  // the entry's
      ports_.emplace(p->id, p);
      Entry& e = space.table[index];
      e.bits = kTypeReceive;
      e.port = p;
      space.by_port[p] = index;
      p->receiver = &space;
      p->receiver_name = name_of(space, index);
      *out = p->receiver_name;
      return Status::kSuccess;
    }
    case Right::kPortSet: {
      if (!can_charge(space.account, Limit::kPortSets, 1)) return Status::kResourceShortage;
      const uint32_t index = alloc_slot(space, space.account);
      if (index == 0) return Status::kNoSpace;
      charge_force(space.account, Limit::kPortSets, 1);
      auto s = std::make_unique<PortSet>();
      s->id = next_pset_id_++;
      s->space = &space;
      s->name = name_of(space, index);
      Entry& e = space.table[index];
      e.bits = kTypePortSet;
      e.pset = s.get();
      *out = s->name;
      psets_.emplace(s->id, std::move(s));
      return Status::kSuccess;
    }
    case Right::kDeadName: {
      const uint32_t index = alloc_slot(space, space.account);
      if (index == 0) return Status::kNoSpace;
      Entry& e = space.table[index];
      e.bits = kTypeDeadName;
      e.urefs = 1;
      *out = name_of(space, index);
      return Status::kSuccess;
    }
    default: return Status::kInvalidValue;
  }
}

Status CoreImpl::deallocate(TaskId task_id, Name name, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (name == kNameNull || name == kNameDead) return Status::kSuccess;
  Space& space = t->space;
  Entry* e = lookup(space, name);
  if (e == nullptr) return Status::kInvalidName;
  const uint32_t index = name_index(name);
  if (e->bits & kTypeDeadName) {
    if (--e->urefs == 0) {
      e->bits = 0;
      free_slot(space, index, space.account);
    }
    return Status::kSuccess;
  }
  if (e->bits & kTypeSendOnce) {
    entry_lost_right(space, index, kTypeSendOnce, fx);
  } else if (e->bits & kTypeSend) {
    if (--e->urefs == 0) entry_lost_right(space, index, kTypeSend, fx);
  } else {
    return Status::kInvalidRight;  // a receive right or a port set
  }
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::mod_refs(TaskId task_id, Name name, Right right, int32_t delta, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_right(right)) return Status::kInvalidValue;
  if (name == kNameNull || name == kNameDead)
    return right == Right::kSend || right == Right::kSendOnce ? Status::kSuccess
                                                              : Status::kInvalidName;
  Space& space = t->space;
  Entry* e = lookup(space, name);
  if (e == nullptr) return Status::kInvalidName;
  const uint32_t index = name_index(name);
  if (!(e->bits & bit_of(right))) return Status::kInvalidRight;

  switch (right) {
    case Right::kReceive:
    case Right::kSendOnce:
    case Right::kPortSet:
      if (delta == 0) return Status::kSuccess;
      if (delta != -1) return Status::kInvalidValue;
      if (right == Right::kPortSet)
        destroy_pset(space, index, fx);
      else
        entry_lost_right(space, index, bit_of(right), fx);
      break;
    case Right::kSend:
    case Right::kDeadName: {
      const int64_t urefs = static_cast<int64_t>(e->urefs) + delta;
      if (urefs < 0) return Status::kInvalidValue;
      if (urefs > kUrefsMax) return Status::kUrefsOverflow;
      if (urefs > 0) {
        e->urefs = static_cast<uint32_t>(urefs);
      } else if (right == Right::kSend) {
        entry_lost_right(space, index, kTypeSend, fx);
      } else {
        e->bits = 0;
        e->urefs = 0;
        free_slot(space, index, space.account);
      }
      break;
    }
  }
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::destroy(TaskId task_id, Name name, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (name == kNameNull || name == kNameDead) return Status::kSuccess;
  Space& space = t->space;
  Entry* e = lookup(space, name);
  if (e == nullptr) return Status::kInvalidName;
  const uint32_t index = name_index(name);
  if (e->bits & kTypePortSet) {
    destroy_pset(space, index, fx);
  } else if (e->bits & kTypeDeadName) {
    e->bits = 0;
    e->urefs = 0;
    free_slot(space, index, space.account);
  } else {
    // Receive first: the entry's other rights go with it.
    if (e->bits & kTypeReceive) entry_lost_right(space, index, kTypeReceive, fx);
    if (e->port != nullptr && !e->port->active) convert_dead(space, index, *e);
    if (e->bits & kTypeSend) entry_lost_right(space, index, kTypeSend, fx);
    if (e->bits & kTypeSendOnce) entry_lost_right(space, index, kTypeSendOnce, fx);
    if (e->bits & kTypeDeadName) {
      e->bits = 0;
      e->urefs = 0;
      free_slot(space, index, space.account);
    }
  }
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::insert_right(TaskId task_id, Name name, Name right_name, Disposition d,
                              Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (name == kNameNull || name == kNameDead) return Status::kInvalidValue;
  if (!valid_disposition(static_cast<uint8_t>(d))) return Status::kInvalidValue;
  Space& space = t->space;
  if (lookup(space, right_name) == nullptr) return Status::kInvalidName;
  std::vector<Tally> tallies;
  Planned p;
  if (!plan_right(space, right_name, d, tallies, &p) || p.dead) return Status::kInvalidRight;
  const RightType rt = right_type_of(d);
  Port* port = p.port;

  Entry* target = lookup(space, name);
  if (target != nullptr) {
    // The name exists: only more of the same port's rights may join it.
    if (rt == RightType::kSendOnce || target->port != port) return Status::kNameExists;
    if (rt == RightType::kReceive) {
      if (name == right_name) return Status::kSuccess;  // moved onto itself
      return Status::kNameExists;
    }
    // A send right joining the entry that names the port.
    if (name == right_name && d == Disposition::kMoveSend) return Status::kSuccess;
    if ((target->bits & kTypeSend) && target->urefs >= kUrefsMax) return Status::kUrefsOverflow;
    HeldRight r = copyin(space, p, nullptr, nullptr, fx);
    bool ok;
    copyout(space, std::move(r), fx, &ok);
    assert(ok);
    reap(fx);
    return Status::kSuccess;
  }

  // A fresh name: its slot must be free, and the port must not already have
  // another name here (one name per port per space).
  const uint32_t index = name_index(name);
  if (index < space.table.size() && (space.table[index].bits != 0 || space.table[index].holds != 0))
    return Status::kNameExists;
  if (rt != RightType::kSendOnce) {
    if (uint32_t other = slot_for_port(space, port); other != 0) {
      const Entry& oe = space.table[other];
      const bool stays = rt == RightType::kReceive
                             ? (oe.bits & kTypeSend) != 0
                             : true;  // a send right would join the existing name
      if (stays) return Status::kRightExists;
    }
  }
  if (d == Disposition::kMakeSendOnce && !can_charge(space.account, Limit::kSendOnceRights, 1))
    return Status::kResourceShortage;
  const uint32_t slot = alloc_slot_named(space, name, space.account);
  if (slot == 0) return last_limit_ == Limit::kNames ? Status::kNoSpace : Status::kNameExists;
  // Hold the new slot while the right is taken from its old name, then put
  // the right into it.
  space.table[slot].holds = 1;
  HeldRight r = copyin(space, p, nullptr, nullptr, fx);
  bool ok;
  const Name placed = copyout(space, std::move(r), fx, &ok, slot);
  release_hold(space, slot, space.account);
  assert(ok && placed == name);
  (void)placed;
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::extract_right(TaskId task_id, Name name, Disposition d, Name* out,
                               RightType* out_type, Effects& fx) {
  *out = kNameNull;
  *out_type = RightType::kNone;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_disposition(static_cast<uint8_t>(d))) return Status::kInvalidValue;
  Space& space = t->space;
  if (lookup(space, name) == nullptr) return Status::kInvalidName;
  std::vector<Tally> tallies;
  Planned p;
  if (!plan_right(space, name, d, tallies, &p)) return Status::kInvalidRight;
  if (d == Disposition::kMakeSendOnce && !can_charge(space.account, Limit::kSendOnceRights, 1))
    return Status::kResourceShortage;
  // Refuse up front if the right would need a new name and none is left:
  // copyout could only destroy it then.
  if (!p.dead) {
    const Entry& src = space.table[p.slot];
    bool joins = false;
    switch (d) {
      case Disposition::kMoveReceive: joins = (src.bits & kTypeSend) != 0; break;
      case Disposition::kMoveSend: joins = src.urefs > 1 || (src.bits & kTypeReceive); break;
      case Disposition::kCopySend:
      case Disposition::kMakeSend: joins = true; break;
      default: joins = false; break;  // send-once rights always get a name of their own
    }
    if (!joins && !can_charge(space.account, Limit::kNames, 1)) return Status::kNoSpace;
  }
  HeldRight r = copyin(space, p, nullptr, nullptr, fx);
  *out_type = r.type;
  bool ok;
  *out = copyout(space, std::move(r), fx, &ok);
  reap(fx);
  return ok ? Status::kSuccess : Status::kNoSpace;
}

Status CoreImpl::get_refs(TaskId task_id, Name name, Right right, uint32_t* out) {
  *out = 0;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_right(right)) return Status::kInvalidValue;
  if (name == kNameNull || name == kNameDead)
    return right == Right::kSend || right == Right::kSendOnce ? Status::kSuccess
                                                              : Status::kInvalidName;
  Entry* e = lookup(t->space, name);
  if (e == nullptr) return Status::kInvalidName;
  if (!(e->bits & bit_of(right))) return Status::kSuccess;
  switch (right) {
    case Right::kSend:
    case Right::kDeadName: *out = e->urefs; break;
    default: *out = 1; break;
  }
  return Status::kSuccess;
}

Status CoreImpl::type(TaskId task_id, Name name, uint32_t* out) {
  *out = 0;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Entry* e = lookup(t->space, name);
  if (e == nullptr) return Status::kInvalidName;
  *out = e->bits | (e->request != nullptr ? kTypeDnRequest : 0);
  return Status::kSuccess;
}

Status CoreImpl::names(TaskId task_id, std::vector<NameInfo>* out) {
  out->clear();
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Space& space = t->space;
  out->reserve(space.live);
  for (uint32_t index = 1; index < space.table.size(); ++index) {
    Entry& e = space.table[index];
    if (e.bits == 0) continue;
    if (e.port != nullptr && !e.port->active) convert_dead(space, index, e);
    out->push_back(
        NameInfo{name_of(space, index), e.bits | (e.request != nullptr ? kTypeDnRequest : 0)});
  }
  return Status::kSuccess;
}

Status CoreImpl::get_attributes(TaskId task_id, Name name, PortStatus* out) {
  *out = PortStatus{};
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Entry* e = lookup(t->space, name);
  if (e == nullptr) return Status::kInvalidName;
  if (!(e->bits & kTypeReceive)) return Status::kInvalidRight;
  const Port* p = e->port;
  out->pset = p->pset != nullptr ? p->pset->name : kNameNull;
  out->seqno = static_cast<uint32_t>(p->seqno);
  out->mscount = p->mscount;
  out->qlimit = p->qlimit;
  out->msgcount = static_cast<uint32_t>(p->queue.size());
  out->sorights = p->sorights;
  out->srights = p->srights > 0;
  out->pdrequest = !p->pd_request.empty();
  out->nsrequest = !p->ns_request.empty();
  out->flags = 0;
  return Status::kSuccess;
}

Status CoreImpl::set_qlimit(TaskId task_id, Name name, uint32_t qlimit, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Entry* e = lookup(t->space, name);
  if (e == nullptr) return Status::kInvalidName;
  if (!(e->bits & kTypeReceive)) return Status::kInvalidRight;
  if (qlimit > kQueueLimitMax) return Status::kInvalidValue;
  e->port->qlimit = qlimit;
  admit(e->port, fx);
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::move_member(TaskId task_id, Name member, Name after, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Space& space = t->space;
  Entry* me = lookup(space, member);
  if (me == nullptr) return Status::kInvalidName;
  if (!(me->bits & kTypeReceive)) return Status::kInvalidRight;
  Port* p = me->port;
  if (after == kNameNull) {
    if (p->pset == nullptr) return Status::kNotInSet;
    set_remove(p);
    return Status::kSuccess;
  }
  Entry* se = lookup(space, after);
  if (se == nullptr) return Status::kInvalidName;
  if (!(se->bits & kTypePortSet)) return Status::kInvalidRight;
  PortSet* s = se->pset;
  if (p->pset == s) return Status::kAlreadyInSet;
  if (p->pset != nullptr) set_remove(p);
  set_add(s, p);
  feed_set(s, fx);
  reap(fx);
  return Status::kSuccess;
}

}  // namespace portd::ipc
