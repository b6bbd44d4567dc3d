// kernels.h — tensor element types, their block layouts, and the per-type kernel table.
//
// Type ids are GGUF's (= ggml's) so a tensor's type field maps straight onto tv_type.
// Every type has a traits entry: block size, bytes per block, dequantize (to_float), quantize
// (from_float), and the dot-product/GEMM kernels that multiply a weight row of this type with an
// activation row already converted to traits->vec_dot_type (Q8_0 for Q8_0/Q4_0/Q5_0/IQ4_NL, Q8_1
// for Q4_1/Q5_1, Q8_K for the K-quants and IQ4_XS, F32 for F32/F16/BF16 weights: activations stay f32 and the weight is widened in
// registers, on every path).
// A kern_table is filled by kern_table_init() for one CPU path: the scalar reference kernels (ref/)
// always exist, and ISA kernels (x86/, arm/) replace entries when supported. Block sizes, names and
// activation types are the same on every path (kern_traits_ref, kern_row_size).
// The forward pass never switches on types: it goes through its backend's table and kern_matmul().
#ifndef TV_KERNELS_H
#define TV_KERNELS_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

typedef enum tv_type {
    TV_TYPE_F32 = 0,
    TV_TYPE_F16 = 1,
    TV_TYPE_Q4_0 = 2,
    TV_TYPE_Q4_1 = 3,
    TV_TYPE_Q5_0 = 6,
    TV_TYPE_Q5_1 = 7,
    TV_TYPE_Q8_0 = 8,
    TV_TYPE_Q8_1 = 9,
    TV_TYPE_Q2_K = 10,
    TV_TYPE_Q3_K = 11,
    TV_TYPE_Q4_K = 12,
    TV_TYPE_Q5_K = 13,
    TV_TYPE_Q6_K = 14,
    TV_TYPE_Q8_K = 15,
    TV_TYPE_IQ2_XXS = 16,
    TV_TYPE_IQ2_XS = 17,
    TV_TYPE_IQ3_XXS = 18,
    TV_TYPE_IQ1_S = 19,
    TV_TYPE_IQ4_NL = 20,
    TV_TYPE_IQ3_S = 21,
    TV_TYPE_IQ2_S = 22,
    TV_TYPE_IQ4_XS = 23,
    TV_TYPE_I8 = 24,
    TV_TYPE_I16 = 25,
    TV_TYPE_I32 = 26,
    TV_TYPE_I64 = 27,
    TV_TYPE_F64 = 28,
    TV_TYPE_IQ1_M = 29,
    TV_TYPE_BF16 = 30,
    TV_TYPE_TQ1_0 = 34,
    TV_TYPE_TQ2_0 = 35,
    TV_TYPE_MXFP4 = 39,
    TV_TYPE_COUNT = 40,
} tv_type;

// ---- block layouts (pinned with static_assert; identical to GGUF's on-disk layout) ----
#define TV_QK8_0 32
#define TV_QK4_0 32
#define TV_QK_K 256
#define TV_K_SCALE_SIZE 12

typedef uint16_t tv_f16;   // IEEE half, stored as bits
typedef uint16_t tv_bf16;  // bfloat16, stored as bits

typedef struct { tv_f16 d; int8_t qs[TV_QK8_0]; } tv_block_q8_0;                 // x = d * q
typedef struct { tv_f16 d; uint8_t qs[TV_QK4_0 / 2]; } tv_block_q4_0;            // x = d * (nib - 8); low nibbles = elems 0..15
typedef struct {                                                                  // 8 sub-blocks of 32, 6-bit scales/mins
    tv_f16 d, dmin; uint8_t scales[TV_K_SCALE_SIZE]; uint8_t qs[TV_QK_K / 2];
} tv_block_q4_K;
typedef struct {                                                                  // 16 sub-blocks of 16, int8 scales
    uint8_t ql[TV_QK_K / 2]; uint8_t qh[TV_QK_K / 4]; int8_t scales[TV_QK_K / 16]; tv_f16 d;
} tv_block_q6_K;
typedef struct { float d; int8_t qs[TV_QK_K]; int16_t bsums[TV_QK_K / 16]; } tv_block_q8_K;  // activations for K-quants
#define TV_QK_MXFP4 32
typedef struct { uint8_t e; uint8_t qs[TV_QK_MXFP4 / 2]; } tv_block_mxfp4;   // x = 2^(e-128) * kv[nib]; nibbles as Q4_0
// The other 32-element blocks (elements j < 16 in the low nibbles of qs[j], j >= 16 in the high
// nibbles of qs[j - 16]; 5-bit types take bit 4 of element j from bit j of qh, little-endian):
typedef struct { tv_f16 d, m; uint8_t qs[16]; } tv_block_q4_1;                    // x = d * q + m  (q 0..15)
typedef struct { tv_f16 d; uint8_t qh[4]; uint8_t qs[16]; } tv_block_q5_0;        // x = d * (q - 16)  (q 0..31)
typedef struct { tv_f16 d, m; uint8_t qh[4]; uint8_t qs[16]; } tv_block_q5_1;     // x = d * q + m  (q 0..31)
typedef struct { tv_f16 d, s; int8_t qs[32]; } tv_block_q8_1;                     // activations for Q4_1/Q5_1:
                                                                                  // x = d * q, s = f16(d * sum q)
