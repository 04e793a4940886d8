// Soak test: producers and consumers, each a process with a task of its own,
// exchange sequence-numbered messages carrying rights of every kind and
// out-of-line data, and afterwards the daemon's books match the clients'
// exactly.
//
// Producers send to consumers, in one sequence per (producer, consumer):
//  * data messages with a patterned body (sometimes over libportd's 64 KiB
//    threshold, so the body travels out of line), and at random a send right
//    to the producer's port (the consumer answers through it: an ack), a
//    send-once reply right (the consumer replies through it, or drops it and
//    the producer hears a send-once notification), an out-of-line region;
//  * carriers: the receive right of a fresh port on which the producer has
//    queued one to three messages of its own (the consumer takes them off
//    the port it now holds, in order, and lets the port go);
//  * an end marker, last.
// Most sends wait for room; some give up at once when the queue is full
// (refused: the producer keeps the message, and for a carrier lets the port
// go, with its queued messages). Some receives have a buffer too small for a
// data message and no MACH_RCV_LARGE: the message is destroyed. Consumers
// answer without waiting (an ack to a full port is refused).
//
// Every client counts what it sent, had refused, received and destroyed;
// the daemon's counters (status) must say exactly the same:
// messages_sent = received + destroyed + refused, destroyed by reason, no
// message in flight, every notification received. Each consumer checks
// per-sender FIFO (sequence numbers only grow) and every byte; producers
// check that acks from each consumer come in order. Afterwards the daemon's
// ports, tasks, queues and fds are back at their baseline, and its memory
// near it (below).
//
// Bounded: 3 producers, 2 consumers, 500 messages per producer (well under
// a second here); PORTD_STRESS_SCALE multiplies the messages,
// PORTD_STRESS_SEED repeats a run.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "portd/notification.h"
#include "tests/integration/cross_process.h"
#include "tests/stress/stress_support.h"

namespace portd::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kProducers = 3;
constexpr int kConsumers = 2;
constexpr uint64_t kMessagesPerProducer = 500;

constexpr int32_t kData = 3000;
constexpr int32_t kCarrier = 3001;
constexpr int32_t kEnd = 3002;
constexpr int32_t kInner = 3003;  // queued on a carried port
constexpr int32_t kAck = 3004;
constexpr int32_t kReply = 3005;

// A receive buffer that fits end markers and carriers, never a data
// message (their bodies are at least kMinData bytes).
constexpr uint32_t kSmallBuffer = 72;
constexpr size_t kMinData = 96;

// What each process counts, in memory shared with the test.
struct ProducerReport {
  uint64_t attempts = 0;                           // every send
  uint64_t refused = 0;                            // ... that failed (nothing consumed)
  std::array<uint64_t, kConsumers> accepted_to{};  // to each consumer, accepted
  uint64_t inner_accepted = 0;                     // messages queued on ports to be carried
  uint64_t inner_destroyed = 0;  // ... destroyed with a carrier's port after a refusal
  uint64_t once_sent = 0;        // send-once reply rights in accepted messages
  uint64_t replies = 0;          // answers through them
  uint64_t once_notified = 0;    // send-once notifications: dropped unused
  uint64_t acks = 0;
  uint64_t errors = 0;  // acks out of order, unexpected messages, failed calls
  int done = 0;
};

struct ConsumerReport {
  uint64_t attempts = 0;  // acks and replies
  uint64_t refused = 0;
  uint64_t received = 0;        // data, carriers, end markers, and what carriers brought
  uint64_t from_producers = 0;  // data, carriers and end markers received
  uint64_t too_large = 0;       // data destroyed for want of room
  uint64_t replies = 0;
  uint64_t errors = 0;  // order, content, failed calls
  int done = 0;
};

struct Shared {
  std::array<ProducerReport, kProducers> producers;
  std::array<ConsumerReport, kConsumers> consumers;
};

uint8_t pattern(uint32_t producer, uint64_t seq, size_t i) {
  return static_cast<uint8_t>(producer * 131 + seq * 7 + i);
}

struct Header {
  uint32_t producer;
  uint32_t consumer;
  uint64_t seq;
  uint64_t extra;  // a carrier: the messages on its port
};

std::vector<std::byte> body_of(const Header& h, size_t size) {
  std::vector<std::byte> b(std::max(size, sizeof h));
  std::memcpy(b.data(), &h, sizeof h);
  for (size_t i = sizeof h; i < b.size(); ++i) b[i] = std::byte{pattern(h.producer, h.seq, i)};
  return b;
}

