// Every per-uid quota hit through the real daemon: portd started with a small
// per-uid limit (the per-task ones left at their large defaults, so that the
// uid's is the one hit), two tasks of the test's uid reaching it together.
// Each test provokes its quota with the operations of the per-task test in
// daemon_quota_test.cc, split over the two tasks; then the next attempt from
// either is refused with the exact status and the limit named, the tasks' and
// the uid's charges are what they were before the refusal, another uid (where
// that is cheap) still has its own allowance, and once everything is released
// the uid's charges are back at the start. (quota.uid.ports, made by a
// task, and quota.uid.connections are in daemon_quota_test.cc.)
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "portd/introspect.h"
#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/cross_process.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/quota_support.h"

namespace portd::testing {
namespace {

using namespace quota;

class DaemonUidQuotaTest : public QuotaFixture {};

TEST_F(DaemonUidQuotaTest, Names) {
  start({"--quota-uid-names", "6"});
  auto one = connect("one");
  auto two = connect("two");
  const Json base = snapshot(*one, *two);
  ASSERT_EQ(base["two"]["uid"]["names"], 0);
  std::vector<Name> dead_one, dead_two;
  for (int i = 0; i < 3; ++i) {
    auto a = one->allocate(Right::kDeadName);
    auto b = two->allocate(Right::kDeadName);
    ASSERT_TRUE(a.ok() && b.ok()) << i;
    dead_one.push_back(*a);
    dead_two.push_back(*b);
  }
  const Json full = snapshot(*one, *two);
  EXPECT_EQ(full["one"]["task"]["names"], 3);
  EXPECT_EQ(full["two"]["task"]["names"], 3);
  EXPECT_EQ(full["two"]["uid"]["names"], 6);
  for (auto& t : {one, two}) {
    auto refused = t->allocate(Right::kDeadName);
    EXPECT_EQ(refused.status(), Status::kNoSpace);
    EXPECT_EQ(refused.detail(), "refused by the names limit");
    EXPECT_EQ(last_refused_limit(), "names");
    auto port = t->make_port();
    EXPECT_EQ(port.status(), Status::kNoSpace);
    EXPECT_EQ(last_refused_limit(), "names");
  }
  EXPECT_EQ(snapshot(*one, *two), full);
  // Another uid has its own.
  EXPECT_EQ(nobody_allocates(Right::kDeadName, 6, Status::kNoSpace), 0);
  EXPECT_EQ(snapshot(*one, *two), full);
  for (Name n : dead_one) ASSERT_EQ(one->deallocate(n), Status::kSuccess);
  for (Name n : dead_two) ASSERT_EQ(two->deallocate(n), Status::kSuccess);
  EXPECT_EQ(snapshot(*one, *two), base);
}

TEST_F(DaemonUidQuotaTest, NamesForRightsArrivingInAMessage) {
  // The uid's names are all taken (by the receiver's port, the sender's
  // rights and a third task's dead names): the message arrives without the
  // right it carried, and the reply says which limit.
  start({"--quota-uid-names", "6"});
  auto receiver = connect("receiver");
  auto sender = connect("sender");
  auto filler = connect("filler");
  auto inbox = receiver->make_port();
  ASSERT_TRUE(inbox.ok());
  SendRight to_inbox = hand_over(receiver, *inbox, sender);
  auto carried = sender->make_port();
  ASSERT_TRUE(carried.ok());
  std::vector<Name> dead;
  for (int i = 0; i < 3; ++i) {
    auto n = filler->allocate(Right::kDeadName);
    ASSERT_TRUE(n.ok()) << i;
    dead.push_back(*n);
  }
  const Json full = snapshot(*receiver);
  EXPECT_EQ(full["task"]["names"], 1);
  EXPECT_EQ(full["uid"]["names"], 6);
  OutgoingMessage m = text(to_inbox, 7, "with a right");
  m.add_port(*carried, Disposition::kMakeSend);
  ASSERT_EQ(sender->send(m), Status::kSuccess);
  auto got = inbox->receive(at_once());
  EXPECT_EQ(got.status(), Status::kRcvBodyError);
  EXPECT_EQ(last_refused_limit(), "names");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, 7);
  EXPECT_EQ(got->body_text(), "with a right");
  ASSERT_EQ(got->descriptors.size(), 1u);
  EXPECT_EQ(std::get<ReceivedPort>(got->descriptors[0]).name, kNameNull);
  EXPECT_EQ(snapshot(*receiver), full);
  // The right was destroyed, not leaked: the port has no senders left.
  auto st = carried->status();
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->srights);
  // With a name free, the same right arrives.
  ASSERT_EQ(filler->deallocate(dead.back()), Status::kSuccess);
  OutgoingMessage again = text(to_inbox, 8);
  again.add_port(*carried, Disposition::kMakeSend);
  ASSERT_EQ(sender->send(again), Status::kSuccess);
  auto arrived = inbox->receive(at_once());
  ASSERT_TRUE(arrived.ok()) << status_name(arrived.status());
  EXPECT_NE(std::get<ReceivedPort>(arrived->descriptors.at(0)).name, kNameNull);
  EXPECT_EQ(used_names(*receiver), 2u);
}

