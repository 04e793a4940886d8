// Helpers for the out-of-line memory tests: deterministic contents, a
// checksum fast enough for 256 MiB, memfds made by hand, fd counts, and the
// round trip of one region in each mode between two processes.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "portd/portd.h"
#include "portd/proto/unique_fd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"

namespace portd::testing {

// The 64-bit word at word index `i` of pattern `seed` (splitmix64): any
// word can be checked on its own.
inline uint64_t pattern_word(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + (i + 1) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills `out` with pattern `seed`: word i is pattern_word(seed, i), the tail
// bytes the low bytes of the next word.
inline void fill_pattern(std::span<std::byte> out, uint64_t seed) {
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    const uint64_t w = pattern_word(seed, i / 8);
    std::memcpy(out.data() + i, &w, 8);
  }
  if (i < out.size()) {
    const uint64_t w = pattern_word(seed, i / 8);
    std::memcpy(out.data() + i, &w, out.size() - i);
  }
}

// Checks `samples` words spread over `bytes` against pattern `seed` (and the
// tail), without reading everything.
inline bool spot_check(std::span<const std::byte> bytes, uint64_t seed, size_t samples = 4096) {
  const size_t words = bytes.size() / 8;
  for (size_t k = 0; k < samples && words != 0; ++k) {
    const size_t i = (k * 2654435761u) % words;
    uint64_t w;
    std::memcpy(&w, bytes.data() + i * 8, 8);
    if (w != pattern_word(seed, i)) return false;
  }
  if (bytes.size() % 8 != 0) {
    const uint64_t w = pattern_word(seed, words);
    if (std::memcmp(bytes.data() + words * 8, &w, bytes.size() % 8) != 0) return false;
  }
  return true;
}

// A 64-bit checksum of `bytes` (word-wise multiply-xorshift; order and
// position sensitive).
inline uint64_t checksum(std::span<const std::byte> bytes) {
  uint64_t h = 0xcbf29ce484222325ull ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<uint8_t>(bytes[i])) * 0x100000001b3ull;
  return h;
}

// The checksum fill_pattern(size, seed) gives, without keeping the bytes.
inline uint64_t pattern_checksum(size_t size, uint64_t seed) {
  std::vector<std::byte> bytes(size);
  fill_pattern(bytes, seed);
  return checksum(bytes);
}

