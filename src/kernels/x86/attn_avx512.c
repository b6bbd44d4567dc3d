// attn_avx512.c — AVX-512 (F/DQ) + F16C twins of the attention chunk kernel and the elementwise
// ops of attention.c. Head dims that are not a multiple of 16 go to the AVX2 kernel.
//
// exp: x clamped to [-104, 88.7], n = round(x log2 e), r = x - n ln2 (two-part ln2), e^r by its
// Taylor polynomial to degree 7 (|r| <= 0.347: truncation < 6e-9), scaled by 2^n with scalef
// (which flushes to 0 below the denormals): a few ulps (~3e-7 relative) above e^-87; test_attention
// measures silu(g)*u through it over g in [-20, 20] against double (worst 1.6e-7, budget 2e-6).
// Every lane's result depends only on that lane's inputs (tails are masked, never scalar), so the
// ops are bit-identical however rows are split across threads.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/attn_impl.h"

static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail16(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

// Horizontal sums of 16 vectors in one: lane 4L+i of the result is the sum of a[L + (0, 8, 4, 12)[i]].
// Each output lane depends only on its own input vector (a fixed tree of 15 adds), never on the
// other slots, so a key's score has the same bits whatever keys share its group.
static const int KEY_OF_SLOT[16] = {0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15};
static const int SLOT_OF_KEY[16] = {0, 8, 4, 12, 1, 9, 5, 13, 2, 10, 6, 14, 3, 11, 7, 15};   // inverse
static inline __attribute__((always_inline)) __m512 tree16(const __m512 *a) {
    __m512 c[8], d[4], e[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)   // (a, b) -> 8 partials of a | 8 partials of b
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)   // 128-bit lane L: 4 partials of slot 4i+L
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
#pragma GCC unroll 8
    for (int i = 0; i < 2; i++)   // lane L: slot 8i+L at 0 and 2, slot 8i+4+L at 1 and 3
        e[i] = _mm512_add_ps(_mm512_unpacklo_ps(d[2 * i], d[2 * i + 1]), _mm512_unpackhi_ps(d[2 * i], d[2 * i + 1]));
    return _mm512_add_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
}

// Next block's K and V rows of this KV head into L1 while this one is computed (the blocks of a
// sequence are scattered in the pool, so the hardware prefetcher sees short runs only).
static inline void prefetch_block(const tv_attn_geom *g, const void *k_pool, const void *v_pool, int32_t blk, int kvh) {
    const size_t esz = g->kv_is_f32 ? 4 : 2, off = tv_attn_row(g, blk, kvh, 0) * esz;
    const size_t n = (size_t)g->block_size * g->head_dim * esz;
    for (size_t i = 0; i < n; i += 64) {
        _mm_prefetch((const char *)k_pool + off + i, _MM_HINT_T0);
        _mm_prefetch((const char *)v_pool + off + i, _MM_HINT_T0);
    }
}

// rows (n, hd) of f16 -> f32
static inline void cvt_rows(const tv_f16 *src, float *dst, size_t cnt) {
    for (size_t i = 0; i < cnt; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
}

// Scores of one head for keys 0..nv of the block (rows kf, stride hd), 16 keys per tree: slot u
// holds key j + KEY_OF_SLOT[u] (zero past nv), so that tree16 returns them in key order.
static inline __attribute__((always_inline)) void scores1(const float *qv, const float *kf, int nv, __m512 vscale,
                                                          float *s, const int NV) {
    const int hd = 16 * NV;
    __m512 qr[16];   // NV <= 16; constant after inlining, so these live in registers
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) qr[v] = _mm512_loadu_ps(qv + 16 * v);
    for (int j = 0; j < nv; j += 16) {
        __m512 a[16];
#pragma GCC unroll 16
        for (int u = 0; u < 16; u++) {
            a[u] = _mm512_setzero_ps();
            if (j + KEY_OF_SLOT[u] >= nv) continue;
            const float *kr = kf + (size_t)(j + KEY_OF_SLOT[u]) * hd;
            a[u] = _mm512_mul_ps(qr[0], _mm512_loadu_ps(kr));
#pragma GCC unroll 16
            for (int v = 1; v < NV; v++) a[u] = _mm512_fmadd_ps(qr[v], _mm512_loadu_ps(kr + 16 * v), a[u]);
        }
        _mm512_storeu_ps(s + j, _mm512_mul_ps(tree16(a), vscale));
    }
}

