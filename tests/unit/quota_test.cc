// Quotas: each limit refuses with a status, names the limit, and leaves
// nothing behind.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

class QuotaTest : public CoreTest {
 protected:
  static Limits tight() {
    Limits l;
    l.per_task.ports = 4;
    l.per_task.port_sets = 1;
    l.per_task.queued_messages = 3;
    l.per_task.queued_bytes = 100;
    l.per_task.parked_requests = 2;
    l.per_task.notify_requests = 1;
    l.per_task.bootstrap_names = 1;
    l.per_task.send_once_rights = 2;
    l.per_uid.ports = 6;
    l.max_inline_body = 64;
    l.max_descriptors = 4;
    return l;
  }
  QuotaTest() : CoreTest(tight()) {}
};

TEST_F(QuotaTest, PortsPerTaskAndPerUid) {
  for (int i = 0; i < 4; ++i) port(kA);
  Name n = kNameNull;
  EXPECT_EQ(core.allocate(kA, Right::kReceive, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  EXPECT_EQ(name_count(kA), 4u);
  // kC shares kA's uid (1000): 2 more reach the uid's limit of 6.
  port(kC);
  port(kC);
  EXPECT_EQ(core.allocate(kC, Right::kReceive, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPorts);
  // Another uid is not affected.
  EXPECT_EQ(core.allocate(kB, Right::kReceive, &n), Status::kSuccess);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNone);
}

TEST_F(QuotaTest, PortSets) {
  pset();
  Name n;
  EXPECT_EQ(core.allocate(kA, Right::kPortSet, &n), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kPortSets);
}

TEST_F(QuotaTest, QueuedMessagesAndBytesAreChargedToTheSenderUntilReceived) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 10, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, std::string(60, 'a'))), Status::kSuccess);
  const std::string before = snapshot(kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 2, std::string(60, 'b'))),
            Status::kSendNoBuffer);
  EXPECT_EQ(core.last_refused_limit(), Limit::kQueuedBytes);
  EXPECT_EQ(snapshot(kB), before);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 4)), Status::kSuccess);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 5)), Status::kSendNoBuffer);
  EXPECT_EQ(core.last_refused_limit(), Limit::kQueuedMessages);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 6, std::string(60, 'c'))), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.queued_messages, 3u);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.queued_bytes, 60u);
}

TEST_F(QuotaTest, MessageSizeAndDescriptorLimits) {
  auto [r, s] = port_with_sender(kA, kB);
  EXPECT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, std::string(65, 'x'))),
            Status::kSendTooLarge);
  EXPECT_EQ(core.last_refused_limit(), Limit::kMessageBytes);
  MessageIn m = msg(s);
  m.descriptors = {
      OolPortsIn{{kNameNull, kNameNull, kNameNull, kNameNull}, Disposition::kCopySend}};
  EXPECT_EQ(send(kB, m), Status::kSendTooLarge);
  EXPECT_EQ(core.last_refused_limit(), Limit::kMessageDescriptors);
}

TEST_F(QuotaTest, ParkedRequests) {
  Name r = port(kA);
  EXPECT_EQ(recv_park(kA, r, 1), Status::kRcvInProgress);
  EXPECT_EQ(recv_park(kA, r, 2), Status::kRcvInProgress);
  EXPECT_EQ(recv_park(kA, r, 3), Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kParkedRequests);
  core.cancel(1, fx);
  EXPECT_EQ(recv_park(kA, r, 3), Status::kRcvInProgress);
  core.cancel(2, fx);
  core.cancel(3, fx);
}

TEST_F(QuotaTest, NotifyRequestsAndSendOnceRights) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kA, kB);
  Name n = port(kB);
  Name prev;
  ASSERT_EQ(core.request_notification(kB, s, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kSuccess);
  EXPECT_EQ(core.request_notification(kB, s2, Notify::kDeadName, 0, n, Disposition::kMakeSendOnce,
                                      &prev, fx),
            Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kNotifyRequests);
  Name so;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, n, Disposition::kMakeSendOnce, &so, &t, fx), Status::kSuccess);
  EXPECT_EQ(core.extract_right(kB, n, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kResourceShortage);
  EXPECT_EQ(core.last_refused_limit(), Limit::kSendOnceRights);
}

TEST_F(QuotaTest, BootstrapNames) {
  Name n;
  ASSERT_EQ(core.bootstrap_check_in(kA, "one", &n, fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_check_in(kA, "two", &n, fx), Status::kBootstrapNoMemory);
  EXPECT_EQ(core.last_refused_limit(), Limit::kBootstrapNames);
  ASSERT_EQ(core.bootstrap_unregister(kA, "one", fx), Status::kSuccess);
  EXPECT_EQ(core.bootstrap_check_in(kA, "two", &n, fx), Status::kSuccess);
}

TEST_F(QuotaTest, ChargesOfADeadSenderLiveUntilItsMessagesAreReceived) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, "x")), Status::kSuccess);
  core.task_destroy(kB, fx);
  ASSERT_NE(core.impl().uid_account(1001), nullptr);
  EXPECT_EQ(core.impl().uid_account(1001)->used.queued_messages, 1u);
  EXPECT_EQ(recv(kA, r).msg.id, 1);
  EXPECT_EQ(core.impl().uid_account(1001), nullptr);
}

}  // namespace
}  // namespace portd::ipc::testing
