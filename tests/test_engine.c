// test_engine.c — the continuous-batching engine: batch invariance (every request's greedy output
// equals running it alone) under random arrivals, chunked prefill on/off, a KV pool tight enough to
// force preemption, block sizes 16 and 32; per-request seeded sampling independent of the batch;
// KV accounting (no leaks over 10,000 requests, aborts free at once); the token budget; decodes
// flowing while a long prompt is chunked; prompts that can never fit rejected at add time.
// Speculative decoding (n-gram proposals verified in the flat batch): the same tokens as plain
// decoding alone (greedy and seeded sampling) in every configuration above, logprobs, stop strings
// and finish reasons unchanged, and no leaks over 10,000 requests with its rollbacks; the same with
// the self-draft and with a draft model (stories260K's first layers as a separate GGUF, its K/V in
// the target's blocks; greedy: the same tokens; sampled: lengths and KV accounting, the distribution
// being test_spec.c's chi-square), which is also checked against a vocabulary that differs; the same
// with an MTP layer (synthetic glm4moe and qwen35 files with nextn tensors, the layer loaded as its
// own model: its K/V in the target's blocks, the target's hidden states beside them).
// Model: the real stories260K llama2.c checkpoint (GQA) from ../shared.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"
#include "test_util.h"
#include "engine_driver.h"
#include "util/rng.h"

static tv_model *g_model;
static tv_model *g_stories;    // stories260K (g_model but while with_mtp runs)
static tv_model *g_draft[5];   // [n]: stories260K.gguf's first n layers (tv_convert_first_layers), a draft model
// synthetic files with an MTP layer: [0] glm4moe (MoE, its MTP layer always written), [1] qwen35 --mtp
// (hybrid: the target keeps state slots); the target and its MTP layer loaded as a model of its own
static tv_model *g_mtp_target[2], *g_mtp[2];
static tv_model *g_mtp_cur;    // the MTP layer make_engine_spec proposes with (draft_layers == MTP_DRAFT)
enum { MTP_DRAFT = 1000 };

// Models and engines run on $TINYVLLM_CPU's kernel path (test_util.h), the best one without it.
static void config_default(tv_engine_config *c) {
    tv_engine_config_default(c);
    c->cpu_path = test_cpu_path();
}

static tv_model *load_model(const char *path, tv_error *err) {
    tv_model_params p;
    tv_model_params_default(&p);
    p.cpu_path = test_cpu_path();
    return tv_model_load(path, &p, err);
}

static int setup(void **state) {
    (void)state;
    const char *env = getenv("TV_SHARED_DIR");
    char path[1200];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", env && *env ? env : TV_SHARED_DIR);
    if (access(path, R_OK) != 0) return 0;
    tv_error err = {0};
    g_model = g_stories = load_model(path, &err);
    if (!g_model) fprintf(stderr, "load: %s\n", err.msg);
    if (!g_model) return -1;
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", env && *env ? env : TV_SHARED_DIR);
    for (int n = 1; n < 5; n++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/draft%d-%d.gguf", TV_BINARY_DIR, n, (int)getpid());
        if (tv_convert_first_layers(path, n, out, NULL, 0, &err) || !(g_draft[n] = load_model(out, &err))) {
            fprintf(stderr, "draft: %s\n", err.msg);
            return -1;
        }
        unlink(out);   // mapped
    }
    static const char *const mtp_archs[2] = {"glm4moe", "qwen35"};
    for (int i = 0; i < 2; i++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/mtp-%s-%d.gguf", TV_BINARY_DIR, mtp_archs[i], (int)getpid());
        tv_synth_params sp = {.arch = mtp_archs[i], .type = TV_TYPE_F32, .seed = 7, .n_threads = 1, .mtp = i == 1};
        tv_model_params mp;
        tv_model_params_default(&mp);
        mp.cpu_path = test_cpu_path();
        mp.mtp = true;
        if (synth_write(&sp, out, &err) || !(g_mtp_target[i] = load_model(out, &err)) ||
            !(g_mtp[i] = tv_model_load(out, &mp, &err))) {
            fprintf(stderr, "mtp %s: %s\n", mtp_archs[i], err.msg);
            return -1;
        }
        unlink(out);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_stories);   // (g_model may still be an MTP target after a failed with_mtp)
    for (int n = 0; n < 5; n++) tv_model_free(g_draft[n]);
    for (int i = 0; i < 2; i++) {
        tv_model_free(g_mtp_target[i]);
        tv_model_free(g_mtp[i]);
    }
    return 0;
}

#define SKIP_IF_NO_MODEL() \
    do { if (!g_model) { print_message("skipped: ../shared/models/stories260K.bin is absent\n"); skip(); } } while (0)

static bool g_spec_gated;   // make_engine_spec leaves the load gate on (decisions from real round times)

// draft_layers > 0: the self-draft of that many layers (MTP_DRAFT: the MTP layer g_mtp_cur); < 0: the
// draft model g_draft[-draft_layers]; 0 with spec_tokens: n-gram.
static tv_engine *make_engine_spec(int block_size, int64_t n_blocks, bool chunked, int max_seqs, int budget, int kv_bits,
                                   int decode_steps, int spec_tokens, int draft_layers) {
    tv_engine_config c;
    config_default(&c);
    c.n_threads = 1;   // a 260K model: threads would only add synchronisation
    c.block_size = block_size;
    c.n_blocks = n_blocks;
    c.chunked_prefill = chunked;
    c.max_num_seqs = max_seqs;
    c.max_batched_tokens = budget;
    c.kv_bits = kv_bits;
    c.decode_steps = decode_steps;
    const bool is_mtp = draft_layers == MTP_DRAFT;
    c.spec = !spec_tokens ? TV_SPEC_NONE : is_mtp ? TV_SPEC_MTP : draft_layers > 0 ? TV_SPEC_SELF_DRAFT
                                         : draft_layers < 0 ? TV_SPEC_DRAFT_MODEL : TV_SPEC_NGRAM;
    c.spec_tokens = spec_tokens;
    c.draft_layers = draft_layers > 0 && !is_mtp ? draft_layers : 0;
    c.draft_model = draft_layers < 0 ? g_draft[-draft_layers] : is_mtp ? g_mtp_cur : NULL;
    c.spec_always = !g_spec_gated;   // every round speculates (the load gate makes the counts timing-dependent)
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("engine: %s", err.msg);
    return e;
}

