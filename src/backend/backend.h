// backend.h — the compute backend of one engine: every call a forward pass makes to compute,
// behind one interface.
//
// A backend is an instance of an implementation: struct backend is the vtable pointer plus the
// name, and each implementation embeds it as the first member of its own state (the instance).
// The forward pass (src/model) holds a backend * and calls only the backend_* functions below;
// it never sees kernel tables, ops tables or thread pools.
//
// The one implementation today is the CPU backend (backend_cpu.c). It owns, per instance:
//   - a kern_table filled for the CPU path the caller asked for (its own traits copy and ops),
//   - a thread pool of the caller's size,
//   - attention's workspace and the matmul activation scratch (sized by backend_prepare).
// Nothing is process-wide, so two engines with different paths compute side by side.
//
// A second implementation provides the same vtable:
//   - a GPU backend: prepare uploads the weights it is given and sizes its device scratch; every
//     other call runs on device memory. It would also allocate the forward's activation buffers
//     and the KV pools (an alloc/free pair joins the vtable then; not needed while all memory is
//     host memory).
//   - a pipeline-parallel rank: its own backend instance (CPU or GPU, own pool, own path) driving
//     the forward over its range of layers; handing the hidden state to the next rank is the
//     forward's business, not the backend's.
// One caller at a time (the engine's step loop): a backend is not thread-safe.
#ifndef TV_BACKEND_H
#define TV_BACKEND_H

#include <stdint.h>

#include "kernels/deltanet.h"
#include "kernels/kernels.h"
#include "tinyvllm.h"

typedef struct backend backend;

// The activation of a gated FFN: act(gate) * up with act = SiLU (SwiGLU) or tanh-GELU (GeGLU), or
// gpt-oss's clamped SwiGLU (kern_swiglu_oai; experts only).
typedef enum backend_glu { BACKEND_GLU_SILU, BACKEND_GLU_GELU_TANH, BACKEND_GLU_SWIGLU_OAI } backend_glu;

// A mixture-of-experts FFN over n_tok rows (backend_moe_ffn): the routed experts and their weights
// in, the weighted sum of the experts' outputs out, through the caller's scratch.
typedef struct backend_moe {
    int n_tok, n_used;            // T, k
    const float *x;               // (T, dim) the FFN input
    const int32_t *ids;           // (T, k) each row's experts (distinct)
    const float *w;               // (T, k) their weights
    const tv_tensor *gate, *up;   // 3-D (n_expert, ff_exp, dim); NULL with gate_up
    const tv_tensor *gate_up;     // or 3-D (n_expert, 2 * ff_exp, dim): each expert's gate rows, then its
                                  // up rows (Gemma 4's ffn_gate_up_exps); NULL with gate and up
    const tv_tensor *down;        // 3-D (n_expert, dim, ff_exp)
    const float *down_s;          // (n_expert) each expert's output scale, applied before its weight, or NULL
    const float *gate_b, *up_b;   // (n_expert, ff_exp) per-expert biases added before act, or NULL (gpt-oss)
    const float *down_b;          // (n_expert, dim) or NULL
    backend_glu act;
    float *out;                   // (T, dim)
    // scratch
    int32_t *x_row, *pos;         // (T * k) grouped row -> input row; row t's j-th expert -> grouped row
    int32_t *off;                 // (n_expert + 1) grouped rows of each expert
    float *g, *u;                 // (T * k, ff_exp)
    float *y;                     // (T * k, dim)
} backend_moe;

