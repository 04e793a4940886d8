// Framing and fd passing (proto/frame.h): round trips, partial and batched
// input, every limit the reader enforces, and fds over a real socketpair.
#include "portd/proto/frame.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "portd/portd.capnp.h"

namespace portd::proto {
namespace {

// A Request frame whose hello command is `command` and whose id is `id`.
std::vector<char> hello_frame(uint64_t id, const std::string& command, uint16_t fd_count = 0) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::Request>();
  request.setId(id);
  request.setFdCount(fd_count);
  auto hello = request.initHello();
  hello.setVersion(1);
  hello.setCommand(command);
  return encode_frame(message);
}

void expect_hello(FrameReader& reader, uint64_t id, const std::string& command) {
  auto request = reader.frame().getRoot<wire::Request>();
  EXPECT_EQ(request.getId(), id);
  ASSERT_EQ(request.which(), wire::Request::HELLO);
  EXPECT_EQ(std::string(request.getHello().getCommand().cStr()), command);
}

struct SocketPair {
  SocketPair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  UniqueFd a, b;
};

// Makes `fd`'s send buffer small (16 KiB), so that large frames are written
// in parts.
void shrink_send_buffer(int fd) {
  int small = 16 * 1024;
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
}

// A memfd holding `text`, so a received fd can be recognised by its content.
UniqueFd memfd_with(const std::string& text) {
  UniqueFd fd(::memfd_create("frame_test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  return fd;
}

std::string content_of(int fd) {
  char buf[256];
  const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Takes `count` fds for the reader's current frame; the first, if any, must
// hold `text`.
void take_fds_holding(FrameReader& reader, size_t count, const std::string& text) {
  std::vector<UniqueFd> fds;
  ASSERT_TRUE(reader.take_fds(count, &fds));
  if (!fds.empty()) {
    EXPECT_EQ(content_of(fds[0].get()), text);
  }
}

// Reads from `fd` until the reader has a frame, or fails.
FrameReader::Next read_frame(FrameReader& reader, int fd) {
  for (int i = 0; i < 1000; ++i) {
    auto next = reader.next();
    if (next != FrameReader::Next::kNeedMore) return next;
    const long n = reader.read_from(fd);
    if (n == -EAGAIN) {
      ::usleep(1000);
      continue;
    }
    if (n <= 0) return FrameReader::Next::kError;
  }
  return FrameReader::Next::kNeedMore;
}

TEST(FrameTest, RoundTrip) {
  auto bytes = hello_frame(42, "round-trip");
  FrameReader reader;
  ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  EXPECT_EQ(reader.frame_bytes(), bytes.size());
  expect_hello(reader, 42, "round-trip");
  EXPECT_EQ(reader.next(), FrameReader::Next::kNeedMore);
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameTest, SplitByteByByte) {
  auto bytes = hello_frame(7, "one byte at a time");
  FrameReader reader;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    ASSERT_TRUE(reader.feed(&bytes[i], 1));
    ASSERT_EQ(reader.next(), FrameReader::Next::kNeedMore) << "at byte " << i;
  }
  ASSERT_TRUE(reader.feed(&bytes.back(), 1));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  expect_hello(reader, 7, "one byte at a time");
  EXPECT_EQ(reader.next(), FrameReader::Next::kNeedMore);
}

TEST(FrameTest, ManyFramesInOneRead) {
  SocketPair sp;
  std::vector<char> all;
  constexpr int kFrames = 200;
  for (int i = 1; i <= kFrames; ++i) {
    auto f = hello_frame(i, "frame " + std::to_string(i));
    all.insert(all.end(), f.begin(), f.end());
  }
  ASSERT_LT(all.size(), 60000u);  // fits in one read and in the socket buffer
  ASSERT_EQ(::write(sp.a.get(), all.data(), all.size()), static_cast<ssize_t>(all.size()));

  FrameReader reader;
  ASSERT_EQ(reader.read_from(sp.b.get()), static_cast<long>(all.size()));
  for (int i = 1; i <= kFrames; ++i) {
    ASSERT_EQ(reader.next(), FrameReader::Next::kFrame) << i;
    expect_hello(reader, i, "frame " + std::to_string(i));
  }
  EXPECT_EQ(reader.next(), FrameReader::Next::kNeedMore);
  EXPECT_EQ(reader.buffered_bytes(), 0u);
  EXPECT_EQ(reader.read_from(sp.b.get()), -EAGAIN);
}

TEST(FrameTest, SegmentCountOverLimit) {
  FrameLimits limits;
  limits.max_segments = 4;
  FrameReader reader(limits);
  // 5 segments of 0 words: the table is (1 + 5) u32s = 3 words.
  uint32_t table[6] = {4, 0, 0, 0, 0, 0};
  ASSERT_TRUE(reader.feed(table, sizeof table));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
  EXPECT_NE(reader.error().find("5 segments (limit 4)"), std::string::npos) << reader.error();
}

TEST(FrameTest, SegmentCountIsRejectedFromTheFirstWord) {
  // Only the count has arrived: the verdict does not wait for the table.
  FrameReader reader;
  uint32_t count = 16;  // 17 segments, over the default 16
  ASSERT_TRUE(reader.feed(&count, sizeof count));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
}

TEST(FrameTest, SegmentCountCeilingAppliesWhateverTheConfiguration) {
  FrameLimits limits;
  limits.max_segments = 1000;
  FrameReader reader(limits);
  uint32_t count = kSegmentCeiling;  // kSegmentCeiling + 1 segments
  ASSERT_TRUE(reader.feed(&count, sizeof count));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
}

TEST(FrameTest, WrappingSegmentCountIsAnError) {
  // 0xffffffff + 1 wraps to zero segments.
  FrameReader reader;
  const uint32_t header[2] = {0xffffffffu, 0};
  ASSERT_TRUE(reader.feed(header, sizeof header));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
  EXPECT_NE(reader.error().find("4294967296 segments"), std::string::npos) << reader.error();
}

TEST(FrameTest, OversizedFrameIsRejectedFromItsHeaderBeforeTheBufferGrows) {
  FrameLimits limits;
  limits.max_frame_bytes = 4096;
  FrameReader reader(limits);
  // One segment of 513 words: 8 + 4104 bytes, just over 4096.
  const uint32_t header[2] = {0, 513};
  ASSERT_TRUE(reader.feed(header, sizeof header));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
  EXPECT_EQ(reader.buffered_bytes(), 8u);
  EXPECT_NE(reader.error().find("4112 bytes exceeds the limit of 4096"), std::string::npos)
      << reader.error();
}

TEST(FrameTest, HugeDeclaredFrameDoesNotAllocate) {
  FrameReader reader;  // default 4 MiB limit
  // Two segments of 0xffffffff words each: ~64 GiB declared.
  const uint32_t header[4] = {1, 0xffffffffu, 0xffffffffu, 0};
  ASSERT_TRUE(reader.feed(header, sizeof header));
  EXPECT_EQ(reader.next(), FrameReader::Next::kError);
  EXPECT_EQ(reader.buffered_bytes(), sizeof header);
}

TEST(FrameTest, FrameAtTheLimitIsAccepted) {
  FrameLimits limits;
  limits.max_frame_bytes = 4096;
  FrameReader reader(limits);
  // One segment of 511 words: 8 + 4088 = 4096 bytes. A zeroed segment is a
  // valid message whose root is a null pointer.
  std::vector<uint32_t> frame(1024, 0);
  frame[0] = 0;
  frame[1] = 511;
  ASSERT_TRUE(reader.feed(frame.data(), 4096));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  EXPECT_EQ(reader.frame_bytes(), 4096u);
}

TEST(FrameTest, FeedRefusesBytesBeyondTheBufferCeiling) {
  FrameLimits limits;
  limits.max_frame_bytes = 4096;
  FrameReader reader(limits);
  std::vector<char> junk(4096 + 64 * 1024 + 1, 0);
  EXPECT_FALSE(reader.feed(junk.data(), junk.size()));
}

TEST(FrameTest, FdsTravelWithTheirFrames) {
  SocketPair sp;
  FrameWriter writer;
  // Frame 1 carries no fds, frame 2 two, frame 3 none, frame 4 one.
  std::vector<std::vector<std::string>> contents = {{}, {"two-a", "two-b"}, {}, {"four"}};
  for (size_t i = 0; i < contents.size(); ++i) {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(i + 1);
    request.setFdCount(static_cast<uint16_t>(contents[i].size()));
    request.initHello().setCommand("fds");
    std::vector<UniqueFd> fds;
    for (const auto& text : contents[i]) fds.push_back(memfd_with(text));
    writer.append(message, std::move(fds));
  }
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);
  EXPECT_TRUE(writer.empty());

  FrameReader reader;
  for (size_t i = 0; i < contents.size(); ++i) {
    ASSERT_EQ(read_frame(reader, sp.b.get()), FrameReader::Next::kFrame) << i;
    auto request = reader.frame().getRoot<wire::Request>();
    EXPECT_EQ(request.getId(), i + 1);
    ASSERT_EQ(request.getFdCount(), contents[i].size());
    std::vector<UniqueFd> fds;
    ASSERT_TRUE(reader.take_fds(request.getFdCount(), &fds));
    ASSERT_EQ(fds.size(), contents[i].size());
    for (size_t j = 0; j < fds.size(); ++j) {
      EXPECT_EQ(content_of(fds[j].get()), contents[i][j]) << "frame " << i << " fd " << j;
      EXPECT_EQ(::fcntl(fds[j].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);  // MSG_CMSG_CLOEXEC
    }
  }
  EXPECT_EQ(reader.pending_fds(), 0u);
  EXPECT_EQ(reader.next(), FrameReader::Next::kNeedMore);
}

TEST(FrameTest, ReferencedBodiesGoOutFromTheirOwnBytes) {
  // Frames whose body is referenced (reference_body) rather than copied,
  // of sizes that are and are not whole words, between ordinary frames and
  // with fds, through a socket buffer far smaller than the bodies: each
  // arrives whole, padded with zeros to its word, with its fds. (Under ASan
  // this also shows that the writer never reads past a body's last byte.)
  SocketPair sp;
  shrink_send_buffer(sp.a.get());
  const std::vector<size_t> sizes = {100001, 0, 1u << 20, 17, 65536, 3};
  std::vector<std::vector<uint8_t>> expected;
  FrameWriter writer;
  FrameReader reader;
  size_t next_read = 0;
  uint64_t body_segments = 0;
  const auto read_available = [&] {
    for (;;) {
      const auto next = reader.next();
      ASSERT_NE(next, FrameReader::Next::kError) << reader.error();
      if (next == FrameReader::Next::kFrame) {
        auto request = reader.frame().getRoot<wire::Request>();
        ASSERT_EQ(request.getId(), next_read + 1);
        ASSERT_EQ(request.which(), wire::Request::SEND);
        auto body = request.getSend().getMessage().getBody();
        ASSERT_EQ(body.size(), expected[next_read].size()) << "frame " << next_read;
        EXPECT_TRUE(std::equal(body.begin(), body.end(), expected[next_read].begin()))
            << "frame " << next_read;
        ASSERT_EQ(request.getFdCount(), next_read % 3 == 0 ? 1u : 0u);
        take_fds_holding(reader, request.getFdCount(), "frame " + std::to_string(next_read));
        ++next_read;
        continue;
      }
      const long n = reader.read_from(sp.b.get());
      if (n == -EAGAIN) return;
      ASSERT_GT(n, 0);
    }
  };
  for (size_t i = 0; i < 2 * sizes.size(); ++i) {
    // Even frames reference their body, odd ones (the same sizes) copy it.
    const size_t size = sizes[i / 2];
    std::vector<uint8_t> body(size);
    for (size_t k = 0; k < size; ++k) body[k] = static_cast<uint8_t>(k * 7 + i);
    expected.push_back(body);
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(i + 1);
    request.setFdCount(i % 3 == 0 ? 1 : 0);
    auto out = request.initSend().initMessage();
    std::vector<UniqueFd> fds;
    if (i % 3 == 0) fds.push_back(memfd_with("frame " + std::to_string(i)));
    if (i % 2 == 0 && size != 0) {
      reference_body(message, body, [&](auto orphan) { out.adoptBody(kj::mv(orphan)); });
      body_segments += message.getSegmentsForOutput().size() - 1;
      writer.append(message, std::move(fds), std::move(body));
    } else {
      if (size != 0) out.setBody(kj::ArrayPtr<const kj::byte>(body.data(), body.size()));
      writer.append(message, std::move(fds));
    }
    for (;;) {
      const int w = writer.write_to(sp.a.get());
      ASSERT_TRUE(w == 0 || w == -EAGAIN);
      read_available();
      if (w == 0) break;
    }
  }
  read_available();
  EXPECT_EQ(next_read, expected.size());
  EXPECT_TRUE(writer.empty());
  EXPECT_EQ(writer.pending_fds(), 0u);
  EXPECT_EQ(reader.pending_fds(), 0u);
  // Every referenced body travelled as a segment of its own.
  EXPECT_EQ(body_segments, 5u);
}

// A received frame's bytes as the stream carried them (one segment, as
// every frame of these tests has).
std::vector<char> encode_frame_copy(capnp::MessageReader& frame) {
  capnp::MallocMessageBuilder copy;
  copy.setRoot(frame.getRoot<wire::Request>());
  return encode_frame(copy);
}

// Bodies given back by a writer once written (set_body_release).
std::vector<std::vector<uint8_t>>& released_bodies() {
  static std::vector<std::vector<uint8_t>> bodies;
  return bodies;
}
void release_body(std::vector<uint8_t>&& body) { released_bodies().push_back(std::move(body)); }
// A writer whose written bodies go to released_bodies(), emptied first.
void record_released_bodies(FrameWriter& writer) {
  released_bodies().clear();
  writer.set_body_release(&release_body);
}

// A message builder of one of three kinds: 0 on `scratch`, 1 on a heap
// first segment that holds every message of these tests, 2 on heap
// segments of 8 words (so that a body lands in a later segment).
struct BuilderOfKind {
  BuilderOfKind(int kind, Scratch& scratch) {
    if (kind == 0) {
      on_scratch.emplace(scratch);
      message = &**on_scratch;
    } else {
      on_heap.emplace(kind == 1 ? 16384u : 8u, capnp::AllocationStrategy::FIXED_SIZE);
      message = &*on_heap;
    }
  }
  std::optional<ScratchBuilder> on_scratch;
  std::optional<capnp::MallocMessageBuilder> on_heap;
  capnp::MessageBuilder* message = nullptr;
};

// A Send request with `body` and, after it in the message, two port
// descriptors; the body copied in, or placed (left unfilled; its position
// in *at).
void build_send(capnp::MessageBuilder& message, const std::vector<uint8_t>& body, uint64_t id,
                const void** at) {
  auto request = message.initRoot<wire::Request>();
  request.setId(id);
  auto out = request.initSend().initMessage();
  out.setRemote(7);
  if (at != nullptr)
    *at = place_body(body, [&](unsigned n) { return out.initBody(n); });
  else
    out.setBody(kj::ArrayPtr<const kj::byte>(body.data(), body.size()));
  auto descriptors = out.initDescriptors(2);
  descriptors[0].initPort().setName(11);
  descriptors[1].initPort().setName(12);
}

TEST(FrameTest, PlacedBodiesGoOutAsTheBytesOfCopiedOnes) {
  // A body placed in an unfilled field (place_body) is sent from its own
  // buffer, with the bytes before and after it in the message: the stream
  // is byte for byte the frame with the body copied in. Sizes that are and
  // are not whole words, in a scratch segment, in a heap first segment, and
  // in a later segment (a small first one), through a socket buffer smaller
  // than the largest; each body goes to the release function once written.
  SocketPair sp;
  shrink_send_buffer(sp.a.get());
  FrameWriter writer;
  record_released_bodies(writer);
  Scratch scratch;
  const std::vector<size_t> sizes = {1, 7, 8, 1024, 4097, 7000, 100001};
  for (size_t i = 0; i < 3 * sizes.size(); ++i) {
    const size_t size = sizes[i / 3];
    std::vector<uint8_t> body(size);
    for (size_t k = 0; k < size; ++k) body[k] = static_cast<uint8_t>(k * 13 + i + 1);
    // The copied frame is built as the placed one is, so that its
    // segments are laid out alike.
    const int kind = static_cast<int>(i % 3);
    Scratch copied_scratch;
    BuilderOfKind copied(kind, copied_scratch);
    build_send(*copied.message, body, i, nullptr);
    const std::vector<char> expected = encode_frame(*copied.message);

    const void* at = nullptr;
    const uint8_t* body_bytes = body.data();
    {
      BuilderOfKind placed(kind, scratch);
      capnp::MessageBuilder* message = placed.message;
      build_send(*message, body, i, &at);
      if (kind == 2) {
        ASSERT_GT(message->getSegmentsForOutput().size(), 1u) << size;
      }
      writer.append(*message, {}, std::move(body), at);
    }
    std::vector<char> got;
    for (int spins = 0; got.size() < expected.size(); ++spins) {
      ASSERT_LT(spins, 100000);
      const int w = writer.write_to(sp.a.get());
      ASSERT_TRUE(w == 0 || w == -EAGAIN);
      char buf[8192];
      const ssize_t n = ::read(sp.b.get(), buf, sizeof buf);
      if (n > 0) got.insert(got.end(), buf, buf + n);
    }
    EXPECT_EQ(got, expected) << "size " << size << ", builder " << kind;
    EXPECT_TRUE(writer.empty());
    ASSERT_EQ(released_bodies().size(), i + 1);
    EXPECT_EQ(released_bodies().back().data(), body_bytes);  // the body itself, not a copy
  }
  char extra;
  EXPECT_EQ(::read(sp.b.get(), &extra, 1), -1);
}

TEST(FrameTest, ManyQueuedPlacedBodiesGoOutInOrder) {
  // Frames with placed bodies queued between ordinary ones, with fds, all
  // before one write: more pieces than one sendmsg takes, through a small
  // socket buffer. The stream is the frames' copied forms, in order, and
  // each fd arrives with its frame's first byte.
  SocketPair sp;
  shrink_send_buffer(sp.a.get());
  FrameWriter writer;
  record_released_bodies(writer);
  std::vector<char> expected;
  constexpr size_t kFrames = 60;
  for (size_t i = 0; i < kFrames; ++i) {
    std::vector<uint8_t> body(i % 2 == 0 ? 1000 + 37 * i : 5 + i);
    for (size_t k = 0; k < body.size(); ++k) body[k] = static_cast<uint8_t>(k + 3 * i);
    capnp::MallocMessageBuilder copied;
    build_send(copied, body, i, nullptr);
    const std::vector<char> frame = encode_frame(copied);
    expected.insert(expected.end(), frame.begin(), frame.end());
    capnp::MallocMessageBuilder message;
    std::vector<UniqueFd> fds;
    if (i % 5 == 0) fds.push_back(memfd_with("frame " + std::to_string(i)));
    if (i % 2 == 0) {
      const void* at = nullptr;
      build_send(message, body, i, &at);
      writer.append(message, std::move(fds), std::move(body), at);
    } else {
      build_send(message, body, i, nullptr);
      writer.append(message, std::move(fds));
    }
  }
  EXPECT_EQ(writer.pending_bytes(), expected.size());
  FrameReader reader;
  size_t frames = 0;
  std::vector<char> got;
  for (int spins = 0; frames < kFrames; ++spins) {
    ASSERT_LT(spins, 100000);
    const int w = writer.write_to(sp.a.get());
    ASSERT_TRUE(w == 0 || w == -EAGAIN);
    for (;;) {
      const auto next = reader.next();
      ASSERT_NE(next, FrameReader::Next::kError) << reader.error();
      if (next == FrameReader::Next::kFrame) {
        auto request = reader.frame().getRoot<wire::Request>();
        ASSERT_EQ(request.getId(), frames);
        const std::vector<char> bytes = encode_frame_copy(reader.frame());
        got.insert(got.end(), bytes.begin(), bytes.end());
        take_fds_holding(reader, frames % 5 == 0 ? 1 : 0, "frame " + std::to_string(frames));
        ++frames;
        continue;
      }
      const long n = reader.read_from(sp.b.get());
      if (n == -EAGAIN) break;
      ASSERT_GT(n, 0);
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(writer.empty());
  EXPECT_EQ(reader.pending_fds(), 0u);
  EXPECT_EQ(released_bodies().size(), kFrames / 2);
}

TEST(FrameTest, AppendRefusesABodyTheMessageDoesNotHold) {
  // A body said to be at a place no segment of the message holds (or whose
  // padded end runs past its segment) is refused before anything is
  // appended: no bytes, no fds.
  std::vector<uint8_t> body(100, 1);
  std::vector<uint8_t> elsewhere(200, 0);
  capnp::MallocMessageBuilder message;
  const void* at = nullptr;
  build_send(message, body, 1, &at);
  FrameWriter writer;
  std::vector<UniqueFd> fds;
  fds.push_back(memfd_with("x"));
  EXPECT_THROW(writer.append(message, std::move(fds), body, elsewhere.data()), std::logic_error);
  auto segment = message.getSegmentsForOutput()[0].asBytes();
  EXPECT_THROW(writer.append(message, {}, body, segment.end() - 8), std::logic_error);
  EXPECT_TRUE(writer.empty());
  EXPECT_EQ(writer.pending_fds(), 0u);
  EXPECT_EQ(writer.pending_bytes(), 0u);
  // The same body at its real place goes.
  writer.append(message, {}, body, at);
  EXPECT_EQ(writer.pending_bytes(), encode_frame(message).size());
}

TEST(FrameTest, FdsSurvivePartialWritesOfLargeFrames) {
  // A frame much larger than the socket buffer, then a frame with an fd:
  // the writer must resume after EAGAIN and still attach the fd to the
  // second frame's first bytes.
  SocketPair sp;
  shrink_send_buffer(sp.a.get());

  FrameWriter writer;
  {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(1);
    auto send = request.initSend();
    auto body = send.initMessage().initBody(1 << 20);
    for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<kj::byte>(i * 7);
    writer.append(message);
  }
  {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(2);
    request.setFdCount(1);
    request.initHello().setCommand("after");
    std::vector<UniqueFd> fds;
    fds.push_back(memfd_with("second frame"));
    writer.append(message, std::move(fds));
  }

  FrameReader reader;
  int eagain = 0;
  std::vector<uint64_t> ids;
  for (int round = 0; round < 100000 && ids.size() < 2; ++round) {
    const int w = writer.empty() ? 0 : writer.write_to(sp.a.get());
    if (w == -EAGAIN) ++eagain;
    ASSERT_TRUE(w == 0 || w == -EAGAIN) << w;
    const long r = reader.read_from(sp.b.get());
    ASSERT_TRUE(r > 0 || r == -EAGAIN) << r << " " << reader.error();
    while (reader.next() == FrameReader::Next::kFrame) {
      auto request = reader.frame().getRoot<wire::Request>();
      ids.push_back(request.getId());
      if (request.getId() == 1) {
        auto body = request.getSend().getMessage().getBody();
        ASSERT_EQ(body.size(), 1u << 20);
        EXPECT_EQ(body[12345], static_cast<kj::byte>(12345 * 7));
        // Frame 2's fd may already be here, with frame 2's first bytes.
      } else {
        std::vector<UniqueFd> fds;
        ASSERT_TRUE(reader.take_fds(1, &fds));
        EXPECT_EQ(content_of(fds[0].get()), "second frame");
      }
    }
  }
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_GT(eagain, 0);  // the test did exercise partial writes
}

// A connection whose writer never quite drains (the peer reads about as fast
// as frames are appended) must not grow its buffer without bound, and frames
// and fds must survive the writer dropping its sent prefix, also when the
// chunk being sent holds a placed body.
TEST(FrameTest, WriterThatNeverDrainsStaysBounded) {
  SocketPair sp;
  FrameWriter writer;
  FrameReader reader;
  constexpr int kRounds = 300;
  constexpr unsigned kBody = 100 * 1024;  // 30 MB in all
  size_t max_held = 0;
  int busy_appends = 0;
  uint64_t expected = 1;
  size_t fds_expected = 0;

  auto consume = [&](bool one_only) {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      bool got = false;
      while (reader.next() == FrameReader::Next::kFrame) {
        auto request = reader.frame().getRoot<wire::Request>();
        EXPECT_EQ(request.getId(), expected);
        EXPECT_EQ(request.getSend().getMessage().getBody().size(), kBody);
        std::vector<UniqueFd> fds;
        EXPECT_TRUE(reader.take_fds(request.getFdCount(), &fds));
        for (auto& fd : fds) EXPECT_EQ(content_of(fd.get()), "fd " + std::to_string(expected));
        fds_expected -= fds.size();
        ++expected;
        got = true;
      }
      if (got && one_only) return;
      const long n = reader.read_from(sp.b.get());
      if (n == -EAGAIN) {
        if (!writer.empty()) {
          const int w = writer.write_to(sp.a.get());
          ASSERT_TRUE(w == 0 || w == -EAGAIN);
        } else if (!one_only) {
          return;
        }
        continue;
      }
      ASSERT_GT(n, 0) << reader.error();
    }
  };

  for (int round = 1; round <= kRounds; ++round) {
    if (!writer.empty()) ++busy_appends;
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(round);
    // Some frames' bodies are placed (sent from their own buffer): the
    // hundred frames after one go to its chunk.
    std::vector<uint8_t> body;
    const void* at = nullptr;
    if (round % 100 == 2) {
      body.assign(kBody, static_cast<uint8_t>(round));
      at = place_body(body,
                      [&](unsigned n) { return request.initSend().initMessage().initBody(n); });
    } else {
      request.initSend().initMessage().initBody(kBody);
    }
    std::vector<UniqueFd> fds;
    if (round % 10 == 0) {
      fds.push_back(memfd_with("fd " + std::to_string(round)));
      request.setFdCount(1);
    }
    fds_expected += fds.size();
    if (at != nullptr)
      writer.append(message, std::move(fds), std::move(body), at);
    else
      writer.append(message, std::move(fds));
    const int w = writer.write_to(sp.a.get());
    ASSERT_TRUE(w == 0 || w == -EAGAIN);
    max_held = std::max(max_held, writer.held_bytes());
    if (round > 3) consume(true);  // stay a few frames behind
  }
  while (!writer.empty()) {
    consume(true);
  }
  consume(false);
  EXPECT_EQ(expected, static_cast<uint64_t>(kRounds + 1));
  EXPECT_EQ(fds_expected, 0u);
  EXPECT_EQ(writer.pending_fds(), 0u);
  EXPECT_GT(busy_appends, kRounds / 2);  // the writer was rarely empty
  EXPECT_LT(max_held, size_t{4} << 20);  // not the 30 MB that went through
}

TEST(FrameTest, WriterCountsPendingFds) {
  SocketPair sp;
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setFdCount(2);
  std::vector<UniqueFd> fds;
  fds.push_back(memfd_with("a"));
  fds.push_back(memfd_with("b"));
  writer.append(message, std::move(fds));
  writer.append(message);
  EXPECT_EQ(writer.pending_fds(), 2u);
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);
  EXPECT_EQ(writer.pending_fds(), 0u);
}

TEST(FrameTest, TakeFdsFailsWhenFewerArrived) {
  SocketPair sp;
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setFdCount(3);
  std::vector<UniqueFd> fds;
  fds.push_back(memfd_with("only one"));
  writer.append(message, std::move(fds));
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);

  FrameReader reader;
  ASSERT_EQ(read_frame(reader, sp.b.get()), FrameReader::Next::kFrame);
  std::vector<UniqueFd> taken;
  EXPECT_FALSE(reader.take_fds(3, &taken));
  EXPECT_TRUE(taken.empty());
  EXPECT_EQ(reader.pending_fds(), 1u);  // nothing was taken
}

TEST(FrameTest, TakeFdsRespectsThePerFrameLimit) {
  FrameLimits limits;
  limits.max_fds_per_frame = 2;
  SocketPair sp;
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setFdCount(3);
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 3; ++i) fds.push_back(memfd_with("x"));
  writer.append(message, std::move(fds));
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);

