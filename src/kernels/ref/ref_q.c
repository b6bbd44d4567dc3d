// ref_q.c — scalar reference kernels for Q8_0 and Q4_0 (GGUF block layouts, see kernels.h).
//
// Q8_0 block (34 B): f16 d | int8 q[32];            x[i] = d * q[i]
// Q4_0 block (18 B): f16 d | u8 qs[16];             x[i] = d * (nib[i] - 8), nib[i] = qs[i] & 15 for
//                                                    i < 16, qs[i - 16] >> 4 for i >= 16
// Quantizers (round to nearest, as ggml): Q8_0 d = amax / 127; Q4_0 d = m / -8 where m is the
// signed value of largest magnitude (so it maps exactly onto nibble 0 = -8).
// vec_dot: weight blocks against Q8_0 activation blocks; integer sums per block, scaled in float.
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

void ref_to_float_q8_0(const void *src, float *dst, int64_t n) {
    const tv_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / TV_QK8_0; i++) {
        float d = f16_to_f32(b[i].d);
        for (int j = 0; j < TV_QK8_0; j++) dst[i * TV_QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

void ref_from_float_q8_0(const float *src, void *dst, int64_t n) {
    tv_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / TV_QK8_0; i++) {
        const float *x = src + i * TV_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < TV_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < TV_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void ref_vec_dot_q8_0(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q8_0 *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK8_0; i++) {
        int32_t isum = 0;
        for (int j = 0; j < TV_QK8_0; j++) isum += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        sum += (float)isum * (f16_to_f32(a[i].d) * f16_to_f32(b[i].d));
    }
    *s = sum;
}

void ref_to_float_q4_0(const void *src, float *dst, int64_t n) {
    const tv_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / TV_QK4_0; i++) {
        float d = f16_to_f32(b[i].d);
        for (int j = 0; j < TV_QK4_0 / 2; j++) {
            dst[i * TV_QK4_0 + j] = d * (float)((b[i].qs[j] & 0x0F) - 8);
            dst[i * TV_QK4_0 + j + TV_QK4_0 / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

void ref_from_float_q4_0(const float *src, void *dst, int64_t n) {
    tv_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / TV_QK4_0; i++) {
        const float *x = src + i * TV_QK4_0;
        float amax = 0.0f, m = 0.0f;
        for (int j = 0; j < TV_QK4_0; j++) {
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); m = x[j]; }
        }
        float d = m / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < TV_QK4_0 / 2; j++) {
            float v0 = x[j] * id + 8.5f, v1 = x[j + TV_QK4_0 / 2] * id + 8.5f;
            int q0 = v0 < 0.0f ? 0 : (int)v0, q1 = v1 < 0.0f ? 0 : (int)v1;
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void ref_vec_dot_q4_0(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q4_0 *a = w;
    const tv_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK4_0; i++) {
        int32_t isum = 0;
        for (int j = 0; j < TV_QK4_0 / 2; j++) {
            isum += ((a[i].qs[j] & 0x0F) - 8) * (int32_t)b[i].qs[j];
            isum += ((a[i].qs[j] >> 4) - 8) * (int32_t)b[i].qs[j + TV_QK4_0 / 2];
        }
        sum += (float)isum * (f16_to_f32(a[i].d) * f16_to_f32(b[i].d));
    }
    *s = sum;
}

// ---- packed layout (kernels.h "packed weights"): scalar repack and GEMM ----
// The GEMM computes the canonical chain of the SIMD kernels exactly (fused multiply-add per
// block), so a fast packed kernel must match it bit for bit.
static void repack16(bool q4, const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    const int64_t nb = n / TV_QK8_0, qv = q4 ? 4 : 8;
    const size_t bs = q4 ? sizeof(tv_block_q4_0) : sizeof(tv_block_q8_0);
    const uint32_t flip = q4 ? 0 : 0x80808080u;
    for (int64_t g = 0; g * TV_PACK_ROWS < rows; g++) {
        uint8_t *gq = (uint8_t *)dst + (size_t)g * TV_PACK_ROWS * srs;   // pack_layout.h
        for (int l = 0; l < TV_PACK_ROWS; l++) {
            const int64_t r = g * TV_PACK_ROWS + l;
            const uint8_t *row = r < rows ? (const uint8_t *)src + (size_t)r * srs : NULL;
            for (int64_t b = 0; b < nb; b++) {
                uint16_t d = 0;
                if (row) memcpy(&d, row + (size_t)b * bs, 2);
                memcpy(gq + pk16_d(q4, nb, b) + 2 * (size_t)l, &d, 2);
                for (int64_t k = 0; k < qv; k++) {
                    uint32_t q = 0;
                    if (row) memcpy(&q, row + (size_t)b * bs + 2 + 4 * k, 4);
                    q ^= flip;
                    memcpy(gq + pk16_q(q4, nb, b) + ((size_t)k * TV_PACK_ROWS + l) * 4, &q, 4);
                }
            }
        }
    }
}
void ref_repack_q8_0(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack16(false, src, srs, n, rows, dst);
}
void ref_repack_q4_0(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack16(true, src, srs, n, rows, dst);
}

static void gemm16(bool q4, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                   const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK8_0, qv = q4 ? 4 : 8;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *gq = (const uint8_t *)w + (size_t)(r / TV_PACK_ROWS) * TV_PACK_ROWS * wrs;
        const int l = (int)(r % TV_PACK_ROWS);
        for (int64_t t = 0; t < nt; t++) {
            const tv_packed_act xa = packed_act_view((const uint8_t *)x + (size_t)t * xrs, n);
            const int8_t *xq = xa.q;
            const float *xd = xa.d;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t isum = 0;
                for (int64_t k = 0; k < qv; k++) {
                    const uint8_t *q = gq + pk16_q(q4, nb, b) + ((size_t)k * TV_PACK_ROWS + l) * 4;
                    const int8_t *xb = xq + b * TV_QK8_0;
                    for (int j = 0; j < 4; j++) {
                        if (q4) {
                            isum += ((q[j] & 0x0F) - 8) * (int32_t)xb[4 * k + j];
                            isum += ((q[j] >> 4) - 8) * (int32_t)xb[16 + 4 * k + j];
                        } else {
                            isum += ((int32_t)q[j] - 128) * (int32_t)xb[4 * k + j];
                        }
                    }
                }
                tv_f16 dw;
                memcpy(&dw, gq + pk16_d(q4, nb, b) + 2 * (size_t)l, 2);
                acc = fmaf((float)isum, f16_to_f32(dw) * xd[b], acc);
            }
            y[t * ys + r] = acc;
        }
    }
}
void ref_gemm_packed_q8_0(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                             const void *x, size_t xrs, float *y, int64_t ys) {
    gemm16(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_q4_0(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                             const void *x, size_t xrs, float *y, int64_t ys) {
    gemm16(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
