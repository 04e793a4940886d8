// echo_client: sends its arguments to echo_server and prints the answer.
//
// It looks portd.example.echo up in the bootstrap registry (a send right to
// the server's port), makes a reply port, and sends one request carrying a
// send-once right to it; the request and the wait for its reply are one round
// trip to the daemon (Task::rpc).
//
//   echo_client [--socket PATH] [--wait MS] [--timeout MS] TEXT...
#include <portd/portd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

constexpr const char* kService = "portd.example.echo";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: echo_client [--socket PATH] [--wait MS] [--timeout MS] TEXT...\n"
               "  Sends TEXT to %s and prints the answer.\n"
               "  --socket PATH  the portd socket (default: $PORTD_SOCKET, then\n"
               "                 $XDG_RUNTIME_DIR/portd.sock, then /run/portd/portd.sock)\n"
               "  --wait MS      wait up to MS for the server to check in (default 0)\n"
               "  --timeout MS   wait up to MS for the answer (default 5000)\n",
               kService);
}

}  // namespace

int main(int argc, char** argv) {
  portd::ConnectOptions options;
  long wait_ms = 0;
  long timeout_ms = 5000;
  std::string text;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--socket" && i + 1 < argc) {
      options.socket_path = argv[++i];
    } else if (arg == "--wait" && i + 1 < argc) {
      wait_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--timeout" && i + 1 < argc) {
      timeout_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (arg.rfind("--", 0) == 0) {
      usage(stderr);
      return 2;
    } else {
      if (!text.empty()) text += ' ';
      text += arg;
    }
  }
  if (text.empty()) {
    usage(stderr);
    return 2;
  }

  auto task = portd::Task::connect(options);
  if (!task) {
    std::fprintf(stderr, "echo_client: portd not running on %s (%s)\n",
                 portd::resolve_socket_path(options.socket_path).c_str(), task.detail().c_str());
    return 1;
  }
  auto server = (*task)->look_up(kService, std::chrono::milliseconds(wait_ms));
  if (!server) {
    if (server.status() == portd::Status::kBootstrapUnknownService ||
        server.status() == portd::Status::kOperationTimedOut) {
      std::fprintf(stderr, "echo_client: no server has checked in %s (start echo_server)\n",
                   kService);
    } else {
      std::fprintf(stderr, "echo_client: look-up of %s failed: %s\n", kService,
                   std::string(portd::status_name(server.status())).c_str());
    }
    return 1;
  }
  auto reply_port = (*task)->make_port();
  if (!reply_port) {
    std::fprintf(stderr, "echo_client: cannot make a reply port: %s\n",
                 std::string(portd::status_name(reply_port.status())).c_str());
    return 1;
  }

  portd::OutgoingMessage request;
  request.set_remote(*server).set_id(1).set_body(text);
  portd::ReceiveOptions receive;
  receive.timeout = std::chrono::milliseconds(timeout_ms);
  auto answer = (*task)->rpc(request, *reply_port, {}, receive);
  if (!answer) {
    std::fprintf(stderr, "echo_client: no answer from %s: %s\n", kService,
                 std::string(portd::status_name(answer.status())).c_str());
    return 1;
  }
  std::printf("%.*s\n", static_cast<int>(answer->body.size()), answer->body_text().data());
  return 0;
}
