// metrics.h — Prometheus metrics of the server (text exposition format 0.0.4). Thread-safe: HTTP
// threads count responses, the engine thread observes latencies and publishes engine gauges.
// Names follow vLLM's (vllm:* -> tinyvllm:*) where they mean the same thing; see docs/server.md.
#ifndef TV_SERVER_METRICS_H
#define TV_SERVER_METRICS_H

#include <stddef.h>

#include "tinyvllm.h"

typedef struct srv_metrics srv_metrics;

typedef enum srv_hist {
    SRV_H_TTFT = 0,     // tinyvllm:time_to_first_token_seconds  (arrival -> first token)
    SRV_H_TPOT,         // tinyvllm:time_per_output_token_seconds (per request: (e2e - ttft) / (gen - 1))
    SRV_H_E2E,          // tinyvllm:e2e_request_latency_seconds
    SRV_H_QUEUE,        // tinyvllm:request_queue_time_seconds (arrival -> admitted to the engine)
    SRV_H_PROMPT_TOKENS,  // tinyvllm:request_prompt_tokens
    SRV_H_GEN_TOKENS,     // tinyvllm:request_generation_tokens
    SRV_H_ITL,            // tinyvllm:inter_token_latency_seconds (per step of a request, per token)
    SRV_H_COUNT
} srv_hist;

srv_metrics *srv_metrics_create(const char *model_name);  // NULL on OOM
void srv_metrics_free(srv_metrics *m);

void srv_metrics_observe(srv_metrics *m, srv_hist h, double v);
// One finished engine request by reason (tinyvllm:request_success_total{finished_reason}).
void srv_metrics_finished(srv_metrics *m, tv_finish_reason r);
// One HTTP response by status code (tinyvllm:http_responses_total{code}).
void srv_metrics_http(srv_metrics *m, int status);
// Engine gauges and counters as of the last step; n_queued: requests accepted but not yet in the engine.
void srv_metrics_engine(srv_metrics *m, const tv_engine_stats *s, int n_queued);
void srv_metrics_engine_get(srv_metrics *m, tv_engine_stats *s, int *n_queued);

// The exposition text, malloc'ed, NUL-terminated; NULL on OOM.
char *srv_metrics_render(srv_metrics *m, size_t *len);

#endif
