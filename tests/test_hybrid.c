// test_hybrid.c — hybrid models (Gated DeltaNet layers, synth --arch qwen35; argv[1] names another
// hybrid family: qwen35moe, qwen3next) in the engine: each running sequence holds a recurrent-state
// slot beside its KV blocks.
//   invariance   64 greedy requests give the same tokens alone and together, with chunked prefill
//                off and on at chunk sizes 1, 7, 16, 33, 64 and whole prompts, and with preemption
//                (a small KV pool: preempted sequences recompute from position 0, a fresh state)
//   prefix cache with state checkpoints: prompts sharing a prefix give the same tokens on a miss
//                (the first run) and on a hit (resumed from the checkpoint after the shared blocks),
//                together and one at a time, at several chunk sizes
//   no leak      10,000 requests with aborts (waiting and running), prefix caching on with prompts
//                that share prefixes: every block and running slot free, checkpoints only with
//                cached blocks, and cached prefixes still give the right tokens
//   speculation  greedy n-gram and draft-model speculation give every token and logprob bit for bit
//                as without it, with guesses accepted and rejected (a rejection restores the state of
//                the accepted position), and with preemption; a self-draft is refused
//   refusals     forward batches that would continue a state from the wrong position, share a slot,
//                or name none
//   checkpoint   a forward pass's checkpoint mid-sequence is the state a shorter run leaves
//   rollback     a verification's rollback points are the states shorter runs leave, bit for bit
// (The numerics against llama.cpp: test_families' qwen35 fixtures.)
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

enum { N_REQ = 64, GEN = 12, MAX_PROMPT = 60 };

static tv_model *g_model;
static tv_model *g_draft;   // a non-hybrid model of the same vocabulary (synth qwen3), for speculation
static char g_path[512];
static int32_t g_prompts[N_REQ][MAX_PROMPT];
static int g_len[N_REQ];
static int32_t g_ref[N_REQ][GEN];   // each request alone

static void config(tv_engine_config *c) {
    tv_engine_config_default(c);
    c->cpu_path = test_cpu_path();
    c->n_threads = 2;
    c->max_model_len = 128;
}

// Runs requests [0, n) of prompts (lengths len; greedy, n_gen tokens each) through e at once; their
// tokens into out (n, n_gen) and, unless lp is NULL, each token's logprob into lp (n, n_gen), with
// the logit biases bias_vals on bias_ids (n_bias of them).
static void run_gen(tv_engine *e, int n, int32_t prompts[][MAX_PROMPT], const int *len, int n_gen, int32_t *out,
                    float *lp, int n_bias, const int32_t *bias_ids, const float *bias_vals) {
    tv_error err = {0};
    int n_got[N_REQ] = {0};
    for (int i = 0; i < n; i++) {
        tv_request_params p;
        tv_request_params_default(&p);
        p.prompt_ids = prompts[i];
        p.n_prompt = (size_t)len[i];
        p.sampling.temperature = 0;
        p.max_tokens = n_gen;
        p.sampling.logprobs = lp ? 0 : -1;
        p.sampling.n_logit_bias = n_bias;
        p.sampling.logit_bias_ids = bias_ids;
        p.sampling.logit_bias_vals = bias_vals;
        p.ignore_eos = true;
        p.user = (void *)(intptr_t)i;
        uint64_t id;
        if (tv_engine_add_request(e, &p, &id, &err)) fail_msg("add: %s", err.msg);
    }
    while (tv_engine_has_work(e)) {
        const tv_request_output *outs;
        int n_outs;
        if (tv_engine_step(e, &outs, &n_outs, &err)) fail_msg("step: %s", err.msg);
        for (int o = 0; o < n_outs; o++) {
            const int i = (int)(intptr_t)outs[o].user;
            if (outs[o].finish == TV_FINISH_ERROR) fail_msg("request %d: %s", i, outs[o].error->msg);
            for (int k = 0; k < outs[o].n_new; k++) {
                assert_true(n_got[i] < n_gen);
                if (lp) lp[i * n_gen + n_got[i]] = outs[o].logprobs[k].logprob;
                out[i * n_gen + n_got[i]++] = outs[o].new_ids[k];
            }
        }
    }
    for (int i = 0; i < n; i++) assert_int_equal(n_got[i], n_gen);
}

