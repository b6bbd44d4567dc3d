// test_golden.c — end-to-end against the llama2.c reference (run.c) outputs in ../shared/fixtures:
// every fixture case reproduced token for token (and text for aidreams260K) from the .bin files
// and from their converted GGUF, on every kernel path this CPU supports; the first 32 positions'
// logits within 1e-4 of the reference's.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "model/model.h"
#include "tinyvllm.h"
#include "tokenizer/tokenizer.h"
#include "test_util.h"

static char g_shared[1024];

static bool have_shared(void) {
    snprintf(g_shared, sizeof g_shared, "%s", shared_dir());
    char p[1100];
    snprintf(p, sizeof p, "%s/fixtures/llama2c-reference.jsonl", g_shared);
    return access(p, R_OK) == 0;
}

static bool path_supported(const char *cpu) {
    kern_table kt;
    return kern_table_init(&kt, cpu, NULL) == TV_OK;
}

typedef struct {
    char model[256], tokenizer[256], text[8192];
    bool has_text;
    int32_t prompt[512];
    int n_prompt;
    int32_t gen[1024];
    int n_gen;
    int steps;
} fixture;

static int load_fixtures(fixture *fx, int cap) {
    char path[1100];
    snprintf(path, sizeof path, "%s/fixtures/llama2c-reference.jsonl", g_shared);
    char *all = read_all(path, NULL);
    assert_non_null(all);
    int n = 0;
    for (char *line = strtok(all, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        fixture *f = &fx[n++];
        memset(f, 0, sizeof *f);
        snprintf(f->model, sizeof f->model, "%s", cJSON_GetObjectItem(j, "model")->valuestring);
        cJSON *tk = cJSON_GetObjectItem(j, "tokenizer");
        if (cJSON_IsString(tk)) snprintf(f->tokenizer, sizeof f->tokenizer, "%s", tk->valuestring);
        cJSON *tx = cJSON_GetObjectItem(j, "text");
        if (cJSON_IsString(tx)) { f->has_text = true; snprintf(f->text, sizeof f->text, "%s", tx->valuestring); }
        f->steps = cJSON_GetObjectItem(j, "steps")->valueint;
        cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "prompt_ids")) f->prompt[f->n_prompt++] = it->valueint;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "generated_ids")) f->gen[f->n_gen++] = it->valueint;
        cJSON_Delete(j);
    }
    free(all);
    return n;
}

// Generates greedily through the engine; returns the number of ids written to out.
static int run_greedy(tv_model *m, const char *cpu, const int32_t *prompt, int n_prompt, int max_new, int kv_bits,
                      int block_size, int32_t *out, int32_t extra_stop) {
    tv_error err = {0};
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.n_threads = 2;
    ec.cpu_path = cpu;
    ec.max_num_seqs = 1;
    ec.kv_bits = kv_bits;
    ec.block_size = block_size;
    tv_engine *e = tv_engine_create(m, &ec, &err);
    if (!e) fail_msg("engine: %s", err.msg);
    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.sampling.temperature = 0;
    rp.prompt_ids = prompt;
    rp.n_prompt = (size_t)n_prompt;
    rp.max_tokens = max_new;
    rp.stop_ids = &extra_stop;
    rp.n_stop_ids = extra_stop >= 0 ? 1 : 0;
    if (tv_engine_add_request(e, &rp, NULL, &err)) fail_msg("add: %s", err.msg);
    int n = 0;
    while (tv_engine_has_work(e)) {
        const tv_request_output *o;
        int no;
        if (tv_engine_step(e, &o, &no, &err)) fail_msg("step: %s", err.msg);
        for (int i = 0; i < no; i++)
            for (int j = 0; j < o[i].n_new; j++) out[n++] = o[i].new_ids[j];
    }
    tv_engine_free(e);
    return n;
}

static void check_fixtures(const char *const *paths_override, bool from_gguf) {
    static fixture fx[16];
    int n = load_fixtures(fx, 16);
    assert_true(n >= 6);
    const char *paths[] = {"generic", "avx2", "avx512"};
    int n_paths_run = 0;
    for (size_t pi = 0; pi < 3; pi++) {
        tv_error err = {0};
        if (!path_supported(paths[pi])) continue;
        n_paths_run++;
        for (int c = 0; c < n; c++) {
            fixture *f = &fx[c];
            char mpath[1400], tpath[1400];
            const char *base = strrchr(f->model, '/') ? strrchr(f->model, '/') + 1 : f->model;
            if (from_gguf) {
                snprintf(mpath, sizeof mpath, "%s", strstr(base, "aidreams") ? paths_override[0] : paths_override[1]);
            } else {
                snprintf(mpath, sizeof mpath, "%s/%s", g_shared, f->model);
            }
            snprintf(tpath, sizeof tpath, "%s/%s", g_shared, f->tokenizer);
            tv_model_params mp;
            tv_model_params_default(&mp);
            mp.tokenizer_path = f->tokenizer[0] && !from_gguf ? tpath : NULL;
            mp.cpu_path = paths[pi];
            tv_model *m = tv_model_load(mpath, &mp, &err);
            if (!m) fail_msg("load %s: %s", mpath, err.msg);
            int n_ctx = tv_model_n_ctx(m);
            int want = f->steps - f->n_prompt + 1;   // what the reference sampled
            if (f->n_prompt + want > n_ctx) want = n_ctx - f->n_prompt;   // engine caps at the context
            int cmp = want < f->n_gen ? want : f->n_gen;
            static int32_t got[2048];
            // GGUF files stop at EOS (2); the llama2.c reference stops at BOS (1): ask for that.
            int ng = run_greedy(m, paths[pi], f->prompt, f->n_prompt, want, 0, pi == 1 ? 32 : 16, got, from_gguf ? 1 : -1);
            if (ng != cmp) fail_msg("%s case %d path %s: %d tokens, reference %d", mpath, c, paths[pi], ng, cmp);
            for (int i = 0; i < cmp; i++)
                if (got[i] != f->gen[i])
                    fail_msg("%s case %d path %s: token %d is %d, reference %d", mpath, c, paths[pi], i, got[i], f->gen[i]);
            if (f->has_text) {
                const tv_tokenizer *tok = tv_model_tokenizer(m);
                assert_non_null(tok);
                int32_t all[2048];
                memcpy(all, f->prompt, (size_t)f->n_prompt * sizeof(int32_t));
                memcpy(all + f->n_prompt, got, (size_t)ng * sizeof(int32_t));
                // the reference prints nothing for a final BOS
                int n_all = f->n_prompt + ng - (ng && got[ng - 1] == 1);
                char *text;
                size_t tl;
                assert_int_equal(tv_detokenize(tok, all, (size_t)n_all, true, &text, &tl, &err), TV_OK);
                // the reference's text covers what it generated; ours is capped at the context
                if (strncmp(text, f->text, tl) != 0 || (cmp == f->n_gen && strlen(f->text) != tl))
                    fail_msg("%s case %d: text differs:\n ours: %s\n ref:  %s", mpath, c, text, f->text);
                free(text);
            }
            tv_model_free(m);
        }
    }
    assert_true(n_paths_run >= 1);
}

