// family.h — the model-family registry: what a GGUF `general.architecture` means to tinyvllm.
//
// A family is data plus one function:
//   archs    the `general.architecture` values it answers to ("llama", "mistral")
//   keys     its hyperparameters: metadata key (after "<arch>."), the tv_hparams field it sets,
//            required or defaulted, and the accepted range; model.c reads and checks every one
//   tensors  its weights: GGUF name, the slot it binds to (tv_weights or tv_layer), the expected
//            shape in hyperparameter terms, required or optional; model.c binds and checks them
//   block    the per-layer forward pass, composed of the shared pieces in layers.h
// Adding a family is one file (src/model/family_NAME.c defining `const model_family family_NAME`)
// and one line in registry.c's FAMILIES list.
#ifndef TV_FAMILY_H
#define TV_FAMILY_H

#include <stdbool.h>
#include <stddef.h>

#include "formats/gguf.h"
#include "kernels/deltanet.h"
#include "model/layers.h"
#include "model/model.h"

// One hyperparameter: `<arch>.<key>` in GGUF metadata, into the int32_t or float field at `offset`
// of tv_hparams (an int key may be a GGUF bool: 0 or 1). Present: must lie in [lo, hi]. Absent: an error naming the key if required, else
// dflt. A default of 0 for head_count_kv, key_length and rope.dimension_count means "derived"
// (n_heads, dim / n_heads, head_dim), so families share those rules.
// A per-layer key may instead hold one integer per layer (block_count of them, each in range, as
// llama.cpp's get_key_or_arr reads it): the field gets layer 0's, which is what llama.cpp uses for
// every layer of a family that does not read it per layer; a family that does reads the array in
// its configure (family_ff_per_layer).
typedef struct family_key {
    const char *key;
    size_t offset;
    bool is_float;      // float field, else int32_t
    bool is_required;
    double lo, hi;      // accepted range, inclusive
    double dflt;
    bool is_per_layer;  // an int that may be an array of one value per layer (after block_count in the table)
} family_key;

#define FAMILY_INT(key, field, lo, hi) {key, offsetof(tv_hparams, field), false, true, lo, hi, 0, false}
#define FAMILY_INT_OPT(key, field, lo, hi, dflt) {key, offsetof(tv_hparams, field), false, false, lo, hi, dflt, false}
#define FAMILY_INT_PER_LAYER(key, field, lo, hi) {key, offsetof(tv_hparams, field), false, true, lo, hi, 0, true}
#define FAMILY_FLOAT(key, field, lo, hi) {key, offsetof(tv_hparams, field), true, true, lo, hi, 0, false}
#define FAMILY_FLOAT_OPT(key, field, lo, hi, dflt) {key, offsetof(tv_hparams, field), true, false, lo, hi, dflt, false}

// A tensor dimension, in terms of the hyperparameters.
typedef enum family_dim {
    FD_ONE,     // 1: a vector
    FD_EMBD,    // dim
    FD_Q,       // n_heads * head_dim
    FD_KV,      // n_kv_heads * head_dim
    FD_FF,      // hidden_dim
    FD_VOCAB,   // n_vocab
    FD_HEAD,    // head_dim
    FD_EXPERT,  // n_expert
    FD_FF_EXP,  // ff_exp: one expert's FFN rows
    FD_FF_EXP2, // 2 * ff_exp: one expert's fused gate and up rows (gemma4)
    FD_FF_SHEXP,   // ff_shexp: the shared expert's
    FD_HEADS,   // n_heads (gpt-oss's per-head attention sinks; deepseek2's per-head 3-D tensors)
    FD_Q_GATED, // 2 * n_heads * head_dim: each head's query rows, then its gate rows (qwen35)
    FD_SSM_CONV,       // ssm_d_conv: the convolution's width
    FD_SSM_CONV_DIM,   // 2 * ssm_n_k_heads * ssm_head_dim + ssm_d_inner: q, k and v of a linear layer
    FD_SSM_INNER,      // ssm_d_inner: v, the output gate
    FD_SSM_V_HEADS,    // ssm_n_v_heads
    FD_SSM_BA,         // 2 * ssm_n_v_heads: qwen3next's fused beta + alpha rows
    FD_SSM_HEAD,       // ssm_head_dim
    FD_PL,      // n_embd_pl: one layer's per-layer input (gemma4 E2B/E4B)
    FD_PL_ALL,  // n_layers * n_embd_pl: every layer's
    // latent attention (deepseek2)
    FD_LORA_Q,  // n_lora_q
    FD_LORA_KV, // n_lora_kv
    FD_ROT,     // n_rot
    FD_Q_MLA,   // n_heads * head_dim_k_mla
    FD_NOPE,    // head_dim_k_mla - n_rot
    FD_V_MLA,   // head_dim_v_mla
    FD_O_MLA,   // n_heads * head_dim_v_mla
} family_dim;

