// ref_k.c — scalar reference kernels for the K-quants Q4_K, Q6_K and their activation type Q8_K, and the
// packed layouts of every K-quant and IQ4_XS (repack and the canonical-chain GEMM).
//
// Q4_K super-block (144 B, 256 elems = 8 sub-blocks of 32):
//   f16 d | f16 dmin | u8 scales[12] (8 × 6-bit scale, 8 × 6-bit min, packed, see q4_K_scale_min)
//   | u8 qs[128]: chunk c (0..3) holds elems 64c..64c+31 in the low nibbles of qs[32c..32c+31] and
//   elems 64c+32..64c+63 in the high nibbles.         x = d * sc[j] * q - dmin * m[j]   (q 0..15)
// Q6_K super-block (210 B, 256 elems = 16 sub-blocks of 16):
//   u8 ql[128] (low 4 bits) | u8 qh[64] (high 2 bits) | int8 scales[16] | f16 d
//   half h (0..1), l (0..31): elems 128h + l + 32k (k = 0..3) take low nibble from
//   ql[64h + l + 32(k&1)] (k<2: low nibble, k>=2: high nibble) and bits 2k..2k+1 of qh[32h + l].
//                                                       x = d * scales[elem/16] * (q - 32)  (q 0..63)
// Q8_K (292 B): f32 d | int8 qs[256] | int16 bsums[16] (sums of 16 consecutive qs); x = d * q.
//
// Quantizers (not ggml's exact search; error budgets measured in tests/test_kernels.c):
//   Q4_K: per sub-block, a grid of 21 candidate step sizes over [min(x,0), max(x)]; for each, the
//   least-squares (scale, min) refit of the rounded codes; keep the lowest squared error. Then
//   6-bit scales/mins relative to the super-block maxima and a final requantize with them.
//   Q6_K: per sub-block, 13 candidate symmetric scales around amax/32 (both signs) each refit by
//   least squares; int8 scales relative to the largest; final requantize.
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels_impl.h"

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// ---------------- Q8_K ----------------
void ref_from_float_q8_K(const float *src, void *dst, int64_t n) {
    tv_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        float amax = 0.0f;
        for (int j = 0; j < TV_QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float id = 127.0f / amax;
        for (int j = 0; j < TV_QK_K; j++) b[i].qs[j] = (int8_t)clampi((int)lrintf(x[j] * id), -127, 127);
        for (int k = 0; k < TV_QK_K / 16; k++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += b[i].qs[16 * k + j];
            b[i].bsums[k] = (int16_t)s;
        }
        b[i].d = amax / 127.0f;
    }
}

void ref_to_float_q8_K(const void *src, float *dst, int64_t n) {
    const tv_block_q8_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++)
        for (int j = 0; j < TV_QK_K; j++) dst[i * TV_QK_K + j] = b[i].d * (float)b[i].qs[j];
}

// ---------------- Q4_K ----------------
void ref_to_float_q4_K(const void *src, float *dst, int64_t n) {
    const tv_block_q4_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        float *y = dst + i * TV_QK_K;
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            q4_K_scale_min(2 * c, b[i].scales, &sc0, &m0);
            q4_K_scale_min(2 * c + 1, b[i].scales, &sc1, &m1);
            float d0 = d * sc0, n0 = dmin * m0, d1 = d * sc1, n1 = dmin * m1;
            const uint8_t *q = b[i].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = d0 * (float)(q[l] & 0x0F) - n0;
                y[64 * c + 32 + l] = d1 * (float)(q[l] >> 4) - n1;
            }
        }
    }
}

