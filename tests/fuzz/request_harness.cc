// fuzz_requests (harness.h): bytes → FrameReader → codec → driver or
// introspector → core, with a few tasks, and the checks after each frame and
// after the input.
#include <capnp/serialize.h>
#include <fcntl.h>
#include <kj/exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <unordered_set>
#include <utility>
#include <variant>

#include "daemon/ipc/core_impl.h"
#include "daemon/server/codec.h"
#include "daemon/server/driver.h"
#include "daemon/server/introspect.h"
#include "tests/fuzz/harness.h"

namespace portd::fuzz {

namespace {

using proto::UniqueFd;
namespace req = server::req;

constexpr size_t kSlots = 4;
// Regions larger than this are given a short memfd (which the driver must
// refuse): the daemon never maps a region, but a fuzz run should not ask the
// kernel for gigabytes either.
constexpr uint64_t kMaxRegionBytes = 1u << 20;
// Bytes handed to the reader at a time, as a connection reads them.
constexpr size_t kFeedChunk = 16 * 1024;

// Small enough that a short input reaches every limit.
ipc::Limits small_limits() {
  ipc::Limits l;
  l.per_task = ipc::Quota{
      .names = 64,
      .ports = 12,
      .port_sets = 3,
      .queued_messages = 24,
      .queued_bytes = 16 * 1024,
      .ool_bytes = 4u << 20,
      .fds_in_flight = 12,
      .send_once_rights = 24,
      .notify_requests = 12,
      .bootstrap_names = 3,
      .parked_requests = 6,
  };
  l.per_uid = ipc::Quota{
      .names = 96,
      .ports = 20,
      .port_sets = 5,
      .queued_messages = 40,
      .queued_bytes = 24 * 1024,
      .ool_bytes = 6u << 20,
      .fds_in_flight = 20,
      .send_once_rights = 40,
      .notify_requests = 20,
      .bootstrap_names = 5,
      .parked_requests = 10,
  };
  l.max_inline_body = 2048;
  l.max_descriptors = 24;
  l.max_batch = 8;
  return l;
}

const char* body_name(const server::RequestBody& body) {
  static constexpr const char* kNames[] = {"refused",
                                           "hello",
                                           "cancel",
                                           "allocate",
                                           "deallocate",
                                           "modRefs",
                                           "destroy",
                                           "insertRight",
                                           "extractRight",
                                           "getRefs",
                                           "type",
                                           "names",
                                           "getAttributes",
                                           "setAttributes",
                                           "moveMember",
                                           "requestNotification",
                                           "send",
                                           "receive",
                                           "sendReceive",
                                           "bootstrapCheckIn",
                                           "bootstrapRegister",
                                           "bootstrapLookUp",
                                           "bootstrapUnregister",
                                           "bootstrapList",
                                           "introspect",
                                           "monitorStart",
                                           "monitorPoll",
                                           "monitorStop",
                                           "sendBatch",
                                           "receiveBatch"};
  static_assert(std::size(kNames) == std::variant_size_v<server::RequestBody>);
  return kNames[body.index()];
}

constexpr ipc::Credentials kCreds[kSlots] = {
    {100, 1000, 1000}, {101, 1000, 1000}, {102, 1001, 1001}, {1, 0, 0}};

UniqueFd region_fd(uint64_t size, bool is_volatile) {
  UniqueFd fd(::memfd_create("fuzz-region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fd;
  if (::ftruncate(fd.get(), static_cast<off_t>(size <= kMaxRegionBytes ? size : 1)) != 0)
    return UniqueFd{};
  const int seals =
      is_volatile ? F_SEAL_SHRINK : F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  ::fcntl(fd.get(), F_ADD_SEALS, seals);
  return fd;
}

// One end of a fresh pipe; the other closes at once.
UniqueFd pipe_end(bool write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return UniqueFd{};
  UniqueFd r(p[0]), w(p[1]);
  return write_end ? std::move(w) : std::move(r);
}

// One entry of a name space, as the task would see it (a right to a dead
// port is a dead name), with what a failed operation must not change about
// a port it receives on either.
struct EntryView {
  uint32_t index = 0, gen = 0, bits = 0, urefs = 0;
  ipc::PortId port = 0;
  uint64_t pset = 0;
  bool dn_request = false;
  // Receive rights: the port's state.
  uint32_t qlimit = 0, mscount = 0, queued = 0;
  uint64_t member_of = 0, seqno = 0;
  bool ns_request = false, pd_request = false;

  bool operator==(const EntryView&) const = default;
};

std::string describe_view(const std::vector<EntryView>& v) {
  std::string out;
  for (const auto& e : v) {
    char line[200];
    std::snprintf(line, sizeof line,
                  "  [%u gen %u] bits %#x urefs %u port %llu set %llu%s | qlimit %u mscount %u "
                  "queued %u member of %llu seqno %llu%s%s\n",
                  e.index, e.gen, e.bits, e.urefs, static_cast<unsigned long long>(e.port),
                  static_cast<unsigned long long>(e.pset), e.dn_request ? " dn-request" : "",
                  e.qlimit, e.mscount, e.queued, static_cast<unsigned long long>(e.member_of),
                  static_cast<unsigned long long>(e.seqno), e.ns_request ? " ns-request" : "",
                  e.pd_request ? " pd-request" : "");
    out += line;
  }
  return out;
}

// Failures after which the caller's space may legitimately differ: a receive
// that destroyed a message too large for its buffer (the rights in it were
// released), and receives that delivered their message with some names
// MACH_PORT_NULL.
bool may_change_space(Status s) {
  return s == Status::kRcvTooLarge || s == Status::kRcvHeaderError || s == Status::kRcvBodyError;
}

struct Slot {
  ipc::TaskId task = 0;
  bool live = false;
  std::unordered_set<uint64_t> ids;  // request ids this task sent
  uint64_t requests = 0;
  uint64_t replies = 0;
};

class Harness final : public server::ReplySink, public server::TaskDirectory {
 public:
  Harness()
      : limits_(small_limits()),
        core_(limits_),
        driver_(io_, core_, *this),
        introspector_(io_, core_, *this, *this,
                      server::DaemonInfo{"fuzz", 1, 1, 0, "/fuzz.sock", 0, 0, 0}) {}

  ~Harness() noexcept override {
    for (size_t i = 0; i < kSlots; ++i)
      if (slots_[i].live) disconnect(i);
  }

  // Connects the four tasks and gives them the world of harness.h.
  RequestWorld set_up() {
    RequestWorld w;
    for (size_t i = 0; i < kSlots; ++i) connect(i);
    w.service0 = call(0, req::BootstrapCheckIn{RequestWorld::kService});
    w.port0 = call(0, req::Allocate{ipc::Right::kReceive});
    call(0, req::RequestNotification{w.port0, ipc::Notify::kNoSenders, 0, w.port0,
                                     ipc::Disposition::kMakeSendOnce});
    w.service1 = call(1, req::BootstrapLookUp{RequestWorld::kService, 0});
    w.port1 = call(1, req::Allocate{ipc::Right::kReceive});
    w.set1 = call(1, req::Allocate{ipc::Right::kPortSet});
    call(1, req::MoveMember{w.port1, w.set1});
    call(1, req::RequestNotification{w.service1, ipc::Notify::kDeadName, 0, w.port1,
                                     ipc::Disposition::kMakeSendOnce});
    w.service2 = call(2, req::BootstrapLookUp{RequestWorld::kService, 0});
    w.port2 = call(2, req::Allocate{ipc::Right::kReceive});
    req::Send hello;
    hello.message.remote = w.service2;
    hello.message.remote_disposition = ipc::Disposition::kCopySend;
    hello.message.local = w.port2;
    hello.message.local_disposition = ipc::Disposition::kMakeSendOnce;
    hello.message.id = 7;
    hello.message.body = {'h', 'e', 'l', 'l', 'o'};
    hello.options.timeout_ms = 0;
    call(2, std::move(hello));
    w.dead3 = call(3, req::Allocate{ipc::Right::kDeadName});
    if (error_.empty()) check_core("after set-up");
    return w;
  }

  // Reads `data` as one connection's byte stream.
  void feed(const uint8_t* data, size_t size) {
    for (size_t pos = 0; pos < size && !stream_dead_ && error_.empty();) {
      const size_t n = std::min(size - pos, kFeedChunk);
      // Frames are taken out after every chunk, so what is buffered is
      // always less than one frame: the reader's ceiling is never reached.
      if (!reader_.feed(data + pos, n)) fail("feed refused bytes below the buffer ceiling");
      pos += n;
      process_frames();
    }
  }

  // Every task disconnects; the daemon's state must then be empty.
  std::string finish() {
    if (!error_.empty()) return error_;
    // Timeouts of a millisecond or two expire here (longer ones are cut
    // short by the disconnects below): the expiry path gets its turn.
    if (driver_.timer_count() != 0 || introspector_.monitors() != 0) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(3));
      check_core("after timers");
    }
    check_replies();
    for (size_t i = 0; i < kSlots; ++i)
      if (slots_[i].live) disconnect(i);
    run_ready_handlers();
    if (!error_.empty()) return error_;

    const ipc::CoreImpl& c = core_.impl();
    auto expect_zero = [&](const char* what, uint64_t n) {
      if (n != 0 && error_.empty())
        error_ = std::string("after every task left: ") + what + " = " + std::to_string(n);
    };
    expect_zero("tasks", c.tasks().size());
    expect_zero("active ports", c.ports().size());
    expect_zero("port objects", c.port_objects());
    expect_zero("port sets", c.port_sets().size());
    expect_zero("bootstrap names", c.registry().size());
    expect_zero("queued messages", c.queued_messages());
    expect_zero("queued bytes", c.queued_bytes());
    expect_zero("parked operations", c.parked());
    for (const auto& creds : kCreds)
      expect_zero("uid accounts", c.uid_account(creds.uid) != nullptr ? 1 : 0);
    expect_zero("driver attachments", driver_.attachment_count());
    expect_zero("driver parked requests", driver_.parked_count());
    expect_zero("driver send batches", driver_.batch_count());
    expect_zero("driver timers", driver_.timer_count());
    expect_zero("monitors", introspector_.monitors());
    return error_;
  }

  const std::string& error() const { return error_; }

  // ReplySink: what a connection would write, checked.
  void post_reply(ipc::TaskId task, capnp::MessageBuilder& reply,
                  std::vector<UniqueFd> fds) override {
    Slot* s = live_slot(task);
    if (s == nullptr) return;  // no connection: dropped, fds closed
    auto r = reply.getRoot<wire::Reply>().asReader();
    ++s->replies;
    if (r.getFdCount() != fds.size())
      fail("reply " + std::to_string(r.getId()) + " declares " + std::to_string(r.getFdCount()) +
           " fds and carries " + std::to_string(fds.size()));
    for (const auto& fd : fds)
      if (!fd.valid()) fail("reply carries an invalid fd");
    if (s->ids.count(r.getId()) == 0)
      fail("reply " + std::to_string(r.getId()) + " answers no request of task " +
           std::to_string(task));
    if (s->replies > s->requests)
      fail("more replies than requests for task " + std::to_string(task));
    // What goes on the wire must read back.
    kj::Array<capnp::word> words = capnp::messageToFlatArray(reply);
    capnp::FlatArrayMessageReader back(words);
    back.getRoot<wire::Reply>().totalSize();
    replied_.push_back({task, r.getId(), static_cast<Status>(r.getStatus())});
    last_status_ = static_cast<Status>(r.getStatus());
    last_name_ = r.which() == wire::Reply::NAME ? r.getName() : ipc::kNameNull;
    if (trace_)
      std::fprintf(stderr, "  task %llu reply %llu: %s%s%s, %zu fds\n",
                   static_cast<unsigned long long>(task),
                   static_cast<unsigned long long>(r.getId()), status_name(last_status_).data(),
                   r.getLimit().size() != 0 ? " limit " : "", r.getLimit().cStr(), fds.size());
  }

  // TaskDirectory.
  bool describe(ipc::TaskId task, server::TaskDetails* out) const override {
    for (size_t i = 0; i < kSlots; ++i) {
      if (slots_[i].live && slots_[i].task == task) {
        out->command = "fuzz-" + std::to_string(i);
        out->connected_unix_ms = 0;
        return true;
      }
    }
    return false;
  }
  uint64_t uid_connections(uint32_t uid) const override {
    uint64_t n = 0;
    for (size_t i = 0; i < kSlots; ++i)
      if (slots_[i].live && kCreds[i].uid == uid) ++n;
    return n;
  }

 private:
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
  }