// Which models (layers) of the family have a tensor: every one, only dense ones (n_expert 0), only
// mixture-of-experts ones (llama's FFN is one or the other; Mixtral is llama with experts; the
// first n_dense_lead layers of deepseek2 / glm4moe are dense); only with / without query
// compression (deepseek2's n_lora_q).
// Hybrid models: only the linear-attention layers (tv_layer.is_linear), only the full-attention ones.
// Only models with per-layer inputs (n_embd_pl > 0), only layers with a KV cache of their own (a
// layer that reuses an earlier one's K/V needs no K/V projections; present ones are not bound).
typedef enum family_when { FW_ALL, FW_DENSE, FW_MOE, FW_LINEAR, FW_FULL_ATTN, FW_PER_LAYER_INPUT, FW_OWN_KV,
                           FW_Q_LORA, FW_Q_DIRECT } family_when;

// One weight: `name` (per-layer tensors are "blk.<l>." + name) bound to the tv_tensor at `offset` of
// tv_weights (model-wide) or tv_layer (per layer), with shape [ne0 (row length), ne1 (rows)].
// Vectors (ne1 = FD_ONE) must be F32. An optional tensor that is absent leaves its slot empty
// (data NULL); the block checks. Model-wide "output" absent means tied to token_embd.
// A fused weight (n_parts > 0; offset and ne1 unused) holds the rows of several slots one after
// another: part i is parts[i].rows rows bound as a view into the tv_layer slot at parts[i].offset,
// so each part multiplies exactly like a separate tensor (Phi-3's attn_qkv = Q, K, V rows and
// ffn_up = gate then up rows). The fused shape [ne0, sum of the parts' rows] is checked at load.
typedef struct family_tensor_part {
    size_t offset;
    family_dim rows;
} family_tensor_part;

typedef struct family_tensor {
    const char *name;
    bool is_layer;
    size_t offset;
    family_dim ne0, ne1;
    family_dim ne2;        // FD_ONE, or FD_EXPERT for 3-D expert tensors (one matrix per expert)
    family_when when;
    bool is_optional;
    bool is_direct;        // a matrix the block reads itself (never multiplied): F32, not repacked
    int n_parts;
    family_tensor_part parts[3];
} family_tensor;

#define FAMILY_TENSOR(name_, slot, ne0_, ne1_) \
    {.name = name_, .is_layer = false, .offset = offsetof(tv_weights, slot), .ne0 = ne0_, .ne1 = ne1_}
#define FAMILY_TENSOR_OPT(name_, slot, ne0_, ne1_) \
    {.name = name_, .is_layer = false, .offset = offsetof(tv_weights, slot), .ne0 = ne0_, .ne1 = ne1_, .is_optional = true}
