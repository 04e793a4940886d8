// Messages: rights carried with each disposition, the reply port, the
// trailer, sizes, and the rule that a failed send consumes nothing.
#include "unit/core_fixture.h"

namespace portd::ipc::testing {
namespace {

using MessageTest = CoreTest;

TEST_F(MessageTest, BodyIdAndTrailerArriveExactly) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 0x1234, "hello, port")), Status::kSuccess);
  Received m = recv(kA, r);
  ASSERT_EQ(m.status, Status::kSuccess);
  EXPECT_EQ(m.msg.id, 0x1234);
  EXPECT_EQ(body_of(m.msg), "hello, port");
  EXPECT_EQ(m.msg.local, r);
  EXPECT_EQ(m.msg.local_type, RightType::kSend);
  EXPECT_EQ(m.msg.remote, kNameNull);
  EXPECT_EQ(m.msg.trailer.pid, 102u);
  EXPECT_EQ(m.msg.trailer.uid, 1001u);
  EXPECT_EQ(m.msg.trailer.gid, 101u);
  EXPECT_EQ(m.msg.trailer.sender, kB);
  EXPECT_EQ(m.msg.trailer.seqno, 0u);
}

TEST_F(MessageTest, ReplyPortWithMakeSendOnce) {
  auto [r, s] = port_with_sender(kA, kB);
  Name reply = port(kB);
  MessageIn m = msg(s, Disposition::kCopySend, 1, "ping");
  m.local = reply;
  m.local_disposition = Disposition::kMakeSendOnce;
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  Received got = recv(kA, r);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.remote_type, RightType::kSendOnce);
  EXPECT_EQ(type_of(kA, got.msg.remote), kTypeSendOnce);
  EXPECT_EQ(status_of(kB, reply).sorights, 1u);
  ASSERT_EQ(send(kA, msg(got.msg.remote, Disposition::kMoveSendOnce, 2, "pong")), Status::kSuccess);
  Received answer = recv(kB, reply);
  EXPECT_EQ(body_of(answer.msg), "pong");
  EXPECT_EQ(answer.msg.local_type, RightType::kSendOnce);
  EXPECT_EQ(status_of(kB, reply).sorights, 0u);
  uint32_t t;
  EXPECT_EQ(core.type(kA, got.msg.remote, &t), Status::kInvalidName);
}

TEST_F(MessageTest, EveryDispositionArrivesAsItsRight) {
  auto [r, s] = port_with_sender(kA, kB);
  Name mine = port(kB);
  ASSERT_EQ(core.insert_right(kB, mine, mine, Disposition::kMakeSend, fx), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kB, mine, Right::kSend, 2, fx), Status::kSuccess);  // 3 urefs
  Name so = kNameNull;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, mine, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kSuccess);
  Name moving = port(kB);
  MessageIn m = msg(s);
  m.descriptors = {
      PortDescIn{mine, Disposition::kCopySend},      PortDescIn{mine, Disposition::kMoveSend},
      PortDescIn{mine, Disposition::kMakeSend},      PortDescIn{mine, Disposition::kMakeSendOnce},
      PortDescIn{so, Disposition::kMoveSendOnce},    PortDescIn{moving, Disposition::kMoveReceive},
      PortDescIn{kNameNull, Disposition::kCopySend}, PortDescIn{kNameDead, Disposition::kCopySend}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_EQ(refs(kB, mine, Right::kSend), 2u);  // one moved
  EXPECT_EQ(status_of(kB, mine).mscount, 2u);
  uint32_t ty;
  EXPECT_EQ(core.type(kB, so, &ty), Status::kInvalidName);
  EXPECT_EQ(core.type(kB, moving, &ty), Status::kInvalidName);

  Received got = recv(kA, r);
  ASSERT_EQ(got.status, Status::kSuccess);
  const auto& d = got.msg.descriptors;
  ASSERT_EQ(d.size(), 8u);
  auto pd = [&](size_t i) { return std::get<PortDescOut>(d[i]); };
  EXPECT_EQ(pd(0).type, RightType::kSend);
  EXPECT_EQ(pd(1).name, pd(0).name);  // one name per port: send rights merge
  EXPECT_EQ(pd(2).name, pd(0).name);
  EXPECT_EQ(refs(kA, pd(0).name, Right::kSend), 3u);
  EXPECT_EQ(pd(3).type, RightType::kSendOnce);
  EXPECT_EQ(pd(4).type, RightType::kSendOnce);
  EXPECT_NE(pd(3).name, pd(4).name);
  EXPECT_EQ(pd(5).type, RightType::kReceive);
  EXPECT_EQ(type_of(kA, pd(5).name), kTypeReceive);
  EXPECT_EQ(pd(6).name, kNameNull);
  EXPECT_EQ(pd(7).name, kNameDead);
  check();
}

