// Introspection (daemon/server/introspect.h) on the real core, without
// sockets: paging and its bounds, the access rule, that looking changes
// nothing, and the monitor subscriptions' buffers (drop-and-count), waiting
// polls and filters.
#include "daemon/server/introspect.h"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "daemon/server/driver.h"
#include "unit/core_fixture.h"

namespace portd::server {
namespace {

using Json = nlohmann::json;
using ipc::Disposition;
using ipc::Name;
using ipc::Right;
using ipc::TaskId;
using req::IntrospectWhat;

class Directory : public TaskDirectory {
 public:
  bool describe(TaskId task, TaskDetails* out) const override {
    // Commands are whatever bytes a client said in its hello.
    out->command = task == 3 ? std::string("bad\xff\xfe") : "cmd" + std::to_string(task);
    out->connected_unix_ms = 1000 + static_cast<int64_t>(task);
    return true;
  }
  uint64_t uid_connections(uint32_t uid) const override { return uid == 1000 ? 2 : 1; }
};

class IntrospectTest : public ipc::testing::CoreTest {
 protected:
  // Root sees everything; uid 1000 (tasks A and C) only its own.
  Viewer root{0, true};
  Viewer user{1000, false};

  Page page(const Viewer& v, IntrospectWhat what, uint64_t target = 0, std::string cursor = {},
            uint32_t limit = kPageDefault, uint32_t pid = 0) {
    req::Introspect q;
    q.what = what;
    q.target = target;
    q.pid = pid;
    q.cursor = std::move(cursor);
    q.limit = limit;
    DaemonInfo info;
    info.uid = 4242;
    return introspect(core.impl(), directory, info, v, q);
  }
  Json json(const Viewer& v, IntrospectWhat what, uint64_t target = 0) {
    Page p = page(v, what, target);
    EXPECT_EQ(p.status, Status::kSuccess);
    EXPECT_EQ(p.next, "");
    return Json::parse(p.json);
  }
  // Every page of a listing, with the number of pages it took.
  Json all(const Viewer& v, IntrospectWhat what, uint32_t limit, size_t* pages,
           uint64_t target = 0) {
    Json items = Json::array();
    std::string cursor;
    *pages = 0;
    for (;;) {
      Page p = page(v, what, target, cursor, limit);
      EXPECT_EQ(p.status, Status::kSuccess);
      ++*pages;
      for (auto& item : Json::parse(p.json)) items.push_back(item);
      if (p.next.empty()) break;
      EXPECT_NE(p.next, cursor);
      cursor = p.next;
      if (*pages > 100000) break;
    }
    return items;
  }
  ipc::PortId port_id(TaskId t, Name n) {
    return core.impl().find_task(t)->space.table[ipc::name_index(n)].port->id;
  }

