// scheduler.c — waiting deque + running list, token budget, chunked prefill, preemption.
#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/status.h"

struct tv_scheduler {
    tv_sched_config cfg;
    kv_block_manager *bm;
    tv_seq **waiting;    // (cap_w) deque as a ring: head .. head+n_waiting
    int cap_w, head_w, n_waiting;
    tv_seq **running;    // (max_num_seqs) in admission order, oldest first
    int n_running;
    uint64_t next_arrival;
};

static void drop_checkpoint(void *states, uint64_t hash) { spool_ckpt_drop_key(states, hash); }

tv_scheduler *sched_create(const tv_sched_config *c, kv_block_manager *bm) {
    tv_scheduler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = *c;
    s->bm = bm;
    if (c->states && c->prefix_caching) bm_set_evict_hook(bm, drop_checkpoint, c->states);
    s->cap_w = 64;
    s->waiting = malloc((size_t)s->cap_w * sizeof *s->waiting);
    s->running = malloc((size_t)c->max_num_seqs * sizeof *s->running);
    if (!s->waiting || !s->running) { sched_free(s); return NULL; }
    return s;
}

void sched_free(tv_scheduler *s) {
    if (!s) return;
    free(s->waiting);
    free(s->running);
    free(s);
}

int sched_n_running(const tv_scheduler *s) { return s->n_running; }
int sched_n_waiting(const tv_scheduler *s) { return s->n_waiting; }

static tv_seq **wslot(const tv_scheduler *s, int i) { return &s->waiting[(s->head_w + i) % s->cap_w]; }

// Makes the waiting ring hold every queued sequence plus one, so that a preemption (running ->
// waiting) never needs memory. false (nothing changed) when out of memory.
static bool wreserve(tv_scheduler *s) {
    const int need = s->n_waiting + s->n_running + 1;
    if (need <= s->cap_w) return true;
    int ncap = s->cap_w * 2;
    while (ncap < need) ncap *= 2;
    tv_seq **nw = mem_malloc((size_t)ncap * sizeof *nw);
    if (!nw) return false;
    for (int i = 0; i < s->n_waiting; i++) nw[i] = *wslot(s, i);
    free(s->waiting);
    s->waiting = nw;
    s->cap_w = ncap;
    s->head_w = 0;
    return true;
}

bool sched_add(tv_scheduler *s, tv_seq *seq) {
    if (!wreserve(s)) return false;
    seq->status = SEQ_WAITING;
    seq->state_slot = -1;   // taken at admission
    seq->state_restore = -1;
    *wslot(s, s->n_waiting++) = seq;
    return true;
}

// Requeues a preempted sequence at the front (room reserved by sched_add).
static void push_front(tv_scheduler *s, tv_seq *seq) {
    TV_CHECK(s->n_waiting < s->cap_w);
    s->head_w = (s->head_w + s->cap_w - 1) % s->cap_w;
    s->n_waiting++;
    *wslot(s, 0) = seq;
    seq->status = SEQ_WAITING;
}

void sched_release_blocks(tv_scheduler *s, tv_seq *seq) {
    // release the tail first: the LRU then evicts a prefix's last blocks before its first ones
    for (int i = seq->n_blocks - 1; i >= seq->n_released; i--) bm_release(s->bm, seq->blocks[i]);
    seq->n_blocks = 0;
    if (seq->state_slot >= 0) spool_release(s->cfg.states, seq->state_slot);
    seq->state_slot = -1;
    seq->state_restore = -1;
    seq->n_draft = 0;
    seq->n_released = 0;
    seq->n_computed = 0;
    seq->n_cached = 0;
    seq->n_hashed = 0;
    seq->hash_last = 0;
}

// Releases seq's blocks that no future query sees: with every layer windowed to W keys, a query
// at p >= end sees keys >= p - W + 1, so block b is dead once (b + 1) * bs <= end - W + 1. end: the
// tokens whose K/V every stage holds (n_computed, or less while chunks are in flight).
static void release_out_of_window(tv_scheduler *s, tv_seq *seq, int end) {
    if (s->cfg.window <= 0) return;
    const int first_key = end - s->cfg.window + 1;
    if (first_key <= 0) return;
    const int dead = first_key / bm_block_size(s->bm);
    for (; seq->n_released < dead && seq->n_released < seq->n_blocks; seq->n_released++) {
        bm_release(s->bm, seq->blocks[seq->n_released]);
        seq->blocks[seq->n_released] = -1;
    }
}

