// The use DESIGN 2.1 gives for cache-on-full: a server that replies through
// its clients' send rights (replies that count against the clients' queue
// limits) and must never block on a client that does not read. Here one
// client stops reading its reply port (queue limit 1) while three others
// keep sending requests; the server, in its own process, sends every reply
// with cache-on-full and no wait, keeps what it cannot send yet in its own
// memory, and sends on when message-accepted (66) tells it a cached reply
// got in. It receives requests and notifications on one port set.
//
// What would fail: a server send that blocks (the other clients' requests
// would never be answered and they time out), a cached reply that is lost or
// never accepted (the slow client misses a reply, or the counts differ), a
// message-accepted that names the wrong port (the server cannot match it).
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <thread>

#include "tests/integration/cross_process.h"

namespace portd::testing {
namespace {

constexpr int32_t kRequest = 100;
constexpr int32_t kReply = 200;
constexpr int32_t kStats = 300;
constexpr int32_t kQuit = 999;
constexpr int32_t kSent = 1;
constexpr int32_t kGo = 2;

// What the server tells the parent on kStats (in an agent::Answer).
struct Stats {
  int64_t cached = 0;    // replies answered PORTD_SEND_WILL_NOTIFY
  int64_t accepted = 0;  // message-accepted notifications received
  int64_t sent = 0;      // replies handed to the daemon (cached ones included)
  int64_t backlog = 0;   // replies still in the server's own memory
};

// ---------------------------------------------------------------------------
// The server (a child process).

struct Client {
  std::deque<std::pair<SendRight, std::string>> backlog;  // replies not sent yet
  bool cached = false;                                    // a reply to it is cached in the daemon
};

int run_server(const std::string& socket_path, const std::string& service) {
  auto connected = Task::connect(ConnectOptions{socket_path, "cache-server"});
  if (!connected) return 2;
  std::shared_ptr<Task> task = std::move(*connected);
  auto port = task->check_in(service);
  auto notify = task->make_port();
  auto set = task->make_port_set();
  if (!port || !notify || !set) return 3;
  if (set->insert(*port) != Status::kSuccess || set->insert(*notify) != Status::kSuccess) return 4;

  std::map<Name, Client> clients;  // by our name for the client's reply port
  Stats stats;
  // Sends what `c` has waiting, as far as it goes without blocking.
  auto flush = [&](Client& c) -> int {
    while (!c.backlog.empty() && !c.cached) {
      OutgoingMessage reply;
      reply.set_remote(c.backlog.front().first).set_id(kReply).set_body(c.backlog.front().second);
      const Status s = task->send(reply, cache_on_full(*notify));
      if (s == Status::kSendNotifyInProgress) return 0;  // our one cached message is elsewhere
      if (s == Status::kSendWillNotify) {
        c.cached = true;
        ++stats.cached;
      } else if (s != Status::kSuccess) {
        return 20;
      }
      ++stats.sent;
      c.backlog.pop_front();
    }
    return 0;
  };

  for (;;) {
    auto m = set->receive(wait_up_to(20000ms));
    if (!m) return 10;
    if (auto n = parse_notification(task, *m)) {
      if (n->kind != Notification::kMsgAccepted || n->port != notify->name()) return 11;
      ++stats.accepted;
      auto it = clients.find(n->name);
      if (it == clients.end() || !it->second.cached) return 12;
      it->second.cached = false;
      // Our cached slot is free: that client first, then anyone waiting.
      if (int e = flush(it->second)) return e;
      for (auto& [name, c] : clients)
        if (int e = flush(c)) return e;
      continue;
    }
    if (m->local != port->name()) return 13;
    switch (m->id) {
      case kRequest: {
        if (m->remote_type != RightType::kSend) return 14;
        Client& c = clients[m->remote];
        c.backlog.emplace_back(SendRight::adopt(task, m->remote),
                               "reply " + std::string(m->body_text()));
        if (int e = flush(c)) return e;
        break;
      }
      case kStats: {
        agent::Answer a;
        a.status = Status::kSuccess;
        a.a = stats.cached;
        a.b = stats.accepted;
        a.c = stats.sent;
        for (const auto& [name, c] : clients) a.d += static_cast<int64_t>(c.backlog.size());
        OutgoingMessage reply;
        reply.set_remote(SendOnceRight::adopt(task, m->remote))
            .set_id(kStats)
            .set_body(agent::encode(a));
        if (task->send(reply) != Status::kSuccess) return 15;
        break;
      }
      case kQuit: return 0;
      default: return 16;
    }
  }
}

// A request with a send right to `reply_port` as its reply port.
OutgoingMessage request(const SendRight& server, const ReceiveRight& reply_port,
                        const std::string& text) {
  OutgoingMessage m;
  m.set_remote(server)
      .set_local(reply_port, Disposition::kMakeSend)
      .set_id(kRequest)
      .set_body(text);
  return m;
}

// ---------------------------------------------------------------------------
// Clients (child processes).

// Sends four requests, tells the parent, waits for its go, then reads the
// four replies in order.
int run_slow_client(const std::string& socket_path, const std::string& parent_service,
                    const std::string& service) {
  auto peer = join_parent(socket_path, parent_service, "slow-client");
  if (!peer) return 2;
  auto server = peer->task->look_up(service, kWait);
  auto replies = peer->task->make_port();
  if (!server || !replies) return 3;
  if (replies->set_qlimit(1) != Status::kSuccess) return 4;
  for (int k = 1; k <= 4; ++k) {
    OutgoingMessage m = request(*server, *replies, "slow " + std::to_string(k));
    if (peer->task->send(m) != Status::kSuccess) return 5;
  }
  if (send_text(*peer->task, peer->parent, kSent) != Status::kSuccess) return 6;
  auto go = peer->inbox.receive(wait_up_to());
  if (!go || go->id != kGo) return 7;
  // One reply got in; the rest wait in the daemon's cache and the server.
  if (replies->status()->msgcount != 1) return 8;
  for (int k = 1; k <= 4; ++k) {
    auto r = replies->receive(wait_up_to());
    if (!r) return 20 + k;
    if (r->id != kReply || r->body_text() != "reply slow " + std::to_string(k)) return 30 + k;
  }
  if (replies->receive(at_once()).status() != Status::kRcvTimedOut) return 9;
  return 0;
}

// Twenty requests, each answered before the next goes.
int run_fast_client(const std::string& socket_path, const std::string& service, int who) {
  auto task = Task::connect(ConnectOptions{socket_path, "fast-client"});
  if (!task) return 2;
  auto server = (*task)->look_up(service, kWait);
  auto replies = (*task)->make_port();
  if (!server || !replies) return 3;
  for (int k = 0; k < 20; ++k) {
    const std::string text = "fast " + std::to_string(who) + "." + std::to_string(k);
    OutgoingMessage m = request(*server, *replies, text);
    auto r = (*task)->send_receive(m, {}, replies->name(), wait_up_to());
    if (!r) return 4;
    if (r->id != kReply || r->body_text() != "reply " + text) return 5;
  }
  return 0;
}

// ---------------------------------------------------------------------------

class ClientCacheServerTest : public CrossProcessTest {
 protected:
  void SetUp() override {
    CrossProcessTest::SetUp();
    reply_ = make_port();
  }

