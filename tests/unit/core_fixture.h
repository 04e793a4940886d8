// A fixture for the core's unit tests: a Core with three tasks and helpers
// that call it the way the shell does. Every test ends by recounting every
// right (check_invariants) and, after tearing all tasks down, checking that
// no port object, message or charge is left.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/ipc/core_impl.h"

namespace portd::ipc::testing {

inline std::ostream& operator<<(std::ostream& os, Status s) { return os << status_name(s); }

struct Received {
  Status status = Status::kSuccess;
  MessageOut msg;
  uint32_t needed = 0;
};

class CoreTest : public ::testing::Test {
 protected:
  static constexpr TaskId kA = 1;
  static constexpr TaskId kB = 2;
  static constexpr TaskId kC = 3;

  explicit CoreTest(const Limits& limits = {}) : core(limits) {}

  void SetUp() override {
    ASSERT_EQ(core.task_create(kA, {101, 1000, 100}), Status::kSuccess);
    ASSERT_EQ(core.task_create(kB, {102, 1001, 101}), Status::kSuccess);
    ASSERT_EQ(core.task_create(kC, {103, 1000, 100}), Status::kSuccess);
  }

  void TearDown() override {
    EXPECT_EQ(core.impl().check_invariants(), "");
    for (TaskId t : {kA, kB, kC}) core.task_destroy(t, fx);
    EXPECT_EQ(core.impl().check_invariants(), "");
    EXPECT_EQ(core.impl().ports().size(), 0u);
    EXPECT_EQ(core.impl().port_objects(), 0u) << "port objects leaked";
    EXPECT_EQ(core.impl().queued_messages(), 0u);
    EXPECT_EQ(core.impl().parked(), 0u);
    EXPECT_EQ(core.impl().uid_account(1000), nullptr) << "charges left on uid 1000";
    EXPECT_EQ(core.impl().uid_account(1001), nullptr) << "charges left on uid 1001";
  }

  void check() { EXPECT_EQ(core.impl().check_invariants(), ""); }

  Name port(TaskId t = kA) {
    Name n = kNameNull;
    EXPECT_EQ(core.allocate(t, Right::kReceive, &n), Status::kSuccess);
    return n;
  }
  Name pset(TaskId t = kA) {
    Name n = kNameNull;
    EXPECT_EQ(core.allocate(t, Right::kPortSet, &n), Status::kSuccess);
    return n;
  }
  // A port in `owner` and a send right to it in `holder`; returns
  // {receive name in owner, send name in holder}.
  std::pair<Name, Name> port_with_sender(TaskId owner, TaskId holder) {
    Name r = port(owner);
    return {r, send_right(owner, r, holder)};
  }
  // A send right in `holder` to port `name` of `owner`, handed over through
  // the bootstrap registry (which lets go of its own right at once).
  Name send_right(TaskId owner, Name name, TaskId holder) {
    const std::string key = "fixture." + std::to_string(++key_counter_);
    EXPECT_EQ(core.bootstrap_register(owner, key, name, fx), Status::kSuccess);
    Name got = kNameNull;
    EXPECT_EQ(core.bootstrap_look_up(holder, key, 0, 0, &got, fx), Status::kSuccess);
    EXPECT_EQ(core.bootstrap_unregister(owner, key, fx), Status::kSuccess);
    return got;
  }
  // Moves a right from `from` to `to` in a message, as a real sender would,
  // and returns its name in `to`.
  Name give(TaskId from, Name name, Disposition d, TaskId to) {
    Name carrier = port(to);
    Name carrier_send = send_right(to, carrier, from);
    MessageIn m;
    m.remote = carrier_send;
    m.remote_disposition = Disposition::kMoveSend;
    m.descriptors.push_back(PortDescIn{name, d});
    EXPECT_EQ(send(from, m), Status::kSuccess);
    Received r = recv(to, carrier);
    EXPECT_EQ(r.status, Status::kSuccess);
    EXPECT_EQ(core.mod_refs(to, carrier, Right::kReceive, -1, fx), Status::kSuccess);
    return std::get<PortDescOut>(r.msg.descriptors.at(0)).name;
  }

