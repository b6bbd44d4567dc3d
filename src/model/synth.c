// synth.c — deterministic random-weight llama GGUF writer (see synth.h for the contract).
#include "model/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
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
    float center;             // values are center + uniform(-amp, amp)
    float amp;                // uniform half-width (std * sqrt(3)); 0 for a constant
    const float *values;      // explicit data (rope factors), ne0 floats, one row
    int8_t shift;             // Gemma norms: -1 = store value - 1 (the HF layout), +1 = store
                              // (value - 1) + 1 (what llama.cpp's converter makes of that), 0 none
    int8_t a_log;             // hybrid ssm_a (negative decays): -1 = store logf(-value) (HF's A_log), +1 =
                              // store -expf(logf(-value)) (what llama.cpp's converter makes of that), 0 none
} tsrc;

// One row of floats (ne0) for row r.
static void gen_row(const tsrc *s, int64_t r, float *out) {
    if (s->values) { memcpy(out, s->values, (size_t)s->ne0 * sizeof(float)); return; }
    if (s->amp == 0) { for (int64_t k = 0; k < s->ne0; k++) out[k] = s->center; return; }
    uint64_t base = (uint64_t)r * (uint64_t)s->ne0;
    for (int64_t k = 0; k < s->ne0; k++) {
        uint64_t h = rng_hash64(s->key ^ (base + (uint64_t)k) * 0xd1342543de82ef95ull);
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);   // [0, 1), 24 bits
        out[k] = s->center + (2.0f * u - 1.0f) * s->amp;
    }
    if (s->shift < 0) for (int64_t k = 0; k < s->ne0; k++) out[k] = out[k] - 1.0f;
    else if (s->shift > 0) for (int64_t k = 0; k < s->ne0; k++) out[k] = (out[k] - 1.0f) + 1.0f;
    if (s->a_log < 0) for (int64_t k = 0; k < s->ne0; k++) out[k] = logf(-out[k]);
    else if (s->a_log > 0) for (int64_t k = 0; k < s->ne0; k++) out[k] = -expf(logf(-out[k]));
}

