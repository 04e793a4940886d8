/*
 * mach/message.h — Mach messages: the header, descriptors, trailers, options
 * and return codes, with XNU's 64-bit user layouts (#pragma pack(4) as XNU
 * has it) and values; mach_msg() and mach_msg_overwrite().
 *
 * What portd does with each option, and where it differs from XNU, is in
 * docs/mach.md. In short: MACH_SEND_MSG, MACH_RCV_MSG (both at once is one
 * round trip to the daemon), MACH_SEND_TIMEOUT, MACH_RCV_TIMEOUT,
 * MACH_RCV_LARGE and the trailer requests (MACH_RCV_TRAILER_ELEMENTS up to
 * MACH_RCV_TRAILER_AV) behave as on XNU; the scheduling hints (importance,
 * QoS, override) are accepted and ignored; MACH_SEND_NOTIFY (XNU's
 * send-possible notification) is refused with MACH_SEND_INVALID_OPTIONS.
 *
 * Descriptors: port and out-of-line port array descriptors work both ways.
 * Out-of-line memory is received (mapped privately; free it with
 * vm_deallocate); sending it waits for libportd's out-of-line support and is
 * refused with KERN_NOT_SUPPORTED until then (docs/mach.md). Guarded port
 * descriptors are refused with MACH_SEND_INVALID_TYPE.
 *
 * portd extension: cache-on-full (GNU Mach's MACH_SEND_NOTIFY, which cannot
 * keep GNU's names and values because XNU uses them for something else):
 *
 *   PORTD_SEND_NOTIFY              option bit 0x00002000 (unused by XNU). If
 *                                  the destination's queue is full (after the
 *                                  MACH_SEND_TIMEOUT wait, if given; at once
 *                                  otherwise), the daemon keeps the message
 *                                  and mach_msg returns PORTD_SEND_WILL_NOTIFY.
 *                                  When the message enters the queue, a
 *                                  PORTD_NOTIFY_MSG_ACCEPTED notification
 *                                  (<mach/notify.h>) arrives on the port named
 *                                  by mach_msg's `notify` argument, which must
 *                                  be a receive right of the caller's.
 *   PORTD_SEND_WILL_NOTIFY         0x10000040: the message was cached. It has
 *                                  been sent (its rights are gone).
 *   PORTD_SEND_NOTIFY_IN_PROGRESS  0x10000041: this thread already has a cached
 *                                  message pending; nothing was sent.
 */
#ifndef _MACH_MESSAGE_H_
#define _MACH_MESSAGE_H_

#include <limits.h>
#include <mach/boolean.h>
#include <mach/kern_return.h>
#include <mach/port.h>
#include <mach/portd_config.h>
#include <mach/vm_types.h>
#include <stddef.h>
#include <stdint.h>

typedef natural_t mach_msg_timeout_t;
#define MACH_MSG_TIMEOUT_NONE ((mach_msg_timeout_t)0)

#define MACH_MSGH_BITS_ZERO 0x00000000
#define MACH_MSGH_BITS_REMOTE_MASK 0x0000001f
#define MACH_MSGH_BITS_LOCAL_MASK 0x00001f00
#define MACH_MSGH_BITS_VOUCHER_MASK 0x001f0000
#define MACH_MSGH_BITS_PORTS_MASK \
  (MACH_MSGH_BITS_REMOTE_MASK | MACH_MSGH_BITS_LOCAL_MASK | MACH_MSGH_BITS_VOUCHER_MASK)
#define MACH_MSGH_BITS_COMPLEX 0x80000000U
#define MACH_MSGH_BITS_USER 0x801f1f1fU
#define MACH_MSGH_BITS_RAISEIMP 0x20000000U
#define MACH_MSGH_BITS_DENAP MACH_MSGH_BITS_RAISEIMP
#define MACH_MSGH_BITS_IMPHOLDASRT 0x10000000U
#define MACH_MSGH_BITS_DENAPHOLDASRT MACH_MSGH_BITS_IMPHOLDASRT
#define MACH_MSGH_BITS_CIRCULAR 0x10000000U
#define MACH_MSGH_BITS_USED 0xb01f1f1fU

