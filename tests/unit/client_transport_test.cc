// libportd's transport (leader/follower over one socket), against a scripted
// peer on the other end of a socketpair. The peer is not a daemon: it answers
// exactly what each test tells it to, in the order the test chooses, so that
// out-of-order replies, discarded replies, full sockets, a malformed reply and
// a peer that goes away can each be produced on purpose. The real daemon is
// exercised by the integration tests.
#include <capnp/message.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "libclient/src/connection.h"

namespace portd::detail {
namespace {

using namespace std::chrono_literals;

// The other end of the socket: reads requests, writes replies.
class ScriptedPeer {
 public:
  explicit ScriptedPeer(proto::UniqueFd fd) : fd_(std::move(fd)) {}

  struct Seen {
    uint64_t id;
    wire::Request::Which which;
    uint32_t name;  // type/deallocate/getRefs name, or receive name
    size_t body_bytes;
  };

  // Blocks until one request has arrived; false at end of stream.
  bool read(Seen* seen) {
    for (;;) {
      auto next = reader_.next();
      if (next == proto::FrameReader::Next::kFrame) {
        auto r = reader_.frame().getRoot<wire::Request>();
        seen->id = r.getId();
        seen->which = r.which();
        seen->name = 0;
        seen->body_bytes = 0;
        switch (r.which()) {
          case wire::Request::TYPE: seen->name = r.getType().getName(); break;
          case wire::Request::DEALLOCATE: seen->name = r.getDeallocate().getName(); break;
          case wire::Request::RECEIVE: seen->name = r.getReceive().getName(); break;
          case wire::Request::CANCEL: seen->name = static_cast<uint32_t>(r.getCancel()); break;
          case wire::Request::SEND:
            seen->body_bytes = r.getSend().getMessage().getBody().size();
            break;
          default: break;
        }
        return true;
      }
      if (next == proto::FrameReader::Next::kError) return false;
      pollfd p{fd_.get(), POLLIN, 0};
      ::poll(&p, 1, -1);
      const long n = reader_.read_from(fd_.get());
      if (n == 0 || (n < 0 && n != -EAGAIN)) return false;
    }
  }

  // Answers request `id` with a type() reply carrying `value`.
  void answer_type(uint64_t id, uint32_t value) {
    capnp::MallocMessageBuilder b;
    auto reply = b.initRoot<wire::Reply>();
    reply.setId(id);
    reply.setType(value);
    write(b);
  }

  void answer_status(uint64_t id, Status status) {
    capnp::MallocMessageBuilder b;
    auto reply = b.initRoot<wire::Reply>();
    reply.setId(id);
    reply.setStatus(static_cast<int32_t>(status));
    write(b);
  }

  void write(capnp::MessageBuilder& b, std::vector<proto::UniqueFd> fds = {}) {
    writer_.append(b, std::move(fds));
    while (writer_.write_to(fd_.get()) == -EAGAIN) {
      pollfd p{fd_.get(), POLLOUT, 0};
      ::poll(&p, 1, -1);
    }
  }

  void write_raw(const void* data, size_t len) {
    ASSERT_EQ(::send(fd_.get(), data, len, MSG_NOSIGNAL), static_cast<ssize_t>(len));
  }

  void close() { fd_.reset(); }
  int fd() const { return fd_.get(); }

 private:
  proto::UniqueFd fd_;
  proto::FrameReader reader_;
  proto::FrameWriter writer_;
};

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    connection = std::make_unique<Connection>(proto::UniqueFd(sv[0]));
    peer = std::make_unique<ScriptedPeer>(proto::UniqueFd(sv[1]));
  }
  std::unique_ptr<Connection> connection;
  std::unique_ptr<ScriptedPeer> peer;
};

// type(name) through the connection: the reply's value, or a status.
struct TypeOutcome {
  Status transport;
  uint32_t value;
};

TypeOutcome call_type(Connection& connection, uint32_t name) {
  capnp::MallocMessageBuilder b;
  b.initRoot<wire::Request>().initType().setName(name);
  ReplyData reply;
  Status s = connection.call(b, {}, &reply);
  return {s, reply.value};
}

