// The batch requests of protocol version 2 (sendBatch, receiveBatch) on the
// real daemon: raw frames for what the wire promises (one status per
// message, the codec's batch limit, the frame limit of a receiveBatch, a
// version-1 client still served, a parked batch whose sender dies), and
// libportd's send_batch / receive_batch, which use them, for the semantics
// of docs/libportd.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "portd/introspect.h"
#include "portd/portd.h"
#include "portd/proto/frame.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/ool_support.h"

namespace portd::testing {
namespace {

IntrospectQuery query(IntrospectWhat what) {
  IntrospectQuery q;
  q.what = what;
  return q;
}

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr uint8_t kCopySend = 19;
constexpr uint8_t kMakeSend = 20;
constexpr uint32_t kRightReceive = 1;

int32_t code(Status s) { return static_cast<int32_t>(s); }

kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string text_of(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

// Whether `fd` holds `size` bytes of fill_pattern(seed).
bool fd_holds_pattern(int fd, size_t size, uint64_t seed) {
  std::vector<std::byte> bytes(size);
  return ::pread(fd, bytes.data(), size, 0) == static_cast<ssize_t>(size) &&
         spot_check(bytes, seed);
}

// A raw client that has said hello (with `version`) and holds a port.
struct RawPort {
  explicit RawPort(const DaemonProcess& daemon, uint32_t version = 2)
      : client(daemon.socket_path()) {
    task = client.hello("wire-batch", version);
    if (task == 0) return;
    client.request(next++, [](auto r) { r.initAllocate().setRight(kRightReceive); });
    client.next_reply([&](wire::Reply::Reader reply, auto&) { port = reply.getName(); });
  }
  Status call_status(const std::function<void(wire::Request::Builder)>& fill,
                     std::vector<proto::UniqueFd> fds = {}) {
    Status s = Status::kFailure;
    const uint64_t id = next++;
    client.request(id, fill, std::move(fds));
    client.next_reply([&](wire::Reply::Reader reply, auto&) {
      EXPECT_EQ(reply.getId(), id);
      s = static_cast<Status>(reply.getStatus());
    });
    return s;
  }
  uint32_t msgcount() {
    uint32_t n = ~0u;
    client.request(next++, [&](auto r) { r.initGetAttributes().setName(port); });
    client.next_reply(
        [&](wire::Reply::Reader reply, auto&) { n = reply.getAttributes().getMsgcount(); });
    return n;
  }
  RawClient client;
  uint64_t task = 0;
  uint32_t port = 0;
  uint64_t next = 2;
};

// Fills a sendBatch of `bodies` to `remote` (with `bad` in place of the
// destination of message `bad_at`).
std::function<void(wire::Request::Builder)> send_batch(uint32_t remote, uint8_t disposition,
                                                       const std::vector<std::string>& bodies,
                                                       int64_t timeout_ms,
                                                       size_t bad_at = ~size_t{0},
                                                       uint32_t bad = 0) {
  return [=](wire::Request::Builder r) {
    auto b = r.initSendBatch();
    auto list = b.initMessages(static_cast<unsigned>(bodies.size()));
    for (unsigned i = 0; i < bodies.size(); ++i) {
      list[i].setRemote(i == bad_at ? bad : remote);
      list[i].setRemoteDisposition(disposition);
      list[i].setId(static_cast<int32_t>(i));
      list[i].setBody(bytes_of(bodies[i]));
    }
    b.initOptions().setTimeoutMs(timeout_ms);
  };
}

std::function<void(wire::Request::Builder)> receive_batch(uint32_t name, uint32_t max,
                                                          int64_t timeout_ms = 0) {
  return [=](wire::Request::Builder r) {
    auto b = r.initReceiveBatch();
    auto o = b.initOptions();
    o.setName(name);
    o.setTimeoutMs(timeout_ms);
    b.setMax(max);
  };
}

TEST(WireBatch, SendBatchAnswersOneStatusPerMessageInOrder) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawPort p(daemon);
  ASSERT_NE(p.port, 0u);
  // The middle message names nothing: its own status, the others go.
  ASSERT_TRUE(p.client.request(
      10, send_batch(p.port, kMakeSend, {"first", "lost", "third"}, 0, 1, 0x7777)));
  ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto& fds) {
    EXPECT_EQ(reply.getId(), 10u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_TRUE(fds.empty());
    ASSERT_EQ(reply.which(), wire::Reply::SEND_STATUSES);
    auto s = reply.getSendStatuses();
    ASSERT_EQ(s.size(), 3u);
    EXPECT_EQ(s[0], code(Status::kSuccess));
    EXPECT_EQ(s[1], code(Status::kSendInvalidDest));
    EXPECT_EQ(s[2], code(Status::kSuccess));
  }));
  EXPECT_EQ(p.msgcount(), 2u);

