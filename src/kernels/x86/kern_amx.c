// kern_amx.c — AMX int8 tile GEMM for packed Q8_0 / Q4_0 / IQ4_XS weights (the "amx" path: prefill and
// batched decode). Everything else on that path is the AVX-512 VNNI path's, and so is this GEMM
// below AMX_MIN_TOK tokens (decode: memory-bound, where tiles do not pay).
//
// Canonical arithmetic, the same as every packed GEMM (ref_q.c, kern_avx512.c), so the results are
// bit-identical with the scalar and VNNI paths:
//   acc = 0; for each block b in order: acc = fma((float)isum_b, dw_b * dx_b, acc); y = acc
// The tiles give isum_b exactly: one tdpbssd per block (K = 32, the block), signed weights times
// signed activations into a zeroed int32 tile; AVX-512 then converts and scales it per block.
//
// Tile registers (palette 1; configured per step, since the token count of a step varies):
//   tmm0..3  C[i][j], i = token group (16 tokens), j = row group (16 weight rows): M_i rows of
//            16 int32 (row = token, column = weight row)
//   tmm4, 5  A[i]: block b of token group i's activation quants, M_i rows of 32 bytes, read in place
//            from the packed activation rows
//   tmm6, 7  B[j]: block b of row group j, 8 rows of 64 bytes: row k = dword k of the 16 weight rows.
//            That is the packed layout's order (kernels.h), made signed on the way into a scratch
//            copy: Q8_0 q ^ 0x80, Q4_0 nibbles (low: rows 0..3, high: rows 4..7) minus 8.
// The tile instructions are written as inline assembly with memory clobbers: GCC 12's AMX
// intrinsics tell the compiler nothing about the memory a tile load or store touches (and its
// _tile_loadconfig is reported to miscompile), so the compiler could move the scratch stores past
// a tile load. The assembler must know AMX (binutils >= 2.36); CMake leaves this file out otherwise.
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

// TV_AMX_EMU: tests/test_amx_emu.c defines these (and AMX_LDCFG, AMX_RELEASE) in C, to run this file
// on a machine without AMX.
#ifndef TV_AMX_EMU
#define TILE_LOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"((long)(stride)) : "memory")
#define TILE_STORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"((long)(stride)) : "memory")
#define TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define TILE_DPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define AMX_LDCFG(c) __asm__ volatile("ldtilecfg %0" ::"m"(c))
#define AMX_RELEASE() __asm__ volatile("tilerelease" ::: "memory")
#endif

typedef struct __attribute__((aligned(64))) amx_cfg {   // the 64-byte LDTILECFG operand
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;
static_assert(sizeof(amx_cfg) == 64, "tile config");

INLINE void amx_config(int m0, int m1) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    const int m[2] = { m0, m1 };
    for (int i = 0; i < 2; i++) {
        if (!m[i]) continue;
        for (int j = 0; j < 2; j++) { c.rows[2 * i + j] = (uint8_t)m[i]; c.colsb[2 * i + j] = 64; }   // C[i][j]
        c.rows[4 + i] = (uint8_t)m[i];   // A[i]
        c.colsb[4 + i] = 32;
    }
    for (int j = 0; j < 2; j++) { c.rows[6 + j] = 8; c.colsb[6 + j] = 64; }   // B[j]
    AMX_LDCFG(c);
}

enum {
    AMX_MIN_TOK = 8,   // fewer tokens: the VNNI packed GEMM (measured: 4 tokens 0.5-0.9x of it, 8 ~1.2x)
    AMX_TP = 32,       // tokens per pass (2 tile groups)
    AMX_KB = 1,        // blocks per chunk (see amx_step); 2 and 4 measured slower (L1 pressure)
    AMX_PF_BYTES = 1024,   // software prefetch distance in a row group's weights (amx_unpack)
};
#ifndef AMX_PANEL_BYTES
#define AMX_PANEL_BYTES (512 * 1024)   // weight bytes per panel (L2 is 2 MiB per core on Sapphire Rapids)
#endif

