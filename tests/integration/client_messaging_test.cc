// Messages between processes, each with its own Task on the real daemon:
// rights that move from one process to another, an RPC answered on a
// send-once reply right, and the send-once notification a client gets when
// its server dies without answering.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <vector>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

class ClientMessagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "parent");
    ASSERT_NE(task_, nullptr);
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
};

TEST_F(ClientMessagingTest, PortRightsMoveFromOneProcessToAnother) {
  const std::string service = unique_service("inbox");
  auto inbox = task_->check_in(service);
  ASSERT_EQ(inbox.status(), Status::kSuccess);
  const pid_t parent = ::getpid();

  Child child([&]() -> int {
    auto task = Task::connect(ConnectOptions{daemon_.socket_path(), "child"});
    if (!task) return 2;
    auto parent_inbox = (*task)->look_up(service, 5000ms);
    if (!parent_inbox) return 3;
    auto mine = (*task)->make_port();
    if (!mine) return 4;

    // 1. A send right to a port of ours, made on the way out.
    OutgoingMessage hello;
    hello.set_remote(*parent_inbox).set_id(1).set_body("hello from the child");
    hello.add_port(*mine, Disposition::kMakeSend);
    if ((*task)->send(hello) != Status::kSuccess) return 5;

    // The parent uses it to send us a ping.
    auto ping = mine->receive(ReceiveOptions{5000ms});
    if (!ping) return 6;
    if (ping->body_text() != "ping") return 7;
    if (ping->trailer.pid != static_cast<uint32_t>(parent)) return 8;

    // 2. A receive right, with a message already queued on it.
    auto carried = (*task)->make_port();
    if (!carried) return 9;
    OutgoingMessage queued;
    queued.set_remote(*carried, Disposition::kMakeSend).set_body("queued before the move");
    if ((*task)->send(queued) != Status::kSuccess) return 10;
    OutgoingMessage give;
    give.set_remote(*parent_inbox).set_id(2).add_port(std::move(*carried));
    if ((*task)->send(give) != Status::kSuccess) return 11;
    if (give.held_rights() != 0) return 12;

    // Wait for the parent to say it got everything, then leave.
    auto done = mine->receive(ReceiveOptions{5000ms});
    if (!done || done->body_text() != "done") return 13;
    return 0;
  });

  auto hello = inbox->receive(ReceiveOptions{5000ms});
  ASSERT_EQ(hello.status(), Status::kSuccess);
  EXPECT_EQ(hello->id, 1);
  EXPECT_EQ(hello->body_text(), "hello from the child");
  EXPECT_EQ(hello->trailer.pid, static_cast<uint32_t>(child.pid()));
  EXPECT_EQ(hello->trailer.uid, static_cast<uint32_t>(::getuid()));
  ASSERT_EQ(hello->descriptors.size(), 1u);
  const auto port = std::get<ReceivedPort>(hello->descriptors[0]);
  ASSERT_EQ(port.type, RightType::kSend);
  EXPECT_EQ(*task_->type(port.name), kTypeSend);
  SendRight to_child = SendRight::adopt(task_, port.name);

  OutgoingMessage ping;
  ping.set_remote(to_child).set_body("ping");
  ASSERT_EQ(task_->send(ping), Status::kSuccess);

  auto give = inbox->receive(ReceiveOptions{5000ms});
  ASSERT_EQ(give.status(), Status::kSuccess);
  EXPECT_EQ(give->id, 2);
  ASSERT_EQ(give->descriptors.size(), 1u);
  const auto moved = std::get<ReceivedPort>(give->descriptors[0]);
  ASSERT_EQ(moved.type, RightType::kReceive);
  ReceiveRight now_ours = ReceiveRight::adopt(task_, moved.name);
  EXPECT_EQ(*task_->type(moved.name), kTypeReceive);
  // Its queue came with it.
  auto queued = now_ours.receive(ReceiveOptions{0ms});
  ASSERT_EQ(queued.status(), Status::kSuccess);
  EXPECT_EQ(queued->body_text(), "queued before the move");
  EXPECT_EQ(queued->trailer.pid, static_cast<uint32_t>(child.pid()));

  OutgoingMessage done;
  done.set_remote(std::move(to_child)).set_body("done");
  ASSERT_EQ(task_->send(done), Status::kSuccess);
  EXPECT_EQ(child.wait(), 0);
}

