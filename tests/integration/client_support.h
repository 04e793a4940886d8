// Helpers for libportd's integration tests: a Task on the fixture's daemon,
// and child processes that connect Tasks of their own.
//
// A Task belongs to the process that connected it, so anything that moves
// rights between tasks in different processes forks: the child connects its
// own Task, does its part, and reports through its exit status (0 for
// success, a distinct small number for each check that failed, so a failure
// names the line). Children leave with _exit, never through GoogleTest.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>

#include "portd/portd.h"

namespace portd::testing {

inline std::shared_ptr<Task> connect_or_die(const std::string& socket_path,
                                            const std::string& command = "client-test") {
  auto task = Task::connect(ConnectOptions{socket_path, command});
  if (!task) {
    ADD_FAILURE() << "connect to " << socket_path << ": " << status_name(task.status()) << " "
                  << task.detail();
    return nullptr;
  }
  return std::move(*task);
}

// Runs `body` in a child process; its return value is the exit status.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int code = 100;
      try {
        code = body();
      } catch (...) {
        code = 101;
      }
      ::_exit(code);
    }
    EXPECT_GT(pid_, 0) << "fork failed";
  }
  ~Child() {
    if (pid_ > 0) wait();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // The child's exit code, or -1 if it died of a signal.
  int wait() {
    if (pid_ <= 0) return exit_code_;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// A bootstrap name no other test (or earlier run) uses.
inline std::string unique_service(const std::string& stem) {
  static int counter = 0;
  return "test." + stem + "." + std::to_string(::getpid()) + "." + std::to_string(++counter);
}

inline std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<std::byte>(text[i]);
  return out;
}

// True if `name` appears in the task's names().
inline bool has_name(Task& task, Name name) {
  auto names = task.names();
  if (!names) {
    ADD_FAILURE() << "names(): " << status_name(names.status());
    return false;
  }
  for (const auto& info : *names)
    if (info.name == name) return true;
  return false;
}

}  // namespace portd::testing
