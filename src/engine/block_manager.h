// block_manager.h — KV block bookkeeping: a free list, reference counts, and a content hash per
// full block (the hook prefix caching builds on). No tensors here: block ids index the model's KV
// pools. Invariants (always checked): a block on the free list has refcount 0; a released block
// had refcount > 0; n_free + blocks in use == n_blocks.
#ifndef TV_BLOCK_MANAGER_H
#define TV_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kv_block_manager kv_block_manager;

kv_block_manager *bm_create(int n_blocks, int block_size);
void bm_free(kv_block_manager *bm);
int bm_n_blocks(const kv_block_manager *bm);
int bm_block_size(const kv_block_manager *bm);
int bm_n_free(const kv_block_manager *bm);
bool bm_can_allocate(const kv_block_manager *bm, int n);
// Pops a free block with refcount 1; -1 when none is free.
int32_t bm_allocate(kv_block_manager *bm);
// Drops one reference; the block returns to the free list at 0.
void bm_release(kv_block_manager *bm, int32_t block);
// Adds a reference (a fork or a prefix shared by another sequence).
void bm_incref(kv_block_manager *bm, int32_t block);
int bm_refcount(const kv_block_manager *bm, int32_t block);
// A block shared by several sequences must be copied before one of them writes into it.
bool bm_needs_copy_on_write(const kv_block_manager *bm, int32_t block);
// Content hash of a full block (chained: hash of the previous block's hash and this block's
// tokens), 0 = none. Set when a block fills; prefix caching looks blocks up by it.
void bm_set_hash(kv_block_manager *bm, int32_t block, uint64_t hash);
uint64_t bm_hash(const kv_block_manager *bm, int32_t block);
uint64_t bm_chain_hash(uint64_t prev, const int32_t *tokens, int n);

#endif
