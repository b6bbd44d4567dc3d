// kern_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) int8 GEMM/GEMV for Q8_0 and Q4_0 weights (16 weight rows
// per zmm, one lane each: see the Q8_0 / Q4_0 section), Q4_K / Q6_K (one row x up to 4 tokens), and
// the f32 -> Q8_0 and Q8_K activation quantizers. Products are vpdpbusd (u8 x s8 -> int32, 4 per lane):
//   Q4_0: nibbles are the unsigned side as stored; sum (nib - 8) x = sum nib x - 8 sum x.
//   Q8_0: weights are made unsigned with w ^ 0x80 (= w + 128); sum x w = sum x (w + 128) - 128 sum x.
// Without VNNI, the AVX2 kernels serve.
// Weights repacked at load (kernels.h "packed weights", the default here) are read as stored by the
// p16 kernels; weights kept in the file layout have their 16-row groups transposed on the fly (in
// registers for 1-2 tokens, into a 4.5 KiB stack chunk reused by up to 256 tokens otherwise).
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

// ---------------- Q8_0 / Q4_0: 16 weight rows side by side ----------------
// Canonical arithmetic (every tile shape, token count and row split computes exactly this, so a
// (row, token) result is bit-identical however the call is shaped):
//   acc = 0; for each block b in order: acc = fma((float)isum_b, dw_b * dx_b, acc); y = acc
// where isum_b is the exact int32 dot of the block's 32 quants.
// Layout in registers: one zmm lane per weight row (16 rows), 4 quants per lane, so a block is
// 8 vpdpbusd against 4-byte activation broadcasts and its scale is one multiply-add for 16 rows:
//   weights are the unsigned operand (Q4_0 nibbles as stored; Q8_0 as w ^ 0x80 = w + 128), and the
//   offset (-8 or -128) * sum(x_b) is the int32 start value, computed once per (token, block).
// The rows are transposed in registers: 4x4 dword transposes of four vectors holding rows
// j, j+4, j+8, j+12 (j = 0..3), which leaves row l in lane l. A short last group is shifted down to end at
// the last row (rows below it are computed, not stored); a tensor of fewer than 16 rows puts one
// row in every lane. Tokens go 8 at a time over the transposed block.
// Stack per gemm call: 80 KiB of activations and their aux, 4.5 KiB of packed weights.
enum {
    G16_TG = 8,      // tokens per pass over a packed block
    G16_KB = 8,      // blocks per packed chunk
    G16_TP = 256,    // tokens per pass over the rows (the weights are read once per pass)
};

INLINE void g16_tr4(__m512i z0, __m512i z1, __m512i z2, __m512i z3, __m512i *o) {
    __m512i a0 = _mm512_unpacklo_epi32(z0, z1), a1 = _mm512_unpackhi_epi32(z0, z1);
    __m512i a2 = _mm512_unpacklo_epi32(z2, z3), a3 = _mm512_unpackhi_epi32(z2, z3);
    o[0] = _mm512_unpacklo_epi64(a0, a2);
    o[1] = _mm512_unpackhi_epi64(a0, a2);
    o[2] = _mm512_unpacklo_epi64(a1, a3);
    o[3] = _mm512_unpackhi_epi64(a1, a3);
}
// 16 bytes at p, p + st, p + 2 st, p + 3 st -> 128-bit lanes 0..3
INLINE __m512i g16_ld4(const uint8_t *p, size_t wrs) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + wrs)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + 2 * wrs)), 2);
    return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p + 3 * wrs)), 3);
}
// s += u8 lanes of w · (4 signed bytes at p, broadcast). GCC does not fold the broadcast load into
// vpdpbusd's m32bcst operand (it emits a separate vpbroadcastd), so spell the instruction out.
INLINE __m512i g16_dp_bcast(__m512i s, __m512i w, const int8_t *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(w), "m"(*(const int32_t(*)[1])(const void *)p));
    return s;
}

// A block of 16 rows, transposed: q[k] lane l = 4 unsigned quants of lane l's row (dword k: quants
// 4k..4k+3 for k < 4, 16 + 4(k-4).. for k >= 4), d = the rows' scales as f32.
typedef struct g16_blk { __m512i q[8]; __m512 d; } g16_blk;   // 576 bytes

// Transposes the block at byte offset off of 16 rows into *o. w: row 0 of the group, rows wrs bytes
// apart (0: one row in every lane); goff: byte offset of lane l's row from w; pf: prefetch distance
// (0: none).
INLINE void g16_load(const bool q4, const uint8_t *w, size_t wrs, __m512i goff, size_t pf, size_t off, g16_blk *o) {
    // strides made opaque per block: otherwise GCC hoists all 16 row addresses out of the loop and
    // spills them
    size_t s1 = wrs, s4 = 4 * wrs;
    __asm__("" : "+r"(s1), "+r"(s4));
    // memory-bound (1-2 tokens): fetch the next group's rows at this column (see tile.h); a line
    // covers ~2 (Q8_0) or ~3.5 (Q4_0) blocks, so every other block suffices
    if (pf && (off / (q4 ? sizeof(tv_block_q4_0) : sizeof(tv_block_q8_0)) & 1) == 0)
        TV_TILE_UNROLL for (int r = 0; r < 16; r++) __builtin_prefetch(w + r * wrs + pf + off, 0, 3);
    __m512i *wv = o->q;
    if (q4) {
        __m512i t[4];
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        const uint8_t *p = w + off + 2;
        g16_tr4(g16_ld4(p, s4), g16_ld4(p + s1, s4), g16_ld4(p + 2 * s1, s4), g16_ld4(p + 2 * s1 + s1, s4), t);
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
            wv[k] = _mm512_and_si512(t[k], m4);
            wv[k + 4] = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), m4);
        }
    } else {
        const __m512i k80 = _mm512_set1_epi8((char)0x80);
        const uint8_t *p = w + off + 2, *p2 = w + off + 18;
        __m512i t[8];
        g16_tr4(g16_ld4(p, s4), g16_ld4(p + s1, s4), g16_ld4(p + 2 * s1, s4), g16_ld4(p + 2 * s1 + s1, s4), t);
        g16_tr4(g16_ld4(p2, s4), g16_ld4(p2 + s1, s4), g16_ld4(p2 + 2 * s1, s4), g16_ld4(p2 + 2 * s1 + s1, s4), t + 4);
        TV_TILE_UNROLL for (int k = 0; k < 8; k++) wv[k] = _mm512_xor_si512(t[k], k80);
    }
    // f16 scales: the first 4 bytes of each row's block (d and two quants), low halves kept
    o->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(goff, w + off, 1)));
}
// Blocks b0 .. b0+nbk-1 into out.
INLINE void g16_pack(const bool q4, const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk,
                     g16_blk *out) {
    const size_t bs = q4 ? sizeof(tv_block_q4_0) : sizeof(tv_block_q8_0);
    for (int i = 0; i < nbk; i++) g16_load(q4, w, wrs, goff, pf, (size_t)(b0 + i) * bs, &out[i]);
}
static void g16_pack_q4(const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk, g16_blk *out) {
    g16_pack(true, w, wrs, goff, pf, b0, nbk, out);
}
static void g16_pack_q8(const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk, g16_blk *out) {
    g16_pack(false, w, wrs, goff, pf, b0, nbk, out);
}

