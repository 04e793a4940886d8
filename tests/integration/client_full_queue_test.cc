// Full queues, sender order and task death across processes, through the
// real daemon (DESIGN 2.1, 2.2, 2.3):
//  * a sender in another process meets a full queue (limit 1) and a
//    rendezvous (limit 0) and tries each of Mach's three waiting behaviours:
//    return at once, wait n ms, wait for room; a failed send hands back the
//    right it was moving;
//  * senders in several processes blocked on one full queue get in in the
//    order they began waiting;
//  * each sender's messages arrive in the order it sent them, however the
//    senders interleave;
//  * a task killed with SIGKILL while it holds receive, send and send-once
//    rights, with a message queued on its port and a sender blocked on it:
//    the others see dead names, invalid-destination and the notifications
//    the rights' release causes, and the daemon is left exactly as it was
//    before the task came (tasks, ports, queued messages, names, fds).
//
// The parent learns that a child has begun waiting from the daemon itself
// (the `senders` of portctl's port detail), so no test depends on timing.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "portd/introspect.h"
#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A notification body: the NDR record, then `field`.
std::vector<std::byte> ndr_and(uint32_t field) {
  auto body = ndr_record();
  const auto* p = reinterpret_cast<const std::byte*>(&field);
  body.insert(body.end(), p, p + sizeof field);
  return body;
}

// A child that waits without a timeout would hang the test if it failed
// before letting it go: on the way out of a failed test, this kills it (a
// child already reaped has no pid any more).
class KillOnFailure {
 public:
  explicit KillOnFailure(Child& child) : child_(child) {}
  ~KillOnFailure() {
    if (child_.pid() > 0) ::kill(child_.pid(), SIGKILL);
  }
  KillOnFailure(const KillOnFailure&) = delete;
  KillOnFailure& operator=(const KillOnFailure&) = delete;

 private:
  Child& child_;
};

class ClientFullQueueTest : public CrossProcessTest {
 protected:
  Json fetch(IntrospectWhat what, uint64_t target = 0) {
    Introspection look(task_);
    IntrospectQuery q;
    q.what = what;
    q.target = target;
    auto r = look.fetch(q);
    if (!r) {
      ADD_FAILURE() << "introspection: " << status_name(r.status());
      return nullptr;
    }
    return Json::parse(*r);
  }

  // The daemon's id for the port our `name` denotes.
  uint64_t port_id(Name name) {
    const Json names = fetch(IntrospectWhat::kRights, task_->id());
    if (names.is_array())
      for (const auto& n : names)
        if (n["name"] == name && n["port"].is_number()) return n["port"].get<uint64_t>();
    ADD_FAILURE() << "no port under name " << name;
    return 0;
  }

  // The senders blocked on port `id`, in line order: {pid, message id}.
  std::vector<std::pair<pid_t, int32_t>> waiting_senders(uint64_t id) {
    std::vector<std::pair<pid_t, int32_t>> out;
    const Json port = fetch(IntrospectWhat::kPort, id);
    if (!port.is_object()) return out;
    for (const auto& s : port["senders"])
      if (!s["cached"].get<bool>()) out.emplace_back(s["pid"].get<pid_t>(), s["id"].get<int32_t>());
    return out;
  }

  // Waits until the senders blocked on port `id` are `expected`, in that
  // order; false (with the last list seen in the failure) if they never are.
  bool wait_for_senders(uint64_t id, const std::vector<std::pair<pid_t, int32_t>>& expected) {
    const auto deadline = Clock::now() + kWait;
    auto senders = waiting_senders(id);
    while (senders != expected && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
      senders = waiting_senders(id);
    }
    EXPECT_EQ(senders, expected);
    return senders == expected;
  }

