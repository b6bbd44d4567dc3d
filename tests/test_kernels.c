// test_kernels.c — the kernel layer: type table, f16/bf16 conversion, scalar reference kernels
// against a double-precision oracle, quantization error budgets, known-answer block decodes,
// every ISA path against the reference, and kern_matmul across pool sizes.
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
#include "kernels/pack_layout.h"
#include "test_util.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// ---- error budgets: relative RMS error of quantize -> dequantize on N(0,1) data with 1% outliers
// (x5), 65536 values. Measured with this file's generator: F16 2.09e-4, BF16 1.66e-3, Q8_0 7.09e-3,
// Q4_0 1.12e-1, Q4_K 8.11e-2, Q6_K 2.10e-2, Q4_1 8.77e-2, Q5_0 5.51e-2, Q5_1 4.17e-2, Q2_K 2.88e-1,
// Q3_K 1.70e-1, Q5_K 4.05e-2, IQ4_NL 8.94e-2, IQ4_XS 8.84e-2 (test_quant_error_budgets prints them);
// budgets leave 10-30% headroom.
#define BUDGET_F16 3.0e-4
#define BUDGET_BF16 2.3e-3
#define BUDGET_Q8_0 8.0e-3
#define BUDGET_Q4_0 1.25e-1
#define BUDGET_Q4_K 9.2e-2
#define BUDGET_Q6_K 2.7e-2
#define BUDGET_Q4_1 1.0e-1
#define BUDGET_Q5_0 6.4e-2
#define BUDGET_Q5_1 4.8e-2
#define BUDGET_Q2_K 3.3e-1
#define BUDGET_Q3_K 2.0e-1
#define BUDGET_Q5_K 4.7e-2
#define BUDGET_IQ4_NL 1.03e-1
#define BUDGET_IQ4_XS 1.02e-1
// A dot product computed in float vs the double oracle on the same (dequantized) inputs:
// |err| <= DOT_REL * sum|w_i x_i| (float accumulation over up to 4096 terms).
#define DOT_REL 2.0e-5
// Fast kernel vs reference kernel (same inputs, different summation order).
#define FAST_REL 1.0e-5

static void fill_weights(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = rnd_normal();
        if (rnd_u32() % 100 == 0) x[i] *= 5.0f;
    }
}

static const tv_type WEIGHT_TYPES[] = { TV_TYPE_F32,  TV_TYPE_F16,  TV_TYPE_BF16,   TV_TYPE_Q8_0, TV_TYPE_Q4_0,
                                        TV_TYPE_Q4_K, TV_TYPE_Q6_K, TV_TYPE_Q4_1,   TV_TYPE_Q5_0, TV_TYPE_Q5_1,
                                        TV_TYPE_Q2_K, TV_TYPE_Q3_K, TV_TYPE_Q5_K,   TV_TYPE_IQ4_NL,
                                        TV_TYPE_IQ4_XS };
#define N_WEIGHT_TYPES (sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])
static const char *PATHS[] = { "generic", "avx2-novnni", "avx2", "avx512-novnni", "avx512", "amx" };
// The kernels under test: a path of PATHS in the loops over them, else $TINYVLLM_CPU's (use_path).
static kern_table g_kt;
static bool use_path(const char *p);

// ---------------------------------------------------------------- type table
static void test_type_table(void **state) {
    (void)state;
    assert_true(use_path(test_cpu_path()));
    struct { tv_type t; const char *name; int64_t bs; size_t ts; bool sup; } want[] = {
        { TV_TYPE_F32, "F32", 1, 4, true },       { TV_TYPE_F16, "F16", 1, 2, true },
        { TV_TYPE_BF16, "BF16", 1, 2, true },     { TV_TYPE_Q8_0, "Q8_0", 32, 34, true },
        { TV_TYPE_Q4_0, "Q4_0", 32, 18, true },   { TV_TYPE_Q4_K, "Q4_K", 256, 144, true },
        { TV_TYPE_Q6_K, "Q6_K", 256, 210, true }, { TV_TYPE_Q8_K, "Q8_K", 256, 292, false },
        { TV_TYPE_Q4_1, "Q4_1", 32, 20, true },  { TV_TYPE_Q5_0, "Q5_0", 32, 22, true },
        { TV_TYPE_Q5_1, "Q5_1", 32, 24, true },  { TV_TYPE_Q8_1, "Q8_1", 32, 36, false },
        { TV_TYPE_Q2_K, "Q2_K", 256, 84, true }, { TV_TYPE_Q3_K, "Q3_K", 256, 110, true },
        { TV_TYPE_Q5_K, "Q5_K", 256, 176, true }, { TV_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, false },
        { TV_TYPE_IQ2_XS, "IQ2_XS", 256, 74, false }, { TV_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98, false },
        { TV_TYPE_IQ1_S, "IQ1_S", 256, 50, false }, { TV_TYPE_IQ4_NL, "IQ4_NL", 32, 18, true },
        { TV_TYPE_IQ3_S, "IQ3_S", 256, 110, false }, { TV_TYPE_IQ2_S, "IQ2_S", 256, 82, false },
        { TV_TYPE_IQ4_XS, "IQ4_XS", 256, 136, true }, { TV_TYPE_I8, "I8", 1, 1, false },
        { TV_TYPE_I16, "I16", 1, 2, false },      { TV_TYPE_I32, "I32", 1, 4, false },
        { TV_TYPE_I64, "I64", 1, 8, false },      { TV_TYPE_F64, "F64", 1, 8, false },
        { TV_TYPE_IQ1_M, "IQ1_M", 256, 56, false }, { TV_TYPE_TQ1_0, "TQ1_0", 256, 54, false },
        { TV_TYPE_TQ2_0, "TQ2_0", 256, 66, false }, { TV_TYPE_MXFP4, "MXFP4", 32, 17, true },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tv_type_traits *tt = kern_traits(&g_kt, want[i].t);
        assert_non_null(tt);
        assert_string_equal(tt->name, want[i].name);
        assert_int_equal(tt->blck_size, want[i].bs);
        assert_int_equal(tt->type_size, want[i].ts);
        assert_int_equal(tt->is_supported, want[i].sup);
        assert_string_equal(kern_type_name(want[i].t), want[i].name);
        tv_type back;
        assert_true(kern_type_from_name(want[i].name, &back));
        assert_int_equal(back, want[i].t);
        assert_int_equal(kern_row_size(want[i].t, 4096), (size_t)(4096 / want[i].bs) * want[i].ts);
        if (want[i].sup) {
            assert_non_null(tt->to_float);
            assert_non_null(tt->vec_dot);
            assert_non_null(kern_traits(&g_kt, tt->vec_dot_type)->from_float);
        }
    }
    tv_type t;
    assert_true(kern_type_from_name("q4_k", &t));
    assert_int_equal(t, TV_TYPE_Q4_K);
    assert_false(kern_type_from_name("Q4_2", &t));
    assert_false(kern_type_from_name(NULL, &t));
    assert_null(kern_traits(&g_kt, (tv_type)4));
    assert_null(kern_traits(&g_kt, (tv_type)31));
    assert_null(kern_traits(&g_kt, (tv_type)-1));
    assert_null(kern_traits(&g_kt, TV_TYPE_COUNT));
    assert_string_equal(kern_type_name((tv_type)5), "?");
    assert_int_equal(kern_row_size(TV_TYPE_Q4_K, 100), 0);    // not a multiple of the block
    assert_int_equal(kern_row_size((tv_type)33, 32), 0);
}

// ---------------------------------------------------------------- f16 / bf16
// Oracle for f16 -> f32 straight from the IEEE definition.
static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
static bool has_f16c(void) {   // F16C is VEX-encoded: needs the CPU bit and OS-enabled YMM state
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29)) || !(c & (1u << 27))) return false;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}
#endif

static void test_f16_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((tv_f16)h);
        double want = f16_value((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(f));
            assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
            tv_f16 back = f32_to_f16(f);
            assert_int_equal(back & 0xFC00, h & 0xFC00);        // still nan, same sign
            assert_int_equal(back & 0x1FF, h & 0x1FF);          // payload kept (quiet bit set)
            assert_true(back & 0x200);
        } else {
            assert_true((double)f == want);
            assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
            assert_int_equal(f32_to_f16(f), h);              // exact round trip
        }
        // exact ties between neighbouring finite halves round to the even one
        uint32_t e = (h >> 10) & 31;
        if (e < 31 && (h & 0x7FFF) != 0x7BFF) {
            double mid = (f16_value((uint16_t)h) + f16_value((uint16_t)(h + 1))) / 2;   // exact in float
            if (!(h & 0x8000) || (h & 0x7FFF) != 0) {
                uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
                assert_int_equal(f32_to_f16((float)mid), even);
            }
        }
    }
    assert_int_equal(f32_to_f16(65519.99f), 0x7BFF);
    assert_int_equal(f32_to_f16(65520.0f), 0x7C00);          // tie at the top rounds to inf
    assert_int_equal(f32_to_f16(-1e10f), 0xFC00);
    assert_int_equal(f32_to_f16(ldexpf(1.0f, -25)), 0x0000); // tie to even (zero)
    assert_int_equal(f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)), 0x0001);
    assert_int_equal(f32_to_f16(-0.0f), 0x8000);
#if defined(__x86_64__)
    if (has_f16c()) {   // the hardware converter is the oracle for every rounding
        for (uint32_t h = 0; h < 65536; h++) {
            float hw = hw_f16_to_f32((uint16_t)h), mine = f16_to_f32((tv_f16)h);
            assert_memory_equal(&hw, &mine, 4);
        }
        for (uint64_t u = 0; u < (1ull << 32); u += 251) {
            uint32_t bits = (uint32_t)u;
            float f;
            memcpy(&f, &bits, 4);
            uint16_t hw = hw_f32_to_f16(f), mine = f32_to_f16(f);
            if (hw != mine) fail_msg("f32 %08x: hw %04x mine %04x", bits, hw, mine);
        }
    } else {
        print_message("f16c absent: hardware f16 oracle skipped\n");
    }
#endif
}

