#include "daemon/service/daemon.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "daemon/server/listener.h"
#include "daemon/server/server.h"
#include "daemon/service/logging.h"
#include "daemon/service/systemd.h"
#include "portd/proto/socket_path.h"

namespace portd::service {

namespace {

server::ServerOptions server_options(const Config& c) {
  server::ServerOptions o;
  o.frame_limits.max_frame_bytes = c.max_frame_bytes;
  // Reading a frame's bytes counts against Cap'n Proto's traversal limit:
  // keep it above what a full frame needs (twice, for pointers into shared
  // data), never below the default.
  o.frame_limits.traversal_limit_words =
      std::max<uint64_t>(o.frame_limits.traversal_limit_words, c.max_frame_bytes / 8 * 2);
  o.limits = c.limits;
  o.max_unsent = c.max_unsent_bytes;
  o.max_unsent_fds = c.max_unsent_fds;
  o.handshake_timeout = std::chrono::milliseconds(c.handshake_timeout_ms);
  return o;
}

// Every out-of-line region in flight is an fd the daemon holds, bounded by
// the quotas (quota.uid.fds_in_flight per uid); the soft limit most sessions
// start with (1024) would bound them first, and far lower.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  const rlim_t before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0)
    spdlog::debug("open file limit raised from {} to {}", before, rl.rlim_cur);
  else
    spdlog::warn("could not raise the open file limit from {} to {}", before, rl.rlim_max);
}

class Daemon {
 public:
  Daemon(const DaemonOptions& options, const Config& config, bool file_read)
      : options_(options),
        config_(config),
        file_read_(file_read),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        status_timer_(io_),
        watchdog_timer_(io_) {}

  int run() {
    raise_fd_limit();
    std::optional<server::Listener> listener;
    std::string origin;
    Activation activation = listener_from_systemd();
    if (!activation.error.empty()) {
      spdlog::critical("socket activation: {}", activation.error);
      return 1;
    }
    if (activation.listener) {
      listener = std::move(activation.listener);
      origin = "passed by systemd" + (activation.name.empty() ? "" : " as " + activation.name);
      if (!config_.socket_path.empty() && config_.socket_path != listener->path())
        spdlog::warn("socket.path {} is not used: systemd passed the socket at {}",
                     config_.socket_path, listener->path());
    } else {
      const std::string path = proto::resolve_socket_path(config_.socket_path);
      server::ListenerOptions lo;
      lo.mode = config_.socket_mode;
      lo.gid = config_.socket_gid;
      std::string error;
      listener = server::Listener::open(path, lo, &error);
      if (!listener) {
        // Nothing chose a socket and the last default is root's: say how a
        // user picks one of its own.
        if (path == proto::kSystemSocketPath && ::geteuid() != 0)
          error += std::string("; ") + proto::kSystemSocketPath +
                   " is the system daemon's socket: as a user, give --socket PATH or set "
                   "$PORTD_SOCKET or $XDG_RUNTIME_DIR (clients look in the same places)";
        spdlog::critical("{}", error);
        return 1;
      }
      origin = "created";
    }

    server_.emplace(io_, std::move(*listener), server_options(config_));
    if (!server_->start()) return 1;
    server_->set_connection_observer([this](size_t) { status_changed(); });
    wait_signal();
    arm_watchdog();

    spdlog::info("portd {} serving on {} ({}); configuration: {}", PORTD_VERSION,
                 server_->socket_path(), origin, describe_source());
    notifier_.ready(status_text());
    io_.run();
    spdlog::info("portd stopped");
    return 0;
  }

 private:
  std::string describe_source() const {
    if (options_.config_path.empty()) return "built-in defaults";
    return file_read_ ? options_.config_path
                      : "built-in defaults (no " + options_.config_path + ")";
  }

  std::string status_text() const {
    const size_t n = server_->connection_count();
    return "serving " + std::to_string(n) + (n == 1 ? " task" : " tasks") + " on " +
           server_->socket_path();
  }

  void wait_signal() {
    signals_.async_wait([this](const asio::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reload();
        wait_signal();
        return;
      }
      stop(signo);
    });
  }

  void stop(int signo) {
    spdlog::info("SIG{}: stopping; {} tasks connected", sigabbrev_np(signo),
                 server_->connection_count());
    notifier_.stopping("stopping");
    asio::error_code ignored;
    signals_.cancel(ignored);
    status_timer_.cancel();
    watchdog_timer_.cancel();
    server_->stop();
  }

  void reload() {
    notifier_.reloading();
    LoadResult r = load_config(options_.config_path, options_.config_required, options_.settings);
    if (!r.config) {
      spdlog::error("reload refused: {}; the running configuration stays", r.error);
      notifier_.ready("reload refused: " + r.error + "; " + status_text());
      return;
    }
    file_read_ = r.file_read;
    const std::vector<Change> changes = diff_config(config_, *r.config);
    config_ = reloadable_part(config_, *r.config);
    // The new level first: the lines below are logged as it says.
    configure_logging(config_.log_level, config_.log_format);
    server_->set_limits(config_.limits);
    server_->set_unsent_limits(config_.max_unsent_bytes, config_.max_unsent_fds);
    server_->set_handshake_timeout(std::chrono::milliseconds(config_.handshake_timeout_ms));
    size_t applied = 0;
    for (const Change& c : changes) {
      if (c.reloadable) {
        spdlog::info("reload: {}: {} -> {}", c.key, c.from, c.to);
        ++applied;
      } else {
        spdlog::warn("reload: {}: {} -> {} needs a restart; it stays {}", c.key, c.from, c.to,
                     c.from);
      }
    }
    spdlog::log(applied ? spdlog::level::info : spdlog::level::debug,
                "configuration reloaded from {}: {} changes applied", describe_source(), applied);
    notifier_.ready(status_text());
  }

  // STATUS= at most once a second, and only after a change.
  void status_changed() {
    if (!notifier_.enabled() || status_armed_) return;
    status_armed_ = true;
    status_timer_.expires_after(std::chrono::seconds(1));
    status_timer_.async_wait([this](const asio::error_code& ec) {
      status_armed_ = false;
      if (!ec) notifier_.status(status_text());
    });
  }

  void arm_watchdog() {
    const auto interval = notifier_.watchdog_interval();
    if (interval.count() == 0) return;
    notifier_.watchdog();
    watchdog_timer_.expires_after(interval);
    watchdog_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) arm_watchdog();
    });
  }

  const DaemonOptions& options_;
  Config config_;
  bool file_read_ = false;
  // One thread runs everything and nothing is posted from another thread:
  // Asio need not lock its scheduler or reactor (signals reach it through a
  // pipe its own handler writes).
  asio::io_context io_{ASIO_CONCURRENCY_HINT_UNSAFE};
  asio::signal_set signals_;
  asio::steady_timer status_timer_;
  asio::steady_timer watchdog_timer_;
  bool status_armed_ = false;
  Notifier notifier_;
  std::optional<server::Server> server_;
};

}  // namespace

int run_daemon(const DaemonOptions& options, const Config& config, bool file_read) {
  Daemon daemon(options, config, file_read);
  return daemon.run();
}

}  // namespace portd::service
