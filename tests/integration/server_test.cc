// The daemon shell against the real portd binary: hello rules, parked
// requests (cross-connection wake-ups, timeouts, cancel), sendReceive, OOL
// fds, protocol violations, cleanup on disconnect, the socket lock, shutdown.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "portd/proto/frame.h"
#include "portd/status.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using proto::UniqueFd;

constexpr uint8_t kMakeSend = 20;
constexpr uint8_t kMakeSendOnce = 21;
constexpr uint8_t kMoveSendOnce = 18;
constexpr uint8_t kPortSendOnce = 18;
constexpr uint32_t kRightReceive = 1;

int32_t code(Status s) { return static_cast<int32_t>(s); }

// A reply, copied out of its frame.
struct Got {
  bool ok = false;
  uint64_t id = 0;
  int32_t status = -1;
  wire::Reply::Which which = wire::Reply::NONE;
  uint32_t name = 0;
  std::string limit;
  uint32_t needed_size = 0;
  // message
  int32_t msg_id = 0;
  uint32_t local = 0;
  uint32_t remote = 0;
  uint8_t remote_type = 0;
  std::string body;
  std::vector<uint64_t> ool_sizes;
  std::vector<UniqueFd> fds;
};

Got next(RawClient& c, int timeout_ms = 5000) {
  Got g;
  g.ok = c.next_reply(
      [&](wire::Reply::Reader r, std::vector<UniqueFd>& fds) {
        g.id = r.getId();
        g.status = r.getStatus();
        g.which = r.which();
        g.limit = r.getLimit().cStr();
        g.needed_size = r.getNeededSize();
        if (g.which == wire::Reply::NAME) g.name = r.getName();
        if (g.which == wire::Reply::MESSAGE) {
          auto m = r.getMessage();
          g.msg_id = m.getId();
          g.local = m.getLocal();
          g.remote = m.getRemote();
          g.remote_type = m.getRemoteType();
          auto b = m.getBody();
          g.body.assign(reinterpret_cast<const char*>(b.begin()), b.size());
          for (auto d : m.getDescriptors())
            if (d.which() == wire::OutDescriptor::OOL) g.ool_sizes.push_back(d.getOol().getSize());
        }
        g.fds = std::move(fds);
      },
      timeout_ms);
  return g;
}

uint32_t allocate(RawClient& c, uint64_t id) {
  EXPECT_TRUE(c.request(id, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  Got g = next(c);
  EXPECT_EQ(g.id, id);
  EXPECT_EQ(g.status, code(Status::kSuccess));
  return g.name;
}

void send_text(RawClient& c, uint64_t id, uint32_t port, uint8_t disposition,
               const std::string& text, int64_t timeout_ms = -1) {
  ASSERT_TRUE(c.request(id, [&](auto r) {
    auto s = r.initSend();
    auto m = s.initMessage();
    m.setRemote(port);
    m.setRemoteDisposition(disposition);
    m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(text.data()), text.size()));
    s.initOptions().setTimeoutMs(timeout_ms);
  }));
}

void receive(RawClient& c, uint64_t id, uint32_t port, int64_t timeout_ms) {
  ASSERT_TRUE(c.request(id, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(timeout_ms);
  }));
}

// A memfd holding `text`, with `seals` (by default every seal a sealed region
// needs).
UniqueFd sealed_memfd(const std::string& text, bool seal = true,
                      int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) {
  UniqueFd fd(::memfd_create("server_test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  if (seal) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

// True once `done()` is, asked every `interval` at most `tries` times.
bool eventually(const std::function<bool()>& done, int tries, std::chrono::milliseconds interval) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(interval);
  }
  return false;
}

// Waits until the daemon's fd count drops to `expected` (closing is
// asynchronous to the test).
bool fd_count_settles(const DaemonProcess& d, int expected) {
  return eventually([&] { return d.open_fd_count() == expected; }, 500,
                    std::chrono::milliseconds(5));
}

// ---------------------------------------------------------------------------
// Hello

TEST(ServerHello, RequestBeforeHelloIsAViolation) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_TRUE(c.request(1, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("violation: first request is not hello")) << daemon.log();
}

TEST(ServerHello, VersionZeroIsRefused) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_TRUE(c.request(1, [](auto r) { r.initHello().setVersion(0); }));
  Got g = next(c);
  ASSERT_TRUE(g.ok);
  EXPECT_EQ(g.id, 1u);
  EXPECT_EQ(g.status, code(Status::kNotSupported));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("(refused: protocol version 0)")) << daemon.log();
}