  Directory directory;
};

TEST_F(IntrospectTest, PortsComeInPagesInIdOrderEachOnce) {
  for (int i = 0; i < 1200; ++i) port(i % 2 == 0 ? kA : kB);
  size_t pages = 0;
  Json items = all(root, IntrospectWhat::kPorts, 500, &pages);
  EXPECT_EQ(pages, 3u);
  ASSERT_EQ(items.size(), 1200u);
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(items[i]["port"], i + 1);
}

TEST_F(IntrospectTest, ALargeNameSpaceComesInPagesInNameOrderEachOnce) {
  // 40,000 names (16,000 receive rights, within the port quota, and dead
  // names), then a listing of the task's rights: pages of at most kPageMax,
  // in name order, each name once.
  constexpr TaskId kBig = 10;
  ASSERT_EQ(core.task_create(kBig, {200, 2000, 200}), Status::kSuccess);
  std::vector<Name> names;
  std::set<Name> ports;
  for (int i = 0; i < 40000; ++i) {
    Name n = ipc::kNameNull;
    if (i % 5 < 2) {
      n = port(kBig);
      ports.insert(n);
    } else {
      ASSERT_EQ(core.allocate(kBig, Right::kDeadName, &n), Status::kSuccess);
    }
    names.push_back(n);
  }
  size_t pages = 0;
  Json items = all(root, IntrospectWhat::kRights, kPageMax, &pages, kBig);
  ASSERT_EQ(items.size(), names.size());
  EXPECT_GE(pages, names.size() / kPageMax);
  std::sort(names.begin(), names.end(),
            [](Name a, Name b) { return ipc::name_index(a) < ipc::name_index(b); });
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_EQ(items[i]["name"], names[i]) << i;
    EXPECT_EQ(items[i]["rights"],
              ports.count(names[i]) != 0 ? Json({"receive"}) : Json({"dead_name"}));
  }
  core.task_destroy(kBig, fx);
}

TEST_F(IntrospectTest, ACursorSeesWhatChangedBetweenPages) {
  std::vector<Name> names;
  for (int i = 0; i < 10; ++i) names.push_back(port(kA));
  Page first = page(root, IntrospectWhat::kPorts, 0, {}, 4);
  ASSERT_EQ(first.next, "4");
  // Port 5 dies and port 11 is born between pages: 5 is not listed, 11 is.
  ASSERT_EQ(core.mod_refs(kA, names[4], Right::kReceive, -1, fx), Status::kSuccess);
  port(kA);
  Json rest = Json::array();
  std::string cursor = first.next;
  while (!cursor.empty()) {
    Page p = page(root, IntrospectWhat::kPorts, 0, cursor, 4);
    for (auto& item : Json::parse(p.json)) rest.push_back(item["port"]);
    cursor = p.next;
  }
  EXPECT_EQ(rest, Json({6, 7, 8, 9, 10, 11}));
}

TEST_F(IntrospectTest, ACursorTheDaemonDidNotGiveIsRefused) {
  EXPECT_EQ(page(root, IntrospectWhat::kPorts, 0, "x1").status, Status::kInvalidArgument);
  EXPECT_EQ(page(root, IntrospectWhat::kTasks, 0, "-1").status, Status::kInvalidArgument);
  EXPECT_EQ(page(root, IntrospectWhat::kRights, kA, "1 ").status, Status::kInvalidArgument);
}

TEST_F(IntrospectTest, APageStopsWhenItsWorkIsSpent) {
  // Ten tasks with 40,000 dead names each: listing them walks 400,000 table
  // entries, more than one page may.
  constexpr TaskId kFirst = 10;
  for (TaskId t = kFirst; t < kFirst + 10; ++t) {
    ASSERT_EQ(core.task_create(t, {200, 2000, 200}), Status::kSuccess);
    for (int i = 0; i < 40000; ++i) {
      Name n;
      ASSERT_EQ(core.allocate(t, Right::kDeadName, &n), Status::kSuccess);
    }
  }
  size_t pages = 0;
  Json tasks = all(root, IntrospectWhat::kTasks, kPageMax, &pages);
  EXPECT_EQ(tasks.size(), 13u);
  EXPECT_GE(pages, 400000 / kWorkBudget + 1);
  for (const auto& t : tasks) {
    if (t["uid"] == 2000) {
      EXPECT_EQ(t["names"]["dead_name"], 40000);
    }
  }
  for (TaskId t = kFirst; t < kFirst + 10; ++t) core.task_destroy(t, fx);
}

TEST_F(IntrospectTest, AUserSeesItsOwnTasksPortsAndSets) {
  const Name a_port = port(kA);
  const Name b_port = port(kB);
  const Name c_set = pset(kC);
  pset(kB);
  Name in_c = port(kC);
  ASSERT_EQ(core.move_member(kC, in_c, c_set, fx), Status::kSuccess);
  Name service;
  ASSERT_EQ(core.bootstrap_check_in(kB, "svc.b", &service, fx), Status::kSuccess);

  Json tasks = json(user, IntrospectWhat::kTasks);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0]["task"], kA);
  EXPECT_EQ(tasks[1]["task"], kC);
  Json ports = json(user, IntrospectWhat::kPorts);
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]["port"], port_id(kA, a_port));
  EXPECT_EQ(ports[1]["port"], port_id(kC, in_c));
  Json sets = json(user, IntrospectWhat::kSets);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0]["task"], kC);
  EXPECT_EQ(sets[0]["members"], Json::parse(R"([{"port": )" + std::to_string(port_id(kC, in_c)) +
                                            R"(, "name": )" + std::to_string(in_c) + "}]"));
  // The registry is public (bootstrap_list shows it to every client).
  EXPECT_EQ(json(user, IntrospectWhat::kNames).size(), 1u);

  EXPECT_EQ(page(user, IntrospectWhat::kPort, port_id(kB, b_port)).status, Status::kNotFound);
  EXPECT_EQ(page(user, IntrospectWhat::kRights, kB).status, Status::kNotFound);
  EXPECT_EQ(page(user, IntrospectWhat::kTasks, kB).json, "[]");
  EXPECT_EQ(page(root, IntrospectWhat::kPort, port_id(kB, b_port)).status, Status::kSuccess);
  EXPECT_EQ(json(root, IntrospectWhat::kTasks).size(), 3u);
  EXPECT_EQ(json(root, IntrospectWhat::kPorts).size(), 4u);
  EXPECT_EQ(json(root, IntrospectWhat::kSets).size(), 2u);
  EXPECT_EQ(page(user, IntrospectWhat::kPort, 999).status, Status::kNotFound);
}

