// A program outside the portd tree, built against an installed portd: it
// checks a name in, looks it up, sends itself a message through the daemon
// and prints what arrived.
//
//   consumer LABEL    prints "LABEL: hello from LABEL (message 7 from pid N)"
#include <portd/portd.h>
#include <unistd.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string label = argc > 1 ? argv[1] : "consumer";
  const std::string service = "portd.packaging." + label;

  auto task = portd::Task::connect();
  if (!task) {
    std::fprintf(stderr, "%s: connect: %s (%s)\n", label.c_str(),
                 std::string(portd::status_name(task.status())).c_str(), task.detail().c_str());
    return 1;
  }
  auto port = (*task)->check_in(service);
  auto right = port ? (*task)->look_up(service) : portd::Result<portd::SendRight>(port.status());
  if (!port || !right) {
    std::fprintf(stderr, "%s: bootstrap: %s\n", label.c_str(),
                 std::string(portd::status_name(port ? right.status() : port.status())).c_str());
    return 1;
  }
  portd::OutgoingMessage message;
  message.set_remote(*right).set_id(7).set_body("hello from " + label);
  if (const portd::Status s = (*task)->send(message); !portd::ok(s)) {
    std::fprintf(stderr, "%s: send: %s\n", label.c_str(), std::string(portd::status_name(s)).c_str());
    return 1;
  }
  auto received = port->receive();
  if (!received) {
    std::fprintf(stderr, "%s: receive: %s\n", label.c_str(),
                 std::string(portd::status_name(received.status())).c_str());
    return 1;
  }
  std::printf("%s: %s (message %d from pid %u)\n", label.c_str(),
              std::string(received->body_text()).c_str(), received->id, received->trailer.pid);
  return received->trailer.pid == static_cast<uint32_t>(::getpid()) ? 0 : 1;
}
