// The Server in this process, on its own thread, with options the portd
// binary does not expose: here, a small bound on unsent fds, to check that a
// client that does not read its replies stops being read from (and gets
// every reply and fd once it reads).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "tests/integration/daemon_fixture.h"
#include "tests/integration/inprocess_server.h"

namespace portd::testing {
namespace {

using proto::UniqueFd;

UniqueFd sealed(const std::string& text) {
  UniqueFd fd(::memfd_create("inprocess", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  EXPECT_EQ(
      ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 0);
  return fd;
}

TEST(InProcessServer, UnsentFdsPauseTheReceiver) {
  server::ServerOptions options;
  options.max_unsent_fds = 4;
  InProcessServer daemon(options);
  RawClient receiver(daemon.path());
  RawClient sender(daemon.path());
  ASSERT_NE(receiver.hello("receiver"), 0u);
  ASSERT_NE(sender.hello("sender"), 0u);

  uint32_t service = 0, send_right = 0;
  ASSERT_TRUE(receiver.request(2, [](auto r) { r.initBootstrapCheckIn().setName("com.t.fds"); }));
  ASSERT_TRUE(receiver.next_reply([&](wire::Reply::Reader r, auto&) { service = r.getName(); }));
  ASSERT_TRUE(sender.request(2, [](auto r) { r.initBootstrapLookUp().setName("com.t.fds"); }));
  ASSERT_TRUE(sender.next_reply([&](wire::Reply::Reader r, auto&) { send_right = r.getName(); }));
  ASSERT_NE(service, 0u);
  ASSERT_NE(send_right, 0u);

  // Parked receives for four large messages and eight with an fd each, then
  // a names request whose reply says they are all parked.
  constexpr int kLarge = 4;
  constexpr int kMessages = 8;
  for (int i = 0; i < kLarge + kMessages; ++i)
    ASSERT_TRUE(receiver.request(10 + i, [&](auto r) { r.initReceive().setName(service); }));
  ASSERT_TRUE(receiver.request(99, [](auto r) { r.setNames(); }));
  uint64_t id = 0;
  ASSERT_TRUE(receiver.next_reply([&](wire::Reply::Reader r, auto&) { id = r.getId(); }));
  ASSERT_EQ(id, 99u);

  // The large messages fill the receiver's socket (it is not reading), so
  // the replies carrying fds that follow cannot be written: they pile up
  // whatever the timing of the daemon's turns.
  const std::string large(512 * 1024, 'L');
  proto::FrameWriter writer;
  for (int i = 0; i < kLarge; ++i) {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::Request>();
    r.setId(50 + i);
    auto m = r.initSend().initMessage();
    m.setRemote(send_right);
    m.setRemoteDisposition(19);  // COPY_SEND
    m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(large.data()), large.size()));
    writer.append(message);
  }
  for (int i = 0; i < kMessages; ++i) {
    const std::string text = "message " + std::to_string(i);
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::Request>();
    r.setId(100 + i);
    r.setFdCount(1);
    auto m = r.initSend().initMessage();
    m.setRemote(send_right);
    m.setRemoteDisposition(19);  // COPY_SEND
    m.initDescriptors(1)[0].initOol().setSize(text.size());
    std::vector<UniqueFd> fds;
    fds.push_back(sealed(text));
    writer.append(message, std::move(fds));
  }
  while (writer.write_to(sender.fd()) == -EAGAIN) {
    pollfd p{sender.fd(), POLLOUT, 0};
    ::poll(&p, 1, 1000);
  }
  for (int i = 0; i < kLarge + kMessages; ++i) {
    int32_t status = -1;
    ASSERT_TRUE(sender.next_reply([&](wire::Reply::Reader r, auto&) { status = r.getStatus(); }));
    EXPECT_EQ(status, 0);
  }
  EXPECT_TRUE(daemon.wait_for_log("fds unsent, reading paused"));

  for (int i = 0; i < kLarge; ++i) {
    ASSERT_TRUE(receiver.next_reply([&](wire::Reply::Reader r, std::vector<UniqueFd>& fds) {
      EXPECT_EQ(r.getId(), static_cast<uint64_t>(10 + i));
      EXPECT_EQ(r.getMessage().getBody().size(), large.size());
      EXPECT_TRUE(fds.empty());
    }));
  }
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(receiver.next_reply([&](wire::Reply::Reader r, std::vector<UniqueFd>& fds) {
      EXPECT_EQ(r.getId(), static_cast<uint64_t>(10 + kLarge + i));
      EXPECT_EQ(r.getStatus(), 0);
      ASSERT_EQ(fds.size(), 1u);
      char buf[32] = {};
      const ssize_t n = ::pread(fds[0].get(), buf, sizeof buf, 0);
      EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0),
                "message " + std::to_string(i));
    }));
  }
  EXPECT_TRUE(daemon.wait_for_log("reading resumed"));
  // And the receiver is served again.
  ASSERT_TRUE(receiver.request(200, [](auto r) { r.setNames(); }));
  ASSERT_TRUE(receiver.next_reply([&](wire::Reply::Reader r, auto&) { id = r.getId(); }));
  EXPECT_EQ(id, 200u);
}

}  // namespace
}  // namespace portd::testing
