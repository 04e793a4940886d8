/*
 * mach/port.h — port names, rights, types and port attributes, with XNU's
 * 64-bit user layouts and values.
 *
 * portd's names follow XNU's shape, (index << 8) | generation, and the daemon
 * never gives out a name whose index is 0: names 1 to 255 are free for the
 * library's own use (mach_task_self() and bootstrap_port, see
 * <mach/mach_init.h>).
 */
#ifndef _MACH_PORT_H_
#define _MACH_PORT_H_

#include <mach/boolean.h>
#include <mach/portd_config.h>
#include <mach/vm_types.h>
#include <stddef.h>
#include <stdint.h>

typedef natural_t mach_port_name_t;
typedef mach_port_name_t* mach_port_name_array_t;
typedef natural_t mach_port_t;
typedef mach_port_t* mach_port_array_t;

#define MACH_PORT_NULL 0 /* intentional loose typing, as in XNU */
#define MACH_PORT_DEAD ((mach_port_name_t)~0)
#define MACH_PORT_VALID(name) (((name) != MACH_PORT_NULL) && ((name) != MACH_PORT_DEAD))

#define MACH_PORT_INDEX(name) ((name) >> 8)
#define MACH_PORT_GEN(name) (((name)&0xff) << 24)
#define MACH_PORT_MAKE(index, gen) (((index) << 8) | (gen) >> 24)

typedef natural_t mach_port_right_t;

#define MACH_PORT_RIGHT_SEND ((mach_port_right_t)0)
#define MACH_PORT_RIGHT_RECEIVE ((mach_port_right_t)1)
#define MACH_PORT_RIGHT_SEND_ONCE ((mach_port_right_t)2)
#define MACH_PORT_RIGHT_PORT_SET ((mach_port_right_t)3)
#define MACH_PORT_RIGHT_DEAD_NAME ((mach_port_right_t)4)
#define MACH_PORT_RIGHT_LABELH ((mach_port_right_t)5)
#define MACH_PORT_RIGHT_NUMBER ((mach_port_right_t)6)

typedef natural_t mach_port_type_t;
typedef mach_port_type_t* mach_port_type_array_t;

#define MACH_PORT_TYPE(right) \
  ((mach_port_type_t)(((mach_port_type_t)1) << ((right) + ((mach_port_right_t)16))))
#define MACH_PORT_TYPE_NONE ((mach_port_type_t)0L)
#define MACH_PORT_TYPE_SEND MACH_PORT_TYPE(MACH_PORT_RIGHT_SEND)
#define MACH_PORT_TYPE_RECEIVE MACH_PORT_TYPE(MACH_PORT_RIGHT_RECEIVE)
#define MACH_PORT_TYPE_SEND_ONCE MACH_PORT_TYPE(MACH_PORT_RIGHT_SEND_ONCE)
#define MACH_PORT_TYPE_PORT_SET MACH_PORT_TYPE(MACH_PORT_RIGHT_PORT_SET)
#define MACH_PORT_TYPE_DEAD_NAME MACH_PORT_TYPE(MACH_PORT_RIGHT_DEAD_NAME)
#define MACH_PORT_TYPE_LABELH MACH_PORT_TYPE(MACH_PORT_RIGHT_LABELH)

#define MACH_PORT_TYPE_SEND_RECEIVE (MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE)
#define MACH_PORT_TYPE_SEND_RIGHTS (MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_SEND_ONCE)
#define MACH_PORT_TYPE_PORT_RIGHTS (MACH_PORT_TYPE_SEND_RIGHTS | MACH_PORT_TYPE_RECEIVE)
#define MACH_PORT_TYPE_PORT_OR_DEAD (MACH_PORT_TYPE_PORT_RIGHTS | MACH_PORT_TYPE_DEAD_NAME)
#define MACH_PORT_TYPE_ALL_RIGHTS (MACH_PORT_TYPE_PORT_OR_DEAD | MACH_PORT_TYPE_PORT_SET)

#define MACH_PORT_TYPE_DNREQUEST 0x80000000
#define MACH_PORT_TYPE_SPREQUEST 0x40000000
#define MACH_PORT_TYPE_SPREQUEST_DELAYED 0x20000000

typedef natural_t mach_port_urefs_t;
typedef integer_t mach_port_delta_t;

/* User references are capped here (XNU's MACH_PORT_UREFS_MAX). */
#define MACH_PORT_UREFS_MAX ((mach_port_urefs_t)0xffff)

typedef natural_t mach_port_seqno_t;
typedef natural_t mach_port_mscount_t;
typedef natural_t mach_port_msgcount_t;
typedef natural_t mach_port_rights_t;

#define MACH_PORT_SRIGHTS_NONE 0
#define MACH_PORT_SRIGHTS_PRESENT 1
typedef unsigned int mach_port_srights_t;

/*
 * MACH_PORT_RECEIVE_STATUS. mps_pset is XNU's "count of containing port
 * sets": 1 while the port is in a set, else 0.
 */