static void test_bf16(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((tv_bf16)h);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        assert_int_equal(bits, h << 16);
        if (!isnan(f)) assert_int_equal(f32_to_bf16(f), h);
        else assert_int_equal(f32_to_bf16(f), h | 0x40);   // quieted, sign and payload kept
    }
    // rounding oracle: the nearer of the two neighbours in double, ties to even
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f) || isinf(f)) continue;
        uint16_t lo = (uint16_t)(bits >> 16), hi = (uint16_t)(lo + 1);
        double vlo = bf16_to_f32(lo);
        double vhi = (hi & 0x7FFF) == 0x7F80 ? copysign(ldexp(1.0, 128), f) : (double)bf16_to_f32(hi);
        double dlo = fabs((double)f - vlo), dhi = fabs(vhi - (double)f);
        uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
        if (f32_to_bf16(f) != want) fail_msg("bf16 of %08x: got %04x want %04x", bits, f32_to_bf16(f), want);
    }
}

// ---------------------------------------------------------------- helpers
static void *quantize_rows(tv_type t, const float *x, int64_t rows, int64_t n, const tv_type_traits *tt) {
    size_t rs = kern_row_size(t, n);
    unsigned char *q = malloc(rs * (size_t)rows);
    assert_non_null(q);
    for (int64_t r = 0; r < rows; r++) tt->from_float(x + r * n, q + r * rs, n);
    return q;
}

static double rel_rms_error(tv_type t, int64_t n) {
    const tv_type_traits *ref = kern_traits_ref(t);
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    fill_weights(x, n);
    void *q = quantize_rows(t, x, 1, n, ref);
    ref->to_float(q, y, n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) { num += (double)(x[i] - y[i]) * (x[i] - y[i]); den += (double)x[i] * x[i]; }
    free(x); free(y); free(q);
    return sqrt(num / den);
}

static void test_quant_error_budgets(void **state) {
    (void)state;
    struct { tv_type t; double budget; } b[] = {
        { TV_TYPE_F16, BUDGET_F16 },   { TV_TYPE_BF16, BUDGET_BF16 }, { TV_TYPE_Q8_0, BUDGET_Q8_0 },
        { TV_TYPE_Q4_0, BUDGET_Q4_0 }, { TV_TYPE_Q4_K, BUDGET_Q4_K }, { TV_TYPE_Q6_K, BUDGET_Q6_K },
        { TV_TYPE_Q4_1, BUDGET_Q4_1 }, { TV_TYPE_Q5_0, BUDGET_Q5_0 }, { TV_TYPE_Q5_1, BUDGET_Q5_1 },
        { TV_TYPE_Q2_K, BUDGET_Q2_K }, { TV_TYPE_Q3_K, BUDGET_Q3_K }, { TV_TYPE_Q5_K, BUDGET_Q5_K },
        { TV_TYPE_IQ4_NL, BUDGET_IQ4_NL }, { TV_TYPE_IQ4_XS, BUDGET_IQ4_XS },
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        double e = rel_rms_error(b[i].t, 1 << 16);
        print_message("quantize error %-5s rel rms %.3e (budget %.1e)\n", kern_type_name(b[i].t), e, b[i].budget);
        assert_true(e <= b[i].budget);
        assert_true(e >= b[i].budget / 20);   // a near-zero error means the round trip is not quantizing
    }
    double e = rel_rms_error(TV_TYPE_F32, 4096);
    assert_true(e == 0.0);
}

// Dequantize both operands and take the dot product in double.
static double oracle_dot(tv_type wt, const void *w, const void *xq, int64_t n) {
    const tv_type_traits *tt = kern_traits_ref(wt), *vt = kern_traits_ref(tt->vec_dot_type);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    tt->to_float(w, a, n);
    vt->to_float(xq, b, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    free(a); free(b);
    return s;
}
static double oracle_abs_dot(tv_type wt, const void *w, const void *xq, int64_t n) {
    const tv_type_traits *tt = kern_traits_ref(wt), *vt = kern_traits_ref(tt->vec_dot_type);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    tt->to_float(w, a, n);
    vt->to_float(xq, b, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    free(a); free(b);
    return s;
}

// Q4_1/Q5_1 · Q8_1: the min term uses the activation block's s = f16(d * sum q) (ggml's numerics),
// the oracle f16(d) * sum q: each block may differ by |m| * (a few f16 ulps of s) on top of DOT_REL.
static double q8_1_slack(tv_type wt, const void *w, const void *xq, int64_t n) {
    const tv_type_traits *tt = kern_traits_ref(wt);
    if (tt->vec_dot_type != TV_TYPE_Q8_1) return 0;
    const tv_block_q8_1 *b = xq;
    double slack = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        tv_f16 m;   // Q4_1 and Q5_1 both hold f16 m at byte 2
        memcpy(&m, (const unsigned char *)w + (size_t)i * tt->type_size + 2, 2);
        slack += fabs(f16_to_f32(m)) * (fabs(f16_to_f32(b[i].s)) * 0x1p-9 + 0x1p-24);
    }
    return slack;
}

static const int64_t DOT_SIZES[] = { 256, 512 + 256, 4096, 32, 64 + 32, 172, 5 };

static void test_ref_vec_dot_vs_oracle(void **state) {
    (void)state;
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        tv_type t = WEIGHT_TYPES[ti];
        const tv_type_traits *tt = kern_traits_ref(t), *vt = kern_traits_ref(tt->vec_dot_type);
        for (size_t si = 0; si < sizeof DOT_SIZES / sizeof DOT_SIZES[0]; si++) {
            int64_t n = DOT_SIZES[si];
            if (n % tt->blck_size || n % vt->blck_size) continue;
            float *w = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)n);
            fill_weights(w, n);
            fill_weights(x, n);
            void *wq = quantize_rows(t, w, 1, n, tt), *xq = quantize_rows(tt->vec_dot_type, x, 1, n, vt);
            float s;
            tt->vec_dot(n, &s, wq, xq);
            double want = oracle_dot(t, wq, xq, n), scale = oracle_abs_dot(t, wq, xq, n);
            if (fabs(s - want) > DOT_REL * scale + q8_1_slack(t, wq, xq, n))
                fail_msg("%s n=%lld: ref %.9g oracle %.9g", tt->name, (long long)n, s, want);
            // and the quantized dot tracks the float one (sanity that the weights mean something)
            double exact = 0;
            for (int64_t i = 0; i < n; i++) exact += (double)w[i] * x[i];
            assert_true(fabs(want - exact) < 0.25 * scale);
            free(w); free(x); free(wq); free(xq);
        }
    }
}

// ---------------------------------------------------------------- bit-exact with ggml
// tests/fixtures/quant/dequant/TYPE.bin (made by gen_dequant.c there with the pinned llama.cpp's
// libggml-base; README.md): f32 input[1024] | a row of blocks | f32 ggml_dequant[1024], the first
// half of the blocks ggml's reference quantization of input, the rest random bytes with finite f16
// scales. Every path's to_float must give ggml's bits; where our quantizer is ggml's reference rule
// (same_q), every path's from_float must give ggml's blocks. Q8_1 (no ggml to_float) holds
// input | blocks of all 1024 elements.
static bool use_path(const char *p);
static void test_dequant_vs_ggml(void **state) {
    (void)state;
    enum { N = 1024 };
    const struct { tv_type t; bool same_q; } types[] = {
        { TV_TYPE_Q4_0, true },   { TV_TYPE_Q8_0, true },  { TV_TYPE_Q4_1, true },  { TV_TYPE_Q5_0, true },
        { TV_TYPE_Q5_1, true },   { TV_TYPE_Q8_1, true },  { TV_TYPE_IQ4_NL, false }, { TV_TYPE_Q2_K, false },
        { TV_TYPE_Q3_K, false },  { TV_TYPE_Q4_K, false }, { TV_TYPE_Q5_K, false }, { TV_TYPE_Q6_K, false },
        { TV_TYPE_IQ4_XS, false },
    };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tv_type t = types[ti].t;
        const bool has_deq = t != TV_TYPE_Q8_1;
        const size_t row = kern_row_size(t, N);
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fixtures/quant/dequant/%s.bin", TV_SOURCE_DIR, kern_type_name(t));
        size_t len = 0;
        unsigned char *file = (unsigned char *)read_all(path, &len);
        if (!file) fail_msg("%s missing (tests/fixtures/quant/dequant/README.md)", path);
        assert_int_equal(len, 4 * N + row + (has_deq ? 4 * N : 0));
        float in[N], want[N], got[N];
        memcpy(in, file, sizeof in);
        const unsigned char *blocks = file + 4 * N;
        if (has_deq) memcpy(want, file + 4 * N + row, sizeof want);
        unsigned char *mine = malloc(row);
        const int64_t n_q = has_deq ? N / 2 : N;   // elements whose blocks came from ggml's quantizer
        for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
            if (!use_path(PATHS[pi])) continue;
            const tv_type_traits *tt = kern_traits(&g_kt, t);
            if (has_deq) {
                for (int i = 0; i < N; i++) got[i] = NAN;
                tt->to_float(blocks, got, N);
                for (int i = 0; i < N; i++)
                    if (memcmp(&got[i], &want[i], 4) != 0)
                        fail_msg("%s %s to_float element %d: %.9g, ggml %.9g", PATHS[pi], tt->name, i, got[i], want[i]);
            }
            if (types[ti].same_q) {
                tt->from_float(in, mine, n_q);
                const size_t nb = kern_row_size(t, n_q);
                for (size_t i = 0; i < nb; i++)
                    if (mine[i] != blocks[i])
                        fail_msg("%s %s from_float byte %zu (block %zu): %02x, ggml %02x", PATHS[pi], tt->name, i,
                                 i / tt->type_size, mine[i], blocks[i]);
            }
        }
        free(mine);
        free(file);
    }
    assert_true(use_path(NULL));
}