TEST_F(DaemonUidQuotaTest, AReceiveRightInTransitStaysChargedToItsSendersUid) {
  // The receiver holds one port and the sender, of the same uid, the other
  // two the uid may have. The right sent away still counts, so the uid stays
  // full; when it arrives its charge passes to the receiver, uid unchanged.
  start({"--quota-uid-ports", "3"});
  auto receiver = connect("receiver");
  auto sender = connect("sender");
  auto inbox = receiver->make_port();
  ASSERT_TRUE(inbox.ok());
  SendRight to_inbox = hand_over(receiver, *inbox, sender);
  auto moving = sender->make_port();
  auto other = sender->make_port();
  ASSERT_TRUE(moving.ok() && other.ok());
  const Name moving_name = moving->name();
  OutgoingMessage m = text(to_inbox, 8);
  m.add_port(std::move(*moving));
  ASSERT_EQ(sender->send(m), Status::kSuccess);
  EXPECT_EQ(snapshot(*sender)["task"]["ports"], 2);
  EXPECT_EQ(snapshot(*sender)["uid"]["ports"], 3);
  auto refused = sender->make_port();
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the ports limit");
  auto type = sender->type(moving_name);
  EXPECT_EQ(type.status(), Status::kInvalidName);
  auto got = inbox->receive(at_once());
  ASSERT_TRUE(got.ok()) << status_name(got.status());
  const Name arrived = std::get<ReceivedPort>(got->descriptors.at(0)).name;
  EXPECT_NE(arrived, kNameNull);
  auto arrived_type = receiver->type(arrived);
  ASSERT_TRUE(arrived_type.ok());
  EXPECT_EQ(*arrived_type, kTypeReceive);
  EXPECT_EQ(snapshot(*receiver)["task"]["ports"], 2);
  EXPECT_EQ(snapshot(*sender)["task"]["ports"], 1);
  EXPECT_EQ(snapshot(*sender)["uid"]["ports"], 3);
  EXPECT_EQ(sender->make_port().status(), Status::kResourceShortage);
}

TEST_F(DaemonUidQuotaTest, PortSets) {
  start({"--quota-uid-port-sets", "2"});
  auto one = connect("one");
  auto two = connect("two");
  const Json base = snapshot(*one, *two);
  std::vector<PortSet> sets;
  sets.push_back(std::move(*one->make_port_set()));
  sets.push_back(std::move(*two->make_port_set()));
  const Json full = snapshot(*one, *two);
  EXPECT_EQ(full["one"]["task"]["port_sets"], 1);
  EXPECT_EQ(full["two"]["task"]["port_sets"], 1);
  EXPECT_EQ(full["two"]["uid"]["port_sets"], 2);
  for (auto& t : {one, two}) {
    auto refused = t->make_port_set();
    EXPECT_EQ(refused.status(), Status::kResourceShortage);
    EXPECT_EQ(refused.detail(), "refused by the port_sets limit");
  }
  EXPECT_EQ(snapshot(*one, *two), full);
  EXPECT_EQ(nobody_allocates(Right::kPortSet, 2, Status::kResourceShortage), 0);
  EXPECT_EQ(snapshot(*one, *two), full);
  sets.clear();
  EXPECT_EQ(snapshot(*one, *two), base);
}

