// model.h — the model as the engine sees it: hyperparameters, bound weights, the KV cache tensors
// and one forward pass over a flat batch.
//
// The engine and the model meet only in struct tv_batch: a flat list of tokens from any mix of
// sequences (prefill chunks, decodes, draft verification), each sequence a contiguous query range
// with its own block table into the paged KV cache.
#ifndef TV_MODEL_H
#define TV_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tinyvllm.h"

typedef struct tv_hparams {
    int32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim, n_ctx_train;
    int32_t n_rot;               // rotated dims per head (<= head_dim)
    float norm_eps;              // RMSNorm epsilon
    float rope_theta;            // base frequency
    float rope_linear_scale;     // positions multiplied by this (1 = none)
    const char *rope_scaling;    // "none", "linear", "llama3", "yarn", "longrope" (for info)
    float rope_mscale;           // RoPE cos/sin magnitude: YaRN's correction times rope.scaling.attn_factor (1 = none)
    // Multipliers of qwen/granite/mistral3-style families (0 = not used, llama.cpp's convention):
    float embd_scale;            // x = embedding * embd_scale (granite embedding_scale)
    float residual_scale;        // each sublayer's output * residual_scale before the residual add (granite)
    float attn_scale;            // attention score scale (granite attention.scale); 0 = 1/sqrt(head_dim)
    float logit_scale;           // logits / logit_scale (granite)
    int32_t rope_finetuned;      // granite: 0 = no RoPE in any layer (its rope.scaling.finetuned)
    float attn_temp_scale;       // mistral3: q *= 1 + attn_temp_scale * log(1 + floor(pos / attn_temp_floor))
    int32_t attn_temp_floor;     // mistral3: the YaRN original context length
    // sliding-window attention of every layer (forward.c's default attention geometry, and the
    // engine's scheduler releases the KV blocks that fall out of it). A family whose layers all
    // attend within the same window sets it; 0 = global (families with some global layer, e.g.
    // Gemma's interleaved local/global layers, keep 0 and pass their local layers' window per layer).
    int32_t kv_window;
    // gemma2/3/4: sliding-window layers (tv_layer.is_swa), soft-capping, the sliding layers' own
    // RoPE (0 = not used)
    int32_t n_swa;               // window of the sliding layers, in keys
    float attn_softcap;          // attention scores = cap * tanh(scores / cap)
    float final_softcap;         // logits = cap * tanh(logits / cap)
    float rope_theta_swa;        // RoPE base of the sliding layers: their own table (rope_scale_swa) when set
    float rope_scale_swa;        // their positions multiplied by this
    int32_t n_rot_swa;           // their rotated dims per head (gemma4's own; else n_rot)
    // mixture of experts (n_expert 0: dense): each token's FFN is the weighted sum of the
    // n_expert_used experts its router picks (kernels.h "mixture of experts", layers_moe)
    int32_t n_expert, n_expert_used;
    int32_t ff_exp;              // rows of one expert's gate / up
    int32_t ff_shexp;            // the shared expert's (qwen2moe), 0 = none
    int32_t moe_gating;          // tv_gating: softmax / sigmoid over the router logits, or softmax of the top-k
    int32_t moe_norm_w;          // 1: the top-k weights are divided by their sum
    float moe_w_scale;           // the top-k weights are multiplied by this (0 = not)
    // hybrid models (qwen35, qwen3next, qwen35moe): Gated DeltaNet linear-attention layers
    // (tv_layer.is_linear) between the full-attention ones; 0 = none. Their per-sequence state is
    // fixed-size (tv_state_cache): a conv window and one (ssm_head_dim x ssm_head_dim) matrix per value head.
    int32_t n_linear;            // linear-attention layers (the rest keep a KV cache)
    int32_t ssm_d_conv;          // causal conv1d kernel width (ssm.conv_kernel)
    int32_t ssm_head_dim;        // key = value head size (ssm.state_size)
    int32_t ssm_n_k_heads;       // q/k heads (ssm.group_count)
    int32_t ssm_n_v_heads;       // value heads (ssm.time_step_rank); a multiple of ssm_n_k_heads
    int32_t ssm_d_inner;         // ssm_n_v_heads * ssm_head_dim (ssm.inner_size)
    int32_t ssm_k_grouped;       // 1: value heads share key heads in consecutive groups (qwen3next), 0: in
                                 // turn (qwen35, qwen35moe) (kern_gdn_geom.is_k_grouped)
    // gemma4 E2B/E4B: per-layer inputs of n_embd_pl values per layer and token (0 = none), and the
    // layers with their own KV cache: the first n_layer_kv (0 = every layer, no sharing); each later
    // layer attends over an earlier layer's cache (tv_layer.kv_layer)
    int32_t n_embd_pl;
    int32_t n_layer_kv;
    int32_t moe_n_group, moe_n_group_used;   // grouped top-k (DeepSeek-V3: expert groups); 0 = off
    int32_t n_dense_lead;        // the first n_dense_lead layers have a dense FFN (deepseek2, glm4moe)
    int32_t n_expert_shared;     // shared experts (deepseek2: one dense FFN n_expert_shared * ff_exp wide)
    // multi-head latent attention (deepseek2; n_lora_kv > 0). Per token and layer the KV cache holds
    // the normed latent (n_lora_kv) and the RoPE key (n_rot) shared by every head: head_dim =
    // n_lora_kv + n_rot, n_kv_heads = 1, no V pool (a head's value is the latent, read from K).
    int32_t n_lora_q;            // rank of the query compression (0: wq directly, the Lite variant)
    int32_t n_lora_kv;           // rank of the KV latent
    int32_t head_dim_k_mla;      // a head's expanded query/key size: no-RoPE part + n_rot (key_length_mla)
    int32_t head_dim_v_mla;      // a head's expanded value size (value_length_mla)
    int32_t mla_form;            // tv_model_params.mla_form (TV_MLA_AUTO / _ABSORBED / _EXPANDED)
    bool mla_auto_expands;       // TV_MLA_AUTO may pick the expanded form: attn_k_b and attn_v_b are F32/F16/BF16
                                 // (a quantized model runs absorbed: docs/architecture.md, "Latent attention")
    // next-token-prediction (MTP) layers after the n_layers the model runs (nextn_predict_layers);
    // a model loaded as its MTP layer (tv_model_params.mtp) has n_layers 1 and keeps the count
    int32_t n_nextn;
} tv_hparams;

