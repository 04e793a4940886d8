#include "tests/integration/daemon_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef PORTD_BINARY
#error "PORTD_BINARY must name the portd executable"
#endif

namespace portd::testing {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

void remove_tree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

}  // namespace

// ---------------------------------------------------------------------------
// DaemonProcess

namespace {
DaemonLaunch with_args(std::vector<std::string> args) {
  DaemonLaunch launch;
  launch.args = std::move(args);
  return launch;
}
}  // namespace

DaemonProcess::DaemonProcess(std::vector<std::string> extra_args)
    : DaemonProcess(with_args(std::move(extra_args))) {}

DaemonProcess::DaemonProcess(const DaemonLaunch& launch) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/portd-test-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return;
  }
  dir_ = buf.data();
  socket_path_ = dir_ + "/portd.sock";
  log_path_ = dir_ + "/portd.log";

  std::vector<std::string> args = {PORTD_BINARY};
  if (!launch.config.empty()) args.insert(args.end(), {"--config", launch.config});
  if (launch.socket_flag) args.insert(args.end(), {"--socket", socket_path_});
  if (!launch.log_level.empty()) args.insert(args.end(), {"--log-level", launch.log_level});
  args.insert(args.end(), launch.args.begin(), launch.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_ = ::fork();
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  if (pid_ == 0) {
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
    }
    for (const auto& e : launch.env) ::putenv(const_cast<char*>(e.c_str()));
    if (launch.journal_stream) {
      struct stat st;
      ::fstat(STDERR_FILENO, &st);
      ::setenv("JOURNAL_STREAM",
               (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    }
    if (!launch.listen_fds.empty()) {
      // Move them out of the way first, then into 3, 4, ... (no CLOEXEC).
      std::vector<int> moved;
      for (int fd : launch.listen_fds) moved.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
      for (size_t i = 0; i < moved.size(); ++i) ::dup2(moved[i], 3 + static_cast<int>(i));
      ::setenv("LISTEN_FDS", std::to_string(moved.size()).c_str(), 1);
      ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
      ::setenv("LISTEN_FDNAMES", launch.listen_fdnames.c_str(), 1);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }

  const std::string wait_path =
      launch.wait_path.empty() && launch.socket_flag ? socket_path_ : launch.wait_path;
  if (wait_path.empty()) {
    started_ = true;
    return;
  }
  // Up when a connection succeeds.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (connect_unix(wait_path).valid()) {
      started_ = true;
      return;
    }
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "portd exited during startup; log:\n" << log();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "portd did not accept connections on " << wait_path << "; log:\n" << log();
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    // Every test ends with a clean stop: a daemon that hangs, crashes or
    // leaks (under ASan) fails the test that ran it.
    const int status = stop(SIGTERM);
    if (status == -1)
      ADD_FAILURE() << "portd did not exit on SIGTERM; log:\n" << log();
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      ADD_FAILURE() << "portd exited with wait status " << status << "; log:\n" << log();
  }
  const std::string text = log();
  for (const char* bad : {"AddressSanitizer", "LeakSanitizer", "runtime error:"})
    if (text.find(bad) != std::string::npos)
      ADD_FAILURE() << "sanitizer report from portd:\n" << text;
  if (!dir_.empty()) remove_tree(dir_);
}

bool DaemonProcess::running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

int DaemonProcess::stop(int signo, int timeout_ms) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signo);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

int DaemonProcess::wait_exit(int timeout_ms) {
  if (pid_ <= 0) return -1;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int DaemonProcess::open_fd_count() const {
  if (pid_ <= 0) return -1;
  const std::string path = "/proc/" + std::to_string(pid_) + "/fd";
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool DaemonProcess::wait_for_log(const std::string& text, int timeout_ms) const {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    if (log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (Clock::now() < deadline);
  return false;
}

// ---------------------------------------------------------------------------
// RawClient

proto::UniqueFd connect_unix(const std::string& path) {
  proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof addr.sun_path) return {};
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
  return fd;
}

RawClient::RawClient(const std::string& socket_path) : fd_(connect_unix(socket_path)) {}

bool RawClient::send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds) {
  proto::FrameWriter writer;
  writer.append(frame, std::move(fds));
  for (;;) {
    const int r = writer.write_to(fd_.get());
    if (r == 0) return true;
    if (r != -EAGAIN) return false;
    pollfd p{fd_.get(), POLLOUT, 0};
    ::poll(&p, 1, 1000);
  }
}

bool RawClient::send_bytes(const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t n = ::send(fd_.get(), p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool RawClient::request(uint64_t id, const std::function<void(wire::Request::Builder)>& fill,
                        std::vector<proto::UniqueFd> fds) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::Request>();
  r.setId(id);
  r.setFdCount(static_cast<uint16_t>(fds.size()));
  fill(r);
  return send(message, std::move(fds));
}

bool RawClient::next_reply(
    const std::function<void(wire::Reply::Reader, std::vector<proto::UniqueFd>&)>& on_reply,
    int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    switch (reader_.next()) {
      case proto::FrameReader::Next::kFrame: {
        auto reply = reader_.frame().getRoot<wire::Reply>();
        std::vector<proto::UniqueFd> fds;
        if (!reader_.take_fds(reply.getFdCount(), &fds)) return false;
        on_reply(reply, fds);
        return true;
      }
      case proto::FrameReader::Next::kError: return false;
      case proto::FrameReader::Next::kNeedMore: break;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    const int left = remaining_ms(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
    const long n = reader_.read_from(fd_.get());
    if (n == -EAGAIN) continue;
    if (n <= 0) return false;
  }
}

uint64_t RawClient::hello(const std::string& command, uint32_t version) {
  if (!request(1, [&](auto r) {
        auto h = r.initHello();
        h.setVersion(version);
        h.setCommand(command);
      }))
    return 0;
  uint64_t task = 0;
  if (!next_reply([&](wire::Reply::Reader reply, auto&) {
        if (reply.getId() == 1 && reply.getStatus() == 0 && reply.which() == wire::Reply::HELLO)
          task = reply.getHello().getTask();
      }))
    return 0;
  return task;
}

bool RawClient::wait_closed(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    const int left = remaining_ms(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errno == ECONNRESET;
  }
}

}  // namespace portd::testing
