// kquant_avx512.c — packed Q4_K / Q5_K / Q6_K / Q3_K / Q2_K / IQ4_XS GEMM and GEMV with AVX512-VNNI (kernels.h
// "packed weights").
//
// One zmm lane per weight row of a 16-row group, 4 codes per lane: a packed dword vector is one
// vpdpbusd (unsigned codes x 4 activation bytes broadcast from the Q8_K row) per token, into an
// int32 sum per sub-block (Q4_K: 8 dwords = 32 codes, the low nibbles one sub-block, the high the
// next; Q5_K: 8 dwords, 5-bit codes x 8: see q5k_codes; Q6_K: 4 dwords = 16 codes, 6-bit bytes: see q6k_quarter).
// Each sub-block sum then takes one fma with its scale d * sc (f32, shared by every token); the
// Q4_K / Q5_K mins and Q6_K's -32 offset are one
// int32 sum per super-block from the activation's bsums (vpdpwssd, int16 pairs), and the
// activation scale is applied once per super-block: exactly the canonical chain of ref_k.c, so
// every (row, token) result is bit-identical to the scalar packed GEMM whatever the tile shape,
// token count or row split. IQ4_XS looks its 4-bit codes up in the grid + 128 (vpshufb, unsigned
// bytes for vpdpbusd) and starts each sub-block's sum at -128 * its activation sum, so the int32 sum
// is the exact signed isum_j of the chain.
// Tiles: one group x up to 8 tokens, one sub-block at a time (one int32 sum per token, finished
// into its u before the next sub-block: s, u and acc take 24 of the 32 registers), so the code
// unpacking (shifts on port 0, which vpdpbusd also needs) is shared by 8 tokens; 8 rather than 4
// measured 1.17-1.24x on prefill-sized GEMMs (Q4_K..IQ4_XS), decode unchanged. The driver
// (tile.h packed_drive) runs passes of 32 tokens over panels of rows that stay in L2.
// A tile that reads its weights from DRAM prefetches every line it reads KP_PF bytes further on
// (Q6_K: a super-block's lines at once, none for 1 token and every other line KP4_PF ahead for 2:
// q6k_tile; Q4_K/Q5_K/IQ4_XS 1-2 tokens: every other line KP4_PF ahead, q4k_tile, iq4xs_tile):
// 1-2 tokens (memory-bound) always; 3-8 tokens when the call is one pass (tile.h packed_one_pass:
// decode, batched decode's experts with a few rows each; above 8 tokens the pass's first tile, which
// reads the group), where compute and reads take about as long and the core did one and then the
// other. A longer call (prefill) runs passes over L2 panels: its first pass over a panel reads the
// panel from DRAM and prefetches as a one-pass call does (first tile only); the later passes read
// it from L2 and do not (prefetching in every pass measured 0.56-0.8x). First pass prefetching, one
// thread, CPU time, 5 interleaved rounds, medians: bench_moe 512 tokens (~64 per expert, 2 passes)
// Q4_K 1.05x, Q5_K 1.09x, Q6_K 1.05x; 256 tokens 1.08x, 1.11x, 1.09x; bench_kernels 2048x5632
// 64 tokens 1.05-1.10x, 256 1.03-1.05x. The tiles with and without prefetches are separate
// functions, NAME_k[stream][T] (with a run-time flag 256-token Q6_K ran 0.95x).
// 768x2048 (an expert's gate), 400 MB rotated from DRAM, one thread, CPU time, 3 interleaved
// rounds, medians, GB/s: Q4_K 4 tokens 7.6 -> 15.2, 8 5.2 -> 8.4, 32 2.13 -> 2.46; Q6_K 4 6.9 ->
// 13.2, 8 6.1 -> 10.6, 32 2.53 -> 3.26; 1 and 256 tokens unchanged (0.98-1.07x, 1.00-1.01x).
// A thread's groups are one contiguous stream (super-blocks, each with its d, then the next group),
// so the prefetches cover that stream KP_PF ahead. Measured against prefetching the next group at
// the same column (16 row strides ahead: 18-74 KiB, past L1 for long rows), GEMV from DRAM, one
// thread, interleaved (Ice Lake, prefetcht0): Q6_K 1.05-1.10x,
// Q5_K/Q3_K/Q2_K/IQ4_XS 1.03-1.08x on 2048x5632, Q4_K equal; 4 KiB and 16 KiB measured the same as 8;
// no lookahead 0.8-1.1x. The prefetches go to L2 (tile.h TV_PREFETCH_L2): into L1 they ran decode at
// 0.44x on Zen 4.
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/tile.h"
#include "util/status.h"

#define INLINE static inline __attribute__((always_inline))

enum {
    KP_TP = 32,                 // tokens per pass over a panel
    KP_PANEL = 256 * 1024,      // weight bytes per row panel
    KP_TM = 8,                  // tokens per tile
    KP_PF = 8192,               // prefetch distance in the group stream (bytes)
    KP4_PF = 2048,              // Q4_K/Q5_K/IQ4_XS 1-2 tokens, Q6_K 2: every other line of the stream, 2 KiB ahead
};

