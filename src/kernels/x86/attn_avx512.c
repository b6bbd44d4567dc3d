// attn_avx512.c — AVX-512 (F/DQ/BW/VL) + F16C twins of the attention chunk kernel and the
// elementwise ops of attention.c.
//
// Chunk kernel layout: one (query row, head) pair per lane, 16 pairs to a lane group, so the scores
// of 16 keys (one fma chain over the head dim per key), the online-softmax step and P·V (one fma
// chain over the keys per head dim) are all vertical: no horizontal reductions, and the K/V step is
// converted to f32 once for every group of the tile. A group of at most 8 pairs (decode) takes the
// narrow route (lanes = keys, then lanes = head dims) with the same per-pair arithmetic, so a row
// has the same bits alone or in any tile: step_group states that arithmetic.
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


// tanh(t): |t| < 0.625 by Cephes' odd polynomial (no cancellation near 0), else
// sign(t) (1 - 2 / (e^2|t| + 1)); a few ulps either way.
static inline __m512 tanh512(__m512 t) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 at = _mm512_abs_ps(t), z = _mm512_mul_ps(t, t);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), t, t);
    const __m512 e = exp512(_mm512_add_ps(at, at));
    const __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    const __m512 large = _mm512_or_ps(big, _mm512_and_ps(_mm512_set1_ps(-0.0f), t));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(at, _mm512_set1_ps(0.625f), _CMP_GE_OQ), small, large);
}

// Score of a lane: s * scale (vscale), then capped to cap * tanh(s * scale / cap) (vscale holds
// scale / cap then) when the layer soft-caps its logits. The same instructions on every route.
static inline __m512 score_finish(__m512 s, __m512 vscale, __m512 vcap, bool capped) {
    s = _mm512_mul_ps(s, vscale);
    return capped ? _mm512_mul_ps(vcap, tanh512(s)) : s;
}

static inline __mmask16 tail16(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

// Next block's K and V rows of this KV head into L1 while this one is computed (the blocks of a
// sequence are scattered in the pool, so the hardware prefetcher sees short runs only).
static inline void prefetch_block(const tv_attn_geom *g, const void *k_pool, const void *v_pool, int32_t blk, int kvh) {
    const size_t esz = g->kv_is_f32 ? 4 : 2, off = attn_row(g, blk, kvh, 0) * esz;
    const size_t n = (size_t)g->block_size * g->head_dim * esz;
    for (size_t i = 0; i < n; i += 64) {
        _mm_prefetch((const char *)k_pool + off + i, _MM_HINT_T0);
        _mm_prefetch((const char *)v_pool + off + i, _MM_HINT_T0);
    }
}

// ns rows (ns, hd) of a pool starting at element off -> f32 rows in buf (16, hd), rows ns..15 zero
// (never NaN garbage). An f32 pool's full steps are read in place.
static inline const float *load_step(const tv_attn_geom *g, const void *pool, size_t off, int ns, int hd, float *buf) {
    const size_t cnt = (size_t)ns * hd;
    if (g->kv_is_f32) {
        if (ns == TV_ATTN_LANES) return (const float *)pool + off;
        memcpy(buf, (const float *)pool + off, cnt * sizeof(float));
    } else {
        const tv_f16 *src = (const tv_f16 *)pool + off;
        if (cnt % 64 == 0) {   // whole vectors (the usual full step), four at a time
            for (size_t i = 0; i < cnt; i += 64)
#pragma GCC unroll 4
                for (size_t u = i; u < i + 64; u += 16)
                    _mm512_storeu_ps(buf + u, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + u))));
            if (ns == TV_ATTN_LANES) return buf;
        } else
        for (size_t i = 0; i < cnt; i += 16) {
            const __mmask16 k = tail16((int64_t)(cnt - i));
            _mm512_mask_storeu_ps(buf + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src + i)));
        }
    }
    memset(buf + cnt, 0, (size_t)(TV_ATTN_LANES - ns) * hd * sizeof(float));
    return buf;
}

