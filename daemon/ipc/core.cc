// Tasks, accounts and the Core facade.
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

// ---------------------------------------------------------------------------
// Core: forwards to CoreImpl, resetting the refused-limit record first.

Core::Core(const Limits& limits) : impl_(std::make_unique<CoreImpl>(limits)) {}
Core::~Core() = default;

const Limits& Core::limits() const { return impl_->limits(); }
void Core::set_limits(const Limits& limits) { impl_->set_limits(limits); }
Limit Core::last_refused_limit() const { return impl_->last_refused_limit(); }
void Core::set_now_unix_ms(int64_t now) { impl_->set_now_unix_ms(now); }
void Core::set_observer(MessageObserver* observer) { impl_->set_observer(observer); }

#define PORTD_FORWARD(call)            \
  do {                                 \
    impl_->last_limit_ = Limit::kNone; \
    return impl_->call;                \
  } while (0)

Status Core::task_create(TaskId task, const Credentials& creds) {
  PORTD_FORWARD(task_create(task, creds));
}
void Core::task_destroy(TaskId task, Effects& fx) { impl_->task_destroy(task, fx); }
bool Core::task_exists(TaskId task) const { return impl_->find_task(task) != nullptr; }

Status Core::allocate(TaskId task, Right right, Name* out) {
  PORTD_FORWARD(allocate(task, right, out));
}
Status Core::deallocate(TaskId task, Name name, Effects& fx) {
  PORTD_FORWARD(deallocate(task, name, fx));
}
Status Core::mod_refs(TaskId task, Name name, Right right, int32_t delta, Effects& fx) {
  PORTD_FORWARD(mod_refs(task, name, right, delta, fx));
}
Status Core::destroy(TaskId task, Name name, Effects& fx) {
  PORTD_FORWARD(destroy(task, name, fx));
}
Status Core::insert_right(TaskId task, Name name, Name right, Disposition disposition,
                          Effects& fx) {
  PORTD_FORWARD(insert_right(task, name, right, disposition, fx));
}
Status Core::extract_right(TaskId task, Name name, Disposition disposition, Name* out,
                           RightType* out_type, Effects& fx) {
  PORTD_FORWARD(extract_right(task, name, disposition, out, out_type, fx));
}
Status Core::get_refs(TaskId task, Name name, Right right, uint32_t* out) {
  PORTD_FORWARD(get_refs(task, name, right, out));
}
Status Core::type(TaskId task, Name name, uint32_t* out) { PORTD_FORWARD(type(task, name, out)); }
Status Core::names(TaskId task, std::vector<NameInfo>* out) { PORTD_FORWARD(names(task, out)); }
Status Core::get_attributes(TaskId task, Name name, PortStatus* out) {
  PORTD_FORWARD(get_attributes(task, name, out));
}
Status Core::set_qlimit(TaskId task, Name name, uint32_t qlimit, Effects& fx) {
  PORTD_FORWARD(set_qlimit(task, name, qlimit, fx));
}
Status Core::move_member(TaskId task, Name member, Name after, Effects& fx) {
  PORTD_FORWARD(move_member(task, member, after, fx));
}
Status Core::request_notification(TaskId task, Name name, Notify variant, uint32_t sync,
                                  Name notify, Disposition notify_disposition, Name* previous,
                                  Effects& fx) {
  PORTD_FORWARD(
      request_notification(task, name, variant, sync, notify, notify_disposition, previous, fx));
}
Status Core::send(TaskId task, MessageIn& message, const SendOptions& options, WaitToken token,
                  Effects& fx) {
  PORTD_FORWARD(send(task, message, options, token, fx));
}
Status Core::receive(TaskId task, const ReceiveOptions& options, WaitToken token, MessageOut* out,
                     uint32_t* needed_size, Effects& fx) {
  PORTD_FORWARD(receive(task, options, token, out, needed_size, fx));
}
void Core::count_refused_send() { impl_->count_refused_send(); }
void Core::hold_charges(TaskId task, std::span<const SendCharge> charges,
                        std::vector<uint8_t>* held, std::vector<Limit>* refused_by) {
  impl_->hold_charges(task, charges, held, refused_by);
}
void Core::release_charges(TaskId task, const SendCharge& total) {
  impl_->release_charges(task, total);
}
void Core::count_dropped_sends(uint64_t n) { impl_->count_dropped_sends(n); }
void Core::expire(WaitToken token, Effects& fx) { impl_->expire(token, fx); }
void Core::cancel(WaitToken token, Effects& fx) { impl_->cancel(token, fx); }
bool Core::is_parked(WaitToken token) const { return impl_->is_parked(token); }

