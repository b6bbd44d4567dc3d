// fuzz_wire.c — libFuzzer target for the messages between pipeline stages (dist/wire.c): the input
// is read as a stage's incoming message (wire_unpack) and as rank 0's reply to a round of three rows
// (wire_reply_unpack). A message that parses must have views inside the input, a count of block ids
// that matches its context lengths and rows of a known mode; a failure must say why.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/wire.h"

enum { DIM = 4, MAX_SEQS = 8, MAX_LOGITS = 8, MAX_TOKENS = 16, N_VOCAB = 6 };

static void check_in(const void *p, size_t bytes, const char *lo, size_t n) {
    if (bytes && ((const char *)p < lo || (const char *)p + bytes > lo + n)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n = size / 4 * 4;   // messages are 4-aligned
    int32_t *buf = malloc(n ? n : 4);
    if (!buf) return 0;
    memcpy(buf, data, n);
    const char *lo = (const char *)buf;
    const int32_t *tables[MAX_SEQS];
    pipe_row rows[MAX_LOGITS];
    float hidden[MAX_TOKENS * DIM];
    wire_msg w;
    tv_error err = {0};
    tv_status st = wire_unpack(buf, n, DIM, MAX_SEQS, MAX_LOGITS, MAX_TOKENS, hidden, tables, rows, &w, &err);
    if (st != TV_OK && !err.msg[0]) abort();
    if (st == TV_OK && w.kind == WIRE_STEP) {
        const tv_batch *b = &w.b;
        if (b->n_tokens < 1 || b->n_tokens > MAX_TOKENS || b->n_seqs < 1 || b->n_seqs > MAX_SEQS || b->n_logits > MAX_LOGITS) abort();
        check_in(b->tokens, (size_t)b->n_tokens * 4, lo, n);
        check_in(b->logit_rows, (size_t)b->n_logits * 4, lo, n);
        for (int s = 0; s < b->n_seqs; s++) {
            const size_t len = (size_t)(b->ctx_len[s] + w.block_size - 1) / (size_t)w.block_size;
            check_in(b->block_tables[s], len * 4, lo, n);
        }
        for (int r = 0; r < b->n_logits; r++)
            if (rows[r].mode != PIPE_ROW_LOGITS && rows[r].mode != PIPE_ROW_SAMPLE) abort();
        if (w.hidden_bits == 32) check_in(b->hidden, (size_t)b->n_tokens * DIM * 4, lo, n);
        else if (b->hidden != hidden) abort();
    }
    const pipe_row asked[3] = {{.mode = PIPE_ROW_SAMPLE, .n_top = -1}, {.mode = PIPE_ROW_LOGITS}, {.mode = PIPE_ROW_SAMPLE, .n_top = 2}};
    pipe_out outs[3];
    memset(&err, 0, sizeof err);
    st = wire_reply_unpack(buf, n, n >= 8 ? buf[1] : 0, asked, 3, N_VOCAB, outs, &err);
    if (st != TV_OK && !err.msg[0]) abort();
    if (st == TV_OK) {
        check_in(outs[1].logits, N_VOCAB * 4, lo, n);
        check_in(outs[2].top, 2 * sizeof(tv_logprob), lo, n);
        if (outs[0].logits || outs[2].logits) abort();
    }
    free(buf);
    return 0;
}
