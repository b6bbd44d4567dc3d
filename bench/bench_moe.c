// bench_moe.c — decode of one mixture-of-experts FFN against a dense matmul reading the same bytes.
//
//   bench_moe [threads] [type] [layers] [tokens] [skew]   defaults: 2 Q8_0 4 1 0
//
// tokens > 1 (prefill): that many tokens, each routed to 8 random distinct experts, through the
// experts FFN; prints the median and best time and GOPS (no dense comparison). skew s > 0 picks
// expert e with probability ~ 1 / (e + 1)^s (a few popular experts, many picked by a few tokens, as
// a random-weights model's deeper layers route; 0: uniform).
//
// Qwen3-30B-A3B's expert shape (dim 2048, expert FFN 768, 64 experts, top-8), packed as the model
// loads it. Each step picks a layer (round robin over `layers` copies, 320 MB each at Q8_0, so reads
// come from DRAM) and runs, interleaved:
//   experts  one token through 8 random distinct experts: gate+up (kern_matmul_experts, fused
//            SwiGLU), then down: what a decode step of the model runs per layer
//   dense    kern_matmul_n of gate and up over 8 consecutive experts as one (6144, 2048) matrix,
//            then down over them as one (16384, 768) matrix: the same bytes, one stream each
// Prints the median, 10th-percentile and best time of each and GB/s of weight bytes read.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

enum { DIM = 2048, FF = 768, N_EXPERT = 64, N_USED = 8, STEPS = 200 };