// s += u8 lanes of w · (4 signed bytes at p, broadcast); GCC does not fold the broadcast itself.
INLINE __m512i dp_b(__m512i s, __m512i w, const void *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(w), "m"(*(const int32_t(*)[1])p));
    return s;
}
// s += int16 pairs of w · (the int16 pair at p, broadcast)
INLINE __m512i dpw_b(__m512i s, __m512i w, const void *p) {
    __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(w), "m"(*(const int32_t(*)[1])p));
    return s;
}
// byte b (0..3) of every dword, zero-extended
// (bytes 1, 2 by vpshufb, port 5: a shift and a mask would take port 0, which vpdpbusd needs)
INLINE __m512i byte_u(__m512i v, int b) {
    if (b == 0) return _mm512_and_si512(v, _mm512_set1_epi32(0xFF));
    if (b == 3) return _mm512_srli_epi32(v, 24);
    const uint32_t ix = 0x80808000u | (uint32_t)b;   // byte 0 <- byte b of the dword, the others 0
    return _mm512_shuffle_epi8(v, _mm512_broadcast_i32x4(_mm_setr_epi32((int)ix, (int)(ix + 4), (int)(ix + 8),
                                                                        (int)(ix + 12))));
}
// byte b (0..3) of every dword, zero-extended into both of its int16 halves (one vpshufb)
INLINE __m512i byte_pair(__m512i v, int b) {
    const uint32_t ix = 0x80008000u | (uint32_t)b << 16 | (uint32_t)b;
    return _mm512_shuffle_epi8(v, _mm512_broadcast_i32x4(_mm_setr_epi32((int)ix, (int)(ix + 0x40004u),
                                                                        (int)(ix + 0x80008u), (int)(ix + 0xC000Cu))));
}
// byte b (0..3) of every dword, sign-extended (moved to the top byte by vpshufb, port 5: the shifts
// share port 0 with vpdpbusd)
INLINE __m512i byte_s(__m512i v, int b) {
    if (b == 3) return _mm512_srai_epi32(v, 24);
    const uint32_t ix = (uint32_t)b << 24 | 0x808080u;   // byte 3 <- byte b of the dword, the others 0
    const __m512i sh = _mm512_broadcast_i32x4(_mm_setr_epi32((int)ix, (int)(ix + (4u << 24)), (int)(ix + (8u << 24)),
                                                             (int)(ix + (12u << 24))));
    return _mm512_srai_epi32(_mm512_shuffle_epi8(v, sh), 24);
}

