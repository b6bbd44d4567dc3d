// sampler.c — see sampler.h for the processing order and its contract.
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/rng.h"
#include "util/status.h"

// Temperatures below this sample greedily (1/T must stay finite; the result is the argmax anyway).
#define TV_SAMPLER_MIN_TEMP 1e-5f

// One candidate token. Ordering everywhere: logit descending, then id ascending (a total order).
typedef struct {
    float logit;  // processed logit (after bias / penalties)
    float w;      // exp(logit - max_logit), the unnormalised probability at T = 1
    int32_t id;
} cand;

struct tv_sampler {
    int32_t n_vocab;
    // ---- parameters (validated copies) ----
    float temperature, top_p, min_p;
    int top_k;
    float rep_penalty, presence, frequency;
    int n_bias;
    int32_t *bias_ids;   // (n_bias)
    float *bias_vals;    // (n_bias)
    rng_xoshiro rng;     // seeded once from the request's seed
    rng_xoshiro draft_rng;  // speculative decoding: a sampled draft's draws (sampler_draft), from the same seed
    // ---- penalty history (allocated only when a penalty is active) ----
    bool has_penalties;
    uint8_t *seen;       // (n_vocab) bit 0: in prompt, bit 1: generated
    int32_t *n_gen;      // (n_vocab) times generated
    int32_t *uniq;       // (n_uniq) ids with seen != 0, in first-seen order
    int32_t n_uniq;
    // ---- scratch for non-greedy sampling ----
    cand *cands;         // (n_vocab), allocated when temperature > 0
    float *chunk_sums;   // (n_vocab / EXP_CHUNK + 1), same
    double preset_u;     // sampler_sample_plain: the draw to use instead of the RNG's next one
    bool has_preset_u;
};

// ============================ exp ============================
// exp(v) for v <= 0 (every use subtracts the maximum logit first); -inf and NaN give exactly 0.
// Range reduction v = n ln2 + r with ln2 split in two (Cody-Waite; ln2_hi has 16 significant bits
// so n * ln2_hi is exact), e^r by its Taylor series to degree 6 on |r| <= ln2/2, 2^n through the
// exponent bits. Max relative error 2.4e-7 against exp() in double (measured over [-87, 0]).
// The 4-lane version (GCC/clang vector extensions: SSE2 or NEON at the baseline ISA, no flags)
// runs the identical operation sequence, so both give the same bits for the same input.
#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f              // 1.5 * 2^23: adding it rounds to an integer
#define EXP_MAGIC_BITS 0x4B400000u
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187e-06f
#define EXP_C6 (1.0f / 720.0f)
// Horner steps of e^r from p = EXP_C6 (scalar or 4 lanes).
#define EXP_TAYLOR(p, r)                                                                \
    p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f; p = p * r + 1.0f / 6.0f;     \
    p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f

static inline float exp_neg(float v) {
    float t = v * EXP_LOG2E;
    t = t < -126.0f ? -126.0f : t;          // -inf lands here too; NaN is masked at the end
    float fi = t + EXP_MAGIC;
    uint32_t bits;
    memcpy(&bits, &fi, sizeof bits);
    uint32_t n = bits - EXP_MAGIC_BITS;     // round(t) as two's complement
    float nf = fi - EXP_MAGIC;
    float vc = v < -87.3f ? -87.3f : v;
    float r = (vc - nf * EXP_LN2_HI) - nf * EXP_LN2_LO;
    float p = EXP_C6;
    EXP_TAYLOR(p, r);
    uint32_t pb;
    memcpy(&pb, &p, sizeof pb);
    pb += n << 23;
    memcpy(&p, &pb, sizeof p);
    return v > -INFINITY ? p : 0.0f;
}

typedef float v4f __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_select(v4i mask, v4f a, v4f b) {   // mask ? a : b, per lane
    return (v4f)(((v4u)mask & (v4u)a) | (~(v4u)mask & (v4u)b));
}

