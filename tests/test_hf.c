// test_hf.c — Hugging Face model folders (model/hf.c, formats/safetensors.c).
//   same model  for every family with an HF layout, the random model of synth --arch written as a
//               GGUF and as an HF folder (config.json + model.safetensors in transformers' names,
//               llama.cpp's Q/K permutation undone, Gemma and Qwen3.5 norms as w - 1, MoE experts one
//               tensor each, Qwen3.5's linear_attn V heads grouped by key head and A_log, Gemma 4's
//               per-layer head sizes, shared-KV layers, per-layer inputs and 26B-A4B's router and fused
//               experts beside the dense MLP) loads to
//               bit-identical logits in F32 and F16 (a prompt in one batch, then decode steps over the
//               cache; hybrid models on one state slot), and quantized at load to Q8_0 / Q4_0 to the logits of
//               the GGUF quantized offline; the same folder split into index-listed shards gives the
//               same logits again.
//   llama.cpp   `tinyvllm convert hf` of each family's folder (F32, Q8_0) run by the pinned llama.cpp
//               (tests/fixtures/hf, scripts/hf_fixtures.sh): the converted file is re-made here and
//               must hash as the fixture's; the folder loaded directly (Q8_0: --quantize Q8_0) agrees
//               with llama.cpp's top-1 at >= 99.5% (F32) / 98% (Q8_0) of the prompt positions,
//               counting near-ties (llama.cpp's logit for ours within 0.01 / 0.2 of its top-1).
//   FP8         a folder whose projections are F8_E4M3 with 128x128 block scale_inv, a per-tensor
//               weight_scale (+ input_scale) or per-row scales loads to the same F32 bits as a folder
//               holding a scalar reference's dequantized values (Q/K permuted alike), the same logits,
//               the same logits at --quantize Q8_0; missing weight_block_size / a wrong scale shape fail.
//   bad input   a missing config key, a shard listed but absent, a tensor whose dtype or shape
//               disagrees with config.json, a truncated header, a header claiming more bytes than
//               the file, overlapping or misaligned offsets: each fails naming the file and tensor.
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
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "formats/safetensors.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"
#include "test_util.h"

enum { BLOCK_SIZE = 16, N_PROMPT = 40, N_DECODE = 6, MAX_V = 512 };

static const char *const ARCHS[] = {"llama", "llama3", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mistral3",
                                    "smollm3", "granite", "qwen3moe", "qwen2moe", "mixtral", "glm4moe",
                                    "deepseek2", "deepseek2-lite", "qwen35", "qwen35moe", "qwen3next", "gpt-oss",
                                    "gemma4", "gemma4e", "gemma4moe"};

static char g_dir[256];   // this test's scratch folder

static void rm_rf(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int group_setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/test_hf.%ld", TV_BINARY_DIR, (long)getpid());
    rm_rf(g_dir);
    return mkdir(g_dir, 0777);
}

static int group_teardown(void **state) {
    (void)state;
    rm_rf(g_dir);
    return 0;
}

static void write_synth_seed(const char *arch, tv_type type, bool hf, uint64_t seed, const char *out) {
    tv_synth_params p = {.arch = arch, .type = type, .seed = seed, .n_threads = 2, .hf = hf, .hf_exact = !hf, .pure = true};
    tv_error err = {0};
    if (synth_write(&p, out, &err)) fail_msg("synth %s: %s", arch, err.msg);
}

static void write_synth(const char *arch, tv_type type, bool hf, const char *out) { write_synth_seed(arch, type, hf, 7, out); }

static tv_model *load_quantized(const char *path, const char *quantize) {
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = test_cpu_path();
    mp.quantize = quantize;
    tv_error err = {0};
    tv_model *m = tv_model_load(path, &mp, &err);
    if (!m) fail_msg("load %s: %s", path, err.msg);
    return m;
}

static tv_model *load(const char *path) { return load_quantized(path, NULL); }

