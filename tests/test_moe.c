// test_moe.c — mixture of experts: the router (kern_route: llama.cpp's gating, top-k ties, norm,
// bias, scale), the expert-grouped matmul (kern_matmul_experts: bit-identical to a kern_matmul of
// each row with its expert, on every CPU path, weight type, packed layout and pool size, the fused
// SwiGLU included), batch invariance of a MoE model (a sequence's logits are the same bits alone or
// with 63 others, prefill and decode, 1 or 3 threads; qwen3moe and deepseek2's latent attention),
// grouped top-k routing (DeepSeek-V3), latent attention's use of attn_run (values read from the K
// rows) against a double oracle, and the loader's checks of expert counts and latent-attention
// ranks against tensor shapes. (MoE families against llama.cpp: test_families.)
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

static const char *const PATHS[] = {"generic", "avx2", "avx2-novnni", "avx512", "avx512-novnni"};

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {   // uniform [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)(g_rng >> 40) / 8388608.0f - 1.0f;
}

// ---------------------------------------------------------------- router

static void test_route_softmax_ties_norm(void **state) {
    (void)state;
    // experts 2 and 5 tie for the last of 3 slots: the lower id wins; largest first
    float logits[8] = {0.1f, 2.0f, 0.5f, -1.0f, 1.0f, 0.5f, 3.0f, -2.0f};
    const float orig[8] = {0.1f, 2.0f, 0.5f, -1.0f, 1.0f, 0.5f, 3.0f, -2.0f};
    int32_t ids[3];
    float w[3];
    tv_route_opts o = {.n_expert = 8, .n_used = 3, .gating = TV_GATING_SOFTMAX};
    kern_route(&o, logits, ids, w);
    assert_int_equal(ids[0], 6);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], 4);
    int32_t ids4[4];
    float w4[4];
    memcpy(logits, orig, sizeof logits);
    o.n_used = 4;
    kern_route(&o, logits, ids4, w4);
    assert_int_equal(ids4[3], 2);   // the tie: 2 before 5
    double z = 0;
    for (int i = 0; i < 8; i++) z += exp((double)orig[i] - 3.0);
    for (int j = 0; j < 4; j++) assert_true(fabs(w4[j] - exp((double)orig[ids4[j]] - 3.0) / z) < 1e-6);
    // normalized: the same experts, weights summing to 1, then scaled
    memcpy(logits, orig, sizeof logits);
    o.n_used = 3;
    o.norm = true;
    o.scale = 2.5f;
    kern_route(&o, logits, ids, w);
    double s = 0, s4 = 0;
    for (int j = 0; j < 3; j++) s += w[j];
    for (int j = 0; j < 3; j++) s4 += w4[j];
    assert_true(fabs(s - 2.5) < 1e-5);
    assert_true(fabs(w[0] - 2.5 * w4[0] / s4) < 1e-5);
    assert_int_equal(ids[2], 4);
}

static void test_route_bias_sigmoid_softmax_weight(void **state) {
    (void)state;
    float logits[6] = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f, -0.5f};
    const float orig[6] = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f, -0.5f};
    const float bias[6] = {0, 0, 5.0f, 0, 0, 0};
    int32_t ids[2];
    float w[2];
    // sigmoid with a selection bias: expert 2 is picked by its bias, weighted by its unbiased prob
    tv_route_opts o = {.n_expert = 6, .n_used = 2, .gating = TV_GATING_SIGMOID, .bias = bias};
    kern_route(&o, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_true(fabs(w[0] - 1.0 / (1.0 + exp(1.0))) < 1e-6);
    assert_true(fabs(w[1] - 1.0 / (1.0 + exp(-2.0))) < 1e-6);
    // softmax over the picked logits (gpt-oss)
    memcpy(logits, orig, sizeof logits);
    o = (tv_route_opts){.n_expert = 6, .n_used = 2, .gating = TV_GATING_SOFTMAX_WEIGHT};
    kern_route(&o, logits, ids, w);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 0);
    assert_true(fabs(w[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6);
    assert_true(fabs(w[0] + w[1] - 1.0) < 1e-6);
}

// ---------------------------------------------------------------- expert-grouped matmul

enum { N = 256, ROWS = 80, N_EXPERT = 8, T = 7, K = 3 };

typedef struct expert_set {
    tv_tensor w;   // 3-D
    void *data;
} expert_set;

// n_expert matrices (ROWS, N) of `type` from random floats, packed when asked (types with a layout).
static bool make_experts(expert_set *es, tv_type type, const kern_table *kt, bool packed) {
    const tv_type_traits *ref = kern_traits_ref(type);
    const size_t row = kern_row_size(type, N), bytes = row * ROWS * N_EXPERT;
    uint8_t *plain = malloc(bytes);
    float f[N];
    assert_non_null(plain);
    for (int r = 0; r < ROWS * N_EXPERT; r++) {
        for (int i = 0; i < N; i++) f[i] = frand() * 0.1f;
        ref->from_float(f, plain + (size_t)r * row, N);
    }
    es->w = (tv_tensor){.type = type, .n_dims = 3, .ne = {N, ROWS, N_EXPERT, 1}, .nbytes = bytes, .data = plain};
    es->data = plain;
    if (!packed) return true;
    const tv_type_traits *tt = kern_traits(kt, type);
    if (!tt->repack) {
        free(plain);
        return false;
    }
    void *p = aligned_alloc(64, (packed_size(type, N, ROWS * N_EXPERT) + 63) & ~(size_t)63);
    assert_non_null(p);
    tt->repack(plain, row, N, ROWS * N_EXPERT, p);
    free(plain);
    es->w.data = es->data = p;
    es->w.packed = true;
    return true;
}

// Expert e of a 3-D tensor as a 2-D one.
static tv_tensor expert_view(const tv_tensor *w, int e) {
    tv_tensor v = *w;
    const size_t eb = (size_t)w->ne[1] * kern_row_size(w->type, w->ne[0]);
    v.ne[2] = 1;
    v.n_dims = 2;
    v.data = (const uint8_t *)w->data + (size_t)e * eb;
    v.nbytes = eb;
    return v;
}

// ids (T, K) distinct per token, grouped: off, x_row
static void route_random(int32_t *ids, int32_t *off, int32_t *x_row) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int e;
            bool dup;
            do {
                e = (int)((frand() + 1.0f) * 0.5f * N_EXPERT) % N_EXPERT;
                dup = false;
                for (int i = 0; i < j; i++) dup |= ids[t * K + i] == e;
            } while (dup || e == 5);   // expert 5 gets no rows
            ids[t * K + j] = e;
        }
    memset(off, 0, (N_EXPERT + 1) * sizeof *off);
    for (int i = 0; i < T * K; i++) off[ids[i] + 1]++;
    for (int e = 0; e < N_EXPERT; e++) off[e + 1] += off[e];
    int32_t cur[N_EXPERT];
    memcpy(cur, off, sizeof cur);
    for (int i = 0; i < T * K; i++) x_row[cur[ids[i]]++] = i / K;
}

