// layers.h — the shared pieces a family's block (family.h) is composed of, and the state they
// share. Each piece runs over every token row of the batch through the engine's backend
// (backend/backend.h), and each row's bits depend only on that row and its sequence's KV, so a
// block built from them keeps batch invariance on every kernel path.
#ifndef TV_LAYERS_H
#define TV_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/model.h"

typedef struct backend backend;

// The forward pass's state for one batch, as blocks see it (forward.c fills it; T = n_tokens).
typedef struct layer_state {
    const tv_hparams *h;
    backend *be;
    tv_kv_cache *kv;
    int n_tokens;         // T
    float *x;             // (T, dim) residual stream: a block reads and updates it
    float *xb;            // (T, dim) normed input of a sublayer
    float *xb2;           // (T, dim) a sublayer's output
    // The attention shape of the layer being computed: the model's (h; forward.c sets it per batch)
    // unless a block sets its layer's (gemma4: per-layer head size, KV heads and rotated dims).
    // Buffers are sized for the largest layer.
    int n_kv_heads, head_dim, n_rot;
    float *q;             // (T, n_heads * head_dim)
    float *k, *v;         // (T, n_kv_heads * head_dim)
    float *att;           // (T, n_heads * head_dim) attention output, before the output projection
    float *hb, *hb2;      // (T, hidden_dim) MLP intermediates
    const float *ones;    // (head_dim) 1.0: the weight of an unweighted RMSNorm
    const float *rope_cs; // (T, 2 * n_rot) per-token RoPE cos/sin from the model's frequencies
    const float *rope_cs_swa; // (T, 2 * n_rot_swa) the sliding layers' (h->rope_theta_swa), NULL when not set
    bool is_rope_neox;    // rope_cs is a rope_table_neox table: layers_rope rotates NeoX pairs
    const float *attn_temp; // (T) per-token query temperature (h->attn_temp_scale), NULL when not used
    const int64_t *slots; // (T) KV slot of each token: block * block_size + offset
    tv_attn_args attn;    // default geometry and each sequence's queries/positions/blocks (layers_attention
                          // runs a copy with the layer's pools, shape and options)
    tv_attn_seq *seqs_shaped; // (T) scratch: attn.seqs re-pointed for a layer of another head size
    // mixture of experts (h->n_expert > 0, else NULL; k = h->n_expert_used)
    float *moe_logits;    // (T, n_expert) router logits, then probs; the shared expert's gate (T)
    int32_t *moe_ids;     // (T, k) each token's experts
    float *moe_w;         // (T, k) their weights
    int32_t *moe_x_row, *moe_pos;   // (T * k) backend_moe's grouping
    int32_t *moe_off;     // (n_expert + 1)
    float *moe_g, *moe_u; // (T * k, ff_exp) expert gate / up rows, grouped by expert
    float *moe_y;         // (T * k, dim) expert outputs, grouped; then the shared expert's (T, dim)
    // hybrid models (h->n_linear > 0, else NULL)
    float *q_gated;       // (T, 2 * n_heads * head_dim) a gated attention's query + gate projection
    float *attn_gate;     // (T, n_heads * head_dim) its gate
    float *ssm_qkv;       // (T, conv_dim) a linear layer's q/k/v projection, then its conv output
    float *ssm_z;         // (T, d_inner) its output gate, then the gated output
    float *ssm_alpha, *ssm_beta;   // (T, n_v_heads)
    float *ssm_ba;        // (T, 2 * n_v_heads) qwen3next's fused beta/alpha projection
    float *ssm_o;         // (T, d_inner) the delta rule's output
    float **gdn_conv, **gdn_ssm;   // (n_seqs) each sequence's state in the layer being computed
    const tv_state_cache *state;   // the batch's state slots (kv->state)
    double t_gdn_ms;               // wall time in backend_gdn_run, summed over batches
    double t_attn_kernel_ms;       // hybrid models (state set): wall time in the KV writes + attention, summed
    const int32_t *state_slots;    // (n_seqs) each sequence's slot
    const int32_t *state_ckpt_rows, *state_ckpt_slots;   // (n_seqs) checkpoints (tv_batch), or NULL
    float **gdn_ckpt_conv, **gdn_ckpt_ssm;   // (n_seqs) the checkpoint slots' state in the layer being computed
    const int32_t *state_rollback;           // (n_seqs) rollback points (tv_batch), or NULL
    float **gdn_rb_conv, **gdn_rb_ssm;       // (n_seqs) the first rollback slot's state in that layer, or NULL
    int n_seqs;
    const int32_t *q_start;        // (n_seqs + 1) each sequence's token rows
    const int32_t *positions;      // (T) each row's position
    // per-layer inputs (h->n_embd_pl > 0, else NULL; P = n_embd_pl)
    float *pl_inp;        // (n_layers, T, P) each layer's input, layer-major (layers_per_layer_inputs)
    float *pl_buf;        // (T, n_layers * P) scratch; a layer's gate rows (T, P) in a block
    // latent attention (h->n_lora_kv > 0, else NULL; H = n_heads, r = n_lora_kv, dk/dv = head_dim_k/v_mla)
    float *mla_q;         // (T, H * dk) expanded queries
    float *mla_qa;        // (T, n_lora_q) compressed queries (NULL without q_lora)
    float *mla_c;         // (T, r) latents
    float *mla_pe;        // (T, n_rot) RoPE keys
    float *mla_x;         // (T * H, max(r, dk)) per-head rows, token-major
    float *mla_y;         // (H * T, max(r, dv)) per-head rows, head-major (grouped)
    float *mla_o;         // (T, H * dv) expanded attention output
    int32_t *mla_row;     // (T * H) grouped row -> per-head row
    int32_t *mla_off;     // (H + 1)
    int32_t *mla_tok;     // (T) the rows of the sequences that run absorbed
    tv_attn_seq *mla_seqs;   // (T) those sequences
    // the expanded form (NULL when h->mla_form is TV_MLA_ABSORBED): a sequence's context of up to
    // mla_ctx_cap keys (a multiple of MLA_XBS), decompressed for mla_heads_cap heads at a time
    int mla_ctx_cap, mla_heads_cap;
    float *mla_cc;        // (ctx_cap, r) the context's latents, read back from the cache
    float *mla_cpe;       // (ctx_cap, n_rot) its RoPE keys
    float *mla_ky;        // (heads_cap * ctx_cap, max(nope, dv)) decompressed rows, head-major
    float *mla_kp, *mla_vp;  // (ctx_cap / MLA_XBS, heads, MLA_XBS, dk) f32 K and V pools of those heads
                             // (V: dv values, then zeros); heads * ctx <= heads_cap * ctx_cap
    int32_t *mla_crow;    // (heads_cap * ctx_cap) grouped row -> context row
    int32_t *mla_tbl;     // (ctx_cap / MLA_XBS) 0, 1, 2, ...: the pools' block table
} layer_state;

