// test_backend.c — each engine computes with its own backend (kernel path, pool), chosen from the
// parameters the caller passes; model loading repacks for the caller's path on the caller's threads.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

enum { N_PROMPT = 12, N_GEN = 40 };

// One greedy request's tokens and the chosen tokens' logprobs: any bit of difference in the
// logits on the way shows up in the logprobs.
typedef struct run {
    int32_t ids[N_GEN];
    float lp[N_GEN];
    int n;
} run;

static const tv_synth_shape SHAPE = {"backend", 64, 160, 2, 4, 2, 512, 128, 10000.0f, 1e-5f, false, false};

static char *write_model(tv_type type, char *path, size_t cap) {
    snprintf(path, cap, "%s/backend-%s.gguf", TV_BINARY_DIR, kern_type_name(type));
    tv_synth_params sp = {.type = type, .seed = 11, .shape = &SHAPE, .pure = true, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    return path;
}

static tv_engine *make_engine(tv_model *m, const char *cpu) {
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.n_threads = 2;
    c.cpu_path = cpu;
    c.max_num_seqs = 1;
    tv_error err = {0};
    tv_engine *e = tv_engine_create(m, &c, &err);
    if (!e) fail_msg("engine on %s: %s", cpu ? cpu : "best", err.msg);
    return e;
}

static void add(tv_engine *e) {
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) prompt[i] = (int32_t)(3 + i * 37 % 500);
    tv_request_params p;
    tv_request_params_default(&p);
    p.prompt_ids = prompt;
    p.n_prompt = N_PROMPT;
    p.max_tokens = N_GEN;
    p.ignore_eos = true;
    p.sampling.temperature = 0;
    p.sampling.logprobs = 0;
    tv_error err = {0};
    if (tv_engine_add_request(e, &p, NULL, &err)) fail_msg("add: %s", err.msg);
}

// One step of e, its news appended to r.
static void step(tv_engine *e, run *r) {
    const tv_request_output *o;
    int no;
    tv_error err = {0};
    if (tv_engine_step(e, &o, &no, &err)) fail_msg("step: %s", err.msg);
    for (int i = 0; i < no; i++)
        for (int j = 0; j < o[i].n_new; j++) {
            assert_true(r->n < N_GEN);
            r->ids[r->n] = o[i].new_ids[j];
            r->lp[r->n++] = o[i].logprobs[j].logprob;
        }
}

static run run_alone(tv_engine *e) {
    run r = {0};
    add(e);
    while (tv_engine_has_work(e)) step(e, &r);
    assert_int_equal(r.n, N_GEN);
    return r;
}

// A generic engine and one on the best path, over one model in one process: each computes with its
// own kernels. The generic engine's run before the fast engine existed is the generic-only
// reference; after the fast engine is created, and with both stepping in turns, each reproduces its
// own path's bits. The two paths' logprobs differ (F32 dot products sum in another order), so a
// shared kernel table would make one engine's results change.
static void test_two_paths_one_process(void **state) {
    (void)state;
    char path[512];
    write_model(TV_TYPE_F32, path, sizeof path);
    tv_error err = {0};
    tv_model *m = tv_model_load(path, NULL, &err);
    if (!m) fail_msg("%s", err.msg);
    kern_table best;
    assert_int_equal(kern_table_init(&best, NULL, &err), TV_OK);

    tv_engine *eg = make_engine(m, "generic");
    assert_string_equal(tv_engine_cpu_path(eg), "generic");
    const run ref_gen = run_alone(eg);

    tv_engine *ef = make_engine(m, NULL);
    assert_string_equal(tv_engine_cpu_path(ef), best.path);
    assert_string_equal(tv_engine_cpu_path(eg), "generic");
    const run ref_fast = run_alone(ef);
    const run again_gen = run_alone(eg);
    assert_memory_equal(&again_gen, &ref_gen, sizeof ref_gen);

    run rg = {0}, rf = {0};
    add(eg);
    add(ef);
    while (tv_engine_has_work(eg) || tv_engine_has_work(ef)) {
        if (tv_engine_has_work(eg)) step(eg, &rg);
        if (tv_engine_has_work(ef)) step(ef, &rf);
    }
    assert_memory_equal(&rg, &ref_gen, sizeof rg);
    assert_memory_equal(&rf, &ref_fast, sizeof rf);
    if (strcmp(best.path, "generic") != 0) {
        print_message("generic vs %s: logprob bits differ: %s\n", best.path,
                      memcmp(ref_gen.lp, ref_fast.lp, sizeof ref_gen.lp) ? "yes" : "no");
        assert_true(memcmp(ref_gen.lp, ref_fast.lp, sizeof ref_gen.lp) != 0);
    } else {
        print_message("this CPU has only the generic path: one path compared\n");
    }
    tv_engine_free(eg);
    tv_engine_free(ef);
    tv_model_free(m);
    remove(path);
}