static tv_engine *make_engine(int block_size, int64_t n_blocks, bool chunked, int max_seqs, int budget, int kv_bits) {
    return make_engine_spec(block_size, n_blocks, chunked, max_seqs, budget, kv_bits, 1, 0, 0);
}

// Each request alone (one at a time in a fresh engine): the reference outputs.
static void run_alone(req *rs, int n, int kv_bits) {
    for (int i = 0; i < n; i++) {
        tv_engine *e = make_engine(16, 0, true, 1, 512, kv_bits);
        req r = rs[i];
        r.arrive_step = 0;
        r.n_out = 0;
        drive(e, &r, 1, NULL, NULL);
        memcpy(rs[i].out, r.out, sizeof r.out);
        rs[i].n_out = r.n_out;
        tv_engine_free(e);
    }
}

// full: every configuration; else a representative subset (chunked, preemption, multi-step).
// spec_tokens > 0: the batched runs speculate (up to that many tokens; n-gram, or with draft_layers
// > 0 the self-draft of that many layers, < 0 the draft model of -draft_layers layers), the reference not.
static void batch_invariance(int kv_bits, float temperature, bool full, int spec_tokens, int draft_layers) {
    enum { N = 64 };
    static req ref[N], got[N];
    make_requests(ref, N, 42, 200, 40, 60);
    for (int i = 0; i < N; i++) ref[i].temperature = temperature;
    run_alone(ref, N, kv_bits);
    struct { int bs; int64_t blocks; bool chunked; int budget; int steps; const char *name; } cfgs[] = {
        {16, 0, true, 64, 1, "chunked, bs16"},
        {16, 0, false, 64, 1, "no chunking, bs16"},
        {32, 0, true, 96, 1, "chunked, bs32"},
        {32, 0, false, 96, 1, "no chunking, bs32"},
        {16, 40, true, 64, 1, "tight KV (preemption), bs16"},
        {32, 20, true, 64, 1, "tight KV (preemption), bs32"},
        {16, 40, false, 64, 1, "tight KV (preemption), no chunking"},
        {16, 40, true, 64, 4, "tight KV, multi-step decoding (4)"},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        if (!full && c != 0 && c != 5 && c != 7) continue;
        memcpy(got, ref, sizeof got);
        for (int i = 0; i < N; i++) got[i].n_out = 0;
        tv_engine *e = make_engine_spec(cfgs[c].bs, cfgs[c].blocks, cfgs[c].chunked, 16, cfgs[c].budget, kv_bits,
                                        cfgs[c].steps, spec_tokens, draft_layers);
        tv_engine_stats st;
        int max_used = 0;
        int calls = drive(e, got, N, &st, &max_used);
        if (temperature == 0.0f || draft_layers == 0) check_same(ref, got, N, cfgs[c].name);
        else   // a model draft's sampled guesses: other draws than plain sampling (the same distribution: test_spec.c)
            for (int i = 0; i < N; i++) assert_int_equal(got[i].n_out, ref[i].n_out);
        // several rounds per call (once nobody waits: fewer with speculation, which shortens that tail)
        if (cfgs[c].steps > 1 && st.n_steps <= (uint64_t)calls + (spec_tokens ? 10 : 20))
            fail_msg("%llu rounds in %d calls", (unsigned long long)st.n_steps, calls);
        assert_true(max_used <= cfgs[c].budget || !cfgs[c].chunked);
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        assert_int_equal(st.n_running + st.n_waiting, 0);
        if (spec_tokens && g_spec_gated)
            print_message("%s, speculating up to %d, load gate: %llu rounds speculated, %llu plain\n", cfgs[c].name, spec_tokens,
                          (unsigned long long)st.n_spec_rounds, (unsigned long long)st.n_spec_rounds_plain);
        else if (spec_tokens) {
            print_message("%s, speculating %d (%s): %llu verifications, %llu of %llu proposed tokens accepted\n", cfgs[c].name,
                          spec_tokens, draft_layers == MTP_DRAFT ? "MTP layer" : draft_layers > 0 ? "self-draft" : draft_layers < 0 ? "draft model" : "n-gram", (unsigned long long)st.n_spec_drafts, (unsigned long long)st.n_spec_accepted_tokens,
                          (unsigned long long)st.n_spec_draft_tokens);
            // both outcomes happen, so both paths (accept, reject + rollback) were compared (a random MTP
            // layer's argmax agrees with the target's no better than chance: its greedy guesses are rejected;
            // sampled ones are accepted as often as the two distributions overlap)
            assert_true(st.n_spec_accepted_tokens < st.n_spec_draft_tokens);
            assert_true(st.n_spec_accepted_tokens > 0 || (draft_layers == MTP_DRAFT && temperature == 0.0f));
            uint64_t per_pos = 0;
            for (int j = 0; j < TV_SPEC_MAX_TOKENS; j++) per_pos += st.n_spec_accepted_per_pos[j];
            assert_true(per_pos == st.n_spec_accepted_tokens);
            assert_true(st.n_spec_accepted_per_pos[0] >= st.n_spec_accepted_per_pos[1]);
        }
        if (cfgs[c].blocks) {
            print_message("%s: %llu preemptions\n", cfgs[c].name, (unsigned long long)st.n_preemptions);
            assert_true(st.n_preemptions > 0);
        }
        tv_engine_free(e);
    }
}

static void test_batch_invariance_greedy(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 0.0f, true, 0, 0);
}

// Speculative decoding is lossless: greedy outputs token-identical to plain decoding alone, under
// chunking, preemption and multi-step decoding, for 64 mixed requests.
static void test_spec_greedy_lossless(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 0.0f, true, 4, 0);
    batch_invariance(16, 0.0f, false, 7, 0);
}

// The same with the self-draft (the model's first layers and its head propose): lossless, and its
// guesses write the shared K/V of those layers without disturbing anything. Sampled (its guesses
// drawn, rejection sampling): every request's length and the KV accounting.
static void test_spec_self_draft_lossless(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 0.0f, true, 4, 3);
    batch_invariance(16, 0.0f, false, 3, 1);
    batch_invariance(0, 1.0f, false, 5, 4);
}

