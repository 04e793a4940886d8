// Listener: the daemon's listening Unix socket, and the lock that makes it
// ours.
//
// open() never steals a live daemon's socket and always replaces a stale
// one: it takes an exclusive flock on "<socket>.lock" first. If another
// process holds it, another portd is serving that path and open() refuses.
// Holding it, any socket file at the path is left over from a daemon that
// died, so it is unlinked and the path bound afresh (mode 0666: access control
// is by uid, inside the daemon). The parent directory is created if missing
// (0755). On destruction the socket file and the lock file this listener
// created are removed.
//
// adopt() wraps an already-listening fd (systemd socket activation): nothing
// is created, so nothing is removed.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>

#include "daemon/ipc/types.h"
#include "portd/proto/unique_fd.h"

namespace portd::server {

struct ListenerOptions {
  mode_t mode = 0666;
  std::optional<gid_t> gid;  // unset: the group the file was created with
};

class Listener {
 public:
  // Binds and listens on `path`. On failure returns nullopt and says why in
  // *error (e.g. "another portd is listening on /run/portd/portd.sock").
  static std::optional<Listener> open(const std::string& path, const ListenerOptions& options,
                                      std::string* error);
  static std::optional<Listener> open(const std::string& path, std::string* error) {
    return open(path, ListenerOptions{}, error);
  }
  // Takes ownership of a listening socket made by someone else.
  static Listener adopt(proto::UniqueFd fd, std::string path);

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  ~Listener();

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  // Closes the socket and removes what open() created. Idempotent.
  void close();

 private:
  Listener() = default;

  proto::UniqueFd fd_;
  proto::UniqueFd lock_fd_;
  std::string path_;
  bool owns_files_ = false;
  // The bound socket file's identity, so that close() removes only our file.
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// Accepts one pending connection (SOCK_CLOEXEC | SOCK_NONBLOCK). Returns the
// fd, or -errno (-EAGAIN when none is pending).
int accept_connection(int listen_fd);

// SO_PEERCRED of a connected socket.
bool peer_credentials(int fd, ipc::Credentials* out);

}  // namespace portd::server
