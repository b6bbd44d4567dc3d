// deltanet_avx2.c — the Gated DeltaNet kernels (deltanet_impl.h) with AVX2 + FMA primitives
// (the two matrix products register-blocked, masked tails).
#include <immintrin.h>
#include <string.h>

#include "kernels/deltanet.h"

static float gdn_dot(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void gdn_axpy(float *y, float a, const float *x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void gdn_scale(float *y, float a, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] *= a;
}

// The lanes of a vector that start `n` floats before an end (n <= 0: none), for maskload/maskstore.
static __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// R rows of c, columns [j, j + 16): R x 2 accumulators in registers over the whole i loop.
static inline __attribute__((always_inline)) void xmat_block(float *c, const float *const *x, int R, const float *B,
                                                             int d, int j) {
    const __m256i m0 = lanes(d - j), m1 = lanes(d - j - 8);
    __m256 a0[4], a1[4];
    for (int r = 0; r < R; r++) a0[r] = a1[r] = _mm256_setzero_ps();
    for (int i = 0; i < d; i++) {
        const float *bi = B + (size_t)i * d + j;
        const __m256 b0 = _mm256_maskload_ps(bi, m0), b1 = _mm256_maskload_ps(bi + 8, m1);
        for (int r = 0; r < R; r++) {
            const __m256 xr = _mm256_set1_ps(x[r][i]);
            a0[r] = _mm256_fmadd_ps(xr, b0, a0[r]);
            a1[r] = _mm256_fmadd_ps(xr, b1, a1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm256_maskstore_ps(c + (size_t)r * d + j, m0, a0[r]);
        _mm256_maskstore_ps(c + (size_t)r * d + j + 8, m1, a1[r]);
    }
}

static void gdn_rank(float *B, int d, float e, const float *coef, const float *D, int n) {
    const __m256 ve = _mm256_set1_ps(e);
    for (int i = 0; i < d; i++) {
        float *bi = B + (size_t)i * d;
        const float *ci = coef + (size_t)i * n;
        for (int j = 0; j < d; j += 32) {   // 32 columns of row i in registers over the n updates
            const __m256i m[4] = {lanes(d - j), lanes(d - j - 8), lanes(d - j - 16), lanes(d - j - 24)};
            __m256 a[4];
            for (int v = 0; v < 4; v++) a[v] = _mm256_mul_ps(ve, _mm256_maskload_ps(bi + j + 8 * v, m[v]));
            for (int s = 0; s < n; s++) {
                const __m256 cs = _mm256_set1_ps(ci[s]);
                const float *ds = D + (size_t)s * d + j;
                for (int v = 0; v < 4; v++) a[v] = _mm256_fmadd_ps(cs, _mm256_maskload_ps(ds + 8 * v, m[v]), a[v]);
            }
            for (int v = 0; v < 4; v++) _mm256_maskstore_ps(bi + j + 8 * v, m[v], a[v]);
        }
    }
}

#define GDN_XMAT_STRIPE 16
#define GDN_NAME(x) x##_avx2
#include "kernels/deltanet_impl.h"

const kern_gdn_ops kern_gdn_ops_avx2 = {"avx2", kern_gdn_head_avx2};
