// Pipelined messaging: Task::send_batch and Task::receive_batch on the real
// daemon. A batch behaves exactly as the same sends and receives made one by
// one, in order: each message consumed iff its own send succeeded, messages
// received in order, nothing taken that is not queued.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

class ClientBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "batch");
    ASSERT_NE(task_, nullptr);
  }

  std::vector<OutgoingMessage> numbered(const ReceiveRight& port, int from, int count) {
    std::vector<OutgoingMessage> messages(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i)
      messages[size_t(i)]
          .set_remote(port, Disposition::kMakeSend)
          .set_id(from + i)
          .set_body("message " + std::to_string(from + i));
    return messages;
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

TEST_F(ClientBatchTest, SentInOrderAndReceivedInOrder) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(64), Status::kSuccess);
  auto messages = numbered(*port, 0, 40);
  const auto statuses = task_->send_batch(messages);
  ASSERT_EQ(statuses.size(), 40u);
  for (Status s : statuses) EXPECT_EQ(s, Status::kSuccess);
  for (const auto& m : messages) EXPECT_EQ(m.remote(), kNameNull);  // consumed
  EXPECT_EQ(port->status()->msgcount, 40u);

  auto first = task_->receive_batch(port->name(), 16);
  ASSERT_EQ(first.status(), Status::kSuccess);
  ASSERT_EQ(first->size(), 16u);
  auto rest = task_->receive_batch(port->name(), 64);
  ASSERT_EQ(rest.status(), Status::kSuccess);
  ASSERT_EQ(rest->size(), 24u);  // only what was queued
  int next = 0;
  for (auto* batch : {&*first, &*rest}) {
    for (const auto& m : *batch) {
      EXPECT_EQ(m.id, next);
      EXPECT_EQ(m.body_text(), "message " + std::to_string(next));
      ++next;
    }
  }
  EXPECT_EQ(port->status()->msgcount, 0u);
}

TEST_F(ClientBatchTest, MessagesWithRegionsComeInOneBatchEachMapped) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  auto messages = numbered(*port, 0, 4);
  // Regions on messages 1 and 2 (two on 2), none on 0 and 3.
  const auto fill = [](int tag, size_t size) {
    return std::vector<std::byte>(size, std::byte(tag));
  };
  messages[1].add_ool_copy(fill(0x11, 4096));
  messages[2].add_ool_copy(fill(0x21, 100)).add_ool_copy(fill(0x22, 70000));
  const auto statuses = task_->send_batch(messages);
  for (Status s : statuses) ASSERT_EQ(s, Status::kSuccess);

  auto got = task_->receive_batch(port->name(), 16);
  ASSERT_EQ(got.status(), Status::kSuccess);
  ASSERT_EQ(got->size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*got)[size_t(i)].id, i);
  EXPECT_TRUE((*got)[0].descriptors.empty());
  EXPECT_TRUE((*got)[3].descriptors.empty());
  const auto region = [&](size_t m, size_t d) {
    return std::get<ReceivedOolMemory>((*got)[m].descriptors.at(d)).bytes();
  };
  ASSERT_EQ((*got)[1].descriptors.size(), 1u);
  ASSERT_EQ((*got)[2].descriptors.size(), 2u);
  const auto same = [](std::span<std::byte> bytes, const std::vector<std::byte>& want) {
    return std::equal(bytes.begin(), bytes.end(), want.begin(), want.end());
  };
  EXPECT_TRUE(same(region(1, 0), fill(0x11, 4096)));
  EXPECT_TRUE(same(region(2, 0), fill(0x21, 100)));
  EXPECT_TRUE(same(region(2, 1), fill(0x22, 70000)));
  EXPECT_EQ(port->status()->msgcount, 0u);
}

TEST_F(ClientBatchTest, EmptyQueueWithTimeoutZeroIsTimedOut) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  ReceiveOptions now;
  now.timeout = 0ms;
  auto got = task_->receive_batch(port->name(), 8, now);
  EXPECT_EQ(got.status(), Status::kRcvTimedOut);
  // Nothing is left parked: a message sent now stays queued.
  OutgoingMessage m;
  m.set_remote(*port, Disposition::kMakeSend).set_id(7);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(port->status()->msgcount, 1u);
}

