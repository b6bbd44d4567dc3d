// pipeline.h — the engine's seam for pipeline parallelism (src/dist/ implements it over MPI).
//
// An engine whose model holds the first layers of a pipeline (model_layer_range [0, k)) keeps up to
// `depth` batches in flight (micro-batch pipelining, vLLM's virtual engines): each round it
// schedules a batch from the sequences no batch in flight holds back (scheduler.h: a sequence waits
// for its sample; a prompt chunk that samples nothing does not), runs its own layers, hands the batch
// (block tables included: the stages' KV pools mirror its block numbering), its residual stream and
// the sampling of each logits row to `submit`, which returns at once; then it `collect`s the oldest
// batch's results and postprocesses them. While stage 0 computes batch k + 1 the later stages compute
// batch k. Every stage runs the batches in the order they were submitted, so a batch sees the K/V of
// every earlier one at every stage: block ids freed (abort) or reused while a batch is in flight
// are safe; the engine registers prefix-cache blocks at collect.
//
// Sampling happens where the logits are: a row whose request has a plain sampler (no logit bias, no
// penalties, no grammar, not a speculative verification row) is sampled on the last stage from the
// request's parameters and the uniform draw the engine took from the request's RNG (sampler_plain),
// and only its id and logprobs come back; other rows come back as logits and the engine samples them.
#ifndef TV_ENGINE_PIPELINE_H
#define TV_ENGINE_PIPELINE_H

#include "engine/sampler.h"
#include "model/model.h"
#include "tinyvllm.h"

enum { PIPE_ROW_LOGITS = 0, PIPE_ROW_SAMPLE = 1 };

// How the last stage treats one logits row.
typedef struct pipe_row {
    int32_t mode;            // PIPE_ROW_LOGITS: send the row back; PIPE_ROW_SAMPLE: sample it there
    int32_t n_top;           // SAMPLE: -1 no logprobs, 0 the chosen token's, k > 0 also the k most likely
    sampler_plain plain;     // SAMPLE: the parameters and the draw
} pipe_row;

// One row's result.
typedef struct pipe_out {
    float *logits;           // LOGITS rows: (n_vocab), writable (sampling modifies it); NULL for SAMPLE rows
    int32_t id;              // SAMPLE rows: the token
    tv_logprob chosen;       // SAMPLE rows with n_top >= 0: its logprob
    const tv_logprob *top;   // SAMPLE rows with n_top > 0: (n_top) the most likely, descending
} pipe_out;

typedef struct engine_downstream {
    int depth;   // batches in flight at most (>= 1; the number of stages keeps every stage busy)
    // Starts b through the later stages; hidden (b->n_tokens, dim) f32 is the residual stream after
    // this process's layers, rows (b->n_logits) the sampling of each logits row. Copies what it needs
    // before returning. TV_OK, else err says why (the engine finishes the batch's requests with it).
    tv_status (*submit)(void *ctx, const tv_batch *b, const float *hidden, const pipe_row *rows, tv_error *err);
    // Waits for the oldest submitted batch: TV_OK with outs (its n_logits rows) filled, valid until the
    // next call; else err says which stage failed or why no answer came.
    tv_status (*collect)(void *ctx, pipe_out *outs, tv_error *err);
    // Called by tv_engine_free (may be NULL): collects what is still in flight and stops the stages.
    void (*close)(void *ctx);
    // The traffic so far (may be NULL): bytes sent across a stage boundary, bytes of replies.
    void (*bytes)(void *ctx, uint64_t *boundary, uint64_t *replies);
    void *ctx;
} engine_downstream;

// tv_engine_create for the first stage of a pipeline: m holds layers [0, k) with k < n_layers, down
// the rest (copied). down NULL: tv_engine_create (m must hold every layer).
tv_engine *engine_create_pipelined(tv_model *m, const tv_engine_config *c, const engine_downstream *down, tv_error *err);

#endif