// The same with a draft model (the target's first layers as a GGUF of their own: its K/V in the
// target's blocks, caught up before it proposes; preempted, rolled back and prefix-cached with them).
static void test_spec_draft_model_lossless(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 0.0f, true, 4, -3);
    batch_invariance(16, 0.0f, false, 3, -2);
    batch_invariance(0, 1.0f, false, 5, -4);
}

// Runs fn on the MTP file i as the engines' model (g_model) and its MTP layer as the proposer.
static void with_mtp(int i, void (*fn)(void)) {
    tv_model *saved = g_model;
    g_model = g_mtp_target[i];
    g_mtp_cur = g_mtp[i];
    fn();
    g_model = saved;
}

static void mtp_lossless(void) {
    batch_invariance(0, 0.0f, false, 4, MTP_DRAFT);   // greedy: chunked, preemption, multi-step
    batch_invariance(0, 1.0f, false, 3, MTP_DRAFT);   // sampled: its guesses drawn, rejection sampling
}

static void mtp_gated(void) {
    g_spec_gated = true;   // the load gate deciding
    batch_invariance(0, 0.0f, false, 4, MTP_DRAFT);
    g_spec_gated = false;
}

// The same with the file's MTP layer (nextn): a row reads the embedding of its token and the
// target's final-normed hidden state at the position before (kept in the target's blocks), guesses
// after the first its own output; its K/V in the target's blocks, caught up from the target's states.
static void test_spec_mtp_lossless(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    with_mtp(0, mtp_lossless);   // glm4moe: MoE
    with_mtp(1, mtp_gated);      // qwen35: hybrid (state slots rolled back under it); plain rounds, then catch-up
}

// With the load gate deciding from real round times (caps between 0 and K per round, a draft
// model skipping plain rounds and catching up after them): still lossless and leak-free.
static void test_spec_gated_lossless(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    g_spec_gated = true;
    batch_invariance(0, 0.0f, false, 8, 0);
    batch_invariance(0, 0.0f, false, 8, -2);
    batch_invariance(0, 0.0f, false, 6, 2);
    g_spec_gated = false;
}

// A draft model whose K/V were wrong (not caught up, or clobbered by rollbacks and preemption)
// would propose differently from the self-draft of the same layers, which reads the target's own
// K/V: with the target stories260K.gguf (the file the draft was cut from: the same arithmetic) the
// two propose the very same tokens, so their acceptance counts match exactly.
static void test_spec_draft_model_matches_self_draft(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    enum { N = 24 };
    static req a[N], b[N];
    const char *env = getenv("TV_SHARED_DIR");
    char path[1200];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", env && *env ? env : TV_SHARED_DIR);
    tv_error err = {0};
    tv_model *saved = g_model;
    g_model = load_model(path, &err);
    if (!g_model) fail_msg("%s", err.msg);
    make_requests(a, N, 5, 120, 40, 10);
    for (int i = 1; i < N; i++)   // most prompts open with the first one's 40 tokens: prefix-cache hits
        if (a[i].n_prompt > 48 && a[0].n_prompt > 40) memcpy(a[i].prompt, a[0].prompt, 40 * sizeof(int32_t));
    memcpy(b, a, sizeof b);
    tv_engine_stats sa, sb;
    tv_engine *e = make_engine_spec(16, 30, true, 8, 64, 0, 1, 4, 3);
    drive(e, a, N, &sa, NULL);
    tv_engine_free(e);
    e = make_engine_spec(16, 30, true, 8, 64, 0, 1, 4, -3);
    drive(e, b, N, &sb, NULL);
    tv_engine_free(e);
    tv_model_free(g_model);
    g_model = saved;
    print_message("self-draft %llu of %llu accepted, draft model %llu of %llu; %llu preemptions, %llu prefix-cache hits\n",
                  (unsigned long long)sa.n_spec_accepted_tokens, (unsigned long long)sa.n_spec_draft_tokens,
                  (unsigned long long)sb.n_spec_accepted_tokens, (unsigned long long)sb.n_spec_draft_tokens,
                  (unsigned long long)sb.n_preemptions, (unsigned long long)sb.n_prefix_hit_tokens);
    assert_true(sa.n_spec_accepted_tokens > 0 && sb.n_prefix_hit_tokens > 0);
    assert_true(sb.n_preemptions > 0);
    assert_int_equal(sa.n_spec_accepted_tokens, sb.n_spec_accepted_tokens);
    assert_int_equal(sa.n_spec_draft_tokens, sb.n_spec_draft_tokens);
    for (int i = 0; i < N; i++) assert_memory_equal(a[i].out, b[i].out, (size_t)a[i].n_out * sizeof(int32_t));
}

// Seeded sampling with speculation gives the very tokens of plain sampling (one RNG draw per
// appended token, the n-gram proposal being one-hot: see engine.c).
static void test_spec_seeded_sampling_same_tokens(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 1.0f, false, 4, 0);
}

static void test_batch_invariance_f16_kv(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(16, 0.0f, false, 0, 0);
}

// Seeded sampling at temperature 1 gives the same tokens alone and in any batch.
static void test_seeded_sampling_batch_independent(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    batch_invariance(0, 1.0f, false, 0, 0);
}

// Different seeds must give different samples (else the invariance test above proves nothing).
static void test_seeds_differ(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    req rs[2];
    make_requests(rs, 2, 7, 5, 1, 0);
    rs[1] = rs[0];
    rs[0].max_tokens = rs[1].max_tokens = 40;
    rs[0].temperature = rs[1].temperature = 1.0f;
    rs[0].seed = 1;
    rs[1].seed = 2;
    rs[0].n_out = rs[1].n_out = 0;
    tv_engine *e = make_engine(16, 0, true, 4, 64, 0);
    drive(e, rs, 2, NULL, NULL);
    tv_engine_free(e);
    assert_int_equal(rs[0].n_out, 40);
    assert_memory_not_equal(rs[0].out, rs[1].out, 40 * sizeof(int32_t));
}