TEST_F(IntrospectTest, HoldersOfOtherUidsAreNotListed) {
  auto [r, s_b] = port_with_sender(kA, kB);
  Name s_c = send_right(kA, r, kC);
  Json detail = json(user, IntrospectWhat::kPort, port_id(kA, r));
  EXPECT_EQ(detail["send_rights"], 2);
  ASSERT_EQ(detail["holders"].size(), 2u);  // A (receive) and C (send); B is uid 1001
  EXPECT_EQ(detail["holders"][0]["task"], kA);
  EXPECT_EQ(detail["holders"][0]["rights"], Json({"receive"}));
  EXPECT_EQ(detail["holders"][1]["task"], kC);
  EXPECT_EQ(detail["holders"][1]["name"], s_c);
  EXPECT_EQ(detail["holders"][1]["rights"], Json({"send"}));
  EXPECT_EQ(json(root, IntrospectWhat::kPort, port_id(kA, r))["holders"].size(), 3u);
  (void)s_b;
}

TEST_F(IntrospectTest, LookingChangesNothingNotEvenLazyDeadNames) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  // The core turns B's send right into a dead name the next time B looks.
  const ipc::Entry& e = core.impl().find_task(kB)->space.table[ipc::name_index(s)];
  ASSERT_EQ(e.bits, ipc::kTypeSend);
  const auto counters = core.impl().counters();

  Json rights = json(root, IntrospectWhat::kRights, kB);
  ASSERT_EQ(rights.size(), 1u);
  EXPECT_EQ(rights[0]["name"], s);
  EXPECT_EQ(rights[0]["rights"], Json({"dead_name"}));
  EXPECT_EQ(rights[0]["dead"], true);
  EXPECT_EQ(rights[0]["urefs"], 1);
  EXPECT_EQ(rights[0]["port"], nullptr);
  Json tasks = json(root, IntrospectWhat::kTasks, kB);
  EXPECT_EQ(tasks[0]["names"]["dead_name"], 1);
  EXPECT_EQ(tasks[0]["names"]["send"], 0);
  json(root, IntrospectWhat::kStatus);
  json(root, IntrospectWhat::kPorts);

  EXPECT_EQ(e.bits, ipc::kTypeSend) << "introspection converted the dead name";
  EXPECT_EQ(core.impl().counters().messages_sent, counters.messages_sent);
  EXPECT_EQ(type_of(kB, s), ipc::kTypeDeadName);  // B looking does convert it
}

TEST_F(IntrospectTest, BytesThatAreNotUtf8AreReplacedNotFatal) {
  Name n;
  ASSERT_EQ(core.bootstrap_check_in(kC, "svc.\xc3\x28", &n, fx), Status::kSuccess);
  Json tasks = json(root, IntrospectWhat::kTasks, kC);
  EXPECT_EQ(tasks[0]["command"], "bad\xef\xbf\xbd\xef\xbf\xbd");  // U+FFFD twice
  Json names = json(root, IntrospectWhat::kNames);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0]["name"].get<std::string>().rfind("svc.", 0), 0u);
  json(root, IntrospectWhat::kPort, port_id(kC, n));
  ipc::MessageEvent ev;
  ev.sender = kC;
  EXPECT_NO_THROW(Json::parse(event_json(ev, 1, 2, directory)));
}

