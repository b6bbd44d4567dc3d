// spec.h — speculative decoding's proposers: what a sequence's next tokens probably are, guessed
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

#endif
