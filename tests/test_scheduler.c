// test_scheduler.c — the step planner (src/engine/scheduler.c) through its header, with the
// engine's postprocess simulated here (n_computed advances by the planned tokens, a sequence whose
// pending tokens all ran samples one more, full blocks are registered for prefix caching):
// decodes first then prompt chunks within the token budget, chunked prefill on and off, FCFS
// admission with head-of-line blocking, max_num_seqs, preemption by recompute (the newest
// victim, its blocks freed, requeued at the front, recomputed in full later), the waiting deque
// through wrap-around and growth, removal from either queue, and admission on cached prefixes;
// speculative decoding's proposed tokens (scheduled from what budget and blocks are left, never
// preempting, and rolled back exactly); hybrid models' state slots and prefix reuse up to the last
// state checkpoint, which leaves with its block when the cache evicts it.
// After every step each block's refcount must equal the number of block tables holding it.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/block_manager.h"
#include "engine/scheduler.h"

enum { TOK_CAP = 512 };

typedef struct {
    tv_scheduler *s;
    kv_block_manager *bm;
    tv_sched_config cfg;
    tv_sched_item *items;   // (cfg.max_num_seqs) exactly: an overrun shows under ASan
    tv_seq **all;           // every sequence of the test, for the block accounting
    int n_all;
} rig;

// window > 0: every layer of the (imaginary) model attends within that many keys.
static rig rig_make_w(int n_blocks, int block_size, int max_seqs, int budget, bool chunked, bool prefix, int window) {
    rig r = {0};
    r.cfg = (tv_sched_config){.max_num_seqs = max_seqs, .max_batched_tokens = budget, .chunked_prefill = chunked,
                              .prefix_caching = prefix, .window = window};
    r.bm = bm_create(n_blocks, block_size);
    assert_non_null(r.bm);
    r.s = sched_create(&r.cfg, r.bm);
    assert_non_null(r.s);
    r.items = malloc((size_t)max_seqs * sizeof *r.items);
    r.all = calloc(256, sizeof *r.all);
    return r;
}

static rig rig_make(int n_blocks, int block_size, int max_seqs, int budget, bool chunked, bool prefix) {
    return rig_make_w(n_blocks, block_size, max_seqs, budget, chunked, prefix, 0);
}

// A sequence with a prompt of n tokens first, first+1, ... (ids only matter for prefix hashing).
static tv_seq *seq_new(rig *r, uint64_t id, int n, int32_t first) {
    tv_seq *q = calloc(1, sizeof *q);
    q->id = id;
    q->cap = TOK_CAP;
    q->tokens = malloc(TOK_CAP * sizeof(int32_t));
    for (int i = 0; i < n; i++) q->tokens[i] = first + i;
    q->n_tokens = q->n_prompt = n;
    q->max_len = TOK_CAP;
    q->max_new = -1;
    assert_true(r->n_all < 256);
    r->all[r->n_all++] = q;
    return q;
}

static tv_seq *add(rig *r, uint64_t id, int n, int32_t first) {
    tv_seq *q = seq_new(r, id, n, first);
    assert_true(sched_add(r->s, q));
    assert_int_equal(q->status, SEQ_WAITING);
    return q;
}

// Every block's refcount equals the number of block tables that hold it (no block in two tables
// unless shared through the prefix cache, no leaked reference); released entries are -1, and only
// blocks that no future query of the sequence sees (sliding window) are released.
static void check_blocks(const rig *r) {
    const int n = bm_n_blocks(r->bm), bs = bm_block_size(r->bm);
    int *count = calloc((size_t)n, sizeof *count);
    int n_held = 0;
    for (int i = 0; i < r->n_all; i++)
        for (int b = 0; b < r->all[i]->n_blocks; b++) {
            int32_t id = r->all[i]->blocks[b];
            if (b < r->all[i]->n_released) {
                assert_int_equal(id, -1);
                assert_true(r->cfg.window > 0 && (b + 1) * bs <= r->all[i]->n_computed - r->cfg.window + 1);
                continue;
            }
            assert_in_range(id, 0, n - 1);
            if (count[id]++ == 0) n_held++;
        }
    for (int b = 0; b < n; b++) assert_int_equal(bm_refcount(r->bm, b), count[b]);
    assert_int_equal(bm_n_free(r->bm), n - n_held);
    free(count);
}

// The engine's part of a step: every planned token is computed (sched_computed: with prefix
// caching, newly full blocks are registered; blocks out of the window released); a sequence with
// nothing pending samples a token (id 5000 + position).
static void postprocess(rig *r, int n_items) {
    for (int i = 0; i < n_items; i++) {
        tv_seq *q = r->items[i].seq;
        sched_computed(r->s, q, r->items[i].n_tokens);
        if (q->n_computed == q->n_tokens) {
            assert_true(q->n_tokens < TOK_CAP);
            q->tokens[q->n_tokens] = 5000 + q->n_tokens;
            q->n_tokens++;
        }
    }
}

// One planned round, checked against the scheduler's contract (pipelined: no sequence whose
// sample is in flight, no decode held by a round in flight). balance: sched_schedule's.
static int plan(rig *r, int balance, int *n_preempted) {
    int n_pre = -1;
    int n = sched_schedule(r->s, balance, r->items, &n_pre);
    assert_in_range(n, 0, r->cfg.max_num_seqs);
    assert_true(n_pre >= 0);
    int total = 0;
    for (int i = 0; i < n; i++) {
        tv_seq *q = r->items[i].seq;
        int k = r->items[i].n_tokens;
        assert_int_equal(q->status, SEQ_RUNNING);
        assert_false(q->sample_in_flight);
        assert_true(k >= 1 && q->n_computed + k <= q->n_tokens);
        assert_true(q->n_blocks * bm_block_size(r->bm) >= q->n_computed + k);   // blocks allocated
        for (int j = 0; j < i; j++) assert_ptr_not_equal(r->items[j].seq, q);
        total += k;
    }
    assert_true(total <= r->cfg.max_batched_tokens);
    assert_true(sched_n_running(r->s) <= r->cfg.max_num_seqs);
    check_blocks(r);
    if (n_preempted) *n_preempted = n_pre;
    return n;
}

