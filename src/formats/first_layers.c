// first_layers.c — tv_convert_first_layers (tinyvllm_tools.h): a GGUF of a model's first N layers,
// a draft for speculative decoding that shares the model's vocabulary by construction.
//
// The output keeps every key of the input except {arch}.block_count (set to N) and the per-layer
// arrays under {arch}. (arrays with one element per layer are cut to their first N), and every
// tensor except blk.<i>.* for i >= N: the embedding, output norm and head stay, so the draft is
// the model's first N layers followed by its own norm and head (what `--spec draft --draft-layers
// N` computes inside the model, here as a separate file with its own KV). Tensor data is copied
// from the mapping as it is written (no repacking, no conversion).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tinyvllm_tools.h"
#include "util/status.h"

// The layer of a tensor named blk.<i>.<...>, else -1.
static long layer_of(const char *name) {
    if (strncmp(name, "blk.", 4)) return -1;
    char *end = NULL;
    long i = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' ? i : -1;
}

// Element size of a numeric or bool array element type, 0 for strings and arrays.
static size_t elem_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

tv_status tv_convert_first_layers(const char *in_path, int n_layers, const char *out_path, char *summary, size_t cap,
                                  tv_error *err) {
    gguf_ctx *g = gguf_open(in_path, err);
    if (!g) return err ? err->code : TV_ERR_IO;
    gguf_writer *w = NULL;
    tv_status st = TV_OK;
    gguf_str arch;
    char key[256];
    int64_t n_total = 0;
    if (!gguf_get_str(g, "general.architecture", &arch) || arch.len == 0 || arch.len > 128) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: no general.architecture", in_path);
        goto done;
    }
    snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
    if (!gguf_get_int(g, key, &n_total)) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: no %s", in_path, key);
        goto done;
    }
    if (n_layers < 1 || n_layers >= n_total) {
        st = err_fail(err, TV_ERR_INVALID, "%s has %lld layers: a draft of its first %d is invalid (1..%lld)", in_path,
                      (long long)n_total, n_layers, (long long)n_total - 1);
        goto done;
    }
    if (!(w = gguf_writer_create())) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *k = gguf_kv_key(g, i);
        const gguf_value *v = gguf_kv_value(g, i);
        const bool in_arch = !strncmp(k, arch.ptr, arch.len) && k[arch.len] == '.';
        if (!strcmp(k, key)) {
            gguf_set_u32(w, k, (uint32_t)n_layers);
        } else if (in_arch && v->type == GGUF_TYPE_ARRAY && v->arr_n == (uint64_t)n_total && elem_size(v->arr_type)) {
            gguf_set_arr_data(w, k, v->arr_type, v->arr_data, (uint64_t)n_layers);   // one entry per layer
        } else if (in_arch && v->type == GGUF_TYPE_ARRAY && v->arr_n == (uint64_t)n_total) {
            st = err_fail(err, TV_ERR_UNSUPPORTED, "%s: per-layer key %s holds strings or arrays; cannot cut it", in_path, k);
            goto done;
        } else {
            gguf_set_value(w, k, v);
        }
    }
    int64_t n_kept = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (layer_of(t->name) >= n_layers) continue;
        if ((st = gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, err)) != TV_OK) goto done;
        n_kept++;
    }
    if ((st = gguf_writer_write(w, out_path, err)) != TV_OK) goto done;
    if (summary && cap)
        snprintf(summary, cap, "%.*s, %d of %lld layers, %lld of %lld tensors", (int)arch.len, arch.ptr, n_layers,
                 (long long)n_total, (long long)n_kept, (long long)gguf_n_tensors(g));
done:
    gguf_writer_free(w);
    gguf_close(g);
    return st;
}