TEST(ClientTransportTest, RepliesInReverseOrderReachTheirOwnThreads) {
  Pair pair;
  constexpr int kThreads = 8;
  std::vector<std::future<TypeOutcome>> outcomes;
  for (int i = 0; i < kThreads; ++i) {
    outcomes.push_back(
        std::async(std::launch::async, [&, i] { return call_type(*pair.connection, 100 + i); }));
  }
  // Collect every request before answering any: all threads are waiting.
  std::vector<ScriptedPeer::Seen> seen(kThreads);
  for (auto& s : seen) ASSERT_TRUE(pair.peer->read(&s));
  for (auto it = seen.rbegin(); it != seen.rend(); ++it) {
    pair.peer->answer_type(it->id, it->name * 10);
  }
  for (int i = 0; i < kThreads; ++i) {
    auto outcome = outcomes[i].get();
    EXPECT_EQ(outcome.transport, Status::kSuccess);
    EXPECT_EQ(outcome.value, static_cast<uint32_t>((100 + i) * 10));
  }
}

TEST(ClientTransportTest, LeadershipPassesToASleepingWaiter) {
  // A leads (it asked first and is blocked reading), B sleeps. A's reply
  // comes first: A must hand leadership to B on its way out, or nobody reads
  // B's reply and B sleeps forever.
  for (int round = 0; round < 3; ++round) {
    Pair pair;
    auto a = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
    ScriptedPeer::Seen seen_a, seen_b;
    ASSERT_TRUE(pair.peer->read(&seen_a));
    std::this_thread::sleep_for(30ms);  // A is the leader, blocked in poll
    auto b = std::async(std::launch::async, [&] { return call_type(*pair.connection, 2); });
    ASSERT_TRUE(pair.peer->read(&seen_b));
    std::this_thread::sleep_for(30ms);  // B sleeps on its condition variable
    pair.peer->answer_type(seen_a.id, 10);
    ASSERT_EQ(a.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(a.get().value, 10u);
    std::this_thread::sleep_for(10ms);  // A has left; nothing else is asked
    pair.peer->answer_type(seen_b.id, 20);
    if (b.wait_for(5s) != std::future_status::ready) {
      ADD_FAILURE() << "B was never woken to read its own reply";
      pair.connection->shutdown("test gave up");
    }
    EXPECT_EQ(b.get().value, 20u);
  }
}

// The hook a Canceller uses: it runs once the request's frame is written,
// with its id, so a cancel it posts follows its request on the socket.
TEST(ClientTransportTest, OnWrittenRunsAfterTheFrameWithItsId) {
  Pair pair;
  uint64_t hooked = 0;
  auto outcome = std::async(std::launch::async, [&] {
    capnp::MallocMessageBuilder b;
    b.initRoot<wire::Request>().initType().setName(7);
    ReplyData reply;
    return pair.connection->call(b, {}, &reply, [&](uint64_t id) {
      hooked = id;
      capnp::MallocMessageBuilder cancel;
      cancel.initRoot<wire::Request>().setCancel(id);
      pair.connection->post(cancel);
    });
  });
  ScriptedPeer::Seen request, cancel;
  ASSERT_TRUE(pair.peer->read(&request));
  ASSERT_TRUE(pair.peer->read(&cancel));
  EXPECT_EQ(request.which, wire::Request::TYPE);
  EXPECT_EQ(cancel.which, wire::Request::CANCEL);
  EXPECT_EQ(cancel.name, static_cast<uint32_t>(request.id));
  pair.peer->answer_status(request.id, Status::kRcvInterrupted);
  EXPECT_EQ(outcome.get(), Status::kSuccess);
  EXPECT_EQ(hooked, request.id);
}

TEST(ClientTransportTest, RequestIdsAreUniqueAndNonZero) {
  Pair pair;
  auto first = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen a, b;
  ASSERT_TRUE(pair.peer->read(&a));
  auto second = std::async(std::launch::async, [&] { return call_type(*pair.connection, 2); });
  ASSERT_TRUE(pair.peer->read(&b));
  EXPECT_NE(a.id, 0u);
  EXPECT_NE(b.id, 0u);
  EXPECT_NE(a.id, b.id);
  pair.peer->answer_type(a.id, 1);
  pair.peer->answer_type(b.id, 2);
  EXPECT_EQ(first.get().value, 1u);
  EXPECT_EQ(second.get().value, 2u);
}

TEST(ClientTransportTest, RepliesNobodyWaitsForAreDiscarded) {
  Pair pair;
  capnp::MallocMessageBuilder b;
  b.initRoot<wire::Request>().initDeallocate().setName(0x505);
  pair.connection->post(b);
  ScriptedPeer::Seen posted;
  ASSERT_TRUE(pair.peer->read(&posted));
  EXPECT_EQ(posted.which, wire::Request::DEALLOCATE);
  EXPECT_EQ(posted.name, 0x505u);
  pair.peer->answer_status(posted.id, Status::kInvalidName);
  // A reply for an id never used, too.
  pair.peer->answer_type(999999, 1);

  auto outcome = std::async(std::launch::async, [&] { return call_type(*pair.connection, 7); });
  ScriptedPeer::Seen seen;
  ASSERT_TRUE(pair.peer->read(&seen));
  pair.peer->answer_type(seen.id, 77);
  auto result = outcome.get();
  EXPECT_EQ(result.transport, Status::kSuccess);
  EXPECT_EQ(result.value, 77u);
  EXPECT_TRUE(pair.connection->alive());
}

TEST(ClientTransportTest, ParkedCallDoesNotStallOtherThreads) {
  Pair pair;
  // One thread's request is parked: the peer withholds its reply.
  auto parked = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen parked_request;
  ASSERT_TRUE(pair.peer->read(&parked_request));

  std::thread peer([&] {
    ScriptedPeer::Seen s;
    for (int i = 0; i < 200; ++i) {
      if (!pair.peer->read(&s)) return;
      pair.peer->answer_type(s.id, s.name + 1);
    }
  });
  // Meanwhile another thread makes 200 round trips.
  for (uint32_t i = 0; i < 200; ++i) {
    auto outcome = call_type(*pair.connection, 1000 + i);
    ASSERT_EQ(outcome.transport, Status::kSuccess);
    ASSERT_EQ(outcome.value, 1001 + i);
  }
  peer.join();
  EXPECT_EQ(parked.wait_for(0ms), std::future_status::timeout);
  pair.peer->answer_type(parked_request.id, 5);
  EXPECT_EQ(parked.get().value, 5u);
}

TEST(ClientTransportTest, PeerClosingWakesEveryWaiterWithInvalidTask) {
  Pair pair;
  std::vector<std::future<TypeOutcome>> outcomes;
  for (int i = 0; i < 4; ++i) {
    outcomes.push_back(
        std::async(std::launch::async, [&, i] { return call_type(*pair.connection, i); }));
  }
  ScriptedPeer::Seen s;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pair.peer->read(&s));
  pair.peer->close();
  for (auto& o : outcomes) EXPECT_EQ(o.get().transport, Status::kInvalidTask);
  EXPECT_FALSE(pair.connection->alive());
  EXPECT_EQ(pair.connection->failure(), "the daemon closed the connection");
  // Later calls fail at once.
  EXPECT_EQ(call_type(*pair.connection, 9).transport, Status::kInvalidTask);
}

