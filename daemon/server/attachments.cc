#include "daemon/server/attachments.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace portd::server {

ipc::AttachmentId Attachments::add(proto::UniqueFd fd) {
  const ipc::AttachmentId id = next_++;
  fds_.emplace(id, std::move(fd));
  return id;
}

proto::UniqueFd Attachments::take(ipc::AttachmentId id) {
  auto it = fds_.find(id);
  if (it == fds_.end()) return proto::UniqueFd();
  proto::UniqueFd fd = std::move(it->second);
  fds_.erase(it);
  return fd;
}

void Attachments::release(ipc::AttachmentId id) { fds_.erase(id); }

Status check_ool_fd(int fd, uint64_t size, bool is_volatile) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return Status::kSendInvalidMemory;
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size) return Status::kSendInvalidMemory;
  if (!is_volatile) {
    // F_SEAL_FUTURE_WRITE is not enough: existing writable mappings stay
    // writable. F_SEAL_WRITE fails while any exist.
    constexpr int kRequired = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & kRequired) != kRequired) return Status::kSendInvalidMemory;
  }
  return Status::kSuccess;
}

}  // namespace portd::server
