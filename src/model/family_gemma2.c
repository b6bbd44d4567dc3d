// family_gemma2.c — Gemma 2: embeddings scaled by sqrt(dim); every sublayer pre- and post-normed
// (RMSNorm weights with Gemma's 1 + w already in the GGUF); GeGLU (tanh GELU) MLP; NeoX RoPE;
// layers alternating sliding-window / global attention (the pattern key, period 2 by default),
// attention scores and final logits soft-capped (cap * tanh(x / cap)); the output projection is
// always the embedding table (llama.cpp ignores an output.weight).
#include <math.h>

#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"gemma2", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_INT_OPT("attention.sliding_window", n_swa, 1, INT32_MAX, 4096),
    FAMILY_FLOAT_OPT("attn_logit_softcapping", attn_softcap, 1e-3, 1e6, 50.0),
    FAMILY_FLOAT_OPT("final_logit_softcapping", final_softcap, 1e-3, 1e6, 30.0),
    FAMILY_FLOAT_OPT("rope.freq_base_swa", rope_theta_swa, 1e-3, 1e12, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSOR("token_embd.weight", tok_embd, FD_EMBD, FD_VOCAB),
    FAMILY_TENSOR("output_norm.weight", output_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_ATTN,
    FAMILY_LAYER("post_attention_norm.weight", attn_post_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN,
    FAMILY_LAYER("post_ffw_norm.weight", ffn_post_norm, FD_EMBD, FD_ONE),
};

// llama.cpp's rules: queries scaled by 1/sqrt(head_dim), except the 27B (46 layers):
// 1/sqrt(dim / heads) (its query_pre_attn_scalar); the sliding layers' RoPE is the global one
// unless rope.freq_base_swa is given (then that base, with the same position scaling).
static tv_status gemma2_configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers,
                                  tv_error *err) {
    h->embd_scale = sqrtf((float)h->dim);
    if (h->n_layers == 46) h->attn_scale = 1.0f / sqrtf((float)(h->dim / h->n_heads));
    h->rope_scale_swa = h->rope_linear_scale;
    return family_swa_pattern(g, arch, 2, h, layers, err);
}

// x += postnorm(attention(rope(q, k), v)·Wo)  with q, k, v = rmsnorm(x)·Wq, Wk, Wv, scores capped
// x += postnorm((gelu(h·Wgate) * (h·Wup))·Wdown)  with h = rmsnorm(x)
static tv_status gemma2_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    const int T = s->n_tokens;
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, T);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_rope(s, L->is_swa && s->rope_cs_swa ? s->rope_cs_swa : s->rope_cs);
    const layers_attn_opts o = {.window = L->is_swa ? s->h->n_swa : 0, .softcap = s->h->attn_softcap};
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

const model_family family_gemma2 = {
    .name = "gemma2",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = gemma2_block,
    .is_rope_neox = true,
    .configure = gemma2_configure,
};