// ---------------- Q4_K, Q5_K (q5: codes x 8 as ref_k.c q5k_pack_codes lays them) ----------------
// Q5_K sub-block j's 8 code vectors x 8 (vector k: elements 32j + 4k..) from its 5 body vectors at p:
// vectors 0..4 masked (bits 3..7), 5..7 put together from their spare bits 0..2.
INLINE void q5k_codes(const uint8_t *p, __m512i *q) {
    const __m512i mf8 = _mm512_set1_epi8((char)0xF8), me0 = _mm512_set1_epi8((char)0xE0), m3 = _mm512_set1_epi8(3),
                  m4 = _mm512_set1_epi8(4), m10 = _mm512_set1_epi8(0x10);
    __m512i v[5];
    TV_TILE_UNROLL for (int m = 0; m < 5; m++) {
        v[m] = _mm512_loadu_si512(p + (size_t)m * 64);
        q[m] = _mm512_and_si512(v[m], mf8);
    }
    // (a << 5 & e0) | lo: code bits 2..4 from bits 0..2 of a, bits 0..1 (already at bits 3..4, clean) from lo
    const __m512i lo5 = _mm512_slli_epi16(_mm512_and_si512(v[3], m3), 3);
    const __m512i lo6 = _mm512_slli_epi16(_mm512_and_si512(v[4], m3), 3);
    const __m512i lo7 = _mm512_ternarylogic_epi32(_mm512_slli_epi16(_mm512_and_si512(v[3], m4), 1),
                                                  _mm512_slli_epi16(v[4], 2), m10, 0xF8);   // A | B & C
    q[5] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(v[0], 5), me0, lo5, 0xEA);   // A & B | C
    q[6] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(v[1], 5), me0, lo6, 0xEA);
    q[7] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(v[2], 5), me0, lo7, 0xEA);
}
// A super-block is one stretch of the group stream, read front to back: its f16 d and dmin (line 0),
// scales (lines 1..3), codes. 1-2 tokens prefetch every other line of it KP4_PF ahead (as the Q8_0
// tiles: kern_avx512.c p16_tile); a 3-8 token streaming pass every line KP_PF ahead.
INLINE void q4k_tile(const bool q5, const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs,
                     float *y, int64_t ys, __mmask16 m, const bool stream, const int T) {
    const bool ahead = T <= 2 || stream;
    const size_t body = q5 ? PK_Q5K_BODY : PK_Q4K_BODY, pf = T <= 2 ? KP4_PF : KP_PF, pf_step = T <= 2 ? 128 : 64;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi8(0x3F), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[KP_TM];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *pb = gb + (size_t)i * body, *pq = pb + 256;   // its codes
        const tv_block_q8_K *xb[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (ahead)
            for (size_t o = 0; o < 256; o += pf_step) TV_PREFETCH_L2(pb + pf + o);
        // the 12 scale bytes of each row as 3 dwords: 6-bit scales 0..3 / mins 0..3 in u0 / u1, the
        // low nibbles of scales and mins 4..7 in u2, their high bits in bits 6..7 of u0 / u1
        const __m512i u0 = _mm512_loadu_si512(pb + 64), u1 = _mm512_loadu_si512(pb + 128),
                      u2 = _mm512_loadu_si512(pb + 192);
        const __m512i sc[2] = { _mm512_and_si512(u0, m6),
                                _mm512_or_si512(_mm512_and_si512(u2, m4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), m30)) };
        const __m512i mn[2] = { _mm512_and_si512(u1, m6),
                                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4),
                                                _mm512_and_si512(_mm512_srli_epi32(u1, 2), m30)) };
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
        const __m512 ndmin =
            _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pb + 32))));
        __m512 u[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_setzero_ps();
        TV_TILE_UNROLL for (int j = 0; j < 8; j++) {   // sub-block j: nibble j & 1 of the chunk c = j / 2
            const int c = j >> 1;
            // Q4_K's high nibbles stay in place (codes * 16: no shift on port 0, which vpdpbusd needs;
            // |sum| < 2^20) and the exact sum is shifted back once; 1-2 tokens: odd dwords on a
            // second chain (int32 sums: the same value in any order)
            const bool hi16 = !q5 && (j & 1);
            __m512i s[KP_TM], s2[KP_TM];
            TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = s2[t] = _mm512_setzero_si512();
            __m512i q5c[8];   // Q5_K: sub-block j's codes x 8 (sum: 8 isum_j)
            if (q5) {   // stream lines 4 + 5j + f
                if (ahead)
                    TV_TILE_UNROLL for (int f = 0; f < 5; f++)
                        if (T > 2 || (j + f) % 2 == 0) TV_PREFETCH_L2(pq + (size_t)(5 * j + f) * 64 + pf);
                q5k_codes(pq + (size_t)j * 320, q5c);
            }
            TV_TILE_UNROLL for (int k = 0; k < 8; k++) {
                __m512i q;
                if (q5) {
                    q = q5c[k];
                } else {
                    const uint8_t *p = pq + (size_t)(8 * c + k) * 64;
                    if (ahead && !(j & 1) && (T > 2 || k % 2 == 0)) TV_PREFETCH_L2(p + pf);
                    const __m512i v = _mm512_loadu_si512(p);
                    q = hi16 ? _mm512_andnot_si512(m4, v) : _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
                }
                TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                    if (T <= 2 && (k & 1)) s2[t] = dp_b(s2[t], q, xb[t]->qs + 32 * j + 4 * k);
                    else s[t] = dp_b(s[t], q, xb[t]->qs + 32 * j + 4 * k);
                }
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                if (T <= 2) s[t] = _mm512_add_epi32(s[t], s2[t]);
                if (hi16) s[t] = _mm512_srai_epi32(s[t], 4);
            }
            __m512 ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(byte_u(sc[j >> 2], j & 3)));
            if (q5) ds = _mm512_mul_ps(ds, _mm512_set1_ps(0.125f));   // s is 8 isum_j: the chain's product, exactly
            TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), ds, u[t]);
        }
        // the mins: sum_j mn_j * (bsums[2j] + bsums[2j+1]); 1-2 tokens: (mn_j, mn_j) int16 pairs against
        // bsums dword j; more: (mn_2p, mn_2p+1) pairs against the 32-element sums (b32_2p, b32_2p+1) (|b32| <=
        // 4096: int16), half the vpdpwssd (they share the pipe of vpdpbusd) for one vphaddw per token
        __m512i so[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm512_setzero_si512();
        if (T <= 2) {
            TV_TILE_UNROLL for (int j = 0; j < 8; j++) {
                const __m512i mw = byte_pair(mn[j >> 2], j & 3);
                TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = dpw_b(so[t], mw, xb[t]->bsums + 2 * j);
            }
        } else {
            int32_t b32[KP_TM][4];   // dword p: int16 pair (b32_2p, b32_2p+1)
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsums);
                const __m256i h = _mm256_hadd_epi16(bs, bs);   // dwords 0, 1 | 4, 5: b32_0..3 | b32_4..7
                _mm_storeu_si128((__m128i *)b32[t], _mm256_castsi256_si128(_mm256_permute4x64_epi64(h, 0x08)));
            }
            const __m512i pe_ix = _mm512_broadcast_i32x4(_mm_setr_epi8(0, -128, 1, -128, 4, -128, 5, -128, 8, -128, 9,
                                                                      -128, 12, -128, 13, -128));
            const __m512i po_ix = _mm512_broadcast_i32x4(_mm_setr_epi8(2, -128, 3, -128, 6, -128, 7, -128, 10, -128, 11,
                                                                      -128, 14, -128, 15, -128));
            TV_TILE_UNROLL for (int p = 0; p < 4; p++) {   // (mn_2p, mn_2p+1): bytes 0, 1 or 2, 3 of mn[p / 2]
                const __m512i mw = _mm512_shuffle_epi8(mn[p >> 1], p & 1 ? po_ix : pe_ix);
                TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = dpw_b(so[t], mw, &b32[t][p]);
            }
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(so[t]), ndmin, u[t]);
            acc[t] = _mm512_fmadd_ps(u[t], _mm512_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc[t]);
}

