#include "daemon/server/codec.h"

#include <algorithm>
#include <cstring>

#include "daemon/server/body_pool.h"
#include "portd/proto/frame.h"

namespace portd::server {

namespace {

using ipc::Disposition;
using ipc::Limit;

constexpr Refusal kAccepted{};

Refusal refuse(Status status, std::string_view why, Limit limit = Limit::kNone) {
  return Refusal{status, limit, why};
}

bool refused(const Refusal& r) { return r.status != Status::kSuccess; }

// MACH_PORT_RIGHT_* for mod_refs, get_refs and allocate.
bool decode_right(uint32_t raw, ipc::Right* out) {
  if (raw > static_cast<uint32_t>(ipc::Right::kDeadName)) return false;
  *out = static_cast<ipc::Right>(raw);
  return true;
}

// MOVE_SEND ... MAKE_SEND_ONCE: what a message header may carry (XNU's
// MACH_MSG_TYPE_PORT_ANY_SEND).
bool is_send_disposition(uint8_t raw) {
  return raw >= static_cast<uint8_t>(Disposition::kMoveSend) &&
         raw <= static_cast<uint8_t>(Disposition::kMakeSendOnce);
}

// A send-once right for a notification: made from a receive right or moved.
// 0 on the wire means the default, MAKE_SEND_ONCE.
bool decode_notify_disposition(uint8_t raw, Disposition* out) {
  if (raw == 0) raw = static_cast<uint8_t>(Disposition::kMakeSendOnce);
  if (raw != static_cast<uint8_t>(Disposition::kMakeSendOnce) &&
      raw != static_cast<uint8_t>(Disposition::kMoveSendOnce))
    return false;
  *out = static_cast<Disposition>(raw);
  return true;
}

Refusal decode_descriptors(capnp::List<wire::OutDescriptor>::Reader in, const ipc::Limits& limits,
                           std::vector<ipc::DescriptorIn>* out) {
  // Descriptors and the ports in out-of-line arrays count against one limit;
  // the count is checked before anything is copied.
  const uint64_t max = limits.max_descriptors;
  if (in.size() > max)
    return refuse(Status::kSendTooLarge, "too many descriptors", Limit::kMessageDescriptors);
  uint64_t total = in.size();
  out->reserve(in.size());
  for (auto d : in) {
    switch (d.which()) {
      case wire::OutDescriptor::PORT: {
        auto port = d.getPort();
        if (!ipc::valid_disposition(port.getDisposition()))
          return refuse(Status::kSendInvalidType, "invalid port descriptor disposition");
        out->push_back(
            ipc::PortDescIn{port.getName(), static_cast<Disposition>(port.getDisposition())});
        break;
      }
      case wire::OutDescriptor::OOL: {
        auto ool = d.getOol();
        // The release signal is the volatile pool's return path; a sealed
        // region has nothing to return.
        if (ool.getReleaseSignal() && !ool.getVolatile())
          return refuse(Status::kSendInvalidMemory, "release signal on a sealed region");
        out->push_back(ipc::OolIn{0, ool.getSize(), ool.getVolatile(), ool.getDeallocate(),
                                  ool.getReleaseSignal(), ool.getBody()});
        break;
      }
      case wire::OutDescriptor::OOL_PORTS: {
        auto ports = d.getOolPorts();
        if (!ipc::valid_disposition(ports.getDisposition()))
          return refuse(Status::kSendInvalidType, "invalid OOL ports disposition");
        auto names = ports.getNames();
        total += names.size();
        if (total > max)
          return refuse(Status::kSendTooLarge, "too many ports in OOL arrays",
                        Limit::kMessageDescriptors);
        ipc::OolPortsIn desc;
        desc.disposition = static_cast<Disposition>(ports.getDisposition());
        desc.names.reserve(names.size());
        for (uint32_t name : names) desc.names.push_back(name);
        out->push_back(std::move(desc));
        break;
      }
      default: return refuse(Status::kSendInvalidType, "unknown descriptor kind");
    }
  }
  return kAccepted;
}

template <typename Body>
void accepted(DecodedRequest& d, Body&& body) {
  d.body = std::forward<Body>(body);
}

void refused_request(DecodedRequest& d, Refusal r) {
  d.body = std::monostate{};
  d.refusal = r;
}

}  // namespace

Refusal decode_message(wire::OutMessage::Reader in, const ipc::Limits& limits,
                       ipc::MessageIn* out) {
  const uint8_t remote_disposition = in.getRemoteDisposition();
  if (!is_send_disposition(remote_disposition))
    return refuse(Status::kSendInvalidHeader, "invalid destination disposition");
  const uint8_t local_disposition = in.getLocalDisposition();
  if (local_disposition == 0 ? in.getLocal() != ipc::kNameNull
                             : !is_send_disposition(local_disposition))
    return refuse(Status::kSendInvalidHeader, "invalid reply port disposition");

  auto body = in.getBody();
  if (body.size() > limits.max_inline_body)
    return refuse(Status::kSendTooLarge, "inline body over the limit", Limit::kMessageBytes);

  // Straight into `out` (a fresh MessageIn); a refusal leaves it empty again.
  ipc::MessageIn& m = *out;
  m.remote = in.getRemote();
  m.remote_disposition = static_cast<Disposition>(remote_disposition);
  m.local = in.getLocal();
  m.local_disposition = static_cast<Disposition>(local_disposition);
  m.id = in.getId();
  // (A message without descriptors, the common case, skips reading a list
  // pointer that is null: has*() is a field test, get*() a checked read.)
  if (in.hasDescriptors()) {
    if (Refusal r = decode_descriptors(in.getDescriptors(), limits, &m.descriptors); refused(r)) {
      m = ipc::MessageIn{};
      return r;
    }
  }
  m.body = BodyPool::take(body.size());
  m.body.assign(body.begin(), body.end());
  return kAccepted;
}

Refusal decode_send_options(wire::SendOptions::Reader in, ipc::SendOptions* out) {
  ipc::SendOptions o;
  o.timeout_ms = in.getTimeoutMs();
  o.cache = in.getCache();
  o.notify = in.getNotify();
  o.thread = in.getThread();
  // GNU Mach's notify port is a receive right the kernel makes a send-once
  // right from: MAKE_SEND_ONCE (0 on the wire means that too).
  if (o.cache) {
    const uint8_t d = in.getNotifyDisposition();
    if (d != 0 && d != static_cast<uint8_t>(Disposition::kMakeSendOnce))
      return refuse(Status::kSendInvalidNotify, "notify disposition is not MAKE_SEND_ONCE");
    o.notify_disposition = Disposition::kMakeSendOnce;
  }
  *out = o;
  return kAccepted;
}

Refusal decode_receive_options(wire::ReceiveOptions::Reader in, ipc::ReceiveOptions* out) {
  ipc::ReceiveOptions o;
  o.name = in.getName();
  o.timeout_ms = in.getTimeoutMs();
  o.max_size = in.getMaxSize();
  o.large = in.getLarge();
  o.trailer_size = in.getTrailerSize();
  *out = o;
  return kAccepted;
}

Refusal decode_bootstrap_name(capnp::Text::Reader in, std::string* out) {
  if (in.size() == 0) return refuse(Status::kInvalidArgument, "empty bootstrap name");
  if (in.size() > kBootstrapNameMax)
    return refuse(Status::kInvalidArgument, "bootstrap name too long");
  if (std::memchr(in.begin(), '\0', in.size()) != nullptr)
    return refuse(Status::kInvalidArgument, "bootstrap name contains NUL");
  out->assign(in.begin(), in.size());
  return kAccepted;
}

bool is_introspection(const RequestBody& body) {
  return std::holds_alternative<req::Introspect>(body) ||
         std::holds_alternative<req::MonitorStart>(body) ||
         std::holds_alternative<req::MonitorPoll>(body) ||
         std::holds_alternative<req::MonitorStop>(body);
}

// The fds a message's OOL descriptors take from its frame, read from the
// wire whether or not the message is valid (a batch must know where each
// message's fds end even when it refuses one of them).
uint64_t wire_fd_count(wire::OutMessage::Reader in) {
  uint64_t n = 0;
  if (!in.hasDescriptors()) return 0;
  for (auto d : in.getDescriptors())
    if (d.which() == wire::OutDescriptor::OOL) n += d.getOol().getReleaseSignal() ? 2 : 1;
  return n;
}

size_t ool_fd_count(const ipc::MessageIn& message) {
  size_t n = 0;
  for (const auto& d : message.descriptors)
    if (const auto* ool = std::get_if<ipc::OolIn>(&d)) n += ool->fds();
  return n;
}

void decode_request(wire::Request::Reader request, const ipc::Limits& limits, DecodedRequest* out) {
  DecodedRequest& d = *out;
  d.id = request.getId();
  d.fd_count = request.getFdCount();
  const auto which = request.which();
  d.carries_message = which == wire::Request::SEND || which == wire::Request::SEND_RECEIVE ||
                      which == wire::Request::SEND_BATCH;

  if (d.id == 0) return refused_request(d, refuse(Status::kInvalidArgument, "id 0"));
  if (!d.carries_message && d.fd_count != 0)
    return refused_request(d,
                           refuse(Status::kInvalidArgument, "fds with a request that takes none"));

  switch (which) {
    case wire::Request::HELLO: {
      auto h = request.getHello();
      auto command = h.getCommand();
      // Informational, and it goes to the logs: bounded and printable.
      std::string text(command.begin(), std::min<size_t>(command.size(), kCommandMax));
      for (char& c : text)
        if (c < 0x20 || c == 0x7f) c = '?';
      return accepted(d, req::Hello{h.getVersion(), std::move(text)});
    }
    case wire::Request::CANCEL: return accepted(d, req::Cancel{request.getCancel()});
    case wire::Request::ALLOCATE: {
      req::Allocate a;
      if (!decode_right(request.getAllocate().getRight(), &a.right))
        return refused_request(d, refuse(Status::kInvalidValue, "unknown right"));
      return accepted(d, a);
    }
    case wire::Request::DEALLOCATE:
      return accepted(d, req::Deallocate{request.getDeallocate().getName()});
    case wire::Request::MOD_REFS: {
      auto m = request.getModRefs();
      req::ModRefs r{m.getName(), ipc::Right::kSend, m.getDelta()};
      if (!decode_right(m.getRight(), &r.right))
        return refused_request(d, refuse(Status::kInvalidValue, "unknown right"));
      return accepted(d, r);
    }
    case wire::Request::DESTROY: return accepted(d, req::Destroy{request.getDestroy().getName()});
    case wire::Request::INSERT_RIGHT: {
      auto i = request.getInsertRight();
      if (!ipc::valid_disposition(i.getDisposition()))
        return refused_request(d, refuse(Status::kInvalidValue, "invalid disposition"));
      return accepted(d, req::InsertRight{i.getName(), i.getRight(),
                                          static_cast<Disposition>(i.getDisposition())});
    }
    case wire::Request::EXTRACT_RIGHT: {
      auto e = request.getExtractRight();
      if (!ipc::valid_disposition(e.getDisposition()))
        return refused_request(d, refuse(Status::kInvalidValue, "invalid disposition"));
      return accepted(d,
                      req::ExtractRight{e.getName(), static_cast<Disposition>(e.getDisposition())});
    }
    case wire::Request::GET_REFS: {
      auto g = request.getGetRefs();
      req::GetRefs r{g.getName(), ipc::Right::kSend};
      if (!decode_right(g.getRight(), &r.right))
        return refused_request(d, refuse(Status::kInvalidValue, "unknown right"));
      return accepted(d, r);
    }
    case wire::Request::TYPE: return accepted(d, req::Type{request.getType().getName()});
    case wire::Request::NAMES: return accepted(d, req::Names{});
    case wire::Request::GET_ATTRIBUTES:
      return accepted(d, req::GetAttributes{request.getGetAttributes().getName()});
    case wire::Request::SET_ATTRIBUTES: {
      auto s = request.getSetAttributes();
      if (s.getQlimit() > ipc::kQueueLimitMax)
        return refused_request(d, refuse(Status::kInvalidValue, "queue limit over the maximum"));
      return accepted(d, req::SetAttributes{s.getName(), s.getQlimit()});
    }
    case wire::Request::MOVE_MEMBER: {
      auto m = request.getMoveMember();
      return accepted(d, req::MoveMember{m.getMember(), m.getAfter()});
    }
    case wire::Request::REQUEST_NOTIFICATION: {
      auto n = request.getRequestNotification();
      req::RequestNotification r;
      r.name = n.getName();
      r.sync = n.getSync();
      r.notify = n.getNotify();
      switch (n.getVariant()) {
        case static_cast<int32_t>(ipc::Notify::kPortDestroyed):
        case static_cast<int32_t>(ipc::Notify::kNoSenders):
        case static_cast<int32_t>(ipc::Notify::kDeadName):
          r.variant = static_cast<ipc::Notify>(n.getVariant());
          break;
        default:
          return refused_request(d, refuse(Status::kInvalidValue, "unknown notification variant"));
      }
      if (r.notify != ipc::kNameNull &&
          !decode_notify_disposition(n.getNotifyDisposition(), &r.notify_disposition))
        return refused_request(d, refuse(Status::kInvalidValue, "invalid notify disposition"));
      return accepted(d, r);
    }
    case wire::Request::SEND: {
      auto s = request.getSend();
      // Decoded in place: a request is not moved on its way to the driver.
      auto& r = d.body.emplace<req::Send>();
      if (Refusal f = decode_message(s.getMessage(), limits, &r.message); refused(f))
        return refused_request(d, f);
      if (Refusal f = decode_send_options(s.getOptions(), &r.options); refused(f))
        return refused_request(d, f);
      if (ool_fd_count(r.message) != d.fd_count)
        return refused_request(d, refuse(Status::kSendInvalidMemory,
                                         "fdCount differs from the fds the OOL descriptors take"));
      return;
    }
    case wire::Request::RECEIVE: {
      req::Receive r;
      if (Refusal f = decode_receive_options(request.getReceive(), &r.options); refused(f))
        return refused_request(d, f);
      return accepted(d, r);
    }
    case wire::Request::SEND_RECEIVE: {
      auto s = request.getSendReceive();
      auto& r = d.body.emplace<req::SendReceive>();
      if (Refusal f = decode_message(s.getMessage(), limits, &r.message); refused(f))
        return refused_request(d, f);
      if (Refusal f = decode_send_options(s.getSendOptions(), &r.send); refused(f))
        return refused_request(d, f);
      if (Refusal f = decode_receive_options(s.getReceiveOptions(), &r.receive); refused(f))
        return refused_request(d, f);
      if (ool_fd_count(r.message) != d.fd_count)
        return refused_request(d, refuse(Status::kSendInvalidMemory,
                                         "fdCount differs from the fds the OOL descriptors take"));
      return;
    }
    case wire::Request::BOOTSTRAP_CHECK_IN: {
      req::BootstrapCheckIn r;
      if (Refusal f = decode_bootstrap_name(request.getBootstrapCheckIn().getName(), &r.name);
          refused(f))
        return refused_request(d, f);
      return accepted(d, std::move(r));
    }
    case wire::Request::BOOTSTRAP_REGISTER: {
      auto b = request.getBootstrapRegister();
      req::BootstrapRegister r;
      if (Refusal f = decode_bootstrap_name(b.getName(), &r.name); refused(f))
        return refused_request(d, f);
      r.port = b.getPort();
      return accepted(d, std::move(r));
    }
    case wire::Request::BOOTSTRAP_LOOK_UP: {
      auto b = request.getBootstrapLookUp();
      req::BootstrapLookUp r;
      if (Refusal f = decode_bootstrap_name(b.getName(), &r.name); refused(f))
        return refused_request(d, f);
      r.timeout_ms = b.getTimeoutMs();
      return accepted(d, std::move(r));
    }
    case wire::Request::BOOTSTRAP_UNREGISTER: {
      req::BootstrapUnregister r;
      if (Refusal f = decode_bootstrap_name(request.getBootstrapUnregister().getName(), &r.name);
          refused(f))
        return refused_request(d, f);
      return accepted(d, std::move(r));
    }
    case wire::Request::BOOTSTRAP_LIST: return accepted(d, req::BootstrapList{});
    case wire::Request::INTROSPECT: {
      auto in = request.getIntrospect();
      req::Introspect r;
      const auto what = static_cast<uint16_t>(in.getWhat());
      if (what > static_cast<uint16_t>(req::IntrospectWhat::kUids))
        return refused_request(d, refuse(Status::kNotSupported, "unknown introspection kind"));
      r.what = static_cast<req::IntrospectWhat>(what);
      r.target = in.getTarget();
      r.pid = in.getPid();
      auto cursor = in.getCursor();
      if (cursor.size() > kCursorMax)
        return refused_request(d, refuse(Status::kInvalidArgument, "cursor too long"));
      r.cursor.assign(cursor.begin(), cursor.size());
      r.limit = in.getLimit() == 0 ? kPageDefault : std::min(in.getLimit(), kPageMax);
      return accepted(d, std::move(r));
    }
    case wire::Request::MONITOR_START: {
      auto in = request.getMonitorStart();
      req::MonitorStart r;
      r.port = in.getPort();
      r.task = in.getTask();
      if (in.getName().size() != 0) {
        if (Refusal f = decode_bootstrap_name(in.getName(), &r.name); refused(f))
          return refused_request(d, f);
      }
      r.buffer =
          in.getBuffer() == 0 ? kMonitorBufferDefault : std::min(in.getBuffer(), kMonitorBufferMax);
      return accepted(d, std::move(r));
    }
    case wire::Request::MONITOR_POLL: {
      auto in = request.getMonitorPoll();
      req::MonitorPoll r;
      r.timeout_ms = in.getTimeoutMs();
      r.max = in.getMax() == 0 ? kMonitorPollDefault : std::min(in.getMax(), kMonitorPollMax);
      return accepted(d, r);
    }
    case wire::Request::MONITOR_STOP: return accepted(d, req::MonitorStop{});
    case wire::Request::SEND_BATCH: {
      auto b = request.getSendBatch();
      auto messages = b.getMessages();
      // The count first: nothing is allocated for a batch over the limit.
      if (messages.size() > limits.max_batch)
        return refused_request(
            d, refuse(Status::kInvalidArgument, "more messages than the batch limit",
                      Limit::kBatchMessages));
      auto& r = d.body.emplace<req::SendBatch>();
      if (Refusal f = decode_send_options(b.getOptions(), &r.options); refused(f))
        return refused_request(d, f);
      r.messages.resize(messages.size());
      r.refusals.resize(messages.size());
      r.fd_counts.resize(messages.size());
      uint64_t fds = 0;
      for (unsigned i = 0; i < messages.size(); ++i) {
        r.refusals[i] = decode_message(messages[i], limits, &r.messages[i]);
        // Where each message's fds end, whether or not it is valid: a
        // decoded message's from its descriptors, a refused one's read off
        // the wire again.
        const uint64_t n =
            refused(r.refusals[i]) ? wire_fd_count(messages[i]) : ool_fd_count(r.messages[i]);
        fds += n;
        if (fds > d.fd_count) break;
        r.fd_counts[i] = static_cast<uint16_t>(n);
      }
      if (fds != d.fd_count)
        return refused_request(
            d, refuse(Status::kSendInvalidMemory,
                      "fdCount differs from the fds the batch's OOL descriptors take"));
      return;
    }
    case wire::Request::RECEIVE_BATCH: {
      auto b = request.getReceiveBatch();
      req::ReceiveBatch r;
      r.max = b.getMax();
      if (r.max == 0)
        return refused_request(d, refuse(Status::kInvalidArgument, "a batch of no messages"));
      if (r.max > limits.max_batch)
        return refused_request(
            d, refuse(Status::kInvalidArgument, "more messages than the batch limit",
                      Limit::kBatchMessages));
      if (Refusal f = decode_receive_options(b.getOptions(), &r.options); refused(f))
        return refused_request(d, f);
      return accepted(d, r);
    }
  }
  // A variant this daemon does not know (a newer client).
  return refused_request(d, refuse(Status::kNotSupported, "unknown request kind"));
}

DecodedRequest decode_request(wire::Request::Reader request, const ipc::Limits& limits) {
  DecodedRequest d;
  decode_request(request, limits, &d);
  return d;
}

// ---------------------------------------------------------------------------
// Encoding

namespace {

template <typename InitText>
void set_text(std::string_view text, InitText init) {
  auto out = init(static_cast<unsigned>(text.size()));
  if (!text.empty()) std::memcpy(out.begin(), text.data(), text.size());
}

}  // namespace

void encode_reply_header(wire::Reply::Builder reply, uint64_t id, Status status, ipc::Limit limit) {
  reply.setId(id);
  reply.setStatus(static_cast<int32_t>(status));
  if (limit != Limit::kNone)
    set_text(ipc::limit_name(limit), [&](unsigned n) { return reply.initLimit(n); });
}

const void* encode_message(const ipc::MessageOut& in, wire::InMessage::Builder out, BodyIn how,
                           capnp::MessageBuilder* message) {
  out.setRemote(in.remote);
  out.setRemoteType(static_cast<uint8_t>(in.remote_type));
  out.setLocal(in.local);
  out.setLocalType(static_cast<uint8_t>(in.local_type));
  out.setId(in.id);
  const void* body_at = nullptr;
  if (!in.body.empty()) {
    switch (how) {
      case BodyIn::kCopied:
        out.setBody(kj::ArrayPtr<const kj::byte>(in.body.data(), in.body.size()));
        break;
      case BodyIn::kPlaced:
        body_at = proto::place_body(in.body, [&](unsigned n) { return out.initBody(n); });
        break;
      case BodyIn::kReferenced:
        proto::reference_body(*message, in.body,
                              [&](auto orphan) { out.adoptBody(kj::mv(orphan)); });
        body_at = in.body.data();
        break;
    }
  }
  if (!in.descriptors.empty()) {
    auto list = out.initDescriptors(static_cast<unsigned>(in.descriptors.size()));
    for (size_t i = 0; i < in.descriptors.size(); ++i) {
      auto d = list[static_cast<unsigned>(i)];
      const auto& desc = in.descriptors[i];
      if (const auto* port = std::get_if<ipc::PortDescOut>(&desc)) {
        auto p = d.initPort();
        p.setName(port->name);
        p.setDisposition(static_cast<uint8_t>(port->type));
      } else if (const auto* ool = std::get_if<ipc::OolOut>(&desc)) {
        auto o = d.initOol();
        o.setSize(ool->size);
        o.setVolatile(ool->is_volatile);
        o.setDeallocate(ool->deallocate);
        o.setReleaseSignal(ool->release_signal);
        o.setBody(ool->is_body);
      } else {
        const auto& ports = std::get<ipc::OolPortsOut>(desc);
        auto p = d.initOolPorts();
        p.setDisposition(static_cast<uint8_t>(ports.type));
        auto names = p.initNames(static_cast<unsigned>(ports.names.size()));
        for (size_t j = 0; j < ports.names.size(); ++j)
          names.set(static_cast<unsigned>(j), ports.names[j]);
      }
    }
  }
  auto t = out.initTrailer();
  t.setSeqno(in.trailer.seqno);
  t.setSenderPid(in.trailer.pid);
  t.setSenderUid(in.trailer.uid);
  t.setSenderGid(in.trailer.gid);
  t.setSenderTask(in.trailer.sender);
  return body_at;
}

void encode_port_status(const ipc::PortStatus& in, wire::PortStatus::Builder out) {
  out.setPset(in.pset);
  out.setSeqno(in.seqno);
  out.setMscount(in.mscount);
  out.setQlimit(in.qlimit);
  out.setMsgcount(in.msgcount);
  out.setSorights(in.sorights);
  out.setSrights(in.srights);
  out.setPdrequest(in.pdrequest);
  out.setNsrequest(in.nsrequest);
  out.setFlags(in.flags);
}

void encode_names(const std::vector<ipc::NameInfo>& in, wire::Reply::Builder reply) {
  auto list = reply.initNames(static_cast<unsigned>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    list[static_cast<unsigned>(i)].setName(in[i].name);
    list[static_cast<unsigned>(i)].setType(in[i].type);
  }
}

void encode_bootstrap_list(const std::vector<ipc::BootstrapEntry>& in, wire::Reply::Builder reply) {
  auto list = reply.initBootstrapList(static_cast<unsigned>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    auto e = list[static_cast<unsigned>(i)];
    set_text(in[i].name, [&](unsigned n) { return e.initName(n); });
    e.setUid(in[i].uid);
    e.setPid(in[i].pid);
    e.setPort(in[i].port);
    e.setSinceUnixMs(in[i].since_unix_ms);
  }
}

void encode_introspection(std::string_view json, std::string_view next,
                          wire::Reply::Builder reply) {
  auto page = reply.initIntrospection();
  set_text(json, [&](unsigned n) { return page.initJson(n); });
  set_text(next, [&](unsigned n) { return page.initNext(n); });
}

void encode_monitor_events(const std::vector<std::string_view>& events,
                           wire::Reply::Builder reply) {
  auto list = reply.initMonitorEvents(static_cast<unsigned>(events.size()));
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string_view e = events[i];
    auto out = list.init(static_cast<unsigned>(i), static_cast<unsigned>(e.size()));
    if (!e.empty()) std::memcpy(out.begin(), e.data(), e.size());
  }
}

}  // namespace portd::server
