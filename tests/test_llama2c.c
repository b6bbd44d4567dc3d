// test_llama2c.c — llama2.c checkpoints: the two real models in ../shared/models load with the
// configs ../shared/README.md states; tensor views land on the right bytes (checked against the
// freq_cis tables llama2.c's export wrote after rms_final: cos/sin of t * theta^0 = t); a v1
// re-layout and a separate-classifier variant built here load to identical views; truncated,
// size-mismatched and bad-header variants fail cleanly with messages that name the file.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/llama2c.h"

static const char *shared_dir(void) {
    const char *s = getenv("TV_SHARED_DIR");
    return s ? s : TV_SHARED_DIR;
}

// Reads a whole file (NULL when absent).
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)sz + 16);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static uint8_t *load_model(const char *name, size_t *n, char *path, size_t path_cap) {
    snprintf(path, path_cap, "%s/models/%s", shared_dir(), name);
    return slurp(path, n);
}

static float f_at(const uint8_t *p, size_t off) { float x; memcpy(&x, p + off, 4); return x; }

static void expect_fail_mem(const uint8_t *p, size_t n, tv_status code, const char *needle) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    tv_error err = { 0 };
    tv_llama2c *m = llama2c_open_memory(copy, n, "bad.bin", &err);
    if (m) { llama2c_close(m); free(copy); fail_msg("expected failure (%s), it loaded", needle); }
    if (code != TV_OK && err.code != code) fail_msg("expected code %d got %d: %s", code, err.code, err.msg);
    if (!strstr(err.msg, "bad.bin")) fail_msg("message does not name the file: %s", err.msg);
    if (needle && !strstr(err.msg, needle)) fail_msg("message lacks '%s': %s", needle, err.msg);
    free(copy);
}

