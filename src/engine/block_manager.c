// block_manager.c — free list (a stack of ids), refcounts, and the prefix cache: a hash map from
// chained block hashes to block ids plus an LRU list of evictable (released but registered) blocks.
#include "engine/block_manager.h"

#include <stdlib.h>
#include <string.h>

#include "util/status.h"

struct kv_block_manager {
    int n_blocks, block_size;
    int n_free;
    int32_t *free_list;    // (n_blocks) stack; free_list[0..n_free) are free and unregistered
    int32_t *refcount;     // (n_blocks)
    uint64_t *hash;        // (n_blocks) chained hash of a full block, 0 = none
    bool *registered;      // (n_blocks) findable through the map
    int32_t *tokens;       // (n_blocks, block_size) a registered block's tokens (collision check)
    // hash map: buckets of singly linked chains through map_next
    int32_t *buckets;      // (n_buckets) first block of the chain, -1 = empty
    int32_t *map_next;     // (n_blocks)
    uint64_t n_buckets;    // power of two
    // LRU of evictable blocks: doubly linked, head = least recently released
    int32_t *lru_prev, *lru_next;   // (n_blocks), -1 = none
    int32_t lru_head, lru_tail;
    int n_evictable;
    void (*on_evict)(void *user, uint64_t hash);   // bm_set_evict_hook
    void *on_evict_user;
};

kv_block_manager *bm_create(int n_blocks, int block_size) {
    if (n_blocks <= 0 || block_size <= 0) return NULL;
    kv_block_manager *bm = calloc(1, sizeof *bm);
    if (!bm) return NULL;
    bm->n_blocks = n_blocks;
    bm->block_size = block_size;
    bm->n_buckets = 16;
    while (bm->n_buckets < 2 * (uint64_t)n_blocks) bm->n_buckets *= 2;
    size_t n = (size_t)n_blocks;
    bm->free_list = malloc(n * sizeof(int32_t));
    bm->refcount = calloc(n, sizeof(int32_t));
    bm->hash = calloc(n, sizeof(uint64_t));
    bm->registered = calloc(n, sizeof(bool));
    bm->tokens = malloc(n * (size_t)block_size * sizeof(int32_t));
    bm->buckets = malloc(bm->n_buckets * sizeof(int32_t));
    bm->map_next = malloc(n * sizeof(int32_t));
    bm->lru_prev = malloc(n * sizeof(int32_t));
    bm->lru_next = malloc(n * sizeof(int32_t));
    if (!bm->free_list || !bm->refcount || !bm->hash || !bm->registered || !bm->tokens || !bm->buckets ||
        !bm->map_next || !bm->lru_prev || !bm->lru_next) {
        bm_free(bm);
        return NULL;
    }
    for (uint64_t i = 0; i < bm->n_buckets; i++) bm->buckets[i] = -1;
    for (int i = 0; i < n_blocks; i++) {
        bm->free_list[i] = n_blocks - 1 - i;   // lowest ids on top of the stack
        bm->map_next[i] = bm->lru_prev[i] = bm->lru_next[i] = -1;
    }
    bm->n_free = n_blocks;
    bm->lru_head = bm->lru_tail = -1;
    return bm;
}

void bm_free(kv_block_manager *bm) {
    if (!bm) return;
    free(bm->free_list);
    free(bm->refcount);
    free(bm->hash);
    free(bm->registered);
    free(bm->tokens);
    free(bm->buckets);
    free(bm->map_next);
    free(bm->lru_prev);
    free(bm->lru_next);
    free(bm);
}

int bm_n_blocks(const kv_block_manager *bm) { return bm->n_blocks; }
int bm_block_size(const kv_block_manager *bm) { return bm->block_size; }
int bm_n_free(const kv_block_manager *bm) { return bm->n_free + bm->n_evictable; }
int bm_n_cached(const kv_block_manager *bm) { return bm->n_evictable; }
bool bm_can_allocate(const kv_block_manager *bm, int n) { return n <= bm_n_free(bm); }

static void lru_unlink(kv_block_manager *bm, int32_t b) {
    int32_t p = bm->lru_prev[b], n = bm->lru_next[b];
    if (p >= 0) bm->lru_next[p] = n; else bm->lru_head = n;
    if (n >= 0) bm->lru_prev[n] = p; else bm->lru_tail = p;
    bm->lru_prev[b] = bm->lru_next[b] = -1;
    bm->n_evictable--;
}