// The step never exceeds its budget, and a long prompt is chunked while decodes keep flowing.
static void test_budget_and_chunked_prefill(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    tv_engine *e = make_engine(16, 0, true, 8, 32, 0);
    req rs[3];
    make_requests(rs, 3, 11, 4, 1, 0);
    for (int i = 0; i < 2; i++) { rs[i].max_tokens = 100; rs[i].arrive_step = 0; }
    rs[2].n_prompt = 300;   // ~10 chunks of <= 32 tokens
    for (int j = 1; j < 300; j++) rs[2].prompt[j] = 3 + j % 500;
    rs[2].max_tokens = 5;
    rs[2].arrive_step = 3;
    tv_error err = {0};
    int step = 0, prefill_steps_with_decodes = 0, max_tokens = 0;
    int finished = 0;
    while (finished < 3) {
        for (int i = 0; i < 3; i++)
            if (rs[i].arrive_step == step) add(e, &rs[i]);
        tv_engine_stats b4, af;
        tv_engine_get_stats(e, &b4);
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        tv_engine_get_stats(e, &af);
        int prompt_tok = (int)(af.n_prompt_tokens - b4.n_prompt_tokens);
        assert_int_equal(af.n_batched_tokens - b4.n_batched_tokens, (uint64_t)af.last_step_tokens);
        if (af.last_step_tokens > max_tokens) max_tokens = af.last_step_tokens;
        bool decoded_others = false;
        for (int i = 0; i < no; i++) {
            req *r = o[i].user;
            if (r != &rs[2] && o[i].n_new) decoded_others = true;
            if (o[i].finish) finished++;
        }
        if (prompt_tok > 0 && step >= 3 && decoded_others) prefill_steps_with_decodes++;
        step++;
        assert_true(step < 10000);
    }
    print_message("max tokens in a step: %d (budget 32); steps that chunked the long prompt while decoding: %d\n",
                  max_tokens, prefill_steps_with_decodes);
    assert_true(max_tokens <= 32);
    assert_true(prefill_steps_with_decodes >= 8);
    tv_engine_free(e);
}

// 10,000 short requests through a small pool, some aborted: every block comes back. With
// speculation (spec_tokens > 0) the requests run longer (up to max_new tokens) so that proposals,
// rejections and rollbacks happen thousands of times.
static void no_leaks_10k(int spec_tokens, int draft_layers, int max_new) {
    tv_engine *e = make_engine_spec(16, 64, true, 32, 256, 0, 1, spec_tokens, draft_layers);
    uint64_t s = 99;
    tv_error err = {0};
    int32_t prompt[20];
    int submitted = 0, finished = 0, aborted = 0;
    uint64_t live[64];
    int n_live = 0;
    while (finished < 10000) {
        while (submitted < 10000 && n_live < 48) {
            tv_request_params p;
            tv_request_params_default(&p);
            int np = 1 + (int)(rng_splitmix64(&s) % 20);
            prompt[0] = 1;
            for (int j = 1; j < np; j++) prompt[j] = 3 + (int)(rng_splitmix64(&s) % 500);
            p.prompt_ids = prompt;
            p.n_prompt = (size_t)np;
            p.max_tokens = 1 + (int)(rng_splitmix64(&s) % (uint64_t)max_new);
            p.sampling.temperature = 0;
            uint64_t id;
            assert_int_equal(tv_engine_add_request(e, &p, &id, &err), TV_OK);
            live[n_live++] = id;
            submitted++;
        }
        if (n_live && rng_splitmix64(&s) % 4 == 0) {   // abort a random live request
            int k = (int)(rng_splitmix64(&s) % (uint64_t)n_live);
            if (tv_engine_abort(e, live[k]) == TV_OK) aborted++;
        }
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        for (int i = 0; i < no; i++) {
            if (!o[i].finish) continue;
            finished++;
            for (int k = 0; k < n_live; k++)
                if (live[k] == o[i].req_id) { live[k] = live[--n_live]; break; }
        }
        tv_engine_stats st;
        tv_engine_get_stats(e, &st);
        assert_true(st.n_blocks_free >= 0 && st.n_blocks_free <= st.n_blocks_total);
    }
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    print_message("10000 requests (%d aborted), %llu steps, %llu preemptions, %llu verifications (%llu of %llu accepted)\n",
                  aborted, (unsigned long long)st.n_steps, (unsigned long long)st.n_preemptions,
                  (unsigned long long)st.n_spec_drafts, (unsigned long long)st.n_spec_accepted_tokens,
                  (unsigned long long)st.n_spec_draft_tokens);
    if (spec_tokens) assert_true(st.n_spec_drafts > 1000 && st.n_spec_accepted_tokens < st.n_spec_draft_tokens);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    assert_int_equal(st.n_running + st.n_waiting, 0);
    assert_true(aborted > 150);
    assert_int_equal(tv_engine_abort(e, 123456789), TV_ERR_INVALID);
    tv_engine_free(e);
}

static void test_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    no_leaks_10k(0, 0, 4);
}

static void test_spec_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    no_leaks_10k(4, 0, 24);
}

static void test_spec_self_draft_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    no_leaks_10k(3, 2, 16);
}

static void mtp_no_leaks(void) { no_leaks_10k(3, MTP_DRAFT, 8); }

static void test_spec_mtp_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    with_mtp(0, mtp_no_leaks);
}

static void test_spec_draft_model_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    no_leaks_10k(3, -3, 16);
}

