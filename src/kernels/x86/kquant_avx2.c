// kquant_avx2.c — packed Q4_K / Q5_K / Q6_K / IQ4_XS GEMM and GEMV with AVX2 (+ AVX-VNNI where present).
//
// The AVX-512 kernels' scheme (kquant_avx512.c) on half groups: one ymm lane per weight row of 8
// (bytes 32h..32h+31 of each 64-byte packed vector), 4 codes per lane, one u8 x s8 dot per code
// dword and token (vpdpbusd, or vpmaddubsw + vpmaddwd without VNNI: code * quant pairs stay below
// 2 * 63 * 127 < 32768, so nothing saturates), int32 sums per sub-block, then the canonical chain
// of ref_k.c in float: bit-identical to the scalar and AVX-512 packed kernels. Up to 2 tokens per
// tile (16 ymm registers). IQ4_XS: with VNNI as on AVX-512 (grid + 128 unsigned, each sub-block's
// sum started at -128 * its activation sum); without, vpmaddubsw of |grid value| against the
// activation bytes with the value's sign (pairs below 2 * 127 * 127 < 32768): the same exact isum_j.
#include "kernels/x86/kpack_avx2.h"


// byte b (0..3) of every dword, zero-extended (bytes 1, 2: one vpshufb instead of a shift and a mask)
KPA_INLINE __m256i byte_u(__m256i v, int b) {
    if (b == 0) return _mm256_and_si256(v, _mm256_set1_epi32(0xFF));
    if (b == 3) return _mm256_srli_epi32(v, 24);
    const uint32_t ix = 0x80808000u | (uint32_t)b;   // byte 0 <- byte b of the dword, the others 0
    const __m128i sh = _mm_setr_epi32((int)ix, (int)(ix + 4), (int)(ix + 8), (int)(ix + 12));
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(sh));
}
// byte b (0..3) of every dword, zero-extended into both of its int16 halves (one vpshufb)
KPA_INLINE __m256i byte_pair(__m256i v, int b) {
    const uint32_t ix = 0x80008000u | (uint32_t)b << 16 | (uint32_t)b;
    const __m128i sh = _mm_setr_epi32((int)ix, (int)(ix + 0x40004u), (int)(ix + 0x80008u), (int)(ix + 0xC000Cu));
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(sh));
}
KPA_INLINE __m256i byte_s(__m256i v, int b) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * b), 24); }

// Q5_K sub-block j's 8 code vectors from its 5 body vectors at p, as kquant_avx512.c q5k_codes (here
// shifted down to the codes x 1: x 8 they would saturate vpmaddubsw's int16 pairs).
KPA_INLINE void q5k_codes(const uint8_t *p, __m256i *q) {
    const __m256i mf8 = _mm256_set1_epi8((char)0xF8), me0 = _mm256_set1_epi8((char)0xE0), m3 = _mm256_set1_epi8(3),
                  m4 = _mm256_set1_epi8(4), m10 = _mm256_set1_epi8(0x10);
    __m256i v[5];
    TV_TILE_UNROLL for (int f = 0; f < 5; f++) {
        v[f] = kpa_ld(p + (size_t)f * 64);
        q[f] = _mm256_and_si256(v[f], mf8);
    }
    const __m256i lo5 = _mm256_slli_epi16(_mm256_and_si256(v[3], m3), 3);
    const __m256i lo6 = _mm256_slli_epi16(_mm256_and_si256(v[4], m3), 3);
    const __m256i lo7 = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v[3], m4), 1),
                                        _mm256_and_si256(_mm256_slli_epi16(v[4], 2), m10));
    q[5] = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(v[0], 5), me0), lo5);
    q[6] = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(v[1], 5), me0), lo6);
    q[7] = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(v[2], 5), me0), lo7);
    TV_TILE_UNROLL for (int k = 0; k < 8; k++) q[k] = _mm256_srli_epi16(q[k], 3);   // bits 0..2 were clear
}

