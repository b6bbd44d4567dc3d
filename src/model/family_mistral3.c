// family_mistral3.c — Mistral 3 / Ministral 3 (the text model): the llama block with YaRN RoPE
// scaling (rope.scaling.type "yarn" and its yarn_* keys, model.c) and the Llama-4 style attention
// temperature: each query is multiplied by 1 + temperature_scale * ln(1 + floor(pos / n)), n the
// original (pre-YaRN) context length (forward.c computes it per token). Optional Q/K/V and output
// biases as llama.cpp loads them.
#include "model/family.h"

static const char *const ARCHS[] = {"mistral3", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_FLOAT_OPT("attention.temperature_scale", attn_temp_scale, 0, 1e3, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER_OPT("attn_output.bias", bo, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN,
};

// x += attention(temp * rope(q), rope(k), v)·Wo [+ bo]  with q, k, v = rmsnorm(x)·Wq, Wk, Wv [+ biases]
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status mistral3_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    layers_rope(s, s->rope_cs);
    layers_attn_temperature(s);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_bias(s, s->xb2, &L->bo);
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_glu_mlp(s, LAYERS_ACT_SILU, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_mistral3 = {
    .name = "mistral3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = mistral3_block,
};