  Slot* live_slot(ipc::TaskId task) {
    for (auto& s : slots_)
      if (s.live && s.task == task) return &s;
    return nullptr;
  }

  void connect(size_t i) {
    Slot& s = slots_[i];
    s = Slot{};
    s.task = next_task_++;
    if (driver_.attach(s.task, kCreds[i]) != Status::kSuccess) {
      fail("attach refused for task " + std::to_string(s.task));
      return;
    }
    s.live = true;
  }

  // The connection is gone, as Server::connection_closed has it.
  void disconnect(size_t i) {
    Slot& s = slots_[i];
    s.live = false;
    introspector_.forget(s.task);
    driver_.detach(s.task);
  }

  void run_ready_handlers() {
    io_.restart();
    io_.poll();
  }

  // A set-up request: handled at once, its status must be success. Returns
  // the name its reply carries, if any.
  template <typename Body>
  ipc::Name call(size_t i, Body body) {
    Slot& s = slots_[i];
    server::DecodedRequest r;
    r.id = 0x100 + (s.requests << 2) + i;
    r.body = std::move(body);
    s.ids.insert(r.id);
    ++s.requests;
    last_status_ = Status::kInvalidArgument;
    last_name_ = ipc::kNameNull;
    driver_.handle(s.task, std::move(r), {});
    run_ready_handlers();
    if (last_status_ != Status::kSuccess)
      fail("set-up request failed: " + std::string(status_name(last_status_)));
    return last_name_;
  }

