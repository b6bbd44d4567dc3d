// stage.h — one later stage of a pipeline (ranks > 0; no MPI: dist.c moves its messages, and
// test_pipeline drives stages in one process): its KV pools and forward state, sized from rank 0's
// engine, and what it does with each message it receives (wire.h).
#ifndef TV_DIST_STAGE_H
#define TV_DIST_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "tinyvllm.h"

// The pool geometry rank 0's engine decided (every stage mirrors its block numbering).
typedef struct stage_geometry {
    int32_t n_blocks, block_size, kv_f32, max_tokens, max_logits, max_len, max_seqs;
} stage_geometry;

// The geometry of engine e's pools and batches.
void stage_geometry_of(const tv_engine *e, stage_geometry *g);

typedef struct stage stage;

// A stage over m (layers [b, e) with b > 0; the last stage when e is the model's last layer), on
// rank `rank`, computing with cpu_path's kernels on n_threads. NULL + err when it cannot.
stage *stage_create(tv_model *m, const stage_geometry *g, int rank, const char *cpu_path, int n_threads, tv_error *err);
void stage_free(stage *st);
int stage_is_last(const stage *st);

// Handles one message from the previous stage (n bytes in msg) and returns the
// message to pass on in *out (*n_out bytes; valid until the second next call, so one may still be
// sending while the next is made): a batch runs through this stage's layers and goes on to the next
// stage, or from the last stage its reply (sampled ids, logprobs, logits rows) goes to rank 0. A
// batch this stage cannot run (a malformed message, a failed forward pass) goes on as a WIRE_FAIL
// note with the reason, and a note that arrives goes on (from the last stage: as the reply, with the
// failure). Returns the kind received: WIRE_STOP means the pipeline stops (*out is the stop to
// pass on; the last stage passes nothing on).
int stage_handle(stage *st, const void *msg, size_t n, const void **out, size_t *n_out);

#endif
