// Runs the Mach conformance programs (tests/mach/*.c): each against a fresh
// portd daemon, with PORTD_SOCKET pointing at it. A program passes if it
// exits 0 and prints "PASS <name>"; otherwise its output is shown.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "portd/portd.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

struct Outcome {
  int exit_code = -1;  // -1: killed (signal or timeout)
  std::string output;  // stdout and stderr together
};

// Runs `program` with `args` and `env` added to the environment, for at most
// `timeout_ms`.
Outcome run_with_args(const std::string& program, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, int timeout_ms) {
  Outcome outcome;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return outcome;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      outcome.output += "\n[runner] timed out; killing the program\n";
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    outcome.output.append(buffer, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

Outcome run(const std::string& program, const std::vector<std::string>& env, int timeout_ms) {
  return run_with_args(program, {}, env, timeout_ms);
}

void run_conformance(const std::string& name, std::vector<std::string> daemon_args = {}) {
  DaemonProcess daemon(std::move(daemon_args));
  ASSERT_TRUE(daemon.started());
  const std::string program = std::string(MACH_TESTS_DIR) + "/mach_" + name;
  Outcome outcome = run(program, {"PORTD_SOCKET=" + daemon.socket_path()}, 60000);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("PASS " + name + "\n"), std::string::npos) << outcome.output;
  EXPECT_TRUE(daemon.running()) << daemon.log();
}

#define MACH_CONFORMANCE(name) \
  TEST(MachConformance, name) { run_conformance(#name); }

MACH_CONFORMANCE(textbook)
MACH_CONFORMANCE(rights)
MACH_CONFORMANCE(full_queue)
MACH_CONFORMANCE(notifications)
MACH_CONFORMANCE(port_sets)
MACH_CONFORMANCE(rcv_large)
MACH_CONFORMANCE(send_receive)
MACH_CONFORMANCE(ool_ports)
MACH_CONFORMANCE(ool_send)
MACH_CONFORMANCE(move_receive)
MACH_CONFORMANCE(killed_task)
MACH_CONFORMANCE(fork)
MACH_CONFORMANCE(fork_memory)
MACH_CONFORMANCE(ool_zero_copy)
MACH_CONFORMANCE(ool_64mib)
MACH_CONFORMANCE(errors)

// Going over a quota: Mach's status, and portd_last_refused_limit() names it.
TEST(MachConformance, quotas) {
  run_conformance("quotas", {"--quota-task-ports", "3", "--quota-task-queued-messages", "2"});
}

// Without a daemon: calls fail with KERN_INVALID_TASK and one line on stderr
// says why.
TEST(MachConformance, no_daemon) {
  const std::string path = "/tmp/portd-mach-test-nothing-" + std::to_string(::getpid());
  Outcome outcome =
      run(std::string(MACH_TESTS_DIR) + "/mach_no_daemon", {"PORTD_SOCKET=" + path}, 60000);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("PASS no_daemon\n"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find("portd: cannot connect to " + path), std::string::npos)
      << outcome.output;
}

// Out-of-line memory, received from a sender that is not libportd: a raw
// client sends a sealed memfd (as the daemon requires) straight over the wire.
TEST(MachConformance, ool_receive) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Outcome receiver;
  std::thread receiving([&] {
    receiver = run(std::string(MACH_TESTS_DIR) + "/mach_ool_receive",
                   {"PORTD_SOCKET=" + daemon.socket_path()}, 60000);
  });

  RawClient sender(daemon.socket_path());
  ASSERT_NE(sender.hello(), 0u);
  uint32_t port = 0;
  for (uint64_t id = 2; port == 0 && id < 1000; ++id) {  // until it has checked in
    ASSERT_TRUE(sender.request(
        id, [&](auto r) { r.initBootstrapLookUp().setName("test.mach.ool_receive"); }));
    ASSERT_TRUE(sender.next_reply([&](wire::Reply::Reader reply, auto&) {
      if (reply.getStatus() == 0) port = reply.getName();
    }));
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(port, 0u);

  constexpr size_t kSize = 1 << 20;
  proto::UniqueFd memfd(::memfd_create("ool_receive", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(memfd.valid());
  std::vector<unsigned char> bytes(kSize);
  for (size_t i = 0; i < kSize; ++i) bytes[i] = static_cast<unsigned char>(i * 7);
  ASSERT_EQ(::write(memfd.get(), bytes.data(), kSize), static_cast<ssize_t>(kSize));
  ASSERT_EQ(
      ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
      0);
  proto::UniqueFd empty(::memfd_create("ool_empty", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(
      ::fcntl(empty.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
      0);
  std::vector<proto::UniqueFd> fds;
  fds.push_back(std::move(memfd));
  fds.push_back(std::move(empty));
  const int32_t tail = 0x600d;
  ASSERT_TRUE(sender.request(
      5000,
      [&](auto r) {
        auto m = r.initSend().initMessage();
        m.setRemote(port);
        m.setRemoteDisposition(19);  // COPY_SEND
        m.setId(321);
        auto d = m.initDescriptors(2);
        d[0].initOol().setSize(kSize);
        d[1].initOol().setSize(0);
        auto body = m.initBody(sizeof tail);
        std::memcpy(body.begin(), &tail, sizeof tail);
      },
      std::move(fds)));
  int32_t status = -1;
  ASSERT_TRUE(sender.next_reply([&](wire::Reply::Reader reply, auto&) {
    if (reply.getId() == 5000) status = reply.getStatus();
  }));
  EXPECT_EQ(status, 0);

  receiving.join();
  EXPECT_EQ(receiver.exit_code, 0) << receiver.output;
  EXPECT_NE(receiver.output.find("PASS ool_receive\n"), std::string::npos) << receiver.output;
}

// A volatile region from libportd's pool, received through mach_msg: the
// program's vm_deallocate gives the segment back to the runner's pool.
TEST(MachConformance, ool_volatile_receive) {
  using namespace std::chrono_literals;
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Outcome receiver;
  std::thread receiving([&] {
    receiver = run(std::string(MACH_TESTS_DIR) + "/mach_ool_volatile_receive",
                   {"PORTD_SOCKET=" + daemon.socket_path()}, 60000);
  });
  auto task = Task::connect(ConnectOptions{daemon.socket_path(), "volatile-sender"});
  ASSERT_TRUE(task);
  auto service = (*task)->look_up("test.mach.ool_volatile_receive", 20000ms);
  ASSERT_TRUE(service) << status_name(service.status());
  auto buffer = (*task)->volatile_buffer(5000);
  ASSERT_TRUE(buffer);
  for (int i = 0; i < 5000; ++i) buffer->data()[i] = static_cast<std::byte>(i * 3);
  const std::byte* const segment = buffer->data();
  auto runner = (*task)->make_port();
  ASSERT_TRUE(runner);
  auto step = [&](int32_t id) {
    auto got = runner->receive(ReceiveOptions{20000ms});
    return got && got->id == id;
  };
  auto tell = [&](int32_t id) {
    OutgoingMessage m;
    m.set_remote(*service).set_id(id);
    return (*task)->send(m);
  };
  auto in_flight_becomes = [&](size_t n) {
    for (int i = 0; i < 500; ++i) {
      if ((*task)->volatile_pool_stats().in_flight == n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  };
  OutgoingMessage message;
  message.set_remote(*service).set_local(*runner, Disposition::kMakeSend);
  message.add_ool_volatile(std::move(*buffer));
  ASSERT_EQ((*task)->send(message), Status::kSuccess);
  ASSERT_TRUE(step(1));  // mapped
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ((*task)->volatile_pool_stats().in_flight, 1u);  // held while mapped
  ASSERT_EQ(tell(2), Status::kSuccess);
  ASSERT_TRUE(step(3));  // vm_deallocate'd, still running
  EXPECT_TRUE(in_flight_becomes(0));
  EXPECT_EQ(segment[0], std::byte{0});  // its write went to its own copy
  EXPECT_EQ(tell(4), Status::kSuccess);
  receiving.join();
  EXPECT_EQ(receiver.exit_code, 0) << receiver.output;
  EXPECT_NE(receiver.output.find("PASS ool_volatile_receive\n"), std::string::npos)
      << receiver.output;
}

// The examples in examples/mach, built in-tree, against a real daemon.
std::string example(const std::string& name) { return std::string(MACH_EXAMPLES_DIR) + "/" + name; }

TEST(MachExamples, ServerAndClient) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  const std::vector<std::string> env = {"PORTD_SOCKET=" + daemon.socket_path()};
  Outcome server;
  std::thread serving([&] { server = run(example("mach_server"), env, 60000); });
  // Until the server has checked in, the look-up fails.
  Outcome hello;
  for (int i = 0; i < 500; ++i) {
    hello = run_with_args(example("mach_client"), {"hello mach"}, env, 60000);
    if (hello.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(hello.exit_code, 0) << hello.output;
  EXPECT_EQ(hello.output, "HELLO MACH\n");
  EXPECT_EQ(run(example("mach_client"), env, 60000).exit_code, 2);  // usage
  Outcome quit = run_with_args(example("mach_client"), {"--quit"}, env, 60000);
  EXPECT_EQ(quit.exit_code, 0) << quit.output;
  serving.join();
  EXPECT_EQ(server.exit_code, 0) << server.output;
  EXPECT_EQ(server.output, "mach_server: serving portd.example.mach\nmach_server: done\n");
}

TEST(MachExamples, PortSetServer) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Outcome outcome = run(example("portset_server"), {"PORTD_SOCKET=" + daemon.socket_path()}, 60000);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_EQ(outcome.output,
            "message 1 through port 0 (id 10)\n"
            "message 2 through port 1 (id 20)\n"
            "message 3 through port 2 (id 30)\n"
            "message 4 through port 0 (id 11)\n"
            "message 5 through port 1 (id 21)\n"
            "message 6 through port 2 (id 31)\n");
}

TEST(MachExamples, NotifyDemo) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  Outcome outcome = run(example("notify_demo"), {"PORTD_SOCKET=" + daemon.socket_path()}, 60000);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("dead-name notification: name 0x"), std::string::npos)
      << outcome.output;
  EXPECT_NE(outcome.output.find("no-senders notification: make-send count 1\n"), std::string::npos)
      << outcome.output;
}

}  // namespace
}  // namespace portd::testing
