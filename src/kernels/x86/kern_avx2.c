// kern_avx2.c — AVX2/FMA/F16C kernels (optionally AVX-VNNI for the int8 dot products).
//
// int8 dot of one 32-byte block: unsigned × signed bytes -> 8 int32 lanes, either vpdpbusd
// (AVX-VNNI) or vpmaddubsw + vpmaddwd. Q8_0 weights are signed, so the sign trick turns the pair
// into (|w|, sign(x, w)); Q4_0 nibbles are unsigned already and the -8 offset is folded in as
// 8 * sum(x), once per activation block.
// GEMM tiles: RM rows × up to TM tokens per weight load (see tile.h); accumulators stay in float
// lanes (one chain per pair), reduced horizontally once at the end.
// This file is compiled with -mavx2 -mfma -mf16c -mavxvnni: nothing here may run before
// dispatch.c has checked the CPU (VNNI variants only when vnni was detected).
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/madd_avx2.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
INLINE int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
INLINE float f16v(tv_f16 h) { return _cvtsh_ss(h); }

// acc + (u8 u) · (s8 s), 8 int32 lanes. Without VNNI the int16 pair sums must not saturate:
// callers guarantee |u| * |s| * 2 < 32768.
INLINE __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s, bool vnni) {
    if (vnni) return _mm256_dpbusd_avx_epi32(acc, u, s);
    return _mm256_add_epi32(acc, tv_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// ======================= Q8_0 × Q8_0 =======================
INLINE void q8_0_tile(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                      int64_t ys, const int R, const int T, const bool vnni) {
    const int64_t nb = n / TV_QK8_0;
    __m256 acc[4][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[4], wa[4];
        __m256 dw[4];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) {
            const tv_block_q8_0 *wb = (const tv_block_q8_0 *)(w + r * wrs) + b;
            TV_PREFETCH_NEXT_ROWS(wb, R * wrs, sizeof *wb);
            wv[r] = _mm256_loadu_si256((const __m256i *)wb->qs);
            wa[r] = _mm256_sign_epi8(wv[r], wv[r]);
            dw[r] = _mm256_set1_ps(f16v(wb->d));
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + t * xrs) + b;
            __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            __m256 dx = _mm256_set1_ps(f16v(xb->d));
            TV_TILE_UNROLL for (int r = 0; r < R; r++) {
                __m256i p = dot_u8s8(_mm256_setzero_si256(), wa[r], _mm256_sign_epi8(xv, wv[r]), vnni);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ======================= Q4_0 × Q8_0 =======================
INLINE void q4_0_tile(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                      int64_t ys, const int R, const int T, const bool vnni) {
    const int64_t nb = n / TV_QK4_0;
    const __m256i m4 = _mm256_set1_epi8(0x0F), k8 = _mm256_set1_epi8(8);
    __m256 acc[4][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq[4];
        __m256 dw[4];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) {
            const tv_block_q4_0 *wb = (const tv_block_q4_0 *)(w + r * wrs) + b;
            TV_PREFETCH_NEXT_ROWS(wb, R * wrs, sizeof *wb);
            __m128i q = _mm_loadu_si128((const __m128i *)wb->qs);
            __m256i qq = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);   // low half: elems 0..15, high: 16..31
            wq[r] = _mm256_and_si256(qq, m4);
            dw[r] = _mm256_set1_ps(f16v(wb->d));
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + t * xrs) + b;
            __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            __m256 dx = _mm256_set1_ps(f16v(xb->d));
            // -8 * x per lane group, the start value of every row's sum for this token
            __m256i neg8x = _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(_mm256_setzero_si256(), k8, xv, vnni));
            TV_TILE_UNROLL for (int r = 0; r < R; r++) {
                __m256i p = dot_u8s8(neg8x, wq[r], xv, vnni);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ======================= F32 / F16 / BF16 × F32 =======================
enum { FT_F32, FT_F16, FT_BF16 };
INLINE __m256 load8(const uint8_t *p, int64_t i, const int ft) {
    if (ft == FT_F32) return _mm256_loadu_ps((const float *)p + i);
    if (ft == FT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const tv_f16 *)p + i)));
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const tv_bf16 *)p + i))), 16));
}
INLINE float load1(const uint8_t *p, int64_t i, const int ft) {
    if (ft == FT_F32) return ((const float *)p)[i];
    if (ft == FT_F16) return f16v(((const tv_f16 *)p)[i]);
    return bf16_to_f32(((const tv_bf16 *)p)[i]);
}
INLINE void float_tile(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys,
                       const int R, const int T, const int ft) {
    __m256 acc[4][4];
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[4];
        TV_TILE_UNROLL for (int r = 0; r < R; r++) wv[r] = load8(w + r * wrs, i, ft);
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps((const float *)(x + t * xrs) + i);
            TV_TILE_UNROLL for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    TV_TILE_UNROLL for (int r = 0; r < R; r++) TV_TILE_UNROLL for (int t = 0; t < T; t++) {
        float s = hsum_ps(acc[r][t]);
        for (int64_t j = i; j < n; j++) s += load1(w + r * wrs, j, ft) * ((const float *)(x + t * xrs))[j];
        y[t * ys + r] = s;
    }
}