  FrameReader reader(limits);
  ASSERT_EQ(read_frame(reader, sp.b.get()), FrameReader::Next::kFrame);
  std::vector<UniqueFd> taken;
  EXPECT_FALSE(reader.take_fds(3, &taken));
  EXPECT_EQ(reader.pending_fds(), 3u);
}

TEST(FrameTest, TooManyPendingFdsIsAnError) {
  FrameLimits limits;
  limits.max_pending_fds = 4;
  SocketPair sp;
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setFdCount(6);
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 6; ++i) fds.push_back(memfd_with("x"));
  writer.append(message, std::move(fds));
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);

  FrameReader reader(limits);
  EXPECT_EQ(reader.read_from(sp.b.get()), -EPROTO);
  EXPECT_EQ(reader.error(), "more fds in flight than the limit allows");
  EXPECT_EQ(reader.pending_fds(), 4u);  // the rest were closed, not leaked
}

// MSG_CTRUNC: the kernel drops fds it cannot install in the receiver (here
// because RLIMIT_NOFILE is exhausted) and says so; the reader must report a
// protocol error rather than hand out a frame missing its fds. Runs in a
// child so the lowered limit stays there.
TEST(FrameTest, TruncatedControlMessageIsAnError) {
  SocketPair sp;
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setFdCount(8);
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(memfd_with("x"));
  writer.append(message, std::move(fds));
  ASSERT_EQ(writer.write_to(sp.a.get()), 0);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // New fds take the lowest free number below RLIMIT_NOFILE: with the
    // limit two above the lowest free number, at most two of the eight fit.
    const int lowest = ::dup(0);
    ::close(lowest);
    rlimit lim{static_cast<rlim_t>(lowest + 2), static_cast<rlim_t>(lowest + 2)};
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(10);
    FrameReader reader;
    const long n = reader.read_from(sp.b.get());
    if (n != -EPROTO) ::_exit(11);
    if (reader.error().find("MSG_CTRUNC") == std::string::npos) ::_exit(12);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit, 11: no -EPROTO, 12: wrong error";
}