typedef struct synth_ctx {
    tv_pool *pool;
    int n_threads;
    // the quantizers: this CPU's best kernel path's from_float, bit-equal to the scalar reference's
    // on every path (test_kernels), so the bytes do not depend on the machine; MXFP4's reference
    // (a 16-way search per value) made a gpt-oss-20b file take over ten minutes of CPU, its AVX-512
    // twin a tenth of that
    kern_table kt;
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
    const tv_type_traits *tr = kern_traits(&j->sc->kt, j->src->type);
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

typedef struct src_binding {
    tsrc src;
    const synth_ctx *sc;
    int64_t rows_per_head;    // HF Q/K of llama-type archs: rows per head of llama.cpp's permutation, else 0
    int64_t row_base;         // HF expert matrices: the first row of this expert in the GGUF's 3-D tensor
    const tsrc *kb;           // HF kv_b_proj (deepseek2): attn_k_b's source (src is attn_v_b's), else NULL
    int32_t nope, v_dim, lora;   // ... its per-head K rows, V rows, and row length (kv_lora_rank)
    // HF Gated DeltaNet tensors: V heads grouped by K head (HF) vs tiled (llama.cpp's converter) over
    // the rows (columns when v_cols) from v_off on: v_k key heads, v_r value heads each, v_hd wide
    int32_t v_off, v_k, v_r, v_hd;
    bool v_cols;
    bool is_vector;
    // HF tensors fusing two GGUF ones (pair: the first's source, src the second's) or laying one out
    // differently (fused: FUSED_*); f_rows x f_cols: the GGUF matrix per expert (per output of a pair)
    const tsrc *pair;
    int8_t fused;
    int32_t f_rows, f_cols;
} src_binding;

enum {
    FUSED_NONE,
    FUSED_HALVES,   // Qwen3.5-MoE gate_up_proj [E, 2 R, C]: per expert the pair's rows, then src's
    FUSED_T,        // gpt-oss gate_up_proj [E, C, 2 R] / down_proj [E, C, R]: transposed, a pair interleaved
    FUSED_BIAS,     // gpt-oss gate_up_proj_bias [E, 2 R]: the pair's and src's rows interleaved
    FUSED_BLOCKS,   // gpt-oss MXFP4 <part>_blocks [E, n R, C / 32, 16] (two FP4 codes a byte, element 2i low)
    FUSED_SCALES,   // ... and <part>_scales [E, n R, C / 32] (E8M0), rows as FUSED_T's (n = 2 with a pair)
    FUSED_QKVZ,     // Qwen3-Next in_proj_qkvz [v_k * (2 R + 2 C), dim]: per key head q (R rows), k (R), v (C)
                    // of the pair (attn_qkv), then z (C) of src (attn_gate)
};

static tv_status fill(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const src_binding *b = user;
    const tv_type_traits *tr = kern_traits(&b->sc->kt, b->src.type);
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
    case TV_TYPE_MXFP4: return 38;   // MOSTLY_MXFP4_MOE: experts MXFP4, the rest Q8_0
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
void synth_llama3_rope_factors(float *out, int n_half, int head_dim, double theta, double orig) {
    const double factor = 32, low = 1, high = 4;
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

typedef struct arch_spec arch_spec;
static tv_status synth_write_arch(const tv_synth_params *p, const arch_spec *a, const char *out_path, tv_error *err);
static const arch_spec *find_arch(const char *name);
static bool arch_has_experts(const arch_spec *a);

tv_status synth_write(const tv_synth_params *p, const char *out_path, tv_error *err) {
    switch (p->type) {
    case TV_TYPE_F32: case TV_TYPE_F16: case TV_TYPE_BF16: case TV_TYPE_Q8_0: case TV_TYPE_Q4_0:
    case TV_TYPE_Q4_K: case TV_TYPE_Q6_K: break;
    case TV_TYPE_MXFP4:   // gpt-oss's release layout: only for an arch with experts
        if (p->arch && find_arch(p->arch) && arch_has_experts(find_arch(p->arch))) break;
        return err_fail(err, TV_ERR_INVALID, "type MXFP4 is for the experts of an arch that has them (--arch gpt-oss)");
    default: return err_fail(err, TV_ERR_INVALID, "type %s is not supported by synth (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K)",
                            kern_type_name(p->type));
    }
    if (p->arch && p->deep_from) return err_fail(err, TV_ERR_INVALID, "--deep-from is for --preset models");
    if (p->arch) {
        const arch_spec *a = find_arch(p->arch);
        if (!a) return err_fail(err, TV_ERR_INVALID, "unknown arch '%s' (archs: %s)", p->arch, tv_synth_arch_names());
        if (p->vocab_path || p->shape || p->preset)
            return err_fail(err, TV_ERR_INVALID, "synth: --arch takes no preset, shape or vocab file");
        if (p->hf && p->type != TV_TYPE_F32 && p->type != TV_TYPE_F16 && p->type != TV_TYPE_BF16 && p->type != TV_TYPE_MXFP4)
            return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights (gpt-oss: or MXFP4 "
                            "experts), not %s", kern_type_name(p->type));
        return synth_write_arch(p, a, out_path, err);
    }
    if (p->hf) return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders are written for --arch models");
    const tv_synth_shape *ps = p->shape ? p->shape : tv_synth_find_preset(p->preset);
    if (!ps) return err_fail(err, TV_ERR_INVALID, "unknown preset '%s' (presets: %s)", p->preset ? p->preset : "",
                            tv_synth_preset_names());
    tv_status st = TV_OK;
    gguf_writer *w = gguf_writer_create();
    src_binding *srcs = NULL;
    synth_ctx sc = { 0 };
    float *rope = NULL;
    if (!w) return err_fail(err, TV_ERR_NOMEM, "out of memory");

    const int32_t dim = ps->dim, hid = ps->hidden_dim, L = ps->n_layers, hd = ps->dim / ps->n_heads;
    const int32_t kv_dim = ps->n_kv_heads * hd;
    if (p->deep_from && (p->deep_from < 1 || p->deep_from >= L || !(p->deep_scale > 0.0f && p->deep_scale <= 1.0f))) {
        gguf_writer_free(w);
        return err_fail(err, TV_ERR_INVALID, "--deep-from %d / --deep-scale %g: the layer must be 1..%d and the scale in (0, 1]",
                        p->deep_from, (double)p->deep_scale, L - 1);
    }
    char text[256];
    gguf_set_str(w, "general.architecture", "llama");
    snprintf(text, sizeof text, "tinyvllm-synth-%s", ps->name);
    gguf_set_str(w, "general.name", text);
    char deep[96] = "";
    if (p->deep_from)
        snprintf(deep, sizeof deep, "; layers %d.. write %g times as much into the residual", p->deep_from, (double)p->deep_scale);
    snprintf(text, sizeof text, "RANDOM weights (tinyvllm synth, preset %s, type %s, seed %llu%s): not a trained model",
             ps->name, kern_type_name(p->type), (unsigned long long)p->seed, deep);
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
    if ((st = kern_table_init(&sc.kt, NULL, err))) goto done;
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
        b_->src.amp = (is_norm_) ? 0.0f : amp;                                                                 \
        b_->src.center = (is_norm_) ? 1.0f : 0.0f;                                                             \
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
        synth_llama3_rope_factors(rope, hd / 2, hd, ps->rope_theta, 8192);
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
        if (p->deep_from && l >= p->deep_from) srcs[k - 1].src.amp *= p->deep_scale;
        LAYER("ffn_norm.weight", TV_TYPE_F32, dim, 1, true);
        LAYER("ffn_gate.weight", p->type, dim, hid, false);
        LAYER("ffn_up.weight", p->type, dim, hid, false);
        LAYER("ffn_down.weight", vt, hid, dim, false);
        if (p->deep_from && l >= p->deep_from) srcs[k - 1].src.amp *= p->deep_scale;
#undef LAYER
    }
#undef ADD_T
    TV_CHECK(k == n_t);
    gguf_writer_set_progress(w, p->progress, p->progress_user);
    st = gguf_writer_write(w, out_path, err);
done:
    gguf_writer_free(w);
    pool_free(sc.pool);
    free(sc.scratch);
    free(srcs);
    free(rope);
    return st;
}

// ================================ family architectures (--arch) ================================
// One small model per family in that family's real llama.cpp layout: the tensor names and shapes
// llama.cpp's loader creates for the architecture (src/models/<arch>.cpp, load_arch_tensors) and
// the metadata keys it reads (load_hparams / load_arch_hparams, names from llama-arch.cpp). This
// table is written from llama.cpp's loaders, independently of our family tables
// (src/model/family_*.c), so the fixtures built on it cross-check those.
//
// Values are chosen so every family feature changes the logits measurably: norm weights are
// 1 + U(-0.25, 0.25) (so a norm applied with the wrong weight, or not at all, shows), projection
// rows have std gain/sqrt(row length) (activations keep unit scale through any depth), Q/K gain
// 1.5 (attention is peaked, so RoPE, windows and soft-caps matter), the output projection makes
// logits of std ~3 before any scaling (next-token distributions are not flat, so top-1 agreement
// is not decided by noise), sliding windows (32) are shorter than the fixture prompts, soft-caps
// are small enough to bite, the granite multipliers are not 1, RoPE bases differ per family.

enum {
    AF_TIED = 1 << 0,        // no output.weight: the output projection is token_embd
    AF_QKV_BIAS = 1 << 1,    // attn_q/k/v.bias (qwen2)
    AF_QK_NORM = 1 << 2,     // attn_q_norm / attn_k_norm, (head_dim) RMSNorm weights per layer
    AF_POST_NORMS = 1 << 3,  // post_attention_norm / post_ffw_norm (gemma)
    AF_FUSED_QKV = 1 << 4,   // attn_qkv (dim -> q_dim + 2 kv_dim) instead of attn_q/k/v (phi3)
    AF_FUSED_UP = 1 << 5,    // ffn_up holds gate then up (2 ff rows), no ffn_gate (phi3)
    AF_ROPE_FREQS = 1 << 6,  // rope_freqs.weight: llama 3 frequency factors
    AF_LONGROPE = 1 << 7,    // rope_factors_long / rope_factors_short (phi3 LongRoPE)
    AF_GEMMA4 = 1 << 8,      // global layers: own head dim / kv heads, K doubles as V (no attn_v),
                             // proportional rope_freqs; layer_output_scale per layer
    AF_GPTOSS = 1 << 9,      // attn_output.bias, attn_sinks, post_attention_norm as the FFN norm,
                             // router and per-expert biases (gpt-oss)
    AF_HYBRID = 1 << 10,     // Gated DeltaNet layers (ssm_*) except every full_attn_interval-th, which
                             // is a gated attention (attn_q of query + gate rows, Q/K norms);
                             // post_attention_norm as the FFN norm (qwen35, qwen35moe, qwen3next)
    AF_GLM4MOE = 1 << 11,    // post_attention_norm as the FFN norm, layer 0 dense, sigmoid routing with
                             // exp_probs_b, one ungated shared expert, the last layer an MTP (nextn)
                             // layer llama.cpp does not run (glm4moe)
    AF_WIDE_SHARED = 1 << 12,  // the layers without K/V of their own (n_kv_shared) have a double-wide FFN
                               // and feed_forward_length is one value per layer (gemma 4 E2B/E4B's
                               // use_double_wide_mlp)
};
// Multi-head latent attention and DeepSeek's MoE (arch deepseek2): the ranks at DeepSeek-V2/V3's
// ratios (kv_lora : nope : rope : v = 4 : 1 : 0.5 : 1), dense leading layers, shared experts.
typedef struct mla_spec {
    int32_t q_lora, kv_lora, nope, v_mla;   // q_lora 0: attn_q directly (the Lite variant)
    int32_t dense_lead, n_shexp, n_group, n_group_used;
    int32_t gating;                         // expert_gating_func: 1 softmax, 2 sigmoid
    bool probs_bias, norm_w;                // exp_probs_b (V3), expert_weights_norm
    float w_scale;                          // expert_weights_scale
    float yarn_log_mul;                     // rope.scaling.yarn_log_multiplier (0.1 * mscale_all_dim; 0: absent)
} mla_spec;
// V3 style: q_lora, sigmoid routing with a selection bias over 2 groups (1 used), normed weights
// scaled by 2.5, YaRN with V2's mscale_all_dim 0.707. Lite: direct queries, softmax, 2 shared
// experts, YaRN without the multiplier key.
static const mla_spec MLA_V3 = {64, 128, 32, 32, 1, 1, 4, 2, 2, true, true, 1.0f, 0.0707f};
static const mla_spec MLA_LITE = {0, 128, 32, 32, 1, 2, 0, 0, 1, false, false, 1.0f, 0.0f};
// DeepSeek-V2-Lite's real ranks (the deepseek-v2-lite-4l benchmark shape): kv_lora 512, nope 128, v 128
static const mla_spec MLA_V2_LITE = {0, 512, 128, 128, 1, 2, 0, 0, 1, false, false, 1.0f, 0.0f};

// A spec with n_expert > 0 has a mixture-of-experts FFN in every layer: ffn_gate_inp (F32, as
// llama-quantize leaves it), 3-D ffn_gate/up/down_exps of ff_exp (0: ff) rows per expert, and with
// ff_shexp > 0 qwen2moe's shared expert (ffn_gate_inp_shexp, ffn_gate/up/down_shexp).

struct arch_spec {
    const char *name;            // synth --arch NAME
    const char *arch;            // general.architecture
    int32_t dim, ff, n_layers, n_heads, n_kv_heads, head_dim, n_rot, ctx;
    int32_t swa_period;          // 0: no sliding window; else layer l is global iff l % period == period - 1
    int32_t swa_head_dim, swa_kv_heads;   // gemma4's sliding layers (0: as the global ones)
    float theta, eps;
    float out_gain;              // std of the logits before any final scaling
    float embd_std;              // token_embd std when not tied (tied: out_gain / sqrt(dim))
    unsigned flags;
    // benchmark shapes (0 / NULL in the fixture rows): vocab (else 512), sliding window (else
    // SWA_WINDOW), and the fixture arch whose metadata they take (else name)
    int32_t n_vocab, window;
    const char *base;
    int32_t n_expert, n_expert_used, ff_exp, ff_shexp;   // mixture of experts (0: dense)
    int32_t n_embd_pl;           // gemma4 E2B/E4B: per-layer input width (0: none)
    int32_t n_kv_shared;         // gemma4 E2B/E4B: the last layers, reusing earlier layers' KV (0: none)
    const mla_spec *mla;         // deepseek2 (head_dim = kv_lora + n_rot, one KV head), else NULL
};

// AF_HYBRID archs' Gated DeltaNet shape: conv width, key/value head size, key and value heads, the
// full-attention period; is_ba_fused: one ssm_ba tensor (per key head its beta rows, then its alpha
// rows: qwen3next) instead of ssm_beta and ssm_alpha.
typedef struct hybrid_spec {
    const char *name;
    int32_t ssm_conv, ssm_head, ssm_k_heads, ssm_v_heads, full_attn_interval;
    bool is_ba_fused;
} hybrid_spec;
static const hybrid_spec HYBRIDS[] = {
    {"qwen35", 4, 32, 4, 8, 4, false},
    {"qwen35moe", 4, 32, 4, 8, 4, false},
    {"qwen3next", 4, 32, 4, 8, 4, true},
    {"qwen36-27b-8l", 4, 128, 16, 48, 4, false},
};

static const hybrid_spec *find_hybrid(const arch_spec *a) {
    for (size_t i = 0; i < sizeof HYBRIDS / sizeof HYBRIDS[0]; i++)
        if (!strcmp(HYBRIDS[i].name, a->name)) return &HYBRIDS[i];
    return &HYBRIDS[0];
}

#define SWA_WINDOW 32   // every sliding window: shorter than the fixtures' long prompt

// Residual stream: with every block writing a unit-size update, the layers re-randomize the
// stream and the logits are a fresh random projection at every position; then a few percent of
// positions have a top-2 logit gap under 0.01, and the rounding noise any two implementations of one
// quantized file differ by (activation-quantization flips) decides them. A trained model's blocks
// write small updates into a stream that keeps carrying its token (Gemma's sqrt(dim) embedding
// scale is there for that). The families whose quantized fixtures sat at that noise floor take such
// a stream (tests/fixtures/families/README.md, "Residual stream": how the values were picked, what
// they change): zeroing the layers still changes llama.cpp's F32 top-1 at 41-87% of positions, the
// quantized KL falls 2-140x and strict top-1 clears 98%. embd_gain multiplies the tied token
// embedding (output_norm is divided by it, so the logits keep their size); res_gain multiplies what
// each block writes (attn_output and ffn_down, or the norms that end a block where there are some).
typedef struct stream_spec {
    const char *name;
    float embd_gain, res_gain;
} stream_spec;
static const stream_spec STREAMS[] = {
    {"gemma2", 1.0f, 0.3f}, {"gemma3", 1.0f, 0.3f}, {"gemma4", 3.0f, 0.3f}, {"gemma4e", 1.0f, 0.3f}, {"smollm3", 4.0f, 0.3f},
};
static const stream_spec STREAM_PLAIN = {NULL, 1.0f, 1.0f};

static const stream_spec *find_stream(const arch_spec *a) {
    for (size_t i = 0; i < sizeof STREAMS / sizeof STREAMS[0]; i++)
        if (!strcmp(STREAMS[i].name, a->name)) return &STREAMS[i];
    return &STREAM_PLAIN;
}

#define DENSE 0, 0, 0, 0, 0, 0, NULL   // no experts, no per-layer inputs, no shared KV, no MLA
static const arch_spec ARCHS[] = {
    // name       arch        dim  ff   L  H  KV  hd   rot  ctx   swa  swa_hd swa_kv theta  eps    gain embd flags
    {"llama",    "llama",    256, 768, 4, 4, 2,  64,  64, 2048,  0,   0, 0, 10000.0f, 1e-5f, 3.0f, 1.0f, 0, 0, 0, NULL, DENSE},
    {"llama3",   "llama",    256, 768, 4, 4, 2,  64,  64, 8192,  0,   0, 0, 500000.0f, 1e-5f, 3.0f, 1.0f, AF_TIED | AF_ROPE_FREQS, 0, 0, NULL, DENSE},
    {"qwen2",    "qwen2",    256, 768, 4, 4, 2,  64,  64, 4096,  0,   0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f, AF_TIED | AF_QKV_BIAS, 0, 0, NULL, DENSE},
    {"qwen3",    "qwen3",    256, 768, 4, 4, 2, 128, 128, 4096,  0,   0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f, AF_QK_NORM, 0, 0, NULL, DENSE},
    {"gemma2",   "gemma2",   256, 768, 4, 4, 2, 128, 128, 8192,  2,   0, 0, 10000.0f, 1e-6f, 3.0f, 1.0f, AF_TIED | AF_POST_NORMS, 0, 0, NULL, DENSE},
    {"gemma3",   "gemma3",   256, 768, 8, 4, 1, 128, 128, 8192,  6,   0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_POST_NORMS | AF_QK_NORM, 0, 0, NULL, DENSE},
    {"gemma4",   "gemma4",   256, 768, 6, 4, 1, 128, 128, 8192,  6,  64, 2, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_POST_NORMS | AF_QK_NORM | AF_GEMMA4, 0, 0, NULL, DENSE},
    // gemma4 E2B/E4B-like: gemma4 with 6 layers (2 and 5 global), per-layer inputs of 64 per layer
    // (E2B: 256 of 1536), the last 3 layers reusing layer 1's (sliding) or 2's (global) KV
    // (E2B: 20 of 35 layers) and with a double-wide FFN (1536, as E2B's)
    {"gemma4e",  "gemma4",   256, 768, 6, 4, 1, 128, 128, 8192, 3,  64, 2, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_POST_NORMS | AF_QK_NORM | AF_GEMMA4 | AF_WIDE_SHARED, 0, 0, "gemma4", 0, 0, 0, 0, 64, 3, NULL},
    // gemma4 26B-A4B-like: gemma4 with 16 experts top-4 of 128 (fused ffn_gate_up_exps, per-expert
    // scales, the router's own input scale) beside a dense MLP of 256 in every layer (26B-A4B: 128
    // experts top-8 of 704 beside 2112, dim 2816)
    {"gemma4moe", "gemma4",  256, 256, 6, 4, 1, 128, 128, 8192,  6,  64, 2, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_POST_NORMS | AF_QK_NORM | AF_GEMMA4, 0, 0, "gemma4", 16, 4, 128, 0, 0, 0, NULL},
    {"phi3",     "phi3",     256, 768, 4, 4, 2,  64,  48, 4096,  0,   0, 0, 10000.0f, 1e-5f, 3.0f, 1.0f,
     AF_TIED | AF_FUSED_QKV | AF_FUSED_UP | AF_LONGROPE, 0, 0, NULL, DENSE},
    {"mistral3", "mistral3", 256, 768, 4, 4, 2, 128, 128, 1024,  0,   0, 0, 1000000.0f, 1e-5f, 3.0f, 1.0f, 0, 0, 0, NULL, DENSE},
    {"smollm3",  "smollm3",  256, 768, 8, 4, 2,  64,  64, 4096,  0,   0, 0, 5000000.0f, 1e-6f, 3.0f, 1.0f, AF_TIED, 0, 0, NULL, DENSE},
    // granite divides the logits by logit_scale (8): gain 24 gives std ~3 after it; embeddings are
    // multiplied by embedding_scale (12): std 0.05 keeps them the size of the (0.22-scaled) blocks
    {"granite",  "granite",  256, 768, 4, 4, 2,  64,  64, 4096,  0,   0, 0, 10000000.0f, 1e-5f, 24.0f, 0.05f, 0, 0, 0, NULL, DENSE},
    // mixture of experts: 16 experts top-4 (qwen3moe, qwen2moe with a shared expert), Mixtral's 8
    // top-2 (llama with experts, each feed_forward_length wide); router logits std 2
    {"qwen3moe", "qwen3moe", 256, 768, 4, 4, 2, 128, 128, 4096, 0,  0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_QK_NORM, 0, 0, NULL, 16, 4, 256, 0, 0, 0, NULL},
    {"qwen2moe", "qwen2moe", 256, 768, 4, 4, 2,  64,  64, 4096, 0,  0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_QKV_BIAS, 0, 0, NULL, 16, 4, 256, 512, 0, 0, NULL},
    {"mixtral",  "llama",    256, 256, 4, 4, 2,  64,  64, 2048, 0,  0, 0, 1000000.0f, 1e-5f, 3.0f, 1.0f,
     0, 0, 0, NULL, 8, 2, 0, 0, 0, 0, NULL},
    // gpt-oss: even layers slide (window 32), sinks, YaRN x8 over an original context of 64 (so it
    // bites at the fixtures' positions), biases everywhere, 16 experts top-4 of 256
    {"gpt-oss",  "gpt-oss",  256, 768, 4, 4, 2,  64,  64, 4096, 2,  0, 0, 150000.0f, 1e-5f, 3.0f, 1.0f,
     AF_QKV_BIAS | AF_GPTOSS, 0, 0, NULL, 16, 4, 256, 0, 0, 0, NULL},
    // hybrid Gated DeltaNet models, Qwen3.5/3.6's ratios scaled down: 3 linear layers of 4, value
    // heads twice the key heads, d_inner = dim, head 256 with a quarter rotated (here 64 / 16)
    {"qwen35",   "qwen35",   256, 768, 8, 4, 2,  64,  16, 4096, 0,  0, 0, 10000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_HYBRID, 0, 0, NULL, DENSE},
    // qwen35 with a mixture of experts in every layer (Qwen3.6-35B-A3B-like): 16 experts top-4 of 128
    // plus a shared expert of 256 gated by sigmoid(x · ffn_gate_inp_shexp); qwen3next: the same with
    // the fused ssm_ba and its grouped key heads (value heads 2g and 2g + 1 read key head g)
    {"qwen35moe", "qwen35moe", 256, 768, 8, 4, 2, 64, 16, 4096, 0, 0, 0, 10000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_HYBRID, 0, 0, NULL, 16, 4, 128, 256, 0, 0, NULL},
    {"qwen3next", "qwen3next", 256, 768, 8, 4, 2, 64, 16, 4096, 0, 0, 0, 10000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_HYBRID, 0, 0, NULL, 16, 4, 128, 256, 0, 0, NULL},
    // deepseek2: latent attention (K rows of 128 latent + 16 RoPE dims), 16 experts top-4 of 128
    // after one dense layer; YaRN x8 (x4 Lite) over an original context of 64
    // glm4moe: partial NeoX RoPE (half of each 64-dim head), q/k/v biases and q/k norms, layer 0
    // dense, 16 experts top-4 of 128, block_count 5 of which the last is the MTP layer
    {"glm4moe",  "glm4moe",  256, 512, 5, 4, 2,  64,  32, 4096, 0,  0, 0, 1000000.0f, 1e-5f, 3.0f, 1.0f,
     AF_QKV_BIAS | AF_QK_NORM | AF_GLM4MOE, 0, 0, NULL, 16, 4, 128, 0, 0, 0, NULL},
    {"deepseek2", "deepseek2", 256, 512, 4, 4, 1, 144, 16, 4096, 0, 0, 0, 10000.0f, 1e-6f, 3.0f, 1.0f,
     0, 0, 0, NULL, 16, 4, 128, 0, .mla = &MLA_V3},
    {"deepseek2-lite", "deepseek2", 256, 512, 4, 4, 1, 144, 16, 4096, 0, 0, 0, 10000.0f, 1e-6f, 3.0f, 1.0f,
     0, 0, 0, NULL, 16, 4, 128, 0, .mla = &MLA_LITE},
    // benchmark shapes of the models people run (bench/, docs/benchmarks.md): real dims, vocab sizes
    // and windows, the trained context written as 4096 so default KV sizing stays small
    {"qwen3-1.7b", "qwen3",  2048, 6144, 28, 16, 8, 128, 128, 4096, 0, 0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_QK_NORM, 151936, 0, "qwen3", DENSE},
    {"gemma3-1b",  "gemma3", 1152, 6912, 26, 4, 1, 256, 256, 4096, 6, 0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_TIED | AF_POST_NORMS | AF_QK_NORM, 262144, 512, "gemma3", DENSE},
    {"phi4-mini",  "phi3",   3072, 8192, 32, 24, 8, 128, 96, 4096, 0, 0, 0, 10000.0f, 1e-5f, 3.0f, 1.0f,
     AF_TIED | AF_FUSED_QKV | AF_FUSED_UP | AF_LONGROPE, 200064, 0, "phi3", DENSE},
    // mixture-of-experts benchmark shapes. Qwen3-30B-A3B scaled to this 24 GiB machine: its dim,
    // heads, head size, vocab and expert width, half its layers (24 of 48) and half its experts
    // (64 of 128, still top-8): 8.3B parameters, 1.7B active (Q8_0 8.9 GB, Q4_K_M ~5 GB).
    {"qwen3moe-24l", "qwen3moe", 2048, 6144, 24, 32, 4, 128, 128, 4096, 0, 0, 0, 1000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_QK_NORM, 151936, 0, "qwen3moe", 64, 8, 768, 0, 0, 0, NULL},
    // Qwen3.6-27B (qwen35: Qwen3.5-27B's shape) scaled to this 2-core, 24 GiB machine: its dim 5120, 24
    // heads / 4 KV heads of 256 with 64 rotated dims, FFN 17408, linear layers of 16 key / 48 value heads
    // of 128 (conv 4), vocab 248320, and 8 of its 64 layers (6 Gated DeltaNet + 2 full attention, its 3:1
    // pattern): 5.6B parameters, 3.0B of them in the layers (Q4_K_M ~3.6 GB); per sequence 20 MB of
    // state and 8 KiB of f16 KV a token
    {"qwen36-27b-8l", "qwen35", 5120, 17408, 8, 24, 4, 256, 64, 4096, 0, 0, 0, 10000000.0f, 1e-6f, 3.0f, 1.0f,
     AF_HYBRID, 248320, 0, "qwen35", DENSE},
    // DeepSeek-V2-Lite's shape with 4 of its 27 layers (the first dense, FFN 10944): dim 2048, 16 heads,
    // MLA kv_lora 512 / nope 128 / rope 64 / v 128 (no q_lora), 64 experts top-6 of 1408 plus 2 shared,
    // vocab 102400: 2.2B parameters (Q8_0 ~2.4 GB); the expanded-vs-absorbed attention benchmark
    {"deepseek-v2-lite-4l", "deepseek2", 2048, 10944, 4, 16, 1, 576, 64, 4096, 0, 0, 0, 10000.0f, 1e-6f, 3.0f, 1.0f,
     0, 102400, 0, "deepseek2-lite", 64, 6, 1408, 0, 0, 0, .mla = &MLA_V2_LITE},
    // gpt-oss-20b at its real size (write it with --type MXFP4: experts MXFP4, the rest Q8_0, ~12 GB):
    // 24 layers, 64 heads of 64, 8 KV heads, window 128 on even layers, 32 experts top-4 of 2880
    {"gpt-oss-20b", "gpt-oss", 2880, 2880, 24, 64, 8, 64, 64, 4096, 2, 0, 0, 150000.0f, 1e-5f, 3.0f, 1.0f,
     AF_QKV_BIAS | AF_GPTOSS, 201088, 128, "gpt-oss", 32, 4, 2880, 0, 0, 0, NULL},
};
#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])

#define FIXTURE_ARCHS \
    "llama, llama3, qwen2, qwen3, gemma2, gemma3, gemma4, gemma4e, gemma4moe, phi3, mistral3, smollm3, granite, qwen3moe, " \
    "qwen2moe, mixtral, gpt-oss, qwen35, qwen35moe, qwen3next, glm4moe, deepseek2, deepseek2-lite"
#define BENCH_ARCHS "qwen3-1.7b, gemma3-1b, phi4-mini, qwen3moe-24l, gpt-oss-20b, qwen36-27b-8l, deepseek-v2-lite-4l"
const char *tv_synth_arch_names(void) { return FIXTURE_ARCHS "; benchmark shapes (real dims; qwen3moe-24l has half the layers and experts, qwen36-27b-8l an eighth of the layers): " BENCH_ARCHS; }
const char *synth_fixture_arch_names(void) { return FIXTURE_ARCHS; }

static const arch_spec *find_arch(const char *name) {
    for (size_t i = 0; name && i < N_ARCHS; i++)
        if (!strcmp(ARCHS[i].name, name)) return &ARCHS[i];
    return NULL;
}

static bool arch_has_experts(const arch_spec *a) { return a->n_expert > 0; }

static bool arch_is_swa(const arch_spec *a, int l) { return a->swa_period && l % a->swa_period != a->swa_period - 1; }
static int32_t arch_head_dim(const arch_spec *a, int l) {
    return a->swa_head_dim && arch_is_swa(a, l) ? a->swa_head_dim : a->head_dim;
}
static int32_t arch_kv_heads(const arch_spec *a, int l) {
    return a->swa_kv_heads && arch_is_swa(a, l) ? a->swa_kv_heads : a->n_kv_heads;
}
static int32_t arch_ff(const arch_spec *a, int l) {
    return (a->flags & AF_WIDE_SHARED) && l >= a->n_layers - a->n_kv_shared ? 2 * a->ff : a->ff;
}

// The tensors of one file, each a value source bound to its GGUF entry.
typedef struct arch_writer {
    gguf_writer *w;
    st_writer *st;       // an HF folder's model.safetensors instead of the GGUF's tensors, or NULL
    const arch_spec *a;
    bool hf_exact;
    src_binding *srcs;   // (cap) stable: the writer keeps pointers to them
    int n, cap;
    const src_binding *pending_kb;   // an HF folder's attn_k_b, until its attn_v_b makes kv_b_proj
    const src_binding *pending;      // the first GGUF tensor of a fused HF one (gate experts, attn_qkv), until the second
    synth_ctx sc;
    uint64_t seed;
} arch_writer;

// ---- Hugging Face folders (--format hf) ----
// The HF names of each GGUF tensor (transformers' modeling_<family>.py), llama.cpp's Q/K row
// permutation undone for the archs its converter permutes, Gemma's norms stored as w - 1. Written
// from transformers' layouts, independently of the loader's map (model/hf.c), so the two cross-check.
static bool is_mixtral(const arch_spec *a) { return !strcmp(a->name, "mixtral"); }

static bool arch_permutes_qk(const arch_spec *a) {
    return !strcmp(a->arch, "llama") || !strcmp(a->arch, "mistral3") || !strcmp(a->arch, "smollm3") ||
           !strcmp(a->arch, "granite");
}

// HF row r of a permuted Q/K holds GGUF row hf_row_to_gguf(r): heads of rph rows, HF's two halves
// (rotate_half pairs (j, j + rph/2)) interleaved in GGUF as (2j, 2j + 1).
static int64_t hf_row_to_gguf(int64_t r, int64_t rph) {
    const int64_t head = r / rph, k = r % rph, half = rph / 2;
    return head * rph + 2 * (k % half) + k / half;
}

// HF index x of a Gated DeltaNet tensor's V part (heads grouped by K head) -> the GGUF's (tiled: value
// head j of K head kh at j * v_k + kh).
static int64_t hf_v_to_gguf(const src_binding *b, int64_t x) {
    if (!b->v_k || x < b->v_off) return x;
    const int64_t p = x - b->v_off, kh = p / ((int64_t)b->v_r * b->v_hd), j = p / b->v_hd % b->v_r, d = p % b->v_hd;
    return b->v_off + (j * b->v_k + kh) * b->v_hd + d;
}

static tv_status hf_fill(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const src_binding *b = user;
    const tv_type_traits *tr = kern_traits_ref(b->src.type);
    const int64_t n = b->src.ne0;
    float *tmp = malloc(2 * (size_t)n * sizeof *tmp);
    if (!tmp) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    const size_t row_bytes = kern_row_size(b->src.type, n);
    const bool permute_elems = (b->is_vector && (b->rows_per_head || b->v_k)) || b->v_cols;
    for (int64_t r = 0; r < n_rows; r++) {
        float *v = tmp;
        if (permute_elems) {   // a permuted bias / vector (its elements are the rows), or permuted columns
            gen_row(&b->src, b->is_vector ? 0 : row0 + r, tmp + n);
            for (int64_t k = 0; k < n; k++)
                tmp[k] = tmp[n + (b->rows_per_head ? hf_row_to_gguf(k, b->rows_per_head) : hf_v_to_gguf(b, k))];
        } else {
            const int64_t hr = row0 + r;
            gen_row(&b->src, b->row_base + (b->rows_per_head ? hf_row_to_gguf(hr, b->rows_per_head) : hf_v_to_gguf(b, hr)), v);
        }
        if (b->src.type == TV_TYPE_F32) memcpy((uint8_t *)dst + (size_t)r * row_bytes, v, row_bytes);
        else tr->from_float(v, (uint8_t *)dst + (size_t)r * row_bytes, n);
    }
    free(tmp);
    return TV_OK;
}

// kv_b_proj [H * (nope + v), lora] of the GGUF's attn_k_b {nope, lora, H} and attn_v_b {lora, v, H}:
// per head, K row j holds attn_k_b's column j (row c of head h: lora rows of nope), then the v rows
// of attn_v_b (what llama.cpp's converter splits and transposes).
static tv_status hf_fill_kv_b(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const src_binding *b = user;
    const tv_type_traits *tr = kern_traits_ref(b->src.type);
    const int64_t per = b->nope + b->v_dim, n = b->lora;
    float *v = malloc(((size_t)n + (size_t)b->nope) * sizeof *v), *k = v ? v + n : NULL;
    if (!v) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    const size_t row_bytes = kern_row_size(b->src.type, n);
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t head = (row0 + r) / per, j = (row0 + r) % per;
        if (j < b->nope) {
            for (int64_t c = 0; c < n; c++) {
                gen_row(b->kb, head * n + c, k);
                v[c] = k[j];
            }
        } else {
            gen_row(&b->src, head * b->v_dim + (j - b->nope), v);
        }
        if (b->src.type == TV_TYPE_F32) memcpy((uint8_t *)dst + (size_t)r * row_bytes, v, row_bytes);
        else tr->from_float(v, (uint8_t *)dst + (size_t)r * row_bytes, n);
    }
    free(v);
    return TV_OK;
}

static st_dtype hf_dtype(tv_type t) { return t == TV_TYPE_F32 ? ST_F32 : t == TV_TYPE_F16 ? ST_F16 : ST_BF16; }

// Archs whose folders wrap the text model (Qwen3_5MoeForConditionalGeneration, Gemma4ForConditionalGeneration:
// model.language_model.*, config.json's text keys under text_config), and those holding transformers 5's
// fused 3-D experts.
static bool hf_wrapped(const arch_spec *a) { return !strcmp(a->arch, "qwen35moe") || (a->flags & AF_GEMMA4); }
static bool hf_fused_experts(const arch_spec *a) { return !strcmp(a->arch, "qwen35moe") || (a->flags & (AF_GPTOSS | AF_GEMMA4)); }

// One row of a fused HF tensor (see FUSED_*), in b->src's float type, or bytes for the MXFP4 forms.
// tmp: scratch the caller keeps across rows, holding the expert (FUSED_T) or GGUF row (MXFP4) last made.
typedef struct fused_scratch {
    float *m;          // FUSED_T: the expert's matrices (pair's, then src's: 2 x f_rows x f_cols); else rows
    int64_t key;       // which expert / row m holds (-1: none)
    uint8_t q[4096];   // MXFP4: the GGUF row's blocks (f_cols / 32 x 17 bytes)
} fused_scratch;

static tv_status fused_row(const src_binding *b, int64_t x, fused_scratch *fs, void *out) {
    const int64_t R = b->f_rows, C = b->f_cols;
    const int n_out = b->pair ? 2 : 1;
    const tv_type_traits *tr = kern_traits_ref(b->src.type);
    float *v = fs->m;   // the output row in floats (FUSED_T uses the space after the matrices)
    switch (b->fused) {
    case FUSED_HALVES: {
        const int64_t e = x / (2 * R), j = x % (2 * R);
        gen_row(j < R ? b->pair : &b->src, e * R + j % R, v);
        break;
    }
    case FUSED_QKVZ: {
        const int64_t per = 2 * R + 2 * C, k = x / per, j = x % per, nk = b->v_k;
        if (j < 2 * R) gen_row(b->pair, (j < R ? 0 : nk * R) + k * R + j % R, v);
        else if (j < 2 * R + C) gen_row(b->pair, 2 * nk * R + k * C + (j - 2 * R), v);
        else gen_row(&b->src, k * C + (j - 2 * R - C), v);
        break;
    }
    case FUSED_BIAS: {
        float *p = v + 2 * C;
        gen_row(b->pair, x, p);
        gen_row(&b->src, x, p + C);
        for (int64_t k = 0; k < 2 * C; k++) v[k] = p[(k & 1) * C + k / 2];
        break;
    }
    case FUSED_T: {
        const int64_t e = x / C, c = x % C;
        float *mat = fs->m + 2 * R;   // (n_out, R, C) after the row (2 R)
        if (fs->key != e) {
            for (int o = 0; o < n_out; o++)
                for (int64_t r = 0; r < R; r++) gen_row(o == n_out - 1 ? &b->src : b->pair, e * R + r, mat + ((size_t)o * R + r) * C);
            fs->key = e;
        }
        for (int64_t k = 0; k < n_out * R; k++) v[k] = mat[((size_t)(k % n_out) * R + k / n_out) * C + c];
        break;
    }
    case FUSED_BLOCKS: case FUSED_SCALES: {
        const int64_t nb = C / 32, rr = b->fused == FUSED_BLOCKS ? x / nb : x;
        const int64_t e = rr / (n_out * R), k = rr % (n_out * R);
        if (fs->key != rr) {
            gen_row(n_out == 2 && !(k & 1) ? b->pair : &b->src, e * R + k / n_out, v);
            kern_traits(&b->sc->kt, TV_TYPE_MXFP4)->from_float(v, fs->q, C);
            fs->key = rr;
        }
        const tv_block_mxfp4 *q = (const tv_block_mxfp4 *)fs->q;
        uint8_t *o = out;
        if (b->fused == FUSED_SCALES) {
            for (int64_t i = 0; i < nb; i++) o[i] = q[i].e;
            return TV_OK;
        }
        const tv_block_mxfp4 *blk = &q[x % nb];
        for (int i = 0; i < 16; i++) {   // HF byte i: elements 2i (low) and 2i + 1; ggml's byte j: j (low), j + 16
            const int a0 = 2 * i, a1 = 2 * i + 1;
            const int c0 = a0 < 16 ? blk->qs[a0] & 15 : blk->qs[a0 - 16] >> 4, c1 = a1 < 16 ? blk->qs[a1] & 15 : blk->qs[a1 - 16] >> 4;
            o[i] = (uint8_t)(c0 | c1 << 4);
        }
        return TV_OK;
    }
    default: return TV_ERR_INVALID;
    }
    const int64_t n = b->fused == FUSED_T ? n_out * R : b->fused == FUSED_BIAS ? 2 * C : b->src.ne0;
    if (b->src.type == TV_TYPE_F32) memcpy(out, v, (size_t)n * sizeof *v);
    else tr->from_float(v, out, n);
    return TV_OK;
}

static tv_status hf_fill_fused(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    const src_binding *b = user;
    const int64_t R = b->f_rows, C = b->f_cols, n_out = b->pair ? 2 : 1;
    fused_scratch fs = {.key = -1};
    size_t row_bytes;
    if (b->fused == FUSED_BLOCKS) row_bytes = 16;
    else if (b->fused == FUSED_SCALES) row_bytes = (size_t)(C / 32);
    else row_bytes = kern_row_size(b->src.type, b->fused == FUSED_T ? n_out * R : b->fused == FUSED_BIAS ? 2 * C : b->src.ne0);
    if ((size_t)(C / 32) * sizeof(tv_block_mxfp4) > sizeof fs.q) return err_fail(err, TV_ERR_INVALID, "synth: MXFP4 row too long");
    const size_t n_floats = b->fused == FUSED_T ? (size_t)(2 * R * C + 2 * R) : (size_t)(4 * (C > R ? C : R) + b->src.ne0 + 64);
    if (!(fs.m = malloc(n_floats * sizeof *fs.m))) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    tv_status st = TV_OK;
    for (int64_t r = 0; r < n_rows && !st; r++) st = fused_row(b, row0 + r, &fs, (uint8_t *)dst + (size_t)r * row_bytes);
    free(fs.m);
    return st ? err_fail(err, st, "synth: bad fused layout") : TV_OK;
}

static tv_status hf_add(arch_writer *a, src_binding *b, const char *gguf, int64_t ne0, int64_t ne1, tv_error *err) {
    static const char *const LAYER[][3] = {   // GGUF part, HF part, the Gemma layout's HF part
        {"attn_norm", "input_layernorm", NULL},      {"attn_q", "self_attn.q_proj", NULL},
        {"attn_k", "self_attn.k_proj", NULL},        {"attn_v", "self_attn.v_proj", NULL},
        {"attn_output", "self_attn.o_proj", NULL},   {"attn_qkv", "self_attn.qkv_proj", NULL},
        {"attn_q_norm", "self_attn.q_norm", NULL},   {"attn_k_norm", "self_attn.k_norm", NULL},
        {"ffn_norm", "post_attention_layernorm", "pre_feedforward_layernorm"},
        {"post_attention_norm", NULL, "post_attention_layernorm"},
        {"post_ffw_norm", NULL, "post_feedforward_layernorm"},
        {"ffn_gate", "mlp.gate_proj", NULL},         {"ffn_up", "mlp.up_proj", NULL},
        {"ffn_down", "mlp.down_proj", NULL},         {"ffn_gate_inp", "mlp.gate", NULL},
        {"ffn_gate_shexp", "mlp.shared_expert.gate_proj", NULL}, {"ffn_up_shexp", "mlp.shared_expert.up_proj", NULL},
        {"ffn_down_shexp", "mlp.shared_expert.down_proj", NULL}, {"ffn_gate_inp_shexp", "mlp.shared_expert_gate", NULL},
        {"attn_q_a", "self_attn.q_a_proj", NULL},    {"attn_q_a_norm", "self_attn.q_a_layernorm", NULL},
        {"attn_q_b", "self_attn.q_b_proj", NULL},    {"attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa", NULL},
        {"attn_kv_a_norm", "self_attn.kv_a_layernorm", NULL},
        {"inp_gate", "per_layer_input_gate", NULL},  {"proj", "per_layer_projection", NULL},   // Gemma 4 E2B/E4B
        {"post_norm", "post_per_layer_input_norm", NULL}, {"layer_output_scale", "layer_scalar", NULL},
    };
    const arch_spec *s = a->a;
    const bool gemma = !strncmp(s->arch, "gemma", 5), mm = !strcmp(s->arch, "mistral3");
    // the text model's prefix: Ministral 3's llava-style wrapper, Qwen3.5-MoE's (Qwen3_5MoeForConditionalGeneration)
    const char *model = mm ? "language_model.model." : hf_wrapped(s) ? "model.language_model." : "model.";
    const char *head = mm ? "language_model." : "";
    char hf[160], part[64];
    const char *suffix = strrchr(gguf, '.');
    int layer = -1, pos = 0;
    if (!strncmp(gguf, "rope_", 5)) return TV_OK;   // config.json's rope_scaling carries them
    if (!strcmp(gguf, "token_embd.weight")) snprintf(hf, sizeof hf, "%sembed_tokens.weight", model);
    else if (!strcmp(gguf, "output_norm.weight")) snprintf(hf, sizeof hf, "%snorm.weight", model);
    else if (!strcmp(gguf, "output.weight")) snprintf(hf, sizeof hf, "%slm_head.weight", head);
    else if (!strcmp(gguf, "per_layer_token_embd.weight")) snprintf(hf, sizeof hf, "%sembed_tokens_per_layer.weight", model);
    else if (!strcmp(gguf, "per_layer_model_proj.weight")) snprintf(hf, sizeof hf, "%sper_layer_model_projection.weight", model);
    else if (!strcmp(gguf, "per_layer_proj_norm.weight")) snprintf(hf, sizeof hf, "%sper_layer_projection_norm.weight", model);
    else if (sscanf(gguf, "blk.%d.%n", &layer, &pos) == 1 && pos > 0 && suffix) {
        snprintf(part, sizeof part, "%.*s", (int)(suffix - (gguf + pos)), gguf + pos);
        const char *h = NULL;
        for (size_t i = 0; i < sizeof LAYER / sizeof LAYER[0] && !h; i++)
            if (!strcmp(LAYER[i][0], part)) h = gemma && LAYER[i][2] ? LAYER[i][2] : LAYER[i][1];
        if (!strcmp(part, "ffn_up") && ne1 == 2 * s->ff) h = "mlp.gate_up_proj";   // phi3's fused gate + up
        if (!strcmp(part, "ffn_gate_inp") && is_mixtral(s)) h = "block_sparse_moe.gate";
        if (!strcmp(part, "layer_output_scale")) suffix = "";   // Gemma 4's layer_scalar: a buffer, no .weight
        if (s->flags & AF_GEMMA4) {   // Gemma4TextDecoderLayer with enable_moe_block: its router, the experts' norms
            static const char *const G4[][3] = {   // GGUF part, suffix, HF (parameters without a suffix)
                {"ffn_gate_inp", ".weight", "router.proj.weight"}, {"ffn_gate_inp", ".scale", "router.scale"},
                {"ffn_down_exps", ".scale", "router.per_expert_scale"},
                {"pre_ffw_norm_2", ".weight", "pre_feedforward_layernorm_2.weight"},
                {"post_ffw_norm_1", ".weight", "post_feedforward_layernorm_1.weight"},
                {"post_ffw_norm_2", ".weight", "post_feedforward_layernorm_2.weight"}};
            for (size_t i = 0; i < sizeof G4 / sizeof G4[0]; i++)
                if (!strcmp(G4[i][0], part) && !strcmp(G4[i][1], suffix)) {
                    h = G4[i][2];
                    suffix = "";
                }
        }
        if ((s->flags & AF_GLM4MOE) || s->mla) {   // Glm4Moe / DeepseekV3: shared_experts, GLM's MTP layer's tensors
            static const char *const GLM[][2] = {
                {"post_attention_norm", "post_attention_layernorm"}, {"ffn_gate_shexp", "mlp.shared_experts.gate_proj"},
                {"ffn_up_shexp", "mlp.shared_experts.up_proj"},      {"ffn_down_shexp", "mlp.shared_experts.down_proj"},
                {"nextn.eh_proj", "eh_proj"}, {"nextn.enorm", "enorm"}, {"nextn.hnorm", "hnorm"},
                {"nextn.shared_head_norm", "shared_head.norm"}, {"exp_probs_b", "mlp.gate.e_score_correction_bias"}};
            for (size_t i = 0; i < sizeof GLM / sizeof GLM[0]; i++)
                if (!strcmp(GLM[i][0], part)) h = GLM[i][1];
            if (!strcmp(part, "exp_probs_b")) suffix = "";   // a buffer, not a parameter: no .bias
        }
        if (s->flags & AF_HYBRID) {   // Qwen3.5: Gated DeltaNet (linear_attn), V heads grouped by K head
            static const char *const HY[][2] = {
                {"attn_qkv", "linear_attn.in_proj_qkv"}, {"attn_gate", "linear_attn.in_proj_z"},
                {"ssm_beta", "linear_attn.in_proj_b"},   {"ssm_alpha", "linear_attn.in_proj_a"},
                {"ssm_conv1d", "linear_attn.conv1d"},    {"ssm_dt", "linear_attn.dt_bias"},
                {"ssm_norm", "linear_attn.norm"},        {"ssm_out", "linear_attn.out_proj"},
                {"post_attention_norm", "post_attention_layernorm"}};
            for (size_t i = 0; i < sizeof HY / sizeof HY[0]; i++)
                if (!strcmp(HY[i][0], part)) h = HY[i][1];
            if (!strcmp(gguf + pos, "ssm_a")) {   // a parameter without a suffix in both layouts
                h = "linear_attn.A_log";
                snprintf(part, sizeof part, "ssm_a");
                suffix = "";
            }
            if (!strcmp(part, "ssm_dt")) suffix = "";
            const hybrid_spec *hy = find_hybrid(s);
            if (hy->is_ba_fused) {   // Qwen3-Next: in_proj_qkvz (attn_qkv kept until attn_gate) and in_proj_ba
                if (!strcmp(part, "attn_qkv")) {
                    a->pending = b;
                    return TV_OK;
                }
                if (!strcmp(part, "attn_gate")) {
                    TV_CHECK(a->pending);
                    b->pair = &a->pending->src;
                    b->fused = FUSED_QKVZ;
                    b->v_k = hy->ssm_k_heads;
                    b->f_rows = hy->ssm_head;
                    b->f_cols = hy->ssm_v_heads / hy->ssm_k_heads * hy->ssm_head;
                    snprintf(hf, sizeof hf, "%slayers.%d.linear_attn.in_proj_qkvz.weight", model, layer);
                    const int64_t shape[2] = {(int64_t)hy->ssm_k_heads * (2 * b->f_rows + 2 * b->f_cols), ne0};
                    return st_writer_add(a->st, hf, hf_dtype(b->src.type), 2, shape, hf_fill_fused, b, err);
                }
                if (!strcmp(part, "ssm_ba")) h = "linear_attn.in_proj_ba";
            }
            const bool qkv = !strcmp(part, "attn_qkv") || !strcmp(part, "ssm_conv1d");
            const bool per_head = !strcmp(part, "ssm_beta") || !strcmp(part, "ssm_alpha") || !strcmp(part, "ssm_dt") ||
                                  !strcmp(part, "ssm_a");
            if (!hy->is_ba_fused && (qkv || per_head || !strcmp(part, "attn_gate") || !strcmp(part, "ssm_out"))) {
                b->v_k = hy->ssm_k_heads;
                b->v_r = hy->ssm_v_heads / hy->ssm_k_heads;
                b->v_hd = per_head ? 1 : hy->ssm_head;
                b->v_off = qkv ? 2 * hy->ssm_k_heads * hy->ssm_head : 0;
                b->v_cols = !strcmp(part, "ssm_out");
            }
        }
        if (s->flags & AF_GPTOSS) {   // GptOss: router, sinks (a parameter: no suffix), fused expert biases
            if (!strcmp(part, "ffn_gate_inp")) h = "mlp.router";
            if (!strcmp(part, "post_attention_norm")) h = "post_attention_layernorm";
            if (!strcmp(part, "attn_sinks")) {
                h = "self_attn.sinks";
                suffix = "";
            }
            if (!strcmp(part, "ffn_gate_exps")) {   // its bias: kept until the up one, both are gate_up_proj_bias
                a->pending = b;
                return TV_OK;
            }
            if (!strcmp(part, "ffn_up_exps") || !strcmp(part, "ffn_down_exps")) {
                const bool up = part[4] == 'u';
                TV_CHECK(!up || a->pending);
                b->pair = up ? &a->pending->src : NULL;
                b->fused = up ? FUSED_BIAS : FUSED_NONE;
                b->f_cols = (int32_t)ne0;
                snprintf(hf, sizeof hf, "%slayers.%d.mlp.experts.%s_bias", model, layer, up ? "gate_up_proj" : "down_proj");
                const int64_t shape[2] = {ne1, up ? 2 * ne0 : ne0};
                return st_writer_add(a->st, hf, hf_dtype(b->src.type), 2, shape, up ? hf_fill_fused : hf_fill, b, err);
            }
        }
        if (!h) return err_fail(err, TV_ERR_UNSUPPORTED, "synth: %s has no Hugging Face name in arch %s", gguf, s->name);
        snprintf(hf, sizeof hf, "%slayers.%d.%s%s", model, layer, h, suffix);
        const bool is_q = !strcmp(part, "attn_q"), is_k = !strcmp(part, "attn_k");
        if (arch_permutes_qk(s) && (is_q || is_k)) {
            const int64_t rows = ne1 ? ne1 : ne0;
            b->rows_per_head = rows / (is_q ? s->n_heads : s->n_kv_heads);
        }
    } else {
        return err_fail(err, TV_ERR_UNSUPPORTED, "synth: %s has no Hugging Face name", gguf);
    }
    st_dtype dt = hf_dtype(b->src.type);
    if (b->src.type != TV_TYPE_F32 && b->src.type != TV_TYPE_F16 && b->src.type != TV_TYPE_BF16)
        return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights, not %s",
                        kern_type_name(b->src.type));
    const bool gate_vec = !ne1 && strstr(gguf, "ffn_gate_inp_shexp");   // Linear(dim, 1): [1, dim]
    int64_t shape[2] = {ne1 ? ne1 : gate_vec ? 1 : ne0, ne0};
    const bool matrix = ne1 || gate_vec;
    if (strstr(gguf, "ssm_conv1d")) {   // nn.Conv1d(C, C, K, groups=C): [C, 1, K]
        const int64_t conv[3] = {ne1, 1, ne0};
        return st_writer_add(a->st, hf, dt, 3, conv, hf_fill, b, err);
    }
    return st_writer_add(a->st, hf, dt, matrix ? 2 : 1, matrix ? shape : &shape[1], hf_fill, b, err);
}