TEST_F(IntrospectTest, PortDetailShowsWaitersRequestsAndQueue) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 1, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, "one")), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2), wait(), 77), Status::kSendInProgress);
  Name notify = port(kB);
  Name previous;
  ASSERT_EQ(core.request_notification(kB, s, ipc::Notify::kDeadName, 0, notify,
                                      Disposition::kMakeSendOnce, &previous, fx),
            Status::kSuccess);
  Name service;
  ASSERT_EQ(core.bootstrap_register(kA, "svc.detail", r, fx), Status::kSuccess);
  (void)service;

  Json d = json(root, IntrospectWhat::kPort, port_id(kA, r));
  EXPECT_EQ(d["queued"], 1);
  EXPECT_EQ(d["qlimit"], 1);
  EXPECT_EQ(d["waiting_senders"], 1);
  EXPECT_EQ(d["registered"], 1);
  EXPECT_EQ(d["bootstrap_names"], Json({"svc.detail"}));
  ASSERT_EQ(d["senders"].size(), 1u);
  EXPECT_EQ(d["senders"][0]["task"], kB);
  EXPECT_EQ(d["senders"][0]["id"], 2);
  EXPECT_EQ(d["senders"][0]["cached"], false);
  ASSERT_EQ(d["queue"].size(), 1u);
  EXPECT_EQ(d["queue"][0]["id"], 1);
  EXPECT_EQ(d["queue"][0]["body_bytes"], 3);
  EXPECT_EQ(d["queue"][0]["sender"]["task"], kB);
  EXPECT_EQ(d["requests"]["dead_name"], 1);
  ASSERT_EQ(d["notify_requests"]["dead_name"].size(), 1u);
  EXPECT_EQ(d["notify_requests"]["dead_name"][0]["task"], kB);
  EXPECT_EQ(d["notify_requests"]["dead_name"][0]["name"], s);
  EXPECT_EQ(d["notify_requests"]["dead_name"][0]["notify_port"], port_id(kB, notify));
  EXPECT_EQ(d["queue_truncated"], false);

  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  ASSERT_TRUE(completion(77).has_value());
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  ASSERT_EQ(core.bootstrap_unregister(kA, "svc.detail", fx), Status::kSuccess);
}

// ---------------------------------------------------------------------------
// Monitor subscriptions

struct Answer {
  uint64_t id = 0;
  Status status = Status::kSuccess;
  wire::Reply::Which which = wire::Reply::NONE;
  std::vector<std::string> events;
};

class Sink : public ReplySink {
 public:
  void post_reply(TaskId task, capnp::MessageBuilder& reply,
                  std::vector<proto::UniqueFd>) override {
    auto r = reply.getRoot<wire::Reply>().asReader();
    Answer a{r.getId(), static_cast<Status>(r.getStatus()), r.which(), {}};
    if (a.which == wire::Reply::MONITOR_EVENTS)
      for (auto e : r.getMonitorEvents()) a.events.emplace_back(e.begin(), e.size());
    if (a.which == wire::Reply::INTROSPECTION)
      a.events.emplace_back(std::string(r.getIntrospection().getJson()));
    answers[task].push_back(std::move(a));
  }
  std::vector<Answer> take(TaskId task) {
    auto out = std::move(answers[task]);
    answers[task].clear();
    return out;
  }
  std::map<TaskId, std::vector<Answer>> answers;
};

class MonitorSubscriptionTest : public IntrospectTest {
 protected:
  void TearDown() override {
    introspector.forget(kA);
    introspector.forget(kB);
    introspector.forget(kC);
    EXPECT_EQ(core.impl().observer(), nullptr);
    IntrospectTest::TearDown();
  }
  DaemonInfo info() {
    DaemonInfo i;
    i.uid = 4242;
    return i;
  }
  void start(TaskId t, uint32_t uid, req::MonitorStart r, Status expect = Status::kSuccess) {
    RequestBody body = r;
    introspector.handle(t, {1, uid, 1}, ++id, body);
    auto answers = sink.take(t);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(answers[0].status, expect);
  }
  void poll(TaskId t, int64_t timeout_ms, uint32_t max = kMonitorPollDefault) {
    RequestBody body = req::MonitorPoll{timeout_ms, max};
    introspector.handle(t, {1, 0, 1}, ++id, body);
  }
  // One turn of the event loop: the handlers posted so far.
  void turn() {
    io.restart();
    io.poll();
  }
  // The events of the one answer `t` got, parsed.
  std::vector<Json> events(TaskId t) {
    auto answers = sink.take(t);
    EXPECT_EQ(answers.size(), 1u);
    std::vector<Json> out;
    if (answers.empty()) return out;
    EXPECT_EQ(answers[0].which, wire::Reply::MONITOR_EVENTS);
    for (const auto& e : answers[0].events) out.push_back(Json::parse(e));
    return out;
  }

