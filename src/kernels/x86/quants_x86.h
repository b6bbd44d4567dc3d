// quants_x86.h — 256-bit integer kernels for Q4_1, Q5_1 (× Q8_1), Q5_0, IQ4_NL (× Q8_0) and Q2_K,
// Q3_K, Q5_K, IQ4_XS (× Q8_K), and the Q8_1 activation quantizer. The body of quants_avx2.c (VEX,
// AVX-VNNI) and quants_avx512.c (EVEX: AVX512-VNNI on ymm registers); each defines
// QX_DPBUSD(acc, u, s) (its vpdpbusd) before including this. Private to those two files.
//
// One 32-byte vector holds 32 elements in order: a 32-block's 16 qs bytes become nibbles 0..15 in
// the low lane and 16..31 in the high lane; a K super-block's chunk of 32 is one or two sub-blocks.
// int8 products: u8 × s8 -> int32 (vpdpbusd, or vpmaddubsw + vpmaddwd without VNNI, whose int16
// pair sums stay below 32768: unsigned codes <= 31 or |iq4 value| <= 127 against |x| <= 127).
// Signed weights (IQ4) use the sign trick: |w| · sign(x, w). Offsets (Q5_0's -16, Q3_K's -4) are
// folded in from the activation sums (Q8_K bsums, or one dot with a constant vector per block).
// GEMM tiles: 32-blocks R (<= 2) rows × T (<= 4) tokens, K types 1 row × T tokens with the row's
// super-block unpacked once for all T tokens. Every (row, token) result runs one accumulation chain
// whatever R and T are, so results do not depend on how rows are split across threads.
#ifndef TV_X86_QUANTS_X86_H
#define TV_X86_QUANTS_X86_H

#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/madd_avx2.h"
#include "kernels/x86/tile.h"

#define QX_INLINE static inline __attribute__((always_inline))

QX_INLINE float qx_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
QX_INLINE int32_t qx_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
QX_INLINE float qx_f16(tv_f16 h) { return _cvtsh_ss(h); }

// acc + u8 u · s8 s (4 products per int32 lane)
QX_INLINE __m256i qx_dot(__m256i acc, __m256i u, __m256i s, const bool vnni) {
    if (vnni) return QX_DPBUSD(acc, u, s);
    return _mm256_add_epi32(acc, tv_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
// int16 lanes: pair sums of u8 u · s8 s (no saturation for the callers' ranges)
QX_INLINE __m256i qx_pairs(__m256i u, __m256i s) { return _mm256_maddubs_epi16(u, s); }

// 16 qs bytes -> 32 nibbles in element order
QX_INLINE __m256i qx_nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}
// byte j = 0x10 where bit j of the little-endian u32 at qh is set, else 0
QX_INLINE __m256i qx_bit4(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h),
                                               _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                                 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}
QX_INLINE __m256i qx_iq4_table(void) {
    const __m128i t = _mm_loadu_si128((const __m128i *)iq4nl_values);
    return _mm256_set_m128i(t, t);
}

// ======================= 32-element blocks =======================
enum { QX_Q4_1, QX_Q5_1, QX_Q5_0, QX_IQ4_NL };

// Weight block b of a row: the bytes the dot takes (unsigned codes; |value| for IQ4_NL), its
// signed values where the sign trick needs them, d and m.
typedef struct qx_wblk { __m256i u, s; float d, m; } qx_wblk;
QX_INLINE qx_wblk qx_load32(const uint8_t *row, int64_t b, const int ty, __m256i tbl) {
    qx_wblk o;
    o.m = 0.0f;
    if (ty == QX_Q4_1) {
        const tv_block_q4_1 *w = (const tv_block_q4_1 *)row + b;
        o.u = qx_nibbles(w->qs);
        o.d = qx_f16(w->d);
        o.m = qx_f16(w->m);
    } else if (ty == QX_Q5_1) {
        const tv_block_q5_1 *w = (const tv_block_q5_1 *)row + b;
        o.u = _mm256_or_si256(qx_nibbles(w->qs), qx_bit4(w->qh));
        o.d = qx_f16(w->d);
        o.m = qx_f16(w->m);
    } else if (ty == QX_Q5_0) {
        const tv_block_q5_0 *w = (const tv_block_q5_0 *)row + b;
        o.u = _mm256_or_si256(qx_nibbles(w->qs), qx_bit4(w->qh));   // 0..31; -16 folded in per token
        o.d = qx_f16(w->d);
    } else {
        const tv_block_iq4_nl *w = (const tv_block_iq4_nl *)row + b;
        o.s = _mm256_shuffle_epi8(tbl, qx_nibbles(w->qs));
        o.u = _mm256_sign_epi8(o.s, o.s);
        o.d = qx_f16(w->d);
    }
    return o;
}

