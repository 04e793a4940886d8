// Out-of-line memory end to end: libportd against the real daemon, with
// senders and receivers in separate processes where it matters.
//
// Every test starts its own daemon and checks in TearDown that the daemon's
// fd count is back to what it was once the test's task had connected: no
// region, release signal or connection leaks, whatever the test did
// (refusals, kills, destroyed messages).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <tuple>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/ool_support.h"

namespace portd::testing {
namespace {

using namespace std::chrono_literals;

class OolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "ool-test");
    ASSERT_NE(task_, nullptr);
    baseline_ = daemon_.open_fd_count();
  }

  void TearDown() override {
    EXPECT_TRUE(settles([&] { return daemon_.open_fd_count(); }, baseline_))
        << "daemon fds: " << daemon_.open_fd_count() << ", baseline " << baseline_;
  }

  int daemon_fds() const { return daemon_.open_fd_count(); }

  // The release signal's last copy may be the daemon's, closed just after it
  // sent the reply that carried it: segments come back a moment later.
  bool in_flight_settles(int expected, Task* task = nullptr) {
    Task& t = task != nullptr ? *task : *task_;
    return settles([&] { return static_cast<int>(t.volatile_pool_stats().in_flight); }, expected);
  }

  // A port of ours that a message can be sent to (MAKE_SEND).
  ReceiveRight port() {
    auto p = task_->make_port();
    EXPECT_TRUE(p);
    return std::move(*p);
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
  int baseline_ = 0;
};

// ---------------------------------------------------------------------------
// The three modes, 1 byte and 64 KiB (256 MiB: client_ool_large_test.cc).

TEST_F(OolTest, CopyModeOneByteAndSixtyFourKiB) {
  round_trip(daemon_, *task_, OolMode::kCopy, 1);
  round_trip(daemon_, *task_, OolMode::kCopy, 64 << 10);
}

TEST_F(OolTest, MoveModeOneByteAndSixtyFourKiB) {
  round_trip(daemon_, *task_, OolMode::kMove, 1);
  round_trip(daemon_, *task_, OolMode::kMove, 64 << 10);
}

TEST_F(OolTest, VolatileModeOneByteAndSixtyFourKiB) {
  round_trip(daemon_, *task_, OolMode::kVolatile, 1);
  round_trip(daemon_, *task_, OolMode::kVolatile, 64 << 10);
}

TEST_F(OolTest, EmptyRegionTravelsAndMapsToNothing) {
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_copy({});
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  const auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  EXPECT_EQ(region.size, 0u);
  EXPECT_FALSE(region.memory.mapped());
  EXPECT_TRUE(region.bytes().empty());
}

TEST_F(OolTest, MoveModeUnmapsTheSendersBuffer) {
  auto buffer = SharedBuffer::allocate(10000);
  ASSERT_TRUE(buffer);
  EXPECT_EQ(buffer->size(), 10000u);
  fill_pattern(buffer->bytes(), 5);
  void* const address = buffer->data();
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_move(std::move(*buffer), 4000);
  EXPECT_FALSE(*buffer);  // given up
  // The mapping is gone: the address is no longer mapped in this process.
  EXPECT_EQ(::msync(address, 4096, MS_ASYNC), -1);
  EXPECT_EQ(errno, ENOMEM);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  const auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  EXPECT_EQ(region.size, 4000u);
  EXPECT_TRUE(region.deallocate);
  std::vector<std::byte> expected(10000);
  fill_pattern(expected, 5);
  expected.resize(4000);
  EXPECT_EQ(checksum(region.bytes()), checksum(expected));
}

TEST_F(OolTest, SharedBufferPartsRoundTripForCLevelCode) {
  auto buffer = SharedBuffer::allocate(100);
  ASSERT_TRUE(buffer);
  std::memcpy(buffer->data(), "kept in a table", 15);
  const SharedBufferParts parts = buffer->release();
  EXPECT_FALSE(*buffer);
  EXPECT_GE(parts.mapped, 4096u);
  EXPECT_EQ(parts.size, 100u);
  // ... later, the C layer sends it in move mode:
  SharedBuffer again = SharedBuffer::adopt(parts);
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_move(std::move(again), 15);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(region.bytes().data()), 15),
            "kept in a table");
  // The receiver's mapping as raw parts, and back.
  const MappedRegionParts mapped = region.memory.release();
  EXPECT_FALSE(region.memory.mapped());
  EXPECT_EQ(mapped.size, 15u);
  MappedRegion owned = MappedRegion::adopt(mapped);
  EXPECT_EQ(owned.data(), static_cast<std::byte*>(mapped.address));
}

TEST_F(OolTest, MachShapedDescriptorsAreCopiedWhenAdded) {
  char bytes[100];
  std::memset(bytes, 'a', sizeof bytes);
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend)
      .add_ool_memory(OolMemoryDescriptor{bytes, sizeof bytes, /*deallocate=*/true,
                                          /*is_volatile=*/true});
  std::memset(bytes, 'b', sizeof bytes);  // after the copy: not seen
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  const auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  EXPECT_TRUE(region.deallocate);
  EXPECT_TRUE(region.is_volatile);  // sealed anyway: volatile is a permission
  ASSERT_EQ(region.bytes().size(), sizeof bytes);
  EXPECT_EQ(region.bytes()[99], std::byte{'a'});

  OutgoingMessage bad;
  bad.set_remote(p, Disposition::kMakeSend).add_ool_memory(OolMemoryDescriptor{nullptr, 10});
  EXPECT_EQ(task_->send(bad), Status::kSendInvalidMemory);
}

