// CoreImpl: the state behind Core and the routines that change it.
//
// The files that implement it, each one concern:
//   core.cc       tasks, accounts, the Core facade
//   space.cc      name tables: slots, generations, lazy dead-name conversion
//   rights.cc     rights moving between spaces and messages (copyin/copyout),
//                 releasing rights, port death
//   port_ops.cc   mach_port_* operations
//   queue.cc      send, receive, waiting senders and receivers, port sets
//   notify.cc     notification requests and the messages they produce
//   bootstrap.cc  the name registry
//
// Ownership: CoreImpl owns tasks (and their spaces), messages, pending sends,
// waiters and port sets. Ports are reference-counted (Port::refs) and freed
// when dead and unreferenced. Accounts are reference-counted.
#pragma once

#include <cassert>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/ipc/monitor.h"
#include "daemon/ipc/node_pool.h"
#include "daemon/ipc/objects.h"

namespace portd::ipc {

// Counters since start, for portctl status and the soak test's accounting.
//
// Client messages: every send a client asks for is counted once in
// messages_sent, and ends as exactly one of received, destroyed (accepted,
// then destroyed unreceived, for one of the reasons counted below it) or
// refused (the send failed and consumed nothing); until then it is in
// flight (queued, blocked on a full queue, or cached). At every moment
//   messages_sent = messages_received + messages_destroyed + messages_refused
//                   + messages_in_flight.
// Notifications the daemon generates are counted apart, with the same rule
// (notifications = received + destroyed + those still queued).
struct Counters {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t messages_destroyed = 0;
  uint64_t messages_refused = 0;
  uint64_t messages_in_flight = 0;  // a gauge, not a counter
  // messages_destroyed by reason.
  uint64_t destroyed_port_died = 0;    // its port died (also while it was cached)
  uint64_t destroyed_too_large = 0;    // a receiver without MACH_RCV_LARGE had no room for it
  uint64_t destroyed_sender_died = 0;  // its sender died while it waited for room
  uint64_t notifications = 0;
  uint64_t notifications_received = 0;
  uint64_t notifications_destroyed = 0;
  // Messages the shell holds for their senders, charged but not yet sent
  // (hold_charges), and their inline bytes: gauges, apart from the rule
  // above (a held message is counted as sent when it is sent).
  uint64_t messages_held = 0;
  uint64_t held_bytes = 0;
};

// Why a message was destroyed unreceived (Counters).
enum class DestroyReason : uint8_t { kPortDied, kTooLarge, kSenderDied };

class CoreImpl {
 public:
  explicit CoreImpl(const Limits& limits);
  ~CoreImpl();

  // ---- the operations, as Core documents them ----------------------------
  Status task_create(TaskId task, const Credentials& creds);
  void task_destroy(TaskId task, Effects& fx);

  Status allocate(TaskId task, Right right, Name* out);
  Status deallocate(TaskId task, Name name, Effects& fx);
  Status mod_refs(TaskId task, Name name, Right right, int32_t delta, Effects& fx);
  Status destroy(TaskId task, Name name, Effects& fx);
  Status insert_right(TaskId task, Name name, Name right, Disposition disposition, Effects& fx);
  Status extract_right(TaskId task, Name name, Disposition disposition, Name* out,
                       RightType* out_type, Effects& fx);
  Status get_refs(TaskId task, Name name, Right right, uint32_t* out);
  Status type(TaskId task, Name name, uint32_t* out);
  Status names(TaskId task, std::vector<NameInfo>* out);
  Status get_attributes(TaskId task, Name name, PortStatus* out);
  Status set_qlimit(TaskId task, Name name, uint32_t qlimit, Effects& fx);
  Status move_member(TaskId task, Name member, Name after, Effects& fx);
  Status request_notification(TaskId task, Name name, Notify variant, uint32_t sync, Name notify,
                              Disposition notify_disposition, Name* previous, Effects& fx);

  Status send(TaskId task, MessageIn& message, const SendOptions& options, WaitToken token,
              Effects& fx);
  Status receive(TaskId task, const ReceiveOptions& options, WaitToken token, MessageOut* out,
                 uint32_t* needed_size, Effects& fx);
  void expire(WaitToken token, Effects& fx);
  void cancel(WaitToken token, Effects& fx);
  bool is_parked(WaitToken token) const { return parked_.count(token) != 0; }