TEST(FrameTest, EndOfStreamReadsZero) {
  SocketPair sp;
  sp.a.reset();
  FrameReader reader;
  EXPECT_EQ(reader.read_from(sp.b.get()), 0);
}

TEST(FrameTest, WriterReportsAClosedPeer) {
  SocketPair sp;
  sp.b.reset();
  FrameWriter writer;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setId(1);
  writer.append(message);
  EXPECT_EQ(writer.write_to(sp.a.get()), -EPIPE);
}

TEST(FrameTest, MalformedPointerThrowsOnlyWhenRead) {
  // A frame whose root pointer points far outside its segment: framing
  // accepts it (sizes are consistent) and Cap'n Proto throws on access,
  // which is what the daemon's connection boundary catches.
  FrameReader reader;
  const uint32_t frame[4] = {0, 1, 0x7ffffffc, 0x00010000};  // struct ptr, huge offset
  ASSERT_TRUE(reader.feed(frame, sizeof frame));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  EXPECT_THROW(reader.frame().getRoot<wire::Request>().getId(), kj::Exception);
}

// A one-segment frame made of `words` (little-endian 64-bit words), for
// shapes a MessageBuilder would never produce.
std::vector<char> raw_frame(const std::vector<uint64_t>& words) {
  std::vector<uint64_t> frame;
  frame.push_back(static_cast<uint64_t>(words.size()) << 32);  // 1 segment, its size
  frame.insert(frame.end(), words.begin(), words.end());
  std::vector<char> bytes(frame.size() * 8);
  std::memcpy(bytes.data(), frame.data(), bytes.size());
  return bytes;
}