// Checks one real model: config, tensor names/shapes, and that views hit the file's bytes.
static void check_real(const char *name, const int32_t want[7], int n_layers) {
    char path[600];
    size_t n;
    uint8_t *file = load_model(name, &n, path, sizeof path);
    if (!file) { printf("SKIP: %s absent\n", path); skip(); return; }
    tv_error err = { 0 };
    tv_llama2c *m = llama2c_open(path, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_llama2c_config *c = llama2c_get_config(m);
    assert_int_equal(c->dim, want[0]);
    assert_int_equal(c->hidden_dim, want[1]);
    assert_int_equal(c->n_layers, want[2]);
    assert_int_equal(c->n_heads, want[3]);
    assert_int_equal(c->n_kv_heads, want[4]);
    assert_int_equal(c->vocab_size, want[5]);
    assert_int_equal(c->seq_len, want[6]);
    assert_true(c->shared_classifier);
    assert_int_equal(c->version, 0);
    assert_int_equal(llama2c_n_tensors(m), 2 + 9 * n_layers);
    assert_null(llama2c_find(m, "output.weight"));   // tied to token_embd

    int64_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size, hs = dim / c->n_heads;
    int64_t kv = c->n_kv_heads * hs, L = c->n_layers;
    const tv_tensor *emb = llama2c_find(m, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->type, TV_TYPE_F32);
    assert_int_equal(emb->ne[0], dim);
    assert_int_equal(emb->ne[1], vocab);
    assert_int_equal(emb->nbytes, (size_t)(dim * vocab * 4));
    assert_memory_equal(emb->data, file + 28, 64);
    struct { const char *nm; int64_t ne0, ne1; } shapes[] = {
        { "attn_norm", dim, 1 }, { "attn_q", dim, dim }, { "attn_k", dim, kv }, { "attn_v", dim, kv },
        { "attn_output", dim, dim }, { "ffn_norm", dim, 1 }, { "ffn_gate", dim, hid }, { "ffn_down", hid, dim },
        { "ffn_up", dim, hid },
    };
    for (int64_t l = 0; l < L; l++)
        for (int k = 0; k < 9; k++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, shapes[k].nm);
            const tv_tensor *t = llama2c_find(m, nm);
            if (!t) fail_msg("missing %s", nm);
            assert_int_equal(t->ne[0], shapes[k].ne0);
            assert_int_equal(t->ne[1], shapes[k].ne1);
            assert_int_equal(t->n_dims, shapes[k].ne1 > 1 ? 2 : 1);
        }
    assert_null(llama2c_find(m, "blk.99.attn_q.weight"));
    assert_null(llama2c_find(m, "blk.0.nope.weight"));
    assert_null(llama2c_find(m, "blk.x.attn_q.weight"));
    assert_null(llama2c_tensor(m, -1));
    assert_null(llama2c_tensor(m, llama2c_n_tensors(m)));

    // legacy layout offsets (in floats after the 28-byte header), per llama2.c export.py
    size_t off_rms_att = (size_t)(vocab * dim), off_wq = off_rms_att + (size_t)(L * dim);
    size_t off_wk = off_wq + (size_t)(L * dim * dim);
    size_t off_rms_final = off_wk + (size_t)(2 * L * dim * kv + L * dim * dim + L * dim + 3 * L * dim * hid);
    const tv_tensor *k1 = llama2c_find(m, "blk.1.attn_k.weight");
    assert_memory_equal(k1->data, file + 28 + 4 * (off_wk + (size_t)(dim * kv)), k1->nbytes);
    const tv_tensor *norm = llama2c_find(m, "output_norm.weight");
    assert_memory_equal(norm->data, file + 28 + 4 * off_rms_final, (size_t)dim * 4);
    const tv_tensor *down = llama2c_find(m, "blk.0.ffn_down.weight");
    assert_int_equal(down->nbytes, (size_t)(hid * dim * 4));
    // the freq_cis tables follow rms_final: real[t][0] = cos(t), imag[t][0] = sin(t) (frequency 1)
    size_t freq_real = 28 + 4 * (off_rms_final + (size_t)dim);
    size_t freq_imag = freq_real + 4 * (size_t)(c->seq_len * hs / 2);
    assert_float_equal(f_at(file, freq_real), 1.0, 1e-6);
    assert_float_equal(f_at(file, freq_real + 4 * (size_t)(hs / 2)), cos(1.0), 1e-6);
    assert_float_equal(f_at(file, freq_imag + 4 * (size_t)(hs / 2)), sin(1.0), 1e-6);
    assert_int_equal(freq_imag + 4 * (size_t)(c->seq_len * hs / 2), n);   // the file ends there (shared)
    // the last layer's last tensor ends exactly where rms_final begins
    char last[64];
    snprintf(last, sizeof last, "blk.%lld.ffn_up.weight", (long long)(L - 1));
    const tv_tensor *up = llama2c_find(m, last);
    assert_ptr_equal((const uint8_t *)up->data + up->nbytes, norm->data);
    llama2c_close(m);
    free(file);
}

static void test_aidreams(void **state) {
    (void)state;
    const int32_t want[7] = { 64, 172, 4, 4, 4, 512, 128 };
    check_real("aidreams260K.bin", want, 4);
}

static void test_stories_gqa(void **state) {
    (void)state;
    const int32_t want[7] = { 64, 172, 5, 8, 4, 512, 512 };
    check_real("stories260K.bin", want, 5);
}

