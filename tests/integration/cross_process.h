// Plumbing for the cross-process semantics tests: a parent and children that
// each connect a Task of their own to the real daemon and talk through ports.
//
// The parent checks in an inbox under a unique bootstrap name. A child looks
// it up, makes an inbox of its own and says hello: a message with id kHello
// that carries a send right to the child's inbox (its pid is in the
// trailer). From then on the two send each other messages and rights travel
// in them; ids say what a message is for. Children report through their
// exit status, as in client_support.h (0 for success, a distinct small
// number per failed check), and never wait without a timeout, so a broken
// daemon fails a test instead of hanging it.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd {
// GoogleTest prints statuses by name (found by argument-dependent lookup).
inline void PrintTo(Status s, std::ostream* os) { *os << status_name(s); }
}  // namespace portd

namespace portd::testing {

using namespace std::chrono_literals;

inline constexpr int32_t kHello = 1000;
// Long enough for a loaded CI machine; a wait that runs out fails the test.
inline constexpr std::chrono::milliseconds kWait = 10000ms;

inline ReceiveOptions wait_up_to(std::chrono::milliseconds timeout = kWait) {
  ReceiveOptions o;
  o.timeout = timeout;
  return o;
}

inline ReceiveOptions at_once() { return wait_up_to(0ms); }

// A child's end: its task, the parent's inbox, its own inbox.
struct Peer {
  std::shared_ptr<Task> task;
  SendRight parent;
  ReceiveRight inbox;
};

// In a child: connects, finds the parent's inbox and says hello.
inline std::optional<Peer> join_parent(const std::string& socket_path, const std::string& service,
                                       const std::string& command = "child") {
  auto task = Task::connect(ConnectOptions{socket_path, command});
  if (!task) return std::nullopt;
  Peer peer;
  peer.task = std::move(*task);
  auto parent = peer.task->look_up(service, kWait);
  auto inbox = peer.task->make_port();
  if (!parent || !inbox) return std::nullopt;
  peer.parent = std::move(*parent);
  peer.inbox = std::move(*inbox);
  OutgoingMessage hello;
  hello.set_remote(peer.parent).set_id(kHello).add_port(peer.inbox, Disposition::kMakeSend);
  if (peer.task->send(hello) != Status::kSuccess) return std::nullopt;
  return peer;
}

// In the parent: the next hello on `inbox`, as a send right to that child's
// inbox (an empty handle, with a test failure, if none came).
inline SendRight accept_hello(const std::shared_ptr<Task>& task, const ReceiveRight& inbox,
                              pid_t expected_pid = 0) {
  auto hello = inbox.receive(wait_up_to());
  if (!hello) {
    ADD_FAILURE() << "no hello: " << status_name(hello.status());
    return {};
  }
  EXPECT_EQ(hello->id, kHello);
  if (expected_pid != 0) {
    EXPECT_EQ(hello->trailer.pid, static_cast<uint32_t>(expected_pid));
  }
  if (hello->descriptors.size() != 1) {
    ADD_FAILURE() << "hello without its right";
    return {};
  }
  const auto port = std::get<ReceivedPort>(hello->descriptors[0]);
  EXPECT_EQ(port.type, RightType::kSend);
  return SendRight::adopt(task, port.name);
}

// A body-only message through a copy of `to`.
inline Status send_text(Task& task, const SendRight& to, int32_t id, std::string_view text = {},
                        const SendOptions& options = {}) {
  OutgoingMessage m;
  m.set_remote(to).set_id(id).set_body(text);
  return task.send(m, options);
}

// The 32-bit field after the NDR record of a notification body.
inline uint32_t notification_field(const ReceivedMessage& m) {
  EXPECT_EQ(m.body.size(), 12u);
  uint32_t v = 0;
  if (m.body.size() >= 12) std::memcpy(&v, m.body.data() + 8, sizeof v);
  return v;
}

// The NDR record the daemon puts first in every notification body but
// port-destroyed's (MIG's, little-endian).
inline std::vector<std::byte> ndr_record() {
  return {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
          std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}};
}

// Kills a child outright (its connection drops without any goodbye) and
// reaps it; true if it died of SIGKILL.
inline bool kill_child(Child& child) {
  if (child.pid() <= 0) return false;
  ::kill(child.pid(), SIGKILL);
  return child.wait() == -1;
}

