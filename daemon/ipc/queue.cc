// Sending and receiving: queues, waiting senders and receivers, port sets.
//
// A port's queue holds messages in arrival order. Messages to a send-once
// right and notifications are exempt from the queue limit; the others are
// counted, and when `counted` reaches `qlimit` senders must wait (DESIGN 2.1):
// a blocked sender is a PendingSend with a WaitToken, a cached one a
// PendingSend without. Pending senders are let in strictly in the order they
// arrived (admit()).
//
// A rendezvous port (qlimit 0) never has room. Its pending senders' messages
// sit in the queue itself, visible to receivers but flagged
// (Message::rendezvous): the sender is answered when a receiver takes its
// message, which is what "the send completes only when a receiver takes it"
// means. This keeps receives on port sets O(1) for rendezvous members too.
//
// A port set's queue threads every member's queued messages in global
// arrival order (Message::set_link), so the next message for a set is always
// the head of one list, whatever the number of members.
#include <cassert>
#include <limits>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

// ---------------------------------------------------------------------------
// Messages

Message* CoreImpl::new_message() {
  if (message_pool_.empty()) return new Message;
  Message* m = message_pool_.back();
  message_pool_.pop_back();
  return m;
}

void CoreImpl::free_message(Message* m) {
  assert(!m->port_link.linked() && !m->set_link.linked());
  assert(m->dest.empty() && m->reply.empty() && m->charged == nullptr);
  constexpr size_t kPoolMax = 1024;
  if (message_pool_.size() >= kPoolMax) {
    delete m;
    return;
  }
  m->id = 0;
  m->body = {};
  m->descriptors.clear();
  m->trailer = {};
  m->charged_bytes = m->charged_ool = m->charged_fds = 0;
  m->exempt = m->counted = false;
  m->rendezvous = nullptr;
  m->arrival = 0;
  m->queued_on = nullptr;
  message_pool_.push_back(m);
}

void CoreImpl::uncharge_message(Message* m) {
  if (m->charged == nullptr) return;
  uncharge(m->charged, SendCharge{1, m->charged_bytes, m->charged_ool, m->charged_fds});
  account_unref(m->charged);
  m->charged = nullptr;
}

void CoreImpl::count_destroyed(const Message* m, DestroyReason why) {
  if (m->trailer.sender == 0) {
    ++counters_.notifications_destroyed;
    return;
  }
  ++counters_.messages_destroyed;
  --counters_.messages_in_flight;
  switch (why) {
    case DestroyReason::kPortDied: ++counters_.destroyed_port_died; break;
    case DestroyReason::kTooLarge: ++counters_.destroyed_too_large; break;
    case DestroyReason::kSenderDied: ++counters_.destroyed_sender_died; break;
  }
}

void CoreImpl::count_received(const Message* m) {
  if (m->trailer.sender == 0) {
    ++counters_.notifications_received;
    return;
  }
  ++counters_.messages_received;
  --counters_.messages_in_flight;
}

void CoreImpl::destroy_message(Message* m, Effects& fx) {
  assert(m->rendezvous == nullptr);
  uncharge_message(m);
  release_right(std::move(m->dest), fx);
  release_right(std::move(m->reply), fx);
  for (auto& d : m->descriptors) {
    if (auto* r = std::get_if<HeldRight>(&d)) {
      release_right(std::move(*r), fx);
    } else if (auto* ool = std::get_if<OolAttachment>(&d)) {
      fx.released.push_back(ool->id);
    } else {
      for (auto& r2 : std::get<HeldPorts>(d).rights) release_right(std::move(r2), fx);
    }
  }
  free_message(m);
}

// ---------------------------------------------------------------------------
// Queues

bool CoreImpl::has_receiver(const Port* p) const {
  return !p->receivers.empty() || (p->pset != nullptr && !p->pset->receivers.empty());
}

void CoreImpl::enqueue(Port* port, Message* m) {
  m->queued_on = port;
  port->queue.push_back(m);
  if (!m->exempt && m->rendezvous == nullptr) {
    m->counted = true;
    ++port->counted;
  }
  if (port->pset != nullptr) port->pset->queue.push_back(m);
  ++queued_messages_;
  queued_bytes_ += m->body.size();
}