static void check_experts(const char *path, tv_type type, bool packed) {
    kern_table kt;
    tv_error err = {0};
    if (kern_table_init(&kt, path, &err)) return;   // this CPU lacks the path
    expert_set g, u;
    if (!make_experts(&g, type, &kt, packed)) return;   // no packed layout for this type
    assert_true(make_experts(&u, type, &kt, packed));
    float x[T * N];
    for (int i = 0; i < T * N; i++) x[i] = frand();
    int32_t ids[T * K], off[N_EXPERT + 1], x_row[T * K];
    route_random(ids, off, x_row);
    const size_t ws = kern_matmul_experts_wsize(type, N, T * K, T * K) + kern_matmul_wsize(type, N, 1);
    void *wsp = malloc(ws);
    float *yg = malloc(sizeof(float) * T * K * ROWS), *yu = malloc(sizeof(float) * T * K * ROWS);
    float *yg1 = malloc(sizeof(float) * T * K * ROWS), *ref = malloc(sizeof(float) * ROWS * 2);
    assert_true(wsp && yg && yu && yg1 && ref);
    tv_pool *pool3 = pool_create(3, &err);
    assert_non_null(pool3);
    // gate alone (no act), 3 threads and inline: the same bits, each row = its expert's kern_matmul
    const tv_tensor *wg = &g.w, *wu = &u.w;
    kern_matmul_experts(&kt, &wg, NULL, &yg, 1, NULL, x, T, x_row, off, wsp, pool3);
    kern_matmul_experts(&kt, &wg, NULL, &yg1, 1, NULL, x, T, x_row, off, wsp, NULL);
    assert_memory_equal(yg, yg1, sizeof(float) * T * K * ROWS);
    for (int e = 0; e < N_EXPERT; e++)
        for (int p = off[e]; p < off[e + 1]; p++) {
            const tv_tensor v = expert_view(&g.w, e);
            kern_matmul(&kt, &v, x + (size_t)x_row[p] * N, 1, ref, wsp, NULL);
            if (memcmp(ref, yg + (size_t)p * ROWS, sizeof(float) * ROWS))
                fail_msg("%s %s%s: grouped row %d (expert %d) differs from kern_matmul", path, kern_type_name(type),
                         packed ? " packed" : "", p, e);
        }
    // one token (decode: each expert's rows go as one chunk per thread) = its experts' kern_matmul
    int32_t off1[N_EXPERT + 1] = {0}, x_row1[K] = {0};
    for (int j = 0; j < K; j++) off1[ids[j] + 1] = 1;
    for (int e = 0; e < N_EXPERT; e++) off1[e + 1] += off1[e];
    for (int inline_pool = 0; inline_pool < 2; inline_pool++) {
        kern_matmul_experts(&kt, &wg, NULL, &yg1, 1, NULL, x, 1, x_row1, off1, wsp, inline_pool ? NULL : pool3);
        for (int e = 0; e < N_EXPERT; e++)
            if (off1[e + 1] > off1[e]) {
                const tv_tensor v = expert_view(&g.w, e);
                kern_matmul(&kt, &v, x, 1, ref, wsp, NULL);
                if (memcmp(ref, yg1 + (size_t)off1[e] * ROWS, sizeof(float) * ROWS))
                    fail_msg("%s %s%s: one token, expert %d differs from kern_matmul", path, kern_type_name(type),
                             packed ? " packed" : "", e);
            }
    }
    // gate + up with the fused SwiGLU = swiglu(gate, up) of the separate products
    const tv_tensor *gu[] = {wg, wu};
    float *const ys[] = {yg1, yu};
    kern_matmul_experts(&kt, gu, NULL, ys, 2, kt.ops->swiglu, x, T, x_row, off, wsp, pool3);
    float *up_only = malloc(sizeof(float) * T * K * ROWS);
    assert_non_null(up_only);
    kern_matmul_experts(&kt, &wu, NULL, &up_only, 1, NULL, x, T, x_row, off, wsp, pool3);
    for (int p = 0; p < T * K; p++) kt.ops->swiglu(yg + (size_t)p * ROWS, up_only + (size_t)p * ROWS, ROWS);
    assert_memory_equal(yg, yg1, sizeof(float) * T * K * ROWS);
    // one fused gate+up weight (each expert's gate rows, then its up rows: Gemma 4's ffn_gate_up_exps)
    // = the two weights, packed too (packing is per 16-row group, so concatenating the experts'
    // packed blocks is the fused tensor's packed layout); every path, 3 threads and inline
    {
        const size_t eb = (size_t)ROWS * kern_row_size(type, N);
        uint8_t *fused = malloc(2 * eb * N_EXPERT);
        float *fg = malloc(sizeof(float) * T * K * ROWS), *fu = malloc(sizeof(float) * T * K * ROWS);
        assert_true(fused && fg && fu);
        for (int e = 0; e < N_EXPERT; e++) {
            memcpy(fused + (size_t)(2 * e) * eb, (const uint8_t *)g.w.data + (size_t)e * eb, eb);
            memcpy(fused + (size_t)(2 * e + 1) * eb, (const uint8_t *)u.w.data + (size_t)e * eb, eb);
        }
        tv_tensor wf = g.w;
        wf.ne[1] = 2 * ROWS;
        wf.nbytes = 2 * eb * N_EXPERT;
        wf.data = fused;
        const tv_tensor *pwf = &wf;
        float *const yf[] = {fg, fu};
        for (int inline_pool = 0; inline_pool < 2; inline_pool++) {
            memset(fg, 0, sizeof(float) * T * K * ROWS);
            kern_matmul_experts(&kt, &pwf, NULL, yf, 1, kt.ops->swiglu, x, T, x_row, off, wsp, inline_pool ? NULL : pool3);
            if (memcmp(fg, yg1, sizeof(float) * T * K * ROWS))
                fail_msg("%s %s%s: fused gate+up differs from the two weights", path, kern_type_name(type), packed ? " packed" : "");
        }
        free(fused);
        free(fg);
        free(fu);
    }
    // already-grouped input (the down projection's form): x_row NULL reads row p
    float xg[T * K * N];
    for (int p = 0; p < T * K; p++) memcpy(xg + (size_t)p * N, x + (size_t)x_row[p] * N, sizeof(float) * N);
    kern_matmul_experts(&kt, &wu, NULL, &yg1, 1, NULL, xg, T * K, NULL, off, wsp, pool3);
    assert_memory_equal(yg1, up_only, sizeof(float) * T * K * ROWS);
    // per-expert biases, added before the fused activation (gpt-oss's clamped SwiGLU)
    float bg[N_EXPERT * ROWS], bu[N_EXPERT * ROWS];
    for (int i = 0; i < N_EXPERT * ROWS; i++) bg[i] = frand() * 4.0f, bu[i] = frand() * 4.0f;
    const float *bias[] = {bg, bu};
    kern_matmul_experts(&kt, gu, bias, ys, 2, kern_swiglu_oai, x, T, x_row, off, wsp, pool3);
    kern_matmul_experts(&kt, &wg, NULL, &yg, 1, NULL, x, T, x_row, off, wsp, pool3);
    for (int e = 0; e < N_EXPERT; e++)
        for (int p = off[e]; p < off[e + 1]; p++)
            for (int r = 0; r < ROWS; r++) {
                float gv = yg[(size_t)p * ROWS + r] + bg[e * ROWS + r], uv = up_only[(size_t)p * ROWS + r] + bu[e * ROWS + r];
                kern_swiglu_oai(&gv, &uv, 1);
                if (memcmp(&gv, &yg1[(size_t)p * ROWS + r], sizeof gv)) fail_msg("biased oai row %d col %d", p, r);
            }
    free(up_only);
    pool_free(pool3);
    free(wsp);
    free(yg);
    free(yu);
    free(yg1);
    free(ref);
    free(g.data);
    free(u.data);
}

