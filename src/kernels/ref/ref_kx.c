// ref_kx.c — scalar reference kernels for the other 256-element super-block types: Q2_K, Q3_K,
// Q5_K and IQ4_XS (vec_dot_type Q8_K; GGUF layouts).
//
// Q2_K (84 B): u8 scales[16] (low nibble: scale, high nibble: min of sub-block s of 16) | qs[64] |
//   f16 d | f16 dmin. Half h (0..1), shift k (0..3), l < 32: element 128h + 32k + l is
//   (qs[32h + l] >> 2k) & 3, in sub-block 8h + 2k + l/16.        x = d * sc * q - dmin * m   (q 0..3)
// Q3_K (110 B): hmask[32] | qs[64] | scales[12] | f16 d. Element e = 128h + 32k + l: low bits
//   (qs[32h + l] >> 2k) & 3, high bit = bit 4h + k of hmask[l]; q = low + 4 * high - 4 (-4..3).
//   16 6-bit scales (sub-blocks of 16): scale i = low | high << 4 with low = scales[i] & 15 (i < 8)
//   or scales[i - 8] >> 4 (i >= 8), high = (scales[8 + i % 4] >> 2(i / 4)) & 3. x = d * (sc - 32) * q
// Q5_K (176 B): f16 d | f16 dmin | scales[12] (as Q4_K: q4_K_scale_min) | qh[32] | qs[128].
//   Element 64c + l (l < 32): low nibble of qs[32c + l] | bit 2c of qh[l] << 4; element
//   64c + 32 + l: high nibble | bit 2c + 1 << 4.                 x = d * sc * q - dmin * m   (q 0..31)
// IQ4_XS (136 B): f16 d | u16 scales_h | scales_l[4] | qs[128]. Sub-block b (0..7) of 32: scale
//   ls = (scales_l[b/2] >> 4(b%2)) & 15 | ((scales_h >> 2b) & 3) << 4; qs[16b + j] holds element
//   32b + j (low nibble) and 32b + 16 + j (high).               x = d * (ls - 32) * iq4nl_values[q]
// Dequantization is bit-exact with ggml's (tests/fixtures/quant/dequant). vec_dot: exact integer
// sums per super-block, one float combine per super-block (as ref_k.c's Q4_K).
// Quantizers (not ggml's search; error budgets in tests/test_kernels.c): per sub-block a scale
// search (ref_fit_affine, fit_sym, iq4_fit), then the sub-block scales quantized against the
// super-block's largest and a final requantize with the stored scales.
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// ---------------- Q2_K ----------------
void ref_to_float_q2_K(const void *src, float *dst, int64_t n) {
    const tv_block_q2_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        float *y = dst + i * TV_QK_K;
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int half = 0; half < 2; half++) {
                    const uint8_t sc = b[i].scales[8 * h + 2 * k + half];
                    const float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        y[128 * h + 32 * k + l] = dl * (float)((b[i].qs[32 * h + l] >> (2 * k)) & 3) - ml;
                }
    }
}

void ref_from_float_q2_K(const float *src, void *dst, int64_t n) {
    tv_block_q2_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        float scale[16], mn[16], max_s = 0.0f, max_m = 0.0f;
        for (int s = 0; s < 16; s++) {
            ref_fit_affine(x + 16 * s, 16, 3, &scale[s], &mn[s]);
            max_s = fmaxf(max_s, scale[s]);
            max_m = fmaxf(max_m, mn[s]);
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = f32_to_f16(max_s / 15.0f);
        b[i].dmin = f32_to_f16(max_m / 15.0f);
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int s = 0; s < 16; s++) {
            const int sc = d > 0.0f ? clampi((int)lrintf(scale[s] / d), 0, 15) : 0;
            const int m = dmin > 0.0f ? clampi((int)lrintf(mn[s] / dmin), 0, 15) : 0;
            b[i].scales[s] = (uint8_t)(sc | (m << 4));
            const float ds = d * (float)sc, dm = dmin * (float)m, ids = ds > 0.0f ? 1.0f / ds : 0.0f;
            for (int e = 16 * s; e < 16 * s + 16; e++) {   // e = 128h + 32k + l
                const int q = clampi((int)lrintf((x[e] + dm) * ids), 0, 3);
                const int h = e / 128, k = (e % 128) / 32, l = e % 32;
                b[i].qs[32 * h + l] |= (uint8_t)(q << (2 * k));
            }
        }
    }
}

