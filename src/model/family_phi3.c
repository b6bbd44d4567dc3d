// family_phi3.c — Phi-3 / Phi-3.5 / Phi-4-mini (`phi3`): llama's pre-norm block with fused weights
// (attn_qkv = Q, K, V rows; ffn_up = gate then up rows; bound as views of their rows, so the
// matmuls are llama's), NeoX RoPE, and LongRoPE: per-pair frequency divisors rope_factors_short /
// rope_factors_long, the long ones when the context the model runs with exceeds
// rope.scaling.original_context_length, and rope.scaling.attn_factor scaling cos/sin (model.c).
// Sliding window: Phi-3's GGUFs carry attention.sliding_window, but llama.cpp turns it off for this
// architecture (its conversions fill it inconsistently: llama.cpp PR 13676), and llama.cpp is the
// reference we match, so every layer attends globally here too and the key is not read.
#include "model/family.h"

static const char *const ARCHS[] = {"phi3", NULL};

static const family_key KEYS[] = {   // llama's, with the RMSNorm epsilon required (as llama.cpp)
    FAMILY_INT("embedding_length", dim, 1, 1 << 16),
    FAMILY_INT("block_count", n_layers, 1, 1024),
    FAMILY_INT_PER_LAYER("feed_forward_length", hidden_dim, 1, 1 << 20),
    FAMILY_INT("attention.head_count", n_heads, 1, 1024),
    FAMILY_INT("context_length", n_ctx_train, 1, INT32_MAX),
    FAMILY_INT_OPT("attention.head_count_kv", n_kv_heads, 1, 1024, 0),
    FAMILY_INT_OPT("attention.key_length", head_dim, 1, 1024, 0),
    FAMILY_INT_OPT("rope.dimension_count", n_rot, 2, 1024, 0),
    FAMILY_FLOAT("attention.layer_norm_rms_epsilon", norm_eps, 1e-12, 0.5),
    FAMILY_FLOAT_OPT("rope.freq_base", rope_theta, 1e-3, 1e12, 10000.0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER_SPLIT3("attn_qkv.weight", FD_EMBD, wq, FD_Q, wk, FD_KV, wv, FD_KV),
    FAMILY_LAYER("attn_output.weight", wo, FD_Q, FD_EMBD),
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER_SPLIT2("ffn_up.weight", FD_EMBD, w_gate, FD_FF, w_up, FD_FF),
    FAMILY_LAYER("ffn_down.weight", w_down, FD_FF, FD_EMBD),
};

const model_family family_phi3 = {
    .name = "phi3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
};
