// The portd side of each scenario: the same work as the baselines (raw.h),
// through a live daemon with libportd. Every role is a helper process with a
// Task of its own; each function returns the report of the measuring role.
#pragma once

#include <cstddef>
#include <string>

#include "tools/portbench/bench.h"

namespace portbench::runs {

// RPC round trips: a client rpc()s `size`-byte requests (send-then-receive
// with a MAKE_SEND_ONCE reply right) to a server that answers each with the
// same bytes through send_receive (reply, then receive the next request).
// {"us": [...], "bytes_checked"}.
Json rpc(const std::string& socket, size_t size, size_t iters);

// One-way throughput: `senders` processes send `per_sender` messages of
// `size` bytes to one port (or, with `port_set`, each to its own member of
// one port set) of a receiver; `batch` requests in flight per call
// (Task::send_batch, Task::receive_batch; 1: send and receive). With
// `pipelined`, the tasks speak protocol version 1, so that a batch is n
// pipelined send or receive requests rather than one batch request. With
// `receive_max` (not 0) the receiver takes up to that many per call instead
// of `batch` (a receiver that drains what is queued).
// {"messages", "sent", "received", "bytes_checked", "order_ok", "seconds"}.
Json oneway(const std::string& socket, size_t senders, size_t per_sender, size_t size,
            bool port_set, size_t batch, bool pipelined = false, size_t receive_max = 0);

// Out-of-line transfer in `mode` ("copy", "move" or "volatile") of `size`
// bytes, `transfers` times; the receiver reads every page before the time is
// taken. {"ms": [...], "bytes_checked"}.
Json ool(const std::string& socket, const std::string& mode, size_t size, size_t transfers);

// Scale: per-operation cost (a 64-byte send to a random port of the task's,
// then its receive) with `small_ports` ports and no other task, then with
// `ports` ports and `tasks` more connected tasks; the daemon's memory per
// port and per task from its VmRSS (first round). `ops` operations per
// series in all, over `rounds` rounds of small then large (then back to
// small: the added ports destroyed, the tasks disconnected).
Json scale(const std::string& socket, size_t small_ports, size_t ports, size_t tasks, size_t ops,
           size_t rounds);

// Isolation: rpc() round trips of 64 bytes quiet, then beside a process
// whose two threads only burn CPU (the control: what the machine's sharing
// costs), then beside a flooding client (many ports with full queues, two
// threads sending 1 MiB frames and refused sends). One round; the scenario
// alternates several. When pinned (set_pin_cpu), the burner and the flooder
// run on noise_cpu(): they compete with the victim for the daemon, not for
// the victim's CPU.
Json isolation(const std::string& socket, size_t iters, size_t flood_ports);
// The CPU the noise makers of isolation() run on: the one after the pinned
// CPU (the same one on a machine of one CPU); -1 when not pinned.
int noise_cpu();

}  // namespace portbench::runs
