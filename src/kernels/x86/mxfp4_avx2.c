// mxfp4_avx2.c — MXFP4 · Q8_0 dot product with AVX2 (the ref's semantics: ref/ref_mxfp4.c).
//
// Per block, the 32 nibbles become their table values with one byte shuffle (the table is 16
// signed bytes), the int8 products are summed exactly in int32 (maddubs on |w| and x carrying w's
// sign: |w| <= 12, so the pair sums fit int16), and the float part is the ref's chain, block by
// block: the same bits as ref_vec_dot_mxfp4.
#include <immintrin.h>

#include "kernels/kernels_impl.h"

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void vec_dot_mxfp4(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_mxfp4 *a = w;
    const tv_block_q8_0 *b = x;
    const __m128i table = _mm_loadu_si128((const __m128i *)kern_mxfp4_values), m4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)a[i].qs);
        const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
        const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
        const __m256i wv = _mm256_set_m128i(hi, lo);   // elements 0..15, then 16..31
        const __m256i xv = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        const int32_t isum = hsum_i32(_mm256_madd_epi16(p, ones));
        const float d = f16_to_f32(b[i].d) * kern_e8m0_half(a[i].e);
        sum += d * (float)isum;
    }
    *s = sum;
}

void x86_install_mxfp4_avx2(tv_type_traits *t) { t[TV_TYPE_MXFP4].vec_dot = vec_dot_mxfp4; }