// With the load gate, a round without guesses (no decision) runs no draft pass: a draft model's K/V
// of prompt chunks in such rounds catch up in the next round that decides to speculate (predicted and
// timed there). A request decodes (again, up to 8 times, until the gate's last decision speculated:
// it decides from real times), then one of 100 prompt tokens and one output token (two chunks of at
// most 64, no guesses): no draft row in those rounds. (Before, a gate whose last decision speculated
// ran the draft over all 100: this test failed so.)
static void test_spec_gated_no_draft_without_guesses(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    static req rs[2];
    make_requests(rs, 2, 7, 1, 1, 0);
    for (int i = 0; i < 2; i++) {
        rs[i].n_prompt = i ? 100 : 20;
        for (int j = 1; j < rs[i].n_prompt; j++) rs[i].prompt[j] = 3 + (j * 37 + i * 11) % 500;
    }
    rs[0].max_tokens = 200;
    rs[1].max_tokens = 1;
    g_spec_gated = true;
    tv_engine *e = make_engine_spec(16, 0, true, 4, 64, 0, 1, 8, -1);
    g_spec_gated = false;
    tv_engine_stats st0, st1;
    for (int t = 0; t < 8; t++) {   // until the last decision speculated (the gate decides from real times)
        rs[0].n_out = 0;
        drive(e, rs, 1, &st0, NULL);
        if (st0.spec_enabled) break;
    }
    drive(e, rs + 1, 1, &st1, NULL);
    print_message("decoding: %llu rounds speculated, %llu plain, %llu draft rows, speculating at the end: %d; "
                  "then a prompt alone: %llu draft rows\n", (unsigned long long)st0.n_spec_rounds,
                  (unsigned long long)st0.n_spec_rounds_plain, (unsigned long long)st0.n_spec_draft_rows, st0.spec_enabled,
                  (unsigned long long)(st1.n_spec_draft_rows - st0.n_spec_draft_rows));
    assert_int_equal(rs[1].n_out, 1);
    assert_true(st1.n_spec_draft_rows == st0.n_spec_draft_rows);
    assert_true(st0.n_spec_rounds == 0 || st0.n_spec_draft_rows > 0);
    assert_int_equal(st1.n_blocks_free, st1.n_blocks_total);
    tv_engine_free(e);
}

// A draft model must share the target's vocabulary: a different size, or (both with a tokenizer)
// a different text for some id, is refused at create with the difference named; the KV block
// accounts for the draft's share.
static void test_spec_draft_model_checks(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    static const tv_synth_shape shape = {"voc", 64, 128, 1, 2, 2, 600, 64, 10000.0f, 1e-5f, false, false};
    char path[512];
    snprintf(path, sizeof path, "%s/draft-vocab-%d.gguf", TV_BINARY_DIR, (int)getpid());
    tv_synth_params sp = {.type = TV_TYPE_F32, .seed = 3, .shape = &shape, .pure = true, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    tv_model *other = load_model(path, &err);
    unlink(path);
    if (!other) fail_msg("%s", err.msg);
    tv_engine_config c;
    config_default(&c);
    c.n_threads = 1;
    c.spec = TV_SPEC_DRAFT_MODEL;
    c.draft_model = other;
    assert_null(tv_engine_create(g_model, &c, &err));
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "vocabulary has 600 tokens, the target's 512"));
    // the same size, other texts: stories260K.gguf (with its tokenizer) as the target of a synthetic-vocab draft
    static const tv_synth_shape shape512 = {"voc", 64, 128, 1, 2, 2, 512, 64, 10000.0f, 1e-5f, false, false};
    sp.shape = &shape512;
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    tv_model *other512 = load_model(path, &err);
    unlink(path);
    if (!other512) fail_msg("%s", err.msg);
    c.draft_model = other512;
    assert_null(tv_engine_create(g_draft[4], &c, &err));
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "in the draft's vocabulary but"));
    c.draft_model = NULL;
    assert_null(tv_engine_create(g_model, &c, &err));
    c.draft_model = g_draft[2];
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    assert_non_null(e);
    assert_ptr_equal(tv_engine_draft_model(e), g_draft[2]);
    tv_engine_limits lim;
    tv_engine_stats st;
    tv_engine_get_limits(e, &lim);
    tv_engine_get_stats(e, &st);
    assert_true(lim.draft_kv_bytes_per_block > 0 && lim.draft_kv_bytes_per_block < st.kv_bytes_per_block);
    assert_true(lim.spec == TV_SPEC_DRAFT_MODEL && lim.spec_tokens == 4);
    tv_engine_free(e);
    tv_model_free(other);
    tv_model_free(other512);
}

// The MTP layer's logits against llama.cpp's (tests/fixtures/mtp): the target over the fixture's 24
// tokens writes its final-normed hidden states into the KV slots' rows, the MTP layer runs each
// token with the state at the position before; every logit within 1e-3 of the oracle's.
static void mtp_reference(const char *arch) {
    char path[512], fix[1200];
    snprintf(path, sizeof path, "%s/mtp-ref-%s-%d.gguf", TV_BINARY_DIR, arch, (int)getpid());
    snprintf(fix, sizeof fix, "%s/tests/fixtures/mtp/%s-f32.bin", TV_SOURCE_DIR, arch);
    tv_error err = {0};
    tv_synth_params sp = {.arch = arch, .type = TV_TYPE_F32, .seed = 1, .n_threads = 1, .mtp = true};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = test_cpu_path();
    tv_model *t = tv_model_load(path, &mp, &err);
    mp.mtp = true;
    tv_model *v = t ? tv_model_load(path, &mp, &err) : NULL;
    unlink(path);
    if (!v) fail_msg("%s", err.msg);
    const tv_hparams *h = model_hparams(t);
    enum { N = 24, BS = 16, NB = 2 };
    int32_t tok[N];
    float *ref = malloc((size_t)N * h->n_vocab * sizeof(float));
    FILE *f = fopen(fix, "rb");
    assert_non_null(f);
    assert_true(fread(tok, sizeof(int32_t), N, f) == N && fread(ref, sizeof(float), (size_t)N * h->n_vocab, f) == (size_t)N * h->n_vocab);
    fclose(f);
    tv_engine_config c;   // the engine's pieces, one sequence: target pass, then the MTP layer's
    config_default(&c);
    backend *be = backend_cpu_create(c.cpu_path, 1, &err);
    tv_kv_cache *kt = kv_cache_create(t, NB, BS, true, &err), *kvv = kv_cache_create(v, NB, BS, true, &err);
    tv_forward *ft = forward_create(t, 256, N, N, be, &err), *fv = forward_create(v, 256, N, N, be, &err);
    assert_true(be && kt && kvv && ft && fv && kv_cache_add_state(kt, t, 1, &err) == TV_OK);
    int32_t pos[N], qs[2] = {0, N}, ctx = N, blocks[NB] = {0, 1}, slot = 0;
    for (int i = 0; i < N; i++) pos[i] = i;
    const int32_t *bt[1] = {blocks};
    float *hc = calloc((size_t)NB * BS * h->dim, sizeof(float)), *hin = calloc((size_t)N * h->dim, sizeof(float)), *lg;
    tv_batch b = {.n_tokens = N, .tokens = tok, .positions = pos, .n_seqs = 1, .q_start = qs, .ctx_len = &ctx,
                  .block_tables = bt, .n_logits = N, .logit_rows = pos, .state_slots = &slot, .hidden_cache = hc};
    if (forward_run(ft, kt, &b, &lg, &err)) fail_msg("%s", err.msg);
    for (int i = 1; i < N; i++) memcpy(hin + (size_t)i * h->dim, hc + (size_t)(i - 1) * h->dim, (size_t)h->dim * sizeof(float));
    b = (tv_batch){.n_tokens = N, .tokens = tok, .positions = pos, .n_seqs = 1, .q_start = qs, .ctx_len = &ctx,
                   .block_tables = bt, .n_logits = N, .logit_rows = pos, .mtp_hidden = hin};
    if (forward_run(fv, kvv, &b, &lg, &err)) fail_msg("%s", err.msg);
    double max_diff = 0;
    for (size_t i = 0; i < (size_t)N * h->n_vocab; i++)
        if (fabs((double)lg[i] - ref[i]) > max_diff) max_diff = fabs((double)lg[i] - ref[i]);
    print_message("%s: MTP logits within %.3g of llama.cpp's\n", arch, max_diff);
    assert_true(max_diff < 1e-3);
    free(ref);
    free(hc);
    free(hin);
    forward_free(ft);
    forward_free(fv);
    kv_cache_free(kt);
    kv_cache_free(kvv);
    backend_free(be);
    tv_model_free(t);
    tv_model_free(v);
}