// ---------------------------------------------------------------- known-answer decodes
static void test_q8_0_q4_0_known_answer(void **state) {
    (void)state;
    tv_block_q8_0 b8;
    b8.d = 0x3800;   // 0.5
    for (int i = 0; i < 32; i++) b8.qs[i] = (int8_t)(i * 8 - 128);
    float y[32];
    kern_traits_ref(TV_TYPE_Q8_0)->to_float(&b8, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 0.5f * (float)(i * 8 - 128));
    tv_block_q4_0 b4;
    b4.d = 0xC000;   // -2.0
    for (int i = 0; i < 16; i++) b4.qs[i] = (uint8_t)(i | ((15 - i) << 4));
    kern_traits_ref(TV_TYPE_Q4_0)->to_float(&b4, y, 32);
    for (int i = 0; i < 16; i++) {
        assert_true(y[i] == -2.0f * (float)(i - 8));
        assert_true(y[16 + i] == -2.0f * (float)(15 - i - 8));
    }
    // the Q4_0 quantizer maps the signed extreme onto nibble 0 exactly (ggml's convention)
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 10) * 0.25f;   // max |x| = 5.25 at i = 31
    kern_traits_ref(TV_TYPE_Q4_0)->from_float(x, &b4, 32);
    assert_int_equal(b4.d, f32_to_f16(5.25f / -8.0f));
    assert_int_equal(b4.qs[15] >> 4, 0);
}

static void test_q4_K_known_answer(void **state) {
    (void)state;
    // Spec (ggml block_q4_K): d, dmin f16; scales[12]: for j < 4, scale_j = scales[j] & 63 and
    // min_j = scales[j+4] & 63; for j >= 4, scale_j = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
    // min_j = (scales[j+4] >> 4) | (scales[j] >> 6) << 4. Element 64c + l (l < 32) uses the low
    // nibble of qs[32c + l] with sub-block 2c, element 64c + 32 + l the high nibble with 2c + 1.
    static const uint8_t sc[8] = { 1, 2, 63, 17, 33, 48, 5, 60 };
    static const uint8_t mn[8] = { 0, 7, 40, 63, 16, 1, 62, 35 };
    tv_block_q4_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400;      // 0.25
    b.dmin = 0x3C00;   // 1.0
    uint8_t *s = b.scales;
    s[0] = 1 | (2 << 6);        // scale0 = 1,  scale4 = 33 = 0b10_0001 -> top bits 2, low 1
    s[1] = 2 | (3 << 6);        // scale1 = 2,  scale5 = 48 = 0b11_0000 -> 3, 0
    s[2] = 63 | (0 << 6);       // scale2 = 63, scale6 = 5  -> 0, 5
    s[3] = 17 | (3 << 6);       // scale3 = 17, scale7 = 60 = 0b11_1100 -> 3, 12
    s[4] = 0 | (1 << 6);        // min0 = 0,   min4 = 16 = 0b01_0000 -> 1, 0
    s[5] = 7 | (0 << 6);        // min1 = 7,   min5 = 1  -> 0, 1
    s[6] = 40 | (3 << 6);       // min2 = 40,  min6 = 62 = 0b11_1110 -> 3, 14
    s[7] = 63 | (2 << 6);       // min3 = 63,  min7 = 35 = 0b10_0011 -> 2, 3
    s[8] = 1 | (0 << 4);        // low nibbles of scale4 | min4
    s[9] = 0 | (1 << 4);        // scale5 | min5
    s[10] = 5 | (14 << 4);      // scale6 | min6
    s[11] = 12 | (3 << 4);      // scale7 | min7
    for (int i = 0; i < 128; i++) b.qs[i] = (uint8_t)((i * 7) & 0xFF);
    float y[256];
    kern_traits_ref(TV_TYPE_Q4_K)->to_float(&b, y, 256);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int qlo = ((32 * c + l) * 7 & 0xFF) & 15, qhi = ((32 * c + l) * 7 & 0xFF) >> 4;
            float want_lo = 0.25f * sc[2 * c] * qlo - 1.0f * mn[2 * c];
            float want_hi = 0.25f * sc[2 * c + 1] * qhi - 1.0f * mn[2 * c + 1];
            assert_true(y[64 * c + l] == want_lo);
            assert_true(y[64 * c + 32 + l] == want_hi);
        }
    }
    // a few values worked by hand: qs[0] = 0 -> y[0] = -min0 = 0; qs[1] = 7 -> y[1] = 0.25*1*7 = 1.75;
    // y[32] = high nibble of qs[0] = 0 -> -min1 = -7; qs[127] = 889 & 255 = 121 = 0x79:
    // y[255] = 0.25*60*7 - 35 = 70, y[223] = 0.25*5*9 - 62 = -50.75
    assert_true(y[0] == 0.0f);
    assert_true(y[1] == 1.75f);
    assert_true(y[32] == -7.0f);
    assert_true(y[255] == 70.0f);
    assert_true(y[223] == -50.75f);
}

static void test_q6_K_known_answer(void **state) {
    (void)state;
    // Spec (ggml block_q6_K): ql[128], qh[64], scales[16] int8, d f16. For half h and l < 32:
    //   q(128h + l)      = (ql[64h + l] & 15)      | ((qh[32h + l] >> 0) & 3) << 4
    //   q(128h + l + 32) = (ql[64h + l + 32] & 15) | ((qh[32h + l] >> 2) & 3) << 4
    //   q(128h + l + 64) = (ql[64h + l] >> 4)      | ((qh[32h + l] >> 4) & 3) << 4
    //   q(128h + l + 96) = (ql[64h + l + 32] >> 4) | ((qh[32h + l] >> 6) & 3) << 4
    //   y(e) = d * scales[e / 16] * (q(e) - 32)
    tv_block_q6_K b;
    for (int i = 0; i < 128; i++) b.ql[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 64; i++) b.qh[i] = (uint8_t)(i * 91 + 5);
    for (int i = 0; i < 16; i++) b.scales[i] = (int8_t)(i * 17 - 128);
    b.d = 0x3000;   // 0.125
    float y[256];
    kern_traits_ref(TV_TYPE_Q6_K)->to_float(&b, y, 256);
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            int q[4] = {
                (b.ql[64 * h + l] & 15) | ((b.qh[32 * h + l] >> 0) & 3) << 4,
                (b.ql[64 * h + l + 32] & 15) | ((b.qh[32 * h + l] >> 2) & 3) << 4,
                (b.ql[64 * h + l] >> 4) | ((b.qh[32 * h + l] >> 4) & 3) << 4,
                (b.ql[64 * h + l + 32] >> 4) | ((b.qh[32 * h + l] >> 6) & 3) << 4,
            };
            for (int k = 0; k < 4; k++) {
                int e = 128 * h + l + 32 * k;
                assert_true(y[e] == 0.125f * (float)b.scales[e / 16] * (float)(q[k] - 32));
            }
        }
    }
    // by hand: e = 0: ql[0] = 11 -> low 11, qh[0] = 5 -> bits 1 -> q = 11 | 16 = 27, scale -128:
    // y = 0.125 * -128 * -5 = 80. e = 255 (h 1, l 31, k 3): ql[127] = (127*37+11) & 255 = 98 -> 6,
    // qh[63] = (63*91+5) & 255 = 102 -> bits 6..7 = 1 -> q = 22, scale[15] = 127: y = 0.125*127*-10.
    assert_true(y[0] == 80.0f);
    assert_true(y[255] == 0.125f * 127.0f * -10.0f);
}

// ---------------------------------------------------------------- fast paths vs reference
static bool use_path(const char *p) {
    tv_error err = { 0 };
    return kern_table_init(&g_kt, p, &err) == TV_OK;
}

static void check_close(const char *what, const char *path, const char *ty, int64_t n, float got, float want,
                        double scale) {
    if (fabs((double)got - want) > FAST_REL * scale + 1e-30)
        fail_msg("%s %s %s n=%lld: got %.9g want %.9g", what, path, ty, (long long)n, got, want);
}

static void test_paths_vs_ref(void **state) {
    (void)state;
    // 172 and 5: float rows that do not fill a vector (the 260K llama's hidden dim is 172)
    const int64_t sizes[] = { 256, 512 + 256, 4096, 32, 96, 2048 + 32, 172, 5 };
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        if (!use_path(PATHS[pi])) { print_message("path %s: not supported here, skipped\n", PATHS[pi]); continue; }
        print_message("path %s (%s)\n", PATHS[pi], g_kt.path);
        if (strcmp(PATHS[pi], "generic") != 0) {   // the path really replaced the int8 kernels
            assert_true(kern_traits(&g_kt, TV_TYPE_Q8_0)->vec_dot != kern_traits_ref(TV_TYPE_Q8_0)->vec_dot);
            assert_true(kern_traits(&g_kt, TV_TYPE_Q4_0)->gemm != NULL);
            for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {   // and every quantized type's dot and GEMM
                const tv_type t = WEIGHT_TYPES[ti];
                if (!kern_traits_ref(t)->is_quantized) continue;
                assert_true(kern_traits(&g_kt, t)->vec_dot != kern_traits_ref(t)->vec_dot);
                assert_true(kern_traits(&g_kt, t)->gemm != NULL);
            }
        }
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            tv_type t = WEIGHT_TYPES[ti];
            const tv_type_traits *ft = kern_traits(&g_kt, t), *rt = kern_traits_ref(t);
            const tv_type_traits *fv = kern_traits(&g_kt, rt->vec_dot_type), *rv = kern_traits_ref(rt->vec_dot_type);
            assert_int_equal(ft->vec_dot_type, rt->vec_dot_type);
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                int64_t n = sizes[si];
                if (n % rt->blck_size || n % rv->blck_size) continue;
                enum { ROWS = 11, TOK = 9 };
                float *w = malloc(sizeof(float) * (size_t)(n * ROWS)), *x = malloc(sizeof(float) * (size_t)(n * TOK));
                fill_weights(w, n * ROWS);
                fill_weights(x, n * TOK);
                unsigned char *wq = quantize_rows(t, w, ROWS, n, rt);
                unsigned char *xq = quantize_rows(rt->vec_dot_type, x, TOK, n, rv);
                size_t wrs = kern_row_size(t, n), xrs = kern_row_size(rt->vec_dot_type, n);
                if (t == TV_TYPE_Q8_0) {   // a file may hold -128, which our quantizer never writes
                    tv_block_q8_0 *b0 = (tv_block_q8_0 *)wq;
                    for (int j = 0; j < 32; j += 3) b0[0].qs[j] = -128;
                    b0 = (tv_block_q8_0 *)(wq + 3 * wrs) + (n / 32 - 1);
                    for (int j = 0; j < 32; j++) b0->qs[j] = -128;
                }
                // activation quantizer: the fast one is bit-exact with the reference
                unsigned char *xq_fast = quantize_rows(rt->vec_dot_type, x, TOK, n, fv);
                for (size_t i = 0; i < xrs * TOK; i++)
                    if (xq[i] != xq_fast[i])
                        fail_msg("%s %s quantize differs at byte %zu of row %zu", PATHS[pi], rv->name, i % xrs, i / xrs);
                float ref[ROWS * TOK], got[ROWS * TOK], scale[ROWS * TOK];
                for (int r = 0; r < ROWS; r++) {
                    for (int tk = 0; tk < TOK; tk++) {
                        rt->vec_dot(n, &ref[tk * ROWS + r], wq + r * wrs, xq + tk * xrs);
                        scale[tk * ROWS + r] = (float)oracle_abs_dot(t, wq + r * wrs, xq + tk * xrs, n);
                        ft->vec_dot(n, &got[tk * ROWS + r], wq + r * wrs, xq + tk * xrs);
                        check_close("vec_dot", PATHS[pi], rt->name, n, got[tk * ROWS + r], ref[tk * ROWS + r],
                                    scale[tk * ROWS + r]);
                    }
                }
                if (ft->gemm) {
                    // odd row ranges and every token count 1..TOK
                    for (int nt = 1; nt <= TOK; nt++) {
                        for (int r0 = 0; r0 < 3; r0++) {
                            int r1 = ROWS - (nt % 3);
                            for (int i = 0; i < ROWS * TOK; i++) got[i] = NAN;
                            ft->gemm(n, r0, r1, wq, wrs, nt, xq, xrs, got, ROWS);
                            for (int tk = 0; tk < TOK; tk++)
                                for (int r = 0; r < ROWS; r++) {
                                    if (tk < nt && r >= r0 && r < r1)
                                        check_close("gemm", PATHS[pi], rt->name, n, got[tk * ROWS + r],
                                                    ref[tk * ROWS + r], scale[tk * ROWS + r]);
                                    else
                                        assert_true(isnan(got[tk * ROWS + r]));   // nothing outside the tile
                                }
                        }
                    }
                }
                free(w); free(x); free(wq); free(xq); free(xq_fast);
            }
        }
    }
    assert_true(use_path(NULL));
}

