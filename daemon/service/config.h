// Config: everything an operator can set, where it comes from, and how it is
// checked.
//
// A value comes from, in increasing precedence: the built-in default, the
// configuration file (TOML, default PORTD_DEFAULT_CONFIG), a command-line flag.
// Every key is declared once, in config.cc's key table, with its flag, its
// help text, its range and whether SIGHUP can change it; the file parser, the
// flags (portd --help), --print-config and the reload diff are all made from
// that table, so a key cannot exist in one place and not the others.
//
// load_config() refuses anything it does not understand: unknown keys, wrong
// types, values out of range, a group that does not exist, an inline-body
// limit that leaves no room in a frame. Its error names the key, and where
// the value came from (file:line:column or the flag):
//
//   /etc/portd/portd.toml:12:1: quota.task.ports: must be between 0 and ...
//
// Keys that SIGHUP cannot change (the socket, the frame and inline-body
// limits, which every client learned at hello) keep their running values on
// reload; reloadable_part() does that.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/ipc/limits.h"

namespace portd::service {

enum class LogFormat : uint8_t {
  kAuto,     // journal when stderr is the journal ($JOURNAL_STREAM), else text
  kText,     // timestamps and levels, colored on a terminal
  kJournal,  // "<N>message": syslog priority prefixes, no timestamps
};

struct Config {
  // [socket]: only for a socket portd creates itself, not one systemd passes.
  std::string socket_path;  // empty: $PORTD_SOCKET, $XDG_RUNTIME_DIR/portd.sock, /run/portd/...
  uint32_t socket_mode = 0666;
  std::string socket_group;            // empty: left as created
  std::optional<uint32_t> socket_gid;  // socket_group resolved by load_config()

  // [log]
  std::string log_level = "info";
  LogFormat log_format = LogFormat::kAuto;

  // [limits] and [quota.task], [quota.uid]: limits.max_inline_body,
  // limits.max_descriptors and the quotas live in `limits`.
  uint32_t max_frame_bytes = 4u << 20;
  ipc::Limits limits;

  // [connection]: replies waiting for a client that does not read.
  uint64_t max_unsent_bytes = 16u << 20;
  uint64_t max_unsent_fds = 1024;
  // A connection that has not said hello this long after it was accepted is
  // closed.
  uint64_t handshake_timeout_ms = 10000;
};

// The room a frame keeps beside the inline body for the rest of a request.
inline constexpr uint32_t kFrameHeadroom = 64u << 10;

struct KeyInfo {
  std::string key;         // "quota.task.ports"
  std::string flag;        // "--quota-task-ports"
  std::string section;     // heading in --help: "Per-task quotas"
  std::string help;        // one sentence
  std::string value_name;  // "N", "BYTES", "PATH", ...
  bool reloadable = false;
};

// Every key, in the order of the example configuration file.
const std::vector<KeyInfo>& config_keys();

// One command-line setting: the key, its text as given, and the flag.
struct Setting {
  std::string key;
  std::string value;
  std::string origin;  // "--quota-task-ports"
};

struct LoadResult {
  std::optional<Config> config;  // set on success
  std::string error;             // set on failure
  bool file_read = false;        // whether a file was found and read
};

// Defaults, then the file at `path` (a missing file is an error only when
// `required`), then `settings`, then the checks across keys.
LoadResult load_config(const std::string& path, bool required,
                       const std::vector<Setting>& settings);

// A key's value as the file would spell it (TOML), e.g. `"info"`, `16384`,
// `0o666`. Empty for an unknown key.
std::string config_value(const Config& config, std::string_view key);

// The whole configuration as a TOML file that load_config() reads back.
std::string format_config(const Config& config);

struct Change {
  std::string key;
  std::string from;
  std::string to;
  bool reloadable = false;
};
std::vector<Change> diff_config(const Config& from, const Config& to);

// `next`, with the keys SIGHUP cannot change taken from `running`.
Config reloadable_part(const Config& running, const Config& next);

// Parses a size: digits with an optional binary suffix (K, M, G, T, or KiB,
// MiB, GiB, TiB). nullopt if malformed or above INT64_MAX.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace portd::service
