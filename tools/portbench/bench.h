// portbench's shared pieces: statistics, helper processes, the start gate,
// message patterns, and the JSON a scenario reports (docs/performance.md
// documents the schema).
//
// Every measured role runs in a process of its own, forked from portbench's
// main process, which only orchestrates: it forks the roles, opens the start
// gate once all of them are ready, and collects what each reports as one JSON
// object through a pipe. The main process never connects a Task, so no fork
// happens with a live connection.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace portbench {

using Json = nlohmann::json;

// ---- time -------------------------------------------------------------------

// CLOCK_MONOTONIC, in nanoseconds: one clock for every process on the
// machine, so a start taken in one process and an end taken in another can
// be subtracted.
uint64_t now_ns();

// ---- statistics ---------------------------------------------------------------

struct Summary {
  size_t samples = 0;
  double median = 0;
  double p90 = 0;
  double p99 = 0;
  double min = 0;
  double mean = 0;
};

// Percentiles by nearest rank; `values` is sorted in place.
Summary summarize(std::vector<double>& values);
Json to_json(const Summary& s, const char* unit);

// ---- helper processes ---------------------------------------------------------

// What every helper process shares with the main one: a start gate and a
// stop flag, in an anonymous shared mapping made before the first fork.
struct Shared {
  std::atomic<uint32_t> ready{0};  // helpers that reached the gate
  std::atomic<uint32_t> go{0};     // opened by the main process
  std::atomic<uint32_t> stop{0};   // background helpers (the flooder) end
};
Shared& shared();
// Resets the gate between runs (main process only, no helper alive).
void reset_shared();

// In a helper: says it is ready and waits (spinning with short sleeps) until
// the main process opens the gate.
void gate_wait();
// In the main process: waits until `n` helpers are at the gate, then opens
// it. False if they did not all arrive within `timeout_ms` (one failed).
bool gate_open(uint32_t n, int timeout_ms = 60000);

// A forked helper. Its function returns a JSON report (an "error" member if
// it failed), which the main process reads back with collect().
struct Helper {
  pid_t pid = -1;
  int report_fd = -1;
};
Helper spawn_helper(const std::function<Json()>& body);
// Every helper forked from now on (and the daemon portbench spawns) runs on
// this CPU only; -1: wherever the scheduler puts it.
void set_pin_cpu(int cpu);
int pin_cpu();
// Pins the calling process as set_pin_cpu() says (no-op for -1).
void apply_pin();
// Reads the helper's report and reaps it. A helper that crashed or wrote no
// report yields {"error": ...}.
Json collect(Helper& helper);

// ---- messages -------------------------------------------------------------------

// A message of `size` bytes (at least 8) from sender `sender`, number `seq`:
// the two numbers, then bytes that depend on both, so that a receiver checks
// every byte.
void fill_message(uint8_t* out, size_t size, uint32_t sender, uint32_t seq);
bool check_message(const uint8_t* in, size_t size, uint32_t* sender, uint32_t* seq);

// Checks the order of messages from several senders: each sender's numbers
// must arrive as 0, 1, 2, ...
class OrderCheck {
 public:
  explicit OrderCheck(size_t senders) : next_(senders, 0) {}
  bool accept(uint32_t sender, uint32_t seq) {
    if (sender >= next_.size() || next_[sender] != seq) return false;
    ++next_[sender];
    return true;
  }

 private:
  std::vector<uint32_t> next_;
};

// ---- pages ----------------------------------------------------------------------

// Writes every page of [data, data + size) with a pattern for `round`; reads
// back one byte per page and returns how many bytes it checked (size) or 0 if
// a page is wrong.
void fill_pages(uint8_t* data, size_t size, uint32_t round);
uint64_t check_pages(const uint8_t* data, size_t size, uint32_t round);

// ---- resources ------------------------------------------------------------------

// Raises this process's soft fd limit to its hard limit.
void raise_fd_limit();
// VmRSS of process `pid` in bytes, or 0 if it cannot be read.
uint64_t rss_bytes(pid_t pid);

// ---- socket I/O (raw baselines) --------------------------------------------------

bool write_all(int fd, const void* data, size_t size);
bool read_all(int fd, void* data, size_t size);

}  // namespace portbench
