// The request driver (daemon/server/driver.h) with the real core and an
// io_context, but no sockets: replies are recorded by a ReplySink. Covers
// parking, timers, cancel, sendReceive's two phases, OOL attachments and
// what detaching a task does to all of them.
#include "daemon/server/driver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "daemon/ipc/core_impl.h"
#include "daemon/server/body_pool.h"

namespace portd::server {
namespace {

using proto::UniqueFd;

struct Recorded {
  uint64_t id = 0;
  Status status = Status::kSuccess;
  wire::Reply::Which which = wire::Reply::NONE;
  uint32_t name = 0;
  std::string limit;
  std::string body;
  uint32_t local = 0;
  uint32_t remote = 0;
  int32_t msg_id = 0;
  std::vector<uint32_t> port_names;  // the message's port descriptors
  std::vector<Status> statuses;      // a sendBatch's
  uint16_t fd_count = 0;
  std::vector<UniqueFd> fds;
};

class RecordingSink : public ReplySink {
 public:
  void post_reply(ipc::TaskId task, capnp::MessageBuilder& reply,
                  std::vector<UniqueFd> fds) override {
    auto r = reply.getRoot<wire::Reply>().asReader();
    Recorded rec;
    rec.id = r.getId();
    rec.status = static_cast<Status>(r.getStatus());
    rec.which = r.which();
    rec.limit = r.getLimit().cStr();
    rec.fd_count = r.getFdCount();
    if (rec.which == wire::Reply::NAME) rec.name = r.getName();
    if (rec.which == wire::Reply::SEND_STATUSES)
      for (int32_t v : r.getSendStatuses()) rec.statuses.push_back(static_cast<Status>(v));
    if (rec.which == wire::Reply::MESSAGE) {
      auto b = r.getMessage().getBody();
      rec.body.assign(reinterpret_cast<const char*>(b.begin()), b.size());
      rec.local = r.getMessage().getLocal();
      rec.remote = r.getMessage().getRemote();
      rec.msg_id = r.getMessage().getId();
      for (auto d : r.getMessage().getDescriptors())
        if (d.which() == wire::OutDescriptor::PORT) rec.port_names.push_back(d.getPort().getName());
    }
    rec.fds = std::move(fds);
    replies[task].push_back(std::move(rec));
  }

  // Takes the replies recorded for `task` so far.
  std::vector<Recorded> take(ipc::TaskId task) {
    auto out = std::move(replies[task]);
    replies[task].clear();
    return out;
  }

  std::map<ipc::TaskId, std::vector<Recorded>> replies;
};

class DriverTest : public ::testing::Test {
 protected:
  DriverTest() : driver_(io_, core_, sink_) {}

  void SetUp() override {
    ASSERT_EQ(driver_.attach(kA, {100, 1000, 1000}), Status::kSuccess);
    ASSERT_EQ(driver_.attach(kB, {200, 1000, 1000}), Status::kSuccess);
  }

  void handle(ipc::TaskId task, uint64_t id, RequestBody body, std::vector<UniqueFd> fds = {}) {
    DecodedRequest r;
    r.id = id;
    r.fd_count = static_cast<uint16_t>(fds.size());
    r.body = std::move(body);
    driver_.handle(task, std::move(r), std::move(fds));
  }

  // Handles one request and returns its single immediate reply.
  Recorded call(ipc::TaskId task, uint64_t id, RequestBody body, std::vector<UniqueFd> fds = {}) {
    handle(task, id, std::move(body), std::move(fds));
    auto got = sink_.take(task);
    EXPECT_EQ(got.size(), 1u);
    if (got.empty()) return {};
    EXPECT_EQ(got[0].id, id);
    return std::move(got[0]);
  }

  ipc::Name allocate(ipc::TaskId task) {
    Recorded r = call(task, 9000 + next_++, req::Allocate{ipc::Right::kReceive});
    EXPECT_EQ(r.status, Status::kSuccess);
    return r.name;
  }

  static req::Send text_to(ipc::Name port, const std::string& text,
                           ipc::Disposition d = ipc::Disposition::kMakeSend,
                           int64_t timeout_ms = -1) {
    req::Send s;
    s.message.remote = port;
    s.message.remote_disposition = d;
    s.message.body.assign(text.begin(), text.end());
    s.options.timeout_ms = timeout_ms;
    return s;
  }

  static req::Receive receive_on(ipc::Name port, int64_t timeout_ms) {
    req::Receive r;
    r.options.name = port;
    r.options.timeout_ms = timeout_ms;
    return r;
  }

  static UniqueFd memfd(const std::string& text, bool seal) {
    UniqueFd fd(::memfd_create("driver_test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
    if (seal) {
      EXPECT_EQ(
          ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
          0);
    }
    return fd;
  }

  void run_for(int ms) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(ms));
  }

  // The queued messages charged to `task` (queued, waiting, or held).
  uint64_t queued_charge(ipc::TaskId task) {
    const ipc::Task* t = core_.impl().find_task(task);
    return t == nullptr ? 0 : *t->account->used.find(ipc::Limit::kQueuedMessages);
  }

