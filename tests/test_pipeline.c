// test_pipeline.c — pipeline parallelism without MPI: the model split into stages in one process,
// the engine's later stages (stage.c) driven through the same wire messages dist.c sends between
// ranks, with micro-batches: up to n_stages batches in flight, each run through the later stages
// only when it is collected (so stage 0 computes batch k + 1 before the others see batch k, the
// order MPI ranks run them in).
//   - tv_model_plan_stages: byte balance, --pp-split, too many stages
//   - a stage's model binds only its tensors; its KV cache holds only its layers
//   - 64 mixed requests with preemption, greedy: token-identical with 2 and 3 stages vs one model
//   - seeded sampling with top-k, logprobs and penalties (sampled on the last stage or, with
//     penalties, on the first): the tokens and logprobs of one model
//   - the 10,000-request KV leak test through the pipeline, aborts of batches in flight included
//   - a failing later stage finishes the batch's requests with its error; the engine goes on
//   - a malformed batch: the stage that fails it passes the failure on, the reply carries it
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dist/stage.h"
#include "dist/wire.h"
#include "engine/pipeline.h"
#include "model/model.h"
#include "tinyvllm.h"
#include "test_util.h"
#include "engine_driver.h"
#include "kernels/kernels.h"
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
typedef struct tpipe {
    tv_model *m[MAX_STAGES];   // m[0]: the engine's layers, m[1..n_stages): the later stages'
    stage *st[MAX_STAGES];     // [1..n_stages)
    int n_stages;
    tv_engine *e;              // the first stage's engine (its limits size the others)
    bool is_ready;
    // the batches in flight, oldest at q_head: their messages as they would travel, and their rows
    void *q[MAX_STAGES];
    size_t q_len[MAX_STAGES], q_cap[MAX_STAGES];
    pipe_row *q_rows[MAX_STAGES];
    int q_n_rows[MAX_STAGES];
    int32_t q_round[MAX_STAGES];
    int q_head, q_n;
    int32_t next_round;
    void *reply;               // the last reply (collect's outs point into it)
    size_t reply_cap;
    int fail_at_collect;       // > 0: that collect fails (1-based), as a dead rank would
    int n_collects;
    int corrupt_at_submit;     // > 0: that submit's message gets a block table that does not fit
    int n_submits;
    int hidden_bits;           // the hidden state on the wire: 32 (f32) or 16 (f16)
    int max_in_flight;         // the most batches in flight at once
    int n_rows_sampled, n_rows_logits;   // logits rows sampled on the last stage, sent back as logits
} tpipe;

static tv_status pipe_ready(tpipe *p, tv_error *err) {
    if (p->is_ready) return TV_OK;
    stage_geometry g;
    stage_geometry_of(p->e, &g);
    for (int i = 1; i < p->n_stages; i++)
        if (!(p->st[i] = stage_create(p->m[i], &g, i, test_cpu_path(), 1, err))) return err->code;
    for (int i = 0; i < p->n_stages; i++) assert_non_null(p->q_rows[i] = malloc((size_t)g.max_logits * sizeof(pipe_row)));
    p->is_ready = true;
    return TV_OK;
}

static tv_status pipe_submit(void *ctx, const tv_batch *b, const float *hidden, const pipe_row *rows, tv_error *err) {
    tpipe *p = ctx;
    tv_status st = pipe_ready(p, err);
    if (st) return st;
    assert_true(p->q_n < p->n_stages);   // the engine keeps at most depth in flight
    const int k = (p->q_head + p->q_n) % p->n_stages;
    tv_engine_limits lim;
    tv_engine_get_limits(p->e, &lim);
    const int dim = model_hparams(p->m[0])->dim;
    const size_t n = wire_size(b, lim.block_size, dim, p->hidden_bits);
    if (n > p->q_cap[k]) {
        free(p->q[k]);
        assert_non_null(p->q[k] = malloc(n));
        p->q_cap[k] = n;
    }
    wire_pack(p->q[k], p->next_round, b, lim.block_size, rows, hidden, dim, p->hidden_bits);
    if (++p->n_submits == p->corrupt_at_submit) ((int32_t *)p->q[k])[5] += 1;   // n_table: one id more than the tables hold
    memcpy(p->q_rows[k], rows, (size_t)b->n_logits * sizeof *rows);
    p->q_len[k] = n;
    p->q_n_rows[k] = b->n_logits;
    p->q_round[k] = p->next_round++;
    if (++p->q_n > p->max_in_flight) p->max_in_flight = p->q_n;
    for (int r = 0; r < b->n_logits; r++) {
        p->n_rows_sampled += rows[r].mode == PIPE_ROW_SAMPLE;
        p->n_rows_logits += rows[r].mode == PIPE_ROW_LOGITS;
    }
    return TV_OK;
}