// The logits of a prompt (one batch) and N_DECODE greedy-fed steps: ((N_PROMPT + N_DECODE), V).
static float *run(const tv_model *m) {
    tv_error err = {0};
    const int V = tv_model_n_vocab(m), n_blocks = (N_PROMPT + N_DECODE) / BLOCK_SIZE + 1;
    assert_true(V <= MAX_V);
    backend *be = backend_cpu_create(test_cpu_path(), 2, &err);
    assert_non_null(be);
    tv_kv_cache *kv = kv_cache_create(m, n_blocks, BLOCK_SIZE, true, &err);
    assert_non_null(kv);
    if (model_hparams(m)->n_linear > 0 && kv_cache_add_state(kv, m, 1, &err)) fail_msg("state: %s", err.msg);
    tv_forward *f = forward_create(m, N_PROMPT + N_DECODE, N_PROMPT, N_PROMPT, be, &err);
    assert_non_null(f);
    float *out = malloc((size_t)(N_PROMPT + N_DECODE) * (size_t)V * sizeof *out);
    assert_non_null(out);
    int32_t table[8], tokens[N_PROMPT], pos[N_PROMPT], rows[N_PROMPT];
    for (int i = 0; i < n_blocks; i++) table[i] = n_blocks - 1 - i;
    for (int i = 0; i < N_PROMPT; i++) {
        tokens[i] = (int32_t)((i * 37 + 11) % V);
        pos[i] = i;
        rows[i] = i;
    }
    const int32_t *tables[1] = {table}, slot = 0;   // hybrid models: the sequence's state slot
    int32_t qs[2] = {0, N_PROMPT}, ctx = N_PROMPT;
    tv_batch b = {.n_tokens = N_PROMPT, .tokens = tokens, .positions = pos, .n_seqs = 1, .q_start = qs,
                  .ctx_len = &ctx, .block_tables = tables, .n_logits = N_PROMPT, .logit_rows = rows, .state_slots = &slot};
    float *lg;
    if (forward_run(f, kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
    memcpy(out, lg, (size_t)N_PROMPT * (size_t)V * sizeof *out);
    for (int s = 0; s < N_DECODE; s++) {
        const float *prev = out + (size_t)(N_PROMPT + s - 1) * (size_t)V;
        int32_t next = 0;
        for (int v = 1; v < V; v++) if (prev[v] > prev[next]) next = v;
        int32_t p1 = N_PROMPT + s, r0 = 0, q1[2] = {0, 1}, c1 = p1 + 1;
        tv_batch d = {.n_tokens = 1, .tokens = &next, .positions = &p1, .n_seqs = 1, .q_start = q1, .ctx_len = &c1,
                      .block_tables = tables, .n_logits = 1, .logit_rows = &r0, .state_slots = &slot};
        if (forward_run(f, kv, &d, &lg, &err)) fail_msg("forward: %s", err.msg);
        memcpy(out + (size_t)(N_PROMPT + s) * (size_t)V, lg, (size_t)V * sizeof *out);
    }
    forward_free(f);
    kv_cache_free(kv);
    backend_free(be);
    return out;
}

static void assert_same_logits(const char *what, const tv_model *a, const tv_model *b) {
    assert_int_equal(tv_model_n_vocab(a), tv_model_n_vocab(b));
    const size_t n = (size_t)(N_PROMPT + N_DECODE) * (size_t)tv_model_n_vocab(a);
    float *la = run(a), *lb = run(b);
    size_t first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (memcmp(&la[i], &lb[i], sizeof(float))) first = i;
    if (first < n)
        fail_msg("%s: logits differ first at row %zu, id %zu (%.9g vs %.9g)", what, first / (size_t)tv_model_n_vocab(a),
                 first % (size_t)tv_model_n_vocab(a), (double)la[first], (double)lb[first]);
    free(la);
    free(lb);
}

// Rewrites DIR/model.safetensors as two shards with model.safetensors.index.json.
typedef struct copy_src { const st_tensor *t; size_t row_bytes; } copy_src;
static tv_status copy_fill(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)err;
    const copy_src *c = user;
    memcpy(dst, (const uint8_t *)c->t->data + (size_t)row0 * c->row_bytes, (size_t)n_rows * c->row_bytes);
    return TV_OK;
}

static void shard(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tv_error err = {0};
    st_file *f = st_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    const int64_t n = st_n_tensors(f);
    copy_src *srcs = calloc((size_t)n, sizeof *srcs);
    st_writer *w[2] = {st_writer_create(), st_writer_create()};
    cJSON *index = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(index, "weight_map");
    for (int64_t i = 0; i < n; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        srcs[i] = (copy_src){t, (size_t)t->shape[t->n_dims - 1] * st_dtype_size(t->dtype)};
        const int k = i < n / 2 ? 0 : 1;
        assert_int_equal(st_writer_add(w[k], t->name, t->dtype, t->n_dims, t->shape, copy_fill, &srcs[i], &err), TV_OK);
        cJSON_AddStringToObject(wm, t->name, k ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
    }
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, k + 1);
        if (st_writer_write(w[k], path, &err)) fail_msg("%s", err.msg);
        st_writer_free(w[k]);
    }
    st_close(f);
    free(srcs);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char *text = cJSON_Print(index);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(text);
    cJSON_Delete(index);
}

static void same_model(tv_type type) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        char gguf[512], dir[512], what[96];
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", g_dir, ARCHS[i]);
        snprintf(dir, sizeof dir, "%s/%s-hf", g_dir, ARCHS[i]);
        write_synth(ARCHS[i], type, false, gguf);
        write_synth(ARCHS[i], type, true, dir);
        tv_model *a = load(gguf), *b = load(dir);
        snprintf(what, sizeof what, "%s %s", ARCHS[i], kern_type_name(type));
        assert_same_logits(what, a, b);
        tv_model_free(b);
        if (type == TV_TYPE_F32 && i < 3) {   // sharded: the same again
            shard(dir);
            b = load(dir);
            snprintf(what, sizeof what, "%s %s sharded", ARCHS[i], kern_type_name(type));
            assert_same_logits(what, a, b);
            tv_model_free(b);
        }
        tv_model_free(a);
        rm_rf(dir);
        unlink(gguf);
    }
}

static void test_same_model_f32(void **state) { (void)state; same_model(TV_TYPE_F32); }

// --quantize at load: the F32 folder quantized to T gives the logits of the GGUF synth wrote in T
// (quantized offline from the same values, every matrix in T where its rows fit).
static void quantized_at_load(tv_type type) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        char gguf[512], dir[512], what[96];
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", g_dir, ARCHS[i]);
        snprintf(dir, sizeof dir, "%s/%s-hf", g_dir, ARCHS[i]);
        write_synth(ARCHS[i], type, false, gguf);
        write_synth(ARCHS[i], TV_TYPE_F32, true, dir);
        tv_model *a = load(gguf), *b = load_quantized(dir, kern_type_name(type));
        snprintf(what, sizeof what, "%s quantized at load to %s", ARCHS[i], kern_type_name(type));
        assert_same_logits(what, a, b);
        tv_model_free(a);
        tv_model_free(b);
        rm_rf(dir);
        unlink(gguf);
    }
}

static void test_quantize_q8_0(void **state) { (void)state; quantized_at_load(TV_TYPE_Q8_0); }
static void test_quantize_q4_0(void **state) { (void)state; quantized_at_load(TV_TYPE_Q4_0); }

