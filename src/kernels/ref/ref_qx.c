// ref_qx.c — scalar reference kernels for the other 32-element block types: Q4_1, Q5_0, Q5_1,
// IQ4_NL and the activation type Q8_1 (GGUF layouts, see kernels.h).
//
// Element j of a block: j < 16 reads the low nibble of qs[j], j >= 16 the high nibble of qs[j - 16];
// the 5-bit types add bit j of the little-endian u32 qh as the code's bit 4.
//   Q4_1  (20 B): f16 d | f16 m | qs[16]            x = d * q + m          q 0..15
//   Q5_0  (22 B): f16 d | qh[4] | qs[16]            x = d * (q - 16)       q 0..31
//   Q5_1  (24 B): f16 d | f16 m | qh[4] | qs[16]    x = d * q + m          q 0..31
//   IQ4_NL(18 B): f16 d | qs[16]                    x = d * iq4nl_values[q] (a non-linear 4-bit grid)
//   Q8_1  (36 B): f16 d | f16 s | int8 qs[32]       x = d * q; s = f16(d * sum q), d unrounded
// Dequantization is bit-exact with ggml's (tests/fixtures/quant/dequant: vectors made by its
// library). Quantizers: Q4_1/Q5_0/Q5_1/Q8_1 are ggml's reference rules (min/max or signed-extreme
// scale, round half up); IQ4_NL searches the block scale (see iq4_fit). vec_dot: integer sums per
// block, combined in float as ggml's CPU backend does (Q4_1/Q5_1 against Q8_1: (dw*dx)*sumi +
// m*s; Q5_0/IQ4_NL against Q8_0: (dw*dx)*sumi).
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

const int8_t iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };
const uint8_t iq4nl_values_u8[16] = { 1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241 };

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}
// The 5-bit code of element j (< 32) of a Q5 block.
static inline int q5_code(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return lo | (int)(((qh >> j) & 1) << 4);
}

// ---------------- Q8_1 ----------------
void ref_from_float_q8_1(const float *src, void *dst, int64_t n) {
    tv_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += b[i].qs[j];
        }
        b[i].d = f32_to_f16(d);
        b[i].s = f32_to_f16((float)sum * d);
    }
}

void ref_to_float_q8_1(const void *src, float *dst, int64_t n) {
    const tv_block_q8_1 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = d * (float)b[i].qs[j];
    }
}

// ---------------- Q4_1, Q5_1 (affine) and Q5_0 (symmetric) ----------------
void ref_to_float_q4_1(const void *src, float *dst, int64_t n) {
    const tv_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        for (int j = 0; j < 16; j++) {
            dst[i * 32 + j] = (float)(b[i].qs[j] & 0x0F) * d + m;
            dst[i * 32 + j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void ref_to_float_q5_1(const void *src, float *dst, int64_t n) {
    const tv_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)q5_code(b[i].qs, qh, j) * d + m;
    }
}

void ref_to_float_q5_0(const void *src, float *dst, int64_t n) {
    const tv_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = f16_to_f32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)(q5_code(b[i].qs, qh, j) - 16) * d;
    }
}

// Affine quantization of one 32-block onto 0..nmax: d = (max - min) / nmax, q = round-half-up.
// Writes d, m; codes into q[32].
static void affine_block(const float *x, int nmax, tv_f16 *d_out, tv_f16 *m_out, int *q) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) { lo = fminf(lo, x[j]); hi = fmaxf(hi, x[j]); }
    const float d = (hi - lo) / (float)nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = f32_to_f16(d);
    *m_out = f32_to_f16(lo);
    for (int j = 0; j < 32; j++) q[j] = clampi((int)((x[j] - lo) * id + 0.5f), 0, nmax);
}

static void pack_nibbles(const int *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    for (int j = 0; j < 32; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    if (qh) memcpy(qh, &h, 4);
}

void ref_from_float_q4_1(const float *src, void *dst, int64_t n) {
    tv_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        int q[32];
        affine_block(src + i * 32, 15, &b[i].d, &b[i].m, q);
        pack_nibbles(q, b[i].qs, NULL);
    }
}

void ref_from_float_q5_1(const float *src, void *dst, int64_t n) {
    tv_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        int q[32];
        affine_block(src + i * 32, 31, &b[i].d, &b[i].m, q);
        pack_nibbles(q, b[i].qs, b[i].qh);
    }
}

