// kq23_avx2.c — packed Q3_K and Q2_K GEMM and GEMV with AVX2 (+ AVX-VNNI where present): the
// AVX2 path's prefill and decode for these types (kernels.h "packed weights"; Q8_K activation rows).
//
// The scheme of kquant_avx2.c on half groups: one ymm lane per weight row of 8 (bytes 32h'..32h'+31
// of each 64-byte packed vector), 4 codes per lane, one u8 x s8 dot per code dword and token
// (vpdpbusd, or vpmaddubsw + vpmaddwd without VNNI: code * quant pairs stay below 2 * 7 * 128, so
// nothing saturates), an int32 sum per 16-element sub-block, then the canonical chain of ref_k.c:
//   per super-block: u = 0; for sub-block j = 0..15: u = fma((float)isum_j, d * sc_j, u)
//                    u = fma((float)offs, noff, u)   Q3_K: sc - 32, offs = sum_j sc_j * bsums_j, noff -4d
//                                                    Q2_K: sc 0..15, offs = sum_j mn_j * bsums_j, noff -dmin
//                    acc = fma(u, x.d, acc)
// bit-identical to the scalar and AVX-512 packed kernels. Sub-block j = 8h + 2k + half takes bits
// 2k..2k+1 of qs dwords 8h + 4 half + e (e < 4: elements 16j + 4e..), Q3_K a third bit from bit
// 4h + k of hmask dword 4 half + e. Up to 4 tokens per tile, every code vector unpacked once per
// tile (2 tokens per tile measured 0.78x the plain AVX2 kernel at 64 tokens: the unpacking, shared by
// too few tokens). One thread, 5632x2048, interleaved A/B against the plain kernels this path ran
// before (test machine shared, so best of 8-100 runs): Q3_K 1.41x (VNNI) / 1.11x (vpmaddubsw) at 64
// tokens, 1.00-1.16x at 1-2; Q2_K 1.34x / 1.27x at 64, 1.17-1.52x at 1-2.
#include "kernels/x86/kpack_avx2.h"

enum {
    K23_TM = KPA_TM_MAX,     // tokens per tile
};

// Half hh (rows 8hh..8hh+7) of the 16-row group at gb, T tokens -> out (T, 8). pf: 1-2 tokens, first
// half: prefetch every line read pf bytes further on in the thread's group stream; else 0.
KPA_INLINE void k23_half(const bool q3, const uint8_t *gb, int64_t nb, int hh, size_t pf, const uint8_t *x, size_t xrs,
                         float *out, const int T, const bool vnni) {
    // a super-block is one stretch: f16 d [Q2_K f16 dmin] | scales | [Q3_K hmask] | qs
    const size_t body = q3 ? PK_Q3K_BODY : PK_Q2K_BODY, sc_at = q3 ? 32 : 64, hm_at = 224, qs_at = q3 ? 736 : 320;
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(0x0F), b2 = _mm256_set1_epi8(4);
    __m256 acc[K23_TM];
    TV_TILE_UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ph = gb + (size_t)i * body, *pb = ph + 32 * hh;   // the super-block; its half's dwords
        const tv_block_q8_K *xb[K23_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) xb[t] = (const tv_block_q8_K *)(x + (size_t)t * xrs) + i;
        if (pf)
            for (size_t o = 0; o < body + 32; o += 64) TV_PREFETCH_L2(ph + pf + o);   // (Q3_K's may start mid-line)
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ph + 16 * hh)));
        // the 16 scales as 4 dwords of bytes (byte j % 4 of dword j / 4): Q3_K signed sc - 32 (6 bits from
        // the 12 bytes: low nibbles of u0, u1, then their high ones; bit pairs of u2 on top), Q2_K the
        // scale bytes (sc | mn << 4)
        __m256i sv[4];
        if (q3) {
            const __m256i u0 = kpa_ld(pb + sc_at), u1 = kpa_ld(pb + sc_at + 64), u2 = kpa_ld(pb + sc_at + 128);
            TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
                const __m256i lo = _mm256_and_si256(q < 2 ? (q ? u1 : u0) : _mm256_srli_epi32(q == 2 ? u0 : u1, 4), m4);
                const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u2, 2 * q), m3), 4);
                sv[q] = _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
            }
        } else {
            TV_TILE_UNROLL for (int q = 0; q < 4; q++) sv[q] = kpa_ld(pb + sc_at + 64 * q);
        }
        __m256 u[K23_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_setzero_ps();
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {   // whole: the shifts and scale bytes become immediates (rolled: 0.51-0.81x)
            const int h = j >> 3, k = (j >> 1) & 3, half = j & 1;
            __m256i s[K23_TM];
            TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = _mm256_setzero_si256();
            TV_TILE_UNROLL for (int e = 0; e < 4; e++) {
                const uint8_t *p = pb + qs_at + (size_t)(8 * h + 4 * half + e) * 64;
                if (pf && k == 0) TV_PREFETCH_L2(p + pf);
                const __m256i v = kpa_ld(p);
                __m256i q = _mm256_and_si256(k ? _mm256_srli_epi16(v, 2 * k) : v, m3);
                if (q3) {   // bit 4h + k of the hmask byte -> bit 2
                    const __m256i hv = kpa_ld(pb + hm_at + (size_t)(4 * half + e) * 64);
                    const int b = 4 * h + k;
                    const __m256i hs = b > 2 ? _mm256_srli_epi16(hv, b - 2) : b < 2 ? _mm256_slli_epi16(hv, 2 - b) : hv;
                    q = _mm256_or_si256(q, _mm256_and_si256(hs, b2));
                }
                TV_TILE_UNROLL for (int t = 0; t < T; t++) s[t] = kpa_dot(s[t], q, xb[t]->qs + 16 * j + 4 * e, vnni);
            }
            const int b = j & 3;
            const __m256i sc = q3 ? _mm256_srai_epi32(_mm256_slli_epi32(sv[j >> 2], 24 - 8 * b), 24)
                                  : _mm256_and_si256(_mm256_srli_epi32(sv[j >> 2], 8 * b), _mm256_set1_epi32(0x0F));
            const __m256 ds = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
            TV_TILE_UNROLL for (int t = 0; t < T; t++) u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), ds, u[t]);
        }
        // the offset: sum_j o_j * bsums[j] (Q3_K o = sc - 32, Q2_K o = min), int16 pairs (o_4q, o_4q+1)
        // and (o_4q+2, o_4q+3) against bsums dwords 2q, 2q + 1
        __m256i so[K23_TM];
        TV_TILE_UNROLL for (int t = 0; t < T; t++) so[t] = _mm256_setzero_si256();
        TV_TILE_UNROLL for (int q = 0; q < 4; q++) {
            __m256i lo, hi;   // int16 lanes: offsets 4q, 4q + 2 (lo) and 4q + 1, 4q + 3 (hi)
            if (q3) {
                lo = _mm256_srai_epi16(_mm256_slli_epi16(sv[q], 8), 8);
                hi = _mm256_srai_epi16(sv[q], 8);
            } else {   // the mins: high nibbles
                const __m256i mn = _mm256_and_si256(_mm256_srli_epi16(sv[q], 4), m4);
                lo = _mm256_and_si256(mn, _mm256_set1_epi16(0xFF));
                hi = _mm256_srli_epi16(mn, 8);
            }
            const __m256i pe = _mm256_blend_epi16(lo, _mm256_slli_epi32(hi, 16), 0xAA);
            const __m256i po = _mm256_blend_epi16(_mm256_srli_epi32(lo, 16), hi, 0xAA);
            TV_TILE_UNROLL for (int t = 0; t < T; t++) {
                so[t] = kpa_dotw(so[t], pe, xb[t]->bsums + 4 * q, vnni);
                so[t] = kpa_dotw(so[t], po, xb[t]->bsums + 4 * q + 2, vnni);
            }
        }
        const __m256 noff = q3 ? _mm256_mul_ps(d, _mm256_set1_ps(-4.0f))
                               : _mm256_xor_ps(_mm256_set1_ps(-0.0f),   // -dmin (a sign flip: -0 for 0, as the chain)
                                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ph + 32 + 16 * hh))));
        TV_TILE_UNROLL for (int t = 0; t < T; t++) {
            u[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(so[t]), noff, u[t]);
            acc[t] = _mm256_fmadd_ps(u[t], _mm256_set1_ps(xb[t]->d), acc[t]);
        }
    }
    TV_TILE_UNROLL for (int t = 0; t < T; t++) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

