// test_deltanet.c — the Gated DeltaNet kernels (kernels/deltanet.h): every path's chunked kernel
// (generic, avx2, avx512 where this CPU has them), over lengths that straddle chunks and vector
// widths, against the scalar token-by-token reference ref_gdn_head: outputs and the effective state
// agree within 2e-5 relative to their scale (float rounding of a different summation order; a wrong
// term is off by O(1)); and the same tokens in calls of 1, 3, 16, 32 or 33 give the same bits as one
// call (the chunks follow absolute positions). Also: the conv
// window carries across calls (one call of n tokens = calls of any split).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/deltanet.h"
#include "kernels/kernels.h"
#include "test_util.h"

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static float frand(void) {   // uniform [-1, 1)
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(g_rng >> 40) / 8388608.0f - 1.0f;
}

typedef struct inputs {
    kern_gdn_geom g;
    int n;
    float *qkv, *alpha, *beta, *dt, *a, *state0;
} inputs;

// Random conv outputs (q, k l2-normed by ref_gdn_conv), projections and gates; decay_scale scales
// a (larger: faster forgetting); is_k_grouped: qwen3next's value-to-key head mapping, else qwen35's.
static void make_inputs(inputs *in, int head_dim, int n, float decay_scale, bool is_k_grouped) {
    in->g = (kern_gdn_geom){.n_k_heads = 2, .n_v_heads = 4, .head_dim = head_dim, .d_conv = 4, .eps = 1e-6f,
                            .is_k_grouped = is_k_grouped};
    in->n = n;
    const int cd = kern_gdn_conv_dim(&in->g), H = in->g.n_v_heads;
    in->qkv = malloc((size_t)n * cd * sizeof(float));
    in->alpha = malloc((size_t)n * H * sizeof(float));
    in->beta = malloc((size_t)n * H * sizeof(float));
    in->dt = malloc((size_t)H * sizeof(float));
    in->a = malloc((size_t)H * sizeof(float));
    in->state0 = malloc((size_t)H * head_dim * head_dim * sizeof(float));
    float *w = malloc((size_t)cd * 4 * sizeof(float)), *win = calloc((size_t)3 * cd, sizeof(float));
    assert_true(in->qkv && in->alpha && in->beta && in->dt && in->a && in->state0 && w && win);
    for (int i = 0; i < n * cd; i++) in->qkv[i] = 2 * frand();
    for (int i = 0; i < cd * 4; i++) w[i] = 0.6f * frand();
    ref_gdn_conv(&in->g, win, w, in->qkv, n);
    for (int i = 0; i < n * H; i++) { in->alpha[i] = 1.5f * frand(); in->beta[i] = 1.5f * frand(); }
    for (int h = 0; h < H; h++) { in->dt[h] = -2 + frand(); in->a[h] = -decay_scale * (0.275f + 0.225f * frand()); }
    for (int i = 0; i < H * head_dim * head_dim; i++) in->state0[i] = 0.3f * frand();
    free(w);
    free(win);
}

static void free_inputs(inputs *in) {
    free(in->qkv);
    free(in->alpha);
    free(in->beta);
    free(in->dt);
    free(in->a);
    free(in->state0);
}

// max |x - y| / max(1, max |y|)
static double rel_err(const float *x, const float *y, size_t n) {
    double e = 0, m = 1;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)x[i] - y[i]));
        m = fmax(m, fabs((double)y[i]));
    }
    return e / m;
}

// The matrix state a head's kernel state stands for after n tokens from position 0 (deltanet.h:
// S_eff = e^g[m-1] S + sum_{s<m} e^(g[m-1] - g[s]) d_s k_sᵀ, m = n % C), in double.
static void effective_state(const float *st, int d, int n, float *out) {
    const int m = n % KERN_GDN_CHUNK;
    const float *S = st, *k = st + (size_t)d * d, *dl = k + (size_t)KERN_GDN_CHUNK * d, *g = dl + (size_t)KERN_GDN_CHUNK * d;
    for (int j = 0; j < d; j++)
        for (int i = 0; i < d; i++) {
            double x = S[(size_t)i * d + j];   // stored transposed
            if (m > 0) {
                x *= exp((double)g[m - 1]);
                for (int s = 0; s < m; s++)
                    x += exp((double)g[m - 1] - g[s]) * dl[(size_t)s * d + j] * k[(size_t)s * d + i];
            }
            out[(size_t)j * d + i] = (float)x;
        }
}