static int step(rig *r, int *n_preempted) {
    const int n = plan(r, 0, n_preempted);
    postprocess(r, n);
    return n;
}

// Pipelined: a round in flight, as the engine keeps it.
typedef struct {
    tv_sched_item items[8];
    int start[8];
    int n;
} round_fl;

// Plans a round (balance: sched_schedule's) and puts it in flight the engine's way: a chunk that
// samples nothing advances n_computed now, a sequence that samples waits for the round.
static int submit(rig *r, int balance, round_fl *f, int *n_preempted) {
    f->n = plan(r, balance, n_preempted);
    assert_true(f->n <= 8);
    for (int i = 0; i < f->n; i++) {
        tv_seq *q = r->items[i].seq;
        f->items[i] = r->items[i];
        f->start[i] = q->n_computed;
        q->n_flights++;
        if (q->n_computed + r->items[i].n_tokens >= q->n_tokens) q->sample_in_flight = true;
        else sched_submitted(r->s, q, r->items[i].n_tokens);
    }
    return f->n;
}

// The round comes back: chunks are confirmed, samples computed and a token appended (id 5000 +
// position).
static void collect(rig *r, const round_fl *f) {
    for (int i = 0; i < f->n; i++) {
        tv_seq *q = f->items[i].seq;
        const int end = f->start[i] + f->items[i].n_tokens;
        q->n_flights--;
        if (q->status != SEQ_RUNNING) continue;
        if (end < q->n_tokens) {
            sched_confirmed(r->s, q, end);
            continue;
        }
        q->sample_in_flight = false;
        sched_computed(r->s, q, f->items[i].n_tokens);
        q->tokens[q->n_tokens] = 5000 + q->n_tokens;
        q->n_tokens++;
    }
    check_blocks(r);
}

static void expect_item(const rig *r, int i, const tv_seq *q, int n_tokens) {
    if (r->items[i].seq != q || r->items[i].n_tokens != n_tokens)
        fail_msg("item %d: seq %llu x %d, want seq %llu x %d", i, (unsigned long long)r->items[i].seq->id,
                 r->items[i].n_tokens, (unsigned long long)q->id, n_tokens);
}

// Finishes q the way the engine does (removed, blocks released).
static void finish(rig *r, tv_seq *q) {
    sched_remove(r->s, q);
    assert_int_equal(q->n_blocks, 0);
    assert_null(sched_find(r->s, q->id));
    check_blocks(r);
}

static void rig_free(rig *r) {
    for (tv_seq *q; (q = sched_first(r->s));) sched_remove(r->s, q);
    check_blocks(r);
    assert_int_equal(bm_n_free(r->bm), bm_n_blocks(r->bm));
    for (int i = 0; i < r->n_all; i++) {
        free(r->all[i]->tokens);
        free(r->all[i]->blocks);
        free(r->all[i]);
    }
    free(r->all);
    free(r->items);
    sched_free(r->s);
    bm_free(r->bm);
    spool_free(r->cfg.states);
}

// Budget 8: a running decode goes first, then the running prompt's next chunk takes exactly the
// rest; a new arrival is admitted only once the budget allows.
static void test_decode_first_then_chunks(void **state) {
    (void)state;
    rig r = rig_make(64, 4, 4, 8, true, false);
    tv_seq *a = add(&r, 1, 2, 10), *b = add(&r, 2, 20, 100);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 2);
    expect_item(&r, 1, b, 6);   // the first chunk: what A left of the budget
    tv_seq *c = add(&r, 3, 3, 200);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 1);   // decode first
    expect_item(&r, 1, b, 7);   // 6 + 7 of 20
    assert_int_equal(sched_n_waiting(r.s), 1);   // no budget left for C
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 7);   // B's prompt complete: it samples
    assert_int_equal(c->status, SEQ_WAITING);
    assert_int_equal(step(&r, NULL), 3);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 1);
    expect_item(&r, 2, c, 3);
    assert_true(a->arrival < b->arrival && b->arrival < c->arrival);
    rig_free(&r);
}

// Decodes count against the budget: three of them fill a budget of 3 and nobody is admitted.
static void test_decodes_use_the_budget(void **state) {
    (void)state;
    rig r = rig_make(64, 4, 4, 3, true, false);
    tv_seq *q[3];
    for (int i = 0; i < 3; i++) q[i] = add(&r, (uint64_t)i + 1, 1, 10 * i);
    assert_int_equal(step(&r, NULL), 3);   // three 1-token prompts
    add(&r, 9, 2, 90);
    assert_int_equal(step(&r, NULL), 3);   // three decodes fill the budget: no admission
    for (int i = 0; i < 3; i++) expect_item(&r, i, q[i], 1);
    assert_int_equal(sched_n_waiting(r.s), 1);
    rig_free(&r);
}

// Chunked prefill off: a prompt runs whole or not at all, and FCFS admission stops at the first
// that does not fit (a later short one does not jump the queue). On: the head is split.
static void test_chunked_prefill_off_and_on(void **state) {
    (void)state;
    for (int chunked = 0; chunked <= 1; chunked++) {
        rig r = rig_make(64, 4, 4, 8, chunked, false);
        tv_seq *a = add(&r, 1, 5, 10), *b = add(&r, 2, 5, 20), *c = add(&r, 3, 2, 30);
        if (!chunked) {
            assert_int_equal(step(&r, NULL), 1);
            expect_item(&r, 0, a, 5);
            assert_int_equal(sched_n_waiting(r.s), 2);
            assert_int_equal(b->n_blocks, 0);   // a failed admission holds nothing
            assert_int_equal(step(&r, NULL), 3);
            expect_item(&r, 0, a, 1);
            expect_item(&r, 1, b, 5);
            expect_item(&r, 2, c, 2);
        } else {
            assert_int_equal(step(&r, NULL), 2);
            expect_item(&r, 0, a, 5);
            expect_item(&r, 1, b, 3);
            assert_int_equal(c->status, SEQ_WAITING);
            assert_int_equal(step(&r, NULL), 3);
            expect_item(&r, 0, a, 1);
            expect_item(&r, 1, b, 2);
            expect_item(&r, 2, c, 2);   // 8 - 1 - 2 = 5 left: C's whole prompt
        }
        rig_free(&r);
    }
}