QX_INLINE void qx_tile32(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys,
                         const int R, const int T, const int ty, const bool vnni) {
    const int64_t nb = n / 32;
    const bool q8_1 = ty == QX_Q4_1 || ty == QX_Q5_1;
    const size_t xbs = q8_1 ? sizeof(tv_block_q8_1) : sizeof(tv_block_q8_0);
    const size_t wbs = ty == QX_Q4_1 ? sizeof(tv_block_q4_1) : ty == QX_Q5_1 ? sizeof(tv_block_q5_1)
                     : ty == QX_Q5_0 ? sizeof(tv_block_q5_0) : sizeof(tv_block_iq4_nl);
    const __m256i tbl = qx_iq4_table(), k16 = _mm256_set1_epi8(16);
    __m256 acc[2][4];
    float macc[2][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) {
        acc[r][t] = _mm256_setzero_ps();
        macc[r][t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        qx_wblk wb[2];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) {
            TV_PREFETCH_NEXT_ROWS(w + r * wrs + b * wbs, R * wrs, wbs);
            wb[r] = qx_load32(w + r * wrs, b, ty, tbl);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const uint8_t *xb = x + t * xrs + b * xbs;
            const tv_f16 *xh = (const tv_f16 *)xb;   // d (and s for Q8_1) lead both block types
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb + (q8_1 ? 4 : 2)));
            const float dx = qx_f16(xh[0]);
            __m256i start = _mm256_setzero_si256();
            if (ty == QX_Q5_0) start = _mm256_sub_epi32(start, qx_dot(_mm256_setzero_si256(), k16, xv, vnni));
            TV_TILE_UNROLL for (int r = 0; r < R; r++) {
                const __m256i p = ty == QX_IQ4_NL ? qx_dot(start, wb[r].u, _mm256_sign_epi8(xv, wb[r].s), vnni)
                                                  : qx_dot(start, wb[r].u, xv, vnni);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(wb[r].d * dx), acc[r][t]);
                if (q8_1) macc[r][t] += wb[r].m * qx_f16(xh[1]);
            }
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++)
        y[t * ys + r] = qx_hsum_ps(acc[r][t]) + macc[r][t];
}

// ======================= K super-blocks (1 row × T tokens) =======================
enum { QX_Q2_K, QX_Q3_K, QX_Q5_K, QX_IQ4_XS };

// int16 scale vector: the low lane sub-block a's scale, the high lane b's
QX_INLINE __m256i qx_scale2(int a, int b) { return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a)); }

// Q3_K's 16 6-bit scales minus 32 as int16 (q3_K_scale's mapping, four scales per 32-bit word:
// low nibbles from bytes 0..7, high bit pairs from bytes 8..11)
QX_INLINE __m256i qx_q3_K_scales(const uint8_t *s) {
    uint32_t a0, a1, a2;
    memcpy(&a0, s, 4);
    memcpy(&a1, s + 4, 4);
    memcpy(&a2, s + 8, 4);
    const uint32_t m4 = 0x0F0F0F0Fu, m2 = 0x03030303u;
    const __m128i v = _mm_setr_epi32((int)((a0 & m4) | ((a2 & m2) << 4)), (int)((a1 & m4) | (((a2 >> 2) & m2) << 4)),
                                     (int)(((a0 >> 4) & m4) | (((a2 >> 4) & m2) << 4)),
                                     (int)(((a1 >> 4) & m4) | (((a2 >> 6) & m2) << 4)));
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
}

