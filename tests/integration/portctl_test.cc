// portctl against the real daemon: a known state built with libportd, and
// every subcommand's JSON compared exactly (pids, task ids and times are
// substituted with the values the test knows, not skipped); the human
// tables' alignment and --no-legend; exit codes; a monitor that sees a known
// sequence of messages and stops cleanly on Ctrl-C; and what a second uid
// may see.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/portctl_support.h"

namespace portd::testing {
namespace {

constexpr uid_t kNobody = 65534;

Name ok_name(Result<Name> r, const char* what) {
  EXPECT_TRUE(r.ok()) << what << ": " << status_name(r.status()) << " " << r.detail();
  return r.ok() ? *r : kNameNull;
}

void send_to(Task& task, Name dest, int32_t id, std::string_view body, Name reply = kNameNull,
             Name carried = kNameNull) {
  OutgoingMessage m;
  m.set_remote(dest, Disposition::kCopySend).set_id(id).set_body(body);
  if (reply != kNameNull) m.set_local(reply, Disposition::kMakeSendOnce);
  if (carried != kNameNull) m.add_port(carried, Disposition::kMakeSend);
  ASSERT_EQ(task.send(m, SendOptions{std::chrono::milliseconds(0)}), Status::kSuccess);
}

Json quota(uint64_t names, uint64_t ports, uint64_t sets, uint64_t qmsgs, uint64_t qbytes,
           uint64_t bnames, bool per_uid) {
  // The daemon's default limits (daemon/ipc/limits.h).
  auto q = [&](uint64_t used, uint64_t task_limit, uint64_t uid_limit) {
    return Json{{"used", used}, {"limit", per_uid ? uid_limit : task_limit}};
  };
  return Json{{"names", q(names, 65536, 1u << 20)},
              {"ports", q(ports, 16384, 1u << 18)},
              {"port_sets", q(sets, 1024, 16384)},
              {"queued_messages", q(qmsgs, 65536, 1u << 20)},
              {"queued_bytes", q(qbytes, 256ull << 20, 1ull << 30)},
              {"ool_bytes", q(0, 4ull << 30, 16ull << 30)},
              {"fds_in_flight", q(0, 1024, 8192)},
              {"send_once_rights", q(0, 65536, 1u << 20)},
              {"notify_requests", q(0, 65536, 1u << 20)},
              {"bootstrap_names", q(bnames, 256, 4096)},
              {"parked_requests", q(0, 4096, 65536)}};
}

// A uid's quotas: those of its tasks together, and its connections.
Json uid_quota(uint64_t names, uint64_t ports, uint64_t sets, uint64_t qmsgs, uint64_t qbytes,
               uint64_t bnames, uint64_t connections) {
  Json q = quota(names, ports, sets, qmsgs, qbytes, bnames, true);
  q["connections"] = Json{{"used", connections}, {"limit", 4096}};
  return q;
}

// The default limits, as status shows them.
Json default_limits() {
  Json task, uid;
  const Json task_quota = quota(0, 0, 0, 0, 0, 0, false);
  const Json uid_q = uid_quota(0, 0, 0, 0, 0, 0, 0);
  for (auto& [name, v] : task_quota.items()) task[name] = v["limit"];
  for (auto& [name, v] : uid_q.items()) uid[name] = v["limit"];
  return Json{
      {"task", task},
      {"uid", uid},
      {"message",
       {{"message_bytes", 1u << 20}, {"message_descriptors", 1024}, {"batch_messages", 1024}}}};
}

Json names_count(int total, int receive, int send, int send_once, int port_set, int dead) {
  return Json{{"total", total},         {"receive", receive},   {"send", send},
              {"send_once", send_once}, {"port_set", port_set}, {"dead_name", dead}};
}

class PortctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon.started());
    t0 = unix_ms();
  }
  Outcome run(const std::vector<std::string>& args, int as_uid = -1) {
    return portctl(daemon.directory(), daemon.socket_path(), args, as_uid);
  }
  Json json(const std::vector<std::string>& args, int as_uid = -1) {
    std::vector<std::string> a = {"--json"};
    a.insert(a.end(), args.begin(), args.end());
    Outcome r = run(a, as_uid);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.json();
  }

  DaemonProcess daemon;
  int64_t t0 = 0;
};

// The known state: two tasks of this process.
//   alpha: "test.known.svc" checked in (port 1); a port set (set 1) holding
//          port 2; a send right to beta's inbox; a dead name (beta's port 4,
//          destroyed); two messages queued on the inbox.
//   beta:  the inbox (port 3, qlimit 3, registered "test.known.inbox"); a
//          send right to the service.
class KnownState : public PortctlTest {
 protected:
  void SetUp() override {
    PortctlTest::SetUp();
    alpha = connect_or_die(daemon.socket_path(), "alpha");
    beta = connect_or_die(daemon.socket_path(), "beta");
    ASSERT_TRUE(alpha && beta);
    svc = ok_name(alpha->bootstrap_check_in("test.known.svc"), "check in");
    set = ok_name(alpha->allocate(Right::kPortSet), "set");
    member = ok_name(alpha->allocate(Right::kReceive), "member");
    ASSERT_EQ(alpha->move_member(member, set), Status::kSuccess);
    inbox = ok_name(beta->allocate(Right::kReceive), "inbox");
    ASSERT_EQ(beta->set_qlimit(inbox, 3), Status::kSuccess);
    ASSERT_EQ(beta->bootstrap_register("test.known.inbox", inbox), Status::kSuccess);
    a_inbox = ok_name(alpha->bootstrap_look_up("test.known.inbox"), "look up inbox");
    victim = ok_name(beta->allocate(Right::kReceive), "victim");
    ASSERT_EQ(beta->bootstrap_register("test.known.victim", victim), Status::kSuccess);
    a_victim = ok_name(alpha->bootstrap_look_up("test.known.victim"), "look up victim");
    ASSERT_EQ(beta->bootstrap_unregister("test.known.victim"), Status::kSuccess);
    ASSERT_EQ(beta->mod_refs(victim, Right::kReceive, -1), Status::kSuccess);
    b_svc = ok_name(beta->bootstrap_look_up("test.known.svc"), "look up svc");
    send_to(*alpha, a_inbox, 42, "hello");
    send_to(*alpha, a_inbox, 43, "", kNameNull, member);
    pid = ::getpid();
  }

  Json task_ref(const std::shared_ptr<Task>& t, const char* command) {
    return Json{{"task", t->id()}, {"pid", pid}, {"uid", 0}, {"command", command}};
  }
  Json with(Json j, const char* key, Json value) {
    j[key] = std::move(value);
    return j;
  }
  Json port_item(uint64_t id, Json receiver, uint32_t qlimit, uint32_t queued, uint32_t srights,
                 uint32_t mscount, Json set_ref, uint64_t in, uint32_t registered) {
    return Json{{"port", id},
                {"receiver", std::move(receiver)},
                {"qlimit", qlimit},
                {"queued", queued},
                {"send_rights", srights},
                {"send_once_rights", 0},
                {"make_send_count", mscount},
                {"seqno", 0},
                {"set", std::move(set_ref)},
                {"msgs_in", in},
                {"msgs_out", 0},
                {"waiting_senders", 0},
                {"waiting_receivers", 0},
                {"cached", 0},
                {"registered", registered},
                {"requests", {{"no_senders", false}, {"port_destroyed", false}, {"dead_name", 0}}}};
  }
  // Port 3's four send rights: alpha's, the registry's, and one for each
  // queued message (a message holds a right to its destination).
  Json ports_expected() {
    return Json::array(
        {port_item(1, with(task_ref(alpha, "alpha"), "name", svc), 5, 0, 2, 1, nullptr, 0, 1),
         port_item(2, with(task_ref(alpha, "alpha"), "name", member), 5, 0, 1, 1,
                   Json{{"set", 1}, {"name", set}}, 0, 0),
         port_item(3, with(task_ref(beta, "beta"), "name", inbox), 3, 2, 4, 1, nullptr, 2, 1)});
  }