void CoreImpl::unqueue(Message* m) {
  Port* port = m->queued_on;
  assert(port != nullptr && m->port_link.linked());
  port->queue.remove(m);
  if (m->set_link.linked()) port->pset->queue.remove(m);
  if (m->counted) {
    m->counted = false;
    --port->counted;
  }
  --queued_messages_;
  queued_bytes_ -= m->body.size();
}

uint64_t CoreImpl::region_fds(const Message* m) {
  uint64_t n = 0;
  for (const auto& d : m->descriptors)
    if (const auto* ool = std::get_if<OolAttachment>(&d)) n += ool->fds();
  return n;
}

bool CoreImpl::too_large(const Message* m, const ReceiveOptions& o, uint32_t* needed) const {
  if (o.max_size == 0) return false;
  const uint64_t size = mach_size(m->descriptors, m->body.size()) + o.trailer_size;
  if (needed != nullptr)
    *needed = static_cast<uint32_t>(std::min<uint64_t>(size, std::numeric_limits<uint32_t>::max()));
  return size > o.max_size;
}

void CoreImpl::deliver(Port* port, Message* m, Effects& fx) {
  if (!port->active) {
    count_destroyed(m, DestroyReason::kPortDied);
    if (observer_ != nullptr) observe(MessageEventKind::kDestroy, port, m);
    destroy_message(m, fx);
    return;
  }
  if (m->rendezvous == nullptr) {
    ++port->msgs_in;
    if (observer_ != nullptr) observe(MessageEventKind::kSend, port, m);
  }
  m->arrival = next_arrival_++;
  for (;;) {
    Waiter* w = port->receivers.front();
    if (w != nullptr) {
      port->receivers.remove(w);
    } else if (port->pset != nullptr && (w = port->pset->receivers.front()) != nullptr) {
      port->pset->receivers.remove(w);
    } else {
      break;
    }
    if (hand_over(w, m, fx)) return;
  }
  enqueue(port, m);
}

bool CoreImpl::hand_over(Waiter* w, Message* m, Effects& fx) {
  Port* from = m->port_link.linked() ? m->queued_on : nullptr;
  Completion c;
  c.token = w->token;
  c.task = w->task;
  const bool large = w->options.large;
  unpark(w->task, w->token);
  if (too_large(m, w->options, &c.needed_size)) {
    c.status = Status::kRcvTooLarge;
    free_waiter(w);
    fx.completions.push_back(std::move(c));
    if (large) return false;  // the message stays for the next receiver
    if (from != nullptr) unqueue(m);
    discard(m, fx);
    if (from != nullptr) admit(from, fx);
    return true;
  }
  if (from != nullptr) unqueue(m);
  Task* t = task(w->task);
  assert(t != nullptr);
  free_waiter(w);
  take(t->space, m, fx, &c.status, &c.limit, c.message.emplace());
  fx.completions.push_back(std::move(c));
  if (from != nullptr) admit(from, fx);
  return true;
}

void CoreImpl::discard(Message* m, Effects& fx) {
  // A receiver without MACH_RCV_LARGE had no room for it: the message is
  // destroyed (its sender, if still waiting on a rendezvous, succeeded).
  if (PendingSend* rv = m->rendezvous) {
    m->rendezvous = nullptr;
    if (observer_ != nullptr) observe(MessageEventKind::kSend, m->dest.port, m);
    accept_pending(rv, fx);
  }
  count_destroyed(m, DestroyReason::kTooLarge);
  if (observer_ != nullptr) observe(MessageEventKind::kDestroy, m->dest.port, m);
  destroy_message(m, fx);
}

