// portd: the port broker daemon. Flags, logging and wiring; the work is in
// daemon/server (the shell) and daemon/ipc (the core).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "daemon/server/listener.h"
#include "daemon/server/server.h"
#include "portd/proto/socket_path.h"

int main(int argc, char** argv) {
  CLI::App app{"portd: Mach-style ports for Linux, in user space"};
  std::string socket_flag;
  std::string log_level = "info";
  uint32_t max_frame_bytes = portd::proto::FrameLimits{}.max_frame_bytes;
  app.add_option("--socket", socket_flag,
                 "Socket path (default: $PORTD_SOCKET, $XDG_RUNTIME_DIR/portd.sock, "
                 "/run/portd/portd.sock)");
  app.add_option("--log-level", log_level, "Log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--max-frame-bytes", max_frame_bytes, "Largest frame a client may send")
      ->check(CLI::Range(uint32_t{64} << 10, uint32_t{64} << 20));
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("portd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Writes to a client that went away fail with EPIPE; MSG_NOSIGNAL covers
  // sendmsg, this covers anything else.
  std::signal(SIGPIPE, SIG_IGN);

  // Every out-of-line region in flight is an fd the daemon holds (up to the
  // per-uid fds_in_flight quota, 8192 by default): the soft limit of 1024 that
  // most sessions start with is far too low, so take what the hard limit
  // allows.
  if (rlimit nofile{};
      ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0)
      spdlog::warn("could not raise the open-file limit to {}", nofile.rlim_max);
  }

  portd::server::ServerOptions options;
  options.frame_limits.max_frame_bytes = max_frame_bytes;
  // A body must fit in a frame, with room for the rest of the request.
  constexpr uint32_t kFrameHeadroom = 64 << 10;
  if (options.limits.max_inline_body > max_frame_bytes - kFrameHeadroom)
    options.limits.max_inline_body = max_frame_bytes - kFrameHeadroom;

  const std::string path = portd::proto::resolve_socket_path(socket_flag);
  std::string error;
  auto listener = portd::server::Listener::open(path, &error);
  if (!listener) {
    spdlog::critical("{}", error);
    return 1;
  }

  asio::io_context io(1);
  portd::server::Server server(io, std::move(*listener), options);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signo);
    server.stop();
  });
  if (!server.start()) return 1;
  std::fprintf(stdout, "portd listening on %s\n", path.c_str());
  std::fflush(stdout);

  io.run();
  spdlog::info("portd stopped");
  return 0;
}