  std::shared_ptr<Task> alpha, beta;
  Name svc = 0, set = 0, member = 0, inbox = 0, a_inbox = 0, victim = 0, a_victim = 0, b_svc = 0;
  uint32_t pid = 0;
};

TEST_F(KnownState, StatusJson) {
  Json j = json({"status"});
  const int64_t t1 = unix_ms();
  settle_time(j["started_unix_ms"], t0 - 60000, t1);
  settle_time(j["uptime_ms"], 0, t1 - t0 + 60000);
  const Json expected = {{"version", "0.1.0"},
                         {"protocol", 2},
                         {"pid", daemon.pid()},
                         {"uid", 0},
                         {"socket", daemon.socket_path()},
                         {"started_unix_ms", 0},
                         {"uptime_ms", 0},
                         {"viewer", {{"uid", 0}, {"privileged", true}}},
                         {"tasks", 3},  // alpha, beta and portctl itself
                         {"ports", 3},
                         {"port_sets", 1},
                         {"queued_messages", 2},
                         {"queued_bytes", 5},
                         {"held_messages", 0},
                         {"held_bytes", 0},
                         {"bootstrap_names", 2},
                         {"monitors", 0},
                         {"limits", default_limits()},
                         {"counters",
                          {{"messages_sent", 2},
                           {"messages_received", 0},
                           {"messages_destroyed", 0},
                           {"messages_refused", 0},
                           {"messages_in_flight", 2},
                           {"destroyed", {{"port_died", 0}, {"too_large", 0}, {"sender_died", 0}}},
                           {"notifications", 0},
                           {"notifications_received", 0},
                           {"notifications_destroyed", 0}}}};
  EXPECT_EQ(j, expected) << j.dump(2);
}

TEST_F(KnownState, TasksJsonWithQuotaUse) {
  Json j = json({"tasks", "--pid", std::to_string(pid)});
  const int64_t t1 = unix_ms();
  ASSERT_EQ(j.size(), 2u) << j.dump(2);
  for (auto& t : j) settle_time(t["connected_unix_ms"], t0, t1);
  // alpha, beta and portctl are uid 0's three connections.
  const Json uid_q = uid_quota(7, 3, 1, 2, 5, 2, 3);
  const Json expected = Json::array({{{"task", alpha->id()},
                                      {"pid", pid},
                                      {"uid", 0},
                                      {"gid", 0},
                                      {"command", "alpha"},
                                      {"connected_unix_ms", 0},
                                      {"names", names_count(5, 2, 1, 0, 1, 1)},
                                      {"quota", quota(5, 2, 1, 2, 5, 1, false)},
                                      {"uid_quota", uid_q}},
                                     {{"task", beta->id()},
                                      {"pid", pid},
                                      {"uid", 0},
                                      {"gid", 0},
                                      {"command", "beta"},
                                      {"connected_unix_ms", 0},
                                      {"names", names_count(2, 1, 1, 0, 0, 0)},
                                      {"quota", quota(2, 1, 0, 0, 0, 1, false)},
                                      {"uid_quota", uid_q}}});
  EXPECT_EQ(j, expected) << j.dump(2);
  // Without the filter portctl's own task is there too.
  Json all = json({"tasks"});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2]["command"], "portctl");
  EXPECT_EQ(all[2]["names"]["total"], 0);
}

TEST_F(KnownState, UidsJsonShowsEachQuotaOfTheUidAgainstItsLimit) {
  Json j = json({"uids"});
  const Json expected =
      Json::array({{{"uid", 0}, {"tasks", 3}, {"quota", uid_quota(7, 3, 1, 2, 5, 2, 3)}}});
  EXPECT_EQ(j, expected) << j.dump(2);
  // The table: one row per quota, connections included.
  Outcome human = run({"uids"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("connections"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("1 uids listed."), std::string::npos) << human.out;
  Outcome rows = run({"--no-legend", "uids"});
  EXPECT_EQ(std::count(rows.out.begin(), rows.out.end(), '\n'), 12) << rows.out;
  // tasks --quota has the uid-only quota too, with no per-task use.
  Outcome per_task = run({"--no-legend", "tasks", "--quota", "--pid", std::to_string(pid)});
  std::istringstream lines(per_task.out);
  int connection_rows = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("connections") == std::string::npos) continue;
    ++connection_rows;
    EXPECT_NE(line.find("4096"), std::string::npos) << line;
  }
  EXPECT_EQ(connection_rows, 2) << per_task.out;
}

TEST_F(KnownState, PortsJson) {
  Json j = json({"ports"});
  EXPECT_EQ(j, ports_expected()) << j.dump(2);
}

TEST_F(KnownState, PagesJoinedByTheLibraryMakeTheSameListing) {
  auto viewer = connect_or_die(daemon.socket_path(), "viewer");
  ASSERT_TRUE(viewer);
  Introspection in(viewer);
  IntrospectQuery q;
  q.what = IntrospectWhat::kPorts;
  q.limit = 1;
  auto first = in.page(q);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Json::parse(first->json), Json::array({ports_expected()[0]}));
  EXPECT_EQ(first->next, "1");
  auto joined = in.fetch(q);
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(Json::parse(*joined), ports_expected());
  q.what = IntrospectWhat::kNames;
  joined = in.fetch(q);
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(Json::parse(*joined).size(), 2u);
  q.what = IntrospectWhat::kRights;
  q.target = alpha->id();
  joined = in.fetch(q);
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(Json::parse(*joined).size(), 5u);
  q.cursor = "not a cursor";
  EXPECT_EQ(in.page(q).status(), Status::kInvalidArgument);
}

TEST_F(KnownState, PortDetailJson) {
  Json j = json({"port", "3"});
  Json expected = ports_expected()[2];
  Json sender = task_ref(alpha, "alpha");
  expected["holders"] = Json::array(
      {with(with(with(task_ref(alpha, "alpha"), "name", a_inbox), "rights", Json::array({"send"})),
            "urefs", 1),
       with(with(with(task_ref(beta, "beta"), "name", inbox), "rights", Json::array({"receive"})),
            "urefs", 0)});
  expected["receivers"] = Json::array();
  expected["senders"] = Json::array();
  expected["notify_requests"] = {
      {"no_senders", nullptr}, {"port_destroyed", nullptr}, {"dead_name", Json::array()}};
  expected["bootstrap_names"] = Json::array({"test.known.inbox"});
  expected["queue"] = Json::array({{{"id", 42},
                                    {"size", 24 + 5},
                                    {"body_bytes", 5},
                                    {"body_ool", false},
                                    {"sender", sender},
                                    {"descriptors", 0},
                                    {"exempt", false},
                                    {"waiting_sender", false}},
                                   {{"id", 43},
                                    {"size", 24 + 4 + 12},
                                    {"body_bytes", 0},
                                    {"body_ool", false},
                                    {"sender", sender},
                                    {"descriptors", 1},
                                    {"exempt", false},
                                    {"waiting_sender", false}}});
  expected["queue_truncated"] = false;
  EXPECT_EQ(j, expected) << j.dump(2);
}

