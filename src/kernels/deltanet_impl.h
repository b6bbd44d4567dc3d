// deltanet_impl.h — the Gated DeltaNet head kernels, written once over three vector primitives and
// compiled per ISA (deltanet.c: scalar; x86/deltanet_avx2.c, x86/deltanet_avx512.c). Private to
// those files. Before including it, a file defines:
//   GDN_NAME(x)                      the kernel names' suffix (x##_ref, x##_avx2, ...)
//   static float gdn_dot(const float *a, const float *b, int n)     sum a[i] * b[i]
//   static void gdn_axpy(float *y, float a, const float *x, int n)  y += a * x
//   static void gdn_scale(float *y, float a, int n)                 y *= a
//
// The chunked form (one chunk of C tokens of one value head; S0 the state before it, rows j over
// the key index; gc[t] = g_0 + .. + g_t the chunk's cumulative log-decay, b_t = sigmoid(beta_t)):
//   the delta rule's update at token t is  delta_t = b_t (v_t - exp(g_t) S_{t-1} k_t), and
//   S_{t-1} = exp(gc[t-1]) S0 + sum_{s<t} exp(gc[t-1] - gc[s]) delta_s k_sᵀ, so
//     delta_t = b_t (v_t - exp(gc[t]) S0 k_t) - sum_{s<t} b_t exp(gc[t] - gc[s]) (k_s·k_t) delta_s
//   (a unit lower-triangular system, solved by forward substitution over the chunk), and
//     o_t  = (exp(gc[t]) S0 q_t + sum_{s<=t} exp(gc[t] - gc[s]) (k_s·q_t) delta_s) / sqrt(d)
//     S_C  = exp(gc[C-1]) S0 + sum_s exp(gc[C-1] - gc[s]) delta_s k_sᵀ.
// Every exponent is <= 0 (decays multiply), so nothing overflows. The state is read twice and
// written once per chunk instead of twice per token; results equal the token-by-token rule up to
// float rounding (tests/test_deltanet.c: relative 2e-5 on states and outputs, measured <= 6e-7).
#include <math.h>

// The decay exponent g (<= 0) and write strength b of token t, value head h.
static inline void GDN_NAME(gdn_gates)(const kern_gdn_geom *g, int h, const float *alpha, const float *beta,
                                       const float *dt, const float *a, int t, float *gexp, float *b) {
    const float ab = alpha[(size_t)t * g->n_v_heads + h] + dt[h];
    const float sp = ab > 20.0f ? ab : logf(1.0f + expf(ab));
    *gexp = sp * a[h];
    *b = 1.0f / (1.0f + expf(-beta[(size_t)t * g->n_v_heads + h]));
}

