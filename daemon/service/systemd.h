// Systemd: socket activation and the notification protocol. Everything here
// does nothing when portd was not started by systemd (no $LISTEN_FDS, no
// $NOTIFY_SOCKET), so the same binary runs in a terminal and as a service.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "daemon/server/listener.h"

namespace portd::service {

struct Activation {
  // Set when systemd passed a usable socket: a Listener that is not ours
  // (nothing is unlinked when it closes; the socket unit owns the file).
  std::optional<server::Listener> listener;
  // Set when systemd passed sockets portd cannot use (more than one, or not
  // a listening Unix stream socket). Empty when nothing was passed.
  std::string error;
  std::string name;  // $LISTEN_FDNAMES' name for it, if any
};

// sd_listen_fds(3): the sockets passed for this process ($LISTEN_PID), which
// are then taken (the variables are unset, so no child inherits them).
Activation listener_from_systemd();

// sd_notify(3) for $NOTIFY_SOCKET.
class Notifier {
 public:
  Notifier();

  bool enabled() const { return enabled_; }
  void ready(const std::string& status) const;
  // Between reloading() and the next ready() systemd shows the unit as
  // reloading, and `systemctl reload` waits.
  void reloading() const;
  void status(const std::string& status) const;
  void stopping(const std::string& status) const;
  void watchdog() const;

  // How often to call watchdog(): half of $WATCHDOG_USEC, or zero when the
  // service has no watchdog (or it is meant for another process).
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

 private:
  void notify(const std::string& state) const;

  bool enabled_ = false;
  std::chrono::microseconds watchdog_interval_{0};
};

}  // namespace portd::service