// MXFP4's GEMM on every path has ref_vec_dot_mxfp4's bits for every (row, token): rows of 1..140
// blocks (the transposed chunks' and the activation spans' tails), every token count 1..20 and a
// 300-token call (two passes), row ranges that start and end inside a 16-row group, scales across
// the whole E8M0 range that stays finite (subnormal e = 0, 1 included); nothing outside the tile written.
// The packed GEMM too (the repacked rows, packed activation rows; ranges from a 16-row group start),
// whose passes of up to 8 tokens decode each block in registers (mx16_fused) and longer ones in chunks.
static void test_mxfp4_gemm(void **state) {
    (void)state;
    const int64_t sizes[] = { 32, 96, 2880, 4480 };
    enum { ROWS = 37, TOK = 300 };
    const tv_type_traits *rt = kern_traits_ref(TV_TYPE_MXFP4), *rq = kern_traits_ref(TV_TYPE_Q8_0);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si], nb = n / 32;
        const int tok = n <= 96 ? TOK : 20;   // the 300-token pass split on the short rows only (time)
        const size_t wrs = kern_row_size(TV_TYPE_MXFP4, n), xrs = kern_row_size(TV_TYPE_Q8_0, n);
        tv_block_mxfp4 *w = malloc(wrs * ROWS);
        unsigned char *xq = malloc(xrs * (size_t)tok);
        float *x = malloc(sizeof(float) * (size_t)(n * tok)), *ref = malloc(sizeof(float) * ROWS * (size_t)tok);
        float *got = malloc(sizeof(float) * ROWS * (size_t)tok);
        assert_true(w && xq && x && ref && got);
        for (int64_t b = 0; b < nb * ROWS; b++) {
            const uint32_t u = rnd_u32();
            w[b].e = (uint8_t)(u % 7 == 0 ? u % 3 : 90 + (u >> 8) % 70);   // 0, 1, 2, or 2^-38 .. 2^31
            for (int j = 0; j < 16; j++) w[b].qs[j] = (uint8_t)rnd_u32();
        }
        fill_weights(x, n * tok);
        for (int t = 0; t < tok; t++) rq->from_float(x + t * n, xq + (size_t)t * xrs, n);
        for (int t = 0; t < tok; t++)
            for (int r = 0; r < ROWS; r++) {
                rt->vec_dot(n, &ref[t * ROWS + r], (const char *)w + (size_t)r * wrs, xq + (size_t)t * xrs);
                assert_true(isfinite(ref[t * ROWS + r]));
            }
        const size_t prs = packed_act_row_size(TV_TYPE_MXFP4, n);
        unsigned char *wp = malloc(packed_size(TV_TYPE_MXFP4, n, ROWS)), *xp = malloc(prs * (size_t)tok);
        assert_true(wp && xp);
        rt->repack(w, wrs, n, ROWS, wp);
        for (int t = 0; t < tok; t++) packed_act_from_float(rq->from_float, x + t * n, xp + (size_t)t * prs, n);
        for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
            if (!use_path(PATHS[pi])) continue;
            const tv_type_traits *ft = kern_traits(&g_kt, TV_TYPE_MXFP4);
            for (int nt = 1; nt <= tok; nt = nt < 20 ? nt + 1 : nt == 20 && tok > 20 ? tok : tok + 1) {
                const int r0 = nt % 2 ? 0 : 16;
                for (int i = 0; i < ROWS * tok; i++) got[i] = NAN;
                ft->gemm_packed(n, r0, ROWS, wp, wrs, nt, xp, prs, got, ROWS);
                for (int t = 0; t < tok; t++)
                    for (int r = 0; r < ROWS; r++) {
                        const float g = got[t * ROWS + r];
                        if (t >= nt || r < r0) {
                            if (!isnan(g)) fail_msg("%s packed n=%lld nt=%d: wrote (%d, %d) outside the tile", PATHS[pi], (long long)n, nt, r, t);
                        } else if (memcmp(&g, &ref[t * ROWS + r], sizeof g)) {
                            fail_msg("%s packed n=%lld nt=%d rows [%d, %d) row %d token %d: %.9g, ref %.9g", PATHS[pi],
                                     (long long)n, nt, r0, ROWS, r, t, g, ref[t * ROWS + r]);
                        }
                    }
            }
            if (strcmp(PATHS[pi], "generic") != 0) assert_non_null(ft->gemm);
            if (!ft->gemm) continue;
            for (int nt = 1; nt <= tok; nt = nt < 20 ? nt + 1 : nt == 20 && tok > 20 ? tok : tok + 1) {   // 1..20, tok
                const int r0 = nt % 4, r1 = nt % 3 ? ROWS : ROWS - 16 + nt % 5;
                for (int i = 0; i < ROWS * tok; i++) got[i] = NAN;
                ft->gemm(n, r0, r1, w, wrs, nt, xq, xrs, got, ROWS);
                for (int t = 0; t < tok; t++)
                    for (int r = 0; r < ROWS; r++) {
                        const float g = got[t * ROWS + r];
                        if (t >= nt || r < r0 || r >= r1) {
                            if (!isnan(g)) fail_msg("%s n=%lld nt=%d: wrote (%d, %d) outside the tile", PATHS[pi], (long long)n, nt, r, t);
                        } else if (memcmp(&g, &ref[t * ROWS + r], sizeof g)) {
                            fail_msg("%s n=%lld nt=%d rows [%d, %d) row %d token %d: %.9g, ref %.9g", PATHS[pi],
                                     (long long)n, nt, r0, r1, r, t, g, ref[t * ROWS + r]);
                        }
                    }
            }
        }
        free(w); free(xq); free(x); free(ref); free(got); free(wp); free(xp);
    }
    assert_true(use_path(NULL));
}

// MXFP4's quantizer on every path against the reference, bit for bit (synth writes gpt-oss's experts
// with the path's): random blocks across 2^-140 .. 2^100 (subnormal scales included), values at exact
// midpoints between table entries (ties go to the first code), +-0, all-zero blocks, NaN, +-inf and
// random bit patterns.
static void test_mxfp4_from_float(void **state) {
    (void)state;
    enum { NB = 4096, N = NB * 32 };
    float *x = malloc(sizeof(float) * N);
    tv_block_mxfp4 *want = malloc(sizeof(tv_block_mxfp4) * NB), *got = malloc(sizeof(tv_block_mxfp4) * NB);
    assert_true(x && want && got);
    static const float mids[] = { 0.5f, 1.5f, 2.5f, 3.5f, 5.0f, 7.0f, 10.0f, 0.25f, 12.0f, 6.0f, 11.999f, 9.0f };
    for (int b = 0; b < NB; b++) {
        float *v = x + b * 32;
        const int kind = b % 8;
        const float scale = ldexpf(1.0f, (int)(rnd_u32() % 240) - 140);
        for (int j = 0; j < 32; j++) {
            const float sg = rnd_u32() & 1 ? -1.0f : 1.0f;
            switch (kind) {
            case 0: case 1: v[j] = rnd_normal() * scale; break;
            case 2: v[j] = sg * mids[rnd_u32() % 12] * ldexpf(1.0f, (int)(rnd_u32() % 60) - 30); break;
            case 3: v[j] = j == 0 ? 12.0f * scale : sg * mids[rnd_u32() % 12] * scale / 8.0f; break;   // amax 12 d * 8
            case 4: v[j] = rnd_u32() % 4 ? sg * 0.0f : rnd_normal(); break;
            case 5: v[j] = 0.0f; break;
            case 6: { const uint32_t u = rnd_u32(); memcpy(&v[j], &u, 4); } break;   // any bits: NaN, inf, subnormal
            default: v[j] = rnd_u32() % 5 == 0 ? (rnd_u32() & 1 ? NAN : sg * INFINITY) : rnd_normal(); break;
            }
        }
    }
    kern_traits_ref(TV_TYPE_MXFP4)->from_float(x, want, N);
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        if (!use_path(PATHS[pi])) continue;
        const tv_type_traits *ft = kern_traits(&g_kt, TV_TYPE_MXFP4);
        for (int64_t n = 32; n <= N; n = n < 32 * 8 ? n + 32 : n < N ? N : N + 1) {   // 1..8 blocks, then all
            memset(got, 0xA5, sizeof(tv_block_mxfp4) * NB);
            ft->from_float(x, got, n);
            for (int64_t b = 0; b < n / 32; b++)
                if (memcmp(&got[b], &want[b], sizeof got[b]))
                    fail_msg("%s mxfp4 from_float n=%lld block %lld: e %d vs ref %d, qs[0] %02x vs %02x", PATHS[pi],
                             (long long)n, (long long)b, got[b].e, want[b].e, got[b].qs[0], want[b].qs[0]);
            if (n < N) assert_int_equal(got[n / 32].e, 0xA5);   // nothing past n
        }
    }
    free(x); free(want); free(got);
    assert_true(use_path(NULL));
}