void sched_submitted(tv_scheduler *s, tv_seq *seq, int n) {
    (void)s;
    TV_CHECK(seq->n_computed + n < seq->n_tokens);   // a chunk that samples nothing
    seq->n_computed += n;
}

void sched_confirmed(tv_scheduler *s, tv_seq *seq, int end) {
    const int bs = bm_block_size(s->bm);
    TV_CHECK(end <= seq->n_computed);
    if (s->cfg.prefix_caching)
        for (; (seq->n_hashed + 1) * bs <= end; seq->n_hashed++) {
            const int32_t *toks = seq->tokens + (size_t)seq->n_hashed * bs;
            seq->hash_last = bm_chain_hash(seq->hash_last, toks, bs);
            bm_register_full(s->bm, seq->blocks[seq->n_hashed], seq->hash_last, toks);
        }
    release_out_of_window(s, seq, end);
}

void sched_computed(tv_scheduler *s, tv_seq *seq, int n) {
    seq->n_computed += n;
    sched_confirmed(s, seq, seq->n_computed);
}

void sched_rollback(tv_scheduler *s, tv_seq *seq) {
    const int bs = bm_block_size(s->bm);
    const int keep = (seq->n_computed + bs - 1) / bs;
    for (; seq->n_blocks > keep; seq->n_blocks--) {
        const int32_t b = seq->blocks[seq->n_blocks - 1];
        TV_CHECK(bm_refcount(s->bm, b) == 1 && bm_hash(s->bm, b) == 0);
        bm_release(s->bm, b);
    }
}

tv_seq *sched_find(const tv_scheduler *s, uint64_t id) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i]->id == id) return s->running[i];
    for (int i = 0; i < s->n_waiting; i++)
        if ((*wslot(s, i))->id == id) return *wslot(s, i);
    return NULL;
}

tv_seq *sched_first(const tv_scheduler *s) {
    if (s->n_running) return s->running[0];
    return s->n_waiting ? *wslot(s, 0) : NULL;
}

void sched_remove(tv_scheduler *s, tv_seq *seq) {
    for (int i = 0; i < s->n_running; i++) {
        if (s->running[i] != seq) continue;
        memmove(&s->running[i], &s->running[i + 1], (size_t)(s->n_running - i - 1) * sizeof *s->running);
        s->n_running--;
        sched_release_blocks(s, seq);
        return;
    }
    for (int i = 0; i < s->n_waiting; i++) {
        if (*wslot(s, i) != seq) continue;
        for (int j = i; j < s->n_waiting - 1; j++) *wslot(s, j) = *wslot(s, j + 1);
        s->n_waiting--;
        sched_release_blocks(s, seq);
        return;
    }
}

// Grows seq's block table so it covers n_tokens tokens. false (nothing allocated) if the pool
// can't cover it, or no memory to grow the table (the engine sizes tables at add time).
static bool ensure_blocks(tv_scheduler *s, tv_seq *seq, int n_tokens) {
    const int bs = bm_block_size(s->bm);
    const int need = (n_tokens + bs - 1) / bs - seq->n_blocks;
    if (need <= 0) return true;
    if (!bm_can_allocate(s->bm, need)) return false;
    if (seq->n_blocks + need > seq->blocks_cap) {
        int ncap = seq->blocks_cap ? seq->blocks_cap : 4;
        while (ncap < seq->n_blocks + need) ncap *= 2;
        int32_t *nb = mem_realloc(seq->blocks, (size_t)ncap * sizeof *nb);
        if (!nb) return false;
        seq->blocks = nb;
        seq->blocks_cap = ncap;
    }
    for (int i = 0; i < need; i++) {
        int32_t b = bm_allocate(s->bm);
        TV_CHECK(b >= 0);
        seq->blocks[seq->n_blocks++] = b;
    }
    return true;
}