// Half h of the group at gb (the 16-row group's base), T tokens -> out (T, 8). A super-block is
// f16 d, dmin (16 rows each) | scales | codes, read front to back.
// pf: 1-2 tokens (memory-bound), first half: prefetch every line read pf bytes further on in the
// thread's contiguous group stream (the second half finds the group's lines in cache); else 0.
// q5: Q5_K (codes x 8 as ref_k.c q5k_pack_codes lays them).
KPA_INLINE void q4k_half(const bool q5, const uint8_t *gb, int64_t nb, int h, size_t pf, const uint8_t *x,
                         size_t xrs, float *out, const int T, const bool vnni) {
    const size_t body = q5 ? PK_Q5K_BODY : PK_Q4K_BODY, soff = 64, qoff = 256;   // scales, codes
    const __m256i m4 = _mm256_set1_epi8(0x0F), m6 = _mm256_set1_epi8(0x3F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ph = gb + (size_t)i * body, *pb = ph + 32 * h;   // the super-block; its half's dwords
        const tv_block_q8_K *xb[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (pf)
            for (size_t o = 0; o < 256; o += 64) TV_PREFETCH_L2(ph + pf + o);
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ph + 16 * h)));
        __m256 u[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_setzero_ps();
        TV_TILE_UNROLL for (int c = 0; c < 4; c++) {
            __m256i s0[2], s1[2];
            TV_TILE_UNROLL for (int t = 0; t < T; t++) { s0[t] = _mm256_setzero_si256(); s1[t] = _mm256_setzero_si256(); }
            __m256i q5c[2][8];   // Q5_K: sub-blocks 2c, 2c + 1's codes
            if (q5) {
                if (pf)
                    TV_TILE_UNROLL for (int f = 0; f < 10; f++)
                        TV_PREFETCH_L2(pb + qoff + (size_t)(10 * c + f) * 64 + pf);
                q5k_codes(pb + qoff + (size_t)(2 * c) * 320, q5c[0]);
                q5k_codes(pb + qoff + (size_t)(2 * c + 1) * 320, q5c[1]);
            }
            TV_TILE_UNROLL for (int k = 0; k < 8; k++) {
                __m256i lo, hi;
                if (q5) {
                    lo = q5c[0][k];
                    hi = q5c[1][k];
                } else {
                    const uint8_t *p = pb + qoff + (size_t)(8 * c + k) * 64;
                    if (pf) TV_PREFETCH_L2(p + pf);
                    const __m256i v = kpa_ld(p);
                    lo = _mm256_and_si256(v, m4);
                    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    s0[t] = kpa_dot(s0[t], lo, xb[t]->qs + 64 * c + 4 * k, vnni);
                    s1[t] = kpa_dot(s1[t], hi, xb[t]->qs + 64 * c + 32 + 4 * k, vnni);
                }
            }
            // scales of sub-blocks 2c, 2c + 1: bytes 2 (c & 1) and +1 of u0 (c < 2) or of the
            // rebuilt high scales (c >= 2)
            const __m256i u0 = kpa_ld(pb + soff), u2 = kpa_ld(pb + soff + 128);
            const __m256i sc = c < 2 ? _mm256_and_si256(u0, m6)
                                     : _mm256_or_si256(_mm256_and_si256(u2, m4), _mm256_and_si256(_mm256_srli_epi32(u0, 2), m30));
            const int b = 2 * (c & 1);
            const __m256 ds0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(byte_u(sc, b)));
            const __m256 ds1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(byte_u(sc, b + 1)));
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0[t]), ds0, u[t]);
                u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1[t]), ds1, u[t]);
            }
        }
        // mins: sum_j mn_j * (bsums[2j] + bsums[2j+1]) as (mn_j, mn_j) int16 pairs against bsums dword j
        const __m256i u1 = kpa_ld(pb + soff + 64), u2 = kpa_ld(pb + soff + 128);
        const __m256i mn[2] = { _mm256_and_si256(u1, m6),
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                                                _mm256_and_si256(_mm256_srli_epi32(u1, 2), m30)) };
        __m256i so[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm256_setzero_si256();
        TV_TILE_UNROLL for (int j = 0; j < 8; j++) {
            const __m256i mw = byte_pair(mn[j >> 2], j & 3);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = kpa_dotw(so[t], mw, xb[t]->bsums + 2 * j, vnni);
        }
        const __m256 ndmin =
            _mm256_sub_ps(_mm256_setzero_ps(), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ph + 32 + 16 * h))));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(so[t]), ndmin, u[t]);
            acc[t] = _mm256_fmadd_ps(u[t], _mm256_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

KPA_INLINE void q6k_half(const uint8_t *gb, int64_t nb, int h2, size_t pf, const uint8_t *x, size_t xrs,
                         float *out, const int T, const bool vnni) {
    const __m256i m3f = _mm256_set1_epi8(0x3F), mc0 = _mm256_set1_epi8((char)0xC0);
    __m256 acc[2];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        // a super-block is f16 d (16 rows) | scales | codes, read front to back; ph: it, pb: its half's dwords
        const uint8_t *ph = gb + (size_t)i * PK_Q6K_BODY, *pb = ph + 32 * h2, *ps = pb + 32, *pq = pb + 288;
        const tv_block_q8_K *xb[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (pf)
            for (size_t o = 0; o < 320; o += 64) TV_PREFETCH_L2(ph + pf + o);   // d, scales (the codes: as they are read)
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ph + 16 * h2)));
        __m256 u[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_setzero_ps();
        // the packed codes (ref_k.c q6k_pack_codes): quarter jq's first three sub-blocks masked from
        // vectors 12jq.., the fourth from bits 6..7 of vectors 12jq + 3e..+2, as kquant_avx512.c
        // (here shifted down to the codes x 1)
        TV_TILE_UNROLL for (int jq = 0; jq < 4; jq++) {
            const __m256i sv = kpa_ld(ps + (size_t)jq * 64);   // byte jj of a dword: scale of 4jq + jj
            TV_TILE_UNROLL for (int jj = 0; jj < 4; jj++) {
                const int j = 4 * jq + jj;
                __m256i s[2];
                TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm256_setzero_si256();
                TV_TILE_UNROLL for (int e = 0; e < 4; e++) {
                    const int v = 4 * j + e;   // elements 4v..4v+3
                    __m256i q;
                    if (jj < 3) {
                        const uint8_t *p = pq + (size_t)(12 * jq + 4 * jj + e) * 64;
                        if (pf) TV_PREFETCH_L2(p + pf);
                        q = _mm256_and_si256(kpa_ld(p), m3f);
                    } else {
                        const uint8_t *p = pq + (size_t)(12 * jq + 3 * e) * 64;
                        const __m256i t4 = _mm256_or_si256(_mm256_srli_epi16(_mm256_and_si256(kpa_ld(p), mc0), 2),
                                                           _mm256_and_si256(kpa_ld(p + 64), mc0));
                        q = _mm256_srli_epi16(_mm256_or_si256(_mm256_srli_epi16(t4, 2), _mm256_and_si256(kpa_ld(p + 128), mc0)), 2);
                    }
                    TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = kpa_dot(s[t], q, xb[t]->qs + 4 * v, vnni);
                }
                const __m256 ds = _mm256_mul_ps(d, _mm256_cvtepi32_ps(byte_s(sv, jj)));
                TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), ds, u[t]);
            }
        }
        __m256i so[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm256_setzero_si256();
        TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
            const __m256i sv = kpa_ld(ps + (size_t)q * 64);
            const __m256i lo = _mm256_srai_epi16(_mm256_slli_epi16(sv, 8), 8), hi = _mm256_srai_epi16(sv, 8);
            const __m256i pe = _mm256_blend_epi16(lo, _mm256_slli_epi32(hi, 16), 0xAA);   // (sc 4q, sc 4q+1)
            const __m256i po = _mm256_blend_epi16(_mm256_srli_epi32(lo, 16), hi, 0xAA);   // (sc 4q+2, sc 4q+3)
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                so[t] = kpa_dotw(so[t], pe, xb[t]->bsums + 4 * q, vnni);
                so[t] = kpa_dotw(so[t], po, xb[t]->bsums + 4 * q + 2, vnni);
            }
        }
        const __m256 n32d = _mm256_mul_ps(d, _mm256_set1_ps(-32.0f));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(so[t]), n32d, u[t]);
            acc[t] = _mm256_fmadd_ps(u[t], _mm256_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

KPA_INLINE void iq4xs_half(const uint8_t *gb, int64_t nb, int h, size_t pf, const uint8_t *x, size_t xrs,
                           float *out, const int T, const bool vnni) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi32(0x30), m32 = _mm256_set1_epi32(32);
    const __m128i g = _mm_loadu_si128((const __m128i *)(vnni ? (const void *)iq4nl_values_u8 : (const void *)iq4nl_values));
    const __m256i grid = _mm256_broadcastsi128_si256(g);
    __m256 acc[2];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *pb = gb + pkx_qs(nb, i) + 32 * h;   // pack_layout.h
        const tv_block_q8_K *xb[2];
        int32_t off[2][8];   // VNNI: -128 * the activation sum of each sub-block, where its dot starts
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
            if (vnni)
                _mm256_storeu_si256((__m256i *)off[t], tv_madd_epi16(kpa_ld((const uint8_t *)xb[t]->bsums),
                                                                         _mm256_set1_epi16(-128)));
        }
        if (pf) {
            TV_PREFETCH_L2(gb + pkx_d(nb, i) + pf);   // line 0: d, scales_h; line 1: scales_l
            TV_PREFETCH_L2(gb + pkx_sl(nb, i) + pf);
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + pkx_d(nb, i) + 16 * h)));
        const __m256i sl = kpa_ld(gb + pkx_sl(nb, i) + 32 * h);
        const __m256i sh = _mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(gb + pkx_sh(nb, i) + 16 * h))), 4);
        __m256 u[2];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_setzero_ps();
        TV_TILE_UNROLL for (int j = 0; j < 8; j++) {
            const __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(sl, 4 * j), _mm256_set1_epi32(0x0F)),
                                               _mm256_and_si256(_mm256_srli_epi32(sh, 2 * j), m30));
            const __m256 ds = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, m32)));
            __m256i s0[2], s1[2];
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                s0[t] = vnni ? _mm256_set1_epi32(off[t][j]) : _mm256_setzero_si256();
                s1[t] = _mm256_setzero_si256();
            }
            TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
                const uint8_t *p = pb + (size_t)(4 * j + k) * 64;
                if (pf) TV_PREFETCH_L2(p + pf);
                const __m256i v = kpa_ld(p);
                const __m256i lo = _mm256_shuffle_epi8(grid, _mm256_and_si256(v, m4));
                const __m256i hi = _mm256_shuffle_epi8(grid, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                if (vnni) {
                    TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                        s0[t] = kpa_dot(s0[t], lo, xb[t]->qs + 32 * j + 4 * k, true);
                        s1[t] = kpa_dot(s1[t], hi, xb[t]->qs + 32 * j + 16 + 4 * k, true);
                    }
                } else {   // |value| x (activation with the value's sign)
                    const __m256i alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
                    TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                        int32_t a0, a1;
                        memcpy(&a0, xb[t]->qs + 32 * j + 4 * k, 4);
                        memcpy(&a1, xb[t]->qs + 32 * j + 16 + 4 * k, 4);
                        const __m256i p0 = _mm256_maddubs_epi16(alo, _mm256_sign_epi8(_mm256_set1_epi32(a0), lo));
                        const __m256i p1 = _mm256_maddubs_epi16(ahi, _mm256_sign_epi8(_mm256_set1_epi32(a1), hi));
                        s0[t] = _mm256_add_epi32(s0[t], tv_madd_epi16(p0, _mm256_set1_epi16(1)));
                        s1[t] = _mm256_add_epi32(s1[t], tv_madd_epi16(p1, _mm256_set1_epi16(1)));
                    }
                }
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++)
                u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0[t], s1[t])), ds, u[t]);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(u[t], _mm256_set1_ps(xb[t]->d), acc[t]);
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

