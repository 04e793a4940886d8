// portd as a service: socket activation the way systemd does it, readiness
// and status notifications, SIGHUP reload, SIGTERM with clients connected,
// invalid configuration, journald-style logging. The real daemon binary,
// real sockets.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/service/config.h"
#include "portd/status.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kRightReceive = 1;
constexpr uint32_t kRightPortSet = 3;

int32_t code(Status s) { return static_cast<int32_t>(s); }

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/portd-service-XXXXXX";
    if (::mkdtemp(templ) != nullptr) path_ = templ;
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& text) {
  // Replaced whole (rename), as an editor or a package manager would.
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << text;
  ASSERT_EQ(::rename(tmp.c_str(), path.c_str()), 0);
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  return addr;
}

// A listening socket made the way systemd's socket unit makes it.
proto::UniqueFd listening_socket(const std::string& path) {
  proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = unix_address(path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd.get(), 16) != 0)
    return {};
  return fd;
}

// The service manager's end of $NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const sockaddr_un addr = unix_address(path_);
    bound_ = ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool bound() const { return bound_; }
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }

  // The next datagram, or nullopt after `timeout_ms`.
  std::optional<std::string> next(int timeout_ms = 5000) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }
  // Skips datagrams until one starts with `prefix`.
  std::optional<std::string> next_starting(const std::string& prefix, int timeout_ms = 5000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      auto m = next(static_cast<int>(left));
      if (!m) return std::nullopt;
      if (m->rfind(prefix, 0) == 0) return m;
    }
  }

 private:
  std::string path_;
  proto::UniqueFd fd_;
  bool bound_ = false;
};

// Allocates a receive right (or a port set); the reply's status and limit.
struct Allocation {
  int32_t status = -1;
  uint32_t name = 0;
  std::string limit;
};
Allocation allocate(RawClient& c, uint64_t id, uint32_t right = kRightReceive) {
  Allocation a;
  EXPECT_TRUE(c.request(id, [&](auto r) { r.initAllocate().setRight(right); }));
  EXPECT_TRUE(c.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), id);
    a.status = reply.getStatus();
    a.limit = reply.getLimit();
    if (reply.which() == wire::Reply::NAME) a.name = reply.getName();
  }));
  return a;
}

// Sends a message to `port` (making a send right) and receives it back.
void round_trip(RawClient& c, uint64_t id, uint32_t port) {
  ASSERT_TRUE(c.request(id, [&](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(port);
    m.setRemoteDisposition(20);  // MAKE_SEND
    m.setId(7);
  }));
  ASSERT_TRUE(c.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), id);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
  }));
  ASSERT_TRUE(c.request(id + 1, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(0);
  }));
  ASSERT_TRUE(c.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), id + 1);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    ASSERT_EQ(reply.which(), wire::Reply::MESSAGE);
    EXPECT_EQ(reply.getMessage().getId(), 7);
  }));
}

// Sends `port` a message carrying `count` send rights to itself (MAKE_SEND
// descriptors); the reply's status and limit.
std::pair<int32_t, std::string> send_descriptors(RawClient& c, uint64_t id, uint32_t port,
                                                 unsigned count) {
  EXPECT_TRUE(c.request(id, [&](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(port);
    m.setRemoteDisposition(20);  // MAKE_SEND
    auto d = m.initDescriptors(count);
    for (unsigned i = 0; i < count; ++i) {
      auto p = d[i].initPort();
      p.setName(port);
      p.setDisposition(20);
    }
  }));
  std::pair<int32_t, std::string> out{-1, ""};
  EXPECT_TRUE(c.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), id);
    out = {reply.getStatus(), reply.getLimit()};
  }));
  return out;
}

