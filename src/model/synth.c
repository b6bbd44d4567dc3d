// synth.c — deterministic random-weight llama GGUF writer (see synth.h for the contract).
#include "model/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "util/rng.h"
#include "util/status.h"

static const tv_synth_shape PRESETS[] = {
    // name            dim   hidden layers heads kv  vocab   ctx    theta     eps    tied   llama3
    { "tiny",           64,   192,   2,    4,   2,  512,    256,   10000.0f, 1e-5f, false, false },
    { "demo",           256,  768,   4,    8,   4,  2048,   512,   10000.0f, 1e-5f, false, false },
    { "tinyllama-1.1b", 2048, 5632,  22,   32,  4,  32000,  2048,  10000.0f, 1e-5f, false, false },
    // Llama 3.2 1B: trained context 131072, written as 8192 so default KV-cache sizing stays small
    // (the llama3 frequency factors still describe the long-context RoPE).
    { "llama-3.2-1b",   2048, 8192,  16,   32,  8,  128256, 8192,  500000.0f, 1e-5f, true, true },
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

const tv_synth_shape *tv_synth_find_preset(const char *name) {
    for (size_t i = 0; name && i < N_PRESETS; i++)
        if (!strcmp(PRESETS[i].name, name)) return &PRESETS[i];
    return NULL;
}

const char *tv_synth_preset_names(void) { return "tiny, demo, tinyllama-1.1b, llama-3.2-1b"; }

// ---- deterministic values: counter-based, independent of chunking and threads ----
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (uint8_t)*s; h *= 1099511628211ull; }
    return h;
}

typedef struct tsrc {
    uint64_t key;             // per-tensor stream key
    tv_type type;             // stored type
    int64_t ne0;              // row length
    float amp;                // uniform half-width (std * sqrt(3)); 0 with constant set
    bool is_constant;
    float constant;
    const float *values;      // explicit data (rope_freqs), ne0 floats, one row
} tsrc;

// One row of floats (ne0) for row r.
static void gen_row(const tsrc *s, int64_t r, float *out) {
    if (s->values) { memcpy(out, s->values, (size_t)s->ne0 * sizeof(float)); return; }
    if (s->is_constant) { for (int64_t k = 0; k < s->ne0; k++) out[k] = s->constant; return; }
    uint64_t base = (uint64_t)r * (uint64_t)s->ne0;
    for (int64_t k = 0; k < s->ne0; k++) {
        uint64_t h = rng_hash64(s->key ^ (base + (uint64_t)k) * 0xd1342543de82ef95ull);
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);   // [0, 1), 24 bits
        out[k] = (2.0f * u - 1.0f) * s->amp;
    }
}

typedef struct synth_ctx {
    tv_pool *pool;
    int n_threads;
    float *scratch;           // (n_threads, max_ne0) floats
    int64_t max_ne0;
} synth_ctx;

typedef struct fill_job {
    const tsrc *src;
    const synth_ctx *sc;
    int64_t row0, n_rows;
    uint8_t *dst;
    size_t row_bytes;
} fill_job;

static void fill_part(void *arg, int ith, int nth) {
    const fill_job *j = arg;
    const tv_type_traits *tr = kern_traits_ref(j->src->type);
    float *tmp = j->sc->scratch + (size_t)ith * (size_t)j->sc->max_ne0;
    int64_t per = (j->n_rows + nth - 1) / nth;
    int64_t a = (int64_t)ith * per, b = a + per < j->n_rows ? a + per : j->n_rows;
    for (int64_t r = a; r < b; r++) {
        uint8_t *row = j->dst + (size_t)r * j->row_bytes;
        if (j->src->type == TV_TYPE_F32) { gen_row(j->src, j->row0 + r, (float *)row); continue; }
        gen_row(j->src, j->row0 + r, tmp);
        tr->from_float(tmp, row, j->src->ne0);
    }
}

typedef struct src_binding { tsrc src; const synth_ctx *sc; } src_binding;

