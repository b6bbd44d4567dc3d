// family_qwen2.c — Qwen2 / Qwen2.5: the llama block with biases on the Q, K and V projections
// and NeoX-paired RoPE (rotated halves, not interleaved pairs).
#include "model/family.h"

static const char *const ARCHS[] = {"qwen2", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_LAYER("attn_q.bias", bq, FD_Q, FD_ONE),
    FAMILY_LAYER("attn_k.bias", bk, FD_KV, FD_ONE),
    FAMILY_LAYER("attn_v.bias", bv, FD_KV, FD_ONE),
    FAMILY_TENSORS_FFN,
};

// x += attention(rope(q, k), v)·Wo  with q, k, v = rmsnorm(x)·Wq, Wk, Wv + bq, bk, bv
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status qwen2_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    layers_rope(s, s->rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_glu_mlp(s, LAYERS_ACT_SILU, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_qwen2 = {
    .name = "qwen2",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = qwen2_block,
    .is_rope_neox = true,
};
