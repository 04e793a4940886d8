// libportd's codec: requests encoded by the library and read back with the
// generated Cap'n Proto reader (as the daemon reads them, through FrameReader),
// and replies built with the generated builder and decoded by the library.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "libclient/src/codec.h"
#include "portd/proto/frame.h"
#include "portd/task.h"

namespace portd::detail {
namespace {

// Serializes `builder` in stream framing and reads it back as the daemon
// would.
class Wire {
 public:
  explicit Wire(capnp::MessageBuilder& builder) {
    auto frame = proto::encode_frame(builder);
    EXPECT_TRUE(reader_.feed(frame.data(), frame.size()));
    EXPECT_EQ(reader_.next(), proto::FrameReader::Next::kFrame);
  }
  template <typename T>
  typename T::Reader root() {
    return reader_.frame().getRoot<T>();
  }

 private:
  proto::FrameReader reader_;
};

TEST(ClientCodecTest, SendRequestCarriesEveryFieldOfTheMessage) {
  OutgoingMessage message;
  message.set_remote(0x1203, Disposition::kCopySend)
      .set_local(0x2207, Disposition::kMakeSendOnce)
      .set_id(-42)
      .set_body("hello, port")
      .add_port(0x3301, Disposition::kMoveReceive)
      .add_ool_ports({0x4401, 0x4502, kNameNull}, Disposition::kMoveSend)
      .add_port(kNameDead, Disposition::kCopySend);

  capnp::MallocMessageBuilder builder;
  auto send = builder.initRoot<wire::Request>().initSend();
  ASSERT_EQ(encode_message(message, nullptr, send.initMessage()), Status::kSuccess);
  SendOptions options;
  options.timeout = std::chrono::milliseconds(250);
  options.cache = true;
  options.notify = 0x5501;
  options.notify_disposition = Disposition::kMakeSendOnce;
  encode_send_options(options, 4242, send.initOptions());

  Wire wire(builder);
  auto request = wire.root<wire::Request>();
  ASSERT_EQ(request.which(), wire::Request::SEND);
  auto m = request.getSend().getMessage();
  EXPECT_EQ(m.getRemote(), 0x1203u);
  EXPECT_EQ(m.getRemoteDisposition(), 19);
  EXPECT_EQ(m.getLocal(), 0x2207u);
  EXPECT_EQ(m.getLocalDisposition(), 21);
  EXPECT_EQ(m.getId(), -42);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.getBody().begin()), m.getBody().size()),
            "hello, port");
  ASSERT_EQ(m.getDescriptors().size(), 3u);
  ASSERT_EQ(m.getDescriptors()[0].which(), wire::OutDescriptor::PORT);
  EXPECT_EQ(m.getDescriptors()[0].getPort().getName(), 0x3301u);
  EXPECT_EQ(m.getDescriptors()[0].getPort().getDisposition(), 16);
  ASSERT_EQ(m.getDescriptors()[1].which(), wire::OutDescriptor::OOL_PORTS);
  auto array = m.getDescriptors()[1].getOolPorts();
  EXPECT_EQ(array.getDisposition(), 17);
  ASSERT_EQ(array.getNames().size(), 3u);
  EXPECT_EQ(array.getNames()[0], 0x4401u);
  EXPECT_EQ(array.getNames()[1], 0x4502u);
  EXPECT_EQ(array.getNames()[2], kNameNull);
  EXPECT_EQ(m.getDescriptors()[2].getPort().getName(), kNameDead);

  auto o = request.getSend().getOptions();
  EXPECT_EQ(o.getTimeoutMs(), 250);
  EXPECT_TRUE(o.getCache());
  EXPECT_EQ(o.getNotify(), 0x5501u);
  EXPECT_EQ(o.getNotifyDisposition(), 21);
  EXPECT_EQ(o.getThread(), 4242u);
}

TEST(ClientCodecTest, TimeoutsMapToTheWireConvention) {
  EXPECT_EQ(wire_timeout(std::nullopt), -1);
  EXPECT_EQ(wire_timeout(std::chrono::milliseconds(0)), 0);
  EXPECT_EQ(wire_timeout(std::chrono::milliseconds(50)), 50);
  EXPECT_EQ(wire_timeout(std::chrono::milliseconds(-5)), 0);

  capnp::MallocMessageBuilder builder;
  ReceiveOptions options;
  options.max_size = 1024;
  options.large = true;
  options.trailer_size = 52;
  encode_receive_options(0x900, options, builder.initRoot<wire::Request>().initReceive());
  Wire wire(builder);
  auto r = wire.root<wire::Request>().getReceive();
  EXPECT_EQ(r.getName(), 0x900u);
  EXPECT_EQ(r.getTimeoutMs(), -1);  // nullopt: wait forever
  EXPECT_EQ(r.getMaxSize(), 1024u);
  EXPECT_TRUE(r.getLarge());
  EXPECT_EQ(r.getTrailerSize(), 52u);
}