static inline v4f exp_neg4(v4f v) {
    const v4f lo_t = { -126.0f, -126.0f, -126.0f, -126.0f }, lo_v = { -87.3f, -87.3f, -87.3f, -87.3f };
    v4f t = v * EXP_LOG2E;
    t = v4_select(t < lo_t, lo_t, t);
    v4f fi = t + EXP_MAGIC;
    v4u n = (v4u)fi - EXP_MAGIC_BITS;
    v4f nf = fi - EXP_MAGIC;
    v4f vc = v4_select(v < lo_v, lo_v, v);
    v4f r = (vc - nf * EXP_LN2_HI) - nf * EXP_LN2_LO;
    v4f p = { EXP_C6, EXP_C6, EXP_C6, EXP_C6 };
    EXP_TAYLOR(p, r);
    p = (v4f)((v4u)p + (n << 23));
    const v4f ninf = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    return (v4f)((v4u)p & (v4u)(v > ninf));
}

#define EXP_CHUNK 64   // elements per partial sum

// Sum of exp((x[i] - sub) * scale) over n, in double across chunks of EXP_CHUNK (float within);
// chunk_sums (n / EXP_CHUNK + 1 floats), when not NULL, receives each chunk's sum in order.
static double sum_exp(const float *x, int32_t n, float sub, float scale, float *chunk_sums) {
    double z = 0.0;
    int32_t i = 0, c = 0;
    for (; i + EXP_CHUNK <= n; i += EXP_CHUNK) {
        v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int j = 0; j < EXP_CHUNK; j += 16) {
            v4f x0, x1, x2, x3;
            memcpy(&x0, x + i + j, sizeof x0);
            memcpy(&x1, x + i + j + 4, sizeof x1);
            memcpy(&x2, x + i + j + 8, sizeof x2);
            memcpy(&x3, x + i + j + 12, sizeof x3);
            a0 += exp_neg4((x0 - sub) * scale);
            a1 += exp_neg4((x1 - sub) * scale);
            a2 += exp_neg4((x2 - sub) * scale);
            a3 += exp_neg4((x3 - sub) * scale);
        }
        v4f a = (a0 + a1) + (a2 + a3);
        float cs = (a[0] + a[1]) + (a[2] + a[3]);
        if (chunk_sums) chunk_sums[c++] = cs;
        z += cs;
    }
    float tail = 0.0f;
    for (; i < n; i++) tail += exp_neg((x[i] - sub) * scale);
    if (chunk_sums) chunk_sums[c] = tail;
    return z + tail;
}

// ============================ params ============================
void tv_sampling_params_default(tv_sampling_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
    p->has_seed = false;
    p->n_logit_bias = 0;
    p->logit_bias_ids = NULL;
    p->logit_bias_vals = NULL;
    p->logprobs = -1;
}

