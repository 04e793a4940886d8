// The daemon's codec (daemon/server/codec.h): every request kind decoded into
// core types with exact values, every refusal with its exact Status, and
// core results encoded into Reply frames. Requests go through real framing
// (encode_frame + FrameReader) so the readers are the ones the daemon sees.
#include "daemon/server/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "portd/proto/frame.h"

namespace portd::server {
namespace {

using ipc::Disposition;
using ipc::Limit;
using ipc::Right;
using ipc::RightType;

constexpr uint64_t kId = 77;

// Builds a Request with `fill`, frames it, reads it back and decodes it.
DecodedRequest decode(const std::function<void(wire::Request::Builder)>& fill,
                      const ipc::Limits& limits = {}) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::Request>();
  request.setId(kId);
  fill(request);
  auto bytes = proto::encode_frame(message);
  proto::FrameReader reader;
  EXPECT_TRUE(reader.feed(bytes.data(), bytes.size()));
  EXPECT_EQ(reader.next(), proto::FrameReader::Next::kFrame);
  return decode_request(reader.frame().getRoot<wire::Request>(), limits);
}

template <typename T>
const T& body_as(const DecodedRequest& d) {
  EXPECT_FALSE(d.refused()) << d.refusal.why;
  EXPECT_TRUE(std::holds_alternative<T>(d.body));
  static const T empty{};
  const T* t = std::get_if<T>(&d.body);
  return t != nullptr ? *t : empty;
}

void expect_refused(const DecodedRequest& d, Status status, Limit limit = Limit::kNone) {
  EXPECT_TRUE(d.refused());
  EXPECT_EQ(d.refusal.status, status) << status_name(d.refusal.status) << " / " << d.refusal.why;
  EXPECT_EQ(d.refusal.limit, limit);
  EXPECT_FALSE(d.refusal.why.empty());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(d.body));
  EXPECT_EQ(d.id, kId);  // so the error reply can be matched
}

// A message with one of each descriptor kind.
void fill_message(wire::OutMessage::Builder m) {
  m.setRemote(0x103);
  m.setRemoteDisposition(20);  // MAKE_SEND
  m.setLocal(0x207);
  m.setLocalDisposition(21);  // MAKE_SEND_ONCE
  m.setId(-4242);
  const kj::byte body[] = {1, 2, 3, 0, 255};
  m.setBody(kj::arrayPtr(body, sizeof body));
  auto ds = m.initDescriptors(3);
  auto port = ds[0].initPort();
  port.setName(0x30b);
  port.setDisposition(17);  // MOVE_SEND
  auto ool = ds[1].initOol();
  ool.setSize(123456);
  ool.setVolatile(true);
  ool.setDeallocate(true);
  auto ports = ds[2].initOolPorts();
  ports.setDisposition(19);  // COPY_SEND
  auto names = ports.initNames(3);
  names.set(0, 0x40f);
  names.set(1, 0);
  names.set(2, 0xffffffff);
}

void expect_message(const ipc::MessageIn& m) {
  EXPECT_EQ(m.remote, 0x103u);
  EXPECT_EQ(m.remote_disposition, Disposition::kMakeSend);
  EXPECT_EQ(m.local, 0x207u);
  EXPECT_EQ(m.local_disposition, Disposition::kMakeSendOnce);
  EXPECT_EQ(m.id, -4242);
  EXPECT_EQ(m.body, (std::vector<uint8_t>{1, 2, 3, 0, 255}));
  ASSERT_EQ(m.descriptors.size(), 3u);
  const auto* port = std::get_if<ipc::PortDescIn>(&m.descriptors[0]);
  ASSERT_NE(port, nullptr);
  EXPECT_EQ(port->name, 0x30bu);
  EXPECT_EQ(port->disposition, Disposition::kMoveSend);
  const auto* ool = std::get_if<ipc::OolIn>(&m.descriptors[1]);
  ASSERT_NE(ool, nullptr);
  EXPECT_EQ(ool->attachment, 0u);  // the driver registers the fd later
  EXPECT_EQ(ool->size, 123456u);
  EXPECT_TRUE(ool->is_volatile);
  EXPECT_TRUE(ool->deallocate);
  const auto* ports = std::get_if<ipc::OolPortsIn>(&m.descriptors[2]);
  ASSERT_NE(ports, nullptr);
  EXPECT_EQ(ports->disposition, Disposition::kCopySend);
  EXPECT_EQ(ports->names, (std::vector<ipc::Name>{0x40f, 0, 0xffffffff}));
  EXPECT_EQ(ool_fd_count(m), 1u);
}

// ---------------------------------------------------------------------------
// Every request kind

