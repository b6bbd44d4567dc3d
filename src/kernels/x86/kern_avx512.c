// kern_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) int8 GEMM/GEMV tiles for Q8_0 and Q4_0 weights.
//
// One zmm holds two 32-element blocks. Products are vpdpbusd (u8 × s8 -> int32, 4 per lane):
//   Q4_0: nibbles are the unsigned side as stored; sum (nib - 8) x = sum nib x - 8 sum x, and the
//         -8 sum x term is the accumulator's start value, computed once per activation block pair.
//   Q8_0: weights are made unsigned with w ^ 0x80 (= w + 128); sum x w = sum x (w + 128) - 128 sum x,
//         again folded into the start value per activation block pair.
// Lane layout of a Q4_0 pair after unpacking: [lo(b) | lo(b+1) | hi(b) | hi(b+1)] (16 bytes each),
// so activations are permuted to [x_b[0:16] | x_b+1[0:16] | x_b[16:32] | x_b+1[16:32]] and the
// per-lane scales to [d_b ×4 | d_b+1 ×4 | d_b ×4 | d_b+1 ×4]. Q8_0 keeps natural order.
// An odd last block is padded with zero bytes and a zero scale on both sides.
// Tiles: up to 4 weight rows × 4 tokens (16 accumulators). Without VNNI, the AVX2 kernels serve.
// Q4_K / Q6_K: see their section below.
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

// ---------------- Q8_0 / Q4_0: 16 weight rows side by side ----------------
// Canonical arithmetic (every tile shape, token count and row split computes exactly this, so a
// (row, token) result is bit-identical however the call is shaped):
//   acc = 0; for each block b in order: acc = fma((float)isum_b, dw_b * dx_b, acc); y = acc
// where isum_b is the exact int32 dot of the block's 32 quants.
// Layout in registers: one zmm lane per weight row (16 rows), 4 quants per lane, so a block is
// 8 vpdpbusd against 4-byte activation broadcasts and its scale is one multiply-add for 16 rows:
//   weights are the unsigned operand (Q4_0 nibbles as stored; Q8_0 as w ^ 0x80 = w + 128), and the
//   offset (-8 or -128) * sum(x_b) is the int32 start value, computed once per (token, block).
// The rows are transposed in registers (4x4 dword transposes of four 4-row vectors), so lane
// 4q + j holds row 4j + q; the store permutes back. Rows past the range repeat the last row and
// are masked off at the store. Tokens go 8 at a time over the transposed block.
enum { G16_TG = 8, G16_AUX = 6144 };   // tokens per pass over a block; (token, block) aux entries on the stack