tv_sampler *sampler_create(const tv_sampling_params *p, int32_t n_vocab, uint64_t seed, tv_error *err) {
    tv_sampler *s = NULL;
    if (!p) { err_fail(err, TV_ERR_INVALID, "sampler: no parameters"); goto fail; }
    if (n_vocab <= 0) { err_fail(err, TV_ERR_INVALID, "sampler: n_vocab %d must be positive", (int)n_vocab); goto fail; }
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature)) {
        err_fail(err, TV_ERR_INVALID, "sampler: temperature %g must be finite and >= 0", (double)p->temperature);
        goto fail;
    }
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) {
        err_fail(err, TV_ERR_INVALID, "sampler: top_p %g must be in (0, 1]", (double)p->top_p);
        goto fail;
    }
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) {
        err_fail(err, TV_ERR_INVALID, "sampler: min_p %g must be in [0, 1]", (double)p->min_p);
        goto fail;
    }
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty)) {
        err_fail(err, TV_ERR_INVALID, "sampler: repetition_penalty %g must be finite and > 0", (double)p->repetition_penalty);
        goto fail;
    }
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty)) {
        err_fail(err, TV_ERR_INVALID, "sampler: presence/frequency penalties must be finite");
        goto fail;
    }
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && (!p->logit_bias_ids || !p->logit_bias_vals))) {
        err_fail(err, TV_ERR_INVALID, "sampler: bad logit_bias (n %d)", p->n_logit_bias);
        goto fail;
    }
    for (int i = 0; i < p->n_logit_bias; i++) {
        int32_t id = p->logit_bias_ids[i];
        float v = p->logit_bias_vals[i];
        if (id < 0 || id >= n_vocab) {
            err_fail(err, TV_ERR_INVALID, "sampler: logit_bias id %d outside the vocabulary [0, %d)", (int)id, (int)n_vocab);
            goto fail;
        }
        if (isnan(v) || v == INFINITY) {
            err_fail(err, TV_ERR_INVALID, "sampler: logit_bias value for id %d must be finite or -inf", (int)id);
            goto fail;
        }
    }

    s = mem_calloc(1, sizeof *s);
    if (!s) { err_fail(err, TV_ERR_NOMEM, "sampler: out of memory"); goto fail; }
    s->n_vocab = n_vocab;
    s->temperature = p->temperature;
    s->top_k = p->top_k;
    s->top_p = p->top_p;
    s->min_p = p->min_p;
    s->rep_penalty = p->repetition_penalty;
    s->presence = p->presence_penalty;
    s->frequency = p->frequency_penalty;
    s->n_bias = p->n_logit_bias;
    if (s->n_bias > 0) {
        s->bias_ids = mem_malloc((size_t)s->n_bias * sizeof *s->bias_ids);
        s->bias_vals = mem_malloc((size_t)s->n_bias * sizeof *s->bias_vals);
        if (!s->bias_ids || !s->bias_vals) { err_fail(err, TV_ERR_NOMEM, "sampler: out of memory"); goto fail; }
        memcpy(s->bias_ids, p->logit_bias_ids, (size_t)s->n_bias * sizeof *s->bias_ids);
        memcpy(s->bias_vals, p->logit_bias_vals, (size_t)s->n_bias * sizeof *s->bias_vals);
    }
    s->has_penalties = s->rep_penalty != 1.0f || s->presence != 0.0f || s->frequency != 0.0f;
    if (s->has_penalties) {
        s->seen = mem_calloc((size_t)n_vocab, sizeof *s->seen);
        s->n_gen = mem_calloc((size_t)n_vocab, sizeof *s->n_gen);
        s->uniq = mem_malloc((size_t)n_vocab * sizeof *s->uniq);
        if (!s->seen || !s->n_gen || !s->uniq) { err_fail(err, TV_ERR_NOMEM, "sampler: out of memory"); goto fail; }
    }
    if (s->temperature >= TV_SAMPLER_MIN_TEMP && s->top_k != 1) {
        s->cands = mem_malloc((size_t)n_vocab * sizeof *s->cands);
        s->chunk_sums = mem_malloc(((size_t)n_vocab / EXP_CHUNK + 1) * sizeof *s->chunk_sums);
        if (!s->cands || !s->chunk_sums) { err_fail(err, TV_ERR_NOMEM, "sampler: out of memory (%d candidates)", (int)n_vocab); goto fail; }
    }
    rng_xoshiro_seed(&s->rng, seed);
    rng_xoshiro_seed(&s->draft_rng, rng_hash64(seed ^ 0x5bd1e9955bd1e995ull));
    return s;

fail:
    sampler_free(s);
    return NULL;
}

void sampler_free(tv_sampler *s) {
    if (!s) return;
    free(s->bias_ids);
    free(s->bias_vals);
    free(s->seen);
    free(s->n_gen);
    free(s->uniq);
    free(s->cands);
    free(s->chunk_sums);
    free(s);
}

void sampler_accept(tv_sampler *s, int32_t token, bool is_prompt) {
    if (!s || !s->has_penalties || token < 0 || token >= s->n_vocab) return;
    if (s->seen[token] == 0) s->uniq[s->n_uniq++] = token;
    s->seen[token] |= is_prompt ? 1u : 2u;
    if (!is_prompt && s->n_gen[token] < INT32_MAX) s->n_gen[token]++;
}

// ============================ selection helpers ============================
// a ranks before b: larger logit, then lower id.
static inline bool cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void cand_swap(cand *a, cand *b) { cand t = *a; *a = *b; *b = t; }

