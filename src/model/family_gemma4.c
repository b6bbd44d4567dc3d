// family_gemma4.c — Gemma 4, dense text models: Gemma 3's block (embeddings scaled by sqrt(dim),
// pre- and post-normed sublayers, per-head q/k RMSNorm, GeGLU, NeoX RoPE) where each layer has its
// own attention shape: sliding layers (a per-layer bool pattern) with their own head size
// (key_length_swa), KV heads (head_count_kv may be per layer), rotated dims and RoPE base, global
// layers with theirs and the file's rope_freqs divisors ("proportional" RoPE); V is RMS-normed
// without a weight and is K itself where a layer has no attn_v; no query scaling (scale 1);
// an optional per-layer output scalar; final logits soft-capped (30 unless the file says).
// E2B/E4B: per-layer inputs (a second embedding table of n_embd_pl values per layer, mixed with a
// projection of the embeddings, gating a small per-layer MLP added after each layer) and KV shared
// across layers (the last attention.shared_kv_layers layers store no K/V: each attends over the
// cache of the last earlier layer of its kind, as llama.cpp's KV reuse rule picks it).
// Per-layer feed-forward lengths (feed_forward_length as an array: E2B/E4B's double-wide MLP on
// the layers that share KV) size each layer's FFN.
// 26B-A4B: with expert_count > 0 every layer runs a mixture of experts beside its dense MLP, as
// llama.cpp's gemma4 graph does: the dense MLP from ffn_norm, normed by post_ffw_norm_1; the
// experts from pre_ffw_norm_2, routed by ffn_gate_inp over rmsnorm(x) / sqrt(dim) * ffn_gate_inp.scale
// (softmax, top expert_used_count, weights divided by their sum), gate and up fused in one
// ffn_gate_up_exps (GeGLU), each expert's output times its ffn_down_exps.scale, normed by
// post_ffw_norm_2; the two added, then post_ffw_norm, into the residual.
#include <math.h>
#include <stdio.h>

