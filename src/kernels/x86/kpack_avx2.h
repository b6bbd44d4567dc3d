// kpack_avx2.h — what the AVX2 packed K-quant GEMMs share (kquant_avx2.c: Q4_K, Q5_K, Q6_K, IQ4_XS;
// kq23_avx2.c: Q3_K, Q2_K); private to those two files.
//
// Both run the same scheme (kernels.h "packed weights", 16-row groups of 64-byte vectors): a half
// kernel computes rows 8h..8h+7 of one group for a tile of up to KPA_TM_MAX tokens, one ymm lane
// per row; kpa_step walks a group's two halves over the tiles of a pass, and KPA_GEMM drives the
// steps over row panels with tile.h's packed_drive. The int8 dots are exact (vpdpbusd / vpdpwssd,
// or vpmaddubsw + vpmaddwd without VNNI: the callers keep pair sums below 32768).
#ifndef TV_X86_KPACK_AVX2_H
#define TV_X86_KPACK_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/madd_avx2.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define KPA_INLINE static inline __attribute__((always_inline))

enum {
    KPA_TP = 32,             // tokens per pass over a panel
    KPA_PANEL = 256 * 1024,  // weight bytes per row panel
    KPA_PF = 8192,           // 1-2 tokens: prefetch distance in the group stream (bytes, into L2), as kquant_avx512.c
    KPA_TM_MAX = 4,          // the most tokens a half kernel takes
};

// acc + u8 lanes of u · s8 (4 bytes at p, broadcast): exact int32
KPA_INLINE __m256i kpa_dot(__m256i acc, __m256i u, const void *p, const bool vnni) {
    int32_t v;
    memcpy(&v, p, 4);
    const __m256i s = _mm256_set1_epi32(v);
    if (vnni) return _mm256_dpbusd_avx_epi32(acc, u, s);
    return _mm256_add_epi32(acc, tv_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
// acc + int16 pairs of w · (the int16 pair at p, broadcast)
KPA_INLINE __m256i kpa_dotw(__m256i acc, __m256i w, const void *p, const bool vnni) {
    int32_t v;
    memcpy(&v, p, 4);
    const __m256i s = _mm256_set1_epi32(v);
    if (vnni) return _mm256_dpwssd_avx_epi32(acc, w, s);
    return _mm256_add_epi32(acc, tv_madd_epi16(w, s));
}
KPA_INLINE __m256i kpa_ld(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

// Half h (rows 8h..8h+7) of the 16-row group at gb, T tokens (x: the first token's Q8_K row, xrs
// bytes apart) -> out (T, 8). pf: prefetch distance in the thread's group stream, or 0.
typedef void (*kpa_half_fn)(const uint8_t *gb, int64_t nb, int h, size_t pf, const uint8_t *x, size_t xrs,
                            float *out);
typedef kpa_half_fn kpa_half_tab[2][KPA_TM_MAX + 1];   // [vnni][T], T = 1..tm

// One 16-row group: each half over every tile of up to tm tokens of the pass (a half may be
// partial: results go through a small buffer). 1-2 tokens: the first half prefetches KPA_PF ahead
// (the second finds the group's lines in cache).
KPA_INLINE void kpa_step(const kpa_half_tab k, const int tm, void *arg, int64_t rg, int64_t rend, int64_t t0,
                         int64_t tp) {
    const tv_packed_ctx *c = arg;   // q4 unused
    const uint8_t *gb = c->w + (size_t)rg * c->wrs;
    for (int h = 0; h < 2; h++) {
        const int64_t valid = rend - rg - 8 * h < 8 ? rend - rg - 8 * h : 8;
        if (valid <= 0) break;
        for (int64_t tg = 0; tg < tp; tg += tm) {
            const int T = tp - tg < tm ? (int)(tp - tg) : tm;
            float out[KPA_TM_MAX * 8];   // (T, 8 rows)
            k[c->vnni][T](gb, c->nb, h, tp <= 2 && h == 0 ? KPA_PF : 0, c->x + (size_t)(t0 + tg) * c->xrs, c->xrs, out);
            for (int t = 0; t < T; t++)
                memcpy(c->y + (t0 + tg + t) * c->ys + rg + 8 * h, out + 8 * t, (size_t)valid * sizeof(float));
        }
    }
}

// NAME_T_VN: a kpa_half_fn running BODY(gb, nb, h, pf, x, xrs, out, T, VN) with T and VN constants
#define KPA_HALF_FN(NAME, BODY, T, VN)                                                                             \
    static void NAME##_##T##_##VN(const uint8_t *gb, int64_t nb, int h, size_t pf, const uint8_t *x, size_t xrs,  \
                                  float *out) {                                                                    \
        BODY(gb, nb, h, pf, x, xrs, out, T, VN);                                                                   \
    }

// A gemm_packed entry (kernels_impl.h) over STEP, a tv_packed_step_fn calling kpa_step.
#define KPA_GEMM(NAME, STEP, VN)                                                                                   \
    static void NAME(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,      \
                     size_t xrs, float *y, int64_t ys) {                                                           \
        tv_packed_ctx c = { false, VN, n / TV_QK_K, w, x, wrs, xrs, y, ys };                                       \
        TV_CHECK(c.nb >= 1 && r0 % 16 == 0);                                                                       \
        packed_drive(r0, r1, wrs, nt, KPA_TP, KPA_PANEL, 16, STEP, &c);                                            \
    }

#endif
