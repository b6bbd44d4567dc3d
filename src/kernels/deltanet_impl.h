// deltanet_impl.h — the Gated DeltaNet head kernels, written once over three vector primitives and
// compiled per ISA (deltanet.c: scalar; x86/deltanet_avx2.c, x86/deltanet_avx512.c). Private to
// those files. Before including it, a file defines:
//   GDN_NAME(x)                      the kernel names' suffix (x##_ref, x##_avx2, ...)
//   static float gdn_dot(const float *a, const float *b, int n)     sum a[i] * b[i]
//   static void gdn_axpy(float *y, float a, const float *x, int n)  y += a * x
//   static void gdn_scale(float *y, float a, int n)                 y *= a
//   static void gdn_xmat(float *c, const float *const *x, int nr, const float *B, int d)
//       c (nr, d): row r = sum_{i<d} x[r][i] B[i] (B (d, d), rows over j; i ascending)
//     or instead, for a register-blocked gdn_xmat from this file's stripe driver:
//   GDN_XMAT_STRIPE                  columns of c per block
//   static void xmat_block(float *c, const float *const *x, int R, const float *B, int d, int j)
//       rows r < R (R <= 4) of c, columns [j, j + GDN_XMAT_STRIPE) clipped to d
//   static void gdn_rank(float *B, int d, float e, const float *coef, const float *D, int n)
//       B[i] = e B[i] + sum_{s<n} coef[i n + s] D[s]   (B (d, d), D (n, d); s ascending)
//
// The chunked form (one chunk of C = KERN_GDN_CHUNK tokens of one value head at absolute positions
// [k C, (k + 1) C); S0 the state before it, rows j over the key index; gc[t] = g_0 + .. + g_t the
// chunk's cumulative log-decay, b_t = sigmoid(beta_t)):
//   the delta rule's update at token t is  delta_t = b_t (v_t - exp(g_t) S_{t-1} k_t), and
//   S_{t-1} = exp(gc[t-1]) S0 + sum_{s<t} exp(gc[t-1] - gc[s]) delta_s k_sᵀ, so
//     delta_t = b_t (v_t - exp(gc[t]) S0 k_t) - sum_{s<t} b_t exp(gc[t] - gc[s]) (k_s·k_t) delta_s
//   (a unit lower-triangular system, solved by forward substitution over the chunk), and
//     o_t  = (exp(gc[t]) S0 q_t + sum_{s<=t} exp(gc[t] - gc[s]) (k_s·q_t) delta_s) / sqrt(d)
//     S_C  = exp(gc[C-1]) S0 + sum_s exp(gc[C-1] - gc[s]) delta_s k_sᵀ.
// Every exponent is <= 0 (decays multiply), so nothing overflows. A call's tokens join the chunk's
// pending entries (deltanet.h): each one's delta and output are computed the same way whether the
// earlier entries came in this call or an earlier one, and S0 is updated only when the chunk is
// full, so the bits depend on positions alone. The state matrix is kept transposed (row i: key
// index, over the value index j), so both passes over it are matrix products with the value index
// in the vector lanes (gdn_xmat: S0 against a call's keys and queries; gdn_rank: the chunk's
// update): no horizontal sums, S0 read once per call and written once per chunk. Results equal the
// token-by-token rule up to float rounding (tests/test_deltanet.c: relative 2e-5).
#include <math.h>
#include <string.h>

#ifdef GDN_XMAT_STRIPE
// gdn_xmat over stripes of columns: a stripe of B stays in L1 across the blocks of 4 rows.
static void gdn_xmat(float *c, const float *const *x, int nr, const float *B, int d) {
    for (int j = 0; j < d; j += GDN_XMAT_STRIPE) {
        int r = 0;
        for (; r + 4 <= nr; r += 4) xmat_block(c + (size_t)r * d, x + r, 4, B, d, j);
        switch (nr - r) {   // constant R: each block's accumulators stay in registers
        case 3: xmat_block(c + (size_t)r * d, x + r, 3, B, d, j); break;
        case 2: xmat_block(c + (size_t)r * d, x + r, 2, B, d, j); break;
        case 1: xmat_block(c + (size_t)r * d, x + r, 1, B, d, j); break;
        default: break;
        }
    }
}
#endif

// The decay exponent g (<= 0) and write strength b of token t, value head h.
static inline void GDN_NAME(gdn_gates)(const kern_gdn_geom *g, int h, const float *alpha, const float *beta,
                                       const float *dt, const float *a, int t, float *gexp, float *b) {
    const float ab = alpha[(size_t)t * g->n_v_heads + h] + dt[h];
    const float sp = ab > 20.0f ? ab : logf(1.0f + expf(ab));
    *gexp = sp * a[h];
    *b = 1.0f / (1.0f + expf(-beta[(size_t)t * g->n_v_heads + h]));
}

// The parts of a head's state (deltanet.h).
typedef struct GDN_NAME(gdn_parts) {
    float *S;    // (d, d) transposed: row i (key index) over the value index j
    float *k;    // (C, d) pending keys
    float *dl;   // (C, d) pending updates
    float *g;    // (C) pending cumulative log-decays
} GDN_NAME(gdn_parts);

static inline GDN_NAME(gdn_parts) GDN_NAME(gdn_split)(float *state, int d) {
    const size_t dd = (size_t)d * d, cdd = (size_t)KERN_GDN_CHUNK * d;
    return (GDN_NAME(gdn_parts)){state, state + dd, state + dd + cdd, state + dd + 2 * cdd};
}

