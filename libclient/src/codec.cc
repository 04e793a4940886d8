#include "libclient/src/codec.h"

#include <kj/exception.h>

#include <cstring>
#include <exception>

namespace portd::detail {

namespace {

bool valid_send_disposition(Disposition d) {
  const auto v = static_cast<uint8_t>(d);
  return v >= static_cast<uint8_t>(Disposition::kMoveReceive) &&
         v <= static_cast<uint8_t>(Disposition::kMakeSendOnce);
}

// Takes the message's fds from fds[*next_fd] on.
ReceivedMessage decode_message(wire::InMessage::Reader in, std::vector<UniqueFd>& fds,
                               size_t* next_fd_io, std::vector<IncomingRegion>* regions, bool* ok,
                               std::string* error) {
  ReceivedMessage m;
  m.remote = in.getRemote();
  m.remote_type = static_cast<RightType>(in.getRemoteType());
  m.local = in.getLocal();
  m.local_type = static_cast<RightType>(in.getLocalType());
  m.id = in.getId();
  auto body = in.getBody();
  const auto* bytes = reinterpret_cast<const std::byte*>(body.begin());
  m.body.assign(bytes, bytes + body.size());
  // Most messages carry no descriptors: has*() tests the pointer, where
  // get*() would read and check a null list.
  auto descriptors =
      in.hasDescriptors() ? in.getDescriptors() : capnp::List<wire::OutDescriptor>::Reader();
  m.descriptors.reserve(descriptors.size());
  size_t& next_fd = *next_fd_io;
  for (auto d : descriptors) {
    switch (d.which()) {
      case wire::OutDescriptor::PORT: {
        auto p = d.getPort();
        m.descriptors.emplace_back(
            ReceivedPort{p.getName(), static_cast<RightType>(p.getDisposition())});
        break;
      }
      case wire::OutDescriptor::OOL: {
        auto o = d.getOol();
        const size_t needed = o.getReleaseSignal() ? 2 : 1;
        if (fds.size() - next_fd < needed) {
          *ok = false;
          *error = "reply has more out-of-line regions than file descriptors";
          return m;
        }
        IncomingRegion region;
        region.index = m.descriptors.size();
        region.size = o.getSize();
        region.is_volatile = o.getVolatile();
        region.is_body = o.getBody();
        region.fd = std::move(fds[next_fd++]);
        if (o.getReleaseSignal()) region.release = std::move(fds[next_fd++]);
        if (!region.is_body) {
          ReceivedOolMemory mem;
          mem.size = o.getSize();
          mem.is_volatile = o.getVolatile();
          mem.deallocate = o.getDeallocate();
          m.descriptors.emplace_back(std::move(mem));
        }
        regions->push_back(std::move(region));
        break;
      }
      case wire::OutDescriptor::OOL_PORTS: {
        auto o = d.getOolPorts();
        ReceivedOolPorts ports;
        ports.type = static_cast<RightType>(o.getDisposition());
        ports.names.reserve(o.getNames().size());
        for (auto n : o.getNames()) ports.names.push_back(n);
        m.descriptors.emplace_back(std::move(ports));
        break;
      }
      default:
        *ok = false;
        *error = "reply carries a descriptor of an unknown kind";
        return m;
    }
  }
  auto t = in.getTrailer();
  m.trailer.seqno = t.getSeqno();
  m.trailer.pid = t.getSenderPid();
  m.trailer.uid = t.getSenderUid();
  m.trailer.gid = t.getSenderGid();
  m.trailer.sender_task = t.getSenderTask();
  return m;
}

bool decode_reply_unchecked(wire::Reply::Reader reply, std::vector<UniqueFd>& fds, ReplyData* out,
                            std::string* error) {
  out->status = static_cast<Status>(reply.getStatus());
  if (reply.hasLimit()) out->limit = reply.getLimit();
  out->needed_size = reply.getNeededSize();
  out->which = reply.which();
  switch (out->which) {
    case wire::Reply::NONE: break;
    case wire::Reply::HELLO: {
      auto h = reply.getHello();
      out->hello = HelloInfo{h.getVersion(),       h.getTask(),          h.getDaemonPid(),
                             h.getMaxFrameBytes(), h.getMaxInlineBody(), h.getMaxBatch()};
      break;
    }
    case wire::Reply::NAME: out->name = reply.getName(); break;
    case wire::Reply::EXTRACTED: {
      auto e = reply.getExtracted();
      out->extracted = ExtractedRight{e.getName(), static_cast<RightType>(e.getType())};
      break;
    }
    case wire::Reply::REFS: out->value = reply.getRefs(); break;
    case wire::Reply::TYPE: out->value = reply.getType(); break;
    case wire::Reply::NAMES: {
      auto names = reply.getNames();
      out->names.reserve(names.size());
      for (auto n : names) out->names.push_back(NameInfo{n.getName(), n.getType()});
      break;
    }
    case wire::Reply::ATTRIBUTES: {
      auto a = reply.getAttributes();
      out->attributes = PortStatus{
          a.getPset(),     a.getSeqno(),   a.getMscount(),   a.getQlimit(),    a.getMsgcount(),
          a.getSorights(), a.getSrights(), a.getPdrequest(), a.getNsrequest(), a.getFlags()};
      break;
    }
    case wire::Reply::MESSAGE: {
      bool ok = true;
      size_t next_fd = 0;
      out->message = decode_message(reply.getMessage(), fds, &next_fd, &out->regions, &ok, error);
      if (!ok) return false;
      break;
    }
    case wire::Reply::SEND_STATUSES: {
      auto list = reply.getSendStatuses();
      out->send_statuses.reserve(list.size());
      for (int32_t s : list) out->send_statuses.push_back(static_cast<Status>(s));
      break;
    }
    case wire::Reply::MESSAGES: {
      auto list = reply.getMessages();
      out->batch.resize(list.size());
      size_t next_fd = 0;
      for (unsigned i = 0; i < list.size(); ++i) {
        auto b = list[i];
        BatchedReceived& entry = out->batch[i];
        entry.status = static_cast<Status>(b.getStatus());
        if (b.hasLimit()) entry.limit = b.getLimit();
        bool ok = true;
        entry.message = decode_message(b.getMessage(), fds, &next_fd, &entry.regions, &ok, error);
        if (!ok) return false;
      }
      break;
    }
    case wire::Reply::BOOTSTRAP_LIST: {
      auto list = reply.getBootstrapList();
      out->bootstrap.reserve(list.size());
      for (auto e : list) {
        out->bootstrap.push_back(
            BootstrapEntry{e.getName(), e.getUid(), e.getPid(), e.getPort(), e.getSinceUnixMs()});
      }
      break;
    }
    case wire::Reply::INTROSPECTION: {
      auto page = reply.getIntrospection();
      out->introspection.json = page.getJson();
      out->introspection.next = page.getNext();
      break;
    }
    case wire::Reply::MONITOR_EVENTS: {
      auto events = reply.getMonitorEvents();
      out->monitor_events.reserve(events.size());
      for (auto e : events) out->monitor_events.emplace_back(e.begin(), e.size());
      break;
    }
    default:
      // A newer daemon's answer we do not know; the status still holds.
      break;
  }
  return true;
}

}  // namespace

int64_t wire_timeout(std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout) return -1;
  return timeout->count() < 0 ? 0 : static_cast<int64_t>(timeout->count());
}

