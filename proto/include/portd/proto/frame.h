// Stream framing for portd's wire protocol, with file descriptors alongside.
//
// A frame is one Cap'n Proto message in the standard stream framing: a segment
// table (count - 1, then each segment's size in words, padded to 8 bytes) and
// the segments. FrameReader decodes frames from a socket incrementally and is
// the only place untrusted bytes become a capnp reader: the segment count and
// the frame size are checked from the segment table before any buffer grows,
// and every reader it hands out carries the traversal and nesting limits.
//
// Descriptors travel with SCM_RIGHTS. The writer attaches a frame's fds to a
// sendmsg whose data starts at that frame's first byte, so a reader has all of
// a frame's fds once it has read the whole frame; the reader keeps received
// fds in arrival order and a frame takes as many as its header declares.
// Ancillary data is read with MSG_CMSG_CLOEXEC; MSG_CTRUNC (fds the kernel had
// to drop) is a protocol violation.
#pragma once

#include <capnp/message.h>
#include <capnp/orphan.h>
#include <capnp/serialize.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portd/fifo_vector.h"
#include "portd/proto/unique_fd.h"

namespace portd::proto {

struct FrameLimits {
  // Largest frame, segment table included. Bodies above the daemon's inline
  // limit travel out of line, so real frames stay far below this.
  uint32_t max_frame_bytes = 4u << 20;
  // Most segments in one frame; a well-behaved builder uses one or two.
  uint32_t max_segments = 16;
  // Cap'n Proto's traversal limit, in words: bounds the work a frame can cause
  // by pointing many times at the same data (amplification).
  uint64_t traversal_limit_words = (8u << 20) / 8;
  // Cap'n Proto's nesting limit: bounds recursion on hostile pointers.
  int nesting_limit = 16;
  // Most fds one frame may declare, and most held for frames not yet read.
  uint32_t max_fds_per_frame = 64;
  uint32_t max_pending_fds = 256;
};

// Hard ceiling on segments, whatever the configuration says.
inline constexpr uint32_t kSegmentCeiling = 64;

class FrameReader {
 public:
  explicit FrameReader(FrameLimits limits = {});
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Reads what `fd` has into the buffer (one recvmsg). Returns the number of
  // bytes read, 0 at end of stream, or -errno (-EAGAIN when a non-blocking
  // socket has nothing). A truncated control message, or more fds than the
  // limit allows, returns -EPROTO and sets error(). With `wait`, a
  // blocking socket is read without MSG_DONTWAIT: the call sleeps until
  // bytes arrive, which saves a poll() per read to a client that has nothing
  // else to do.
  long read_from(int fd, bool wait = false);

  // Feeds bytes directly (tests, fuzzing). Returns false if they do not fit
  // in the frame limit.
  bool feed(const void* data, size_t len);

  enum class Next { kNeedMore, kFrame, kError };

  // Looks for the next complete frame. On kFrame, frame() is valid until the
  // next call to next(), read_from() or feed(). On kError, error() says why
  // and the stream cannot continue.
  Next next();

  capnp::MessageReader& frame() { return *reader_; }
  // Bytes of the frame most recently returned by next().
  size_t frame_bytes() const { return frame_bytes_; }

  // Takes the oldest n received fds for the current frame. Fails (and takes
  // nothing) if fewer than n have arrived or n is over the per-frame limit.
  bool take_fds(size_t n, std::vector<UniqueFd>* out);

  // True if the last read_from() emptied the socket as far as a stream
  // socket can tell: it returned fewer bytes than there was room for and no
  // fds (a recvmsg stops early at a write that carries fds, never
  // otherwise). A caller may then wait for readability without reading
  // again first.
  bool drained() const { return drained_; }

  size_t pending_fds() const { return fds_.size(); }
  size_t buffered_bytes() const { return end_ - begin_; }
  const std::string& error() const { return error_; }

 private:
  bool reserve(size_t needed_bytes);
  void release_frame();
  char* bytes() { return reinterpret_cast<char*>(buffer_.get()); }

  FrameLimits limits_;
  std::unique_ptr<capnp::word[]> buffer_;
  size_t capacity_ = 0;  // bytes
  size_t begin_ = 0;     // first unconsumed byte; always a multiple of 8
  size_t end_ = 0;       // one past the last byte read
  size_t frame_bytes_ = 0;
  bool drained_ = false;
  std::deque<UniqueFd> fds_;
  kj::ArrayPtr<const capnp::word> segments_[kSegmentCeiling];
  std::optional<capnp::SegmentArrayMessageReader> reader_;
  std::string error_;
};

class FrameWriter {
 public:
  FrameWriter() = default;
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  // Appends one frame, and the fds that travel with it (their ownership
  // passes to the writer; they are closed once sent).
  void append(capnp::MessageBuilder& message, std::vector<UniqueFd> fds = {});
  // The same for a message whose body bytes are `body`'s: either a segment
  // of its own that references them (reference_body(); `at` null), or a
  // Data field left unfilled at `at` (place_body()). Those bytes, up to the
  // word the field ends on, are sent from `body` itself, which the writer
  // keeps until it is written; they are never read from the message. Every
  // other byte is copied as append() does. Throws std::logic_error, having
  // appended nothing, if no segment of the message holds `at`.
  void append(capnp::MessageBuilder& message, std::vector<UniqueFd> fds, std::vector<uint8_t> body,
              const void* at = nullptr);
  // Once written, a body goes to `release` (for reuse) rather than being
  // freed.
  void set_body_release(void (*release)(std::vector<uint8_t>&&)) { release_body_ = release; }

