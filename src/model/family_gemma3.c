// family_gemma3.c — Gemma 3 (text): Gemma 2's block (embeddings scaled by sqrt(dim), pre- and
// post-normed sublayers, GeGLU, NeoX RoPE) with per-head RMSNorm of q and k before RoPE and no
// attention soft-capping; when attention.sliding_window is set, five sliding layers to one global
// (the pattern key, period 6 by default), the sliding ones with their own RoPE base
// (rope.freq_base_swa, 10000 by default) and no position scaling, the global ones with
// rope.freq_base and the file's scaling (linear x8 in 4B and up); final soft-capping only when the
// file asks for it; the output projection tied unless output.weight is present.
#include <math.h>

#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"gemma3", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_INT_OPT("attention.sliding_window", n_swa, 0, INT32_MAX, 0),
    FAMILY_FLOAT_OPT("final_logit_softcapping", final_softcap, 0, 1e6, 0),
    FAMILY_FLOAT_OPT("rope.freq_base_swa", rope_theta_swa, 1e-3, 1e12, 10000.0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_LAYER("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("post_attention_norm.weight", attn_post_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN,
    FAMILY_LAYER("post_ffw_norm.weight", ffn_post_norm, FD_EMBD, FD_ONE),
};

// llama.cpp's rules: queries scaled by 1/sqrt(head_dim), except the 27B (62 layers):
// 1/sqrt(dim / heads) (its query_pre_attn_scalar); no window: every layer global, one RoPE.
static tv_status gemma3_configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers,
                                  tv_error *err) {
    h->embd_scale = sqrtf((float)h->dim);
    if (h->n_layers == 62) h->attn_scale = 1.0f / sqrtf((float)(h->dim / h->n_heads));
    if (h->n_swa == 0) {
        h->rope_theta_swa = 0;
        return TV_OK;
    }
    h->rope_scale_swa = 1.0f;
    return family_swa_pattern(g, arch, 6, h, layers, err);
}

// x += postnorm(attention(rope(qnorm(q), knorm(k)), v)·Wo)  with q, k, v = rmsnorm(x)·Wq, Wk, Wv
// x += postnorm((gelu(h·Wgate) * (h·Wup))·Wdown)  with h = rmsnorm(x)
static tv_status gemma3_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    const int T = s->n_tokens;
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, T);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_head_norm(s, &L->q_norm, &L->k_norm);
    layers_rope(s, L->is_swa ? s->rope_cs_swa : s->rope_cs);
    const layers_attn_opts o = {.window = L->is_swa ? s->h->n_swa : 0};
    tv_status st = layers_attention_opts(s, l, &o, &L->wo, s->xb2, err);
    if (st) return st;
    layers_rmsnorm(s, s->xb, s->xb2, &L->attn_post_norm, T);
    layers_add(s, s->x, s->xb);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, T);
    layers_glu_mlp(s, LAYERS_ACT_GELU_TANH, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    layers_rmsnorm(s, s->xb, s->xb2, &L->ffn_post_norm, T);
    layers_add(s, s->x, s->xb);
    return TV_OK;
}

const model_family family_gemma3 = {
    .name = "gemma3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = gemma3_block,
    .is_rope_neox = true,
    .configure = gemma3_configure,
};