TEST_F(KnownState, RightsJsonAsLsmpShowsThem) {
  auto entry = [](Name name, Json rights, uint32_t urefs, Json port, Json port_set, bool dead,
                  Json in_set, Json peer, Json qlimit, Json queued) {
    return Json{{"name", name},
                {"rights", std::move(rights)},
                {"urefs", urefs},
                {"port", std::move(port)},
                {"port_set", std::move(port_set)},
                {"dead", dead},
                {"dead_name_request", false},
                {"in_set", std::move(in_set)},
                {"peer", std::move(peer)},
                {"qlimit", std::move(qlimit)},
                {"queued", std::move(queued)}};
  };
  std::vector<std::pair<Name, Json>> names = {
      {svc, entry(svc, {"receive"}, 0, 1, nullptr, false, nullptr, nullptr, 5, 0)},
      {set, entry(set, {"port_set"}, 0, nullptr, 1, false, nullptr, nullptr, nullptr, nullptr)},
      {member, entry(member, {"receive"}, 0, 2, nullptr, false, set, nullptr, 5, 0)},
      {a_inbox, entry(a_inbox, {"send"}, 1, 3, nullptr, false, nullptr, task_ref(beta, "beta"),
                      nullptr, nullptr)},
      {a_victim, entry(a_victim, {"dead_name"}, 1, nullptr, nullptr, true, nullptr, nullptr,
                       nullptr, nullptr)}};
  std::sort(names.begin(), names.end(),
            [](const auto& a, const auto& b) { return (a.first >> 8) < (b.first >> 8); });
  Json expected_names = Json::array();
  for (auto& [n, e] : names) expected_names.push_back(e);
  const Json expected = Json::array(
      {{{"task", with(task_ref(alpha, "alpha"), "gid", 0)}, {"names", expected_names}}});

  Json by_task = json({"rights", std::to_string(alpha->id())});
  EXPECT_EQ(by_task, expected) << by_task.dump(2);
  // By pid: both tasks of this process.
  Json by_pid = json({"rights", "--pid", std::to_string(pid)});
  ASSERT_EQ(by_pid.size(), 2u);
  EXPECT_EQ(by_pid[0], expected[0]);
  EXPECT_EQ(by_pid[1]["task"]["command"], "beta");
  EXPECT_EQ(by_pid[1]["names"].size(), 2u);
  // Looking did not turn alpha's right to the dead port into a dead name;
  // alpha asking does.
  EXPECT_EQ(*alpha->type(a_victim), kTypeDeadName);
}

TEST_F(KnownState, SetsAndNamesJson) {
  Json sets = json({"sets"});
  const Json expected_sets = Json::array({{{"set", 1},
                                           {"task", alpha->id()},
                                           {"pid", pid},
                                           {"uid", 0},
                                           {"command", "alpha"},
                                           {"name", set},
                                           {"members", {{{"port", 2}, {"name", member}}}},
                                           {"queued", 0},
                                           {"waiting_receivers", 0}}});
  EXPECT_EQ(sets, expected_sets) << sets.dump(2);

  Json names = json({"names"});
  const int64_t t1 = unix_ms();
  ASSERT_EQ(names.size(), 2u);
  for (auto& n : names) settle_time(n["since_unix_ms"], t0 - 1000, t1);
  const Json expected_names = Json::array({{{"name", "test.known.inbox"},
                                            {"port", 3},
                                            {"uid", 0},
                                            {"pid", pid},
                                            {"task", beta->id()},
                                            {"since_unix_ms", 0}},
                                           {{"name", "test.known.svc"},
                                            {"port", 1},
                                            {"uid", 0},
                                            {"pid", pid},
                                            {"task", alpha->id()},
                                            {"since_unix_ms", 0}}});
  EXPECT_EQ(names, expected_names) << names.dump(2);
}

TEST_F(KnownState, HumanTablesAreAlignedAndNoLegendDropsHeaders) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"ports"},
                                               {"tasks", "--pid", std::to_string(pid)},
                                               {"sets"},
                                               {"names"},
                                               {"uids"}}) {
    Outcome r = run(args);
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = lines_of(r.out);
    // Header, rows, a blank line, "N ... listed."
    ASSERT_GE(lines.size(), 3u) << r.out;
    EXPECT_EQ(lines[lines.size() - 2], "");
    EXPECT_NE(lines.back().find(" listed."), std::string::npos) << lines.back();
    lines.resize(lines.size() - 2);
    expect_aligned(lines);

    std::vector<std::string> bare_args = {"--no-legend"};
    bare_args.insert(bare_args.end(), args.begin(), args.end());
    Outcome bare = run(bare_args);
    ASSERT_EQ(bare.code, 0) << bare.err;
    auto rows = lines_of(bare.out);
    EXPECT_EQ(rows.size(), lines.size() - 1) << bare.out;  // no header, no footer
    expect_aligned(rows);
  }
  Outcome ports = run({"--no-legend", "ports"});
  auto rows = lines_of(ports.out);
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string first;
    std::istringstream(rows[i]) >> first;
    EXPECT_EQ(first, std::to_string(i + 1)) << rows[i];
  }
  Outcome header = run({"ports"});
  EXPECT_EQ(header.out.rfind("PORT  RECEIVER", 0), 0u) << header.out;
  // rights: a line naming the task, the column headers, one row per name
  // (in name order); without the legend only the rows.
  Outcome rights = run({"rights", std::to_string(alpha->id())});
  ASSERT_EQ(rights.code, 0) << rights.err;
  auto with_legend = lines_of(rights.out);
  ASSERT_EQ(with_legend.size(), 2u + 5u) << rights.out;
  EXPECT_EQ(with_legend[0], "Task " + std::to_string(alpha->id()) + " (pid " + std::to_string(pid) +
                                ", uid 0, alpha): 5 names");
  EXPECT_EQ(with_legend[1].rfind("NAME  ", 0), 0u) << rights.out;
  Outcome bare_rights = run({"--no-legend", "rights", std::to_string(alpha->id())});
  auto bare_rows = lines_of(bare_rights.out);
  ASSERT_EQ(bare_rows.size(), 5u) << bare_rights.out;
  std::vector<Name> in_order = {svc, set, member, a_inbox, a_victim};
  std::sort(in_order.begin(), in_order.end(), [](Name a, Name b) { return (a >> 8) < (b >> 8); });
  for (size_t i = 0; i < bare_rows.size(); ++i) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x  ", in_order[i]);
    EXPECT_EQ(bare_rows[i].rfind(hex, 0), 0u) << bare_rows[i];
    EXPECT_EQ(with_legend[2 + i].rfind(hex, 0), 0u) << with_legend[2 + i];
  }
}

TEST_F(KnownState, HumanViewsOfEveryCommand) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                               {"port", "3"},
                                               {"rights", std::to_string(alpha->id())},
                                               {"names"},
                                               {"tasks", "--quota"}}) {
    Outcome r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
  }
  Outcome detail = run({"port", "3"});
  EXPECT_NE(detail.out.find("test.known.inbox"), std::string::npos) << detail.out;
  EXPECT_NE(detail.out.find("Queue:"), std::string::npos) << detail.out;
  Outcome rights = run({"rights", std::to_string(alpha->id())});
  EXPECT_NE(rights.out.find("recv"), std::string::npos);
  EXPECT_NE(rights.out.find("dead"), std::string::npos);
}

