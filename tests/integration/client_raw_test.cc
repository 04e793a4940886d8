// libportd's raw, name-based layer against the real daemon: each operation,
// its exact Mach status on success and on the error paths a caller can cause,
// and what it did to the task's name space.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ClientRawTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path());
    ASSERT_NE(task_, nullptr);
  }

  Name port() {
    auto name = task_->allocate(Right::kReceive);
    EXPECT_EQ(name.status(), Status::kSuccess);
    return name.ok() ? *name : kNameNull;
  }

  // Sends a body-only message to `dest` made from the receive right there.
  Status send_to_own(Name dest, std::string_view text, const SendOptions& options = {}) {
    OutgoingMessage m;
    m.set_remote(dest, Disposition::kMakeSend).set_id(7).set_body(text);
    return task_->send(m, options);
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

TEST_F(ClientRawTest, HelloNegotiatedVersionAndLimits) {
  EXPECT_EQ(task_->protocol_version(), 2u);
  EXPECT_NE(task_->id(), 0u);
  EXPECT_EQ(task_->daemon_pid(), static_cast<uint32_t>(daemon_.pid()));
  EXPECT_GT(task_->max_inline_body(), 0u);
  EXPECT_EQ(task_->socket_path(), daemon_.socket_path());
  EXPECT_TRUE(task_->connected());
  EXPECT_EQ(task_->failure(), "");
}

TEST_F(ClientRawTest, AllocateEachKindAndReadItsType) {
  const Name receive = port();
  auto set = task_->allocate(Right::kPortSet);
  auto dead = task_->allocate(Right::kDeadName);
  ASSERT_TRUE(set.ok());
  ASSERT_TRUE(dead.ok());
  EXPECT_NE(receive, *set);
  EXPECT_NE(*set, *dead);
  EXPECT_EQ(*task_->type(receive), kTypeReceive);
  EXPECT_EQ(*task_->type(*set), kTypePortSet);
  EXPECT_EQ(*task_->type(*dead), kTypeDeadName);
  EXPECT_EQ(*task_->get_refs(*dead, Right::kDeadName), 1u);

  // Send and send-once rights are not allocated, they are made.
  EXPECT_EQ(task_->allocate(Right::kSend).status(), Status::kInvalidValue);
  EXPECT_EQ(task_->allocate(Right::kSendOnce).status(), Status::kInvalidValue);
}

TEST_F(ClientRawTest, DeallocateAndModRefsStatuses) {
  const Name p = port();
  // deallocate drops send, send-once and dead-name references, not receive.
  EXPECT_EQ(task_->deallocate(p), Status::kInvalidRight);
  EXPECT_EQ(*task_->type(p), kTypeReceive);  // failed: nothing changed
  EXPECT_EQ(task_->mod_refs(p, Right::kReceive, -1), Status::kSuccess);
  EXPECT_EQ(task_->type(p).status(), Status::kInvalidName);
  EXPECT_EQ(task_->deallocate(p), Status::kInvalidName);
  EXPECT_EQ(task_->mod_refs(p, Right::kReceive, -1), Status::kInvalidName);
  EXPECT_EQ(task_->deallocate(kNameNull), Status::kSuccess);  // Mach: a no-op
  EXPECT_EQ(task_->type(0x12345600).status(), Status::kInvalidName);
}

TEST_F(ClientRawTest, SendRightsShareTheReceiveName) {
  const Name p = port();
  EXPECT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  EXPECT_EQ(*task_->type(p), kTypeReceive | kTypeSend);
  EXPECT_EQ(*task_->get_refs(p, Right::kSend), 1u);
  EXPECT_EQ(*task_->get_refs(p, Right::kReceive), 1u);
  EXPECT_EQ(task_->mod_refs(p, Right::kSend, 2), Status::kSuccess);
  EXPECT_EQ(*task_->get_refs(p, Right::kSend), 3u);
  // A send right to this port under another name is refused.
  auto other = task_->allocate(Right::kDeadName);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(task_->deallocate(*other), Status::kSuccess);
  EXPECT_EQ(task_->insert_right(*other, p, Disposition::kMakeSend), Status::kRightExists);
  EXPECT_EQ(task_->deallocate(p), Status::kSuccess);
  EXPECT_EQ(*task_->get_refs(p, Right::kSend), 2u);
  EXPECT_EQ(task_->mod_refs(p, Right::kSend, -2), Status::kSuccess);
  EXPECT_EQ(*task_->type(p), kTypeReceive);
  EXPECT_EQ(*task_->get_refs(p, Right::kSend), 0u);
  auto status = task_->get_attributes(p);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->mscount, 1u);
  EXPECT_FALSE(status->srights);
}