#define MACH_MSGH_BITS(remote, local) ((remote) | ((local) << 8))
#define MACH_MSGH_BITS_SET_PORTS(remote, local, voucher)                                  \
  (((remote)&MACH_MSGH_BITS_REMOTE_MASK) | (((local) << 8) & MACH_MSGH_BITS_LOCAL_MASK) | \
   (((voucher) << 16) & MACH_MSGH_BITS_VOUCHER_MASK))
#define MACH_MSGH_BITS_SET(remote, local, voucher, other) \
  (MACH_MSGH_BITS_SET_PORTS((remote), (local), (voucher)) | ((other) & ~MACH_MSGH_BITS_PORTS_MASK))

#define MACH_MSGH_BITS_REMOTE(bits) ((bits)&MACH_MSGH_BITS_REMOTE_MASK)
#define MACH_MSGH_BITS_LOCAL(bits) (((bits)&MACH_MSGH_BITS_LOCAL_MASK) >> 8)
#define MACH_MSGH_BITS_VOUCHER(bits) (((bits)&MACH_MSGH_BITS_VOUCHER_MASK) >> 16)
#define MACH_MSGH_BITS_PORTS(bits) ((bits)&MACH_MSGH_BITS_PORTS_MASK)
#define MACH_MSGH_BITS_OTHER(bits) ((bits) & ~MACH_MSGH_BITS_PORTS_MASK)

#define MACH_MSGH_BITS_HAS_REMOTE(bits) (MACH_MSGH_BITS_REMOTE(bits) != MACH_MSGH_BITS_ZERO)
#define MACH_MSGH_BITS_HAS_LOCAL(bits) (MACH_MSGH_BITS_LOCAL(bits) != MACH_MSGH_BITS_ZERO)
#define MACH_MSGH_BITS_HAS_VOUCHER(bits) (MACH_MSGH_BITS_VOUCHER(bits) != MACH_MSGH_BITS_ZERO)
#define MACH_MSGH_BITS_IS_COMPLEX(bits) (((bits)&MACH_MSGH_BITS_COMPLEX) != MACH_MSGH_BITS_ZERO)

typedef unsigned int mach_msg_bits_t;
typedef natural_t mach_msg_size_t;
typedef integer_t mach_msg_id_t;

#define MACH_MSG_SIZE_NULL (mach_msg_size_t*)0

typedef unsigned int mach_msg_priority_t;
#define MACH_MSG_PRIORITY_UNSPECIFIED (mach_msg_priority_t)0

typedef unsigned int mach_msg_type_name_t;

#define MACH_MSG_TYPE_MOVE_RECEIVE 16
#define MACH_MSG_TYPE_MOVE_SEND 17
#define MACH_MSG_TYPE_MOVE_SEND_ONCE 18
#define MACH_MSG_TYPE_COPY_SEND 19
#define MACH_MSG_TYPE_MAKE_SEND 20
#define MACH_MSG_TYPE_MAKE_SEND_ONCE 21
#define MACH_MSG_TYPE_COPY_RECEIVE 22 /* not valid */
#define MACH_MSG_TYPE_DISPOSE_RECEIVE 24
#define MACH_MSG_TYPE_DISPOSE_SEND 25
#define MACH_MSG_TYPE_DISPOSE_SEND_ONCE 26

typedef unsigned int mach_msg_copy_options_t;

#define MACH_MSG_PHYSICAL_COPY 0
#define MACH_MSG_VIRTUAL_COPY 1
#define MACH_MSG_ALLOCATE 2
#define MACH_MSG_OVERWRITE 3 /* deprecated */

#define MACH_MSG_GUARD_FLAGS_NONE 0x0000
#define MACH_MSG_GUARD_FLAGS_IMMOVABLE_RECEIVE 0x0001
#define MACH_MSG_GUARD_FLAGS_UNGUARDED_ON_SEND 0x0002
#define MACH_MSG_GUARD_FLAGS_MASK 0x0003
typedef unsigned int mach_msg_guard_flags_t;

typedef unsigned int mach_msg_descriptor_type_t;