// Chunked prefill with too few blocks for a running prompt's chunk: it takes what the free blocks
// cover, and nothing once none are left (a prompt chunk never preempts).
static void test_chunk_shrinks_to_free_blocks(void **state) {
    (void)state;
    rig r = rig_make(4, 4, 4, 9, true, false);
    tv_seq *a = add(&r, 1, 2, 10);
    assert_int_equal(step(&r, NULL), 1);   // A holds one block
    tv_seq *b = add(&r, 2, 30, 100);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 8);              // two blocks; one left
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 4);              // the budget allows 8, the last free block 4
    assert_int_equal(bm_n_free(r.bm), 0);
    finish(&r, a);
    assert_int_equal(step(&r, NULL), 1);
    expect_item(&r, 0, b, 4);
    int n_pre;
    assert_int_equal(step(&r, &n_pre), 0);
    assert_int_equal(n_pre, 0);
    assert_int_equal(b->n_computed, 16);
    rig_free(&r);
}

static void test_max_num_seqs(void **state) {
    (void)state;
    rig r = rig_make(64, 4, 2, 100, true, false);
    tv_seq *a = add(&r, 1, 3, 10), *b = add(&r, 2, 3, 20), *c = add(&r, 3, 3, 30);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, a, 3);
    expect_item(&r, 1, b, 3);
    assert_int_equal(sched_n_running(r.s), 2);
    assert_int_equal(sched_n_waiting(r.s), 1);
    assert_int_equal(step(&r, NULL), 2);   // budget left, but no slot
    assert_int_equal(c->status, SEQ_WAITING);
    finish(&r, a);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, b, 1);
    expect_item(&r, 1, c, 3);
    rig_free(&r);
}

// Four blocks of 4. A (3), B (3), C (7) fill them; D waits. When A's next token needs a new block,
// the newest (C) is preempted: its blocks go back, it re-queues ahead of D, nobody is admitted that
// step, and later it recomputes all its tokens, generated one included.
static void test_preemption_newest_requeued_front(void **state) {
    (void)state;
    rig r = rig_make(4, 4, 4, 100, true, false);
    tv_seq *a = add(&r, 1, 3, 10), *b = add(&r, 2, 3, 20), *c = add(&r, 3, 7, 30);
    int n_pre;
    assert_int_equal(step(&r, &n_pre), 3);
    assert_int_equal(bm_n_free(r.bm), 0);
    tv_seq *d = add(&r, 4, 3, 40);
    assert_int_equal(step(&r, &n_pre), 3);   // decodes within the blocks they hold
    assert_int_equal(n_pre, 0);
    assert_int_equal(d->status, SEQ_WAITING);
    assert_int_equal(d->n_blocks, 0);
    const int32_t c_generated = c->tokens[7];
    assert_int_equal(step(&r, &n_pre), 2);
    assert_int_equal(n_pre, 1);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 1);   // B got the second block C gave back
    assert_int_equal(c->status, SEQ_WAITING);
    assert_int_equal(c->n_blocks, 0);
    assert_int_equal(c->n_computed, 0);
    assert_int_equal(c->n_tokens, 9);   // prompt + 2 generated, kept for the recompute
    assert_int_equal(sched_n_running(r.s), 2);
    assert_int_equal(sched_n_waiting(r.s), 2);
    assert_int_equal(bm_n_free(r.bm), 0);
    finish(&r, a);
    finish(&r, b);
    assert_int_equal(step(&r, &n_pre), 2);
    assert_int_equal(n_pre, 0);
    expect_item(&r, 0, c, 9);   // front of the queue, recomputed in full
    expect_item(&r, 1, d, 3);
    assert_int_equal(c->tokens[7], c_generated);
    assert_true(c->arrival + 1 == d->arrival);   // re-admitted just before D
    rig_free(&r);
}

// The only running sequence needs a block and none is free: it preempts itself and the step is
// empty; no admission happens in a step that preempted.
static void test_preemption_of_self(void **state) {
    (void)state;
    rig r = rig_make(1, 4, 2, 100, true, false);
    tv_seq *a = add(&r, 1, 3, 10);
    int n_pre;
    assert_int_equal(step(&r, &n_pre), 1);
    assert_int_equal(step(&r, &n_pre), 1);   // position 3: still the first block
    tv_seq *b = add(&r, 2, 1, 20);
    assert_int_equal(step(&r, &n_pre), 0);
    assert_int_equal(n_pre, 1);
    assert_int_equal(a->status, SEQ_WAITING);
    assert_int_equal(b->status, SEQ_WAITING);
    assert_int_equal(sched_n_running(r.s), 0);
    assert_int_equal(bm_n_free(r.bm), 1);
    rig_free(&r);
}

// Blocks of 2, a pool of 4, budget 3. When A's decode preempts B (two blocks), one block is left
// and B's first recompute chunk (2 tokens) would fit, but a step that preempted admits nobody:
// B comes back the step after, recomputing in chunks.
static void test_no_admission_after_preemption(void **state) {
    (void)state;
    rig r = rig_make(4, 2, 4, 3, true, false);
    tv_seq *a = add(&r, 1, 2, 10), *b = add(&r, 2, 1, 20);
    int n_pre;
    assert_int_equal(step(&r, &n_pre), 2);   // A 2, B 1: a block each
    assert_int_equal(step(&r, &n_pre), 2);   // A's position 2 takes a block
    assert_int_equal(step(&r, &n_pre), 2);   // B's position 2 takes the last
    assert_int_equal(bm_n_free(r.bm), 0);
    assert_int_equal(n_pre, 0);
    assert_int_equal(step(&r, &n_pre), 1);   // A's position 4: B goes
    assert_int_equal(n_pre, 1);
    expect_item(&r, 0, a, 1);
    assert_int_equal(b->status, SEQ_WAITING);
    assert_int_equal(bm_n_free(r.bm), 1);
    assert_int_equal(step(&r, &n_pre), 2);
    assert_int_equal(n_pre, 0);
    expect_item(&r, 0, a, 1);
    expect_item(&r, 1, b, 2);                // 2 of its 4 tokens
    rig_free(&r);
}

