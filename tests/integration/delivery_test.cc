// What the shell delivers, end to end over a real socket, in the two cases
// the driver once got wrong:
//  * a cached send (PORTD_SEND_WILL_NOTIFY) is not a failure: the message,
//    out-of-line memory included, belongs to the daemon and arrives intact
//    when it enters the queue (the real portd, a raw client, so that the
//    test sees exactly the frames and fds that travel);
//  * a receive whose rights could not all be named (the receiver's names
//    quota is full) still delivers the message, with those names
//    MACH_PORT_NULL and MACH_RCV_HEADER_ERROR or MACH_RCV_BODY_ERROR, and
//    libportd hands it over with that status (the daemon's Server in this
//    process, with a small names limit the portd binary cannot be given).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "portd/portd.h"
#include "tests/integration/cross_process.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/inprocess_server.h"

namespace portd::testing {
namespace {

using proto::UniqueFd;

// One reply, copied out of its frame.
struct Reply {
  bool ok = false;
  uint64_t id = 0;
  Status status = Status::kFailure;
  wire::Reply::Which which = wire::Reply::NONE;
  uint32_t name = 0;
  int32_t msg_id = 0;
  std::string body;
  std::vector<UniqueFd> fds;
};

Reply next(RawClient& c) {
  Reply g;
  g.ok = c.next_reply([&](wire::Reply::Reader r, std::vector<UniqueFd>& fds) {
    g.id = r.getId();
    g.status = static_cast<Status>(r.getStatus());
    g.which = r.which();
    if (g.which == wire::Reply::NAME) g.name = r.getName();
    if (g.which == wire::Reply::MESSAGE) {
      g.msg_id = r.getMessage().getId();
      auto b = r.getMessage().getBody();
      g.body.assign(reinterpret_cast<const char*>(b.begin()), b.size());
    }
    g.fds = std::move(fds);
  });
  return g;
}

Reply call(RawClient& c, uint64_t id, const std::function<void(wire::Request::Builder)>& fill,
           std::vector<UniqueFd> fds = {}) {
  EXPECT_TRUE(c.request(id, fill, std::move(fds)));
  Reply r = next(c);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.id, id);
  return r;
}

UniqueFd sealed_memfd(const std::string& text) {
  UniqueFd fd(::memfd_create("delivery_test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  EXPECT_EQ(
      ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 0);
  return fd;
}

constexpr uint8_t kMakeSend = 20;
constexpr uint8_t kMakeSendOnce = 21;

TEST(Delivery, ACachedMessageKeepsItsOutOfLineMemory) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient c(daemon.socket_path());
  ASSERT_NE(c.hello("delivery"), 0u);
  const uint32_t port = call(c, 1, [](auto r) { r.initAllocate().setRight(1); }).name;
  const uint32_t notify = call(c, 2, [](auto r) { r.initAllocate().setRight(1); }).name;
  ASSERT_NE(port, 0u);
  ASSERT_EQ(call(c, 3,
                 [&](auto r) {
                   auto a = r.initSetAttributes();
                   a.setName(port);
                   a.setQlimit(1);
                 })
                .status,
            Status::kSuccess);
  auto send = [&](uint64_t id, const std::string& body, bool with_ool) {
    std::vector<UniqueFd> fds;
    if (with_ool) fds.push_back(sealed_memfd("out of line bytes"));
    return call(
        c, id,
        [&](auto r) {
          r.setFdCount(with_ool ? 1 : 0);
          auto s = r.initSend();
          auto m = s.initMessage();
          m.setRemote(port);
          m.setRemoteDisposition(kMakeSend);
          m.setBody(
              capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(body.data()), body.size()));
          if (with_ool) m.initDescriptors(1)[0].initOol().setSize(17);
          auto o = s.initOptions();
          o.setTimeoutMs(0);
          o.setCache(true);
          o.setNotify(notify);
          o.setNotifyDisposition(kMakeSendOnce);
        },
        std::move(fds));
  };
  ASSERT_EQ(send(4, "first", false).status, Status::kSuccess);
  const int fds_before = daemon.open_fd_count();
  EXPECT_EQ(send(5, "cached", true).status, Status::kSendWillNotify);
  EXPECT_EQ(daemon.open_fd_count(), fds_before + 1);  // the daemon holds the memfd

