// wire.h — the messages between pipeline stages (dist.c sends them, stage.c makes and reads them),
// each one buffer of native-endian int32 / f32 / f64 (every rank of a job runs the same build on
// the same kind of CPU):
//
//   WIRE_STEP   rank r -> r + 1: one round's batch
//     int32 header[WIRE_HEADER]: kind, round, n_tokens T, n_seqs S, n_logits L, n_table, block_size,
//                                hidden_bits (32 or 16)
//     int32 tokens[T] | positions[T] | q_start[S + 1] | ctx_len[S] | logit_rows[L]
//     int32 tables[n_table]   sequence s's block table: ceil(ctx_len[s] / block_size) ids, in order
//     pipe_row rows[L]        how the last stage treats each logits row (32 bytes each, pipeline.h)
//     hidden[T * dim]         the residual stream entering the receiving stage: f32, or f16 (IEEE
//                             half, round to nearest even; padded to 4 bytes) when hidden_bits is 16
//   WIRE_STOP   rank r -> r + 1: a header, kind WIRE_STOP, the rest 0 (the stages leave)
//   WIRE_FAIL   rank r -> r + 1: a wire_note: a stage failed the round; the later ones pass it on
//   WIRE_REPLY  last rank -> 0: with TV_OK the head of a wire_note (WIRE_NOTE_HEAD bytes) and each
//     row in order: PIPE_ROW_SAMPLE: int32 id, f32 logprob, max(n_top, 0) x (int32 id, f32 logprob);
//     PIPE_ROW_LOGITS: f32 logits[n_vocab]; with a failure the whole wire_note, message included
//
// Rounds are numbered by rank 0; every stage handles them in order, and rank 0 checks that each
// reply answers the round it waits for. The receivers check sizes against the buffer; the values
// (ranges, block ids) are checked by forward_run like any batch's.
#ifndef TV_DIST_WIRE_H
#define TV_DIST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pipeline.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tinyvllm.h"

enum { WIRE_STEP = 1, WIRE_STOP = 2, WIRE_FAIL = 3, WIRE_REPLY = 4 };
#define WIRE_HEADER 8

typedef struct wire_note {
    int32_t kind;     // WIRE_FAIL or WIRE_REPLY
    int32_t round;
    int32_t status;   // tv_status: TV_OK or what failed
    int32_t rank;     // the stage that failed
    char msg[240];
} wire_note;
#define WIRE_NOTE_HEAD 16   // bytes of a wire_note before msg

// Bytes of the WIRE_STEP message carrying b with a (n_tokens, dim) hidden state of hidden_bits (32, 16).
size_t wire_size(const tv_batch *b, int block_size, int dim, int hidden_bits);
// Writes round's b, rows (b->n_logits) and hidden (f32; sent as f16 when hidden_bits is 16) into buf
// (wire_size bytes, 4-aligned).
void wire_pack(void *buf, int32_t round, const tv_batch *b, int block_size, const pipe_row *rows, const float *hidden,
               int dim, int hidden_bits);
// The stop message: WIRE_HEADER int32, kind WIRE_STOP, the rest 0.
void wire_pack_stop(int32_t *header);
// A WIRE_FAIL or WIRE_REPLY note (msg cut to fit).
void wire_note_set(wire_note *n, int kind, int32_t round, tv_status status, int rank, const char *msg);

// A received message viewed in place: b's arrays and hidden point into the buffer, b->block_tables
// into tables (caller's storage for max_seqs pointers), rows copied into caller's storage (max_logits).
typedef struct wire_msg {
    int kind;
    int32_t round;
    int block_size;
    int hidden_bits;          // 32: b.hidden points into the buffer; 16: b.hidden is hidden_f32
    tv_batch b;
    const pipe_row *rows;     // (b.n_logits)
    wire_note note;           // WIRE_FAIL: the failure
} wire_msg;

// Parses buf (n bytes, 4-aligned). An f16 hidden state is widened into hidden_f32 (caller's storage
// for max_tokens x dim floats). TV_ERR_FORMAT when the sizes disagree with n, more than max_seqs
// sequences, max_logits rows or max_tokens tokens, or block tables that do not match the context
// lengths.
tv_status wire_unpack(const void *buf, size_t n, int dim, int max_seqs, int max_logits, int max_tokens,
                      float *hidden_f32, const int32_t **tables, pipe_row *rows, wire_msg *out, tv_error *err);

// Bytes of the reply to a round with these rows.
size_t wire_reply_size(const pipe_row *rows, int n_rows, int n_vocab);
// The last stage's reply to round: samples its SAMPLE rows from logits (n_rows, n_vocab; those rows
// are modified) with scratch (sampler_sample_plain's) and copies its LOGITS rows.
void wire_reply_pack(void *buf, int32_t round, int rank, const pipe_row *rows, int n_rows, float *logits, int n_vocab,
                     struct tv_sampler *scratch);
// Reads the reply to round, whose rows rank 0 sent: outs (n_rows) point into buf. A reply carrying
// a stage's failure returns its status with "pipeline stage on rank R: msg"; TV_ERR_FORMAT when
// it does not answer round or its size disagrees with the rows.
tv_status wire_reply_unpack(void *buf, size_t n, int32_t round, const pipe_row *rows, int n_rows, int n_vocab,
                            pipe_out *outs, tv_error *err);

#endif
