// convert_hf.c — tv_convert_hf (tinyvllm_tools.h): a Hugging Face folder, seen through hf.c as the
// GGUF llama.cpp's converter would write, written out as that GGUF (optionally in another type).
// The writer's threads convert row chunks in parallel and pwrite them in place; tensors kept in
// their stored type are written straight from the safetensors mapping (no copy).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "model/hf.h"
#include "model/hf_vocab.h"
#include "model/model.h"
#include "tinyvllm_tools.h"
#include "util/status.h"

typedef struct conv_src {
    const kern_table *kt;     // this CPU's conversion kernels (every path gives the reference's bits)
    const tv_tensor *t;
    tv_type type;             // the written type (differs from t->type: a converted tensor)
} conv_src;

// Rows [row0, row0 + n_rows) of the source in the written type, through f32; called by several
// writer threads at once (gguf_writer_set_threads), each with its own rows and scratch.
static tv_status conv_fill(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const conv_src *c = user;
    const int64_t n = c->t->ne[0];
    const size_t sb = kern_row_size(c->t->type, n), db = kern_row_size(c->type, n);
    const uint8_t *src = (const uint8_t *)c->t->data + (size_t)row0 * sb;
    float *row = malloc((size_t)n * sizeof *row);   // (ne0)
    if (!row) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    const tv_type_traits *from = kern_traits(c->kt, c->t->type), *to = kern_traits(c->kt, c->type);
    for (int64_t r = 0; r < n_rows; r++) {
        from->to_float(src + (size_t)r * sb, row, n);
        to->from_float(row, (uint8_t *)dst + (size_t)r * db, n);
    }
    free(row);
    return TV_OK;
}

// Whether a matrix keeps its type in a quantized file: the MoE routers, the Gated DeltaNet's conv
// kernel and every tensor not named *.weight (gpt-oss's per-expert biases), as llama.cpp's converter
// and llama-quantize leave them (F32; ggml's ssm_conv needs it).
static bool keeps_float(const char *gguf_name) {
    const char *dot = strrchr(gguf_name, '.');
    const size_t n = dot ? (size_t)(dot - gguf_name) : strlen(gguf_name);
    return !dot || strcmp(dot, ".weight") || (n >= 12 && !strncmp(gguf_name + n - 12, "ffn_gate_inp", 12)) ||
           (n >= 18 && !strncmp(gguf_name + n - 18, "ffn_gate_inp_shexp", 18)) ||
           (n >= 10 && !strncmp(gguf_name + n - 10, "ssm_conv1d", 10));
}

// llama.cpp's LLAMA_FTYPE for a uniform type (0 when it has none).
static uint32_t file_type_of(tv_type t) {
    switch (t) {
    case TV_TYPE_F32: return 0;
    case TV_TYPE_F16: return 1;
    case TV_TYPE_Q4_0: return 2;
    case TV_TYPE_Q4_1: return 3;
    case TV_TYPE_Q8_0: return 7;
    case TV_TYPE_Q5_0: return 8;
    case TV_TYPE_Q5_1: return 9;
    case TV_TYPE_BF16: return 32;
    default: return 0;
    }
}