// Cap'n Proto pointers: a struct of `pointers` pointer words `offset` words
// after the pointer, and a list of `count` elements of `size` (2: bytes, 6:
// pointers).
uint64_t struct_pointer(int32_t offset, uint16_t pointers) {
  return (static_cast<uint64_t>(pointers) << 48) |
         ((static_cast<uint32_t>(offset) & 0x3fffffffu) << 2);
}
uint64_t list_pointer(int32_t offset, uint32_t size, uint32_t count) {
  return (static_cast<uint64_t>(count) << 35) | (static_cast<uint64_t>(size) << 32) |
         ((static_cast<uint32_t>(offset) & 0x3fffffffu) << 2) | 1u;
}

// A list of `n` Data pointers that all point at the same `data_words` words:
// a small frame whose reading costs n * data_words words (amplification).
std::vector<char> aliased_data_frame(uint32_t n, uint32_t data_words) {
  std::vector<uint64_t> words;
  words.push_back(list_pointer(0, 6, n));
  for (uint32_t i = 0; i < n; ++i)
    words.push_back(list_pointer(static_cast<int32_t>(n - 1 - i), 2, data_words * 8));
  words.resize(words.size() + data_words, 0x5a5a5a5a5a5a5a5aull);
  return raw_frame(words);
}

