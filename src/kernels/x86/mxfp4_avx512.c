// mxfp4_avx512.c — MXFP4 · Q8_0 dot product and GEMM with AVX-512 BW (the ref's semantics:
// ref/ref_mxfp4.c).
//
// vec_dot: two blocks per 512-bit register: nibbles to table values with one byte shuffle, x takes
// w's sign (a masked subtraction: AVX-512 has no sign_epi8), maddubs + madd give exact int32 sums,
// each 256-bit half is one block's; the float part is the ref's chain, block by block, so the bits
// are ref_vec_dot_mxfp4's.
// GEMM (3 tokens and more; fewer go through vec_dot): 16 weight rows side by side, one zmm lane per
// row, as kern_avx512.c's Q4_0 kernels. A block of 16 rows is transposed once (4x4 dword
// transposes of 16-byte row loads) into 8 vectors of 4 codes per lane, the codes becoming their
// table values + 12 (0..24: the unsigned operand of vpdpbusd, or of vpmaddubsw without VNNI), and
// reused by every token of the pass; sum w x = sum (w + 12) x - 12 sum x, exact in int32. The float
// part per (row, token) and block is the ref's: d = f16(dx) * 2^(e-128), acc = acc + d * isum, a
// multiply and an add (no FMA), so every result has ref_vec_dot_mxfp4's bits whatever the tile.
// f16 scales by F16C (_cvtsh_ss, f16_to_f32's bits for every half): the out-of-line scalar
// f16_to_f32 per (block, token) was ~6% of a gpt-oss-20b prefill (perf, 2 layers, pp512).
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

static inline int32_t hsum_i32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// The 32 weights of block a as int8 (elements 0..15 in the low 128 bits).
static inline __m256i block_values(const tv_block_mxfp4 *a, __m128i table, __m128i m4) {
    const __m128i q = _mm_loadu_si128((const __m128i *)a->qs);
    const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
    const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

static void vec_dot_mxfp4(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_mxfp4 *a = w;
    const tv_block_q8_0 *b = x;
    const __m128i table = _mm_loadu_si128((const __m128i *)kern_mxfp4_values), m4 = _mm_set1_epi8(0x0F);
    const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
    const int64_t nb = n / TV_QK_MXFP4;
    float sum = 0.0f;
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(block_values(&a[i], table, m4)),
                                              block_values(&a[i + 1], table, m4), 1);
        const __m512i xv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b[i].qs)),
                                              _mm256_loadu_si256((const __m256i *)b[i + 1].qs), 1);
        const __m512i xs = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), zero, xv);
        const __m512i p = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(wv), xs), ones);
        const int32_t s0 = hsum_i32_256(_mm512_castsi512_si256(p)), s1 = hsum_i32_256(_mm512_extracti64x4_epi64(p, 1));
        const float d0 = _cvtsh_ss(b[i].d) * kern_e8m0_half(a[i].e);
        const float p0 = d0 * (float)s0;   // products as their own statements: no FMA contraction (clang)
        sum += p0;
        const float d1 = _cvtsh_ss(b[i + 1].d) * kern_e8m0_half(a[i + 1].e);
        const float p1 = d1 * (float)s1;
        sum += p1;
    }
    for (; i < nb; i++) {
        const __m256i wv = block_values(&a[i], table, m4), xv = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        const int32_t isum = hsum_i32_256(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        const float d = _cvtsh_ss(b[i].d) * kern_e8m0_half(a[i].e);
        const float prod = d * (float)isum;   // its own statement: clang would contract d * x + sum into an FMA
        sum += prod;
    }
    *s = sum;
}

