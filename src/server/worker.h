// worker.h — the engine thread and the channels between it and the HTTP threads.
//
// The engine thread is the only thread that calls tv_engine_*. An HTTP thread submits a job (one
// HTTP request = n_seqs engine requests: n choices x prompts) into a bounded hand-off queue, waits
// until the engine admitted or rejected it, then takes each sequence's text/token deltas as they
// arrive (one mutex for all channels, one condvar per job). Back-pressure: the number of sequences
// accepted and not finished is bounded by max_inflight; past it srv_job_submit answers 429.
// Cancelling a job (client gone) aborts its engine requests at the engine thread's next turn,
// which returns their KV blocks at once.
#ifndef TV_SERVER_WORKER_H
#define TV_SERVER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "request.h"
#include "tinyvllm.h"

typedef struct srv_worker srv_worker;
typedef struct srv_job srv_job;

// One generated token with its log-probabilities (only kept when logprobs were requested).
typedef struct srv_tok {
    int32_t id;
    float logprob;
    int n_top;
    tv_logprob top[SRV_MAX_LOGPROBS];
} srv_tok;

// What one sequence produced since the last take. Buffers are malloc'ed and owned by the taker.
typedef struct srv_delta {
    char *text;                // (text_len) UTF-8, NUL-terminated, or NULL
    size_t text_len;
    srv_tok *toks;             // (n_toks) or NULL
    int n_toks;
    tv_finish_reason finish;   // != NONE exactly once: in the take that ends the sequence
    tv_error error;            // finish ERROR: the engine's code and message
    int n_prompt, n_generated, n_cached;
} srv_delta;

// Starts the engine thread. max_inflight: sequences accepted and not finished, at most.
srv_worker *srv_worker_create(tv_engine *e, srv_metrics *metrics, int max_inflight, tv_error *err);
// Stops accepting, aborts everything in flight, joins the engine thread. NULL ok. The engine is
// not freed (the caller owns it).
void srv_worker_free(srv_worker *w);
// Stops accepting new jobs (503) and aborts every job in flight; returns at once.
void srv_worker_shutdown(srv_worker *w);

// Submits n_seqs engine requests. params must stay valid until srv_job_wait_admitted returns.
// NULL + err: 429 when the server is full, 503 when shutting down, 400 when n_seqs can never fit.
srv_job *srv_job_submit(srv_worker *w, const tv_request_params *params, int n_seqs, bool want_logprobs,
                        double t_arrival_ms, srv_error *err);
// Blocks until the engine has admitted (true) or rejected (false + err) the job.
bool srv_job_wait_admitted(srv_job *j, srv_error *err);
// Waits up to timeout_ms for news (new tokens or finishes). Returns true when there is news.
bool srv_job_wait(srv_job *j, int timeout_ms);
// Moves sequence i's pending output into *d (zeroed first). Returns true if d holds anything.
bool srv_job_take(srv_job *j, int i, srv_delta *d);
void srv_delta_clear(srv_delta *d);
// True when every sequence has finished and its finish was taken.
bool srv_job_done(srv_job *j);
// Aborts the job's unfinished sequences (asynchronously) and drops the caller's reference.
// Call exactly once per submitted job, after srv_job_wait_admitted.
void srv_job_release(srv_job *j);

// Monotonic clock, ms (arrival times, latencies).
double srv_time_ms(void);

#endif
