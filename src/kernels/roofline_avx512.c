// roofline_avx512.c — AVX-512 probe loops for roofline.c (compiled with the AVX-512 flags).
#include "kernels/roofline_isa.h"

#if defined(__x86_64__)
#include <immintrin.h>

uint32_t roofline_avx512_read_sum(const void *buf, size_t n_bytes) {
    const __m512i *p = buf;   // (n_bytes / 64) zmm words
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n_bytes / 64; i += 4) {
        a0 = _mm512_add_epi32(a0, _mm512_load_si512(p + i));
        a1 = _mm512_add_epi32(a1, _mm512_load_si512(p + i + 1));
        a2 = _mm512_add_epi32(a2, _mm512_load_si512(p + i + 2));
        a3 = _mm512_add_epi32(a3, _mm512_load_si512(p + i + 3));
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
    return (uint32_t)_mm512_reduce_add_epi32(s);
}

// Sixteen named accumulators (an array would live in memory at -O2).
#define R16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

uint32_t roofline_avx512_int8(int64_t n_iter) {
#define DECL(c) __m512i a##c = _mm512_set1_epi32(c);
#define STEP(c) a##c = _mm512_dpbusd_epi32(a##c, u, s);
#define FOLD(c) t = _mm512_xor_si512(t, a##c);
    R16(DECL)
    __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    __asm__ volatile("" : "+v"(u), "+v"(s));   // opaque inputs: the loop cannot be folded
    for (int64_t i = 0; i < n_iter; i++) { R16(STEP) }
    __m512i t = _mm512_setzero_si512();
    R16(FOLD)
    return (uint32_t)_mm512_reduce_add_epi32(t);
#undef DECL
#undef STEP
#undef FOLD
}

float roofline_avx512_fp32(int64_t n_iter) {
#define DECL(c) __m512 a##c = _mm512_set1_ps((float)c);
#define STEP(c) a##c = _mm512_fmadd_ps(a##c, m, b);
#define FOLD(c) t = _mm512_add_ps(t, a##c);
    R16(DECL)
    __m512 m = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-3f);   // converges to 1000: no denormals
    __asm__ volatile("" : "+v"(m), "+v"(b));
    for (int64_t i = 0; i < n_iter; i++) { R16(STEP) }
    __m512 t = _mm512_setzero_ps();
    R16(FOLD)
    return _mm512_reduce_add_ps(t);
#undef DECL
#undef STEP
#undef FOLD
}
#endif
