// check_invariants(): recounts every right from scratch and compares with the
// counters the core keeps. Tests call it after every scenario; a mismatch is
// a leak or a double release waiting to happen.
#include <sstream>
#include <unordered_map>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

struct Seen {
  uint32_t srights = 0;
  uint32_t sorights = 0;
  uint32_t receive = 0;
};

}  // namespace

std::string CoreImpl::check_invariants() const {
  std::ostringstream err;
  std::unordered_map<const Port*, Seen> seen;
  // Receive rights each account pays for: in its task's space, or sent by
  // it and still in transit.
  std::unordered_map<const Account*, uint64_t> ports_charged;

  auto count_held = [&](const HeldRight& r) {
    if (r.port == nullptr) return;
    switch (r.type) {
      case RightType::kSend: ++seen[r.port].srights; break;
      case RightType::kSendOnce: ++seen[r.port].sorights; break;
      case RightType::kReceive:
        ++seen[r.port].receive;
        if (r.maker != nullptr) ++ports_charged[r.maker];
        break;
      default: err << "held right without a type\n";
    }
  };
  auto count_message = [&](const Message* m) {
    count_held(m->dest);
    count_held(m->reply);
    for (const auto& d : m->descriptors) {
      if (const auto* r = std::get_if<HeldRight>(&d))
        count_held(*r);
      else if (const auto* ports = std::get_if<HeldPorts>(&d))
        for (const auto& r2 : ports->rights) count_held(r2);
    }
  };

  for (const auto& [id, task] : tasks_) {
    const Space& space = task->space;
    uint32_t live = 0;
    for (uint32_t index = 1; index < space.table.size(); ++index) {
      const Entry& e = space.table[index];
      if (e.bits == 0 && e.holds == 0) continue;
      ++live;
      if (e.bits == 0) continue;
      if (e.port != nullptr && e.port->active) {
        if (e.bits & kTypeSend) ++seen[e.port].srights;
        if (e.bits & kTypeSendOnce) ++seen[e.port].sorights;
        if (e.bits & kTypeReceive) {
          ++seen[e.port].receive;
          ++ports_charged[space.account];
          if (e.port->receiver != &space || e.port->receiver_name != name_of(space, index))
            err << "port " << e.port->id << ": receiver does not point back at its entry\n";
        }
        if ((e.bits & (kTypeSend | kTypeReceive)) && slot_for_port(space, e.port) != index)
          err << "port " << e.port->id << ": by_port does not name its entry\n";
      }
      if (e.request != nullptr) {
        if (e.request->port == nullptr || e.request->notify.empty())
          err << "task " << id << " name " << name_of(space, index) << ": empty request\n";
        else
          count_held(e.request->notify);
      }
    }
    if (live != space.live)
      err << "task " << id << ": live " << space.live << " != " << live << "\n";
  }
  for (const auto& [pid, p] : ports_) {
    if (!p->active) err << "port " << pid << " in the active map but dead\n";
    for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m)) count_message(m);
    for (const PendingSend* ps = p->senders.front(); ps != nullptr; ps = p->senders.next(ps)) {
      count_message(ps->msg);
      count_held(ps->notify);
    }
    for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m))
      if (m->rendezvous != nullptr) count_held(m->rendezvous->notify);
    count_held(p->ns_request);
    count_held(p->pd_request);
    uint32_t counted = 0;
    for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m))
      if (m->counted) ++counted;
    if (counted != p->counted)
      err << "port " << pid << ": counted " << p->counted << " != " << counted << "\n";
  }
  for (const auto& [name, b] : registry_) count_held(b.right);

  // Queues: each port's messages in arrival order; each port set's queue
  // holds exactly its members' messages, in arrival order, so that its head
  // is always the next message for the set.
  for (const auto& [pid, p] : ports_) {
    uint64_t last = 0;
    for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m)) {
      if (m->queued_on != p) err << "port " << pid << ": message not marked as queued on it\n";
      if (m->arrival <= last) err << "port " << pid << ": queue out of arrival order\n";
      last = m->arrival;
      if (m->set_link.linked() != (p->pset != nullptr))
        err << "port " << pid << ": message " << (p->pset ? "missing from" : "in")
            << " a set queue\n";
    }
    if (p->pset != nullptr &&
        (p->receiver == nullptr || p->pset->space != p->receiver || psets_.count(p->pset->id) == 0))
      err << "port " << pid << ": member of a set outside its receiver's space\n";
  }
  for (const auto& [sid, s] : psets_) {
    size_t expected = 0;
    for (const Port* p = s->members.front(); p != nullptr; p = s->members.next(p)) {
      if (p->pset != s.get()) err << "set " << sid << ": member does not point back at it\n";
      expected += p->queue.size();
    }
    if (s->queue.size() != expected)
      err << "set " << sid << ": " << s->queue.size() << " queued != " << expected
          << " on its members\n";
    uint64_t last = 0;
    for (const Message* m = s->queue.front(); m != nullptr; m = s->queue.next(m)) {
      if (m->queued_on == nullptr || m->queued_on->pset != s.get())
        err << "set " << sid << ": message of a port that is not a member\n";
      if (m->arrival <= last) err << "set " << sid << ": queue out of arrival order\n";
      last = m->arrival;
    }
  }

  for (const auto& [id, task] : tasks_) {
    const uint64_t expected = ports_charged[task->account];
    if (task->account->used.ports != expected)
      err << "task " << id << ": charged for " << task->account->used.ports << " ports, holds "
          << expected << " (in its space or in transit)\n";
  }

  for (const auto& [pid, p] : ports_) {
    const Seen& s = seen[p];
    if (s.srights != p->srights)
      err << "port " << pid << ": srights " << p->srights << " != " << s.srights << "\n";
    if (s.sorights != p->sorights)
      err << "port " << pid << ": sorights " << p->sorights << " != " << s.sorights << "\n";
    if (s.receive != 1) err << "port " << pid << ": " << s.receive << " receive rights\n";
  }
  return err.str();
}

}  // namespace portd::ipc
