// test_sampler.c — the sampler against independent references: llama2.c's argmax (first max),
// softmax computed in double, hand-computed top-p / min-p sets, and the published penalty formulas
// (CTRL/HF repetition penalty, OpenAI presence/frequency).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "util/status.h"

// ---- references ----
// llama2.c run.c sample_argmax: strictly-greater scan, so the first max wins.
static int32_t ref_argmax(const float *x, int n) {
    int32_t best = 0;
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m) { m = x[i]; best = i; }
    return best;
}

static void ref_softmax(const float *x, int n, double t, double *p) {
    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < n; i++) if (x[i] > m) m = x[i];
    for (int i = 0; i < n; i++) { p[i] = exp(((double)x[i] - m) / t); z += p[i]; }
    for (int i = 0; i < n; i++) p[i] /= z;
}

static uint64_t lcg_state = 88172645463325252ull;
static float rand_logit(void) {   // test-local generator, uniform-ish in [-8, 8)
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(lcg_state >> 11) * 0x1.0p-53 * 16.0 - 8.0);
}

static tv_sampler *make(const tv_sampling_params *p, int n, uint64_t seed) {
    tv_error err = {0};
    tv_sampler *s = sampler_create(p, n, seed, &err);
    if (!s) fprintf(stderr, "sampler_create: %s\n", err.msg);
    assert_non_null(s);
    return s;
}

static int32_t sample_copy(tv_sampler *s, const float *logits, int n) {
    float *tmp = malloc((size_t)n * sizeof *tmp);
    assert_non_null(tmp);
    memcpy(tmp, logits, (size_t)n * sizeof *tmp);
    int32_t id = sampler_sample(s, tmp, NULL, NULL, 0);
    free(tmp);
    return id;
}

// ---- tests ----
static void test_defaults(void **st) {
    (void)st;
    tv_sampling_params p;
    memset(&p, 0x5a, sizeof p);
    tv_sampling_params_default(&p);
    assert_true(p.temperature == 1.0f);
    assert_true(p.top_k <= 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_true(p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f);
    assert_false(p.has_seed);
    assert_int_equal(p.n_logit_bias, 0);
    assert_int_equal(p.logprobs, -1);
}

static void test_greedy_argmax_ties(void **st) {
    (void)st;
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.temperature = 0.0f;
    float tie[8] = { 1, 5, 2, 5, 5, -1, 0, 3 };
    tv_sampler *s = make(&p, 8, 1);
    assert_int_equal(sample_copy(s, tie, 8), 1);
    assert_int_equal(ref_argmax(tie, 8), 1);
    float first[4] = { 7, 7, 7, 7 };
    sampler_free(s);
    s = make(&p, 4, 1);
    assert_int_equal(sample_copy(s, first, 4), 0);
    sampler_free(s);
    // random logits quantised to create many ties
    enum { N = 1000 };
    float x[N];
    s = make(&p, N, 1);
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < N; i++) x[i] = floorf(rand_logit());
        assert_int_equal(sample_copy(s, x, N), ref_argmax(x, N));
    }
    sampler_free(s);
}

// The sampler's own scan: strictly greater from -inf, so NaN is never taken and nothing above
// -inf gives index 0.
static int32_t scan_argmax(const float *x, int n) {
    int32_t best = 0;
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > m) { m = x[i]; best = i; }
    return best;
}

