// Limits: every resource a task can make the daemon hold, bounded and charged.
//
// Each resource has a per-task limit and a per-uid limit (the sum over all of
// that uid's tasks). The defaults are generous enough that a normal program
// never notices them and small enough that one hostile client cannot grow the
// daemon without bound. An operation refused by a limit returns a status
// (KERN_RESOURCE_SHORTAGE, KERN_NO_SPACE or MACH_SEND_NO_BUFFER) and the core
// records which limit it was, so the reply can name it.
#pragma once

#include <cstdint>
#include <string_view>

namespace portd::ipc {

enum class Limit : uint8_t {
  kNone = 0,
  kNames,               // entries in one name space
  kPorts,               // receive rights a task holds or sent and not yet received
  kPortSets,            // port sets
  kQueuedMessages,      // messages sent and not yet received
  kQueuedBytes,         // their inline bytes
  kOolBytes,            // their out-of-line bytes
  kFdsInFlight,         // their attachments
  kSendOnceRights,      // send-once rights the task made and that are unused
  kNotifyRequests,      // armed notification requests
  kBootstrapNames,      // names bound in the bootstrap registry
  kParkedRequests,      // blocked sends, receives and look-ups
  kMessageBytes,        // inline body of one message
  kMessageDescriptors,  // descriptors (and ports in arrays) in one message
  kConnections,         // connections of one uid (the shell enforces it)
  kBatchMessages,       // messages in one sendBatch or receiveBatch request
  kCount,
};

std::string_view limit_name(Limit l) noexcept;

struct Quota {
  uint64_t names = 0;
  uint64_t ports = 0;
  uint64_t port_sets = 0;
  uint64_t queued_messages = 0;
  uint64_t queued_bytes = 0;
  uint64_t ool_bytes = 0;
  uint64_t fds_in_flight = 0;
  uint64_t send_once_rights = 0;
  uint64_t notify_requests = 0;
  uint64_t bootstrap_names = 0;
  uint64_t parked_requests = 0;

  // The counter for `l`, or null for the per-message limits.
  // Inline: every send and receive charges and uncharges through it.
  uint64_t* find(Limit l) {
    switch (l) {
      case Limit::kNames: return &names;
      case Limit::kPorts: return &ports;
      case Limit::kPortSets: return &port_sets;
      case Limit::kQueuedMessages: return &queued_messages;
      case Limit::kQueuedBytes: return &queued_bytes;
      case Limit::kOolBytes: return &ool_bytes;
      case Limit::kFdsInFlight: return &fds_in_flight;
      case Limit::kSendOnceRights: return &send_once_rights;
      case Limit::kNotifyRequests: return &notify_requests;
      case Limit::kBootstrapNames: return &bootstrap_names;
      case Limit::kParkedRequests: return &parked_requests;
      default: return nullptr;  // per-message limits are not quotas
    }
  }
  const uint64_t* find(Limit l) const { return const_cast<Quota&>(*this).find(l); }
};

struct Limits {
  Quota per_task{
      .names = 65536,
      .ports = 16384,
      .port_sets = 1024,
      .queued_messages = 65536,
      .queued_bytes = 256ull << 20,
      .ool_bytes = 4ull << 30,
      .fds_in_flight = 1024,
      .send_once_rights = 65536,
      .notify_requests = 65536,
      .bootstrap_names = 256,
      .parked_requests = 4096,
  };
  Quota per_uid{
      .names = 1u << 20,
      .ports = 1u << 18,
      .port_sets = 16384,
      .queued_messages = 1u << 20,
      .queued_bytes = 1ull << 30,
      .ool_bytes = 16ull << 30,
      .fds_in_flight = 8192,
      .send_once_rights = 1u << 20,
      .notify_requests = 1u << 20,
      .bootstrap_names = 4096,
      .parked_requests = 65536,
  };
  // Per message.
  uint32_t max_inline_body = 1u << 20;
  uint32_t max_descriptors = 1024;
  // Per request: most messages one sendBatch carries or one receiveBatch
  // asks for (the codec refuses more before it allocates anything).
  uint32_t max_batch = 1024;
  // Connections one uid may have open at once, tasks and clients that have
  // not said hello yet alike. The core has no connections: the shell counts
  // and refuses them (daemon/server/server.h), naming kConnections. A
  // benchmark opens a thousand from one uid.
  uint64_t connections_per_uid = 4096;
};

}  // namespace portd::ipc