// ======================= Q4_K / Q6_K × Q8_K =======================
// One weight row × up to 4 tokens: the row's nibbles and 6-bit scales are unpacked once per
// super-block and reused for every token. Products: vpmaddubsw (u4/u6 × s8, no saturation:
// 63 * 127 * 2 < 32768) then vpmaddwd with the sub-block scale as int16. Min / offset terms come
// from the activation's bsums.
INLINE void q4_K_tile(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                      int64_t ys, const int R, const int T, const int unused) {
    (void)wrs; (void)R; (void)unused;
    const tv_block_q4_K *a = (const tv_block_q4_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 accf[4];
    float mins[4] = { 0 };
    TV_TILE_UNROLL for (int t = 0; t < T; t++) accf[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        uint64_t sc64, mn64;
        q4_K_unpack_scales(a[i].scales, &sc64, &mn64);
        // scales as int16, sub-block j in lanes 2j (low 128) ... broadcast per chunk below
        __m128i sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc64));
        __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn64));
        __m256i mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
        __m256i acc[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
        TV_TILE_UNROLL for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i slo = _mm256_broadcastw_epi16(_mm_srli_si128(sc16, 0));
            __m256i shi = _mm256_broadcastw_epi16(_mm_srli_si128(sc16, 2));
            sc16 = _mm_srli_si128(sc16, 4);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                __m256i ylo = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * c));
                __m256i yhi = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * c + 32));
                __m256i plo = tv_madd_epi16(_mm256_maddubs_epi16(lo, ylo), slo);
                __m256i phi = tv_madd_epi16(_mm256_maddubs_epi16(hi, yhi), shi);
                acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(plo, phi));
            }
        }
        float dw = f16v(a[i].d), dmin = f16v(a[i].dmin);
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), _mm256_set1_ps(dw * b->d), accf[t]);
            __m256i pm = tv_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), mn16);
            mins[t] += b->d * dmin * (float)hsum_epi32(pm);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys] = hsum_ps(accf[t]) - mins[t];
}