TEST_F(ClientRawTest, ExtractMakeSendOnceGivesANameOfItsOwn) {
  const Name p = port();
  auto once = task_->extract_right(p, Disposition::kMakeSendOnce);
  ASSERT_EQ(once.status(), Status::kSuccess);
  EXPECT_NE(once->name, p);
  EXPECT_EQ(once->type, RightType::kSendOnce);
  EXPECT_EQ(*task_->type(once->name), kTypeSendOnce);
  EXPECT_EQ(task_->get_attributes(p)->sorights, 1u);
  EXPECT_EQ(task_->extract_right(0x7777700, Disposition::kMakeSendOnce).status(),
            Status::kInvalidName);
}

TEST_F(ClientRawTest, DestroyingTheReceiveRightLeavesADeadName) {
  const Name p = port();
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  EXPECT_EQ(task_->mod_refs(p, Right::kReceive, -1), Status::kSuccess);
  EXPECT_EQ(*task_->type(p), kTypeDeadName);
  EXPECT_EQ(*task_->get_refs(p, Right::kDeadName), 1u);
  EXPECT_EQ(task_->deallocate(p), Status::kSuccess);
  EXPECT_EQ(task_->type(p).status(), Status::kInvalidName);
}

TEST_F(ClientRawTest, DestroyRemovesEveryRightUnderTheName) {
  const Name p = port();
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  ASSERT_EQ(task_->mod_refs(p, Right::kSend, 2), Status::kSuccess);
  auto once = task_->extract_right(p, Disposition::kMakeSendOnce);
  ASSERT_TRUE(once.ok());
  // The receive right and all three send references go at once; the port
  // dies and the send-once right, under its own name, is a dead name now.
  EXPECT_EQ(task_->destroy(p), Status::kSuccess);
  EXPECT_EQ(task_->type(p).status(), Status::kInvalidName);
  EXPECT_EQ(*task_->type(once->name), kTypeDeadName);
  EXPECT_EQ(task_->destroy(once->name), Status::kSuccess);
  EXPECT_EQ(task_->type(once->name).status(), Status::kInvalidName);
  auto set = task_->allocate(Right::kPortSet);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(task_->destroy(*set), Status::kSuccess);
  EXPECT_EQ(task_->type(*set).status(), Status::kInvalidName);
  EXPECT_EQ(task_->destroy(p), Status::kInvalidName);
  EXPECT_EQ(task_->destroy(kNameNull), Status::kSuccess);
  EXPECT_TRUE(task_->names()->empty());
}

TEST_F(ClientRawTest, QueueLimitAttributes) {
  const Name p = port();
  auto status = task_->get_attributes(p);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->qlimit, kQueueLimitDefault);
  EXPECT_EQ(status->msgcount, 0u);
  EXPECT_EQ(status->pset, kNameNull);
  EXPECT_EQ(task_->set_qlimit(p, 16), Status::kSuccess);
  EXPECT_EQ(task_->get_attributes(p)->qlimit, 16u);
  EXPECT_EQ(task_->set_qlimit(p, kQueueLimitMax + 1), Status::kInvalidValue);
  EXPECT_EQ(task_->get_attributes(p)->qlimit, 16u);
  EXPECT_EQ(task_->set_qlimit(0x4444400, 3), Status::kInvalidName);
}

