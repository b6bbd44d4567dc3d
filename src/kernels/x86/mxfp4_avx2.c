// mxfp4_avx2.c — MXFP4 · Q8_0 dot product and GEMM with AVX2 (the ref's semantics: ref/ref_mxfp4.c).
//
// vec_dot: per block, the 32 nibbles become their table values with one byte shuffle (the table is
// 16 signed bytes), the int8 products are summed exactly in int32 (maddubs on |w| and x carrying w's
// sign: |w| <= 12, so the pair sums fit int16), and the float part is the ref's chain, block by
// block: the same bits as ref_vec_dot_mxfp4.
// GEMM (3 tokens and more; fewer go through vec_dot): 8 weight rows side by side, one ymm lane per
// row (mxfp4_avx512.c's scheme at half the width): a block of 8 rows is transposed once into 8
// vectors of 4 codes per lane as table value + 12 (0..24, the unsigned operand of vpdpbusd or
// vpmaddubsw), reused by every token; sum w x = sum (w + 12) x - 12 sum x exactly, then the ref's
// float step per (row, token) and block: acc = acc + (f16(dx) * 2^(e-128)) * isum, no FMA.
// f16 scales by F16C (_cvtsh_ss, f16_to_f32's bits for every half): the out-of-line scalar
// f16_to_f32 per (block, token) was ~6% of a gpt-oss-20b prefill (perf, 2 layers, pp512).
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void vec_dot_mxfp4(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_mxfp4 *a = w;
    const tv_block_q8_0 *b = x;
    const __m128i table = _mm_loadu_si128((const __m128i *)kern_mxfp4_values), m4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)a[i].qs);
        const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
        const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
        const __m256i wv = _mm256_set_m128i(hi, lo);   // elements 0..15, then 16..31
        const __m256i xv = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        const int32_t isum = hsum_i32(_mm256_madd_epi16(p, ones));
        const float d = _cvtsh_ss(b[i].d) * kern_e8m0_half(a[i].e);
        const float prod = d * (float)isum;   // its own statement: clang would contract d * x + sum into an FMA
        sum += prod;
    }
    *s = sum;
}

// ---- GEMM ----
enum {
    MX_MIN_TOK = 3,   // fewer tokens: vec_dot per (row, token)
    MX_TG = 4,        // tokens per compute group (16 ymm registers)
    MX_KB = 8,        // blocks per transposed chunk (2.3 KiB)
    MX_TP = 256,      // tokens per pass
    MX_SPAN = 2048,   // (block, token) activation entries per span (64 KiB of quants)
};
// A block of 8 rows: q[k] lane l = 4 codes (value + 12) of lane l's row, dword k (elements 4k..4k+3
// for k < 4, 16 + 4(k-4).. for k >= 4); d = the rows' scales 2^(e-128) as f32.
typedef struct mx8_blk { __m256i q[8]; __m256 d; } mx8_blk;

// Blocks b0 .. b0+nbk-1 of the 8 rows at w + ro[l] (goff: the same offsets as int32 lanes) into o.
static void mx8_pack(const uint8_t *w, const size_t *ro, __m256i goff, int64_t b0, int nbk, mx8_blk *o) {
    const __m128i tab128 = _mm_add_epi8(_mm_loadu_si128((const __m128i *)kern_mxfp4_values), _mm_set1_epi8(12));
    const __m256i tab = _mm256_set_m128i(tab128, tab128), m4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi32(2);
    for (int i = 0; i < nbk; i++) {
        const uint8_t *p = w + (size_t)(b0 + i) * sizeof(tv_block_mxfp4) + 1;
        __m256i z[4];   // z[j]: the code bytes of rows j and j + 4
        TV_TILE_UNROLL for (int j = 0; j < 4; j++)
            z[j] = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p + ro[j + 4])),
                                    _mm_loadu_si128((const __m128i *)(p + ro[j])));
        const __m256i a0 = _mm256_unpacklo_epi32(z[0], z[1]), a1 = _mm256_unpackhi_epi32(z[0], z[1]);
        const __m256i a2 = _mm256_unpacklo_epi32(z[2], z[3]), a3 = _mm256_unpackhi_epi32(z[2], z[3]);
        const __m256i t[4] = { _mm256_unpacklo_epi64(a0, a2), _mm256_unpackhi_epi64(a0, a2),
                               _mm256_unpacklo_epi64(a1, a3), _mm256_unpackhi_epi64(a1, a3) };
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
            o[i].q[k] = _mm256_shuffle_epi8(tab, _mm256_and_si256(t[k], m4));
            o[i].q[k + 4] = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(t[k], 4), m4));
        }
        // kern_e8m0_half per lane: e < 2 ? 0x00200000 << e : (e - 1) << 23 (the low byte of 4 read at e)
        const __m256i e = _mm256_and_si256(_mm256_i32gather_epi32((const int *)(const void *)(p - 1), goff, 1),
                                           _mm256_set1_epi32(0xFF));
        const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
        const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
        o[i].d = _mm256_castsi256_ps(_mm256_blendv_epi8(normal, sub, _mm256_cmpgt_epi32(two, e)));
    }
}

