// The connection's life: connecting (and failing to), the daemon going away
// while threads wait, disconnect(), and a Task inherited across fork().
#include <capnp/message.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <thread>

#include "portd/portd.capnp.h"
#include "portd/portd.h"
#include "portd/proto/frame.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClientConnectionTest, NothingListeningIsInvalidTask) {
  const std::string path = "/tmp/portd-client-test-nothing-" + std::to_string(::getpid());
  auto task = Task::connect(ConnectOptions{path, ""});
  EXPECT_EQ(task.status(), Status::kInvalidTask);
  EXPECT_EQ(task.detail(), "No such file or directory");

  // A file that is not a socket.
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto refused = Task::connect(ConnectOptions{path, ""});
  EXPECT_EQ(refused.status(), Status::kInvalidTask);
  EXPECT_EQ(refused.detail(), "Connection refused");
  ::unlink(path.c_str());

  auto too_long = Task::connect(ConnectOptions{std::string(200, 'x'), ""});
  EXPECT_EQ(too_long.status(), Status::kInvalidArgument);
}

// Sets (or, with nullptr, unsets) an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ClientConnectionTest, SocketPathResolvesLikeTheDaemon) {
  ScopedEnv no_socket("PORTD_SOCKET", nullptr);
  ScopedEnv no_runtime_dir("XDG_RUNTIME_DIR", nullptr);
  EXPECT_EQ(resolve_socket_path(), "/run/portd/portd.sock");
  {
    ScopedEnv runtime_dir("XDG_RUNTIME_DIR", "/run/user/4242");
    EXPECT_EQ(resolve_socket_path(), "/run/user/4242/portd.sock");
    ScopedEnv socket("PORTD_SOCKET", "/from/env.sock");
    EXPECT_EQ(resolve_socket_path(), "/from/env.sock");
    EXPECT_EQ(resolve_socket_path("/explicit.sock"), "/explicit.sock");
  }
  ScopedEnv empty("PORTD_SOCKET", "");  // empty counts as unset
  EXPECT_EQ(resolve_socket_path(), "/run/portd/portd.sock");
}

// DESIGN section 7: portd started without --socket, and a client connecting
// without a path, both end up on $XDG_RUNTIME_DIR/portd.sock.
TEST(ClientConnectionTest, DaemonAndLibraryFindTheSameDefaultSocket) {
  char dir[] = "/tmp/portd-xdg-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/portd.sock";
  ScopedEnv no_socket("PORTD_SOCKET", nullptr);
  {
    DaemonLaunch launch;
    launch.socket_flag = false;
    launch.env = {"XDG_RUNTIME_DIR=" + std::string(dir)};
    launch.wait_path = path;
    DaemonProcess daemon(launch);
    ASSERT_TRUE(daemon.started()) << daemon.log();
    EXPECT_TRUE(daemon.wait_for_log("serving on " + path + " (created)")) << daemon.log();

    ScopedEnv runtime_dir("XDG_RUNTIME_DIR", dir);
    auto task = Task::connect();
    ASSERT_EQ(task.status(), Status::kSuccess) << task.detail();
    EXPECT_EQ((*task)->socket_path(), path);
    EXPECT_EQ((*task)->daemon_pid(), static_cast<uint32_t>(daemon.pid()));
  }
  ::rmdir(dir);
}

TEST(ClientConnectionTest, ConnectsThroughPortdSocketVariable) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  ::setenv("PORTD_SOCKET", daemon.socket_path().c_str(), 1);
  auto task = Task::connect();
  ::unsetenv("PORTD_SOCKET");
  ASSERT_EQ(task.status(), Status::kSuccess);
  EXPECT_EQ((*task)->socket_path(), daemon.socket_path());
  // The daemon logs the command name we sent in hello: ours, from /proc.
  EXPECT_TRUE(daemon.wait_for_log("client_connecti", 2000)) << daemon.log();
}