static tv_status pipe_collect(void *ctx, pipe_out *outs, tv_error *err) {
    tpipe *p = ctx;
    assert_true(p->q_n > 0);
    const int k = p->q_head;
    p->q_head = (p->q_head + 1) % p->n_stages;
    p->q_n--;
    if (++p->n_collects == p->fail_at_collect) return tv_error_set(err, TV_ERR_IO, "pipeline: rank 1 did not answer (test)");
    const void *msg = p->q[k];
    size_t n = p->q_len[k];
    for (int i = 1; i < p->n_stages; i++) {
        const void *out;
        size_t n_out;
        assert_int_not_equal(stage_handle(p->st[i], msg, n, &out, &n_out), WIRE_STOP);
        msg = out;
        n = n_out;
    }
    if (n > p->reply_cap) {
        free(p->reply);
        assert_non_null(p->reply = malloc(n));
        p->reply_cap = n;
    }
    memcpy(p->reply, msg, n);
    return wire_reply_unpack(p->reply, n, p->q_round[k], p->q_rows[k], p->q_n_rows[k], model_hparams(p->m[0])->n_vocab,
                             outs, err);
}

static void pipe_close(void *ctx) {
    tpipe *p = ctx;
    for (int i = 0; i < MAX_STAGES; i++) {
        if (i) {
            stage_free(p->st[i]);
            tv_model_free(p->m[i]);
        }
        free(p->q[i]);
        free(p->q_rows[i]);
    }
    free(p->reply);
}

// An engine over n_stages stages cut at first[] (the in-process pipeline p, n_stages batches in
// flight), or over the whole model (n_stages 1); spec_tokens > 0: n-gram speculation.
static tv_engine *make_engine_spec(tpipe *p, int n_stages, const int *first, int block_size, int64_t n_blocks,
                                   bool chunked, int max_seqs, int budget, int spec_tokens) {
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.cpu_path = test_cpu_path();
    c.n_threads = 1;
    c.block_size = block_size;
    c.n_blocks = n_blocks;
    c.chunked_prefill = chunked;
    c.max_num_seqs = max_seqs;
    c.max_batched_tokens = budget;
    c.spec = spec_tokens ? TV_SPEC_NGRAM : TV_SPEC_NONE;
    c.spec_tokens = spec_tokens;
    tv_error err = {0};
    memset(p, 0, sizeof *p);
    p->hidden_bits = 32;
    if (n_stages == 1) {
        p->e = tv_engine_create(g_whole, &c, &err);
        if (!p->e) fail_msg("engine: %s", err.msg);
        return p->e;
    }
    p->n_stages = n_stages;
    for (int i = 0; i < n_stages; i++) p->m[i] = load_range(first[i], first[i + 1]);
    engine_downstream down = {.depth = n_stages, .submit = pipe_submit, .collect = pipe_collect, .close = pipe_close, .ctx = p};
    p->e = engine_create_pipelined(p->m[0], &c, &down, &err);
    if (!p->e) fail_msg("engine: %s", err.msg);
    return p->e;
}

static tv_engine *make_engine(tpipe *p, int n_stages, const int *first, int block_size, int64_t n_blocks, bool chunked,
                              int max_seqs, int budget) {
    return make_engine_spec(p, n_stages, first, block_size, n_blocks, chunked, max_seqs, budget, 0);
}

static void free_engine(tpipe *p) {
    tv_engine_free(p->e);
    if (p->n_stages) tv_model_free(p->m[0]);
}