typedef struct { tv_f16 d; uint8_t qs[16]; } tv_block_iq4_nl;                     // x = d * iq4nl_values[q]
// The other 256-element super-blocks (layouts in ref/ref_kx.c):
typedef struct { uint8_t scales[16]; uint8_t qs[64]; tv_f16 d, dmin; } tv_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; tv_f16 d; } tv_block_q3_K;
typedef struct {
    tv_f16 d, dmin; uint8_t scales[TV_K_SCALE_SIZE]; uint8_t qh[32]; uint8_t qs[128];
} tv_block_q5_K;
typedef struct { tv_f16 d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } tv_block_iq4_xs;

static_assert(sizeof(tv_block_q8_0) == 34, "q8_0 block");
static_assert(sizeof(tv_block_q4_0) == 18, "q4_0 block");
static_assert(sizeof(tv_block_q4_K) == 144, "q4_K block");
static_assert(sizeof(tv_block_q6_K) == 210, "q6_K block");
static_assert(sizeof(tv_block_q8_K) == 292, "q8_K block");
static_assert(sizeof(tv_block_mxfp4) == 17, "mxfp4 block");
// MXFP4's E2M1 values doubled (0, ±0.5 .. ±6 as 0, ±1 .. ±12), with the E8M0 scale halved to match
extern const int8_t kern_mxfp4_values[16];
// 2^(e - 128) as ggml's e8m0_to_fp32_half: exact, subnormal for e < 2
static inline float kern_e8m0_half(uint8_t e) {
    union { uint32_t u; float f; } v = { .u = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23 };
    return v.f;
}
static_assert(sizeof(tv_block_q4_1) == 20, "q4_1 block");
static_assert(sizeof(tv_block_q5_0) == 22, "q5_0 block");
static_assert(sizeof(tv_block_q5_1) == 24, "q5_1 block");
static_assert(sizeof(tv_block_q8_1) == 36, "q8_1 block");
static_assert(sizeof(tv_block_iq4_nl) == 18, "iq4_nl block");
static_assert(sizeof(tv_block_q2_K) == 84, "q2_K block");
static_assert(sizeof(tv_block_q3_K) == 110, "q3_K block");
static_assert(sizeof(tv_block_q5_K) == 176, "q5_K block");
static_assert(sizeof(tv_block_iq4_xs) == 136, "iq4_xs block");

// ---- kernel signatures ----
// Dequantize n elements (n a multiple of blck_size) from src into dst.
typedef void (*tv_to_float_fn)(const void *src, float *dst, int64_t n);
// Quantize n elements (n a multiple of blck_size) from src into dst.
typedef void (*tv_from_float_fn)(const float *src, void *dst, int64_t n);
// *s = dot(w[0..n), x[0..n)): w in this type, x in traits->vec_dot_type.
typedef void (*tv_vec_dot_fn)(int64_t n, float *s, const void *w, const void *x);
// GEMM tile: for weight rows r in [r0, r1) and activation rows t in [0, n_tok):
//   y[t * y_stride + r] = dot(w + r * w_row_bytes, x + t * x_row_bytes)   (n elements each)
// Optional (NULL means: kern_matmul loops vec_dot). Fast paths read several activation rows per
// weight read here; that is where batched decode and prefill get their speed.
typedef void (*tv_gemm_fn)(int64_t n, int64_t r0, int64_t r1, const void *w, size_t w_row_bytes,
                           int64_t n_tok, const void *x, size_t x_row_bytes, float *y, int64_t y_stride);
