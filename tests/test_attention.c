// test_attention.c — the attention kernel and the fused elementwise ops (kernels/attention.c,
// x86/attn_*.c): every path (generic scalar twin, AVX2, AVX-512 where the CPU has them) against a
// double-precision oracle computed here from the stored (f16-rounded) K/V, fast vs scalar twin,
// and the batch-invariance contract: the same bits for every thread count, split mode, prefill
// chunking and batch composition.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test_util.h"

// ---- error budgets (absolute, relative to max|v| for attention outputs) ----
// Attention vs the double oracle: scores carry ~hd ulps, the softmax-weighted sum ~ctx ulps of
// max|v|; measured worst over all cases 2.1e-6 (the test prints it).
#define ATT_TOL 1.0e-5
// Elementwise vs double oracle, relative (per element, |ref| floor 1e-3): a few ulps.
#define EW_TOL 2.0e-6


static const char *PATHS[] = {"generic", "avx2", "avx512"};
#define N_PATHS 3

// ---------------------------------------------------------------- attention fixture

typedef struct att_case {
    tv_attn_geom g;
    int n_blocks;        // pool blocks
    int ctx;             // keys of the sequence
    void *k, *v;         // (n_blocks, n_kv_heads, bs, hd) f16 or f32
    int32_t *bt;         // (ceil(ctx/bs)) shuffled block ids
} att_case;

static size_t pool_elems(const att_case *c) {
    return (size_t)c->n_blocks * c->g.n_kv_heads * c->g.block_size * c->g.head_dim;
}

static float kv_get(const att_case *c, const void *pool, int p, int kvh, int d) {
    const tv_attn_geom *g = &c->g;
    size_t i = (((size_t)c->bt[p / g->block_size] * g->n_kv_heads + kvh) * g->block_size + p % g->block_size) *
               g->head_dim + d;
    return g->kv_is_f32 ? ((const float *)pool)[i] : f16_to_f32(((const tv_f16 *)pool)[i]);
}

