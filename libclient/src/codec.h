// The client side of the wire protocol: requests from API types, replies to
// API types.
//
// This is the one place in libportd where untrusted bytes (the daemon's
// replies) become C++ values; Cap'n Proto's exceptions on a malformed reply
// are caught here and reported as a protocol error, which ends the
// connection. Nothing here does I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "portd/introspect.h"
#include "portd/message.h"
#include "portd/portd.capnp.h"
#include "portd/status.h"
#include "portd/types.h"

namespace portd::detail {

// What the daemon said in its answer to hello.
struct HelloInfo {
  uint32_t version = 0;
  uint64_t task = 0;
  uint32_t daemon_pid = 0;
  uint32_t max_frame_bytes = 0;
  uint32_t max_inline_body = 0;
  uint32_t max_batch = 0;
};

// An out-of-line region of a received message, as the reply brought it:
// task.cc maps it into the message's descriptor `index` (or, for a body
// region, appends it to the body).
struct IncomingRegion {
  size_t index = 0;
  uint64_t size = 0;
  bool is_volatile = false;
  bool is_body = false;
  UniqueFd fd;
  UniqueFd release;  // with a release signal
};

// What a message's out-of-line regions add to its frame.
struct OutgoingRegions {
  // The body, put out of line because it is over the threshold.
  std::optional<OolRegion> body;
  // The frame's fds, in wire order (see encode_message).
  std::vector<UniqueFd> fds;
  // For each pooled region, in descriptor order: the read end of the pipe
  // whose write end is its release signal.
  std::vector<UniqueFd> release_reads;
};

// One message of a receiveBatch answer: its own status (success, or
// MACH_RCV_HEADER_ERROR / _BODY_ERROR with the limit), unmapped regions.
struct BatchedReceived {
  Status status = Status::kSuccess;
  std::string limit;
  ReceivedMessage message;
  std::vector<IncomingRegion> regions;
};

// A decoded Reply. `which` says which of the value fields is meaningful.
struct ReplyData {
  wire::Reply::Which which = wire::Reply::NONE;
  Status status = Status::kSuccess;
  std::string limit;  // the quota that refused the request, if one did
  uint32_t needed_size = 0;

  HelloInfo hello;
  Name name = kNameNull;
  ExtractedRight extracted;
  uint32_t value = 0;  // refs or type
  std::vector<NameInfo> names;
  PortStatus attributes;
  std::optional<ReceivedMessage> message;
  // The message's out-of-line regions, unmapped, in descriptor order; their
  // descriptors in `message` (body regions excepted, which have none) carry
  // size and flags and an empty mapping.
  std::vector<IncomingRegion> regions;
  std::vector<BootstrapEntry> bootstrap;
  IntrospectPage introspection;
  std::vector<std::string> monitor_events;
  std::vector<Status> send_statuses;   // sendBatch
  std::vector<BatchedReceived> batch;  // receiveBatch
};

// A timeout as the wire says it: -1 waits forever, 0 never waits, n ms.
int64_t wire_timeout(std::optional<std::chrono::milliseconds> timeout);

// Fills `out` from `message`; `body`, if not null, is the body sent out of
// line (the inline body is then left empty and the region described last,
// flagged as the body). Out-of-line regions take their fds from the frame in
// descriptor order: the region's, then for a pooled (volatile) region its
// release signal; the caller attaches them. Returns MACH_SEND_INVALID_TYPE,
// having filled nothing that matters, for a descriptor without a valid
// disposition.
Status encode_message(const OutgoingMessage& message, const OolRegion* body,
                      wire::OutMessage::Builder out);
// What encode_message refuses, checked without encoding.
Status check_dispositions(const OutgoingMessage& message);
void encode_send_options(const SendOptions& options, uint64_t thread,
                         wire::SendOptions::Builder out);
void encode_receive_options(Name name, const ReceiveOptions& options,
                            wire::ReceiveOptions::Builder out);

void encode_introspect(const IntrospectQuery& query, wire::Introspect::Builder out);
void encode_monitor_start(const MonitorFilter& filter, wire::MonitorStart::Builder out);

// Decodes `reply`, taking the out-of-line fds of a received message from
// `fds` in descriptor order into out->regions (nothing is mapped here).
// Returns false, with `error` set, if the reply is malformed (including
// anything Cap'n Proto throws).
bool decode_reply(wire::Reply::Reader reply, std::vector<UniqueFd>& fds, ReplyData* out,
                  std::string* error);

}  // namespace portd::detail
