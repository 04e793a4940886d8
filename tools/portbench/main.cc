// portbench: measures a live portd (or one it starts) against baselines of
// our own, in the same run (docs/performance.md).
//
// Each scenario runs portd and its baseline(s) in alternating rounds, so slow
// spells of a shared machine fall on both; only ratios from one run are
// compared. Human output by default, --json for the schema in
// docs/performance.md. --smoke runs every scenario at tiny sizes (the test
// suite checks its JSON: every scenario present, counts exact).
//
// Exit codes: 0 every scenario ran; 1 a scenario failed (its "error" says
// why); 2 usage error; 3 no daemon (cannot connect, or cannot start one).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "portd/task.h"
#include "tools/portbench/bench.h"
#include "tools/portbench/raw.h"
#include "tools/portbench/runs.h"

namespace portbench {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitDaemon = 3;

// ---- sizes ---------------------------------------------------------------------

struct Plan {
  bool smoke = false;
  size_t rounds = 4;                   // alternations of portd and baseline
  size_t rpc_iters = 20000;            // round trips per series (all rounds)
  size_t oneway_total = 400000;        // messages per throughput series
  size_t oneway_single_total = 20000;  // ... one send/receive per call
  size_t batch = 64;                   // requests in flight per send_batch/receive_batch
  std::vector<size_t> ool_sizes{1u << 20, 16u << 20, 256u << 20};
  size_t ool_bytes_per_series = size_t{1} << 30;  // transfers = this / size, 3..50
  size_t scale_small = 10;
  size_t scale_ports = 10000;
  size_t scale_tasks = 1000;
  size_t scale_ops = 20000;
  size_t isolation_iters = 10000;
  size_t flood_ports = 1000;
};

Plan smoke_plan() {
  Plan p;
  p.smoke = true;
  p.rounds = 2;
  p.rpc_iters = 40;
  p.oneway_total = 192;
  p.oneway_single_total = 96;
  p.batch = 8;
  p.ool_sizes = {64u << 10, 1u << 20};
  p.ool_bytes_per_series = 2u << 20;
  p.scale_small = 4;
  p.scale_ports = 40;
  p.scale_tasks = 8;
  p.scale_ops = 40;
  p.isolation_iters = 40;
  p.flood_ports = 8;
  return p;
}

// ---- series ----------------------------------------------------------------------

// Pools the "us" (or "ms") samples of several rounds into one series.
struct Pool {
  std::vector<double> values;
  uint64_t bytes_checked = 0;
  Json error;
  void add(const Json& report, const char* key) {
    if (report.contains("error")) {
      if (error.is_null()) error = report["error"];
      return;
    }
    for (double v : report[key]) values.push_back(v);
    bytes_checked += report.value("bytes_checked", uint64_t{0});
  }
  Json series(const char* label, const char* unit, Summary* out = nullptr) {
    Summary s = summarize(values);
    if (out != nullptr) *out = s;
    Json j = to_json(s, unit);
    j["label"] = label;
    j["bytes_checked"] = bytes_checked;
    return j;
  }
};

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

Json target(const char* what, double value, const char* op, double limit) {
  const bool met = std::string(op) == "<=" ? value <= limit : value >= limit;
  return Json{{"what", what}, {"value", value}, {"op", op}, {"limit", limit}, {"met", met}};
}

// ---- scenarios ---------------------------------------------------------------------

Json rpc_scenario(const std::string& socket, const Plan& plan, size_t size) {
  Pool portd, relay, pingpong;
  const size_t per_round = std::max<size_t>(1, plan.rpc_iters / plan.rounds);
  for (size_t r = 0; r < plan.rounds; ++r) {
    relay.add(raw::relay_rtt(size, per_round), "us");
    portd.add(runs::rpc(socket, size, per_round), "us");
    pingpong.add(raw::pingpong(size, per_round), "us");
  }
  Summary p, rl, pp;
  Json j{{"name", "rpc_" + std::to_string(size)},
         {"kind", "latency"},
         {"title", "RPC round trip, " + std::to_string(size) + " B body"},
         {"params",
          {{"size", size}, {"iterations", per_round * plan.rounds}, {"rounds", plan.rounds}}}};
  j["series"] = Json::array({portd.series("portd", "us", &p), relay.series("raw_relay", "us", &rl),
                             pingpong.series("raw_pingpong", "us", &pp)});
  j["ratios"] = {{"portd/raw_relay", ratio(p.median, rl.median)},
                 {"portd/raw_pingpong", ratio(p.median, pp.median)}};
  j["target"] = target("median ratio to raw_relay", ratio(p.median, rl.median), "<=", 1.25);
  for (Pool* x : {&portd, &relay, &pingpong})
    if (!x->error.is_null()) j["error"] = x->error;
  return j;
}

Json throughput_series(const char* label, const Json& r) {
  const double seconds = r.value("seconds", 0.0);
  const uint64_t received = r.value("received", uint64_t{0});
  const uint64_t calls = r.value("receive_calls", uint64_t{0});
  Json j{{"label", label},
         {"unit", "msg/s"},
         {"rate", seconds > 0 ? double(received) / seconds : 0.0},
         {"seconds", seconds},
         {"messages", r.value("messages", uint64_t{0})},
         {"sent", r.value("sent", uint64_t{0})},
         {"received", received},
         {"bytes_checked", r.value("bytes_checked", uint64_t{0})},
         // Messages per receive call: the unpinned rate follows it (each
         // call is a wake-up of the daemon and of the receiver).
         {"per_receive_call", calls > 0 ? double(received) / double(calls) : 0.0},
         {"order_ok", r.value("order_ok", false)}};
  return j;
}

Json oneway_scenario(const std::string& socket, const Plan& plan, size_t senders, bool set) {
  const size_t size = 64;
  const size_t per_sender = std::max<size_t>(1, plan.oneway_total / senders);
  const size_t per_sender_single = std::max<size_t>(1, plan.oneway_single_total / senders);
  // Rounds alternate; each series keeps its best round (the machine is
  // shared: the best round is the least disturbed one).
  Json best_portd, best_drain, best_pipelined, best_single, best_naive, best_batched;
  Json error;
  const auto keep = [&](Json& best, Json r) {
    if (r.contains("error")) {
      if (error.is_null()) error = r["error"];
      return;
    }
    const auto rate = [](const Json& x) {
      const double s = x.value("seconds", 0.0);
      return s > 0 ? x.value("received", 0.0) / s : 0.0;
    };
    if (best.is_null() || rate(r) > rate(best)) best = std::move(r);
  };
  const size_t rounds = std::max<size_t>(1, plan.rounds / 2);
  for (size_t r = 0; r < rounds; ++r) {
    keep(best_batched, raw::relay_throughput(senders, per_sender, size, true));
    keep(best_portd, runs::oneway(socket, senders, per_sender, size, set, plan.batch));
    keep(best_naive, raw::relay_throughput(senders, per_sender, size, false));
    keep(best_pipelined, runs::oneway(socket, senders, per_sender, size, set, plan.batch, true));
    keep(best_single, runs::oneway(socket, senders, per_sender_single, size, set, 1));
    keep(best_drain, runs::oneway(socket, senders, per_sender, size, set, plan.batch, false,
                                  portd::kQueueLimitMax));
  }
  const std::string name = std::string(set ? "oneway_set_s" : "oneway_s") + std::to_string(senders);
  Json j{{"name", name},
         {"kind", "throughput"},
         {"title", std::to_string(senders) + " sender(s), 64 B messages, into one " +
                       (set ? "port set" : "port")},
         {"params",
          {{"size", size},
           {"senders", senders},
           {"port_set", set},
           {"batch", plan.batch},
           {"drain_batch", portd::kQueueLimitMax},
           {"messages", per_sender * senders},
           {"messages_single", per_sender_single * senders},
           {"rounds", rounds}}}};
  if (!error.is_null()) {
    j["error"] = error;
    j["series"] = Json::array();
    return j;
  }
  Json portd = throughput_series("portd", best_portd);
  Json pipelined = throughput_series("portd_pipelined", best_pipelined);
  Json single = throughput_series("portd_unbatched", best_single);
  Json drain = throughput_series("portd_drain", best_drain);
  Json naive = throughput_series("raw_relay_naive", best_naive);
  Json batched = throughput_series("raw_relay_batched", best_batched);
  j["series"] = Json::array({portd, drain, pipelined, single, naive, batched});
  const double rate = portd["rate"];
  j["ratios"] = {{"portd/raw_relay_naive", ratio(rate, naive["rate"])},
                 {"portd/raw_relay_batched", ratio(rate, batched["rate"])},
                 {"portd/portd_pipelined", ratio(rate, pipelined["rate"])},
                 {"portd_drain/portd", ratio(drain["rate"], rate)},
                 {"portd_pipelined/raw_relay_naive", ratio(pipelined["rate"], naive["rate"])},
                 {"portd_unbatched/raw_relay_naive", ratio(single["rate"], naive["rate"])}};
  if (senders == 4 && !set) j["target"] = target("portd messages per second", rate, ">=", 1e6);
  return j;
}

std::string size_name(size_t size) {
  if (size >= (1u << 20) && size % (1u << 20) == 0) return std::to_string(size >> 20) + "M";
  return std::to_string(size >> 10) + "K";
}

Json ool_scenario(const std::string& socket, const Plan& plan, size_t size) {
  const size_t transfers =
      std::clamp<size_t>(plan.ool_bytes_per_series / size, plan.smoke ? 2 : 3, 50);
  Pool raw_fd, copy, move, vol;
  const size_t rounds = std::min(plan.rounds, transfers);
  const size_t per_round = std::max<size_t>(1, transfers / rounds);
  for (size_t r = 0; r < rounds; ++r) {
    raw_fd.add(raw::memfd_transfer(size, per_round), "ms");
    move.add(runs::ool(socket, "move", size, per_round), "ms");
    copy.add(runs::ool(socket, "copy", size, per_round), "ms");
    vol.add(runs::ool(socket, "volatile", size, per_round), "ms");
  }
  Summary b, c, m, v;
  Json j{{"name", "ool_" + size_name(size)},
         {"kind", "transfer"},
         {"title", "out-of-line transfer of " + size_name(size) + "iB, receiver reads every page"},
         {"params", {{"size", size}, {"transfers", per_round * rounds}, {"rounds", rounds}}}};
  j["series"] =
      Json::array({raw_fd.series("raw_memfd", "ms", &b), move.series("portd_move", "ms", &m),
                   copy.series("portd_copy", "ms", &c), vol.series("portd_volatile", "ms", &v)});
  const auto gbps = [&](const Summary& s) {
    return s.median > 0 ? double(size) / (s.median * 1e6) : 0;
  };
  j["throughput_gb_per_s"] = {{"raw_memfd", gbps(b)},
                              {"portd_move", gbps(m)},
                              {"portd_copy", gbps(c)},
                              {"portd_volatile", gbps(v)}};
  j["ratios"] = {{"portd_move/raw_memfd", ratio(m.median, b.median)},
                 {"portd_copy/raw_memfd", ratio(c.median, b.median)},
                 {"portd_volatile/raw_memfd", ratio(v.median, b.median)}};
  if (size == (256u << 20))
    j["target"] = target("move median ratio to raw_memfd", ratio(m.median, b.median), "<=", 1.2);
  for (Pool* x : {&raw_fd, &copy, &move, &vol})
    if (!x->error.is_null()) j["error"] = x->error;
  return j;
}

Json scale_scenario(const std::string& socket, const Plan& plan) {
  Json r = runs::scale(socket, plan.scale_small, plan.scale_ports, plan.scale_tasks, plan.scale_ops,
                       std::max<size_t>(1, plan.rounds));
  Json j{{"name", "scale"},
         {"kind", "scale"},
         {"title", "send + receive on a random port: " + std::to_string(plan.scale_small) +
                       " ports vs " + std::to_string(plan.scale_ports) + " ports and " +
                       std::to_string(plan.scale_tasks) + " more tasks"},
         {"params",
          {{"small_ports", plan.scale_small},
           {"ports", plan.scale_ports},
           {"tasks", plan.scale_tasks},
           {"operations", std::max<size_t>(1, plan.scale_ops / std::max<size_t>(1, plan.rounds)) *
                              std::max<size_t>(1, plan.rounds)},
           {"rounds", std::max<size_t>(1, plan.rounds)}}}};
  if (r.contains("error")) {
    j["error"] = r["error"];
    j["series"] = Json::array();
    return j;
  }
  Pool small, large;
  small.add(r["small"], "us");
  large.add(r["large"], "us");
  Summary s, l;
  j["series"] =
      Json::array({small.series("portd_small", "us", &s), large.series("portd_large", "us", &l)});
  j["ratios"] = {{"portd_large/portd_small", ratio(l.median, s.median)}};
  j["memory"] = {{"daemon_rss_bytes", r["daemon_rss_bytes"]},
                 {"bytes_per_port", r["bytes_per_port"]},
                 {"bytes_per_task", r["bytes_per_task"]},
                 {"ports", r["ports"]},
                 {"tasks", r["tasks"]}};
  j["target"] =
      target("median per-operation ratio, large to small", ratio(l.median, s.median), "<=", 1.2);
  return j;
}

Json isolation_scenario(const std::string& socket, const Plan& plan) {
  // The three series alternate over the rounds (each round: quiet, beside
  // the burner, beside the flooder), so that a change in the machine's
  // load lands on all three alike.
  const size_t per_round = std::max<size_t>(1, plan.isolation_iters / plan.rounds);
  Json j{{"name", "isolation"},
         {"kind", "isolation"},
         {"title",
          "64 B RPC round trip: quiet, beside two CPU-burning threads, beside a "
          "flooding client"},
         {"params",
          {{"iterations", per_round * plan.rounds},
           {"rounds", plan.rounds},
           {"flood_ports", plan.flood_ports},
           {"noise_cpu", runs::noise_cpu()}}}};
  Pool quiet, loaded, flooded;
  Json flooder{{"queued", uint64_t{0}}, {"operations", uint64_t{0}}};
  for (size_t round = 0; round < plan.rounds; ++round) {
    Json r = runs::isolation(socket, per_round, plan.flood_ports);
    if (r.contains("error")) {
      j["error"] = r["error"];
      j["series"] = Json::array();
      return j;
    }
    quiet.add(r["quiet"], "us");
    loaded.add(r["cpu_loaded"], "us");
    flooded.add(r["flooded"], "us");
    flooder["queued"] = r["flooder"].value("queued", uint64_t{0});
    flooder["operations"] =
        flooder["operations"].get<uint64_t>() + r["flooder"].value("operations", uint64_t{0});
  }
  Summary q, l, f;
  j["series"] = Json::array({quiet.series("portd_quiet", "us", &q),
                             loaded.series("portd_cpu_loaded", "us", &l),
                             flooded.series("portd_flooded", "us", &f)});
  j["flooder"] = flooder;
  j["ratios"] = {{"portd_flooded/portd_quiet", ratio(f.median, q.median)},
                 {"portd_cpu_loaded/portd_quiet", ratio(l.median, q.median)},
                 {"portd_flooded/portd_cpu_loaded", ratio(f.median, l.median)}};
  j["target"] = target("median ratio, flooded to quiet", ratio(f.median, q.median), "<=", 2.0);
  return j;
}

// ---- the daemon ----------------------------------------------------------------------

struct Daemon {
  pid_t pid = -1;
  std::string dir;
  std::string socket;
};

std::string default_daemon_binary() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const auto& candidate :
         {self.parent_path() / "portd", self.parent_path().parent_path() / "daemon" / "portd"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "portd";  // from $PATH
}

bool can_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool spawn_daemon(const std::string& binary, const std::vector<std::string>& extra, Daemon* d) {
  char tmpl[] = "/tmp/portbench.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return false;
  d->dir = tmpl;
  d->socket = d->dir + "/portd.sock";
  const std::string log = d->dir + "/portd.log";
  std::vector<std::string> args{binary,      "--socket",    d->socket, "--config",
                                "/dev/null", "--log-level", "warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::fflush(nullptr);
  d->pid = ::fork();
  if (d->pid < 0) return false;
  if (d->pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) ::dup2(fd, 2);
    ::setpgid(0, 0);  // a terminal's ^C goes to portbench, which stops it
    apply_pin();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "portbench: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  for (int i = 0; i < 1000; ++i) {
    if (can_connect(d->socket)) return true;
    int status;
    if (::waitpid(d->pid, &status, WNOHANG) == d->pid) {
      d->pid = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void stop_daemon(Daemon& d) {
  if (d.pid > 0) {
    ::kill(d.pid, SIGTERM);
    int status;
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {
      gone = ::waitpid(d.pid, &status, WNOHANG) == d.pid;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!gone) {
      ::kill(d.pid, SIGKILL);
      ::waitpid(d.pid, &status, 0);
    }
    d.pid = -1;
  }
  if (!d.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(d.dir, ec);
  }
}

Daemon* g_daemon = nullptr;

void on_signal(int signo) {
  if (g_daemon != nullptr && g_daemon->pid > 0) ::kill(g_daemon->pid, SIGTERM);
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

// ---- output ------------------------------------------------------------------------------

void print_human(const Json& report) {
  std::printf("portbench: %s mode, %s, %u cpus, daemon pid %d at %s\n",
              report["mode"].get<std::string>().c_str(),
              report["started"].get<std::string>().c_str(), report["cpus"].get<unsigned>(),
              report["daemon"]["pid"].get<int>(),
              report["daemon"]["socket"].get<std::string>().c_str());
  for (const auto& s : report["scenarios"]) {
    std::printf("\n%-18s %s\n", s["name"].get<std::string>().c_str(),
                s["title"].get<std::string>().c_str());
    if (s.contains("error")) std::printf("  ERROR: %s\n", s["error"].dump().c_str());
    for (const auto& x : s["series"]) {
      const std::string label = x["label"];
      const std::string unit = x["unit"];
      if (unit == "msg/s") {
        std::printf("  %-20s %12.0f msg/s  (%llu messages in %.3f s, %.1f per receive call%s)\n",
                    label.c_str(), x["rate"].get<double>(),
                    (unsigned long long)x["received"].get<uint64_t>(), x["seconds"].get<double>(),
                    x["per_receive_call"].get<double>(),
                    x["order_ok"].get<bool>() ? "" : ", ORDER WRONG");
      } else {
        std::printf("  %-20s median %9.2f %s   p90 %9.2f   p99 %9.2f   (%zu samples)\n",
                    label.c_str(), x["median"].get<double>(), unit.c_str(), x["p90"].get<double>(),
                    x["p99"].get<double>(), x["samples"].get<size_t>());
      }
    }
    if (s.contains("throughput_gb_per_s"))
      for (const auto& [k, v] : s["throughput_gb_per_s"].items())
        std::printf("  %-20s %9.2f GB/s\n", k.c_str(), v.get<double>());
    if (s.contains("memory"))
      std::printf("  daemon memory: %.0f bytes per port, %.0f bytes per task (VmRSS %.1f MiB)\n",
                  s["memory"]["bytes_per_port"].get<double>(),
                  s["memory"]["bytes_per_task"].get<double>(),
                  s["memory"]["daemon_rss_bytes"].get<double>() / (1 << 20));
    if (s.contains("ratios"))
      for (const auto& [k, v] : s["ratios"].items())
        std::printf("  ratio %-34s %8.3f\n", k.c_str(), v.get<double>());
    if (s.contains("target")) {
      const auto& t = s["target"];
      std::printf("  target: %s %s %g: %.3f, %s\n", t["what"].get<std::string>().c_str(),
                  t["op"].get<std::string>().c_str(), t["limit"].get<double>(),
                  t["value"].get<double>(), t["met"].get<bool>() ? "met" : "NOT met");
    }
  }
}

std::string utc_now() {
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace
}  // namespace portbench

int main(int argc, char** argv) {
  using namespace portbench;
  CLI::App app{
      "portbench: measures portd against raw-socket baselines in the same run "
      "(docs/performance.md).\nPrints medians and percentiles (or rates) per scenario, each as a "
      "ratio to its baseline."};
  std::string socket;
  bool spawn = false;
  std::string daemon_binary;
  std::vector<std::string> daemon_args;
  bool json = false;
  bool smoke = false;
  std::string only;
  bool list = false;
  Plan plan;
  size_t rounds = 0;
  int cpu = -1;
  app.add_option("--socket", socket,
                 "The daemon's socket (default: $PORTD_SOCKET, then $XDG_RUNTIME_DIR/portd.sock, "
                 "then /run/portd/portd.sock)");
  app.add_flag("--spawn", spawn,
               "Start a portd of our own on a temporary socket, and stop it after");
  app.add_option("--daemon", daemon_binary,
                 "The portd binary --spawn runs (default: beside portbench, then $PATH)");
  app.add_option("--daemon-arg", daemon_args,
                 "An extra argument for the spawned portd (repeatable)");
  app.add_flag("--json", json, "Print the report as JSON (schema: docs/performance.md)");
  app.add_flag("--smoke", smoke, "Every scenario at tiny sizes: checks that all run, not how fast");
  app.add_option("--only", only, "Run only the scenarios whose name matches this regex");
  app.add_flag("--list", list, "List the scenarios and exit");
  app.add_option("--cpu", cpu,
                 "Run every role (and a spawned daemon) on this CPU only: no cross-core wake-ups, "
                 "the same placement for portd and its baselines");
  app.add_option("--rounds", rounds, "Alternations of portd and its baselines per scenario");
  app.add_option("--rpc-iterations", plan.rpc_iters, "Round trips per RPC series");
  app.add_option("--messages", plan.oneway_total, "Messages per throughput series");
  app.add_option("--batch", plan.batch, "Requests in flight per send_batch/receive_batch call");
  app.add_option("--scale-ports", plan.scale_ports, "Ports in the scale run");
  app.add_option("--scale-tasks", plan.scale_tasks, "Extra connected tasks in the scale run");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (smoke) {
    Plan s = smoke_plan();
    plan = s;
  }
  if (rounds > 0) plan.rounds = rounds;
  set_pin_cpu(cpu);
  plan.batch = std::max<size_t>(1, plan.batch);

  // name -> how to run it
  std::vector<std::pair<std::string, std::function<Json(const std::string&)>>> scenarios;
  for (size_t size : {size_t{64}, size_t{4096}})
    scenarios.emplace_back("rpc_" + std::to_string(size),
                           [&, size](const std::string& s) { return rpc_scenario(s, plan, size); });
  for (size_t n : {size_t{1}, size_t{4}, size_t{16}})
    scenarios.emplace_back("oneway_s" + std::to_string(n), [&, n](const std::string& s) {
      return oneway_scenario(s, plan, n, false);
    });
  scenarios.emplace_back("oneway_set_s4",
                         [&](const std::string& s) { return oneway_scenario(s, plan, 4, true); });
  for (size_t size : plan.ool_sizes)
    scenarios.emplace_back("ool_" + size_name(size),
                           [&, size](const std::string& s) { return ool_scenario(s, plan, size); });
  scenarios.emplace_back("scale", [&](const std::string& s) { return scale_scenario(s, plan); });
  scenarios.emplace_back("isolation",
                         [&](const std::string& s) { return isolation_scenario(s, plan); });
  if (list) {
    for (const auto& [name, run] : scenarios) std::printf("%s\n", name.c_str());
    return kExitOk;
  }
  std::regex filter;
  try {
    filter = std::regex(only.empty() ? ".*" : only);
  } catch (const std::regex_error& e) {
    std::fprintf(stderr, "portbench: --only: %s\n", e.what());
    return kExitUsage;
  }

  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  Daemon daemon;
  if (spawn) {
    g_daemon = &daemon;
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);
    if (!spawn_daemon(daemon_binary.empty() ? default_daemon_binary() : daemon_binary, daemon_args,
                      &daemon)) {
      std::fprintf(stderr, "portbench: could not start portd (see its log in %s)\n",
                   daemon.dir.c_str());
      stop_daemon(daemon);
      return kExitDaemon;
    }
    socket = daemon.socket;
  } else {
    socket = portd::resolve_socket_path(socket);
    if (!can_connect(socket)) {
      std::fprintf(stderr, "portbench: no portd at %s (start one, or use --spawn)\n",
                   socket.c_str());
      return kExitDaemon;
    }
  }

  // The daemon's pid, from a short-lived helper's connection (the main
  // process keeps no Task: helpers are forked from it).
  Helper probe = spawn_helper([&]() -> Json {
    portd::ConnectOptions options;
    options.socket_path = socket;
    auto task = portd::Task::connect(options);
    if (!task) return Json{{"error", std::string(portd::status_name(task.status()))}};
    return Json{{"pid", (*task)->daemon_pid()}, {"version", (*task)->protocol_version()}};
  });
  Json info = collect(probe);
  if (info.contains("error")) {
    std::fprintf(stderr, "portbench: cannot connect to %s: %s\n", socket.c_str(),
                 info["error"].dump().c_str());
    stop_daemon(daemon);
    return kExitDaemon;
  }

  Json report{{"schema", "portbench/1"},
              {"mode", plan.smoke ? "smoke" : "full"},
              {"started", utc_now()},
              {"cpus", std::thread::hardware_concurrency()},
              {"daemon",
               {{"socket", socket},
                {"spawned", spawn},
                {"pid", info["pid"]},
                {"protocol_version", info["version"]}}},
              {"cpu", cpu}};
  report["scenarios"] = Json::array();
  int failed = 0;
  for (const auto& [name, run] : scenarios) {
    if (!std::regex_search(name, filter)) continue;
    if (!json) std::fprintf(stderr, "portbench: running %s...\n", name.c_str());
    Json s = run(socket);
    if (s.contains("error")) ++failed;
    report["scenarios"].push_back(std::move(s));
  }
  report["finished"] = utc_now();
  report["failed"] = failed;
  stop_daemon(daemon);
  if (json) {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    print_human(report);
  }
  return failed == 0 ? kExitOk : kExitFailed;
}