TEST(CodecDecode, Hello) {
  auto d = decode([](auto r) {
    auto h = r.initHello();
    h.setVersion(3);
    h.setCommand("my-tool");
  });
  EXPECT_EQ(d.id, kId);
  const auto& h = body_as<req::Hello>(d);
  EXPECT_EQ(h.version, 3u);
  EXPECT_EQ(h.command, "my-tool");
}

TEST(CodecDecode, HelloCommandIsBoundedAndPrintable) {
  auto d =
      decode([](auto r) { r.initHello().setCommand("evil\nline\x7f" + std::string(100, 'x')); });
  const auto& h = body_as<req::Hello>(d);
  EXPECT_EQ(h.command.size(), kCommandMax);
  EXPECT_EQ(h.command.substr(0, 12), "evil?line?xx");
}

TEST(CodecDecode, Cancel) {
  auto d = decode([](auto r) { r.setCancel(991); });
  EXPECT_EQ(body_as<req::Cancel>(d).target, 991u);
}

TEST(CodecDecode, Allocate) {
  auto d = decode([](auto r) { r.initAllocate().setRight(3); });
  EXPECT_EQ(body_as<req::Allocate>(d).right, Right::kPortSet);
}

TEST(CodecDecode, Deallocate) {
  auto d = decode([](auto r) { r.initDeallocate().setName(0x1234); });
  EXPECT_EQ(body_as<req::Deallocate>(d).name, 0x1234u);
}

TEST(CodecDecode, ModRefs) {
  auto d = decode([](auto r) {
    auto m = r.initModRefs();
    m.setName(0x505);
    m.setRight(4);
    m.setDelta(-2);
  });
  const auto& m = body_as<req::ModRefs>(d);
  EXPECT_EQ(m.name, 0x505u);
  EXPECT_EQ(m.right, Right::kDeadName);
  EXPECT_EQ(m.delta, -2);
}

TEST(CodecDecode, Destroy) {
  auto d = decode([](auto r) { r.initDestroy().setName(0x606); });
  EXPECT_EQ(body_as<req::Destroy>(d).name, 0x606u);
}

TEST(CodecDecode, InsertRight) {
  auto d = decode([](auto r) {
    auto i = r.initInsertRight();
    i.setName(0x707);
    i.setRight(0x708);
    i.setDisposition(20);
  });
  const auto& i = body_as<req::InsertRight>(d);
  EXPECT_EQ(i.name, 0x707u);
  EXPECT_EQ(i.right, 0x708u);
  EXPECT_EQ(i.disposition, Disposition::kMakeSend);
}

TEST(CodecDecode, ExtractRight) {
  auto d = decode([](auto r) {
    auto e = r.initExtractRight();
    e.setName(0x809);
    e.setDisposition(16);
  });
  const auto& e = body_as<req::ExtractRight>(d);
  EXPECT_EQ(e.name, 0x809u);
  EXPECT_EQ(e.disposition, Disposition::kMoveReceive);
}

TEST(CodecDecode, GetRefs) {
  auto d = decode([](auto r) {
    auto g = r.initGetRefs();
    g.setName(0x90a);
    g.setRight(2);
  });
  const auto& g = body_as<req::GetRefs>(d);
  EXPECT_EQ(g.name, 0x90au);
  EXPECT_EQ(g.right, Right::kSendOnce);
}

TEST(CodecDecode, TypeNamesAndAttributes) {
  EXPECT_EQ(body_as<req::Type>(decode([](auto r) { r.initType().setName(0xa0b); })).name, 0xa0bu);
  body_as<req::Names>(decode([](auto r) { r.setNames(); }));
  EXPECT_EQ(body_as<req::GetAttributes>(decode([](auto r) {
              r.initGetAttributes().setName(0xb0c);
            })).name,
            0xb0cu);
  auto d = decode([](auto r) {
    auto s = r.initSetAttributes();
    s.setName(0xc0d);
    s.setQlimit(1024);
  });
  const auto& s = body_as<req::SetAttributes>(d);
  EXPECT_EQ(s.name, 0xc0du);
  EXPECT_EQ(s.qlimit, 1024u);
}

TEST(CodecDecode, MoveMember) {
  auto d = decode([](auto r) {
    auto m = r.initMoveMember();
    m.setMember(0xd0e);
    m.setAfter(0xe0f);
  });
  const auto& m = body_as<req::MoveMember>(d);
  EXPECT_EQ(m.member, 0xd0eu);
  EXPECT_EQ(m.after, 0xe0fu);
}

TEST(CodecDecode, RequestNotification) {
  auto d = decode([](auto r) {
    auto n = r.initRequestNotification();
    n.setName(0x111);
    n.setVariant(70);
    n.setSync(3);
    n.setNotify(0x222);
    n.setNotifyDisposition(18);
  });
  const auto& n = body_as<req::RequestNotification>(d);
  EXPECT_EQ(n.name, 0x111u);
  EXPECT_EQ(n.variant, ipc::Notify::kNoSenders);
  EXPECT_EQ(n.sync, 3u);
  EXPECT_EQ(n.notify, 0x222u);
  EXPECT_EQ(n.notify_disposition, Disposition::kMoveSendOnce);
}

