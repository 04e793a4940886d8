// The daemon's configuration (daemon/service/config.h): file, flags,
// precedence, every error message, and the shipped example file.
#include "daemon/service/config.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#ifndef PORTD_SOURCE_DIR
#error "PORTD_SOURCE_DIR must name the source tree"
#endif

namespace portd::service {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/portd-config-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/portd.toml";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  LoadResult load(const std::string& text, const std::vector<Setting>& settings = {}) {
    std::ofstream(path_) << text;
    return load_config(path_, true, settings);
  }
  // The error for `text`, with the file's path replaced by "F".
  std::string error(const std::string& text, const std::vector<Setting>& settings = {}) {
    LoadResult r = load(text, settings);
    EXPECT_FALSE(r.config) << "accepted:\n" << text;
    std::string e = r.error;
    if (e.rfind(path_, 0) == 0) e = "F" + e.substr(path_.size());
    return e;
  }

  std::string dir_;
  std::string path_;
};

void expect_defaults(const Config& c) {
  const Config defaults;
  for (const auto& k : config_keys())
    EXPECT_EQ(config_value(c, k.key), config_value(defaults, k.key)) << k.key;
}

TEST_F(ConfigTest, DefaultsWithoutAFile) {
  LoadResult r = load_config("", false, {});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_FALSE(r.file_read);
  expect_defaults(*r.config);
  EXPECT_EQ(r.config->socket_mode, 0666u);
  EXPECT_EQ(r.config->log_level, "info");
  EXPECT_EQ(r.config->max_frame_bytes, 4u << 20);
  EXPECT_EQ(r.config->limits.max_inline_body, 1u << 20);
  EXPECT_EQ(r.config->limits.per_task.ports, 16384u);
  EXPECT_FALSE(r.config->socket_gid);
}

TEST_F(ConfigTest, MissingDefaultFileIsFineMissingExplicitFileIsNot) {
  const std::string missing = dir_ + "/missing.toml";
  LoadResult optional = load_config(missing, false, {});
  ASSERT_TRUE(optional.config) << optional.error;
  EXPECT_FALSE(optional.file_read);
  LoadResult required = load_config(missing, true, {});
  EXPECT_FALSE(required.config);
  EXPECT_EQ(required.error,
            "cannot read configuration file " + missing + ": No such file or directory");
  // A file that exists but cannot be read is an error even as the default.
  LoadResult directory = load_config(dir_, false, {});
  EXPECT_FALSE(directory.config);
  EXPECT_EQ(directory.error, "cannot read configuration file " + dir_ + ": Is a directory");
}

TEST_F(ConfigTest, FileSetsEveryKind) {
  LoadResult r = load(R"(
[socket]
path = "/tmp/x/portd.sock"
mode = 0o660
group = "0"
[log]
level = "debug"
format = "journal"
[limits]
max_frame_bytes = "8MiB"
max_inline_body = 2097152
max_descriptors = 12
[connection]
max_unsent_bytes = "1GiB"
max_unsent_fds = 99
[quota.task]
ports = 5
queued_bytes = "3KiB"
[quota.uid]
ool_bytes = "2TiB"
bootstrap_names = 0
)");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_TRUE(r.file_read);
  const Config& c = *r.config;
  EXPECT_EQ(c.socket_path, "/tmp/x/portd.sock");
  EXPECT_EQ(c.socket_mode, 0660u);
  EXPECT_EQ(c.socket_group, "0");
  ASSERT_TRUE(c.socket_gid);
  EXPECT_EQ(*c.socket_gid, 0u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_format, LogFormat::kJournal);
  EXPECT_EQ(c.max_frame_bytes, 8u << 20);
  EXPECT_EQ(c.limits.max_inline_body, 2u << 20);
  EXPECT_EQ(c.limits.max_descriptors, 12u);
  EXPECT_EQ(c.max_unsent_bytes, 1u << 30);
  EXPECT_EQ(c.max_unsent_fds, 99u);
  EXPECT_EQ(c.limits.per_task.ports, 5u);
  EXPECT_EQ(c.limits.per_task.queued_bytes, 3u * 1024);
  EXPECT_EQ(c.limits.per_uid.ool_bytes, 2ull << 40);
  EXPECT_EQ(c.limits.per_uid.bootstrap_names, 0u);
  // Untouched keys keep their defaults.
  EXPECT_EQ(c.limits.per_task.names, Config{}.limits.per_task.names);
  EXPECT_EQ(c.limits.per_uid.ports, Config{}.limits.per_uid.ports);
}

