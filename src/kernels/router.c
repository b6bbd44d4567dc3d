// router.c — the scalar pieces of a mixture of experts (kernels.h): the router of one token
// (kern_route: llama.cpp's gating, top-k selection and weight normalization; n_expert values per
// token, nothing worth vectorizing) and gpt-oss's clamped SwiGLU (kern_swiglu_oai: the generic and
// AVX2 tv_ops.swiglu_oai, the reference of the AVX-512 one, which has its bits).
#include <math.h>

#include "kernels/kernels.h"
#include "util/status.h"

// y (n) = softmax(x) as ggml's CPU soft_max: exp(x - max) with expf, summed in double, times 1/sum.
static void softmax(float *y, const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        y[i] = expf(x[i] - mx);
        sum += (double)y[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) y[i] *= inv;
}

void kern_swiglu_oai(float *g, const float *u, int64_t n) {
    const float alpha = 1.702f, limit = 7.0f;
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i] < limit ? g[i] : limit;
        const float y = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
        const float glu = x / (1.0f + expf(alpha * -x));
        g[i] = glu * (y + 1.0f);
    }
}

void kern_route(const tv_route_opts *o, float *logits, int32_t *ids, float *w) {
    const int n = o->n_expert, k = o->n_used;
    TV_CHECK(k >= 1 && k <= n && n <= TV_MAX_EXPERTS);
    switch (o->gating) {
    case TV_GATING_SOFTMAX: softmax(logits, logits, n); break;
    case TV_GATING_SIGMOID:
        for (int i = 0; i < n; i++) logits[i] = 1.0f / (1.0f + expf(-logits[i]));
        break;
    case TV_GATING_SOFTMAX_WEIGHT: break;
    }
    // grouped routing: the experts of every group but the n_group_used best are ruled out (taken)
    bool taken[TV_MAX_EXPERTS] = {false};
    if (o->n_group > 1) {
        const int ng = o->n_group, per = n / ng;
        TV_CHECK(n % ng == 0 && per >= 2 && o->n_group_used >= 1 && o->n_group_used < ng &&
                 o->n_group_used * per >= k);
        float score[TV_MAX_EXPERTS];   // (ng) sum of the group's two largest selection scores
        for (int g = 0; g < ng; g++) {
            float a = -INFINITY, b = -INFINITY;   // largest, second largest
            for (int i = g * per; i < (g + 1) * per; i++) {
                const float v = o->bias ? logits[i] + o->bias[i] : logits[i];
                if (v > a) {
                    b = a;
                    a = v;
                } else if (v > b) {
                    b = v;
                }
            }
            score[g] = a + b;
        }
        bool keep[TV_MAX_EXPERTS] = {false};
        for (int j = 0; j < o->n_group_used; j++) {
            int best = -1;
            for (int g = 0; g < ng; g++)
                if (!keep[g] && (best < 0 || score[g] > score[best])) best = g;
            keep[best] = true;
        }
        for (int i = 0; i < n; i++) taken[i] = !keep[i / per];
    }
    // top-k by selection score, largest first, ties to the lower id: k passes of a strict maximum
    for (int j = 0; j < k; j++) {
        int best = -1;
        float best_v = 0;
        for (int i = 0; i < n; i++) {
            if (taken[i]) continue;
            const float v = o->bias ? logits[i] + o->bias[i] : logits[i];
            if (best < 0 || v > best_v) {
                best = i;
                best_v = v;
            }
        }
        taken[best] = true;
        ids[j] = best;
        w[j] = logits[best];
    }
    if (o->gating == TV_GATING_SOFTMAX_WEIGHT) softmax(w, w, k);
    if (o->norm) {
        double sum = 0;   // ggml_sum_rows: a double accumulator
        for (int j = 0; j < k; j++) sum += (double)w[j];
        float s = (float)sum;
        s = s < 6.103515625e-5f ? 6.103515625e-5f : s;
        for (int j = 0; j < k; j++) w[j] /= s;
    }
    if (o->scale != 0.0f && o->scale != 1.0f)
        for (int j = 0; j < k; j++) w[j] *= o->scale;
}
