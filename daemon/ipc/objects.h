// The core's objects: accounts, rights in flight, messages, ports, port sets,
// name spaces and tasks. Only CoreImpl changes them; everything here is plain
// data with the invariants written next to it.
//
//   Space (one per task)          Port                       PortSet
//   +-----------------+           +--------------------+     +-------------+
//   | name -> Entry --+---------->| receive right: in  |<----| members     |
//   |   bits, urefs   |           |  one space, or in  |     | queue (all  |
//   |   port / pset   |           |  a message         |     |  members'   |
//   |   dn request    |           | queue of Message   |---->|  messages,  |
//   +-----------------+           | waiting receivers  |     |  arrival    |
//                                 | waiting senders    |     |  order)     |
//                                 | notify requests    |     +-------------+
//                                 +--------------------+
//
// Port lifetime. A port is *active* from allocation until its receive right
// is destroyed; then it is *dead*: its queue is torn down and every right to
// it is, or will become, a dead name. The Port object itself lives as long as
// anything points at it (refs_): a space entry, a right in a message, a
// request. Entries that still point at a dead port are turned into dead
// names lazily, the next time anyone looks at them (as XNU does), except
// those with a dead-name request, which are converted when the port dies.
//
// Rights outside any space (in a message, in a notification request, in the
// bootstrap registry) are HeldRights. A HeldRight is a real right: it is
// counted in its port's srights/sorights and holds a reference; it must be
// released through CoreImpl::release_right, never dropped.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/ipc/intrusive_list.h"
#include "daemon/ipc/limits.h"
#include "daemon/ipc/message.h"
#include "daemon/ipc/node_pool.h"
#include "daemon/ipc/types.h"
#include "portd/fifo_vector.h"

namespace portd::ipc {

struct Port;
struct PortSet;
struct Space;
struct Message;

// What a task (and, through `uid_account`, its uid) is charged for. Accounts
// outlive their task while queued messages still charge them.
struct Account {
  Quota used;
  Account* uid_account = nullptr;  // null for a uid account itself
  uint32_t uid = 0;
  uint32_t refs = 0;  // the task, queued messages, send-once rights...
};

struct HeldRight {
  Port* port = nullptr;               // null: MACH_PORT_NULL or, if `dead`, MACH_PORT_DEAD
  RightType type = RightType::kNone;  // also kept for a dead right
  bool dead = false;
  // The account this right is charged to while it is held: a send-once
  // right's maker (send_once_rights), or for a receive right in transit the
  // task that sent it (ports) until a receiver takes it. Holds a reference.
  Account* maker = nullptr;

  HeldRight() = default;
  HeldRight(Port* p, RightType t, bool d = false, Account* m = nullptr)
      : port(p), type(t), dead(d), maker(m) {}
  // Move-only, and a moved-from right is empty: a right is never in two
  // places at once.
  HeldRight(HeldRight&& o) noexcept : port(o.port), type(o.type), dead(o.dead), maker(o.maker) {
    o.clear();
  }
  HeldRight& operator=(HeldRight&& o) noexcept {
    if (this != &o) {
      port = o.port;
      type = o.type;
      dead = o.dead;
      maker = o.maker;
      o.clear();
    }
    return *this;
  }
  HeldRight(const HeldRight&) = delete;
  HeldRight& operator=(const HeldRight&) = delete;

  bool empty() const { return port == nullptr; }
  void clear() {
    port = nullptr;
    type = RightType::kNone;
    dead = false;
    maker = nullptr;
  }
};

struct OolAttachment {
  AttachmentId id = 0;
  uint64_t size = 0;
  bool is_volatile = false;
  bool deallocate = false;
  bool release_signal = false;  // the attachment holds a second fd
  bool is_body = false;

  uint64_t fds() const { return release_signal ? 2 : 1; }
};

// An out-of-line array of port rights, all of one type.
struct HeldPorts {
  std::vector<HeldRight> rights;
  RightType type = RightType::kNone;
};

// In the same order as DescriptorIn and DescriptorOut: port, memory, ports.
using HeldDescriptor = std::variant<HeldRight, OolAttachment, HeldPorts>;

struct PendingSend;

// A message owned by the daemon: queued on a port, waiting to enter a queue,
// or being handed to a receiver.
struct Message {
  HeldRight dest;   // send or send-once right to the destination
  HeldRight reply;  // optional reply right
  int32_t id = 0;
  std::vector<uint8_t> body;
  std::vector<HeldDescriptor> descriptors;

  Trailer trailer;             // sender credentials; seqno set on receipt
  Account* charged = nullptr;  // who pays for it while it is queued
  uint64_t charged_bytes = 0;
  uint64_t charged_ool = 0;
  uint64_t charged_fds = 0;

  bool exempt = false;   // to a send-once right, or a notification: never counts
  bool counted = false;  // counts against the port's qlimit
  // A sender (blocked or cached) is waiting for this message to be taken off
  // a rendezvous (qlimit 0) queue.
  PendingSend* rendezvous = nullptr;