  asio::io_context io;
  Sink sink;
  Introspector introspector{io, core, sink, directory, info()};
  uint64_t id = 100;
};

// Who is privileged is decided from the asker's credentials: root and the
// daemon's own uid (4242 here) see every task; another uid its own.
TEST_F(MonitorSubscriptionTest, RootAndTheDaemonsUidSeeEverythingOthersTheirOwn) {
  auto ask = [&](uint32_t uid, IntrospectWhat what) {
    req::Introspect q;
    q.what = what;
    RequestBody body = q;
    introspector.handle(kC, {1, uid, 1}, ++id, body);
    auto answers = sink.take(kC);
    EXPECT_EQ(answers.size(), 1u);
    if (answers.size() != 1 || answers[0].events.size() != 1) return Json();
    EXPECT_EQ(answers[0].status, Status::kSuccess);
    return Json::parse(answers[0].events[0]);
  };
  auto task_ids = [&](uint32_t uid) {
    std::vector<uint64_t> ids;
    for (const auto& t : ask(uid, IntrospectWhat::kTasks)) ids.push_back(t["task"]);
    return ids;
  };
  EXPECT_EQ(task_ids(0), std::vector<uint64_t>({kA, kB, kC}));
  EXPECT_EQ(task_ids(4242), std::vector<uint64_t>({kA, kB, kC}));
  EXPECT_EQ(task_ids(1000), std::vector<uint64_t>({kA, kC}));
  EXPECT_EQ(task_ids(1001), std::vector<uint64_t>({kB}));
  EXPECT_EQ(task_ids(4243), std::vector<uint64_t>());
  EXPECT_EQ(ask(4242, IntrospectWhat::kStatus)["viewer"],
            Json({{"uid", 4242}, {"privileged", true}}));
  EXPECT_EQ(ask(1000, IntrospectWhat::kStatus)["viewer"],
            Json({{"uid", 1000}, {"privileged", false}}));
}

TEST_F(MonitorSubscriptionTest, AFullBufferDropsAndCountsThenGoesOn) {
  auto [r, s] = port_with_sender(kA, kB);
  req::MonitorStart m;
  m.buffer = 2;
  start(kC, 0, m);
  EXPECT_NE(core.impl().observer(), nullptr);
  for (int i = 1; i <= 5; ++i)
    ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, i)), Status::kSuccess);
  poll(kC, 0);
  auto got = events(kC);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]["id"], 1);
  EXPECT_EQ(got[1]["id"], 2);
  EXPECT_EQ(got[2], Json({{"event", "lost"}, {"lost", 3}}));
  // Room again: the next events are kept, numbered after the lost ones.
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  poll(kC, 0);
  got = events(kC);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["event"], "receive");
  EXPECT_EQ(got[0]["seq"], 6);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
}

TEST_F(MonitorSubscriptionTest, AWaitingPollIsAnsweredWhenAnEventComes) {
  auto [r, s] = port_with_sender(kA, kB);
  start(kC, 0, {});
  poll(kC, -1);
  turn();
  EXPECT_TRUE(sink.take(kC).empty());
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 9)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 10)), Status::kSuccess);
  turn();  // answered at the end of the turn, with both
  auto got = events(kC);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["id"], 9);
  EXPECT_EQ(got[1]["id"], 10);
  EXPECT_EQ(got[0]["sender"]["command"], "cmd2");
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
}

