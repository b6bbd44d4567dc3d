// cli_util.h — argument parsing helpers shared by the subcommands.
#ifndef TV_CLI_UTIL_H
#define TV_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

// Prints "tinyvllm <cmd>: <msg>" to stderr and returns 2 (usage error).
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Strict parses: the whole string must be a number within [lo, hi].
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_float(const char *s, float lo, float hi, float *out);
// "1,2,3" -> malloc'd ids; NULL on malformed input or ids outside int32 >= 0.
int32_t *cli_parse_ids(const char *s, size_t *n);
// Appends n bytes (NUL-terminates); false on allocation failure.
bool cli_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
// Monotonic clock in milliseconds (for the timings the commands print).
double cli_time_ms(void);
#define CLI_MAX_TEMPLATE (16u << 20)   // bytes of a chat template file at most
#define CLI_MAX_JSON (256u << 20)      // bytes of a JSON input file at most

// The whole file at path ("-": stdin), NUL-terminated, malloc'd; *len (may be NULL) its length.
// NULL after printing "tinyvllm <cmd>: cannot open|read <path>: <why>" (more than max_bytes is an error).
char *cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *len);
// Rewrites err's message as "<prefix>: <message>" (the code is kept).
void cli_error_prefix(tv_error *err, const char *prefix);

#endif
