// BodyPool: the buffers of small inline bodies, kept for reuse.
//
// Every message the event loop decodes gets a body buffer, and every message
// it hands to a receiver frees one once the reply is encoded. Under a stream
// of small messages that is a malloc and a free per message, and the freed
// chunks overflow glibc's per-thread cache into its fastbins, which the next
// large allocation then consolidates. The codec takes its body buffers from
// here and the driver gives received bodies back.
//
// Bounded: at most kMaxBuffers buffers of at most kMaxCapacity bytes each
// (256 KiB in all). Larger buffers, and any beyond the count, are freed.
// One pool per thread (the event-loop thread is the only user).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace portd::server {

class BodyPool {
 public:
  static constexpr size_t kMaxBuffers = 256;
  static constexpr size_t kMaxCapacity = 1024;

  // An empty buffer, with capacity left from an earlier body when one is
  // spare.
  static std::vector<uint8_t> take();
  // `body` (cleared) is kept if it is small and there is room; else freed.
  static void give(std::vector<uint8_t>&& body);
  // Buffers kept now (tests).
  static size_t spare();
};

}  // namespace portd::server
