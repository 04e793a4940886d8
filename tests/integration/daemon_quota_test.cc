// Every quota hit through the real daemon: portd started with a small limit,
// driven with libportd (or a raw client where libportd would not send what
// the test needs). Each test checks the exact status, that the limit is
// named (in Result::detail(), in portd::last_refused_limit(), and in the
// daemon's log where the shell refuses), and that nothing leaked: the task's
// charges, its uid's, the daemon's counts and its open fds are what they
// were once the limit was reached, after the refusal, and what they were at
// the start once everything is released.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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

class DaemonQuotaTest : public QuotaFixture {};

// ---------------------------------------------------------------------------
// Per task

TEST_F(DaemonQuotaTest, Names) {
  start({"--quota-task-names", "6"});
  auto t = connect("names");
  const Json base = snapshot(*t);
  std::vector<Name> dead;
  for (int i = 0; i < 6; ++i) {
    auto n = t->allocate(Right::kDeadName);
    ASSERT_TRUE(n.ok()) << i;
    dead.push_back(*n);
  }
  const Json full = snapshot(*t);
  EXPECT_EQ(full["task"]["names"], 6);
  auto refused = t->allocate(Right::kDeadName);
  EXPECT_EQ(refused.status(), Status::kNoSpace);
  EXPECT_EQ(refused.detail(), "refused by the names limit");
  EXPECT_EQ(last_refused_limit(), "names");
  auto port = t->make_port();
  EXPECT_EQ(port.status(), Status::kNoSpace);
  EXPECT_EQ(last_refused_limit(), "names");
  EXPECT_EQ(snapshot(*t), full);
  for (Name n : dead) ASSERT_EQ(t->deallocate(n), Status::kSuccess);
  EXPECT_EQ(snapshot(*t), base);
  // A success clears what the thread's last refusal said.
  ASSERT_TRUE(t->allocate(Right::kDeadName).ok());
  EXPECT_EQ(last_refused_limit(), "");
}

TEST_F(DaemonQuotaTest, NamesForRightsArrivingInAMessage) {
  // The receiver's space is full: the message arrives without the right it
  // carried (MACH_RCV_BODY_ERROR), and the reply says which limit.
  start({"--quota-task-names", "4"});
  auto receiver = connect("receiver");
  auto sender = connect("sender");
  auto inbox = receiver->make_port();
  ASSERT_TRUE(inbox.ok());
  SendRight to_inbox = hand_over(receiver, *inbox, sender);
  std::vector<Name> dead;
  for (int i = 0; i < 3; ++i) dead.push_back(*receiver->allocate(Right::kDeadName));
  auto carried = sender->make_port();
  ASSERT_TRUE(carried.ok());
  const Json full = snapshot(*receiver);
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
}

TEST_F(DaemonQuotaTest, Ports) {
  start({"--quota-task-ports", "3"});
  auto t = connect("ports");
  const Json base = snapshot(*t);
  std::vector<ReceiveRight> ports;
  for (int i = 0; i < 3; ++i) ports.push_back(std::move(*t->make_port()));
  const Json full = snapshot(*t);
  EXPECT_EQ(full["task"]["ports"], 3);
  auto refused = t->make_port();
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the ports limit");
  // check_in makes a port too: refused, and no name is left registered.
  auto checked = t->check_in(unique_service("ports"));
  EXPECT_EQ(checked.status(), Status::kResourceShortage);
  EXPECT_EQ(checked.detail(), "refused by the ports limit");
  EXPECT_EQ(snapshot(*t), full);
  ports.clear();
  EXPECT_EQ(snapshot(*t), base);
}