// Runs every value head over the n tokens from position 0 in calls of `piece` tokens (0: one call).
static void run_split(const kern_gdn_ops *ops, const inputs *in, float *st, float *o, int piece) {
    const int d = in->g.head_dim, H = in->g.n_v_heads, cd = kern_gdn_conv_dim(&in->g);
    const size_t hf = kern_gdn_head_floats(d);
    for (int h = 0; h < H; h++) {
        memset(st + (size_t)h * hf, 0, hf * sizeof(float));
        for (int j = 0; j < d; j++)   // the reference's S[j][i] is the kernel's S[i][j]
            for (int i = 0; i < d; i++) st[(size_t)h * hf + (size_t)i * d + j] = in->state0[(size_t)h * d * d + (size_t)j * d + i];
        for (int t = 0; t < in->n;) {
            const int c = piece == 0 || in->n - t < piece ? in->n - t : piece;
            ops->head(&in->g, h, st + (size_t)h * hf, t, in->qkv + (size_t)t * cd, in->alpha + (size_t)t * H,
                      in->beta + (size_t)t * H, in->dt, in->a, o + (size_t)t * H * d, c);
            t += c;
        }
    }
}

static void check_path(const char *path, bool is_k_grouped) {
    const kern_gdn_ops *ops = kern_gdn_ops_for(path);
    static const int HEADS[] = {32, 40, 128}, LENS[] = {1, 2, 7, 33, 70};
    static const int PIECES[] = {1, 3, 16, KERN_GDN_CHUNK, KERN_GDN_CHUNK + 1};
    static const float DECAYS[] = {1.0f, 8.0f};
    double worst = 0;
    for (size_t hi = 0; hi < sizeof HEADS / sizeof HEADS[0]; hi++)
        for (size_t li = 0; li < sizeof LENS / sizeof LENS[0]; li++)
            for (size_t di = 0; di < sizeof DECAYS / sizeof DECAYS[0]; di++) {
                inputs in;
                make_inputs(&in, HEADS[hi], LENS[li], DECAYS[di], is_k_grouped);
                const int d = HEADS[hi], n = LENS[li], H = in.g.n_v_heads;
                const size_t ss = (size_t)H * d * d, os = (size_t)n * H * d, ks = (size_t)H * kern_gdn_head_floats(d);
                float *s_ref = malloc(ss * sizeof(float)), *s_eff = malloc(ss * sizeof(float));
                float *st = malloc(ks * sizeof(float)), *st_split = malloc(ks * sizeof(float));
                float *o_ref = calloc(os, sizeof(float)), *o = calloc(os, sizeof(float));
                float *o_split = calloc(os, sizeof(float));
                assert_true(s_ref && s_eff && st && st_split && o_ref && o && o_split);
                memcpy(s_ref, in.state0, ss * sizeof(float));
                for (int h = 0; h < H; h++)
                    ref_gdn_head(&in.g, h, s_ref + (size_t)h * d * d, in.qkv, in.alpha, in.beta, in.dt, in.a, o_ref, n);
                run_split(ops, &in, st, o, 0);
                for (int h = 0; h < H; h++)
                    effective_state(st + (size_t)h * kern_gdn_head_floats(d), d, n, s_eff + (size_t)h * d * d);
                const double es = rel_err(s_eff, s_ref, ss), eo = rel_err(o, o_ref, os);
                if (es > 2e-5 || eo > 2e-5)
                    fail_msg("%s%s: head %d, %d tokens, decay x%g: state error %.3g, output error %.3g", ops->name,
                             is_k_grouped ? " (grouped heads)" : "", d, n, (double)DECAYS[di], es, eo);
                worst = fmax(worst, fmax(es, eo));
                // any split into calls: the same bits (outputs and the whole state, pending lists too)
                for (size_t pi = 0; pi < sizeof PIECES / sizeof PIECES[0]; pi++) {
                    memset(o_split, 0, os * sizeof(float));
                    run_split(ops, &in, st_split, o_split, PIECES[pi]);
                    if (memcmp(o, o_split, os * sizeof(float)) || memcmp(st, st_split, ks * sizeof(float)))
                        fail_msg("%s: head %d, %d tokens in calls of %d differ from one call", ops->name, d, n,
                                 PIECES[pi]);
                }
                free(s_ref);
                free(s_eff);
                free(st);
                free(st_split);
                free(o_ref);
                free(o);
                free(o_split);
                free_inputs(&in);
            }
    print_message("deltanet: %s (asked %s)%s worst relative error %.3g\n", ops->name, path,
                  is_k_grouped ? " grouped heads" : "", worst);
}

