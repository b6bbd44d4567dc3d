// quants_avx512.c — the AVX-512 path's kernels for Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K and
// IQ4_XS: the bodies of quants_x86.h compiled for AVX-512 (EVEX encoding, 32 vector registers),
// with AVX512-VNNI's vpdpbusd on ymm registers where the CPU has it.
// Compiled with the AVX-512 flags: nothing here may run before dispatch.c has checked the CPU.
#define QX_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#include "kernels/x86/quants_x86.h"

void x86_install_quants_avx512(tv_type_traits *t, bool vnni512) { qx_install(t, vnni512); }
