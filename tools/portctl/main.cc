// portctl: look inside a running portd (DESIGN section 7; docs/portctl.md).
//
// It connects like any client (libportd, the same socket resolution) and asks
// the daemon's introspection requests, which change nothing. Human tables by
// default, --json for scripts (the schema is docs/portctl.md's).
//
// Exit codes: 0 success; 1 the daemon refused or does not know what was
// asked (no such port or task, or not visible to this uid), or went away;
// 2 usage error; 3 cannot connect to the daemon.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "portd/introspect.h"
#include "portd/task.h"
#include "tools/portctl/top.h"
#include "tools/portctl/views.h"

namespace {

using portctl::Json;
using portd::IntrospectWhat;
using portd::Status;

constexpr int kExitOk = 0;
constexpr int kExitDaemon = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnect = 3;

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// SIGINT and SIGTERM end monitor and top cleanly: the handler only sets a
// flag, and without SA_RESTART a sleep or a poll returns early.
void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct Options {
  std::string socket;
  bool json = false;
  bool no_legend = false;
};

// A failure already explained on stderr, with its exit code.
struct Failure {
  int code;
};

// Writes all of `text` to stdout; false once the reader has gone (EPIPE).
bool emit(const std::string& text) {
  if (text.empty()) return true;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) return false;
  return std::fflush(stdout) == 0;
}

[[noreturn]] void fail(const std::string& what, Status status, const std::string& detail,
                       uint32_t uid) {
  std::string why;
  std::string more = detail;
  if (status == Status::kNotFound) {
    why = "not found, or not visible to uid " + std::to_string(uid);
  } else if (status == Status::kNotSupported) {
    why = "the daemon does not support this request";
  } else if (status == Status::kInvalidTask) {
    why = "the connection to portd was lost";
    // libportd's detail says that again before saying why.
    const std::string said = "not connected to portd: ";
    if (more.rfind(said, 0) == 0) more.erase(0, said.size());
  } else {
    why = std::string(portd::status_name(status)) + " (" +
          std::string(portd::status_description(status)) + ")";
  }
  if (!more.empty()) why += " (" + more + ")";
  std::fprintf(stderr, "portctl: %s: %s\n", what.c_str(), why.c_str());
  throw Failure{kExitDaemon};
}

class Session {
 public:
  explicit Session(const Options& o) : options_(o) {
    auto task = portd::Task::connect(portd::ConnectOptions{o.socket, "portctl"});
    if (!task) {
      std::fprintf(stderr, "portctl: cannot connect to portd at %s: %s%s%s\n",
                   portd::resolve_socket_path(o.socket).c_str(),
                   std::string(portd::status_name(task.status())).c_str(),
                   task.detail().empty() ? "" : ": ", task.detail().c_str());
      throw Failure{kExitConnect};
    }
    introspection_ = std::make_unique<portd::Introspection>(std::move(*task));
  }

  portd::Introspection& in() { return *introspection_; }
  const Options& options() const { return options_; }
  portctl::ViewOptions view() const { return portctl::ViewOptions{!options_.no_legend}; }

  Json fetch(const std::string& what, IntrospectWhat kind, uint64_t target = 0, uint32_t pid = 0) {
    portd::IntrospectQuery q;
    q.what = kind;
    q.target = target;
    q.pid = pid;
    auto r = introspection_->fetch(q);
    if (!r) fail(what, r.status(), r.detail(), ::getuid());
    try {
      return Json::parse(*r);
    } catch (const Json::exception& e) {
      std::fprintf(stderr, "portctl: %s: malformed answer from the daemon: %s\n", what.c_str(),
                   e.what());
      throw Failure{kExitDaemon};
    }
  }

  // The JSON document, or its human view.
  int print(const Json& j, const std::string& human) {
    emit(options_.json ? j.dump(2) + "\n" : human);
    return kExitOk;
  }

 private:
  Options options_;
  std::unique_ptr<portd::Introspection> introspection_;
};

// Sleeps `ms`, or less if a stop signal comes.
void nap(int64_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!g_stop) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    ::nanosleep(&ts, nullptr);
  }
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// ---------------------------------------------------------------------------
// Subcommands