static void run_prompts(tv_engine *e, int n, int32_t prompts[][MAX_PROMPT], const int *len, int32_t out[][GEN]) {
    run_gen(e, n, prompts, len, GEN, &out[0][0], NULL, 0, NULL, NULL);
}

static void run_requests(tv_engine *e, int n, int32_t out[][GEN]) { run_prompts(e, n, g_prompts, g_len, out); }

static void expect_same(int32_t got[][GEN], const char *what) {
    for (int i = 0; i < N_REQ; i++)
        if (memcmp(got[i], g_ref[i], sizeof g_ref[i]))
            fail_msg("%s: request %d (prompt of %d) differs from its run alone", what, i, g_len[i]);
}

// The reference: every request in an engine of its own, alone.
static void test_alone_is_reference(void **state) {
    (void)state;
    tv_engine_config c;
    config(&c);
    c.max_num_seqs = 1;
    tv_error err = {0};
    for (int i = 0; i < N_REQ; i++) {
        tv_engine *e = tv_engine_create(g_model, &c, &err);
        if (!e) fail_msg("%s", err.msg);
        int32_t one[N_REQ][GEN];
        // request i moved to slot 0 of a one-request run
        int32_t save[MAX_PROMPT];
        const int save_len = g_len[0];
        memcpy(save, g_prompts[0], sizeof save);
        memcpy(g_prompts[0], g_prompts[i], sizeof save);
        g_len[0] = g_len[i];
        run_requests(e, 1, one);
        memcpy(g_prompts[0], save, sizeof save);
        g_len[0] = save_len;
        memcpy(g_ref[i], one[0], sizeof g_ref[i]);
        tv_engine_stats st;
        tv_engine_get_stats(e, &st);
        assert_int_equal(st.n_state_slots_total, 1);
        assert_int_equal(st.n_state_slots_free, 1);
        assert_true(st.state_bytes_per_slot > 0);
        // where the time went: each kind of layer, and its kernels inside it (the bench's breakdown)
        assert_true(st.t_gdn_kernels_ms > 0 && st.t_gdn_kernels_ms < st.t_linear_layers_ms);
        assert_true(st.t_attn_kernels_ms > 0 && st.t_attn_kernels_ms < st.t_attn_layers_ms);
        tv_engine_free(e);
    }
}

static void test_batch_and_chunking_invariance(void **state) {
    (void)state;
    static const struct { bool chunked; int budget; } RUNS[] = {{false, 512}, {true, 512}, {true, 1}, {true, 7},
                                                                {true, 16}, {true, 33}, {true, 64}};
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
        tv_engine_config c;
        config(&c);
        c.max_num_seqs = N_REQ;
        c.chunked_prefill = RUNS[r].chunked;
        c.max_batched_tokens = RUNS[r].budget;
        tv_error err = {0};
        tv_engine *e = tv_engine_create(g_model, &c, &err);
        if (!e) fail_msg("%s", err.msg);
        int32_t got[N_REQ][GEN];
        run_requests(e, N_REQ, got);
        char what[96];
        snprintf(what, sizeof what, "64 together, chunked prefill %s, %d tokens a step",
                 RUNS[r].chunked ? "on" : "off", RUNS[r].budget);
        expect_same(got, what);
        tv_engine_stats st;
        tv_engine_get_stats(e, &st);
        assert_int_equal(st.n_state_slots_free, st.n_state_slots_total);
        tv_engine_free(e);
    }
}

static void test_preemption(void **state) {
    (void)state;
    tv_engine_config c;
    config(&c);
    c.max_num_seqs = N_REQ;
    c.n_blocks = 48;   // 64 sequences of up to 72 tokens (5 blocks) cannot all run
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("%s", err.msg);
    int32_t got[N_REQ][GEN];
    run_requests(e, N_REQ, got);
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    print_message("hybrid: %llu preemptions\n", (unsigned long long)st.n_preemptions);
    assert_true(st.n_preemptions > 0);
    expect_same(got, "64 together with preemption");
    assert_int_equal(st.n_state_slots_free, st.n_state_slots_total);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    tv_engine_free(e);
}

// Prompts sharing a 40-token prefix (prompt 0's), then 1..17 tokens of their own.
enum { N_SHARED = 16, SHARED = 40 };
static int32_t g_shared[N_SHARED][MAX_PROMPT];
static int g_shared_len[N_SHARED];
static int32_t g_shared_ref[N_SHARED][GEN];   // each alone, prefix caching off