// y[i] += a * x[i], i < n: x in this type (float types only), y f32. With vec_dot (x · f32 row)
// and to_float/from_float this is what attention over an F32/F16/BF16 KV cache needs.
typedef void (*tv_axpy_fn)(int64_t n, float a, const void *x, float *y);
// Converts rows [0, rows) of a weight matrix (n elements per row, src rows src_row_bytes apart) into
// the type's packed layout at dst (packed_size bytes; see "packed weights" below).
typedef void (*tv_repack_fn)(const void *src, size_t src_row_bytes, int64_t n, int64_t rows, void *dst);

typedef struct tv_type_traits {
    const char *name;        // "Q4_K", as GGUF/llama.cpp print it
    int64_t blck_size;       // elements per block (1 for plain types)
    size_t type_size;        // bytes per block
    bool is_quantized;
    bool is_supported;       // false: known name and size, but no kernels (info works, load refuses)
    tv_to_float_fn to_float;
    tv_from_float_fn from_float;
    tv_type vec_dot_type;    // activations are converted to this once per matmul
    tv_vec_dot_fn vec_dot;
    tv_gemm_fn gemm;
    int64_t gemm_rows;       // 0, or: gemm does its own cache blocking of rows and tokens, and kern_matmul
                             // passes all tokens and this many rows per call (amortizing per-call work)
    tv_axpy_fn axpy;         // F32, F16, BF16 only (NULL otherwise)
    // packed weights (Q8_0, Q4_0, the K-quants, IQ4_XS; NULL otherwise): repack converts a matrix to the 16-row
    // interleaved layout, gemm_packed multiplies it (same contract as gemm, w = the packed matrix,
    // w_row_bytes = the plain row size, r0 % 16 == 0, x rows in the packed activation layout,
    // x_row_bytes = packed_act_row_size(type, n)); both exist on every path (scalar on generic)
    // so a packed tensor runs on every path. pack_pays: this path's gemm_packed is the
    // faster kernel, so the model repacks such weights at load.
    tv_repack_fn repack;
    tv_gemm_fn gemm_packed;
    bool pack_pays;
    bool plain_matches_packed;   // gemm on plain weights runs gemm_packed's per-block chain: same bits
} tv_type_traits;

// ---- kernel paths ----
// One CPU path's kernels: a copy of the reference traits table with that ISA's kernels installed
// over it, and the matching attention/elementwise ops. Each CPU backend (src/backend) owns one;
// there is no process-wide kernel table, so engines with different paths coexist.
typedef struct tv_ops tv_ops;
typedef struct kern_table {
    const char *path;                       // "generic" | "avx2" | "avx512"
    const tv_ops *ops;                      // this path's attention/elementwise ops
    tv_type_traits traits[TV_TYPE_COUNT];   // entries with name == NULL are unknown ids
} kern_table;

// Fills kt for path: NULL/"" = the best this CPU and OS support, or "generic" | "avx2" | "avx512";
// "avx2-novnni" and "avx512-novnni" select the same paths without VNNI instructions (tests use
// them). TV_ERR_UNSUPPORTED when this CPU lacks the path, TV_ERR_INVALID for an unknown name.
tv_status kern_table_init(kern_table *kt, const char *path, tv_error *err);
// The entry of type t in kt; NULL for ids outside the table.
static inline const tv_type_traits *kern_traits(const kern_table *kt, tv_type t) {
    return (unsigned)t < TV_TYPE_COUNT && kt->traits[t].name ? &kt->traits[t] : NULL;
}
// Scalar reference table, independent of dispatch (tests compare fast paths against it).
const tv_type_traits *kern_traits_ref(tv_type t);

// Bytes of a row of n elements (n % blck_size == 0), 0 for unknown types.
size_t kern_row_size(tv_type t, int64_t n);
const char *kern_type_name(tv_type t);   // "?" for unknown
// Parses "Q8_0", "q4_k", "F16" ...; returns false when unknown.
bool kern_type_from_name(const char *name, tv_type *out);