// Reads every element of a List(Data) root; the bytes read.
uint64_t read_all_data(FrameReader& reader) {
  uint64_t total = 0;
  auto list = reader.frame().getRoot<capnp::List<capnp::Data>>();
  for (auto element : list) total += element.size();
  return total;
}

TEST(FrameTest, TraversalLimitStopsAFrameThatPointsAtTheSameDataOverAndOver) {
  // 4096 pointers at one 4 KiB block: a 37 KiB frame that would make its
  // reader walk 16 MiB, twice the default traversal limit of 8 MiB.
  const auto big = aliased_data_frame(4096, 512);
  ASSERT_LT(big.size(), 40000u);
  FrameReader reader;
  ASSERT_EQ(FrameLimits{}.traversal_limit_words, (8u << 20) / 8);
  ASSERT_TRUE(reader.feed(big.data(), big.size()));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  EXPECT_THROW(read_all_data(reader), kj::Exception);

  // The same shape, 100 times over: 400 KiB walked, well within the limit.
  const auto small = aliased_data_frame(100, 512);
  FrameReader fine;
  ASSERT_TRUE(fine.feed(small.data(), small.size()));
  ASSERT_EQ(fine.next(), FrameReader::Next::kFrame);
  EXPECT_EQ(read_all_data(fine), 100u * 4096u);

  // The limit is the reader's, per frame: a lower one stops the small frame.
  FrameLimits limits;
  limits.traversal_limit_words = 50 * 512;
  FrameReader strict(limits);
  ASSERT_TRUE(strict.feed(small.data(), small.size()));
  ASSERT_EQ(strict.next(), FrameReader::Next::kFrame);
  EXPECT_THROW(read_all_data(strict), kj::Exception);
}