void CoreImpl::take(Space& space, Message* m, Effects& fx, Status* status, Limit* limit,
                    MessageOut& out) {
  Port* port = m->dest.port;
  // Every field is set here: the caller's MessageOut is filled in place.
  out.descriptors.clear();
  out.local = port->receiver_name;
  out.local_type = m->dest.type;
  out.id = m->id;
  out.trailer = m->trailer;
  out.trailer.seqno = port->seqno++;
  ++port->msgs_out;
  count_received(m);
  if (m->rendezvous != nullptr) {
    ++port->msgs_in;
    if (observer_ != nullptr) observe(MessageEventKind::kSend, port, m);
  }
  if (observer_ != nullptr) observe(MessageEventKind::kReceive, port, m, out.trailer.seqno);

  // The destination right is used up by the delivery.
  if (m->dest.type == RightType::kSendOnce) {
    consume_send_once(std::move(m->dest));
  } else {
    HeldRight dest = std::move(m->dest);
    m->dest = {};
    drop_send_count(dest.port, fx);
    port_unref(dest.port);
  }

  // A copyout refused by a quota records it in last_limit_: keep what the
  // caller had there, and report ours through *limit.
  const Limit outer_limit = last_limit_;
  last_limit_ = Limit::kNone;
  bool header_ok = true;
  bool body_ok = true;
  bool ok = true;
  out.remote_type = m->reply.type;
  out.remote = copyout(space, std::move(m->reply), fx, &ok);
  header_ok = ok;
  out.descriptors.reserve(m->descriptors.size());
  for (auto& d : m->descriptors) {
    if (auto* r = std::get_if<HeldRight>(&d)) {
      const RightType type = r->type;
      out.descriptors.emplace_back(PortDescOut{copyout(space, std::move(*r), fx, &ok), type});
      body_ok = body_ok && ok;
    } else if (auto* ool = std::get_if<OolAttachment>(&d)) {
      out.descriptors.emplace_back(OolOut{ool->id, ool->size, ool->is_volatile, ool->deallocate,
                                          ool->release_signal, ool->is_body});
    } else {
      auto& ports = std::get<HeldPorts>(d);
      OolPortsOut po;
      po.type = ports.type;
      po.names.reserve(ports.rights.size());
      for (auto& r2 : ports.rights) {
        po.names.push_back(copyout(space, std::move(r2), fx, &ok));
        body_ok = body_ok && ok;
      }
      out.descriptors.emplace_back(std::move(po));
    }
  }
  out.body = std::move(m->body);
  PendingSend* rv = m->rendezvous;
  m->rendezvous = nullptr;
  uncharge_message(m);
  free_message(m);
  if (rv != nullptr) accept_pending(rv, fx);
  *status =
      !header_ok ? Status::kRcvHeaderError : (!body_ok ? Status::kRcvBodyError : Status::kSuccess);
  *limit = *status == Status::kSuccess ? Limit::kNone : last_limit_;
  last_limit_ = outer_limit;
}

void CoreImpl::queue_pending(Port* port, PendingSend* ps, Effects& fx) {
  if (port->qlimit == 0) {
    ps->msg->rendezvous = ps;
    port->rendezvous_queued = true;
    if (has_receiver(port)) {
      deliver(port, ps->msg, fx);
    } else {
      // Visible from now on: it takes its place in arrival order (a port set
      // merges its members' queues by arrival).
      ps->msg->arrival = next_arrival_++;
      enqueue(port, ps->msg);
    }
  } else {
    port->senders.push_back(ps);
  }
}

void CoreImpl::admit(Port* port, Effects& fx) {
  if (!port->active) return;
  if (port->qlimit == 0) {
    while (PendingSend* ps = port->senders.pop_front()) queue_pending(port, ps, fx);
    return;
  }
  // Rendezvous messages left from when the limit was 0 go first.
  bool rendezvous_left = false;
  for (Message* m = port->rendezvous_queued ? port->queue.front() : nullptr; m != nullptr;) {
    Message* next = port->queue.next(m);
    if (port->counted >= port->qlimit) {
      rendezvous_left = true;  // not all looked at: keep looking next time
      break;
    }
    if (PendingSend* ps = m->rendezvous) {
      m->rendezvous = nullptr;
      if (!m->exempt) {
        m->counted = true;
        ++port->counted;
      }
      ++port->msgs_in;
      if (observer_ != nullptr) observe(MessageEventKind::kSend, port, m);
      accept_pending(ps, fx);
    }
    m = next;
  }
  port->rendezvous_queued = rendezvous_left;
  while (port->counted < port->qlimit && !port->senders.empty()) {
    PendingSend* ps = port->senders.pop_front();
    Message* m = ps->msg;
    ps->msg = nullptr;
    deliver(port, m, fx);
    accept_pending(ps, fx);
  }
}