// Proposed tokens (speculative decoding) of a decode run after its pending token, from the budget
// and blocks left once decodes and running prompts are served, before admissions; they never cause
// a preemption. After verification n_computed advances over the accepted ones only and
// sched_rollback returns the blocks only rejected ones reached; no block holding a rejected token is
// registered with the prefix cache.
static void test_drafts_scheduled_and_rolled_back(void **state) {
    (void)state;
    rig r = rig_make(6, 4, 4, 10, true, true);
    tv_seq *a = add(&r, 1, 6, 10);
    int n_pre;
    assert_int_equal(step(&r, &n_pre), 1);   // A's prompt; it samples position 6
    assert_int_equal(a->n_blocks, 2);
    for (int j = 0; j < 5; j++) a->tokens[a->n_tokens + j] = 700 + j;   // five guesses: positions 7..11
    a->n_draft = 5;
    tv_seq *b = add(&r, 2, 3, 20);
    int n = sched_schedule(r.s, 0, r.items, &n_pre);
    assert_int_equal(n, 2);
    expect_item(&r, 0, a, 6);   // pending token + 5 guesses
    expect_item(&r, 1, b, 3);   // admitted with the rest of the budget (10 - 6 = 4 >= 3)
    assert_int_equal(a->n_draft, 5);
    assert_int_equal(a->n_blocks, 3);   // positions 6..11
    check_blocks(&r);
    // verification: the pending token and the first guess accepted, the second rejected; the
    // engine appends 700 and its own token (not 701)
    sched_computed(r.s, a, 1);
    a->n_draft = 0;
    a->tokens[a->n_tokens + 1] = 5000;
    a->n_tokens += 2;
    sched_computed(r.s, a, 1);
    sched_rollback(r.s, a);
    assert_int_equal(a->n_computed, 8);
    assert_int_equal(a->n_tokens, 9);
    assert_int_equal(a->n_blocks, 2);   // positions 0..7; the third block held only guesses 8..11
    assert_int_not_equal(bm_hash(r.bm, a->blocks[1]), 0);   // positions 4..7, all computed: registered
    sched_computed(r.s, b, 3);
    b->tokens[b->n_tokens++] = 5001;
    check_blocks(&r);
    assert_int_equal(bm_n_free(r.bm), 3);
    // rejected at once: the block of guesses 9.. stays unregistered and goes back
    a->tokens[a->n_tokens] = 800;
    a->n_draft = 1;
    n = sched_schedule(r.s, 0, r.items, &n_pre);
    assert_int_equal(n, 2);
    expect_item(&r, 0, a, 2);
    expect_item(&r, 1, b, 1);
    assert_int_equal(a->n_blocks, 3);
    sched_computed(r.s, a, 1);
    sched_computed(r.s, b, 1);
    a->n_draft = 0;
    a->tokens[a->n_tokens++] = 5002;   // position 9
    b->tokens[b->n_tokens++] = 5003;
    sched_rollback(r.s, a);
    assert_int_equal(a->n_blocks, 3);   // position 8 is in the third block: kept, not registered
    assert_int_equal(bm_hash(r.bm, a->blocks[2]), 0);
    check_blocks(&r);
    rig_free(&r);
    // no free block left: the guesses are cut to what A's last block holds, nobody is preempted
    r = rig_make(3, 4, 4, 10, true, true);
    a = add(&r, 1, 6, 10);
    b = add(&r, 2, 3, 20);
    assert_int_equal(step(&r, &n_pre), 2);   // prompts: A two blocks, B one
    assert_int_equal(bm_n_free(r.bm), 0);
    for (int j = 0; j < 4; j++) a->tokens[a->n_tokens + j] = 900 + j;
    a->n_draft = 4;
    n = sched_schedule(r.s, 0, r.items, &n_pre);
    assert_int_equal(n, 2);
    assert_int_equal(n_pre, 0);
    expect_item(&r, 0, a, 2);   // position 6 and the guess at 7 fill A's second block
    expect_item(&r, 1, b, 1);
    assert_int_equal(a->n_draft, 1);
    assert_int_equal(b->status, SEQ_RUNNING);
    check_blocks(&r);
    sched_computed(r.s, a, 1);
    sched_computed(r.s, b, 1);
    a->n_draft = 0;
    sched_rollback(r.s, a);   // the guess rejected: its block is A's second, still needed
    assert_int_equal(a->n_blocks, 2);
    check_blocks(&r);
    rig_free(&r);
}

// Admission order is arrival order over 110 requests, through the deque's wrap-around and its
// growth past the initial capacity while wrapped.
static void test_fifo_through_wraparound(void **state) {
    (void)state;
    rig r = rig_make(1024, 4, 2, 1000, true, false);
    uint64_t next_admitted = 0, last_arrival = 0;
    int n_added = 0;
    for (; n_added < 60; n_added++) add(&r, (uint64_t)n_added, 2, n_added);
    for (int round = 0; next_admitted < 110; round++) {
        if (round == 15)
            for (; n_added < 110; n_added++) add(&r, (uint64_t)n_added, 2, n_added);
        int n = step(&r, NULL);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            tv_seq *s = r.items[i].seq;
            if (r.items[i].n_tokens != 2) continue;   // a decode: not an admission
            assert_int_equal(s->id, next_admitted);
            if (next_admitted) assert_true(s->arrival > last_arrival);
            last_arrival = s->arrival;
            next_admitted++;
        }
        for (int i = 0; i < n; i++)
            if (r.items[i].n_tokens == 1) finish(&r, r.items[i].seq);   // one token each
    }
    assert_int_equal(n_added, 110);
    rig_free(&r);
}