// A root struct whose one pointer leads to another such struct, `depth`
// structs in all; the last pointer points back at its own struct if
// `cycle`, else is null.
std::vector<char> struct_chain_frame(uint32_t depth, bool cycle) {
  std::vector<uint64_t> words;
  words.push_back(struct_pointer(0, 1));  // the root, at word 1
  for (uint32_t i = 0; i + 1 < depth; ++i) words.push_back(struct_pointer(0, 1));
  words.push_back(cycle ? struct_pointer(-1, 1) : 0);
  return raw_frame(words);
}

uint64_t walk(FrameReader& reader) {
  return reader.frame().getRoot<capnp::AnyPointer>().targetSize().wordCount;
}

TEST(FrameTest, NestingLimitStopsDeepAndCyclicPointers) {
  // Ten structs deep: within the default limit of 16.
  const auto ten = struct_chain_frame(10, false);
  FrameReader reader;
  ASSERT_EQ(FrameLimits{}.nesting_limit, 16);
  ASSERT_TRUE(reader.feed(ten.data(), ten.size()));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  EXPECT_EQ(walk(reader), 10u);

  // The reader's own limit applies: eight levels are not enough.
  FrameLimits limits;
  limits.nesting_limit = 8;
  FrameReader shallow(limits);
  ASSERT_TRUE(shallow.feed(ten.data(), ten.size()));
  ASSERT_EQ(shallow.next(), FrameReader::Next::kFrame);
  EXPECT_THROW(walk(shallow), kj::Exception);

  // A struct that points at itself: bounded by the nesting limit, not a hang
  // or a stack overflow.
  const auto cyclic = struct_chain_frame(1, true);
  FrameReader looped;
  ASSERT_TRUE(looped.feed(cyclic.data(), cyclic.size()));
  ASSERT_EQ(looped.next(), FrameReader::Next::kFrame);
  EXPECT_THROW(walk(looped), kj::Exception);
}

}  // namespace
}  // namespace portd::proto