QX_INLINE void qx_tileK(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys,
                        const int T, const int ty) {
    const int64_t nb = n / TV_QK_K;
    const size_t wbs = ty == QX_Q2_K ? sizeof(tv_block_q2_K) : ty == QX_Q3_K ? sizeof(tv_block_q3_K)
                     : ty == QX_Q5_K ? sizeof(tv_block_q5_K) : sizeof(tv_block_iq4_xs);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    const __m256i tbl = qx_iq4_table();
    __m256 accf[4];
    float mins[4] = { 0 };
    TV_TILE_UNROLL for (int t = 0; t < T; t++) accf[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = w + i * wbs;
        TV_PREFETCH_NEXT_ROWS(blk, wrs, wbs);
        __m256i acc[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
        float dw = 0.0f, dmin = 0.0f;
        __m256i mn16 = _mm256_setzero_si256(), sc16 = _mm256_setzero_si256();   // per-16 mins / scales
        if (ty == QX_Q2_K) {
            const tv_block_q2_K *a = (const tv_block_q2_K *)blk;
            dw = qx_f16(a->d);
            dmin = qx_f16(a->dmin);
            const __m128i s8 = _mm_loadu_si128((const __m128i *)a->scales);
            mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
            TV_TILE_UNROLL for (int h = 0; h < 2; h++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * h));
                TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
                    const int sb = 8 * h + 2 * k;
                    const __m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
                    const __m256i sv = qx_scale2(a->scales[sb] & 0x0F, a->scales[sb + 1] & 0x0F);
                    TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                        const tv_block_q8_K *xb = (const tv_block_q8_K *)(x + t * xrs) + i;
                        const __m256i yv = _mm256_loadu_si256((const __m256i *)(xb->qs + 128 * h + 32 * k));
                        acc[t] = _mm256_add_epi32(acc[t], tv_madd_epi16(qx_pairs(c, yv), sv));
                    }
                }
            }
        } else if (ty == QX_Q3_K) {
            const tv_block_q3_K *a = (const tv_block_q3_K *)blk;
            dw = qx_f16(a->d);
            int16_t sc[16];
            sc16 = qx_q3_K_scales(a->scales);
            _mm256_storeu_si256((__m256i *)sc, sc16);
            const __m256i hm = _mm256_loadu_si256((const __m256i *)a->hmask);
            TV_TILE_UNROLL for (int h = 0; h < 2; h++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * h));
                TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
                    const int sb = 8 * h + 2 * k;
                    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), one);
                    const __m256i c = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3),
                                                      _mm256_slli_epi16(hb, 2));   // q + 4, 0..7
                    const __m256i sv = qx_scale2(sc[sb], sc[sb + 1]);
                    TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                        const tv_block_q8_K *xb = (const tv_block_q8_K *)(x + t * xrs) + i;
                        const __m256i yv = _mm256_loadu_si256((const __m256i *)(xb->qs + 128 * h + 32 * k));
                        acc[t] = _mm256_add_epi32(acc[t], tv_madd_epi16(qx_pairs(c, yv), sv));
                    }
                }
            }
        } else if (ty == QX_Q5_K) {
            const tv_block_q5_K *a = (const tv_block_q5_K *)blk;
            dw = qx_f16(a->d);
            dmin = qx_f16(a->dmin);
            uint64_t sc64, mn64;
            q4_K_unpack_scales(a->scales, &sc64, &mn64);
            const __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn64));
            mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)a->qh);
            TV_TILE_UNROLL for (int c = 0; c < 4; c++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * c));
                const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
                const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
                const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hlo);
                const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hhi);
                const __m256i slo = _mm256_set1_epi16((short)((sc64 >> (16 * c)) & 0xFF));
                const __m256i shi = _mm256_set1_epi16((short)((sc64 >> (16 * c + 8)) & 0xFF));
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    const tv_block_q8_K *xb = (const tv_block_q8_K *)(x + t * xrs) + i;
                    const __m256i ylo = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c));
                    const __m256i yhi = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c + 32));
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(tv_madd_epi16(qx_pairs(lo, ylo), slo),
                                                                       tv_madd_epi16(qx_pairs(hi, yhi), shi)));
                }
            }
        } else {
            const tv_block_iq4_xs *a = (const tv_block_iq4_xs *)blk;
            dw = qx_f16(a->d);
            TV_TILE_UNROLL for (int sb = 0; sb < 8; sb++) {
                const int ls = (((a->scales_l[sb / 2] >> (4 * (sb % 2))) & 0x0F) | (((a->scales_h >> (2 * sb)) & 3) << 4)) - 32;
                const __m256i ws = _mm256_shuffle_epi8(tbl, qx_nibbles(a->qs + 16 * sb));
                const __m256i wa = _mm256_sign_epi8(ws, ws), sv = _mm256_set1_epi16((short)ls);
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    const tv_block_q8_K *xb = (const tv_block_q8_K *)(x + t * xrs) + i;
                    const __m256i yv = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * sb));
                    acc[t] = _mm256_add_epi32(acc[t], tv_madd_epi16(qx_pairs(wa, _mm256_sign_epi8(yv, ws)), sv));
                }
            }
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *xb = (const tv_block_q8_K *)(x + t * xrs) + i;
            __m256i v = acc[t];
            if (ty == QX_Q3_K) {   // codes were q + 4: take 4 * sum_s scale_s * sum(x in s) back out
                const __m256i corr = tv_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), sc16);
                v = _mm256_sub_epi32(v, _mm256_slli_epi32(corr, 2));
            }
            accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(dw * xb->d), accf[t]);
            if (ty == QX_Q2_K || ty == QX_Q5_K) {
                const __m256i pm = tv_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), mn16);
                mins[t] += xb->d * dmin * (float)qx_hsum_epi32(pm);
            }
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys] = qx_hsum_ps(accf[t]) - mins[t];
}