bool read_header(const ReceivedMessage& m, Header* h) {
  if (m.body.size() < sizeof *h) return false;
  std::memcpy(h, m.body.data(), sizeof *h);
  return true;
}

std::string consumer_service(const std::string& run, int c) {
  return "test.soak." + run + ".consumer." + std::to_string(c);
}

// ---------------------------------------------------------------------------
// A producer

int producer_main(const std::string& socket, const std::string& run, int index, uint64_t count,
                  uint64_t seed, ProducerReport& r, int stop_fd) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  auto connected = Task::connect(ConnectOptions{socket, "soak-producer"});
  if (!connected) return 20;
  std::shared_ptr<Task> t = *connected;
  std::vector<SendRight> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    auto s = t->look_up(consumer_service(run, c), kWait);
    if (!s) return 21;
    consumers.push_back(std::move(*s));
  }
  auto answers = t->make_port();
  if (!answers || answers->set_qlimit(64) != Status::kSuccess) return 22;
  std::array<uint64_t, kConsumers> next_seq{};
  std::array<uint64_t, kConsumers> last_ack{};

  auto take_answer = [&](ReceivedMessage& m) {
    if (m.trailer.sender_task == 0 && m.id == 71) {
      ++r.once_notified;
    } else if (m.id == kReply) {
      ++r.replies;
    } else if (m.id == kAck) {
      Header h{};
      if (!read_header(m, &h) || h.consumer >= kConsumers || h.seq <= last_ack[h.consumer])
        ++r.errors;
      else
        last_ack[h.consumer] = h.seq;
      ++r.acks;
    } else {
      ++r.errors;
    }
  };
  auto drain = [&](std::chrono::milliseconds wait) {
    for (auto m = answers->receive(wait_up_to(wait)); m.ok(); m = answers->receive(at_once()))
      take_answer(*m);
  };
  // Sends and counts; true if accepted. A send that may wait waits at most
  // a minute (consumers always make room): a stuck run fails, never hangs.
  auto send = [&](OutgoingMessage& m, bool may_give_up) {
    ++r.attempts;
    SendOptions o;
    o.timeout = may_give_up ? std::chrono::milliseconds(0) : std::chrono::milliseconds(60000);
    const Status s = t->send(m, o);
    if (s == Status::kSuccess) return true;
    ++r.refused;
    if (s != Status::kSendTimedOut || !may_give_up) ++r.errors;
    return false;
  };

  for (uint64_t k = 0; k < count; ++k) {
    const int c = static_cast<int>(pick(kConsumers));
    Header h{static_cast<uint32_t>(index), static_cast<uint32_t>(c), ++next_seq[c], 0};
    const bool may_give_up = pick(8) == 0;
    if (pick(6) == 0) {
      // A carrier: a fresh port with messages queued on it, moved.
      auto port = t->make_port();
      if (!port) return 23;
      h.extra = 1 + pick(3);
      for (uint64_t i = 0; i < h.extra; ++i) {
        OutgoingMessage inner;
        Header ih{h.producer, h.consumer, i, 0};
        inner.set_remote(*port, Disposition::kMakeSend).set_id(kInner).set_body(body_of(ih, 24));
        if (!send(inner, false)) return 24;
        ++r.inner_accepted;
      }
      OutgoingMessage carrier;
      carrier.set_remote(consumers[c]).set_id(kCarrier).set_body(body_of(h, sizeof h));
      carrier.add_port(std::move(*port));
      if (send(carrier, may_give_up)) {
        ++r.accepted_to[c];
      } else {
        r.inner_destroyed += h.extra;  // the port comes back, and goes
      }
    } else {
      OutgoingMessage m;
      const size_t size = pick(10) == 0 ? (64 << 10) + pick(64 << 10) : kMinData + pick(2000);
      m.set_remote(consumers[c]).set_id(kData).set_body(body_of(h, size));
      const bool with_send = pick(3) == 0;
      const bool with_once = pick(3) == 0;
      if (with_send) m.add_port(*answers, Disposition::kMakeSend);
      if (with_once) m.set_local(*answers, Disposition::kMakeSendOnce);
      if (pick(4) == 0) {
        std::vector<std::byte> region(1 + pick(200000));
        for (size_t i = 0; i < region.size(); ++i)
          region[i] = std::byte{pattern(h.producer, h.seq + 1, i)};
        m.add_ool_copy(region);
      }
      if (send(m, may_give_up)) {
        ++r.accepted_to[c];
        if (with_once) ++r.once_sent;
      }
    }
    drain(std::chrono::milliseconds(0));
  }
  for (int c = 0; c < kConsumers; ++c) {
    OutgoingMessage end;
    Header h{static_cast<uint32_t>(index), static_cast<uint32_t>(c), ++next_seq[c], 0};
    end.set_remote(consumers[c]).set_id(kEnd).set_body(body_of(h, sizeof h));
    if (!send(end, false)) return 25;
    ++r.accepted_to[c];
  }
  // Answers until the test says the consumers are gone (and so is
  // anything they could still send), then the last of them.
  for (;;) {
    pollfd p{stop_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 0) break;
    drain(std::chrono::milliseconds(10));
  }
  drain(std::chrono::milliseconds(0));
  r.done = 1;
  return 0;
}