#define FAMILY_LAYER(name_, slot, ne0_, ne1_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_}
#define FAMILY_LAYER_OPT(name_, slot, ne0_, ne1_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_, .is_optional = true}
// A per-layer tensor present only in dense models or only in MoE ones (required there).
#define FAMILY_LAYER_WHEN(name_, slot, ne0_, ne1_, when_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_, .when = when_}
// Per-layer tensors of one layer kind of a hybrid model (when_: FW_LINEAR or FW_FULL_ATTN).
#define FAMILY_LAYER_KIND(name_, slot, ne0_, ne1_, when_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_, .when = when_}
#define FAMILY_LAYER_KIND_DIRECT(name_, slot, ne0_, ne1_, when_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_, .when = when_, \
     .is_direct = true}
#define FAMILY_TENSOR_WHEN(name_, slot, ne0_, ne1_, when_) \
    {.name = name_, .is_layer = false, .offset = offsetof(tv_weights, slot), .ne0 = ne0_, .ne1 = ne1_, .when = when_}
// An optional per-layer tensor bound only where `when_` holds.
#define FAMILY_LAYER_OPT_WHEN(name_, slot, ne0_, ne1_, when_)                                          \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_,   \
     .when = when_, .is_optional = true}
// A per-layer 3-D tensor of one matrix [ne0, ne1] per head (deepseek2's wk_b, wv_b).
#define FAMILY_PER_HEAD(name_, slot, ne0_, ne1_) \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_, .ne2 = FD_HEADS}
// A per-layer 3-D expert tensor: n_expert matrices of [ne0, ne1].
#define FAMILY_EXPERTS(name_, slot, ne0_, ne1_, when_)                                                 \
    {.name = name_, .is_layer = true, .offset = offsetof(tv_layer, slot), .ne0 = ne0_, .ne1 = ne1_,   \
     .ne2 = FD_EXPERT, .when = when_}
// A fused per-layer weight of rows ne0 long split into two or three slots (slot, its rows) in order.
#define FAMILY_LAYER_SPLIT2(name_, ne0_, s0, r0, s1, r1)                                              \
    {.name = name_, .is_layer = true, .ne0 = ne0_, .n_parts = 2,                                     \
     .parts = {{offsetof(tv_layer, s0), r0}, {offsetof(tv_layer, s1), r1}}}
#define FAMILY_LAYER_SPLIT3(name_, ne0_, s0, r0, s1, r1, s2, r2)                                      \
    {.name = name_, .is_layer = true, .ne0 = ne0_, .n_parts = 3,                                     \
     .parts = {{offsetof(tv_layer, s0), r0}, {offsetof(tv_layer, s1), r1}, {offsetof(tv_layer, s2), r2}}}

// Layer l of the forward pass: reads and updates the residual stream s->x (T, dim) in place,
// composed of the shared pieces (layers.h). Returns TV_OK or a failed piece's status (err set).
typedef tv_status (*family_block_fn)(layer_state *s, const tv_layer *L, int l, tv_error *err);

typedef struct model_family {
    const char *name;
    const char *const *archs;        // NULL-terminated
    const family_key *keys;
    int n_keys;
    const family_tensor *tensors;
    int n_tensors;
    family_block_fn block;
    // Optional members (zero = llama's behaviour):
    bool is_rope_neox;               // RoPE pairs (i, i + n_rot/2) (NeoX / Qwen style), else (2i, 2i+1)
    // What the key table cannot express (defaults that depend on other values, per-layer patterns
    // such as the sliding-window layers), set in h and layers[0 .. h->n_layers) once the keys and
    // RoPE scaling are read, before the tensors are bound. TV_ERR_FORMAT naming the key on a bad
    // value (model.c prefixes the file).
    tv_status (*configure)(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err);
    // Model-wide inputs the blocks read, computed once per batch after the (scaled) embedding and
    // before layer 0, from s->x and the batch's tokens (T): Gemma 4's per-layer inputs. NULL = none.
    void (*prologue)(layer_state *s, const tv_weights *w, const int32_t *tokens);
    // How the family routes when the model has experts (family_moe_setup); NULL: softmax, weights
    // normalized as the file says, experts feed_forward_length wide.
    const struct family_moe *moe;
} model_family;