// ======================= Q8_1 activations =======================
// Bit-exact with ref_from_float_q8_1: d = amax / 127, q = roundf(x * (1 / d)) (half away from zero:
// trunc, then ±1 where the exact remainder is >= 0.5), s = f16(d * sum q).
QX_INLINE __m256 qx_round_half_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), sgn = _mm256_set1_ps(-0.0f);
    const __m256 f = _mm256_andnot_ps(sgn, _mm256_sub_ps(v, t));
    const __m256 one = _mm256_and_ps(_mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_or_ps(one, _mm256_and_ps(v, sgn)));
}
static void qx_from_float_q8_1(const float *src, void *dst, int64_t n) {
    tv_block_q8_1 *b = dst;
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / 32; i++) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(src + 32 * i + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sgn, v[k]));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float d = _mm_cvtss_f32(m) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q[4], sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            q[k] = _mm256_cvtps_epi32(qx_round_half_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id))));
            sum = _mm256_add_epi32(sum, q[k]);
        }
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)b[i].qs, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        b[i].d = f32_to_f16(d);
        b[i].s = f32_to_f16((float)qx_hsum_epi32(sum) * d);
    }
}

// ======================= instantiation =======================
// PFX_vec_dot and PFX_gemm over the tiles of BODY(..., R, T, ARGS) for R in 1..RM, T in 1..4.
#define QX_TILE(PFX, R, T, CALL)                                                                                     \
    static void PFX##_##R##x##T(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,   \
                                int64_t ys) { CALL; }