// ---------------------------------------------------------------------------
// A consumer

int consumer_main(const std::string& socket, const std::string& run, int index, uint64_t seed,
                  ConsumerReport& r) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  auto connected = Task::connect(ConnectOptions{socket, "soak-consumer"});
  if (!connected) return 30;
  std::shared_ptr<Task> t = *connected;
  auto inbox = t->check_in(consumer_service(run, index));
  if (!inbox) return 31;
  std::array<uint64_t, kProducers> last_seq{};
  std::array<uint64_t, kProducers> next_ack{};
  int ends = 0;

  auto answer = [&](OutgoingMessage& m) {
    ++r.attempts;
    const Status s = t->send(m, SendOptions{std::chrono::milliseconds(0)});
    if (s == Status::kSuccess) return true;
    ++r.refused;
    if (s != Status::kSendTimedOut) ++r.errors;
    return false;
  };
  auto in_order = [&](const Header& h) {
    if (h.producer >= kProducers || h.consumer != static_cast<uint32_t>(index) ||
        h.seq <= last_seq[h.producer])
      return false;
    last_seq[h.producer] = h.seq;
    return true;
  };

  while (ends < kProducers) {
    ReceiveOptions o = wait_up_to(std::chrono::seconds(60));
    const bool small = pick(16) == 0;
    if (small) o.max_size = kSmallBuffer;
    auto m = inbox->receive(o);
    if (m.status() == Status::kRcvTooLarge && small) {
      ++r.too_large;
      continue;
    }
    if (!m.ok()) {
      ++r.errors;
      return 32;
    }
    ++r.received;
    ++r.from_producers;
    Header h{};
    if (!read_header(*m, &h) || !in_order(h)) ++r.errors;
    switch (m->id) {
      case kEnd: ++ends; break;
      case kCarrier: {
        if (m->descriptors.size() != 1) {
          ++r.errors;
          break;
        }
        auto port = ReceiveRight::adopt(t, std::get<ReceivedPort>(m->descriptors[0]).name);
        for (uint64_t i = 0; i < h.extra; ++i) {
          auto inner = port.receive(at_once());
          Header ih{};
          if (!inner || inner->id != kInner || !read_header(*inner, &ih) || ih.seq != i)
            ++r.errors;
          else
            ++r.received;
        }
        if (port.receive(at_once()).status() != Status::kRcvTimedOut) ++r.errors;
        break;  // the port goes, empty
      }
      case kData: {
        for (size_t i = sizeof h; i < m->body.size(); ++i)
          if (m->body[i] != std::byte{pattern(h.producer, h.seq, i)}) {
            ++r.errors;
            break;
          }
        for (auto& d : m->descriptors) {
          if (auto* region = std::get_if<ReceivedOolMemory>(&d)) {
            const auto bytes = region->bytes();
            for (size_t i = 0; i < bytes.size(); ++i)
              if (bytes[i] != std::byte{pattern(h.producer, h.seq + 1, i)}) {
                ++r.errors;
                break;
              }
          } else if (auto* port = std::get_if<ReceivedPort>(&d)) {
            // A send right to the producer: an ack through it, then let go.
            SendRight to_producer = SendRight::adopt(t, port->name);
            OutgoingMessage ack;
            Header ah{h.producer, static_cast<uint32_t>(index), ++next_ack[h.producer], 0};
            ack.set_remote(to_producer).set_id(kAck).set_body(body_of(ah, sizeof ah));
            answer(ack);
          }
        }
        if (m->remote != kNameNull) {
          SendOnceRight once = SendOnceRight::adopt(t, m->remote);
          if (pick(2) == 0) {
            OutgoingMessage reply;
            reply.set_remote(std::move(once)).set_id(kReply);
            if (answer(reply)) ++r.replies;
          }
          // else dropped unused: the producer hears so
        }
        break;
      }
      default: ++r.errors;
    }
  }
  r.done = 1;
  return 0;
}