// The MTP layer as a model: one layer (the file's last), its input projection bound, the target
// unchanged; a file without one, or with the key but not the tensors, is refused naming what is
// missing; an engine takes it only with TV_SPEC_MTP (and a draft model only without), and counts
// the hidden states in the draft's share of a block.
static void test_spec_mtp_checks(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    const tv_hparams *t = model_hparams(g_mtp_target[0]), *v = model_hparams(g_mtp[0]);
    assert_int_equal(t->n_layers, 4);
    assert_int_equal(t->n_nextn, 1);
    assert_int_equal(v->n_layers, 1);
    assert_non_null(model_weights(g_mtp[0])->mtp_eh_proj.data);
    assert_null(model_weights(g_mtp_target[0])->mtp_eh_proj.data);
    assert_false(model_layers(g_mtp[1])[0].is_linear);   // qwen35's MTP layer: full attention, no state
    assert_int_equal(model_hparams(g_mtp[1])->n_linear, 0);
    tv_error err = {0};
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.mtp = true;
    char path[512], cut[512];
    snprintf(path, sizeof path, "%s/mtp-bad-%d.gguf", TV_BINARY_DIR, (int)getpid());
    snprintf(cut, sizeof cut, "%s/mtp-cut-%d.gguf", TV_BINARY_DIR, (int)getpid());
    tv_synth_params sp = {.arch = "qwen35", .type = TV_TYPE_F32, .seed = 7, .n_threads = 1};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    assert_null(tv_model_load(path, &mp, &err));   // no nextn_predict_layers
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "has no MTP layer (qwen35.nextn_predict_layers is absent)"));
    // the key without the tensors: the first 4 of glm4moe's 5 layers keep nextn_predict_layers 1,
    // so layer 3 (an ordinary layer) is taken for the MTP layer, without nextn tensors
    sp.arch = "glm4moe";
    if (synth_write(&sp, path, &err) || tv_convert_first_layers(path, 4, cut, NULL, 0, &err)) fail_msg("%s", err.msg);
    tv_model *plain = tv_model_load(cut, NULL, &err);   // the model itself loads (its 3 layers)
    if (!plain) fail_msg("%s", err.msg);
    assert_int_equal(model_hparams(plain)->n_layers, 3);
    tv_model_free(plain);
    assert_null(tv_model_load(cut, &mp, &err));
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "tensor 'blk.3.nextn.eh_proj.weight' is missing"));
    unlink(path);
    unlink(cut);
    tv_engine_config c;
    config_default(&c);
    c.n_threads = 1;
    c.spec = TV_SPEC_MTP;
    assert_null(tv_engine_create(g_mtp_target[0], &c, &err));   // no MTP layer given
    assert_non_null(strstr(err.msg, "the MTP layer"));
    c.draft_model = g_draft[2];   // a draft model is not an MTP layer
    assert_null(tv_engine_create(g_model, &c, &err));
    assert_non_null(strstr(err.msg, "--spec mtp needs the model's MTP layer"));
    c.spec = TV_SPEC_DRAFT_MODEL;   // nor the other way round
    c.draft_model = g_mtp[0];
    assert_null(tv_engine_create(g_mtp_target[0], &c, &err));
    assert_non_null(strstr(err.msg, "an MTP layer proposes with --spec mtp only"));
    c.spec = TV_SPEC_MTP;
    tv_engine *e = tv_engine_create(g_mtp_target[0], &c, &err);
    if (!e) fail_msg("%s", err.msg);
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    // its K/V (one layer) and the hidden states: dim f32 per token
    const double kv1 = 2.0 * t->n_kv_heads * t->head_dim * c.block_size * (lim.kv_bits / 8);
    assert_true(lim.draft_kv_bytes_per_block == kv1 + (double)t->dim * 4 * c.block_size);
    tv_engine_free(e);
    mtp_reference("qwen35");
    mtp_reference("qwen35moe");
    mtp_reference("qwen3next");
}