static void case_init(att_case *c, int hd, int group, int bs, int ctx, bool is_f32) {
    memset(c, 0, sizeof *c);
    c->g = (tv_attn_geom){.n_heads = 2 * group, .n_kv_heads = 2, .head_dim = hd, .block_size = bs,
                          .kv_is_f32 = is_f32, .scale = 1.0f / sqrtf((float)hd)};
    c->ctx = ctx;
    int nbt = (ctx + bs - 1) / bs;
    c->n_blocks = nbt + 3;   // spare blocks hold garbage that must never be read
    size_t n = pool_elems(c), esz = is_f32 ? 4 : 2;
    c->k = malloc(n * esz);
    c->v = malloc(n * esz);
    c->bt = malloc((size_t)nbt * sizeof(int32_t));
    assert_non_null(c->k);
    assert_non_null(c->v);
    assert_non_null(c->bt);
    for (size_t i = 0; i < n; i++) {
        float kk = rnd_normal(), vv = rnd_normal();
        if (is_f32) {
            ((float *)c->k)[i] = kk;
            ((float *)c->v)[i] = vv;
        } else {
            ((tv_f16 *)c->k)[i] = f32_to_f16(kk);
            ((tv_f16 *)c->v)[i] = f32_to_f16(vv);
        }
    }
    // a random permutation of the blocks: the block table must be honoured
    int32_t *perm = malloc((size_t)c->n_blocks * sizeof(int32_t));
    assert_non_null(perm);
    for (int i = 0; i < c->n_blocks; i++) perm[i] = i;
    for (int i = c->n_blocks - 1; i > 0; i--) {
        int j = (int)(rnd_u32() % (uint32_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    memcpy(c->bt, perm, (size_t)nbt * sizeof(int32_t));
    // keys past ctx in the last block and unused blocks: huge values (a read would show)
    for (int b = nbt; b < c->n_blocks; b++)
        for (size_t i = 0; i < (size_t)c->g.n_kv_heads * bs * hd; i++) {
            size_t at = (size_t)perm[b] * c->g.n_kv_heads * bs * hd + i;
            if (is_f32) { ((float *)c->k)[at] = 1e30f; ((float *)c->v)[at] = 1e30f; }
            else { ((tv_f16 *)c->k)[at] = 0x7BFF; ((tv_f16 *)c->v)[at] = 0x7BFF; }   // 65504
        }
    free(perm);
}

static void case_free(att_case *c) {
    free(c->k);
    free(c->v);
    free(c->bt);
}

// The first key a query at p sees, written from llama.cpp's rule (key j masked when p - j >= window).
static int oracle_first_key(const tv_attn_geom *g, int p) {
    int j = 0;
    while (g->window > 0 && p - j >= g->window) j++;
    return j;
}

// Double oracle for one query row (n_heads*hd) at position p: out (n_heads*hd), with the geometry's
// sliding window and soft-capping applied naively.
static void oracle(const att_case *c, const float *q, int p, double *out) {
    const tv_attn_geom *g = &c->g;
    const int hd = g->head_dim, G = g->n_heads / g->n_kv_heads, j0 = oracle_first_key(g, p);
    double *s = malloc((size_t)(p + 1) * sizeof(double));
    assert_non_null(s);
    for (int h = 0; h < g->n_heads; h++) {
        const int kvh = h / G;
        double mx = -INFINITY, sum = 0;
        for (int j = j0; j <= p; j++) {
            double dot = 0;
            for (int d = 0; d < hd; d++) dot += (double)q[h * hd + d] * kv_get(c, c->k, j, kvh, d);
            s[j] = dot * g->scale;
            if (g->softcap > 0) s[j] = g->softcap * tanh(s[j] / g->softcap);
            if (s[j] > mx) mx = s[j];
        }
        for (int j = j0; j <= p; j++) sum += (s[j] = exp(s[j] - mx));
        for (int d = 0; d < hd; d++) {
            double a = 0;
            for (int j = j0; j <= p; j++) a += s[j] * kv_get(c, c->v, j, kvh, d);
            out[h * hd + d] = a / sum;
        }
    }
    free(s);
}

static tv_pool *g_pools[4];   // 1..3 threads

static void run_att(const att_case *c, const tv_ops *ops, int split, tv_pool *pool, int n_seqs, const tv_attn_seq *seqs) {
    tv_error err = {0};
    tv_attn_ws *ws = attn_ws_create(&err);
    assert_non_null(ws);
    tv_attn_args a = {.ops = ops, .geom = c->g, .k_pool = c->k, .v_pool = c->v, .n_seqs = n_seqs, .seqs = seqs,
                      .split = split};
    assert_int_equal(attn_run(&a, ws, pool, &err), TV_OK);
    attn_ws_free(ws);
}

// One geometry: queries = the last n_q positions of ctx (a prefill chunk; n_q = 1 is a decode),
// with a sliding window (0: none) and logit soft-capping (0: none). Checks every available path
// against the oracle and the scalar twin, then bit-equality across thread counts, split modes,
// token-by-token vs chunk, and batching with another sequence. The block-table entries of blocks
// wholly before the first query's window point far outside the pool: reading one would fault.
static double check_case_opt(int hd, int group, int bs, int ctx, int n_q, bool is_f32, int window, float softcap) {
    att_case c;
    case_init(&c, hd, group, bs, ctx, is_f32);
    c.g.window = window;
    c.g.softcap = softcap;
    const int qd = c.g.n_heads * hd;
    if (n_q > ctx) n_q = ctx;
    float *q = malloc((size_t)n_q * qd * sizeof(float));
    float *ref = malloc((size_t)n_q * qd * sizeof(float));
    float *out = malloc((size_t)n_q * qd * sizeof(float));
    float *alt = malloc((size_t)n_q * qd * sizeof(float));
    double *orc = malloc((size_t)n_q * qd * sizeof(double));
    int32_t *pos = malloc((size_t)n_q * sizeof(int32_t));
    assert_true(q && ref && out && alt && orc && pos);
    const float qscale = 1.0f + 3.0f * rnd_unit();   // sharper or flatter softmax
    for (int i = 0; i < n_q * qd; i++) q[i] = rnd_normal() * qscale;
    for (int t = 0; t < n_q; t++) pos[t] = ctx - n_q + t;
    double vmax = 0;
    for (int t = 0; t < n_q; t++) oracle(&c, q + (size_t)t * qd, pos[t], orc + (size_t)t * qd);
    const int first = oracle_first_key(&c.g, pos[0]);
    for (int p = first; p < ctx; p++)
        for (int h = 0; h < c.g.n_kv_heads; h++)
            for (int d = 0; d < hd; d++) vmax = fmax(vmax, fabs(kv_get(&c, c.v, p, h, d)));
    for (int b = 0; b < first / bs; b++) c.bt[b] = INT32_MAX / 2;   // far outside the pool

    tv_attn_seq seq = {.n_q = n_q, .q = q, .out = ref, .pos = pos, .block_table = c.bt};
    run_att(&c, ops_ref(), -1, NULL, 1, &seq);
    double worst = 0;
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        seq.out = out;
        run_att(&c, ops, 0, g_pools[1], 1, &seq);
        for (int i = 0; i < n_q * qd; i++) {
            double e = fabs(out[i] - orc[i]) / vmax, er = fabs((double)out[i] - ref[i]) / vmax;
            if (e > worst) worst = e;
            if (!(e <= ATT_TOL) || !(er <= ATT_TOL))
                fail_msg("%s hd %d group %d bs %d ctx %d n_q %d %s: elem %d out %g oracle %g ref %g", PATHS[pi], hd,
                         group, bs, ctx, n_q, is_f32 ? "f32" : "f16", i, out[i], orc[i], ref[i]);
        }
        // same bits: every thread count and split mode
        for (int nth = 1; nth <= 3; nth++)
            for (int split = -1; split <= 1; split++) {
                seq.out = alt;
                run_att(&c, ops, split, g_pools[nth], 1, &seq);
                if (memcmp(alt, out, (size_t)n_q * qd * sizeof(float)))
                    fail_msg("%s hd %d ctx %d: %d threads split %d changed bits", PATHS[pi], hd, ctx, nth, split);
            }
        // same bits: each token alone (decode-style), and the chunk batched after another sequence
        for (int t = 0; t < n_q; t++) {
            tv_attn_seq one = {.n_q = 1, .q = q + (size_t)t * qd, .out = alt + (size_t)t * qd, .pos = pos + t,
                               .block_table = c.bt};
            run_att(&c, ops, 0, g_pools[2], 1, &one);
        }
        if (memcmp(alt, out, (size_t)n_q * qd * sizeof(float)))
            fail_msg("%s hd %d ctx %d n_q %d: token-by-token differs from the chunk", PATHS[pi], hd, ctx, n_q);
        if (n_q > 1) {
            float *o2 = malloc(sizeof(float) * qd);
            assert_non_null(o2);
            tv_attn_seq two[2] = {{.n_q = 1, .q = q, .out = o2, .pos = pos, .block_table = c.bt},
                                  {.n_q = n_q - 1, .q = q + qd, .out = alt + qd, .pos = pos + 1, .block_table = c.bt}};
            run_att(&c, ops, 0, g_pools[3], 2, two);
            if (memcmp(alt + qd, out + qd, (size_t)(n_q - 1) * qd * sizeof(float)) || memcmp(o2, out, sizeof(float) * qd))
                fail_msg("%s hd %d ctx %d: batching changed bits", PATHS[pi], hd, ctx);
            free(o2);
        }
    }
    free(q); free(ref); free(out); free(alt); free(orc); free(pos);
    case_free(&c);
    return worst;
}

static double check_case(int hd, int group, int bs, int ctx, int n_q, bool is_f32) {
    return check_case_opt(hd, group, bs, ctx, n_q, is_f32, 0, 0);
}

static int setup_pools(void **state) {
    tv_error err = {0};
    for (int n = 1; n <= 3; n++)
        if (!(g_pools[n] = pool_create(n, &err))) return -1;
    return 0;
}

static int teardown_pools(void **state) {
    for (int n = 1; n <= 3; n++) pool_free(g_pools[n]);
    return 0;
}

static void test_attention_geometries(void **state) {
    static const int HD[] = {8, 64, 128}, GROUP[] = {1, 4, 8}, BS[] = {16, 32};
    double worst = 0;
    int combo = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t s = 0; s < 2; s++)
                for (int f32 = 0; f32 <= 1; f32++, combo++) {
                    // contexts straddling blocks (15..33) and split chunks (255..257, 513); each
                    // geometry takes every third one (rotating), so each context meets 12 geometries
                    static const int CTX[] = {1, 2, 15, 16, 17, 33, 255, 256, 257, 513};
                    for (size_t ci = (size_t)(combo % 3); ci < sizeof CTX / sizeof CTX[0]; ci += 3) {
                        int n_q = (int)(ci % 3 == 0 ? 1 : 5 + ci);   // decodes and prefill chunks
                        double w = check_case(HD[a], GROUP[b], BS[s], CTX[ci], n_q, f32);
                        if (w > worst) worst = w;
                    }
                }
    printf("attention: worst |out - oracle| / max|v| = %.3g (budget %.1g)\n", worst, ATT_TOL);
}

static void test_attention_long(void **state) {
    // long decodes (split-K in several chunks) and a long prefill chunk, TinyLlama head shape
    double worst = 0, w;
    w = check_case(64, 8, 16, 2048, 1, false); if (w > worst) worst = w;
    w = check_case(64, 8, 32, 2100, 1, false); if (w > worst) worst = w;
    w = check_case(128, 4, 16, 2100, 3, true); if (w > worst) worst = w;
    w = check_case(64, 8, 16, 700, 64, false); if (w > worst) worst = w;
    // 72 query heads per KV head: more (token, head) pairs than one pass of the AVX-512 kernel
    w = check_case(16, 72, 16, 40, 3, false); if (w > worst) worst = w;
    printf("attention (long): worst %.3g\n", worst);
}

// Sliding windows smaller than a block, straddling blocks, larger than a block, around and past a
// split chunk (256 keys) and past the context (no-op), on decodes and prefill chunks, every path.
static void test_attention_window(void **state) {
    static const struct { int hd, group, bs, ctx, n_q, window; } C[] = {
        {64, 4, 16, 100, 1, 1},     {64, 4, 16, 100, 9, 1},    {64, 8, 16, 300, 1, 5},    {8, 1, 16, 300, 20, 5},
        {128, 4, 32, 90, 1, 15},    {64, 1, 16, 90, 30, 16},   {64, 8, 16, 90, 3, 17},    {48, 2, 16, 600, 1, 40},
        {64, 8, 16, 600, 70, 40},   {64, 4, 32, 700, 1, 255},  {64, 4, 16, 700, 5, 256},  {128, 1, 16, 700, 33, 257},
        {64, 8, 16, 2100, 1, 300},  {64, 8, 32, 1100, 64, 300}, {40, 2, 16, 530, 7, 513}, {64, 4, 16, 50, 10, 4096},
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++)
        for (int f32 = 0; f32 <= 1; f32++) {
            const double w = check_case_opt(C[i].hd, C[i].group, C[i].bs, C[i].ctx, C[i].n_q, f32, C[i].window, 0);
            if (w > worst) worst = w;
        }
    printf("attention (sliding window): worst %.3g\n", worst);
}

// Logit soft-capping (Gemma 2's 50 on sharp scores, a tight 2 that squashes every score), alone and
// with a sliding window; the score spread (q up to 4x normal) makes the cap bite.
static void test_attention_softcap(void **state) {
    static const struct { int hd, group, bs, ctx, n_q, window; float cap; } C[] = {
        {64, 4, 16, 33, 1, 0, 2.0f},     {64, 4, 16, 300, 9, 0, 2.0f},   {128, 2, 16, 600, 1, 0, 50.0f},
        {8, 8, 16, 40, 17, 0, 3.0f},     {64, 8, 16, 700, 1, 100, 2.0f}, {64, 8, 32, 400, 40, 20, 5.0f},
        {80, 1, 16, 260, 3, 0, 4.0f},    {40, 2, 16, 100, 5, 7, 2.0f},
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++)
        for (int f32 = 0; f32 <= 1; f32++) {
            const double w =
                check_case_opt(C[i].hd, C[i].group, C[i].bs, C[i].ctx, C[i].n_q, f32, C[i].window, C[i].cap);
            if (w > worst) worst = w;
        }
    printf("attention (soft-capping): worst %.3g\n", worst);
}

// The chunk kernel called directly with more (row, head) pairs than one pass of the AVX-512
// kernel holds (20 rows x 8 heads = 160 > 64), a head dim that is not a multiple of 16, and rows
// that see no key of the chunk: each row's (m, l, acc) must have the bits of that row computed
// alone, acc / l must match the scalar twin's, and a row with no key must read m = -inf, l = 0.
// Also with a sliding window starting inside the chunk (rows see different key ranges) and with
// soft-capping.
static void test_attention_chunk_rows(void **state) {
    static const int HDS[] = {64, 40};
    static const struct { int window; float cap; } OPT[] = {{0, 0}, {37, 0}, {37, 3.0f}};
    enum { N_ROWS = 20, GROUP = 8, BS = 16, CTX = 300, K0 = 64, K1 = K0 + 256 };
    for (size_t oi = 0; oi < sizeof OPT / sizeof OPT[0]; oi++)
    for (size_t hi = 0; hi < sizeof HDS / sizeof HDS[0]; hi++)
        for (int f32 = 0; f32 <= 1; f32++) {
            const int hd = HDS[hi];
            att_case c;
            case_init(&c, hd, GROUP, BS, CTX, f32);
            c.g.window = OPT[oi].window;
            c.g.softcap = OPT[oi].cap;
            const int qd = c.g.n_heads * hd, R = N_ROWS * GROUP, kvh = 1;
            int32_t pos[N_ROWS];
            for (int r = 0; r < N_ROWS; r++)   // rows 0..2 end before the chunk
                pos[r] = r < 3 ? K0 - 1 - 7 * r : K0 + (int32_t)(rnd_u32() % (uint32_t)(CTX - K0));
            float *q = malloc(sizeof(float) * N_ROWS * qd), *work = malloc(sizeof(float) * attn_work_floats(&c.g));
            float *m = malloc(sizeof(float) * R), *l = malloc(sizeof(float) * R), *acc = malloc(sizeof(float) * R * hd);
            float *mr = malloc(sizeof(float) * R), *lr = malloc(sizeof(float) * R), *accr = malloc(sizeof(float) * R * hd);
            float m1[GROUP], l1[GROUP], *acc1 = malloc(sizeof(float) * GROUP * hd);
            assert_true(q && work && m && l && acc && mr && lr && accr && acc1);
            for (int i = 0; i < N_ROWS * qd; i++) q[i] = 2.0f * rnd_normal();
            double vmax = 0;
            for (int p = 0; p < CTX; p++)
                for (int d = 0; d < hd; d++) vmax = fmax(vmax, fabs(kv_get(&c, c.v, p, kvh, d)));
            ops_ref()->attn_chunk(&c.g, c.k, c.v, c.bt, kvh, N_ROWS, q, pos, K0, K1, mr, lr, accr, work);
            for (int pi = 0; pi < N_PATHS; pi++) {
                const tv_ops *ops = ops_for_path(PATHS[pi]);
                if (!ops) continue;
                ops->attn_chunk(&c.g, c.k, c.v, c.bt, kvh, N_ROWS, q, pos, K0, K1, m, l, acc, work);
                for (int r = 0; r < N_ROWS; r++) {
                    ops->attn_chunk(&c.g, c.k, c.v, c.bt, kvh, 1, q + (size_t)r * qd, pos + r, K0, K1, m1, l1, acc1, work);
                    const int s0 = r * GROUP;
                    if (memcmp(m1, m + s0, sizeof m1) || memcmp(l1, l + s0, sizeof l1) ||
                        memcmp(acc1, acc + (size_t)s0 * hd, sizeof(float) * GROUP * hd))
                        fail_msg("%s hd %d %s: chunk row %d alone differs from the %d-row call", PATHS[pi], hd,
                                 f32 ? "f32" : "f16", r, N_ROWS);
                    for (int gi = 0; gi < GROUP; gi++) {
                        const int si = s0 + gi;
                        if (pos[r] < K0) {
                            if (!(isinf(m[si]) && m[si] < 0 && l[si] == 0))
                                fail_msg("%s hd %d: row %d sees no key but m %g l %g", PATHS[pi], hd, r, m[si], l[si]);
                            continue;
                        }
                        for (int d = 0; d < hd; d++) {
                            const double got = acc[(size_t)si * hd + d] / l[si], want = accr[(size_t)si * hd + d] / lr[si];
                            if (!(fabs(got - want) / vmax <= ATT_TOL))
                                fail_msg("%s hd %d %s: row %d head %d dim %d: %g vs scalar %g", PATHS[pi], hd,
                                         f32 ? "f32" : "f16", r, gi, d, got, want);
                        }
                    }
                }
            }
            free(q); free(work); free(m); free(l); free(acc); free(mr); free(lr); free(accr); free(acc1);
            case_free(&c);
        }
}

static void test_attention_rejects_bad_geometry(void **state) {
    tv_error err = {0};
    tv_attn_ws *ws = attn_ws_create(&err);
    tv_attn_args a = {.ops = ops_ref(), .geom = {.n_heads = 6, .n_kv_heads = 4, .head_dim = 64, .block_size = 16}};
    assert_int_equal(attn_run(&a, ws, NULL, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "geometry"));
    a.geom = (tv_attn_geom){.n_heads = 4, .n_kv_heads = 4, .head_dim = 64, .block_size = 16, .window = -1};
    assert_int_equal(attn_run(&a, ws, NULL, &err), TV_ERR_INVALID);
    a.geom.window = 0;
    a.geom.softcap = NAN;
    assert_int_equal(attn_run(&a, ws, NULL, &err), TV_ERR_INVALID);
    a.geom.softcap = -1.0f;
    assert_int_equal(attn_run(&a, ws, NULL, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "softcap"));
    attn_ws_free(ws);
    attn_ws_free(NULL);
}

// ---------------------------------------------------------------- elementwise

static const int SIZES[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 288, 2051};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])