// --quantize with the prepared-weight cache on MoE folders (3-D expert tensors): the first load writes
// the file, the second maps it (a hit, not a rebuild), both with the uncached load's logits.
static void test_quantize_cached_experts(void **state) {
    (void)state;
    static const char *const MOE[] = {"gemma4moe", "qwen35moe", "qwen3moe"};
    for (size_t i = 0; i < sizeof MOE / sizeof MOE[0]; i++) {
        char dir[512], cache[512], what[96];
        snprintf(dir, sizeof dir, "%s/%s-hf", g_dir, MOE[i]);
        snprintf(cache, sizeof cache, "%s/cache", g_dir);
        write_synth(MOE[i], TV_TYPE_F32, true, dir);
        assert_int_equal(mkdir(cache, 0777), 0);   // (the CLI makes its folder; the library expects one)
        tv_model *ref = load_quantized(dir, "Q8_0");
        for (int k = 0; k < 2; k++) {
            tv_model_params mp;
            tv_model_params_default(&mp);
            mp.cpu_path = test_cpu_path();
            mp.quantize = "Q8_0";
            mp.cache_dir = cache;
            tv_error err = {0};
            tv_model *m = tv_model_load(dir, &mp, &err);
            if (!m) fail_msg("load %s: %s", dir, err.msg);
            const char *note = tv_model_cache_note(m);
            if (!note || strncmp(note, k ? "hit " : "wrote ", k ? 4 : 6))
                fail_msg("%s, load %d with a cache: note '%s'", MOE[i], k + 1, note ? note : "(none)");
            snprintf(what, sizeof what, "%s --quantize Q8_0, cache %s", MOE[i], k ? "hit" : "written");
            assert_same_logits(what, ref, m);
            tv_model_free(m);
        }
        tv_model_free(ref);
        rm_rf(dir);
        rm_rf(cache);
    }
}

static void test_quantize_bad_type(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/badq-hf", g_dir);
    write_synth("qwen2", TV_TYPE_F32, true, dir);
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.quantize = "Q9_9";
    tv_error err = {0};
    assert_null(tv_model_load(dir, &mp, &err));
    assert_non_null(strstr(err.msg, "--quantize: 'Q9_9'"));
    rm_rf(dir);
}
static void test_same_model_f16(void **state) { (void)state; same_model(TV_TYPE_F16); }


// ---- llama.cpp on the converted files ----
static uint64_t file_fnv64(const char *path) {
    size_t len = 0;
    char *b = read_all(path, &len);
    assert_non_null(b);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) { h ^= (uint8_t)b[i]; h *= 1099511628211ull; }
    free(b);
    return h;
}

static void oracle(const char *arch, const char *type) {
    char path[600], gguf[600], vocab[600], dir[600];
    snprintf(path, sizeof path, "%s/tests/fixtures/hf/%s-%s.json", TV_SOURCE_DIR, arch, type);
    char *text = read_all(path, NULL);
    if (!text) fail_msg("missing fixture %s (scripts/hf_fixtures.sh)", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    snprintf(dir, sizeof dir, "%s/synth-hf", g_dir);   // the script's folder name (general.name)
    snprintf(gguf, sizeof gguf, "%s/conv.gguf", g_dir);
    tv_synth_params vp = {.arch = arch, .type = TV_TYPE_F32, .seed = 1, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&vp, vocab, &err)) fail_msg("%s", err.msg);
    write_synth_seed(arch, TV_TYPE_F32, true, 1, dir);
    tv_convert_hf_options co = {.type = type, .vocab_path = vocab};
    if (tv_convert_hf(dir, &co, gguf, NULL, 0, &err)) fail_msg("convert %s: %s", arch, err.msg);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)file_fnv64(gguf));
    const cJSON *fh = cJSON_GetObjectItemCaseSensitive(j, "fnv64");
    if (!cJSON_IsString(fh) || strcmp(fh->valuestring, hash))
        fail_msg("%s %s: converted file hashes %s, the fixture's %s: stale, regenerate with scripts/hf_fixtures.sh", arch,
                 type, hash, cJSON_IsString(fh) ? fh->valuestring : "?");
    tv_model *m = load_quantized(dir, strcmp(type, "F32") ? type : NULL);
    const int V = tv_model_n_vocab(m);
    backend *be = backend_cpu_create(test_cpu_path(), 2, &err);
    tv_kv_cache *kv = kv_cache_create(m, 256 / BLOCK_SIZE, BLOCK_SIZE, true, &err);
    if (kv && model_hparams(m)->n_linear > 0 && kv_cache_add_state(kv, m, 1, &err)) fail_msg("state: %s", err.msg);
    tv_forward *f = forward_create(m, 256, 128, 128, be, &err);
    assert_true(be && kv && f);
    int32_t table[256 / BLOCK_SIZE];
    for (int i = 0; i < 256 / BLOCK_SIZE; i++) table[i] = i;
    const int32_t *tables[1] = {table}, slot = 0;   // hybrid models: the sequence's state slot
    const double tol = strcmp(type, "F32") ? 0.2 : 0.01;
    int n_pos = 0, n_strict = 0, n_near = 0;
    const cJSON *prompt;
    cJSON_ArrayForEach(prompt, cJSON_GetObjectItemCaseSensitive(j, "prompts")) {
        int32_t tokens[128], pos[128], rows[128];
        int n = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(prompt, "tokens")) {
            assert_true(n < 128);
            tokens[n] = t->valueint;
            pos[n] = n;
            rows[n] = n;
            n++;
        }
        int32_t qs[2] = {0, n}, ctx = n;
        tv_batch b = {.n_tokens = n, .tokens = tokens, .positions = pos, .n_seqs = 1, .q_start = qs, .ctx_len = &ctx,
                      .block_tables = tables, .n_logits = n, .logit_rows = rows, .state_slots = &slot};
        float *lg;
        if (forward_run(f, kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
        int i = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(prompt, "positions")) {
            const float *row = lg + (size_t)i++ * (size_t)V;
            int best = 0;
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(p, "top");
            const int ref = cJSON_GetArrayItem(top, 0)->valueint;
            const double ref_logit = cJSON_GetArrayItem(top, 1)->valuedouble;
            bool near = best == ref;
            for (int k = 0; k < cJSON_GetArraySize(top) && !near; k += 2)
                if (cJSON_GetArrayItem(top, k)->valueint == best)
                    near = ref_logit - cJSON_GetArrayItem(top, k + 1)->valuedouble <= tol;
            n_pos++;
            n_strict += best == ref;
            n_near += near;
        }
    }
    print_message("hf oracle: %-9s %-5s top1 %6.2f%% strict, %6.2f%% counting near-ties (%d positions)\n", arch, type,
                  100.0 * n_strict / n_pos, 100.0 * n_near / n_pos, n_pos);
    const double bar = strcmp(type, "F32") ? 0.98 : 0.995;
    if (n_near < bar * n_pos) fail_msg("%s %s: top-1 agreement with llama.cpp %d/%d below %.1f%%", arch, type, n_near, n_pos, bar * 100);
    forward_free(f);
    kv_cache_free(kv);
    backend_free(be);
    tv_model_free(m);
    cJSON_Delete(j);
    rm_rf(dir);
    unlink(gguf);
    unlink(vocab);
}