// Block b of the 16-row group at gq into the signed scratch s (8 rows of 64 bytes). pf: also
// prefetch the group's bytes AMX_PF_BYTES ahead, for a pass that streams the weights from DRAM (the
// first pass over a panel): the hardware prefetcher stops at every 4 KiB page, and a step reads its
// 32 rows as two interleaved streams (measured, 32 tokens, 6912x1152 and 1152x6912 from DRAM, one
// thread: 1.07-1.08x; 512 and 1536 bytes ahead 1.05-1.07x).
INLINE void amx_unpack(const bool q4, const uint8_t *gq, int64_t nb, int64_t b, int8_t *s, const bool pf) {
    const uint8_t *p = gq + pk16_q(q4, nb, b);
    TV_TILE_UNROLL for (int k = 0; k < 8; k++)
        if (pf && (k < 4 || !q4)) _mm_prefetch((const char *)p + AMX_PF_BYTES + 64 * k, _MM_HINT_T0);
    if (q4) {
        const __m512i m4 = _mm512_set1_epi8(0x0F), k8 = _mm512_set1_epi8(8);
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
            const __m512i v = _mm512_loadu_si512(p + 64 * k);
            _mm512_store_si512(s + 64 * k, _mm512_sub_epi8(_mm512_and_si512(v, m4), k8));
            _mm512_store_si512(s + 64 * (k + 4), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), k8));
        }
    } else {
        const __m512i k80 = _mm512_set1_epi8((char)0x80);
        TV_TILE_UNROLL for (int k = 0; k < 8; k++)
            _mm512_store_si512(s + 64 * k, _mm512_xor_si512(_mm512_loadu_si512(p + 64 * k), k80));
    }
}

// One step: rows [rg, rg + R) (R <= 16 RG, RG row groups) x tokens [t0, t0 + m0 + m1) (m0 <= 16,
// m1 = tokens of the second group, 0 when TG = 1), over every block, y stored masked.
// Blocks go in chunks of AMX_KB, software-pipelined so that no load waits on a store just made
// (a tile load does not forward from the store buffer, nor does a vector load from a tile store):
// iteration ch unpacks chunk ch + 1's weights, runs chunk ch's tiles and scales chunk ch - 1's
// results, each in its own half of a double buffer.
INLINE void amx_step(const tv_packed_ctx *c, int64_t rg, int R, int64_t t0, int m0, int m1, const int RG,
                     const int TG) {
    const bool q4 = c->q4;
    const int64_t nb = c->nb, nch = (nb + AMX_KB - 1) / AMX_KB;
    const uint8_t *gq[2] = { c->w + (size_t)rg * c->wrs, c->w + (size_t)(rg + 16) * c->wrs };
    const int mt[2] = { m0, m1 };
    const uint8_t *x0 = c->x + (size_t)t0 * c->xrs, *x1 = x0 + 16 * c->xrs;
    const long xrs = (long)c->xrs;
    tv_packed_act xa[AMX_TP];   // each token's quants, scales, sums
    for (int t = 0; t < m0 + m1; t++) xa[t] = packed_act_view(x0 + (size_t)t * c->xrs, nb * TV_QK8_0);
    int8_t wsc[2][AMX_KB][2][8 * 64] __attribute__((aligned(64)));       // (half, block, row group) B[j]
    int32_t cb[2][AMX_KB][4][16 * 16] __attribute__((aligned(64)));      // (half, block, C tile, token, row)
    float acc[AMX_TP][32] __attribute__((aligned(64)));                  // (token, row) running sums (chunk 0 starts them)
    amx_config(m0, TG == 2 ? m1 : 0);
    for (int64_t ch = 0; ch <= nch; ch++) {
        // weights of chunk ch + 1 (chunk 0 first)
        for (int64_t u = ch == 0 ? 0 : ch + 1; u <= ch + 1 && u < nch; u++)
            for (int k = 0; k < AMX_KB && u * AMX_KB + k < nb; k++)
                TV_TILE_UNROLL for (int j = 0; j < RG; j++) amx_unpack(q4, gq[j], nb, u * AMX_KB + k, wsc[u & 1][k][j], t0 == 0);
        // tiles of chunk ch
        for (int k = 0; ch < nch && k < AMX_KB && ch * AMX_KB + k < nb; k++) {
            const int64_t b = ch * AMX_KB + k;
            int32_t(*o)[16 * 16] = cb[ch & 1][k];
            TILE_LOAD(6, wsc[ch & 1][k][0], 64);
            if (RG == 2) TILE_LOAD(7, wsc[ch & 1][k][1], 64);
            TILE_LOAD(4, x0 + b * TV_QK8_0, xrs);
            TILE_ZERO(0);
            TILE_DPBSSD(0, 4, 6);
            if (RG == 2) {
                TILE_ZERO(1);
                TILE_DPBSSD(1, 4, 7);
            }
            if (TG == 2) {
                TILE_LOAD(5, x1 + b * TV_QK8_0, xrs);
                TILE_ZERO(2);
                TILE_DPBSSD(2, 5, 6);
                if (RG == 2) {
                    TILE_ZERO(3);
                    TILE_DPBSSD(3, 5, 7);
                }
            }
            TILE_STORE(0, o[0], 64);
            if (RG == 2) TILE_STORE(1, o[1], 64);
            if (TG == 2) TILE_STORE(2, o[2], 64);
            if (TG == 2 && RG == 2) TILE_STORE(3, o[3], 64);
        }
        if (ch == 0) continue;
        // scale chunk ch - 1: 8 tokens x RG row groups at a time, their running sums in registers
        const int64_t b0 = (ch - 1) * AMX_KB;
        const int kb = nb - b0 < AMX_KB ? (int)(nb - b0) : AMX_KB;
        int32_t(*cc)[4][16 * 16] = cb[(ch - 1) & 1];
        TV_TILE_UNROLL for (int i = 0; i < TG; i++) {
            for (int h = 0; h < mt[i]; h += 8) {
                const int th = mt[i] - h < 8 ? mt[i] - h : 8;
                __m512 a[8][2];   // all 8 rows move (acc has them), the first th are computed
                TV_TILE_UNROLL for (int t = 0; t < 8; t++)
                    TV_TILE_UNROLL for (int j = 0; j < RG; j++)
                        a[t][j] = ch == 1 ? _mm512_setzero_ps() : _mm512_load_ps(acc[16 * i + h + t] + 16 * j);
                for (int k = 0; k < kb; k++) {
                    const int64_t b = b0 + k;
                    __m512 dw[2];
                    TV_TILE_UNROLL for (int j = 0; j < RG; j++)
                        dw[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gq[j] + pk16_d(q4, nb, b))));
                    TV_TILE_UNROLL for (int t = 0; t < 8; t++) {
                        if (t >= th) break;
                        const __m512 dx = _mm512_set1_ps(xa[16 * i + h + t].d[b]);
                        TV_TILE_UNROLL for (int j = 0; j < RG; j++) {
                            const __m512 is = _mm512_cvtepi32_ps(_mm512_load_si512(cc[k][2 * i + j] + 16 * (h + t)));
                            a[t][j] = _mm512_fmadd_ps(is, _mm512_mul_ps(dw[j], dx), a[t][j]);
                        }
                    }
                }
                TV_TILE_UNROLL for (int t = 0; t < 8; t++)
                    TV_TILE_UNROLL for (int j = 0; j < RG; j++) _mm512_store_ps(acc[16 * i + h + t] + 16 * j, a[t][j]);
            }
        }
    }
    const __mmask16 mk[2] = { (__mmask16)(R >= 16 ? 0xFFFFu : (1u << R) - 1),
                              (__mmask16)(R >= 32 ? 0xFFFFu : R > 16 ? (1u << (R - 16)) - 1 : 0) };
    for (int t = 0; t < m0 + m1; t++)
        TV_TILE_UNROLL for (int j = 0; j < RG; j++)
            _mm512_mask_storeu_ps(c->y + (t0 + t) * c->ys + rg + 16 * j, mk[j], _mm512_load_ps(acc[t] + 16 * j));
}