INLINE void g16_tr4(__m512i z0, __m512i z1, __m512i z2, __m512i z3, __m512i *o) {
    __m512i a0 = _mm512_unpacklo_epi32(z0, z1), a1 = _mm512_unpackhi_epi32(z0, z1);
    __m512i a2 = _mm512_unpacklo_epi32(z2, z3), a3 = _mm512_unpackhi_epi32(z2, z3);
    o[0] = _mm512_unpacklo_epi64(a0, a2);
    o[1] = _mm512_unpackhi_epi64(a0, a2);
    o[2] = _mm512_unpacklo_epi64(a1, a3);
    o[3] = _mm512_unpackhi_epi64(a1, a3);
}
// 16 bytes at offset off of rows 4j .. 4j+3 -> 128-bit lanes 0..3
INLINE __m512i g16_ld4(const uint8_t *const *rp, int j, size_t off) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rp[4 * j] + off)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rp[4 * j + 1] + off)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rp[4 * j + 2] + off)), 2);
    return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rp[4 * j + 3] + off)), 3);
}
INLINE __m512i g16_bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// rp: 16 row starts; goff: byte offset of lane l's row from rp[0]; x: T activation rows (Q8_0);
// pf: prefetch distance (bytes, next row group); dxa/cra: aux of those tokens, stride as; y: T output rows at the group's first row; m: rows kept.
INLINE void g16_kernel(const bool q4, int64_t nb, const uint8_t *const *rp, size_t pf, __m512i goff, const uint8_t *x,
                       size_t xrs, const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys,
                       __mmask16 m, const int T) {
    const size_t bs = q4 ? sizeof(tv_block_q4_0) : sizeof(tv_block_q8_0);
    __m512 acc[G16_TG];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const size_t off = (size_t)b * bs;
        __m512i wv[8];
        // 1-2 tokens are memory-bound: fetch the next group's rows at this column (see tile.h); a
        // line covers ~2 (Q8_0) or ~3.5 (Q4_0) blocks, so every other block suffices
        if (T <= 2 && (b & 1) == 0)
            TV_TILE_UNROLL for (int i = 0; i < 16; i++) __builtin_prefetch(rp[i] + pf + off, 0, 3);
        if (q4) {
            __m512i o[4];
            const __m512i m4 = _mm512_set1_epi8(0x0F);
            g16_tr4(g16_ld4(rp, 0, off + 2), g16_ld4(rp, 1, off + 2), g16_ld4(rp, 2, off + 2), g16_ld4(rp, 3, off + 2), o);
            TV_TILE_UNROLL for (int k = 0; k < 4; k++) {   // lane dword k: quants 4k..4k+3 (lo), 16+4k.. (hi)
                wv[k] = _mm512_and_si512(o[k], m4);
                wv[k + 4] = _mm512_and_si512(_mm512_srli_epi16(o[k], 4), m4);
            }
        } else {
            const __m512i k80 = _mm512_set1_epi8((char)0x80);
            g16_tr4(g16_ld4(rp, 0, off + 2), g16_ld4(rp, 1, off + 2), g16_ld4(rp, 2, off + 2), g16_ld4(rp, 3, off + 2), wv);
            g16_tr4(g16_ld4(rp, 0, off + 18), g16_ld4(rp, 1, off + 18), g16_ld4(rp, 2, off + 18), g16_ld4(rp, 3, off + 18),
                    wv + 4);
            TV_TILE_UNROLL for (int k = 0; k < 8; k++) wv[k] = _mm512_xor_si512(wv[k], k80);
        }
        // f16 scales: the first 4 bytes of each row's block (d and two quants), low halves kept
        __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(goff, rp[0] + off, 1)));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const int8_t *xq = ((const tv_block_q8_0 *)(x + (size_t)t * xrs) + b)->qs;
            __m512i s = _mm512_set1_epi32(cra[t * as + b]);
            TV_TILE_UNROLL for (int k = 0; k < 8; k++) s = _mm512_dpbusd_epi32(s, wv[k], g16_bcast4(xq + 4 * k));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(dxa[t * as + b])), acc[t]);
        }
    }
    const __m512i back = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, m, _mm512_permutexvar_ps(back, acc[t]));
}

#define G16_FN(PFX, Q4, T)                                                                                         \
    static void PFX##_##T(int64_t nb, const uint8_t *const *rp, size_t pf, __m512i goff, const uint8_t *x, size_t xrs,        \
                          const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys, __mmask16 m) {   \
        g16_kernel(Q4, nb, rp, pf, goff, x, xrs, dxa, cra, as, y, ys, m, T);                                           \
    }
typedef void (*g16_fn)(int64_t nb, const uint8_t *const *rp, size_t pf, __m512i goff, const uint8_t *x, size_t xrs,
                       const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys, __mmask16 m);
#define G16_SET(PFX, Q4)                                                                                           \
    G16_FN(PFX, Q4, 1) G16_FN(PFX, Q4, 2) G16_FN(PFX, Q4, 3) G16_FN(PFX, Q4, 4)                                    \
    G16_FN(PFX, Q4, 5) G16_FN(PFX, Q4, 6) G16_FN(PFX, Q4, 7) G16_FN(PFX, Q4, 8)                                    \
    static const g16_fn PFX##_k[G16_TG + 1] = { 0, PFX##_1, PFX##_2, PFX##_3, PFX##_4, PFX##_5, PFX##_6, PFX##_7, PFX##_8 };
G16_SET(g16q4, true)
G16_SET(g16q8, false)

// Per (token, block) of Q8_0 activations: dxa = scale as f32, cra = -off * sum of the 32 quants.
static void g16_aux(const uint8_t *x, size_t xrs, int64_t nt, int64_t nb, int32_t off, float *dxa, int32_t *cra) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    for (int64_t t = 0; t < nt; t++) {
        const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + (size_t)t * xrs);
        for (int64_t b = 0; b < nb; b++) {
            // sum of (q + 128) by 8-byte groups, then minus 32 * 128
            __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb[b].qs), k80),
                                        _mm256_setzero_si256());
            __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
            dxa[t * nb + b] = _cvtsh_ss(xb[b].d);
            cra[t * nb + b] = -off * (_mm_cvtsi128_si32(h) - 32 * 128);
        }
    }
}

