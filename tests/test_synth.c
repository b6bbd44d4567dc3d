// test_synth.c — the synthetic model writer: hyperparameter metadata, weight statistics
// (uniform, std 0.02, norms exactly 1), quantized tensors equal to quantizing the F32 model's
// values with the reference kernels, byte-identical output whatever the thread count, the
// synthetic vocab (unique pieces, llama layout), --vocab copying a real llama.cpp vocab, and the
// llama-3 RoPE factors against the inverse-frequency form of Meta's recipe.
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

#include "formats/gguf.h"
#include "model/synth.h"

static char *out_path(const char *tag) {
    static char ring[4][512];
    static int next;
    char *p = ring[next++ % 4];
    snprintf(p, 512, "%s/test_synth_%s_%ld.gguf", TV_BINARY_DIR, tag, (long)getpid());
    return p;
}

static gguf_ctx *synth(const char *preset, tv_type type, uint64_t seed, const char *vocab, int threads, const char *path) {
    tv_synth_params p = { .preset = preset, .type = type, .seed = seed, .vocab_path = vocab, .n_threads = threads };
    tv_error err = { 0 };
    if (synth_write(&p, path, &err) != TV_OK) fail_msg("synth: %s", err.msg);
    gguf_ctx *g = gguf_open(path, &err);
    if (!g) fail_msg("open: %s", err.msg);
    return g;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void test_tiny_f32(void **state) {
    (void)state;
    const char *path = out_path("f32");
    gguf_ctx *g = synth("tiny", TV_TYPE_F32, 1, NULL, 1, path);
    const tv_synth_shape *ps = tv_synth_find_preset("tiny");
    assert_non_null(ps);
    int64_t v;
    struct { const char *key; int64_t want; } K[] = {
        { "llama.embedding_length", ps->dim }, { "llama.block_count", ps->n_layers },
        { "llama.feed_forward_length", ps->hidden_dim }, { "llama.attention.head_count", ps->n_heads },
        { "llama.attention.head_count_kv", ps->n_kv_heads }, { "llama.context_length", ps->ctx },
        { "llama.vocab_size", ps->vocab_size }, { "llama.rope.dimension_count", ps->dim / ps->n_heads },
        { "general.file_type", 0 },
    };
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        if (!gguf_get_int(g, K[i].key, &v)) fail_msg("missing %s", K[i].key);
        assert_int_equal(v, K[i].want);
    }
    assert_int_equal(gguf_n_tensors(g), 3 + 9 * ps->n_layers);
    const gguf_tensor_info *kt = gguf_find_tensor(g, "blk.1.attn_k.weight");
    assert_non_null(kt);
    assert_int_equal(kt->ne[0], ps->dim);
    assert_int_equal(kt->ne[1], ps->n_kv_heads * (ps->dim / ps->n_heads));
    // statistics of every matrix: uniform on [-a, a] with std 0.02; norms exactly 1
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        assert_int_equal(t->type, TV_TYPE_F32);
        const float *x = t->data;
        int64_t n = t->ne[0] * t->ne[1];
        if (strstr(t->name, "norm")) {
            for (int64_t k = 0; k < n; k++) assert_true(x[k] == 1.0f);
            continue;
        }
        double s = 0, s2 = 0, amax = 0;
        for (int64_t k = 0; k < n; k++) { s += x[k]; s2 += (double)x[k] * x[k]; amax = fmax(amax, fabs(x[k])); }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        if (fabs(sd - 0.02) > 0.02 * 0.05 || fabs(mean) > 0.002 || amax > 0.02 * sqrt(3.0) + 1e-6)
            fail_msg("%s: mean %g std %g max %g", t->name, mean, sd, amax);
    }
    // distinct tensors are not copies of each other
    const float *q0 = gguf_find_tensor(g, "blk.0.attn_q.weight")->data, *q1 = gguf_find_tensor(g, "blk.1.attn_q.weight")->data;
    assert_true(memcmp(q0, q1, 64 * sizeof(float)) != 0);
    gguf_close(g);
    unlink(path);
}

