// spec.c — the n-gram prompt-lookup proposer, the draft model's vocabulary check and the load
// gate (spec.h).
#include "engine/spec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/status.h"

int spec_ngram_propose(const int32_t *tokens, int n, int k, int32_t *out) {
    if (k <= 0) return 0;
    for (int g = SPEC_NGRAM_MAX; g >= SPEC_NGRAM_MIN; g--) {
        if (g >= n) continue;
        const int32_t *suffix = tokens + n - g;
        // most recent earlier occurrence tokens[i, i + g), i + g < n + 0 so one token follows it
        for (int i = n - g - 1; i >= 0; i--) {
            if (tokens[i + g - 1] != suffix[g - 1] || memcmp(tokens + i, suffix, (size_t)g * sizeof *tokens)) continue;
            // continuation: position t of the sequence extended by the proposal (t - n < j when t >= n)
            for (int j = 0; j < k; j++) {
                const int t = i + g + j;
                out[j] = t < n ? tokens[t] : out[t - n];
            }
            return k;
        }
    }
    return 0;
}

// The text of id (special tokens included) into *buf (grown as needed, NUL-terminated); its
// length, or SIZE_MAX when out of memory.
static size_t piece_of(const tv_tokenizer *t, int32_t id, char **buf, size_t *cap) {
    size_t full = 0;
    size_t n = tv_token_to_piece(t, id, true, *buf, *cap, &full);
    if (full >= *cap) {
        char *grown = mem_malloc(full + 1);
        if (!grown) return SIZE_MAX;
        free(*buf);
        *buf = grown;
        *cap = full + 1;
        n = tv_token_to_piece(t, id, true, *buf, *cap, &full);
    }
    (*buf)[n] = 0;
    return n;
}

tv_status spec_check_vocab(const tv_model *target, const tv_model *draft, tv_error *err) {
    const int32_t nt = tv_model_n_vocab(target), nd = tv_model_n_vocab(draft);
    if (nt != nd)
        return err_fail(err, TV_ERR_INVALID, "draft model: its vocabulary has %d tokens, the target's %d (they must be the same)",
                        nd, nt);
    const tv_tokenizer *tt = tv_model_tokenizer(target), *td = tv_model_tokenizer(draft);
    if (!tt || !td) return TV_OK;
    size_t ca = 64, cb = 64;
    char *a = mem_malloc(ca), *b = mem_malloc(cb);
    tv_status st = TV_OK;
    if (!a || !b) st = err_fail(err, TV_ERR_NOMEM, "draft model: out of memory comparing vocabularies");
    for (int32_t id = 0; id < nt && !st; id++) {
        const size_t la = piece_of(tt, id, &a, &ca), lb = piece_of(td, id, &b, &cb);
        if (la == SIZE_MAX || lb == SIZE_MAX) st = err_fail(err, TV_ERR_NOMEM, "draft model: out of memory comparing vocabularies");
        else if (la != lb || memcmp(a, b, la))
            st = err_fail(err, TV_ERR_INVALID, "draft model: token %d is \"%.40s\" in the draft's vocabulary but \"%.40s\" in the target's "
                          "(the vocabularies must be the same)", id, b, a);
    }
    free(a);
    free(b);
    return st;
}

// ---- the load gate's cost model ----

#define GATE_BUCKETS 112   // rows 1..16 one each, then 8 per doubling up to 16 * 2^12

// The samples of one range of rows: moving averages of their time and rows.
typedef struct {
    double t, rows;      // seconds, rows
    uint32_t n;          // samples
    uint64_t stamp;      // the gate's decision count at the last sample
} cost_bucket;

typedef struct {
    cost_bucket b[GATE_BUCKETS];
} cost_curve;

// The speculative rounds of one range of B (decoding sequences): the realized correction's sums
// (spec.h) as of decision `stamp`.
typedef struct {
    double sum_log, n;   // decayed sum of log(realized / predicted seconds), decayed count of samples
    double sum_abs;      // decayed sum of |log(realized / predicted seconds)| (the margin's error)
    double b;            // the samples' B (their decayed mean)
    uint64_t stamp;
} realized_bucket;