TEST_F(DaemonQuotaTest, PortsForAReceiveRightArrivingInAMessage) {
  start({"--quota-task-ports", "2"});
  auto receiver = connect("receiver");
  auto sender = connect("sender");
  auto inbox = receiver->make_port();
  auto other = receiver->make_port();
  ASSERT_TRUE(inbox.ok() && other.ok());
  SendRight to_inbox = hand_over(receiver, *inbox, sender);
  auto moving = sender->make_port();
  ASSERT_TRUE(moving.ok());
  auto keep = moving->make_send();  // to see the port die
  ASSERT_TRUE(keep.ok());
  const Json full = snapshot(*receiver);
  const uint64_t ports_before = fetch(IntrospectWhat::kStatus)["ports"].get<uint64_t>();
  OutgoingMessage m = text(to_inbox, 8);
  m.add_port(std::move(*moving));
  ASSERT_EQ(sender->send(m), Status::kSuccess);
  auto got = inbox->receive(at_once());
  EXPECT_EQ(got.status(), Status::kRcvBodyError);
  EXPECT_EQ(last_refused_limit(), "ports");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::get<ReceivedPort>(got->descriptors.at(0)).name, kNameNull);
  const Json after = snapshot(*receiver);
  EXPECT_EQ(after["task"], full["task"]);
  EXPECT_EQ(after["names"], full["names"]);
  // The receive right nobody could hold died with the message.
  EXPECT_EQ(fetch(IntrospectWhat::kStatus)["ports"], ports_before - 1);
  auto type = sender->type(keep->name());
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(*type, kTypeDeadName);
}

TEST_F(DaemonQuotaTest, PortSets) {
  start({"--quota-task-port-sets", "2"});
  auto t = connect("sets");
  const Json base = snapshot(*t);
  std::vector<PortSet> sets;
  for (int i = 0; i < 2; ++i) sets.push_back(std::move(*t->make_port_set()));
  const Json full = snapshot(*t);
  auto refused = t->make_port_set();
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the port_sets limit");
  EXPECT_EQ(snapshot(*t), full);
  sets.clear();
  EXPECT_EQ(snapshot(*t), base);
}

// Queued messages and their bytes are charged to the sender until received.
// A refused send consumed nothing: the same message goes once there is room.
class QueuedQuota : public DaemonQuotaTest {
 protected:
  void run(std::vector<std::string> flags, const char* limit,
           const std::function<OutgoingMessage(const SendRight&, int)>& make, int fits) {
    start(std::move(flags));
    auto receiver = connect("receiver");
    auto sender = connect("sender");
    auto inbox = receiver->make_port();
    ASSERT_TRUE(inbox.ok());
    ASSERT_EQ(inbox->set_qlimit(100), Status::kSuccess);
    SendRight to_inbox = hand_over(receiver, *inbox, sender);
    const Json base = snapshot(*sender);
    for (int i = 0; i < fits; ++i) {
      OutgoingMessage m = make(to_inbox, i);
      ASSERT_EQ(sender->send(m, at_once_send()), Status::kSuccess) << i;
    }
    const Json full = snapshot(*sender);
    const uint64_t refused_before = refused_count();
    OutgoingMessage over = make(to_inbox, fits);
    const size_t held = over.held_rights();
    EXPECT_EQ(sender->send(over, at_once_send()), Status::kSendNoBuffer);
    EXPECT_EQ(last_refused_limit(), limit);
    EXPECT_EQ(over.held_rights(), held);
    EXPECT_EQ(snapshot(*sender), full);
    EXPECT_EQ(refused_count(), refused_before + 1);
    // Received: the charges go, and the refused message goes as it is.
    for (int i = 0; i < fits; ++i) {
      auto got = inbox->receive(at_once());
      ASSERT_TRUE(got.ok()) << status_name(got.status());
      EXPECT_EQ(got->id, i);
    }
    EXPECT_EQ(snapshot(*sender), base);
    ASSERT_EQ(sender->send(over, at_once_send()), Status::kSuccess);
    auto got = inbox->receive(at_once());
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->id, fits);
    EXPECT_EQ(snapshot(*sender), base);