void ref_vec_dot_q2_K(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q2_K *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi = 0, summ = 0;
        for (int sb = 0; sb < 16; sb++) summ += b[i].bsums[sb] * (a[i].scales[sb] >> 4);
        for (int e = 0; e < TV_QK_K; e += 16) {   // sub-block e/16 = 8h + 2k + l/16
            const int h = e / 128, k = (e % 128) / 32, l0 = e % 32;
            int32_t si = 0;
            for (int l = l0; l < l0 + 16; l++) si += ((a[i].qs[32 * h + l] >> (2 * k)) & 3) * b[i].qs[128 * h + 32 * k + l];
            sumi += (a[i].scales[e / 16] & 0x0F) * si;
        }
        sum += b[i].d * (f16_to_f32(a[i].d) * (float)sumi - f16_to_f32(a[i].dmin) * (float)summ);
    }
    *s = sum;
}

// ---------------- Q3_K ----------------
static inline int q3_code(const tv_block_q3_K *b, int e) {   // -4..3
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int low = (b->qs[32 * h + l] >> (2 * k)) & 3, high = (b->hmask[l] >> (4 * h + k)) & 1;
    return low + 4 * high - 4;
}

void ref_to_float_q3_K(const void *src, float *dst, int64_t n) {
    const tv_block_q3_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float d = f16_to_f32(b[i].d);
        for (int sb = 0; sb < 16; sb++) {
            const float dl = d * (float)(q3_K_scale(b[i].scales, sb) - 32);
            for (int e = 16 * sb; e < 16 * sb + 16; e++) dst[i * TV_QK_K + e] = dl * (float)q3_code(&b[i], e);
        }
    }
}

// Best symmetric scale s for x ≈ s * q, q in -nlo..nlo-1 (the extreme on -nlo, or a little inside),
// each candidate refit by least squares; s may be negative. 0 for an all-zero x.
static float fit_sym(const float *x, int n, int nlo) {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); mx = x[j]; }
    if (amax == 0.0f) return 0.0f;
    float best_s = mx / (float)-nlo, best = -1.0f;
    for (int step = 0; step <= 8; step++) {
        const float id = (-(float)nlo + 0.125f * (float)step) / mx;
        double sqx = 0, sqq = 0;
        for (int j = 0; j < n; j++) {
            const int q = clampi((int)lrintf(x[j] * id), -nlo, nlo - 1);
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

void ref_from_float_q3_K(const float *src, void *dst, int64_t n) {
    tv_block_q3_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        float scale[16], amax = 0.0f, mx = 0.0f;
        for (int sb = 0; sb < 16; sb++) {
            scale[sb] = fit_sym(x + 16 * sb, 16, 4);
            if (fabsf(scale[sb]) > amax) { amax = fabsf(scale[sb]); mx = scale[sb]; }
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = f32_to_f16(mx / -32.0f);
        const float d = f16_to_f32(b[i].d);
        for (int sb = 0; sb < 16; sb++) {
            const int ls = d != 0.0f ? clampi((int)lrintf(scale[sb] / d), -32, 31) : 0;
            const int v = ls + 32;
            if (sb < 8) b[i].scales[sb] |= (uint8_t)(v & 0x0F);
            else b[i].scales[sb - 8] |= (uint8_t)((v & 0x0F) << 4);
            b[i].scales[8 + sb % 4] |= (uint8_t)((v >> 4) << (2 * (sb / 4)));
            const float dl = d * (float)ls, idl = dl != 0.0f ? 1.0f / dl : 0.0f;
            for (int e = 16 * sb; e < 16 * sb + 16; e++) {
                const int q = clampi((int)lrintf(x[e] * idl), -4, 3) + 4;   // 0..7
                const int h = e / 128, k = (e % 128) / 32, l = e % 32;
                b[i].qs[32 * h + l] |= (uint8_t)((q & 3) << (2 * k));
                b[i].hmask[l] |= (uint8_t)((q >> 2) << (4 * h + k));
            }
        }
    }
}

void ref_vec_dot_q3_K(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q3_K *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi = 0;
        for (int sb = 0; sb < 16; sb++) {
            int32_t si = 0;
            for (int e = 16 * sb; e < 16 * sb + 16; e++) si += q3_code(&a[i], e) * b[i].qs[e];
            sumi += (q3_K_scale(a[i].scales, sb) - 32) * si;
        }
        sum += f16_to_f32(a[i].d) * b[i].d * (float)sumi;
    }
    *s = sum;
}

// ---------------- Q5_K ----------------
void ref_to_float_q5_K(const void *src, float *dst, int64_t n) {
    const tv_block_q5_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        float *y = dst + i * TV_QK_K;
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            q4_K_scale_min(2 * c, b[i].scales, &sc0, &m0);
            q4_K_scale_min(2 * c + 1, b[i].scales, &sc1, &m1);
            const float d0 = d * (float)sc0, n0 = dmin * (float)m0, d1 = d * (float)sc1, n1 = dmin * (float)m1;
            const uint8_t *q = b[i].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                const int lo = (q[l] & 0x0F) | (((b[i].qh[l] >> (2 * c)) & 1) << 4);
                const int hi = (q[l] >> 4) | (((b[i].qh[l] >> (2 * c + 1)) & 1) << 4);
                y[64 * c + l] = d0 * (float)lo - n0;
                y[64 * c + 32 + l] = d1 * (float)hi - n1;
            }
        }
    }
}