static void test_llama_cpp_oracle(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        oracle(ARCHS[i], "F32");
        oracle(ARCHS[i], "Q8_0");
    }
}

// ---- generation_config.json: the model's recommended sampling ----
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_load_error(const char *path, const char *want1, const char *want2);

static void assert_recommended(const tv_model *m) {
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    unsigned all = TV_SAMPLE_TEMPERATURE | TV_SAMPLE_TOP_K | TV_SAMPLE_TOP_P | TV_SAMPLE_MIN_P | TV_SAMPLE_REPETITION_PENALTY;
    assert_int_equal(tv_model_sampling_defaults(m, 0, &p), all);
    assert_true(p.temperature == 0.6f && p.top_k == 20 && p.top_p == 0.95f && p.min_p == 0.0f && p.repetition_penalty == 1.1f);
    // fields the caller set stay as they are
    tv_sampling_params_default(&p);
    p.temperature = 0.25f;
    p.top_k = 3;
    assert_int_equal(tv_model_sampling_defaults(m, TV_SAMPLE_TEMPERATURE | TV_SAMPLE_TOP_K, &p), all & ~(unsigned)(TV_SAMPLE_TEMPERATURE | TV_SAMPLE_TOP_K));
    assert_true(p.temperature == 0.25f && p.top_k == 3 && p.top_p == 0.95f);
}

static void test_generation_config(void **state) {
    (void)state;
    char dir[600], path[700], gguf[700];
    snprintf(dir, sizeof dir, "%s/gencfg", g_dir);
    write_synth("qwen3", TV_TYPE_F32, true, dir);
    // no generation_config.json: nothing recommended, the parameters untouched
    tv_model *m = load(dir);
    tv_sampling_params p, d;
    tv_sampling_params_default(&p);
    d = p;
    assert_int_equal(tv_model_sampling_defaults(m, 0, &p), 0);
    assert_memory_equal(&p, &d, sizeof p);
    tv_model_free(m);

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    write_text(path, "{\"do_sample\": true, \"temperature\": 0.6, \"top_k\": 20, \"top_p\": 0.95, \"min_p\": 0, "
                     "\"repetition_penalty\": 1.1, \"eos_token_id\": [2, 3]}\n");
    m = load(dir);
    assert_recommended(m);
    tv_model_free(m);
    // the converted GGUF carries them as llama.cpp's general.sampling.* keys
    snprintf(gguf, sizeof gguf, "%s/gencfg.gguf", g_dir);
    tv_error err = {0};
    if (tv_convert_hf(dir, NULL, gguf, NULL, 0, &err)) fail_msg("convert: %s", err.msg);
    m = load(gguf);
    assert_recommended(m);
    tv_model_free(m);
    // a value out of range fails the load naming the file and the key
    write_text(path, "{\"temperature\": 0.6, \"top_p\": 2}\n");
    expect_load_error(dir, "generation_config.json", "top_p");
    write_text(path, "{\"top_k\": 2.5}\n");
    expect_load_error(dir, "generation_config.json", "top_k");
}

// ---- FP8 E4M3 weights with scales ----
// The reference decoder (written apart from hf.c's): E4M3 = (-1)^s * (8 + m) * 2^(e - 10), e > 0;
// m * 2^-9, e = 0; e = 15, m = 7 is NaN (never generated below).
static float e4m3_ref(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    const double v = e ? ldexp(8 + m, e - 10) : ldexp(m, -9);
    return (float)(b & 0x80 ? -v : v);
}

typedef struct fp8_src {
    const st_tensor *t;          // the F32 weight it replaces (shape only)
    uint8_t *q;                  // (rows, cols) e4m3 bytes
    float *scale;                // the scale tensor's values
    int64_t n_scale, scale_cols;   // values, and per row of the scale tensor
    float *deq;                  // (rows, cols) e4m3(q) * scale, HF row order: the reference
    size_t row_bytes;
} fp8_src;

