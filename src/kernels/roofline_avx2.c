// roofline_avx2.c — AVX2 / AVX-VNNI probe loops for roofline.c (compiled with the AVX2 flags,
// which include -mavxvnni: only roofline_avxvnni_int8 may use VNNI; the AVX2 fallback pins its
// instructions with inline asm so the compiler cannot fuse them into VNNI ones).
#include "kernels/roofline_isa.h"

#if defined(__x86_64__)
#include <immintrin.h>

uint32_t roofline_avx2_read_sum(const void *buf, size_t n_bytes) {
    const __m256i *p = buf;   // (n_bytes / 32) ymm words
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n_bytes / 32; i += 8) {
        a0 = _mm256_add_epi32(a0, _mm256_add_epi32(_mm256_load_si256(p + i), _mm256_load_si256(p + i + 1)));
        a1 = _mm256_add_epi32(a1, _mm256_add_epi32(_mm256_load_si256(p + i + 2), _mm256_load_si256(p + i + 3)));
        a2 = _mm256_add_epi32(a2, _mm256_add_epi32(_mm256_load_si256(p + i + 4), _mm256_load_si256(p + i + 5)));
        a3 = _mm256_add_epi32(a3, _mm256_add_epi32(_mm256_load_si256(p + i + 6), _mm256_load_si256(p + i + 7)));
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(h);
}

static uint32_t hsum256(__m256i t) {   // sum of the 8 lanes, mod 2^32
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(h);
}

// The ymm loops are inline asm: with 16 ymm registers GCC 12 spills intrinsic accumulators
// inside the loop, which would measure the store port instead of the multipliers.
// Operand list for twelve "+x" accumulators a0..a11.
#define ACC12_OUT [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5), \
                  [a6] "+x"(a6), [a7] "+x"(a7), [a8] "+x"(a8), [a9] "+x"(a9), [a10] "+x"(a10), [a11] "+x"(a11)
#define OP12(ins, x, y) \
    ins " " x ", " y ", %[a0]\n\t" ins " " x ", " y ", %[a1]\n\t" ins " " x ", " y ", %[a2]\n\t" \
    ins " " x ", " y ", %[a3]\n\t" ins " " x ", " y ", %[a4]\n\t" ins " " x ", " y ", %[a5]\n\t" \
    ins " " x ", " y ", %[a6]\n\t" ins " " x ", " y ", %[a7]\n\t" ins " " x ", " y ", %[a8]\n\t" \
    ins " " x ", " y ", %[a9]\n\t" ins " " x ", " y ", %[a10]\n\t" ins " " x ", " y ", %[a11]\n\t"

uint32_t roofline_avxvnni_int8(int64_t n_iter) {
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2), a3 = _mm256_set1_epi32(3);
    __m256i a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5), a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7);
    __m256i a8 = _mm256_set1_epi32(8), a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
    __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-2);
    for (int64_t i = 0; i < n_iter; i++)
        __asm__ volatile(OP12("%{vex%} vpdpbusd", "%[s]", "%[u]") : ACC12_OUT : [u] "x"(u), [s] "x"(s));
    __m256i t = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)),
                                 _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7)));
    t = _mm256_xor_si256(t, _mm256_xor_si256(_mm256_xor_si256(a8, a9), _mm256_xor_si256(a10, a11)));
    return hsum256(t);
}

// 32 u8 x s8 MACs per (vpmaddubsw, vpmaddwd, vpaddd); 8 chains (the triple needs temporaries,
// and 16 ymm registers are all there are without AVX-512).
uint32_t roofline_avx2_int8(int64_t n_iter) {
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2), a3 = _mm256_set1_epi32(3);
    __m256i a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5), a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7);
    __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n_iter; i++) {
        __asm__ volatile(
            "vpmaddubsw %[s], %[u], %%ymm12\n\t" "vpmaddwd %[one], %%ymm12, %%ymm12\n\t" "vpaddd %%ymm12, %[a0], %[a0]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm13\n\t" "vpmaddwd %[one], %%ymm13, %%ymm13\n\t" "vpaddd %%ymm13, %[a1], %[a1]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm14\n\t" "vpmaddwd %[one], %%ymm14, %%ymm14\n\t" "vpaddd %%ymm14, %[a2], %[a2]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm15\n\t" "vpmaddwd %[one], %%ymm15, %%ymm15\n\t" "vpaddd %%ymm15, %[a3], %[a3]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm12\n\t" "vpmaddwd %[one], %%ymm12, %%ymm12\n\t" "vpaddd %%ymm12, %[a4], %[a4]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm13\n\t" "vpmaddwd %[one], %%ymm13, %%ymm13\n\t" "vpaddd %%ymm13, %[a5], %[a5]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm14\n\t" "vpmaddwd %[one], %%ymm14, %%ymm14\n\t" "vpaddd %%ymm14, %[a6], %[a6]\n\t"
            "vpmaddubsw %[s], %[u], %%ymm15\n\t" "vpmaddwd %[one], %%ymm15, %%ymm15\n\t" "vpaddd %%ymm15, %[a7], %[a7]\n\t"
            : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3),
              [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7)
            : [u] "x"(u), [s] "x"(s), [one] "x"(ones)
            : "xmm12", "xmm13", "xmm14", "xmm15");
    }
    __m256i t = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)),
                                 _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7)));
    return hsum256(t);
}

float roofline_avx2_fp32(int64_t n_iter) {
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
    __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
    __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    __m256 m = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-3f);   // a = a*m + b converges to 1000: no denormals
    for (int64_t i = 0; i < n_iter; i++)
        __asm__ volatile(OP12("vfmadd132ps", "%[m]", "%[b]") : ACC12_OUT : [m] "x"(m), [b] "x"(b));
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    t = _mm256_add_ps(t, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
#endif