void ref_from_float_q5_K(const float *src, void *dst, int64_t n) {
    tv_block_q5_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        memset(&b[i], 0, sizeof b[i]);
        uint8_t sc[8], m[8];
        ref_q4_K_fit_scales(x, 31, &b[i].d, &b[i].dmin, b[i].scales, sc, m);
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int j = 0; j < 8; j++) {   // j = 2c + h
            const float ds = d * (float)sc[j], dm = dmin * (float)m[j], ids = ds > 0.0f ? 1.0f / ds : 0.0f;
            for (int l = 0; l < 32; l++) {
                const int q = clampi((int)lrintf((x[32 * j + l] + dm) * ids), 0, 31);
                b[i].qs[32 * (j / 2) + l] |= (uint8_t)((q & 0x0F) << (4 * (j % 2)));
                b[i].qh[l] |= (uint8_t)((q >> 4) << j);
            }
        }
    }
}

void ref_vec_dot_q5_K(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q5_K *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi, summ;
        q4_K_dot_ints(a[i].scales, a[i].qs, a[i].qh, &b[i], &sumi, &summ);
        sum += b[i].d * (f16_to_f32(a[i].d) * (float)sumi - f16_to_f32(a[i].dmin) * (float)summ);
    }
    *s = sum;
}

// ---------------- IQ4_XS ----------------
static inline int iq4_xs_scale(const tv_block_iq4_xs *b, int sb) {   // 0..63 (stored + 32)
    return ((b->scales_l[sb / 2] >> (4 * (sb % 2))) & 0x0F) | (((b->scales_h >> (2 * sb)) & 3) << 4);
}

void ref_to_float_iq4_xs(const void *src, float *dst, int64_t n) {
    const tv_block_iq4_xs *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float d = f16_to_f32(b[i].d);
        for (int sb = 0; sb < 8; sb++) {
            const float dl = d * (float)(iq4_xs_scale(&b[i], sb) - 32);
            const uint8_t *q = b[i].qs + 16 * sb;
            float *y = dst + i * TV_QK_K + 32 * sb;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)iq4nl_values[q[j] & 0x0F];
                y[j + 16] = dl * (float)iq4nl_values[q[j] >> 4];
            }
        }
    }
}

void ref_from_float_iq4_xs(const float *src, void *dst, int64_t n) {
    tv_block_iq4_xs *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        float scale[8], amax = 0.0f, mx = 0.0f;
        for (int sb = 0; sb < 8; sb++) {
            scale[sb] = iq4_fit(x + 32 * sb, 32);
            if (fabsf(scale[sb]) > amax) { amax = fabsf(scale[sb]); mx = scale[sb]; }
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = f32_to_f16(mx / -32.0f);
        const float d = f16_to_f32(b[i].d);
        for (int sb = 0; sb < 8; sb++) {
            const int ls = d != 0.0f ? clampi((int)lrintf(scale[sb] / d), -32, 31) : 0;
            b[i].scales_l[sb / 2] |= (uint8_t)(((ls + 32) & 0x0F) << (4 * (sb % 2)));
            b[i].scales_h |= (uint16_t)(((ls + 32) >> 4) << (2 * sb));
            const float dl = d * (float)ls, idl = dl != 0.0f ? 1.0f / dl : 0.0f;
            for (int j = 0; j < 16; j++) {
                const int q0 = iq4_nearest(x[32 * sb + j] * idl), q1 = iq4_nearest(x[32 * sb + 16 + j] * idl);
                b[i].qs[16 * sb + j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    }
}

void ref_vec_dot_iq4_xs(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_iq4_xs *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi = 0;
        for (int sb = 0; sb < 8; sb++) {
            const uint8_t *q = a[i].qs + 16 * sb;
            const int8_t *y = b[i].qs + 32 * sb;
            int32_t si = 0;
            for (int j = 0; j < 16; j++) si += iq4nl_values[q[j] & 0x0F] * y[j] + iq4nl_values[q[j] >> 4] * y[j + 16];
            sumi += (iq4_xs_scale(&a[i], sb) - 32) * si;
        }
        sum += f16_to_f32(a[i].d) * b[i].d * (float)sumi;
    }
    *s = sum;
}