    // The same in one send_batch, with the batch requests and with
    // pipelined sends (protocol version 1): the one over the quota is
    // refused and named; a batch that all goes names none.
    for (const uint32_t version : {0u, 1u}) {
      SCOPED_TRACE(version);
      ConnectOptions options{daemon_->socket_path(), "batch-sender"};
      options.protocol_version = version;
      auto connected = Task::connect(options);
      ASSERT_TRUE(connected.ok()) << status_name(connected.status());
      std::shared_ptr<Task> batcher = std::move(*connected);
      SendRight to = hand_over(receiver, *inbox, batcher);
      std::vector<OutgoingMessage> batch;
      for (int i = 0; i <= fits; ++i) batch.push_back(make(to, i));
      std::vector<Status> want(static_cast<size_t>(fits), Status::kSuccess);
      want.push_back(Status::kSendNoBuffer);
      EXPECT_EQ(batcher->send_batch(batch, at_once_send()), want);
      EXPECT_EQ(last_refused_limit(), limit);
      for (int i = 0; i < fits; ++i) {
        auto m = inbox->receive(at_once());
        ASSERT_TRUE(m.ok()) << status_name(m.status());
        EXPECT_EQ(m->id, i);
      }
      std::vector<OutgoingMessage> fitting;
      fitting.push_back(make(to, fits));
      EXPECT_EQ(batcher->send_batch(fitting, at_once_send()),
                std::vector<Status>{Status::kSuccess});
      EXPECT_EQ(last_refused_limit(), "");
      auto m = inbox->receive(at_once());
      ASSERT_TRUE(m.ok());
      EXPECT_EQ(m->id, fits);
    }
  }
};

TEST_F(QueuedQuota, QueuedMessages) {
  run({"--quota-task-queued-messages", "3"}, "queued_messages", one_byte, 3);
}

TEST_F(QueuedQuota, QueuedBytes) {
  run({"--quota-task-queued-bytes", "100"}, "queued_bytes", forty_bytes, 2);
}

TEST_F(QueuedQuota, OolBytes) {
  run({"--quota-task-ool-bytes", "10000"}, "ool_bytes", one_ool_page, 2);
}

TEST_F(QueuedQuota, FdsInFlight) {
  run({"--quota-task-fds-in-flight", "3"}, "fds_in_flight", two_ool_fds, 1);
}

TEST_F(DaemonQuotaTest, SendOnceRights) {
  start({"--quota-task-send-once-rights", "2"});
  auto t = connect("send-once");
  auto port = t->make_port();
  ASSERT_TRUE(port.ok());
  const Json base = snapshot(*t);
  auto one = port->make_send_once();
  auto two = port->make_send_once();
  ASSERT_TRUE(one.ok() && two.ok());
  const Json full = snapshot(*t);
  auto refused = port->make_send_once();
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the send_once_rights limit");
  // A send that would make one (a reply right) is refused too.
  OutgoingMessage m;
  m.set_remote(*port, Disposition::kMakeSend).set_local(*port, Disposition::kMakeSendOnce);
  EXPECT_EQ(t->send(m, at_once_send()), Status::kSendNoBuffer);
  EXPECT_EQ(last_refused_limit(), "send_once_rights");
  // And one with an out-of-line array of them.
  OutgoingMessage array;
  array.set_remote(*port, Disposition::kMakeSend)
      .add_ool_ports({port->name(), port->name()}, Disposition::kMakeSendOnce);
  EXPECT_EQ(t->send(array, at_once_send()), Status::kSendNoBuffer);
  EXPECT_EQ(last_refused_limit(), "send_once_rights");
  EXPECT_EQ(snapshot(*t), full);
  // Released unused, each fires a send-once notification that carries it
  // (and its charge) until received.
  one->reset();
  two->reset();
  for (int i = 0; i < 2; ++i) {
    auto n = port->receive(at_once());
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->id, 71);
  }
  EXPECT_EQ(snapshot(*t), base);
}

