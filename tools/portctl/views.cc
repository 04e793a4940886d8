#include "tools/portctl/views.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "tools/portctl/table.h"

namespace portctl {

namespace {

const Align L = Align::kLeft;
const Align R = Align::kRight;

std::string footer(const ViewOptions& o, size_t n, const char* what) {
  if (!o.legend) return {};
  return "\n" + std::to_string(n) + " " + what + " listed.\n";
}

std::string command_of(const Json& ref) {
  if (!ref.is_object()) return "-";
  const Json& c = ref.value("command", Json(nullptr));
  return c.is_string() && !c.get<std::string>().empty() ? c.get<std::string>() : "-";
}

std::string get(const Json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) ? cell(obj.at(key)) : "-";
}

}  // namespace

std::string cell(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v.get<double>());
    return buf;
  }
  return v.dump();
}

std::string hex_name(const Json& v) {
  if (!v.is_number()) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v.get<uint32_t>());
  return buf;
}

std::string task_label(const Json& ref) {
  if (!ref.is_object()) return "-";
  return cell(ref.at("task")) + " (pid " + cell(ref.at("pid")) + " " + command_of(ref) + ")";
}

std::string rights_label(const Json& rights) {
  std::string out;
  for (const auto& r : rights) {
    const std::string s = r.get<std::string>();
    const char* shortname = s == "receive"     ? "recv"
                            : s == "send"      ? "send"
                            : s == "send_once" ? "sonce"
                            : s == "port_set"  ? "pset"
                            : s == "dead_name" ? "dead"
                                               : s.c_str();
    if (!out.empty()) out += ',';
    out += shortname;
  }
  return out.empty() ? "-" : out;
}

namespace {
std::string format_local(int64_t unix_ms, const char* format) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
}  // namespace

std::string local_time(int64_t unix_ms) { return format_local(unix_ms, "%Y-%m-%d %H:%M:%S"); }

std::string time_cell(int64_t unix_ms) { return format_local(unix_ms, "%Y-%m-%dT%H:%M:%S"); }

std::string duration(int64_t ms) {
  int64_t s = ms / 1000;
  const int64_t d = s / 86400;
  s %= 86400;
  const int64_t h = s / 3600;
  s %= 3600;
  const int64_t m = s / 60;
  s %= 60;
  std::string out;
  if (d > 0) out += std::to_string(d) + "d ";
  if (d > 0 || h > 0) out += std::to_string(h) + "h ";
  if (d > 0 || h > 0 || m > 0) out += std::to_string(m) + "m ";
  out += std::to_string(s) + "s";
  return out;
}

// ---------------------------------------------------------------------------

std::string status_view(const Json& j, const ViewOptions& o) {
  const Json& c = j.at("counters");
  const Json& viewer = j.at("viewer");
  Table t({{"FIELD", L}, {"VALUE", L}});
  t.add_row({"version", cell(j.at("version")) + " (protocol " + cell(j.at("protocol")) + ")"});
  t.add_row({"daemon", "pid " + cell(j.at("pid")) + ", uid " + cell(j.at("uid"))});
  t.add_row({"socket", cell(j.at("socket"))});
  t.add_row({"started", local_time(j.at("started_unix_ms").get<int64_t>()) + " (up " +
                            duration(j.at("uptime_ms").get<int64_t>()) + ")"});
  t.add_row({"tasks", cell(j.at("tasks"))});
  t.add_row({"ports", cell(j.at("ports"))});
  t.add_row({"port sets", cell(j.at("port_sets"))});
  t.add_row({"queued", cell(j.at("queued_messages")) + " messages, " + cell(j.at("queued_bytes")) +
                           " bytes"});
  t.add_row({"held", cell(j.at("held_messages")) + " messages, " + cell(j.at("held_bytes")) +
                         " bytes (in batches, not yet sent)"});
  t.add_row({"bootstrap names", cell(j.at("bootstrap_names"))});
  t.add_row({"monitors", cell(j.at("monitors"))});
  const Json& d = c.at("destroyed");
  t.add_row({"messages", "sent " + cell(c.at("messages_sent")) + ", received " +
                             cell(c.at("messages_received")) + ", destroyed " +
                             cell(c.at("messages_destroyed")) + ", refused " +
                             cell(c.at("messages_refused")) + ", in flight " +
                             cell(c.at("messages_in_flight"))});
  t.add_row({"destroyed", "port died " + cell(d.at("port_died")) + ", too large " +
                              cell(d.at("too_large")) + ", sender died " +
                              cell(d.at("sender_died"))});
  t.add_row({"notifications", cell(c.at("notifications")) + " (received " +
                                  cell(c.at("notifications_received")) + ", destroyed " +
                                  cell(c.at("notifications_destroyed")) + ")"});
  t.add_row({"viewer", "uid " + cell(viewer.at("uid")) +
                           (viewer.at("privileged").get<bool>() ? ", sees every task"
                                                                : ", sees its own tasks")});
  return t.render(o.legend);
}