// Whether some sequence may run latent attention expanded (model.c makes the transposes, forward.c its scratch).
static inline bool model_mla_may_expand(const tv_hparams *h) {
    return h->n_lora_kv > 0 && (h->mla_form == TV_MLA_EXPANDED || (h->mla_form == TV_MLA_AUTO && h->mla_auto_expands));
}

typedef struct tv_layer {
    tv_tensor attn_norm;   // (dim) f32
    tv_tensor wq;          // (n_heads*head_dim rows, dim cols)
    tv_tensor wk;          // (n_kv_heads*head_dim, dim)
    tv_tensor wv;          // (n_kv_heads*head_dim, dim)
    tv_tensor wo;          // (dim, n_heads*head_dim)
    tv_tensor ffn_norm;    // (dim) f32
    tv_tensor w_gate;      // (hidden, dim)
    tv_tensor w_up;        // (hidden, dim)
    tv_tensor w_down;      // (dim, hidden)
    // qwen2 and the llama-like families: optional projection biases, f32 (data NULL when absent)
    tv_tensor bq;          // (n_heads*head_dim)
    tv_tensor bk, bv;      // (n_kv_heads*head_dim)
    tv_tensor bo;          // (dim)
    // qwen3: per-head RMSNorm weights of q and k, applied before RoPE
    tv_tensor q_norm, k_norm;   // (head_dim) f32
    // gemma2/3/4: norms of the attention and MLP outputs before their residual adds; the layer kind
    tv_tensor attn_post_norm, ffn_post_norm;   // (dim) f32
    bool is_swa;           // a sliding-window layer (window h->n_swa; RoPE base h->rope_theta_swa when set)
    // gemma4: this layer's attention shape (0 = the model's: h->head_dim, h->n_kv_heads) and the
    // scalar its output is multiplied by (optional)
    int32_t head_dim, n_kv_heads;
    tv_tensor out_scale;   // (1) f32
    // this layer's feed-forward rows (0 = h->hidden_dim): gemma4's per-layer feed_forward_length
    int32_t ff_dim;
    // gemma4 E2B/E4B: a layer of index >= h->n_layer_kv has no K/V of its own and attends over the
    // cache layer kv_layer wrote (its own index otherwise); the per-layer input's gate, projection
    // and norm (h->n_embd_pl > 0)
    int32_t kv_layer;
    tv_tensor pl_gate;     // (n_embd_pl, dim)
    tv_tensor pl_proj;     // (dim, n_embd_pl)
    tv_tensor pl_post_norm;   // (dim) f32
    // mixture of experts (h->n_expert > 0): router, experts as 3-D tensors (ne[2] = n_expert)
    tv_tensor ffn_gate_inp;                // (n_expert, dim) router logits
    tv_tensor ffn_gate_exps, ffn_up_exps;  // (n_expert, ff_exp, dim)
    tv_tensor ffn_down_exps;               // (n_expert, dim, ff_exp)
    tv_tensor exp_probs_b;                 // (n_expert) f32 selection bias (optional)
    // Gemma 4's experts: gate and up fused (then ffn_gate_exps / ffn_up_exps are empty), a per-expert
    // output scale, the router's input scale, and the norms around the dense MLP and the experts
    tv_tensor ffn_gate_up_exps;            // (n_expert, 2 * ff_exp, dim): each expert's gate rows, then up rows
    tv_tensor ffn_down_exps_s;             // (n_expert) f32
    tv_tensor ffn_gate_inp_s;              // (dim) f32
    tv_tensor ffn_pre_norm_2, ffn_post_norm_1, ffn_post_norm_2;   // (dim) f32
    // qwen2moe's shared expert, added to the routed ones times sigmoid(x · ffn_gate_inp_shexp)
    tv_tensor ffn_gate_inp_shexp;          // (dim) f32
    tv_tensor ffn_gate_shexp, ffn_up_shexp;   // (ff_shexp, dim)
    tv_tensor ffn_down_shexp;              // (dim, ff_shexp)
    // gpt-oss: per-head attention sink logits, router and per-expert biases
    tv_tensor attn_sinks;                  // (n_heads) f32
    tv_tensor ffn_gate_inp_b;              // (n_expert) f32
    tv_tensor ffn_gate_exps_b, ffn_up_exps_b;   // (n_expert, ff_exp) f32
    tv_tensor ffn_down_exps_b;             // (n_expert, dim) f32
    // hybrid models: the layer kind and its index among its kind (a linear layer's state, a full
    // attention layer's KV pool)
    bool is_linear;
    int32_t kind_index;
    // Gated DeltaNet (is_linear): conv_dim = 2 * ssm_n_k_heads * ssm_head_dim + ssm_d_inner
    tv_tensor ssm_qkv;                     // (conv_dim, dim) q, k, v before the convolution (attn_qkv)
    tv_tensor ssm_z;                       // (d_inner, dim) the output gate (attn_gate)
    tv_tensor ssm_alpha, ssm_beta;         // (n_v_heads, dim) decay and write-strength projections
    tv_tensor ssm_ba;                      // (2 * n_v_heads, dim) qwen3next: both fused (ssm_ba), per key head
                                           // its group's beta rows then alpha rows; else absent
    tv_tensor ssm_conv1d;                  // (conv_dim, d_conv) f32, read directly
    tv_tensor ssm_dt;                      // (n_v_heads) f32 decay bias
    tv_tensor ssm_a;                       // (n_v_heads) f32 -exp(A_log): decay = exp(softplus(alpha + dt) * a)
    tv_tensor ssm_norm;                    // (ssm_head_dim) f32 per-head RMSNorm of the output
    tv_tensor ssm_out;                     // (dim, d_inner)
    // deepseek2's latent attention (h->n_lora_kv > 0; nope = head_dim_k_mla - n_rot)
    tv_tensor wq_a;        // (n_lora_q, dim) query compression; absent (Lite): wq is (n_heads*head_dim_k_mla, dim)
    tv_tensor q_a_norm;    // (n_lora_q) f32
    tv_tensor wq_b;        // (n_heads*head_dim_k_mla, n_lora_q) per head: nope query part, then RoPE part
    tv_tensor wkv_a_c;     // (n_lora_kv, dim) the latent rows of attn_kv_a_mqa
    tv_tensor wkv_a_pe;    // (n_rot, dim) its RoPE key rows
    tv_tensor kv_a_norm;   // (n_lora_kv) f32
    tv_tensor wk_b;        // 3-D (n_heads, n_lora_kv, nope): a head's nope query into latent space
    tv_tensor wv_b;        // 3-D (n_heads, head_dim_v_mla, n_lora_kv): the latent into a head's value
    tv_tensor wk_bt;       // 3-D (n_heads, nope, n_lora_kv): wk_b transposed per head, the latent into a
                           // head's no-RoPE key (the expanded form); made at load (model.c mla_transpose_k):
                           // F32 from an F32 wk_b, else F16; data NULL with mla_form TV_MLA_ABSORBED
} tv_layer;