float ref_fit_affine(const float *x, int n, int nmax, float *scale_out, float *min_out) {
    float lo = 0.0f, hi = x[0];
    for (int j = 0; j < n; j++) { lo = fminf(lo, x[j]); hi = fmaxf(hi, x[j]); }
    if (hi <= lo) { *scale_out = 0.0f; *min_out = -lo; return 0.0f; }
    float best_err = INFINITY, best_s = (hi - lo) / nmax, best_m = -lo;
    for (int step = -10; step <= 10; step++) {
        float s = (hi - lo) / ((float)nmax + 0.1f * (float)step);
        float is = 1.0f / s;
        // codes for this grid, then least-squares refit of s, m (x ≈ s*q + b, b = -m)
        double sq = 0, sqq = 0, sx = 0, sqx = 0;
        int qv[TV_QK_K];
        for (int j = 0; j < n; j++) {
            qv[j] = clampi((int)lrintf((x[j] - lo) * is), 0, nmax);
            sq += qv[j]; sqq += (double)qv[j] * qv[j]; sx += x[j]; sqx += (double)qv[j] * x[j];
        }
        double det = n * sqq - sq * sq;
        float fs = s, fb = lo;
        if (det > 0) {
            fs = (float)((n * sqx - sq * sx) / det);
            fb = (float)((sqq * sx - sq * sqx) / det);
        }
        if (fb > 0.0f) {               // min must be >= 0 (b <= 0): refit scale with b = 0
            fb = 0.0f;
            fs = sqq > 0 ? (float)(sqx / sqq) : 0.0f;
        }
        if (!(fs > 0.0f)) continue;
        float err = 0.0f, ifs = 1.0f / fs;
        for (int j = 0; j < n; j++) {
            int q = clampi((int)lrintf((x[j] - fb) * ifs), 0, nmax);
            float e = fs * (float)q + fb - x[j];
            err += e * e;
        }
        if (err < best_err) { best_err = err; best_s = fs; best_m = -fb; }
    }
    *scale_out = best_s;
    *min_out = best_m;
    return best_err;
}

void ref_q4_K_fit_scales(const float *x, int nmax, tv_f16 *d_out, tv_f16 *dmin_out, uint8_t scales[TV_K_SCALE_SIZE],
                         uint8_t sc[8], uint8_t m[8]) {
    float scale[8], mn[8], max_s = 0.0f, max_m = 0.0f;
    for (int j = 0; j < 8; j++) {
        ref_fit_affine(x + 32 * j, 32, nmax, &scale[j], &mn[j]);
        max_s = fmaxf(max_s, scale[j]);
        max_m = fmaxf(max_m, mn[j]);
    }
    *d_out = f32_to_f16(max_s / 63.0f);
    *dmin_out = f32_to_f16(max_m / 63.0f);
    const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);   // requantize against the stored values
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? clampi((int)lrintf(scale[j] / d), 0, 63) : 0);
        m[j] = (uint8_t)(dmin > 0.0f ? clampi((int)lrintf(mn[j] / dmin), 0, 63) : 0);
    }
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        scales[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        scales[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
    }
}

void ref_from_float_q4_K(const float *src, void *dst, int64_t n) {
    tv_block_q4_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        uint8_t sc[8], m[8];
        ref_q4_K_fit_scales(x, 15, &b[i].d, &b[i].dmin, b[i].scales, sc, m);
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int c = 0; c < 4; c++) {
            for (int h = 0; h < 2; h++) {
                int j = 2 * c + h;
                float ds = d * sc[j], dm = dmin * m[j];
                float ids = ds > 0.0f ? 1.0f / ds : 0.0f;
                for (int l = 0; l < 32; l++) {
                    int q = clampi((int)lrintf((x[32 * j + l] + dm) * ids), 0, 15);
                    if (h == 0) b[i].qs[32 * c + l] = (uint8_t)q;
                    else b[i].qs[32 * c + l] |= (uint8_t)(q << 4);
                }
            }
        }
    }
}

void ref_vec_dot_q4_K(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q4_K *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi, summ;
        q4_K_dot_ints(a[i].scales, a[i].qs, NULL, &b[i], &sumi, &summ);
        sum += b[i].d * (f16_to_f32(a[i].d) * (float)sumi - f16_to_f32(a[i].dmin) * (float)summ);
    }
    *s = sum;
}

