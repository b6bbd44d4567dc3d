// wire.h — one round's batch as it travels between pipeline stages (dist.c), in one buffer of
// native-endian int32 and f32 (every rank of a job runs the same build on the same kind of CPU):
//
//   int32 header[WIRE_HEADER]: kind, n_tokens T, n_seqs S, n_logits L, n_table, block_size
//   int32 tokens[T] | positions[T] | q_start[S + 1] | ctx_len[S] | logit_rows[L]
//   int32 tables[n_table]      sequence s's block table: ceil(ctx_len[s] / block_size) ids, in order
//   f32   hidden[T * dim]      the residual stream entering the receiving stage (absent for WIRE_STOP)
//
// The receiver checks the sizes against the buffer; the values (ranges, block ids) are checked by
// forward_run like any batch's.
#ifndef TV_DIST_WIRE_H
#define TV_DIST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "tinyvllm.h"

enum { WIRE_STEP = 1, WIRE_STOP = 2 };
#define WIRE_HEADER 6

// Bytes of the message carrying b (kind WIRE_STEP) with a (n_tokens, dim) hidden state.
size_t wire_size(const tv_batch *b, int block_size, int dim);
// Writes b and hidden into buf (wire_size bytes, 4-aligned).
void wire_pack(void *buf, const tv_batch *b, int block_size, const float *hidden, int dim);
// The stop message: WIRE_HEADER int32, kind WIRE_STOP, the rest 0.
void wire_pack_stop(int32_t *header);

// A received message viewed in place: b's arrays and hidden point into the buffer, b->block_tables
// into tables (caller's storage for max_seqs pointers).
typedef struct wire_msg {
    int kind;
    int block_size;
    tv_batch b;
    const float *hidden;   // (b.n_tokens, dim)
} wire_msg;

// Parses buf (n bytes, 4-aligned). TV_ERR_FORMAT when the sizes disagree with n, more than
// max_seqs sequences, or block tables that do not match the context lengths.
tv_status wire_unpack(const void *buf, size_t n, int dim, int max_seqs, const int32_t **tables, wire_msg *out,
                      tv_error *err);

#endif