TEST_F(ConfigTest, DottedKeysAndInlineTablesWork) {
  LoadResult r = load("quota.task.ports = 3\nlog = { level = \"warn\" }\n");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->limits.per_task.ports, 3u);
  EXPECT_EQ(r.config->log_level, "warn");
}

TEST_F(ConfigTest, FlagsOverrideTheFile) {
  LoadResult r =
      load("[quota.task]\nports = 5\nnames = 6\n", {{"quota.task.ports", "7", "--quota-task-ports"},
                                                    {"socket.mode", "0600", "--socket-mode"},
                                                    {"log.level", "trace", "--log-level"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->limits.per_task.ports, 7u);
  EXPECT_EQ(r.config->limits.per_task.names, 6u);
  EXPECT_EQ(r.config->socket_mode, 0600u);
  EXPECT_EQ(r.config->log_level, "trace");
}

TEST_F(ConfigTest, FileErrorsNameTheKeyAndWhere) {
  EXPECT_EQ(error("[quota.task]\nnmaes = 5\n"), "F:2:1: quota.task.nmaes: unknown key");
  EXPECT_EQ(error("[quoat.task]\nports = 5\n"), "F:1:2: quoat: unknown section");
  EXPECT_EQ(error("[log]\nlevel = 3\n"), "F:2:1: log.level: expected a string");
  EXPECT_EQ(error("[log]\nlevel = \"verbose\"\n"),
            "F:2:1: log.level: expected one of trace, debug, info, warn, error, critical, off; "
            "got \"verbose\"");
  EXPECT_EQ(error("[log]\nformat = \"json\"\n"),
            "F:2:1: log.format: expected one of auto, text, journal; got \"json\"");
  EXPECT_EQ(error("[quota.task]\nports = \"many\"\n"),
            "F:2:1: quota.task.ports: expected a non-negative integer");
  EXPECT_EQ(error("[quota.task]\nports = 1.5\n"),
            "F:2:1: quota.task.ports: expected a non-negative integer");
  EXPECT_EQ(error("[quota.uid]\nports = -1\n"),
            "F:2:1: quota.uid.ports: must be between 0 and 9223372036854775807; got -1");
  EXPECT_EQ(error("[quota.uid]\nqueued_bytes = \"12XB\"\n"),
            "F:2:1: quota.uid.queued_bytes: expected a size in bytes: an integer, or a string "
            "such as \"64KiB\", \"16MiB\", \"4GiB\"; got \"12XB\"");
  EXPECT_EQ(error("[limits]\nmax_frame_bytes = \"128MiB\"\n"),
            "F:2:1: limits.max_frame_bytes: must be between 64KiB and 64MiB; got 128MiB");
  EXPECT_EQ(error("[limits]\nmax_descriptors = 0\n"),
            "F:2:1: limits.max_descriptors: must be between 1 and 1048576; got 0");
  EXPECT_EQ(error("[socket]\nmode = 660\n"),
            "F:2:1: socket.mode: expected permission bits in octal: 0o660 or \"0660\"");
  EXPECT_EQ(error("[socket]\nmode = 0o1777\n"),
            "F:2:1: socket.mode: must be between 0o000 and 0o777; got 0o1777");
  EXPECT_EQ(error("[socket]\npath = \"/" + std::string(120, 'x') + "\"\n"),
            "F:2:1: socket.path: longer than 107 bytes (a Unix socket path's limit)");
  EXPECT_EQ(error("[socket]\ngroup = \"no-such-group-portd\"\n"),
            "F:2:1: socket.group: no such group: \"no-such-group-portd\"");
  EXPECT_EQ(error("socket = 5\n"), "F:1:1: socket: unknown key");
  // A table where a value belongs.
  EXPECT_EQ(error("[log.level]\n"), "F:1:6: log.level: expected a string");
}

TEST_F(ConfigTest, SyntaxErrorsSayWhere) {
  const std::string e = error("[log]\nlevel = \n");
  EXPECT_EQ(e.rfind("F:2:", 0), 0u) << e;
  const std::string dup = error("[log]\nlevel = \"info\"\nlevel = \"debug\"\n");
  EXPECT_EQ(dup.rfind("F:3:", 0), 0u) << dup;
}

TEST_F(ConfigTest, FlagErrorsNameTheFlagAndTheKey) {
  EXPECT_EQ(error("", {{"quota.task.ports", "abc", "--quota-task-ports"}}),
            "--quota-task-ports: quota.task.ports: expected a non-negative integer; got \"abc\"");
  EXPECT_EQ(error("", {{"quota.task.ports", "-3", "--quota-task-ports"}}),
            "--quota-task-ports: quota.task.ports: expected a non-negative integer; got \"-3\"");
  EXPECT_EQ(error("", {{"limits.max_frame_bytes", "1K", "--max-frame-bytes"}}),
            "--max-frame-bytes: limits.max_frame_bytes: must be between 64KiB and 64MiB; got "
            "1KiB");
  EXPECT_EQ(error("", {{"socket.mode", "0999", "--socket-mode"}}),
            "--socket-mode: socket.mode: expected permission bits in octal, such as 0660; got "
            "\"0999\"");
  EXPECT_EQ(error("", {{"log.level", "loud", "--log-level"}}),
            "--log-level: log.level: expected one of trace, debug, info, warn, error, critical, "
            "off; got \"loud\"");
}

TEST_F(ConfigTest, InlineBodyMustLeaveRoomInAFrame) {
  // Set explicitly: refused, naming the key.
  EXPECT_EQ(error("[limits]\nmax_frame_bytes = \"1MiB\"\nmax_inline_body = \"1MiB\"\n"),
            "F:3:1: limits.max_inline_body: 1048576 leaves less than 64KiB of a frame of "
            "1048576 bytes (limits.max_frame_bytes) for the rest of a request");
  EXPECT_EQ(error("", {{"limits.max_frame_bytes", "512KiB", "--max-frame-bytes"},
                       {"limits.max_inline_body", "500K", "--max-inline-body"}}),
            "--max-inline-body: limits.max_inline_body: 512000 leaves less than 64KiB of a frame "
            "of 524288 bytes (limits.max_frame_bytes) for the rest of a request");
  // The default gives way.
  LoadResult r = load("[limits]\nmax_frame_bytes = \"512KiB\"\n");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->limits.max_inline_body, (512u << 10) - (64u << 10));
  // Exactly the room left is fine.
  r = load("[limits]\nmax_frame_bytes = \"1MiB\"\nmax_inline_body = \"960KiB\"\n");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->limits.max_inline_body, 960u << 10);
}

