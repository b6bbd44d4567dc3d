// test_model_ref.c — the forward pass against a separately written, naive double-precision
// reference on synthetic models of several shapes (GQA, MQA, MHA, odd sizes, tied/separate
// output, llama-3 RoPE factors), and the logit error of each weight type against F32 on the same
// synthetic model, with a measured, stated budget per type.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

// ---------------------------------------------------------------- naive double reference

typedef struct {
    int dim, hidden, n_layers, n_heads, n_kv, hd, vocab, n_rot;
    double eps, theta;
    double *emb, *out_norm, *out;             // (vocab, dim), (dim), (vocab, dim)
    double **attn_norm, **wq, **wk, **wv, **wo, **ffn_norm, **wg, **wu, **wd;   // per layer, (out, in) row-major
    double *freq_factor;                      // (n_rot/2) or NULL
} ref_model;

static double *load_t(const gguf_ctx *g, const char *name, int64_t n_expect) {
    const gguf_tensor_info *t = gguf_find_tensor(g, name);
    if (!t) fail_msg("reference: tensor %s missing", name);
    int64_t n = t->ne[0] * t->ne[1];
    assert_int_equal(n, n_expect);
    float *f = malloc((size_t)n * sizeof(float));
    kern_traits_ref(t->type)->to_float(t->data, f, n);
    double *d = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

static int64_t geti(const gguf_ctx *g, const char *k) {
    int64_t v = 0;
    assert_true(gguf_get_int(g, k, &v));
    return v;
}

static void ref_load(ref_model *r, const gguf_ctx *g) {
    memset(r, 0, sizeof *r);
    r->dim = (int)geti(g, "llama.embedding_length");
    r->hidden = (int)geti(g, "llama.feed_forward_length");
    r->n_layers = (int)geti(g, "llama.block_count");
    r->n_heads = (int)geti(g, "llama.attention.head_count");
    r->n_kv = (int)geti(g, "llama.attention.head_count_kv");
    r->hd = r->dim / r->n_heads;
    r->n_rot = (int)geti(g, "llama.rope.dimension_count");
    double f;
    assert_true(gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f));
    r->eps = f;
    assert_true(gguf_get_float(g, "llama.rope.freq_base", &f));
    r->theta = f;
    r->vocab = (int)gguf_find_tensor(g, "token_embd.weight")->ne[1];
    int D = r->dim, H = r->hidden, kvd = r->n_kv * r->hd;
    r->emb = load_t(g, "token_embd.weight", (int64_t)r->vocab * D);
    r->out_norm = load_t(g, "output_norm.weight", D);
    r->out = gguf_find_tensor(g, "output.weight") ? load_t(g, "output.weight", (int64_t)r->vocab * D) : r->emb;
    if (gguf_find_tensor(g, "rope_freqs.weight")) r->freq_factor = load_t(g, "rope_freqs.weight", r->n_rot / 2);
    double ***all[] = {&r->attn_norm, &r->wq, &r->wk, &r->wv, &r->wo, &r->ffn_norm, &r->wg, &r->wu, &r->wd};
    const char *names[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    int64_t sizes[] = {D, (int64_t)D * D, (int64_t)kvd * D, (int64_t)kvd * D, (int64_t)D * D, D, (int64_t)H * D, (int64_t)H * D, (int64_t)D * H};
    for (int k = 0; k < 9; k++) {
        *all[k] = calloc((size_t)r->n_layers, sizeof(double *));
        for (int l = 0; l < r->n_layers; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[k]);
            (*all[k])[l] = load_t(g, nm, sizes[k]);
        }
    }
}

static void ref_free(ref_model *r) {
    double **all[] = {r->attn_norm, r->wq, r->wk, r->wv, r->wo, r->ffn_norm, r->wg, r->wu, r->wd};
    for (int k = 0; k < 9; k++) {
        for (int l = 0; l < r->n_layers; l++) free(all[k][l]);
        free(all[k]);
    }
    if (r->out != r->emb) free(r->out);
    free(r->emb);
    free(r->out_norm);
    free(r->freq_factor);
}

