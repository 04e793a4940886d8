// mach_port_*: the raw layer of portd::Task under Mach's names. Statuses are
// the daemon's, unchanged; the library answers only for the names it
// reserves (mach_task_self(), bootstrap_port) and for argument checks that
// happen before anything is sent.
#include <mach/mach_port.h>
#include <mach/task.h>

#include <cstring>
#include <vector>

#include "libclient/src/mach/task_state.h"
#include "libclient/src/mach/vm.h"

namespace portd::mach {
namespace {

kern_return_t kr_of(Status s) { return static_cast<kern_return_t>(s); }

// Copies `values` into a region vm_deallocate() can free. Empty: NULL.
template <typename T>
bool copy_out_array(const std::vector<T>& values, T** out) {
  *out = nullptr;
  if (values.empty()) return true;
  void* region = allocate_region(values.size() * sizeof(T));
  if (region == nullptr) return false;
  std::memcpy(region, values.data(), values.size() * sizeof(T));
  *out = static_cast<T*>(region);
  return true;
}

}  // namespace
}  // namespace portd::mach

using portd::Disposition;
using portd::Notification;
using portd::Right;
using portd::mach::is_reserved_name;
using portd::mach::kr_of;
using portd::mach::task_for;

#define PORTD_TASK_OR_RETURN(task_name)             \
  kern_return_t task_status_ = KERN_SUCCESS;        \
  auto task = task_for((task_name), &task_status_); \
  if (!task) return task_status_