// Builds a v1 file ("ak42") from a v0 file's weights and checks every view matches the v0 views.
static void test_v1_and_separate_classifier(void **state) {
    (void)state;
    char path[600];
    size_t n;
    uint8_t *v0 = load_model("stories260K.bin", &n, path, sizeof path);
    if (!v0) { printf("SKIP: %s absent\n", path); skip(); return; }
    tv_error err = { 0 };
    tv_llama2c *a = llama2c_open_memory(v0, n, "v0", &err);
    if (!a) fail_msg("%s", err.msg);
    const tv_llama2c_config *c = llama2c_get_config(a);
    int L = c->n_layers;

    // v1 layout: header | attn_norm×L | ffn_norm×L | output_norm | token_embd | wq×L | wk×L | wv×L | wo×L
    //            | w1×L | w2×L | w3×L | [wcls]; here with a separate classifier = token_embd × 2
    uint8_t *v1 = calloc(1, n * 2);
    size_t at = 256;
    uint32_t magic = TV_LLAMA2C_MAGIC;
    int32_t version = 1;
    memcpy(v1, &magic, 4);
    memcpy(v1 + 4, &version, 4);
    memcpy(v1 + 8, v0, 28);
    v1[36] = 0;   // not shared
#define PUT(name) do { const tv_tensor *t_ = llama2c_find(a, name); assert_non_null(t_); \
                       memcpy(v1 + at, t_->data, t_->nbytes); at += t_->nbytes; } while (0)
    char nm[64];
    const char *per[] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up" };
    for (int l = 0; l < L; l++) { snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l); PUT(nm); }
    for (int l = 0; l < L; l++) { snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l); PUT(nm); }
    PUT("output_norm.weight");
    PUT("token_embd.weight");
    for (int k = 0; k < 7; k++)
        for (int l = 0; l < L; l++) { snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, per[k]); PUT(nm); }
    const tv_tensor *emb = llama2c_find(a, "token_embd.weight");
    float *cls = (float *)(v1 + at);
    const float *e = emb->data;
    for (size_t i = 0; i < emb->nbytes / 4; i++) cls[i] = e[i] * 2.0f;
    at += emb->nbytes;
#undef PUT
    tv_llama2c *b = llama2c_open_memory(v1, at, "v1", &err);
    if (!b) fail_msg("%s", err.msg);
    const tv_llama2c_config *cb = llama2c_get_config(b);
    assert_int_equal(cb->version, 1);
    assert_false(cb->shared_classifier);
    assert_int_equal(cb->n_kv_heads, 4);
    assert_int_equal(llama2c_n_tensors(b), llama2c_n_tensors(a) + 1);
    for (int i = 0; i < llama2c_n_tensors(a); i++) {
        const tv_tensor *ta = llama2c_tensor(a, i), *tb = llama2c_find(b, ta->name);
        if (!tb) fail_msg("v1 lacks %s", ta->name);
        assert_int_equal(ta->nbytes, tb->nbytes);
        assert_memory_equal(ta->ne, tb->ne, sizeof ta->ne);
        if (memcmp(ta->data, tb->data, ta->nbytes)) fail_msg("%s differs between v0 and v1", ta->name);
    }
    const tv_tensor *out = llama2c_find(b, "output.weight");
    assert_non_null(out);
    assert_int_equal(out->ne[0], 64);
    assert_int_equal(out->ne[1], 512);
    assert_true(((const float *)out->data)[5] == e[5] * 2.0f);

    // v1 failures: version 2 (int8 export), bad flag, non-zero padding, one byte more or less
    uint8_t save = v1[4];
    v1[4] = 2;
    expect_fail_mem(v1, at, TV_ERR_UNSUPPORTED, "version 2");
    v1[4] = 7;
    expect_fail_mem(v1, at, TV_ERR_UNSUPPORTED, "version 7");
    v1[4] = save;
    v1[36] = 2;
    expect_fail_mem(v1, at, TV_ERR_FORMAT, "shared_classifier");
    v1[36] = 0;
    v1[200] = 1;
    expect_fail_mem(v1, at, TV_ERR_FORMAT, "padding");
    v1[200] = 0;
    expect_fail_mem(v1, at - 1, TV_ERR_FORMAT, "implies");
    expect_fail_mem(v1, at + 1, TV_ERR_FORMAT, "implies");
    expect_fail_mem(v1, 100, TV_ERR_FORMAT, "truncated");
    v1[36] = 1;   // shared: the classifier bytes become excess
    expect_fail_mem(v1, at, TV_ERR_FORMAT, "implies");
    tv_llama2c *shared = llama2c_open_memory(v1, at - emb->nbytes, "v1s", &err);
    assert_non_null(shared);
    assert_null(llama2c_find(shared, "output.weight"));
    llama2c_close(shared);

    // v0 with a separate classifier: negative vocab and wcls appended
    uint8_t *v0s = malloc(n + emb->nbytes);
    memcpy(v0s, v0, n);
    memcpy(v0s + n, cls, emb->nbytes);
    int32_t neg = -512;
    memcpy(v0s + 20, &neg, 4);
    tv_llama2c *d = llama2c_open_memory(v0s, n + emb->nbytes, "v0sep", &err);
    if (!d) fail_msg("%s", err.msg);
    assert_int_equal(llama2c_get_config(d)->vocab_size, 512);
    assert_false(llama2c_get_config(d)->shared_classifier);
    assert_memory_equal(llama2c_find(d, "output.weight")->data, cls, emb->nbytes);
    llama2c_close(d);
    expect_fail_mem(v0s, n, TV_ERR_FORMAT, "implies");   // classifier missing
    free(v0s);

    llama2c_close(b);
    llama2c_close(a);
    free(v1);
    free(v0);
}