  bool empty() const { return sent_ == appended_; }
  size_t pending_bytes() const { return static_cast<size_t>(appended_ - sent_); }
  // Fds appended and not yet handed to the kernel.
  size_t pending_fds() const { return pending_fds_; }
  // Bytes held, including a prefix already sent that has not been dropped
  // yet; stays within a small factor of pending_bytes() (tests).
  size_t held_bytes() const;

  // Writes as much as `fd` takes. Returns 0 once everything is written,
  // -EAGAIN if the socket is full with data left, or -errno on failure.
  int write_to(int fd);

 private:
  // The bytes to send, in order: runs of copied bytes (segment tables and
  // segments of any number of frames), each run with at most one body sent
  // from its own buffer in the middle: copied[0, body_at), the body and the
  // zeros that pad it to a whole word, then copied[body_at, end).
  struct Chunk {
    std::vector<char> copied;
    std::vector<uint8_t> body;
    size_t body_at = 0;
    bool has_body = false;
    size_t padded_body() const { return has_body ? (body.size() + 7) & ~size_t{7} : 0; }
    size_t size() const { return copied.size() + padded_body(); }
  };
  struct FdBatch {
    uint64_t offset;  // stream position of the owning frame's first byte
    std::vector<UniqueFd> fds;
  };

  void append_frame(capnp::MessageBuilder& message, std::vector<UniqueFd> fds,
                    std::vector<uint8_t>* body, const void* at);
  // The copied-bytes chunk new bytes go to (the last chunk, or a new one).
  std::vector<char>& tail();
  // The same, in a chunk that holds no body yet.
  Chunk& tail_without_body();
  // Starts a chunk, on the spare buffer.
  void new_chunk();
  // Hands a chunk's body (sent) to release_body_ or frees it.
  void give_back_body(Chunk& c);
  void append_bytes(const char* begin, const char* end);
  // Drops the first chunk, which has been sent.
  void pop_sent_chunk();

  FifoVector<Chunk> chunks_;
  size_t head_sent_ = 0;   // bytes of chunks_.front() already sent
  uint64_t appended_ = 0;  // stream positions: bytes appended, bytes sent
  uint64_t sent_ = 0;
  size_t pending_fds_ = 0;
  std::deque<FdBatch> batches_;
  std::vector<char> spare_;  // a sent chunk's buffer, kept for the next one
  void (*release_body_)(std::vector<uint8_t>&&) = nullptr;
};

// Makes `body` the content of a Data field without copying it: the message
// gets an external segment that points at body's bytes (which must stay
// where they are, unchanged, until the message is written; a vector's data
// always is word-aligned). `adopt` receives the orphan (for example
// `[&](auto o) { builder.adoptBody(kj::mv(o)); }`). The frame must then go
// to FrameWriter::append with `body`: only the writer knows not to read past
// the body's last byte into the word the segment rounds it up to.
template <typename Adopt>
void reference_body(capnp::MessageBuilder& message, const std::vector<uint8_t>& body, Adopt adopt) {
  adopt(
      message.getOrphanage().referenceExternalData(capnp::Data::Reader(body.data(), body.size())));
}

// Makes room for `body` in a Data field without copying it there: `init(n)`
// makes the field (for example `[&](unsigned n) { return out.initBody(n); }`),
// whose bytes stay zero. Returns where they are, for FrameWriter::append,
// which sends `body` in their place: the body is copied neither into the
// message nor into the writer, and nothing has to clear it from a scratch
// segment. `body` must not be empty.
template <typename Init>
const void* place_body(const std::vector<uint8_t>& body, Init init) {
  return init(static_cast<unsigned>(body.size())).begin();
}

// A reusable first segment for message builders. It is zeroed once, and a
// builder made on it (ScratchBuilder) writes zeros back over what it used
// when it goes (capnp's contract for a caller-supplied first segment), so a
// small message costs neither an allocation nor the clearing of a fresh
// segment (capnp's default first segment is 8 KiB, calloc'ed per message).
// Larger messages go on in heap segments as usual. One builder at a time: a
// ScratchBuilder made while another holds the scratch gets a heap segment.
// Not synchronized: one thread (or one thread_local Scratch per thread).
class Scratch {
 public:
  explicit Scratch(size_t words = 1024);
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // When free, grows to hold `words` (at least doubling, at most
  // `max_words`; a larger request is left to a heap segment), so that a user
  // whose messages outgrow the scratch builds them on it from then on. The
  // new words are zeroed once.
  void grow_to(size_t words, size_t max_words);
  size_t size() const { return size_; }

 private:
  friend class ScratchBuilder;
  std::unique_ptr<capnp::word[]> words_;
  size_t size_;
  bool busy_ = false;
};

class ScratchBuilder {
 public:
  // On the scratch if it is free and holds `words` words; else on a heap
  // first segment of `words` words (capnp's default size if 0).
  explicit ScratchBuilder(Scratch& scratch, size_t words = 0);
  ~ScratchBuilder();
  ScratchBuilder(const ScratchBuilder&) = delete;
  ScratchBuilder& operator=(const ScratchBuilder&) = delete;

  capnp::MallocMessageBuilder& operator*() { return *builder_; }
  capnp::MallocMessageBuilder* operator->() { return &*builder_; }

 private:
  Scratch* held_ = nullptr;  // the scratch this builder uses, if any
  std::optional<capnp::MallocMessageBuilder> builder_;
};

// Serializes `message` in stream framing into a fresh byte vector (tests and
// tools that do not need a FrameWriter).
std::vector<char> encode_frame(capnp::MessageBuilder& message);

}  // namespace portd::proto