int run_rights(Session& s, uint64_t task_id, uint32_t pid) {
  std::vector<uint64_t> ids;
  if (pid != 0) {
    const Json tasks =
        s.fetch("tasks of pid " + std::to_string(pid), IntrospectWhat::kTasks, 0, pid);
    for (const auto& t : tasks) ids.push_back(t.at("task").get<uint64_t>());
    if (ids.empty()) fail("pid " + std::to_string(pid), Status::kNotFound, "no task", ::getuid());
  } else {
    ids.push_back(task_id);
  }
  Json spaces = Json::array();
  for (uint64_t id : ids) {
    const std::string what = "task " + std::to_string(id);
    const Json tasks = s.fetch(what, IntrospectWhat::kTasks, id);
    if (tasks.empty()) fail(what, Status::kNotFound, "", ::getuid());
    const Json& t = tasks.at(0);
    Json names = s.fetch(what, IntrospectWhat::kRights, id);
    spaces.push_back(Json{{"task", Json{{"task", t.at("task")},
                                        {"pid", t.at("pid")},
                                        {"uid", t.at("uid")},
                                        {"gid", t.at("gid")},
                                        {"command", t.at("command")}}},
                          {"names", std::move(names)}});
  }
  return s.print(spaces, portctl::rights_view(spaces, s.view()));
}

int run_monitor(Session& s, const std::string& target, uint64_t task, uint64_t count,
                uint32_t buffer) {
  portd::MonitorFilter filter;
  if (all_digits(target)) {
    filter.port = std::stoull(target);
  } else {
    filter.name = target;
  }
  filter.task = task;
  filter.buffer = buffer;
  const Status st = s.in().monitor_start(filter);
  if (!ok(st)) {
    const std::string what = !filter.name.empty() ? "name " + filter.name
                             : filter.port != 0   ? "port " + std::to_string(filter.port)
                                                  : "task " + std::to_string(task);
    if (st == Status::kBootstrapUnknownService) fail(what, Status::kNotFound, "", ::getuid());
    fail(what, st, "", ::getuid());
  }
  catch_stop_signals();
  if (!s.options().json && !s.options().no_legend && !emit(portctl::monitor_header()))
    return kExitOk;
  uint64_t seen = 0;
  while (!g_stop && (count == 0 || seen < count)) {
    const uint32_t max =
        count == 0 ? 0 : static_cast<uint32_t>(std::min<uint64_t>(count - seen, 4096));
    auto events = s.in().monitor_poll(std::chrono::milliseconds(200), max);
    if (!events) {
      if (g_stop) break;
      fail("monitor", events.status(), events.detail(), ::getuid());
    }
    std::string out;
    for (const auto& text : *events) {
      Json e;
      try {
        e = Json::parse(text);
      } catch (const Json::exception& ex) {
        std::fprintf(stderr, "portctl: monitor: malformed event from the daemon: %s\n", ex.what());
        return kExitDaemon;
      }
      const bool lost = e.value("event", "") == "lost";
      out += s.options().json ? text + "\n" : portctl::monitor_line(e);
      if (!lost && count != 0 && ++seen >= count) break;
    }
    if (!emit(out)) break;  // the reader went away: stop quietly
  }
  (void)s.in().monitor_stop();
  return kExitOk;
}