// One step (16 keys kf/vf, rows (16, hd)) of one lane group: 16 (row, head) pairs, lane c with
// query column qt[d*16 + c] (hd, 16), state gm/gl (16) and accumulator at[d*16 + c] (hd, 16), seeing
// keys lov[c] <= j < nvv[c] (a sliding window may start inside the step). Per lane, in this order
// (the arithmetic contract of the kernel):
//   s_j  = (q_0 k_j0 + q_1 k_j1 + ... ) * scale   (one fma chain over d, from the product at d = 0),
//          then cap * tanh(s_j) with a soft-capping layer (score_finish)
//   nm   = max(m, max_{seen} s_j) ;  corr = nm == m ? 1 : exp(m - nm) ;  p_j = exp(s_j - nm), 0 unseen
//   l    = fma(l, corr, ((p0+p8)+(p4+p12)) + ((p2+p10)+(p6+p14)) + (((p1+p9)+(p5+p13)) + ((p3+p11)+(p7+p15)))
//   acc_d = fma chain over the seen j of p_j v_jd, from acc_d * corr (the multiply skipped when every corr is 1)
// A lane's arithmetic never involves another lane, and keys it does not see leave it untouched (masked),
// so its bits depend on its own row alone, whatever rows share the group. full: every lane sees all 16 keys.
#define PVU 8   // P·V: head dims (independent fma chains) per pass over the 16 keys
static inline __attribute__((always_inline)) void step_group(const float *qt, float *at, float *gm, float *gl,
                                                             const float *kf, const float *vf, __m512 vscale,
                                                             __m512 vcap, bool capped, __m512i lov, __m512i nvv,
                                                             const int hd, const bool full) {
    __m512 s[16];
    __m512 qv = _mm512_loadu_ps(qt);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) s[j] = _mm512_mul_ps(_mm512_set1_ps(kf[(size_t)j * hd]), qv);
    for (int d = 1; d < hd; d++) {
        qv = _mm512_loadu_ps(qt + (size_t)d * TV_ATTN_LANES);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) s[j] = _mm512_fmadd_ps(_mm512_set1_ps(kf[(size_t)j * hd + d]), qv, s[j]);
    }
    const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f);
    __mmask16 mk[16];
    __m512 mx[8];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) {
        s[j] = score_finish(s[j], vscale, vcap, capped);
        if (!full) {
            mk[j] = _mm512_cmpgt_epi32_mask(nvv, _mm512_set1_epi32(j)) & _mm512_cmple_epi32_mask(lov, _mm512_set1_epi32(j));
            s[j] = _mm512_mask_mov_ps(ninf, mk[j], s[j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) mx[i] = _mm512_max_ps(s[i], s[i + 8]);   // max is exact: any order
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) mx[i] = _mm512_max_ps(mx[i], mx[i + 4]);
    const __m512 m = _mm512_loadu_ps(gm);
    const __m512 nm = _mm512_max_ps(m, _mm512_max_ps(_mm512_max_ps(mx[0], mx[2]), _mm512_max_ps(mx[1], mx[3])));
    // m == nm == -inf (a lane that has seen no key yet and sees none here) keeps corr = 1, not NaN
    const __m512 corr = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(nm, m, _CMP_EQ_OQ), exp512(_mm512_sub_ps(m, nm)), one);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) {
        const __m512 e = exp512(_mm512_sub_ps(s[j], nm));
        s[j] = full ? e : _mm512_maskz_mov_ps(mk[j], e);
    }
    __m512 t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) t[i] = _mm512_add_ps(s[i], s[i + 8]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) t[i] = _mm512_add_ps(t[i], t[i + 4]);
    const __m512 w = _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3]));
    _mm512_storeu_ps(gl, _mm512_fmadd_ps(_mm512_loadu_ps(gl), corr, w));
    _mm512_storeu_ps(gm, nm);
    const bool rescale = _mm512_cmp_ps_mask(corr, one, _CMP_NEQ_UQ) != 0;   // x * 1 == x: skip
    int d = 0;
    for (; d + PVU <= hd; d += PVU) {   // PVU independent fma chains
        __m512 a[PVU];
#pragma GCC unroll 8
        for (int u = 0; u < PVU; u++) {
            a[u] = _mm512_loadu_ps(at + (size_t)(d + u) * TV_ATTN_LANES);
            if (rescale) a[u] = _mm512_mul_ps(a[u], corr);
        }
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
#pragma GCC unroll 8
            for (int u = 0; u < PVU; u++) {
                const __m512 v = _mm512_set1_ps(vf[(size_t)j * hd + d + u]);
                a[u] = full ? _mm512_fmadd_ps(s[j], v, a[u]) : _mm512_mask3_fmadd_ps(s[j], v, a[u], mk[j]);
            }
#pragma GCC unroll 8
        for (int u = 0; u < PVU; u++) _mm512_storeu_ps(at + (size_t)(d + u) * TV_ATTN_LANES, a[u]);
    }
    for (; d < hd; d++) {
        __m512 a = _mm512_loadu_ps(at + (size_t)d * TV_ATTN_LANES);
        if (rescale) a = _mm512_mul_ps(a, corr);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const __m512 v = _mm512_set1_ps(vf[(size_t)j * hd + d]);
            a = full ? _mm512_fmadd_ps(s[j], v, a) : _mm512_mask3_fmadd_ps(s[j], v, a, mk[j]);
        }
        _mm512_storeu_ps(at + (size_t)d * TV_ATTN_LANES, a);
    }
}