// A batch large enough for the threads to convert the activations (each token once, copied to its
// grouped rows): rows in no token order (as MLA's grouped calls pass them), some tokens unrouted and
// some used twice by one expert; 3 threads = inline = each row's kern_matmul.
static void check_experts_many(const char *path, tv_type type, bool packed) {
    enum { NT = 300, NR = 2 * NT };
    kern_table kt;
    tv_error err = {0};
    if (kern_table_init(&kt, path, &err)) return;
    expert_set g;
    if (!make_experts(&g, type, &kt, packed)) return;
    float *x = malloc(sizeof(float) * NT * N), *y3 = malloc(sizeof(float) * NR * ROWS);
    float *y1 = malloc(sizeof(float) * NR * ROWS), ref[ROWS];
    int32_t *x_row = malloc(sizeof(int32_t) * NR), off[N_EXPERT + 1];
    const size_t ws = kern_matmul_experts_wsize(type, N, NT, NR) + kern_matmul_wsize(type, N, 1);
    void *wsp = malloc(ws);
    assert_true(x && y3 && y1 && x_row && wsp);
    for (int i = 0; i < NT * N; i++) x[i] = frand();
    for (int e = 0; e <= N_EXPERT; e++) off[e] = e == N_EXPERT ? NR : e * (NR / N_EXPERT);
    for (int p = 0; p < NR; p++) x_row[p] = (int32_t)((frand() + 1.0f) * 0.5f * (NT - 10)) % (NT - 10);   // last 10 unrouted
    tv_pool *pool3 = pool_create(3, &err);
    assert_non_null(pool3);
    const tv_tensor *wg = &g.w;
    kern_matmul_experts(&kt, &wg, NULL, &y3, 1, NULL, x, NT, x_row, off, wsp, pool3);
    kern_matmul_experts(&kt, &wg, NULL, &y1, 1, NULL, x, NT, x_row, off, wsp, NULL);
    assert_memory_equal(y3, y1, sizeof(float) * NR * ROWS);
    for (int e = 0; e < N_EXPERT; e++)
        for (int p = off[e]; p < off[e + 1]; p++) {
            const tv_tensor v = expert_view(&g.w, e);
            kern_matmul(&kt, &v, x + (size_t)x_row[p] * N, 1, ref, wsp, NULL);
            if (memcmp(ref, y3 + (size_t)p * ROWS, sizeof ref))
                fail_msg("%s %s%s: %d tokens, grouped row %d (expert %d) differs from kern_matmul", path,
                         kern_type_name(type), packed ? " packed" : "", NT, p, e);
        }
    pool_free(pool3);
    free(x), free(y3), free(y1), free(x_row), free(wsp), free(g.data);
}

static void test_experts_matmul(void **state) {
    (void)state;
    static const tv_type TYPES[] = {TV_TYPE_F32, TV_TYPE_F16, TV_TYPE_BF16, TV_TYPE_Q8_0, TV_TYPE_Q4_0,
                                    TV_TYPE_Q4_K, TV_TYPE_Q6_K, TV_TYPE_MXFP4};
    for (size_t p = 0; p < sizeof PATHS / sizeof *PATHS; p++)
        for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
            check_experts(PATHS[p], TYPES[t], false);
            check_experts(PATHS[p], TYPES[t], true);
            check_experts_many(PATHS[p], TYPES[t], false);
            check_experts_many(PATHS[p], TYPES[t], true);
        }
}

// ---------------------------------------------------------------- MXFP4

