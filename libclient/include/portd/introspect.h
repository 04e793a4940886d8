// portd::Introspection: a read-only look inside the daemon, for portctl and
// tools like it.
//
// The daemon answers in JSON text whose schema docs/portctl.md documents
// (it is what `portctl --json` prints). Listings come a page at a time, each
// page a JSON array; fetch() gets every page and joins them. Nothing here
// changes any state in the daemon. What a task sees depends on its uid: root
// and the daemon's own uid see everything, any other uid the tasks of its
// own uid and what they hold (docs/portctl.md, "Access").
//
// Monitoring: monitor_start() subscribes this task's connection to message
// events; monitor_poll() takes the events the daemon buffered (one JSON
// object each), waiting for some if there are none. The daemon keeps a
// bounded buffer per client: when it overflows, events are dropped and a
// {"event": "lost", "lost": N} object stands where they were.
//
// An Introspection shares its Task; the task may be used for anything else
// meanwhile. Not a synchronized object: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portd/export.h"
#include "portd/result.h"
#include "portd/status.h"

namespace portd {

class Task;

enum class IntrospectWhat : uint8_t {
  kStatus,  // the daemon: one object
  kTasks,   // tasks, by id (filters: target = a task id, pid)
  kPorts,   // active ports, by id
  kPort,    // one port in detail (target = its id): one object
  kRights,  // one task's name space (target = the task id), by name
  kSets,    // port sets, by id
  kNames,   // the bootstrap registry, by name
  kUids,    // per-uid accounts, by uid
};

struct IntrospectQuery {
  IntrospectWhat what = IntrospectWhat::kStatus;
  uint64_t target = 0;
  uint32_t pid = 0;
  std::string cursor;  // empty: the first page; then the previous page's next
  uint32_t limit = 0;  // items per page; 0: the daemon's default
};

struct IntrospectPage {
  std::string json;  // an object, or this page's items as a JSON array
  std::string next;  // empty when this page is the last
};

struct MonitorFilter {
  uint64_t port = 0;    // only events on this port id
  std::string name;     // only events on the port of this bootstrap name
  uint64_t task = 0;    // only events sent by this task or to a port it receives on
  uint32_t buffer = 0;  // events the daemon keeps between polls; 0: its default
};

class PORTD_API Introspection {
 public:
  explicit Introspection(std::shared_ptr<Task> task);

  // One page. KERN_NOT_FOUND: no such port or task, or one the caller may
  // not see; KERN_INVALID_ARGUMENT: a cursor the daemon did not give;
  // KERN_NOT_SUPPORTED: a daemon without introspection.
  Result<IntrospectPage> page(const IntrospectQuery& query);
  // Every page of a listing joined into one JSON array (or the object, for
  // kStatus and kPort).
  Result<std::string> fetch(IntrospectQuery query);

  // Subscribes (replacing an earlier subscription). KERN_NOT_FOUND: the port
  // or task is unknown or not visible; BOOTSTRAP_UNKNOWN_SERVICE: no such
  // name.
  Status monitor_start(const MonitorFilter& filter);
  // The events buffered since the last poll, oldest first; with none, waits
  // up to `wait` (nullopt: as long as it takes) and returns what came, maybe
  // nothing. `max`: most events in one answer (0: the daemon's default).
  Result<std::vector<std::string>> monitor_poll(std::optional<std::chrono::milliseconds> wait,
                                                uint32_t max = 0);
  Status monitor_stop();

  Task& task() { return *task_; }

 private:
  std::shared_ptr<Task> task_;
};

}  // namespace portd