// The block size of the expanded form's K/V pools (layer_state.mla_kp); the fewest rows of a sequence
// that run expanded under TV_MLA_AUTO (layers_mla_is_expanded).
#define MLA_XBS 32
#define MLA_MIN_ROWS 32

// Activation of a gated MLP: act(x·gate) * (x·up). SiLU (SwiGLU) or tanh-approximated GELU (GeGLU).
// LAYERS_ACT_SWIGLU_OAI: gpt-oss's clamped SwiGLU (kern_swiglu_oai), experts only (layers_moe).
typedef enum layers_act { LAYERS_ACT_SILU, LAYERS_ACT_GELU_TANH, LAYERS_ACT_SWIGLU_OAI } layers_act;

// y (n_rows, n) = rmsnorm(x) * w, with n = w->ne[0] (F32), eps = h->norm_eps; y == x (in place) or
// no overlap.
// n_rows is T for the residual stream; per-head norms pass T * heads rows of head_dim.
// (LayerNorm would join as layers_layernorm with a bias; Gemma's (1 + w) is already in its GGUF.)
void layers_rmsnorm(layer_state *s, float *y, const float *x, const tv_tensor *w, int n_rows);
// y (n_rows, n) = rmsnorm(x) without a weight (n <= head_dim; Gemma 4's V), in place or no overlap.
void layers_rmsnorm_unit(layer_state *s, float *y, const float *x, int n, int n_rows);
// q, k, v (s->q, s->k, s->v) = s->xb · wq, wk, wvᵀ: one activation quantization when the types allow.
// wk NULL: q only (a layer that reuses an earlier layer's K/V; wv is then ignored).
void layers_qkv(layer_state *s, const tv_tensor *wq, const tv_tensor *wk, const tv_tensor *wv);
// y (T, b->ne[0]) += b on every row: a projection's bias. Nothing when b is absent (data NULL).
void layers_bias(layer_state *s, float *y, const tv_tensor *b);
// s->q, s->k, s->v += the present ones of bq, bk, bv (Qwen2 and optional in the llama-like families).
void layers_qkv_bias(layer_state *s, const tv_tensor *bq, const tv_tensor *bk, const tv_tensor *bv);
// RMSNorm of every head of s->q with q_norm and of s->k with k_norm (each (head_dim)), in place
// (Qwen3, before RoPE). k_norm NULL: q only.
void layers_head_norm(layer_state *s, const tv_tensor *q_norm, const tv_tensor *k_norm);
// Rotates s->q and s->k in place with the per-token table cs (T, 2 * n_rot) (s->rope_cs; a layer
// with its own base passes its own table), NeoX pairs when s->is_rope_neox.
void layers_rope(layer_state *s, const float *cs);
// The same for s->q alone (a layer that reuses an earlier layer's K).
void layers_rope_q(layer_state *s, const float *cs);
// Row t of s->q *= s->attn_temp[t] (Llama-4 / Mistral-3 attention temperature); nothing when NULL.
void layers_attn_temperature(layer_state *s);
// y (T, n) *= f (Granite's residual multiplier).
void layers_scale(layer_state *s, float *y, int n, float f);
// Attention of layer `layer` over the paged KV: writes s->k, s->v into the tokens' slots, attends
// causally over each sequence's blocks into s->att, then out (T, dim) = s->att · woᵀ.
// TV_ERR_NOMEM (attention workspace) in err on failure.
tv_status layers_attention(layer_state *s, int layer, const tv_tensor *wo, float *out, tv_error *err);
// A layer's attention options (tv_attn_geom): each field's zero is layers_attention's behaviour.
typedef struct layers_attn_opts {
    int window;      // sliding window: a query at p sees keys p - window + 1 .. p; 0 = the model's
                     // (h->kv_window: every layer's window, usually 0 = global)
    float softcap;   // scores = softcap * tanh(scores / softcap); 0 = off
    float scale;     // scores = dot(q, k) * scale; 0 = the model's (h->attn_scale, else 1/sqrt(head_dim))
    const float *sinks;   // (n_heads) attention sink logits (gpt-oss), NULL = none
    const float *gate;    // (T, n_heads * head_dim): the attention output is multiplied by sigmoid(gate)
                          // before the output projection (qwen35 / qwen3next), NULL = none
    bool is_kv_reused;    // attend over the cache of `layer` as an earlier layer wrote it and write
                          // nothing (Gemma 4's shared KV; s->k, s->v unused)
} layers_attn_opts;
// layers_attention with the options o (NULL: none), for this layer only.
tv_status layers_attention_opts(layer_state *s, int layer, const layers_attn_opts *o, const tv_tensor *wo, float *out,
                                tv_error *err);
