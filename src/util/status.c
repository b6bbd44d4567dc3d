// status.c — error buffer formatting, log hook, invariant abort hook, clock.
#include "util/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static tv_status verr(tv_error *err, tv_status code, const char *fmt, va_list ap) {
    if (!err) return code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->code = code;
    return code;
}

tv_status err_fail(tv_error *err, tv_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

tv_status tv_error_set(tv_error *err, tv_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

tv_status err_fail_prefix(tv_error *err, tv_status code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    if (err->code == TV_OK) err->code = code;
    return err->code;
}

static tv_log_fn g_log_fn;
static void *g_log_user;

void tv_log_set(tv_log_fn fn, void *user) { g_log_fn = fn; g_log_user = user; }

static void vlog(tv_log_level level, const char *fmt, va_list ap) {
    if (!g_log_fn) return;
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    g_log_fn(level, buf, g_log_user);
}

void log_msg(tv_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void tv_log(tv_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

static void default_abort(const char *file, int line, const char *expr) {
    fprintf(stderr, "tinyvllm: invariant failed at %s:%d: %s\n", file, line, expr);
    abort();
}
static tv_abort_fn g_abort = default_abort;

void invariant_set_abort_hook(tv_abort_fn fn) { g_abort = fn ? fn : default_abort; }
void invariant_failed(const char *file, int line, const char *expr) { g_abort(file, line, expr); }

double time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *tv_status_str(tv_status s) {
    switch (s) {
    case TV_OK: return "ok";
    case TV_ERR_IO: return "i/o error";
    case TV_ERR_FORMAT: return "format error";
    case TV_ERR_UNSUPPORTED: return "unsupported";
    case TV_ERR_INVALID: return "invalid argument";
    case TV_ERR_NOMEM: return "out of memory";
    case TV_ERR_RANGE: return "out of range";
    case TV_ERR_STATE: return "invalid state";
    }
    return "unknown status";
}