// Vocabularies spanning several of the blocked argmax's blocks with a ragged end: ties inside and
// across blocks, -0 against +0, NaN and -inf everywhere, and rows with nothing above -inf.
static void test_greedy_argmax_blocks(void **st) {
    (void)st;
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.temperature = 0.0f;
    enum { N = 3 * 1024 + 37 };
    static float x[N];
    tv_sampler *s = make(&p, N, 1);
    for (int trial = 0; trial < 200; trial++) {
        const int kind = trial % 4;
        for (int i = 0; i < N; i++) {
            const float r = rand_logit();
            x[i] = kind == 0 ? floorf(r) : kind == 1 ? (r < 0 ? -0.0f : 0.0f) : kind == 2 ? floorf(r / 4) : -INFINITY;
            if (rand_logit() < -7.0f) x[i] = NAN;
            if (rand_logit() < -7.0f) x[i] = -INFINITY;
        }
        if (kind == 2) x[(trial * 977) % N] = 5.0f;   // a lone maximum somewhere, the last block included
        assert_int_equal(sample_copy(s, x, N), scan_argmax(x, N));
    }
    x[N - 1] = 1.0f;   // the ragged tail holds the only finite value
    assert_int_equal(sample_copy(s, x, N), N - 1);
    x[N - 1] = NAN;
    assert_int_equal(sample_copy(s, x, N), 0);
    sampler_free(s);
}

static void test_top_k1_is_greedy(void **st) {
    (void)st;
    enum { N = 777 };
    float x[N];
    const float temps[] = { 0.1f, 0.7f, 1.0f, 2.5f, 100.0f };
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        tv_sampling_params p;
        tv_sampling_params_default(&p);
        p.temperature = temps[t];
        p.top_k = 1;
        p.top_p = 0.9f;
        tv_sampler *s = make(&p, N, 42 + t);
        for (int trial = 0; trial < 40; trial++) {
            for (int i = 0; i < N; i++) x[i] = floorf(rand_logit() * 2.0f) / 2.0f;
            assert_int_equal(sample_copy(s, x, N), ref_argmax(x, N));
        }
        sampler_free(s);
    }
}

// Pearson chi-square of n_draws draws against probabilities p over the ids with p > 0; asserts
// that ids with p == 0 never occur. Returns the statistic and the degrees of freedom.
static double chi_square(const int *counts, const double *p, int n, int n_draws, int *dof) {
    double chi = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0.0) { assert_int_equal(counts[i], 0); continue; }
        double e = p[i] * n_draws;
        chi += (counts[i] - e) * (counts[i] - e) / e;
        k++;
    }
    *dof = k - 1;
    return chi;
}

static void test_frequencies_match_softmax(void **st) {
    (void)st;
    enum { N = 8, DRAWS = 10000 };
    const float logits[N] = { 1.0f, 2.0f, 0.5f, -0.5f, 1.5f, 0.0f, 2.2f, -1.0f };
    // chi-square critical values at p = 0.001 for 7 and 2 degrees of freedom
    const double crit7 = 24.322, crit2 = 13.816;
    const float temps[] = { 0.7f, 1.0f, 1.6f };
    for (size_t t = 0; t < 3; t++) {
        tv_sampling_params p;
        tv_sampling_params_default(&p);
        p.temperature = temps[t];
        tv_sampler *s = make(&p, N, 1234);
        int counts[N] = {0};
        for (int d = 0; d < DRAWS; d++) counts[sample_copy(s, logits, N)]++;
        double ref[N];
        ref_softmax(logits, N, temps[t], ref);
        int dof;
        double chi = chi_square(counts, ref, N, DRAWS, &dof);
        print_message("T=%.1f chi2=%.2f (dof %d)\n", (double)temps[t], chi, dof);
        assert_int_equal(dof, 7);
        assert_true(chi < crit7);
        sampler_free(s);
    }
    // a vocabulary spanning several 64-id chunks and a tail: heavy ids in different chunks, the
    // rest pooled into one bin; chi-square with 4 degrees of freedom (critical 18.467 at 0.001)
    {
        enum { V = 200 };
        float big[V];
        for (int i = 0; i < V; i++) big[i] = -1.0f + 0.01f * (float)(i % 7);
        const int heavy[4] = { 5, 70, 150, 199 };
        const float hl[4] = { 2.0f, 1.5f, 2.5f, 1.0f };
        for (int h = 0; h < 4; h++) big[heavy[h]] = hl[h];
        double pr[V];
        ref_softmax(big, V, 1.3, pr);
        tv_sampling_params q;
        tv_sampling_params_default(&q);
        q.temperature = 1.3f;
        tv_sampler *sb = make(&q, V, 4321);
        int cnt[V] = {0};
        for (int d = 0; d < DRAWS; d++) cnt[sample_copy(sb, big, V)]++;
        sampler_free(sb);
        int bins[5] = {0};
        double pb[5] = {0};
        for (int i = 0; i < V; i++) {
            int b = 4;
            for (int h = 0; h < 4; h++) if (i == heavy[h]) b = h;
            bins[b] += cnt[i];
            pb[b] += pr[i];
        }
        int dof;
        double chi = chi_square(bins, pb, 5, DRAWS, &dof);
        print_message("V=200 chunked draw: chi2=%.2f (dof %d)\n", chi, dof);
        assert_int_equal(dof, 4);
        assert_true(chi < 18.467);
    }
    // top_k = 3: the three best, renormalised, at T = 0.8
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.temperature = 0.8f;
    p.top_k = 3;
    tv_sampler *s = make(&p, N, 99);
    int counts[N] = {0};
    for (int d = 0; d < DRAWS; d++) counts[sample_copy(s, logits, N)]++;
    const float top3[3] = { logits[6], logits[1], logits[4] };
    double r3[3];
    ref_softmax(top3, 3, 0.8, r3);
    double ref[N] = {0};
    ref[6] = r3[0]; ref[1] = r3[1]; ref[4] = r3[2];
    int dof;
    double chi = chi_square(counts, ref, N, DRAWS, &dof);
    assert_int_equal(dof, 2);
    assert_true(chi < crit2);
    sampler_free(s);
}

