// test_gemma_load.c — the gemma2, gemma3 and gemma4 loaders (family_gemma*.c, their configure hooks,
// family_swa_pattern, per-layer attention shapes): synth --arch models load with the values
// llama.cpp derives (sliding pattern, soft-caps, the sliding layers' RoPE, embedding and query
// scales, gemma4's per-layer head sizes / KV heads, V = K layers, E2B/E4B per-layer inputs and KV
// shared across layers, per-layer feed-forward lengths), a tied output's packed copy; a copy of such
// a file with a tensor left out, a key changed or an unsupported Gemma 4 variant fails with an
// error naming it.
// (Their numerics against llama.cpp: test_families.)
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

static char g_src[512], g_dst[512];

static void write_synth_type(const char *arch, tv_type type) {
    snprintf(g_src, sizeof g_src, "%s/gemma-load-%s.gguf", TV_BINARY_DIR, arch);
    tv_synth_params p = {.arch = arch, .type = type, .seed = 7, .n_threads = 1};
    tv_error err = {0};
    if (synth_write(&p, g_src, &err)) fail_msg("synth %s: %s", arch, err.msg);
}

static void write_synth(const char *arch) { write_synth_type(arch, TV_TYPE_F32); }

static tv_model *load(const char *path, tv_error *err) {
    memset(err, 0, sizeof *err);
    return tv_model_load(path, NULL, err);
}

// A change to the synth file: a tensor left out, a key left out, and keys set by edit (or none).
typedef struct change {
    const char *drop_tensor, *drop_key;
    void (*edit)(gguf_writer *w);
} change;

// g_dst = g_src with change c.
static void rewrite(const change *c) {
    tv_error err = {0};
    gguf_ctx *g = gguf_open(g_src, &err);
    if (!g) fail_msg("%s", err.msg);
    gguf_writer *w = gguf_writer_create();
    assert_non_null(w);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        if (!(c->drop_key && !strcmp(key, c->drop_key)) && strcmp(key, "general.alignment"))
            gguf_set_value(w, key, gguf_kv_value(g, i));
    }
    if (c->edit) c->edit(w);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (c->drop_tensor && !strcmp(t->name, c->drop_tensor)) continue;
        if (gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err)) fail_msg("%s", err.msg);
    }
    snprintf(g_dst, sizeof g_dst, "%s.changed.gguf", g_src);
    if (gguf_writer_write(w, g_dst, &err)) fail_msg("%s", err.msg);
    gguf_writer_free(w);
    gguf_close(g);
}

// Loading the changed copy fails with code and a message containing every NULL-terminated string.
static void expect_fail(const change *c, tv_status code, ...) {
    rewrite(c);
    tv_error err;
    tv_model *m = load(g_dst, &err);
    if (m) fail_msg("%s: loaded, expected an error", g_dst);
    if (err.code != code) fail_msg("code %d (%s), expected %d", err.code, err.msg, code);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err.msg, s)) fail_msg("error '%s' does not name '%s'", err.msg, s);
    va_end(ap);
    remove(g_dst);
}