static void lru_push_tail(kv_block_manager *bm, int32_t b) {
    bm->lru_prev[b] = bm->lru_tail;
    bm->lru_next[b] = -1;
    if (bm->lru_tail >= 0) bm->lru_next[bm->lru_tail] = b; else bm->lru_head = b;
    bm->lru_tail = b;
    bm->n_evictable++;
}

static void map_remove(kv_block_manager *bm, int32_t b) {
    int32_t *pp = &bm->buckets[bm->hash[b] & (bm->n_buckets - 1)];
    while (*pp != b) {
        TV_CHECK(*pp >= 0);
        pp = &bm->map_next[*pp];
    }
    *pp = bm->map_next[b];
    bm->map_next[b] = -1;
    bm->registered[b] = false;
}

static int32_t map_find(const kv_block_manager *bm, uint64_t h, const int32_t *tokens) {
    for (int32_t b = bm->buckets[h & (bm->n_buckets - 1)]; b >= 0; b = bm->map_next[b])
        if (bm->hash[b] == h && !memcmp(&bm->tokens[(size_t)b * bm->block_size], tokens,
                                        (size_t)bm->block_size * sizeof(int32_t)))
            return b;
    return -1;
}

int32_t bm_allocate(kv_block_manager *bm) {
    int32_t b;
    if (bm->n_free > 0) {
        b = bm->free_list[--bm->n_free];
    } else if (bm->lru_head >= 0) {   // evict the least recently released cached block
        b = bm->lru_head;
        lru_unlink(bm, b);
        map_remove(bm, b);
        if (bm->on_evict) bm->on_evict(bm->on_evict_user, bm->hash[b]);
    } else {
        return -1;
    }
    TV_CHECK(bm->refcount[b] == 0 && !bm->registered[b]);
    bm->refcount[b] = 1;
    bm->hash[b] = 0;
    return b;
}

void bm_release(kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks);
    TV_CHECK(bm->refcount[b] > 0);
    if (--bm->refcount[b] > 0) return;
    if (bm->registered[b]) {
        lru_push_tail(bm, b);
    } else {
        TV_CHECK(bm->n_free < bm->n_blocks);
        bm->hash[b] = 0;
        bm->free_list[bm->n_free++] = b;
    }
    TV_CHECK(bm->n_free + bm->n_evictable <= bm->n_blocks);
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

uint64_t bm_hash(const kv_block_manager *bm, int32_t b) {
    TV_CHECK(b >= 0 && b < bm->n_blocks);
    return bm->hash[b];
}

void bm_register_full(kv_block_manager *bm, int32_t b, uint64_t h, const int32_t *tokens) {
    TV_CHECK(b >= 0 && b < bm->n_blocks && bm->refcount[b] > 0 && h != 0);
    if (bm->registered[b]) return;   // a cached block reused by this sequence
    bm->hash[b] = h;                 // kept for chaining even when a twin is already registered
    if (map_find(bm, h, tokens) >= 0) return;
    memcpy(&bm->tokens[(size_t)b * bm->block_size], tokens, (size_t)bm->block_size * sizeof(int32_t));
    uint64_t k = h & (bm->n_buckets - 1);
    bm->map_next[b] = bm->buckets[k];
    bm->buckets[k] = b;
    bm->registered[b] = true;
}

bool bm_is_cached(const kv_block_manager *bm, uint64_t h, const int32_t *tokens) { return map_find(bm, h, tokens) >= 0; }

void bm_set_evict_hook(kv_block_manager *bm, void (*fn)(void *user, uint64_t hash), void *user) {
    bm->on_evict = fn;
    bm->on_evict_user = user;
}

int32_t bm_acquire_cached(kv_block_manager *bm, uint64_t h, const int32_t *tokens) {
    int32_t b = map_find(bm, h, tokens);
    if (b < 0) return -1;
    if (bm->refcount[b] == 0) lru_unlink(bm, b);
    bm->refcount[b]++;
    return b;
}

// FNV-1a over the previous hash and the token ids, never 0.
uint64_t bm_chain_hash(uint64_t prev, const int32_t *tokens, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 8; i++) { h ^= (prev >> (8 * i)) & 0xff; h *= 1099511628211ull; }
    for (int t = 0; t < n; t++)
        for (int i = 0; i < 4; i++) { h ^= ((uint32_t)tokens[t] >> (8 * i)) & 0xff; h *= 1099511628211ull; }
    return h ? h : 1;
}