// A one-request server in a child process: answers on the send-once reply
// right with the body reversed and id + 100.
int serve_one(const std::string& socket_path, const std::string& service, bool answer) {
  auto task = Task::connect(ConnectOptions{socket_path, "server"});
  if (!task) return 2;
  auto port = (*task)->check_in(service);
  if (!port) return 3;
  auto request = port->receive(ReceiveOptions{10000ms});
  if (!request) return 4;
  if (request->remote_type != RightType::kSendOnce) return 5;
  if (!answer) return 0;  // leaves without answering: the right dies with us
  OutgoingMessage reply;
  std::string body(request->body_text().rbegin(), request->body_text().rend());
  reply.set_remote(SendOnceRight::adopt(*task, request->remote))
      .set_id(request->id + 100)
      .set_body(body);
  if ((*task)->send(reply) != Status::kSuccess) return 6;
  return 0;
}

TEST_F(ClientMessagingTest, LargeInlineBodiesArriveWhole) {
  // Inline bodies around and above the size from which the daemon's reply
  // references the queued body instead of copying it
  // (server::kReferenceBodyBytes, 16 KiB), whole words and not, several
  // queued at once: each arrives byte for byte, in order, after a small one.
  task_->set_ool_threshold(task_->max_inline_body());
  auto port = task_->make_port();
  ASSERT_EQ(port.status(), Status::kSuccess);
  auto qlimit = task_->set_qlimit(port->name(), 16);
  ASSERT_EQ(qlimit, Status::kSuccess);
  const std::vector<size_t> sizes = {
      5,      16383, 16384, 16385,
      100001, 65536, 3,     std::min<size_t>(task_->max_inline_body(), 1u << 20)};
  std::vector<std::vector<std::byte>> bodies;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<std::byte> body(sizes[i]);
    for (size_t k = 0; k < body.size(); ++k) body[k] = static_cast<std::byte>(k * 13 + i);
    OutgoingMessage m;
    m.set_remote(*port, Disposition::kMakeSend)
        .set_id(static_cast<int32_t>(i))
        .set_body(std::span<const std::byte>(body));
    ASSERT_EQ(task_->send(m), Status::kSuccess) << sizes[i];
    bodies.push_back(std::move(body));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto got = port->receive(ReceiveOptions{5000ms});
    ASSERT_EQ(got.status(), Status::kSuccess) << sizes[i];
    EXPECT_EQ(got->id, static_cast<int32_t>(i));
    ASSERT_EQ(got->body.size(), sizes[i]);
    EXPECT_TRUE(std::equal(got->body.begin(), got->body.end(), bodies[i].begin())) << sizes[i];
  }
}

TEST_F(ClientMessagingTest, RpcIsAnsweredOnTheSendOnceReplyRight) {
  const std::string service = unique_service("rpc");
  Child server([&] { return serve_one(daemon_.socket_path(), service, true); });

  auto server_port = task_->look_up(service, 5000ms);
  ASSERT_EQ(server_port.status(), Status::kSuccess);
  auto reply_port = task_->make_port();
  ASSERT_TRUE(reply_port.ok());

  OutgoingMessage request;
  request.set_remote(*server_port).set_id(7).set_body("stressed");
  auto reply = task_->rpc(request, *reply_port, {}, ReceiveOptions{5000ms});
  ASSERT_EQ(reply.status(), Status::kSuccess);
  EXPECT_EQ(reply->id, 107);
  EXPECT_EQ(reply->body_text(), "desserts");
  EXPECT_EQ(reply->local, reply_port->name());
  EXPECT_EQ(reply->local_type, RightType::kSendOnce);
  EXPECT_EQ(reply->remote, kNameNull);
  EXPECT_EQ(reply->trailer.pid, static_cast<uint32_t>(server.pid()));
  EXPECT_EQ(server.wait(), 0);
  // The send-once right was used: none left outstanding.
  EXPECT_EQ(reply_port->status()->sorights, 0u);
}

TEST_F(ClientMessagingTest, ServerDyingUnansweredSendsASendOnceNotification) {
  const std::string service = unique_service("rpc-dies");
  Child server([&] { return serve_one(daemon_.socket_path(), service, false); });

  auto server_port = task_->look_up(service, 5000ms);
  ASSERT_EQ(server_port.status(), Status::kSuccess);
  auto reply_port = task_->make_port();
  ASSERT_TRUE(reply_port.ok());
  OutgoingMessage request;
  request.set_remote(*server_port).set_id(7).set_body("anyone?");
  auto reply = task_->rpc(request, *reply_port, {}, ReceiveOptions{5000ms});
  ASSERT_EQ(reply.status(), Status::kSuccess);
  EXPECT_EQ(reply->id, static_cast<int32_t>(Notification::kSendOnce));
  EXPECT_EQ(reply->trailer.sender_task, 0u);
  EXPECT_EQ(server.wait(), 0);
  // The server's port died with it: our send right is a dead name now.
  EXPECT_EQ(*task_->type(server_port->name()), kTypeDeadName);
}

}  // namespace
}  // namespace portd::testing
