// test_spec.c — speculative decoding: the n-gram proposer (longest suffix n-gram, most recent
// occurrence, patterns continued past the sequence's end, nothing without a match) and, end to
// end on stories260K.gguf with its tokenizer, every output of a request the same with speculation
// on and off: tokens, text with stop strings, logprobs and top alternatives bit for bit, finish
// reasons, greedy and seeded sampling, with penalties; and the engine's spec counters (fewer
// rounds; proposals kept short after rejections by the adaptive k).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/spec.h"
#include "tinyvllm.h"
#include "test_util.h"

static tv_model *g_model;

static int setup(void **state) {
    (void)state;
    return test_load_shared_model("stories260K.gguf", &g_model);
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_model);
    return 0;
}

static void expect_proposal(const int32_t *toks, int n, int k, const int32_t *want, int n_want) {
    int32_t out[TV_SPEC_MAX_TOKENS];
    memset(out, 0xff, sizeof out);
    int got = spec_ngram_propose(toks, n, k, out);
    if (got != n_want) fail_msg("proposed %d tokens, want %d", got, n_want);
    for (int j = 0; j < n_want; j++)
        if (out[j] != want[j]) fail_msg("proposal token %d: %d, want %d", j, out[j], want[j]);
}

static void test_ngram_proposer(void **state) {
    (void)state;
    // suffix "1 2" occurred at 0: propose what followed
    const int32_t a[] = {1, 2, 3, 4, 5, 9, 1, 2};
    expect_proposal(a, 8, 3, (const int32_t[]){3, 4, 5}, 3);
    // the continuation runs into the suffix: the pattern goes on (1 2 3 1 2 | 3 1 2 3)
    const int32_t b[] = {7, 1, 2, 3, 1, 2};
    expect_proposal(b, 6, 4, (const int32_t[]){3, 1, 2, 3}, 4);
    // a run of one token continues as that token
    const int32_t c[] = {5, 5, 5};
    expect_proposal(c, 3, 4, (const int32_t[]){5, 5, 5, 5}, 4);
    // the longest suffix that occurred wins over a more recent shorter one:
    // "8 1 2" at 0 (-> 30) beats "1 2" at 4 (-> 40)
    const int32_t d[] = {8, 1, 2, 30, 1, 2, 40, 8, 1, 2};
    expect_proposal(d, 10, 1, (const int32_t[]){30}, 1);
    // of equal length, the most recent occurrence: "1 2" at 3 (-> 60), not at 0 (-> 50)
    const int32_t e[] = {1, 2, 50, 1, 2, 60, 7, 1, 2};
    expect_proposal(e, 9, 2, (const int32_t[]){60, 7}, 2);
    // no bigram of the suffix occurred before (a single repeated token is not enough: SPEC_NGRAM_MIN 2)
    const int32_t f[] = {1, 2, 3, 4, 2};
    expect_proposal(f, 5, 4, NULL, 0);
    expect_proposal(a, 1, 4, NULL, 0);
    expect_proposal(a, 8, 0, NULL, 0);
    // SPEC_NGRAM_MAX bounds the match: a 6-token repeat matches as a 4-gram, the most recent one
    const int32_t g[] = {1, 2, 3, 4, 5, 6, 70, 3, 4, 5, 6, 71, 1, 2, 3, 4, 5, 6};
    expect_proposal(g, 18, 1, (const int32_t[]){71}, 1);
}

#define N_REQ 6
#define MAX_OUT 200

typedef struct result {
    uint64_t id;
    int32_t toks[MAX_OUT];
    tv_logprob lp[MAX_OUT];
    tv_logprob top[MAX_OUT][3];
    int n_toks;
    char text[4096];
    size_t text_len;
    tv_finish_reason finish;
} result;