// ---- half / bfloat16 conversion (bit-exact, round-to-nearest-even) ----
float f16_to_f32(tv_f16 h);
tv_f16 f32_to_f16(float f);
static inline float bf16_to_f32(tv_bf16 h) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}
tv_bf16 f32_to_bf16(float f);

// ---- packed weights: 16 rows interleaved (Q8_0, Q4_0, Q2_K..Q6_K, IQ4_XS) ----
// Rows go in groups of 16 (the last group padded with zero rows), group g at byte g * 16 * row_size,
// so that one 16-lane SIMD register holds one quant dword of each of the group's rows:
//   quants (n_blocks, QV, 16 rows, 4 bytes): dword k of a block's row
//       Q8_0: QV = 8, quants 4k..4k+3, each stored as q ^ 0x80 = q + 128 (the unsigned operand)
//       Q4_0: QV = 4, the block's qs bytes 4k..4k+3 as stored (nibbles of elements 4k.. and 16+4k..)
//   scales (n_blocks, 16 rows) f16, after all the group's quants.
// (pack_layout.h: every reader and writer takes the offsets of these fields from there.)
// A group is exactly 16 plain rows' bytes. Weights are streamed in one contiguous pass and no
// transpose remains in the kernel.
// The activations a packed GEMM reads (x, one row per token, packed_act_size(n) bytes apart):
//   q (n) int8 | d (n/32) f32 | s (n/32) int32
// the Q8_0 quantization of the row (quants, block scales widened to f32, sum of each block's quants),
// made once per matmul by packed_act_from_float so no kernel re-derives scales or sums.
// K-quants (Q2_K..Q6_K, IQ4_XS) keep a group's super-blocks in row order, each with its f16 super-block
// scales, sub-block scales and quants for the 16 rows, one stretch read front to back:
//   Q4_K: (n_blocks) of { f16 d (16 rows) | f16 dmin (16 rows) | scales (3 dwords, 16 rows, 4 bytes):
//         the 12 packed bytes as stored | qs (4 chunks, 8 dwords, 16 rows, 4 bytes): dword k of chunk
//         c of a row = its qs bytes 32c+4k..+3 } (2304 B: a super-block is one stretch, read front to back).
//   Q5_K: (n_blocks) of { f16 d | f16 dmin | scales as Q4_K | codes (40 dwords, 16 rows, 4 bytes):
//         dword v of a row = bytes 4v..4v+3 of its 160 code bytes (ref_k.c q5k_pack_codes: bits 3..7
//         of byte 20j + r hold the code of element 32j + r for r < 20, bits 0..2 of the sub-block's
//         20 bytes the codes of elements 32j + 20..31) } (2816 B).
//   Q6_K: (n_blocks) of { f16 d (16 rows) | scales (4 dwords, 16 rows, 4 bytes) | codes (48 dwords,
//         16 rows, 4 bytes): dword v of a row = bytes 4v..4v+3 of its 192 code bytes (ref_k.c
//         q6k_pack_codes: bits 0..5 of byte 48q + r hold the code of element 64q + r for r < 48; bits
//         6..7 of bytes 48q + 12n + 4f + b bits 2f..2f+1 of the code of element 64q + 48 + 4n + b) }
//         (3360 B, one stretch as Q4_K).
//   Q3_K: (n_blocks) of { f16 d (16 rows) | scales (3 dwords) | hmask (8 dwords) | qs (16 dwords), 16
//         rows, 4 bytes } (1760 B).
//   Q2_K: (n_blocks) of { f16 d (16 rows) | f16 dmin (16 rows) | scales (4 dwords) | qs (16 dwords), 16
//         rows, 4 bytes, as stored } (1344 B).
//   IQ4_XS: (n_blocks) of { f16 d (16 rows) | u16 scales_h (16 rows) | scales_l (1 dword, 16 rows) |
//         qs (32 dwords, 16 rows, 4 bytes) } (2176 B; pack_layout.h pkx_*).
// Their activations are plain Q8_K rows (kern_row_size(TV_TYPE_Q8_K, n) bytes apart).
#define TV_PACK_ROWS 16
size_t packed_size(tv_type t, int64_t n, int64_t rows);   // 0: type has no packed layout
size_t packed_act_size(int64_t n);                        // n % 32 == 0
// Bytes of one activation row a packed GEMM of weight type t reads: packed_act_size(n) for Q8_0
// activations, the plain row of the vec_dot_type otherwise.
size_t packed_act_row_size(tv_type t, int64_t n);
typedef struct tv_packed_act { const int8_t *q; const float *d; const int32_t *s; } tv_packed_act;
static inline tv_packed_act packed_act_view(const void *row, int64_t n) {   // the three parts of a row
    const int8_t *q = (const int8_t *)row;
    const float *d = (const float *)(q + n);
    return (tv_packed_act){ q, d, (const int32_t *)(d + n / 32) };
}
// Quantizes one row of n floats into that layout with q8, a path's Q8_0 quantizer (its
// traits' from_float, so the quants are bit-identical to that path's plain activations).
void packed_act_from_float(tv_from_float_fn q8, const float *x, void *row, int64_t n);

