// Crash test: clients killed with SIGKILL at random moments, while the
// daemon keeps serving, owes nothing it does not deliver, and ends up where
// it started.
//
// Each round forks clients of two kinds and kills every one of them at a
// random moment (PORTD_STRESS_SEED fixes the moments; the seed is printed):
//
//  * libportd clients: connect, find the test's inbox, say hello with a send
//    right to an inbox of their own, get a setup message, then do random
//    things until killed: send to a port of the test's (blocking when it is
//    full, with large inline bodies and out-of-line regions: fds in flight,
//    frames half written; alone or in a batch, whose messages behind the
//    waiting one are held charged), use the send-once rights they were given, keep
//    messages (and the rights in them) queued on their inbox or received,
//    arm port-destroyed requests, wait for a name that never comes, or
//    block in receive. So each is killed in one of those states, or before
//    it got that far.
//  * raw clients: a socket that says hello (or not) and writes a large frame
//    in random pieces, an fd with its first bytes, and is killed mid-frame.
//
// The test process is the control client. For each hello it arms a
// dead-name request on the child's inbox, sends it a setup message with a
// send right to a port of its own (Y, queue limit 1, with a no-senders
// request) and send-once rights to its notify port, and queues a few more
// messages with send-once reply rights on the child's inbox. Every request
// that succeeded and every send-once right it handed out owes exactly one
// message on the notify port, whatever the child did with it before it
// died: a dead-name notification per request, a no-senders notification
// per Y (once the test has received what is queued on it), and for each
// send-once right either the child's message through it, a send-once
// notification, or a port-destroyed notification (the right was used as a
// backup for a port). After each round the test checks that exactly those
// arrived, and nothing else; that the daemon's open fds, ports, tasks and
// queues are back at their baseline; and that its counters balance. A
// pinger process has the daemon answer it every 10 ms throughout.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
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

constexpr int32_t kSetup = 2000;      // the test's first message to a child
constexpr int32_t kExtra = 2001;      // a message queued on a child's inbox
constexpr int32_t kToTest = 2002;     // a child's message to its Y
constexpr int32_t kUsedOnce = 2003;   // a child's message through a send-once right
constexpr int kChildrenPerRound = 8;  // a quarter of them raw
constexpr int kMaxKillMs = 120;

// ---------------------------------------------------------------------------
// The children

int libportd_child(const std::string& socket, const std::string& service, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  auto connected = Task::connect(ConnectOptions{socket, "crash-child"});
  if (!connected) return 20;
  std::shared_ptr<Task> t = *connected;
  // Large bodies inline: frames of hundreds of KiB, killed half written.
  if (pick(2) == 0) t->set_ool_threshold(t->max_inline_body());
  auto test = t->look_up(service, kWait);
  auto inbox = t->make_port();
  if (!test || !inbox) return 21;
  OutgoingMessage hello;
  hello.set_remote(*test).set_id(kHello).add_port(*inbox, Disposition::kMakeSend);
  if (t->send(hello) != Status::kSuccess) return 22;
  auto setup = inbox->receive(wait_up_to());
  if (!setup || setup->id != kSetup || setup->descriptors.empty()) return 23;
  SendRight to_y = SendRight::adopt(t, std::get<ReceivedPort>(setup->descriptors[0]).name);
  std::vector<SendOnceRight> onces;
  for (size_t i = 1; i < setup->descriptors.size(); ++i)
    onces.push_back(SendOnceRight::adopt(t, std::get<ReceivedPort>(setup->descriptors[i]).name));
  std::vector<ReceivedMessage> kept;
  std::vector<ReceiveRight> backed_up;
  for (;;) {  // until killed
    switch (pick(7)) {
      case 0:
      case 1: {  // to Y: blocks once Y's one slot is taken
        // Now and then a batch: its first message to find Y full waits and
        // holds the rest (with their regions) back, charged, until killed.
        const size_t n = pick(3) == 0 ? 2 + pick(5) : 1;
        std::vector<OutgoingMessage> batch(n);
        for (OutgoingMessage& m : batch) {
          m.set_remote(to_y).set_id(kToTest).set_local(*inbox, Disposition::kMakeSendOnce);
          m.set_body(std::string(pick(4) == 0 ? 100000 + pick(400000) : pick(512), 'c'));
          if (pick(2) == 0) m.add_ool_copy(bytes_of(std::string(1 + pick(200000), 'r')));
        }
        if (n == 1)
          (void)t->send(batch[0]);
        else
          (void)t->send_batch(batch);
        break;
      }
      case 2:  // a send-once right used up
        if (!onces.empty()) {
          OutgoingMessage m;
          m.set_remote(std::move(onces.back())).set_id(kUsedOnce);
          onces.pop_back();
          (void)t->send(m, SendOptions{std::chrono::milliseconds(0)});
        }
        break;
      case 3: {  // a message of the test's taken, and kept with its reply right
        auto got = inbox->receive(wait_up_to(std::chrono::milliseconds(pick(5))));
        if (got) kept.push_back(std::move(*got));
        break;
      }
      case 4:  // a port whose receive right goes to the test's notify port when it dies
        if (!onces.empty()) {
          auto z = t->make_port();
          if (z) {
            (void)z->request_port_destroyed(std::move(onces.back()));
            backed_up.push_back(std::move(*z));
          }
          onces.pop_back();
        }
        break;
      case 5:  // a look-up that waits for nothing
        (void)t->look_up("crash.never", std::chrono::milliseconds(1 + pick(20)));
        break;
      case 6:
        if (pick(4) == 0) {
          (void)inbox->receive();  // blocked until killed, or a message comes
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(pick(2000)));
        }
        break;
    }
  }
}