// tests/fixtures/mxfp4/ggml_mxfp4.bin (made by ggml_mxfp4.c there with the pinned llama.cpp's ggml):
// our quantizer writes ggml's bytes, our dequantizer its bits, every path's dot product the ref's
// bits and ggml's value within float reassociation.
static void test_mxfp4_vs_ggml(void **state) {
    (void)state;
    size_t len = 0;
    char *buf = read_all(TV_SOURCE_DIR "/tests/fixtures/mxfp4/ggml_mxfp4.bin", &len);
    assert_non_null(buf);
    uint32_t hdr[2];
    memcpy(hdr, buf, sizeof hdr);
    const size_t n = hdr[0], rows = hdr[1], nb = n / 32, qrow = nb * 17;
    assert_int_equal(len, 8 + rows * n * 4 + rows * qrow + rows * n * 4 + n * 4 + nb * 34 + rows * 4);
    const char *p = buf + 8;
    float *x = malloc(rows * n * 4), *deq = malloc(rows * n * 4), *act = malloc(n * 4), *dot = malloc(rows * 4);
    float *ours = malloc(rows * n * 4);
    uint8_t *q = malloc(rows * qrow), *a8 = malloc(nb * 34), *qours = malloc(rows * qrow), *a8ours = malloc(nb * 34);
    assert_true(x && deq && act && dot && ours && q && a8 && qours && a8ours);
    memcpy(x, p, rows * n * 4), p += rows * n * 4;
    memcpy(q, p, rows * qrow), p += rows * qrow;
    memcpy(deq, p, rows * n * 4), p += rows * n * 4;
    memcpy(act, p, n * 4), p += n * 4;
    memcpy(a8, p, nb * 34), p += nb * 34;
    memcpy(dot, p, rows * 4);
    const tv_type_traits *ref = kern_traits_ref(TV_TYPE_MXFP4);
    assert_true(ref && ref->is_supported && ref->blck_size == 32 && ref->type_size == 17);
    ref->from_float(x, qours, (int64_t)(rows * n));
    assert_memory_equal(qours, q, rows * qrow);
    ref->to_float(q, ours, (int64_t)(rows * n));
    assert_memory_equal(ours, deq, rows * n * 4);
    kern_traits_ref(TV_TYPE_Q8_0)->from_float(act, a8ours, (int64_t)n);
    assert_memory_equal(a8ours, a8, nb * 34);
    for (size_t pi = 0; pi < sizeof PATHS / sizeof *PATHS; pi++) {
        kern_table kt;
        tv_error err = {0};
        if (kern_table_init(&kt, PATHS[pi], &err)) continue;
        for (size_t r = 0; r < rows; r++) {
            float s_ref, s;
            ref->vec_dot((int64_t)n, &s_ref, q + r * qrow, a8);
            kern_traits(&kt, TV_TYPE_MXFP4)->vec_dot((int64_t)n, &s, q + r * qrow, a8);
            if (memcmp(&s, &s_ref, sizeof s)) fail_msg("%s row %zu: %.9g, ref %.9g", PATHS[pi], r, s, s_ref);
            if (!(fabsf(s - dot[r]) <= 1e-5f * fabsf(dot[r]) + 1e-37f))
                fail_msg("%s row %zu: %.9g, ggml %.9g", PATHS[pi], r, s, dot[r]);
        }
    }
    free(buf), free(x), free(deq), free(act), free(dot), free(ours), free(q), free(a8), free(qours), free(a8ours);
}

// Random blocks of every exponent range, rows of 1..9 blocks (the AVX-512 kernel's pairs and tail):
// every path's dot product has the ref's bits; the scale is exactly 2^(e-128), subnormals included.
static void test_mxfp4_paths(void **state) {
    (void)state;
    assert_true(kern_e8m0_half(0) == ldexpf(1.0f, -128) && kern_e8m0_half(1) == ldexpf(1.0f, -127));
    assert_true(kern_e8m0_half(127) == 0.5f && kern_e8m0_half(254) == ldexpf(1.0f, 126));
    tv_block_mxfp4 w[9];
    tv_block_q8_0 a[9];
    float f[9 * 32];
    for (int nbk = 1; nbk <= 9; nbk++) {
        for (int b = 0; b < nbk; b++) {
            w[b].e = (uint8_t)(b == 0 ? 1 : 100 + (int)((frand() + 1.0f) * 20.0f));
            for (int j = 0; j < 16; j++) w[b].qs[j] = (uint8_t)((frand() + 1.0f) * 128.0f);
        }
        for (int i = 0; i < nbk * 32; i++) f[i] = frand() * 4.0f;
        kern_traits_ref(TV_TYPE_Q8_0)->from_float(f, a, nbk * 32);
        float s_ref;
        kern_traits_ref(TV_TYPE_MXFP4)->vec_dot(nbk * 32, &s_ref, w, a);
        for (size_t pi = 0; pi < sizeof PATHS / sizeof *PATHS; pi++) {
            kern_table kt;
            tv_error err = {0};
            if (kern_table_init(&kt, PATHS[pi], &err)) continue;
            float s;
            kern_traits(&kt, TV_TYPE_MXFP4)->vec_dot(nbk * 32, &s, w, a);
            if (memcmp(&s, &s_ref, sizeof s)) fail_msg("%s, %d blocks: %.9g, ref %.9g", PATHS[pi], nbk, s, s_ref);
        }
    }
}

// ---------------------------------------------------------------- batch invariance

enum { N_SEQ = 64, PROMPT = 6, BS = 16, SOLO = 17 };