// out[k][i] = in[i][k] for a 16x16 tile given by row pointers (16 floats each).
static inline __attribute__((always_inline)) void transpose16(const float *const *in, float *const *out) {
    __m512 a[16], b[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {   // per 128-bit lane L: rows i, i+1 at columns 4L, 4L+1 | 4L+2, 4L+3
        const __m512 r0 = _mm512_loadu_ps(in[i]), r1 = _mm512_loadu_ps(in[i + 1]);
        a[i] = _mm512_unpacklo_ps(r0, r1);
        a[i + 1] = _mm512_unpackhi_ps(r0, r1);
    }
#pragma GCC unroll 4
    for (int g4 = 0; g4 < 16; g4 += 4) {   // b[g4 + e], lane L: rows g4..g4+3 at column 4L + e
        b[g4 + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a[g4]), _mm512_castps_pd(a[g4 + 2])));
        b[g4 + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a[g4]), _mm512_castps_pd(a[g4 + 2])));
        b[g4 + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a[g4 + 1]), _mm512_castps_pd(a[g4 + 3])));
        b[g4 + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a[g4 + 1]), _mm512_castps_pd(a[g4 + 3])));
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        const __m512 c0 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x88), c1 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xDD);
        const __m512 c2 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x88), c3 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xDD);
        _mm512_storeu_ps(out[e], _mm512_shuffle_f32x4(c0, c2, 0x88));        // column e
        _mm512_storeu_ps(out[4 + e], _mm512_shuffle_f32x4(c1, c3, 0x88));    // 4 + e
        _mm512_storeu_ps(out[8 + e], _mm512_shuffle_f32x4(c0, c2, 0xDD));    // 8 + e
        _mm512_storeu_ps(out[12 + e], _mm512_shuffle_f32x4(c1, c3, 0xDD));   // 12 + e
    }
}

// kt (hd, 16) = the 16 key rows kf (16, hd) transposed (hd % 16 == 0).
static inline __attribute__((always_inline)) void transpose_keys(const float *kf, float *kt, const int hd) {
    for (int d0 = 0; d0 < hd; d0 += 16) {
        const float *in[16];
        float *out[16];
        for (int i = 0; i < 16; i++) {
            in[i] = kf + (size_t)i * hd + d0;
            out[i] = kt + (size_t)(d0 + i) * 16;
        }
        transpose16(in, out);
    }
}

// The sum tree of step_group over one vector's 16 lanes (lane 0 of the result):
// ((p0+p8)+(p4+p12)) + ((p2+p10)+(p6+p14)) + (((p1+p9)+(p5+p13)) + ((p3+p11)+(p7+p15))).
static inline __m128 sum_tree16(__m512 p) {
    const __m512 t = _mm512_add_ps(p, _mm512_shuffle_f32x4(p, p, 0xEE));   // lanes i < 8: p_i + p_i+8
    const __m256 t8 = _mm512_castps512_ps256(t);
    const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));   // i < 4: t_i + t_i+4
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));                                     // i < 2: u_i + u_i+2
    return _mm_add_ss(v, _mm_movehdup_ps(v));
}

// step_group for a group of few lanes (decode), the same arithmetic per lane with the lanes laid
// the other way: scores with lanes = keys (kt: the step's keys transposed), then per pair the
// softmax step over its scores and P·V with lanes = head dims into its own accumulator row
// at[c*hd ...] (hd). narrow_scores runs the score chains of W pairs (lanes >= nr idle) over NS
// steps (kts[i]) side by side: s[i*W + c].
static inline __attribute__((always_inline)) void narrow_scores(const float *qt, const float *const *kts, __m512 *s,
                                                                const int hd, const int W, const int NS) {
#pragma GCC unroll 4
    for (int i = 0; i < NS; i++) {
        const __m512 kv = _mm512_loadu_ps(kts[i]);
#pragma GCC unroll 8
        for (int c = 0; c < W; c++) s[i * W + c] = _mm512_mul_ps(kv, _mm512_set1_ps(qt[c]));
    }
    for (int d = 1; d < hd; d++)
#pragma GCC unroll 4
        for (int i = 0; i < NS; i++) {
            const __m512 kv = _mm512_loadu_ps(kts[i] + (size_t)d * 16);
#pragma GCC unroll 8
            for (int c = 0; c < W; c++)
                s[i * W + c] = _mm512_fmadd_ps(kv, _mm512_set1_ps(qt[(size_t)d * TV_ATTN_LANES + c]), s[i * W + c]);
        }
}