// Logits whose softmax is exactly `probs` (up to float rounding), placed at permuted ids.
static const double PROBS5[5] = { 0.5, 0.2, 0.15, 0.1, 0.05 };
static const int PERM5[5] = { 3, 0, 4, 1, 2 };   // PROBS5[r] lives at id PERM5[r]

static void make5(float *logits) {
    for (int r = 0; r < 5; r++) logits[PERM5[r]] = (float)log(PROBS5[r]);
}

// Draws many times and returns the bitmask of ids that occurred.
static unsigned kept_set(const tv_sampling_params *p, const float *logits, int n) {
    tv_sampler *s = make(p, n, 7);
    unsigned mask = 0;
    for (int d = 0; d < 3000; d++) mask |= 1u << sample_copy(s, logits, n);
    sampler_free(s);
    return mask;
}

static unsigned ranks(int k) {   // mask of the ids holding the k most likely tokens
    unsigned m = 0;
    for (int r = 0; r < k; r++) m |= 1u << PERM5[r];
    return m;
}

static void test_top_p_min_p_sets(void **st) {
    (void)st;
    float x[5];
    make5(x);
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    // top_p: smallest prefix with cumulative mass >= top_p (0.5, 0.7, 0.85, 0.95, 1.0)
    struct { float top_p; int k; } cases[] = { { 0.3f, 1 }, { 0.6f, 2 }, { 0.75f, 3 }, { 0.9f, 4 }, { 0.97f, 5 }, { 1.0f, 5 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p.top_p = cases[i].top_p;
        assert_int_equal(kept_set(&p, x, 5), ranks(cases[i].k));
    }
    // top_k then top_p: mass renormalised over the top 3 (0.588, 0.824, 1.0) -> top_p 0.8 keeps 2;
    // without top_k the same top_p keeps 3 (0.5, 0.7, 0.85)
    p.top_p = 0.8f;
    p.top_k = 3;
    assert_int_equal(kept_set(&p, x, 5), ranks(2));
    p.top_k = 0;
    assert_int_equal(kept_set(&p, x, 5), ranks(3));
    // min_p: keep p >= min_p * 0.5
    p.top_p = 1.0f;
    struct { float min_p; int k; } mcases[] = { { 0.05f, 5 }, { 0.15f, 4 }, { 0.25f, 3 }, { 0.35f, 2 }, { 0.5f, 1 } };
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
        p.min_p = mcases[i].min_p;
        assert_int_equal(kept_set(&p, x, 5), ranks(mcases[i].k));
    }
    // top_p and min_p together: the shorter prefix wins
    p.min_p = 0.35f;   // 2
    p.top_p = 0.9f;    // 4
    assert_int_equal(kept_set(&p, x, 5), ranks(2));
    p.min_p = 0.15f;   // 4
    p.top_p = 0.6f;    // 2
    assert_int_equal(kept_set(&p, x, 5), ranks(2));
    // tiny vocabularies where (1 - top_p) / (n - 1) exceeds the top probability: the most
    // likely id always stays (0.6 / 0.4 at top_p 0.3 keeps only the first)
    {
        tv_sampling_params q;
        tv_sampling_params_default(&q);
        float two[2] = { (float)log(0.4), (float)log(0.6) };
        q.top_p = 0.3f;
        assert_int_equal(kept_set(&q, two, 2), 1u << 1);
        q.top_p = 0.7f;
        assert_int_equal(kept_set(&q, two, 2), 3u);
        float three[3] = { (float)log(0.2), (float)log(0.35), (float)log(0.45) };
        q.top_p = 0.1f;
        assert_int_equal(kept_set(&q, three, 3), 1u << 2);
        q.top_p = 0.5f;
        assert_int_equal(kept_set(&q, three, 3), 6u);
    }
    // temperature is applied after the filters: a hot temperature does not widen the set
    p.temperature = 5.0f;
    assert_int_equal(kept_set(&p, x, 5), ranks(2));
}