// Offsets of a block's f16 scale fields (d, m / dmin / s), -1 for none; the quantized weight types.
static void f16_fields(tv_type t, int at[2]) {
    at[0] = 0;
    at[1] = -1;
    switch (t) {
    case TV_TYPE_Q4_1: case TV_TYPE_Q5_1: case TV_TYPE_Q4_K: case TV_TYPE_Q5_K: at[1] = 2; break;
    case TV_TYPE_Q2_K: at[0] = 80; at[1] = 82; break;
    case TV_TYPE_Q3_K: at[0] = 108; break;
    case TV_TYPE_Q6_K: at[0] = 208; break;
    default: break;
    }
}

// Every path's vec_dot and GEMM against the reference on weight blocks no quantizer writes: all
// zero bytes, all 0xFF bytes (every code and scale at its maximum) with the largest finite f16
// scales, and random bytes with random finite f16 scales (every code / scale bit pattern);
// activations zero, at the ±127 extremes, or random.
static void test_paths_extreme_blocks(void **state) {
    (void)state;
    enum { ROWS = 5, TOK = 6 };
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        const tv_type t = WEIGHT_TYPES[ti];
        const tv_type_traits *rt = kern_traits_ref(t), *rv = kern_traits_ref(rt->vec_dot_type);
        if (!rt->is_quantized) continue;
        const int64_t n = 2 * (rt->blck_size > rv->blck_size ? rt->blck_size : rv->blck_size) * 2;
        const size_t wrs = kern_row_size(t, n), xrs = kern_row_size(rt->vec_dot_type, n);
        unsigned char *wq = malloc(wrs * ROWS), *xq = malloc(xrs * TOK);
        float *x = malloc(sizeof(float) * (size_t)(n * TOK));
        for (int kind = 0; kind < 3; kind++) {
            int at[2];
            f16_fields(t, at);
            for (size_t i = 0; i < wrs * ROWS; i++) wq[i] = kind == 0 ? 0 : kind == 1 ? 0xFF : (unsigned char)rnd_u32();
            for (size_t b = 0; kind > 0 && b < wrs * ROWS / rt->type_size; b++)
                for (int k = 0; k < 2; k++) {
                    if (at[k] < 0) continue;
                    uint16_t h = kind == 1 ? 0x7BFF : (uint16_t)rnd_u32();   // 65504, or random finite
                    if (((h >> 10) & 31) == 31) h ^= 0x4000;
                    memcpy(wq + b * rt->type_size + at[k], &h, 2);
                }
            for (int64_t i = 0; i < n * TOK; i++)
                x[i] = kind == 0 ? 0.0f : kind == 1 ? ((i % 3) ? 1.0f : -1.0f) : rnd_normal();
            for (int tk = 0; tk < TOK; tk++) rv->from_float(x + tk * n, xq + tk * xrs, n);
            float ref[ROWS * TOK], got[ROWS * TOK];
            double scale[ROWS * TOK];
            for (int r = 0; r < ROWS; r++)
                for (int tk = 0; tk < TOK; tk++) {
                    rt->vec_dot(n, &ref[tk * ROWS + r], wq + r * wrs, xq + tk * xrs);
                    scale[tk * ROWS + r] = oracle_abs_dot(t, wq + r * wrs, xq + tk * xrs, n) * FAST_REL;
                    assert_true(isfinite(ref[tk * ROWS + r]));
                    if (kind == 0) assert_true(ref[tk * ROWS + r] == 0.0f);
                }
            for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
                if (!use_path(PATHS[pi])) continue;
                const tv_type_traits *ft = kern_traits(&g_kt, t);
                for (int r = 0; r < ROWS; r++)
                    for (int tk = 0; tk < TOK; tk++) {
                        float g;
                        ft->vec_dot(n, &g, wq + r * wrs, xq + tk * xrs);
                        if (fabs((double)g - ref[tk * ROWS + r]) > scale[tk * ROWS + r])
                            fail_msg("%s %s blocks %d vec_dot r=%d t=%d: %.9g vs ref %.9g", PATHS[pi], rt->name, kind,
                                     r, tk, g, ref[tk * ROWS + r]);
                    }
                if (!ft->gemm) continue;
                ft->gemm(n, 0, ROWS, wq, wrs, TOK, xq, xrs, got, ROWS);
                for (int i = 0; i < ROWS * TOK; i++)
                    if (fabs((double)got[i] - ref[i]) > scale[i])
                        fail_msg("%s %s blocks %d gemm %d: %.9g vs ref %.9g", PATHS[pi], rt->name, kind, i, got[i], ref[i]);
            }
        }
        free(wq); free(xq); free(x);
    }
    assert_true(use_path(NULL));
}

// Row conversions of every path are bit-exact with the reference, specials included.
static void test_paths_row_conversion(void **state) {
    (void)state;
    enum { N = 4099 };   // a vector tail
    float *x = malloc(sizeof(float) * N), *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    uint16_t *ha = malloc(2 * N), *hb = malloc(2 * N), *h = malloc(2 * N);
    for (int i = 0; i < N; i++) {
        uint32_t u = rnd_u32() ^ (rnd_u32() << 16);
        memcpy(&x[i], &u, 4);                                      // any bit pattern: nan, inf, subnormals
        if (i % 3 == 0) x[i] = rnd_normal() * ldexpf(1.0f, (int)(rnd_u32() % 40) - 30);
        h[i] = (uint16_t)rnd_u32();
    }
    const tv_type types[] = { TV_TYPE_F16, TV_TYPE_BF16, TV_TYPE_F32 };
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        if (!use_path(PATHS[pi])) continue;
        for (size_t ti = 0; ti < 3; ti++) {
            const tv_type_traits *ft = kern_traits(&g_kt, types[ti]), *rt = kern_traits_ref(types[ti]);
            if (types[ti] == TV_TYPE_F32) continue;
            rt->from_float(x, ha, N);
            ft->from_float(x, hb, N);
            for (int i = 0; i < N; i++) {
                uint32_t xb;
                memcpy(&xb, &x[i], 4);
                if (ha[i] != hb[i]) fail_msg("%s %s from_float(%08x): %04x vs ref %04x", PATHS[pi], rt->name, xb, hb[i], ha[i]);
            }
            rt->to_float(h, a, N);
            ft->to_float(h, b, N);
            assert_memory_equal(a, b, sizeof(float) * N);
        }
        // Q8_0 activations with all-zero blocks, tiny and huge scales (d rounding to f16 0 or inf),
        // in runs of 16 blocks and single blocks: bit-exact with the reference
        {
            enum { NQ = 32 * 37 };
            float *xq = malloc(sizeof(float) * NQ);
            for (int i = 0; i < NQ; i++) xq[i] = rnd_normal();
            for (int i = 32 * 3; i < 32 * 4; i++) xq[i] = 0.0f;
            for (int i = 32 * 20; i < 32 * 21; i++) xq[i] = -0.0f;
            for (int i = 32 * 5; i < 32 * 6; i++) xq[i] *= 1e-30f;
            for (int i = 32 * 18; i < 32 * 19; i++) xq[i] *= 1e30f;
            for (int i = 32 * 33; i < 32 * 34; i++) xq[i] = 0.0f;
            tv_block_q8_0 qa[NQ / 32], qb[NQ / 32];
            kern_traits_ref(TV_TYPE_Q8_0)->from_float(xq, qa, NQ);
            kern_traits(&g_kt, TV_TYPE_Q8_0)->from_float(xq, qb, NQ);
            assert_memory_equal(qa, qb, sizeof qa);
            free(xq);
        }
        // Q8_K activations: all-zero (+0 and -0) blocks, scales from 1e-30 to 1e37, exact ties of the
        // rounding (amax 127: x * id = x, halves go to even), blocks at +-127 everywhere (bsums +-2032);
        // 1..19 blocks: bit-exact with the reference, nothing written past the row
        {
            enum { NK = 19 };
            float *xk = malloc(sizeof(float) * 256 * NK);
            tv_block_q8_K *ka = malloc(sizeof(tv_block_q8_K) * (NK + 1)), *kb = malloc(sizeof(tv_block_q8_K) * (NK + 1));
            for (int i = 0; i < 256 * NK; i++) xk[i] = rnd_normal();
            for (int i = 0; i < 256; i++) {
                xk[256 * 1 + i] = 0.0f;
                xk[256 * 2 + i] = -0.0f;
                xk[256 * 3 + i] *= 1e-30f;
                xk[256 * 4 + i] *= 1e37f;
                xk[256 * 5 + i] = i == 7 ? -127.0f : (float)((int)(rnd_u32() % 253) - 126) + 0.5f;   // ties
                xk[256 * 6 + i] = i % 2 ? 3.0f : -3.0f;
                xk[256 * 7 + i] = 5.0f;
                xk[256 * 8 + i] = -5.0f;
                xk[256 * 9 + i] = i == 200 ? 1.0f : 0.0f;
            }
            for (int nb = 1; nb <= NK; nb++) {
                memset(ka, 0x5A, sizeof(tv_block_q8_K) * (NK + 1));
                memset(kb, 0x5A, sizeof(tv_block_q8_K) * (NK + 1));
                kern_traits_ref(TV_TYPE_Q8_K)->from_float(xk, ka, 256 * nb);
                kern_traits(&g_kt, TV_TYPE_Q8_K)->from_float(xk, kb, 256 * nb);
                for (int k = 0; k <= nb && k <= NK; k++)
                    if (memcmp(&ka[k], &kb[k], sizeof ka[k]))
                        fail_msg("%s Q8_K from_float %d blocks: block %d differs from the reference", PATHS[pi], nb, k);
            }
            assert_int_equal(ka[6].bsums[0], 0);
            assert_int_equal(ka[7].bsums[15], 2032);
            assert_int_equal(ka[8].bsums[3], -2032);
            free(xk); free(ka); free(kb);
        }
        // axpy: y += a * x against a double oracle, on finite inputs, lengths across the vector width
        for (size_t ti = 0; ti < 3; ti++) {
            const tv_type_traits *ft = kern_traits(&g_kt, types[ti]), *rt = kern_traits_ref(types[ti]);
            assert_non_null(ft->axpy);
            for (int n = 1; n <= 37; n += 6) {
                float src[40], y0[40], yr[40], yf[40], xd[40];
                for (int i = 0; i < n; i++) { src[i] = rnd_normal(); y0[i] = rnd_normal(); }
                unsigned char xt[160];
                rt->from_float(src, xt, n);
                rt->to_float(xt, xd, n);
                memcpy(yr, y0, sizeof y0);
                memcpy(yf, y0, sizeof y0);
                rt->axpy(n, 0.75f, xt, yr);
                ft->axpy(n, 0.75f, xt, yf);
                for (int i = 0; i < n; i++) {
                    double want = (double)y0[i] + 0.75 * (double)xd[i];
                    double tol = 1e-6 * (fabs((double)y0[i]) + fabs(0.75 * xd[i])) + 1e-30;
                    if (fabs(yr[i] - want) > tol || fabs(yf[i] - want) > tol)
                        fail_msg("%s axpy %s n=%d i=%d: ref %g fast %g want %g", PATHS[pi], rt->name, n, i, yr[i], yf[i], want);
                }
            }
        }
    }
    assert_true(use_path(NULL));
    free(x); free(a); free(b); free(ha); free(hb); free(h);
}