  Status bootstrap_check_in(TaskId task, std::string_view name, Name* out, Effects& fx);
  Status bootstrap_register(TaskId task, std::string_view name, Name port, Effects& fx);
  Status bootstrap_look_up(TaskId task, std::string_view name, int64_t timeout_ms, WaitToken token,
                           Name* out, Effects& fx);
  Status bootstrap_unregister(TaskId task, std::string_view name, Effects& fx);
  Status bootstrap_list(TaskId task, std::vector<BootstrapEntry>* out);

  Limit last_refused_limit() const { return last_limit_; }
  void set_limits(const Limits& limits) { limits_ = limits; }
  void set_now_unix_ms(int64_t now) { now_unix_ms_ = now; }
  // A send the shell refused before it reached the core: sent and refused.
  void count_refused_send() {
    ++counters_.messages_sent;
    ++counters_.messages_refused;
  }

  void hold_charges(TaskId task, std::span<const SendCharge> charges, std::vector<uint8_t>* held,
                    std::vector<Limit>* refused_by);
  void release_charges(TaskId task, const SendCharge& c);
  void count_dropped_sends(uint64_t n);

  // ---- read-only views (introspection, tests) ----------------------------
  const Limits& limits() const { return limits_; }
  const Counters& counters() const { return counters_; }
  const std::unordered_map<TaskId, std::unique_ptr<Task>>& tasks() const { return tasks_; }
  const std::unordered_map<PortId, Port*>& ports() const { return ports_; }
  const std::unordered_map<uint64_t, std::unique_ptr<PortSet>>& port_sets() const { return psets_; }
  const std::map<std::string, Binding, std::less<>>& registry() const { return registry_; }
  const Task* find_task(TaskId id) const;
  // The ids the next port and port set will get: every id below was given
  // out once (ids are never reused).
  PortId next_port_id() const { return next_port_id_; }
  uint64_t next_pset_id() const { return next_pset_id_; }
  // Ports not yet freed (active or dead but still referenced).
  size_t port_objects() const { return port_objects_; }
  size_t queued_messages() const { return queued_messages_; }
  uint64_t queued_bytes() const { return queued_bytes_; }
  size_t parked() const { return parked_.size(); }
  const Account* uid_account(uint32_t uid) const;
  // Every uid with a task, or with charges its tasks left behind.
  const std::unordered_map<uint32_t, std::unique_ptr<Account>>& uid_accounts() const {
    return uid_accounts_;
  }
  // Recounts every right and compares with the kept counters; returns a
  // description of each mismatch (empty when all is well).
  std::string check_invariants() const;
  // The receiver's name of a port set's member, or of the port itself.
  static Name receiver_name(const Port* p) { return p->receiver_name; }

  // ---- monitoring (monitor.h) ---------------------------------------------
  // Null: nobody listens, and no event is built.
  void set_observer(MessageObserver* observer) { observer_ = observer; }
  MessageObserver* observer() const { return observer_; }

  // A right an operation is going to take, once all its rights check out.
  struct Planned {
    Name name = kNameNull;
    Disposition disposition = Disposition::kNone;
    uint32_t slot = 0;
    Port* port = nullptr;
    bool dead = false;  // a dead name: travels as MACH_PORT_DEAD
    bool null = false;  // MACH_PORT_NULL
  };
  struct Tally {
    Name name;
    uint32_t send_taken = 0;
    uint32_t dead_taken = 0;
    bool receive_taken = false;
    bool so_taken = false;
  };

 private:
  friend class Core;

  // ---- tasks and accounts (core.cc) ---------------------------------------
  Task* task(TaskId id);
  Account* account_for(uint32_t uid);
  void account_unref(Account* a);
  // Charges `n` of `what` to `a` (and its uid); false, with last_limit_ set,
  // if either limit would be passed.
  bool charge(Account* a, Limit what, uint64_t n);
  bool can_charge(const Account* a, Limit what, uint64_t n);
  // Charges past the limit: for rights the daemon makes on a task's behalf.
  void charge_force(Account* a, Limit what, uint64_t n);
  void uncharge(Account* a, Limit what, uint64_t n);
  // The same for a message's queue charges (messages, bytes, OOL bytes,
  // fds), all or nothing.
  bool can_charge(const Account* a, const SendCharge& c);
  void charge_force(Account* a, const SendCharge& c);
  void uncharge(Account* a, const SendCharge& c);
  bool refuse(Limit what);  // sets last_limit_, returns false
  // While one lives, charge() always succeeds (charging past the limit):
  // for rights handed back to the task they were taken from.
  struct ForceCharges {
    explicit ForceCharges(CoreImpl& core) : core_(core), was_(core.force_charges_) {
      core.force_charges_ = true;
    }
    ~ForceCharges() { core_.force_charges_ = was_; }
    CoreImpl& core_;
    bool was_;
  };