static void g16_gemm(const g16_fn *k, int32_t off, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs,
                     int64_t nt, const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK8_0;
    float dxa[G16_AUX];     // (tokens of the pass, nb)
    int32_t cra[G16_AUX];   // (tokens of the pass, nb)
    TV_CHECK(nb >= 1 && nb <= G16_AUX);   // rows of up to 196608 elements
    int64_t tp_max = G16_AUX / nb;
    if (tp_max > G16_TG) tp_max -= tp_max % G16_TG;
    for (int64_t t0 = 0; t0 < nt; t0 += tp_max) {
        const int64_t tp = nt - t0 < tp_max ? nt - t0 : tp_max;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * xrs;
        g16_aux(xt, xrs, tp, nb, off, dxa, cra);
        for (int64_t rg = r0; rg < r1; rg += 16) {
            const int R = r1 - rg < 16 ? (int)(r1 - rg) : 16;
            const uint8_t *rp[16];
            int32_t go[16];
            for (int i = 0; i < 16; i++) {
                int ri = i < R ? i : R - 1;
                rp[i] = (const uint8_t *)w + (size_t)(rg + ri) * wrs;
            }
            for (int l = 0; l < 16; l++) go[l] = (int32_t)(rp[4 * (l % 4) + l / 4] - rp[0]);   // lane 4q+j: row 4j+q
            const __m512i goff = _mm512_loadu_si512(go);
            const __mmask16 m = (__mmask16)((1u << R) - 1);
            for (int64_t tg = 0; tg < tp; tg += G16_TG) {
                const int T = tp - tg < G16_TG ? (int)(tp - tg) : G16_TG;
                k[T](nb, rp, 16 * wrs, goff, xt + (size_t)tg * xrs, xrs, dxa + tg * nb, cra + tg * nb, nb, y + (t0 + tg) * ys + rg, ys, m);
            }
        }
    }
}
static void q4_0_512_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                          size_t xrs, float *y, int64_t ys) {
    g16_gemm(g16q4_k, 8, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q8_0_512_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                          size_t xrs, float *y, int64_t ys) {
    g16_gemm(g16q8_k, 128, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q4_0_512_vec_dot(int64_t n, float *s, const void *w, const void *x) { q4_0_512_gemm(n, 0, 1, w, 0, 1, x, 0, s, 0); }
static void q8_0_512_vec_dot(int64_t n, float *s, const void *w, const void *x) { q8_0_512_gemm(n, 0, 1, w, 0, 1, x, 0, s, 0); }

// ---------------- Q4_K / Q6_K × Q8_K: one row × up to 4 tokens ----------------
// A zmm holds 64 consecutive elements: Q4_K chunk c = [low nibbles of qs[32c..] (sub-block 2c) |
// high nibbles (2c+1)], matching q8_K qs[64c..64c+63] as stored. vpdpbusd gives int32 per 4
// elements; sub-block scales are applied in float per lane (d * scale broadcast by permute), the
// activation scale once per super-block. Mins (Q4_K) and the -32 offset (Q6_K) come from bsums.

INLINE void q4_K_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    (void)wrs; (void)R;
    const tv_block_q4_K *a = (const tv_block_q4_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc[4];
    __m256 mins[4];   // dmin * d_x * sum_j m_j * bsum_j, per lane group
    TV_TILE_UNROLL for (int t = 0; t < T; t++) { acc[t] = _mm512_setzero_ps(); mins[t] = _mm256_setzero_ps(); }
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        uint64_t sc64, mn64;
        tv_q4_K_unpack_scales(a[i].scales, &sc64, &mn64);
        // 8 sub-block scales in float (d * sc), lanes 0..7
        __m512 scf = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d)),
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc64)))));
        // mins expanded to one int16 per 16-element bsum: mn[k / 2]
        __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn64));
        __m256i mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
        __m512 tmp[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) tmp[t] = _mm512_setzero_ps();
        TV_TILE_UNROLL for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                           _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * c)), _mm256_set1_epi32(2 * c + 1), 1);
            __m512 scv = _mm512_permutexvar_ps(idx, scf);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z, _mm512_loadu_si512(b->qs + 64 * c));
                tmp[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), scv, tmp[t]);
            }
        }
        float dmin = _cvtsh_ss(a[i].dmin);
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            acc[t] = _mm512_fmadd_ps(tmp[t], _mm512_set1_ps(b->d), acc[t]);
            __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), mn16);
            mins[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(b->d * dmin), mins[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++)
        y[t * ys] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[t], _mm512_zextps256_ps512(mins[t])));
}