// The packed layouts' addressing helpers (pack_layout.h) against the scalar repack, byte by byte: every
// field read through a helper is the plain row's (Q8_0 quants ^ 0x80, the padding rows' zeros), every
// byte of a group is some field's exactly once, and each block's quant vectors are 64-byte aligned in
// the group. The kernels take every offset from the helpers, so this pins them to the repack.
static void claim(uint8_t *cnt, size_t at, size_t len) {
    for (size_t i = 0; i < len; i++) cnt[at + i]++;
}
static void test_pack_layout(void **state) {
    (void)state;
    const tv_type types[] = { TV_TYPE_Q8_0, TV_TYPE_Q4_0, TV_TYPE_IQ4_XS };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tv_type t = types[ti];
        const bool iq4 = t == TV_TYPE_IQ4_XS, q4 = t == TV_TYPE_Q4_0;
        const int64_t nbs[] = { 1, 2, 3, 9, 36, 65 };
        for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++)
            for (int64_t rows = 16; rows <= 17; rows++) {
                const int64_t nb = nbs[ni], n = nb * (iq4 ? TV_QK_K : TV_QK8_0);
                const size_t wrs = kern_row_size(t, n), bs = wrs / (size_t)nb, gsz = TV_PACK_ROWS * wrs;
                const size_t psz = packed_size(t, n, rows);
                uint8_t *plain = calloc((size_t)((rows + 15) / 16) * 16, wrs), *pk = malloc(psz), *cnt = malloc(gsz);
                assert_true(plain && pk && cnt);
                for (size_t i = 0; i < (size_t)rows * wrs; i++) plain[i] = (uint8_t)(rnd_u32() >> 24);
                memset(pk, 0xA5, psz);
                kern_traits_ref(t)->repack(plain, wrs, n, rows, pk);
                for (int64_t g = 0; g * TV_PACK_ROWS < rows; g++) {
                    const uint8_t *gp = pk + (size_t)g * gsz;
                    memset(cnt, 0, gsz);
                    for (int l = 0; l < TV_PACK_ROWS; l++) {
                        const uint8_t *row = plain + (size_t)(g * TV_PACK_ROWS + l) * wrs;   // zeros past rows
                        for (int64_t b = 0; b < nb; b++) {
                            const uint8_t *blk = row + (size_t)b * bs;
                            if (iq4) {   // plain: f16 d | u16 scales_h | scales_l[4] | qs[128]
                                assert_memory_equal(gp + pkx_d(nb, b) + 2 * l, blk, 2);
                                assert_memory_equal(gp + pkx_sh(nb, b) + 2 * l, blk + 2, 2);
                                assert_memory_equal(gp + pkx_sl(nb, b) + 4 * l, blk + 4, 4);
                                claim(cnt, pkx_d(nb, b) + 2 * l, 2);
                                claim(cnt, pkx_sh(nb, b) + 2 * l, 2);
                                claim(cnt, pkx_sl(nb, b) + 4 * l, 4);
                                for (int v = 0; v < 32; v++) {
                                    assert_memory_equal(gp + pkx_qs(nb, b) + 64 * v + 4 * l, blk + 8 + 4 * v, 4);
                                    claim(cnt, pkx_qs(nb, b) + 64 * v + 4 * l, 4);
                                }
                                assert_int_equal(pkx_qs(nb, b) % 64, 0);
                                assert_int_equal(pkx_sl(nb, b) % 64, 0);
                                continue;
                            }
                            assert_memory_equal(gp + pk16_d(q4, nb, b) + 2 * l, blk, 2);   // plain: f16 d | quants
                            claim(cnt, pk16_d(q4, nb, b) + 2 * l, 2);
                            for (int k = 0; k < (q4 ? 4 : 8); k++) {
                                uint8_t want[4];
                                for (int e = 0; e < 4; e++) want[e] = (uint8_t)(blk[2 + 4 * k + e] ^ (q4 ? 0 : 0x80));
                                assert_memory_equal(gp + pk16_q(q4, nb, b) + 64 * k + 4 * l, want, 4);
                                claim(cnt, pk16_q(q4, nb, b) + 64 * k + 4 * l, 4);
                            }
                            assert_int_equal(pk16_q(q4, nb, b) % 64, 0);
                        }
                    }
                    for (size_t i = 0; i < gsz; i++)
                        if (cnt[i] != 1) fail_msg("%s nb=%lld: group byte %zu claimed %d times", kern_traits_ref(t)->name,
                                                  (long long)nb, i, cnt[i]);
                }
                free(plain), free(pk), free(cnt);
            }
    }
}