// One (block, token) step of the canonical chain for 16 rows: xq = the token's block quants.
INLINE __m512 g16_step(const g16_blk *wb, const int8_t *xq, float dx, int32_t cr, __m512 acc) {
    // two chains of 4, summed: an exact int32 sum, so the bits do not depend on it
    __m512i s = _mm512_set1_epi32(cr), s2 = _mm512_setzero_si512();
    TV_TILE_UNROLL for (int k = 0; k < 8; k += 2) {
        s = g16_dp_bcast(s, wb->q[k], xq + 4 * k);
        s2 = g16_dp_bcast(s2, wb->q[k + 1], xq + 4 * k + 4);
    }
    s = _mm512_add_epi32(s, s2);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wb->d, _mm512_set1_ps(dx)), acc);
}

// T tokens over nbk packed blocks. xa/dxa/cra: the chunk's activations (quants, 32 per entry),
// scales and start values at these tokens, (block, token) with block stride as;
// y: (T, ys) at the group's first row holds the running sums of rows m (read unless first).
INLINE void g16_compute(const g16_blk *wb, int nbk, const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as,
                        float *y, int64_t ys, __mmask16 m, bool first, const int T) {
    __m512 acc[G16_TG];
    TV_TILE_UNROLL for (int t = 0; t < T; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + t * ys);
    for (int i = 0; i < nbk; i++)
        TV_TILE_UNROLL for (int t = 0; t < T; t++)
            acc[t] = g16_step(&wb[i], xa + (i * as + t) * TV_QK8_0, dxa[i * as + t], cra[i * as + t], acc[t]);
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, m, acc[t]);
}
#define G16_FN(T)                                                                                                  \
    static void g16_compute_##T(const g16_blk *wb, int nbk, const int8_t *xa, const float *dxa, const int32_t *cra, \
                                int64_t as, float *y, int64_t ys, __mmask16 m, bool first) {                       \
        g16_compute(wb, nbk, xa, dxa, cra, as, y, ys, m, first, T);                                                \
    }
G16_FN(1) G16_FN(2) G16_FN(3) G16_FN(4) G16_FN(5) G16_FN(6) G16_FN(7) G16_FN(8)
typedef void (*g16_fn)(const g16_blk *wb, int nbk, const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as,
                       float *y, int64_t ys, __mmask16 m, bool first);
static const g16_fn g16_k[G16_TG + 1] = { 0, g16_compute_1, g16_compute_2, g16_compute_3, g16_compute_4,
                                          g16_compute_5, g16_compute_6, g16_compute_7, g16_compute_8 };

// 1-2 tokens (memory-bound): each block goes straight from the transpose to the dot products,
// the same steps as g16_pack + g16_compute without the round trip through the packed copy.
INLINE void g16_direct(const bool q4, const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk,
                       const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys,
                       __mmask16 m, bool first, const int T) {
    const size_t bs = q4 ? sizeof(tv_block_q4_0) : sizeof(tv_block_q8_0);
    __m512 acc[2];
    TV_TILE_UNROLL for (int t = 0; t < T; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + t * ys);
    for (int i = 0; i < nbk; i++) {
        g16_blk blk;
        g16_load(q4, w, wrs, goff, pf, (size_t)(b0 + i) * bs, &blk);
        TV_TILE_UNROLL for (int t = 0; t < T; t++)
            acc[t] = g16_step(&blk, xa + (i * as + t) * TV_QK8_0, dxa[i * as + t], cra[i * as + t], acc[t]);
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, m, acc[t]);
}
typedef void (*g16_direct_fn)(const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk,
                              const int8_t *xa, const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys,
                              __mmask16 m, bool first);
#define G16_DIRECT(NAME, Q4, T)                                                                                    \
    static void NAME(const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk, const int8_t *xa, \
                     const float *dxa, const int32_t *cra, int64_t as, float *y, int64_t ys, __mmask16 m,         \
                     bool first) {                                                                                 \
        g16_direct(Q4, w, wrs, goff, pf, b0, nbk, xa, dxa, cra, as, y, ys, m, first, T);                           \
    }
G16_DIRECT(g16_direct_q4_1, true, 1) G16_DIRECT(g16_direct_q4_2, true, 2)
G16_DIRECT(g16_direct_q8_1, false, 1) G16_DIRECT(g16_direct_q8_2, false, 2)
typedef void (*g16_pack_fn)(const uint8_t *w, size_t wrs, __m512i goff, size_t pf, int64_t b0, int nbk, g16_blk *out);
typedef struct g16_type { g16_pack_fn pack; g16_direct_fn direct[3]; int32_t off; } g16_type;
static const g16_type g16_q4 = { g16_pack_q4, { 0, g16_direct_q4_1, g16_direct_q4_2 }, 8 };
static const g16_type g16_q8 = { g16_pack_q8, { 0, g16_direct_q8_1, g16_direct_q8_2 }, 128 };