  ASSERT_TRUE(p.client.request(11, receive_batch(p.port, 8)));
  ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto& fds) {
    EXPECT_EQ(reply.getId(), 11u);
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_EQ(reply.getFdCount(), 0u);
    EXPECT_TRUE(fds.empty());
    ASSERT_EQ(reply.which(), wire::Reply::MESSAGES);
    auto list = reply.getMessages();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].getStatus(), code(Status::kSuccess));
    EXPECT_EQ(list[0].getMessage().getId(), 0);
    EXPECT_EQ(text_of(list[0].getMessage().getBody()), "first");
    EXPECT_EQ(list[0].getMessage().getTrailer().getSeqno(), 0u);
    EXPECT_EQ(list[1].getMessage().getId(), 2);
    EXPECT_EQ(text_of(list[1].getMessage().getBody()), "third");
    EXPECT_EQ(list[1].getMessage().getTrailer().getSeqno(), 1u);
    EXPECT_EQ(list[1].getMessage().getTrailer().getSenderTask(), p.task);
  }));
  // Nothing left: the first receive's status is the reply's.
  ASSERT_TRUE(p.client.request(12, receive_batch(p.port, 8)));
  ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getStatus(), code(Status::kRcvTimedOut));
    EXPECT_EQ(reply.which(), wire::Reply::NONE);
  }));
}

TEST(WireBatch, CountsOverTheBatchLimitAreRefusedByTheCodec) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawPort p(daemon);
  ASSERT_NE(p.port, 0u);
  for (uint32_t max : {0u, 1025u}) {
    ASSERT_TRUE(p.client.request(20 + max, receive_batch(p.port, max)));
    ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto&) {
      EXPECT_EQ(reply.getId(), 20u + max);
      EXPECT_EQ(reply.getStatus(), code(Status::kInvalidArgument));
      EXPECT_EQ(std::string(reply.getLimit()), max == 0 ? "" : "batch_messages");
    }));
  }
  // 1025 messages: nothing is sent; 1024 are.
  for (size_t n : {size_t{1025}, size_t{1024}}) {
    ASSERT_TRUE(p.client.request(
        30 + n, send_batch(p.port, kMakeSend, std::vector<std::string>(n, "x"), 0)));
    ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto&) {
      EXPECT_EQ(reply.getId(), 30u + n);
      if (n == 1025) {
        EXPECT_EQ(reply.getStatus(), code(Status::kInvalidArgument));
        EXPECT_EQ(std::string(reply.getLimit()), "batch_messages");
        EXPECT_EQ(reply.which(), wire::Reply::NONE);
      } else {
        EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
        ASSERT_EQ(reply.getSendStatuses().size(), 1024u);
      }
    }));
    // The queue limit (5) took five of the 1024, and none of the 1025.
    EXPECT_EQ(p.msgcount(), n == 1025 ? 0u : 5u);
  }
  // The limit is the daemon's setting.
  DaemonProcess small({"--max-batch", "3"});
  ASSERT_TRUE(small.started());
  RawPort q(small);
  EXPECT_EQ(q.call_status(receive_batch(q.port, 4)), Status::kInvalidArgument);
  EXPECT_EQ(q.call_status(receive_batch(q.port, 3)), Status::kRcvTimedOut);
}

TEST(WireBatch, AVersionOneClientIsServedAsBefore) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawClient client(daemon.socket_path());
  ASSERT_TRUE(client.request(1, [](auto r) {
    auto h = r.initHello();
    h.setVersion(1);
    h.setCommand("old");
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    ASSERT_EQ(reply.which(), wire::Reply::HELLO);
    EXPECT_EQ(reply.getHello().getVersion(), 1u);
  }));
  uint32_t port = 0;
  ASSERT_TRUE(client.request(2, [](auto r) { r.initAllocate().setRight(kRightReceive); }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) { port = reply.getName(); }));
  ASSERT_TRUE(client.request(3, [&](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(port);
    m.setRemoteDisposition(kMakeSend);
    m.setId(7);
    m.setBody(bytes_of("old style"));
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    EXPECT_EQ(reply.which(), wire::Reply::NONE);
  }));
  ASSERT_TRUE(client.request(4, [&](auto r) {
    auto o = r.initReceive();
    o.setName(port);
    o.setTimeoutMs(0);
  }));
  ASSERT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getStatus(), code(Status::kSuccess));
    ASSERT_EQ(reply.which(), wire::Reply::MESSAGE);
    EXPECT_EQ(reply.getMessage().getId(), 7);
    EXPECT_EQ(text_of(reply.getMessage().getBody()), "old style");
  }));
}