// A daemon that answers hello with `answered` as the version both sides
// will speak: a stand-in on a socket of the test's own, since portd never
// answers a version this library does not know.
class FakeDaemon {
 public:
  explicit FakeDaemon(uint32_t answered) {
    char dir[] = "/tmp/portd-fake-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/portd.sock";
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_.get(), 1), 0);
    thread_ = std::thread([this, answered] { serve(answered); });
  }
  ~FakeDaemon() {
    thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  // The version the client asked for in its hello.
  uint32_t asked() const { return asked_; }

 private:
  void serve(uint32_t answered) {
    proto::UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    proto::FrameReader reader;
    auto next = reader.next();
    while (next == proto::FrameReader::Next::kNeedMore) {
      pollfd p{c.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0 || reader.read_from(c.get()) <= 0) return;
      next = reader.next();
    }
    if (next != proto::FrameReader::Next::kFrame) return;
    auto request = reader.frame().getRoot<wire::Request>();
    asked_ = request.getHello().getVersion();
    capnp::MallocMessageBuilder message;
    auto reply = message.initRoot<wire::Reply>();
    reply.setId(request.getId());
    auto hello = reply.initHello();
    hello.setVersion(answered);
    hello.setTask(1);
    hello.setDaemonPid(static_cast<uint32_t>(::getpid()));
    hello.setMaxFrameBytes(4u << 20);
    hello.setMaxInlineBody(1u << 20);
    proto::FrameWriter writer;
    writer.append(message);
    while (writer.write_to(c.get()) == -EAGAIN) {
    }
    // Until the client hangs up.
    char byte;
    while (::read(c.get(), &byte, 1) > 0) {
    }
  }

  std::string dir_, path_;
  proto::UniqueFd listener_;
  std::thread thread_;
  uint32_t asked_ = 0;
};

TEST(ClientConnectionTest, ADaemonThatSpeaksNoVersionWeKnowIsRefused) {
  for (uint32_t answered : {wire::PROTOCOL_VERSION + 1, 0u}) {
    SCOPED_TRACE(answered);
    FakeDaemon daemon(answered);
    auto task = Task::connect(ConnectOptions{daemon.path(), "version-test"});
    EXPECT_EQ(task.status(), Status::kNotSupported);
    EXPECT_EQ(task.detail(), "the daemon speaks protocol version " + std::to_string(answered) +
                                 ", this library " + std::to_string(wire::PROTOCOL_VERSION));
    task = Result<std::shared_ptr<Task>>(Status::kFailure);  // hangs up
    EXPECT_EQ(daemon.asked(), wire::PROTOCOL_VERSION);
  }
}

TEST(ClientConnectionTest, DaemonDeathWakesEveryWaiter) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path());
  ASSERT_NE(task, nullptr);

  auto a = task->make_port();
  auto b = task->make_port();
  auto full = task->make_port();
  ASSERT_TRUE(a.ok() && b.ok() && full.ok());
  ASSERT_EQ(full->set_qlimit(0), Status::kSuccess);  // every send waits for a receiver

  std::vector<std::future<Status>> waiters;
  waiters.push_back(std::async(std::launch::async, [&] { return a->receive().status(); }));
  waiters.push_back(std::async(std::launch::async, [&] { return b->receive().status(); }));
  waiters.push_back(std::async(std::launch::async, [&] {
    return task->bootstrap_look_up(unique_service("never"), std::nullopt).status();
  }));
  waiters.push_back(std::async(std::launch::async, [&] {
    OutgoingMessage m;
    m.set_remote(*full, Disposition::kMakeSend).set_body("stuck");
    return task->send(m);
  }));
  std::this_thread::sleep_for(100ms);  // let them park in the daemon
  for (auto& w : waiters) ASSERT_EQ(w.wait_for(0ms), std::future_status::timeout);

  daemon.stop(SIGKILL);
  for (auto& w : waiters) {
    ASSERT_EQ(w.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(w.get(), Status::kInvalidTask);
  }
  EXPECT_FALSE(task->connected());
  EXPECT_FALSE(task->failure().empty());
  auto later = task->allocate(Right::kReceive);
  EXPECT_EQ(later.status(), Status::kInvalidTask);
  EXPECT_EQ(later.detail().rfind("not connected to portd: ", 0), 0u) << later.detail();
  // Handles going away on a dead connection do nothing, quietly.
  a->reset();
}