// Gated DeltaNet over the sequences of a batch (kernels/deltanet.h): each sequence's rows through
// the conv window and the delta rule, starting from its own state, which is updated.
typedef struct backend_gdn {
    kern_gdn_geom geom;
    int n_seqs;
    const int32_t *q_start;       // (n_seqs + 1) sequence s owns rows [q_start[s], q_start[s+1])
    const int32_t *positions;     // (T) each row's absolute position (the kernel's chunks follow them)
    float *const *conv_state;     // (n_seqs) each sequence's conv window (d_conv - 1, conv_dim)
    float *const *ssm_state;      // (n_seqs) its delta-rule states (n_v_heads, kern_gdn_head_floats)
    const float *conv_w;          // (conv_dim, d_conv)
    const float *dt, *a;          // (n_v_heads) decay bias, -exp(A_log)
    float *qkv;                   // (T, conv_dim) the q/k/v projections; overwritten by the conv output
    const float *alpha, *beta;    // (T, n_v_heads) raw decay / write-strength projections
    float *out;                   // (T, n_v_heads * head_dim)
    // checkpoints (prefix caching): sequence s's state after its first ckpt_rows[s] rows (0 = none)
    // is also copied to ckpt_conv[s] / ckpt_ssm[s] (shaped like its state); ckpt_rows NULL = none
    const int32_t *ckpt_rows;     // (n_seqs)
    float *const *ckpt_conv;      // (n_seqs)
    float *const *ckpt_ssm;       // (n_seqs)
    // rollback points (speculative decoding): where rb_conv[s] is set, sequence s's state after each
    // of its rows j but the last is also copied to rb_conv[s] / rb_ssm[s] + j states (consecutive
    // slots of one layer); rb_conv NULL = none
    float *const *rb_conv;        // (n_seqs) or NULL
    float *const *rb_ssm;         // (n_seqs)
} backend_gdn;

typedef struct backend_vtbl {
    void (*free)(backend *be);
    tv_status (*prepare)(backend *be, const tv_tensor *const *w, int n_w, int max_tokens, tv_error *err);
    void (*matmul)(backend *be, const tv_tensor *const *w, float *const *y, int n_w, const float *x, int n_tok);
    tv_status (*attention)(backend *be, const tv_attn_args *a, tv_error *err);
    void (*embed)(backend *be, const tv_tensor *table, const int32_t *ids, int n, float *x);
    void (*kv_write)(backend *be, const tv_attn_geom *g, void *k_pool, void *v_pool, const int64_t *slots, int n_tok,
                     const float *k, const float *v);
    void (*rmsnorm)(backend *be, float *y, const float *x, const float *w, int n_rows, int n, float eps);
    void (*rope)(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads, int n_kv_heads,
                 int head_dim, int n_rot);
    void (*swiglu)(backend *be, float *g, const float *u, int n_rows, int n);
    void (*add)(backend *be, float *y, const float *x, int n_rows, int n);
    void (*geglu)(backend *be, float *g, const float *u, int n_rows, int n);
    void (*softcap)(backend *be, float *y, int n_rows, int n, float cap);
    void (*scale)(backend *be, float *y, int n_rows, int n, float factor);
    // families beyond llama (qwen, granite, mistral3, ...): NeoX RoPE, bias rows, per-row scaling
    void (*rope_neox)(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads, int n_kv_heads,
                      int head_dim, int n_rot);
    void (*add_row)(backend *be, float *y, const float *b, int n_rows, int n);
    void (*scale_rows)(backend *be, float *y, const float *s, int n_rows, int n);
    // mixture of experts: the router, the expert FFN, the shared expert's sigmoid gate
    void (*moe_route)(backend *be, const tv_route_opts *o, float *logits, int n_rows, int32_t *ids, float *w);
    void (*moe_ffn)(backend *be, const backend_moe *a);
    void (*sigmoid)(backend *be, float *y, int n_rows, int n);
    // hybrid models: gated attention output, Gated DeltaNet
    void (*mul_sigmoid)(backend *be, float *y, const float *g, int n_rows, int n);
    void (*gdn)(backend *be, const backend_gdn *a);
    // latent attention (deepseek2): one matrix per head of a 3-D weight over grouped rows
    void (*matmul_grouped)(backend *be, const tv_tensor *w, float *y, const float *x, int n_x, const int32_t *x_row,
                           const int32_t *off);
} backend_vtbl;

struct backend {
    const backend_vtbl *vt;
    const char *name;   // CPU: the kernel path, "generic" | "avx2" | "avx512"
};

