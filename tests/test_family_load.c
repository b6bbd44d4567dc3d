// test_family_load.c — the loaders of the qwen2, qwen3, smollm3, granite, mistral3, phi3 and qwen35 families
// and the RoPE scaling keys (model.c; phi3: fused tensors bound as row views, LongRoPE's two tables): a well-formed file of each loads; a missing or misshapen family
// tensor, a missing required key, an out-of-range key, an unknown RoPE scaling type and an unknown
// architecture each fail with an error naming what is wrong. (Their numerics are checked against
// llama.cpp by the family fixtures.)
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "kernels/deltanet.h"
#include "model/model.h"
#include "tinyvllm.h"
#include "test_util.h"

enum { DIM = 64, HID = 96, LAYERS = 2, HEADS = 4, KVH = 2, HD = 32, VOCAB = 80 };
// qwen35 (hybrid): layer 0 Gated DeltaNet, layer 1 full attention (full_attention_interval 2)
enum { SSM_HEAD = 16, SSM_KH = 2, SSM_VH = 4, SSM_CONV = 4, SSM_CONV_DIM = (2 * SSM_KH + SSM_VH) * SSM_HEAD };

// What a test changes in the file: a tensor left out or given another row length, a key set to
// another value (a float key) or left out.
typedef struct variant {
    const char *drop_tensor;      // full GGUF name, or NULL
    const char *reshape_tensor;   // full GGUF name whose ne[0] becomes ne[0] + 2, or NULL
    const char *drop_key;         // full key, or NULL
    const char *float_key;        // full key set to float_val, or NULL
    float float_val;
    const char *str_key;          // full key set to str_val, or NULL
    const char *str_val;
    const char *u32_key;          // full key set to u32_val, or NULL
    uint32_t u32_val;
    const char *bool_key;         // full key set to false, or NULL
} variant;

static float *g_data;   // big enough for any tensor here, filled with small values

static void add_t(gguf_writer *w, const variant *v, const char *name, int64_t ne0, int64_t ne1) {
    if (v->drop_tensor && !strcmp(v->drop_tensor, name)) return;
    if (v->reshape_tensor && !strcmp(v->reshape_tensor, name)) ne0 += 2;
    int64_t ne[2] = {ne0, ne1};
    tv_error err = {0};
    if (gguf_add_tensor(w, name, TV_TYPE_F32, ne1 > 1 ? 2 : 1, ne, g_data, &err)) fail_msg("%s", err.msg);
}

// Writes a small F32 model of arch with its family's tensors (qwen3's head_dim != dim / heads).
static void write_model(const char *path, const char *arch, const variant *v) {
    gguf_writer *w = gguf_writer_create();
    assert_non_null(w);
    const bool is_qwen3 = !strcmp(arch, "qwen3"), is_qwen2 = !strcmp(arch, "qwen2"), is_phi3 = !strcmp(arch, "phi3");
    const bool is_hybrid = !strcmp(arch, "qwen35");
    const int hd = is_qwen3 ? HD : DIM / HEADS;
    char k[128];
#define KEY(name) (snprintf(k, sizeof k, "%s.%s", arch, name), k)
    gguf_set_str(w, "general.architecture", arch);
    gguf_set_u32(w, KEY("context_length"), 256);
    gguf_set_u32(w, KEY("embedding_length"), DIM);
    gguf_set_u32(w, KEY("block_count"), LAYERS);
    gguf_set_u32(w, KEY("feed_forward_length"), HID);
    gguf_set_u32(w, KEY("attention.head_count"), HEADS);
    gguf_set_u32(w, KEY("attention.head_count_kv"), KVH);
    gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    gguf_set_f32(w, KEY("rope.freq_base"), 10000.0f);
    if (is_qwen3) {
        gguf_set_u32(w, KEY("attention.key_length"), HD);
        gguf_set_u32(w, KEY("attention.value_length"), HD);
    }
    if (is_hybrid) {
        gguf_set_u32(w, KEY("ssm.conv_kernel"), SSM_CONV);
        gguf_set_u32(w, KEY("ssm.state_size"), SSM_HEAD);
        gguf_set_u32(w, KEY("ssm.group_count"), SSM_KH);
        gguf_set_u32(w, KEY("ssm.time_step_rank"), SSM_VH);
        gguf_set_u32(w, KEY("ssm.inner_size"), SSM_VH * SSM_HEAD);
        gguf_set_u32(w, KEY("full_attention_interval"), 2);
    }
    if (!strcmp(arch, "granite")) {
        gguf_set_f32(w, KEY("logit_scale"), 8.0f);
        gguf_set_f32(w, KEY("residual_scale"), 0.22f);
        gguf_set_f32(w, KEY("embedding_scale"), 12.0f);
        gguf_set_f32(w, KEY("attention.scale"), 0.03125f);
    }
    if (!strcmp(arch, "mistral3")) {
        gguf_set_str(w, KEY("rope.scaling.type"), "yarn");
        gguf_set_f32(w, KEY("rope.scaling.factor"), 16.0f);
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), 64);
        gguf_set_f32(w, KEY("rope.scaling.yarn_beta_fast"), 32.0f);
        gguf_set_f32(w, KEY("rope.scaling.yarn_beta_slow"), 1.0f);
        gguf_set_f32(w, KEY("attention.temperature_scale"), 0.1f);
    }
    if (is_phi3) {   // LongRoPE: short factors up to 128 tokens of context, long ones beyond
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), 128);
        gguf_set_f32(w, KEY("rope.scaling.attn_factor"), 1.19f);
        static float factors[2][DIM / HEADS / 2];
        for (int i = 0; i < DIM / HEADS / 2; i++) {
            factors[0][i] = 1.0f + 0.5f * (float)i;
            factors[1][i] = 1.0f + 4.0f * (float)i;
        }
        tv_error e = {0};
        const int64_t ne[1] = {DIM / HEADS / 2};
        if (gguf_add_tensor(w, "rope_factors_short.weight", TV_TYPE_F32, 1, ne, factors[0], &e) ||
            gguf_add_tensor(w, "rope_factors_long.weight", TV_TYPE_F32, 1, ne, factors[1], &e))
            fail_msg("%s", e.msg);
    }