TEST(ServerHello, SecondHelloIsAnInvalidArgument) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  ASSERT_TRUE(c.request(2, [](auto r) { r.initHello().setVersion(1); }));
  Got g = next(c);
  EXPECT_EQ(g.id, 2u);
  EXPECT_EQ(g.status, code(Status::kInvalidArgument));
}

TEST(ServerHello, TaskIdsAreNeverReused) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    RawClient c(daemon.socket_path());
    const uint64_t task = c.hello();
    EXPECT_GT(task, last);
    last = task;
  }
}

// ---------------------------------------------------------------------------
// Invalid requests get error replies; the connection goes on

TEST(ServerRequests, InvalidRequestsGetErrorReplies) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);

  ASSERT_TRUE(c.request(2, [](auto r) { r.initAllocate().setRight(99); }));
  Got g = next(c);
  EXPECT_EQ(g.id, 2u);
  EXPECT_EQ(g.status, code(Status::kInvalidValue));

  ASSERT_TRUE(c.request(3, [](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(0x103);
    m.setRemoteDisposition(16);  // MOVE_RECEIVE as a destination
  }));
  g = next(c);
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kSendInvalidHeader));

  ASSERT_TRUE(
      c.request(4, [](auto r) { r.initBootstrapCheckIn().setName(std::string(200, 'x')); }));
  g = next(c);
  EXPECT_EQ(g.id, 4u);
  EXPECT_EQ(g.status, code(Status::kInvalidArgument));

  // A body over the inline limit names the limit.
  ASSERT_TRUE(c.request(5, [](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(0x103);
    m.setRemoteDisposition(kMakeSend);
    m.initBody((1u << 20) + 1);
  }));
  g = next(c);
  EXPECT_EQ(g.id, 5u);
  EXPECT_EQ(g.status, code(Status::kSendTooLarge));
  EXPECT_EQ(g.limit, "message_bytes");

  // Still alive.
  EXPECT_NE(allocate(c, 6), 0u);
}

// ---------------------------------------------------------------------------
// Parked requests

TEST(ServerParking, ParkedReceiveIsCompletedByAnotherClientsSend) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient server(daemon.socket_path());
  RawClient client(daemon.socket_path());
  ASSERT_NE(server.hello("server"), 0u);
  ASSERT_NE(client.hello("client"), 0u);

  // The server checks in a name and waits on it.
  ASSERT_TRUE(server.request(2, [](auto r) { r.initBootstrapCheckIn().setName("com.test.svc"); }));
  Got g = next(server);
  ASSERT_EQ(g.status, code(Status::kSuccess));
  const uint32_t service = g.name;
  receive(server, 3, service, -1);
  EXPECT_FALSE(next(server, 100).ok);  // parked: no reply yet

  // The client looks it up and sends.
  ASSERT_TRUE(client.request(2, [](auto r) { r.initBootstrapLookUp().setName("com.test.svc"); }));
  g = next(client);
  ASSERT_EQ(g.status, code(Status::kSuccess));
  const uint32_t send_right = g.name;
  send_text(client, 3, send_right, 19 /* COPY_SEND */, "wake up");
  g = next(client);
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kSuccess));

  g = next(server);
  ASSERT_TRUE(g.ok);
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kSuccess));
  EXPECT_EQ(g.body, "wake up");
  EXPECT_EQ(g.local, service);
}

TEST(ServerParking, ReceiveTimesOut) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  const auto start = std::chrono::steady_clock::now();
  receive(c, 3, port, 50);
  Got g = next(c);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kRcvTimedOut));
  EXPECT_GE(waited, std::chrono::milliseconds(45));
}

