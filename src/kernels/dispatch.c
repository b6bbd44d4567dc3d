// dispatch.c — CPU feature detection and the filling of a kernel table (kern_table) for one path.
//
// A table starts as a copy of the scalar reference table (types.c); an ISA installer (x86/*.c)
// then replaces the entries it has fast kernels for. The caller names the path: "generic" |
// "avx2" | "avx2-novnni" | "avx512" | "avx512-novnni", or NULL/"" for the best the CPU and OS
// support. The "-novnni" variants exist so tests can exercise the non-VNNI int8 code on a VNNI
// machine. Nothing here is global: each caller owns the table it filled.
#include <string.h>

#include "kernels/kernels_impl.h"
#include "util/status.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TV_X86 1
#endif

typedef struct cpu_features {
    bool avx2;          // AVX2 + FMA + F16C with OS-enabled YMM state
    bool avx512;        // AVX512 F/BW/VL/DQ with OS-enabled ZMM/opmask state
    bool avx512_vnni;
    bool avx512_bf16;
    bool avx_vnni;
} cpu_features;

static cpu_features detect(void) {
    cpu_features f = { 0 };
#ifdef TV_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx) return f;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    bool ymm_os = (xlo & 0x6) == 0x6, zmm_os = (xlo & 0xE6) == 0xE6;
    if (!ymm_os || __get_cpuid_max(0, NULL) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    bool a512f = b & (1u << 16), a512dq = b & (1u << 17), a512bw = b & (1u << 30), a512vl = b & (1u << 31);
    bool a512vnni = c & (1u << 11);
    __cpuid_count(7, 1, a, b, c, d);
    bool avxvnni = a & (1u << 4), a512bf16 = a & (1u << 5);
    f.avx2 = avx2 && fma && f16c;
    f.avx512 = f.avx2 && zmm_os && a512f && a512dq && a512bw && a512vl;
    f.avx512_vnni = f.avx512 && a512vnni;
    f.avx512_bf16 = f.avx512 && a512bf16;
    f.avx_vnni = f.avx2 && avxvnni;
#endif
    return f;
}

tv_status kern_table_init(kern_table *kt, const char *force, tv_error *err) {
    if (force && !*force) force = NULL;
    cpu_features f = detect();
    tv_type_traits *t = kt->traits;
    memcpy(t, ref_table, sizeof kt->traits);
    const char *path = "generic";
    if (force && strcmp(force, "generic") == 0) {
        path = "generic";
    } else if (force && strncmp(force, "avx512", 6) == 0 && (!force[6] || !strcmp(force + 6, "-novnni"))) {
        if (!f.avx512) return err_fail(err, TV_ERR_UNSUPPORTED, "kernels: this CPU lacks AVX-512 (F/BW/VL/DQ)");
#ifdef TV_X86
        x86_install_avx512(t, f.avx512_vnni && !force[6], f.avx_vnni && !force[6]);
        x86_install_quants_avx512(t, f.avx512_vnni && !force[6]);
#endif
        path = "avx512";
    } else if (force && strncmp(force, "avx2", 4) == 0 && (!force[4] || !strcmp(force + 4, "-novnni"))) {
        if (!f.avx2) return err_fail(err, TV_ERR_UNSUPPORTED, "kernels: this CPU lacks AVX2/FMA/F16C");
#ifdef TV_X86
        x86_install_avx2(t, f.avx_vnni && !force[4]);
        x86_install_quants_avx2(t, f.avx_vnni && !force[4]);
#endif
        path = "avx2";
    } else if (force) {
        return err_fail(err, TV_ERR_INVALID, "kernels: unknown CPU path '%s' (generic|avx2|avx512)", force);
    } else if (f.avx512) {
#ifdef TV_X86
        x86_install_avx512(t, f.avx512_vnni, f.avx_vnni);
        x86_install_quants_avx512(t, f.avx512_vnni);
#endif
        path = "avx512";
    } else if (f.avx2) {
#ifdef TV_X86
        x86_install_avx2(t, f.avx_vnni);
        x86_install_quants_avx2(t, f.avx_vnni);
#endif
        path = "avx2";
    }
#ifdef TV_X86
    if (!strcmp(path, "avx512")) x86_install_mxfp4_avx512(t);
    else if (!strcmp(path, "avx2")) x86_install_mxfp4_avx2(t);
#endif
    kt->path = path;
    kt->ops = ops_for_path(path);
    if (!kt->ops) kt->ops = ops_ref();
    return TV_OK;
}
