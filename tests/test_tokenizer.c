// test_tokenizer.c — tokenizers against references we did not write:
//   * llama2.c run.c's encode/decode (fixtures/llama2c-reference.jsonl, aidreams260K tokenizer)
//   * llama.cpp's tokenizer test vectors (vocab/ggml-vocab-*.gguf + .inp/.out), one test per vocab
//   * streaming detokenizer on multi-byte characters split across byte-fallback tokens
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tok_impl.h"   // white-box: the word-by-word SPM shortcut vs the whole-text merge

#include "test_util.h"
#include "vocab_vectors.h"

// ---------------------------------------------------------------------------------------------
// llama2.c

static void test_llama2c_fixture(void **state) {
    (void)state;
    char path[1024], tokpath[1024];
    snprintf(path, sizeof path, "%s/fixtures/llama2c-reference.jsonl", shared_dir());
    snprintf(tokpath, sizeof tokpath, "%s/models/aidreams260K.tok512.bin", shared_dir());
    char *data = read_all(path, NULL);
    if (!data) { printf("SKIP: %s not found\n", path); skip(); }
    tv_error err = {0};
    tv_tokenizer *t = tokenizer_load_llama2c(tokpath, 512, &err);
    assert_non_null(t);
    assert_int_equal(tv_tokenizer_n_vocab(t), 512);
    assert_int_equal(tv_tokenizer_bos(t), 1);
    int n_prompts = 0, n_texts = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const char *tok = cJSON_GetStringValue(cJSON_GetObjectItem(j, "tokenizer"));
        if (!tok || !strstr(tok, "aidreams")) { cJSON_Delete(j); continue; }
        const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(j, "prompt"));
        cJSON *pids = cJSON_GetObjectItem(j, "prompt_ids"), *gids = cJSON_GetObjectItem(j, "generated_ids");
        int32_t *ids;
        size_t n;
        assert_int_equal(tv_tokenize(t, prompt, strlen(prompt), true, false, &ids, &n, &err), TV_OK);
        assert_int_equal(n, (size_t)cJSON_GetArraySize(pids));
        for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], cJSON_GetArrayItem(pids, (int)i)->valueint);
        free(ids);
        n_prompts++;
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
        if (text) {
            size_t cap = (size_t)cJSON_GetArraySize(pids) + (size_t)cJSON_GetArraySize(gids);
            int32_t *all = malloc(cap * sizeof *all);
            size_t m = 0;
            for (int i = 0; i < cJSON_GetArraySize(pids); i++) all[m++] = cJSON_GetArrayItem(pids, i)->valueint;
            for (int i = 0; i < cJSON_GetArraySize(gids); i++) {
                int id = cJSON_GetArrayItem(gids, i)->valueint;
                if (id == 1) break;
                all[m++] = id;
            }
            char *out;
            size_t out_len;
            assert_int_equal(tv_detokenize(t, all, m, true, &out, &out_len, &err), TV_OK);
            assert_string_equal(out, text);
            // streaming gives the same text
            tv_detok *d = tv_detok_create(t, true);
            char *acc = calloc(out_len + 64, 1);
            size_t an = 0;
            for (size_t i = 0; i < m; i++) {
                const char *piece;
                size_t pn = tv_detok_push(d, all[i], &piece);
                assert_true(an + pn <= out_len + 63);
                memcpy(acc + an, piece, pn);
                an += pn;
            }
            const char *piece;
            size_t pn = tv_detok_flush(d, &piece);
            memcpy(acc + an, piece, pn);
            an += pn;
            assert_int_equal(an, out_len);
            assert_memory_equal(acc, out, an);
            free(acc);
            tv_detok_free(d);
            free(out);
            free(all);
            n_texts++;
        }
        cJSON_Delete(j);
    }
    printf("llama2c aidreams: %d prompts encoded, %d texts decoded, all match\n", n_prompts, n_texts);
    assert_true(n_prompts >= 3);
    assert_true(n_texts >= 3);
    tv_tokenizer_free(t);
    free(data);
}

// ---------------------------------------------------------------------------------------------
// llama.cpp vocab vectors

// Runs <vocab>.gguf against .inp/.out: inputs separated by "\n__ggml_vocab_test__\n", one line of
// expected ids per input (no BOS, parse_special off).
static void run_vocab(const char *name) {
    char gpath[1024], label[128];
    snprintf(gpath, sizeof gpath, "%s/vocab/ggml-vocab-%s.gguf", shared_dir(), name);
    snprintf(label, sizeof label, "vocab %s", name);
    tv_error err = {0};
    gguf_ctx *g = gguf_open(gpath, &err);
    if (!g) { printf("SKIP: %s\n", err.msg); skip(); }
    tv_tokenizer *t = tokenizer_from_gguf(g, &err);
    if (!t) fail_msg("%s", err.msg);
    check_vocab_vectors(t, gpath, label);
    tv_tokenizer_free(t);
    gguf_close(g);
}