// Partitions c[lo, hi) (hi - lo >= 2) around a median-of-three pivot; returns m with
// c[lo, m) before c[m] before c(m, hi).
static int64_t partition(cand *c, int64_t lo, int64_t hi) {
    int64_t mid = lo + (hi - lo) / 2, last = hi - 1;
    // order c[lo], c[mid], c[last] so that c[mid] is their median, then move it to the end
    if (cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
    if (cand_before(&c[last], &c[lo])) cand_swap(&c[last], &c[lo]);
    if (cand_before(&c[last], &c[mid])) cand_swap(&c[last], &c[mid]);
    cand_swap(&c[mid], &c[last]);
    const cand pivot = c[last];
    int64_t store = lo;
    for (int64_t i = lo; i < last; i++)
        if (cand_before(&c[i], &pivot)) cand_swap(&c[i], &c[store++]);
    cand_swap(&c[store], &c[last]);
    return store;
}

// Rearranges c[0, n) so that c[0, k) holds the k best (in any order). Expected O(n).
static void select_top(cand *c, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        int64_t m = partition(c, lo, hi);
        if (m == k || m + 1 == k) return;
        if (m > k) hi = m;
        else lo = m + 1;
    }
}

// Smallest count c (>= 1) such that the c best of c[0, n) have sum(w) >= target, with those c
// moved to c[0, c). Returns n when the whole array falls short. Expected O(n).
static int64_t select_mass(cand *c, int64_t n, double target) {
    // invariant: c[0, lo) are the lo best, their mass acc < target; the answer lies in (lo, hi]
    int64_t lo = 0, hi = n;
    double acc = 0.0;
    while (hi - lo > 1) {
        int64_t m = partition(c, lo, hi);
        double upper = 0.0;
        for (int64_t i = lo; i < m; i++) upper += c[i].w;
        if (acc + upper >= target) { hi = m; continue; }
        upper += c[m].w;
        if (acc + upper >= target) return m + 1;
        acc += upper;
        lo = m + 1;
    }
    return hi > 0 ? hi : 1;
}

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

// ============================ sampling ============================
static void apply_bias_and_penalties(tv_sampler *s, float *logits) {
    for (int i = 0; i < s->n_bias; i++) logits[s->bias_ids[i]] += s->bias_vals[i];
    if (!s->has_penalties) return;
    for (int32_t j = 0; j < s->n_uniq; j++) {
        int32_t id = s->uniq[j];
        float l = logits[id];
        if (s->rep_penalty != 1.0f) l = l > 0.0f ? l / s->rep_penalty : l * s->rep_penalty;
        int32_t cnt = s->n_gen[id];
        if (cnt > 0) l -= s->frequency * (float)cnt + s->presence;
        logits[id] = l;
    }
}

// Fills top[0, n_top) with the n_top best ids of logits by insertion into a short sorted list.
static void top_alternatives(const float *logits, int32_t n_vocab, float max_l, double log_z, tv_logprob *top, int n_top) {
    int n = 0;   // filled entries, sorted best first (ties: lower id first, preserved by scan order)
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (isnan(l)) l = -INFINITY;
        if (n == n_top && !(l > top[n - 1].logprob)) continue;
        int j = n < n_top ? n++ : n - 1;
        while (j > 0 && l > top[j - 1].logprob) { top[j] = top[j - 1]; j--; }
        top[j].id = i;
        top[j].logprob = l;   // raw logit for now
    }
    for (int j = 0; j < n; j++) top[j].logprob = (float)((double)top[j].logprob - (double)max_l - log_z);
    for (int j = n; j < n_top; j++) { top[j].id = -1; top[j].logprob = -INFINITY; }
}

// The draw of a non-greedy sample: the preset one (sampler_sample_plain), else the RNG's next.
static double next_uniform(tv_sampler *s) {
    if (!s->has_preset_u) return rng_xoshiro_uniform(&s->rng);
    s->has_preset_u = false;
    return s->preset_u;
}

