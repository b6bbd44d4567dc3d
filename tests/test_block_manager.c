// test_block_manager.c — the KV block manager (src/engine/block_manager.c) through its header:
// free/allocate accounting, reference counts and the copy-on-write question, the chained prefix
// hash, reuse of registered blocks by a second sequence, the LRU eviction of cached blocks when the
// free list is empty, the always-on invariants, and a property test that drives random operations
// against an exact model of the pool (who holds what, what is findable, in which LRU order).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "engine/block_manager.h"
#include "test_util.h"
#include "util/status.h"

// ---- invariant hook: a failed TV_CHECK jumps back into the test instead of aborting ----
static jmp_buf g_jump;
static int g_n_invariants;

static void jump_hook(const char *file, int line, const char *expr) {
    (void)file; (void)line; (void)expr;
    g_n_invariants++;
    longjmp(g_jump, 1);
}

// Fills toks with block_size ids starting at first.
static void fill(int32_t *toks, int n, int32_t first) {
    for (int i = 0; i < n; i++) toks[i] = first + i;
}

static void test_create_rejects_bad_sizes(void **state) {
    (void)state;
    assert_null(bm_create(0, 16));
    assert_null(bm_create(4, 0));
    assert_null(bm_create(-1, 16));
    bm_free(NULL);
    kv_block_manager *bm = bm_create(3, 16);
    assert_non_null(bm);
    assert_int_equal(bm_n_blocks(bm), 3);
    assert_int_equal(bm_block_size(bm), 16);
    assert_int_equal(bm_n_free(bm), 3);
    assert_int_equal(bm_n_cached(bm), 0);
    bm_free(bm);
}

static void test_allocate_release_accounting(void **state) {
    (void)state;
    enum { N = 8 };
    kv_block_manager *bm = bm_create(N, 4);
    assert_true(bm_can_allocate(bm, 0));
    assert_true(bm_can_allocate(bm, N));
    assert_false(bm_can_allocate(bm, N + 1));
    int32_t got[N];
    bool seen[N] = {0};
    for (int i = 0; i < N; i++) {
        got[i] = bm_allocate(bm);
        assert_in_range(got[i], 0, N - 1);
        assert_false(seen[got[i]]);   // never handed out twice
        seen[got[i]] = true;
        assert_int_equal(bm_refcount(bm, got[i]), 1);
        assert_int_equal(bm_hash(bm, got[i]), 0);
        assert_int_equal(bm_n_free(bm), N - 1 - i);
        assert_true(bm_can_allocate(bm, N - 1 - i));
        assert_false(bm_can_allocate(bm, N - i));
    }
    assert_int_equal(bm_allocate(bm), -1);   // exhausted
    assert_int_equal(bm_n_free(bm), 0);
    for (int i = 0; i < N; i++) {
        bm_release(bm, got[i]);
        assert_int_equal(bm_refcount(bm, got[i]), 0);
        assert_int_equal(bm_n_free(bm), i + 1);
    }
    assert_int_equal(bm_n_cached(bm), 0);   // nothing was registered: all truly free
    // a released block comes back
    int32_t b = bm_allocate(bm);
    assert_in_range(b, 0, N - 1);
    bm_release(bm, b);
    assert_int_equal(bm_n_free(bm), N);
    bm_free(bm);
}

static void test_refcount_and_copy_on_write(void **state) {
    (void)state;
    kv_block_manager *bm = bm_create(4, 4);
    int32_t b = bm_allocate(bm);
    assert_false(bm_needs_copy_on_write(bm, b));   // sole owner writes in place
    bm_incref(bm, b);                              // a fork shares it
    assert_int_equal(bm_refcount(bm, b), 2);
    assert_true(bm_needs_copy_on_write(bm, b));
    bm_incref(bm, b);
    assert_int_equal(bm_refcount(bm, b), 3);
    bm_release(bm, b);
    assert_int_equal(bm_refcount(bm, b), 2);
    assert_true(bm_needs_copy_on_write(bm, b));
    assert_int_equal(bm_n_free(bm), 3);   // still referenced: not free
    bm_release(bm, b);
    assert_false(bm_needs_copy_on_write(bm, b));
    assert_int_equal(bm_n_free(bm), 3);
    bm_release(bm, b);                    // the last reference frees it
    assert_int_equal(bm_refcount(bm, b), 0);
    assert_int_equal(bm_n_free(bm), 4);
    bm_free(bm);
}