static const int k_two[] = {0, 2, 5}, k_three[] = {0, 1, 3, 5};

// Runs reqs (n; outputs reset) on one model and on 2 and 3 stages (chunked prefill, and not; with
// n-gram speculation, whose verification rows come back as logits), and checks the pipelines give
// one model's tokens and logprobs; with preemption in every run and as many batches in flight as
// stages. *n_sampled / *n_logits: rows sampled on the last stage / sent back as logits.
static void pipelines_match(req *ref, req *got, int n, int n_blocks, int *n_sampled, int *n_logits) {
    tpipe p;
    tv_engine_stats st;
    drive(make_engine(&p, 1, NULL, 16, n_blocks, true, 16, 64), ref, n, &st, NULL);
    free_engine(&p);
    assert_true(st.n_preemptions > 0);
    const struct { int n; const int *first; bool chunked; int spec; } cfgs[] = {
        {2, k_two, true, 0}, {3, k_three, true, 0}, {2, k_two, false, 0}, {3, k_three, true, 4}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        memcpy(got, ref, (size_t)n * sizeof *got);
        for (int i = 0; i < n; i++) got[i].n_out = 0;
        drive(make_engine_spec(&p, cfgs[c].n, cfgs[c].first, 16, n_blocks, cfgs[c].chunked, 16, 64, cfgs[c].spec), got, n,
              &st, NULL);
        char what[64];
        snprintf(what, sizeof what, "%d stages%s%s", cfgs[c].n, cfgs[c].chunked ? "" : " (no chunking)",
                 cfgs[c].spec ? " (n-gram speculation)" : "");
        print_message("%s: %llu rounds, %llu preemptions, %llu prefix-cached tokens\n", what, (unsigned long long)st.n_steps,
                      (unsigned long long)st.n_preemptions, (unsigned long long)st.n_prefix_hit_tokens);
        assert_true(st.n_preemptions > 0);
        assert_int_equal(st.n_blocks_free, st.n_blocks_total);
        assert_int_equal(p.max_in_flight, cfgs[c].n);
        check_same(ref, got, n, what);
        *n_sampled += p.n_rows_sampled;
        *n_logits += p.n_rows_logits;
        free_engine(&p);
    }
}

// 64 mixed requests (prompts 1..200 tokens, 1..40 new, arriving over 60 steps) in a KV pool tight
// enough to preempt, chunked prefill with prefix caching: each pipeline gives the single model's tokens.
static void test_pipelined_greedy_identical(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    enum { N = 64 };
    static req ref[N], got[N];
    make_requests(ref, N, 42, 200, 40, 60);
    int n_sampled = 0, n_logits = 0;
    pipelines_match(ref, got, N, 40, &n_sampled, &n_logits);
    print_message("%d rows sampled on the last stage, %d sent back as logits (verification rows)\n", n_sampled, n_logits);
    assert_true(n_sampled > 0 && n_logits > 0);
}

// Seeded sampling: plain samplers (temperature, top-k; logprobs with alternatives) are sampled on
// the last stage from the draw the engine takes from each request's RNG, samplers with a penalty on
// rank 0 from the logits rows: every token and logprob is one model's.
static void test_pipelined_sampling_identical(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    enum { N = 48 };
    static req ref[N], got[N];
    make_requests(ref, N, 7, 120, 30, 40);
    for (int i = 0; i < N; i++) {
        ref[i].temperature = i % 4 == 0 ? 0.0f : 0.7f + 0.1f * (float)(i % 5);
        ref[i].top_k = i % 3 == 0 ? 20 : 0;
        ref[i].presence_penalty = i % 5 == 0 ? 0.5f : 0.0f;
        ref[i].want_logprobs = i % 2 == 0;
        ref[i].top_logprobs = i % 4 == 2 ? 3 : 0;
    }
    int n_sampled = 0, n_logits = 0;
    pipelines_match(ref, got, N, 30, &n_sampled, &n_logits);
    print_message("%d rows sampled on the last stage, %d sent back as logits (penalties, verification rows)\n", n_sampled,
                  n_logits);
    assert_true(n_sampled > 0 && n_logits > 0);
}

