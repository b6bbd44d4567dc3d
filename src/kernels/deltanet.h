// deltanet.h — Gated DeltaNet, the linear attention of the hybrid Qwen models (qwen35, qwen3next,
// qwen35moe), as llama.cpp computes it (ggml_ssm_conv + ggml_l2_norm + ggml_gated_delta_net):
//
//   per token t of a sequence, with x_t = the layer's (q, k, v) projection row (conv_dim):
//     c_t   = silu(sum_{j < d_conv} w[:, j] * x_{t - d_conv + 1 + j})        causal depthwise conv
//     q, k  = l2norm of each of the n_k_heads heads of c_t's q and k parts (eps: max(|x|, eps))
//     per value head h (its q/k head kern_gdn_k_head: h % n_k_heads, or h / (n_v_heads / n_k_heads)):
//       g     = softplus(alpha_t[h] + dt[h]) * a[h]                          (a < 0: a decay)
//       b     = sigmoid(beta_t[h])
//       S     = exp(g) * S                                                  S: (head_dim, head_dim)
//       S[j] += b * (v[j] - S[j]·k) * k          row j (a value index) over the key index
//       o[j]  = (S[j]·q) / sqrt(head_dim)
//
// The state of one sequence in one layer: the last d_conv - 1 inputs (the conv window) and S per
// value head. Everything is f32; the order of every sum is fixed (index order), so a sequence's
// results do not depend on the batch it runs in or on the thread count.
#ifndef TV_DELTANET_H
#define TV_DELTANET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KERN_GDN_MAX_CONV 8     // widest conv kernel supported (Qwen's is 4)
#define KERN_GDN_MAX_HEAD 256   // largest head supported (Qwen3.5 / Qwen3-Next: 128)
#define KERN_GDN_MAX_CHUNK 32   // tokens per chunk of the chunked form at most

typedef struct kern_gdn_geom {
    int n_k_heads, n_v_heads, head_dim, d_conv;   // n_v_heads % n_k_heads == 0, 2 <= d_conv <= KERN_GDN_MAX_CONV
    float eps;                                    // l2norm epsilon (the model's RMSNorm epsilon)
    bool is_k_grouped;    // value heads share q/k heads in consecutive groups (qwen3next's repeat-interleave:
                          // k0 v0, k0 v1, k1 v2, k1 v3), else in turn (qwen35's tiling: k0 v0, k1 v1, k0 v2, k1 v3)
} kern_gdn_geom;

// The q/k head value head h reads.
static inline int kern_gdn_k_head(const kern_gdn_geom *g, int h) {
    return g->is_k_grouped ? h / (g->n_v_heads / g->n_k_heads) : h % g->n_k_heads;
}

// conv_dim: q (n_k_heads * head_dim), k (the same), v (n_v_heads * head_dim), in that order.
static inline int kern_gdn_conv_dim(const kern_gdn_geom *g) {
    return (2 * g->n_k_heads + g->n_v_heads) * g->head_dim;
}

// One sequence's n tokens through the convolution, in place: x (n, conv_dim) holds the raw
// projections and receives silu(conv) with q and k l2-normalised per head; win (d_conv - 1,
// conv_dim), oldest row first, holds the inputs before x[0] and is updated to the last d_conv - 1
// inputs. w: (conv_dim, d_conv) the conv1d weights.
void ref_gdn_conv(const kern_gdn_geom *g, float *win, const float *w, float *x, int n);

// One value head h of one sequence over its n tokens, recurrently: qkv (n, conv_dim) ref_gdn_conv's
// output, alpha / beta (n rows of stride n_v_heads) the raw projections, dt / a (n_v_heads),
// state (head_dim, head_dim) updated in place; o (n rows of stride n_v_heads * head_dim) receives
// head h's outputs.
void ref_gdn_head(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                  const float *beta, const float *dt, const float *a, float *o, int n);

// The kernels of a path: n tokens of value head h (ref_gdn_head's arguments) in chunks of `chunk`
// (1 <= chunk <= KERN_GDN_MAX_CHUNK) with the chunked form (deltanet_impl.h: parallel within a
// chunk, recurrent across chunks), a chunk of one token with the recurrent rule. Results equal
// ref_gdn_head's up to float rounding, whatever the chunk size.
typedef void (*kern_gdn_head_fn)(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                                 const float *beta, const float *dt, const float *a, float *o, int n, int chunk);
typedef struct kern_gdn_ops {
    const char *name;        // "generic" | "avx2" | "avx512"
    kern_gdn_head_fn head;
} kern_gdn_ops;
// The kernels of a kern_table path ("generic", "avx2*", "avx512*", "amx": AVX-512's); the scalar
// ones for NULL or a path this build lacks (the caller's kern_table_init has checked the CPU).
const kern_gdn_ops *kern_gdn_ops_for(const char *path);

#endif