// s + the 8 lanes of codes w · (4 signed bytes at p, broadcast), exact int32.
INLINE __m256i mx8_dot(__m256i s, __m256i w, const int8_t *p, const bool vnni) {
    int32_t xw;
    memcpy(&xw, p, 4);
    const __m256i xv = _mm256_set1_epi32(xw);
    if (vnni) return _mm256_dpbusd_avx_epi32(s, w, xv);
    const __m256i pr = _mm256_maddubs_epi16(w, xv);   // |pair| <= 2 * 24 * 128: no saturation
    return _mm256_add_epi32(s, _mm256_madd_epi16(pr, _mm256_set1_epi16(1)));
}

// T tokens over nbk transposed blocks. xa/dxa/cra: the span's activations (32 quants, f32 scale,
// -12 * sum of the quants) at (block, token), block stride as; y: (T, ys) at the group's first row
// holds the running sums of the lanes in m (read unless first).
INLINE void mx8_compute(const mx8_blk *wb, int nbk, const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as,
                        float *y, int64_t ys, __m256i m, bool first, const int T, const bool vnni) {
    __m256 acc[MX_TG];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + t * ys, m);
    for (int i = 0; i < nbk; i++)
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const int8_t *xq = xa + (i * as + t) * TV_QK8_0;
            __m256i s = _mm256_set1_epi32(cra[i * as + t]), s2 = _mm256_setzero_si256();
            TV_TILE_UNROLL for (int k = 0; k < 8; k += 2) {   // two chains: an exact sum either way
                s = mx8_dot(s, wb[i].q[k], xq + 4 * k, vnni);
                s2 = mx8_dot(s2, wb[i].q[k + 1], xq + 4 * k + 4, vnni);
            }
            const __m256 d = _mm256_mul_ps(wb[i].d, _mm256_set1_ps(dxa[i * as + t]));
            const __m256 p = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(s, s2)));
            acc[t] = _mm256_add_ps(acc[t], p);
        }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_maskstore_ps(y + t * ys, m, acc[t]);
}
typedef void (*mx8_fn)(const mx8_blk *wb, int nbk, const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as,
                       float *y, int64_t ys, __m256i m, bool first);
#define MX8_FN(V, T)                                                                                            \
    static void mx8_compute_##V##_##T(const mx8_blk *wb, int nbk, const int8_t *xa, const float *dxa,             \
                                      const int32_t *cra, int64_t as, float *y, int64_t ys, __m256i m, bool first) { \
        mx8_compute(wb, nbk, xa, dxa, cra, as, y, ys, m, first, T, V);                                            \
    }
MX8_FN(0, 1) MX8_FN(0, 2) MX8_FN(0, 3) MX8_FN(0, 4) MX8_FN(1, 1) MX8_FN(1, 2) MX8_FN(1, 3) MX8_FN(1, 4)
static const mx8_fn mx8_k[2][MX_TG + 1] = {   // [vnni][T]
    { 0, mx8_compute_0_1, mx8_compute_0_2, mx8_compute_0_3, mx8_compute_0_4 },
    { 0, mx8_compute_1_1, mx8_compute_1_2, mx8_compute_1_3, mx8_compute_1_4 },
};