TEST(ClientTransportTest, ShutdownWakesWaiters) {
  Pair pair;
  auto outcome = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen s;
  ASSERT_TRUE(pair.peer->read(&s));
  pair.connection->shutdown("test says stop");
  EXPECT_EQ(outcome.get().transport, Status::kInvalidTask);
  EXPECT_EQ(pair.connection->failure(), "test says stop");
  // The peer sees the end of the stream.
  EXPECT_FALSE(pair.peer->read(&s));
}

TEST(ClientTransportTest, MalformedReplyEndsTheConnection) {
  Pair pair;
  auto outcome = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen s;
  ASSERT_TRUE(pair.peer->read(&s));
  // A segment table declaring 1000 segments.
  const uint32_t bad[2] = {999, 1};
  pair.peer->write_raw(bad, sizeof bad);
  EXPECT_EQ(outcome.get().transport, Status::kInvalidTask);
  EXPECT_EQ(pair.connection->failure().rfind("malformed frame from the daemon: ", 0), 0u)
      << pair.connection->failure();
}

TEST(ClientTransportTest, ReplyDeclaringFdsThatNeverCameIsAViolation) {
  Pair pair;
  auto outcome = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen s;
  ASSERT_TRUE(pair.peer->read(&s));
  capnp::MallocMessageBuilder b;
  auto reply = b.initRoot<wire::Reply>();
  reply.setId(s.id);
  reply.setFdCount(2);
  pair.peer->write(b);
  EXPECT_EQ(outcome.get().transport, Status::kInvalidTask);
  EXPECT_EQ(pair.connection->failure(), "reply declares 2 fds that did not arrive");
}