// One chunk of n <= KERN_GDN_MAX_CHUNK tokens (rows of qkv, alpha, beta, o start at the chunk).
static void GDN_NAME(gdn_chunk)(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                                const float *beta, const float *dt, const float *a, float *o, int n) {
    const int d = g->head_dim, kh = kern_gdn_k_head(g, h);
    const size_t cd = (size_t)kern_gdn_conv_dim(g), key_dim = (size_t)g->n_k_heads * d;
    const size_t o_stride = (size_t)g->n_v_heads * d;
    const float scale = 1.0f / sqrtf((float)d);
    float gc[KERN_GDN_MAX_CHUNK] = {0}, bt[KERN_GDN_MAX_CHUNK];
    float delta[KERN_GDN_MAX_CHUNK * KERN_GDN_MAX_HEAD];   // (n, d)
    const float *qs[KERN_GDN_MAX_CHUNK], *ks[KERN_GDN_MAX_CHUNK];
    float acc = 0.0f;
    for (int t = 0; t < n; t++) {
        float ge;
        GDN_NAME(gdn_gates)(g, h, alpha, beta, dt, a, t, &ge, &bt[t]);
        acc += ge;
        gc[t] = acc;
        const float *row = qkv + (size_t)t * cd;
        qs[t] = row + (size_t)kh * d;
        ks[t] = row + key_dim + (size_t)kh * d;
    }
    // against the chunk's initial state: delta_t = b_t (v_t - e^gc S0 k_t), o_t = e^gc S0 q_t
    for (int t = 0; t < n; t++) {
        const float *v = qkv + (size_t)t * cd + 2 * key_dim + (size_t)h * d;
        float *dl = delta + (size_t)t * d, *ot = o + (size_t)t * o_stride + (size_t)h * d;
        const float e = expf(gc[t]);
        for (int j = 0; j < d; j++) {
            const float *sj = state + (size_t)j * d;
            dl[j] = bt[t] * (v[j] - e * gdn_dot(sj, ks[t], d));
            ot[j] = e * gdn_dot(sj, qs[t], d);
        }
    }
    // within the chunk: forward substitution, then the outputs' intra-chunk part
    for (int t = 1; t < n; t++) {
        float *dl = delta + (size_t)t * d;
        for (int s = 0; s < t; s++)
            gdn_axpy(dl, -bt[t] * expf(gc[t] - gc[s]) * gdn_dot(ks[s], ks[t], d), delta + (size_t)s * d, d);
    }
    for (int t = 0; t < n; t++) {
        float *ot = o + (size_t)t * o_stride + (size_t)h * d;
        for (int s = 0; s <= t; s++)
            gdn_axpy(ot, expf(gc[t] - gc[s]) * gdn_dot(ks[s], qs[t], d), delta + (size_t)s * d, d);
        gdn_scale(ot, scale, d);
    }
    // the state after the chunk
    const float last = gc[n - 1], e_last = expf(last);
    float w[KERN_GDN_MAX_CHUNK];
    for (int s = 0; s < n; s++) w[s] = expf(last - gc[s]);
    for (int j = 0; j < d; j++) {
        float *sj = state + (size_t)j * d;
        gdn_scale(sj, e_last, d);
        for (int s = 0; s < n; s++) gdn_axpy(sj, w[s] * delta[(size_t)s * d + j], ks[s], d);
    }
}

// One token, recurrently (decode): S = e^g S; S[j] += b (v[j] - S[j]·k) k; o[j] = S[j]·q / sqrt(d).
static void GDN_NAME(gdn_token)(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                                const float *beta, const float *dt, const float *a, float *o) {
    const int d = g->head_dim, kh = kern_gdn_k_head(g, h);
    const size_t key_dim = (size_t)g->n_k_heads * d;
    const float *q = qkv + (size_t)kh * d, *k = qkv + key_dim + (size_t)kh * d;
    const float *v = qkv + 2 * key_dim + (size_t)h * d;
    float ge, b;
    GDN_NAME(gdn_gates)(g, h, alpha, beta, dt, a, 0, &ge, &b);
    const float decay = expf(ge), scale = 1.0f / sqrtf((float)d);
    float *out = o + (size_t)h * d;
    for (int j = 0; j < d; j++) {
        float *sj = state + (size_t)j * d;
        gdn_scale(sj, decay, d);
        gdn_axpy(sj, (v[j] - gdn_dot(sj, k, d)) * b, k, d);
        out[j] = gdn_dot(sj, q, d) * scale;
    }
}

// kern_gdn_head_fn: n tokens, in chunks of `chunk` (one token at a time when chunk is 1).
static void GDN_NAME(kern_gdn_head)(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                                    const float *beta, const float *dt, const float *a, float *o, int n, int chunk) {
    const size_t cd = (size_t)kern_gdn_conv_dim(g), H = (size_t)g->n_v_heads;
    for (int t0 = 0; t0 < n; t0 += chunk) {
        const int c = n - t0 < chunk ? n - t0 : chunk;
        if (c == 1)
            GDN_NAME(gdn_token)(g, h, state, qkv + (size_t)t0 * cd, alpha + (size_t)t0 * H, beta + (size_t)t0 * H, dt,
                                a, o + (size_t)t0 * H * g->head_dim);
        else
            GDN_NAME(gdn_chunk)(g, h, state, qkv + (size_t)t0 * cd, alpha + (size_t)t0 * H, beta + (size_t)t0 * H, dt,
                                a, o + (size_t)t0 * H * g->head_dim, c);
    }
}
