// attn_avx2.c — AVX2 + FMA + F16C twins of the attention chunk kernel and the elementwise ops of
// attention.c. Head dims that are not a multiple of 8 go to the scalar kernel.
//
// exp: x clamped to [-87.3, 88], n = round(x log2 e), r = x - n ln2 (two-part ln2), e^r by its
// Taylor polynomial to degree 7 (|r| <= 0.347: truncation < 6e-9), times 2^n built in the exponent
// bits. Below the clamp it returns ~e^-87.3 (1.2e-38), not 0: attention masks the lanes it must
// zero. A few ulps (~3e-7 relative); test_attention measures silu(g)*u through it against double.
// Tails are masked vector ops (never scalar), so results do not depend on how rows are split.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/attn_impl.h"

static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}


// tanh(t): |t| < 0.625 by Cephes' odd polynomial (no cancellation near 0), else
// sign(t) (1 - 2 / (e^2|t| + 1)); a few ulps either way.
static inline __m256 tanh256(__m256 t) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 at = _mm256_andnot_ps(sign, t), z = _mm256_mul_ps(t, t);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), t, t);
    const __m256 e = exp256(_mm256_add_ps(at, at));
    const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    const __m256 large = _mm256_or_ps(big, _mm256_and_ps(sign, t));
    return _mm256_blendv_ps(small, large, _mm256_cmp_ps(at, _mm256_set1_ps(0.625f), _CMP_GE_OQ));
}

