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

const model_family family_llama = {
    .name = "llama",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
};
