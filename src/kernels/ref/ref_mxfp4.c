// ref_mxfp4.c — scalar reference kernels for MXFP4 (OCP microscaling FP4, gpt-oss's expert weights),
// bit-exact with ggml's:
//
// block (17 B): u8 e | u8 qs[16];   x[i] = kern_e8m0_half(e) * kern_mxfp4_values[nib[i]], nib[i] =
//                                   qs[i] & 15 for i < 16, qs[i - 16] >> 4 for i >= 16 (Q4_0's order)
// The 4-bit code is E2M1 (sign, 2 exponent bits, 1 mantissa bit); the table holds the values doubled
// (integers) and the E8M0 scale 2^(e-127) is halved to compensate, so dequantization is exact.
// Quantizer (ggml's quantize_row_mxfp4_ref): e = floor(log2(amax)) - 2 + 127, each value to the
// nearest table entry (the first on ties). vec_dot against Q8_0 activation blocks, ggml's chain:
// sum += (f16(d_x) * scale) * (isum_low + isum_high) per block.
#include <math.h>

#include "kernels/kernels_impl.h"

const int8_t kern_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

void ref_to_float_mxfp4(const void *src, float *dst, int64_t n) {
    const tv_block_mxfp4 *b = src;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const float d = kern_e8m0_half(b[i].e);
        for (int j = 0; j < TV_QK_MXFP4 / 2; j++) {
            dst[i * TV_QK_MXFP4 + j] = (float)kern_mxfp4_values[b[i].qs[j] & 0x0F] * d;
            dst[i * TV_QK_MXFP4 + j + TV_QK_MXFP4 / 2] = (float)kern_mxfp4_values[b[i].qs[j] >> 4] * d;
        }
    }
}

static int best_index(float x, float d) {
    int best = 0;
    float best_err = fabsf((float)kern_mxfp4_values[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf((float)kern_mxfp4_values[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

void ref_from_float_mxfp4(const float *src, void *dst, int64_t n) {
    tv_block_mxfp4 *b = dst;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const float *x = src + i * TV_QK_MXFP4;
        float amax = 0.0f;
        for (int j = 0; j < TV_QK_MXFP4; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        // ggml casts the float exponent to uint8 directly; clamped here so absurd values stay defined
        const uint8_t e = kern_mxfp4_e(amax);
        const float d = kern_e8m0_half(e);
        b[i].e = e;
        for (int j = 0; j < TV_QK_MXFP4 / 2; j++)
            b[i].qs[j] = (uint8_t)(best_index(x[j], d) | best_index(x[j + TV_QK_MXFP4 / 2], d) << 4);
    }
}

void ref_vec_dot_mxfp4(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_mxfp4 *a = w;
    const tv_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_MXFP4; i++) {
        const float d = f16_to_f32(b[i].d) * kern_e8m0_half(a[i].e);
        int32_t lo = 0, hi = 0;
        for (int j = 0; j < TV_QK_MXFP4 / 2; j++) {
            lo += (int32_t)b[i].qs[j] * kern_mxfp4_values[a[i].qs[j] & 0x0F];
            hi += (int32_t)b[i].qs[j + TV_QK_MXFP4 / 2] * kern_mxfp4_values[a[i].qs[j] >> 4];
        }
        const float prod = d * (float)(lo + hi);   // its own statement: clang would contract d * x + sum into an FMA
        sum += prod;
    }
    *s = sum;
}
