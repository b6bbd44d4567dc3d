// kernels_impl.h — private interface between the kernel files (not for use outside src/kernels/).
//
// ref/*.c     scalar reference kernels (the semantics every fast path must reproduce)
// types.c     the reference traits table (names, block sizes, ref kernels)
// x86/*.c     ISA kernels; dispatch.c installs them over a copy of the reference table
#ifndef TV_KERNELS_IMPL_H
#define TV_KERNELS_IMPL_H

#include <math.h>

#include "kernels/kernels.h"
#include "kernels/pack_layout.h"

// The reference table, indexed by tv_type; entries with name == NULL are unknown ids.
extern const tv_type_traits ref_table[TV_TYPE_COUNT];

// ---- ref/ref_float.c: F32, F16, BF16 (vec_dot_type F32: the activation row stays float) ----
void ref_to_float_f32(const void *src, float *dst, int64_t n);
void ref_from_float_f32(const float *src, void *dst, int64_t n);
void ref_vec_dot_f32(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_f16(const void *src, float *dst, int64_t n);
void ref_from_float_f16(const float *src, void *dst, int64_t n);
void ref_vec_dot_f16(int64_t n, float *s, const void *w, const void *x);   // w f16, x f32
void ref_to_float_bf16(const void *src, float *dst, int64_t n);
void ref_from_float_bf16(const float *src, void *dst, int64_t n);
void ref_vec_dot_bf16(int64_t n, float *s, const void *w, const void *x);  // w bf16, x f32
void ref_axpy_f32(int64_t n, float a, const void *x, float *y);
void ref_axpy_f16(int64_t n, float a, const void *x, float *y);
void ref_axpy_bf16(int64_t n, float a, const void *x, float *y);

// ---- ref/ref_q.c: Q8_0, Q4_0 (vec_dot_type Q8_0) ----
void ref_to_float_q8_0(const void *src, float *dst, int64_t n);
void ref_from_float_q8_0(const float *src, void *dst, int64_t n);
void ref_vec_dot_q8_0(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q4_0(const void *src, float *dst, int64_t n);
void ref_from_float_q4_0(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_0(int64_t n, float *s, const void *w, const void *x);
// packed layout (kernels.h): scalar repack and GEMM (bit-exact canonical chain, fmaf per block)
void ref_repack_q8_0(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_q4_0(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_gemm_packed_q8_0(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                             const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_q4_0(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                             const void *x, size_t xrs, float *y, int64_t ys);

// ---- ref/ref_k.c: Q4_K, Q6_K (vec_dot_type Q8_K), Q8_K (activations); every K-quant's packed layout ----
void ref_to_float_q4_K(const void *src, float *dst, int64_t n);
void ref_from_float_q4_K(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_K(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q6_K(const void *src, float *dst, int64_t n);
void ref_from_float_q6_K(const float *src, void *dst, int64_t n);
void ref_vec_dot_q6_K(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q8_K(const void *src, float *dst, int64_t n);
void ref_from_float_q8_K(const float *src, void *dst, int64_t n);
// packed layout (kernels.h): scalar repack and GEMM computing the canonical chain of ref_k.c
void ref_repack_q4_K(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_q5_K(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_q6_K(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_q3_K(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_q2_K(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_repack_iq4_xs(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);
void ref_gemm_packed_q4_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_q5_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_q6_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_q3_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_q2_K(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                          const void *x, size_t xrs, float *y, int64_t ys);
void ref_gemm_packed_iq4_xs(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                            const void *x, size_t xrs, float *y, int64_t ys);

// Best (scale, min) for x (n <= 256) ≈ scale * q - min, q in 0..nmax, min >= 0 (a grid of step sizes,
// each refit by least squares). Returns the squared error. Shared by the affine K-quant quantizers.
float ref_fit_affine(const float *x, int n, int nmax, float *scale_out, float *min_out);

// ---- ref/ref_qx.c: Q4_1, Q5_1 (vec_dot_type Q8_1), Q5_0, IQ4_NL (Q8_0), Q8_1 (activations) ----
void ref_to_float_q4_1(const void *src, float *dst, int64_t n);
void ref_from_float_q4_1(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_1(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q5_0(const void *src, float *dst, int64_t n);
void ref_from_float_q5_0(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_0(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q5_1(const void *src, float *dst, int64_t n);
void ref_from_float_q5_1(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_1(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q8_1(const void *src, float *dst, int64_t n);
void ref_from_float_q8_1(const float *src, void *dst, int64_t n);
void ref_to_float_iq4_nl(const void *src, float *dst, int64_t n);
void ref_from_float_iq4_nl(const float *src, void *dst, int64_t n);
void ref_vec_dot_iq4_nl(int64_t n, float *s, const void *w, const void *x);
// The IQ4_NL/IQ4_XS grid (sorted), the index of its value nearest to v, and the least-squares
// scale of the best of a few candidate grids for x (n values; 0 for all-zero x).
extern const int8_t iq4nl_values[16];
extern const uint8_t iq4nl_values_u8[16];   // iq4nl_values + 128 (unsigned bytes for u8 x s8 dots)
int iq4_nearest(float v);
float iq4_fit(const float *x, int n);

// ---- ref/ref_kx.c: Q2_K, Q3_K, Q5_K, IQ4_XS (vec_dot_type Q8_K) ----
void ref_to_float_q2_K(const void *src, float *dst, int64_t n);
void ref_from_float_q2_K(const float *src, void *dst, int64_t n);
void ref_vec_dot_q2_K(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q3_K(const void *src, float *dst, int64_t n);
void ref_from_float_q3_K(const float *src, void *dst, int64_t n);
void ref_vec_dot_q3_K(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_q5_K(const void *src, float *dst, int64_t n);
void ref_from_float_q5_K(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_K(int64_t n, float *s, const void *w, const void *x);
void ref_to_float_iq4_xs(const void *src, float *dst, int64_t n);
void ref_from_float_iq4_xs(const float *src, void *dst, int64_t n);
void ref_vec_dot_iq4_xs(int64_t n, float *s, const void *w, const void *x);

// Q4_K 6-bit scale/min unpacking: sub-block j in 0..7 of the 12 packed bytes.
static inline void q4_K_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q3_K 6-bit scale i (0..15, stored with +32) from the 12 packed bytes.
static inline int q3_K_scale(const uint8_t *sc, int i) {
    const int lo = i < 8 ? (sc[i] & 0x0F) : (sc[i - 8] >> 4);
    return lo | (((sc[8 + i % 4] >> (2 * (i / 4))) & 3) << 4);
}

// Q4_K / Q5_K super-block against a Q8_K block: the exact int32 sums sum_j sc_j * dot_j (dot_j: the
// codes of sub-block j times the activation quants) and sum_j m_j * (bsums[2j] + bsums[2j+1]).
// qh: NULL for Q4_K (codes 0..15), Q5_K's fifth bits (codes 0..31).
static inline void q4_K_dot_ints(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, const tv_block_q8_K *b,
                                 int32_t *sumi, int32_t *summ) {
    *sumi = *summ = 0;
    for (int j = 0; j < 8; j++) {   // sub-block j: nibble j & 1 of qs bytes 32 (j / 2) ..
        uint8_t sc, m;
        q4_K_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        const int8_t *y = b->qs + 32 * j;
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += ((q[l] >> (4 * (j & 1)) & 0x0F) | (qh ? ((qh[l] >> j) & 1) << 4 : 0)) * y[l];
        *sumi += sc * s;
        *summ += m * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
}
// Q4_K / Q5_K quantizer's scales: fits each of the 8 sub-blocks of x (256 values) as scale * q - min,
// q in 0..nmax (ref_fit_affine), stores the super-block's f16 d and dmin (largest / 63) and the 12
// packed scale bytes, and returns the 6-bit scales and mins the codes are then quantized with.
void ref_q4_K_fit_scales(const float *x, int nmax, tv_f16 *d, tv_f16 *dmin, uint8_t scales[TV_K_SCALE_SIZE],
                         uint8_t sc[8], uint8_t m[8]);

// ---- ref/ref_mxfp4.c: MXFP4 (vec_dot_type Q8_0) ----
void ref_to_float_mxfp4(const void *src, float *dst, int64_t n);
void ref_from_float_mxfp4(const float *src, void *dst, int64_t n);
void ref_vec_dot_mxfp4(int64_t n, float *s, const void *w, const void *x);
void ref_repack_mxfp4(const void *src, size_t srs, int64_t n, int64_t rows, void *dst);
void ref_gemm_packed_mxfp4(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                           const void *x, size_t xrs, float *y, int64_t ys);
// The E8M0 exponent of a block whose largest |x| (NaN skipped) is amax: ggml's floor(log2(amax)) - 2
// + 127 (0 for amax 0), clamped to 0..255. Every path's quantizer takes it from here (libm's log2f:
// the same bits whatever ISA the caller was compiled for).
static inline uint8_t kern_mxfp4_e(float amax) {
    const float fe = amax > 0.0f ? floorf(log2f(amax)) - 2 + 127 : 0.0f;
    return (uint8_t)(fe < 0 ? 0 : fe > 255 ? 255 : fe);
}
// ---- x86 installers (x86/*.c): patch a table with the fast kernels of that ISA ----
// vnni*: use those VNNI dot instructions (the caller checked CPU support): vnni256 = AVX-VNNI
// (VEX), vnni512 = AVX512-VNNI (EVEX). A CPU can have either without the other.
void x86_install_avx2(tv_type_traits *t, bool vnni256);
void x86_install_avx512(tv_type_traits *t, bool vnni512, bool vnni256);
// x86/quants_*.c: Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K, IQ4_XS (called after the above)
void x86_install_quants_avx2(tv_type_traits *t, bool vnni256);
void x86_install_quants_avx512(tv_type_traits *t, bool vnni512);
// x86/kquant_*.c: the packed K-quant kernels (called by the installers above)
void x86_install_kquant_avx512(tv_type_traits *t);   // AVX512-VNNI
void x86_install_kquant_avx2(tv_type_traits *t, bool vnni256);
void x86_install_kq23_avx2(tv_type_traits *t, bool vnni256);   // x86/kq23_avx2.c: packed Q3_K, Q2_K
// MXFP4's vec_dot and GEMM (x86/mxfp4_avx2.c, x86/mxfp4_avx512.c); vnni*: as above
void x86_install_mxfp4_avx2(tv_type_traits *t, bool vnni256);
void x86_install_mxfp4_avx512(tv_type_traits *t, bool vnni512);
// The AVX-512 VNNI packed GEMM (Q4_0 when q4, else Q8_0; the gemm_packed contract), which the AMX
// path keeps for few tokens.
void x86_gemm_packed_vnni512(bool q4, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                             const void *x, size_t xrs, float *y, int64_t ys);
// The AVX-512 VNNI packed IQ4_XS GEMM (x86/kquant_avx512.c), which the AMX path keeps for few tokens.
void x86_gemm_packed_iq4_xs_vnni512(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                    const void *x, size_t xrs, float *y, int64_t ys);
// x86/kern_amx.c (built when the assembler knows AMX: TV_HAVE_AMX): the AMX tile kernels over an
// AVX-512 VNNI table; the caller checked the CPU, the OS's tile state and the tile permission.
void x86_install_amx(tv_type_traits *t);

#endif