// ---------------------------------------------------------------------------
// Bodies over the threshold go out of line, transparently.

TEST_F(OolTest, BodiesOverTheThresholdTravelOutOfLine) {
  EXPECT_EQ(task_->ool_threshold(), 64u << 10);
  ReceiveRight p = port();
  std::vector<std::byte> at(64 << 10), over((64 << 10) + 1);
  fill_pattern(at, 1);
  fill_pattern(over, 2);

  OutgoingMessage inline_message;
  inline_message.set_remote(p, Disposition::kMakeSend).set_body(at);
  ASSERT_EQ(task_->send(inline_message), Status::kSuccess);
  EXPECT_EQ(daemon_fds(), baseline_);  // inline: no fd held

  OutgoingMessage ool_message;
  ool_message.set_remote(p, Disposition::kMakeSend).set_body(over);
  ASSERT_EQ(task_->send(ool_message), Status::kSuccess);
  EXPECT_EQ(daemon_fds(), baseline_ + 1);  // the body's memfd, held while queued

  auto first = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, at);
  EXPECT_TRUE(first->descriptors.empty());
  auto second = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, over);
  EXPECT_TRUE(second->descriptors.empty());  // the body region is not a descriptor

  // The threshold is the task's to choose.
  task_->set_ool_threshold(0);
  OutgoingMessage tiny;
  tiny.set_remote(p, Disposition::kMakeSend).set_body("x");
  ASSERT_EQ(task_->send(tiny), Status::kSuccess);
  EXPECT_EQ(daemon_fds(), baseline_ + 1);
  auto third = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(third);
  EXPECT_EQ(third->body_text(), "x");
}

TEST_F(OolTest, AnOutOfLineBodyCountsAsBodyBytesForTheReceiveBuffer) {
  ReceiveRight p = port();
  OutgoingMessage m;
  std::vector<std::byte> body(100000);
  m.set_remote(p, Disposition::kMakeSend).set_body(body);
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  ReceiveOptions small{0ms};
  small.max_size = 1024;
  small.large = true;
  auto refused = p.receive(small);
  EXPECT_EQ(refused.status(), Status::kRcvTooLarge);
  EXPECT_EQ(refused->needed_size, 24u + 100000u);  // header and body, no descriptor
  auto got = p.receive(ReceiveOptions{0ms});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body.size(), 100000u);
}

TEST_F(OolTest, HundredMebibyteBodyToAnotherProcessAndBack) {
  const std::string service = unique_service("echo-body");
  auto inbox = task_->check_in(service);
  ASSERT_TRUE(inbox);
  const std::string socket = daemon_.socket_path();
  Child echo([&]() -> int {
    auto task = Task::connect(ConnectOptions{socket, "echo"});
    if (!task) return 2;
    auto server = (*task)->look_up(service, 10000ms);
    if (!server) return 3;
    auto mine = (*task)->make_port();
    if (!mine) return 4;
    OutgoingMessage hello;
    hello.set_remote(*server).add_port(*mine, Disposition::kMakeSend);
    if ((*task)->send(hello) != Status::kSuccess) return 5;
    auto request = mine->receive(ReceiveOptions{60000ms});
    if (!request) return 6;
    if (!request->descriptors.empty()) return 7;
    // Echo it back, one byte changed.
    OutgoingMessage reply;
    reply.set_remote(request->remote, Disposition::kMoveSendOnce);
    reply.body() = std::move(request->body);
    reply.body()[12345] ^= std::byte{1};
    if ((*task)->send(reply) != Status::kSuccess) return 8;
    return 0;
  });
  auto hello = inbox->receive(ReceiveOptions{10000ms});
  ASSERT_TRUE(hello);
  auto echo_port = SendRight::adopt(task_, std::get<ReceivedPort>(hello->descriptors.at(0)).name);

  OutgoingMessage request;
  request.set_remote(echo_port);
  request.body().resize(100u << 20);
  fill_pattern(request.body(), 9);
  std::vector<std::byte> expected = request.body();
  expected[12345] ^= std::byte{1};
  auto reply_port = port();
  auto reply = task_->rpc(request, reply_port, {}, ReceiveOptions{60000ms});
  ASSERT_TRUE(reply) << status_name(reply.status());
  EXPECT_TRUE(reply->descriptors.empty());
  EXPECT_EQ(reply->body.size(), expected.size());
  EXPECT_EQ(checksum(reply->body), checksum(expected));
  EXPECT_EQ(echo.wait(), 0);
}

// ---------------------------------------------------------------------------
// What the sender's library makes, what the daemon holds, what the receiver
// gets.

// The line of /proc/self/maps whose range holds `address` ("" if none).
std::string mapping_of(const void* address) {
  std::ifstream maps("/proc/self/maps");
  const auto a = reinterpret_cast<uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    uintptr_t from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &from, &to) == 2 && from <= a && a < to) return line;
  }
  return "";
}