// The weights outside the layers.
typedef struct tv_weights {
    tv_tensor tok_embd;      // (n_vocab rows, dim cols)
    tv_tensor output_norm;   // (dim) f32
    tv_tensor output;        // (n_vocab, dim); the same view as tok_embd when tied
    // gemma4 E2B/E4B per-layer inputs (h->n_embd_pl > 0; data NULL otherwise)
    tv_tensor pl_tok_embd;   // (n_vocab rows, n_layers * n_embd_pl): looked up by token, never multiplied
    tv_tensor pl_model_proj; // (n_layers * n_embd_pl, dim)
    tv_tensor pl_proj_norm;  // (n_embd_pl) f32
    // a model loaded as an MTP layer (tv_model_params.mtp; data NULL otherwise): its input is
    // eh_proj · [rmsnorm(embedding) * enorm, rmsnorm(h) * hnorm], h the target's hidden state
    tv_tensor mtp_eh_proj;   // (dim, 2 * dim)
    tv_tensor mtp_enorm, mtp_hnorm;   // (dim) f32
} tv_weights;

struct model_family;

// Internal view of tv_model (opaque in the public API).
const struct model_family *model_family_of(const tv_model *m);
const tv_hparams *model_hparams(const tv_model *m);
const tv_layer *model_layers(const tv_model *m);
const tv_tensor *model_tok_embd(const tv_model *m);
const tv_tensor *model_output(const tv_model *m);
const tv_tensor *model_output_norm(const tv_model *m);
const tv_weights *model_weights(const tv_model *m);
// The KV cache's layers: the process's layers (a pipeline stage's range) with a cache of their own,
// i.e. less a hybrid model's linear-attention layers and the layers from h->n_layer_kv on.
int model_n_kv_layers(const tv_model *m);
// Inverse frequencies per rotated pair (n_rot/2), scaling applied.
// n_ctx: the context length sequences run with (LongRoPE's long factors above its original one).
const float *model_rope_inv_freq(const tv_model *m, int n_ctx);
// The sliding layers' (n_rot_swa/2), base h->rope_theta_swa, no scaling; NULL when that is 0.
const float *model_rope_inv_freq_swa(const tv_model *m);
// Every weight matrix the forward pass multiplies by, tied output excluded (*n set to the count).
const tv_tensor *const *model_matrices(const tv_model *m, int *n);
// The model's weight type: the one that holds most of the matrices' elements (F32 for a llama2.c
// checkpoint or an all-f32 GGUF, the quantization of a quantized file).
tv_type model_weight_type(const tv_model *m);
// Bytes of weights one decode step reads: every bound tensor, less the embedding table when the
// output projection is separate (only one row of it is read).
size_t model_weight_bytes(const tv_model *m);
// Weight tensors repacked at load (kernels.h "packed weights"), and the time it took (ms, may be NULL).
int model_n_packed(const tv_model *m, double *ms);
// --quantize at load: the source (F32/F16/BF16) bytes converted, and the time it took (ms, may be NULL).
uint64_t model_quantize_stats(const tv_model *m, double *ms);
// Threads of the pool that repacked the weights (tv_model_params.n_threads); 0 when nothing was packed.
int model_load_threads(const tv_model *m);
// The type --quantize target gives a matrix with rows of ne0 elements: target when ne0 fits its
// blocks, else Q8_0 when it fits those, else F16 (llama.cpp's fallback order, as synth's).
tv_type model_quant_type(tv_type target, int64_t ne0);
// The layers the model holds, [*begin, *end): all of them unless loaded as a pipeline stage
// (tv_model_params.layer_begin/end). A stage's forward pass runs only those (forward_run).
void model_layer_range(const tv_model *m, int *begin, int *end);
const char *model_format(const tv_model *m);     // "gguf" | "llama2c"
const char *model_file_path(const tv_model *m);
struct gguf_ctx *model_gguf(const tv_model *m); // NULL for llama2.c files