// Releasing a free block, or taking a reference on one, breaks the accounting: the always-on
// check must fire.
static void test_invariants_fire(void **state) {
    (void)state;
    kv_block_manager *bm = bm_create(2, 4);
    int32_t b = bm_allocate(bm);
    bm_release(bm, b);
    invariant_set_abort_hook(jump_hook);
    g_n_invariants = 0;
    if (!setjmp(g_jump)) bm_release(bm, b);   // double release
    assert_int_equal(g_n_invariants, 1);
    if (!setjmp(g_jump)) bm_incref(bm, b);    // reference to a free block
    assert_int_equal(g_n_invariants, 2);
    if (!setjmp(g_jump)) bm_release(bm, 2);   // out of range
    assert_int_equal(g_n_invariants, 3);
    invariant_set_abort_hook(NULL);
    assert_int_equal(bm_n_free(bm), 2);   // nothing moved
    assert_int_equal(bm_refcount(bm, b), 0);
    bm_free(bm);
}

static void test_chain_hash(void **state) {
    (void)state;
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5}, c[4] = {2, 1, 3, 4};
    uint64_t ha = bm_chain_hash(0, a, 4);
    assert_true(ha != 0);
    assert_true(ha == bm_chain_hash(0, a, 4));            // deterministic
    assert_true(ha != bm_chain_hash(0, b, 4));            // every token counts ...
    assert_true(ha != bm_chain_hash(0, c, 4));            // ... in order
    assert_true(ha != bm_chain_hash(ha, a, 4));           // the previous block counts
    assert_true(bm_chain_hash(1, a, 4) != bm_chain_hash(2, a, 4));
    for (int byte = 1; byte < 8; byte++)                  // every byte of the previous hash
        assert_true(bm_chain_hash(1ull << (8 * byte), a, 4) != bm_chain_hash(0, a, 4));
    assert_true(bm_chain_hash(0, a, 3) != ha);            // and the length
    int32_t big[2] = {0x01000000, 0};
    int32_t big2[2] = {0, 0};
    assert_true(bm_chain_hash(0, big, 2) != bm_chain_hash(0, big2, 2));   // all four bytes of a token
    for (uint64_t p = 0; p < 1000; p++) assert_true(bm_chain_hash(p, a, (int)(p % 5)) != 0);
}