tv_status tv_convert_hf(const char *dir, const tv_convert_hf_options *o, const char *out_path, char *summary, size_t cap,
                        tv_error *err) {
    const tv_convert_hf_options none = {0};
    if (!o) o = &none;
    const char *type = o->type, *vocab_path = o->vocab_path;
    tv_type target = TV_TYPE_COUNT;
    if (type) {
        const tv_type_traits *tt = kern_type_from_name(type, &target) ? kern_traits_ref(target) : NULL;
        if (!tt || !tt->from_float || !tt->is_supported)
            return err_fail(err, TV_ERR_INVALID, "convert: '%s' is not a type tinyvllm can write", type);
    }
    kern_table kt;
    tv_status kst = kern_table_init(&kt, NULL, err);
    if (kst) return kst;
    hf_model *h = o->vocab_only ? hf_open_metadata(dir, err) : hf_open(dir, err);
    if (!h) return err ? err->code : TV_ERR_FORMAT;
    gguf_writer *w = gguf_writer_create();
    gguf_ctx *vocab = NULL;
    const int n = hf_n_tensors(h);
    conv_src *srcs = calloc((size_t)n + 1, sizeof *srcs);
    tv_status st = TV_OK;
    char vocab_desc[96] = "no vocabulary (ids only)";
    if (!w || !srcs) {
        st = err_fail(err, TV_ERR_NOMEM, "convert: out of memory");
        goto done;
    }
    const gguf_ctx *meta = hf_metadata(h);
    for (int64_t i = 0; i < gguf_n_kv(meta); i++) gguf_set_value(w, gguf_kv_key(meta, i), gguf_kv_value(meta, i));
    if (type) gguf_set_u32(w, "general.file_type", file_type_of(target));
    // the model's token count: its embedding rows, or config.json's vocab_size without tensors
    const tv_tensor *te = hf_find_tensor(h, "token_embd.weight");
    gguf_str arch = {0};
    gguf_get_str(meta, "general.architecture", &arch);
    char key[96];
    snprintf(key, sizeof key, "%.*s.vocab_size", (int)arch.len, arch.ptr);
    int64_t n_vocab = 0;
    if (te) n_vocab = te->ne[1];
    else if (!gguf_get_int(meta, key, &n_vocab)) n_vocab = 0;
    if (vocab_path) {
        if (!(vocab = gguf_open(vocab_path, err))) {
            st = err ? err->code : TV_ERR_IO;
            goto done;
        }
        for (int64_t i = 0; i < gguf_n_kv(vocab); i++)
            if (!strncmp(gguf_kv_key(vocab, i), "tokenizer.", 10) && strcmp(gguf_kv_key(vocab, i), "tokenizer.chat_template"))
                gguf_set_value(w, gguf_kv_key(vocab, i), gguf_kv_value(vocab, i));
        const gguf_value *toks = gguf_get(vocab, "tokenizer.ggml.tokens");
        if (!toks || toks->type != GGUF_TYPE_ARRAY || (int64_t)toks->arr_n > n_vocab) {
            st = err_fail(err, TV_ERR_FORMAT, "%s: its vocabulary (%lld tokens) does not fit the model's %lld embeddings",
                          vocab_path, toks ? (long long)toks->arr_n : 0LL, (long long)n_vocab);
            goto done;
        }
        snprintf(vocab_desc, sizeof vocab_desc, "vocabulary of %s", vocab_path);
    } else if (hf_vocab_present(dir)) {
        if (n_vocab <= 0) {
            st = err_fail(err, TV_ERR_FORMAT, "%s/config.json: vocab_size is missing (the tokenizer needs the model's token count)", dir);
            goto done;
        }
        if ((st = hf_vocab_write(dir, n_vocab, w, vocab_desc, sizeof vocab_desc, err))) goto done;
    } else {
        gguf_set_str(w, "tokenizer.ggml.model", "no_vocab");
    }
    size_t bytes = 0, src_bytes = 0;
    for (int i = 0; i < n && !st; i++) {
        const char *name;
        const tv_tensor *t = hf_tensor_at(h, i, &name);
        conv_src *c = &srcs[i];
        c->kt = &kt;
        c->t = t;
        const bool is_float = t->type == TV_TYPE_F32 || t->type == TV_TYPE_F16 || t->type == TV_TYPE_BF16;   // (MXFP4 experts stay)
        c->type = t->n_dims >= 2 && type && is_float && !keeps_float(name) ? model_quant_type(target, t->ne[0]) : t->type;
        if (c->type == t->type) st = gguf_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, err);   // written from the mapping
        else st = gguf_add_tensor_source(w, name, c->type, t->n_dims, t->ne, conv_fill, c, err);
        bytes += kern_row_size(c->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2]);
        src_bytes += t->nbytes;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const int n_threads = o->n_threads > 0 ? o->n_threads : ncpu > 1 ? (int)(ncpu < 16 ? ncpu : 16) : 1;
    gguf_writer_set_threads(w, n_threads);
    gguf_writer_set_progress(w, o->progress, o->progress_user);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!st) st = gguf_writer_write(w, out_path, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!st && summary && cap)
        snprintf(summary, cap, "%.*s, %d tensors, %s, %.1f MiB, %s; %.2f GB of weights in %.2f s on %d threads (%.2f GB/s of input)",
                 (int)arch.len, arch.ptr, n, type ? type : "types as stored", (double)bytes / (1024.0 * 1024.0), vocab_desc,
                 (double)src_bytes / 1e9, s, n_threads, s > 0 ? (double)src_bytes / 1e9 / s : 0.0);
done:
    free(srcs);
    gguf_close(vocab);
    gguf_writer_free(w);
    hf_close(h);
    return st;
}
