// portbench in smoke mode, against a daemon it spawns: every scenario runs
// and reports sane numbers. Counts are exact (every message sent arrives,
// in order, every byte checked by the receiver); figures are positive and
// finite. No time and no ratio is asserted: speed is what portbench reports,
// not what a test on a shared machine can judge.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#ifndef PORTBENCH_BINARY
#error "PORTBENCH_BINARY must name the portbench executable"
#endif
#ifndef PORTD_BINARY
#error "PORTD_BINARY must name the portd executable"
#endif

namespace {

using Json = nlohmann::json;

struct Outcome {
  int exit_code = -1;
  std::string out;
};

Outcome run_portbench(const std::vector<std::string>& args) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    std::vector<std::string> all{PORTBENCH_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  Outcome run;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    run.out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

bool positive_finite(const Json& v) {
  return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0;
}

const Json& series(const Json& scenario, const std::string& label) {
  for (const auto& s : scenario["series"])
    if (s["label"] == label) return s;
  static const Json none;
  ADD_FAILURE() << scenario["name"] << " has no series " << label;
  return none;
}

// A latency or transfer series: `samples` samples, `bytes` bytes checked,
// percentiles positive, finite and ordered.
void expect_samples(const Json& s, size_t samples, uint64_t bytes) {
  SCOPED_TRACE(s.dump());
  EXPECT_EQ(s["samples"].get<size_t>(), samples);
  EXPECT_EQ(s["bytes_checked"].get<uint64_t>(), bytes);
  for (const char* k : {"median", "p90", "p99", "min", "mean"})
    EXPECT_TRUE(positive_finite(s[k])) << k;
  EXPECT_LE(s["min"].get<double>(), s["median"].get<double>());
  EXPECT_LE(s["median"].get<double>(), s["p90"].get<double>());
  EXPECT_LE(s["p90"].get<double>(), s["p99"].get<double>());
}

void expect_ratios(const Json& scenario) {
  ASSERT_TRUE(scenario.contains("ratios")) << scenario["name"];
  for (const auto& [k, v] : scenario["ratios"].items())
    EXPECT_TRUE(positive_finite(v)) << scenario["name"] << " " << k;
}

// One smoke run (a few seconds) checked part by part; ctest runs each TEST
// on its own, so the parts are functions of one test rather than tests.
class SmokeReport {
 public:
  explicit SmokeReport(const Json& report) : report_(report) {}

  const Json& scenario(const std::string& name) const {
    for (const auto& s : report_["scenarios"])
      if (s["name"] == name) return s;
    static const Json none;
    ADD_FAILURE() << "no scenario " << name;
    return none;
  }

  void check_every_scenario() const {
    EXPECT_EQ(report_["schema"], "portbench/1");
    EXPECT_EQ(report_["mode"], "smoke");
    EXPECT_EQ(report_["failed"], 0);
    EXPECT_TRUE(report_["daemon"]["spawned"].get<bool>());
    EXPECT_GT(report_["daemon"]["pid"].get<int>(), 0);
    std::set<std::string> names;
    for (const auto& s : report_["scenarios"]) {
      names.insert(s["name"].get<std::string>());
      EXPECT_FALSE(s.contains("error")) << s.dump();
    }
    const std::set<std::string> expected{"rpc_64",     "rpc_4096",      "oneway_s1", "oneway_s4",
                                         "oneway_s16", "oneway_set_s4", "ool_64K",   "ool_1M",
                                         "scale",      "isolation"};
    EXPECT_EQ(names, expected);
  }

  void check_rpc() const {
    for (const size_t size : {size_t{64}, size_t{4096}}) {
      const Json& s = scenario("rpc_" + std::to_string(size));
      const size_t n = s["params"]["iterations"];
      EXPECT_GT(n, 0u);
      for (const char* label : {"portd", "raw_relay", "raw_pingpong"})
        expect_samples(series(s, label), n, n * size);
      expect_ratios(s);
      EXPECT_EQ(s["target"]["limit"], 1.25);
      EXPECT_TRUE(positive_finite(s["target"]["value"]));
    }
  }

  void check_throughput() const {
    for (const char* name : {"oneway_s1", "oneway_s4", "oneway_s16", "oneway_set_s4"}) {
      SCOPED_TRACE(name);
      const Json& s = scenario(name);
      const uint64_t messages = s["params"]["messages"];
      const uint64_t single = s["params"]["messages_single"];
      for (const char* label : {"portd", "portd_drain", "portd_pipelined", "portd_unbatched",
                                "raw_relay_naive", "raw_relay_batched"}) {
        const Json& x = series(s, label);
        SCOPED_TRACE(x.dump());
        const uint64_t want = std::string(label) == "portd_unbatched" ? single : messages;
        EXPECT_EQ(x["messages"].get<uint64_t>(), want);
        EXPECT_EQ(x["sent"].get<uint64_t>(), want);
        EXPECT_EQ(x["received"].get<uint64_t>(), want);
        EXPECT_EQ(x["bytes_checked"].get<uint64_t>(), want * 64);
        EXPECT_TRUE(x["order_ok"].get<bool>());
        EXPECT_TRUE(positive_finite(x["rate"]));
        EXPECT_TRUE(positive_finite(x["seconds"]));
        // Messages per receive call: one at a time unbatched, at most the
        // call's limit batched, and some positive count of bytes-read calls
        // for the raw relays.
        const double per_call = x["per_receive_call"];
        const std::string l = label;
        if (l == "portd_unbatched") {
          EXPECT_EQ(per_call, 1.0);
        } else if (l == "portd" || l == "portd_pipelined") {
          EXPECT_GE(per_call, 1.0);
          EXPECT_LE(per_call, s["params"]["batch"].get<double>());
        } else if (l == "portd_drain") {
          EXPECT_GE(per_call, 1.0);
          EXPECT_LE(per_call, s["params"]["drain_batch"].get<double>());
        } else {
          EXPECT_TRUE(positive_finite(per_call));
        }
      }
      expect_ratios(s);
    }
    EXPECT_EQ(scenario("oneway_s4")["target"]["limit"], 1e6);
  }

  void check_ool() const {
    for (const auto& [name, size] : {std::pair<const char*, uint64_t>{"ool_64K", 64u << 10},
                                     std::pair<const char*, uint64_t>{"ool_1M", 1u << 20}}) {
      SCOPED_TRACE(name);
      const Json& s = scenario(name);
      const size_t transfers = s["params"]["transfers"];
      EXPECT_GT(transfers, 0u);
      for (const char* label : {"raw_memfd", "portd_move", "portd_copy", "portd_volatile"})
        expect_samples(series(s, label), transfers, transfers * size);
      expect_ratios(s);
    }
  }

  void check_scale() const {
    const Json& s = scenario("scale");
    const size_t ops = s["params"]["operations"];
    expect_samples(series(s, "portd_small"), ops, ops * 64);
    expect_samples(series(s, "portd_large"), ops, ops * 64);
    expect_ratios(s);
    EXPECT_EQ(s["memory"]["ports"], s["params"]["ports"]);
    EXPECT_EQ(s["memory"]["tasks"].get<size_t>(), s["params"]["tasks"].get<size_t>() + 1);
    EXPECT_TRUE(positive_finite(s["memory"]["daemon_rss_bytes"]));
    EXPECT_GE(s["memory"]["bytes_per_port"].get<double>(), 0.0);
    EXPECT_GE(s["memory"]["bytes_per_task"].get<double>(), 0.0);
  }

  void check_isolation() const {
    const Json& s = scenario("isolation");
    const size_t n = s["params"]["iterations"];
    expect_samples(series(s, "portd_quiet"), n, n * 64);
    expect_samples(series(s, "portd_cpu_loaded"), n, n * 64);
    expect_samples(series(s, "portd_flooded"), n, n * 64);
    expect_ratios(s);
    EXPECT_GT(s["flooder"]["operations"].get<uint64_t>(), 0u);
    EXPECT_GT(s["flooder"]["queued"].get<uint64_t>(), 0u);
  }

 private:
  const Json& report_;
};

TEST(Portbench, SmokeRunCoversEveryScenarioWithExactCounts) {
  const Outcome run = run_portbench({"--spawn", "--daemon", PORTD_BINARY, "--smoke", "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.out;
  const Json report = Json::parse(run.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << run.out;
  const SmokeReport smoke(report);
  {
    SCOPED_TRACE("scenarios");
    smoke.check_every_scenario();
  }
  {
    SCOPED_TRACE("rpc");
    smoke.check_rpc();
  }
  {
    SCOPED_TRACE("throughput");
    smoke.check_throughput();
  }
  {
    SCOPED_TRACE("out of line");
    smoke.check_ool();
  }
  {
    SCOPED_TRACE("scale");
    smoke.check_scale();
  }
  {
    SCOPED_TRACE("isolation");
    smoke.check_isolation();
  }
}

TEST(PortbenchCli, NoDaemonIsExitCode3AndBadUsageIs2) {
  EXPECT_EQ(run_portbench({"--socket", "/nonexistent/portd.sock", "--smoke"}).exit_code, 3);
  EXPECT_EQ(run_portbench({"--no-such-flag"}).exit_code, 2);
  const Outcome list = run_portbench({"--list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("isolation"), std::string::npos);
}

}  // namespace
