// Attachments: the out-of-line memory fds the daemon holds for messages in
// flight, by AttachmentId.
//
// The core never sees an fd: it counts and charges attachment ids and hands
// them back, either in a delivered MessageOut (the shell then sends the fds to
// the receiver and forgets them) or in Effects::released (the message was
// destroyed unreceived; the shell closes the fds). This table is the only
// owner of those fds. Ids are never reused.
//
// An attachment is one region's fd and, for a volatile region sent with a
// release signal, the write end of the sender's pipe (docs/ool.md): the two
// always travel, and close, together.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "daemon/ipc/types.h"
#include "portd/proto/unique_fd.h"
#include "portd/status.h"

namespace portd::server {

struct AttachmentFds {
  proto::UniqueFd region;
  proto::UniqueFd release;  // invalid unless the region has a release signal
};

class Attachments {
 public:
  ipc::AttachmentId add(AttachmentFds fds);
  // Takes the fds out of the table (an invalid region fd if the id is
  // unknown).
  AttachmentFds take(ipc::AttachmentId id);
  // Closes the fds. Unknown ids are ignored.
  void release(ipc::AttachmentId id);
  bool contains(ipc::AttachmentId id) const { return fds_.count(id) != 0; }
  size_t size() const { return fds_.size(); }

 private:
  ipc::AttachmentId next_ = 1;
  std::unordered_map<ipc::AttachmentId, AttachmentFds> fds_;
};

// Checks that `fd` may carry `size` bytes of out-of-line memory (DESIGN 3):
// a regular file (a memfd) at least `size` bytes long, sealed against
// shrinking, and unless volatile also against growing, writing and further
// sealing. (A volatile region may be written by its sender, but it may never
// shrink: a receiver's mapping would lose pages and fault with SIGBUS.) The
// payload is never mapped. kSuccess, or kSendInvalidMemory with `why` (if
// given) saying what is wrong, for the log.
Status check_ool_fd(int fd, uint64_t size, bool is_volatile, std::string* why = nullptr);

// Checks a release signal: the write end of a pipe (never read or written
// here). kSuccess, or kSendInvalidMemory with `why`.
Status check_release_fd(int fd, std::string* why = nullptr);

}  // namespace portd::server