static void test_prefix_cache_checkpoints(void **state) {
    (void)state;
    for (int i = 0; i < N_SHARED; i++) {
        g_shared_len[i] = SHARED + 1 + i % 17;
        memcpy(g_shared[i], g_prompts[0], SHARED * sizeof(int32_t));
        memcpy(g_shared[i] + SHARED, g_prompts[i + 1] + 1, (size_t)(g_shared_len[i] - SHARED) * sizeof(int32_t));
    }
    tv_engine_config c;
    config(&c);
    c.max_num_seqs = 1;
    c.prefix_caching = false;
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("%s", err.msg);
    for (int i = 0; i < N_SHARED; i++) run_prompts(e, 1, &g_shared[i], &g_shared_len[i], &g_shared_ref[i]);
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    assert_int_equal(st.n_state_ckpt_total, 0);
    assert_int_equal(st.n_prefix_hit_tokens, 0);
    tv_engine_free(e);
    // budget 512: a prompt in one chunk (a checkpoint mid-chunk: after 32 of its 41..57 tokens);
    // 7 and 13: chunks end anywhere, checkpoints at every boundary they cross
    static const struct { int budget, every, slots; bool one_at_a_time; } RUNS[] = {
        {512, 1, 4, false}, {512, 2, 2, true}, {7, 1, 3, false}, {13, 1, 1, true}};
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
        config(&c);
        c.max_num_seqs = N_SHARED;
        c.max_batched_tokens = RUNS[r].budget;
        c.state_ckpt_blocks = RUNS[r].every;
        c.state_ckpt_slots = RUNS[r].slots;
        if (!(e = tv_engine_create(g_model, &c, &err))) fail_msg("%s", err.msg);
        for (int round = 0; round < 2; round++) {   // misses (the first to pass a boundary), then hits
            int32_t got[N_SHARED][GEN];
            if (RUNS[r].one_at_a_time)
                for (int i = 0; i < N_SHARED; i++) run_prompts(e, 1, &g_shared[i], &g_shared_len[i], &got[i]);
            else
                run_prompts(e, N_SHARED, g_shared, g_shared_len, got);
            for (int i = 0; i < N_SHARED; i++)
                if (memcmp(got[i], g_shared_ref[i], sizeof got[i]))
                    fail_msg("budget %d, checkpoints every %d blocks%s, round %d: request %d differs from its run alone",
                             RUNS[r].budget, RUNS[r].every, RUNS[r].one_at_a_time ? ", one at a time" : "", round, i);
        }
        tv_engine_get_stats(e, &st);
        print_message("hybrid: budget %d, every %d blocks: %llu prompt tokens from the cache, %d of %d checkpoints held\n",
                      RUNS[r].budget, RUNS[r].every, (unsigned long long)st.n_prefix_hit_tokens, st.n_state_ckpt_held,
                      st.n_state_ckpt_total);
        assert_int_equal(st.n_state_ckpt_total, RUNS[r].slots);
        assert_true(st.n_state_ckpt_held > 0);
        assert_true(st.n_prefix_hit_tokens >= 32);   // a hit resumes after the 2 shared blocks at least
        assert_int_equal(st.n_state_slots_free, st.n_state_slots_total);
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        tv_engine_free(e);
    }
}

