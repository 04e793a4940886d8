// Hostile clients against the real daemon (DESIGN section 5): random bytes,
// truncated and mutated frames, oversized length prefixes, bad fd
// declarations (too many, too few, undeclared, of the wrong kind, a control
// message the kernel must truncate), well-formed requests that are invalid
// (names of other tasks, bad rights and dispositions), and clients that die
// with rights in flight or replies unread, while a well-behaved client keeps
// doing round trips through an echo service in the same daemon.
//
// Afterwards the daemon must be alive, the well-behaved client must have seen
// only correct replies, the daemon must have logged no error of its own, and
// its open fds, tasks, ports, port sets, queued messages and bootstrap names
// must be back at the baseline taken before the hostile clients came.
//
// The hostile traffic comes from a seeded generator. Environment:
//   PORTD_PROTOCOL_FUZZ_CONNECTIONS  hostile connections (default 300)
//   PORTD_PROTOCOL_FUZZ_SEED         the generator's seed (default 1; each
//                                    failure message names the seed)
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "portd/introspect.h"
#include "portd/portd.h"
#include "portd/proto/frame.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using Json = nlohmann::json;
using proto::UniqueFd;

constexpr const char* kEcho = "test.protocol-fuzz.echo";
constexpr uint8_t kMoveReceive = 16;
constexpr uint8_t kCopySend = 19;
constexpr uint8_t kMakeSend = 20;
constexpr uint8_t kMakeSendOnce = 21;
constexpr uint32_t kRightReceive = 1;

int32_t code(Status s) { return static_cast<int32_t>(s); }

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// ---------------------------------------------------------------------------
// What the daemon holds

struct Counts {
  int fds = -1;
  int64_t tasks = -1, ports = -1, port_sets = -1, queued_messages = -1, bootstrap_names = -1;

  bool operator==(const Counts&) const = default;
  std::string str() const {
    std::ostringstream o;
    o << "fds " << fds << ", tasks " << tasks << ", ports " << ports << ", port sets " << port_sets
      << ", queued messages " << queued_messages << ", bootstrap names " << bootstrap_names;
    return o.str();
  }
};

Counts counts(const DaemonProcess& daemon, const std::shared_ptr<Task>& probe) {
  Counts c;
  c.fds = daemon.open_fd_count();
  Introspection in(probe);
  IntrospectQuery q;
  q.what = IntrospectWhat::kStatus;
  auto r = in.fetch(q);
  if (!r) return c;
  const Json j = Json::parse(*r);
  c.tasks = j["tasks"];
  c.ports = j["ports"];
  c.port_sets = j["port_sets"];
  c.queued_messages = j["queued_messages"];
  c.bootstrap_names = j["bootstrap_names"];
  return c;
}