// Tokens u < n as the chunk's entries m + u (m + n <= C; rows of qkv, alpha, beta and o start at
// token 0): their keys, updates and decays join the pending lists, their outputs are written.
static void GDN_NAME(gdn_rows)(const kern_gdn_geom *g, int h, GDN_NAME(gdn_parts) p, int m, const float *qkv,
                               const float *alpha, const float *beta, const float *dt, const float *a, float *o,
                               int n) {
    const int d = g->head_dim, kh = kern_gdn_k_head(g, h);
    const size_t cd = (size_t)kern_gdn_conv_dim(g), key_dim = (size_t)g->n_k_heads * d;
    const size_t o_stride = (size_t)g->n_v_heads * d;
    const float scale = 1.0f / sqrtf((float)d);
    float bt[KERN_GDN_CHUNK], e[KERN_GDN_CHUNK];
    const float *qs[KERN_GDN_CHUNK], *vs[KERN_GDN_CHUNK];
    float acc = m > 0 ? p.g[m - 1] : 0.0f;
    for (int u = 0; u < n; u++) {
        float ge;
        GDN_NAME(gdn_gates)(g, h, alpha, beta, dt, a, u, &ge, &bt[u]);
        acc += ge;
        p.g[m + u] = acc;
        e[u] = expf(acc);
        const float *row = qkv + (size_t)u * cd;
        qs[u] = row + (size_t)kh * d;
        vs[u] = row + 2 * key_dim + (size_t)h * d;
        memcpy(p.k + (size_t)(m + u) * d, row + key_dim + (size_t)kh * d, (size_t)d * sizeof(float));
    }
    // against the chunk's initial state: delta_t = b_t (v_t - e^gc S0 k_t), o_t = e^gc S0 q_t
    float sk[2 * KERN_GDN_CHUNK * KERN_GDN_MAX_HEAD];   // (2n, d): S0 k_u for u < n, then S0 q_u
    const float *xs[2 * KERN_GDN_CHUNK];
    for (int u = 0; u < n; u++) {
        xs[u] = p.k + (size_t)(m + u) * d;
        xs[n + u] = qs[u];
    }
    gdn_xmat(sk, xs, 2 * n, p.S, d);
    for (int u = 0; u < n; u++) {
        float *dl = p.dl + (size_t)(m + u) * d, *ot = o + (size_t)u * o_stride + (size_t)h * d;
        const float *s_k = sk + (size_t)u * d, *s_q = sk + (size_t)(n + u) * d;
        for (int j = 0; j < d; j++) {
            dl[j] = bt[u] * (vs[u][j] - e[u] * s_k[j]);
            ot[j] = e[u] * s_q[j];
        }
    }
    // within the chunk: forward substitution over every earlier entry, then the outputs' intra part
    for (int u = 0; u < n; u++) {
        const int t = m + u;
        float *dl = p.dl + (size_t)t * d;
        const float *kt = p.k + (size_t)t * d;
        for (int s = 0; s < t; s++)
            gdn_axpy(dl, -bt[u] * expf(p.g[t] - p.g[s]) * gdn_dot(p.k + (size_t)s * d, kt, d), p.dl + (size_t)s * d, d);
    }
    for (int u = 0; u < n; u++) {
        const int t = m + u;
        float *ot = o + (size_t)u * o_stride + (size_t)h * d;
        for (int s = 0; s <= t; s++)
            gdn_axpy(ot, expf(p.g[t] - p.g[s]) * gdn_dot(p.k + (size_t)s * d, qs[u], d), p.dl + (size_t)s * d, d);
        gdn_scale(ot, scale, d);
    }
}

// A full chunk: S = e^g[C-1] S + sum_s e^(g[C-1] - g[s]) d_s k_sᵀ, and the pending lists emptied.
static void GDN_NAME(gdn_flush)(GDN_NAME(gdn_parts) p, int d) {
    const float last = p.g[KERN_GDN_CHUNK - 1], e_last = expf(last);
    float w[KERN_GDN_CHUNK];
    for (int s = 0; s < KERN_GDN_CHUNK; s++) w[s] = expf(last - p.g[s]);
    float coef[KERN_GDN_MAX_HEAD * KERN_GDN_CHUNK];   // (d, C): row i (key index) w_s k_s[i]
    for (int i = 0; i < d; i++)
        for (int s = 0; s < KERN_GDN_CHUNK; s++) coef[(size_t)i * KERN_GDN_CHUNK + s] = w[s] * p.k[(size_t)s * d + i];
    gdn_rank(p.S, d, e_last, coef, p.dl, KERN_GDN_CHUNK);
    memset(p.k, 0, (size_t)KERN_GDN_CHUNK * (2 * (size_t)d + 1) * sizeof(float));
}

// kern_gdn_head_fn: the tokens in the pieces their absolute chunks cut them into.
static void GDN_NAME(kern_gdn_head)(const kern_gdn_geom *g, int h, float *state, int64_t pos, const float *qkv,
                                    const float *alpha, const float *beta, const float *dt, const float *a, float *o,
                                    int n) {
    const size_t cd = (size_t)kern_gdn_conv_dim(g), H = (size_t)g->n_v_heads;
    const GDN_NAME(gdn_parts) p = GDN_NAME(gdn_split)(state, g->head_dim);
    int m = (int)(pos % KERN_GDN_CHUNK);
    for (int t0 = 0; t0 < n;) {
        const int c = n - t0 < KERN_GDN_CHUNK - m ? n - t0 : KERN_GDN_CHUNK - m;
        GDN_NAME(gdn_rows)(g, h, p, m, qkv + (size_t)t0 * cd, alpha + (size_t)t0 * H, beta + (size_t)t0 * H, dt, a,
                           o + (size_t)t0 * H * g->head_dim, c);
        t0 += c;
        m += c;
        if (m == KERN_GDN_CHUNK) {
            GDN_NAME(gdn_flush)(p, g->head_dim);
            m = 0;
        }
    }
}
