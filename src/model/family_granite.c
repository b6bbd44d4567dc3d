// family_granite.c — IBM Granite 3.x (dense): the llama block with four multipliers:
// embedding_scale (the embeddings, forward.c), attention.scale (the attention's score scale in
// place of 1/sqrt(head_dim), forward.c), residual_scale (each sublayer's output before its residual
// add, here) and logit_scale (the logits are divided by it, layers_logits). RoPE is on unless
// rope.scaling.finetuned says false (llama.cpp's switch for Granite). Optional Q/K/V and output
// biases as llama.cpp loads them.
#include "model/family.h"

static const char *const ARCHS[] = {"granite", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_FLOAT("logit_scale", logit_scale, 1e-6, 1e6),
    FAMILY_FLOAT_OPT("residual_scale", residual_scale, 1e-6, 1e6, 0),
    FAMILY_FLOAT_OPT("embedding_scale", embd_scale, 1e-6, 1e6, 0),
    FAMILY_FLOAT_OPT("attention.scale", attn_scale, 1e-6, 1e6, 0),
    FAMILY_INT_OPT("rope.scaling.finetuned", rope_finetuned, 0, 1, 1),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER_OPT("attn_output.bias", bo, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN,
};

// x += residual_scale * attention(rope(q, k), v)·Wo [+ bo]  with q, k, v = rmsnorm(x)·Wq, Wk, Wv [+ biases]
// x += residual_scale * (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status granite_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    const tv_hparams *h = s->h;
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    if (h->rope_finetuned) layers_rope(s, s->rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_bias(s, s->xb2, &L->bo);
    if (h->residual_scale != 0) layers_scale(s, s->xb2, h->dim, h->residual_scale);
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_glu_mlp(s, LAYERS_ACT_SILU, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    if (h->residual_scale != 0) layers_scale(s, s->xb2, h->dim, h->residual_scale);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_granite = {
    .name = "granite",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = granite_block,
};
