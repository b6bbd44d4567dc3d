// sampler.h — per-request token sampling: logit bias, penalties, top-k/top-p/min-p, temperature,
// a seeded RNG, and OpenAI-style logprobs.
//
// Processing order for one call of sampler_sample (llama.cpp's default chain order):
//   1. logit_bias       logit[id] += bias (a bias of -inf bans the token)
//   2. penalties        repetition (CTRL / HF / llama.cpp): for ids seen in prompt or output,
//                         logit > 0 ? logit / p : logit * p
//                       then OpenAI over generated ids: logit -= frequency * count + presence * (count > 0)
//   3. logprobs         log-softmax of the logits as they are now (before temperature): exp to
//                       2.4e-7 relative, sums in float per 64 ids and in double across them
//   4. greedy           temperature < 1e-5 (0 = greedy) or top_k == 1: argmax, lowest id wins ties
//   5. top_k            keep the k largest logits
//   6. top_p            keep the smallest prefix (largest first) whose probability mass, normalised
//                       over the top_k set, reaches top_p
//   7. min_p            keep ids with p >= min_p * p_max
//   8. temperature      p ∝ exp((logit - max) / T) over the kept set, then one draw from the RNG
// Ties in every ordering break by lower id, so the kept sets are well-defined.
// Cost: O(n_vocab) expected (quickselect partitions, never a full sort), plus O(unique history ids)
// for penalties. A sampler owns all its state (RNG, counts, scratch): no globals, results never
// depend on what else is batched with the request.
#ifndef TV_ENGINE_SAMPLER_H
#define TV_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "tinyvllm.h"

typedef struct tv_sampler tv_sampler;

// Validates p (temperature >= 0, top_p in (0,1], min_p in [0,1], repetition_penalty > 0, finite
// penalties, logit_bias ids in [0, n_vocab)) and copies what it needs (logit_bias included).
// seed: the RNG seed the engine resolved (p->seed when p->has_seed). NULL + err on failure.
tv_sampler *sampler_create(const tv_sampling_params *p, int32_t n_vocab, uint64_t seed, tv_error *err);
void sampler_free(tv_sampler *s);

// Records a token for the penalties: is_prompt = part of the prompt (repetition penalty only),
// else generated (repetition + presence + frequency). Ids outside [0, n_vocab) are ignored.
void sampler_accept(tv_sampler *s, int32_t token, bool is_prompt);

// Samples one id from logits (n_vocab), which are modified in place (bias, penalties).
// chosen != NULL: filled with the sampled id and its logprob (step 3 above).
// n_top > 0: top[n_top] filled with the n_top most likely ids, descending (ties: lower id first);
// entries beyond n_vocab get id -1 and logprob -inf.
// Logits that are all -inf or NaN yield id 0 (nothing can be sampled; the caller's bias banned all).
int32_t sampler_sample(tv_sampler *s, float *logits, tv_logprob *chosen, tv_logprob *top, int n_top);

// ---- speculative decoding with a sampled draft (engine.c) ----
// Rejection sampling (Leviathan et al. 2023, Chen et al. 2023): the draft proposes x ~ q; the target
// keeps x with probability min(1, p(x) / q(x)), else draws from norm(max(0, p - q)). The token kept
// is distributed as p exactly, whatever q is, so q may ignore penalties and grammar.

// Whether s samples the argmax (temperature ~0 or top_k 1): then p is one-hot and a draft proposes
// its own argmax instead of sampling.
bool sampler_is_greedy(const tv_sampler *s);

// The draft's side: q (n_vocab) := the distribution s would sample these draft logits (n_vocab,
// modified in place: bias and penalties) from, with the same filters and temperature; returns one
// draw from q, taken from the sampler's draft RNG (a stream of its own, seeded from the request's
// seed), so the draws of the target's sampling stay one stream.
int32_t sampler_draft(tv_sampler *s, float *logits, float *q);

// The target's side for the guess x, drawn from q (n_vocab, sampler_draft's): the token to append,
// x when accepted (one draw u: u * q(x) < p(x)), else a draw from norm(max(0, p - q)) (a second
// draw; x has no weight there, since a rejection means p(x) < q(x)). p = the distribution sampler_sample would draw from for logits (n_vocab, modified
// in place as by sampler_sample), written to p_out (n_vocab, caller's scratch). chosen / top:
// logprobs of the returned id as sampler_sample reports them.
int32_t sampler_verify(tv_sampler *s, float *logits, const float *q, int32_t x, float *p_out, tv_logprob *chosen,
                       tv_logprob *top, int n_top);

// The distribution sampler_sample draws from for logits (n_vocab, modified in place: bias and
// penalties) into p (n_vocab; zero outside the kept set; one-hot at the argmax when greedy). For
// tests: the expected frequencies of a sampling test.
void sampler_probs(tv_sampler *s, float *logits, float *p);

// Structured output: bans (logit = -inf) every id whose bit in mask is clear; mask has
// ceil(n_vocab / 32) words, bit id = allowed. Applied before sampler_sample, so the bans come
// before bias, penalties and logprobs (a banned token has logprob -inf).
void sampler_apply_mask(float *logits, int32_t n_vocab, const uint32_t *mask);

// ---- sampling where the logits are (pipeline parallelism: the last stage samples, the engine
// keeps the request's sampler and its RNG) ----
// A plain sampler has no logit bias and no penalties: its next token depends only on its
// parameters, the logits and one uniform draw.
typedef struct sampler_plain {
    float temperature, top_p, min_p;
    int32_t top_k;
    double u;   // the draw in [0, 1) of a non-greedy sample; -1: greedy (no draw)
} sampler_plain;
bool sampler_is_plain(const tv_sampler *s);
// s's parameters and the draw sampler_sample would take from s's RNG for its next token (s's RNG
// advances by it), so that sampler_sample_plain gives the token sampler_sample(s) would give (except
// on logits that are all -inf or NaN, where sampler_sample draws nothing).
void sampler_take_plain(tv_sampler *s, sampler_plain *p);
// sampler_sample with p's parameters and p->u as the draw. scratch: a plain sampler created with
// temperature > 0 and top_k != 1 for the same n_vocab (its scratch space is used, its RNG is not).
int32_t sampler_sample_plain(tv_sampler *scratch, const sampler_plain *p, float *logits, tv_logprob *chosen,
                             tv_logprob *top, int n_top);

#endif