std::string tasks_view(const Json& tasks, const ViewOptions& o) {
  Table t({{"TASK", R},
           {"PID", R},
           {"UID", R},
           {"COMMAND", L},
           {"NAMES", R},
           {"RECV", R},
           {"SEND", R},
           {"SONCE", R},
           {"PSET", R},
           {"DEAD", R},
           {"QMSGS", R},
           {"QBYTES", R},
           {"PARKED", R},
           {"QUOTA", L}});
  for (const auto& k : tasks) {
    const Json& n = k.at("names");
    const Json& q = k.at("quota");
    // The quota this task is closest to (task limits; `--quota` shows all).
    std::string nearest = "-";
    double worst = -1;
    for (const auto& [name, v] : q.items()) {
      const double limit = v.at("limit").get<double>();
      const double use = limit > 0 ? v.at("used").get<double>() / limit : 0;
      if (use > worst) {
        worst = use;
        char pct[64];
        std::snprintf(pct, sizeof pct, "%s:%.1f%%", name.c_str(), 100 * use);
        nearest = pct;
      }
    }
    t.add_row({cell(k.at("task")), cell(k.at("pid")), cell(k.at("uid")), command_of(k),
               cell(n.at("total")), cell(n.at("receive")), cell(n.at("send")),
               cell(n.at("send_once")), cell(n.at("port_set")), cell(n.at("dead_name")),
               cell(q.at("queued_messages").at("used")), cell(q.at("queued_bytes").at("used")),
               cell(q.at("parked_requests").at("used")), nearest});
  }
  return t.render(o.legend) + footer(o, tasks.size(), "tasks");
}

std::string quota_view(const Json& tasks, const ViewOptions& o) {
  Table t({{"TASK", R},
           {"PID", R},
           {"UID", R},
           {"QUOTA", L},
           {"USED", R},
           {"LIMIT", R},
           {"USE%", R},
           {"UID-USED", R},
           {"UID-LIMIT", R}});
  for (const auto& k : tasks) {
    const Json& q = k.at("quota");
    const Json& u = k.at("uid_quota");
    for (const auto& [name, v] : q.items()) {
      const uint64_t used = v.at("used").get<uint64_t>();
      const uint64_t limit = v.at("limit").get<uint64_t>();
      char pct[16];
      std::snprintf(pct, sizeof pct, "%.1f",
                    limit == 0 ? 0.0 : 100.0 * double(used) / double(limit));
      t.add_row({cell(k.at("task")), cell(k.at("pid")), cell(k.at("uid")), name, cell(v.at("used")),
                 cell(v.at("limit")), pct, get(u.value(name, Json(nullptr)), "used"),
                 get(u.value(name, Json(nullptr)), "limit")});
    }
    // Quotas that only a uid has (connections).
    for (const auto& [name, v] : u.items()) {
      if (q.contains(name)) continue;
      t.add_row({cell(k.at("task")), cell(k.at("pid")), cell(k.at("uid")), name, "-", "-", "-",
                 cell(v.at("used")), cell(v.at("limit"))});
    }
  }
  return t.render(o.legend);
}