  // ---- name spaces (space.cc) --------------------------------------------
  // The live entry for `name`, after turning it into a dead name if its port
  // died; null if the name denotes nothing.
  Entry* lookup(Space& space, Name name);
  Name name_of(const Space& space, uint32_t index) const;
  // A fresh slot (charged as a name), or 0 if the limit is reached.
  uint32_t alloc_slot(Space& space, Account* account);
  // The slot for exactly `name`, if it is free; 0 otherwise.
  uint32_t alloc_slot_named(Space& space, Name name, Account* account);
  void push_free(Space& space, uint32_t index);
  // Returns a slot whose bits became 0 to the free list (unless held).
  void free_slot(Space& space, uint32_t index, Account* account);
  void release_hold(Space& space, uint32_t index, Account* account);
  // Turns an entry whose port is dead into a dead name (XNU's ipc_right_check).
  void convert_dead(Space& space, uint32_t index, Entry& e);
  // The entry of `space` holding send or receive rights for `port`, or 0.
  uint32_t slot_for_port(const Space& space, const Port* port) const;
  // Forgets that `index` names `port` (if it is the one that does).
  void unmap_port(Space& space, Port* port, uint32_t index);
  // Removes a port right bit from an entry, freeing the entry when nothing is
  // left; fires port-deleted if a dead-name request is armed on it and the
  // last port right went.
  void entry_lost_right(Space& space, uint32_t index, uint32_t bit, Effects& fx);

  // ---- rights (rights.cc) ------------------------------------------------
  // Checks that `name` can give a right with `disposition`, given what the
  // earlier rights of the same operation already took (tallies). Nothing is
  // changed. Returns false if not.
  bool plan_right(Space& space, Name name, Disposition disposition, std::vector<Tally>& tallies,
                  Planned* out);
  // Takes the planned right out of the space into a HeldRight. Cannot fail.
  // With held_slot, a slot the right leaves empty is held (not reused) and
  // its index stored there, so the right can be put back by the same name.
  HeldRight copyin(Space& space, const Planned& p, Port* transit_dest, uint32_t* held_slot,
                   Effects& fx);
  // Puts a right into the space and returns its name (MACH_PORT_DEAD for a
  // dead port). If the name space is full the right is destroyed, *ok set
  // false and kNameNull returned. `preferred` is a held slot to restore into.
  Name copyout(Space& space, HeldRight&& r, Effects& fx, bool* ok, uint32_t preferred = 0);
  // Releases a right held outside any space, with the notifications that
  // causes (no-senders, send-once, port death).
  void release_right(HeldRight&& r, Effects& fx);
  HeldRight make_send_once(Port* port, Account* maker);
  // One send right fewer: no-senders fires when the last one goes.
  void drop_send_count(Port* p, Effects& fx);
  // A send-once right used up (its message was received): no notification.
  void consume_send_once(HeldRight&& so);
  void port_ref(Port* p) { ++p->refs; }
  void port_unref(Port* p);
  // The receive right is being destroyed: the port dies, unless a
  // port-destroyed request sends the right to its backup port. `charged`
  // (may be null) is the account paying for the port, with a reference:
  // both end here, or ride with the right to the backup port.
  void destroy_receive(Port* p, Account* charged, Effects& fx);
  void kill_port(Port* p, Effects& fx);
  void reap(Effects& fx);
  // Would moving p's receive right into a message to `dest` make a cycle?
  static bool circular(const Port* p, const Port* dest);
  // Detaches p's receive right from its space (moved or destroyed): waiting
  // receivers wake with `wake`, the port leaves its set.
  void detach_receiver(Port* p, Status wake, Effects& fx);