// ---------------- Q6_K ----------------
// The packed codes (ref_k.c q6k_pack_codes), per quarter jq (sub-blocks 4jq..4jq+3, body vectors
// 12jq..12jq+11): the first three sub-blocks' code vectors are the low 6 bits of those vectors, one
// vpandd each; the fourth's are bits 6..7 of vectors 12jq + 3e..+2 (code bits 0..1, 2..3, 4..5), put
// together as the codes x 4 by two shifts and two vpternlogd and dotted so: the sum is 4 isum_j
// exactly, and its float times d * sc_j / 4 (exact: a power of two) is the chain's product, so the
// fma rounds as the ref's. Up to 8 tokens per tile: one int32 sum per token, finished into u after
// each sub-block, so s, u and acc take 24 registers. (The fourth sub-blocks' vectors at the end of
// the body instead ran 256-token prefill at 0.94x: that assembly in one burst.)
// s[t] = the dot of sub-block 4jq + jj of super-block pb with token t (x 4 for jj = 3).
// pq: the super-block's codes; pf: 0, or prefetch every other line read pf bytes ahead (1-2 tokens).
INLINE void q6k_dots(const uint8_t *pq, const int jq, const int jj, const tv_block_q8_K *const *xb, __m512i *s,
                     const size_t pf, const int T) {
    const __m512i m3f = _mm512_set1_epi8(0x3F), mc0 = _mm512_set1_epi8((char)0xC0);
    TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm512_setzero_si512();
    TV_TILE_UNROLL for (int e = 0; e < 4; e++) {
        __m512i q;
        if (jj < 3) {
            const uint8_t *p = pq + (size_t)(12 * jq + 4 * jj + e) * 64;
            if (pf && e % 2 == 0) TV_PREFETCH_L2(p + pf);
            q = _mm512_and_si512(_mm512_loadu_si512(p), m3f);
        } else {   // (a & c0) >> 2 | (b & c0): code bits 0..3 in bits 4..7; >> 2 | (c & c0): the code x 4
            const uint8_t *p = pq + (size_t)(12 * jq + 3 * e) * 64;
            const __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 64), c = _mm512_loadu_si512(p + 128);
            const __m512i t4 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(_mm512_and_si512(a, mc0), 2), b, mc0, 0xF8);
            q = _mm512_ternarylogic_epi32(_mm512_srli_epi16(t4, 2), c, mc0, 0xF8);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = dp_b(s[t], q, xb[t]->qs + 4 * (16 * jq + 4 * jj + e));
    }
}
// u[t] = fma(s[t], d * sc_j (/ 4 for jj = 3: s is 4 isum_j, and the product is exactly the chain's), u[t])
// (pb: the super-block; its scales at pb + 32)
INLINE void q6k_fin(const uint8_t *pb, const int jq, const int jj, __m512 d, const __m512i *s, __m512 *u, const int T) {
    const __m512i sv = _mm512_loadu_si512(pb + 32 + (size_t)jq * 64);   // byte jj of a dword: scale of 4jq + jj
    __m512 ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(byte_s(sv, jj)));
    if (jj == 3) ds = _mm512_mul_ps(ds, _mm512_set1_ps(0.25f));
    TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), ds, u[t]);
}
// Sub-blocks 4jq..4jq + 3 of super-block pb, into u: the first three's vectors, then the fourth's
// from the same lines (in L1). A function called four times rather than an unrolled loop (clang -O1
// with ASan+UBSan could not unroll such a loop: -Wpass-failed).
INLINE void q6k_quarter(const uint8_t *pb, const int jq, const tv_block_q8_K *const *xb, __m512 d, __m512 *u,
                        const size_t pf, const int T) {
    TV_TILE_UNROLL for (int jj = 0; jj < 4; jj++) {
        __m512i s[KP_TM];
        q6k_dots(pb + 288, jq, jj, xb, s, pf, T);
        q6k_fin(pb, jq, jj, d, s, u, T);
    }
}

