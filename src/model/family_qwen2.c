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

const model_family family_qwen2 = {
    .name = "qwen2",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
};