  void process_frames() {
    for (;;) {
      switch (reader_.next()) {
        case proto::FrameReader::Next::kNeedMore: return;
        case proto::FrameReader::Next::kError:
          // The connection would close here; so does the stream.
          if (reader_.error().empty()) fail("frame error without a reason");
          stream_dead_ = true;
          return;
        case proto::FrameReader::Next::kFrame:
          on_frame();
          if (!error_.empty()) return;
          break;
      }
    }
  }

  // Connection::on_frame, with the task chosen by the request id and fds
  // made to order.
  void on_frame() {
    server::DecodedRequest request;
    uint64_t raw_id = 0;
    uint16_t fd_count = 0;
    kj::Maybe<kj::Exception> exception = kj::runCatchingExceptions([&] {
      auto root = reader_.frame().getRoot<wire::Request>();
      raw_id = root.getId();
      fd_count = root.getFdCount();
      request = server::decode_request(root, limits_);
    });
    const size_t slot = raw_id & (kSlots - 1);
    bool violation = fd_count > frame_limits_.max_fds_per_frame;  // take_fds would fail
    KJ_IF_MAYBE (e, exception) {
      (void)e;
      violation = true;
    }
    if (trace_)
      std::fprintf(stderr, "task %llu request %llu: %s%s\n",
                   static_cast<unsigned long long>(slots_[slot].task),
                   static_cast<unsigned long long>(raw_id), body_name(request.body),
                   violation ? " (violation)" : "");
    if (violation) {
      // The connection closes and its task dies; a new client takes the slot.
      disconnect(slot);
      run_ready_handlers();
      connect(slot);
      check_core("after a violation");
      return;
    }

    Slot& s = slots_[slot];
    std::vector<UniqueFd> fds = make_fds(request, fd_count, static_cast<uint8_t>(raw_id >> 56));
    s.ids.insert(request.id);
    ++s.requests;
    if (!request.refused() && server::is_introspection(request.body)) {
      introspector_.handle(s.task, kCreds[slot], request.id, request.body);
    } else {
      // Consumed if and only if it succeeded (DESIGN 1): a request that
      // fails at once leaves its task's space exactly as it was. Compared
      // before any timer or other handler runs.
      const std::vector<EntryView> before = space_view(s.task);
      const uint64_t id = request.id;
      const char* kind = body_name(request.body);
      replied_.clear();
      driver_.handle(s.task, std::move(request), std::move(fds));
      for (const auto& r : replied_) {
        if (r.task != s.task || r.id != id || ok(r.status) || may_change_space(r.status) ||
            r.status == Status::kSendWillNotify)
          continue;
        const std::vector<EntryView> after = space_view(s.task);
        if (after != before)
          fail(std::string(kind) + " failed with " + std::string(status_name(r.status)) +
               " but changed task " + std::to_string(s.task) + "'s space. Before:\n" +
               describe_view(before) + "After:\n" + describe_view(after));
      }
    }
    run_ready_handlers();
    check_core("after a request");
  }