// Loading repacks for the caller's CPU path (none on generic, where packing does not pay) on the
// caller's thread count; the env vars the CLI reads do not reach the library.
static void test_load_params(void **state) {
    (void)state;
    char path[512];
    write_model(TV_TYPE_Q8_0, path, sizeof path);
    tv_error err = {0};
    kern_table best;
    assert_int_equal(kern_table_init(&best, NULL, &err), TV_OK);
    const bool pays = kern_traits(&best, TV_TYPE_Q8_0)->pack_pays;

    tv_model_params p;
    tv_model_params_default(&p);
    p.cpu_path = "generic";
    p.n_threads = 3;
    tv_model *m = tv_model_load(path, &p, &err);
    if (!m) fail_msg("%s", err.msg);
    assert_int_equal(model_n_packed(m, NULL), 0);
    assert_int_equal(model_load_threads(m), 0);
    tv_model_free(m);

    setenv("TINYVLLM_REPACK", "0", 1);   // the library must not read it
    p.cpu_path = NULL;
    m = tv_model_load(path, &p, &err);
    unsetenv("TINYVLLM_REPACK");
    if (!m) fail_msg("%s", err.msg);
    const int n_mats = 7 * SHAPE.n_layers + 1;
    assert_int_equal(model_n_packed(m, NULL), pays ? n_mats : 0);
    assert_int_equal(model_load_threads(m), pays ? 3 : 0);
    tv_model_free(m);

    p.no_repack = true;
    m = tv_model_load(path, &p, &err);
    assert_non_null(m);
    assert_int_equal(model_n_packed(m, NULL), 0);
    tv_model_free(m);

    p.no_repack = false;
    p.cpu_path = "sse9";
    assert_null(tv_model_load(path, &p, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "sse9"));
    remove(path);
}