// lanes i < left set (all bits), others 0
static inline __m256i tail8(int64_t left) {
    const int c = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m128 hsum4(__m256 b0, __m256 b1, __m256 b2, __m256 b3) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

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

static inline void cvt_rows(const tv_f16 *src, float *dst, size_t cnt) {
    for (size_t i = 0; i < cnt; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
}

static inline float hmax8(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

static inline float hadd8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

// head dim hd = 8 * NV, NV <= 16 and constant after inlining.
static inline __attribute__((always_inline)) void chunk_nv(const tv_attn_geom *g, const void *k_pool,
                                                           const void *v_pool, const int32_t *block_table, int kvh,
                                                           int n_rows, const float *q, const int32_t *pos, int k0,
                                                           int k1, float *m, float *l, float *acc, float *work,
                                                           const int NV) {
    const int hd = 8 * NV, bs = g->block_size, G = g->n_heads / g->n_kv_heads, qd = g->n_heads * hd;
    float *kbuf = work, *vbuf = kbuf + attn_bs4(bs) * hd, *s = vbuf + attn_bs4(bs) * hd;
    const __m128 vscale = _mm_set1_ps(attn_score_scale(g));
    const bool capped = g->softcap > 0;
    const __m256 vcap = _mm256_set1_ps(g->softcap);
    int kbeg, kend;
    attn_chunk_range(g, pos, n_rows, k0, k1, &kbeg, &kend);
    for (int i = 0; i < n_rows * G; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
    }
    memset(acc, 0, (size_t)n_rows * G * hd * sizeof(float));
    for (int b0 = kbeg; b0 < kend; b0 += bs) {
        const int32_t blk = block_table[b0 / bs];
        const int nb = kend - b0 < bs ? kend - b0 : bs;
        const size_t off = attn_row(g, blk, kvh, 0);
        if (b0 + bs < kend) prefetch_block(g, k_pool, v_pool, block_table[b0 / bs + 1], kvh);
        const float *kf, *vf;
        if (g->kv_is_f32) {
            kf = (const float *)k_pool + off;
            vf = (const float *)v_pool + off;
        } else {
            cvt_rows((const tv_f16 *)k_pool + off, kbuf, (size_t)nb * hd);
            cvt_rows((const tv_f16 *)v_pool + off, vbuf, (size_t)nb * hd);
            kf = kbuf;
            vf = vbuf;
        }
        for (int r = 0; r < n_rows; r++) {
            // keys j0 .. j0 + nv - 1 of the block: this row's (the window may start inside it)
            const int j0 = attn_key_lo(g, pos[r]) > b0 ? attn_key_lo(g, pos[r]) - b0 : 0;
            const int nv = (pos[r] + 1 - b0 < nb ? pos[r] + 1 - b0 : nb) - j0;
            if (nv <= 0) continue;
            const float *kr0 = kf + (size_t)j0 * hd, *vr0 = vf + (size_t)j0 * hd;
            for (int gi = 0; gi < G; gi++) {
                const float *qv = q + (size_t)r * qd + (size_t)(kvh * G + gi) * hd;
                const int si = r * G + gi;
                float *ac = acc + (size_t)si * hd;
                __m256 qr[16];   // NV <= 16
                #pragma GCC unroll 16
                for (int v = 0; v < NV; v++) qr[v] = _mm256_loadu_ps(qv + 8 * v);
                for (int j = 0; j < nv; j += 4) {
                    __m256 a[4];
                    #pragma GCC unroll 16
                    for (int u = 0; u < 4; u++) {
                        a[u] = _mm256_setzero_ps();
                        if (j + u >= nv) continue;
                        const float *kr = kr0 + (size_t)(j + u) * hd;
                        a[u] = _mm256_mul_ps(qr[0], _mm256_loadu_ps(kr));
                        #pragma GCC unroll 16
                        for (int v = 1; v < NV; v++) a[u] = _mm256_fmadd_ps(qr[v], _mm256_loadu_ps(kr + 8 * v), a[u]);
                    }
                    _mm_storeu_ps(s + j, _mm_mul_ps(hsum4(a[0], a[1], a[2], a[3]), vscale));
                }
                if (capped)
                    for (int j = 0; j < nv; j += 8)
                        _mm256_storeu_ps(s + j, _mm256_mul_ps(vcap, tanh256(_mm256_loadu_ps(s + j))));
                __m256 vmax = _mm256_set1_ps(-INFINITY);
                for (int j = 0; j < nv; j += 8) {
                    const __m256 mk = _mm256_castsi256_ps(tail8(nv - j));
                    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(s + j), mk));
                }
                const float bm = hmax8(vmax);
                const float nm = bm > m[si] ? bm : m[si];
                // 0 on the first block (m = -inf); exactly 1 (and skipped: same bits) when the max holds
                const bool same = nm == m[si];
                const float corr = same ? 1.0f : expf(m[si] - nm);
                const __m256 vnm = _mm256_set1_ps(nm);
                __m256 vsum = _mm256_setzero_ps();
                for (int j = 0; j < nv; j += 8) {
                    const __m256 mk = _mm256_castsi256_ps(tail8(nv - j));
                    const __m256 e = _mm256_and_ps(mk, exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vnm)));
                    _mm256_storeu_ps(s + j, e);
                    vsum = _mm256_add_ps(vsum, e);
                }
                l[si] = l[si] * corr + hadd8(vsum);
                __m256 ar[16];
                const __m256 vc = _mm256_set1_ps(corr);
                #pragma GCC unroll 16
                for (int v = 0; v < NV; v++) ar[v] = same ? _mm256_loadu_ps(ac + 8 * v) : _mm256_mul_ps(_mm256_loadu_ps(ac + 8 * v), vc);
                for (int j = 0; j < nv; j++) {
                    const __m256 pj = _mm256_set1_ps(s[j]);
                    const float *vr = vr0 + (size_t)j * hd;
                    #pragma GCC unroll 16
                    for (int v = 0; v < NV; v++) ar[v] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 8 * v), ar[v]);
                }
                #pragma GCC unroll 16
                for (int v = 0; v < NV; v++) _mm256_storeu_ps(ac + 8 * v, ar[v]);
                m[si] = nm;
            }
        }
    }
}

// Generic head dims (multiples of 8 beyond the specialised ones): acc in memory.
static void chunk_any(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                      int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                      float *acc, float *work);

#define CHUNK_ARGS g, k_pool, v_pool, block_table, kvh, n_rows, q, pos, k0, k1, m, l, acc, work

void attn_chunk_avx2(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                        int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                        float *acc, float *work) {
    switch (g->head_dim) {
    case 8: chunk_nv(CHUNK_ARGS, 1); return;
    case 16: chunk_nv(CHUNK_ARGS, 2); return;
    case 32: chunk_nv(CHUNK_ARGS, 4); return;
    case 48: chunk_nv(CHUNK_ARGS, 6); return;
    case 64: chunk_nv(CHUNK_ARGS, 8); return;
    case 80: chunk_nv(CHUNK_ARGS, 10); return;
    case 96: chunk_nv(CHUNK_ARGS, 12); return;
    case 128: chunk_nv(CHUNK_ARGS, 16); return;
    default: chunk_any(CHUNK_ARGS); return;
    }
}

static void chunk_any(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                      int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                      float *acc, float *work) {
    // Not a multiple of 8, or wider than 128: the scalar twin (correct; not tuned).
    attn_chunk_ref(CHUNK_ARGS);
}