TEST_F(MessageTest, AFailedSendConsumesNothing) {
  auto [r, s] = port_with_sender(kA, kB);
  Name mine = port(kB);
  ASSERT_EQ(core.insert_right(kB, mine, mine, Disposition::kMakeSend, fx), Status::kSuccess);
  Name so = kNameNull;
  RightType t;
  ASSERT_EQ(core.extract_right(kB, mine, Disposition::kMakeSendOnce, &so, &t, fx),
            Status::kSuccess);
  const std::string before = snapshot(kB);
  const std::string before_a = snapshot(kA);

  auto attempt = [&](MessageIn m, Status expect) {
    EXPECT_EQ(send(kB, m), expect);
    EXPECT_EQ(snapshot(kB), before);
    EXPECT_EQ(snapshot(kA), before_a);
  };
  MessageIn m = msg(s, Disposition::kMoveSend);
  m.descriptors = {PortDescIn{so, Disposition::kMoveSendOnce},
                   PortDescIn{mine, Disposition::kMoveSend},
                   PortDescIn{mine, Disposition::kMoveSend}};  // only one uref
  attempt(m, Status::kSendInvalidRight);

  m = msg(s, Disposition::kMoveSend);
  m.local = 0x9999;
  m.local_disposition = Disposition::kMakeSendOnce;
  attempt(m, Status::kSendInvalidReply);

  m = msg(0x9999, Disposition::kMoveSend);
  m.descriptors = {PortDescIn{mine, Disposition::kMoveReceive}};
  attempt(m, Status::kSendInvalidDest);

  m = msg(s, Disposition::kMoveReceive);
  attempt(m, Status::kSendInvalidHeader);

  m = msg(s, Disposition::kMoveSend);
  m.descriptors = {PortDescIn{mine, Disposition::kMoveReceive},
                   PortDescIn{mine, Disposition::kMakeSend}};  // receive already gone
  attempt(m, Status::kSendInvalidRight);

  m = msg(s, Disposition::kMoveSend);
  m.descriptors = {PortDescIn{mine, static_cast<Disposition>(22)}};
  attempt(m, Status::kSendInvalidType);

  m = msg(s, Disposition::kMoveSend);
  m.descriptors = {OolPortsIn{{mine, so, 0x4321}, Disposition::kCopySend}};
  attempt(m, Status::kSendInvalidRight);

  m = msg(mine, Disposition::kMakeSend);
  m.descriptors = {PortDescIn{mine, Disposition::kMoveReceive}};  // to itself: a cycle
  attempt(m, Status::kSendInvalidRight);
}

TEST_F(MessageTest, AReceiveRightCannotTravelIntoItsOwnQueueThroughAChain) {
  // p's receive right in a message to q, q's receive right in a message to p.
  Name p = port();
  Name q = port();
  ASSERT_EQ(core.insert_right(kA, p, p, Disposition::kMakeSend, fx), Status::kSuccess);
  ASSERT_EQ(core.insert_right(kA, q, q, Disposition::kMakeSend, fx), Status::kSuccess);
  MessageIn m = msg(q);
  m.descriptors = {PortDescIn{p, Disposition::kMoveReceive}};
  ASSERT_EQ(send(kA, m), Status::kSuccess);
  const std::string before = snapshot(kA);
  MessageIn back = msg(p);
  back.descriptors = {PortDescIn{q, Disposition::kMoveReceive}};
  EXPECT_EQ(send(kA, back), Status::kSendInvalidRight);
  EXPECT_EQ(snapshot(kA), before);
}

TEST_F(MessageTest, MovingAReceiveRightCarriesQueueSeqnoAndSenders) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2)), Status::kSuccess);
  EXPECT_EQ(recv(kA, r).msg.trailer.seqno, 0u);
  ASSERT_EQ(recv_park(kA, make_name(999, 1), 5), Status::kRcvInvalidName);
  Name moved = give(kA, r, Disposition::kMoveReceive, kC);
  EXPECT_EQ(type_of(kC, moved), kTypeReceive);
  Received m = recv(kC, moved);
  EXPECT_EQ(m.msg.id, 2);
  EXPECT_EQ(m.msg.trailer.seqno, 1u);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 3)), Status::kSuccess);
  EXPECT_EQ(recv(kC, moved).msg.id, 3);
  uint32_t t;
  EXPECT_EQ(core.type(kA, r, &t), Status::kInvalidName);
}