static void test_bad_files(void **state) {
    (void)state;
    tv_error err = { 0 };
    assert_null(llama2c_open("/nonexistent/model.bin", &err));
    assert_int_equal(err.code, TV_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/model.bin"));
    llama2c_close(NULL);

    char path[600];
    size_t n;
    uint8_t *file = load_model("aidreams260K.bin", &n, path, sizeof path);
    if (!file) { printf("SKIP: %s absent\n", path); skip(); return; }
    // truncation: every offset through the header and the first weights, then a stride through the rest
    for (size_t k = 0; k < n; k += (k < 512 ? 1 : 4093)) expect_fail_mem(file, k, TV_ERR_FORMAT, NULL);
    expect_fail_mem(file, n - 1, TV_ERR_FORMAT, "implies");
    uint8_t *big = calloc(1, n + 4);
    memcpy(big, file, n);
    expect_fail_mem(big, n + 4, TV_ERR_FORMAT, "implies");   // trailing bytes
    free(big);

    // header fields, one at a time: (index, value, expected text)
    struct { int field; int32_t value; const char *needle; } H[] = {
        { 0, 0, "dim = 0" }, { 0, -64, "dim = -64" }, { 1, 0, "hidden_dim" }, { 2, -1, "n_layers" },
        { 3, 0, "n_heads" }, { 4, 0, "n_kv_heads" }, { 4, 3, "does not divide" }, { 4, 8, "does not divide" },
        { 0, 66, "not a multiple of n_heads" }, { 6, 0, "seq_len" }, { 5, INT32_MIN, "vocab_size" },
        { 0, 0x7fffffff, "dim" }, { 5, 1 << 30, "vocab_size" }, { 2, 5, "implies" }, { 6, 129, "implies" },
        { 1, 173, "implies" }, { 5, -512, "implies" },
    };
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, file, n);
        memcpy(copy + 4 * H[i].field, &H[i].value, 4);
        expect_fail_mem(copy, n, TV_ERR_FORMAT, H[i].needle);
        free(copy);
    }
    // odd head size: dim 64 with 64 heads and 64 kv heads -> head size 1
    uint8_t *copy = malloc(n);
    memcpy(copy, file, n);
    int32_t h64 = 64;
    memcpy(copy + 12, &h64, 4);
    memcpy(copy + 16, &h64, 4);
    expect_fail_mem(copy, n, TV_ERR_FORMAT, "odd");
    free(copy);
    // a GGUF file is not a llama2.c file
    const uint8_t gguf_hdr[32] = { 'G', 'G', 'U', 'F', 3 };
    expect_fail_mem(gguf_hdr, sizeof gguf_hdr, TV_ERR_FORMAT, "not a llama2.c model");
    free(file);
}