// ---- a weight tensor view (data points into the model mapping, or a packed copy; not owned) ----
typedef struct tv_tensor {
    const char *name;
    tv_type type;
    int n_dims;
    int64_t ne[4];        // ne[0] = elements per row (contiguous), ne[1] = rows, ...
    size_t nbytes;
    const void *data;
    bool packed;          // data is in the type's packed layout (kern_matmul only; not row-addressable)
} tv_tensor;

// ---- thread pool (persistent workers; fn runs on nth threads with ith = 0..nth-1) ----
typedef struct tv_pool tv_pool;
tv_pool *pool_create(int n_threads, tv_error *err);
void pool_free(tv_pool *pool);
int pool_size(const tv_pool *pool);   // 1 for NULL
// Runs fn(arg, ith, nth) on every thread (the caller is thread 0) and returns when all are done.
// pool NULL runs fn(arg, 0, 1) inline.
void pool_run(tv_pool *pool, void (*fn)(void *arg, int ith, int nth), void *arg);
// As pool_run for a job that any subset of the threads completes, the caller included (each call of
// fn claims its work from shared state until none is left, e.g. from atomic counters): returns
// when the caller's fn has returned and every worker that started the job has finished it; a
// worker that had not started it by then never runs it (arg may be gone by the time it wakes).
void pool_run_any(tv_pool *pool, void (*fn)(void *arg, int ith, int nth), void *arg);

// ---- matmul: y (n_tok, w->ne[1]) = x (n_tok, w->ne[0]) · wᵀ ----
// Runs kt's kernels. Quantizes x to the weight's vec_dot_type once into wsp, then partitions weight
// rows across the pool. wsp must hold kern_matmul_wsize(w->type, w->ne[0], n_tok) bytes (0 for float weight types:
// wsp may then be NULL). Each y element is computed by the same instruction sequence whatever the
// pool size, so results are bit-identical across thread counts.
size_t kern_matmul_wsize(tv_type wtype, int64_t n_cols, int64_t n_tok);
void kern_matmul(const kern_table *kt, const tv_tensor *w, const float *x, int64_t n_tok, float *y, void *wsp,
                 tv_pool *pool);
// y[i] (n_tok, w[i]->ne[1]) = x · w[i]ᵀ for i < n_w <= TV_MATMUL_MAX, weights that kern_matmul_can_share
// (same activation type and row length, e.g. Q, K, V): x is quantized once and one pass over the
// pool computes every output, each bit-identical to its own kern_matmul.
#define TV_MATMUL_MAX 4
bool kern_matmul_can_share(const tv_tensor *a, const tv_tensor *b);
void kern_matmul_n(const kern_table *kt, const tv_tensor *const *w, float *const *y, int n_w, const float *x,
                   int64_t n_tok, void *wsp, tv_pool *pool);

// ==== attention and fused elementwise ops (owner: att; src/kernels/attention.c, x86/attn_*.c) ====
// A small ops table per kernel path (kern_table.ops; "generic" is all scalar).
// Every op is deterministic per output row: its bits do not depend on the thread count or on
// what else is in the batch.