#define Q4K_HALF(...) q4k_half(false, __VA_ARGS__)
#define Q5K_HALF(...) q4k_half(true, __VA_ARGS__)
KPA_HALF_FN(q4k, Q4K_HALF, 1, 0) KPA_HALF_FN(q4k, Q4K_HALF, 2, 0) KPA_HALF_FN(q4k, Q4K_HALF, 1, 1) KPA_HALF_FN(q4k, Q4K_HALF, 2, 1)
KPA_HALF_FN(q5k, Q5K_HALF, 1, 0) KPA_HALF_FN(q5k, Q5K_HALF, 2, 0) KPA_HALF_FN(q5k, Q5K_HALF, 1, 1) KPA_HALF_FN(q5k, Q5K_HALF, 2, 1)
KPA_HALF_FN(q6k, q6k_half, 1, 0) KPA_HALF_FN(q6k, q6k_half, 2, 0) KPA_HALF_FN(q6k, q6k_half, 1, 1) KPA_HALF_FN(q6k, q6k_half, 2, 1)
KPA_HALF_FN(iq4xs, iq4xs_half, 1, 0) KPA_HALF_FN(iq4xs, iq4xs_half, 2, 0) KPA_HALF_FN(iq4xs, iq4xs_half, 1, 1) KPA_HALF_FN(iq4xs, iq4xs_half, 2, 1)
static const kpa_half_tab q4k_k = { { 0, q4k_1_0, q4k_2_0 }, { 0, q4k_1_1, q4k_2_1 } };   // [vnni][T]
static const kpa_half_tab q5k_k = { { 0, q5k_1_0, q5k_2_0 }, { 0, q5k_1_1, q5k_2_1 } };
static const kpa_half_tab q6k_k = { { 0, q6k_1_0, q6k_2_0 }, { 0, q6k_1_1, q6k_2_1 } };
static const kpa_half_tab iq4xs_k = { { 0, iq4xs_1_0, iq4xs_2_0 }, { 0, iq4xs_1_1, iq4xs_2_1 } };