  static constexpr ipc::TaskId kA = 1;
  static constexpr ipc::TaskId kB = 2;
  asio::io_context io_;
  ipc::Core core_;
  RecordingSink sink_;
  Driver driver_;
  int next_ = 0;
};

TEST_F(DriverTest, ParkedReceiveCompletesOnAnotherTasksSend) {
  Recorded in = call(kA, 10, req::BootstrapCheckIn{"com.test.svc"});
  ASSERT_EQ(in.status, Status::kSuccess);
  handle(kA, 11, receive_on(in.name, -1));
  EXPECT_TRUE(sink_.take(kA).empty());
  EXPECT_EQ(driver_.parked_count(), 1u);
  EXPECT_EQ(driver_.timer_count(), 0u);  // waits forever: no timer

  Recorded look = call(kB, 20, req::BootstrapLookUp{"com.test.svc", 0});
  ASSERT_EQ(look.status, Status::kSuccess);
  EXPECT_EQ(call(kB, 21, text_to(look.name, "from B", ipc::Disposition::kCopySend)).status,
            Status::kSuccess);
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 11u);
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_EQ(got[0].body, "from B");
  EXPECT_EQ(got[0].local, in.name);
  EXPECT_EQ(driver_.parked_count(), 0u);
}

TEST_F(DriverTest, CompletionIsRoutedToTheParkedRequest) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, -1));
  handle(kA, 11, text_to(port, "routed"));
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, 11u);  // the send's own reply first
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_EQ(got[1].id, 10u);  // then the completion
  EXPECT_EQ(got[1].status, Status::kSuccess);
  EXPECT_EQ(got[1].which, wire::Reply::MESSAGE);
  EXPECT_EQ(got[1].body, "routed");
  EXPECT_EQ(got[1].local, port);
  EXPECT_EQ(driver_.parked_count(), 0u);
}

// A received body's buffer goes back to the pool the codec decodes into.
TEST_F(DriverTest, AReceivedBodysBufferIsKeptForTheNextDecode) {
  const ipc::Name port = allocate(kA);
  BodyPool::release_all();
  ASSERT_EQ(call(kA, 10, text_to(port, "recycled")).status, Status::kSuccess);
  EXPECT_EQ(BodyPool::spare(), 0u);
  EXPECT_EQ(call(kA, 11, receive_on(port, 0)).body, "recycled");
  EXPECT_EQ(BodyPool::spare(), 1u);
  (void)BodyPool::take();
}

// Bodies copied into the reply, placed in it unfilled and referenced as a
// segment of their own (kPlaceBodyBytes, kReferenceBodyBytes) all reach a
// sink that only reads the reply whole: the default post_reply_with_body
// fills a placed field.
TEST_F(DriverTest, BodiesOfEveryPlacementReachASinkThatOnlyReads) {
  const ipc::Name port = allocate(kA);
  const std::vector<size_t> sizes = {kPlaceBodyBytes - 1, kPlaceBodyBytes, 4097,
                                     kReferenceBodyBytes - 1, kReferenceBodyBytes};
  for (size_t size : sizes) {
    std::string text(size, '\0');
    for (size_t k = 0; k < size; ++k) text[k] = static_cast<char>('a' + (k * 7 + size) % 26);
    ASSERT_EQ(call(kA, 10, text_to(port, text)).status, Status::kSuccess) << size;
    Recorded got = call(kA, 11, receive_on(port, 0));
    ASSERT_EQ(got.status, Status::kSuccess) << size;
    EXPECT_EQ(got.body, text) << size;
  }
}

TEST_F(DriverTest, TimerExpiresAParkedReceive) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, 20));
  EXPECT_EQ(driver_.timer_count(), 1u);
  run_for(200);
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 10u);
  EXPECT_EQ(got[0].status, Status::kRcvTimedOut);
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.timer_count(), 0u);
}

TEST_F(DriverTest, CompletionCancelsTheTimer) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, 30));
  handle(kA, 11, text_to(port, "in time"));
  EXPECT_EQ(sink_.take(kA).size(), 2u);
  EXPECT_EQ(driver_.timer_count(), 0u);
  run_for(100);
  EXPECT_TRUE(sink_.take(kA).empty());  // no late timed-out reply
}

TEST_F(DriverTest, CancelAnswersTheParkedRequestThenTheCancel) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, 1000));
  handle(kA, 11, req::Cancel{10});
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, 10u);
  EXPECT_EQ(got[0].status, Status::kRcvInterrupted);
  EXPECT_EQ(got[1].id, 11u);
  EXPECT_EQ(got[1].status, Status::kSuccess);
  EXPECT_EQ(driver_.timer_count(), 0u);
  EXPECT_EQ(call(kA, 12, req::Cancel{10}).status, Status::kNotFound);
}

TEST_F(DriverTest, DuplicateIdOfAParkedRequestIsRefused) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, -1));
  EXPECT_EQ(call(kA, 10, req::Names{}).status, Status::kInvalidArgument);
  EXPECT_EQ(driver_.parked_count(), 1u);
}

TEST_F(DriverTest, RefusedRequestsAreAnsweredWithTheirStatusAndLimit) {
  DecodedRequest r;
  r.id = 5;
  r.refusal = Refusal{Status::kSendTooLarge, ipc::Limit::kMessageBytes, "test"};
  driver_.handle(kA, std::move(r), {});
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, Status::kSendTooLarge);
  EXPECT_EQ(got[0].limit, "message_bytes");
}