TEST_F(DaemonQuotaTest, NotifyRequests) {
  start({"--quota-task-notify-requests", "1"});
  auto t = connect("requests");
  auto a = t->make_port();
  auto b = t->make_port();
  auto notify = t->make_port();
  ASSERT_TRUE(a.ok() && b.ok() && notify.ok());
  auto to_a = a->make_send();
  auto to_b = b->make_send();
  ASSERT_TRUE(to_a.ok() && to_b.ok());
  const Json base = snapshot(*t);
  ASSERT_TRUE(to_a->request_dead_name(*notify).ok());
  const Json full = snapshot(*t);
  EXPECT_EQ(full["task"]["notify_requests"], 1);
  auto refused = to_b->request_dead_name(*notify);
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the notify_requests limit");
  EXPECT_EQ(snapshot(*t), full);
  // Cancelled, the request gives its send-once right back; dropped unused,
  // it tells `notify` so (and is charged until that is received).
  auto previous = to_a->cancel_dead_name();
  ASSERT_TRUE(previous.ok());
  EXPECT_TRUE(*previous);
  previous->reset();
  auto n = notify->receive(at_once());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->id, 71);
  EXPECT_EQ(snapshot(*t), base);
}

TEST_F(DaemonQuotaTest, BootstrapNames) {
  start({"--quota-task-bootstrap-names", "1"});
  auto t = connect("bootstrap");
  auto port = t->make_port();
  ASSERT_TRUE(port.ok());
  const Json base = snapshot(*t);
  const std::string first = unique_service("first");
  auto service = t->check_in(first);
  ASSERT_TRUE(service.ok());
  const Json full = snapshot(*t);
  auto refused = t->check_in(unique_service("second"));
  EXPECT_EQ(refused.status(), Status::kBootstrapNoMemory);
  EXPECT_EQ(refused.detail(), "refused by the bootstrap_names limit");
  EXPECT_EQ(t->bootstrap_register(unique_service("third"), port->name()),
            Status::kBootstrapNoMemory);
  EXPECT_EQ(last_refused_limit(), "bootstrap_names");
  EXPECT_EQ(snapshot(*t), full);  // no port made for the refused check-in
  service->reset();               // the port dies; its name goes with it
  EXPECT_EQ(snapshot(*t), base);
  EXPECT_TRUE(t->check_in(unique_service("fourth")).ok());
}

TEST_F(DaemonQuotaTest, ParkedRequests) {
  start({"--quota-task-parked-requests", "2"});
  auto t = connect("parked");
  auto port = t->make_port();
  auto full_port = t->make_port();
  ASSERT_TRUE(port.ok() && full_port.ok());
  ASSERT_EQ(full_port->set_qlimit(1), Status::kSuccess);
  OutgoingMessage fill;
  fill.set_remote(*full_port, Disposition::kMakeSend).set_id(1);
  ASSERT_EQ(t->send(fill), Status::kSuccess);
  const Json base = snapshot(*t);
  // Two receives wait in threads of their own.
  std::vector<Status> got(2, Status::kFailure);
  std::vector<std::thread> waiting;
  for (int i = 0; i < 2; ++i)
    waiting.emplace_back([&, i] { got[i] = t->receive(port->name(), wait_up_to()).status(); });
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (used(*t, "parked_requests") < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  const Json full = snapshot(*t);
  ASSERT_EQ(full["task"]["parked_requests"], 2);
  auto refused = t->receive(port->name(), wait_up_to());
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "refused by the parked_requests limit");
  OutgoingMessage blocked;
  blocked.set_remote(*full_port, Disposition::kMakeSend).set_id(2);
  EXPECT_EQ(t->send(blocked), Status::kSendNoBuffer);  // it would have to wait
  EXPECT_EQ(last_refused_limit(), "parked_requests");
  auto look = t->look_up(unique_service("nobody"), kWait);
  EXPECT_EQ(look.status(), Status::kBootstrapNoMemory);
  EXPECT_EQ(look.detail(), "refused by the parked_requests limit");
  EXPECT_EQ(snapshot(*t), full);
  for (int i = 0; i < 2; ++i) {
    OutgoingMessage wake;
    wake.set_remote(*port, Disposition::kMakeSend).set_id(10 + i);
    ASSERT_EQ(t->send(wake), Status::kSuccess);
  }
  for (auto& w : waiting) w.join();
  for (Status g : got) EXPECT_EQ(g, Status::kSuccess);
  EXPECT_EQ(snapshot(*t), base);
}

