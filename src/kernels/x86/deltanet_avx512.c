// deltanet_avx512.c — the Gated DeltaNet kernels (deltanet_impl.h) with AVX-512 primitives
// (masked tails; the two matrix products register-blocked).
#include <immintrin.h>
#include <string.h>

#include "kernels/deltanet.h"

static float gdn_dot(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void gdn_axpy(float *y, float a, const float *x, int n) {
    const __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void gdn_scale(float *y, float a, int n) {
    const __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, y + i)));
    }
}

// The lanes of a vector that start `n` floats before an end (n <= 0: none).
static __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

// R rows of c, columns [j, j + 32): R x 2 accumulators in registers over the whole i loop.
static inline __attribute__((always_inline)) void xmat_block(float *c, const float *const *x, int R, const float *B,
                                                             int d, int j) {
    const __mmask16 m0 = lanes(d - j), m1 = lanes(d - j - 16);
    __m512 a0[4], a1[4];
    for (int r = 0; r < R; r++) a0[r] = a1[r] = _mm512_setzero_ps();
    for (int i = 0; i < d; i++) {
        const float *bi = B + (size_t)i * d + j;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, bi), b1 = _mm512_maskz_loadu_ps(m1, bi + 16);
        for (int r = 0; r < R; r++) {
            const __m512 xr = _mm512_set1_ps(x[r][i]);
            a0[r] = _mm512_fmadd_ps(xr, b0, a0[r]);
            a1[r] = _mm512_fmadd_ps(xr, b1, a1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(c + (size_t)r * d + j, m0, a0[r]);
        _mm512_mask_storeu_ps(c + (size_t)r * d + j + 16, m1, a1[r]);
    }
}

static void gdn_rank(float *B, int d, float e, const float *coef, const float *D, int n) {
    const __m512 ve = _mm512_set1_ps(e);
    for (int i = 0; i < d; i++) {
        float *bi = B + (size_t)i * d;
        const float *ci = coef + (size_t)i * n;
        for (int j = 0; j < d; j += 64) {   // 64 columns of row i in registers over the n updates
            const __mmask16 m[4] = {lanes(d - j), lanes(d - j - 16), lanes(d - j - 32), lanes(d - j - 48)};
            __m512 a[4];
            for (int v = 0; v < 4; v++) a[v] = _mm512_mul_ps(ve, _mm512_maskz_loadu_ps(m[v], bi + j + 16 * v));
            for (int s = 0; s < n; s++) {
                const __m512 cs = _mm512_set1_ps(ci[s]);
                const float *ds = D + (size_t)s * d + j;
                for (int v = 0; v < 4; v++) a[v] = _mm512_fmadd_ps(cs, _mm512_maskz_loadu_ps(m[v], ds + 16 * v), a[v]);
            }
            for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(bi + j + 16 * v, m[v], a[v]);
        }
    }
}

#define GDN_XMAT_STRIPE 32
#define GDN_NAME(x) x##_avx512
#include "kernels/deltanet_impl.h"

const kern_gdn_ops kern_gdn_ops_avx512 = {"avx512", kern_gdn_head_avx512};