// Per (block, token) of Q8_0 activations (index b * nt + t): xa = the 32 quants (so a kernel reaches
// every token of a block from one base address), dxa = scale as f32, cra = -off * sum of the quants.
static void g16_aux(const uint8_t *x, size_t xrs, int64_t nt, int64_t nb, int32_t off, int8_t *xa, float *dxa,
                    int32_t *cra) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    for (int64_t t = 0; t < nt; t++) {
        const tv_block_q8_0 *xb = (const tv_block_q8_0 *)(x + (size_t)t * xrs);
        for (int64_t b = 0; b < nb; b++) {
            // sum of (q + 128) by 8-byte groups, then minus 32 * 128
            __m256i q = _mm256_loadu_si256((const __m256i *)xb[b].qs);
            _mm256_store_si256((__m256i *)(xa + (b * nt + t) * TV_QK8_0), q);
            __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, k80), _mm256_setzero_si256());
            __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
            dxa[b * nt + t] = _cvtsh_ss(xb[b].d);
            cra[b * nt + t] = -off * (_mm_cvtsi128_si32(h) - 32 * 128);
        }
    }
}

// ---- packed weights (kernels.h "packed weights"): the same chain without a transpose ----
// A tile is RG groups of 16 rows (1 or 2) x T tokens (1..4; 5..8 with one group): per block, each
// quant dword of the tokens is broadcast once and serves both groups, each weight vector serves all
// T tokens, and the int32 sums of all RG*T (group, token) pairs run side by side (independent
// chains) before the per-block scale. For 1-2 tokens (memory-bound) the tile prefetches into L2
// (prefetcht1, tile.h TV_PREFETCH_L2): Q8_0 rows of P16_PF12_NB+ blocks every other line of their
// own streams, P16_PF12 bytes of quants ahead (the scales as many blocks ahead; the hardware
// prefetcher fetches the lines between); Q4_0 and shorter Q8_0 rows every line of the next step's
// groups at the same column (pf). docs/architecture.md "Decode on Zen 4" has the A/B (Q4_0 measured
// 0.75-0.95x from DRAM with Q8_0's prefetch, 24-block Q8_0 rows 0.9x).
// Batched decode reads the weights from DRAM with a few tokens each (an expert's rows: ~4 at 32
// sequences x top-8 of 64, often 5-8), where compute and reads take about as long and the core
// does them in turn unless the weights are fetched ahead:
// - 5..8 tokens: one group x all the tokens in one pass over the row (the 1x5..1x8 tiles, 2 x T + 2
//   vectors), prefetching P16_PFA blocks ahead of it into L2. They replaced 4-token tiles over
//   16-block chunks (below), whose back-and-forth the hardware prefetcher follows badly. One thread,
//   600 MB of 2048-wide Q8_0 from DRAM, GB/s: 5 tokens 11-14 -> 16-22, 6 10.5-14.6 -> 15-18, 8
//   11-13.5 -> 14-16 (without the prefetch the one-pass tiles ran 0.7-1.0x the chunked ones).
// - more than 8 tokens, chunked: the tiles prefetch the blocks P16_AHEAD chunks ahead in the step's
//   stream, which continues into the next step's groups (without that, the first chunk of every
//   step came from DRAM unfetched), each tile a share of every block's lines (one tile issuing all
//   of them measured slower): 12 tokens 9.1-9.5 -> 10.5-10.9 GB/s, 16 7.4-7.6 -> 8.5, 32 (a dense
//   matrix at batch 32) 3.9-4.1 -> 4.3-4.4, 64 (weights from an L2 panel) unchanged; on Zen 4, one
//   thread, CPU time, 32 tokens from DRAM (2 MB pages), interleaved medians, GOPS: 65536x2048
//   279-289 -> 306-322, 16384x6912 302 -> 326, 65536x1152 270 -> 290 (from L2: ~350).
// - 3-4 tokens run one pass of the 2x3 / 2x4 tile, which the hardware follows: prefetching ahead
//   measured 0.85-1.0x there.
// Tokens per pass: 32, so a span is up to 64 blocks (the whole row of a 2048-wide matrix: the running
// sums stay in registers) and a pass's activations stay in L2. Measured on 5632x2048 Q8_0, 512
// tokens, 2 threads, best of interleaved runs: 16 tokens ~1010 GOPS, 24 ~1025, 32 ~1030, 48 ~880,
// 64 ~850 (1-2 chains per (group, token) for 3-4 tokens: one chain is faster).
#ifndef P16_PANEL_BYTES
#define P16_PANEL_BYTES (256 * 1024)   // weight bytes per panel (L2 is 1 MiB per core here)
#endif
enum { P16_TP = 32, P16_PFA = 16 /* blocks prefetched ahead, 5+ tokens */, P16_PF12 = 2048 /* Q8_0, 1-2 tokens */,
       P16_PF12_NB = 48 /* shorter Q8_0 rows: pf */ };