#define MACH_MSG_PORT_DESCRIPTOR 0
#define MACH_MSG_OOL_DESCRIPTOR 1
#define MACH_MSG_OOL_PORTS_DESCRIPTOR 2
#define MACH_MSG_OOL_VOLATILE_DESCRIPTOR 3
#define MACH_MSG_GUARDED_PORT_DESCRIPTOR 4
#define MACH_MSG_DESCRIPTOR_MAX MACH_MSG_GUARDED_PORT_DESCRIPTOR

#pragma pack(push, 4)

typedef struct {
  natural_t pad1;
  mach_msg_size_t pad2;
  unsigned int pad3 : 24;
  mach_msg_descriptor_type_t type : 8;
} mach_msg_type_descriptor_t;

typedef struct {
  mach_port_t name;
  mach_msg_size_t pad1;
  unsigned int pad2 : 16;
  mach_msg_type_name_t disposition : 8;
  mach_msg_descriptor_type_t type : 8;
} mach_msg_port_descriptor_t;

typedef struct {
  uint32_t address;
  mach_msg_size_t size;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  unsigned int pad1 : 8;
  mach_msg_descriptor_type_t type : 8;
} mach_msg_ool_descriptor32_t;

typedef struct {
  uint64_t address;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  unsigned int pad1 : 8;
  mach_msg_descriptor_type_t type : 8;
  mach_msg_size_t size;
} mach_msg_ool_descriptor64_t;

typedef struct {
  void* address;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  unsigned int pad1 : 8;
  mach_msg_descriptor_type_t type : 8;
  mach_msg_size_t size;
} mach_msg_ool_descriptor_t;

typedef struct {
  uint32_t address;
  mach_msg_size_t count;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  mach_msg_type_name_t disposition : 8;
  mach_msg_descriptor_type_t type : 8;
} mach_msg_ool_ports_descriptor32_t;

typedef struct {
  uint64_t address;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  mach_msg_type_name_t disposition : 8;
  mach_msg_descriptor_type_t type : 8;
  mach_msg_size_t count;
} mach_msg_ool_ports_descriptor64_t;

typedef struct {
  void* address;
  boolean_t deallocate : 8;
  mach_msg_copy_options_t copy : 8;
  mach_msg_type_name_t disposition : 8;
  mach_msg_descriptor_type_t type : 8;
  mach_msg_size_t count;
} mach_msg_ool_ports_descriptor_t;

typedef struct {
  mach_port_context_t context;
  mach_msg_guard_flags_t flags : 16;
  mach_msg_type_name_t disposition : 8;
  mach_msg_descriptor_type_t type : 8;
  mach_port_name_t name;
} mach_msg_guarded_port_descriptor_t;

/* Descriptors of different kinds differ in size on LP64: step through a
 * message's descriptors by each one's own size, not by this union's. */
typedef union {
  mach_msg_port_descriptor_t port;
  mach_msg_ool_descriptor_t out_of_line;
  mach_msg_ool_ports_descriptor_t ool_ports;
  mach_msg_type_descriptor_t type;
  mach_msg_guarded_port_descriptor_t guarded_port;
} mach_msg_descriptor_t;

typedef struct {
  mach_msg_size_t msgh_descriptor_count;
} mach_msg_body_t;

#define MACH_MSG_BODY_NULL ((mach_msg_body_t*)0)
#define MACH_MSG_DESCRIPTOR_NULL ((mach_msg_descriptor_t*)0)

typedef struct {
  mach_msg_bits_t msgh_bits;
  mach_msg_size_t msgh_size;
  mach_port_t msgh_remote_port;
  mach_port_t msgh_local_port;
  mach_port_name_t msgh_voucher_port;
  mach_msg_id_t msgh_id;
} mach_msg_header_t;

#define msgh_reserved msgh_voucher_port
#define MACH_MSG_NULL ((mach_msg_header_t*)0)

typedef struct {
  mach_msg_header_t header;
  mach_msg_body_t body;
} mach_msg_base_t;

typedef unsigned int mach_msg_trailer_type_t;

#define MACH_MSG_TRAILER_FORMAT_0 0