Status check_dispositions(const OutgoingMessage& message) {
  for (const auto& d : message.descriptors()) {
    if (const auto* p = std::get_if<PortDescriptor>(&d);
        p != nullptr && !valid_send_disposition(p->disposition)) {
      return Status::kSendInvalidType;
    }
    if (const auto* p = std::get_if<OolPortsDescriptor>(&d);
        p != nullptr && !valid_send_disposition(p->disposition)) {
      return Status::kSendInvalidType;
    }
  }
  return Status::kSuccess;
}

Status encode_message(const OutgoingMessage& message, const OolRegion* body,
                      wire::OutMessage::Builder out) {
  if (Status s = check_dispositions(message); !ok(s)) return s;
  out.setRemote(message.remote());
  out.setRemoteDisposition(static_cast<uint8_t>(message.remote_disposition()));
  out.setLocal(message.local());
  out.setLocalDisposition(static_cast<uint8_t>(message.local_disposition()));
  out.setId(message.id());
  const auto& inline_body = message.body();
  if (body == nullptr && !inline_body.empty()) {
    auto data = out.initBody(static_cast<unsigned>(inline_body.size()));
    std::memcpy(data.begin(), inline_body.data(), inline_body.size());
  }
  const auto& descriptors = message.descriptors();
  const unsigned count = static_cast<unsigned>(descriptors.size()) + (body != nullptr ? 1 : 0);
  if (count != 0) {
    auto list = out.initDescriptors(count);
    auto put_region = [](wire::OolDescriptor::Builder ool, const OolRegion& region) {
      ool.setSize(region.size());
      ool.setVolatile(region.is_volatile());
      ool.setDeallocate(region.deallocate());
      ool.setReleaseSignal(region.pooled());
    };
    for (unsigned i = 0; i < descriptors.size(); ++i) {
      if (const auto* p = std::get_if<PortDescriptor>(&descriptors[i])) {
        auto port = list[i].initPort();
        port.setName(p->name);
        port.setDisposition(static_cast<uint8_t>(p->disposition));
      } else if (const auto* a = std::get_if<OolPortsDescriptor>(&descriptors[i])) {
        auto ports = list[i].initOolPorts();
        ports.setDisposition(static_cast<uint8_t>(a->disposition));
        auto names = ports.initNames(static_cast<unsigned>(a->names.size()));
        for (unsigned j = 0; j < a->names.size(); ++j) names.set(j, a->names[j]);
      } else {
        put_region(list[i].initOol(), std::get<OolRegion>(descriptors[i]));
      }
    }
    if (body != nullptr) {
      auto ool = list[count - 1].initOol();
      put_region(ool, *body);
      ool.setBody(true);
    }
  }
  return Status::kSuccess;
}