// Runs a batch of sequences seqs[0..n) (indices into 0..N_SEQ), each its tokens [start, start + len)
// at those positions, sequence i owning block i; logits of every token into out (n * len, V).
static void run_batch(tv_forward *f, tv_kv_cache *kv, const int *seqs, int n, int start, int len,
                      const int32_t (*toks)[PROMPT + 1], int V, float *out) {
    static int32_t tokens[N_SEQ * PROMPT], pos[N_SEQ * PROMPT], rows[N_SEQ * PROMPT], qs[N_SEQ + 1], ctx[N_SEQ];
    static int32_t tables[N_SEQ][1];
    const int32_t *tp[N_SEQ];
    int T_ = 0;
    for (int i = 0; i < n; i++) {
        qs[i] = T_;
        ctx[i] = start + len;
        tables[i][0] = seqs[i];
        tp[i] = tables[i];
        for (int p = start; p < start + len; p++) {
            tokens[T_] = toks[seqs[i]][p];
            pos[T_] = p;
            rows[T_] = T_;
            T_++;
        }
    }
    qs[n] = T_;
    tv_batch b = {.n_tokens = T_, .tokens = tokens, .positions = pos, .n_seqs = n, .q_start = qs, .ctx_len = ctx,
                  .block_tables = tp, .n_logits = T_, .logit_rows = rows};
    float *lg;
    tv_error err = {0};
    if (forward_run(f, kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
    memcpy(out, lg, (size_t)T_ * V * sizeof(float));
}

static void check_invariance_form(const char *arch, tv_type type, int mla_form) {
    char path[512];
    snprintf(path, sizeof path, "%s/test_moe_%s_%s_%ld.gguf", TV_BINARY_DIR, arch, kern_type_name(type), (long)getpid());
    tv_synth_params sp = {.arch = arch, .type = type, .seed = 3, .n_threads = 2};
    tv_error err = {0};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = test_cpu_path();
    mp.mla_form = mla_form;
    tv_model *m = tv_model_load(path, &mp, &err);
    unlink(path);
    if (!m) fail_msg("load: %s", err.msg);
    const int V = tv_model_n_vocab(m);
    static int32_t toks[N_SEQ][PROMPT + 1];
    for (int s = 0; s < N_SEQ; s++)
        for (int p = 0; p <= PROMPT; p++) toks[s][p] = 3 + (int32_t)((frand() + 1.0f) * 0.5f * (V - 4));
    backend *be1 = backend_cpu_create(test_cpu_path(), 1, &err), *be3 = backend_cpu_create(test_cpu_path(), 3, &err);
    assert_true(be1 && be3);
    tv_kv_cache *kv1 = kv_cache_create(m, N_SEQ, BS, false, &err), *kv3 = kv_cache_create(m, N_SEQ, BS, false, &err);
    tv_forward *f1 = forward_create(m, 256, N_SEQ * PROMPT, N_SEQ * PROMPT, be1, &err);
    tv_forward *f3 = forward_create(m, 256, N_SEQ * PROMPT, N_SEQ * PROMPT, be3, &err);
    assert_true(kv1 && kv3 && f1 && f3);
    float *solo = malloc((size_t)PROMPT * V * sizeof(float)), *all = malloc((size_t)N_SEQ * PROMPT * V * sizeof(float));
    assert_true(solo && all);
    int order[N_SEQ], one = SOLO;
    for (int i = 0; i < N_SEQ; i++) order[i] = (i * 37 + 11) % N_SEQ;   // a permutation; SOLO somewhere inside
    int at = 0;
    while (order[at] != SOLO) at++;
    // prefill: alone on 1 thread, among 63 others on 3 threads
    run_batch(f1, kv1, &one, 1, 0, PROMPT, toks, V, solo);
    run_batch(f3, kv3, order, N_SEQ, 0, PROMPT, toks, V, all);
    if (memcmp(solo, all + (size_t)at * PROMPT * V, (size_t)PROMPT * V * sizeof(float)))
        fail_msg("%s: prefill logits of a sequence differ alone and in a batch of %d", kern_type_name(type), N_SEQ);
    // decode one token each over the cache
    run_batch(f1, kv1, &one, 1, PROMPT, 1, toks, V, solo);
    run_batch(f3, kv3, order, N_SEQ, PROMPT, 1, toks, V, all);
    if (memcmp(solo, all + (size_t)at * V, (size_t)V * sizeof(float)))
        fail_msg("%s: decode logits of a sequence differ alone and in a batch of %d", kern_type_name(type), N_SEQ);
    free(solo);
    free(all);
    forward_free(f1);
    forward_free(f3);
    kv_cache_free(kv1);
    kv_cache_free(kv3);
    backend_free(be1);
    backend_free(be3);
    tv_model_free(m);
}

static void check_invariance(const char *arch, tv_type type) { check_invariance_form(arch, type, TV_MLA_AUTO); }

static void test_batch_invariance(void **state) {
    (void)state;
    // F16 first: its logits show any bit of difference; a quantized model's next activation
    // quantization usually absorbs a last-bit change of the residual stream
    check_invariance("qwen3moe", TV_TYPE_F16);
    check_invariance("qwen3moe", TV_TYPE_Q8_0);   // packed on the SIMD paths
    check_invariance("qwen3moe", TV_TYPE_Q4_K);
    check_invariance("deepseek2", TV_TYPE_F16);    // latent attention, grouped sigmoid routing
    check_invariance("deepseek2", TV_TYPE_Q8_0);
    check_invariance_form("deepseek2", TV_TYPE_F16, TV_MLA_EXPANDED);   // every sequence expanded, decode too
    check_invariance("gemma4moe", TV_TYPE_Q8_0);   // fused gate+up experts (packed), per-expert scales
}

// ---------------------------------------------------------------- latent attention

// One sequence's tokens [start, start + len) at those positions over blocks table (BS each); logits of
// every token into out (len, V).
static void run_seq(tv_forward *f, tv_kv_cache *kv, const int32_t *toks, int start, int len, const int32_t *table,
                    int V, float *out) {
    static int32_t pos[256], rows[256];
    int32_t qs[2] = {0, len}, ctx = start + len;
    const int32_t *tp[1] = {table};
    for (int i = 0; i < len; i++) {
        pos[i] = start + i;
        rows[i] = i;
    }
    tv_batch b = {.n_tokens = len, .tokens = toks + start, .positions = pos, .n_seqs = 1, .q_start = qs,
                  .ctx_len = &ctx, .block_tables = tp, .n_logits = len, .logit_rows = rows};
    float *lg;
    tv_error err = {0};
    if (forward_run(f, kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
    memcpy(out, lg, (size_t)len * V * sizeof(float));
}

// The absorbed and the expanded form of latent attention against each other on a random-weight
// deepseek2 (both Lite and V3-style queries): a 48-token prompt in one chunk, a 24-token chunk over it
// and 8 decode steps, every row of a model in one form (tv_model_params.mla_form). The forms sum in
// other orders, so the logits agree within `bound` times their spread, not in bits, at half the
// positions at least: a router near-tie that the last bits move picks another expert, and from there
// on the hidden states and the KV differ (seen on the generic path, F32: 33 of 80 positions beyond,
// all from one such position on; a real fault, e.g. K without its RoPE part, puts nearly all beyond,
// at ~0.5 of the spread). A quantized
// model's forms also round differently (the absorbed form quantizes each head's latent output before
// attn_v_b) and the next activation quantizations and the routing amplify that: those are held to
// top-1 agreement >= min_top1 of the 80 positions instead (bound 0). Both forms are also checked
// against llama.cpp (test_families' -absorbed / -expanded rows).
static void check_mla_forms(const char *arch, tv_type type, double bound, int min_top1) {
    enum { P0 = 48, P1 = 24, ND = 8, NT = P0 + P1 + ND };
    char path[512];
    snprintf(path, sizeof path, "%s/test_moe_forms_%s_%s_%ld.gguf", TV_BINARY_DIR, arch, kern_type_name(type),
             (long)getpid());
    tv_synth_params sp = {.arch = arch, .type = type, .seed = 5, .n_threads = 2};
    tv_error err = {0};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    float *lg[2] = {NULL, NULL};
    int V = 0;
    static int32_t toks[NT];
    const int32_t table[] = {5, 2, 7, 0, 3, 6, 1, 4};   // scattered blocks of BS
    for (int form = 0; form < 2; form++) {
        tv_model_params mp;
        tv_model_params_default(&mp);
        mp.cpu_path = test_cpu_path();
        mp.mla_form = form ? TV_MLA_EXPANDED : TV_MLA_ABSORBED;
        tv_model *m = tv_model_load(path, &mp, &err);
        if (!m) fail_msg("load: %s", err.msg);
        V = tv_model_n_vocab(m);
        if (!form)
            for (int i = 0; i < NT; i++) toks[i] = 3 + (int32_t)((frand() + 1.0f) * 0.5f * (V - 4));
        backend *be = backend_cpu_create(test_cpu_path(), 2, &err);
        tv_kv_cache *kv = kv_cache_create(m, 8, BS, false, &err);
        tv_forward *f = forward_create(m, 256, 64, 64, be, &err);
        assert_true(be && kv && f);
        assert_non_null(lg[form] = malloc((size_t)NT * V * sizeof(float)));
        run_seq(f, kv, toks, 0, P0, table, V, lg[form]);
        run_seq(f, kv, toks, P0, P1, table, V, lg[form] + (size_t)P0 * V);
        for (int d = 0; d < ND; d++) run_seq(f, kv, toks, P0 + P1 + d, 1, table, V, lg[form] + (size_t)(P0 + P1 + d) * V);
        forward_free(f);
        kv_cache_free(kv);
        backend_free(be);
        tv_model_free(m);
    }
    unlink(path);
    double worst = 0;
    int n_top1 = 0, n_out = 0;
    for (int t = 0; t < NT; t++) {
        const float *a = lg[0] + (size_t)t * V, *b = lg[1] + (size_t)t * V;
        float lo = a[0], hi = a[0];
        int ia = 0, ib = 0;
        double d = 0;
        for (int i = 0; i < V; i++) {
            lo = fminf(lo, a[i]);
            hi = fmaxf(hi, a[i]);
            d = fmax(d, fabs((double)a[i] - b[i]));
            if (a[i] > a[ia]) ia = i;
            if (b[i] > b[ib]) ib = i;
        }
        n_top1 += ia == ib;
        d /= fmax((double)hi - lo, 1e-6);
        n_out += bound > 0 && d > bound;
        if (bound == 0 || d <= bound) worst = fmax(worst, d);
    }
    print_message("mla forms: %s %s: largest logit difference %.2e of the spread (%d positions beyond %.0e), "
                  "top-1 %d/%d\n", arch, kern_type_name(type), worst, n_out, bound, n_top1, NT);
    free(lg[0]);
    free(lg[1]);
    if (n_out > NT / 2)
        fail_msg("%s %s: the forms differ by more than %.3g of the logits' spread at %d of %d positions", arch,
                 kern_type_name(type), bound, n_out, NT);
    if (n_top1 < min_top1) fail_msg("%s %s: the forms agree on the top-1 at %d of %d positions (at least %d)", arch,
                                    kern_type_name(type), n_top1, NT, min_top1);
}

static void test_mla_forms(void **state) {
    (void)state;
    check_mla_forms("deepseek2", TV_TYPE_F32, 2e-4, 78);
    check_mla_forms("deepseek2-lite", TV_TYPE_F32, 2e-4, 78);
    check_mla_forms("deepseek2", TV_TYPE_F16, 2e-4, 78);
    check_mla_forms("deepseek2", TV_TYPE_Q8_0, 0, 64);
    check_mla_forms("deepseek2-lite", TV_TYPE_Q4_K, 0, 64);
}

// deepseek2's absorbed attention is attn_run over one KV head whose K rows are [latent, RoPE key]
// with v_pool = k_pool (the caller keeps each output's latent part): every path, f32 and f16
// pools, a scattered block table, a prefill chunk and a decode row in one call, against a double
// oracle of softmax(q·k * scale)·k.
static void test_mla_attention_oracle(void **state) {
    (void)state;
    enum { H = 8, R = 64, ROT = 16, HD = R + ROT, BSZ = 16, CTX = 70, NB = 6, NQ = 6 };
    const int32_t table[NB] = {4, 1, 5, 0, 2, 3};
    const float scale = 0.11f;
    static float kf[NB * BSZ * HD], q[(NQ + 1) * H * HD], out[(NQ + 1) * H * HD];
    static tv_f16 kh[NB * BSZ * HD];
    for (int i = 0; i < NB * BSZ * HD; i++) {
        kh[i] = f32_to_f16(frand() * 2.0f);
        kf[i] = f16_to_f32(kh[i]);   // the same values in both pools
    }
    for (int i = 0; i < (NQ + 1) * H * HD; i++) q[i] = frand() * 1.5f;
    int32_t pos[NQ + 1];
    for (int i = 0; i < NQ; i++) pos[i] = CTX - NQ + i;
    pos[NQ] = 40;   // a decode of a second sequence on the same blocks
    tv_error err = {0};
    tv_attn_ws *ws = attn_ws_create(&err);
    tv_pool *pool = pool_create(3, &err);
    assert_true(ws && pool);
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (int is_f32 = 0; is_f32 < 2; is_f32++) {
            const void *pool_k = is_f32 ? (const void *)kf : (const void *)kh;
            const tv_attn_seq seqs[2] = {
                {.n_q = NQ, .q = q, .out = out, .pos = pos, .block_table = table},
                {.n_q = 1, .q = q + NQ * H * HD, .out = out + NQ * H * HD, .pos = pos + NQ, .block_table = table}};
            tv_attn_args a = {.ops = ops, .geom = {.n_heads = H, .n_kv_heads = 1, .head_dim = HD, .block_size = BSZ,
                                                   .kv_is_f32 = is_f32, .scale = scale},
                              .k_pool = pool_k, .v_pool = pool_k, .n_seqs = 2, .seqs = seqs};
            assert_int_equal(attn_run(&a, ws, pool, &err), TV_OK);
            double max_err = 0;
            for (int r = 0; r <= NQ; r++)
                for (int h = 0; h < H; h++) {
                    const float *qr = q + ((size_t)r * H + h) * HD;
                    double s[CTX], mx = -INFINITY, sum = 0;
                    for (int j = 0; j <= pos[r]; j++) {
                        const float *kj = kf + ((size_t)table[j / BSZ] * BSZ + j % BSZ) * HD;
                        double d = 0;
                        for (int i = 0; i < HD; i++) d += (double)qr[i] * kj[i];
                        s[j] = d * scale;
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int j = 0; j <= pos[r]; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int i = 0; i < HD; i++) {
                        double o = 0;
                        for (int j = 0; j <= pos[r]; j++) o += s[j] * kf[((size_t)table[j / BSZ] * BSZ + j % BSZ) * HD + i];
                        const double e = fabs(o / sum - out[((size_t)r * H + h) * HD + i]);
                        max_err = e > max_err ? e : max_err;
                    }
                }
            if (max_err > 2e-5) fail_msg("%s, %s pool: max error %.3g against the oracle", PATHS[pi], is_f32 ? "f32" : "f16",
                                         max_err);
        }
    }
    pool_free(pool);
    attn_ws_free(ws);
}

// Grouped top-k (DeepSeek-V3): experts in n_group groups of consecutive ids; a group scores the sum
// of its two best biased probs; only the n_group_used best groups' experts may be picked. Checked
// against a direct oracle on random routers, and on a case where the best single expert's group
// loses (its partner is weak).
static void test_route_groups(void **state) {
    (void)state;
    // groups {0..3} {4..7}: expert 0 is the best single one, but group 1's top two sum higher
    float logits[8] = {5.0f, -3.0f, -3.0f, -3.0f, 2.0f, 2.0f, 1.0f, -1.0f};
    int32_t ids[2];
    float w[2];
    tv_route_opts o = {.n_expert = 8, .n_used = 2, .gating = TV_GATING_SIGMOID, .norm = true, .n_group = 2,
                       .n_group_used = 1};
    kern_route(&o, logits, ids, w);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 5);
    assert_true(fabsf(w[0] - 0.5f) < 1e-6f && fabsf(w[1] - 0.5f) < 1e-6f);
    for (int trial = 0; trial < 200; trial++) {
        enum { NE = 32, G = 8, GU = 3, KU = 6 };
        float lg[NE], bias[NE], probs[NE];
        for (int i = 0; i < NE; i++) {
            lg[i] = frand() * 3.0f;
            bias[i] = frand() * 0.2f;
            probs[i] = 1.0f / (1.0f + expf(-lg[i]));
        }
        // oracle: group scores, the GU best groups, then the KU best of their experts
        double gs[G];
        bool keep[G] = {false};
        for (int g = 0; g < G; g++) {
            double a = -1e30, b = -1e30;
            for (int i = g * (NE / G); i < (g + 1) * (NE / G); i++) {
                const double v = (double)(probs[i] + bias[i]);
                if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
            }
            gs[g] = a + b;
        }
        for (int j = 0; j < GU; j++) {
            int best = -1;
            for (int g = 0; g < G; g++) if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
            keep[best] = true;
        }
        bool used[NE] = {false};
        int want[KU];
        for (int j = 0; j < KU; j++) {
            int best = -1;
            for (int i = 0; i < NE; i++)
                if (keep[i / (NE / G)] && !used[i] && (best < 0 || probs[i] + bias[i] > probs[best] + bias[best])) best = i;
            used[best] = true;
            want[j] = best;
        }
        int32_t got[KU];
        float gw[KU];
        tv_route_opts og = {.n_expert = NE, .n_used = KU, .gating = TV_GATING_SIGMOID, .bias = bias, .scale = 2.5f,
                            .n_group = G, .n_group_used = GU};
        kern_route(&og, lg, got, gw);
        for (int j = 0; j < KU; j++) {
            assert_int_equal(got[j], want[j]);
            assert_true(fabsf(gw[j] - 2.5f * probs[want[j]]) < 1e-6f);   // unbiased probs, scaled
        }
    }
}

// ---------------------------------------------------------------- loader checks

static char g_src[512], g_dst[512];

static void rewrite(const char *key, uint32_t value, const char *drop_tensor) {
    tv_error err = {0};
    gguf_ctx *g = gguf_open(g_src, &err);
    if (!g) fail_msg("%s", err.msg);
    gguf_writer *w = gguf_writer_create();
    assert_non_null(w);
    for (int64_t i = 0; i < gguf_n_kv(g); i++)
        if (strcmp(gguf_kv_key(g, i), "general.alignment")) gguf_set_value(w, gguf_kv_key(g, i), gguf_kv_value(g, i));
    if (key) gguf_set_u32(w, key, value);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (drop_tensor && !strcmp(t->name, drop_tensor)) continue;
        if (gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err)) fail_msg("%s", err.msg);
    }
    snprintf(g_dst, sizeof g_dst, "%s.changed.gguf", g_src);
    if (gguf_writer_write(w, g_dst, &err)) fail_msg("%s", err.msg);
    gguf_writer_free(w);
    gguf_close(g);
}