TEST_F(DriverTest, DetachDropsParkedRequestsAndTimers) {
  const ipc::Name port = allocate(kA);
  handle(kA, 10, receive_on(port, 20));
  handle(kA, 11, receive_on(port, -1));
  EXPECT_EQ(driver_.parked_count(), 2u);
  driver_.detach(kA);
  EXPECT_FALSE(driver_.attached(kA));
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.timer_count(), 0u);
  run_for(100);  // the cancelled timer's handler must not touch anything
  EXPECT_TRUE(sink_.take(kA).empty());
  EXPECT_FALSE(core_.task_exists(kA));
}

TEST_F(DriverTest, SendReceiveRunsTheReceiveAfterTheSend) {
  const ipc::Name port = allocate(kA);
  req::SendReceive sr;
  sr.message.remote = port;
  sr.message.remote_disposition = ipc::Disposition::kMakeSend;
  sr.message.body = {'r', 't'};
  sr.receive.name = port;
  sr.receive.timeout_ms = 0;
  handle(kA, 10, std::move(sr));
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);  // one reply for both phases
  EXPECT_EQ(got[0].id, 10u);
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_EQ(got[0].body, "rt");
}

TEST_F(DriverTest, SendReceiveSendErrorIsTheAnswer) {
  const ipc::Name port = allocate(kA);
  req::SendReceive sr;
  sr.message.remote = port + (1u << 8);  // no such name
  sr.message.remote_disposition = ipc::Disposition::kCopySend;
  sr.receive.name = port;
  handle(kA, 10, std::move(sr));
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, Status::kSendInvalidDest);
  EXPECT_EQ(driver_.parked_count(), 0u);
}

TEST_F(DriverTest, OolFdsAreHeldWhileQueuedAndDeliveredInOrder) {
  const ipc::Name port = allocate(kA);
  req::Send s = text_to(port, "with fds");
  s.message.descriptors.push_back(ipc::OolIn{0, 5, false, false});
  s.message.descriptors.push_back(ipc::PortDescIn{ipc::kNameNull, ipc::Disposition::kCopySend});
  s.message.descriptors.push_back(ipc::OolIn{0, 6, false, false});
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("first", true));
  fds.push_back(memfd("second", true));
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSuccess);
  EXPECT_EQ(driver_.attachment_count(), 2u);

  Recorded r = call(kA, 11, receive_on(port, 0));
  ASSERT_EQ(r.status, Status::kSuccess);
  EXPECT_EQ(r.fd_count, 2u);
  ASSERT_EQ(r.fds.size(), 2u);
  char buf[16] = {};
  ASSERT_EQ(::pread(r.fds[0].get(), buf, sizeof buf, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "first");
  ASSERT_EQ(::pread(r.fds[1].get(), buf, sizeof buf, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "second");
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

TEST_F(DriverTest, UnsealedOolIsRefusedAndNothingIsHeld) {
  const ipc::Name port = allocate(kA);
  req::Send s = text_to(port, "bad");
  s.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  s.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("abc", true));
  fds.push_back(memfd("abc", false));  // the second is not sealed
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSendInvalidMemory);
  EXPECT_EQ(driver_.attachment_count(), 0u);
  // The daemon's counters count it as a send, refused.
  EXPECT_EQ(core_.impl().counters().messages_sent, 1u);
  EXPECT_EQ(core_.impl().counters().messages_refused, 1u);
}

TEST_F(DriverTest, ASendTheCodecRefusedCountsAsSentAndRefused) {
  DecodedRequest r;
  r.id = 10;
  r.carries_message = true;
  r.refusal =
      Refusal{Status::kSendTooLarge, ipc::Limit::kMessageBytes, "inline body over the limit"};
  driver_.handle(kA, std::move(r), {});
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, Status::kSendTooLarge);
  EXPECT_EQ(got[0].limit, "message_bytes");
  // A refused request that was not a send is no message.
  DecodedRequest other;
  other.id = 11;
  other.refusal = Refusal{Status::kInvalidValue, ipc::Limit::kNone, "unknown right"};
  driver_.handle(kA, std::move(other), {});
  EXPECT_EQ(sink_.take(kA).size(), 1u);
  EXPECT_EQ(core_.impl().counters().messages_sent, 1u);
  EXPECT_EQ(core_.impl().counters().messages_refused, 1u);
}