void ref_from_float_q5_0(const float *src, void *dst, int64_t n) {
    tv_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        float amax = 0.0f, mx = 0.0f;   // the signed value of largest magnitude maps onto code 0 (-16)
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); mx = x[j]; }
        const float d = mx / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        int q[32];
        for (int j = 0; j < 32; j++) q[j] = clampi((int)(x[j] * id + 16.5f), 0, 31);
        pack_nibbles(q, b[i].qs, b[i].qh);
    }
}

void ref_vec_dot_q4_1(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q4_1 *a = w;
    const tv_block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++)
            isum += (a[i].qs[j] & 0x0F) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        sum += (f16_to_f32(a[i].d) * f16_to_f32(b[i].d)) * (float)isum + f16_to_f32(a[i].m) * f16_to_f32(b[i].s);
    }
    *s = sum;
}

void ref_vec_dot_q5_1(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q5_1 *a = w;
    const tv_block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint32_t qh = load_qh(a[i].qh);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += q5_code(a[i].qs, qh, j) * b[i].qs[j];
        sum += (f16_to_f32(a[i].d) * f16_to_f32(b[i].d)) * (float)isum + f16_to_f32(a[i].m) * f16_to_f32(b[i].s);
    }
    *s = sum;
}

void ref_vec_dot_q5_0(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q5_0 *a = w;
    const tv_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint32_t qh = load_qh(a[i].qh);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += (q5_code(a[i].qs, qh, j) - 16) * b[i].qs[j];
        sum += (f16_to_f32(a[i].d) * f16_to_f32(b[i].d)) * (float)isum;
    }
    *s = sum;
}

// ---------------- IQ4_NL ----------------
int iq4_nearest(float v) {
    int lo = 0, hi = 15;   // binary search on the sorted grid, then the nearer neighbour
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < (float)iq4nl_values[mid]) hi = mid;
        else lo = mid;
    }
    return v - (float)iq4nl_values[lo] <= (float)iq4nl_values[hi] - v ? lo : hi;
}

float iq4_fit(const float *x, int n) {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); mx = x[j]; }
    if (amax == 0.0f) return 0.0f;
    // Candidates put the extreme on -127 + step (steps -9..9): for each, the codes, then the
    // least-squares scale for them; keep the one that explains the most (max sumqx^2 / sumq2).
    float best_s = mx / (float)iq4nl_values[0], best = -1.0f;
    for (int step = -9; step <= 9; step++) {
        const float id = ((float)iq4nl_values[0] + (float)step) / mx;
        double sqx = 0, sqq = 0;
        for (int j = 0; j < n; j++) {
            const float q = (float)iq4nl_values[iq4_nearest(x[j] * id)];
            sqx += (double)q * x[j];
            sqq += (double)q * q;
        }
        if (sqq > 0 && sqx * sqx / sqq > best) {
            best = (float)(sqx * sqx / sqq);
            best_s = (float)(sqx / sqq);
        }
    }
    return best_s;
}

void ref_to_float_iq4_nl(const void *src, float *dst, int64_t n) {
    const tv_block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            dst[i * 32 + j] = d * (float)iq4nl_values[b[i].qs[j] & 0x0F];
            dst[i * 32 + j + 16] = d * (float)iq4nl_values[b[i].qs[j] >> 4];
        }
    }
}

void ref_from_float_iq4_nl(const float *src, void *dst, int64_t n) {
    tv_block_iq4_nl *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        b[i].d = f32_to_f16(iq4_fit(x, 32));
        const float d = f16_to_f32(b[i].d), id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[32];
        for (int j = 0; j < 32; j++) q[j] = iq4_nearest(x[j] * id);
        pack_nibbles(q, b[i].qs, NULL);
    }
}

void ref_vec_dot_iq4_nl(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_iq4_nl *a = w;
    const tv_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++)
            isum += iq4nl_values[a[i].qs[j] & 0x0F] * b[i].qs[j] + iq4nl_values[a[i].qs[j] >> 4] * b[i].qs[j + 16];
        sum += (f16_to_f32(a[i].d) * f16_to_f32(b[i].d)) * (float)isum;
    }
    *s = sum;
}