  // The fds a frame brings: those its OOL descriptors take, of the right
  // kind unless bit k of `wrong` says otherwise, padded or cut to fd_count.
  static std::vector<UniqueFd> make_fds(const server::DecodedRequest& request, uint16_t fd_count,
                                        uint8_t wrong) {
    std::vector<UniqueFd> fds;
    if (fd_count == 0) return fds;
    const ipc::MessageIn* m = nullptr;
    if (const auto* s = std::get_if<req::Send>(&request.body)) m = &s->message;
    if (const auto* s = std::get_if<req::SendReceive>(&request.body)) m = &s->message;
    auto bad = [&](size_t k) { return k < 8 && ((wrong >> k) & 1) != 0; };
    if (m != nullptr) {
      for (const auto& d : m->descriptors) {
        const auto* ool = std::get_if<ipc::OolIn>(&d);
        if (ool == nullptr) continue;
        const size_t k = fds.size();
        fds.push_back(bad(k) ? pipe_end(true) : region_fd(ool->size, ool->is_volatile));
        if (ool->release_signal) fds.push_back(bad(k + 1) ? region_fd(1, true) : pipe_end(true));
      }
    }
    while (fds.size() < fd_count) fds.push_back(pipe_end(false));
    fds.resize(fd_count);
    return fds;
  }

