// The baselines: the same work done with raw sockets and memfds, no broker.
// Each runs its roles in helper processes and returns a JSON report.
//
//   raw ping-pong   A and B on one socketpair; A writes a message, B writes it
//                   back. The cost of two processes talking directly.
//   raw relay       A -> R -> B and back; R is a single-threaded epoll loop.
//                   The floor any broker sits on. Two shapes: `batched` reads
//                   what is there (up to 256 KiB) and writes it on; naive
//                   reads exactly one message and writes it (one message per
//                   read and per write, the shape of a naive broker).
//   raw memfd       a fresh memfd filled by the sender (fallocate,
//                   MAP_POPULATE, every byte written), passed with SCM_RIGHTS,
//                   mapped by the receiver, every page read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tools/portbench/bench.h"

namespace portbench::raw {

// Round trips of `size` bytes: {"us": [per round trip]}.
Json pingpong(size_t size, size_t iters);
Json relay_rtt(size_t size, size_t iters);

// `senders` processes each write `per_sender` messages of `size` bytes
// through a relay to one receiver: {"messages", "seconds", "received",
// "bytes_checked", "order_ok"}. Batched: senders write 64 messages per write,
// the relay and receiver move up to 256 KiB per call.
Json relay_throughput(size_t senders, size_t per_sender, size_t size, bool batched);

// `transfers` memfds of `size` bytes: {"ms": [per transfer], "bytes_checked"}.
Json memfd_transfer(size_t size, size_t transfers);

}  // namespace portbench::raw
