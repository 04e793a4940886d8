// fuzz_frames (harness.h): proto/frame.h's reader over a socket pair, checked
// against an independent reading of the stream, and its writer round trip.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <dirent.h>
#include <fcntl.h>
#include <kj/exception.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "portd/portd.capnp.h"
#include "tests/fuzz/harness.h"

namespace portd::fuzz {

int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

std::string with_fd_check(std::string error, int fds_before) {
  if (!error.empty()) return error;
  const int fds_after = open_fd_count();
  if (fds_after == fds_before) return {};
  return "open fds: " + std::to_string(fds_before) + " before, " + std::to_string(fds_after) +
         " after";
}

namespace {

using proto::FrameLimits;
using proto::FrameReader;
using proto::FrameWriter;
using proto::UniqueFd;

// Fds that travel with a record, by the tag's low 3 bits.
constexpr uint32_t kFdCounts[8] = {0, 0, 0, 1, 2, 3, 64, 253};
// Fds one input may send in all (each costs the kernel some work).
constexpr uint32_t kMaxFdsPerInput = 1024;
// What the reader reads at most in one call (frame.cc's kReadChunk).
constexpr size_t kReadChunk = 64 * 1024;

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// What the reader must say about `avail` buffered bytes at `p`, read from the
// segment table the slow way. On kFrame, *bytes is the frame's size.
FrameReader::Next expected_verdict(const char* p, size_t avail, const FrameLimits& limits,
                                   size_t* bytes) {
  using Next = FrameReader::Next;
  if (avail < 4) return Next::kNeedMore;
  const uint64_t count = uint64_t{load_u32(p)} + 1;
  if (count > std::min(limits.max_segments, proto::kSegmentCeiling)) return Next::kError;
  // The table is (1 + count) u32s, padded to a whole number of words.
  const uint64_t table = ((1 + count) * 4 + 7) / 8 * 8;
  if (avail < table) return Next::kNeedMore;
  uint64_t words = 0;
  for (uint64_t i = 0; i < count; ++i) words += load_u32(p + 4 + 4 * i);
  const uint64_t total = table + words * 8;
  if (total > limits.max_frame_bytes) return Next::kError;
  if (avail < total) return Next::kNeedMore;
  *bytes = static_cast<size_t>(total);
  return Next::kFrame;
}

const char* verdict_name(FrameReader::Next v) {
  switch (v) {
    case FrameReader::Next::kNeedMore: return "need-more";
    case FrameReader::Next::kFrame: return "frame";
    case FrameReader::Next::kError: return "error";
  }
  return "?";
}

bool socket_pair(UniqueFd* a, UniqueFd* b) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return false;
  a->reset(sv[0]);
  b->reset(sv[1]);
  return true;
}

class FrameRun {
 public:
  explicit FrameRun(uint8_t flags)
      : limits_((flags & 1) != 0 ? kTightFrameLimits : FrameLimits{}),
        use_socket_((flags & 2) == 0),
        reader_(limits_),
        // A copy may be larger than its original (shared data is copied
        // out), up to the traversal limit.
        back_(FrameLimits{.max_frame_bytes = 64u << 20}) {
    if (!socket_pair(&a_, &b_) || !socket_pair(&c_, &d_)) fail("socketpair failed");
    base_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!base_) fail("cannot open /dev/null");
  }

  std::string run(const uint8_t* data, size_t size) {
    size_t pos = 0;
    uint32_t fd_budget = kMaxFdsPerInput;
    while (pos < size && !stopped_ && error_.empty()) {
      const uint8_t tag = data[pos++];
      size_t len = size - pos;
      if (len >= 2) {
        len = std::min<size_t>(data[pos] | (data[pos + 1] << 8), len - 2);
        pos += 2;
      }
      const uint32_t fds = std::min(kFdCounts[tag & 7], fd_budget);
      fd_budget -= fds;
      send_record(reinterpret_cast<const char*>(data + pos), len, fds);
      pos += len;
    }
    if (error_.empty() && !stopped_ && use_socket_) {
      drain();
      if (error_.empty() && !stopped_ && fds_sent_ != fds_taken_ + reader_.pending_fds())
        fail(std::to_string(fds_sent_) + " fds sent, " + std::to_string(fds_taken_) + " taken, " +
             std::to_string(reader_.pending_fds()) + " pending");
    }
    return error_;
  }