// ---------------------------------------------------------------------------
// Pending senders

void CoreImpl::release_holds(PendingSend* ps) {
  auto it = tasks_.find(ps->task);
  if (it != tasks_.end()) {
    Space& space = it->second->space;
    for (const auto& o : ps->origins)
      if (o.held_slot != 0) release_hold(space, o.held_slot, space.account);
  }
  ps->origins.clear();
}

void CoreImpl::free_pending(PendingSend* ps) {
  assert(!ps->link.linked() && ps->notify.empty());
  release_holds(ps);
  if (ps->notify_port != nullptr) port_unref(ps->notify_port);
  delete ps;
}

void CoreImpl::accept_pending(PendingSend* ps, Effects& fx) {
  if (ps->token != 0) {
    Completion c;
    c.token = ps->token;
    c.task = ps->task;
    c.status = Status::kSuccess;
    fx.completions.push_back(std::move(c));
    unpark(ps->task, ps->token);
  } else {
    if (Task* t = task(ps->task)) t->cached_threads.erase(ps->thread);
    HeldRight so = std::move(ps->notify);
    ps->notify = {};
    notify(std::move(so), Notify::kMsgAccepted, ps->dest_name, fx);
  }
  free_pending(ps);
}

void CoreImpl::cache_pending(PendingSend* ps, Effects& fx) {
  ps->token = 0;
  release_holds(ps);  // the rights will not come back now
  Task* t = task(ps->task);
  if (ps->notify_port != nullptr && ps->notify_port->active)
    ps->notify = make_send_once(ps->notify_port, t != nullptr ? t->account : nullptr);
  if (t != nullptr) t->cached_threads.insert(ps->thread);
}

void CoreImpl::drop_cached(PendingSend* ps, Effects& fx) {
  Message* m = ps->msg;
  ps->msg = nullptr;
  if (ps->link.linked()) ps->port->senders.remove(ps);
  if (m->port_link.linked()) unqueue(m);
  m->rendezvous = nullptr;
  if (Task* t = task(ps->task)) t->cached_threads.erase(ps->thread);
  count_destroyed(m, DestroyReason::kPortDied);
  destroy_message(m, fx);
  HeldRight so = std::move(ps->notify);
  ps->notify = {};
  release_right(std::move(so), fx);  // a send-once notification tells the sender
  free_pending(ps);
}

void CoreImpl::fail_pending(PendingSend* ps, Status status, Effects& fx) {
  Message* m = ps->msg;
  if (ps->link.linked()) ps->port->senders.remove(ps);
  if (m->port_link.linked()) unqueue(m);
  m->rendezvous = nullptr;
  if (ps->token != 0) {
    Completion c;
    c.token = ps->token;
    c.task = ps->task;
    c.status = status;
    fx.completions.push_back(std::move(c));
    unpark(ps->task, ps->token);
  }
  ++counters_.messages_refused;
  --counters_.messages_in_flight;
  restore_to_sender(ps, fx);
  free_pending(ps);
}