typedef unsigned int mach_msg_trailer_size_t;
typedef char* mach_msg_trailer_info_t;

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
} mach_msg_trailer_t;

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
  mach_port_seqno_t msgh_seqno;
} mach_msg_seqno_trailer_t;

/* val[0] is the sender's effective uid, val[1] its effective gid. */
typedef struct {
  unsigned int val[2];
} security_token_t;

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
  mach_port_seqno_t msgh_seqno;
  security_token_t msgh_sender;
} mach_msg_security_trailer_t;

/*
 * The sender's identity as XNU lays it out: val[0] audit uid, val[1] euid,
 * val[2] egid, val[3] ruid, val[4] rgid, val[5] pid, val[6] audit session,
 * val[7] pid version. portd fills the uids with the sender's uid, the gids
 * with its gid (SO_PEERCRED: effective ids at connect time), val[5] with its
 * pid and val[6], val[7] with 0. Notifications from the daemon carry
 * KERNEL_AUDIT_TOKEN_VALUE (all zero), as XNU's kernel-sent messages do.
 */
typedef struct {
  unsigned int val[8];
} audit_token_t;

#define INVALID_AUDIT_TOKEN_VALUE                                                      \
  {                                                                                    \
    { UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX } \
  }

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
  mach_port_seqno_t msgh_seqno;
  security_token_t msgh_sender;
  audit_token_t msgh_audit;
} mach_msg_audit_trailer_t;

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
  mach_port_seqno_t msgh_seqno;
  security_token_t msgh_sender;
  audit_token_t msgh_audit;
  mach_port_context_t msgh_context;
} mach_msg_context_trailer_t;

typedef struct {
  mach_port_name_t sender;
} msg_labels_t;

typedef int mach_msg_filter_id;
#define MACH_MSG_FILTER_POLICY_ALLOW (mach_msg_filter_id)0

typedef struct {
  mach_msg_trailer_type_t msgh_trailer_type;
  mach_msg_trailer_size_t msgh_trailer_size;
  mach_port_seqno_t msgh_seqno;
  security_token_t msgh_sender;
  audit_token_t msgh_audit;
  mach_port_context_t msgh_context;
  mach_msg_filter_id msgh_ad;
  msg_labels_t msgh_labels;
} mach_msg_mac_trailer_t;

#define MACH_MSG_TRAILER_MINIMUM_SIZE sizeof(mach_msg_trailer_t)

typedef mach_msg_mac_trailer_t mach_msg_max_trailer_t;
#define MAX_TRAILER_SIZE ((mach_msg_size_t)sizeof(mach_msg_max_trailer_t))

typedef mach_msg_security_trailer_t mach_msg_format_0_trailer_t;
#define MACH_MSG_TRAILER_FORMAT_0_SIZE sizeof(mach_msg_format_0_trailer_t)

#define KERNEL_SECURITY_TOKEN_VALUE \
  {                                 \
    { 0, 1 }                        \
  }
#define KERNEL_AUDIT_TOKEN_VALUE \
  {                              \
    { 0, 0, 0, 0, 0, 0, 0, 0 }   \
  }

typedef integer_t mach_msg_options_t;

typedef struct {
  mach_msg_header_t header;
} mach_msg_empty_send_t;

typedef struct {
  mach_msg_header_t header;
  mach_msg_trailer_t trailer;
} mach_msg_empty_rcv_t;

typedef union {
  mach_msg_empty_send_t send;
  mach_msg_empty_rcv_t rcv;
} mach_msg_empty_t;

#pragma pack(pop)

#define round_msg(x) (((mach_msg_size_t)(x) + sizeof(natural_t) - 1) & ~(sizeof(natural_t) - 1))

#define MACH_MSG_SIZE_MAX ((mach_msg_size_t)~0)
#define MACH_MSG_SIZE_RELIABLE ((mach_msg_size_t)256 * 1024)

#define MACH_MSGH_KIND_NORMAL 0x00000000
#define MACH_MSGH_KIND_NOTIFICATION 0x00000001
#define msgh_kind msgh_seqno
#define mach_msg_kind_t mach_port_seqno_t

typedef natural_t mach_msg_type_size_t;
typedef natural_t mach_msg_type_number_t;