static void test_remove_and_find(void **state) {
    (void)state;
    rig r = rig_make(64, 4, 2, 100, true, false);
    tv_seq *q[5];
    for (int i = 0; i < 5; i++) q[i] = add(&r, (uint64_t)i + 10, 3, 10 * i);
    assert_ptr_equal(sched_first(r.s), q[0]);
    assert_int_equal(step(&r, NULL), 2);
    assert_ptr_equal(sched_find(r.s, 11), q[1]);
    assert_ptr_equal(sched_find(r.s, 13), q[3]);
    assert_null(sched_find(r.s, 99));
    assert_ptr_equal(sched_first(r.s), q[0]);   // running first
    sched_remove(r.s, q[3]);                     // waiting, in the middle
    assert_int_equal(sched_n_waiting(r.s), 2);
    assert_null(sched_find(r.s, 13));
    int free_before = bm_n_free(r.bm);
    finish(&r, q[0]);                            // running: its block returns
    assert_int_equal(bm_n_free(r.bm), free_before + 1);
    assert_int_equal(sched_n_running(r.s), 1);
    assert_ptr_equal(sched_first(r.s), q[1]);
    assert_int_equal(step(&r, NULL), 2);
    expect_item(&r, 0, q[1], 1);
    expect_item(&r, 1, q[2], 3);                 // q[3] is gone: q[2] then q[4]
    assert_ptr_equal(sched_find(r.s, 14), q[4]);
    sched_remove(r.s, q[4]);
    sched_remove(r.s, q[4]);                     // not queued any more: no-op
    assert_int_equal(sched_n_waiting(r.s), 0);
    finish(&r, q[1]);
    finish(&r, q[2]);
    assert_null(sched_first(r.s));
    assert_int_equal(bm_n_free(r.bm), 64);
    rig_free(&r);
}

// Prefix caching: B, whose prompt starts with A's two full blocks, is admitted on them and runs only
// the rest; a prompt of exactly those 8 tokens reuses one block (its last token must run); a
// prompt that differs in its first token reuses nothing; without prefix caching nothing is reused.
static void test_prefix_cached_admission(void **state) {
    (void)state;
    rig r = rig_make(16, 4, 4, 100, true, true);
    tv_seq *a = add(&r, 1, 9, 100);
    assert_int_equal(step(&r, NULL), 1);
    const int32_t a0 = a->blocks[0], a1 = a->blocks[1];
    finish(&r, a);
    assert_int_equal(bm_n_cached(r.bm), 2);   // the partial third block is not cached

    tv_seq *b = add(&r, 2, 11, 100);
    b->tokens[8] = b->tokens[9] = b->tokens[10] = 7;
    tv_seq *c = add(&r, 3, 8, 100);
    tv_seq *d = add(&r, 4, 9, 100);
    d->tokens[0] = 1;
    assert_int_equal(step(&r, NULL), 3);
    expect_item(&r, 0, b, 3);
    assert_int_equal(b->n_cached, 8);
    assert_int_equal(b->blocks[0], a0);
    assert_int_equal(b->blocks[1], a1);
    expect_item(&r, 1, c, 4);
    assert_int_equal(c->n_cached, 4);
    assert_int_equal(c->blocks[0], a0);
    assert_int_equal(bm_refcount(r.bm, a0), 2);
    expect_item(&r, 2, d, 9);
    assert_int_equal(d->n_cached, 0);
    assert_int_equal(bm_n_cached(r.bm), 0);
    rig_free(&r);

    rig off = rig_make(16, 4, 4, 100, true, false);
    tv_seq *x = add(&off, 1, 9, 100);
    step(&off, NULL);
    for (int i = 0; i < 2; i++) {   // register as the engine would with caching on
        const uint64_t prev = i ? bm_hash(off.bm, x->blocks[i - 1]) : 0;
        bm_register_full(off.bm, x->blocks[i], bm_chain_hash(prev, x->tokens + 4 * i, 4), x->tokens + 4 * i);
    }
    finish(&off, x);
    assert_int_equal(bm_n_cached(off.bm), 2);
    tv_seq *y = add(&off, 2, 11, 100);
    assert_int_equal(step(&off, NULL), 1);
    expect_item(&off, 0, y, 11);
    assert_int_equal(y->n_cached, 0);
    rig_free(&off);
}

// An admission that does not fit gives the cached blocks it matched back to the cache.
static void test_prefix_failed_admission_returns_blocks(void **state) {
    (void)state;
    rig r = rig_make(3, 4, 4, 100, true, true);
    tv_seq *a = add(&r, 1, 9, 100);
    assert_int_equal(step(&r, NULL), 1);
    finish(&r, a);
    assert_int_equal(bm_n_cached(r.bm), 2);
    tv_seq *e = add(&r, 2, 16, 100);   // A's 8 tokens + 8 more: needs 2 new blocks, 1 is free
    assert_int_equal(step(&r, NULL), 0);
    assert_int_equal(e->n_blocks, 0);
    assert_int_equal(e->status, SEQ_WAITING);
    assert_int_equal(bm_n_cached(r.bm), 2);
    assert_int_equal(bm_n_free(r.bm), 3);
    rig_free(&r);
}

// Blocks held by q (not released).
static int n_held(const tv_seq *q) { return q->n_blocks - q->n_released; }

