// family_qwen35.c — Qwen3.5 / Qwen3.6 dense (GGUF arch "qwen35"): a hybrid of Gated DeltaNet
// linear-attention layers (three of every four by default: full_attention_interval, or the
// attention.recurrent_layers bools) and gated full-attention layers (the query projection carries
// a per-head sigmoid gate of the output; per-head Q/K RMSNorm; NeoX RoPE over rope.dimension_count
// dims: llama.cpp's interleaved M-RoPE with a text token's equal positions, so
// rope.dimension_sections only matters for images). The FFN of every layer is a SwiGLU MLP normed by
// post_attention_norm. layers.h (layers_hybrid_block) has the layer, kernels/deltanet.h the
// linear attention; the engine keeps each sequence's linear-attention state in a slot.
#include "model/family.h"

static const char *const ARCHS[] = {"qwen35", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON, FAMILY_KEYS_HYBRID};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_HYBRID,
    FAMILY_LAYER("ffn_gate.weight", w_gate, FD_EMBD, FD_FF),
    FAMILY_LAYER("ffn_up.weight", w_up, FD_EMBD, FD_FF),
    FAMILY_LAYER("ffn_down.weight", w_down, FD_FF, FD_EMBD),
};

const model_family family_qwen35 = {
    .name = "qwen35",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_hybrid_block,
    .is_rope_neox = true,
    .configure = family_hybrid_layers,
};