// No filters: one draw from softmax(logits / T) over the whole vocabulary, in id order, without
// building a candidate list: one vectorised pass for the chunk sums, then a walk over the chunk
// sums and inside the one chunk the draw lands in.
static int32_t draw_all(tv_sampler *s, const float *logits, float max_l) {
    const int32_t n = s->n_vocab;
    const float inv_t = 1.0f / s->temperature;
    TV_CHECK(s->chunk_sums != NULL);
    const double z = sum_exp(logits, n, max_l, inv_t, s->chunk_sums);
    const double r = next_uniform(s) * z;
    const int32_t n_chunks = n / EXP_CHUNK + 1;   // the last one is the tail (possibly empty)
    double acc = 0.0;
    int32_t c = 0;
    for (; c < n_chunks - 1; c++) {
        if (r < acc + s->chunk_sums[c]) break;
        acc += s->chunk_sums[c];
    }
    const int32_t i0 = c * EXP_CHUNK, i1 = c * EXP_CHUNK + EXP_CHUNK < n ? c * EXP_CHUNK + EXP_CHUNK : n;
    int32_t last = -1;
    for (int32_t i = i0; i < i1; i++) {
        float w = exp_neg((logits[i] - max_l) * inv_t);
        if (w <= 0.0f) continue;
        acc += w;
        last = i;
        if (r < acc) return i;
    }
    if (last >= 0) return last;   // rounding: r landed past this chunk's last partial sum
    for (int32_t i = n - 1; i >= 0; i--)   // (only when the chunk's weights all underflowed)
        if (exp_neg((logits[i] - max_l) * inv_t) > 0.0f) return i;
    return 0;
}

// Min-heap on rank (root = the worst kept candidate) for top_k selection.
static void heap_sift_down(cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (r < n && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand_swap(&h[i], &h[w]);
        i = w;
    }
}

// Fills c with the top_k set (k small: heap, O(n log k) worst, ~O(n) typical; k large: quickselect).
static int64_t gather_top_k(tv_sampler *s, const float *logits, cand *c) {
    const int32_t n = s->n_vocab;
    const int64_t k = s->top_k;
    int64_t n_c = 0;
    if (k <= 1024) {
        for (int32_t i = 0; i < n; i++) {
            float l = logits[i];
            if (!(l > -INFINITY)) continue;
            cand x = { l, 0.0f, i };
            if (n_c < k) {
                c[n_c++] = x;
                if (n_c == k)
                    for (int64_t j = k / 2 - 1; j >= 0; j--) heap_sift_down(c, k, j);
            } else if (cand_before(&x, &c[0])) {
                c[0] = x;
                heap_sift_down(c, k, 0);
            }
        }
        return n_c;
    }
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > -INFINITY) c[n_c++] = (cand){ logits[i], 0.0f, i };
    if (n_c > k) { select_top(c, n_c, k); n_c = k; }
    return n_c;
}

