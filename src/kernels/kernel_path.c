// kernel_path.c — tv_kernel_path (tinyvllm_tools.h): which kernel path a name resolves to on this CPU,
// without loading a model (what `tinyvllm --version` reports).
#include <stdlib.h>

#include "kernels/kernels.h"
#include "tinyvllm_tools.h"
#include "util/status.h"

const char *tv_kernel_path(const char *cpu_path, tv_error *err) {
    kern_table *kt = malloc(sizeof *kt);   // a full traits table: too big for a small stack
    if (!kt) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    const char *path = kern_table_init(kt, cpu_path, err) == TV_OK ? kt->path : NULL;
    free(kt);
    return path;
}
