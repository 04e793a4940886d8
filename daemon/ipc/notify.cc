// Notifications: the requests a task arms, and the messages the daemon sends
// when they fire (DESIGN 2.3).
//
// Every notification travels through a send-once right that the requester
// supplied, so it is charged to whoever made that right and it never counts
// against the queue limit. Bodies follow Mach's layout after the header: an
// NDR record, then the one field the notification carries (a name or the
// make-send count); port-destroyed carries the receive right as a port
// descriptor instead, and send-once carries only the NDR record.
#include <cassert>
#include <cstring>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

// NDR_record_t as MIG writes it on a little-endian host.
constexpr uint8_t kNdrRecord[8] = {0, 0, 0, 0, 1, 0, 0, 0};

}  // namespace

void CoreImpl::notify(HeldRight&& in, Notify id, uint32_t value, Effects& fx) {
  HeldRight so = std::move(in);
  in = {};
  if (so.port == nullptr) return;
  assert(so.type == RightType::kSendOnce);
  Port* port = so.port;
  if (!port->active) {
    consume_send_once(std::move(so));
    return;
  }
  Message* m = new_message();
  m->id = static_cast<int32_t>(id);
  m->exempt = true;
  m->body.assign(std::begin(kNdrRecord), std::end(kNdrRecord));
  if (id != Notify::kSendOnce) {
    uint8_t field[4];
    std::memcpy(field, &value, sizeof field);
    m->body.insert(m->body.end(), std::begin(field), std::end(field));
  }
  m->dest = std::move(so);
  ++counters_.notifications;
  deliver(port, m, fx);
}

void CoreImpl::notify_port_destroyed(HeldRight&& in, Port* p, Account* charged, Effects& fx) {
  HeldRight so = std::move(in);
  in = {};
  Port* backup = so.port;
  Message* m = new_message();
  m->id = static_cast<int32_t>(Notify::kPortDestroyed);
  m->exempt = true;
  HeldRight receive{p, RightType::kReceive, false, charged};
  port_ref(p);
  p->transit_dest = backup;
  m->descriptors.emplace_back(std::move(receive));
  m->dest = std::move(so);
  ++counters_.notifications;
  deliver(backup, m, fx);
}

void CoreImpl::fire_dead_names(Port* p, Effects& fx) {
  while (DnRequest* r = p->dn_requests.pop_front()) {
    Space& space = *r->space;
    const Name name = r->name;
    const uint32_t index = name_index(name);
    Entry& e = space.table[index];
    assert(e.request == r);
    e.request = nullptr;
    if (e.port == p) {
      convert_dead(space, index, e);
      // The notification carries a user reference for the dead name (XNU).
      if (e.urefs < kUrefsMax) ++e.urefs;
    }
    HeldRight so = std::move(r->notify);
    r->notify = {};
    uncharge(space.account, Limit::kNotifyRequests, 1);
    delete r;
    notify(std::move(so), Notify::kDeadName, name, fx);
  }
}

void CoreImpl::cancel_dn_request(DnRequest* r) {
  assert(r->notify.empty());
  r->port->dn_requests.remove(r);
  r->space->table[name_index(r->name)].request = nullptr;
  uncharge(r->space->account, Limit::kNotifyRequests, 1);
  delete r;
}

Status CoreImpl::request_notification(TaskId task_id, Name name, Notify variant, uint32_t sync,
                                      Name notify_name, Disposition notify_disposition,
                                      Name* previous, Effects& fx) {
  *previous = kNameNull;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  Space& space = t->space;
  if (variant != Notify::kPortDestroyed && variant != Notify::kNoSenders &&
      variant != Notify::kDeadName)
    return Status::kInvalidValue;
  Entry* e = lookup(space, name);
  if (e == nullptr) return Status::kInvalidName;

  const bool has_notify = notify_name != kNameNull;
  Planned np;
  if (has_notify) {
    if (notify_disposition != Disposition::kMakeSendOnce &&
        notify_disposition != Disposition::kMoveSendOnce)
      return Status::kInvalidValue;
    if (notify_disposition == Disposition::kMoveSendOnce && notify_name == name)
      return Status::kInvalidCapability;
    std::vector<Tally> tallies;
    if (!plan_right(space, notify_name, notify_disposition, tallies, &np) || np.dead || np.null)
      return Status::kInvalidCapability;
    if (notify_disposition == Disposition::kMakeSendOnce &&
        !can_charge(space.account, Limit::kSendOnceRights, 1))
      return Status::kResourceShortage;
  }
  auto notify_right = [&]() { return copyin(space, np, nullptr, nullptr, fx); };

  HeldRight prev;
  switch (variant) {
    case Notify::kPortDestroyed: {
      if (!(e->bits & kTypeReceive)) return Status::kInvalidRight;
      if (sync != 0) return Status::kInvalidValue;
      Port* p = e->port;
      prev = std::move(p->pd_request);
      p->pd_request = has_notify ? notify_right() : HeldRight{};
      break;
    }
    case Notify::kNoSenders: {
      if (!(e->bits & kTypeReceive)) return Status::kInvalidRight;
      Port* p = e->port;
      prev = std::move(p->ns_request);
      p->ns_request = {};
      if (has_notify) {
        HeldRight so = notify_right();
        if (p->srights == 0 && sync <= p->mscount)
          notify(std::move(so), Notify::kNoSenders, p->mscount, fx);  // already true
        else
          p->ns_request = std::move(so);
      }
      break;
    }
    case Notify::kDeadName: {
      if (!(e->bits & (kTypeSend | kTypeReceive | kTypeSendOnce | kTypeDeadName)))
        return Status::kInvalidRight;
      if (e->bits & kTypeDeadName) {
        if (!has_notify) return Status::kSuccess;
        if (sync == 0) return Status::kInvalidArgument;
        // Already dead, and the caller asked to hear so at once.
        HeldRight so = notify_right();
        if (e->urefs < kUrefsMax) ++e->urefs;
        notify(std::move(so), Notify::kDeadName, name, fx);
        return Status::kSuccess;
      }
      if (e->request != nullptr) {
        prev = std::move(e->request->notify);
        e->request->notify = {};
        if (has_notify)
          e->request->notify = notify_right();
        else
          cancel_dn_request(e->request);
      } else if (has_notify) {
        if (!charge(space.account, Limit::kNotifyRequests, 1)) return Status::kResourceShortage;
        auto* r = new DnRequest;
        r->space = &space;
        r->name = name;
        r->port = e->port;
        r->notify = notify_right();
        e->request = r;
        e->port->dn_requests.push_back(r);
      }
      break;
    }
    default: return Status::kInvalidValue;
  }
  bool ok;
  *previous = copyout(space, std::move(prev), fx, &ok);
  reap(fx);
  return Status::kSuccess;
}

}  // namespace portd::ipc
