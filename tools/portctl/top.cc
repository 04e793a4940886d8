#include "tools/portctl/top.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "tools/portctl/table.h"

namespace portctl {

Json top_frame(const Json& before, const Json& after, int64_t interval_ms, int64_t now_unix_ms,
               size_t rows) {
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> previous;
  for (const auto& p : before)
    previous[p.at("port").get<uint64_t>()] = {p.at("msgs_in").get<uint64_t>(),
                                              p.at("msgs_out").get<uint64_t>()};
  struct Row {
    uint64_t port, in, out, delta_in, delta_out;
    const Json* item;
  };
  std::vector<Row> all;
  all.reserve(after.size());
  for (const auto& p : after) {
    const uint64_t id = p.at("port").get<uint64_t>();
    const uint64_t in = p.at("msgs_in").get<uint64_t>();
    const uint64_t out = p.at("msgs_out").get<uint64_t>();
    auto it = previous.find(id);
    const uint64_t in0 = it == previous.end() ? 0 : std::min(it->second.first, in);
    const uint64_t out0 = it == previous.end() ? 0 : std::min(it->second.second, out);
    all.push_back(Row{id, in, out, in - in0, out - out0, &p});
  }
  std::sort(all.begin(), all.end(), [](const Row& a, const Row& b) {
    if (a.delta_in + a.delta_out != b.delta_in + b.delta_out)
      return a.delta_in + a.delta_out > b.delta_in + b.delta_out;
    if (a.in + a.out != b.in + b.out) return a.in + a.out > b.in + b.out;
    return a.port < b.port;
  });
  const double seconds = interval_ms > 0 ? double(interval_ms) / 1000.0 : 1.0;
  Json ports = Json::array();
  for (size_t i = 0; i < all.size() && i < rows; ++i) {
    const Row& r = all[i];
    const Json& p = *r.item;
    ports.push_back(Json{{"port", r.port},
                         {"receiver", p.at("receiver")},
                         {"msgs_in", r.in},
                         {"msgs_out", r.out},
                         {"delta_in", r.delta_in},
                         {"delta_out", r.delta_out},
                         {"in_per_s", double(r.delta_in) / seconds},
                         {"out_per_s", double(r.delta_out) / seconds},
                         {"queued", p.at("queued")},
                         {"qlimit", p.at("qlimit")}});
  }
  return Json{{"time_unix_ms", now_unix_ms},
              {"interval_ms", interval_ms},
              {"ports_total", after.size()},
              {"ports", std::move(ports)}};
}

std::string top_view(const Json& frame, const ViewOptions& o) {
  std::string out;
  if (o.legend)
    out += "portd top: " + local_time(frame.at("time_unix_ms").get<int64_t>()) + ", " +
           cell(frame.at("ports_total")) + " ports, interval " + cell(frame.at("interval_ms")) +
           " ms\n\n";
  Table t({{"PORT", Align::kRight},
           {"RECEIVER", Align::kRight},
           {"PID", Align::kRight},
           {"COMMAND", Align::kLeft},
           {"IN/S", Align::kRight},
           {"OUT/S", Align::kRight},
           {"IN", Align::kRight},
           {"OUT", Align::kRight},
           {"QUEUE", Align::kRight}});
  for (const auto& p : frame.at("ports")) {
    const Json& r = p.at("receiver");
    const bool has = r.is_object();
    t.add_row({cell(p.at("port")), has ? cell(r.at("task")) : "-", has ? cell(r.at("pid")) : "-",
               has && r.at("command").is_string() ? r.at("command").get<std::string>() : "-",
               cell(p.at("in_per_s")), cell(p.at("out_per_s")), cell(p.at("msgs_in")),
               cell(p.at("msgs_out")), cell(p.at("queued")) + "/" + cell(p.at("qlimit"))});
  }
  return out + t.render(o.legend);
}

}  // namespace portctl
