// BodyPool: the buffers of inline bodies, kept for reuse.
//
// Every message the event loop decodes gets a body buffer, and every message
// it hands to a receiver frees one once the reply is encoded. Under a stream
// of messages that is a malloc and a free per message; small freed chunks
// overflow glibc's per-thread cache into its fastbins, which the next large
// allocation then consolidates. The codec takes its body buffers from here
// and the driver gives received bodies back.
//
// Bounded, in two classes: at most kMaxBuffers buffers of at most
// kMaxCapacity bytes (256 KiB in all), and kMaxMediumBuffers of at most
// kMaxMediumCapacity bytes (512 KiB in all). A body too large for either is
// referenced by its reply rather than copied (kReferenceBodyBytes, the same
// size), so its buffer is freed. One pool per thread (the event-loop thread
// is the only user).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace portd::server {

class BodyPool {
 public:
  static constexpr size_t kMaxBuffers = 256;
  static constexpr size_t kMaxCapacity = 1024;
  static constexpr size_t kMaxMediumBuffers = 32;
  static constexpr size_t kMaxMediumCapacity = 16 * 1024;

  // An empty buffer for a body of `size` bytes: one kept from an earlier
  // body that holds `size` when there is one, else a fresh one.
  static std::vector<uint8_t> take(size_t size = 0);
  // `body` (cleared) is kept if its class has room; else freed.
  static void give(std::vector<uint8_t>&& body);
  // Buffers kept now, in both classes; and freeing them all (tests).
  static size_t spare();
  static void release_all();
};

}  // namespace portd::server
