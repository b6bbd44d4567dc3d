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

const model_family family_qwen3 = {
    .name = "qwen3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
};