TEST(ClientCodecTest, OutOfLineRegionsAreDescribedInOrderAndTheBodyLast) {
  const char text[] = "region bytes";
  auto copied = OolRegion::copy(text, sizeof text);
  ASSERT_TRUE(copied) << copied.detail();
  UniqueFd raw(::memfd_create("codec-test", MFD_CLOEXEC));
  OutgoingMessage message;
  message.set_remote(0x100, Disposition::kCopySend)
      .add_ool(std::move(*copied))
      .add_port(0x200, Disposition::kCopySend)
      .add_ool(OolRegion::adopt(std::move(raw), 4096, /*is_volatile=*/true, /*deallocate=*/true))
      .set_body("inline bytes that went out of line");
  auto body = OolRegion::copy(message.body());
  ASSERT_TRUE(body);
  capnp::MallocMessageBuilder builder;
  ASSERT_EQ(
      encode_message(message, &*body, builder.initRoot<wire::Request>().initSend().initMessage()),
      Status::kSuccess);
  Wire wire(builder);
  auto m = wire.root<wire::Request>().getSend().getMessage();
  EXPECT_FALSE(m.hasBody());  // the body travels as the last region
  auto ds = m.getDescriptors();
  ASSERT_EQ(ds.size(), 4u);
  ASSERT_EQ(ds[0].which(), wire::OutDescriptor::OOL);
  EXPECT_EQ(ds[0].getOol().getSize(), sizeof text);
  EXPECT_FALSE(ds[0].getOol().getVolatile());
  EXPECT_FALSE(ds[0].getOol().getDeallocate());
  EXPECT_FALSE(ds[0].getOol().getReleaseSignal());
  EXPECT_FALSE(ds[0].getOol().getBody());
  EXPECT_EQ(ds[1].which(), wire::OutDescriptor::PORT);
  EXPECT_EQ(ds[2].getOol().getSize(), 4096u);
  EXPECT_TRUE(ds[2].getOol().getVolatile());
  EXPECT_TRUE(ds[2].getOol().getDeallocate());
  EXPECT_FALSE(ds[2].getOol().getReleaseSignal());  // adopted: no pool behind it
  EXPECT_EQ(ds[3].getOol().getSize(), message.body().size());
  EXPECT_TRUE(ds[3].getOol().getBody());

  // Without an out-of-line body the body is inline.
  capnp::MallocMessageBuilder inline_builder;
  ASSERT_EQ(encode_message(message, nullptr,
                           inline_builder.initRoot<wire::Request>().initSend().initMessage()),
            Status::kSuccess);
  Wire inline_wire(inline_builder);
  auto im = inline_wire.root<wire::Request>().getSend().getMessage();
  EXPECT_EQ(im.getBody().size(), message.body().size());
  EXPECT_EQ(im.getDescriptors().size(), 3u);
}

TEST(ClientCodecTest, DescriptorWithoutDispositionIsRefused) {
  OutgoingMessage message;
  message.set_remote(0x100, Disposition::kCopySend).add_port(0x200, Disposition::kNone);
  capnp::MallocMessageBuilder builder;
  EXPECT_EQ(
      encode_message(message, nullptr, builder.initRoot<wire::Request>().initSend().initMessage()),
      Status::kSendInvalidType);

  OutgoingMessage array;
  array.add_ool_ports({0x200}, static_cast<Disposition>(22));  // COPY_RECEIVE
  capnp::MallocMessageBuilder builder2;
  EXPECT_EQ(
      encode_message(array, nullptr, builder2.initRoot<wire::Request>().initSend().initMessage()),
      Status::kSendInvalidType);
}

