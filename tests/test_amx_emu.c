// test_amx_emu.c — the AMX kernels (src/kernels/x86/kern_amx.c) on a machine without AMX: the file is
// compiled here against a C emulation of the tile instructions (TV_AMX_EMU) and its packed Q8_0 / Q4_0 /
// IQ4_XS GEMMs must equal the scalar reference bit for bit (the canonical chain, ref_q.c / ref_k.c).
// Everything but the tile instructions is the real code (unpack, addressing, pipelining, scaling,
// masks), so a wrong offset in it fails here; test_kernels covers the real tiles on AMX hardware.
// Needs AVX-512 VNNI (the kernels' own vector code); skipped without it, and off x86.
//
// The emulation: 8 tiles of 16 rows x 64 bytes with the rows / colsb of the last LDTILECFG;
// tileloadd / tilestored move rows x colsb bytes (the rest of a loaded tile zeroed), tilezero clears,
// tdpbssd C[m][n] += sum_k sum_i A[m][4k + i] * B[k][4n + i] (int8 x int8 into int32). Every use of a
// tile is checked against the configuration (shapes agree, tiles configured, not released).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__AVX512VNNI__)
#define TV_AMX_EMU 1

static struct {
    bool on;                      // configured (LDTILECFG), not released
    uint8_t rows[8];
    uint16_t colsb[8];
    uint8_t t[8][16][64];         // the tile registers
} emu;

static void emu_ldcfg(const void *cfg) {   // the 64-byte operand: palette, ..., colsb[16] at 16, rows[16] at 48
    const uint8_t *c = cfg;
    assert_int_equal(c[0], 1);   // palette 1
    for (int i = 1; i < 16; i++) assert_int_equal(c[i], 0);   // start_row and reserved: LDTILECFG faults
    memset(&emu, 0, sizeof emu);
    for (int i = 0; i < 16; i++) {
        uint16_t cb;
        memcpy(&cb, c + 16 + 2 * i, 2);
        const uint8_t r = c[48 + i];
        assert_true((r == 0) == (cb == 0));   // a tile is configured whole or not at all
        if (i >= 8) {   // palette 1 has 8 tiles
            assert_true(r == 0 && cb == 0);
            continue;
        }
        emu.colsb[i] = cb, emu.rows[i] = r;
        assert_true(emu.rows[i] <= 16 && emu.colsb[i] <= 64 && emu.colsb[i] % 4 == 0);
    }
    emu.on = true;
}
static void emu_use(int t) { assert_true(emu.on && t >= 0 && t < 8 && emu.rows[t] && emu.colsb[t]); }
static void emu_load(int t, const void *base, long stride) {
    emu_use(t);
    memset(emu.t[t], 0, sizeof emu.t[t]);
    for (int r = 0; r < emu.rows[t]; r++) memcpy(emu.t[t][r], (const uint8_t *)base + r * stride, emu.colsb[t]);
}
static void emu_store(int t, void *base, long stride) {
    emu_use(t);
    for (int r = 0; r < emu.rows[t]; r++) memcpy((uint8_t *)base + r * stride, emu.t[t][r], emu.colsb[t]);
}
static void emu_zero(int t) {
    emu_use(t);
    memset(emu.t[t], 0, sizeof emu.t[t]);
}
static void emu_dpbssd(int c, int a, int b) {
    emu_use(c), emu_use(a), emu_use(b);
    const int m = emu.rows[c], n = emu.colsb[c] / 4, kd = emu.colsb[a] / 4;
    assert_true(emu.rows[a] == m && emu.rows[b] == kd && emu.colsb[b] == emu.colsb[c]);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            int32_t s;
            memcpy(&s, &emu.t[c][i][4 * j], 4);
            for (int k = 0; k < kd; k++)
                for (int e = 0; e < 4; e++) s += (int8_t)emu.t[a][i][4 * k + e] * (int8_t)emu.t[b][k][4 * j + e];
            memcpy(&emu.t[c][i][4 * j], &s, 4);
        }
}
#define AMX_LDCFG(c) emu_ldcfg(&(c))
#define AMX_RELEASE() (emu.on = false)
#define TILE_LOAD(t, base, stride) emu_load(t, base, stride)
#define TILE_STORE(t, base, stride) emu_store(t, base, stride)
#define TILE_ZERO(t) emu_zero(t)
#define TILE_DPBSSD(c, a, b) emu_dpbssd(c, a, b)
#define x86_install_amx x86_install_amx_emu   // not the library's (when it has one)
#include "kernels/x86/kern_amx.c"

#include "test_util.h"

static void fill(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = rnd_normal() * (rnd_u32() % 100 == 0 ? 5.0f : 1.0f);
}