TEST_F(ClientRawTest, PortSetMembership) {
  const Name a = port();
  const Name b = port();
  auto set = task_->allocate(Right::kPortSet);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(task_->move_member(a, *set), Status::kSuccess);
  EXPECT_EQ(task_->move_member(b, *set), Status::kSuccess);
  EXPECT_EQ(task_->get_attributes(a)->pset, *set);
  ASSERT_EQ(send_to_own(b, "to b"), Status::kSuccess);
  ASSERT_EQ(send_to_own(a, "to a"), Status::kSuccess);

  // Receiving on the set: arrival order across members, local = the member.
  auto first = task_->receive(*set, ReceiveOptions{0ms});
  ASSERT_EQ(first.status(), Status::kSuccess);
  EXPECT_EQ(first->local, b);
  EXPECT_EQ(first->body_text(), "to b");
  auto second = task_->receive(*set, ReceiveOptions{0ms});
  ASSERT_EQ(second.status(), Status::kSuccess);
  EXPECT_EQ(second->local, a);

  EXPECT_EQ(task_->move_member(a, kNameNull), Status::kSuccess);
  EXPECT_EQ(task_->get_attributes(a)->pset, kNameNull);
  EXPECT_EQ(task_->move_member(a, kNameNull), Status::kNotInSet);
  EXPECT_EQ(task_->move_member(*set, a), Status::kInvalidRight);
}

TEST_F(ClientRawTest, NamesListsEveryRight) {
  const Name p = port();
  auto set = task_->allocate(Right::kPortSet);
  ASSERT_TRUE(set.ok());
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  auto names = task_->names();
  ASSERT_EQ(names.status(), Status::kSuccess);
  ASSERT_EQ(names->size(), 2u);
  for (const auto& info : *names) {
    if (info.name == p) {
      EXPECT_EQ(info.type, kTypeReceive | kTypeSend);
    } else {
      EXPECT_EQ(info.name, *set);
      EXPECT_EQ(info.type, kTypePortSet);
    }
  }
}

TEST_F(ClientRawTest, ReceiveTimeoutsAreExact) {
  const Name p = port();
  auto now = task_->receive(p, ReceiveOptions{0ms});
  EXPECT_EQ(now.status(), Status::kRcvTimedOut);
  EXPECT_FALSE(now.has_value());

  const auto start = Clock::now();
  auto later = task_->receive(p, ReceiveOptions{50ms});
  const auto waited = Clock::now() - start;
  EXPECT_EQ(later.status(), Status::kRcvTimedOut);
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 2s);

  EXPECT_EQ(task_->receive(0x5555500, ReceiveOptions{0ms}).status(), Status::kRcvInvalidName);
}

TEST_F(ClientRawTest, MessageRoundTripWithTrailer) {
  const Name p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).set_id(4242).set_body("payload");
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  // A sent message is consumed: the OutgoingMessage is empty again.
  EXPECT_EQ(m.remote(), kNameNull);
  EXPECT_TRUE(m.body().empty());
  EXPECT_EQ(task_->get_attributes(p)->msgcount, 1u);

  auto r = task_->receive(p);
  ASSERT_EQ(r.status(), Status::kSuccess);
  EXPECT_EQ(r->id, 4242);
  EXPECT_EQ(r->body_text(), "payload");
  EXPECT_EQ(r->local, p);
  EXPECT_EQ(r->remote, kNameNull);
  EXPECT_EQ(r->trailer.pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(r->trailer.uid, static_cast<uint32_t>(::getuid()));
  EXPECT_EQ(r->trailer.gid, static_cast<uint32_t>(::getgid()));
  EXPECT_EQ(r->trailer.sender_task, task_->id());
  EXPECT_EQ(r->trailer.seqno, 0u);
  // The MAKE_SEND made a send right that traveled and was released with the
  // message's destination: nothing is left in our space but the receive right.
  EXPECT_EQ(*task_->type(p), kTypeReceive);
}