Status Core::bootstrap_check_in(TaskId task, std::string_view name, Name* out, Effects& fx) {
  PORTD_FORWARD(bootstrap_check_in(task, name, out, fx));
}
Status Core::bootstrap_register(TaskId task, std::string_view name, Name port, Effects& fx) {
  PORTD_FORWARD(bootstrap_register(task, name, port, fx));
}
Status Core::bootstrap_look_up(TaskId task, std::string_view name, int64_t timeout_ms,
                               WaitToken token, Name* out, Effects& fx) {
  PORTD_FORWARD(bootstrap_look_up(task, name, timeout_ms, token, out, fx));
}
Status Core::bootstrap_unregister(TaskId task, std::string_view name, Effects& fx) {
  PORTD_FORWARD(bootstrap_unregister(task, name, fx));
}
Status Core::bootstrap_list(TaskId task, std::vector<BootstrapEntry>* out) {
  PORTD_FORWARD(bootstrap_list(task, out));
}

#undef PORTD_FORWARD

// ---------------------------------------------------------------------------
// CoreImpl: construction, tasks, accounts, parking.

CoreImpl::CoreImpl(const Limits& limits) : limits_(limits) {}

CoreImpl::~CoreImpl() {
  Effects fx;
  while (!tasks_.empty()) task_destroy(tasks_.begin()->first, fx);
  while (!registry_.empty()) erase_binding(registry_.begin(), fx);
  reap(fx);
  // Cached messages whose senders are gone and whose ports still live can
  // only remain if a port outlived every task, which the loop above rules
  // out; what is left now is pooled memory.
  for (Message* m : message_pool_) delete m;
  assert(ports_.empty());
}

const Task* CoreImpl::find_task(TaskId id) const {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second.get();
}

Task* CoreImpl::task(TaskId id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() || it->second->dying ? nullptr : it->second.get();
}

const Account* CoreImpl::uid_account(uint32_t uid) const {
  auto it = uid_accounts_.find(uid);
  return it == uid_accounts_.end() ? nullptr : it->second.get();
}

Account* CoreImpl::account_for(uint32_t uid) {
  auto& slot = uid_accounts_[uid];
  if (!slot) {
    slot = std::make_unique<Account>();
    slot->uid = uid;
  }
  auto* a = new Account;
  a->uid = uid;
  a->uid_account = slot.get();
  a->refs = 1;
  ++slot->refs;
  return a;
}

void CoreImpl::account_unref(Account* a) {
  if (a == nullptr) return;
  assert(a->refs > 0 && a->uid_account != nullptr);
  if (--a->refs != 0) return;
  Account* u = a->uid_account;
  delete a;
  if (--u->refs == 0) uid_accounts_.erase(u->uid);
}

void CoreImpl::hold_charges(TaskId task_id, std::span<const SendCharge> charges,
                            std::vector<uint8_t>* held, std::vector<Limit>* refused_by) {
  held->assign(charges.size(), 0);
  refused_by->assign(charges.size(), Limit::kNone);
  Task* t = task(task_id);
  if (t == nullptr) return;
  Account* a = t->account;
  for (size_t i = 0; i < charges.size(); ++i) {
    const SendCharge& c = charges[i];
    if (c.messages == 0) continue;  // nothing to hold (a refused message)
    if (!can_charge(a, c)) {
      (*refused_by)[i] = last_limit_;
      continue;
    }
    charge_force(a, c);
    (*held)[i] = 1;
    counters_.messages_held += c.messages;
    counters_.held_bytes += c.bytes;
  }
}

void CoreImpl::release_charges(TaskId task_id, const SendCharge& c) {
  assert(counters_.messages_held >= c.messages && counters_.held_bytes >= c.bytes);
  counters_.messages_held -= c.messages;
  counters_.held_bytes -= c.bytes;
  Task* t = task(task_id);
  if (t == nullptr) return;
  uncharge(t->account, c);
}