// Scores of two heads (q0 -> s0, q1 -> s1), 8 keys per tree: lanes 0..7 are head 0's keys j..j+7,
// lanes 8..15 head 1's. Each K vector is loaded once for both heads. Per lane the arithmetic is
// that of scores1, so a score has the same bits on either path.
static inline __attribute__((always_inline)) void scores2(const float *q0, const float *q1, const float *kf, int nv,
                                                          __m512 vscale, float *s0, float *s1, const int NV) {
    const int hd = 16 * NV;
    __m512 qa[4], qb[4];   // NV <= 4
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        qa[v] = _mm512_loadu_ps(q0 + 16 * v);
        qb[v] = _mm512_loadu_ps(q1 + 16 * v);
    }
    for (int j = 0; j < nv; j += 8) {
        __m512 a[16];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const int ua = SLOT_OF_KEY[i], ub = SLOT_OF_KEY[8 + i];
            a[ua] = a[ub] = _mm512_setzero_ps();
            if (j + i >= nv) continue;
            const float *kr = kf + (size_t)(j + i) * hd;
            __m512 k = _mm512_loadu_ps(kr);
            a[ua] = _mm512_mul_ps(qa[0], k);
            a[ub] = _mm512_mul_ps(qb[0], k);
#pragma GCC unroll 4
            for (int v = 1; v < NV; v++) {
                k = _mm512_loadu_ps(kr + 16 * v);
                a[ua] = _mm512_fmadd_ps(qa[v], k, a[ua]);
                a[ub] = _mm512_fmadd_ps(qb[v], k, a[ub]);
            }
        }
        const __m512 t = _mm512_mul_ps(tree16(a), vscale);
        _mm256_storeu_ps(s0 + j, _mm512_castps512_ps256(t));
        _mm256_storeu_ps(s1 + j, _mm512_extractf32x8_ps(t, 1));
    }
}

// Online-softmax step of one head over a block: p = exp(s - new max) written over s[0..nv), l and
// m updated. Returns the rescale of the old state: 0 on the first block (m = -inf), exactly 1 when
// the max held (the P·V passes then skip the multiply: x * 1 == x, so no bit changes).
static inline float block_softmax(float *s, int nv, float *m, float *l) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < nv; j += 16) vmax = _mm512_mask_max_ps(vmax, tail16(nv - j), vmax, _mm512_loadu_ps(s + j));
    const float bm = _mm512_reduce_max_ps(vmax);
    const float nm = bm > *m ? bm : *m;
    const float corr = nm == *m ? 1.0f : expf(*m - nm);
    const __m512 vnm = _mm512_set1_ps(nm);
    __m512 vsum = _mm512_setzero_ps();
    for (int j = 0; j < nv; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(tail16(nv - j), exp512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vnm)));
        _mm512_storeu_ps(s + j, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    *l = *l * corr + _mm512_reduce_add_ps(vsum);
    *m = nm;
    return corr;
}

// acc (hd) = acc * corr + sum_j p[j] * v_j. For NV <= 8 even and odd keys go to two accumulator
// sets (half the FMA latency chain) summed at the end; the order depends on nv alone.
static inline __attribute__((always_inline)) void pv1(float *ac, const float *p, int nv, const float *vf, float corr,
                                                      const int NV) {
    const bool same = corr == 1.0f;
    const int hd = 16 * NV;
    __m512 ar[16], br[16];
    const __m512 vc = _mm512_set1_ps(corr);
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) {
        ar[v] = same ? _mm512_loadu_ps(ac + 16 * v) : _mm512_mul_ps(_mm512_loadu_ps(ac + 16 * v), vc);
        br[v] = _mm512_setzero_ps();
    }
    int j = 0;
    if (NV <= 8)
        for (; j + 1 < nv; j += 2) {
            const __m512 p0 = _mm512_set1_ps(p[j]), p1 = _mm512_set1_ps(p[j + 1]);
            const float *v0 = vf + (size_t)j * hd, *v1 = v0 + hd;
#pragma GCC unroll 16
            for (int v = 0; v < NV; v++) {
                ar[v] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * v), ar[v]);
                br[v] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + 16 * v), br[v]);
            }
        }
    for (; j < nv; j++) {
        const __m512 pj = _mm512_set1_ps(p[j]);
        const float *vr = vf + (size_t)j * hd;
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) ar[v] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vr + 16 * v), ar[v]);
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(ac + 16 * v, NV <= 8 ? _mm512_add_ps(ar[v], br[v]) : ar[v]);
}