// Every quantized tensor equals the reference quantization of the F32 model's values.
static void check_quantized_matches(tv_type type) {
    const char *pf = out_path("qf"), *pq = out_path("qq");
    gguf_ctx *gf = synth("tiny", TV_TYPE_F32, 5, NULL, 1, pf);
    gguf_ctx *gq = synth("tiny", type, 5, NULL, 2, pq);
    int n_quant = 0;
    for (int64_t i = 0; i < gguf_n_tensors(gq); i++) {
        const gguf_tensor_info *tq = gguf_tensor(gq, i), *tf = gguf_find_tensor(gf, tq->name);
        assert_non_null(tf);
        if (strstr(tq->name, "norm")) { assert_int_equal(tq->type, TV_TYPE_F32); continue; }
        // tiny's rows (64, 192) cannot hold 256-element K blocks: those fall back to Q8_0
        tv_type want = type;
        // (Q4_0's and Q4_K's output.weight is Q6_K, llama.cpp-style, so it falls back as well)
        if (type == TV_TYPE_Q4_K || type == TV_TYPE_Q6_K || (type == TV_TYPE_Q4_0 && !strcmp(tq->name, "output.weight")))
            want = TV_TYPE_Q8_0;
        if (tq->type != want) fail_msg("%s: type %s, want %s", tq->name, kern_type_name(tq->type), kern_type_name(want));
        const tv_type_traits *tr = kern_traits_ref(tq->type);
        size_t rb = kern_row_size(tq->type, tq->ne[0]);
        void *row = malloc(rb);
        for (int64_t r = 0; r < tq->ne[1]; r++) {
            tr->from_float((const float *)tf->data + r * tf->ne[0], row, tf->ne[0]);
            if (memcmp(row, (const uint8_t *)tq->data + r * rb, rb)) fail_msg("%s row %lld differs", tq->name, (long long)r);
        }
        free(row);
        n_quant++;
    }
    assert_true(n_quant > 0);
    gguf_close(gf);
    gguf_close(gq);
    unlink(pf);
    unlink(pq);
}
static void test_quantized_q8_0(void **state) { (void)state; check_quantized_matches(TV_TYPE_Q8_0); }
static void test_quantized_q4_0(void **state) { (void)state; check_quantized_matches(TV_TYPE_Q4_0); }
static void test_quantized_bf16(void **state) { (void)state; check_quantized_matches(TV_TYPE_BF16); }
static void test_quantized_q4_k_fallback(void **state) { (void)state; check_quantized_matches(TV_TYPE_Q4_K); }

static void test_deterministic(void **state) {
    (void)state;
    const char *a = out_path("d1"), *b = out_path("d3"), *c = out_path("dseed");
    gguf_close(synth("tiny", TV_TYPE_Q4_0, 42, NULL, 1, a));
    gguf_close(synth("tiny", TV_TYPE_Q4_0, 42, NULL, 3, b));
    gguf_close(synth("tiny", TV_TYPE_Q4_0, 43, NULL, 1, c));
    size_t na, nb, nc;
    uint8_t *pa = slurp(a, &na), *pb = slurp(b, &nb), *pc = slurp(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na);
    assert_int_equal(na, nc);
    assert_true(memcmp(pa, pc, na) != 0);
    free(pa); free(pb); free(pc);
    unlink(a); unlink(b); unlink(c);
}

static int cmp_str(const void *x, const void *y) {
    const gguf_str *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->ptr, b->ptr, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void test_synthetic_vocab(void **state) {
    (void)state;
    const char *path = out_path("vocab");
    gguf_ctx *g = synth("demo", TV_TYPE_F16, 1, NULL, 1, path);
    const gguf_value *tok = gguf_get(g, "tokenizer.ggml.tokens"), *tt = gguf_get(g, "tokenizer.ggml.token_type");
    assert_non_null(tok);
    int64_t n = (int64_t)tok->arr_n;
    assert_int_equal(n, tv_synth_find_preset("demo")->vocab_size);
    assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->ne[1], n);
    gguf_str s = gguf_arr_str(tok, 0);
    assert_memory_equal(s.ptr, "<unk>", 5);
    s = gguf_arr_str(tok, 3 + 0x41);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.ptr, "<0x41>", 6);
    assert_int_equal(gguf_arr_int(tt, 3 + 0x41), 6);
    assert_int_equal(gguf_arr_int(tt, 1), 3);
    assert_int_equal(gguf_arr_int(tt, n - 1), 1);
    gguf_str *all = malloc((size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++) all[i] = gguf_arr_str(tok, (uint64_t)i);
    qsort(all, (size_t)n, sizeof *all, cmp_str);
    for (int64_t i = 1; i < n; i++)
        if (!cmp_str(&all[i - 1], &all[i])) fail_msg("duplicate piece '%.*s'", (int)all[i].len, all[i].ptr);
    free(all);
    gguf_close(g);
    unlink(path);
}