TEST_F(DriverTest, ReleaseSignalTravelsAfterItsRegionAndClosesWithIt) {
  const ipc::Name port = allocate(kA);
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]);
  req::Send s = text_to(port, "volatile");
  s.message.descriptors.push_back(ipc::OolIn{0, 3, true, false, /*release_signal=*/true});
  s.message.descriptors.push_back(ipc::OolIn{0, 5, false, false});
  std::vector<UniqueFd> fds;
  UniqueFd segment = memfd("abc", false);
  ASSERT_EQ(::fcntl(segment.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  fds.push_back(std::move(segment));
  fds.emplace_back(ends[1]);
  fds.push_back(memfd("fifth", true));
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSuccess);
  EXPECT_EQ(driver_.attachment_count(), 2u);

  Recorded r = call(kA, 11, receive_on(port, 0));
  ASSERT_EQ(r.status, Status::kSuccess);
  EXPECT_EQ(r.fd_count, 3u);
  ASSERT_EQ(r.fds.size(), 3u);
  char buf[8] = {};
  EXPECT_EQ(::pread(r.fds[0].get(), buf, sizeof buf, 0), 3);
  struct stat st;
  ASSERT_EQ(::fstat(r.fds[1].get(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(::pread(r.fds[2].get(), buf, sizeof buf, 0), 5);
  // The receiver holds the last write end: closing it is the release.
  pollfd pfd{read_end.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  r.fds.clear();
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);
  EXPECT_TRUE(pfd.revents & POLLHUP);
}

TEST_F(DriverTest, DestroyedMessageClosesItsReleaseSignal) {
  const ipc::Name port = allocate(kA);
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]);
  req::Send s = text_to(port, "dropped");
  s.message.descriptors.push_back(ipc::OolIn{0, 3, true, false, true});
  std::vector<UniqueFd> fds;
  UniqueFd segment = memfd("abc", false);
  ASSERT_EQ(::fcntl(segment.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  fds.push_back(std::move(segment));
  fds.emplace_back(ends[1]);
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSuccess);
  pollfd pfd{read_end.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  EXPECT_EQ(call(kA, 11, req::Destroy{port}).status, Status::kSuccess);
  EXPECT_EQ(driver_.attachment_count(), 0u);
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);  // end of file: the sender gets its segment back
}

TEST_F(DriverTest, ReleaseSignalMustBeAWriteOnlyPipeEnd) {
  const ipc::Name port = allocate(kA);
  auto send_with = [&](uint64_t id, UniqueFd release) {
    req::Send s = text_to(port, "x");
    s.message.descriptors.push_back(ipc::OolIn{0, 3, true, false, true});
    std::vector<UniqueFd> fds;
    UniqueFd segment = memfd("abc", false);
    EXPECT_EQ(::fcntl(segment.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    fds.push_back(std::move(segment));
    fds.push_back(std::move(release));
    return call(kA, id, std::move(s), std::move(fds)).status;
  };
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd write_end(ends[1]);
  EXPECT_EQ(send_with(10, UniqueFd(ends[0])), Status::kSendInvalidMemory);  // the read end
  EXPECT_EQ(send_with(11, memfd("not a pipe", false)), Status::kSendInvalidMemory);
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

TEST_F(DriverTest, FailedSendReleasesItsAttachments) {
  req::Send s = text_to(0x4242, "nowhere", ipc::Disposition::kCopySend);
  s.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("abc", true));
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSendInvalidDest);
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

TEST_F(DriverTest, DestroyedQueueReleasesAttachments) {
  const ipc::Name port = allocate(kA);
  req::Send s = text_to(port, "dropped");
  s.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("abc", true));
  EXPECT_EQ(call(kA, 10, std::move(s), std::move(fds)).status, Status::kSuccess);
  EXPECT_EQ(driver_.attachment_count(), 1u);
  EXPECT_EQ(call(kA, 11, req::Destroy{port}).status, Status::kSuccess);
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

TEST_F(DriverTest, ParkedSendTimesOutAndKeepsNothing) {
  const ipc::Name port = allocate(kA);
  EXPECT_EQ(call(kA, 10, req::SetAttributes{port, 0}).status, Status::kSuccess);  // rendezvous
  req::Send s = text_to(port, "waits", ipc::Disposition::kMakeSend, 20);
  s.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("abc", true));
  handle(kA, 11, std::move(s), std::move(fds));
  EXPECT_TRUE(sink_.take(kA).empty());
  EXPECT_EQ(driver_.attachment_count(), 1u);
  run_for(200);
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 11u);
  EXPECT_EQ(got[0].status, Status::kSendTimedOut);
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

TEST_F(DriverTest, LookUpParksUntilCheckIn) {
  handle(kA, 10, req::BootstrapLookUp{"com.test.x", -1});
  EXPECT_TRUE(sink_.take(kA).empty());
  Recorded in = call(kB, 20, req::BootstrapCheckIn{"com.test.x"});
  EXPECT_EQ(in.status, Status::kSuccess);
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 10u);
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_NE(got[0].name, 0u);
}

// A driver over a core with the given limits, and one attached task (1)
// whose requests are numbered from 1.
struct LimitedDriver {
  explicit LimitedDriver(const ipc::Limits& limits) : core(limits), driver(io, core, sink) {
    EXPECT_EQ(driver.attach(1, {100, 1000, 1000}), Status::kSuccess);
  }
  void handle(RequestBody body) {
    DecodedRequest r;
    r.id = next_id++;
    r.body = std::move(body);
    driver.handle(1, std::move(r), {});
  }
  asio::io_context io;
  ipc::Core core;
  RecordingSink sink;
  Driver driver;
  uint64_t next_id = 1;
};

// A refusal by a core quota names the limit in the reply.
TEST(DriverLimits, CoreRefusalNamesTheLimit) {
  ipc::Limits limits;
  limits.per_task.ports = 2;
  LimitedDriver d(limits);
  for (int i = 0; i < 3; ++i) d.handle(req::Allocate{ipc::Right::kReceive});
  RecordingSink& sink = d.sink;
  auto got = sink.take(1);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_EQ(got[1].status, Status::kSuccess);
  EXPECT_TRUE(got[1].limit.empty());
  EXPECT_EQ(got[2].status, Status::kResourceShortage);
  EXPECT_EQ(got[2].limit, "ports");
  EXPECT_EQ(got[2].which, wire::Reply::NONE);
}

// ---- cache-on-full: a cached send is not a failure --------------------------

// The message (with its out-of-line fd) belongs to the daemon from the
// moment it is cached: the fd stays in the table and travels with the
// message when it is received.
TEST_F(DriverTest, CachedSendKeepsItsAttachmentsUntilDelivered) {
  const ipc::Name port = allocate(kA);
  const ipc::Name notify = allocate(kA);
  ASSERT_EQ(call(kA, 10, req::SetAttributes{port, 1}).status, Status::kSuccess);
  ASSERT_EQ(call(kA, 11, text_to(port, "first")).status, Status::kSuccess);
  req::Send s = text_to(port, "cached", ipc::Disposition::kMakeSend, 0);
  s.message.descriptors.push_back(ipc::OolIn{0, 8, false, false});
  s.options.cache = true;
  s.options.notify = notify;
  s.options.notify_disposition = ipc::Disposition::kMakeSendOnce;
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("ool data", true));
  Recorded r = call(kA, 12, std::move(s), std::move(fds));
  EXPECT_EQ(r.status, Status::kSendWillNotify);
  EXPECT_EQ(driver_.attachment_count(), 1u);  // not closed as if refused
  EXPECT_EQ(driver_.parked_count(), 0u);

  EXPECT_EQ(call(kA, 13, receive_on(port, 0)).body, "first");
  Recorded accepted = call(kA, 14, receive_on(notify, 0));
  EXPECT_EQ(accepted.status, Status::kSuccess);
  EXPECT_EQ(accepted.msg_id, 66);
  Recorded cached = call(kA, 15, receive_on(port, 0));
  ASSERT_EQ(cached.status, Status::kSuccess);
  EXPECT_EQ(cached.body, "cached");
  ASSERT_EQ(cached.fds.size(), 1u);
  char buf[8] = {};
  ASSERT_EQ(::pread(cached.fds[0].get(), buf, sizeof buf, 0), 8);
  EXPECT_EQ(std::string(buf, 8), "ool data");
  EXPECT_EQ(driver_.attachment_count(), 0u);
}

// As in GNU Mach, a cached send-then-receive ends with the send's status:
// nothing is received, the request is not parked.
TEST_F(DriverTest, CachedSendReceiveAnswersWillNotifyWithoutReceiving) {
  const ipc::Name port = allocate(kA);
  const ipc::Name reply = allocate(kA);
  ASSERT_EQ(call(kA, 10, req::SetAttributes{port, 1}).status, Status::kSuccess);
  ASSERT_EQ(call(kA, 11, text_to(port, "first")).status, Status::kSuccess);
  ASSERT_EQ(call(kA, 12, text_to(reply, "not for the rpc")).status, Status::kSuccess);
  req::SendReceive sr;
  sr.message.remote = port;
  sr.message.remote_disposition = ipc::Disposition::kMakeSend;
  sr.message.body = {'c'};
  sr.message.descriptors.push_back(ipc::OolIn{0, 3, false, false});
  sr.send.timeout_ms = 0;
  sr.send.cache = true;
  sr.send.notify = reply;
  sr.send.notify_disposition = ipc::Disposition::kMakeSendOnce;
  sr.receive.name = reply;
  sr.receive.timeout_ms = -1;
  std::vector<UniqueFd> fds;
  fds.push_back(memfd("abc", true));
  handle(kA, 13, std::move(sr), std::move(fds));
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 13u);
  EXPECT_EQ(got[0].status, Status::kSendWillNotify);
  EXPECT_EQ(got[0].which, wire::Reply::NONE);
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.attachment_count(), 1u);
  // The message on the reply port was left for whoever receives next.
  EXPECT_EQ(call(kA, 14, receive_on(reply, 0)).body, "not for the rpc");
}