void CoreImpl::restore_to_sender(PendingSend* ps, Effects& fx) {
  Message* m = ps->msg;
  ps->msg = nullptr;
  Task* t = task(ps->task);
  uncharge_message(m);
  // The rights go back where they came from, whatever the task made or was
  // given meanwhile: no quota may turn "nothing consumed" into a lost right.
  ForceCharges force(*this);
  size_t i = 0;
  auto give_back = [&](HeldRight&& in) {
    HeldRight r = std::move(in);
    in = {};
    assert(i < ps->origins.size());
    const PendingSend::Origin& o = ps->origins[i++];
    if (t == nullptr) {
      release_right(std::move(r), fx);
      return;
    }
    switch (o.disposition) {
      case Disposition::kMoveSend:
      case Disposition::kMoveSendOnce:
      case Disposition::kMoveReceive: {
        if (r.dead) {
          restore_dead_uref(t->space, o.name, o.held_slot);
        } else {
          bool ok;
          copyout(t->space, std::move(r), fx, &ok, o.held_slot);
        }
        break;
      }
      case Disposition::kMakeSendOnce:
        consume_send_once(std::move(r));  // it never existed for anyone
        break;
      default:
        release_right(std::move(r), fx);  // the copy goes away
        break;
    }
  };
  give_back(std::move(m->dest));
  if (ps->has_reply) give_back(std::move(m->reply));
  for (auto& d : m->descriptors) {
    if (auto* r = std::get_if<HeldRight>(&d)) {
      give_back(std::move(*r));
    } else if (auto* ool = std::get_if<OolAttachment>(&d)) {
      fx.released.push_back(ool->id);
    } else {
      for (auto& r2 : std::get<HeldPorts>(d).rights) give_back(std::move(r2));
    }
  }
  free_message(m);
}

void CoreImpl::restore_dead_uref(Space& space, Name name, uint32_t held_slot) {
  if (name == kNameNull || name == kNameDead) return;
  if (Entry* e = lookup(space, name); e != nullptr && (e->bits & kTypeDeadName)) {
    if (e->urefs < kUrefsMax) ++e->urefs;
    return;
  }
  if (held_slot != 0 && held_slot < space.table.size()) {
    Entry& e = space.table[held_slot];
    if (e.bits == 0 && e.gen == name_gen(name)) {
      e.bits = kTypeDeadName;
      e.urefs = 1;
    }
  }
}

// ---------------------------------------------------------------------------
// Waiters

void CoreImpl::wake_waiter(Waiter* w, Status status, Effects& fx) {
  unpark(w->task, w->token);
  Completion c;
  c.token = w->token;
  c.task = w->task;
  c.status = status;
  fx.completions.push_back(std::move(c));
  free_waiter(w);
}

// ---------------------------------------------------------------------------
// Port sets

void CoreImpl::set_add(PortSet* s, Port* p) {
  assert(p->pset == nullptr);
  p->pset = s;
  s->members.push_back(p);
  // Merge p's queued messages into the set's arrival order, from the newest
  // end: a port usually joins with recent messages, so this costs about
  // the number of p's messages, and never more than both queues together.
  Message* pos = s->queue.back();
  for (Message* m = p->queue.back(); m != nullptr; m = p->queue.prev(m)) {
    while (pos != nullptr && pos->arrival > m->arrival) pos = s->queue.prev(pos);
    if (pos != nullptr)
      s->queue.insert_after(pos, m);
    else
      s->queue.push_front(m);
  }
}

void CoreImpl::set_remove(Port* p) {
  PortSet* s = p->pset;
  assert(s != nullptr);
  for (Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m))
    if (m->set_link.linked()) s->queue.remove(m);
  s->members.remove(p);
  p->pset = nullptr;
}

void CoreImpl::feed_set(PortSet* s, Effects& fx) {
  while (!s->receivers.empty() && !s->queue.empty()) {
    Waiter* w = s->receivers.pop_front();
    hand_over(w, s->queue.front(), fx);
  }
}

void CoreImpl::destroy_pset(Space& space, uint32_t index, Effects& fx) {
  Entry& e = space.table[index];
  PortSet* s = e.pset;
  while (Waiter* w = s->receivers.pop_front()) wake_waiter(w, Status::kRcvPortDied, fx);
  while (Port* p = s->members.front()) set_remove(p);
  psets_.erase(s->id);
  e.bits = 0;
  e.pset = nullptr;
  uncharge(space.account, Limit::kPortSets, 1);
  free_slot(space, index, space.account);
}

// ---------------------------------------------------------------------------
// send