// 10,000 short requests, up to 96 in flight, a quarter aborted (waiting or running), prefix caching
// on: prompts of 2..38 tokens from 4 prompts (so they share prefixes and hit), in a small pool (so
// cached blocks are evicted, their checkpoints with them). Every request reports its end once;
// afterwards every block and running slot is free, no more checkpoints are held than blocks cached,
// and the cache still serves right tokens.
static void test_no_leak_with_aborts(void **state) {
    (void)state;
    enum { N = 10000, IN_FLIGHT = 96 };
    tv_engine_config c;
    config(&c);
    c.max_num_seqs = 32;
    c.n_blocks = 40;
    c.state_ckpt_blocks = 1;
    c.state_ckpt_slots = 6;
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("%s", err.msg);
    static uint64_t ids[N];
    static bool ended[N];
    int n_added = 0, n_ended = 0, n_aborted = 0;
    uint64_t rng = 12345;
    while (n_ended < N) {
        while (n_added < N && n_added - n_ended < IN_FLIGHT) {
            tv_request_params p;
            tv_request_params_default(&p);
            const int i = n_added;
            p.prompt_ids = g_prompts[i % 4];
            p.n_prompt = (size_t)(2 + (i % 7) * 6);
            p.sampling.temperature = 0;
            p.max_tokens = 1 + i % 2;
            p.ignore_eos = true;
            p.user = (void *)(intptr_t)i;
            if (tv_engine_add_request(e, &p, &ids[i], &err)) fail_msg("add: %s", err.msg);
            n_added++;
        }
        for (int k = 0; k < IN_FLIGHT && k < n_added; k++) {   // each request on: aborted with odds 1/16 a step
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const int i = n_added - 1 - k;
            if ((rng >> 33) % 16 == 0 && !ended[i] && tv_engine_abort(e, ids[i]) == TV_OK) n_aborted++;
        }
        const tv_request_output *outs;
        int n_outs;
        if (tv_engine_step(e, &outs, &n_outs, &err)) fail_msg("step: %s", err.msg);
        for (int o = 0; o < n_outs; o++) {
            if (outs[o].finish == TV_FINISH_NONE) continue;
            const int i = (int)(intptr_t)outs[o].user;
            if (outs[o].finish == TV_FINISH_ERROR) fail_msg("request %d: %s", i, outs[o].error->msg);
            assert_false(ended[i]);
            ended[i] = true;
            n_ended++;
        }
    }
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    print_message("hybrid: %d requests, %d aborted, %llu preemptions\n", N, n_aborted,
                  (unsigned long long)st.n_preemptions);
    assert_true(n_aborted > N / 10);
    assert_false(tv_engine_has_work(e));
    assert_int_equal(st.n_running, 0);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    assert_int_equal(st.n_state_slots_free, st.n_state_slots_total);
    assert_int_equal(st.n_state_slots_total, 32);
    print_message("hybrid: %llu prompt tokens from the cache, %d checkpoints held, %lld blocks cached\n",
                  (unsigned long long)st.n_prefix_hit_tokens, st.n_state_ckpt_held, (long long)st.n_blocks_cached);
    assert_true(st.n_prefix_hit_tokens > 0);
    assert_true(st.n_state_ckpt_held <= st.n_blocks_cached);
    int32_t got[4][GEN];   // what is still cached serves right tokens
    run_requests(e, 4, got);
    for (int i = 0; i < 4; i++)
        if (memcmp(got[i], g_ref[i], sizeof got[i])) fail_msg("after the churn: request %d differs", i);
    tv_engine_free(e);
}

// Greedy speculative decoding is exact on a hybrid model: 16 prompts of 3 tokens, which a logit bias
// makes the only ones generated (so n-gram guesses come, some accepted, some rejected, at every
// position: the model's order of the 3 is its own), generating SPEC_GEN tokens together, give
// every request's tokens and logprobs bit for bit as without speculation: a rejection restores the
// linear layers' state after the last accepted row. With n-gram guesses, with preemption, and with
// a draft model (a random one: its guesses are rejected). A self-draft is refused (it would advance
// the state with its guesses).
enum { N_SPEC = 16, SPEC_GEN = 40 };
static const int32_t BIAS_IDS[3] = {5, 6, 7};
static const float BIAS_VALS[3] = {100, 100, 100};