TEST(CodecDecode, RequestNotificationDefaultsToMakeSendOnce) {
  auto d = decode([](auto r) {
    auto n = r.initRequestNotification();
    n.setName(0x111);
    n.setVariant(72);
    n.setNotify(0x222);
  });
  const auto& n = body_as<req::RequestNotification>(d);
  EXPECT_EQ(n.variant, ipc::Notify::kDeadName);
  EXPECT_EQ(n.notify_disposition, Disposition::kMakeSendOnce);
}

TEST(CodecDecode, CancellingANotificationIgnoresTheDisposition) {
  auto d = decode([](auto r) {
    auto n = r.initRequestNotification();
    n.setName(0x111);
    n.setVariant(69);
    n.setNotify(0);
    n.setNotifyDisposition(99);
  });
  const auto& n = body_as<req::RequestNotification>(d);
  EXPECT_EQ(n.variant, ipc::Notify::kPortDestroyed);
  EXPECT_EQ(n.notify, 0u);
}

TEST(CodecDecode, Send) {
  auto d = decode([](auto r) {
    r.setFdCount(1);
    auto s = r.initSend();
    fill_message(s.initMessage());
    auto o = s.initOptions();
    o.setTimeoutMs(250);
    o.setCache(true);
    o.setNotify(0x333);
    o.setNotifyDisposition(21);
    o.setThread(0xdeadbeef);
  });
  EXPECT_EQ(d.fd_count, 1u);
  const auto& s = body_as<req::Send>(d);
  expect_message(s.message);
  EXPECT_EQ(s.options.timeout_ms, 250);
  EXPECT_TRUE(s.options.cache);
  EXPECT_EQ(s.options.notify, 0x333u);
  EXPECT_EQ(s.options.notify_disposition, Disposition::kMakeSendOnce);
  EXPECT_EQ(s.options.thread, 0xdeadbeefu);
}

TEST(CodecDecode, SendOptionsDefaultToWaitingForever) {
  auto d = decode([](auto r) {
    auto m = r.initSend().initMessage();
    m.setRemote(0x103);
    m.setRemoteDisposition(19);
  });
  const auto& s = body_as<req::Send>(d);
  EXPECT_EQ(s.options.timeout_ms, -1);
  EXPECT_FALSE(s.options.cache);
  EXPECT_EQ(s.message.local, 0u);
  EXPECT_EQ(s.message.local_disposition, Disposition::kNone);
  EXPECT_TRUE(s.message.body.empty());
  EXPECT_TRUE(s.message.descriptors.empty());
}

TEST(CodecDecode, Receive) {
  auto d = decode([](auto r) {
    auto o = r.initReceive();
    o.setName(0x444);
    o.setTimeoutMs(0);
    o.setMaxSize(4096);
    o.setLarge(true);
    o.setTrailerSize(52);
  });
  const auto& o = body_as<req::Receive>(d).options;
  EXPECT_EQ(o.name, 0x444u);
  EXPECT_EQ(o.timeout_ms, 0);
  EXPECT_EQ(o.max_size, 4096u);
  EXPECT_TRUE(o.large);
  EXPECT_EQ(o.trailer_size, 52u);
}

TEST(CodecDecode, ReceiveTimeoutDefaultsToForever) {
  auto d = decode([](auto r) { r.initReceive().setName(0x444); });
  EXPECT_EQ(body_as<req::Receive>(d).options.timeout_ms, -1);
}

TEST(CodecDecode, SendReceive) {
  auto d = decode([](auto r) {
    r.setFdCount(1);
    auto s = r.initSendReceive();
    fill_message(s.initMessage());
    s.initSendOptions().setTimeoutMs(10);
    auto o = s.initReceiveOptions();
    o.setName(0x555);
    o.setTimeoutMs(20);
  });
  const auto& s = body_as<req::SendReceive>(d);
  expect_message(s.message);
  EXPECT_EQ(s.send.timeout_ms, 10);
  EXPECT_FALSE(s.send.cache);
  EXPECT_EQ(s.receive.name, 0x555u);
  EXPECT_EQ(s.receive.timeout_ms, 20);
}

