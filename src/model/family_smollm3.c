// family_smollm3.c — SmolLM3: the llama block, except that every fourth layer (l = 3, 7, 11, ...)
// attends without RoPE ("NoPE" layers; llama.cpp's n_no_rope_layer_step, fixed at 4 for this
// architecture, no metadata key). Optional Q/K/V biases as llama.cpp loads them.
#include "model/family.h"

enum { NO_ROPE_LAYER_STEP = 4 };

static const char *const ARCHS[] = {"smollm3", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_TENSORS_FFN,
};

// x += attention(q, k, v)·Wo  with q, k, v = rmsnorm(x)·Wq, Wk, Wv, q and k rotated except on NoPE layers
// x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)
static tv_status smollm3_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    return layers_prenorm_block_rope(s, L, l, (l + 1) % NO_ROPE_LAYER_STEP ? s->rope_cs : NULL, err);
}

const model_family family_smollm3 = {
    .name = "smollm3",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = smollm3_block,
};