static void test_spec_lossless(void **state) {
    (void)state;
    static int32_t prompts[N_SPEC][MAX_PROMPT], ref[N_SPEC][SPEC_GEN], got[N_SPEC][SPEC_GEN];
    static float ref_lp[N_SPEC][SPEC_GEN], got_lp[N_SPEC][SPEC_GEN];
    int len[N_SPEC];
    for (int i = 0; i < N_SPEC; i++) {
        len[i] = 12 + 2 * i;
        prompts[i][0] = 1;
        for (int j = 1; j < len[i]; j++) prompts[i][j] = BIAS_IDS[g_prompts[i][j] % 3];
    }
    tv_engine_config c;
    config(&c);
    c.max_num_seqs = N_SPEC;
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("%s", err.msg);
    run_gen(e, N_SPEC, prompts, len, SPEC_GEN, &ref[0][0], &ref_lp[0][0], 3, BIAS_IDS, BIAS_VALS);
    tv_engine_free(e);
    static const struct { tv_spec_method spec; int64_t n_blocks; const char *what; } RUNS[] = {
        {TV_SPEC_NGRAM, 0, "n-gram"}, {TV_SPEC_NGRAM, 24, "n-gram with preemption"},
        {TV_SPEC_DRAFT_MODEL, 0, "draft model"}};
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
        config(&c);
        c.max_num_seqs = N_SPEC;
        c.n_blocks = RUNS[r].n_blocks;
        c.spec = RUNS[r].spec;
        c.spec_always = true;
        c.draft_model = g_draft;
        if (!(e = tv_engine_create(g_model, &c, &err))) fail_msg("%s: %s", RUNS[r].what, err.msg);
        run_gen(e, N_SPEC, prompts, len, SPEC_GEN, &got[0][0], &got_lp[0][0], 3, BIAS_IDS, BIAS_VALS);
        for (int i = 0; i < N_SPEC; i++)
            if (memcmp(got[i], ref[i], sizeof got[i]) || memcmp(got_lp[i], ref_lp[i], sizeof got_lp[i]))
                fail_msg("%s: request %d's tokens or logprobs differ from those without speculation", RUNS[r].what, i);
        tv_engine_stats st;
        tv_engine_get_stats(e, &st);
        print_message("hybrid: %s: %llu verifications, %llu of %llu guesses accepted, %llu preemptions\n",
                      RUNS[r].what, (unsigned long long)st.n_spec_drafts, (unsigned long long)st.n_spec_accepted_tokens,
                      (unsigned long long)st.n_spec_draft_tokens, (unsigned long long)st.n_preemptions);
        assert_true(st.n_spec_drafts > 0);
        assert_true(st.n_spec_accepted_tokens < st.n_spec_draft_tokens);   // rejections: rollbacks
        if (RUNS[r].spec == TV_SPEC_NGRAM) assert_true(st.n_spec_accepted_tokens > 0);
        if (RUNS[r].n_blocks) assert_true(st.n_preemptions > 0);
        assert_int_equal(st.n_state_slots_free, st.n_state_slots_total);
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        tv_engine_free(e);
    }
    config(&c);
    c.spec = TV_SPEC_SELF_DRAFT;
    c.draft_layers = 2;
    assert_null(tv_engine_create(g_model, &c, &err));
    assert_int_equal(err.code, TV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "state"));
}

// Runs n tokens of prompt 0 at positions start.. in slot `slot` (slots: that many) of a hybrid
// model's forward; returns its status with the message in err.
static tv_status forward_ckpt(tv_forward *f, tv_kv_cache *kv, int start, int n, const int32_t *slots, int n_seqs,
                              const int32_t *ckpt_rows, const int32_t *ckpt_slots, const int32_t *rollback,
                              float **logits, tv_error *err);
static tv_status forward_at(tv_forward *f, tv_kv_cache *kv, int start, int n, const int32_t *slots, int n_seqs,
                            tv_error *err) {
    float *lg;
    return forward_ckpt(f, kv, start, n, slots, n_seqs, NULL, NULL, NULL, &lg, err);
}

// forward_at with checkpoints (tv_batch.state_ckpt_rows / _slots) and rollback points
// (tv_batch.state_rollback); *logits: the last token's row.
static tv_status forward_ckpt(tv_forward *f, tv_kv_cache *kv, int start, int n, const int32_t *slots, int n_seqs,
                              const int32_t *ckpt_rows, const int32_t *ckpt_slots, const int32_t *rollback,
                              float **logits, tv_error *err) {
    static int32_t table[8] = {0, 1, 2, 3, 4, 5, 6, 7}, table2[8] = {8, 9, 10, 11, 12, 13, 14, 15};
    int32_t pos[64], qs[3], ctx[2], rows[1];
    for (int s = 0; s < n_seqs; s++) {
        for (int i = 0; i < n; i++) pos[s * n + i] = start + i;
        qs[s] = s * n;
        ctx[s] = start + n;
    }
    qs[n_seqs] = n_seqs * n;
    rows[0] = n - 1;
    int32_t toks[64];
    const int32_t *tables[2] = {table, table2};
    for (int i = 0; i < n_seqs * n; i++) toks[i] = g_prompts[0][(start + i % n) % MAX_PROMPT];
    tv_batch b = {.n_tokens = n_seqs * n, .tokens = toks, .positions = pos, .n_seqs = n_seqs, .q_start = qs,
                  .ctx_len = ctx, .block_tables = tables, .n_logits = 1, .logit_rows = rows, .state_slots = slots,
                  .state_ckpt_rows = ckpt_rows, .state_ckpt_slots = ckpt_slots, .state_rollback = rollback};
    return forward_run(f, kv, &b, logits, err);
}

