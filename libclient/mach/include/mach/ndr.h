/*
 * mach/ndr.h — the 8-byte NDR record MIG puts before a message's data, as on
 * a little-endian host.
 */
#ifndef _MACH_NDR_H_
#define _MACH_NDR_H_

#include <mach/portd_config.h>

typedef struct {
  unsigned char mig_vers;
  unsigned char if_vers;
  unsigned char reserved1;
  unsigned char mig_encoding;
  unsigned char int_rep;
  unsigned char char_rep;
  unsigned char float_rep;
  unsigned char reserved2;
} NDR_record_t;

#define NDR_PROTOCOL_2_0 0
#define NDR_INT_BIG_ENDIAN 0
#define NDR_INT_LITTLE_ENDIAN 1
#define NDR_FLOAT_IEEE 0
#define NDR_FLOAT_VAX 1
#define NDR_FLOAT_CRAY 2
#define NDR_FLOAT_IBM 3
#define NDR_CHAR_ASCII 0
#define NDR_CHAR_EBCDIC 1

PORTD_MACH_STATIC_ASSERT(sizeof(NDR_record_t) == 8, "NDR_record_t is 8 bytes");

PORTD_MACH_BEGIN_DECLS
extern NDR_record_t NDR_record; /* {0, 0, 0, 0, NDR_INT_LITTLE_ENDIAN, 0, 0, 0} */
PORTD_MACH_END_DECLS

#endif /* _MACH_NDR_H_ */
