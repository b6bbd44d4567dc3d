// test_engine_faults.c — errors, not aborts, on the request path: an allocation made to fail at
// every point a workload reaches (adds, scheduling, the forward pass's workspace, sampling,
// detokenizing, stop strings, outputs), with several requests in flight, plain and multi-step
// decoding. Each time: the engine survives, the requests hit finish with TV_FINISH_ERROR (or are
// refused at add time) and what they reported is a prefix of the clean run, the others match the
// clean run exactly, every KV block comes back, and the same workload then runs clean on the same
// engine. Model: stories260K.gguf (with its tokenizer) from ../shared.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tinyvllm.h"
#include "test_util.h"
#include "util/alloc.h"

#define N_REQ 5
#define MAX_OUT 64

static tv_model *g_model;

typedef struct result {
    tv_status add_status;          // TV_OK, or why the add was refused
    uint64_t id;
    int32_t toks[MAX_OUT];
    int n_toks;
    char text[2048];
    size_t text_len;
    tv_finish_reason finish;
    tv_status error;               // finish ERROR: its code
} result;

static int setup(void **state) {
    (void)state;
    return test_load_shared_model("stories260K.gguf", &g_model);
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_model);
    return 0;
}


static tv_engine *make_engine(int decode_steps, int spec_tokens) {
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.n_threads = 1;
    c.max_num_seqs = 4;          // 5 requests: one waits, so admission happens mid-run too
    c.max_batched_tokens = 32;   // prompts are chunked
    c.decode_steps = decode_steps;
    c.spec = spec_tokens ? TV_SPEC_NGRAM : TV_SPEC_NONE;
    c.spec_tokens = spec_tokens;
    c.spec_always = true;   // every round speculates: its allocation points are the same every run
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &c, &err);
    if (!e) fail_msg("engine: %s", err.msg);
    return e;
}

static void add(tv_engine *e, int i, result *r) {
    static const char *prompts[N_REQ] = {"Once upon a time", "The little dog", "Lily and Ben went to the park",
                                         "One day, a big", "Tom had a red ball"};
    static const char *stops[] = {"park", "."};
    tv_request_params p;
    tv_request_params_default(&p);
    p.prompt_text = prompts[i];
    p.max_tokens = 20 + 5 * i;
    p.sampling.temperature = i == 3 ? 0.8f : 0.0f;   // one seeded sampler
    p.sampling.seed = 1234;
    p.sampling.has_seed = true;
    p.sampling.logprobs = i == 1 ? 3 : -1;
    if (i == 2) { p.stop = stops; p.n_stop = 2; }
    memset(r, 0, sizeof *r);
    tv_error err = {0};
    r->add_status = tv_engine_add_request(e, &p, &r->id, &err);
}

// Runs the workload: requests 0-2 at once, 3-4 after two steps. Returns when all are done.
static void run_workload(tv_engine *e, result res[N_REQ]) {
    for (int i = 0; i < 3; i++) add(e, i, &res[i]);
    for (int step = 0; step < 10000; step++) {
        if (step == 2) for (int i = 3; i < N_REQ; i++) add(e, i, &res[i]);
        if (step > 2 && !tv_engine_has_work(e)) return;
        const tv_request_output *outs;
        int n_outs;
        tv_error err = {0};
        assert_int_equal(tv_engine_step(e, &outs, &n_outs, &err), TV_OK);
        for (int k = 0; k < n_outs; k++) {
            const tv_request_output *o = &outs[k];
            result *r = NULL;
            for (int i = 0; i < N_REQ; i++)
                if (res[i].add_status == TV_OK && res[i].id == o->req_id) r = &res[i];
            assert_non_null(r);
            assert_int_equal(r->finish, TV_FINISH_NONE);   // nothing after the finish
            for (int j = 0; j < o->n_new; j++) {
                assert_true(r->n_toks < MAX_OUT);
                r->toks[r->n_toks++] = o->new_ids[j];
            }
            assert_true(r->text_len + o->text_len < sizeof r->text);
            memcpy(r->text + r->text_len, o->text, o->text_len);
            r->text_len += o->text_len;
            r->finish = o->finish;
            if (o->finish == TV_FINISH_ERROR) {
                assert_non_null(o->error);
                assert_int_equal(o->n_new, 0);
                assert_true(o->error->msg[0] != '\0');
                r->error = o->error->code;
            } else {
                assert_null(o->error);
            }
        }
    }
    fail_msg("the workload did not finish");
}

static void assert_all_blocks_free(tv_engine *e) {
    const tv_request_output *outs;
    int n_outs;
    assert_int_equal(tv_engine_step(e, &outs, &n_outs, NULL), TV_OK);   // frees last step's finished
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    assert_int_equal(st.n_running + st.n_waiting, 0);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
}

