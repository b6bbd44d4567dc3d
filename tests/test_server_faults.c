// test_server_faults.c — the server when an allocation fails on the request path: a request whose
// admission fails is answered 503, one whose generation fails 500, both with an OpenAI-style error
// body (a stream ends with an error event and [DONE]); the server then serves the next requests
// with the same tokens as before. Every allocation point of a request is tried, through the
// library's test-only hook (util/alloc.h), over a real socket. Model: stories260K.gguf.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tinyvllm.h"
#include "tinyvllm_server.h"
#include "test_util.h"
#include "util/alloc.h"

static tv_model *g_model;
static tv_engine *g_engine;
static tv_server *g_server;

static int setup(void **state) {
    (void)state;
    if (test_load_shared_model("stories260K.gguf", &g_model)) return -1;
    if (!g_model) return 0;
    tv_error err = {0};
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.n_threads = 1;
    ec.max_num_seqs = 4;
    if (!(g_engine = tv_engine_create(g_model, &ec, &err))) { fprintf(stderr, "engine: %s\n", err.msg); return -1; }
    tv_server_config sc;
    tv_server_config_default(&sc);
    sc.port = 0;
    if (!(g_server = tv_server_start(g_model, g_engine, &sc, &err))) { fprintf(stderr, "server: %s\n", err.msg); return -1; }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    mem_fault_clear();
    tv_server_stop(g_server);
    tv_engine_free(g_engine);
    tv_model_free(g_model);
    return 0;
}


// POSTs body to path; the whole response (headers and body) into resp. Returns the HTTP status.
static int post(const char *path, const char *body, char *resp, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tv_server_port(g_server))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", path, strlen(body), body);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    size_t len = 0;
    for (ssize_t r; len + 1 < cap && (r = recv(fd, resp + len, cap - 1 - len, 0)) > 0;) len += (size_t)r;
    resp[len] = 0;
    close(fd);
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &status), 1);
    return status;
}

static const char *BLOCKING = "{\"prompt\": [1, 403, 407, 261, 379], \"max_tokens\": 24, \"temperature\": 0}";
static const char *STREAMING =
    "{\"prompt\": [1, 403, 407, 261, 379], \"max_tokens\": 24, \"temperature\": 0, \"stream\": true}";

// The "text" of a completion response (a copy into out).
static void completion_text(const char *resp, char *out, size_t cap) {
    const char *t = strstr(resp, "\"text\":\"");
    assert_non_null(t);
    t += 8;
    const char *end = strstr(t, "\",\"");
    assert_non_null(end);
    snprintf(out, cap, "%.*s", (int)(end - t), t);
}

static void assert_error_body(const char *resp, const char *type) {
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    assert_non_null(strstr(body, "{\"error\":{\"message\":"));
    assert_non_null(strstr(body, type));
}

static void test_each_allocation_of_a_request(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    static char resp[1 << 16];
    char clean[4096], again[4096];
    assert_int_equal(post("/v1/completions", BLOCKING, resp, sizeof resp), 200);   // warms the workspaces
    completion_text(resp, clean, sizeof clean);
    assert_true(strlen(clean) > 10);
    unsigned long a0 = mem_n_allocs();
    assert_int_equal(post("/v1/completions", BLOCKING, resp, sizeof resp), 200);
    const long n_points = (long)(mem_n_allocs() - a0);
    assert_true(n_points > 5);
    int n_500 = 0, n_503 = 0;
    for (long k = 0; k < n_points; k++) {
        mem_fault_inject(k, 1);
        int status = post("/v1/completions", BLOCKING, resp, sizeof resp);
        mem_fault_clear();
        if (status == 503) {          // admission: the engine could not take the request
            assert_error_body(resp, "\"code\":\"service_unavailable\"");
            assert_non_null(strstr(resp, "Retry-After: 1"));
            n_503++;
        } else {
            assert_int_equal(status, 500);   // generation failed
            assert_error_body(resp, "generation failed: out of memory");
            n_500++;
        }
        assert_int_equal(post("/v1/completions", BLOCKING, resp, sizeof resp), 200);
        completion_text(resp, again, sizeof again);
        assert_string_equal(again, clean);
    }
    print_message("%ld allocation points: %d answered 503, %d answered 500\n", n_points, n_503, n_500);
    assert_true(n_500 > 0 && n_503 > 0);
}

// A stream that fails after its first tokens: 200 (the headers are out), then an error event and
// [DONE]; the next stream is whole.
static void test_stream_fails_with_an_error_event(void **state) {
    SKIP_IF_NO(g_model, "stories260K.gguf");
    static char resp[1 << 16];
    assert_int_equal(post("/v1/completions", STREAMING, resp, sizeof resp), 200);
    unsigned long a0 = mem_n_allocs();
    assert_int_equal(post("/v1/completions", STREAMING, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"finish_reason\":\"length\""));
    const long n_points = (long)(mem_n_allocs() - a0);
    mem_fault_inject(n_points - 2, 1);   // late: some text is out already
    assert_int_equal(post("/v1/completions", STREAMING, resp, sizeof resp), 200);
    mem_fault_clear();
    const char *ev = strstr(resp, "data: {\"error\":{\"message\":\"generation failed: out of memory");
    assert_non_null(ev);
    assert_non_null(strstr(ev, "data: [DONE]"));
    assert_null(strstr(resp, "\"finish_reason\":\"length\""));
    assert_int_equal(post("/v1/completions", STREAMING, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"finish_reason\":\"length\""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_allocation_of_a_request),
        cmocka_unit_test(test_stream_fails_with_an_error_event),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