// ---------------------------------------------------------------------------

struct Totals {
  uint64_t sent = 0, received = 0, refused = 0, too_large = 0, port_died = 0, notified = 0;
};

class SoakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    viewer_ = connect_or_die(daemon_.socket_path(), "soak-viewer");
    ASSERT_TRUE(viewer_);
    view_ = std::make_unique<DaemonView>(viewer_);
    void* mem =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    shared_ = new (mem) Shared();
  }
  void TearDown() override {
    if (shared_ != nullptr) ::munmap(shared_, sizeof(Shared));
  }

  // One soak: every process started, run to its end, its counts checked
  // against each other and against the daemon's counters.
  void soak(const std::string& run, uint64_t per_producer, uint64_t seed) {
    SCOPED_TRACE("soak " + run + ", seed " + std::to_string(seed));
    *shared_ = Shared();
    const Json before = view_->status();
    std::mt19937_64 rng(seed);
    const std::string socket = daemon_.socket_path();
    std::vector<std::unique_ptr<Child>> consumers, producers;
    for (int c = 0; c < kConsumers; ++c) {
      const uint64_t s = rng();
      consumers.push_back(std::make_unique<Child>(
          [&] { return consumer_main(socket, run, c, s, shared_->consumers[c]); }));
    }
    int stop[2];
    ASSERT_EQ(::pipe(stop), 0);
    for (int p = 0; p < kProducers; ++p) {
      const uint64_t s = rng();
      producers.push_back(std::make_unique<Child>([&] {
        ::close(stop[1]);
        return producer_main(socket, run, p, per_producer, s, shared_->producers[p], stop[0]);
      }));
    }
    ::close(stop[0]);
    for (int c = 0; c < kConsumers; ++c) EXPECT_EQ(consumers[c]->wait(), 0) << "consumer " << c;
    // The consumers' tasks are gone: whatever they sent is queued.
    EXPECT_TRUE(view_->wait_tasks(1 + kProducers));
    ::close(stop[1]);
    for (int p = 0; p < kProducers; ++p) EXPECT_EQ(producers[p]->wait(), 0) << "producer " << p;
    ASSERT_TRUE(view_->wait_tasks(1));

    // The clients' books agree with each other...
    Totals c;
    uint64_t once_sent = 0, once_answered = 0, producer_acks = 0;
    std::array<uint64_t, kConsumers> accepted{};
    for (const auto& p : shared_->producers) {
      EXPECT_EQ(p.done, 1);
      EXPECT_EQ(p.errors, 0u);
      c.sent += p.attempts;
      c.refused += p.refused;
      c.received += p.replies + p.acks;
      c.port_died += p.inner_destroyed;
      c.notified += p.once_notified;
      once_sent += p.once_sent;
      once_answered += p.replies + p.once_notified;
      producer_acks += p.acks;
      for (int k = 0; k < kConsumers; ++k) accepted[k] += p.accepted_to[k];
    }
    uint64_t consumer_replies = 0, consumer_refused = 0, consumer_attempts = 0;
    for (int k = 0; k < kConsumers; ++k) {
      const auto& q = shared_->consumers[k];
      EXPECT_EQ(q.done, 1);
      EXPECT_EQ(q.errors, 0u);
      c.sent += q.attempts;
      c.refused += q.refused;
      c.received += q.received;
      c.too_large += q.too_large;
      consumer_replies += q.replies;
      consumer_refused += q.refused;
      consumer_attempts += q.attempts;
      // Everything accepted for this consumer was taken or destroyed for
      // want of room.
      EXPECT_EQ(accepted[k], q.from_producers + q.too_large) << "consumer " << k;
    }
    // Every reply right was answered or dropped (a dropped one is a
    // notification); replies are never refused (a send-once right's message
    // always fits), so every ack sent got through or was refused.
    EXPECT_EQ(once_sent, once_answered);
    EXPECT_EQ(consumer_attempts, producer_acks + consumer_replies + consumer_refused);

    // ...and with the daemon's.
    const Json after = view_->status();
    auto delta = [&](const char* key) {
      return after["counters"][key].get<uint64_t>() - before["counters"][key].get<uint64_t>();
    };
    auto destroyed = [&](const char* why) {
      return after["counters"]["destroyed"][why].get<uint64_t>() -
             before["counters"]["destroyed"][why].get<uint64_t>();
    };
    EXPECT_EQ(delta("messages_sent"), c.sent);
    EXPECT_EQ(delta("messages_received"), c.received);
    EXPECT_EQ(delta("messages_refused"), c.refused);
    EXPECT_EQ(delta("messages_destroyed"), c.too_large + c.port_died);
    EXPECT_EQ(destroyed("too_large"), c.too_large);
    EXPECT_EQ(destroyed("port_died"), c.port_died);
    EXPECT_EQ(destroyed("sender_died"), 0u);
    EXPECT_EQ(delta("messages_sent"),
              delta("messages_received") + delta("messages_destroyed") + delta("messages_refused"));
    EXPECT_EQ(after["counters"]["messages_in_flight"], 0);
    EXPECT_EQ(delta("notifications"), c.notified);
    EXPECT_EQ(delta("notifications_received"), c.notified);
    EXPECT_EQ(delta("notifications_destroyed"), 0u);
    expect_counters_balanced(after);
    for (const char* k :
         {"ports", "port_sets", "queued_messages", "queued_bytes", "bootstrap_names"})
      EXPECT_EQ(after[k], 0) << k;
    std::cout << "soak " << run << ": " << c.sent << " sent, " << c.received << " received, "
              << c.too_large + c.port_died << " destroyed (" << c.too_large << " too large, "
              << c.port_died << " with their port), " << c.refused << " refused, " << c.notified
              << " notifications" << std::endl;
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> viewer_;
  std::unique_ptr<DaemonView> view_;
  Shared* shared_ = nullptr;
};