TEST_F(PortctlTest, ExitCodes) {
  EXPECT_EQ(run({"status"}).code, 0);
  Outcome help = run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("Exit status: 0 success; 1 not found"), std::string::npos) << help.out;
  for (const char* sub :
       {"status", "tasks", "ports", "port", "rights", "sets", "names", "monitor", "top"})
    EXPECT_NE(help.out.find("\n  " + std::string(sub) + " "), std::string::npos) << sub;
  Outcome missing = run({"port", "999"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  EXPECT_EQ(run({"rights", "999999"}).code, 1);
  EXPECT_EQ(run({"rights", "--pid", "999999999"}).code, 1);
  Outcome no_tasks = run({"tasks", "--pid", "999999999"});
  EXPECT_EQ(no_tasks.code, 1);
  EXPECT_EQ(no_tasks.out, "");
  EXPECT_NE(no_tasks.err.find("pid 999999999: not found"), std::string::npos) << no_tasks.err;
  EXPECT_EQ(run({"tasks", "--quota", "--pid", "999999999"}).code, 1);
  EXPECT_EQ(run({"monitor", "no.such.service"}).code, 1);
  EXPECT_EQ(run({"monitor", "12345"}).code, 1);
  EXPECT_EQ(run({"bogus"}).code, 2);
  EXPECT_EQ(run({}).code, 2);
  EXPECT_EQ(run({"port"}).code, 2);
  EXPECT_EQ(run({"port", "abc"}).code, 2);
  EXPECT_EQ(run({"rights"}).code, 2);
  EXPECT_EQ(run({"rights", "1", "--pid", "2"}).code, 2);
  EXPECT_EQ(run({"top", "--interval", "0"}).code, 2);
  Outcome nowhere = portctl(daemon.directory(), daemon.directory() + "/nothing.sock", {"status"});
  EXPECT_EQ(nowhere.code, 3);
  EXPECT_NE(nowhere.err.find("cannot connect"), std::string::npos) << nowhere.err;
}

TEST_F(PortctlTest, FindsTheDaemonWhereTheLibraryLooks) {
  // No --socket: $PORTD_SOCKET, else $XDG_RUNTIME_DIR/portd.sock (the
  // fixture's socket is portd.sock in its directory).
  ASSERT_EQ(daemon.socket_path(), daemon.directory() + "/portd.sock");
  const std::string elsewhere = daemon.directory() + "/nothing-here";
  struct Case {
    std::vector<std::string> env;
    int code;
    std::string socket;  // the path it tried
  } cases[] = {
      {{"PORTD_SOCKET=" + daemon.socket_path()}, 0, daemon.socket_path()},
      {{"XDG_RUNTIME_DIR=" + daemon.directory()}, 0, daemon.socket_path()},
      // $PORTD_SOCKET comes first.
      {{"PORTD_SOCKET=" + elsewhere + "/portd.sock", "XDG_RUNTIME_DIR=" + daemon.directory()},
       3,
       elsewhere + "/portd.sock"},
      {{"XDG_RUNTIME_DIR=" + elsewhere}, 3, elsewhere + "/portd.sock"},
  };
  for (const auto& c : cases) {
    PortctlProcess p(daemon.directory(), "", {"--json", "status"}, -1, c.env);
    EXPECT_EQ(p.wait(), c.code) << c.env[0] << "\n" << p.err();
    if (c.code == 0) {
      EXPECT_EQ(Json::parse(p.out())["socket"], daemon.socket_path());
    } else {
      EXPECT_NE(p.err().find("cannot connect to portd at " + c.socket + ": "), std::string::npos)
          << p.err();
    }
  }
}

TEST_F(PortctlTest, BytesThatAreNotUtf8AreShownReplaced) {
  // Bootstrap names are any bytes but NUL; JSON text must be UTF-8.
  auto task = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(task);
  ok_name(task->bootstrap_check_in("test.\xff"), "check in");
  Json names = json({"names"});
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0]["name"], "test.\xef\xbf\xbd");  // U+FFFD
  EXPECT_EQ(run({"names"}).code, 0);
  EXPECT_EQ(json({"port", "1"})["bootstrap_names"], Json::array({"test.\xef\xbf\xbd"}));
  EXPECT_TRUE(daemon.running());
}

TEST_F(PortctlTest, MonitorSeesAKnownSequence) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  auto beta = connect_or_die(daemon.socket_path(), "beta");
  ASSERT_TRUE(alpha && beta);
  const Name inbox = ok_name(beta->allocate(Right::kReceive), "inbox");
  ASSERT_EQ(beta->bootstrap_register("test.mon.inbox", inbox), Status::kSuccess);
  const Name a_inbox = ok_name(alpha->bootstrap_look_up("test.mon.inbox"), "look up");
  const Name reply = ok_name(alpha->allocate(Right::kReceive), "reply");
  // Ports 1 (inbox) and 2 (reply).

  PortctlProcess monitor(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "test.mon.inbox", "--count", "8"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  send_to(*alpha, a_inbox, 1, "a");
  send_to(*alpha, a_inbox, 2, "bb", reply, reply);
  ASSERT_TRUE(beta->receive(inbox, ReceiveOptions{std::chrono::milliseconds(0)}).ok());
  ASSERT_TRUE(beta->receive(inbox, ReceiveOptions{std::chrono::milliseconds(0)}).ok());
  send_to(*alpha, a_inbox, 3, "");
  send_to(*beta, ok_name(beta->bootstrap_look_up("test.mon.inbox"), "self"), 4, "");
  ASSERT_EQ(beta->mod_refs(inbox, Right::kReceive, -1), Status::kSuccess);  // 3 and 4 destroyed
  ASSERT_EQ(monitor.wait(), 0) << monitor.err();
  const int64_t t1 = unix_ms();

  const uint32_t pid = ::getpid();
  const Json a = {{"task", alpha->id()}, {"pid", pid}, {"uid", 0}, {"command", "alpha"}};
  const Json b = {{"task", beta->id()}, {"pid", pid}, {"uid", 0}, {"command", "beta"}};
  auto event = [&](const char* kind, Json receiver, const Json& sender, int id, int size, int body,
                   Json reply_port, Json seqno, Json descriptors) {
    return Json{{"event", kind},
                {"port", 1},
                {"receiver", std::move(receiver)},
                {"sender", sender},
                {"id", id},
                {"size", size},
                {"body_bytes", body},
                {"body_ool", false},
                {"reply_port", std::move(reply_port)},
                {"seqno", std::move(seqno)},
                {"descriptor_count", descriptors.size()},
                {"descriptors", descriptors}};
  };
  const Json carried = Json::array({{{"type", "port"}, {"right", "send"}, {"port", 2}}});
  const std::vector<Json> expected = {
      event("send", b, a, 1, 25, 1, nullptr, nullptr, Json::array()),
      event("send", b, a, 2, 24 + 4 + 12 + 2, 2, 2, nullptr, carried),
      event("receive", b, a, 1, 25, 1, nullptr, 0, Json::array()),
      event("receive", b, a, 2, 24 + 4 + 12 + 2, 2, 2, 1, carried),
      event("send", b, a, 3, 24, 0, nullptr, nullptr, Json::array()),
      event("send", b, b, 4, 24, 0, nullptr, nullptr, Json::array()),
      // The port died with both queued: destroyed, and no receiver any more.
      event("destroy", nullptr, a, 3, 24, 0, nullptr, nullptr, Json::array()),
      event("destroy", nullptr, b, 4, 24, 0, nullptr, nullptr, Json::array()),
  };
  auto lines = lines_of(monitor.out());
  ASSERT_EQ(lines.size(), expected.size()) << monitor.out();
  uint64_t last_seq = 0;
  int64_t last_time = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    Json e = Json::parse(lines[i]);
    ASSERT_TRUE(e["seq"].is_number_unsigned());
    EXPECT_GT(e["seq"].get<uint64_t>(), last_seq);
    last_seq = e["seq"].get<uint64_t>();
    const int64_t time_us = e["time_unix_us"].get<int64_t>();
    // t0 and t1 are whole milliseconds: an event in t1's millisecond may be
    // up to 999 microseconds past t1 * 1000.
    EXPECT_GE(time_us, std::max(last_time, t0 * 1000));
    EXPECT_LT(time_us, (t1 + 1) * 1000);
    last_time = time_us;
    e.erase("seq");
    e.erase("time_unix_us");
    EXPECT_EQ(e, expected[i]) << "event " << i << ": " << e.dump();
  }
}