// A CPU backend computing with path cpu_path (NULL/"" = the best this CPU supports, or "generic" |
// "avx2" | "avx2-novnni" | "avx512" | "avx512-novnni"; kern_table_init) on n_threads threads
// (the caller's thread is one of them). NULL + err: unknown or unsupported path
// (TV_ERR_INVALID / TV_ERR_UNSUPPORTED), bad thread count, out of memory.
backend *backend_cpu_create(const char *cpu_path, int n_threads, tv_error *err);
static inline void backend_free(backend *be) { if (be) be->vt->free(be); }
static inline const char *backend_name(const backend *be) { return be->name; }

// The forward pass will multiply these weights by up to max_tokens activation rows: the backend
// sizes its scratch for that (a device backend would upload them). For 3-D expert tensors
// max_tokens counts grouped rows (tokens times experts used). May be called again; it only grows.
// TV_ERR_NOMEM on failure.
static inline tv_status backend_prepare(backend *be, const tv_tensor *const *w, int n_w, int max_tokens,
                                        tv_error *err) {
    return be->vt->prepare(be, w, n_w, max_tokens, err);
}
// y[i] (n_tok, w[i]->ne[1]) = x (n_tok, w[i]->ne[0]) · w[i]ᵀ for i < n_w <= TV_MATMUL_MAX, all w[i]
// of one row length (Q, K, V of one input; gate and up). Bits as kern_matmul's on this path.
// n_tok at most the max_tokens of backend_prepare, the weights among those prepared.
static inline void backend_matmul(backend *be, const tv_tensor *const *w, float *const *y, int n_w, const float *x,
                                  int n_tok) {
    be->vt->matmul(be, w, y, n_w, x, n_tok);
}
// Causal attention (attn_run's contract; a->ops is ignored: the backend uses its own).
static inline tv_status backend_attention(backend *be, const tv_attn_args *a, tv_error *err) {
    return be->vt->attention(be, a, err);
}
// x (n, table->ne[0]) = rows ids[0..n) of table, as f32.
static inline void backend_embed(backend *be, const tv_tensor *table, const int32_t *ids, int n, float *x) {
    be->vt->embed(be, table, ids, n, x);
}
// Writes token t's K and V rows (k, v: (n_tok, n_kv_heads*head_dim) f32) into slot slots[t] =
// block * block_size + offset of the layer pools (n_blocks, n_kv_heads, block_size, head_dim),
// f32 or f16 (g->kv_is_f32; f16 rounds to nearest even, the same bits on every path). v and
// v_pool NULL: K only (latent attention, whose values are part of its keys).
static inline void backend_kv_write(backend *be, const tv_attn_geom *g, void *k_pool, void *v_pool,
                                    const int64_t *slots, int n_tok, const float *k, const float *v) {
    be->vt->kv_write(be, g, k_pool, v_pool, slots, n_tok, k, v);
}
// Row-wise ops over (n_rows, n) f32 rows; each row's bits do not depend on n_rows or the threads.
// y = rmsnorm(x) * w (w: (n)); y and x do not overlap.
static inline void backend_rmsnorm(backend *be, float *y, const float *x, const float *w, int n_rows, int n,
                                   float eps) {
    be->vt->rmsnorm(be, y, x, w, n_rows, n, eps);
}
// Rotates q (n_rows, n_heads*head_dim) and k (n_rows, n_kv_heads*head_dim) in place, row r with
// the table cs + r * 2*n_rot (rope_table).
static inline void backend_rope(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads,
                                int n_kv_heads, int head_dim, int n_rot) {
    be->vt->rope(be, q, k, cs, n_rows, n_heads, n_kv_heads, head_dim, n_rot);
}
// g = silu(g) * u
static inline void backend_swiglu(backend *be, float *g, const float *u, int n_rows, int n) {
    be->vt->swiglu(be, g, u, n_rows, n);
}
// y += x
static inline void backend_add(backend *be, float *y, const float *x, int n_rows, int n) {
    be->vt->add(be, y, x, n_rows, n);
}
// g = gelu_tanh(g) * u (GeGLU)
static inline void backend_geglu(backend *be, float *g, const float *u, int n_rows, int n) {
    be->vt->geglu(be, g, u, n_rows, n);
}
// y = cap * tanh(y / cap), cap > 0 (logit soft-capping)
static inline void backend_softcap(backend *be, float *y, int n_rows, int n, float cap) {
    be->vt->softcap(be, y, n_rows, n, cap);
}
// y *= factor (one rounding per element: the same bits on every path)
static inline void backend_scale(backend *be, float *y, int n_rows, int n, float factor) {
    be->vt->scale(be, y, n_rows, n, factor);
}
// backend_rope with the NeoX pairing (i, i + n_rot/2) and a rope_table_neox table per row.
static inline void backend_rope_neox(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads,
                                     int n_kv_heads, int head_dim, int n_rot) {
    be->vt->rope_neox(be, q, k, cs, n_rows, n_heads, n_kv_heads, head_dim, n_rot);
}
// every row of y += b (n): a bias
static inline void backend_add_row(backend *be, float *y, const float *b, int n_rows, int n) {
    be->vt->add_row(be, y, b, n_rows, n);
}
// row r of y *= s[r] (s: (n_rows)), as backend_scale
static inline void backend_scale_rows(backend *be, float *y, const float *s, int n_rows, int n) {
    be->vt->scale_rows(be, y, s, n_rows, n);
}

