// test_cli_errors.c — bad inputs through the real `tinyvllm` binary: each must end with one clear
// line on stderr naming the file or argument and the problem, a non-zero exit, and never a crash
// (a signal). Cases: missing file, wrong magic, truncation across the header, tensor data out of
// range, unknown tensor type, shapes inconsistent with the metadata, n_kv_heads not dividing
// n_heads, a prompt longer than the context, invalid UTF-8 in a prompt, unknown flags; files of the
// wrong kind (a text file renamed .gguf, a tokenizer given as the model, a model given as the
// tokenizer) named for what they are; detokenize without ids.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "formats/gguf.h"

static char g_model[512];   // a valid tiny GGUF
static char g_tmp[512];     // scratch file for variants

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

// Runs `tinyvllm <args>`; returns the exit status (or 128+signal) and the stderr text.
static int run(const char *args, char *err_out, size_t cap) {
    char cmd[4096], errf[600];
    snprintf(errf, sizeof errf, "%s/cli-errors.stderr", TV_BINARY_DIR);
    snprintf(cmd, sizeof cmd, "%s/tinyvllm %s >/dev/null 2>%s", TV_BINARY_DIR, args, errf);
    int st = system(cmd);
    size_t n = 0;
    unsigned char *e = slurp(errf, &n);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(err_out, e ? (char *)e : "", e ? n : 0);
    err_out[e ? n : 0] = 0;
    free(e);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

// The command fails cleanly: exit code `code`, exactly one line on stderr, containing each needle.
static void expect_error(const char *args, int code, const char *needle1, const char *needle2) {
    char e[8192];
    int rc = run(args, e, sizeof e);
    if (rc != code) fail_msg("`tinyvllm %s`: exit %d, want %d; stderr: %s", args, rc, code, e);
    size_t len = strlen(e);
    if (len == 0 || e[len - 1] != '\n' || memchr(e, '\n', len - 1))
        fail_msg("`tinyvllm %s`: want one line on stderr, got: %s", args, e);
    if (needle1 && !strstr(e, needle1)) fail_msg("`tinyvllm %s`: stderr lacks '%s': %s", args, needle1, e);
    if (needle2 && !strstr(e, needle2)) fail_msg("`tinyvllm %s`: stderr lacks '%s': %s", args, needle2, e);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_model, sizeof g_model, "%s/cli-errors-tiny.gguf", TV_BINARY_DIR);
    snprintf(g_tmp, sizeof g_tmp, "%s/cli-errors-bad.gguf", TV_BINARY_DIR);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tinyvllm synth --preset tiny --type F32 -o %s", TV_BINARY_DIR, g_model);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_missing_file(void **state) {
    (void)state;
    expect_error("generate -m /nonexistent/model.gguf -p hi", 1, "/nonexistent/model.gguf", NULL);
    expect_error("info -m /nonexistent/model.gguf", 1, "/nonexistent/model.gguf", NULL);
}

static void test_wrong_magic(void **state) {
    (void)state;
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 131 + 7);
    memcpy(junk, "GGUX", 4);
    spit(g_tmp, junk, sizeof junk);
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s -p hi", g_tmp);
    expect_error(args, 1, g_tmp, NULL);
    spit(g_tmp, "", 0);
    expect_error(args, 1, g_tmp, NULL);
}

// Truncations at many offsets across the header and into the data: every one a clean error.
static void test_truncation(void **state) {
    (void)state;
    size_t n;
    unsigned char *b = slurp(g_model, &n);
    assert_non_null(b);
    tv_error err = {0};
    gguf_ctx *g = gguf_open(g_model, &err);
    assert_non_null(g);
    size_t data_off = gguf_data_offset(g);
    gguf_close(g);
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,2 -n 2", g_tmp);
    int n_cases = 0;
    for (size_t cut = 0; cut < n; cut += cut < 64 ? 1 : cut < data_off ? 37 : 4099) {
        spit(g_tmp, b, cut);
        expect_error(args, 1, g_tmp, NULL);
        n_cases++;
    }
    print_message("%d truncations (header %zu bytes, file %zu) each failed cleanly\n", n_cases, data_off, n);
    free(b);
}