// An HF folder's experts: n_expert matrices [ne1, ne0] of the GGUF's 3-D tensor gguf, each its own
// tensor (model.layers.N.mlp.experts.E.gate_proj, Mixtral's block_sparse_moe.experts.E.w1 / w3 / w2).
static tv_status hf_add_experts(arch_writer *a, const src_binding *proto, const char *gguf, int64_t ne0, int64_t ne1,
                                int64_t n_expert, tv_error *err) {
    static const char *const PARTS[][3] = {   // GGUF, HF, Mixtral
        {"ffn_gate_exps", "gate_proj", "w1"}, {"ffn_up_exps", "up_proj", "w3"}, {"ffn_down_exps", "down_proj", "w2"}};
    int layer = -1, pos = 0;
    const char *part = NULL;
    if (sscanf(gguf, "blk.%d.%n", &layer, &pos) == 1 && pos > 0)
        for (size_t i = 0; i < 3 && !part; i++)
            if (!strncmp(gguf + pos, PARTS[i][0], strlen(PARTS[i][0]))) part = PARTS[i][is_mixtral(a->a) ? 2 : 1];
    if (!part) return err_fail(err, TV_ERR_UNSUPPORTED, "synth: %s has no Hugging Face name in arch %s", gguf, a->a->name);
    if (proto->src.type != TV_TYPE_F32 && proto->src.type != TV_TYPE_F16 && proto->src.type != TV_TYPE_BF16)
        return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights, not %s",
                        kern_type_name(proto->src.type));
    const st_dtype dt = proto->src.type == TV_TYPE_F32 ? ST_F32 : proto->src.type == TV_TYPE_F16 ? ST_F16 : ST_BF16;
    const int64_t shape[2] = {ne1, ne0};
    for (int64_t e = 0; e < n_expert; e++) {
        TV_CHECK(a->n < a->cap);
        src_binding *b = &a->srcs[a->n++];
        *b = *proto;
        b->row_base = e * ne1;
        char hf[160];
        snprintf(hf, sizeof hf, "model.layers.%d.%s.%lld.%s.weight", layer, is_mixtral(a->a) ? "block_sparse_moe.experts" : "mlp.experts",
                 (long long)e, part);
        tv_status st = st_writer_add(a->st, hf, dt, 2, shape, hf_fill, b, err);
        if (st) return st;
    }
    return TV_OK;
}