#undef KEY
    if (v->float_key) gguf_set_f32(w, v->float_key, v->float_val);
    if (v->str_key) gguf_set_str(w, v->str_key, v->str_val);
    if (v->u32_key) gguf_set_u32(w, v->u32_key, v->u32_val);
    if (v->bool_key) gguf_set_bool(w, v->bool_key, false);
    add_t(w, v, "token_embd.weight", DIM, VOCAB);
    add_t(w, v, "output_norm.weight", DIM, 1);
    for (int l = 0; l < LAYERS; l++) {
        char n[64];
#define LAYER(suffix, ne0, ne1) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), add_t(w, v, n, ne0, ne1))
        LAYER("attn_norm.weight", DIM, 1);
        if (is_hybrid) {
            if (l == 0) {
                LAYER("attn_qkv.weight", DIM, SSM_CONV_DIM);
                LAYER("attn_gate.weight", DIM, SSM_VH * SSM_HEAD);
                LAYER("ssm_conv1d.weight", SSM_CONV, SSM_CONV_DIM);
                LAYER("ssm_dt.bias", SSM_VH, 1);
                LAYER("ssm_a", SSM_VH, 1);
                LAYER("ssm_alpha.weight", DIM, SSM_VH);
                LAYER("ssm_beta.weight", DIM, SSM_VH);
                LAYER("ssm_norm.weight", SSM_HEAD, 1);
                LAYER("ssm_out.weight", SSM_VH * SSM_HEAD, DIM);
            } else {
                LAYER("attn_q.weight", DIM, 2 * HEADS * hd);   // each head's query, then its gate
                LAYER("attn_k.weight", DIM, KVH * hd);
                LAYER("attn_v.weight", DIM, KVH * hd);
                LAYER("attn_output.weight", HEADS * hd, DIM);
                LAYER("attn_q_norm.weight", hd, 1);
                LAYER("attn_k_norm.weight", hd, 1);
            }
            LAYER("post_attention_norm.weight", DIM, 1);
            LAYER("ffn_gate.weight", DIM, HID);
            LAYER("ffn_up.weight", DIM, HID);
            LAYER("ffn_down.weight", HID, DIM);
            continue;
        }
        if (is_phi3) {
            LAYER("attn_qkv.weight", DIM, (HEADS + 2 * KVH) * hd);
        } else {
            LAYER("attn_q.weight", DIM, HEADS * hd);
            LAYER("attn_k.weight", DIM, KVH * hd);
            LAYER("attn_v.weight", DIM, KVH * hd);
        }
        LAYER("attn_output.weight", HEADS * hd, DIM);
        if (is_qwen2) {
            LAYER("attn_q.bias", HEADS * hd, 1);
            LAYER("attn_k.bias", KVH * hd, 1);
            LAYER("attn_v.bias", KVH * hd, 1);
        }
        if (is_qwen3) {
            LAYER("attn_q_norm.weight", HD, 1);
            LAYER("attn_k_norm.weight", HD, 1);
        }
        LAYER("ffn_norm.weight", DIM, 1);
        if (is_phi3) {
            LAYER("ffn_up.weight", DIM, 2 * HID);   // gate rows, then up rows
        } else {
            LAYER("ffn_gate.weight", DIM, HID);
            LAYER("ffn_up.weight", DIM, HID);
        }
        LAYER("ffn_down.weight", HID, DIM);
#undef LAYER
    }
    tv_error err = {0};
    // a dropped key: its value becomes a string, which the loader does not take for a number
    if (v->drop_key) gguf_set_str(w, v->drop_key, "absent");
    if (gguf_writer_write(w, path, &err)) fail_msg("%s", err.msg);
    gguf_writer_free(w);
}

