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

// ---- load awareness: a cost model ----
// Speculation pays while the target's forward pass is bound by reading the weights (a verification's
// extra rows are nearly free) and stops paying once rows themselves cost (many sequences decoding on
// few cores, or guesses seldom accepted). Per round the gate predicts both ways from costs measured
// online and picks the better one, and the guesses per sequence (K: each sequence verifies at most
// K of its guesses; 0 is a plain round):
//   T(n)  the time of the target's round of n rows (forward pass and sampling), from every round;
//   D(n)  the time of one draft forward pass of n rows (self-draft or draft model), from every pass;
//   a     the probability that a guess is accepted once those before it were (counts of accepted
//         and first rejected guesses, each verification multiplying the old ones by
//         SPEC_GATE_ACCEPT_DECAY; prior 1/2), so a sequence with g guesses gains
//         E(g) = a + a^2 + ... + a^g tokens.
// A round of B decoding sequences (guesses g_i) and P other rows (prompt chunks) costs T0 = T(P + B)
// plain; speculating with cap K costs T(P + B + sum min(g_i, K)) + the draft passes: D(rows of pass
// 0 + the draft model's catch-up rows) + D(rows of pass d) for d < K, and saves sum E(min(g_i, K))
// plain steps of c = T(B) / B each (the measured per-token cost of a plain step at this batch size).
// It speculates with the K of the best ratio (T0 + gain) / (T0 + extra) when that exceeds 1 + m(B),
// the margin (below). T and D are kept in buckets of rows (exact up to 16, then 8 per doubling), each
// a moving average (a bucket's first sample is provisional, cold caches, and the second replaces
// it; later ones weigh max(1/(n - 1), SPEC_GATE_EMA)), interpolated linearly between buckets past
// their provisional sample and extrapolated along the last slope (flat below the first and above a
// single point: optimistic, so an unknown size is tried and then known); D outside its measured
// sizes is the nearest one scaled as T scales (a catch-up's size is known to T from prompt chunks),
// before any draft pass draft_share T (spec_gate_create). A draft model's
// catch-up (K/V of tokens run while the gate was off: it does no work then) is charged at
// 1/SPEC_GATE_CATCHUP per round, since resuming pays it once. A decode-only round whose plain size
// has no sample past its provisional one runs plain. Every SPEC_GATE_EXPLORE-th decision re-measures the way not taken
// when its samples are older than SPEC_GATE_STALE decisions: plain when speculating; speculation
// when plain and its prediction (catch-up charged in full) is within SPEC_GATE_EXPLORE_RATIO.
// Realized correction: the model misses costs in one direction at some batch sizes (verification
// rows cost more than the prompt-chunk rows T shares its buckets with; many short draft passes
// lose more to wake-ups; the rounds chosen are the optimistic ones), so every speculative round
// reports the seconds it took (spec_gate_realized) against its prediction with the catch-up in
// full (pred_s), and a decision at B multiplies its speculative cost by
//   f(B) = exp( sum_i k_i e_i S_i / (SPEC_GATE_REAL_PRIOR + sum_i k_i e_i W_i) ),
// over the realized buckets i (by B as T's): S_i the sum of the samples' log(realized / predicted)
// (each clamped to +-log SPEC_GATE_REAL_CLAMP), W_i their count, e_i = exp(-(decisions since
// bucket i's last sample) / SPEC_GATE_REAL_TAU) and k_i = 2^(-8 |log2(B_i / B)|) (a neighbour
// bucket 8 per doubling away counts half). So the correction rests on the last ~TAU samples, a
// first sample counts half (the prior is one sample of log 1), a batch size without samples borrows
// from the nearest ones, and a gate that the correction turned plain (no more samples) drifts back
// to the model and re-tries after about TAU ln(log f / log(ratio / (1 + m))) decisions: it cannot
// lock. A round whose prediction used a size not measured past its provisional sample (T of the
// verification, D of a guess pass; a cold draft's first passes) gives no sample: the curves learn
// those sizes, the correction is for what the model misses where it knows its costs. Acceptance
// is modelled by a; the tokens gained are reported (stats) but not corrected for.
// Margin: a gain the prediction cannot tell from its own error is no gain (at 16 streams on 2 cores
// the gate predicted a few percent and realized its seconds on average, yet the bench ran 0.97x
// plain: a small predicted gain is as often noise, and the rounds picked are the optimistic ones).
// So the ratio must exceed 1 + m(B), m(B) = max(SPEC_GATE_ERR_FLOOR, E(B)), E(B) the measured error
// of the predictions: the mean |log(realized / predicted)| of the speculative rounds' samples above,
// weighted as f's (k_i e_i, the prior one sample at SPEC_GATE_ERR_FLOOR), each |log| at most
// SPEC_GATE_ERR_CLAMP (so m <= 0.25: the margin tells small gains from noise; a gross miss, such as
// a cold draft's first rounds at 4x, is the correction's to take, and a margin of 1.4 would keep a
// single stream's 2.4x plain long after f has recovered). It is raw, not centred on f: a bias the
// correction is still learning counts as error too. Without new samples it decays
// back to the floor with f, so a gate the margin turned plain re-tries (it cannot lock either).
// One stream (predicted ~2.4x) is unaffected; 16 streams predicted within their error run plain.
#define SPEC_GATE_ERR_FLOOR 0.02
#define SPEC_GATE_ERR_CLAMP 0.25
#define SPEC_GATE_EMA 0.125
#define SPEC_GATE_CATCHUP 4
#define SPEC_GATE_EXPLORE 64
#define SPEC_GATE_STALE 512
#define SPEC_GATE_EXPLORE_RATIO 0.9
#define SPEC_GATE_ACCEPT_DECAY (63.0 / 64.0)
#define SPEC_GATE_REAL_TAU 32.0
#define SPEC_GATE_REAL_PRIOR 1.0
#define SPEC_GATE_REAL_CLAMP 4.0

