#include "tests/fuzz/seeds.h"

#include <capnp/message.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "daemon/ipc/types.h"
#include "portd/portd.capnp.h"
#include "portd/proto/frame.h"
#include "tests/fuzz/harness.h"

namespace portd::fuzz {

namespace {

using Fill = std::function<void(wire::Request::Builder)>;

constexpr uint8_t kMoveReceive = 16;
constexpr uint8_t kMoveSend = 17;
constexpr uint8_t kMoveSendOnce = 18;
constexpr uint8_t kCopySend = 19;
constexpr uint8_t kMakeSend = 20;
constexpr uint8_t kMakeSendOnce = 21;
constexpr uint32_t kRightSend = 0;
constexpr uint32_t kRightReceive = 1;
constexpr uint32_t kRightPortSet = 3;
constexpr uint32_t kRightDeadName = 4;

std::string frame_of(const Fill& fill, uint64_t id) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(id);
  fill(r);
  auto bytes = proto::encode_frame(message);
  return std::string(bytes.begin(), bytes.end());
}

// A stream of requests; each one's id says which task sends it (id & 3) and,
// in its top byte, which of its fds are to be of the wrong kind.
class Stream {
 public:
  Stream& add(size_t slot, const Fill& fill, uint8_t wrong_fds = 0) {
    const uint64_t id = (next_++ << 2) | slot | (uint64_t{wrong_fds} << 56);
    std::string f = frame_of(fill, id);
    frames_.push_back(f);
    bytes_ += f;
    return *this;
  }
  Stream& raw(const std::string& bytes) {
    frames_.push_back(bytes);
    bytes_ += bytes;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }
  const std::vector<std::string>& frames() const { return frames_; }