static double relerr(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-3); }

static void test_rmsnorm(void **state) {
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (size_t si = 0; si < N_SIZES; si++) {
            int n = SIZES[si];
            float *x = malloc(sizeof(float) * (n + 1)), *w = malloc(sizeof(float) * n);
            float *o = malloc(sizeof(float) * (n + 1)), *r = malloc(sizeof(float) * n);
            assert_true(x && w && o && r);
            double ss = 0;
            for (int i = 0; i < n; i++) {
                x[i] = rnd_normal() * 3;
                w[i] = rnd_normal();
                ss += (double)x[i] * x[i];
            }
            o[n] = 12345.0f;   // guard: must not be written
            ops->rmsnorm(o, x, w, n, 1e-5f);
            ops_ref()->rmsnorm(r, x, w, n, 1e-5f);
            double inv = 1.0 / sqrt(ss / n + 1e-5);
            for (int i = 0; i < n; i++) {
                double want = x[i] * inv * w[i];
                if (relerr(o[i], want) > EW_TOL || relerr(r[i], want) > EW_TOL)
                    fail_msg("rmsnorm %s n %d i %d: %g / ref %g vs %g", PATHS[pi], n, i, o[i], r[i], want);
            }
            assert_true(o[n] == 12345.0f);
            ops->rmsnorm(x, x, w, n, 1e-5f);   // in place (per-head norms): the same bits
            assert_memory_equal(x, o, sizeof(float) * n);
            free(x); free(w); free(o); free(r);
        }
    }
}