// Blocks [0, nb) of nt Q8_0 rows at x (xrs apart) -> per (block, token) entry b * nt + t: xa = the 32
// quants, dxa = the scale as f32, cra = -12 * their sum.
static void mx_aux(const uint8_t *x, size_t xrs, int64_t nt, int64_t nb, int8_t *xa, float *dxa, int32_t *cra) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    for (int64_t t = 0; t < nt; t++) {
        const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + (size_t)t * xrs);
        for (int64_t b = 0; b < nb; b++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)xb[b].qs);
            _mm256_storeu_si256((__m256i *)(xa + (b * nt + t) * TV_QK8_0), q);
            // sum of (q + 128) by 8-byte groups, then minus 32 * 128
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, k80), _mm256_setzero_si256());
            __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
            dxa[b * nt + t] = _cvtsh_ss(xb[b].d);
            cra[b * nt + t] = -12 * (_mm_cvtsi128_si32(h) - 32 * 128);
        }
    }
}

// The gemm contract (kernels.h), blocked as mxfp4_avx512.c's: passes of tokens, spans of blocks the
// activation copy holds, 8-row groups (a short last group repeats its last row in the lanes it does
// not store) transposed MX_KB blocks at a time, every token group over each chunk.
static void mx8_gemm(const bool vnni, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                     const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK_MXFP4;
    if (nt < MX_MIN_TOK) {
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < nt; t++)
                vec_dot_mxfp4(n, &y[t * ys + r], (const uint8_t *)w + (size_t)r * wrs, (const uint8_t *)x + (size_t)t * xrs);
        return;
    }
    int8_t xa[MX_SPAN * TV_QK8_0] __attribute__((aligned(32)));   // (span blocks, pass tokens, 32)
    float dxa[MX_SPAN];                                             // (span blocks, pass tokens)
    int32_t cra[MX_SPAN];                                           // (span blocks, pass tokens)
    mx8_blk wb[MX_KB];                                              // a transposed chunk of one row group
    TV_CHECK(nb >= 1 && 7 * wrs <= INT32_MAX);
    for (int64_t t0 = 0; t0 < nt; t0 += MX_TP) {
        const int64_t tp = nt - t0 < MX_TP ? nt - t0 : MX_TP;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * xrs;
        int64_t kb = MX_SPAN / tp;
        if (kb > nb) kb = nb;
        for (int64_t b0 = 0; b0 < nb; b0 += kb) {
            const int nbk = nb - b0 < kb ? (int)(nb - b0) : (int)kb;
            mx_aux(xt + (size_t)b0 * sizeof(tv_block_q8_0), xrs, tp, nbk, xa, dxa, cra);
            for (int64_t rg = r0; rg < r1; rg += 8) {
                const int R = r1 - rg < 8 ? (int)(r1 - rg) : 8;
                size_t ro[8];
                int32_t go[8], mk[8];
                for (int l = 0; l < 8; l++) {
                    go[l] = (int32_t)(ro[l] = (size_t)(l < R ? l : R - 1) * wrs);
                    mk[l] = l < R ? -1 : 0;
                }
                const __m256i goff = _mm256_loadu_si256((const __m256i *)go), m = _mm256_loadu_si256((const __m256i *)mk);
                const uint8_t *wg = (const uint8_t *)w + (size_t)rg * wrs;
                for (int c0 = 0; c0 < nbk; c0 += MX_KB) {
                    const int nc = nbk - c0 < MX_KB ? nbk - c0 : MX_KB;
                    mx8_pack(wg, ro, goff, b0 + c0, nc, wb);
                    for (int64_t tg = 0; tg < tp; tg += MX_TG) {
                        const int T = tp - tg < MX_TG ? (int)(tp - tg) : MX_TG;
                        const int64_t e = c0 * tp + tg;   // entry of (block c0, token tg)
                        mx8_k[vnni][T](wb, nc, xa + e * TV_QK8_0, dxa + e, cra + e, tp, y + (t0 + tg) * ys + rg, ys, m,
                                       b0 + c0 == 0);
                    }
                }
            }
        }
    }
}
static void gemm_mxfp4_vnni(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                            size_t xrs, float *y, int64_t ys) {
    mx8_gemm(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void gemm_mxfp4(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                       size_t xrs, float *y, int64_t ys) {
    mx8_gemm(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}

// ---------------- quantizer: f32 -> MXFP4 (bit-exact with ref_from_float_mxfp4) ----------------
// mxfp4_avx512.c's from_float (why the codes of |x| over m = 0, 1, 2, 3, 4, 6, 8, 12 are the ref's),
// 8 values a vector.

// Codes (0..15, one per int32 lane) of 8 values; md[m] = kern_mxfp4_values[m] * d.
static inline __m256i mxfp4_codes8(__m256 x, const __m256 md[8], __m256 absmask) {
    const __m256 a = _mm256_and_ps(x, absmask);
    __m256 best = _mm256_and_ps(_mm256_sub_ps(md[0], a), absmask);
    __m256 code = _mm256_setzero_ps();   // int32 codes, blended as floats
    for (int m = 1; m < 8; m++) {
        const __m256 e = _mm256_and_ps(_mm256_sub_ps(md[m], a), absmask);
        const __m256 lt = _mm256_cmp_ps(e, best, _CMP_LT_OQ);
        best = _mm256_blendv_ps(best, e, lt);
        code = _mm256_blendv_ps(code, _mm256_castsi256_ps(_mm256_set1_epi32(m)), lt);
    }
    const __m256i c = _mm256_castps_si256(code);
    // 8 where x's sign bit is set and the code is not 0
    const __m256i neg = _mm256_andnot_si256(_mm256_cmpeq_epi32(c, _mm256_setzero_si256()),
                                            _mm256_srli_epi32(_mm256_srai_epi32(_mm256_castps_si256(x), 31), 28));
    return _mm256_or_si256(c, _mm256_and_si256(neg, _mm256_set1_epi32(8)));
}

static void from_float_mxfp4(const float *src, void *dst, int64_t n) {
    tv_block_mxfp4 *b = dst;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const float *s = src + i * TV_QK_MXFP4;
        __m256 x[4], am = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            x[k] = _mm256_loadu_ps(s + 8 * k);
            am = _mm256_max_ps(_mm256_and_ps(x[k], absmask), am);   // a NaN lane keeps am's (the ref skips NaN)
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const uint8_t e = kern_mxfp4_e(_mm_cvtss_f32(m4));
        const float d = kern_e8m0_half(e);
        __m256 md[8];
        for (int m = 0; m < 8; m++) md[m] = _mm256_set1_ps((float)kern_mxfp4_values[m] * d);
        // byte j = code(j) | code(j + 16) << 4: elements 0..7 with 16..23, 8..15 with 24..31
        const __m256i lo = _mm256_or_si256(mxfp4_codes8(x[0], md, absmask), _mm256_slli_epi32(mxfp4_codes8(x[2], md, absmask), 4));
        const __m256i hi = _mm256_or_si256(mxfp4_codes8(x[1], md, absmask), _mm256_slli_epi32(mxfp4_codes8(x[3], md, absmask), 4));
        const __m128i l16 = _mm_packs_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1));
        const __m128i h16 = _mm_packs_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1));
        b[i].e = e;
        _mm_storeu_si128((__m128i *)b[i].qs, _mm_packus_epi16(l16, h16));
    }
}

void x86_install_mxfp4_avx2(tv_type_traits *t, bool vnni256) {
    t[TV_TYPE_MXFP4].from_float = from_float_mxfp4;
    t[TV_TYPE_MXFP4].vec_dot = vec_dot_mxfp4;
    t[TV_TYPE_MXFP4].gemm = vnni256 ? gemm_mxfp4_vnni : gemm_mxfp4;
}