// Every part of a sent message is reset, and the same object sends again
// with nothing left over from the first send (libportd reuses its body's
// buffer between sends).
TEST_F(ClientRawTest, ASentMessageIsEmptyAndSendsAgainAsNew) {
  const Name p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).set_id(7).set_body("first message");
  m.set_local(p, Disposition::kMakeSendOnce).add_port(p, Disposition::kMakeSend);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(m.remote(), kNameNull);
  EXPECT_EQ(m.remote_disposition(), Disposition::kNone);
  EXPECT_EQ(m.local(), kNameNull);
  EXPECT_EQ(m.local_disposition(), Disposition::kNone);
  EXPECT_EQ(m.id(), 0);
  EXPECT_TRUE(m.body().empty());
  EXPECT_TRUE(m.descriptors().empty());

  m.set_remote(p, Disposition::kMakeSend).set_id(8).set_body("two");
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto first = task_->receive(p);
  ASSERT_EQ(first.status(), Status::kSuccess);
  EXPECT_EQ(first->id, 7);
  EXPECT_EQ(first->body_text(), "first message");
  EXPECT_EQ(first->descriptors.size(), 1u);
  EXPECT_NE(first->remote, kNameNull);
  auto second = task_->receive(p);
  ASSERT_EQ(second.status(), Status::kSuccess);
  EXPECT_EQ(second->id, 8);
  EXPECT_EQ(second->body_text(), "two");
  EXPECT_TRUE(second->descriptors.empty());
  EXPECT_EQ(second->remote, kNameNull);
}

TEST_F(ClientRawTest, SendStatuses) {
  OutgoingMessage to_nowhere;
  to_nowhere.set_remote(0x6666600, Disposition::kCopySend).set_body("x");
  EXPECT_EQ(task_->send(to_nowhere), Status::kSendInvalidDest);
  EXPECT_EQ(to_nowhere.remote(), 0x6666600u);  // failed: left as it was

  // A message whose region could not be made is refused before anything is
  // sent, and keeps what it holds.
  const Name p = port();
  OutgoingMessage broken;
  broken.set_remote(p, Disposition::kMakeSend).add_ool(OolRegion());
  EXPECT_EQ(broken.problem(), Status::kSendInvalidMemory);
  EXPECT_EQ(task_->send(broken), Status::kSendInvalidMemory);
  EXPECT_EQ(broken.descriptors().size(), 1u);

  // Bodies over the daemon's inline limit (or a frame) go out of line
  // automatically: the daemon's limit is never reached through this API.
  OutgoingMessage huge;
  huge.set_remote(p, Disposition::kMakeSend);
  huge.body().resize(8u << 20, std::byte{0x5a});
  EXPECT_EQ(task_->send(huge), Status::kSuccess);
  task_->set_ool_threshold(SIZE_MAX);
  EXPECT_EQ(task_->ool_threshold(), task_->max_inline_body());
  OutgoingMessage big;
  big.set_remote(p, Disposition::kMakeSend);
  big.body().resize(task_->max_inline_body() + 1, std::byte{0xa5});
  EXPECT_EQ(task_->send(big), Status::kSuccess);
  EXPECT_TRUE(task_->connected());
  auto first = task_->receive(p);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, std::vector<std::byte>(8u << 20, std::byte{0x5a}));
  EXPECT_TRUE(first->descriptors.empty());
  auto second = task_->receive(p);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, std::vector<std::byte>(task_->max_inline_body() + 1, std::byte{0xa5}));
  EXPECT_EQ(task_->get_attributes(p)->msgcount, 0u);
}

TEST_F(ClientRawTest, FullQueueWithTimeoutZeroAndN) {
  const Name p = port();
  ASSERT_EQ(task_->set_qlimit(p, 1), Status::kSuccess);
  ASSERT_EQ(send_to_own(p, "one"), Status::kSuccess);
  EXPECT_EQ(send_to_own(p, "two", SendOptions{0ms}), Status::kSendTimedOut);
  const auto start = Clock::now();
  EXPECT_EQ(send_to_own(p, "two", SendOptions{50ms}), Status::kSendTimedOut);
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_EQ(task_->get_attributes(p)->msgcount, 1u);
}

