// The bootstrap registry: check-in, register, look-up (waiting too),
// unregister, listing, ownership by uid, names dying with their port.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using BootstrapTest = CoreTest;

TEST_F(BootstrapTest, CheckInGivesAReceiveRightAndLookUpASendRight) {
  Name rcv = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "com.example.echo", &rcv, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kA, rcv), kTypeReceive);
  Name snd = kNameNull;
  ASSERT_EQ(core.bootstrap_look_up(kB, "com.example.echo", 0, 0, &snd, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kB, snd), kTypeSend);
  ASSERT_EQ(send(kB, msg(snd, Disposition::kCopySend, 3, "hi")), Status::kSuccess);
  EXPECT_EQ(body_of(recv(kA, rcv).msg), "hi");
  Name again = kNameNull;
  ASSERT_EQ(core.bootstrap_look_up(kB, "com.example.echo", 0, 0, &again, fx), Status::kSuccess);
  EXPECT_EQ(again, snd);
  EXPECT_EQ(refs(kB, snd, Right::kSend), 2u);
}

TEST_F(BootstrapTest, Statuses) {
  Name n = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "svc", &n, fx), Status::kSuccess);
  Name p = port(kB);
  Name dead = kNameNull;
  ASSERT_EQ(core.allocate(kB, Right::kDeadName, &dead), Status::kSuccess);
  std::vector<BootstrapEntry> registry;
  ASSERT_EQ(core.bootstrap_list(kC, &registry), Status::kSuccess);
  ASSERT_EQ(registry.size(), 1u);
  // Every refusal below leaves both spaces and the registry as they were.
  const std::string before_a = snapshot(kA), before_b = snapshot(kB);
  auto unchanged = [&] {
    EXPECT_EQ(snapshot(kA), before_a);
    EXPECT_EQ(snapshot(kB), before_b);
    std::vector<BootstrapEntry> now;
    ASSERT_EQ(core.bootstrap_list(kC, &now), Status::kSuccess);
    ASSERT_EQ(now.size(), 1u);
    EXPECT_EQ(now[0].name, "svc");
    EXPECT_EQ(now[0].port, registry[0].port);
  };
  Name other = 0x4444;
  EXPECT_EQ(core.bootstrap_check_in(kB, "svc", &other, fx), Status::kBootstrapServiceActive);
  EXPECT_EQ(other, kNameNull);
  unchanged();
  EXPECT_EQ(core.bootstrap_register(kB, "svc", p, fx), Status::kBootstrapNameInUse);
  unchanged();  // p made no send right (its make-send count is still 0)
  other = 0x4444;
  EXPECT_EQ(core.bootstrap_look_up(kB, "nope", 0, 0, &other, fx), Status::kBootstrapUnknownService);
  EXPECT_EQ(other, kNameNull);
  EXPECT_EQ(core.bootstrap_unregister(kB, "nope", fx), Status::kBootstrapUnknownService);
  unchanged();
  EXPECT_EQ(core.bootstrap_check_in(kA, "", &other, fx), Status::kInvalidArgument);
  EXPECT_EQ(core.bootstrap_check_in(kA, std::string(128, 'x'), &other, fx),
            Status::kInvalidArgument);
  EXPECT_EQ(core.bootstrap_check_in(kA, std::string("a\0b", 3), &other, fx),
            Status::kInvalidArgument);
  EXPECT_EQ(core.bootstrap_register(kB, std::string(128, 'x'), p, fx), Status::kInvalidArgument);
  EXPECT_EQ(core.bootstrap_look_up(kB, "", 0, 0, &other, fx), Status::kInvalidArgument);
  unchanged();
  EXPECT_EQ(core.bootstrap_register(kB, "x", 0x5151, fx), Status::kInvalidName);
  EXPECT_EQ(core.bootstrap_register(kB, "x", dead, fx), Status::kInvalidRight);
  unchanged();
  // Another uid's name: not theirs to take away.
  EXPECT_EQ(core.bootstrap_unregister(kB, "svc", fx), Status::kBootstrapNotPrivileged);
  unchanged();
}

