// The listening socket and its lock (daemon/server/listener.h), in process.
#include "daemon/server/listener.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace portd::server {
namespace {

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/portd-listener-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  static bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  static bool connects(const std::string& path) {
    proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }

  std::string dir_;
};

TEST_F(ListenerTest, CreatesParentDirectoriesSocketAndLock) {
  const std::string path = dir_ + "/a/b/portd.sock";
  std::string error;
  auto l = Listener::open(path, &error);
  ASSERT_TRUE(l) << error;
  EXPECT_EQ(l->path(), path);
  struct stat st;
  // The directories it made: nobody but their owner may write in them (or
  // put another file where the socket goes).
  for (const char* d : {"/a", "/a/b"}) {
    ASSERT_EQ(::stat((dir_ + d).c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 022, 0u) << d;
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  EXPECT_TRUE(exists(path + ".lock"));
  EXPECT_TRUE(connects(path));
  // Non-blocking and close-on-exec.
  EXPECT_TRUE(::fcntl(l->fd(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(l->fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(accept_connection(l->fd()) >= 0, true);
  EXPECT_EQ(accept_connection(l->fd()), -EAGAIN);
}

TEST_F(ListenerTest, RefusesWhileAnotherHoldsTheLock) {
  const std::string path = dir_ + "/portd.sock";
  std::string error;
  auto first = Listener::open(path, &error);
  ASSERT_TRUE(first) << error;
  auto second = Listener::open(path, &error);
  EXPECT_FALSE(second);
  EXPECT_EQ(error.rfind("another portd is listening on " + path, 0), 0u) << error;
  // The live socket and the lock are untouched.
  EXPECT_TRUE(connects(path));
  EXPECT_TRUE(exists(path + ".lock"));
}

TEST_F(ListenerTest, ReplacesAStaleSocket) {
  const std::string path = dir_ + "/portd.sock";
  {
    // A socket file nobody listens on, as a crashed daemon leaves it.
    proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ASSERT_TRUE(exists(path));
  EXPECT_FALSE(connects(path));
  std::string error;
  auto l = Listener::open(path, &error);
  ASSERT_TRUE(l) << error;
  EXPECT_TRUE(connects(path));
}

TEST_F(ListenerTest, RefusesASocketThatStillListensWithoutTheLock) {
  // A systemd socket unit's socket: listening, and no portd lock taken.
  const std::string path = dir_ + "/portd.sock";
  proto::UniqueFd unit(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(unit.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(unit.get(), 4), 0);
  struct stat before;
  ASSERT_EQ(::lstat(path.c_str(), &before), 0);

  std::string error;
  EXPECT_FALSE(Listener::open(path, &error));
  EXPECT_EQ(error, "another process is listening on " + path +
                       " (a portd started by systemd's portd.socket?)");
  // Still the same socket file, still served by its owner; no lock left.
  struct stat after;
  ASSERT_EQ(::lstat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_TRUE(connects(path));
  EXPECT_FALSE(exists(path + ".lock"));
}

TEST_F(ListenerTest, ModeAndGroupAreApplied) {
  const std::string path = dir_ + "/portd.sock";
  ListenerOptions options;
  options.mode = 0640;
  options.gid = ::getgid();
  std::string error;
  auto l = Listener::open(path, options, &error);
  ASSERT_TRUE(l) << error;
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, ::getgid());
  l.reset();

  // A group we may not give files to.
  options.gid = 4242;
  auto other = Listener::open(path, options, &error);
  if (::geteuid() == 0) {
    ASSERT_TRUE(other) << error;
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_gid, 4242u);
  } else {
    EXPECT_FALSE(other);
    EXPECT_EQ(error, "cannot give " + path + " to group 4242: Operation not permitted");
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".lock"));
  }
}

TEST_F(ListenerTest, LeavesAnythingButASocketAlone) {
  const std::string path = dir_ + "/portd.sock";
  ASSERT_TRUE(proto::UniqueFd(::open(path.c_str(), O_CREAT | O_WRONLY, 0600)).valid());
  std::string error;
  EXPECT_FALSE(Listener::open(path, &error));
  EXPECT_NE(error.find("is not a socket"), std::string::npos) << error;
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_FALSE(exists(path + ".lock"));  // the failed attempt cleaned up
}

TEST_F(ListenerTest, CloseRemovesTheSocketAndTheLock) {
  const std::string path = dir_ + "/portd.sock";
  std::string error;
  auto l = Listener::open(path, &error);
  ASSERT_TRUE(l) << error;
  Listener moved = std::move(*l);  // ownership of the files moves too
  l.reset();
  EXPECT_TRUE(exists(path));
  moved.close();
  EXPECT_FALSE(exists(path));
  EXPECT_FALSE(exists(path + ".lock"));
  // And the path can be taken again.
  auto again = Listener::open(path, &error);
  EXPECT_TRUE(again) << error;
}

TEST_F(ListenerTest, PathTooLongIsRefused) {
  std::string error;
  EXPECT_FALSE(Listener::open(dir_ + "/" + std::string(120, 'x'), &error));
  EXPECT_NE(error.find("longer than 107 bytes"), std::string::npos) << error;
}

TEST_F(ListenerTest, AdoptedSocketLeavesFilesAlone) {
  const std::string path = dir_ + "/portd.sock";
  std::string error;
  auto owner = Listener::open(path, &error);
  ASSERT_TRUE(owner) << error;
  {
    Listener adopted = Listener::adopt(proto::UniqueFd(::dup(owner->fd())), path);
    EXPECT_EQ(adopted.path(), path);
  }
  EXPECT_TRUE(exists(path));
  EXPECT_TRUE(exists(path + ".lock"));
}

TEST_F(ListenerTest, PeerCredentialsAreOurs) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  proto::UniqueFd a(sv[0]), b(sv[1]);
  ipc::Credentials creds;
  ASSERT_TRUE(peer_credentials(a.get(), &creds));
  EXPECT_EQ(creds.pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(creds.uid, ::getuid());
  EXPECT_EQ(creds.gid, ::getgid());
}

}  // namespace
}  // namespace portd::server