// Writes all of `data` (and `fd`, if valid, with its first byte).
bool write_piece(int sock, const uint8_t* data, size_t len, int fd) {
  iovec iov{const_cast<uint8_t*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  while (len > 0) {
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    iov.iov_base = static_cast<uint8_t*>(iov.iov_base) + n;
    iov.iov_len -= static_cast<size_t>(n);
    len -= static_cast<size_t>(n);
  }
  return true;
}

std::vector<uint8_t> frame_bytes(capnp::MessageBuilder& builder) {
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

int raw_child(const std::string& socket, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  proto::UniqueFd sock = connect_unix(socket);
  if (!sock) return 30;
  if (pick(4) != 0) {
    capnp::MallocMessageBuilder hello;
    auto r = hello.initRoot<wire::Request>();
    r.setId(1);
    auto h = r.initHello();
    h.setVersion(1);
    h.setCommand("crash-raw");
    const auto bytes = frame_bytes(hello);
    if (!write_piece(sock.get(), bytes.data(), bytes.size(), -1)) return 31;
  }
  // A send with a large body and a sealed region, to a name that means
  // nothing: written in random pieces, the region's fd with the first.
  proto::UniqueFd region(::memfd_create("crash-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  const uint64_t size = 1 + pick(65536);
  if (!region || ::ftruncate(region.get(), static_cast<off_t>(size)) != 0 ||
      ::fcntl(region.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return 32;
  capnp::MallocMessageBuilder send;
  auto r = send.initRoot<wire::Request>();
  r.setId(2);
  r.setFdCount(1);
  auto m = r.initSend().initMessage();
  m.setRemote(0x103);
  m.setRemoteDisposition(static_cast<uint8_t>(Disposition::kCopySend));
  m.initBody(static_cast<unsigned>(pick(600000)));
  m.initDescriptors(1)[0].initOol().setSize(size);
  const auto bytes = frame_bytes(send);
  size_t at = 0;
  bool first = true;
  while (at < bytes.size()) {
    const size_t piece = std::min<size_t>(bytes.size() - at, 1 + pick(64 << 10));
    if (!write_piece(sock.get(), bytes.data() + at, piece, first ? region.get() : -1)) break;
    first = false;
    at += piece;
    std::this_thread::sleep_for(std::chrono::microseconds(pick(3000)));
  }
  for (;;) ::pause();  // until killed
}

// ---------------------------------------------------------------------------
// The test

struct Owed {
  uint64_t dead_name = 0;   // dead-name requests armed
  uint64_t no_senders = 0;  // no-senders requests armed (one per Y)
  uint64_t send_once = 0;   // send-once rights handed out
};

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    control_ = connect_or_die(daemon_.socket_path(), "crash-control");
    ASSERT_TRUE(control_);
    view_ = std::make_unique<DaemonView>(control_);
    notify_ = std::move(*control_->make_port());
    service_ = unique_service("crash");
    inbox_ = std::move(*control_->check_in(service_));
    ASSERT_EQ(inbox_.set_qlimit(1024), Status::kSuccess);
  }

  // One hello: requests armed and rights handed out, each counted as owed.
  void on_hello(ReceivedMessage& hello, std::mt19937_64& rng, Owed& owed) {
    ASSERT_EQ(hello.id, kHello);
    ASSERT_EQ(hello.descriptors.size(), 1u);
    const Name inbox = std::get<ReceivedPort>(hello.descriptors[0]).name;
    if (inbox == kNameDead) return;  // its sender died before we took it
    ASSERT_NE(inbox, kNameNull);
    SendRight to_child = SendRight::adopt(control_, inbox);
    auto previous = to_child.request_dead_name(notify_);
    ASSERT_TRUE(previous.ok()) << status_name(previous.status());
    ++owed.dead_name;  // at once if the child is dead already
    auto y = control_->make_port();
    ASSERT_TRUE(y.ok());
    ASSERT_EQ(y->set_qlimit(1), Status::kSuccess);
    OutgoingMessage setup;
    setup.set_remote(to_child).set_id(kSetup).add_port(*y, Disposition::kMakeSend);
    const uint64_t onces = 1 + rng() % 4;
    for (uint64_t i = 0; i < onces; ++i) setup.add_port(notify_, Disposition::kMakeSendOnce);
    const Status sent = control_->send(setup, SendOptions{std::chrono::milliseconds(0)});
    if (sent == Status::kSuccess) {
      owed.send_once += onces;
    } else {
      EXPECT_EQ(sent, Status::kSendInvalidDest);  // it died meanwhile
    }
    // Armed after the send, so that it fires exactly once: when the child's
    // right (and those in its messages to Y) are gone, or now if they are.
    ASSERT_TRUE(y->request_no_senders(notify_).ok());
    ++owed.no_senders;
    for (uint64_t i = rng() % 4; i > 0; --i) {
      OutgoingMessage extra;
      extra.set_remote(to_child).set_id(kExtra).set_local(notify_, Disposition::kMakeSendOnce);
      const Status s = control_->send(extra, SendOptions{std::chrono::milliseconds(0)});
      if (s == Status::kSuccess) {
        ++owed.send_once;
      } else {
        EXPECT_TRUE(s == Status::kSendInvalidDest || s == Status::kSendTimedOut) << status_name(s);
      }
    }
    children_.push_back(std::move(to_child));
    ys_.push_back(std::move(*y));
  }

  void round(uint64_t seed, const Json& baseline, int baseline_fds) {
    SCOPED_TRACE("round seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    struct Victim {
      std::unique_ptr<Child> child;
      Clock::time_point kill_at;
    };
    std::vector<Victim> victims;
    const std::string socket = daemon_.socket_path();
    const auto start = Clock::now();
    for (int i = 0; i < kChildrenPerRound; ++i) {
      const uint64_t child_seed = rng();
      const bool raw = i % 4 == 3;
      Victim v;
      v.child = std::make_unique<Child>([&] {
        return raw ? raw_child(socket, child_seed) : libportd_child(socket, service_, child_seed);
      });
      v.kill_at = start + std::chrono::milliseconds(rng() % kMaxKillMs);
      victims.push_back(std::move(v));
    }

    // Serve hellos until every child is killed.
    Owed owed;
    size_t alive = victims.size();
    while (alive > 0) {
      auto next = Clock::time_point::max();
      for (auto& v : victims) {
        if (!v.child) continue;
        if (Clock::now() >= v.kill_at) {
          EXPECT_TRUE(kill_child(*v.child));
          v.child.reset();
          --alive;
        } else {
          next = std::min(next, v.kill_at);
        }
      }
      if (alive == 0) break;
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
      auto hello = inbox_.receive(wait_up_to(
          std::clamp(wait, std::chrono::milliseconds(0), std::chrono::milliseconds(10))));
      if (hello.ok()) on_hello(*hello, rng, owed);
    }

    // Their tasks are gone, with all their death caused; hellos that came
    // late name dead inboxes.
    ASSERT_TRUE(view_->wait_tasks(baseline["tasks"].get<uint64_t>()))
        << view_->status().dump() << "\n"
        << daemon_.log();
    for (auto hello = inbox_.receive(at_once()); hello.ok(); hello = inbox_.receive(at_once()))
      on_hello(*hello, rng, owed);
    // What the children left on their Ys: taken (and dropped), which lets the
    // no-senders notifications go.
    for (auto& y : ys_) {
      for (auto m = y.receive(at_once()); m.ok() || m.status() == Status::kRcvBodyError;
           m = y.receive(at_once())) {
        EXPECT_EQ(m->id, kToTest);
      }
    }

    // Exactly what is owed arrives on the notify port, and nothing more.
    uint64_t dead_name = 0, no_senders = 0, once_used = 0, once_unused = 0, backups = 0;
    const uint64_t expected = owed.dead_name + owed.no_senders + owed.send_once;
    for (uint64_t n = 0; n < expected; ++n) {
      auto m = notify_.receive(wait_up_to());
      ASSERT_TRUE(m.ok()) << status_name(m.status()) << " after " << n << " of " << expected
                          << " messages on the notify port";
      if (m->id == kUsedOnce && m->trailer.sender_task != 0) {
        ++once_used;
        continue;
      }
      auto note = parse_notification(control_, *m);
      ASSERT_TRUE(note.has_value()) << "message " << m->id << " on the notify port";
      switch (note->kind) {
        case Notification::kDeadName: ++dead_name; break;
        case Notification::kNoSenders: ++no_senders; break;
        case Notification::kSendOnce: ++once_unused; break;
        case Notification::kPortDestroyed:
          ++backups;
          EXPECT_TRUE(note->receive_right);  // ours now; dropped here, it dies
          break;
        default: ADD_FAILURE() << "unexpected notification " << m->id;
      }
    }
    EXPECT_EQ(dead_name, owed.dead_name);
    EXPECT_EQ(no_senders, owed.no_senders);
    EXPECT_EQ(once_used + once_unused + backups, owed.send_once)
        << once_used << " used, " << once_unused << " unused, " << backups << " backups";
    auto extra = notify_.receive(at_once());
    EXPECT_EQ(extra.status(), Status::kRcvTimedOut) << "message " << extra->id;
    total_owed_ += expected;

    // Back to where it started (the pinger's message may be in its queue
    // at any moment: queues are checked once it has stopped).
    children_.clear();
    ys_.clear();
    ASSERT_TRUE(control_->names().ok());  // the releases above are done
    const Json status = view_->status();
    for (const char* k : {"tasks", "ports", "port_sets", "bootstrap_names"})
      EXPECT_EQ(status[k], baseline[k]) << k;
    expect_counters_balanced(status);
    expect_fds(baseline_fds);
  }

  void expect_fds(int n) {
    const auto deadline = Clock::now() + kWait;
    while (daemon_.open_fd_count() != n && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(daemon_.open_fd_count(), n);
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> control_;
  std::unique_ptr<DaemonView> view_;
  ReceiveRight notify_;
  ReceiveRight inbox_;
  std::string service_;
  std::vector<SendRight> children_;
  std::vector<ReceiveRight> ys_;
  uint64_t total_owed_ = 0;
};

TEST_F(CrashTest, ClientsKilledAtRandomMomentsLeaveNothingBehind) {
  const uint64_t seed = stress_seed();
  const uint64_t rounds = 5 * stress_scale();
  std::cout << "crash test: seed " << seed << " (PORTD_STRESS_SEED), " << rounds << " rounds of "
            << kChildrenPerRound << " clients" << std::endl;
  SCOPED_TRACE("PORTD_STRESS_SEED=" + std::to_string(seed));

  Pinger pinger(daemon_.socket_path());
  ASSERT_TRUE(view_->wait_tasks(2));  // the control client and the pinger
  const Json baseline = view_->status();
  const int baseline_fds = daemon_.open_fd_count();
  std::mt19937_64 rng(seed);
  for (uint64_t r = 0; r < rounds && !HasFatalFailure(); ++r) round(rng(), baseline, baseline_fds);

  int code = 0;
  const int64_t pings = pinger.finish(&code);
  EXPECT_GT(pings, 0) << "the pinger's exit code " << code;
  EXPECT_GT(total_owed_, 0u);
  // With the pinger gone: nothing queued, nothing in flight, every
  // notification received or destroyed, and the pinger's connection closed.
  ASSERT_TRUE(view_->wait_tasks(1));
  const Json status = view_->status();
  EXPECT_EQ(status["ports"], baseline["ports"].get<uint64_t>() - 1);  // the pinger's
  EXPECT_EQ(status["queued_messages"], 0);
  EXPECT_EQ(status["queued_bytes"], 0);
  EXPECT_EQ(status["counters"]["messages_in_flight"], 0);
  expect_counters_balanced(status);
  EXPECT_EQ(status["counters"]["notifications"],
            status["counters"]["notifications_received"].get<uint64_t>() +
                status["counters"]["notifications_destroyed"].get<uint64_t>());
  expect_fds(baseline_fds - 1);
  std::cout << "crash test: the daemon's counters: " << status["counters"].dump() << std::endl;
  std::cout << "crash test: " << total_owed_ << " notifications and messages owed, all delivered; "
            << pings << " pings answered" << std::endl;
  EXPECT_TRUE(daemon_.running());
}

}  // namespace
}  // namespace portd::testing
