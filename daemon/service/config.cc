#include "daemon/service/config.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>

namespace portd::service {

namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

enum class Kind {
  kPath,    // a string
  kMode,    // permission bits, written in octal
  kGroup,   // a group name or number
  kLevel,   // a log level
  kFormat,  // a log format
  kCount,   // a non-negative integer
  kBytes,   // a non-negative integer, or a string with a binary suffix
};

constexpr const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
constexpr const char* kFormats[] = {"auto", "text", "journal"};

// A value of any kind: numbers in `n`, everything else in `s`.
struct Value {
  uint64_t n = 0;
  std::string s;
};

struct Key {
  KeyInfo info;
  Kind kind;
  uint64_t min = 0;
  uint64_t max = kInt64Max;
  std::function<Value(const Config&)> get;
  std::function<void(Config&, const Value&)> set;
};

// What each quota counts, for the help text.
const char* quota_noun(ipc::Limit l) {
  switch (l) {
    case ipc::Limit::kNames: return "name-space entries (rights and dead names)";
    case ipc::Limit::kPorts: return "ports (receive rights held or sent and not yet received)";
    case ipc::Limit::kPortSets: return "port sets";
    case ipc::Limit::kQueuedMessages: return "messages sent and not yet received";
    case ipc::Limit::kQueuedBytes: return "inline bytes of messages sent and not yet received";
    case ipc::Limit::kOolBytes: return "out-of-line bytes of messages sent and not yet received";
    case ipc::Limit::kFdsInFlight: return "file descriptors in messages not yet received";
    case ipc::Limit::kSendOnceRights: return "send-once rights made and not yet used";
    case ipc::Limit::kNotifyRequests: return "armed notification requests";
    case ipc::Limit::kBootstrapNames: return "names registered with the bootstrap registry";
    case ipc::Limit::kParkedRequests: return "blocked sends, receives and look-ups";
    case ipc::Limit::kNone:
    case ipc::Limit::kMessageBytes:
    case ipc::Limit::kMessageDescriptors:
    case ipc::Limit::kBatchMessages:
    case ipc::Limit::kConnections:  // per uid only: its own key, below
    case ipc::Limit::kCount: break;
  }
  return nullptr;
}

bool is_byte_quota(ipc::Limit l) {
  return l == ipc::Limit::kQueuedBytes || l == ipc::Limit::kOolBytes;
}

std::string dashes(std::string s) {
  for (char& c : s)
    if (c == '_' || c == '.') c = '-';
  return s;
}

std::vector<Key> make_keys() {
  std::vector<Key> keys;
  const auto restart = " Needs a restart to change.";

  // [socket]
  keys.push_back({{"socket.path", "--socket", "Socket",
                   "Path of the socket portd creates when systemd passes none (default: "
                   "$PORTD_SOCKET, else $XDG_RUNTIME_DIR/portd.sock, else /run/portd/portd.sock)." +
                       std::string(restart),
                   "PATH", false},
                  Kind::kPath,
                  0,
                  0,
                  [](const Config& c) {
                    return Value{0, c.socket_path};
                  },
                  [](Config& c, const Value& v) { c.socket_path = v.s; }});
  keys.push_back(
      {{"socket.mode", "--socket-mode", "Socket",
        "Permission bits of a socket portd creates, in octal (access control is by uid, inside "
        "the daemon)." +
            std::string(restart),
        "MODE", false},
       Kind::kMode,
       0,
       0777,
       [](const Config& c) {
         return Value{c.socket_mode, {}};
       },
       [](Config& c, const Value& v) { c.socket_mode = static_cast<uint32_t>(v.n); }});
  keys.push_back({{"socket.group", "--socket-group", "Socket",
                   "Group (name or number) of a socket portd creates; empty leaves it as "
                   "created." +
                       std::string(restart),
                   "GROUP", false},
                  Kind::kGroup,
                  0,
                  0,
                  [](const Config& c) {
                    return Value{0, c.socket_group};
                  },
                  [](Config& c, const Value& v) { c.socket_group = v.s; }});

  // [log]
  keys.push_back({{"log.level", "--log-level", "Logging",
                   "Least severe level logged: trace, debug, info, warn, error, critical, off. "
                   "info logs every connect and disconnect; debug every refused request.",
                   "LEVEL", true},
                  Kind::kLevel,
                  0,
                  0,
                  [](const Config& c) {
                    return Value{0, c.log_level};
                  },
                  [](Config& c, const Value& v) { c.log_level = v.s; }});
  keys.push_back({{"log.format", "--log-format", "Logging",
                   "auto, text or journal. journal writes syslog priority prefixes (<N>) and no "
                   "timestamps; auto picks it when stderr is the journal ($JOURNAL_STREAM).",
                   "FORMAT", true},
                  Kind::kFormat,
                  0,
                  0,
                  [](const Config& c) {
                    return Value{0, kFormats[static_cast<int>(c.log_format)]};
                  },
                  [](Config& c, const Value& v) {
                    for (int i = 0; i < 3; ++i)
                      if (v.s == kFormats[i]) c.log_format = static_cast<LogFormat>(i);
                  }});

  // [limits]
  keys.push_back(
      {{"limits.max_frame_bytes", "--max-frame-bytes", "Limits",
        "Largest frame (one request) a client may send; clients learn it at hello." +
            std::string(restart),
        "BYTES", false},
       Kind::kBytes,
       64u << 10,
       64u << 20,
       [](const Config& c) {
         return Value{c.max_frame_bytes, {}};
       },
       [](Config& c, const Value& v) { c.max_frame_bytes = static_cast<uint32_t>(v.n); }});
  keys.push_back(
      {{"limits.max_inline_body", "--max-inline-body", "Limits",
        "Largest message body sent inline; libportd sends larger bodies out of line "
        "(its threshold, 64KiB by default, never exceeds this value, which it learns "
        "at hello). At most "
        "limits.max_frame_bytes - 64KiB; by default 1MiB, or less if the frame "
        "limit needs it." +
            std::string(restart),
        "BYTES", false},
       Kind::kBytes,
       4u << 10,
       (64u << 20) - kFrameHeadroom,
       [](const Config& c) {
         return Value{c.limits.max_inline_body, {}};
       },
       [](Config& c, const Value& v) { c.limits.max_inline_body = static_cast<uint32_t>(v.n); }});
  keys.push_back(
      {{"limits.max_descriptors", "--max-descriptors", "Limits",
        "Most descriptors (and ports in port arrays) in one message.", "N", true},
       Kind::kCount,
       1,
       1u << 20,
       [](const Config& c) {
         return Value{c.limits.max_descriptors, {}};
       },
       [](Config& c, const Value& v) { c.limits.max_descriptors = static_cast<uint32_t>(v.n); }});
  keys.push_back(
      {{"limits.max_batch", "--max-batch", "Limits",
        "Most messages in one batched send or receive request (protocol version 2).", "N", true},
       Kind::kCount,
       1,
       65536,
       [](const Config& c) {
         return Value{c.limits.max_batch, {}};
       },
       [](Config& c, const Value& v) { c.limits.max_batch = static_cast<uint32_t>(v.n); }});

  // [connection]
  keys.push_back({{"connection.max_unsent_bytes", "--max-unsent-bytes", "Connections",
                   "Reply bytes waiting for a client above which portd stops reading its "
                   "requests (until half of it drains).",
                   "BYTES", true},
                  Kind::kBytes,
                  64u << 10,
                  kInt64Max,
                  [](const Config& c) {
                    return Value{c.max_unsent_bytes, {}};
                  },
                  [](Config& c, const Value& v) { c.max_unsent_bytes = v.n; }});
  keys.push_back({{"connection.max_unsent_fds", "--max-unsent-fds", "Connections",
                   "File descriptors in replies waiting for a client above which portd stops "
                   "reading its requests.",
                   "N", true},
                  Kind::kCount,
                  1,
                  1u << 20,
                  [](const Config& c) {
                    return Value{c.max_unsent_fds, {}};
                  },
                  [](Config& c, const Value& v) { c.max_unsent_fds = v.n; }});
  keys.push_back({{"connection.handshake_timeout_ms", "--handshake-timeout-ms", "Connections",
                   "Milliseconds a new connection has to say hello; one that has not is closed "
                   "(with a log line).",
                   "MS", true},
                  Kind::kCount,
                  1,
                  3600u * 1000,
                  [](const Config& c) {
                    return Value{c.handshake_timeout_ms, {}};
                  },
                  [](Config& c, const Value& v) { c.handshake_timeout_ms = v.n; }});

  // [quota.task] and [quota.uid]: one key per quota in limits.h.
  for (const bool per_task : {true, false}) {
    for (int i = 1; i < static_cast<int>(ipc::Limit::kCount); ++i) {
      const auto l = static_cast<ipc::Limit>(i);
      const char* noun = quota_noun(l);
      if (noun == nullptr) continue;  // a per-message limit, under [limits]
      const std::string name(ipc::limit_name(l));
      const std::string scope = per_task ? "task" : "uid";
      const std::string help =
          per_task ? "Most " + std::string(noun) + " one task may hold."
                   : "Most " + std::string(noun) + " all tasks of one uid may hold together.";
      keys.push_back({{"quota." + scope + "." + name, "--quota-" + scope + "-" + dashes(name),
                       per_task ? "Per-task quotas" : "Per-uid quotas", help,
                       is_byte_quota(l) ? "BYTES" : "N", true},
                      is_byte_quota(l) ? Kind::kBytes : Kind::kCount,
                      0,
                      kInt64Max,
                      [per_task, l](const Config& c) {
                        const auto& q = per_task ? c.limits.per_task : c.limits.per_uid;
                        return Value{*q.find(l), {}};
                      },
                      [per_task, l](Config& c, const Value& v) {
                        auto& q = per_task ? c.limits.per_task : c.limits.per_uid;
                        *q.find(l) = v.n;
                      }});
    }
  }
  // A task is one connection: this one is per uid only.
  keys.push_back({{"quota.uid.connections", "--quota-uid-connections", "Per-uid quotas",
                   "Most connections all tasks of one uid may have open at once, clients that "
                   "have not said hello yet included.",
                   "N", true},
                  Kind::kCount,
                  0,
                  kInt64Max,
                  [](const Config& c) {
                    return Value{c.limits.connections_per_uid, {}};
                  },
                  [](Config& c, const Value& v) { c.limits.connections_per_uid = v.n; }});
  return keys;
}

const std::vector<Key>& all_keys() {
  static const std::vector<Key> keys = make_keys();
  return keys;
}

const Key* find_key(std::string_view name) {
  for (const auto& k : all_keys())
    if (k.info.key == name) return &k;
  return nullptr;
}

bool is_key_prefix(std::string_view prefix) {
  for (const auto& k : all_keys())
    if (k.info.key.size() > prefix.size() && k.info.key.compare(0, prefix.size(), prefix) == 0 &&
        k.info.key[prefix.size()] == '.')
      return true;
  return false;
}

// ---------------------------------------------------------------------------
// Values

std::optional<uint64_t> parse_digits(std::string_view text, int base) {
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || end != text.data() + text.size() || v > kInt64Max) return std::nullopt;
  return v;
}