// top_p on a large random vocabulary: every draw lies in the nucleus computed by a full sort.
static int cmp_desc(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    return x[1] != y[1] ? (x[1] < y[1] ? 1 : -1) : (x[0] > y[0] ? 1 : -1);
}

static void test_top_p_large_vocab(void **st) {
    (void)st;
    enum { N = 5000 };
    static float x[N];
    static int32_t order[N][2];   // (id, logit * 1e6 as int) for a full sort
    for (int i = 0; i < N; i++) { x[i] = roundf(rand_logit() * 1000.0f) / 1000.0f; order[i][0] = i; order[i][1] = (int32_t)lroundf(x[i] * 1000.0f); }
    qsort(order, N, sizeof order[0], cmp_desc);
    double pr[N];
    ref_softmax(x, N, 1.0, pr);
    static bool in_nucleus[N];
    double cum = 0.0;
    int n_nuc = 0;
    for (int r = 0; r < N && cum < 0.9; r++) { in_nucleus[order[r][0]] = true; cum += pr[order[r][0]]; n_nuc++; }
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.top_p = 0.9f;
    tv_sampler *s = make(&p, N, 5);
    static bool hit[N];
    int n_hit = 0;
    for (int d = 0; d < 4000; d++) {
        int32_t id = sample_copy(s, x, N);
        assert_true(in_nucleus[id]);
        if (!hit[id]) { hit[id] = true; n_hit++; }
    }
    print_message("nucleus %d ids, %d distinct drawn\n", n_nuc, n_hit);
    assert_true(n_hit > n_nuc / 4);
    sampler_free(s);
}