// Queued messages and their bytes are charged to the sender until received:
// two senders of one uid, `each` messages from each fill the uid's quota.
// A refused send consumed nothing: the same message goes once there is room.
class QueuedUidQuota : public DaemonUidQuotaTest {
 protected:
  void run(std::vector<std::string> flags, const char* limit,
           const std::function<OutgoingMessage(const SendRight&, int)>& make, int each) {
    start(std::move(flags));
    auto receiver = connect("receiver");
    auto one = connect("one");
    auto two = connect("two");
    auto inbox = receiver->make_port();
    ASSERT_TRUE(inbox.ok());
    ASSERT_EQ(inbox->set_qlimit(100), Status::kSuccess);
    SendRight to_one = hand_over(receiver, *inbox, one);
    SendRight to_two = hand_over(receiver, *inbox, two);
    const Json base = snapshot(*one, *two);
    // Ids: the first sender's from 0, the second's from 100.
    std::vector<int> sent;
    for (int i = 0; i < each; ++i) {
      OutgoingMessage a = make(to_one, i);
      ASSERT_EQ(one->send(a, at_once_send()), Status::kSuccess) << i;
      sent.push_back(i);
      OutgoingMessage b = make(to_two, 100 + i);
      ASSERT_EQ(two->send(b, at_once_send()), Status::kSuccess) << i;
      sent.push_back(100 + i);
    }
    const Json full = snapshot(*one, *two);
    EXPECT_EQ(full["one"]["task"][limit], full["two"]["task"][limit]);
    EXPECT_EQ(full["two"]["uid"][limit], full["one"]["task"][limit].get<uint64_t>() * 2 +
                                             base["two"]["uid"][limit].get<uint64_t>());
    const uint64_t refused_before =
        fetch(IntrospectWhat::kStatus)["counters"]["messages_refused"].get<uint64_t>();
    OutgoingMessage over_one = make(to_one, each);
    OutgoingMessage over_two = make(to_two, 100 + each);
    const size_t held = over_one.held_rights();
    EXPECT_EQ(one->send(over_one, at_once_send()), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), limit);
    EXPECT_EQ(over_one.held_rights(), held);
    EXPECT_EQ(two->send(over_two, at_once_send()), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), limit);
    EXPECT_EQ(over_two.held_rights(), held);
    EXPECT_EQ(snapshot(*one, *two), full);
    EXPECT_EQ(fetch(IntrospectWhat::kStatus)["counters"]["messages_refused"], refused_before + 2);
    // Another uid has its own: the same messages to a port of its own.
    EXPECT_EQ(as_nobody([&](const std::string& socket) {
                auto t = Task::connect(ConnectOptions{socket, "nobody"});
                if (!t) return 1;
                auto port = (*t)->make_port();
                if (!port || port->set_qlimit(100) != Status::kSuccess) return 2;
                auto to = port->make_send();
                if (!to) return 3;
                for (int i = 0; i < 2 * each; ++i) {
                  OutgoingMessage m = make(*to, i);
                  if ((*t)->send(m, at_once_send()) != Status::kSuccess) return 4;
                }
                OutgoingMessage m = make(*to, 2 * each);
                if ((*t)->send(m, at_once_send()) != Status::kSendNoBuffer) return 5;
                return last_refused_limit() == limit ? 0 : 6;
              }),
              0);
    EXPECT_EQ(snapshot(*one, *two), full);
    // Received: the charges go, and the refused messages go as they are.
    for (int id : sent) {
      auto got = inbox->receive(at_once());
      ASSERT_TRUE(got.ok()) << status_name(got.status());
      EXPECT_EQ(got->id, id);
    }
    EXPECT_EQ(snapshot(*one, *two), base);
    ASSERT_EQ(one->send(over_one, at_once_send()), Status::kSuccess);
    ASSERT_EQ(two->send(over_two, at_once_send()), Status::kSuccess);
    for (int id : {each, 100 + each}) {
      auto got = inbox->receive(at_once());
      ASSERT_TRUE(got.ok()) << status_name(got.status());
      EXPECT_EQ(got->id, id);
    }
    EXPECT_EQ(snapshot(*one, *two), base);
  }
};