static tv_status fill(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const src_binding *b = user;
    const tv_type_traits *tr = kern_traits_ref(b->src.type);
    if (!tr || !tr->from_float) return err_fail(err, TV_ERR_UNSUPPORTED, "no quantizer for %s", kern_type_name(b->src.type));
    fill_job j = { .src = &b->src, .sc = b->sc, .row0 = row0, .n_rows = n_rows, .dst = dst,
                   .row_bytes = kern_row_size(b->src.type, b->src.ne0) };
    pool_run(b->sc->pool, fill_part, &j);
    return TV_OK;
}

// ---- type mix (after llama.cpp's quantization mixes) ----
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static tv_type fit_type(tv_type t, int64_t ne0) {
    const tv_type_traits *tr = kern_traits_ref(t);
    if (tr && ne0 % tr->blck_size == 0) return t;
    return ne0 % TV_QK8_0 == 0 ? TV_TYPE_Q8_0 : TV_TYPE_F16;
}

static tv_type output_type(tv_type t) {
    return (t == TV_TYPE_Q4_0 || t == TV_TYPE_Q4_K) ? TV_TYPE_Q6_K : t;
}

static uint32_t file_type(tv_type t) {   // llama.cpp's LLAMA_FTYPE_* values
    switch (t) {
    case TV_TYPE_F32: return 0;
    case TV_TYPE_F16: return 1;
    case TV_TYPE_Q4_0: return 2;
    case TV_TYPE_Q8_0: return 7;
    case TV_TYPE_Q4_K: return 15;   // Q4_K_M
    case TV_TYPE_Q6_K: return 18;
    case TV_TYPE_BF16: return 32;
    default: return 0;
    }
}

// ---- synthetic SentencePiece vocab ----
static tv_status synth_vocab(gguf_writer *w, int32_t n, tv_error *err) {
    static const char LETTERS[] = "etaoinshrdlcumwfgypbvkjxqz";
    tv_status st = TV_OK;
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!toks || !scores || !types) { st = err_fail(err, TV_ERR_NOMEM, "out of memory building the vocab"); goto done; }
    char buf[32];
    int32_t i = 0;
#define ADD(str, type_, score_) do { if (i < n) { toks[i] = strdup(str); types[i] = (type_); scores[i] = (score_); \
                                     if (!toks[i]) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; } i++; } } while (0)
    ADD("<unk>", 2, 0.0f);
    ADD("<s>", 3, 0.0f);
    ADD("</s>", 3, 0.0f);
    for (int b = 0; b < 256; b++) { snprintf(buf, sizeof buf, "<0x%02X>", b); ADD(buf, 6, 0.0f); }
    ADD("\xe2\x96\x81", 1, -1.0f);
    for (int c = 0x21; c < 0x7f; c++) { buf[0] = (char)c; buf[1] = 0; ADD(buf, 1, -(float)i); }
    // letter strings of growing length: "▁w" for every length, plain "w" from length 2 on
    for (int len = 1; i < n && len <= 6; len++) {
        int idx[8] = { 0 };
        for (;;) {
            char word[8];
            for (int k = 0; k < len; k++) word[k] = LETTERS[idx[k]];
            word[len] = 0;
            snprintf(buf, sizeof buf, "\xe2\x96\x81%s", word);
            ADD(buf, 1, -(float)i);
            if (len >= 2) ADD(word, 1, -(float)i);
            if (i >= n) break;
            int k = len - 1;   // next word (odometer)
            while (k >= 0 && ++idx[k] == 26) idx[k--] = 0;
            if (k < 0) break;
        }
    }
#undef ADD
    if (i < n) { st = err_fail(err, TV_ERR_INVALID, "synthetic vocab cannot reach %d tokens", n); goto done; }
    gguf_set_spm_vocab(w, (const char *const *)toks, NULL, scores, types, (uint64_t)n);
done:
    if (toks) for (int32_t k = 0; k < n; k++) free(toks[k]);
    free(toks);
    free(scores);
    free(types);
    return st;
}