  // ---- messages and queues (queue.cc) ------------------------------------
  Message* new_message();
  void free_message(Message* m);
  void destroy_message(Message* m, Effects& fx);
  void uncharge_message(Message* m);
  // Counters: `m` (a client message or a notification) leaves the daemon.
  void count_destroyed(const Message* m, DestroyReason why);
  void count_received(const Message* m);
  // Hands `m` to a waiting receiver of `port` (or its set), else queues it.
  void deliver(Port* port, Message* m, Effects& fx);
  // Gives `m` (queued or not) to waiter `w`, already off its list. Returns
  // false if `m` was too large and stays (MACH_RCV_LARGE).
  bool hand_over(Waiter* w, Message* m, Effects& fx);
  Waiter* new_waiter() { return nodes_.create<Waiter>(); }
  void free_waiter(Waiter* w) { nodes_.destroy(w); }
  // Destroys a message a receiver had no room for.
  void discard(Message* m, Effects& fx);
  // A sender must wait: line it up (or, on a rendezvous port, queue its
  // message visibly).
  void queue_pending(Port* port, PendingSend* ps, Effects& fx);
  void restore_dead_uref(Space& space, Name name, uint32_t held_slot);
  void enqueue(Port* port, Message* m);
  void unqueue(Message* m);
  // Called whenever a port may have room: lets waiting senders in.
  void admit(Port* port, Effects& fx);
  void complete_pending(PendingSend* ps, Status status, Effects& fx);
  void cache_pending(PendingSend* ps, Effects& fx);
  void fail_pending(PendingSend* ps, Status status, Effects& fx);
  // The sender's message entered the queue: answer it, or send the
  // message-accepted notification of a cached send.
  void accept_pending(PendingSend* ps, Effects& fx);
  // A cached message whose port died: destroyed, and its unused notify
  // right tells the sender.
  void drop_cached(PendingSend* ps, Effects& fx);
  void release_holds(PendingSend* ps);
  // Hands queued messages to receivers waiting on a port set.
  void feed_set(PortSet* s, Effects& fx);
  bool has_receiver(const Port* p) const;
  void restore_to_sender(PendingSend* ps, Effects& fx);
  void free_pending(PendingSend* ps);
  // Takes the first message a receiver of `port` / `pset` would get.
  Message* peek(Port* port, PortSet* pset) const;
  // Completes a receive of `m` for task t into `out` (every field set):
  // copyout and accounting. A right
  // the receiver has no room for is destroyed; *status says so
  // (MACH_RCV_HEADER_ERROR, MACH_RCV_BODY_ERROR) and *limit names the quota
  // that refused it, if one did.
  void take(Space& space, Message* m, Effects& fx, Status* status, Limit* limit, MessageOut& out);
  bool too_large(const Message* m, const ReceiveOptions& o, uint32_t* needed) const;
  // The fds a message's regions hold (what its receiver's frame carries).
  static uint64_t region_fds(const Message* m);
  void wake_waiter(Waiter* w, Status status, Effects& fx);
  void set_add(PortSet* s, Port* p);
  void set_remove(Port* p);
  void destroy_pset(Space& space, uint32_t index, Effects& fx);

  // ---- notifications (notify.cc) ------------------------------------------
  // Sends a notification through the send-once right `so` (consumed).
  void notify(HeldRight&& so, Notify id, uint32_t value, Effects& fx);
  // The receive right for `port` goes to the backup port, still charged to
  // `charged` (whose reference it takes).
  void notify_port_destroyed(HeldRight&& so, Port* port, Account* charged, Effects& fx);
  void fire_dead_names(Port* p, Effects& fx);
  void cancel_dn_request(DnRequest* r);

  // ---- bootstrap (bootstrap.cc) ------------------------------------------
  void unbind_port(Port* p, Effects& fx);
  void erase_binding(std::map<std::string, Binding, std::less<>>::iterator it, Effects& fx);
  void wake_lookups(const std::string& name, Effects& fx);
  void end_lookup(LookupWaiter* lw, Status status, Effects& fx, Name name = kNameNull,
                  Limit limit = Limit::kNone);

  // ---- monitoring (monitor.cc) --------------------------------------------
  // Builds the event for `m` on `port` and hands it to observer_. Callers
  // test observer_ first, so that nobody pays for an event nobody reads.
  void observe(MessageEventKind kind, const Port* port, const Message* m, uint64_t seqno = 0);

  // ---- parked operations -----------------------------------------------
  using ParkedOp = std::variant<Waiter*, PendingSend*, LookupWaiter*>;
  bool park(Task& t, WaitToken token, ParkedOp op);
  void unpark(TaskId task, WaitToken token);