static tv_status fill_q(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)err;
    const fp8_src *c = user;
    memcpy(dst, c->q + (size_t)row0 * (size_t)c->t->shape[1], (size_t)n_rows * (size_t)c->t->shape[1]);
    return TV_OK;
}
static tv_status fill_scale(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)err;
    const fp8_src *c = user;
    memcpy(dst, c->scale + row0 * c->scale_cols, (size_t)(n_rows * c->scale_cols) * sizeof(float));
    return TV_OK;
}
static tv_status fill_deq(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)err;
    const fp8_src *c = user;
    memcpy(dst, c->deq + (size_t)row0 * (size_t)c->t->shape[1], (size_t)(n_rows * c->t->shape[1]) * sizeof(float));
    return TV_OK;
}

// From synth's F32 llama folder (Q/K permuted at load): `fp8` with q/k/v/gate/up as FP8 + 128x128
// block scale_inv, o_proj FP8 + one per-tensor weight_scale (and an input_scale), down_proj FP8 +
// per-row scales; `ref` with those weights as the F32 reference values. mode 1: no
// weight_block_size in config.json; mode 2: a block scale of the wrong shape.
static void write_fp8_pair(const char *src_dir, const char *fp8, const char *ref, int mode) {
    char path[700], cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' && mkdir -p '%s' '%s' && cp '%s/config.json' '%s/' && cp '%s/config.json' '%s/'", fp8, ref,
             fp8, ref, src_dir, fp8, src_dir, ref);
    assert_int_equal(system(cmd), 0);
    if (mode != 1) {   // quantization_config as DeepSeek-V3 / Qwen3 FP8 checkpoints write it
        snprintf(path, sizeof path, "%s/config.json", fp8);
        char *text = read_all(path, NULL);
        cJSON *root = cJSON_Parse(text);
        free(text);
        cJSON *qc = cJSON_AddObjectToObject(root, "quantization_config");
        cJSON_AddStringToObject(qc, "quant_method", "fp8");
        cJSON_AddStringToObject(qc, "fmt", "e4m3");
        cJSON_AddItemToObject(qc, "weight_block_size", cJSON_CreateIntArray((const int[]){128, 128}, 2));
        text = cJSON_Print(root);
        write_text(path, text);
        free(text);
        cJSON_Delete(root);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", src_dir);
    tv_error err = {0};
    st_file *f = st_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    const int64_t n = st_n_tensors(f);
    copy_src *copies = calloc((size_t)n, sizeof *copies);
    fp8_src *q = calloc((size_t)n, sizeof *q);
    st_writer *wq = st_writer_create(), *wr = st_writer_create();
    uint64_t rng = 12345;
    static const float input_scale = 0.5f;
    fp8_src in = {.scale = (float *)&input_scale, .n_scale = 1, .scale_cols = 1};
    for (int64_t i = 0; i < n; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        copies[i] = (copy_src){t, (size_t)t->shape[t->n_dims - 1] * st_dtype_size(t->dtype)};
        const bool block = strstr(t->name, "proj.weight") && !strstr(t->name, "o_proj") && !strstr(t->name, "down_proj");
        const bool tensor = strstr(t->name, "o_proj.weight") != NULL, row = strstr(t->name, "down_proj.weight") != NULL;
        if (!block && !tensor && !row) {
            assert_int_equal(st_writer_add(wq, t->name, t->dtype, t->n_dims, t->shape, copy_fill, &copies[i], &err), TV_OK);
            assert_int_equal(st_writer_add(wr, t->name, t->dtype, t->n_dims, t->shape, copy_fill, &copies[i], &err), TV_OK);
            continue;
        }
        fp8_src *c = &q[i];
        const int64_t R = t->shape[0], C = t->shape[1], sr = block ? (R + 127) / 128 : 1, sc = block ? (C + 127) / 128 : 1;
        c->t = t;
        c->n_scale = block ? sr * sc : tensor ? 1 : R;
        c->scale_cols = sc;
        c->q = malloc((size_t)(R * C));
        c->scale = malloc((size_t)c->n_scale * sizeof *c->scale);
        c->deq = malloc((size_t)(R * C) * sizeof *c->deq);
        for (int64_t k = 0; k < c->n_scale; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            c->scale[k] = ldexpf(1.0f + (float)(rng >> 40) / (float)(1 << 24), -12 - (int)(rng >> 62));
        }
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < C; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                uint8_t b = (uint8_t)(rng >> 56);
                if ((b & 0x7F) == 0x7F) b ^= 1;   // no NaN
                c->q[r * C + k] = b;
                const float s = c->scale[block ? (r / 128) * sc + k / 128 : tensor ? 0 : r];
                c->deq[r * C + k] = e4m3_ref(b) * s;
            }
        char name[600];
        assert_int_equal(st_writer_add(wq, t->name, ST_F8_E4M3, 2, t->shape, fill_q, c, &err), TV_OK);
        const int64_t shp[2] = {block ? sr + (mode == 2) : tensor ? 1 : R, block ? sc : 1};
        snprintf(name, sizeof name, "%s%s", t->name, block ? "_scale_inv" : "_scale");
        if (mode == 2 && block) {   // the wrong shape: more rows than the blocks
            float *big = realloc(c->scale, (size_t)((sr + 1) * sc) * sizeof *big);
            c->scale = big;
            for (int64_t k = sr * sc; k < (sr + 1) * sc; k++) big[k] = 1.0f;
            c->n_scale = (sr + 1) * sc;
        }
        assert_int_equal(st_writer_add(wq, name, ST_F32, tensor ? 1 : 2, shp, fill_scale, c, &err), TV_OK);
        if (tensor) {
            snprintf(name, sizeof name, "%.*sinput_scale", (int)(strlen(t->name) - strlen("weight")), t->name);
            in.t = t;
            assert_int_equal(st_writer_add(wq, name, ST_F32, 1, (const int64_t[]){1}, fill_scale, &in, &err), TV_OK);
        }
        assert_int_equal(st_writer_add(wr, t->name, ST_F32, 2, t->shape, fill_deq, c, &err), TV_OK);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", fp8);
    if (st_writer_write(wq, path, &err)) fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/model.safetensors", ref);
    if (st_writer_write(wr, path, &err)) fail_msg("%s", err.msg);
    st_writer_free(wq);
    st_writer_free(wr);
    for (int64_t i = 0; i < n; i++) {
        free(q[i].q);
        free(q[i].scale);
        free(q[i].deq);
    }
    free(q);
    free(copies);
    st_close(f);
}