static char g_path[512];

// Loads arch with variant v: NULL + the error's code and message when it fails.
static tv_model *load(const char *arch, const variant *v, tv_error *err) {
    write_model(g_path, arch, v);
    memset(err, 0, sizeof *err);
    return tv_model_load(g_path, NULL, err);
}

// The load fails with code and a message containing every one of the NULL-terminated strings.
static void expect_fail(const char *arch, const variant *v, tv_status code, ...) {
    tv_error err;
    tv_model *m = load(arch, v, &err);
    if (m) fail_msg("%s: loaded, expected an error", arch);
    if (err.code != code) fail_msg("%s: code %d (%s), expected %d", arch, err.code, err.msg, code);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err.msg, s)) fail_msg("%s: error '%s' does not name '%s'", arch, err.msg, s);
    va_end(ap);
}

static void test_each_family_loads(void **state) {
    (void)state;
    static const char *const ARCHS[] = {"qwen2", "qwen3", "smollm3", "granite", "mistral3", "phi3", "qwen35"};
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        tv_error err;
        tv_model *m = load(ARCHS[i], &(variant){0}, &err);
        if (!m) fail_msg("%s: %s", ARCHS[i], err.msg);
        const tv_hparams *h = model_hparams(m);
        assert_int_equal(h->head_dim, !strcmp(ARCHS[i], "qwen3") ? HD : DIM / HEADS);
        if (!strcmp(ARCHS[i], "granite")) {
            assert_true(h->logit_scale == 8.0f && h->residual_scale == 0.22f && h->embd_scale == 12.0f &&
                        h->attn_scale == 0.03125f && h->rope_finetuned == 1);
        }
        if (!strcmp(ARCHS[i], "mistral3")) {
            assert_string_equal(h->rope_scaling, "yarn");
            assert_int_equal(h->attn_temp_floor, 64);
            // YaRN without yarn_log_multiplier: magnitude 1 + 0.1 ln 16
            assert_true(fabsf(h->rope_mscale - (1.0f + 0.1f * logf(16.0f))) < 1e-6f);
            // the fastest pair keeps its frequency, the slowest is divided by the factor
            const float *inv = model_rope_inv_freq(m, h->n_ctx_train);
            assert_true(inv[0] == 1.0f);
            assert_true(fabs(inv[h->n_rot / 2 - 1] - pow(10000.0, -2.0 * (h->n_rot / 2 - 1) / h->n_rot) / 16) < 1e-9);
        }
        if (!strcmp(ARCHS[i], "phi3")) {
            // fused weights: Q, K, V and gate, up are consecutive row ranges of one tensor each
            const tv_layer *L = model_layers(m);
            const size_t row = DIM * sizeof(float), hd = DIM / HEADS;
            assert_true(L[1].wq.ne[1] == HEADS * (int64_t)hd && L[1].wk.ne[1] == KVH * (int64_t)hd &&
                        L[1].wv.ne[1] == KVH * (int64_t)hd && L[1].w_gate.ne[1] == HID && L[1].w_up.ne[1] == HID);
            assert_ptr_equal(L[1].wk.data, (const char *)L[1].wq.data + HEADS * hd * row);
            assert_ptr_equal(L[1].wv.data, (const char *)L[1].wk.data + KVH * hd * row);
            assert_ptr_equal(L[1].w_up.data, (const char *)L[1].w_gate.data + HID * row);
            assert_int_equal(L[1].wv.nbytes, KVH * hd * row);
            // LongRoPE: base^(-2i/n_rot) / short factor up to a 128-token context, / long factor above;
            // attn_factor scales cos and sin
            assert_string_equal(h->rope_scaling, "longrope");
            assert_true(fabsf(h->rope_mscale - 1.19f) < 1e-6f);
            const float *s = model_rope_inv_freq(m, 128), *l = model_rope_inv_freq(m, 129);
            for (int p = 0; p < h->n_rot / 2; p++) {
                const double base = pow(10000.0, -2.0 * p / h->n_rot);
                assert_true(fabs(s[p] - base / (1.0 + 0.5 * p)) < 1e-7 && fabs(l[p] - base / (1.0 + 4.0 * p)) < 1e-7);
            }
        }
        if (!strcmp(ARCHS[i], "qwen35")) {   // one linear layer, one full-attention layer
            const tv_layer *L = model_layers(m);
            assert_int_equal(h->n_linear, 1);
            assert_true(L[0].is_linear && !L[1].is_linear && L[0].kind_index == 0 && L[1].kind_index == 0);
            assert_true(L[0].ssm_conv1d.ne[0] == SSM_CONV && L[1].wq.ne[1] == 2 * HEADS * DIM / HEADS);
            assert_null(L[0].wq.data);
            assert_null(L[1].ssm_qkv.data);
            // the conv weights are read directly, never multiplied: not among the matrices
            int n;
            const tv_tensor *const *mats = model_matrices(m, &n);
            for (int j = 0; j < n; j++) assert_ptr_not_equal(mats[j], &L[0].ssm_conv1d);
            assert_int_equal(kv_cache_state_bytes_per_slot(m),
                             ((SSM_CONV - 1) * SSM_CONV_DIM + SSM_VH * kern_gdn_head_floats(SSM_HEAD)) * sizeof(float));
        }
        tv_model_free(m);
    }
}

