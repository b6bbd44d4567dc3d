// block_manager.h — KV block bookkeeping: a free list, reference counts, and automatic prefix
// caching. No tensors here: block ids index the model's KV pools.
//
// Prefix caching (vLLM-style): when a block fills, it is registered under a chained hash of its
// tokens (hash of the previous block's hash and this block's token ids; the tokens are kept to
// rule out collisions). A new request whose prompt starts with the same full blocks reuses them
// (refcount + 1) instead of recomputing. A released block that is registered is not wiped: it goes
// to an LRU list of evictable blocks, still findable, and is reclaimed only when the free list is
// empty. Only full blocks are shared, and a sequence only writes positions past its shared
// prefix, so shared blocks are never written (no copy-on-write needed for prefixes).
//
// Invariants (always checked): a block on the free or evictable list has refcount 0; a released
// block had refcount > 0; free + evictable + referenced == n_blocks.
#ifndef TV_BLOCK_MANAGER_H
#define TV_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kv_block_manager kv_block_manager;

kv_block_manager *bm_create(int n_blocks, int block_size);
void bm_free(kv_block_manager *bm);
int bm_n_blocks(const kv_block_manager *bm);
int bm_block_size(const kv_block_manager *bm);
// Blocks that can be allocated now: truly free plus evictable cached ones.
int bm_n_free(const kv_block_manager *bm);
int bm_n_cached(const kv_block_manager *bm);   // evictable blocks still holding a registered prefix
bool bm_can_allocate(const kv_block_manager *bm, int n);
// A block with refcount 1 (from the free list, else the least recently released cached block,
// which is unregistered); -1 when none.
int32_t bm_allocate(kv_block_manager *bm);
// Drops one reference; at 0 the block goes to the evictable list (registered) or the free list.
void bm_release(kv_block_manager *bm, int32_t block);
// Adds a reference (a fork or a prefix shared by another sequence).
void bm_incref(kv_block_manager *bm, int32_t block);
int bm_refcount(const kv_block_manager *bm, int32_t block);
// A block shared by several sequences must be copied before one of them writes into it.
bool bm_needs_copy_on_write(const kv_block_manager *bm, int32_t block);

// Chained content hash of a block's tokens, never 0.
uint64_t bm_chain_hash(uint64_t prev, const int32_t *tokens, int n);
// Records that block (held by the caller) is full with tokens (block_size of them) under hash, and
// makes it findable unless an identical block is already registered.
void bm_register_full(kv_block_manager *bm, int32_t block, uint64_t hash, const int32_t *tokens);
uint64_t bm_hash(const kv_block_manager *bm, int32_t block);   // 0 = not full / not registered
// The registered block holding exactly these tokens under hash, taken with one more reference
// (removed from the evictable list if it was there); -1 when none.
int32_t bm_acquire_cached(kv_block_manager *bm, uint64_t hash, const int32_t *tokens);
// Whether a registered block holds exactly these tokens under hash (a prefix in the cache).
bool bm_is_cached(const kv_block_manager *bm, uint64_t hash, const int32_t *tokens);
// Calls fn(user, hash) whenever bm_allocate evicts a registered block (its prefix under hash is
// no longer cached): what is kept beside the cached prefix (a hybrid model's state checkpoint)
// goes with it. fn NULL: none.
void bm_set_evict_hook(kv_block_manager *bm, void (*fn)(void *user, uint64_t hash), void *user);

#endif