void encode_send_options(const SendOptions& options, uint64_t thread,
                         wire::SendOptions::Builder out) {
  out.setTimeoutMs(wire_timeout(options.timeout));
  out.setCache(options.cache);
  out.setNotify(options.notify);
  out.setNotifyDisposition(static_cast<uint8_t>(options.notify_disposition));
  out.setThread(thread);
}

void encode_receive_options(Name name, const ReceiveOptions& options,
                            wire::ReceiveOptions::Builder out) {
  out.setName(name);
  out.setTimeoutMs(wire_timeout(options.timeout));
  out.setMaxSize(options.max_size);
  out.setLarge(options.large);
  out.setTrailerSize(options.trailer_size);
}

void encode_introspect(const IntrospectQuery& query, wire::Introspect::Builder out) {
  out.setWhat(static_cast<wire::IntrospectWhat>(query.what));
  out.setTarget(query.target);
  out.setPid(query.pid);
  if (!query.cursor.empty()) out.setCursor(query.cursor);
  out.setLimit(query.limit);
}

void encode_monitor_start(const MonitorFilter& filter, wire::MonitorStart::Builder out) {
  out.setPort(filter.port);
  if (!filter.name.empty()) out.setName(filter.name);
  out.setTask(filter.task);
  out.setBuffer(filter.buffer);
}

bool decode_reply(wire::Reply::Reader reply, std::vector<UniqueFd>& fds, ReplyData* out,
                  std::string* error) {
  try {
    return decode_reply_unchecked(reply, fds, out, error);
  } catch (const kj::Exception& e) {
    *error = "malformed reply: " + std::string(e.getDescription().cStr());
  } catch (const std::exception& e) {
    *error = std::string("malformed reply: ") + e.what();
  }
  return false;
}

}  // namespace portd::detail