// Attention geometry and options of one layer. K/V pools: (n_blocks, n_kv_heads, block_size,
// head_dim), f16 or f32. A query at position p sees keys [attn_key_lo(g, p), p] (causal; with a
// sliding window only the last `window` of them: llama.cpp's "standard" SWA, key j masked when
// p - j >= window). Its score against key j is
//   s = dot(q, k_j) * scale                                     softcap == 0
//   s = softcap * tanh(dot(q, k_j) * (scale / softcap))         softcap > 0 (Gemma 2's logit capping)
typedef struct tv_attn_geom {
    int n_heads, n_kv_heads, head_dim, block_size;   // n_heads % n_kv_heads == 0
    bool kv_is_f32;
    float scale;                                      // usually 1/sqrt(head_dim)
    int window;                                       // sliding window in keys (>= 1); 0 = global
    float softcap;                                    // attention logit soft-capping; 0 = off
    const float *sinks;                               // (n_heads) per-head sink logits (gpt-oss): each
                                                      // head's softmax also counts exp(sink); NULL = none
} tv_attn_geom;

// The first key a query at position p sees: p - window + 1 with a sliding window, else 0.
static inline int attn_key_lo(const tv_attn_geom *g, int p) {
    return g->window > 0 && p >= g->window ? p - g->window + 1 : 0;
}

// Chunk kernel: query rows r < n_rows (q + r * n_heads*head_dim; the group of query heads
// kvh*G .. kvh*G+G-1, G = n_heads/n_kv_heads) at positions pos[r] attend to keys
// [max(k0, attn_key_lo(pos[r])), min(k1, pos[r]+1)) of KV head kvh, from a fresh softmax state.
// k0 % block_size == 0. Blocks holding no key that some row sees are not read (their block_table
// entries may be anything).
// Writes per (r, g): m[r*G+g] (running max of scaled scores; -inf if the row sees no key),
// l[r*G+g] (sum of exp(score - m)) and acc[(r*G+g)*head_dim ...] (sum of exp(score - m) * v).
// work: attn_work_floats(geom) floats of scratch.
typedef void (*tv_attn_chunk_fn)(const tv_attn_geom *g, const void *k_pool, const void *v_pool,
                                 const int32_t *block_table, int kvh, int n_rows, const float *q,
                                 const int32_t *pos, int k0, int k1, float *m, float *l, float *acc, float *work);
// out (n) = x (n) * (1/sqrt(mean(x^2) + eps)) * w (n)   (sum of squares in double); out may be x
// (in place), no other overlap
typedef void (*tv_rmsnorm_fn)(float *out, const float *x, const float *w, int n, float eps);
// Rotates pairs (2i, 2i+1), 2i < n_rot, of each of n_heads heads of v (head_dim apart) with the
// per-position table cs (2*n_rot): cs[0..n_rot) = cos_i at 2i and 2i+1, cs[n_rot..) = -sin_i at 2i,
// +sin_i at 2i+1 (see rope_table).
typedef void (*tv_rope_fn)(float *v, int n_heads, int head_dim, int n_rot, const float *cs);
// g (n) = act(g) * u: SwiGLU act = silu(x) = x / (1 + e^-x); GeGLU act = gelu_tanh(x) =
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), computed as x / (1 + e^-2z), z the tanh argument,
// as llama.cpp's CPU path has it (the Gemma families' oracle, whose GELU is an f16 table): input and
// result rounded to f16, 0 for x <= -10, x for x >= 10.
typedef void (*tv_glu_fn)(float *g, const float *u, int64_t n);
// y (n) = cap * tanh(y / cap), cap > 0 (Gemma's final logit soft-capping)
typedef void (*tv_softcap_fn)(float *y, int64_t n, float cap);
// y (n) += x (n)
typedef void (*tv_add_fn)(float *y, const float *x, int64_t n);
// out (n) = ((v_0 + v_1) + v_2) + ... + v_{k-1}, v_j = rows[j] (n) * w[j], or (rows[j] * s[j]) * w[j]
// with s (k) given: each product and sum rounded on its own (no FMA), the sums from the first row on
// (a mixture-of-experts token's expert outputs times their weights, in llama.cpp's order). k >= 1.
typedef void (*tv_wsum_fn)(float *out, const float *const *rows, const float *w, const float *s, int k, int64_t n);

