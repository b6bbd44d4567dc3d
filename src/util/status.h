// status.h — status codes, the caller-owned error buffer, the log hook and the invariant check.
//
// Contract used across the library: a function that can fail returns tv_status (TV_OK = 0) or a
// NULL handle, and writes one human-readable line into the caller's tv_error (which may be NULL).
// Library code never prints and never exits.
#ifndef TV_UTIL_STATUS_H
#define TV_UTIL_STATUS_H

#include <stdarg.h>
#include <stddef.h>
#include "tinyvllm.h"   // tv_status, tv_error

// Formats msg into err (if not NULL), sets err->code, returns code. printf-style.
tv_status err_fail(tv_error *err, tv_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Prefixes an existing message: "<prefix>: <old message>". Returns err->code (or code if err NULL).
tv_status err_fail_prefix(tv_error *err, tv_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// ---- logging through the callback set by tv_log_set (tinyvllm.h; default: silent) ----
void log_msg(tv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---- always-on invariant check; the abort hook is overridable (tests) ----
typedef void (*tv_abort_fn)(const char *file, int line, const char *expr);
void invariant_set_abort_hook(tv_abort_fn fn);
void invariant_failed(const char *file, int line, const char *expr);
#define TV_CHECK(expr) \
    do { if (__builtin_expect(!(expr), 0)) invariant_failed(__FILE__, __LINE__, #expr); } while (0)

// ---- overflow-checked size arithmetic: return false on overflow ----
static inline int mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline int add_ok(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

// ---- monotonic clock ----
double time_ms(void);

#endif
