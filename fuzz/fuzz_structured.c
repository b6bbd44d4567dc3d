// fuzz_structured.c — libFuzzer target for the constraint front-ends (src/structured/): the first
// byte picks JSON Schema, regex, choice list or GBNF, the rest is the spec. A spec must compile
// or fail with a message; one that compiles is run: a matcher over a small byte vocabulary takes
// a few random-but-allowed steps, and every mask bit must agree with matcher_check.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "structured/constraint.h"
#include "structured/matcher.h"

#define V 260   // 256 bytes, two multi-byte pieces, EOS, a control token

static matcher_vocab *vocab(void) {
    static matcher_vocab *v;
    if (v) return v;
    static char bytes[256];
    const char *piece[V];
    size_t len[V];
    bool text[V], eog[V];
    for (int i = 0; i < V; i++) {
        bytes[i & 255] = (char)i;
        piece[i] = i < 256 ? &bytes[i] : i == 256 ? "{\"" : i == 257 ? "\": " : "x";
        len[i] = i < 256 ? 1 : i < 258 ? strlen(piece[i]) : 1;
        text[i] = i < 258;
        eog[i] = i == 258;
    }
    v = matcher_vocab_create(V, piece, len, text, eog, NULL);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const tv_constraint_kind kinds[] = {TV_CONSTRAINT_JSON_SCHEMA, TV_CONSTRAINT_REGEX, TV_CONSTRAINT_CHOICE,
                                               TV_CONSTRAINT_GRAMMAR};
    const tv_constraint_kind kind = kinds[data[0] % 4];
    tv_error err = {0};
    gram *g = constraint_parse(kind, (const char *)data + 1, size - 1, &err);
    if (!g) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    matcher_grammar *cg = matcher_grammar_compile(g, vocab(), &err);
    gram_free(g);
    if (!cg) return 0;
    matcher *m = matcher_create(cg, &err);
    uint32_t mask[(V + 31) / 32];
    uint32_t pick = data[0];
    for (int step = 0; m && step < 16; step++) {
        if (matcher_fill_mask(m, mask) != TV_OK) break;
        int32_t allowed[V];
        int n = 0;
        for (int32_t t = 0; t < V; t++) {
            const bool bit = mask[t >> 5] >> (t & 31) & 1;
            if (bit != (matcher_check(m, &t, 1) == 1)) __builtin_trap();
            if (bit) allowed[n++] = t;
        }
        if (!n) __builtin_trap();   // a live state always has a way on (EOS at least)
        pick = pick * 1103515245u + 12345u;
        const int32_t t = allowed[(pick >> 8) % (uint32_t)n];
        if (!matcher_advance(m, t)) __builtin_trap();
        if (matcher_is_done(m)) break;
    }
    matcher_free(m);
    matcher_grammar_free(cg);
    return 0;
}
