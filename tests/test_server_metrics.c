// test_server_metrics.c — the Prometheus exposition (src/server/metrics.c) against the text format
// 0.0.4 rules: cumulative `le` buckets with inclusive upper bounds, +Inf == _count, _sum, escaped
// label values, counters by label.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"

static void expect_line(const char *text, const char *line) {
    const char *p = text;
    size_t n = strlen(line);
    while ((p = strstr(p, line))) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return;
        p++;
    }
    fail_msg("missing line: %s\n--- exposition ---\n%s", line, text);
}

static void test_histogram_buckets(void **state) {
    (void)state;
    srv_metrics *m = srv_metrics_create("m");
    assert_non_null(m);
    srv_metrics_observe(m, SRV_H_TTFT, 0.005);   // on a bound: counts in that bucket (le is inclusive)
    srv_metrics_observe(m, SRV_H_TTFT, 0.0051);
    srv_metrics_observe(m, SRV_H_TTFT, 1000.0);  // beyond the last bound: +Inf only
    size_t n = 0;
    char *t = srv_metrics_render(m, &n);
    assert_non_null(t);
    assert_int_equal(strlen(t), n);
    expect_line(t, "# TYPE tinyvllm:time_to_first_token_seconds histogram");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.001\"} 0");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.005\"} 1");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.01\"} 2");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"40\"} 2");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 3");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_count{model_name=\"m\"} 3");
    expect_line(t, "tinyvllm:time_to_first_token_seconds_sum{model_name=\"m\"} 1000.0101");
    expect_line(t, "tinyvllm:e2e_request_latency_seconds_count{model_name=\"m\"} 0");
    free(t);
    srv_metrics_free(m);
}

static void test_counters_gauges_labels(void **state) {
    (void)state;
    srv_metrics *m = srv_metrics_create("a\"b\\c\nd");
    assert_non_null(m);
    srv_metrics_finished(m, TV_FINISH_STOP);
    srv_metrics_finished(m, TV_FINISH_ABORT);
    srv_metrics_finished(m, TV_FINISH_ABORT);
    srv_metrics_finished(m, TV_FINISH_NONE);   // not a finish: ignored
    srv_metrics_http(m, 200);
    srv_metrics_http(m, 429);
    srv_metrics_http(m, 200);
    tv_engine_stats st = {0};
    st.n_running = 3;
    st.n_waiting = 2;
    st.n_blocks_total = 100;
    st.n_blocks_free = 25;
    st.n_state_slots_total = 8;
    st.n_state_slots_free = 5;
    st.n_state_ckpt_total = 4;
    st.n_state_ckpt_held = 3;
    st.n_prompt_tokens = 1234;
    st.n_generated_tokens = 99;
    st.n_spec_drafts = 10;
    st.n_spec_draft_tokens = 40;
    st.n_spec_accepted_tokens = 13;
    st.n_spec_accepted_per_pos[0] = 8;
    st.n_spec_accepted_per_pos[1] = 5;
    st.n_spec_rounds = 7;
    st.n_spec_rounds_plain = 3;
    st.spec_rate_tok_s = 250.5;
    st.spec_plain_rate_tok_s = 120.25;
    st.spec_enabled = 1;
    st.spec_round_tokens = 3;
    st.spec_predicted_s = 1.5;
    st.spec_realized_s = 2.25;
    st.spec_predicted_draft_s = 0.5;
    st.spec_realized_draft_s = 0.75;
    st.spec_predicted_gain = 20.5;
    st.spec_realized_gain = 13;
    st.spec_cost_factor = 1.25;
    st.spec_margin = 0.0625;
    srv_metrics_engine(m, &st, 4);
    char *t = srv_metrics_render(m, NULL);
    assert_non_null(t);
    const char *L = "{model_name=\"a\\\"b\\\\c\\nd\"";
    char buf[256];
#define EXPECT(fmt, ...) do { snprintf(buf, sizeof buf, fmt, __VA_ARGS__); expect_line(t, buf); } while (0)
    EXPECT("tinyvllm:num_requests_running%s} 3", L);
    EXPECT("tinyvllm:num_requests_waiting%s} 6", L);   // engine queue + server hand-off
    EXPECT("tinyvllm:kv_cache_usage_perc%s} 0.75", L);
    EXPECT("tinyvllm:num_kv_blocks_free%s} 25", L);
    EXPECT("tinyvllm:num_state_slots_total%s} 8", L);
    EXPECT("tinyvllm:num_state_slots_free%s} 5", L);
    EXPECT("tinyvllm:num_state_checkpoints_total%s} 4", L);
    EXPECT("tinyvllm:num_state_checkpoints_held%s} 3", L);
    EXPECT("tinyvllm:prompt_tokens_total%s} 1234", L);
    EXPECT("tinyvllm:generation_tokens_total%s} 99", L);
    EXPECT("tinyvllm:request_success_total%s,finished_reason=\"stop\"} 1", L);
    EXPECT("tinyvllm:request_success_total%s,finished_reason=\"length\"} 0", L);
    EXPECT("tinyvllm:request_success_total%s,finished_reason=\"abort\"} 2", L);
    EXPECT("tinyvllm:http_responses_total%s,code=\"200\"} 2", L);
    EXPECT("tinyvllm:http_responses_total%s,code=\"429\"} 1", L);
    EXPECT("vllm:spec_decode_num_drafts_total%s} 10", L);
    EXPECT("vllm:spec_decode_num_draft_tokens_total%s} 40", L);
    EXPECT("vllm:spec_decode_num_accepted_tokens_total%s} 13", L);
    EXPECT("vllm:spec_decode_num_accepted_tokens_per_pos_total%s,position=\"0\"} 8", L);
    EXPECT("vllm:spec_decode_num_accepted_tokens_per_pos_total%s,position=\"1\"} 5", L);
    EXPECT("vllm:spec_decode_num_accepted_tokens_per_pos_total%s,position=\"2\"} 0", L);
    EXPECT("tinyvllm:spec_decode_enabled%s} 1", L);
    EXPECT("tinyvllm:spec_decode_round_tokens%s} 3", L);
    EXPECT("tinyvllm:spec_decode_rounds_total%s,decision=\"speculate\"} 7", L);
    EXPECT("tinyvllm:spec_decode_rounds_total%s,decision=\"plain\"} 3", L);
    EXPECT("tinyvllm:spec_decode_predicted_tokens_per_second%s,decision=\"speculate\"} 250.5", L);
    EXPECT("tinyvllm:spec_decode_predicted_tokens_per_second%s,decision=\"plain\"} 120.25", L);
    EXPECT("tinyvllm:spec_decode_round_seconds_total%s,kind=\"predicted\"} 1.5", L);
    EXPECT("tinyvllm:spec_decode_round_seconds_total%s,kind=\"realized\"} 2.25", L);
    EXPECT("tinyvllm:spec_decode_draft_seconds_total%s,kind=\"predicted\"} 0.5", L);
    EXPECT("tinyvllm:spec_decode_draft_seconds_total%s,kind=\"realized\"} 0.75", L);
    EXPECT("tinyvllm:spec_decode_gained_tokens_total%s,kind=\"predicted\"} 20.5", L);
    EXPECT("tinyvllm:spec_decode_gained_tokens_total%s,kind=\"realized\"} 13", L);
    EXPECT("tinyvllm:spec_decode_cost_factor%s} 1.25", L);
    EXPECT("tinyvllm:spec_decode_margin%s} 0.0625", L);
    free(t);
    srv_metrics_free(m);
    srv_metrics_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_counters_gauges_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