// ---- recurrent state of the linear-attention layers (hybrid models): one fixed-size slot per
// running sequence, f32. A slot holds, per linear layer, the last d_conv - 1 inputs of the causal
// convolution and the delta-rule matrix of every value head.
typedef struct tv_state_cache {
    int n_slots, n_linear;
    size_t conv_floats;     // per slot and layer: (d_conv - 1, conv_dim)
    size_t ssm_floats;      // per slot and layer: (n_v_heads, kern_gdn_head_floats(head_dim)) (kernels/deltanet.h)
    float *conv;            // (n_linear, n_slots, d_conv - 1, conv_dim)
    float *ssm;             // (n_linear, n_slots, n_v_heads, head_dim, head_dim)
    int32_t *n_pos;         // (n_slots) tokens the slot's state has consumed; -1 = invalid (a failed batch)
} tv_state_cache;

// ---- paged KV cache: per full-attention layer K and V pools of (n_blocks, n_kv_heads, block_size,
// head_dim); for hybrid models also the state slots ----
// (latent attention, h->n_lora_kv > 0: K pools only, v NULL; a K row is [latent, RoPE key])
typedef struct tv_kv_cache {
    int n_layers, n_blocks, block_size, n_kv_heads, head_dim;   // n_layers: the ones with KV (not linear)
    int layer_begin;        // a pipeline stage's first layer (model_layer_range): layer l's pools are at l - layer_begin
    bool is_f32;            // else f16
    size_t layer_bytes;     // bytes of one layer's K (= V) pool
    uint8_t *k, *v;         // (n_layers, n_blocks, n_kv_heads, block_size, head_dim); v NULL for latent attention
    tv_state_cache *state;  // hybrid models: kv_cache_add_state's slots (owned); else NULL
} tv_kv_cache;