#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"gemma4", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_INT("attention.sliding_window", n_swa, 1, INT32_MAX),
    FAMILY_FLOAT_OPT("final_logit_softcapping", final_softcap, 0, 1e6, 30.0),
    FAMILY_FLOAT_OPT("rope.freq_base_swa", rope_theta_swa, 1e-3, 1e12, 10000.0),
    FAMILY_INT_OPT("rope.dimension_count_swa", n_rot_swa, 2, 1024, 0),
    FAMILY_INT_OPT("embedding_length_per_layer_input", n_embd_pl, 0, 1 << 16, 0),
    FAMILY_KEYS_MOE_OPT,
    FAMILY_INT_OPT("expert_feed_forward_length", ff_exp, 1, 1 << 20, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSOR_WHEN("per_layer_token_embd.weight", pl_tok_embd, FD_PL_ALL, FD_VOCAB, FW_PER_LAYER_INPUT),
    FAMILY_TENSOR_WHEN("per_layer_model_proj.weight", pl_model_proj, FD_EMBD, FD_PL_ALL, FW_PER_LAYER_INPUT),
    FAMILY_TENSOR_WHEN("per_layer_proj_norm.weight", pl_proj_norm, FD_PL, FD_ONE, FW_PER_LAYER_INPUT),
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER("attn_q.weight", wq, FD_EMBD, FD_Q),
    FAMILY_LAYER_WHEN("attn_k.weight", wk, FD_EMBD, FD_KV, FW_OWN_KV),
    FAMILY_LAYER_OPT_WHEN("attn_v.weight", wv, FD_EMBD, FD_KV, FW_OWN_KV),
    FAMILY_LAYER("attn_output.weight", wo, FD_Q, FD_EMBD),
    FAMILY_LAYER("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER_WHEN("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE, FW_OWN_KV),
    FAMILY_LAYER("post_attention_norm.weight", attn_post_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER_OPT("layer_output_scale.weight", out_scale, FD_ONE, FD_ONE),
    FAMILY_TENSORS_FFN,
    FAMILY_LAYER("post_ffw_norm.weight", ffn_post_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER_WHEN("inp_gate.weight", pl_gate, FD_EMBD, FD_PL, FW_PER_LAYER_INPUT),
    FAMILY_LAYER_WHEN("proj.weight", pl_proj, FD_PL, FD_EMBD, FW_PER_LAYER_INPUT),
    FAMILY_LAYER_WHEN("post_norm.weight", pl_post_norm, FD_EMBD, FD_ONE, FW_PER_LAYER_INPUT),
    // 26B-A4B's experts (expert_count > 0)
    FAMILY_LAYER_WHEN("ffn_gate_inp.weight", ffn_gate_inp, FD_EMBD, FD_EXPERT, FW_MOE),
    FAMILY_LAYER_WHEN("ffn_gate_inp.scale", ffn_gate_inp_s, FD_EMBD, FD_ONE, FW_MOE),
    FAMILY_LAYER_WHEN("pre_ffw_norm_2.weight", ffn_pre_norm_2, FD_EMBD, FD_ONE, FW_MOE),
    FAMILY_LAYER_WHEN("post_ffw_norm_1.weight", ffn_post_norm_1, FD_EMBD, FD_ONE, FW_MOE),
    FAMILY_LAYER_WHEN("post_ffw_norm_2.weight", ffn_post_norm_2, FD_EMBD, FD_ONE, FW_MOE),
    FAMILY_EXPERTS("ffn_gate_up_exps.weight", ffn_gate_up_exps, FD_EMBD, FD_FF_EXP2, FW_MOE),
    FAMILY_EXPERTS("ffn_down_exps.weight", ffn_down_exps, FD_FF_EXP, FD_EMBD, FW_MOE),
    FAMILY_LAYER_WHEN("ffn_down_exps.scale", ffn_down_exps_s, FD_EXPERT, FD_ONE, FW_MOE),
};

// llama.cpp's gemma4 router: softmax, the top-k weights divided by their sum, scale 1
static const family_moe MOE = {.gating = TV_GATING_SOFTMAX, .norm = FAMILY_NORM_ON};

// An int `<arch>.<key>` (0 when absent).
static int64_t arch_int(const gguf_ctx *g, const char *arch, const char *key) {
    char k[160];
    int64_t v = 0;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_int(g, k, &v) ? v : 0;
}

static tv_status gemma4_configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers,
                                  tv_error *err) {
    if (h->n_expert > 0 && !h->ff_exp)   // (llama.cpp reads it as optional, then cannot size the experts)
        return err_fail(err, TV_ERR_FORMAT, "metadata %s.expert_feed_forward_length is missing (%s.expert_count = %d needs it)",
                        arch, arch, h->n_expert);
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    if (!gguf_get(g, key)) return err_fail(err, TV_ERR_FORMAT, "metadata %s is missing (gemma4 requires it)", key);
    tv_status st = family_swa_pattern(g, arch, 0, h, layers, err);
    if (st) return st;
    // head sizes: K and V alike (llama.cpp requires it), the sliding layers' defaulting to the global one
    int64_t hd_swa = arch_int(g, arch, "attention.key_length_swa");
    if (!hd_swa) hd_swa = h->head_dim;
    const int64_t v_len = arch_int(g, arch, "attention.value_length"), v_len_swa = arch_int(g, arch, "attention.value_length_swa");
    if (hd_swa > 1024 || (v_len && v_len != h->head_dim) || (v_len_swa && v_len_swa != hd_swa))
        return err_fail(err, TV_ERR_FORMAT, "metadata %s.attention.key_length(_swa) %d/%lld: value lengths must match, at most 1024",
                        arch, h->head_dim, (long long)hd_swa);
    if (!h->n_rot_swa) h->n_rot_swa = h->n_rot;
    if (h->n_rot_swa > hd_swa || h->n_rot_swa % 2)
        return err_fail(err, TV_ERR_FORMAT, "metadata %s.rope.dimension_count_swa = %d invalid for head size %lld", arch,
                        h->n_rot_swa, (long long)hd_swa);
    // KV heads: one count, or one per layer
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    const gguf_value *kv = gguf_get(g, key);
    const bool is_arr = kv && kv->type == GGUF_TYPE_ARRAY;
    if (is_arr && (kv->arr_type == GGUF_TYPE_STRING || kv->arr_type == GGUF_TYPE_ARRAY || kv->arr_n != (uint64_t)h->n_layers))
        return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a count or %d counts (one per layer)", key, h->n_layers);
    for (int l = 0; l < h->n_layers; l++) {
        const int64_t n_kv = is_arr ? gguf_arr_int(kv, (uint64_t)l) : h->n_kv_heads;
        if (n_kv < 1 || n_kv > h->n_heads || h->n_heads % n_kv)
            return err_fail(err, TV_ERR_FORMAT, "metadata %s: layer %d has %lld KV heads, which must divide %d heads", key,
                            l, (long long)n_kv, h->n_heads);
        layers[l].n_kv_heads = (int32_t)n_kv;
        layers[l].head_dim = layers[l].is_swa ? (int32_t)hd_swa : h->head_dim;
    }
    // shared KV: the first n_layer_kv layers have caches; llama.cpp's reuse rule sends every later
    // sliding layer to layer n_layer_kv - 2 and every later global one to n_layer_kv - 1, which
    // must then be of those kinds
    const int64_t n_shared = arch_int(g, arch, "attention.shared_kv_layers");
    if (n_shared < 0 || n_shared > h->n_layers - 2)
        return err_fail(err, TV_ERR_FORMAT, "metadata %s.attention.shared_kv_layers = %lld: at most %d (2 layers keep their KV)",
                        arch, (long long)n_shared, h->n_layers - 2);
    const int n_kv = h->n_layers - (int32_t)n_shared;
    h->n_layer_kv = n_shared ? n_kv : 0;
    for (int l = n_kv; l < h->n_layers; l++) {
        const int src = n_kv - (layers[l].is_swa ? 2 : 1);
        if (layers[src].is_swa != layers[l].is_swa)
            return err_fail(err, TV_ERR_FORMAT, "metadata %s.attention.shared_kv_layers = %lld: layer %d (%s) would reuse the KV of layer %d (%s)",
                            arch, (long long)n_shared, l, layers[l].is_swa ? "sliding" : "global", src,
                            layers[src].is_swa ? "sliding" : "global");
        layers[l].kv_layer = src;
        layers[l].n_kv_heads = layers[src].n_kv_heads;   // the cache's shape (same kind: same head size)
    }
    family_ff_per_layer(g, arch, h, layers);
    h->embd_scale = sqrtf((float)h->dim);
    h->attn_scale = 1.0f;   // Gemma 4 does not scale the queries (q and k are RMS-normed)
    h->rope_scale_swa = 1.0f;
    return TV_OK;
}

// A mixture-of-experts layer's FFN into s->xb2 (T, dim), from the residual s->x:
//   experts = postnorm_2(moe(prenorm_2(x)) routed by rmsnorm(x) * ffn_gate_inp.scale / sqrt(dim))
//   xb2     = experts + postnorm_1((gelu(h·Wgate) * (h·Wup))·Wdown)  with h = rmsnorm(x) * ffn_norm
// s->moe_y (T * k rows of dim) holds the router's input, then (free once the experts are summed)
// the dense MLP's output.
static void gemma4_moe_ffn(layer_state *s, const tv_layer *L) {
    const int T = s->n_tokens, dim = s->h->dim;
    float *router_x = s->moe_y, *mlp = s->moe_y;
    layers_rmsnorm(s, router_x, s->x, &L->ffn_gate_inp_s, T);
    layers_scale(s, router_x, dim, 1.0f / sqrtf((float)dim));
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_pre_norm_2, T);
    layers_moe_routed(s, LAYERS_ACT_GELU_TANH, L, router_x, s->xb2);
    layers_rmsnorm(s, s->xb2, s->xb2, &L->ffn_post_norm_2, T);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, T);
    layers_glu_mlp(s, LAYERS_ACT_GELU_TANH, &L->w_gate, &L->w_up, &L->w_down, mlp);
    layers_rmsnorm(s, mlp, mlp, &L->ffn_post_norm_1, T);
    layers_add(s, s->xb2, mlp);
}

