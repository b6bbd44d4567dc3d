// block_manager.c — free list (a stack of ids) + refcounts + per-block hashes.
#include "engine/block_manager.h"

#include <stdlib.h>

#include "util/status.h"

struct kv_block_manager {
    int n_blocks, block_size;
    int n_free;
    int32_t *free_list;   // (n_blocks) stack; free_list[0..n_free) are free
    int32_t *refcount;    // (n_blocks)
    uint64_t *hash;       // (n_blocks)
};

kv_block_manager *bm_create(int n_blocks, int block_size) {
    if (n_blocks <= 0 || block_size <= 0) return NULL;
    kv_block_manager *bm = calloc(1, sizeof *bm);
    if (!bm) return NULL;
    bm->n_blocks = n_blocks;
    bm->block_size = block_size;
    bm->free_list = malloc((size_t)n_blocks * sizeof(int32_t));
    bm->refcount = calloc((size_t)n_blocks, sizeof(int32_t));
    bm->hash = calloc((size_t)n_blocks, sizeof(uint64_t));
    if (!bm->free_list || !bm->refcount || !bm->hash) { bm_free(bm); return NULL; }
    // lowest ids on top of the stack
    for (int i = 0; i < n_blocks; i++) bm->free_list[i] = n_blocks - 1 - i;
    bm->n_free = n_blocks;
    return bm;
}

void bm_free(kv_block_manager *bm) {
    if (!bm) return;
    free(bm->free_list);
    free(bm->refcount);
    free(bm->hash);
    free(bm);
}

int bm_n_blocks(const kv_block_manager *bm) { return bm->n_blocks; }
int bm_block_size(const kv_block_manager *bm) { return bm->block_size; }
int bm_n_free(const kv_block_manager *bm) { return bm->n_free; }
bool bm_can_allocate(const kv_block_manager *bm, int n) { return n <= bm->n_free; }

int32_t bm_allocate(kv_block_manager *bm) {
    if (bm->n_free == 0) return -1;
    int32_t b = bm->free_list[--bm->n_free];
    TV_CHECK(bm->refcount[b] == 0);
    bm->refcount[b] = 1;
    bm->hash[b] = 0;
    return b;
}

void bm_release(kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks);
    TV_CHECK(bm->refcount[b] > 0);
    if (--bm->refcount[b] == 0) {
        TV_CHECK(bm->n_free < bm->n_blocks);
        bm->hash[b] = 0;
        bm->free_list[bm->n_free++] = b;
    }
}

void bm_incref(kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks && bm->refcount[b] > 0);
    bm->refcount[b]++;
}

int bm_refcount(const kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks);
    return bm->refcount[b];
}

bool bm_needs_copy_on_write(const kv_block_manager *bm, int32_t b) { return bm_refcount(bm, b) > 1; }

void bm_set_hash(kv_block_manager *bm, int32_t b, uint64_t h) {
    TV_CHECK(b >= 0 && b < bm->n_blocks && bm->refcount[b] > 0);
    bm->hash[b] = h;
}

uint64_t bm_hash(const kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks);
    return bm->hash[b];
}

// FNV-1a over the previous hash and the token ids, never 0.
uint64_t bm_chain_hash(uint64_t prev, const int32_t *tokens, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 8; i++) { h ^= (prev >> (8 * i)) & 0xff; h *= 1099511628211ull; }
    for (int t = 0; t < n; t++)
        for (int i = 0; i < 4; i++) { h ^= ((uint32_t)tokens[t] >> (8 * i)) & 0xff; h *= 1099511628211ull; }
    return h ? h : 1;
}