// Randomised differential test of the filter chain against a direct reference: full sort by
// (logit desc, id asc); top_k prefix; top_p = smallest prefix whose mass (renormalised over the
// top_k set) reaches top_p; min_p = logit >= max + log(min_p); kept = the shortest. Cases where
// a cut sits within 1e-4 of a boundary (float vs double) are skipped. Drawn at T = 50, so every
// kept id is near-uniform and 600 draws see all of them.
static const float *g_rank_logits;   // the logits cmp_rank orders ids by
static int cmp_rank_q(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    float lx = g_rank_logits[x], ly = g_rank_logits[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x - y;
}

static void test_filters_vs_reference(void **st) {
    (void)st;
    int n_checked = 0;
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + (int)((unsigned)(rand_logit() * 1000.0f + 8000.0f) % 12u);
        float x[12];
        for (int i = 0; i < n; i++) {
            x[i] = roundf(rand_logit() * 2.0f) / 2.0f;         // many ties
            if (rand_logit() > 6.5f) x[i] = -INFINITY;          // some banned
        }
        x[(int)((unsigned)(rand_logit() * 100.0f + 800.0f) % (unsigned)n)] = 1.0f;   // at least one finite
        tv_sampling_params p;
        tv_sampling_params_default(&p);
        p.temperature = 50.0f;
        p.top_k = (int)((unsigned)(rand_logit() * 100.0f + 800.0f) % (unsigned)(n + 2));
        const float tps[] = { 1.0f, 0.9f, 0.5f, 0.2f, 0.05f };
        const float mps[] = { 0.0f, 0.0f, 0.1f, 0.3f, 0.7f };
        p.top_p = tps[(unsigned)(rand_logit() * 100.0f + 800.0f) % 5u];
        p.min_p = mps[(unsigned)(rand_logit() * 100.0f + 800.0f) % 5u];
        // reference
        int order[12], n_fin = 0;
        for (int i = 0; i < n; i++) if (x[i] > -INFINITY) order[n_fin++] = i;
        g_rank_logits = x;
        qsort(order, (size_t)n_fin, sizeof order[0], cmp_rank_q);
        int k = p.top_k > 0 && p.top_k < n_fin ? p.top_k : n_fin;
        double mx = x[order[0]], z = 0.0;
        for (int r = 0; r < k; r++) z += exp(x[order[r]] - mx);
        bool near = false;
        int kp = k;
        if (p.top_p < 1.0f) {
            double cum = 0.0;
            for (int r = 0; r < k; r++) {
                cum += exp(x[order[r]] - mx) / z;
                if (fabs(cum - p.top_p) < 1e-4) near = true;
                if (cum >= p.top_p) { kp = r + 1; break; }
            }
        }
        int km = k;
        if (p.min_p > 0.0f) {
            double thr = mx + log(p.min_p);
            km = 0;
            for (int r = 0; r < k; r++) {
                if (fabs(x[order[r]] - thr) < 1e-4) near = true;
                if (x[order[r]] >= thr) km = r + 1;
            }
        }
        if (near) continue;
        int kept = kp < km ? kp : km;
        unsigned want = 0;
        for (int r = 0; r < kept; r++) want |= 1u << order[r];
        tv_sampler *s = make(&p, n, (uint64_t)trial);
        unsigned got = 0;
        for (int d = 0; d < 600; d++) got |= 1u << sample_copy(s, x, n);
        sampler_free(s);
        if (got != want)
            print_message("trial %d: n %d top_k %d top_p %.2f min_p %.2f: got %#x want %#x\n", trial, n, p.top_k,
                          (double)p.top_p, (double)p.min_p, got, want);
        assert_int_equal(got, want);
        n_checked++;
    }
    print_message("%d random filter cases match the reference\n", n_checked);
    assert_true(n_checked > 300);
}

// top_k above the heap limit (quickselect path) combined with top_p: every draw lies in the
// nucleus of the top_k set computed by a full sort, and the draws reach deep into it.
static void test_large_top_k(void **st) {
    (void)st;
    enum { N = 3000, K = 1500 };
    static float x[N];
    static int order[N];
    for (int i = 0; i < N; i++) { x[i] = roundf(rand_logit() * 100.0f) / 400.0f; order[i] = i; }
    g_rank_logits = x;
    qsort(order, N, sizeof order[0], cmp_rank_q);
    double mx = x[order[0]], z = 0.0;
    for (int r = 0; r < K; r++) z += exp(x[order[r]] - mx);
    static bool allowed[N];
    double cum = 0.0;
    int n_nuc = 0;
    for (int r = 0; r < K && cum < 0.8; r++) { cum += exp(x[order[r]] - mx) / z; allowed[order[r]] = true; n_nuc++; }
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.top_k = K;
    p.top_p = 0.8f;
    tv_sampler *s = make(&p, N, 11);
    int deepest = 0;
    static int rank_of[N];
    for (int r = 0; r < N; r++) rank_of[order[r]] = r;
    for (int d = 0; d < 3000; d++) {
        int32_t id = sample_copy(s, x, N);
        assert_true(allowed[id]);
        if (rank_of[id] > deepest) deepest = rank_of[id];
    }
    print_message("nucleus of top_k %d: %d ids, deepest draw at rank %d\n", K, n_nuc, deepest);
    assert_true(deepest > n_nuc * 9 / 10);
    sampler_free(s);
}