// The gated query of qwen35 / qwen3next: wq's rows hold each head's query then its gate
// (head_dim each); s->q, s->k, s->v = s->xb · (the query rows of) wq, wk, wv, and s->attn_gate the
// gate rows.
void layers_qkv_gated(layer_state *s, const tv_tensor *wq, const tv_tensor *wk, const tv_tensor *wv);
// A Gated DeltaNet layer (kernels/deltanet.h) from s->xb into out (T, dim): the q/k/v, gate, alpha
// and beta projections, each sequence's conv and delta rule from its state slot (layer_state.state,
// state_slots; updated), the per-head RMSNorm (ssm_norm) times silu(gate), the output projection.
void layers_gdn(layer_state *s, const tv_layer *L, float *out);
// out (T, dim) = (act(s->xb · gateᵀ) * (s->xb · upᵀ)) · downᵀ, through s->hb, s->hb2.
void layers_glu_mlp(layer_state *s, layers_act act, const tv_tensor *gate, const tv_tensor *up,
                    const tv_tensor *down, float *out);
// The routed experts (h->n_expert > 0): out (T, dim) = sum over each token's top-k experts e of
// weight_e * down_e(act(gate_e·xb) * (up_e·xb)), routed by router logits xb · ffn_gate_inpᵀ
// (h->moe_gating, moe_norm_w, moe_w_scale, the layer's exp_probs_b; plus ffn_gate_inp_b and the
// experts' biases where the layer has them, gpt-oss); rows routed to one expert run as one grouped GEMM. With a shared expert (ffn_up_shexp present, qwen2moe): out +=
// sigmoid(xb · ffn_gate_inp_shexp) * (act(xb·gate_shexp) * (xb·up_shexp))·down_shexp (deepseek2: no
// gate, the shared experts' output is added as it is). Grouped top-k when h->moe_n_group > 1.
// Gemma 4's experts: gate and up from one fused weight (ffn_gate_up_exps) where the layer has it, each
// expert's output times its ffn_down_exps_s before its routing weight where present.
void layers_moe(layer_state *s, layers_act act, const tv_layer *L, float *out);
// layers_moe with the router reading router_x (T, dim) instead of s->xb (Gemma 4 routes from its own
// scaled norm of the residual while the experts read another norm of it); router_x may be s->moe_y.
void layers_moe_routed(layer_state *s, layers_act act, const tv_layer *L, const float *router_x, float *out);
// Multi-head latent attention (deepseek2, h->n_lora_kv > 0) of s->xb into out (T, dim). The cache
// holds K rows [latent, rope(k_pe)] (latent = rmsnorm(xb·wkv_a_c) * kv_a_norm); scores are scaled by
// h->attn_scale. Each sequence of the batch runs in one of two forms (layers_mla_is_expanded):
// absorbed: per head, q = [wk_b·q_nope, rope(q_pe)] against the cache's rows, the attention output
//   (a latent-space row per head) expanded by wv_b;
// expanded: the sequence's context latents read back from the cache and decompressed per head into
//   K = [wk_bt·latent, rope(k_pe)] and V = wv_b·latent, then ordinary attention of q = [q_nope,
//   rope(q_pe)] over them.
// Then · woᵀ. The queries come from wq_a, q_a_norm and wq_b, or wq. TV_ERR_NOMEM (attention
// workspace) in err on failure.
tv_status layers_mla_attention(layer_state *s, const tv_layer *L, int layer, float *out, tv_error *err);
// Whether a sequence with n query rows at positions pos (ascending) runs latent attention expanded:
// h->mla_form forces one form; TV_MLA_AUTO takes the one with fewer multiply-adds per head. With
// L = pos[n-1] + 1 context keys, P = the sum over its rows of the keys each sees (pos + 1), r =
// n_lora_kv, dk = nope + rot, dv:
//   absorbed  n (nope + dv) r  +  P 2 (r + rot)    (queries into and outputs out of latent space;
//                                                    scores and values over [latent, k_pe])
//   expanded  L (nope + dv) r  +  P 2 dk           (every context latent into K_nope and V; scores over
//                                                    dk, values over dv padded to dk)
// i.e. expanded iff h->mla_auto_expands (float attn_k_b / attn_v_b), P 2 (r - nope) > (L - n)(nope + dv) r,
// n >= MLA_MIN_ROWS (a sequence's own
// decompression and attention calls cost more in dispatch than a few rows save) and L <= ctx_cap
// (the scratch). A prompt prefilled from position 0 (L = n) runs expanded from MLA_MIN_ROWS on; a chunk of n rows after a long
// context roughly when n > r (nope + dv) / (2 (r - nope)): 171 for DeepSeek-V2/V3 (r 512, nope 128,
// dv 128), 43 for the synth fixtures (r 128, nope 32, dv 32); decode rows (n = 1) never. The form
// depends only on the sequence's own rows, so results are deterministic for a given chunking and
// batch invariant; two chunkings of one prompt may take different forms (within the fixtures'
// tolerances of each other: both are checked against llama.cpp).
bool layers_mla_is_expanded(const tv_hparams *h, int ctx_cap, int n, const int32_t *pos);
// The layer's FFN from s->xb into out (T, dim): layers_moe when it has a router, else layers_glu_mlp
// with w_gate, w_up, w_down.
void layers_ffn(layer_state *s, layers_act act, const tv_layer *L, float *out);
// Gemma 4's per-layer inputs (h->n_embd_pl = P > 0) into s->pl_inp, from the scaled embeddings s->x
// and the batch's token ids (T), as llama.cpp's gemma4 graph computes them:
//   tok  = pl_tok_embd[tokens] * sqrt(P)                                  (T, n_layers, P)
//   proj = rmsnorm_P((x · pl_model_projᵀ) / sqrt(dim)) * pl_proj_norm     (T, n_layers, P)
//   pl_inp[l] = (proj + tok)[:, l] / sqrt(2)
void layers_per_layer_inputs(layer_state *s, const tv_weights *w, const int32_t *tokens);
// After layer l's sublayers: x += rmsnorm(((gelu(x · pl_gateᵀ) * pl_inp[l]) · pl_projᵀ)) * pl_post_norm.
void layers_per_layer_add(layer_state *s, const tv_layer *L, int l);
// y (T, dim) += x: the residual add.
void layers_add(layer_state *s, float *y, const float *x);