static void test_fp8(void **state) {
    (void)state;
    // the decoder against known values
    assert_true(hf_e4m3_to_f32(0x38) == 1.0f && hf_e4m3_to_f32(0xB8) == -1.0f && hf_e4m3_to_f32(0x7E) == 448.0f);
    assert_true(hf_e4m3_to_f32(0x01) == ldexpf(1, -9) && hf_e4m3_to_f32(0x08) == ldexpf(1, -6) && isnan(hf_e4m3_to_f32(0x7F)));
    for (int b = 0; b < 256; b++)
        if ((b & 0x7F) != 0x7F && hf_e4m3_to_f32((uint8_t)b) != e4m3_ref((uint8_t)b)) fail_msg("e4m3 %02x", b);
    char src[600], fp8[600], ref[600];
    snprintf(src, sizeof src, "%s/fp8-src", g_dir);
    snprintf(fp8, sizeof fp8, "%s/fp8", g_dir);
    snprintf(ref, sizeof ref, "%s/fp8-ref", g_dir);
    write_synth("llama", TV_TYPE_F32, true, src);
    write_fp8_pair(src, fp8, ref, 0);
    // every tensor of the FP8 folder as loaded = the reference folder's, bit for bit (Q/K permuted alike)
    tv_error err = {0};
    hf_model *a = hf_open(fp8, &err), *b = a ? hf_open(ref, &err) : NULL;
    if (!a || !b) fail_msg("%s", err.msg);
    assert_int_equal(hf_n_tensors(a), hf_n_tensors(b));
    int n_fp8 = 0;
    for (int i = 0; i < hf_n_tensors(a); i++) {
        const char *na, *nb;
        const tv_tensor *ta = hf_tensor_at(a, i, &na), *tb = hf_tensor_at(b, i, &nb);
        assert_string_equal(na, nb);
        assert_int_equal(ta->type, tb->type);
        assert_int_equal(ta->nbytes, tb->nbytes);
        if (memcmp(ta->data, tb->data, ta->nbytes)) fail_msg("%s: the dequantized FP8 weight differs from the reference", na);
        n_fp8 += strstr(ta->name, "proj.weight") != NULL;
    }
    assert_int_equal(n_fp8, 7 * 4);
    hf_close(a);
    hf_close(b);
    // the models: same logits; quantized at load to Q8_0: same logits again
    tv_model *ma = load(fp8), *mb = load(ref);
    assert_same_logits("fp8 vs f32 reference", ma, mb);
    tv_model_free(ma);
    tv_model_free(mb);
    ma = load_quantized(fp8, "Q8_0");
    mb = load_quantized(ref, "Q8_0");
    assert_same_logits("fp8 vs f32 reference, --quantize Q8_0", ma, mb);
    tv_model_free(ma);
    tv_model_free(mb);
    // bad scales
    write_fp8_pair(src, fp8, ref, 1);
    expect_load_error(fp8, "weight_block_size", "gate_proj.weight");
    write_fp8_pair(src, fp8, ref, 2);
    expect_load_error(fp8, "gate_proj.weight_scale_inv", "block scales");
}

// ---- bad input ----
static void expect_load_error(const char *path, const char *want1, const char *want2) {
    tv_error err = {0};
    tv_model *m = tv_model_load(path, NULL, &err);
    if (m) fail_msg("%s loaded; expected an error with '%s'", path, want1);
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fail_msg("error '%s' does not name '%s'%s%s", err.msg, want1, want2 ? " and " : "", want2 ? want2 : "");
}

// Edits DIR/config.json: key set to a number (or removed when value < 0), in text_config when present.
static void edit_config(const char *dir, const char *key, double value, const char *str) {
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = read_all(path, NULL);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text), *obj = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    free(text);
    if (!cJSON_IsObject(obj) || !strcmp(key, "model_type")) obj = root;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (str) cJSON_AddStringToObject(obj, key, str);
    else if (value >= 0) cJSON_AddNumberToObject(obj, key, value);
    text = cJSON_Print(root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(root);
}

static void drop_tensor(const char *dir, const char *name);

