#include "daemon/service/systemd.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <cstring>

namespace portd::service {

namespace {

// The path a Unix socket is bound to ("@name" for an abstract one).
std::string bound_path(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  const size_t n =
      len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
  if (n == 0) return {};
  if (addr.sun_path[0] == '\0') return "@" + std::string(addr.sun_path + 1, n - 1);
  return std::string(addr.sun_path, strnlen(addr.sun_path, n));
}

}  // namespace

Activation listener_from_systemd() {
  Activation a;
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);
  if (n < 0) {
    a.error = std::string("sd_listen_fds: ") + std::strerror(-n);
    return a;
  }
  if (n > 0 && names != nullptr && names[0] != nullptr) a.name = names[0];
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) std::free(names[i]);
    std::free(names);
  }
  if (n == 0) return a;
  if (n > 1) {
    // None is ours to serve, so none is kept open.
    for (int i = 0; i < n; ++i) ::close(SD_LISTEN_FDS_START + i);
    a.error = "systemd passed " + std::to_string(n) +
              " sockets; portd serves exactly one (one ListenStream= in portd.socket)";
    return a;
  }
  proto::UniqueFd fd(SD_LISTEN_FDS_START);
  if (sd_is_socket_unix(fd.get(), SOCK_STREAM, 1, nullptr, 0) <= 0) {
    a.error = "the socket systemd passed (fd " + std::to_string(SD_LISTEN_FDS_START) +
              ") is not a listening Unix stream socket";
    return a;
  }
  // The accept loop relies on EAGAIN; systemd passes sockets blocking.
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0) {
    a.error = std::string("cannot make the passed socket non-blocking: ") + std::strerror(errno);
    return a;
  }
  const std::string path = bound_path(fd.get());
  a.listener = server::Listener::adopt(std::move(fd), path);
  return a;
}

Notifier::Notifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
}

void Notifier::notify(const std::string& state) const {
  if (!enabled_) return;
  const int r = sd_notify(0, state.c_str());
  if (r < 0) spdlog::warn("sd_notify: {}", std::strerror(-r));
}

void Notifier::ready(const std::string& status) const { notify("READY=1\nSTATUS=" + status); }

void Notifier::reloading() const {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t usec =
      static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
  notify("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::status(const std::string& status) const { notify("STATUS=" + status); }

void Notifier::stopping(const std::string& status) const { notify("STOPPING=1\nSTATUS=" + status); }

void Notifier::watchdog() const { notify("WATCHDOG=1"); }

}  // namespace portd::service