// Rewrites the valid model with one change: a metadata value (u32, or str when set; dropped when
// is_drop), or a tensor dropped.
typedef struct { const char *key; uint32_t u32; const char *drop_tensor; const char *str; bool is_drop; } variant;

static void write_variant(const variant *v) {
    tv_error err = {0};
    gguf_ctx *g = gguf_open(g_model, &err);
    assert_non_null(g);
    gguf_writer *w = gguf_writer_create();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *k = gguf_kv_key(g, i);
        if (!v->key || strcmp(k, v->key)) gguf_set_value(w, k, gguf_kv_value(g, i));
        else if (v->str) gguf_set_str(w, k, v->str);
        else if (!v->is_drop) gguf_set_u32(w, k, v->u32);
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (v->drop_tensor && !strcmp(t->name, v->drop_tensor)) continue;
        assert_int_equal(gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err), TV_OK);
    }
    assert_int_equal(gguf_writer_write(w, g_tmp, &err), TV_OK);
    gguf_writer_free(w);
    gguf_close(g);
}

static void test_inconsistent_metadata(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,2 -n 2", g_tmp);
    variant shape = {.key = "llama.feed_forward_length", .u32 = 100};
    write_variant(&shape);
    expect_error(args, 1, g_tmp, "shape");
    variant kv = {.key = "llama.attention.head_count_kv", .u32 = 3};   // tiny has 4 heads
    write_variant(&kv);
    expect_error(args, 1, g_tmp, "does not divide");
    variant missing = {.drop_tensor = "blk.1.ffn_up.weight"};
    write_variant(&missing);
    expect_error(args, 1, g_tmp, "blk.1.ffn_up.weight");
}

// The model-family registry's errors name the architecture, the supported list, the key.
static void test_family_errors(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,2 -n 2", g_tmp);
    variant arch = {.key = "general.architecture", .str = "frobnet"};
    write_variant(&arch);
    expect_error(args, 1, "'frobnet'", "supported: llama, mistral");
    variant missing = {.key = "llama.block_count", .is_drop = true};
    write_variant(&missing);
    expect_error(args, 1, g_tmp, "llama.block_count is missing");
    variant range = {.key = "llama.attention.head_count", .u32 = 5000};
    write_variant(&range);
    expect_error(args, 1, "llama.attention.head_count = 5000", "out of range");
}

// Patches the type field of the tensor info of `name` in a copy of the model.
static void patch_tensor_type(const char *name, uint32_t type) {
    size_t n;
    unsigned char *b = slurp(g_model, &n);
    size_t nl = strlen(name);
    unsigned char *p = NULL;
    for (size_t i = 8; i + nl < n; i++)
        if (!memcmp(b + i, name, nl) && !memcmp(b + i - 8, &(uint64_t){nl}, 8)) { p = b + i + nl; break; }
    assert_non_null(p);
    uint32_t nd;
    memcpy(&nd, p, 4);
    memcpy(p + 4 + 8 * nd, &type, 4);
    spit(g_tmp, b, n);
    free(b);
}

static void test_unknown_tensor_type(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,2 -n 2", g_tmp);
    patch_tensor_type("output_norm.weight", 99);
    expect_error(args, 1, g_tmp, "99");
    patch_tensor_type("blk.0.attn_q.weight", 16);   // IQ2_XXS: known, not computable here
    expect_error(args, 1, g_tmp, NULL);
}

// A tensor whose data runs past the end of the file (file cut inside the last tensor).
static void test_tensor_data_out_of_range(void **state) {
    (void)state;
    size_t n;
    unsigned char *b = slurp(g_model, &n);
    spit(g_tmp, b, n - 100);
    free(b);
    char args[1024];
    snprintf(args, sizeof args, "info -m %s", g_tmp);
    expect_error(args, 1, g_tmp, NULL);
}

