// roofline.c — measures read bandwidth, int8 dot-product peak and fp32 FMA peak (see roofline.h).
//
// Method: every probe runs on all n_threads of one tv_pool at once (the same shape a forward pass
// has), each thread on its own slice or its own register-resident loop; the wall time of the
// whole fork/join is the time. Compute probes calibrate their iteration count to ~20 ms and keep
// the best of 6; the bandwidth probe keeps the best of 5 passes over a buffer of 1 GiB.
#include "kernels/roofline.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/roofline_isa.h"
#include "util/status.h"

// ---- generic (portable) probes: used when no x86 SIMD path applies ----
static uint32_t generic_read_sum(const void *buf, size_t n_bytes) {
    const uint64_t *p = buf;   // (n_bytes / 8)
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n_bytes / 8; i += 4) { a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]; }
    uint64_t s = a0 + a1 + a2 + a3;
    return (uint32_t)(s ^ (s >> 32));
}

#define GENERIC_CHAINS 8
static uint32_t generic_int8(int64_t n_iter) {
    int32_t acc[GENERIC_CHAINS];
    volatile int8_t vb = -2;   // opaque input
    int8_t b = vb;
    for (int c = 0; c < GENERIC_CHAINS; c++) acc[c] = c;
    // acc += int8(acc) * b: a dependent chain the compiler cannot sum in closed form
    for (int64_t i = 0; i < n_iter; i++)
        for (int c = 0; c < GENERIC_CHAINS; c++) acc[c] += (int32_t)(int8_t)acc[c] * (int32_t)b;
    uint32_t t = 0;
    for (int c = 0; c < GENERIC_CHAINS; c++) t ^= (uint32_t)acc[c];
    return t;
}

static float generic_fp32(int64_t n_iter) {
    float acc[GENERIC_CHAINS];
    volatile float vm = 0.999999f, vb = 1e-3f;
    float m = vm, b = vb;
    for (int c = 0; c < GENERIC_CHAINS; c++) acc[c] = (float)c;
    for (int64_t i = 0; i < n_iter; i++)
        for (int c = 0; c < GENERIC_CHAINS; c++) acc[c] = acc[c] * m + b;
    float t = 0.0f;
    for (int c = 0; c < GENERIC_CHAINS; c++) t += acc[c];
    return t;
}

#if defined(__x86_64__)
#include <cpuid.h>
// AVX-VNNI: CPUID.(EAX=7,ECX=1):EAX bit 4 (clang 14's __builtin_cpu_supports lacks the name).
// Meaningful only when AVX2 is usable (the caller checks that, which covers the OS's YMM state).
bool roofline_cpu_has_avxvnni(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 4) & 1u;
}
#endif

// ---- the probe set chosen for this CPU ----
typedef struct {
    const char *isa;
    uint32_t (*read_sum)(const void *buf, size_t n_bytes);
    uint32_t (*int8)(int64_t n_iter);
    double int8_macs_per_iter;
    float (*fp32)(int64_t n_iter);
    double fp32_flops_per_iter;
    bool amx;   // the AMX probes run (roofline_amx.c)
} probes;

static probes choose_probes(void) {
    probes p = { "generic", generic_read_sum, generic_int8, GENERIC_CHAINS, generic_fp32, 2.0 * GENERIC_CHAINS, false };
#if defined(__x86_64__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const bool avx512vnni = avx512 && __builtin_cpu_supports("avx512vnni");
    const bool avxvnni = avx2 && roofline_cpu_has_avxvnni();
    if (avx2) {
        p.isa = avxvnni ? "avx-vnni" : "avx2";
        p.read_sum = roofline_avx2_read_sum;
        p.int8 = avxvnni ? roofline_avxvnni_int8 : roofline_avx2_int8;
        p.int8_macs_per_iter = avxvnni ? ROOFLINE_AVXVNNI_INT8_MACS_PER_ITER : ROOFLINE_AVX2_INT8_MACS_PER_ITER;
        p.fp32 = roofline_avx2_fp32;
        p.fp32_flops_per_iter = ROOFLINE_AVX2_FP32_FLOPS_PER_ITER;
    }
    if (avx512) {
        p.isa = avx512vnni ? "avx512-vnni" : "avx512";
        p.read_sum = roofline_avx512_read_sum;
        p.fp32 = roofline_avx512_fp32;
        p.fp32_flops_per_iter = ROOFLINE_AVX512_FP32_FLOPS_PER_ITER;
        if (avx512vnni) {
            p.int8 = roofline_avx512_int8;
            p.int8_macs_per_iter = ROOFLINE_AVX512_INT8_MACS_PER_ITER;
        }
    }
#ifdef TV_HAVE_AMX
    p.amx = tv_cpu_amx_unavailable() == NULL;   // asks the OS for the tile permission
#endif
#endif
    return p;
}

// ---- one parallel job ----
typedef enum { JOB_TOUCH, JOB_READ, JOB_INT8, JOB_FP32, JOB_AMX_INT8, JOB_AMX_BF16 } job_kind;

typedef struct {
    job_kind kind;
    const probes *pr;
    uint8_t *buf;          // (slice * nth) bytes
    size_t slice;          // bytes per thread, multiple of 256
    int64_t n_iter;        // compute probes: iterations per thread
    volatile uint32_t sink[256];   // per-thread results (keeps the work observable)
} job;