// ---------------- Q6_K ----------------
static inline int q6_code(const tv_block_q6_K *b, int e) {   // e in 0..255 -> 0..63
    int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
    uint8_t lo = b->ql[64 * h + l + 32 * (k & 1)];
    int low = (k < 2) ? (lo & 0x0F) : (lo >> 4);
    int high = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return low | (high << 4);
}

void ref_to_float_q6_K(const void *src, float *dst, int64_t n) {
    const tv_block_q6_K *b = src;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        float d = f16_to_f32(b[i].d);
        for (int e = 0; e < TV_QK_K; e++)
            dst[i * TV_QK_K + e] = d * (float)b[i].scales[e / 16] * (float)(q6_code(&b[i], e) - 32);
    }
}

// Best symmetric scale for x ≈ s * q, q in -32..31. Returns s (may be negative).
static float fit_symmetric(const float *x, int n) {
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < n; j++) if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); m = x[j]; }
    if (amax == 0.0f) return 0.0f;
    float best_err = INFINITY, best_s = m / -32.0f;
    for (int step = -6; step <= 6; step++) {
        float s = m / (-32.0f + 0.25f * (float)step);    // the extreme lands on -32 .. -30.5 or so
        float is = 1.0f / s;
        double sqx = 0, sqq = 0;
        for (int j = 0; j < n; j++) {
            int q = clampi((int)lrintf(x[j] * is), -32, 31);
            sqx += (double)q * x[j]; sqq += (double)q * q;
        }
        if (sqq <= 0) continue;
        float fs = (float)(sqx / sqq), ifs = 1.0f / fs, err = 0.0f;
        for (int j = 0; j < n; j++) {
            int q = clampi((int)lrintf(x[j] * ifs), -32, 31);
            float e = fs * (float)q - x[j];
            err += e * e;
        }
        if (err < best_err) { best_err = err; best_s = fs; }
    }
    return best_s;
}

void ref_from_float_q6_K(const float *src, void *dst, int64_t n) {
    tv_block_q6_K *b = dst;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        float scale[16], amax = 0.0f;
        for (int k = 0; k < 16; k++) {
            scale[k] = fit_symmetric(x + 16 * k, 16);
            amax = fmaxf(amax, fabsf(scale[k]));
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = f32_to_f16(amax / 127.0f);
        float d = f16_to_f32(b[i].d);
        int q[TV_QK_K];
        for (int k = 0; k < 16; k++) {
            int sc = d > 0.0f ? clampi((int)lrintf(scale[k] / d), -128, 127) : 0;
            b[i].scales[k] = (int8_t)sc;
            float ds = d * (float)sc, ids = ds != 0.0f ? 1.0f / ds : 0.0f;
            for (int j = 0; j < 16; j++) q[16 * k + j] = clampi((int)lrintf(x[16 * k + j] * ids), -32, 31) + 32;
        }
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l++) {
                const int *qq = q + 128 * h + l;   // qq[0], qq[32], qq[64], qq[96]
                b[i].ql[64 * h + l] = (uint8_t)((qq[0] & 0x0F) | ((qq[64] & 0x0F) << 4));
                b[i].ql[64 * h + l + 32] = (uint8_t)((qq[32] & 0x0F) | ((qq[96] & 0x0F) << 4));
                b[i].qh[32 * h + l] = (uint8_t)((qq[0] >> 4) | ((qq[32] >> 4) << 2) | ((qq[64] >> 4) << 4) |
                                                ((qq[96] >> 4) << 6));
            }
        }
    }
}

void ref_vec_dot_q6_K(int64_t n, float *s, const void *w, const void *x) {
    const tv_block_q6_K *a = w;
    const tv_block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        int32_t sumi = 0;
        for (int k = 0; k < 16; k++) {
            int32_t sk = 0;
            for (int j = 0; j < 16; j++) sk += (q6_code(&a[i], 16 * k + j) - 32) * b[i].qs[16 * k + j];
            sumi += a[i].scales[k] * sk;
        }
        sum += f16_to_f32(a[i].d) * b[i].d * (float)sumi;
    }
    *s = sum;
}