bool exited_cleanly(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// ---------------------------------------------------------------------------
// Socket activation

TEST(SocketActivation, ServesOnThePassedSocketAndLeavesItInPlace) {
  TempDir dir;
  const std::string path = dir / "activated.sock";
  proto::UniqueFd listener = listening_socket(path);
  ASSERT_TRUE(listener.valid()) << std::strerror(errno);

  // --socket names another path: the passed socket wins, nothing is created.
  DaemonLaunch launch;
  launch.socket_flag = false;
  launch.args = {"--socket", dir / "ignored.sock"};
  launch.listen_fds = {listener.get()};
  launch.wait_path = path;
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());

  RawClient client(path);
  ASSERT_TRUE(client.connected());
  const uint64_t task = client.hello("activated");
  EXPECT_NE(task, 0u);
  Allocation a = allocate(client, 2);
  EXPECT_EQ(a.status, code(Status::kSuccess));
  round_trip(client, 3, a.name);

  EXPECT_TRUE(daemon.wait_for_log("serving on " + path + " (passed by systemd as portd.socket)"))
      << daemon.log();
  EXPECT_TRUE(daemon.wait_for_log("socket.path " + (dir / "ignored.sock") +
                                  " is not used: systemd passed the socket at " + path))
      << daemon.log();
  EXPECT_FALSE(exists(dir / "ignored.sock"));
  EXPECT_FALSE(exists(dir / "ignored.sock.lock"));
  EXPECT_FALSE(exists(path + ".lock"));

  const int status = daemon.stop(SIGTERM);
  EXPECT_TRUE(exited_cleanly(status)) << status << "\n" << daemon.log();
  EXPECT_TRUE(client.wait_closed());

  // The socket is systemd's: still there, still listening (a connection now
  // waits in its backlog for the next activation).
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  proto::UniqueFd next = connect_unix(path);
  EXPECT_TRUE(next.valid());
  const int accepted = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  EXPECT_GE(accepted, 0);
  if (accepted >= 0) ::close(accepted);
}

// Without --socket (and without systemd), the path clients resolve:
// $PORTD_SOCKET, else $XDG_RUNTIME_DIR/portd.sock (an empty variable counts
// as unset).
TEST(SocketPath, FromTheEnvironmentAsClientsResolveIt) {
  TempDir dir;
  struct Case {
    std::vector<std::string> env;
    std::string path;
  } cases[] = {
      {{"PORTD_SOCKET=" + (dir / "env.sock"), "XDG_RUNTIME_DIR=" + (dir / "xdg")},
       dir / "env.sock"},
      {{"PORTD_SOCKET=", "XDG_RUNTIME_DIR=" + (dir / "xdg")}, dir / "xdg/portd.sock"},
  };
  for (const auto& c : cases) {
    DaemonLaunch launch;
    launch.socket_flag = false;
    launch.env = c.env;
    launch.wait_path = c.path;
    DaemonProcess daemon(launch);
    ASSERT_TRUE(daemon.started()) << c.path;
    EXPECT_TRUE(daemon.wait_for_log("serving on " + c.path + " (created)")) << daemon.log();
    RawClient client(c.path);
    EXPECT_NE(client.hello("env"), 0u);
    EXPECT_TRUE(exited_cleanly(daemon.stop(SIGTERM))) << daemon.log();
    EXPECT_FALSE(exists(c.path));
  }
}

TEST(SocketActivation, AManualPortdDoesNotTakeOverTheUnitsSocket) {
  TempDir dir;
  const std::string path = dir / "portd.sock";
  proto::UniqueFd unit_socket = listening_socket(path);
  ASSERT_TRUE(unit_socket.valid());

  DaemonLaunch launch;
  launch.socket_flag = false;
  launch.args = {"--socket", path};
  launch.wait_path = "";
  DaemonProcess daemon(launch);
  const int status = daemon.wait_exit();
  ASSERT_NE(status, -1) << daemon.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(daemon.log().find("another process is listening on " + path +
                              " (a portd started by systemd's portd.socket?)"),
            std::string::npos)
      << daemon.log();
  // Untouched: still the unit's socket.
  EXPECT_TRUE(connect_unix(path).valid());
  EXPECT_GE(::accept4(unit_socket.get(), nullptr, nullptr, SOCK_CLOEXEC), 0);
}

TEST(SocketActivation, SocketsForAnotherProcessAreIgnored) {
  // LISTEN_PID names someone else (a variable inherited by mistake): portd
  // creates its own socket.
  TempDir dir;
  proto::UniqueFd listener = listening_socket(dir / "other.sock");
  ASSERT_TRUE(listener.valid());
  DaemonLaunch launch;
  launch.env = {"LISTEN_FDS=1", "LISTEN_PID=1"};
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  EXPECT_TRUE(daemon.wait_for_log("serving on " + daemon.socket_path() + " (created)"))
      << daemon.log();
}