// The kept set of top_k -> top_p -> min_p in s->cands[0, return value), each w = exp((logit - max)
// / T): in rank order when at most 4096 are kept (the usual case: cheap to sort), else in the order
// partitioning left them, itself a deterministic function of the logits. *sum: their total weight.
static int64_t kept_set(tv_sampler *s, const float *logits, float max_l, bool use_top_k, double *sum_out) {
    const int32_t n = s->n_vocab;
    TV_CHECK(s->cands != NULL);
    cand *c = s->cands;
    // min_p as a logit threshold: p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p).
    // It keeps a prefix of the order, so it commutes with top_k; top_p's mass is normalised over
    // the top_k set (z_set below), so filtering min_p first does not change top_p's cut.
    float min_l = s->min_p > 0.0f ? max_l + logf(s->min_p) : -INFINITY;
    int64_t n_c = 0;
    double z_set = 0.0;   // mass of the top_k set (whole vocabulary when top_k is off), at T = 1
    if (use_top_k) {
        n_c = gather_top_k(s, logits, c);
        int64_t kept = 0;
        for (int64_t i = 0; i < n_c; i++) {
            c[i].w = exp_neg(c[i].logit - max_l);
            z_set += c[i].w;
            if (c[i].logit >= min_l) c[kept++] = c[i];
        }
        n_c = kept;
    } else {
        int64_t n_finite = 0;
        for (int32_t i = 0; i < n; i++) n_finite += logits[i] > -INFINITY;
        z_set = sum_exp(logits, n, max_l, 1.0f, NULL);
        // Nucleus prefilter (the observation in llama2.c's sample_topp): an id other than the
        // most likely one with probability below (1 - top_p) / (n - 1) can never be in the
        // nucleus, since at most n - 1 of them together weigh less than 1 - top_p. Applied as a
        // logit threshold with a margin (keeping a few extra ids is harmless; dropping one is
        // not), never above the maximum, which always stays.
        if (s->top_p < 1.0f && n_finite > 1) {
            double thr = z_set * (1.0 - (double)s->top_p) / (double)(n_finite - 1);
            float thr_l = max_l + (float)log(thr) - 1e-3f;
            if (thr_l > max_l) thr_l = max_l;
            if (thr_l > min_l) min_l = thr_l;
        }
        for (int32_t i = 0; i < n; i++) {
            float l = logits[i];
            if (l >= min_l && l > -INFINITY) c[n_c++] = (cand){ l, exp_neg(l - max_l), i };
        }
    }
    TV_CHECK(n_c >= 1);   // the max passes every filter
    if (s->top_p < 1.0f) n_c = select_mass(c, n_c, (double)s->top_p * z_set);
    if (n_c <= 4096) qsort(c, (size_t)n_c, sizeof *c, cmp_cand);
    double sum = 0.0;
    if (s->temperature == 1.0f) {
        for (int64_t i = 0; i < n_c; i++) sum += c[i].w;
    } else {
        const float inv_t = 1.0f / s->temperature;
        for (int64_t i = 0; i < n_c; i++) {
            c[i].w = exp_neg((c[i].logit - max_l) * inv_t);
            sum += c[i].w;
        }
    }
    *sum_out = sum;
    return n_c;
}

// top_k -> top_p -> min_p -> temperature -> one draw, in the kept set's order.
static int32_t draw_filtered(tv_sampler *s, const float *logits, float max_l, bool use_top_k) {
    double sum;
    const int64_t n_c = kept_set(s, logits, max_l, use_top_k, &sum);
    const cand *c = s->cands;
    double r = next_uniform(s) * sum, acc = 0.0;
    for (int64_t i = 0; i < n_c; i++) {
        acc += c[i].w;
        if (r < acc) return c[i].id;
    }
    return c[n_c - 1].id;
}

enum { ARGMAX_LANES = 16, ARGMAX_BLOCK = 1024 };

// The first index of the largest of x[0, n) and that value (*max): what the plain scan `if (x[i] >
// max) take i` gives, NaN never comparing greater (nothing above -inf: index 0, -inf). Each block's
// maximum is taken in ARGMAX_LANES independent lanes (a loop the compiler vectorises; a vocabulary
// of 262k makes the branchy scan a few percent of a batched decode step), the first block whose
// maximum beats every earlier one holds the first element equal to the overall maximum, and that
// block alone is scanned in order (so a -0 / +0 tie resolves as the plain scan does).
static int32_t argmax_first(const float *x, int32_t n, float *max) {
    float best = -INFINITY;
    int32_t best_b = -1;
    for (int32_t b = 0; b < n; b += ARGMAX_BLOCK) {
        const int32_t e = n - b < ARGMAX_BLOCK ? n : b + ARGMAX_BLOCK;
        float lane[ARGMAX_LANES];
        for (int j = 0; j < ARGMAX_LANES; j++) lane[j] = -INFINITY;
        int32_t i = b;
        for (; i + ARGMAX_LANES <= e; i += ARGMAX_LANES)
            for (int j = 0; j < ARGMAX_LANES; j++) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
        float m = -INFINITY;
        for (int j = 0; j < ARGMAX_LANES; j++) m = lane[j] > m ? lane[j] : m;
        for (; i < e; i++) m = x[i] > m ? x[i] : m;
        if (m > best) {
            best = m;
            best_b = b;
        }
    }
    *max = -INFINITY;
    if (best_b < 0) return 0;
    int32_t i = best_b;
    while (x[i] != best) i++;   // present: best is one of the block's values
    *max = x[i];
    return i;
}

