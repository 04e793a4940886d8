/*
 * mach/portd_config.h — helpers shared by portd's Mach-compatible headers.
 *
 * Not an Apple header. It gives the headers a layout check that works in C
 * and C++ of any standard (C11's _Static_assert, C++11's static_assert, a
 * negative array size before them), and says which Mach this
 * is: PORTD_MACH is defined, so portable code can tell portd's Mach API from
 * Apple's or GNU's.
 */
#ifndef _MACH_PORTD_CONFIG_H_
#define _MACH_PORTD_CONFIG_H_

#define PORTD_MACH 1

#if defined(__cplusplus) && __cplusplus >= 201103L
#define PORTD_MACH_STATIC_ASSERT(cond, what) static_assert(cond, what)
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define PORTD_MACH_STATIC_ASSERT(cond, what) _Static_assert(cond, what)
#else
/* Pre-C11 C and pre-C++11 C++: a negative array size stops the build. */
#define PORTD_MACH_STATIC_ASSERT_CAT2(a, b) a##b
#define PORTD_MACH_STATIC_ASSERT_CAT(a, b) PORTD_MACH_STATIC_ASSERT_CAT2(a, b)
#define PORTD_MACH_STATIC_ASSERT(cond, what) \
  typedef char PORTD_MACH_STATIC_ASSERT_CAT(portd_mach_assert_, __LINE__)[(cond) ? 1 : -1]
#endif

#if defined(__cplusplus)
#define PORTD_MACH_BEGIN_DECLS extern "C" {
#define PORTD_MACH_END_DECLS }
#else
#define PORTD_MACH_BEGIN_DECLS
#define PORTD_MACH_END_DECLS
#endif

#endif /* _MACH_PORTD_CONFIG_H_ */