// ---------------------------------------------------------------------------
// An agent: a child that does what the parent asks, one command at a time,
// and answers each on the command's send-once reply right. The parent drives
// it with AgentHandle::call (an rpc), so the order of events across
// processes is the order of the calls.

namespace agent {

enum Op : int32_t {
  kTake = 10,     // adopt every right the command carries (sends, receives, send-onces)
  kSend = 11,     // {u32 index, i32 id, i64 timeout_ms}: a message to sends[index]
  kProbe = 12,    // {u32 index}: the type bits of sends[index]'s name
  kReceive = 13,  // {u32 index, i64 timeout_ms}: a message from receives[index]
  kSendAll = 14,  // {u32 stride}: to sends[(k*stride) % n] with id (k*stride) % n, k < n
  kExit = 15,
  kWatch = 16,   // {u32 send index, u32 once index}: dead-name on sends[i] to onces[j]
  kBackup = 17,  // {u32 receive index, u32 once index}: port-destroyed on receives[i] to onces[j]
  kReply = 18,   // {u32 index, i32 id}: a message through onces[index] (used up), timeout 0
  kStatus = 19,  // {u32 index}: qlimit, mscount, msgcount, srights of receives[index]
  kGiveReceive = 20,  // {u32 receive index, u32 send index}: receives[i] moved to sends[j]
};

// What an answer carries: a status and up to four numbers.
struct Answer {
  Status status = Status::kFailure;
  int64_t a = 0, b = 0, c = 0, d = 0;
};

template <typename T>
void put(std::vector<std::byte>& out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

template <typename T>
T get(const std::vector<std::byte>& in, size_t& at) {
  T v{};
  if (at + sizeof v <= in.size()) std::memcpy(&v, in.data() + at, sizeof v);
  at += sizeof v;
  return v;
}

inline std::vector<std::byte> encode(const Answer& a) {
  std::vector<std::byte> out;
  put(out, static_cast<int32_t>(a.status));
  put(out, a.a);
  put(out, a.b);
  put(out, a.c);
  put(out, a.d);
  return out;
}

inline Answer decode(const std::vector<std::byte>& in) {
  size_t at = 0;
  Answer a;
  a.status = static_cast<Status>(get<int32_t>(in, at));
  a.a = get<int64_t>(in, at);
  a.b = get<int64_t>(in, at);
  a.c = get<int64_t>(in, at);
  a.d = get<int64_t>(in, at);
  return a;
}

// The child's side: serves commands until kExit (returns 0) or until a wait
// runs out (returns 90).
inline int serve(Peer& peer) {
  std::vector<SendRight> sends;
  std::vector<ReceiveRight> receives;
  std::vector<SendOnceRight> onces;
  for (;;) {
    auto cmd = peer.inbox.receive(wait_up_to());
    if (!cmd) return 90;
    size_t at = 0;
    Answer answer;
    answer.status = Status::kSuccess;
    switch (cmd->id) {
      case kTake:
        for (auto& d : cmd->descriptors) {
          std::vector<ReceivedPort> ports;
          if (auto* p = std::get_if<ReceivedPort>(&d)) ports.push_back(*p);
          if (auto* a = std::get_if<ReceivedOolPorts>(&d))
            for (Name n : a->names) ports.push_back(ReceivedPort{n, a->type});
          for (const auto& p : ports) {
            if (p.type == RightType::kSend) sends.push_back(SendRight::adopt(peer.task, p.name));
            if (p.type == RightType::kReceive)
              receives.push_back(ReceiveRight::adopt(peer.task, p.name));
            if (p.type == RightType::kSendOnce)
              onces.push_back(SendOnceRight::adopt(peer.task, p.name));
          }
        }
        answer.a = static_cast<int64_t>(sends.size());
        answer.b = static_cast<int64_t>(receives.size());
        answer.c = static_cast<int64_t>(onces.size());
        break;
      case kSend: {
        const auto index = get<uint32_t>(cmd->body, at);
        const auto id = get<int32_t>(cmd->body, at);
        const auto timeout = get<int64_t>(cmd->body, at);
        if (index >= sends.size()) return 91;
        SendOptions o;
        if (timeout >= 0) o.timeout = std::chrono::milliseconds(timeout);
        answer.status = send_text(*peer.task, sends[index], id, "from the agent", o);
        break;
      }
      case kProbe: {
        const auto index = get<uint32_t>(cmd->body, at);
        if (index >= sends.size()) return 92;
        auto type = peer.task->type(sends[index].name());
        answer.status = type.status();
        answer.a = type.ok() ? *type : 0;
        answer.b = sends[index].name();
        break;
      }
      case kReceive: {
        const auto index = get<uint32_t>(cmd->body, at);
        const auto timeout = get<int64_t>(cmd->body, at);
        if (index >= receives.size()) return 93;
        auto got = receives[index].receive(
            timeout < 0 ? ReceiveOptions{} : wait_up_to(std::chrono::milliseconds(timeout)));
        answer.status = got.status();
        if (got.has_value()) {
          answer.a = got->id;
          answer.b = static_cast<int64_t>(got->trailer.seqno);
          answer.c = got->trailer.pid;
          answer.d = got->local == receives[index].name() ? 1 : 0;
        }
        break;
      }
      case kSendAll: {
        const auto stride = get<uint32_t>(cmd->body, at);
        const size_t n = sends.size();
        for (size_t k = 0; k < n && ok(answer.status); ++k) {
          const size_t index = (k * stride) % n;
          answer.status = send_text(*peer.task, sends[index], static_cast<int32_t>(index));
          answer.a = static_cast<int64_t>(k + 1);
        }
        break;
      }
      case kReply: {
        const auto index = get<uint32_t>(cmd->body, at);
        const auto id = get<int32_t>(cmd->body, at);
        if (index >= onces.size()) return 98;
        OutgoingMessage reply;
        reply.set_remote(std::move(onces[index])).set_id(id).set_body("reply");
        answer.status = peer.task->send(reply, SendOptions{std::chrono::milliseconds(0)});
        break;
      }
      case kStatus: {
        const auto index = get<uint32_t>(cmd->body, at);
        if (index >= receives.size()) return 99;
        auto st = receives[index].status();
        answer.status = st.status();
        if (st.ok()) {
          answer.a = st->qlimit;
          answer.b = st->mscount;
          answer.c = st->msgcount;
          answer.d = st->srights ? 1 : 0;
        }
        break;
      }
      case kGiveReceive: {
        const auto index = get<uint32_t>(cmd->body, at);
        const auto to = get<uint32_t>(cmd->body, at);
        if (index >= receives.size() || to >= sends.size()) return 88;
        const Name name = receives[index].name();
        OutgoingMessage give;  // by raw name: the handle lets go only if it went
        give.set_remote(sends[to]).set_id(7).add_port(name, Disposition::kMoveReceive);
        answer.status = peer.task->send(give, SendOptions{std::chrono::milliseconds(0)});
        if (ok(answer.status)) receives[index].release();
        auto type = peer.task->type(name);
        answer.a = type.ok() ? *type : 0;
        break;
      }
      case kWatch:
      case kBackup: {
        const auto index = get<uint32_t>(cmd->body, at);
        const auto once = get<uint32_t>(cmd->body, at);
        if (once >= onces.size()) return 96;
        if (cmd->id == kWatch ? index >= sends.size() : index >= receives.size()) return 97;
        const Name name = cmd->id == kWatch ? sends[index].name() : receives[index].name();
        auto previous = peer.task->request_notification(
            name, cmd->id == kWatch ? Notification::kDeadName : Notification::kPortDestroyed, 0,
            onces[once].name(), Disposition::kMoveSendOnce);
        answer.status = previous.status();
        if (previous.ok()) onces[once].release();
        answer.a = previous.ok() ? *previous : 0;
        answer.b = name;
        break;
      }
      case kExit: return 0;
      default: return 94;
    }
    if (cmd->remote_type == RightType::kSendOnce) {
      OutgoingMessage reply;
      reply.set_remote(SendOnceRight::adopt(peer.task, cmd->remote)).set_id(cmd->id + 100);
      reply.set_body(encode(answer));
      if (peer.task->send(reply) != Status::kSuccess) return 95;
    }
  }
}

}  // namespace agent

// The parent's side of an agent: its inbox and a port for its answers.
class AgentHandle {
 public:
  AgentHandle() = default;
  AgentHandle(std::shared_ptr<Task> task, SendRight inbox)
      : task_(std::move(task)), inbox_(std::move(inbox)) {
    auto reply = task_->make_port();
    EXPECT_TRUE(reply.ok());
    if (reply) reply_ = std::move(*reply);
  }