// Applies bias and penalties to logits in place; returns their max (-inf when every one is) and
// the lowest id holding it in *argmax (NaN never compares greater).
static float prepare(tv_sampler *s, float *logits, int32_t *argmax) {
    apply_bias_and_penalties(s, logits);
    float max_l;
    *argmax = argmax_first(logits, s->n_vocab, &max_l);
    return max_l;
}

static bool draws_argmax(const tv_sampler *s, float max_l) {
    return s->temperature < TV_SAMPLER_MIN_TEMP || s->top_k == 1 || max_l == -INFINITY;
}

// Step 3, before the draw: fills top (when n_top > 0); returns log z = log sum exp(logit - max)
// over the whole vocabulary when logprobs are wanted (0 otherwise).
static double logprobs_begin(const tv_sampler *s, const float *logits, float max_l, const tv_logprob *chosen,
                             tv_logprob *top, int n_top) {
    double log_z = 0.0;
    if ((chosen || (top && n_top > 0)) && max_l > -INFINITY) log_z = log(sum_exp(logits, s->n_vocab, max_l, 1.0f, NULL));
    if (top && n_top > 0) top_alternatives(logits, s->n_vocab, max_l, log_z, top, n_top);
    return log_z;
}

// Step 3, after the draw: the drawn id and its logprob into chosen (when not NULL).
static void logprobs_end(const float *logits, float max_l, double log_z, int32_t id, tv_logprob *chosen) {
    if (!chosen) return;
    chosen->id = id;
    chosen->logprob = max_l > -INFINITY && logits[id] > -INFINITY ? (float)((double)logits[id] - (double)max_l - log_z)
                                                                  : -INFINITY;
}

int32_t sampler_sample(tv_sampler *s, float *logits, tv_logprob *chosen, tv_logprob *top, int n_top) {
    const int32_t n = s->n_vocab;
    int32_t argmax;
    const float max_l = prepare(s, logits, &argmax);
    const double log_z = logprobs_begin(s, logits, max_l, chosen, top, n_top);
    int32_t id = argmax;
    if (!draws_argmax(s, max_l)) {
        const bool use_top_k = s->top_k > 0 && s->top_k < n;
        if (!use_top_k && s->top_p >= 1.0f && s->min_p <= 0.0f) id = draw_all(s, logits, max_l);
        else id = draw_filtered(s, logits, max_l, use_top_k);
    }
    logprobs_end(logits, max_l, log_z, id, chosen);
    return id;
}

// ============================ speculative decoding ============================
// p (n_vocab) := the distribution the draw of sampler_sample follows for these processed logits
// (max_l and argmax from prepare): the kept set's weights over their total, zero elsewhere.
static void fill_probs(tv_sampler *s, const float *logits, float max_l, int32_t argmax, float *p) {
    const int32_t n = s->n_vocab;
    memset(p, 0, (size_t)n * sizeof *p);
    if (draws_argmax(s, max_l)) {
        p[argmax] = 1.0f;
        return;
    }
    const bool use_top_k = s->top_k > 0 && s->top_k < n;
    if (!use_top_k && s->top_p >= 1.0f && s->min_p <= 0.0f) {
        const float inv_t = 1.0f / s->temperature;
        const double z = sum_exp(logits, n, max_l, inv_t, NULL);
        for (int32_t i = 0; i < n; i++) p[i] = (float)((double)exp_neg((logits[i] - max_l) * inv_t) / z);
        return;
    }
    double sum;
    const int64_t n_c = kept_set(s, logits, max_l, use_top_k, &sum);
    for (int64_t i = 0; i < n_c; i++) p[s->cands[i].id] = (float)((double)s->cands[i].w / sum);
}