TEST_F(BootstrapTest, OnlyTheOwningUidOrRootUnregisters) {
  Name n = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "mine", &n, fx), Status::kSuccess);  // uid 1000
  EXPECT_EQ(core.bootstrap_unregister(kB, "mine", fx), Status::kBootstrapNotPrivileged);  // 1001
  EXPECT_EQ(core.bootstrap_unregister(kC, "mine", fx), Status::kSuccess);  // uid 1000, other task
  ASSERT_EQ(core.task_create(9, {9, 0, 0}), Status::kSuccess);
  ASSERT_EQ(core.bootstrap_check_in(kB, "theirs", &n, fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_unregister(9, "theirs", fx), Status::kSuccess);  // root
  core.task_destroy(9, fx);
}

TEST_F(BootstrapTest, RegisterBindsASendRightTheCallerKeeps) {
  Name p = port(kB);
  ASSERT_EQ(core.bootstrap_register(kB, "reg", p, fx), Status::kSuccess);
  EXPECT_TRUE(status_of(kB, p).srights);
  EXPECT_EQ(status_of(kB, p).mscount, 1u);
  EXPECT_EQ(type_of(kB, p), kTypeReceive);
  Name s = kNameNull;
  ASSERT_EQ(core.bootstrap_look_up(kA, "reg", 0, 0, &s, fx), Status::kSuccess);
  ASSERT_EQ(core.bootstrap_unregister(kB, "reg", fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_look_up(kA, "reg", 0, 0, &s, fx), Status::kBootstrapUnknownService);
}

TEST_F(BootstrapTest, ANameGoesAwayWhenItsPortDies) {
  Name n = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "short-lived", &n, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, n, Right::kReceive, -1, fx), Status::kSuccess);
  Name s;
  EXPECT_EQ(core.bootstrap_look_up(kB, "short-lived", 0, 0, &s, fx),
            Status::kBootstrapUnknownService);
  std::vector<BootstrapEntry> list;
  ASSERT_EQ(core.bootstrap_list(kB, &list), Status::kSuccess);
  EXPECT_TRUE(list.empty());
  // And with the task that held it.
  ASSERT_EQ(core.bootstrap_check_in(kA, "with-task", &n, fx), Status::kSuccess);
  core.task_destroy(kA, fx);
  EXPECT_EQ(core.bootstrap_look_up(kB, "with-task", 0, 0, &s, fx),
            Status::kBootstrapUnknownService);
}

TEST_F(BootstrapTest, LookUpCanWaitForTheNameToAppear) {
  Name s = kNameNull;
  EXPECT_EQ(core.bootstrap_look_up(kB, "later", -1, 500, &s, fx), Status::kRcvInProgress);
  EXPECT_EQ(core.bootstrap_look_up(kC, "later", 100, 501, &s, fx), Status::kRcvInProgress);
  EXPECT_EQ(core.bootstrap_look_up(kC, "never", 100, 502, &s, fx), Status::kRcvInProgress);
  Name n = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "later", &n, fx), Status::kSuccess);
  auto c = completion(500);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kSuccess);
  EXPECT_EQ(type_of(kB, c->name), kTypeSend);
  auto c2 = completion(501);
  ASSERT_TRUE(c2.has_value());
  EXPECT_EQ(type_of(kC, c2->name), kTypeSend);
  core.expire(502, fx);
  auto c3 = completion(502);
  ASSERT_TRUE(c3.has_value());
  EXPECT_EQ(c3->status, Status::kBootstrapUnknownService);
  EXPECT_EQ(core.bootstrap_look_up(kC, "never", 100, 503, &s, fx), Status::kRcvInProgress);
  core.cancel(503, fx);
  EXPECT_EQ(completion(503)->status, Status::kAborted);
}

TEST_F(BootstrapTest, ListShowsOwnerAndPort) {
  core.set_now_unix_ms(1700000000000);
  Name n = kNameNull;
  ASSERT_EQ(core.bootstrap_check_in(kA, "b.second", &n, fx), Status::kSuccess);
  ASSERT_EQ(core.bootstrap_check_in(kB, "a.first", &n, fx), Status::kSuccess);
  std::vector<BootstrapEntry> list;
  ASSERT_EQ(core.bootstrap_list(kC, &list), Status::kSuccess);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "a.first");
  EXPECT_EQ(list[0].uid, 1001u);
  EXPECT_EQ(list[0].pid, 102u);
  EXPECT_EQ(list[1].name, "b.second");
  EXPECT_EQ(list[1].uid, 1000u);
  EXPECT_EQ(list[1].since_unix_ms, 1700000000000);
  EXPECT_NE(list[0].port, list[1].port);
}

}  // namespace
}  // namespace portd::ipc::testing