// Prefix caching: requests sharing a system-prompt-like prefix reuse its full blocks, outputs stay
// identical to running alone, hits are reported per request, and blocks still all come back.
static void test_prefix_caching(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    enum { N = 32, PREFIX = 70 };
    static req ref[N], got[N];
    make_requests(ref, N, 77, 60, 20, 30);
    for (int i = 0; i < N; i++) {   // every prompt = a shared 70-token prefix + its own tail
        int tail = ref[i].n_prompt;
        memmove(ref[i].prompt + PREFIX, ref[i].prompt, (size_t)tail * sizeof(int32_t));
        for (int j = 0; j < PREFIX; j++) ref[i].prompt[j] = j == 0 ? 1 : 3 + (j * 37) % 500;
        ref[i].n_prompt = PREFIX + tail;
    }
    run_alone(ref, N, 0);
    for (int pass = 0; pass < 2; pass++) {   // pass 1: a pool small enough to evict cached blocks
        memcpy(got, ref, sizeof got);
        for (int i = 0; i < N; i++) got[i].n_out = 0;
        tv_engine *e = make_engine(16, pass ? 40 : 0, true, 8, 64, 0);
        tv_engine_stats st;
        drive(e, got, N, &st, NULL);
        check_same(ref, got, N, pass ? "prefix caching, small pool" : "prefix caching");
        print_message("prefix caching%s: %llu prompt tokens from the cache, %lld blocks cached at the end\n",
                      pass ? " (small pool)" : "", (unsigned long long)st.n_prefix_hit_tokens, (long long)st.n_blocks_cached);
        assert_true(st.n_prefix_hit_tokens >= (uint64_t)(N / 2) * 64);   // most requests reuse 4 blocks
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        tv_engine_free(e);
    }
    // one more request with the same prefix reports its cached tokens; with caching off, none
    for (int on = 0; on < 2; on++) {
        tv_engine_config c;
        config_default(&c);
        c.n_threads = 1;
        c.prefix_caching = on;
        tv_error err = {0};
        tv_engine *e = tv_engine_create(g_model, &c, &err);
        req a = ref[0], b = ref[1];
        a.arrive_step = 0;
        b.arrive_step = 1000;   // added after a finished
        a.n_out = b.n_out = 0;
        drive(e, &a, 1, NULL, NULL);
        add(e, &b);
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        assert_int_equal(no, 1);
        assert_int_equal(o[0].n_cached, on ? 64 : 0);
        while (tv_engine_has_work(e)) assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        tv_engine_free(e);
    }
}

// Batch invariance with quantized weights: the GEMM tiles that serve many tokens at once must give
// each (row, token) exactly what the one-token path gives. Synthetic models, every quantized type,
// two threads (row partitioning), against running each request alone.
static void test_batch_invariance_quantized(void **state) {
    (void)state;
    static const tv_synth_shape shape = {"inv", 256, 512, 2, 4, 2, 512, 512, 10000.0f, 1e-5f, false, false};
    const tv_type types[] = {TV_TYPE_Q8_0, TV_TYPE_Q4_0, TV_TYPE_Q4_K, TV_TYPE_Q6_K, TV_TYPE_F16, TV_TYPE_BF16};
    enum { N = 24 };
    static req ref[N], got[N];
    tv_model *saved = g_model;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        char path[512];
        snprintf(path, sizeof path, "%s/inv-%s.gguf", TV_BINARY_DIR, kern_type_name(types[ti]));
        tv_synth_params sp = {.type = types[ti], .seed = 5, .shape = &shape, .pure = true, .n_threads = 1};
        tv_error err = {0};
        if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
        g_model = load_model(path, &err);
        if (!g_model) fail_msg("%s", err.msg);
        make_requests(ref, N, 1000 + ti, 120, 16, 20);
        run_alone(ref, N, 0);
        memcpy(got, ref, sizeof got);
        for (int i = 0; i < N; i++) got[i].n_out = 0;
        tv_engine_config c;
        config_default(&c);
        c.n_threads = 2;
        c.max_num_seqs = 12;
        c.max_batched_tokens = 48;
        tv_engine *e = tv_engine_create(g_model, &c, &err);
        assert_non_null(e);
        tv_engine_limits lim;
        tv_engine_get_limits(e, &lim);
        assert_int_equal(lim.kv_bits, 16);   // a non-f32 model: f16 KV
        drive(e, got, N, NULL, NULL);
        check_same(ref, got, N, kern_type_name(types[ti]));
        tv_engine_free(e);
        tv_model_free(g_model);
        remove(path);
    }
    g_model = saved;
}

// Abort frees the request's blocks at once.
static void test_abort_frees_immediately(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    tv_engine *e = make_engine(16, 0, true, 4, 256, 0);
    req r;
    make_requests(&r, 1, 5, 100, 1, 0);
    r.n_prompt = 100;
    r.max_tokens = 200;
    uint64_t id = add(e, &r);
    tv_error err = {0};
    const tv_request_output *o;
    int no;
    assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    assert_true(st.n_blocks_free < st.n_blocks_total);
    assert_int_equal(tv_engine_abort(e, id), TV_OK);
    tv_engine_get_stats(e, &st);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
    assert_int_equal(no, 1);
    assert_int_equal(o[0].finish, TV_FINISH_ABORT);
    assert_false(tv_engine_has_work(e));
    tv_engine_free(e);
}

// A prompt that can never fit the context or the pool is rejected at add time with the numbers.
static void test_rejects_oversized(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    tv_engine *e = make_engine(16, 8, true, 4, 64, 0);   // pool: 128 tokens
    static int32_t prompt[600];
    for (int i = 0; i < 600; i++) prompt[i] = 1;
    tv_request_params p;
    tv_request_params_default(&p);
    p.prompt_ids = prompt;
    p.n_prompt = 600;   // > context 512
    tv_error err = {0};
    assert_int_equal(tv_engine_add_request(e, &p, NULL, &err), TV_ERR_RANGE);
    assert_non_null(strstr(err.msg, "600"));
    p.n_prompt = 200;   // fits the context, not the pool
    assert_int_equal(tv_engine_add_request(e, &p, NULL, &err), TV_ERR_RANGE);
    assert_non_null(strstr(err.msg, "200"));
    prompt[3] = 100000;  // out of vocabulary
    p.n_prompt = 10;
    assert_int_equal(tv_engine_add_request(e, &p, NULL, &err), TV_ERR_INVALID);
    assert_false(tv_engine_has_work(e));
    tv_engine_free(e);
}

