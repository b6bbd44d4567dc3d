// cmd_info.c — `tinyvllm info -m MODEL`: architecture, hyperparameters, tensor types and sizes,
// tokenizer and context length. Reads the container directly so it also describes files tinyvllm
// cannot run (it says why).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "model/model.h"
#include "tinyvllm.h"
#include "tokenizer/tokenizer.h"

static void print_bytes(double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    printf("%.2f %s", b, u[i]);
}

// Prints every scalar/string metadata value, and arrays as "[type × n]".
static void print_gguf_meta(const gguf_ctx *g) {
    printf("metadata (%lld keys):\n", (long long)gguf_n_kv(g));
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *k = gguf_kv_key(g, i);
        const gguf_value *v = gguf_kv_value(g, i);
        printf("  %-44s ", k);
        switch (v->type) {
        case GGUF_TYPE_STRING: {
            uint64_t n = v->v.s.len > 60 ? 60 : v->v.s.len;
            printf("\"");
            for (uint64_t j = 0; j < n; j++) {
                char c = v->v.s.ptr[j];
                putchar(c == '\n' ? ' ' : c);
            }
            printf("%s\"\n", v->v.s.len > 60 ? "..." : "");
            break;
        }
        case GGUF_TYPE_ARRAY: printf("[%s × %llu]\n", gguf_type_name(v->arr_type), (unsigned long long)v->arr_n); break;
        case GGUF_TYPE_FLOAT32:
        case GGUF_TYPE_FLOAT64: printf("%g\n", v->v.f); break;
        case GGUF_TYPE_BOOL: printf("%s\n", v->v.b ? "true" : "false"); break;
        case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
            printf("%lld\n", (long long)v->v.i);
            break;
        default: printf("%llu\n", (unsigned long long)v->v.u); break;
        }
    }
}

typedef struct { int64_t n; size_t bytes; int64_t elems; } type_sum;