#define MACH_MSG_TYPE_PORT_NONE 0
#define MACH_MSG_TYPE_PORT_NAME 15
#define MACH_MSG_TYPE_PORT_RECEIVE MACH_MSG_TYPE_MOVE_RECEIVE
#define MACH_MSG_TYPE_PORT_SEND MACH_MSG_TYPE_MOVE_SEND
#define MACH_MSG_TYPE_PORT_SEND_ONCE MACH_MSG_TYPE_MOVE_SEND_ONCE
#define MACH_MSG_TYPE_LAST 22
#define MACH_MSG_TYPE_POLYMORPHIC ((mach_msg_type_name_t)-1)

#define MACH_MSG_TYPE_PORT_ANY(x) \
  (((x) >= MACH_MSG_TYPE_MOVE_RECEIVE) && ((x) <= MACH_MSG_TYPE_MAKE_SEND_ONCE))
#define MACH_MSG_TYPE_PORT_ANY_SEND(x) \
  (((x) >= MACH_MSG_TYPE_MOVE_SEND) && ((x) <= MACH_MSG_TYPE_MAKE_SEND_ONCE))
#define MACH_MSG_TYPE_PORT_ANY_RIGHT(x) \
  (((x) >= MACH_MSG_TYPE_MOVE_RECEIVE) && ((x) <= MACH_MSG_TYPE_MOVE_SEND_ONCE))

typedef integer_t mach_msg_option_t;

#define MACH_MSG_OPTION_NONE 0x00000000

#define MACH_SEND_MSG 0x00000001
#define MACH_RCV_MSG 0x00000002
#define MACH_RCV_LARGE 0x00000004
#define MACH_RCV_LARGE_IDENTITY 0x00000008
#define MACH_SEND_TIMEOUT 0x00000010
#define MACH_SEND_OVERRIDE 0x00000020
#define MACH_SEND_INTERRUPT 0x00000040
#define MACH_SEND_NOTIFY 0x00000080
#define MACH_SEND_ALWAYS 0x00010000
#define MACH_SEND_FILTER_NONFATAL 0x00010000
#define MACH_SEND_TRAILER 0x00020000
#define MACH_SEND_NOIMPORTANCE 0x00040000
#define MACH_SEND_NODENAP MACH_SEND_NOIMPORTANCE
#define MACH_SEND_IMPORTANCE 0x00080000
#define MACH_SEND_SYNC_OVERRIDE 0x00100000
#define MACH_SEND_PROPAGATE_QOS 0x00200000
#define MACH_SEND_SYNC_USE_THRPRI MACH_SEND_PROPAGATE_QOS
#define MACH_SEND_KERNEL 0x00400000
#define MACH_SEND_SYNC_BOOTSTRAP_CHECKIN 0x00800000

#define MACH_RCV_TIMEOUT 0x00000100
#define MACH_RCV_NOTIFY 0x00000000
#define MACH_RCV_INTERRUPT 0x00000400
#define MACH_RCV_VOUCHER 0x00000800
#define MACH_RCV_OVERWRITE 0x00000000
#define MACH_RCV_GUARDED_DESC 0x00001000
#define MACH_RCV_SYNC_WAIT 0x00004000
#define MACH_RCV_SYNC_PEEK 0x00008000

#define MACH_MSG_STRICT_REPLY 0x00000200

/* portd extension: cache-on-full (see the top of this file). */
#define PORTD_SEND_NOTIFY 0x00002000

#define MACH_RCV_TRAILER_NULL 0
#define MACH_RCV_TRAILER_SEQNO 1
#define MACH_RCV_TRAILER_SENDER 2
#define MACH_RCV_TRAILER_AUDIT 3
#define MACH_RCV_TRAILER_CTX 4
#define MACH_RCV_TRAILER_AV 7
#define MACH_RCV_TRAILER_LABELS 8

#define MACH_RCV_TRAILER_TYPE(x) (((x)&0xf) << 28)
#define MACH_RCV_TRAILER_ELEMENTS(x) (((x)&0xf) << 24)
#define MACH_RCV_TRAILER_MASK ((0xf << 24))

#define GET_RCV_ELEMENTS(y) (((y) >> 24) & 0xf)