// Both pairings: normal (2i, 2i+1) with rope_table, NeoX (i, i + n_rot/2) with rope_table_neox, and
// a magnitude (YaRN's mscale) other than 1.
static void test_rope(void **state) {
    static const int SHAPES[][2] = {{8, 8}, {64, 64}, {64, 32}, {128, 128}, {48, 46}, {6, 2}, {40, 34}};   // head_dim, n_rot
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (int neox = 0; neox < 2; neox++)
            for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
                const int hd = SHAPES[si][0], nr = SHAPES[si][1], nh = 3, half = nr / 2;
                float inv_freq[64], cs[256], v[3 * 128], r[3 * 128], orig[3 * 128];
                for (int i = 0; i < half; i++) inv_freq[i] = (float)pow(10000.0, -2.0 * i / nr);
                const float pos = (float)(rnd_u32() % 4096), mscale = si % 2 ? 1.0f : 1.25f;
                (neox ? rope_table_neox : rope_table)(cs, nr, inv_freq, pos, mscale);
                for (int i = 0; i < nh * hd; i++) orig[i] = v[i] = r[i] = rnd_normal();
                (neox ? ops->rope_neox : ops->rope)(v, nh, hd, nr, cs);
                (neox ? ops_ref()->rope_neox : ops_ref()->rope)(r, nh, hd, nr, cs);
                for (int h = 0; h < nh; h++)
                    for (int i = 0; i < hd; i++) {
                        const float *o = orig + h * hd;
                        const int pair = neox ? i % half : i / 2;
                        double want, ang = (double)pos * inv_freq[i < nr ? pair : 0];
                        double c = cos(ang) * mscale, sn = sin(ang) * mscale;
                        if (i >= nr) want = o[i];
                        else if (neox) want = i < half ? o[i] * c - o[i + half] * sn : o[i - half] * sn + o[i] * c;
                        else want = i % 2 == 0 ? o[i] * c - o[i + 1] * sn : o[i - 1] * sn + o[i] * c;
                        // cosf/sinf of a large angle carry ~1 ulp of the angle: absolute budget
                        double tol = 1e-6 * mscale * (1 + fabs(ang));
                        if (fabs(v[h * hd + i] - want) > tol || fabs(r[h * hd + i] - want) > tol)
                            fail_msg("rope%s %s hd %d n_rot %d pos %g i %d: %g / ref %g vs %g", neox ? "_neox" : "",
                                     PATHS[pi], hd, nr, pos, i, v[h * hd + i], r[h * hd + i], want);
                    }
            }
    }
}