// Takes the cached full blocks that match the start of seq's tokens (never the block holding its
// last token: that token must run to produce logits). Sets n_computed/n_cached. Hybrid models: only
// up to the last block after which a state checkpoint is kept (seq->state_restore).
static void match_prefix(tv_scheduler *s, tv_seq *seq) {
    const int bs = bm_block_size(s->bm);
    const int max_blocks = (seq->n_tokens - 1) / bs;
    uint64_t h = 0;
    int n_ckpt_blocks = 0;     // hybrid: blocks up to the last checkpoint found
    uint64_t h_ckpt = 0;
    for (int b = 0; b < max_blocks; b++) {
        const int32_t *toks = seq->tokens + (size_t)b * bs;
        h = bm_chain_hash(h, toks, bs);
        if (seq->n_blocks == seq->blocks_cap) {
            int ncap = seq->blocks_cap ? seq->blocks_cap * 2 : 4;
            int32_t *nb = mem_realloc(seq->blocks, (size_t)ncap * sizeof *nb);
            if (!nb) break;
            seq->blocks = nb;
            seq->blocks_cap = ncap;
        }
        int32_t blk = bm_acquire_cached(s->bm, h, toks);
        if (blk < 0) break;
        seq->blocks[seq->n_blocks++] = blk;
        seq->hash_last = h;
        if (s->cfg.states && spool_ckpt_find(s->cfg.states, h) >= 0) {
            n_ckpt_blocks = seq->n_blocks;
            h_ckpt = h;
        }
    }
    if (s->cfg.states) {   // the state after the prefix must come with it: back to the last checkpoint
        for (; seq->n_blocks > n_ckpt_blocks; seq->n_blocks--) bm_release(s->bm, seq->blocks[seq->n_blocks - 1]);
        seq->hash_last = h_ckpt;
        if (n_ckpt_blocks > 0) {
            seq->state_restore = spool_ckpt_find(s->cfg.states, h_ckpt);
            spool_ckpt_touch(s->cfg.states, seq->state_restore);
        }
    }
    seq->n_computed = seq->n_cached = seq->n_blocks * bs;
    seq->n_hashed = seq->n_blocks;
    release_out_of_window(s, seq, seq->n_computed);   // a long cached prefix: only its window's blocks stay held
}

// Preempts the newest running sequence that no round in flight holds (by recompute). Returns it.
static tv_seq *preempt_newest(tv_scheduler *s) {
    int i = s->n_running - 1;
    while (i >= 0 && s->running[i]->n_flights > 0) i--;
    TV_CHECK(i >= 0);   // the caller's sequence is running and not in flight
    tv_seq *victim = s->running[i];
    memmove(&s->running[i], &s->running[i + 1], (size_t)(s->n_running - i - 1) * sizeof *s->running);
    s->n_running--;
    sched_release_blocks(s, victim);
    push_front(s, victim);
    return victim;
}

// Pipelined: the round's limits. Decodes: ceil(decoding / n_lanes), so the decoding sequences split
// over n_lanes rounds in flight (whichever are back run together: the groups even out by
// themselves). Tokens: as many as the newest round in flight (balance), or the decodes plus an even
// share of the prompt tokens waiting to run (running prompts not waiting for a sample, and the
// waiting requests that could be admitted), whichever is more; without chunked prefill a prompt
// runs whole, so only the decodes are limited. The share: 1 / (2 n_lanes) while sequences decode
// (a prompt rides along rounds that run anyway, and shares that overlap keep the rounds even as
// requests keep arriving), 1 / n_lanes when none does (the chunks go through the stages at once).
// A share is at most max_batched_tokens / (2 n_lanes): a burst of prompts (a server's first
// requests, many arriving at once) goes through in rounds about that size, not in full-budget
// rounds: the later stages wait for the first round of a burst whole, and the last stage idles
// wherever a round is longer than the one before it, so small even rounds cost the stages less
// idle time than their extra rounds cost them in weight streams. (A model of the serving bench,
// 16 streams of 128 + 64 tokens, 2 stages: the last stage busy 93% -> 97%, 525 -> 536 rounds;
// rounds of 256 gain half as much, of 64 no more; docs/architecture.md.)
static void round_limits(const tv_scheduler *s, int balance, int *max_decodes, int *max_tokens) {
    *max_decodes = s->cfg.max_num_seqs;
    *max_tokens = s->cfg.max_batched_tokens;
    const int L = s->cfg.n_lanes;
    if (L <= 1) return;
    int n_decoding = 0, n_decodable = 0;
    long prompt = 0;
    for (int i = 0; i < s->n_running; i++) {
        const tv_seq *seq = s->running[i];
        const int pending = seq_n_pending(seq);
        if (pending == 1 || seq->sample_in_flight) n_decoding++;
        if (pending == 1 && seq->n_flights == 0) n_decodable++;
        if (pending > 1 && !seq->sample_in_flight) prompt += pending;
    }
    for (int i = 0; i < s->n_waiting && i < s->cfg.max_num_seqs - s->n_running; i++) prompt += seq_n_pending(*wslot(s, i));
    *max_decodes = (n_decoding + L - 1) / L;
    const int decodes = n_decodable < *max_decodes ? n_decodable : *max_decodes;
    const int spread = n_decoding > 0 ? 2 * L : L;
    long share = (prompt + spread - 1) / spread;
    const long cap = (s->cfg.max_batched_tokens + 2 * L - 1) / (2 * L);
    if (share > cap) share = cap;
    long want = decodes + share;
    if (want < balance) want = balance;
    if (want < *max_tokens && s->cfg.chunked_prefill) *max_tokens = (int)want;   // (else prompts run whole)
}