TEST(WireBatch, ARegionRidesInTheBatchFrameOfASendBatchAndOfAReceiveBatch) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawPort p(daemon);
  ASSERT_NE(p.port, 0u);
  const int daemon_fds = daemon.open_fd_count();
  std::vector<proto::UniqueFd> fds;
  fds.push_back(memfd_with(4096, 42, kAllSeals));
  ASSERT_TRUE(fds.back().valid());
  ASSERT_TRUE(p.client.request(
      40,
      [&](wire::Request::Builder r) {
        send_batch(p.port, kMakeSend, {"a", "b", "c"}, 0)(r);
        r.setFdCount(1);
        r.getSendBatch().getMessages()[1].initDescriptors(1)[0].initOol().setSize(4096);
      },
      std::move(fds)));
  ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto&) {
    auto s = reply.getSendStatuses();
    ASSERT_EQ(s.size(), 3u);
    for (int32_t v : s) EXPECT_EQ(v, code(Status::kSuccess));
  }));
  EXPECT_EQ(daemon.open_fd_count(), daemon_fds + 1);
  // A message with a region does not end a batch: "a", "b" with its region,
  // and "c" come in one reply, which carries the region's fd.
  ASSERT_TRUE(p.client.request(41, receive_batch(p.port, 8)));
  ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto& got) {
    EXPECT_EQ(reply.getFdCount(), 1u);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(fd_holds_pattern(got[0].get(), 4096, 42));
    auto list = reply.getMessages();
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(text_of(list[0].getMessage().getBody()), "a");
    EXPECT_EQ(text_of(list[1].getMessage().getBody()), "b");
    ASSERT_EQ(list[1].getMessage().getDescriptors().size(), 1u);
    EXPECT_EQ(list[1].getMessage().getDescriptors()[0].getOol().getSize(), 4096u);
    EXPECT_EQ(text_of(list[2].getMessage().getBody()), "c");
  }));
  EXPECT_EQ(p.msgcount(), 0u);
  EXPECT_TRUE(settles([&] { return daemon.open_fd_count(); }, daemon_fds));
  // fdCount must cover every message's regions.
  EXPECT_EQ(p.call_status([&](wire::Request::Builder r) {
    send_batch(p.port, kMakeSend, {"a", "b"}, 0)(r);
    r.getSendBatch().getMessages()[1].initDescriptors(1)[0].initOol().setSize(1);
  }),
            Status::kSendInvalidMemory);
  EXPECT_EQ(p.msgcount(), 0u);
}

TEST(WireBatch, AReceiveBatchTakesMessagesWithRegionsWhileTheirFdsFitOneFrame) {
  // A frame carries at most 64 fds. Messages with 30, 30 and 5 regions: the
  // first reply takes two (60 fds), as a third would pass 64; the next
  // takes the third. Nothing is lost or left open.
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  RawPort p(daemon);
  ASSERT_NE(p.port, 0u);
  const int daemon_fds = daemon.open_fd_count();
  const std::vector<unsigned> regions = {30, 30, 5};
  for (size_t m = 0; m < regions.size(); ++m) {
    std::vector<proto::UniqueFd> fds;
    for (unsigned k = 0; k < regions[m]; ++k) {
      fds.push_back(memfd_with(4096, 100 * m + k, kAllSeals));
      ASSERT_TRUE(fds.back().valid());
    }
    EXPECT_EQ(p.call_status(
                  [&](wire::Request::Builder r) {
                    send_batch(p.port, kMakeSend, {std::string(1, char('a' + m))}, 0)(r);
                    r.setFdCount(static_cast<uint16_t>(regions[m]));
                    auto d = r.getSendBatch().getMessages()[0].initDescriptors(regions[m]);
                    for (unsigned k = 0; k < regions[m]; ++k) d[k].initOol().setSize(4096);
                  },
                  std::move(fds)),
              Status::kSuccess);
  }
  EXPECT_EQ(daemon.open_fd_count(), daemon_fds + 65);
  ASSERT_EQ(p.msgcount(), 3u);

  const auto expect_batch = [&](uint64_t id, std::vector<size_t> messages) {
    ASSERT_TRUE(p.client.request(id, receive_batch(p.port, 8)));
    ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto& got) {
      ASSERT_EQ(reply.getStatus(), code(Status::kSuccess));
      auto list = reply.getMessages();
      ASSERT_EQ(list.size(), messages.size());
      size_t fd = 0;
      for (unsigned i = 0; i < list.size(); ++i) {
        const size_t m = messages[i];
        EXPECT_EQ(text_of(list[i].getMessage().getBody()), std::string(1, char('a' + m)));
        EXPECT_EQ(list[i].getMessage().getDescriptors().size(), regions[m]);
        for (unsigned k = 0; k < regions[m]; ++k, ++fd) {
          ASSERT_LT(fd, got.size());
          EXPECT_TRUE(fd_holds_pattern(got[fd].get(), 4096, 100 * m + k)) << m << " " << k;
        }
      }
      EXPECT_EQ(reply.getFdCount(), fd);
      EXPECT_EQ(got.size(), fd);
    }));
  };
  expect_batch(60, {0, 1});
  EXPECT_EQ(p.msgcount(), 1u);
  expect_batch(61, {2});
  EXPECT_EQ(p.msgcount(), 0u);
  EXPECT_TRUE(settles([&] { return daemon.open_fd_count(); }, daemon_fds));
}