TEST_F(PortctlTest, MonitorFiltersByTaskAndByPortAndTask) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  auto beta = connect_or_die(daemon.socket_path(), "beta");
  auto gamma = connect_or_die(daemon.socket_path(), "gamma");
  ASSERT_TRUE(alpha && beta && gamma);
  // Port 1 is alpha's, port 2 beta's, port 3 gamma's; everyone may send to
  // each of them.
  const Name pa = ok_name(alpha->bootstrap_check_in("test.filter.a"), "a");
  const Name pb = ok_name(beta->bootstrap_check_in("test.filter.b"), "b");
  ok_name(gamma->bootstrap_check_in("test.filter.g"), "g");
  const Name b_to_a = ok_name(beta->bootstrap_look_up("test.filter.a"), "b->a");
  const Name a_to_b = ok_name(alpha->bootstrap_look_up("test.filter.b"), "a->b");
  const Name g_to_b = ok_name(gamma->bootstrap_look_up("test.filter.b"), "g->b");
  const Name g_to_g = ok_name(gamma->bootstrap_look_up("test.filter.g"), "g->g");
  const Name a_to_g = ok_name(alpha->bootstrap_look_up("test.filter.g"), "a->g");

  const std::string beta_id = std::to_string(beta->id());
  PortctlProcess by_task(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "--task", beta_id, "--count", "4"});
  PortctlProcess by_port_and_task(daemon.directory(), daemon.socket_path(),
                                  {"--json", "monitor", "1", "--task", beta_id, "--count", "1"});
  ASSERT_TRUE(wait_monitors(alpha, 2));
  send_to(*gamma, g_to_g, 1, "");  // neither beta's nor to beta
  send_to(*alpha, a_to_g, 2, "");  // neither
  send_to(*alpha, a_to_b, 3, "");  // to beta's port
  send_to(*beta, b_to_a, 4, "");   // from beta, to port 1
  send_to(*gamma, g_to_b, 5, "");  // to beta's port
  ASSERT_TRUE(beta->receive(pb, ReceiveOptions{std::chrono::milliseconds(0)}).ok());   // 3, by beta
  ASSERT_TRUE(alpha->receive(pa, ReceiveOptions{std::chrono::milliseconds(0)}).ok());  // 4
  ASSERT_EQ(by_task.wait(), 0) << by_task.err();
  ASSERT_EQ(by_port_and_task.wait(), 0) << by_port_and_task.err();

  auto summary = [](const std::string& out) {
    std::vector<std::string> s;
    for (const auto& line : lines_of(out)) {
      const Json e = Json::parse(line);
      s.push_back(e["event"].get<std::string>() + " " + std::to_string(e["id"].get<int>()) +
                  " port " + std::to_string(e["port"].get<int>()));
    }
    return s;
  };
  EXPECT_EQ(summary(by_task.out()), std::vector<std::string>({"send 3 port 2", "send 4 port 1",
                                                              "send 5 port 2", "receive 3 port 2"}))
      << by_task.out();
  EXPECT_EQ(summary(by_port_and_task.out()), std::vector<std::string>({"send 4 port 1"}))
      << by_port_and_task.out();
}

TEST_F(PortctlTest, MonitorReportsDestroyedMessages) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(alpha);
  const Name port = ok_name(alpha->allocate(Right::kReceive), "port");
  ASSERT_EQ(alpha->insert_right(port, port, Disposition::kMakeSend), Status::kSuccess);
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "1", "--count", "2"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  send_to(*alpha, port, 7, "x");
  ASSERT_EQ(alpha->mod_refs(port, Right::kReceive, -1), Status::kSuccess);
  ASSERT_EQ(monitor.wait(), 0) << monitor.err();
  auto lines = lines_of(monitor.out());
  ASSERT_EQ(lines.size(), 2u) << monitor.out();
  Json destroyed = Json::parse(lines[1]);
  EXPECT_EQ(destroyed["event"], "destroy");
  EXPECT_EQ(destroyed["id"], 7);
  EXPECT_EQ(destroyed["receiver"], nullptr);  // the port is dead
}

TEST_F(PortctlTest, MonitorShowsABodyThatTravelsOutOfLine) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(alpha);
  const Name port = ok_name(alpha->allocate(Right::kReceive), "port");
  ASSERT_EQ(alpha->insert_right(port, port, Disposition::kMakeSend), Status::kSuccess);
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "1", "--count", "1"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  const std::string big(200 << 10, 'b');  // over the 64 KiB threshold
  send_to(*alpha, port, 11, big);
  ASSERT_EQ(monitor.wait(), 0) << monitor.err();
  auto lines = lines_of(monitor.out());
  ASSERT_EQ(lines.size(), 1u) << monitor.out();
  Json e = Json::parse(lines[0]);
  EXPECT_EQ(e["body_ool"], true);
  EXPECT_EQ(e["body_bytes"], big.size());
  EXPECT_EQ(e["descriptor_count"], 0);
  EXPECT_EQ(e["descriptors"], Json::array());
  Json detail = json({"port", "1"});
  ASSERT_EQ(detail["queue"].size(), 1u);
  EXPECT_EQ(detail["queue"][0]["body_ool"], true);
  EXPECT_EQ(detail["queue"][0]["body_bytes"], big.size());
  EXPECT_EQ(detail["queue"][0]["descriptors"], 0);
}

