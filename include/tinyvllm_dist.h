// tinyvllm_dist.h — pipeline-parallel serving over MPI: a model too big for one machine spread over
// the ranks of an MPI job, each rank holding a contiguous range of layers (tv_model_plan_stages,
// tv_model_params.layer_begin/end) and only those layers' weights and KV cache. Its own library,
// tinyvllm_dist, built when CMake finds MPI (Open MPI: libopenmpi-dev); the rest of tinyvllm needs
// no MPI.
//
// Every rank runs the same program under mpirun. Rank 0 runs the engine (scheduler, block
// manager, the request's sampler state, and the HTTP server when serving) and stage 0; ranks
// 1..N-1 run tv_dist_serve. Each round rank 0 sends the batch (block tables included), how to
// sample each of its logits rows, and its residual stream (n_tokens x dim, f32 or f16) to rank 1, which
// runs its layers and sends on; the last rank samples and sends the ids (and logprobs when asked)
// back to rank 0, or the logits rows of requests that need their state on rank 0 (penalties,
// logit bias, grammars). Up to N rounds are in flight at once, so every stage computes (micro-batch
// pipelining, engine/pipeline.h). Failures are bounded: MPI errors return (MPI_ERRORS_RETURN) and every
// wait for another rank has a deadline (tv_dist_set_timeout); a rank that dies or hangs makes the
// pipeline "broken": the batch's requests finish with TV_ERR_IO, every later request too, and the
// tv_dist_on_broken callback tells the program, which ends the job (tv_dist_abort).
#ifndef TINYVLLM_DIST_H
#define TINYVLLM_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "tinyvllm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tv_dist tv_dist;

// MPI_Init_thread (serialized calls from any thread: the server's engine thread makes them). NULL +
// err when MPI cannot start. One per process.
tv_dist *tv_dist_init(int *argc, char ***argv, tv_error *err);
int tv_dist_rank(const tv_dist *d);
int tv_dist_size(const tv_dist *d);
// The longest wait for another rank's message or for a send to complete (default 30 s).
void tv_dist_set_timeout(tv_dist *d, double seconds);
// Rank 0 (before tv_dist_engine_create): send the hidden state between stages as f16 (IEEE half,
// round to nearest even) instead of f32: half the bytes per stage boundary, and outputs that may
// differ from one process's (each boundary rounds the residual stream). Default off.
void tv_dist_set_f16_wire(tv_dist *d, bool on);
// Called once, from the thread that found it, when the pipeline breaks (why: one line).
void tv_dist_on_broken(tv_dist *d, void (*fn)(void *user, const char *why), void *user);

// Startup handshake, collective (every rank calls it, whether its load succeeded or not): m is
// the rank's model (NULL when its load failed, load_err then says why), cpu_path the kernel path
// it will compute with (NULL: the best this CPU has). Checks that every rank loaded the same file
// (size and a hash of its first MiB: the header, metadata and tensor table), that the ranks' layer
// ranges follow each other from 0 to the last layer, and that every rank computes with the same
// kernel path (so outputs are those of one process). TV_OK on every rank, or the same error on
// every rank naming the rank, its host and what differs.
tv_status tv_dist_agree(tv_dist *d, const tv_model *m, const tv_error *load_err, const char *cpu_path, tv_error *err);

// Rank 0: the engine over the pipeline (m holds stage 0). Collective with tv_dist_serve on the other
// ranks: they size their KV pools from this engine's limits (the block tables are rank 0's).
tv_engine *tv_dist_engine_create(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err);
// Ranks > 0: runs this rank's stage (m; c gives its threads and kernel path) until rank 0's engine
// is freed (TV_OK) or the pipeline fails (err says why).
tv_status tv_dist_serve(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err);

// This rank's counters. The times (seconds, wall clock, over t_span: from the first round on) show
// where a rank's time goes: rank 0 counts t_wait, the time it sat waiting for the last stage's
// replies (and for its sends to be taken; the rest it computes its layers and serves: scheduling,
// sampling logits rows, HTTP), t_compute 0; a stage counts t_compute (running its layers, and the
// last one sampling) and t_wait (idle until the next batch came, and waiting for its sends).
typedef struct tv_dist_stats {
    uint64_t n_rounds;             // batches sent through the pipeline (rank 0), run (a stage)
    uint64_t bytes_per_boundary;   // rank 0: bytes each stage boundary carried (batch descriptor + hidden state)
    uint64_t bytes_replies;        // rank 0: bytes the last rank returned to rank 0 (sampled ids and
                                   // logprobs; logits rows only for requests sampled on rank 0)
    uint64_t n_tokens;             // rank 0: tokens over every round sent
    uint64_t n_tokens_unbalanced;  // rank 0: the sum over rounds of |its tokens - the previous round's|: with
                                   // rounds of unequal length each stage idles while a longer one goes on
                                   // downstream (0: every round alike)
    double t_compute, t_wait, t_span;
    double t_cpu;                  // CPU time of the rank's computing thread (a stage: in its rounds, of
                                   // t_compute; rank 0: the engine thread's over t_span, serving included):
                                   // below the wall time it spent, the core was running something else
} tv_dist_stats;
void tv_dist_get_stats(const tv_dist *d, tv_dist_stats *s);
// Whether the pipeline broke; *why (may be NULL) the reason.
bool tv_dist_is_broken(const tv_dist *d, const char **why);

// MPI_Finalize and free. A broken pipeline cannot finalize (a rank may hang): tv_dist_abort instead.
void tv_dist_free(tv_dist *d);
// Ends every rank of the job (MPI_Abort) with exit code code. Does not return.
void tv_dist_abort(tv_dist *d, int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
