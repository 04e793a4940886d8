// Message events: what the core tells an observer about message traffic, for
// `portctl monitor`.
//
// The shell installs a MessageObserver while at least one client monitors
// (Core::set_observer) and removes it when the last one stops. With no
// observer the core's cost is one pointer test at each place a message
// enters a queue, leaves it for a receiver, or is destroyed unreceived; the
// event is only built when someone listens.
//
// The observer is called in the middle of a core operation. It must not call
// back into the core; it copies what it needs out of the event and returns.
// Events are plain data: no pointer into the core survives the call.
#pragma once

#include <cstdint>
#include <vector>

#include "daemon/ipc/types.h"

namespace portd::ipc {

enum class MessageEventKind : uint8_t {
  kSend,     // the message entered its port's queue (or went straight to a receiver)
  kReceive,  // a receiver took it
  kDestroy,  // destroyed unreceived (its port died, or a receiver had no room)
};

// One descriptor of the message, summarized.
struct DescriptorSummary {
  enum class Kind : uint8_t { kPort, kOol, kOolPorts } kind = Kind::kPort;
  RightType right = RightType::kNone;  // kPort, kOolPorts
  PortId port = 0;                     // kPort: 0 for MACH_PORT_NULL or a dead right
  uint64_t size = 0;                   // kOol: bytes; kOolPorts: number of rights
  bool is_volatile = false;            // kOol
};

struct MessageEvent {
  // At most this many descriptors are summarized; descriptor_count has them all.
  static constexpr size_t kMaxDescriptors = 16;

  MessageEventKind kind = MessageEventKind::kSend;
  // The sender, from the message's trailer; task 0 is the daemon (a
  // notification).
  TaskId sender = 0;
  uint32_t sender_pid = 0;
  uint32_t sender_uid = 0;
  // The destination port and the task holding its receive right (0 while
  // the right travels in a message, or once the port is dead).
  PortId port = 0;
  TaskId receiver = 0;
  uint32_t receiver_pid = 0;
  uint32_t receiver_uid = 0;
  int32_t id = 0;
  uint64_t size = 0;              // Mach layout: header, descriptors, body (no trailer)
  uint64_t body_bytes = 0;        // inline, or out of line (body_ool)
  bool body_ool = false;          // the body travels in shared memory, not inline
  PortId reply_port = 0;          // 0: none (or a dead or null reply right)
  uint64_t seqno = 0;             // kReceive: the sequence number the receiver gets
  uint32_t descriptor_count = 0;  // Mach descriptors (an out-of-line body is not one)
  std::vector<DescriptorSummary> descriptors;
};

class MessageObserver {
 public:
  virtual ~MessageObserver() = default;
  virtual void on_message_event(const MessageEvent& event) = 0;
};

}  // namespace portd::ipc