// Copies tokenizer.* from a GGUF; *n_vocab = its token count.
static tv_status copy_vocab(gguf_writer *w, const char *path, int32_t *n_vocab, tv_error *err) {
    gguf_ctx *g = gguf_open(path, err);
    if (!g) return err ? err->code : TV_ERR_IO;
    const gguf_value *tok = gguf_get(g, "tokenizer.ggml.tokens");
    tv_status st = TV_OK;
    if (!tok || tok->type != GGUF_TYPE_ARRAY || tok->arr_type != GGUF_TYPE_STRING || tok->arr_n == 0 ||
        tok->arr_n > INT32_MAX) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: no tokenizer.ggml.tokens string array", path);
        goto done;
    }
    *n_vocab = (int32_t)tok->arr_n;
    for (int64_t i = 0; i < gguf_n_kv(g); i++)
        if (!strncmp(gguf_kv_key(g, i), "tokenizer.", 10)) gguf_set_value(w, gguf_kv_key(g, i), gguf_kv_value(g, i));
done:
    gguf_close(g);
    return st;
}

// llama 3.1+ RoPE frequency factors (divisors of each inverse frequency): factor 32 for
// wavelengths above orig/low, 1 below orig/high, smooth in between (Meta's published recipe).
void synth_llama3_rope_factors(float *out, int n_half, int head_dim, double theta) {
    const double factor = 32, low = 1, high = 4, orig = 8192;
    for (int i = 0; i < n_half; i++) {
        double freq = pow(theta, -2.0 * i / head_dim);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < orig / high) out[i] = 1.0f;
        else if (wavelen > orig / low) out[i] = (float)factor;
        else {
            double smooth = (orig / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

tv_status synth_write(const tv_synth_params *p, const char *out_path, tv_error *err) {
    const tv_synth_shape *ps = p->shape ? p->shape : tv_synth_find_preset(p->preset);
    if (!ps) return err_fail(err, TV_ERR_INVALID, "unknown preset '%s' (presets: %s)", p->preset ? p->preset : "",
                            tv_synth_preset_names());
    switch (p->type) {
    case TV_TYPE_F32: case TV_TYPE_F16: case TV_TYPE_BF16: case TV_TYPE_Q8_0: case TV_TYPE_Q4_0:
    case TV_TYPE_Q4_K: case TV_TYPE_Q6_K: break;
    default: return err_fail(err, TV_ERR_INVALID, "type %s is not supported by synth (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K)",
                            kern_type_name(p->type));
    }
    tv_status st = TV_OK;
    gguf_writer *w = gguf_writer_create();
    src_binding *srcs = NULL;
    synth_ctx sc = { 0 };
    float *rope = NULL;
    if (!w) return err_fail(err, TV_ERR_NOMEM, "out of memory");

    const int32_t dim = ps->dim, hid = ps->hidden_dim, L = ps->n_layers, hd = ps->dim / ps->n_heads;
    const int32_t kv_dim = ps->n_kv_heads * hd;
    char text[256];
    gguf_set_str(w, "general.architecture", "llama");
    snprintf(text, sizeof text, "tinyvllm-synth-%s", ps->name);
    gguf_set_str(w, "general.name", text);
    snprintf(text, sizeof text, "RANDOM weights (tinyvllm synth, preset %s, type %s, seed %llu): not a trained model",
             ps->name, kern_type_name(p->type), (unsigned long long)p->seed);
    gguf_set_str(w, "general.description", text);
    gguf_set_u32(w, "general.file_type", file_type(p->type));
    gguf_set_u32(w, "llama.context_length", (uint32_t)ps->ctx);
    gguf_set_u32(w, "llama.embedding_length", (uint32_t)dim);
    gguf_set_u32(w, "llama.block_count", (uint32_t)L);
    gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)hid);
    gguf_set_u32(w, "llama.attention.head_count", (uint32_t)ps->n_heads);
    gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)ps->n_kv_heads);
    gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", ps->norm_eps);
    gguf_set_f32(w, "llama.rope.freq_base", ps->rope_theta);
    gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd);
    int32_t vocab = ps->vocab_size;
    gguf_set_u32(w, "llama.vocab_size", (uint32_t)vocab);   // placeholder: keeps the key with its llama.* peers
    if (p->vocab_path) st = copy_vocab(w, p->vocab_path, &vocab, err);
    else st = synth_vocab(w, vocab, err);
    if (st != TV_OK) goto done;
    gguf_set_u32(w, "llama.vocab_size", (uint32_t)vocab);

    // tensors
    int n_t = 2 + !ps->tied_output + ps->llama3_rope + 9 * L;
    srcs = calloc((size_t)n_t, sizeof *srcs);
    if (!srcs) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    sc.n_threads = p->n_threads > 1 ? p->n_threads : 1;
    if (sc.n_threads > 1 && !(sc.pool = pool_create(sc.n_threads, err))) { st = err ? err->code : TV_ERR_NOMEM; goto done; }
    sc.n_threads = pool_size(sc.pool);
    sc.max_ne0 = dim > hid ? dim : hid;
    sc.scratch = malloc((size_t)sc.n_threads * (size_t)sc.max_ne0 * sizeof(float));
    if (!sc.scratch) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }

    int k = 0;
    const float amp = 0.02f * sqrtf(3.0f);
    tv_type out_t = p->pure ? p->type : output_type(p->type);