static void test_swiglu_add(void **state) {
    double worst = 0;
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (size_t si = 0; si < N_SIZES; si++) {
            int n = SIZES[si];
            float *g = malloc(sizeof(float) * (n + 1)), *u = malloc(sizeof(float) * n), *g0 = malloc(sizeof(float) * n);
            float *y = malloc(sizeof(float) * (n + 1));
            assert_true(g && u && g0 && y);
            for (int i = 0; i < n; i++) {
                g0[i] = g[i] = (float)(rnd_unit() * 40.0 - 20.0);   // exp over [-20, 20]
                u[i] = rnd_normal();
                y[i] = rnd_normal();
            }
            g[n] = y[n] = 777.0f;
            ops->swiglu(g, u, n);
            for (int i = 0; i < n; i++) {
                double want = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
                double e = fabs(g[i] - want) / fmax(fabs(want), 1e-30);
                if (e > worst) worst = e;
                if (e > EW_TOL) fail_msg("swiglu %s n %d i %d: g %g -> %g vs %g", PATHS[pi], n, i, g0[i], g[i], want);
            }
            memcpy(g0, y, sizeof(float) * n);
            ops->add(y, u, n);
            for (int i = 0; i < n; i++) assert_true(y[i] == g0[i] + u[i]);   // exact in any order
            assert_true(g[n] == 777.0f && y[n] == 777.0f);
            free(g); free(u); free(g0); free(y);
        }
    }
    printf("swiglu (vector exp): worst relative error %.3g (budget %.1g)\n", worst, EW_TOL);
}

