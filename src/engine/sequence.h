// sequence.h — one request's state as the scheduler and engine see it.
#ifndef TV_SEQUENCE_H
#define TV_SEQUENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "tinyvllm.h"
#include "util/buf.h"

struct tv_sampler;
struct tv_detok;
struct matcher;

typedef enum { SEQ_WAITING = 0, SEQ_RUNNING, SEQ_FINISHED } seq_status;

typedef struct tv_seq {
    uint64_t id;
    void *user;
    seq_status status;
    int32_t *tokens;        // (cap) prompt then generated ids, then n_draft proposed ones (speculative
                            // decoding) at [n_tokens, n_tokens + n_draft), not yet part of the sequence
    int n_tokens, cap;
    int n_draft;            // proposed tokens to verify; > 0 only while decoding (seq_n_pending == 1)
    int spec_k;             // tokens to propose next time at most: adapts to this sequence's acceptance
    float *draft_q;         // (spec_tokens, n_vocab) a sampled request with a model draft: the draft's
                            // distribution of each guess of this round (rejection sampling); else NULL
    int n_prompt;
    int n_computed;         // tokens whose K/V are in the cache
    int n_draft_computed;   // TV_SPEC_DRAFT_MODEL: tokens whose draft-model K/V are in the cache (valid
                            // up to min(this, n_computed); the draft catches up before it proposes)
    int n_cached;           // of those, taken from the prefix cache at the last admission
    int n_hashed;           // full blocks registered with the prefix cache so far
    uint64_t hash_last;     // chained hash of block n_hashed - 1 (0 when none)
    int max_len;            // n_tokens may not exceed this (context, pool, max_tokens)
    int max_new;            // generated tokens at most (-1: until max_len)
    int32_t *blocks;        // (blocks_cap) block table; the engine sizes it for max_len at add time
    int n_blocks, blocks_cap;
    int32_t state_slot;     // hybrid models: its recurrent-state slot while running (state_pool.h), else -1
                            // (sched_add sets -1)
    int32_t state_restore;  // hybrid models: a prefix-cache hit's checkpoint slot, to copy into state_slot
                            // before its next round (its state after n_cached tokens); -1 = none
    int n_released;         // blocks[0 .. n_released) fell out of every layer's sliding window and
                            // went back to the pool (entries -1); attention never reads them
    uint64_t arrival;       // admission order (preemption picks the newest)
    int n_flights;          // pipeline parallelism: rounds in flight (results not back) that hold it: it is
                            // neither preempted nor freed, nor decoded, until they are back
    bool sample_in_flight;  // pipeline parallelism: one of them samples it (its last pending token): it is
                            // not scheduled at all until that one is back
    tv_finish_reason finish;
    tv_error err;           // finish ERROR: what went wrong
    int32_t stop_token;
    // sampling and output
    struct tv_sampler *sampler;
    struct tv_detok *detok;
    bool ignore_eos;
    int32_t *stop_ids;      // (n_stop_ids)
    int n_stop_ids;
    char **stop;            // (n_stop) stop strings
    int n_stop;
    size_t stop_max_len;
    strbuf held;            // text decoded but not yet emitted (could start a stop string)
    int logprobs;           // -1 none, else n_top
    struct matcher *matcher; // structured output: masks the sampler, NULL for free text
    uint32_t *pre_mask;     // (ceil(n_vocab / 32)) the mask the mask thread filled during the forward pass
    uint64_t pre_version;   // matcher_version it was filled at
    bool pre_ready;         // pre_mask holds that mask
} tv_seq;

static inline int seq_n_generated(const tv_seq *s) { return s->n_tokens - s->n_prompt; }
// Tokens still to run through the model before the next sample.
static inline int seq_n_pending(const tv_seq *s) { return s->n_tokens - s->n_computed; }

#endif