// Every layer sliding (window 6, blocks of 4): each round releases the blocks that fell wholly before
// n_computed - 5, so a 200-token generation runs in a 4-block pool (16 tokens) alongside a second
// sequence; without a window the same pool runs out and preempts.
static void test_window_releases_blocks(void **state) {
    (void)state;
    enum { W = 6, BS = 4 };
    rig r = rig_make_w(6, BS, 4, 8, true, false, W);
    tv_seq *a = add(&r, 1, 10, 100);
    assert_int_equal(step(&r, NULL), 1);   // 8 of 10 prompt tokens
    expect_item(&r, 0, a, 8);
    assert_int_equal(a->n_released, 0);    // keys 3.. still seen by the query at 8: block 0 holds 3
    assert_int_equal(step(&r, NULL), 1);   // the last 2 prompt tokens, then sampling
    assert_int_equal(a->n_computed, 10);
    assert_int_equal(a->n_released, 1);    // keys >= 5 from now on: block 0 (0..3) is out
    assert_int_equal(bm_refcount(r.bm, 0), 0);
    tv_seq *b = add(&r, 2, 3, 200);
    int n_pre_total = 0;
    while (a->n_tokens < 200) {
        int n_pre;
        step(&r, &n_pre);
        n_pre_total += n_pre;
        assert_true(n_held(a) <= (W - 1 + BS - 1) / BS + 1);   // the window's keys plus the new token's block
        if (b->status == SEQ_RUNNING) assert_true(n_held(b) <= (W - 1 + BS - 1) / BS + 1);
    }
    assert_int_equal(n_pre_total, 0);
    assert_int_equal(a->n_released, (a->n_computed - W + 1) / BS);
    rig_free(&r);

    rig g = rig_make(6, BS, 4, 8, true, false);   // the same without a window
    tv_seq *c = add(&g, 1, 10, 100);
    add(&g, 2, 3, 200);
    n_pre_total = 0;
    for (int i = 0; i < 40; i++) {
        int n_pre;
        step(&g, &n_pre);
        n_pre_total += n_pre;
    }
    assert_int_equal(c->n_released, 0);
    assert_true(n_pre_total > 0);
    rig_free(&g);
}

// Windows with the prefix cache and preemption: blocks a sequence released while running stay in
// the cache under their chained hashes (the chain continues past them), so a later request with the
// same prompt takes them and at once releases those outside its own window; preempting a sequence
// releases only what it still holds.
static void test_window_prefix_cache_and_preemption(void **state) {
    (void)state;
    enum { W = 5, BS = 4 };
    rig r = rig_make_w(8, BS, 4, 64, true, true, W);
    tv_seq *a = add(&r, 1, 21, 100);
    assert_int_equal(step(&r, NULL), 1);   // the whole prompt: blocks 0..5, 0..3 out of the window
    assert_int_equal(a->n_computed, 21);
    assert_int_equal(a->n_released, (21 - W + 1) / BS);
    assert_int_equal(bm_n_cached(r.bm), 4);   // released but registered: still findable
    tv_seq *b = add(&r, 2, 22, 100);          // the same 20-token prefix, then its own tokens
    b->tokens[20] = b->tokens[21] = 9;
    assert_int_equal(step(&r, NULL), 2);
    assert_int_equal(b->n_cached, 20);        // blocks 0..4: four from the cache, one shared with A
    assert_int_equal(b->n_released, (22 - W + 1) / BS);
    check_blocks(&r);
    rig_free(&r);

    // preemption: two decoding sequences each hold up to 2 blocks (the window's 5 keys and the new
    // token's) in a 3-block pool; the newest is preempted, gives back only what it holds (step()
    // checks every refcount), and runs again once the other finishes
    rig p = rig_make_w(3, BS, 4, 64, true, true, W);
    tv_seq *x = add(&p, 1, 4, 100), *y = add(&p, 2, 4, 300);
    int n_pre_total = 0;
    for (tv_seq *q = x; q; q = q == x ? y : NULL) {   // x to 120 tokens and finished, then y
        while (q->n_tokens < 120) {
            int n_pre;
            step(&p, &n_pre);
            n_pre_total += n_pre;
        }
        finish(&p, q);
    }
    assert_true(n_pre_total > 0);
    rig_free(&p);
}

// Pipelined rounds: the first two rounds admit two sequences each (an even share of the prompt
// tokens); with both in flight nothing is left to plan; each round takes half the decoding
// sequences; a preemption passes over sequences held by a round in flight and takes the newest
// that is not.
static void test_rounds_in_flight(void **state) {
    (void)state;
    rig r = {0};
    r.cfg = (tv_sched_config){.max_num_seqs = 8, .max_batched_tokens = 64, .chunked_prefill = true, .n_lanes = 2};
    assert_non_null(r.bm = bm_create(8, 2));
    assert_non_null(r.s = sched_create(&r.cfg, r.bm));
    r.items = malloc(8 * sizeof *r.items);
    r.all = calloc(256, sizeof *r.all);
    tv_seq *a = add(&r, 1, 2, 10), *b = add(&r, 2, 2, 20), *c = add(&r, 3, 2, 30), *d = add(&r, 4, 2, 40);
    round_fl f1, f2, f3;
    assert_int_equal(submit(&r, 0, &f1, NULL), 2);   // 8 prompt tokens over 2 rounds
    assert_ptr_equal(f1.items[0].seq, a);
    assert_ptr_equal(f1.items[1].seq, b);
    assert_true(a->sample_in_flight && b->sample_in_flight);
    assert_int_equal(submit(&r, 4, &f2, NULL), 2);
    assert_ptr_equal(f2.items[0].seq, c);
    assert_ptr_equal(f2.items[1].seq, d);
    assert_int_equal(plan(&r, 4, NULL), 0);   // every sequence waits for its sample
    collect(&r, &f1);
    for (int i = 0; i < 3; i++) {   // a, b decode (positions 2, 3, 4) while c, d are in flight
        assert_int_equal(submit(&r, 4, &f3, NULL), 2);
        assert_ptr_equal(f3.items[0].seq, a);
        collect(&r, &f3);
    }
    assert_int_equal(bm_n_free(r.bm), 0);
    assert_int_equal(submit(&r, 4, &f3, NULL), 2);   // position 5: still in their third blocks
    collect(&r, &f3);
    int n_pre = 0;
    assert_int_equal(submit(&r, 4, &f3, &n_pre), 1);   // a needs a block: b goes (c and d are in flight)
    assert_int_equal(n_pre, 1);
    assert_ptr_equal(f3.items[0].seq, a);
    assert_int_equal(b->status, SEQ_WAITING);
    assert_int_equal(b->n_blocks, 0);
    assert_int_equal(c->status, SEQ_RUNNING);
    assert_int_equal(d->status, SEQ_RUNNING);
    collect(&r, &f2);
    collect(&r, &f3);
    // a, c, d decode: rounds of ceil(3 / 2), the oldest first; b comes back with a share of its
    // recompute (a quarter: sequences decode)
    assert_int_equal(submit(&r, 0, &f1, NULL), 3);
    assert_ptr_equal(f1.items[0].seq, a);
    assert_ptr_equal(f1.items[1].seq, c);
    assert_ptr_equal(f1.items[2].seq, b);
    assert_int_equal(f1.items[2].n_tokens, 2);   // of its 8
    assert_int_equal(b->n_flights, 1);
    assert_false(b->sample_in_flight);
    // d needs a block and none is free: b is newer but held by a round in flight, so d goes; b's
    // next chunk runs while its first is in flight
    n_pre = 0;
    assert_int_equal(plan(&r, 4, &n_pre), 1);
    assert_int_equal(n_pre, 1);
    assert_int_equal(d->status, SEQ_WAITING);
    expect_item(&r, 0, b, 2);
    rig_free(&r);
}