INLINE void q6k_tile(const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs, float *y,
                     int64_t ys, __mmask16 m, const bool stream, const int T) {
    // A super-block is one stretch of the group stream: f16 d (half a line) | scales (4 lines) | codes
    // (48 lines), read front to back. 1 token: no software prefetch; the sums are made in code order
    // (every line once, front to back, then the fourth sub-blocks from L1) and the hardware
    // prefetchers keep up. 2 tokens: every other line 2 KiB ahead as read (Q4_K's scheme). One
    // thread, CPU time, 256x2048, GB/s hot / from DRAM (230 MB of copies, 2 MiB pages), 7 interleaved
    // rounds, medians: 1 token, d after the group's bodies 53.8 / 25.4, one stretch 52.6 / 28.1, one
    // stretch with the 2 KiB prefetch 50.1 / 26.2; 2 tokens (d apart, the body's lines at once 8 KiB
    // ahead) 39.8 / 18.1, one stretch 2 KiB 43.2 / 23.0, at once 8 KiB 39.4 / 20.2. One-pass 3-8 token
    // tiles: the super-block's lines prefetched at once 8 KiB ahead when it starts (spread as read: 4
    // tokens 14, 8 tokens 11.6 GB/s; at once 17.5, 13.2 with d apart).
    const size_t pf = T == 2 ? KP4_PF : 0;
    __m512 acc[KP_TM];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *pb = gb + (size_t)i * PK_Q6K_BODY, *pq = pb + 288;   // f16 d | scales | codes
        const tv_block_q8_K *xb[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (pf)
            for (size_t o = 0; o < 288; o += 128) TV_PREFETCH_L2(pb + pf + o);   // d, scales (codes: as read)
        if (stream)   // (3-8 tokens)
            for (int k = 0; k < 53; k++) TV_PREFETCH_L2(pb + KP_PF + 64 * k);   // the whole super-block, at once
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
        __m512 u[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_setzero_ps();
        if (T == 1) {   // every sum first, the fourth sub-blocks' last: the codes read front to back (see above)
            __m512i sb[16];
#define Q6K_D(JQ, JJ) q6k_dots(pq, JQ, JJ, xb, &sb[4 * (JQ) + (JJ)], pf, 1)
            Q6K_D(0, 0); Q6K_D(0, 1); Q6K_D(0, 2); Q6K_D(1, 0); Q6K_D(1, 1); Q6K_D(1, 2);
            Q6K_D(2, 0); Q6K_D(2, 1); Q6K_D(2, 2); Q6K_D(3, 0); Q6K_D(3, 1); Q6K_D(3, 2);
            Q6K_D(0, 3); Q6K_D(1, 3); Q6K_D(2, 3); Q6K_D(3, 3);
#undef Q6K_D
#define Q6K_F(JQ) q6k_fin(pb, JQ, 0, d, &sb[4 * (JQ)], u, 1); q6k_fin(pb, JQ, 1, d, &sb[4 * (JQ) + 1], u, 1); \
                  q6k_fin(pb, JQ, 2, d, &sb[4 * (JQ) + 2], u, 1); q6k_fin(pb, JQ, 3, d, &sb[4 * (JQ) + 3], u, 1)
            Q6K_F(0); Q6K_F(1); Q6K_F(2); Q6K_F(3);   // in chain order (calls, not a loop: see q6k_quarter)
#undef Q6K_F
        } else {
            q6k_quarter(pb, 0, xb, d, u, pf, T);
            q6k_quarter(pb, 1, xb, d, u, pf, T);
            q6k_quarter(pb, 2, xb, d, u, pf, T);
            q6k_quarter(pb, 3, xb, d, u, pf, T);
        }
        // the -32 offset: sum_j sc_j * bsums[j], int16 pairs (sc_2p, sc_2p+1) against bsums dword p
        __m512i so[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm512_setzero_si512();
        TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
            const __m512i sv = _mm512_loadu_si512(pb + 32 + (size_t)q * 64);
            const __m512i lo = _mm512_srai_epi16(_mm512_slli_epi16(sv, 8), 8);   // int16 lanes: sc 4q, sc 4q+2
            const __m512i hi = _mm512_srai_epi16(sv, 8);                         // sc 4q+1, sc 4q+3
            const __m512i pe = _mm512_mask_blend_epi16(0xAAAAAAAAu, lo, _mm512_slli_epi32(hi, 16));
            const __m512i po = _mm512_mask_blend_epi16(0xAAAAAAAAu, _mm512_srli_epi32(lo, 16), hi);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                so[t] = dpw_b(so[t], pe, xb[t]->bsums + 4 * q);
                so[t] = dpw_b(so[t], po, xb[t]->bsums + 4 * q + 2);
            }
        }
        const __m512 n32d = _mm512_mul_ps(d, _mm512_set1_ps(-32.0f));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(so[t]), n32d, u[t]);
            acc[t] = _mm512_fmadd_ps(u[t], _mm512_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc[t]);
}

