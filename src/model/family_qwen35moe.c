// family_qwen35moe.c — Qwen3.5 / Qwen3.6 mixture of experts (Qwen3.6-35B-A3B, Qwen3.5-122B-A10B;
// GGUF arch "qwen35moe"): qwen35's hybrid of Gated DeltaNet and gated full-attention layers (value
// heads share key heads in turn), with a mixture-of-experts FFN in every layer: softmax router, the
// top expert_used_count weights divided by their sum, plus a shared expert gated by
// sigmoid(x · ffn_gate_inp_shexp) (family_hybrid_moe). MTP layers (nextn_predict_layers) are not run.
#include "model/family.h"

static const char *const ARCHS[] = {"qwen35moe", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON, FAMILY_KEYS_HYBRID, FAMILY_KEYS_HYBRID_MOE};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_HYBRID,
    FAMILY_TENSORS_MOE_SHEXP,
};

const model_family family_qwen35moe = {
    .name = "qwen35moe",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_hybrid_block,
    .is_rope_neox = true,
    .configure = family_hybrid_layers,
    .moe = &family_hybrid_moe,
};