// transformers 5's fused 3-D experts of the GGUF's ffn_{gate,up,down}_exps (n_expert matrices [ne1, ne0]):
// Qwen3.5-MoE's mlp.experts.gate_up_proj [E, 2 ff, dim] and down_proj [E, dim, ff] (Gemma 4's the same
// under experts., of the GGUF's already fused ffn_gate_up_exps); gpt-oss's transposed
// gate_up_proj [E, dim, 2 ff] (gate and up interleaved) and down_proj [E, ff, dim], or with MXFP4 experts
// (its release) <part>_blocks + <part>_scales. The gate tensor waits for the up one.
static tv_status hf_add_fused_experts(arch_writer *a, src_binding *b, const char *gguf, int64_t ne0, int64_t ne1,
                                      int64_t n_expert, tv_error *err) {
    int layer = -1, pos = 0;
    if (sscanf(gguf, "blk.%d.%n", &layer, &pos) != 1 || pos == 0)
        return err_fail(err, TV_ERR_UNSUPPORTED, "synth: %s has no Hugging Face name in arch %s", gguf, a->a->name);
    const char *part = gguf + pos;
    const char *model = hf_wrapped(a->a) ? "model.language_model." : "model.";
    char hf[160];
    if (a->a->flags & AF_GEMMA4) {   // experts.gate_up_proj / down_proj: the GGUF's rows as they are
        const bool gate_up = !strncmp(part, "ffn_gate_up_exps", 16);
        TV_CHECK(gate_up || !strncmp(part, "ffn_down_exps", 13));
        if (b->src.type != TV_TYPE_F32 && b->src.type != TV_TYPE_F16 && b->src.type != TV_TYPE_BF16)
            return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights, not %s",
                            kern_type_name(b->src.type));
        snprintf(hf, sizeof hf, "%slayers.%d.experts.%s", model, layer, gate_up ? "gate_up_proj" : "down_proj");
        const int64_t shape[3] = {n_expert, ne1, ne0};
        return st_writer_add(a->st, hf, hf_dtype(b->src.type), 3, shape, hf_fill, b, err);
    }
    if (!strncmp(part, "ffn_gate_exps", 13)) {
        a->pending = b;
        return TV_OK;
    }
    const bool up = !strncmp(part, "ffn_up_exps", 11), gptoss = (a->a->flags & AF_GPTOSS) != 0;
    TV_CHECK(up || !strncmp(part, "ffn_down_exps", 13));
    TV_CHECK(!up || a->pending);
    snprintf(hf, sizeof hf, "%slayers.%d.mlp.experts.%s", model, layer, up ? "gate_up_proj" : "down_proj");
    b->pair = up ? &a->pending->src : NULL;
    b->f_rows = (int32_t)ne1;
    b->f_cols = (int32_t)ne0;
    const int64_t n_out = up ? 2 : 1;
    if (b->src.type == TV_TYPE_MXFP4) {
        TV_CHECK(gptoss && a->n < a->cap);
        src_binding *sc = &a->srcs[a->n++];   // the scales: the same rows, another layout
        *sc = *b;
        b->fused = FUSED_BLOCKS;
        sc->fused = FUSED_SCALES;
        const int64_t blocks[4] = {n_expert, n_out * ne1, ne0 / 32, 16};
        char name[176];
        snprintf(name, sizeof name, "%s_blocks", hf);
        tv_status st = st_writer_add(a->st, name, ST_U8, 4, blocks, hf_fill_fused, b, err);
        snprintf(name, sizeof name, "%s_scales", hf);
        return st ? st : st_writer_add(a->st, name, ST_U8, 3, blocks, hf_fill_fused, sc, err);
    }
    if (b->src.type != TV_TYPE_F32 && b->src.type != TV_TYPE_F16 && b->src.type != TV_TYPE_BF16)
        return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights, not %s",
                        kern_type_name(b->src.type));
    if (!gptoss && !up) {   // Qwen's down_proj [E, dim, ff]: the GGUF's rows as they are
        const int64_t shape[3] = {n_expert, ne1, ne0};
        return st_writer_add(a->st, hf, hf_dtype(b->src.type), 3, shape, hf_fill, b, err);
    }
    b->fused = gptoss ? FUSED_T : FUSED_HALVES;
    const int64_t shape[3] = {n_expert, gptoss ? ne0 : 2 * ne1, gptoss ? n_out * ne1 : ne0};
    return st_writer_add(a->st, hf, hf_dtype(b->src.type), 3, shape, hf_fill_fused, b, err);
}