static void test_copied_vocab(void **state) {
    (void)state;
    const char *shared = getenv("TV_SHARED_DIR") ? getenv("TV_SHARED_DIR") : TV_SHARED_DIR;
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-llama-spm.gguf", shared);
    if (access(vocab, R_OK)) { printf("SKIP: %s absent\n", vocab); skip(); return; }
    const char *path = out_path("copied");
    gguf_ctx *g = synth("tiny", TV_TYPE_F32, 1, vocab, 1, path);
    tv_error err = { 0 };
    gguf_ctx *src = gguf_open(vocab, &err);
    assert_non_null(src);
    int n_copied = 0;
    for (int64_t i = 0; i < gguf_n_kv(src); i++) {
        const char *key = gguf_kv_key(src, i);
        if (strncmp(key, "tokenizer.", 10)) continue;
        const gguf_value *a = gguf_kv_value(src, i), *b = gguf_get(g, key);
        if (!b) fail_msg("%s not copied", key);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->arr_n, b->arr_n);
        n_copied++;
    }
    assert_true(n_copied >= 9);
    int64_t v;
    assert_true(gguf_get_int(g, "llama.vocab_size", &v));
    assert_int_equal(v, 32000);
    assert_int_equal(gguf_find_tensor(g, "output.weight")->ne[1], 32000);
    gguf_str t = gguf_arr_str(gguf_get(g, "tokenizer.ggml.tokens"), 15043);
    assert_int_equal(t.len, 8);
    assert_memory_equal(t.ptr, "\xe2\x96\x81Hello", 8);   // llama.cpp's test vectors: "Hello" -> 15043
    gguf_close(src);
    gguf_close(g);
    unlink(path);
    // a vocab file that is not GGUF fails with its name
    tv_synth_params p = { .preset = "tiny", .type = TV_TYPE_F32, .seed = 1, .vocab_path = "/nonexistent/v.gguf" };
    assert_int_not_equal(synth_write(&p, out_path("none"), &err), TV_OK);
    assert_non_null(strstr(err.msg, "/nonexistent/v.gguf"));
}