TEST_F(PortctlTest, MonitorStopsCleanlyOnCtrlC) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(alpha);
  const Name port = ok_name(alpha->allocate(Right::kReceive), "port");
  ASSERT_EQ(alpha->insert_right(port, port, Disposition::kMakeSend), Status::kSuccess);
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(), {"monitor"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  send_to(*alpha, port, 5, "abc");
  // The event reaches the output before the signal does.
  for (int i = 0; i < 1000 && lines_of(monitor.out()).size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  monitor.signal(SIGINT);
  EXPECT_EQ(monitor.wait(), 0) << monitor.err();
  auto lines = lines_of(monitor.out());
  ASSERT_EQ(lines.size(), 2u) << monitor.out();
  EXPECT_EQ(lines[0].rfind("TIME", 0), 0u);
  EXPECT_NE(lines[1].find("send"), std::string::npos);
  EXPECT_NE(lines[1].find("(pid " + std::to_string(::getpid()) + " alpha)"), std::string::npos)
      << lines[1];
  EXPECT_TRUE(wait_monitors(alpha, 0));
  EXPECT_EQ(monitor.err(), "");
}

TEST_F(PortctlTest, MonitorExitsWithOneWhenTheDaemonGoes) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(alpha);
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(), {"monitor"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  daemon.stop(SIGTERM);
  EXPECT_EQ(monitor.wait(), 1) << monitor.err();
  // Why comes in parentheses: end of stream, or a reset, as the kernel says.
  const std::string err = monitor.err();
  EXPECT_EQ(err.rfind("portctl: monitor: the connection to portd was lost (", 0), 0u) << err;
  EXPECT_EQ(err.find("not connected"), std::string::npos) << err;  // said once
  ASSERT_GE(err.size(), 2u);
  EXPECT_EQ(err.substr(err.size() - 2), ")\n") << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(PortctlTest, TopRanksPortsByTraffic) {
  auto alpha = connect_or_die(daemon.socket_path(), "alpha");
  ASSERT_TRUE(alpha);
  std::vector<Name> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(ok_name(alpha->allocate(Right::kReceive), "port"));
    ASSERT_EQ(alpha->insert_right(ports[i], ports[i], Disposition::kMakeSend), Status::kSuccess);
  }
  // Port 2 has had the most traffic, then port 3; none moves during top.
  for (int i = 0; i < 3; ++i) send_to(*alpha, ports[1], i, "");
  send_to(*alpha, ports[2], 9, "");
  Outcome r = run({"--json", "top", "--iterations", "2", "--interval", "20", "--rows", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (const auto& line : lines) {
    Json frame = Json::parse(line);
    EXPECT_EQ(frame["ports_total"], 3);
    EXPECT_GE(frame["interval_ms"].get<int64_t>(), 20);
    auto row = [&](uint64_t port, Name name, int in) {
      const Json receiver = {{"task", alpha->id()},
                             {"pid", ::getpid()},
                             {"uid", 0},
                             {"command", "alpha"},
                             {"name", name}};
      return Json{{"port", port},  {"receiver", receiver}, {"msgs_in", in},   {"msgs_out", 0},
                  {"delta_in", 0}, {"delta_out", 0},       {"in_per_s", 0.0}, {"out_per_s", 0.0},
                  {"queued", in},  {"qlimit", 5}};
    };
    EXPECT_EQ(frame["ports"], Json::array({row(2, ports[1], 3), row(3, ports[2], 1)}))
        << frame.dump(2);
  }
  Outcome human = run({"top", "--iterations", "1", "--interval", "10"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("IN/S"), std::string::npos);
}

TEST_F(PortctlTest, TopRefreshesUntilCtrlC) {
  PortctlProcess top(daemon.directory(), daemon.socket_path(), {"top", "--interval", "20"});
  // Not a terminal: frames follow each other, separated by a blank line.
  for (int i = 0; i < 1000 && top.out().find("\n\nportd top") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  top.signal(SIGINT);
  EXPECT_EQ(top.wait(), 0) << top.err();
  EXPECT_EQ(top.out().rfind("portd top: ", 0), 0u) << top.out();
  EXPECT_NE(top.out().find("\n\nportd top: "), std::string::npos) << top.out();
  EXPECT_EQ(top.err(), "");
}

// ---------------------------------------------------------------------------
// A busy state: waiters of every kind, a cached message, notification
// requests of every kind, and every counter moved by a known amount.
//   beta:  inbox (port 1, qlimit 1, "test.busy.inbox") with no-senders and
//          port-destroyed requests to beta's notify port (port 2); a set
//          holding port 4 ("quiet"), on which a thread of beta waits.
//   alpha: a send right to the inbox with a dead-name request to alpha's
//          notify port (port 3); one message queued on the inbox, a thread
//          blocked behind it, another thread's message cached.

class BusyState : public PortctlTest {
 protected:
  void SetUp() override {
    PortctlTest::SetUp();
    alpha = connect_or_die(daemon.socket_path(), "alpha");
    beta = connect_or_die(daemon.socket_path(), "beta");
    ASSERT_TRUE(alpha && beta);
    inbox = ok_name(beta->allocate(Right::kReceive), "inbox");             // port 1
    b_notify = ok_name(beta->allocate(Right::kReceive), "beta notify");    // port 2
    a_notify = ok_name(alpha->allocate(Right::kReceive), "alpha notify");  // port 3
    quiet = ok_name(beta->allocate(Right::kReceive), "quiet");             // port 4
    set = ok_name(beta->allocate(Right::kPortSet), "set");                 // set 1
    ASSERT_EQ(beta->move_member(quiet, set), Status::kSuccess);
    ASSERT_EQ(beta->set_qlimit(inbox, 1), Status::kSuccess);
    ASSERT_EQ(beta->bootstrap_register("test.busy.inbox", inbox), Status::kSuccess);
    a_inbox = ok_name(alpha->bootstrap_look_up("test.busy.inbox"), "look up");
    ASSERT_TRUE(beta->request_notification(inbox, Notification::kNoSenders, 0, b_notify,
                                           Disposition::kMakeSendOnce)
                    .ok());
    ASSERT_TRUE(beta->request_notification(inbox, Notification::kPortDestroyed, 0, b_notify,
                                           Disposition::kMakeSendOnce)
                    .ok());
    ASSERT_TRUE(alpha
                    ->request_notification(a_inbox, Notification::kDeadName, 0, a_notify,
                                           Disposition::kMakeSendOnce)
                    .ok());

    // Counters: 1 received, 1 destroyed, 1 notification (send-once), and
    // the refused send below. (Port 5 comes and goes.)
    const Name scratch = ok_name(beta->allocate(Right::kReceive), "scratch");
    ASSERT_EQ(beta->insert_right(scratch, scratch, Disposition::kMakeSend), Status::kSuccess);
    send_to(*beta, scratch, 90, "kept");
    ASSERT_EQ(beta->receive(scratch, ReceiveOptions{std::chrono::milliseconds(0)}).status(),
              Status::kSuccess);
    send_to(*beta, scratch, 91, "dropped");
    ASSERT_EQ(beta->mod_refs(scratch, Right::kReceive, -1), Status::kSuccess);
    auto once = alpha->extract_right(a_notify, Disposition::kMakeSendOnce);
    ASSERT_TRUE(once.ok());
    ASSERT_EQ(alpha->deallocate(once->name), Status::kSuccess);  // -> a send-once notification
    ASSERT_EQ(alpha->receive(a_notify, ReceiveOptions{std::chrono::milliseconds(5000)}).status(),
              Status::kSuccess);

    send_to(*alpha, a_inbox, 1, "one");  // the queue is full now
    OutgoingMessage refused;
    refused.set_remote(a_inbox, Disposition::kCopySend).set_id(9);
    ASSERT_EQ(alpha->send(refused, SendOptions{std::chrono::milliseconds(0)}),
              Status::kSendTimedOut);

    blocked = std::thread([this] {
      blocked_thread = static_cast<uint64_t>(::gettid());
      OutgoingMessage m;
      m.set_remote(a_inbox, Disposition::kCopySend).set_id(2).set_body("blocked");
      blocked_status = alpha->send(m);  // waits for room
    });
    ASSERT_TRUE(wait_until([&] { return port_json(1)["waiting_senders"] == 1; }));
    std::thread cacher([this] {
      cached_thread = static_cast<uint64_t>(::gettid());
      OutgoingMessage m;
      m.set_remote(a_inbox, Disposition::kCopySend).set_id(3).set_body("cached!");
      SendOptions o{std::chrono::milliseconds(0)};
      o.cache = true;
      o.notify = a_notify;
      cached_status = alpha->send(m, o);
    });
    cacher.join();
    ASSERT_EQ(cached_status, Status::kSendWillNotify);

    waiting = std::thread([this] {
      auto got = beta->receive(set, ReceiveOptions{std::chrono::milliseconds(20000)});
      waiting_status = got.status();
      if (got) waiting_id = got->id;
    });
    ASSERT_TRUE(wait_until([&] { return json({"sets"})[0]["waiting_receivers"] == 1; }));
    pid = ::getpid();
  }
  void TearDown() override {
    // Wake everyone: room for the blocked and the cached message, and a
    // message for the waiting receiver.
    for (int i = 0; i < 3 && beta; ++i)
      (void)beta->receive(inbox, ReceiveOptions{std::chrono::milliseconds(5000)});
    if (beta) {
      EXPECT_EQ(beta->insert_right(quiet, quiet, Disposition::kMakeSend), Status::kSuccess);
      send_to(*beta, quiet, 77, "");
    }
    if (blocked.joinable()) {
      blocked.join();
      EXPECT_EQ(blocked_status, Status::kSuccess);
    }
    if (waiting.joinable()) {
      waiting.join();
      EXPECT_EQ(waiting_status, Status::kSuccess);
      EXPECT_EQ(waiting_id, 77);
    }
  }

  Json port_json(uint64_t id) { return json({"port", std::to_string(id)}); }
  template <typename F>
  bool wait_until(F condition) {
    for (int i = 0; i < 1000; ++i) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  Json task_ref(const std::shared_ptr<Task>& t, const char* command) {
    return Json{{"task", t->id()}, {"pid", pid}, {"uid", 0}, {"command", command}};
  }

  std::shared_ptr<Task> alpha, beta;
  Name inbox = 0, b_notify = 0, a_notify = 0, quiet = 0, set = 0, a_inbox = 0;
  uint32_t pid = 0;
  std::thread blocked, waiting;
  std::atomic<uint64_t> blocked_thread{0}, cached_thread{0};
  Status blocked_status = Status::kFailure, cached_status = Status::kFailure,
         waiting_status = Status::kFailure;
  int32_t waiting_id = 0;
};

TEST_F(BusyState, StatusCountsEveryKindOfMessage) {
  Json j = json({"status"});
  EXPECT_EQ(j["tasks"], 3);  // alpha, beta, portctl
  EXPECT_EQ(j["ports"], 4);
  EXPECT_EQ(j["port_sets"], 1);
  // On the inbox: "one", and the blocked sender's message, which waits
  // outside the queue; the cached one is held beside it.
  EXPECT_EQ(j["queued_messages"], 1);
  EXPECT_EQ(j["queued_bytes"], 3);
  EXPECT_EQ(j["bootstrap_names"], 1);
  // Every send a client asked for ends received, destroyed or refused, or is
  // in flight; notifications are counted apart.
  const Json counters = {
      {"messages_sent", 6},       // "kept", "dropped", "one", id 9, the blocked and the cached
      {"messages_received", 1},   // "kept"
      {"messages_destroyed", 1},  // "dropped"
      {"messages_refused", 1},    // id 9, timed out
      {"messages_in_flight", 3},  // "one", the blocked and the cached
      {"destroyed", {{"port_died", 1}, {"too_large", 0}, {"sender_died", 0}}},
      {"notifications", 1},  // send-once
      {"notifications_received", 1},
      {"notifications_destroyed", 0}};
  EXPECT_EQ(j["counters"], counters) << j.dump(2);
}

TEST_F(BusyState, PortsShowWaitersCachedMessagesAndRequests) {
  Json ports = json({"ports"});
  ASSERT_EQ(ports.size(), 4u) << ports.dump(2);
  const Json requests_none = {{"no_senders", false}, {"port_destroyed", false}, {"dead_name", 0}};
  auto item = [&](uint64_t id, const std::shared_ptr<Task>& t, const char* command, Name name) {
    Json receiver = task_ref(t, command);
    receiver["name"] = name;
    return Json{{"port", id},
                {"receiver", receiver},
                {"qlimit", 5},
                {"queued", 0},
                {"send_rights", 0},
                {"send_once_rights", 0},
                {"make_send_count", 0},
                {"seqno", 0},
                {"set", nullptr},
                {"msgs_in", 0},
                {"msgs_out", 0},
                {"waiting_senders", 0},
                {"waiting_receivers", 0},
                {"cached", 0},
                {"registered", 0},
                {"requests", requests_none}};
  };
  Json expected = Json::array();
  Json in = item(1, beta, "beta", inbox);
  in["qlimit"] = 1;
  in["queued"] = 1;
  // The send rights: alpha's, the registry's, and one for each message
  // waiting to get in (queued, blocked, cached).
  in["send_rights"] = 5;
  in["make_send_count"] = 1;
  in["msgs_in"] = 1;
  in["waiting_senders"] = 1;
  in["cached"] = 1;
  in["registered"] = 1;
  in["requests"] = {{"no_senders", true}, {"port_destroyed", true}, {"dead_name", 1}};
  expected.push_back(in);
  // beta's notify port: the two send-once rights its requests hold.
  Json bn = item(2, beta, "beta", b_notify);
  bn["send_once_rights"] = 2;
  expected.push_back(bn);
  // alpha's: the dead-name request's send-once right, and the cached
  // message's notify right; one message in and out (the send-once
  // notification).
  Json an = item(3, alpha, "alpha", a_notify);
  an["send_once_rights"] = 2;
  an["seqno"] = 1;
  an["msgs_in"] = 1;
  an["msgs_out"] = 1;
  expected.push_back(an);
  // quiet: in the set, whose receiver waits on the set, not on the port.
  Json q = item(4, beta, "beta", quiet);
  q["set"] = {{"set", 1}, {"name", set}};
  expected.push_back(q);
  EXPECT_EQ(ports, expected) << ports.dump(2);

  Json sets = json({"sets"});
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0]["waiting_receivers"], 1);
  EXPECT_EQ(sets[0]["members"], Json::array({{{"port", 4}, {"name", quiet}}}));
}

TEST_F(BusyState, PortDetailShowsWhoWaitsAndWhereNotificationsGo) {
  Json d = port_json(1);
  Json sender = task_ref(alpha, "alpha");
  auto with = [](Json j, const char* key, Json value) {
    j[key] = std::move(value);
    return j;
  };
  EXPECT_EQ(d["holders"], Json::array({with(with(with(task_ref(alpha, "alpha"), "name", a_inbox),
                                                 "rights", Json::array({"send"})),
                                            "urefs", 1),
                                       with(with(with(task_ref(beta, "beta"), "name", inbox),
                                                 "rights", Json::array({"receive"})),
                                            "urefs", 0)}))
      << d.dump(2);
  // In line order: the blocked sender, then the cached message.
  EXPECT_EQ(
      d["senders"],
      Json::array(
          {with(with(with(with(sender, "thread", blocked_thread.load()), "cached", false), "id", 2),
                "size", 24 + 7),
           with(with(with(with(sender, "thread", cached_thread.load()), "cached", true), "id", 3),
                "size", 24 + 7)}))
      << d.dump(2);
  EXPECT_EQ(d["receivers"], Json::array());
  EXPECT_EQ(d["notify_requests"],
            Json({{"no_senders", 2},
                  {"port_destroyed", 2},
                  {"dead_name", Json::array({with(with(task_ref(alpha, "alpha"), "name", a_inbox),
                                                  "notify_port", 3)})}}))
      << d.dump(2);
  EXPECT_EQ(d["bootstrap_names"], Json::array({"test.busy.inbox"}));
  ASSERT_EQ(d["queue"].size(), 1u);
  EXPECT_EQ(d["queue"][0]["id"], 1);

  // A receiver waiting on the set is shown on its member, via the set.
  Json q = port_json(4);
  EXPECT_EQ(q["receivers"],
            Json::array({with(with(task_ref(beta, "beta"), "via", "set"), "timeout_ms", 20000)}))
      << q.dump(2);
  EXPECT_EQ(q["senders"], Json::array());

  // The human view shows the same.
  Outcome human = run({"port", "1"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("waiting          1 senders, 0 receivers, 1 cached"), std::string::npos)
      << human.out;
  EXPECT_NE(
      human.out.find("requests         no-senders port 2, port-destroyed port 2, dead-name 1"),
      std::string::npos)
      << human.out;
}

// Every field of every JSON answer is in docs/portctl.md's schema (as
// `field` or "field"): the schema is documented, and what is documented is
// what consumers get.
TEST_F(BusyState, EveryJsonFieldIsDocumented) {
  std::ifstream in(PORTD_SOURCE_DIR "/docs/portctl.md");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  std::set<std::string> fields;
  std::function<void(const Json&)> collect = [&](const Json& j) {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        fields.insert(it.key());
        collect(it.value());
      }
    } else if (j.is_array()) {
      for (const auto& e : j) collect(e);
    }
  };
  for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                               {"tasks"},
                                               {"ports"},
                                               {"port", "1"},
                                               {"port", "4"},
                                               {"rights", std::to_string(alpha->id())},
                                               {"rights", std::to_string(beta->id())},
                                               {"sets"},
                                               {"names"},
                                               {"uids"}}) {
    collect(json(args));
  }
  Outcome top = run({"--json", "top", "--iterations", "1", "--interval", "10"});
  ASSERT_EQ(top.code, 0) << top.err;
  collect(Json::parse(top.out));
  // A monitor event with a descriptor of each kind.
  const Name extra = ok_name(beta->allocate(Right::kReceive), "extra");  // port 6
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "6", "--count", "1"});
  ASSERT_TRUE(wait_monitors(alpha, 1));
  OutgoingMessage m;
  m.set_remote(extra, Disposition::kMakeSend).set_id(5);
  m.add_port(b_notify, Disposition::kMakeSend);
  const auto ool = bytes_of("out of line");
  m.add_ool_copy(ool);
  m.add_ool_ports({b_notify}, Disposition::kMakeSend);
  ASSERT_EQ(beta->send(m, SendOptions{std::chrono::milliseconds(0)}), Status::kSuccess);
  ASSERT_EQ(monitor.wait(), 0) << monitor.err();
  collect(Json::parse(monitor.out()));
  for (const auto& f : fields) {
    EXPECT_TRUE(doc.find("`" + f + "`") != std::string::npos ||
                doc.find("\"" + f + "\"") != std::string::npos)
        << "field " << f << " is not in docs/portctl.md";
  }
  EXPECT_GE(fields.size(), 100u);  // the answers above were not empty
}

