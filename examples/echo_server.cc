// echo_server: answers every request with the same bytes.
//
// It checks the name portd.example.echo in with the bootstrap registry, which
// gives it the receive right of a fresh port, and then receives forever. Each
// request carries a reply right (MAKE_SEND_ONCE from the client's reply port);
// the answer goes back on it with the request's body and id + 100 (the MIG
// convention for replies).
//
//   echo_server [--socket PATH] [--count N]
#include <portd/portd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

constexpr const char* kService = "portd.example.echo";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: echo_server [--socket PATH] [--count N]\n"
               "  Serves %s: answers each request with the same bytes.\n"
               "  --socket PATH  the portd socket (default: $PORTD_SOCKET, then\n"
               "                 $XDG_RUNTIME_DIR/portd.sock, then /run/portd/portd.sock)\n"
               "  --count N      exit after answering N requests (default: never)\n",
               kService);
}

}  // namespace

int main(int argc, char** argv) {
  portd::ConnectOptions options;
  long count = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--socket" && i + 1 < argc) {
      options.socket_path = argv[++i];
    } else if (arg == "--count" && i + 1 < argc) {
      count = std::strtol(argv[++i], nullptr, 10);
    } else {
      usage(stderr);
      return 2;
    }
  }

  auto task = portd::Task::connect(options);
  if (!task) {
    std::fprintf(stderr, "echo_server: portd not running on %s (%s)\n",
                 portd::resolve_socket_path(options.socket_path).c_str(), task.detail().c_str());
    return 1;
  }
  auto port = (*task)->check_in(kService);
  if (!port) {
    std::fprintf(stderr, "echo_server: cannot check in %s: %s\n", kService,
                 std::string(portd::status_name(port.status())).c_str());
    return 1;
  }
  std::printf("echo_server: serving %s on %s\n", kService, (*task)->socket_path().c_str());
  std::fflush(stdout);

  for (long served = 0; count < 0 || served < count;) {
    auto request = port->receive();
    if (!request) {
      std::fprintf(stderr, "echo_server: receive failed: %s\n",
                   std::string(portd::status_name(request.status())).c_str());
      return 1;
    }
    if (request->remote_type != portd::RightType::kSendOnce) {
      // No reply right, or a send right we did not ask for: nothing to answer.
      std::fprintf(stderr, "echo_server: request %d from pid %u has no send-once reply right\n",
                   request->id, request->trailer.pid);
      if (request->remote != portd::kNameNull) (void)(*task)->deallocate(request->remote);
      continue;
    }
    portd::OutgoingMessage reply;
    reply.set_remote(portd::SendOnceRight::adopt(*task, request->remote)).set_id(request->id + 100);
    reply.body() = std::move(request->body);
    const size_t bytes = reply.body().size();
    const portd::Status sent = (*task)->send(reply);
    if (!portd::ok(sent)) {
      // The client gave up (its reply port died): the reply right is dropped
      // with the message.
      std::fprintf(stderr, "echo_server: reply to pid %u failed: %s\n", request->trailer.pid,
                   std::string(portd::status_name(sent)).c_str());
      continue;
    }
    ++served;
    std::fprintf(stderr, "echo_server: echoed %zu bytes to pid %u\n", bytes, request->trailer.pid);
  }
  return 0;
}
