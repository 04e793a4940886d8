// Smoke test: the real portd binary on a temporary socket, spoken to with raw
// frames. Hello, allocate a port, send to it, receive the message back; and a
// malformed frame closes that connection only; and the daemon is one thread.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "portd/status.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

constexpr uint8_t kMakeSend = 20;
constexpr uint8_t kPortSend = 17;
constexpr uint32_t kRightReceive = 1;

int32_t code(Status s) { return static_cast<int32_t>(s); }

TEST(DaemonSmoke, HelloAllocateSendReceive) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient client(daemon.socket_path());
  ASSERT_TRUE(client.connected());

  // hello
  ASSERT_TRUE(client.request(1, [](auto r) {
    auto h = r.initHello();
    h.setVersion(7);  // newer than the daemon: it answers with its own
    h.setCommand("smoke");
  }));
  uint64_t task = 0;
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto& fds) {
    EXPECT_EQ(reply.getId(), 1u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_TRUE(fds.empty());
    ASSERT_EQ(reply.which(), wire::Reply::HELLO);
    auto h = reply.getHello();
    EXPECT_EQ(h.getVersion(), wire::PROTOCOL_VERSION);
    EXPECT_EQ(h.getDaemonPid(), static_cast<uint32_t>(daemon.pid()));
    EXPECT_EQ(h.getMaxFrameBytes(), 4u << 20);
    EXPECT_EQ(h.getMaxInlineBody(), 1u << 20);
    task = h.getTask();
  }));
  EXPECT_NE(task, 0u);

  // allocate a receive right
  ASSERT_TRUE(client.request(2, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  uint32_t port = 0;
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), 2u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    ASSERT_EQ(reply.which(), wire::Reply::NAME);
    port = reply.getName();
  }));
  ASSERT_NE(port, 0u);
  ASSERT_NE(port, 0xffffffffu);

  // send to it, making a send right from the receive right
  const std::string text = "hello, port";
  ASSERT_TRUE(client.request(3, [&](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(port);
    m.setRemoteDisposition(kMakeSend);
    m.setId(4242);
    m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(text.data()), text.size()));
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), 3u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
  }));

  // receive it
  ASSERT_TRUE(client.request(4, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(0);
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto& fds) {
    EXPECT_EQ(reply.getId(), 4u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_EQ(reply.getFdCount(), 0u);
    EXPECT_TRUE(fds.empty());
    ASSERT_EQ(reply.which(), wire::Reply::MESSAGE);
    auto m = reply.getMessage();
    EXPECT_EQ(m.getId(), 4242);
    EXPECT_EQ(m.getLocal(), port);
    EXPECT_EQ(m.getLocalType(), kPortSend);
    EXPECT_EQ(m.getRemote(), 0u);
    EXPECT_EQ(m.getRemoteType(), 0u);
    auto body = m.getBody();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(body.begin()), body.size()), text);
    EXPECT_EQ(m.getDescriptors().size(), 0u);
    auto t = m.getTrailer();
    EXPECT_EQ(t.getSenderPid(), static_cast<uint32_t>(::getpid()));
    EXPECT_EQ(t.getSenderUid(), ::getuid());
    EXPECT_EQ(t.getSenderGid(), ::getgid());
    EXPECT_EQ(t.getSenderTask(), task);
    EXPECT_EQ(t.getSeqno(), 0u);  // the port's first message
  }));

  // the queue is empty again
  ASSERT_TRUE(client.request(5, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(0);
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), 5u);
    EXPECT_EQ(reply.getStatus(), code(Status::kRcvTimedOut));
    EXPECT_EQ(reply.which(), wire::Reply::NONE);
  }));
}

TEST(DaemonSmoke, MalformedFrameClosesThatConnectionOnly) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient good(daemon.socket_path());
  RawClient bad(daemon.socket_path());
  const uint64_t good_task = good.hello("good");
  const uint64_t bad_task = bad.hello("bad");
  ASSERT_NE(good_task, 0u);
  ASSERT_NE(bad_task, 0u);
  EXPECT_NE(good_task, bad_task);

  // A segment table declaring 2^32 segments.
  const uint32_t garbage[2] = {0xffffffffu, 0};
  ASSERT_TRUE(bad.send_bytes(garbage, sizeof garbage));
  EXPECT_TRUE(bad.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("task " + std::to_string(bad_task) + " disconnected (violation"))
      << daemon.log();

  // The other client is unaffected.
  ASSERT_TRUE(good.request(2, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  ASSERT_TRUE(good.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), 2u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_EQ(reply.which(), wire::Reply::NAME);
  }));
  EXPECT_TRUE(daemon.running());
}

// DESIGN section 4: one thread runs the event loop and owns all state. With
// clients connected, a receive parked and a timer running, the daemon is
// still one thread (a logging or worker thread would show here).
TEST(DaemonSmoke, OneThreadServesEveryClient) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(daemon.socket_path()));
    ASSERT_NE(clients.back()->hello("client " + std::to_string(i)), 0u);
  }
  RawClient& c = *clients.front();
  ASSERT_TRUE(c.request(2, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  uint32_t port = 0;
  ASSERT_TRUE(c.next_reply([&](wire::Reply::Reader reply, auto&) { port = reply.getName(); }));
  ASSERT_TRUE(c.request(3, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(60000);
  }));
  ASSERT_TRUE(daemon.wait_for_log("hello: pid " + std::to_string(::getpid()))) << daemon.log();

  std::ifstream status("/proc/" + std::to_string(daemon.pid()) + "/status");
  std::string line, threads;
  while (std::getline(status, line))
    if (line.rfind("Threads:", 0) == 0) threads = line;
  EXPECT_EQ(threads, "Threads:\t1");
}

}  // namespace
}  // namespace portd::testing