TEST(ServerParking, CancelInterruptsAParkedReceive) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  receive(c, 3, port, -1);
  ASSERT_TRUE(c.request(4, [](auto r) { r.setCancel(3); }));
  Got first = next(c);
  Got second = next(c);
  EXPECT_EQ(first.id, 3u);
  EXPECT_EQ(first.status, code(Status::kRcvInterrupted));
  EXPECT_EQ(second.id, 4u);
  EXPECT_EQ(second.status, code(Status::kSuccess));

  // Cancelling what is not in progress.
  ASSERT_TRUE(c.request(5, [](auto r) { r.setCancel(3); }));
  Got g = next(c);
  EXPECT_EQ(g.id, 5u);
  EXPECT_EQ(g.status, code(Status::kNotFound));
}

TEST(ServerParking, DuplicateInProgressIdIsRefused) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  receive(c, 3, port, 300);
  receive(c, 3, port, 0);  // same id while the first is parked
  Got g = next(c);
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kInvalidArgument));
  g = next(c);  // the parked one times out normally
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kRcvTimedOut));
}

TEST(ServerParking, SendToAFullQueueWaitsThenTimesOut) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  ASSERT_TRUE(c.request(3, [&](auto r) {
    auto s = r.initSetAttributes();
    s.setName(port);
    s.setQlimit(1);
  }));
  EXPECT_EQ(next(c).status, code(Status::kSuccess));
  send_text(c, 4, port, kMakeSend, "fills the queue");
  EXPECT_EQ(next(c).status, code(Status::kSuccess));
  send_text(c, 5, port, kMakeSend, "no room", 0);
  Got g = next(c);
  EXPECT_EQ(g.id, 5u);
  EXPECT_EQ(g.status, code(Status::kSendTimedOut));
  send_text(c, 6, port, kMakeSend, "waits", 40);
  g = next(c);
  EXPECT_EQ(g.id, 6u);
  EXPECT_EQ(g.status, code(Status::kSendTimedOut));

  // A parked send completes when a receive makes room.
  send_text(c, 7, port, kMakeSend, "second", -1);
  EXPECT_FALSE(next(c, 100).ok);
  receive(c, 8, port, 0);
  Got a = next(c);
  Got b = next(c);
  EXPECT_EQ(a.id, 8u);
  EXPECT_EQ(a.body, "fills the queue");
  EXPECT_EQ(b.id, 7u);
  EXPECT_EQ(b.status, code(Status::kSuccess));
  receive(c, 9, port, 0);
  g = next(c);
  EXPECT_EQ(g.body, "second");
}

TEST(ServerParking, SendReceiveIsOneRoundTrip) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient server(daemon.socket_path());
  RawClient client(daemon.socket_path());
  ASSERT_NE(server.hello("server"), 0u);
  ASSERT_NE(client.hello("client"), 0u);

  ASSERT_TRUE(server.request(2, [](auto r) { r.initBootstrapCheckIn().setName("com.test.rpc"); }));
  const uint32_t service = next(server).name;
  ASSERT_TRUE(client.request(2, [](auto r) { r.initBootstrapLookUp().setName("com.test.rpc"); }));
  const uint32_t service_send = next(client).name;
  const uint32_t reply_port = allocate(client, 3);

  // Request with a send-once reply right; then wait on the reply port.
  ASSERT_TRUE(client.request(4, [&](auto r) {
    auto sr = r.initSendReceive();
    auto m = sr.initMessage();
    m.setRemote(service_send);
    m.setRemoteDisposition(19);
    m.setLocal(reply_port);
    m.setLocalDisposition(kMakeSendOnce);
    m.setId(500);
    m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>("ping"), 4));
    auto o = sr.initReceiveOptions();
    o.setName(reply_port);
  }));
  EXPECT_FALSE(next(client, 100).ok);  // parked in its receive phase

  receive(server, 3, service, 1000);
  Got req = next(server);
  ASSERT_EQ(req.status, code(Status::kSuccess));
  EXPECT_EQ(req.body, "ping");
  EXPECT_EQ(req.msg_id, 500);
  EXPECT_EQ(req.remote_type, kPortSendOnce);
  ASSERT_NE(req.remote, 0u);

  ASSERT_TRUE(server.request(4, [&](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(req.remote);
    m.setRemoteDisposition(kMoveSendOnce);
    m.setId(600);
    m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>("pong"), 4));
  }));
  EXPECT_EQ(next(server).status, code(Status::kSuccess));

  Got rep = next(client);
  ASSERT_TRUE(rep.ok);
  EXPECT_EQ(rep.id, 4u);
  EXPECT_EQ(rep.status, code(Status::kSuccess));
  EXPECT_EQ(rep.body, "pong");
  EXPECT_EQ(rep.msg_id, 600);
  EXPECT_EQ(rep.local, reply_port);
}