static bool ends_with_ssm_a(const char *name) {
    const size_t n = strlen(name);
    return n >= 6 && !strcmp(name + n - 6, ".ssm_a");
}

// Adds `name` [ne0] (ne1 == 0) or [ne0, ne1] of values center + U(-amp, amp), or `values` (one row).
// Matrices take `type` (or its fallback when rows do not fit its blocks); vectors are F32.
static tv_status aw_add(arch_writer *a, const char *name, tv_type type, int64_t ne0, int64_t ne1, float center,
                        float amp, const float *values, tv_error *err) {
    TV_CHECK(a->n < a->cap);
    src_binding *b = &a->srcs[a->n++];
    b->sc = &a->sc;
    b->src = (tsrc){.key = rng_hash64(a->seed ^ name_hash(name)), .type = ne1 ? fit_type(type, ne0) : TV_TYPE_F32,
                    .ne0 = ne0, .center = center, .amp = amp, .values = values};
    b->is_vector = ne1 == 0;
    // Gemma 2/3's and Qwen3.5's norms (not the DeltaNet output's) are stored as w - 1 in HF folders (Gemma 4's as w)
    const bool hf_minus1 = (!strncmp(a->a->arch, "gemma", 5) && !(a->a->flags & AF_GEMMA4)) ||
                           ((a->a->flags & AF_HYBRID) && !strstr(name, "ssm_norm"));
    if (hf_minus1 && strstr(name, "norm.weight")) b->src.shift = a->st ? -1 : a->hf_exact ? 1 : 0;
    if ((a->a->flags & AF_HYBRID) && ends_with_ssm_a(name)) b->src.a_log = a->st ? -1 : a->hf_exact ? 1 : 0;
    if (a->st) return hf_add(a, b, name, ne0, ne1, err);
    int64_t ne[2] = {ne0, ne1};
    return gguf_add_tensor_source(a->w, name, b->src.type, ne1 ? 2 : 1, ne, fill, b, err);
}

// A projection with rows of length ne0: std gain / sqrt(ne0).
static tv_status aw_matrix(arch_writer *a, const char *name, tv_type type, int64_t ne0, int64_t ne1, float gain,
                           tv_error *err) {
    return aw_add(a, name, type, ne0, ne1, 0.0f, gain / sqrtf((float)ne0) * sqrtf(3.0f), NULL, err);
}

// A 3-D expert tensor: n_expert matrices [ne0, ne1] of std gain / sqrt(ne0), in `type` (or its fallback).
static tv_status aw_experts(arch_writer *a, const char *name, tv_type type, int64_t ne0, int64_t ne1, int64_t n_expert,
                            float gain, tv_error *err) {
    TV_CHECK(a->n < a->cap);
    src_binding *b = &a->srcs[a->n++];
    b->sc = &a->sc;
    b->src = (tsrc){.key = rng_hash64(a->seed ^ name_hash(name)), .type = fit_type(type, ne0), .ne0 = ne0,
                    .amp = gain / sqrtf((float)ne0) * sqrtf(3.0f)};
    if (a->st && strstr(name, "attn_k_b")) {   // deepseek2: kept until attn_v_b, both are kv_b_proj
        a->pending_kb = b;
        return TV_OK;
    }
    if (a->st && strstr(name, "attn_v_b")) {
        const mla_spec *m = a->a->mla;
        int layer = 0;
        char hf[96];
        TV_CHECK(a->pending_kb && sscanf(name, "blk.%d.", &layer) == 1);
        b->kb = &a->pending_kb->src;
        b->nope = m->nope;
        b->v_dim = m->v_mla;
        b->lora = m->kv_lora;
        snprintf(hf, sizeof hf, "model.layers.%d.self_attn.kv_b_proj.weight", layer);
        const tv_type t = b->src.type;
        if ((t != TV_TYPE_F32 && t != TV_TYPE_F16 && t != TV_TYPE_BF16) || a->pending_kb->src.type != t)
            return err_fail(err, TV_ERR_INVALID, "synth: Hugging Face folders hold F32, F16 or BF16 weights, not %s", kern_type_name(t));
        const int64_t shape[2] = {n_expert * (m->nope + m->v_mla), m->kv_lora};
        return st_writer_add(a->st, hf, t == TV_TYPE_F32 ? ST_F32 : t == TV_TYPE_F16 ? ST_F16 : ST_BF16, 2, shape, hf_fill_kv_b, b, err);
    }
    if (a->st && hf_fused_experts(a->a)) return hf_add_fused_experts(a, b, name, ne0, ne1, n_expert, err);
    if (a->st) return hf_add_experts(a, b, name, ne0, ne1, n_expert, err);
    int64_t ne[3] = {ne0, ne1, n_expert};
    return gguf_add_tensor_source(a->w, name, b->src.type, 3, ne, fill, b, err);
}

static tv_status aw_norm(arch_writer *a, const char *name, int64_t n, tv_error *err) {
    return aw_add(a, name, TV_TYPE_F32, n, 0, 1.0f, 0.25f, NULL, err);
}

// A norm ending a block (gemma's post norms, gemma4's per-layer-input post_norm): aw_norm's weights
// times the arch's res_gain.
static tv_status aw_post_norm(arch_writer *a, const char *name, int64_t n, tv_error *err) {
    const float g = find_stream(a->a)->res_gain;
    return aw_add(a, name, TV_TYPE_F32, n, 0, g, 0.25f * g, NULL, err);
}

#define ARCH_KEY(buf, a, suffix) (snprintf(buf, sizeof buf, "%s.%s", (a)->arch, suffix), buf)

// The family's own metadata: the values that make each feature bite (see the comment above ARCHS).
static void arch_metadata(gguf_writer *w, const arch_spec *a) {
    char k[128];
    const char *n = a->base ? a->base : a->name;
    const uint32_t window = a->window ? (uint32_t)a->window : SWA_WINDOW;
    if (!strcmp(n, "gemma2")) {
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.sliding_window"), window);
        gguf_set_f32(w, ARCH_KEY(k, a, "attn_logit_softcapping"), 2.5f);   // gemma 2 ships 50: scores here are O(1)
        gguf_set_f32(w, ARCH_KEY(k, a, "final_logit_softcapping"), 15.0f);  // 30 in gemma 2; top logits here reach ~12
    } else if (!strcmp(n, "gemma3")) {
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.sliding_window"), window);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.freq_base_swa"), 10000.0f);
        gguf_set_str(w, ARCH_KEY(k, a, "rope.scaling.type"), "linear");   // global layers only (gemma 3 4B+)
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.factor"), 8.0f);
    } else if (!strcmp(n, "gemma4")) {
        bool pattern[64];
        int32_t kv[64];
        for (int l = 0; l < a->n_layers; l++) { pattern[l] = arch_is_swa(a, l); kv[l] = arch_kv_heads(a, l); }
        gguf_set_arr_data(w, ARCH_KEY(k, a, "attention.sliding_window_pattern"), GGUF_TYPE_BOOL, pattern,
                          (uint64_t)a->n_layers);
        gguf_set_arr_data(w, ARCH_KEY(k, a, "attention.head_count_kv"), GGUF_TYPE_INT32, kv, (uint64_t)a->n_layers);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.sliding_window"), window);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.key_length_swa"), (uint32_t)a->swa_head_dim);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.value_length_swa"), (uint32_t)a->swa_head_dim);
        gguf_set_u32(w, ARCH_KEY(k, a, "rope.dimension_count_swa"), (uint32_t)a->swa_head_dim);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.freq_base_swa"), 10000.0f);
        gguf_set_u32(w, ARCH_KEY(k, a, "embedding_length_per_layer_input"), (uint32_t)a->n_embd_pl);
        if (a->n_kv_shared) gguf_set_u32(w, ARCH_KEY(k, a, "attention.shared_kv_layers"), (uint32_t)a->n_kv_shared);
        gguf_set_f32(w, ARCH_KEY(k, a, "final_logit_softcapping"), 12.0f);        // 30 in gemma 4; top logits here reach ~12
    } else if (!strcmp(n, "phi3")) {
        // LongRoPE: short factors while the context is <= original_context_length (the fixtures run
        // with a 256-token context), long beyond; attn_factor scales cos and sin (Q·K by its square)
        gguf_set_u32(w, ARCH_KEY(k, a, "rope.scaling.original_context_length"), 512);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.attn_factor"), 1.1902f);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.sliding_window"), 2047);   // phi-3.5's; llama.cpp ignores it
    } else if (!strcmp(n, "mistral3")) {
        // YaRN like Ministral 3 (factor 16), with an original context of 16 so the llama-4 style
        // attention temperature (1 + 0.1 log(1 + floor(pos / 16))) changes most fixture positions
        gguf_set_str(w, ARCH_KEY(k, a, "rope.scaling.type"), "yarn");
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.factor"), 16.0f);
        gguf_set_u32(w, ARCH_KEY(k, a, "rope.scaling.original_context_length"), 16);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.yarn_beta_fast"), 32.0f);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.yarn_beta_slow"), 1.0f);
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.yarn_log_multiplier"), 1.0f);
        gguf_set_f32(w, ARCH_KEY(k, a, "attention.temperature_scale"), 0.1f);
    } else if (!strcmp(n, "gpt-oss")) {
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.sliding_window"), window);
        gguf_set_str(w, ARCH_KEY(k, a, "rope.scaling.type"), "yarn");   // released: x32 over 4096
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.factor"), a->base ? 32.0f : 8.0f);
        gguf_set_u32(w, ARCH_KEY(k, a, "rope.scaling.original_context_length"), a->base ? 4096 : 64);
    } else if (a->flags & AF_GLM4MOE) {
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_shared_count"), 1);
        gguf_set_u32(w, ARCH_KEY(k, a, "leading_dense_block_count"), 1);
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_gating_func"), 2);
        gguf_set_bool(w, ARCH_KEY(k, a, "expert_weights_norm"), true);
        gguf_set_f32(w, ARCH_KEY(k, a, "expert_weights_scale"), 1.0f);
        gguf_set_u32(w, ARCH_KEY(k, a, "nextn_predict_layers"), 1);
    } else if (a->mla) {
        const mla_spec *m = a->mla;
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.q_lora_rank"), (uint32_t)m->q_lora);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.kv_lora_rank"), (uint32_t)m->kv_lora);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.key_length_mla"), (uint32_t)(m->nope + a->n_rot));
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.value_length_mla"), (uint32_t)m->v_mla);
        gguf_set_u32(w, ARCH_KEY(k, a, "leading_dense_block_count"), (uint32_t)m->dense_lead);
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_shared_count"), (uint32_t)m->n_shexp);
        gguf_set_f32(w, ARCH_KEY(k, a, "expert_weights_scale"), m->w_scale);
        gguf_set_bool(w, ARCH_KEY(k, a, "expert_weights_norm"), m->norm_w);
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_gating_func"), (uint32_t)m->gating);
        if (m->n_group) {
            gguf_set_u32(w, ARCH_KEY(k, a, "expert_group_count"), (uint32_t)m->n_group);
            gguf_set_u32(w, ARCH_KEY(k, a, "expert_group_used_count"), (uint32_t)m->n_group_used);
        }
        gguf_set_str(w, ARCH_KEY(k, a, "rope.scaling.type"), "yarn");
        gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.factor"), m->yarn_log_mul != 0 ? 8.0f : 4.0f);
        gguf_set_u32(w, ARCH_KEY(k, a, "rope.scaling.original_context_length"), 64);
        if (m->yarn_log_mul != 0) gguf_set_f32(w, ARCH_KEY(k, a, "rope.scaling.yarn_log_multiplier"), m->yarn_log_mul);
    } else if (a->flags & AF_HYBRID) {
        const hybrid_spec *hy = find_hybrid(a);
        gguf_set_u32(w, ARCH_KEY(k, a, "ssm.conv_kernel"), (uint32_t)hy->ssm_conv);
        gguf_set_u32(w, ARCH_KEY(k, a, "ssm.state_size"), (uint32_t)hy->ssm_head);
        gguf_set_u32(w, ARCH_KEY(k, a, "ssm.group_count"), (uint32_t)hy->ssm_k_heads);
        gguf_set_u32(w, ARCH_KEY(k, a, "ssm.time_step_rank"), (uint32_t)hy->ssm_v_heads);
        gguf_set_u32(w, ARCH_KEY(k, a, "ssm.inner_size"), (uint32_t)(hy->ssm_v_heads * hy->ssm_head));
        gguf_set_u32(w, ARCH_KEY(k, a, "full_attention_interval"), (uint32_t)hy->full_attn_interval);
        // M-RoPE sections of qwen35 / qwen35moe (pairs per position kind; a text token's positions are
        // all equal); qwen3next has plain NeoX RoPE
        const int32_t half = a->n_rot / 2, sections[4] = {half - 2 * (half / 3), half / 3, half / 3, 0};
        if (strcmp(a->arch, "qwen3next"))
            gguf_set_arr_data(w, ARCH_KEY(k, a, "rope.dimension_sections"), GGUF_TYPE_INT32, sections, 4);
    } else if (!strcmp(n, "granite")) {
        gguf_set_f32(w, ARCH_KEY(k, a, "embedding_scale"), 12.0f);
        gguf_set_f32(w, ARCH_KEY(k, a, "residual_scale"), 0.22f);
        gguf_set_f32(w, ARCH_KEY(k, a, "attention.scale"), 0.03125f);   // not 1/sqrt(head_dim) = 0.125
        gguf_set_f32(w, ARCH_KEY(k, a, "logit_scale"), 8.0f);
    }
}

// Phi-3 style LongRoPE factors (n_half each): short ones near 1 growing to 3, long ones to 40.
static void longrope_factors(float *s, float *l, int n_half) {
    for (int i = 0; i < n_half; i++) {
        float t = (float)i / (float)(n_half - 1);
        s[i] = 1.0f + 2.0f * t * t;
        l[i] = 1.0f + 39.0f * t * t;
    }
}