// pv1 for two heads sharing each V vector load (NV <= 4); per head the arithmetic is pv1's.
static inline __attribute__((always_inline)) void pv2(float *ac0, float *ac1, const float *p0, const float *p1, int nv,
                                                      const float *vf, float c0, float c1, const int NV) {
    const bool same0 = c0 == 1.0f, same1 = c1 == 1.0f;
    const int hd = 16 * NV;
    __m512 a0[4], b0[4], a1[4], b1[4];
    const __m512 vc0 = _mm512_set1_ps(c0), vc1 = _mm512_set1_ps(c1);
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        a0[v] = same0 ? _mm512_loadu_ps(ac0 + 16 * v) : _mm512_mul_ps(_mm512_loadu_ps(ac0 + 16 * v), vc0);
        a1[v] = same1 ? _mm512_loadu_ps(ac1 + 16 * v) : _mm512_mul_ps(_mm512_loadu_ps(ac1 + 16 * v), vc1);
        b0[v] = b1[v] = _mm512_setzero_ps();
    }
    int j = 0;
    for (; j + 1 < nv; j += 2) {
        const __m512 p0e = _mm512_set1_ps(p0[j]), p0o = _mm512_set1_ps(p0[j + 1]);
        const __m512 p1e = _mm512_set1_ps(p1[j]), p1o = _mm512_set1_ps(p1[j + 1]);
        const float *ve = vf + (size_t)j * hd, *vo = ve + hd;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __m512 xe = _mm512_loadu_ps(ve + 16 * v), xo = _mm512_loadu_ps(vo + 16 * v);
            a0[v] = _mm512_fmadd_ps(p0e, xe, a0[v]);
            b0[v] = _mm512_fmadd_ps(p0o, xo, b0[v]);
            a1[v] = _mm512_fmadd_ps(p1e, xe, a1[v]);
            b1[v] = _mm512_fmadd_ps(p1o, xo, b1[v]);
        }
    }
    for (; j < nv; j++) {
        const __m512 pa = _mm512_set1_ps(p0[j]), pb = _mm512_set1_ps(p1[j]);
        const float *vr = vf + (size_t)j * hd;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __m512 x = _mm512_loadu_ps(vr + 16 * v);
            a0[v] = _mm512_fmadd_ps(pa, x, a0[v]);
            a1[v] = _mm512_fmadd_ps(pb, x, a1[v]);
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        _mm512_storeu_ps(ac0 + 16 * v, _mm512_add_ps(a0[v], b0[v]));
        _mm512_storeu_ps(ac1 + 16 * v, _mm512_add_ps(a1[v], b1[v]));
    }
}

