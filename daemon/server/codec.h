// Codec: the one place in the daemon where wire readers become core types.
//
// decode_request() turns a Request frame into a DecodedRequest made of core
// types only (ipc::MessageIn, ipc::SendOptions, ...), checking every bound the
// wire allows a client to exceed: body size, descriptor counts, disposition
// bytes, right numbers, notification variants, bootstrap names, fd counts.
// Nothing of the frame survives decoding, so the driver never touches a capnp
// reader and a frame's buffer can be reused as soon as decoding returns.
//
// Two error channels, as everywhere in portd:
//  * A well-formed request with invalid contents is *refused*: the decoded
//    request carries a Refusal (the Status to reply with, the limit that
//    refused it if any, and a reason for the logs), and the connection goes
//    on.
//  * A malformed frame makes Cap'n Proto throw kj::Exception while reading.
//    The codec does not catch it: the connection does, at its boundary, and
//    treats it as a protocol violation. Since decoding completes before the
//    core is called, a throw never leaves the core half-updated.
//
// The encoders go the other way, from core results to Reply builders.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/ipc/core.h"
#include "daemon/ipc/limits.h"
#include "daemon/ipc/message.h"
#include "daemon/ipc/types.h"
#include "portd/portd.capnp.h"

namespace portd::server {

// launchd's name_t is char[128], NUL included.
inline constexpr size_t kBootstrapNameMax = 127;
// The hello command is kept for logs and portctl, cut to this many bytes.
inline constexpr size_t kCommandMax = 64;
// Introspection: an opaque cursor is at most this long; pages hold at most
// kPageMax items (kPageDefault when the client does not say).
inline constexpr size_t kCursorMax = 256;
inline constexpr uint32_t kPageDefault = 500;
inline constexpr uint32_t kPageMax = 2000;
// Monitoring: events kept per client between polls, and per poll answer.
inline constexpr uint32_t kMonitorBufferDefault = 4096;
inline constexpr uint32_t kMonitorBufferMax = 65536;
inline constexpr uint32_t kMonitorPollDefault = 1024;
inline constexpr uint32_t kMonitorPollMax = 4096;

// Why a request was refused before it reached the core.
struct Refusal {
  Status status = Status::kSuccess;
  ipc::Limit limit = ipc::Limit::kNone;  // the limit that refused it, if one did
  std::string_view why;                  // static text, for the logs
};

// Decoded requests, one struct per Request variant, in core types.
namespace req {
struct Hello {
  uint32_t version = 0;
  std::string command;
};
struct Cancel {
  uint64_t target = 0;  // the request id to give up
};
struct Allocate {
  ipc::Right right = ipc::Right::kReceive;
};
struct Deallocate {
  ipc::Name name = ipc::kNameNull;
};
struct ModRefs {
  ipc::Name name = ipc::kNameNull;
  ipc::Right right = ipc::Right::kSend;
  int32_t delta = 0;
};
struct Destroy {
  ipc::Name name = ipc::kNameNull;
};
struct InsertRight {
  ipc::Name name = ipc::kNameNull;
  ipc::Name right = ipc::kNameNull;
  ipc::Disposition disposition = ipc::Disposition::kNone;
};
struct ExtractRight {
  ipc::Name name = ipc::kNameNull;
  ipc::Disposition disposition = ipc::Disposition::kNone;
};
struct GetRefs {
  ipc::Name name = ipc::kNameNull;
  ipc::Right right = ipc::Right::kSend;
};
struct Type {
  ipc::Name name = ipc::kNameNull;
};
struct Names {};
struct GetAttributes {
  ipc::Name name = ipc::kNameNull;
};
struct SetAttributes {
  ipc::Name name = ipc::kNameNull;
  uint32_t qlimit = 0;
};
struct MoveMember {
  ipc::Name member = ipc::kNameNull;
  ipc::Name after = ipc::kNameNull;
};
struct RequestNotification {
  ipc::Name name = ipc::kNameNull;
  ipc::Notify variant = ipc::Notify::kDeadName;
  uint32_t sync = 0;
  ipc::Name notify = ipc::kNameNull;
  ipc::Disposition notify_disposition = ipc::Disposition::kNone;
};
struct Send {
  // OOL descriptors carry attachment 0 until the driver registers their fds.
  ipc::MessageIn message;
  ipc::SendOptions options;
};
struct Receive {
  ipc::ReceiveOptions options;
};
struct SendReceive {
  ipc::MessageIn message;
  ipc::SendOptions send;
  ipc::ReceiveOptions receive;
};
// Protocol version 2. Each message is sent as a Send with `options` would
// be; a message the codec refused has its Refusal here and is not sent (the
// others are). fd_counts[i] is how many of the frame's fds message i takes
// (whether or not it was refused), in frame order.
struct SendBatch {
  std::vector<ipc::MessageIn> messages;
  std::vector<Refusal> refusals;
  std::vector<uint16_t> fd_counts;
  ipc::SendOptions options;
};
struct ReceiveBatch {
  ipc::ReceiveOptions options;
  uint32_t max = 1;  // 1..Limits::max_batch
};
struct BootstrapCheckIn {
  std::string name;
};
struct BootstrapRegister {
  std::string name;
  ipc::Name port = ipc::kNameNull;
};
struct BootstrapLookUp {
  std::string name;
  int64_t timeout_ms = 0;
};
struct BootstrapUnregister {
  std::string name;
};
struct BootstrapList {};
// Introspection and monitoring (daemon/server/introspect.h).
enum class IntrospectWhat : uint8_t {
  kStatus,
  kTasks,
  kPorts,
  kPort,
  kRights,
  kSets,
  kNames,
  kUids
};
struct Introspect {
  IntrospectWhat what = IntrospectWhat::kStatus;
  uint64_t target = 0;
  uint32_t pid = 0;
  std::string cursor;             // at most kCursorMax bytes
  uint32_t limit = kPageDefault;  // 1..kPageMax
};
struct MonitorStart {
  uint64_t port = 0;
  std::string name;  // empty, or a valid bootstrap name
  uint64_t task = 0;
  uint32_t buffer = kMonitorBufferDefault;  // 1..kMonitorBufferMax
};
struct MonitorPoll {
  int64_t timeout_ms = 0;
  uint32_t max = kMonitorPollDefault;  // 1..kMonitorPollMax
};
struct MonitorStop {};
}  // namespace req

using RequestBody =
    std::variant<std::monostate, req::Hello, req::Cancel, req::Allocate, req::Deallocate,
                 req::ModRefs, req::Destroy, req::InsertRight, req::ExtractRight, req::GetRefs,
                 req::Type, req::Names, req::GetAttributes, req::SetAttributes, req::MoveMember,
                 req::RequestNotification, req::Send, req::Receive, req::SendReceive,
                 req::BootstrapCheckIn, req::BootstrapRegister, req::BootstrapLookUp,
                 req::BootstrapUnregister, req::BootstrapList, req::Introspect, req::MonitorStart,
                 req::MonitorPoll, req::MonitorStop, req::SendBatch, req::ReceiveBatch>;

// True for the requests the introspector answers (introspect.h), not the
// driver.
bool is_introspection(const RequestBody& body);

struct DecodedRequest {
  uint64_t id = 0;
  uint16_t fd_count = 0;
  // A send, sendReceive or sendBatch (refused or not): the client meant to
  // send a message, which the daemon's counters count.
  bool carries_message = false;
  // std::monostate when refused.
  RequestBody body;
  Refusal refusal;