// ---- receives whose rights could not all be named ---------------------------

// The receiver's name space is full: the message still arrives, with the
// rights that could not be named as MACH_PORT_NULL and the status saying so,
// whether the receive was waiting or not.
TEST(DriverDelivery, UnnameableRightsStillDeliverTheMessage) {
  asio::io_context io;
  ipc::Limits limits;
  limits.per_task.names = 4;
  ipc::Core core(limits);
  RecordingSink sink;
  Driver driver(io, core, sink);
  constexpr ipc::TaskId kReceiver = 1, kSender = 2;
  ASSERT_EQ(driver.attach(kReceiver, {100, 1000, 1000}), Status::kSuccess);
  ASSERT_EQ(driver.attach(kSender, {200, 1001, 1001}), Status::kSuccess);
  uint64_t id = 1;
  auto call = [&](ipc::TaskId task, RequestBody body) {
    DecodedRequest r;
    r.id = id++;
    r.body = std::move(body);
    driver.handle(task, std::move(r), {});
    auto got = sink.take(task);
    EXPECT_EQ(got.size(), 1u);
    return got.empty() ? Recorded{} : std::move(got.back());
  };
  const ipc::Name inbox = call(kReceiver, req::BootstrapCheckIn{"com.test.full"}).name;
  const ipc::Name to_inbox = call(kSender, req::BootstrapLookUp{"com.test.full", 0}).name;
  const ipc::Name mine = call(kSender, req::Allocate{ipc::Right::kReceive}).name;
  ASSERT_NE(inbox, 0u);
  ASSERT_NE(to_inbox, 0u);
  // Fill the receiver's names (the registry's right shares the inbox's).
  while (call(kReceiver, req::Allocate{ipc::Right::kDeadName}).status == Status::kSuccess) {
  }
  auto request = [&](bool with_reply) {
    req::Send s;
    s.message.remote = to_inbox;
    s.message.remote_disposition = ipc::Disposition::kCopySend;
    if (with_reply) {
      s.message.local = mine;
      s.message.local_disposition = ipc::Disposition::kMakeSendOnce;
    }
    s.message.id = with_reply ? 31 : 32;
    s.message.body = {'b', 'o', 'd', 'y'};
    s.message.descriptors.push_back(ipc::PortDescIn{mine, ipc::Disposition::kMakeSend});
    return s;
  };

  // Queued first, received at once.
  ASSERT_EQ(call(kSender, request(true)).status, Status::kSuccess);
  req::Receive rcv;
  rcv.options.name = inbox;
  rcv.options.timeout_ms = 0;
  Recorded r = call(kReceiver, rcv);
  EXPECT_EQ(r.status, Status::kRcvHeaderError);
  EXPECT_EQ(r.limit, "names");  // the quota that kept the rights from being named
  ASSERT_EQ(r.which, wire::Reply::MESSAGE);
  EXPECT_EQ(r.msg_id, 31);
  EXPECT_EQ(r.body, "body");
  EXPECT_EQ(r.remote, 0u);
  EXPECT_EQ(r.port_names, std::vector<uint32_t>{0u});

  // A receive that was waiting when the message came.
  rcv.options.timeout_ms = -1;
  DecodedRequest waiting;
  waiting.id = 100;
  waiting.body = rcv;
  driver.handle(kReceiver, std::move(waiting), {});
  EXPECT_TRUE(sink.take(kReceiver).empty());
  ASSERT_EQ(call(kSender, request(false)).status, Status::kSuccess);
  auto got = sink.take(kReceiver);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 100u);
  EXPECT_EQ(got[0].status, Status::kRcvBodyError);
  EXPECT_EQ(got[0].limit, "names");
  ASSERT_EQ(got[0].which, wire::Reply::MESSAGE);
  EXPECT_EQ(got[0].msg_id, 32);
  EXPECT_EQ(got[0].body, "body");
  EXPECT_EQ(got[0].port_names, std::vector<uint32_t>{0u});
}

