// family_qwen3moe.c — Qwen3-MoE (Qwen3-30B-A3B, Qwen3-Coder-30B-A3B, Qwen3-235B-A22B): the qwen3
// block (per-head q/k RMSNorm, NeoX RoPE, free head_dim) with a mixture-of-experts FFN in every
// layer: softmax router over expert_count experts, the top expert_used_count per token, their
// weights divided by their sum (llama.cpp fixes norm_topk_prob on for this arch), no shared expert.
// One expert's FFN is expert_feed_forward_length wide (absent: feed_forward_length / used, as
// llama.cpp derives it).
#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"qwen3moe", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_INT_OPT("expert_feed_forward_length", ff_exp, 1, 1 << 20, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_EXPERTS(FW_ALL),
};

static const family_moe MOE = {.norm = FAMILY_NORM_ON, .is_ff_exp_per_used = true};

const model_family family_qwen3moe = {
    .name = "qwen3moe",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
    .moe = &MOE,
};
