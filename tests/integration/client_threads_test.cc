// One Task shared by many threads, against the real daemon: eight threads
// doing RPCs at once while another is blocked in receive. Nothing may
// deadlock, every reply must reach the thread that asked, and the blocked
// receive must not hold anyone up.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

constexpr int32_t kStopId = 999;

// An echo server in its own process: answers each request on its send-once
// reply right with the same body and id + 100, until a request with kStopId.
int echo_server(const std::string& socket_path, const std::string& service) {
  auto task = Task::connect(ConnectOptions{socket_path, "threads-server"});
  if (!task) return 2;
  auto port = (*task)->check_in(service);
  if (!port) return 3;
  for (;;) {
    auto request = port->receive(ReceiveOptions{30000ms});
    if (!request) return 4;
    if (request->id == kStopId) return 0;
    if (request->remote_type != RightType::kSendOnce) return 5;
    OutgoingMessage reply;
    reply.set_remote(SendOnceRight::adopt(*task, request->remote)).set_id(request->id + 100);
    reply.body() = std::move(request->body);
    if ((*task)->send(reply) != Status::kSuccess) return 6;
  }
}

TEST(ClientThreadsTest, EightThreadsRpcWhileAnotherBlocksInReceive) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  const std::string service = unique_service("threads");
  // Fork before this process has any thread of its own.
  Child server([&] { return echo_server(daemon.socket_path(), service); });

  auto task = connect_or_die(daemon.socket_path(), "threads-client");
  ASSERT_NE(task, nullptr);
  auto server_port = task->look_up(service, 5000ms);
  ASSERT_EQ(server_port.status(), Status::kSuccess);

  // A thread blocked in receive, with no timeout, for the whole test.
  auto idle = task->make_port();
  ASSERT_TRUE(idle.ok());
  std::atomic<bool> rpcs_done{false};
  auto blocked = std::async(std::launch::async, [&] {
    auto r = idle->receive();
    // It must not be woken before the RPCs are over.
    EXPECT_TRUE(rpcs_done.load());
    return r;
  });
  std::this_thread::sleep_for(50ms);  // let it park in the daemon

  constexpr int kThreads = 8;
  constexpr int kCalls = 200;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto reply_port = task->make_port();
      if (!reply_port) {
        ++failed;
        return;
      }
      for (int i = 0; i < kCalls; ++i) {
        const std::string body = "thread " + std::to_string(t) + " call " + std::to_string(i);
        OutgoingMessage request;
        request.set_remote(*server_port).set_id(t * 1000 + i).set_body(body);
        auto reply = task->rpc(request, *reply_port, {}, ReceiveOptions{10000ms});
        if (!reply) {
          ++failed;
          return;
        }
        if (reply->body_text() != body || reply->id != t * 1000 + i + 100 ||
            reply->local != reply_port->name()) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  rpcs_done = true;
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);

  // The blocked receive is still parked; a message wakes it.
  EXPECT_EQ(blocked.wait_for(0ms), std::future_status::timeout);
  OutgoingMessage wake;
  wake.set_remote(*idle, Disposition::kMakeSend).set_body("wake up");
  ASSERT_EQ(task->send(wake), Status::kSuccess);
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
  auto woken = blocked.get();
  ASSERT_EQ(woken.status(), Status::kSuccess);
  EXPECT_EQ(woken->body_text(), "wake up");

  OutgoingMessage stop;
  stop.set_remote(*server_port).set_id(kStopId);
  ASSERT_EQ(task->send(stop), Status::kSuccess);
  EXPECT_EQ(server.wait(), 0);
}

TEST(ClientThreadsTest, ManyThreadsShareOneTasksNameSpace) {
  // Rights made by one thread are usable from another; handles destroyed on
  // many threads at once (fire-and-forget releases) all take effect.
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path());
  ASSERT_NE(task, nullptr);

  std::vector<ReceiveRight> ports(400);
  for (auto& p : ports) {
    auto made = task->make_port();
    ASSERT_TRUE(made.ok());
    p = std::move(*made);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < ports.size(); i += 8) {
        OutgoingMessage m;
        m.set_remote(ports[i], Disposition::kMakeSend).set_body(std::to_string(i));
        EXPECT_EQ(task->send(m), Status::kSuccess);
        auto r = ports[i].receive(ReceiveOptions{0ms});
        EXPECT_EQ(r.status(), Status::kSuccess);
        if (r) {
          EXPECT_EQ(r->body_text(), std::to_string(i));
        }
        ports[i].reset();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto names = task->names();
  ASSERT_EQ(names.status(), Status::kSuccess);
  EXPECT_TRUE(names->empty());
}

}  // namespace
}  // namespace portd::testing