// Each wrong kind of file is named for what it is, not reported as a broken model or tokenizer.
static void test_file_mixups(void **state) {
    (void)state;
    char args[2048], text[600], tok[600];
    snprintf(text, sizeof text, "%s/cli-errors-readme.gguf", TV_BINARY_DIR);
    spit(text, "# tinyvllm\n\nA README renamed .gguf.\n", 35);
    snprintf(args, sizeof args, "generate -m %s -p hi", text);
    expect_error(args, 1, "is a text file (starts \"# tinyvllm\")", "not a model");
    snprintf(args, sizeof args, "info -m %s", text);
    expect_error(args, 1, "is a text file", "not a model");
    snprintf(args, sizeof args, "tokenize -m %s -p hi", text);
    expect_error(args, 1, "is a text file", "not a tokenizer");
    snprintf(args, sizeof args, "generate -m %s --tokenizer %s -p hi", g_model, text);
    expect_error(args, 1, "is a text file", "not a tokenizer");
    // a llama2.c tokenizer.bin (max_token_length, then score/len/bytes records) given as the model
    snprintf(tok, sizeof tok, "%s/cli-errors-tokenizer.bin", TV_BINARY_DIR);
    unsigned char tb[4 + 3 * 9];
    int32_t max_len = 1, len = 1;
    float score = 0;
    memcpy(tb, &max_len, 4);
    for (int i = 0; i < 3; i++) {
        memcpy(tb + 4 + 9 * i, &score, 4);
        memcpy(tb + 8 + 9 * i, &len, 4);
        tb[12 + 9 * i] = (unsigned char)('a' + i);
    }
    spit(tok, tb, sizeof tb);
    snprintf(args, sizeof args, "generate -m %s -p hi", tok);
    expect_error(args, 1, "is a llama2.c tokenizer (3 tokens)", "not a model");
    // a llama2.c model given as the tokenizer (tokenize -m, or --tokenizer)
    char l2c[600];
    snprintf(l2c, sizeof l2c, "%s/models/aidreams260K.bin", TV_SHARED_DIR);
    FILE *f = fopen(l2c, "rb");
    if (f) {
        fclose(f);
        snprintf(args, sizeof args, "tokenize -m %s -p hi", l2c);
        expect_error(args, 1, "is a llama2.c model checkpoint (dim 64, 4 layers, vocab 512)", "not a tokenizer");
        snprintf(args, sizeof args, "generate -m %s --tokenizer %s -p hi", l2c, l2c);
        expect_error(args, 1, "is a llama2.c model checkpoint", "not a tokenizer");
    } else {
        print_message("skipped the llama2.c cases: %s is absent\n", l2c);
    }
    snprintf(args, sizeof args, "detokenize -m %s", g_model);
    expect_error(args, 2, "no token ids", NULL);
}

static void test_prompt_and_flags(void **state) {
    (void)state;
    char args[8192];
    // the tiny preset's context is 256 tokens
    int k = snprintf(args, sizeof args, "generate -m %s -n 1 --prompt-ids 1", g_model);
    for (int i = 0; i < 300; i++) k += snprintf(args + k, sizeof args - (size_t)k, ",5");
    expect_error(args, 1, "301", "context");
    snprintf(args, sizeof args, "generate -m %s -n 1 -p 'caf\xc3 \xff'", g_model);   // raw invalid bytes
    expect_error(args, 1, "UTF-8", NULL);
    snprintf(args, sizeof args, "generate -m %s -p hi --frobnicate", g_model);
    expect_error(args, 2, "--frobnicate", NULL);
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,x,3", g_model);
    expect_error(args, 2, "--prompt-ids", NULL);
    snprintf(args, sizeof args, "generate -m %s --prompt-ids 1,99999", g_model);
    expect_error(args, 1, "99999", NULL);
    expect_error("generate -p hi", 2, "-m", NULL);
    expect_error("frobnicate", 2, NULL, NULL);
    snprintf(args, sizeof args, "generate -m %s -p hi --temp -1", g_model);
    expect_error(args, 2, "--temp", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_inconsistent_metadata),
        cmocka_unit_test(test_family_errors),
        cmocka_unit_test(test_unknown_tensor_type),
        cmocka_unit_test(test_tensor_data_out_of_range),
        cmocka_unit_test(test_prompt_and_flags),
        cmocka_unit_test(test_file_mixups),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