TEST_F(MonitorSubscriptionTest, APollTimesOutEmptyAndOnlyOneMayWait) {
  start(kC, 0, {});
  poll(kC, 5);
  poll(kC, 5);
  auto second = sink.take(kC);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].status, Status::kInvalidArgument);
  io.restart();
  io.run_for(std::chrono::seconds(2));
  auto got = sink.take(kC);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].which, wire::Reply::MONITOR_EVENTS);
  EXPECT_TRUE(got[0].events.empty());
}

TEST_F(MonitorSubscriptionTest, StopAnswersTheWaitingPollAndRemovesTheObserver) {
  start(kC, 0, {});
  poll(kC, -1);
  RequestBody stop = req::MonitorStop{};
  introspector.handle(kC, {1, 0, 1}, ++id, stop);
  auto answers = sink.take(kC);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].which, wire::Reply::MONITOR_EVENTS);
  EXPECT_EQ(answers[1].status, Status::kSuccess);
  EXPECT_EQ(core.impl().observer(), nullptr);
  poll(kC, 0);
  EXPECT_EQ(sink.take(kC).at(0).status, Status::kInvalidArgument);
}

TEST_F(MonitorSubscriptionTest, FiltersAndTheAccessRuleApply) {
  auto [ra, sb] = port_with_sender(kA, kB);    // B (uid 1001) -> A (uid 1000)
  auto [rb, sc] = port_with_sender(kB, kC);    // C (uid 1000) -> B (uid 1001)
  auto [rb2, sb2] = port_with_sender(kB, kB);  // B -> B: uid 1000 sees none of it
  req::MonitorStart by_port;
  by_port.port = port_id(kB, rb);
  start(kA, 0, by_port);
  start(kC, 1000, {});  // not privileged (the daemon's uid is 4242)
  req::MonitorStart by_task;
  by_task.task = kA;
  start(kB, 0, by_task);

  ASSERT_EQ(send(kB, msg(sb, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kC, msg(sc, Disposition::kCopySend, 2)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(sb2, Disposition::kCopySend, 3)), Status::kSuccess);

  auto ids = [&](TaskId t) {
    poll(t, 0);
    std::vector<int> out;
    for (const auto& e : events(t)) out.push_back(e["id"].get<int>());
    return out;
  };
  EXPECT_EQ(ids(kA), std::vector<int>({2}));
  EXPECT_EQ(ids(kC), std::vector<int>({1, 2}));
  EXPECT_EQ(ids(kB), std::vector<int>({1}));

  req::MonitorStart invisible;
  invisible.port = port_id(kB, rb);
  start(kC, 1000, invisible, Status::kNotFound);
  req::MonitorStart unknown_name;
  unknown_name.name = "no.such.name";
  start(kC, 1000, unknown_name, Status::kBootstrapUnknownService);
  req::MonitorStart invisible_task;
  invisible_task.task = kB;
  start(kC, 1000, invisible_task, Status::kNotFound);

  for (auto [t, n] : {std::pair{kA, ra}, std::pair{kB, rb}, std::pair{kB, rb2}})
    ASSERT_EQ(recv(t, n).status, Status::kSuccess);
}

TEST_F(IntrospectTest, UidsListEachAccountAgainstThePerUidLimitsAndOnlyTheViewersOwn) {
  port(kA);
  port(kC);
  port(kB);
  size_t pages = 0;
  Json uids = all(root, IntrospectWhat::kUids, 1, &pages);
  EXPECT_EQ(pages, 2u);  // one uid a page, the cursor past uid 1000 included
  ASSERT_EQ(uids.size(), 2u) << uids.dump(2);
  EXPECT_EQ(uids[0]["uid"], 1000);
  EXPECT_EQ(uids[0]["tasks"], 2);  // kA and kC
  EXPECT_EQ(uids[0]["quota"]["ports"], Json({{"used", 2}, {"limit", 1u << 18}}));
  EXPECT_EQ(uids[0]["quota"]["connections"], Json({{"used", 2}, {"limit", 4096}}));
  EXPECT_EQ(uids[1]["uid"], 1001);
  EXPECT_EQ(uids[1]["quota"]["ports"]["used"], 1);
  EXPECT_EQ(uids[1]["quota"]["connections"]["used"], 1);
  EXPECT_EQ(uids[0]["quota"].size(), 12u);
  Json mine = json(user, IntrospectWhat::kUids);
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["uid"], 1000);
}

}  // namespace
}  // namespace portd::server