int run_top(Session& s, uint64_t iterations, int64_t interval_ms, size_t rows) {
  catch_stop_signals();
  const bool interactive = !s.options().json && iterations == 0 && ::isatty(STDOUT_FILENO);
  Json before = s.fetch("ports", IntrospectWhat::kPorts);
  auto taken = std::chrono::steady_clock::now();
  for (uint64_t i = 0; (iterations == 0 || i < iterations) && !g_stop; ++i) {
    nap(interval_ms);
    if (g_stop) break;
    Json after = s.fetch("ports", IntrospectWhat::kPorts);
    const auto now = std::chrono::steady_clock::now();
    const int64_t elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - taken).count();
    taken = now;
    const Json frame = portctl::top_frame(before, after, elapsed, unix_ms_now(), rows);
    std::string out;
    if (s.options().json) {
      out = frame.dump() + "\n";
    } else {
      if (interactive)
        out = "\x1b[H\x1b[2J";
      else if (i > 0)
        out = "\n";
      out += portctl::top_view(frame, s.view());
    }
    if (!emit(out)) break;
    before = std::move(after);
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"portctl: look inside a running portd (ports, rights, tasks, traffic)"};
  app.footer(
      "Exit status: 0 success; 1 not found (or not visible to this uid), refused, or the\n"
      "connection was lost; 2 usage; 3 cannot connect to portd.\n"
      "Root and the daemon's uid see every task; other users see their own.\n"
      "JSON schemas and access rules: portctl.md (docs/ in the source, share/doc/portd\n"
      "once installed).");
  app.require_subcommand(1);
  app.fallthrough();
  Options o;
  app.add_option("--socket", o.socket,
                 "Daemon socket (default: $PORTD_SOCKET, $XDG_RUNTIME_DIR/portd.sock, "
                 "/run/portd/portd.sock)");
  app.add_flag("--json", o.json, "Print JSON (schema: docs/portctl.md)");
  app.add_flag("--no-legend", o.no_legend, "Print no headers or footers");

  auto* status = app.add_subcommand("status", "Daemon version, uptime, counts and counters");
  uint32_t tasks_pid = 0;
  bool quota = false;
  auto* tasks = app.add_subcommand("tasks", "Tasks: names held, queued messages, quota use");
  tasks->add_option("--pid", tasks_pid, "Only the tasks of this process");
  tasks->add_flag("--quota", quota, "One row per quota: use against the task and uid limits");
  auto* ports = app.add_subcommand("ports", "Active ports");
  uint64_t port_id = 0;
  auto* port = app.add_subcommand("port", "One port in detail");
  port->add_option("ID", port_id, "Port id")->required();
  uint64_t rights_task = 0;
  uint32_t rights_pid = 0;
  auto* rights = app.add_subcommand("rights", "A task's name space, as lsmp shows it");
  auto* rights_task_opt = rights->add_option("TASK", rights_task, "Task id");
  auto* rights_pid_opt = rights->add_option("--pid", rights_pid, "The tasks of this process");
  rights_task_opt->excludes(rights_pid_opt);
  rights->require_option(1);
  auto* sets = app.add_subcommand("sets", "Port sets and their members");
  auto* names = app.add_subcommand("names", "The bootstrap registry");
  auto* uids = app.add_subcommand("uids", "Per-uid quota use against the per-uid limits");
  std::string monitor_target;
  uint64_t monitor_task = 0, monitor_count = 0;
  uint32_t monitor_buffer = 0;
  auto* monitor = app.add_subcommand("monitor", "Live message events (Ctrl-C stops)");
  monitor->add_option("TARGET", monitor_target, "A port id or a bootstrap name");
  monitor->add_option("--task", monitor_task, "Only messages sent by this task or to its ports");
  monitor->add_option("--count", monitor_count, "Stop after this many events");
  monitor->add_option("--buffer", monitor_buffer, "Events the daemon keeps between polls")
      ->check(CLI::Range(1u, 65536u));
  uint64_t top_iterations = 0;
  int64_t top_interval = 1000;
  size_t top_rows = 20;
  auto* top = app.add_subcommand("top", "The busiest ports, refreshed (Ctrl-C stops)");
  top->add_option("--iterations", top_iterations, "Stop after this many refreshes (0: never)");
  top->add_option("--interval", top_interval, "Milliseconds between refreshes")
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  top->add_option("--rows", top_rows, "Ports shown")->check(CLI::Range(size_t{1}, size_t{100000}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  try {
    Session s(o);
    const auto view = s.view();
    if (*status) {
      const Json j = s.fetch("status", IntrospectWhat::kStatus);
      return s.print(j, portctl::status_view(j, view));
    }
    if (*tasks) {
      const Json j = s.fetch("tasks", IntrospectWhat::kTasks, 0, tasks_pid);
      // As with `rights --pid` (and `ps -p`): a pid with no visible task is
      // not found, not an empty success.
      if (tasks_pid != 0 && j.empty()) {
        fail("pid " + std::to_string(tasks_pid), Status::kNotFound, "no task", ::getuid());
      }
      return s.print(j, quota ? portctl::quota_view(j, view) : portctl::tasks_view(j, view));
    }
    if (*ports) {
      const Json j = s.fetch("ports", IntrospectWhat::kPorts);
      return s.print(j, portctl::ports_view(j, view));
    }
    if (*port) {
      const Json j = s.fetch("port " + std::to_string(port_id), IntrospectWhat::kPort, port_id);
      return s.print(j, portctl::port_view(j, view));
    }
    if (*rights) return run_rights(s, rights_task, rights_pid);
    if (*sets) {
      const Json j = s.fetch("sets", IntrospectWhat::kSets);
      return s.print(j, portctl::sets_view(j, view));
    }
    if (*names) {
      const Json j = s.fetch("names", IntrospectWhat::kNames);
      return s.print(j, portctl::names_view(j, view));
    }
    if (*uids) {
      const Json j = s.fetch("uids", IntrospectWhat::kUids);
      return s.print(j, portctl::uids_view(j, view));
    }
    if (*monitor)
      return run_monitor(s, monitor_target, monitor_task, monitor_count, monitor_buffer);
    if (*top) return run_top(s, top_iterations, top_interval, top_rows);
  } catch (const Failure& f) {
    return f.code;
  } catch (const Json::exception& e) {
    std::fprintf(stderr, "portctl: unexpected answer from the daemon: %s\n", e.what());
    return kExitDaemon;
  }
  return kExitUsage;
}