TEST(WireBatch, AReceiveBatchStopsBeforeTheReplyCouldPassTheFrameLimit) {
  // Frames of 256 KiB, bodies of up to 128 KiB: a reply holds whatever is
  // queued only while one more message of the largest kind would still fit.
  DaemonProcess daemon({"--max-frame-bytes", "256KiB", "--max-inline-body", "128KiB"});
  ASSERT_TRUE(daemon.started());
  RawPort p(daemon);
  ASSERT_NE(p.port, 0u);
  ASSERT_EQ(p.call_status([&](auto r) {
    auto a = r.initSetAttributes();
    a.setName(p.port);
    a.setQlimit(1024);
  }),
            Status::kSuccess);
  std::vector<std::string> bodies;
  for (int i = 0; i < 200; ++i) bodies.push_back(std::string(1000, char('a' + i % 26)));
  ASSERT_EQ(p.call_status(send_batch(p.port, kMakeSend, bodies, 0)), Status::kSuccess);
  ASSERT_EQ(p.msgcount(), 200u);
  uint32_t taken = 0;
  while (taken < 200) {
    uint32_t n = 0;
    ASSERT_TRUE(p.client.request(50 + taken, receive_batch(p.port, 1024)));
    ASSERT_TRUE(p.client.next_reply([&](wire::Reply::Reader reply, auto&) {
      ASSERT_EQ(reply.getStatus(), code(Status::kSuccess));
      auto list = reply.getMessages();
      n = list.size();
      for (unsigned i = 0; i < n; ++i) {
        EXPECT_EQ(list[i].getMessage().getId(), static_cast<int32_t>(taken + i));
        EXPECT_EQ(text_of(list[i].getMessage().getBody()), bodies[taken + i]);
      }
    }));
    // Each reply stays well inside the frame (the reader refuses larger
    // ones), yet holds more than one message; the last takes what is left.
    ASSERT_GT(n, 1u);
    EXPECT_LE(n * 1000u, 256u << 10);
    if (taken + n < 200) {
      EXPECT_LT(n, 200u);
    }
    taken += n;
  }
  EXPECT_EQ(taken, 200u);
  EXPECT_EQ(p.msgcount(), 0u);
}

// A port of `owner` with a queue of two messages, bound to `service`.
Result<ReceiveRight> small_inbox(Task& owner, const char* service) {
  auto port = owner.make_port();
  if (!port) return port;
  EXPECT_EQ(port->set_qlimit(2), Status::kSuccess);
  EXPECT_EQ(owner.bootstrap_register(service, port->name()), Status::kSuccess);
  return port;
}

// `service`'s send right, looked up by raw client `c` (after its hello)
// with request `id`; 0 if it could not.
uint32_t raw_look_up(RawClient& c, const char* service, uint64_t id) {
  uint32_t name = 0;
  if (!c.request(id, [&](auto r) { r.initBootstrapLookUp().setName(service); })) return 0;
  c.next_reply([&](wire::Reply::Reader reply, auto&) { name = reply.getName(); });
  return name;
}

