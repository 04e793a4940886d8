#include "portd/proto/frame.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace portd::proto {

namespace {

// Room for the ancillary data of one recvmsg: SCM_MAX_FD (253) fds.
constexpr size_t kMaxFdsPerRecv = 253;
constexpr size_t kReadChunk = 64 * 1024;
// The writer drops its sent prefix once it is at least this large.
constexpr size_t kCompactBytes = 1u << 20;

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // capnp's framing is little-endian, as is every host we build for
}

void append_segment_table(std::vector<char>& out,
                          kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  const size_t count = segments.size();
  const size_t table_words = (count + 2) / 2;  // (1 + count) u32s, rounded up
  const size_t at = out.size();
  out.resize(at + table_words * 8, 0);
  uint32_t v = static_cast<uint32_t>(count - 1);
  std::memcpy(out.data() + at, &v, 4);
  for (size_t i = 0; i < count; ++i) {
    v = static_cast<uint32_t>(segments[i].size());
    std::memcpy(out.data() + at + 4 + 4 * i, &v, 4);
  }
}

void append_message(std::vector<char>& out, capnp::MessageBuilder& message) {
  auto segments = message.getSegmentsForOutput();
  append_segment_table(out, segments);
  for (auto segment : segments) {
    auto bytes = segment.asBytes();
    out.insert(out.end(), reinterpret_cast<const char*>(bytes.begin()),
               reinterpret_cast<const char*>(bytes.end()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// FrameReader

FrameReader::FrameReader(FrameLimits limits) : limits_(limits) {
  limits_.max_segments = std::min(limits_.max_segments, kSegmentCeiling);
  reserve(kReadChunk);
}

bool FrameReader::reserve(size_t needed_bytes) {
  // Makes room for `needed_bytes` from begin_. The largest thing ever held is
  // one frame still incomplete plus one read's worth after it.
  const size_t ceiling = size_t{limits_.max_frame_bytes} + kReadChunk;
  if (needed_bytes > ceiling) return false;
  if (capacity_ - begin_ >= needed_bytes) return true;
  if (capacity_ >= needed_bytes) {
    // Compact: move the unconsumed tail to the front (keeps 8-byte alignment,
    // since begin_ is always a multiple of 8).
    std::memmove(bytes(), bytes() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    return true;
  }
  size_t cap = std::min(std::max(capacity_ * 2, needed_bytes), ceiling);
  cap = (cap + 7) & ~size_t{7};
  // Not zeroed: only bytes a read wrote are ever looked at, and untouched
  // pages cost no memory. An idle connection's 64 KiB buffer then costs the
  // daemon the pages its frames used, not 64 KiB each.
  auto fresh = std::make_unique_for_overwrite<capnp::word[]>(cap / 8);
  if (end_ > begin_) std::memcpy(fresh.get(), bytes() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  buffer_ = std::move(fresh);
  capacity_ = cap;
  return true;
}

void FrameReader::release_frame() {
  if (reader_) {
    reader_.reset();
    begin_ += frame_bytes_;
    frame_bytes_ = 0;
  }
  if (begin_ == end_) begin_ = end_ = 0;
}

long FrameReader::read_from(int fd, bool wait) {
  release_frame();
  drained_ = false;
  if (!reserve(end_ - begin_ + kReadChunk)) {
    error_ = "frame buffer limit reached";
    return -EPROTO;
  }
  const size_t room = capacity_ - end_;

  iovec iov{bytes() + end_, room};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecv)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;

  bool too_many = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const char* data = reinterpret_cast<const char*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, data + i * sizeof(int), sizeof(int));
      if (fds_.size() >= limits_.max_pending_fds) {
        too_many = true;
        ::close(received);
      } else {
        fds_.emplace_back(received);
      }
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    error_ = "control message truncated (MSG_CTRUNC): too many fds in one write";
    return -EPROTO;
  }
  if (too_many) {
    error_ = "more fds in flight than the limit allows";
    return -EPROTO;
  }
  end_ += static_cast<size_t>(n);
  drained_ = static_cast<size_t>(n) < room && msg.msg_controllen == 0;
  return n;
}

bool FrameReader::feed(const void* data, size_t len) {
  release_frame();
  if (!reserve(end_ - begin_ + len)) return false;
  std::memcpy(bytes() + end_, data, len);
  end_ += len;
  return true;
}

FrameReader::Next FrameReader::next() {
  release_frame();

  const size_t avail = end_ - begin_;
  if (avail < 4) return Next::kNeedMore;
  const char* p = bytes() + begin_;
  const uint32_t count = load_u32(p) + 1;  // wraps to 0 for 0xffffffff
  if (count == 0 || count > limits_.max_segments) {
    error_ = "frame declares " + std::to_string(count == 0 ? 0x100000000ull : count) +
             " segments (limit " + std::to_string(limits_.max_segments) + ")";
    return Next::kError;
  }
  const size_t table_bytes = ((count + 2) / 2) * 8;
  if (avail < table_bytes) return Next::kNeedMore;

  uint64_t total_words = 0;
  for (uint32_t i = 0; i < count; ++i) total_words += load_u32(p + 4 + 4 * i);
  const uint64_t total_bytes = table_bytes + total_words * 8;
  if (total_bytes > limits_.max_frame_bytes) {
    error_ = "frame of " + std::to_string(total_bytes) + " bytes exceeds the limit of " +
             std::to_string(limits_.max_frame_bytes);
    return Next::kError;
  }
  if (avail < total_bytes) {
    if (!reserve(total_bytes)) {
      error_ = "cannot buffer frame";
      return Next::kError;
    }
    return Next::kNeedMore;
  }

  p = bytes() + begin_;  // reserve() may have moved the buffer
  const auto* words = reinterpret_cast<const capnp::word*>(p + table_bytes);
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t size = load_u32(p + 4 + 4 * i);
    segments_[i] = kj::ArrayPtr<const capnp::word>(words, size);
    words += size;
  }
  capnp::ReaderOptions options;
  options.traversalLimitInWords = limits_.traversal_limit_words;
  options.nestingLimit = limits_.nesting_limit;
  reader_.emplace(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>(segments_, count), options);
  frame_bytes_ = static_cast<size_t>(total_bytes);
  return Next::kFrame;
}

bool FrameReader::take_fds(size_t n, std::vector<UniqueFd>* out) {
  if (n > limits_.max_fds_per_frame || n > fds_.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    out->push_back(std::move(fds_.front()));
    fds_.pop_front();
  }
  return true;
}

// ---------------------------------------------------------------------------
// FrameWriter

namespace {

// Zeros that pad a referenced body to a whole word.
constexpr char kZeros[8] = {};
// Most iovecs one sendmsg takes here (a chunk is one, a body two).
constexpr size_t kMaxIov = 64;

}  // namespace

size_t FrameWriter::held_bytes() const {
  size_t n = 0;
  for (const auto& c : chunks_) n += c.copied.size() + c.body.size();
  return n;
}

void FrameWriter::new_chunk() {
  chunks_.emplace_back();
  chunks_.back().copied.swap(spare_);
  chunks_.back().copied.clear();
}

void FrameWriter::give_back_body(Chunk& c) {
  if (release_body_ != nullptr) release_body_(std::move(c.body));
  std::vector<uint8_t>().swap(c.body);
  c.has_body = false;
  c.body_at = 0;
}

std::vector<char>& FrameWriter::tail() {
  if (chunks_.size() == 1 && head_sent_ != 0) {
    Chunk& c = chunks_.front();
    if (c.has_body && head_sent_ >= c.body_at + c.padded_body()) {
      // Its body is sent: from here the chunk is its copied bytes alone.
      head_sent_ -= c.padded_body();
      give_back_body(c);
    }
    // The chunk being sent is the one appended to: drop its sent prefix
    // once it is everything or large and at least half of what is held, so
    // that a connection that never quite drains does not grow it forever
    // (amortized).
    auto& out = c.copied;
    if (!c.has_body && (head_sent_ == out.size() ||
                        (head_sent_ >= kCompactBytes && 2 * head_sent_ >= out.size()))) {
      out.erase(out.begin(), out.begin() + static_cast<ptrdiff_t>(head_sent_));
      head_sent_ = 0;
    }
  }
  if (chunks_.empty()) new_chunk();
  return chunks_.back().copied;
}

FrameWriter::Chunk& FrameWriter::tail_without_body() {
  tail();
  if (chunks_.back().has_body) new_chunk();
  return chunks_.back();
}

void FrameWriter::append(capnp::MessageBuilder& message, std::vector<UniqueFd> fds) {
  append_frame(message, std::move(fds), nullptr, nullptr);
}

void FrameWriter::append(capnp::MessageBuilder& message, std::vector<UniqueFd> fds,
                         std::vector<uint8_t> body, const void* at) {
  append_frame(message, std::move(fds), &body, at);
}

void FrameWriter::append_frame(capnp::MessageBuilder& message, std::vector<UniqueFd> fds,
                               std::vector<uint8_t>* body, const void* at) {
  auto segments = message.getSegmentsForOutput();
  // Where the body's bytes (padded to a whole word) sit in the message: the
  // segment that holds them, found before anything is appended.
  const char* hole = nullptr;
  size_t hole_segment = segments.size();
  if (body != nullptr && !body->empty()) {
    hole = static_cast<const char*>(at != nullptr ? at : body->data());
    const size_t padded = (body->size() + 7) & ~size_t{7};
    for (size_t i = 0; i < segments.size(); ++i) {
      auto bytes = segments[i].asBytes();
      const auto* begin = reinterpret_cast<const char*>(bytes.begin());
      const auto* end = reinterpret_cast<const char*>(bytes.end());
      if (std::less_equal<>()(begin, hole) && std::less<>()(hole, end)) {
        if (static_cast<size_t>(end - hole) < padded) break;
        hole_segment = i;
        break;
      }
    }
    if (hole_segment == segments.size())
      throw std::logic_error("FrameWriter::append: the body is not in the message");
  }
  if (!fds.empty()) {
    pending_fds_ += fds.size();
    batches_.push_back(FdBatch{appended_, std::move(fds)});
  }
  // The whole frame goes to one chunk; with a body, one that has none yet.
  Chunk* chunk = hole != nullptr ? &tail_without_body() : nullptr;
  std::vector<char>& out = chunk != nullptr ? chunk->copied : tail();
  const size_t before = out.size();
  append_segment_table(out, segments);
  for (size_t i = 0; i < segments.size(); ++i) {
    auto bytes = segments[i].asBytes();
    const auto* begin = reinterpret_cast<const char*>(bytes.begin());
    const auto* end = reinterpret_cast<const char*>(bytes.end());
    if (i != hole_segment) {
      out.insert(out.end(), begin, end);
      continue;
    }
    // The bytes before the body; the body's own bytes, sent from it, then
    // zeros up to its word (never read from the body, which ends before
    // it); and the bytes after.
    out.insert(out.end(), begin, hole);
    chunk->has_body = true;
    chunk->body_at = out.size();
    chunk->body = std::move(*body);
    appended_ += chunk->padded_body();
    out.insert(out.end(), hole + chunk->padded_body(), end);
  }
  appended_ += out.size() - before;
}

void FrameWriter::pop_sent_chunk() {
  Chunk& c = chunks_.front();
  if (c.has_body) give_back_body(c);
  if (c.copied.capacity() <= kCompactBytes && c.copied.capacity() > spare_.capacity())
    spare_.swap(c.copied);
  chunks_.pop_front();
}

int FrameWriter::write_to(int fd) {
  while (sent_ < appended_) {
    // Data up to the next batch goes without fds; a batch's fds go with the
    // data from its frame's first byte up to the following batch.
    uint64_t stop = appended_;
    FdBatch* batch = nullptr;
    if (!batches_.empty()) {
      if (batches_.front().offset <= sent_) {
        batch = &batches_.front();
        if (batches_.size() > 1) stop = batches_[1].offset;
      } else {
        stop = batches_.front().offset;
      }
    }

    iovec iov[kMaxIov];
    size_t iovs = 0;
    uint64_t left = stop - sent_;
    size_t skip = head_sent_;
    const auto add = [&](const char* p, size_t n) {
      if (skip >= n) {
        skip -= n;
        return;
      }
      p += skip;
      n -= skip;
      skip = 0;
      if (n > left) n = static_cast<size_t>(left);
      if (n == 0) return;
      iov[iovs++] = iovec{const_cast<char*>(p), n};
      left -= n;
    };
    for (const auto& c : chunks_) {
      if (left == 0 || iovs + 4 > kMaxIov) break;
      if (c.has_body) {
        add(c.copied.data(), c.body_at);
        add(reinterpret_cast<const char*>(c.body.data()), c.body.size());
        add(kZeros, c.padded_body() - c.body.size());
        add(c.copied.data() + c.body_at, c.copied.size() - c.body_at);
      } else {
        add(c.copied.data(), c.copied.size());
      }
    }

    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = iovs;
    alignas(cmsghdr) char control_space[CMSG_SPACE(sizeof(int) * 64)];
    std::vector<char> control_heap;
    if (batch != nullptr) {
      const size_t n = batch->fds.size();
      char* control = control_space;
      if (CMSG_SPACE(sizeof(int) * n) > sizeof control_space) {
        control_heap.assign(CMSG_SPACE(sizeof(int) * n), 0);
        control = control_heap.data();
      }
      std::memset(control, 0, CMSG_SPACE(sizeof(int) * n));
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * n);
      for (size_t i = 0; i < n; ++i) {
        const int raw = batch->fds[i].get();
        std::memcpy(CMSG_DATA(c) + i * sizeof(int), &raw, sizeof(int));
      }
    }
    // Bytes alone in one buffer (the usual small frame) go by send(2): the
    // kernel then copies no msghdr and iovec in, about 70 ns a call here.
    const bool plain = batch == nullptr && iovs == 1;
    ssize_t n;
    do {
      n = plain ? ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                : ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    sent_ += static_cast<uint64_t>(n);
    if (batch != nullptr) {
      pending_fds_ -= batch->fds.size();
      batches_.pop_front();  // the kernel holds them now
    }
    // Drop the chunks now wholly sent; keep one copied buffer for reuse.
    size_t done = head_sent_ + static_cast<size_t>(n);
    while (!chunks_.empty() && done >= chunks_.front().size()) {
      done -= chunks_.front().size();
      pop_sent_chunk();
    }
    head_sent_ = done;
  }
  // Everything is sent: a last copied chunk goes back to the spare.
  while (!chunks_.empty()) pop_sent_chunk();
  head_sent_ = 0;
  return 0;
}

// ---------------------------------------------------------------------------
// Scratch

Scratch::Scratch(size_t words) : words_(new capnp::word[words]()), size_(words) {}

void Scratch::grow_to(size_t words, size_t max_words) {
  if (busy_ || words <= size_ || words > max_words) return;
  const size_t n = std::min(std::max(words, 2 * size_), max_words);
  words_.reset(new capnp::word[n]());
  size_ = n;
}

ScratchBuilder::ScratchBuilder(Scratch& scratch, size_t words) {
  if (!scratch.busy_ && words <= scratch.size_) {
    scratch.busy_ = true;
    held_ = &scratch;
    builder_.emplace(kj::ArrayPtr<capnp::word>(scratch.words_.get(), scratch.size_));
  } else if (words != 0) {
    builder_.emplace(static_cast<unsigned>(words));
  } else {
    builder_.emplace();
  }
}

ScratchBuilder::~ScratchBuilder() {
  builder_.reset();  // zeroes what it used of the scratch
  if (held_ != nullptr) held_->busy_ = false;
}

std::vector<char> encode_frame(capnp::MessageBuilder& message) {
  std::vector<char> out;
  append_message(out, message);
  return out;
}

}  // namespace portd::proto