INLINE void q6_K_tile(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                      int64_t ys, const int R, const int T, const int unused) {
    (void)wrs; (void)R; (void)unused;
    const tv_block_q6_K *a = (const tv_block_q6_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m256 accf[4];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) accf[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        __m256i acc[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
        TV_TILE_UNROLL for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i q[4], scv[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            TV_TILE_UNROLL for (int k = 0; k < 4; k++) {   // elements 128h + 32k .. +31: sub-blocks 8h + 2k, 8h + 2k + 1
                int sb = 8 * h + 2 * k;
                scv[k] = _mm256_set_m128i(_mm_set1_epi16(a[i].scales[sb + 1]), _mm_set1_epi16(a[i].scales[sb]));
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
                    __m256i yv = _mm256_loadu_si256((const __m256i *)(b->qs + 128 * h + 32 * k));
                    acc[t] = _mm256_add_epi32(acc[t], tv_madd_epi16(_mm256_maddubs_epi16(q[k], yv), scv[k]));
                }
            }
        }
        float dw = f16v(a[i].d);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            // the -32 offset: 32 * sum_k scale_k * sum(x in sub-block k), folded into the int lanes
            __m256i corr = tv_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), sc16);
            __m256i v = _mm256_sub_epi32(acc[t], _mm256_slli_epi32(corr, 5));
            accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(dw * b->d), accf[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys] = hsum_ps(accf[t]);
}

// ======================= activation quantizers =======================
// (int)roundf(v), half away from zero: truncate v + copysign(0.49999997, v) (exact for every float,
// as kern_avx512.c's round_half_away512).
INLINE __m256i round_half_away(__m256 v) {
    const __m256 h = _mm256_set1_ps(0x1.fffffep-2f), sgn = _mm256_set1_ps(-0.0f);
    return _mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_or_ps(h, _mm256_and_ps(v, sgn))));
}
// 32 int32 in 4 vectors -> 32 int8 in element order
INLINE __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
INLINE float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static void from_float_q8_0(const float *src, void *dst, int64_t n) {
    tv_block_q8_0 *y = dst;
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / TV_QK8_0; i++) {
        const float *x = src + i * TV_QK8_0;
        __m256 v[4];
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sgn, v[0]), _mm256_andnot_ps(sgn, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sgn, v[2]), _mm256_andnot_ps(sgn, v[3])));
        float amax = hmax_ps(m);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = (tv_f16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);   // RNE, = f32_to_f16
        __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) q[k] = round_half_away(_mm256_mul_ps(v[k], idv));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

static void from_float_q8_K(const float *src, void *dst, int64_t n) {
    tv_block_q8_K *y = dst;
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sgn, _mm256_loadu_ps(x + 8 * k)));
        float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        __m256 idv = _mm256_set1_ps(127.0f / amax);
        const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
        for (int g = 0; g < 8; g++) {   // 32 elements per group
            __m256i q[4];
            TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), idv));
                q[k] = _mm256_max_epi32(_mm256_min_epi32(v, lim), nlim);
            }
            __m256i qb = pack_i32_to_i8(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), qb);
            // sums of 16: widen to int16 and pairwise add
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), qb);        // 16 × int16 pair sums
            __m256i s32 = tv_madd_epi16(s16, _mm256_set1_epi16(1));         // 8 × int32 (4 elems each)
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            __m128i h = _mm_hadd_epi32(lo, hi);                                  // 4 × 8 elems
            h = _mm_hadd_epi32(h, h);                                             // 2 × 16 elems
            y[i].bsums[2 * g] = (int16_t)_mm_cvtsi128_si32(h);
            y[i].bsums[2 * g + 1] = (int16_t)_mm_extract_epi32(h, 1);
        }
        y[i].d = amax / 127.0f;
    }
}

// ======================= axpy: y += a * x (x F32/F16/BF16) =======================
INLINE void axpy_body(int64_t n, float a, const void *xv, float *y, const int ft) {
    const uint8_t *x = xv;
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load8(x, i, ft), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * load1(x, i, ft);
}
static void axpy_f32(int64_t n, float a, const void *x, float *y) { axpy_body(n, a, x, y, FT_F32); }
static void axpy_f16(int64_t n, float a, const void *x, float *y) { axpy_body(n, a, x, y, FT_F16); }
static void axpy_bf16(int64_t n, float a, const void *x, float *y) { axpy_body(n, a, x, y, FT_BF16); }