// The engine's leak test through a 2-stage pipeline: 10,000 short requests, a quarter of steps
// abort one (often one whose batch is in flight).
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
    print_message("10000 requests through 2 stages (%d aborted), %llu rounds, %llu preemptions\n", aborted,
                  (unsigned long long)st.n_steps, (unsigned long long)st.n_preemptions);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    assert_int_equal(st.n_running + st.n_waiting, 0);
    assert_false(tv_engine_has_work(e));
    assert_true(aborted > 150);
    free_engine(&p);
}

// The f16 wire: a batch round-trips with its hidden state rounded to half precision (exactly what
// f32_to_f16 gives), in half the hidden-state bytes; a header that is neither 32 nor 16 bits fails.
static void test_wire_f16_round_trip(void **state) {
    (void)state;
    enum { T = 3, DIM = 5, BS = 4 };
    const int32_t tokens[T] = {1, 7, 9}, pos[T] = {0, 4, 5}, q_start[3] = {0, 1, 3}, ctx[2] = {1, 6}, rows_at[2] = {0, 2};
    const int32_t t0[1] = {3}, t1[2] = {8, 2};
    const int32_t *tables[2] = {t0, t1};
    tv_batch b = {.n_tokens = T, .tokens = tokens, .positions = pos, .n_seqs = 2, .q_start = q_start, .ctx_len = ctx,
                  .block_tables = tables, .n_logits = 2, .logit_rows = rows_at};
    float hidden[T * DIM];
    for (int i = 0; i < T * DIM; i++) hidden[i] = (float)(i - 7) * 0.3141592f + 1e-3f;
    pipe_row rows[2] = {{.mode = PIPE_ROW_LOGITS, .n_top = -1}, {.mode = PIPE_ROW_SAMPLE, .n_top = 2, .plain = {.temperature = 0.5f, .u = 0.25}}};
    const size_t n32 = wire_size(&b, BS, DIM, 32), n16 = wire_size(&b, BS, DIM, 16);
    assert_int_equal(n32 - n16, T * DIM * 2 - 2);   // 30 bytes of f16, padded to 32
    int32_t buf[256];
    assert_true(n32 <= sizeof buf);
    wire_pack(buf, 5, &b, BS, rows, hidden, DIM, 16);
    wire_msg w;
    const int32_t *views[4];
    pipe_row got_rows[4];
    float wide[8 * DIM];
    tv_error err = {0};
    assert_int_equal(wire_unpack(buf, n16, DIM, 4, 4, 8, wide, views, got_rows, &w, &err), TV_OK);
    assert_int_equal(w.kind, WIRE_STEP);
    assert_int_equal(w.round, 5);
    assert_int_equal(w.hidden_bits, 16);
    assert_int_equal(w.b.n_tokens, T);
    assert_int_equal(w.b.block_tables[1][1], 2);
    assert_int_equal(got_rows[1].n_top, 2);
    assert_true(got_rows[1].plain.u == 0.25);
    for (int i = 0; i < T * DIM; i++) assert_true(w.b.hidden[i] == f16_to_f32(f32_to_f16(hidden[i])));
    assert_int_equal(wire_unpack(buf, n16 - 4, DIM, 4, 4, 8, wide, views, got_rows, &w, &err), TV_ERR_FORMAT);
    assert_int_equal(wire_unpack(buf, n16, DIM, 4, 4, 2, wide, views, got_rows, &w, &err), TV_ERR_FORMAT);   // 3 tokens > 2
    buf[7] = 8;
    assert_int_equal(wire_unpack(buf, n16, DIM, 4, 4, 8, wide, views, got_rows, &w, &err), TV_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "8-bit hidden state"));
    wire_pack(buf, 6, &b, BS, rows, hidden, DIM, 32);
    assert_int_equal(wire_unpack(buf, n32, DIM, 4, 4, 8, wide, views, got_rows, &w, &err), TV_OK);
    assert_memory_equal(w.b.hidden, hidden, sizeof hidden);
}

