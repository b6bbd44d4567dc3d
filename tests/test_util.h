// test_util.h — helpers shared by the cmocka tests (include after <cmocka.h>).
#ifndef TV_TEST_UTIL_H
#define TV_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tinyvllm.h"

// The shared data directory: $TV_SHARED_DIR, else the one CMake was configured with.
static inline const char *shared_dir(void) {
    const char *d = getenv("TV_SHARED_DIR");
    return d && *d ? d : TV_SHARED_DIR;
}

// For a cmocka group setup: loads ../shared/models/<name> into *m. Returns 0 when it loaded, and
// also when the file is absent (*m stays NULL: the tests skip, saying so, with SKIP_IF_NO(*m, name));
// -1 when it fails to load (the message on stderr).
static inline int test_load_shared_model(const char *name, tv_model **m) {
    char path[1200];
    snprintf(path, sizeof path, "%s/models/%s", shared_dir(), name);
    *m = NULL;
    if (access(path, R_OK) != 0) return 0;
    tv_error err = {0};
    if (!(*m = tv_model_load(path, NULL, &err))) fprintf(stderr, "load %s: %s\n", path, err.msg);
    return *m ? 0 : -1;
}
#define SKIP_IF_NO(model, name) \
    do { if (!(model)) { print_message("skipped: ../shared/models/%s is absent\n", name); skip(); } } while (0)

// The CPU kernel path to test: $TINYVLLM_CPU (generic|avx2|avx2-novnni|avx512|avx512-novnni), else
// NULL = the best available. The library reads no environment: tests pass this in
// (tv_engine_config.cpu_path, tv_model_params.cpu_path, backend_cpu_create, kern_table_init).
static inline const char *test_cpu_path(void) {
    const char *p = getenv("TINYVLLM_CPU");
    return p && *p ? p : NULL;
}

// The whole file, NUL-terminated (malloc'd); NULL when it can't be opened. *len = its size.
static inline char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

// Deterministic test data: xorshift64 (state per test binary; test_rng_seed to change it).
static inline uint64_t *test_rng_state(void) {
    static uint64_t s = 0x9E3779B97F4A7C15ull;
    return &s;
}
static inline void test_rng_seed(uint64_t seed) { *test_rng_state() = seed ? seed : 1; }
static inline uint32_t rnd_u32(void) {
    uint64_t *s = test_rng_state();
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}
static inline float rnd_unit(void) { return ((float)(rnd_u32() >> 8) + 0.5f) / 16777216.0f; }   // (0, 1)
static inline float rnd_normal(void) {
    float u = rnd_unit(), v = rnd_unit();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

#endif