TEST(WireBatch, ABatchParkedOnAFullQueueWhoseSenderDiesLeavesNothingBehind) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto owner = connect_or_die(daemon.socket_path(), "owner");
  ASSERT_NE(owner, nullptr);
  auto port = small_inbox(*owner, "wire.batch.inbox");
  ASSERT_TRUE(port);
  const int daemon_fds = daemon.open_fd_count();
  {
    RawClient sender(daemon.socket_path());
    ASSERT_NE(sender.hello("dies", 2), 0u);
    const uint32_t inbox = raw_look_up(sender, "wire.batch.inbox", 2);
    ASSERT_NE(inbox, 0u);
    // Five messages, the last with a region: two are queued, three wait.
    std::vector<proto::UniqueFd> fds;
    fds.push_back(memfd_with(4096, 7, kAllSeals));
    ASSERT_TRUE(sender.request(
        3,
        [&](wire::Request::Builder r) {
          send_batch(inbox, kCopySend, {"0", "1", "2", "3", "4"}, -1)(r);
          r.setFdCount(1);
          r.getSendBatch().getMessages()[4].initDescriptors(1)[0].initOol().setSize(4096);
        },
        std::move(fds)));
    ASSERT_TRUE(settles([&] { return int(port->status()->msgcount); }, 2));
    // Its connection, and the parked region.
    EXPECT_EQ(daemon.open_fd_count(), daemon_fds + 2);
    Introspection look(owner);
    auto tasks = look.fetch(query(IntrospectWhat::kTasks));
    ASSERT_TRUE(tasks);
    // Message 2 waits for room and holds 3 and 4 back: one parked request,
    // and all five messages (and 4's region) charged to the sender.
    size_t parked = 0, queued = 0, fds_in_flight = 0;
    for (const auto& t : Json::parse(*tasks))
      if (t["command"] == "dies") {
        parked = t["quota"]["parked_requests"]["used"].template get<size_t>();
        queued = t["quota"]["queued_messages"]["used"].template get<size_t>();
        fds_in_flight = t["quota"]["fds_in_flight"]["used"].template get<size_t>();
      }
    EXPECT_EQ(parked, 1u);
    EXPECT_EQ(queued, 5u);
    EXPECT_EQ(fds_in_flight, 1u);
    // 3 and 4 are held, not sent: in status, apart from the queues.
    auto status = look.fetch(query(IntrospectWhat::kStatus));
    ASSERT_TRUE(status);
    const Json j = Json::parse(*status);
    EXPECT_EQ(j["queued_messages"], 2);
    EXPECT_EQ(j["held_messages"], 2);
    EXPECT_EQ(j["held_bytes"], 2);
    EXPECT_EQ(j["counters"]["messages_sent"], 3);
    EXPECT_EQ(j["counters"]["messages_in_flight"], 3);
  }  // the sender's connection closes: its task dies with its batch waiting
  EXPECT_TRUE(settles([&] { return daemon.open_fd_count(); }, daemon_fds));
  // The two queued messages are still there (a dead sender's queued messages
  // live on); the waiting one and the two behind it went with their task.
  auto got = owner->receive_batch(port->name(), 8, ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].body_text(), "0");
  EXPECT_EQ((*got)[1].body_text(), "1");
  EXPECT_EQ(port->status()->msgcount, 0u);
  Introspection look(owner);
  auto status = look.fetch(query(IntrospectWhat::kStatus));
  ASSERT_TRUE(status);
  const Json j = Json::parse(*status);
  EXPECT_EQ(j["tasks"], 1);
  EXPECT_EQ(j["queued_messages"], 0);
  EXPECT_EQ(j["held_messages"], 0);
  EXPECT_EQ(j["held_bytes"], 0);
  EXPECT_EQ(j["counters"]["messages_in_flight"], 0);
  // Five sent: two received, three destroyed when their sender died.
  EXPECT_EQ(j["counters"]["messages_sent"], 5);
  EXPECT_EQ(j["counters"]["messages_received"], 2);
  EXPECT_EQ(j["counters"]["messages_refused"], 0);
  EXPECT_EQ(j["counters"]["messages_destroyed"], 3);
  EXPECT_EQ(j["counters"]["destroyed"]["sender_died"], 3);
}

