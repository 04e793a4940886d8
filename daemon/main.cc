// portd: the port broker daemon. Flags and wiring; the configuration is in
// daemon/service/config.*, the process's life in daemon/service/daemon.*, the
// work in daemon/server (the shell) and daemon/ipc (the core).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "daemon/service/config.h"
#include "daemon/service/daemon.h"
#include "daemon/service/logging.h"

namespace {

using portd::service::Config;
using portd::service::config_keys;
using portd::service::config_value;

// "Key k; default v." for a key's help (no default shown when it is empty).
std::string key_text(const std::string& key) {
  std::string v = config_value(Config{}, key);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return " Key " + key + (v.empty() ? "." : "; default " + v + ".");
}

constexpr const char* kFooter =
    R"(Configuration:
  Each value comes from the built-in default, then the configuration file,
  then the flags above (each flag names its key: --quota-task-ports sets
  ports in [quota.task]). The file is TOML; --print-config writes one with
  every key. Sizes (BYTES) are integers or strings with a binary suffix:
  "64KiB", "16MiB", "4GiB". Anything invalid is refused with a message
  naming the key, and portd exits with status 2.

Signals:
  SIGTERM, SIGINT  stop: no new connections, every task released as on a
                   disconnect, the socket file removed if portd created it;
                   exit status 0.
  SIGHUP           read the file again (the flags still win); log level and
                   format, quotas, limits.max_descriptors and the connection
                   limits change for new operations; no client is
                   disconnected. An invalid file is refused, logged, and the
                   running configuration kept.

systemd:
  Socket activation ($LISTEN_FDS: one Unix stream socket), Type=notify
  readiness and status ($NOTIFY_SOCKET), the watchdog ($WATCHDOG_USEC), and
  journal priorities on stderr ($JOURNAL_STREAM). portd.socket and
  portd.service ship with portd, for the system and for each user.

Exit status:
  0 stopped cleanly (or --check-config found no error), 1 could not start
  (the socket is in use, cannot be created...), 2 invalid configuration.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "portd: Mach-style ports for Linux, in user space.\n"
      "The broker daemon: it owns every port, queue and right; programs reach it\n"
      "through libportd over a Unix socket. It runs in the foreground, logging to\n"
      "stderr, or as a systemd service.\n"};
  app.set_version_flag("--version", "portd " PORTD_VERSION);
  app.footer(kFooter);
  app.option_defaults()->group("Options");

  std::string config_path = PORTD_DEFAULT_CONFIG;
  bool check_only = false;
  bool print_config = false;
  auto* config_option = app.add_option("-c,--config", config_path,
                                       "Configuration file (TOML). Default: " PORTD_DEFAULT_CONFIG
                                       ", which may be missing; a file named here must exist.")
                            ->type_name("PATH");
  app.add_flag("--check-config", check_only,
               "Check the configuration (file and flags), say what is wrong or that it is "
               "valid, and exit.");
  app.add_flag("--print-config", print_config,
               "Print the configuration that would be used, every key, as a TOML file, and "
               "exit.");

  const auto& keys = config_keys();
  std::vector<std::string> values(keys.size());
  std::vector<CLI::Option*> options;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& k = keys[i];
    options.push_back(app.add_option(k.flag, values[i], k.help + key_text(k.key))
                          ->type_name(k.value_name)
                          ->group(k.section));
  }
  CLI11_PARSE(app, argc, argv);

  portd::service::DaemonOptions daemon_options;
  daemon_options.config_path = config_path;
  daemon_options.config_required = config_option->count() > 0;
  for (size_t i = 0; i < keys.size(); ++i)
    if (options[i]->count() > 0)
      daemon_options.settings.push_back({keys[i].key, values[i], keys[i].flag});

  const auto loaded = portd::service::load_config(
      daemon_options.config_path, daemon_options.config_required, daemon_options.settings);
  if (!loaded.config) {
    // Under systemd this line goes to the journal: mark it an error there.
    std::fprintf(stderr, "%sportd: invalid configuration: %s\n",
                 portd::service::stderr_is_journal() ? "<3>" : "", loaded.error.c_str());
    return 2;
  }
  if (print_config) {
    std::fputs(portd::service::format_config(*loaded.config).c_str(), stdout);
    return 0;
  }
  if (check_only) {
    std::printf(
        "portd: configuration is valid (%s)\n",
        loaded.file_read ? config_path.c_str() : ("built-in defaults; no " + config_path).c_str());
    return 0;
  }

  portd::service::configure_logging(loaded.config->log_level, loaded.config->log_format);
  // Writes to a client that went away fail with EPIPE; MSG_NOSIGNAL covers
  // sendmsg, this covers anything else.
  std::signal(SIGPIPE, SIG_IGN);
  return portd::service::run_daemon(daemon_options, *loaded.config, loaded.file_read);
}
