// pack_layout.h — where each field of a packed 16-row group lives (kernels.h "packed weights"): the
// one description of the Q8_0 / Q4_0 and IQ4_XS packed layouts. Every reader (ref_q.c, ref_k.c,
// kern_avx512.c, kern_avx2.c, kern_amx.c, kquant_avx512.c, kquant_avx2.c) and the Q8_0 / Q4_0 repack
// take their offsets from here; IQ4_XS is written by ref_k.c's repack_k like the other K-quants, whose
// layout static_asserts there hold against these constants, and test_kernels test_pack_layout pins the
// helpers to the scalar repacks byte by byte.
// All offsets are in bytes from the start of the group (group g at g * 16 * row_size); a group is
// exactly 16 plain rows' bytes.
//
// Q8_0 / Q4_0 (QV = 8 / 4 quant dwords a block, QB = QV * 64 bytes of a block's quants):
//   quants (n_blocks, QV, 16 rows, 4 bytes) | d (n_blocks, 16 rows) f16
//   block b's quant vector k (dword k of the 16 rows) at pk16_q(b) + 64 k, its 16 d at pk16_d(b).
// IQ4_XS (n_blocks super-blocks), one stretch read front to back (34 lines of 64 bytes a super-block):
//   (n_blocks) of { d (16 rows) f16 | scales_h (16 rows) u16 | scales_l (1 dword, 16 rows) |
//                   qs (32 dwords, 16 rows, 4 bytes) } (PKX_BODY B)
//   super-block i's qs vector v (qs bytes 4v.. of the 16 rows) at pkx_qs(i) + 64 v, its scales_l at
//   pkx_sl(i), 16 d at pkx_d(i), 16 scales_h at pkx_sh(i).
#ifndef TV_PACK_LAYOUT_H
#define TV_PACK_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Q8_0 / Q4_0 (q4), nb blocks a row (nb is unused by today's layouts; every helper takes it so that a
// layout may depend on it, as one pairing blocks would for an odd last block)
static inline size_t pk16_qb(bool q4) { return (size_t)(q4 ? 4 : 8) * 64; }   // a block's quants in a group
static inline size_t pk16_q(bool q4, int64_t nb, int64_t b) {
    (void)nb;
    return (size_t)b * pk16_qb(q4);
}
static inline size_t pk16_d(bool q4, int64_t nb, int64_t b) { return (size_t)nb * pk16_qb(q4) + (size_t)b * 32; }

// K-quant super-blocks of a group, one stretch each (16 plain blocks' bytes; ref_k.c repack_k writes them
// and its pk_kind table is checked against these): f16 head | scales | codes
enum {
    PK_Q4K_BODY = 2304,   // Q4_K: f16 d, dmin 64 | scales 192 | qs 2048
    PK_Q5K_BODY = 2816,   // Q5_K: f16 d, dmin 64 | scales 192 | codes 2560
    PK_Q6K_BODY = 3360,   // Q6_K: f16 d 32 | scales 256 | codes 3072
    PK_Q3K_BODY = 1760,   // Q3_K: f16 d 32 | scales 192 | hmask 512 | qs 1024
    PK_Q2K_BODY = 1344,   // Q2_K: f16 d, dmin 64 | scales 256 | qs 1024
};

// IQ4_XS, nb super-blocks a row
enum {
    PKX_BODY = 2176,   // a super-block in a group: 16 plain blocks' bytes
    PKX_D = 0,         // offsets in the body: f16 d
    PKX_SH = 32,       // u16 scales_h
    PKX_SL = 64,       // scales_l (the line after d, scales_h)
    PKX_QS = 128,      // qs
};
static inline size_t pkx_at(int64_t nb, int64_t i, size_t field) {
    (void)nb;
    return (size_t)i * PKX_BODY + field;
}
static inline size_t pkx_qs(int64_t nb, int64_t i) { return pkx_at(nb, i, PKX_QS); }
static inline size_t pkx_sl(int64_t nb, int64_t i) { return pkx_at(nb, i, PKX_SL); }
static inline size_t pkx_d(int64_t nb, int64_t i) { return pkx_at(nb, i, PKX_D); }
static inline size_t pkx_sh(int64_t nb, int64_t i) { return pkx_at(nb, i, PKX_SH); }

#endif
