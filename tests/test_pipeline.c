// test_pipeline.c — pipeline parallelism without MPI: the model split into stages in one process,
// the engine's later stages driven through the same wire messages dist.c sends between ranks.
//   - tv_model_plan_stages: byte balance, --pp-split, too many stages
//   - a stage's model binds only its tensors; its KV cache holds only its layers
//   - 64 mixed requests with preemption, greedy: token-identical with 2 and 3 stages vs one model
//   - the 10,000-request KV leak test through the pipeline
//   - a failing later stage finishes the batch's requests with its error; the engine goes on
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "dist/wire.h"
#include "engine/pipeline.h"
#include "model/model.h"
#include "tinyvllm.h"
#include "test_util.h"
#include "util/rng.h"

#define MODEL "stories260K.gguf"
static char g_path[1200];
static tv_model *g_whole;

static int setup(void **state) {
    (void)state;
    snprintf(g_path, sizeof g_path, "%s/models/%s", shared_dir(), MODEL);
    return test_load_shared_model(MODEL, &g_whole);
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_whole);
    return 0;
}

static tv_model *load_range(int begin, int end) {
    tv_model_params p;
    tv_model_params_default(&p);
    p.cpu_path = test_cpu_path();
    p.layer_begin = begin;
    p.layer_end = end;
    tv_error err = {0};
    tv_model *m = tv_model_load(g_path, &p, &err);
    if (!m) fail_msg("load [%d, %d): %s", begin, end, err.msg);
    return m;
}

static void test_plan(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tv_error err = {0};
    int first[6];
    assert_int_equal(tv_model_plan_stages(g_path, 1, NULL, first, NULL, &err), TV_OK);
    assert_int_equal(first[0], 0);
    assert_int_equal(first[1], 5);
    // 5 equal layers, the embeddings on the first stage and the (separate) head on the last: the
    // middle stage of three takes the most layers
    assert_int_equal(tv_model_plan_stages(g_path, 3, NULL, first, NULL, &err), TV_OK);
    print_message("3 stages: [%d, %d) [%d, %d) [%d, %d)\n", first[0], first[1], first[1], first[2], first[2], first[3]);
    assert_true(first[0] == 0 && first[0] < first[1] && first[1] < first[2] && first[2] < first[3] && first[3] == 5);
    assert_true(first[2] - first[1] >= first[1] - first[0] && first[2] - first[1] >= first[3] - first[2]);
    const int split[] = {1, 4};
    uint64_t bytes[2], whole;
    assert_int_equal(tv_model_plan_stages(g_path, 2, split, first, bytes, &err), TV_OK);
    assert_int_equal(first[1], 1);
    assert_int_equal(tv_model_plan_stages(g_path, 1, NULL, first, &whole, &err), TV_OK);
    assert_true(bytes[0] + bytes[1] == whole && bytes[0] < bytes[1]);   // 1 layer + embeddings vs 4 + head
    const int bad[] = {1, 3};
    assert_int_equal(tv_model_plan_stages(g_path, 2, bad, first, NULL, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "add up to 4 layers, the model has 5"));
    assert_int_equal(tv_model_plan_stages(g_path, 6, NULL, first, NULL, &err), TV_ERR_RANGE);
}

static void test_stage_holds_its_share(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tv_model *a = load_range(0, 2), *b = load_range(2, 5);
    tv_model_info ia, ib, iw;
    tv_model_get_info(a, &ia);
    tv_model_get_info(b, &ib);
    tv_model_get_info(g_whole, &iw);
    assert_int_equal(ia.layer_begin, 0);
    assert_int_equal(ia.layer_end, 2);
    assert_int_equal(ib.layer_begin, 2);
    assert_int_equal(ib.layer_end, 5);
    assert_int_equal(iw.layer_end, 5);
    assert_null(model_output(a)->data);        // the head lives on the last stage
    assert_null(model_tok_embd(b)->data);      // the embeddings on the first
    assert_null(model_layers(a)[2].wq.data);   // and each stage only its layers
    assert_non_null(model_layers(b)[2].wq.data);
    assert_null(model_layers(b)[1].wq.data);
    // KV per token: 2 of 5 layers and 3 of 5
    assert_int_equal(ia.kv_bytes_per_token * 5, iw.kv_bytes_per_token * 2);
    assert_int_equal(ib.kv_bytes_per_token * 5, iw.kv_bytes_per_token * 3);
    // an engine runs the first stage only, with the later ones behind it
    tv_error err = {0};
    assert_null(tv_engine_create(a, NULL, &err));
    assert_non_null(strstr(err.msg, "later stages are missing"));
    assert_null(tv_engine_create(b, NULL, &err));
    tv_model_free(a);
    tv_model_free(b);
}

