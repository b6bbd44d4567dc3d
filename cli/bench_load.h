// bench_load.h — `tinyvllm bench --load`: load speed against the page cache (tv_bench_load).
#ifndef TV_BENCH_LOAD_H
#define TV_BENCH_LOAD_H

#include <stdbool.h>

#include "cli_opts.h"

// Runs tv_bench_load on mo->model_path with mo's threads and CPU path; mo->quantize names the
// conversion measured (default Q8_0) and the prepared-weight cache test's type; the cache test
// uses a scratch folder under --cache-dir (else $TMPDIR or /tmp) removed afterwards. Prints a
// table, or one JSON object with json. Returns the exit status.
int cli_bench_load(const cli_model_opts *mo, long reps, bool json);

#endif
