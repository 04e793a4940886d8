#include "daemon/server/attachments.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace portd::server {

ipc::AttachmentId Attachments::add(AttachmentFds fds) {
  const ipc::AttachmentId id = next_++;
  fds_.emplace(id, std::move(fds));
  return id;
}

AttachmentFds Attachments::take(ipc::AttachmentId id) {
  auto it = fds_.find(id);
  if (it == fds_.end()) return AttachmentFds{};
  AttachmentFds fds = std::move(it->second);
  fds_.erase(it);
  return fds;
}

void Attachments::release(ipc::AttachmentId id) { fds_.erase(id); }

Status check_ool_fd(int fd, uint64_t size, bool is_volatile) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return Status::kSendInvalidMemory;
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size) return Status::kSendInvalidMemory;
  // F_SEAL_FUTURE_WRITE is not enough: existing writable mappings stay
  // writable. F_SEAL_WRITE fails while any exist.
  constexpr int kSealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  const int required = is_volatile ? F_SEAL_SHRINK : kSealed;
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & required) != required) return Status::kSendInvalidMemory;
  return Status::kSuccess;
}

Status check_release_fd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return Status::kSendInvalidMemory;
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || (flags & O_ACCMODE) != O_WRONLY) return Status::kSendInvalidMemory;
  return Status::kSuccess;
}

}  // namespace portd::server