// One draw with u in [0, 1) from the weights max(0, p[i] - q[i]) (q NULL: p[i]) over ids 0..n-1,
// in id order; -1 when every weight is 0.
static int32_t draw_excess(const float *p, const float *q, int32_t n, double u) {
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        const float d = q ? p[i] - q[i] : p[i];
        if (d > 0.0f) total += d;
    }
    if (!(total > 0.0)) return -1;
    const double r = u * total;
    double acc = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        const float d = q ? p[i] - q[i] : p[i];
        if (!(d > 0.0f)) continue;
        acc += d;
        last = i;
        if (r < acc) return i;
    }
    return last;   // rounding: r landed past the last partial sum
}

bool sampler_is_greedy(const tv_sampler *s) { return s->temperature < TV_SAMPLER_MIN_TEMP || s->top_k == 1; }

void sampler_probs(tv_sampler *s, float *logits, float *p) {
    int32_t argmax;
    const float max_l = prepare(s, logits, &argmax);
    fill_probs(s, logits, max_l, argmax, p);
}

int32_t sampler_draft(tv_sampler *s, float *logits, float *q) {
    int32_t argmax;
    const float max_l = prepare(s, logits, &argmax);
    fill_probs(s, logits, max_l, argmax, q);
    const int32_t id = draw_excess(q, NULL, s->n_vocab, rng_xoshiro_uniform(&s->draft_rng));
    return id >= 0 ? id : argmax;
}

int32_t sampler_verify(tv_sampler *s, float *logits, const float *q, int32_t x, float *p_out, tv_logprob *chosen,
                       tv_logprob *top, int n_top) {
    TV_CHECK(x >= 0 && x < s->n_vocab);
    int32_t argmax;
    const float max_l = prepare(s, logits, &argmax);
    const double log_z = logprobs_begin(s, logits, max_l, chosen, top, n_top);
    fill_probs(s, logits, max_l, argmax, p_out);
    int32_t id = x;
    // accept with probability min(1, p(x) / q(x)); q(x) > 0 for every x sampler_draft returns
    if (!(q[x] > 0.0f && rng_xoshiro_uniform(&s->rng) * (double)q[x] < (double)p_out[x])) {
        id = draw_excess(p_out, q, s->n_vocab, rng_xoshiro_uniform(&s->rng));
        // no excess anywhere: p == q up to rounding (acceptance was certain but for the last bit): a draw from p
        if (id < 0) id = draw_excess(p_out, NULL, s->n_vocab, rng_xoshiro_uniform(&s->rng));
    }
    logprobs_end(logits, max_l, log_z, id, chosen);
    return id;
}

void sampler_apply_mask(float *logits, int32_t n_vocab, const uint32_t *mask) {
    const int32_t nw = (n_vocab + 31) / 32;
    for (int32_t w = 0; w < nw; w++) {
        uint32_t banned = ~mask[w];
        if (!banned) continue;
        if (w == nw - 1 && n_vocab % 32) banned &= (1u << (n_vocab % 32)) - 1;
        while (banned) {
            logits[w * 32 + __builtin_ctz(banned)] = -INFINITY;
            banned &= banned - 1;
        }
    }
}

bool sampler_is_plain(const tv_sampler *s) { return s->n_bias == 0 && !s->has_penalties; }

void sampler_take_plain(tv_sampler *s, sampler_plain *p) {
    *p = (sampler_plain){.temperature = s->temperature, .top_p = s->top_p, .min_p = s->min_p, .top_k = s->top_k, .u = -1.0};
    if (s->temperature >= TV_SAMPLER_MIN_TEMP && s->top_k != 1) p->u = rng_xoshiro_uniform(&s->rng);
}

int32_t sampler_sample_plain(tv_sampler *scratch, const sampler_plain *p, float *logits, tv_logprob *chosen,
                             tv_logprob *top, int n_top) {
    TV_CHECK(sampler_is_plain(scratch) && scratch->cands && scratch->chunk_sums);
    scratch->temperature = p->temperature;
    scratch->top_p = p->top_p;
    scratch->min_p = p->min_p;
    scratch->top_k = p->top_k;
    scratch->preset_u = p->u;
    scratch->has_preset_u = p->u >= 0;
    const int32_t id = sampler_sample(scratch, logits, chosen, top, n_top);
    scratch->has_preset_u = false;   // a greedy row (or all -inf logits) took none
    return id;
}