// ---------------- packed layouts (kernels.h "packed weights"): scalar repack and GEMM ----------------
// The canonical chain every packed K-quant kernel computes, per (row, token), x a Q8_K row:
//   acc = 0; for each super-block i in order:
//     Q4_K, Q5_K: u = 0; for sub-block j = 0..7: u = fma((float)isum_j, d * sc_j, u)
//                 u = fma((float)sum_j mn_j * (bsums[2j] + bsums[2j+1]), -dmin, u)
//     Q6_K:       u = 0; for sub-block j = 0..15: u = fma((float)isum_j, d * sc_j, u)
//                 u = fma((float)sum_j sc_j * bsums[j], -32 * d, u)        (the codes' -32 offset)
//     Q3_K:       u = 0; for sub-block j = 0..15: u = fma((float)isum_j, d * (sc_j - 32), u)
//                 u = fma((float)sum_j (sc_j - 32) * bsums[j], -4 * d, u)  (the codes' -4 offset)
//     Q2_K:       u = 0; for sub-block j = 0..15: u = fma((float)isum_j, d * sc_j, u)
//                 u = fma((float)sum_j mn_j * bsums[j], -dmin, u)
//     IQ4_XS:     u = 0; for sub-block j = 0..7: u = fma((float)isum_j, d * (ls_j - 32), u)
//     acc = fma(u, x.d, acc)
//   y = acc
// isum_j is the exact int32 dot of sub-block j's codes (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63, Q3_K
// low + 4 * high 0..7, Q2_K 0..3; IQ4_XS the grid values iq4nl_values[q], -127..113) with the
// activation quants; d * sc_j, -dmin, -32 * d and -4 * d are exact in float, and so is every int32
// above (|isum| < 2^19, the offset sums < 2^23), so a kernel only has to keep the fma order. (An
// IQ4_XS kernel may dot grid values + 128 as unsigned bytes and take 128 * the sub-block's
// activation sum off: the same exact isum_j.)
typedef struct pk_kind {
    size_t blk, body;   // bytes of a plain block; of a packed group's super-block
    int n_dwords;       // the block's dwords that go into the body (after its f16 head)
    size_t body_at;     // where they start in the plain block
    int n_f16;          // 16-bit fields at the block's start (Q4_K/Q5_K d, dmin; IQ4_XS d, scales_h)
                        // or end (Q6_K, Q3_K d; Q2_K d, dmin), in front of the body's dwords
    bool f16_end;       // the 16-bit fields end the block and the body is the rest, as stored
} pk_kind;
static const pk_kind PK_Q4_K = { sizeof(tv_block_q4_K), PK_Q4K_BODY, 35, 4, 2, false };   // d dmin | scales qs
static const pk_kind PK_Q5_K = { sizeof(tv_block_q5_K), PK_Q5K_BODY, 43, 4, 2, false };   // d dmin | scales codes
static const pk_kind PK_Q6_K = { sizeof(tv_block_q6_K), PK_Q6K_BODY, 52, 0, 1, true };    // d | scales | codes (ql qh)
static const pk_kind PK_Q3_K = { sizeof(tv_block_q3_K), PK_Q3K_BODY, 27, 0, 1, true };    // d | scales | hmask qs
static const pk_kind PK_Q2_K = { sizeof(tv_block_q2_K), PK_Q2K_BODY, 20, 0, 2, true };    // d dmin | scales qs
static const pk_kind PK_IQ4_XS = { sizeof(tv_block_iq4_xs), PKX_BODY, 33, 4, 2, false };   // d sh | scales_l qs
// what repack_k builds from PK_IQ4_XS (16-bit d, scales_h of 16 rows, then dwords from plain byte 4:
// scales_l, qs) is pack_layout.h's IQ4_XS body, which every reader addresses
_Static_assert(PKX_BODY == TV_PACK_ROWS * sizeof(tv_block_iq4_xs) && PKX_D == 0 && PKX_SH == 2 * TV_PACK_ROWS &&
                   PKX_SL == 4 * TV_PACK_ROWS && PKX_QS == 8 * TV_PACK_ROWS,
               "IQ4_XS: repack_k's body and pack_layout.h disagree");