// ---------------------------------------------------------------------------
// Per message

TEST_F(DaemonQuotaTest, MessageBytesAndDescriptors) {
  start({"--max-inline-body", "4KiB", "--max-descriptors", "2"});
  auto t = connect("message");
  auto port = t->make_port();
  ASSERT_TRUE(port.ok());
  const Json base = snapshot(*t);
  OutgoingMessage many;
  many.set_remote(*port, Disposition::kMakeSend);
  for (int i = 0; i < 3; ++i) many.add_port(*port, Disposition::kMakeSend);
  EXPECT_EQ(t->send(many, at_once_send()), Status::kSendTooLarge);
  EXPECT_EQ(last_refused_limit(), "message_descriptors");
  EXPECT_EQ(snapshot(*t), base);

  // libportd never sends an inline body over the limit (larger ones go out
  // of line): a raw client does.
  RawClient raw(daemon_->socket_path());
  ASSERT_NE(raw.hello("raw"), 0u);
  uint32_t name = 0;
  ASSERT_TRUE(raw.request(2, [](wire::Request::Builder r) {
    r.initAllocate().setRight(static_cast<uint32_t>(Right::kReceive));
  }));
  ASSERT_TRUE(raw.next_reply([&](wire::Reply::Reader r, auto&) { name = r.getName(); }));
  ASSERT_NE(name, 0u);
  const Json with_raw = snapshot(*t);
  ASSERT_TRUE(raw.request(3, [&](wire::Request::Builder r) {
    auto m = r.initSend().initMessage();
    m.setRemote(name);
    m.setRemoteDisposition(static_cast<uint8_t>(Disposition::kMakeSend));
    m.initBody(4097);
  }));
  int32_t status = 0;
  std::string limit;
  ASSERT_TRUE(raw.next_reply([&](wire::Reply::Reader r, auto&) {
    status = r.getStatus();
    limit = r.getLimit().cStr();
  }));
  EXPECT_EQ(status, static_cast<int32_t>(Status::kSendTooLarge));
  EXPECT_EQ(limit, "message_bytes");
  EXPECT_EQ(snapshot(*t), with_raw);
}

// ---------------------------------------------------------------------------
// Per uid

// Runs `body` in a child that has become uid 65534 (the socket's directory
// is opened to it first); its exit code.
TEST_F(DaemonQuotaTest, PortsPerUid) {
  start({"--quota-uid-ports", "4"});
  auto one = connect("one");
  auto two = connect("two");
  const Json base = snapshot(*two);
  std::vector<ReceiveRight> ports;
  for (int i = 0; i < 2; ++i) ports.push_back(std::move(*one->make_port()));
  for (int i = 0; i < 2; ++i) ports.push_back(std::move(*two->make_port()));
  const Json full = snapshot(*two);
  EXPECT_EQ(full["task"]["ports"], 2);
  EXPECT_EQ(full["uid"]["ports"], 4);
  for (auto& t : {one, two}) {
    auto refused = t->make_port();
    EXPECT_EQ(refused.status(), Status::kResourceShortage);
    EXPECT_EQ(refused.detail(), "refused by the ports limit");
  }
  EXPECT_EQ(snapshot(*two), full);
  // Another uid has its own.
  EXPECT_EQ(nobody_allocates(Right::kReceive, 4, Status::kResourceShortage), 0);
  EXPECT_EQ(snapshot(*two), full);
  ports.clear();
  EXPECT_EQ(snapshot(*two), base);
}

