// madd_avx2.h — vpmaddwd that no compiler fuses with the add after it (private to src/kernels/x86/).
//
// The AVX2 files are compiled with -mavxvnni for their VNNI kernels, and clang then turns
// _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) into the AVX-VNNI vpdpwssd in the non-VNNI
// kernels as well: SIGILL on CPUs with AVX2 but no AVX-VNNI (Ice Lake, Zen 3), which are the ones
// those kernels are for. gcc does not fuse. The empty asm pins the product in a register: it emits
// no instruction.
#ifndef TV_X86_MADD_AVX2_H
#define TV_X86_MADD_AVX2_H

#include <immintrin.h>

static inline __attribute__((always_inline)) __m256i tv_madd_epi16(__m256i a, __m256i b) {
    __m256i r = _mm256_madd_epi16(a, b);
    __asm__("" : "+x"(r));
    return r;
}

#endif