  const SendRight& inbox() const { return inbox_; }

  // Sends `message` (its destination and id are set here) and waits for the
  // answer.
  agent::Answer call(agent::Op op, OutgoingMessage& message) {
    message.set_remote(inbox_).set_id(op);
    auto r = task_->rpc(message, reply_, {}, wait_up_to());
    if (!r) {
      ADD_FAILURE() << "agent op " << op << ": " << status_name(r.status());
      return {};
    }
    EXPECT_EQ(r->id, op + 100);
    return agent::decode(r->body);
  }
  agent::Answer call(agent::Op op, std::vector<std::byte> body = {}) {
    OutgoingMessage m;
    m.set_body(body);
    return call(op, m);
  }

  Status send(uint32_t index, int32_t id, int64_t timeout_ms = 0) {
    std::vector<std::byte> body;
    agent::put(body, index);
    agent::put(body, id);
    agent::put(body, timeout_ms);
    return call(agent::kSend, std::move(body)).status;
  }
  agent::Answer probe(uint32_t index) {
    std::vector<std::byte> body;
    agent::put(body, index);
    return call(agent::kProbe, std::move(body));
  }
  Status reply(uint32_t index, int32_t id) {
    std::vector<std::byte> body;
    agent::put(body, index);
    agent::put(body, id);
    return call(agent::kReply, std::move(body)).status;
  }
  agent::Answer status(uint32_t index) {
    std::vector<std::byte> body;
    agent::put(body, index);
    return call(agent::kStatus, std::move(body));
  }
  agent::Answer give_receive(uint32_t index, uint32_t to) {
    std::vector<std::byte> body;
    agent::put(body, index);
    agent::put(body, to);
    return call(agent::kGiveReceive, std::move(body));
  }
  // Arms a dead-name request on the agent's sends[index] (kWatch) or
  // port-destroyed on its receives[index] (kBackup), through onces[once].
  agent::Answer request(agent::Op op, uint32_t index, uint32_t once) {
    std::vector<std::byte> body;
    agent::put(body, index);
    agent::put(body, once);
    return call(op, std::move(body));
  }
  agent::Answer receive(uint32_t index, int64_t timeout_ms) {
    std::vector<std::byte> body;
    agent::put(body, index);
    agent::put(body, timeout_ms);
    return call(agent::kReceive, std::move(body));
  }
  // Tells the agent to leave (no answer).
  void exit() {
    OutgoingMessage m;
    m.set_remote(inbox_).set_id(agent::kExit);
    EXPECT_EQ(task_->send(m), Status::kSuccess);
  }