TEST(ServerParking, SendReceiveWithASendErrorAnswersTheSendError) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  ASSERT_TRUE(c.request(3, [&](auto r) {
    auto sr = r.initSendReceive();
    auto m = sr.initMessage();
    m.setRemote(port + 0x100);  // no such name
    m.setRemoteDisposition(19);
    sr.initReceiveOptions().setName(port);
  }));
  Got g = next(c);
  EXPECT_EQ(g.id, 3u);
  EXPECT_EQ(g.status, code(Status::kSendInvalidDest));
}

TEST(ServerParking, LookUpWaitsForTheName) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient a(daemon.socket_path());
  RawClient b(daemon.socket_path());
  ASSERT_NE(a.hello(), 0u);
  ASSERT_NE(b.hello(), 0u);
  ASSERT_TRUE(a.request(2, [](auto r) {
    auto l = r.initBootstrapLookUp();
    l.setName("com.test.later");
    l.setTimeoutMs(5000);
  }));
  EXPECT_FALSE(next(a, 100).ok);
  ASSERT_TRUE(b.request(2, [](auto r) { r.initBootstrapCheckIn().setName("com.test.later"); }));
  EXPECT_EQ(next(b).status, code(Status::kSuccess));
  Got g = next(a);
  EXPECT_EQ(g.id, 2u);
  EXPECT_EQ(g.status, code(Status::kSuccess));
  EXPECT_NE(g.name, 0u);
}

// ---------------------------------------------------------------------------
// Out-of-line memory

TEST(ServerOol, SealedMemfdTravelsToTheReceiver) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  const int baseline = daemon.open_fd_count();

  const std::string payload = "out-of-line payload";
  std::vector<UniqueFd> fds;
  fds.push_back(sealed_memfd(payload));
  ASSERT_TRUE(c.request(
      3,
      [&](auto r) {
        auto m = r.initSend().initMessage();
        m.setRemote(port);
        m.setRemoteDisposition(kMakeSend);
        m.initDescriptors(1)[0].initOol().setSize(payload.size());
      },
      std::move(fds)));
  Got g = next(c);
  ASSERT_EQ(g.status, code(Status::kSuccess));
  EXPECT_EQ(daemon.open_fd_count(), baseline + 1);  // held while queued

  receive(c, 4, port, 0);
  g = next(c);
  ASSERT_EQ(g.status, code(Status::kSuccess));
  ASSERT_EQ(g.fds.size(), 1u);
  EXPECT_EQ(g.ool_sizes, std::vector<uint64_t>{payload.size()});
  char buf[64] = {};
  EXPECT_EQ(::pread(g.fds[0].get(), buf, sizeof buf, 0), static_cast<ssize_t>(payload.size()));
  EXPECT_EQ(std::string(buf, payload.size()), payload);
  EXPECT_TRUE(fd_count_settles(daemon, baseline));
}

TEST(ServerOol, UnsealedOrShortMemoryIsRefused) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  const int baseline = daemon.open_fd_count();

  auto send_ool = [&](uint64_t id, UniqueFd fd, uint64_t size, bool is_volatile) {
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(fd));
    EXPECT_TRUE(c.request(
        id,
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(port);
          m.setRemoteDisposition(kMakeSend);
          auto o = m.initDescriptors(1)[0].initOol();
          o.setSize(size);
          o.setVolatile(is_volatile);
        },
        std::move(fds)));
    return next(c);
  };
  Got g = send_ool(3, sealed_memfd("abc", false), 3, false);
  EXPECT_EQ(g.status, code(Status::kSendInvalidMemory));
  g = send_ool(4, sealed_memfd("abc"), 4, false);  // shorter than declared
  EXPECT_EQ(g.status, code(Status::kSendInvalidMemory));
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  ::close(pipefd[1]);
  g = send_ool(5, UniqueFd(pipefd[0]), 0, true);  // not a regular file
  EXPECT_EQ(g.status, code(Status::kSendInvalidMemory));
  EXPECT_TRUE(fd_count_settles(daemon, baseline));  // every refused fd was closed

  // Volatile memory need not be sealed against writing, but it must not be
  // able to shrink under a receiver's mapping.
  g = send_ool(6, sealed_memfd("abc", false), 3, true);
  EXPECT_EQ(g.status, code(Status::kSendInvalidMemory));
  g = send_ool(7, sealed_memfd("abc", true, F_SEAL_SHRINK), 3, true);
  EXPECT_EQ(g.status, code(Status::kSuccess));
}