struct tv_ops {
    const char *name;            // "generic", "avx2", "avx512"
    tv_attn_chunk_fn attn_chunk;
    tv_rmsnorm_fn rmsnorm;
    tv_rope_fn rope;
    tv_glu_fn swiglu;
    tv_add_fn add;
    tv_glu_fn geglu;
    tv_softcap_fn softcap;
    // NeoX-style RoPE (Qwen, Gemma, Phi): rotates pairs (i, i + n_rot/2), i < n_rot/2, with the table
    // of rope_table_neox; same signature as rope.
    tv_rope_fn rope_neox;
    // gpt-oss's clamped SwiGLU (kern_swiglu_oai, the scalar reference): the same bits on every path
    tv_glu_fn swiglu_oai;
    tv_wsum_fn wsum;   // the same bits on every path (each lane is the scalar chain)
};

// The scalar reference table; the table of a named path ("generic" | "avx2" | "avx512", NULL when
// this CPU/build lacks it).
const tv_ops *ops_ref(void);
const tv_ops *ops_for_path(const char *path);

// Fills cs (2*n_rot) for one position (angle_i = pos * inv_freq[i], libm cosf/sinf), both times
// mscale (YaRN's magnitude correction; 1 = none).
void rope_table(float *cs, int n_rot, const float *inv_freq, float pos, float mscale);
// The same for the NeoX rotation (ops.rope_neox): cs[0..n_rot) = cos_i at i and i + n_rot/2,
// cs[n_rot..) = -sin_i at i, +sin_i at i + n_rot/2.
void rope_table_neox(float *cs, int n_rot, const float *inv_freq, float pos, float mscale);

// One sequence's queries for attn_run.
typedef struct tv_attn_seq {
    int n_q;                       // query tokens
    const float *q;                // (n_q, n_heads*head_dim)
    float *out;                    // (n_q, n_heads*head_dim)
    const int32_t *pos;            // (n_q) positions; query at p sees keys attn_key_lo(p)..p
    const int32_t *block_table;    // ceil((max pos + 1) / block_size) physical block ids; entries of
                                   // blocks wholly before every query's window are never read
} tv_attn_seq;

// Keys are processed in chunks of TV_ATTN_SPLIT positions (rounded down to a multiple of
// block_size, at least one block), each from a fresh softmax state, and the chunk states are merged
// left to right, from the chunk holding the query's first key (attn_key_lo) to the one holding its
// own position. That order is fixed by the position alone, so a long decode may spread its chunks
// over threads (split-K) without changing a bit; chunks wholly before a sliding window are skipped.
#define TV_ATTN_SPLIT 256
size_t attn_work_floats(const tv_attn_geom *g);

typedef struct tv_attn_ws tv_attn_ws;   // grows on demand; one per caller
tv_attn_ws *attn_ws_create(tv_error *err);
void attn_ws_free(tv_attn_ws *ws);

// split: 0 = auto (split-K for sequences with few queries and more than one chunk), 1 = split
// every multi-chunk tile, -1 = never split (tests: the result is the same bits in every mode).
typedef struct tv_attn_args {
    const tv_ops *ops;             // the path's ops (kern_table.ops, ops_ref(), ops_for_path())
    tv_attn_geom geom;
    const void *k_pool, *v_pool;   // this layer's pools
    int n_seqs;
    const tv_attn_seq *seqs;
    int split;
} tv_attn_args;
// Causal (optionally sliding-window, soft-capped) attention for every query row of every sequence,
// over the pool's threads.
// Returns TV_ERR_NOMEM (workspace) or TV_ERR_INVALID (geometry).
tv_status attn_run(const tv_attn_args *a, tv_attn_ws *ws, tv_pool *pool, tv_error *err);
// ==== end of attention / elementwise section ====

