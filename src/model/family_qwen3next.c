// family_qwen3next.c — Qwen3-Next (Qwen3-Next-80B-A3B; GGUF arch "qwen3next"): the hybrid layer of
// qwen35 (Gated DeltaNet layers, every full_attention_interval-th a gated full attention with NeoX
// RoPE) with three differences, as llama.cpp's qwen3next graph has them: the linear layers' beta and
// alpha projections are one fused tensor (ssm_ba: per key head, its group's beta rows then alpha
// rows), value heads share key heads in consecutive groups (repeat-interleave, not qwen35's tiling),
// and every layer's FFN is a mixture of experts with a gated shared expert (family_hybrid_moe).
// Only the attn_qkv + attn_gate layout of the linear layers is read (the legacy fused ssm_in of the
// first GGUF conversions is not). MTP layers (nextn_predict_layers) are not run.
#include "model/family.h"

static const char *const ARCHS[] = {"qwen3next", NULL};

static const family_key KEYS[] = {FAMILY_KEYS_COMMON, FAMILY_KEYS_HYBRID, FAMILY_KEYS_HYBRID_MOE};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_HYBRID_COMMON,
    FAMILY_LAYER_KIND("ssm_ba.weight", ssm_ba, FD_EMBD, FD_SSM_BA, FW_LINEAR),
    FAMILY_TENSORS_MOE_SHEXP,
};

static tv_status configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    h->ssm_k_grouped = 1;
    return family_hybrid_layers(g, arch, h, layers, err);
}

const model_family family_qwen3next = {
    .name = "qwen3next",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_hybrid_block,
    .is_rope_neox = true,
    .configure = configure,
    .moe = &family_hybrid_moe,
};
