// Message events (daemon/ipc/monitor.h): which events the core reports, in
// which order, with which fields, and that none are built without an
// observer.
#include <vector>

#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

class Recorder : public MessageObserver {
 public:
  void on_message_event(const MessageEvent& event) override { events.push_back(event); }
  std::vector<MessageEvent> events;
};

class MonitorTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    core.set_observer(&recorder);
  }
  void TearDown() override {
    core.set_observer(nullptr);
    CoreTest::TearDown();
  }

  PortId port_id(TaskId t, Name n) {
    const Task* task = core.impl().find_task(t);
    return task->space.table[name_index(n)].port->id;
  }

  Recorder recorder;
};

TEST_F(MonitorTest, SendReceiveAndDestroyInOrderWithTheirFields) {
  auto [r, s] = port_with_sender(kA, kB);
  const PortId pid = port_id(kA, r);
  Name reply = port(kB);
  Name carried = port(kB);
  const PortId reply_id = port_id(kB, reply);
  const PortId carried_id = port_id(kB, carried);

  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, "ab")), Status::kSuccess);
  MessageIn two = msg(s, Disposition::kCopySend, 2, "wxyz");
  two.local = reply;
  two.local_disposition = Disposition::kMakeSendOnce;
  two.descriptors.push_back(PortDescIn{carried, Disposition::kMakeSend});
  two.descriptors.push_back(OolPortsIn{{carried, carried}, Disposition::kMakeSend});
  ASSERT_EQ(send(kB, two), Status::kSuccess);
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);

  auto& ev = recorder.events;
  // The reply right's send-once notification (when message 2 is destroyed)
  // follows on the reply port.
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].kind, MessageEventKind::kSend);
  EXPECT_EQ(ev[0].id, 1);
  EXPECT_EQ(ev[0].sender, kB);
  EXPECT_EQ(ev[0].sender_pid, 102u);
  EXPECT_EQ(ev[0].sender_uid, 1001u);
  EXPECT_EQ(ev[0].port, pid);
  EXPECT_EQ(ev[0].receiver, kA);
  EXPECT_EQ(ev[0].receiver_pid, 101u);
  EXPECT_EQ(ev[0].receiver_uid, 1000u);
  EXPECT_EQ(ev[0].size, kMachHeaderSize + 2);
  EXPECT_EQ(ev[0].body_bytes, 2u);
  EXPECT_EQ(ev[0].reply_port, 0u);
  EXPECT_EQ(ev[0].descriptor_count, 0u);

  EXPECT_EQ(ev[1].kind, MessageEventKind::kSend);
  EXPECT_EQ(ev[1].id, 2);
  EXPECT_EQ(ev[1].reply_port, reply_id);
  EXPECT_EQ(ev[1].size,
            kMachHeaderSize + kMachBodySize + kMachPortDescriptorSize + kMachOolDescriptorSize + 4);
  ASSERT_EQ(ev[1].descriptor_count, 2u);
  ASSERT_EQ(ev[1].descriptors.size(), 2u);
  EXPECT_EQ(ev[1].descriptors[0].kind, DescriptorSummary::Kind::kPort);
  EXPECT_EQ(ev[1].descriptors[0].right, RightType::kSend);
  EXPECT_EQ(ev[1].descriptors[0].port, carried_id);
  EXPECT_EQ(ev[1].descriptors[1].kind, DescriptorSummary::Kind::kOolPorts);
  EXPECT_EQ(ev[1].descriptors[1].right, RightType::kSend);
  EXPECT_EQ(ev[1].descriptors[1].size, 2u);

  EXPECT_EQ(ev[2].kind, MessageEventKind::kReceive);
  EXPECT_EQ(ev[2].id, 1);
  EXPECT_EQ(ev[2].seqno, 0u);
  EXPECT_EQ(ev[2].receiver, kA);

  // The port died with message 2 queued: its receiver is gone.
  EXPECT_EQ(ev[3].kind, MessageEventKind::kDestroy);
  EXPECT_EQ(ev[3].id, 2);
  EXPECT_EQ(ev[3].port, pid);
  EXPECT_EQ(ev[3].receiver, 0u);

  // The unused reply right fires a send-once notification (71) from the
  // daemon (sender 0) to B's reply port.
  EXPECT_EQ(ev[4].kind, MessageEventKind::kSend);
  EXPECT_EQ(ev[4].id, 71);
  EXPECT_EQ(ev[4].sender, 0u);
  EXPECT_EQ(ev[4].port, reply_id);
  EXPECT_EQ(ev[4].receiver, kB);
  EXPECT_EQ(recv(kB, reply).status, Status::kSuccess);
}