// Pipelined prefill: a prompt spreads over consecutive rounds (each about as long as the newest in
// flight); its next chunk runs while the previous one is in flight, and its blocks go to the
// prefix cache only when the round that filled them is back.
static void test_prompt_spreads_over_rounds(void **state) {
    (void)state;
    rig r = {0};
    r.cfg = (tv_sched_config){.max_num_seqs = 4, .max_batched_tokens = 64, .chunked_prefill = true,
                              .prefix_caching = true, .n_lanes = 2};
    assert_non_null(r.bm = bm_create(32, 2));
    assert_non_null(r.s = sched_create(&r.cfg, r.bm));
    r.items = malloc(4 * sizeof *r.items);
    r.all = calloc(256, sizeof *r.all);
    tv_seq *a = add(&r, 1, 2, 10);
    round_fl f1, f2;
    assert_int_equal(submit(&r, 0, &f1, NULL), 1);   // half of a's prompt (nothing decodes): no sample
    assert_int_equal(f1.items[0].n_tokens, 1);
    assert_false(a->sample_in_flight);
    assert_int_equal(submit(&r, 1, &f2, NULL), 1);   // its last token while the first is in flight
    assert_int_equal(f2.items[0].n_tokens, 1);
    assert_int_equal(a->n_flights, 2);
    assert_true(a->sample_in_flight);
    collect(&r, &f1);
    collect(&r, &f2);
    assert_int_equal(a->n_hashed, 1);
    tv_seq *e = add(&r, 2, 12, 100);
    round_fl f3, f4;
    assert_int_equal(submit(&r, 0, &f1, NULL), 2);   // a decodes: a quarter of e's prompt rides along
    assert_ptr_equal(f1.items[0].seq, a);
    assert_ptr_equal(f1.items[1].seq, e);
    assert_int_equal(f1.items[1].n_tokens, 3);
    assert_int_equal(e->n_computed, 3);
    assert_int_equal(e->n_hashed, 0);   // not back yet
    assert_int_equal(submit(&r, 4, &f2, NULL), 1);   // e again, as long as the round before
    assert_ptr_equal(f2.items[0].seq, e);
    assert_int_equal(f2.items[0].n_tokens, 4);
    assert_int_equal(e->n_flights, 2);
    collect(&r, &f1);
    assert_int_equal(e->n_hashed, 1);   // tokens 0-2 back: one full block
    assert_int_equal(submit(&r, 4, &f3, NULL), 2);
    assert_ptr_equal(f3.items[0].seq, a);
    assert_int_equal(f3.items[1].n_tokens, 3);
    collect(&r, &f2);
    assert_int_equal(e->n_hashed, 3);
    assert_int_equal(submit(&r, 4, &f4, NULL), 1);   // e's last 2: it samples
    assert_int_equal(f4.items[0].n_tokens, 2);
    assert_true(e->sample_in_flight);
    collect(&r, &f3);
    collect(&r, &f4);
    assert_int_equal(e->n_hashed, 6);
    assert_int_equal(e->n_tokens, 13);
    assert_int_equal(plan(&r, 0, NULL), 1);   // two decoding: one per round, the oldest first
    expect_item(&r, 0, a, 1);
    rig_free(&r);
}

// Pipelined burst: eight 16-token prompts arriving at once go through in rounds of at most
// max_batched_tokens / (2 n_lanes) prompt tokens (16, not the budget of 64): the later stage waits
// for the first round whole, and the last stage idles wherever a round is longer than the one before.
static void test_burst_rounds_capped(void **state) {
    (void)state;
    rig r = {0};
    r.cfg = (tv_sched_config){.max_num_seqs = 8, .max_batched_tokens = 64, .chunked_prefill = true, .n_lanes = 2};
    assert_non_null(r.bm = bm_create(64, 4));
    assert_non_null(r.s = sched_create(&r.cfg, r.bm));
    r.items = malloc(8 * sizeof *r.items);
    r.all = calloc(256, sizeof *r.all);
    for (int i = 0; i < 8; i++) add(&r, (uint64_t)i + 1, 16, 10 * (i + 1));
    round_fl f1, f2;
    int n_rounds = 0, n_max = 0;
    for (;;) {   // two rounds in flight until every prompt has sampled
        int tok1 = 0, tok2 = 0;
        if (!submit(&r, 0, &f1, NULL)) break;
        for (int i = 0; i < f1.n; i++) tok1 += f1.items[i].n_tokens;
        const bool two = submit(&r, tok1, &f2, NULL) > 0;
        for (int i = 0; two && i < f2.n; i++) tok2 += f2.items[i].n_tokens;
        if (n_rounds == 0) {
            assert_int_equal(tok1, 16);   // half the 128 waiting, capped at 64 / 4
            assert_int_equal(tok2, 16);   // as long as the round in flight
        }
        assert_true(tok1 <= 16 + 4 && tok2 <= 16 + 4);   // a share and ceil(8 / 2) decodes at most
        n_max = tok1 > n_max ? tok1 : n_max;
        n_rounds += 1 + two;
        collect(&r, &f1);
        if (two) collect(&r, &f2);
        bool prompts = false;
        for (int i = 0; i < 8; i++) prompts |= r.all[i] && seq_n_pending(r.all[i]) > 1;
        if (!prompts) break;
    }
    assert_int_equal(n_max, 18);   // 16 16 17 17 18 18 11 11 8 8 6 6 5 4: a share and the decodes
    assert_int_equal(n_rounds, 14);
    rig_free(&r);
}