TEST(SocketActivation, UnusableSocketsAreRefused) {
  TempDir dir;
  {
    proto::UniqueFd a = listening_socket(dir / "a.sock");
    proto::UniqueFd b = listening_socket(dir / "b.sock");
    DaemonLaunch launch;
    launch.socket_flag = false;
    launch.listen_fds = {a.get(), b.get()};
    launch.listen_fdnames = "a:b";
    launch.wait_path = "";
    DaemonProcess daemon(launch);
    const int status = daemon.wait_exit();
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
    EXPECT_NE(daemon.log().find("socket activation: systemd passed 2 sockets; portd serves "
                                "exactly one (one ListenStream= in portd.socket)"),
              std::string::npos)
        << daemon.log();
  }
  {
    // A datagram socket is not a listening stream socket.
    proto::UniqueFd dgram(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    DaemonLaunch launch;
    launch.socket_flag = false;
    launch.listen_fds = {dgram.get()};
    launch.wait_path = "";
    DaemonProcess daemon(launch);
    const int status = daemon.wait_exit();
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
    EXPECT_NE(daemon.log().find("socket activation: the socket systemd passed (fd 3) is not a "
                                "listening Unix stream socket"),
              std::string::npos)
        << daemon.log();
  }
}

// ---------------------------------------------------------------------------
// Readiness and status

TEST(Notify, ReadyStatusReloadingStoppingAndWatchdog) {
  TempDir dir;
  NotifySocket notify(dir / "notify");
  ASSERT_TRUE(notify.bound());
  DaemonLaunch launch;
  launch.env = {notify.env(), "WATCHDOG_USEC=200000"};
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  const std::string where = " on " + daemon.socket_path();

  EXPECT_EQ(notify.next_starting("READY=1"), "READY=1\nSTATUS=serving 0 tasks" + where);
  // WATCHDOG=1 every 100 ms: at least two more within a second.
  EXPECT_EQ(notify.next_starting("WATCHDOG=1", 1000), "WATCHDOG=1");
  EXPECT_EQ(notify.next_starting("WATCHDOG=1", 1000), "WATCHDOG=1");

  // Status follows the tasks (at most once a second).
  RawClient client(daemon.socket_path());
  ASSERT_NE(client.hello("notified"), 0u);
  EXPECT_EQ(notify.next_starting("STATUS=", 3000), "STATUS=serving 1 task" + where);

  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  const auto reloading = notify.next_starting("RELOADING=1");
  ASSERT_TRUE(reloading);
  EXPECT_TRUE(std::regex_match(
      *reloading,
      std::regex("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=[0-9]+")))
      << *reloading;
  EXPECT_EQ(notify.next_starting("READY=1"), "READY=1\nSTATUS=serving 1 task" + where);

  ASSERT_EQ(::kill(daemon.pid(), SIGTERM), 0);
  EXPECT_EQ(notify.next_starting("STOPPING=1"), "STOPPING=1\nSTATUS=stopping");
  EXPECT_TRUE(exited_cleanly(daemon.wait_exit())) << daemon.log();
}

// ---------------------------------------------------------------------------
// SIGHUP

TEST(Reload, NewLimitsAndLogLevelForNewOperationsClientsStay) {
  TempDir dir;
  const std::string config = dir / "portd.toml";
  write_file(config, "[log]\nlevel = \"warn\"\n[quota.task]\nport_sets = 100\n");
  DaemonLaunch launch;
  launch.config = config;
  launch.log_level = "";
  // A flag wins over the file, at start and on every reload.
  launch.args = {"--quota-task-port-sets", "1"};
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());

  // (Task 1 was the fixture's probe for the socket.)
  RawClient a(daemon.socket_path());
  const uint64_t ta = a.hello("a");
  ASSERT_NE(ta, 0u);
  std::vector<uint32_t> a_ports;
  for (int i = 0; i < 3; ++i) {
    Allocation r = allocate(a, 10 + i);
    ASSERT_EQ(r.status, code(Status::kSuccess));
    a_ports.push_back(r.name);
  }
  EXPECT_EQ(allocate(a, 20, kRightPortSet).status, code(Status::kSuccess));
  Allocation set = allocate(a, 21, kRightPortSet);
  EXPECT_EQ(set.status, code(Status::kResourceShortage));
  EXPECT_EQ(set.limit, "port_sets");
  // At warn, connects (info) are not logged.
  EXPECT_EQ(daemon.log().find("connected"), std::string::npos) << daemon.log();

  EXPECT_EQ(send_descriptors(a, 25, a_ports[1], 2),
            std::make_pair(code(Status::kSuccess), std::string()));

  write_file(config,
             "[log]\nlevel = \"debug\"\n[socket]\nmode = 0o600\n[limits]\nmax_descriptors = 1\n"
             "[quota.task]\nports = 2\nport_sets = 100\n");
  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  ASSERT_TRUE(daemon.wait_for_log("configuration reloaded from " + config + ": 3 changes applied"))
      << daemon.log();
  const std::string log = daemon.log();
  EXPECT_NE(log.find("reload: log.level: \"warn\" -> \"debug\""), std::string::npos) << log;
  EXPECT_NE(log.find("reload: quota.task.ports: 16384 -> 2"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: limits.max_descriptors: 1024 -> 1"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: socket.mode: 0o666 -> 0o600 needs a restart; it stays 0o666"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("port_sets"), std::string::npos) << log;  // the flag still wins
  struct stat st;
  ASSERT_EQ(::stat(daemon.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);

  // A new client: its connect is logged now, and it gets two ports.
  RawClient b(daemon.socket_path());
  const uint64_t tb = b.hello("b");
  ASSERT_EQ(tb, ta + 1);
  EXPECT_TRUE(daemon.wait_for_log("task " + std::to_string(tb) + " connected")) << daemon.log();
  Allocation b_port = allocate(b, 10);
  EXPECT_EQ(b_port.status, code(Status::kSuccess));
  EXPECT_EQ(allocate(b, 11).status, code(Status::kSuccess));
  Allocation third = allocate(b, 12);
  EXPECT_EQ(third.status, code(Status::kResourceShortage));
  EXPECT_EQ(third.limit, "ports");

  // The old client is still connected; what it holds stays usable, and its
  // new charges meet the new quota, its messages the new descriptor limit.
  round_trip(a, 30, a_ports[2]);
  EXPECT_EQ(send_descriptors(a, 34, a_ports[1], 2),
            std::make_pair(code(Status::kSendTooLarge), std::string("message_descriptors")));
  EXPECT_EQ(send_descriptors(a, 35, a_ports[1], 1),
            std::make_pair(code(Status::kSuccess), std::string()));
  Allocation more = allocate(a, 32);
  EXPECT_EQ(more.status, code(Status::kResourceShortage));
  EXPECT_EQ(more.limit, "ports");
  EXPECT_EQ(allocate(a, 33, kRightPortSet).status, code(Status::kResourceShortage));

  // An invalid file is refused; everything stays as it was.
  write_file(config, "[log]\nlevel = \"warn\"\n[quota.task]\nports = \"lots\"\n");
  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  EXPECT_TRUE(daemon.wait_for_log("reload refused: " + config +
                                  ":4:1: quota.task.ports: expected a non-negative integer; the "
                                  "running configuration stays"))
      << daemon.log();
  EXPECT_EQ(allocate(b, 13).status, code(Status::kResourceShortage));
  RawClient c(daemon.socket_path());
  const uint64_t tc = c.hello("c");
  ASSERT_EQ(tc, tb + 1);
  EXPECT_TRUE(daemon.wait_for_log("task " + std::to_string(tc) + " connected"))  // still debug
      << daemon.log();

  // A missing explicit file is refused too.
  ASSERT_EQ(::unlink(config.c_str()), 0);
  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  EXPECT_TRUE(daemon.wait_for_log("reload refused: cannot read configuration file " + config +
                                  ": No such file or directory"))
      << daemon.log();
  EXPECT_EQ(allocate(c, 2).status, code(Status::kSuccess));
  EXPECT_EQ(allocate(c, 3).status, code(Status::kSuccess));
  EXPECT_EQ(allocate(c, 4).status, code(Status::kResourceShortage));

  EXPECT_TRUE(daemon.running());
  EXPECT_EQ(daemon.log().find("disconnected"), std::string::npos) << daemon.log();
  round_trip(a, 40, a_ports[0]);
  round_trip(b, 40, b_port.name);
}

// ---------------------------------------------------------------------------
// SIGTERM, SIGINT

void stop_with_clients(int signo, const char* name) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient a(daemon.socket_path());
  RawClient b(daemon.socket_path());
  const uint64_t ta = a.hello("a");
  const uint64_t tb = b.hello("b");
  ASSERT_NE(ta, 0u);
  ASSERT_EQ(tb, ta + 1);
  Allocation port = allocate(b, 2);
  ASSERT_EQ(port.status, code(Status::kSuccess));
  // b waits in a receive that nothing will satisfy.
  ASSERT_TRUE(b.request(3, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port.name);
    o.setTimeoutMs(-1);
  }));
  ASSERT_TRUE(daemon.wait_for_log("task " + std::to_string(tb) + " hello")) << daemon.log();

  const int status = daemon.stop(signo);
  EXPECT_TRUE(exited_cleanly(status)) << status << "\n" << daemon.log();
  EXPECT_TRUE(a.wait_closed());
  EXPECT_TRUE(b.wait_closed());
  EXPECT_FALSE(exists(daemon.socket_path()));
  EXPECT_FALSE(exists(daemon.socket_path() + ".lock"));
  EXPECT_FALSE(connect_unix(daemon.socket_path()).valid());
  const std::string log = daemon.log();
  EXPECT_NE(log.find(std::string(name) + ": stopping; 2 tasks connected"), std::string::npos)
      << log;
  EXPECT_NE(
      log.find("task " + std::to_string(ta) + " disconnected (shutdown: daemon stopping): pid " +
               std::to_string(::getpid()) + " uid " + std::to_string(::getuid()) + " command 'a'"),
      std::string::npos)
      << log;
  EXPECT_NE(log.find("task " + std::to_string(tb) + " disconnected (shutdown: daemon stopping)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("portd stopped"), std::string::npos) << log;
}

TEST(Stop, SigtermWithClientsConnected) { stop_with_clients(SIGTERM, "SIGTERM"); }
TEST(Stop, SigintWithClientsConnected) { stop_with_clients(SIGINT, "SIGINT"); }

// ---------------------------------------------------------------------------
// Invalid configuration

struct PortdRun {
  int status = -1;
  std::string out;
  std::string err;
};

// `as_uid` >= 0: as that uid (and gid), which needs root.
PortdRun run_portd(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                   int as_uid = -1) {
  TempDir dir;
  PortdRun run;
  const std::string out = dir / "out", err = dir / "err";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    if (as_uid >= 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(as_uid) != 0 || ::setuid(as_uid) != 0))
      ::_exit(126);
    for (const auto& v : env) ::putenv(const_cast<char*>(v.c_str()));
    if (std::find(env.begin(), env.end(), "JOURNAL_STREAM=stderr") != env.end()) {
      struct stat st;
      ::fstat(2, &st);
      ::setenv("JOURNAL_STREAM",
               (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    }
    std::vector<std::string> all = {PORTD_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::waitpid(pid, &run.status, 0);
  std::stringstream o, e;
  o << std::ifstream(out).rdbuf();
  e << std::ifstream(err).rdbuf();
  run.out = o.str();
  run.err = e.str();
  return run;
}

int exit_code(const PortdRun& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

// The README's first command, run by a user whose session has no
// $XDG_RUNTIME_DIR: the last default, /run/portd/portd.sock, is root's, and
// the error says how to choose a socket.
TEST(BadConfig, AUserWithoutASocketOfItsOwnIsToldHowToChooseOne) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run portd as another uid";
  const std::vector<std::string> no_path = {"PORTD_SOCKET=", "XDG_RUNTIME_DIR="};
  PortdRun r = run_portd({"--config", "/dev/null"}, no_path, 65534);
  if (exit_code(r) == 127) GTEST_SKIP() << "uid 65534 cannot execute " << PORTD_BINARY;
  EXPECT_EQ(exit_code(r), 1) << r.err;
  EXPECT_NE(r.err.find("critical cannot "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/run/portd/portd.sock is the system daemon's socket: as a user, give "
                       "--socket PATH or set $PORTD_SOCKET or $XDG_RUNTIME_DIR (clients look in "
                       "the same places)\n"),
            std::string::npos)
      << r.err;
  // A path someone chose fails without the hint.
  r = run_portd({"--config", "/dev/null", "--socket", "/proc/portd-nowhere/portd.sock"}, no_path);
  EXPECT_EQ(exit_code(r), 1) << r.err;
  EXPECT_NE(r.err.find("/proc/portd-nowhere"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("system daemon's socket"), std::string::npos) << r.err;
}

TEST(BadConfig, RefusedAtStartNamingTheKey) {
  TempDir dir;
  const std::string socket = dir / "portd.sock";
  const std::string config = dir / "portd.toml";

  write_file(config, "[quota.task]\nports = 10\n\n[quota.uid]\nfds_in_flight = -5\n");
  PortdRun r = run_portd({"--config", config, "--socket", socket});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "portd: invalid configuration: " + config +
                       ":5:1: quota.uid.fds_in_flight: must be between 0 and "
                       "9223372036854775807; got -5\n");

  write_file(config, "[log]\nlevel = \"chatty\"\n");
  r = run_portd({"--config", config, "--socket", socket});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "portd: invalid configuration: " + config +
                       ":2:1: log.level: expected one of trace, debug, info, warn, error, "
                       "critical, off; got \"chatty\"\n");

  write_file(config, "[limits]\nmax_inline_bytes = 5\n");
  r = run_portd({"--config", config, "--socket", socket});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "portd: invalid configuration: " + config +
                       ":2:1: limits.max_inline_bytes: unknown key\n");

  r = run_portd({"--config", dir / "missing.toml", "--socket", socket});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "portd: invalid configuration: cannot read configuration file " +
                       (dir / "missing.toml") + ": No such file or directory\n");

  r = run_portd({"--config", "/dev/null", "--socket", socket, "--quota-uid-ports", "many"});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err,
            "portd: invalid configuration: --quota-uid-ports: quota.uid.ports: expected a "
            "non-negative integer; got \"many\"\n");

  r = run_portd(
      {"--config", "/dev/null", "--socket", socket, "--socket-group", "no-such-group-portd"});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err,
            "portd: invalid configuration: --socket-group: socket.group: no such group: "
            "\"no-such-group-portd\"\n");

  // Under systemd the line carries the journal's error priority.
  write_file(config, "[log]\nformat = \"xml\"\n");
  r = run_portd({"--config", config, "--socket", socket}, {"JOURNAL_STREAM=stderr"});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "<3>portd: invalid configuration: " + config +
                       ":2:1: log.format: expected one of auto, text, journal; got \"xml\"\n");

  // Nothing was started.
  EXPECT_FALSE(exists(socket));
  EXPECT_FALSE(exists(socket + ".lock"));
}