  bool refused() const { return refusal.status != Status::kSuccess; }
};

// Decodes and bounds one request into `out`, which must be freshly made
// (the daemon's way: nothing is moved). May throw kj::Exception on a
// malformed frame (see above).
void decode_request(wire::Request::Reader request, const ipc::Limits& limits, DecodedRequest* out);
// The same, returned (for tests).
DecodedRequest decode_request(wire::Request::Reader request, const ipc::Limits& limits);

// The pieces, exposed for tests and for the driver. decode_message fills a
// fresh `out` in place.
Refusal decode_message(wire::OutMessage::Reader in, const ipc::Limits& limits, ipc::MessageIn* out);
Refusal decode_send_options(wire::SendOptions::Reader in, ipc::SendOptions* out);
Refusal decode_receive_options(wire::ReceiveOptions::Reader in, ipc::ReceiveOptions* out);
Refusal decode_bootstrap_name(capnp::Text::Reader in, std::string* out);

// Number of fds the out-of-line memory descriptors of a message take from its
// frame, in order: one per region, two for a region with a release signal.
size_t ool_fd_count(const ipc::MessageIn& message);

// ---------------------------------------------------------------------------
// Encoding

// The reply's common fields. `limit` is written as its name when not kNone.
void encode_reply_header(wire::Reply::Builder reply, uint64_t id, Status status,
                         ipc::Limit limit = ipc::Limit::kNone);

// How encode_message puts a message's body in the reply.
enum class BodyIn : uint8_t {
  kCopied,      // copied into the message
  kPlaced,      // a field left unfilled (proto::place_body)
  kReferenced,  // a segment of its own (proto::reference_body)
};

// A received message. Every OOL descriptor's fds (the region's, then its
// release fd if it has one) must travel with the frame, in descriptor order;
// the caller sets the Reply's fdCount. Unless the body is copied, the frame
// must go out through FrameWriter::append with in.body and the position
// this returns (ReplySink::post_reply_with_body); kReferenced needs the
// builder `message` that `out` belongs to. Returns null when the body is
// copied or empty.
const void* encode_message(const ipc::MessageOut& in, wire::InMessage::Builder out,
                           BodyIn how = BodyIn::kCopied, capnp::MessageBuilder* message = nullptr);
void encode_port_status(const ipc::PortStatus& in, wire::PortStatus::Builder out);
void encode_names(const std::vector<ipc::NameInfo>& in, wire::Reply::Builder reply);
void encode_bootstrap_list(const std::vector<ipc::BootstrapEntry>& in, wire::Reply::Builder reply);
void encode_introspection(std::string_view json, std::string_view next, wire::Reply::Builder reply);
void encode_monitor_events(const std::vector<std::string_view>& events, wire::Reply::Builder reply);

// Upper bounds, in bytes, of what encode_message adds to a reply frame for
// a message: everything but the body and the descriptors, and per
// descriptor (a port, a region, or an array, whose names add 4 bytes each).
inline constexpr size_t kEncodedMessageOverhead = 256;
inline constexpr size_t kEncodedDescriptorBytes = 48;

}  // namespace portd::server