// Above 8 tokens a step runs its tiles over chunks of at most P16_KC blocks, as even as the row
// allows (the running sums kept in y between chunks: the same chain, same bits), so a chunk of the
// groups' weights and the pass's activations for it stay in cache across the tiles (0: whole rows).
// 36: gemma3's 1152-wide rows in one chunk (16 left them a 4-block third chunk: 1.02-1.05x at 12-32
// tokens from DRAM), 2048 in two of 32, 6912 in six of 36. docs/architecture.md has the A/B.
#ifndef P16_KC
#define P16_KC 36
#endif
enum { P16_AHEAD = 2 /* chunks prefetched ahead, 9+ tokens */ };
// What a tile of 3+ tokens prefetches into L2 (the 1-2 token tiles: above): at block b, lines k
// with bit k of `lines` at byte offset `near` from the block (b < bsw), else `far` (0: nothing).
typedef struct p16_ahead { size_t near, far; int64_t bsw; unsigned lines; } p16_ahead;
INLINE void p16_tile(const bool q4, const uint8_t *gq, size_t gstride, size_t pf, const p16_ahead *pa, int64_t nb,
                     int64_t b0, int64_t b1, const uint8_t *x, size_t xrs, float *y, int64_t ys, __mmask16 m0,
                     __mmask16 m1, const int RG, const int T) {
    const int qv = q4 ? 4 : 8;
    const int32_t off = q4 ? 8 : 128;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t *qb[2] = { gq, gq + gstride };
    const __mmask16 mk[2] = { m0, m1 };
    tv_packed_act xa[8];   // token t's quants, scales, block sums
    const bool own = !q4 && nb >= P16_PF12_NB;   // 1-2 tokens: prefetch in the own streams (above)
    TV_TILE_UNROLL for (int t = 0; t < T; t++) xa[t] = packed_act_view(x + (size_t)t * xrs, nb * TV_QK8_0);
    __m512 acc[2][8];
    TV_TILE_UNROLL for (int g = 0; g < RG; g++)   // the running sums of blocks [0, b0), kept in y
        TV_TILE_UNROLL for (int t = 0; t < T; t++)
            acc[g][t] = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[g], y + t * ys + 16 * g);
    for (int64_t b = b0; b < b1; b++) {
        __m512i s[2][8], s2[2][8];
        const size_t ahead = b < pa->bsw ? pa->near : pa->far;
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const __m512i c = _mm512_set1_epi32(-off * xa[t].s[b]);   // the weights' offset times sum(x)
            TV_TILE_UNROLL for (int g = 0; g < RG; g++) { s[g][t] = c; s2[g][t] = _mm512_setzero_si512(); }
        }
        TV_TILE_UNROLL for (int k = 0; k < 8; k++) {
            __m512i wv[2];
            TV_TILE_UNROLL for (int g = 0; g < RG; g++) {
                const uint8_t *p = qb[g] + pk16_q(q4, nb, b);
                if (T <= 2 && k < qv && (!own || k % 2 == 0)) TV_PREFETCH_L2(p + (own ? P16_PF12 : pf) + 64 * k);
                if (T > 2 && k < qv && ahead && (pa->lines >> k & 1)) __builtin_prefetch(p + ahead + 64 * k, 0, 1);
                if (!q4) wv[g] = _mm512_loadu_si512(p + 64 * k);
                else if (k < 4) wv[g] = _mm512_and_si512(_mm512_loadu_si512(p + 64 * k), m4);
                else wv[g] = _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512(p + 64 * (k - 4)), 4), m4);
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                int32_t xw;
                memcpy(&xw, xa[t].q + b * TV_QK8_0 + 4 * k, 4);
                const __m512i xv = _mm512_set1_epi32(xw);
                TV_TILE_UNROLL for (int g = 0; g < RG; g++) {
                    // 1-2 tokens: odd dwords on a second chain, so a block is not one long latency chain
                    if (T <= 2 && (k & 1)) s2[g][t] = _mm512_dpbusd_epi32(s2[g][t], wv[g], xv);
                    else s[g][t] = _mm512_dpbusd_epi32(s[g][t], wv[g], xv);
                }
            }
        }
        if (T <= 2)
            TV_TILE_UNROLL for (int g = 0; g < RG; g++)
                TV_TILE_UNROLL for (int t = 0; t < T; t++) s[g][t] = _mm512_add_epi32(s[g][t], s2[g][t]);
        __m512 d[2];
        if (T <= 2 && (b & 1) == 0)
            TV_TILE_UNROLL for (int g = 0; g < RG; g++)
                TV_PREFETCH_L2(qb[g] + pk16_d(q4, nb, b) + (own ? P16_PF12 / 16 : pf));
        TV_TILE_UNROLL for (int g = 0; g < RG; g++)
            d[g] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(qb[g] + pk16_d(q4, nb, b))));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_set1_ps(xa[t].d[b]);
            TV_TILE_UNROLL for (int g = 0; g < RG; g++)
                acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[g][t]), _mm512_mul_ps(d[g], dx), acc[g][t]);
        }
    }
    TV_TILE_UNROLL for (int g = 0; g < RG; g++)
        TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys + 16 * g, mk[g], acc[g][t]);
}
typedef void (*p16_fn)(const uint8_t *gq, size_t gstride, size_t pf, const p16_ahead *pa, int64_t nb, int64_t b0,
                       int64_t b1, const uint8_t *x, size_t xrs, float *y, int64_t ys, __mmask16 m0, __mmask16 m1);
#define P16_FN(Q4, RG, T)                                                                                          \
    static void p16_##Q4##_##RG##x##T(const uint8_t *gq, size_t gstride, size_t pf, const p16_ahead *pa,          \
                                       int64_t nb, int64_t b0, int64_t b1, const uint8_t *x, size_t xrs, float *y, \
                                       int64_t ys, __mmask16 m0, __mmask16 m1) {                                   \
        p16_tile(Q4, gq, gstride, pf, pa, nb, b0, b1, x, xrs, y, ys, m0, m1, RG, T);                               \
    }
#define P16_SET(Q4) P16_FN(Q4, 1, 1) P16_FN(Q4, 1, 2) P16_FN(Q4, 1, 3) P16_FN(Q4, 1, 4) \
    P16_FN(Q4, 2, 1) P16_FN(Q4, 2, 2) P16_FN(Q4, 2, 3) P16_FN(Q4, 2, 4) \
    P16_FN(Q4, 1, 5) P16_FN(Q4, 1, 6) P16_FN(Q4, 1, 7) P16_FN(Q4, 1, 8)
P16_SET(0) P16_SET(1)
static const p16_fn p16_k[2][3][5] = {   // [q4][RG][T]
    { { 0 }, { 0, p16_0_1x1, p16_0_1x2, p16_0_1x3, p16_0_1x4 }, { 0, p16_0_2x1, p16_0_2x2, p16_0_2x3, p16_0_2x4 } },
    { { 0 }, { 0, p16_1_1x1, p16_1_1x2, p16_1_1x3, p16_1_1x4 }, { 0, p16_1_2x1, p16_1_2x2, p16_1_2x3, p16_1_2x4 } },
};
static const p16_fn p16_w[2][9] = {   // [q4][T]: one group x 5..8 tokens
    { 0, 0, 0, 0, 0, p16_0_1x5, p16_0_1x6, p16_0_1x7, p16_0_1x8 },
    { 0, 0, 0, 0, 0, p16_1_1x5, p16_1_1x6, p16_1_1x7, p16_1_1x8 },
};