  // The daemon's counts that a task's life and death must leave as they
  // were, and its open fds.
  struct Footprint {
    Json tasks, ports, port_sets, queued_messages, queued_bytes, bootstrap_names;
    int fds = 0;
    bool operator==(const Footprint&) const = default;
  };
  Footprint footprint() {
    const Json s = fetch(IntrospectWhat::kStatus);
    return Footprint{
        s["tasks"],        s["ports"],           s["port_sets"],         s["queued_messages"],
        s["queued_bytes"], s["bootstrap_names"], daemon_.open_fd_count()};
  }
  static std::string describe(const Footprint& f) {
    return "tasks " + f.tasks.dump() + ", ports " + f.ports.dump() + ", port sets " +
           f.port_sets.dump() + ", queued " + f.queued_messages.dump() + " messages " +
           f.queued_bytes.dump() + " bytes, names " + f.bootstrap_names.dump() + ", fds " +
           std::to_string(f.fds);
  }
};

// ---------------------------------------------------------------------------
// The three ways to meet a full queue, with limits 1 and 0.

class FullQueueBehaviours : public ClientFullQueueTest,
                            public ::testing::WithParamInterface<uint32_t> {};

// In a child: meets the full queue of `service` three times with one
// message that moves a send right of its own. Exit codes name the check.
int meet_a_full_queue(const std::string& socket_path, const std::string& service) {
  auto connected = Task::connect(ConnectOptions{socket_path, "full-sender"});
  if (!connected) return 2;
  std::shared_ptr<Task> task = std::move(*connected);
  auto dest = task->look_up(service, kWait);
  auto own = task->make_port();
  if (!dest || !own) return 3;
  auto carried = own->make_send();
  if (!carried) return 4;
  const Name carried_name = carried->name();
  OutgoingMessage m;
  m.set_remote(*dest).set_id(1).add_port(std::move(*carried));

  // 1. Return at once: MACH_SEND_TIMED_OUT, and nothing is consumed.
  if (task->send(m, SendOptions{0ms}) != Status::kSendTimedOut) return 10;
  if (m.held_rights() != 1 || m.remote() != dest->name()) return 11;
  if (*task->get_refs(carried_name, Right::kSend) != 1) return 12;
  if (*task->get_refs(dest->name(), Right::kSend) != 1) return 13;

  // 2. Wait at most 200 ms: the same, after the wait.
  m.set_id(2);
  const auto start = Clock::now();
  if (task->send(m, SendOptions{200ms}) != Status::kSendTimedOut) return 20;
  if (Clock::now() - start < 200ms) return 21;
  if (m.held_rights() != 1 || *task->get_refs(carried_name, Right::kSend) != 1) return 22;

  // 3. Wait for room as long as it takes: it goes once the receiver makes
  // room (or, on a rendezvous port, takes the message), and the right goes
  // with it.
  m.set_id(3);
  if (task->send(m) != Status::kSuccess) return 30;
  if (m.held_rights() != 0) return 31;
  // The send right left the name it shared with our receive right.
  if (*task->get_refs(carried_name, Right::kSend) != 0) return 32;
  if (*task->type(carried_name) != kTypeReceive) return 33;
  if (own->status()->srights != true) return 34;  // held by the receiver now
  return 0;
}