// ---- tokenizer.bin ----
static void test_vocab(void **state) {
    (void)state;
    char path[600];
    size_t n;
    uint8_t *file = load_model("aidreams260K.tok512.bin", &n, path, sizeof path);
    if (!file) { printf("SKIP: %s absent\n", path); skip(); return; }
    tv_error err = { 0 };
    tv_llama2c_vocab *v = llama2c_vocab_open(path, 512, &err);
    if (!v) fail_msg("%s", err.msg);
    assert_int_equal(v->n_vocab, 512);
    assert_int_equal(v->max_token_length, 10);
    assert_string_equal(v->pieces[0], "<unk>");
    assert_string_equal(v->pieces[1], "\n<s>\n");
    assert_string_equal(v->pieces[3], "<0x00>");
    assert_string_equal(v->pieces[258], "<0xFF>");
    assert_string_equal(v->pieces[262], " a");
    assert_true(v->scores[262] == -3.0f);
    assert_int_equal(v->lens[511], 2);   // "μ" in UTF-8
    llama2c_vocab_free(v);
    llama2c_vocab_free(NULL);

    // wrong token count: one fewer leaves trailing bytes, one more runs out
    assert_null(llama2c_vocab_open_memory(file, n, 511, "tok.bin", &err));
    assert_non_null(strstr(err.msg, "trailing"));
    assert_null(llama2c_vocab_open_memory(file, n, 513, "tok.bin", &err));
    assert_non_null(strstr(err.msg, "tok.bin"));
    assert_null(llama2c_vocab_open_memory(file, n, 1 << 30, "tok.bin", &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    // truncation: every offset of the first 300 bytes, then a stride (exact-size copies for ASan)
    for (size_t k = 0; k < n; k += k < 300 ? 1 : 97) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, file, k);
        tv_llama2c_vocab *t = llama2c_vocab_open_memory(copy, k, 512, "tok.bin", &err);
        if (t) fail_msg("truncated to %zu still loads", k);
        assert_non_null(strstr(err.msg, "tok.bin"));
        free(copy);
    }
    // a token longer than max_token_length, a negative length, a bad max_token_length
    uint8_t *copy = malloc(n);
    memcpy(copy, file, n);
    int32_t bad = 11;
    memcpy(copy + 4 + 4, &bad, 4);   // token 0's length
    assert_null(llama2c_vocab_open_memory(copy, n, 512, "tok.bin", &err));
    assert_non_null(strstr(err.msg, "token 0 length 11"));
    bad = -1;
    memcpy(copy + 4 + 4, &bad, 4);
    assert_null(llama2c_vocab_open_memory(copy, n, 512, "tok.bin", &err));
    memcpy(copy, &bad, 4);
    assert_null(llama2c_vocab_open_memory(copy, n, 512, "tok.bin", &err));
    assert_non_null(strstr(err.msg, "max_token_length"));
    free(copy);
    free(file);
}