#define K23_FNS(NAME, BODY)                                                                                        \
    KPA_HALF_FN(NAME, BODY, 1, 0) KPA_HALF_FN(NAME, BODY, 2, 0) KPA_HALF_FN(NAME, BODY, 3, 0)                     \
    KPA_HALF_FN(NAME, BODY, 4, 0) KPA_HALF_FN(NAME, BODY, 1, 1) KPA_HALF_FN(NAME, BODY, 2, 1)                     \
    KPA_HALF_FN(NAME, BODY, 3, 1) KPA_HALF_FN(NAME, BODY, 4, 1)                                                   \
    static const kpa_half_tab NAME##_k = { { 0, NAME##_1_0, NAME##_2_0, NAME##_3_0, NAME##_4_0 },                 \
                                           { 0, NAME##_1_1, NAME##_2_1, NAME##_3_1, NAME##_4_1 } };   // [vnni][T]
#define Q3K_HALF(...) k23_half(true, __VA_ARGS__)
#define Q2K_HALF(...) k23_half(false, __VA_ARGS__)
K23_FNS(q3k, Q3K_HALF)
K23_FNS(q2k, Q2K_HALF)

static void q3k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kpa_step(q3k_k, K23_TM, arg, rg, rend, t0, tp); }
static void q2k_step(void *arg, int64_t rg, int64_t rend, int64_t t0, int64_t tp) { kpa_step(q2k_k, K23_TM, arg, rg, rend, t0, tp); }

KPA_GEMM(q3_K_packed_mad, q3k_step, false)
KPA_GEMM(q3_K_packed_vnni, q3k_step, true)
KPA_GEMM(q2_K_packed_mad, q2k_step, false)
KPA_GEMM(q2_K_packed_vnni, q2k_step, true)

void x86_install_kq23_avx2(tv_type_traits *t, bool vnni) {
    t[TV_TYPE_Q3_K].gemm_packed = vnni ? q3_K_packed_vnni : q3_K_packed_mad;
    t[TV_TYPE_Q2_K].gemm_packed = vnni ? q2_K_packed_vnni : q2_K_packed_mad;
    t[TV_TYPE_Q3_K].pack_pays = t[TV_TYPE_Q2_K].pack_pays = true;
}
