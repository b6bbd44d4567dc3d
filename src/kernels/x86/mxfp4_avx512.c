// mxfp4_avx512.c — MXFP4 · Q8_0 dot product with AVX-512 BW (the ref's semantics: ref/ref_mxfp4.c).
//
// Two blocks per 512-bit register: nibbles to table values with one byte shuffle, x takes w's sign
// (a masked subtraction: AVX-512 has no sign_epi8), maddubs + madd give exact int32 sums, each
// 256-bit half is one block's; the float part is the ref's chain, block by block, so the bits are
// ref_vec_dot_mxfp4's.
#include <immintrin.h>

#include "kernels/kernels_impl.h"

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
        const float d0 = f16_to_f32(b[i].d) * kern_e8m0_half(a[i].e);
        sum += d0 * (float)s0;
        const float d1 = f16_to_f32(b[i + 1].d) * kern_e8m0_half(a[i + 1].e);
        sum += d1 * (float)s1;
    }
    for (; i < nb; i++) {
        const __m256i wv = block_values(&a[i], table, m4), xv = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        const int32_t isum = hsum_i32_256(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        const float d = f16_to_f32(b[i].d) * kern_e8m0_half(a[i].e);
        sum += d * (float)isum;
    }
    *s = sum;
}

void x86_install_mxfp4_avx512(tv_type_traits *t) { t[TV_TYPE_MXFP4].vec_dot = vec_dot_mxfp4; }