TEST(ClientConnectionTest, DisconnectWakesWaitersAndTheDaemonReleasesTheRights) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path(), "leaving");
  auto observer = connect_or_die(daemon.socket_path(), "observer");
  ASSERT_TRUE(task && observer);

  const std::string service = unique_service("leaving");
  auto port = task->check_in(service);
  ASSERT_TRUE(port.ok());
  auto seen = observer->look_up(service);
  ASSERT_EQ(seen.status(), Status::kSuccess);
  EXPECT_EQ(*observer->type(seen->name()), kTypeSend);

  auto blocked = std::async(std::launch::async, [&] { return port->receive().status(); });
  std::this_thread::sleep_for(50ms);
  task->disconnect();
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(blocked.get(), Status::kInvalidTask);
  EXPECT_FALSE(task->connected());
  EXPECT_EQ(task->failure(), "disconnected by the client");

  // The task died: its port died, and the observer's send right is dead.
  uint32_t type = 0;
  for (int i = 0; i < 200; ++i) {
    type = *observer->type(seen->name());
    if (type == kTypeDeadName) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(type, kTypeDeadName);
  EXPECT_EQ(observer->bootstrap_look_up(service).status(), Status::kBootstrapUnknownService);
}

TEST(ClientConnectionTest, ForkedChildCannotUseTheParentsTask) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path());
  ASSERT_NE(task, nullptr);
  auto port = task->make_port();
  ASSERT_TRUE(port.ok());
  const Name name = port->name();

  Child child([&]() -> int {
    if (task->allocate(Right::kReceive).status() != Status::kInvalidTask) return 2;
    if (task->connected()) return 3;
    // Handles the child inherited release nothing: the right is the parent's.
    port->reset();
    task->disconnect();  // must not shut the parent's socket down
    return 0;
  });
  EXPECT_EQ(child.wait(), 0);
  EXPECT_TRUE(task->connected());
  EXPECT_EQ(*task->type(name), kTypeReceive);
}

// A child made by fork() must not hold the parent's connection open: when
// the parent goes away, its task dies even though the child still runs.
TEST(ClientConnectionTest, ForkedChildDoesNotKeepTheParentsTaskAlive) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto observer = connect_or_die(daemon.socket_path(), "observer");
  ASSERT_NE(observer, nullptr);
  const std::string service = unique_service("inherited");
  int release[2];
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);

  // The middle process checks a name in, forks a grandchild that keeps
  // running, and exits.
  pid_t grandchild = -1;
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  Child middle([&]() -> int {
    auto task = Task::connect(ConnectOptions{daemon.socket_path(), "middle"});
    if (!task) return 2;
    auto port = (*task)->check_in(service);
    if (!port) return 3;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(release[1]);
      char byte;
      while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
      }
      ::_exit(0);
    }
    if (::write(report[1], &pid, sizeof pid) != sizeof pid) return 4;
    port->release();  // no clean-up request: only the process's exit ends it
    return 0;
  });
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild), sizeof grandchild);
  EXPECT_EQ(middle.wait(), 0);

  // The name goes away with the middle process's task.
  Status status = Status::kSuccess;
  for (int i = 0; i < 500; ++i) {
    status = observer->bootstrap_look_up(service).status();
    if (status == Status::kBootstrapUnknownService) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(status, Status::kBootstrapUnknownService);

  ::close(release[1]);  // the grandchild (not ours to reap) exits
  ::close(release[0]);
  ::close(report[0]);
  ::close(report[1]);
}

TEST(ClientConnectionTest, ThousandsOfFireAndForgetReleases) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path());
  ASSERT_NE(task, nullptr);
  {
    std::vector<ReceiveRight> ports;
    for (int i = 0; i < 3000; ++i) {
      auto p = task->make_port();
      ASSERT_TRUE(p.ok());
      ports.push_back(std::move(*p));
    }
  }  // 3000 releases written, replies never waited for
  auto names = task->names();
  ASSERT_EQ(names.status(), Status::kSuccess);
  EXPECT_TRUE(names->empty());
  EXPECT_TRUE(task->connected());
}

}  // namespace
}  // namespace portd::testing