// ops.wsum (the MoE combine): every path has the scalar chain's bits, with and without per-row
// scales, 1..8 rows, sizes straddling the vector widths (zeros of both signs among the values);
// nothing past n written.
static void test_wsum(void **state) {
    enum { K = 8 };
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (size_t si = 0; si < N_SIZES; si++) {
            const int n = SIZES[si];
            float *y = malloc(sizeof(float) * (size_t)n * K), *out = malloc(sizeof(float) * (size_t)(n + 1));
            assert_true(y && out);
            const float *rows[K];
            float w[K], sc[K];
            for (int j = 0; j < K; j++) {
                for (int i = 0; i < n; i++) y[j * n + i] = i % 29 == 3 ? (j & 1 ? -0.0f : 0.0f) : rnd_normal();
                rows[j] = y + j * n;
                w[j] = (float)rnd_unit();
                sc[j] = (float)(rnd_unit() * 4.0);
            }
            for (int k = 1; k <= K; k++)
                for (int with_s = 0; with_s < 2; with_s++) {
                    out[n] = 777.0f;
                    ops->wsum(out, rows, w, with_s ? sc : NULL, k, n);
                    for (int i = 0; i < n; i++) {
                        float o = 0.0f;
                        for (int j = 0; j < k; j++) {
                            const float v = with_s ? (rows[j][i] * sc[j]) * w[j] : rows[j][i] * w[j];
                            o = j ? o + v : v;
                        }
                        if (memcmp(&o, &out[i], sizeof o))
                            fail_msg("wsum %s n %d k %d s %d i %d: %a vs %a", PATHS[pi], n, k, with_s, i, out[i], o);
                    }
                    assert_true(out[n] == 777.0f);
                }
            free(y);
            free(out);
        }
    }
}