// ---- GEMM ----
enum {
    MX_MIN_TOK = 3,   // fewer tokens: vec_dot per (row, token) (memory-bound, rows streamed one by one)
    MX_TG = 8,        // tokens per compute group (8 accumulators + 8 weight vectors in registers)
    MX_KB = 8,        // blocks per transposed chunk (4.6 KiB, stays in L1 while every token group runs)
    MX_TP = 256,      // tokens per pass
    MX_SPAN = 2048,   // (block, token) activation entries per span (64 KiB of quants)
    MX_PF = 32,       // packed weights: blocks prefetched ahead of the one loaded (8 KiB of quants)
};
// A block of 16 rows: q[k] lane l = 4 codes (value + 12) of lane l's row, dword k (elements 4k..4k+3
// for k < 4, 16 + 4(k-4).. for k >= 4); d = the rows' scales 2^(e-128) as f32.
typedef struct mx16_blk { __m512i q[8]; __m512 d; } mx16_blk;

INLINE void mx16_tr4(__m512i z0, __m512i z1, __m512i z2, __m512i z3, __m512i *o) {
    const __m512i a0 = _mm512_unpacklo_epi32(z0, z1), a1 = _mm512_unpackhi_epi32(z0, z1);
    const __m512i a2 = _mm512_unpacklo_epi32(z2, z3), a3 = _mm512_unpackhi_epi32(z2, z3);
    o[0] = _mm512_unpacklo_epi64(a0, a2);
    o[1] = _mm512_unpackhi_epi64(a0, a2);
    o[2] = _mm512_unpacklo_epi64(a1, a3);
    o[3] = _mm512_unpackhi_epi64(a1, a3);
}
// The 16 code bytes of the rows at p + ro[j], p + ro[j + 4], p + ro[j + 8], p + ro[j + 12] -> 128-bit lanes 0..3
INLINE __m512i mx16_ld4(const uint8_t *p, const size_t *ro, int j) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + ro[j])));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + ro[j + 4])), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + ro[j + 8])), 2);
    return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + ro[j + 12])), 3);
}
// Blocks b0 .. b0+nbk-1 of the 16 rows at w + ro[l] (goff: the same offsets as int32 lanes) into o.
static void mx16_pack(const uint8_t *w, const size_t *ro, __m512i goff, int64_t b0, int nbk, mx16_blk *o) {
    const __m512i tab = _mm512_broadcast_i32x4(
        _mm_add_epi8(_mm_loadu_si128((const __m128i *)kern_mxfp4_values), _mm_set1_epi8(12)));
    const __m512i m4 = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi32(2);
    for (int i = 0; i < nbk; i++) {
        const uint8_t *p = w + (size_t)(b0 + i) * sizeof(tv_block_mxfp4);
        __m512i t[4];
        mx16_tr4(mx16_ld4(p + 1, ro, 0), mx16_ld4(p + 1, ro, 1), mx16_ld4(p + 1, ro, 2), mx16_ld4(p + 1, ro, 3), t);
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
            o[i].q[k] = _mm512_shuffle_epi8(tab, _mm512_and_si512(t[k], m4));
            o[i].q[k + 4] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(t[k], 4), m4));
        }
        // kern_e8m0_half per lane: e < 2 ? 0x00200000 << e : (e - 1) << 23 (the low byte of 4 read at e)
        const __m512i e = _mm512_and_si512(_mm512_i32gather_epi32(goff, p, 1), _mm512_set1_epi32(0xFF));
        const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
        const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
        o[i].d = _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(e, two), normal, sub));
    }
}

