#include "daemon/server/listener.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace portd::server {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// mkdir -p for the parent of `path`, new directories 0755.
bool make_parent_dirs(const std::string& path, std::string* error) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  const std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string prefix = dir.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = "cannot create directory " + prefix + ": " + errno_text(errno);
      return false;
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = dir + " is not a directory";
    return false;
  }
  return true;
}

// Opens and locks "<path>.lock". A lock file unlinked by a daemon shutting
// down between our open() and flock() is not the lock any more: check that
// the locked inode is still the one at the path, and retry if not.
proto::UniqueFd lock_path(const std::string& lock_path, const std::string& socket_path,
                          std::string* error) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    proto::UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) {
      *error = "cannot open lock file " + lock_path + ": " + errno_text(errno);
      return {};
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        *error = "another portd is listening on " + socket_path + " (" + lock_path + " is locked)";
      else
        *error = "cannot lock " + lock_path + ": " + errno_text(errno);
      return {};
    }
    struct stat held, current;
    if (::fstat(fd.get(), &held) == 0 && ::stat(lock_path.c_str(), &current) == 0 &&
        held.st_dev == current.st_dev && held.st_ino == current.st_ino)
      return fd;
  }
  *error = "cannot lock " + lock_path + ": it keeps being replaced";
  return {};
}

// Whether something accepts connections at `path` (a non-blocking connect
// that does not fail with ECONNREFUSED: a full backlog counts as alive).
// -errno when that cannot be told.
int probe_listening(const std::string& path) {
  proto::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return -errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return 1;
  if (errno == EAGAIN || errno == EINPROGRESS) return 1;
  if (errno == ECONNREFUSED || errno == ENOENT) return 0;
  return -errno;
}

}  // namespace

std::optional<Listener> Listener::open(const std::string& path, const ListenerOptions& options,
                                       std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    *error = "socket path is empty or longer than " + std::to_string(sizeof addr.sun_path - 1) +
             " bytes: " + path;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());

  if (!make_parent_dirs(path, error)) return std::nullopt;

  Listener l;
  l.path_ = path;
  l.lock_fd_ = lock_path(path + ".lock", path, error);
  if (!l.lock_fd_) return std::nullopt;
  l.owns_files_ = true;  // the lock file is ours from here on

  // We hold the lock: no portd that takes it serves this path, so a socket
  // there belongs to a daemon that is gone -- or to someone who does not
  // take the lock (a systemd socket unit): a socket that still accepts
  // connections is left alone. Anything that is not a socket is too.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + " exists and is not a socket";
      return std::nullopt;
    }
    const int live = probe_listening(path);
    if (live != 0) {
      *error = live > 0 ? "another process is listening on " + path +
                              " (a portd started by systemd's portd.socket?)"
                        : "cannot tell whether " + path + " is in use: " + errno_text(-live);
      return std::nullopt;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      *error = "cannot remove stale socket " + path + ": " + errno_text(errno);
      return std::nullopt;
    }
  }

  l.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l.fd_) {
    *error = "socket: " + errno_text(errno);
    return std::nullopt;
  }
  if (::bind(l.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = "cannot bind " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  if (::lstat(path.c_str(), &st) == 0) {
    l.dev_ = st.st_dev;
    l.ino_ = st.st_ino;
  }
  // Group, then mode: the mode's group bits are meant for that group.
  if (options.gid && ::lchown(path.c_str(), static_cast<uid_t>(-1), *options.gid) != 0) {
    *error = "cannot give " + path + " to group " + std::to_string(*options.gid) + ": " +
             errno_text(errno);
    return std::nullopt;
  }
  if (::chmod(path.c_str(), options.mode) != 0) {
    *error = "cannot chmod " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  if (::listen(l.fd_.get(), SOMAXCONN) != 0) {
    *error = "cannot listen on " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  return l;
}

Listener Listener::adopt(proto::UniqueFd fd, std::string path) {
  Listener l;
  l.fd_ = std::move(fd);
  l.path_ = std::move(path);
  return l;
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::move(other.fd_)),
      lock_fd_(std::move(other.lock_fd_)),
      path_(std::move(other.path_)),
      owns_files_(std::exchange(other.owns_files_, false)),
      dev_(other.dev_),
      ino_(other.ino_) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::move(other.fd_);
    lock_fd_ = std::move(other.lock_fd_);
    path_ = std::move(other.path_);
    owns_files_ = std::exchange(other.owns_files_, false);
    dev_ = other.dev_;
    ino_ = other.ino_;
  }
  return *this;
}

Listener::~Listener() { close(); }

void Listener::close() {
  fd_.reset();
  if (owns_files_) {
    struct stat st;
    if (ino_ != 0 && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
      ::unlink(path_.c_str());
    // Unlinked while still locked: a daemon starting now either fails to
    // lock it or finds it replaced and retries on a fresh file.
    ::unlink((path_ + ".lock").c_str());
    owns_files_ = false;
  }
  lock_fd_.reset();
}

int accept_connection(int listen_fd) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return fd;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

bool peer_credentials(int fd, ipc::Credentials* out) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
    return false;
  out->pid = static_cast<uint32_t>(cred.pid);
  out->uid = cred.uid;
  out->gid = cred.gid;
  return true;
}

}  // namespace portd::server