// gpt-oss's clamped SwiGLU: every path has kern_swiglu_oai's bits (the AVX-512 one computes libm's
// expf in double lanes). Gates over a sweep of the float range (every 509th bit pattern, both signs:
// e^(-1.702 x) from underflow through overflow) and the edges (+-7, +-0, +-inf, NaN, expf's
// overflow / underflow thresholds over 1.702, subnormals), up values in and around [-7, 7], sizes
// straddling the vector width; one element past the end untouched.
static void test_swiglu_oai(void **state) {
    const int n = 1 << 16;
    float *g = malloc(sizeof(float) * (n + 1)), *r = malloc(sizeof(float) * (n + 1)), *u = malloc(sizeof(float) * n);
    assert_true(g && r && u);
    static const float edge[] = {7.0f, -7.0f, 0x1.bfffffp2f, 0x1.c00002p2f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN,
                                 -NAN, 0x1p-149f, -0x1p-149f, 0x1p-126f, -52.1f, -52.2f, -61.0f, -61.1f, 1e-20f};
    const int n_edge = (int)(sizeof edge / sizeof edge[0]);
    int64_t checked = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += 509ull * (uint64_t)n) {
        for (int i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(b + 509ull * (uint64_t)i);
            float v;
            memcpy(&v, &bits, sizeof v);
            g[i] = i < n_edge ? edge[i] : v;
            u[i] = i % 97 < n_edge ? edge[i % 97 % n_edge] : (float)(rnd_unit() * 20.0 - 10.0);
        }
        for (int pi = 0; pi < N_PATHS; pi++) {
            const tv_ops *ops = ops_for_path(PATHS[pi]);
            if (!ops) continue;
            for (int len = n; len > 0; len = len > 40 ? len - (len >> 1) - 1 : len - 1) {   // 65536, 32767 ... 40, 39 ... 1
                memcpy(r, g, sizeof(float) * (size_t)(n + 1));
                kern_swiglu_oai(r, u, len);
                float *t = malloc(sizeof(float) * (size_t)(n + 1));
                assert_true(t);
                memcpy(t, g, sizeof(float) * (size_t)n);
                t[len] = 777.0f;
                ops->swiglu_oai(t, u, len);
                for (int i = 0; i < len; i++)   // NaN == NaN: a NaN times a NaN keeps either payload
                    if (memcmp(&t[i], &r[i], sizeof(float)) && !(isnan(t[i]) && isnan(r[i])))
                        fail_msg("swiglu_oai %s len %d i %d: g %a u %a -> %a, scalar %a", PATHS[pi], len, i, (double)g[i],
                                 (double)u[i], (double)t[i], (double)r[i]);
                assert_true(t[len] == 777.0f);
                checked += len;
                free(t);
                if (len < n && b > 0) break;   // the short lengths once
            }
        }
    }
    printf("swiglu_oai: %lld elements bit-equal to the scalar on every path\n", (long long)checked);
    free(g); free(r); free(u);
}