TEST_P(FullQueueBehaviours, ReturnAtOnceWaitAWhileAndWaitForRoomFromAnotherProcess) {
  const uint32_t qlimit = GetParam();
  const std::string service = unique_service("full");
  auto port = task_->check_in(service);
  ASSERT_TRUE(port.ok());
  ASSERT_EQ(port->set_qlimit(qlimit), Status::kSuccess);
  auto own_send = port->make_send();
  ASSERT_TRUE(own_send.ok());
  if (qlimit > 0) {
    for (uint32_t i = 0; i < qlimit; ++i)
      ASSERT_EQ(send_text(*task_, *own_send, 100 + static_cast<int32_t>(i)), Status::kSuccess);
  }
  EXPECT_EQ(port->status()->msgcount, qlimit);
  const uint64_t id = port_id(port->name());

  const std::string socket = daemon_.socket_path();
  Child sender([&] { return meet_a_full_queue(socket, service); });
  const KillOnFailure guard(sender);
  // Blocked in the third send (message 3) and nothing else: the second,
  // also seen waiting for a while, gave up.
  ASSERT_TRUE(wait_for_senders(id, {{sender.pid(), 3}}));

  for (uint32_t i = 0; i < qlimit; ++i) {
    auto filler = port->receive(at_once());
    ASSERT_EQ(filler.status(), Status::kSuccess);
    EXPECT_EQ(filler->id, 100 + static_cast<int32_t>(i));
  }
  auto got = port->receive(wait_up_to());
  ASSERT_EQ(got.status(), Status::kSuccess);
  EXPECT_EQ(got->id, 3);
  EXPECT_EQ(got->trailer.pid, static_cast<uint32_t>(sender.pid()));
  EXPECT_EQ(got->trailer.seqno, qlimit);
  ASSERT_EQ(got->descriptors.size(), 1u);
  EXPECT_EQ(std::get<ReceivedPort>(got->descriptors[0]).type, RightType::kSend);
  EXPECT_EQ(sender.wait(), 0);
  // Messages 1 and 2 never arrived.
  EXPECT_EQ(port->receive(at_once()).status(), Status::kRcvTimedOut);
  EXPECT_EQ(port->status()->msgcount, 0u);
}

INSTANTIATE_TEST_SUITE_P(QueueLimit, FullQueueBehaviours, ::testing::Values(1u, 0u),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("Rendezvous")
                                                  : "Limit" + std::to_string(info.param);
                         });

// ---------------------------------------------------------------------------
// Order.

// In a child: one message with `id` to `service`, waiting for room.
int send_one_waiting(const std::string& socket_path, const std::string& service, int32_t id) {
  auto task = Task::connect(ConnectOptions{socket_path, "waiting-sender"});
  if (!task) return 2;
  auto dest = (*task)->look_up(service, kWait);
  if (!dest) return 3;
  return send_text(**task, *dest, id, "waited") == Status::kSuccess ? 0 : 4;
}

TEST_F(ClientFullQueueTest, SendersInSeveralProcessesGetInInTheOrderTheyBeganWaiting) {
  const std::string service = unique_service("line");
  auto port = task_->check_in(service);
  ASSERT_TRUE(port.ok());
  ASSERT_EQ(port->set_qlimit(1), Status::kSuccess);
  auto own_send = port->make_send();
  ASSERT_TRUE(own_send.ok());
  ASSERT_EQ(send_text(*task_, *own_send, 100), Status::kSuccess);
  const uint64_t id = port_id(port->name());

  // Each child starts once the one before it is seen waiting.
  constexpr int kSenders = 4;
  const std::string socket = daemon_.socket_path();
  std::vector<std::unique_ptr<Child>> children;
  std::vector<std::unique_ptr<KillOnFailure>> guards;
  std::vector<std::pair<pid_t, int32_t>> line;
  for (int32_t k = 1; k <= kSenders; ++k) {
    children.push_back(
        std::make_unique<Child>([&, k] { return send_one_waiting(socket, service, k); }));
    guards.push_back(std::make_unique<KillOnFailure>(*children.back()));
    line.emplace_back(children.back()->pid(), k);
    ASSERT_TRUE(wait_for_senders(id, line));
  }

  // Each receive makes room for exactly the next in line.
  auto filler = port->receive(at_once());
  ASSERT_EQ(filler.status(), Status::kSuccess);
  EXPECT_EQ(filler->id, 100);
  for (int32_t k = 1; k <= kSenders; ++k) {
    auto m = port->receive(wait_up_to());
    ASSERT_EQ(m.status(), Status::kSuccess);
    EXPECT_EQ(m->id, k);
    EXPECT_EQ(m->trailer.pid, static_cast<uint32_t>(children[k - 1]->pid()));
    EXPECT_EQ(m->trailer.seqno, static_cast<uint64_t>(k));
  }
  for (auto& c : children) EXPECT_EQ(c->wait(), 0);
  EXPECT_EQ(port->receive(at_once()).status(), Status::kRcvTimedOut);
}

