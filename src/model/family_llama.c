// family_llama.c — LLaMA (1, 2, 3.x) and Mistral (same tensors, same block): pre-norm RMSNorm,
// rotary positions (optionally linear / llama3 / YaRN scaled or with Llama 3.x's rope_freqs.weight
// divisors, model.c), grouped-query attention, SwiGLU MLP; optional Q/K/V/output biases as llama.cpp
// accepts them. The llama2.c checkpoint format loads as this family too.
#include "model/family.h"

static const char *const ARCHS[] = {"llama", "mistral", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER_OPT("attn_output.bias", bo, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN,
};

// x += attention(rope(q, k), v)·Wo [+ bo]  with q, k, v = rmsnorm(x)·Wq, Wk, Wv [+ biases]
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status llama_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    layers_rope(s, s->rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_bias(s, s->xb2, &L->bo);
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_glu_mlp(s, LAYERS_ACT_SILU, &L->w_gate, &L->w_up, &L->w_down, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_llama = {
    .name = "llama",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = llama_block,
};
