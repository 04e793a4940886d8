// mach_msg: Mach's message buffers to portd::OutgoingMessage and back.
//
// Sending reads the caller's buffer (header, descriptors, inline data) into
// an OutgoingMessage and hands it to Task::send, or, with MACH_RCV_MSG too,
// to Task::send_receive: one request, one round trip. Receiving writes a
// ReceivedMessage into the caller's buffer in XNU's layout: the header (with
// remote and local swapped as Mach does: remote is the reply right, local the
// port it came through), the descriptor count and descriptors for a complex
// message, the inline data padded to 4 bytes, then the trailer the caller
// asked for.
//
// Messages whose sender is the daemon itself (trailer sender task 0) are
// notifications; two are translated to XNU's shapes here: message-accepted
// (GNU's id 66) becomes PORTD_NOTIFY_MSG_ACCEPTED, since 66 is XNU's
// send-possible, and a send-once notification loses the NDR record the daemon
// puts in its body, since XNU's is the header alone.
#include <mach/message.h>
#include <mach/notify.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include "libclient/src/mach/task_state.h"
#include "libclient/src/mach/vm.h"

namespace portd::mach {
namespace {

using std::chrono::milliseconds;

// GNU Mach's message-accepted id, as the daemon sends it.
constexpr mach_msg_id_t kDaemonMsgAccepted = 66;

constexpr size_t kHeaderSize = sizeof(mach_msg_header_t);
constexpr size_t kBodySize = sizeof(mach_msg_body_t);

kern_return_t kr_of(Status s) { return static_cast<kern_return_t>(s); }

size_t round4(size_t n) { return (n + 3) & ~size_t{3}; }

// What a send must still do once its outcome is known. A successful one
// releases the memory the caller asked to have deallocated (deallocate=TRUE
// descriptors): regions copied are unmapped now, regions moved zero copy
// lose their reservation. One that did not happen gives moved regions back.
class AfterSend {
 public:
  struct Region {
    uintptr_t address;
    size_t size;
  };

  AfterSend() = default;
  AfterSend(const AfterSend&) = delete;
  AfterSend& operator=(const AfterSend&) = delete;
  ~AfterSend() {
    for (MovedRegion& m : moved_) restore_moved_region(std::move(m));
  }

  void deallocate_later(uintptr_t address, size_t size) { deallocate_.push_back({address, size}); }
  void moved(MovedRegion&& region) { moved_.push_back(std::move(region)); }

  // The send happened.
  void run() {
    for (const Region& r : deallocate_) deallocate_region(r.address, r.size);
    for (MovedRegion& m : moved_) finish_moved_region(std::move(m));
    deallocate_.clear();
    moved_.clear();
  }

