// tile.h — the GEMM tile driver shared by the x86 kernel files (private to src/kernels/x86/).
//
// A tile function computes y for R weight rows × T activation rows. The driver walks tokens in
// groups of up to TM and, inside each group, rows in groups of RM (remainder rows one at a time).
// Every kernel keeps one accumulator chain per (row, token) pair whose operation sequence does not
// depend on R, so a result is bit-identical however rows are split across threads.
#ifndef TV_X86_TILE_H
#define TV_X86_TILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// y[t * ys + r] = dot(row r of w, row t of x) for r < R, t < T (w, x, y already offset to the tile)
typedef void (*tv_tile_fn)(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                           int64_t ys);

// tiles[R][T] for R in {1, RM}, T in 1..TM (other entries unused).
static inline void tile_drive(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                 const void *x, size_t xrs, float *y, int64_t ys, tv_tile_fn tiles[][5], int RM,
                                 int TM) {
    const uint8_t *wb = w, *xb = x;
    for (int64_t t = 0; t < nt; t += TM) {
        int T = nt - t < TM ? (int)(nt - t) : TM;
        for (int64_t r = r0; r < r1;) {
            int R = r1 - r >= RM ? RM : 1;
            tiles[R][T](n, wb + (size_t)r * wrs, wrs, xb + (size_t)t * xrs, xrs, y + t * ys + r, ys);
            r += R;
        }
    }
}

// Q4_K: the 12 packed bytes -> 8 scales and 8 mins (6-bit each), byte j of *sc / *mn = sub-block j.
// Same mapping as q4_K_scale_min, four sub-blocks per 32-bit word: bits 6..7 of bytes 0..3
// (4..7) are the high bits of scales (mins) 4..7, whose low nibbles are in bytes 8..11.
static inline void q4_K_unpack_scales(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    uint32_t sc_lo = u0 & 0x3F3F3F3Fu, mn_lo = u1 & 0x3F3F3F3Fu;
    uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | ((u0 >> 2) & 0x30303030u);
    uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | ((u1 >> 2) & 0x30303030u);
    *sc = sc_lo | ((uint64_t)sc_hi << 32);
    *mn = mn_lo | ((uint64_t)mn_hi << 32);
}

#define TV_TILE_UNROLL _Pragma("GCC unroll 8")

// Weight prefetch: a tile walks R rows side by side over their whole length, so the cache lines
// it needs next-but-one are those of the next tile's rows at the same column: prefetch
// p + R * wrs. (Measured on Zen 4, Q4_0 GEMV from DRAM, one core: 2048x5632 ~17 -> ~31 GB/s;
// a fixed distance ahead in the same row lands inside the current tile for long rows.)
// Only for 1-2 tokens (memory-bound); with more, the tile is compute-bound and the extra lines
// would crowd the L1 that holds the activation rows.
#define TV_PREFETCH_NEXT_ROWS(p, ahead_bytes, span)                                                               \
    do {                                                                                                           \
        if (T <= 2)                                                                                                \
            for (size_t pf_o_ = 0; pf_o_ < (size_t)(span); pf_o_ += 64)                                           \
                __builtin_prefetch((const char *)(p) + (ahead_bytes) + pf_o_, 0, 3);                               \
    } while (0)

// Software prefetch of a weight stream that a 1-2 token GEMV reads from DRAM: into L2 (prefetcht1),
// not L1. On Zen 4 (EPYC Genoa VM, 2 threads) prefetcht0 8 KiB ahead in the packed K-quant kernels
// ran TinyLlama Q4_K_M decode at 0.44x of prefetcht1 (11.2 vs 25.3 tok/s, interleaved medians) and
// one-thread packed Q6_K GEMV at 8-9 GB/s from DRAM instead of ~18 (the plain rows: ~21); prefetcht1
// and prefetcht2 measured the same, 4-32 KiB ahead within noise. The L1 streamer takes the lines
// from L2 on its own.
#define TV_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)

// Blocking of the packed GEMMs (kernels.h "packed weights"): rows [r0, r1) in panels of about
// panel_bytes of weights, which stay in L2 while every pass of up to tp tokens runs over them (so a
// weight byte comes from DRAM once per call, not once per pass; one panel when there is one pass);
// inside a pass, steps of `step` rows (a multiple of 16). step_fn(ctx, rg, rend, t0, nt) computes
// rows [rg, min(rg + step, rend)) for tokens [t0, t0 + nt).
typedef void (*tv_packed_step_fn)(void *ctx, int64_t rg, int64_t rend, int64_t t0, int64_t nt);
// packed_drive runs nt tokens as one pass over one panel: every weight byte is read once, from DRAM
// (decode; an expert's few rows in batched decode), not from a panel that stays in L2.
static inline bool packed_one_pass(int64_t nt, int64_t tp) { return nt <= tp; }
typedef struct tv_packed_ctx {   // what a step needs: the gemm's arguments
    bool q4, vnni;
    int64_t nb;                  // blocks per row
    const uint8_t *w, *x;        // packed weights; packed activation rows
    size_t wrs, xrs;
    float *y;
    int64_t ys;
} tv_packed_ctx;
static inline void packed_drive(int64_t r0, int64_t r1, size_t wrs, int64_t nt, int64_t tp, size_t panel_bytes,
                                   int64_t step, tv_packed_step_fn step_fn, void *ctx) {
    int64_t panel = packed_one_pass(nt, tp) ? r1 - r0 : (int64_t)(panel_bytes / wrs) / step * step;
    if (panel < step) panel = step;
    for (int64_t p0 = r0; p0 < r1; p0 += panel) {
        const int64_t p1 = r1 - p0 < panel ? r1 : p0 + panel;
        for (int64_t t0 = 0; t0 < nt; t0 += tp)
            for (int64_t rg = p0; rg < p1; rg += step) step_fn(ctx, rg, p1, t0, nt - t0 < tp ? nt - t0 : tp);
    }
}

#endif