// Packed weights (w = the packed matrix, r0 % 16 == 0; x in the packed activation layout), blocked by
// packed_drive: each step is a pair of groups running every 4-token tile of the pass over the whole
// row (5..8 tokens: each group once with all of them), the running sums in registers throughout.
static void p16_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    const tv_packed_ctx *c = arg;
    const int R = rend - rg < 32 ? (int)(rend - rg) : 32, RG = R > 16 ? 2 : 1;
    const __mmask16 m0 = (__mmask16)(0xFFFFu >> (R < 16 ? 16 - R : 0));
    const __mmask16 m1 = (__mmask16)(R > 16 ? 0xFFFFu >> (32 - R) : 0);
    const uint8_t *gq = c->w + (size_t)rg * c->wrs;
    // prefetch distance: the next step's groups, none past the last row of the call (the rows after
    // it belong to another thread or, for an expert tensor, to another expert, mostly not routed)
    const size_t pf = rg + 16 * RG < rend ? (size_t)RG * 16 * c->wrs : 0;
    const size_t blk = pk16_qb(c->q4);   // a block's quants in a group
    if (tp > 4 && tp <= 8) {
        const p16_ahead pa = { P16_PFA * blk, 0, c->nb, 0xFF };
        for (int g = 0; g < RG; g++)
            p16_w[c->q4][tp](gq + (size_t)g * 16 * c->wrs, 0, pf, &pa, c->nb, 0, c->nb,
                             c->x + (size_t)t0 * c->xrs, c->xrs, c->y + t0 * c->ys + rg + 16 * g, c->ys, g ? m1 : m0, 0);
        return;
    }
    const int64_t n_kc = tp > 4 && P16_KC > 0 ? (c->nb + P16_KC - 1) / P16_KC : 1, kc = (c->nb + n_kc - 1) / n_kc;
    // chunked passes fetch the blocks P16_AHEAD chunks ahead in the step's stream of blocks, which
    // goes on into the next step's groups (when that step has as many: none past the call's rows);
    // the tiles share it: tile j fetches lines j, j + n_tiles, ... of each block
    const int64_t ahead = P16_AHEAD * kc < c->nb ? P16_AHEAD * kc : c->nb;
    const bool next_full = rg + 32 * RG <= rend;
    // far: from block b's quants to block b + ahead - nb's in the next step's groups (a uniform stride)
    p16_ahead pa = { (size_t)ahead * blk,
                     next_full ? pf + pk16_q(c->q4, c->nb, ahead) - pk16_q(c->q4, c->nb, c->nb) : 0, c->nb - ahead, 0 };
    const int n_tiles = (int)(tp + 3) / 4;
    for (int64_t b0 = 0; b0 < c->nb; b0 += kc) {
        const int64_t b1 = c->nb - b0 < kc ? c->nb : b0 + kc;
        for (int64_t tg = 0; tg < tp; tg += 4) {
            const int T = tp - tg < 4 ? (int)(tp - tg) : 4;
            pa.lines = 0;
            for (int k = (int)(tg / 4); tp > 4 && k < 8; k += n_tiles) pa.lines |= 1u << k;
            p16_k[c->q4][RG][T](gq, 16 * c->wrs, pf, &pa, c->nb, b0, b1,
                                c->x + (size_t)(t0 + tg) * c->xrs, c->xrs, c->y + (t0 + tg) * c->ys + rg, c->ys, m0,
                                m1);
        }
    }
}
void x86_gemm_packed_vnni512(bool q4, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                     const void *x, size_t xrs, float *y, int64_t ys) {
    tv_packed_ctx c = { q4, true, n / TV_QK8_0, w, x, wrs, xrs, y, ys };
    TV_CHECK(c.nb >= 1 && r0 % 16 == 0);
    packed_drive(r0, r1, wrs, nt, P16_TP, P16_PANEL_BYTES, 32, p16_step, &c);
}

