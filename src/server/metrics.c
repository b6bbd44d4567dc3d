// metrics.c — counters, gauges and fixed-bucket histograms rendered as Prometheus text.
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 24
#define N_CODES 16

typedef struct hist_def {
    const char *name, *help;
    int n;                       // buckets, without +Inf
    double le[MAX_BUCKETS];      // upper bounds, increasing
} hist_def;

// Buckets as vLLM uses them for the latency histograms (seconds) and token counts.
static const hist_def HISTS[SRV_H_COUNT] = {
    [SRV_H_TTFT] = {"time_to_first_token_seconds", "Time from arrival to the first generated token.", 18,
                    {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0}},
    [SRV_H_TPOT] = {"time_per_output_token_seconds", "Mean time per output token after the first, per request.", 15,
                    {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0}},
    [SRV_H_E2E] = {"e2e_request_latency_seconds", "Time from arrival to the last token.", 17,
                   {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0}},
    [SRV_H_QUEUE] = {"request_queue_time_seconds", "Time from arrival until the engine accepted the request.", 12,
                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0}},
    [SRV_H_PROMPT_TOKENS] = {"request_prompt_tokens", "Prompt tokens per request.", 12,
                             {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}},
    [SRV_H_GEN_TOKENS] = {"request_generation_tokens", "Generated tokens per request.", 12,
                          {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}},
    [SRV_H_ITL] = {"inter_token_latency_seconds", "Time between a request's successive tokens.", 17,
                   {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}},
};

struct srv_metrics {
    pthread_mutex_t mu;
    char *model;                                    // label value, escaped
    uint64_t counts[SRV_H_COUNT][MAX_BUCKETS + 1];  // per bucket (not cumulative); last = +Inf
    double sums[SRV_H_COUNT];
    uint64_t finished[4];                           // by tv_finish_reason
    int codes[N_CODES];                             // HTTP status codes seen
    uint64_t code_counts[N_CODES];
    tv_engine_stats es;
    int n_queued;
};

srv_metrics *srv_metrics_create(const char *model_name) {
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    const char *src = model_name ? model_name : "";
    size_t n = strlen(src);
    m->model = malloc(2 * n + 1);
    if (!m->model) { free(m); return NULL; }
    char *w = m->model;
    for (size_t i = 0; i < n; i++) {  // label escaping: \ " and newline
        if (src[i] == '\\' || src[i] == '"') { *w++ = '\\'; *w++ = src[i]; }
        else if (src[i] == '\n') { *w++ = '\\'; *w++ = 'n'; }
        else *w++ = src[i];
    }
    *w = 0;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->model);
    free(m);
}

void srv_metrics_observe(srv_metrics *m, srv_hist h, double v) {
    if (!m || h < 0 || h >= SRV_H_COUNT) return;
    const hist_def *d = &HISTS[h];
    int b = 0;
    while (b < d->n && v > d->le[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->counts[h][b]++;
    m->sums[h] += v;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_finished(srv_metrics *m, tv_finish_reason r) {
    if (!m || r <= TV_FINISH_NONE || r > TV_FINISH_ABORT) return;
    pthread_mutex_lock(&m->mu);
    m->finished[r]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_http(srv_metrics *m, int status) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < N_CODES && m->codes[i] && m->codes[i] != status) i++;
    if (i < N_CODES) {
        m->codes[i] = status;
        m->code_counts[i]++;
    }
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_engine(srv_metrics *m, const tv_engine_stats *s, int n_queued) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->es = *s;
    m->n_queued = n_queued;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_engine_get(srv_metrics *m, tv_engine_stats *s, int *n_queued) {
    pthread_mutex_lock(&m->mu);
    *s = m->es;
    *n_queued = m->n_queued;
    pthread_mutex_unlock(&m->mu);
}

// ---- rendering into a growing buffer ----
typedef struct { char *p; size_t len, cap; bool oom; } buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = true; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, ncap);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = ncap;
    }
}

static void gauge(buf *b, const char *model, const char *name, const char *type, const char *help, double v) {
    bprintf(b, "# HELP tinyvllm:%s %s\n# TYPE tinyvllm:%s %s\ntinyvllm:%s{model_name=\"%s\"} %.17g\n", name, help, name,
            type, name, model, v);
}