// The chunk kernel for head dim hd = 16 * NV (NV constant after inlining: q and acc stay in registers).
static inline __attribute__((always_inline)) void chunk_nv(const tv_attn_geom *g, const void *k_pool,
                                                           const void *v_pool, const int32_t *block_table, int kvh,
                                                           int n_rows, const float *q, const int32_t *pos, int k0,
                                                           int k1, float *m, float *l, float *acc, float *work,
                                                           const int NV) {
    const int hd = 16 * NV, bs = g->block_size, G = g->n_heads / g->n_kv_heads, qd = g->n_heads * hd;
    float *kbuf = work, *vbuf = kbuf + tv_attn_bs4(bs) * hd, *s = vbuf + tv_attn_bs4(bs) * hd;
    const size_t ss = tv_attn_bs16(bs) + 16;   // s: (G, ss) scores of the group's heads
    float *corr = s + (size_t)G * ss;          // (G) rescale of each head's state
    const __m512 vscale = _mm512_set1_ps(g->scale);
    int kend = k0;
    for (int r = 0; r < n_rows; r++) kend = pos[r] + 1 > kend ? pos[r] + 1 : kend;
    if (kend > k1) kend = k1;
    for (int i = 0; i < n_rows * G; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
    }
    memset(acc, 0, (size_t)n_rows * G * hd * sizeof(float));
    for (int b0 = k0; b0 < kend; b0 += bs) {
        const int32_t blk = block_table[b0 / bs];
        const int nb = kend - b0 < bs ? kend - b0 : bs;
        const size_t off = tv_attn_row(g, blk, kvh, 0);
        if (b0 + bs < kend) prefetch_block(g, k_pool, v_pool, block_table[b0 / bs + 1], kvh);
        const float *kf, *vf;
        if (g->kv_is_f32) {
            kf = (const float *)k_pool + off;
            vf = (const float *)v_pool + off;
        } else {   // converted once, shared by the tile's rows and the group's heads
            cvt_rows((const tv_f16 *)k_pool + off, kbuf, (size_t)nb * hd);
            cvt_rows((const tv_f16 *)v_pool + off, vbuf, (size_t)nb * hd);
            kf = kbuf;
            vf = vbuf;
        }
        for (int r = 0; r < n_rows; r++) {
            const int nv = pos[r] + 1 - b0 < nb ? pos[r] + 1 - b0 : nb;
            if (nv <= 0) continue;
            // three passes over the group's heads (scores, softmax, P·V) so that the heads' long
            // dependency chains (tree, max, exp, sum) overlap instead of running back to back
            const float *qr = q + (size_t)r * qd + (size_t)kvh * G * hd;
            const int pairs = NV <= 4 ? G / 2 : 0;   // two heads per K/V vector load (hd <= 64)
            for (int i = 0; i < pairs; i++)
                scores2(qr + (size_t)2 * i * hd, qr + (size_t)(2 * i + 1) * hd, kf, nv, vscale, s + 2 * i * ss,
                        s + (2 * i + 1) * ss, NV);
            for (int gi = 2 * pairs; gi < G; gi++) scores1(qr + (size_t)gi * hd, kf, nv, vscale, s + gi * ss, NV);
            for (int gi = 0; gi < G; gi++) corr[gi] = block_softmax(s + gi * ss, nv, &m[r * G + gi], &l[r * G + gi]);
            float *ar = acc + (size_t)r * G * hd;
            for (int i = 0; i < pairs; i++)
                pv2(ar + (size_t)2 * i * hd, ar + (size_t)(2 * i + 1) * hd, s + 2 * i * ss, s + (2 * i + 1) * ss, nv,
                    vf, corr[2 * i], corr[2 * i + 1], NV);
            for (int gi = 2 * pairs; gi < G; gi++) pv1(ar + (size_t)gi * hd, s + gi * ss, nv, vf, corr[gi], NV);
        }
    }
}

#define CHUNK_ARGS g, k_pool, v_pool, block_table, kvh, n_rows, q, pos, k0, k1, m, l, acc, work

static void attn_chunk_avx512(const tv_attn_geom *g, const void *k_pool, const void *v_pool,
                              const int32_t *block_table, int kvh, int n_rows, const float *q, const int32_t *pos,
                              int k0, int k1, float *m, float *l, float *acc, float *work) {
    switch (g->head_dim) {
    case 64: chunk_nv(CHUNK_ARGS, 4); return;
    case 128: chunk_nv(CHUNK_ARGS, 8); return;
    case 32: chunk_nv(CHUNK_ARGS, 2); return;
    case 16: chunk_nv(CHUNK_ARGS, 1); return;
    case 80: chunk_nv(CHUNK_ARGS, 5); return;
    case 96: chunk_nv(CHUNK_ARGS, 6); return;
    case 256: chunk_nv(CHUNK_ARGS, 16); return;
    default: tv_attn_chunk_avx2(CHUNK_ARGS); return;
    }
}

static void rmsnorm_avx512(float *out, const float *x, const float *w, int n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail16(n - i), x + i);
        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    const double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    const __m512 scale = _mm512_set1_ps((float)(1.0 / sqrt(ss / n + eps)));
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), scale);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
    }
}

static void rope_avx512(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < n_rot; i += 16) {
            const __mmask16 k = tail16(n_rot - i);
            const __m512 x = _mm512_maskz_loadu_ps(k, p + i);
            const __m512 sw = _mm512_permute_ps(x, 0xB1);   // (a, b) -> (b, a)
            const __m512 r = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(k, cs + i),
                                             _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(k, cs + n_rot + i)));
            _mm512_mask_storeu_ps(p + i, k, r);
        }
    }
}

static void swiglu_avx512(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 sg = _mm512_div_ps(x, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_mask_storeu_ps(g + i, k, _mm512_mul_ps(sg, _mm512_maskz_loadu_ps(k, u + i)));
    }
}

static void add_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + i), _mm512_maskz_loadu_ps(k, x + i)));
    }
}

const tv_ops tv_ops_avx512 = {"avx512", attn_chunk_avx512, rmsnorm_avx512, rope_avx512, swiglu_avx512, add_avx512};