// An integer key may be a GGUF bool: granite's rope.scaling.finetuned = false turns RoPE off.
static void test_bool_key(void **state) {
    (void)state;
    tv_error err;
    tv_model *m = load("granite", &(variant){.bool_key = "granite.rope.scaling.finetuned"}, &err);
    if (!m) fail_msg("%s", err.msg);
    assert_int_equal(model_hparams(m)->rope_finetuned, 0);
    tv_model_free(m);
}

static void test_missing_or_misshapen_tensors(void **state) {
    (void)state;
    expect_fail("qwen3", &(variant){.drop_tensor = "blk.1.attn_k_norm.weight"}, TV_ERR_FORMAT,
                "blk.1.attn_k_norm.weight", "missing", NULL);
    expect_fail("qwen3", &(variant){.reshape_tensor = "blk.0.attn_q_norm.weight"}, TV_ERR_FORMAT,
                "blk.0.attn_q_norm.weight", "[34, 1", "[32, 1]", NULL);
    expect_fail("qwen2", &(variant){.drop_tensor = "blk.0.attn_v.bias"}, TV_ERR_FORMAT, "blk.0.attn_v.bias",
                "missing", NULL);
    expect_fail("qwen2", &(variant){.reshape_tensor = "blk.1.attn_q.bias"}, TV_ERR_FORMAT, "blk.1.attn_q.bias",
                NULL);
    expect_fail("granite", &(variant){.drop_tensor = "blk.1.ffn_down.weight"}, TV_ERR_FORMAT,
                "blk.1.ffn_down.weight", NULL);
    // phi3's fused tensors: required, and their row count is the sum of the parts'
    expect_fail("phi3", &(variant){.drop_tensor = "blk.1.attn_qkv.weight"}, TV_ERR_FORMAT, "blk.1.attn_qkv.weight",
                "missing", NULL);
    expect_fail("phi3", &(variant){.reshape_tensor = "blk.0.ffn_up.weight"}, TV_ERR_FORMAT, "blk.0.ffn_up.weight",
                "[66, 192", "[64, 192]", NULL);
    expect_fail("phi3", &(variant){.drop_tensor = "rope_factors_long.weight", .u32_key = "phi3.rope.dimension_count",
                                   .u32_val = 8},
                TV_ERR_FORMAT, "rope_factors_short.weight", "F32 [4]", NULL);
    expect_fail("phi3", &(variant){.drop_key = "phi3.attention.layer_norm_rms_epsilon"}, TV_ERR_FORMAT,
                "phi3.attention.layer_norm_rms_epsilon", "missing", NULL);
    // hybrid: each kind of layer has its own tensors, checked where that kind is
    expect_fail("qwen35", &(variant){.drop_tensor = "blk.0.ssm_a"}, TV_ERR_FORMAT, "blk.0.ssm_a", "missing", NULL);
    expect_fail("qwen35", &(variant){.drop_tensor = "blk.1.attn_q_norm.weight"}, TV_ERR_FORMAT,
                "blk.1.attn_q_norm.weight", "missing", NULL);
    expect_fail("qwen35", &(variant){.reshape_tensor = "blk.0.ssm_conv1d.weight"}, TV_ERR_FORMAT,
                "blk.0.ssm_conv1d.weight", "[4, 128]", NULL);
    expect_fail("qwen35", &(variant){.drop_tensor = "blk.0.attn_gate.weight"}, TV_ERR_FORMAT,
                "blk.0.attn_gate.weight", "missing", NULL);
}