TEST(CodecDecode, Bootstrap) {
  EXPECT_EQ(body_as<req::BootstrapCheckIn>(decode([](auto r) {
              r.initBootstrapCheckIn().setName("com.example.a");
            })).name,
            "com.example.a");
  {
    auto d = decode([](auto r) {
      auto b = r.initBootstrapRegister();
      b.setName("com.example.b");
      b.setPort(0x666);
    });
    const auto& b = body_as<req::BootstrapRegister>(d);
    EXPECT_EQ(b.name, "com.example.b");
    EXPECT_EQ(b.port, 0x666u);
  }
  {
    auto d = decode([](auto r) { r.initBootstrapLookUp().setName("com.example.c"); });
    const auto& b = body_as<req::BootstrapLookUp>(d);
    EXPECT_EQ(b.name, "com.example.c");
    EXPECT_EQ(b.timeout_ms, 0);  // the schema's default: answer at once
  }
  {
    auto d = decode([](auto r) {
      auto b = r.initBootstrapLookUp();
      b.setName("com.example.c");
      b.setTimeoutMs(-1);
    });
    EXPECT_EQ(body_as<req::BootstrapLookUp>(d).timeout_ms, -1);
  }
  EXPECT_EQ(body_as<req::BootstrapUnregister>(decode([](auto r) {
              r.initBootstrapUnregister().setName("com.example.d");
            })).name,
            "com.example.d");
  body_as<req::BootstrapList>(decode([](auto r) { r.setBootstrapList(); }));
}

TEST(CodecDecode, BootstrapNameOfMaximumLength) {
  const std::string name(kBootstrapNameMax, 'n');
  auto d = decode([&](auto r) { r.initBootstrapCheckIn().setName(name); });
  EXPECT_EQ(body_as<req::BootstrapCheckIn>(d).name, name);
}

// ---------------------------------------------------------------------------
// Refusals

TEST(CodecRefuse, RequestIdZero) {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setNames();
  auto d = decode_request(message.getRoot<wire::Request>().asReader(), {});
  EXPECT_EQ(d.refusal.status, Status::kInvalidArgument);
  EXPECT_EQ(d.id, 0u);
}

TEST(CodecRefuse, FdsWithARequestThatTakesNone) {
  expect_refused(decode([](auto r) {
                   r.setFdCount(1);
                   r.initAllocate().setRight(1);
                 }),
                 Status::kInvalidArgument);
}

TEST(CodecRefuse, UnknownRightNumber) {
  expect_refused(decode([](auto r) { r.initAllocate().setRight(5); }), Status::kInvalidValue);
  expect_refused(decode([](auto r) { r.initModRefs().setRight(0xffffffff); }),
                 Status::kInvalidValue);
  expect_refused(decode([](auto r) { r.initGetRefs().setRight(7); }), Status::kInvalidValue);
}

TEST(CodecRefuse, BadDispositionForInsertAndExtract) {
  for (uint8_t bad : {0, 15, 22, 255}) {
    expect_refused(decode([&](auto r) { r.initInsertRight().setDisposition(bad); }),
                   Status::kInvalidValue);
    expect_refused(decode([&](auto r) { r.initExtractRight().setDisposition(bad); }),
                   Status::kInvalidValue);
  }
}

TEST(CodecRefuse, QueueLimitOverTheMaximum) {
  expect_refused(decode([](auto r) { r.initSetAttributes().setQlimit(1025); }),
                 Status::kInvalidValue);
}

TEST(CodecRefuse, UnknownNotificationVariant) {
  for (int32_t bad : {0, 65, 66, 71, 73, -70}) {
    expect_refused(decode([&](auto r) {
                     auto n = r.initRequestNotification();
                     n.setVariant(bad);
                     n.setNotify(0x222);
                   }),
                   Status::kInvalidValue);
  }
}

TEST(CodecRefuse, NotificationRightMustBeSendOnce) {
  expect_refused(decode([](auto r) {
                   auto n = r.initRequestNotification();
                   n.setVariant(72);
                   n.setNotify(0x222);
                   n.setNotifyDisposition(20);  // MAKE_SEND
                 }),
                 Status::kInvalidValue);
}

TEST(CodecRefuse, DestinationDispositionMustBeASendKind) {
  for (uint8_t bad : {0, 16, 22, 100}) {
    expect_refused(decode([&](auto r) {
                     auto m = r.initSend().initMessage();
                     m.setRemote(0x103);
                     m.setRemoteDisposition(bad);
                   }),
                   Status::kSendInvalidHeader);
  }
}

TEST(CodecRefuse, ReplyPortDisposition) {
  // A reply name without a disposition, and MOVE_RECEIVE as a reply.
  expect_refused(decode([](auto r) {
                   auto m = r.initSend().initMessage();
                   m.setRemote(0x103);
                   m.setRemoteDisposition(19);
                   m.setLocal(0x207);
                 }),
                 Status::kSendInvalidHeader);
  expect_refused(decode([](auto r) {
                   auto m = r.initSend().initMessage();
                   m.setRemote(0x103);
                   m.setRemoteDisposition(19);
                   m.setLocal(0x207);
                   m.setLocalDisposition(16);
                 }),
                 Status::kSendInvalidHeader);
}

