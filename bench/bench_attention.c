// bench_attention.c — attention time per token for a TinyLlama-shaped model (32 heads, 4 KV heads,
// head dim 64, 22 layers, f16 paged KV, block 16): decode at context 512 / 2048 and a 512-token
// prefill, for the pre-kernel scalar loop ("before", the forward pass's former att_worker), the
// scalar twin ("generic") and the active SIMD path, at 1 and 2 threads.
// Prints median wall time and median process CPU time over the repetitions, and what the fast
// path achieves against the machine's 1-thread limits (kernels/roofline.h): decode as KV GB/s read,
// prefill as attention GFLOP/s (QK and PV: 4 flops per query-key-dim).
//
// Not built by CMake (the bench target list is not ours); build against a build dir's library:
//   cc -O2 -std=c17 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_attention.c build-att/libtinyvllm_core.a
//      -lm -lpthread -o build-att/bench_attention && build-att/bench_attention [reps [fast|all [mode]]]
// (mode: only the modes whose name contains it, e.g. "decode"). On a shared machine compare the
// cpu ms column (process CPU time) of repeated runs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/roofline.h"

enum { N_LAYERS = 22, N_HEADS = 32, N_KV = 4, HD = 64, BS = 16, MAX_CTX = 2048 };

typedef struct bench {
    tv_attn_geom g;
    tv_f16 *k[N_LAYERS], *v[N_LAYERS];   // (n_blocks, N_KV, BS, HD) each
    int32_t bt[MAX_CTX / BS];
    float *q, *out;                      // (512, N_HEADS*HD)
    int32_t pos[512];
} bench;

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- "before": the forward pass's attention before the kernel (scalar, per (token, head), one
// pass over the blocks with an online softmax, f16 converted element by element per head).
typedef struct old_args {
    const bench *b;
    int layer, n_q;
    float *scratch;   // (nth, BS + 2*HD)
} old_args;

static void old_worker(void *arg, int ith, int nth) {
    old_args *a = arg;
    const bench *b = a->b;
    const int group = N_HEADS / N_KV;
    const float scale = 1.0f / sqrtf((float)HD);
    float *scores = a->scratch + (size_t)ith * (BS + 2 * HD), *krow = scores + BS, *vrow = krow + HD;
    const int64_t n_items = (int64_t)a->n_q * N_HEADS, per = (n_items + nth - 1) / nth;
    const int64_t i0 = per * ith, i1 = i0 + per < n_items ? i0 + per : n_items;
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / N_HEADS), head = (int)(it % N_HEADS), kvh = head / group;
        const int32_t pos = b->pos[t];
        const float *qv = b->q + (size_t)t * N_HEADS * HD + (size_t)head * HD;
        float *out = b->out + (size_t)t * N_HEADS * HD + (size_t)head * HD;
        float mx = -INFINITY, l = 0;
        memset(out, 0, HD * sizeof(float));
        for (int blk = 0; blk <= pos / BS; blk++) {
            const int n = (blk + 1) * BS <= pos + 1 ? BS : pos + 1 - blk * BS;
            float bm = -INFINITY;
            for (int j = 0; j < n; j++) {
                const tv_f16 *k16 = b->k[a->layer] + (((size_t)b->bt[blk] * N_KV + kvh) * BS + j) * HD;
                for (int d = 0; d < HD; d++) krow[d] = f16_to_f32(k16[d]);
                float dot = 0;
                for (int d = 0; d < HD; d++) dot += qv[d] * krow[d];
                scores[j] = dot * scale;
                if (scores[j] > bm) bm = scores[j];
            }
            const float new_mx = bm > mx ? bm : mx, corr = expf(mx - new_mx);
            l *= corr;
            for (int d = 0; d < HD; d++) out[d] *= corr;
            for (int j = 0; j < n; j++) {
                const float e = expf(scores[j] - new_mx);
                l += e;
                const tv_f16 *v16 = b->v[a->layer] + (((size_t)b->bt[blk] * N_KV + kvh) * BS + j) * HD;
                for (int d = 0; d < HD; d++) vrow[d] = f16_to_f32(v16[d]);
                for (int d = 0; d < HD; d++) out[d] += e * vrow[d];
            }
            mx = new_mx;
        }
        for (int d = 0; d < HD; d++) out[d] *= 1.0f / l;
    }
}