#define REQUESTED_TRAILER_SIZE_NATIVE(y)                                                          \
  ((mach_msg_trailer_size_t)((GET_RCV_ELEMENTS(y) == MACH_RCV_TRAILER_NULL)                       \
                                 ? sizeof(mach_msg_trailer_t)                                     \
                                 : ((GET_RCV_ELEMENTS(y) == MACH_RCV_TRAILER_SEQNO)               \
                                        ? sizeof(mach_msg_seqno_trailer_t)                        \
                                        : ((GET_RCV_ELEMENTS(y) == MACH_RCV_TRAILER_SENDER)       \
                                               ? sizeof(mach_msg_security_trailer_t)              \
                                               : ((GET_RCV_ELEMENTS(y) == MACH_RCV_TRAILER_AUDIT) \
                                                      ? sizeof(mach_msg_audit_trailer_t)          \
                                                      : ((GET_RCV_ELEMENTS(y) ==                  \
                                                          MACH_RCV_TRAILER_CTX)                   \
                                                             ? sizeof(mach_msg_context_trailer_t) \
                                                             : ((GET_RCV_ELEMENTS(y) ==           \
                                                                 MACH_RCV_TRAILER_AV)             \
                                                                    ? sizeof(                     \
                                                                          mach_msg_mac_trailer_t) \
                                                                    : sizeof(                     \
                                                                          mach_msg_max_trailer_t))))))))
#define REQUESTED_TRAILER_SIZE(y) REQUESTED_TRAILER_SIZE_NATIVE(y)

typedef kern_return_t mach_msg_return_t;

#define MACH_MSG_SUCCESS 0x00000000

#define MACH_MSG_MASK 0x00003e00
#define MACH_MSG_IPC_SPACE 0x00002000
#define MACH_MSG_VM_SPACE 0x00001000
#define MACH_MSG_IPC_KERNEL 0x00000800
#define MACH_MSG_VM_KERNEL 0x00000400

#define MACH_SEND_IN_PROGRESS 0x10000001
#define MACH_SEND_INVALID_DATA 0x10000002
#define MACH_SEND_INVALID_DEST 0x10000003
#define MACH_SEND_TIMED_OUT 0x10000004
#define MACH_SEND_INVALID_VOUCHER 0x10000005
#define MACH_SEND_INTERRUPTED 0x10000007
#define MACH_SEND_MSG_TOO_SMALL 0x10000008
#define MACH_SEND_INVALID_REPLY 0x10000009
#define MACH_SEND_INVALID_RIGHT 0x1000000a
#define MACH_SEND_INVALID_NOTIFY 0x1000000b
#define MACH_SEND_INVALID_MEMORY 0x1000000c
#define MACH_SEND_NO_BUFFER 0x1000000d
#define MACH_SEND_TOO_LARGE 0x1000000e
#define MACH_SEND_INVALID_TYPE 0x1000000f
#define MACH_SEND_INVALID_HEADER 0x10000010
#define MACH_SEND_INVALID_TRAILER 0x10000011
#define MACH_SEND_INVALID_CONTEXT 0x10000012
#define MACH_SEND_INVALID_OPTIONS 0x10000013
#define MACH_SEND_INVALID_RT_OOL_SIZE 0x10000015
#define MACH_SEND_NO_GRANT_DEST 0x10000016
#define MACH_SEND_MSG_FILTERED 0x10000017

/* portd extensions: cache-on-full (see the top of this file). */
#define PORTD_SEND_WILL_NOTIFY 0x10000040
#define PORTD_SEND_NOTIFY_IN_PROGRESS 0x10000041