static void test_vocab_llama_spm(void **s) { (void)s; run_vocab("llama-spm"); }
static void test_vocab_gpt2(void **s) { (void)s; run_vocab("gpt-2"); }
static void test_vocab_falcon(void **s) { (void)s; run_vocab("falcon"); }
static void test_vocab_mpt(void **s) { (void)s; run_vocab("mpt"); }
static void test_vocab_starcoder(void **s) { (void)s; run_vocab("starcoder"); }
static void test_vocab_refact(void **s) { (void)s; run_vocab("refact"); }
static void test_vocab_deepseek_coder(void **s) { (void)s; run_vocab("deepseek-coder"); }
static void test_vocab_bert_bge(void **s) { (void)s; run_vocab("bert-bge"); }

// ---------------------------------------------------------------------------------------------
// streaming detokenizer and errors on the Llama 2 SPM vocab

static tv_tokenizer *load_spm(gguf_ctx **g) {
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/vocab/ggml-vocab-llama-spm.gguf", shared_dir());
    tv_error err = {0};
    *g = gguf_open(gpath, &err);
    if (!*g) return NULL;
    tv_tokenizer *t = tokenizer_from_gguf(*g, &err);
    assert_non_null(t);
    return t;
}

static void test_detok_stream_split_utf8(void **state) {
    (void)state;
    gguf_ctx *g;
    tv_tokenizer *t = load_spm(&g);
    if (!t) { printf("SKIP: llama-spm vocab not found\n"); skip(); }
    // " this is 🦙.cpp": the llama is 4 byte-fallback tokens (llama.cpp's expected ids)
    const char *text = "Hi 🦙 ok é";
    int32_t *ids;
    size_t n;
    tv_error err = {0};
    assert_int_equal(tv_tokenize(t, text, strlen(text), true, false, &ids, &n, &err), TV_OK);
    assert_int_equal(ids[0], 1);
    int n_bytes_tok = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = tv_tokenizer_vocab_piece(t, ids[i], &len);
        n_bytes_tok += len == 6 && p[0] == '<' && p[1] == '0';
    }
    assert_int_equal(n_bytes_tok, 4);   // 🦙 = F0 9F A6 99 as <0xF0><0x9F><0xA6><0x99>
    tv_detok *d = tv_detok_create(t, true);
    char acc[128] = {0};
    size_t an = 0;
    for (size_t i = 0; i < n; i++) {
        const char *out;
        size_t k = tv_detok_push(d, ids[i], &out);
        // every chunk is complete UTF-8: never starts with a continuation byte, never ends mid-char
        if (k) {
            assert_true(((uint8_t)out[0] & 0xC0) != 0x80);
            uint8_t last = (uint8_t)out[k - 1];
            assert_true(last < 0x80 || (last & 0xC0) == 0x80);
        }
        memcpy(acc + an, out, k);
        an += k;
    }
    const char *out;
    an += tv_detok_flush(d, &out);
    acc[an] = '\0';
    assert_string_equal(acc, text);   // the leading space after BOS is dropped
    // an unfinished sequence at flush becomes U+FFFD
    tv_detok_reset(d);
    size_t k = tv_detok_push(d, tv_tokenizer_find(t, "<0xF0>", 6), &out);
    assert_int_equal(k, 0);
    k = tv_detok_push(d, tv_tokenizer_find(t, "<0x9F>", 6), &out);
    assert_int_equal(k, 0);
    k = tv_detok_flush(d, &out);
    assert_int_equal(k, 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    // an invalid continuation: E2 then 'A' -> U+FFFD then A
    tv_detok_reset(d);
    k = tv_detok_push(d, tv_tokenizer_find(t, "<0xE2>", 6), &out);
    assert_int_equal(k, 0);
    k = tv_detok_push(d, tv_tokenizer_find(t, "A", 1), &out);
    assert_int_equal(k, 4);
    assert_memory_equal(out, "\xef\xbf\xbd" "A", 4);
    tv_detok_free(d);
    free(ids);
    tv_tokenizer_free(t);
    gguf_close(g);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    gguf_ctx *g;
    tv_tokenizer *t = load_spm(&g);
    if (!t) { printf("SKIP: llama-spm vocab not found\n"); skip(); }
    int32_t *ids;
    size_t n;
    tv_error err = {0};
    const char bad[] = "abc\xc3(def";
    assert_int_equal(tv_tokenize(t, bad, sizeof bad - 1, true, false, &ids, &n, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "byte offset 3"));
    const char sur[] = "ok \xed\xa0\x80";   // a UTF-16 surrogate
    assert_int_equal(tv_tokenize(t, sur, sizeof sur - 1, true, false, &ids, &n, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "byte offset 3"));
    // special tokens: parsed only when asked
    const char *s = "<s>Hi</s>";
    assert_int_equal(tv_tokenize(t, s, strlen(s), false, true, &ids, &n, &err), TV_OK);
    assert_true(n >= 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[n - 1], 2);
    free(ids);
    assert_int_equal(tv_tokenize(t, s, strlen(s), false, false, &ids, &n, &err), TV_OK);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] != 1 && ids[i] != 2);
    free(ids);
    tv_tokenizer_free(t);
    gguf_close(g);
}