// Row r of logits (n_rows, o->n_expert) is routed (kern_route): its probs replace it, its experts and
// weights go to ids and w (n_rows, o->n_used). The same bits on every path.
static inline void backend_moe_route(backend *be, const tv_route_opts *o, float *logits, int n_rows, int32_t *ids,
                                     float *w) {
    be->vt->moe_route(be, o, logits, n_rows, ids, w);
}
// out row t = sum over j < k, in order, of w[t, j] * down_e(act(gate_e · x_t) * (up_e · x_t)), e =
// ids[t, j]: rows routed to one expert run as one grouped GEMM (kern_matmul_experts), each
// element's bits independent of the rest of the batch. The experts must have been prepared for
// T * k rows.
static inline void backend_moe_ffn(backend *be, const backend_moe *a) { be->vt->moe_ffn(be, a); }
// y = sigmoid(y) computed as llama.cpp's qwen2moe does it: silu(y) / y = (y / (1 + e^-y)) / y
static inline void backend_sigmoid(backend *be, float *y, int n_rows, int n) { be->vt->sigmoid(be, y, n_rows, n); }
// y *= 1 / (1 + exp(-g)) (ggml_sigmoid then ggml_mul: the gated attention of qwen35 / qwen3next)
static inline void backend_mul_sigmoid(backend *be, float *y, const float *g, int n_rows, int n) {
    be->vt->mul_sigmoid(be, y, g, n_rows, n);
}
// Gated DeltaNet (backend_gdn): every sequence's conv and recurrence; a sequence's bits do not
// depend on the others or on the threads.
static inline void backend_gdn_run(backend *be, const backend_gdn *a) { be->vt->gdn(be, a); }
// w is 3-D: ne[2] matrices of (ne[1] rows, ne[0]). Grouped rows p in [off[g], off[g+1]) (off: ne[2] + 1
// ascending offsets from 0) use matrix g: y (off[ne[2]], ne[1]) row p = x[x_row[p]] · (matrix g)ᵀ,
// x (n_x, ne[0]). kern_matmul_experts underneath: x is converted once, each matrix streamed once,
// every element as kern_matmul computes it. w must have been prepared for off[ne[2]] rows.
static inline void backend_matmul_grouped(backend *be, const tv_tensor *w, float *y, const float *x, int n_x,
                                          const int32_t *x_row, const int32_t *off) {
    be->vt->matmul_grouped(be, w, y, x, n_x, x_row, off);
}

#endif