static void test_bad_params(void **state) {
    (void)state;
    tv_error err = {0};
    assert_null(backend_cpu_create("sse9", 1, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    assert_null(backend_cpu_create("generic", 0, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    backend *be = backend_cpu_create("", 1, &err);   // "" = best, as NULL
    assert_non_null(be);
    kern_table best;
    assert_int_equal(kern_table_init(&best, NULL, &err), TV_OK);
    assert_string_equal(backend_name(be), best.path);
    backend_free(be);
    backend_free(NULL);

    char path[512];
    write_model(TV_TYPE_F32, path, sizeof path);
    tv_model *m = tv_model_load(path, NULL, &err);
    assert_non_null(m);
    tv_engine_config c;
    tv_engine_config_default(&c);
    c.cpu_path = "avx9000";
    assert_null(tv_engine_create(m, &c, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    tv_model_free(m);
    remove(path);
}

// The row-wise ops GeGLU, soft-capping and scaling through a backend of each path, on a batch
// large enough to run over the pool: every row has the bits of its path's op run on that row
// alone (scale: one multiply, the same bits on every path).
static float val(int i, int64_t prime, float div) { return (float)((int64_t)i * prime % 2001 - 1000) / div; }

static void test_rowwise_ops(void **state) {
    (void)state;
    enum { ROWS = 40, N = 515 };
    static const char *PATHS[] = {"generic", "avx2", "avx512"};
    static float g[ROWS * N], u[ROWS * N], y[ROWS * N], z[ROWS * N], want[N];
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        tv_error err = {0};
        backend *be = backend_cpu_create(PATHS[pi], 2, &err);
        if (!be) fail_msg("%s: %s", PATHS[pi], err.msg);
        for (int i = 0; i < ROWS * N; i++) {
            g[i] = val(i, 7919, 100.0f);   // [-10, 10]
            u[i] = val(i, 104729, 300.0f);
            y[i] = z[i] = g[i] * 9.0f;
        }
        backend_geglu(be, g, u, ROWS, N);
        backend_softcap(be, y, ROWS, N, 30.0f);
        backend_scale(be, z, ROWS, N, 0.3f);
        for (int r = 0; r < ROWS; r++) {
            for (int i = 0; i < N; i++) want[i] = val(r * N + i, 7919, 100.0f);
            ops->geglu(want, u + r * N, N);
            assert_memory_equal(want, g + r * N, sizeof want);
            for (int i = 0; i < N; i++) want[i] = val(r * N + i, 7919, 100.0f) * 9.0f;
            ops->softcap(want, N, 30.0f);
            assert_memory_equal(want, y + r * N, sizeof want);
            for (int i = 0; i < N; i++)
                assert_true(z[r * N + i] == val(r * N + i, 7919, 100.0f) * 9.0f * 0.3f);
        }
        backend_free(be);
    }
}

// The row ops the families add (bias rows, per-row scaling, NeoX RoPE): on every path and over 4
// threads (rows split among them: more than the 16384 elements one thread takes alone), the same
// bits as that path's op applied row by row (per-row scaling: one multiply).
static void test_family_row_ops(void **state) {
    (void)state;
    static const char *const PATHS[] = {"generic", "avx2", "avx512"};
    enum { ROWS = 131, HEADS = 4, KVH = 2, HD = 40, NROT = 34, N = HEADS * HD };
    float *y = malloc(sizeof(float) * ROWS * N), *want = malloc(sizeof(float) * ROWS * N);
    float *k = malloc(sizeof(float) * ROWS * KVH * HD), *kwant = malloc(sizeof(float) * ROWS * KVH * HD);
    float *cs = malloc(sizeof(float) * ROWS * 2 * NROT), bias[N], rs[ROWS], inv[NROT / 2];
    assert_true(y && want && k && kwant && cs);
    for (int i = 0; i < NROT / 2; i++) inv[i] = powf(10000.0f, -2.0f * i / NROT);
    for (int r = 0; r < ROWS; r++) {
        rope_table_neox(cs + r * 2 * NROT, NROT, inv, (float)(r * 7), 1.1f);
        rs[r] = 0.5f + 0.01f * r;
    }
    for (int i = 0; i < N; i++) bias[i] = val(i, 7919, 100.0f);
    for (size_t pi = 0; pi < sizeof PATHS / sizeof PATHS[0]; pi++) {
        const tv_ops *ops = ops_for_path(PATHS[pi]);
        if (!ops) continue;
        tv_error err = {0};
        backend *be = backend_cpu_create(PATHS[pi], 4, &err);
        if (!be) fail_msg("%s: %s", PATHS[pi], err.msg);
        for (int i = 0; i < ROWS * N; i++) want[i] = y[i] = val(i, 104729, 300.0f);
        for (int i = 0; i < ROWS * KVH * HD; i++) kwant[i] = k[i] = val(i, 7919, 300.0f);
        backend_add_row(be, y, bias, ROWS, N);
        backend_scale_rows(be, y, rs, ROWS, N);
        backend_rope_neox(be, y, k, cs, ROWS, HEADS, KVH, HD, NROT);
        for (int r = 0; r < ROWS; r++) {
            float *w = want + r * N;
            ops->add(w, bias, N);
            for (int i = 0; i < N; i++) w[i] *= rs[r];
            ops->rope_neox(w, HEADS, HD, NROT, cs + r * 2 * NROT);
            ops->rope_neox(kwant + r * KVH * HD, KVH, HD, NROT, cs + r * 2 * NROT);
        }
        assert_memory_equal(y, want, sizeof(float) * ROWS * N);
        assert_memory_equal(k, kwant, sizeof(float) * ROWS * KVH * HD);
        backend_free(be);
    }
    free(y); free(want); free(k); free(kwant); free(cs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rowwise_ops),
        cmocka_unit_test(test_family_row_ops),
        cmocka_unit_test(test_two_paths_one_process),
        cmocka_unit_test(test_load_params),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
