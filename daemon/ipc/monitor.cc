// Message events for monitoring (monitor.h): built only when an observer is
// installed.
#include <algorithm>
#include <cassert>

#include "daemon/ipc/core_impl.h"

namespace portd::ipc {

namespace {

DescriptorSummary summarize_right(const HeldRight& r) {
  DescriptorSummary d;
  d.kind = DescriptorSummary::Kind::kPort;
  d.right = r.type;
  d.port = r.port != nullptr && !r.dead ? r.port->id : 0;
  return d;
}

}  // namespace

void CoreImpl::observe(MessageEventKind kind, const Port* port, const Message* m, uint64_t seqno) {
  assert(observer_ != nullptr && port != nullptr);
  MessageEvent ev;
  ev.kind = kind;
  ev.sender = m->trailer.sender;
  ev.sender_pid = m->trailer.pid;
  ev.sender_uid = m->trailer.uid;
  ev.port = port->id;
  if (port->active && port->receiver != nullptr) {
    ev.receiver = port->receiver->task;
    ev.receiver_pid = port->receiver->creds.pid;
    ev.receiver_uid = port->receiver->creds.uid;
  }
  ev.id = m->id;
  ev.size = mach_size(m->descriptors, m->body.size());
  ev.body_bytes = m->body.size();
  ev.reply_port = m->reply.port != nullptr && !m->reply.dead ? m->reply.port->id : 0;
  ev.seqno = kind == MessageEventKind::kReceive ? seqno : 0;
  ev.descriptors.reserve(std::min(m->descriptors.size(), MessageEvent::kMaxDescriptors));
  for (const auto& d : m->descriptors) {
    if (const auto* ool = std::get_if<OolAttachment>(&d); ool != nullptr && ool->is_body) {
      ev.body_bytes += ool->size;
      ev.body_ool = true;
      continue;
    }
    ++ev.descriptor_count;
    if (ev.descriptors.size() == MessageEvent::kMaxDescriptors) continue;
    if (const auto* r = std::get_if<HeldRight>(&d)) {
      ev.descriptors.push_back(summarize_right(*r));
    } else if (const auto* ool = std::get_if<OolAttachment>(&d)) {
      DescriptorSummary s;
      s.kind = DescriptorSummary::Kind::kOol;
      s.size = ool->size;
      s.is_volatile = ool->is_volatile;
      ev.descriptors.push_back(s);
    } else {
      const auto& ports = std::get<HeldPorts>(d);
      DescriptorSummary s;
      s.kind = DescriptorSummary::Kind::kOolPorts;
      s.right = ports.type;
      s.size = ports.rights.size();
      ev.descriptors.push_back(s);
    }
  }
  observer_->on_message_event(ev);
}

}  // namespace portd::ipc