Status CoreImpl::send(TaskId task_id, MessageIn& in, const SendOptions& o, WaitToken token,
                      Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Space& space = t->space;
  ++counters_.messages_sent;
  auto refused = [&](Status s) {
    ++counters_.messages_refused;
    return s;
  };

  if (!valid_disposition(static_cast<uint8_t>(in.remote_disposition)) ||
      in.remote_disposition == Disposition::kMoveReceive)
    return refused(Status::kSendInvalidHeader);
  if (in.local != kNameNull && (!valid_disposition(static_cast<uint8_t>(in.local_disposition)) ||
                                in.local_disposition == Disposition::kMoveReceive))
    return refused(Status::kSendInvalidHeader);
  if (in.body.size() > limits_.max_inline_body) {
    refuse(Limit::kMessageBytes);
    return refused(Status::kSendTooLarge);
  }
  size_t rights = 0;     // every right the body carries
  size_t in_arrays = 0;  // those in out-of-line port arrays
  uint64_t ool_bytes = 0;
  uint64_t fds = 0;
  for (const auto& d : in.descriptors) {
    if (std::holds_alternative<PortDescIn>(d)) {
      ++rights;
    } else if (const auto* ool = std::get_if<OolIn>(&d)) {
      ool_bytes += ool->size;
      fds += ool->fds();
    } else {
      in_arrays += std::get<OolPortsIn>(d).names.size();
    }
  }
  rights += in_arrays;
  // Descriptors and the ports in arrays count against one limit (as the
  // codec counts them): a port descriptor is one.
  if (in.descriptors.size() + in_arrays > limits_.max_descriptors) {
    refuse(Limit::kMessageDescriptors);
    return refused(Status::kSendTooLarge);
  }

  // Plan every right; nothing changes until all of them check out. (The
  // core's vectors, reused: send() is never re-entered.)
  std::vector<Tally>& tallies = send_tallies_;
  std::vector<Planned>& plan = send_plan_;
  tallies.clear();
  plan.clear();
  plan.reserve(2 + rights);
  Planned p;
  if (in.remote == kNameNull || !plan_right(space, in.remote, in.remote_disposition, tallies, &p) ||
      p.dead || p.null)
    return refused(Status::kSendInvalidDest);
  Port* dest = p.port;
  plan.push_back(p);
  const bool has_reply = in.local != kNameNull;
  if (has_reply) {
    if (!plan_right(space, in.local, in.local_disposition, tallies, &p))
      return refused(Status::kSendInvalidReply);
    plan.push_back(p);
  }
  auto plan_body_right = [&](Name name, Disposition d) {
    if (!valid_disposition(static_cast<uint8_t>(d))) return Status::kSendInvalidType;
    if (!plan_right(space, name, d, tallies, &p)) return Status::kSendInvalidRight;
    // A receive right may not travel towards itself (Mach refuses the cycle).
    if (d == Disposition::kMoveReceive && circular(p.port, dest)) return Status::kSendInvalidRight;
    plan.push_back(p);
    return Status::kSuccess;
  };
  for (const auto& d : in.descriptors) {
    Status s = Status::kSuccess;
    if (const auto* pd = std::get_if<PortDescIn>(&d)) {
      s = plan_body_right(pd->name, pd->disposition);
    } else if (const auto* ports = std::get_if<OolPortsIn>(&d)) {
      if (!valid_disposition(static_cast<uint8_t>(ports->disposition)))
        s = Status::kSendInvalidType;
      for (Name n : ports->names) {
        if (s != Status::kSuccess) break;
        s = plan_body_right(n, ports->disposition);
      }
    }
    if (s != Status::kSuccess) return refused(s);
  }
  Port* notify_port = nullptr;
  if (o.cache) {
    if (o.notify_disposition != Disposition::kMakeSendOnce)
      return refused(Status::kSendInvalidNotify);
    Entry* ne = lookup(space, o.notify);
    if (ne == nullptr || !(ne->bits & kTypeReceive)) return refused(Status::kSendInvalidNotify);
    notify_port = ne->port;
  }

  // Is there room? Replies to send-once rights always fit.
  const bool exempt = right_type_of(in.remote_disposition) == RightType::kSendOnce;
  const bool room = exempt || has_receiver(dest) ||
                    (dest->qlimit > 0 && dest->counted < dest->qlimit && dest->senders.empty());
  const bool cache_now = !room && o.cache && o.timeout_ms == 0;
  const bool park_now = !room && !cache_now;
  if (!room && o.timeout_ms == 0 && !o.cache) return refused(Status::kSendTimedOut);
  if (cache_now && t->cached_threads.count(o.thread) != 0)
    return refused(Status::kSendNotifyInProgress);
  if (park_now && (token == 0 || parked_.count(token) != 0))
    return refused(Status::kInvalidArgument);

  uint64_t send_once_made = 0;
  for (const auto& pl : plan)
    if (!pl.null && !pl.dead && pl.disposition == Disposition::kMakeSendOnce) ++send_once_made;
  Account* acct = t->account;
  // Cache-on-full makes one more send-once right, for the message-accepted
  // notification, charged to this task like the others.
  if (o.cache) ++send_once_made;
  // (A prepaid message's queue charges are held for it already.)
  const SendCharge queue_charge{1, in.body.size(), ool_bytes, fds};
  if ((!o.prepaid && !can_charge(acct, queue_charge)) ||
      !can_charge(acct, Limit::kSendOnceRights, send_once_made) ||
      (park_now && !can_charge(acct, Limit::kParkedRequests, 1)))
    return refused(Status::kSendNoBuffer);

  // Commit: take the rights.
  Message* m = new_message();
  m->id = in.id;
  m->exempt = exempt;
  m->trailer.pid = t->creds.pid;
  m->trailer.uid = t->creds.uid;
  m->trailer.gid = t->creds.gid;
  m->trailer.sender = task_id;
  std::vector<uint32_t> held(park_now ? plan.size() : 0, 0);
  size_t next = 0;
  auto take_next = [&]() {
    uint32_t* h = park_now ? &held[next] : nullptr;
    return copyin(space, plan[next++], dest, h, fx);
  };
  m->dest = take_next();
  if (has_reply) m->reply = take_next();
  m->descriptors.reserve(in.descriptors.size());
  for (const auto& d : in.descriptors) {
    if (std::holds_alternative<PortDescIn>(d)) {
      m->descriptors.emplace_back(take_next());
    } else if (const auto* ool = std::get_if<OolIn>(&d)) {
      m->descriptors.emplace_back(OolAttachment{ool->attachment, ool->size, ool->is_volatile,
                                                ool->deallocate, ool->release_signal,
                                                ool->is_body});
    } else {
      const auto& names = std::get<OolPortsIn>(d);
      HeldPorts ports;
      ports.type = right_type_of(names.disposition);
      ports.rights.reserve(names.names.size());
      for (size_t k = 0; k < names.names.size(); ++k) ports.rights.push_back(take_next());
      m->descriptors.emplace_back(std::move(ports));
    }
  }
  m->body = std::move(in.body);
  in.body = {};
  m->charged = acct;
  ++acct->refs;
  m->charged_bytes = m->body.size();
  m->charged_ool = ool_bytes;
  m->charged_fds = fds;
  if (!o.prepaid) {
    charge_force(acct, queue_charge);
  } else {
    // The message's hold becomes its queue charge: it is no longer held.
    assert(counters_.messages_held >= 1 && counters_.held_bytes >= queue_charge.bytes);
    --counters_.messages_held;
    counters_.held_bytes -= queue_charge.bytes;
  }
  ++counters_.messages_in_flight;

  if (room) {
    deliver(dest, m, fx);
    reap(fx);
    return Status::kSuccess;
  }

  auto* ps = new PendingSend;
  ps->task = task_id;
  ps->thread = o.thread;
  ps->msg = m;
  ps->port = dest;
  ps->cache = o.cache;
  ps->notify_port = notify_port;
  if (notify_port != nullptr) port_ref(notify_port);
  ps->dest_name = in.remote;
  ps->has_reply = has_reply;
  if (park_now) {
    ps->origins.reserve(plan.size());
    for (size_t k = 0; k < plan.size(); ++k)
      ps->origins.push_back({plan[k].name, plan[k].disposition, held[k]});
  }
  if (cache_now) {
    cache_pending(ps, fx);
    queue_pending(dest, ps, fx);
    reap(fx);
    return Status::kSendWillNotify;
  }
  ps->token = token;
  const bool parked = park(*t, token, ps);
  assert(parked);
  (void)parked;
  queue_pending(dest, ps, fx);
  reap(fx);
  return Status::kSendInProgress;
}

