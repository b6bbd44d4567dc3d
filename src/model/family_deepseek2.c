// family_deepseek2.c — DeepSeek-V2/V2-Lite/V3 style models (GGUF arch "deepseek2"; Kimi-K2 and
// GigaChat files use it too): multi-head latent attention and a mixture of experts with shared
// experts after n_dense_lead dense layers.
//
// Attention (layers_mla_attention): queries from a low-rank compression (attn_q_a, attn_q_a_norm,
// attn_q_b; the Lite variant has attn_q instead), keys and values from one latent per token
// (attn_kv_a_mqa gives the latent and a RoPE key shared by every head; attn_kv_a_norm normalizes
// the latent), per-head up-projections attn_k_b / attn_v_b (the GGUF layout since llama.cpp split
// attn_kv_b; files with only attn_kv_b are rejected naming the missing tensor). The KV cache holds
// the latent and the RoPE key: key_length = kv_lora_rank + rope dims, one KV head, no V pool.
// RoPE is the normal (interleaved pairs) kind on the rope dims only. With YaRN, llama.cpp's
// DeepSeek rule: rope.scaling.yarn_log_multiplier is stored as 0.1 * mscale_all_dim; the RoPE
// magnitude is then attn_factor alone, and scores are scaled by mscale^2 / sqrt(key_length_mla) with
// mscale = attn_factor * (1 + 0.1 * mscale_all_dim * ln(factor)) (without the key: 1 + 0.1 ln(factor)
// for both).
//
// FFN: the first leading_dense_block_count layers are dense (feed_forward_length); the others
// route with expert_gating_func (1 softmax, 2 sigmoid; absent: softmax, except GLM-4.7-Lite's
// sigmoid, as llama.cpp decides), an optional selection bias exp_probs_b (V3), grouped top-k
// (expert_group_count / expert_group_used_count), expert_weights_norm and expert_weights_scale,
// plus expert_shared_count shared experts as one ungated FFN of that many times
// expert_feed_forward_length. nextn_predict_layers (MTP) layers at the end are not run (llama.cpp
// skips them too); their tensors are left unbound.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"deepseek2", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_KEYS_MOE_ROUTING,
    FAMILY_INT_OPT("attention.q_lora_rank", n_lora_q, 0, 1 << 16, 0),
    FAMILY_INT("attention.kv_lora_rank", n_lora_kv, 1, 1 << 16),
    FAMILY_INT("attention.key_length_mla", head_dim_k_mla, 2, 1024),
    FAMILY_INT("attention.value_length_mla", head_dim_v_mla, 1, 1024),
    FAMILY_INT_OPT("expert_group_count", moe_n_group, 0, TV_MAX_EXPERTS, 0),
    FAMILY_INT_OPT("expert_group_used_count", moe_n_group_used, 0, TV_MAX_EXPERTS, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),
    {.name = "attn_q_a.weight", .is_layer = true, .offset = offsetof(tv_layer, wq_a), .ne0 = FD_EMBD, .ne1 = FD_LORA_Q,
     .when = FW_Q_LORA},
    {.name = "attn_q_a_norm.weight", .is_layer = true, .offset = offsetof(tv_layer, q_a_norm), .ne0 = FD_LORA_Q,
     .ne1 = FD_ONE, .when = FW_Q_LORA},
    {.name = "attn_q_b.weight", .is_layer = true, .offset = offsetof(tv_layer, wq_b), .ne0 = FD_LORA_Q,
     .ne1 = FD_Q_MLA, .when = FW_Q_LORA},
    {.name = "attn_q.weight", .is_layer = true, .offset = offsetof(tv_layer, wq), .ne0 = FD_EMBD, .ne1 = FD_Q_MLA,
     .when = FW_Q_DIRECT},
    FAMILY_LAYER_SPLIT2("attn_kv_a_mqa.weight", FD_EMBD, wkv_a_c, FD_LORA_KV, wkv_a_pe, FD_ROT),
    FAMILY_LAYER("attn_kv_a_norm.weight", kv_a_norm, FD_LORA_KV, FD_ONE),
    FAMILY_PER_HEAD("attn_k_b.weight", wk_b, FD_NOPE, FD_LORA_KV),
    FAMILY_PER_HEAD("attn_v_b.weight", wv_b, FD_LORA_KV, FD_V_MLA),
    FAMILY_LAYER("attn_output.weight", wo, FD_O_MLA, FD_EMBD),
    FAMILY_TENSORS_FFN_DENSE,
    FAMILY_TENSORS_EXPERTS(FW_MOE),
    {.name = "exp_probs_b.bias", .is_layer = true, .offset = offsetof(tv_layer, exp_probs_b), .ne0 = FD_EXPERT,
     .ne1 = FD_ONE, .when = FW_MOE, .is_optional = true},
    FAMILY_TENSORS_SHEXP_MOE,
};

static double key_or(const gguf_ctx *g, const char *arch, const char *key, double dflt) {
    char k[160];
    double v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_float(g, k, &v) ? v : dflt;
}

static tv_status configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    (void)layers;
    const tv_status nst = family_drop_nextn(g, arch, h, err);
    if (nst != TV_OK) return nst;
    if (h->n_kv_heads != 1)
        return err_fail(err, TV_ERR_FORMAT, "%s.attention.head_count_kv is %d; latent attention has 1", arch,
                        h->n_kv_heads);
    if (h->head_dim != h->n_lora_kv + h->n_rot)
        return err_fail(err, TV_ERR_FORMAT,
                        "%s.attention.key_length %d is not kv_lora_rank %d + rope.dimension_count %d", arch,
                        h->head_dim, h->n_lora_kv, h->n_rot);
    if (h->head_dim_k_mla <= h->n_rot)
        return err_fail(err, TV_ERR_FORMAT, "%s.attention.key_length_mla %d leaves no room beside rope.dimension_count %d",
                        arch, h->head_dim_k_mla, h->n_rot);
    if (!h->moe_gating)   // llama.cpp: V2 files without the key use softmax; GLM-4.7-Lite sigmoid
        h->moe_gating = (h->n_layers == 47 || h->n_layers == 48) && h->n_vocab == 154880 ? TV_GATING_SIGMOID
                                                                                          : TV_GATING_SOFTMAX;
    // YaRN as llama.cpp applies it to deepseek2 (the comment at the top); the loader has set
    // rope_mscale = attn_factor * (1 + 0.1 ln f) / (1 + 0.1 * raw ln f) for every family
    const double attn_factor = key_or(g, arch, "rope.scaling.attn_factor", 1.0);
    const double log_mul = key_or(g, arch, "rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
    double mscale = attn_factor;
    if (!strcmp(h->rope_scaling, "yarn")) {
        const double f = key_or(g, arch, "rope.scaling.factor", 1.0);
        if (f > 1) {
            mscale *= 1 + 0.1 * (log_mul != 0 ? log_mul : 1.0) * log(f);
            h->rope_mscale = (float)(log_mul != 0 ? attn_factor : attn_factor * (1 + 0.1 * log(f)));
        }
    }
    h->attn_scale = (float)(mscale * mscale / sqrt((double)h->head_dim_k_mla));
    return TV_OK;
}

static tv_status block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    tv_status st = layers_mla_attention(s, L, l, s->xb2, err);
    if (st) return st;
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_ffn(s, LAYERS_ACT_SILU, L, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_deepseek2 = {
    .name = "deepseek2",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = block,
    .configure = configure,
};
