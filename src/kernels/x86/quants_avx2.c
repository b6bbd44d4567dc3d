// quants_avx2.c — the AVX2 path's kernels for Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K and IQ4_XS
// (bodies in quants_x86.h), with AVX-VNNI's vpdpbusd where the CPU has it.
// Compiled with -mavx2 -mfma -mf16c -mavxvnni: nothing here may run before dispatch.c has checked
// the CPU.
#define QX_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#include "kernels/x86/quants_x86.h"

void x86_install_quants_avx2(tv_type_traits *t, bool vnni256) { qx_install(t, vnni256); }
