// engine_driver.h — the request driver the engine tests share (test_engine, test_pipeline): requests
// with arrival steps, an engine stepped until all finished, their tokens (and logprobs) compared
// against a reference run. Include after <cmocka.h> and test_util.h.
#ifndef TV_TEST_ENGINE_DRIVER_H
#define TV_TEST_ENGINE_DRIVER_H

#include <stdint.h>
#include <string.h>

#include "tinyvllm.h"
#include "util/rng.h"

typedef struct {
    int32_t prompt[300];
    int n_prompt;
    int max_tokens;
    int arrive_step;            // the drive step at which it is added
    float temperature;          // 0: greedy
    int top_k;                  // 0: off
    float presence_penalty;     // != 0: a sampler with state (the pipeline samples it on rank 0)
    bool want_logprobs;         // the chosen tokens' logprobs (and top_logprobs alternatives)
    int top_logprobs;
    uint64_t seed;
    int32_t out[300];
    float lp[300];              // want_logprobs: each token's logprob
    int32_t top1[300];          // top_logprobs > 0: each step's most likely id
    int n_out;
    uint64_t id;
    tv_finish_reason finish;
} req;

// Adds r to e (ignore_eos, its seed); returns its id.
static inline uint64_t add(tv_engine *e, req *r) {
    tv_request_params p;
    tv_request_params_default(&p);
    p.prompt_ids = r->prompt;
    p.n_prompt = (size_t)r->n_prompt;
    p.max_tokens = r->max_tokens;
    p.sampling.temperature = r->temperature;
    p.sampling.top_k = r->top_k;
    p.sampling.presence_penalty = r->presence_penalty;
    p.sampling.logprobs = r->want_logprobs ? r->top_logprobs : -1;
    p.sampling.seed = r->seed;
    p.sampling.has_seed = true;
    p.ignore_eos = true;
    p.user = r;
    tv_error err = {0};
    uint64_t id;
    if (tv_engine_add_request(e, &p, &id, &err)) fail_msg("add: %s", err.msg);
    r->id = id;
    return id;
}

// Drives the engine until every request in rs has arrived (at its arrive_step) and finished.
// Returns the steps taken; *st_out the stats at the end, *max_tokens_in_step the largest round.
static inline int drive(tv_engine *e, req *rs, int n, tv_engine_stats *st_out, int *max_tokens_in_step) {
    int step = 0, done = 0;
    tv_error err = {0};
    while (done < n) {
        for (int i = 0; i < n; i++)
            if (rs[i].arrive_step == step) add(e, &rs[i]);
        const tv_request_output *o;
        int no;
        if (tv_engine_step(e, &o, &no, &err)) fail_msg("step: %s", err.msg);
        tv_engine_stats after;
        tv_engine_get_stats(e, &after);
        assert_true(after.n_blocks_free >= 0 && after.n_blocks_free <= after.n_blocks_total);
        if (max_tokens_in_step && after.last_step_tokens > *max_tokens_in_step) *max_tokens_in_step = after.last_step_tokens;
        for (int i = 0; i < no; i++) {
            req *r = o[i].user;
            for (int j = 0; j < o[i].n_new; j++) {
                if (o[i].logprobs) r->lp[r->n_out] = o[i].logprobs[j].logprob;
                if (o[i].top_logprobs && o[i].n_top > 0) r->top1[r->n_out] = o[i].top_logprobs[(size_t)j * o[i].n_top].id;
                r->out[r->n_out++] = o[i].new_ids[j];
            }
            if (o[i].finish) { r->finish = o[i].finish; done++; }
        }
        step++;
        assert_true(step < 100000);
    }
    if (st_out) tv_engine_get_stats(e, st_out);
    return step;
}

// n requests from seed: prompts of 1..max_prompt tokens (BOS then ids 3..502), 1..max_new new
// tokens, arriving over steps 0..max_arrive, greedy, each with a seed of its own.
static inline void make_requests(req *rs, int n, uint64_t seed, int max_prompt, int max_new, int max_arrive) {
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].n_prompt = 1 + (int)(rng_splitmix64(&s) % (uint64_t)max_prompt);
        rs[i].prompt[0] = 1;
        for (int j = 1; j < rs[i].n_prompt; j++) rs[i].prompt[j] = 3 + (int)(rng_splitmix64(&s) % 500);
        rs[i].max_tokens = 1 + (int)(rng_splitmix64(&s) % (uint64_t)max_new);
        rs[i].arrive_step = (int)(rng_splitmix64(&s) % (uint64_t)(max_arrive + 1));
        rs[i].seed = rng_splitmix64(&s);
    }
}

// Every request of b produced exactly a's tokens (and logprobs, bit for bit, when asked).
static inline void check_same(const req *a, const req *b, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        if (a[i].n_out != b[i].n_out) fail_msg("%s: request %d: %d tokens vs %d in the reference", what, i, b[i].n_out, a[i].n_out);
        for (int j = 0; j < a[i].n_out; j++) {
            if (a[i].out[j] != b[i].out[j])
                fail_msg("%s: request %d token %d: %d vs %d in the reference", what, i, j, b[i].out[j], a[i].out[j]);
            if (a[i].want_logprobs && memcmp(&a[i].lp[j], &b[i].lp[j], sizeof(float)))
                fail_msg("%s: request %d token %d: logprob %.9g vs %.9g in the reference", what, i, j, (double)b[i].lp[j],
                         (double)a[i].lp[j]);
            if (a[i].top_logprobs > 0 && a[i].top1[j] != b[i].top1[j])
                fail_msg("%s: request %d token %d: top alternative %d vs %d in the reference", what, i, j, b[i].top1[j],
                         a[i].top1[j]);
        }
    }
}

#endif