TEST(WireBatch, HeldMessagesShowInStatusUntilTheyAreSent) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  auto owner = connect_or_die(daemon.socket_path(), "owner");
  ASSERT_NE(owner, nullptr);
  auto port = small_inbox(*owner, "wire.batch.held");
  ASSERT_TRUE(port);
  Introspection look(owner);
  const auto status = [&] {
    auto page = look.fetch(query(IntrospectWhat::kStatus));
    return page ? Json::parse(*page) : Json();
  };
  RawClient sender(daemon.socket_path());
  ASSERT_NE(sender.hello("holds", 2), 0u);
  const uint32_t inbox = raw_look_up(sender, "wire.batch.held", 2);
  ASSERT_NE(inbox, 0u);
  // Bodies of 10, 20, 30, 40 and 50 bytes into a queue of 2: two queued,
  // the third waits for room, the last two are held.
  std::vector<std::string> bodies;
  for (size_t i = 1; i <= 5; ++i) bodies.push_back(std::string(10 * i, char('0' + i)));
  ASSERT_TRUE(sender.request(3, send_batch(inbox, kCopySend, bodies, -1)));
  ASSERT_TRUE(settles([&] { return int(port->status()->msgcount); }, 2));
  Json j = status();
  EXPECT_EQ(j["queued_messages"], 2);
  EXPECT_EQ(j["held_messages"], 2);
  EXPECT_EQ(j["held_bytes"], 40 + 50);
  // One received: the waiting message goes in and the next held one waits
  // for room in its turn (sent, no longer held).
  auto one = owner->receive(port->name(), ReceiveOptions{0ms});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->body_text(), bodies[0]);
  ASSERT_TRUE(settles([&] { return int(status()["held_messages"].get<int64_t>()); }, 1));
  j = status();
  EXPECT_EQ(j["held_bytes"], 50);
  EXPECT_EQ(j["queued_messages"], 2);
  EXPECT_EQ(j["counters"]["messages_sent"], 4);
  // The rest, as room comes; the batch's reply says every one was sent.
  for (size_t i = 1; i < 5; ++i) {
    auto got = owner->receive(port->name(), ReceiveOptions{5000ms});
    ASSERT_TRUE(got) << i;
    EXPECT_EQ(got->body_text(), bodies[i]);
  }
  ASSERT_TRUE(sender.next_reply([&](wire::Reply::Reader reply, auto&) {
    EXPECT_EQ(reply.getId(), 3u);
    auto s = reply.getSendStatuses();
    ASSERT_EQ(s.size(), 5u);
    for (int32_t v : s) EXPECT_EQ(v, code(Status::kSuccess));
  }));
  j = status();
  EXPECT_EQ(j["held_messages"], 0);
  EXPECT_EQ(j["held_bytes"], 0);
  EXPECT_EQ(j["queued_messages"], 0);
  EXPECT_EQ(j["counters"]["messages_sent"], 5);
  EXPECT_EQ(j["counters"]["messages_received"], 5);
}

// ---------------------------------------------------------------------------
// libportd over the batch requests

class LibraryBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "batch2");
    ASSERT_NE(task_, nullptr);
    ASSERT_EQ(task_->protocol_version(), 2u);
  }
  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

TEST_F(LibraryBatchTest, ADeadDestinationInTheMiddleFailsAloneAndTheRestArriveInOrder) {
  auto port = task_->make_port();
  auto doomed = task_->make_port();
  ASSERT_TRUE(port && doomed);
  auto dead = doomed->make_send();
  ASSERT_TRUE(dead);
  ASSERT_EQ(task_->destroy(doomed->release()), Status::kSuccess);
  std::vector<OutgoingMessage> messages(5);
  for (int i = 0; i < 5; ++i) {
    if (i == 2)
      messages[2].set_remote(*dead).set_id(2).set_body("to the dead");
    else
      messages[size_t(i)]
          .set_remote(*port, Disposition::kMakeSend)
          .set_id(i)
          .set_body("body " + std::to_string(i));
  }
  const auto statuses = task_->send_batch(messages);
  ASSERT_EQ(statuses.size(), 5u);
  EXPECT_EQ(statuses[0], Status::kSuccess);
  EXPECT_EQ(statuses[1], Status::kSuccess);
  EXPECT_EQ(statuses[2], Status::kSendInvalidDest);
  EXPECT_EQ(statuses[3], Status::kSuccess);
  EXPECT_EQ(statuses[4], Status::kSuccess);
  EXPECT_EQ(messages[2].id(), 2);  // not consumed
  EXPECT_NE(messages[2].remote(), kNameNull);
  auto got = task_->receive_batch(port->name(), 10, ReceiveOptions{0ms});
  ASSERT_EQ(got.status(), Status::kSuccess);
  ASSERT_EQ(got->size(), 4u);
  const int ids[] = {0, 1, 3, 4};
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ((*got)[k].id, ids[k]);
    EXPECT_EQ((*got)[k].body_text(), "body " + std::to_string(ids[k]));
  }
}