// ---------------------------------------------------------------------------
// receive

Status CoreImpl::receive(TaskId task_id, const ReceiveOptions& o, WaitToken token, MessageOut* out,
                         uint32_t* needed_size, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Entry* e = lookup(t->space, o.name);
  Port* port = nullptr;
  PortSet* set = nullptr;
  if (e != nullptr && (e->bits & kTypeReceive))
    port = e->port;
  else if (e != nullptr && (e->bits & kTypePortSet))
    set = e->pset;
  else
    return Status::kRcvInvalidName;

  if (Message* m = port != nullptr ? port->queue.front() : set->queue.front()) {
    Port* from = m->queued_on;
    if (o.max_fds != UINT64_MAX && region_fds(m) > o.max_fds)
      return Status::kRcvTooLarge;  // it stays queued
    if (too_large(m, o, needed_size)) {
      if (o.large) return Status::kRcvTooLarge;  // it stays queued
      unqueue(m);
      discard(m, fx);
      admit(from, fx);
      reap(fx);
      return Status::kRcvTooLarge;
    }
    unqueue(m);
    Status status;
    Limit limit;
    take(t->space, m, fx, &status, &limit, *out);
    admit(from, fx);
    reap(fx);
    last_limit_ = limit;
    return status;
  }

  if (o.timeout_ms == 0) return Status::kRcvTimedOut;
  if (token == 0 || parked_.count(token) != 0) return Status::kInvalidArgument;
  Waiter* w = new_waiter();
  w->token = token;
  w->task = task_id;
  w->options = o;
  w->port = port;
  w->pset = set;
  if (!park(*t, token, w)) {
    free_waiter(w);
    return Status::kResourceShortage;
  }
  if (port != nullptr)
    port->receivers.push_back(w);
  else
    set->receivers.push_back(w);
  return Status::kRcvInProgress;
}