// The f16 wire through 2 stages: every request of the greedy set finishes with its length and no
// block leaks; how many match one model's tokens is printed (the rounding of the residual stream
// at the boundary may flip a near tie, the reason f32 is the default).
static void test_pipelined_f16_wire(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    enum { N = 64 };
    static req ref[N], got[N];
    make_requests(ref, N, 42, 200, 40, 60);
    tpipe p;
    tv_engine_stats st;
    drive(make_engine(&p, 1, NULL, 16, 40, true, 16, 64), ref, N, &st, NULL);
    free_engine(&p);
    memcpy(got, ref, sizeof got);
    for (int i = 0; i < N; i++) got[i].n_out = 0;
    tv_engine *e = make_engine(&p, 2, k_two, 16, 40, true, 16, 64);
    p.hidden_bits = 16;
    drive(e, got, N, &st, NULL);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    int same_reqs = 0, same_toks = 0, n_toks = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(got[i].finish, TV_FINISH_LENGTH);
        assert_int_equal(got[i].n_out, ref[i].n_out);
        int j = 0;
        while (j < ref[i].n_out && got[i].out[j] == ref[i].out[j]) j++;
        same_reqs += j == ref[i].n_out;
        same_toks += j;
        n_toks += ref[i].n_out;
    }
    print_message("f16 wire, 2 stages: %d of %d requests token-identical to one model, %d of %d tokens before the "
                  "first difference\n", same_reqs, N, same_toks, n_toks);
    free_engine(&p);
}

// Three short requests, the third arriving at step 3, on a 2-stage pipeline (the first two in
// different lanes, so in different batches).
static void three_requests(req *rs) {
    memset(rs, 0, 3 * sizeof *rs);
    for (int i = 0; i < 3; i++) {
        rs[i].n_prompt = 5;
        for (int j = 0; j < 5; j++) rs[i].prompt[j] = 1 + 7 * j + i;
        rs[i].max_tokens = 8;
        rs[i].arrive_step = i == 2 ? 3 : 0;
    }
}

// A later stage that fails (a dead or hung rank, as dist.c reports it) finishes the batch's requests
// with its message; the other lane's batch, the blocks and the next requests are unaffected.
static void test_stage_failure_finishes_batch(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tpipe p;
    tv_engine *e = make_engine(&p, 2, k_two, 16, 0, true, 8, 64);
    p.fail_at_collect = 2;
    req rs[3];
    three_requests(rs);
    tv_engine_stats st;
    drive(e, rs, 3, &st, NULL);
    assert_int_equal(rs[0].finish, TV_FINISH_LENGTH);
    assert_int_equal(rs[0].n_out, 8);
    assert_int_equal(rs[1].finish, TV_FINISH_ERROR);
    assert_int_equal(rs[1].n_out, 0);
    assert_int_equal(rs[2].finish, TV_FINISH_LENGTH);
    assert_int_equal(rs[2].n_out, 8);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    free_engine(&p);
}

// A message the middle stage of three cannot read: it passes a failure note on, the last stage
// replies with it, and the engine finishes that batch's request with the stage's reason.
static void test_malformed_batch_fails_through_the_chain(void **state) {
    (void)state;
    SKIP_IF_NO(g_whole, MODEL);
    tpipe p;
    tv_engine *e = make_engine(&p, 3, k_three, 16, 0, true, 8, 64);
    p.corrupt_at_submit = 1;   // request 0's first batch
    req rs[3];
    three_requests(rs);
    tv_engine_stats st;
    drive(e, rs, 3, &st, NULL);
    assert_int_equal(rs[0].finish, TV_FINISH_ERROR);
    assert_int_equal(rs[1].finish, TV_FINISH_LENGTH);
    assert_int_equal(rs[2].finish, TV_FINISH_LENGTH);
    assert_int_equal(st.n_blocks_free, st.n_blocks_total);
    free_engine(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_stage_holds_its_share),
        cmocka_unit_test(test_pipelined_greedy_identical),
        cmocka_unit_test(test_pipelined_sampling_identical),
        cmocka_unit_test(test_wire_f16_round_trip),
        cmocka_unit_test(test_pipelined_f16_wire),
        cmocka_unit_test(test_pipelined_no_leaks_10k),
        cmocka_unit_test(test_stage_failure_finishes_batch),
        cmocka_unit_test(test_malformed_batch_fails_through_the_chain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
