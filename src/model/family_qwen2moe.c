// family_qwen2moe.c — Qwen1.5-MoE / Qwen2-MoE (A2.7B, 57B-A14B): the qwen2 block (Q/K/V biases,
// NeoX RoPE) with a mixture-of-experts FFN: softmax router, the top expert_used_count experts with
// their probabilities as weights (not renormalized: llama.cpp fixes norm_topk_prob off for this
// arch), plus a shared expert of expert_shared_feed_forward_length (absent: feed_forward_length)
// added to them times sigmoid(x · ffn_gate_inp_shexp).
#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"qwen2moe", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_INT_OPT("expert_feed_forward_length", ff_exp, 1, 1 << 20, 0),
    FAMILY_INT_OPT("expert_shared_feed_forward_length", ff_shexp, 1, 1 << 20, 0),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_EXPERTS(FW_ALL),
    FAMILY_LAYER("ffn_gate_inp_shexp.weight", ffn_gate_inp_shexp, FD_EMBD, FD_ONE),
    FAMILY_LAYER("ffn_gate_shexp.weight", ffn_gate_shexp, FD_EMBD, FD_FF_SHEXP),
    FAMILY_LAYER("ffn_up_shexp.weight", ffn_up_shexp, FD_EMBD, FD_FF_SHEXP),
    FAMILY_LAYER("ffn_down_shexp.weight", ffn_down_shexp, FD_FF_SHEXP, FD_EMBD),
};

static const family_moe MOE = {.norm = FAMILY_NORM_OFF, .is_ff_exp_per_used = true, .is_ff_shexp_ff = true};

const model_family family_qwen2moe = {
    .name = "qwen2moe",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
    .moe = &MOE,
};
