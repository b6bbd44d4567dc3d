// fuzz_llama2c.c — libFuzzer target for the llama2.c checkpoint loader: parse an arbitrary buffer
// and touch the first and last byte of every tensor view, which must lie inside the buffer; the
// same bytes also go through the tokenizer.bin reader (with a token count taken from the input).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/llama2c.h"

static volatile uint64_t g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);   // exact size, 16-byte aligned
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    tv_error err = { 0 };
    int32_t n_vocab = size ? 1 + data[0] % 64 : 1;
    tv_llama2c_vocab *v = llama2c_vocab_open_memory(copy, size, n_vocab, "fuzz", &err);
    if (v) {
        for (int32_t i = 0; i < v->n_vocab; i++) {
            uint32_t bits;
            memcpy(&bits, &v->scores[i], 4);
            g_sink += v->lens[i] + (uint8_t)v->pieces[i][v->lens[i]] + bits;
        }
        llama2c_vocab_free(v);
    } else if (err.code == TV_OK || err.msg[0] == 0) {
        __builtin_trap();
    }
    tv_llama2c *m = llama2c_open_memory(copy, size, "fuzz", &err);
    if (!m) {
        if (err.code == TV_OK || err.msg[0] == 0) __builtin_trap();
        free(copy);
        return 0;
    }
    for (int i = 0; i < llama2c_n_tensors(m); i++) {
        const tv_tensor *t = llama2c_tensor(m, i);
        const uint8_t *p = t->data;
        if (llama2c_find(m, t->name) != t) __builtin_trap();
        if (p < copy || p + t->nbytes > copy + size || t->nbytes == 0) __builtin_trap();
        g_sink += p[0] + p[t->nbytes - 1];
    }
    llama2c_close(m);
    free(copy);
    return 0;
}
