// roofline_isa.h — per-ISA probe loops behind roofline.c (x86-64 only). Each returns a value
// derived from every accumulator so the compiler cannot drop the work.
//   *_read_sum   sums n_bytes (multiple of 256, 64-byte aligned) of buf as 32-bit lanes
//   *_int8       n_iter rounds of independent dot-product accumulations
//   *_fp32       n_iter rounds of independent FMAs
// Work per call (what roofline.c divides by the time) is n_iter * the *_PER_ITER constant.
// Results (what tests check): int8 loops start accumulator c at c and add 4 * 3 * (-2) = -24 per
// round to every 32-bit lane, then return the sum over lanes of the XOR over accumulators; fp32
// loops start accumulator c at c, apply a = fma(a, 0.999999f, 1e-3f) per round, and return the
// sum over lanes of the accumulators added as documented in each file.
#ifndef TV_UTIL_ROOFLINE_ISA_H
#define TV_UTIL_ROOFLINE_ISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Independent accumulators: latency (4-5 cycles) x ports (2) rounded up, within the register file
// (32 zmm with AVX-512, 16 ymm without, minus inputs and temporaries).
#define ROOFLINE_CHAINS_ZMM 16
#define ROOFLINE_CHAINS_YMM 12
#define ROOFLINE_CHAINS_MADDUBS 8
#define ROOFLINE_AVX512_INT8_MACS_PER_ITER (ROOFLINE_CHAINS_ZMM * 64)     // vpdpbusd zmm: 64 MACs
#define ROOFLINE_AVX512_FP32_FLOPS_PER_ITER (ROOFLINE_CHAINS_ZMM * 32)    // vfmadd zmm: 16 lanes x 2
#define ROOFLINE_AVXVNNI_INT8_MACS_PER_ITER (ROOFLINE_CHAINS_YMM * 32)    // vpdpbusd ymm: 32 MACs
#define ROOFLINE_AVX2_INT8_MACS_PER_ITER (ROOFLINE_CHAINS_MADDUBS * 32)   // maddubs triple: 32 MACs
#define ROOFLINE_AVX2_FP32_FLOPS_PER_ITER (ROOFLINE_CHAINS_YMM * 16)      // vfmadd ymm: 8 lanes x 2
// AMX (roofline_amx.c): a round is 4 tile products of 16 x 16 outputs, K = 64 int8 (tdpbssd) or
// K = 32 bf16 (tdpbf16ps); every input is 1, so after n rounds each int8 accumulator element is
// 64 n (mod 2^32) and each bf16 one 32 n; the probes return the sum of element [0][0] of the 4
// accumulators (256 n, and 128 n as a float).
#define ROOFLINE_AMX_INT8_MACS_PER_ITER (4 * 16 * 16 * 64)
#define ROOFLINE_AMX_BF16_FLOPS_PER_ITER (4 * 16 * 16 * 32 * 2)

#if defined(__x86_64__)
bool roofline_cpu_has_avxvnni(void);   // CPUID leaf 7.1 EAX bit 4 (in roofline.c)
uint32_t roofline_avx512_read_sum(const void *buf, size_t n_bytes);
uint32_t roofline_avx512_int8(int64_t n_iter);
float roofline_avx512_fp32(int64_t n_iter);
uint32_t roofline_avx2_read_sum(const void *buf, size_t n_bytes);
uint32_t roofline_avxvnni_int8(int64_t n_iter);
uint32_t roofline_avx2_int8(int64_t n_iter);
float roofline_avx2_fp32(int64_t n_iter);
uint32_t roofline_amx_int8(int64_t n_iter);   // TV_HAVE_AMX builds only
float roofline_amx_bf16(int64_t n_iter);
#endif

#endif