 private:
  std::vector<Region> deallocate_;
  std::vector<MovedRegion> moved_;
};

// Reads the caller's message into `out`. MACH_MSG_SUCCESS or the send error.
mach_msg_return_t read_message(const mach_msg_header_t* msg, mach_msg_size_t send_size,
                               OutgoingMessage* out, AfterSend* after) {
  if (send_size < kHeaderSize || (send_size & 3) != 0) return MACH_SEND_MSG_TOO_SMALL;
  const auto* base = reinterpret_cast<const unsigned char*>(msg);
  mach_msg_header_t header;
  std::memcpy(&header, base, kHeaderSize);

  const mach_msg_bits_t bits = header.msgh_bits;
  if (MACH_MSGH_BITS_VOUCHER(bits) != 0 && MACH_PORT_VALID(header.msgh_voucher_port)) {
    return MACH_SEND_INVALID_VOUCHER;  // portd has no vouchers
  }
  out->set_remote(header.msgh_remote_port, static_cast<Disposition>(MACH_MSGH_BITS_REMOTE(bits)));
  if (header.msgh_local_port != MACH_PORT_NULL) {
    out->set_local(header.msgh_local_port, static_cast<Disposition>(MACH_MSGH_BITS_LOCAL(bits)));
  }
  out->set_id(header.msgh_id);

  size_t offset = kHeaderSize;
  if ((bits & MACH_MSGH_BITS_COMPLEX) != 0) {
    if (send_size < offset + kBodySize) return MACH_SEND_MSG_TOO_SMALL;
    mach_msg_body_t body;
    std::memcpy(&body, base + offset, kBodySize);
    offset += kBodySize;
    if (body.msgh_descriptor_count == 0) {
      // No descriptors: the count travels as the first word of the data,
      // so the receiver finds the data where the sender put it.
      offset -= kBodySize;
    }
    for (mach_msg_size_t i = 0; i < body.msgh_descriptor_count; ++i) {
      if (send_size < offset + sizeof(mach_msg_type_descriptor_t)) return MACH_SEND_MSG_TOO_SMALL;
      mach_msg_type_descriptor_t kind;
      std::memcpy(&kind, base + offset, sizeof kind);
      switch (kind.type) {
        case MACH_MSG_PORT_DESCRIPTOR: {
          mach_msg_port_descriptor_t d;
          std::memcpy(&d, base + offset, sizeof d);
          out->add_port(d.name, static_cast<Disposition>(d.disposition));
          offset += sizeof d;
          break;
        }
        case MACH_MSG_OOL_DESCRIPTOR:
        case MACH_MSG_OOL_VOLATILE_DESCRIPTOR: {
          if (send_size < offset + sizeof(mach_msg_ool_descriptor_t)) {
            return MACH_SEND_MSG_TOO_SMALL;
          }
          mach_msg_ool_descriptor_t d;
          std::memcpy(&d, base + offset, sizeof d);
          if (d.size != 0 && d.address == nullptr) return MACH_SEND_INVALID_MEMORY;
          offset += sizeof d;
          const auto address = reinterpret_cast<uintptr_t>(d.address);
          const bool is_volatile = kind.type == MACH_MSG_OOL_VOLATILE_DESCRIPTOR;
          if (d.deallocate && d.size != 0 && !is_volatile) {
            // A whole shared region from vm_allocate goes zero copy.
            MovedRegion moved;
            if (auto region = move_whole_region(address, d.size, &moved)) {
              after->moved(std::move(moved));
              out->add_ool(std::move(*region));
              break;
            }
          }
          OolMemoryDescriptor memory;
          memory.address = d.address;
          memory.size = d.size;
          memory.deallocate = d.deallocate != 0;
          memory.is_volatile = is_volatile;
          out->add_ool_memory(memory);
          if (d.deallocate && d.size != 0) after->deallocate_later(address, d.size);
          break;
        }
        case MACH_MSG_OOL_PORTS_DESCRIPTOR: {
          if (send_size < offset + sizeof(mach_msg_ool_ports_descriptor_t)) {
            return MACH_SEND_MSG_TOO_SMALL;
          }
          mach_msg_ool_ports_descriptor_t d;
          std::memcpy(&d, base + offset, sizeof d);
          if (d.count != 0 && d.address == nullptr) return MACH_SEND_INVALID_MEMORY;
          std::vector<Name> names(d.count);
          if (d.count != 0) std::memcpy(names.data(), d.address, d.count * sizeof(Name));
          out->add_ool_ports(std::move(names), static_cast<Disposition>(d.disposition));
          if (d.deallocate && d.count != 0) {
            after->deallocate_later(reinterpret_cast<uintptr_t>(d.address),
                                    d.count * sizeof(mach_port_name_t));
          }
          offset += sizeof d;
          break;
        }
        default:
          // Guarded port descriptors included: portd has no port guards.
          return MACH_SEND_INVALID_TYPE;
      }
    }
  }
  out->set_body(std::span<const std::byte>(reinterpret_cast<const std::byte*>(base + offset),
                                           send_size - offset));
  return MACH_MSG_SUCCESS;
}

std::optional<milliseconds> timeout_of(bool enabled, mach_msg_timeout_t timeout) {
  if (!enabled) return std::nullopt;
  return milliseconds(timeout);
}

// The daemon's notifications in XNU's shapes (see the top of the file).
void translate_notification(ReceivedMessage& m) {
  if (m.trailer.sender_task != 0) return;
  if (m.id == kDaemonMsgAccepted) {
    m.id = PORTD_NOTIFY_MSG_ACCEPTED;
  } else if (m.id == MACH_NOTIFY_SEND_ONCE) {
    m.body.clear();
  }
}

size_t descriptor_size(const ReceivedDescriptor& d) {
  return std::holds_alternative<ReceivedPort>(d) ? sizeof(mach_msg_port_descriptor_t)
                                                 : sizeof(mach_msg_ool_descriptor_t);
}

// The size `m` takes in the caller's buffer, trailer excluded.
size_t layout_size(const ReceivedMessage& m) {
  size_t size = kHeaderSize;
  if (!m.descriptors.empty()) {
    size += kBodySize;
    for (const auto& d : m.descriptors) size += descriptor_size(d);
  }
  return round4(size + m.body.size());
}

void fill_trailer(const ReceivedMessage& m, mach_msg_trailer_size_t size, unsigned char* at) {
  mach_msg_max_trailer_t t;
  std::memset(&t, 0, sizeof t);
  t.msgh_trailer_type = MACH_MSG_TRAILER_FORMAT_0;
  t.msgh_trailer_size = size;
  t.msgh_seqno = static_cast<mach_port_seqno_t>(m.trailer.seqno);
  if (m.trailer.sender_task == 0) {
    // From the daemon: XNU's kernel tokens.
    t.msgh_sender.val[0] = 0;
    t.msgh_sender.val[1] = 1;
  } else {
    t.msgh_sender.val[0] = m.trailer.uid;
    t.msgh_sender.val[1] = m.trailer.gid;
    t.msgh_audit.val[0] = m.trailer.uid;  // audit user id
    t.msgh_audit.val[1] = m.trailer.uid;  // euid
    t.msgh_audit.val[2] = m.trailer.gid;  // egid
    t.msgh_audit.val[3] = m.trailer.uid;  // ruid
    t.msgh_audit.val[4] = m.trailer.gid;  // rgid
    t.msgh_audit.val[5] = m.trailer.pid;
  }
  std::memcpy(at, &t, size);
}

// Writes `m` into the caller's buffer. Returns `status` (the receive's), or
// `status | MACH_RCV_BODY_ERROR | MACH_MSG_VM_SPACE` if out-of-line memory
// could not be mapped.
mach_msg_return_t write_message(ReceivedMessage& m, mach_msg_return_t status,
                                mach_msg_header_t* buffer, mach_msg_size_t rcv_size,
                                mach_msg_trailer_size_t trailer_size) {
  translate_notification(m);
  const size_t size = layout_size(m);
  if (size + trailer_size > rcv_size) {
    // The daemon checked the size against the same layout; this only guards
    // against a daemon that did not.
    return MACH_RCV_TOO_LARGE;
  }
  auto* base = reinterpret_cast<unsigned char*>(buffer);
  mach_msg_return_t vm_error = 0;

  mach_msg_header_t header;
  std::memset(&header, 0, sizeof header);
  header.msgh_bits = MACH_MSGH_BITS(static_cast<mach_msg_bits_t>(m.remote_type),
                                    static_cast<mach_msg_bits_t>(m.local_type));
  if (!m.descriptors.empty()) header.msgh_bits |= MACH_MSGH_BITS_COMPLEX;
  header.msgh_size = static_cast<mach_msg_size_t>(size);
  header.msgh_remote_port = m.remote;
  header.msgh_local_port = m.local;
  header.msgh_voucher_port = MACH_PORT_NULL;
  header.msgh_id = m.id;
  std::memcpy(base, &header, sizeof header);

  size_t offset = kHeaderSize;
  if (!m.descriptors.empty()) {
    mach_msg_body_t body;
    body.msgh_descriptor_count = static_cast<mach_msg_size_t>(m.descriptors.size());
    std::memcpy(base + offset, &body, sizeof body);
    offset += sizeof body;
    for (auto& d : m.descriptors) {
      if (const auto* p = std::get_if<ReceivedPort>(&d)) {
        mach_msg_port_descriptor_t out;
        std::memset(&out, 0, sizeof out);
        out.name = p->name;
        out.disposition = static_cast<mach_msg_type_name_t>(p->type);
        out.type = MACH_MSG_PORT_DESCRIPTOR;
        std::memcpy(base + offset, &out, sizeof out);
        offset += sizeof out;
      } else if (auto* memory = std::get_if<ReceivedOolMemory>(&d)) {
        mach_msg_ool_descriptor_t out;
        std::memset(&out, 0, sizeof out);
        out.type = memory->is_volatile ? MACH_MSG_OOL_VOLATILE_DESCRIPTOR : MACH_MSG_OOL_DESCRIPTOR;
        // The region is the receiver's own mapping: free it with vm_deallocate.
        out.copy = MACH_MSG_VIRTUAL_COPY;
        out.deallocate = TRUE;
        // libportd mapped it (MAP_PRIVATE); the caller owns the mapping now.
        // A volatile region's release signal is closed when vm_deallocate
        // unmaps it, which gives the segment back to its sender.
        if (memory->size != 0) {
          if (!memory->memory.mapped()) {
            vm_error = MACH_RCV_BODY_ERROR | MACH_MSG_VM_SPACE;
          } else {
            const MappedRegionParts parts = memory->memory.release();
            out.address = parts.address;
            out.size = static_cast<mach_msg_size_t>(parts.size);
            if (parts.release_fd >= 0)
              track_release(reinterpret_cast<uintptr_t>(parts.address), parts.release_fd);
          }
        }
        memory->memory.reset();
        std::memcpy(base + offset, &out, sizeof out);
        offset += sizeof out;
      } else {
        const auto& ports = std::get<ReceivedOolPorts>(d);
        mach_msg_ool_ports_descriptor_t out;
        std::memset(&out, 0, sizeof out);
        out.type = MACH_MSG_OOL_PORTS_DESCRIPTOR;
        out.copy = MACH_MSG_VIRTUAL_COPY;
        out.deallocate = TRUE;
        out.disposition = static_cast<mach_msg_type_name_t>(ports.type);
        out.count = static_cast<mach_msg_size_t>(ports.names.size());
        if (!ports.names.empty()) {
          const size_t bytes = ports.names.size() * sizeof(mach_port_name_t);
          void* array = allocate_region(bytes);
          if (array == nullptr) {
            vm_error = MACH_RCV_BODY_ERROR | MACH_MSG_VM_SPACE;
          } else {
            std::memcpy(array, ports.names.data(), bytes);
            out.address = array;
          }
        }
        std::memcpy(base + offset, &out, sizeof out);
        offset += sizeof out;
      }
    }
  }
  if (!m.body.empty()) std::memcpy(base + offset, m.body.data(), m.body.size());
  offset += m.body.size();
  if (offset < size) std::memset(base + offset, 0, size - offset);
  fill_trailer(m, trailer_size, base + size);
  if (status == MACH_MSG_SUCCESS && vm_error != 0) return vm_error;
  return status;
}

// The receive half's outcome, written to the caller's buffer.
mach_msg_return_t finish_receive(Result<ReceivedMessage>& r, mach_msg_option_t option,
                                 mach_msg_header_t* buffer, mach_msg_size_t rcv_size,
                                 mach_msg_trailer_size_t trailer_size) {
  const Status status = r.status();
  if (status == Status::kRcvTooLarge) {
    // With MACH_RCV_LARGE the message stayed queued: say how big it is.
    if ((option & MACH_RCV_LARGE) != 0 && r.has_value() && rcv_size >= kHeaderSize) {
      const auto needed = static_cast<mach_msg_size_t>(round4(r->needed_size));
      std::memcpy(reinterpret_cast<unsigned char*>(buffer) + offsetof(mach_msg_header_t, msgh_size),
                  &needed, sizeof needed);
    }
    return MACH_RCV_TOO_LARGE;
  }
  if (!r.has_value()) return kr_of(status);
  return write_message(*r, kr_of(status), buffer, rcv_size, trailer_size);
}

bool send_happened(Status s) {
  const auto v = static_cast<uint32_t>(s);
  return s == Status::kSuccess || s == Status::kSendWillNotify || (v & 0xfffff000u) == 0x10004000u;
}

mach_msg_return_t do_mach_msg(mach_msg_header_t* msg, mach_msg_option_t option,
                              mach_msg_size_t send_size, mach_msg_size_t rcv_size,
                              mach_port_name_t rcv_name, mach_msg_timeout_t timeout,
                              mach_port_name_t notify, mach_msg_header_t* rcv_msg) {
  const bool sending = (option & MACH_SEND_MSG) != 0;
  const bool receiving = (option & MACH_RCV_MSG) != 0;
  if (!sending && !receiving) return MACH_MSG_SUCCESS;

  kern_return_t connect_status = KERN_SUCCESS;
  auto task = process_task(&connect_status);
  if (!task) return connect_status;

  OutgoingMessage out;
  AfterSend after;
  SendOptions send_options;
  if (sending) {
    if (msg == nullptr) return MACH_SEND_INVALID_DATA;
    // XNU's MACH_SEND_NOTIFY arms a send-possible notification, which portd
    // does not have.
    if ((option & MACH_SEND_NOTIFY) != 0) return MACH_SEND_INVALID_OPTIONS;
    if (const mach_msg_return_t mr = read_message(msg, send_size, &out, &after);
        mr != MACH_MSG_SUCCESS) {
      return mr;
    }
    const bool send_timeout = (option & MACH_SEND_TIMEOUT) != 0;
    send_options.timeout = timeout_of(send_timeout, timeout);
    if ((option & PORTD_SEND_NOTIFY) != 0) {
      send_options.cache = true;
      send_options.notify = notify;
      send_options.notify_disposition = Disposition::kMakeSendOnce;
      // Without a timeout, cache at once rather than wait.
      if (!send_timeout) send_options.timeout = milliseconds(0);
    }
  }

  ReceiveOptions receive_options;
  mach_msg_header_t* buffer = rcv_msg != nullptr ? rcv_msg : msg;
  mach_msg_trailer_size_t trailer_size = 0;
  if (receiving) {
    if (buffer == nullptr) return MACH_RCV_INVALID_DATA;
    if (((option >> 28) & 0xf) != MACH_MSG_TRAILER_FORMAT_0) return MACH_RCV_INVALID_TRAILER;
    trailer_size = REQUESTED_TRAILER_SIZE(option);
    receive_options.timeout = timeout_of((option & MACH_RCV_TIMEOUT) != 0, timeout);
    receive_options.trailer_size = trailer_size;
    receive_options.large = (option & MACH_RCV_LARGE) != 0;
    // Whole words only (Mach sizes always are): the padding we add to an
    // odd-sized body then always fits. 0 would mean "no limit" to the daemon.
    const mach_msg_size_t usable = rcv_size & ~mach_msg_size_t{3};
    receive_options.max_size = usable != 0 ? usable : 1;
  }

  if (sending && receiving) {
    auto r = task->send_receive(out, send_options, rcv_name, receive_options);
    if (send_happened(r.status())) after.run();
    if (!send_happened(r.status()) || r.status() == Status::kSendWillNotify) {
      return kr_of(r.status());
    }
    return finish_receive(r, option, buffer, rcv_size & ~mach_msg_size_t{3}, trailer_size);
  }
  if (sending) {
    const Status s = task->send(out, send_options);
    if (send_happened(s)) after.run();
    return kr_of(s);
  }
  auto r = task->receive(rcv_name, receive_options);
  return finish_receive(r, option, buffer, rcv_size & ~mach_msg_size_t{3}, trailer_size);
}

// mach_msg_destroy's helpers, after XNU's libsyscall.
void destroy_port(mach_port_name_t name, mach_msg_type_name_t type) {
  if (!MACH_PORT_VALID(name)) return;
  kern_return_t status = KERN_SUCCESS;
  auto task = process_task(&status);
  if (!task) return;
  switch (type) {
    case MACH_MSG_TYPE_MOVE_SEND:
    case MACH_MSG_TYPE_MOVE_SEND_ONCE: (void)task->deallocate(name); break;
    case MACH_MSG_TYPE_MOVE_RECEIVE: (void)task->mod_refs(name, Right::kReceive, -1); break;
    case MACH_MSG_TYPE_MAKE_SEND:
      if (ok(task->insert_right(name, name, Disposition::kMakeSend))) (void)task->deallocate(name);
      break;
    case MACH_MSG_TYPE_MAKE_SEND_ONCE: {
      auto made = task->extract_right(name, Disposition::kMakeSendOnce);
      if (made) (void)task->deallocate(made->name);
      break;
    }
    default: break;
  }
}

}  // namespace
}  // namespace portd::mach