TEST_F(QueuedUidQuota, QueuedMessages) {
  run({"--quota-uid-queued-messages", "4"}, "queued_messages", one_byte, 2);
}

TEST_F(QueuedUidQuota, QueuedBytes) {
  // 40 bytes from each: 80 queued, 40 more would be 120.
  run({"--quota-uid-queued-bytes", "100"}, "queued_bytes", forty_bytes, 1);
}

TEST_F(QueuedUidQuota, OolBytes) {
  run({"--quota-uid-ool-bytes", "10000"}, "ool_bytes", one_ool_page, 1);
}

TEST_F(QueuedUidQuota, FdsInFlight) {
  // Two fds from each: four in flight, two more would be six.
  run({"--quota-uid-fds-in-flight", "5"}, "fds_in_flight", two_ool_fds, 1);
}

TEST_F(DaemonUidQuotaTest, SendOnceRights) {
  start({"--quota-uid-send-once-rights", "2"});
  auto one = connect("one");
  auto two = connect("two");
  auto port_one = one->make_port();
  auto port_two = two->make_port();
  ASSERT_TRUE(port_one.ok() && port_two.ok());
  const Json base = snapshot(*one, *two);
  auto made_one = port_one->make_send_once();
  auto made_two = port_two->make_send_once();
  ASSERT_TRUE(made_one.ok() && made_two.ok());
  const Json full = snapshot(*one, *two);
  EXPECT_EQ(full["one"]["task"]["send_once_rights"], 1);
  EXPECT_EQ(full["two"]["task"]["send_once_rights"], 1);
  EXPECT_EQ(full["two"]["uid"]["send_once_rights"], 2);
  for (auto* p : {&*port_one, &*port_two}) {
    Task& t = p == &*port_one ? *one : *two;
    auto refused = p->make_send_once();
    EXPECT_EQ(refused.status(), Status::kResourceShortage);
    EXPECT_EQ(refused.detail(), "refused by the send_once_rights limit");
    // A send that would make one (a reply right) is refused too.
    OutgoingMessage m;
    m.set_remote(*p, Disposition::kMakeSend).set_local(*p, Disposition::kMakeSendOnce);
    EXPECT_EQ(t.send(m, at_once_send()), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), "send_once_rights");
    // And one with an out-of-line array of them.
    OutgoingMessage array;
    array.set_remote(*p, Disposition::kMakeSend)
        .add_ool_ports({p->name(), p->name()}, Disposition::kMakeSendOnce);
    EXPECT_EQ(t.send(array, at_once_send()), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), "send_once_rights");
  }
  EXPECT_EQ(snapshot(*one, *two), full);
  EXPECT_EQ(as_nobody([](const std::string& socket) {
              auto t = Task::connect(ConnectOptions{socket, "nobody"});
              if (!t) return 1;
              auto port = (*t)->make_port();
              if (!port) return 2;
              auto a = port->make_send_once();
              auto b = port->make_send_once();
              if (!a || !b) return 3;
              return port->make_send_once().status() == Status::kResourceShortage ? 0 : 4;
            }),
            0);
  EXPECT_EQ(snapshot(*one, *two), full);
  // Released unused, each fires a send-once notification that carries it
  // (and its charge) until received.
  made_one->reset();
  made_two->reset();
  for (auto* p : {&*port_one, &*port_two}) {
    auto n = p->receive(at_once());
    ASSERT_TRUE(n.ok()) << status_name(n.status());
    EXPECT_EQ(n->id, 71);
  }
  EXPECT_EQ(snapshot(*one, *two), base);
}