// The same from packed weights (ref_repack_mxfp4's layout; gq: the group's quants, ge: its exponents):
// the dwords already lie one per row lane, the exponents are 16 bytes a block. Decode streams them
// from DRAM while the table lookups and dot products keep the core busy, and the core did one and
// then the other: each block prefetches the one MX_PF ahead into L2 (prefetcht2; past the group's
// end that is its exponents and the next group). One thread, 600 MB of 2880-wide MXFP4 from DRAM,
// GB/s: 1 token 9.3-11 -> 11.5-14.3, 4 tokens 7.5-8.9 -> 9.1-10.1, 8 tokens 4.7-5.4 -> 6.5-7.0
// (16 blocks ahead: about the same; 48: better at 1 token, worse at 4).
INLINE void mx16_load_blk(const uint8_t *gq, const uint8_t *ge, int64_t b, mx16_blk *o) {
    const __m512i tab = _mm512_broadcast_i32x4(
        _mm_add_epi8(_mm_loadu_si128((const __m128i *)kern_mxfp4_values), _mm_set1_epi8(12)));
    const __m512i m4 = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi32(2);
    const uint8_t *p = gq + (size_t)b * 4 * 64;
    TV_TILE_UNROLL for (int k = 0; k < 4; k++) __builtin_prefetch(p + MX_PF * 4 * 64 + 64 * k, 0, 1);
    if ((b & 3) == 0) __builtin_prefetch(ge + (size_t)(b + MX_PF) * 16, 0, 1);   // 4 blocks a line
    TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
        const __m512i t = _mm512_loadu_si512(p + 64 * k);
        o->q[k] = _mm512_shuffle_epi8(tab, _mm512_and_si512(t, m4));
        o->q[k + 4] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(t, 4), m4));
    }
    const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ge + (size_t)b * 16)));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    o->d = _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(e, two), normal, sub));
}
static void mx16_load(const uint8_t *gq, const uint8_t *ge, int64_t b0, int nbk, mx16_blk *o) {
    for (int i = 0; i < nbk; i++) mx16_load_blk(gq, ge, b0 + i, &o[i]);
}

// s + the 16 lanes of codes w · (4 signed bytes at p, broadcast), exact int32. VNNI: GCC does not
// fold the broadcast load into vpdpbusd's m32bcst operand, so the instruction is spelled out.
INLINE __m512i mx16_dot(__m512i s, __m512i w, const int8_t *p, const bool vnni) {
    if (vnni) {
        __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(w), "m"(*(const int32_t(*)[1])(const void *)p));
        return s;
    }
    int32_t xw;
    memcpy(&xw, p, 4);
    const __m512i pr = _mm512_maddubs_epi16(w, _mm512_set1_epi32(xw));   // |pair| <= 2 * 24 * 128: no saturation
    return _mm512_add_epi32(s, _mm512_madd_epi16(pr, _mm512_set1_epi16(1)));
}

// One (block, token) term of the chain: (w->d * dx) * (float)(sum of the codes · xq + cr), the ref's
// multiply, multiply (then the caller's add), no FMA.
INLINE __m512 mx16_term(const mx16_blk *w, const int8_t *xq, float dx, int32_t cr, const bool vnni) {
    __m512i s = _mm512_set1_epi32(cr), s2 = _mm512_setzero_si512();
    TV_TILE_UNROLL for (int k = 0; k < 8; k += 2) {   // two chains: an exact sum either way
        s = mx16_dot(s, w->q[k], xq + 4 * k, vnni);
        s2 = mx16_dot(s2, w->q[k + 1], xq + 4 * k + 4, vnni);
    }
    const __m512 d = _mm512_mul_ps(w->d, _mm512_set1_ps(dx));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_add_epi32(s, s2)));
}

// T tokens over nbk transposed blocks. The activations of (block i, token t): quants at
// xq + i * qb + t * qt, f32 scale dx[i * sb + t * st], sum of the quants sx[i * sb + t * st] (the
// span copy of mx_aux, or packed activation rows read in place); y: (T, ys) at the group's first row
// holds the running sums of the lanes in m (read unless first).
INLINE void mx16_compute(const mx16_blk *wb, int nbk, const int8_t *xq, size_t qb, size_t qt, const float *dx,
                         const int32_t *sx, int64_t sb, int64_t st, float *y, int64_t ys, __mmask16 m, bool first,
                         const int T, const bool vnni) {
    __m512 acc[MX_TG];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + t * ys);
    for (int i = 0; i < nbk; i++)
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const int64_t e = i * sb + t * st;
            acc[t] = _mm512_add_ps(acc[t], mx16_term(&wb[i], xq + (size_t)i * qb + (size_t)t * qt, dx[e], -12 * sx[e], vnni));
        }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, m, acc[t]);
}
typedef void (*mx16_fn)(const mx16_blk *wb, int nbk, const int8_t *xq, size_t qb, size_t qt, const float *dx,
                        const int32_t *sx, int64_t sb, int64_t st, float *y, int64_t ys, __mmask16 m, bool first);