TEST_F(SoakTest, EveryMessageIsAccountedForAndTheDaemonComesBack) {
  const uint64_t seed = stress_seed();
  const uint64_t per_producer = kMessagesPerProducer * stress_scale();
  std::cout << "soak test: seed " << seed << " (PORTD_STRESS_SEED), " << kProducers
            << " producers, " << kConsumers << " consumers, " << per_producer
            << " messages per producer" << std::endl;
  SCOPED_TRACE("PORTD_STRESS_SEED=" + std::to_string(seed));
  const int fds = daemon_.open_fd_count();
  const uint64_t rss_start = rss_kib(daemon_.pid());

  // A first, short soak brings the daemon to its working size (pools, hash
  // tables, the allocator's arenas); the second, full one must leave it
  // there.
  std::mt19937_64 rng(seed);
  soak("warmup", std::max<uint64_t>(per_producer / 4, 50), rng());
  if (HasFailure()) return;
  const uint64_t rss_warm = rss_kib(daemon_.pid());
  soak("main", per_producer, rng());
  const uint64_t rss_end = rss_kib(daemon_.pid());
  std::cout << "soak test: daemon RSS " << rss_start << " KiB at start, " << rss_warm
            << " KiB after the warm-up, " << rss_end << " KiB at the end" << std::endl;
  EXPECT_EQ(daemon_.open_fd_count(), fds);
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine holds freed memory back on purpose: RSS says nothing
  // here. Its leak check runs when the daemon stops (DaemonProcess).
#else
  // Near the baseline: within 4 MiB of what the warm-up left. What the
  // daemon holds at the soak's peak is bounded whatever its length (queue
  // limits of 5, inline bodies of at most 64 KiB here, larger ones out of
  // line: about 1 MiB), and it keeps some of what it is done with on
  // purpose (up to 1024 pooled messages, hash tables that do not shrink)
  // while glibc keeps freed chunks in its arena; 4 MiB covers that slack
  // (measured: 0.1 to 0.4 MiB). A leak of a hundred bytes a message passes
  // it in a scaled run (PORTD_STRESS_SCALE=40: over 50,000 messages).
  EXPECT_LE(rss_end, rss_warm + 4 * 1024) << "KiB";
#endif
}

}  // namespace
}  // namespace portd::testing