TEST(ServerOol, FrameDeclaringMoreFdsThanItBroughtIsAViolation) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(2);
  r.setFdCount(2);
  r.initSend().initMessage().initDescriptors(2)[0].initOol();
  std::vector<UniqueFd> one;
  one.push_back(sealed_memfd("x"));
  ASSERT_TRUE(c.send(message, std::move(one)));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("frame declares 2 fds but 1 arrived")) << daemon.log();
}

TEST(ServerOol, StrayFdsAreAViolation) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(2);
  r.setNames();  // declares no fds
  std::vector<UniqueFd> one;
  one.push_back(sealed_memfd("x"));
  ASSERT_TRUE(c.send(message, std::move(one)));
  // The names reply may come first; then the connection closes.
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("fds sent without a frame declaring them")) << daemon.log();
}

// ---------------------------------------------------------------------------
// Violations and cleanup

TEST(ServerCleanup, MalformedPointerIsAViolation) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  // One segment, one word: a struct root pointer far out of bounds.
  const uint32_t frame[4] = {0, 1, 0x1fffff00u << 2, 0x00010002};
  ASSERT_TRUE(c.send_bytes(frame, sizeof frame));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("violation: malformed frame")) << daemon.log();
}

TEST(ServerCleanup, OversizedFrameIsAViolation) {
  DaemonProcess daemon({"--max-frame-bytes", "65536"});
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t header[2] = {0, 65536 / 8};  // 8 bytes over with the table
  ASSERT_TRUE(c.send_bytes(header, sizeof header));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(daemon.wait_for_log("exceeds the limit of 65536")) << daemon.log();
}

TEST(ServerCleanup, DisconnectReleasesEverything) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient observer(daemon.socket_path());
  ASSERT_NE(observer.hello("observer"), 0u);
  const int baseline = daemon.open_fd_count();
  {
    RawClient c(daemon.socket_path());
    ASSERT_NE(c.hello(), 0u);
    const uint32_t port = allocate(c, 2);
    // A queued OOL message, a parked receive with a timer, a checked-in name.
    std::vector<UniqueFd> fds;
    fds.push_back(sealed_memfd("held"));
    ASSERT_TRUE(c.request(
        3,
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(port);
          m.setRemoteDisposition(kMakeSend);
          m.initDescriptors(1)[0].initOol().setSize(4);
        },
        std::move(fds)));
    EXPECT_EQ(next(c).status, code(Status::kSuccess));
    const uint32_t other = allocate(c, 4);
    receive(c, 5, other, 60000);
    ASSERT_TRUE(c.request(6, [](auto r) { r.initBootstrapCheckIn().setName("com.test.gone"); }));
    EXPECT_EQ(next(c).status, code(Status::kSuccess));
    EXPECT_EQ(daemon.open_fd_count(), baseline + 2);  // its socket and the memfd
  }
  EXPECT_TRUE(fd_count_settles(daemon, baseline)) << daemon.open_fd_count();
  EXPECT_TRUE(daemon.wait_for_log("disconnected (eof")) << daemon.log();

  // Its bootstrap name went with its port.
  ASSERT_TRUE(
      observer.request(2, [](auto r) { r.initBootstrapLookUp().setName("com.test.gone"); }));
  EXPECT_EQ(next(observer).status, code(Status::kBootstrapUnknownService));
}