static void expect_fail(const char *key, uint32_t value, const char *drop, const char *want1, const char *want2) {
    rewrite(key, value, drop);
    tv_error err = {0};
    tv_model *m = tv_model_load(g_dst, NULL, &err);
    remove(g_dst);
    if (m) fail_msg("%s = %u: loaded, expected an error", key ? key : "-", value);
    if (!strstr(err.msg, want1) || !strstr(err.msg, want2))
        fail_msg("error '%s' does not name '%s' and '%s'", err.msg, want1, want2);
}

// writes ARCH's synth model (F32, seed 5) to g_src (named after TAG) and returns its info; the file
// stays for expect_fail
static tv_model_info synth_src_info(const char *tag, const char *arch) {
    snprintf(g_src, sizeof g_src, "%s/test_moe_%s_%ld.gguf", TV_BINARY_DIR, tag, (long)getpid());
    tv_synth_params sp = {.arch = arch, .type = TV_TYPE_F32, .seed = 5, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&sp, g_src, &err)) fail_msg("synth %s: %s", arch, err.msg);
    tv_model *m = tv_model_load(g_src, NULL, &err);
    if (!m) fail_msg("load %s: %s", arch, err.msg);
    tv_model_info info;
    tv_model_get_info(m, &info);
    tv_model_free(m);
    return info;
}