TEST(CodecRefuse, BodyOverTheInlineLimit) {
  ipc::Limits limits;
  limits.max_inline_body = 16;
  auto with_body = [&](size_t n) {
    return decode(
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(0x103);
          m.setRemoteDisposition(19);
          m.initBody(static_cast<unsigned>(n));
        },
        limits);
  };
  EXPECT_EQ(body_as<req::Send>(with_body(16)).message.body.size(), 16u);
  expect_refused(with_body(17), Status::kSendTooLarge, Limit::kMessageBytes);
}

TEST(CodecRefuse, TooManyDescriptors) {
  ipc::Limits limits;
  limits.max_descriptors = 4;
  auto with_ports = [&](unsigned n) {
    return decode(
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(0x103);
          m.setRemoteDisposition(19);
          auto ds = m.initDescriptors(n);
          for (unsigned i = 0; i < n; ++i) ds[i].initPort().setDisposition(19);
        },
        limits);
  };
  EXPECT_EQ(body_as<req::Send>(with_ports(4)).message.descriptors.size(), 4u);
  expect_refused(with_ports(5), Status::kSendTooLarge, Limit::kMessageDescriptors);
}

TEST(CodecRefuse, TooManyPortsInOutOfLineArrays) {
  ipc::Limits limits;
  limits.max_descriptors = 10;
  auto with_array = [&](unsigned n) {
    return decode(
        [&](auto r) {
          auto m = r.initSend().initMessage();
          m.setRemote(0x103);
          m.setRemoteDisposition(19);
          auto p = m.initDescriptors(1)[0].initOolPorts();
          p.setDisposition(19);
          p.initNames(n);
        },
        limits);
  };
  EXPECT_EQ(body_as<req::Send>(with_array(9)).message.descriptors.size(), 1u);
  expect_refused(with_array(10), Status::kSendTooLarge, Limit::kMessageDescriptors);
}

TEST(CodecRefuse, BadDescriptorDisposition) {
  expect_refused(decode([](auto r) {
                   auto m = r.initSend().initMessage();
                   m.setRemote(0x103);
                   m.setRemoteDisposition(19);
                   m.initDescriptors(1)[0].initPort().setDisposition(22);
                 }),
                 Status::kSendInvalidType);
  expect_refused(decode([](auto r) {
                   auto m = r.initSend().initMessage();
                   m.setRemote(0x103);
                   m.setRemoteDisposition(19);
                   m.initDescriptors(1)[0].initOolPorts().setDisposition(0);
                 }),
                 Status::kSendInvalidType);
}

TEST(CodecRefuse, FdCountMustMatchTheOutOfLineDescriptors) {
  auto with = [](uint16_t fds, unsigned ools) {
    return decode([&](auto r) {
      r.setFdCount(fds);
      auto m = r.initSendReceive().initMessage();
      m.setRemote(0x103);
      m.setRemoteDisposition(19);
      auto ds = m.initDescriptors(ools);
      for (unsigned i = 0; i < ools; ++i) ds[i].initOol().setSize(10);
    });
  };
  EXPECT_EQ(body_as<req::SendReceive>(with(2, 2)).message.descriptors.size(), 2u);
  expect_refused(with(1, 2), Status::kSendInvalidMemory);
  expect_refused(with(3, 2), Status::kSendInvalidMemory);
  expect_refused(with(1, 0), Status::kSendInvalidMemory);
}

TEST(CodecRefuse, ReleaseSignalsTakeASecondFdAndOnlyComeWithVolatileRegions) {
  // Region 0: volatile with a release signal (2 fds); region 1: a body (1 fd).
  auto with = [](uint16_t fds, bool is_volatile) {
    return decode([&](auto r) {
      r.setFdCount(fds);
      auto m = r.initSend().initMessage();
      m.setRemote(0x103);
      m.setRemoteDisposition(19);
      auto ds = m.initDescriptors(2);
      auto o = ds[0].initOol();
      o.setSize(10);
      o.setVolatile(is_volatile);
      o.setReleaseSignal(true);
      auto b = ds[1].initOol();
      b.setSize(99);
      b.setBody(true);
    });
  };
  const DecodedRequest decoded = with(3, true);
  const auto& send = body_as<req::Send>(decoded);
  ASSERT_EQ(send.message.descriptors.size(), 2u);
  const auto& region = std::get<ipc::OolIn>(send.message.descriptors[0]);
  EXPECT_TRUE(region.release_signal);
  EXPECT_FALSE(region.is_body);
  EXPECT_EQ(region.fds(), 2u);
  const auto& body = std::get<ipc::OolIn>(send.message.descriptors[1]);
  EXPECT_TRUE(body.is_body);
  EXPECT_FALSE(body.release_signal);
  EXPECT_EQ(ool_fd_count(send.message), 3u);
  expect_refused(with(2, true), Status::kSendInvalidMemory);
  expect_refused(with(3, false), Status::kSendInvalidMemory);  // a sealed region has no pool
}