#define FAMILY_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

// The keys and tensors most families share (llama's), for their tables:
// the transformer's sizes, RMSNorm epsilon and RoPE base
#define FAMILY_KEYS_COMMON                                                            \
    FAMILY_INT("embedding_length", dim, 1, 1 << 16),                                  \
    FAMILY_INT("block_count", n_layers, 1, 1024),                                     \
    FAMILY_INT_PER_LAYER("feed_forward_length", hidden_dim, 1, 1 << 20),              \
    FAMILY_INT("attention.head_count", n_heads, 1, 1024),                             \
    FAMILY_INT("context_length", n_ctx_train, 1, INT32_MAX),                          \
    FAMILY_INT_OPT("attention.head_count_kv", n_kv_heads, 1, 1024, 0),                \
    FAMILY_INT_OPT("attention.key_length", head_dim, 1, 1024, 0),                     \
    FAMILY_INT_OPT("rope.dimension_count", n_rot, 2, 1024, 0),                        \
    FAMILY_FLOAT_OPT("attention.layer_norm_rms_epsilon", norm_eps, 1e-12, 0.5, 1e-5), \
    FAMILY_FLOAT_OPT("rope.freq_base", rope_theta, 1e-3, 1e12, 10000.0)
// embeddings, final norm, output projection (absent: tied)
#define FAMILY_TENSORS_EMBD_OUT                                          \
    FAMILY_TENSOR("token_embd.weight", tok_embd, FD_EMBD, FD_VOCAB),     \
    FAMILY_TENSOR("output_norm.weight", output_norm, FD_EMBD, FD_ONE),   \
    FAMILY_TENSOR_OPT("output.weight", output, FD_EMBD, FD_VOCAB)
// pre-norm attention: norm, Q, K, V, output projection
#define FAMILY_TENSORS_ATTN                                        \
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),  \
    FAMILY_LAYER("attn_q.weight", wq, FD_EMBD, FD_Q),              \
    FAMILY_LAYER("attn_k.weight", wk, FD_EMBD, FD_KV),             \
    FAMILY_LAYER("attn_v.weight", wv, FD_EMBD, FD_KV),             \
    FAMILY_LAYER("attn_output.weight", wo, FD_Q, FD_EMBD)
// optional Q, K, V biases (llama.cpp loads them for every family built on its QKV helper)
#define FAMILY_TENSORS_QKV_BIAS                             \
    FAMILY_LAYER_OPT("attn_q.bias", bq, FD_Q, FD_ONE),      \
    FAMILY_LAYER_OPT("attn_k.bias", bk, FD_KV, FD_ONE),     \
    FAMILY_LAYER_OPT("attn_v.bias", bv, FD_KV, FD_ONE)
// pre-norm gated MLP: norm, gate, up, down
#define FAMILY_TENSORS_FFN                                        \
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),   \
    FAMILY_LAYER("ffn_gate.weight", w_gate, FD_EMBD, FD_FF),      \
    FAMILY_LAYER("ffn_up.weight", w_up, FD_EMBD, FD_FF),          \
    FAMILY_LAYER("ffn_down.weight", w_down, FD_FF, FD_EMBD)

// pre-norm gated MLP of dense models only (llama: MoE models have experts instead)
#define FAMILY_TENSORS_FFN_DENSE                                                \
    FAMILY_LAYER("ffn_norm.weight", ffn_norm, FD_EMBD, FD_ONE),                 \
    FAMILY_LAYER_WHEN("ffn_gate.weight", w_gate, FD_EMBD, FD_FF, FW_DENSE),     \
    FAMILY_LAYER_WHEN("ffn_up.weight", w_up, FD_EMBD, FD_FF, FW_DENSE),         \
    FAMILY_LAYER_WHEN("ffn_down.weight", w_down, FD_FF, FD_EMBD, FW_DENSE)
