// state_pool.h — the recurrent-state slots of a hybrid model (Gated DeltaNet layers), beside the
// paged KV blocks: a fixed number of fixed-size slots (the model's tv_state_cache holds their
// memory), one per running sequence. A sequence takes a slot when the scheduler admits it and gives
// it back when it finishes, is aborted or is preempted (a preempted sequence recomputes from
// position 0, which starts a zero state). Only bookkeeping here, as block_manager.h for blocks.
//
// Invariants (always checked): a slot is free or held by exactly one sequence; releasing a free
// slot or one out of range is a bug; free + held == n_slots.
#ifndef TV_STATE_POOL_H
#define TV_STATE_POOL_H

#include <stdint.h>

typedef struct state_pool state_pool;

// A pool of n_slots free slots (n_slots >= 1); NULL when out of memory.
state_pool *spool_create(int n_slots);
void spool_free(state_pool *sp);
int spool_n_slots(const state_pool *sp);
int spool_n_free(const state_pool *sp);
// A free slot, now held; -1 when none is free.
int32_t spool_allocate(state_pool *sp);
// Gives a held slot back.
void spool_release(state_pool *sp, int32_t slot);

#endif
