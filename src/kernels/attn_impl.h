// attn_impl.h — private interface between attention.c (driver, scalar twins) and x86/attn_*.c.
#ifndef TV_ATTN_IMPL_H
#define TV_ATTN_IMPL_H

#include "kernels/kernels.h"

// ---- attention.c: the scalar reference ops (every fast op reproduces these within rounding) ----
void attn_chunk_ref(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                       int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                       float *acc, float *work);
void ref_op_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void ref_op_rope(float *v, int n_heads, int head_dim, int n_rot, const float *cs);
void ref_op_swiglu(float *g, const float *u, int64_t n);
void ref_op_add(float *y, const float *x, int64_t n);
void ref_op_wsum(float *out, const float *const *rows, const float *w, const float *s, int k, int64_t n);
void ref_op_geglu(float *g, const float *u, int64_t n);
void ref_op_softcap(float *y, int64_t n, float cap);
// gelu_tanh(x) = x / (1 + e^(-GELU_TANH_K x (1 + GELU_TANH_A x^2))), GELU_TANH_K = 2 sqrt(2/pi)
#define GELU_TANH_K 1.5957691216057308f
#define GELU_TANH_A 0.044715f
void ref_op_rope_neox(float *v, int n_heads, int head_dim, int n_rot, const float *cs);

// Offset in elements of row `off` of (block, kvh) in a layer pool of (n_blocks, n_kv_heads, block_size, head_dim).
static inline size_t attn_row(const tv_attn_geom *g, int32_t block, int kvh, int off) {
    return (((size_t)block * (size_t)g->n_kv_heads + (size_t)kvh) * (size_t)g->block_size + (size_t)off) *
           (size_t)g->head_dim;
}

// The keys [*kb, *ke) a chunk kernel over [k0, k1) walks for rows at pos[0..n): from the start of
// the block holding the first key any row sees to one past the last such key; empty (*kb >= *ke)
// when no row sees a key of the chunk. Blocks before *kb (wholly outside every row's window) are
// not read.
static inline void attn_chunk_range(const tv_attn_geom *g, const int32_t *pos, int n, int k0, int k1, int *kb,
                                    int *ke) {
    int lo = k1, hi = k0;
    for (int r = 0; r < n; r++) {
        const int a = attn_key_lo(g, pos[r]) > k0 ? attn_key_lo(g, pos[r]) : k0;
        const int b = pos[r] + 1 < k1 ? pos[r] + 1 : k1;
        if (a >= b) continue;
        lo = a < lo ? a : lo;
        hi = b > hi ? b : hi;
    }
    *kb = k0 + (lo - k0) / g->block_size * g->block_size;
    *ke = hi;
}

// The factor a kernel multiplies dot(q, k) by: scale, or scale / softcap before the tanh.
static inline float attn_score_scale(const tv_attn_geom *g) {
    return g->softcap > 0 ? g->scale / g->softcap : g->scale;
}

// Scratch of a chunk kernel (floats): K block (bs4 x hd), V block (bs4 x hd), scores (G + 1, bs16 + 16), (G);
// bs4 = block_size rounded up to 4 (dot products go 4 keys at a time), bs16 to 16.
static inline size_t attn_bs4(int bs) { return (size_t)((bs + 3) & ~3); }
static inline size_t attn_bs16(int bs) { return (size_t)((bs + 15) & ~15); }

// The AVX-512 chunk kernel puts one (query row, head) pair in each lane: lane groups of
// TV_ATTN_LANES pairs, passes of up to TV_ATTN_PASS pairs over the keys. Its scratch (floats, from a
// 64-byte boundary): K and V steps and the transposed K step (3 x 16 x hd), query columns and
// accumulators (2 x PASS x hd), and a decode batch of NARROW_STEPS transposed K and V steps.
#define TV_ATTN_LANES 16
#define TV_ATTN_PASS 64
#define TV_ATTN_NARROW_STEPS 4
static inline size_t attn_lanes_work_floats(int hd) {
    return 16 + (3 * (size_t)TV_ATTN_LANES + 2 * (size_t)TV_ATTN_PASS + 2 * (size_t)TV_ATTN_NARROW_STEPS * TV_ATTN_LANES) *
                    (size_t)hd;
}
static inline float *attn_align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

#if defined(__x86_64__)
// ---- x86/attn_avx2.c, x86/attn_avx512.c ----
void attn_chunk_avx2(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                        int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                        float *acc, float *work);
extern const tv_ops ops_avx2;
extern const tv_ops ops_avx512;
#endif

#endif