tv_kv_cache *kv_cache_create(const tv_model *m, int n_blocks, int block_size, bool is_f32, tv_error *err);
void kv_cache_free(tv_kv_cache *kv);
size_t kv_cache_bytes_per_block(const tv_model *m, int block_size, bool is_f32);  // K+V (K only: MLA), all layers with KV
// Hybrid models: gives kv n_slots zeroed state slots (a batch names each sequence's slot in
// tv_batch.state_slots). TV_ERR_INVALID for a model without linear layers or n_slots < 1,
// TV_ERR_NOMEM.
tv_status kv_cache_add_state(tv_kv_cache *kv, const tv_model *m, int n_slots, tv_error *err);
// Bytes of one state slot (every linear layer); 0 for a model without linear layers.
size_t kv_cache_state_bytes_per_slot(const tv_model *m);
// Copies state slot src (every linear layer, and the tokens it holds) into slot dst: a checkpoint
// into a running sequence's slot (prefix caching), or a rollback point (speculative decoding). Both
// must be slots of kv->state.
void kv_cache_state_copy(tv_kv_cache *kv, int32_t dst, int32_t src);

// ---- the batch ----
typedef struct tv_batch {
    int n_tokens;
    const int32_t *tokens;        // (n_tokens) token ids
    const int32_t *positions;     // (n_tokens) position of each token in its sequence
    int n_seqs;
    const int32_t *q_start;       // (n_seqs + 1) sequence s owns tokens [q_start[s], q_start[s+1])
    const int32_t *ctx_len;       // (n_seqs) KV length of s after this batch (its last position + 1)
    const int32_t *const *block_tables;  // (n_seqs) each ceil(ctx_len/block_size) physical block ids (with
                                         // kv_window, entries before every query's window are not read)
    int n_logits;
    const int32_t *logit_rows;    // (n_logits) token indices whose logits are wanted
    const int32_t *state_slots;   // (n_seqs) hybrid models: each sequence's slot in kv->state. A sequence
                                  // whose first token here is at position 0 starts from a zero state;
                                  // otherwise its tokens must continue where the slot's state ends.
    const int32_t *state_ckpt_rows;   // (n_seqs) hybrid models, or NULL: a sequence's state after its first
                                      // state_ckpt_rows[s] tokens here (0 = none) is also copied into slot
    const int32_t *state_ckpt_slots;  // state_ckpt_slots[s] (a checkpoint: no sequence's slot in this batch)
    const int32_t *state_rollback;    // (n_seqs) hybrid models, or NULL: where state_rollback[s] >= 0, sequence s's
                                      // state after each of its rows j but the last is also copied into slot
                                      // state_rollback[s] + j (a speculative verification's rollback points: the
                                      // state after its pending token and after each guess; no slot of another
                                      // role in this batch)
    int n_layers;                 // 0: the whole model; else only the first n_layers, then the output
                                  // norm and head (a self-speculative draft: the K/V it writes for
                                  // those layers are the ones the whole model writes for the same tokens)
    const float *hidden;          // (n_tokens, dim) f32: the residual stream entering the model's first
                                  // layer when it is a later pipeline stage (model_layer_range begin > 0);
                                  // NULL on the first stage, which embeds tokens
    const float *mtp_hidden;      // (n_tokens, dim) f32, a model loaded as an MTP layer only: each row's
                                  // previous hidden state (the target's final-normed one at the position
                                  // before, or the MTP layer's own output for a guess it made)
    float *hidden_cache;          // (KV slots, dim) f32 or NULL: the forward writes each token's final-normed
                                  // hidden state (the MTP layer's input) into the row of its KV slot
} tv_batch;