// A sendBatch of three into a queue with room for one: the first is
// queued, two wait; the batch is answered once both have their outcomes.
req::SendBatch batch_to(ipc::Name port, int n, int64_t timeout_ms) {
  req::SendBatch b;
  for (int i = 0; i < n; ++i) {
    ipc::MessageIn m;
    m.remote = port;
    m.remote_disposition = ipc::Disposition::kMakeSend;
    m.id = i;
    b.messages.push_back(std::move(m));
    b.refusals.push_back({});
    b.fd_counts.push_back(0);
  }
  b.options.timeout_ms = timeout_ms;
  return b;
}

TEST_F(DriverTest, ASendBatchAnswersWhenItsLastParkedMessageCompletes) {
  const ipc::Name port = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{port, 1}).status, Status::kSuccess);
  handle(kA, 2, batch_to(port, 3, -1));
  EXPECT_TRUE(sink_.take(kA).empty());
  EXPECT_EQ(driver_.parked_count(), 1u);  // the batch, once
  EXPECT_EQ(driver_.batch_count(), 1u);
  // A duplicate id is refused while the batch waits.
  EXPECT_EQ(call(kA, 2, receive_on(port, 0)).status, Status::kInvalidArgument);
  for (int32_t want = 0; want < 3; ++want) {
    handle(kA, 10 + want, receive_on(port, 0));
    auto got = sink_.take(kA);
    ASSERT_GE(got.size(), 1u);
    EXPECT_EQ(got[0].msg_id, want);
    if (want != 1) {
      EXPECT_EQ(got.size(), 1u);
      continue;
    }
    // Taking message 1 lets the last waiting one in: the batch answers.
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].id, 2u);
    EXPECT_EQ(got[1].which, wire::Reply::SEND_STATUSES);
    EXPECT_EQ(got[1].statuses,
              (std::vector<Status>{Status::kSuccess, Status::kSuccess, Status::kSuccess}));
    EXPECT_EQ(got[1].status, Status::kSuccess);
    EXPECT_TRUE(got[1].limit.empty());  // no message was refused by a limit
  }
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.batch_count(), 0u);
}

