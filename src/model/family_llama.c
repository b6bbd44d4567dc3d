// family_llama.c — LLaMA and Mistral (same tensors, same block): pre-norm RMSNorm, rotary
// positions (optionally llama3/linear scaled, model.c), grouped-query attention, SwiGLU MLP.
// The llama2.c checkpoint format loads as this family too.
#include "model/family.h"

static const char *const ARCHS[] = {"llama", "mistral", NULL};

static const family_key KEYS[] = {
    FAMILY_INT("embedding_length", dim, 1, 1 << 16),
    FAMILY_INT("block_count", n_layers, 1, 1024),
    FAMILY_INT("feed_forward_length", hidden_dim, 1, 1 << 20),
    FAMILY_INT("attention.head_count", n_heads, 1, 1024),
    FAMILY_INT("context_length", n_ctx_train, 1, INT32_MAX),
    FAMILY_INT_OPT("attention.head_count_kv", n_kv_heads, 1, 1024, 0),
    FAMILY_INT_OPT("attention.key_length", head_dim, 1, 1024, 0),
    FAMILY_INT_OPT("rope.dimension_count", n_rot, 2, 1024, 0),
    FAMILY_FLOAT_OPT("attention.layer_norm_rms_epsilon", norm_eps, 1e-12, 0.5, 1e-5),
    FAMILY_FLOAT_OPT("rope.freq_base", rope_theta, 1e-3, 1e12, 10000.0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSOR("token_embd.weight", tok_embd, FD_EMBD, FD_VOCAB),
    FAMILY_TENSOR("output_norm.weight", output_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSOR_OPT("output.weight", output, FD_EMBD, FD_VOCAB),
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER("attn_q.weight", wq, FD_EMBD, FD_Q),
    FAMILY_LAYER("attn_k.weight", wk, FD_EMBD, FD_KV),
    FAMILY_LAYER("attn_v.weight", wv, FD_EMBD, FD_KV),
    FAMILY_LAYER("attn_output.weight", wo, FD_Q, FD_EMBD),
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER("ffn_gate.weight", w_gate, FD_EMBD, FD_FF),
    FAMILY_LAYER("ffn_up.weight", w_up, FD_EMBD, FD_FF),
    FAMILY_LAYER("ffn_down.weight", w_down, FD_FF, FD_EMBD),
};

// x += attention(rope(q, k), v)·Wo  with q, k, v = rmsnorm(x)·Wq, Wk, Wv
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status llama_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_rope(s, s->rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
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
