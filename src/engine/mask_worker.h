// mask_worker.h — a thread that fills structured-output token masks while the forward pass runs,
// so constrained sequences keep the mask computation off the step's critical path (engine.c hands
// it the matchers of the sequences the round will sample, then waits before sampling).
// One job at a time; start and wait are called by the engine's thread only, and the matchers (and
// their grammars and vocabulary) are left to the worker between the two.
#ifndef TV_ENGINE_MASK_WORKER_H
#define TV_ENGINE_MASK_WORKER_H

#include <stdint.h>

#include "tinyvllm.h"

struct matcher;
typedef struct mask_worker mask_worker;

// NULL + err when the thread cannot be started.
mask_worker *mask_worker_create(tv_error *err);
void mask_worker_free(mask_worker *w);   // waits for a job in flight, stops the thread; NULL ok

// Starts st[i] = matcher_fill_mask(m[i], mask[i]) for i < n on the worker and returns at once; the
// arrays stay the caller's and must live until mask_worker_wait. n > 0; no job may be in flight.
void mask_worker_start(mask_worker *w, struct matcher *const *m, uint32_t *const *mask, tv_status *st, int n);
// Blocks until the job in flight (if any) is done.
void mask_worker_wait(mask_worker *w);

#endif