TEST_F(ClientRawTest, CacheOnFullAnswersWillNotifyAndNotifiesOnAcceptance) {
  const Name p = port();
  const Name notify = port();
  ASSERT_EQ(task_->set_qlimit(p, 1), Status::kSuccess);
  ASSERT_EQ(send_to_own(p, "one"), Status::kSuccess);
  SendOptions cache;
  cache.timeout = 0ms;
  cache.cache = true;
  cache.notify = notify;
  cache.notify_disposition = Disposition::kMakeSendOnce;
  EXPECT_EQ(send_to_own(p, "cached", cache), Status::kSendWillNotify);
  // A second cached message from this thread while one is pending.
  EXPECT_EQ(send_to_own(p, "again", cache), Status::kSendNotifyInProgress);
  // Another thread has its own allowance (the library sends gettid()).
  Status other_thread = Status::kFailure;
  std::thread([&] { other_thread = send_to_own(p, "other thread", cache); }).join();
  EXPECT_EQ(other_thread, Status::kSendWillNotify);

  ASSERT_EQ(task_->receive(p, ReceiveOptions{0ms})->body_text(), "one");
  auto accepted = task_->receive(notify, ReceiveOptions{1000ms});
  ASSERT_EQ(accepted.status(), Status::kSuccess);
  EXPECT_EQ(accepted->id, static_cast<int32_t>(Notification::kMsgAccepted));
  EXPECT_EQ(task_->receive(p, ReceiveOptions{0ms})->body_text(), "cached");
  ASSERT_EQ(task_->receive(notify, ReceiveOptions{1000ms})->id,
            static_cast<int32_t>(Notification::kMsgAccepted));
  EXPECT_EQ(task_->receive(p, ReceiveOptions{0ms})->body_text(), "other thread");
}

TEST_F(ClientRawTest, TooLargeWithAndWithoutLarge) {
  const Name p = port();
  ASSERT_EQ(send_to_own(p, std::string(100, 'a')), Status::kSuccess);
  ReceiveOptions small;
  small.timeout = 0ms;
  small.max_size = 64;
  small.large = true;
  auto refused = task_->receive(p, small);
  EXPECT_EQ(refused.status(), Status::kRcvTooLarge);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->needed_size, 24u + 100u);        // header + body, no trailer asked
  EXPECT_EQ(task_->get_attributes(p)->msgcount, 1u);  // MACH_RCV_LARGE: still queued

  small.large = false;
  EXPECT_EQ(task_->receive(p, small).status(), Status::kRcvTooLarge);
  EXPECT_EQ(task_->get_attributes(p)->msgcount, 0u);  // destroyed
  EXPECT_EQ(task_->receive(p, ReceiveOptions{0ms}).status(), Status::kRcvTimedOut);
}

TEST_F(ClientRawTest, NoSendersNotification) {
  const Name p = port();
  const Name notify = port();
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  auto previous = task_->request_notification(p, Notification::kNoSenders, 0, notify,
                                              Disposition::kMakeSendOnce);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  EXPECT_EQ(*previous, kNameNull);
  EXPECT_TRUE(task_->get_attributes(p)->nsrequest);
  ASSERT_EQ(task_->deallocate(p), Status::kSuccess);
  auto n = task_->receive(notify, ReceiveOptions{1000ms});
  ASSERT_EQ(n.status(), Status::kSuccess);
  EXPECT_EQ(n->id, static_cast<int32_t>(Notification::kNoSenders));
  EXPECT_EQ(n->trailer.sender_task, 0u);  // from the daemon
}

