// types.c — the type table (GGUF ids, names, block geometry), row sizes, and f16/bf16 conversion.
//
// Block geometry follows GGUF/ggml: a row of n elements of a quantized type is n / blck_size
// blocks of type_size bytes. Types without kernels here keep their true size (so `info` can print
// any file) and is_supported = false (so loading refuses them). is_supported means "usable as a
// matmul weight": Q8_K has to_float/from_float (it is the K-quant activation format) but no dot.
#include <string.h>
#include <strings.h>

#include "kernels/kernels_impl.h"
#include "util/status.h"

#define PLAIN(nm, sz) { .name = nm, .blck_size = 1, .type_size = sz, .is_quantized = false }
#define UNSUP(nm, bs, sz) { .name = nm, .blck_size = bs, .type_size = sz, .is_quantized = true }

const tv_type_traits ref_table[TV_TYPE_COUNT] = {
    [TV_TYPE_F32] = { .name = "F32", .blck_size = 1, .type_size = 4, .is_supported = true,
                      .to_float = ref_to_float_f32, .from_float = ref_from_float_f32,
                      .vec_dot_type = TV_TYPE_F32, .vec_dot = ref_vec_dot_f32, .axpy = ref_axpy_f32 },
    [TV_TYPE_F16] = { .name = "F16", .blck_size = 1, .type_size = 2, .is_supported = true,
                      .to_float = ref_to_float_f16, .from_float = ref_from_float_f16,
                      .vec_dot_type = TV_TYPE_F32, .vec_dot = ref_vec_dot_f16, .axpy = ref_axpy_f16 },
    [TV_TYPE_BF16] = { .name = "BF16", .blck_size = 1, .type_size = 2, .is_supported = true,
                       .to_float = ref_to_float_bf16, .from_float = ref_from_float_bf16,
                       .vec_dot_type = TV_TYPE_F32, .vec_dot = ref_vec_dot_bf16, .axpy = ref_axpy_bf16 },
    [TV_TYPE_Q8_0] = { .name = "Q8_0", .blck_size = TV_QK8_0, .type_size = sizeof(tv_block_q8_0),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q8_0, .from_float = ref_from_float_q8_0,
                       .vec_dot_type = TV_TYPE_Q8_0, .vec_dot = ref_vec_dot_q8_0,
                       .repack = ref_repack_q8_0, .gemm_packed = ref_gemm_packed_q8_0 },
    [TV_TYPE_Q4_0] = { .name = "Q4_0", .blck_size = TV_QK4_0, .type_size = sizeof(tv_block_q4_0),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q4_0, .from_float = ref_from_float_q4_0,
                       .vec_dot_type = TV_TYPE_Q8_0, .vec_dot = ref_vec_dot_q4_0,
                       .repack = ref_repack_q4_0, .gemm_packed = ref_gemm_packed_q4_0 },
    [TV_TYPE_Q4_K] = { .name = "Q4_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q4_K),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q4_K, .from_float = ref_from_float_q4_K,
                       .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_q4_K,
                       .repack = ref_repack_q4_K, .gemm_packed = ref_gemm_packed_q4_K },
    [TV_TYPE_Q6_K] = { .name = "Q6_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q6_K),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q6_K, .from_float = ref_from_float_q6_K,
                       .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_q6_K,
                       .repack = ref_repack_q6_K, .gemm_packed = ref_gemm_packed_q6_K },
    [TV_TYPE_Q8_K] = { .name = "Q8_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q8_K),
                       .is_quantized = true, .is_supported = false,
                       .to_float = ref_to_float_q8_K, .from_float = ref_from_float_q8_K,
                       .vec_dot_type = TV_TYPE_Q8_K },
#define QTYPE(nm, bs, blk, fn, vdt) { .name = nm, .blck_size = bs, .type_size = sizeof(blk), \
        .is_quantized = true, .is_supported = true, \
        .to_float = ref_to_float_##fn, .from_float = ref_from_float_##fn, .vec_dot_type = vdt, \
        .vec_dot = ref_vec_dot_##fn }
    [TV_TYPE_Q4_1] = QTYPE("Q4_1", 32, tv_block_q4_1, q4_1, TV_TYPE_Q8_1),
    [TV_TYPE_Q5_0] = QTYPE("Q5_0", 32, tv_block_q5_0, q5_0, TV_TYPE_Q8_0),
    [TV_TYPE_Q5_1] = QTYPE("Q5_1", 32, tv_block_q5_1, q5_1, TV_TYPE_Q8_1),
    [TV_TYPE_IQ4_NL] = QTYPE("IQ4_NL", 32, tv_block_iq4_nl, iq4_nl, TV_TYPE_Q8_0),
    [TV_TYPE_Q2_K] = { .name = "Q2_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q2_K),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q2_K, .from_float = ref_from_float_q2_K,
                       .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_q2_K,
                       .repack = ref_repack_q2_K, .gemm_packed = ref_gemm_packed_q2_K },
    [TV_TYPE_Q3_K] = { .name = "Q3_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q3_K),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q3_K, .from_float = ref_from_float_q3_K,
                       .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_q3_K,
                       .repack = ref_repack_q3_K, .gemm_packed = ref_gemm_packed_q3_K },
    [TV_TYPE_Q5_K] = { .name = "Q5_K", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_q5_K),
                       .is_quantized = true, .is_supported = true,
                       .to_float = ref_to_float_q5_K, .from_float = ref_from_float_q5_K,
                       .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_q5_K,
                       .repack = ref_repack_q5_K, .gemm_packed = ref_gemm_packed_q5_K },
    [TV_TYPE_IQ4_XS] = { .name = "IQ4_XS", .blck_size = TV_QK_K, .type_size = sizeof(tv_block_iq4_xs),
                         .is_quantized = true, .is_supported = true,
                         .to_float = ref_to_float_iq4_xs, .from_float = ref_from_float_iq4_xs,
                         .vec_dot_type = TV_TYPE_Q8_K, .vec_dot = ref_vec_dot_iq4_xs,
                         .repack = ref_repack_iq4_xs, .gemm_packed = ref_gemm_packed_iq4_xs },
    [TV_TYPE_Q8_1] = { .name = "Q8_1", .blck_size = 32, .type_size = sizeof(tv_block_q8_1),
                       .is_quantized = true, .is_supported = false,
                       .to_float = ref_to_float_q8_1, .from_float = ref_from_float_q8_1,
                       .vec_dot_type = TV_TYPE_Q8_1 },
    // known, sized, no kernels
    [TV_TYPE_IQ2_XXS] = UNSUP("IQ2_XXS", 256, 66),
    [TV_TYPE_IQ2_XS] = UNSUP("IQ2_XS", 256, 74),
    [TV_TYPE_IQ3_XXS] = UNSUP("IQ3_XXS", 256, 98),
    [TV_TYPE_IQ1_S] = UNSUP("IQ1_S", 256, 50),
    [TV_TYPE_IQ3_S] = UNSUP("IQ3_S", 256, 110),
    [TV_TYPE_IQ2_S] = UNSUP("IQ2_S", 256, 82),
    [TV_TYPE_I8] = PLAIN("I8", 1),
    [TV_TYPE_I16] = PLAIN("I16", 2),
    [TV_TYPE_I32] = PLAIN("I32", 4),
    [TV_TYPE_I64] = PLAIN("I64", 8),
    [TV_TYPE_F64] = PLAIN("F64", 8),
    [TV_TYPE_IQ1_M] = UNSUP("IQ1_M", 256, 56),
    [TV_TYPE_TQ1_0] = UNSUP("TQ1_0", 256, 54),
    [TV_TYPE_TQ2_0] = UNSUP("TQ2_0", 256, 66),
    [TV_TYPE_MXFP4] = { .name = "MXFP4", .blck_size = TV_QK_MXFP4, .type_size = sizeof(tv_block_mxfp4),
                        .is_quantized = true, .is_supported = true,
                        .to_float = ref_to_float_mxfp4, .from_float = ref_from_float_mxfp4,
                        .vec_dot_type = TV_TYPE_Q8_0, .vec_dot = ref_vec_dot_mxfp4,
                        .repack = ref_repack_mxfp4, .gemm_packed = ref_gemm_packed_mxfp4 },
};

