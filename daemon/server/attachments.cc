#include "daemon/server/attachments.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

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

namespace {

Status refuse(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
  return Status::kSendInvalidMemory;
}

std::string file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// The seals of `bits`, by name ("GROW|WRITE").
std::string seal_names(int bits) {
  std::string out;
  for (auto [bit, name] : {std::pair{F_SEAL_SHRINK, "SHRINK"}, std::pair{F_SEAL_GROW, "GROW"},
                           std::pair{F_SEAL_WRITE, "WRITE"}, std::pair{F_SEAL_SEAL, "SEAL"}})
    if (bits & bit) out += (out.empty() ? "" : "|") + std::string(name);
  return out;
}

}  // namespace

Status check_ool_fd(int fd, uint64_t size, bool is_volatile, std::string* why) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return refuse(why, std::string("fstat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return refuse(why, file_kind(st.st_mode) + ", not a memfd");
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size)
    return refuse(why, "the file is " + std::to_string(st.st_size) +
                           " bytes long, the descriptor says " + std::to_string(size));
  // F_SEAL_FUTURE_WRITE is not enough: existing writable mappings stay
  // writable. F_SEAL_WRITE fails while any exist.
  constexpr int kSealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  const int required = is_volatile ? F_SEAL_SHRINK : kSealed;
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return refuse(why, std::string("F_GET_SEALS: ") + std::strerror(errno));
  if ((seals & required) != required)
    return refuse(why, std::string(is_volatile ? "a volatile" : "a sealed") +
                           " region must be sealed " + seal_names(required) + "; this one lacks " +
                           seal_names(required & ~seals));
  return Status::kSuccess;
}

Status check_release_fd(int fd, std::string* why) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return refuse(why, std::string("fstat: ") + std::strerror(errno));
  if (!S_ISFIFO(st.st_mode))
    return refuse(why, "release signal: " + file_kind(st.st_mode) + ", not a pipe");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || (flags & O_ACCMODE) != O_WRONLY)
    return refuse(why, "release signal: not the write-only end of a pipe");
  return Status::kSuccess;
}

}  // namespace portd::server