// A memfd holding `size` bytes of fill_pattern(seed), with `seals` added.
inline proto::UniqueFd memfd_with(size_t size, uint64_t seed, int seals) {
  proto::UniqueFd fd(::memfd_create("ool-test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fd;
  std::vector<std::byte> bytes(size);
  fill_pattern(bytes, seed);
  if (size != 0 && ::pwrite(fd.get(), bytes.data(), size, 0) != static_cast<ssize_t>(size))
    return proto::UniqueFd();
  if (seals != 0 && ::fcntl(fd.get(), F_ADD_SEALS, seals) != 0) return proto::UniqueFd();
  return fd;
}

inline constexpr int kAllSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

// Open fds of this process.
inline int own_fd_count() {
  int n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
  }
  return n - 1;  // the directory stream's own fd
}

// Polls `count` until it returns `expected` (fds close asynchronously to the
// test: the daemon closes them on its own event loop). True if it did within
// `timeout_ms`.
template <typename Count>
bool settles(Count count, int expected, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (count() == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return count() == expected;
}

}  // namespace portd::testing

// ---------------------------------------------------------------------------
// One region, in each mode, from one process to another.

namespace portd::testing {

enum class OolMode { kCopy, kMove, kVolatile };

inline const char* mode_name(OolMode mode) {
  switch (mode) {
    case OolMode::kCopy: return "copy";
    case OolMode::kMove: return "move";
    case OolMode::kVolatile: return "volatile";
  }
  return "?";
}

// Adds a region of `size` bytes of pattern `seed`, made in `mode`, to
// `message`. Returns the checksum of the bytes put in, or nullopt.
inline std::optional<uint64_t> add_region(Task& task, OutgoingMessage& message, OolMode mode,
                                          size_t size, uint64_t seed) {
  uint64_t sum = 0;
  switch (mode) {
    case OolMode::kCopy: {
      std::vector<std::byte> source(size);
      fill_pattern(source, seed);
      sum = checksum(source);
      message.add_ool_copy(source);
      break;
    }
    case OolMode::kMove: {
      auto buffer = SharedBuffer::allocate(size);
      if (!buffer) return std::nullopt;
      fill_pattern(buffer->bytes(), seed);
      sum = checksum(buffer->bytes());
      message.add_ool_move(std::move(*buffer));
      break;
    }
    case OolMode::kVolatile: {
      auto buffer = task.volatile_buffer(size);
      if (!buffer) return std::nullopt;
      fill_pattern(buffer->bytes(), seed);
      sum = checksum(buffer->bytes());
      message.add_ool_volatile(std::move(*buffer));
      break;
    }
  }
  if (!ok(message.problem())) return std::nullopt;
  return sum;
}

inline std::vector<std::byte> sum_body(uint64_t sum) {
  std::vector<std::byte> body(8);
  std::memcpy(body.data(), &sum, 8);
  return body;
}

inline uint64_t body_sum(const ReceivedMessage& m) {
  uint64_t sum = 0;
  if (m.body.size() == 8) std::memcpy(&sum, m.body.data(), 8);
  return sum;
}

// A child process sends the parent a region of `size` bytes in `mode`, with
// its checksum in the body. The parent checks the bytes (checksum and spot
// checks against the pattern), the flags, that it may write its private
// copy, and lets it go. In volatile mode the child then lends again and must
// get the same segment back (the pool reclaimed it through the release
// signal), with the bytes it wrote (the receiver's writes stayed private),
// and sends a second region through it.
inline void round_trip(const DaemonProcess& daemon, Task& parent, OolMode mode, size_t size) {
  SCOPED_TRACE(std::string(mode_name(mode)) + " " + std::to_string(size) + " bytes");
  const std::string service = unique_service(std::string("ool-") + mode_name(mode));
  auto inbox = parent.check_in(service);
  ASSERT_TRUE(inbox) << status_name(inbox.status());
  constexpr uint64_t kSeed = 17;
  const std::string socket = daemon.socket_path();

  Child child([&]() -> int {
    using namespace std::chrono_literals;
    auto task = Task::connect(ConnectOptions{socket, "ool-sender"});
    if (!task) return 2;
    auto server = (*task)->look_up(service, 10000ms);
    if (!server) return 3;
    auto reply_port = (*task)->make_port();
    if (!reply_port) return 4;
    OutgoingMessage message;
    message.set_remote(*server).set_id(1);
    auto sum = add_region(**task, message, mode, size, kSeed);
    if (!sum) return 5;
    message.set_body(sum_body(*sum));
    auto released = (*task)->rpc(message, *reply_port, {}, ReceiveOptions{60000ms});
    if (!released || released->body_text() != "released") return 6;
    if (mode != OolMode::kVolatile) return 0;

    auto again = (*task)->volatile_buffer(size);
    if (!again) return 7;
    const VolatilePoolStats stats = (*task)->volatile_pool_stats();
    if (stats.created != 1 || stats.reused != 1 || stats.in_flight != 0) return 8;
    if (checksum(again->bytes()) != *sum) return 9;  // the receiver's write stayed its own
    fill_pattern(again->bytes(), kSeed + 1);
    OutgoingMessage second;
    second.set_remote(*server).set_id(2).set_body(sum_body(checksum(again->bytes())));
    second.add_ool_volatile(std::move(*again));
    if ((*task)->send(second) != Status::kSuccess) return 10;
    return 0;
  });

  auto got = inbox->receive(ReceiveOptions{std::chrono::milliseconds(60000)});
  ASSERT_TRUE(got) << status_name(got.status());
  ASSERT_EQ(got->descriptors.size(), 1u);
  auto& region = std::get<ReceivedOolMemory>(got->descriptors[0]);
  EXPECT_EQ(region.size, size);
  EXPECT_EQ(region.is_volatile, mode == OolMode::kVolatile);
  EXPECT_EQ(region.deallocate, mode == OolMode::kMove);
  ASSERT_EQ(region.memory.size(), size);
  EXPECT_EQ(region.memory.is_volatile(), mode == OolMode::kVolatile);
  EXPECT_EQ(checksum(region.bytes()), body_sum(*got));
  EXPECT_TRUE(spot_check(region.bytes(), kSeed));
  // The copy is ours to write.
  region.bytes()[size - 1] ^= std::byte{0xff};
  EXPECT_NE(checksum(region.bytes()), body_sum(*got));
  region.memory.reset();

  OutgoingMessage answer;
  answer.set_remote(got->remote, Disposition::kMoveSendOnce).set_body("released");
  ASSERT_EQ(parent.send(answer), Status::kSuccess);

  if (mode == OolMode::kVolatile) {
    auto second = inbox->receive(ReceiveOptions{std::chrono::milliseconds(60000)});
    ASSERT_TRUE(second) << status_name(second.status());
    ASSERT_EQ(second->descriptors.size(), 1u);
    const auto& again = std::get<ReceivedOolMemory>(second->descriptors[0]);
    EXPECT_TRUE(again.is_volatile);
    EXPECT_EQ(checksum(again.bytes()), body_sum(*second));
    EXPECT_TRUE(spot_check(again.bytes(), kSeed + 1));
  }
  EXPECT_EQ(child.wait(), 0);
}

}  // namespace portd::testing