// x (n, dim) = the embedding rows of ids.
void layers_embed(layer_state *s, const tv_tensor *table, const int32_t *ids, int n, float *x);
// logits (n, n_vocab) = rmsnorm(rows of s->x listed in rows[0..n)) * norm · outputᵀ, through lx (n, dim),
// divided by h->logit_scale when set (Granite), soft-capped by h->final_softcap when set (Gemma).
void layers_logits(layer_state *s, const int32_t *rows, int n, const tv_tensor *norm, const tv_tensor *output,
                   float *lx, float *logits);

// The pre-norm layer of llama and the families built like it (qwen2, qwen3, phi3, smollm3):
//   x += attention(rope(headnorm(q)), rope(headnorm(k)), v)·Wo + bo  with q, k, v = rmsnorm(x)·Wq, Wk, Wv + b
//   x += (silu(h·Wgate) * (h·Wup))·Wdown  with h = rmsnorm(x)   (or the layer's experts: layers_ffn)
// Biases and the per-head Q/K norms apply where the layer has them (their tables decide);
// rope_cs NULL leaves q and k unrotated (SmolLM3's no-RoPE layers). The plain form rotates with
// s->rope_cs and is a family_block_fn.
tv_status layers_prenorm_block_rope(layer_state *s, const tv_layer *L, int l, const float *rope_cs, tv_error *err);
tv_status layers_prenorm_block(layer_state *s, const tv_layer *L, int l, tv_error *err);

// The layer of the hybrid Qwen models (qwen35, qwen35moe, qwen3next):
//   x += linear layer:  layers_gdn(rmsnorm(x))                                   (L->is_linear)
//   x += full attention: gated attention(rope(headnorm(q)), rope(headnorm(k)), v) · Wo, with q and
//        its gate from one projection (layers_qkv_gated), the output times sigmoid(gate)
//   x += ffn(rmsnorm(x) with post_attention_norm)   (dense or the layer's experts: layers_ffn)
tv_status layers_hybrid_block(layer_state *s, const tv_layer *L, int l, tv_error *err);

#endif