// Closing is asynchronous to the test: waits until the counts are `want`.
Counts settle(const DaemonProcess& daemon, const std::shared_ptr<Task>& probe, const Counts& want) {
  Counts now;
  for (int i = 0; i < 1000; ++i) {
    now = counts(daemon, probe);
    if (now == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return now;
}

// Lines the daemon logged at level error or critical: its own bugs or
// failures, never a client's.
std::vector<std::string> error_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string time, level;
    words >> time >> level;
    if (level == "error" || level == "critical") out.push_back(line);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The well-behaved side: an echo service and a client of it, each a Task on
// its own thread.

// Answers every message that carries a send-once reply right with its body
// and id + 100, and releases every right any message brings (hostile clients
// send it all sorts).
class EchoService {
 public:
  explicit EchoService(const std::string& socket) {
    task_ = connect_or_die(socket, "fuzz-echo");
    if (!task_) return;
    auto port = task_->check_in(kEcho);
    EXPECT_TRUE(port) << status_name(port.status());
    if (!port) return;
    port_ = std::make_unique<ReceiveRight>(std::move(*port));
    thread_ = std::thread([this] { run(); });
  }
  ~EchoService() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t answered() const { return answered_; }
  Name port_name() const { return port_ ? port_->name() : kNameNull; }

 private:
  void run() {
    ReceiveOptions wait;
    wait.timeout = std::chrono::milliseconds(20);
    while (!stop_) {
      auto m = port_->receive(wait);
      if (!m) continue;  // timed out, or a hostile message it could not take
      for (const auto& d : m->descriptors) {
        if (const auto* p = std::get_if<ReceivedPort>(&d)) release(p->name);
        if (const auto* ports = std::get_if<ReceivedOolPorts>(&d))
          for (Name n : ports->names) release(n);
      }
      if (m->remote_type != RightType::kSendOnce) {
        release(m->remote);
        continue;
      }
      OutgoingMessage reply;
      reply.set_remote(SendOnceRight::adopt(task_, m->remote)).set_id(m->id + 100);
      reply.body() = std::move(m->body);
      SendOptions now;
      now.timeout = std::chrono::milliseconds(0);
      if (ok(task_->send(reply, now))) ++answered_;
    }
  }

  void release(Name name) {
    if (name != kNameNull && name != kNameDead) (void)task_->destroy(name);
  }

  std::shared_ptr<Task> task_;
  std::unique_ptr<ReceiveRight> port_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> answered_{0};
  std::thread thread_;
};

// Round trips through the echo service until stopped; every reply must be
// the request's body, with its id + 100.
class GoodClient {
 public:
  explicit GoodClient(const std::string& socket) {
    task_ = connect_or_die(socket, "fuzz-good");
    if (!task_) return;
    auto service = task_->look_up(kEcho);
    auto reply_port = task_->make_port();
    EXPECT_TRUE(service && reply_port);
    if (!service || !reply_port) return;
    service_ = std::make_unique<SendRight>(std::move(*service));
    reply_port_ = std::make_unique<ReceiveRight>(std::move(*reply_port));
  }
  ~GoodClient() { stop(); }

  // One round trip; false (and a recorded error) if it went wrong.
  bool round_trip() {
    const int32_t id = static_cast<int32_t>(next_id_++ % 100000);
    const std::string text = "round trip " + std::to_string(id);
    OutgoingMessage request;
    request.set_remote(*service_).set_id(id);
    request.body().resize(text.size());
    std::memcpy(request.body().data(), text.data(), text.size());
    auto reply = task_->rpc(request, *reply_port_);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!reply) {
      errors_.push_back("rpc " + std::to_string(id) + ": " +
                        std::string(status_name(reply.status())));
      return false;
    }
    if (reply->id != id + 100 || reply->body_text() != text || !reply->descriptors.empty()) {
      errors_.push_back("rpc " + std::to_string(id) + ": reply " + std::to_string(reply->id) +
                        " '" + std::string(reply->body_text()) + "'");
      return false;
    }
    ++round_trips_;
    return true;
  }

  void start() {
    thread_ = std::thread([this] {
      while (!stop_ && round_trip()) {
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t round_trips() const { return round_trips_; }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  Name reply_port_name() const { return reply_port_ ? reply_port_->name() : kNameNull; }
  Name service_name() const { return service_ ? service_->name() : kNameNull; }

 private:
  std::shared_ptr<Task> task_;
  std::unique_ptr<SendRight> service_;
  std::unique_ptr<ReceiveRight> reply_port_;
  uint64_t next_id_ = 1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> round_trips_{0};
  std::mutex mutex_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// The hostile side

UniqueFd memfd(size_t size, int seals) {
  UniqueFd fd(::memfd_create("protocol-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

constexpr int kAllSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

UniqueFd pipe_end(bool write_end) {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  return write_end ? std::move(w) : std::move(r);
}

std::string frame_bytes(const std::function<void(wire::Request::Builder)>& fill, uint64_t id,
                        uint16_t fds = 0) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(id);
  r.setFdCount(fds);
  fill(r);
  auto bytes = proto::encode_frame(message);
  return std::string(bytes.begin(), bytes.end());
}

// A reply, reduced to what these tests look at.
struct Answer {
  bool ok = false;
  uint64_t id = 0;
  int32_t status = -1;
};

Answer answer(RawClient& c) {
  Answer a;
  a.ok = c.next_reply(
      [&](wire::Reply::Reader r, std::vector<UniqueFd>&) {
        a.id = r.getId();
        a.status = r.getStatus();
      },
      5000);
  return a;
}

// Sends raw bytes with `fds` in one sendmsg.
bool send_with_fds(int socket, const std::string& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

class Hostile {
 public:
  Hostile(const DaemonProcess& daemon, uint64_t seed, Name echo_port, Name good_reply_port,
          Name good_service)
      : daemon_(daemon),
        rng_(seed),
        seed_(seed),
        foreign_{echo_port, good_reply_port, good_service} {}

  // One hostile connection, of a kind picked at random. Some are kept open
  // for a while, so that several are alive at once.
  void one() {
    auto c = std::make_unique<RawClient>(daemon_.socket_path());
    ASSERT_TRUE(c->connected());
    const int kind = pick(0, 10);
    switch (kind) {
      case 0: random_bytes(*c, false); break;
      case 1: random_bytes(*c, true); break;
      case 2: truncated(*c); break;
      case 3: mutated(*c); break;
      case 4: oversized(*c); break;
      case 5: bad_fds(*c); break;
      case 6: invalid_requests(*c); break;
      case 7: rights_in_flight(*c); break;
      case 8: wrong_fd_kinds(*c); break;
      case 9: segments(*c); break;
      case 10: flood(*c); break;
    }
    ++kinds_[kind];
    open_.push_back(std::move(c));
    if (open_.size() > 6) open_.pop_front();
  }

  void close_all() { open_.clear(); }
  const uint64_t* kinds() const { return kinds_; }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string where() const { return " (seed " + std::to_string(seed_) + ")"; }

  std::string random_string(size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(pick(0, 255));
    return s;
  }

  // A valid request of a random kind, from a client that said hello and
  // owns nothing (or little).
  std::string valid_frame(uint64_t id) {
    switch (pick(0, 7)) {
      case 0: return frame_bytes([](auto r) { r.initAllocate().setRight(kRightReceive); }, id);
      case 1: return frame_bytes([](auto r) { r.initBootstrapLookUp().setName(kEcho); }, id);
      case 2: return frame_bytes([](auto r) { r.setNames(); }, id);
      case 3:
        return frame_bytes(
            [](auto r) {
              auto o = r.initReceive();
              o.setName(0x103);
              o.setTimeoutMs(50);
            },
            id);
      case 4:
        return frame_bytes(
            [&](auto r) {
              auto m = r.initSend().initMessage();
              m.setRemote(0x103);
              m.setRemoteDisposition(kMakeSend);
              m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>("body"), 4));
              auto d = m.initDescriptors(2);
              d[0].initPort().setName(0x103);
              d[0].getPort().setDisposition(kMakeSendOnce);
              auto ports = d[1].initOolPorts();
              ports.setDisposition(kMakeSend);
              ports.initNames(2).set(0, 0x103);
            },
            id);
      case 5:
        return frame_bytes(
            [](auto r) {
              auto i = r.initIntrospect();
              i.setWhat(wire::IntrospectWhat::PORTS);
              i.setCursor("12");
            },
            id);
      case 6:
        return frame_bytes([](auto r) { r.initBootstrapCheckIn().setName("test.fuzz.x"); }, id);
      default:
        return frame_bytes(
            [](auto r) {
              auto n = r.initRequestNotification();
              n.setName(0x103);
              n.setVariant(72);
              n.setNotify(0x103);
            },
            id);
    }
  }

  void random_bytes(RawClient& c, bool hello_first) {
    if (hello_first) {
      ASSERT_NE(c.hello("fuzz-random"), 0u) << where();
    }
    const std::string junk = random_string(static_cast<size_t>(pick(1, 2048)));
    c.send_bytes(junk.data(), junk.size());
  }

  void truncated(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-truncated"), 0u) << where();
    const std::string f = valid_frame(2);
    c.send_bytes(f.data(), static_cast<size_t>(pick(1, static_cast<int>(f.size()) - 1)));
    // The connection closes mid-frame when this client is dropped.
  }

  void mutated(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-mutated"), 0u) << where();
    for (int n = pick(1, 4); n > 0; --n) {
      std::string f = valid_frame(static_cast<uint64_t>(pick(2, 1000)));
      for (int flips = pick(1, 8); flips > 0; --flips)
        f[static_cast<size_t>(pick(0, static_cast<int>(f.size()) - 1))] ^=
            static_cast<char>(1 << pick(0, 7));
      if (!c.send_bytes(f.data(), f.size())) return;
    }
  }

  // A segment table declaring far more than the frame limit: refused from
  // the header, before any buffer grows.
  void oversized(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-oversized"), 0u) << where();
    const uint32_t table[2] = {0, static_cast<uint32_t>(pick(1 << 20, 0x7fffffff))};
    c.send_bytes(table, sizeof table);
    EXPECT_TRUE(c.wait_closed()) << "an oversized frame did not close the connection" << where();
  }

  void segments(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-segments"), 0u) << where();
    // More segments than allowed, or a count that wraps.
    const uint32_t count = pick(0, 1) == 0 ? 0xffffffffu : static_cast<uint32_t>(pick(16, 5000));
    std::string bytes(reinterpret_cast<const char*>(&count), 4);
    bytes += random_string(60);
    c.send_bytes(bytes.data(), bytes.size());
    EXPECT_TRUE(c.wait_closed()) << "a frame of " << count << "+1 segments was accepted" << where();
  }

  // Requests pipelined without ever reading a reply (parked receives among
  // them), then the connection ends with its replies unsent.
  void flood(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-flood"), 0u) << where();
    std::string burst;
    const uint32_t port = allocate(c, 2);
    for (uint64_t id = 3; id < 3 + static_cast<uint64_t>(pick(100, 3000)); ++id) {
      if (id % 7 == 0) {
        burst += frame_bytes(
            [&](auto r) {
              auto o = r.initReceive();
              o.setName(port);
              o.setTimeoutMs(-1);
            },
            id);
      } else if (id % 3 == 0) {
        burst += frame_bytes(
            [&](auto r) {
              auto m = r.initSend().initMessage();
              m.setRemote(port);
              m.setRemoteDisposition(kMakeSend);
              m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(burst.data()),
                                     std::min<size_t>(burst.size(), 512)));
              r.getSend().initOptions().setTimeoutMs(0);
            },
            id);
      } else {
        burst += valid_frame(id);
      }
    }
    c.send_bytes(burst.data(), burst.size());
  }

  // Fd declarations the stream cannot recover from: each closes the
  // connection.
  void bad_fds(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-fds"), 0u) << where();
    const int sub = pick(0, 3);
    std::vector<UniqueFd> held;
    std::vector<int> raw;
    auto add = [&](UniqueFd fd) {
      raw.push_back(fd.get());
      held.push_back(std::move(fd));
    };
    if (sub == 0) {
      // Declares three, brings one.
      add(memfd(8, kAllSeals));
      send_with_fds(c.fd(), frame_bytes([](auto r) { r.setNames(); }, 2, 3), raw);
    } else if (sub == 1) {
      // Brings two that no frame declares.
      add(memfd(8, kAllSeals));
      add(pipe_end(false));
      send_with_fds(c.fd(), frame_bytes([](auto r) { r.setNames(); }, 2, 0), raw);
    } else if (sub == 2) {
      // More than a frame may carry (64).
      for (int i = 0; i < 65; ++i) add(UniqueFd(::dup(2)));
      send_with_fds(c.fd(), frame_bytes([](auto r) { r.setNames(); }, 2, 65), raw);
    } else {
      // As many as one sendmsg can carry, twice, with no frame at all: more
      // pending than allowed (256).
      for (int i = 0; i < 253; ++i) add(UniqueFd(::dup(2)));
      const std::string half = frame_bytes([](auto r) { r.setNames(); }, 2).substr(0, 8);
      send_with_fds(c.fd(), half.substr(0, 4), raw);
      send_with_fds(c.fd(), half.substr(4, 4), raw);
    }
    EXPECT_TRUE(c.wait_closed()) << "fd abuse " << sub << " did not close the connection"
                                 << where();
  }

  // Out-of-line regions whose fd is not what the descriptor says: an error
  // reply, and the connection goes on.
  void wrong_fd_kinds(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-fd-kinds"), 0u) << where();
    const uint32_t port = allocate(c, 2);
    for (int sub = 0; sub < 5; ++sub) {
      std::vector<UniqueFd> fds;
      bool is_volatile = false, release = false;
      switch (sub) {
        case 0: fds.push_back(pipe_end(false)); break;       // not a memfd
        case 1: fds.push_back(memfd(4096, 0)); break;        // not sealed
        case 2: fds.push_back(memfd(16, kAllSeals)); break;  // shorter than declared
        case 3: {                                            // a socket
          int sv[2];
          ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
          fds.emplace_back(sv[0]);
          ::close(sv[1]);
          break;
        }
        default:  // a volatile region whose release signal is a read end
          is_volatile = release = true;
          fds.push_back(memfd(4096, F_SEAL_SHRINK));
          fds.push_back(pipe_end(false));
      }
      const uint64_t id = 10 + static_cast<uint64_t>(sub);
      ASSERT_TRUE(c.request(
          id,
          [&](auto r) {
            auto m = r.initSend().initMessage();
            m.setRemote(port);
            m.setRemoteDisposition(kMakeSend);
            auto o = m.initDescriptors(1)[0].initOol();
            o.setSize(4096);
            o.setVolatile(is_volatile);
            o.setReleaseSignal(release);
            r.getSend().initOptions().setTimeoutMs(0);
          },
          std::move(fds)))
          << where();
      const Answer a = answer(c);
      EXPECT_TRUE(a.ok && a.id == id && a.status == code(Status::kSendInvalidMemory))
          << "wrong fd kind " << sub << ": reply " << a.id << " status " << a.status << where();
    }
    // A request that takes no fds, with one.
    std::vector<UniqueFd> one;
    one.push_back(memfd(8, kAllSeals));
    ASSERT_TRUE(c.request(
        20, [](auto r) { r.setNames(); }, std::move(one)));
    const Answer a = answer(c);
    EXPECT_TRUE(a.ok && a.id == 20 && a.status == code(Status::kInvalidArgument))
        << "fds with names: " << a.status << where();
    EXPECT_NE(allocate(c, 21), 0u) << "the connection did not go on" << where();
  }

  uint32_t allocate(RawClient& c, uint64_t id) {
    uint32_t name = 0;
    if (!c.request(id, [](auto r) { r.initAllocate().setRight(kRightReceive); })) return 0;
    c.next_reply([&](wire::Reply::Reader r, auto&) {
      if (r.getId() == id && r.getStatus() == 0) name = r.getName();
    });
    return name;
  }

  // Well-formed requests that are invalid: names that belong to other tasks
  // (the echo service's and the good client's), rights and dispositions that
  // do not exist. Each gets its exact error; the connection goes on.
  void invalid_requests(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-invalid"), 0u) << where();
    uint64_t id = 2;
    auto expect = [&](const std::function<void(wire::Request::Builder)>& fill, Status want,
                      const char* what) {
      ASSERT_TRUE(c.request(id, fill)) << what << where();
      const Answer a = answer(c);
      EXPECT_TRUE(a.ok && a.id == id) << what << where();
      EXPECT_EQ(a.status, code(want)) << what << where();
      ++id;
    };
    const uint32_t foreign = foreign_[static_cast<size_t>(pick(0, 2))];
    expect(
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(foreign);
          m.setRemoteDisposition(kCopySend);
          r.getSend().initOptions().setTimeoutMs(0);
        },
        Status::kSendInvalidDest, "send to another task's name");
    expect([&](auto r) { r.initDestroy().setName(foreign); }, Status::kInvalidName,
           "destroy another task's name");
    expect([&](auto r) { r.initDeallocate().setName(foreign); }, Status::kInvalidName,
           "deallocate another task's name");
    expect(
        [&](auto r) {
          auto m = r.initModRefs();
          m.setName(foreign);
          m.setRight(kRightReceive);
          m.setDelta(-1);
        },
        Status::kInvalidName, "mod_refs on another task's name");
    expect(
        [&](auto r) {
          auto o = r.initReceive();
          o.setName(foreign);
          o.setTimeoutMs(0);
        },
        Status::kRcvInvalidName, "receive on another task's name");
    expect(
        [&](auto r) {
          auto e = r.initExtractRight();
          e.setName(foreign);
          e.setDisposition(kMoveReceive);
        },
        Status::kInvalidName, "extract another task's receive right");
    expect(
        [&](auto r) {
          auto a = r.initSetAttributes();
          a.setName(foreign);
          a.setQlimit(0);
        },
        Status::kInvalidName, "set another task's queue limit");
    expect([](auto r) { r.initAllocate().setRight(99); }, Status::kInvalidValue, "right 99");
    expect(
        [](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(0x103);
          m.setRemoteDisposition(kMoveReceive);
        },
        Status::kSendInvalidHeader, "MOVE_RECEIVE as a destination");
    expect(
        [](auto r) {
          auto i = r.initInsertRight();
          i.setName(0x103);
          i.setRight(0x103);
          i.setDisposition(3);
        },
        Status::kInvalidValue, "disposition 3");
    expect([](auto r) { r.initBootstrapCheckIn().setName(kEcho); }, Status::kBootstrapServiceActive,
           "check in a name in use");
    expect([](auto r) { r.initAllocate().setRight(kRightReceive); }, Status::kSuccess,
           "the connection goes on");
  }

  // Rights in flight when the client dies: messages to the echo service
  // carrying receive rights, send rights, send-once reply rights, port
  // arrays and a region; a parked receive; then the connection just ends.
  void rights_in_flight(RawClient& c) {
    ASSERT_NE(c.hello("fuzz-in-flight"), 0u) << where();
    uint32_t service = 0;
    ASSERT_TRUE(c.request(2, [](auto r) { r.initBootstrapLookUp().setName(kEcho); }));
    c.next_reply([&](wire::Reply::Reader r, auto&) { service = r.getName(); });
    ASSERT_NE(service, 0u) << where();
    const uint32_t a = allocate(c, 3);
    const uint32_t b = allocate(c, 4);
    const uint32_t d = allocate(c, 5);
    std::vector<UniqueFd> fds;
    fds.push_back(memfd(4096, kAllSeals));
    c.request(
        6,
        [&](auto r) {
          auto s = r.initSend();
          auto m = s.initMessage();
          m.setRemote(service);
          m.setRemoteDisposition(kCopySend);
          m.setLocal(a);
          m.setLocalDisposition(kMakeSendOnce);
          m.setId(pick(0, 1000));
          const std::string body = random_string(static_cast<size_t>(pick(0, 64)));
          m.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
          auto desc = m.initDescriptors(4);
          desc[0].initPort().setName(b);
          desc[0].getPort().setDisposition(kMoveReceive);
          desc[1].initPort().setName(a);
          desc[1].getPort().setDisposition(kMakeSend);
          auto ports = desc[2].initOolPorts();
          ports.setDisposition(kMakeSend);
          auto names = ports.initNames(2);
          names.set(0, a);
          names.set(1, d);
          desc[3].initOol().setSize(4096);
          s.initOptions().setTimeoutMs(pick(0, 1) == 0 ? 0 : 100);
        },
        std::move(fds));
    // A receive that waits, and a request for a dead-name notification.
    c.request(7, [&](auto r) {
      auto o = r.initReceive();
      o.setName(d);
      o.setTimeoutMs(-1);
    });
    c.request(8, [&](auto r) {
      auto n = r.initRequestNotification();
      n.setName(service);
      n.setVariant(72);
      n.setNotify(d);
      n.setNotifyDisposition(kMakeSendOnce);
    });
    // Half the time, die before reading anything.
    if (pick(0, 1) == 0) answer(c);
  }

  const DaemonProcess& daemon_;
  std::mt19937_64 rng_;
  const uint64_t seed_;
  const uint32_t foreign_[3];
  std::deque<std::unique_ptr<RawClient>> open_;
  uint64_t kinds_[11] = {};
};

// The daemon's lowest free fd number: RLIMIT_NOFILE bounds fd numbers.
int lowest_free_fd(pid_t pid) {
  std::vector<bool> used(4096, false);
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const int fd = std::atoi(e->d_name);
      if (fd >= 0 && fd < 4096) used[static_cast<size_t>(fd)] = true;
    }
    ::closedir(d);
  }
  int n = 0;
  while (n < 4096 && used[static_cast<size_t>(n)]) ++n;
  return n;
}

// ---------------------------------------------------------------------------

TEST(ProtocolFuzz, HostileClientsLeaveNoTraceAndDisturbNoOne) {
  const uint64_t connections = env_or("PORTD_PROTOCOL_FUZZ_CONNECTIONS", 300);
  const uint64_t seed = env_or("PORTD_PROTOCOL_FUZZ_SEED", 1);
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());

  EchoService echo(daemon.socket_path());
  GoodClient good(daemon.socket_path());
  auto probe = connect_or_die(daemon.socket_path(), "fuzz-probe");
  ASSERT_TRUE(probe);
  ASSERT_TRUE(good.round_trip());
  const Counts baseline = counts(daemon, probe);
  ASSERT_GE(baseline.tasks, 3);
  ASSERT_GE(baseline.fds, 0);

  good.start();
  Hostile hostile(daemon, seed, echo.port_name(), good.reply_port_name(), good.service_name());
  for (uint64_t i = 0; i < connections && !::testing::Test::HasFatalFailure(); ++i) hostile.one();
  hostile.close_all();
  // Every hostile connection is gone before the next phase counts fds.
  const Counts after_hostile = settle(daemon, probe, baseline);
  EXPECT_EQ(after_hostile, baseline)
      << "baseline: " << baseline.str() << "\nafter:    " << after_hostile.str() << "\n(seed "
      << seed << ")";

  // MSG_CTRUNC: with the daemon's fd numbers capped two above its lowest
  // free one, the kernel cannot install the eight fds a frame brings; the
  // daemon must see the truncation and drop that connection only.
  {
    RawClient c(daemon.socket_path());
    ASSERT_NE(c.hello("fuzz-ctrunc"), 0u);
    rlimit old{};
    ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_NOFILE, nullptr, &old), 0);
    rlimit low = old;
    low.rlim_cur = static_cast<rlim_t>(lowest_free_fd(daemon.pid()) + 2);
    ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 8; ++i) fds.push_back(memfd(8, kAllSeals));
    c.request(
        2, [](auto r) { r.setNames(); }, std::move(fds));
    const bool closed = c.wait_closed();
    ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_NOFILE, &old, nullptr), 0);
    EXPECT_TRUE(closed) << "a truncated control message did not close the connection";
    EXPECT_TRUE(daemon.wait_for_log("MSG_CTRUNC")) << daemon.log();
  }

  good.stop();
  EXPECT_TRUE(good.errors().empty()) << good.errors().front() << " (seed " << seed << ")";
  EXPECT_GT(good.round_trips(), 0u);
  EXPECT_TRUE(good.round_trip()) << "the echo service stopped answering";
  EXPECT_TRUE(daemon.running());

  const Counts after = settle(daemon, probe, baseline);
  EXPECT_EQ(after, baseline) << "baseline: " << baseline.str() << "\nafter:    " << after.str()
                             << "\n(seed " << seed << ")";
  const auto errors = error_lines(daemon.log());
  EXPECT_TRUE(errors.empty()) << "the daemon logged an error: " << errors.front();
  const uint64_t* kinds = hostile.kinds();
  std::string mix;
  for (int k = 0; k < 11; ++k) mix += " " + std::to_string(kinds[k]);
  const std::string log = daemon.log();
  size_t violations = 0;
  for (size_t at = 0; (at = log.find("disconnected (violation", at)) != std::string::npos; ++at)
    ++violations;
  std::printf(
      "%llu hostile connections (by kind:%s), %zu closed for a violation; %llu round trips, "
      "%llu messages echoed\n",
      static_cast<unsigned long long>(connections), mix.c_str(), violations,
      static_cast<unsigned long long>(good.round_trips()),
      static_cast<unsigned long long>(echo.answered()));
}

}  // namespace
}  // namespace portd::testing