TEST_F(DriverTest, CancellingASendBatchInterruptsTheWaitingMessageAndTheRest) {
  const ipc::Name port = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{port, 1}).status, Status::kSuccess);
  handle(kA, 2, batch_to(port, 3, 60000));
  EXPECT_EQ(driver_.timer_count(), 1u);  // message 1 waits; message 2 is held behind it
  handle(kA, 3, req::Cancel{2});
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, 2u);
  EXPECT_EQ(got[0].statuses, (std::vector<Status>{Status::kSuccess, Status::kSendInterrupted,
                                                  Status::kSendInterrupted}));
  EXPECT_EQ(got[1].id, 3u);
  EXPECT_EQ(got[1].status, Status::kSuccess);
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.batch_count(), 0u);
  EXPECT_EQ(driver_.timer_count(), 0u);
  EXPECT_EQ(call(kA, 4, receive_on(port, 0)).msg_id, 0);
  EXPECT_EQ(call(kA, 5, receive_on(port, 0)).status, Status::kRcvTimedOut);
  // Three sent: one received, two refused (interrupted), none left over.
  const auto& counters = core_.impl().counters();
  EXPECT_EQ(counters.messages_sent, 3u);
  EXPECT_EQ(counters.messages_received, 1u);
  EXPECT_EQ(counters.messages_refused, 2u);
  EXPECT_EQ(counters.messages_in_flight, 0u);
  EXPECT_EQ(queued_charge(kA), 0u);
}

TEST_F(DriverTest, DetachingATaskWithAParkedSendBatchForgetsIt) {
  const ipc::Name port = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{port, 1}).status, Status::kSuccess);
  handle(kA, 2, batch_to(port, 4, 60000));
  EXPECT_EQ(driver_.batch_count(), 1u);
  // Message 0 queued, 1 waiting, 2 and 3 held: all four charged.
  EXPECT_EQ(queued_charge(kA), 4u);
  EXPECT_EQ(core_.impl().counters().messages_sent, 2u);  // the held two are not sent yet
  driver_.detach(kA);
  EXPECT_EQ(driver_.parked_count(), 0u);
  EXPECT_EQ(driver_.batch_count(), 0u);
  EXPECT_EQ(driver_.timer_count(), 0u);
  EXPECT_TRUE(sink_.take(kA).empty());
  // Four sent; the queued one died with its port, the other three with
  // their sender.
  const auto& counters = core_.impl().counters();
  EXPECT_EQ(counters.messages_sent, 4u);
  EXPECT_EQ(counters.messages_destroyed, 4u);
  EXPECT_EQ(counters.destroyed_port_died, 1u);
  EXPECT_EQ(counters.destroyed_sender_died, 3u);
  EXPECT_EQ(counters.messages_in_flight, 0u);
}

// A batch's timeout bounds the whole batch: once the waiting message timed
// out, the rest are tried without waiting.
TEST_F(DriverTest, ASendBatchTimeoutCountsFromTheBatchsArrival) {
  const ipc::Name port = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{port, 1}).status, Status::kSuccess);
  handle(kA, 2, batch_to(port, 4, 20));
  EXPECT_EQ(driver_.timer_count(), 1u);
  io_.restart();
  ASSERT_EQ(io_.run_one_for(std::chrono::seconds(10)), 1u);  // message 1's timer, only
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 2u);
  EXPECT_EQ(got[0].statuses, (std::vector<Status>{Status::kSuccess, Status::kSendTimedOut,
                                                  Status::kSendTimedOut, Status::kSendTimedOut}));
  EXPECT_EQ(driver_.timer_count(), 0u);
  EXPECT_EQ(driver_.batch_count(), 0u);
  EXPECT_EQ(queued_charge(kA), 1u);  // message 0, still queued
  EXPECT_EQ(core_.impl().counters().messages_refused, 3u);
}

// The batch's messages go one after another, as a thread would send them: a
// message to another port waits behind the one that waits for room.
TEST_F(DriverTest, ASendBatchMessageWaitsBehindTheOneBeforeIt) {
  const ipc::Name full = allocate(kA);
  const ipc::Name roomy = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{full, 1}).status, Status::kSuccess);
  req::SendBatch b = batch_to(full, 3, -1);
  b.messages[2].remote = roomy;
  handle(kA, 2, std::move(b));
  EXPECT_TRUE(sink_.take(kA).empty());
  EXPECT_EQ(call(kA, 3, receive_on(roomy, 0)).status, Status::kRcvTimedOut);
  // Taking message 0 lets message 1 in, and message 2 follows at once.
  handle(kA, 4, receive_on(full, 0));
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].msg_id, 0);
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_EQ(got[1].statuses,
            (std::vector<Status>{Status::kSuccess, Status::kSuccess, Status::kSuccess}));
  EXPECT_EQ(call(kA, 5, receive_on(roomy, 0)).msg_id, 2);
  EXPECT_EQ(call(kA, 6, receive_on(full, 0)).msg_id, 1);
}