// x += postnorm(attention(rope(qnorm(q), knorm(k)), rmsnorm(v))·Wo)  with q, k, v = rmsnorm(x)·Wq, Wk, Wv|Wk
//      (a layer reusing layer L->kv_layer's K/V computes q only)
// x += postnorm((gelu(h·Wgate) * (h·Wup))·Wdown)  with h = rmsnorm(x)  (or the experts beside it: gemma4_moe_ffn)
// x += the per-layer input's MLP (E2B/E4B);  x *= out_scale
static tv_status gemma4_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    const int T = s->n_tokens;
    const bool is_reused = L->kv_layer != l;
    const float *cs = L->is_swa ? s->rope_cs_swa : s->rope_cs;
    s->head_dim = L->head_dim;
    s->n_kv_heads = L->n_kv_heads;
    s->n_rot = L->is_swa ? s->h->n_rot_swa : s->h->n_rot;
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, T);
    if (is_reused) {
        layers_qkv(s, &L->wq, NULL, NULL);
        layers_head_norm(s, &L->q_norm, NULL);
        layers_rope_q(s, cs);
    } else {
        layers_qkv(s, &L->wq, &L->wk, L->wv.data ? &L->wv : &L->wk);
        layers_head_norm(s, &L->q_norm, &L->k_norm);
        layers_rmsnorm_unit(s, s->v, s->v, s->head_dim, T * s->n_kv_heads);
        layers_rope(s, cs);
    }
    const layers_attn_opts o = {.window = L->is_swa ? s->h->n_swa : 0, .is_kv_reused = is_reused};
    tv_status st = layers_attention_opts(s, L->kv_layer, &o, &L->wo, s->xb2, err);
    if (st) return st;
    layers_rmsnorm(s, s->xb, s->xb2, &L->attn_post_norm, T);
    layers_add(s, s->x, s->xb);
    if (L->ffn_gate_inp.data) {
        gemma4_moe_ffn(s, L);
    } else {
        layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, T);
        layers_glu_mlp(s, LAYERS_ACT_GELU_TANH, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    }
    layers_rmsnorm(s, s->xb, s->xb2, &L->ffn_post_norm, T);
    layers_add(s, s->x, s->xb);
    if (s->h->n_embd_pl > 0) layers_per_layer_add(s, L, l);
    if (L->out_scale.data) layers_scale(s, s->x, s->h->dim, *(const float *)L->out_scale.data);
    return TV_OK;
}

// The per-layer inputs of E2B/E4B models (none otherwise).
static void gemma4_prologue(layer_state *s, const tv_weights *w, const int32_t *tokens) {
    if (s->h->n_embd_pl > 0) layers_per_layer_inputs(s, w, tokens);
}

const model_family family_gemma4 = {
    .name = "gemma4",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = gemma4_block,
    .is_rope_neox = true,
    .configure = gemma4_configure,
    .prologue = gemma4_prologue,
    .moe = &MOE,
};
