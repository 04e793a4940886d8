// The fuzz harnesses: what one fuzz input does, and what must hold after it.
//
// Both are plain functions over bytes, so the same code runs three ways: as
// libFuzzer targets (frame_fuzz.cc, request_fuzz.cc, built with clang in the
// fuzzing build, tests/fuzz/CMakeLists.txt), as a replay of the committed
// corpus in the ordinary test suite (corpus_test.cc, any compiler), and from
// the corpus generator (make_corpus.cc), which checks its own seeds.
//
// Each returns an empty string when every check held, else a description of
// the first one that failed. A crash, a sanitizer report or a hang is a
// failure too, found by whoever runs the harness.
//
// fuzz_frames: the stream framing of proto/frame.h over a real socket pair.
//   The input is a flags byte, then records: a tag byte (its low 3 bits pick
//   how many fds travel with the record: 0, 0, 0, 1, 2, 3, 64 or 253), a
//   little-endian u16 length and that many bytes (fewer at the end of the
//   input). Flags bit 0 selects tight limits (kTightFrameLimits) instead of
//   the defaults; bit 1 feeds the bytes with FrameReader::feed() instead of
//   the socket (fds are then not sent). Each record is written with its fds
//   in one sendmsg and read with read_from() as the daemon reads, and every
//   complete frame is handled as a connection handles it: its Request root is
//   traversed and its declared fds are taken. Checked: every verdict of the
//   reader (frame, need more, error) against an independent reading of the
//   segment table; buffered bytes and pending fds within their limits; every
//   fd accounted for; every accepted frame copied, written with its fds by a
//   FrameWriter and read back equal; no fd left open afterwards.
//
// fuzz_requests: the daemon's request path without sockets. The input is a
//   stream of request frames as a client writes them. A small world is set
//   up first (RequestWorld): four tasks with rights, a bootstrap name, a port
//   set and a queued message, under small limits so that every limit can be
//   reached. Each frame goes through the FrameReader, the codec, the driver
//   (or the introspector) and the core, as Connection::on_frame sends it;
//   the task is chosen by the request id (id & 3), and a frame the codec
//   cannot read is a violation that disconnects that task (a fresh task takes
//   its slot). The fds a send declares are made to fit its descriptors
//   (sealed memfds, pipes for release signals) unless bit k of the id's top
//   byte asks for fd k to be of the wrong kind. Checked after every frame:
//   the core's invariants (CoreImpl::check_invariants); every reply
//   well-formed, for a live task, with the fds it declares and answering a
//   request that task made; and "consumed if and only if it succeeded": a
//   request answered at once with an error left its task's name space (and
//   the ports it receives on) exactly as it was. After the input every task disconnects, and the
//   core must be empty (no task, port, port set, message, name, parked
//   request, account), the driver must hold no attachment, timer or parked
//   request, and no fd may be left open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/ipc/types.h"
#include "portd/proto/frame.h"

namespace portd::fuzz {

std::string fuzz_frames(const uint8_t* data, size_t size);
std::string fuzz_requests(const uint8_t* data, size_t size);

// fuzz_frames' limits when flags bit 0 is set: small enough that inputs of a
// few hundred bytes reach each of them.
inline constexpr proto::FrameLimits kTightFrameLimits{
    .max_frame_bytes = 4096,
    .max_segments = 4,
    .traversal_limit_words = 256,
    .nesting_limit = 8,
    .max_fds_per_frame = 4,
    .max_pending_fds = 8,
};

// The world fuzz_requests starts from: the names each task holds, for the
// corpus generator (the names are the same in every run).
//   task 1 (slot 0, uid 1000): checked in "fuzz.service" (receive right
//     `service0`); a receive right `port0` with a no-senders request whose
//     send-once right was made from `port0` itself.
//   task 2 (slot 1, uid 1000): a send right `service1` to the service, with
//     a dead-name request through `port1`; a receive right `port1`, member
//     of its port set `set1`.
//   task 3 (slot 2, uid 1001): a send right `service2` to the service; a
//     receive right `port2`; it sent "hello" to the service with a send-once
//     reply right made from `port2` (the message is queued there).
//   task 4 (slot 3, uid 0, root): a dead name `dead3`.
struct RequestWorld {
  static constexpr const char* kService = "fuzz.service";
  ipc::Name service0 = ipc::kNameNull;
  ipc::Name port0 = ipc::kNameNull;
  ipc::Name service1 = ipc::kNameNull;
  ipc::Name port1 = ipc::kNameNull;
  ipc::Name set1 = ipc::kNameNull;
  ipc::Name service2 = ipc::kNameNull;
  ipc::Name port2 = ipc::kNameNull;
  ipc::Name dead3 = ipc::kNameNull;
};

// Sets the world up on a scratch daemon state and returns its names.
RequestWorld request_world();

// Entries in /proc/self/fd: the harnesses' leak check.
int open_fd_count();

// The harnesses' verdict after a run: `error` if it has one, else a leak
// report if the fd count is no longer `fds_before`, else empty.
std::string with_fd_check(std::string error, int fds_before);

}  // namespace portd::fuzz