int sched_schedule(tv_scheduler *s, int balance, tv_sched_item *items, int *n_preempted) {
    int n = 0, max_decodes, budget;
    round_limits(s, balance, &max_decodes, &budget);
    *n_preempted = 0;
    // 1. decodes, oldest first; preempt the newest when blocks run out
    for (int i = 0; i < s->n_running && budget > 0 && n < max_decodes; i++) {
        tv_seq *seq = s->running[i];
        if (seq->n_flights > 0 || seq_n_pending(seq) != 1) continue;
        bool ok = false;
        while (!(ok = ensure_blocks(s, seq, seq->n_computed + 1))) {
            tv_seq *v = preempt_newest(s);
            (*n_preempted)++;
            if (v == seq) break;
        }
        if (!ok) break;   // seq itself was the newest and got preempted
        items[n++] = (tv_sched_item){seq, 1};
        budget--;
    }
    // 2. running prompts (chunked prefill in progress, or resumed after preemption; pipelined: also
    // behind a chunk of theirs in flight, the last token included)
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        tv_seq *seq = s->running[i];
        int pending = seq_n_pending(seq);
        const int min_pending = seq->n_flights > 0 ? 1 : 2;   // else a decode: step 1's
        if (seq->sample_in_flight || pending < min_pending) continue;
        int chunk = pending < budget ? pending : budget;
        if (!s->cfg.chunked_prefill && chunk < pending) continue;
        if (!ensure_blocks(s, seq, seq->n_computed + chunk)) {
            // take what the free blocks cover, if chunking allows
            int bs = bm_block_size(s->bm);
            int fit = (seq->n_blocks + bm_n_free(s->bm)) * bs - seq->n_computed;
            if (!s->cfg.chunked_prefill || fit <= 0) continue;
            chunk = fit;
            if (!ensure_blocks(s, seq, seq->n_computed + chunk)) continue;   // no memory for its block table
        }
        items[n++] = (tv_sched_item){seq, chunk};
        budget -= chunk;
    }
    // 3. admit waiting requests FCFS
    while (s->n_waiting > 0 && budget > 0 && s->n_running < s->cfg.max_num_seqs && *n_preempted == 0 &&
           (!s->cfg.states || spool_n_free(s->cfg.states) > 0)) {
        tv_seq *seq = *wslot(s, 0);
        if (s->cfg.prefix_caching && seq->n_blocks == 0) match_prefix(s, seq);
        int pending = seq_n_pending(seq);
        int chunk = pending < budget ? pending : budget;
        if ((!s->cfg.chunked_prefill && chunk < pending) || !ensure_blocks(s, seq, seq->n_computed + chunk)) {
            sched_release_blocks(s, seq);   // cached blocks go back to the cache
            break;
        }
        s->head_w = (s->head_w + 1) % s->cap_w;
        s->n_waiting--;
        if (s->cfg.states) {   // one is free: the loop condition checked
            seq->state_slot = spool_allocate(s->cfg.states);
            TV_CHECK(seq->state_slot >= 0);
        }
        seq->status = SEQ_RUNNING;
        seq->arrival = s->next_arrival++;
        s->running[s->n_running++] = seq;
        items[n++] = (tv_sched_item){seq, chunk};
        budget -= chunk;
    }
    // 4. proposed tokens of the decodes scheduled in 1, with what budget and free blocks are left
    for (int i = 0; i < n; i++) {
        tv_seq *seq = items[i].seq;
        if (seq_n_pending(seq) != 1) continue;
        const int fit = (seq->n_blocks + bm_n_free(s->bm)) * bm_block_size(s->bm) - seq->n_computed - 1;
        int extra = seq->n_draft < budget ? seq->n_draft : budget;
        if (extra > fit) extra = fit;
        if (extra > 0 && !ensure_blocks(s, seq, seq->n_computed + 1 + extra)) extra = 0;
        seq->n_draft = extra;
        items[i].n_tokens += extra;
        budget -= extra;
    }
    return n;
}
