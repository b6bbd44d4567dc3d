// vocab_vectors.h — llama.cpp's tokenizer test vectors, shared by the tokenizer tests (include after
// <cmocka.h> and test_util.h). <base>.inp holds inputs separated by "\n__ggml_vocab_test__\n",
// <base>.out one line of expected ids per input (no BOS, parse_special off).
#ifndef TV_VOCAB_VECTORS_H
#define TV_VOCAB_VECTORS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

// Encodes every input with t and compares; prints mismatches and "<label>: ok/n inputs match".
// Skips the test (with a message) when the files are absent; fails unless all >= 40 inputs match.
static inline void check_vocab_vectors(const tv_tokenizer *t, const char *base, const char *label) {
    char ipath[1100], opath[1100];
    snprintf(ipath, sizeof ipath, "%s.inp", base);
    snprintf(opath, sizeof opath, "%s.out", base);
    size_t ilen = 0;
    char *inp = read_all(ipath, &ilen), *outs = read_all(opath, NULL);
    if (!inp || !outs) { free(inp); free(outs); printf("SKIP: %s not found\n", ipath); skip(); }
    const char *sep = "\n__ggml_vocab_test__\n";
    const size_t seplen = strlen(sep);
    size_t pos = 0;
    char *oline = outs;
    int n_tests = 0, n_ok = 0;
    tv_error err = {0};
    while (pos < ilen) {
        char *next = strstr(inp + pos, sep);
        size_t end = next ? (size_t)(next - inp) : ilen;
        char *nl = strchr(oline, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int32_t want[512];
        size_t n_want = 0;
        for (char *p = oline; *p;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            assert_true(n_want < 512);
            want[n_want++] = (int32_t)v;
            p = e;
        }
        int32_t *ids;
        size_t n;
        assert_int_equal(tv_tokenize(t, inp + pos, end - pos, false, false, &ids, &n, &err), TV_OK);
        bool ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        n_tests++;
        n_ok += ok;
        if (!ok) {
            printf("  MISMATCH input %d '%.*s'\n    want:", n_tests, (int)(end - pos), inp + pos);
            for (size_t i = 0; i < n_want; i++) printf(" %d", want[i]);
            printf("\n    got: ");
            for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
            printf("\n");
        }
        free(ids);
        oline = nl + 1;
        if (!next) break;
        pos = end + seplen;
    }
    printf("%s: %d/%d inputs match\n", label, n_ok, n_tests);
    free(inp);
    free(outs);
    assert_true(n_tests >= 40);
    assert_int_equal(n_ok, n_tests);
}

#endif
