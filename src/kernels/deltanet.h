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

// The chunked form runs on chunks of KERN_GDN_CHUNK tokens at absolute positions [k * C, (k + 1) * C)
// of a sequence, whatever rows a call brings: a head's state is the matrix at the last chunk
// boundary plus the chunk's tokens so far (pending), so a token's arithmetic depends only on its
// position and the tokens before it, never on how the engine split the sequence into calls
// (prefill chunks, batches, decode steps, preemption, checkpoints, rollback all give the same bits).
// One value head's state (kern_gdn_head_floats floats):
//   S   (head_dim, head_dim)    the matrix after the last boundary, row j (value) over key index i
//   k   (KERN_GDN_CHUNK, head_dim)   the pending tokens' keys        } entries [0, pos % C) valid,
//   d   (KERN_GDN_CHUNK, head_dim)   their delta-rule updates         } the rest zero (so equal
//   g   (KERN_GDN_CHUNK)             their cumulative log-decays      } states are equal bytes)
// A zeroed state is the state at position 0. The state after a token is S_eff = e^g[m-1] S +
// sum_{s<m} e^(g[m-1] - g[s]) d_s k_sᵀ (m = pos % C; m = 0: S; in the reference's orientation).
#define KERN_GDN_CHUNK 32
static inline size_t kern_gdn_head_floats(int head_dim) {
    return (size_t)head_dim * head_dim + (size_t)KERN_GDN_CHUNK * (2 * (size_t)head_dim + 1);
}

// The kernel of a path: n tokens of value head h (ref_gdn_head's arguments; state is the head's
// kern_gdn_head_floats block) whose first token is at absolute position pos. Outputs and the
// effective state equal ref_gdn_head's up to float rounding; a split of the n tokens into calls
// (pos advancing) gives the same bits.
typedef void (*kern_gdn_head_fn)(const kern_gdn_geom *g, int h, float *state, int64_t pos, const float *qkv,
                                 const float *alpha, const float *beta, const float *dt, const float *a, float *o,
                                 int n);
typedef struct kern_gdn_ops {
    const char *name;        // "generic" | "avx2" | "avx512"
    kern_gdn_head_fn head;
} kern_gdn_ops;
// The kernels of a kern_table path ("generic", "avx2*", "avx512*", "amx": AVX-512's); the scalar
// ones for NULL or a path this build lacks (the caller's kern_table_init has checked the CPU).
const kern_gdn_ops *kern_gdn_ops_for(const char *path);

#endif
