// The connection's life: connecting (and failing to), the daemon going away
// while threads wait, disconnect(), and a Task inherited across fork().
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>

#include "portd/portd.h"
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

TEST(ClientConnectionTest, SocketPathResolvesLikeTheDaemon) {
  // DESIGN 7: --socket, else $PORTD_SOCKET, else $XDG_RUNTIME_DIR/portd.sock,
  // else /run/portd/portd.sock; an empty variable counts as unset.
  const char* saved_xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string xdg = saved_xdg != nullptr ? saved_xdg : "";
  ::setenv("PORTD_SOCKET", "/from/env.sock", 1);
  ::setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  EXPECT_EQ(resolve_socket_path("/explicit.sock"), "/explicit.sock");
  EXPECT_EQ(resolve_socket_path(), "/from/env.sock");
  ::setenv("PORTD_SOCKET", "", 1);
  EXPECT_EQ(resolve_socket_path(), "/run/user/4242/portd.sock");
  ::unsetenv("PORTD_SOCKET");
  EXPECT_EQ(resolve_socket_path(), "/run/user/4242/portd.sock");
  ::setenv("XDG_RUNTIME_DIR", "", 1);
  EXPECT_EQ(resolve_socket_path(), "/run/portd/portd.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(resolve_socket_path(), "/run/portd/portd.sock");
  EXPECT_EQ(resolve_socket_path("/explicit.sock"), "/explicit.sock");
  if (saved_xdg != nullptr) ::setenv("XDG_RUNTIME_DIR", xdg.c_str(), 1);
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