// The softmax step and P·V of pair c over its scores sc (lanes = keys), keys lo <= j < n visible (lo < n).
static inline void narrow_update(float *at, float *gm, float *gl, __m512 sc, const float *vf, __m512 vscale,
                                 __m512 vcap, bool capped, int lo, int n, int c, int hd) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f);
    const __mmask16 km = tail16(n) & (__mmask16)~tail16(lo);
    const __m512 x = _mm512_mask_mov_ps(ninf, km, score_finish(sc, vscale, vcap, capped));
    const __m512 m = _mm512_set1_ps(gm[c]), nm = _mm512_max_ps(m, _mm512_set1_ps(_mm512_reduce_max_ps(x)));
    const __m512 corr = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(nm, m, _CMP_EQ_OQ), exp512(_mm512_sub_ps(m, nm)), one);
    const __m512 p = _mm512_maskz_mov_ps(km, exp512(_mm512_sub_ps(x, nm)));
    const __m128 c128 = _mm512_castps512_ps128(corr);
    gl[c] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(gl[c]), c128, sum_tree16(p)));
    gm[c] = _mm_cvtss_f32(_mm512_castps512_ps128(nm));
    float pj[16];
    _mm512_storeu_ps(pj, p);
    const bool rescale = _mm_cvtss_f32(c128) != 1.0f;
    float *ac = at + (size_t)c * hd;
    for (int d0 = 0; d0 < hd; d0 += 64) {   // up to 4 vectors of head dims, one fma chain each
        const int nvec = (hd - d0) / 16 < 4 ? (hd - d0) / 16 : 4;
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            if (u >= nvec) break;
            a[u] = _mm512_loadu_ps(ac + d0 + 16 * u);
            if (rescale) a[u] = _mm512_mul_ps(a[u], corr);
        }
        for (int j = lo; j < n; j++) {
            const __m512 pv = _mm512_set1_ps(pj[j]);
            const float *vr = vf + (size_t)j * hd + d0;
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                if (u >= nvec) break;
                a[u] = _mm512_fmadd_ps(pv, _mm512_loadu_ps(vr + 16 * u), a[u]);
            }
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            if (u >= nvec) break;
            _mm512_storeu_ps(ac + d0 + 16 * u, a[u]);
        }
    }
}

#define NARROW_STEPS TV_ATTN_NARROW_STEPS

// One step of a narrow group (pair c sees keys lo[c] <= j < nv[c]; none: untouched).
static inline __attribute__((always_inline)) void step_narrow(const float *qt, float *at, float *gm, float *gl,
                                                              const float *kt, const float *vf, __m512 vscale,
                                                              __m512 vcap, bool capped, const int *lo, const int *nv,
                                                              int nr, const int hd, const int W) {
    __m512 s[8];
    narrow_scores(qt, &kt, s, hd, W, 1);
    for (int c = 0; c < nr; c++)
        if (nv[c] > lo[c]) narrow_update(at, gm, gl, s[c], vf, vscale, vcap, capped, lo[c], nv[c], c, hd);
}

// NS steps of a narrow group at once (their score chains overlap: with one pair, a lone chain
// over the head dim would leave the core idle); then their updates in key order, as step_narrow.
static inline __attribute__((always_inline)) void steps_narrow(const float *qt, float *at, float *gm, float *gl,
                                                               const float *const *kts, const float *const *vfs,
                                                               const int *t0s, const int *nss, int nsteps,
                                                               const int32_t *cpos, const int32_t *clo,
                                                               __m512 vscale, __m512 vcap, bool capped, int nr,
                                                               const int hd, const int W, const int NS) {
    __m512 s[8];
    if (nsteps == NS)
        narrow_scores(qt, kts, s, hd, W, NS);
    else   // a short batch at the end: its steps one by one (the same chains)
        for (int i = 0; i < nsteps; i++) narrow_scores(qt, kts + i, s + i * W, hd, W, 1);
    for (int i = 0; i < nsteps; i++)
        for (int c = 0; c < nr; c++) {
            const int n = cpos[c] - t0s[i] + 1 < nss[i] ? cpos[c] - t0s[i] + 1 : nss[i];
            const int lo = clo[c] - t0s[i] > 0 ? clo[c] - t0s[i] : 0;
            if (n > lo) narrow_update(at, gm, gl, s[i * W + c], vfs[i], vscale, vcap, capped, lo, n, c, hd);
        }
}