#define MX16_FN(V, T)                                                                                           \
    static void mx16_compute_##V##_##T(const mx16_blk *wb, int nbk, const int8_t *xq, size_t qb, size_t qt,       \
                                       const float *dx, const int32_t *sx, int64_t sb, int64_t st, float *y,      \
                                       int64_t ys, __mmask16 m, bool first) {                                     \
        mx16_compute(wb, nbk, xq, qb, qt, dx, sx, sb, st, y, ys, m, first, T, V);                                 \
    }
#define MX16_SET(V) MX16_FN(V, 1) MX16_FN(V, 2) MX16_FN(V, 3) MX16_FN(V, 4) MX16_FN(V, 5) MX16_FN(V, 6) \
    MX16_FN(V, 7) MX16_FN(V, 8)
MX16_SET(0) MX16_SET(1)
// The [vnni][T] table of NAME_V_T (T = 1..MX_TG)
#define MX16_ROW(NAME, V) { 0, NAME##_##V##_1, NAME##_##V##_2, NAME##_##V##_3, NAME##_##V##_4, NAME##_##V##_5, \
                            NAME##_##V##_6, NAME##_##V##_7, NAME##_##V##_8 }
#define MX16_TABLE(NAME) { MX16_ROW(NAME, 0), MX16_ROW(NAME, 1) }
static const mx16_fn mx16_k[2][MX_TG + 1] = MX16_TABLE(mx16_compute);   // [vnni][T]

// Packed weights, a pass of at most MX_TG tokens (decode): each block is decoded into registers
// and used by every token at once, instead of mx16_load's trip through a chunk in memory (9 stores
// and 9 reloads per block, which bounded one thread at ~24 GB/s of cache-resident weights). The
// same block decode and chain (mx16_load_blk, mx16_term), so the same bits. gq / ge: the group's
// quants / exponents, blocks [0, nbk); the activations and y as mx16_compute (first: the whole row).
INLINE void mx16_fused(const uint8_t *gq, const uint8_t *ge, int nbk, const int8_t *xq, size_t qb, size_t qt,
                       const float *dx, const int32_t *sx, int64_t sb, int64_t st, float *y, int64_t ys, __mmask16 m,
                       const int T, const bool vnni) {
    __m512 acc[MX_TG];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < nbk; i++) {
        mx16_blk wb;   // in registers
        mx16_load_blk(gq, ge, i, &wb);
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const int64_t e = i * sb + t * st;
            acc[t] = _mm512_add_ps(acc[t], mx16_term(&wb, xq + (size_t)i * qb + (size_t)t * qt, dx[e], -12 * sx[e], vnni));
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, m, acc[t]);
}
typedef void (*mx16_fused_fn)(const uint8_t *gq, const uint8_t *ge, int nbk, const int8_t *xq, size_t qb, size_t qt,
                              const float *dx, const int32_t *sx, int64_t sb, int64_t st, float *y, int64_t ys,
                              __mmask16 m);
#define MX16_FUSED_FN(V, T)                                                                                      \
    static void mx16_fused_##V##_##T(const uint8_t *gq, const uint8_t *ge, int nbk, const int8_t *xq, size_t qb,  \
                                     size_t qt, const float *dx, const int32_t *sx, int64_t sb, int64_t st,       \
                                     float *y, int64_t ys, __mmask16 m) {                                         \
        mx16_fused(gq, ge, nbk, xq, qb, qt, dx, sx, sb, st, y, ys, m, T, V);                                      \
    }