TEST(ClientCodecTest, MessageReplyDecodesWithTrailerDescriptorsAndFds) {
  capnp::MallocMessageBuilder builder;
  auto reply = builder.initRoot<wire::Reply>();
  reply.setId(7);
  reply.setStatus(0);
  reply.setFdCount(1);
  auto m = reply.initMessage();
  m.setRemote(0x1a03);
  m.setRemoteType(18);
  m.setLocal(0x1b01);
  m.setLocalType(17);
  m.setId(1000);
  auto body = m.initBody(5);
  std::memcpy(body.begin(), "abcde", 5);
  auto descriptors = m.initDescriptors(3);
  descriptors[0].initPort().setName(0x1c01);
  descriptors[0].getPort().setDisposition(16);
  auto ool = descriptors[1].initOol();
  ool.setSize(4096);
  ool.setVolatile(true);
  ool.setReleaseSignal(true);
  auto array = descriptors[2].initOolPorts();
  array.setDisposition(17);
  array.initNames(2).set(0, 0x1d01);
  array.getNames().set(1, kNameDead);
  auto t = m.initTrailer();
  t.setSeqno(12);
  t.setSenderPid(111);
  t.setSenderUid(222);
  t.setSenderGid(333);
  t.setSenderTask(9);

  Wire wire(builder);
  std::vector<UniqueFd> fds;
  fds.emplace_back(::memfd_create("codec-test", MFD_CLOEXEC));
  ASSERT_TRUE(fds[0].valid());
  const int raw_fd = fds[0].get();
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]);
  fds.emplace_back(ends[1]);
  ReplyData out;
  std::string error;
  ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error)) << error;
  EXPECT_EQ(out.status, Status::kSuccess);
  ASSERT_EQ(out.which, wire::Reply::MESSAGE);
  ASSERT_TRUE(out.message.has_value());
  const ReceivedMessage& r = *out.message;
  EXPECT_EQ(r.remote, 0x1a03u);
  EXPECT_EQ(r.remote_type, RightType::kSendOnce);
  EXPECT_EQ(r.local, 0x1b01u);
  EXPECT_EQ(r.local_type, RightType::kSend);
  EXPECT_EQ(r.id, 1000);
  EXPECT_EQ(r.body_text(), "abcde");
  ASSERT_EQ(r.descriptors.size(), 3u);
  const auto& port = std::get<ReceivedPort>(r.descriptors[0]);
  EXPECT_EQ(port.name, 0x1c01u);
  EXPECT_EQ(port.type, RightType::kReceive);
  const auto& mem = std::get<ReceivedOolMemory>(r.descriptors[1]);
  EXPECT_EQ(mem.size, 4096u);
  EXPECT_TRUE(mem.is_volatile);
  EXPECT_FALSE(mem.memory.mapped());  // mapping is task.cc's business
  // The frame's fds, now owned by the reply's region list, in order.
  ASSERT_EQ(out.regions.size(), 1u);
  EXPECT_EQ(out.regions[0].index, 1u);
  EXPECT_EQ(out.regions[0].size, 4096u);
  EXPECT_TRUE(out.regions[0].is_volatile);
  EXPECT_FALSE(out.regions[0].is_body);
  EXPECT_EQ(out.regions[0].fd.get(), raw_fd);
  EXPECT_EQ(out.regions[0].release.get(), ends[1]);
  const auto& ports = std::get<ReceivedOolPorts>(r.descriptors[2]);
  EXPECT_EQ(ports.type, RightType::kSend);
  EXPECT_EQ(ports.names, (std::vector<Name>{0x1d01, kNameDead}));
  EXPECT_EQ(r.trailer.seqno, 12u);
  EXPECT_EQ(r.trailer.pid, 111u);
  EXPECT_EQ(r.trailer.uid, 222u);
  EXPECT_EQ(r.trailer.gid, 333u);
  EXPECT_EQ(r.trailer.sender_task, 9u);
}

TEST(ClientCodecTest, OutOfLineRegionWithoutFdIsMalformed) {
  capnp::MallocMessageBuilder builder;
  auto reply = builder.initRoot<wire::Reply>();
  reply.initMessage().initDescriptors(1)[0].initOol().setSize(10);
  Wire wire(builder);
  std::vector<UniqueFd> fds;
  ReplyData out;
  std::string error;
  EXPECT_FALSE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
  EXPECT_EQ(error, "reply has more out-of-line regions than file descriptors");
}

TEST(ClientCodecTest, BodyRegionHasNoDescriptorAndReleaseSignalNeedsItsFd) {
  capnp::MallocMessageBuilder builder;
  auto reply = builder.initRoot<wire::Reply>();
  auto ds = reply.initMessage().initDescriptors(2);
  ds[0].initPort().setName(0x1c01);
  auto body = ds[1].initOol();
  body.setSize(70000);
  body.setBody(true);
  {
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    fds.emplace_back(::memfd_create("codec-test", MFD_CLOEXEC));
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error)) << error;
    EXPECT_EQ(out.message->descriptors.size(), 1u);  // the port only
    ASSERT_EQ(out.regions.size(), 1u);
    EXPECT_TRUE(out.regions[0].is_body);
    EXPECT_EQ(out.regions[0].size, 70000u);
    EXPECT_EQ(out.regions[0].index, 1u);
  }
  body.setBody(false);
  body.setVolatile(true);
  body.setReleaseSignal(true);
  Wire wire(builder);
  std::vector<UniqueFd> fds;
  fds.emplace_back(::memfd_create("codec-test", MFD_CLOEXEC));  // the region, no signal
  ReplyData out;
  std::string error;
  EXPECT_FALSE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
  EXPECT_EQ(error, "reply has more out-of-line regions than file descriptors");
}