// The chunk kernel. The (row, head) pairs c = r*G + gi of the tile go through in passes of up to
// TV_ATTN_PASS pairs, 16 to a lane group; each pass walks the key blocks once (a block is split into
// steps of 16 keys from its start), converting each step's K/V rows to f32 once for all its groups.
// HD: the head dim as a constant (0: g->head_dim at run time); the arithmetic is the same either way.
static inline __attribute__((always_inline)) void chunk_lanes(const tv_attn_geom *g, const void *k_pool,
                                                              const void *v_pool, const int32_t *block_table, int kvh,
                                                              int n_rows, const float *q, const int32_t *pos, int k0,
                                                              int k1, float *m, float *l, float *acc, float *work,
                                                              const int HD) {
    const int hd = HD ? HD : g->head_dim, bs = g->block_size, G = g->n_heads / g->n_kv_heads;
    const size_t qd = (size_t)g->n_heads * hd, grp = (size_t)TV_ATTN_LANES * hd;   // grp: floats of a group's column block
    float *kbuf = attn_align64(work), *vbuf = kbuf + grp;
    float *qt = vbuf + grp, *at = qt + (size_t)TV_ATTN_PASS * hd;   // (TV_ATTN_PASS/16 groups, hd, 16) each
    float *kt = at + (size_t)TV_ATTN_PASS * hd;                      // (hd, 16): a narrow group's keys
    float *bkt = kt + grp, *bvf = bkt + NARROW_STEPS * grp;          // a decode batch: NARROW_STEPS x (kt, V)
    const __m512 vscale = _mm512_set1_ps(attn_score_scale(g)), vcap = _mm512_set1_ps(g->softcap);
    const bool capped = g->softcap > 0;
    const int C = n_rows * G;
    float *zrow = vbuf;   // hd zeros: the query of padding lanes (vbuf is free until the keys start)
    for (int c0 = 0; c0 < C; c0 += TV_ATTN_PASS) {
        const int nc = C - c0 < TV_ATTN_PASS ? C - c0 : TV_ATTN_PASS, ngr = (nc + 15) / 16;
        // a last group of at most 8 pairs (decode) goes the narrow way; its accumulator is row-major
        const int n_last = nc - 16 * (ngr - 1);
        const bool narrow = hd % 16 == 0 && n_last <= 8;
        int32_t cpos[TV_ATTN_PASS];   // position of each lane's row; padding lanes see every key
        int32_t clo[TV_ATTN_PASS];    // the first key each lane's row sees (its window's start)
        float cm[TV_ATTN_PASS], cl[TV_ATTN_PASS];
        const float *qrow[TV_ATTN_PASS];   // each lane's query (hd); padding lanes: zeros
        memset(zrow, 0, (size_t)hd * sizeof(float));
        for (int i = 0; i < ngr * 16; i++) {
            cm[i] = -INFINITY;
            cl[i] = 0;
            if (i < nc) {
                const int r = (c0 + i) / G, gi = (c0 + i) % G;
                qrow[i] = q + (size_t)r * qd + (size_t)(kvh * G + gi) * hd;
                cpos[i] = pos[r];
                clo[i] = attn_key_lo(g, pos[r]);
            } else {
                qrow[i] = zrow;
                cpos[i] = INT32_MAX / 2;
                clo[i] = INT32_MIN / 2;
            }
        }
        for (int gr = 0; gr < ngr; gr++) {   // query columns: qt[gr] (hd, 16)
            float *qg = qt + gr * grp;
            for (int d0 = 0; d0 + 16 <= hd; d0 += 16) {
                const float *in[16];
                float *out[16];
                for (int i = 0; i < 16; i++) {
                    in[i] = qrow[16 * gr + i] + d0;
                    out[i] = qg + (size_t)(d0 + i) * TV_ATTN_LANES;
                }
                transpose16(in, out);
            }
            for (int d = hd & ~15; d < hd; d++)
                for (int i = 0; i < 16; i++) qg[(size_t)d * TV_ATTN_LANES + i] = qrow[16 * gr + i][d];
        }
        memset(at, 0, (size_t)ngr * grp * sizeof(float));
        const int r_first = c0 / G;
        int kbeg, kend;
        attn_chunk_range(g, pos + r_first, (c0 + nc - 1) / G + 1 - r_first, k0, k1, &kbeg, &kend);
        if (ngr == 1 && narrow) {   // decode: steps in batches, so that one pair still keeps the core busy
            const int W = n_last == 1 ? 1 : n_last == 2 ? 2 : n_last <= 4 ? 4 : 8, NS = W <= 2 ? 4 : W == 4 ? 2 : 1;
            const int ahead = NS + 1;   // prefetch distance in blocks: past the batch being loaded
            int b0 = kbeg, s0 = 0;
            while (b0 < kend) {
                const float *kts[NARROW_STEPS], *vfs[NARROW_STEPS];
                int t0s[NARROW_STEPS], nss[NARROW_STEPS], nst = 0;
                while (nst < NS && b0 < kend) {
                    const int nb = kend - b0 < bs ? kend - b0 : bs, ns = nb - s0 < 16 ? nb - s0 : 16;
                    const size_t off = attn_row(g, block_table[b0 / bs], kvh, 0) + (size_t)s0 * hd;
                    if (s0 == 0 && b0 + ahead * bs < kend)
                        prefetch_block(g, k_pool, v_pool, block_table[b0 / bs + ahead], kvh);
                    float *ktw = bkt + (size_t)nst * grp;
                    transpose_keys(load_step(g, k_pool, off, ns, hd, kbuf), ktw, hd);
                    kts[nst] = ktw;
                    vfs[nst] = load_step(g, v_pool, off, ns, hd, bvf + (size_t)nst * grp);
                    t0s[nst] = b0 + s0;
                    nss[nst++] = ns;
                    if ((s0 += 16) >= nb) {
                        s0 = 0;
                        b0 += bs;
                    }
                }
                switch (W) {
#define STEPS_ARGS qt, at, cm, cl, kts, vfs, t0s, nss, nst, cpos, clo, vscale, vcap, capped, n_last, hd
                case 1: steps_narrow(STEPS_ARGS, 1, 4); break;
                case 2: steps_narrow(STEPS_ARGS, 2, 4); break;
                case 4: steps_narrow(STEPS_ARGS, 4, 2); break;
                default: steps_narrow(STEPS_ARGS, 8, 1); break;
#undef STEPS_ARGS
                }
            }
        } else
        for (int b0 = kbeg; b0 < kend; b0 += bs) {
            const int nb = kend - b0 < bs ? kend - b0 : bs;
            const size_t off = attn_row(g, block_table[b0 / bs], kvh, 0);
            if (b0 + 2 * bs < kend) prefetch_block(g, k_pool, v_pool, block_table[b0 / bs + 2], kvh);
            else if (b0 == kbeg && b0 + bs < kend) prefetch_block(g, k_pool, v_pool, block_table[b0 / bs + 1], kvh);
            for (int s0 = 0; s0 < nb; s0 += TV_ATTN_LANES) {
                const int ns = nb - s0 < TV_ATTN_LANES ? nb - s0 : TV_ATTN_LANES, t0 = b0 + s0;
                const float *kf = load_step(g, k_pool, off + (size_t)s0 * hd, ns, hd, kbuf);
                const float *vf = load_step(g, v_pool, off + (size_t)s0 * hd, ns, hd, vbuf);
                for (int gr = 0; gr < ngr; gr++) {
                    float *qg = qt + gr * grp, *ag = at + gr * grp, *gm = cm + 16 * gr, *gl = cl + 16 * gr;
                    if (narrow && gr == ngr - 1) {
                        int nvs[8], los[8], any = 0;
                        for (int i = 0; i < n_last; i++) {
                            const int n = cpos[16 * gr + i] - t0 + 1, lo = clo[16 * gr + i] - t0;
                            nvs[i] = n < ns ? n : ns;
                            los[i] = lo > 0 ? lo : 0;
                            any |= nvs[i] > los[i];
                        }
                        if (!any) continue;
                        transpose_keys(kf, kt, hd);
#define STEP_ARGS qg, ag, gm, gl, kt, vf, vscale, vcap, capped, los, nvs, n_last, hd
                        switch (n_last) {
                        case 1: step_narrow(STEP_ARGS, 1); break;
                        case 2: step_narrow(STEP_ARGS, 2); break;
                        case 3: case 4: step_narrow(STEP_ARGS, 4); break;
                        default: step_narrow(STEP_ARGS, 8); break;
                        }
#undef STEP_ARGS
                        continue;
                    }
                    // keys of this step each lane sees: min(ns, pos - t0 + 1), <= 0 for none
                    // and the first of them each sees: clo - t0 (<= 0: from the step's start)
                    const __m512i nvv = _mm512_min_epi32(
                        _mm512_sub_epi32(_mm512_loadu_si512(cpos + 16 * gr), _mm512_set1_epi32(t0 - 1)),
                        _mm512_set1_epi32(ns));
                    const __m512i lov = _mm512_sub_epi32(_mm512_loadu_si512(clo + 16 * gr), _mm512_set1_epi32(t0));
                    const __mmask16 real = tail16(nc - 16 * gr);
                    // no row sees a key of the step (done, or its window starts later): untouched
                    if (!_mm512_mask_cmpgt_epi32_mask(real, nvv, _mm512_max_epi32(lov, _mm512_setzero_si512()))) continue;
                    const bool full = _mm512_reduce_min_epi32(nvv) == 16 && _mm512_reduce_max_epi32(lov) <= 0;
                    if (full)
                        step_group(qg, ag, gm, gl, kf, vf, vscale, vcap, capped, lov, nvv, hd, true);
                    else
                        step_group(qg, ag, gm, gl, kf, vf, vscale, vcap, capped, lov, nvv, hd, false);
                }
            }
        }
        memcpy(m + c0, cm, (size_t)nc * sizeof(float));
        memcpy(l + c0, cl, (size_t)nc * sizeof(float));
        for (int gr = 0; gr < ngr; gr++) {   // accumulators back to rows (hd) per pair
            const float *ag = at + gr * grp;
            const int n = nc - 16 * gr < 16 ? nc - 16 * gr : 16;
            float *dst = acc + (size_t)(c0 + 16 * gr) * hd;
            if (narrow && gr == ngr - 1) {
                memcpy(dst, ag, (size_t)n * hd * sizeof(float));
                continue;
            }
            for (int d0 = 0; d0 + 16 <= hd; d0 += 16) {
                const float *in[16];
                float *out[16];
                for (int i = 0; i < 16; i++) {
                    in[i] = ag + (size_t)(d0 + i) * TV_ATTN_LANES;
                    out[i] = i < n ? dst + (size_t)i * hd + d0 : kbuf + 16 * i;   // padding lanes: scratch
                }
                transpose16(in, out);
            }
            for (int d = hd & ~15; d < hd; d++)
                for (int i = 0; i < n; i++) dst[(size_t)i * hd + d] = ag[(size_t)d * TV_ATTN_LANES + i];
        }
    }
}