TEST_F(LibraryBatchTest, ABatchBlockedOnAFullQueueCompletesAsTheReceiverDrains) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(4), Status::kSuccess);
  auto sender = port->make_send();
  ASSERT_TRUE(sender);
  auto other = connect_or_die(daemon_.socket_path(), "batch-sender");
  ASSERT_NE(other, nullptr);
  // Hand the sender task a send right through the bootstrap registry.
  ASSERT_EQ(task_->bootstrap_register("wire.batch.full", sender->name()), Status::kSuccess);
  auto right = other->look_up("wire.batch.full");
  ASSERT_TRUE(right);
  std::vector<Status> statuses;
  std::thread send_all([&] {
    std::vector<OutgoingMessage> messages(50);
    for (int i = 0; i < 50; ++i)
      messages[size_t(i)].set_remote(*right).set_id(i).set_body(
          std::string(64, char('A' + i % 26)));
    statuses = other->send_batch(messages);  // waits for room, as send() does
  });
  int next = 0;
  while (next < 50) {
    auto got = task_->receive_batch(port->name(), 3, ReceiveOptions{10000ms});
    ASSERT_TRUE(got) << status_name(got.status());
    ASSERT_LE(got->size(), 3u);
    for (const auto& m : *got) {
      EXPECT_EQ(m.id, next);
      EXPECT_EQ(m.body_text(), std::string(64, char('A' + next % 26)));
      ++next;
    }
  }
  send_all.join();
  ASSERT_EQ(statuses.size(), 50u);
  for (Status s : statuses) EXPECT_EQ(s, Status::kSuccess);
  EXPECT_EQ(next, 50);
  EXPECT_EQ(port->status()->msgcount, 0u);
}

TEST_F(LibraryBatchTest, ATooLargeMessageStaysQueuedForReceive) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  std::vector<OutgoingMessage> messages(4);
  for (int i = 0; i < 4; ++i)
    messages[size_t(i)]
        .set_remote(*port, Disposition::kMakeSend)
        .set_id(i)
        .set_body(std::string(i == 2 ? 3000 : 10, 'z'));
  for (Status s : task_->send_batch(messages)) ASSERT_EQ(s, Status::kSuccess);
  ReceiveOptions small;
  small.timeout = 0ms;
  small.max_size = 1024;
  auto got = task_->receive_batch(port->name(), 8, small);
  ASSERT_EQ(got.status(), Status::kSuccess);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].id, 0);
  EXPECT_EQ((*got)[1].id, 1);
  EXPECT_EQ(port->status()->msgcount, 2u);
  auto big = port->receive(ReceiveOptions{0ms});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->id, 2);
  EXPECT_EQ(big->body.size(), 3000u);
  auto last = task_->receive_batch(port->name(), 8, small);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].id, 3);
}

TEST_F(LibraryBatchTest, MoreThanTheDaemonsBatchLimitGoesInSeveralRequests) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(1024), Status::kSuccess);
  std::vector<OutgoingMessage> messages(1500);
  for (int i = 0; i < 1500; ++i)
    messages[size_t(i)].set_remote(*port, Disposition::kMakeSend).set_id(i);
  SendOptions now;
  now.timeout = 0ms;
  const auto statuses = task_->send_batch(messages, now);
  ASSERT_EQ(statuses.size(), 1500u);
  for (size_t i = 0; i < 1500; ++i)
    EXPECT_EQ(statuses[i], i < 1024 ? Status::kSuccess : Status::kSendTimedOut) << i;
  auto got = task_->receive_batch(port->name(), 1500, ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1024u);
  for (size_t i = 0; i < got->size(); ++i) EXPECT_EQ((*got)[i].id, static_cast<int32_t>(i));
}

TEST_F(LibraryBatchTest, RegionsTravelInBatchesBothWays) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  std::vector<OutgoingMessage> messages(3);
  for (int i = 0; i < 3; ++i) {
    messages[size_t(i)].set_remote(*port, Disposition::kMakeSend).set_id(i);
    std::vector<std::byte> bytes(8192);
    fill_pattern(bytes, uint64_t(i));
    messages[size_t(i)].add_ool_copy(bytes);
  }
  for (Status s : task_->send_batch(messages)) ASSERT_EQ(s, Status::kSuccess);
  int next = 0;
  while (next < 3) {
    auto got = task_->receive_batch(port->name(), 8, ReceiveOptions{0ms});
    ASSERT_TRUE(got);
    for (const auto& m : *got) {
      EXPECT_EQ(m.id, next);
      ASSERT_EQ(m.descriptors.size(), 1u);
      const auto& mem = std::get<ReceivedOolMemory>(m.descriptors[0]);
      ASSERT_EQ(mem.size, 8192u);
      EXPECT_EQ(checksum(mem.memory.bytes()), pattern_checksum(8192, uint64_t(next)));
      ++next;
    }
  }
}