static void test_bad_config(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad-hf", g_dir);
    write_synth("qwen2", TV_TYPE_F32, true, dir);
    edit_config(dir, "hidden_size", -1, NULL);
    expect_load_error(dir, "config.json", "hidden_size is missing");
    rm_rf(dir);

    write_synth("qwen2", TV_TYPE_F32, true, dir);   // shape: the MLP width disagrees with the tensors
    edit_config(dir, "intermediate_size", 512, NULL);
    expect_load_error(dir, "blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight in ");
    rm_rf(dir);

    write_synth("qwen2", TV_TYPE_F32, true, dir);   // dtype: config says float16, the weights are F32
    edit_config(dir, "torch_dtype", 0, "float16");
    expect_load_error(dir, "model.safetensors: tensor 'model.", "is F32 but config.json's torch_dtype is float16");
    rm_rf(dir);

    write_synth("qwen3moe", TV_TYPE_F32, true, dir);   // an expert missing; experts disagreeing in shape
    drop_tensor(dir, "model.layers.2.mlp.experts.7.up_proj.weight");
    expect_load_error(dir, "model.layers.2.mlp.experts.7.up_proj.weight' is missing", "blk.2.ffn_up_exps.weight");
    rm_rf(dir);
    write_synth("qwen3moe", TV_TYPE_F32, true, dir);
    edit_config(dir, "num_experts", 8, NULL);   // config says 8, the folder has 16
    expect_load_error(dir, "but config.json has 8 experts", "model.layers.0.mlp.experts.");
    rm_rf(dir);
    write_synth("qwen3moe", TV_TYPE_F32, true, dir);
    edit_config(dir, "moe_intermediate_size", 128, NULL);   // the expert width disagrees with the tensors
    expect_load_error(dir, "blk.0.ffn_gate_exps.weight", "model.layers.0.mlp.experts.*.gate_proj.weight in ");
    rm_rf(dir);

    write_synth("qwen35", TV_TYPE_F32, true, dir);   // Gated DeltaNet heads disagreeing with the tensors
    edit_config(dir, "linear_num_value_heads", 4, NULL);
    expect_load_error(dir, "linear_num_value_heads 4", "model.layers.0.linear_attn.");
    rm_rf(dir);

    write_synth("qwen35moe", TV_TYPE_F32, true, dir);   // fused experts narrower in config.json than in the folder
    edit_config(dir, "moe_intermediate_size", 64, NULL);
    expect_load_error(dir, "tensor 'model.language_model.layers.0.mlp.experts.down_proj' is not [16, 256, 64]",
                      "moe_intermediate_size 64");
    rm_rf(dir);
    write_synth("qwen3next", TV_TYPE_F32, true, dir);   // the linear layers disagreeing with the key heads
    edit_config(dir, "linear_num_key_heads", 2, NULL);
    expect_load_error(dir, "model.layers.0.linear_attn.conv1d.weight", "linear_num_key_heads 2");
    rm_rf(dir);
    write_synth("gpt-oss", TV_TYPE_F32, true, dir);   // gpt-oss: the expert count disagrees with the fused tensors
    edit_config(dir, "num_local_experts", 8, NULL);
    expect_load_error(dir, "tensor 'model.layers.0.mlp.experts.", "is not [8, ");
    rm_rf(dir);

    write_synth("gemma4e", TV_TYPE_F32, true, dir);   // Gemma 4: a missing key; per-layer sizes disagreeing
    edit_config(dir, "global_head_dim", -1, NULL);
    expect_load_error(dir, "config.json", "global_head_dim is missing");
    edit_config(dir, "global_head_dim", 128, NULL);
    edit_config(dir, "num_global_key_value_heads", 2, NULL);   // the global layers' k_proj has 1 head
    expect_load_error(dir, "blk.2.attn_k.weight", "model.language_model.layers.2.self_attn.k_proj.weight in ");
    edit_config(dir, "num_global_key_value_heads", 1, NULL);
    edit_config(dir, "hidden_size_per_layer_input", 32, NULL);   // the per-layer table is 64 per layer
    expect_load_error(dir, "per_layer_token_embd.weight", "model.language_model.embed_tokens_per_layer.weight in ");
    rm_rf(dir);

    // Gemma 4 with experts: an expert tensor missing, the expert count / width / keys disagreeing
    write_synth("gemma4moe", TV_TYPE_F32, true, dir);
    drop_tensor(dir, "model.language_model.layers.1.experts.down_proj");
    expect_load_error(dir, "tensor 'model.language_model.layers.1.experts.down_proj' is missing", "blk.1.ffn_down_exps.weight");
    rm_rf(dir);
    write_synth("gemma4moe", TV_TYPE_F32, true, dir);
    drop_tensor(dir, "model.language_model.layers.3.router.per_expert_scale");
    expect_load_error(dir, "tensor 'model.language_model.layers.3.router.per_expert_scale' is missing", "enable_moe_block");
    rm_rf(dir);
    write_synth("gemma4moe", TV_TYPE_F32, true, dir);
    edit_config(dir, "num_experts", 8, NULL);   // config says 8, the folder has 16
    expect_load_error(dir, "model.safetensors: tensor 'model.language_model.layers.0.", "8 experts");
    edit_config(dir, "num_experts", 16, NULL);
    edit_config(dir, "moe_intermediate_size", 64, NULL);   // the experts are 128 wide
    expect_load_error(dir, "model.safetensors: tensor 'model.language_model.layers.0.experts.", "moe_intermediate_size 64");
    edit_config(dir, "moe_intermediate_size", 128, NULL);
    edit_config(dir, "top_k_experts", -1, NULL);
    expect_load_error(dir, "config.json", "top_k_experts is missing");
    edit_config(dir, "top_k_experts", 4, NULL);
    edit_config(dir, "enable_moe_block", -1, NULL);   // experts in the folder, none in config.json
    expect_load_error(dir, "model.safetensors: tensor 'model.language_model.layers.0.", "enable_moe_block is not true");
    rm_rf(dir);

    write_synth("qwen2", TV_TYPE_F32, true, dir);   // unsupported model type
    edit_config(dir, "model_type", 0, "bert");
    expect_load_error(dir, "config.json: model_type 'bert' is not supported", NULL);
    rm_rf(dir);

    write_synth("llama", TV_TYPE_F32, true, dir);   // a shard listed but absent
    shard(dir);
    char path[600];
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    unlink(path);
    expect_load_error(dir, "model-00002-of-00002.safetensors", "listed in model.safetensors.index.json but absent");
    rm_rf(dir);

    write_synth("llama", TV_TYPE_F32, true, dir);   // a truncated file: header claims more than is there
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(truncate(path, 100), 0);
    expect_load_error(dir, "model.safetensors: header claims", "but the file has only 92");
    assert_int_equal(truncate(path, 5), 0);
    expect_load_error(dir, "model.safetensors: truncated", NULL);
    rm_rf(dir);
}

