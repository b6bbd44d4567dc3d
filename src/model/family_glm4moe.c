// family_glm4moe.c — GLM-4.5 / GLM-4.5-Air / GLM-4.6 (GGUF arch "glm4moe"): the pre-norm layer
// with Q/K/V biases, optional per-head Q/K RMSNorm, NeoX RoPE on the first rope.dimension_count
// dims of each head (partial: half of the head in the released models), and post_attention_norm as
// the FFN's input norm. The first leading_dense_block_count layers have a dense FFN; the others
// route with a sigmoid (expert_gating_func, absent: sigmoid, as llama.cpp), the selection bias
// exp_probs_b, expert_weights_norm and expert_weights_scale, plus expert_shared_count ungated shared
// experts (expert_feed_forward_length wide each). The nextn_predict_layers MTP layers at the end are
// counted in block_count but not run (llama.cpp skips them): their tensors are left unbound.
#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"glm4moe", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_KEYS_MOE_ROUTING,
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_TENSORS_QKV_BIAS,
    FAMILY_LAYER_OPT("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER_OPT("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE),
    FAMILY_LAYER("post_attention_norm.weight", ffn_norm, FD_EMBD, FD_ONE),
    FAMILY_LAYER_WHEN("ffn_gate.weight", w_gate, FD_EMBD, FD_FF, FW_DENSE),
    FAMILY_LAYER_WHEN("ffn_up.weight", w_up, FD_EMBD, FD_FF, FW_DENSE),
    FAMILY_LAYER_WHEN("ffn_down.weight", w_down, FD_FF, FD_EMBD, FW_DENSE),
    FAMILY_TENSORS_EXPERTS(FW_MOE),
    FAMILY_LAYER_WHEN("exp_probs_b.bias", exp_probs_b, FD_EXPERT, FD_ONE, FW_MOE),
    FAMILY_TENSORS_SHEXP_MOE,
};

static const family_moe MOE = {.gating = TV_GATING_SIGMOID};

static tv_status configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    (void)layers;
    return family_drop_nextn(g, arch, h, err);
}

const model_family family_glm4moe = {
    .name = "glm4moe",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = layers_prenorm_block,
    .is_rope_neox = true,
    .configure = configure,
    .moe = &MOE,
};
