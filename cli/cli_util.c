// cli_util.c — argument parsing helpers shared by the subcommands.
#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tinyvllm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

static void vprint_tagged(const char *cmd, const char *tag, const char *fmt, va_list ap) {
    fprintf(stderr, "tinyvllm %s: %s: ", cmd ? cmd : "", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_note(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprint_tagged(cmd, "note", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprint_tagged(cmd, "warning", fmt, ap);
    va_end(ap);
}

bool cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int32_t *cli_parse_ids(const char *s, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return NULL;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) { free(ids); return NULL; }
        ids[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) { free(ids); return NULL; }
    }
    if (k == 0) { free(ids); return NULL; }
    *n = k;
    return ids;
}

bool cli_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

double cli_time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void cli_error_prefix(tv_error *err, const char *prefix) {
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}


char *cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *len) {
    bool is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) { fprintf(stderr, "tinyvllm %s: cannot open %s: %s\n", cmd, path, strerror(errno)); return NULL; }
    char *buf = NULL, chunk[65536];
    size_t n = 0, cap = 0, r;
    const char *why = NULL;
    while (!why && (r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + r > max_bytes) why = "too large";
        else if (!cli_append(&buf, &n, &cap, chunk, r)) why = "out of memory";
    }
    if (!why && ferror(f)) why = strerror(errno);
    if (!why && !buf && !cli_append(&buf, &n, &cap, "", 0)) why = "out of memory";
    if (!is_stdin) fclose(f);
    if (why) {
        fprintf(stderr, "tinyvllm %s: cannot read %s: %s\n", cmd, path, why);
        free(buf);
        return NULL;
    }
    if (len) *len = n;
    return buf;
}

void cli_progress_begin(cli_progress *p, bool quiet) {
    *p = (cli_progress){.is_on = !quiet && isatty(STDERR_FILENO)};
}

static void progress_draw(cli_progress *p, const char *fmt, va_list ap) {
    char line[160];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0) return;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    fflush(stderr);
    p->width = n;
    p->t_last_ms = cli_time_ms();
}

void cli_progress_update(cli_progress *p, const char *fmt, ...) {
    if (!p->is_on || (p->width && cli_time_ms() - p->t_last_ms < 100)) return;
    va_list ap;
    va_start(ap, fmt);
    progress_draw(p, fmt, ap);
    va_end(ap);
}

void cli_progress_show(cli_progress *p, const char *fmt, ...) {
    if (!p->is_on) return;
    va_list ap;
    va_start(ap, fmt);
    progress_draw(p, fmt, ap);
    va_end(ap);
}

void cli_progress_end(cli_progress *p) {
    if (!p->is_on || !p->width) return;
    fprintf(stderr, "\r%*s\r", p->width, "");
    fflush(stderr);
    p->width = 0;
}

void cli_write_progress_fn(void *user, uint64_t done, uint64_t total) {
    cli_write_progress *w = user;
    double s = (cli_time_ms() - w->t0_ms) / 1e3, mib = 1024.0 * 1024.0;
    cli_progress_update(&w->bar, "%s: %3.0f%% (%.0f of %.0f MiB, %.0f s)", w->what,
                        total ? 100.0 * (double)done / (double)total : 100.0, (double)done / mib, (double)total / mib, s);
}