// Resident kB of the mapping that starts at `address` (/proc/self/smaps).
long resident_kib(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(address);
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &from, &to) == 2 && line.find('-') < 17) {
      in = from == a;
      continue;
    }
    long kib = 0;
    if (in && std::sscanf(line.c_str(), "Rss: %ld kB", &kib) == 1) return kib;
  }
  return -1;
}

TEST_F(OolTest, TheLibrarySealsEveryRegionAndAllocatesItsPagesFirst) {
  // A raw receiver, to look at the fds the library made.
  RawClient raw(daemon_.socket_path());
  ASSERT_NE(raw.hello("raw-receiver"), 0u);
  const std::string service = unique_service("raw-seals");
  ASSERT_TRUE(
      raw.request(2, [&](wire::Request::Builder r) { r.initBootstrapCheckIn().setName(service); }));
  uint32_t port_name = 0;
  ASSERT_TRUE(raw.next_reply(
      [&](wire::Reply::Reader r, std::vector<UniqueFd>&) { port_name = r.getName(); }));
  auto server = task_->look_up(service, 5000ms);
  ASSERT_TRUE(server);

  // Copy, move and volatile regions of 10000 bytes, and a body over the
  // threshold, which goes last.
  OutgoingMessage m;
  m.set_remote(*server);
  for (OolMode mode : {OolMode::kCopy, OolMode::kMove, OolMode::kVolatile})
    ASSERT_TRUE(add_region(*task_, m, mode, 10000, 4));
  std::vector<std::byte> body(70000);
  fill_pattern(body, 5);
  m.set_body(body);
  ASSERT_EQ(task_->send(m), Status::kSuccess);

  ASSERT_TRUE(
      raw.request(3, [&](wire::Request::Builder r) { r.initReceive().setName(port_name); }));
  std::vector<UniqueFd> fds;
  std::vector<std::tuple<uint64_t, bool, bool, bool>> described;  // size, volatile, signal, body
  ASSERT_TRUE(raw.next_reply([&](wire::Reply::Reader r, std::vector<UniqueFd>& got) {
    EXPECT_EQ(r.getStatus(), 0);
    for (auto d : r.getMessage().getDescriptors()) {
      auto o = d.getOol();
      described.emplace_back(o.getSize(), o.getVolatile(), o.getReleaseSignal(), o.getBody());
    }
    fds = std::move(got);
  }));
  using D = std::tuple<uint64_t, bool, bool, bool>;
  ASSERT_EQ(described, (std::vector<D>{D{10000, false, false, false}, D{10000, false, false, false},
                                       D{10000, true, true, false}, D{70000, false, false, true}}));
  ASSERT_EQ(fds.size(), 5u);  // copy, move, volatile and its release signal, body

  constexpr int kSealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  struct Expect {
    int fd;
    const char* what;
    int seals;
    off_t size;  // the memfd's length: the page-rounded buffer (move), the segment (volatile)
  };
  const Expect expect[] = {
      {fds[0].get(), "copy", kSealed, 10000},
      {fds[1].get(), "move", kSealed, 12288},
      {fds[2].get(), "volatile", F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, 64 << 10},
      {fds[4].get(), "body", kSealed, 70000}};
  for (const auto& e : expect) {
    SCOPED_TRACE(e.what);
    // (F_SEAL_EXEC may come too, from MFD_NOEXEC_SEAL where the kernel has it.)
    EXPECT_EQ(::fcntl(e.fd, F_GET_SEALS) & kSealed, e.seals);
    struct stat st {};
    ASSERT_EQ(::fstat(e.fd, &st), 0);
    EXPECT_EQ(st.st_size, e.size);
    // posix_fallocate before the bytes went in: every page is allocated.
    EXPECT_GE(st.st_blocks * 512, e.size);
    // Nobody can map it shared and writable, or write it.
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0), MAP_FAILED);
    EXPECT_EQ(::pwrite(e.fd, "x", 1, 0), -1);
  }
  fds.clear();
  EXPECT_TRUE(in_flight_settles(0));
}

TEST_F(OolTest, VolatileSegmentsAndSharedBuffersArePrefaulted) {
  // MAP_POPULATE: every page is resident in the sender before it writes one.
  auto buffer = task_->volatile_buffer(200000);
  ASSERT_TRUE(buffer);
  EXPECT_EQ(resident_kib(buffer->data()), 256);  // the 256 KiB segment that fits 200000 bytes
  auto shared = SharedBuffer::allocate(200000);
  ASSERT_TRUE(shared);
  EXPECT_EQ(resident_kib(shared->data()), 196);  // 200000 bytes in pages
}

TEST_F(OolTest, TheReceiverMapsACopyOnWriteViewThatItsHandleUnmaps) {
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_copy(std::vector<std::byte>(50000));
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  const void* address = region.bytes().data();
  // Mapped privately (copy-on-write), readable and writable, from the memfd.
  const std::string line = mapping_of(address);
  EXPECT_NE(line.find(" rw-p "), std::string::npos) << line;
  EXPECT_NE(line.find("/memfd:"), std::string::npos) << line;
  EXPECT_EQ(::msync(const_cast<void*>(address), 4096, MS_ASYNC), 0);
  // The handle owns the mapping: gone with it (with the message, here).
  got = Result<ReceivedMessage>(Status::kFailure);
  EXPECT_EQ(::msync(const_cast<void*>(address), 4096, MS_ASYNC), -1);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(mapping_of(address), "");
}

