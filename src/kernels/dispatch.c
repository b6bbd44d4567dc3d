// dispatch.c — CPU feature detection and the filling of a kernel table (kern_table) for one path.
//
// A table starts as a copy of the scalar reference table (types.c); an ISA installer (x86/*.c)
// then replaces the entries it has fast kernels for. The caller names the path: "generic" |
// "avx2" | "avx2-novnni" | "avx512" | "avx512-novnni" | "amx", or NULL/"" for the best the CPU and
// OS support. The "-novnni" variants exist so tests can exercise the non-VNNI int8 code on a VNNI
// machine. Nothing here is global: each caller owns the table it filled.
// "amx" is the AVX-512 VNNI path with AMX tile kernels installed over it (x86/kern_amx.c). It needs
// the CPU's AMX-TILE/INT8/BF16 (CPUID 7.0 EDX bits 24, 25, 22), the OS's tile state enabled in
// XCR0 (bits 17, 18), Linux's per-process permission for tile data (arch_prctl
// ARCH_REQ_XCOMP_PERM, asked here; granting it is idempotent) and a build whose assembler knows
// AMX (TV_HAVE_AMX); when any is missing the path is refused with that reason and the default is
// avx512.
#include <string.h>

#include "kernels/kernels_impl.h"
#include "util/status.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TV_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

typedef struct cpu_features {
    bool avx2;          // AVX2 + FMA + F16C with OS-enabled YMM state
    bool avx512;        // AVX512 F/BW/VL/DQ with OS-enabled ZMM/opmask state
    bool avx512_vnni;
    bool avx512_bf16;
    bool avx_vnni;
    bool amx;           // the "amx" path can run: see the top of the file
    const char *no_amx; // why it cannot (a static sentence), NULL when it can
} cpu_features;

#ifdef TV_X86
// AMX on top of AVX-512 VNNI. edx7: CPUID 7.0 EDX; xcr0: the low word of XCR0.
static const char *amx_missing(const cpu_features *f, unsigned edx7, unsigned xcr0) {
    const bool tile = edx7 & (1u << 24), int8 = edx7 & (1u << 25), bf16 = edx7 & (1u << 22);
    if (!tile || !int8 || !bf16) return "this CPU lacks AMX (AMX-TILE, AMX-INT8, AMX-BF16)";
    if (!f->avx512_vnni) return "this CPU lacks AVX-512 VNNI, which the AMX kernels build on";
    if ((xcr0 & 0x60000u) != 0x60000u) return "the OS does not enable the AMX tile state (XCR0 bits 17, 18)";
#ifndef TV_HAVE_AMX
    return "this build has no AMX kernels (its assembler lacks the AMX instructions)";
#elif defined(__linux__) && defined(__x86_64__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return "the kernel refused AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM)";
    return NULL;
#else
    return "AMX tile permission is only requested on Linux x86-64";
#endif
}
#endif

static cpu_features detect(void) {
    cpu_features f = { .no_amx = "not an x86-64 CPU" };
#ifdef TV_X86
    f.no_amx = "this CPU lacks AVX-512";
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
    const unsigned edx7 = d;
    __cpuid_count(7, 1, a, b, c, d);
    bool avxvnni = a & (1u << 4), a512bf16 = a & (1u << 5);
    f.avx2 = avx2 && fma && f16c;
    f.avx512 = f.avx2 && zmm_os && a512f && a512dq && a512bw && a512vl;
    f.avx512_vnni = f.avx512 && a512vnni;
    f.avx512_bf16 = f.avx512 && a512bf16;
    f.avx_vnni = f.avx2 && avxvnni;
    if (f.avx512) {
        f.no_amx = amx_missing(&f, edx7, xlo);
        f.amx = f.no_amx == NULL;
    }
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
    } else if (force && strcmp(force, "amx") == 0) {
        if (!f.amx) return err_fail(err, TV_ERR_UNSUPPORTED, "kernels: no AMX path: %s", f.no_amx);
        path = "amx";
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
        return err_fail(err, TV_ERR_INVALID, "kernels: unknown CPU path '%s' (generic|avx2|avx512|amx)", force);
    } else if (f.amx) {
        path = "amx";
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
#if defined(TV_X86) && defined(TV_HAVE_AMX)
    if (!strcmp(path, "amx")) {
        x86_install_avx512(t, true, f.avx_vnni);
        x86_install_quants_avx512(t, true);
        x86_install_amx(t);
    }
#endif
#ifdef TV_X86
    const bool novnni = force && strstr(force, "-novnni");
    if (!strcmp(path, "avx512") || !strcmp(path, "amx")) x86_install_mxfp4_avx512(t, f.avx512_vnni && !novnni);
    else if (!strcmp(path, "avx2")) x86_install_mxfp4_avx2(t, f.avx_vnni && !novnni);
#endif
    kt->path = path;
    kt->ops = ops_for_path(strcmp(path, "amx") ? path : "avx512");   // amx: AVX-512 attention and ops
    if (!kt->ops) kt->ops = ops_ref();
    return TV_OK;
}

const char *tv_cpu_best_path(void) {
    const cpu_features f = detect();
    return f.amx ? "amx" : f.avx512 ? "avx512" : f.avx2 ? "avx2" : "generic";
}

const char *tv_cpu_amx_unavailable(void) { return detect().no_amx; }