// One type: every shape x token count x first row group, the emulated AMX GEMM memcmp'd against the
// scalar packed GEMM (x86_install_amx_emu's table entry: below AMX_MIN_TOK the VNNI kernel it keeps).
static __attribute__((noinline)) void check_type(tv_type t, const int64_t *ns, size_t n_ns, tv_gemm_fn ref_gemm) {
    tv_type_traits tab[TV_TYPE_COUNT];
    memset(tab, 0, sizeof tab);
    x86_install_amx_emu(tab);
    const tv_gemm_fn amx = tab[t].gemm_packed;
    assert_non_null(amx);
    const tv_type_traits *rt = kern_traits_ref(t), *rv = kern_traits_ref(rt->vec_dot_type);
    const bool k_quant = rt->vec_dot_type == TV_TYPE_Q8_K;
    const int64_t rows_l[] = { 16, 17, 33, 48 }, nt_l[] = { 1, 8, 9, 16, 17, 32, 40 };
    const int64_t max_nt = 40;
    for (size_t ni = 0; ni < n_ns; ni++) {
        const int64_t n = ns[ni];
        for (size_t ri = 0; ri < sizeof rows_l / sizeof rows_l[0]; ri++) {
            const int64_t rows = rows_l[ri];
            const size_t wrs = kern_row_size(t, n), psz = packed_size(t, n, rows);
            // strides wider than the data: a kernel that derived ys from r1 or xrs from n would fail
            const int64_t ys = rows + 3;
            const size_t prs = packed_act_row_size(t, n), xrs = prs + 64, ny = (size_t)(ys * max_nt);
            float *w = malloc(sizeof(float) * (size_t)(n * rows)), *x = malloc(sizeof(float) * (size_t)(n * max_nt));
            uint8_t *wq = malloc(wrs * (size_t)rows), *wp = malloc(psz), *xp = calloc((size_t)max_nt, xrs);
            float *want = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * ny);
            assert_true(w && x && wq && wp && xp && want && got);
            fill(w, n * rows);
            fill(x, n * max_nt);
            for (int64_t r = 0; r < rows; r++) rt->from_float(w + r * n, wq + (size_t)r * wrs, n);
            if (t == TV_TYPE_Q8_0)   // -128: the signed weight the unsigned storage must not wrap
                for (int j = 0; j < 32; j += 3) ((tv_block_q8_0 *)wq)[0].qs[j] = -128;
            if (t == TV_TYPE_IQ4_XS) {   // the extreme scales (ls 0 and 63) and grid values
                tv_block_iq4_xs *b0 = (tv_block_iq4_xs *)wq;
                b0[0].scales_l[0] = 0xF0;
                b0[0].scales_h = 0x000C;
                memset(b0[0].qs, 0x0F, 16);
            }
            memset(wp, 0xA5, psz);
            rt->repack(wq, wrs, n, rows, wp);
            for (int64_t k = 0; k < max_nt; k++) {
                if (k_quant) rv->from_float(x + k * n, xp + (size_t)k * xrs, n);
                else packed_act_from_float(rv->from_float, x + k * n, xp + (size_t)k * xrs, n);
            }
            for (size_t ti = 0; ti < sizeof nt_l / sizeof nt_l[0]; ti++) {
                const int64_t nt = nt_l[ti];
                for (int64_t r0 = 0; r0 < rows; r0 += 16) {
                    for (size_t i = 0; i < ny; i++) want[i] = got[i] = -1.0f;
                    ref_gemm(n, r0, rows, wp, wrs, nt, xp, xrs, want, ys);
                    amx(n, r0, rows, wp, wrs, nt, xp, xrs, got, ys);
                    assert_false(emu.on);   // the call released its tiles
                    if (memcmp(got, want, sizeof(float) * (size_t)(nt * ys)) != 0)
                        for (int64_t k = 0; k < nt; k++)
                            for (int64_t r = 0; r < ys; r++)
                                if (memcmp(&got[k * ys + r], &want[k * ys + r], sizeof(float)) != 0)
                                    fail_msg("amx (emulated) %s n=%lld rows=%lld nt=%lld r0=%lld: y[%lld][%lld] = %.9g, "
                                             "scalar %.9g", rt->name, (long long)n, (long long)rows, (long long)nt,
                                             (long long)r0, (long long)k, (long long)r, got[k * ys + r],
                                             want[k * ys + r]);
                }
            }
            free(w), free(x), free(wq), free(wp), free(xp), free(want), free(got);
        }
    }
}

static bool have_cpu(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}
#define SKIP_IF_NO_CPU()                                                                            \
    do {                                                                                            \
        if (!have_cpu()) { print_message("skipped: no AVX-512 VNNI (the AMX kernels' vector code)\n"); skip(); } \
    } while (0)

// n: 1, 3 and 65 blocks (odd counts, a long row); IQ4_XS 1, 2, 9 super-blocks
static void test_amx_q8_0(void **state) {
    (void)state;
    SKIP_IF_NO_CPU();
    static const int64_t ns[] = { 32, 96, 2080 };
    check_type(TV_TYPE_Q8_0, ns, 3, ref_gemm_packed_q8_0);
}
static void test_amx_q4_0(void **state) {
    (void)state;
    SKIP_IF_NO_CPU();
    static const int64_t ns[] = { 32, 96, 2080 };
    check_type(TV_TYPE_Q4_0, ns, 3, ref_gemm_packed_q4_0);
}
static void test_amx_iq4_xs(void **state) {
    (void)state;
    SKIP_IF_NO_CPU();
    static const int64_t ns[] = { 256, 512, 2304 };
    check_type(TV_TYPE_IQ4_XS, ns, 3, ref_gemm_packed_iq4_xs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amx_q8_0),
        cmocka_unit_test(test_amx_q4_0),
        cmocka_unit_test(test_amx_iq4_xs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else   // not x86, or built without the AVX-512 flags (CMakeLists.txt gives them on x86)
static void test_amx_emu_absent(void **state) {
    (void)state;
    print_message("skipped: the AMX emulation test needs x86-64 built with AVX-512 VNNI\n");
    skip();
}
int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_amx_emu_absent) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