// A hybrid model's prefix: reused only up to the last block with a state checkpoint. A's 3 full
// blocks are cached but only the state after 8 tokens (block 1) is kept: B, the same prompt, takes 2
// blocks, resumes from that checkpoint and gives block 2 back to the cache. Filling the pool with
// other tokens evicts the cached blocks, and the checkpoint leaves with its block.
static void test_prefix_stops_at_checkpoint(void **state) {
    (void)state;
    rig r = rig_make(8, 4, 4, 100, true, true);
    sched_free(r.s);
    r.cfg.states = spool_create(4, 2);
    assert_non_null(r.cfg.states);
    r.s = sched_create(&r.cfg, r.bm);
    tv_seq *a = add(&r, 1, 13, 100);
    assert_int_equal(step(&r, NULL), 1);
    assert_true(a->state_slot >= 0);
    const uint64_t key = bm_hash(r.bm, a->blocks[1]);
    const int32_t ck = spool_ckpt_reserve(r.cfg.states, true);
    assert_int_equal(ck, 4);   // after the 4 running slots
    assert_true(spool_ckpt_publish(r.cfg.states, ck, key));
    const int32_t a0 = a->blocks[0], a1 = a->blocks[1];
    finish(&r, a);
    assert_int_equal(bm_n_cached(r.bm), 3);
    assert_int_equal(spool_n_free(r.cfg.states), 4);

    tv_seq *b = add(&r, 2, 13, 100);
    assert_int_equal(step(&r, NULL), 1);
    expect_item(&r, 0, b, 5);
    assert_int_equal(b->n_cached, 8);
    assert_int_equal(b->state_restore, ck);
    assert_int_equal(b->blocks[0], a0);
    assert_int_equal(b->blocks[1], a1);
    assert_int_equal(bm_n_cached(r.bm), 1);   // block 2 of A went back to the cache
    finish(&r, b);
    assert_int_equal(b->state_restore, -1);

    tv_seq *c = add(&r, 3, 31, 1000);   // 8 blocks of other tokens: every cached block is evicted
    assert_int_equal(step(&r, NULL), 1);
    assert_int_equal(spool_ckpt_find(r.cfg.states, key), -1);
    assert_int_equal(spool_n_ckpt_held(r.cfg.states), 0);
    finish(&r, c);
    tv_seq *d = add(&r, 4, 13, 100);   // A's prompt again: nothing cached, no checkpoint
    assert_int_equal(step(&r, NULL), 1);
    expect_item(&r, 0, d, 13);
    assert_int_equal(d->state_restore, -1);
    rig_free(&r);
}

// The checkpoint slots: reservations take free slots, then (when allowed) the least recently used
// published one (never a pending one); a key is published once.
static void test_state_checkpoint_slots(void **state) {
    (void)state;
    state_pool *sp = spool_create(2, 3);
    assert_non_null(sp);
    const int32_t x = spool_ckpt_reserve(sp, false), y = spool_ckpt_reserve(sp, false), z = spool_ckpt_reserve(sp, true);
    assert_true(x == 2 && y == 3 && z == 4);
    assert_int_equal(spool_ckpt_reserve(sp, true), -1);   // all pending
    assert_true(spool_ckpt_publish(sp, x, 11));
    assert_true(spool_ckpt_publish(sp, y, 12));
    assert_false(spool_ckpt_publish(sp, z, 11));   // 11 is kept already: z is freed
    assert_int_equal(spool_n_ckpt_held(sp), 2);
    spool_ckpt_touch(sp, x);                              // y is now the least recently used
    assert_int_equal(spool_ckpt_reserve(sp, true), z);    // a free one first
    assert_int_equal(spool_ckpt_reserve(sp, false), -1);  // none free, none to be taken
    assert_int_equal(spool_ckpt_reserve(sp, true), y);    // then y, whose key goes
    assert_int_equal(spool_ckpt_find(sp, 12), -1);
    assert_int_equal(spool_ckpt_find(sp, 11), x);
    spool_ckpt_drop_key(sp, 11);
    assert_int_equal(spool_ckpt_find(sp, 11), -1);
    spool_ckpt_drop(sp, y);
    spool_ckpt_drop(sp, z);
    assert_int_equal(spool_n_ckpt_held(sp), 0);
    spool_free(sp);
    assert_null(spool_create(0, 1));
    assert_null(spool_create(1, -1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_stops_at_checkpoint),
        cmocka_unit_test(test_state_checkpoint_slots),
        cmocka_unit_test(test_decode_first_then_chunks),
        cmocka_unit_test(test_decodes_use_the_budget),
        cmocka_unit_test(test_chunked_prefill_off_and_on),
        cmocka_unit_test(test_chunk_shrinks_to_free_blocks),
        cmocka_unit_test(test_max_num_seqs),
        cmocka_unit_test(test_preemption_newest_requeued_front),
        cmocka_unit_test(test_preemption_of_self),
        cmocka_unit_test(test_no_admission_after_preemption),
        cmocka_unit_test(test_fifo_through_wraparound),
        cmocka_unit_test(test_drafts_scheduled_and_rolled_back),
        cmocka_unit_test(test_remove_and_find),
        cmocka_unit_test(test_prefix_cached_admission),
        cmocka_unit_test(test_prefix_failed_admission_returns_blocks),
        cmocka_unit_test(test_window_releases_blocks),
        cmocka_unit_test(test_window_prefix_cache_and_preemption),
        cmocka_unit_test(test_rounds_in_flight),
        cmocka_unit_test(test_prompt_spreads_over_rounds),
        cmocka_unit_test(test_burst_rounds_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
