// test_util.h — helpers shared by the cmocka tests (include after <cmocka.h>).
#ifndef TV_TEST_UTIL_H
#define TV_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

// The shared data directory: $TV_SHARED_DIR, else the one CMake was configured with.
static inline const char *shared_dir(void) {
    const char *d = getenv("TV_SHARED_DIR");
    return d && *d ? d : TV_SHARED_DIR;
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

#endif