TEST(ClientCodecTest, ValueRepliesDecode) {
  {
    capnp::MallocMessageBuilder builder;
    auto reply = builder.initRoot<wire::Reply>();
    reply.setStatus(static_cast<int32_t>(Status::kResourceShortage));
    reply.setLimit("ports");
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
    EXPECT_EQ(out.status, Status::kResourceShortage);
    EXPECT_EQ(out.limit, "ports");
    EXPECT_EQ(out.which, wire::Reply::NONE);
  }
  {
    capnp::MallocMessageBuilder builder;
    auto reply = builder.initRoot<wire::Reply>();
    auto names = reply.initNames(2);
    names[0].setName(0x103);
    names[0].setType(kTypeReceive | kTypeSend);
    names[1].setName(0x207);
    names[1].setType(kTypeDeadName | kTypeDnRequest);
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
    ASSERT_EQ(out.names.size(), 2u);
    EXPECT_EQ(out.names[0].name, 0x103u);
    EXPECT_EQ(out.names[0].type, kTypeReceive | kTypeSend);
    EXPECT_EQ(out.names[1].type, kTypeDeadName | kTypeDnRequest);
  }
  {
    capnp::MallocMessageBuilder builder;
    auto a = builder.initRoot<wire::Reply>().initAttributes();
    a.setPset(0x301);
    a.setSeqno(4);
    a.setMscount(2);
    a.setQlimit(16);
    a.setMsgcount(3);
    a.setSorights(1);
    a.setSrights(true);
    a.setNsrequest(true);
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
    EXPECT_EQ(out.attributes.pset, 0x301u);
    EXPECT_EQ(out.attributes.seqno, 4u);
    EXPECT_EQ(out.attributes.mscount, 2u);
    EXPECT_EQ(out.attributes.qlimit, 16u);
    EXPECT_EQ(out.attributes.msgcount, 3u);
    EXPECT_EQ(out.attributes.sorights, 1u);
    EXPECT_TRUE(out.attributes.srights);
    EXPECT_FALSE(out.attributes.pdrequest);
    EXPECT_TRUE(out.attributes.nsrequest);
  }
  {
    capnp::MallocMessageBuilder builder;
    auto e = builder.initRoot<wire::Reply>().initBootstrapList(1)[0];
    e.setName("org.example.svc");
    e.setUid(1000);
    e.setPid(77);
    e.setPort(5);
    e.setSinceUnixMs(1234567);
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
    ASSERT_EQ(out.bootstrap.size(), 1u);
    EXPECT_EQ(out.bootstrap[0].name, "org.example.svc");
    EXPECT_EQ(out.bootstrap[0].uid, 1000u);
    EXPECT_EQ(out.bootstrap[0].pid, 77u);
    EXPECT_EQ(out.bootstrap[0].port, 5u);
    EXPECT_EQ(out.bootstrap[0].since_unix_ms, 1234567);
  }
  {
    capnp::MallocMessageBuilder builder;
    auto e = builder.initRoot<wire::Reply>().initExtracted();
    e.setName(0x605);
    e.setType(18);
    Wire wire(builder);
    std::vector<UniqueFd> fds;
    ReplyData out;
    std::string error;
    ASSERT_TRUE(decode_reply(wire.root<wire::Reply>(), fds, &out, &error));
    EXPECT_EQ(out.extracted.name, 0x605u);
    EXPECT_EQ(out.extracted.type, RightType::kSendOnce);
  }
}

TEST(ClientCodecTest, OutOfBoundsPointerIsCaughtAsMalformed) {
  // A reply whose body lies past the end of its segment: Cap'n Proto throws
  // when it is read, and the codec must report it, not let it escape.
  capnp::MallocMessageBuilder builder;
  auto reply = builder.initRoot<wire::Reply>();
  reply.setId(3);
  auto m = reply.initMessage();
  m.initTrailer();
  m.initDescriptors(0);
  auto body = m.initBody(64);  // allocated last: at the end of the segment
  std::memset(body.begin(), 'x', body.size());
  auto segments = builder.getSegmentsForOutput();
  ASSERT_EQ(segments.size(), 1u);
  auto truncated = segments[0].slice(0, segments[0].size() - 8);
  kj::ArrayPtr<const capnp::word> parts[] = {truncated};
  capnp::SegmentArrayMessageReader reader(parts);

  std::vector<UniqueFd> fds;
  ReplyData out;
  std::string error;
  EXPECT_FALSE(decode_reply(reader.getRoot<wire::Reply>(), fds, &out, &error));
  EXPECT_EQ(error.rfind("malformed reply: ", 0), 0u) << error;
}

}  // namespace
}  // namespace portd::detail