// ---- conversion to GGUF, read back with the GGUF reader ----
static void test_convert_to_gguf(void **state) {
    (void)state;
    char mpath[600], tpath[600];
    snprintf(mpath, sizeof mpath, "%s/models/aidreams260K.bin", shared_dir());
    snprintf(tpath, sizeof tpath, "%s/models/aidreams260K.tok512.bin", shared_dir());
    if (access(mpath, R_OK) || access(tpath, R_OK)) { printf("SKIP: %s or %s absent\n", mpath, tpath); skip(); return; }
    tv_error err = { 0 };
    tv_llama2c *m = llama2c_open(mpath, &err);
    tv_llama2c_vocab *v = llama2c_vocab_open(tpath, 512, &err);
    assert_non_null(m);
    assert_non_null(v);
    gguf_writer *w = gguf_writer_create();
    assert_int_equal(llama2c_to_gguf(m, v, "aidreams260K", w, &err), TV_OK);
    char out[600];
    snprintf(out, sizeof out, "%s/test_llama2c_%ld.gguf", TV_BINARY_DIR, (long)getpid());
    if (gguf_writer_write(w, out, &err) != TV_OK) fail_msg("%s", err.msg);
    gguf_writer_free(w);

    gguf_ctx *g = gguf_open(out, &err);
    if (!g) fail_msg("%s", err.msg);
    gguf_str s;
    int64_t x;
    double f;
    assert_true(gguf_get_str(g, "general.architecture", &s)); assert_memory_equal(s.ptr, "llama", 5);
    struct { const char *key; int64_t want; } K[] = {
        { "llama.context_length", 128 }, { "llama.embedding_length", 64 }, { "llama.block_count", 4 },
        { "llama.feed_forward_length", 172 }, { "llama.attention.head_count", 4 }, { "llama.attention.head_count_kv", 4 },
        { "llama.rope.dimension_count", 16 }, { "llama.vocab_size", 512 }, { "tokenizer.ggml.bos_token_id", 1 },
        { "tokenizer.ggml.eos_token_id", 2 }, { "tokenizer.ggml.unknown_token_id", 0 }, { "general.file_type", 0 },
    };
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        if (!gguf_get_int(g, K[i].key, &x)) fail_msg("missing %s", K[i].key);
        if (x != K[i].want) fail_msg("%s = %lld, want %lld", K[i].key, (long long)x, (long long)K[i].want);
        assert_int_equal(gguf_get(g, K[i].key)->type, GGUF_TYPE_UINT32);   // llama.cpp reads these as u32
    }
    assert_true(gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f)); assert_float_equal(f, 1e-5, 1e-12);
    assert_true(gguf_get_float(g, "llama.rope.freq_base", &f)); assert_true(f == 10000.0);
    assert_int_equal(gguf_get(g, "llama.rope.freq_base")->type, GGUF_TYPE_FLOAT32);
    assert_true(gguf_get_str(g, "tokenizer.ggml.model", &s)); assert_memory_equal(s.ptr, "llama", 5);
    const gguf_value *tok = gguf_get(g, "tokenizer.ggml.tokens"), *tt = gguf_get(g, "tokenizer.ggml.token_type");
    const gguf_value *sc = gguf_get(g, "tokenizer.ggml.scores");
    assert_int_equal(tok->arr_n, 512);
    assert_int_equal(tt->arr_type, GGUF_TYPE_INT32);
    assert_int_equal(sc->arr_type, GGUF_TYPE_FLOAT32);
    // SentencePiece spellings, as in llama.cpp's own llama vocab (ggml-vocab-llama-spm.gguf)
    gguf_str t1 = gguf_arr_str(tok, 1), t2 = gguf_arr_str(tok, 2), t262 = gguf_arr_str(tok, 262), t13 = gguf_arr_str(tok, 13);
    assert_int_equal(t1.len, 3); assert_memory_equal(t1.ptr, "<s>", 3);
    assert_int_equal(t2.len, 4); assert_memory_equal(t2.ptr, "</s>", 4);
    assert_int_equal(t262.len, 4); assert_memory_equal(t262.ptr, "\xe2\x96\x81" "a", 4);
    assert_int_equal(t13.len, 6); assert_memory_equal(t13.ptr, "<0x0A>", 6);
    assert_int_equal(gguf_arr_int(tt, 0), 2);
    assert_int_equal(gguf_arr_int(tt, 1), 3);
    assert_int_equal(gguf_arr_int(tt, 2), 3);
    assert_int_equal(gguf_arr_int(tt, 3), 6);
    assert_int_equal(gguf_arr_int(tt, 258), 6);
    assert_int_equal(gguf_arr_int(tt, 259), 1);
    assert_true(gguf_arr_float(sc, 262) == -3.0);
    // every tensor: same shape and bytes as the llama2.c view; the classifier stays tied
    assert_int_equal(gguf_n_tensors(g), llama2c_n_tensors(m));
    assert_null(gguf_find_tensor(g, "output.weight"));
    for (int i = 0; i < llama2c_n_tensors(m); i++) {
        const tv_tensor *t = llama2c_tensor(m, i);
        const gguf_tensor_info *gt = gguf_find_tensor(g, t->name);
        if (!gt) fail_msg("GGUF lacks %s", t->name);
        assert_int_equal(gt->type, TV_TYPE_F32);
        assert_memory_equal(gt->ne, t->ne, sizeof t->ne);
        assert_int_equal(gt->nbytes, t->nbytes);
        if (memcmp(gt->data, t->data, t->nbytes)) fail_msg("%s bytes differ", t->name);
    }
    gguf_close(g);
    unlink(out);

    // a tokenizer of the wrong size is refused
    v->n_vocab = 511;
    w = gguf_writer_create();
    assert_int_equal(llama2c_to_gguf(m, v, NULL, w, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "511"));
    v->n_vocab = 512;
    gguf_writer_free(w);
    llama2c_vocab_free(v);
    llama2c_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aidreams),
        cmocka_unit_test(test_stories_gqa),
        cmocka_unit_test(test_v1_and_separate_classifier),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_convert_to_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