TEST(BadConfig, CheckAndPrintConfig) {
  TempDir dir;
  const std::string config = dir / "portd.toml";
  write_file(config, "[quota.task]\nports = 10\n");
  PortdRun r = run_portd({"--config", config, "--check-config"});
  EXPECT_EQ(exit_code(r), 0) << r.err;
  EXPECT_EQ(r.out, "portd: configuration is valid (" + config + ")\n");
  r = run_portd({"--config", config, "--print-config", "--quota-uid-ports", "12"});
  EXPECT_EQ(exit_code(r), 0) << r.err;
  EXPECT_NE(r.out.find("[quota.task]\nnames = 65536\nports = 10\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[quota.uid]\nnames = 1048576\nports = 12\n"), std::string::npos) << r.out;
  write_file(config, "[quota.task]\nports = true\n");
  r = run_portd({"--config", config, "--check-config"});
  EXPECT_EQ(exit_code(r), 2);
  EXPECT_EQ(r.err, "portd: invalid configuration: " + config +
                       ":2:1: quota.task.ports: expected a non-negative integer\n");
}

TEST(BadConfig, HelpDocumentsEveryKeyAndFlag) {
  PortdRun r = run_portd({"--help"});
  EXPECT_EQ(exit_code(r), 0);
  for (const auto& k : service::config_keys()) {
    EXPECT_NE(r.out.find(k.flag + " "), std::string::npos) << k.flag;
    const size_t at = r.out.find("Key " + k.key);
    ASSERT_NE(at, std::string::npos) << k.key;
    EXPECT_TRUE(r.out[at + 4 + k.key.size()] == ';' || r.out[at + 4 + k.key.size()] == '.')
        << k.key;
  }
  for (const char* s : {"--config", "--check-config", "--print-config", "SIGHUP", "SIGTERM",
                        "LISTEN_FDS", "NOTIFY_SOCKET", "JOURNAL_STREAM", "Exit status"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  r = run_portd({"--version"});
  EXPECT_EQ(exit_code(r), 0);
  EXPECT_EQ(r.out.rfind("portd ", 0), 0u) << r.out;
}

// ---------------------------------------------------------------------------
// Configured limits reach the clients

TEST(Limits, FrameAndInlineBodyLimitsFromTheConfigurationFile) {
  TempDir dir;
  const std::string config = dir / "portd.toml";
  write_file(config, "[limits]\nmax_frame_bytes = \"16MiB\"\nmax_inline_body = \"12MiB\"\n");
  DaemonLaunch launch;
  launch.config = config;
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  RawClient client(daemon.socket_path());
  ASSERT_TRUE(client.request(1, [](auto r) {
    auto h = r.initHello();
    h.setVersion(1);
    h.setCommand("limits");
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    ASSERT_EQ(reply.which(), wire::Reply::HELLO);
    EXPECT_EQ(reply.getHello().getMaxFrameBytes(), 16u << 20);
    EXPECT_EQ(reply.getHello().getMaxInlineBody(), 12u << 20);
  }));
  Allocation port = allocate(client, 2);
  ASSERT_EQ(port.status, code(Status::kSuccess));

  // 10 MiB inline: over the default frame limit and over Cap'n Proto's
  // default traversal limit (8 MiB), within the configured ones.
  const auto send = [&](uint64_t id, size_t size) {
    const std::string body(size, 'b');
    EXPECT_TRUE(client.request(id, [&](auto r) {
      auto m = r.initSend().initMessage();
      m.setRemote(port.name);
      m.setRemoteDisposition(20);  // MAKE_SEND
      m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
    }));
    int32_t status = -1;
    std::string limit;
    EXPECT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
      EXPECT_EQ(reply.getId(), id);
      status = reply.getStatus();
      limit = reply.getLimit();
    }));
    return std::make_pair(status, limit);
  };
  EXPECT_EQ(send(3, 10u << 20), std::make_pair(code(Status::kSuccess), std::string()));
  EXPECT_EQ(send(4, (12u << 20) + 1),
            std::make_pair(code(Status::kSendTooLarge), std::string("message_bytes")));
  EXPECT_TRUE(daemon.running());
}

