// The echo example, run as a user would: the real daemon, echo_server and
// echo_client as separate programs, and the client's output checked.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.h"

#ifndef ECHO_SERVER_BINARY
#error "ECHO_SERVER_BINARY must name the echo_server executable"
#endif
#ifndef ECHO_CLIENT_BINARY
#error "ECHO_CLIENT_BINARY must name the echo_client executable"
#endif

extern char** environ;

namespace portd::testing {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A program with its stdout and stderr on pipes.
class Program {
 public:
  explicit Program(std::vector<std::string> args) {
    int out[2], err[2];
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~Program() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
    ::close(err_);
  }

  // Reads both pipes to their end and waits for the exit.
  Outcome finish() {
    Outcome run;
    pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    int open = 2;
    while (open > 0 && ::poll(fds, 2, 20000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[4096];
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          fds[i].fd = -1;
          --open;
        } else {
          (i == 0 ? run.out : run.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
  }

  // Reads stdout until it holds `text` (or 10 s pass).
  bool wait_for_output(const std::string& text) {
    std::string seen;
    while (seen.find(text) == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return false;
      char buf[512];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return false;
      seen.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  void terminate() { ::kill(pid_, SIGTERM); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
};

TEST(ClientEchoTest, ClientPrintsWhatTheServerEchoes) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Program server({ECHO_SERVER_BINARY, "--socket", daemon.socket_path()});
  ASSERT_TRUE(
      server.wait_for_output("echo_server: serving portd.example.echo on " + daemon.socket_path()));

  Program client(
      {ECHO_CLIENT_BINARY, "--socket", daemon.socket_path(), "hello,", "echo", "server"});
  const Outcome run = client.finish();
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "hello, echo server\n");
  EXPECT_EQ(run.err, "");

  // A second client, same server.
  Program again({ECHO_CLIENT_BINARY, "--socket", daemon.socket_path(), "again"});
  const Outcome second = again.finish();
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, "again\n");
  server.terminate();
}

TEST(ClientEchoTest, ClientWaitsForTheServerToCheckIn) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Program client(
      {ECHO_CLIENT_BINARY, "--socket", daemon.socket_path(), "--wait", "10000", "early", "bird"});
  Program server({ECHO_SERVER_BINARY, "--socket", daemon.socket_path(), "--count", "1"});
  const Outcome run = client.finish();
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "early bird\n");
  const Outcome served = server.finish();  // --count 1: it leaves after one answer
  EXPECT_EQ(served.exit_code, 0) << served.err;
}

TEST(ClientEchoTest, ClearErrors) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  {
    Program client({ECHO_CLIENT_BINARY, "--socket", daemon.socket_path(), "anyone"});
    const Outcome run = client.finish();
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err,
              "echo_client: no server has checked in portd.example.echo (start echo_server)\n");
  }
  {
    const std::string nowhere = daemon.directory() + "/nothing.sock";
    Program client({ECHO_CLIENT_BINARY, "--socket", nowhere, "anyone"});
    const Outcome run = client.finish();
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(run.err,
              "echo_client: portd not running on " + nowhere + " (No such file or directory)\n");
  }
  {
    Program client({ECHO_CLIENT_BINARY});
    const Outcome run = client.finish();
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_EQ(run.err.rfind("usage: echo_client", 0), 0u) << run.err;
  }
}

}  // namespace
}  // namespace portd::testing