// ---------------------------------------------------------------------------
// Deadlines and cancellation

void CoreImpl::expire(WaitToken token, Effects& fx) {
  auto it = parked_.find(token);
  if (it == parked_.end()) return;
  ParkedOp op = it->second;
  if (auto* w = std::get_if<Waiter*>(&op)) {
    ((*w)->port != nullptr ? (*w)->port->receivers : (*w)->pset->receivers).remove(*w);
    wake_waiter(*w, Status::kRcvTimedOut, fx);
  } else if (auto* lw = std::get_if<LookupWaiter*>(&op)) {
    end_lookup(*lw, Status::kBootstrapUnknownService, fx);
  } else {
    PendingSend* ps = std::get<PendingSend*>(op);
    if (!ps->cache) {
      fail_pending(ps, Status::kSendTimedOut, fx);
    } else {
      Task* t = task(ps->task);
      if (t != nullptr && t->cached_threads.count(ps->thread) != 0) {
        fail_pending(ps, Status::kSendNotifyInProgress, fx);
      } else {
        // Waited long enough: cache it (it stays where it is in line).
        Completion c;
        c.token = token;
        c.task = ps->task;
        c.status = Status::kSendWillNotify;
        fx.completions.push_back(std::move(c));
        unpark(ps->task, token);
        cache_pending(ps, fx);
      }
    }
  }
  reap(fx);
}

void CoreImpl::cancel(WaitToken token, Effects& fx) {
  auto it = parked_.find(token);
  if (it == parked_.end()) return;
  ParkedOp op = it->second;
  if (auto* w = std::get_if<Waiter*>(&op)) {
    ((*w)->port != nullptr ? (*w)->port->receivers : (*w)->pset->receivers).remove(*w);
    wake_waiter(*w, Status::kRcvInterrupted, fx);
  } else if (auto* lw = std::get_if<LookupWaiter*>(&op)) {
    end_lookup(*lw, Status::kAborted, fx);
  } else {
    fail_pending(std::get<PendingSend*>(op), Status::kSendInterrupted, fx);
  }
  reap(fx);
}

}  // namespace portd::ipc