// ---------------- Q3_K, Q2_K (q3: Q3_K) ----------------
// 16 sub-blocks of 16: sub-block j = 8h + 2k + half takes bits 2k..2k+1 of qs dwords 8h + 4 half + e
// (e < 4: codes of elements 128h + 32k + 16 half + 4e ..), Q3_K a third bit from bit 4h + k of hmask
// dword 4 half + e (codes low + 4 high, 0..7: the -4 is the offset term); Q2_K's scale and min are
// the low and high nibbles of scale byte j. Up to 8 tokens per tile, as Q6_K. The 16 sub-blocks are
// unrolled whole (TV_TILE_UNROLL's 8 left GCC's loop rolled, shifts and scale bytes at run time:
// whole measured 1.24-1.27x Q3_K, 1.15-1.18x Q2_K at 8-64 tokens, 1.28-1.46x at 1, one thread A/B).
INLINE void q23k_tile(const bool q3, const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs,
                      float *y, int64_t ys, __mmask16 m, const bool stream, const int T) {
    // A super-block is one stretch: f16 d [Q2_K f16 dmin] | scales | [Q3_K hmask] | qs. 1-2 tokens and
    // streaming passes prefetch its lines at once KP_PF ahead when it starts. One thread, CPU time,
    // 256x2048, GB/s hot / from DRAM (230 MB of copies, 2 MiB pages), 7 interleaved rounds, medians,
    // d after the group's bodies -> one stretch: Q3_K 1 token 23.3 / 18.3 -> 23.0 / 21.9, 2 tokens
    // 18.0 / 14.9 -> 19.0 / 17.6; Q2_K 25.6 / 18.7 -> 25.6 / 23.9, 18.9 / 15.0 -> 18.9 / 18.7 (every
    // other line 2 KiB ahead instead: Q3_K 20.7, 14.4, Q2_K 20.9, 15.9 from DRAM).
    const bool ahead = T <= 2 || stream;
    const size_t body = q3 ? PK_Q3K_BODY : PK_Q2K_BODY, sc_at = q3 ? 32 : 64, hm_at = 224, qs_at = q3 ? 736 : 320;
    const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(0x0F), b2 = _mm512_set1_epi8(4);
    // int16 pairs of the bytes 0, 1 (pe) and 2, 3 (po) of each dword, zero-extended (vpshufb, 0x80: zero)
    const __m512i pe_ix = _mm512_broadcast_i32x4(_mm_setr_epi8(0, -128, 1, -128, 4, -128, 5, -128, 8, -128, 9, -128,
                                                              12, -128, 13, -128));
    const __m512i po_ix = _mm512_broadcast_i32x4(_mm_setr_epi8(2, -128, 3, -128, 6, -128, 7, -128, 10, -128, 11, -128,
                                                              14, -128, 15, -128));
    __m512 acc[KP_TM];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *pb = gb + (size_t)i * body;
        const tv_block_q8_K *xb[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (ahead)   // the super-block's lines at once (+ 32: Q3_K's may start mid-line)
            for (size_t o = 0; o < body + 32; o += 64) TV_PREFETCH_L2(pb + KP_PF + o);
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
        // the 16 scales as 4 dwords of bytes (byte j % 4 of dword j / 4): Q3_K signed sc - 32, Q2_K 0..15
        __m512i sv[4];
        if (q3) {   // 6-bit scales from the 12 bytes (q3_K_scale): low nibbles of u0, u1, then their high ones;
                    // bit pairs of u2 on top
            const __m512i u0 = _mm512_loadu_si512(pb + sc_at), u1 = _mm512_loadu_si512(pb + sc_at + 64),
                          u2 = _mm512_loadu_si512(pb + sc_at + 128), k32 = _mm512_set1_epi8(32);
            TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
                const __m512i lo = _mm512_and_si512(q < 2 ? (q ? u1 : u0) : _mm512_srli_epi32(q == 2 ? u0 : u1, 4), m4);
                const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u2, 2 * q), m3), 4);
                sv[q] = _mm512_sub_epi8(_mm512_or_si512(lo, hi), k32);
            }
        } else {
            TV_TILE_UNROLL for (int q = 0; q < 4; q++) sv[q] = _mm512_loadu_si512(pb + sc_at + 64 * q);
        }
        __m512 u[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_setzero_ps();
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {   // whole: shifts, scale bytes immediate
            const int h = j >> 3, k = (j >> 1) & 3, half = j & 1;
            __m512i s[KP_TM];
            TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm512_setzero_si512();
            TV_TILE_UNROLL for (int e = 0; e < 4; e++) {
                const __m512i v = _mm512_loadu_si512(pb + qs_at + (size_t)(8 * h + 4 * half + e) * 64);
                __m512i q = _mm512_and_si512(k ? _mm512_srli_epi16(v, 2 * k) : v, m3);
                if (q3) {   // bit 4h + k of the hmask byte -> bit 2
                    const __m512i hv = _mm512_loadu_si512(pb + hm_at + (size_t)(4 * half + e) * 64);
                    const int b = 4 * h + k;
                    const __m512i hs = b > 2 ? _mm512_srli_epi16(hv, b - 2) : b < 2 ? _mm512_slli_epi16(hv, 2 - b) : hv;
                    q = _mm512_or_si512(q, _mm512_and_si512(hs, b2));
                }
                TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = dp_b(s[t], q, xb[t]->qs + 16 * j + 4 * e);
            }
            const __m512i sc = q3 ? byte_s(sv[j >> 2], j & 3)
                                  : _mm512_and_si512(_mm512_srli_epi32(sv[j >> 2], 8 * (j & 3)), _mm512_set1_epi32(0x0F));
            const __m512 ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
            TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), ds, u[t]);
        }
        // the offset: sum_j o_j * bsums[j] (Q3_K o = sc - 32, Q2_K o = min), int16 pairs (o_2p, o_2p+1)
        // against bsums dword p
        __m512i so[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm512_setzero_si512();
        TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
            __m512i pe, po;
            if (q3) {   // signed bytes: sign-extend each into its int16 lane, as Q6_K
                const __m512i lo = _mm512_srai_epi16(_mm512_slli_epi16(sv[q], 8), 8), hi = _mm512_srai_epi16(sv[q], 8);
                pe = _mm512_mask_blend_epi16(0xAAAAAAAAu, lo, _mm512_slli_epi32(hi, 16));
                po = _mm512_mask_blend_epi16(0xAAAAAAAAu, _mm512_srli_epi32(lo, 16), hi);
            } else {    // the mins, high nibbles
                const __m512i mn = _mm512_and_si512(_mm512_srli_epi16(sv[q], 4), m4);
                pe = _mm512_shuffle_epi8(mn, pe_ix);
                po = _mm512_shuffle_epi8(mn, po_ix);
            }
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                so[t] = dpw_b(so[t], pe, xb[t]->bsums + 4 * q);
                so[t] = dpw_b(so[t], po, xb[t]->bsums + 4 * q + 2);
            }
        }
        const __m512 noff = q3 ? _mm512_mul_ps(d, _mm512_set1_ps(-4.0f))
                               : _mm512_xor_ps(_mm512_set1_ps(-0.0f),   // -dmin (sign flip: -0 for 0, as the chain)
                                               _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pb + 32))));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(so[t]), noff, u[t]);
            acc[t] = _mm512_fmadd_ps(u[t], _mm512_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc[t]);
}