TEST_F(ClientRawTest, DeadNameNotificationAndPreviousRequest) {
  const Name p = port();
  const Name notify = port();
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  auto once = task_->extract_right(p, Disposition::kMakeSendOnce);
  ASSERT_TRUE(once.ok());
  ASSERT_EQ(task_
                ->request_notification(once->name, Notification::kDeadName, 0, notify,
                                       Disposition::kMakeSendOnce)
                .status(),
            Status::kSuccess);
  EXPECT_EQ(*task_->type(once->name), kTypeSendOnce | kTypeDnRequest);
  // Re-arming hands back the previous request's send-once right.
  auto previous = task_->request_notification(once->name, Notification::kDeadName, 0, notify,
                                              Disposition::kMakeSendOnce);
  ASSERT_EQ(previous.status(), Status::kSuccess);
  ASSERT_NE(*previous, kNameNull);
  EXPECT_EQ(*task_->type(*previous), kTypeSendOnce);
  ASSERT_EQ(task_->deallocate(*previous), Status::kSuccess);  // fires send-once to notify
  auto fired = task_->receive(notify, ReceiveOptions{1000ms});
  ASSERT_EQ(fired.status(), Status::kSuccess);
  EXPECT_EQ(fired->id, static_cast<int32_t>(Notification::kSendOnce));

  ASSERT_EQ(task_->mod_refs(p, Right::kReceive, -1), Status::kSuccess);  // the port dies
  auto dead = task_->receive(notify, ReceiveOptions{1000ms});
  ASSERT_EQ(dead.status(), Status::kSuccess);
  EXPECT_EQ(dead->id, static_cast<int32_t>(Notification::kDeadName));
  EXPECT_EQ(*task_->type(once->name) & kTypeDeadName, kTypeDeadName);
}

TEST_F(ClientRawTest, BootstrapOperations) {
  const std::string service = unique_service("raw");
  auto checked_in = task_->bootstrap_check_in(service);
  ASSERT_EQ(checked_in.status(), Status::kSuccess);
  EXPECT_EQ(*task_->type(*checked_in), kTypeReceive);
  EXPECT_EQ(task_->bootstrap_check_in(service).status(), Status::kBootstrapServiceActive);

  // A look-up from the receiver's own task: the send right joins its name.
  auto looked_up = task_->bootstrap_look_up(service);
  ASSERT_EQ(looked_up.status(), Status::kSuccess);
  EXPECT_EQ(*looked_up, *checked_in);
  EXPECT_EQ(*task_->type(*looked_up), kTypeReceive | kTypeSend);

  auto list = task_->bootstrap_list();
  ASSERT_EQ(list.status(), Status::kSuccess);
  bool found = false;
  for (const auto& e : *list) {
    if (e.name != service) continue;
    found = true;
    EXPECT_EQ(e.uid, static_cast<uint32_t>(::getuid()));
    EXPECT_EQ(e.pid, static_cast<uint32_t>(::getpid()));
    EXPECT_NE(e.port, 0u);
  }
  EXPECT_TRUE(found);

  EXPECT_EQ(task_->bootstrap_unregister(service), Status::kSuccess);
  EXPECT_EQ(task_->bootstrap_look_up(service).status(), Status::kBootstrapUnknownService);
  EXPECT_EQ(task_->bootstrap_unregister(service), Status::kBootstrapUnknownService);

  // register binds a send right the caller holds.
  const Name p = port();
  const std::string other = unique_service("raw-register");
  ASSERT_EQ(task_->insert_right(p, p, Disposition::kMakeSend), Status::kSuccess);
  EXPECT_EQ(task_->bootstrap_register(other, p), Status::kSuccess);
  EXPECT_EQ(task_->bootstrap_register(other, p), Status::kBootstrapNameInUse);
  EXPECT_EQ(*task_->bootstrap_look_up(other), p);
}