#define CHUNK_ARGS g, k_pool, v_pool, block_table, kvh, n_rows, q, pos, k0, k1, m, l, acc, work

static void attn_chunk_avx512(const tv_attn_geom *g, const void *k_pool, const void *v_pool,
                              const int32_t *block_table, int kvh, int n_rows, const float *q, const int32_t *pos,
                              int k0, int k1, float *m, float *l, float *acc, float *work) {
    switch (g->head_dim) {   // constant head dims: immediate offsets for the 16 key rows
    case 64: chunk_lanes(CHUNK_ARGS, 64); return;
    case 128: chunk_lanes(CHUNK_ARGS, 128); return;
    case 32: chunk_lanes(CHUNK_ARGS, 32); return;
    case 80: chunk_lanes(CHUNK_ARGS, 80); return;
    case 96: chunk_lanes(CHUNK_ARGS, 96); return;
    default: chunk_lanes(CHUNK_ARGS, 0); return;
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

static void rope_neox_avx512(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    const int half = n_rot / 2;
    const float *cd = cs, *sd = cs + n_rot;
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < half; i += 16) {
            const __mmask16 k = tail16(half - i);
            const __m512 a = _mm512_maskz_loadu_ps(k, p + i), b = _mm512_maskz_loadu_ps(k, p + half + i);
            const __m512 ra = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k, cd + i),
                                              _mm512_mul_ps(b, _mm512_maskz_loadu_ps(k, sd + i)));
            const __m512 rb = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(k, cd + half + i),
                                              _mm512_mul_ps(a, _mm512_maskz_loadu_ps(k, sd + half + i)));
            _mm512_mask_storeu_ps(p + i, k, ra);
            _mm512_mask_storeu_ps(p + half + i, k, rb);
        }
    }
}