TEST(CodecRefuse, CacheNotifyDisposition) {
  for (uint8_t bad : {18, 19, 16, 255}) {
    expect_refused(decode([&](auto r) {
                     auto s = r.initSend();
                     auto m = s.initMessage();
                     m.setRemote(0x103);
                     m.setRemoteDisposition(19);
                     auto o = s.initOptions();
                     o.setCache(true);
                     o.setNotify(0x333);
                     o.setNotifyDisposition(bad);
                   }),
                   Status::kSendInvalidNotify);
  }
}

TEST(CodecRefuse, BootstrapNames) {
  const std::string too_long(kBootstrapNameMax + 1, 'n');
  expect_refused(decode([](auto r) { r.initBootstrapCheckIn().setName(""); }),
                 Status::kInvalidArgument);
  expect_refused(decode([&](auto r) { r.initBootstrapRegister().setName(too_long); }),
                 Status::kInvalidArgument);
  expect_refused(
      decode([](auto r) { r.initBootstrapLookUp().setName(capnp::Text::Reader("a\0b", 3)); }),
      Status::kInvalidArgument);
  expect_refused(decode([](auto r) { r.initBootstrapUnregister(); }), Status::kInvalidArgument);
}

// Finds the byte of a frame where two requests that differ only in their
// union variant differ: the discriminant.
size_t discriminant_offset() {
  capnp::MallocMessageBuilder a, b;
  auto ra = a.initRoot<wire::Request>();
  ra.setId(kId);
  ra.setNames();
  auto rb = b.initRoot<wire::Request>();
  rb.setId(kId);
  rb.setBootstrapList();
  auto fa = proto::encode_frame(a);
  auto fb = proto::encode_frame(b);
  EXPECT_EQ(fa.size(), fb.size());
  for (size_t i = 0; i < fa.size(); ++i)
    if (fa[i] != fb[i]) return i;
  ADD_FAILURE() << "no discriminant found";
  return 0;
}

TEST(CodecDecode, SendBatchDecodesEachMessageAndRefusesOnlyTheBadOnes) {
  const auto d = decode([](auto r) {
    r.setFdCount(3);
    auto b = r.initSendBatch();
    auto list = b.initMessages(3);
    for (unsigned i = 0; i < 3; ++i) {
      list[i].setRemote(0x100 + i);
      list[i].setRemoteDisposition(i == 1 ? 3 : 19);  // message 1: no send kind
      list[i].setId(static_cast<int32_t>(i));
    }
    auto o = list[1].initDescriptors(1)[0].initOol();
    o.setSize(10);
    o.setVolatile(true);
    o.setReleaseSignal(true);
    list[2].initDescriptors(1)[0].initOol().setSize(20);
    b.initOptions().setTimeoutMs(5);
  });
  EXPECT_TRUE(d.carries_message);
  const auto& r = body_as<req::SendBatch>(d);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.options.timeout_ms, 5);
  EXPECT_EQ(r.refusals[0].status, Status::kSuccess);
  EXPECT_EQ(r.refusals[1].status, Status::kSendInvalidHeader);
  EXPECT_EQ(r.refusals[2].status, Status::kSuccess);
  // The refused message still owns its two fds; the last one takes the third.
  EXPECT_EQ(r.fd_counts, (std::vector<uint16_t>{0, 2, 1}));
  EXPECT_EQ(r.messages[0].remote, 0x100u);
  EXPECT_EQ(r.messages[2].id, 2);
  EXPECT_EQ(ool_fd_count(r.messages[2]), 1u);
}

TEST(CodecRefuse, SendBatchOverTheBatchLimitOrWithAWrongFdCount) {
  ipc::Limits limits;
  limits.max_batch = 4;
  const auto batch = [](unsigned n, uint16_t fds) {
    return [=](wire::Request::Builder r) {
      r.setFdCount(fds);
      auto list = r.initSendBatch().initMessages(n);
      for (unsigned i = 0; i < n; ++i) {
        list[i].setRemote(0x100);
        list[i].setRemoteDisposition(19);
      }
      if (n != 0) list[0].initDescriptors(1)[0].initOol().setSize(1);
    };
  };
  EXPECT_EQ(body_as<req::SendBatch>(decode(batch(4, 1), limits)).messages.size(), 4u);
  expect_refused(decode(batch(5, 1), limits), Status::kInvalidArgument, Limit::kBatchMessages);
  expect_refused(decode(batch(4, 0), limits), Status::kSendInvalidMemory);
  expect_refused(decode(batch(4, 2), limits), Status::kSendInvalidMemory);
}