// A TOML basic string.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string format_bytes(uint64_t n, bool toml) {
  static constexpr const char* kSuffix[] = {"KiB", "MiB", "GiB", "TiB"};
  int unit = -1;
  while (unit < 3 && n != 0 && n % 1024 == 0) {
    n /= 1024;
    ++unit;
  }
  if (unit < 0) return std::to_string(n);
  const std::string s = std::to_string(n) + kSuffix[unit];
  return toml ? quoted(s) : s;
}

// As TOML spells it, or (toml false) as a message shows it.
std::string format_value(const Key& k, const Value& v, bool toml = true) {
  switch (k.kind) {
    case Kind::kPath:
    case Kind::kGroup:
    case Kind::kLevel:
    case Kind::kFormat: return toml ? quoted(v.s) : v.s;
    case Kind::kMode: {
      char buf[16];
      std::snprintf(buf, sizeof buf, "0o%03llo", static_cast<unsigned long long>(v.n));
      return buf;
    }
    case Kind::kCount: return std::to_string(v.n);
    case Kind::kBytes: return format_bytes(v.n, toml);
  }
  return {};
}

std::string one_of(const char* const* names, size_t count) {
  std::string s;
  for (size_t i = 0; i < count; ++i) s += (i ? ", " : "") + std::string(names[i]);
  return s;
}