TEST_F(OolTest, TheDaemonNeverMapsAPayload) {
  // The daemon's mappings while it holds regions of every mode, and after
  // it has passed them on: never a memfd.
  auto daemon_maps_memfd = [&] {
    std::ifstream maps("/proc/" + std::to_string(daemon_.pid()) + "/maps");
    EXPECT_TRUE(maps.good());
    for (std::string line; std::getline(maps, line);)
      if (line.find("memfd:") != std::string::npos) return line;
    return std::string();
  };
  ReceiveRight p = port();
  ASSERT_EQ(p.set_qlimit(8), Status::kSuccess);
  for (OolMode mode : {OolMode::kCopy, OolMode::kMove, OolMode::kVolatile}) {
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend);
    ASSERT_TRUE(add_region(*task_, m, mode, 1 << 20, 6));
    ASSERT_EQ(task_->send(m), Status::kSuccess);
  }
  OutgoingMessage big_body;
  big_body.set_remote(p, Disposition::kMakeSend).body().resize(1 << 20);
  ASSERT_EQ(task_->send(big_body), Status::kSuccess);
  EXPECT_EQ(daemon_fds(), baseline_ + 5);  // three regions, a release signal, a body
  EXPECT_EQ(daemon_maps_memfd(), "");
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.receive(ReceiveOptions{0ms})) << i;
  EXPECT_EQ(daemon_maps_memfd(), "");
}

// ---------------------------------------------------------------------------
// Refusals: MACH_SEND_INVALID_MEMORY, nothing consumed, nothing leaked.

TEST_F(OolTest, UnsealedOrWritableRegionsAreRefusedAndNothingLeaks) {
  ReceiveRight p = port();
  const int own_fds = own_fd_count();

  // Each refusal is logged (at debug) with what is wrong with the region.
  auto refused = [&](OolRegion region, const char* what, const std::string& why) {
    SCOPED_TRACE(what);
    auto right = p.make_send();
    ASSERT_TRUE(right);
    const Name name = right->name();
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend).add_port(std::move(*right)).add_ool(std::move(region));
    EXPECT_EQ(task_->send(m), Status::kSendInvalidMemory);
    // Nothing consumed: the message still holds its right and its region,
    // and the right is still in our space.
    EXPECT_EQ(m.held_rights(), 1u);
    EXPECT_EQ(m.descriptors().size(), 2u);
    EXPECT_EQ(*task_->get_refs(name, Right::kSend), 1u);
    EXPECT_TRUE(daemon_.wait_for_log("refused: descriptor 1 (memory): " + why +
                                     " (MACH_SEND_INVALID_MEMORY)\n"))
        << daemon_.log();
  };  // dropping the message releases the right

  // An unsealed fd in a sealed (non-volatile) descriptor.
  refused(OolRegion::adopt(memfd_with(4096, 1, 0), 4096), "unsealed",
          "a sealed region must be sealed SHRINK|GROW|WRITE|SEAL; this one lacks "
          "SHRINK|GROW|WRITE|SEAL");
  // Sealed against everything but writing, the sender keeping a writable
  // mapping (F_SEAL_WRITE cannot be added while one exists; FUTURE_WRITE
  // leaves it writable).
  UniqueFd partial = memfd_with(4096, 2, F_SEAL_SHRINK | F_SEAL_GROW);
  void* writable = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, partial.get(), 0);
  ASSERT_NE(writable, MAP_FAILED);
  EXPECT_EQ(::fcntl(partial.get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
  ASSERT_EQ(::fcntl(partial.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), 0);
  refused(OolRegion::adopt(std::move(partial), 4096), "writable mapping kept",
          "a sealed region must be sealed SHRINK|GROW|WRITE|SEAL; this one lacks WRITE");
  ::munmap(writable, 4096);
  // Sealed, but shorter than it says.
  refused(OolRegion::adopt(memfd_with(100, 3, kAllSeals), 4096), "short",
          "the file is 100 bytes long, the descriptor says 4096");
  // Volatile, but free to shrink under a receiver's mapping.
  refused(OolRegion::adopt(memfd_with(4096, 4, 0), 4096, /*is_volatile=*/true), "shrinkable",
          "a volatile region must be sealed SHRINK; this one lacks SHRINK");
  // Not a memfd at all.
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  ::close(ends[1]);
  refused(OolRegion::adopt(UniqueFd(ends[0]), 0), "a pipe", "a pipe, not a memfd");

  EXPECT_EQ(task_->get_attributes(p.name())->msgcount, 0u);
  EXPECT_EQ(daemon_fds(), baseline_);
  EXPECT_EQ(own_fd_count(), own_fds);
}

TEST_F(OolTest, MoveOfABufferSomeoneStillMapsWritableIsRefusedAndTheBufferKept) {
  auto buffer = SharedBuffer::allocate(8192);
  ASSERT_TRUE(buffer);
  fill_pattern(buffer->bytes(), 11);
  // Someone else maps the same memfd shared and writable.
  void* other = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->fd(), 0);
  ASSERT_NE(other, MAP_FAILED);
  ReceiveRight p = port();
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_move(std::move(*buffer));
  EXPECT_EQ(m.problem(), Status::kSendInvalidMemory);
  EXPECT_EQ(task_->send(m), Status::kSendInvalidMemory);
  // The buffer is still the caller's, mapped, with its bytes.
  ASSERT_TRUE(*buffer);
  EXPECT_TRUE(spot_check(buffer->bytes(), 11));
  buffer->data()[0] = std::byte{1};
  EXPECT_EQ(static_cast<std::byte*>(other)[0], std::byte{1});
  // Once the other mapping is gone, the move goes through.
  ::munmap(other, 8192);
  OutgoingMessage retry;
  retry.set_remote(p, Disposition::kMakeSend).add_ool_move(std::move(*buffer));
  ASSERT_EQ(task_->send(retry), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  EXPECT_EQ(std::get<ReceivedOolMemory>(got->descriptors.at(0)).bytes()[0], std::byte{1});
}

TEST_F(OolTest, TooManyRegionsForOneFrameAreRefusedBeforeSending) {
  ReceiveRight p = port();
  auto region = OolRegion::copy("x", 1);
  ASSERT_TRUE(region);
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend);
  for (int i = 0; i < 65; ++i) m.add_ool(std::move(*region->share()));
  EXPECT_EQ(task_->send(m), Status::kSendTooLarge);
  EXPECT_EQ(m.descriptors().size(), 65u);
}