TEST_F(MessageTest, ReceiversWaitingOnAMovedRightWakeWithPortChanged) {
  Name r = port();
  ASSERT_EQ(recv_park(kA, r, 7), Status::kRcvInProgress);
  give(kA, r, Disposition::kMoveReceive, kB);
  auto c = completion(7);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->status, Status::kRcvPortChanged);
}

TEST_F(MessageTest, TooLargeStaysWithLargeAndIsDestroyedWithout) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1, std::string(100, 'x'))), Status::kSuccess);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2, "small")), Status::kSuccess);
  ReceiveOptions o;
  o.max_size = 64;
  o.large = true;
  o.trailer_size = 8;
  Received m = recv(kA, r, o);
  EXPECT_EQ(m.status, Status::kRcvTooLarge);
  EXPECT_EQ(m.needed, 24u + 100u + 8u);
  EXPECT_EQ(status_of(kA, r).msgcount, 2u);
  o.large = false;
  m = recv(kA, r, o);
  EXPECT_EQ(m.status, Status::kRcvTooLarge);
  EXPECT_EQ(m.needed, 132u);
  EXPECT_EQ(status_of(kA, r).msgcount, 1u);
  m = recv(kA, r, o);
  EXPECT_EQ(m.status, Status::kSuccess);
  EXPECT_EQ(m.msg.id, 2);
  EXPECT_EQ(core.impl().counters().messages_destroyed, 1u);
}

TEST_F(MessageTest, MachSizeCountsDescriptors) {
  std::vector<DescriptorIn> d = {PortDescIn{}, OolIn{}, OolPortsIn{}};
  EXPECT_EQ(mach_size(d, 10), 24u + 4u + 12u + 16u + 16u + 10u);
  std::vector<DescriptorIn> none;
  EXPECT_EQ(mach_size(none, 0), 24u);
}

TEST_F(MessageTest, MachSizeCountsAnOutOfLineBodyAsBody) {
  OolIn body;
  body.size = 70000;
  body.is_body = true;
  std::vector<DescriptorIn> only_body = {body};
  EXPECT_EQ(mach_size(only_body, 10), 24u + 10u + 70000u);  // not a complex message
  std::vector<DescriptorIn> mixed = {PortDescIn{}, body};
  EXPECT_EQ(mach_size(mixed, 0), 24u + 4u + 12u + 70000u);
}

TEST_F(MessageTest, AReleaseSignalIsASecondFdInFlight) {
  auto [r, s] = port_with_sender(kA, kB);
  MessageIn m = msg(s);
  m.descriptors = {OolIn{7, 4096, true, false, /*release_signal=*/true}, OolIn{8, 1, false, false}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.fds_in_flight, 3u);
  Received got = recv(kA, r);
  const auto& ool = std::get<OolOut>(got.msg.descriptors.at(0));
  EXPECT_TRUE(ool.release_signal);
  EXPECT_TRUE(ool.is_volatile);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.fds_in_flight, 0u);
}

