// What the quota tests share (daemon_quota_test.cc: each task's quotas and
// the uid's ports and connections; daemon_uid_quota_test.cc: the other
// quotas of a uid): a daemon started with the test's limits, a viewer task
// that reads the charges through introspection, and a snapshot of every
// charge a refusal must leave as it was.
#pragma once

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "portd/introspect.h"
#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/cross_process.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {

namespace quota {

using Json = nlohmann::json;
using namespace std::chrono_literals;

inline constexpr uid_t kNobody = 65534;

class QuotaFixture : public ::testing::Test {
 protected:
  void start(std::vector<std::string> flags) {
    DaemonLaunch launch;
    launch.args = std::move(flags);
    start(launch);
  }
  void start(const DaemonLaunch& launch) {
    daemon_ = std::make_unique<DaemonProcess>(launch);
    ASSERT_TRUE(daemon_->started());
    // The fixture's probe (a connection that closes at once) counts against
    // the uid's connections until the daemon has seen it close: with a
    // limit of 1 the viewer may have to try again, and every test starts
    // once the viewer is the uid's only connection.
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      auto viewer = Task::connect(ConnectOptions{daemon_->socket_path(), "viewer"});
      if (viewer.ok()) {
        viewer_ = std::move(*viewer);
        break;
      }
      ASSERT_EQ(viewer.status(), Status::kResourceShortage) << viewer.detail();
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(5ms);
    }
    introspection_ = std::make_unique<Introspection>(viewer_);
    while (fetch(IntrospectWhat::kUids)[0]["quota"]["connections"]["used"] != 1)
      std::this_thread::sleep_for(5ms);
  }
  void TearDown() override {
    introspection_.reset();
    viewer_.reset();
  }

  std::shared_ptr<Task> connect(const std::string& command) {
    return connect_or_die(daemon_->socket_path(), command);
  }

  Json fetch(IntrospectWhat what, uint64_t target = 0) {
    IntrospectQuery q;
    q.what = what;
    q.target = target;
    auto r = introspection_->fetch(q);
    EXPECT_TRUE(r.ok()) << status_name(r.status()) << " " << r.detail();
    return r.ok() ? Json::parse(*r) : Json();
  }
  Json task_json(const Task& t) {
    Json all = fetch(IntrospectWhat::kTasks, t.id());
    EXPECT_EQ(all.size(), 1u) << all.dump();
    return all.empty() ? Json() : all[0];
  }
  uint64_t used(const Task& t, const char* quota) {
    return task_json(t)["quota"][quota]["used"].get<uint64_t>();
  }

  // Everything a refusal must leave as it was: the task's charges and its
  // uid's, its names, the daemon's counts and open fds. A round trip on the
  // task first, so that requests it posted without waiting (handle
  // releases) are done: one connection's requests are handled in order.
  Json snapshot(Task& t) {
    EXPECT_TRUE(t.names().ok());
    Json task = task_json(t);
    Json status = fetch(IntrospectWhat::kStatus);
    Json out;
    for (auto& [k, v] : task["quota"].items()) out["task"][k] = v["used"];
    for (auto& [k, v] : task["uid_quota"].items()) out["uid"][k] = v["used"];
    out["names"] = task["names"];
    for (const char* k :
         {"tasks", "ports", "port_sets", "queued_messages", "queued_bytes", "bootstrap_names"})
      out["daemon"][k] = status[k];
    out["daemon"]["fds"] = daemon_->open_fd_count();
    return out;
  }
  // Two tasks' snapshots.
  Json snapshot(Task& one, Task& two) {
    Json a = snapshot(one);
    Json b = snapshot(two);
    return Json{{"one", a}, {"two", b}};
  }
  uint64_t used_names(const Task& t) { return used(t, "names"); }
  uint64_t uid_used(const Task& t, const char* quota) {
    return task_json(t)["uid_quota"][quota]["used"].get<uint64_t>();
  }
  // Waits until the daemon holds `n` fds (closing a connection's fd follows
  // its client's view of the close).
  void expect_fds(int n) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (daemon_->open_fd_count() != n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    EXPECT_EQ(daemon_->open_fd_count(), n);
  }
  size_t log_count(const std::string& text) {
    const std::string log = daemon_->log();
    size_t count = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++count;
    return count;
  }
  // Waits until the log holds `text` `n` times.
  bool wait_for_log_count(const std::string& text, size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      const size_t count = log_count(text);
      if (count >= n) return count == n;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
  }
  uint64_t refused_count() {
    return fetch(IntrospectWhat::kStatus)["counters"]["messages_refused"].get<uint64_t>();
  }

  // A send right in `to` for port `port` of `from`, through the registry.
  SendRight hand_over(const std::shared_ptr<Task>& from, const ReceiveRight& port,
                      const std::shared_ptr<Task>& to) {
    const std::string service = unique_service("quota");
    EXPECT_EQ(from->bootstrap_register(service, port.name()), Status::kSuccess);
    auto right = to->look_up(service);
    EXPECT_TRUE(right.ok()) << status_name(right.status());
    EXPECT_EQ(from->bootstrap_unregister(service), Status::kSuccess);
    return right.ok() ? std::move(*right) : SendRight();
  }

  // Runs `body` in a child that has become uid 65534 (the socket's
  // directory is opened to it first); its exit code.
  int as_nobody(const std::function<int(const std::string&)>& body) {
    EXPECT_EQ(::chmod(daemon_->directory().c_str(), 0755), 0);
    const std::string socket = daemon_->socket_path();
    Child child([&] {
      if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
        return 90;
      return body(socket);
    });
    return child.wait();
  }

  // Another uid has its own: a task of uid 65534 allocates `n` rights of
  // `right` and the next is refused with `refused`. 0 when it is so.
  int nobody_allocates(Right right, int n, Status refused) {
    return as_nobody([&](const std::string& socket) {
      auto t = Task::connect(ConnectOptions{socket, "nobody"});
      if (!t) return 1;
      for (int i = 0; i < n; ++i)
        if (!(*t)->allocate(right)) return 2;
      return (*t)->allocate(right).status() == refused ? 0 : 3;
    });
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::shared_ptr<Task> viewer_;
  std::unique_ptr<Introspection> introspection_;
};

inline OutgoingMessage text(const SendRight& to, int32_t id, std::string_view body = {}) {
  OutgoingMessage m;
  m.set_remote(to).set_id(id).set_body(body);
  return m;
}

inline SendOptions at_once_send() { return SendOptions{0ms}; }

// The messages the queued-charge tests send, per task and per uid alike.
inline OutgoingMessage one_byte(const SendRight& to, int id) { return text(to, id, "x"); }
inline OutgoingMessage forty_bytes(const SendRight& to, int id) {
  return text(to, id, std::string(40, 'b'));
}
inline OutgoingMessage one_ool_page(const SendRight& to, int id) {
  OutgoingMessage m = text(to, id);
  m.add_ool_copy(bytes_of(std::string(4096, 'o')));
  return m;
}
inline OutgoingMessage two_ool_fds(const SendRight& to, int id) {
  OutgoingMessage m = text(to, id);
  m.add_ool_copy(bytes_of("one"));
  m.add_ool_copy(bytes_of("two"));
  return m;
}

}  // namespace quota

}  // namespace portd::testing