// gemma2: every other layer slides (period 2), both soft-caps from the file, the sliding layers'
// RoPE is the global one (no freq_base_swa), embeddings x sqrt(dim), output tied.
static void test_gemma2(void **state) {
    (void)state;
    write_synth("gemma2");
    tv_error err;
    tv_model *m = load(g_src, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_hparams *h = model_hparams(m);
    const tv_layer *L = model_layers(m);
    for (int l = 0; l < h->n_layers; l++) assert_int_equal(L[l].is_swa, l % 2 == 0);
    assert_int_equal(h->n_swa, 32);
    assert_true(h->attn_softcap > 0 && h->final_softcap > 0);
    assert_true(h->embd_scale == sqrtf((float)h->dim));
    assert_null(model_rope_inv_freq_swa(m));
    assert_ptr_equal(model_output(m)->data, model_tok_embd(m)->data);
    assert_non_null(L[1].attn_post_norm.data);
    tv_model_free(m);
    expect_fail(&(change){.drop_tensor = "blk.1.post_ffw_norm.weight"}, TV_ERR_FORMAT, "blk.1.post_ffw_norm.weight",
                "missing", NULL);
    remove(g_src);
}

static void pattern_bad_length(gguf_writer *w) {
    const bool p[3] = {true, true, false};
    gguf_set_arr_data(w, "gemma3.attention.sliding_window_pattern", GGUF_TYPE_BOOL, p, 3);
}

static void pattern_period_3(gguf_writer *w) { gguf_set_u32(w, "gemma3.attention.sliding_window_pattern", 3); }

// gemma3: five sliding layers to one global, the sliding ones with base 10000 and no scaling, the
// global ones with freq_base and the linear factor 8; the pattern key as a period or per layer.
static void test_gemma3(void **state) {
    (void)state;
    write_synth("gemma3");
    tv_error err;
    tv_model *m = load(g_src, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_hparams *h = model_hparams(m);
    const tv_layer *L = model_layers(m);
    for (int l = 0; l < h->n_layers; l++) assert_int_equal(L[l].is_swa, l % 6 < 5);
    assert_true(h->attn_softcap == 0 && h->rope_theta_swa == 10000.0f && h->rope_scale_swa == 1.0f);
    assert_true(h->rope_linear_scale == 0.125f);
    const float *swa = model_rope_inv_freq_swa(m);
    assert_non_null(swa);
    assert_true(fabs(swa[1] - pow(10000.0, -2.0 / h->n_rot)) < 1e-7);
    assert_non_null(L[0].q_norm.data);
    tv_model_free(m);

    rewrite(&(change){.edit = pattern_period_3});
    if (!(m = load(g_dst, &err))) fail_msg("%s", err.msg);
    for (int l = 0; l < model_hparams(m)->n_layers; l++) assert_int_equal(model_layers(m)[l].is_swa, l % 3 < 2);
    tv_model_free(m);
    expect_fail(&(change){.edit = pattern_bad_length}, TV_ERR_FORMAT, "gemma3.attention.sliding_window_pattern",
                NULL);
    expect_fail(&(change){.drop_tensor = "blk.2.attn_k_norm.weight"}, TV_ERR_FORMAT, "blk.2.attn_k_norm.weight",
                NULL);
    // no window: every layer global, one RoPE table
    rewrite(&(change){.drop_key = "gemma3.attention.sliding_window"});
    if (!(m = load(g_dst, &err))) fail_msg("%s", err.msg);
    for (int l = 0; l < model_hparams(m)->n_layers; l++) assert_false(model_layers(m)[l].is_swa);
    assert_null(model_rope_inv_freq_swa(m));
    tv_model_free(m);
    remove(g_dst);
    remove(g_src);
}

static void per_layer_inputs(gguf_writer *w) { gguf_set_u32(w, "gemma4.embedding_length_per_layer_input", 256); }
static void shared_kv(gguf_writer *w) { gguf_set_u32(w, "gemma4.attention.shared_kv_layers", 2); }
static void shared_kv_5(gguf_writer *w) { gguf_set_u32(w, "gemma4.attention.shared_kv_layers", 5); }
static void experts(gguf_writer *w) {
    gguf_set_u32(w, "gemma4.expert_count", 8);
    gguf_set_u32(w, "gemma4.expert_used_count", 2);
}
static void kv_heads_3(gguf_writer *w) {
    const int32_t kv[6] = {2, 2, 2, 3, 2, 1};
    gguf_set_arr_data(w, "gemma4.attention.head_count_kv", GGUF_TYPE_INT32, kv, 6);
}

static void head_32(gguf_writer *w) {   // the sliding layers' head size 32: their tensors (64) do not fit
    gguf_set_u32(w, "gemma4.attention.key_length_swa", 32);
    gguf_set_u32(w, "gemma4.attention.value_length_swa", 32);
    gguf_set_u32(w, "gemma4.rope.dimension_count_swa", 32);
}

// gemma4 (synth: 5 sliding layers of head size 64 and 2 KV heads, a global one of 128 and 1 without
// attn_v): per-layer shapes bound and checked, scale 1, the sliding layers' own rotated dims.
static void test_gemma4(void **state) {
    (void)state;
    write_synth("gemma4");
    tv_error err;
    tv_model *m = load(g_src, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_hparams *h = model_hparams(m);
    const tv_layer *L = model_layers(m);
    assert_int_equal(h->n_layers, 6);
    for (int l = 0; l < 6; l++) {
        const bool swa = l < 5;
        assert_int_equal(L[l].is_swa, swa);
        assert_int_equal(L[l].head_dim, swa ? 64 : 128);
        assert_int_equal(L[l].n_kv_heads, swa ? 2 : 1);
        assert_int_equal(L[l].wq.ne[1], h->n_heads * L[l].head_dim);
        assert_int_equal(L[l].wk.ne[1], L[l].n_kv_heads * L[l].head_dim);
        assert_true(swa ? L[l].wv.data != NULL : L[l].wv.data == NULL);
        assert_non_null(L[l].out_scale.data);
    }
    assert_true(h->attn_scale == 1.0f && h->n_rot_swa == 64 && h->n_rot == 128);
    // KV pools sized for the largest layer: 2 x 64 = 1 x 128 here
    assert_int_equal(kv_cache_bytes_per_block(m, 16, true), 2 * 6 * 128 * 16 * 4);
    tv_model_free(m);
    // per-layer inputs without their tensors; shared KV whose reuse rule (llama.cpp's: later global
    // layers reuse layer n_layer_kv - 1) would send global layer 5 to sliding layer 3; experts
    // without their width (26B-A4B's experts: test_moe, test_families gemma4moe)
    expect_fail(&(change){.edit = per_layer_inputs}, TV_ERR_FORMAT, "per_layer_token_embd.weight", NULL);
    expect_fail(&(change){.edit = shared_kv}, TV_ERR_FORMAT, "gemma4.attention.shared_kv_layers", "layer 5", NULL);
    expect_fail(&(change){.edit = experts}, TV_ERR_FORMAT, "gemma4.expert_feed_forward_length", "missing", NULL);
    expect_fail(&(change){.edit = kv_heads_3}, TV_ERR_FORMAT, "gemma4.attention.head_count_kv", "layer 3", NULL);
    expect_fail(&(change){.drop_key = "gemma4.attention.sliding_window_pattern"}, TV_ERR_FORMAT,
                "gemma4.attention.sliding_window_pattern", "missing", NULL);
    expect_fail(&(change){.edit = head_32}, TV_ERR_FORMAT, "blk.0.attn_q.weight", "[256, 128]", NULL);
    remove(g_src);
}

// feed_forward_length per layer: too few values, a value out of range, one value for every layer
// (the shared layers' double-wide FFN then does not fit), layer 0's wider than its tensors
static void ff_short(gguf_writer *w) {
    const uint32_t ff[5] = {768, 768, 768, 1536, 1536};
    gguf_set_arr_data(w, "gemma4.feed_forward_length", GGUF_TYPE_UINT32, ff, 5);
}
static void ff_zero(gguf_writer *w) {
    const uint32_t ff[6] = {768, 768, 768, 1536, 0, 1536};
    gguf_set_arr_data(w, "gemma4.feed_forward_length", GGUF_TYPE_UINT32, ff, 6);
}
static void ff_floats(gguf_writer *w) {
    const float ff[6] = {768, 768, 768, 1536, 1536, 1536};
    gguf_set_arr_data(w, "gemma4.feed_forward_length", GGUF_TYPE_FLOAT32, ff, 6);
}
static void ff_scalar(gguf_writer *w) { gguf_set_u32(w, "gemma4.feed_forward_length", 768); }
static void ff_gemma3_uniform(gguf_writer *w) {
    const int32_t ff[8] = {768, 768, 768, 768, 768, 768, 768, 768};
    gguf_set_arr_data(w, "gemma3.feed_forward_length", GGUF_TYPE_INT32, ff, 8);
}
static void ff_gemma3_wide0(gguf_writer *w) {
    const int32_t ff[8] = {1536, 768, 768, 768, 768, 768, 768, 768};
    gguf_set_arr_data(w, "gemma3.feed_forward_length", GGUF_TYPE_INT32, ff, 8);
}

// gemma4e (synth: gemma4 E2B/E4B-like, 6 layers, 2 and 5 global, per-layer inputs of 64, the last
// 3 layers sharing KV with a double-wide FFN): layers 3, 4 attend over layer 1's cache and 5 over
// layer 2's, bind no K/V projections, and the cache stores 3 layers; the per-layer tensors and
// per-layer FFN widths (feed_forward_length as an array) are bound and checked.
static void test_gemma4e(void **state) {
    (void)state;
    write_synth("gemma4e");
    tv_error err;
    tv_model *m = load(g_src, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_hparams *h = model_hparams(m);
    const tv_layer *L = model_layers(m);
    const tv_weights *w = model_weights(m);
    assert_int_equal(h->n_layers, 6);
    assert_int_equal(h->n_embd_pl, 64);
    assert_int_equal(h->n_layer_kv, 3);
    assert_int_equal(model_n_kv_layers(m), 3);
    static const int KV_LAYER[6] = {0, 1, 2, 1, 1, 2};
    for (int l = 0; l < 6; l++) {
        assert_int_equal(L[l].is_swa, l % 3 != 2);
        assert_int_equal(L[l].kv_layer, KV_LAYER[l]);
        assert_true(l < 3 ? L[l].wk.data != NULL && L[l].k_norm.data != NULL : L[l].wk.data == NULL && L[l].wv.data == NULL);
        assert_int_equal(L[l].n_kv_heads, L[KV_LAYER[l]].n_kv_heads);
        assert_int_equal(L[l].pl_gate.ne[0], 256);
        assert_int_equal(L[l].pl_gate.ne[1], 64);
        assert_int_equal(L[l].pl_proj.ne[0], 64);
        assert_int_equal(L[l].pl_proj.ne[1], 256);
        assert_non_null(L[l].pl_post_norm.data);
        const int ff = l < 3 ? 768 : 1536;
        assert_int_equal(L[l].ff_dim, ff);
        assert_int_equal(L[l].w_gate.ne[1], ff);
        assert_int_equal(L[l].w_up.ne[1], ff);
        assert_int_equal(L[l].w_down.ne[0], ff);
    }
    assert_int_equal(h->hidden_dim, 1536);   // the widest layer's: the activations' size
    assert_int_equal(w->pl_tok_embd.ne[0], 6 * 64);
    assert_int_equal(w->pl_tok_embd.ne[1], h->n_vocab);
    assert_int_equal(w->pl_model_proj.ne[1], 6 * 64);
    assert_int_equal(w->pl_proj_norm.ne[0], 64);
    // a decode step reads the matrices, the (tied) output and the vectors, one row of the per-layer table
    int n_mats;
    const tv_tensor *const *mats = model_matrices(m, &n_mats);
    size_t mat_bytes = model_output(m)->nbytes;
    for (int i = 0; i < n_mats; i++) mat_bytes += mats[i]->nbytes;
    assert_true(model_weight_bytes(m) >= mat_bytes && model_weight_bytes(m) < mat_bytes + 65536);
    assert_true(w->pl_tok_embd.nbytes > 65536);
    // the cache holds the 3 layers with KV of their own, each sized for the largest (2 x 64 = 1 x 128)
    assert_int_equal(kv_cache_bytes_per_block(m, 16, true), 2 * 3 * 128 * 16 * 4);
    tv_kv_cache *kv = kv_cache_create(m, 4, 16, true, &err);
    assert_non_null(kv);
    assert_int_equal(kv->n_layers, 3);
    kv_cache_free(kv);
    tv_model_free(m);
    // shared layers may carry K/V tensors (ignored) but a layer with its own KV needs them
    expect_fail(&(change){.drop_tensor = "blk.1.attn_k.weight"}, TV_ERR_FORMAT, "blk.1.attn_k.weight", NULL);
    expect_fail(&(change){.drop_tensor = "blk.4.inp_gate.weight"}, TV_ERR_FORMAT, "blk.4.inp_gate.weight", NULL);
    expect_fail(&(change){.drop_tensor = "per_layer_proj_norm.weight"}, TV_ERR_FORMAT, "per_layer_proj_norm.weight", NULL);
    expect_fail(&(change){.edit = shared_kv_5}, TV_ERR_FORMAT, "gemma4.attention.shared_kv_layers = 5", "at most 4", NULL);
    expect_fail(&(change){.edit = per_layer_inputs}, TV_ERR_FORMAT, "per_layer_token_embd.weight", "[1536, 512]", NULL);
    expect_fail(&(change){.edit = ff_short}, TV_ERR_FORMAT, "gemma4.feed_forward_length", "6 integers", NULL);
    expect_fail(&(change){.edit = ff_floats}, TV_ERR_FORMAT, "gemma4.feed_forward_length", "6 integers", NULL);
    expect_fail(&(change){.edit = ff_zero}, TV_ERR_FORMAT, "gemma4.feed_forward_length[4] = 0", "out of range", NULL);
    expect_fail(&(change){.edit = ff_scalar}, TV_ERR_FORMAT, "blk.3.ffn_gate.weight", "[256, 768]", NULL);
    remove(g_src);
    // a family that reads one length (llama.cpp's n_ff(): layer 0's) takes an array, every layer at layer 0's
    write_synth("gemma3");
    rewrite(&(change){.edit = ff_gemma3_uniform});
    if (!(m = load(g_dst, &err))) fail_msg("%s", err.msg);
    assert_int_equal(model_hparams(m)->hidden_dim, 768);
    assert_int_equal(model_layers(m)[7].ff_dim, 0);
    tv_model_free(m);
    expect_fail(&(change){.edit = ff_gemma3_wide0}, TV_ERR_FORMAT, "blk.0.ffn_gate.weight", "[256, 1536]", NULL);
    remove(g_dst);
    remove(g_src);
}

// A tied output projection (gemma3 has no output.weight) gets a packed copy of its own where the
// path repacks Q8_0: the logits run the packed kernel, the lookups read the table, which stays
// unpacked; with repacking off (or on a path where it does not pay) the output is the table itself.
static void test_tied_output_packed(void **state) {
    (void)state;
    write_synth_type("gemma3", TV_TYPE_Q8_0);
    kern_table kt;
    tv_error err = {0};
    if (kern_table_init(&kt, NULL, &err)) fail_msg("%s", err.msg);
    const bool pays = kern_traits(&kt, TV_TYPE_Q8_0)->pack_pays;
    tv_model *m = load(g_src, &err);
    if (!m) fail_msg("%s", err.msg);
    const tv_tensor *out = model_output(m), *te = model_tok_embd(m);
    assert_int_equal(out->packed, pays);
    assert_false(te->packed);
    assert_true(pays ? out->data != te->data : out->data == te->data);
    assert_int_equal(out->ne[0], te->ne[0]);
    assert_int_equal(out->ne[1], te->ne[1]);
    tv_model_free(m);
    tv_model_params p;
    tv_model_params_default(&p);
    p.no_repack = true;
    if (!(m = tv_model_load(g_src, &p, &err))) fail_msg("%s", err.msg);
    assert_ptr_equal(model_output(m)->data, model_tok_embd(m)->data);
    assert_false(model_output(m)->packed);
    tv_model_free(m);
    remove(g_src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemma2),
        cmocka_unit_test(test_gemma3),
        cmocka_unit_test(test_gemma4),
        cmocka_unit_test(test_gemma4e),
        cmocka_unit_test(test_tied_output_packed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