// In a child: `count` messages with ids 0, 1, ... to `service`, each waiting
// for room (the queue keeps its default limit of 5, so most of them wait).
int send_many(const std::string& socket_path, const std::string& service, int32_t count) {
  auto task = Task::connect(ConnectOptions{socket_path, "ordered-sender"});
  if (!task) return 2;
  auto dest = (*task)->look_up(service, kWait);
  if (!dest) return 3;
  for (int32_t i = 0; i < count; ++i)
    if (send_text(**task, *dest, i) != Status::kSuccess) return 4;
  return 0;
}

TEST_F(ClientFullQueueTest, EachSendersMessagesArriveInTheOrderSent) {
  const std::string service = unique_service("order");
  auto port = task_->check_in(service);
  ASSERT_TRUE(port.ok());
  ASSERT_EQ(port->status()->qlimit, kQueueLimitDefault);
  constexpr int32_t kEach = 300;
  constexpr int kSenders = 3;
  const std::string socket = daemon_.socket_path();
  std::vector<std::unique_ptr<Child>> children;
  std::vector<std::unique_ptr<KillOnFailure>> guards;
  std::map<uint32_t, int32_t> next;  // by sender pid: the id expected next
  for (int k = 0; k < kSenders; ++k) {
    children.push_back(std::make_unique<Child>([&] { return send_many(socket, service, kEach); }));
    guards.push_back(std::make_unique<KillOnFailure>(*children.back()));
    next[static_cast<uint32_t>(children.back()->pid())] = 0;
  }

  int out_of_order = 0;
  for (uint64_t seqno = 0; seqno < static_cast<uint64_t>(kEach) * kSenders; ++seqno) {
    auto m = port->receive(wait_up_to());
    ASSERT_EQ(m.status(), Status::kSuccess) << "message " << seqno;
    EXPECT_EQ(m->trailer.seqno, seqno);
    auto it = next.find(m->trailer.pid);
    ASSERT_NE(it, next.end()) << "from pid " << m->trailer.pid;
    if (m->id != it->second && ++out_of_order <= 5)
      ADD_FAILURE() << "pid " << it->first << ": id " << m->id << ", expected " << it->second;
    it->second = m->id + 1;
  }
  EXPECT_EQ(out_of_order, 0);
  for (const auto& [pid, id] : next) EXPECT_EQ(id, kEach) << "pid " << pid;
  for (auto& c : children) EXPECT_EQ(c->wait(), 0);
  EXPECT_EQ(port->receive(at_once()).status(), Status::kRcvTimedOut);
}

// ---------------------------------------------------------------------------
// SIGKILL.