// A reply whose frame is sound but whose contents do not decode (an
// out-of-line region and no fd for it): its caller gets kInvalidTask, and so
// does a call of another thread still waiting, since the stream cannot be
// trusted after it.
TEST(ClientTransportTest, ReplyThatDoesNotDecodeFailsItsCallAndTheOthers) {
  Pair pair;
  auto first = std::async(std::launch::async, [&] { return call_type(*pair.connection, 1); });
  ScriptedPeer::Seen s1;
  ASSERT_TRUE(pair.peer->read(&s1));
  auto second = std::async(std::launch::async, [&] { return call_type(*pair.connection, 2); });
  ScriptedPeer::Seen s2;
  ASSERT_TRUE(pair.peer->read(&s2));
  capnp::MallocMessageBuilder b;
  auto reply = b.initRoot<wire::Reply>();
  reply.setId(s1.id);
  auto message = reply.initMessage();
  message.setId(7);
  message.initDescriptors(1)[0].initOol().setSize(4096);
  pair.peer->write(b);
  const TypeOutcome one = first.get();
  const TypeOutcome two = second.get();
  EXPECT_EQ(one.transport, Status::kInvalidTask);
  EXPECT_EQ(two.transport, Status::kInvalidTask);
  EXPECT_EQ(pair.connection->failure(), "reply has more out-of-line regions than file descriptors");
  EXPECT_EQ(call_type(*pair.connection, 3).transport, Status::kInvalidTask);
}

TEST(ClientTransportTest, LargeRequestWaitsForRoomWhileRepliesFlowBack) {
  // The peer floods replies and does not read until they are all written;
  // meanwhile the client writes a request larger than both socket buffers.
  // A client that did not read while waiting for room would deadlock here.
  Pair pair;
  int small = 16 * 1024;
  ASSERT_EQ(::setsockopt(pair.peer->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);

  std::atomic<bool> flooded{false};
  std::thread peer([&] {
    for (int i = 0; i < 2000; ++i) pair.peer->answer_type(1'000'000 + i, 1);  // nobody's
    flooded = true;
    ScriptedPeer::Seen s;
    ASSERT_TRUE(pair.peer->read(&s));
    EXPECT_EQ(s.which, wire::Request::SEND);
    EXPECT_EQ(s.body_bytes, 3u << 20);
    pair.peer->answer_status(s.id, Status::kSuccess);
  });

  capnp::MallocMessageBuilder b;
  auto message = b.initRoot<wire::Request>().initSend().initMessage();
  auto body = message.initBody(3u << 20);
  std::memset(body.begin(), 'z', body.size());
  ReplyData reply;
  auto sent = std::async(std::launch::async, [&] { return pair.connection->call(b, {}, &reply); });
  if (sent.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "deadlock: the request never got through";
    pair.connection->shutdown("test gave up");
  }
  EXPECT_EQ(sent.get(), Status::kSuccess);
  EXPECT_EQ(reply.status, Status::kSuccess);
  EXPECT_TRUE(flooded);
  peer.join();
}

TEST(ClientTransportTest, FrameOverTheDaemonsLimitIsRefusedBeforeSending) {
  Pair pair;
  pair.connection->set_max_frame_bytes(4096);
  capnp::MallocMessageBuilder b;
  b.initRoot<wire::Request>().initSend().initMessage().initBody(8192);
  ReplyData reply;
  EXPECT_EQ(pair.connection->call(b, {}, &reply), Status::kSendTooLarge);
  EXPECT_TRUE(pair.connection->alive());
  // Nothing reached the peer: the next frame it sees is the next request.
  auto outcome = std::async(std::launch::async, [&] { return call_type(*pair.connection, 3); });
  ScriptedPeer::Seen s;
  ASSERT_TRUE(pair.peer->read(&s));
  EXPECT_EQ(s.which, wire::Request::TYPE);
  pair.peer->answer_type(s.id, 33);
  EXPECT_EQ(outcome.get().value, 33u);
}

TEST(ClientTransportTest, ManyThreadsManyCallsUnderAnEchoingPeer) {
  // A stress of the leadership hand-off: 8 threads x 500 calls, the peer
  // answering in batches in reverse order.
  Pair pair;
  constexpr int kThreads = 8;
  constexpr int kCalls = 500;
  std::thread peer([&] {
    std::vector<ScriptedPeer::Seen> batch;
    ScriptedPeer::Seen s;
    int answered = 0;
    while (answered < kThreads * kCalls) {
      if (!pair.peer->read(&s)) return;
      batch.push_back(s);
      // Answer whenever the pipe has gone quiet or the batch is big.
      pollfd p{pair.peer->fd(), POLLIN, 0};
      if (batch.size() >= 5 || ::poll(&p, 1, 1) == 0) {
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          pair.peer->answer_type(it->id, it->name ^ 0x5a5a);
        }
        answered += static_cast<int>(batch.size());
        batch.clear();
      }
    }
  });
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const uint32_t name = static_cast<uint32_t>(t * 100000 + i);
        auto outcome = call_type(*pair.connection, name);
        if (outcome.transport != Status::kSuccess || outcome.value != (name ^ 0x5a5a)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  peer.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace portd::detail