// The word-by-word SPM encode (a speed shortcut taken when no vocab piece spans a word start) must
// give exactly the ids of merging the whole text at once, as llama.cpp does.
static void test_spm_split_equivalence(void **state) {
    (void)state;
    gguf_ctx *g;
    tv_tokenizer *t = load_spm(&g);
    if (!t) { printf("SKIP: llama-spm vocab not found\n"); skip(); }
    assert_true(t->spm_split_ok);
    char *text = NULL;
    size_t len = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf.inp", shared_dir());
    text = read_all(path, &len);   // every vector input at once: whitespace runs, emoji, CJK, code
    assert_non_null(text);
    int32_t *a, *b;
    size_t na, nb;
    tv_error err = {0};
    assert_int_equal(tv_tokenize(t, text, len, true, true, &a, &na, &err), TV_OK);
    t->spm_split_ok = false;
    assert_int_equal(tv_tokenize(t, text, len, true, true, &b, &nb, &err), TV_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    printf("spm word-by-word == whole text on %zu bytes (%zu ids)\n", len, na);
    free(a);
    free(b);
    free(text);
    tv_tokenizer_free(t);
    gguf_close(g);
}

// ---------------------------------------------------------------------------------------------
// hostile / unsupported GGUF tokenizer metadata is refused with a message naming the problem

static gguf_ctx *write_and_open(gguf_writer *w, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tok_test_%s.gguf", TV_BINARY_DIR, name);
    tv_error err = {0};
    assert_int_equal(gguf_writer_write(w, path, &err), TV_OK);
    gguf_writer_free(w);
    gguf_ctx *g = gguf_open(path, &err);
    if (!g) fail_msg("%s", err.msg);
    remove(path);   // the mapping stays valid after unlink
    return g;
}

static void test_gguf_metadata_errors(void **state) {
    (void)state;
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
    float scores[6] = {0, 0, 0, -1, -2, -0.5f};
    tv_error err = {0};
    // 1. no tokenizer.ggml.model
    gguf_writer *w = gguf_writer_create();
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    gguf_ctx *g = write_and_open(w, "nomodel");
    assert_null(tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, TV_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.model"));
    gguf_close(g);
    // 2. an unsupported model
    w = gguf_writer_create();
    gguf_set_str(w, "tokenizer.ggml.model", "unigram-xyz");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    g = write_and_open(w, "unigram");
    assert_null(tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, TV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "unigram-xyz"));
    gguf_close(g);
    // 3. scores of the wrong length
    w = gguf_writer_create();
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 5);
    g = write_and_open(w, "scores");
    assert_null(tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, TV_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "scores"));
    gguf_close(g);
    // 4. BPE with an unknown pre-tokenizer name
    const char *merges[] = {"a b"};
    w = gguf_writer_create();
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
    g = write_and_open(w, "pre");
    assert_null(tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, TV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "no-such-pre"));
    gguf_close(g);
    // 5. a tiny valid SPM vocab: "ab" merges by score, an unknown char falls back to UNK (no byte tokens)
    w = gguf_writer_create();
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 6);
    gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    g = write_and_open(w, "ok");
    tv_tokenizer *t = tokenizer_from_gguf(g, &err);
    if (!t) fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n;
    assert_int_equal(tv_tokenize(t, "abxa", 4, true, false, &ids, &n, &err), TV_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 1);   // BOS
    assert_int_equal(ids[1], 5);   // "ab"
    assert_int_equal(ids[2], 0);   // 'x' -> <unk>
    assert_int_equal(ids[3], 3);   // "a"
    free(ids);
    tv_tokenizer_free(t);
    gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c_fixture),
        cmocka_unit_test(test_vocab_llama_spm),
        cmocka_unit_test(test_vocab_gpt2),
        cmocka_unit_test(test_vocab_falcon),
        cmocka_unit_test(test_vocab_mpt),
        cmocka_unit_test(test_vocab_starcoder),
        cmocka_unit_test(test_vocab_refact),
        cmocka_unit_test(test_vocab_deepseek_coder),
        cmocka_unit_test(test_vocab_bert_bge),
        cmocka_unit_test(test_detok_stream_split_utf8),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_gguf_metadata_errors),
        cmocka_unit_test(test_spm_split_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