// One "token step": all layers' attention for n_q queries ending at position ctx-1.
static void step(bench *b, const tv_ops *ops, int n_q, int ctx, tv_pool *pool, tv_attn_ws *ws, float *scratch) {
    for (int t = 0; t < n_q; t++) b->pos[t] = ctx - n_q + t;
    tv_attn_seq seq = {.n_q = n_q, .q = b->q, .out = b->out, .pos = b->pos, .block_table = b->bt};
    for (int l = 0; l < N_LAYERS; l++) {
        if (!ops) {
            old_args a = {b, l, n_q, scratch};
            pool_run(pool, old_worker, &a);
            continue;
        }
        tv_attn_args a = {.ops = ops, .geom = b->g, .k_pool = b->k[l], .v_pool = b->v[l], .n_seqs = 1, .seqs = &seq};
        tv_error err;
        if (attn_run(&a, ws, pool, &err)) {
            fprintf(stderr, "bench_attention: %s\n", err.msg);
            exit(1);
        }
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    const bool fast_only = argc > 2 && !strcmp(argv[2], "fast");   // skip the scalar baselines
    const char *only = argc > 3 ? argv[3] : NULL;                     // run the modes whose name contains this
    if (reps < 1 || reps > 1000) reps = 7;
    static bench b;
    b.g = (tv_attn_geom){.n_heads = N_HEADS, .n_kv_heads = N_KV, .head_dim = HD, .block_size = BS,
                         .scale = 1.0f / sqrtf((float)HD)};
    const size_t n_blocks = MAX_CTX / BS, pool_elems = n_blocks * N_KV * BS * HD;
    srand(1);
    for (int l = 0; l < N_LAYERS; l++) {
        b.k[l] = malloc(pool_elems * sizeof(tv_f16));
        b.v[l] = malloc(pool_elems * sizeof(tv_f16));
        if (!b.k[l] || !b.v[l]) return 1;
        for (size_t i = 0; i < pool_elems; i++) {
            b.k[l][i] = f32_to_f16((float)((double)rand() / RAND_MAX - 0.5));
            b.v[l][i] = f32_to_f16((float)((double)rand() / RAND_MAX - 0.5));
        }
    }
    for (int i = 0; i < (int)n_blocks; i++) b.bt[i] = (int32_t)((i * 37) % n_blocks);   // scattered blocks
    b.q = malloc(sizeof(float) * 512 * N_HEADS * HD);
    b.out = malloc(sizeof(float) * 512 * N_HEADS * HD);
    float *scratch = malloc(sizeof(float) * 4 * (BS + 2 * HD));
    if (!b.q || !b.out || !scratch) return 1;
    for (size_t i = 0; i < (size_t)512 * N_HEADS * HD; i++) b.q[i] = (float)((double)rand() / RAND_MAX - 0.5);
    tv_attn_ws *ws = attn_ws_create(NULL);
    kern_table kt;   // the best path, or $TINYVLLM_CPU's
    tv_error kerr;
    if (kern_table_init(&kt, getenv("TINYVLLM_CPU"), &kerr)) {
        fprintf(stderr, "bench_attention: %s\n", kerr.msg);
        return 1;
    }
    const tv_ops *fast = kt.ops;
    struct { const char *name; const tv_ops *ops; } impls[] = {{"before", NULL}, {"generic", ops_ref()},
                                                                {fast->name, fast}};
    struct { const char *name; int n_q, ctx; } modes[] = {{"decode ctx 512", 1, 512}, {"decode ctx 2048", 1, 2048},
                                                           {"prefill 512", 512, 512}};
    printf("TinyLlama attention (22 layers, 32/4 heads, hd 64, f16 KV, block 16), kernel path %s, %d reps\n",
           kt.path, reps);
    tv_roofline roof = {0};
    if (tv_roofline_measure(1, &roof, NULL) == TV_OK)
        printf("1-thread limits: %.1f GB/s read, %.0f GFLOP/s fp32 (%s)\n", roof.mem_bw_gbs, roof.fp32_gflops, roof.isa);
    printf("%-16s %-8s %3s %12s %12s %14s\n", "mode", "impl", "thr", "wall ms", "cpu ms", "achieved");
    double *wall = malloc(sizeof(double) * reps), *cpu = malloc(sizeof(double) * reps);
    for (int nth = 1; nth <= 2; nth++) {
        tv_pool *pool = pool_create(nth, NULL);
        for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++)
            for (size_t ii = fast_only ? 2 : 0; ii < sizeof impls / sizeof impls[0]; ii++) {
                if (only && !strstr(modes[mi].name, only)) continue;
                // the scalar prefills take seconds to a minute: one run, no warm-up
                const bool slow = modes[mi].n_q > 1 && ii < 2;
                const int r = slow ? 1 : reps;
                if (!slow) step(&b, impls[ii].ops, modes[mi].n_q, modes[mi].ctx, pool, ws, scratch);   // warm-up
                for (int i = 0; i < r; i++) {
                    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
                    step(&b, impls[ii].ops, modes[mi].n_q, modes[mi].ctx, pool, ws, scratch);
                    wall[i] = 1e3 * (now(CLOCK_MONOTONIC) - w0);
                    cpu[i] = 1e3 * (now(CLOCK_PROCESS_CPUTIME_ID) - c0);
                }
                qsort(wall, (size_t)r, sizeof(double), cmp_double);
                qsort(cpu, (size_t)r, sizeof(double), cmp_double);
                const double w = wall[r / 2];
                char ach[64] = "";
                if (modes[mi].n_q == 1) {   // KV bytes read per token
                    double gbs = (double)N_LAYERS * modes[mi].ctx * N_KV * HD * 2 * 2 / (w * 1e-3) / 1e9;
                    snprintf(ach, sizeof ach, "%.1f GB/s", gbs);
                    if (roof.mem_bw_gbs > 0) snprintf(ach + strlen(ach), sizeof ach - strlen(ach), " (%.0f%%)", 100 * gbs / roof.mem_bw_gbs);
                } else {
                    double pairs = (double)modes[mi].n_q * (modes[mi].n_q + 1) / 2;   // causal (query, key) pairs
                    double gf = (double)N_LAYERS * N_HEADS * pairs * HD * 4 / (w * 1e-3) / 1e9;
                    snprintf(ach, sizeof ach, "%.1f GFLOP/s", gf);
                    if (roof.fp32_gflops > 0) snprintf(ach + strlen(ach), sizeof ach - strlen(ach), " (%.0f%%)", 100 * gf / roof.fp32_gflops);
                }
                printf("%-16s %-8s %3d %12.3f %12.3f %14s\n", modes[mi].name, impls[ii].name, nth, w, cpu[r / 2], ach);
                fflush(stdout);
            }
        pool_free(pool);
    }
    free(wall);
    free(cpu);
    attn_ws_free(ws);
    return 0;
}
