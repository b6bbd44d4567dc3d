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
// Rewrites err's message as "<prefix>: <message>" (the code is kept).
void cli_error_prefix(tv_error *err, const char *prefix);
// The CPU kernel path to pass the library (tv_model_params.cpu_path, tv_engine_config.cpu_path):
// the --cpu value when given, else $TINYVLLM_CPU, else NULL (the best available).
const char *cli_cpu_path(const char *flag);
// True when $TINYVLLM_REPACK is "0" (tv_model_params.no_repack).
bool cli_no_repack(void);

#endif