// One forward pass's pieces over g_model: a backend of n_threads, a 16-block KV cache of 16-token
// blocks (F32) with n_state state slots (none when 0), and a forward for 128 positions / 64 rows.
typedef struct { backend *be; tv_kv_cache *kv; tv_forward *f; } fwd_rig;

static fwd_rig rig_create(int n_threads, int n_state) {
    tv_error err = {0};
    fwd_rig r = {.be = backend_cpu_create(test_cpu_path(), n_threads, &err)};
    r.kv = kv_cache_create(g_model, 16, 16, true, &err);
    r.f = forward_create(g_model, 128, 64, 8, r.be, &err);
    assert_true(r.be && r.kv && r.f);
    if (n_state > 0) assert_int_equal(kv_cache_add_state(r.kv, g_model, n_state, &err), TV_OK);
    return r;
}

static void rig_free(fwd_rig *r) {
    forward_free(r->f);
    kv_cache_free(r->kv);
    backend_free(r->be);
}

// A checkpoint after 5 of 9 tokens holds the state a 5-token run leaves: continuing from it gives
// the 9-token run's logits bit for bit; its slot holds 5 tokens; bad checkpoints are refused.
static void test_forward_checkpoint(void **state) {
    (void)state;
    tv_error err = {0};
    fwd_rig r = rig_create(2, 3);
    tv_kv_cache *kv = r.kv;
    tv_forward *f = r.f;
    const int32_t slot0 = 0, slot1 = 1, five = 5, ck = 2;
    const int n_vocab = model_hparams(g_model)->n_vocab;
    float *lg, *whole = malloc((size_t)n_vocab * sizeof(float));
    assert_non_null(whole);
    assert_int_equal(forward_ckpt(f, kv, 0, 9, &slot0, 1, &five, &ck, NULL, &lg, &err), TV_OK);
    memcpy(whole, lg, (size_t)n_vocab * sizeof(float));
    assert_int_equal(kv->state->n_pos[ck], 5);
    assert_int_equal(kv->state->n_pos[slot0], 9);
    kv_cache_state_copy(kv, slot1, ck);   // resume after 5 tokens (the KV of 0..4 is in the blocks)
    assert_int_equal(forward_ckpt(f, kv, 5, 4, &slot1, 1, NULL, NULL, NULL, &lg, &err), TV_OK);
    assert_memory_equal(lg, whole, (size_t)n_vocab * sizeof(float));
    // a checkpoint into a sequence's own slot, past its rows, or into a slot out of range
    const int32_t ten = 10, two = 2;
    assert_int_equal(forward_ckpt(f, kv, 0, 9, &slot0, 1, &two, &slot0, NULL, &lg, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "checkpoint"));
    assert_int_equal(forward_ckpt(f, kv, 0, 9, &slot0, 1, &ten, &ck, NULL, &lg, &err), TV_ERR_INVALID);
    const int32_t out = 3;
    assert_int_equal(forward_ckpt(f, kv, 0, 9, &slot0, 1, &two, &out, NULL, &lg, &err), TV_ERR_INVALID);
    free(whole);
    rig_free(&r);
}

// A verification's rollback points: 5 rows after a 4-token prompt with rollback slots 2..5 leave
// there, bit for bit, the state a fresh run of 5, 6, 7 and 8 tokens leaves (every linear layer's
// conv window and delta-rule matrices, and the tokens held); rollback slots that overlap a
// sequence's own slot or run past the pool are refused.
static void test_forward_rollback(void **state) {
    (void)state;
    tv_error err = {0};
    fwd_rig r = rig_create(2, 6);
    tv_kv_cache *kv = r.kv;
    tv_forward *f = r.f;
    const tv_state_cache *sc = kv->state;
    const int32_t slot0 = 0, slot1 = 1, base = 2, past = 3;
    float *lg;
    assert_int_equal(forward_at(f, kv, 0, 4, &slot0, 1, &err), TV_OK);
    assert_int_equal(forward_ckpt(f, kv, 4, 5, &slot0, 1, NULL, NULL, &base, &lg, &err), TV_OK);
    assert_int_equal(sc->n_pos[slot0], 9);
    for (int j = 0; j < 4; j++) {
        assert_int_equal(forward_at(f, kv, 0, 5 + j, &slot1, 1, &err), TV_OK);
        assert_int_equal(sc->n_pos[base + j], 5 + j);
        for (int li = 0; li < sc->n_linear; li++) {
            const size_t want = (size_t)li * (size_t)sc->n_slots + (size_t)slot1,
                         got = (size_t)li * (size_t)sc->n_slots + (size_t)(base + j);
            assert_memory_equal(sc->conv + got * sc->conv_floats, sc->conv + want * sc->conv_floats,
                                sc->conv_floats * sizeof(float));
            assert_memory_equal(sc->ssm + got * sc->ssm_floats, sc->ssm + want * sc->ssm_floats,
                                sc->ssm_floats * sizeof(float));
        }
    }
    assert_int_equal(forward_ckpt(f, kv, 0, 3, &slot1, 1, NULL, NULL, &slot1, &lg, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "rollback"));
    assert_int_equal(forward_ckpt(f, kv, 0, 5, &slot1, 1, NULL, NULL, &past, &lg, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "rollback"));
    rig_free(&r);
}

