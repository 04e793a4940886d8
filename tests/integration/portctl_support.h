// Helpers for portctl's integration tests: run the portctl binary (optionally
// as another uid) against the fixture's daemon and collect what it printed.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "portd/introspect.h"
#include "portd/portd.h"

#ifndef PORTCTL_BINARY
#error "PORTCTL_BINARY must name the portctl executable"
#endif

namespace portd::testing {

using Json = nlohmann::json;

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Drops root for uid/gid `id` (a forked child only). False if it could not.
inline bool become(uid_t id) {
  return ::setgroups(0, nullptr) == 0 && ::setgid(id) == 0 && ::setuid(id) == 0;
}

// portctl running in the background, its output going to files in `dir`.
class PortctlProcess {
 public:
  // `as_uid` < 0: as this process's uid. An empty `socket` passes no
  // --socket: portctl resolves the path itself, with `env` ("NAME=value")
  // set and $PORTD_SOCKET and $XDG_RUNTIME_DIR unset unless `env` sets them.
  PortctlProcess(const std::string& dir, const std::string& socket,
                 const std::vector<std::string>& args, int as_uid = -1,
                 const std::vector<std::string>& env = {}) {
    static int counter = 0;
    const std::string stem =
        dir + "/portctl." + std::to_string(::getpid()) + "." + std::to_string(++counter);
    out_path_ = stem + ".out";
    err_path_ = stem + ".err";
    std::vector<std::string> argv_s = {PORTCTL_BINARY};
    if (!socket.empty()) argv_s.insert(argv_s.end(), {"--socket", socket});
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    // Built before fork(): the child of a process with other threads should
    // not allocate (an allocator lock may be held by one of them).
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || err < 0) ::_exit(120);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      if (as_uid >= 0 && !become(static_cast<uid_t>(as_uid))) ::_exit(121);
      ::unsetenv("PORTD_SOCKET");
      ::unsetenv("XDG_RUNTIME_DIR");
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      ::execv(argv[0], argv.data());
      ::_exit(122);
    }
    EXPECT_GT(pid_, 0);
  }
  ~PortctlProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait(5000);
    }
  }
  PortctlProcess(const PortctlProcess&) = delete;
  PortctlProcess& operator=(const PortctlProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo) {
    if (pid_ > 0) ::kill(pid_, signo);
  }
  // The exit code, or -1 if it did not exit within `timeout_ms` (or died of
  // a signal).
  int wait(int timeout_ms = 20000) {
    if (pid_ <= 0) return code_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return code_;
      }
      if (std::chrono::steady_clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::string out() const { return read_file(out_path_); }
  std::string err() const { return read_file(err_path_); }

 private:
  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  int code_ = -1;
};

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
  Json json() const {
    try {
      return Json::parse(out);
    } catch (const Json::exception& e) {
      ADD_FAILURE() << "not JSON (" << e.what() << "): " << out << err;
      return nullptr;
    }
  }
};

// Runs portctl to completion.
inline Outcome portctl(const std::string& dir, const std::string& socket,
                       const std::vector<std::string>& args, int as_uid = -1) {
  PortctlProcess p(dir, socket, args, as_uid);
  Outcome r;
  r.code = p.wait();
  r.out = p.out();
  r.err = p.err();
  return r;
}

// The daemon's status, through libportd.
inline Json daemon_status(const std::shared_ptr<Task>& task) {
  Introspection in(task);
  IntrospectQuery q;
  q.what = IntrospectWhat::kStatus;
  auto r = in.fetch(q);
  if (!r) {
    ADD_FAILURE() << "status: " << status_name(r.status());
    return nullptr;
  }
  return Json::parse(*r);
}

// Waits until `n` clients monitor (portctl monitor has subscribed).
inline bool wait_monitors(const std::shared_ptr<Task>& task, size_t n, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (daemon_status(task)["monitors"] == n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Checks that `*field` is a time in [lo, hi] and replaces it with 0, so that
// the rest of the document can be compared exactly.
inline void settle_time(Json& field, int64_t lo, int64_t hi) {
  ASSERT_TRUE(field.is_number_integer()) << field;
  EXPECT_GE(field.get<int64_t>(), lo);
  EXPECT_LE(field.get<int64_t>(), hi);
  field = 0;
}

// Lines of `text` (without their newlines).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// Checks that the rows of a table (cells without spaces) line up: every
// line has as many cells as the first, and in each column either every
// cell starts at the same offset (left-aligned) or every cell ends at the
// same offset (right-aligned), and no line ends in a space.
inline void expect_aligned(const std::vector<std::string>& lines) {
  struct Cell {
    size_t start, end;
  };
  std::vector<std::vector<Cell>> rows;
  for (const auto& line : lines) {
    EXPECT_TRUE(line.empty() || line.back() != ' ') << "trailing space: '" << line << "'";
    std::vector<Cell> cells;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      if (i == line.size()) break;
      const size_t start = i;
      while (i < line.size() && line[i] != ' ') ++i;
      cells.push_back(Cell{start, i});
    }
    rows.push_back(cells);
  }
  ASSERT_FALSE(rows.empty());
  for (size_t r = 1; r < rows.size(); ++r)
    ASSERT_EQ(rows[r].size(), rows[0].size()) << "line " << r << ": " << lines[r];
  for (size_t c = 0; c < rows[0].size(); ++c) {
    bool starts = true, ends = true;
    for (const auto& row : rows) {
      starts = starts && row[c].start == rows[0][c].start;
      ends = ends && row[c].end == rows[0][c].end;
    }
    EXPECT_TRUE(starts || ends) << "column " << c << " is not aligned";
  }
}

}  // namespace portd::testing