TEST_F(DaemonUidQuotaTest, NotifyRequests) {
  start({"--quota-uid-notify-requests", "2"});
  struct Side {
    std::shared_ptr<Task> task;
    ReceiveRight a, b, notify;
    SendRight to_a, to_b;
  };
  std::vector<Side> sides;
  for (const char* command : {"one", "two"}) {
    Side s;
    s.task = connect(command);
    auto a = s.task->make_port();
    auto b = s.task->make_port();
    auto notify = s.task->make_port();
    ASSERT_TRUE(a.ok() && b.ok() && notify.ok());
    s.a = std::move(*a);
    s.b = std::move(*b);
    s.notify = std::move(*notify);
    auto to_a = s.a.make_send();
    auto to_b = s.b.make_send();
    ASSERT_TRUE(to_a.ok() && to_b.ok());
    s.to_a = std::move(*to_a);
    s.to_b = std::move(*to_b);
    sides.push_back(std::move(s));
  }
  Task& one = *sides[0].task;
  Task& two = *sides[1].task;
  const Json base = snapshot(one, two);
  for (Side& s : sides) ASSERT_TRUE(s.to_a.request_dead_name(s.notify).ok());
  const Json full = snapshot(one, two);
  EXPECT_EQ(full["one"]["task"]["notify_requests"], 1);
  EXPECT_EQ(full["two"]["task"]["notify_requests"], 1);
  EXPECT_EQ(full["two"]["uid"]["notify_requests"], 2);
  for (Side& s : sides) {
    auto refused = s.to_b.request_dead_name(s.notify);
    EXPECT_EQ(refused.status(), Status::kResourceShortage);
    EXPECT_EQ(refused.detail(), "refused by the notify_requests limit");
  }
  EXPECT_EQ(snapshot(one, two), full);
  EXPECT_EQ(as_nobody([](const std::string& socket) {
              auto t = Task::connect(ConnectOptions{socket, "nobody"});
              if (!t) return 1;
              auto notify = (*t)->make_port();
              if (!notify) return 2;
              std::vector<ReceiveRight> ports;
              std::vector<SendRight> to;
              for (int i = 0; i < 3; ++i) {
                auto p = (*t)->make_port();
                if (!p) return 3;
                auto s = p->make_send();
                if (!s) return 4;
                ports.push_back(std::move(*p));
                to.push_back(std::move(*s));
              }
              for (int i = 0; i < 2; ++i)
                if (!to[i].request_dead_name(*notify)) return 5;
              return to[2].request_dead_name(*notify).status() == Status::kResourceShortage ? 0 : 6;
            }),
            0);
  EXPECT_EQ(snapshot(one, two), full);
  // Cancelled, a request gives its send-once right back; dropped unused, it
  // tells `notify` so (and is charged until that is received).
  for (Side& s : sides) {
    auto previous = s.to_a.cancel_dead_name();
    ASSERT_TRUE(previous.ok());
    EXPECT_TRUE(*previous);
    previous->reset();
    auto n = s.notify.receive(at_once());
    ASSERT_TRUE(n.ok()) << status_name(n.status());
    EXPECT_EQ(n->id, 71);
  }
  EXPECT_EQ(snapshot(one, two), base);
}

TEST_F(DaemonUidQuotaTest, BootstrapNames) {
  start({"--quota-uid-bootstrap-names", "2"});
  auto one = connect("one");
  auto two = connect("two");
  auto port_one = one->make_port();
  auto port_two = two->make_port();
  ASSERT_TRUE(port_one.ok() && port_two.ok());
  const Json base = snapshot(*one, *two);
  auto service_one = one->check_in(unique_service("first"));
  auto service_two = two->check_in(unique_service("second"));
  ASSERT_TRUE(service_one.ok() && service_two.ok());
  const Json full = snapshot(*one, *two);
  EXPECT_EQ(full["one"]["task"]["bootstrap_names"], 1);
  EXPECT_EQ(full["two"]["task"]["bootstrap_names"], 1);
  EXPECT_EQ(full["two"]["uid"]["bootstrap_names"], 2);
  for (auto& [t, port] : {std::pair{one, &*port_one}, std::pair{two, &*port_two}}) {
    auto refused = t->check_in(unique_service("third"));
    EXPECT_EQ(refused.status(), Status::kBootstrapNoMemory);
    EXPECT_EQ(refused.detail(), "refused by the bootstrap_names limit");
    EXPECT_EQ(t->bootstrap_register(unique_service("fourth"), port->name()),
              Status::kBootstrapNoMemory);
    EXPECT_EQ(last_refused_limit(), "bootstrap_names");
  }
  EXPECT_EQ(snapshot(*one, *two), full);  // no port made for a refused check-in
  EXPECT_EQ(as_nobody([](const std::string& socket) {
              auto t = Task::connect(ConnectOptions{socket, "nobody"});
              if (!t) return 1;
              auto a = (*t)->check_in(unique_service("nobody-a"));
              auto b = (*t)->check_in(unique_service("nobody-b"));
              if (!a || !b) return 2;
              return (*t)->check_in(unique_service("nobody-c")).status() ==
                             Status::kBootstrapNoMemory
                         ? 0
                         : 3;
            }),
            0);
  EXPECT_EQ(snapshot(*one, *two), full);
  service_one->reset();  // the port dies; its name goes with it
  service_two->reset();
  EXPECT_EQ(snapshot(*one, *two), base);
  EXPECT_TRUE(one->check_in(unique_service("fifth")).ok());
  EXPECT_TRUE(two->check_in(unique_service("sixth")).ok());
}

