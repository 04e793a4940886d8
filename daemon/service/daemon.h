// Daemon: portd's life as a process. Start (socket from systemd or made
// here), serve, reload on SIGHUP, stop on SIGTERM or SIGINT.
//
//   start   logging as configured; RLIMIT_NOFILE raised to its hard limit
//           (fds in flight are bounded by quotas, not by a small soft limit);
//           the socket systemd passed, else one created at socket.path with
//           socket.mode and socket.group; READY=1 and STATUS= to systemd.
//   SIGHUP  RELOADING=1; the file is read again and the flags applied again;
//           if it is valid, every change is logged and the reloadable ones
//           applied (log level and format, quotas, per-message and
//           connection limits), the others logged as needing a restart; if
//           not, the reason is logged and the running configuration stays.
//           Then READY=1. No client is disconnected either way.
//   SIGTERM STOPPING=1; no new connections; every task released as on
//   SIGINT  disconnect (clients see the end of stream); the socket file
//           removed if portd created it (never one systemd owns); exit 0.
//
// STATUS= says how many tasks are connected, at most once a second, and only
// when something changed; WATCHDOG=1 is sent when the unit has WatchdogSec=.
#pragma once

#include <string>
#include <vector>

#include "daemon/service/config.h"

namespace portd::service {

struct DaemonOptions {
  std::string config_path;        // read again on SIGHUP
  bool config_required = false;   // --config was given: a missing file is an error
  std::vector<Setting> settings;  // the flags, applied again on SIGHUP
};

// Runs until stopped, starting with `config` (load_config()'s, with
// `file_read` saying whether the file existed). Returns the process exit
// status: 0 after a clean stop, 1 if portd could not start.
int run_daemon(const DaemonOptions& options, const Config& config, bool file_read);

}  // namespace portd::service
