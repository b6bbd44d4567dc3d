// family_glm4moe.c — GLM-4.5 / GLM-4.5-Air / GLM-4.6 (GGUF arch "glm4moe"): the pre-norm layer
// with Q/K/V biases, optional per-head Q/K RMSNorm, NeoX RoPE on the first rope.dimension_count
// dims of each head (partial: half of the head in the released models), and post_attention_norm as
// the FFN's input norm. The first leading_dense_block_count layers have a dense FFN; the others
// route with a sigmoid (expert_gating_func, absent: sigmoid, as llama.cpp), the selection bias
// exp_probs_b, expert_weights_norm and expert_weights_scale, plus expert_shared_count ungated shared
// experts (expert_feed_forward_length wide each). The nextn_predict_layers MTP layers at the end are
// counted in block_count but not run (llama.cpp skips them): their tensors are left unbound.
#include <stdio.h>

#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"glm4moe", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_INT("expert_feed_forward_length", ff_exp, 1, 1 << 20),
    FAMILY_INT("expert_shared_count", n_expert_shared, 0, 64),
    FAMILY_INT_OPT("leading_dense_block_count", n_dense_lead, 0, 1024, 0),
    FAMILY_FLOAT_OPT("expert_weights_scale", moe_w_scale, 0, 1e4, 0),
    FAMILY_INT_OPT("expert_weights_norm", moe_norm_w, 0, 1, 0),
    FAMILY_INT_OPT("expert_gating_func", moe_gating, 0, 2, 0),
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
    FAMILY_LAYER_WHEN("ffn_gate_shexp.weight", ffn_gate_shexp, FD_EMBD, FD_FF_SHEXP, FW_MOE),
    FAMILY_LAYER_WHEN("ffn_up_shexp.weight", ffn_up_shexp, FD_EMBD, FD_FF_SHEXP, FW_MOE),
    FAMILY_LAYER_WHEN("ffn_down_shexp.weight", ffn_down_shexp, FD_FF_SHEXP, FD_EMBD, FW_MOE),
};

static tv_status configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    (void)layers;
    const tv_status nst = family_drop_nextn(g, arch, h, err);
    if (nst != TV_OK) return nst;
    if (h->n_dense_lead > h->n_layers)
        return err_fail(err, TV_ERR_FORMAT, "%s.leading_dense_block_count %d exceeds block_count %d", arch,
                        h->n_dense_lead, h->n_layers);
    h->ff_shexp = h->ff_exp * h->n_expert_shared;
    if (!h->moe_gating) h->moe_gating = TV_GATING_SIGMOID;
    return TV_OK;
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
};