// ---- the later stages, in process ----

enum { MAX_STAGES = 4 };
typedef struct stage {
    tv_model *m;
    backend *be;
    tv_kv_cache *kv;
    tv_forward *fwd;
} stage;

typedef struct tpipe {
    stage st[MAX_STAGES];   // st[1..n_stages): the stages after the engine's
    int n_stages;
    tv_engine *e;           // the first stage's engine (its limits size the others)
    bool is_ready;
    void *msg;              // the wire message, as it would travel
    size_t msg_cap;
    const int32_t **tables;
    int fail_at_call;       // > 0: that call fails (1-based), as a dead rank would
    int n_calls;
} tpipe;

static tv_status pipe_ready(tpipe *p, tv_error *err) {
    if (p->is_ready) return TV_OK;
    tv_engine_limits lim;
    tv_engine_get_limits(p->e, &lim);
    const int max_logits = lim.max_num_seqs * (1 + lim.spec_tokens) < lim.max_batched_tokens
                               ? lim.max_num_seqs * (1 + lim.spec_tokens) : lim.max_batched_tokens;
    for (int i = 1; i < p->n_stages; i++) {
        stage *s = &p->st[i];
        if (!(s->be = backend_cpu_create(test_cpu_path(), 1, err)) ||
            !(s->kv = kv_cache_create(s->m, (int)lim.n_blocks, lim.block_size, lim.kv_bits == 32, err)) ||
            !(s->fwd = forward_create(s->m, lim.max_model_len, lim.max_batched_tokens, max_logits, s->be, err)))
            return err->code;
    }
    p->tables = malloc((size_t)lim.max_num_seqs * sizeof *p->tables);
    p->is_ready = true;
    return TV_OK;
}

static tv_status pipe_run(void *ctx, const tv_batch *b, const float *hidden, float **logits, tv_error *err) {
    tpipe *p = ctx;
    tv_status st = pipe_ready(p, err);
    if (st) return st;
    if (++p->n_calls == p->fail_at_call) return tv_error_set(err, TV_ERR_IO, "pipeline: rank 1 did not answer (test)");
    const int dim = model_hparams(p->st[1].m)->dim;
    tv_engine_limits lim;
    tv_engine_get_limits(p->e, &lim);
    const float *h = hidden;
    for (int i = 1; i < p->n_stages; i++) {
        const tv_batch *cur = b;
        size_t n = wire_size(cur, lim.block_size, dim);
        if (n > p->msg_cap) {
            free(p->msg);
            assert_non_null(p->msg = malloc(n));
            p->msg_cap = n;
        }
        wire_pack(p->msg, cur, lim.block_size, h, dim);
        wire_msg w;
        if ((st = wire_unpack(p->msg, n, dim, lim.max_num_seqs, p->tables, &w, err))) return st;
        assert_int_equal(w.kind, WIRE_STEP);
        float *out;
        if ((st = forward_run(p->st[i].fwd, p->st[i].kv, &w.b, &out, err))) return st;
        h = out;
        *logits = out;
    }
    return TV_OK;
}

static void pipe_close(void *ctx) {
    tpipe *p = ctx;
    for (int i = 1; i < p->n_stages; i++) {
        forward_free(p->st[i].fwd);
        kv_cache_free(p->st[i].kv);
        backend_free(p->st[i].be);
        tv_model_free(p->st[i].m);
    }
    free(p->msg);
    free(p->tables);
}