// Runs N_REQ requests (stop strings, logprobs with 3 alternatives, greedy and seeded sampling, a
// repetition penalty, different lengths) through one engine; fills res, returns the engine's stats.
static void run(int spec_tokens, result res[N_REQ], tv_engine_stats *st) {
    static const char *prompts[N_REQ] = {"Once upon a time", "The little dog", "Lily and Ben went to the park",
                                         "One day, a big", "Tom had a red ball", "Once upon a time"};
    static const char *stops[] = {"park.", "happy"};
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.n_threads = 1;
    c.cpu_path = test_cpu_path();
    c.max_num_seqs = 4;
    c.max_batched_tokens = 32;
    c.spec = spec_tokens ? TV_SPEC_NGRAM : TV_SPEC_NONE;
    c.spec_tokens = spec_tokens;
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("engine: %s", err.msg);
    memset(res, 0, N_REQ * sizeof *res);
    for (int i = 0; i < N_REQ; i++) {
        tv_request_params p;
        tv_request_params_default(&p);
        p.prompt_text = prompts[i];
        p.max_tokens = 60 + 25 * i;
        p.sampling.temperature = i >= 3 ? 0.9f : 0.0f;
        p.sampling.seed = 77 + (uint64_t)i;
        p.sampling.has_seed = true;
        p.sampling.logprobs = 3;
        if (i == 4) p.sampling.repetition_penalty = 1.3f;
        if (i == 2 || i == 5) { p.stop = stops; p.n_stop = 2; }
        if (tv_engine_add_request(e, &p, &res[i].id, &err)) fail_msg("add: %s", err.msg);
    }
    for (int step = 0; tv_engine_has_work(e); step++) {
        assert_true(step < 10000);
        const tv_request_output *o;
        int n;
        assert_int_equal(tv_engine_step(e, &o, &n, &err), TV_OK);
        for (int k = 0; k < n; k++) {
            result *r = NULL;
            for (int i = 0; i < N_REQ; i++)
                if (res[i].id == o[k].req_id) r = &res[i];
            assert_non_null(r);
            assert_int_equal(r->finish, TV_FINISH_NONE);
            assert_int_equal(o[k].n_top, 3);
            for (int j = 0; j < o[k].n_new; j++) {
                assert_true(r->n_toks < MAX_OUT);
                r->toks[r->n_toks] = o[k].new_ids[j];
                r->lp[r->n_toks] = o[k].logprobs[j];
                memcpy(r->top[r->n_toks], o[k].top_logprobs + 3 * j, sizeof r->top[0]);
                r->n_toks++;
            }
            assert_int_equal(o[k].n_generated, r->n_toks);
            assert_true(r->text_len + o[k].text_len < sizeof r->text);
            memcpy(r->text + r->text_len, o[k].text, o[k].text_len);
            r->text_len += o[k].text_len;
            r->finish = o[k].finish;
        }
    }
    tv_engine_get_stats(e, st);
    assert_int_equal(st->n_blocks_free, st->n_blocks_total);
    tv_engine_free(e);
}

static void test_outputs_same_with_speculation(void **state) {
    (void)state;
    SKIP_IF_NO(g_model, "stories260K.gguf");
    static result plain[N_REQ], spec[N_REQ];
    tv_engine_stats st0, st;
    run(0, plain, &st0);
    assert_int_equal(st0.n_spec_drafts, 0);
    int n_stopped = 0;
    for (int k = 2; k <= 8; k += 3) {
        run(k, spec, &st);
        for (int i = 0; i < N_REQ; i++) {
            const result *a = &plain[i], *b = &spec[i];
            if (a->n_toks != b->n_toks) fail_msg("k %d request %d: %d tokens, %d without speculation", k, i, b->n_toks, a->n_toks);
            assert_memory_equal(a->toks, b->toks, (size_t)a->n_toks * sizeof a->toks[0]);
            assert_memory_equal(a->lp, b->lp, (size_t)a->n_toks * sizeof a->lp[0]);
            assert_memory_equal(a->top, b->top, (size_t)a->n_toks * sizeof a->top[0]);
            assert_int_equal(a->text_len, b->text_len);
            assert_memory_equal(a->text, b->text, a->text_len);
            assert_int_equal(a->finish, b->finish);
            n_stopped += k == 2 && a->finish == TV_FINISH_STOP;
        }
        print_message("k %d: %llu verifications, %llu of %llu proposed tokens accepted; %llu rounds (%llu without)\n", k,
                      (unsigned long long)st.n_spec_drafts, (unsigned long long)st.n_spec_accepted_tokens,
                      (unsigned long long)st.n_spec_draft_tokens, (unsigned long long)st.n_steps,
                      (unsigned long long)st0.n_steps);
        assert_true(st.n_spec_accepted_tokens > 0 && st.n_spec_accepted_tokens < st.n_spec_draft_tokens);
        assert_true(st.n_steps < st0.n_steps);   // accepted guesses save rounds
        // adaptive k: after a rejection a sequence proposes its accepted run + 1, not k again
        if (k == 8) assert_true(st.n_spec_draft_tokens < 4 * st.n_spec_drafts);
        assert_int_equal(st.n_generated_tokens, st0.n_generated_tokens);
    }
    assert_true(n_stopped >= 1);   // a stop string (or EOS) ended some request
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ngram_proposer),
        cmocka_unit_test(test_outputs_same_with_speculation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
