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

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// Two consecutive 32-byte block payloads (stride bs bytes) as one zmm; the second is zero if !two.
INLINE __m512i load_pair(const void *p0, size_t bs, bool two) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)p0);
    __m256i hi = two ? _mm256_loadu_si256((const __m256i *)((const uint8_t *)p0 + bs)) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
// Two f16 scales -> lanes per idx (0 = first, 1 = second)
INLINE __m512 scale_pair(tv_f16 d0, tv_f16 d1, bool two, __m512i idx) {
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | ((uint32_t)(two ? d1 : 0) << 16))));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

// Q4_0 pair nibbles: [lo(b) | lo(b+1) | hi(b) | hi(b+1)]
INLINE __m512i q4_pair(const tv_block_q4_0 *b, bool two) {
    __m128i q0 = _mm_loadu_si128((const __m128i *)b[0].qs);
    __m128i q1 = two ? _mm_loadu_si128((const __m128i *)b[1].qs) : _mm_setzero_si128();
    __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(y), _mm256_srli_epi16(y, 4), 1);
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));   // a missing b+1 loaded as 0 stays 0
}

INLINE void q4_0_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    const int64_t nb = n / TV_QK4_0;
    const __m512i idx_q4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    const __m512i k8 = _mm512_set1_epi8(8);
    __m512 acc[4][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const bool two = b + 1 < nb;
        __m512i wq[4];
        __m512 dw[4];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) {
            const tv_block_q4_0 *wb = (const tv_block_q4_0 *)(w + r * wrs) + b;
            TV_PREFETCH_NEXT_ROWS(wb, R * wrs, 2 * sizeof *wb);
            wq[r] = q4_pair(wb, two);
            dw[r] = scale_pair(wb[0].d, two ? wb[1].d : 0, two, idx_q4);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + t * xrs) + b;
            __m512i xv = load_pair(xb[0].qs, sizeof(tv_block_q8_0), two);
            xv = _mm512_shuffle_i64x2(xv, xv, _MM_SHUFFLE(3, 1, 2, 0));   // [b.lo, b1.lo, b.hi, b1.hi]
            __m512 dx = scale_pair(xb[0].d, two ? xb[1].d : 0, two, idx_q4);
            __m512i neg8x = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k8, xv));
            TV_TILE_UNROLL for (int r = 0; r < R; r++) {
                __m512i p = _mm512_dpbusd_epi32(neg8x, wq[r], xv);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys + r] = hsum512(acc[r][t]);
}

INLINE void q8_0_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    const int64_t nb = n / TV_QK8_0;
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i k128 = _mm512_set1_epi8((char)0x80);
    __m512 acc[4][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const bool two = b + 1 < nb;
        __m512i wu[4];
        __m512 dw[4];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) {
            const tv_block_q8_0 *wb = (const tv_block_q8_0 *)(w + r * wrs) + b;
            TV_PREFETCH_NEXT_ROWS(wb, R * wrs, 2 * sizeof *wb);
            // w + 128 as unsigned; a padded half must stay 0, not 128
            __m512i wv = load_pair(wb[0].qs, sizeof(tv_block_q8_0), two);
            wu[r] = two ? _mm512_xor_si512(wv, k128) : _mm512_mask_xor_epi32(wv, 0x00FF, wv, k128);
            dw[r] = scale_pair(wb[0].d, two ? wb[1].d : 0, two, idx);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + t * xrs) + b;
            __m512i xv = load_pair(xb[0].qs, sizeof(tv_block_q8_0), two);
            __m512 dx = scale_pair(xb[0].d, two ? xb[1].d : 0, two, idx);
            __m512i neg128x =
                _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, xv));
            TV_TILE_UNROLL for (int r = 0; r < R; r++) {
                __m512i p = _mm512_dpbusd_epi32(neg128x, wu[r], xv);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys + r] = hsum512(acc[r][t]);
}

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

TILE_SET(q4_0_512, q4_0_tile512)
TILE_SET_R1(q4_K_512, q4_K_tile512)
TILE_SET_R1(q6_K_512, q6_K_tile512)
TILE_SET(q8_0_512, q8_0_tile512)

// vnni512: AVX512-VNNI present; vnni256: AVX-VNNI present (for the AVX2 kernels this path reuses).
void tv_x86_install_avx512(tv_type_traits *t, bool vnni512, bool vnni256) {
    tv_x86_install_avx2(t, vnni256);
    if (!vnni512) return;
    t[TV_TYPE_Q8_0].vec_dot = q8_0_512_vec_dot;
    t[TV_TYPE_Q8_0].gemm = q8_0_512_gemm;
    t[TV_TYPE_Q4_0].vec_dot = q4_0_512_vec_dot;
    t[TV_TYPE_Q4_0].gemm = q4_0_512_gemm;
    t[TV_TYPE_Q4_K].vec_dot = q4_K_512_vec_dot;
    t[TV_TYPE_Q4_K].gemm = q4_K_512_gemm;
    t[TV_TYPE_Q6_K].vec_dot = q6_K_512_vec_dot;
    t[TV_TYPE_Q6_K].gemm = q6_K_512_gemm;
}
