// deltanet.c — scalar reference of Gated DeltaNet (deltanet.h): the causal conv window and the
// token-by-token gated delta rule.
#include "kernels/deltanet.h"

#include <math.h>
#include <string.h>

static float silu(float x) { return x / (1.0f + expf(-x)); }

void ref_gdn_conv(const kern_gdn_geom *g, float *win, const float *w, float *x, int n) {
    const int cd = kern_gdn_conv_dim(g), d = g->d_conv, nw = d - 1;
    for (int c = 0; c < cd; c++) {
        float old[KERN_GDN_MAX_CONV];   // the window's column c: inputs at t = -nw .. -1
        for (int i = 0; i < nw; i++) old[i] = win[(size_t)i * cd + c];
        // the new window: the last nw inputs of [old, x], read before x is overwritten
        for (int i = 0; i < nw; i++) {
            const int t = n - nw + i;   // input index, < 0: from the old window
            win[(size_t)i * cd + c] = t >= 0 ? x[(size_t)t * cd + c] : old[nw + t];
        }
        const float *wc = w + (size_t)c * d;
        for (int t = n - 1; t >= 0; t--) {   // descending: rows below t are still raw inputs
            float sum = 0.0f;
            for (int j = 0; j < d; j++) {
                const int ti = t - nw + j;
                sum += (ti >= 0 ? x[(size_t)ti * cd + c] : old[nw + ti]) * wc[j];
            }
            x[(size_t)t * cd + c] = silu(sum);
        }
    }
    const int hd = g->head_dim;
    for (int t = 0; t < n; t++)   // q and k heads: x / max(|x|, eps)
        for (int hh = 0; hh < 2 * g->n_k_heads; hh++) {
            float *v = x + (size_t)t * cd + (size_t)hh * hd;
            double ss = 0;
            for (int i = 0; i < hd; i++) ss += (double)(v[i] * v[i]);
            const float scale = 1.0f / fmaxf(sqrtf((float)ss), g->eps);
            for (int i = 0; i < hd; i++) v[i] *= scale;
        }
}

void ref_gdn_head(const kern_gdn_geom *g, int h, float *state, const float *qkv, const float *alpha,
                  const float *beta, const float *dt, const float *a, float *o, int n) {
    const int hd = g->head_dim, cd = kern_gdn_conv_dim(g), kh = kern_gdn_k_head(g, h);
    const size_t key_dim = (size_t)g->n_k_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < n; t++) {
        const float *row = qkv + (size_t)t * cd;
        const float *q = row + (size_t)kh * hd, *k = row + key_dim + (size_t)kh * hd;
        const float *v = row + 2 * key_dim + (size_t)h * hd;
        const float ab = alpha[(size_t)t * g->n_v_heads + h] + dt[h];
        const float sp = ab > 20.0f ? ab : logf(1.0f + expf(ab));
        const float decay = expf(sp * a[h]);
        const float b = 1.0f / (1.0f + expf(-beta[(size_t)t * g->n_v_heads + h]));
        float *out = o + (size_t)t * g->n_v_heads * hd + (size_t)h * hd;
        for (int j = 0; j < hd; j++) {
            float *sj = state + (size_t)j * hd;
            float sk = 0.0f;
            for (int i = 0; i < hd; i++) {
                sj[i] *= decay;
                sk += sj[i] * k[i];
            }
            const float dj = (v[j] - sk) * b;
            float sq = 0.0f;
            for (int i = 0; i < hd; i++) {
                sj[i] += dj * k[i];
                sq += sj[i] * q[i];
            }
            out[j] = sq * scale;
        }
    }
}

// ---- the chunked kernel of each path (deltanet_impl.h), scalar here

static float gdn_dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void gdn_axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void gdn_scale(float *y, float a, int n) {
    for (int i = 0; i < n; i++) y[i] *= a;
}

static void gdn_xmat(float *c, const float *const *x, int nr, const float *B, int d) {
    for (int r = 0; r < nr; r++) {
        float *cr = c + (size_t)r * d;
        memset(cr, 0, (size_t)d * sizeof(float));
        for (int i = 0; i < d; i++) gdn_axpy(cr, x[r][i], B + (size_t)i * d, d);
    }
}

static void gdn_rank(float *B, int d, float e, const float *coef, const float *D, int n) {
    for (int i = 0; i < d; i++) {
        float *bi = B + (size_t)i * d;
        gdn_scale(bi, e, d);
        for (int s = 0; s < n; s++) gdn_axpy(bi, coef[(size_t)i * n + s], D + (size_t)s * d, d);
    }
}

#define GDN_NAME(x) x##_ref
#include "kernels/deltanet_impl.h"
#undef GDN_NAME

#if defined(__x86_64__)
extern const kern_gdn_ops kern_gdn_ops_avx2, kern_gdn_ops_avx512;
#endif

static const kern_gdn_ops GDN_OPS_REF = {"generic", kern_gdn_head_ref};

const kern_gdn_ops *kern_gdn_ops_for(const char *path) {
#if defined(__x86_64__)
    if (path && (!strncmp(path, "avx512", 6) || !strcmp(path, "amx"))) return &kern_gdn_ops_avx512;
    if (path && !strncmp(path, "avx2", 4)) return &kern_gdn_ops_avx2;
#endif
    (void)path;
    return &GDN_OPS_REF;
}