static void test_paths_against_reference(void **state) {
    (void)state;
    static const char *const PATHS[] = {"generic", "avx2", "avx512"};
    for (size_t i = 0; i < sizeof PATHS / sizeof PATHS[0]; i++) {
        kern_table kt;
        tv_error err = {0};
        if (kern_table_init(&kt, PATHS[i], &err)) {
            print_message("deltanet: path %s not on this CPU: %s\n", PATHS[i], err.msg);
            continue;
        }
        check_path(PATHS[i], false);
        check_path(PATHS[i], true);
    }
}

// The two head mappings: value head 1 of 4 over 2 key heads reads key head 1 when tiled (qwen35)
// and key head 0 when grouped (qwen3next); the kernel follows the mapping (head 1's output with
// the grouped mapping equals the tiled run's on inputs whose two key heads are swapped).
static void test_head_mappings(void **state) {
    (void)state;
    kern_gdn_geom g = {.n_k_heads = 2, .n_v_heads = 4, .head_dim = 8, .d_conv = 4, .eps = 1e-6f};
    assert_int_equal(kern_gdn_k_head(&g, 1), 1);
    assert_int_equal(kern_gdn_k_head(&g, 2), 0);
    g.is_k_grouped = true;
    assert_int_equal(kern_gdn_k_head(&g, 1), 0);
    assert_int_equal(kern_gdn_k_head(&g, 2), 1);
    inputs in;
    make_inputs(&in, 8, 5, 1.0f, true);
    const int d = 8, n = 5, cd = kern_gdn_conv_dim(&in.g);
    float *swapped = malloc((size_t)n * cd * sizeof(float));
    float s_a[64], s_b[64], o_a[5 * 32] = {0}, o_b[5 * 32] = {0};
    assert_non_null(swapped);
    memcpy(swapped, in.qkv, (size_t)n * cd * sizeof(float));
    for (int t = 0; t < n; t++)   // swap key heads 0 and 1 of q and of k
        for (int part = 0; part < 2; part++) {
            float *row = swapped + (size_t)t * cd + (size_t)part * 2 * d;
            for (int i = 0; i < d; i++) {
                const float x = row[i];
                row[i] = row[d + i];
                row[d + i] = x;
            }
        }
    memcpy(s_a, in.state0 + (size_t)d * d, sizeof s_a);
    memcpy(s_b, in.state0 + (size_t)d * d, sizeof s_b);
    ref_gdn_head(&in.g, 1, s_a, in.qkv, in.alpha, in.beta, in.dt, in.a, o_a, n);
    in.g.is_k_grouped = false;
    ref_gdn_head(&in.g, 1, s_b, swapped, in.alpha, in.beta, in.dt, in.a, o_b, n);
    assert_memory_equal(o_a, o_b, sizeof o_a);
    assert_memory_equal(s_a, s_b, sizeof s_a);
    memcpy(s_b, in.state0 + (size_t)d * d, sizeof s_b);   // the tiled mapping on the same inputs: differs
    ref_gdn_head(&in.g, 1, s_b, in.qkv, in.alpha, in.beta, in.dt, in.a, o_b, n);
    assert_true(memcmp(o_a, o_b, sizeof o_a) != 0);
    free(swapped);
    free_inputs(&in);
}

// The conv window: one call over n tokens equals calls over any split of them (bit for bit: the
// same products in the same order).
static void test_conv_window_carries(void **state) {
    (void)state;
    const kern_gdn_geom g = {.n_k_heads = 1, .n_v_heads = 2, .head_dim = 8, .d_conv = 4, .eps = 1e-6f};
    const int cd = kern_gdn_conv_dim(&g), n = 11;
    float x[11 * 32], whole[11 * 32], w[32 * 4], win_a[3 * 32] = {0}, win_b[3 * 32] = {0};
    for (int i = 0; i < n * cd; i++) x[i] = frand();
    for (int i = 0; i < cd * 4; i++) w[i] = frand();
    memcpy(whole, x, sizeof whole);
    ref_gdn_conv(&g, win_a, w, whole, n);
    static const int SPLIT[] = {1, 2, 5, 3};   // 11 tokens
    float part[11 * 32];
    memcpy(part, x, sizeof part);
    for (int i = 0, t = 0; i < 4; t += SPLIT[i++]) ref_gdn_conv(&g, win_b, w, part + (size_t)t * cd, SPLIT[i]);
    assert_memory_equal(whole, part, sizeof whole);
    assert_memory_equal(win_a, win_b, sizeof win_a);
    // the window holds the last 3 raw inputs
    assert_memory_equal(win_a, x + (size_t)(n - 3) * cd, sizeof win_a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_against_reference),
        cmocka_unit_test(test_conv_window_carries),
        cmocka_unit_test(test_head_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