static void test_forward_state_checks(void **state) {
    (void)state;
    tv_error err = {0};
    fwd_rig r = rig_create(1, 0);
    tv_kv_cache *kv = r.kv;
    tv_forward *f = r.f;
    const int32_t slot0 = 0, slot1 = 1, both_same[2] = {1, 1};
    // no slots yet
    assert_int_equal(forward_at(f, kv, 0, 4, &slot0, 1, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "state slots"));
    assert_int_equal(kv_cache_add_state(kv, g_model, 2, &err), TV_OK);
    assert_int_equal(forward_at(f, kv, 0, 4, &slot0, 1, &err), TV_OK);
    assert_int_equal(forward_at(f, kv, 4, 2, &slot0, 1, &err), TV_OK);   // continues
    // slot 0 holds 6 tokens: position 5 again, or a fresh slot at 6, would be a wrong state
    assert_int_equal(forward_at(f, kv, 5, 1, &slot0, 1, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "holds 6 tokens"));
    assert_int_equal(forward_at(f, kv, 6, 1, &slot1, 1, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "holds 0 tokens"));
    assert_int_equal(forward_at(f, kv, 0, 2, both_same, 2, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "share state slot 1"));
    const int32_t bad = 2;
    assert_int_equal(forward_at(f, kv, 0, 2, &bad, 1, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "out of range"));
    rig_free(&r);
}

static const char *g_arch = "qwen35";   // argv[1]: qwen35 (default), qwen35moe or qwen3next

// Writes synth arch (Q8_0, seed) and loads it; NULL with the reason on stderr.
static tv_model *synth_load(const char *arch, uint64_t seed) {
    snprintf(g_path, sizeof g_path, "%s/test_hybrid_%s_%ld.gguf", TV_BINARY_DIR, arch, (long)getpid());
    tv_error err = {0};
    tv_synth_params sp = {.arch = arch, .type = TV_TYPE_Q8_0, .seed = seed, .n_threads = 2};
    if (synth_write(&sp, g_path, &err)) {
        fprintf(stderr, "synth %s: %s\n", arch, err.msg);
        return NULL;
    }
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = test_cpu_path();
    tv_model *m = tv_model_load(g_path, &mp, &err);
    unlink(g_path);
    if (!m) fprintf(stderr, "load %s: %s\n", arch, err.msg);
    return m;
}

static int setup(void **state) {
    (void)state;
    if (!(g_model = synth_load(g_arch, 7)) || !(g_draft = synth_load("qwen3", 11))) return -1;
    uint64_t x = 99;
    for (int i = 0; i < N_REQ; i++) {
        g_len[i] = 5 + (i * 37) % (MAX_PROMPT - 4);
        g_prompts[i][0] = 1;
        for (int j = 1; j < MAX_PROMPT; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            g_prompts[i][j] = 3 + (int32_t)((x >> 33) % 500);
        }
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_model);
    tv_model_free(g_draft);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) g_arch = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alone_is_reference),
        cmocka_unit_test(test_batch_and_chunking_invariance),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_prefix_cache_checkpoints),
        cmocka_unit_test(test_no_leak_with_aborts),
        cmocka_unit_test(test_spec_lossless),
        cmocka_unit_test(test_forward_state_checks),
        cmocka_unit_test(test_forward_checkpoint),
        cmocka_unit_test(test_forward_rollback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