#pragma GCC visibility push(default)
extern "C" {

kern_return_t mach_port_names(ipc_space_t space, mach_port_name_array_t* names,
                              mach_msg_type_number_t* namesCnt, mach_port_type_array_t* types,
                              mach_msg_type_number_t* typesCnt) {
  PORTD_TASK_OR_RETURN(space);
  if (names == nullptr || namesCnt == nullptr || types == nullptr || typesCnt == nullptr) {
    return KERN_INVALID_ARGUMENT;
  }
  auto infos = task->names();
  if (!infos) return kr_of(infos.status());
  std::vector<mach_port_name_t> name_list;
  std::vector<mach_port_type_t> type_list;
  name_list.reserve(infos->size());
  type_list.reserve(infos->size());
  for (const auto& info : *infos) {
    name_list.push_back(info.name);
    type_list.push_back(info.type);
  }
  mach_port_name_t* name_array = nullptr;
  mach_port_type_t* type_array = nullptr;
  if (!portd::mach::copy_out_array(name_list, &name_array)) return KERN_RESOURCE_SHORTAGE;
  if (!portd::mach::copy_out_array(type_list, &type_array)) {
    portd::mach::deallocate_region(reinterpret_cast<uintptr_t>(name_array),
                                   name_list.size() * sizeof(mach_port_name_t));
    return KERN_RESOURCE_SHORTAGE;
  }
  *names = name_array;
  *types = type_array;
  *namesCnt = static_cast<mach_msg_type_number_t>(name_list.size());
  *typesCnt = static_cast<mach_msg_type_number_t>(type_list.size());
  return KERN_SUCCESS;
}

kern_return_t mach_port_type(ipc_space_t space, mach_port_name_t name, mach_port_type_t* ptype) {
  PORTD_TASK_OR_RETURN(space);
  if (ptype == nullptr) return KERN_INVALID_ARGUMENT;
  if (is_reserved_name(name)) {
    *ptype = MACH_PORT_TYPE_SEND;
    return KERN_SUCCESS;
  }
  auto type = task->type(name);
  if (!type) return kr_of(type.status());
  *ptype = *type;
  return KERN_SUCCESS;
}

kern_return_t mach_port_allocate(ipc_space_t space, mach_port_right_t right,
                                 mach_port_name_t* name) {
  PORTD_TASK_OR_RETURN(space);
  if (name == nullptr) return KERN_INVALID_ARGUMENT;
  auto allocated = task->allocate(static_cast<Right>(right));
  if (!allocated) return kr_of(allocated.status());
  *name = *allocated;
  return KERN_SUCCESS;
}

kern_return_t mach_port_destroy(ipc_space_t space, mach_port_name_t name) {
  PORTD_TASK_OR_RETURN(space);
  if (is_reserved_name(name)) return KERN_SUCCESS;
  return kr_of(task->destroy(name));
}

kern_return_t mach_port_deallocate(ipc_space_t space, mach_port_name_t name) {
  PORTD_TASK_OR_RETURN(space);
  if (is_reserved_name(name)) return KERN_SUCCESS;
  return kr_of(task->deallocate(name));
}

kern_return_t mach_port_get_refs(ipc_space_t space, mach_port_name_t name, mach_port_right_t right,
                                 mach_port_urefs_t* refs) {
  PORTD_TASK_OR_RETURN(space);
  if (refs == nullptr) return KERN_INVALID_ARGUMENT;
  if (is_reserved_name(name)) {
    if (right > MACH_PORT_RIGHT_DEAD_NAME) return KERN_INVALID_VALUE;
    *refs = right == MACH_PORT_RIGHT_SEND ? 1 : 0;
    return KERN_SUCCESS;
  }
  auto count = task->get_refs(name, static_cast<Right>(right));
  if (!count) return kr_of(count.status());
  *refs = *count;
  return KERN_SUCCESS;
}

kern_return_t mach_port_mod_refs(ipc_space_t space, mach_port_name_t name, mach_port_right_t right,
                                 mach_port_delta_t delta) {
  PORTD_TASK_OR_RETURN(space);
  if (is_reserved_name(name) && right == MACH_PORT_RIGHT_SEND) return KERN_SUCCESS;
  return kr_of(task->mod_refs(name, static_cast<Right>(right), delta));
}

kern_return_t mach_port_move_member(ipc_space_t space, mach_port_name_t member,
                                    mach_port_name_t after) {
  PORTD_TASK_OR_RETURN(space);
  return kr_of(task->move_member(member, after));
}

kern_return_t mach_port_insert_member(ipc_space_t space, mach_port_name_t name,
                                      mach_port_name_t pset) {
  PORTD_TASK_OR_RETURN(space);
  return kr_of(task->move_member(name, pset));
}

kern_return_t mach_port_extract_member(ipc_space_t space, mach_port_name_t name,
                                       mach_port_name_t pset) {
  PORTD_TASK_OR_RETURN(space);
  // XNU checks that `name` is in `pset` before taking it out.
  auto type = task->type(pset);
  if (!type) return kr_of(type.status());
  if ((*type & MACH_PORT_TYPE_PORT_SET) == 0) return KERN_INVALID_RIGHT;
  auto status = task->get_attributes(name);
  if (!status) return kr_of(status.status());
  if (status->pset != pset) return KERN_NOT_IN_SET;
  return kr_of(task->move_member(name, MACH_PORT_NULL));
}

kern_return_t mach_port_get_set_status(ipc_space_t space, mach_port_name_t name,
                                       mach_port_name_array_t* members,
                                       mach_msg_type_number_t* membersCnt) {
  PORTD_TASK_OR_RETURN(space);
  if (members == nullptr || membersCnt == nullptr) return KERN_INVALID_ARGUMENT;
  auto type = task->type(name);
  if (!type) return kr_of(type.status());
  if ((*type & MACH_PORT_TYPE_PORT_SET) == 0) return KERN_INVALID_RIGHT;
  auto infos = task->names();
  if (!infos) return kr_of(infos.status());
  std::vector<mach_port_name_t> in_set;
  for (const auto& info : *infos) {
    if ((info.type & MACH_PORT_TYPE_RECEIVE) == 0) continue;
    auto status = task->get_attributes(info.name);
    if (status && status->pset == name) in_set.push_back(info.name);
  }
  mach_port_name_t* array = nullptr;
  if (!portd::mach::copy_out_array(in_set, &array)) return KERN_RESOURCE_SHORTAGE;
  *members = array;
  *membersCnt = static_cast<mach_msg_type_number_t>(in_set.size());
  return KERN_SUCCESS;
}

kern_return_t mach_port_request_notification(ipc_space_t space, mach_port_name_t name,
                                             mach_msg_id_t msgid, mach_port_mscount_t sync,
                                             mach_port_t notify, mach_msg_type_name_t notifyPoly,
                                             mach_port_t* previous) {
  PORTD_TASK_OR_RETURN(space);
  if (previous == nullptr) return KERN_INVALID_ARGUMENT;
  auto old = task->request_notification(name, static_cast<Notification>(msgid), sync, notify,
                                        static_cast<Disposition>(notifyPoly));
  if (!old) return kr_of(old.status());
  *previous = *old;
  return KERN_SUCCESS;
}

kern_return_t mach_port_insert_right(ipc_space_t space, mach_port_name_t name, mach_port_t poly,
                                     mach_msg_type_name_t polyPoly) {
  PORTD_TASK_OR_RETURN(space);
  if (polyPoly > 0xff) return KERN_INVALID_VALUE;
  return kr_of(task->insert_right(name, poly, static_cast<Disposition>(polyPoly)));
}

kern_return_t mach_port_extract_right(ipc_space_t space, mach_port_name_t name,
                                      mach_msg_type_name_t msgt_name, mach_port_t* poly,
                                      mach_msg_type_name_t* polyPoly) {
  PORTD_TASK_OR_RETURN(space);
  if (poly == nullptr || polyPoly == nullptr) return KERN_INVALID_ARGUMENT;
  if (msgt_name > 0xff) return KERN_INVALID_VALUE;
  auto extracted = task->extract_right(name, static_cast<Disposition>(msgt_name));
  if (!extracted) return kr_of(extracted.status());
  *poly = extracted->name;
  *polyPoly = static_cast<mach_msg_type_name_t>(extracted->type);
  return KERN_SUCCESS;
}

kern_return_t mach_port_get_attributes(ipc_space_t space, mach_port_name_t name,
                                       mach_port_flavor_t flavor, mach_port_info_t port_info_out,
                                       mach_msg_type_number_t* port_info_outCnt) {
  PORTD_TASK_OR_RETURN(space);
  if (port_info_out == nullptr || port_info_outCnt == nullptr) return KERN_INVALID_ARGUMENT;
  natural_t needed = 0;
  switch (flavor) {
    case MACH_PORT_LIMITS_INFO: needed = MACH_PORT_LIMITS_INFO_COUNT; break;
    case MACH_PORT_RECEIVE_STATUS: needed = MACH_PORT_RECEIVE_STATUS_COUNT; break;
    case MACH_PORT_INFO_EXT: needed = MACH_PORT_INFO_EXT_COUNT; break;
    default: return KERN_INVALID_ARGUMENT;
  }
  if (*port_info_outCnt < needed) return KERN_FAILURE;
  auto status = task->get_attributes(name);
  if (!status) return kr_of(status.status());
  mach_port_status_t mps{};
  mps.mps_pset = status->pset != MACH_PORT_NULL ? 1 : 0;
  mps.mps_seqno = status->seqno;
  mps.mps_mscount = status->mscount;
  mps.mps_qlimit = status->qlimit;
  mps.mps_msgcount = status->msgcount;
  mps.mps_sorights = status->sorights;
  mps.mps_srights = status->srights ? TRUE : FALSE;
  mps.mps_pdrequest = status->pdrequest ? TRUE : FALSE;
  mps.mps_nsrequest = status->nsrequest ? TRUE : FALSE;
  mps.mps_flags = status->flags;
  switch (flavor) {
    case MACH_PORT_LIMITS_INFO: {
      mach_port_limits_t limits{};
      limits.mpl_qlimit = status->qlimit;
      std::memcpy(port_info_out, &limits, sizeof limits);
      break;
    }
    case MACH_PORT_RECEIVE_STATUS: std::memcpy(port_info_out, &mps, sizeof mps); break;
    case MACH_PORT_INFO_EXT: {
      mach_port_info_ext_t ext{};
      ext.mpie_status = mps;
      std::memcpy(port_info_out, &ext, sizeof ext);
      break;
    }
  }
  *port_info_outCnt = needed;
  return KERN_SUCCESS;
}

kern_return_t mach_port_set_attributes(ipc_space_t space, mach_port_name_t name,
                                       mach_port_flavor_t flavor, mach_port_info_t port_info,
                                       mach_msg_type_number_t port_infoCnt) {
  PORTD_TASK_OR_RETURN(space);
  if (flavor != MACH_PORT_LIMITS_INFO) return KERN_INVALID_ARGUMENT;
  if (port_info == nullptr || port_infoCnt < MACH_PORT_LIMITS_INFO_COUNT) return KERN_FAILURE;
  mach_port_limits_t limits;
  std::memcpy(&limits, port_info, sizeof limits);
  if (limits.mpl_qlimit > MACH_PORT_QLIMIT_MAX) return KERN_INVALID_VALUE;
  return kr_of(task->set_qlimit(name, limits.mpl_qlimit));
}

kern_return_t mach_port_construct(ipc_space_t space, mach_port_options_ptr_t options,
                                  mach_port_context_t context, mach_port_name_t* name) {
  PORTD_TASK_OR_RETURN(space);
  (void)context;
  if (options == nullptr || name == nullptr) return KERN_INVALID_ARGUMENT;
  if ((options->flags & MPO_QLIMIT) != 0 && options->mpl.mpl_qlimit > MACH_PORT_QLIMIT_MAX) {
    return KERN_INVALID_VALUE;
  }
  auto port = task->allocate(Right::kReceive);
  if (!port) return kr_of(port.status());
  // All or nothing: a later step that fails takes the new port away again.
  portd::Status step = portd::Status::kSuccess;
  if ((options->flags & MPO_QLIMIT) != 0) step = task->set_qlimit(*port, options->mpl.mpl_qlimit);
  if (portd::ok(step) && (options->flags & MPO_INSERT_SEND_RIGHT) != 0) {
    step = task->insert_right(*port, *port, Disposition::kMakeSend);
  }
  if (!portd::ok(step)) {
    (void)task->mod_refs(*port, Right::kReceive, -1);
    return kr_of(step);
  }
  *name = *port;
  return KERN_SUCCESS;
}

kern_return_t mach_port_destruct(ipc_space_t space, mach_port_name_t name,
                                 mach_port_delta_t srdelta, mach_port_context_t guard) {
  PORTD_TASK_OR_RETURN(space);
  (void)guard;
  if (srdelta > 0) return KERN_INVALID_VALUE;
  // Check the receive right first, so that a failure changes nothing.
  auto type = task->type(name);
  if (!type) return kr_of(type.status());
  if ((*type & MACH_PORT_TYPE_RECEIVE) == 0) return KERN_INVALID_RIGHT;
  if (srdelta != 0) {
    const portd::Status s = task->mod_refs(name, Right::kSend, srdelta);
    if (!portd::ok(s)) return kr_of(s);
  }
  return kr_of(task->mod_refs(name, Right::kReceive, -1));
}

kern_return_t mach_port_guard(ipc_space_t space, mach_port_name_t name, mach_port_context_t guard,
                              boolean_t strict) {
  PORTD_TASK_OR_RETURN(space);
  (void)guard;
  (void)strict;
  auto type = task->type(name);
  if (!type) return kr_of(type.status());
  return (*type & MACH_PORT_TYPE_RECEIVE) != 0 ? KERN_SUCCESS : KERN_INVALID_RIGHT;
}

kern_return_t mach_port_unguard(ipc_space_t space, mach_port_name_t name,
                                mach_port_context_t guard) {
  return mach_port_guard(space, name, guard, FALSE);
}

mach_port_t mach_reply_port(void) {
  mach_port_name_t name = MACH_PORT_NULL;
  if (mach_port_allocate(portd::mach::kTaskSelfName, MACH_PORT_RIGHT_RECEIVE, &name) !=
      KERN_SUCCESS) {
    return MACH_PORT_NULL;
  }
  return name;
}

kern_return_t task_get_special_port(task_t task_name, int which_port, mach_port_t* special_port) {
  if (task_name != portd::mach::kTaskSelfName) return MACH_SEND_INVALID_DEST;
  if (special_port == nullptr) return KERN_INVALID_ARGUMENT;
  switch (which_port) {
    case TASK_KERNEL_PORT: *special_port = portd::mach::kTaskSelfName; return KERN_SUCCESS;
    case TASK_BOOTSTRAP_PORT: *special_port = portd::mach::kBootstrapName; return KERN_SUCCESS;
    default: return KERN_INVALID_ARGUMENT;
  }
}

}  // extern "C"
#pragma GCC visibility pop
