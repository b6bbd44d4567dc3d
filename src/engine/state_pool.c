// state_pool.c — the hybrid models' state slots (state_pool.h): a free stack and a held flag per
// running slot; per checkpoint slot its state, key and last use (a linear scan finds a key or the
// least recently used: checkpoint slots are few, each holds a whole sequence state).
#include "engine/state_pool.h"

#include <stdlib.h>

#include "util/status.h"

typedef enum { CKPT_FREE = 0, CKPT_PENDING, CKPT_PUBLISHED } ckpt_state;

struct state_pool {
    int n_slots, n_free;
    int32_t *free_stack;   // (n_slots) free slots at [0, n_free); the lowest ids are taken first
    bool *is_held;         // (n_slots)
    int n_ckpt, n_ckpt_held;
    ckpt_state *ckpt;      // (n_ckpt) checkpoint i is state slot n_slots + i
    uint64_t *key;         // (n_ckpt) its prefix's chained block hash while published
    uint64_t *last_use;    // (n_ckpt) clock value of its publication or last use
    uint64_t clock;
};

state_pool *spool_create(int n_slots, int n_ckpt) {
    if (n_slots < 1 || n_ckpt < 0) return NULL;
    state_pool *sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    sp->free_stack = malloc((size_t)n_slots * sizeof *sp->free_stack);
    sp->is_held = calloc((size_t)n_slots, sizeof *sp->is_held);
    sp->ckpt = calloc((size_t)n_ckpt + 1, sizeof *sp->ckpt);
    sp->key = calloc((size_t)n_ckpt + 1, sizeof *sp->key);
    sp->last_use = calloc((size_t)n_ckpt + 1, sizeof *sp->last_use);
    if (!sp->free_stack || !sp->is_held || !sp->ckpt || !sp->key || !sp->last_use) {
        spool_free(sp);
        return NULL;
    }
    sp->n_slots = sp->n_free = n_slots;
    sp->n_ckpt = n_ckpt;
    for (int i = 0; i < n_slots; i++) sp->free_stack[i] = n_slots - 1 - i;
    return sp;
}

void spool_free(state_pool *sp) {
    if (!sp) return;
    free(sp->free_stack);
    free(sp->is_held);
    free(sp->ckpt);
    free(sp->key);
    free(sp->last_use);
    free(sp);
}

int spool_n_slots(const state_pool *sp) { return sp->n_slots; }
int spool_n_free(const state_pool *sp) { return sp->n_free; }

int32_t spool_allocate(state_pool *sp) {
    if (sp->n_free == 0) return -1;
    const int32_t slot = sp->free_stack[--sp->n_free];
    TV_CHECK(!sp->is_held[slot]);
    sp->is_held[slot] = true;
    return slot;
}

void spool_release(state_pool *sp, int32_t slot) {
    TV_CHECK(slot >= 0 && slot < sp->n_slots && sp->is_held[slot]);
    TV_CHECK(sp->n_free < sp->n_slots);
    sp->is_held[slot] = false;
    sp->free_stack[sp->n_free++] = slot;
}

int spool_n_ckpt(const state_pool *sp) { return sp->n_ckpt; }
int spool_n_ckpt_held(const state_pool *sp) { return sp->n_ckpt_held; }

// The index of checkpoint slot `slot` (a state slot id), checked.
static int ckpt_index(const state_pool *sp, int32_t slot) {
    const int i = slot - sp->n_slots;
    TV_CHECK(i >= 0 && i < sp->n_ckpt);
    return i;
}

int32_t spool_ckpt_find(const state_pool *sp, uint64_t key) {
    for (int i = 0; key && i < sp->n_ckpt; i++)
        if (sp->ckpt[i] == CKPT_PUBLISHED && sp->key[i] == key) return sp->n_slots + i;
    return -1;
}

void spool_ckpt_touch(state_pool *sp, int32_t slot) {
    const int i = ckpt_index(sp, slot);
    TV_CHECK(sp->ckpt[i] == CKPT_PUBLISHED);
    sp->last_use[i] = ++sp->clock;
}

int32_t spool_ckpt_reserve(state_pool *sp, bool may_evict) {
    int pick = -1;
    for (int i = 0; i < sp->n_ckpt; i++) {
        if (sp->ckpt[i] == CKPT_FREE) { pick = i; break; }
        if (may_evict && sp->ckpt[i] == CKPT_PUBLISHED && (pick < 0 || sp->last_use[i] < sp->last_use[pick])) pick = i;
    }
    if (pick < 0) return -1;
    if (sp->ckpt[pick] == CKPT_FREE) sp->n_ckpt_held++;
    sp->ckpt[pick] = CKPT_PENDING;
    sp->key[pick] = 0;
    return sp->n_slots + pick;
}

bool spool_ckpt_publish(state_pool *sp, int32_t slot, uint64_t key) {
    const int i = ckpt_index(sp, slot);
    TV_CHECK(sp->ckpt[i] == CKPT_PENDING && key != 0);
    if (spool_ckpt_find(sp, key) >= 0) {
        spool_ckpt_drop(sp, slot);
        return false;
    }
    sp->ckpt[i] = CKPT_PUBLISHED;
    sp->key[i] = key;
    sp->last_use[i] = ++sp->clock;
    return true;
}

void spool_ckpt_drop(state_pool *sp, int32_t slot) {
    const int i = ckpt_index(sp, slot);
    TV_CHECK(sp->ckpt[i] != CKPT_FREE && sp->n_ckpt_held > 0);
    sp->ckpt[i] = CKPT_FREE;
    sp->key[i] = 0;
    sp->n_ckpt_held--;
}

void spool_ckpt_drop_key(state_pool *sp, uint64_t key) {
    const int32_t slot = spool_ckpt_find(sp, key);
    if (slot >= 0) spool_ckpt_drop(sp, slot);
}