static void test_bad_params(void **state) {
    (void)state;
    tv_error err = { 0 };
    tv_synth_params p = { .preset = "huge", .type = TV_TYPE_F32 };
    assert_int_equal(synth_write(&p, out_path("bad"), &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "huge"));
    p.preset = "tiny";
    p.type = TV_TYPE_IQ2_XXS;
    assert_int_equal(synth_write(&p, out_path("bad"), &err), TV_ERR_INVALID);
    p.type = TV_TYPE_F32;
    assert_int_equal(synth_write(&p, "/nonexistent-dir/x.gguf", &err), TV_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.gguf"));
    const tv_synth_shape *l3 = tv_synth_find_preset("llama-3.2-1b");
    assert_non_null(l3);
    assert_true(l3->tied_output && l3->llama3_rope);
    assert_int_equal(l3->n_kv_heads, 8);
    assert_int_equal(tv_synth_find_preset("tinyllama-1.1b")->hidden_dim, 5632);
}

// rope_freqs against the inverse-frequency form: new_inv = inv / factor (low band), inv (high
// band), (1 - s) * inv / factor + s * inv with s = (orig / wavelen - low) / (high - low) between.
static void test_llama3_rope_factors(void **state) {
    (void)state;
    float f[32];
    synth_llama3_rope_factors(f, 32, 64, 500000.0, 8192);
    assert_true(f[0] == 1.0f);
    assert_true(f[31] == 32.0f);
    int n_mid = 0;
    for (int i = 0; i < 32; i++) {
        double inv = pow(500000.0, -2.0 * i / 64), wl = 2 * M_PI / inv, want;
        if (wl < 8192.0 / 4) want = inv;
        else if (wl > 8192.0) want = inv / 32;
        else { double s = (8192.0 / wl - 1) / 3; want = (1 - s) * inv / 32 + s * inv; n_mid++; }
        assert_float_equal(inv / f[i], want, want * 1e-6);
        if (i) assert_true(f[i] >= f[i - 1]);
    }
    assert_true(n_mid > 0);   // the smooth band is exercised
}

// --arch: every family's file in its llama.cpp layout (the spot checks below are the layout facts
// each family's loader in llama.cpp depends on), deterministic, Q4_K_M mix; unknown names fail.
static void test_arch_layouts(void **state) {
    (void)state;
    static const struct { const char *arch, *gguf_arch, *present[4], *absent[2]; } A[] = {
        {"llama", "llama", {"output.weight", "blk.3.ffn_gate.weight"}, {"rope_freqs.weight"}},
        {"llama3", "llama", {"rope_freqs.weight"}, {"output.weight"}},
        {"qwen2", "qwen2", {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"}, {"output.weight"}},
        {"qwen3", "qwen3", {"output.weight", "blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"}, {"blk.0.attn_q.bias"}},
        {"gemma2", "gemma2", {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"}, {"output.weight"}},
        {"gemma3", "gemma3", {"blk.7.attn_q_norm.weight", "blk.7.post_ffw_norm.weight"}, {"output.weight"}},
        {"gemma4", "gemma4", {"rope_freqs.weight", "blk.4.attn_v.weight", "blk.5.layer_output_scale.weight"},
         {"blk.5.attn_v.weight", "output.weight"}},
        {"phi3", "phi3", {"blk.0.attn_qkv.weight", "rope_factors_long.weight", "rope_factors_short.weight"},
         {"blk.0.ffn_gate.weight", "blk.0.attn_q.weight"}},
        {"mistral3", "mistral3", {"output.weight"}, {"rope_freqs.weight"}},
        {"smollm3", "smollm3", {"blk.7.ffn_up.weight"}, {"output.weight"}},
        {"granite", "granite", {"output.weight"}, {"rope_freqs.weight"}},
    };
    tv_error err = { 0 };
    for (size_t i = 0; i < sizeof A / sizeof A[0]; i++) {
        assert_non_null(strstr(tv_synth_arch_names(), A[i].arch));
        const char *path = out_path("arch");
        tv_synth_params p = { .arch = A[i].arch, .type = TV_TYPE_Q4_K, .seed = 1, .n_threads = 2 };
        if (synth_write(&p, path, &err) != TV_OK) fail_msg("synth --arch %s: %s", A[i].arch, err.msg);
        gguf_ctx *g = gguf_open(path, &err);
        assert_non_null(g);
        gguf_str s;
        assert_true(gguf_get_str(g, "general.architecture", &s));
        assert_int_equal(s.len, strlen(A[i].gguf_arch));
        assert_memory_equal(s.ptr, A[i].gguf_arch, s.len);
        for (int k = 0; k < 4 && A[i].present[k]; k++)
            if (!gguf_find_tensor(g, A[i].present[k])) fail_msg("%s: %s missing", A[i].arch, A[i].present[k]);
        for (int k = 0; k < 2 && A[i].absent[k]; k++)
            if (gguf_find_tensor(g, A[i].absent[k])) fail_msg("%s: %s present", A[i].arch, A[i].absent[k]);
        assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->ne[1], 512);
        // Q4_K_M: ffn_down in Q6_K on llama.cpp's "more bits" layers (the last one among them), Q4_K on others
        int64_t n_layers;
        char key[64], last[64];
        snprintf(key, sizeof key, "%s.block_count", A[i].gguf_arch);
        assert_true(gguf_get_int(g, key, &n_layers));
        snprintf(last, sizeof last, "blk.%d.ffn_down.weight", (int)n_layers - 1);
        assert_int_equal(gguf_find_tensor(g, last)->type, TV_TYPE_Q6_K);
        assert_int_equal(gguf_find_tensor(g, "blk.1.ffn_down.weight")->type, TV_TYPE_Q4_K);
        size_t n1, n2;
        uint8_t *b1 = slurp(path, &n1);
        gguf_close(g);
        p.n_threads = 1;
        assert_int_equal(synth_write(&p, path, &err), TV_OK);
        uint8_t *b2 = slurp(path, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(b1, b2, n1);
        free(b1);
        free(b2);
        unlink(path);
    }
    tv_synth_params bad = { .arch = "falcon", .type = TV_TYPE_F32 };
    assert_int_equal(synth_write(&bad, out_path("bad"), &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "falcon"));
    bad = (tv_synth_params){ .arch = "qwen3", .preset = "tiny", .type = TV_TYPE_F32 };
    assert_int_equal(synth_write(&bad, out_path("bad"), &err), TV_ERR_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_f32),
        cmocka_unit_test(test_quantized_q8_0),
        cmocka_unit_test(test_quantized_q4_0),
        cmocka_unit_test(test_quantized_bf16),
        cmocka_unit_test(test_quantized_q4_k_fallback),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_synthetic_vocab),
        cmocka_unit_test(test_copied_vocab),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_llama3_rope_factors),
        cmocka_unit_test(test_arch_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