_Static_assert(PK_Q4K_BODY == TV_PACK_ROWS * sizeof(tv_block_q4_K) && PK_Q5K_BODY == TV_PACK_ROWS * sizeof(tv_block_q5_K) &&
                   PK_Q6K_BODY == TV_PACK_ROWS * sizeof(tv_block_q6_K) && PK_Q3K_BODY == TV_PACK_ROWS * sizeof(tv_block_q3_K) &&
                   PK_Q2K_BODY == TV_PACK_ROWS * sizeof(tv_block_q2_K),
               "a K-quant body is 16 plain blocks");
// The 16-bit fields (16 rows each) head the body, then the scales, then the codes (Q6_K's and Q3_K's
// scales, stored last, come first), so a super-block is one stretch of memory, read front to back
// (IQ4_XS: pack_layout.h, which test_kernels test_pack_layout holds to this repack)

// Plain block byte offset of body dword k: Q6_K and Q3_K store their scales after the codes and the
// packed body puts them first; the others keep the block's order.
static size_t pk_src(const pk_kind *kd, int k) {
    const size_t k4 = 4 * (size_t)k;
    if (kd == &PK_Q6_K) return k < 4 ? offsetof(tv_block_q6_K, scales) + k4 : k4 - 16;   // scales | ql qh
    if (kd == &PK_Q3_K) return k < 3 ? offsetof(tv_block_q3_K, scales) + k4 : k4 - 12;   // scales | hmask qs
    return kd->body_at + k4;
}

// Q6_K packed codes: ql and qh (192 bytes) become 192 code bytes, 48 for each 64 elements (a quarter
// jq: sub-blocks 4jq..4jq+3): bits 0..5 of byte 48jq + r are the code of element 64jq + r (r < 48),
// bits 6..7 of bytes 48jq + 12n + 4f + b (f = 0..2) bits 2f..2f+1 of the code of element
// 64jq + 48 + 4n + b (n, b < 4). In the body's code dwords: dword 12jq + m (m < 12) holds the codes of
// elements 64jq + 4m.. (one mask), and dwords 12jq + 3n..+2 those of elements 64jq + 48 + 4n..
// (two shifts): each quarter's fourth sub-block is put together from the vectors of its first three.
static void q6k_pack_codes(tv_block_q6_K *b) {
    uint8_t c[192] = { 0 };
    for (int e = 0; e < TV_QK_K; e++) {
        const int jq = e / 64, r = e % 64, q = q6_code(b, e);
        if (r < 48) c[48 * jq + r] |= (uint8_t)q;
        else
            for (int f = 0; f < 3; f++) c[48 * jq + 12 * ((r - 48) / 4) + 4 * f + r % 4] |= (uint8_t)(((q >> (2 * f)) & 3) << 6);
    }
    memcpy(b->ql, c, 128);
    memcpy(b->qh, c + 128, 64);
}

