// wire.c — the messages between pipeline stages (wire.h).
#include "dist/wire.h"

#include <stdio.h>
#include <string.h>

#include "engine/postprocess.h"
#include "kernels/kernels.h"
#include "util/status.h"

_Static_assert(sizeof(pipe_row) == 32, "pipe_row travels as 32 bytes");
_Static_assert(sizeof(tv_logprob) == 8, "a logprob travels as (int32 id, f32 logprob)");
_Static_assert(sizeof(wire_note) % 4 == 0, "wire_note keeps the message 4-aligned");
_Static_assert(offsetof(wire_note, msg) == WIRE_NOTE_HEAD, "a reply starts with a wire_note's head");

static int64_t table_len(int32_t ctx_len, int block_size) { return ((int64_t)ctx_len + block_size - 1) / block_size; }

static int64_t n_table_of(const tv_batch *b, int block_size) {
    int64_t n = 0;
    for (int s = 0; s < b->n_seqs; s++) n += table_len(b->ctx_len[s], block_size);
    return n;
}

static size_t ints_of(int64_t T, int64_t S, int64_t L, int64_t n_table) {
    return (size_t)(WIRE_HEADER + 2 * T + (S + 1) + S + L + n_table);
}

// Bytes of a (T, dim) hidden state of bits (32, 16), padded to 4.
static size_t hidden_bytes(int64_t T, int dim, int bits) {
    const size_t n = (size_t)T * (size_t)dim * (bits == 16 ? sizeof(tv_f16) : sizeof(float));
    return (n + 3) / 4 * 4;
}

static size_t step_size(int64_t T, int64_t S, int64_t L, int64_t n_table, int dim, int bits) {
    return ints_of(T, S, L, n_table) * sizeof(int32_t) + (size_t)L * sizeof(pipe_row) + hidden_bytes(T, dim, bits);
}

size_t wire_size(const tv_batch *b, int block_size, int dim, int hidden_bits) {
    return step_size(b->n_tokens, b->n_seqs, b->n_logits, n_table_of(b, block_size), dim, hidden_bits);
}

void wire_pack(void *buf, int32_t round, const tv_batch *b, int block_size, const pipe_row *rows, const float *hidden,
               int dim, int hidden_bits) {
    const int T = b->n_tokens, S = b->n_seqs, L = b->n_logits;
    int32_t *p = buf;
    const int64_t n_table = n_table_of(b, block_size);
    const int32_t head[WIRE_HEADER] = {WIRE_STEP, round, T, S, L, (int32_t)n_table, block_size, hidden_bits};
    memcpy(p, head, sizeof head);
    p += WIRE_HEADER;
    memcpy(p, b->tokens, (size_t)T * sizeof *p), p += T;
    memcpy(p, b->positions, (size_t)T * sizeof *p), p += T;
    memcpy(p, b->q_start, (size_t)(S + 1) * sizeof *p), p += S + 1;
    memcpy(p, b->ctx_len, (size_t)S * sizeof *p), p += S;
    memcpy(p, b->logit_rows, (size_t)L * sizeof *p), p += L;
    for (int s = 0; s < S; s++) {
        const int64_t n = table_len(b->ctx_len[s], block_size);
        memcpy(p, b->block_tables[s], (size_t)n * sizeof *p);
        p += n;
    }
    char *c = (char *)p;
    memcpy(c, rows, (size_t)L * sizeof *rows);
    c += (size_t)L * sizeof *rows;
    const size_t n_h = (size_t)T * (size_t)dim;
    if (hidden_bits != 16) {
        memcpy(c, hidden, n_h * sizeof(float));
        return;
    }
    tv_f16 *h = (tv_f16 *)c;
    for (size_t i = 0; i < n_h; i++) h[i] = f32_to_f16(hidden[i]);
    if (n_h % 2) h[n_h] = 0;   // the padding
}

void wire_pack_stop(int32_t *header) {
    memset(header, 0, WIRE_HEADER * sizeof *header);
    header[0] = WIRE_STOP;
}