// Packed weights: the scalar repack + packed GEMM against the plain reference kernels (within the
// fast-path budget: fmaf per block vs multiply-then-add), and every path's packed GEMM bit-exact
// with the scalar one (the canonical chain). Row counts around 16 (padding), token counts across
// the 8-token groups and the 256-token passes, row ranges starting at every group boundary.
static void test_packed_vs_ref(void **state) {
    (void)state;
    const tv_type types[] = { TV_TYPE_Q8_0, TV_TYPE_Q4_0, TV_TYPE_Q4_K, TV_TYPE_Q5_K, TV_TYPE_Q6_K,
                              TV_TYPE_Q3_K, TV_TYPE_Q2_K, TV_TYPE_IQ4_XS, TV_TYPE_MXFP4 };
    struct { int64_t n, rows, tok; } shapes[] = { { 32, 1, 3 }, { 96, 15, 9 }, { 256, 16, 1 }, { 2048 + 32, 17, 2 },
                                                 { 512, 40, 300 }, { 4096, 70, 40 },   // several row panels
                                                 { 256, 33, 5 }, { 2048 + 256, 48, 37 },
                                                 { 768, 32, 6 }, { 2048, 47, 7 },   // batched decode's expert rows
                                                 { 512, 20, 19 },    // one pass of several tiles
                                                 { 512, 70, 1 }, { 256, 48, 2 } };   // decode (1-2 tokens) over several groups
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tv_type t = types[ti];
        const tv_type_traits *rt = kern_traits_ref(t), *rv = kern_traits_ref(rt->vec_dot_type);
        const bool k_quant = rt->vec_dot_type == TV_TYPE_Q8_K;   // activations: plain Q8_K rows
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t n = shapes[si].n, rows = shapes[si].rows, tok = shapes[si].tok;
            if (n % rt->blck_size) continue;
            float *w = malloc(sizeof(float) * (size_t)(n * rows)), *x = malloc(sizeof(float) * (size_t)(n * tok));
            fill_weights(w, n * rows);
            fill_weights(x, n * tok);
            unsigned char *wq = quantize_rows(t, w, rows, n, rt);
            unsigned char *xq = quantize_rows(rt->vec_dot_type, x, tok, n, rv);
            const size_t wrs = kern_row_size(t, n), xrs = kern_row_size(rt->vec_dot_type, n), psz = packed_size(t, n, rows);
            assert_int_equal(psz, (size_t)((rows + 15) / 16) * 16 * wrs);
            if (t == TV_TYPE_Q8_0) {   // -128 in a file: the unsigned offset must not wrap
                tv_block_q8_0 *b0 = (tv_block_q8_0 *)wq;
                for (int j = 0; j < 32; j += 3) b0[0].qs[j] = -128;
            }
            if (t == TV_TYPE_Q4_K) {   // the largest 6-bit scales and mins
                tv_block_q4_K *b0 = (tv_block_q4_K *)wq;
                memset(b0[0].scales, 0xFF, sizeof b0[0].scales);
            }
            if (t == TV_TYPE_Q5_K) {   // the largest scales and mins, every fifth bit set (codes 16..31)
                tv_block_q5_K *b0 = (tv_block_q5_K *)wq;
                memset(b0[0].scales, 0xFF, sizeof b0[0].scales);
                memset(b0[0].qh, 0xFF, sizeof b0[0].qh);
            }
            if (t == TV_TYPE_Q6_K) {   // the extreme int8 scales
                tv_block_q6_K *b0 = (tv_block_q6_K *)wq;
                b0[0].scales[0] = -128;
                b0[0].scales[15] = 127;
            }
            if (t == TV_TYPE_Q3_K) {   // the extreme scales (-32 in block 0, +31 in block 1), every high bit set
                tv_block_q3_K *b0 = (tv_block_q3_K *)wq;   // in block 0 (codes 0..3) and none in block 1 (-4..-1)
                memset(b0[0].scales, 0x00, sizeof b0[0].scales);
                memset(b0[0].hmask, 0xFF, sizeof b0[0].hmask);
                if (n >= 512) {
                    memset(b0[1].scales, 0xFF, sizeof b0[1].scales);
                    memset(b0[1].hmask, 0x00, sizeof b0[1].hmask);
                }
            }
            if (t == TV_TYPE_Q2_K) {   // the largest scales and mins, every code 3
                tv_block_q2_K *b0 = (tv_block_q2_K *)wq;
                memset(b0[0].scales, 0xFF, sizeof b0[0].scales);
                memset(b0[0].qs, 0xFF, sizeof b0[0].qs);
            }
            if (t == TV_TYPE_IQ4_XS) {   // the extreme scales (-32, +31) and grid values (-127, 113)
                tv_block_iq4_xs *b0 = (tv_block_iq4_xs *)wq;
                b0[0].scales_l[0] = 0xF0;    // sub-block 0: low 0, sub-block 1: low 15
                b0[0].scales_h = 0x000C;     // sub-block 0: high 0 (ls 0), sub-block 1: high 3 (ls 63)
                memset(b0[0].qs, 0x0F, 16);   // codes 15 (113) and 0 (-127)
                memset(b0[0].qs + 16, 0xF0, 16);
            }
            unsigned char *wp = malloc(psz);
            memset(wp, 0xA5, psz);
            rt->repack(wq, wrs, n, rows, wp);
            // the packed activation rows: the same Q8_0 quants, scales as f32, block sums (K-quants:
            // the plain Q8_K rows)
            const size_t prs = packed_act_row_size(t, n);
            unsigned char *xp = malloc(prs * (size_t)tok);
            if (k_quant) {
                assert_int_equal(prs, xrs);
                memcpy(xp, xq, prs * (size_t)tok);
            } else {
                for (int64_t tk = 0; tk < tok; tk++) packed_act_from_float(rv->from_float, x + tk * n, xp + tk * prs, n);
            }
            for (int64_t tk = 0; tk < tok && !k_quant; tk++) {
                assert_memory_equal(xp + tk * prs, ((tv_block_q8_0 *)(xq + tk * xrs))[0].qs, 32);
                int32_t s0 = 0;
                for (int j = 0; j < 32; j++) s0 += ((tv_block_q8_0 *)(xq + tk * xrs))[0].qs[j];
                assert_int_equal(((int32_t *)(xp + tk * prs + n + 4 * (n / 32)))[0], s0);
            }
            const size_t ny = (size_t)(rows * tok);
            float *ref = malloc(sizeof(float) * ny), *pk = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * ny);
            rt->gemm_packed(n, 0, rows, wp, wrs, tok, xp, prs, pk, rows);
            for (int64_t tk = 0; tk < tok; tk++)
                for (int64_t r = 0; r < rows; r++) {
                    rt->vec_dot(n, &ref[tk * rows + r], wq + r * wrs, xq + tk * xrs);
                    check_close("packed ref", "generic", rt->name, n, pk[tk * rows + r], ref[tk * rows + r],
                                oracle_abs_dot(t, wq + r * wrs, xq + tk * xrs, n));
                }
            for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
                if (!use_path(PATHS[pi])) continue;
                const tv_type_traits *ft = kern_traits(&g_kt, t);
                assert_non_null(ft->gemm_packed);
                if (ft->pack_pays) assert_true(ft->gemm_packed != rt->gemm_packed);   // a real fast kernel
                for (int64_t r0 = 0; r0 < rows; r0 += 16) {
                    for (size_t i = 0; i < ny; i++) got[i] = NAN;
                    ft->gemm_packed(n, r0, rows, wp, wrs, tok, xp, prs, got, rows);
                    for (int64_t tk = 0; tk < tok; tk++)
                        for (int64_t r = 0; r < rows; r++) {
                            float g = got[tk * rows + r];
                            if (r < r0) { assert_true(isnan(g)); continue; }
                            if (memcmp(&g, &pk[tk * rows + r], sizeof g) != 0)
                                fail_msg("packed %s %s n=%lld rows=%lld r=%lld t=%lld: %.9g vs scalar %.9g", PATHS[pi],
                                         rt->name, (long long)n, (long long)rows, (long long)r, (long long)tk, g,
                                         pk[tk * rows + r]);
                        }
                }
                if (ft->plain_matches_packed) {   // this path's plain GEMM runs the same chain: same bits
                    ft->gemm(n, 0, rows, wq, wrs, tok, xq, xrs, got, rows);
                    assert_memory_equal(got, pk, sizeof(float) * ny);
                }
            }
            assert_true(use_path(NULL));
            free(w); free(x); free(wq); free(xq); free(xp); free(wp); free(ref); free(pk); free(got);
        }
    }
}

// ---------------------------------------------------------------- matmul and pool
typedef struct { int hits[8]; } pool_probe;

static void probe_fn(void *arg, int ith, int nth) {
    pool_probe *p = arg;
    assert_true(ith >= 0 && ith < nth && nth <= 8);
    __atomic_fetch_add(&p->hits[ith], 1, __ATOMIC_RELAXED);
}