// Q5_K packed codes: qh and qs (160 bytes) become 160 code bytes (in their place, from qh on), 20 for
// each sub-block j: bits 3..7 of byte 20j + r (r < 20) are the code of element 32j + r (code x 8: one
// mask); bits 0..2 (spare) of bytes 20j + 4m + b carry the codes of elements 32j + 20 + 4n + b (n, b <
// 4): bits 2..4 of the code of n = m in bytes m < 3; bits 0..1 of n = 0 (m = 3) and n = 1 (m = 4) in
// bits 0..1; bits 0, 1 of n = 2 in bit 2 of bytes m = 3, 4. In body dwords: dword 5j + m (m < 5) holds
// the codes x 8 of elements 32j + 4m.. (one mask), and dwords 5j..5j + 4 those of elements 32j + 20 +
// 4n.. (shifts and merges): each sub-block is read from its own 5 dwords, front to back.
static void q5k_pack_codes(tv_block_q5_K *b) {
    uint8_t c[160] = { 0 };
    for (int e = 0; e < TV_QK_K; e++) {
        const int j = e / 32, r = e % 32, rb = 20 * j + r % 4;
        const uint8_t qs = b->qs[32 * (j / 2) + r];   // nibble j & 1, fifth bit: bit j of qh[r]
        const int q = ((j & 1) ? qs >> 4 : qs & 0x0F) | ((b->qh[r] >> j) & 1) << 4;
        if (r < 20) {
            c[20 * j + r] |= (uint8_t)(q << 3);
        } else {
            const int n = (r - 20) / 4;
            c[rb + 4 * n] |= (uint8_t)(q >> 2);
            if (n < 2) c[rb + 4 * (3 + n)] |= (uint8_t)(q & 3);
            else c[rb + 12] |= (uint8_t)((q & 1) << 2), c[rb + 16] |= (uint8_t)((q & 2) << 1);
        }
    }
    static_assert(offsetof(tv_block_q5_K, qs) == offsetof(tv_block_q5_K, qh) + 32, "q5_K qh | qs");
    memcpy((uint8_t *)b + offsetof(tv_block_q5_K, qh), c, 160);
}
static void repack_k(const pk_kind *kd, const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    const int64_t nb = n / TV_QK_K;
    const size_t f16_at = kd->f16_end ? kd->blk - 2 * (size_t)kd->n_f16 : 0;
    for (int64_t g = 0; g * TV_PACK_ROWS < rows; g++) {
        uint8_t *gb = (uint8_t *)dst + (size_t)g * TV_PACK_ROWS * srs;
        const size_t head = (size_t)kd->n_f16 * 2 * TV_PACK_ROWS;   // bytes before the dwords
        for (int l = 0; l < TV_PACK_ROWS; l++) {
            const int64_t r = g * TV_PACK_ROWS + l;
            const uint8_t *row = r < rows ? (const uint8_t *)src + (size_t)r * srs : NULL;
            for (int64_t i = 0; i < nb; i++) {
                uint8_t blk[sizeof(tv_block_q6_K)] = { 0 };   // the largest of them
                if (row) memcpy(blk, row + (size_t)i * kd->blk, kd->blk);
                if (kd == &PK_Q6_K) q6k_pack_codes((tv_block_q6_K *)blk);
                if (kd == &PK_Q5_K) q5k_pack_codes((tv_block_q5_K *)blk);
                uint8_t *pb = gb + (size_t)i * kd->body;
                for (int k = 0; k < kd->n_dwords; k++)
                    memcpy(pb + head + ((size_t)k * TV_PACK_ROWS + l) * 4, blk + pk_src(kd, k), 4);
                for (int f = 0; f < kd->n_f16; f++)
                    memcpy(pb + (size_t)f * 2 * TV_PACK_ROWS + 2 * l, blk + f16_at + 2 * (size_t)f, 2);
            }
        }
    }
}
void ref_repack_q4_K(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_Q4_K, src, srs, n, rows, dst);
}
void ref_repack_q5_K(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_Q5_K, src, srs, n, rows, dst);
}
void ref_repack_q6_K(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_Q6_K, src, srs, n, rows, dst);
}
void ref_repack_q3_K(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_Q3_K, src, srs, n, rows, dst);
}
void ref_repack_q2_K(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_Q2_K, src, srs, n, rows, dst);
}
void ref_repack_iq4_xs(const void *src, size_t srs, int64_t n, int64_t rows, void *dst) {
    repack_k(&PK_IQ4_XS, src, srs, n, rows, dst);
}

