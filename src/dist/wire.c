// wire.c — the batch message between pipeline stages (wire.h).
#include "dist/wire.h"

#include <string.h>

#include "util/status.h"

static int64_t table_len(int32_t ctx_len, int block_size) { return ((int64_t)ctx_len + block_size - 1) / block_size; }

static int64_t n_table_of(const tv_batch *b, int block_size) {
    int64_t n = 0;
    for (int s = 0; s < b->n_seqs; s++) n += table_len(b->ctx_len[s], block_size);
    return n;
}

static size_t ints_of(int64_t T, int64_t S, int64_t L, int64_t n_table) {
    return (size_t)(WIRE_HEADER + 2 * T + (S + 1) + S + L + n_table);
}

size_t wire_size(const tv_batch *b, int block_size, int dim) {
    return ints_of(b->n_tokens, b->n_seqs, b->n_logits, n_table_of(b, block_size)) * sizeof(int32_t) +
           (size_t)b->n_tokens * (size_t)dim * sizeof(float);
}

void wire_pack(void *buf, const tv_batch *b, int block_size, const float *hidden, int dim) {
    const int T = b->n_tokens, S = b->n_seqs, L = b->n_logits;
    int32_t *p = buf;
    const int64_t n_table = n_table_of(b, block_size);
    const int32_t head[WIRE_HEADER] = {WIRE_STEP, T, S, L, (int32_t)n_table, block_size};
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
    memcpy(p, hidden, (size_t)T * (size_t)dim * sizeof(float));
}

void wire_pack_stop(int32_t *header) {
    memset(header, 0, WIRE_HEADER * sizeof *header);
    header[0] = WIRE_STOP;
}

tv_status wire_unpack(const void *buf, size_t n, int dim, int max_seqs, const int32_t **tables, wire_msg *out,
                      tv_error *err) {
    memset(out, 0, sizeof *out);
    const int32_t *p = buf;
    if (n < WIRE_HEADER * sizeof(int32_t) || n % sizeof(int32_t))
        return err_fail(err, TV_ERR_FORMAT, "pipeline message of %zu bytes is too short", n);
    out->kind = p[0];
    if (out->kind == WIRE_STOP) return TV_OK;
    const int32_t T = p[1], S = p[2], L = p[3], n_table = p[4], bs = p[5];
    if (out->kind != WIRE_STEP || T <= 0 || S <= 0 || S > max_seqs || L < 0 || n_table < 0 || bs <= 0)
        return err_fail(err, TV_ERR_FORMAT, "pipeline message: bad header (kind %d, %d tokens, %d seqs, %d logits)",
                        out->kind, T, S, L);
    const size_t want = ints_of(T, S, L, n_table) * sizeof(int32_t) + (size_t)T * (size_t)dim * sizeof(float);
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
    out->hidden = (const float *)(p + n_table);
    b->hidden = out->hidden;
    out->block_size = bs;
    return TV_OK;
}