#define QX_SET32(PFX, TY, VN)                                                                                        \
    QX_TILE(PFX, 1, 1, qx_tile32(n, w, wrs, x, xrs, y, ys, 1, 1, TY, VN))                                           \
    QX_TILE(PFX, 1, 2, qx_tile32(n, w, wrs, x, xrs, y, ys, 1, 2, TY, VN))                                           \
    QX_TILE(PFX, 1, 3, qx_tile32(n, w, wrs, x, xrs, y, ys, 1, 3, TY, VN))                                           \
    QX_TILE(PFX, 1, 4, qx_tile32(n, w, wrs, x, xrs, y, ys, 1, 4, TY, VN))                                           \
    QX_TILE(PFX, 2, 1, qx_tile32(n, w, wrs, x, xrs, y, ys, 2, 1, TY, VN))                                           \
    QX_TILE(PFX, 2, 2, qx_tile32(n, w, wrs, x, xrs, y, ys, 2, 2, TY, VN))                                           \
    QX_TILE(PFX, 2, 3, qx_tile32(n, w, wrs, x, xrs, y, ys, 2, 3, TY, VN))                                           \
    QX_TILE(PFX, 2, 4, qx_tile32(n, w, wrs, x, xrs, y, ys, 2, 4, TY, VN))                                           \
    static tv_tile_fn PFX##_tiles[3][5] = { { 0 }, { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 },              \
                                            { 0, PFX##_2x1, PFX##_2x2, PFX##_2x3, PFX##_2x4 } };                   \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,  \
                           size_t xrs, float *y, int64_t ys) {                                                      \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 2, 4);                                         \
    }
#define QX_SETK(PFX, TY)                                                                                             \
    QX_TILE(PFX, 1, 1, qx_tileK(n, w, wrs, x, xrs, y, ys, 1, TY))                                                   \
    QX_TILE(PFX, 1, 2, qx_tileK(n, w, wrs, x, xrs, y, ys, 2, TY))                                                   \
    QX_TILE(PFX, 1, 3, qx_tileK(n, w, wrs, x, xrs, y, ys, 3, TY))                                                   \
    QX_TILE(PFX, 1, 4, qx_tileK(n, w, wrs, x, xrs, y, ys, 4, TY))                                                   \
    static tv_tile_fn PFX##_tiles[2][5] = { { 0 }, { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 } };           \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,  \
                           size_t xrs, float *y, int64_t ys) {                                                      \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 1, 4);                                         \
    }

QX_SET32(q4_1_vnni, QX_Q4_1, true)
QX_SET32(q4_1_mad, QX_Q4_1, false)
QX_SET32(q5_1_vnni, QX_Q5_1, true)
QX_SET32(q5_1_mad, QX_Q5_1, false)
QX_SET32(q5_0_vnni, QX_Q5_0, true)
QX_SET32(q5_0_mad, QX_Q5_0, false)
QX_SET32(iq4_nl_vnni, QX_IQ4_NL, true)
QX_SET32(iq4_nl_mad, QX_IQ4_NL, false)
QX_SETK(q2_K, QX_Q2_K)
QX_SETK(q3_K, QX_Q3_K)
QX_SETK(q5_K, QX_Q5_K)
QX_SETK(iq4_xs, QX_IQ4_XS)

// Installs the kernels above into t (vnni: the file's vpdpbusd may run).
static void qx_install(tv_type_traits *t, bool vnni) {
#define QX_PUT(T, P)                                                                                                 \
    do {                                                                                                             \
        t[T].vec_dot = vnni ? P##_vnni_vec_dot : P##_mad_vec_dot;                                                    \
        t[T].gemm = vnni ? P##_vnni_gemm : P##_mad_gemm;                                                             \
    } while (0)
    QX_PUT(TV_TYPE_Q4_1, q4_1);
    QX_PUT(TV_TYPE_Q5_1, q5_1);
    QX_PUT(TV_TYPE_Q5_0, q5_0);
    QX_PUT(TV_TYPE_IQ4_NL, iq4_nl);
#undef QX_PUT
    t[TV_TYPE_Q8_1].from_float = qx_from_float_q8_1;
    t[TV_TYPE_Q2_K].vec_dot = q2_K_vec_dot;
    t[TV_TYPE_Q2_K].gemm = q2_K_gemm;
    t[TV_TYPE_Q3_K].vec_dot = q3_K_vec_dot;
    t[TV_TYPE_Q3_K].gemm = q3_K_gemm;
    t[TV_TYPE_Q5_K].vec_dot = q5_K_vec_dot;
    t[TV_TYPE_Q5_K].gemm = q5_K_gemm;
    t[TV_TYPE_IQ4_XS].vec_dot = iq4_xs_vec_dot;
    t[TV_TYPE_IQ4_XS].gemm = iq4_xs_gemm;
}

#endif