 private:
  std::shared_ptr<Task> task_;
  SendRight inbox_;
  ReceiveRight reply_;
};

// Forks an agent that joins `service` on `socket_path`.
inline int run_agent(const std::string& socket_path, const std::string& service) {
  auto peer = join_parent(socket_path, service, "agent");
  if (!peer) return 89;
  return agent::serve(*peer);
}

// A fixture: the daemon, the parent's task and inbox, and agents.
class CrossProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "parent");
    ASSERT_NE(task_, nullptr);
    service_ = unique_service("parent");
    auto inbox = task_->check_in(service_);
    ASSERT_TRUE(inbox.ok());
    inbox_ = std::move(*inbox);
  }

  ReceiveRight make_port() {
    auto p = task_->make_port();
    EXPECT_EQ(p.status(), Status::kSuccess);
    return p.ok() ? std::move(*p) : ReceiveRight();
  }

  // Forks an agent and connects `handle` to it. If `rights` is given, the
  // agent takes what it carries first.
  std::unique_ptr<Child> spawn_agent(AgentHandle* handle, OutgoingMessage* rights = nullptr) {
    auto child =
        std::make_unique<Child>([this] { return run_agent(daemon_.socket_path(), service_); });
    *handle = AgentHandle(task_, accept_hello(task_, inbox_, child->pid()));
    if (rights != nullptr) {
      EXPECT_EQ(handle->call(agent::kTake, *rights).status, Status::kSuccess);
    }
    return child;
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
  std::string service_;
  ReceiveRight inbox_;
};

}  // namespace portd::testing