static void test_penalties(void **st) {
    (void)st;
    enum { N = 6 };
    const float base[N] = { 2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f };
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.temperature = 0.0f;
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 0.3f;
    p.frequency_penalty = 0.2f;
    tv_sampler *s = make(&p, N, 1);
    sampler_accept(s, 0, true);
    sampler_accept(s, 1, true);
    sampler_accept(s, 0, true);
    sampler_accept(s, 2, false);
    sampler_accept(s, 2, false);
    sampler_accept(s, 3, false);
    sampler_accept(s, 99, false);   // out of range: ignored
    sampler_accept(s, -1, true);
    float x[N];
    memcpy(x, base, sizeof x);
    int32_t id = sampler_sample(s, x, NULL, NULL, 0);
    const float want[N] = {
        2.0f / 1.5f,                          // prompt only: repetition penalty, positive -> divide
        -1.0f * 1.5f,                         // prompt only, negative -> multiply
        0.5f / 1.5f - (0.2f * 2 + 0.3f),      // generated twice: repetition, frequency x2, presence
        3.0f / 1.5f - (0.2f * 1 + 0.3f),      // generated once
        -2.0f,                                // never seen
        1.0f,                                 // never seen
    };
    for (int i = 0; i < N; i++) assert_float_equal(x[i], want[i], 1e-6);
    assert_int_equal(id, 3);   // 1.5 > 1.333 > 1.0
    sampler_free(s);

    // presence / frequency only: the prompt is not penalised
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 1.0f;
    p.frequency_penalty = 0.5f;
    s = make(&p, N, 1);
    sampler_accept(s, 3, true);
    sampler_accept(s, 0, false);
    sampler_accept(s, 0, false);
    sampler_accept(s, 0, false);
    memcpy(x, base, sizeof x);
    sampler_sample(s, x, NULL, NULL, 0);
    assert_float_equal(x[3], 3.0f, 0);
    assert_float_equal(x[0], 2.0f - (0.5f * 3 + 1.0f), 1e-6);
    for (int i = 1; i < N; i++) if (i != 3) assert_float_equal(x[i], base[i], 0);
    sampler_free(s);

    // a negative presence penalty encourages (OpenAI allows [-2, 2])
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 0.0f;
    s = make(&p, N, 1);
    sampler_accept(s, 4, false);
    memcpy(x, base, sizeof x);
    sampler_sample(s, x, NULL, NULL, 0);
    assert_float_equal(x[4], 0.0f, 1e-6);
    sampler_free(s);
}

static void test_logit_bias(void **st) {
    (void)st;
    enum { N = 5 };
    const float base[N] = { 0.0f, 4.0f, 3.9f, 1.0f, 0.5f };
    const int32_t ids[2] = { 1, 4 };
    const float vals[2] = { -INFINITY, 0.25f };
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.n_logit_bias = 2;
    p.logit_bias_ids = ids;
    p.logit_bias_vals = vals;
    p.temperature = 0.0f;
    tv_sampler *s = make(&p, N, 1);
    float x[N];
    memcpy(x, base, sizeof x);
    assert_int_equal(sampler_sample(s, x, NULL, NULL, 0), 2);
    assert_float_equal(x[4], 0.75f, 1e-6);
    sampler_free(s);
    // sampling at a high temperature never draws the banned id
    p.temperature = 3.0f;
    s = make(&p, N, 2);
    int counts[N] = {0};
    for (int d = 0; d < 5000; d++) counts[sample_copy(s, base, N)]++;
    assert_int_equal(counts[1], 0);
    for (int i = 0; i < N; i++) if (i != 1) assert_true(counts[i] > 0);
    sampler_free(s);
    // the bias is copied at create time
    float vals2[1] = { -INFINITY };
    int32_t ids2[1] = { 2 };
    p.n_logit_bias = 1;
    p.logit_bias_ids = ids2;
    p.logit_bias_vals = vals2;
    p.temperature = 0.0f;
    s = make(&p, N, 1);
    ids2[0] = 0;
    vals2[0] = 0.0f;
    memcpy(x, base, sizeof x);
    assert_int_equal(sampler_sample(s, x, NULL, NULL, 0), 1);
    assert_true(isinf(x[2]) && x[2] < 0);
    sampler_free(s);
}

