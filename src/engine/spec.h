// spec.h — speculative decoding's proposers and its load gate. Proposers: what a sequence's next tokens probably are, guessed
// cheaply, so that the engine can score k guesses as k + 1 rows of one forward pass (a verification
// item of the flat batch) and keep the longest prefix the target model agrees with.
//
// n-gram prompt lookup (vLLM's "ngram", llama.cpp's lookup decoding): the longest suffix of the
// sequence's own tokens (prompt + output), between SPEC_NGRAM_MIN and SPEC_NGRAM_MAX tokens long,
// that occurred before; the tokens that followed its most recent earlier occurrence are the
// proposal. When that continuation runs into the suffix itself (a repeating pattern), the proposal
// continues the pattern: the sequence extended by the proposal so far is read instead. A proposal
// is deterministic (the draft "distribution" is one-hot), so sampling the target row and comparing
// is exact rejection sampling (see engine.c).
#ifndef TV_ENGINE_SPEC_H
#define TV_ENGINE_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "tinyvllm.h"

#define SPEC_NGRAM_MIN 2
#define SPEC_NGRAM_MAX 4

// Up to k tokens into out (k) continuing tokens[0, n); returns how many (0: no n-gram of the
// suffix occurred earlier). O(n * SPEC_NGRAM_MAX) worst case.
int spec_ngram_propose(const int32_t *tokens, int n, int k, int32_t *out);

// Whether a draft model can propose for target: the same vocabulary size and, where both carry a
// tokenizer, the same text (special tokens included) for every id. TV_ERR_INVALID naming the first
// difference otherwise (a draft without a tokenizer is checked by size only: ids are all it shares).
tv_status spec_check_vocab(const tv_model *target, const tv_model *draft, tv_error *err);

// ---- load awareness: speculate only while it pays ----
// Speculation costs every round its drafting and its guesses' rows; it pays while the batch is
// bound by reading the weights (few sequences) and stops paying once the rows themselves cost
// (many sequences, or guesses that are seldom accepted). The gate measures that instead of
// guessing it: for each decode load (how many sequences decode in the round, 1..max_load; more
// count as max_load) it keeps the output rate (tokens appended per second of round time, drafting
// included) of the rounds that speculated and of the rounds that did not, as moving averages
// (each new round weighs max(1/n, SPEC_GATE_EMA)), and speculates while its rate is the higher.
// A load tries both ways first, speculation first, each for SPEC_GATE_WARMUP + 1 measured rounds of
// which the first SPEC_GATE_WARMUP are not averaged (cold caches: a draft model's first round
// pages its weights in, and one such round made speculation look 5x slower than it is, so the
// gate kept it off); after that every SPEC_GATE_EXPLORE-th decision at a load takes
// the other way until a round of it is measured (the engine leaves rounds with prompt chunks, or
// with a draft model catching up after plain rounds, unmeasured), so a change of acceptance or
// machine load is noticed at a cost of about 1/SPEC_GATE_EXPLORE of the difference.
#define SPEC_GATE_EXPLORE 32
#define SPEC_GATE_WARMUP 1
#define SPEC_GATE_EMA 0.125

typedef struct spec_gate spec_gate;

// A gate for loads 1..max_load (>= 1); NULL when out of memory.
spec_gate *spec_gate_create(int max_load);
void spec_gate_free(spec_gate *g);
// Whether a round with load decoding sequences (>= 1) should speculate.
bool spec_gate_decide(spec_gate *g, int load);
// A measured round at load: whether it speculated, the tokens its decodes appended and how long
// it took (seconds > 0; others are ignored).
void spec_gate_record(spec_gate *g, int load, bool speculated, int n_tokens, double seconds);
// The rates measured at load, tokens/s without and with speculation (0 before the first round).
void spec_gate_rates(const spec_gate *g, int load, double *plain, double *spec);

#endif