  std::vector<EntryView> space_view(ipc::TaskId id) const {
    std::vector<EntryView> out;
    const ipc::Task* t = core_.impl().find_task(id);
    if (t == nullptr) return out;
    const auto& table = t->space.table;
    for (uint32_t index = 1; index < table.size(); ++index) {
      const ipc::Entry& e = table[index];
      if (e.bits == 0) continue;
      EntryView v;
      v.index = index;
      v.gen = e.gen;
      v.bits = e.bits;
      v.urefs = e.urefs;
      v.pset = e.pset != nullptr ? e.pset->id : 0;
      v.dn_request = e.request != nullptr;
      if (e.port != nullptr && !e.port->active) {
        // Converted lazily by the core: the same right to the task.
        v.urefs = (e.bits & ipc::kTypeSend) != 0 ? e.urefs : 1;
        v.bits = ipc::kTypeDeadName;
      } else if (e.port != nullptr) {
        v.port = e.port->id;
        if ((e.bits & ipc::kTypeReceive) != 0) {
          const ipc::Port& p = *e.port;
          v.qlimit = p.qlimit;
          v.mscount = p.mscount;
          v.queued = static_cast<uint32_t>(p.queue.size());
          v.member_of = p.pset != nullptr ? p.pset->id : 0;
          v.seqno = p.seqno;
          v.ns_request = p.ns_request.port != nullptr;
          v.pd_request = p.pd_request.port != nullptr;
        }
      }
      out.push_back(v);
    }
    return out;
  }

  void check_core(const char* when) {
    const std::string broken = core_.impl().check_invariants();
    if (!broken.empty()) fail(std::string("core invariants ") + when + ":\n" + broken);
  }

  // Each request has had its one reply, or is parked.
  void check_replies() {
    uint64_t unanswered = 0;
    for (const auto& s : slots_)
      if (s.live) unanswered += s.requests - s.replies;
    const uint64_t parked = driver_.parked_count();
    // A monitor poll may wait in the introspector (one per subscription).
    const uint64_t polls = introspector_.monitors();
    if (unanswered < parked || unanswered > parked + polls)
      fail(std::to_string(unanswered) + " requests unanswered, " + std::to_string(parked) +
           " parked in the driver, " + std::to_string(polls) + " monitors");
  }

  const proto::FrameLimits frame_limits_{};
  const ipc::Limits limits_;
  asio::io_context io_;
  ipc::Core core_;
  server::Driver driver_;
  server::Introspector introspector_;
  proto::FrameReader reader_{frame_limits_};
  Slot slots_[kSlots];
  ipc::TaskId next_task_ = 1;
  std::string error_;
  bool stream_dead_ = false;
  // PORTD_FUZZ_TRACE=1: every request and reply on stderr (for reading
  // what an input does).
  const bool trace_ = std::getenv("PORTD_FUZZ_TRACE") != nullptr;
  struct Replied {
    ipc::TaskId task;
    uint64_t id;
    Status status;
  };
  std::vector<Replied> replied_;  // replies posted while one request is handled
  Status last_status_ = Status::kSuccess;
  ipc::Name last_name_ = ipc::kNameNull;
};

}  // namespace

RequestWorld request_world() {
  Harness h;
  return h.set_up();
}

std::string fuzz_requests(const uint8_t* data, size_t size) {
  const int fds_before = open_fd_count();
  std::string error;
  {
    Harness h;
    h.set_up();
    if (h.error().empty()) h.feed(data, size);
    error = h.finish();
  }
  return with_fd_check(std::move(error), fds_before);
}

}  // namespace portd::fuzz