#pragma GCC visibility push(default)
extern "C" {

mach_msg_return_t mach_msg_overwrite(mach_msg_header_t* msg, mach_msg_option_t option,
                                     mach_msg_size_t send_size, mach_msg_size_t rcv_size,
                                     mach_port_name_t rcv_name, mach_msg_timeout_t timeout,
                                     mach_port_name_t notify, mach_msg_header_t* rcv_msg,
                                     mach_msg_size_t rcv_limit) {
  (void)rcv_limit;
  try {
    return portd::mach::do_mach_msg(msg, option, send_size, rcv_size, rcv_name, timeout, notify,
                                    rcv_msg);
  } catch (const std::bad_alloc&) {
    return (option & MACH_SEND_MSG) != 0 ? MACH_SEND_NO_BUFFER : MACH_RCV_INVALID_DATA;
  }
}

mach_msg_return_t mach_msg(mach_msg_header_t* msg, mach_msg_option_t option,
                           mach_msg_size_t send_size, mach_msg_size_t rcv_size,
                           mach_port_name_t rcv_name, mach_msg_timeout_t timeout,
                           mach_port_name_t notify) {
  return mach_msg_overwrite(msg, option, send_size, rcv_size, rcv_name, timeout, notify, nullptr,
                            0);
}

mach_msg_return_t mach_msg_send(mach_msg_header_t* msg) {
  return mach_msg(msg, MACH_SEND_MSG, msg->msgh_size, 0, MACH_PORT_NULL, MACH_MSG_TIMEOUT_NONE,
                  MACH_PORT_NULL);
}

mach_msg_return_t mach_msg_receive(mach_msg_header_t* msg) {
  return mach_msg(msg, MACH_RCV_MSG, 0, msg->msgh_size, msg->msgh_local_port, MACH_MSG_TIMEOUT_NONE,
                  MACH_PORT_NULL);
}

void mach_msg_destroy(mach_msg_header_t* msg) {
  using portd::mach::destroy_port;
  const mach_msg_bits_t bits = msg->msgh_bits;
  // msgh_local_port holds no right: the receive used it up.
  destroy_port(msg->msgh_remote_port, MACH_MSGH_BITS_REMOTE(bits));
  if ((bits & MACH_MSGH_BITS_COMPLEX) == 0) return;
  auto* base = reinterpret_cast<unsigned char*>(msg);
  mach_msg_body_t body;
  std::memcpy(&body, base + sizeof(mach_msg_header_t), sizeof body);
  size_t offset = sizeof(mach_msg_header_t) + sizeof body;
  for (mach_msg_size_t i = 0; i < body.msgh_descriptor_count; ++i) {
    mach_msg_type_descriptor_t kind;
    std::memcpy(&kind, base + offset, sizeof kind);
    switch (kind.type) {
      case MACH_MSG_PORT_DESCRIPTOR: {
        mach_msg_port_descriptor_t d;
        std::memcpy(&d, base + offset, sizeof d);
        destroy_port(d.name, d.disposition);
        offset += sizeof d;
        break;
      }
      case MACH_MSG_OOL_DESCRIPTOR:
      case MACH_MSG_OOL_VOLATILE_DESCRIPTOR: {
        mach_msg_ool_descriptor_t d;
        std::memcpy(&d, base + offset, sizeof d);
        if (d.deallocate && d.size != 0) {
          portd::mach::deallocate_region(reinterpret_cast<uintptr_t>(d.address), d.size);
        }
        offset += sizeof d;
        break;
      }
      case MACH_MSG_OOL_PORTS_DESCRIPTOR: {
        mach_msg_ool_ports_descriptor_t d;
        std::memcpy(&d, base + offset, sizeof d);
        const auto* names = static_cast<const mach_port_name_t*>(d.address);
        for (mach_msg_size_t j = 0; names != nullptr && j < d.count; ++j) {
          destroy_port(names[j], d.disposition);
        }
        if (d.deallocate && d.count != 0) {
          portd::mach::deallocate_region(reinterpret_cast<uintptr_t>(d.address),
                                         d.count * sizeof(mach_port_name_t));
        }
        offset += sizeof d;
        break;
      }
      default: return;  // unknown descriptor: its size is unknown too
    }
  }
}

}  // extern "C"
#pragma GCC visibility pop
