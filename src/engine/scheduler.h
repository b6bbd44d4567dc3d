// scheduler.h — decides, each step, which sequences run and how many of their tokens.
//
// Policy (vLLM v1 / nano-vllm style): a token budget per step; running decodes first (oldest
// first), then running prompts' next chunks, then FCFS admission from the waiting queue while
// blocks and sequence slots last. When a decode needs a block and none is free, the newest running
// sequence is preempted by recompute: its blocks are released and it re-queues at the front.
// Hybrid models: admission also takes a state slot (cfg.states); every release of a sequence's
// blocks gives its slot back, and a recomputed sequence starts again from position 0 (a zero state).
// With prefix caching, a prefix is reused only as far as its last block with a state checkpoint
// (state_pool.h): the cached blocks after it are given back, and seq->state_restore names the
// checkpoint the engine copies into the sequence's slot. A checkpoint leaves with its block when
// the prefix cache evicts the block (the scheduler sets the block manager's evict hook).
//
// Speculative decoding: a decoding sequence with n_draft proposed tokens (sequence.h) runs them
// after its pending token, as one item of 1 + n_draft tokens. They get what budget and free blocks
// are left after every decode, running prompt and admission got its share (a guess is worth less
// than a prompt that must run anyway; nobody is ever preempted or kept waiting for them);
// what does not fit is cut (n_draft shrinks, to 0 at worst). The engine advances n_computed only
// over the tokens the model accepted and then calls sched_rollback, which returns the blocks that
// only rejected tokens reached; nothing rejected is ever registered with the prefix cache (only
// blocks full of computed tokens are).
//
// Pipeline parallelism (micro-batches, vLLM's virtual engines): with n_lanes > 1 up to n_lanes
// rounds are in flight at once, and each schedule plans the next from the sequences no round in
// flight stops: a decode (or a sequence's last prompt chunk, which samples) waits until its round
// is back (seq->sample_in_flight); a prompt chunk that samples nothing does not, so the next chunk
// of the same prompt may run in the next round (every stage runs rounds in order, so it sees the
// earlier chunk's K/V; the engine advances n_computed at submit for such a chunk, sched_submitted,
// and registers its blocks when it is back, sched_confirmed). A round takes at most ceil(decoding /
// n_lanes) decodes, so the decoding sequences split over the rounds in flight, and about as many
// tokens as the newest round in flight (the balance argument) or its decodes plus an even share of
// the prompt tokens waiting (1 / (2 n_lanes) while sequences decode, else 1 / n_lanes), whichever is
// more: a new prompt spreads over consecutive rounds instead of making one round long while the
// next is short (each stage would idle the difference). A
// sequence held by a round in flight (seq->n_flights) is not preempted: a preemption takes the
// newest running sequence that is not.
//
// Sliding windows: when every layer of the model attends within a window of W keys (window > 0),
// a sequence's future queries (positions >= n_computed) never see keys before n_computed - W + 1,
// so the blocks wholly before that are released to the pool as soon as they fall out (after each
// computed round and after a prefix-cache admission); their table entries become -1. A released
// block that is registered with the prefix cache stays findable like any released block (its K/V
// are still valid for the same token prefix). Models with some global layer (Gemma's interleaved
// local/global attention) run with window 0: every block is kept, since a global layer reads them.
#ifndef TV_SCHEDULER_H
#define TV_SCHEDULER_H

#include <stdbool.h>

#include "engine/block_manager.h"
#include "engine/sequence.h"
#include "engine/state_pool.h"

typedef struct tv_sched_config {
    int max_num_seqs;
    int max_batched_tokens;
    bool chunked_prefill;
    bool prefix_caching;   // admit requests on top of cached full blocks of their prompt
    int window;            // every layer's sliding window (keys); 0: some layer is global, keep all blocks
    state_pool *states;    // hybrid models: each running sequence holds one state slot (admission
                           // needs a free one; finish, abort and preemption give it back), and prefix
                           // caching reuses prefixes up to their checkpoints; NULL: none
    int n_lanes;           // pipeline parallelism: rounds in flight at most (0 or 1: one round at a time)
} tv_sched_config;

typedef struct tv_sched_item { tv_seq *seq; int n_tokens; } tv_sched_item;

typedef struct tv_scheduler tv_scheduler;

tv_scheduler *sched_create(const tv_sched_config *c, kv_block_manager *bm);
void sched_free(tv_scheduler *s);
// Appends to the waiting queue (FCFS). false on allocation failure.
bool sched_add(tv_scheduler *s, tv_seq *seq);
// Removes a sequence from whichever queue holds it and releases its blocks.
void sched_remove(tv_scheduler *s, tv_seq *seq);
// Plans one round into items; items of decoding sequences have 1 + seq->n_draft tokens (capacity
// max_num_seqs); returns the count. Blocks for the planned tokens are allocated. balance
// (pipelined: the tokens of the newest round in flight, 0 when none; ignored with one lane) is the
// round's token target. *n_preempted counts sequences preempted this round.
int sched_schedule(tv_scheduler *s, int balance, tv_sched_item *items, int *n_preempted);
int sched_n_running(const tv_scheduler *s);
int sched_n_waiting(const tv_scheduler *s);
tv_seq *sched_find(const tv_scheduler *s, uint64_t id);
// Any queued sequence (running first), NULL when both queues are empty.
tv_seq *sched_first(const tv_scheduler *s);
// Releases all blocks of seq and its state slot (finish, abort, preemption).
void sched_release_blocks(tv_scheduler *s, tv_seq *seq);
// Records that n more of seq's tokens have their K/V in the cache (a round ran): advances
// n_computed, registers the blocks it filled with the prefix cache (when enabled), and releases
// the blocks that fell out of the sliding window.
void sched_computed(tv_scheduler *s, tv_seq *seq, int n);
// Pipelined: a chunk of n prompt tokens that samples nothing went into a round: n_computed advances
// now (the next chunk follows it), nothing is registered until sched_confirmed.
void sched_submitted(tv_scheduler *s, tv_seq *seq, int n);
// Pipelined: seq's tokens [0, end) are in every stage's cache (end <= n_computed: a round came
// back): registers the blocks they fill with the prefix cache and releases those out of the window.
void sched_confirmed(tv_scheduler *s, tv_seq *seq, int end);
// Releases seq's blocks past the one holding position n_computed - 1 (blocks that only rejected
// proposed tokens wrote; never registered, refcount 1). The table then covers n_computed tokens.
void sched_rollback(tv_scheduler *s, tv_seq *seq);

#endif