std::string uids_view(const Json& uids, const ViewOptions& o) {
  Table t({{"UID", R}, {"TASKS", R}, {"QUOTA", L}, {"USED", R}, {"LIMIT", R}, {"USE%", R}});
  for (const auto& u : uids) {
    for (const auto& [name, v] : u.at("quota").items()) {
      const uint64_t used = v.at("used").get<uint64_t>();
      const uint64_t limit = v.at("limit").get<uint64_t>();
      char pct[16];
      std::snprintf(pct, sizeof pct, "%.1f",
                    limit == 0 ? 0.0 : 100.0 * double(used) / double(limit));
      t.add_row({cell(u.at("uid")), cell(u.at("tasks")), name, cell(v.at("used")),
                 cell(v.at("limit")), pct});
    }
  }
  return t.render(o.legend) + footer(o, uids.size(), "uids");
}

std::string ports_view(const Json& ports, const ViewOptions& o) {
  Table t({{"PORT", R},
           {"RECEIVER", R},
           {"PID", R},
           {"COMMAND", L},
           {"NAME", L},
           {"QUEUE", R},
           {"SEND", R},
           {"SONCE", R},
           {"SET", L},
           {"IN", R},
           {"OUT", R},
           {"WSEND", R},
           {"WRECV", R},
           {"CACHED", R}});
  for (const auto& p : ports) {
    const Json& r = p.at("receiver");
    const Json& set = p.at("set");
    t.add_row({cell(p.at("port")), get(r, "task"), get(r, "pid"), command_of(r),
               r.is_object() ? hex_name(r.at("name")) : "-",
               cell(p.at("queued")) + "/" + cell(p.at("qlimit")), cell(p.at("send_rights")),
               cell(p.at("send_once_rights")), set.is_object() ? hex_name(set.at("name")) : "-",
               cell(p.at("msgs_in")), cell(p.at("msgs_out")), cell(p.at("waiting_senders")),
               cell(p.at("waiting_receivers")), cell(p.at("cached"))});
  }
  return t.render(o.legend) + footer(o, ports.size(), "ports");
}