// BENCH_CPUTIME=1 with 1 thread: process CPU time (factors out preemption on a shared machine)
static clockid_t g_clock = CLOCK_MONOTONIC;
static double now_s(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned lcg(unsigned *s) { return *s = *s * 1664525u + 1013904223u; }

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// A packed (cols, rows, N_EXPERT) expert tensor of random weights (one expert quantized, copied).
static void *make_experts(const kern_table *kt, tv_type t, int64_t cols, int64_t rows, unsigned seed) {
    const tv_type_traits *tt = kern_traits(kt, t);
    const size_t rs = kern_row_size(t, cols), eb = rs * (size_t)rows;
    float *f = malloc(sizeof(float) * (size_t)cols);
    unsigned char *q = malloc(eb * N_EXPERT), *p = aligned_alloc(64, eb * N_EXPERT);
    if (!f || !q || !p) return NULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) f[i] = ((float)(lcg(&seed) >> 8) / 16777216.0f - 0.5f) * 2.0f;
        tt->from_float(f, q + (size_t)r * rs, cols);
    }
    for (int e = 1; e < N_EXPERT; e++) memcpy(q + (size_t)e * eb, q, eb);
    tt->repack(q, rs, cols, rows * N_EXPERT, p);
    free(f);
    free(q);
    return p;
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? atoi(argv[1]) : 2, n_layers = argc > 3 ? atoi(argv[3]) : 4;
    const int n_tok = argc > 4 ? atoi(argv[4]) : 1;
    const double skew = argc > 5 ? atof(argv[5]) : 0.0;
    double cdf[N_EXPERT], acc = 0;   // expert popularity
    for (int e = 0; e < N_EXPERT; e++) cdf[e] = acc += pow(e + 1.0, -skew);
    tv_type t = TV_TYPE_Q8_0;
    if (argc > 2 && !kern_type_from_name(argv[2], &t)) { fprintf(stderr, "bench_moe: unknown type %s\n", argv[2]); return 1; }
    if (getenv("BENCH_CPUTIME") && nth == 1) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    tv_error err = {0};
    kern_table kt;
    if (kern_table_init(&kt, getenv("TINYVLLM_CPU"), &err) != TV_OK) { fprintf(stderr, "bench_moe: %s\n", err.msg); return 1; }
    const tv_type_traits *tt = kern_traits(&kt, t);
    if (n_tok < 1 || n_tok > 4096 || n_layers < 1) {
        fprintf(stderr, "bench_moe: bad layers %d or tokens %d\n", n_layers, n_tok);
        return 1;
    }
    if (!tt || !tt->repack || packed_size(t, DIM, FF) == 0) {
        fprintf(stderr, "bench_moe: %s has no packed layout\n", tt ? tt->name : "?");
        return 1;
    }
    tv_pool *pool = pool_create(nth, &err);
    if (!pool) { fprintf(stderr, "bench_moe: %s\n", err.msg); return 1; }
    const size_t gu_bytes = kern_row_size(t, DIM) * FF, d_bytes = kern_row_size(t, FF) * DIM;   // one expert
    void **gate = calloc((size_t)n_layers, sizeof *gate), **up = calloc((size_t)n_layers, sizeof *up),
         **down = calloc((size_t)n_layers, sizeof *down);
    for (int l = 0; l < n_layers; l++) {
        gate[l] = make_experts(&kt, t, DIM, FF, 7u + (unsigned)l);
        up[l] = make_experts(&kt, t, DIM, FF, 11u + (unsigned)l);
        down[l] = make_experts(&kt, t, FF, DIM, 13u + (unsigned)l);
        if (!gate[l] || !up[l] || !down[l]) { fprintf(stderr, "bench_moe: out of memory\n"); return 1; }
    }
    const size_t n_rows = (size_t)n_tok * N_USED;
    float *x = malloc(sizeof(float) * DIM * (size_t)n_tok), *g = malloc(sizeof(float) * n_rows * FF * 2),
          *u = malloc(sizeof(float) * n_rows * FF * 2), *y = malloc(sizeof(float) * n_rows * DIM * 2);
    unsigned seed = 3;
    for (int i = 0; i < DIM * n_tok; i++) x[i] = ((float)(lcg(&seed) >> 8) / 16777216.0f - 0.5f) * 2.0f;
    size_t ws = kern_matmul_experts_wsize(t, FF, (int64_t)n_rows, (int64_t)n_rows),
           ws2 = kern_matmul_experts_wsize(t, DIM, n_tok, (int64_t)n_rows);
    if (ws2 > ws) ws = ws2;
    ws2 = kern_matmul_wsize(t, FF, N_USED * 2);
    if (ws2 > ws) ws = ws2;
    void *wsp = malloc(ws);
    double *te = malloc(sizeof(double) * STEPS), *td = malloc(sizeof(double) * STEPS), *tgu = malloc(sizeof(double) * STEPS);
    int32_t *x_row = malloc(sizeof(int32_t) * n_rows), off[N_EXPERT + 1];
    const size_t step_bytes = (size_t)N_USED * (2 * gu_bytes + d_bytes);
    const int steps = n_tok > 64 ? 20 : n_tok > 1 ? 100 : STEPS;
    double active_bytes = 0;   // weight bytes of the experts a step routes to, summed over steps
    for (int s = 0; s < steps; s++) {
        const int l = s % n_layers;
        // each token's experts: 8 distinct random ids, rows grouped by expert in token order
        int32_t cnt[N_EXPERT] = {0};
        uint8_t *pick = calloc(n_rows, 1);
        for (int tk = 0; tk < n_tok; tk++) {
            bool used[N_EXPERT] = {false};
            for (int k = 0; k < N_USED;) {
                const double r = (double)(lcg(&seed) >> 8) / 16777216.0 * acc;
                int e = 0;
                while (e < N_EXPERT - 1 && cdf[e] <= r) e++;
                if (!used[e]) { used[e] = true; pick[tk * N_USED + k++] = (uint8_t)e; cnt[e]++; }
            }
        }
        off[0] = 0;
        for (int e = 0; e < N_EXPERT; e++) {
            off[e + 1] = off[e] + cnt[e];
            if (cnt[e]) active_bytes += (double)(2 * gu_bytes + d_bytes);
        }
        int32_t cur[N_EXPERT];
        memcpy(cur, off, sizeof cur);
        for (size_t i = 0; i < n_rows; i++) x_row[cur[pick[i]]++] = (int32_t)(i / N_USED);
        free(pick);
        tv_tensor tg = {.name = "g", .type = t, .n_dims = 3, .ne = {DIM, FF, N_EXPERT, 1}, .nbytes = gu_bytes * N_EXPERT,
                        .packed = true, .data = gate[l]};
        tv_tensor tu = tg, td3 = {.name = "d", .type = t, .n_dims = 3, .ne = {FF, DIM, N_EXPERT, 1},
                                  .nbytes = d_bytes * N_EXPERT, .packed = true, .data = down[l]};
        tu.data = up[l];
        const tv_tensor *gu[] = {&tg, &tu};
        float *const gu_y[] = {g, u};
        double t0 = now_s();
        kern_matmul_experts(&kt, gu, NULL, gu_y, 2, kt.ops->swiglu, x, n_tok, x_row, off, wsp, pool);
        tgu[s] = now_s() - t0;
        const tv_tensor *dw = &td3;
        kern_matmul_experts(&kt, &dw, NULL, &y, 1, NULL, g, (int64_t)n_rows, NULL, off, wsp, pool);
        te[s] = now_s() - t0;
        if (n_tok > 1) continue;
        // dense: 8 consecutive experts of the other half of the ids, as plain matrices
        const int e0 = (int)(lcg(&seed) >> 8) % (N_EXPERT - N_USED + 1);
        tv_tensor dg = {.name = "g", .type = t, .n_dims = 2, .ne = {DIM, FF * N_USED, 1, 1}, .nbytes = gu_bytes * N_USED,
                        .packed = true, .data = (char *)gate[l] + (size_t)e0 * gu_bytes};
        tv_tensor du = dg, dd = {.name = "d", .type = t, .n_dims = 2, .ne = {FF, DIM * N_USED, 1, 1},
                                 .nbytes = d_bytes * N_USED, .packed = true, .data = (char *)down[l] + (size_t)e0 * d_bytes};
        du.data = (char *)up[l] + (size_t)e0 * gu_bytes;
        const tv_tensor *dgu[] = {&dg, &du};
        t0 = now_s();
        kern_matmul_n(&kt, dgu, gu_y, 2, x, 1, wsp, pool);
        kern_matmul(&kt, &dd, g, 1, y, wsp, pool);
        td[s] = now_s() - t0;
    }
    if (n_tok > 1) {
        for (int i = 0; i < steps; i++) td[i] = te[i] - tgu[i];   // the down projection
        qsort(te, (size_t)steps, sizeof *te, cmp_double);
        qsort(tgu, (size_t)steps, sizeof *tgu, cmp_double);
        qsort(td, (size_t)steps, sizeof *td, cmp_double);
        const double ops = 2.0 * (double)n_rows * 3.0 * FF * DIM;
        const double gb = active_bytes / steps / 1e9;   // a step's weight reads
        printf("path %s, %d threads, %s, %d tokens x %d of %d experts (%.0f MB of experts a step): median %8.1f us %6.1f GOPS "
               "%5.1f GB/s, best %8.1f us %6.1f GOPS\n",
               kt.path, nth, tt->name, n_tok, N_USED, N_EXPERT, gb * 1e3, te[steps / 2] * 1e6, ops / te[steps / 2] / 1e9,
               gb / te[steps / 2], te[0] * 1e6, ops / te[0] / 1e9);
        printf("  gate+up median %8.1f us %5.1f GB/s, down median %8.1f us %5.1f GB/s\n", tgu[steps / 2] * 1e6,
               gb * 2 / 3 / tgu[steps / 2], td[steps / 2] * 1e6, gb / 3 / td[steps / 2]);
    } else {
        double *tdn = malloc(sizeof(double) * STEPS);
        for (int i = 0; i < STEPS; i++) tdn[i] = te[i] - tgu[i];
        qsort(tgu, STEPS, sizeof *tgu, cmp_double);
        qsort(tdn, STEPS, sizeof *tdn, cmp_double);
        printf("experts: gate+up median %7.1f us %5.1f GB/s, down median %7.1f us %5.1f GB/s\n", tgu[STEPS / 2] * 1e6,
               (double)N_USED * 2 * gu_bytes / tgu[STEPS / 2] / 1e9, tdn[STEPS / 2] * 1e6,
               (double)N_USED * d_bytes / tdn[STEPS / 2] / 1e9);
        free(tdn);
        qsort(te, STEPS, sizeof *te, cmp_double);
        qsort(td, STEPS, sizeof *td, cmp_double);
        printf("path %s, %d threads, %s, %d layers of %d experts (%zu MB each), %d used, %.1f MB a step\n", kt.path, nth,
               tt->name, n_layers, N_EXPERT, (2 * gu_bytes + d_bytes) * N_EXPERT >> 20, N_USED, (double)step_bytes / 1e6);
        const double *tv[2] = {te, td};
        for (int i = 0; i < 2; i++)
            printf("%-8s median %7.1f us %5.1f GB/s, p10 %7.1f us %5.1f GB/s, best %7.1f us %5.1f GB/s\n",
                   i ? "dense" : "experts", tv[i][STEPS / 2] * 1e6, (double)step_bytes / tv[i][STEPS / 2] / 1e9,
                   tv[i][STEPS / 10] * 1e6, (double)step_bytes / tv[i][STEPS / 10] / 1e9, tv[i][0] * 1e6,
                   (double)step_bytes / tv[i][0] / 1e9);
    }
    for (int l = 0; l < n_layers; l++) { free(gate[l]); free(up[l]); free(down[l]); }
    free(gate); free(up); free(down);
    free(x); free(g); free(u); free(y); free(wsp); free(te); free(td); free(tgu); free(x_row);
    pool_free(pool);
    return 0;
}