 private:
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
  }

  void send_record(const char* p, size_t len, uint32_t fds) {
    stream_.append(p, len);
    if (!use_socket_) {
      if (!reader_.feed(p, len)) {
        fail("feed refused " + std::to_string(len) + " bytes with " +
             std::to_string(reader_.buffered_bytes()) + " buffered");
        return;
      }
      received_ += len;
      process_frames();
      return;
    }
    // A stream socket sends no fds with zero bytes.
    if (len == 0) return;
    size_t off = 0;
    bool fds_pending = fds != 0;
    while (off < len && !stopped_ && error_.empty()) {
      iovec iov{const_cast<char*>(p + off), len - off};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      std::vector<char> control;
      if (fds_pending) {
        control.assign(CMSG_SPACE(sizeof(int) * fds), 0);
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds);
        const int raw = base_.get();
        for (uint32_t i = 0; i < fds; ++i)
          std::memcpy(CMSG_DATA(c) + i * sizeof(int), &raw, sizeof(int));
      }
      const ssize_t n = ::sendmsg(a_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
        if (fds_pending) fds_sent_ += fds;
        fds_pending = false;
      } else if (n < 0 && errno == EAGAIN) {
        drain();  // the reader makes room
      } else {
        fail(std::string("sendmsg: ") + std::strerror(errno));
      }
    }
    if (error_.empty() && !stopped_) drain();
  }

  // Reads everything the socket has, handling frames as they complete.
  void drain() {
    while (!stopped_ && error_.empty()) {
      const long n = reader_.read_from(b_.get());
      if (reader_.pending_fds() > limits_.max_pending_fds)
        fail(std::to_string(reader_.pending_fds()) + " fds pending, over the limit");
      if (n == -EAGAIN) return;
      if (n == -EPROTO) {
        // Too many fds pending. (The reader's buffer ceiling cannot be hit:
        // frames are taken out after every read.)
        if (reader_.error() != "more fds in flight than the limit allows")
          fail("read_from: unexpected protocol error: " + reader_.error());
        stopped_ = true;
        return;
      }
      if (n <= 0) {
        fail("read_from returned " + std::to_string(n));
        return;
      }
      received_ += static_cast<size_t>(n);
      if (reader_.buffered_bytes() > limits_.max_frame_bytes + kReadChunk)
        fail("reader buffers " + std::to_string(reader_.buffered_bytes()) + " bytes");
      process_frames();
    }
  }

  void process_frames() {
    while (!stopped_ && error_.empty()) {
      const FrameReader::Next got = reader_.next();
      const size_t avail = reader_.buffered_bytes();
      if (consumed_ + avail != received_) {
        fail("reader holds " + std::to_string(avail) + " bytes; expected " +
             std::to_string(received_ - consumed_));
        return;
      }
      size_t bytes = 0;
      const FrameReader::Next want =
          expected_verdict(stream_.data() + consumed_, avail, limits_, &bytes);
      if (got != want) {
        fail(std::string("reader says ") + verdict_name(got) + ", the segment table says " +
             verdict_name(want) + " (" + std::to_string(avail) + " bytes buffered)");
        return;
      }
      switch (got) {
        case FrameReader::Next::kNeedMore:
          // A frame's fds come with its first bytes: with nothing buffered,
          // fds no frame declared are a violation (Connection closes).
          if (avail == 0 && reader_.pending_fds() != 0) stopped_ = true;
          return;
        case FrameReader::Next::kError:
          if (reader_.error().empty()) fail("frame error without a reason");
          stopped_ = true;
          return;
        case FrameReader::Next::kFrame:
          if (reader_.frame_bytes() != bytes)
            fail("frame of " + std::to_string(reader_.frame_bytes()) + " bytes; expected " +
                 std::to_string(bytes));
          on_frame();
          consumed_ += bytes;
          if (consumed_ > (1u << 20)) {
            stream_.erase(0, consumed_);
            received_ -= consumed_;
            consumed_ = 0;
          }
          break;
      }
    }
  }

  // What a connection does with a frame, before the codec: read the root,
  // take the declared fds.
  void on_frame() {
    uint16_t fd_count = 0;
    capnp::MallocMessageBuilder copy;
    kj::Maybe<kj::Exception> exception = kj::runCatchingExceptions([&] {
      auto root = reader_.frame().getRoot<wire::Request>();
      fd_count = root.getFdCount();
      copy.setRoot(root);  // traverses all of it, within the reader's limits
    });
    if (exception != nullptr) {
      stopped_ = true;  // a malformed frame: the connection closes
      return;
    }
    const size_t pending = reader_.pending_fds();
    std::vector<UniqueFd> fds;
    const bool took = reader_.take_fds(fd_count, &fds);
    const bool can = fd_count <= limits_.max_fds_per_frame && fd_count <= pending;
    if (took != can) {
      fail("take_fds(" + std::to_string(fd_count) + ") with " + std::to_string(pending) +
           " pending " + (took ? "succeeded" : "failed"));
      return;
    }
    if (!took) {
      if (!fds.empty() || reader_.pending_fds() != pending) fail("failed take_fds took fds");
      stopped_ = true;  // declared more than arrived: a violation
      return;
    }
    if (fds.size() != fd_count) fail("take_fds gave the wrong number of fds");
    for (const auto& fd : fds)
      if (!fd.valid() || (::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) == 0)
        fail("a received fd is invalid or not close-on-exec");
    fds_taken_ += fd_count;
    round_trip(copy, std::move(fds));
  }

  // The frame, written with its fds by a FrameWriter, reads back the same.
  void round_trip(capnp::MallocMessageBuilder& copy, std::vector<UniqueFd> fds) {
    const size_t n = fds.size();
    FrameWriter writer;
    writer.append(copy, std::move(fds));
    bool have = false;
    for (int spins = 0; !have && error_.empty(); ++spins) {
      if (!writer.empty()) {
        const int w = writer.write_to(c_.get());
        if (w != 0 && w != -EAGAIN) fail("write_to: " + std::string(std::strerror(-w)));
      }
      const long r = back_.read_from(d_.get());
      if (r < 0 && r != -EAGAIN) fail("read back: " + std::to_string(r) + " " + back_.error());
      switch (back_.next()) {
        case FrameReader::Next::kFrame: have = true; break;
        case FrameReader::Next::kError: fail("read back: " + back_.error()); break;
        case FrameReader::Next::kNeedMore:
          if (writer.empty() && r == -EAGAIN) fail("the frame did not come back whole");
          break;
      }
    }
    if (!have) return;
    capnp::MallocMessageBuilder again;
    kj::Maybe<kj::Exception> exception =
        kj::runCatchingExceptions([&] { again.setRoot(back_.frame().getRoot<wire::Request>()); });
    if (exception != nullptr) {
      fail("a copied frame does not read back");
      return;
    }
    auto want = capnp::messageToFlatArray(copy);
    auto got = capnp::messageToFlatArray(again);
    if (want.asBytes() != got.asBytes()) fail("a frame read back differs from what was written");
    std::vector<UniqueFd> back_fds;
    if (!back_.take_fds(n, &back_fds) || back_fds.size() != n || back_.pending_fds() != 0)
      fail("a frame's fds did not come back with it");
  }

  const FrameLimits limits_;
  const bool use_socket_;
  FrameReader reader_;
  FrameReader back_;
  UniqueFd a_, b_;       // the stream under test: written at a_, read at b_
  UniqueFd c_, d_;       // the round trip
  UniqueFd base_;        // what every fd sent is a copy of
  std::string stream_;   // every byte sent, from the oldest one not consumed
  size_t consumed_ = 0;  // bytes of stream_ in frames already handled
  size_t received_ = 0;  // bytes of stream_ the reader has read
  uint64_t fds_sent_ = 0;
  uint64_t fds_taken_ = 0;
  bool stopped_ = false;  // the connection would have closed
  std::string error_;
};

}  // namespace

std::string fuzz_frames(const uint8_t* data, size_t size) {
  if (size == 0) return {};
  const int fds_before = open_fd_count();
  std::string error;
  {
    FrameRun run(data[0]);
    error = run.run(data + 1, size - 1);
  }
  return with_fd_check(std::move(error), fds_before);
}

}  // namespace portd::fuzz