void CoreImpl::count_dropped_sends(uint64_t n) {
  counters_.messages_sent += n;
  counters_.messages_destroyed += n;
  counters_.destroyed_sender_died += n;
}

Status CoreImpl::task_create(TaskId id, const Credentials& creds) {
  if (id == 0 || tasks_.count(id) != 0) return Status::kInvalidTask;
  auto t = std::make_unique<Task>(&nodes_);
  t->id = id;
  t->creds = creds;
  t->space.task = id;
  t->space.creds = creds;
  t->account = account_for(creds.uid);
  t->space.account = t->account;
  tasks_.emplace(id, std::move(t));
  return Status::kSuccess;
}

bool CoreImpl::park(Task& t, WaitToken token, ParkedOp op) {
  if (token == 0 || parked_.count(token) != 0) return false;
  if (!charge(t.account, Limit::kParkedRequests, 1)) return false;
  parked_.emplace(token, op);
  t.parked.insert(token);
  return true;
}

void CoreImpl::unpark(TaskId task_id, WaitToken token) {
  if (token == 0) return;
  parked_.erase(token);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  if (it->second->parked.erase(token) != 0)
    uncharge(it->second->account, Limit::kParkedRequests, 1);
}

void CoreImpl::task_destroy(TaskId id, Effects& fx) {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || it->second->dying) return;
  Task& t = *it->second;
  t.dying = true;

  // 1. Parked operations go away without completions.
  const std::vector<WaitToken> tokens(t.parked.begin(), t.parked.end());
  for (WaitToken token : tokens) {
    auto p = parked_.find(token);
    if (p == parked_.end()) continue;
    ParkedOp op = p->second;
    unpark(id, token);
    if (auto* w = std::get_if<Waiter*>(&op)) {
      if ((*w)->pset != nullptr)
        (*w)->pset->receivers.remove(*w);
      else
        (*w)->port->receivers.remove(*w);
      free_waiter(*w);
    } else if (auto* ps = std::get_if<PendingSend*>(&op)) {
      // The rights cannot go back to a space that is being torn down.
      PendingSend* s = *ps;
      Message* m = s->msg;
      if (m->rendezvous != nullptr) {
        unqueue(m);
        m->rendezvous = nullptr;
      } else {
        s->port->senders.remove(s);
      }
      s->msg = nullptr;
      free_pending(s);
      count_destroyed(m, DestroyReason::kSenderDied);
      destroy_message(m, fx);
    } else if (auto* lw = std::get_if<LookupWaiter*>(&op)) {
      auto [first, last] = lookups_.equal_range((*lw)->name);
      for (auto l = first; l != last; ++l) {
        if (l->second.get() == *lw) {
          lookups_.erase(l);
          break;
        }
      }
    }
  }

  // 2. Every right in the space is released.
  Space& space = t.space;
  for (uint32_t index = 1; index < space.table.size(); ++index) {
    Entry& e = space.table[index];
    if (e.bits == 0) continue;
    if (e.bits & kTypePortSet) {
      destroy_pset(space, index, fx);
      continue;
    }
    if (e.port != nullptr && !e.port->active) convert_dead(space, index, e);
    if (e.request != nullptr) {
      DnRequest* r = e.request;
      HeldRight so = std::move(r->notify);
      cancel_dn_request(r);
      notify(std::move(so), Notify::kPortDeleted, name_of(space, index), fx);
    }
    if (e.bits & kTypeReceive) entry_lost_right(space, index, kTypeReceive, fx);
    if (e.port != nullptr && !e.port->active) convert_dead(space, index, e);
    if (e.bits & kTypeSend) entry_lost_right(space, index, kTypeSend, fx);
    if (e.bits & kTypeSendOnce) entry_lost_right(space, index, kTypeSendOnce, fx);
    if (e.bits & kTypeDeadName) {
      e.bits = 0;
      e.urefs = 0;
      free_slot(space, index, space.account);
    }
  }
  reap(fx);

  // Messages the task sent, cached ones included, stay queued: their
  // charges keep its account alive until they are received or destroyed.
  account_unref(t.account);
  tasks_.erase(it);
}

}  // namespace portd::ipc