// ---------------- IQ4_XS ----------------
// The 8 scales ls_j (0..63) of a super-block's 16 rows as bytes, e byte b = ls_2b and o byte b = ls_2b+1
// (dword r: row r), from the scales_l dwords sl (nibble j: low bits of ls_j) and the u16 scales_h at hp
// (bits 2j, 2j + 1: high bits of ls_j): 12 ops a super-block, then one vpshufb a sub-block (byte_u).
INLINE void iq4xs_scales(__m512i sl, const uint8_t *hp, __m512i *e, __m512i *o) {
    const __m512i c0f = _mm512_set1_epi8(0x0F);
    // dword r: bytes (h0, h0, h1, h1) of row r's scales_h = h0 | h1 << 8
    const __m512i dup = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 1, 1, 4, 4, 5, 5, 8, 8, 9, 9, 12, 12, 13, 13));
    const __m512i h = _mm512_shuffle_epi8(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)hp)), dup);
    const __m512i he = _mm512_and_si512(h, _mm512_set1_epi8(0x33)), ho = _mm512_and_si512(h, _mm512_set1_epi8((char)0xCC));
    const __mmask64 odd = 0xAAAAAAAAAAAAAAAAull;
    // bits 4..5 of byte b: scales_h bits 4b, 4b + 1 (even b: h << 4 in the word's low byte; odd: h in place);
    // for o bits 4b + 2, 4b + 3 (even b: h << 2 in the low byte; odd: the word >> 2 in the high one)
    const __m512i eh = _mm512_mask_blend_epi8(odd, _mm512_slli_epi16(he, 4), he);
    const __m512i oh = _mm512_mask_blend_epi8(odd, _mm512_slli_epi16(ho, 2), _mm512_srli_epi16(ho, 2));
    *e = _mm512_ternarylogic_epi32(sl, eh, c0f, 0xE4);   // C ? A : B: low nibble from sl, bits 4..7 from eh
    *o = _mm512_ternarylogic_epi32(_mm512_srli_epi32(sl, 4), oh, c0f, 0xE4);
}
// Sub-block j's scale d * (ls_j - 32) as fma(d, ls_j, -32 d): the product is exact (an 11-bit d times
// an integer under 64), so the fma rounds the same value: the chain's bits, one op fewer.
INLINE __m512 iq4xs_ds(__m512 d, __m512 dm32, __m512i e, __m512i o, int j) {
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(byte_u(j & 1 ? o : e, j >> 1)), dm32);
}
// Sub-block j's int32 sums s[t] from its 4 code lines (qs bytes 16j + 4k..: elements 32j + 4k.., low
// nibbles, and 32j + 16 + 4k.., high), started at -128 * the activation sums off[t][j]; each line
// (1-2 tokens: every other line) prefetched pf further on (0: none).
INLINE void iq4xs_sum(__m512i *s, const uint8_t *pb, int j, const int32_t (*off)[8], const tv_block_q8_K *const *xb,
                      __m512i grid, size_t pf, const int T) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm512_set1_epi32(off[t][j]);
    TV_TILE_UNROLL for (int hi = 0; hi < 2; hi++)
        TV_TILE_UNROLL for (int k = 0; k < 4; k++) {
            const uint8_t *p = pb + (size_t)(4 * j + k) * 64;
            if (pf && !hi && (T > 2 || k % 2 == 0)) TV_PREFETCH_L2(p + pf);
            const __m512i v = _mm512_loadu_si512(p);
            const __m512i q = _mm512_shuffle_epi8(grid, _mm512_and_si512(hi ? _mm512_srli_epi16(v, 4) : v, m4));
            TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = dp_b(s[t], q, xb[t]->qs + 32 * j + 16 * hi + 4 * k);
        }
}
INLINE void iq4xs_tile(const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs, float *y,
                       int64_t ys, __mmask16 m, const bool stream, const int T) {
    const bool ahead = T <= 2 || stream;
    const size_t pf = T <= 2 ? KP4_PF : KP_PF;
    const __m512i grid = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_values_u8));
    __m512 acc[KP_TM];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *pb = gb + pkx_qs(nb, i);   // pack_layout.h
        const tv_block_q8_K *xb[KP_TM];
        int32_t off[KP_TM][8];   // -128 * the activation sum of each sub-block: where its dot starts
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsums);
            _mm256_storeu_si256((__m256i *)off[t], _mm256_madd_epi16(bs, _mm256_set1_epi16(-128)));
        }
        // the body front to back (pack_layout.h): line 0 (d, scales_h), line 1 (scales_l), then one
        // sub-block at a time, 4 code lines each (s, u and acc take 24 of the 32 registers); 1-2
        // tokens prefetch the even lines (docs: "IQ4_XS in one stretch")
        if (ahead) {
            TV_PREFETCH_L2(gb + pkx_d(nb, i) + pf);
            if (T > 2) TV_PREFETCH_L2(gb + pkx_sl(nb, i) + pf);
        }
        __m512 u[KP_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_setzero_ps();
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gb + pkx_d(nb, i))));
        const __m512 dm32 = _mm512_mul_ps(d, _mm512_set1_ps(-32.0f));
        __m512i se, so;
        iq4xs_scales(_mm512_loadu_si512(gb + pkx_sl(nb, i)), gb + pkx_sh(nb, i), &se, &so);
        TV_TILE_UNROLL for (int j = 0; j < 8; j++) {
            const __m512 ds = iq4xs_ds(d, dm32, se, so, j);
            __m512i s[KP_TM];
            iq4xs_sum(s, pb, j, off, xb, grid, ahead ? pf : 0, T);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), ds, u[t]);
        }
        TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(u[t], _mm512_set1_ps(xb[t]->d), acc[t]);
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc[t]);
}

typedef void (*kp_fn)(const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs, float *y, int64_t ys, __mmask16 m);
#define KP_FN(NAME, BODY, T, S, SFX)                                                                              \
    static void NAME##_##T##SFX(const uint8_t *gb, int64_t nb, const uint8_t *x, size_t xrs, float *y, int64_t ys, \
                                __mmask16 m) {                                                                    \
        BODY(gb, nb, x, xrs, y, ys, m, S, T);                                                                     \
    }