// ---------------------------------------------------------------------------
// Private copies.

TEST_F(OolTest, AReceiversWritesDoNotReachAnotherReceiverOfTheSameRegion) {
  constexpr size_t kSize = 64 << 10;
  constexpr uint64_t kSeed = 21;
  auto region = OolRegion::copy([] {
    std::vector<std::byte> b(kSize);
    fill_pattern(b, kSeed);
    return b;
  }());
  ASSERT_TRUE(region);
  auto second = region->share();
  ASSERT_TRUE(second);
  auto kept = region->share();  // the sender's own view
  ASSERT_TRUE(kept);
  const uint64_t original = pattern_checksum(kSize, kSeed);
  const std::string socket = daemon_.socket_path();
  const std::string service_a = unique_service("writer"), service_b = unique_service("reader");

  Child writer([&]() -> int {
    auto task = Task::connect(ConnectOptions{socket, "writer"});
    if (!task) return 2;
    auto inbox = (*task)->check_in(service_a);
    if (!inbox) return 3;
    auto got = inbox->receive(ReceiveOptions{30000ms});
    if (!got) return 4;
    auto& mem = std::get<ReceivedOolMemory>(got->descriptors.at(0));
    if (checksum(mem.bytes()) != original) return 5;
    std::memset(mem.bytes().data(), 0xee, 1000);  // writes its copy
    if (checksum(mem.bytes()) == original) return 6;
    OutgoingMessage done;
    done.set_remote(got->remote, Disposition::kMoveSendOnce).set_body("written");
    if ((*task)->send(done) != Status::kSuccess) return 7;
    // Keeps its mapping (and its write) until the parent says so.
    auto bye = inbox->receive(ReceiveOptions{30000ms});
    return bye ? 0 : 8;
  });
  Child reader([&]() -> int {
    auto task = Task::connect(ConnectOptions{socket, "reader"});
    if (!task) return 2;
    auto inbox = (*task)->check_in(service_b);
    if (!inbox) return 3;
    auto got = inbox->receive(ReceiveOptions{30000ms});
    if (!got) return 4;
    const auto& mem = std::get<ReceivedOolMemory>(got->descriptors.at(0));
    return checksum(mem.bytes()) == original ? 0 : 5;
  });

  auto a = task_->look_up(service_a, 10000ms);
  ASSERT_TRUE(a);
  OutgoingMessage to_writer;
  to_writer.set_remote(*a).add_ool(std::move(*region));
  auto reply_port = port();
  auto written = task_->rpc(to_writer, reply_port, {}, ReceiveOptions{30000ms});
  ASSERT_TRUE(written);
  ASSERT_EQ(written->body_text(), "written");

  auto b = task_->look_up(service_b, 10000ms);
  ASSERT_TRUE(b);
  OutgoingMessage to_reader;
  to_reader.set_remote(*b).add_ool(std::move(*second));
  ASSERT_EQ(task_->send(to_reader), Status::kSuccess);
  EXPECT_EQ(reader.wait(), 0);

  OutgoingMessage bye;
  bye.set_remote(*a).set_body("bye");
  ASSERT_EQ(task_->send(bye), Status::kSuccess);
  EXPECT_EQ(writer.wait(), 0);
  // The sender's region is as it was.
  std::vector<std::byte> mine(kSize);
  ASSERT_EQ(::pread(kept->fd(), mine.data(), kSize, 0), static_cast<ssize_t>(kSize));
  EXPECT_EQ(checksum(mine), original);
}

// ---------------------------------------------------------------------------
// Volatile regions: what the receiver sees and what it can do.

TEST_F(OolTest, VolatileReceiverSeesTheSendersLaterWritesButCannotWriteTheSegment) {
  ReceiveRight p = port();
  auto buffer = task_->volatile_buffer(4096);
  ASSERT_TRUE(buffer) << buffer.detail();
  std::byte* const sender_view = buffer->data();
  fill_pattern(buffer->bytes(), 3);
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_volatile(std::move(*buffer));
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(daemon_fds(), baseline_ + 2);  // the segment and its release signal
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
  ASSERT_TRUE(region.is_volatile);
  EXPECT_TRUE(spot_check(region.bytes(), 3));
  // Volatile: the sender may still write, and the receiver sees it (on pages
  // it has not written itself).
  sender_view[100] = std::byte{0x42};
  EXPECT_EQ(region.bytes()[100], std::byte{0x42});
  // The receiver's writes stay in its copy.
  region.bytes()[200] = std::byte{0x17};
  EXPECT_NE(sender_view[200], std::byte{0x17});
  EXPECT_EQ(task_->volatile_pool_stats().in_flight, 1u);
  region.memory.reset();
  EXPECT_TRUE(in_flight_settles(0));
}