// config.json of the HF folder: the keys transformers' <Family>Config reads, with the values
// arch_metadata gives the GGUF (floats written as the exact doubles of the GGUF's f32 values).
static tv_status hf_write_config(const tv_synth_params *p, const arch_spec *a, const float rope[3][128],
                                 const char *dir, tv_error *err) {
    const char *n = a->base ? a->base : a->name;
    const bool mm = !strcmp(a->arch, "mistral3"), gemma4 = (a->flags & AF_GEMMA4) != 0;
    cJSON *root = cJSON_CreateObject(), *c = root;
    static const struct { const char *arch, *model_type, *cls; } TYPES[] = {
        {"llama", "llama", "LlamaForCausalLM"},         {"qwen2", "qwen2", "Qwen2ForCausalLM"},
        {"qwen3", "qwen3", "Qwen3ForCausalLM"},         {"gemma2", "gemma2", "Gemma2ForCausalLM"},
        {"gemma3", "gemma3_text", "Gemma3ForCausalLM"}, {"phi3", "phi3", "Phi3ForCausalLM"},
        {"smollm3", "smollm3", "SmolLM3ForCausalLM"},   {"granite", "granite", "GraniteForCausalLM"},
        {"mistral3", "mistral3", "Mistral3ForConditionalGeneration"},
        {"qwen2moe", "qwen2_moe", "Qwen2MoeForCausalLM"}, {"qwen3moe", "qwen3_moe", "Qwen3MoeForCausalLM"},
        {"glm4moe", "glm4_moe", "Glm4MoeForCausalLM"},      {"deepseek2", "deepseek_v3", "DeepseekV3ForCausalLM"},
        {"qwen35", "qwen3_5_text", "Qwen3_5ForCausalLM"}, {"qwen35moe", "qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration"},
        {"qwen3next", "qwen3_next", "Qwen3NextForCausalLM"}, {"gpt-oss", "gpt_oss", "GptOssForCausalLM"},
        {"gemma4", "gemma4", "Gemma4ForConditionalGeneration"},
    };
    const char *mt = NULL, *cls = NULL;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (!strcmp(TYPES[i].arch, a->arch)) { mt = TYPES[i].model_type; cls = TYPES[i].cls; }
    if (is_mixtral(a)) { mt = "mixtral"; cls = "MixtralForCausalLM"; }
    const mla_spec *mla = a->mla;
    if (mla && !mla->q_lora) { mt = "deepseek_v2"; cls = "DeepseekV2ForCausalLM"; }   // the Lite variant
    if (!mt) { cJSON_Delete(root); return err_fail(err, TV_ERR_UNSUPPORTED, "synth: arch %s has no Hugging Face layout here", a->name); }
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(cls));
    cJSON_AddStringToObject(root, "model_type", mt);
    const char *dtype = p->type == TV_TYPE_F32 ? "float32" : p->type == TV_TYPE_F16 ? "float16" : "bfloat16";
    cJSON_AddStringToObject(root, "torch_dtype", dtype);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", (a->flags & AF_TIED) != 0);
    if (mm || hf_wrapped(a)) {   // the text model's keys under text_config (Ministral 3's, Qwen3.5-MoE's, Gemma 4's layout)
        c = cJSON_AddObjectToObject(root, "text_config");
        cJSON_AddStringToObject(c, "model_type", mm ? "ministral3" : gemma4 ? "gemma4_text" : "qwen3_5_moe_text");
    }
    const bool gptoss = (a->flags & AF_GPTOSS) != 0;
    const int32_t n_vocab = a->n_vocab ? a->n_vocab : 512;
    cJSON_AddNumberToObject(c, "vocab_size", n_vocab);
    cJSON_AddNumberToObject(c, "hidden_size", a->dim);
    cJSON_AddNumberToObject(c, "intermediate_size", gptoss ? a->ff_exp : a->ff);   // (gpt-oss: the experts')
    const bool glm = (a->flags & AF_GLM4MOE) != 0;
    cJSON_AddNumberToObject(c, "num_hidden_layers", a->n_layers - glm);   // GLM: the MTP layer after them
    cJSON_AddNumberToObject(c, "num_attention_heads", a->n_heads);
    // (Gemma 4: head_dim and num_key_value_heads are the sliding layers', the global ones' below)
    cJSON_AddNumberToObject(c, "num_key_value_heads", gemma4 ? a->swa_kv_heads : a->n_kv_heads);
    const bool hybrid = (a->flags & AF_HYBRID) != 0, next = hybrid && find_hybrid(a)->is_ba_fused;
    const bool rope_params = hybrid && !next;   // Qwen3.5 (transformers 5): RoPE under rope_parameters
    if (!mla && (a->head_dim * a->n_heads != a->dim || !strncmp(a->arch, "gemma", 5) || hybrid || gptoss))
        cJSON_AddNumberToObject(c, "head_dim", gemma4 ? a->swa_head_dim : a->head_dim);
    cJSON_AddNumberToObject(c, "max_position_embeddings", a->ctx);
    cJSON_AddNumberToObject(c, "rms_norm_eps", (double)a->eps);
    if (!rope_params && !gemma4) cJSON_AddNumberToObject(c, "rope_theta", (double)a->theta);
    cJSON_AddNumberToObject(c, "bos_token_id", 1);
    cJSON_AddNumberToObject(c, "eos_token_id", 2);
    if (a->n_rot != a->head_dim && !mla && !rope_params) cJSON_AddNumberToObject(c, "partial_rotary_factor", (double)a->n_rot / a->head_dim);
    if (hybrid) {   // Qwen3_5TextConfig / Qwen3_5MoeTextConfig (RoPE under rope_parameters), Qwen3NextConfig
        const hybrid_spec *hy = find_hybrid(a);
        cJSON *lt = cJSON_AddArrayToObject(c, "layer_types");
        for (int l = 0; l < a->n_layers; l++)
            cJSON_AddItemToArray(lt, cJSON_CreateString((l + 1) % hy->full_attn_interval ? "linear_attention" : "full_attention"));
        cJSON_AddNumberToObject(c, "full_attention_interval", hy->full_attn_interval);
        cJSON_AddNumberToObject(c, "linear_conv_kernel_dim", hy->ssm_conv);
        cJSON_AddNumberToObject(c, "linear_key_head_dim", hy->ssm_head);
        cJSON_AddNumberToObject(c, "linear_value_head_dim", hy->ssm_head);
        cJSON_AddNumberToObject(c, "linear_num_key_heads", hy->ssm_k_heads);
        cJSON_AddNumberToObject(c, "linear_num_value_heads", hy->ssm_v_heads);
        if (!next) cJSON_AddBoolToObject(c, "attn_output_gate", true);
    }
    if (rope_params) {
        cJSON *rp = cJSON_AddObjectToObject(c, "rope_parameters");
        cJSON_AddStringToObject(rp, "rope_type", "default");
        cJSON_AddNumberToObject(rp, "rope_theta", (double)a->theta);
        cJSON_AddNumberToObject(rp, "partial_rotary_factor", (double)a->n_rot / a->head_dim);
        cJSON_AddBoolToObject(rp, "mrope_interleaved", true);
        const int32_t half = a->n_rot / 2;   // arch_metadata's sections
        cJSON *ms = cJSON_AddArrayToObject(rp, "mrope_section");
        cJSON_AddItemToArray(ms, cJSON_CreateNumber(half - 2 * (half / 3)));
        cJSON_AddItemToArray(ms, cJSON_CreateNumber(half / 3));
        cJSON_AddItemToArray(ms, cJSON_CreateNumber(half / 3));
    }
    const double window = a->window ? a->window : SWA_WINDOW;
    cJSON *rs = NULL;
    if (a->flags & AF_ROPE_FREQS) {   // synth_llama3_rope_factors' recipe: factor 32, low 1, high 4, orig 64
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", 32);
        cJSON_AddNumberToObject(rs, "low_freq_factor", 1);
        cJSON_AddNumberToObject(rs, "high_freq_factor", 4);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 64);
    }
    if (!strcmp(n, "gemma2")) {
        cJSON_AddNumberToObject(c, "sliding_window", window);
        cJSON_AddNumberToObject(c, "attn_logit_softcapping", 2.5);
        cJSON_AddNumberToObject(c, "final_logit_softcapping", 15.0);
        cJSON_AddNumberToObject(c, "query_pre_attn_scalar", a->head_dim);
        cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
    } else if (!strcmp(n, "gemma3")) {
        cJSON_AddNumberToObject(c, "sliding_window", window);
        cJSON_AddNumberToObject(c, "sliding_window_pattern", a->swa_period);
        cJSON_AddNumberToObject(c, "rope_local_base_freq", 10000.0);
        cJSON_AddNullToObject(c, "final_logit_softcapping");
        cJSON_AddNumberToObject(c, "query_pre_attn_scalar", a->head_dim);
        cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "linear");
        cJSON_AddNumberToObject(rs, "factor", 8.0);
    } else if (gemma4) {   // Gemma4TextConfig: arch_metadata's values
        cJSON_AddNumberToObject(c, "global_head_dim", a->head_dim);
        cJSON_AddNumberToObject(c, "num_global_key_value_heads", a->n_kv_heads);
        cJSON_AddBoolToObject(c, "attention_k_eq_v", true);   // the global layers have no v_proj: V = K
        cJSON_AddNumberToObject(c, "sliding_window", window);
        cJSON *lt = cJSON_AddArrayToObject(c, "layer_types");
        for (int l = 0; l < a->n_layers; l++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(arch_is_swa(a, l) ? "sliding_attention" : "full_attention"));
        cJSON *rp = cJSON_AddObjectToObject(c, "rope_parameters");
        cJSON *full = cJSON_AddObjectToObject(rp, "full_attention"), *slide = cJSON_AddObjectToObject(rp, "sliding_attention");
        cJSON_AddStringToObject(full, "rope_type", "proportional");   // a quarter rotated (rope_freqs above)
        cJSON_AddNumberToObject(full, "partial_rotary_factor", 0.25);
        cJSON_AddNumberToObject(full, "rope_theta", (double)a->theta);
        cJSON_AddStringToObject(slide, "rope_type", "default");
        cJSON_AddNumberToObject(slide, "rope_theta", 10000.0);
        cJSON_AddNumberToObject(c, "final_logit_softcapping", 12.0);
        cJSON_AddNumberToObject(c, "num_kv_shared_layers", a->n_kv_shared);
        cJSON_AddNumberToObject(c, "hidden_size_per_layer_input", a->n_embd_pl);
        cJSON_AddNumberToObject(c, "vocab_size_per_layer_input", n_vocab);
        cJSON_AddBoolToObject(c, "use_double_wide_mlp", (a->flags & AF_WIDE_SHARED) != 0);
        cJSON_AddBoolToObject(c, "enable_moe_block", a->n_expert > 0);
        cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
    } else if (!strcmp(n, "phi3")) {
        cJSON_AddNumberToObject(c, "original_max_position_embeddings", 512);
        cJSON_AddNumberToObject(c, "sliding_window", 2047);
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "longrope");
        cJSON_AddNumberToObject(rs, "attention_factor", (double)1.1902f);
        cJSON *sf = cJSON_AddArrayToObject(rs, "short_factor"), *lf = cJSON_AddArrayToObject(rs, "long_factor");
        for (int i = 0; i < a->n_rot / 2; i++) {
            cJSON_AddItemToArray(sf, cJSON_CreateNumber((double)rope[1][i]));
            cJSON_AddItemToArray(lf, cJSON_CreateNumber((double)rope[2][i]));
        }
    } else if (!strcmp(n, "mistral3")) {
        rs = cJSON_AddObjectToObject(c, "rope_parameters");
        cJSON_AddStringToObject(rs, "rope_type", "yarn");
        cJSON_AddNumberToObject(rs, "rope_theta", (double)a->theta);
        cJSON_AddNumberToObject(rs, "factor", 16.0);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 16);
        cJSON_AddNumberToObject(rs, "beta_fast", 32.0);
        cJSON_AddNumberToObject(rs, "beta_slow", 1.0);
        cJSON_AddNumberToObject(rs, "mscale_all_dim", 1.0);
        cJSON_AddNumberToObject(rs, "llama_4_scaling_beta", (double)0.1f);
    } else if (gptoss) {   // GptOssConfig: arch_metadata's window and YaRN; the even layers slide
        cJSON_AddNumberToObject(c, "sliding_window", window);
        cJSON *lt = cJSON_AddArrayToObject(c, "layer_types");
        for (int l = 0; l < a->n_layers; l++) cJSON_AddItemToArray(lt, cJSON_CreateString(l % 2 ? "full_attention" : "sliding_attention"));
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "yarn");
        cJSON_AddNumberToObject(rs, "factor", a->base ? 32.0 : 8.0);
        cJSON_AddNumberToObject(rs, "beta_fast", 32.0);
        cJSON_AddNumberToObject(rs, "beta_slow", 1.0);
        cJSON_AddBoolToObject(rs, "truncate", false);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", a->base ? 4096 : 64);
        cJSON_AddBoolToObject(c, "attention_bias", true);
        cJSON_AddNumberToObject(c, "swiglu_limit", 7.0);
        if (p->type == TV_TYPE_MXFP4) {   // the release: experts MXFP4, the rest BF16
            cJSON *qc = cJSON_AddObjectToObject(c, "quantization_config"), *keep = cJSON_AddArrayToObject(qc, "modules_to_not_convert");
            cJSON_AddStringToObject(qc, "quant_method", "mxfp4");
            static const char *const KEEP[] = {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"};
            for (size_t i = 0; i < 4; i++) cJSON_AddItemToArray(keep, cJSON_CreateString(KEEP[i]));
        }
    }
    if (a->n_expert) {   // Qwen2MoeConfig / Qwen3MoeConfig / MixtralConfig / Glm4MoeConfig / Gemma4TextConfig
        cJSON_AddNumberToObject(c, is_mixtral(a) || gptoss ? "num_local_experts" : glm || mla ? "n_routed_experts" : "num_experts",
                                a->n_expert);
        cJSON_AddNumberToObject(c, gemma4 ? "top_k_experts" : "num_experts_per_tok", a->n_expert_used);   // (Gemma4TextConfig's name)
        if (a->ff_exp && !gptoss) cJSON_AddNumberToObject(c, "moe_intermediate_size", a->ff_exp);
        if (a->ff_shexp) cJSON_AddNumberToObject(c, "shared_expert_intermediate_size", a->ff_shexp);
        if (glm) {   // arch_metadata's glm4moe values
            cJSON_AddNumberToObject(c, "n_shared_experts", 1);
            cJSON_AddNumberToObject(c, "first_k_dense_replace", 1);
            cJSON_AddNumberToObject(c, "routed_scaling_factor", 1.0);
            cJSON_AddBoolToObject(c, "norm_topk_prob", true);
            cJSON_AddNumberToObject(c, "num_nextn_predict_layers", 1);
            cJSON_AddNumberToObject(c, "n_group", 1);
            cJSON_AddNumberToObject(c, "topk_group", 1);
            cJSON_AddBoolToObject(c, "attention_bias", true);
            cJSON_AddBoolToObject(c, "use_qk_norm", true);
        } else if (mla) {   // DeepseekV3Config / DeepseekV2Config: arch_metadata's values
            if (mla->q_lora) cJSON_AddNumberToObject(c, "q_lora_rank", mla->q_lora);
            else cJSON_AddNullToObject(c, "q_lora_rank");
            cJSON_AddNumberToObject(c, "kv_lora_rank", mla->kv_lora);
            cJSON_AddNumberToObject(c, "qk_nope_head_dim", mla->nope);
            cJSON_AddNumberToObject(c, "qk_rope_head_dim", a->n_rot);
            cJSON_AddNumberToObject(c, "v_head_dim", mla->v_mla);
            cJSON_AddNumberToObject(c, "n_shared_experts", mla->n_shexp);
            cJSON_AddNumberToObject(c, "first_k_dense_replace", mla->dense_lead);
            cJSON_AddNumberToObject(c, "routed_scaling_factor", (double)mla->w_scale);
            cJSON_AddBoolToObject(c, "norm_topk_prob", mla->norm_w);
            cJSON_AddStringToObject(c, "scoring_func", mla->gating == 2 ? "sigmoid" : "softmax");
            cJSON_AddStringToObject(c, "topk_method", mla->probs_bias ? "noaux_tc" : "greedy");
            cJSON_AddNumberToObject(c, "n_group", mla->n_group ? mla->n_group : 1);
            cJSON_AddNumberToObject(c, "topk_group", mla->n_group ? mla->n_group_used : 1);
            cJSON *ry = cJSON_AddObjectToObject(c, "rope_scaling");
            cJSON_AddStringToObject(ry, "type", "yarn");
            cJSON_AddNumberToObject(ry, "factor", mla->yarn_log_mul != 0 ? 8.0 : 4.0);
            cJSON_AddNumberToObject(ry, "original_max_position_embeddings", 64);
            if (mla->yarn_log_mul != 0) cJSON_AddNumberToObject(ry, "mscale_all_dim", (double)mla->yarn_log_mul * 10.0);
        } else if (!is_mixtral(a) && !gptoss && !hf_wrapped(a)) {   // Qwen2Moe / Qwen3Moe / Qwen3Next
            cJSON_AddNumberToObject(c, "decoder_sparse_step", 1);
            cJSON_AddItemToObject(c, "mlp_only_layers", cJSON_CreateArray());
            cJSON_AddBoolToObject(c, "norm_topk_prob", strcmp(a->arch, "qwen2moe") != 0);   // llama.cpp: qwen2moe does not normalize
        }
    }
    if (!strcmp(n, "granite")) {
        cJSON_AddNumberToObject(c, "embedding_multiplier", 12.0);
        cJSON_AddNumberToObject(c, "residual_multiplier", (double)0.22f);
        cJSON_AddNumberToObject(c, "attention_multiplier", 0.03125);
        cJSON_AddNumberToObject(c, "logits_scaling", 8.0);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    tv_status st = TV_OK;
    if (!f || fputs(text, f) < 0 || fputc('\n', f) == EOF) st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (f && fclose(f) != 0 && !st) st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0) st = err_fail(err, TV_ERR_IO, "%s: cannot rename: %s", path, strerror(errno));
    if (st) unlink(tmp);
    free(text);
    return st;
}