char *srv_metrics_render(srv_metrics *m, size_t *len) {
    buf b = {malloc(8192), 0, 8192, false};
    if (!b.p) return NULL;
    pthread_mutex_lock(&m->mu);
    const tv_engine_stats *s = &m->es;
    const char *mn = m->model;
    gauge(&b, mn, "num_requests_running", "gauge", "Requests in the engine's running batch.", s->n_running);
    gauge(&b, mn, "num_requests_waiting", "gauge", "Requests waiting for a slot (engine queue plus server hand-off).",
          (double)s->n_waiting + m->n_queued);
    double usage = s->n_blocks_total > 0 ? 1.0 - (double)s->n_blocks_free / (double)s->n_blocks_total : 0.0;
    gauge(&b, mn, "kv_cache_usage_perc", "gauge", "Fraction of KV-cache blocks in use (1 = full).", usage);
    gauge(&b, mn, "num_kv_blocks_total", "gauge", "KV-cache blocks in the pool.", (double)s->n_blocks_total);
    gauge(&b, mn, "num_kv_blocks_free", "gauge", "KV-cache blocks free.", (double)s->n_blocks_free);
    gauge(&b, mn, "num_state_slots_total", "gauge", "Recurrent-state slots of a hybrid model (0: none).",
          (double)s->n_state_slots_total);
    gauge(&b, mn, "num_state_slots_free", "gauge", "Recurrent-state slots free.", (double)s->n_state_slots_free);
    gauge(&b, mn, "num_state_checkpoints_total", "gauge", "Prefix-cache state checkpoint slots of a hybrid model.",
          (double)s->n_state_ckpt_total);
    gauge(&b, mn, "num_state_checkpoints_held", "gauge", "State checkpoints kept with cached prefixes.",
          (double)s->n_state_ckpt_held);
    gauge(&b, mn, "prompt_tokens_total", "counter", "Prompt tokens processed.", (double)s->n_prompt_tokens);
    gauge(&b, mn, "generation_tokens_total", "counter", "Tokens generated.", (double)s->n_generated_tokens);
    gauge(&b, mn, "num_preemptions_total", "counter", "Preemptions of running requests.", (double)s->n_preemptions);
    gauge(&b, mn, "engine_steps_total", "counter", "Engine scheduling steps.", (double)s->n_steps);
    gauge(&b, mn, "pipeline_boundary_bytes_total", "counter",
          "Pipeline parallelism: bytes sent across each stage boundary (0 without --pp).", (double)s->n_pipeline_boundary_bytes);
    gauge(&b, mn, "pipeline_reply_bytes_total", "counter",
          "Pipeline parallelism: bytes the last stage returned to rank 0 (0 without --pp).", (double)s->n_pipeline_reply_bytes);
    // speculative decoding, under vLLM's names (zero when it is off)
    bprintf(&b, "# HELP vllm:spec_decode_num_drafts_total Verifications of proposed tokens.\n"
                "# TYPE vllm:spec_decode_num_drafts_total counter\n"
                "vllm:spec_decode_num_drafts_total{model_name=\"%s\"} %llu\n"
                "# HELP vllm:spec_decode_num_draft_tokens_total Proposed tokens.\n"
                "# TYPE vllm:spec_decode_num_draft_tokens_total counter\n"
                "vllm:spec_decode_num_draft_tokens_total{model_name=\"%s\"} %llu\n"
                "# HELP vllm:spec_decode_num_accepted_tokens_total Proposed tokens accepted.\n"
                "# TYPE vllm:spec_decode_num_accepted_tokens_total counter\n"
                "vllm:spec_decode_num_accepted_tokens_total{model_name=\"%s\"} %llu\n"
                "# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Proposed tokens accepted, by position.\n"
                "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter\n",
            mn, (unsigned long long)s->n_spec_drafts, mn, (unsigned long long)s->n_spec_draft_tokens, mn,
            (unsigned long long)s->n_spec_accepted_tokens);
    for (int j = 0; j < TV_SPEC_MAX_TOKENS; j++)
        bprintf(&b, "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"%s\",position=\"%d\"} %llu\n", mn, j,
                (unsigned long long)s->n_spec_accepted_per_pos[j]);
    // the load gate: whether speculation runs now, the rounds each way, the rates it decides on
    gauge(&b, mn, "spec_decode_enabled", "gauge",
          "1 while speculation pays at the current load (the load gate's cost model; 0 when it predicts plain decoding faster).",
          (double)s->spec_enabled);
    gauge(&b, mn, "spec_decode_round_tokens", "gauge",
          "Guesses per sequence the last decided round verified at most (0: plain).", (double)s->spec_round_tokens);
    bprintf(&b, "# HELP tinyvllm:spec_decode_rounds_total Decode rounds by the load gate's decision.\n"
                "# TYPE tinyvllm:spec_decode_rounds_total counter\n"
                "tinyvllm:spec_decode_rounds_total{model_name=\"%s\",decision=\"speculate\"} %llu\n"
                "tinyvllm:spec_decode_rounds_total{model_name=\"%s\",decision=\"plain\"} %llu\n"
                "# HELP tinyvllm:spec_decode_predicted_tokens_per_second Decoding rate the load gate predicted for the last round "
                "from measured costs, by decision.\n"
                "# TYPE tinyvllm:spec_decode_predicted_tokens_per_second gauge\n"
                "tinyvllm:spec_decode_predicted_tokens_per_second{model_name=\"%s\",decision=\"speculate\"} %.17g\n"
                "tinyvllm:spec_decode_predicted_tokens_per_second{model_name=\"%s\",decision=\"plain\"} %.17g\n",
            mn, (unsigned long long)s->n_spec_rounds, mn, (unsigned long long)s->n_spec_rounds_plain, mn, s->spec_rate_tok_s,
            mn, s->spec_plain_rate_tok_s);
    // what the speculative rounds realized of the cost model's predictions (the gate corrects by it)
    static const char *const REAL_NAMES[3] = {"spec_decode_round_seconds_total", "spec_decode_draft_seconds_total",
                                              "spec_decode_gained_tokens_total"};
    static const char *const REAL_HELP[3] = {
        "Time of the rounds that speculated (draft passes, target round, sampling): as predicted (uncorrected) and as taken.",
        "Of it, the draft passes.",
        "Tokens the rounds that speculated gained (accepted guesses), as predicted and as accepted."};
    const double real[3][2] = {{s->spec_predicted_s, s->spec_realized_s},
                               {s->spec_predicted_draft_s, s->spec_realized_draft_s},
                               {s->spec_predicted_gain, s->spec_realized_gain}};
    for (int i = 0; i < 3; i++)
        bprintf(&b, "# HELP tinyvllm:%s %s\n# TYPE tinyvllm:%s counter\n"
                    "tinyvllm:%s{model_name=\"%s\",kind=\"predicted\"} %.17g\n"
                    "tinyvllm:%s{model_name=\"%s\",kind=\"realized\"} %.17g\n",
                REAL_NAMES[i], REAL_HELP[i], REAL_NAMES[i], REAL_NAMES[i], mn, real[i][0], REAL_NAMES[i], mn, real[i][1]);
    gauge(&b, mn, "spec_decode_cost_factor", "gauge",
          "The load gate's correction of a speculative round's predicted time in the last decided round (realized / predicted "
          "at its batch size, drifting back to 1 without new samples).",
          s->spec_cost_factor);
    gauge(&b, mn, "spec_decode_margin", "gauge",
          "The relative gain over plain decoding the load gate required of speculation in the last decided round: the measured "
          "error of its predictions at that batch size (mean |log(realized / predicted seconds)|), at least 0.02.",
          s->spec_margin);

    static const char *REASONS[4] = {"", "stop", "length", "abort"};
    bprintf(&b, "# HELP tinyvllm:request_success_total Finished engine requests by finish reason.\n"
                "# TYPE tinyvllm:request_success_total counter\n");
    for (int r = 1; r < 4; r++)
        bprintf(&b, "tinyvllm:request_success_total{model_name=\"%s\",finished_reason=\"%s\"} %llu\n", mn, REASONS[r],
                (unsigned long long)m->finished[r]);
    bprintf(&b, "# HELP tinyvllm:http_responses_total HTTP responses by status code.\n"
                "# TYPE tinyvllm:http_responses_total counter\n");
    for (int i = 0; i < N_CODES && m->codes[i]; i++)
        bprintf(&b, "tinyvllm:http_responses_total{model_name=\"%s\",code=\"%d\"} %llu\n", mn, m->codes[i],
                (unsigned long long)m->code_counts[i]);

    for (int h = 0; h < SRV_H_COUNT; h++) {
        const hist_def *d = &HISTS[h];
        bprintf(&b, "# HELP tinyvllm:%s %s\n# TYPE tinyvllm:%s histogram\n", d->name, d->help, d->name);
        uint64_t cum = 0;
        for (int i = 0; i < d->n; i++) {
            cum += m->counts[h][i];
            bprintf(&b, "tinyvllm:%s_bucket{model_name=\"%s\",le=\"%g\"} %llu\n", d->name, mn, d->le[i], (unsigned long long)cum);
        }
        cum += m->counts[h][d->n];
        bprintf(&b, "tinyvllm:%s_bucket{model_name=\"%s\",le=\"+Inf\"} %llu\n", d->name, mn, (unsigned long long)cum);
        bprintf(&b, "tinyvllm:%s_sum{model_name=\"%s\"} %.17g\n", d->name, mn, m->sums[h]);
        bprintf(&b, "tinyvllm:%s_count{model_name=\"%s\"} %llu\n", d->name, mn, (unsigned long long)cum);
    }
    pthread_mutex_unlock(&m->mu);
    if (b.oom) { free(b.p); return NULL; }
    if (len) *len = b.len;
    return b.p;
}
