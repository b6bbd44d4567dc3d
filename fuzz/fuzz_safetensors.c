// fuzz_safetensors.c — libFuzzer target for the safetensors reader: parse an arbitrary buffer, then
// touch every tensor's first and last data byte, every lookup and the metadata.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

static volatile uint64_t g_sink;   // keeps the reads alive

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);   // exact-size copy so over-reads are caught
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    tv_error err = {0};
    st_file *f = st_open_memory(copy, size, "fuzz", &err);
    if (!f) {
        if (err.code == TV_OK || err.msg[0] == 0) __builtin_trap();   // failures must explain themselves
        free(copy);
        return 0;
    }
    for (int64_t i = 0; i < st_n_tensors(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (st_find(f, t->name) != t) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > ST_MAX_DIMS) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            if (p < copy + 8 || p + t->nbytes > copy + size) __builtin_trap();
            g_sink += p[0] + p[t->nbytes - 1];
        }
    }
    const char *fmt = st_metadata(f, "format");
    if (fmt) g_sink += (uint8_t)fmt[0];
    st_close(f);
    free(copy);
    return 0;
}