#define MX16_FUSED_SET(V) MX16_FUSED_FN(V, 1) MX16_FUSED_FN(V, 2) MX16_FUSED_FN(V, 3) MX16_FUSED_FN(V, 4) \
    MX16_FUSED_FN(V, 5) MX16_FUSED_FN(V, 6) MX16_FUSED_FN(V, 7) MX16_FUSED_FN(V, 8)
MX16_FUSED_SET(0) MX16_FUSED_SET(1)
static const mx16_fused_fn mx16_fused_k[2][MX_TG + 1] = MX16_TABLE(mx16_fused);   // [vnni][T]

// Blocks [0, nb) of nt Q8_0 rows at x (xrs apart) -> per (block, token) entry b * nt + t: xa = the 32
// quants, dxa = the scale as f32, sxa = their sum.
static void mx_aux(const uint8_t *x, size_t xrs, int64_t nt, int64_t nb, int8_t *xa, float *dxa, int32_t *sxa) {
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
            sxa[b * nt + t] = _mm_cvtsi128_si32(h) - 32 * 128;
        }
    }
}

// The gemm contract (kernels.h). Tokens in passes of up to MX_TP; per pass, blocks in spans that the
// activation copy holds; per span, each 16-row group (a short last group repeats its last row in the
// lanes it does not store) is transposed MX_KB blocks at a time and every token group runs over the
// chunk. Running sums live in y between chunks.
static void mx16_gemm(const bool vnni, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                      const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK_MXFP4;
    if (nt < MX_MIN_TOK) {
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < nt; t++)
                vec_dot_mxfp4(n, &y[t * ys + r], (const uint8_t *)w + (size_t)r * wrs, (const uint8_t *)x + (size_t)t * xrs);
        return;
    }
    int8_t xa[MX_SPAN * TV_QK8_0] __attribute__((aligned(64)));   // (span blocks, pass tokens, 32)
    float dxa[MX_SPAN];                                             // (span blocks, pass tokens)
    int32_t sxa[MX_SPAN];                                           // (span blocks, pass tokens)
    mx16_blk wb[MX_KB];                                             // a transposed chunk of one row group
    TV_CHECK(nb >= 1 && 15 * wrs <= INT32_MAX);
    for (int64_t t0 = 0; t0 < nt; t0 += MX_TP) {
        const int64_t tp = nt - t0 < MX_TP ? nt - t0 : MX_TP;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * xrs;
        int64_t kb = MX_SPAN / tp;
        if (kb > nb) kb = nb;
        for (int64_t b0 = 0; b0 < nb; b0 += kb) {
            const int nbk = nb - b0 < kb ? (int)(nb - b0) : (int)kb;
            mx_aux(xt + (size_t)b0 * sizeof(tv_block_q8_0), xrs, tp, nbk, xa, dxa, sxa);
            for (int64_t rg = r0; rg < r1; rg += 16) {
                const int R = r1 - rg < 16 ? (int)(r1 - rg) : 16;
                const __mmask16 m = (__mmask16)(0xFFFFu >> (16 - R));
                size_t ro[16];
                int32_t go[16];
                for (int l = 0; l < 16; l++) go[l] = (int32_t)(ro[l] = (size_t)(l < R ? l : R - 1) * wrs);
                const __m512i goff = _mm512_loadu_si512(go);
                const uint8_t *wg = (const uint8_t *)w + (size_t)rg * wrs;
                for (int c0 = 0; c0 < nbk; c0 += MX_KB) {
                    const int nc = nbk - c0 < MX_KB ? nbk - c0 : MX_KB;
                    mx16_pack(wg, ro, goff, b0 + c0, nc, wb);
                    for (int64_t tg = 0; tg < tp; tg += MX_TG) {
                        const int T = tp - tg < MX_TG ? (int)(tp - tg) : MX_TG;
                        const int64_t e = c0 * tp + tg;   // entry of (block c0, token tg)
                        mx16_k[vnni][T](wb, nc, xa + e * TV_QK8_0, (size_t)tp * TV_QK8_0, TV_QK8_0, dxa + e, sxa + e,
                                        tp, 1, y + (t0 + tg) * ys + rg, ys, m, b0 + c0 == 0);
                    }
                }
            }
        }
    }
}