typedef struct spec_gate spec_gate;

// A round to decide: n_decode sequences decoding, guesses[i] granted to each (0: none), n_other_rows
// prompt-chunk rows; draft_passes: the proposer runs forward passes (self-draft, draft model; not
// n-gram), draft_catchup_rows: rows a draft model's pass 0 runs besides one per sequence with
// guesses (its catch-up and prompt chunks; 0 for a self-draft).
typedef struct {
    int n_decode, n_other_rows;
    const int *guesses;   // (n_decode)
    bool draft_passes;
    int draft_catchup_rows;
} spec_round;

// What the gate predicted for a round: the cap it chose (0 plain), and the output rates of plain
// decoding and of speculating with the best cap (decoding tokens per second; 0 when unknown).
// With k > 0: the round's seconds as the model predicts them with the catch-up in full and before
// the correction (pred_s; of which the draft passes, pred_draft_s), the tokens it gains (pred_gain),
// and the correction applied to the decision (cost_factor, f(B) above; 1 without samples); margin:
// the relative gain over plain the decision required (m(B) above; the floor before any decision).
typedef struct {
    int k;
    double plain_tok_s, spec_tok_s;
    double pred_s, pred_draft_s, pred_gain;
    double cost_factor, margin;
} spec_choice;

// A gate with no costs measured; a draft pass is assumed to cost draft_share times a target round
// of the same rows until one is measured (the draft's share of the weights). NULL when out of memory.
spec_gate *spec_gate_create(double draft_share);
void spec_gate_free(spec_gate *g);
// The cap for r (0: a plain round), with its prediction in *why (may be NULL).
int spec_gate_decide(spec_gate *g, const spec_round *r, spec_choice *why);
// A measured target round of n_rows rows (seconds > 0; others are ignored).
void spec_gate_time_round(spec_gate *g, int n_rows, double seconds);
// A measured draft forward pass of n_rows rows.
void spec_gate_time_draft(spec_gate *g, int n_rows, double seconds);
// What the round last decided took: seconds from the decision to the end of the round (draft
// passes, target round, sampling). Used when it speculated with an informed prediction; every call
// ends the decision (call it once per decided round).
void spec_gate_realized(spec_gate *g, double seconds);
// A verification of n_draft guesses of which the first n_accepted were accepted.
void spec_gate_accepted(spec_gate *g, int n_draft, int n_accepted);
// The acceptance probability a it predicts with.
double spec_gate_acceptance(const spec_gate *g);

#endif