static void test_bad_expert_counts(void **state) {
    (void)state;
    tv_model_info info = synth_src_info("load", "qwen2moe");
    assert_int_equal(info.n_expert, 16);
    assert_int_equal(info.n_expert_used, 4);
    assert_int_equal(info.expert_ff, 256);
    assert_int_equal(info.kv_bytes_per_token, 4 * 2 * 2 * 64 * 2);   // layers * KU,V * kv heads * head * f16
    // the router has 16 rows and the experts 16 matrices: a count of 8 names the tensor and both
    expect_fail("qwen2moe.expert_count", 8, NULL, "ffn_gate_inp.weight", "[256, 8]");
    expect_fail("qwen2moe.expert_used_count", 17, NULL, "expert_used_count", "17");
    expect_fail("qwen2moe.expert_used_count", 0, NULL, "expert_used_count", "out of range");
    expect_fail("qwen2moe.expert_feed_forward_length", 128, NULL, "ffn_gate_exps.weight", "[256, 128, 16]");
    expect_fail("qwen2moe.expert_shared_feed_forward_length", 256, NULL, "ffn_gate_shexp.weight", "[256, 256]");
    expect_fail(NULL, 0, "blk.2.ffn_down_exps.weight", "blk.2.ffn_down_exps.weight", "missing");
    remove(g_src);
}