// x / (1 + e^-x) * u as x * r * u, r = 1 / den by rcp14 and one Newton step (~1e-7 relative, against a
// ~20-cycle divide). Whole vectors unmasked, the tail masked (the same lanes' arithmetic either way).
static inline __m512 swiglu16(__m512 x, __m512 u) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 den = _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)));
    __m512 r = _mm512_rcp14_ps(den);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(den, r, one), r);
    return _mm512_mul_ps(_mm512_mul_ps(x, r), u);
}
static void swiglu_avx512(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < n) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(g + i, k, swiglu16(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, u + i)));
    }
}

static void add_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + i), _mm512_maskz_loadu_ps(k, x + i)));
    }
}

// As ref_op_wsum, 16 lanes at a time: multiplies and adds as separate instructions (no FMA).
static void wsum_avx512(float *out, const float *const *rows, const float *w, const float *s, int k, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        __m512 o = _mm512_setzero_ps();
        for (int j = 0; j < k; j++) {
            __m512 v = _mm512_maskz_loadu_ps(m, rows[j] + i);
            if (s) v = _mm512_mul_ps(v, _mm512_set1_ps(s[j]));
            v = _mm512_mul_ps(v, _mm512_set1_ps(w[j]));
            o = j ? _mm512_add_ps(o, v) : v;
        }
        _mm512_mask_storeu_ps(out + i, m, o);
    }
}

// As ref_op_geglu: f16-rounded input and result, 0 / x outside (-10, 10). Whole vectors unmasked,
// the tail masked (the same lanes' arithmetic either way).
static inline __m512 geglu16(__m512 x, __m512 u) {
    const __m512 one = _mm512_set1_ps(1.0f), nk = _mm512_set1_ps(-GELU_TANH_K), a = _mm512_set1_ps(GELU_TANH_A);
    const __m512 xh = _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m512 z = _mm512_mul_ps(_mm512_mul_ps(nk, xh), _mm512_fmadd_ps(_mm512_mul_ps(a, xh), xh, one));
    __m512 gl = _mm512_div_ps(xh, _mm512_add_ps(one, exp512(z)));
    gl = _mm512_cvtph_ps(_mm512_cvtps_ph(gl, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    gl = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(10.0f), _CMP_GE_OQ), gl, x);
    gl = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-10.0f), _CMP_GT_OQ), gl);
    return _mm512_mul_ps(gl, u);
}
static void geglu_avx512(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, geglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < n) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(g + i, k, geglu16(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, u + i)));
    }
}