struct spec_gate {
    cost_curve round, draft;       // T(n) and D(n) (spec.h)
    realized_bucket real[GATE_BUCKETS];   // by bucket_of(B)
    struct {                       // the last decision, until spec_gate_realized
        int k, B;
        bool is_informed;          // every size its prediction used measured past the provisional sample
        double pred_s;             // its seconds, catch-up in full, uncorrected
    } last;
    double draft_share;            // D(n) / T(n) assumed before a draft pass is measured
    double acc_hit, acc_tried;     // decayed counts: guesses accepted, guesses tried (accepted + first rejected)
    uint64_t n_decided;
};

static int bucket_of(int n) {
    if (n <= 16) return n < 1 ? 0 : n - 1;
    const int k = 16 + (int)(8.0 * log2((double)n / 16.0));
    return k < GATE_BUCKETS ? k : GATE_BUCKETS - 1;
}

// A sample of n rows: a bucket's first is provisional (cold caches: a first round pages weights in
// and can take several times as long), the second replaces it, later ones average.
static void curve_add(cost_curve *c, int n, double seconds, uint64_t stamp) {
    if (!(seconds > 0.0) || n < 1) return;
    cost_bucket *b = &c->b[bucket_of(n)];
    b->n++;
    double w = b->n <= 2 ? 1.0 : 1.0 / (double)(b->n - 1);
    if (w < SPEC_GATE_EMA) w = SPEC_GATE_EMA;
    b->t += w * (seconds - b->t);
    b->rows += w * ((double)n - b->rows);
    b->stamp = stamp;
}

// The buckets around n rows past their provisional sample (the provisional ones while there are
// no others): *lo the last with mean rows <= n (and *lo2 the one before it), *hi the first above.
static void curve_near(const cost_curve *c, int n, const cost_bucket **lo2, const cost_bucket **lo, const cost_bucket **hi) {
    uint32_t min_n = 1;
    for (int i = 0; i < GATE_BUCKETS && min_n == 1; i++) min_n = c->b[i].n >= 2 ? 2 : 1;
    *lo = *lo2 = *hi = NULL;
    for (int i = 0; i < GATE_BUCKETS && !*hi; i++) {   // buckets' rows increase with i
        const cost_bucket *b = &c->b[i];
        if (b->n < min_n) continue;
        if (b->rows <= (double)n) *lo2 = *lo, *lo = b;
        else *hi = b;
    }
}

// The predicted time of n rows (spec.h), or -1 before any sample.
static double curve_at(const cost_curve *c, int n) {
    const cost_bucket *lo, *lo2, *hi;
    curve_near(c, n, &lo2, &lo, &hi);
    if (lo && hi) return lo->t + (hi->t - lo->t) * ((double)n - lo->rows) / (hi->rows - lo->rows);
    if (hi) return hi->t;
    if (!lo) return -1.0;
    double slope = lo2 ? (lo->t - lo2->t) / (lo->rows - lo2->rows) : 0.0;
    if (slope < 0.0) slope = 0.0;
    return lo->t + slope * ((double)n - lo->rows);
}

// Whether n rows' bucket has no sample past its provisional one, or none from the last
// SPEC_GATE_STALE decisions.
static bool curve_stale(const cost_curve *c, int n, uint64_t now) {
    const cost_bucket *b = &c->b[bucket_of(n)];
    return b->n < 2 || now - b->stamp > SPEC_GATE_STALE;
}

spec_gate *spec_gate_create(double draft_share) {
    spec_gate *g = mem_calloc(1, sizeof *g);
    if (g) g->draft_share = draft_share;
    return g;
}

void spec_gate_free(spec_gate *g) { free(g); }

void spec_gate_time_round(spec_gate *g, int n_rows, double seconds) { curve_add(&g->round, n_rows, seconds, g->n_decided); }

void spec_gate_time_draft(spec_gate *g, int n_rows, double seconds) { curve_add(&g->draft, n_rows, seconds, g->n_decided); }