// The limits an engine reports are the ones it enforces: the context capped by max_model_len and
// by the pool, max_num_seqs by the token budget, the KV element from the model's weight type.
static void test_limits(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    tv_engine *e = make_engine(16, 8, true, 4, 64, 0);   // pool: 128 tokens < the model's 512
    tv_engine_limits l;
    tv_engine_get_limits(e, &l);
    assert_int_equal(l.max_model_len, 128);
    assert_int_equal(l.block_size, 16);
    assert_int_equal(l.n_blocks, 8);
    assert_int_equal(l.max_num_seqs, 4);
    assert_int_equal(l.max_batched_tokens, 64);
    assert_int_equal(l.kv_bits, 32);   // stories260K is f32
    assert_int_equal(l.decode_steps, 1);
    tv_engine_free(e);

    tv_engine_config c;
    tv_engine_config_default(&c);
    c.n_threads = 1;
    c.max_model_len = 100;
    c.max_num_seqs = 64;
    c.max_batched_tokens = 16;
    tv_error err = {0};
    assert_non_null(e = tv_engine_create(g_model, &c, &err));
    tv_engine_get_limits(e, &l);
    assert_int_equal(l.max_model_len, 100);
    assert_int_equal(l.max_num_seqs, 16);
    static int32_t prompt[100];
    for (int i = 0; i < 100; i++) prompt[i] = 1;
    tv_request_params p;
    tv_request_params_default(&p);
    p.prompt_ids = prompt;
    p.n_prompt = (size_t)l.max_model_len - 1;   // room for one generated token: accepted
    assert_int_equal(tv_engine_add_request(e, &p, NULL, &err), TV_OK);
    p.n_prompt = (size_t)l.max_model_len;
    assert_int_equal(tv_engine_add_request(e, &p, NULL, &err), TV_ERR_RANGE);
    tv_engine_free(e);
}

// A model whose every layer attends within a sliding window (the stories model with kv_window set,
// as a family with one window for all its layers sets it): batched with a pool tight enough to
// preempt, the same greedy outputs as each request alone; a long generation holds only the
// window's blocks (the rest go back to the pool as they fall out); and the window bites (some
// outputs differ from global attention).
static void test_sliding_window_releases_blocks(void **state) {
    (void)state;
    SKIP_IF_NO_MODEL();
    tv_hparams *hp = (tv_hparams *)model_hparams(g_model);
    enum { N = 24, W = 40, BS = 16 };
    static req ref[N], got[N], glob[N];
    make_requests(ref, N, 99, 120, 120, 40);
    memcpy(glob, ref, sizeof glob);
    run_alone(glob, N, 0);
    hp->kv_window = W;
    run_alone(ref, N, 0);
    int n_differ = 0;
    for (int i = 0; i < N; i++)
        n_differ += ref[i].n_out != glob[i].n_out || memcmp(ref[i].out, glob[i].out, sizeof(int32_t) * ref[i].n_out);
    print_message("sliding window %d: %d of %d greedy outputs differ from global attention\n", W, n_differ, N);
    assert_true(n_differ > 0);
    memcpy(got, ref, sizeof got);
    for (int i = 0; i < N; i++) got[i].n_out = 0;
    tv_engine *e = make_engine(BS, 24, true, 8, 64, 0);   // 8 x 240 tokens need 120 blocks without the window
    tv_engine_stats st;
    drive(e, got, N, &st, NULL);
    check_same(ref, got, N, "sliding window, tight pool");
    print_message("sliding window, tight pool: %llu preemptions\n", (unsigned long long)st.n_preemptions);
    assert_true(st.n_preemptions > 0);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    tv_engine_free(e);

    // one 410-token generation: at most the window's blocks, the prompt chunk's and the next token's
    req r = {.n_prompt = 10, .max_tokens = 400};
    for (int j = 0; j < r.n_prompt; j++) r.prompt[j] = j ? 3 + 17 * j : 1;
    e = make_engine(BS, 30, true, 1, 64, 0);
    add(e, &r);
    int max_held = 0;
    tv_error err = {0};
    while (tv_engine_has_work(e)) {
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        tv_engine_get_stats(e, &st);
        const int held = (int)(st.n_blocks_total - st.n_blocks_free);
        if (held > max_held) max_held = held;
        for (int i = 0; i < no; i++) r.n_out += o[i].n_new;
    }
    assert_int_equal(r.n_out, 400);
    print_message("a 410-token generation held at most %d blocks of %d tokens (window %d)\n", max_held, BS, W);
    assert_true(max_held <= (W - 1 + BS - 1) / BS + 2);
    tv_engine_free(e);
    hp->kv_window = 0;
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_invariance_greedy),
        cmocka_unit_test(test_batch_invariance_f16_kv),
        cmocka_unit_test(test_seeded_sampling_batch_independent),
        cmocka_unit_test(test_seeds_differ),
        cmocka_unit_test(test_budget_and_chunked_prefill),
        cmocka_unit_test(test_no_leaks_10k),
        cmocka_unit_test(test_spec_greedy_lossless),
        cmocka_unit_test(test_spec_seeded_sampling_same_tokens),
        cmocka_unit_test(test_spec_no_leaks_10k),
        cmocka_unit_test(test_spec_self_draft_lossless),
        cmocka_unit_test(test_spec_self_draft_no_leaks_10k),
        cmocka_unit_test(test_spec_draft_model_lossless),
        cmocka_unit_test(test_spec_gated_lossless),
        cmocka_unit_test(test_spec_draft_model_matches_self_draft),
        cmocka_unit_test(test_spec_draft_model_no_leaks_10k),
        cmocka_unit_test(test_spec_draft_model_checks),
        cmocka_unit_test(test_spec_gated_no_draft_without_guesses),
        cmocka_unit_test(test_spec_mtp_lossless),
        cmocka_unit_test(test_spec_mtp_no_leaks_10k),
        cmocka_unit_test(test_spec_mtp_checks),
        cmocka_unit_test(test_prefix_caching),
        cmocka_unit_test(test_batch_invariance_quantized),
        cmocka_unit_test(test_abort_frees_immediately),
        cmocka_unit_test(test_rejects_oversized),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sliding_window_releases_blocks),   // last: it changes the shared model
    };
    // `test_engine mtp` runs the MTP layer's tests (ctest: test_engine_mtp, in parallel with the rest),
    // `test_engine PATTERN` the tests PATTERN matches, `test_engine` all the others
    if (argc > 1) cmocka_set_test_filter(strcmp(argv[1], "mtp") ? argv[1] : "test_spec_mtp*");
    else cmocka_set_skip_filter("test_spec_mtp*");
    return cmocka_run_group_tests(tests, setup, teardown);
}