// gemm_packed's contract (w in ref_repack_mxfp4's layout, r0 % 16 == 0, x packed activation rows; any
// nt): the same chain. The packed activation rows already hold what mx_aux copies out of plain ones
// (quants, f32 scales, block sums, per row), so the kernels read them in place, a row's blocks
// xrs apart per token: no per-call copy (copying each call's tokens again for every 64-row chunk of
// an expert was ~20% of a gpt-oss-20b prefill, perf, 1 thread). Tokens in passes of up to MX_TP;
// per pass each 16-row group loads MX_KB blocks at a time and every token group runs over them; a pass
// of at most MX_TG tokens (decode) runs mx16_fused over the group's whole row instead.
static void mx16_gemm_packed(const bool vnni, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs,
                             int64_t nt, const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK_MXFP4;
    TV_CHECK(nb >= 1 && r0 % TV_PACK_ROWS == 0 && xrs % sizeof(float) == 0);
    const int64_t st = (int64_t)(xrs / sizeof(float));   // a token's scales and sums: one row further
    mx16_blk wb[MX_KB];                                   // a loaded chunk of one row group
    for (int64_t t0 = 0; t0 < nt; t0 += MX_TP) {
        const int64_t tp = nt - t0 < MX_TP ? nt - t0 : MX_TP;
        for (int64_t rg = r0; rg < r1; rg += 16) {
            const int R = r1 - rg < 16 ? (int)(r1 - rg) : 16;
            const __mmask16 m = (__mmask16)(0xFFFFu >> (16 - R));
            const uint8_t *wg = (const uint8_t *)w + (size_t)rg * wrs;   // the group's bytes
            if (tp <= MX_TG) {   // one token group (decode): decode and use each block in registers
                const tv_packed_act pa = packed_act_view((const uint8_t *)x + (size_t)t0 * xrs, n);
                mx16_fused_k[vnni][tp](wg, wg + (size_t)nb * 4 * 64, (int)nb, pa.q, TV_QK8_0, xrs, pa.d, pa.s, 1, st,
                                       y + t0 * ys + rg, ys, m);
                continue;
            }
            for (int64_t c0 = 0; c0 < nb; c0 += MX_KB) {
                const int nc = nb - c0 < MX_KB ? (int)(nb - c0) : MX_KB;
                mx16_load(wg, wg + (size_t)nb * 4 * 64, c0, nc, wb);
                for (int64_t tg = 0; tg < tp; tg += MX_TG) {
                    const int T = tp - tg < MX_TG ? (int)(tp - tg) : MX_TG;
                    const tv_packed_act pa = packed_act_view((const uint8_t *)x + (size_t)(t0 + tg) * xrs, n);
                    mx16_k[vnni][T](wb, nc, pa.q + c0 * TV_QK8_0, TV_QK8_0, xrs, pa.d + c0, pa.s + c0, 1, st,
                                    y + (t0 + tg) * ys + rg, ys, m, c0 == 0);
                }
            }
        }
    }
}
static void gemm_mxfp4_vnni(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                            size_t xrs, float *y, int64_t ys) {
    mx16_gemm(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void gemm_mxfp4(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                       size_t xrs, float *y, int64_t ys) {
    mx16_gemm(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void gemm_packed_mxfp4_vnni(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                   const void *x, size_t xrs, float *y, int64_t ys) {
    mx16_gemm_packed(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void gemm_packed_mxfp4(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                              const void *x, size_t xrs, float *y, int64_t ys) {
    mx16_gemm_packed(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}

// ---------------- quantizer: f32 -> MXFP4 (bit-exact with ref_from_float_mxfp4) ----------------
// The ref gives each x the first of the 16 codes with the least fabsf(kv * d - x). A code of the sign
// opposite to x's never beats code 0 strictly (fl(|x| + m d) >= |x|: rounding is monotone), code 8
// (zero) only ties it, and fabsf(-m d - x) = fabsf(m d - |x|) exactly (round-to-nearest is symmetric):
// so the code is the first least fabsf(m d - |x|) over m = 0, 1, 2, 3, 4, 6, 8, 12 (codes 0..7, the
// same float operations in the ref's order), plus 8 for a negative x unless that is code 0. A NaN
// compares false everywhere and gets code 0, as in the ref. Block exponent: kern_mxfp4_e of the
// largest non-NaN |x| (max_ps returns its second operand when either is NaN, as the ref's compare).

// Codes (0..15, one per int32 lane) of 16 values; md[m] = kern_mxfp4_values[m] * d.
static inline __m512i mxfp4_codes16(__m512 x, const __m512 md[8]) {
    const __m512 a = _mm512_abs_ps(x);
    __m512 best = _mm512_abs_ps(_mm512_sub_ps(md[0], a));
    __m512i code = _mm512_setzero_si512();
    for (int m = 1; m < 8; m++) {
        const __m512 e = _mm512_abs_ps(_mm512_sub_ps(md[m], a));
        const __mmask16 lt = _mm512_cmp_ps_mask(e, best, _CMP_LT_OQ);
        best = _mm512_mask_mov_ps(best, lt, e);
        code = _mm512_mask_mov_epi32(code, lt, _mm512_set1_epi32(m));
    }
    const __mmask16 neg = _mm512_cmplt_epi32_mask(_mm512_castps_si512(x), _mm512_setzero_si512()) &
                          _mm512_test_epi32_mask(code, code);
    return _mm512_mask_or_epi32(code, neg, code, _mm512_set1_epi32(8));
}

static void from_float_mxfp4(const float *src, void *dst, int64_t n) {
    tv_block_mxfp4 *b = dst;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const __m512 x0 = _mm512_loadu_ps(src + i * TV_QK_MXFP4), x1 = _mm512_loadu_ps(src + i * TV_QK_MXFP4 + 16);
        const __m512 am = _mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps()));
        const uint8_t e = kern_mxfp4_e(_mm512_reduce_max_ps(am));   // am holds no NaN
        const float d = kern_e8m0_half(e);
        __m512 md[8];
        for (int m = 0; m < 8; m++) md[m] = _mm512_set1_ps((float)kern_mxfp4_values[m] * d);
        const __m512i q = _mm512_or_si512(mxfp4_codes16(x0, md), _mm512_slli_epi32(mxfp4_codes16(x1, md), 4));
        b[i].e = e;
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtepi32_epi8(q));
    }
}

void x86_install_mxfp4_avx512(tv_type_traits *t, bool vnni512) {
    t[TV_TYPE_MXFP4].from_float = from_float_mxfp4;
    t[TV_TYPE_MXFP4].vec_dot = vec_dot_mxfp4;
    t[TV_TYPE_MXFP4].gemm = vnni512 ? gemm_mxfp4_vnni : gemm_mxfp4;
    // packed at load: the per-pass 16-row transpose (21% of a gpt-oss-20b prefill) is gone; the
    // plain GEMM (and vec_dot under 3 tokens) runs the same chain, so the bits do not change
    t[TV_TYPE_MXFP4].gemm_packed = vnni512 ? gemm_packed_mxfp4_vnni : gemm_packed_mxfp4;
    t[TV_TYPE_MXFP4].pack_pays = t[TV_TYPE_MXFP4].plain_matches_packed = true;
}