TEST_F(ClientBatchTest, FirstReceiveWaitsForAMessage) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  auto sender = port->make_send();
  ASSERT_TRUE(sender);
  std::thread later([&] {
    std::this_thread::sleep_for(50ms);
    auto messages = std::vector<OutgoingMessage>(3);
    for (int i = 0; i < 3; ++i) messages[size_t(i)].set_remote(*sender).set_id(100 + i);
    for (Status s : task_->send_batch(messages)) EXPECT_EQ(s, Status::kSuccess);
  });
  ReceiveOptions wait;
  wait.timeout = 10000ms;
  auto got = task_->receive_batch(port->name(), 4, wait);
  later.join();
  ASSERT_EQ(got.status(), Status::kSuccess);
  ASSERT_GE(got->size(), 1u);
  EXPECT_EQ((*got)[0].id, 100);
  // Whatever the batch did not take is still queued, in order.
  int next = 100 + static_cast<int>(got->size());
  while (next < 103) {
    auto m = port->receive(ReceiveOptions{0ms});
    ASSERT_TRUE(m);
    EXPECT_EQ(m->id, next++);
  }
}

TEST_F(ClientBatchTest, AFailedSendLeavesItsMessageAndTheOthersGo) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  ASSERT_EQ(port->set_qlimit(2), Status::kSuccess);
  auto messages = numbered(*port, 0, 4);
  SendOptions now;
  now.timeout = 0ms;
  const auto statuses = task_->send_batch(messages, now);
  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_EQ(statuses[0], Status::kSuccess);
  EXPECT_EQ(statuses[1], Status::kSuccess);
  EXPECT_EQ(statuses[2], Status::kSendTimedOut);
  EXPECT_EQ(statuses[3], Status::kSendTimedOut);
  EXPECT_EQ(messages[0].remote(), kNameNull);
  EXPECT_EQ(messages[2].remote(), port->name());  // not consumed: can be sent again
  EXPECT_EQ(messages[2].id(), 2);
  auto got = task_->receive_batch(port->name(), 8, ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  ASSERT_EQ(task_->send(messages[2]), Status::kSuccess);
  auto again = port->receive(ReceiveOptions{0ms});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, 2);
}

TEST_F(ClientBatchTest, ALaterReceiveLeavesATooLargeMessageQueued) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  OutgoingMessage small, big;
  small.set_remote(*port, Disposition::kMakeSend).set_id(1).set_body("s");
  big.set_remote(*port, Disposition::kMakeSend).set_id(2).set_body(std::string(4096, 'b'));
  std::vector<OutgoingMessage> both;
  both.push_back(std::move(small));
  both.push_back(std::move(big));
  for (Status s : task_->send_batch(both)) ASSERT_EQ(s, Status::kSuccess);
  ReceiveOptions limited;
  limited.timeout = 0ms;
  limited.max_size = 1024;
  auto got = task_->receive_batch(port->name(), 4, limited);
  ASSERT_EQ(got.status(), Status::kSuccess);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].id, 1);
  EXPECT_EQ(port->status()->msgcount, 1u);  // the large one stayed
}

TEST_F(ClientBatchTest, ABadMessageIsRefusedBeforeSendingAndTheOthersGo) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  std::vector<OutgoingMessage> messages(3);
  messages[0].set_remote(*port, Disposition::kMakeSend).set_id(1);
  messages[1].set_remote(*port, Disposition::kMakeSend).set_id(2);
  messages[1].add_ool(OolRegion{});  // an empty region: its problem()
  messages[2].set_remote(*port, Disposition::kMakeSend).set_id(3);
  const auto statuses = task_->send_batch(messages);
  EXPECT_EQ(statuses[0], Status::kSuccess);
  EXPECT_NE(statuses[1], Status::kSuccess);
  EXPECT_EQ(statuses[1], messages[1].problem());
  EXPECT_EQ(statuses[2], Status::kSuccess);
  auto got = task_->receive_batch(port->name(), 4, ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].id, 1);
  EXPECT_EQ((*got)[1].id, 3);
}

TEST_F(ClientBatchTest, AfterDisconnectEveryStatusIsInvalidTask) {
  auto port = task_->make_port();
  ASSERT_TRUE(port);
  auto messages = numbered(*port, 0, 3);
  task_->disconnect();
  for (Status s : task_->send_batch(messages)) EXPECT_EQ(s, Status::kInvalidTask);
  EXPECT_EQ(task_->receive_batch(port->name(), 3).status(), Status::kInvalidTask);
}

}  // namespace
}  // namespace portd::testing
