#include "daemon/ipc/limits.h"

namespace portd::ipc {

std::string_view limit_name(Limit l) noexcept {
  switch (l) {
    case Limit::kNone: return "none";
    case Limit::kNames: return "names";
    case Limit::kPorts: return "ports";
    case Limit::kPortSets: return "port_sets";
    case Limit::kQueuedMessages: return "queued_messages";
    case Limit::kQueuedBytes: return "queued_bytes";
    case Limit::kOolBytes: return "ool_bytes";
    case Limit::kFdsInFlight: return "fds_in_flight";
    case Limit::kSendOnceRights: return "send_once_rights";
    case Limit::kNotifyRequests: return "notify_requests";
    case Limit::kBootstrapNames: return "bootstrap_names";
    case Limit::kParkedRequests: return "parked_requests";
    case Limit::kMessageBytes: return "message_bytes";
    case Limit::kMessageDescriptors: return "message_descriptors";
    case Limit::kConnections: return "connections";
    case Limit::kBatchMessages: return "batch_messages";
    case Limit::kCount: break;
  }
  return "unknown";
}

}  // namespace portd::ipc