static void assert_same(const result *a, const result *b) {
    assert_int_equal(a->add_status, b->add_status);
    assert_int_equal(a->finish, b->finish);
    assert_int_equal(a->n_toks, b->n_toks);
    assert_memory_equal(a->toks, b->toks, (size_t)a->n_toks * sizeof(int32_t));
    assert_int_equal(a->text_len, b->text_len);
    assert_memory_equal(a->text, b->text, a->text_len);
}

// Fails the n_ok-th allocation (counted from the first add) for every n_ok the workload reaches.
static void fail_every_point(int decode_steps, int spec_tokens) {
    result clean[N_REQ], got[N_REQ];
    tv_engine *e = make_engine(decode_steps, spec_tokens);
    unsigned long a0 = mem_n_allocs();
    run_workload(e, clean);
    const long n_points = (long)(mem_n_allocs() - a0);
    assert_all_blocks_free(e);
    tv_engine_free(e);
    int n_finished_clean = 0;
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(clean[i].add_status, TV_OK);
        assert_true(clean[i].finish == TV_FINISH_STOP || clean[i].finish == TV_FINISH_LENGTH);
        n_finished_clean += clean[i].n_toks > 0;
    }
    assert_int_equal(n_finished_clean, N_REQ);
    assert_true(n_points > 20);

    int n_errors = 0, n_refused = 0;
    for (long k = 0; k < n_points; k++) {
        e = make_engine(decode_steps, spec_tokens);   // a fresh one: its first forward pass grows the attention workspace
        mem_fault_inject(k, 1);
        run_workload(e, got);
        mem_fault_clear();
        int n_hit = 0;
        for (int i = 0; i < N_REQ; i++) {
            if (got[i].add_status != TV_OK) {
                assert_int_equal(got[i].add_status, TV_ERR_NOMEM);
                n_refused++, n_hit++;
            } else if (got[i].finish == TV_FINISH_ERROR) {
                assert_int_equal(got[i].error, TV_ERR_NOMEM);
                // what it reported is the clean run's beginning
                assert_true(got[i].n_toks <= clean[i].n_toks);
                assert_memory_equal(got[i].toks, clean[i].toks, (size_t)got[i].n_toks * sizeof(int32_t));
                assert_true(got[i].text_len <= clean[i].text_len);
                assert_memory_equal(got[i].text, clean[i].text, got[i].text_len);
                n_errors++, n_hit++;
            } else {
                assert_same(&got[i], &clean[i]);
            }
        }
        if (n_hit == 0) fail_msg("allocation %ld failed and no request noticed", k);
        assert_all_blocks_free(e);
        run_workload(e, got);   // the engine serves the next requests as if nothing happened
        for (int i = 0; i < N_REQ; i++) assert_same(&got[i], &clean[i]);
        assert_all_blocks_free(e);
        tv_engine_free(e);
    }
    print_message("decode_steps %d, speculating %d: %ld allocation points, %d requests finished with an error, %d refused\n",
                  decode_steps, spec_tokens, n_points, n_errors, n_refused);
    assert_true(n_errors > 0);
}

static void test_fail_each_allocation(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    fail_every_point(1, 0);
}

static void test_fail_each_allocation_multistep(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    fail_every_point(4, 0);
}

// Speculative decoding: a failure in the middle of a verification item (its second accepted token,
// say) finishes the request with what it appended before, a prefix of the clean run.
static void test_fail_each_allocation_spec(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    fail_every_point(1, 4);
}

// Every allocation fails for a while: everything in flight finishes with the error (whole batches
// included), nothing aborts, and once memory is back the engine runs the workload clean.
static void test_out_of_memory_for_a_while(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    result clean[N_REQ], got[N_REQ];
    tv_engine *e = make_engine(1, 0);
    run_workload(e, clean);
    assert_all_blocks_free(e);
    tv_engine_free(e);

    e = make_engine(1, 0);
    for (int i = 0; i < 3; i++) add(e, i, &got[i]);
    mem_fault_inject(0, -1);
    int n_err = 0;
    for (int step = 0; step < 50 && tv_engine_has_work(e); step++) {
        const tv_request_output *outs;
        int n_outs;
        assert_int_equal(tv_engine_step(e, &outs, &n_outs, NULL), TV_OK);
        for (int k = 0; k < n_outs; k++) n_err += outs[k].finish == TV_FINISH_ERROR;
    }
    mem_fault_clear();
    assert_int_equal(n_err, 3);   // the first forward pass (workspace growth) fails the whole batch
    assert_false(tv_engine_has_work(e));
    assert_all_blocks_free(e);
    run_workload(e, got);
    for (int i = 0; i < N_REQ; i++) assert_same(&got[i], &clean[i]);
    assert_all_blocks_free(e);
    tv_engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_each_allocation),
        cmocka_unit_test(test_fail_each_allocation_multistep),
        cmocka_unit_test(test_fail_each_allocation_spec),
        cmocka_unit_test(test_out_of_memory_for_a_while),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