// Checks a string-valued kind and a number against the key's range.
bool check(const Key& k, Value& v, std::string* problem) {
  switch (k.kind) {
    case Kind::kLevel:
      for (const char* l : kLevels)
        if (v.s == l) return true;
      *problem = "expected one of " + one_of(kLevels, std::size(kLevels)) + "; got " + quoted(v.s);
      return false;
    case Kind::kFormat:
      for (const char* f : kFormats)
        if (v.s == f) return true;
      *problem =
          "expected one of " + one_of(kFormats, std::size(kFormats)) + "; got " + quoted(v.s);
      return false;
    case Kind::kPath: {
      if (v.s.size() >= sizeof(sockaddr_un{}.sun_path)) {
        *problem = "longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                   " bytes (a Unix socket path's limit)";
        return false;
      }
      return true;
    }
    case Kind::kGroup: return true;
    case Kind::kMode:
    case Kind::kCount:
    case Kind::kBytes:
      if (v.n < k.min || v.n > k.max) {
        *problem = "must be between " + format_value(k, Value{k.min, {}}, false) + " and " +
                   format_value(k, Value{k.max, {}}, false) + "; got " + format_value(k, v, false);
        return false;
      }
      return true;
  }
  return true;
}

const char* kSizeHint =
    "expected a size in bytes: an integer, or a string such as \"64KiB\", \"16MiB\", \"4GiB\"";

// A value from the command line.
bool from_text(const Key& k, std::string_view text, Value* out, std::string* problem) {
  switch (k.kind) {
    case Kind::kPath:
    case Kind::kGroup:
    case Kind::kLevel:
    case Kind::kFormat: out->s = std::string(text); break;
    case Kind::kMode: {
      if (text.substr(0, 2) == "0o") text.remove_prefix(2);
      const auto v = text.size() <= 4 ? parse_digits(text, 8) : std::nullopt;
      if (!v) {
        *problem = "expected permission bits in octal, such as 0660; got " + quoted(text);
        return false;
      }
      out->n = *v;
      break;
    }
    case Kind::kCount: {
      const auto v = parse_digits(text, 10);
      if (!v) {
        *problem = "expected a non-negative integer; got " + quoted(text);
        return false;
      }
      out->n = *v;
      break;
    }
    case Kind::kBytes: {
      const auto v = parse_size(text);
      if (!v) {
        *problem = std::string(kSizeHint) + "; got " + quoted(text);
        return false;
      }
      out->n = *v;
      break;
    }
  }
  return check(k, *out, problem);
}

// A value from the file.
bool from_node(const Key& k, const toml::node& node, Value* out, std::string* problem) {
  const auto integer = [&](uint64_t* n) {
    const auto* i = node.as_integer();
    if (i == nullptr) return false;
    if (i->get() < 0) {
      *problem = "must be between " + format_value(k, Value{k.min, {}}, false) + " and " +
                 format_value(k, Value{k.max, {}}, false) + "; got " + std::to_string(i->get());
      return false;
    }
    *n = static_cast<uint64_t>(i->get());
    return true;
  };
  switch (k.kind) {
    case Kind::kPath:
    case Kind::kGroup:
    case Kind::kLevel:
    case Kind::kFormat:
      if (const auto* s = node.as_string()) {
        out->s = s->get();
        break;
      }
      if (k.kind == Kind::kGroup && node.as_integer()) {
        if (!integer(&out->n)) return false;
        out->s = std::to_string(out->n);
        break;
      }
      *problem = k.kind == Kind::kGroup ? "expected a group name or number" : "expected a string";
      return false;
    case Kind::kMode:
      if (const auto* s = node.as_string()) return from_text(k, s->get(), out, problem);
      if (const auto* i = node.as_integer();
          i != nullptr && !!(i->flags() & toml::value_flags::format_as_octal)) {
        if (!integer(&out->n)) return false;
        break;
      }
      *problem = "expected permission bits in octal: 0o660 or \"0660\"";
      return false;
    case Kind::kCount:
      if (!integer(&out->n)) {
        if (problem->empty()) *problem = "expected a non-negative integer";
        return false;
      }
      break;
    case Kind::kBytes:
      if (const auto* s = node.as_string()) {
        const auto v = parse_size(s->get());
        if (!v) {
          *problem = std::string(kSizeHint) + "; got " + quoted(s->get());
          return false;
        }
        out->n = *v;
        break;
      }
      if (!integer(&out->n)) {
        if (problem->empty()) *problem = kSizeHint;
        return false;
      }
      break;
  }
  return check(k, *out, problem);
}

std::string where(const toml::source_region& src) {
  std::string s = src.path ? *src.path : std::string("<config>");
  return s + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

// Applies every key of `table` (recursively) to `config`.
bool apply_table(const toml::table& table, const std::string& prefix, Config* config,
                 std::map<std::string, std::string>* origins, std::string* error) {
  for (const auto& [name, node] : table) {
    const std::string full =
        prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
    if (const Key* k = find_key(full)) {
      Value v;
      std::string problem;
      if (!from_node(*k, node, &v, &problem)) {
        *error = where(name.source()) + ": " + full + ": " + problem;
        return false;
      }
      k->set(*config, v);
      (*origins)[full] = where(name.source());
      continue;
    }
    const auto* sub = node.as_table();
    if (sub != nullptr && is_key_prefix(full)) {
      if (!apply_table(*sub, full, config, origins, error)) return false;
      continue;
    }
    *error = where(name.source()) + ": " + full + (sub ? ": unknown section" : ": unknown key");
    return false;
  }
  return true;
}

bool read_file(const std::string& path, std::string* text, int* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    text->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

bool resolve_group(const std::string& group, std::optional<uint32_t>* gid, std::string* problem) {
  gid->reset();
  if (group.empty()) return true;
  if (const auto n = parse_digits(group, 10)) {
    if (*n > std::numeric_limits<uint32_t>::max() - 1) {
      *problem = "group id out of range: " + group;
      return false;
    }
    *gid = static_cast<uint32_t>(*n);
    return true;
  }
  std::vector<char> buf(16384);
  struct group entry;
  struct group* found = nullptr;
  int r;
  while ((r = ::getgrnam_r(group.c_str(), &entry, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1u << 20))
    buf.resize(buf.size() * 4);
  if (r != 0) {
    *problem = "cannot look group " + quoted(group) + " up: " + std::strerror(r);
    return false;
  }
  if (found == nullptr) {
    *problem = "no such group: " + quoted(group);
    return false;
  }
  *gid = found->gr_gid;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------

const std::vector<KeyInfo>& config_keys() {
  static const std::vector<KeyInfo> infos = [] {
    std::vector<KeyInfo> v;
    for (const auto& k : all_keys()) v.push_back(k.info);
    return v;
  }();
  return infos;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const auto n = parse_digits(text.substr(0, digits), 10);
  if (!n) return std::nullopt;
  std::string_view suffix = text.substr(digits);
  int shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      default: return std::nullopt;
    }
    suffix.remove_prefix(1);
    if (!suffix.empty() && suffix != "iB") return std::nullopt;
  }
  if (*n > (kInt64Max >> shift)) return std::nullopt;
  return *n << shift;
}

LoadResult load_config(const std::string& path, bool required,
                       const std::vector<Setting>& settings) {
  LoadResult result;
  Config config;
  // Where each key got its value, for errors that involve two keys.
  std::map<std::string, std::string> origins;

  if (!path.empty()) {
    std::string text;
    int err = 0;
    if (read_file(path, &text, &err)) {
      result.file_read = true;
      try {
        const toml::table table = toml::parse(text, path);
        if (!apply_table(table, "", &config, &origins, &result.error)) return result;
      } catch (const toml::parse_error& e) {
        const auto& src = e.source();
        result.error = path + ":" + std::to_string(src.begin.line) + ":" +
                       std::to_string(src.begin.column) + ": " + std::string(e.description());
        return result;
      }
    } else if (required || err != ENOENT) {
      result.error = "cannot read configuration file " + path + ": " + std::strerror(err);
      return result;
    }
  }

  for (const auto& s : settings) {
    const Key* k = find_key(s.key);
    if (k == nullptr) {
      result.error = s.origin + ": " + s.key + ": unknown key";
      return result;
    }
    Value v;
    std::string problem;
    if (!from_text(*k, s.value, &v, &problem)) {
      result.error = s.origin + ": " + s.key + ": " + problem;
      return result;
    }
    k->set(config, v);
    origins[s.key] = s.origin;
  }

  // Across keys. The inline body must leave room in a frame for the rest of
  // the request; a default gives way to a smaller frame, a value someone set
  // does not.
  const uint32_t inline_room = config.max_frame_bytes - kFrameHeadroom;
  if (config.limits.max_inline_body > inline_room) {
    if (auto it = origins.find("limits.max_inline_body"); it != origins.end()) {
      result.error = it->second +
                     ": limits.max_inline_body: " + std::to_string(config.limits.max_inline_body) +
                     " leaves less than 64KiB of a frame of " +
                     std::to_string(config.max_frame_bytes) +
                     " bytes (limits.max_frame_bytes) for the rest of a request";
      return result;
    }
    config.limits.max_inline_body = inline_room;
  }

  std::string problem;
  if (!resolve_group(config.socket_group, &config.socket_gid, &problem)) {
    const auto it = origins.find("socket.group");
    result.error =
        (it != origins.end() ? it->second + ": " : std::string()) + "socket.group: " + problem;
    return result;
  }

  result.config = std::move(config);
  return result;
}

std::string config_value(const Config& config, std::string_view key) {
  const Key* k = find_key(key);
  return k ? format_value(*k, k->get(config)) : std::string();
}

std::string format_config(const Config& config) {
  std::string out;
  std::string section;
  for (const auto& k : all_keys()) {
    const size_t dot = k.info.key.rfind('.');
    const std::string table = k.info.key.substr(0, dot);
    if (table != section) {
      out += (out.empty() ? "[" : "\n[") + table + "]\n";
      section = table;
    }
    out += k.info.key.substr(dot + 1) + " = " + format_value(k, k.get(config)) + "\n";
  }
  return out;
}

std::vector<Change> diff_config(const Config& from, const Config& to) {
  std::vector<Change> changes;
  for (const auto& k : all_keys()) {
    std::string a = format_value(k, k.get(from));
    std::string b = format_value(k, k.get(to));
    if (a != b) changes.push_back({k.info.key, std::move(a), std::move(b), k.info.reloadable});
  }
  return changes;
}

Config reloadable_part(const Config& running, const Config& next) {
  Config merged = next;
  for (const auto& k : all_keys())
    if (!k.info.reloadable) k.set(merged, k.get(running));
  merged.socket_gid = running.socket_gid;
  return merged;
}

}  // namespace portd::service