// An engine over n_stages stages cut at first[] (the in-process pipeline p), or over the whole model
// (n_stages 1).
static tv_engine *make_engine(tpipe *p, int n_stages, const int *first, int block_size, int64_t n_blocks, bool chunked,
                              int max_seqs, int budget) {
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.cpu_path = test_cpu_path();
    c.n_threads = 1;
    c.block_size = block_size;
    c.n_blocks = n_blocks;
    c.chunked_prefill = chunked;
    c.max_num_seqs = max_seqs;
    c.max_batched_tokens = budget;
    tv_error err = {0};
    memset(p, 0, sizeof *p);
    if (n_stages == 1) {
        p->e = tv_engine_create(g_whole, &c, &err);
        if (!p->e) fail_msg("engine: %s", err.msg);
        return p->e;
    }
    p->n_stages = n_stages;
    p->st[0].m = load_range(first[0], first[1]);
    for (int i = 1; i < n_stages; i++) p->st[i].m = load_range(first[i], first[i + 1]);
    engine_downstream down = {.run = pipe_run, .close = pipe_close, .ctx = p};
    p->e = engine_create_pipelined(p->st[0].m, &c, &down, &err);
    if (!p->e) fail_msg("engine: %s", err.msg);
    return p->e;
}

static void free_engine(tpipe *p) {
    tv_engine_free(p->e);
    if (p->n_stages) tv_model_free(p->st[0].m);
}

typedef struct req {
    int32_t prompt[200];
    int n_prompt, max_tokens, arrive_step;
    int32_t out[64];
    int n_out;
    tv_finish_reason finish;
} req;

static void drive(tv_engine *e, req *rs, int n, tv_engine_stats *st) {
    int step = 0, done = 0;
    tv_error err = {0};
    while (done < n) {
        for (int i = 0; i < n; i++) {
            if (rs[i].arrive_step != step) continue;
            tv_request_params p;
            tv_request_params_default(&p);
            p.prompt_ids = rs[i].prompt;
            p.n_prompt = (size_t)rs[i].n_prompt;
            p.max_tokens = rs[i].max_tokens;
            p.sampling.temperature = 0;
            p.ignore_eos = true;
            p.user = &rs[i];
            uint64_t id;
            if (tv_engine_add_request(e, &p, &id, &err)) fail_msg("add: %s", err.msg);
        }
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        for (int i = 0; i < no; i++) {
            req *r = o[i].user;
            for (int j = 0; j < o[i].n_new; j++) r->out[r->n_out++] = o[i].new_ids[j];
            if (o[i].finish) { r->finish = o[i].finish; done++; }
        }
        assert_true(++step < 100000);
    }
    tv_engine_get_stats(e, st);
}

static void make_requests(req *rs, int n) {
    uint64_t s = 42;
    for (int i = 0; i < n; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].n_prompt = 1 + (int)(rng_splitmix64(&s) % 200);
        rs[i].prompt[0] = 1;
        for (int j = 1; j < rs[i].n_prompt; j++) rs[i].prompt[j] = 3 + (int)(rng_splitmix64(&s) % 500);
        rs[i].max_tokens = 1 + (int)(rng_splitmix64(&s) % 40);
        rs[i].arrive_step = (int)(rng_splitmix64(&s) % 61);
    }
}

// 64 mixed requests (prompts 1..200 tokens, 1..40 new, arriving over 60 steps) in a KV pool tight
// enough to preempt, chunked prefill with prefix caching: each pipeline gives the single model's tokens.
static void test_pipelined_greedy_identical(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    enum { N = 64 };
    static req ref[N], got[N];
    make_requests(ref, N);
    tpipe p;
    tv_engine_stats st;
    drive(make_engine(&p, 1, NULL, 16, 40, true, 16, 64), ref, N, &st);
    free_engine(&p);
    assert_true(st.n_preemptions > 0);
    const int two[] = {0, 2, 5}, three[] = {0, 1, 3, 5};
    const struct { int n; const int *first; bool chunked; } cfgs[] = {{2, two, true}, {3, three, true}, {2, two, false}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        memcpy(got, ref, sizeof got);
        for (int i = 0; i < N; i++) got[i].n_out = 0;
        tv_engine *e = make_engine(&p, cfgs[c].n, cfgs[c].first, 16, 40, cfgs[c].chunked, 16, 64);
        drive(e, got, N, &st);
        print_message("%d stages%s: %llu steps, %llu preemptions, %llu prefix-cached tokens\n", cfgs[c].n,
                      cfgs[c].chunked ? "" : " (no chunking)", (unsigned long long)st.n_steps,
                      (unsigned long long)st.n_preemptions, (unsigned long long)st.n_prefix_hit_tokens);
        assert_true(st.n_preemptions > 0);
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        for (int i = 0; i < N; i++) {
            if (got[i].n_out != ref[i].n_out) fail_msg("%d stages: request %d: %d tokens vs %d", cfgs[c].n, i, got[i].n_out, ref[i].n_out);
            for (int j = 0; j < ref[i].n_out; j++)
                if (got[i].out[j] != ref[i].out[j])
                    fail_msg("%d stages: request %d token %d: %d vs %d in one model", cfgs[c].n, i, j, got[i].out[j], ref[i].out[j]);
        }
        free_engine(&p);
    }
}