  Stats stats(const SendRight& server) {
    OutgoingMessage m;
    m.set_remote(server).set_id(kStats);
    auto r = task_->rpc(m, reply_, {}, wait_up_to());
    EXPECT_EQ(r.status(), Status::kSuccess);
    if (!r) return {};
    const agent::Answer a = agent::decode(r->body);
    return Stats{a.a, a.b, a.c, a.d};
  }

  ReceiveRight reply_;
};

TEST_F(ClientCacheServerTest, ServerKeepsServingWhileOneClientDoesNotRead) {
  const std::string service = unique_service("cache-server");
  Child server([&] { return run_server(daemon_.socket_path(), service); });
  auto server_port = task_->look_up(service, kWait);
  ASSERT_EQ(server_port.status(), Status::kSuccess);

  Child slow([&] { return run_slow_client(daemon_.socket_path(), service_, service); });
  SendRight to_slow = accept_hello(task_, inbox_, slow.pid());
  auto sent = inbox_.receive(wait_up_to());
  ASSERT_EQ(sent.status(), Status::kSuccess);
  ASSERT_EQ(sent->id, kSent);

  // The server has the four requests: one reply in the slow client's queue,
  // one cached in the daemon, two in the server's memory.
  Stats s;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  do {
    s = stats(*server_port);
  } while (s.sent + s.backlog < 4 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(s.sent, 2);
  EXPECT_EQ(s.cached, 1);
  EXPECT_EQ(s.backlog, 2);
  EXPECT_EQ(s.accepted, 0);

  // Meanwhile three other clients get every answer.
  {
    std::vector<std::unique_ptr<Child>> fast;
    for (int who = 0; who < 3; ++who)
      fast.push_back(std::make_unique<Child>(
          [&, who] { return run_fast_client(daemon_.socket_path(), service, who); }));
    for (auto& c : fast) EXPECT_EQ(c->wait(), 0);
  }
  s = stats(*server_port);
  EXPECT_EQ(s.sent, 2 + 60);
  EXPECT_EQ(s.cached, 1);
  EXPECT_EQ(s.backlog, 2);
  EXPECT_EQ(s.accepted, 0);

  // The slow client reads at last: it gets all four, in order, and every
  // cached reply was accepted.
  ASSERT_EQ(send_text(*task_, to_slow, kGo), Status::kSuccess);
  EXPECT_EQ(slow.wait(), 0);
  s = stats(*server_port);
  EXPECT_EQ(s.sent, 2 + 60 + 2);
  EXPECT_EQ(s.backlog, 0);
  EXPECT_GE(s.cached, 1);
  EXPECT_LE(s.cached, 3);  // replies 3 and 4 are cached only if the queue was still full
  EXPECT_EQ(s.accepted, s.cached);

  ASSERT_EQ(send_text(*task_, *server_port, kQuit), Status::kSuccess);
  EXPECT_EQ(server.wait(), 0);
}

}  // namespace
}  // namespace portd::testing