namespace portd::proto {
namespace {

// drained(): a read that took less than it had room for and no fds emptied
// the socket; one that brought fds, or filled the room, says nothing.
TEST(FrameDrainedTest, ShortReadWithoutFdsDrainsTheSocket) {
  SocketPair sp;
  const auto frame = hello_frame(1, "drained");
  ASSERT_EQ(::write(sp.a.get(), frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  FrameReader reader;
  EXPECT_FALSE(reader.drained());
  ASSERT_EQ(reader.read_from(sp.b.get()), static_cast<long>(frame.size()));
  EXPECT_TRUE(reader.drained());
  EXPECT_EQ(reader.read_from(sp.b.get()), -EAGAIN);  // what drained() spares
  EXPECT_FALSE(reader.drained());
}

TEST(FrameDrainedTest, AReadThatBroughtFdsIsNotDrained) {
  SocketPair sp;
  FrameWriter writer;
  // Two writes: the first carries an fd, so a recvmsg stops after it.
  for (uint16_t fds : {uint16_t{1}, uint16_t{0}}) {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::Request>();
    request.setId(fds + 1u);
    request.setFdCount(fds);
    request.initHello().setCommand("fd");
    std::vector<UniqueFd> out;
    if (fds != 0) out.push_back(memfd_with("x"));
    writer.append(message, std::move(out));
    ASSERT_EQ(writer.write_to(sp.a.get()), 0);
  }
  FrameReader reader;
  ASSERT_GT(reader.read_from(sp.b.get()), 0);
  EXPECT_EQ(reader.pending_fds(), 1u);
  EXPECT_FALSE(reader.drained());
}

TEST(FrameDrainedTest, AReadThatFilledItsRoomIsNotDrained) {
  SocketPair sp;
  // More than one read's room (64 KiB) waits in the socket.
  std::vector<char> all;
  for (int i = 1; all.size() < 100 * 1024; ++i) {
    auto f = hello_frame(i, std::string(1000, 'z'));
    all.insert(all.end(), f.begin(), f.end());
  }
  size_t written = 0;
  while (written < all.size()) {
    const ssize_t n = ::write(sp.a.get(), all.data() + written, all.size() - written);
    ASSERT_GT(n, 0);
    written += static_cast<size_t>(n);
  }
  FrameReader reader;
  const long first = reader.read_from(sp.b.get());
  ASSERT_GT(first, 0);
  ASSERT_LT(static_cast<size_t>(first), all.size());
  EXPECT_FALSE(reader.drained());
}

// Scratch: message after message built on one first segment, each encoded
// exactly as on a fresh builder (capnp zeroes what a builder used when it
// goes), and a second builder while one holds the scratch gets its own.
TEST(ScratchTest, ReusedFirstSegmentEncodesLikeAFreshOne) {
  Scratch scratch(64);
  for (int i = 0; i < 3; ++i) {
    const std::string command = i == 1 ? std::string(200, 'l') : "s" + std::to_string(i);
    std::vector<char> fresh = hello_frame(static_cast<uint64_t>(i), command);
    ScratchBuilder builder(scratch);
    auto request = builder->initRoot<wire::Request>();
    request.setId(static_cast<uint64_t>(i));
    auto hello = request.initHello();
    hello.setVersion(1);
    hello.setCommand(command);
    // The 200-byte command does not fit 64 words with the rest: a second
    // segment; the frame still decodes to the same request.
    FrameReader reader;
    const auto bytes = encode_frame(*builder);
    ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
    ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
    expect_hello(reader, static_cast<uint64_t>(i), command);
    if (i != 1) {
      EXPECT_EQ(bytes, fresh);
    }
  }
}

TEST(ScratchTest, ASecondBuilderWhileOneHoldsTheScratchGetsItsOwnSegment) {
  Scratch scratch(256);
  ScratchBuilder first(scratch);
  first->initRoot<wire::Request>().setId(1);
  ScratchBuilder second(scratch);
  second->initRoot<wire::Request>().setId(2);
  EXPECT_EQ(first->getRoot<wire::Request>().getId(), 1u);
  EXPECT_EQ(second->getRoot<wire::Request>().getId(), 2u);
  EXPECT_NE(first->getSegmentsForOutput()[0].begin(), second->getSegmentsForOutput()[0].begin());
}

// grow_to: a free scratch grows (at least doubling, within the cap) and the
// message built on it next takes one segment, the scratch's; a busy one, or
// a request over the cap, leaves it as it is.
TEST(ScratchTest, GrowsWhenFreeWithinItsCap) {
  Scratch scratch(64);
  scratch.grow_to(32, 1024);
  EXPECT_EQ(scratch.size(), 64u);
  scratch.grow_to(100, 1024);
  EXPECT_EQ(scratch.size(), 128u);
  scratch.grow_to(600, 1024);
  EXPECT_EQ(scratch.size(), 600u);
  scratch.grow_to(2000, 1024);
  EXPECT_EQ(scratch.size(), 600u);
  {
    ScratchBuilder holder(scratch);
    scratch.grow_to(900, 1024);
    EXPECT_EQ(scratch.size(), 600u);
  }
  const std::string command(3000, 'c');
  ScratchBuilder builder(scratch, 500);
  auto request = builder->initRoot<wire::Request>();
  request.setId(9);
  request.initHello().setCommand(command);
  EXPECT_EQ(builder->getSegmentsForOutput().size(), 1u);
  FrameReader reader;
  const auto bytes = encode_frame(*builder);
  ASSERT_TRUE(reader.feed(bytes.data(), bytes.size()));
  ASSERT_EQ(reader.next(), FrameReader::Next::kFrame);
  expect_hello(reader, 9, command);
}

}  // namespace
}  // namespace portd::proto
