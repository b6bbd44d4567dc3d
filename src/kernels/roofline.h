// roofline.h — the machine's own limits, measured in about a second, so benchmarks can report
// results as fractions of what this CPU and its memory can do with the same thread count.
//
//   mem_bw_gbs   streaming read bandwidth, GB/s (1e9 B/s): SIMD sum over a buffer far larger
//                than the last-level cache, each thread reading its own contiguous slice; best of 5
//   int8_gops    int8 dot-product peak, GOPS (1e9 ops/s, 2 ops per multiply-accumulate):
//                chains of VNNI vpdpbusd (AVX-512 VNNI zmm or AVX-VNNI ymm), else AVX2
//                vpmaddubsw + vpmaddwd + vpaddd; enough independent accumulators to hide latency
//   fp32_gflops  fp32 FMA peak, GFLOPS (2 flops per lane per FMA), zmm or ymm
//   amx_int8_gops, amx_bf16_gflops  AMX tile peaks (4 independent tdpbssd / tdpbf16ps per round,
//                operands in tile registers), measured only where the "amx" kernel path can run
// The ISA is chosen at run time by CPUID; `isa` names it ("avx512-vnni", "avx-vnni", "avx2",
// "generic"). Peaks are of the instruction stream, not of any kernel: a kernel's fraction of them
// says how much headroom it has.
#ifndef TV_UTIL_ROOFLINE_H
#define TV_UTIL_ROOFLINE_H


// tv_roofline and tv_roofline_measure are public (tinyvllm_tools.h); this header adds nothing but the
// description above.
#include "tinyvllm_tools.h"

#endif