TEST_F(ConfigTest, GroupsByNameAndNumber) {
  const group* g = ::getgrgid(::getgid());
  ASSERT_NE(g, nullptr);
  LoadResult r = load("[socket]\ngroup = \"" + std::string(g->gr_name) + "\"\n");
  ASSERT_TRUE(r.config) << r.error;
  ASSERT_TRUE(r.config->socket_gid);
  EXPECT_EQ(*r.config->socket_gid, ::getgid());
  r = load("[socket]\ngroup = 4242\n");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->socket_group, "4242");
  EXPECT_EQ(*r.config->socket_gid, 4242u);
  r = load("", {{"socket.group", "", "--socket-group"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_FALSE(r.config->socket_gid);
}

TEST(ConfigSize, ParsesBinarySuffixes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1234"), 1234u);
  EXPECT_EQ(parse_size("64K"), 64u << 10);
  EXPECT_EQ(parse_size("64KiB"), 64u << 10);
  EXPECT_EQ(parse_size("16MiB"), 16u << 20);
  EXPECT_EQ(parse_size("4G"), 4ull << 30);
  EXPECT_EQ(parse_size("2TiB"), 2ull << 40);
  EXPECT_EQ(parse_size("9223372036854775807"), 9223372036854775807ull);
  for (const char* bad : {"", "K", "-1", "1.5M", "4 MiB", "4MB", "4Mi", "4k", "4KiBs", "0x10",
                          "9223372036854775808", "8388608TiB"})
    EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(ConfigKeys, EveryQuotaInLimitsHasAKeyPerTaskAndPerUid) {
  std::set<std::string> keys;
  for (const auto& k : config_keys()) keys.insert(k.key);
  ipc::Quota probe;
  int quotas = 0;
  for (int i = 1; i < static_cast<int>(ipc::Limit::kCount); ++i) {
    const auto l = static_cast<ipc::Limit>(i);
    if (probe.find(l) == nullptr) continue;
    ++quotas;
    const std::string name(ipc::limit_name(l));
    for (const char* scope : {"task", "uid"}) {
      const std::string key = std::string("quota.") + scope + "." + name;
      ASSERT_TRUE(keys.count(key)) << key;
      // Setting it sets exactly that quota.
      LoadResult r = load_config("", false, {{key, "77", "--x"}});
      ASSERT_TRUE(r.config) << r.error;
      const Config defaults;
      for (int j = 1; j < static_cast<int>(ipc::Limit::kCount); ++j) {
        const auto m = static_cast<ipc::Limit>(j);
        if (probe.find(m) == nullptr) continue;
        for (const bool task : {true, false}) {
          const auto& got = task ? r.config->limits.per_task : r.config->limits.per_uid;
          const auto& def = task ? defaults.limits.per_task : defaults.limits.per_uid;
          const bool target = m == l && task == (std::string(scope) == "task");
          EXPECT_EQ(*got.find(m), target ? 77u : *def.find(m)) << key << " vs " << j;
        }
      }
    }
  }
  EXPECT_EQ(quotas, 11);
  // Flags are unique and follow the keys.
  std::set<std::string> flags;
  for (const auto& k : config_keys()) {
    EXPECT_TRUE(flags.insert(k.flag).second) << k.flag;
    EXPECT_EQ(k.flag.rfind("--", 0), 0u) << k.flag;
    EXPECT_FALSE(k.help.empty()) << k.key;
  }
}

TEST_F(ConfigTest, PrintedConfigReadsBack) {
  // Every key changed from its default, through the flags.
  std::vector<Setting> settings;
  for (const auto& k : config_keys()) {
    std::string v;
    if (k.key == "socket.path")
      v = "/tmp/p \"q\"\\r.sock";
    else if (k.key == "socket.mode")
      v = "0640";
    else if (k.key == "socket.group")
      v = "0";
    else if (k.key == "log.level")
      v = "warn";
    else if (k.key == "log.format")
      v = "text";
    else if (k.key == "limits.max_frame_bytes")
      v = "8MiB";
    else if (k.key == "limits.max_inline_body")
      v = "65537";
    else if (k.key == "connection.max_unsent_bytes")
      v = "3GiB";
    else
      v = "3";
    settings.push_back({k.key, v, k.flag});
  }
  LoadResult changed = load_config("", false, settings);
  ASSERT_TRUE(changed.config) << changed.error;
  const std::string text = format_config(*changed.config);
  LoadResult back = load(text);
  ASSERT_TRUE(back.config) << back.error << "\n" << text;
  for (const auto& k : config_keys()) {
    EXPECT_EQ(config_value(*back.config, k.key), config_value(*changed.config, k.key)) << k.key;
    EXPECT_NE(config_value(*back.config, k.key), config_value(Config{}, k.key)) << k.key;
  }
  EXPECT_NE(text.find("max_inline_body = 65537\n"), std::string::npos) << text;
  EXPECT_NE(text.find("max_unsent_bytes = \"3GiB\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mode = 0o640\n"), std::string::npos) << text;
}

TEST(ConfigReload, DiffAndTheKeysThatNeedARestart) {
  const Config running;
  LoadResult r = load_config("", false,
                             {{"socket.path", "/tmp/other.sock", "--socket"},
                              {"limits.max_inline_body", "65536", "--max-inline-body"},
                              {"quota.task.ports", "2", "--quota-task-ports"},
                              {"log.level", "debug", "--log-level"}});
  ASSERT_TRUE(r.config) << r.error;
  const auto changes = diff_config(running, *r.config);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].key, "socket.path");
  EXPECT_EQ(changes[0].from, "\"\"");
  EXPECT_EQ(changes[0].to, "\"/tmp/other.sock\"");
  EXPECT_FALSE(changes[0].reloadable);
  EXPECT_EQ(changes[1].key, "log.level");
  EXPECT_TRUE(changes[1].reloadable);
  EXPECT_EQ(changes[2].key, "limits.max_inline_body");
  EXPECT_EQ(changes[2].from, "\"1MiB\"");
  EXPECT_EQ(changes[2].to, "\"64KiB\"");
  EXPECT_FALSE(changes[2].reloadable);
  EXPECT_EQ(changes[3].key, "quota.task.ports");
  EXPECT_EQ(changes[3].from, "16384");
  EXPECT_EQ(changes[3].to, "2");
  EXPECT_TRUE(changes[3].reloadable);

  const Config next = reloadable_part(running, *r.config);
  EXPECT_EQ(next.socket_path, "");
  EXPECT_EQ(next.limits.max_inline_body, 1u << 20);
  EXPECT_EQ(next.limits.per_task.ports, 2u);
  EXPECT_EQ(next.log_level, "debug");
}

// The example shipped in packaging/: as shipped (all commented out) it is the
// defaults; with every value line uncommented it sets every key, to its
// default -- so its documentation of keys and defaults stays true.
TEST_F(ConfigTest, ShippedExampleDocumentsEveryKeyWithItsDefault) {
  std::ifstream in(PORTD_SOURCE_DIR "/packaging/portd.toml");
  ASSERT_TRUE(in) << "packaging/portd.toml";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string shipped = ss.str();

  LoadResult as_is = load(shipped);
  ASSERT_TRUE(as_is.config) << as_is.error;
  expect_defaults(*as_is.config);

  const std::regex value_line(R"(^# ([a-z_]+ = .*)$)");
  std::string uncommented;
  std::istringstream lines(shipped);
  int values = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, value_line)) {
      uncommented += m[1].str() + "\n";
      ++values;
    } else {
      uncommented += line + "\n";
    }
  }
  EXPECT_EQ(values, static_cast<int>(config_keys().size()));
  LoadResult all = load(uncommented);
  ASSERT_TRUE(all.config) << all.error;
  expect_defaults(*all.config);
}

// docs/operating.md documents every key (and its flag).
TEST(ConfigDocs, OperatingGuideNamesEveryKey) {
  std::ifstream in(PORTD_SOURCE_DIR "/docs/operating.md");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  for (const auto& k : config_keys()) {
    EXPECT_NE(doc.find("`" + k.key + "`"), std::string::npos) << k.key;
    if (k.key.rfind("quota.", 0) != 0) {
      EXPECT_NE(doc.find("`" + k.flag + "`"), std::string::npos) << k.flag;
    }
  }
}

}  // namespace
}  // namespace portd::service
