// cli_util.h — argument parsing helpers shared by the subcommands.
#ifndef TV_CLI_UTIL_H
#define TV_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

// The help line every command's --help ends with.
#define CLI_HELP_USAGE "  -h, --help          this help\n"

// Prints "tinyvllm <cmd>: <msg>" to stderr and returns 2 (usage error).
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prints "tinyvllm <cmd>: note: <msg>" to stderr: a value the user gave was changed (clamped).
void cli_note(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prints "tinyvllm <cmd>: warning: <msg>" to stderr.
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Strict parses: the whole string must be a number within [lo, hi].
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_float(const char *s, float lo, float hi, float *out);
// "1,2,3" -> malloc'd ids; NULL on malformed input or ids outside int32 >= 0.
int32_t *cli_parse_ids(const char *s, size_t *n);
// Appends n bytes (NUL-terminates); false on allocation failure.
bool cli_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
// Monotonic clock in milliseconds (for the timings the commands print).
double cli_time_ms(void);
// What `chat` and `serve` say when the model has no chat template: both use the plain transcript.
#define CLI_PLAIN_CHAT_NOTE                                                                          \
    "the model has no chat template; using a plain \"User: ...\\nAssistant:\" transcript (pass " \
    "--chat-template FILE.jinja for the model's own format)"

// A one-line progress display on stderr, redrawn in place ("\r"), only when stderr is a terminal and
// the command was not given --quiet; otherwise every call is a no-op. Redraws at most 10 times a second.
typedef struct cli_progress {
    bool is_on;
    double t_last_ms;
    int width;   // columns written by the last redraw (cleared by cli_progress_end)
} cli_progress;
void cli_progress_begin(cli_progress *p, bool quiet);
void cli_progress_update(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_progress_show(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));   // not throttled
void cli_progress_end(cli_progress *p);   // erases the line
// A tv_progress_fn for writing a model file; user is a cli_write_progress.
typedef struct cli_write_progress {
    cli_progress bar;
    const char *what;   // e.g. "synth: writing out.gguf"
    double t0_ms;
} cli_write_progress;
void cli_write_progress_fn(void *user, uint64_t done, uint64_t total);

#define CLI_MAX_TEMPLATE (16u << 20)   // bytes of a chat template file at most
#define CLI_MAX_JSON (256u << 20)      // bytes of a JSON input file at most

// The whole file at path ("-": stdin), NUL-terminated, malloc'd; *len (may be NULL) its length.
// NULL after printing "tinyvllm <cmd>: cannot open|read <path>: <why>" (more than max_bytes is an error).
char *cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *len);
// Rewrites err's message as "<prefix>: <message>" (the code is kept).
void cli_error_prefix(tv_error *err, const char *prefix);

#endif