// Sequence A fills three blocks and registers them under chained hashes; B shares A's first two
// blocks and differs in the third; C's first block differs, so even a second block whose tokens
// equal A's must not match (the hash is chained).
static void test_prefix_reuse(void **state) {
    (void)state;
    enum { BS = 4 };
    kv_block_manager *bm = bm_create(16, BS);
    int32_t ta[3][BS], tb2[BS], tc0[BS];
    fill(ta[0], BS, 100);
    fill(ta[1], BS, 200);
    fill(ta[2], BS, 300);
    fill(tb2, BS, 999);
    fill(tc0, BS, 101);
    int32_t a[3];
    uint64_t h[3], prev = 0;
    for (int i = 0; i < 3; i++) {
        a[i] = bm_allocate(bm);
        h[i] = prev = bm_chain_hash(prev, ta[i], BS);
        bm_register_full(bm, a[i], h[i], ta[i]);
        assert_true(bm_hash(bm, a[i]) == h[i]);
    }
    // B: same first two blocks
    assert_int_equal(bm_acquire_cached(bm, h[0], ta[0]), a[0]);
    assert_int_equal(bm_acquire_cached(bm, h[1], ta[1]), a[1]);
    assert_int_equal(bm_refcount(bm, a[0]), 2);
    assert_int_equal(bm_refcount(bm, a[1]), 2);
    assert_true(bm_needs_copy_on_write(bm, a[1]));
    assert_int_equal(bm_acquire_cached(bm, bm_chain_hash(h[1], tb2, BS), tb2), -1);
    assert_int_equal(bm_refcount(bm, a[2]), 1);
    // C: a different first block; its second block has A's tokens but not A's chain
    uint64_t hc0 = bm_chain_hash(0, tc0, BS);
    assert_int_equal(bm_acquire_cached(bm, hc0, tc0), -1);
    assert_int_equal(bm_acquire_cached(bm, bm_chain_hash(hc0, ta[1], BS), ta[1]), -1);
    // the right hash with other tokens is a collision, not a hit
    assert_int_equal(bm_acquire_cached(bm, h[0], tc0), -1);
    assert_int_equal(bm_n_free(bm), 13);   // B took no new blocks
    // registering a reused block again changes nothing
    bm_register_full(bm, a[0], h[0], ta[0]);
    assert_int_equal(bm_refcount(bm, a[0]), 2);
    // A finishes (tail first, as the scheduler does): its blocks stay findable, B still holds two
    for (int i = 2; i >= 0; i--) bm_release(bm, a[i]);
    assert_int_equal(bm_n_cached(bm), 1);   // only a[2] dropped to 0
    assert_int_equal(bm_n_free(bm), 14);
    bm_release(bm, a[1]);
    bm_release(bm, a[0]);
    assert_int_equal(bm_n_cached(bm), 3);
    assert_int_equal(bm_n_free(bm), 16);   // cached blocks count as allocatable
    // a later sequence with A's prompt gets the same blocks back out of the cache
    assert_int_equal(bm_acquire_cached(bm, h[0], ta[0]), a[0]);
    assert_int_equal(bm_refcount(bm, a[0]), 1);
    assert_int_equal(bm_n_cached(bm), 2);
    assert_int_equal(bm_n_free(bm), 15);
    bm_release(bm, a[0]);
    assert_int_equal(bm_n_cached(bm), 3);
    bm_free(bm);
}

// A second block with the same content and hash (computed twice) keeps its hash for chaining but
// is not made findable; released, it goes to the free list, not the cache.
static void test_duplicate_registration(void **state) {
    (void)state;
    enum { BS = 2 };
    kv_block_manager *bm = bm_create(4, BS);
    int32_t t[BS] = {7, 8};
    uint64_t h = bm_chain_hash(0, t, BS);
    int32_t x = bm_allocate(bm), y = bm_allocate(bm);
    bm_register_full(bm, x, h, t);
    bm_register_full(bm, y, h, t);
    assert_true(bm_hash(bm, y) == h);
    assert_int_equal(bm_acquire_cached(bm, h, t), x);
    bm_release(bm, x);
    bm_release(bm, y);
    assert_int_equal(bm_hash(bm, y), 0);
    assert_int_equal(bm_n_cached(bm), 0);   // x still referenced once
    bm_release(bm, x);
    assert_int_equal(bm_n_cached(bm), 1);   // only x holds the prefix
    assert_int_equal(bm_n_free(bm), 4);
    bm_free(bm);
}