static void job_run(void *arg, int ith, int nth) {
    job *j = arg;
    uint32_t r = 0;
    uint8_t *mine = j->buf ? j->buf + (size_t)ith * j->slice : NULL;
    switch (j->kind) {
    case JOB_TOUCH: memset(mine, 0x11 + ith, j->slice); break;   // first touch: pages local to the reader
    case JOB_READ: r = j->pr->read_sum(mine, j->slice); break;
    case JOB_INT8: r = j->pr->int8(j->n_iter); break;
    case JOB_FP32: { float f = j->pr->fp32(j->n_iter); memcpy(&r, &f, sizeof r); break; }
#if defined(__x86_64__) && defined(TV_HAVE_AMX)
    case JOB_AMX_INT8: r = roofline_amx_int8(j->n_iter); break;
    case JOB_AMX_BF16: { float f = roofline_amx_bf16(j->n_iter); memcpy(&r, &f, sizeof r); break; }
#else
    case JOB_AMX_INT8: case JOB_AMX_BF16: break;   // never queued: probes.amx is false
#endif
    }
    (void)nth;
    j->sink[ith & 255] ^= r;
}

static double time_job(tv_pool *pool, job *j) {
    double t0 = time_ms();
    pool_run(pool, job_run, j);
    return (time_ms() - t0) * 1e-3;   // seconds
}

// Best rate (work units per second, all threads) of a compute probe: grow the iteration count
// until a run takes >= 4 ms, then 6 runs of ~20 ms, keeping the best. The early runs double as
// warm-up (clock ramp, AVX-512 power licence), which is why the best and not the mean is kept.
static double compute_rate(tv_pool *pool, job *j, double units_per_iter, int nth) {
    j->n_iter = 1 << 12;
    double t = time_job(pool, j);
    while (t < 4e-3 && j->n_iter < ((int64_t)1 << 40)) { j->n_iter *= 4; t = time_job(pool, j); }
    j->n_iter = (int64_t)((double)j->n_iter * 20e-3 / t) + 1;
    double best = 0.0;
    for (int rep = 0; rep < 6; rep++) {
        double tt = time_job(pool, j);
        double rate = (double)j->n_iter * units_per_iter * nth / tt;
        if (rate > best) best = rate;
    }
    return best;
}

tv_status tv_roofline_measure(int n_threads, tv_roofline *out, tv_error *err) {
    tv_status st = TV_OK;
    tv_pool *pool = NULL;
    void *map = MAP_FAILED;
    size_t map_bytes = 0;
    if (!out) return err_fail(err, TV_ERR_INVALID, "roofline: no output");
    memset(out, 0, sizeof *out);
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 1024) return err_fail(err, TV_ERR_INVALID, "roofline: %d threads (at most 1024)", n_threads);
    const probes pr = choose_probes();
    out->isa = pr.isa;

    pool = pool_create(n_threads, err);
    if (!pool) { st = err_fail_prefix(err, TV_ERR_NOMEM, "roofline"); goto cleanup; }

    // ---- memory read bandwidth ----
    const size_t sizes[] = { (size_t)1 << 30, (size_t)512 << 20, (size_t)256 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && map == MAP_FAILED; i++) {
        map_bytes = sizes[i];
        map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (map == MAP_FAILED) { st = err_fail(err, TV_ERR_NOMEM, "roofline: cannot map a 256 MiB buffer"); goto cleanup; }
#ifdef MADV_HUGEPAGE
    madvise(map, map_bytes, MADV_HUGEPAGE);   // fewer TLB misses; a hint only
#endif
    {
        job j = { .kind = JOB_TOUCH, .pr = &pr, .buf = map, .slice = (map_bytes / (size_t)n_threads) & ~(size_t)255 };
        time_job(pool, &j);
        j.kind = JOB_READ;
        double best = 0.0;
        for (int rep = 0; rep < 5; rep++) {
            double t = time_job(pool, &j);
            double gbs = (double)j.slice * n_threads / t * 1e-9;
            if (gbs > best) best = gbs;
        }
        out->mem_bw_gbs = best;
    }
    munmap(map, map_bytes);
    map = MAP_FAILED;

    // ---- compute peaks ----
    {
        job j = { .kind = JOB_INT8, .pr = &pr };
        out->int8_gops = 2.0 * compute_rate(pool, &j, pr.int8_macs_per_iter, n_threads) * 1e-9;
        j.kind = JOB_FP32;
        out->fp32_gflops = compute_rate(pool, &j, pr.fp32_flops_per_iter, n_threads) * 1e-9;
        if (pr.amx) {
            j.kind = JOB_AMX_INT8;
            out->amx_int8_gops = 2.0 * compute_rate(pool, &j, ROOFLINE_AMX_INT8_MACS_PER_ITER, n_threads) * 1e-9;
            j.kind = JOB_AMX_BF16;
            out->amx_bf16_gflops = compute_rate(pool, &j, ROOFLINE_AMX_BF16_FLOPS_PER_ITER, n_threads) * 1e-9;
        }
    }

cleanup:
    if (map != MAP_FAILED) munmap(map, map_bytes);
    pool_free(pool);
    return st;
}