void wire_note_set(wire_note *n, int kind, int32_t round, tv_status status, int rank, const char *msg) {
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->round = round;
    n->status = status;
    n->rank = rank;
    snprintf(n->msg, sizeof n->msg, "%s", msg ? msg : "");
}

tv_status wire_unpack(const void *buf, size_t n, int dim, int max_seqs, int max_logits, int max_tokens,
                      float *hidden_f32, const int32_t **tables, pipe_row *rows, wire_msg *out, tv_error *err) {
    memset(out, 0, sizeof *out);
    const int32_t *p = buf;
    if (n < WIRE_HEADER * sizeof(int32_t) || n % sizeof(int32_t))
        return err_fail(err, TV_ERR_FORMAT, "pipeline message of %zu bytes is too short", n);
    out->kind = p[0];
    out->round = p[1];
    if (out->kind == WIRE_STOP) return TV_OK;
    if (out->kind == WIRE_FAIL) {
        if (n != sizeof out->note) return err_fail(err, TV_ERR_FORMAT, "pipeline failure note of %zu bytes", n);
        memcpy(&out->note, buf, sizeof out->note);
        out->note.msg[sizeof out->note.msg - 1] = 0;
        return TV_OK;
    }
    const int32_t T = p[2], S = p[3], L = p[4], n_table = p[5], bs = p[6], bits = p[7];
    if (out->kind != WIRE_STEP || T <= 0 || T > max_tokens || S <= 0 || S > max_seqs || L < 0 || L > max_logits ||
        n_table < 0 || bs <= 0 || (bits != 32 && bits != 16))
        return err_fail(err, TV_ERR_FORMAT, "pipeline message: bad header (kind %d, %d tokens, %d seqs, %d logits, %d-bit hidden state)",
                        out->kind, T, S, L, bits);
    const size_t want = step_size(T, S, L, n_table, dim, bits);
    if (n != want) return err_fail(err, TV_ERR_FORMAT, "pipeline message of %zu bytes, its header says %zu", n, want);
    p += WIRE_HEADER;
    tv_batch *b = &out->b;
    b->n_tokens = T;
    b->n_seqs = S;
    b->n_logits = L;
    b->tokens = p, p += T;
    b->positions = p, p += T;
    b->q_start = p, p += S + 1;
    b->ctx_len = p, p += S;
    b->logit_rows = p, p += L;
    int64_t used = 0;
    for (int s = 0; s < S; s++) {
        const int64_t len = b->ctx_len[s] > 0 ? table_len(b->ctx_len[s], bs) : 0;
        if (b->ctx_len[s] <= 0 || used + len > n_table)
            return err_fail(err, TV_ERR_FORMAT, "pipeline message: block tables do not match the context lengths");
        tables[s] = p + used;
        used += len;
    }
    if (used != n_table) return err_fail(err, TV_ERR_FORMAT, "pipeline message: %d block ids for %lld", n_table, (long long)used);
    b->block_tables = tables;
    const char *c = (const char *)(p + n_table);
    memcpy(rows, c, (size_t)L * sizeof *rows);
    for (int r = 0; r < L; r++)
        if ((rows[r].mode != PIPE_ROW_LOGITS && rows[r].mode != PIPE_ROW_SAMPLE) || rows[r].n_top < -1 ||
            rows[r].n_top > POST_MAX_TOP_LOGPROBS)
            return err_fail(err, TV_ERR_FORMAT, "pipeline message: row %d has mode %d, %d logprobs", r, rows[r].mode,
                            rows[r].n_top);
    out->rows = rows;
    c += (size_t)L * sizeof *rows;
    if (bits == 16) {
        const tv_f16 *h = (const tv_f16 *)c;
        for (size_t i = 0; i < (size_t)T * (size_t)dim; i++) hidden_f32[i] = f16_to_f32(h[i]);
        b->hidden = hidden_f32;
    } else {
        b->hidden = (const float *)c;
    }
    out->hidden_bits = bits;
    out->block_size = bs;
    return TV_OK;
}