// ---------------------------------------------------------------------------
// Logging

TEST(Logging, JournalFormatWhenStderrIsTheJournal) {
  DaemonLaunch launch;
  launch.journal_stream = true;
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  RawClient client(daemon.socket_path());
  const std::string task = std::to_string(client.hello("journal"));
  const uint32_t garbage[2] = {0xffffffffu, 0};
  ASSERT_TRUE(client.send_bytes(garbage, sizeof garbage));
  EXPECT_TRUE(client.wait_closed());
  ASSERT_TRUE(daemon.wait_for_log("task " + task + " disconnected")) << daemon.log();
  const std::string log = daemon.log();
  // Priority prefixes, no timestamps: info <6>, warn (a violation) <4>.
  const std::string who =
      "pid " + std::to_string(::getpid()) + " uid " + std::to_string(::getuid());
  EXPECT_NE(log.find("\n<6>task " + task + " connected: " + who + " gid " +
                     std::to_string(::getgid()) + "\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("\n<4>task " + task + " disconnected (violation: "), std::string::npos) << log;
  EXPECT_NE(log.find("): " + who + " command 'journal'\n"), std::string::npos) << log;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(std::regex_match(line, std::regex("<[2-7]>[^<].*"))) << line;
}

TEST(Logging, TextFormatOtherwise) {
  // JOURNAL_STREAM naming another stream (inherited by a child whose stderr
  // was redirected) is not the journal.
  DaemonLaunch launch;
  launch.env = {"JOURNAL_STREAM=1:1"};
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  RawClient client(daemon.socket_path());
  const std::string task = std::to_string(client.hello("text"));
  ASSERT_TRUE(daemon.wait_for_log("task " + task + " hello")) << daemon.log();
  std::istringstream lines(daemon.log());
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(std::regex_match(
        line, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+ (trace|debug|info|warning) .*")))
        << line;
}

TEST(Logging, ForcedFormatWins) {
  DaemonLaunch launch;
  launch.args = {"--log-format", "journal"};
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  EXPECT_TRUE(daemon.wait_for_log("<6>portd ")) << daemon.log();
}

}  // namespace
}  // namespace portd::testing