// Blocking: tokens in passes of up to G16_TP; per pass, blocks in spans as long as the activation
// copy holds (G16_KB * G16_TP (block, token) entries: the whole row for a few tokens, G16_KB blocks
// for a full pass), their aux computed once; per span, each 16-row group walks the span:
// in packed chunks of G16_KB blocks, every 8-token group running over each chunk (1-2 tokens: no
// packing).
// Running sums live in y between chunks (only the rows this call owns).
static void g16_gemm(const g16_type *ty, int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs,
                     int64_t nt, const void *x, size_t xrs, float *y, int64_t ys) {
    const int64_t nb = n / TV_QK8_0;
    float dxa[G16_KB * G16_TP];     // (chunk blocks, tokens of the pass)
    int32_t cra[G16_KB * G16_TP];   // (chunk blocks, tokens of the pass)
    int8_t xa[G16_KB * G16_TP * TV_QK8_0] __attribute__((aligned(64)));   // (chunk blocks, tokens, 32)
    g16_blk wb[G16_KB];             // a packed chunk of one row group
    TV_CHECK(nb >= 1 && 15 * wrs <= INT32_MAX);
    for (int64_t t0 = 0; t0 < nt; t0 += G16_TP) {
        const int64_t tp = nt - t0 < G16_TP ? nt - t0 : G16_TP;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * xrs;
        // long spans: a group streams along its rows; going a short chunk at a time over every group
        // revisits each cache line once per chunk (decode got 2x slower that way)
        int64_t kb = (int64_t)G16_KB * G16_TP / tp;
        if (kb > nb) kb = nb;
        for (int64_t b0 = 0; b0 < nb; b0 += kb) {
            const int nbk = nb - b0 < kb ? (int)(nb - b0) : (int)kb;
            const uint8_t *xc = xt + (size_t)b0 * sizeof(tv_block_q8_0);
            g16_aux(xc, xrs, tp, nbk, ty->off, xa, dxa, cra);
            for (int64_t rg = r0; rg < r1; rg += 16) {
                const int R = r1 - rg < 16 ? (int)(r1 - rg) : 16;
                // a short last group is shifted down over rows it does not store; a tensor of fewer
                // than 16 rows goes one row at a time, that row in every lane, lane 0 stored
                const bool one = R < 16 && r1 < 16;
                const int64_t first_r = one ? rg : rg + R - 16, end_r = one ? r1 : first_r + 1;
                for (int64_t r = first_r; r < end_r; r++) {
                    const size_t gs = one ? 0 : wrs;
                    const __mmask16 m = one ? 1 : (__mmask16)(0xFFFFu << (16 - R));
                    int32_t go[16];
                    for (int l = 0; l < 16; l++) go[l] = (int32_t)((size_t)l * gs);
                    const uint8_t *wg = (const uint8_t *)w + (size_t)r * wrs;
                    if (tp <= 2) {
                        ty->direct[tp](wg, gs, _mm512_loadu_si512(go), 16 * wrs, b0, nbk, xa, dxa, cra, tp,
                                       y + t0 * ys + r, ys, m, b0 == 0);
                        continue;
                    }
                    for (int c0 = 0; c0 < nbk; c0 += G16_KB) {
                        const int nc = nbk - c0 < G16_KB ? nbk - c0 : G16_KB;
                        ty->pack(wg, gs, _mm512_loadu_si512(go), 0, b0 + c0, nc, wb);
                        for (int64_t tg = 0; tg < tp; tg += G16_TG) {
                            const int T = tp - tg < G16_TG ? (int)(tp - tg) : G16_TG;
                            const int64_t e = c0 * tp + tg;   // aux entry of (block c0, token tg)
                            g16_k[T](wb, nc, xa + e * TV_QK8_0, dxa + e, cra + e, tp, y + (t0 + tg) * ys + r, ys, m,
                                     b0 + c0 == 0);
                        }
                    }
                }
            }
        }
    }
}
static void q4_0_512_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                          size_t xrs, float *y, int64_t ys) {
    g16_gemm(&g16_q4, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q4_0_512_gemm_packed(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                 const void *x, size_t xrs, float *y, int64_t ys) {
    x86_gemm_packed_vnni512(true, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q8_0_512_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,
                          size_t xrs, float *y, int64_t ys) {
    g16_gemm(&g16_q8, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q8_0_512_gemm_packed(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                 const void *x, size_t xrs, float *y, int64_t ys) {
    x86_gemm_packed_vnni512(false, n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}
static void q4_0_512_vec_dot(int64_t n, float *s, const void *w, const void *x) { q4_0_512_gemm(n, 0, 1, w, 0, 1, x, 0, s, 0); }
static void q8_0_512_vec_dot(int64_t n, float *s, const void *w, const void *x) { q8_0_512_gemm(n, 0, 1, w, 0, 1, x, 0, s, 0); }

// ---------------- activations: f32 -> Q8_0 (bit-exact with ref_from_float_q8_0) ----------------
// (int)roundf(v), half away from zero: truncate v + copysign(0.49999997, v). Exact for every float
// (checked against the roundscale / compare form over all 2^32 inputs): below 0.5 the sum stays
// below 1, at 0.5 it rounds up to 1, and from 2^22 up the sum rounds back to v's own grid.
INLINE __m512i round_half_away512(__m512 v) {
    const __m512 h = _mm512_set1_ps(0x1.fffffep-2f), sgn = _mm512_set1_ps(-0.0f);
    return _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_or_ps(h, _mm512_and_ps(v, sgn))));
}
// Max of each of 16 vectors, in one vector (lane b = max of a[b]): a fixed tree of max / shuffles.
INLINE __m512 hmax16(const __m512 *a) {
    __m512 c[8], d[4], e[2];
    TV_TILE_UNROLL for (int i = 0; i < 8; i++)
        c[i] = _mm512_max_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    TV_TILE_UNROLL for (int i = 0; i < 4; i++)   // 128-bit lane L of d[i]: partial maxima of a[4i + L]
        d[i] = _mm512_max_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
    TV_TILE_UNROLL for (int i = 0; i < 2; i++)
        e[i] = _mm512_max_ps(_mm512_unpacklo_ps(d[2 * i], d[2 * i + 1]), _mm512_unpackhi_ps(d[2 * i], d[2 * i + 1]));
    const __m512 f = _mm512_max_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
    // lane 4L + s of f holds a[4 k + L] with k = (0, 2, 1, 3)[s]: put each in lane 4k + L
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15), f);
}
INLINE void q8_0_block512(const float *x, tv_block_q8_0 *y, float id) {
    const __m512 idv = _mm512_set1_ps(id);
    _mm_storeu_si128((__m128i *)y->qs,
                     _mm512_cvtsepi32_epi8(round_half_away512(_mm512_mul_ps(_mm512_loadu_ps(x), idv))));
    _mm_storeu_si128((__m128i *)(y->qs + 16),
                     _mm512_cvtsepi32_epi8(round_half_away512(_mm512_mul_ps(_mm512_loadu_ps(x + 16), idv))));
}
// 16 blocks at a time: their 16 maxima, scales and inverse scales as one vector each (IEEE
// division and RNE f16 rounding per lane, exactly the scalar steps); single blocks for the tail.
static void from_float_q8_0_512(const float *src, void *dst, int64_t n) {
    tv_block_q8_0 *y = dst;
    const int64_t nb = n / TV_QK8_0;
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16) {
        __m512 m[16];
        TV_TILE_UNROLL for (int j = 0; j < 16; j++) {
            const float *x = src + (i + j) * TV_QK8_0;
            m[j] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), _mm512_abs_ps(_mm512_loadu_ps(x + 16)));
        }
        const __m512 d = _mm512_div_ps(hmax16(m), _mm512_set1_ps(127.0f));
        const __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ),
                                              _mm512_set1_ps(1.0f), d);
        tv_f16 dh[16];
        float idf[16];
        _mm256_storeu_si256((__m256i *)dh, _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm512_storeu_ps(idf, id);
        for (int j = 0; j < 16; j++) {
            y[i + j].d = dh[j];
            q8_0_block512(src + (i + j) * TV_QK8_0, &y[i + j], idf[j]);
        }
    }
    for (; i < nb; i++) {
        const float *x = src + i * TV_QK8_0;
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = (tv_f16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);   // RNE, = f32_to_f16
        q8_0_block512(x, &y[i], id);
    }
}