#define MACH_RCV_IN_PROGRESS 0x10004001
#define MACH_RCV_INVALID_NAME 0x10004002
#define MACH_RCV_TIMED_OUT 0x10004003
#define MACH_RCV_TOO_LARGE 0x10004004
#define MACH_RCV_INTERRUPTED 0x10004005
#define MACH_RCV_PORT_CHANGED 0x10004006
#define MACH_RCV_INVALID_NOTIFY 0x10004007
#define MACH_RCV_INVALID_DATA 0x10004008
#define MACH_RCV_PORT_DIED 0x10004009
#define MACH_RCV_IN_SET 0x1000400a
#define MACH_RCV_HEADER_ERROR 0x1000400b
#define MACH_RCV_BODY_ERROR 0x1000400c
#define MACH_RCV_INVALID_TYPE 0x1000400d
#define MACH_RCV_SCATTER_SMALL 0x1000400e
#define MACH_RCV_INVALID_TRAILER 0x1000400f
#define MACH_RCV_IN_PROGRESS_TIMED 0x10004011
#define MACH_RCV_INVALID_REPLY 0x10004012
#define MACH_RCV_INVALID_ARGUMENTS 0x10004013

PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_header_t) == 24, "mach_msg_header_t is 24 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_header_t, msgh_size) == 4, "msgh_size at 4");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_header_t, msgh_remote_port) == 8, "remote at 8");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_header_t, msgh_local_port) == 12, "local at 12");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_header_t, msgh_voucher_port) == 16, "voucher at 16");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_header_t, msgh_id) == 20, "msgh_id at 20");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_body_t) == 4, "mach_msg_body_t is 4 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_base_t) == 28, "mach_msg_base_t is 28 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_type_descriptor_t) == 12, "type descriptor is 12 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_port_descriptor_t) == 12, "port descriptor is 12 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_ool_descriptor_t) == 16, "OOL descriptor is 16 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_ool_descriptor_t, size) == 12, "OOL size at 12");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_ool_ports_descriptor_t) == 16,
                         "OOL ports descriptor is 16 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_ool_ports_descriptor_t, count) == 12,
                         "OOL ports count at 12");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_guarded_port_descriptor_t) == 16,
                         "guarded port descriptor is 16 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_descriptor_t) == 16, "descriptor union is 16 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_trailer_t) == 8, "basic trailer is 8 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_seqno_trailer_t) == 12, "seqno trailer is 12 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_security_trailer_t) == 20, "security trailer is 20 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_audit_trailer_t) == 52, "audit trailer is 52 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_msg_audit_trailer_t, msgh_audit) == 20, "audit token at 20");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_context_trailer_t) == 60, "context trailer is 60 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_msg_mac_trailer_t) == 68, "mac trailer is 68 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(audit_token_t) == 32, "audit_token_t is 32 bytes");

PORTD_MACH_BEGIN_DECLS

/*
 * Sends and/or receives a message (options above). With MACH_SEND_MSG and
 * MACH_RCV_MSG together the send and the receive are one request to the
 * daemon. `notify` names the receive right for PORTD_SEND_NOTIFY.
 */
mach_msg_return_t mach_msg(mach_msg_header_t* msg, mach_msg_option_t option,
                           mach_msg_size_t send_size, mach_msg_size_t rcv_size,
                           mach_port_name_t rcv_name, mach_msg_timeout_t timeout,
                           mach_port_name_t notify);

/* As mach_msg, receiving into `rcv_msg` (NULL: into `msg`). `rcv_limit` is
 * unused, as on XNU: `rcv_size` is the receive buffer's size. */
mach_msg_return_t mach_msg_overwrite(mach_msg_header_t* msg, mach_msg_option_t option,
                                     mach_msg_size_t send_size, mach_msg_size_t rcv_size,
                                     mach_port_name_t rcv_name, mach_msg_timeout_t timeout,
                                     mach_port_name_t notify, mach_msg_header_t* rcv_msg,
                                     mach_msg_size_t rcv_limit);

/* mach_msg(msg, MACH_SEND_MSG, msg->msgh_size, ...). */
mach_msg_return_t mach_msg_send(mach_msg_header_t* msg);

/* mach_msg(msg, MACH_RCV_MSG, 0, msg->msgh_size, msg->msgh_local_port, ...). */
mach_msg_return_t mach_msg_receive(mach_msg_header_t* msg);

/* Releases every right and out-of-line region a received (or unsent)
 * message holds, as XNU's libsyscall does. */
void mach_msg_destroy(mach_msg_header_t* msg);

PORTD_MACH_END_DECLS

#endif /* _MACH_MESSAGE_H_ */