TEST(CodecDecode, ReceiveBatchAndItsLimits) {
  ipc::Limits limits;
  limits.max_batch = 4;
  const auto batch = [](uint32_t max) {
    return [=](wire::Request::Builder r) {
      auto b = r.initReceiveBatch();
      b.initOptions().setName(0x200);
      b.getOptions().setMaxSize(300);
      b.setMax(max);
    };
  };
  const DecodedRequest d = decode(batch(4), limits);
  const auto& r = body_as<req::ReceiveBatch>(d);
  EXPECT_EQ(r.max, 4u);
  EXPECT_EQ(r.options.name, 0x200u);
  EXPECT_EQ(r.options.max_size, 300u);
  EXPECT_EQ(r.options.timeout_ms, -1);
  expect_refused(decode(batch(0), limits), Status::kInvalidArgument);
  expect_refused(decode(batch(5), limits), Status::kInvalidArgument, Limit::kBatchMessages);
  // No fds with a receive.
  expect_refused(decode(
                     [&](auto r) {
                       batch(1)(r);
                       r.setFdCount(1);
                     },
                     limits),
                 Status::kInvalidArgument);
}

TEST(CodecRefuse, UnknownRequestKind) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(kId);
  r.setNames();
  auto bytes = proto::encode_frame(message);
  bytes[discriminant_offset()] = static_cast<char>(200);  // a variant from the future
  proto::FrameReader reader;
  ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
  ASSERT_EQ(reader.next(), proto::FrameReader::Next::kFrame);
  expect_refused(decode_request(reader.frame().getRoot<wire::Request>(), {}),
                 Status::kNotSupported);
}

TEST(CodecRefuse, MalformedPointerThrows) {
  // A hello request whose hello pointer points far outside the segment:
  // decoding throws kj::Exception, which the connection turns into a
  // protocol violation.
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(kId);
  r.initHello().setCommand("x");
  auto bytes = proto::encode_frame(message);
  // Frame: 8-byte table, then the segment: root pointer, root data, pointers.
  uint64_t root;
  std::memcpy(&root, bytes.data() + 8, 8);
  const uint32_t data_words = static_cast<uint32_t>((root >> 32) & 0xffff);
  const size_t hello_ptr = 8 + 8 + 8 * data_words;  // pointer 0 of the root
  const uint32_t far = 0x1fffff00u << 2;            // struct pointer, huge offset
  std::memcpy(bytes.data() + hello_ptr, &far, 4);
  proto::FrameReader reader;
  ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
  ASSERT_EQ(reader.next(), proto::FrameReader::Next::kFrame);
  EXPECT_THROW(decode_request(reader.frame().getRoot<wire::Request>(), {}), kj::Exception);
}

// ---------------------------------------------------------------------------
// Encoding

TEST(CodecEncode, ReplyHeaderNamesTheLimit) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, 55, Status::kSendNoBuffer, Limit::kQueuedBytes);
  auto r = reply.asReader();
  EXPECT_EQ(r.getId(), 55u);
  EXPECT_EQ(r.getStatus(), 0x1000000d);
  EXPECT_EQ(std::string(r.getLimit().cStr()), "queued_bytes");
  EXPECT_EQ(r.which(), wire::Reply::NONE);
}

TEST(CodecEncode, ReplyHeaderWithoutLimitLeavesItEmpty) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, 1, Status::kSuccess);
  EXPECT_FALSE(reply.asReader().hasLimit());
}