// Waits until the kernel has stopped `pid` (state T in /proc/PID/stat).
bool wait_stopped(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  return eventually(
      [&] {
        FILE* f = std::fopen(path.c_str(), "r");
        if (f == nullptr) return false;
        int got_pid = 0;
        char comm[64] = {};
        char state = 0;
        const int n = std::fscanf(f, "%d (%63[^)]) %c", &got_pid, comm, &state);
        std::fclose(f);
        return n == 3 && (state == 'T' || state == 't');
      },
      1000, std::chrono::milliseconds(1));
}

// A client's last request and its end of stream can reach the daemon in one
// readiness event: it sees them together and its read returns the request's
// bytes only. The daemon must still read on and see the end: its sockets are
// edge-triggered and no new edge comes (docs/server.md, reading). The daemon
// is stopped while each client writes and closes, so both arrive at once.
TEST(ServerCleanup, ARequestAndTheEndOfStreamArrivingTogetherCloseTheTask) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient observer(daemon.socket_path());
  ASSERT_NE(observer.hello("observer"), 0u);
  const int baseline = daemon.open_fd_count();
  constexpr int kClients = 3;
  for (int i = 0; i < kClients; ++i) {
    {
      RawClient c(daemon.socket_path());
      ASSERT_NE(c.hello(), 0u);
      const uint32_t port = allocate(c, 2);  // answered: the daemon waits for this socket
      ASSERT_EQ(::kill(daemon.pid(), SIGSTOP), 0);
      ASSERT_TRUE(wait_stopped(daemon.pid()));
      // A receive that waits: no reply, so only the end of stream can tell
      // the daemon that this client is gone.
      receive(c, 3, port, -1);
    }  // closed, with the daemon stopped
    ASSERT_EQ(::kill(daemon.pid(), SIGCONT), 0);
  }
  EXPECT_TRUE(fd_count_settles(daemon, baseline)) << daemon.open_fd_count() << "\n" << daemon.log();
  const std::string log = daemon.log();
  int closed = 0;
  const std::string gone = "disconnected (eof: end of stream): pid " + std::to_string(::getpid()) +
                           " uid " + std::to_string(::getuid()) + " command 'portd-test'";
  for (size_t at = log.find(gone); at != std::string::npos; at = log.find(gone, at + 1)) ++closed;
  EXPECT_EQ(closed, kClients) << log;
}

// Bad input never crashes the daemon: valid frames with random bytes
// flipped or cut short, sent by many short-lived clients (with and without
// hello), then a well-behaved client still gets served. Under ASan the
// fixture also fails the test on any sanitizer report.
TEST(ServerRobustness, MutatedFramesNeverHurtTheDaemon) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());

  std::vector<std::vector<char>> bases;
  auto add = [&](const std::function<void(wire::Request::Builder)>& fill) {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::Request>();
    r.setId(2);
    fill(r);
    bases.push_back(proto::encode_frame(message));
  };
  add([](auto r) {
    auto s = r.initSend();
    auto m = s.initMessage();
    m.setRemote(0x103);
    m.setRemoteDisposition(kMakeSend);
    m.setLocal(0x203);
    m.setLocalDisposition(kMakeSendOnce);
    m.initBody(40);
    auto ds = m.initDescriptors(3);
    ds[0].initPort().setDisposition(19);
    ds[1].initOolPorts().initNames(4);
    ds[2].initOolPorts().setDisposition(17);
    s.initOptions().setTimeoutMs(5);
  });
  add([](auto r) {
    auto o = r.initReceive();
    o.setName(0x103);
    o.setTimeoutMs(-1);
  });
  add([](auto r) {
    auto b = r.initBootstrapRegister();
    b.setName("com.test.fuzz");
    b.setPort(0x103);
  });
  add([](auto r) {
    auto n = r.initRequestNotification();
    n.setName(0x103);
    n.setVariant(72);
    n.setNotify(0x103);
  });
  add([](auto r) { r.initHello().setCommand("fuzz"); });

  std::mt19937 rng(20240601);
  for (int i = 0; i < 300; ++i) {
    RawClient c(daemon.socket_path());
    ASSERT_TRUE(c.connected());
    if (i % 3 != 0) c.hello("fuzz");
    std::vector<char> frame = bases[rng() % bases.size()];
    // The first round of each kind is sent intact (the mutations must start
    // from frames the daemon accepts).
    if (i >= static_cast<int>(bases.size())) {
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) frame[rng() % frame.size()] = static_cast<char>(rng());
      if (rng() % 4 == 0) frame.resize(rng() % frame.size());
    }
    c.send_bytes(frame.data(), frame.size());
    if (i % 10 == 0) c.wait_closed(20);  // sometimes linger for the reply
  }

  RawClient good(daemon.socket_path());
  ASSERT_NE(good.hello(), 0u);
  EXPECT_NE(allocate(good, 2), 0u);
  EXPECT_TRUE(daemon.running());
}

