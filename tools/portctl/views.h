// The human views of portctl: each turns the daemon's JSON (the schema in
// docs/portctl.md) into text. Pure functions, so that they can be tested
// without a daemon.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace portctl {

using Json = nlohmann::ordered_json;

struct ViewOptions {
  bool legend = true;  // headers and footers (--no-legend turns them off)
};

// Small formatters, shared with the monitor and top views.
std::string cell(const Json& v);               // null -> "-", numbers, strings
std::string hex_name(const Json& v);           // 0x00000103, or "-"
std::string task_label(const Json& ref);       // "3 (pid 1234 echo_server)", or "-"
std::string rights_label(const Json& rights);  // "recv,send"
std::string local_time(int64_t unix_ms);       // 2024-11-21 11:52:03
std::string time_cell(int64_t unix_ms);        // 2024-11-21T11:52:03 (one table cell)
std::string duration(int64_t ms);              // 1d 2h 3m 4s

std::string status_view(const Json& status, const ViewOptions& o);
std::string tasks_view(const Json& tasks, const ViewOptions& o);
std::string quota_view(const Json& tasks, const ViewOptions& o);
// `uids`: one row per uid and quota, use against the per-uid limit.
std::string uids_view(const Json& uids, const ViewOptions& o);
std::string ports_view(const Json& ports, const ViewOptions& o);
std::string port_view(const Json& port, const ViewOptions& o);
// `spaces`: [{"task": {...}, "names": [...]}, ...] as `rights --json` prints.
std::string rights_view(const Json& spaces, const ViewOptions& o);
std::string sets_view(const Json& sets, const ViewOptions& o);
std::string names_view(const Json& names, const ViewOptions& o);

// Monitor: a fixed-width header and one line per event (a stream cannot be
// measured in advance).
std::string monitor_header();
std::string monitor_line(const Json& event);

}  // namespace portctl