  static MessageIn msg(Name dest, Disposition d = Disposition::kCopySend, int32_t id = 0,
                       std::string body = {}) {
    MessageIn m;
    m.remote = dest;
    m.remote_disposition = d;
    m.id = id;
    m.body.assign(body.begin(), body.end());
    return m;
  }

  Status send(TaskId t, MessageIn& m, SendOptions o = now(), WaitToken token = 0) {
    return core.send(t, m, o, token, fx);
  }
  Status send(TaskId t, MessageIn&& m, SendOptions o = now(), WaitToken token = 0) {
    return core.send(t, m, o, token, fx);
  }
  static SendOptions now() {
    SendOptions o;
    o.timeout_ms = 0;
    return o;
  }
  static SendOptions wait() { return SendOptions{}; }

  Received recv(TaskId t, Name name, ReceiveOptions o = {}) {
    o.name = name;
    if (o.timeout_ms < 0) o.timeout_ms = 0;
    Received r;
    r.status = core.receive(t, o, 0, &r.msg, &r.needed, fx);
    return r;
  }
  Status recv_park(TaskId t, Name name, WaitToken token, ReceiveOptions o = {}) {
    o.name = name;
    MessageOut out;
    uint32_t needed = 0;
    return core.receive(t, o, token, &out, &needed, fx);
  }

  std::string body_of(const MessageOut& m) { return std::string(m.body.begin(), m.body.end()); }

  uint32_t type_of(TaskId t, Name n) {
    uint32_t ty = 0;
    core.type(t, n, &ty);
    return ty;
  }
  uint32_t refs(TaskId t, Name n, Right r) {
    uint32_t u = 0;
    EXPECT_EQ(core.get_refs(t, n, r, &u), Status::kSuccess);
    return u;
  }
  PortStatus status_of(TaskId t, Name n) {
    PortStatus s;
    EXPECT_EQ(core.get_attributes(t, n, &s), Status::kSuccess);
    return s;
  }
  size_t name_count(TaskId t) {
    std::vector<NameInfo> v;
    core.names(t, &v);
    return v.size();
  }

  // Everything a task can observe of its space: each name, its type and
  // urefs, and for receive rights the port status. Compared before and after
  // an operation that must fail to prove it changed nothing.
  std::string snapshot(TaskId t) {
    std::vector<NameInfo> v;
    core.names(t, &v);
    std::string out;
    for (const auto& n : v) {
      uint32_t send = 0, dead = 0;
      core.get_refs(t, n.name, Right::kSend, &send);
      core.get_refs(t, n.name, Right::kDeadName, &dead);
      out += std::to_string(n.name) + ":" + std::to_string(n.type) + ":" + std::to_string(send) +
             ":" + std::to_string(dead);
      PortStatus ps;
      if (core.get_attributes(t, n.name, &ps) == Status::kSuccess)
        out += ":q" + std::to_string(ps.msgcount) + ":ms" + std::to_string(ps.mscount) + ":so" +
               std::to_string(ps.sorights) + ":s" + std::to_string(ps.srights) + ":set" +
               std::to_string(ps.pset);
      out += " ";
    }
    return out;
  }

  // Takes (and removes) the completion for `token` from fx.
  std::optional<Completion> completion(WaitToken token) {
    for (auto it = fx.completions.begin(); it != fx.completions.end(); ++it) {
      if (it->token == token) {
        Completion c = std::move(*it);
        fx.completions.erase(it);
        return c;
      }
    }
    return std::nullopt;
  }

  Core core;
  Effects fx;

 private:
  int key_counter_ = 0;
};

}  // namespace portd::ipc::testing