const tv_type_traits *kern_traits_ref(tv_type t) {
    if ((int)t < 0 || (int)t >= TV_TYPE_COUNT || ref_table[t].name == NULL) return NULL;
    return &ref_table[t];
}

size_t kern_row_size(tv_type t, int64_t n) {
    const tv_type_traits *tt = kern_traits_ref(t);
    if (!tt || n < 0 || n % tt->blck_size != 0) return 0;
    size_t out;
    if (!mul_ok((size_t)(n / tt->blck_size), tt->type_size, &out)) return 0;
    return out;
}

size_t packed_size(tv_type t, int64_t n, int64_t rows) {
    const tv_type_traits *tt = kern_traits_ref(t);
    size_t row = kern_row_size(t, n), out;
    if (!tt || !tt->repack || !row || rows < 0) return 0;
    size_t groups = (size_t)(rows + TV_PACK_ROWS - 1) / TV_PACK_ROWS;
    if (!mul_ok(groups, (size_t)TV_PACK_ROWS * row, &out)) return 0;
    return out;
}

size_t packed_act_size(int64_t n) { return (size_t)n + (size_t)(n / TV_QK8_0) * 8; }

size_t packed_act_row_size(tv_type t, int64_t n) {
    const tv_type_traits *tt = kern_traits_ref(t);
    if (!tt) return 0;
    return tt->vec_dot_type == TV_TYPE_Q8_0 ? packed_act_size(n) : kern_row_size(tt->vec_dot_type, n);
}