// ======================= F16 / BF16 row conversion (bit-exact with types.c) =======================
static void to_float_f16(const void *src, float *dst, int64_t n) {
    const tv_f16 *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) dst[i] = f16_to_f32(h[i]);
}
static void from_float_f16(const float *src, void *dst, int64_t n) {
    tv_f16 *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) h[i] = f32_to_f16(src[i]);
}
static void to_float_bf16(const void *src, float *dst, int64_t n) {
    const tv_bf16 *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i))), 16));
    for (; i < n; i++) dst[i] = bf16_to_f32(h[i]);
}
static void from_float_bf16(const float *src, void *dst, int64_t n) {
    tv_bf16 *h = dst;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF), quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        __m256i x = _mm256_castps_si256(v);
        __m256i rne = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(x, bias), _mm256_and_si256(_mm256_srli_epi32(x, 16), one)), 16);
        __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
        __m256i r = _mm256_blendv_epi8(rne, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);   // lanes 0, 2
        _mm_storeu_si128((__m128i *)(h + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++) h[i] = f32_to_bf16(src[i]);
}

// ======================= instantiation =======================
enum { RM_Q = 2, TM_Q = 4, RM_F = 2, TM_F = 4 };

#define TILE_SET(PFX, BODY, ARG)                                                                                   \
    static void PFX##_1x1(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 1, ARG); } \
    static void PFX##_1x2(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 2, ARG); } \
    static void PFX##_1x3(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 3, ARG); } \
    static void PFX##_1x4(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 4, ARG); } \
    static void PFX##_2x1(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 2, 1, ARG); } \
    static void PFX##_2x2(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 2, 2, ARG); } \
    static void PFX##_2x3(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 2, 3, ARG); } \
    static void PFX##_2x4(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 2, 4, ARG); } \
    static tv_tile_fn PFX##_tiles[3][5] = { { 0 }, { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 },             \
                                            { 0, PFX##_2x1, PFX##_2x2, PFX##_2x3, PFX##_2x4 } };                  \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) {                                \
        PFX##_1x1(n, w, 0, x, 0, s, 0);                                                                            \
    }                                                                                                              \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 2, 4);                                   \
    }

TILE_SET(q8_0_vnni, q8_0_tile, true)
TILE_SET(q8_0_mad, q8_0_tile, false)
TILE_SET(q4_0_vnni, q4_0_tile, true)
TILE_SET(q4_0_mad, q4_0_tile, false)
TILE_SET(f32, float_tile, FT_F32)
TILE_SET(f16, float_tile, FT_F16)
TILE_SET(bf16, float_tile, FT_BF16)

#define TILE_SET_R1(PFX, BODY)                                                                                     \
    static void PFX##_1x1(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 1, 0); } \
    static void PFX##_1x2(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 2, 0); } \
    static void PFX##_1x3(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 3, 0); } \
    static void PFX##_1x4(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y, int64_t ys) { BODY(n, w, wrs, x, xrs, y, ys, 1, 4, 0); } \
    static tv_tile_fn PFX##_tiles[2][5] = { { 0 }, { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 } };          \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 1, 4);                                   \
    }

TILE_SET_R1(q4_K, q4_K_tile)
TILE_SET_R1(q6_K, q6_K_tile)

// ======================= packed Q8_0 / Q4_0 (kernels.h "packed weights") =======================
// A half group (8 rows: bytes 32h..32h+31 of each 64-byte quant vector, one row per int32 lane) x T
// tokens (<= 4), running the canonical per-block chain of the scalar and AVX-512 packed kernels, so
// the bits match them. With VNNI the stored unsigned weights (Q8_0 + 128, Q4_0 nibbles) meet the
// activations in vpdpbusd with the offset folded in as -offset * sum(x); without VNNI, Q8_0 goes
// back to signed bytes for the sign trick (no offset) and Q4_0 nibbles feed vpmaddubsw directly.
enum { P8_TP = 32, P8_PANEL_BYTES = 256 * 1024 };   // tokens per pass, weight bytes per row panel

