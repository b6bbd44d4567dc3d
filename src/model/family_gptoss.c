// family_gptoss.c — gpt-oss (OpenAI's open-weight MoE; GGUF arch "gpt-oss", llama.cpp's
// LLM_ARCH_OPENAI_MOE): pre-norm layers whose attention has Q/K/V/output biases, NeoX RoPE (YaRN
// in the released files: the loader's rope.scaling.*), a learned sink logit per head counted in
// every softmax (attn_sinks), and sliding-window attention (attention.sliding_window) on the layers
// sliding_window_pattern marks (default period 2: even layers slide); the FFN is a mixture of
// experts normed by post_attention_norm: router logits with a bias, the top expert_used_count by
// logit weighted by the softmax of their logits (not renormalized), experts with per-expert
// gate/up/down biases and the clamped SwiGLU (kern_swiglu_oai). Experts ship as MXFP4.
#include "model/family.h"
#include "util/status.h"

static const char *const ARCHS[] = {"gpt-oss", NULL};

static const family_key KEYS[] = {
    FAMILY_KEYS_COMMON,
    FAMILY_KEYS_MOE,
    FAMILY_INT("expert_feed_forward_length", ff_exp, 1, 1 << 20),
    FAMILY_INT("attention.sliding_window", n_swa, 1, INT32_MAX),
};

static const family_tensor TENSORS[] = {
    FAMILY_TENSORS_EMBD_OUT,
    FAMILY_TENSORS_ATTN,
    FAMILY_LAYER("attn_q.bias", bq, FD_Q, FD_ONE),
    FAMILY_LAYER("attn_k.bias", bk, FD_KV, FD_ONE),
    FAMILY_LAYER("attn_v.bias", bv, FD_KV, FD_ONE),
    FAMILY_LAYER("attn_output.bias", bo, FD_EMBD, FD_ONE),
    FAMILY_LAYER("attn_sinks.weight", attn_sinks, FD_HEADS, FD_ONE),
    FAMILY_LAYER("post_attention_norm.weight", attn_post_norm, FD_EMBD, FD_ONE),
    FAMILY_TENSORS_EXPERTS(FW_ALL),
    FAMILY_LAYER("ffn_gate_inp.bias", ffn_gate_inp_b, FD_EXPERT, FD_ONE),
    FAMILY_LAYER("ffn_gate_exps.bias", ffn_gate_exps_b, FD_FF_EXP, FD_EXPERT),
    FAMILY_LAYER("ffn_up_exps.bias", ffn_up_exps_b, FD_FF_EXP, FD_EXPERT),
    FAMILY_LAYER("ffn_down_exps.bias", ffn_down_exps_b, FD_EMBD, FD_EXPERT),
};

static const family_moe MOE = {.gating = TV_GATING_SOFTMAX_WEIGHT, .norm = FAMILY_NORM_OFF};

static tv_status configure(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    return family_swa_pattern(g, arch, 2, h, layers, err);
}

static tv_status block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    const int T = s->n_tokens;
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, T);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    layers_rope(s, s->rope_cs);
    const layers_attn_opts o = {.window = L->is_swa ? s->h->n_swa : 0, .sinks = L->attn_sinks.data};
    tv_status st = layers_attention_opts(s, l, &o, &L->wo, s->xb2, err);
    if (st) return st;
    layers_bias(s, s->xb2, &L->bo);
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->attn_post_norm, T);
    layers_moe(s, LAYERS_ACT_SWIGLU_OAI, L, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

const model_family family_gptoss = {
    .name = "gpt-oss",
    .archs = ARCHS,
    .keys = KEYS,
    .n_keys = FAMILY_COUNT(KEYS),
    .tensors = TENSORS,
    .n_tensors = FAMILY_COUNT(TENSORS),
    .block = block,
    .is_rope_neox = true,
    .configure = configure,
    .moe = &MOE,
};