static void test_pool(void **state) {
    (void)state;
    tv_error err = { 0 };
    assert_null(pool_create(0, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    pool_free(NULL);
    assert_int_equal(pool_size(NULL), 1);
    for (int nth = 1; nth <= 4; nth++) {
        tv_pool *p = pool_create(nth, &err);
        assert_non_null(p);
        assert_int_equal(pool_size(p), nth);
        pool_probe pr = { { 0 } };
        for (int it = 0; it < 2000; it++) pool_run(p, probe_fn, &pr);
        for (int i = 0; i < nth; i++) assert_int_equal(pr.hits[i], 2000);
        pool_free(p);
    }
}

// pool_run_any: items claimed from a counter by whichever threads run the job
typedef struct {
    int next, active, n_items, spin;
    int done[64];
    int calls[8];
} any_job;

static void any_fn(void *arg, int ith, int nth) {
    any_job *j = arg;
    assert_true(ith >= 0 && ith < nth && nth <= 8);
    __atomic_fetch_add(&j->active, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&j->calls[ith], 1, __ATOMIC_RELAXED);
    for (int i; (i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n_items;) {
        for (volatile int k = 0; k < j->spin * (i % 4); k++) {}   // uneven items
        __atomic_fetch_add(&j->done[i], 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_sub(&j->active, 1, __ATOMIC_SEQ_CST);
}

// Every item exactly once, no call of fn still running when pool_run_any returns (a worker that
// entered is waited for; one that had not does not run it later), and plain pool_runs in between
// still run on every thread (a worker that skipped a job enters the next one).
static void test_pool_any(void **state) {
    (void)state;
    tv_error err = { 0 };
    for (int nth = 1; nth <= 4; nth++) {
        tv_pool *p = pool_create(nth, &err);
        assert_non_null(p);
        pool_probe pr = { { 0 } };
        long n_skipped = 0;
        for (int it = 0; it < 20000; it++) {   // short jobs, and every 50th long enough for the workers to join
            any_job j = { .n_items = 1 + it % 64, .spin = it % 50 ? 400 : 40000 };
            pool_run_any(p, any_fn, &j);
            assert_int_equal(__atomic_load_n(&j.active, __ATOMIC_SEQ_CST), 0);
            for (int i = 0; i < 64; i++) assert_int_equal(j.done[i], i < j.n_items);
            assert_int_equal(j.calls[0], 1);
            for (int t = 1; t < nth; t++) n_skipped += 1 - j.calls[t];
            if (it % 4 == 0) pool_run(p, probe_fn, &pr);
        }
        for (int i = 0; i < nth; i++) assert_int_equal(pr.hits[i], 5000);
        print_message("pool_run_any, %d threads: workers skipped %ld of %d jobs\n", nth, n_skipped, 20000 * (nth - 1));
        pool_free(p);
    }
    pool_run_any(NULL, any_fn, &(any_job){ .n_items = 3 });
}

static void test_matmul_pools(void **state) {
    (void)state;
    assert_true(use_path(test_cpu_path()));
    // { 2048, 400, 2 }: a memory-bound call of many claimed chunks per thread (matmul.c steal slots)
    struct { int64_t n, rows, tok; } shapes[] = { { 4096, 37, 50 }, { 256, 67, 3 }, { 512 + 256, 9, 1 }, { 2048, 130, 7 }, { 172, 64, 5 },
                                                  { 2048, 400, 2 } };
    tv_error err = { 0 };
    tv_pool *pools[4] = { NULL };
    for (int p = 1; p <= 3; p++) pools[p] = pool_create(p, &err);
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        tv_type t = WEIGHT_TYPES[ti];
        const tv_type_traits *rt = kern_traits_ref(t);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int64_t n = shapes[si].n, rows = shapes[si].rows, tok = shapes[si].tok;
            if (n % rt->blck_size || n % kern_traits_ref(rt->vec_dot_type)->blck_size) continue;
            float *w = malloc(sizeof(float) * (size_t)(n * rows)), *x = malloc(sizeof(float) * (size_t)(n * tok));
            fill_weights(w, n * rows);
            fill_weights(x, n * tok);
            void *wq = quantize_rows(t, w, rows, n, rt);
            tv_tensor tw = { .name = "w", .type = t, .n_dims = 2, .ne = { n, rows, 1, 1 },
                             .nbytes = kern_row_size(t, n) * (size_t)rows, .data = wq };
            size_t ws = kern_matmul_wsize(t, n, tok);
            void *wsp = ws ? malloc(ws) : NULL;
            float *y1 = malloc(sizeof(float) * (size_t)(rows * tok)), *yp = malloc(sizeof(float) * (size_t)(rows * tok));
            kern_matmul(&g_kt, &tw, x, tok, y1, wsp, pools[1]);
            // against the reference kernels, element by element
            const tv_type_traits *rv = kern_traits_ref(rt->vec_dot_type);
            size_t xrs = kern_row_size(rt->vec_dot_type, n);
            unsigned char *xq = quantize_rows(rt->vec_dot_type, x, tok, n, rv);
            for (int64_t tk = 0; tk < tok; tk++)
                for (int64_t r = 0; r < rows; r++) {
                    float want;
                    const unsigned char *wr = (const unsigned char *)wq + r * kern_row_size(t, n);
                    rt->vec_dot(n, &want, wr, xq + tk * xrs);
                    double sc = oracle_abs_dot(t, wr, xq + tk * xrs, n);
                    // the activation quantizer of a fast path may round a tie differently: allow a
                    // step of the activation grid on top of the summation budget
                    if (fabs((double)y1[tk * rows + r] - want) > FAST_REL * sc + 2e-2 * sc / sqrt((double)n))
                        fail_msg("matmul %s n=%lld r=%lld t=%lld: %g vs ref %g", rt->name, (long long)n,
                                 (long long)r, (long long)tk, y1[tk * rows + r], want);
                }
            for (int p = 2; p <= 3; p++) {
                kern_matmul(&g_kt, &tw, x, tok, yp, wsp, pools[p]);
                assert_memory_equal(y1, yp, sizeof(float) * (size_t)(rows * tok));
            }
            kern_matmul(&g_kt, &tw, x, tok, yp, wsp, NULL);
            assert_memory_equal(y1, yp, sizeof(float) * (size_t)(rows * tok));
            free(w); free(x); free(wq); free(wsp); free(y1); free(yp); free(xq);
        }
    }
    for (int p = 1; p <= 3; p++) pool_free(pools[p]);
}

// kern_matmul_n: weights sharing one activation quantization (mixed weight types of one vec_dot_type,
// packed and plain) give exactly the bits of one kern_matmul each, on 1 and 2 threads.
static void test_matmul_shared(void **state) {
    (void)state;
    assert_true(use_path(test_cpu_path()));
    struct { tv_type t; bool pack; int64_t rows; } sets[][3] = {
        { { TV_TYPE_Q8_0, true, 48 }, { TV_TYPE_Q4_0, true, 17 }, { TV_TYPE_Q4_0, true, 33 } },
        { { TV_TYPE_Q8_0, false, 48 }, { TV_TYPE_Q4_0, false, 17 }, { TV_TYPE_Q8_0, false, 33 } },
        { { TV_TYPE_Q4_K, false, 40 }, { TV_TYPE_Q6_K, false, 9 }, { TV_TYPE_Q4_K, false, 16 } },
        { { TV_TYPE_F16, false, 20 }, { TV_TYPE_BF16, false, 7 }, { TV_TYPE_F32, false, 3 } },
        { { TV_TYPE_Q5_0, false, 48 }, { TV_TYPE_IQ4_NL, false, 17 }, { TV_TYPE_Q8_0, false, 33 } },
        { { TV_TYPE_Q4_1, false, 20 }, { TV_TYPE_Q5_1, false, 7 }, { TV_TYPE_Q4_1, false, 3 } },
        { { TV_TYPE_Q2_K, false, 40 }, { TV_TYPE_Q3_K, false, 9 }, { TV_TYPE_Q5_K, false, 16 } },
        { { TV_TYPE_Q2_K, true, 40 }, { TV_TYPE_Q3_K, true, 9 }, { TV_TYPE_Q6_K, true, 16 } },
        { { TV_TYPE_IQ4_XS, false, 24 }, { TV_TYPE_Q6_K, false, 9 }, { TV_TYPE_Q4_K, false, 18 } },
    };
    const int64_t n = 512, tok = 37;
    tv_error err = { 0 };
    tv_pool *pools[2] = { NULL, pool_create(2, &err) };
    float *x = malloc(sizeof(float) * (size_t)(n * tok));
    fill_weights(x, n * tok);
    for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++) {
        tv_tensor tw[3];
        const tv_tensor *tp[3];
        void *wq[3];
        float *ya[3], *yb[3];
        size_t ws = 0;
        for (int i = 0; i < 3; i++) {
            const tv_type t = sets[si][i].t;
            const int64_t rows = sets[si][i].rows;
            const tv_type_traits *rt = kern_traits_ref(t);
            float *w = malloc(sizeof(float) * (size_t)(n * rows));
            fill_weights(w, n * rows);
            void *plain = quantize_rows(t, w, rows, n, rt);
            size_t nb = kern_row_size(t, n) * (size_t)rows;
            wq[i] = plain;
            if (sets[si][i].pack) {
                nb = packed_size(t, n, rows);
                wq[i] = malloc(nb);
                rt->repack(plain, kern_row_size(t, n), n, rows, wq[i]);
                free(plain);
            }
            tw[i] = (tv_tensor){ .name = "w", .type = t, .n_dims = 2, .ne = { n, rows, 1, 1 }, .nbytes = nb,
                                 .data = wq[i], .packed = sets[si][i].pack };
            tp[i] = &tw[i];
            ya[i] = malloc(sizeof(float) * (size_t)(rows * tok));
            yb[i] = malloc(sizeof(float) * (size_t)(rows * tok));
            size_t s = kern_matmul_wsize(t, n, tok);
            if (s > ws) ws = s;
            free(w);
            if (i) assert_true(kern_matmul_can_share(&tw[0], &tw[i]));
        }
        void *wsp = ws ? malloc(ws) : NULL;
        for (int p = 0; p < 2; p++) {
            for (int i = 0; i < 3; i++) kern_matmul(&g_kt, &tw[i], x, tok, ya[i], wsp, pools[p]);
            kern_matmul_n(&g_kt, tp, yb, 3, x, tok, wsp, pools[p]);
            for (int i = 0; i < 3; i++)
                assert_memory_equal(ya[i], yb[i], sizeof(float) * (size_t)(sets[si][i].rows * tok));
        }
        for (int i = 0; i < 3; i++) { free(wq[i]); free(ya[i]); free(yb[i]); }
        free(wsp);
    }
    tv_tensor a = { .type = TV_TYPE_Q8_0, .ne = { 512, 1, 1, 1 } }, b = { .type = TV_TYPE_Q4_K, .ne = { 512, 1, 1, 1 } };
    assert_false(kern_matmul_can_share(&a, &b));   // Q8_0 vs Q8_K activations
    b.type = TV_TYPE_Q4_0;
    b.packed = true;
    assert_false(kern_matmul_can_share(&a, &b));   // packed and plain read different activation rows
    b.packed = false;
    b.ne[0] = 256;
    assert_false(kern_matmul_can_share(&a, &b));   // row lengths differ
    free(x);
    pool_free(pools[1]);
}

// Tables are values: each caller fills its own, and two paths coexist in one process.
static void test_kernels_init_errors(void **state) {
    (void)state;
    tv_error err = { 0 };
    kern_table gen, best;
    assert_int_equal(kern_table_init(&gen, "sse9", &err), TV_ERR_INVALID);
    assert_int_equal(kern_table_init(&gen, "generic", &err), TV_OK);
    assert_int_equal(kern_table_init(&best, NULL, &err), TV_OK);
    assert_string_equal(gen.path, "generic");
    assert_true(gen.ops == ops_ref());
    for (int t = 0; t < TV_TYPE_COUNT; t++)   // generic is the reference table, untouched by filling best
        if (kern_traits_ref((tv_type)t)) assert_true(kern_traits(&gen, (tv_type)t)->vec_dot == kern_traits_ref((tv_type)t)->vec_dot);
    if (strcmp(best.path, "generic") != 0) {
        assert_true(kern_traits(&best, TV_TYPE_Q8_0)->vec_dot != kern_traits_ref(TV_TYPE_Q8_0)->vec_dot);
        assert_true(best.ops != ops_ref());
    }
}

// The amx path: present exactly when tv_cpu_amx_unavailable() gives no reason (then it is the
// default), refused with that reason otherwise; it is the AVX-512 VNNI table with AMX packed GEMMs
// installed over it (their results: test_packed_vs_ref, bit for bit).
static void test_amx_path(void **state) {
    (void)state;
    tv_error err = { 0 };
    kern_table amx, vnni, best;
    const char *why = tv_cpu_amx_unavailable();
    assert_int_equal(kern_table_init(&best, NULL, &err), TV_OK);
    assert_string_equal(best.path, tv_cpu_best_path());
    if (why) {
        print_message("amx path unavailable here (%s): its kernel tests are skipped\n", why);
        assert_int_equal(kern_table_init(&amx, "amx", &err), TV_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, why));
        assert_string_not_equal(best.path, "amx");
        return;
    }
    assert_int_equal(kern_table_init(&amx, "amx", &err), TV_OK);
    assert_int_equal(kern_table_init(&vnni, "avx512", &err), TV_OK);
    assert_string_equal(amx.path, "amx");
    assert_string_equal(best.path, "amx");
    assert_true(amx.ops == vnni.ops);
    for (int t = 0; t < TV_TYPE_COUNT; t++) {
        const tv_type_traits *a = kern_traits(&amx, (tv_type)t), *v = kern_traits(&vnni, (tv_type)t);
        if (!a) continue;
        assert_true(a->vec_dot == v->vec_dot && a->gemm == v->gemm && a->from_float == v->from_float);
        if (t == TV_TYPE_Q8_0 || t == TV_TYPE_Q4_0 || t == TV_TYPE_IQ4_XS)
            assert_true(a->gemm_packed != v->gemm_packed && a->pack_pays);
        else assert_true(a->gemm_packed == v->gemm_packed);
    }
}

int main(int argc, char **argv) {
    test_rng_seed(0x9E3779B97F4A7C15ull);
    if (argc > 1) cmocka_set_test_filter(argv[1]);   // e.g. test_mxfp4*
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_quant_error_budgets),
        cmocka_unit_test(test_ref_vec_dot_vs_oracle),
        cmocka_unit_test(test_dequant_vs_ggml),
        cmocka_unit_test(test_q8_0_q4_0_known_answer),
        cmocka_unit_test(test_q4_K_known_answer),
        cmocka_unit_test(test_q6_K_known_answer),
        cmocka_unit_test(test_paths_vs_ref),
        cmocka_unit_test(test_paths_extreme_blocks),
        cmocka_unit_test(test_mxfp4_gemm),
        cmocka_unit_test(test_mxfp4_from_float),
        cmocka_unit_test(test_paths_row_conversion),
        cmocka_unit_test(test_amx_path),
        cmocka_unit_test(test_pack_layout),
        cmocka_unit_test(test_packed_vs_ref),
        cmocka_unit_test(test_pool), cmocka_unit_test(test_pool_any),
        cmocka_unit_test(test_matmul_pools),
        cmocka_unit_test(test_matmul_shared),
        cmocka_unit_test(test_kernels_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
