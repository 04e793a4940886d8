// Introspection: what portctl sees of a live daemon, as JSON.
//
// Two halves:
//  * introspect() is pure: it reads the core's state (read-only views in
//    core_impl.h) and the shell's knowledge of each task (TaskDirectory),
//    and answers one page of a listing or one object. It never changes
//    anything, not even the lazy dead-name conversion the core does when a
//    task looks at its own names. Each page does a bounded amount of work
//    (kPageMax items, kWorkBudget list nodes and table entries, kPageBytes
//    of JSON), so a listing of 100,000 ports is many short turns of the
//    event loop, with other clients served in between. Pages are stateless:
//    the cursor is the last key answered, so nothing is kept between pages
//    and a listing sees objects created or destroyed meanwhile as a
//    database cursor would (each object at most once, in key order).
//  * Introspector is the shell side: it answers Introspect requests, and
//    keeps monitor subscriptions. While at least one client monitors, it is
//    the core's MessageObserver: each event is turned into one JSON line
//    (once, whoever receives it) and appended to the buffer of every
//    subscription whose filter and access rule it passes. A buffer holds at
//    most `buffer` events and kMonitorBufferBytes bytes; when full, events
//    are dropped and counted, and the client gets a {"event": "lost"} marker
//    where they were. Polls take events out; a poll finding none waits (one
//    per client) until an event comes or its timeout passes.
//
// Access (docs/portctl.md has the whole rule): a viewer whose uid is root or
// the daemon's own sees everything. Any other viewer sees the tasks of its
// uid, the ports whose receive right one of those tasks holds, the port sets
// in their spaces, and the events sent by or to them. Daemon-wide counts
// (status) and the bootstrap registry (which every client may list with
// bootstrap_list anyway) are the same for everyone.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "daemon/ipc/core.h"
#include "daemon/ipc/core_impl.h"
#include "daemon/ipc/monitor.h"
#include "daemon/server/codec.h"

namespace portd::server {

class ReplySink;

// Work one page may do: table entries and list nodes visited.
inline constexpr size_t kWorkBudget = 256 * 1024;
// JSON bytes one page may hold (past this, the page ends after the item
// that crossed it).
inline constexpr size_t kPageBytes = 2u << 20;
// Per monitoring client: bytes of buffered events, and of one poll answer.
inline constexpr size_t kMonitorBufferBytes = 8u << 20;
inline constexpr size_t kMonitorAnswerBytes = 4u << 20;
// Lists inside a port's detail (holders, waiters, queued messages) show at
// most this many entries each; their totals are always given.
inline constexpr size_t kDetailListMax = 256;

// Who is asking.
struct Viewer {
  uint32_t uid = 0;
  bool privileged = false;  // root, or the daemon's own uid
  bool sees(uint32_t owner_uid) const { return privileged || owner_uid == uid; }
};

// What the shell knows of a task that the core does not.
struct TaskDetails {
  std::string command;
  int64_t connected_unix_ms = 0;
};

class TaskDirectory {
 public:
  virtual ~TaskDirectory() = default;
  // False if the task has no connection (it is then shown without them).
  virtual bool describe(ipc::TaskId task, TaskDetails* out) const = 0;
  // Connections of `uid` counted against its limit
  // (ipc::Limits::connections_per_uid).
  virtual uint64_t uid_connections(uint32_t uid) const = 0;
};

// The daemon's side of `status`.
struct DaemonInfo {
  std::string version;
  uint32_t protocol = 0;
  uint32_t pid = 0;
  uint32_t uid = 0;
  std::string socket;
  int64_t started_unix_ms = 0;
  int64_t now_unix_ms = 0;
  size_t monitors = 0;
};

struct Page {
  Status status = Status::kSuccess;
  std::string json;
  std::string next;  // empty: the last page
};

Page introspect(const ipc::CoreImpl& core, const TaskDirectory& directory, const DaemonInfo& info,
                const Viewer& viewer, const req::Introspect& query);

// The JSON line for one event: `seq` numbers every event the daemon
// observed, `time_unix_us` is when.
std::string event_json(const ipc::MessageEvent& event, uint64_t seq, int64_t time_unix_us,
                       const TaskDirectory& directory);

class Introspector : public ipc::MessageObserver {
 public:
  Introspector(asio::io_context& io, ipc::Core& core, ReplySink& sink,
               const TaskDirectory& directory, DaemonInfo info);
  ~Introspector() override;
  Introspector(const Introspector&) = delete;
  Introspector& operator=(const Introspector&) = delete;

  // Answers one request for which is_introspection() holds.
  void handle(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id, RequestBody& body);
  // The task's connection is gone: its subscription goes too.
  void forget(ipc::TaskId task);

  size_t monitors() const { return subscriptions_.size(); }
  // Viewer for a connection's credentials.
  Viewer viewer_for(const ipc::Credentials& creds) const;

  // MessageObserver.
  void on_message_event(const ipc::MessageEvent& event) override;

 private:
  struct Item {
    std::shared_ptr<const std::string> json;  // null: a lost marker
    uint64_t lost = 0;
  };
  struct Subscription {
    Viewer viewer;
    uint64_t port = 0;
    uint64_t task = 0;
    size_t capacity = 0;
    size_t events = 0;  // events in `items` (markers excluded)
    size_t bytes = 0;
    std::deque<Item> items;
    // A poll waiting for events.
    bool polling = false;
    uint64_t poll_id = 0;
    uint32_t poll_max = 0;
    bool answer_posted = false;
    std::unique_ptr<asio::steady_timer> timer;
  };

  void do_introspect(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id,
                     const req::Introspect& r);
  void do_start(ipc::TaskId task, const ipc::Credentials& creds, uint64_t id,
                const req::MonitorStart& r);
  void do_poll(ipc::TaskId task, uint64_t id, const req::MonitorPoll& r);
  void do_stop(ipc::TaskId task, uint64_t id);
  // Answers the subscription's waiting poll with what its buffer holds.
  void answer_poll(ipc::TaskId task, Subscription& s);
  void post_answer(ipc::TaskId task, Subscription& s);
  void reply_status(ipc::TaskId task, uint64_t id, Status status);
  void update_observer();

  asio::io_context& io_;
  ipc::Core& core_;
  ReplySink& sink_;
  const TaskDirectory& directory_;
  DaemonInfo info_;
  std::unordered_map<ipc::TaskId, Subscription> subscriptions_;
  uint64_t event_seq_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace portd::server
