// The library's cached pid and tid (libclient/src/identity.h): right in every
// thread, and right again in the child of fork() (the library's fork handler
// refreshes them; a stale pid would make the child use its parent's socket).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "libclient/src/connection.h"
#include "libclient/src/identity.h"

namespace portd::detail {
namespace {

TEST(ClientIdentityTest, PidAndTidAreTheCallersInEveryThread) {
  EXPECT_EQ(process_id(), ::getpid());
  EXPECT_EQ(thread_id(), static_cast<uint64_t>(::gettid()));
  EXPECT_EQ(thread_id(), static_cast<uint64_t>(::gettid()));  // the cached value

  uint64_t other = 0;
  uint64_t other_expected = 0;
  pid_t other_pid = 0;
  std::thread t([&] {
    other = thread_id();
    other_expected = static_cast<uint64_t>(::gettid());
    other_pid = process_id();
  });
  t.join();
  EXPECT_EQ(other, other_expected);
  EXPECT_NE(other, thread_id());
  EXPECT_EQ(other_pid, ::getpid());
}

TEST(ClientIdentityTest, AForkedChildSeesItsOwnPidAndTid) {
  // A Connection installs the library's fork handler; its socket is one end
  // of a socketpair.
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Connection connection{proto::UniqueFd(sv[0])};
  proto::UniqueFd peer(sv[1]);
  ASSERT_TRUE(connection.alive());
  const pid_t parent = process_id();
  const uint64_t parent_tid = thread_id();

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    if (process_id() != ::getpid() || process_id() == parent) code |= 1;
    if (thread_id() != static_cast<uint64_t>(::gettid()) || thread_id() == parent_tid) code |= 2;
    if (connection.alive()) code |= 4;  // the parent's connection is not the child's
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(process_id(), parent);
  EXPECT_EQ(thread_id(), parent_tid);
  EXPECT_TRUE(connection.alive());
}

}  // namespace
}  // namespace portd::detail
