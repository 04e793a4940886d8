// Attachments: the out-of-line memory fds the daemon holds for messages in
// flight, by AttachmentId.
//
// The core never sees an fd: it counts and charges attachment ids and hands
// them back, either in a delivered MessageOut (the shell then sends the fd to
// the receiver and forgets it) or in Effects::released (the message was
// destroyed unreceived; the shell closes the fd). This table is the only
// owner of those fds. Ids are never reused.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "daemon/ipc/types.h"
#include "portd/proto/unique_fd.h"
#include "portd/status.h"

namespace portd::server {

class Attachments {
 public:
  ipc::AttachmentId add(proto::UniqueFd fd);
  // Takes the fd out of the table (an invalid UniqueFd if the id is unknown).
  proto::UniqueFd take(ipc::AttachmentId id);
  // Closes the fd. Unknown ids are ignored.
  void release(ipc::AttachmentId id);
  bool contains(ipc::AttachmentId id) const { return fds_.count(id) != 0; }
  size_t size() const { return fds_.size(); }

 private:
  ipc::AttachmentId next_ = 1;
  std::unordered_map<ipc::AttachmentId, proto::UniqueFd> fds_;
};

// Checks that `fd` may carry `size` bytes of out-of-line memory (DESIGN 3):
// a regular file (a memfd) at least `size` bytes long and, unless volatile,
// sealed against shrinking, growing, writing and further sealing. The payload
// is never mapped. kSuccess or kSendInvalidMemory.
Status check_ool_fd(int fd, uint64_t size, bool is_volatile);

}  // namespace portd::server