// routed experts: router, gate, up, down (when_: FW_ALL in MoE-only families, FW_MOE in llama)
#define FAMILY_TENSORS_EXPERTS(when_)                                                      \
    FAMILY_LAYER_WHEN("ffn_gate_inp.weight", ffn_gate_inp, FD_EMBD, FD_EXPERT, when_),     \
    FAMILY_EXPERTS("ffn_gate_exps.weight", ffn_gate_exps, FD_EMBD, FD_FF_EXP, when_),      \
    FAMILY_EXPERTS("ffn_up_exps.weight", ffn_up_exps, FD_EMBD, FD_FF_EXP, when_),          \
    FAMILY_EXPERTS("ffn_down_exps.weight", ffn_down_exps, FD_FF_EXP, FD_EMBD, when_)
// expert counts: required (MoE-only families), or absent = dense (llama)
#define FAMILY_KEYS_MOE                                                       \
    FAMILY_INT("expert_count", n_expert, 1, TV_MAX_EXPERTS),                  \
    FAMILY_INT("expert_used_count", n_expert_used, 1, TV_MAX_EXPERTS)
#define FAMILY_KEYS_MOE_OPT                                                   \
    FAMILY_INT_OPT("expert_count", n_expert, 0, TV_MAX_EXPERTS, 0),           \
    FAMILY_INT_OPT("expert_used_count", n_expert_used, 0, TV_MAX_EXPERTS, 0)
// the routing keys of DeepSeek-style files (deepseek2, glm4moe): expert and shared-expert sizes,
// dense leading layers, the router's gating, normalization and scale as the file gives them
#define FAMILY_KEYS_MOE_ROUTING                                               \
    FAMILY_INT("expert_feed_forward_length", ff_exp, 1, 1 << 20),             \
    FAMILY_INT("expert_shared_count", n_expert_shared, 0, 64),                \
    FAMILY_INT_OPT("leading_dense_block_count", n_dense_lead, 0, 1024, 0),    \
    FAMILY_FLOAT_OPT("expert_weights_scale", moe_w_scale, 0, 1e4, 0),         \
    FAMILY_INT_OPT("expert_weights_norm", moe_norm_w, 0, 1, 0),               \
    FAMILY_INT_OPT("expert_gating_func", moe_gating, 0, 2, 0)
// ungated shared experts of the MoE layers (deepseek2, glm4moe): one FFN of ff_shexp rows
#define FAMILY_TENSORS_SHEXP_MOE                                                                   \
    FAMILY_LAYER_WHEN("ffn_gate_shexp.weight", ffn_gate_shexp, FD_EMBD, FD_FF_SHEXP, FW_MOE),     \
    FAMILY_LAYER_WHEN("ffn_up_shexp.weight", ffn_up_shexp, FD_EMBD, FD_FF_SHEXP, FW_MOE),         \
    FAMILY_LAYER_WHEN("ffn_down_shexp.weight", ffn_down_shexp, FD_FF_SHEXP, FD_EMBD, FW_MOE)

// How a mixture-of-experts family routes, as llama.cpp fixes it per arch (model_family.moe).
// Whether the top-k weights are divided by their sum: as the file's expert_weights_norm (absent:
// no), or fixed by the arch whatever the file says.
typedef enum family_moe_norm { FAMILY_NORM_FILE, FAMILY_NORM_OFF, FAMILY_NORM_ON } family_moe_norm;
typedef struct family_moe {
    tv_gating gating;          // when the file has no expert_gating_func (0: softmax)
    family_moe_norm norm;
    bool is_ff_exp_per_used;   // expert_feed_forward_length absent: feed_forward_length /
                               // expert_used_count (Qwen); else feed_forward_length (Mixtral)
    bool is_ff_shexp_ff;       // expert_shared_feed_forward_length absent: feed_forward_length (qwen2moe)
} family_moe;