// ---------------------------------------------------------------------------
// Access: root sees everything; uid 65534 its own tasks and what they hold.

class AccessTest : public PortctlTest {
 protected:
  void SetUp() override {
    PortctlTest::SetUp();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a second uid";
    // The fixture's directory is private; the other uid must reach the socket.
    ASSERT_EQ(::chmod(daemon.directory().c_str(), 0755), 0);
  }
};

TEST_F(AccessTest, AnotherUidSeesOnlyItsOwn) {
  auto root = connect_or_die(daemon.socket_path(), "root-task");
  ASSERT_TRUE(root);
  const Name root_port = ok_name(root->bootstrap_check_in("test.access.root"), "root port");
  ASSERT_EQ(root->set_qlimit(root_port, 4), Status::kSuccess);  // port 1
  ok_name(root->allocate(Right::kPortSet), "root set");

  // A task of uid 65534 in a child: a port registered as "test.access.nobody"
  // (port 2) and a port set. It reports its task id and waits to be released.
  int ready[2], release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  const std::string socket = daemon.socket_path();
  Child child([&] {
    ::close(ready[0]);
    ::close(release[1]);
    if (!become(kNobody)) return 10;
    auto task = Task::connect(ConnectOptions{socket, "nobody-task"});
    if (!task) return 11;
    if (!(*task)->bootstrap_check_in("test.access.nobody")) return 12;
    if (!(*task)->allocate(Right::kPortSet)) return 13;
    const uint64_t id = (*task)->id();
    if (::write(ready[1], &id, sizeof id) != sizeof id) return 14;
    char c;
    (void)::read(release[0], &c, 1);
    return 0;
  });
  ::close(ready[1]);
  ::close(release[0]);
  uint64_t nobody_task = 0;
  ASSERT_EQ(::read(ready[0], &nobody_task, sizeof nobody_task),
            static_cast<ssize_t>(sizeof nobody_task));

  // uid 65534: its own task and portctl's (also uid 65534), nothing of root's.
  Json tasks = json({"tasks"}, kNobody);
  ASSERT_EQ(tasks.size(), 2u) << tasks.dump(2);
  EXPECT_EQ(tasks[0]["task"], nobody_task);
  EXPECT_EQ(tasks[0]["command"], "nobody-task");
  EXPECT_EQ(tasks[1]["command"], "portctl");
  for (const auto& t : tasks) EXPECT_EQ(t["uid"], kNobody);
  // Its own uid's account only; root sees both.
  Json uids = json({"uids"}, kNobody);
  ASSERT_EQ(uids.size(), 1u) << uids.dump(2);
  EXPECT_EQ(uids[0]["uid"], kNobody);
  EXPECT_EQ(uids[0]["tasks"], 2);
  EXPECT_EQ(uids[0]["quota"]["connections"]["used"], 2);
  EXPECT_EQ(uids[0]["quota"]["ports"]["used"], 1);
  Json all_uids = json({"uids"});
  ASSERT_EQ(all_uids.size(), 2u) << all_uids.dump(2);
  EXPECT_EQ(all_uids[0]["uid"], 0);
  EXPECT_EQ(all_uids[1]["uid"], kNobody);
  Json ports = json({"ports"}, kNobody);
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(ports[0]["port"], 2);
  EXPECT_EQ(ports[0]["receiver"]["task"], nobody_task);
  Json sets = json({"sets"}, kNobody);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0]["task"], nobody_task);
  // The registry is public, as bootstrap_list is.
  EXPECT_EQ(json({"names"}, kNobody).size(), 2u);
  Json status = json({"status"}, kNobody);
  EXPECT_EQ(status["viewer"], Json({{"uid", kNobody}, {"privileged", false}}));
  EXPECT_EQ(run({"port", "1"}, kNobody).code, 1);
  EXPECT_EQ(run({"port", "2"}, kNobody).code, 0);
  EXPECT_EQ(run({"rights", std::to_string(root->id())}, kNobody).code, 1);
  EXPECT_EQ(run({"rights", std::to_string(nobody_task)}, kNobody).code, 0);
  EXPECT_EQ(run({"monitor", "--task", std::to_string(root->id())}, kNobody).code, 1);

  // Root sees both uids.
  EXPECT_EQ(json({"tasks"}).size(), 3u);
  EXPECT_EQ(json({"ports"}).size(), 2u);
  EXPECT_EQ(json({"sets"}).size(), 2u);
  EXPECT_EQ(json({"rights", std::to_string(nobody_task)}).size(), 1u);

  // A monitor of uid 65534 sees the message to its port, not root's own.
  PortctlProcess monitor(daemon.directory(), daemon.socket_path(),
                         {"--json", "monitor", "--count", "1"}, kNobody);
  ASSERT_TRUE(wait_monitors(root, 1));
  const Name to_root = ok_name(root->bootstrap_look_up("test.access.root"), "root svc");
  const Name to_nobody = ok_name(root->bootstrap_look_up("test.access.nobody"), "nobody svc");
  send_to(*root, to_root, 100, "private");
  send_to(*root, to_nobody, 200, "public");
  ASSERT_EQ(monitor.wait(), 0) << monitor.err();
  auto lines = lines_of(monitor.out());
  ASSERT_EQ(lines.size(), 1u) << monitor.out();
  Json e = Json::parse(lines[0]);
  EXPECT_EQ(e["id"], 200);
  EXPECT_EQ(e["port"], 2);
  EXPECT_EQ(e["receiver"]["uid"], kNobody);

  ::close(release[1]);
  EXPECT_EQ(child.wait(), 0);
  ::close(ready[0]);
}

}  // namespace
}  // namespace portd::testing