// ==== mixture of experts: the router (src/kernels/router.c), the expert-grouped matmul (matmul.c) ====
#define TV_MAX_EXPERTS 512
// The router of one token, as llama.cpp's build_moe_ffn computes it:
//   probs = softmax(logits) (TV_GATING_SOFTMAX: max subtracted, expf, sum in double, scaled by
//           1/sum), sigmoid(logits) (TV_GATING_SIGMOID), or the logits (TV_GATING_SOFTMAX_WEIGHT)
//   groups (n_group > 1, DeepSeek-V3): the experts form n_group equal groups of consecutive ids; a
//           group scores the sum of its two largest probs + bias, and only the experts of the
//           n_group_used best groups (ties to the lower group) can be picked
//   ids   = the n_used experts with the largest probs + bias (bias NULL: none), largest first, ties
//           to the lower id (llama.cpp's argsort is std::sort: an insertion sort, stable, for up to
//           16 experts; beyond that it leaves ties unordered)
//   w     = their unbiased probs (TV_GATING_SOFTMAX_WEIGHT: the softmax of their logits), divided by
//           their sum when norm (the sum clamped to >= 2^-14, f16's smallest normal), times scale
//           when scale is neither 0 nor 1
// logits (n_expert) is overwritten with probs. Values are llama.cpp's enum llama_expert_gating_func_type.
typedef enum tv_gating { TV_GATING_SOFTMAX = 1, TV_GATING_SIGMOID = 2, TV_GATING_SOFTMAX_WEIGHT = 3 } tv_gating;
typedef struct tv_route_opts {
    int n_expert, n_used;      // 1 <= n_used <= n_expert <= TV_MAX_EXPERTS
    tv_gating gating;
    const float *bias;         // (n_expert) selection bias (DeepSeek-V3's exp_probs_b), or NULL
    bool norm;
    float scale;
    int n_group, n_group_used; // grouped top-k: 0 or 1 = off; else n_expert % n_group == 0 and
                               // 1 <= n_group_used < n_group, n_group_used * (n_expert / n_group) >= n_used
} tv_route_opts;
void kern_route(const tv_route_opts *o, float *logits, int32_t *ids, float *w);
// An expert tensor is 3-D: ne[2] experts, each an (ne[1] rows, ne[0]) matrix, stored one after
// another (expert e at byte e * ne[1] * kern_row_size; packed tensors pack each expert's rows on
// their own, which needs ne[1] % TV_PACK_ROWS == 0 so the experts stay at the same offsets).
//
// The batch is grouped by expert: grouped rows p in [off[e], off[e+1]) are routed to expert e
// (off: n_expert + 1 ascending offsets, off[0] = 0) and read activation row x_row[p] of x (n_x, n)
// (x_row NULL: row p itself, x already grouped; then n_x == off[n_expert]). For i < n_w <= 2:
//   y[i] (off[n_expert], w[i]->ne[1]) row p = x[x_row[p]] · (expert e of w[i])ᵀ
// Each row of x is converted to the activation type once, into its first grouped row, and copied to
// its others, so k experts of one token share one quantization; each active expert's weights are
// streamed once per call (all its rows run as one GEMM). Work items are (expert, 64-row chunk, token
// tile), taken dynamically by the pool's threads, so 2 and 64 threads both stay busy; an expert with
// at most 4 rows (decode) has a thread's share of its rows as a chunk (long contiguous reads), and
// its items come first. Every element is computed
// by kern_matmul's instruction sequence: its bits depend on neither the pool size nor the other rows
// routed to its expert (batch invariance). bias (NULL, or per weight NULL or (n_expert, ne[1]) f32):
// expert e's bias row is added to its rows (gpt-oss). act (n_w == 2, else NULL): y[0] = act(y[0],
// y[1]) on each finished chunk while it is in cache (fused SwiGLU). A fused gate+up weight (Gemma 4's
// ffn_gate_up_exps: each expert's ne[1] rows are its gate rows, then as many up rows) is n_w == 1 with
// act: y[0] and y[1] (off[n_expert], ne[1] / 2) get the two halves as two weights would, then act;
// packed, its halves need ne[1] / 2 % TV_PACK_ROWS == 0. wsp: kern_matmul_experts_wsize bytes.
size_t kern_matmul_experts_wsize(tv_type wtype, int64_t n_cols, int64_t n_x, int64_t n_rows);
void kern_matmul_experts(const kern_table *kt, const tv_tensor *const *w, const float *const *bias, float *const *y,
                         int n_w, tv_glu_fn act, const float *x, int64_t n_x, const int32_t *x_row,
                         const int32_t *off, void *wsp, tv_pool *pool);
// gpt-oss's clamped SwiGLU (ggml's swiglu_oai, alpha 1.702, limit 7): x = min(g, 7), y = clamp(u, -7, 7),
// g = x / (1 + e^(-1.702 x)) * (y + 1), e^ by libm's expf. Scalar: the reference of tv_ops.swiglu_oai
// (AVX-512: glibc's expf in double lanes, the same bits); a tv_glu_fn.
void kern_swiglu_oai(float *g, const float *u, int64_t n);

#endif