static void test_keys_checked(void **state) {
    (void)state;
    expect_fail("granite", &(variant){.drop_key = "granite.logit_scale"}, TV_ERR_FORMAT, "granite.logit_scale",
                "missing", NULL);
    expect_fail("granite", &(variant){.float_key = "granite.residual_scale", .float_val = -1}, TV_ERR_FORMAT,
                "granite.residual_scale", "out of range", NULL);
    expect_fail("granite", &(variant){.float_key = "granite.attention.scale", .float_val = 0}, TV_ERR_FORMAT,
                "granite.attention.scale", NULL);
    expect_fail("mistral3", &(variant){.float_key = "mistral3.rope.scaling.yarn_beta_fast", .float_val = -2},
                TV_ERR_FORMAT, "mistral3.rope.scaling.yarn_beta_fast", NULL);
    expect_fail("mistral3", &(variant){.float_key = "mistral3.attention.temperature_scale", .float_val = -0.5f},
                TV_ERR_FORMAT, "mistral3.attention.temperature_scale", NULL);
    expect_fail("qwen2", &(variant){.float_key = "qwen2.rope.scaling.factor", .float_val = -4}, TV_ERR_FORMAT,
                "qwen2.rope.scaling.factor", NULL);
    expect_fail("qwen2", &(variant){.str_key = "qwen2.rope.scaling.type", .str_val = "longrope"},
                TV_ERR_UNSUPPORTED, "longrope", NULL);
    expect_fail("qwen3", &(variant){.float_key = "qwen3.attention.layer_norm_rms_epsilon", .float_val = 2},
                TV_ERR_FORMAT, "qwen3.attention.layer_norm_rms_epsilon", NULL);
    // value heads of another size than key heads: named, not computed wrongly
    expect_fail("qwen3", &(variant){.u32_key = "qwen3.attention.value_length", .u32_val = 64}, TV_ERR_UNSUPPORTED,
                "qwen3.attention.value_length", NULL);
    expect_fail("qwen3", &(variant){.u32_key = "qwen3.attention.key_length", .u32_val = 2048}, TV_ERR_FORMAT,
                "qwen3.attention.key_length", "out of range", NULL);
    // hybrid: the Gated DeltaNet sizes and the layer pattern
    expect_fail("qwen35", &(variant){.drop_key = "qwen35.ssm.state_size"}, TV_ERR_FORMAT, "qwen35.ssm.state_size",
                "missing", NULL);
    expect_fail("qwen35", &(variant){.u32_key = "qwen35.ssm.conv_kernel", .u32_val = 9}, TV_ERR_FORMAT,
                "qwen35.ssm.conv_kernel", "out of range", NULL);
    expect_fail("qwen35", &(variant){.u32_key = "qwen35.ssm.group_count", .u32_val = 3}, TV_ERR_FORMAT,
                "qwen35.ssm.group_count", "does not divide", NULL);
    expect_fail("qwen35", &(variant){.u32_key = "qwen35.ssm.inner_size", .u32_val = 60}, TV_ERR_FORMAT,
                "qwen35.ssm.inner_size", NULL);
    expect_fail("qwen35", &(variant){.u32_key = "qwen35.full_attention_interval", .u32_val = 0}, TV_ERR_FORMAT,
                "qwen35.full_attention_interval", NULL);
    expect_fail("qwen35", &(variant){.u32_key = "qwen35.full_attention_interval", .u32_val = 3}, TV_ERR_FORMAT,
                "qwen35.full_attention_interval", NULL);
    expect_fail("smollm3", &(variant){.str_key = "general.architecture", .str_val = "qwen9"}, TV_ERR_UNSUPPORTED,
                "qwen9", "qwen2", "qwen3", "smollm3", "granite", "mistral3", NULL);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_path, sizeof g_path, "%s/family-load.gguf", TV_BINARY_DIR);
    g_data = malloc(sizeof(float) * (DIM + 2) * VOCAB * 3);   // phi3's ffn_up: 66 x 192
    if (!g_data) return -1;
    for (int i = 0; i < (DIM + 2) * VOCAB * 3; i++) g_data[i] = 0.02f * rnd_normal();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove(g_path);
    free(g_data);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_family_loads),
        cmocka_unit_test(test_bool_key),
        cmocka_unit_test(test_missing_or_misshapen_tensors),
        cmocka_unit_test(test_keys_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