static void rmsnorm_avx2(float *out, const float *x, const float *w, int n, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const __m256 v = _mm256_maskload_ps(x + i, tail8(n - i));
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    const __m256d s = _mm256_add_pd(s0, s1);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    t = _mm_add_sd(t, _mm_unpackhi_pd(t, t));
    const double ss = _mm_cvtsd_f64(t);
    const __m256 scale = _mm256_set1_ps((float)(1.0 / sqrt(ss / n + eps)));
    for (int i = 0; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), scale);
        _mm256_maskstore_ps(out + i, k, _mm256_mul_ps(v, _mm256_maskload_ps(w + i, k)));
    }
}

static void rope_avx2(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < n_rot; i += 8) {
            const __m256i k = tail8(n_rot - i);
            const __m256 x = _mm256_maskload_ps(p + i, k);
            const __m256 sw = _mm256_permute_ps(x, 0xB1);
            const __m256 r = _mm256_fmadd_ps(x, _mm256_maskload_ps(cs + i, k),
                                             _mm256_mul_ps(sw, _mm256_maskload_ps(cs + n_rot + i, k)));
            _mm256_maskstore_ps(p + i, k, r);
        }
    }
}

static void rope_neox_avx2(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    const int half = n_rot / 2;
    const float *cd = cs, *sd = cs + n_rot;
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < half; i += 8) {
            const __m256i k = tail8(half - i);
            const __m256 a = _mm256_maskload_ps(p + i, k), b = _mm256_maskload_ps(p + half + i, k);
            const __m256 ra = _mm256_fmadd_ps(a, _mm256_maskload_ps(cd + i, k),
                                              _mm256_mul_ps(b, _mm256_maskload_ps(sd + i, k)));
            const __m256 rb = _mm256_fmadd_ps(b, _mm256_maskload_ps(cd + half + i, k),
                                              _mm256_mul_ps(a, _mm256_maskload_ps(sd + half + i, k)));
            _mm256_maskstore_ps(p + i, k, ra);
            _mm256_maskstore_ps(p + half + i, k, rb);
        }
    }
}

static void swiglu_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        const __m256 x = _mm256_maskload_ps(g + i, k);
        const __m256 sg = _mm256_div_ps(x, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_maskstore_ps(g + i, k, _mm256_mul_ps(sg, _mm256_maskload_ps(u + i, k)));
    }
}

static void add_avx2(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_add_ps(_mm256_maskload_ps(y + i, k), _mm256_maskload_ps(x + i, k)));
    }
}

// As ref_op_wsum, 8 lanes at a time: multiplies and adds as separate instructions (no FMA).
static void wsum_avx2(float *out, const float *const *rows, const float *w, const float *s, int k, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        __m256 o = _mm256_setzero_ps();
        for (int j = 0; j < k; j++) {
            __m256 v = _mm256_maskload_ps(rows[j] + i, m);
            if (s) v = _mm256_mul_ps(v, _mm256_set1_ps(s[j]));
            v = _mm256_mul_ps(v, _mm256_set1_ps(w[j]));
            o = j ? _mm256_add_ps(o, v) : v;
        }
        _mm256_maskstore_ps(out + i, m, o);
    }
}

// As ref_op_geglu: f16-rounded input and result (F16C), 0 / x outside (-10, 10).
static void geglu_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), nk = _mm256_set1_ps(-GELU_TANH_K), a = _mm256_set1_ps(GELU_TANH_A);
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        const __m256 x = _mm256_maskload_ps(g + i, k);
        const __m256 xh = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m256 z = _mm256_mul_ps(_mm256_mul_ps(nk, xh), _mm256_fmadd_ps(_mm256_mul_ps(a, xh), xh, one));
        __m256 gl = _mm256_div_ps(xh, _mm256_add_ps(one, exp256(z)));
        gl = _mm256_cvtph_ps(_mm256_cvtps_ph(gl, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        gl = _mm256_blendv_ps(gl, x, _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
        gl = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LE_OQ), gl);
        _mm256_maskstore_ps(g + i, k, _mm256_mul_ps(gl, _mm256_maskload_ps(u + i, k)));
    }
}

static void softcap_avx2(float *y, int64_t n, float cap) {
    const __m256 c = _mm256_set1_ps(cap), inv = _mm256_set1_ps(1.0f / cap);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_mul_ps(c, tanh256(_mm256_mul_ps(_mm256_maskload_ps(y + i, k), inv))));
    }
}

const tv_ops ops_avx2 = {"avx2", attn_chunk_avx2, rmsnorm_avx2, rope_avx2, swiglu_avx2, add_avx2, geglu_avx2, softcap_avx2,
                         rope_neox_avx2, kern_swiglu_oai, wsum_avx2};