// Byte b of row l's dword stream in a packed super-block body.
static inline uint8_t pk_byte(const uint8_t *body, int l, int b) {
    return body[((size_t)(b / 4) * TV_PACK_ROWS + l) * 4 + b % 4];
}

// Code of element r (< 32) of sub-block j of row l in a packed Q5_K body (q5k_pack_codes).
static int q5k_code(const uint8_t *pb, int l, int j, int r) {
    const int o = 20 * j + r;
    if (r < 20) return pk_byte(pb, l, o) >> 3;
    const int lo = r < 28 ? pk_byte(pb, l, o - 8) & 3
                          : (pk_byte(pb, l, o - 16) >> 2 & 1) | (pk_byte(pb, l, o - 12) >> 2 & 1) << 1;
    return (pk_byte(pb, l, o - 20) & 7) << 2 | lo;
}

static void gemm_packed_k(const pk_kind *kd, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK_K;
    const bool q6 = kd == &PK_Q6_K, q5 = kd == &PK_Q5_K, iq4 = kd == &PK_IQ4_XS, q3 = kd == &PK_Q3_K, q2 = kd == &PK_Q2_K;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *gb = (const uint8_t *)w + (size_t)(r / TV_PACK_ROWS) * TV_PACK_ROWS * wrs;
        const int l = (int)(r % TV_PACK_ROWS);
        for (int64_t t = 0; t < nt; t++) {
            const tv_block_q8_K *xb = (const tv_block_q8_K *)((const uint8_t *)x + (size_t)t * xrs);
            float acc = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                const uint8_t *pb = gb + (size_t)i * kd->body;
                tv_f16 dh;
                memcpy(&dh, pb + 2 * l, 2);   // every body starts with its f16 d
                const float d = f16_to_f32(dh);
                float u = 0.0f;
                int32_t offs = 0;
                if (iq4) {   // pack_layout.h: qs bytes 0..127, scales_l bytes 0..3, u16 scales_h
                    const uint8_t *pq = gb + pkx_qs(nb, i), *ps = gb + pkx_sl(nb, i);
                    uint16_t sh;
                    memcpy(&sh, gb + pkx_sh(nb, i) + 2 * l, 2);
                    for (int j = 0; j < 8; j++) {
                        const int ls = ((pk_byte(ps, l, j / 2) >> (4 * (j % 2))) & 0x0F) | ((sh >> (2 * j)) & 3) << 4;
                        int32_t isum = 0;
                        for (int e = 0; e < 16; e++) {   // qs byte 16j + e: elements 32j + e (low), 32j + 16 + e (high)
                            const uint8_t q = pk_byte(pq, l, 16 * j + e);
                            isum += iq4nl_values[q & 0x0F] * xb[i].qs[32 * j + e] + iq4nl_values[q >> 4] * xb[i].qs[32 * j + 16 + e];
                        }
                        u = fmaf((float)isum, d * (float)(ls - 32), u);
                    }
                } else if (q3 || q2) {   // Q3_K: f16 d | body bytes: scales 0..11 | hmask 0..31 | qs 0..63;
                                         // Q2_K: f16 d | f16 dmin | scales 0..15 | qs 0..63
                    const uint8_t *ps = pb + (q3 ? 2 : 4) * TV_PACK_ROWS, *pc = ps + (q3 ? 12 : 16) * TV_PACK_ROWS;
                    uint8_t sc12[TV_K_SCALE_SIZE] = { 0 };
                    for (int b = 0; b < TV_K_SCALE_SIZE && q3; b++) sc12[b] = pk_byte(ps, l, b);
                    for (int j = 0; j < 16; j++) {   // sub-block j = 8h + 2k + half: elements 128h + 32k + 16 half ..
                        const int h = j / 8, k = j % 8 / 2, half = j % 2;
                        const int sc = q3 ? q3_K_scale(sc12, j) - 32 : pk_byte(ps, l, j) & 0x0F;
                        int32_t isum = 0;
                        for (int e = 0; e < 16; e++) {   // qs byte 32h + 16 half + e, bits 2k..; hmask byte 16 half + e, bit 4h + k
                            int code = (pk_byte(pc, l, (q3 ? 32 : 0) + 32 * h + 16 * half + e) >> (2 * k)) & 3;
                            if (q3) code |= ((pk_byte(pc, l, 16 * half + e) >> (4 * h + k)) & 1) << 2;
                            isum += code * xb[i].qs[16 * j + e];
                        }
                        u = fmaf((float)isum, d * (float)sc, u);
                        offs += (q3 ? sc : pk_byte(ps, l, j) >> 4) * xb[i].bsums[j];
                    }
                    if (q2) memcpy(&dh, pb + 2 * TV_PACK_ROWS + 2 * l, 2);
                    u = fmaf((float)offs, q3 ? -4.0f * d : -f16_to_f32(dh), u);
                } else if (!q6) {   // f16 d | f16 dmin (16 rows each) | body bytes: scales | Q4_K qs 0..127
                                    // or Q5_K codes 0..159
                    const uint8_t *ps = pb + 4 * TV_PACK_ROWS, *pq = ps + 12 * TV_PACK_ROWS;
                    uint8_t sc12[TV_K_SCALE_SIZE];
                    for (int b = 0; b < TV_K_SCALE_SIZE; b++) sc12[b] = pk_byte(ps, l, b);
                    for (int j = 0; j < 8; j++) {
                        uint8_t sc, mn;
                        q4_K_scale_min(j, sc12, &sc, &mn);
                        int32_t isum = 0;
                        for (int e = 0; e < 32; e++) {   // Q4_K sub-block j: nibble j & 1 of qs bytes 32 (j / 2) + e
                            const uint8_t q = pk_byte(pq, l, 32 * (j / 2) + e);
                            const int code = q5 ? q5k_code(pq, l, j, e) : (j & 1) ? q >> 4 : q & 0x0F;
                            isum += code * xb[i].qs[32 * j + e];
                        }
                        u = fmaf((float)isum, d * (float)sc, u);
                        offs += mn * (xb[i].bsums[2 * j] + xb[i].bsums[2 * j + 1]);
                    }
                    memcpy(&dh, pb + 2 * TV_PACK_ROWS + 2 * l, 2);
                    u = fmaf((float)offs, -f16_to_f32(dh), u);
                } else {   // f16 d (16 rows) | body bytes: scales 0..15 | codes 0..191
                    const uint8_t *ps = pb + 2 * TV_PACK_ROWS, *pq = ps + 16 * TV_PACK_ROWS;
                    for (int j = 0; j < 16; j++) {
                        const int sc = (int8_t)pk_byte(ps, l, j);
                        int32_t isum = 0;
                        for (int e = 16 * j; e < 16 * j + 16; e++) {   // element e: see q6k_pack_codes
                            const int jq = e / 64, er = e % 64, o = 48 * jq + 12 * ((er - 48) / 4) + er % 4;
                            const int q = er < 48 ? pk_byte(pq, l, 48 * jq + er) & 0x3F
                                                 : pk_byte(pq, l, o) >> 6 | (pk_byte(pq, l, o + 4) >> 6) << 2 |
                                                       (pk_byte(pq, l, o + 8) >> 6) << 4;
                            isum += q * xb[i].qs[e];
                        }
                        u = fmaf((float)isum, d * (float)sc, u);
                        offs += sc * xb[i].bsums[j];
                    }
                    u = fmaf((float)offs, -32.0f * d, u);
                }
                acc = fmaf(u, xb[i].d, acc);
            }
            y[t * ys + r] = acc;
        }
    }
}
void ref_gemm_packed_q4_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_Q4_K, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_q5_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_Q5_K, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_q6_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_Q6_K, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_q3_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_Q3_K, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_q2_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_Q2_K, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
void ref_gemm_packed_iq4_xs(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                            const void *x, size_t xrs, float *y, int64_t ys) {
    gemm_packed_k(&PK_IQ4_XS, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