  auto receive = [&](uint64_t id, uint32_t name) {
    return call(c, id, [&](auto r) {
      auto o = r.initReceive();
      o.setName(name);
      o.setTimeoutMs(0);
    });
  };
  EXPECT_EQ(receive(6, port).body, "first");
  EXPECT_EQ(receive(7, notify).msg_id, 66);
  Reply cached = receive(8, port);
  ASSERT_EQ(cached.status, Status::kSuccess);
  ASSERT_EQ(cached.which, wire::Reply::MESSAGE);
  EXPECT_EQ(cached.body, "cached");
  ASSERT_EQ(cached.fds.size(), 1u);
  char buf[32] = {};
  ASSERT_EQ(::pread(cached.fds[0].get(), buf, sizeof buf, 0), 17);
  EXPECT_EQ(std::string(buf, 17), "out of line bytes");
}

TEST(Delivery, RightsTheReceiverCannotNameArriveAsNullWithTheMessage) {
  server::ServerOptions options;
  options.limits.per_task.names = 8;
  InProcessServer daemon(options);
  auto receiver = connect_or_die(daemon.path(), "receiver");
  auto sender = connect_or_die(daemon.path(), "sender");
  ASSERT_NE(receiver, nullptr);
  ASSERT_NE(sender, nullptr);
  auto inbox = receiver->check_in("com.test.delivery");
  ASSERT_TRUE(inbox.ok());
  auto to_inbox = sender->look_up("com.test.delivery");
  ASSERT_TRUE(to_inbox.ok());
  auto reply_port = sender->make_port();
  ASSERT_TRUE(reply_port.ok());
  Status filled = Status::kSuccess;
  std::vector<Name> dead;
  while (ok(filled)) {
    auto d = receiver->allocate(Right::kDeadName);
    filled = d.status();
    if (d) dead.push_back(*d);
  }
  ASSERT_EQ(filled, Status::kNoSpace);

  // The reply right cannot be named: MACH_RCV_HEADER_ERROR.
  OutgoingMessage m;
  m.set_remote(*to_inbox).set_local(*reply_port, Disposition::kMakeSendOnce).set_id(41);
  m.set_body("with rights").add_port(*reply_port, Disposition::kMakeSend);
  ASSERT_EQ(sender->send(m), Status::kSuccess);
  auto got = inbox->receive(at_once());
  EXPECT_EQ(got.status(), Status::kRcvHeaderError);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, 41);
  EXPECT_EQ(got->body_text(), "with rights");
  EXPECT_EQ(got->remote, kNameNull);
  EXPECT_EQ(got->remote_type, RightType::kSendOnce);
  ASSERT_EQ(got->descriptors.size(), 1u);
  EXPECT_EQ(std::get<ReceivedPort>(got->descriptors[0]).name, kNameNull);
  EXPECT_EQ(std::get<ReceivedPort>(got->descriptors[0]).type, RightType::kSend);
  // The reply right was destroyed unused: its port hears so.
  auto n = reply_port->receive(wait_up_to());
  ASSERT_EQ(n.status(), Status::kSuccess);
  EXPECT_EQ(n->id, static_cast<int32_t>(Notification::kSendOnce));
  EXPECT_FALSE(reply_port->status()->srights);

  // Only a body right: MACH_RCV_BODY_ERROR, also for a receive that waits
  // for the message (tests/unit/driver_test.cc pins the parked path down).
  Result<ReceivedMessage> waited(Status::kFailure);
  std::thread waiter([&] { waited = inbox->receive(wait_up_to()); });
  OutgoingMessage body_only;
  body_only.set_remote(*to_inbox).set_id(42).add_port(*reply_port, Disposition::kMakeSend);
  ASSERT_EQ(sender->send(body_only), Status::kSuccess);
  waiter.join();
  EXPECT_EQ(waited.status(), Status::kRcvBodyError);
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(waited->id, 42);
  EXPECT_EQ(std::get<ReceivedPort>(waited->descriptors.at(0)).name, kNameNull);

  // With a name free again, rights arrive as usual.
  ASSERT_EQ(receiver->deallocate(dead.back()), Status::kSuccess);
  OutgoingMessage fine;
  fine.set_remote(*to_inbox).set_id(43).add_port(*reply_port, Disposition::kMakeSend);
  ASSERT_EQ(sender->send(fine), Status::kSuccess);
  auto arrived = inbox->receive(at_once());
  ASSERT_EQ(arrived.status(), Status::kSuccess);
  EXPECT_NE(std::get<ReceivedPort>(arrived->descriptors.at(0)).name, kNameNull);
}

}  // namespace
}  // namespace portd::testing