 private:
  uint64_t next_ = 1;
  std::string bytes_;
  std::vector<std::string> frames_;
};

kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

Fill hello() {
  return [](auto r) {
    auto h = r.initHello();
    h.setVersion(wire::PROTOCOL_VERSION);
    h.setCommand("fuzz-seed");
  };
}

Fill allocate(uint32_t right) {
  return [=](auto r) { r.initAllocate().setRight(right); };
}

Fill send_text(uint32_t remote, uint8_t remote_disposition, const std::string& text,
               uint32_t local = 0, uint8_t local_disposition = 0, int64_t timeout_ms = 0) {
  return [=](auto r) {
    auto s = r.initSend();
    auto m = s.initMessage();
    m.setRemote(remote);
    m.setRemoteDisposition(remote_disposition);
    m.setLocal(local);
    m.setLocalDisposition(local_disposition);
    m.setId(1000);
    m.setBody(bytes_of(text));
    s.initOptions().setTimeoutMs(timeout_ms);
  };
}

Fill receive(uint32_t name, int64_t timeout_ms, uint32_t max_size = 0, bool large = false) {
  return [=](auto r) {
    auto o = r.initReceive();
    o.setName(name);
    o.setTimeoutMs(timeout_ms);
    o.setMaxSize(max_size);
    o.setLarge(large);
  };
}

Fill name_only(uint32_t name, wire::NameOnly::Builder (wire::Request::Builder::*init)()) {
  return [=](wire::Request::Builder r) { (r.*init)().setName(name); };
}

Fill introspect(wire::IntrospectWhat what, uint64_t target = 0, const std::string& cursor = "") {
  return [=](auto r) {
    auto i = r.initIntrospect();
    i.setWhat(what);
    i.setTarget(target);
    i.setCursor(cursor);
    i.setLimit(2);
  };
}

Corpus make_request_seeds() {
  const RequestWorld w = request_world();
  Corpus c;

  c["seed-hello"] = Stream().add(0, hello()).bytes();

  {
    Stream s;
    for (size_t slot = 0; slot < 4; ++slot)
      for (uint32_t right : {kRightSend, kRightReceive, 2u, kRightPortSet, kRightDeadName, 9u})
        s.add(slot, allocate(right));
    c["seed-allocate"] = s.bytes();
  }

  {
    // Every port operation on task 2's names.
    Stream s;
    s.add(1, name_only(w.port1, &wire::Request::Builder::initType));
    s.add(1, [&](auto r) { r.setNames(); });
    s.add(1, name_only(w.port1, &wire::Request::Builder::initGetAttributes));
    s.add(1, [&](auto r) {
      auto a = r.initSetAttributes();
      a.setName(w.port1);
      a.setQlimit(1);
    });
    s.add(1, [&](auto r) {
      auto i = r.initInsertRight();
      i.setName(w.port1);
      i.setRight(w.port1);
      i.setDisposition(kMakeSend);
    });
    s.add(1, [&](auto r) {
      auto g = r.initGetRefs();
      g.setName(w.port1);
      g.setRight(kRightSend);
    });
    s.add(1, [&](auto r) {
      auto m = r.initModRefs();
      m.setName(w.port1);
      m.setRight(kRightSend);
      m.setDelta(2);
    });
    s.add(1, [&](auto r) {
      auto e = r.initExtractRight();
      e.setName(w.port1);
      e.setDisposition(kMakeSendOnce);
    });
    s.add(1, [&](auto r) {
      auto e = r.initExtractRight();
      e.setName(w.port1);
      e.setDisposition(kCopySend);
    });
    s.add(1, [&](auto r) {
      auto m = r.initMoveMember();
      m.setMember(w.port1);
      m.setAfter(0);
    });
    s.add(1, [&](auto r) {
      auto m = r.initMoveMember();
      m.setMember(w.port1);
      m.setAfter(w.set1);
    });
    s.add(1, name_only(w.service1, &wire::Request::Builder::initDeallocate));
    s.add(1, name_only(w.set1, &wire::Request::Builder::initDestroy));
    s.add(1, name_only(w.port1, &wire::Request::Builder::initDestroy));
    s.add(1, [&](auto r) {
      auto m = r.initModRefs();
      m.setName(w.port1);
      m.setRight(kRightDeadName);
      m.setDelta(-1);
    });
    s.add(3, name_only(w.dead3, &wire::Request::Builder::initType));
    s.add(3, [&](auto r) {
      auto m = r.initModRefs();
      m.setName(w.dead3);
      m.setRight(kRightDeadName);
      m.setDelta(-1);
    });
    c["seed-port-ops"] = s.bytes();
  }

  {
    Stream s;
    for (int32_t variant : {69, 70, 72, 66}) {
      s.add(0, [&](auto r) {
        auto n = r.initRequestNotification();
        n.setName(w.port0);
        n.setVariant(variant);
        n.setNotify(w.port0);
        n.setNotifyDisposition(kMakeSendOnce);
      });
    }
    s.add(1, [&](auto r) {
      auto n = r.initRequestNotification();
      n.setName(w.service1);
      n.setVariant(72);
      n.setNotify(0);
    });
    // Killing the service: task 2's dead-name request fires.
    s.add(0, name_only(w.service0, &wire::Request::Builder::initDestroy));
    s.add(1, receive(w.set1, 0));
    s.add(1, name_only(w.service1, &wire::Request::Builder::initType));
    c["seed-notifications"] = s.bytes();
  }

  {
    // A request and its reply through the service; the queued "hello" first.
    Stream s;
    s.add(1, send_text(w.service1, kCopySend, "ping", w.port1, kMakeSendOnce));
    s.add(0, receive(w.service0, 0));
    s.add(0, receive(w.service0, 0));
    s.add(0, receive(w.service0, 0));
    s.add(1, receive(w.set1, 0));
    s.add(1, [&](auto r) {
      auto sr = r.initSendReceive();
      auto m = sr.initMessage();
      m.setRemote(w.service1);
      m.setRemoteDisposition(kCopySend);
      m.setLocal(w.port1);
      m.setLocalDisposition(kMakeSendOnce);
      m.setBody(bytes_of("rpc"));
      sr.initSendOptions().setTimeoutMs(0);
      auto o = sr.initReceiveOptions();
      o.setName(w.port1);
      o.setTimeoutMs(-1);
    });
    s.add(0, receive(w.service0, 0, 24, true));
    s.add(0, receive(w.service0, 0, 24, false));
    c["seed-messaging"] = s.bytes();
  }

  {
    // Every descriptor kind, with the fds they take: a region, a volatile
    // region with a release signal, an out-of-line body.
    Stream s;
    s.add(2, [&](auto r) {
      r.setFdCount(4);
      auto sr = r.initSend();
      auto m = sr.initMessage();
      m.setRemote(w.service2);
      m.setRemoteDisposition(kCopySend);
      m.setLocal(w.port2);
      m.setLocalDisposition(kMakeSend);
      m.setBody(bytes_of("descriptors"));
      auto d = m.initDescriptors(6);
      auto p = d[0].initPort();
      p.setName(w.port2);
      p.setDisposition(kMakeSend);
      auto o = d[1].initOol();
      o.setSize(4096);
      auto v = d[2].initOol();
      v.setSize(100);
      v.setVolatile(true);
      v.setReleaseSignal(true);
      auto ports = d[3].initOolPorts();
      ports.setDisposition(kMakeSend);
      auto names = ports.initNames(2);
      names.set(0, w.port2);
      names.set(1, 0);
      auto b = d[4].initOol();
      b.setSize(70000);
      b.setBody(true);
      auto once = d[5].initPort();
      once.setName(w.port2);
      once.setDisposition(kMakeSendOnce);
      sr.initOptions().setTimeoutMs(0);
    });
    s.add(0, receive(w.service0, 0));
    s.add(0, receive(w.service0, 0));
    // The same with the region fd of the wrong kind.
    s.add(
        2,
        [&](auto r) {
          r.setFdCount(1);
          auto m = r.initSend().initMessage();
          m.setRemote(w.service2);
          m.setRemoteDisposition(kCopySend);
          m.initDescriptors(1)[0].initOol().setSize(64);
        },
        1);
    // fdCount that does not match the descriptors.
    s.add(2, [&](auto r) {
      r.setFdCount(2);
      auto m = r.initSend().initMessage();
      m.setRemote(w.service2);
      m.setRemoteDisposition(kCopySend);
      m.initDescriptors(1)[0].initOol().setSize(64);
    });
    c["seed-descriptors"] = s.bytes();
  }

  {
    // Rights moving between tasks: a receive right, a port set member.
    Stream s;
    s.add(1, [&](auto r) {
      auto m = r.initSend().initMessage();
      m.setRemote(w.service1);
      m.setRemoteDisposition(kCopySend);
      auto d = m.initDescriptors(1)[0].initPort();
      d.setName(w.port1);
      d.setDisposition(kMoveReceive);
    });
    s.add(0, receive(w.service0, 0));
    s.add(0, receive(w.service0, 0));
    s.add(0, [&](auto r) { r.setNames(); });
    s.add(1, name_only(w.port1, &wire::Request::Builder::initType));
    c["seed-move-receive"] = s.bytes();
  }

  {
    // Parked requests: a receive, a full queue, a look-up; a cancel, a
    // duplicate id, a timer.
    Stream s;
    s.add(1, receive(w.port1, -1));
    s.add(1, receive(w.set1, 5000));
    s.add(1, [&](auto r) { r.setCancel(1u << 2 | 1); });
    s.add(1, [&](auto r) { r.setCancel(77); });
    s.add(0, [&](auto r) {
      auto a = r.initSetAttributes();
      a.setName(w.service0);
      a.setQlimit(0);
    });
    s.add(2, send_text(w.service2, kCopySend, "waits", 0, 0, -1));
    s.add(2, [&](auto r) {
      auto sr = r.initSend();
      auto m = sr.initMessage();
      m.setRemote(w.service2);
      m.setRemoteDisposition(kCopySend);
      auto o = sr.initOptions();
      o.setTimeoutMs(0);
      o.setCache(true);
      o.setNotify(w.port2);
      o.setNotifyDisposition(kMakeSendOnce);
    });
    s.add(3, [&](auto r) {
      auto l = r.initBootstrapLookUp();
      l.setName("fuzz.later");
      l.setTimeoutMs(-1);
    });
    s.add(3, [&](auto r) { r.initBootstrapCheckIn().setName("fuzz.later"); });
    s.add(0, receive(w.service0, 0));
    c["seed-parked"] = s.bytes();
  }

  {
    // Timeouts short enough to expire within the run.
    Stream s;
    s.add(1, receive(w.port1, 1));
    s.add(0, [&](auto r) {
      auto a = r.initSetAttributes();
      a.setName(w.service0);
      a.setQlimit(1);
    });
    s.add(2, send_text(w.service2, kCopySend, "full", 0, 0, 2));
    s.add(2, [&](auto r) {
      auto sr = r.initSend();
      auto m = sr.initMessage();
      m.setRemote(w.service2);
      m.setRemoteDisposition(kCopySend);
      auto o = sr.initOptions();
      o.setTimeoutMs(1);
      o.setCache(true);
      o.setNotify(w.port2);
      o.setThread(9);
    });
    s.add(3, [&](auto r) {
      auto l = r.initBootstrapLookUp();
      l.setName("fuzz.never");
      l.setTimeoutMs(1);
    });
    s.add(3, [&](auto r) { r.initMonitorStart(); });
    s.add(3, [&](auto r) { r.initMonitorPoll().setTimeoutMs(1); });
    c["seed-timeouts"] = s.bytes();
  }

  {
    Stream s;
    s.add(3, [&](auto r) { r.initBootstrapCheckIn().setName("fuzz.three"); });
    s.add(3, [&](auto r) { r.initBootstrapCheckIn().setName(RequestWorld::kService); });
    s.add(1, [&](auto r) {
      auto b = r.initBootstrapRegister();
      b.setName("fuzz.registered");
      b.setPort(w.port1);
    });
    s.add(2, [&](auto r) {
      auto l = r.initBootstrapLookUp();
      l.setName("fuzz.registered");
    });
    s.add(2, [&](auto r) { r.initBootstrapUnregister().setName("fuzz.registered"); });
    s.add(1, [&](auto r) { r.initBootstrapUnregister().setName("fuzz.registered"); });
    s.add(0, [&](auto r) { r.setBootstrapList(); });
    s.add(0, [&](auto r) { r.initBootstrapCheckIn().setName(std::string(128, 'x')); });
    s.add(0, [&](auto r) { r.initBootstrapCheckIn().setName(""); });
    c["seed-bootstrap"] = s.bytes();
  }

  {
    Stream s;
    for (size_t slot : {2u, 3u}) {
      s.add(slot, introspect(wire::IntrospectWhat::STATUS));
      s.add(slot, introspect(wire::IntrospectWhat::TASKS));
      s.add(slot, introspect(wire::IntrospectWhat::PORTS));
      s.add(slot, introspect(wire::IntrospectWhat::PORTS, 0, "1"));
      s.add(slot, introspect(wire::IntrospectWhat::PORT, 1));
      s.add(slot, introspect(wire::IntrospectWhat::RIGHTS, 2));
      s.add(slot, introspect(wire::IntrospectWhat::SETS));
      s.add(slot, introspect(wire::IntrospectWhat::NAMES));
    }
    s.add(3, [&](auto r) {
      auto m = r.initMonitorStart();
      m.setBuffer(2);
    });
    s.add(2, send_text(w.service2, kCopySend, "watched"));
    s.add(0, receive(w.service0, 0));
    s.add(3, [&](auto r) { r.initMonitorPoll().setTimeoutMs(0); });
    s.add(3, [&](auto r) { r.initMonitorPoll().setTimeoutMs(-1); });
    s.add(2, send_text(w.service2, kCopySend, "wakes the poll"));
    s.add(3, [&](auto r) { r.setMonitorStop(); });
    c["seed-introspection"] = s.bytes();
  }

  {
    // Names of other tasks, bad dispositions and rights, ids and fd counts.
    Stream s;
    s.add(2, send_text(w.port1, kMakeSend, "not mine"));
    s.add(2, send_text(w.service1, kCopySend, "not mine either"));
    s.add(2, name_only(w.port0, &wire::Request::Builder::initDestroy));
    s.add(2, send_text(w.service2, kMoveReceive, "bad destination"));
    s.add(2, send_text(w.service2, kCopySend, "bad reply", w.service2, 0));
    s.add(2, send_text(w.service2, 99, "bad"));
    s.add(2, [&](auto r) {
      auto m = r.initSend().initMessage();
      m.setRemote(w.service2);
      m.setRemoteDisposition(kCopySend);
      auto p = m.initDescriptors(1)[0].initPort();
      p.setName(w.service2);
      p.setDisposition(kMoveSendOnce);
    });
    s.add(2, [&](auto r) {
      auto i = r.initInsertRight();
      i.setName(w.port2);
      i.setRight(w.port2);
      i.setDisposition(kMoveSend);
    });
    s.add(2, [&](auto r) {
      auto m = r.initModRefs();
      m.setName(w.service2);
      m.setRight(kRightSend);
      m.setDelta(-1000);
    });
    s.add(2, [&](auto r) {
      auto m = r.initModRefs();
      m.setName(w.service2);
      m.setRight(kRightSend);
      m.setDelta(70000);
    });
    s.add(2, [&](auto r) {
      r.setFdCount(1);
      r.initAllocate().setRight(kRightReceive);
    });
    s.raw(frame_of(allocate(kRightReceive), 0));
    s.add(2, [&](auto r) { r.initHello().setVersion(0); });
    s.add(2, [&](auto r) {
      auto a = r.initSetAttributes();
      a.setName(w.port2);
      a.setQlimit(5000);
    });
    c["seed-invalid"] = s.bytes();
  }

  {
    // A frame whose root pointer points outside its segment (so not even its
    // id can be read: it counts as slot 0's): task 1's connection closes and
    // a new task takes its slot. Then a frame declaring more fds than a
    // frame may carry, from task 2.
    Stream s;
    s.add(1, send_text(w.service1, kCopySend, "before"));
    std::string bad = frame_of(allocate(kRightReceive), (5u << 2) | 1);
    bad[8] = 0x7c;  // the root pointer's offset
    bad[9] = 0x7f;
    s.raw(bad);
    s.add(1, allocate(kRightReceive));
    s.add(0, receive(w.service0, 0));
    s.add(1, [&](auto r) {
      r.setFdCount(100);  // more than a frame may carry
      r.initAllocate();
    });
    c["seed-violation"] = s.bytes();
  }

  {
    // Batches (protocol version 2): a send batch with a refused message in
    // the middle and a region whose fd rides in the batch's frame, one that
    // parks on a full queue, one over the batch limit, a receive batch that
    // takes them, one with max 0 and one over the limit.
    auto batch_of = [&](uint32_t remote, const std::vector<std::string>& texts, int64_t timeout,
                        uint16_t fds, size_t ool_at) {
      return [=](auto r) {
        r.setFdCount(fds);
        auto b = r.initSendBatch();
        auto list = b.initMessages(static_cast<unsigned>(texts.size()));
        for (unsigned i = 0; i < texts.size(); ++i) {
          auto m = list[i];
          m.setRemote(i == 1 ? 0x7777u : remote);
          m.setRemoteDisposition(kCopySend);
          m.setBody(bytes_of(texts[i]));
          if (i == ool_at) m.initDescriptors(1)[0].initOol().setSize(64);
        }
        b.initOptions().setTimeoutMs(timeout);
      };
    };
    auto receive_batch = [&](uint32_t name, int64_t timeout, uint32_t max) {
      return [=](auto r) {
        auto b = r.initReceiveBatch();
        b.initOptions().setName(name);
        b.getOptions().setTimeoutMs(timeout);
        b.setMax(max);
      };
    };
    Stream s;
    s.add(2, batch_of(w.service2, {"one", "bad", "three", "four"}, 0, 1, 2));
    s.add(0, receive_batch(w.service0, 0, 8));
    s.add(0, [&](auto r) {
      auto a = r.initSetAttributes();
      a.setName(w.service0);
      a.setQlimit(1);
    });
    s.add(2, batch_of(w.service2, {"a", "b", "c"}, -1, 0, 99));
    s.add(2, batch_of(w.service2, std::vector<std::string>(9, "x"), 0, 0, 99));
    s.add(0, receive_batch(w.service0, -1, 2));
    s.add(0, receive_batch(w.service0, 0, 0));
    s.add(0, receive_batch(w.service0, 0, 9));
    s.add(1, receive_batch(w.port1, -1, 3));
    c["seed-batches"] = s.bytes();
  }

  {
    // Limits: names, ports, queued messages, parked requests.
    Stream s;
    for (int i = 0; i < 16; ++i) s.add(2, allocate(kRightReceive));
    for (int i = 0; i < 8; ++i) s.add(2, send_text(w.service2, kCopySend, std::string(1500, 'q')));
    for (int i = 0; i < 8; ++i) s.add(1, receive(w.port1, -1));
    c["seed-limits"] = s.bytes();
  }
  return c;
}

// ---------------------------------------------------------------------------
// Frames

// A record of a fuzz_frames input: the tag's low bits pick the fds.
std::string record(const std::string& bytes, uint8_t fd_index = 0) {
  std::string out;
  for (size_t at = 0; at < bytes.size() || at == 0; at += 0xffff) {
    const size_t n = std::min<size_t>(bytes.size() - at, 0xffff);
    out.push_back(static_cast<char>(at == 0 ? fd_index : 0));
    out.push_back(static_cast<char>(n & 0xff));
    out.push_back(static_cast<char>(n >> 8));
    out.append(bytes, at, n);
    if (bytes.empty()) break;
  }
  return out;
}

uint8_t fd_index_for(uint16_t fds) {
  switch (fds) {
    case 0: return 0;
    case 1: return 3;
    case 2: return 4;
    case 3: return 5;
    case 64: return 6;
    default: return 7;
  }
}

// A Request frame with `fds` declared.
std::string declaring(uint16_t fds, size_t body = 0) {
  return frame_of(
      [&](auto r) {
        r.setFdCount(fds);
        if (body != 0) r.initSend().initMessage().setBody(bytes_of(std::string(body, 'b')));
      },
      1);
}

// The same request spread over many small segments.
std::string multi_segment(uint32_t first_words) {
  capnp::MallocMessageBuilder message(first_words, capnp::AllocationStrategy::FIXED_SIZE);
  auto r = message.initRoot<wire::Request>();
  r.setId(1);
  auto m = r.initSend().initMessage();
  m.setBody(bytes_of(std::string(40, 'm')));
  auto d = m.initDescriptors(2);
  d[0].initPort().setName(5);
  d[1].initOolPorts().initNames(4);
  auto bytes = proto::encode_frame(message);
  return std::string(bytes.begin(), bytes.end());
}

std::string segment_table(uint32_t count_minus_one, std::vector<uint32_t> sizes) {
  std::string out;
  auto put = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  put(count_minus_one);
  for (uint32_t s : sizes) put(s);
  while (out.size() % 8 != 0) out.push_back('\0');
  return out;
}

Corpus make_frame_seeds() {
  Corpus c;
  // Every request seed, one frame per record with the fds it declares, in
  // socket mode; and whole, in feed mode and with tight limits.
  const Corpus requests = make_request_seeds();
  for (const auto& [name, stream] : requests) {
    const std::string base = name.substr(5);  // after "seed-"
    std::string records(1, '\0');
    proto::FrameReader reader;
    reader.feed(stream.data(), stream.size());
    size_t at = 0;
    while (reader.next() == proto::FrameReader::Next::kFrame) {
      uint16_t fds = 0;
      try {
        fds = reader.frame().getRoot<wire::Request>().getFdCount();
      } catch (...) {
      }
      records += record(stream.substr(at, reader.frame_bytes()), fd_index_for(fds));
      at += reader.frame_bytes();
    }
    c["seed-" + base] = records;
    c["seed-" + base + "-fed"] = std::string(1, '\2') + record(stream);
    c["seed-" + base + "-tight"] = std::string(1, '\1') + record(stream);
  }

  // One frame split byte by byte.
  {
    const std::string f = declaring(0, 30);
    std::string records(1, '\0');
    for (char ch : f) records += record(std::string(1, ch));
    c["seed-byte-by-byte"] = records;
  }
  c["seed-multi-segment"] = std::string(1, '\0') + record(multi_segment(4) + multi_segment(16));
  c["seed-multi-segment-tight"] = std::string(1, '\1') + record(multi_segment(4));
  // Fds: as many as a frame may declare, more, fds no frame declares, and
  // fds declared but not sent.
  c["seed-fds-64"] = std::string(1, '\0') + record(declaring(64), 6);
  c["seed-fds-253"] = std::string(1, '\0') + record(declaring(253), 7) + record(declaring(0), 7);
  c["seed-fds-tight"] = std::string(1, '\1') + record(declaring(3), 5) + record(declaring(2), 4) +
                        record(declaring(64), 6);
  c["seed-fds-stray"] = std::string(1, '\0') + record(declaring(0), 3);
  c["seed-fds-missing"] = std::string(1, '\0') + record(declaring(3), 4);
  // Frames at the tight size limit and one word over; too many segments;
  // a wrapping segment count; a huge declared size.
  {
    const uint32_t words = (kTightFrameLimits.max_frame_bytes - 8) / 8;
    std::string at = segment_table(0, {words}) + std::string(words * 8, '\0');
    std::string over = segment_table(0, {words + 1}) + std::string(8, '\0');
    c["seed-size-limit-tight"] = std::string(1, '\1') + record(at) + record(over);
  }
  c["seed-segments-over"] =
      std::string(1, '\0') + record(segment_table(16, std::vector<uint32_t>(17, 0)));
  c["seed-segments-wrap"] = std::string(1, '\0') + record(segment_table(0xffffffffu, {}));
  c["seed-size-huge"] = std::string(1, '\0') + record(segment_table(1, {0x7fffffffu, 0x7fffffffu}));
  // A root pointer that goes nowhere.
  {
    std::string f = declaring(0, 16);
    f[8] = 0x7c;
    f[9] = 0x7f;
    c["seed-bad-pointer"] = std::string(1, '\0') + record(f);
  }
  return c;
}

}  // namespace

Corpus request_seeds() { return make_request_seeds(); }
Corpus frame_seeds() { return make_frame_seeds(); }

}  // namespace portd::fuzz