// A name belongs to the uid that bound it (the daemon reads it with
// SO_PEERCRED): another uid may look it up but not unregister it; root may.
TEST_F(ClientRawTest, BootstrapNamesBelongToTheUidThatBoundThem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a second uid";
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::chmod(daemon_.directory().c_str(), 0755), 0);  // the other uid reaches the socket
  const std::string ours = unique_service("uid-root"), theirs = unique_service("uid-nobody");
  ASSERT_TRUE(task_->bootstrap_check_in(ours).ok());

  int ready[2], release[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  const std::string socket = daemon_.socket_path();
  Child child([&]() -> int {
    ::close(ready[0]);
    ::close(release[1]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 2;
    auto task = Task::connect(ConnectOptions{socket, "nobody"});
    if (!task) return 3;
    if (!(*task)->bootstrap_look_up(ours).ok()) return 4;
    if ((*task)->bootstrap_unregister(ours) != Status::kBootstrapNotPrivileged) return 5;
    if (!(*task)->bootstrap_check_in(theirs).ok()) return 6;
    if (::write(ready[1], "r", 1) != 1) return 7;
    char c;
    return ::read(release[0], &c, 1) == 0 ? 0 : 8;  // until the parent closes it
  });
  ::close(ready[1]);
  ::close(release[0]);
  char c = 0;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);

  auto list = task_->bootstrap_list();
  ASSERT_TRUE(list.ok());
  std::map<std::string, uint32_t> owners;
  for (const auto& e : *list) owners[e.name] = e.uid;
  EXPECT_EQ(owners[ours], 0u);
  EXPECT_EQ(owners[theirs], kNobody);
  EXPECT_TRUE(task_->bootstrap_look_up(ours).ok());                  // still ours
  EXPECT_EQ(task_->bootstrap_unregister(theirs), Status::kSuccess);  // root may
  EXPECT_EQ(task_->bootstrap_look_up(theirs).status(), Status::kBootstrapUnknownService);
  ::close(release[1]);
  EXPECT_EQ(child.wait(), 0);
}

TEST_F(ClientRawTest, LookUpWaitsForTheName) {
  const std::string service = unique_service("wait");
  EXPECT_EQ(task_->bootstrap_look_up(service, 0ms).status(), Status::kBootstrapUnknownService);
  const auto start = Clock::now();
  EXPECT_EQ(task_->bootstrap_look_up(service, 50ms).status(), Status::kBootstrapUnknownService);
  EXPECT_GE(Clock::now() - start, 50ms);

  // Another task checks the name in while we wait (as long as it takes).
  auto other = connect_or_die(daemon_.socket_path(), "checker");
  ASSERT_NE(other, nullptr);
  std::thread checker([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(other->bootstrap_check_in(service).status(), Status::kSuccess);
  });
  auto found = task_->bootstrap_look_up(service, std::nullopt);
  checker.join();
  ASSERT_EQ(found.status(), Status::kSuccess);
  EXPECT_EQ(*task_->type(*found), kTypeSend);
}

TEST_F(ClientRawTest, SendReceiveIsOneRoundTrip) {
  const Name p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).set_local(p, Disposition::kMakeSendOnce).set_id(5);
  m.set_body("to myself");
  auto r = task_->send_receive(m, {}, p, ReceiveOptions{1000ms});
  ASSERT_EQ(r.status(), Status::kSuccess);
  EXPECT_EQ(r->body_text(), "to myself");
  EXPECT_EQ(r->remote_type, RightType::kSendOnce);
  EXPECT_EQ(m.remote(), kNameNull);  // consumed

  // The send fails: nothing consumed, and no receive happened.
  OutgoingMessage bad;
  bad.set_remote(0x3333300, Disposition::kCopySend);
  EXPECT_EQ(task_->send_receive(bad, {}, p, ReceiveOptions{0ms}).status(),
            Status::kSendInvalidDest);
  EXPECT_EQ(bad.remote(), 0x3333300u);
  // The send succeeds, the receive times out: consumed.
  OutgoingMessage other;
  const Name q = port();
  other.set_remote(q, Disposition::kMakeSend);
  EXPECT_EQ(task_->send_receive(other, {}, p, ReceiveOptions{0ms}).status(), Status::kRcvTimedOut);
  EXPECT_EQ(other.remote(), kNameNull);
  EXPECT_EQ(task_->get_attributes(q)->msgcount, 1u);
}

}  // namespace
}  // namespace portd::testing