TEST_F(DaemonUidQuotaTest, ParkedRequests) {
  start({"--quota-uid-parked-requests", "2"});
  auto one = connect("one");
  auto two = connect("two");
  auto port_one = one->make_port();
  auto port_two = two->make_port();
  auto full_port = one->make_port();
  ASSERT_TRUE(port_one.ok() && port_two.ok() && full_port.ok());
  ASSERT_EQ(full_port->set_qlimit(1), Status::kSuccess);
  SendRight to_full = hand_over(one, *full_port, two);
  OutgoingMessage fill;
  fill.set_remote(*full_port, Disposition::kMakeSend).set_id(1);
  ASSERT_EQ(one->send(fill), Status::kSuccess);
  const Json base = snapshot(*one, *two);
  // One receive waits in each task, in a thread of its own.
  std::vector<Status> got(2, Status::kFailure);
  std::vector<std::thread> waiting;
  waiting.emplace_back([&] { got[0] = one->receive(port_one->name(), wait_up_to()).status(); });
  waiting.emplace_back([&] { got[1] = two->receive(port_two->name(), wait_up_to()).status(); });
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (uid_used(*one, "parked_requests") < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  const Json full = snapshot(*one, *two);
  ASSERT_EQ(full["one"]["task"]["parked_requests"], 1);
  ASSERT_EQ(full["two"]["task"]["parked_requests"], 1);
  ASSERT_EQ(full["two"]["uid"]["parked_requests"], 2);
  for (auto& [t, port] : {std::pair{one, &*port_one}, std::pair{two, &*port_two}}) {
    auto refused = t->receive(port->name(), wait_up_to());
    EXPECT_EQ(refused.status(), Status::kResourceShortage);
    EXPECT_EQ(refused.detail(), "refused by the parked_requests limit");
    OutgoingMessage blocked;
    if (t == one)
      blocked.set_remote(*full_port, Disposition::kMakeSend).set_id(2);
    else
      blocked.set_remote(to_full).set_id(2);
    // It would have to wait (bounded, so that a daemon that let it wait
    // fails the test rather than hangs it).
    EXPECT_EQ(t->send(blocked, SendOptions{kWait}), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), "parked_requests");
    auto look = t->look_up(unique_service("nobody"), kWait);
    EXPECT_EQ(look.status(), Status::kBootstrapNoMemory);
    EXPECT_EQ(look.detail(), "refused by the parked_requests limit");
  }
  EXPECT_EQ(snapshot(*one, *two), full);
  for (auto* p : {&*port_one, &*port_two}) {
    OutgoingMessage wake;
    wake.set_remote(*p, Disposition::kMakeSend).set_id(10);
    ASSERT_EQ((p == &*port_one ? one : two)->send(wake), Status::kSuccess);
  }
  for (auto& w : waiting) w.join();
  for (Status g : got) EXPECT_EQ(g, Status::kSuccess);
  EXPECT_EQ(snapshot(*one, *two), base);
}