TEST_F(MonitorTest, RendezvousIsSentWhenTaken) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(core.set_qlimit(kA, r, 0, fx), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 7), wait(), 11), Status::kSendInProgress);
  EXPECT_TRUE(recorder.events.empty()) << "a waiting sender's message was not sent yet";
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  ASSERT_EQ(recorder.events.size(), 2u);
  EXPECT_EQ(recorder.events[0].kind, MessageEventKind::kSend);
  EXPECT_EQ(recorder.events[1].kind, MessageEventKind::kReceive);
  EXPECT_EQ(recorder.events[1].id, 7);
  ASSERT_TRUE(completion(11).has_value());
}

TEST_F(MonitorTest, TooLargeWithoutLargeIsDestroyed) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3, std::string(100, 'x'))), Status::kSuccess);
  ReceiveOptions o;
  o.max_size = 64;
  EXPECT_EQ(recv(kA, r, o).status, Status::kRcvTooLarge);
  ASSERT_EQ(recorder.events.size(), 2u);
  EXPECT_EQ(recorder.events[1].kind, MessageEventKind::kDestroy);
  EXPECT_EQ(recorder.events[1].id, 3);
  EXPECT_EQ(recorder.events[1].receiver, kA);
}

TEST_F(MonitorTest, DescriptorSummaryIsBounded) {
  auto [r, s] = port_with_sender(kA, kB);
  Name carried = port(kB);
  MessageIn m = msg(s, Disposition::kCopySend, 4);
  for (int i = 0; i < 20; ++i) m.descriptors.push_back(PortDescIn{carried, Disposition::kMakeSend});
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  ASSERT_EQ(recorder.events.size(), 1u);
  EXPECT_EQ(recorder.events[0].descriptor_count, 20u);
  EXPECT_EQ(recorder.events[0].descriptors.size(), MessageEvent::kMaxDescriptors);
}

TEST_F(MonitorTest, AnOutOfLineBodyIsTheBodyNotADescriptor) {
  auto [r, s] = port_with_sender(kA, kB);
  MessageIn m = msg(s, Disposition::kCopySend, 8, "in");
  OolIn body;
  body.attachment = 501;
  body.size = 70000;
  body.is_body = true;
  m.descriptors.push_back(body);
  OolIn region;
  region.attachment = 502;
  region.size = 4096;
  m.descriptors.push_back(region);
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  ASSERT_EQ(recorder.events.size(), 1u);
  const MessageEvent& ev = recorder.events[0];
  EXPECT_TRUE(ev.body_ool);
  EXPECT_EQ(ev.body_bytes, 70002u);
  EXPECT_EQ(ev.descriptor_count, 1u);
  ASSERT_EQ(ev.descriptors.size(), 1u);
  EXPECT_EQ(ev.descriptors[0].kind, DescriptorSummary::Kind::kOol);
  EXPECT_EQ(ev.descriptors[0].size, 4096u);
  EXPECT_EQ(ev.size, mach_size(std::vector<DescriptorIn>{body, region}, 2));
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
}

TEST_F(MonitorTest, NothingReachesARemovedObserver) {
  auto [r, s] = port_with_sender(kA, kB);
  core.set_observer(nullptr);
  ASSERT_EQ(send(kB, msg(s)), Status::kSuccess);
  ASSERT_EQ(recv(kA, r).status, Status::kSuccess);
  EXPECT_TRUE(recorder.events.empty());
  core.set_observer(&recorder);
  ASSERT_EQ(send(kB, msg(s)), Status::kSuccess);
  EXPECT_EQ(recorder.events.size(), 1u);
}

}  // namespace
}  // namespace portd::ipc::testing