INLINE void p8_tile(const bool q4, const bool vnni, const uint8_t *gq, int h, size_t gstride,
                    int64_t nb, const uint8_t *x, size_t xrs, float *out, const int T) {
    const int qv = q4 ? 4 : 8;
    const int32_t off = q4 ? 8 : (vnni ? 128 : 0);
    const __m256i m4 = _mm256_set1_epi8(0x0F), k80 = _mm256_set1_epi8((char)0x80);
    tv_packed_act xa[4];   // token t's quants, scales, block sums
    TV_TILE_UNROLL for (int t = 0; t < T; t++) xa[t] = packed_act_view(x + (size_t)t * xrs, nb * TV_QK8_0);
    __m256 acc[4];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm256_set1_epi32(-off * xa[t].s[b]);
        TV_TILE_UNROLL for (int k = 0; k < 8; k++) {
            const uint8_t *p = gq + pk16_q(q4, nb, b) + (size_t)(q4 ? (k & 3) : k) * 64 + 32 * h;
            if (T <= 2 && k < qv) __builtin_prefetch(p + gstride, 0, 3);
            __m256i w = _mm256_loadu_si256((const __m256i *)p), wa = w, ws = w;
            if (q4) w = k < 4 ? _mm256_and_si256(w, m4) : _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
            if (!q4 && !vnni) {
                ws = _mm256_xor_si256(w, k80);   // the signed weights
                wa = _mm256_sign_epi8(ws, ws);
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                int32_t xw;
                memcpy(&xw, xa[t].q + b * TV_QK8_0 + 4 * k, 4);
                const __m256i xv = _mm256_set1_epi32(xw);
                if (!q4 && !vnni) s[t] = dot_u8s8(s[t], wa, _mm256_sign_epi8(xv, ws), false);
                else s[t] = dot_u8s8(s[t], w, xv, vnni);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gq + pk16_d(q4, nb, b) + 16 * h)));
        TV_TILE_UNROLL for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), _mm256_mul_ps(d, _mm256_set1_ps(xa[t].d[b])), acc[t]);
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_storeu_ps(out + 8 * t, acc[t]);
}
typedef void (*p8_fn)(const uint8_t *gq, int h, size_t gstride, int64_t nb, const uint8_t *x, size_t xrs,
                      float *out);
#define P8_FN(Q4, VN, T)                                                                                           \
    static void p8_##Q4##VN##_##T(const uint8_t *gq, int h, size_t gstride, int64_t nb, const uint8_t *x,          \
                                  size_t xrs, float *out) {                                                        \
        p8_tile(Q4, VN, gq, h, gstride, nb, x, xrs, out, T);                                                       \
    }
#define P8_SET(Q4, VN) P8_FN(Q4, VN, 1) P8_FN(Q4, VN, 2) P8_FN(Q4, VN, 3) P8_FN(Q4, VN, 4)
P8_SET(0, 0) P8_SET(0, 1) P8_SET(1, 0) P8_SET(1, 1)
static const p8_fn p8_k[2][2][5] = {   // [q4][vnni][T]
    { { 0, p8_00_1, p8_00_2, p8_00_3, p8_00_4 }, { 0, p8_01_1, p8_01_2, p8_01_3, p8_01_4 } },
    { { 0, p8_10_1, p8_10_2, p8_10_3, p8_10_4 }, { 0, p8_11_1, p8_11_2, p8_11_3, p8_11_4 } },
};