// A task that dies holding something of every quota gives the uid back all
// of it, except what its queued messages carry: that stays charged (to it,
// and so to its uid) until they are received.
TEST_F(DaemonUidQuotaTest, ATaskThatDiesGivesItsUidEverythingBack) {
  start(std::vector<std::string>{});
  auto keeper = connect("keeper");
  auto inbox = keeper->make_port();
  ASSERT_TRUE(inbox.ok());
  const std::string inbox_service = unique_service("inbox");
  ASSERT_EQ(keeper->bootstrap_register(inbox_service, inbox->name()), Status::kSuccess);
  const Json base = snapshot(*keeper);
  const std::string socket = daemon_->socket_path();
  Child dying([&] {
    auto t = Task::connect(ConnectOptions{socket, "dying"});
    if (!t) return 1;
    Task& d = **t;
    auto dead = d.allocate(Right::kDeadName);
    auto port = d.make_port();
    auto set = d.make_port_set();
    auto notify = d.make_port();
    if (!dead || !port || !set || !notify) return 2;
    auto once = port->make_send_once();
    auto to_port = port->make_send();
    if (!once || !to_port || !to_port->request_dead_name(*notify)) return 3;
    auto service = d.check_in(unique_service("dying"));
    if (!service) return 4;
    auto to_inbox = d.look_up(inbox_service);
    if (!to_inbox) return 5;
    OutgoingMessage m = text(*to_inbox, 9, "queued");
    m.add_ool_copy(bytes_of(std::string(4096, 'o')));
    if (d.send(m, at_once_send()) != Status::kSuccess) return 6;
    // Parked last: the test waits for it, and then all the rest is held.
    std::thread([&] { (void)d.receive(port->name(), wait_up_to(3600s)); }).detach();
    for (;;) ::pause();
  });
  Json held;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const Json& t : fetch(IntrospectWhat::kTasks))
      if (t["pid"] == dying.pid() && t["quota"]["parked_requests"]["used"] == 1) held = t["quota"];
    if (!held.is_null()) break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(held.is_null()) << "the dying task never parked its receive";
  const Json during = snapshot(*keeper);
  EXPECT_EQ(held.size(), 11u) << held.dump();
  for (auto& [k, v] : held.items()) {
    EXPECT_GE(v["used"].get<uint64_t>(), 1u) << k;
    EXPECT_EQ(during["uid"][k], base["uid"][k].get<uint64_t>() + v["used"].get<uint64_t>()) << k;
  }
  EXPECT_EQ(during["uid"]["connections"], base["uid"]["connections"].get<uint64_t>() + 1);

  ASSERT_EQ(::kill(dying.pid(), SIGKILL), 0);
  EXPECT_EQ(dying.wait(), -1);
  const auto closed_by = std::chrono::steady_clock::now() + kWait;
  Json after = snapshot(*keeper);
  while (after["daemon"]["tasks"] != base["daemon"]["tasks"] &&
         std::chrono::steady_clock::now() < closed_by) {
    std::this_thread::sleep_for(5ms);
    after = snapshot(*keeper);
  }
  ASSERT_EQ(after["daemon"]["tasks"], base["daemon"]["tasks"]);
  for (auto& [k, v] : after["uid"].items()) {
    if (k == "queued_messages" || k == "queued_bytes" || k == "ool_bytes" || k == "fds_in_flight")
      EXPECT_EQ(v, during["uid"][k]) << k;
    else
      EXPECT_EQ(v, base["uid"][k]) << k;
  }
  {
    auto got = inbox->receive(at_once());
    ASSERT_TRUE(got.ok()) << status_name(got.status());
    EXPECT_EQ(got->id, 9);
    EXPECT_EQ(got->body_text(), "queued");
    EXPECT_EQ(got->descriptors.size(), 1u);
  }
  // (The daemon closes the dead connection's socket after it has seen it
  // close.)
  const int base_fds = base["daemon"]["fds"].get<int>();
  while (daemon_->open_fd_count() != base_fds && std::chrono::steady_clock::now() < closed_by)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(snapshot(*keeper), base);
}

}  // namespace
}  // namespace portd::testing
