// state_pool.c — the hybrid models' state slots (state_pool.h): a free stack and a held flag per slot.
#include "engine/state_pool.h"

#include <stdbool.h>
#include <stdlib.h>

#include "util/status.h"

struct state_pool {
    int n_slots, n_free;
    int32_t *free_stack;   // (n_slots) free slots at [0, n_free); the lowest ids are taken first
    bool *is_held;         // (n_slots)
};

state_pool *spool_create(int n_slots) {
    if (n_slots < 1) return NULL;
    state_pool *sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    sp->free_stack = malloc((size_t)n_slots * sizeof *sp->free_stack);
    sp->is_held = calloc((size_t)n_slots, sizeof *sp->is_held);
    if (!sp->free_stack || !sp->is_held) {
        spool_free(sp);
        return NULL;
    }
    sp->n_slots = sp->n_free = n_slots;
    for (int i = 0; i < n_slots; i++) sp->free_stack[i] = n_slots - 1 - i;
    return sp;
}

void spool_free(state_pool *sp) {
    if (!sp) return;
    free(sp->free_stack);
    free(sp->is_held);
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