TEST_F(OolTest, AVolatileReceiverGetsAReadOnlyFileAndAPipeEnd) {
  // A raw receiver, to look at the fds themselves.
  RawClient raw(daemon_.socket_path());
  ASSERT_NE(raw.hello("raw-receiver"), 0u);
  const std::string service = unique_service("raw");
  ASSERT_TRUE(
      raw.request(2, [&](wire::Request::Builder r) { r.initBootstrapCheckIn().setName(service); }));
  uint32_t port_name = 0;
  ASSERT_TRUE(raw.next_reply(
      [&](wire::Reply::Reader r, std::vector<UniqueFd>&) { port_name = r.getName(); }));
  ASSERT_NE(port_name, 0u);

  auto server = task_->look_up(service, 5000ms);
  ASSERT_TRUE(server);
  auto buffer = task_->volatile_buffer(4096);
  ASSERT_TRUE(buffer);
  OutgoingMessage m;
  m.set_remote(*server).add_ool_volatile(std::move(*buffer));
  ASSERT_EQ(task_->send(m), Status::kSuccess);

  ASSERT_TRUE(
      raw.request(3, [&](wire::Request::Builder r) { r.initReceive().setName(port_name); }));
  std::vector<UniqueFd> fds;
  bool release_signal = false;
  ASSERT_TRUE(raw.next_reply([&](wire::Reply::Reader r, std::vector<UniqueFd>& got) {
    EXPECT_EQ(r.getStatus(), 0);
    EXPECT_EQ(r.getFdCount(), 2u);
    auto ool = r.getMessage().getDescriptors()[0].getOol();
    EXPECT_TRUE(ool.getVolatile());
    release_signal = ool.getReleaseSignal();
    fds = std::move(got);
  }));
  ASSERT_TRUE(release_signal);
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(::fcntl(fds[0].get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(::pwrite(fds[0].get(), "x", 1, 0), -1);
  EXPECT_EQ(::ftruncate(fds[0].get(), 0), -1);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0].get(), 0), MAP_FAILED);
  EXPECT_EQ(::fcntl(fds[1].get(), F_GETFL) & O_ACCMODE, O_WRONLY);
  EXPECT_EQ(task_->volatile_pool_stats().in_flight, 1u);
  fds.clear();  // the raw receiver lets go
  EXPECT_TRUE(in_flight_settles(0));
}

// ---------------------------------------------------------------------------
// The volatile pool's return path and bounds.

TEST_F(OolTest, VolatileSegmentsComeBackWhenReleasedAndAreReused) {
  ReceiveRight p = port();
  for (int round = 0; round < 5; ++round) {
    auto buffer = task_->volatile_buffer(10000);
    ASSERT_TRUE(buffer);
    fill_pattern(buffer->bytes(), round);
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend).add_ool_volatile(std::move(*buffer));
    ASSERT_EQ(task_->send(m), Status::kSuccess);
    auto got = p.receive(ReceiveOptions{5000ms});
    ASSERT_TRUE(got);
    EXPECT_TRUE(spot_check(std::get<ReceivedOolMemory>(got->descriptors.at(0)).bytes(), round));
    got = Result<ReceivedMessage>(Status::kFailure);  // unmapped: released
    ASSERT_TRUE(in_flight_settles(0));
  }
  const auto stats = task_->volatile_pool_stats();
  EXPECT_EQ(stats.segments, 1u);
  EXPECT_EQ(stats.created, 1u);
  EXPECT_EQ(stats.reused, 4u);
  EXPECT_EQ(stats.bytes, 64u << 10);  // the smallest segment
  EXPECT_EQ(stats.in_flight, 0u);

  // A segment still held by its receiver is not lent again.
  auto held = task_->volatile_buffer(100);
  ASSERT_TRUE(held);
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_volatile(std::move(*held));
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  auto got = p.receive(ReceiveOptions{5000ms});
  ASSERT_TRUE(got);
  auto other = task_->volatile_buffer(100);
  ASSERT_TRUE(other);
  EXPECT_EQ(task_->volatile_pool_stats().segments, 2u);
  EXPECT_EQ(task_->volatile_pool_stats().in_flight, 1u);
  EXPECT_EQ(task_->volatile_pool_stats().lent, 1u);
}

TEST_F(OolTest, VolatileSegmentOfAMessageDestroyedUnreceivedComesBack) {
  ReceiveRight p = port();
  auto buffer = task_->volatile_buffer(4096);
  ASSERT_TRUE(buffer);
  OutgoingMessage m;
  m.set_remote(p, Disposition::kMakeSend).add_ool_volatile(std::move(*buffer));
  ASSERT_EQ(task_->send(m), Status::kSuccess);
  EXPECT_EQ(task_->volatile_pool_stats().in_flight, 1u);
  p.reset();  // the port dies with the message queued: the daemon closes its fds
  EXPECT_TRUE(in_flight_settles(0));
}