static size_t row_bytes(const pipe_row *r, int n_vocab) {
    if (r->mode == PIPE_ROW_LOGITS) return (size_t)n_vocab * sizeof(float);
    return sizeof(tv_logprob) * (size_t)(1 + (r->n_top > 0 ? r->n_top : 0));
}

size_t wire_reply_size(const pipe_row *rows, int n_rows, int n_vocab) {
    size_t n = WIRE_NOTE_HEAD;
    for (int r = 0; r < n_rows; r++) n += row_bytes(&rows[r], n_vocab);
    return n;
}

void wire_reply_pack(void *buf, int32_t round, int rank, const pipe_row *rows, int n_rows, float *logits, int n_vocab,
                     struct tv_sampler *scratch) {
    wire_note h;
    wire_note_set(&h, WIRE_REPLY, round, TV_OK, rank, NULL);
    memcpy(buf, &h, WIRE_NOTE_HEAD);
    char *p = (char *)buf + WIRE_NOTE_HEAD;
    for (int r = 0; r < n_rows; r++) {
        float *row = logits + (size_t)r * (size_t)n_vocab;
        if (rows[r].mode == PIPE_ROW_LOGITS) {
            memcpy(p, row, (size_t)n_vocab * sizeof *row);
        } else {
            const int n_top = rows[r].n_top > 0 ? rows[r].n_top : 0;
            tv_logprob lp[1 + POST_MAX_TOP_LOGPROBS];
            lp[0].id = sampler_sample_plain(scratch, &rows[r].plain, row, rows[r].n_top >= 0 ? &lp[0] : NULL,
                                            n_top ? lp + 1 : NULL, n_top);
            if (rows[r].n_top < 0) lp[0].logprob = 0;
            memcpy(p, lp, (size_t)(1 + n_top) * sizeof *lp);
        }
        p += row_bytes(&rows[r], n_vocab);
    }
}

tv_status wire_reply_unpack(void *buf, size_t n, int32_t round, const pipe_row *rows, int n_rows, int n_vocab,
                            pipe_out *outs, tv_error *err) {
    wire_note h = {0};
    if (n < WIRE_NOTE_HEAD) return err_fail(err, TV_ERR_FORMAT, "pipeline reply of %zu bytes", n);
    memcpy(&h, buf, WIRE_NOTE_HEAD);
    if (h.kind != WIRE_REPLY || h.round != round)
        return err_fail(err, TV_ERR_FORMAT, "pipeline reply of kind %d to round %d, expected round %d", h.kind, h.round, round);
    if (h.status != TV_OK) {
        if (n != sizeof h) return err_fail(err, TV_ERR_FORMAT, "pipeline failure reply of %zu bytes", n);
        memcpy(&h, buf, sizeof h);
        h.msg[sizeof h.msg - 1] = 0;
        return err_fail(err, (tv_status)h.status, "pipeline stage on rank %d: %s", h.rank, h.msg);
    }
    const size_t want = wire_reply_size(rows, n_rows, n_vocab);
    if (n != want) return err_fail(err, TV_ERR_FORMAT, "pipeline reply of %zu bytes for %zu", n, want);
    char *p = (char *)buf + WIRE_NOTE_HEAD;
    for (int r = 0; r < n_rows; r++) {
        pipe_out *o = &outs[r];
        memset(o, 0, sizeof *o);
        if (rows[r].mode == PIPE_ROW_LOGITS) {
            o->logits = (float *)p;
        } else {
            memcpy(&o->chosen, p, sizeof o->chosen);
            o->id = o->chosen.id;
            o->top = rows[r].n_top > 0 ? (const tv_logprob *)(p + sizeof(tv_logprob)) : NULL;
        }
        p += row_bytes(&rows[r], n_vocab);
    }
    return TV_OK;
}