// The router and expert sizes of a model with experts, once the keys are read and the family's
// configure has run: ff_exp and the gating by `moe`'s defaults (NULL: all fields zero), the
// weight normalization it fixes, ff_shexp = expert_shared_count x ff_exp
// when that count is > 0, and the checks the counts must pass (leading dense layers within the
// stack, expert groups that split the experts and hold the top-k). TV_ERR_FORMAT naming the keys
// and both values.
tv_status family_moe_setup(const char *arch, tv_hparams *h, const family_moe *moe, tv_error *err);

// Marks the sliding-window layers from `<arch>.attention.sliding_window_pattern` as llama.cpp reads
// it: a period n (layer l slides iff l % n < n - 1: every n-th layer is global; 0 = every layer
// slides), or one bool per layer; absent: the period dflt_period. TV_ERR_FORMAT on a bad value.
tv_status family_swa_pattern(const gguf_ctx *g, const char *arch, int dflt_period, const tv_hparams *h,
                             tv_layer *layers, tv_error *err);

// Per-layer feed-forward lengths (Gemma 4 E2B/E4B's double-wide MLP layers): when
// `<arch>.feed_forward_length` is an array (read_keys checked its length and range), sets each
// layer's tv_layer.ff_dim from it and h->hidden_dim to the widest (the activations' size); a
// single value leaves every layer at h->hidden_dim.
void family_ff_per_layer(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers);

// Drops the `<arch>.nextn_predict_layers` MTP layers at the end of the stack from h->n_layers (the
// forward pass does not run them, as in llama.cpp) and counts them in h->n_nextn (a model loaded
// as its MTP layer, tv_model_params.mtp, binds the first). TV_ERR_FORMAT when the count does not
// fit block_count.
tv_status family_drop_nextn(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_error *err);

// The hybrid Qwen models' keys (after "<arch>.") and tensors: Gated DeltaNet sizes, and per kind of
// layer its tensors (the FFN is the family's)
#define FAMILY_KEYS_HYBRID                                                    \
    FAMILY_INT("ssm.conv_kernel", ssm_d_conv, 2, KERN_GDN_MAX_CONV),          \
    FAMILY_INT("ssm.inner_size", ssm_d_inner, 1, 1 << 16),                    \
    FAMILY_INT("ssm.state_size", ssm_head_dim, 1, KERN_GDN_MAX_HEAD),                      \
    FAMILY_INT("ssm.time_step_rank", ssm_n_v_heads, 1, 1024),                 \
    FAMILY_INT("ssm.group_count", ssm_n_k_heads, 1, 1024)
#define FAMILY_TENSORS_HYBRID                                                                          \
    FAMILY_TENSORS_HYBRID_COMMON,                                                                      \
    FAMILY_LAYER_KIND("ssm_alpha.weight", ssm_alpha, FD_EMBD, FD_SSM_V_HEADS, FW_LINEAR),              \
    FAMILY_LAYER_KIND("ssm_beta.weight", ssm_beta, FD_EMBD, FD_SSM_V_HEADS, FW_LINEAR)
