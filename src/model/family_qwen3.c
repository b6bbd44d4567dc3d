// family_qwen3.c — Qwen3 (dense): the llama block with an RMSNorm over every head of q and of k
// (attn_q_norm / attn_k_norm, one head_dim vector each) between the projections and RoPE,
// NeoX-paired RoPE, and head_dim free of dim / n_heads (attention.key_length). Q/K/V biases are
// optional, as llama.cpp loads them.
#include "model/family.h"

static const char *const ARCHS[] = {"qwen3", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE),
    FAMILY_TENSORS_FFN,
};

// x += attention(rope(headnorm(q)), rope(headnorm(k)), v)·Wo  with q, k, v = rmsnorm(x)·Wq, Wk, Wv
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status qwen3_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    layers_head_norm(s, &L->q_norm, &L->k_norm);
    layers_rope(s, s->rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_glu_mlp(s, LAYERS_ACT_SILU, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_qwen3 = {
    .name = "qwen3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = qwen3_block,
    .is_rope_neox = true,
};