TEST(CodecEncode, Message) {
  ipc::MessageOut m;
  m.remote = 0x1105;
  m.remote_type = RightType::kSendOnce;
  m.local = 0x2203;
  m.local_type = RightType::kSend;
  m.id = 1000;
  m.body = {9, 8, 7, 6};
  m.descriptors.push_back(ipc::PortDescOut{0x3301, RightType::kReceive});
  m.descriptors.push_back(ipc::OolOut{77, 4096, false, true});
  m.descriptors.push_back(ipc::OolPortsOut{{0x4401, ipc::kNameDead}, RightType::kSend});
  m.descriptors.push_back(ipc::OolOut{78, 100, true, false, /*release_signal=*/true});
  m.descriptors.push_back(ipc::OolOut{79, 70000, false, false, false, /*is_body=*/true});
  m.trailer = ipc::Trailer{12, 4321, 1000, 100, 9};

  capnp::MallocMessageBuilder message;
  encode_message(m, message.initRoot<wire::InMessage>());
  // Read back through framing, as a client would.
  auto bytes = proto::encode_frame(message);
  proto::FrameReader reader;
  ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
  ASSERT_EQ(reader.next(), proto::FrameReader::Next::kFrame);
  auto in = reader.frame().getRoot<wire::InMessage>();

  EXPECT_EQ(in.getRemote(), 0x1105u);
  EXPECT_EQ(in.getRemoteType(), 18);
  EXPECT_EQ(in.getLocal(), 0x2203u);
  EXPECT_EQ(in.getLocalType(), 17);
  EXPECT_EQ(in.getId(), 1000);
  auto body = in.getBody();
  EXPECT_EQ(std::vector<uint8_t>(body.begin(), body.end()), (std::vector<uint8_t>{9, 8, 7, 6}));
  auto ds = in.getDescriptors();
  ASSERT_EQ(ds.size(), 5u);
  EXPECT_FALSE(ds[1].getOol().getReleaseSignal());
  EXPECT_FALSE(ds[1].getOol().getBody());
  EXPECT_TRUE(ds[3].getOol().getVolatile());
  EXPECT_TRUE(ds[3].getOol().getReleaseSignal());
  EXPECT_FALSE(ds[3].getOol().getBody());
  EXPECT_EQ(ds[4].getOol().getSize(), 70000u);
  EXPECT_TRUE(ds[4].getOol().getBody());
  EXPECT_FALSE(ds[4].getOol().getReleaseSignal());
  ASSERT_EQ(ds[0].which(), wire::OutDescriptor::PORT);
  EXPECT_EQ(ds[0].getPort().getName(), 0x3301u);
  EXPECT_EQ(ds[0].getPort().getDisposition(), 16);
  ASSERT_EQ(ds[1].which(), wire::OutDescriptor::OOL);
  EXPECT_EQ(ds[1].getOol().getSize(), 4096u);
  EXPECT_FALSE(ds[1].getOol().getVolatile());
  EXPECT_TRUE(ds[1].getOol().getDeallocate());
  ASSERT_EQ(ds[2].which(), wire::OutDescriptor::OOL_PORTS);
  EXPECT_EQ(ds[2].getOolPorts().getDisposition(), 17);
  auto names = ds[2].getOolPorts().getNames();
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0], 0x4401u);
  EXPECT_EQ(names[1], 0xffffffffu);
  auto t = in.getTrailer();
  EXPECT_EQ(t.getSeqno(), 12u);
  EXPECT_EQ(t.getSenderPid(), 4321u);
  EXPECT_EQ(t.getSenderUid(), 1000u);
  EXPECT_EQ(t.getSenderGid(), 100u);
  EXPECT_EQ(t.getSenderTask(), 9u);
}

TEST(CodecEncode, EmptyMessageHasNoDescriptors) {
  ipc::MessageOut m;
  m.local = 0x103;
  capnp::MallocMessageBuilder message;
  encode_message(m, message.initRoot<wire::InMessage>());
  auto in = message.getRoot<wire::InMessage>().asReader();
  EXPECT_EQ(in.getLocal(), 0x103u);
  EXPECT_EQ(in.getBody().size(), 0u);
  EXPECT_EQ(in.getDescriptors().size(), 0u);
  EXPECT_EQ(in.getTrailer().getSenderTask(), 0u);
}

TEST(CodecEncode, PortStatus) {
  ipc::PortStatus s{0x505, 3, 2, 5, 4, 1, true, false, true, 0x10};
  capnp::MallocMessageBuilder message;
  encode_port_status(s, message.initRoot<wire::PortStatus>());
  auto r = message.getRoot<wire::PortStatus>().asReader();
  EXPECT_EQ(r.getPset(), 0x505u);
  EXPECT_EQ(r.getSeqno(), 3u);
  EXPECT_EQ(r.getMscount(), 2u);
  EXPECT_EQ(r.getQlimit(), 5u);
  EXPECT_EQ(r.getMsgcount(), 4u);
  EXPECT_EQ(r.getSorights(), 1u);
  EXPECT_TRUE(r.getSrights());
  EXPECT_FALSE(r.getPdrequest());
  EXPECT_TRUE(r.getNsrequest());
  EXPECT_EQ(r.getFlags(), 0x10u);
}

TEST(CodecEncode, NamesAndBootstrapList) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::Reply>();
  encode_names({{0x103, ipc::kTypeReceive | ipc::kTypeSend}, {0x207, ipc::kTypeDeadName}}, reply);
  auto names = reply.asReader().getNames();
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].getName(), 0x103u);
  EXPECT_EQ(names[0].getType(), 0x30000u);
  EXPECT_EQ(names[1].getName(), 0x207u);
  EXPECT_EQ(names[1].getType(), 0x100000u);

  capnp::MallocMessageBuilder message2;
  auto reply2 = message2.initRoot<wire::Reply>();
  encode_bootstrap_list({{"com.example.svc", 1000, 42, 7, 1700000000000}}, reply2);
  auto list = reply2.asReader().getBootstrapList();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(std::string(list[0].getName().cStr()), "com.example.svc");
  EXPECT_EQ(list[0].getUid(), 1000u);
  EXPECT_EQ(list[0].getPid(), 42u);
  EXPECT_EQ(list[0].getPort(), 7u);
  EXPECT_EQ(list[0].getSinceUnixMs(), 1700000000000);
}

}  // namespace
}  // namespace portd::server
