// The bootstrap registry: service names bound to send rights (DESIGN 1).
//
// The registry holds a send right for every name, so a registered port never
// sees no-senders while it is registered. A name belongs to the uid that bound
// it: only that uid (or root) may unregister it. When the port dies, its names
// go away. A look-up may wait for a name to appear; it is answered the moment
// the name is bound.
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

// BOOTSTRAP_MAX_NAME_LEN is 128 with the terminating NUL.
constexpr size_t kMaxNameLength = 127;

bool valid_service_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLength &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace

Status CoreImpl::bootstrap_check_in(TaskId task_id, std::string_view name, Name* out, Effects& fx) {
  *out = kNameNull;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_service_name(name)) return Status::kInvalidArgument;
  if (registry_.find(name) != registry_.end()) return Status::kBootstrapServiceActive;
  if (!can_charge(t->account, Limit::kBootstrapNames, 1)) return Status::kBootstrapNoMemory;
  Name port_name;
  if (Status s = allocate(task_id, Right::kReceive, &port_name); s != Status::kSuccess) return s;
  Port* p = t->space.table[name_index(port_name)].port;
  ++p->mscount;
  ++p->srights;
  port_ref(p);
  charge_force(t->account, Limit::kBootstrapNames, 1);
  Binding b;
  b.right = HeldRight(p, RightType::kSend);
  b.owner = t->account;
  ++b.owner->refs;
  b.uid = t->creds.uid;
  b.pid = t->creds.pid;
  b.task = task_id;
  b.since_unix_ms = now_unix_ms_;
  ++p->registered;
  const std::string key(name);
  registry_.emplace(key, std::move(b));
  *out = port_name;
  wake_lookups(key, fx);
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::bootstrap_register(TaskId task_id, std::string_view name, Name port_name,
                                    Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_service_name(name) || port_name == kNameNull) return Status::kInvalidArgument;
  Space& space = t->space;
  Entry* e = lookup(space, port_name);
  if (e == nullptr) return Status::kInvalidName;
  const Disposition d = (e->bits & kTypeSend)      ? Disposition::kCopySend
                        : (e->bits & kTypeReceive) ? Disposition::kMakeSend
                                                   : Disposition::kNone;
  if (d == Disposition::kNone) return Status::kInvalidRight;
  if (registry_.find(name) != registry_.end()) return Status::kBootstrapNameInUse;
  if (!charge(t->account, Limit::kBootstrapNames, 1)) return Status::kBootstrapNoMemory;
  std::vector<Tally> tallies;
  Planned p;
  const bool planned = plan_right(space, port_name, d, tallies, &p);
  assert(planned);
  (void)planned;
  Binding b;
  b.right = copyin(space, p, nullptr, nullptr, fx);
  b.owner = t->account;
  ++b.owner->refs;
  b.uid = t->creds.uid;
  b.pid = t->creds.pid;
  b.task = task_id;
  b.since_unix_ms = now_unix_ms_;
  ++b.right.port->registered;
  const std::string key(name);
  registry_.emplace(key, std::move(b));
  wake_lookups(key, fx);
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::bootstrap_look_up(TaskId task_id, std::string_view name, int64_t timeout_ms,
                                   WaitToken token, Name* out, Effects& fx) {
  *out = kNameNull;
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  if (!valid_service_name(name)) return Status::kInvalidArgument;
  auto it = registry_.find(name);
  if (it != registry_.end()) {
    Port* p = it->second.right.port;
    // A name the task already has for the port takes the right; only a new
    // one is charged.
    if (slot_for_port(t->space, p) == 0 && !can_charge(t->account, Limit::kNames, 1)) {
      return Status::kBootstrapNoMemory;
    }
    ++p->srights;
    port_ref(p);
    bool ok;
    *out = copyout(t->space, HeldRight(p, RightType::kSend), fx, &ok);
    reap(fx);
    return ok ? Status::kSuccess : Status::kBootstrapNoMemory;
  }
  if (timeout_ms == 0) return Status::kBootstrapUnknownService;
  if (token == 0 || parked_.count(token) != 0) return Status::kInvalidArgument;
  auto lw = std::make_unique<LookupWaiter>();
  lw->token = token;
  lw->task = task_id;
  lw->name = std::string(name);
  if (!park(*t, token, lw.get())) return Status::kBootstrapNoMemory;
  lookups_.emplace(lw->name, std::move(lw));
  return Status::kRcvInProgress;
}

Status CoreImpl::bootstrap_unregister(TaskId task_id, std::string_view name, Effects& fx) {
  Task* t = task(task_id);
  if (t == nullptr) return Status::kInvalidTask;
  auto it = registry_.find(name);
  if (it == registry_.end()) return Status::kBootstrapUnknownService;
  if (it->second.uid != t->creds.uid && t->creds.uid != 0) return Status::kBootstrapNotPrivileged;
  erase_binding(it, fx);
  reap(fx);
  return Status::kSuccess;
}

Status CoreImpl::bootstrap_list(TaskId task_id, std::vector<BootstrapEntry>* out) {
  out->clear();
  if (task(task_id) == nullptr) return Status::kInvalidTask;
  out->reserve(registry_.size());
  for (const auto& [name, b] : registry_)
    out->push_back(BootstrapEntry{name, b.uid, b.pid, b.right.port->id, b.since_unix_ms});
  return Status::kSuccess;
}

void CoreImpl::erase_binding(std::map<std::string, Binding, std::less<>>::iterator it,
                             Effects& fx) {
  Binding b = std::move(it->second);
  registry_.erase(it);
  --b.right.port->registered;
  uncharge(b.owner, Limit::kBootstrapNames, 1);
  account_unref(b.owner);
  release_right(std::move(b.right), fx);
}

void CoreImpl::unbind_port(Port* p, Effects& fx) {
  for (auto it = registry_.begin(); it != registry_.end() && p->registered != 0;) {
    auto next = std::next(it);
    if (it->second.right.port == p) erase_binding(it, fx);
    it = next;
  }
}

void CoreImpl::wake_lookups(const std::string& name, Effects& fx) {
  auto [first, last] = lookups_.equal_range(name);
  std::vector<LookupWaiter*> waiting;
  for (auto it = first; it != last; ++it) waiting.push_back(it->second.get());
  for (LookupWaiter* lw : waiting) {
    auto binding = registry_.find(name);
    Task* t = task(lw->task);
    if (binding == registry_.end() || t == nullptr) break;
    Port* p = binding->second.right.port;
    ++p->srights;
    port_ref(p);
    bool ok;
    const Limit outer_limit = last_limit_;
    last_limit_ = Limit::kNone;
    const Name got = copyout(t->space, HeldRight(p, RightType::kSend), fx, &ok);
    end_lookup(lw, ok ? Status::kSuccess : Status::kBootstrapNoMemory, fx, got,
               ok ? Limit::kNone : last_limit_);
    last_limit_ = outer_limit;
  }
}

void CoreImpl::end_lookup(LookupWaiter* lw, Status status, Effects& fx, Name name, Limit limit) {
  Completion c;
  c.token = lw->token;
  c.task = lw->task;
  c.status = status;
  c.name = name;
  c.limit = limit;
  unpark(lw->task, lw->token);
  fx.completions.push_back(std::move(c));
  auto [first, last] = lookups_.equal_range(lw->name);
  for (auto it = first; it != last; ++it) {
    if (it->second.get() == lw) {
      lookups_.erase(it);
      break;
    }
  }
}

}  // namespace portd::ipc