INLINE void q6_K_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    (void)wrs; (void)R;
    const tv_block_q6_K *a = (const tv_block_q6_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m512 acc[4];
    float offs[4] = { 0 };
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        float dw = _cvtsh_ss(a[i].d);
        __m512 scf = _mm512_mul_ps(_mm512_set1_ps(dw), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc8)));
        __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512 tmp[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) tmp[t] = _mm512_setzero_ps();
        TV_TILE_UNROLL for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            __m512i z[2] = { _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1),
                             _mm512_inserti64x4(_mm512_castsi256_si512(q2), q3, 1) };
            TV_TILE_UNROLL for (int g = 0; g < 2; g++) {   // elements 128h + 64g .. +63 = sub-blocks sb .. sb+3
                int sb = 8 * h + 4 * g;
                __m512i idx = _mm512_setr_epi32(sb, sb, sb, sb, sb + 1, sb + 1, sb + 1, sb + 1, sb + 2, sb + 2, sb + 2,
                                                sb + 2, sb + 3, sb + 3, sb + 3, sb + 3);
                __m512 scv = _mm512_permutexvar_ps(idx, scf);
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z[g], _mm512_loadu_si512(b->qs + 128 * h + 64 * g));
                    tmp[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), scv, tmp[t]);
                }
            }
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            acc[t] = _mm512_fmadd_ps(tmp[t], _mm512_set1_ps(b->d), acc[t]);
            __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), sc16);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            offs[t] += b->d * dw * (float)(32 * _mm_cvtsi128_si32(s4));
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys] = _mm512_reduce_add_ps(acc[t]) - offs[t];
}

#define TILE_FN(PFX, BODY, R, T)                                                                                   \
    static void PFX##_##R##x##T(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,   \
                                int64_t ys) {                                                                      \
        BODY(n, w, wrs, x, xrs, y, ys, R, T);                                                                      \
    }
#define TILE_SET(PFX, BODY)                                                                                        \
    TILE_FN(PFX, BODY, 1, 1) TILE_FN(PFX, BODY, 1, 2) TILE_FN(PFX, BODY, 1, 3) TILE_FN(PFX, BODY, 1, 4)           \
    TILE_FN(PFX, BODY, 4, 1) TILE_FN(PFX, BODY, 4, 2) TILE_FN(PFX, BODY, 4, 3) TILE_FN(PFX, BODY, 4, 4)           \
    static tv_tile_fn PFX##_tiles[5][5] = { [1] = { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 },              \
                                            [4] = { 0, PFX##_4x1, PFX##_4x2, PFX##_4x3, PFX##_4x4 } };            \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tv_tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 4, 4);                                   \
    }

#define TILE_SET_R1(PFX, BODY)                                                                                     \
    TILE_FN(PFX, BODY, 1, 1) TILE_FN(PFX, BODY, 1, 2) TILE_FN(PFX, BODY, 1, 3) TILE_FN(PFX, BODY, 1, 4)           \
    static tv_tile_fn PFX##_tiles[2][5] = { [1] = { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 } };            \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tv_tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 1, 4);                                   \
    }

TILE_SET_R1(q4_K_512, q4_K_tile512)
TILE_SET_R1(q6_K_512, q6_K_tile512)

// vnni512: AVX512-VNNI present; vnni256: AVX-VNNI present (for the AVX2 kernels this path reuses).
void tv_x86_install_avx512(tv_type_traits *t, bool vnni512, bool vnni256) {
    tv_x86_install_avx2(t, vnni256);
    if (!vnni512) return;
    t[TV_TYPE_Q8_0].vec_dot = q8_0_512_vec_dot;
    t[TV_TYPE_Q8_0].gemm = q8_0_512_gemm;
    t[TV_TYPE_Q4_0].vec_dot = q4_0_512_vec_dot;
    t[TV_TYPE_Q4_0].gemm = q4_0_512_gemm;
    t[TV_TYPE_Q4_0].gemm_rows = 256;
    t[TV_TYPE_Q8_0].gemm_rows = 256;
    t[TV_TYPE_Q4_K].vec_dot = q4_K_512_vec_dot;
    t[TV_TYPE_Q4_K].gemm = q4_K_512_gemm;
    t[TV_TYPE_Q6_K].vec_dot = q6_K_512_vec_dot;
    t[TV_TYPE_Q6_K].gemm = q6_K_512_gemm;
}
