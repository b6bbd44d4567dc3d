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
#include <string.h>

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

// Packed MXFP4 (kernels.h "packed weights"): per 16-row group (the last padded with zero rows),
//   quants (n_blocks, 4, 16 rows, 4 bytes): dword k of each row's block qs, as stored
//   e      (n_blocks, 16 rows) u8
// exactly 16 plain rows' bytes: one 512-bit load holds a dword of the 16 rows (no transpose left in
// the kernel). Zero rows: e 0, codes 0.
void ref_repack_mxfp4(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    const int64_t nb = n / TV_QK_MXFP4;
    for (int64_t g = 0; g * TV_PACK_ROWS < rows; g++) {
        uint8_t *gq = (uint8_t *)dst + (size_t)g * TV_PACK_ROWS * srs;   // (nb, 4, 16, 4)
        uint8_t *ge = gq + (size_t)nb * 4 * TV_PACK_ROWS * 4;             // (nb, 16)
        for (int l = 0; l < TV_PACK_ROWS; l++) {
            const int64_t r = g * TV_PACK_ROWS + l;
            const tv_block_mxfp4 *row = r < rows ? (const tv_block_mxfp4 *)((const uint8_t *)src + (size_t)r * srs) : NULL;
            for (int64_t b = 0; b < nb; b++) {
                ge[b * TV_PACK_ROWS + l] = row ? row[b].e : 0;
                for (int k = 0; k < 4; k++) {
                    uint8_t *q = gq + ((size_t)(b * 4 + k) * TV_PACK_ROWS + l) * 4;
                    if (row) memcpy(q, row[b].qs + 4 * k, 4);
                    else memset(q, 0, 4);
                }
            }
        }
    }
}

// The gemm contract on packed weights (r0 % 16 == 0) and packed activation rows: ref_vec_dot_mxfp4's
// chain per (row, token), the activation scale read as the f32 it was widened to (the same value).
void ref_gemm_packed_mxfp4(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                           const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK_MXFP4;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *gq = (const uint8_t *)w + (size_t)(r / TV_PACK_ROWS) * TV_PACK_ROWS * wrs;
        const uint8_t *ge = gq + (size_t)nb * 4 * TV_PACK_ROWS * 4;
        const int l = (int)(r % TV_PACK_ROWS);
        for (int64_t t = 0; t < nt; t++) {
            const tv_packed_act xa = packed_act_view((const uint8_t *)x + (size_t)t * xrs, n);
            float sum = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const int8_t *xb = xa.q + b * TV_QK_MXFP4;
                int32_t lo = 0, hi = 0;
                for (int k = 0; k < 4; k++) {
                    const uint8_t *q = gq + ((size_t)(b * 4 + k) * TV_PACK_ROWS + l) * 4;
                    for (int j = 0; j < 4; j++) {
                        lo += (int32_t)xb[4 * k + j] * kern_mxfp4_values[q[j] & 0x0F];
                        hi += (int32_t)xb[16 + 4 * k + j] * kern_mxfp4_values[q[j] >> 4];
                    }
                }
                const float d = xa.d[b] * kern_e8m0_half(ge[b * TV_PACK_ROWS + l]);
                const float prod = d * (float)(lo + hi);
                sum += prod;
            }
            y[t * ys + r] = sum;
        }
    }
}
