// The daemon's codec for portctl's requests (introspect, monitorStart/Poll/
// Stop): exact decoded values, bounds, refusals; and the replies' encoders,
// read back through the client's decoder.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "daemon/server/codec.h"
#include "libclient/src/codec.h"
#include "portd/proto/frame.h"

namespace portd::server {
namespace {

constexpr uint64_t kId = 91;

DecodedRequest decode(const std::function<void(wire::Request::Builder)>& fill) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::Request>();
  request.setId(kId);
  fill(request);
  auto bytes = proto::encode_frame(message);
  proto::FrameReader reader;
  EXPECT_TRUE(reader.feed(bytes.data(), bytes.size()));
  EXPECT_EQ(reader.next(), proto::FrameReader::Next::kFrame);
  return decode_request(reader.frame().getRoot<wire::Request>(), ipc::Limits{});
}

template <typename T>
T body_as(const DecodedRequest& d) {
  EXPECT_FALSE(d.refused()) << d.refusal.why;
  const T* t = std::get_if<T>(&d.body);
  EXPECT_NE(t, nullptr);
  EXPECT_TRUE(is_introspection(d.body));
  return t != nullptr ? *t : T{};
}

void expect_refused(const DecodedRequest& d, Status status) {
  EXPECT_TRUE(d.refused());
  EXPECT_EQ(d.refusal.status, status) << status_name(d.refusal.status);
  EXPECT_EQ(d.id, kId);
}

TEST(CodecIntrospect, IntrospectDecodesWithDefaultsAndCaps) {
  auto d = decode([](auto r) {
    auto q = r.initIntrospect();
    q.setWhat(wire::IntrospectWhat::RIGHTS);
    q.setTarget(12);
    q.setPid(345);
    q.setCursor("770");
  });
  auto q = body_as<req::Introspect>(d);
  EXPECT_EQ(q.what, req::IntrospectWhat::kRights);
  EXPECT_EQ(q.target, 12u);
  EXPECT_EQ(q.pid, 345u);
  EXPECT_EQ(q.cursor, "770");
  EXPECT_EQ(q.limit, kPageDefault);

  auto big =
      body_as<req::Introspect>(decode([](auto r) { r.initIntrospect().setLimit(1u << 30); }));
  EXPECT_EQ(big.limit, kPageMax);
  EXPECT_EQ(big.what, req::IntrospectWhat::kStatus);
  auto small = body_as<req::Introspect>(decode([](auto r) { r.initIntrospect().setLimit(3); }));
  EXPECT_EQ(small.limit, 3u);
  auto uids = body_as<req::Introspect>(
      decode([](auto r) { r.initIntrospect().setWhat(wire::IntrospectWhat::UIDS); }));
  EXPECT_EQ(uids.what, req::IntrospectWhat::kUids);
}

TEST(CodecIntrospect, BadIntrospectionsAreRefused) {
  expect_refused(
      decode([](auto r) { r.initIntrospect().setCursor(std::string(kCursorMax + 1, '7')); }),
      Status::kInvalidArgument);
  // A kind from a newer client.
  expect_refused(
      decode([](auto r) { r.initIntrospect().setWhat(static_cast<wire::IntrospectWhat>(8)); }),
      Status::kNotSupported);
  expect_refused(decode([](auto r) {
                   r.setFdCount(1);
                   r.initIntrospect();
                 }),
                 Status::kInvalidArgument);
  expect_refused(decode([](auto r) { r.initMonitorStart().setName(std::string(128, 'n')); }),
                 Status::kInvalidArgument);
  expect_refused(decode([](auto r) {
                   auto name = r.initMonitorStart().initName(3);
                   std::memcpy(name.begin(), "a\0b", 3);
                 }),
                 Status::kInvalidArgument);
}

TEST(CodecIntrospect, MonitorRequests) {
  auto start = body_as<req::MonitorStart>(decode([](auto r) {
    auto m = r.initMonitorStart();
    m.setPort(4);
    m.setName("svc.x");
    m.setTask(9);
  }));
  EXPECT_EQ(start.port, 4u);
  EXPECT_EQ(start.name, "svc.x");
  EXPECT_EQ(start.task, 9u);
  EXPECT_EQ(start.buffer, kMonitorBufferDefault);
  auto capped =
      body_as<req::MonitorStart>(decode([](auto r) { r.initMonitorStart().setBuffer(1u << 31); }));
  EXPECT_EQ(capped.buffer, kMonitorBufferMax);
  EXPECT_EQ(capped.name, "");

  auto poll = body_as<req::MonitorPoll>(decode([](auto r) { r.initMonitorPoll(); }));
  EXPECT_EQ(poll.timeout_ms, 0);
  EXPECT_EQ(poll.max, kMonitorPollDefault);
  auto poll2 = body_as<req::MonitorPoll>(decode([](auto r) {
    auto p = r.initMonitorPoll();
    p.setTimeoutMs(-1);
    p.setMax(1u << 20);
  }));
  EXPECT_EQ(poll2.timeout_ms, -1);
  EXPECT_EQ(poll2.max, kMonitorPollMax);
  body_as<req::MonitorStop>(decode([](auto r) { r.setMonitorStop(); }));
  EXPECT_FALSE(is_introspection(decode([](auto r) { r.setNames(); }).body));
}

TEST(CodecIntrospect, RepliesReadBackByTheClient) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, kId, Status::kSuccess);
  encode_introspection(R"([{"port":1}])", "1", reply);
  std::vector<proto::UniqueFd> fds;
  detail::ReplyData data;
  std::string error;
  ASSERT_TRUE(detail::decode_reply(reply.asReader(), fds, &data, &error)) << error;
  EXPECT_EQ(data.which, wire::Reply::INTROSPECTION);
  EXPECT_EQ(data.introspection.json, R"([{"port":1}])");
  EXPECT_EQ(data.introspection.next, "1");

  capnp::MallocMessageBuilder message2;
  auto reply2 = message2.initRoot<wire::Reply>();
  encode_reply_header(reply2, kId, Status::kSuccess);
  const std::string a = R"({"event":"send"})";
  encode_monitor_events({a, std::string_view(), R"({"event":"lost","lost":2})"}, reply2);
  detail::ReplyData data2;
  ASSERT_TRUE(detail::decode_reply(reply2.asReader(), fds, &data2, &error)) << error;
  EXPECT_EQ(data2.which, wire::Reply::MONITOR_EVENTS);
  EXPECT_EQ(data2.monitor_events,
            std::vector<std::string>({a, "", R"({"event":"lost","lost":2})"}));

  // The client's request encoders, read back.
  capnp::MallocMessageBuilder request;
  IntrospectQuery q;
  q.what = IntrospectWhat::kPort;
  q.target = 5;
  q.cursor = "c";
  q.limit = 9;
  detail::encode_introspect(q, request.initRoot<wire::Introspect>());
  auto r = request.getRoot<wire::Introspect>().asReader();
  EXPECT_EQ(r.getWhat(), wire::IntrospectWhat::PORT);
  EXPECT_EQ(r.getTarget(), 5u);
  EXPECT_EQ(std::string(r.getCursor()), "c");
  EXPECT_EQ(r.getLimit(), 9u);
}

}  // namespace
}  // namespace portd::server
