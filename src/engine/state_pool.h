// state_pool.h — the recurrent-state slots of a hybrid model (Gated DeltaNet layers), beside the
// paged KV blocks: a fixed number of fixed-size slots (the model's tv_state_cache holds their
// memory). Only bookkeeping here, as block_manager.h for blocks.
//
// Running slots [0, n_slots): one per running sequence. A sequence takes one when the scheduler
// admits it and gives it back when it finishes, is aborted or is preempted (a preempted sequence
// recomputes from position 0 or from a checkpoint).
//
// Checkpoint slots [n_slots, n_slots + n_ckpt) (prefix caching): the state after a prefix of whole
// blocks, under the prefix's chained block hash (block_manager.h), so that a request starting with
// that prefix copies it into its running slot instead of recomputing the prefix. A checkpoint is
// reserved (pending: the forward pass is filling it), then published under its key (findable) or
// dropped; a reservation takes a free slot, else (when the caller allows) the least recently used
// published checkpoint.
// When the block under a key is evicted from the prefix cache, its checkpoint is dropped with it.
//
// Invariants (always checked): a running slot is free or held by exactly one sequence; releasing a
// free slot or one out of range is a bug; free + held == n_slots; a key is published at most once.
#ifndef TV_STATE_POOL_H
#define TV_STATE_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct state_pool state_pool;

// A pool of n_slots free running slots (n_slots >= 1) and n_ckpt free checkpoint slots (>= 0);
// NULL when out of memory or invalid.
state_pool *spool_create(int n_slots, int n_ckpt);
void spool_free(state_pool *sp);
int spool_n_slots(const state_pool *sp);
int spool_n_free(const state_pool *sp);
// A free running slot, now held; -1 when none is free.
int32_t spool_allocate(state_pool *sp);
// Gives a held running slot back.
void spool_release(state_pool *sp, int32_t slot);

int spool_n_ckpt(const state_pool *sp);
int spool_n_ckpt_held(const state_pool *sp);   // pending + published
// The checkpoint slot published under key, -1 when none.
int32_t spool_ckpt_find(const state_pool *sp, uint64_t key);
// Marks a published checkpoint as just used (the last to be taken by a reservation).
void spool_ckpt_touch(state_pool *sp, int32_t slot);
// A checkpoint slot to fill, now pending: a free one, else (may_evict) the least recently used
// published one, whose key is dropped; -1 when there is none to take.
int32_t spool_ckpt_reserve(state_pool *sp, bool may_evict);
// Publishes a pending slot under key (key != 0). When key is already published (another sequence
// checkpointed the same prefix) the slot is freed instead; returns whether it was published.
bool spool_ckpt_publish(state_pool *sp, int32_t slot, uint64_t key);
// Frees a pending or published checkpoint slot.
void spool_ckpt_drop(state_pool *sp, int32_t slot);
// Frees the checkpoint published under key, if any (its block left the prefix cache).
void spool_ckpt_drop_key(state_pool *sp, uint64_t key);

#endif