TEST_F(ClientFullQueueTest, ATaskKilledHoldingRightsReleasesEverythingAndLeaksNothing) {
  const Footprint before = footprint();
  ASSERT_TRUE(before.tasks.is_number());

  // What the victim will hold, all made here:
  //  * a send right (two user references) to `sent_to`, whose no-senders
  //    request says when it is gone;
  //  * a send-once right to `once_to`, which must fire a send-once
  //    notification when it dies unused;
  //  * the receive right of `victim`, a port with queue limit 1 whose queue
  //    is full with a message carrying a send right to `carried` (released
  //    with the message), a dead-name request on our send right to it, and
  //    a thread of ours blocked sending to it;
  //  * its own inbox, on which it waits in a parked receive.
  ReceiveRight sent_to = make_port(), once_to = make_port(), carried = make_port();
  ReceiveRight victim = make_port(), notify = make_port();
  ASSERT_EQ(victim.set_qlimit(1), Status::kSuccess);
  auto to_victim = victim.make_send();
  ASSERT_TRUE(to_victim.ok());
  OutgoingMessage queued;
  queued.set_remote(*to_victim).set_id(5).add_port(carried, Disposition::kMakeSend);
  ASSERT_EQ(task_->send(queued), Status::kSuccess);
  ASSERT_EQ(victim.status()->msgcount, 1u);

  OutgoingMessage rights;
  rights.add_port(sent_to, Disposition::kMakeSend)
      .add_port(sent_to, Disposition::kMakeSend)
      .add_port(once_to, Disposition::kMakeSendOnce)
      .add_port(std::move(victim));
  AgentHandle agent;
  auto child = spawn_agent(&agent, &rights);
  EXPECT_EQ(sent_to.status()->mscount, 2u);
  EXPECT_EQ(once_to.status()->sorights, 1u);

  ASSERT_TRUE(sent_to.request_no_senders(notify, 2).ok());
  ASSERT_TRUE(carried.request_no_senders(notify, 1).ok());
  ASSERT_EQ(task_
                ->request_notification(to_victim->name(), Notification::kDeadName, 0, notify.name(),
                                       Disposition::kMakeSendOnce)
                .status(),
            Status::kSuccess);
  const uint64_t victim_id = port_id(to_victim->name());
  Status blocked = Status::kFailure;
  std::thread sender([&] { blocked = send_text(*task_, *to_victim, 6, "blocked"); });
  ASSERT_TRUE(wait_for_senders(victim_id, {{::getpid(), 6}}));
  const Name agent_inbox = agent.inbox().name();

  ASSERT_TRUE(kill_child(*child));
  sender.join();
  EXPECT_EQ(blocked, Status::kSendInvalidDest);

  // On `notify`: dead-name (72) for our right to the victim's port, and
  // no-senders (70) for `sent_to` (make-send count 2) and for `carried` (1),
  // in whatever order the release made them. On `once_to`: send-once (71).
  const auto id_of = [](Notification n) { return static_cast<int32_t>(n); };
  std::multiset<std::pair<int32_t, std::vector<std::byte>>> seen;
  for (int i = 0; i < 3; ++i) {
    auto n = notify.receive(wait_up_to());
    ASSERT_EQ(n.status(), Status::kSuccess) << i;
    EXPECT_EQ(n->trailer.sender_task, 0u);
    EXPECT_EQ(n->local_type, RightType::kSendOnce);
    seen.emplace(n->id, n->body);
  }
  EXPECT_EQ(notify.receive(at_once()).status(), Status::kRcvTimedOut);
  const std::multiset<std::pair<int32_t, std::vector<std::byte>>> expected = {
      {id_of(Notification::kDeadName), ndr_and(to_victim->name())},
      {id_of(Notification::kNoSenders), ndr_and(2)},
      {id_of(Notification::kNoSenders), ndr_and(1)}};
  EXPECT_EQ(seen, expected);
  auto once = once_to.receive(wait_up_to());
  ASSERT_EQ(once.status(), Status::kSuccess);
  EXPECT_EQ(once->id, id_of(Notification::kSendOnce));
  EXPECT_EQ(once->body, ndr_record());
  EXPECT_EQ(once_to.status()->sorights, 0u);

  EXPECT_FALSE(sent_to.status()->srights);
  EXPECT_FALSE(carried.status()->srights);
  EXPECT_EQ(*task_->type(to_victim->name()), kTypeDeadName);
  EXPECT_EQ(*task_->type(agent_inbox), kTypeDeadName);
  EXPECT_EQ(send_text(*task_, *to_victim, 7), Status::kSendInvalidDest);

  // Once we let go of what we made for it, the daemon is as it was before.
  sent_to.reset();
  once_to.reset();
  carried.reset();
  notify.reset();
  const Name dead = to_victim->name();
  to_victim->reset();
  ASSERT_EQ(task_->deallocate(dead), Status::kSuccess);  // the notification's reference
  EXPECT_EQ(task_->type(dead).status(), Status::kInvalidName);
  agent = AgentHandle();
  Footprint after = footprint();
  for (int i = 0; i < 500 && !(after == before); ++i) {
    std::this_thread::sleep_for(10ms);
    after = footprint();
  }
  EXPECT_TRUE(after == before) << "before: " << describe(before) << "\nafter:  " << describe(after);
  for (const auto& t : fetch(IntrospectWhat::kTasks)) EXPECT_NE(t["pid"], child->pid()) << t.dump();
}

}  // namespace
}  // namespace portd::testing