static void test_seed_determinism(void **st) {
    (void)st;
    enum { N = 1000, T = 200 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = rand_logit() * 0.2f;   // flat-ish: many plausible ids
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.top_p = 0.95f;
    p.min_p = 0.01f;
    int32_t a[T], b[T], c[T];
    tv_sampler *sa = make(&p, N, 12345), *sb = make(&p, N, 12345), *sc = make(&p, N, 12346);
    for (int i = 0; i < T; i++) {
        a[i] = sample_copy(sa, x, N);
        // interleave another sampler's draws: per-request state must not leak
        (void)sample_copy(sc, x, N);
    }
    sampler_free(sc);
    sc = make(&p, N, 12346);
    int n_diff = 0;
    for (int i = 0; i < T; i++) {
        b[i] = sample_copy(sb, x, N);
        c[i] = sample_copy(sc, x, N);
        n_diff += a[i] != c[i];
    }
    assert_memory_equal(a, b, sizeof a);
    assert_true(n_diff > T / 2);
    sampler_free(sa);
    sampler_free(sb);
    sampler_free(sc);
}

static void test_logprobs(void **st) {
    (void)st;
    enum { N = 1000, K = 5 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = rand_logit();
    x[17] = x[400] = 9.0f;   // a tie at the top: lower id first
    const int32_t ids[1] = { 17 };
    const float vals[1] = { -0.5f };
    tv_sampling_params p;
    tv_sampling_params_default(&p);
    p.temperature = 0.6f;   // logprobs are reported before temperature
    p.top_k = 50;
    p.repetition_penalty = 1.3f;
    p.n_logit_bias = 1;
    p.logit_bias_ids = ids;
    p.logit_bias_vals = vals;
    p.logprobs = K;
    tv_sampler *s = make(&p, N, 3);
    sampler_accept(s, 400, true);
    for (int trial = 0; trial < 20; trial++) {
        memcpy(y, x, sizeof y);
        tv_logprob chosen, top[K];
        int32_t id = sampler_sample(s, y, &chosen, top, K);
        // reference: apply the bias and penalty by hand, log-softmax in double
        double r[N], m = -INFINITY, z = 0.0;
        for (int i = 0; i < N; i++) {
            r[i] = x[i];
            if (i == 17) r[i] += -0.5;
            if (i == 400) r[i] = r[i] > 0 ? r[i] / 1.3 : r[i] * 1.3;
            if (r[i] > m) m = r[i];
        }
        for (int i = 0; i < N; i++) z += exp(r[i] - m);
        double lz = m + log(z);
        assert_int_equal(chosen.id, id);
        assert_float_equal(chosen.logprob, r[id] - lz, 1e-5);
        // top: full selection by hand
        bool used[N] = {0};
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int i = 0; i < N; i++)
                if (!used[i] && (best < 0 || r[i] > r[best])) best = i;
            used[best] = true;
            assert_int_equal(top[k].id, best);
            assert_float_equal(top[k].logprob, r[best] - lz, 1e-5);
        }
    }
    sampler_free(s);
    // n_top beyond the vocabulary pads with -1 / -inf
    tv_sampling_params_default(&p);
    p.temperature = 0.0f;
    s = make(&p, 3, 3);
    float small[3] = { 0.0f, 1.0f, 1.0f };
    tv_logprob top[5];
    assert_int_equal(sampler_sample(s, small, NULL, top, 5), 1);
    assert_int_equal(top[0].id, 1);
    assert_int_equal(top[1].id, 2);
    assert_int_equal(top[2].id, 0);
    assert_int_equal(top[3].id, -1);
    assert_true(isinf(top[4].logprob));
    assert_float_equal(top[0].logprob, 1.0 - log(1.0 + 2.0 * exp(1.0)), 1e-6);
    sampler_free(s);
}