static void q4k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kpa_step(q4k_k, 2, arg, rg, rend, t0, tp); }
static void q5k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kpa_step(q5k_k, 2, arg, rg, rend, t0, tp); }
static void q6k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kpa_step(q6k_k, 2, arg, rg, rend, t0, tp); }
static void iq4xs_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    kpa_step(iq4xs_k, 2, arg, rg, rend, t0, tp);
}

KPA_GEMM(q4_K_packed_mad, q4k_step, false)
KPA_GEMM(q4_K_packed_vnni, q4k_step, true)
KPA_GEMM(q5_K_packed_mad, q5k_step, false)
KPA_GEMM(q5_K_packed_vnni, q5k_step, true)
KPA_GEMM(q6_K_packed_mad, q6k_step, false)
KPA_GEMM(q6_K_packed_vnni, q6k_step, true)
KPA_GEMM(iq4_xs_packed_mad, iq4xs_step, false)
KPA_GEMM(iq4_xs_packed_vnni, iq4xs_step, true)

void x86_install_kquant_avx2(tv_type_traits *t, bool vnni) {
    t[TV_TYPE_Q4_K].gemm_packed = vnni ? q4_K_packed_vnni : q4_K_packed_mad;
    t[TV_TYPE_Q5_K].gemm_packed = vnni ? q5_K_packed_vnni : q5_K_packed_mad;
    t[TV_TYPE_Q6_K].gemm_packed = vnni ? q6_K_packed_vnni : q6_K_packed_mad;
    t[TV_TYPE_IQ4_XS].gemm_packed = vnni ? iq4_xs_packed_vnni : iq4_xs_packed_mad;
    t[TV_TYPE_Q4_K].pack_pays = t[TV_TYPE_Q5_K].pack_pays = t[TV_TYPE_Q6_K].pack_pays = true;
    t[TV_TYPE_IQ4_XS].pack_pays = true;
}