static void print_tensors(int64_t n, const tv_tensor *(*get)(const void *, int64_t, tv_tensor *), const void *src, bool verbose) {
    type_sum sums[TV_TYPE_COUNT];
    memset(sums, 0, sizeof sums);
    size_t total = 0;
    int64_t total_elems = 0;
    if (verbose) printf("tensors (%lld):\n", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        tv_tensor tmp;
        const tv_tensor *t = get(src, i, &tmp);
        int64_t el = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (verbose) {
            printf("  %-32s %-6s [", t->name ? t->name : "?", kern_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
            printf("] ");
            print_bytes((double)t->nbytes);
            printf("\n");
        }
        if ((unsigned)t->type < TV_TYPE_COUNT) {
            sums[t->type].n++;
            sums[t->type].bytes += t->nbytes;
            sums[t->type].elems += el;
        }
        total += t->nbytes;
        total_elems += el;
    }
    printf("tensor types:\n");
    for (int ty = 0; ty < TV_TYPE_COUNT; ty++) {
        if (!sums[ty].n) continue;
        printf("  %-6s %4lld tensors  %12lld params  ", kern_type_name((tv_type)ty), (long long)sums[ty].n,
               (long long)sums[ty].elems);
        print_bytes((double)sums[ty].bytes);
        printf("  (%.2f bits/weight)\n", sums[ty].elems ? 8.0 * (double)sums[ty].bytes / (double)sums[ty].elems : 0);
    }
    printf("total: %lld params, ", (long long)total_elems);
    print_bytes((double)total);
    printf("\n");
}

static const tv_tensor *gguf_get_t(const void *src, int64_t i, tv_tensor *tmp) {
    const gguf_tensor_info *ti = gguf_tensor(src, i);
    *tmp = (tv_tensor){.name = ti->name, .type = ti->type, .n_dims = ti->n_dims, .nbytes = ti->nbytes, .data = ti->data};
    memcpy(tmp->ne, ti->ne, sizeof tmp->ne);
    return tmp;
}

static const tv_tensor *l2c_get_t(const void *src, int64_t i, tv_tensor *tmp) {
    (void)tmp;
    return llama2c_tensor(src, (int)i);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL, *tok_path = NULL;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyvllm info -m MODEL [--tokenizer FILE] [-v]   (-v lists every tensor and metadata key)\n");
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (++i >= argc) return cli_usage_error("info", "-m needs a value");
            path = argv[i];
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (++i >= argc) return cli_usage_error("info", "--tokenizer needs a value");
            tok_path = argv[i];
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            verbose = true;
        } else {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        }
    }
    if (!path) return cli_usage_error("info", "-m MODEL is required");
    tv_error err = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        tv_model *m = tv_model_load(path, NULL, &err);   // for the standard message
        tv_model_free(m);
        fprintf(stderr, "tinyvllm info: %s\n", err.msg);
        return 1;
    }
    char magic[4] = {0};
    size_t nm = fread(magic, 1, 4, f);
    fclose(f);
    printf("file: %s\n", path);
    if (nm == 4 && !memcmp(magic, "GGUF", 4)) {
        gguf_ctx *g = gguf_open(path, &err);
        if (!g) { fprintf(stderr, "tinyvllm info: %s\n", err.msg); return 1; }
        printf("format: GGUF v%u, alignment %zu, data at offset %zu\n", gguf_version(g), gguf_alignment(g), gguf_data_offset(g));
        if (verbose) print_gguf_meta(g);
        print_tensors(gguf_n_tensors(g), gguf_get_t, g, verbose);
        gguf_close(g);
    } else {
        tv_llama2c *l = llama2c_open(path, &err);
        if (!l) { fprintf(stderr, "tinyvllm info: %s\n", err.msg); return 1; }
        const tv_llama2c_config *c = llama2c_get_config(l);
        printf("format: llama2.c checkpoint v%d (%s classifier)\n", c->version, c->shared_classifier ? "shared" : "separate");
        print_tensors(llama2c_n_tensors(l), l2c_get_t, l, verbose);
        llama2c_close(l);
    }
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = tok_path;
    tv_model *m = tv_model_load(path, &mp, &err);
    if (!m) {
        printf("runnable: no — %s\n", err.msg);
        return 1;
    }
    const tv_hparams *h = model_hparams(m);
    printf("name: %s\narchitecture: llama\n", tv_model_name(m));
    printf("hyperparameters: vocab %d, dim %d, layers %d, heads %d, kv heads %d (group %d), head dim %d, ffn %d\n",
           h->n_vocab, h->dim, h->n_layers, h->n_heads, h->n_kv_heads, h->n_heads / h->n_kv_heads, h->head_dim, h->hidden_dim);
    printf("context length: %d\n", h->n_ctx_train);
    printf("rope: base %g, %d dims, scaling %s; rms eps %g\n", (double)h->rope_theta, h->n_rot, h->rope_scaling, (double)h->norm_eps);
    printf("output: %s\n", model_output(m)->data == model_tok_embd(m)->data ? "tied to token_embd" : "separate");
    printf("weights read per token: ");
    print_bytes((double)model_weight_bytes(m));
    printf("\n");
    const tv_tokenizer *tok = tv_model_tokenizer(m);
    if (tok) {
        const char *kinds[] = {"SentencePiece BPE", "byte-level BPE", "WordPiece"};
        printf("tokenizer: %s, %d tokens, bos %d, eos %d\n", kinds[tv_tokenizer_kind(tok)], tv_tokenizer_n_vocab(tok),
               tv_tokenizer_bos(tok), tv_tokenizer_eos(tok));
    } else {
        printf("tokenizer: none (use --tokenizer FILE, or token ids)\n");
    }
    printf("stop token: %d\nchat template: %s\nrunnable: yes\n", tv_model_stop_token(m), tv_model_chat_template(m) ? "yes" : "no");
    tv_model_free(m);
    return 0;
}
