// family_llama.c — LLaMA (1, 2, 3.x) and Mistral (same tensors, same block): pre-norm RMSNorm,
// rotary positions (optionally linear / llama3 / YaRN scaled or with Llama 3.x's rope_freqs.weight
// divisors, model.c), grouped-query attention, SwiGLU MLP; optional Q/K/V/output biases as llama.cpp
// accepts them. The llama2.c checkpoint format loads as this family too.
// With expert_count > 0 (Mixtral) every layer's FFN is a mixture of experts instead: softmax router,
// the top expert_used_count experts, weights divided by their sum, each expert feed_forward_length
// wide (llama.cpp's rules for this arch).
#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"llama", "mistral", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON, FAMILY_KEYS_MOE_OPT};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER_OPT("attn_output.bias", bo, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_FFN_DENSE,
    FAMILY_TENSORS_EXPERTS(FW_MOE),
};

static const family_moe MOE = {.norm = FAMILY_NORM_ON};

const model_family family_llama = {
    .name = "llama",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .moe = &MOE,
};
