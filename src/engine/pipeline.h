// pipeline.h — the engine's seam for pipeline parallelism (src/dist/ implements it over MPI).
//
// An engine whose model holds the first layers of a pipeline (model_layer_range [0, k)) runs its
// rounds as usual: it schedules, allocates blocks, builds the flat batch and runs its layers; then it
// hands the batch (block tables included: the stages' KV pools mirror its block numbering) and the
// residual stream after its layers to `run`, which drives the later stages and returns the logits
// rows. Sampling, stop checks and everything after stay in the engine.
#ifndef TV_ENGINE_PIPELINE_H
#define TV_ENGINE_PIPELINE_H

#include "model/model.h"
#include "tinyvllm.h"

typedef struct engine_downstream {
    // Runs b through the later stages; hidden (b->n_tokens, dim) f32 is the residual stream after
    // this process's layers. TV_OK: *logits (b->n_logits, n_vocab) f32, valid until the next call;
    // else err says which stage failed (the engine finishes the batch's requests with it).
    tv_status (*run)(void *ctx, const tv_batch *b, const float *hidden, float **logits, tv_error *err);
    void (*close)(void *ctx);   // called by tv_engine_free (may be NULL)
    void *ctx;
} engine_downstream;

// tv_engine_create for the first stage of a pipeline: m holds layers [0, k) with k < n_layers, down
// the rest (copied). down NULL: tv_engine_create (m must hold every layer).
tv_engine *engine_create_pipelined(tv_model *m, const tv_engine_config *c, const engine_downstream *down, tv_error *err);

#endif