#define Q4K_TILE(...) q4k_tile(false, __VA_ARGS__)
#define Q5K_TILE(...) q4k_tile(true, __VA_ARGS__)
#define Q3K_TILE(...) q23k_tile(true, __VA_ARGS__)
#define Q2K_TILE(...) q23k_tile(false, __VA_ARGS__)
// NAME_k[stream][T]: the tiles, without and with the prefetches of a pass that reads the weights from
// DRAM (compile-time, so the later passes' tiles are the code they were; 1-2 tokens always prefetch:
// one function)
#define KP_FNS(NAME, BODY)                                                                                         \
    KP_FN(NAME, BODY, 1, false, ) KP_FN(NAME, BODY, 2, false, ) KP_FN(NAME, BODY, 3, false, )                      \
    KP_FN(NAME, BODY, 4, false, ) KP_FN(NAME, BODY, 5, false, ) KP_FN(NAME, BODY, 6, false, )                      \
    KP_FN(NAME, BODY, 7, false, ) KP_FN(NAME, BODY, 8, false, ) KP_FN(NAME, BODY, 3, true, _s)                     \
    KP_FN(NAME, BODY, 4, true, _s) KP_FN(NAME, BODY, 5, true, _s) KP_FN(NAME, BODY, 6, true, _s)                   \
    KP_FN(NAME, BODY, 7, true, _s) KP_FN(NAME, BODY, 8, true, _s)                                                  \
    static const kp_fn NAME##_k[2][KP_TM + 1] = {                                                                  \
        { 0, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6, NAME##_7, NAME##_8 },                     \
        { 0, NAME##_1, NAME##_2, NAME##_3_s, NAME##_4_s, NAME##_5_s, NAME##_6_s, NAME##_7_s, NAME##_8_s } };
KP_FNS(q4k, Q4K_TILE)
KP_FNS(q5k, Q5K_TILE)
KP_FNS(q6k, q6k_tile)
KP_FNS(q3k, Q3K_TILE)
KP_FNS(q2k, Q2K_TILE)
KP_FNS(iq4xs, iq4xs_tile)

// One group (rows [rg, min(rg + 16, rend))) over every tile of up to KP_TM tokens of the pass; the
// first pass over a panel (t0 == 0: a one-pass call's only pass) reads the weights from DRAM, and its
// first tile (the one that reads them) prefetches ahead.
INLINE void kp_step(const kp_fn k[2][KP_TM + 1], void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    const tv_packed_ctx *c = arg;
    const int R = rend - rg < 16 ? (int)(rend - rg) : 16;
    const __mmask16 m = (__mmask16)(0xFFFFu >> (16 - R));
    const uint8_t *gb = c->w + (size_t)rg * c->wrs;
    for (int64_t tg = 0; tg < tp; tg += KP_TM) {
        const int T = tp - tg < KP_TM ? (int)(tp - tg) : KP_TM;
        k[t0 == 0 && tg == 0][T](gb, c->nb, c->x + (size_t)(t0 + tg) * c->xrs, c->xrs, c->y + (t0 + tg) * c->ys + rg,
                                 c->ys, m);
    }
}
static void q4k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kp_step(q4k_k, arg, rg, rend, t0, tp); }
static void q5k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kp_step(q5k_k, arg, rg, rend, t0, tp); }
static void q6k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kp_step(q6k_k, arg, rg, rend, t0, tp); }
static void q3k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kp_step(q3k_k, arg, rg, rend, t0, tp); }
static void q2k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kp_step(q2k_k, arg, rg, rend, t0, tp); }
static void iq4xs_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) {
    kp_step(iq4xs_k, arg, rg, rend, t0, tp);
}

#define KP_GEMM(NAME, STEP)                                                                                        \
    static void NAME(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt, const void *x,      \
                     size_t xrs, float *y, int64_t ys) {                                                           \
        tv_packed_ctx c = { false, true, n / TV_QK_K, w, x, wrs, xrs, y, ys };                                     \
        TV_CHECK(c.nb >= 1 && r0 % 16 == 0);                                                                       \
        packed_drive(r0, r1, wrs, nt, KP_TP, KP_PANEL, 16, STEP, &c);                                              \
    }
KP_GEMM(q4_K_512_gemm_packed, q4k_step)
KP_GEMM(q5_K_512_gemm_packed, q5k_step)
KP_GEMM(q6_K_512_gemm_packed, q6k_step)
KP_GEMM(q3_K_512_gemm_packed, q3k_step)
KP_GEMM(q2_K_512_gemm_packed, q2k_step)
KP_GEMM(iq4_xs_512_gemm_packed, iq4xs_step)
void x86_gemm_packed_iq4_xs_vnni512(int64_t n, int64_t r0, int64_t r1, const void *w, size_t wrs, int64_t nt,
                                    const void *x, size_t xrs, float *y, int64_t ys) {
    iq4_xs_512_gemm_packed(n, r0, r1, w, wrs, nt, x, xrs, y, ys);
}

void x86_install_kquant_avx512(tv_type_traits *t) {
    t[TV_TYPE_Q4_K].gemm_packed = q4_K_512_gemm_packed;
    t[TV_TYPE_Q5_K].gemm_packed = q5_K_512_gemm_packed;
    t[TV_TYPE_Q6_K].gemm_packed = q6_K_512_gemm_packed;
    t[TV_TYPE_Q3_K].gemm_packed = q3_K_512_gemm_packed;
    t[TV_TYPE_Q2_K].gemm_packed = q2_K_512_gemm_packed;
    t[TV_TYPE_IQ4_XS].gemm_packed = iq4_xs_512_gemm_packed;
    t[TV_TYPE_Q4_K].pack_pays = t[TV_TYPE_Q5_K].pack_pays = t[TV_TYPE_Q6_K].pack_pays = true;
    t[TV_TYPE_Q3_K].pack_pays = t[TV_TYPE_Q2_K].pack_pays = t[TV_TYPE_IQ4_XS].pack_pays = true;
}
