#include "daemon/server/introspect.h"

#include <capnp/message.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <charconv>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "daemon/server/driver.h"

namespace portd::server {

namespace {

using Json = nlohmann::ordered_json;
using ipc::CoreImpl;
using ipc::Entry;
using ipc::Message;
using ipc::PendingSend;
using ipc::Port;
using ipc::PortSet;
using ipc::Space;
using ipc::TaskId;
using ipc::Waiter;

constexpr ipc::Limit kQuotaLimits[] = {
    ipc::Limit::kNames,          ipc::Limit::kPorts,          ipc::Limit::kPortSets,
    ipc::Limit::kQueuedMessages, ipc::Limit::kQueuedBytes,    ipc::Limit::kOolBytes,
    ipc::Limit::kFdsInFlight,    ipc::Limit::kSendOnceRights, ipc::Limit::kNotifyRequests,
    ipc::Limit::kBootstrapNames, ipc::Limit::kParkedRequests,
};

// Longer poll timeouts than this wait forever (as the driver's timers).
constexpr int64_t kMaxTimeoutMs = int64_t{1} << 32;

// JSON text. Strings from clients (commands, bootstrap names) are bytes,
// not necessarily UTF-8: invalid sequences become U+FFFD rather than an
// exception.
std::string to_text(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* right_name(ipc::RightType t) {
  switch (t) {
    case ipc::RightType::kReceive: return "receive";
    case ipc::RightType::kSend: return "send";
    case ipc::RightType::kSendOnce: return "send_once";
    default: return "none";
  }
}

// An entry as its task would see it: a right to a port that died is a dead
// name, whether or not the core has converted it yet (it converts lazily,
// and introspection must not).
struct EntryView {
  uint32_t bits = 0;
  uint32_t urefs = 0;
  const Port* port = nullptr;
  const PortSet* pset = nullptr;
  bool dn_request = false;
};

EntryView view_entry(const Entry& e) {
  EntryView v{e.bits, e.urefs, e.port, e.pset, e.request != nullptr};
  if (e.port != nullptr && !e.port->active) {
    // As CoreImpl::convert_dead does it.
    v.urefs = (e.bits & ipc::kTypeSend) ? e.urefs : ((e.bits & ipc::kTypeSendOnce) ? 1 : 0);
    v.bits = ipc::kTypeDeadName;
    v.port = nullptr;
  }
  return v;
}

Json rights_of(uint32_t bits) {
  Json r = Json::array();
  if (bits & ipc::kTypeReceive) r.push_back("receive");
  if (bits & ipc::kTypeSend) r.push_back("send");
  if (bits & ipc::kTypeSendOnce) r.push_back("send_once");
  if (bits & ipc::kTypePortSet) r.push_back("port_set");
  if (bits & ipc::kTypeDeadName) r.push_back("dead_name");
  return r;
}

Json quota_of(const ipc::Quota& used, const ipc::Quota& limits) {
  Json q = Json::object();
  for (ipc::Limit l : kQuotaLimits)
    q[std::string(ipc::limit_name(l))] = Json{{"used", *used.find(l)}, {"limit", *limits.find(l)}};
  return q;
}

// A uid's quotas: those of its account, and its connections (which the
// shell counts).
Json uid_quota_of(const ipc::Account& account, const ipc::Limits& limits, uint64_t connections) {
  Json q = quota_of(account.used, limits.per_uid);
  q[std::string(ipc::limit_name(ipc::Limit::kConnections))] =
      Json{{"used", connections}, {"limit", limits.connections_per_uid}};
  return q;
}

// Everything a page's producers need.
struct Context {
  const CoreImpl& core;
  const TaskDirectory& directory;
  const Viewer& viewer;
  size_t work = 0;

  bool sees(const ipc::Task* t) const { return t != nullptr && viewer.sees(t->creds.uid); }
  bool sees(const Space* s) const { return s != nullptr && viewer.sees(s->creds.uid); }
  // Active ports: all of them for a privileged viewer, else those whose
  // receive right is in a space of the viewer's uid.
  bool sees(const Port* p) const {
    return p->active && (viewer.privileged || sees(static_cast<const Space*>(p->receiver)));
  }

  Json command(TaskId task) const {
    TaskDetails d;
    if (!directory.describe(task, &d)) return nullptr;
    return d.command;
  }
  // {task, pid, uid, command}: a task the viewer may see.
  Json task_ref(TaskId task, const ipc::Credentials& creds) const {
    return Json{{"task", task}, {"pid", creds.pid}, {"uid", creds.uid}, {"command", command(task)}};
  }
  // A sender as a message's trailer shows it to its receiver; the command
  // only if the viewer may see the task.
  Json sender_ref(const ipc::Trailer& t) const {
    if (t.sender == 0) return nullptr;  // the daemon
    const ipc::Task* task = core.find_task(t.sender);
    return Json{{"task", t.sender},
                {"pid", t.pid},
                {"uid", t.uid},
                {"command", sees(task) ? command(t.sender) : Json(nullptr)}};
  }
};

// ---------------------------------------------------------------------------
// Items

Json port_item(Context& c, const Port* p) {
  Json j;
  j["port"] = p->id;
  if (p->receiver != nullptr) {
    Json r = c.task_ref(p->receiver->task, p->receiver->creds);
    r["name"] = p->receiver_name;
    j["receiver"] = std::move(r);
  } else {
    j["receiver"] = nullptr;  // the receive right travels in a message
  }
  j["qlimit"] = p->qlimit;
  j["queued"] = p->queue.size();
  j["send_rights"] = p->srights;
  j["send_once_rights"] = p->sorights;
  j["make_send_count"] = p->mscount;
  j["seqno"] = p->seqno;
  if (p->pset != nullptr)
    j["set"] = Json{{"set", p->pset->id}, {"name", p->pset->name}};
  else
    j["set"] = nullptr;
  j["msgs_in"] = p->msgs_in;
  j["msgs_out"] = p->msgs_out;
  // Waiting senders and cached messages: in the senders' line, and (on a
  // rendezvous port) in the queue itself.
  uint64_t waiting = 0, cached = 0;
  for (const PendingSend* ps = p->senders.front(); ps != nullptr; ps = p->senders.next(ps)) {
    ++(ps->token != 0 ? waiting : cached);
    ++c.work;
  }
  if (p->queue.size() > p->counted) {
    for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m)) {
      if (m->rendezvous != nullptr) ++(m->rendezvous->token != 0 ? waiting : cached);
      ++c.work;
    }
  }
  j["waiting_senders"] = waiting;
  j["waiting_receivers"] = p->receivers.size();
  j["cached"] = cached;
  j["registered"] = p->registered;
  j["requests"] = Json{{"no_senders", !p->ns_request.empty()},
                       {"port_destroyed", !p->pd_request.empty()},
                       {"dead_name", p->dn_requests.size()}};
  ++c.work;
  return j;
}

Json message_item(Context& c, const Message* m) {
  // An out-of-line body is the body, not a descriptor.
  uint64_t body = m->body.size(), descriptors = 0;
  bool body_ool = false;
  for (const auto& d : m->descriptors) {
    if (const auto* ool = std::get_if<ipc::OolAttachment>(&d); ool != nullptr && ool->is_body) {
      body += ool->size;
      body_ool = true;
    } else {
      ++descriptors;
    }
  }
  return Json{{"id", m->id},
              {"size", ipc::mach_size(m->descriptors, m->body.size())},
              {"body_bytes", body},
              {"body_ool", body_ool},
              {"sender", c.sender_ref(m->trailer)},
              {"descriptors", descriptors},
              {"exempt", m->exempt},
              {"waiting_sender", m->rendezvous != nullptr}};
}

Json port_detail(Context& c, const Port* p) {
  Json j = port_item(c, p);

  // Who holds send and receive rights (a task has one name for both).
  std::vector<std::pair<TaskId, Json>> holders;
  for (const auto& [id, task] : c.core.tasks()) {
    ++c.work;
    if (!c.sees(task.get())) continue;
    const Space& space = task->space;
    auto it = space.by_port.find(const_cast<Port*>(p));
    if (it == space.by_port.end()) continue;
    const EntryView v = view_entry(space.table[it->second]);
    Json h = c.task_ref(id, task->creds);
    h["name"] = ipc::make_name(it->second, space.table[it->second].gen);
    h["rights"] = rights_of(v.bits);
    h["urefs"] = v.urefs;
    holders.emplace_back(id, std::move(h));
  }
  std::sort(holders.begin(), holders.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Json hl = Json::array();
  for (auto& [id, h] : holders)
    if (hl.size() < kDetailListMax) hl.push_back(std::move(h));
  j["holders"] = std::move(hl);

  Json receivers = Json::array();
  auto add_receivers = [&](const auto& list, const char* via) {
    for (const Waiter* w = list.front(); w != nullptr && receivers.size() < kDetailListMax;
         w = list.next(w)) {
      ++c.work;
      const ipc::Task* t = c.core.find_task(w->task);
      if (!c.sees(t)) continue;
      Json r = c.task_ref(w->task, t->creds);
      r["via"] = via;
      r["timeout_ms"] = w->options.timeout_ms;
      receivers.push_back(std::move(r));
    }
  };
  add_receivers(p->receivers, "port");
  if (p->pset != nullptr) add_receivers(p->pset->receivers, "set");
  j["receivers"] = std::move(receivers);

  Json senders = Json::array();
  auto add_sender = [&](const PendingSend* ps) {
    if (senders.size() >= kDetailListMax) return;
    Json s = c.sender_ref(ps->msg->trailer);
    s["thread"] = ps->thread;
    s["cached"] = ps->token == 0;
    s["id"] = ps->msg->id;
    s["size"] = ipc::mach_size(ps->msg->descriptors, ps->msg->body.size());
    senders.push_back(std::move(s));
  };
  for (const PendingSend* ps = p->senders.front(); ps != nullptr; ps = p->senders.next(ps)) {
    ++c.work;
    add_sender(ps);
  }
  Json queue = Json::array();
  for (const Message* m = p->queue.front(); m != nullptr; m = p->queue.next(m)) {
    ++c.work;
    if (m->rendezvous != nullptr) add_sender(m->rendezvous);
    if (queue.size() < kDetailListMax) queue.push_back(message_item(c, m));
  }
  j["senders"] = std::move(senders);

  Json dn = Json::array();
  for (const ipc::DnRequest* r = p->dn_requests.front(); r != nullptr && dn.size() < kDetailListMax;
       r = p->dn_requests.next(r)) {
    ++c.work;
    if (!c.sees(r->space)) continue;
    Json d = c.task_ref(r->space->task, r->space->creds);
    d["name"] = r->name;
    d["notify_port"] = r->notify.port != nullptr ? Json(r->notify.port->id) : Json(nullptr);
    dn.push_back(std::move(d));
  }
  auto request_port = [](const ipc::HeldRight& r) {
    return r.port != nullptr ? Json(r.port->id) : Json(nullptr);
  };
  j["notify_requests"] = Json{{"no_senders", request_port(p->ns_request)},
                              {"port_destroyed", request_port(p->pd_request)},
                              {"dead_name", std::move(dn)}};

  Json names = Json::array();
  if (p->registered != 0) {
    for (const auto& [name, b] : c.core.registry()) {
      ++c.work;
      if (b.right.port == p && names.size() < kDetailListMax) names.push_back(name);
    }
  }
  j["bootstrap_names"] = std::move(names);
  j["queue"] = std::move(queue);
  j["queue_truncated"] = p->queue.size() > kDetailListMax;
  return j;
}

Json task_item(Context& c, const ipc::Task& t) {
  Json j;
  j["task"] = t.id;
  j["pid"] = t.creds.pid;
  j["uid"] = t.creds.uid;
  j["gid"] = t.creds.gid;
  TaskDetails d;
  if (c.directory.describe(t.id, &d)) {
    j["command"] = d.command;
    j["connected_unix_ms"] = d.connected_unix_ms;
  } else {
    j["command"] = nullptr;
    j["connected_unix_ms"] = nullptr;
  }
  uint64_t total = 0, receive = 0, send = 0, send_once = 0, port_set = 0, dead = 0;
  const auto& table = t.space.table;
  for (size_t i = 1; i < table.size(); ++i) {
    const Entry& e = table[i];
    if (e.bits == 0) continue;
    const EntryView v = view_entry(e);
    ++total;
    receive += (v.bits & ipc::kTypeReceive) != 0;
    send += (v.bits & ipc::kTypeSend) != 0;
    send_once += (v.bits & ipc::kTypeSendOnce) != 0;
    port_set += (v.bits & ipc::kTypePortSet) != 0;
    dead += (v.bits & ipc::kTypeDeadName) != 0;
  }
  c.work += table.size();
  j["names"] = Json{{"total", total},         {"receive", receive},   {"send", send},
                    {"send_once", send_once}, {"port_set", port_set}, {"dead_name", dead}};
  const ipc::Limits& limits = c.core.limits();
  j["quota"] = quota_of(t.account->used, limits.per_task);
  j["uid_quota"] =
      uid_quota_of(*t.account->uid_account, limits, c.directory.uid_connections(t.creds.uid));
  return j;
}

Json uid_item(Context& c, const ipc::Account& account) {
  uint64_t tasks = 0;
  for (const auto& [id, t] : c.core.tasks()) {
    ++c.work;
    if (t->creds.uid == account.uid) ++tasks;
  }
  Json j;
  j["uid"] = account.uid;
  j["tasks"] = tasks;
  j["quota"] = uid_quota_of(account, c.core.limits(), c.directory.uid_connections(account.uid));
  return j;
}

Json set_item(Context& c, const PortSet& s) {
  Json j;
  j["set"] = s.id;
  j["task"] = s.space->task;
  j["pid"] = s.space->creds.pid;
  j["uid"] = s.space->creds.uid;
  j["command"] = c.command(s.space->task);
  j["name"] = s.name;
  Json members = Json::array();
  for (const Port* p = s.members.front(); p != nullptr; p = s.members.next(p)) {
    members.push_back(Json{{"port", p->id}, {"name", p->receiver_name}});
    ++c.work;
  }
  j["members"] = std::move(members);
  j["queued"] = s.queue.size();
  j["waiting_receivers"] = s.receivers.size();
  ++c.work;
  return j;
}

Json right_item(Context& c, const Space& space, uint32_t index) {
  const Entry& e = space.table[index];
  const EntryView v = view_entry(e);
  Json j;
  j["name"] = ipc::make_name(index, e.gen);
  j["rights"] = rights_of(v.bits);
  j["urefs"] = v.urefs;
  j["port"] = v.port != nullptr ? Json(v.port->id) : Json(nullptr);
  j["port_set"] = v.pset != nullptr ? Json(v.pset->id) : Json(nullptr);
  j["dead"] = (v.bits & ipc::kTypeDeadName) != 0;
  j["dead_name_request"] = v.dn_request;
  const bool receive = (v.bits & ipc::kTypeReceive) != 0;
  j["in_set"] = receive && v.port->pset != nullptr ? Json(v.port->pset->name) : Json(nullptr);
  // Who receives what this name sends to, if the viewer may see it.
  Json peer = nullptr;
  if (!receive && v.port != nullptr && v.port->receiver != nullptr &&
      c.sees(static_cast<const Space*>(v.port->receiver)))
    peer = c.task_ref(v.port->receiver->task, v.port->receiver->creds);
  j["peer"] = std::move(peer);
  j["qlimit"] = receive ? Json(v.port->qlimit) : Json(nullptr);
  j["queued"] = receive ? Json(v.port->queue.size()) : Json(nullptr);
  ++c.work;
  return j;
}

Json bootstrap_item(const std::string& name, const ipc::Binding& b) {
  return Json{{"name", name}, {"port", b.right.port->id}, {"uid", b.uid},
              {"pid", b.pid}, {"task", b.task},           {"since_unix_ms", b.since_unix_ms}};
}

// ---------------------------------------------------------------------------
// Pages

// A JSON array built item by item, so that its size is known as it grows.
class ArrayText {
 public:
  void add(const Json& item) {
    text_ += count_++ == 0 ? "[" : ",";
    text_ += to_text(item);
  }
  size_t bytes() const { return text_.size(); }
  size_t count() const { return count_; }
  std::string finish() && {
    if (count_ == 0) return "[]";
    text_ += ']';
    return std::move(text_);
  }

 private:
  std::string text_;
  size_t count_ = 0;
};

bool parse_cursor(const std::string& cursor, uint64_t* out) {
  *out = 0;
  if (cursor.empty()) return true;
  const char* end = cursor.data() + cursor.size();
  auto [ptr, ec] = std::from_chars(cursor.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// The keys of one page: those after the cursor whose value passes `keep`,
// smallest first, at most `limit` of them. `more` says whether the listing
// goes on, from `resume` once every key here is answered.
struct Selection {
  std::vector<uint64_t> keys;
  bool more = false;
  uint64_t resume = 0;
};

// Ids below `next_id` were each given out once, in increasing order, and
// never reused. Where the live ones are dense in (after, next_id), probing
// id by id costs O(page); otherwise one pass over the map costs O(map) (and
// a probe that finds too few live ids in kWorkBudget tries ends the page
// early, to go on from there). Pass next_id = UINT64_MAX for keys not given
// out that way: the pass is then always taken.
template <typename Map, typename Keep>
Selection select_keys(const Map& map, uint64_t after, uint64_t next_id, uint32_t limit, Keep keep,
                      size_t* work) {
  Selection s;
  const uint64_t span = next_id > after ? next_id - after - 1 : 0;
  if (next_id != UINT64_MAX && span <= 4 * map.size() + 4096) {
    uint64_t id = after;
    while (id + 1 < next_id && s.keys.size() < limit && *work < kWorkBudget) {
      ++id;
      ++*work;
      auto it = map.find(id);
      if (it != map.end() && keep(it->second)) s.keys.push_back(id);
    }
    s.more = id + 1 < next_id;
    s.resume = id;
    return s;
  }
  for (const auto& [key, value] : map)
    if (key > after && keep(value)) s.keys.push_back(key);
  *work += map.size();
  s.more = s.keys.size() > limit;
  if (s.more) {
    std::nth_element(s.keys.begin(), s.keys.begin() + limit, s.keys.end());
    s.keys.resize(limit);
  }
  std::sort(s.keys.begin(), s.keys.end());
  if (s.more) s.resume = s.keys.back();
  return s;
}

// Emits the items for the selected keys until the work budget or the byte
// budget is spent (at least one item per page).
template <typename Emit>
Page list_page(Context& c, const Selection& sel, Emit emit) {
  Page page;
  ArrayText out;
  size_t i = 0;
  for (; i < sel.keys.size(); ++i) {
    if (out.count() > 0 && (c.work >= kWorkBudget || out.bytes() >= kPageBytes)) break;
    out.add(emit(sel.keys[i]));
  }
  if (i < sel.keys.size())
    page.next = std::to_string(sel.keys[i - 1]);
  else if (sel.more)
    page.next = std::to_string(sel.resume);
  page.json = std::move(out).finish();
  return page;
}

Page refuse(Status s) {
  Page p;
  p.status = s;
  return p;
}

Page status_page(const CoreImpl& core, const DaemonInfo& info, const Viewer& viewer) {
  const auto& n = core.counters();
  Json j;
  j["version"] = info.version;
  j["protocol"] = info.protocol;
  j["pid"] = info.pid;
  j["uid"] = info.uid;
  j["socket"] = info.socket;
  j["started_unix_ms"] = info.started_unix_ms;
  j["uptime_ms"] = std::max<int64_t>(0, info.now_unix_ms - info.started_unix_ms);
  j["viewer"] = Json{{"uid", viewer.uid}, {"privileged", viewer.privileged}};
  j["tasks"] = core.tasks().size();
  j["ports"] = core.ports().size();
  j["port_sets"] = core.port_sets().size();
  j["queued_messages"] = core.queued_messages();
  j["queued_bytes"] = core.queued_bytes();
  j["held_messages"] = n.messages_held;
  j["held_bytes"] = n.held_bytes;
  j["bootstrap_names"] = core.registry().size();
  j["monitors"] = info.monitors;
  // The limits in force: per task, per uid, per message.
  const ipc::Limits& limits = core.limits();
  Json per_task = Json::object(), per_uid = Json::object();
  for (ipc::Limit l : kQuotaLimits) {
    per_task[std::string(ipc::limit_name(l))] = *limits.per_task.find(l);
    per_uid[std::string(ipc::limit_name(l))] = *limits.per_uid.find(l);
  }
  per_uid[std::string(ipc::limit_name(ipc::Limit::kConnections))] = limits.connections_per_uid;
  j["limits"] = Json{{"task", std::move(per_task)},
                     {"uid", std::move(per_uid)},
                     {"message", Json{{"message_bytes", limits.max_inline_body},
                                      {"message_descriptors", limits.max_descriptors},
                                      {"batch_messages", limits.max_batch}}}};
  j["counters"] = Json{{"messages_sent", n.messages_sent},
                       {"messages_received", n.messages_received},
                       {"messages_destroyed", n.messages_destroyed},
                       {"messages_refused", n.messages_refused},
                       {"messages_in_flight", n.messages_in_flight},
                       {"destroyed", Json{{"port_died", n.destroyed_port_died},
                                          {"too_large", n.destroyed_too_large},
                                          {"sender_died", n.destroyed_sender_died}}},
                       {"notifications", n.notifications},
                       {"notifications_received", n.notifications_received},
                       {"notifications_destroyed", n.notifications_destroyed}};
  Page page;
  page.json = to_text(j);
  return page;
}

}  // namespace

Page introspect(const CoreImpl& core, const TaskDirectory& directory, const DaemonInfo& info,
                const Viewer& viewer, const req::Introspect& q) {
  Context c{core, directory, viewer};
  using What = req::IntrospectWhat;
  uint64_t after = 0;
  if (q.what != What::kNames && !parse_cursor(q.cursor, &after))
    return refuse(Status::kInvalidArgument);

  switch (q.what) {
    case What::kStatus: return status_page(core, info, viewer);

    case What::kTasks: {
      auto keep = [&](const std::unique_ptr<ipc::Task>& t) {
        return c.sees(t.get()) && (q.target == 0 || t->id == q.target) &&
               (q.pid == 0 || t->creds.pid == q.pid);
      };
      // Task ids come from the shell: always one pass (there are few tasks).
      auto sel = select_keys(core.tasks(), after, UINT64_MAX, q.limit, keep, &c.work);
      return list_page(c, sel, [&](uint64_t id) { return task_item(c, *core.find_task(id)); });
    }

    case What::kPorts: {
      auto keep = [&](const Port* p) { return c.sees(p); };
      auto sel = select_keys(core.ports(), after, core.next_port_id(), q.limit, keep, &c.work);
      return list_page(c, sel, [&](uint64_t id) { return port_item(c, core.ports().at(id)); });
    }

    case What::kPort: {
      auto it = core.ports().find(q.target);
      if (it == core.ports().end() || !c.sees(it->second)) return refuse(Status::kNotFound);
      Page page;
      page.json = to_text(port_detail(c, it->second));
      return page;
    }

    case What::kRights: {
      const ipc::Task* t = core.find_task(q.target);
      if (!c.sees(t)) return refuse(Status::kNotFound);
      const Space& space = t->space;
      // Slots in index order; one page covers at most `limit` names and
      // kWorkBudget slots (free ones included).
      Page page;
      ArrayText out;
      uint64_t index = after + 1;
      for (; index < space.table.size(); ++index) {
        if (out.count() >= q.limit || c.work >= kWorkBudget || out.bytes() >= kPageBytes) break;
        ++c.work;
        if (space.table[index].bits == 0) continue;
        out.add(right_item(c, space, static_cast<uint32_t>(index)));
      }
      if (index < space.table.size()) page.next = std::to_string(index - 1);
      page.json = std::move(out).finish();
      return page;
    }

    case What::kSets: {
      auto keep = [&](const std::unique_ptr<PortSet>& s) { return c.sees(s->space); };
      auto sel = select_keys(core.port_sets(), after, core.next_pset_id(), q.limit, keep, &c.work);
      return list_page(c, sel, [&](uint64_t id) { return set_item(c, *core.port_sets().at(id)); });
    }

    case What::kUids: {
      // Keyed uid + 1, since a cursor key is "after" and uid 0 is root's.
      std::map<uint64_t, const ipc::Account*> accounts;
      for (const auto& [uid, a] : core.uid_accounts())
        if (viewer.sees(uid)) accounts.emplace(uint64_t{uid} + 1, a.get());
      c.work += core.uid_accounts().size();
      auto keep = [](const ipc::Account*) { return true; };
      auto sel = select_keys(accounts, after, UINT64_MAX, q.limit, keep, &c.work);
      return list_page(c, sel, [&](uint64_t key) { return uid_item(c, *accounts.at(key)); });
    }

    case What::kNames: {
      // Every client may list the registry (bootstrap_list), so everyone
      // sees all of it here too.
      const auto& registry = core.registry();
      auto it = q.cursor.empty() ? registry.begin() : registry.upper_bound(q.cursor);
      Page page;
      ArrayText out;
      std::string last;
      for (; it != registry.end(); ++it) {
        if (out.count() >= q.limit || out.bytes() >= kPageBytes) break;
        out.add(bootstrap_item(it->first, it->second));
        last = it->first;
      }
      if (it != registry.end()) page.next = last;
      page.json = std::move(out).finish();
      return page;
    }
  }
  return refuse(Status::kNotSupported);
}

std::string event_json(const ipc::MessageEvent& ev, uint64_t seq, int64_t time_unix_us,
                       const TaskDirectory& directory) {
  auto task = [&](TaskId id, uint32_t pid, uint32_t uid) -> Json {
    if (id == 0) return nullptr;
    TaskDetails d;
    return Json{{"task", id},
                {"pid", pid},
                {"uid", uid},
                {"command", directory.describe(id, &d) ? Json(d.command) : Json(nullptr)}};
  };
  Json j;
  j["seq"] = seq;
  j["time_unix_us"] = time_unix_us;
  switch (ev.kind) {
    case ipc::MessageEventKind::kSend: j["event"] = "send"; break;
    case ipc::MessageEventKind::kReceive: j["event"] = "receive"; break;
    case ipc::MessageEventKind::kDestroy: j["event"] = "destroy"; break;
  }
  j["port"] = ev.port;
  j["receiver"] = task(ev.receiver, ev.receiver_pid, ev.receiver_uid);
  j["sender"] = task(ev.sender, ev.sender_pid, ev.sender_uid);
  j["id"] = ev.id;
  j["size"] = ev.size;
  j["body_bytes"] = ev.body_bytes;
  j["body_ool"] = ev.body_ool;
  j["reply_port"] = ev.reply_port != 0 ? Json(ev.reply_port) : Json(nullptr);
  j["seqno"] = ev.kind == ipc::MessageEventKind::kReceive ? Json(ev.seqno) : Json(nullptr);
  j["descriptor_count"] = ev.descriptor_count;
  Json descriptors = Json::array();
  for (const auto& d : ev.descriptors) {
    switch (d.kind) {
      case ipc::DescriptorSummary::Kind::kPort:
        descriptors.push_back(Json{{"type", "port"},
                                   {"right", right_name(d.right)},
                                   {"port", d.port != 0 ? Json(d.port) : Json(nullptr)}});
        break;
      case ipc::DescriptorSummary::Kind::kOol:
        descriptors.push_back(Json{{"type", "ool"}, {"size", d.size}, {"volatile", d.is_volatile}});
        break;
      case ipc::DescriptorSummary::Kind::kOolPorts:
        descriptors.push_back(
            Json{{"type", "ool_ports"}, {"right", right_name(d.right)}, {"count", d.size}});
        break;
    }
  }
  j["descriptors"] = std::move(descriptors);
  return to_text(j);
}

// ---------------------------------------------------------------------------
// Introspector

Introspector::Introspector(asio::io_context& io, ipc::Core& core, ReplySink& sink,
                           const TaskDirectory& directory, DaemonInfo info)
    : io_(io),
      core_(core),
      sink_(sink),
      directory_(directory),
      info_(std::move(info)),
      alive_(std::make_shared<bool>(true)) {}

Introspector::~Introspector() {
  *alive_ = false;
  if (!subscriptions_.empty()) core_.set_observer(nullptr);
}

Viewer Introspector::viewer_for(const ipc::Credentials& creds) const {
  return Viewer{creds.uid, creds.uid == 0 || creds.uid == info_.uid};
}

void Introspector::handle(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id,
                          RequestBody& body) {
  if (auto* r = std::get_if<req::Introspect>(&body)) {
    do_introspect(task, creds, id, *r);
  } else if (auto* r = std::get_if<req::MonitorStart>(&body)) {
    do_start(task, creds, id, *r);
  } else if (auto* r = std::get_if<req::MonitorPoll>(&body)) {
    do_poll(task, id, *r);
  } else if (std::holds_alternative<req::MonitorStop>(body)) {
    do_stop(task, id);
  } else {
    reply_status(task, id, Status::kInvalidArgument);
  }
}

void Introspector::reply_status(ipc::TaskId task, uint64_t id, Status status) {
  capnp::MallocMessageBuilder message;
  encode_reply_header(message.initRoot<wire::Reply>(), id, status);
  sink_.post_reply(task, message, {});
}

void Introspector::do_introspect(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id,
                                 const req::Introspect& r) {
  info_.now_unix_ms = unix_now_us() / 1000;
  info_.monitors = subscriptions_.size();
  const Page page = introspect(core_.impl(), directory_, info_, viewer_for(creds), r);
  if (!ok(page.status)) {
    reply_status(task, id, page.status);
    return;
  }
  capnp::MallocMessageBuilder message(page.json.size() / sizeof(capnp::word) + 64);
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, id, Status::kSuccess);
  encode_introspection(page.json, page.next, reply);
  sink_.post_reply(task, message, {});
}

void Introspector::do_start(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id,
                            const req::MonitorStart& r) {
  const Viewer viewer = viewer_for(creds);
  const CoreImpl& core = core_.impl();
  uint64_t port = r.port;
  if (port != 0) {
    auto it = core.ports().find(port);
    const Port* p = it == core.ports().end() ? nullptr : it->second;
    if (p == nullptr ||
        !(viewer.privileged || (p->receiver != nullptr && viewer.sees(p->receiver->creds.uid)))) {
      reply_status(task, id, Status::kNotFound);
      return;
    }
  }
  if (!r.name.empty()) {
    auto it = core.registry().find(r.name);
    if (it == core.registry().end()) {
      reply_status(task, id, Status::kBootstrapUnknownService);
      return;
    }
    const uint64_t named = it->second.right.port->id;
    if (port != 0 && port != named) {
      reply_status(task, id, Status::kInvalidArgument);
      return;
    }
    port = named;
  }
  if (r.task != 0) {
    const ipc::Task* t = core.find_task(r.task);
    if (t == nullptr || !viewer.sees(t->creds.uid)) {
      reply_status(task, id, Status::kNotFound);
      return;
    }
  }
  // A new subscription replaces the old one; a poll waiting on the old one
  // gets what was left.
  if (auto it = subscriptions_.find(task); it != subscriptions_.end()) {
    if (it->second.polling) answer_poll(task, it->second);
    subscriptions_.erase(it);
  }
  Subscription& s = subscriptions_[task];
  s.viewer = viewer;
  s.port = port;
  s.task = r.task;
  s.capacity = r.buffer;
  update_observer();
  reply_status(task, id, Status::kSuccess);
}

void Introspector::do_poll(ipc::TaskId task, uint64_t id, const req::MonitorPoll& r) {
  auto it = subscriptions_.find(task);
  if (it == subscriptions_.end() || it->second.polling) {
    // Not monitoring, or a poll is already waiting.
    reply_status(task, id, Status::kInvalidArgument);
    return;
  }
  Subscription& s = it->second;
  s.polling = true;
  s.poll_id = id;
  s.poll_max = r.max;
  if (!s.items.empty() || r.timeout_ms == 0) {
    answer_poll(task, s);
    return;
  }
  if (r.timeout_ms > 0 && r.timeout_ms <= kMaxTimeoutMs) {
    s.timer = std::make_unique<asio::steady_timer>(io_, std::chrono::milliseconds(r.timeout_ms));
    std::weak_ptr<bool> alive = alive_;
    s.timer->async_wait([this, alive, task, id](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      auto flag = alive.lock();
      if (!flag || !*flag) return;
      auto it = subscriptions_.find(task);
      if (it != subscriptions_.end() && it->second.polling && it->second.poll_id == id)
        answer_poll(task, it->second);
    });
  }
}

void Introspector::do_stop(ipc::TaskId task, uint64_t id) {
  if (auto it = subscriptions_.find(task); it != subscriptions_.end()) {
    if (it->second.polling) answer_poll(task, it->second);
    subscriptions_.erase(it);
    update_observer();
  }
  reply_status(task, id, Status::kSuccess);
}

void Introspector::forget(ipc::TaskId task) {
  if (subscriptions_.erase(task) != 0) update_observer();
}

void Introspector::update_observer() {
  core_.set_observer(subscriptions_.empty() ? nullptr : this);
}

void Introspector::answer_poll(ipc::TaskId task, Subscription& s) {
  std::vector<std::string> markers;  // lost markers, built here
  std::vector<std::shared_ptr<const std::string>> taken;
  std::vector<std::string_view> out;
  size_t bytes = 0;
  while (!s.items.empty() && out.size() < s.poll_max) {
    Item& item = s.items.front();
    if (item.json) {
      if (!out.empty() && bytes + item.json->size() > kMonitorAnswerBytes) break;
      bytes += item.json->size();
      s.bytes -= item.json->size();
      --s.events;
      taken.push_back(std::move(item.json));
    } else {
      markers.push_back(to_text(Json{{"event", "lost"}, {"lost", item.lost}}));
      taken.push_back(nullptr);
    }
    s.items.pop_front();
  }
  size_t next_marker = 0;
  for (const auto& t : taken) out.push_back(t ? std::string_view(*t) : markers[next_marker++]);

  capnp::MallocMessageBuilder message(bytes / sizeof(capnp::word) + 64);
  auto reply = message.initRoot<wire::Reply>();
  encode_reply_header(reply, s.poll_id, Status::kSuccess);
  encode_monitor_events(out, reply);
  s.polling = false;
  s.timer.reset();
  sink_.post_reply(task, message, {});
}

void Introspector::post_answer(ipc::TaskId task, Subscription& s) {
  if (s.answer_posted) return;
  s.answer_posted = true;
  std::weak_ptr<bool> alive = alive_;
  // Answered at the end of this turn, with whatever else arrives meanwhile.
  asio::post(io_, [this, alive, task] {
    auto flag = alive.lock();
    if (!flag || !*flag) return;
    auto it = subscriptions_.find(task);
    if (it == subscriptions_.end()) return;
    it->second.answer_posted = false;
    if (it->second.polling && !it->second.items.empty()) answer_poll(task, it->second);
  });
}

void Introspector::on_message_event(const ipc::MessageEvent& ev) {
  const uint64_t seq = ++event_seq_;
  std::shared_ptr<const std::string> json;
  for (auto& [task, s] : subscriptions_) {
    if (s.port != 0 && ev.port != s.port) continue;
    if (s.task != 0 && ev.sender != s.task && ev.receiver != s.task) continue;
    if (!s.viewer.privileged && !(ev.sender != 0 && ev.sender_uid == s.viewer.uid) &&
        !(ev.receiver != 0 && ev.receiver_uid == s.viewer.uid))
      continue;
    if (!json)
      json = std::make_shared<const std::string>(event_json(ev, seq, unix_now_us(), directory_));
    if (s.events >= s.capacity || s.bytes + json->size() > kMonitorBufferBytes) {
      if (!s.items.empty() && !s.items.back().json)
        ++s.items.back().lost;
      else
        s.items.push_back(Item{nullptr, 1});
    } else {
      s.items.push_back(Item{json, 0});
      ++s.events;
      s.bytes += json->size();
    }
    if (s.polling) post_answer(task, s);
  }
}

}  // namespace portd::server