// exp(-(decisions since stamp) / SPEC_GATE_REAL_TAU): what a bucket's old samples still weigh.
static double real_decay(uint64_t stamp, uint64_t now) { return exp(-(double)(now - stamp) / SPEC_GATE_REAL_TAU); }

void spec_gate_realized(spec_gate *g, double seconds) {
    const bool use = g->last.k > 0 && g->last.is_informed && seconds > 0.0 && g->last.pred_s > 0.0;
    g->last.k = 0;
    if (!use) return;
    realized_bucket *b = &g->real[bucket_of(g->last.B)];
    double x = log(seconds / g->last.pred_s);
    const double lim = log(SPEC_GATE_REAL_CLAMP);
    x = x > lim ? lim : x < -lim ? -lim : x;
    const double e = real_decay(b->stamp, g->n_decided);
    b->sum_log = b->sum_log * e + x;
    b->sum_abs = b->sum_abs * e + fmin(fabs(x), SPEC_GATE_ERR_CLAMP);
    b->n = b->n * e + 1.0;
    b->b += ((double)g->last.B - b->b) / b->n;
    b->stamp = g->n_decided;
}

// f(B) (spec.h): realized / predicted seconds of speculative rounds at B, 1 without samples; and
// *err, the error of those predictions (the decayed mean |log(realized / predicted)|, the prior one
// sample at SPEC_GATE_ERR_FLOOR), weighted alike.
static double realized_factor(const spec_gate *g, int B, double *err) {
    double s = 0.0, a = SPEC_GATE_REAL_PRIOR * SPEC_GATE_ERR_FLOOR, n = SPEC_GATE_REAL_PRIOR;
    for (int i = 0; i < GATE_BUCKETS; i++) {
        const realized_bucket *b = &g->real[i];
        if (!(b->n > 0.0)) continue;
        const double w = exp2(-8.0 * fabs(log2(b->b / (double)B))) * real_decay(b->stamp, g->n_decided);
        s += w * b->sum_log;
        a += w * b->sum_abs;
        n += w * b->n;
    }
    *err = a / n;
    return exp(s / n);
}

void spec_gate_accepted(spec_gate *g, int n_draft, int n_accepted) {
    if (n_draft < 1) return;
    g->acc_hit = g->acc_hit * SPEC_GATE_ACCEPT_DECAY + n_accepted;
    g->acc_tried = g->acc_tried * SPEC_GATE_ACCEPT_DECAY + n_accepted + (n_accepted < n_draft);
}

double spec_gate_acceptance(const spec_gate *g) { return (g->acc_hit + 1.0) / (g->acc_tried + 2.0); }

// A predicted draft pass of n rows: between measured sizes interpolated; outside them the nearest
// measured size scaled as the target's rounds scale (a draft is a smaller model of the same shape,
// which T knows at sizes the draft never ran, such as a catch-up's); before any, draft_share of T.
// While every draft sample is provisional (a cold draft's first passes: page faults, cold caches,
// several times their later cost), the prior bounds them: a gate that speculated once with a short
// cap (the acceptance prior) and went plain on a cold pass would otherwise never run the draft
// again to measure it (the 2026-12-07 windows' single stream, 1-2 of 377 rounds speculated).
static double draft_at(const spec_gate *g, int n) {
    const cost_bucket *lo, *lo2, *hi;
    curve_near(&g->draft, n, &lo2, &lo, &hi);
    const double tn = curve_at(&g->round, n), prior = tn > 0.0 ? g->draft_share * tn : 0.0;
    const cost_bucket *m = lo ? lo : hi;
    if (!m) return prior;
    double v;
    if (lo && hi) v = curve_at(&g->draft, n);
    else {
        const double tm = curve_at(&g->round, (int)(m->rows + 0.5));
        v = tn > 0.0 && tm > 0.0 ? m->t * tn / tm : m->t;
    }
    return m->n < 2 && prior > 0.0 && prior < v ? prior : v;   // (curve_near: m provisional only while all are)
}