TEST_F(MessageTest, AMessageHoldingMoreFdsThanMaxFdsStaysQueued) {
  auto [r, s] = port_with_sender(kA, kB);
  MessageIn m = msg(s, Disposition::kCopySend, 1);
  // Three fds: a region with a release signal, and one without.
  m.descriptors = {OolIn{7, 4096, true, false, /*release_signal=*/true}, OolIn{8, 1, false, false}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  ReceiveOptions o;
  o.max_fds = 2;
  Received got = recv(kA, r, o);
  EXPECT_EQ(got.status, Status::kRcvTooLarge);
  EXPECT_EQ(status_of(kA, r).msgcount, 1u);
  EXPECT_TRUE(fx.released.empty());
  EXPECT_EQ(core.impl().find_task(kB)->account->used.fds_in_flight, 3u);
  o.max_fds = 3;
  got = recv(kA, r, o);
  ASSERT_EQ(got.status, Status::kSuccess);
  EXPECT_EQ(got.msg.id, 1);
  EXPECT_EQ(got.msg.descriptors.size(), 2u);
  EXPECT_EQ(status_of(kA, r).msgcount, 0u);
}

TEST_F(MessageTest, AttachmentsOfADestroyedMessageAreReleased) {
  auto [r, s] = port_with_sender(kA, kB);
  MessageIn m = msg(s);
  m.descriptors = {OolIn{77, 4096, false, false}, OolIn{78, 1, true, false}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_TRUE(fx.released.empty());
  ASSERT_EQ(core.mod_refs(kA, r, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(fx.released, (std::vector<AttachmentId>{77, 78}));
}

TEST_F(MessageTest, AttachmentsTravelToTheReceiver) {
  auto [r, s] = port_with_sender(kA, kB);
  MessageIn m = msg(s);
  m.descriptors = {OolIn{5, 1 << 20, false, true}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.ool_bytes, 1u << 20);
  Received got = recv(kA, r);
  const auto& ool = std::get<OolOut>(got.msg.descriptors.at(0));
  EXPECT_EQ(ool.attachment, 5u);
  EXPECT_EQ(ool.size, 1u << 20);
  EXPECT_TRUE(ool.deallocate);
  EXPECT_EQ(core.impl().find_task(kB)->account->used.ool_bytes, 0u);
  EXPECT_TRUE(fx.released.empty());
}

TEST_F(MessageTest, PortArraysCarryOneTypeForEveryName) {
  auto [r, s] = port_with_sender(kA, kB);
  Name p1 = port(kB), p2 = port(kB);
  MessageIn m = msg(s);
  m.descriptors = {OolPortsIn{{p1, kNameNull, p2}, Disposition::kMakeSend}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  Received got = recv(kA, r);
  const auto& ports = std::get<OolPortsOut>(got.msg.descriptors.at(0));
  EXPECT_EQ(ports.type, RightType::kSend);
  ASSERT_EQ(ports.names.size(), 3u);
  EXPECT_EQ(type_of(kA, ports.names[0]), kTypeSend);
  EXPECT_EQ(ports.names[1], kNameNull);
  EXPECT_EQ(type_of(kA, ports.names[2]), kTypeSend);
}

TEST_F(MessageTest, RightsToADeadPortArriveAsDeadNames) {
  auto [r, s] = port_with_sender(kA, kB);
  auto [r2, s2] = port_with_sender(kC, kB);
  MessageIn m = msg(s);
  m.descriptors = {PortDescIn{s2, Disposition::kCopySend}};
  ASSERT_EQ(send(kB, m), Status::kSuccess);
  ASSERT_EQ(core.mod_refs(kC, r2, Right::kReceive, -1, fx), Status::kSuccess);
  Received got = recv(kA, r);
  EXPECT_EQ(std::get<PortDescOut>(got.msg.descriptors.at(0)).name, kNameDead);
}

TEST_F(MessageTest, AReceiveRightArrivingWhereItsSendRightIsJoinsThatName) {
  auto [r, s] = port_with_sender(kA, kC);
  ASSERT_EQ(send(kC, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  Name moved = give(kA, r, Disposition::kMoveReceive, kC);
  EXPECT_EQ(moved, s);
  EXPECT_EQ(type_of(kC, s), kTypeReceive | kTypeSend);
  EXPECT_EQ(refs(kC, s, Right::kSend), 1u);
  EXPECT_EQ(recv(kC, s).msg.id, 1);
  // Destroying it now leaves the send right dead, under the same name.
  ASSERT_EQ(core.mod_refs(kC, s, Right::kReceive, -1, fx), Status::kSuccess);
  EXPECT_EQ(type_of(kC, s), kTypeDeadName);
}

TEST_F(MessageTest, ARightTravelsThroughTwoTasksAndBackToItsFirstOwner) {
  auto [r, s] = port_with_sender(kA, kB);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 1)), Status::kSuccess);
  Name in_c = give(kA, r, Disposition::kMoveReceive, kC);
  ASSERT_EQ(send(kB, msg(s, Disposition::kCopySend, 2)), Status::kSuccess);
  Name back = give(kC, in_c, Disposition::kMoveReceive, kA);
  EXPECT_EQ(status_of(kA, back).msgcount, 2u);
  EXPECT_EQ(recv(kA, back).msg.trailer.seqno, 0u);
  EXPECT_EQ(recv(kA, back).msg.trailer.seqno, 1u);
  uint32_t t;
  EXPECT_EQ(core.type(kC, in_c, &t), Status::kInvalidName);
}

}  // namespace
}  // namespace portd::ipc::testing
