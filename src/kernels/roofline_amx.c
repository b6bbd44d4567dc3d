// roofline_amx.c — AMX probe loops for roofline.c (inline assembly; built when the assembler knows
// AMX, like x86/kern_amx.c). The caller checked that the CPU, the OS and the tile permission allow
// AMX (tv_cpu_amx_unavailable() == NULL). Each call configures the tiles itself (the state is per
// thread) and releases them at the end.
// Tiles: tmm0..3 accumulators (16 x 16), tmm4, tmm5 A (16 rows x 64 bytes), tmm6, tmm7 B (16 rows
// x 64 bytes); one round = 4 independent tile products (2 A x 2 B), the register blocking a GEMM
// kernel uses, so the peak is that of the instruction with its operands in registers.
#include "kernels/roofline_isa.h"

#if defined(__x86_64__)
#include <string.h>

typedef struct __attribute__((aligned(64))) amx_probe_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_probe_cfg;

// Loads every tile: accumulators from zero, inputs filled with the 16-bit pattern in.
static void amx_probe_setup(uint16_t in) {
    amx_probe_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) { c.rows[i] = 16; c.colsb[i] = 64; }
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
    uint16_t buf[16 * 32] __attribute__((aligned(64)));   // (16 rows, 64 bytes)
    for (int i = 0; i < 16 * 32; i++) buf[i] = in;
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm4\n\t"
                     "tileloadd (%0,%1,1), %%tmm5\n\t"
                     "tileloadd (%0,%1,1), %%tmm6\n\t"
                     "tileloadd (%0,%1,1), %%tmm7\n\t"
                     "tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3"
                     ::"r"(buf), "r"(64L) : "memory");
}

// Element [0][0] of each accumulator, as 32-bit words.
static void amx_probe_result(uint32_t out[4]) {
    uint32_t c[4][16 * 16] __attribute__((aligned(64)));
    __asm__ volatile("tilestored %%tmm0, (%0,%4,1)\n\t"
                     "tilestored %%tmm1, (%1,%4,1)\n\t"
                     "tilestored %%tmm2, (%2,%4,1)\n\t"
                     "tilestored %%tmm3, (%3,%4,1)\n\t"
                     "tilerelease"
                     ::"r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(64L) : "memory");
    for (int i = 0; i < 4; i++) out[i] = c[i][0];
}

uint32_t roofline_amx_int8(int64_t n_iter) {
    amx_probe_setup(0x0101);   // every int8 input 1
    for (int64_t i = 0; i < n_iter; i++)
        __asm__ volatile("tdpbssd %tmm6, %tmm4, %tmm0\n\ttdpbssd %tmm7, %tmm4, %tmm1\n\t"
                         "tdpbssd %tmm6, %tmm5, %tmm2\n\ttdpbssd %tmm7, %tmm5, %tmm3");
    uint32_t r[4];
    amx_probe_result(r);
    return r[0] + r[1] + r[2] + r[3];
}

float roofline_amx_bf16(int64_t n_iter) {
    amx_probe_setup(0x3F80);   // every bf16 input 1.0
    for (int64_t i = 0; i < n_iter; i++)
        __asm__ volatile("tdpbf16ps %tmm6, %tmm4, %tmm0\n\ttdpbf16ps %tmm7, %tmm4, %tmm1\n\t"
                         "tdpbf16ps %tmm6, %tmm5, %tmm2\n\ttdpbf16ps %tmm7, %tmm5, %tmm3");
    uint32_t r[4];
    amx_probe_result(r);
    float f[4];
    memcpy(f, r, sizeof f);
    return f[0] + f[1] + f[2] + f[3];
}
#endif