// deepseek2 and glm4moe: ranks, head sizes and counts that disagree with the tensors or each other
// name both values
static void test_bad_mla_ranks_glm_counts(void **state) {
    (void)state;
    tv_model_info info = synth_src_info("mla", "deepseek2");
    assert_int_equal(info.kv_bytes_per_token, 4 * (128 + 16) * 2);   // layers * (latent + RoPE key) * f16: no V
    expect_fail("deepseek2.attention.kv_lora_rank", 96, NULL, "value_length = 128", "kv_lora_rank 96");
    expect_fail("deepseek2.attention.key_length", 160, NULL, "key_length 160", "kv_lora_rank 128");
    expect_fail("deepseek2.attention.q_lora_rank", 32, NULL, "attn_q_a.weight", "[256, 32]");
    expect_fail("deepseek2.attention.key_length_mla", 64, NULL, "attn_q_b.weight", "[64, 256]");
    expect_fail("deepseek2.attention.value_length_mla", 16, NULL, "attn_v_b.weight", "[128, 16, 4]");
    expect_fail("deepseek2.attention.head_count_kv", 2, NULL, "head_count_kv", "2");
    expect_fail("deepseek2.expert_shared_count", 2, NULL, "ffn_gate_shexp.weight", "[256, 256]");
    expect_fail("deepseek2.expert_group_count", 3, NULL, "expert_group_count 3", "expert_count 16");
    expect_fail("deepseek2.expert_group_used_count", 4, NULL, "expert_group_used_count 4", "expert_group_count 4");
    expect_fail("deepseek2.leading_dense_block_count", 2, NULL, "blk.1.ffn_gate.weight", "missing");
    expect_fail(NULL, 0, "blk.1.attn_k_b.weight", "blk.1.attn_k_b.weight", "missing");
    remove(g_src);
    // glm4moe: the MTP layer is counted in block_count but not bound; counts name both values
    info = synth_src_info("mla", "glm4moe");
    assert_int_equal(info.n_layers, 4);   // block_count 5, one nextn layer
    expect_fail("glm4moe.nextn_predict_layers", 5, NULL, "nextn_predict_layers 5", "block_count 5");
    expect_fail("glm4moe.leading_dense_block_count", 5, NULL, "leading_dense_block_count 5", "block_count 4");
    expect_fail("glm4moe.expert_shared_count", 2, NULL, "ffn_gate_shexp.weight", "[256, 256]");
    expect_fail(NULL, 0, "blk.2.exp_probs_b.bias", "blk.2.exp_probs_b.bias", "missing");
    remove(g_src);
}

// gemma4 with experts (26B-A4B): counts and sizes that disagree with the tensors name both
static void test_bad_gemma4_experts(void **state) {
    (void)state;
    tv_model_info info = synth_src_info("g4", "gemma4moe");
    assert_int_equal(info.n_expert, 16);
    assert_int_equal(info.n_expert_used, 4);
    assert_int_equal(info.expert_ff, 128);
    expect_fail("gemma4.expert_count", 8, NULL, "ffn_gate_inp.weight", "[256, 8]");
    expect_fail("gemma4.expert_feed_forward_length", 64, NULL, "ffn_gate_up_exps.weight", "[256, 128, 16]");
    expect_fail("gemma4.expert_used_count", 17, NULL, "expert_used_count", "17");
    expect_fail(NULL, 0, "blk.3.ffn_gate_up_exps.weight", "blk.3.ffn_gate_up_exps.weight", "missing");
    expect_fail(NULL, 0, "blk.0.ffn_down_exps.scale", "blk.0.ffn_down_exps.scale", "missing");
    expect_fail(NULL, 0, "blk.1.ffn_gate_inp.scale", "blk.1.ffn_gate_inp.scale", "missing");
    expect_fail(NULL, 0, "blk.5.post_ffw_norm_2.weight", "blk.5.post_ffw_norm_2.weight", "missing");
    remove(g_src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_softmax_ties_norm),
        cmocka_unit_test(test_route_bias_sigmoid_softmax_weight),
        cmocka_unit_test(test_experts_matmul),
        cmocka_unit_test(test_mxfp4_vs_ggml),
        cmocka_unit_test(test_mxfp4_paths),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_bad_expert_counts),
        cmocka_unit_test(test_route_groups),
        cmocka_unit_test(test_mla_attention_oracle),
        cmocka_unit_test(test_mla_forms),
        cmocka_unit_test(test_bad_mla_ranks_glm_counts),
        cmocka_unit_test(test_bad_gemma4_experts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