  uint64_t arrival = 0;  // global order of arrival, for port sets
  Port* queued_on = nullptr;
  Link port_link;  // in Port::queue
  Link set_link;   // in PortSet::queue, while the port is a member
};

// A sender waiting for room: blocked (a parked request) or cached (the
// daemon holds the message and will notify).
struct PendingSend {
  WaitToken token = 0;  // 0 once cached
  TaskId task = 0;
  uint64_t thread = 0;
  Message* msg = nullptr;
  Port* port = nullptr;
  bool cache = false;
  // Cache-on-full: the notify port (a receive right of the sender's) and,
  // once cached, the send-once right the notification will use.
  Port* notify_port = nullptr;
  HeldRight notify;
  Name dest_name = kNameNull;  // the sender's name for the destination
  // Where each right came from, for handing them back (canonical order:
  // dest, reply, then every descriptor's rights).
  struct Origin {
    Name name;
    Disposition disposition;
    uint32_t held_slot;  // the slot the right left empty, held for it
  };
  std::vector<Origin> origins;
  bool has_reply = false;
  Link link;  // in Port::senders (when not on the queue as a rendezvous)
};

// A receive waiting for a message.
struct Waiter {
  WaitToken token = 0;
  TaskId task = 0;
  ReceiveOptions options;
  Port* port = nullptr;     // waiting on a port...
  PortSet* pset = nullptr;  // ...or on a set
  Link link;
};

// A dead-name request: when `port` dies, send a dead-name notification for
// `name` in `space` through `notify`.
struct DnRequest {
  Space* space = nullptr;
  Name name = kNameNull;
  Port* port = nullptr;
  HeldRight notify;
  Link link;  // in Port::dn_requests
};

struct Port {
  PortId id = 0;
  bool active = true;
  uint32_t refs = 0;

  // The receive right: in a space (receiver != null) or in a message
  // (receiver == null while active; transit_dest is where that message goes).
  Space* receiver = nullptr;
  Name receiver_name = kNameNull;
  Port* transit_dest = nullptr;

  uint32_t qlimit = kQueueLimitDefault;
  uint64_t seqno = 0;  // the next message's sequence number
  uint32_t mscount = 0;
  uint32_t srights = 0;
  uint32_t sorights = 0;

  IntrusiveList<Message, &Message::port_link> queue;
  uint32_t counted = 0;  // messages in queue that count against qlimit
  // Set when a rendezvous message (Message::rendezvous) joins the queue,
  // cleared when admit() finds none left: admit() walks the queue for them
  // only while this is set, so a full queue of ordinary messages costs a
  // receive O(1), not O(qlimit).
  bool rendezvous_queued = false;
  IntrusiveList<Waiter, &Waiter::link> receivers;
  IntrusiveList<PendingSend, &PendingSend::link> senders;

  PortSet* pset = nullptr;
  Link member_link;  // in PortSet::members

  HeldRight ns_request;  // no-senders
  HeldRight pd_request;  // port-destroyed
  IntrusiveList<DnRequest, &DnRequest::link> dn_requests;
  uint32_t registered = 0;  // bootstrap names bound to this port

  // Statistics, for portctl.
  uint64_t msgs_in = 0;
  uint64_t msgs_out = 0;
};

struct PortSet {
  uint64_t id = 0;
  Space* space = nullptr;
  Name name = kNameNull;
  IntrusiveList<Port, &Port::member_link> members;
  IntrusiveList<Message, &Message::set_link> queue;
  IntrusiveList<Waiter, &Waiter::link> receivers;
};

// One slot of a name space. A name is (index << 8 | gen); the slot is live
// while `bits` is non-zero.
struct Entry {
  uint32_t gen = 0;
  uint32_t bits = 0;   // kTypeSend | kTypeReceive | kTypeSendOnce | kTypePortSet | kTypeDeadName
  uint32_t urefs = 0;  // send or dead-name user references
  Port* port = nullptr;
  PortSet* pset = nullptr;
  DnRequest* request = nullptr;
  Account* maker = nullptr;  // send-once: the account charged for making it
  // Parked sends that took the last right from this slot and may give it
  // back: the slot is not reused while holds > 0.
  uint32_t holds = 0;
  bool in_free_list = false;
  uint32_t free_epoch = 0;  // tells a live free-list record from a stale one
};

struct Space {
  TaskId task = 0;
  Credentials creds;
  Account* account = nullptr;  // the task's
  // A deque, so that entries stay where they are while the table grows
  // (operations hold Entry references across copyouts). Index 0 is unused.
  std::deque<Entry> table{1};
  // Free slots, oldest first, as (index, free_epoch) records; a slot taken
  // by name (insert_right) leaves a stale record behind that is skipped.
  FifoVector<std::pair<uint32_t, uint32_t>> free_list;
  uint32_t live = 0;  // slots in use
  // The slot holding send and/or receive rights for a port (one per port).
  std::unordered_map<Port*, uint32_t> by_port;
};

struct Task {
  // `nodes`: where the parked set's nodes come from (the core's pool).
  explicit Task(NodePool* nodes) : parked(nodes) {}
  TaskId id = 0;
  Credentials creds;
  Space space;
  Account* account = nullptr;
  bool dying = false;  // task_destroy in progress: nothing may be copied out to it
  PooledSet<WaitToken> parked;
  std::unordered_set<uint64_t> cached_threads;  // threads with a cached message pending
};

// A look-up waiting for a bootstrap name.
struct LookupWaiter {
  WaitToken token = 0;
  TaskId task = 0;
  std::string name;
};

struct Binding {
  HeldRight right;           // a send right
  Account* owner = nullptr;  // charged for the name
  uint32_t uid = 0;
  uint32_t pid = 0;
  TaskId task = 0;
  int64_t since_unix_ms = 0;
};

}  // namespace portd::ipc