// GeGLU (gelu_tanh(g) * u, llama.cpp's f16-table GELU: input and result rounded to f16) and
// soft-capping (cap * tanh(y / cap)) on every path against a double oracle and against the scalar
// twin, over sizes straddling the vector widths. Relative errors, |want| floor 1e-3 as EW_TOL; GeGLU
// within one f16 step of the oracle's gelu of the f16 input (GELU_F16_TOL: the rounding of a result
// that lies within float error of an f16 midpoint may go either way), and on all but 1% of
// elements the same bits as the scalar twin.
#define GELU_F16_TOL 1.0e-3
static void test_geglu_softcap(void **state) {
    double worst_g = 0, worst_c = 0;
    for (int pi = 0; pi < N_PATHS; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        for (size_t si = 0; si < N_SIZES; si++) {
            const int n = SIZES[si];
            float *g = malloc(sizeof(float) * (n + 1)), *gr = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
            float *g0 = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * (n + 1)), *yr = malloc(sizeof(float) * n);
            float *y0 = malloc(sizeof(float) * n);
            assert_true(g && gr && u && g0 && y && yr && y0);
            for (int i = 0; i < n; i++) {
                g0[i] = g[i] = gr[i] = (float)(rnd_unit() * 24.0 - 12.0);   // the tanh argument over [-190, 190]
                u[i] = rnd_normal();
                // logits: mostly small (the polynomial branch), some large (saturated)
                y0[i] = y[i] = yr[i] = (float)(rnd_normal() * (i % 3 ? 20.0 : 200.0));
            }
            g[n] = y[n] = 777.0f;
            ops->geglu(g, u, n);
            ops_ref()->geglu(gr, u, n);
            const float cap = 30.0f;
            ops->softcap(y, n, cap);
            ops_ref()->softcap(yr, n, cap);
            int n_diff = 0;
            for (int i = 0; i < n; i++) {   // oracle: 0.5 x (1 + tanh z) = x / (1 + e^-2z), no cancellation
                const double x = f16_to_f32(f32_to_f16(g0[i])), z = 0.7978845608028654 * (x + 0.044715 * x * x * x);
                const double gelu = g0[i] <= -10.0f ? 0 : g0[i] >= 10.0f ? g0[i] : x / (1.0 + exp(-2.0 * z));
                const double want = gelu * u[i], floor = fmax(fabs(want), 1e-3);
                const double e = fabs(g[i] - want) / floor, er = fabs(g[i] - gr[i]) / floor;
                if (e > worst_g) worst_g = e;
                n_diff += g[i] != gr[i];
                if (e > GELU_F16_TOL || er > 2 * GELU_F16_TOL)
                    fail_msg("geglu %s n %d i %d: g %g -> %g / ref %g vs %g", PATHS[pi], n, i, g0[i], g[i], gr[i], want);
                const double wc = cap * tanh((double)y0[i] / cap), fc = fmax(fabs(wc), 1e-3);
                const double ec = fabs(y[i] - wc) / fc, ecr = fabs(y[i] - yr[i]) / fc;
                if (ec > worst_c) worst_c = ec;
                if (ec > EW_TOL || ecr > 2 * EW_TOL)
                    fail_msg("softcap %s n %d i %d: y %g -> %g / ref %g vs %g", PATHS[pi], n, i, y0[i], y[i], yr[i], wc);
            }
            if (n_diff * 100 > n) fail_msg("geglu %s n %d: %d of the elements differ from the scalar twin", PATHS[pi], n, n_diff);
            assert_true(g[n] == 777.0f && y[n] == 777.0f);
            free(g); free(gr); free(u); free(g0); free(y); free(yr); free(y0);
        }
    }
    printf("geglu: worst relative error %.3g (budget %.1g), softcap %.3g (budget %.1g)\n", worst_g, GELU_F16_TOL, worst_c,
           EW_TOL);
}

int main(void) {
    test_rng_seed(0x2545F4914F6CDD1Dull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu_add),
        cmocka_unit_test(test_wsum),
        cmocka_unit_test(test_swiglu_oai),
        cmocka_unit_test(test_geglu_softcap),
        cmocka_unit_test(test_attention_rejects_bad_geometry),
        cmocka_unit_test(test_attention_geometries),
        cmocka_unit_test(test_attention_long),
        cmocka_unit_test(test_attention_chunk_rows),
        cmocka_unit_test(test_attention_window),
        cmocka_unit_test(test_attention_softcap),
    };
    return cmocka_run_group_tests(tests, setup_pools, teardown_pools);
}