static void test_fixtures_bin(void **state) {
    (void)state;
    if (!have_shared()) { print_message("skipped: ../shared is absent\n"); skip(); }
    check_fixtures(NULL, false);
}

// Converts both models with the CLI, then checks the fixtures from the GGUF files.
static void test_fixtures_gguf(void **state) {
    (void)state;
    if (!have_shared()) { print_message("skipped: ../shared is absent\n"); skip(); }
    char cmd[4096], a[512], s[512];
    snprintf(a, sizeof a, "%s/golden-aidreams.gguf", TV_BINARY_DIR);
    snprintf(s, sizeof s, "%s/golden-stories.gguf", TV_BINARY_DIR);
    snprintf(cmd, sizeof cmd, "%s/tinyvllm convert llama2c %s/models/aidreams260K.bin %s/models/aidreams260K.tok512.bin -o %s",
             TV_BINARY_DIR, g_shared, g_shared, a);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/tinyvllm convert llama2c %s/models/stories260K.bin -o %s", TV_BINARY_DIR, g_shared, s);
    assert_int_equal(system(cmd), 0);
    const char *paths[] = {a, s};
    check_fixtures(paths, true);
}

// Logits for prompt = BOS, greedy, positions 0..31, against the reference's float32 dump.
static void check_logits(const char *cpu, const char *model, const char *ref_file) {
    char mp[1100], rp[1100];
    snprintf(mp, sizeof mp, "%s/models/%s", g_shared, model);
    snprintf(rp, sizeof rp, "%s/fixtures/%s", g_shared, ref_file);
    size_t len;
    float *ref = (float *)read_all(rp, &len);
    assert_non_null(ref);
    tv_error err = {0};
    tv_model_params params;
    tv_model_params_default(&params);
    params.cpu_path = cpu;
    tv_model *m = tv_model_load(mp, &params, &err);
    if (!m) fail_msg("%s", err.msg);
    const int V = tv_model_n_vocab(m);
    assert_int_equal(len, (size_t)32 * V * sizeof(float));
    backend *be = backend_cpu_create(cpu, 2, &err);
    assert_non_null(be);
    assert_string_equal(backend_name(be), cpu);
    tv_kv_cache *kv = kv_cache_create(m, 2, 16, true, &err);
    tv_forward *f = forward_create(m, model_hparams(m)->n_ctx_train, 1, 1, be, &err);
    assert_non_null(kv);
    assert_non_null(f);
    int32_t tok = 1, table[2] = {0, 1};
    const int32_t *tables[1] = {table};
    double worst = 0;
    for (int pos = 0; pos < 32; pos++) {
        int32_t qs[2] = {0, 1}, ctx = pos + 1, row = 0;
        tv_batch b = {.n_tokens = 1, .tokens = &tok, .positions = &pos, .n_seqs = 1, .q_start = qs, .ctx_len = &ctx,
                      .block_tables = tables, .n_logits = 1, .logit_rows = &row};
        float *lg;
        assert_int_equal(forward_run(f, kv, &b, &lg, &err), TV_OK);
        int best = 0;
        for (int i = 0; i < V; i++) {
            double d = fabs((double)lg[i] - ref[(size_t)pos * V + i]);
            if (d > worst) worst = d;
            if (lg[i] > lg[best]) best = i;
        }
        tok = best;
    }
    print_message("%s on %s: max |logit - reference| over 32 positions = %.3g\n", model, cpu, worst);
    assert_true(worst < 1e-4);
    forward_free(f);
    kv_cache_free(kv);
    backend_free(be);
    tv_model_free(m);
    free(ref);
}

static void test_logits(void **state) {
    (void)state;
    if (!have_shared()) { print_message("skipped: ../shared is absent\n"); skip(); }
    const char *paths[] = {"generic", "avx2", "avx512"};
    for (size_t pi = 0; pi < 3; pi++) {
        if (!path_supported(paths[pi])) continue;
        check_logits(paths[pi], "aidreams260K.bin", "aidreams260K.bos.logits.f32");
        check_logits(paths[pi], "stories260K.bin", "stories260K.bos.logits.f32");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_fixtures_bin),
        cmocka_unit_test(test_fixtures_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