// y (n_out) = W (n_out, n_in) x (n_in)
static void mv(double *y, const double *W, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double s = 0;
        for (int i = 0; i < n_in; i++) s += W[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rms(double *y, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * sc * w[i];
}

static void ref_rope(const ref_model *r, double *v, int n_heads, int pos) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < r->n_rot / 2; i++) {
            double fr = pow(r->theta, -2.0 * i / r->n_rot);
            if (r->freq_factor) fr /= r->freq_factor[i];
            double c = cos(pos * fr), s = sin(pos * fr);
            double *p = v + (size_t)h * r->hd + 2 * i;
            double a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
}

// Full causal forward over tokens[0..n): logits (n, vocab).
static void ref_forward(const ref_model *r, const int32_t *tokens, int n, double *logits) {
    int D = r->dim, kvd = r->n_kv * r->hd, group = r->n_heads / r->n_kv;
    double *x = calloc((size_t)n * D, sizeof(double)), *K = calloc((size_t)n * kvd, sizeof(double)),
           *V = calloc((size_t)n * kvd, sizeof(double)), *xb = malloc(D * sizeof(double)), *q = malloc(D * sizeof(double)),
           *att = malloc(D * sizeof(double)), *o = malloc(D * sizeof(double)), *g = malloc(r->hidden * sizeof(double)),
           *u = malloc(r->hidden * sizeof(double)), *sc = malloc(n * sizeof(double));
    for (int t = 0; t < n; t++) memcpy(x + (size_t)t * D, r->emb + (size_t)tokens[t] * D, D * sizeof(double));
    for (int l = 0; l < r->n_layers; l++) {
        for (int t = 0; t < n; t++) {   // K, V of every position first
            rms(xb, x + (size_t)t * D, r->attn_norm[l], D, r->eps);
            mv(K + (size_t)t * kvd, r->wk[l], xb, kvd, D);
            mv(V + (size_t)t * kvd, r->wv[l], xb, kvd, D);
            ref_rope(r, K + (size_t)t * kvd, r->n_kv, t);
        }
        for (int t = 0; t < n; t++) {
            double *xt = x + (size_t)t * D;
            rms(xb, xt, r->attn_norm[l], D, r->eps);
            mv(q, r->wq[l], xb, D, D);
            ref_rope(r, q, r->n_heads, t);
            for (int h = 0; h < r->n_heads; h++) {
                int kh = h / group;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int e = 0; e < r->hd; e++) d += q[h * r->hd + e] * K[(size_t)j * kvd + kh * r->hd + e];
                    sc[j] = d / sqrt((double)r->hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) { sc[j] = exp(sc[j] - mx); sum += sc[j]; }
                for (int e = 0; e < r->hd; e++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += sc[j] * V[(size_t)j * kvd + kh * r->hd + e];
                    att[h * r->hd + e] = a / sum;
                }
            }
            mv(o, r->wo[l], att, D, D);
            for (int i = 0; i < D; i++) xt[i] += o[i];
        }
        for (int t = 0; t < n; t++) {
            double *xt = x + (size_t)t * D;
            rms(xb, xt, r->ffn_norm[l], D, r->eps);
            mv(g, r->wg[l], xb, r->hidden, D);
            mv(u, r->wu[l], xb, r->hidden, D);
            for (int i = 0; i < r->hidden; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            mv(o, r->wd[l], g, D, r->hidden);
            for (int i = 0; i < D; i++) xt[i] += o[i];
        }
    }
    for (int t = 0; t < n; t++) {
        rms(xb, x + (size_t)t * D, r->out_norm, D, r->eps);
        mv(logits + (size_t)t * r->vocab, r->out, xb, r->vocab, D);
    }
    free(x); free(K); free(V); free(xb); free(q); free(att); free(o); free(g); free(u); free(sc);
}

// ---------------------------------------------------------------- ours

// Loads with $TINYVLLM_CPU's path deciding repacking (test_util.h).
static tv_model *load_model(const char *path, tv_error *err) {
    tv_model_params p;
    tv_model_params_default(&p);
    p.cpu_path = test_cpu_path();
    return tv_model_load(path, &p, err);
}

// Runs tokens through tv_forward in chunks of `chunk` (1 = decode-style); logits for every row.
static void our_forward(const tv_model *m, const int32_t *tokens, int n, int chunk, int block_size, float *logits) {
    tv_error err = {0};
    const int V = tv_model_n_vocab(m);
    backend *be = backend_cpu_create(test_cpu_path(), 2, &err);
    assert_non_null(be);
    int n_blocks = (n + block_size - 1) / block_size;
    tv_kv_cache *kv = kv_cache_create(m, n_blocks + 3, block_size, true, &err);
    tv_forward *f = forward_create(m, model_hparams(m)->n_ctx_train, chunk, chunk, be, &err);
    assert_non_null(kv);
    assert_non_null(f);
    int32_t table[64];
    for (int i = 0; i < n_blocks; i++) table[i] = n_blocks + 2 - i;   // scattered, reversed blocks
    const int32_t *tables[1] = {table};
    for (int s = 0; s < n; s += chunk) {
        int c = n - s < chunk ? n - s : chunk;
        int32_t pos[64], rows[64], qs[2] = {0, c}, ctx = s + c;
        for (int i = 0; i < c; i++) { pos[i] = s + i; rows[i] = i; }
        tv_batch b = {.n_tokens = c, .tokens = tokens + s, .positions = pos, .n_seqs = 1, .q_start = qs,
                      .ctx_len = &ctx, .block_tables = tables, .n_logits = c, .logit_rows = rows};
        float *lg;
        if (forward_run(f, kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
        memcpy(logits + (size_t)s * V, lg, (size_t)c * V * sizeof(float));
    }
    forward_free(f);
    kv_cache_free(kv);
    backend_free(be);
}

static void write_synth(const tv_synth_shape *shape, tv_type type, const char *path) {
    tv_synth_params p = {.type = type, .seed = 1234, .shape = shape, .pure = true, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&p, path, &err)) fail_msg("synth: %s", err.msg);
}

// ---------------------------------------------------------------- tests

static void test_against_double_reference(void **state) {
    (void)state;
    static const tv_synth_shape shapes[] = {
        // name, dim, hidden, layers, heads, kv heads, vocab, ctx, theta, eps, tied, llama3 rope
        {"gqa-odd", 84, 100, 3, 6, 2, 512, 64, 10000.0f, 1e-5f, false, false},   // head dim 14, group 3
        {"mqa", 64, 150, 4, 8, 1, 512, 64, 500000.0f, 1e-6f, true, true},        // one KV head, tied, llama3 rope
        {"mha", 40, 66, 2, 5, 5, 512, 64, 10000.0f, 1e-5f, false, false},        // head dim 8
    };
    char path[512];
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        snprintf(path, sizeof path, "%s/ref-%s.gguf", TV_BINARY_DIR, shapes[i].name);
        write_synth(&shapes[i], TV_TYPE_F32, path);
        tv_error err = {0};
        tv_model *m = load_model(path, &err);
        if (!m) fail_msg("%s", err.msg);
        gguf_ctx *g = gguf_open(path, &err);
        ref_model r;
        ref_load(&r, g);
        enum { N = 40 };
        int32_t toks[N];
        for (int t = 0; t < N; t++) toks[t] = (int32_t)((t * 7919 + 13) % r.vocab);
        double *want = malloc((size_t)N * r.vocab * sizeof(double));
        float *got = malloc((size_t)N * r.vocab * sizeof(float));
        ref_forward(&r, toks, N, want);
        double scale = 0;
        for (size_t k = 0; k < (size_t)N * r.vocab; k++) scale = fmax(scale, fabs(want[k]));
        int chunks[] = {N, 7, 1};
        for (int c = 0; c < 3; c++) {
            our_forward(m, toks, N, chunks[c], c == 1 ? 16 : 8, got);
            double worst = 0;
            for (size_t k = 0; k < (size_t)N * r.vocab; k++) worst = fmax(worst, fabs(got[k] - want[k]));
            print_message("%s chunk %d: max |ours - double| = %.3g (logit scale %.3g)\n", shapes[i].name, chunks[c], worst, scale);
            assert_true(scale > 1e-3);
            assert_true(worst <= 1e-5 * fmax(scale, 1.0));   // measured <= 2e-7
        }
        free(want);
        free(got);
        ref_free(&r);
        gguf_close(g);
        tv_model_free(m);
        remove(path);
    }
}

// Logit error of each weight type against F32, relative to the F32 logits' RMS. Budgets measured
// on this model (seed 1234, 12 positions, uniform random weights: a worst case for quantizers, no
// outliers, small logits) with ~2x headroom; the ordering between types is checked
// too so a type silently decoding as another would fail.
static void test_type_error_budgets(void **state) {
    (void)state;
    static const tv_synth_shape shape = {"types", 256, 512, 2, 4, 2, 512, 64, 10000.0f, 1e-5f, false, false};
    struct { tv_type t; double budget; double err; } types[] = {
        // measured: F16 6.0e-4, BF16 4.9e-3, Q8_0 1.5e-2, Q6_K 4.3e-2, Q4_K 0.155, Q4_0 0.198
        // (activations are quantized too: Q8_0 for Q8_0/Q4_0, Q8_K for the K-quants, as llama.cpp does)
        {TV_TYPE_F16, 1.5e-3, 0}, {TV_TYPE_BF16, 1e-2, 0}, {TV_TYPE_Q8_0, 3e-2, 0},
        {TV_TYPE_Q6_K, 8e-2, 0}, {TV_TYPE_Q4_K, 0.3, 0}, {TV_TYPE_Q4_0, 0.4, 0},
    };
    enum { N = 12 };
    int32_t toks[N];
    for (int t = 0; t < N; t++) toks[t] = (int32_t)((t * 31 + 5) % 512);
    char path[512];
    snprintf(path, sizeof path, "%s/types-F32.gguf", TV_BINARY_DIR);
    write_synth(&shape, TV_TYPE_F32, path);
    tv_error err = {0};
    tv_model *m = load_model(path, &err);
    assert_non_null(m);
    const int V = tv_model_n_vocab(m);
    float *ref = malloc((size_t)N * V * sizeof(float)), *got = malloc((size_t)N * V * sizeof(float));
    our_forward(m, toks, N, N, 16, ref);
    tv_model_free(m);
    remove(path);
    double rms_ref = 0;
    for (size_t k = 0; k < (size_t)N * V; k++) rms_ref += (double)ref[k] * ref[k];
    rms_ref = sqrt(rms_ref / ((double)N * V));
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        snprintf(path, sizeof path, "%s/types-%s.gguf", TV_BINARY_DIR, kern_type_name(types[i].t));
        write_synth(&shape, types[i].t, path);
        m = load_model(path, &err);
        if (!m) fail_msg("%s", err.msg);
        assert_int_equal(model_layers(m)[0].wq.type, types[i].t);
        our_forward(m, toks, N, N, 16, got);
        double e2 = 0;
        for (size_t k = 0; k < (size_t)N * V; k++) e2 += ((double)got[k] - ref[k]) * ((double)got[k] - ref[k]);
        types[i].err = sqrt(e2 / ((double)N * V)) / rms_ref;
        print_message("%-5s logit RMS error vs F32: %.3g of the logits' RMS (budget %.3g)\n", kern_type_name(types[i].t),
                      types[i].err, types[i].budget);
        assert_true(types[i].err > 0);
        assert_true(types[i].err <= types[i].budget);
        // weights repacked at load (where this CPU path's kernels pay for it) give the same bits
        // as the weights used as stored: the packed kernels run the same per-block chain
        kern_table kt;
        assert_int_equal(kern_table_init(&kt, test_cpu_path(), &err), TV_OK);
        const tv_type_traits *tt = kern_traits(&kt, types[i].t);
        if (tt->pack_pays) assert_int_equal(model_n_packed(m, NULL), 7 * shape.n_layers + 1);
        else assert_int_equal(model_n_packed(m, NULL), 0);
        tv_model_params np;
        tv_model_params_default(&np);
        np.no_repack = true;
        np.cpu_path = test_cpu_path();
        tv_model *mp = tv_model_load(path, &np, &err);
        assert_non_null(mp);
        assert_int_equal(model_n_packed(mp, NULL), 0);
        float *plain = malloc((size_t)N * V * sizeof(float));
        our_forward(mp, toks, N, N, 16, plain);
        if (tt->plain_matches_packed) {
            assert_memory_equal(plain, got, (size_t)N * V * sizeof(float));
        } else if (tt->pack_pays) {
            // another summation order (AVX2): float rounding, and now and then an activation landing on
            // the other side of a quantization step, so compare as the type budgets do (RMS of the
            // difference relative to the logits' RMS), far below the type's own error
            double d2 = 0;
            for (size_t k = 0; k < (size_t)N * V; k++) d2 += ((double)plain[k] - got[k]) * ((double)plain[k] - got[k]);
            const double rel = sqrt(d2 / ((double)N * V)) / rms_ref;
            print_message("%-5s packed vs plain weights: %.3g of the logits' RMS\n", kern_type_name(types[i].t), rel);
            assert_true(rel <= 0.5 * types[i].budget);   // measured: Q8_0 7.6e-3, Q4_0 see output
        }
        free(plain);
        tv_model_free(mp);
        tv_model_free(m);
        remove(path);
    }
    assert_true(types[0].err < types[2].err);   // F16 < Q8_0
    assert_true(types[2].err < types[5].err);   // Q8_0 < Q4_0
    assert_true(types[3].err < types[4].err);   // Q6_K < Q4_K
    free(ref);
    free(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_double_reference),
        cmocka_unit_test(test_type_error_budgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