// ---------------- activations: f32 -> Q8_K (bit-exact with ref_from_float_q8_K) ----------------
// Per super-block: amax = max |x| (max(|x|, m) ignores a NaN x, as fmaxf), q = lrintf(x * (127 / amax))
// by cvtps2dq (RNE, the default rounding), clamped to +-127 by the saturating packs and a byte max
// (an overflowing or NaN product gives -127, as the AVX2 kernel; lrintf leaves those undefined).
// 64 elements at a time: packssdw / packsswb leave 128-bit lane L holding elements 4L..4L+3 of each
// 16-element quarter, one vpermd puts them in order. bsums: vpsadbw of q ^ 0x80 (= q + 128) gives
// sums of 8 per qword; adjacent qwords added give sums of 16, less 16 * 128.
static void from_float_q8_K_512(const float *src, void *dst, int64_t n) {
    tv_block_q8_K *y = dst;
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    // after the sums of 16 of two 64-element groups were interleaved as dwords (see below)
    const __m256i bs_order = _mm256_setr_epi16(0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15);
    const __m512i lim = _mm512_set1_epi8(-127), flip = _mm512_set1_epi8((char)0x80);
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        const float *x = src + i * TV_QK_K;
        __m512 m0 = _mm512_abs_ps(_mm512_loadu_ps(x)), m1 = _mm512_abs_ps(_mm512_loadu_ps(x + 16));
        __m512 m2 = _mm512_abs_ps(_mm512_loadu_ps(x + 32)), m3 = _mm512_abs_ps(_mm512_loadu_ps(x + 48));
        TV_TILE_UNROLL for (int k = 64; k < TV_QK_K; k += 64) {
            m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k)), m0);
            m1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k + 16)), m1);
            m2 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k + 32)), m2);
            m3 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k + 48)), m3);
        }
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const __m512 id = _mm512_set1_ps(127.0f / amax);
        __m512i sad[4];
        TV_TILE_UNROLL for (int g = 0; g < 4; g++) {   // 64 elements
            __m512i v[4];
            TV_TILE_UNROLL for (int k = 0; k < 4; k++)
                v[k] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 64 * g + 16 * k), id));
            __m512i q = _mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
            q = _mm512_max_epi8(_mm512_permutexvar_epi32(order, q), lim);
            _mm512_storeu_si512(y[i].qs + 64 * g, q);
            sad[g] = _mm512_sad_epu8(_mm512_xor_si512(q, flip), _mm512_setzero_si512());
        }
        // sad[g] qword 2L + h: elements 64g + 16L + 8h .. +7. Pairs added: 128-bit lane L of a holds the
        // sums of 16 number L (sad[0]) and 4 + L (sad[1]); b likewise 8 + L and 12 + L.
        const __m512i a = _mm512_add_epi64(_mm512_unpacklo_epi64(sad[0], sad[1]), _mm512_unpackhi_epi64(sad[0], sad[1]));
        const __m512i b = _mm512_add_epi64(_mm512_unpacklo_epi64(sad[2], sad[3]), _mm512_unpackhi_epi64(sad[2], sad[3]));
        // dword 4L + 2s + u: sum number 4s + L (u = 0) or 8 + 4s + L (u = 1): word index j holds sum
        // 4 (j / 2 % 2) + j / 4 + 8 (j % 2); bs_order gathers sum k from word bs_order[k]
        const __m256i w = _mm512_cvtepi32_epi16(_mm512_or_si512(a, _mm512_slli_epi64(b, 32)));
        const __m256i bs = _mm256_sub_epi16(_mm256_permutexvar_epi16(bs_order, w), _mm256_set1_epi16(16 * 128));
        _mm256_storeu_si256((__m256i *)y[i].bsums, bs);
        y[i].d = amax / 127.0f;
    }
}

// ---------------- Q4_K / Q6_K × Q8_K: one row × up to 4 tokens ----------------
// A zmm holds 64 consecutive elements: Q4_K chunk c = [low nibbles of qs[32c..] (sub-block 2c) |
// high nibbles (2c+1)], matching q8_K qs[64c..64c+63] as stored. vpdpbusd gives int32 per 4
// elements; sub-block scales are applied in float per lane (d * scale broadcast by permute), the
// activation scale once per super-block. Mins (Q4_K) and the -32 offset (Q6_K) come from bsums.

INLINE void q4_K_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    (void)wrs; (void)R;
    const tv_block_q4_K *a = (const tv_block_q4_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc[4];
    __m256 mins[4];   // dmin * d_x * sum_j m_j * bsum_j, per lane group
    TV_TILE_UNROLL for (int t = 0; t < T; t++) { acc[t] = _mm512_setzero_ps(); mins[t] = _mm256_setzero_ps(); }
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        uint64_t sc64, mn64;
        q4_K_unpack_scales(a[i].scales, &sc64, &mn64);
        // 8 sub-block scales in float (d * sc), lanes 0..7
        __m512 scf = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d)),
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc64)))));
        // mins expanded to one int16 per 16-element bsum: mn[k / 2]
        __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn64));
        __m256i mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
        __m512 tmp[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) tmp[t] = _mm512_setzero_ps();
        TV_TILE_UNROLL for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                           _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * c)), _mm256_set1_epi32(2 * c + 1), 1);
            __m512 scv = _mm512_permutexvar_ps(idx, scf);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z, _mm512_loadu_si512(b->qs + 64 * c));
                tmp[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), scv, tmp[t]);
            }
        }
        float dmin = _cvtsh_ss(a[i].dmin);
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            acc[t] = _mm512_fmadd_ps(tmp[t], _mm512_set1_ps(b->d), acc[t]);
            __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), mn16);
            mins[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(b->d * dmin), mins[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++)
        y[t * ys] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[t], _mm512_zextps256_ps512(mins[t])));
}