// Forward state: activations sized for up to max_tokens tokens per batch, for sequences of up to
// n_ctx tokens (the context the model runs with: LongRoPE picks its factors by it, as llama.cpp by
// n_ctx_seq). Everything it computes runs on be (backend/backend.h; not owned, must outlive f, one
// forward at a time per backend), which forward_create prepares for this model's weights.
typedef struct tv_forward tv_forward;
typedef struct backend backend;
tv_forward *forward_create(const tv_model *m, int n_ctx, int max_tokens, int max_logits, backend *be, tv_error *err);
void forward_free(tv_forward *f);
// Runs the batch: writes K/V of the new tokens into their slots, then attention over each
// sequence's blocks, and fills logits (n_logits, n_vocab) in the order of logit_rows.
// Returns a pointer to the logits owned by f (valid until the next call). A pipeline stage that is
// not the last (model_layer_range end < n_layers) runs its layers only and returns the residual
// stream after them instead, (n_tokens, dim) f32, the next stage's b->hidden.
tv_status forward_run(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, float **logits, tv_error *err);
// Hybrid models: wall time (ms) forward_run has spent since f was created in the linear-attention
// layers and in the full-attention layers (each whole layer, FFN included), and within them in the
// Gated DeltaNet kernels (conv + delta rule) and in the attention kernels (KV write + attention);
// 0 for other models.
typedef struct forward_times {
    double linear_ms, full_ms, gdn_ms, attn_kernel_ms;
} forward_times;
forward_times forward_layer_times(const tv_forward *f);
// The final-normed hidden states of the last run's logit rows, (n_logits, dim) f32 (what the head
// multiplied; an MTP layer's input for its next guess). Valid until the next run.
const float *forward_logit_hidden(const tv_forward *f);

#endif