// The uid's connections: an over-limit connect is refused naming the limit,
// the others go on, and the count goes down as connections close.
TEST_F(DaemonQuotaTest, ConnectionsPerUid) {
  start({"--quota-uid-connections", "4"});  // the viewer is one
  auto connections = [&] {
    Json uids = fetch(IntrospectWhat::kUids);
    EXPECT_EQ(uids.size(), 1u);
    return uids[0]["quota"]["connections"];
  };
  std::vector<std::shared_ptr<Task>> tasks;
  for (int i = 0; i < 3; ++i) tasks.push_back(connect("conn" + std::to_string(i)));
  EXPECT_EQ(connections(), Json({{"used", 4}, {"limit", 4}}));
  const int fds = daemon_->open_fd_count();
  const Json status_before = fetch(IntrospectWhat::kStatus);

  auto refused = Task::connect(ConnectOptions{daemon_->socket_path(), "over"});
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "hello refused: refused by the connections limit");
  EXPECT_EQ(last_refused_limit(), "connections");
  EXPECT_TRUE(
      daemon_->wait_for_log("uid 0 is at its limit of 4 connections (quota.uid.connections)"));
  EXPECT_TRUE(daemon_->wait_for_log("is over its connections limit of 4 (quota.uid.connections)"));
  // The others are not disturbed.
  for (auto& t : tasks) {
    auto p = t->make_port();
    EXPECT_TRUE(p.ok()) << status_name(p.status());
  }
  EXPECT_EQ(connections(), Json({{"used", 4}, {"limit", 4}}));
  EXPECT_EQ(fetch(IntrospectWhat::kStatus)["tasks"], status_before["tasks"]);
  expect_fds(fds);
  // Another uid is not refused.
  EXPECT_EQ(as_nobody([](const std::string& socket) {
              return Task::connect(ConnectOptions{socket, "nobody"}) ? 0 : 1;
            }),
            0);

  // One closes: the count goes down, and a new one is let in.
  tasks.back()->disconnect();
  tasks.pop_back();
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (connections()["used"] != 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(connections(), Json({{"used", 3}, {"limit", 4}}));
  tasks.push_back(connect("again"));
  ASSERT_TRUE(tasks.back());
  EXPECT_EQ(connections(), Json({{"used", 4}, {"limit", 4}}));
}

// Connections over the limit wait for their hello to be told; at most 64 at
// once, then they are closed at accept. None of it touches the others.
TEST_F(DaemonQuotaTest, ConnectionsWaitingToBeRefusedAreBounded) {
  // (A long handshake timeout: the waiting ones must not be closed by it.)
  start({"--quota-uid-connections", "1", "--handshake-timeout-ms", "600000"});  // the viewer
  const int fds = daemon_->open_fd_count();
  // (The viewer may have been refused before the fixture's probe closed.)
  const size_t refused_before = log_count("will be refused at hello");
  ASSERT_TRUE(wait_for_log_count("disconnected (refused: uid 0 is over its connections limit",
                                 refused_before));
  std::vector<std::unique_ptr<RawClient>> waiting;
  for (size_t i = 0; i < 64; ++i) {
    waiting.push_back(std::make_unique<RawClient>(daemon_->socket_path()));
    ASSERT_TRUE(waiting.back()->connected());
  }
  ASSERT_TRUE(wait_for_log_count("will be refused at hello", refused_before + 64));
  RawClient closed(daemon_->socket_path());
  ASSERT_TRUE(closed.connected());
  EXPECT_TRUE(closed.wait_closed(10000));
  EXPECT_TRUE(daemon_->wait_for_log("closed at once (64 others wait to be told so)"));
  // The viewer goes on.
  EXPECT_EQ(fetch(IntrospectWhat::kStatus)["tasks"], 1);
  // A waiting one says hello and is told why.
  ASSERT_TRUE(waiting[0]->request(1, [](wire::Request::Builder r) {
    auto h = r.initHello();
    h.setVersion(1);
    h.setCommand("waiting");
  }));
  int32_t status = 0;
  std::string limit;
  ASSERT_TRUE(waiting[0]->next_reply([&](wire::Reply::Reader r, auto&) {
    status = r.getStatus();
    limit = r.getLimit().cStr();
  }));
  EXPECT_EQ(status, static_cast<int32_t>(Status::kResourceShortage));
  EXPECT_EQ(limit, "connections");
  EXPECT_TRUE(waiting[0]->wait_closed());
  waiting.clear();
  expect_fds(fds);
}