// Cached blocks are reclaimed only when the free list is empty, least recently released first,
// and an evicted block is no longer findable.
static void test_eviction_lru(void **state) {
    (void)state;
    enum { BS = 2, N = 4 };
    kv_block_manager *bm = bm_create(N, BS);
    int32_t t[3][BS] = {{1, 2}, {3, 4}, {5, 6}};
    int32_t b[3];
    uint64_t h[3], prev = 0;
    for (int i = 0; i < 3; i++) {
        b[i] = bm_allocate(bm);
        h[i] = prev = bm_chain_hash(prev, t[i], BS);
        bm_register_full(bm, b[i], h[i], t[i]);
    }
    bm_release(bm, b[2]);   // LRU order: b2, b0, b1
    bm_release(bm, b[0]);
    bm_release(bm, b[1]);
    assert_int_equal(bm_n_cached(bm), 3);
    assert_int_equal(bm_n_free(bm), N);
    assert_true(bm_can_allocate(bm, N));
    // the one truly free block goes first; the cache is untouched
    int32_t f = bm_allocate(bm);
    assert_true(f != b[0] && f != b[1] && f != b[2]);
    assert_int_equal(bm_n_cached(bm), 3);
    // then the least recently released cached block, unregistered
    int32_t e1 = bm_allocate(bm);
    assert_int_equal(e1, b[2]);
    assert_int_equal(bm_hash(bm, e1), 0);
    assert_int_equal(bm_refcount(bm, e1), 1);
    assert_int_equal(bm_n_cached(bm), 2);
    assert_int_equal(bm_acquire_cached(bm, h[2], t[2]), -1);
    // a cache hit moves a block out of the LRU: b0 is taken, so b1 is the next victim
    assert_int_equal(bm_acquire_cached(bm, h[0], t[0]), b[0]);
    assert_int_equal(bm_n_cached(bm), 1);
    int32_t e2 = bm_allocate(bm);
    assert_int_equal(e2, b[1]);
    assert_int_equal(bm_n_cached(bm), 0);
    assert_int_equal(bm_allocate(bm), -1);
    assert_int_equal(bm_n_free(bm), 0);
    // the evicted block, released unregistered, is truly free
    bm_release(bm, e2);
    assert_int_equal(bm_n_cached(bm), 0);
    assert_int_equal(bm_n_free(bm), 1);
    // a released registered block becomes the most recent: released after e2's reuse
    bm_release(bm, b[0]);
    assert_int_equal(bm_n_cached(bm), 1);
    assert_int_equal(bm_allocate(bm), e2);   // free list before cache
    assert_int_equal(bm_allocate(bm), b[0]);
    bm_free(bm);
}

// ---- property test: random operations against an exact model ----
enum { P_N = 12, P_BS = 2, P_HELD = 64 };

typedef struct {
    int refs[P_N];          // references the test holds (sum over holders)
    bool reg[P_N];          // findable
    uint64_t key_h[P_N];    // registered or twin hash (0 = none)
    int32_t key_t[P_N][P_BS];
    uint64_t released_at[P_N];   // when it last dropped to 0 (LRU order of cached blocks)
    uint64_t clock;
    int32_t held[P_HELD];   // one entry per reference held
    int n_held;
} model;

static int model_find(const model *m, uint64_t h, const int32_t *t) {
    for (int b = 0; b < P_N; b++)
        if (m->reg[b] && m->key_h[b] == h && !memcmp(m->key_t[b], t, sizeof m->key_t[b])) return b;
    return -1;
}

static void check_model(const kv_block_manager *bm, const model *m) {
    int n_free = 0, n_cached = 0;
    for (int b = 0; b < P_N; b++) {
        assert_int_equal(bm_refcount(bm, b), m->refs[b]);
        if (m->refs[b] == 0) n_free++;
        if (m->refs[b] == 0 && m->reg[b]) n_cached++;
        if (m->refs[b] > 0 || m->reg[b]) assert_true(bm_hash(bm, b) == m->key_h[b]);
    }
    assert_int_equal(bm_n_free(bm), n_free);
    assert_int_equal(bm_n_cached(bm), n_cached);
    assert_true(bm_can_allocate(bm, n_free));
    assert_false(bm_can_allocate(bm, n_free + 1));
}

static void random_tokens(int32_t *t) {
    for (int i = 0; i < P_BS; i++) t[i] = (int32_t)(rnd_u32() % 2);   // 4 contents: twins are common
}

