// Helpers for the stress tests (crash, soak): their scale and seed, the
// daemon's counts, and a pinger that checks the daemon keeps serving.
//
// Scale: PORTD_STRESS_SCALE (default 1) multiplies every bounded count, so
// the default run fits CI and a longer run is one variable away:
//   PORTD_STRESS_SCALE=20 ctest --test-dir build -L crash --output-on-failure
// Seed: PORTD_STRESS_SEED fixes the random choices (kill moments, roles,
// sizes); otherwise one is drawn. Either way it is printed, and every
// failure carries it, so a failing run can be repeated.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "portd/introspect.h"
#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {

using Json = nlohmann::json;

inline uint64_t stress_scale() {
  const char* s = std::getenv("PORTD_STRESS_SCALE");
  const uint64_t n = s != nullptr ? std::strtoull(s, nullptr, 10) : 1;
  return n == 0 ? 1 : n;
}

inline uint64_t stress_seed() {
  if (const char* s = std::getenv("PORTD_STRESS_SEED"); s != nullptr && *s != '\0')
    return std::strtoull(s, nullptr, 10);
  return std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
}

// The daemon's view: introspection through a task of the test's.
class DaemonView {
 public:
  explicit DaemonView(std::shared_ptr<Task> task) : introspection_(std::move(task)) {}

  Json fetch(IntrospectWhat what) {
    IntrospectQuery q;
    q.what = what;
    auto r = introspection_.fetch(q);
    EXPECT_TRUE(r.ok()) << status_name(r.status()) << " " << r.detail();
    return r.ok() ? Json::parse(*r) : Json();
  }
  Json status() { return fetch(IntrospectWhat::kStatus); }

  // Waits (up to `wait`) until the daemon has `n` tasks: those of killed
  // clients are gone, with everything their death caused.
  bool wait_tasks(uint64_t n, std::chrono::milliseconds wait = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      if (status()["tasks"].get<uint64_t>() == n) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  Introspection introspection_;
};

// The identities the daemon's counters keep (docs/portctl.md, status):
// every message a client sent was received, destroyed or refused, or is in
// flight; every notification was received or destroyed, or is queued.
inline void expect_counters_balanced(const Json& status) {
  const Json& c = status["counters"];
  const uint64_t sent = c["messages_sent"];
  EXPECT_EQ(sent, c["messages_received"].get<uint64_t>() + c["messages_destroyed"].get<uint64_t>() +
                      c["messages_refused"].get<uint64_t>() +
                      c["messages_in_flight"].get<uint64_t>())
      << c.dump();
  const Json& d = c["destroyed"];
  EXPECT_EQ(c["messages_destroyed"].get<uint64_t>(), d["port_died"].get<uint64_t>() +
                                                         d["too_large"].get<uint64_t>() +
                                                         d["sender_died"].get<uint64_t>())
      << c.dump();
}

// A process that keeps asking the daemon for something (a message to
// itself and back, and the daemon's status) until told to stop: the daemon
// must answer every time. Its exit status says whether every round was
// answered (0) or which step failed; it reports how many rounds it made.
class Pinger {
 public:
  explicit Pinger(const std::string& socket) {
    int stop[2], report[2];
    EXPECT_EQ(::pipe2(stop, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(report, O_CLOEXEC), 0);
    child_ = std::make_unique<Child>([&] {
      ::close(stop[1]);
      ::close(report[0]);
      auto task = Task::connect(ConnectOptions{socket, "pinger"});
      if (!task) return 10;
      auto port = (*task)->make_port();
      if (!port) return 11;
      Introspection view(*task);
      for (int64_t round = 0;; ++round) {
        pollfd p{stop[0], POLLIN, 0};
        if (::poll(&p, 1, 10) != 0) {
          return ::write(report[1], &round, sizeof round) == sizeof round ? 0 : 16;
        }
        OutgoingMessage m;
        m.set_remote(*port, Disposition::kMakeSend).set_id(static_cast<int32_t>(round));
        if ((*task)->send(m) != Status::kSuccess) return 12;
        ReceiveOptions o;
        o.timeout = std::chrono::seconds(30);
        auto got = port->receive(o);
        if (!got || got->id != static_cast<int32_t>(round)) return 13;
        if (!view.page(IntrospectQuery{})) return 14;
      }
    });
    ::close(stop[0]);
    ::close(report[1]);
    stop_ = stop[1];
    report_ = report[0];
  }
  ~Pinger() {
    if (stop_ >= 0) finish();
  }

  // Stops it; the rounds it made, all answered, or -1 if one went
  // unanswered (`code` says which step).
  int64_t finish(int* code = nullptr) {
    if (stop_ >= 0) {
      const char c = 0;
      (void)::write(stop_, &c, 1);
      ::close(stop_);
      stop_ = -1;
    }
    const int exit_code = child_->wait();
    if (code != nullptr) *code = exit_code;
    int64_t rounds = -1;
    if (::read(report_, &rounds, sizeof rounds) != sizeof rounds) rounds = -1;
    ::close(report_);
    return exit_code == 0 ? rounds : -1;
  }

 private:
  std::unique_ptr<Child> child_;
  int stop_ = -1;
  int report_ = -1;
};

// VmRSS of `pid`, in KiB (0 if unreadable).
inline uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

}  // namespace portd::testing