// ---------------------------------------------------------------------------
// The handshake timeout

TEST_F(DaemonQuotaTest, AConnectionThatDoesNotSayHelloInTimeIsClosed) {
  start({"--handshake-timeout-ms", "300"});
  const int fds = daemon_->open_fd_count();
  RawClient silent(daemon_->socket_path());
  RawClient partial(daemon_->socket_path());
  ASSERT_TRUE(silent.connected() && partial.connected());
  // Half a hello frame: the stream framing's first word, no more.
  const uint32_t prefix[2] = {0, 8};
  ASSERT_TRUE(partial.send_bytes(prefix, sizeof prefix));
  auto talker = connect("talker");
  ASSERT_TRUE(talker);
  EXPECT_TRUE(silent.wait_closed(10000));
  EXPECT_TRUE(partial.wait_closed(10000));
  EXPECT_TRUE(
      daemon_->wait_for_log("(refused: no hello within 300 ms (connection.handshake_timeout_ms))"));
  // Well past the timeout, a client that said hello is still served.
  std::this_thread::sleep_for(400ms);
  auto p = talker->make_port();
  EXPECT_TRUE(p.ok()) << status_name(p.status());
  EXPECT_EQ(fetch(IntrospectWhat::kStatus)["tasks"], 2);
  expect_fds(fds + 1);  // the talker's
}

// SIGHUP: a new connection limit counts the connections already open, and
// a new handshake timeout applies to connections accepted from then on.
TEST_F(DaemonQuotaTest, TheConnectionLimitAndTheHandshakeTimeoutAreReloaded) {
  char dir_template[] = "/tmp/portd-quota-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string config = std::string(dir_template) + "/portd.toml";
  auto write_config = [&](const std::string& text) {
    std::ofstream out(config, std::ios::trunc);
    out << text;
  };
  write_config("");
  DaemonLaunch launch;
  launch.config = config;
  start(launch);
  auto one = connect("one");
  ASSERT_TRUE(one);
  write_config("[connection]\nhandshake_timeout_ms = 200\n[quota.uid]\nconnections = 2\n");
  ASSERT_EQ(::kill(daemon_->pid(), SIGHUP), 0);
  ASSERT_TRUE(daemon_->wait_for_log("2 changes applied"));
  EXPECT_TRUE(daemon_->wait_for_log("reload: quota.uid.connections: 4096 -> 2"));
  EXPECT_TRUE(daemon_->wait_for_log("reload: connection.handshake_timeout_ms: 10000 -> 200"));
  // The viewer and `one` are two.
  auto refused = Task::connect(ConnectOptions{daemon_->socket_path(), "three"});
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_EQ(refused.detail(), "hello refused: refused by the connections limit");
  one->disconnect();
  RawClient silent(daemon_->socket_path());
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.wait_closed(10000));
  EXPECT_TRUE(
      daemon_->wait_for_log("(refused: no hello within 200 ms (connection.handshake_timeout_ms))"));
  ::unlink(config.c_str());
  ::rmdir(dir_template);
}

}  // namespace
}  // namespace portd::testing