// A client that sends requests and never reads its replies: the daemon stops
// reading from it once 16 MiB of replies wait, serves everyone else
// meanwhile, and loses nothing when the client finally reads.
TEST(ServerFlowControl, UnreadRepliesPauseTheClientNotTheDaemon) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient flood(daemon.socket_path());
  const uint64_t task = flood.hello("flood");
  ASSERT_NE(task, 0u);

  // 2000 names make each names() reply about 16 KiB (8 bytes a name).
  constexpr int kPorts = 2000;
  for (int i = 0; i < kPorts; ++i)
    ASSERT_TRUE(flood.request(100 + i, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  for (int i = 0; i < kPorts; ++i) ASSERT_EQ(next(flood).status, code(Status::kSuccess));

  // 1500 names requests in one write (so the client itself never blocks):
  // about 24 MiB of replies, none read yet.
  constexpr int kRequests = 1500;
  std::vector<char> batch;
  for (int i = 0; i < kRequests; ++i) {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::Request>();
    r.setId(10000 + i);
    r.setNames();
    auto frame = proto::encode_frame(message);
    batch.insert(batch.end(), frame.begin(), frame.end());
  }
  ASSERT_TRUE(flood.send_bytes(batch.data(), batch.size()));
  // Generous: under ASan on a loaded machine this takes seconds.
  EXPECT_TRUE(daemon.wait_for_log("reading paused", 30000)) << daemon.log();

  RawClient other(daemon.socket_path());
  ASSERT_NE(other.hello("other"), 0u);
  EXPECT_NE(allocate(other, 2), 0u);

  for (int i = 0; i < kRequests; ++i) {
    Got g = next(flood);
    ASSERT_TRUE(g.ok) << i;
    ASSERT_EQ(g.id, static_cast<uint64_t>(10000 + i));
    ASSERT_EQ(g.status, code(Status::kSuccess));
    ASSERT_EQ(g.which, wire::Reply::NAMES);
  }
  EXPECT_TRUE(daemon.wait_for_log("reading resumed")) << daemon.log();
}

// ---------------------------------------------------------------------------
// The socket and its lock

TEST(ServerSocket, SecondDaemonOnTheSameSocketRefusesToStart) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  struct stat st;
  ASSERT_EQ(::stat(daemon.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execl(PORTD_BINARY, PORTD_BINARY, "--socket", daemon.socket_path().c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);

  // The first daemon still serves.
  RawClient c(daemon.socket_path());
  EXPECT_NE(c.hello(), 0u);
}

TEST(ServerSocket, StaleSocketIsReplacedAndFilesRemovedOnStop) {
  DaemonProcess first;
  ASSERT_TRUE(first.started());
  const std::string path = first.socket_path();
  // SIGKILL: no cleanup, the socket file stays behind.
  first.stop(SIGKILL);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execl(PORTD_BINARY, PORTD_BINARY, "--socket", path.c_str(), nullptr);
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 500 && !up; ++i) {
    RawClient c(path);
    up = c.connected() && c.hello() != 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(up);
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  EXPECT_NE(::stat((path + ".lock").c_str(), &st), 0);
}

TEST(ServerSocket, ShutdownClosesClientsAndRemovesTheSocket) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello(), 0u);
  const uint32_t port = allocate(c, 2);
  receive(c, 3, port, 60000);  // a parked request with a timer
  const std::string path = daemon.socket_path();
  const int status = daemon.stop(SIGTERM);
  ASSERT_NE(status, -1) << "portd did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(c.wait_closed());
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  EXPECT_NE(::stat((path + ".lock").c_str(), &st), 0);
  EXPECT_NE(daemon.log().find("disconnected (shutdown"), std::string::npos) << daemon.log();
}

}  // namespace
}  // namespace portd::testing