// Blocked by packed_drive; a step is one 16-row group whose halves run every 4-token tile of the
// pass over the whole row (results through a small buffer: a half may be partial).
static void p8_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    const tv_packed_ctx *c = arg;
    const uint8_t *gq = c->w + (size_t)rg * c->wrs;
    for (int h = 0; h < 2; h++) {
        const int64_t valid = rend - rg - 8 * h < 8 ? rend - rg - 8 * h : 8;
        if (valid <= 0) break;
        for (int64_t tg = 0; tg < tp; tg += 4) {
            const int T = tp - tg < 4 ? (int)(tp - tg) : 4;
            float out[4 * 8];   // (T, 8 rows)
            p8_k[c->q4][c->vnni][T](gq, h, 16 * c->wrs, c->nb, c->x + (size_t)(t0 + tg) * c->xrs, c->xrs, out);
            for (int t = 0; t < T; t++)
                memcpy(c->y + (t0 + tg + t) * c->ys + rg + 8 * h, out + 8 * t, (size_t)valid * sizeof(float));
        }
    }
}
static void p8_gemm(bool q4, bool vnni, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                    const void *x, size_t xrs, float *y, int64_t ys) {
    tv_packed_ctx c = { q4, vnni, n / TV_QK8_0, w, x, wrs, xrs, y, ys };
    TV_CHECK(c.nb >= 1 && r0 % 16 == 0);
    packed_drive(r0, r1, wrs, nt, P8_TP, P8_PANEL_BYTES, 16, p8_step, &c);
}
#define P8_GEMM(NAME, Q4, VN)                                                                                      \
    static void NAME(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,      \
                     size_t xrs, float *y, int64_t ys) {                                                           \
        p8_gemm(Q4, VN, n, r0, r1, w, wrs, nt, x, xrs, y, ys);                                                     \
    }
P8_GEMM(q8_0_packed_mad, false, false)
P8_GEMM(q8_0_packed_vnni, false, true)
P8_GEMM(q4_0_packed_mad, true, false)
P8_GEMM(q4_0_packed_vnni, true, true)

void x86_install_avx2(tv_type_traits *t, bool vnni) {
    t[TV_TYPE_Q8_0].vec_dot = vnni ? q8_0_vnni_vec_dot : q8_0_mad_vec_dot;
    t[TV_TYPE_Q8_0].gemm = vnni ? q8_0_vnni_gemm : q8_0_mad_gemm;
    t[TV_TYPE_Q8_0].from_float = from_float_q8_0;
    t[TV_TYPE_Q4_0].vec_dot = vnni ? q4_0_vnni_vec_dot : q4_0_mad_vec_dot;
    t[TV_TYPE_Q4_0].gemm = vnni ? q4_0_vnni_gemm : q4_0_mad_gemm;
    t[TV_TYPE_Q8_0].gemm_packed = vnni ? q8_0_packed_vnni : q8_0_packed_mad;
    t[TV_TYPE_Q4_0].gemm_packed = vnni ? q4_0_packed_vnni : q4_0_packed_mad;
    t[TV_TYPE_Q8_0].pack_pays = t[TV_TYPE_Q4_0].pack_pays = true;
    t[TV_TYPE_F32].vec_dot = f32_vec_dot;
    t[TV_TYPE_F32].gemm = f32_gemm;
    t[TV_TYPE_F16].vec_dot = f16_vec_dot;
    t[TV_TYPE_F32].axpy = axpy_f32;
    t[TV_TYPE_F16].axpy = axpy_f16;
    t[TV_TYPE_BF16].axpy = axpy_bf16;
    t[TV_TYPE_F16].to_float = to_float_f16;
    t[TV_TYPE_F16].from_float = from_float_f16;
    t[TV_TYPE_BF16].to_float = to_float_bf16;
    t[TV_TYPE_BF16].from_float = from_float_bf16;
    t[TV_TYPE_F16].gemm = f16_gemm;
    t[TV_TYPE_BF16].vec_dot = bf16_vec_dot;
    t[TV_TYPE_BF16].gemm = bf16_gemm;
    t[TV_TYPE_Q4_K].vec_dot = q4_K_vec_dot;
    t[TV_TYPE_Q4_K].gemm = q4_K_gemm;
    t[TV_TYPE_Q6_K].vec_dot = q6_K_vec_dot;
    t[TV_TYPE_Q6_K].gemm = q6_K_gemm;
    t[TV_TYPE_Q8_K].from_float = from_float_q8_K;
    x86_install_kquant_avx2(t, vnni);
    x86_install_kq23_avx2(t, vnni);
}