static void property_run(uint64_t seed, int n_ops) {
    test_rng_seed(seed);
    kv_block_manager *bm = bm_create(P_N, P_BS);
    model m;
    memset(&m, 0, sizeof m);
    for (int op = 0; op < n_ops; op++) {
        int kind = (int)(rnd_u32() % 6);
        if (kind == 0 || kind == 1) {   // allocate
            if (m.n_held == P_HELD) continue;
            int n_free = 0, oldest = -1;
            bool any_truly_free = false;
            for (int b = 0; b < P_N; b++) {
                if (m.refs[b]) continue;
                n_free++;
                if (!m.reg[b]) any_truly_free = true;
                else if (oldest < 0 || m.released_at[b] < m.released_at[oldest]) oldest = b;
            }
            int32_t b = bm_allocate(bm);
            if (n_free == 0) { assert_int_equal(b, -1); continue; }
            assert_in_range(b, 0, P_N - 1);
            assert_int_equal(m.refs[b], 0);   // nobody else holds it
            if (any_truly_free) assert_false(m.reg[b]);   // cache only when the free list is empty
            else assert_int_equal(b, oldest);
            m.reg[b] = false;
            m.key_h[b] = 0;
            m.refs[b] = 1;
            m.held[m.n_held++] = b;
        } else if (kind == 2) {   // release one held reference
            if (!m.n_held) continue;
            int k = (int)(rnd_u32() % (uint32_t)m.n_held);
            int32_t b = m.held[k];
            m.held[k] = m.held[--m.n_held];
            bm_release(bm, b);
            if (--m.refs[b] == 0) {
                m.released_at[b] = ++m.clock;
                if (!m.reg[b]) m.key_h[b] = 0;
            }
        } else if (kind == 3) {   // fork: another reference
            if (!m.n_held || m.n_held == P_HELD) continue;
            int32_t b = m.held[rnd_u32() % (uint32_t)m.n_held];
            bm_incref(bm, b);
            m.refs[b]++;
            m.held[m.n_held++] = b;
        } else if (kind == 4) {   // register a held block as full
            if (!m.n_held) continue;
            int32_t b = m.held[rnd_u32() % (uint32_t)m.n_held];
            int32_t t[P_BS];
            random_tokens(t);
            // some under a shared fake hash: equal hashes with different tokens must stay apart
            uint64_t h = rnd_u32() % 4 == 0 ? 42 : bm_chain_hash(0, t, P_BS);
            bm_register_full(bm, b, h, t);
            if (!m.reg[b]) {
                m.key_h[b] = h;
                if (model_find(&m, h, t) < 0) {
                    m.reg[b] = true;
                    memcpy(m.key_t[b], t, sizeof t);
                }
            }
        } else {   // look a prefix up
            if (m.n_held == P_HELD) continue;
            int32_t t[P_BS];
            random_tokens(t);
            uint64_t h = rnd_u32() % 4 == 0 ? 42 : bm_chain_hash(0, t, P_BS);
            int want = model_find(&m, h, t);
            int32_t b = bm_acquire_cached(bm, h, t);
            assert_int_equal(b, want);
            if (b >= 0) {
                m.refs[b]++;
                m.held[m.n_held++] = b;
            }
        }
        check_model(bm, &m);
    }
    while (m.n_held) bm_release(bm, m.held[--m.n_held]);
    assert_int_equal(bm_n_free(bm), P_N);
    bm_free(bm);
}

static void test_property_random_ops(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) property_run(seed * 0x9E3779B97F4A7C15ull, 5000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_sizes),
        cmocka_unit_test(test_allocate_release_accounting),
        cmocka_unit_test(test_refcount_and_copy_on_write),
        cmocka_unit_test(test_invariants_fire),
        cmocka_unit_test(test_chain_hash),
        cmocka_unit_test(test_prefix_reuse),
        cmocka_unit_test(test_duplicate_registration),
        cmocka_unit_test(test_eviction_lru),
        cmocka_unit_test(test_property_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