std::string port_view(const Json& p, const ViewOptions& o) {
  std::string out;
  const Json& r = p.at("receiver");
  const Json& req = p.at("requests");
  const Json& nr = p.at("notify_requests");
  Table head({{"FIELD", L}, {"VALUE", L}});
  head.add_row({"port", cell(p.at("port"))});
  head.add_row({"receiver", r.is_object()
                                ? "task " + task_label(r) + " name " + hex_name(r.at("name"))
                                : "- (in a message)"});
  head.add_row({"queue", cell(p.at("queued")) + "/" + cell(p.at("qlimit")) + " messages, seqno " +
                             cell(p.at("seqno"))});
  head.add_row({"rights", cell(p.at("send_rights")) + " send (make-send count " +
                              cell(p.at("make_send_count")) + "), " +
                              cell(p.at("send_once_rights")) + " send-once"});
  head.add_row({"set", p.at("set").is_object() ? hex_name(p.at("set").at("name")) + " (set " +
                                                     cell(p.at("set").at("set")) + ")"
                                               : "-"});
  head.add_row({"messages", cell(p.at("msgs_in")) + " in, " + cell(p.at("msgs_out")) + " out"});
  head.add_row({"waiting", cell(p.at("waiting_senders")) + " senders, " +
                               cell(p.at("waiting_receivers")) + " receivers, " +
                               cell(p.at("cached")) + " cached"});
  // Where each armed notification goes: "port N" (the notify port's id).
  auto to_port = [](const Json& id) {
    return id.is_null() ? std::string("-") : "port " + cell(id);
  };
  head.add_row({"requests", "no-senders " + to_port(nr.at("no_senders")) + ", port-destroyed " +
                                to_port(nr.at("port_destroyed")) + ", dead-name " +
                                cell(req.at("dead_name"))});
  std::string names;
  for (const auto& n : p.at("bootstrap_names")) names += (names.empty() ? "" : ", ") + cell(n);
  head.add_row({"bootstrap names", names.empty() ? "-" : names});
  out += head.render(o.legend);

  auto section = [&](const char* title, const Table& t) {
    if (t.rows() == 0) return;
    out += "\n";
    if (o.legend) out += std::string(title) + ":\n";
    out += t.render(o.legend);
  };
  Table holders({{"TASK", R},
                 {"PID", R},
                 {"UID", R},
                 {"COMMAND", L},
                 {"NAME", L},
                 {"RIGHTS", L},
                 {"UREFS", R}});
  for (const auto& h : p.at("holders"))
    holders.add_row({cell(h.at("task")), cell(h.at("pid")), cell(h.at("uid")), command_of(h),
                     hex_name(h.at("name")), rights_label(h.at("rights")), cell(h.at("urefs"))});
  section("Holders", holders);
  Table receivers({{"TASK", R}, {"PID", R}, {"COMMAND", L}, {"VIA", L}, {"TIMEOUT", R}});
  for (const auto& w : p.at("receivers")) {
    const int64_t timeout = w.at("timeout_ms").get<int64_t>();
    receivers.add_row({cell(w.at("task")), cell(w.at("pid")), command_of(w), cell(w.at("via")),
                       timeout < 0 ? "forever" : std::to_string(timeout) + "ms"});
  }
  section("Waiting receivers", receivers);
  Table senders({{"TASK", R},
                 {"PID", R},
                 {"COMMAND", L},
                 {"THREAD", R},
                 {"ID", R},
                 {"SIZE", R},
                 {"STATE", L}});
  for (const auto& s : p.at("senders"))
    senders.add_row({cell(s.at("task")), cell(s.at("pid")), command_of(s), cell(s.at("thread")),
                     cell(s.at("id")), cell(s.at("size")),
                     s.at("cached").get<bool>() ? "cached" : "waiting"});
  section("Waiting senders", senders);
  Table dn({{"TASK", R}, {"PID", R}, {"COMMAND", L}, {"NAME", L}, {"NOTIFY-PORT", R}});
  for (const auto& d : nr.at("dead_name"))
    dn.add_row({cell(d.at("task")), cell(d.at("pid")), command_of(d), hex_name(d.at("name")),
                cell(d.at("notify_port"))});
  section("Dead-name requests", dn);
  Table queue(
      {{"ID", R}, {"SIZE", R}, {"BODY", R}, {"SENDER", L}, {"DESCRIPTORS", R}, {"FLAGS", L}});
  for (const auto& m : p.at("queue")) {
    std::string flags;
    if (m.at("exempt").get<bool>()) flags = "exempt";
    if (m.at("waiting_sender").get<bool>())
      flags += flags.empty() ? "sender-waiting" : ",sender-waiting";
    const Json& s = m.at("sender");
    queue.add_row({cell(m.at("id")), cell(m.at("size")), cell(m.at("body_bytes")),
                   s.is_object() ? task_label(s) : "portd", cell(m.at("descriptors")),
                   flags.empty() ? "-" : flags});
  }
  section("Queue", queue);
  if (p.at("queue_truncated").get<bool>() && o.legend)
    out += "(first " + std::to_string(p.at("queue").size()) + " of " + cell(p.at("queued")) +
           " messages)\n";
  return out;
}

std::string rights_view(const Json& spaces, const ViewOptions& o) {
  std::string out;
  bool first = true;
  for (const auto& s : spaces) {
    const Json& task = s.at("task");
    if (!first) out += "\n";
    first = false;
    if (o.legend)
      out += "Task " + cell(task.at("task")) + " (pid " + cell(task.at("pid")) + ", uid " +
             cell(task.at("uid")) + ", " + command_of(task) +
             "): " + std::to_string(s.at("names").size()) + " names\n";
    Table t({{"NAME", L},
             {"RIGHTS", L},
             {"UREFS", R},
             {"PORT", R},
             {"DEAD", L},
             {"REQ", L},
             {"SET", L},
             {"QUEUE", R},
             {"PEER", L}});
    for (const auto& n : s.at("names")) {
      const Json& port = n.at("port").is_null() ? n.at("port_set") : n.at("port");
      t.add_row({hex_name(n.at("name")), rights_label(n.at("rights")), cell(n.at("urefs")),
                 cell(port), n.at("dead").get<bool>() ? "dead" : "-",
                 n.at("dead_name_request").get<bool>() ? "dnreq" : "-", hex_name(n.at("in_set")),
                 n.at("queued").is_null() ? "-" : cell(n.at("queued")) + "/" + cell(n.at("qlimit")),
                 task_label(n.at("peer"))});
    }
    out += t.render(o.legend);
  }
  return out;
}