// A hybrid model's layer l up to its FFN norm: the gated full attention (every
// full_attn_interval-th layer) or Gated DeltaNet, whose values make the state matter: decays
// exp(softplus(alpha + dt) * a) mostly in 0.85 .. 0.999 (a = -U(0.05, 0.5), dt = -2 +- 1), so
// a token is remembered for tens of positions, write strengths sigmoid(beta) ~ 0.3 .. 0.7, conv
// weights U(-0.6, 0.6) (the window's four inputs all count).
static tv_status hybrid_mixer(arch_writer *aw, const arch_spec *a, int l, bool is_full, tv_type t, tv_type vt, tv_error *err) {
    char nm[96];
    const hybrid_spec *hy = find_hybrid(a);
    const int32_t dim = a->dim, hd = a->head_dim, q_dim = a->n_heads * hd, kv_dim = a->n_kv_heads * hd;
    const int32_t inner = hy->ssm_v_heads * hy->ssm_head, conv_dim = 2 * hy->ssm_k_heads * hy->ssm_head + inner;
    tv_status st;
#define NAME(suffix) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), nm)
#define TRY(call) do { if ((st = (call))) return st; } while (0)
    TRY(aw_norm(aw, NAME("attn_norm.weight"), dim, err));
    if (is_full || (l + 1) % hy->full_attn_interval == 0) {
        TRY(aw_matrix(aw, NAME("attn_q.weight"), t, dim, 2 * q_dim, 1.5f, err));
        TRY(aw_matrix(aw, NAME("attn_k.weight"), t, dim, kv_dim, 1.5f, err));
        TRY(aw_matrix(aw, NAME("attn_v.weight"), vt, dim, kv_dim, 1.0f, err));
        TRY(aw_norm(aw, NAME("attn_q_norm.weight"), hd, err));
        TRY(aw_norm(aw, NAME("attn_k_norm.weight"), hd, err));
        TRY(aw_matrix(aw, NAME("attn_output.weight"), t, q_dim, dim, 1.0f, err));
    } else {
        TRY(aw_matrix(aw, NAME("attn_qkv.weight"), vt, dim, conv_dim, 1.5f, err));
        TRY(aw_matrix(aw, NAME("attn_gate.weight"), t, dim, inner, 1.0f, err));
        TRY(aw_add(aw, NAME("ssm_conv1d.weight"), TV_TYPE_F32, hy->ssm_conv, conv_dim, 0.0f, 0.6f, NULL, err));
        TRY(aw_add(aw, NAME("ssm_dt.bias"), TV_TYPE_F32, hy->ssm_v_heads, 0, -2.0f, 1.0f, NULL, err));
        TRY(aw_add(aw, NAME("ssm_a"), TV_TYPE_F32, hy->ssm_v_heads, 0, -0.275f, 0.225f, NULL, err));
        if (hy->is_ba_fused) {
            TRY(aw_matrix(aw, NAME("ssm_ba.weight"), t, dim, 2 * hy->ssm_v_heads, 1.0f, err));
        } else {
            TRY(aw_matrix(aw, NAME("ssm_beta.weight"), t, dim, hy->ssm_v_heads, 1.0f, err));
            TRY(aw_matrix(aw, NAME("ssm_alpha.weight"), t, dim, hy->ssm_v_heads, 1.0f, err));
        }
        TRY(aw_norm(aw, NAME("ssm_norm.weight"), hy->ssm_head, err));
        TRY(aw_matrix(aw, NAME("ssm_out.weight"), t, inner, dim, 1.0f, err));
    }
    return aw_norm(aw, NAME("post_attention_norm.weight"), dim, err);
#undef TRY
#undef NAME
}

// Layer l of a deepseek2 model after its attn_norm, in llama.cpp's layout (models/deepseek2.cpp):
// queries (compressed or direct), attn_kv_a_mqa (latent then RoPE key rows), per-head attn_k_b /
// attn_v_b, the output, then a dense FFN (leading layers) or router (+ selection bias), experts and
// shared experts.
static tv_status synth_mla_layer(arch_writer *aw, int l, tv_type t, tv_type vt, tv_type exp_t, tv_error *err) {
    const arch_spec *a = aw->a;
    const mla_spec *m = a->mla;
    const int32_t dim = a->dim, H = a->n_heads, dk = m->nope + a->n_rot, ff_sh = a->ff_exp * m->n_shexp;
    char nm[96];
    tv_status st;
#define NAME(suffix) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), nm)
#define TRY(call) do { if ((st = (call))) return st; } while (0)
    if (m->q_lora) {
        TRY(aw_matrix(aw, NAME("attn_q_a.weight"), t, dim, m->q_lora, 1.0f, err));
        TRY(aw_norm(aw, NAME("attn_q_a_norm.weight"), m->q_lora, err));
        TRY(aw_matrix(aw, NAME("attn_q_b.weight"), t, m->q_lora, H * dk, 1.0f, err));
    } else {
        TRY(aw_matrix(aw, NAME("attn_q.weight"), t, dim, H * dk, 1.0f, err));
    }
    TRY(aw_matrix(aw, NAME("attn_kv_a_mqa.weight"), t, dim, m->kv_lora + a->n_rot, 1.5f, err));
    TRY(aw_norm(aw, NAME("attn_kv_a_norm.weight"), m->kv_lora, err));
    TRY(aw_experts(aw, NAME("attn_k_b.weight"), t, m->nope, m->kv_lora, H, 1.0f, err));
    TRY(aw_experts(aw, NAME("attn_v_b.weight"), vt, m->kv_lora, m->v_mla, H, 1.0f, err));
    TRY(aw_matrix(aw, NAME("attn_output.weight"), t, H * m->v_mla, dim, 1.0f, err));
    TRY(aw_norm(aw, NAME("ffn_norm.weight"), dim, err));
    if (l < m->dense_lead) {
        TRY(aw_matrix(aw, NAME("ffn_gate.weight"), t, dim, a->ff, 1.0f, err));
        TRY(aw_matrix(aw, NAME("ffn_up.weight"), t, dim, a->ff, 1.0f, err));
        TRY(aw_matrix(aw, NAME("ffn_down.weight"), vt, a->ff, dim, 1.0f, err));
        return TV_OK;
    }
    TRY(aw_add(aw, NAME("ffn_gate_inp.weight"), TV_TYPE_F32, dim, a->n_expert, 0.0f,
               2.0f / sqrtf((float)dim) * sqrtf(3.0f), NULL, err));
    // selection bias about the size of the sigmoid probs' spread: it changes some picks
    if (m->probs_bias) TRY(aw_add(aw, NAME("exp_probs_b.bias"), TV_TYPE_F32, a->n_expert, 0, 0.0f, 0.15f, NULL, err));
    const tv_type down_t = exp_t == TV_TYPE_MXFP4 ? exp_t : vt;
    TRY(aw_experts(aw, NAME("ffn_gate_exps.weight"), exp_t, dim, a->ff_exp, a->n_expert, 1.0f, err));
    TRY(aw_experts(aw, NAME("ffn_up_exps.weight"), exp_t, dim, a->ff_exp, a->n_expert, 1.0f, err));
    TRY(aw_experts(aw, NAME("ffn_down_exps.weight"), down_t, a->ff_exp, dim, a->n_expert, 1.0f, err));
    TRY(aw_matrix(aw, NAME("ffn_gate_shexp.weight"), t, dim, ff_sh, 1.0f, err));
    TRY(aw_matrix(aw, NAME("ffn_up_shexp.weight"), t, dim, ff_sh, 1.0f, err));
    TRY(aw_matrix(aw, NAME("ffn_down_shexp.weight"), vt, ff_sh, dim, 1.0f, err));
#undef TRY
#undef NAME
    return TV_OK;
}