// Rewrites DIR/model.safetensors without the tensor `name`.
static void drop_tensor(const char *dir, const char *name) {
    char path[600], tmp[640];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    tv_error err = {0};
    st_file *f = st_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    const int64_t n = st_n_tensors(f);
    copy_src *srcs = calloc((size_t)n, sizeof *srcs);
    st_writer *w = st_writer_create();
    int dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (!strcmp(t->name, name)) { dropped++; continue; }
        srcs[i] = (copy_src){t, (size_t)t->shape[t->n_dims - 1] * st_dtype_size(t->dtype)};
        assert_int_equal(st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape, copy_fill, &srcs[i], &err), TV_OK);
    }
    assert_int_equal(dropped, 1);
    if (st_writer_write(w, tmp, &err)) fail_msg("%s", err.msg);
    st_writer_free(w);
    st_close(f);
    free(srcs);
    assert_int_equal(rename(tmp, path), 0);
}

// A safetensors image: 8-byte length + header (padded to 8 with spaces) + data_bytes zero bytes.
static uint8_t *image(const char *header, size_t data_bytes, size_t *size) {
    size_t h = strlen(header), hp = (h + 7) & ~(size_t)7;
    *size = 8 + hp + data_bytes;
    uint8_t *b = calloc(1, *size);
    uint64_t n = hp;
    memcpy(b, &n, 8);
    memset(b + 8, ' ', hp);
    memcpy(b + 8, header, h);
    return b;
}

// gpt-oss as released: MXFP4 experts (<part>_blocks + <part>_scales, HF's nibble order, rows of gate and
// up interleaved), the rest BF16, gives the logits of the GGUF llama.cpp's converter makes of it (the
// same MXFP4 blocks, the rest BF16); a block tensor without its scales fails naming both.
static void test_gptoss_mxfp4(void **state) {
    (void)state;
    char gguf[512], dir[512];
    snprintf(gguf, sizeof gguf, "%s/gptoss-mxfp4.gguf", g_dir);
    snprintf(dir, sizeof dir, "%s/gptoss-mxfp4-hf", g_dir);
    write_synth("gpt-oss", TV_TYPE_MXFP4, false, gguf);
    write_synth("gpt-oss", TV_TYPE_MXFP4, true, dir);
    tv_model *a = load(gguf), *b = load(dir);
    assert_int_equal(model_layers(b)[1].ffn_up_exps.type, TV_TYPE_MXFP4);   // kept as stored, not a float copy
    assert_same_logits("gpt-oss MXFP4", a, b);
    tv_model_free(a);
    tv_model_free(b);
    drop_tensor(dir, "model.layers.1.mlp.experts.down_proj_scales");
    expect_load_error(dir, "model.layers.1.mlp.experts.down_proj_blocks' has no", "down_proj_scales");
    rm_rf(dir);
    unlink(gguf);
}

static void expect_st_error(const char *header, size_t data_bytes, const char *want) {
    size_t size;
    uint8_t *b = image(header, data_bytes, &size);
    tv_error err = {0};
    st_file *f = st_open_memory(b, size, "x.safetensors", &err);
    if (f) fail_msg("'%s' parsed; expected '%s'", header, want);
    if (!strstr(err.msg, want)) fail_msg("error '%s' lacks '%s'", err.msg, want);
    free(b);
}

static void test_safetensors_checks(void **state) {
    (void)state;
    size_t size;
    uint8_t *b = image("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}", 32, &size);
    tv_error err = {0};
    st_file *f = st_open_memory(b, size, "ok.safetensors", &err);
    if (!f) fail_msg("%s", err.msg);
    assert_int_equal(st_n_tensors(f), 2);
    const st_tensor *t = st_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->nbytes, 24);
    assert_non_null(st_find(f, "b"));
    assert_null(st_find(f, "c"));
    assert_string_equal(st_metadata(f, "format"), "pt");
    st_close(f);
    free(b);

    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, "tensors 'a' and 'b' overlap");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}", 16, "tensor 'a': data at offset");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "tensor 'a': data_offsets [0, 8] but F32");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 16, "tensor 'a': data_offsets [0, 32] outside");
    expect_st_error("{\"a\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,1]}}", 8, "tensor 'a': unknown dtype");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8, "tensor 'a': shape");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor 'a' is listed twice");
    expect_st_error("[1,2]", 0, "header is not a JSON object");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 8, "header is not a JSON object");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_checks),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_same_model_f32),
        cmocka_unit_test(test_same_model_f16),
        cmocka_unit_test(test_gptoss_mxfp4),
        cmocka_unit_test(test_quantize_q8_0),
        cmocka_unit_test(test_quantize_q4_0),
        cmocka_unit_test(test_quantize_cached_experts),
        cmocka_unit_test(test_quantize_bad_type),
        cmocka_unit_test(test_llama_cpp_oracle),
        cmocka_unit_test(test_generation_config),
        cmocka_unit_test(test_fp8),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