// A held message the core refuses when its turn comes gives its hold back.
TEST_F(DriverTest, AHeldBatchMessageRefusedWhenItsTurnComesGivesItsChargeBack) {
  const ipc::Name port = allocate(kA);
  ASSERT_EQ(call(kA, 1, req::SetAttributes{port, 1}).status, Status::kSuccess);
  req::SendBatch b = batch_to(port, 4, -1);
  b.messages[2].remote = port + 0x100;  // no such name
  handle(kA, 2, std::move(b));
  EXPECT_EQ(queued_charge(kA), 4u);    // 0 queued, 1 waiting, 2 and 3 held
  handle(kA, 3, receive_on(port, 0));  // 1 enters; 2 is refused; 3 waits
  auto got = sink_.take(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg_id, 0);
  EXPECT_EQ(queued_charge(kA), 2u);
  handle(kA, 4, receive_on(port, 0));  // 3 enters: the batch answers
  got = sink_.take(kA);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].msg_id, 1);
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_EQ(got[1].statuses, (std::vector<Status>{Status::kSuccess, Status::kSuccess,
                                                  Status::kSendInvalidDest, Status::kSuccess}));
  EXPECT_EQ(call(kA, 5, receive_on(port, 0)).msg_id, 3);
  EXPECT_EQ(queued_charge(kA), 0u);
}

// Held messages are charged as their sends will be: one that does not fit
// the sender's quota is refused, as its send would have been.
TEST(DriverLimits, HeldBatchMessagesAreChargedAndRefusedPastTheQuota) {
  ipc::Limits limits;
  limits.per_task.queued_messages = 3;
  LimitedDriver d(limits);
  RecordingSink& sink = d.sink;
  ipc::Core& core = d.core;
  const auto handle = [&](RequestBody body) { d.handle(std::move(body)); };
  handle(req::Allocate{ipc::Right::kReceive});
  const ipc::Name port = sink.take(1).at(0).name;
  handle(req::SetAttributes{port, 1});
  ASSERT_EQ(sink.take(1).at(0).status, Status::kSuccess);
  handle(batch_to(port, 5, -1));  // request 3
  EXPECT_TRUE(sink.take(1).empty());
  const uint64_t* used = core.impl().find_task(1)->account->used.find(ipc::Limit::kQueuedMessages);
  EXPECT_EQ(*used, 3u);  // message 0 queued, 1 waiting, 2 held
  for (int32_t want = 0; want < 3; ++want) {
    req::Receive rcv;
    rcv.options.name = port;
    rcv.options.timeout_ms = 0;
    handle(rcv);
    auto got = sink.take(1);
    ASSERT_GE(got.size(), 1u);
    EXPECT_EQ(got[0].msg_id, want);
    if (want < 1) continue;
    if (want == 1) {
      ASSERT_EQ(got.size(), 2u);  // message 2 entered: the batch answers
      EXPECT_EQ(got[1].id, 3u);
      EXPECT_EQ(got[1].statuses,
                (std::vector<Status>{Status::kSuccess, Status::kSuccess, Status::kSuccess,
                                     Status::kSendNoBuffer, Status::kSendNoBuffer}));
      EXPECT_EQ(got[1].status, Status::kSuccess);
      EXPECT_EQ(got[1].limit, "queued_messages");  // what refused the held two
    }
  }
  EXPECT_EQ(*used, 0u);
  EXPECT_EQ(core.impl().counters().messages_sent, 5u);
  EXPECT_EQ(core.impl().counters().messages_refused, 2u);
  EXPECT_EQ(core.impl().counters().messages_received, 3u);
}

// A batch's answer names the limit that refused the last of its messages a
// limit refused: here the core's quota at send, after a message the codec
// refused for its size; a later message that goes does not clear it.
TEST(DriverLimits, ASendBatchNamesTheLimitOfItsLastMessageALimitRefused) {
  ipc::Limits limits;
  limits.per_task.queued_messages = 2;
  LimitedDriver d(limits);
  RecordingSink& sink = d.sink;
  d.handle(req::Allocate{ipc::Right::kReceive});
  const ipc::Name full = sink.take(1).at(0).name;
  d.handle(req::Allocate{ipc::Right::kReceive});
  const ipc::Name other = sink.take(1).at(0).name;

  // 0 queued, 1 refused by the codec (message_bytes), 2 queued, 3 over the
  // queued-messages quota.
  req::SendBatch b = batch_to(full, 4, 0);
  b.refusals[1] = Refusal{Status::kSendTooLarge, ipc::Limit::kMessageBytes, "too large"};
  d.handle(std::move(b));  // request 3
  auto got = sink.take(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 3u);
  EXPECT_EQ(got[0].status, Status::kSuccess);
  EXPECT_EQ(got[0].statuses, (std::vector<Status>{Status::kSuccess, Status::kSendTooLarge,
                                                  Status::kSuccess, Status::kSendNoBuffer}));
  EXPECT_EQ(got[0].limit, "queued_messages");

  // Only the codec's refusal: it is the last one a limit made, though the
  // message after it goes (to another port; the quota has room for none, so
  // take the two queued first).
  for (int i = 0; i < 2; ++i) {
    req::Receive rcv;
    rcv.options.name = full;
    rcv.options.timeout_ms = 0;
    d.handle(rcv);
    ASSERT_EQ(sink.take(1).at(0).status, Status::kSuccess);
  }
  req::SendBatch c = batch_to(other, 2, 0);
  c.refusals[0] = Refusal{Status::kSendTooLarge, ipc::Limit::kMessageBytes, "too large"};
  d.handle(std::move(c));
  got = sink.take(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].statuses, (std::vector<Status>{Status::kSendTooLarge, Status::kSuccess}));
  EXPECT_EQ(got[0].limit, "message_bytes");
}

}  // namespace
}  // namespace portd::server