static tv_status synth_write_arch(const tv_synth_params *p, const arch_spec *a, const char *out_path, tv_error *err) {
    tv_status st = TV_OK;
    arch_writer aw = {.seed = p->seed, .a = a, .hf_exact = p->hf_exact};
    float rope[3][128];   // rope_freqs, or rope_factors_short and rope_factors_long
    char k[128], nm[96], text[256];
    if (!(aw.w = gguf_writer_create())) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    gguf_writer *w = aw.w;
    if (p->hf && p->type == TV_TYPE_MXFP4 && !(a->flags & AF_GPTOSS)) {   // (gpt-oss's release layout only)
        gguf_writer_free(w);
        return err_fail(err, TV_ERR_INVALID, "synth: only gpt-oss folders hold MXFP4 experts");
    }
    if (p->mtp && (!(a->flags & AF_HYBRID) || p->hf)) {
        gguf_writer_free(w);
        return err_fail(err, TV_ERR_INVALID, "synth: --mtp is for the hybrid qwen archs in GGUF (glm4moe always has its MTP layer)");
    }
    if (p->hf) {
        if (mkdir(out_path, 0777) != 0 && errno != EEXIST) {
            gguf_writer_free(w);
            return err_fail(err, TV_ERR_IO, "%s: cannot create the folder: %s", out_path, strerror(errno));
        }
        if (!(aw.st = st_writer_create())) {
            gguf_writer_free(w);
            return err_fail(err, TV_ERR_NOMEM, "out of memory");
        }
    }
    const int32_t dim = a->dim, ff = a->ff, L = a->n_layers + (p->mtp ? 1 : 0);   // with the MTP layer
    const bool tied = a->flags & AF_TIED;
    if (p->mtp) gguf_set_u32(w, ARCH_KEY(k, a, "nextn_predict_layers"), 1);

    gguf_set_str(w, "general.architecture", a->arch);
    // (no family name in general.name: llama.cpp keys vocabulary rules off it, e.g. "phi3" in the name
    // requires phi-3's <|endoftext|> token, which the synthetic vocab does not have)
    gguf_set_str(w, "general.name", "tinyvllm-synth-arch");
    snprintf(text, sizeof text, "RANDOM weights (tinyvllm synth, arch %s, type %s, seed %llu): not a trained model",
             a->name, kern_type_name(p->type), (unsigned long long)p->seed);
    gguf_set_str(w, "general.description", text);
    gguf_set_u32(w, "general.file_type", file_type(p->type));
    gguf_set_u32(w, ARCH_KEY(k, a, "context_length"), (uint32_t)a->ctx);
    gguf_set_u32(w, ARCH_KEY(k, a, "embedding_length"), (uint32_t)dim);
    gguf_set_u32(w, ARCH_KEY(k, a, "block_count"), (uint32_t)L);
    if (a->flags & AF_WIDE_SHARED) {
        uint32_t ffs[64];
        for (int l = 0; l < L; l++) ffs[l] = (uint32_t)arch_ff(a, l);
        gguf_set_arr_data(w, ARCH_KEY(k, a, "feed_forward_length"), GGUF_TYPE_UINT32, ffs, (uint64_t)L);
    } else {
        gguf_set_u32(w, ARCH_KEY(k, a, "feed_forward_length"), (uint32_t)ff);
    }
    gguf_set_u32(w, ARCH_KEY(k, a, "attention.head_count"), (uint32_t)a->n_heads);
    if (!(a->flags & AF_GEMMA4)) gguf_set_u32(w, ARCH_KEY(k, a, "attention.head_count_kv"), (uint32_t)a->n_kv_heads);
    if (a->head_dim * a->n_heads != dim || !strncmp(a->arch, "gemma", 5)) {
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.key_length"), (uint32_t)a->head_dim);
        gguf_set_u32(w, ARCH_KEY(k, a, "attention.value_length"), (uint32_t)(a->mla ? a->mla->kv_lora : a->head_dim));
    }
    gguf_set_f32(w, ARCH_KEY(k, a, "attention.layer_norm_rms_epsilon"), a->eps);
    gguf_set_f32(w, ARCH_KEY(k, a, "rope.freq_base"), a->theta);
    gguf_set_u32(w, ARCH_KEY(k, a, "rope.dimension_count"), (uint32_t)a->n_rot);
    const int32_t n_vocab = a->n_vocab ? a->n_vocab : 512;
    if (!strcmp(a->arch, "llama")) gguf_set_u32(w, ARCH_KEY(k, a, "vocab_size"), (uint32_t)n_vocab);
    arch_metadata(w, a);
    const int32_t ff_exp = a->ff_exp ? a->ff_exp : ff;
    if (a->n_expert) {
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_count"), (uint32_t)a->n_expert);
        gguf_set_u32(w, ARCH_KEY(k, a, "expert_used_count"), (uint32_t)a->n_expert_used);
        if (a->ff_exp) gguf_set_u32(w, ARCH_KEY(k, a, "expert_feed_forward_length"), (uint32_t)a->ff_exp);
        if (a->ff_shexp) gguf_set_u32(w, ARCH_KEY(k, a, "expert_shared_feed_forward_length"), (uint32_t)a->ff_shexp);
    }
    if ((st = synth_vocab(w, n_vocab, err))) goto done;

    aw.cap = 8 + 24 * L + (p->hf ? 3 * a->n_expert * L : 0);   // an HF folder: one tensor per expert
    if ((st = kern_table_init(&aw.sc.kt, NULL, err))) goto done;
    aw.sc.n_threads = p->n_threads > 1 ? p->n_threads : 1;
    if (aw.sc.n_threads > 1 && !(aw.sc.pool = pool_create(aw.sc.n_threads, err))) { st = err ? err->code : TV_ERR_NOMEM; goto done; }
    aw.sc.n_threads = aw.sc.pool ? pool_size(aw.sc.pool) : 1;
    aw.sc.max_ne0 = 2 * ff > 4 * dim ? 2 * ff : 4 * dim;
    if (a->ff_shexp > aw.sc.max_ne0) aw.sc.max_ne0 = a->ff_shexp;
    if (ff_exp > aw.sc.max_ne0) aw.sc.max_ne0 = ff_exp;
    if ((int64_t)L * a->n_embd_pl > aw.sc.max_ne0) aw.sc.max_ne0 = (int64_t)L * a->n_embd_pl;
    aw.srcs = calloc((size_t)aw.cap, sizeof *aw.srcs);
    aw.sc.scratch = malloc((size_t)aw.sc.n_threads * (size_t)aw.sc.max_ne0 * sizeof(float));
    if (!aw.srcs || !aw.sc.scratch) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }

    // MXFP4 (llama.cpp's MXFP4_MOE): the experts in MXFP4, every other matrix Q8_0; as released (an HF
    // folder, or the GGUF llama.cpp's converter makes of one) every other matrix BF16
    const tv_type exp_t = p->type;
    const tv_type t = p->type != TV_TYPE_MXFP4 ? p->type : p->hf || p->hf_exact ? TV_TYPE_BF16 : TV_TYPE_Q8_0;
    const tv_type out_t = p->pure ? t : output_type(t);
    const float out_std = a->out_gain / sqrtf((float)dim);
    const float embd_gain = find_stream(a)->embd_gain;
    // what a block writes to the stream: res_gain on its last matrix, unless a post norm ends it
    const float write_gain = (a->flags & AF_POST_NORMS) ? 1.0f : find_stream(a)->res_gain;
    if (tied) st = aw_add(&aw, "token_embd.weight", out_t, dim, n_vocab, 0.0f, out_std * sqrtf(3.0f) * embd_gain, NULL, err);
    else st = aw_add(&aw, "token_embd.weight", t, dim, n_vocab, 0.0f, a->embd_std * sqrtf(3.0f), NULL, err);
    // output_norm: mean 0, std 1 (unlike the other norms): with tied embeddings a positive one makes
    // every position predict its own input token (its logit is |e|^2-sized), all the more with
    // gemma's sqrt(dim) embedding scale; a mixed-sign one leaves the logits a random projection
    if (!st) st = aw_add(&aw, "output_norm.weight", TV_TYPE_F32, dim, 0, 0.0f, sqrtf(3.0f) / (tied ? embd_gain : 1.0f), NULL, err);
    if (!st && !tied) st = aw_matrix(&aw, "output.weight", out_t, dim, n_vocab, a->out_gain, err);
    if (!st && (a->flags & AF_ROPE_FREQS)) {
        // orig 64 instead of llama 3's 8192: most pairs then take the 32x factor within the fixtures' positions
        synth_llama3_rope_factors(rope[0], a->n_rot / 2, a->n_rot, a->theta, 64);
        st = aw_add(&aw, "rope_freqs.weight", TV_TYPE_F32, a->n_rot / 2, 0, 0.0f, 0.0f, rope[0], err);
    }
    if (!st && (a->flags & AF_GEMMA4)) {
        // proportional RoPE on the global layers: the first quarter of the pairs rotate, the rest
        // are held still by a huge divisor
        for (int i = 0; i < a->head_dim / 2; i++) rope[0][i] = i < a->head_dim / 8 ? 1.0f : 1e30f;
        st = aw_add(&aw, "rope_freqs.weight", TV_TYPE_F32, a->head_dim / 2, 0, 0.0f, 0.0f, rope[0], err);
    }
    if (!st && a->n_embd_pl) {
        // per-layer inputs: the table is a token embedding (llama-quantize types it so), the
        // projection stays in the source's float type (llama-quantize leaves it; llama.cpp's converter
        // and an HF folder's writer give it the file's type)
        const int64_t n_all = (int64_t)L * a->n_embd_pl;
        st = aw_add(&aw, "per_layer_token_embd.weight", t, n_all, n_vocab, 0.0f,
                    sqrtf(3.0f / (float)a->n_embd_pl), NULL, err);
        const tv_type proj_t = p->type == TV_TYPE_F32 ? TV_TYPE_F32 : p->hf || p->hf_exact ? t : TV_TYPE_F16;
        if (!st) st = aw_matrix(&aw, "per_layer_model_proj.weight", proj_t, dim, n_all, 1.0f, err);
        if (!st) st = aw_norm(&aw, "per_layer_proj_norm.weight", a->n_embd_pl, err);
    }
    if (!st && (a->flags & AF_LONGROPE)) {
        longrope_factors(rope[1], rope[2], a->n_rot / 2);
        st = aw_add(&aw, "rope_factors_short.weight", TV_TYPE_F32, a->n_rot / 2, 0, 0.0f, 0.0f, rope[1], err);
        if (!st) st = aw_add(&aw, "rope_factors_long.weight", TV_TYPE_F32, a->n_rot / 2, 0, 0.0f, 0.0f, rope[2], err);
    }
    for (int l = 0; l < L && !st; l++) {
        const int32_t hd = arch_head_dim(a, l), q_dim = a->n_heads * hd, kv_dim = arch_kv_heads(a, l) * hd;
        const bool more = t == TV_TYPE_Q4_K && !p->pure && use_more_bits(l, L);
        const tv_type vt = more ? TV_TYPE_Q6_K : t;
        const bool own_kv = l < L - a->n_kv_shared;   // gemma4 E2B/E4B: the last layers have no K/V
#define NAME(suffix) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), nm)
#define TRY(call) do { if ((st = (call))) goto done; } while (0)
        if (a->flags & AF_HYBRID) {
            TRY(hybrid_mixer(&aw, a, l, l == a->n_layers, t, vt, err));   // an MTP layer: full attention
            goto ffn;
        }
        TRY(aw_norm(&aw, NAME("attn_norm.weight"), dim, err));
        if (a->mla) {
            TRY(synth_mla_layer(&aw, l, t, vt, exp_t, err));
            continue;
        }
        if (a->flags & AF_FUSED_QKV) {
            TRY(aw_matrix(&aw, NAME("attn_qkv.weight"), vt, dim, q_dim + 2 * kv_dim, 1.5f, err));
        } else {
            TRY(aw_matrix(&aw, NAME("attn_q.weight"), t, dim, q_dim, 1.5f, err));
            if (own_kv) TRY(aw_matrix(&aw, NAME("attn_k.weight"), t, dim, kv_dim, 1.5f, err));
            if (own_kv && (!(a->flags & AF_GEMMA4) || arch_is_swa(a, l)))   // gemma 4 global layers: V = K
                TRY(aw_matrix(&aw, NAME("attn_v.weight"), vt, dim, kv_dim, 1.0f, err));
        }
        if (a->flags & AF_QKV_BIAS) {
            TRY(aw_add(&aw, NAME("attn_q.bias"), TV_TYPE_F32, q_dim, 0, 0.0f, 0.5f, NULL, err));
            TRY(aw_add(&aw, NAME("attn_k.bias"), TV_TYPE_F32, kv_dim, 0, 0.0f, 0.5f, NULL, err));
            TRY(aw_add(&aw, NAME("attn_v.bias"), TV_TYPE_F32, kv_dim, 0, 0.0f, 0.5f, NULL, err));
        }
        if (a->flags & AF_GEMMA4) {
            // attention scale 1 on RMS-normed q and k: weights 0.5 +- 0.125 keep scores at std ~2-3
            // (with 1 +- 0.25 they are std ~8-11, near-argmax attention that turns the quantized
            // types' rounding noise into chaos: llama.cpp against itself then disagrees at KL 2e-2)
            TRY(aw_add(&aw, NAME("attn_q_norm.weight"), TV_TYPE_F32, hd, 0, 0.5f, 0.125f, NULL, err));
            if (own_kv) TRY(aw_add(&aw, NAME("attn_k_norm.weight"), TV_TYPE_F32, hd, 0, 0.5f, 0.125f, NULL, err));
        } else if (a->flags & AF_QK_NORM) {
            TRY(aw_norm(&aw, NAME("attn_q_norm.weight"), hd, err));
            TRY(aw_norm(&aw, NAME("attn_k_norm.weight"), hd, err));
        }
        TRY(aw_matrix(&aw, NAME("attn_output.weight"), t, q_dim, dim, write_gain, err));
        if (a->flags & AF_GPTOSS) {
            TRY(aw_add(&aw, NAME("attn_output.bias"), TV_TYPE_F32, dim, 0, 0.0f, 0.5f, NULL, err));
            // sink logits around the scores' size: each head's softmax gives them a real share
            TRY(aw_add(&aw, NAME("attn_sinks.weight"), TV_TYPE_F32, a->n_heads, 0, 1.0f, 1.5f, NULL, err));
        }
        if (a->flags & AF_POST_NORMS) TRY(aw_post_norm(&aw, NAME("post_attention_norm.weight"), dim, err));
        TRY(aw_norm(&aw, NAME((a->flags & (AF_GPTOSS | AF_GLM4MOE)) ? "post_attention_norm.weight" : "ffn_norm.weight"),
                    dim, err));
    ffn:;
        const bool dense_lead = (a->flags & AF_GLM4MOE) && l == 0;
        if (a->n_expert && (a->flags & AF_GEMMA4)) {
            // the dense MLP (below) plus the experts: router logits of std 4 over rmsnorm(x) / sqrt(dim)
            TRY(aw_add(&aw, NAME("ffn_gate_inp.weight"), TV_TYPE_F32, dim, a->n_expert, 0.0f, 4.0f * sqrtf(3.0f), NULL, err));
            TRY(aw_norm(&aw, NAME("ffn_gate_inp.scale"), dim, err));
            TRY(aw_norm(&aw, NAME("pre_ffw_norm_2.weight"), dim, err));
            TRY(aw_norm(&aw, NAME("post_ffw_norm_1.weight"), dim, err));
            TRY(aw_norm(&aw, NAME("post_ffw_norm_2.weight"), dim, err));
            TRY(aw_experts(&aw, NAME("ffn_gate_up_exps.weight"), exp_t, dim, 2 * ff_exp, a->n_expert, 1.0f, err));
            TRY(aw_experts(&aw, NAME("ffn_down_exps.weight"), vt, ff_exp, dim, a->n_expert, 1.0f, err));
            TRY(aw_add(&aw, NAME("ffn_down_exps.scale"), TV_TYPE_F32, a->n_expert, 0, 1.0f, 0.5f, NULL, err));
            TRY(aw_matrix(&aw, NAME("ffn_gate.weight"), t, dim, ff, 1.0f, err));
            TRY(aw_matrix(&aw, NAME("ffn_up.weight"), t, dim, ff, 1.0f, err));
            TRY(aw_matrix(&aw, NAME("ffn_down.weight"), vt, ff, dim, 1.0f, err));
        } else if (a->n_expert && !dense_lead) {
            TRY(aw_add(&aw, NAME("ffn_gate_inp.weight"), TV_TYPE_F32, dim, a->n_expert, 0.0f,
                       2.0f / sqrtf((float)dim) * sqrtf(3.0f), NULL, err));
            const tv_type down_t = exp_t == TV_TYPE_MXFP4 ? exp_t : vt;
            TRY(aw_experts(&aw, NAME("ffn_gate_exps.weight"), exp_t, dim, ff_exp, a->n_expert, 1.0f, err));
            TRY(aw_experts(&aw, NAME("ffn_up_exps.weight"), exp_t, dim, ff_exp, a->n_expert, 1.0f, err));
            TRY(aw_experts(&aw, NAME("ffn_down_exps.weight"), down_t, ff_exp, dim, a->n_expert, 1.0f, err));
            if (a->flags & AF_GPTOSS) {
                TRY(aw_add(&aw, NAME("ffn_gate_inp.bias"), TV_TYPE_F32, a->n_expert, 0, 0.0f, 1.0f, NULL, err));
                TRY(aw_add(&aw, NAME("ffn_gate_exps.bias"), TV_TYPE_F32, ff_exp, a->n_expert, 0.0f, 0.5f, NULL, err));
                TRY(aw_add(&aw, NAME("ffn_up_exps.bias"), TV_TYPE_F32, ff_exp, a->n_expert, 0.0f, 0.5f, NULL, err));
                TRY(aw_add(&aw, NAME("ffn_down_exps.bias"), TV_TYPE_F32, dim, a->n_expert, 0.0f, 0.2f, NULL, err));
            }
            if (a->flags & AF_GLM4MOE) {
                TRY(aw_add(&aw, NAME("exp_probs_b.bias"), TV_TYPE_F32, a->n_expert, 0, 0.0f, 0.15f, NULL, err));
                TRY(aw_matrix(&aw, NAME("ffn_gate_shexp.weight"), t, dim, ff_exp, 1.0f, err));
                TRY(aw_matrix(&aw, NAME("ffn_up_shexp.weight"), t, dim, ff_exp, 1.0f, err));
                TRY(aw_matrix(&aw, NAME("ffn_down_shexp.weight"), vt, ff_exp, dim, 1.0f, err));
            }
            if (a->ff_shexp) {
                TRY(aw_add(&aw, NAME("ffn_gate_inp_shexp.weight"), TV_TYPE_F32, dim, 0, 0.0f,
                           1.0f / sqrtf((float)dim) * sqrtf(3.0f), NULL, err));
                TRY(aw_matrix(&aw, NAME("ffn_gate_shexp.weight"), t, dim, a->ff_shexp, 1.0f, err));
                TRY(aw_matrix(&aw, NAME("ffn_up_shexp.weight"), t, dim, a->ff_shexp, 1.0f, err));
                TRY(aw_matrix(&aw, NAME("ffn_down_shexp.weight"), vt, a->ff_shexp, dim, 1.0f, err));
            }
        } else if (a->flags & AF_FUSED_UP) {
            TRY(aw_matrix(&aw, NAME("ffn_up.weight"), t, dim, 2 * ff, 1.0f, err));
        } else {
            TRY(aw_matrix(&aw, NAME("ffn_gate.weight"), t, dim, arch_ff(a, l), 1.0f, err));
            TRY(aw_matrix(&aw, NAME("ffn_up.weight"), t, dim, arch_ff(a, l), 1.0f, err));
        }
        if (!a->n_expert || dense_lead)
            TRY(aw_matrix(&aw, NAME("ffn_down.weight"), vt, arch_ff(a, l), dim, write_gain, err));
        if ((a->flags & AF_GLM4MOE || p->mtp) && l == L - 1) {   // the MTP layer's own tensors
            TRY(aw_matrix(&aw, NAME("nextn.eh_proj.weight"), t, 2 * dim, dim, 1.0f, err));
            TRY(aw_norm(&aw, NAME("nextn.enorm.weight"), dim, err));
            TRY(aw_norm(&aw, NAME("nextn.hnorm.weight"), dim, err));
            TRY(aw_norm(&aw, NAME("nextn.shared_head_norm.weight"), dim, err));
        }
        if (a->flags & AF_POST_NORMS) TRY(aw_post_norm(&aw, NAME("post_ffw_norm.weight"), dim, err));
        if (a->n_embd_pl) {
            TRY(aw_matrix(&aw, NAME("inp_gate.weight"), t, dim, a->n_embd_pl, 1.0f, err));
            TRY(aw_matrix(&aw, NAME("proj.weight"), t, a->n_embd_pl, dim, 1.0f, err));
            TRY(aw_post_norm(&aw, NAME("post_norm.weight"), dim, err));
        }
        if (a->flags & AF_GEMMA4) TRY(aw_add(&aw, NAME("layer_output_scale.weight"), TV_TYPE_F32, 1, 0, 0.75f, 0.25f, NULL, err));
#undef TRY
#undef NAME
    }
    if (!st && aw.st) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", out_path);
        if (!(st = st_writer_write(aw.st, path, err))) st = hf_write_config(p, a, (const float(*)[128])rope, out_path, err);
    } else if (!st) {
        gguf_writer_set_progress(w, p->progress, p->progress_user);
        st = gguf_writer_write(w, out_path, err);
    }
done:
    gguf_writer_free(w);
    st_writer_free(aw.st);
    pool_free(aw.sc.pool);
    free(aw.sc.scratch);
    free(aw.srcs);
    return st;
}

tv_status tv_synth_write(const tv_synth_options *o, const char *out_path, tv_error *err) {
    tv_synth_params p = {.preset = o->preset, .arch = o->arch, .seed = o->seed, .vocab_path = o->vocab_path,
                         .n_threads = o->n_threads, .deep_from = o->deep_from, .deep_scale = o->deep_scale, .mtp = o->mtp,
                         .progress = o->progress, .progress_user = o->progress_user};
    if (o->format && strcmp(o->format, "gguf")) {
        if (strcmp(o->format, "hf")) return err_fail(err, TV_ERR_INVALID, "synth: unknown format '%s' (gguf, hf)", o->format);
        p.hf = true;
    }
    if (!o->type || !kern_type_from_name(o->type, &p.type))
        return err_fail(err, TV_ERR_INVALID, "synth: unknown type '%s'", o->type ? o->type : "(none)");
    return synth_write(&p, out_path, err);
}