int spec_gate_decide(spec_gate *g, const spec_round *r, spec_choice *why) {
    spec_choice ch = {.cost_factor = 1.0, .margin = SPEC_GATE_ERR_FLOOR};
    const uint64_t now = ++g->n_decided;
    const int B = r->n_decode, P = r->n_other_rows;
    int n_with[TV_SPEC_MAX_TOKENS + 2] = {0};   // n_with[j]: sequences with at least j guesses
    int kmax = 0;
    for (int i = 0; i < B; i++) {
        const int gi = r->guesses[i] < TV_SPEC_MAX_TOKENS ? r->guesses[i] : TV_SPEC_MAX_TOKENS;
        for (int j = 1; j <= gi; j++) n_with[j]++;
        if (gi > kmax) kmax = gi;
    }
    const double tb = curve_at(&g->round, B), t0 = curve_at(&g->round, P + B);
    g->last.k = 0;
    if (why) *why = ch;
    // nothing to verify, or the plain round's size not measured past its provisional sample: a plain
    // round (which measures it)
    if (B < 1 || kmax == 0 || !(tb > 0.0) || !(t0 > 0.0) || (P == 0 && g->round.b[bucket_of(B)].n < 2)) return 0;
    ch.plain_tok_s = B / t0;
    const double c = tb / B, a = spec_gate_acceptance(g);
    double err;
    const double f = realized_factor(g, B, &err);   // what this batch size's speculative rounds realized
    ch.cost_factor = f;
    ch.margin = err > SPEC_GATE_ERR_FLOOR ? err : SPEC_GATE_ERR_FLOOR;
    // catch-up of a draft model: pass 0 runs it beside one row per sequence with guesses
    const double catchup = r->draft_passes && r->draft_catchup_rows > 0
                               ? draft_at(g, n_with[1] + r->draft_catchup_rows) - draft_at(g, n_with[1]) : 0.0;
    double best = 0.0, best_full = 0.0, aj = 1.0, gain = 0.0, drafting = 0.0;
    int best_k = 0, rows = 0, best_rows = 0;
    bool is_informed = true;   // (up to cap k) every guess pass's and the verification's size measured
    for (int k = 1; k <= kmax; k++) {   // cap k adds each sequence's k-th guess: one row, gain a^k, draft pass k - 1
        aj *= a;
        rows += n_with[k];
        gain += aj * n_with[k];
        if (r->draft_passes) {
            drafting += draft_at(g, n_with[k]);
            is_informed = is_informed && g->draft.b[bucket_of(n_with[k])].n >= 2;
        }
        double extra = curve_at(&g->round, P + B + rows) - t0;
        if (extra < 0.0) extra = 0.0;
        extra += drafting;
        const double spec_s = f * (t0 + extra + catchup / SPEC_GATE_CATCHUP);
        const double ratio = (t0 + gain * c) / spec_s;
        if (ratio <= best) continue;
        best = ratio;
        best_full = (t0 + gain * c) / (f * (t0 + extra + catchup));
        best_k = k;
        best_rows = rows;
        ch.spec_tok_s = (B + gain) / spec_s;
        ch.pred_s = t0 + extra + catchup;
        ch.pred_draft_s = drafting + catchup;
        ch.pred_gain = gain;
        g->last.is_informed = is_informed && g->round.b[bucket_of(P + B + rows)].n >= 2;
    }
    ch.k = best > 1.0 + ch.margin ? best_k : 0;
    if (now % SPEC_GATE_EXPLORE == 0) {   // re-measure the way not taken when its samples are old
        if (ch.k > 0 && curve_stale(&g->round, P + B, now)) ch.k = 0;
        else if (ch.k == 0 && best_full >= SPEC_GATE_EXPLORE_RATIO && curve_stale(&g->round, P + B + best_rows, now))
            ch.k = best_k;
    }
    if (ch.k > 0) {
        g->last.k = ch.k;
        g->last.B = B;
        g->last.pred_s = ch.pred_s;
    } else
        ch.pred_s = ch.pred_draft_s = ch.pred_gain = 0.0;
    if (why) *why = ch;
    return ch.k;
}