// glibc's expf (sysdeps/ieee754/flt-32/e_expf.c, as its FMA build runs on every AVX-512 CPU), eight
// lanes in double: k = round(x * 32/ln2) by the 1.5 * 2^52 shift, r = x * 32/ln2 - k, 2^(k/32) from
// its 32-entry table with k / 32 added to the exponent, a cubic in r; the float of the product. The
// same operations in the same order (the FMAs where the FMA build fuses), so the same bits as expf
// for every float, checked over all 2^32 inputs when this was written; test_attention checks a sweep
// of the float range and the edges against expf on this path. Out of the table's range as expf:
// NaN -> NaN, x > 0x1.62e42ep6 (incl. +inf) -> inf, x < -0x1.9fe368p6 (incl. -inf) -> 0.
static const uint64_t EXP2F_TAB[32] = {   // bits of 2^(i/32) - (i << 47)
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

static inline __m256 expf_glibc8(__m256 xf, const __m512d *tab) {
    const double N = 32;
    const __m512d inv = _mm512_set1_pd(0x1.71547652b82fep+0 * N), shift = _mm512_set1_pd(0x1.8p+52);
    const __m512d xd = _mm512_cvtps_pd(xf);
    __m512d kd = _mm512_fmadd_pd(inv, xd, shift);   // z + shift, z = x * N / ln2
    const __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    const __m512d r = _mm512_fmsub_pd(inv, xd, kd);   // z - kd
    const __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    const __m512d lo = _mm512_permutex2var_pd(tab[0], idx, tab[1]), hi = _mm512_permutex2var_pd(tab[2], idx, tab[3]);
    const __m512d t = _mm512_mask_blend_pd(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
    const __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(t), _mm512_slli_epi64(ki, 47)));
    const __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(0x1.c6af84b912394p-5 / N / N / N), r,
                                      _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / N / N));
    __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(0x1.62e42ff0c52d6p-1 / N), r, _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(z, _mm512_mul_pd(r, r), y);
    __m256 e = _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
    e = _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(xf, _mm256_set1_ps(0x1.62e42ep6f), _CMP_GT_OQ));
    e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(xf, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ));
    return _mm256_blendv_ps(e, _mm256_add_ps(xf, xf), _mm256_cmp_ps(xf, xf, _CMP_UNORD_Q));
}

// As kern_swiglu_oai, the same bits: min / max in the scalar's operand order (a NaN gate becomes 7, a
// NaN up stays NaN), the same float multiply, divide and adds, expf_glibc8 for expf.
static void swiglu_oai_avx512(float *g, const float *u, int64_t n) {
    __m512d tab[4];
    for (int i = 0; i < 4; i++) tab[i] = _mm512_loadu_pd((const double *)EXP2F_TAB + 8 * i);
    const __m512 limit = _mm512_set1_ps(7.0f), nlimit = _mm512_set1_ps(-7.0f), one = _mm512_set1_ps(1.0f);
    const __m512 nalpha = _mm512_set1_ps(-1.702f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        const __m512 x = _mm512_min_ps(_mm512_maskz_loadu_ps(k, g + i), limit);   // g < 7 ? g : 7
        const __m512 y = _mm512_max_ps(nlimit, _mm512_min_ps(limit, _mm512_maskz_loadu_ps(k, u + i)));
        const __m512 a = _mm512_mul_ps(nalpha, x);   // alpha * -x
        const __m512 e = _mm512_insertf32x8(_mm512_castps256_ps512(expf_glibc8(_mm512_castps512_ps256(a), tab)),
                                            expf_glibc8(_mm512_extractf32x8_ps(a, 1), tab), 1);
        const __m512 glu = _mm512_div_ps(x, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, k, _mm512_mul_ps(glu, _mm512_add_ps(y, one)));
    }
}

static void softcap_avx512(float *y, int64_t n, float cap) {
    const __m512 c = _mm512_set1_ps(cap), inv = _mm512_set1_ps(1.0f / cap);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(c, tanh512(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), inv))));
    }
}

const tv_ops ops_avx512 = {"avx512", attn_chunk_avx512, rmsnorm_avx512, rope_avx512, swiglu_avx512, add_avx512,
                           geglu_avx512, softcap_avx512, rope_neox_avx512, swiglu_oai_avx512, wsum_avx512};