// (qwen3next fuses ssm_alpha and ssm_beta into ssm_ba; the rest is common)
#define FAMILY_TENSORS_HYBRID_COMMON                                                                   \
    FAMILY_LAYER("attn_norm.weight", attn_norm, FD_EMBD, FD_ONE),                                      \
    FAMILY_LAYER("post_attention_norm.weight", ffn_norm, FD_EMBD, FD_ONE),                             \
    FAMILY_LAYER_KIND("attn_q.weight", wq, FD_EMBD, FD_Q_GATED, FW_FULL_ATTN),                         \
    FAMILY_LAYER_KIND("attn_k.weight", wk, FD_EMBD, FD_KV, FW_FULL_ATTN),                              \
    FAMILY_LAYER_KIND("attn_v.weight", wv, FD_EMBD, FD_KV, FW_FULL_ATTN),                              \
    FAMILY_LAYER_KIND("attn_output.weight", wo, FD_Q, FD_EMBD, FW_FULL_ATTN),                          \
    FAMILY_LAYER_KIND("attn_q_norm.weight", q_norm, FD_HEAD, FD_ONE, FW_FULL_ATTN),                    \
    FAMILY_LAYER_KIND("attn_k_norm.weight", k_norm, FD_HEAD, FD_ONE, FW_FULL_ATTN),                    \
    FAMILY_LAYER_KIND("attn_qkv.weight", ssm_qkv, FD_EMBD, FD_SSM_CONV_DIM, FW_LINEAR),                \
    FAMILY_LAYER_KIND("attn_gate.weight", ssm_z, FD_EMBD, FD_SSM_INNER, FW_LINEAR),                    \
    FAMILY_LAYER_KIND_DIRECT("ssm_conv1d.weight", ssm_conv1d, FD_SSM_CONV, FD_SSM_CONV_DIM, FW_LINEAR), \
    FAMILY_LAYER_KIND("ssm_dt.bias", ssm_dt, FD_SSM_V_HEADS, FD_ONE, FW_LINEAR),                       \
    FAMILY_LAYER_KIND("ssm_a", ssm_a, FD_SSM_V_HEADS, FD_ONE, FW_LINEAR),                              \
    FAMILY_LAYER_KIND("ssm_norm.weight", ssm_norm, FD_SSM_HEAD, FD_ONE, FW_LINEAR),                    \
    FAMILY_LAYER_KIND("ssm_out.weight", ssm_out, FD_SSM_INNER, FD_EMBD, FW_LINEAR)

// Marks the linear-attention layers of a hybrid model as llama.cpp does: the bool array
// `<arch>.attention.recurrent_layers` when present (one per block, MTP layers included), else every
// layer l with (l + 1) % `<arch>.full_attention_interval` (default 4) != 0; drops the
// `nextn_predict_layers` MTP layers (family_drop_nextn); numbers each kind's layers
// (tv_layer.kind_index), sets h->n_linear and checks the Gated DeltaNet sizes. TV_ERR_FORMAT naming
// the key on a bad value.
tv_status family_hybrid_layers(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err);

// The MoE FFN of the hybrid models with experts (qwen35moe, qwen3next), as llama.cpp fixes it for
// them: softmax router, top-k weights divided by their sum, one expert expert_feed_forward_length
// wide (absent: feed_forward_length / used), the shared expert expert_shared_feed_forward_length
// (absent: feed_forward_length), gated by sigmoid(x · ffn_gate_inp_shexp): their keys, tensors and
// family_moe.
#define FAMILY_KEYS_HYBRID_MOE                                                          \
    FAMILY_KEYS_MOE,                                                                    \
    FAMILY_INT_OPT("expert_feed_forward_length", ff_exp, 1, 1 << 20, 0),                \
    FAMILY_INT_OPT("expert_shared_feed_forward_length", ff_shexp, 1, 1 << 20, 0)
#define FAMILY_TENSORS_MOE_SHEXP                                                        \
    FAMILY_TENSORS_EXPERTS(FW_ALL),                                                     \
    FAMILY_LAYER("ffn_gate_inp_shexp.weight", ffn_gate_inp_shexp, FD_EMBD, FD_ONE),     \
    FAMILY_LAYER("ffn_gate_shexp.weight", ffn_gate_shexp, FD_EMBD, FD_FF_SHEXP),        \
    FAMILY_LAYER("ffn_up_shexp.weight", ffn_up_shexp, FD_EMBD, FD_FF_SHEXP),            \
    FAMILY_LAYER("ffn_down_shexp.weight", ffn_down_shexp, FD_FF_SHEXP, FD_EMBD)
extern const family_moe family_hybrid_moe;

// The family whose archs include `arch`, or NULL.
const model_family *family_find(const char *arch);
// The family by name (the llama2.c format maps to "llama"), or NULL.
const model_family *family_by_name(const char *name);
// Writes every supported architecture name, comma-separated, into buf (always terminated).
void family_list_archs(char *buf, size_t cap);

#endif