// The engine's leak test through a 2-stage pipeline: 10,000 short requests, a quarter of steps abort one.
static void test_pipelined_no_leaks_10k(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tpipe p;
    const int first[] = {0, 3, 5};
    tv_engine *e = make_engine(&p, 2, first, 16, 64, true, 32, 256);
    uint64_t s = 99, live[64];
    int submitted = 0, finished = 0, aborted = 0, n_live = 0;
    int32_t prompt[20];
    tv_error err = {0};
    while (finished < 10000) {
        while (submitted < 10000 && n_live < 48) {
            tv_request_params rp;
            tv_request_params_default(&rp);
            int np = 1 + (int)(rng_splitmix64(&s) % 20);
            prompt[0] = 1;
            for (int j = 1; j < np; j++) prompt[j] = 3 + (int)(rng_splitmix64(&s) % 500);
            rp.prompt_ids = prompt;
            rp.n_prompt = (size_t)np;
            rp.max_tokens = 1 + (int)(rng_splitmix64(&s) % 4);
            rp.sampling.temperature = 0;
            assert_int_equal(tv_engine_add_request(e, &rp, &live[n_live++], &err), TV_OK);
            submitted++;
        }
        if (n_live && rng_splitmix64(&s) % 4 == 0) {
            int k = (int)(rng_splitmix64(&s) % (uint64_t)n_live);
            if (tv_engine_abort(e, live[k]) == TV_OK) aborted++;
        }
        const tv_request_output *o;
        int no;
        assert_int_equal(tv_engine_step(e, &o, &no, &err), TV_OK);
        for (int i = 0; i < no; i++) {
            if (!o[i].finish) continue;
            assert_int_not_equal(o[i].finish, TV_FINISH_ERROR);
            finished++;
            for (int k = 0; k < n_live; k++)
                if (live[k] == o[i].req_id) { live[k] = live[--n_live]; break; }
        }
    }
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    print_message("10000 requests through 2 stages (%d aborted), %llu steps, %llu preemptions\n", aborted,
                  (unsigned long long)st.n_steps, (unsigned long long)st.n_preemptions);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    assert_int_equal(st.n_running + st.n_waiting, 0);
    assert_true(aborted > 150);
    free_engine(&p);
}

// A later stage that fails (a dead or hung rank, as dist.c reports it) finishes the batch's requests
// with its message; the blocks come back and the next batch runs.
static void test_stage_failure_finishes_batch(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tpipe p;
    const int first[] = {0, 2, 5};
    tv_engine *e = make_engine(&p, 2, first, 16, 0, true, 8, 64);
    p.fail_at_call = 2;
    req rs[3];
    memset(rs, 0, sizeof rs);
    for (int i = 0; i < 3; i++) {
        rs[i].n_prompt = 5;
        for (int j = 0; j < 5; j++) rs[i].prompt[j] = 1 + 7 * j + i;
        rs[i].max_tokens = 8;
        rs[i].arrive_step = i == 2 ? 3 : 0;   // the third arrives after the failure
    }
    tv_engine_stats st;
    drive(e, rs, 3, &st);
    assert_int_equal(rs[0].finish, TV_FINISH_ERROR);
    assert_int_equal(rs[1].finish, TV_FINISH_ERROR);
    assert_int_equal(rs[2].finish, TV_FINISH_LENGTH);
    assert_int_equal(rs[2].n_out, 8);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    free_engine(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_stage_holds_its_share),
        cmocka_unit_test(test_pipelined_greedy_identical),
        cmocka_unit_test(test_pipelined_no_leaks_10k),
        cmocka_unit_test(test_stage_failure_finishes_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