void packed_act_from_float(tv_from_float_fn q8, const float *x, void *row, int64_t n) {
    const int64_t nb = n / TV_QK8_0;
    int8_t *q = row;
    float *d = (float *)(q + n);
    int32_t *sum = (int32_t *)(d + nb);
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {   // 16 blocks per quantizer call (its vector width)
        tv_block_q8_0 blk[16];
        const int64_t m = nb - b0 < 16 ? nb - b0 : 16;
        q8(x + b0 * TV_QK8_0, blk, m * TV_QK8_0);
        for (int64_t b = 0; b < m; b++) {
            int32_t s = 0;
            for (int j = 0; j < TV_QK8_0; j++) s += blk[b].qs[j];
            memcpy(q + (b0 + b) * TV_QK8_0, blk[b].qs, TV_QK8_0);
            d[b0 + b] = f16_to_f32(blk[b].d);
            sum[b0 + b] = s;
        }
    }
}

const char *kern_type_name(tv_type t) {
    const tv_type_traits *tt = kern_traits_ref(t);
    return tt ? tt->name : "?";
}

bool kern_type_from_name(const char *name, tv_type *out) {
    if (!name) return false;
    for (int i = 0; i < TV_TYPE_COUNT; i++) {
        if (ref_table[i].name && strcasecmp(ref_table[i].name, name) == 0) {
            if (out) *out = (tv_type)i;
            return true;
        }
    }
    return false;
}

// ---- IEEE half <-> float, bit manipulation only (no reliance on the FPU's rounding mode) ----
static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float f16_to_f32(tv_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        uint32_t e = 113;                      // 127 - 14: exponent of 2^-14 after normalizing
        while (!(mant & 0x400)) { mant <<= 1; e--; }
        return bits_f32(sign | (e << 23) | ((mant & 0x3FF) << 13));
    }
    if (exp == 31)   // inf; nan comes back quiet with its payload (as F16C's vcvtph2ps does)
        return bits_f32(sign | 0x7F800000u | (mant ? 0x400000u : 0) | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

tv_f16 f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7FFFFFFFu;
    if (x > 0x7F800000u) return (tv_f16)(sign | 0x7E00 | ((x >> 13) & 0x3FF));  // quiet nan, payload top bits
    if (x >= 0x477FF000u) return (tv_f16)(sign | 0x7C00);   // >= 65520 rounds (to even) to inf
    if (x < 0x38800000u) {                                   // below 2^-14: f16 subnormal or zero
        uint32_t e = x >> 23;
        if (e < 102) return sign;                             // < 2^-25: rounds to 0 (2^-25 itself ties to 0 too)
        uint32_t mant = (x & 0x7FFFFF) | 0x800000;            // value = mant * 2^(e-150) = mant * 2^-24 / 2^shift
        uint32_t shift = 126 - e;                             // 14..24
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (tv_f16)(sign | r);
    }
    uint32_t base = x - 0x38000000u;                          // rebias 127 -> 15
    uint32_t h = base >> 13, rem = base & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (tv_f16)(sign | h);
}

tv_bf16 f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (tv_bf16)((x >> 16) | 0x40);   // quiet nan
    return (tv_bf16)((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}