INLINE void q6_K_tile512(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,
                         int64_t ys, const int R, const int T) {
    (void)wrs; (void)R;
    const tv_block_q6_K *a = (const tv_block_q6_K *)w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m512 acc[4];
    float offs[4] = { 0 };
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / TV_QK_K; i++) {
        TV_PREFETCH_NEXT_ROWS(&a[i], wrs, sizeof a[i]);
        __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        float dw = _cvtsh_ss(a[i].d);
        __m512 scf = _mm512_mul_ps(_mm512_set1_ps(dw), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc8)));
        __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512 tmp[4];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) tmp[t] = _mm512_setzero_ps();
        TV_TILE_UNROLL for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            __m512i z[2] = { _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1),
                             _mm512_inserti64x4(_mm512_castsi256_si512(q2), q3, 1) };
            TV_TILE_UNROLL for (int g = 0; g < 2; g++) {   // elements 128h + 64g .. +63 = sub-blocks sb .. sb+3
                int sb = 8 * h + 4 * g;
                __m512i idx = _mm512_setr_epi32(sb, sb, sb, sb, sb + 1, sb + 1, sb + 1, sb + 1, sb + 2, sb + 2, sb + 2,
                                                sb + 2, sb + 3, sb + 3, sb + 3, sb + 3);
                __m512 scv = _mm512_permutexvar_ps(idx, scf);
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
                    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z[g], _mm512_loadu_si512(b->qs + 128 * h + 64 * g));
                    tmp[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), scv, tmp[t]);
                }
            }
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            const tv_block_q8_K *b = (const tv_block_q8_K *)(x + t * xrs) + i;
            acc[t] = _mm512_fmadd_ps(tmp[t], _mm512_set1_ps(b->d), acc[t]);
            __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), sc16);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            offs[t] += b->d * dw * (float)(32 * _mm_cvtsi128_si32(s4));
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) y[t * ys] = _mm512_reduce_add_ps(acc[t]) - offs[t];
}

#define TILE_FN(PFX, BODY, R, T)                                                                                   \
    static void PFX##_##R##x##T(int64_t n, const uint8_t *w, size_t wrs, const uint8_t *x, size_t xrs, float *y,   \
                                int64_t ys) {                                                                      \
        BODY(n, w, wrs, x, xrs, y, ys, R, T);                                                                      \
    }
#define TILE_SET(PFX, BODY)                                                                                        \
    TILE_FN(PFX, BODY, 1, 1) TILE_FN(PFX, BODY, 1, 2) TILE_FN(PFX, BODY, 1, 3) TILE_FN(PFX, BODY, 1, 4)           \
    TILE_FN(PFX, BODY, 4, 1) TILE_FN(PFX, BODY, 4, 2) TILE_FN(PFX, BODY, 4, 3) TILE_FN(PFX, BODY, 4, 4)           \
    static tv_tile_fn PFX##_tiles[5][5] = { [1] = { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 },              \
                                            [4] = { 0, PFX##_4x1, PFX##_4x2, PFX##_4x3, PFX##_4x4 } };            \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 4, 4);                                   \
    }

#define TILE_SET_R1(PFX, BODY)                                                                                     \
    TILE_FN(PFX, BODY, 1, 1) TILE_FN(PFX, BODY, 1, 2) TILE_FN(PFX, BODY, 1, 3) TILE_FN(PFX, BODY, 1, 4)           \
    static tv_tile_fn PFX##_tiles[2][5] = { [1] = { 0, PFX##_1x1, PFX##_1x2, PFX##_1x3, PFX##_1x4 } };            \
    static void PFX##_vec_dot(int64_t n, float *s, const void *w, const void *x) { PFX##_1x1(n, w, 0, x, 0, s, 0); } \
    static void PFX##_gemm(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x, \
                           size_t xrs, float *y, int64_t ys) {                                                     \
        tile_drive(n, r0, r1, w, wrs, nt, x, xrs, y, ys, PFX##_tiles, 1, 4);                                   \
    }

TILE_SET_R1(q4_K_512, q4_K_tile512)
TILE_SET_R1(q6_K_512, q6_K_tile512)

// vnni512: AVX512-VNNI present; vnni256: AVX-VNNI present (for the AVX2 kernels this path reuses).
void x86_install_avx512(tv_type_traits *t, bool vnni512, bool vnni256) {
    x86_install_avx2(t, vnni256);
    t[TV_TYPE_Q8_K].from_float = from_float_q8_K_512;   // AVX-512 F/BW/VL only
    if (!vnni512) return;
    t[TV_TYPE_Q8_0].vec_dot = q8_0_512_vec_dot;
    t[TV_TYPE_Q8_0].from_float = from_float_q8_0_512;
    t[TV_TYPE_Q8_0].gemm = q8_0_512_gemm;
    t[TV_TYPE_Q4_0].vec_dot = q4_0_512_vec_dot;
    t[TV_TYPE_Q4_0].gemm = q4_0_512_gemm;
    t[TV_TYPE_Q4_0].gemm_rows = 1024;
    t[TV_TYPE_Q8_0].gemm_rows = 1024;
    t[TV_TYPE_Q8_0].gemm_packed = q8_0_512_gemm_packed;
    t[TV_TYPE_Q4_0].gemm_packed = q4_0_512_gemm_packed;
    t[TV_TYPE_Q8_0].pack_pays = t[TV_TYPE_Q4_0].pack_pays = true;
    t[TV_TYPE_Q8_0].plain_matches_packed = t[TV_TYPE_Q4_0].plain_matches_packed = true;
    t[TV_TYPE_Q4_K].vec_dot = q4_K_512_vec_dot;
    t[TV_TYPE_Q4_K].gemm = q4_K_512_gemm;
    t[TV_TYPE_Q6_K].vec_dot = q6_K_512_vec_dot;
    t[TV_TYPE_Q6_K].gemm = q6_K_512_gemm;
    x86_install_kquant_avx512(t);
}