static void test_invalid_params(void **st) {
    (void)st;
    tv_sampling_params p;
    tv_error err = {0};
    tv_sampling_params_default(&p);
    assert_null(sampler_create(&p, 0, 1, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    struct { float t, tp, mp, rp; } bad[] = {
        { -1.0f, 1.0f, 0.0f, 1.0f }, { NAN, 1.0f, 0.0f, 1.0f }, { 1.0f, 0.0f, 0.0f, 1.0f },
        { 1.0f, 1.5f, 0.0f, 1.0f }, { 1.0f, 1.0f, -0.1f, 1.0f }, { 1.0f, 1.0f, 0.0f, 0.0f },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tv_sampling_params_default(&p);
        p.temperature = bad[i].t;
        p.top_p = bad[i].tp;
        p.min_p = bad[i].mp;
        p.repetition_penalty = bad[i].rp;
        err.code = TV_OK;
        assert_null(sampler_create(&p, 10, 1, &err));
        assert_int_equal(err.code, TV_ERR_INVALID);
    }
    tv_sampling_params_default(&p);
    int32_t id = 10;
    float v = 1.0f;
    p.n_logit_bias = 1;
    p.logit_bias_ids = &id;
    p.logit_bias_vals = &v;
    assert_null(sampler_create(&p, 10, 1, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
    sampler_free(NULL);
}

// Not a pass/fail speed test: prints the cost per token at a llama-3 vocabulary.
static void test_speed_128k(void **st) {
    (void)st;
    enum { N = 128256, REPS = 50 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = rand_logit() * 1.5f;
    struct { const char *name; float t; int k; float tp, mp; int lp; } cfg[] = {
        { "greedy", 0.0f, 0, 1.0f, 0.0f, -1 },
        { "T=1 (no filters)", 1.0f, 0, 1.0f, 0.0f, -1 },
        { "top_k=40 top_p=0.95 min_p=0.05 T=0.8", 0.8f, 40, 0.95f, 0.05f, -1 },
        { "top_p=0.9 T=0.7", 0.7f, 0, 0.9f, 0.0f, -1 },
        { "T=1 + logprobs(5)", 1.0f, 0, 1.0f, 0.0f, 5 },
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        tv_sampling_params p;
        tv_sampling_params_default(&p);
        p.temperature = cfg[c].t;
        p.top_k = cfg[c].k;
        p.top_p = cfg[c].tp;
        p.min_p = cfg[c].mp;
        p.logprobs = cfg[c].lp;
        tv_sampler *s = make(&p, N, 1);
        tv_logprob ch, top[5];
        double t0 = time_ms();
        for (int r = 0; r < REPS; r++) {
            memcpy(y, x, N * sizeof *y);
            int32_t id = sampler_sample(s, y, cfg[c].lp >= 0 ? &ch : NULL, cfg[c].lp > 0 ? top : NULL, cfg[c].lp > 0 ? 5 : 0);
            assert_true(id >= 0 && id < N);
        }
        double ms = (time_ms() - t0) / REPS;
        print_message("n_vocab=%d %-40s %.3f ms/token\n", N, cfg[c].name, ms);
        sampler_free(s);
    }
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_greedy_argmax_ties),
        cmocka_unit_test(test_greedy_argmax_blocks),
        cmocka_unit_test(test_top_k1_is_greedy),
        cmocka_unit_test(test_frequencies_match_softmax),
        cmocka_unit_test(test_top_p_min_p_sets),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_filters_vs_reference),
        cmocka_unit_test(test_large_top_k),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_speed_128k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