TEST_F(OolTest, VolatilePoolIsBoundedAndEvictsFreeSegments) {
  ConnectOptions options{daemon_.socket_path(), "bounded"};
  options.volatile_pool_bytes = 256 << 10;
  auto task = Task::connect(options);
  ASSERT_TRUE(task);
  auto p = (*task)->make_port();
  ASSERT_TRUE(p);
  auto send_one = [&](size_t size) {
    auto buffer = (*task)->volatile_buffer(size);
    if (!buffer) return buffer.status();
    OutgoingMessage m;
    m.set_remote(*p, Disposition::kMakeSend).add_ool_volatile(std::move(*buffer));
    return (*task)->send(m);
  };
  // Four 64 KiB segments in flight fill the pool.
  for (int i = 0; i < 4; ++i) ASSERT_EQ(send_one(1000), Status::kSuccess);
  auto refused = (*task)->volatile_buffer(1000);
  EXPECT_EQ(refused.status(), Status::kResourceShortage);
  EXPECT_NE(refused.detail().find("volatile pool exhausted"), std::string::npos)
      << refused.detail();
  // Received and released: all four free again.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p->receive(ReceiveOptions{5000ms}));
  ASSERT_TRUE(in_flight_settles(0, task->get()));
  // A 256 KiB segment needs the room: the free ones are unmapped for it.
  ASSERT_EQ(send_one(200 << 10), Status::kSuccess);
  auto stats = (*task)->volatile_pool_stats();
  EXPECT_EQ(stats.segments, 1u);
  EXPECT_EQ(stats.bytes, 256u << 10);
  EXPECT_EQ(stats.in_flight, 1u);
  EXPECT_EQ((*task)->volatile_buffer(1).status(), Status::kResourceShortage);
  ASSERT_TRUE(p->receive(ReceiveOptions{5000ms}));
  ASSERT_TRUE(in_flight_settles(0, task->get()));
  // A request larger than the whole pool never fits.
  EXPECT_EQ((*task)->volatile_buffer(1 << 20).status(), Status::kResourceShortage);
  EXPECT_TRUE((*task)->volatile_buffer(1));
}

// ---------------------------------------------------------------------------
// Killed peers leak nothing.

TEST_F(OolTest, KilledSendersRegionsStayReceivableAndLeakNothing) {
  ReceiveRight inbox = port();
  const std::string service = unique_service("killed-sender");
  ASSERT_EQ(task_->bootstrap_register(service, inbox.name()), Status::kSuccess);
  const std::string socket = daemon_.socket_path();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  Child sender([&]() -> int {
    ::close(ready[0]);
    auto task = Task::connect(ConnectOptions{socket, "doomed-sender"});
    if (!task) return 2;
    auto server = (*task)->look_up(service, 10000ms);
    if (!server) return 3;
    for (OolMode mode : {OolMode::kCopy, OolMode::kMove, OolMode::kVolatile}) {
      OutgoingMessage m;
      m.set_remote(*server).set_id(static_cast<int32_t>(mode));
      auto sum = add_region(**task, m, mode, 100000, 40 + static_cast<int>(mode));
      if (!sum) return 4;
      m.set_body(sum_body(*sum));
      if ((*task)->send(m) != Status::kSuccess) return 5;
    }
    if (::write(ready[1], "k", 1) != 1) return 6;
    ::pause();  // until killed
    return 0;
  });
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(::kill(sender.pid(), SIGKILL), 0);
  EXPECT_EQ(sender.wait(), -1);
  EXPECT_TRUE(daemon_.wait_for_log("command 'doomed-sender'")) << daemon_.log();

  for (OolMode mode : {OolMode::kCopy, OolMode::kMove, OolMode::kVolatile}) {
    auto got = inbox.receive(ReceiveOptions{5000ms});
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, static_cast<int32_t>(mode));
    const auto& region = std::get<ReceivedOolMemory>(got->descriptors.at(0));
    EXPECT_EQ(region.is_volatile, mode == OolMode::kVolatile);
    EXPECT_EQ(checksum(region.bytes()), body_sum(*got));
    EXPECT_TRUE(spot_check(region.bytes(), 40 + static_cast<int>(mode)));
  }
}