typedef struct mach_port_status {
  mach_port_rights_t mps_pset;
  mach_port_seqno_t mps_seqno;
  mach_port_mscount_t mps_mscount;
  mach_port_msgcount_t mps_qlimit;
  mach_port_msgcount_t mps_msgcount;
  mach_port_rights_t mps_sorights;
  boolean_t mps_srights;
  boolean_t mps_pdrequest;
  boolean_t mps_nsrequest;
  natural_t mps_flags;
} mach_port_status_t;

#define MACH_PORT_QLIMIT_ZERO (0)
#define MACH_PORT_QLIMIT_BASIC (5)
#define MACH_PORT_QLIMIT_SMALL (16)
#define MACH_PORT_QLIMIT_LARGE (1024)
#define MACH_PORT_QLIMIT_KERNEL (65534)
#define MACH_PORT_QLIMIT_MIN MACH_PORT_QLIMIT_ZERO
#define MACH_PORT_QLIMIT_DEFAULT MACH_PORT_QLIMIT_BASIC
#define MACH_PORT_QLIMIT_MAX MACH_PORT_QLIMIT_LARGE

typedef struct mach_port_limits {
  mach_port_msgcount_t mpl_qlimit;
} mach_port_limits_t;

#define MACH_PORT_STATUS_FLAG_TEMPOWNER 0x01
#define MACH_PORT_STATUS_FLAG_GUARDED 0x02
#define MACH_PORT_STATUS_FLAG_STRICT_GUARD 0x04
#define MACH_PORT_STATUS_FLAG_IMP_DONATION 0x08
#define MACH_PORT_STATUS_FLAG_REVIVE 0x10
#define MACH_PORT_STATUS_FLAG_TASKPTR 0x20
#define MACH_PORT_STATUS_FLAG_GUARD_IMMOVABLE_RECEIVE 0x40
#define MACH_PORT_STATUS_FLAG_NO_GRANT 0x80

typedef struct mach_port_info_ext {
  mach_port_status_t mpie_status;
  mach_port_msgcount_t mpie_boost_cnt;
  uint32_t reserved[6];
} mach_port_info_ext_t;

typedef integer_t* mach_port_info_t;

typedef int mach_port_flavor_t;
#define MACH_PORT_LIMITS_INFO 1
#define MACH_PORT_RECEIVE_STATUS 2
#define MACH_PORT_DNREQUESTS_SIZE 3
#define MACH_PORT_TEMPOWNER 4
#define MACH_PORT_IMPORTANCE_RECEIVER 5
#define MACH_PORT_DENAP_RECEIVER 6
#define MACH_PORT_INFO_EXT 7
#define MACH_PORT_GUARD_INFO 8

#define MACH_PORT_LIMITS_INFO_COUNT ((natural_t)(sizeof(mach_port_limits_t) / sizeof(natural_t)))
#define MACH_PORT_RECEIVE_STATUS_COUNT ((natural_t)(sizeof(mach_port_status_t) / sizeof(natural_t)))
#define MACH_PORT_DNREQUESTS_SIZE_COUNT 1
#define MACH_PORT_INFO_EXT_COUNT ((natural_t)(sizeof(mach_port_info_ext_t) / sizeof(natural_t)))

typedef uint64_t mach_port_context_t;

/* Flags of mach_port_options_t (mach_port_construct). portd acts on
 * MPO_QLIMIT and MPO_INSERT_SEND_RIGHT; the others are accepted and have no
 * effect (docs/mach.md). */
#define MPO_CONTEXT_AS_GUARD 0x01
#define MPO_QLIMIT 0x02
#define MPO_TEMPOWNER 0x04
#define MPO_IMPORTANCE_RECEIVER 0x08
#define MPO_INSERT_SEND_RIGHT 0x10
#define MPO_STRICT 0x20
#define MPO_DENAP_RECEIVER 0x40
#define MPO_IMMOVABLE_RECEIVE 0x80
#define MPO_FILTER_MSG 0x100
#define MPO_TG_BLOCK_TRACKING 0x200

typedef struct mach_port_options {
  uint32_t flags;
  mach_port_limits_t mpl;
  union {
    uint64_t reserved[2];
    mach_port_name_t work_interval_port;
    mach_port_name_t service_port_name;
  };
} mach_port_options_t;

typedef mach_port_options_t* mach_port_options_ptr_t;

PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_t) == 4, "mach_port_t is 32 bits");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_status_t) == 40, "mach_port_status_t is 40 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_port_status_t, mps_qlimit) == 12, "mps_qlimit at 12");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_port_status_t, mps_flags) == 36, "mps_flags at 36");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_limits_t) == 4, "mach_port_limits_t is 4 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_info_ext_t) == 68, "mach_port_info_ext_t is 68 bytes");
PORTD_MACH_STATIC_ASSERT(sizeof(mach_port_options_t) == 24, "mach_port_options_t is 24 bytes");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_port_options_t, mpl) == 4, "mpl at 4");
PORTD_MACH_STATIC_ASSERT(offsetof(mach_port_options_t, reserved) == 8, "reserved at 8");

#endif /* _MACH_PORT_H_ */