#define AMX_STEP_FN(RG, TG)                                                                                        \
    static void amx_step_##RG##x##TG(const tv_packed_ctx *c, int64_t rg, int R, int64_t t0, int m0, int m1) {      \
        amx_step(c, rg, R, t0, m0, m1, RG, TG);                                                                    \
    }
AMX_STEP_FN(1, 1) AMX_STEP_FN(1, 2) AMX_STEP_FN(2, 1) AMX_STEP_FN(2, 2)
typedef void (*amx_step_fn)(const tv_packed_ctx *c, int64_t rg, int R, int64_t t0, int m0, int m1);
static const amx_step_fn amx_steps[3][3] = { { 0 }, { 0, amx_step_1x1, amx_step_1x2 }, { 0, amx_step_2x1, amx_step_2x2 } };

static void amx_drive_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    const tv_packed_ctx *c = arg;
    const int R = rend - rg < 32 ? (int)(rend - rg) : 32;
    const int m0 = tp < 16 ? (int)tp : 16, m1 = (int)tp - m0;
    amx_steps[R > 16 ? 2 : 1][m1 ? 2 : 1](c, rg, R, t0, m0, m1);
}

// Packed weights (kernels.h contract: w the packed matrix, r0 % 16 == 0, x packed activation rows).
static void amx_gemm(bool q4, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                     const void *x, size_t xrs, float *y, int64_t ys) {
    if (nt < AMX_MIN_TOK) {
        x86_gemm_packed_vnni512(q4, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
        return;
    }
    tv_packed_ctx c = { q4, true, n / TV_QK8_0, w, x, wrs, xrs, y, ys };
    TV_CHECK(c.nb >= 1 && r0 % 16 == 0);
    packed_drive(r0, r1, wrs, nt, AMX_TP, AMX_PANEL_BYTES, 32, amx_drive_step, &c);
    AMX_RELEASE();   // the tile state is not kept between calls
}
static void q8_0_amx_gemm_packed(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                 const void *x, size_t xrs, float *y, int64_t ys) {
    amx_gemm(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q4_0_amx_gemm_packed(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                 const void *x, size_t xrs, float *y, int64_t ys) {
    amx_gemm(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}

// ---------------- IQ4_XS (packed K-quant layout, kernels.h; Q8_K activation rows) ----------------
// The canonical chain of ref_k.c: per super-block u = fma((float)isum_j, d * (ls_j - 32), u) over
// its 8 sub-blocks j, then acc = fma(u, x.d, acc). One tdpbssd per sub-block (K = 32) gives isum_j
// exactly for 16 tokens x 16 rows: A = the tokens' Q8_K quants 32j.. read in place, B = the 16 rows'
// grid values (signed), looked up from the packed codes into a scratch copy: rows 0..3 the low
// nibbles of qs dwords 4j..4j+3 (elements 32j + 4r..), rows 4..7 the high ones (32j + 16 + 4r..).
// Flattened over (super-block, sub-block) steps, software-pipelined AMXK_LAG steps apart: step q
// looks up q + LAG's weights, multiplies q's tiles and scales q - LAG's sums into u (registers, one
// per token), which finishes into acc (memory, once per super-block) after sub-block 7. Consecutive
// steps alternate between two tile register sets (tmm0/4/6, tmm1/5/7): with one set every step's
// tiles waited for the last step's store (measured 0.76x the VNNI kernel; alternating 1.2-1.3x on
// 5632x2048, 16-256 tokens, one thread).
enum {
    AMXK_TP = 16,    // tokens per step (one tile group)
    AMXK_LAG = 2,    // steps between a weight lookup and its tiles, and between the tiles and their scaling
};
INLINE void amx_iq4xs_config(int m) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int k = 0; k < 2; k++) {   // two sets, alternating steps, so one step's tiles need not wait for the last's
        c.rows[k] = (uint8_t)m;      // C: tokens x 16 int32
        c.colsb[k] = 64;
        c.rows[4 + k] = (uint8_t)m;  // A: tokens x 32 quants
        c.colsb[4 + k] = 32;
        c.rows[6 + k] = 8;           // B: 8 dwords x 16 rows
        c.colsb[6 + k] = 64;
    }
    AMX_LDCFG(c);
}
INLINE void amx_iq4xs_unpack(const uint8_t *pb, int j, __m512i grid, int8_t *s) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    TV_TILE_UNROLL for (int r = 0; r < 4; r++) {
        const __m512i v = _mm512_loadu_si512(pb + (size_t)(4 * j + r) * 64);   // pb: the qs
        _mm512_store_si512(s + 64 * r, _mm512_shuffle_epi8(grid, _mm512_and_si512(v, m4)));
        _mm512_store_si512(s + 64 * (r + 4), _mm512_shuffle_epi8(grid, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)));
    }
}
// Rows [rg, rg + R) (R <= 16) x tokens [t0, t0 + m) (m <= 16), every super-block; y stored masked.
static void amx_iq4xs_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    const tv_packed_ctx *c = arg;
    const int R = rend - rg < 16 ? (int)(rend - rg) : 16, m = (int)tp;
    const int64_t nb = c->nb, nq = nb * 8;
    const uint8_t *gb = c->w + (size_t)rg * c->wrs;   // pack_layout.h
    const uint8_t *x0 = c->x + (size_t)t0 * c->xrs;
    const long xrs = (long)c->xrs;
    const __m512i grid = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_values));
    int8_t wsc[4][8 * 64] __attribute__((aligned(64)));       // B of steps q .. q + AMXK_LAG (step & 3)
    int32_t cb[4][16 * 16] __attribute__((aligned(64)));      // C of steps q - AMXK_LAG .. q (token, row)
    float acc[AMXK_TP][16] __attribute__((aligned(64)));      // (token, row) running sums
    memset(acc, 0, sizeof acc);
    __m512 u[AMXK_TP];
    TV_TILE_UNROLL for (int t = 0; t < AMXK_TP; t++) u[t] = _mm512_setzero_ps();
    amx_iq4xs_config(m);
    for (int64_t q = 0; q < AMXK_LAG && q < nq; q++) amx_iq4xs_unpack(gb + pkx_qs(nb, q >> 3), (int)(q & 7), grid, wsc[q & 3]);
    for (int64_t q = 0; q < nq + AMXK_LAG; q++) {
        const int64_t qn = q + AMXK_LAG;
        if (qn < nq) amx_iq4xs_unpack(gb + pkx_qs(nb, qn >> 3), (int)(qn & 7), grid, wsc[qn & 3]);
        if (q < nq) {
            const int64_t i = q >> 3;
            const int j = (int)(q & 7);
            const uint8_t *xa = x0 + (size_t)i * sizeof(tv_block_q8_K) + offsetof(tv_block_q8_K, qs) + 32 * (size_t)j;
            if (q & 1) {
                TILE_LOAD(7, wsc[q & 3], 64);
                TILE_LOAD(5, xa, xrs);
                TILE_ZERO(1);
                TILE_DPBSSD(1, 5, 7);
                TILE_STORE(1, cb[q & 3], 64);
            } else {
                TILE_LOAD(6, wsc[q & 3], 64);
                TILE_LOAD(4, xa, xrs);
                TILE_ZERO(0);
                TILE_DPBSSD(0, 4, 6);
                TILE_STORE(0, cb[q & 3], 64);
            }
        }
        if (q < AMXK_LAG) continue;
        const int64_t p = q - AMXK_LAG, i = p >> 3;   // scale step p: super-block i, sub-block j
        const int j = (int)(p & 7);
        // ls_j = nibble j of the scales_l dword | bits 2j, 2j + 1 of scales_h << 4
        const __m512i sl = _mm512_loadu_si512(gb + pkx_sl(nb, i));
        const __m512i sh = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(gb + pkx_sh(nb, i))));
        const __m512i ls = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(0x0F)),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(sh, 2 * j), _mm512_set1_epi32(3)), 4));
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gb + pkx_d(nb, i))));
        const __m512 ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(ls, _mm512_set1_epi32(32))));
        const int32_t *cc = cb[p & 3];
        TV_TILE_UNROLL for (int t = 0; t < AMXK_TP; t++) {
            if (t >= m) break;
            u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cc + 16 * t)), ds, u[t]);
        }
        if (j == 7) {
            TV_TILE_UNROLL for (int t = 0; t < AMXK_TP; t++) {
                if (t >= m) break;
                const tv_block_q8_K *xb = (const tv_block_q8_K *)(x0 + (size_t)t * c->xrs) + i;
                _mm512_store_ps(acc[t], _mm512_fmadd_ps(u[t], _mm512_set1_ps(xb->d), _mm512_load_ps(acc[t])));
                u[t] = _mm512_setzero_ps();
            }
        }
    }
    const __mmask16 mk = (__mmask16)(0xFFFFu >> (16 - R));
    for (int t = 0; t < m; t++) _mm512_mask_storeu_ps(c->y + (t0 + t) * c->ys + rg, mk, _mm512_load_ps(acc[t]));
}

static void iq4_xs_amx_gemm_packed(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                   const void *x, size_t xrs, float *y, int64_t ys) {
    if (nt < AMX_MIN_TOK) {
        x86_gemm_packed_iq4_xs_vnni512(n, r0, r1, w, wrs, nt, x, xrs, y, ys);
        return;
    }
    tv_packed_ctx c = { false, true, n / TV_QK_K, w, x, wrs, xrs, y, ys };
    TV_CHECK(c.nb >= 1 && r0 % 16 == 0);
    packed_drive(r0, r1, wrs, nt, AMXK_TP, AMX_PANEL_BYTES, 16, amx_iq4xs_step, &c);
    AMX_RELEASE();
}

// Over the AVX-512 VNNI table (x86_install_avx512 with VNNI ran first).
void x86_install_amx(tv_type_traits *t) {
    t[TV_TYPE_Q8_0].gemm_packed = q8_0_amx_gemm_packed;
    t[TV_TYPE_Q4_0].gemm_packed = q4_0_amx_gemm_packed;
    t[TV_TYPE_IQ4_XS].gemm_packed = iq4_xs_amx_gemm_packed;
}