TEST(WireBatchLimits, AReceiveBatchStaysWithinWhatLibportdAcceptsWhateverTheDaemonAllows) {
  // Requests of up to 64 MiB, but libportd takes replies of 16 MiB at most:
  // 300 queued bodies of 60 KiB (18 MiB) come in more than one reply, and
  // the connection survives.
  DaemonProcess daemon({"--max-frame-bytes", "64MiB"});
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path(), "big-batches");
  ASSERT_NE(task, nullptr);
  auto port = task->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(1024), Status::kSuccess);
  std::vector<OutgoingMessage> messages(300);
  for (int i = 0; i < 300; ++i)
    messages[size_t(i)]
        .set_remote(*port, Disposition::kMakeSend)
        .set_id(i)
        .set_body(std::string(60 << 10, char('a' + i % 26)));
  for (Status s : task->send_batch(messages)) ASSERT_EQ(s, Status::kSuccess);
  ASSERT_EQ(port->status()->msgcount, 300u);
  auto first = task->receive_batch(port->name(), 1024, ReceiveOptions{0ms});
  ASSERT_TRUE(first) << status_name(first.status()) << " " << first.detail();
  EXPECT_GT(first->size(), 1u);
  EXPECT_LT(first->size(), 300u);
  size_t next = 0;
  for (const auto& m : *first) {
    EXPECT_EQ(m.id, static_cast<int32_t>(next));
    EXPECT_EQ(m.body.size(), size_t{60} << 10);
    ++next;
  }
  while (next < 300) {
    auto more = task->receive_batch(port->name(), 1024, ReceiveOptions{0ms});
    ASSERT_TRUE(more) << status_name(more.status());
    for (const auto& m : *more) EXPECT_EQ(m.id, static_cast<int32_t>(next++));
  }
  EXPECT_EQ(next, 300u);
  EXPECT_TRUE(task->connected());
}

TEST(WireBatchLimits, ABatchLimitLoweredAfterHelloStillSendsEveryMessage) {
  char dir_template[] = "/tmp/portd-batch-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string config = std::string(dir_template) + "/portd.toml";
  std::ofstream(config, std::ios::trunc) << "";
  DaemonLaunch launch;
  launch.config = config;
  DaemonProcess daemon(launch);
  ASSERT_TRUE(daemon.started());
  auto task = connect_or_die(daemon.socket_path(), "reloaded");
  ASSERT_NE(task, nullptr);
  auto port = task->make_port();
  ASSERT_TRUE(port);
  std::ofstream(config, std::ios::trunc) << "[limits]\nmax_batch = 2\n";
  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  ASSERT_TRUE(daemon.wait_for_log("reload: limits.max_batch: 1024 -> 2"));
  // The library still thinks 1024: the daemon refuses the batch of five
  // as a whole, and the library sends them one by one.
  std::vector<OutgoingMessage> messages(5);
  for (int i = 0; i < 5; ++i)
    messages[size_t(i)].set_remote(*port, Disposition::kMakeSend).set_id(i);
  for (Status s : task->send_batch(messages)) EXPECT_EQ(s, Status::kSuccess);
  EXPECT_EQ(port->status()->msgcount, 5u);
  // A receive batch over the new limit falls back to one receive.
  auto got = task->receive_batch(port->name(), 8, ReceiveOptions{0ms});
  ASSERT_TRUE(got) << status_name(got.status());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].id, 0);
  EXPECT_EQ(port->status()->msgcount, 4u);
  std::remove(config.c_str());
  ::rmdir(dir_template);
}

TEST_F(LibraryBatchTest, ATaskThatAsksForVersionOnePipelinesWithTheSameOutcomes) {
  ConnectOptions options;
  options.socket_path = daemon_.socket_path();
  options.protocol_version = 1;
  auto old = Task::connect(options);
  ASSERT_TRUE(old);
  auto& task = *old;
  ASSERT_EQ(task->protocol_version(), 1u);
  auto port = task->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(3), Status::kSuccess);
  std::vector<OutgoingMessage> messages(5);
  for (int i = 0; i < 5; ++i)
    messages[size_t(i)].set_remote(*port, Disposition::kMakeSend).set_id(i).set_body("v1");
  SendOptions now;
  now.timeout = 0ms;
  const auto statuses = task->send_batch(messages, now);
  ASSERT_EQ(statuses.size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(statuses[i], i < 3 ? Status::kSuccess : Status::kSendTimedOut);
  auto got = task->receive_batch(port->name(), 8, ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*got)[size_t(i)].id, i);
}

}  // namespace
}  // namespace portd::testing
