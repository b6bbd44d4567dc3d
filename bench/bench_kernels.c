// bench_kernels.c — kernel throughput against the machine's measured limits.
//
//   bench_kernels [path] [threads] [type]   path: generic|avx2|avx2-novnni|avx512|avx512-novnni (default best)
//
// Measures (all with the given thread count on the library's thread pool):
//   roofline          read bandwidth, int8 and fp32 peaks of this machine (tv_roofline_measure)
//   GEMV              y = W x, 1 token, W rotated over copies totalling > 128 MiB so reads come from
//                     DRAM; reported as GB/s of weight bytes and as a fraction of read bandwidth
//   GEMM              n_tok = 16, 64, 256 tokens; GOPS = 2 * rows * cols * n_tok / s, vs int8 peak;
//                     and 32 tokens (a batched decode step) with W rotated over the copies as for GEMV
// Types with a packed layout (Q8_0, Q4_0) are measured as stored and packed ("Q8_0p").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/roofline.h"

// BENCH_CPUTIME=1: process CPU time instead of wall time (with 1 thread this factors out preemption
// on a shared machine; with more it is the sum over threads, so do not use it there).
static clockid_t g_clock = CLOCK_MONOTONIC;
static double now_s(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 2.0f;
    }
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : NULL;
    int nth = argc > 2 ? atoi(argv[2]) : 2;
    tv_error err = { 0 };
    if (getenv("BENCH_CPUTIME") && nth == 1) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    kern_table kt;   // argv[1], else $TINYVLLM_CPU, else the best path
    if (kern_table_init(&kt, path ? path : getenv("TINYVLLM_CPU"), &err) != TV_OK) { fprintf(stderr, "bench_kernels: %s\n", err.msg); return 1; }
    tv_pool *pool = pool_create(nth, &err);
    if (!pool) { fprintf(stderr, "bench_kernels: %s\n", err.msg); return 1; }
    printf("path %s, %d threads\n", kt.path, nth);

    // the machine's limits, measured now with the same thread count (src/kernels/roofline.h)
    tv_roofline roof;
    if (tv_roofline_measure(nth, &roof, &err) != TV_OK) { fprintf(stderr, "bench_kernels: %s\n", err.msg); return 1; }
    const double best_bw = roof.mem_bw_gbs, peak = roof.int8_gops;
    printf("roofline (%s): read bandwidth %.1f GB/s, int8 peak %.1f GOPS, fp32 FMA peak %.1f GFLOPS\n", roof.isa,
           roof.mem_bw_gbs, roof.int8_gops, roof.fp32_gflops);
    double t0;
    const tv_type all_types[] = { TV_TYPE_Q8_0, TV_TYPE_Q4_0, TV_TYPE_Q4_K, TV_TYPE_Q6_K, TV_TYPE_F16 };
    const tv_type *types = all_types;
    size_t n_types = sizeof all_types / sizeof all_types[0];
    tv_type one;
    if (argc > 3 && kern_type_from_name(argv[3], &one)) { types = &one; n_types = 1; }
    // rows, cols: TinyLlama-1.1B's attention / ffn_up,gate / ffn_down shapes
    const int64_t shapes[][2] = { { 2048, 2048 }, { 5632, 2048 }, { 2048, 5632 } };
    size_t n_shapes = getenv("BENCH_SHAPE") ? 1 : 3, s0 = getenv("BENCH_SHAPE") ? (size_t)atoi(getenv("BENCH_SHAPE")) % 3 : 0;
    for (size_t si = s0; si < s0 + n_shapes; si++) {
        int64_t rows = shapes[si][0], cols = shapes[si][1];
        float *wf = malloc(sizeof(float) * (size_t)(rows * cols));
        fill(wf, (size_t)(rows * cols), 7);
        for (size_t ti = 0; ti < n_types; ti++) {
            tv_type t = types[ti];
            const tv_type_traits *tt = kern_traits(&kt, t);
            size_t rs = kern_row_size(t, cols), wbytes = rs * (size_t)rows;
            int n_copies = (int)((((size_t)128 << 20) + wbytes - 1) / wbytes);
            if (n_copies < 2) n_copies = 2;
            unsigned char *wq = malloc(wbytes * (size_t)n_copies);
            for (int64_t r = 0; r < rows; r++) tt->from_float(wf + r * cols, wq + (size_t)r * rs, cols);
            for (int c = 1; c < n_copies; c++) memcpy(wq + (size_t)c * wbytes, wq, wbytes);
            int64_t max_tok = 256;
            float *x = malloc(sizeof(float) * (size_t)(max_tok * cols)), *y = malloc(sizeof(float) * (size_t)(max_tok * rows));
            fill(x, (size_t)(max_tok * cols), 11);
            size_t ws = kern_matmul_wsize(t, cols, max_tok);
            void *wsp = ws ? malloc(ws) : NULL;
            size_t psz = packed_size(t, cols, rows);
            unsigned char *wp = NULL;
            if (psz == wbytes && tt->repack) {   // packed copies (whole 16-row groups: same size)
                wp = malloc(wbytes * (size_t)n_copies);
                for (int c = 0; c < n_copies; c++) tt->repack(wq, rs, cols, rows, wp + (size_t)c * wbytes);
            }
            for (int packed = 0; packed <= (wp != NULL); packed++) {
            unsigned char *wbase = packed ? wp : wq;
            char name[16];
            snprintf(name, sizeof name, "%s%s", tt->name, packed ? "p" : "");
                tv_tensor tw = { .name = "w", .type = t, .n_dims = 2, .ne = { cols, rows, 1, 1 }, .nbytes = wbytes, .packed = packed };
                // GEMV from DRAM: rotate copies; every timing is the best of its repetitions (the machine
                // is shared: the minimum is the run that was not preempted)
                int iters = 4 * n_copies;
                tw.data = wbase;
                kern_matmul(&kt, &tw, x, 1, y, wsp, pool);
                double gemv_s = 1e9, hot_s = 1e9;
                for (int it = 0; it < iters; it++) {
                    tw.data = wbase + (size_t)(it % n_copies) * wbytes;
                    t0 = now_s();
                    kern_matmul(&kt, &tw, x, 1, y, wsp, pool);
                    double s = now_s() - t0;
                    if (s < gemv_s) gemv_s = s;
                }
                double gbs = (double)wbytes / gemv_s / 1e9;
                tw.data = wbase;   // GEMV hot: the same copy again (cache-resident where it fits in L2+L3)
                for (int it = 0; it < 50; it++) {
                    t0 = now_s();
                    kern_matmul(&kt, &tw, x, 1, y, wsp, pool);
                    double s = now_s() - t0;
                    if (s < hot_s) hot_s = s;
                }
                printf("%-4s %5lldx%-5lld GEMV %7.1f us  %6.1f GB/s  %5.1f%% of DRAM read bw  (hot: %6.1f us, %6.1f GB/s)\n",
                       name, (long long)rows, (long long)cols, gemv_s * 1e6, gbs, 100 * gbs / best_bw, hot_s * 1e6,
                       (double)wbytes / hot_s / 1e9);
                const int64_t toks[] = { 16, 32, 64, 256 };
                for (int k = 0; k < 4; k++) {
                    int64_t nt = toks[k];
                    const bool dram = nt == 32;   // weights from DRAM, as in batched decode
                    kern_matmul(&kt, &tw, x, nt, y, wsp, pool);
                    int reps = dram ? 2 * n_copies : nt >= 256 ? 4 : 12;
                    double best = 1e9;
                    for (int it = 0; it < reps; it++) {
                        tw.data = wbase + (size_t)(dram ? it % n_copies : 0) * wbytes;
                        t0 = now_s();
                        kern_matmul(&kt, &tw, x, nt, y, wsp, pool);
                        double s = now_s() - t0;
                        if (s < best) best = s;
                    }
                    double gops = 2.0 * (double)rows * (double)cols * (double)nt / best / 1e9;
                    bool is_float = !tt->is_quantized;   // float weights run on FMA, not int8 dots
                    printf("     GEMM n_tok %3lld %8.1f us  %7.1f GOPS  %5.1f%% of %s peak%s\n", (long long)nt, best * 1e6,
                           gops, 100 * gops / (is_float ? roof.fp32_gflops : peak), is_float ? "fp32 FMA" : "int8",
                           dram ? "  (from DRAM)" : "");
                }
}
            free(wp);
            free(wq); free(x); free(y); free(wsp);
        }
        free(wf);
    }
    pool_free(pool);
    return 0;
}