std::string sets_view(const Json& sets, const ViewOptions& o) {
  Table t({{"SET", R},
           {"TASK", R},
           {"PID", R},
           {"COMMAND", L},
           {"NAME", L},
           {"QUEUED", R},
           {"WRECV", R},
           {"MEMBERS", L}});
  for (const auto& s : sets) {
    std::string members;
    for (const auto& m : s.at("members"))
      members += (members.empty() ? "" : ",") + cell(m.at("port"));
    t.add_row({cell(s.at("set")), cell(s.at("task")), cell(s.at("pid")), command_of(s),
               hex_name(s.at("name")), cell(s.at("queued")), cell(s.at("waiting_receivers")),
               members.empty() ? "-" : members});
  }
  return t.render(o.legend) + footer(o, sets.size(), "port sets");
}

std::string names_view(const Json& names, const ViewOptions& o) {
  Table t({{"NAME", L}, {"PORT", R}, {"UID", R}, {"PID", R}, {"TASK", R}, {"SINCE", L}});
  for (const auto& n : names)
    t.add_row({cell(n.at("name")), cell(n.at("port")), cell(n.at("uid")), cell(n.at("pid")),
               cell(n.at("task")), time_cell(n.at("since_unix_ms").get<int64_t>())});
  return t.render(o.legend) + footer(o, names.size(), "names");
}

// ---------------------------------------------------------------------------
// Monitor

namespace {

constexpr const char* kMonitorFormat = "%-15s  %-12s  %8s  %11s  %8s  %-30s  %-30s  %s";

std::string clock_time(int64_t unix_us) {
  const std::time_t t = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  const size_t n = std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lld", static_cast<long long>(unix_us % 1000000));
  return buf;
}

std::string line(const std::string& a, const std::string& b, const std::string& c,
                 const std::string& d, const std::string& e, const std::string& f,
                 const std::string& g, const std::string& h) {
  char buf[512];
  std::snprintf(buf, sizeof buf, kMonitorFormat, a.c_str(), b.c_str(), c.c_str(), d.c_str(),
                e.c_str(), f.c_str(), g.c_str(), h.c_str());
  std::string out = buf;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out + "\n";
}

}  // namespace

std::string monitor_header() {
  return line("TIME", "EVENT", "PORT", "ID", "SIZE", "SENDER", "RECEIVER", "DESCRIPTORS");
}

std::string monitor_line(const Json& e) {
  if (e.value("event", "") == "lost")
    return "-- lost " + cell(e.at("lost")) + " events (the monitor buffer was full) --\n";
  std::string descriptors;
  if (e.value("body_ool", false)) descriptors = "body ool";
  for (const auto& d : e.at("descriptors")) {
    const std::string type = d.at("type").get<std::string>();
    std::string text;
    if (type == "port") {
      text = "port " + rights_label(Json::array({d.at("right")})) + " " + cell(d.at("port"));
    } else if (type == "ool") {
      text = "ool " + cell(d.at("size")) + (d.at("volatile").get<bool>() ? " volatile" : "");
    } else {
      text = "ports " + rights_label(Json::array({d.at("right")})) + " x" + cell(d.at("count"));
    }
    descriptors += (descriptors.empty() ? "" : ", ") + text;
  }
  const uint64_t shown = e.at("descriptors").size();
  const uint64_t total = e.at("descriptor_count").get<uint64_t>();
  if (total > shown) descriptors += ", +" + std::to_string(total - shown) + " more";
  std::string event = cell(e.at("event"));
  if (!e.at("seqno").is_null()) event += " #" + cell(e.at("seqno"));
  const Json& sender = e.at("sender");
  return line(clock_time(e.at("time_unix_us").get<int64_t>()), event, cell(e.at("port")),
              cell(e.at("id")), cell(e.at("size")),
              sender.is_object() ? task_label(sender) : "portd", task_label(e.at("receiver")),
              descriptors.empty() ? "-" : descriptors);
}

}  // namespace portctl