#define ADD_T(name_, type_, ne0_, ne1_, is_norm_)                                                              \
    do {                                                                                                       \
        src_binding *b_ = &srcs[k++];                                                                          \
        b_->sc = &sc;                                                                                          \
        b_->src.key = rng_hash64(p->seed ^ name_hash(name_));                                                  \
        b_->src.type = (is_norm_) ? TV_TYPE_F32 : fit_type((type_), (ne0_));                                   \
        b_->src.ne0 = (ne0_);                                                                                  \
        b_->src.amp = amp;                                                                                     \
        b_->src.is_constant = (is_norm_);                                                                      \
        b_->src.constant = 1.0f;                                                                               \
        int64_t ne_[2] = { (ne0_), (ne1_) };                                                                   \
        if ((st = gguf_add_tensor_source(w, (name_), b_->src.type, (ne1_) > 1 ? 2 : 1, ne_, fill, b_, err))) \
            goto done;                                                                                         \
    } while (0)
    ADD_T("token_embd.weight", ps->tied_output ? out_t : p->type, dim, vocab, false);
    ADD_T("output_norm.weight", TV_TYPE_F32, dim, 1, true);
    if (!ps->tied_output) ADD_T("output.weight", out_t, dim, vocab, false);
    if (ps->llama3_rope) {
        rope = malloc((size_t)(hd / 2) * sizeof(float));
        if (!rope) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
        synth_llama3_rope_factors(rope, hd / 2, hd, ps->rope_theta);
        ADD_T("rope_freqs.weight", TV_TYPE_F32, hd / 2, 1, false);
        srcs[k - 1].src.values = rope;
    }
    for (int l = 0; l < L; l++) {
        char nm[64];
        bool more = p->type == TV_TYPE_Q4_K && !p->pure && use_more_bits(l, L);
        tv_type vt = more ? TV_TYPE_Q6_K : p->type;
#define LAYER(suffix, type_, ne0_, ne1_, is_norm_) \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); ADD_T(nm, type_, ne0_, ne1_, is_norm_)
        LAYER("attn_norm.weight", TV_TYPE_F32, dim, 1, true);
        LAYER("attn_q.weight", p->type, dim, dim, false);
        LAYER("attn_k.weight", p->type, dim, kv_dim, false);
        LAYER("attn_v.weight", vt, dim, kv_dim, false);
        LAYER("attn_output.weight", p->type, dim, dim, false);
        LAYER("ffn_norm.weight", TV_TYPE_F32, dim, 1, true);
        LAYER("ffn_gate.weight", p->type, dim, hid, false);
        LAYER("ffn_up.weight", p->type, dim, hid, false);
        LAYER("ffn_down.weight", vt, hid, dim, false);
#undef LAYER
    }
#undef ADD_T
    TV_CHECK(k == n_t);
    st = gguf_writer_write(w, out_path, err);
done:
    gguf_writer_free(w);
    pool_free(sc.pool);
    free(sc.scratch);
    free(srcs);
    free(rope);
    return st;
}

tv_status tv_synth_write(const tv_synth_options *o, const char *out_path, tv_error *err) {
    tv_synth_params p = {.preset = o->preset, .seed = o->seed, .vocab_path = o->vocab_path, .n_threads = o->n_threads};
    if (!o->type || !kern_type_from_name(o->type, &p.type))
        return err_fail(err, TV_ERR_INVALID, "synth: unknown type '%s'", o->type ? o->type : "(none)");
    return synth_write(&p, out_path, err);
}
