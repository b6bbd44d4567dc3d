// fuzz_gguf.c — libFuzzer target for the GGUF reader: parse an arbitrary buffer, then touch every
// metadata value (nested arrays included), every tensor's first and last data byte, every lookup,
// and deep-copy every value into a writer (exercising gguf_set_value on parsed input).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

static volatile uint64_t g_sink;   // keeps the reads alive

static void walk_value(const gguf_value *v, int depth) {
    if (depth > 16) __builtin_trap();   // the reader's nesting limit must hold
    switch (v->type) {
    case GGUF_TYPE_STRING:
        for (uint64_t i = 0; i < v->v.s.len; i++) g_sink += (uint8_t)v->v.s.ptr[i];
        break;
    case GGUF_TYPE_ARRAY:
        if (v->arr_type == GGUF_TYPE_STRING || v->arr_type == GGUF_TYPE_ARRAY) {
            if (v->arr_n && !v->arr_items) __builtin_trap();
            for (uint64_t i = 0; i < v->arr_n; i++) {
                if (v->arr_items[i].type != v->arr_type) __builtin_trap();
                walk_value(&v->arr_items[i], depth + 1);
            }
            if (v->arr_type == GGUF_TYPE_STRING && v->arr_n) g_sink += gguf_arr_str(v, v->arr_n - 1).len;
        } else {
            for (uint64_t i = 0; i < v->arr_n; i++) {
                double f = gguf_arr_float(v, i);
                uint64_t bits;
                memcpy(&bits, &f, sizeof bits);   // (a cast of an arbitrary double would be UB)
                g_sink += (uint64_t)gguf_arr_int(v, i) + bits;
            }
        }
        break;
    default:
        g_sink += v->v.u;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);   // exact-size copy so over-reads are caught
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    tv_error err = { 0 };
    gguf_ctx *ctx = gguf_open_memory(copy, size, "fuzz", &err);
    if (!ctx) {
        if (err.code == TV_OK || err.msg[0] == 0) __builtin_trap();   // failures must explain themselves
        free(copy);
        return 0;
    }
    gguf_writer *w = gguf_writer_create();
    for (int64_t i = 0; i < gguf_n_kv(ctx); i++) {
        const char *key = gguf_kv_key(ctx, i);
        const gguf_value *v = gguf_kv_value(ctx, i);
        if (gguf_get(ctx, key) != v) __builtin_trap();
        walk_value(v, 0);
        int64_t iv; double fv; bool bv; gguf_str sv;
        g_sink += gguf_get_int(ctx, key, &iv) + gguf_get_float(ctx, key, &fv) + gguf_get_bool(ctx, key, &bv) +
                  gguf_get_str(ctx, key, &sv);
        gguf_set_value(w, key, v);
    }
    gguf_writer_free(w);
    size_t data_off = gguf_data_offset(ctx);
    for (int64_t i = 0; i < gguf_n_tensors(ctx); i++) {
        const gguf_tensor_info *t = gguf_tensor(ctx, i);
        if (gguf_find_tensor(ctx, t->name) != t) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            if (p < copy + data_off || p + t->nbytes > copy + size) __builtin_trap();
            g_sink += p[0] + p[t->nbytes - 1];
        }
    }
    gguf_close(ctx);
    free(copy);
    return 0;
}
