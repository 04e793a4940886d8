// Integration test helpers: the real portd on a temporary socket, and a raw
// client that speaks frames to it.
//
// DaemonProcess forks and execs the portd binary built with the tests
// (PORTD_BINARY) on a socket in a fresh temporary directory, waits until the
// socket accepts connections, and stops it in its destructor (SIGTERM, then
// SIGKILL if it lingers). Its stderr goes to a file the test can read.
//
// RawClient is a blocking client made of a socket, a FrameWriter and a
// FrameReader: no libportd, so tests can send anything, malformed frames
// included.
#pragma once

#include <capnp/message.h>
#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "portd/portd.capnp.h"
#include "portd/proto/frame.h"
#include "portd/proto/unique_fd.h"

namespace portd::testing {

// How to start portd, for tests of the process itself (config, systemd).
struct DaemonLaunch {
  // After the fixed arguments (below).
  std::vector<std::string> args;
  // --config: an empty file by default, so that no file on the machine
  // (the default path) changes what a test sees. Empty: no --config.
  std::string config = "/dev/null";
  // --socket <directory>/portd.sock; false: no --socket.
  bool socket_flag = true;
  // --log-level; empty: none (the configuration decides).
  std::string log_level = "debug";
  // "NAME=value" added to the environment.
  std::vector<std::string> env;
  // Passed the way systemd passes sockets: as fd 3 (and 4, ...), with
  // LISTEN_FDS, LISTEN_PID (the daemon's pid) and LISTEN_FDNAMES.
  std::vector<int> listen_fds;
  std::string listen_fdnames = "portd.socket";
  // Sets JOURNAL_STREAM to the log file's device and inode, as systemd does
  // when stderr is a stream into the journal.
  bool journal_stream = false;
  // Wait until something accepts connections at this path (empty: the
  // --socket path). Without a socket to wait for, the constructor returns at
  // once.
  std::string wait_path;
};

class DaemonProcess {
 public:
  // Starts portd with `extra_args` after --socket. Fails the current test
  // (ADD_FAILURE) if it does not come up within a few seconds.
  explicit DaemonProcess(std::vector<std::string> extra_args = {});
  explicit DaemonProcess(const DaemonLaunch& launch);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  bool started() const { return started_; }
  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& directory() const { return dir_; }

  // Entries in /proc/<pid>/fd: for leak checks.
  int open_fd_count() const;
  // What the daemon wrote to stderr so far.
  std::string log() const;
  // Waits until the log contains `text` (the daemon logs asynchronously to
  // the test's actions). True if it appeared within `timeout_ms`.
  bool wait_for_log(const std::string& text, int timeout_ms = 5000) const;

  // Sends `signo` and waits for the exit; returns the wait status, or -1 if
  // it did not exit within `timeout_ms` (it is then killed).
  int stop(int signo = SIGTERM, int timeout_ms = 5000);
  // Waits for an exit without signalling; the wait status, or -1 on timeout
  // (the daemon keeps running).
  int wait_exit(int timeout_ms = 5000);
  bool running() const;

 private:
  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  bool started_ = false;
};

// Connects to `path`; an invalid fd on failure.
proto::UniqueFd connect_unix(const std::string& path);

class RawClient {
 public:
  explicit RawClient(const std::string& socket_path);

  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  // Writes a frame (and its fds) completely. False if the daemon closed.
  bool send(capnp::MessageBuilder& frame, std::vector<proto::UniqueFd> fds = {});
  // Writes raw bytes completely (malformed input).
  bool send_bytes(const void* data, size_t len);

  // Builds a Request with `fill` (id set to `id`) and sends it.
  bool request(uint64_t id, const std::function<void(wire::Request::Builder)>& fill,
               std::vector<proto::UniqueFd> fds = {});

  // Waits for the next Reply and hands it (and its fds) to `on_reply`. False
  // on timeout, end of stream or a framing error.
  bool next_reply(
      const std::function<void(wire::Reply::Reader, std::vector<proto::UniqueFd>&)>& on_reply,
      int timeout_ms = 5000);

  // Sends hello and checks the reply; returns the task id (0 on failure).
  uint64_t hello(const std::string& command = "portd-test", uint32_t version = 1);

  // True once the daemon has closed the connection (reads reach end of
  // stream within `timeout_ms`; replies that arrive first are skipped).
  bool wait_closed(int timeout_ms = 5000);

 private:
  proto::UniqueFd fd_;
  proto::FrameReader reader_;
};

}  // namespace portd::testing