  Limits limits_;
  Counters counters_;
  MessageObserver* observer_ = nullptr;
  Limit last_limit_ = Limit::kNone;
  bool force_charges_ = false;  // ForceCharges
  int64_t now_unix_ms_ = 0;

  // Nodes of the parked-operation tables and waiters: a park and its
  // unpark cost no heap allocation once the pool has grown to the peak
  // (bounded by the parked-request quotas). Declared before the tables.
  NodePool nodes_;
  std::unordered_map<TaskId, std::unique_ptr<Task>> tasks_;
  std::unordered_map<uint32_t, std::unique_ptr<Account>> uid_accounts_;
  std::unordered_map<PortId, Port*> ports_;  // active ports
  std::unordered_map<uint64_t, std::unique_ptr<PortSet>> psets_;
  PooledMap<WaitToken, ParkedOp> parked_{&nodes_};
  std::map<std::string, Binding, std::less<>> registry_;
  std::multimap<std::string, std::unique_ptr<LookupWaiter>, std::less<>> lookups_;

  PortId next_port_id_ = 1;
  uint64_t next_pset_id_ = 1;
  uint64_t next_arrival_ = 1;
  size_t port_objects_ = 0;
  size_t queued_messages_ = 0;
  uint64_t queued_bytes_ = 0;

  std::vector<Port*> dying_;
  bool reaping_ = false;
  std::vector<Message*> message_pool_;
  // send()'s working vectors, kept so that a send allocates none (send() is
  // never re-entered).
  std::vector<Tally> send_tallies_;
  std::vector<Planned> send_plan_;
};

// ---- quota charges --------------------------------------------------------
// Inline: every send and receive charges and uncharges, and with the limit
// known at the call the counter look-up folds away.

inline bool CoreImpl::refuse(Limit what) {
  last_limit_ = what;
  return false;
}

inline bool CoreImpl::can_charge(const Account* a, Limit what, uint64_t n) {
  if (a == nullptr || n == 0) return true;
  const uint64_t* mine = a->used.find(what);
  const uint64_t* uid = a->uid_account->used.find(what);
  const uint64_t* task_cap = limits_.per_task.find(what);
  const uint64_t* uid_cap = limits_.per_uid.find(what);
  assert(mine && uid && task_cap && uid_cap);
  if (*mine + n > *task_cap || *uid + n > *uid_cap) return refuse(what);
  return true;
}

inline bool CoreImpl::charge(Account* a, Limit what, uint64_t n) {
  if (!force_charges_ && !can_charge(a, what, n)) return false;
  charge_force(a, what, n);
  return true;
}

inline void CoreImpl::charge_force(Account* a, Limit what, uint64_t n) {
  if (a == nullptr || n == 0) return;
  *a->used.find(what) += n;
  *a->uid_account->used.find(what) += n;
}

inline bool CoreImpl::can_charge(const Account* a, const SendCharge& c) {
  return can_charge(a, Limit::kQueuedMessages, c.messages) &&
         can_charge(a, Limit::kQueuedBytes, c.bytes) &&
         can_charge(a, Limit::kOolBytes, c.ool_bytes) && can_charge(a, Limit::kFdsInFlight, c.fds);
}

inline void CoreImpl::charge_force(Account* a, const SendCharge& c) {
  charge_force(a, Limit::kQueuedMessages, c.messages);
  charge_force(a, Limit::kQueuedBytes, c.bytes);
  charge_force(a, Limit::kOolBytes, c.ool_bytes);
  charge_force(a, Limit::kFdsInFlight, c.fds);
}

inline void CoreImpl::uncharge(Account* a, const SendCharge& c) {
  uncharge(a, Limit::kQueuedMessages, c.messages);
  uncharge(a, Limit::kQueuedBytes, c.bytes);
  uncharge(a, Limit::kOolBytes, c.ool_bytes);
  uncharge(a, Limit::kFdsInFlight, c.fds);
}

inline void CoreImpl::uncharge(Account* a, Limit what, uint64_t n) {
  if (a == nullptr || n == 0) return;
  uint64_t* mine = a->used.find(what);
  uint64_t* uid = a->uid_account->used.find(what);
  assert(*mine >= n && *uid >= n);
  *mine -= n;
  *uid -= n;
}

}  // namespace portd::ipc