TEST_F(OolTest, KilledReceiverLeaksNothingAndVolatileSegmentsComeBack) {
  const std::string service = unique_service("killed-receiver");
  const std::string socket = daemon_.socket_path();
  ReceiveRight inbox = port();
  const std::string back = unique_service("back");
  ASSERT_EQ(task_->bootstrap_register(back, inbox.name()), Status::kSuccess);
  Child receiver([&]() -> int {
    auto task = Task::connect(ConnectOptions{socket, "doomed-receiver"});
    if (!task) return 2;
    auto mine = (*task)->check_in(service);
    if (!mine) return 3;
    auto parent = (*task)->look_up(back, 10000ms);
    if (!parent) return 4;
    // Maps the first region and holds it.
    auto got = mine->receive(ReceiveOptions{30000ms});
    if (!got) return 5;
    OutgoingMessage holding;
    holding.set_remote(*parent).set_body("holding");
    if ((*task)->send(holding) != Status::kSuccess) return 6;
    ::pause();
    return 0;
  });
  auto server = task_->look_up(service, 10000ms);
  ASSERT_TRUE(server);
  // One volatile region it will map and hold, then more that stay queued.
  for (OolMode mode : {OolMode::kVolatile, OolMode::kVolatile, OolMode::kCopy, OolMode::kMove}) {
    OutgoingMessage m;
    m.set_remote(*server);
    ASSERT_TRUE(add_region(*task_, m, mode, 5000, 1));
    ASSERT_EQ(task_->send(m), Status::kSuccess);
  }
  auto holding = inbox.receive(ReceiveOptions{10000ms});
  ASSERT_TRUE(holding);
  EXPECT_EQ(holding->body_text(), "holding");
  EXPECT_EQ(task_->volatile_pool_stats().in_flight, 2u);
  EXPECT_GT(daemon_fds(), baseline_);

  ASSERT_EQ(::kill(receiver.pid(), SIGKILL), 0);
  EXPECT_EQ(receiver.wait(), -1);
  // Its connection, the queued regions and their release signals go; the
  // mapping it held dies with it: both segments come back.
  EXPECT_TRUE(in_flight_settles(0));
  EXPECT_TRUE(settles([&] { return daemon_fds(); }, baseline_));
}

TEST_F(OolTest, MessageDestroyedUnreceivedClosesItsFds) {
  ReceiveRight p = port();
  for (OolMode mode : {OolMode::kCopy, OolMode::kMove, OolMode::kVolatile}) {
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend);
    ASSERT_TRUE(add_region(*task_, m, mode, 3000, 2));
    ASSERT_EQ(task_->send(m), Status::kSuccess);
  }
  EXPECT_EQ(daemon_fds(), baseline_ + 4);  // two regions, a segment and its release signal
  p.reset();
  EXPECT_TRUE(settles([&] { return daemon_fds(); }, baseline_));
}

// ---------------------------------------------------------------------------
// Quotas: out-of-line bytes and fds are charged to the sender until received.

TEST_F(OolTest, OutOfLineBytesAreChargedToTheSenderUntilReceived) {
  // Sparse sealed memfds: 2 GiB each on paper, no memory behind them. The
  // per-task limit is 4 GiB.
  auto sparse = [](uint64_t size) {
    UniqueFd fd(::memfd_create("sparse", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, kAllSeals), 0);
    return OolRegion::adopt(std::move(fd), size);
  };
  ReceiveRight p = port();
  for (int i = 0; i < 2; ++i) {
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend).add_ool(sparse(2ull << 30));
    ASSERT_EQ(task_->send(m), Status::kSuccess);
  }
  OutgoingMessage over;
  over.set_remote(p, Disposition::kMakeSend).add_ool(sparse(1));
  auto refused = task_->send_receive(over, {}, p.name(), ReceiveOptions{0ms});
  EXPECT_EQ(refused.status(), Status::kSendNoBuffer);
  EXPECT_EQ(refused.detail(), "refused by the ool_bytes limit");
  EXPECT_EQ(over.descriptors().size(), 1u);  // not consumed

  // Received: no longer charged.
  auto first = p.receive(ReceiveOptions{0ms});
  ASSERT_TRUE(first);
  EXPECT_EQ(std::get<ReceivedOolMemory>(first->descriptors.at(0)).size, 2ull << 30);
  first = Result<ReceivedMessage>(Status::kFailure);  // unmaps it
  auto sent = task_->send_receive(over, {}, p.name(), ReceiveOptions{0ms});
  ASSERT_TRUE(sent) << status_name(sent.status());  // received its own message back first
}

TEST_F(OolTest, FdsInFlightAreChargedToTheSenderUntilReceived) {
  // The daemon holds 1024 fds at the limit; make sure it may.
  rlimit nofile{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  if (nofile.rlim_max < 4096) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << nofile.rlim_max;
  auto region = OolRegion::copy("x", 1);
  ASSERT_TRUE(region);
  ReceiveRight p = port();
  ASSERT_EQ(p.set_qlimit(64), Status::kSuccess);
  // 16 messages of 64 regions: the per-task limit of 1024 fds in flight.
  for (int i = 0; i < 16; ++i) {
    OutgoingMessage m;
    m.set_remote(p, Disposition::kMakeSend);
    for (int k = 0; k < 64; ++k) m.add_ool(std::move(*region->share()));
    ASSERT_EQ(task_->send(m), Status::kSuccess) << i;
  }
  EXPECT_EQ(daemon_fds(), baseline_ + 1024);
  OutgoingMessage over;
  over.set_remote(p, Disposition::kMakeSend).add_ool(std::move(*region->share()));
  auto refused = task_->send_receive(over, {}, p.name(), ReceiveOptions{0ms});
  EXPECT_EQ(refused.status(), Status::kSendNoBuffer);
  EXPECT_EQ(refused.detail(), "refused by the fds_in_flight limit");
  EXPECT_EQ(daemon_fds(), baseline_ + 1024);  // the refused fd was closed
  {
    auto one = p.receive(ReceiveOptions{0ms});
    ASSERT_TRUE(one);
    EXPECT_EQ(one->descriptors.size(), 64u);
  }
  EXPECT_EQ(task_->send(over), Status::kSuccess);
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(p.receive(ReceiveOptions{0ms})) << i;
}

}  // namespace
}  // namespace portd::testing
