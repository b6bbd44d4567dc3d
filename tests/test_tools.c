// test_tools.c — the reply parser of src/server/tools.c: reasoning, content and tool calls split
// out of generated text per model family (gpt-oss harmony, Hermes/Qwen, <think>), the same whether
// the text arrives whole or a few bytes at a time (streaming), with no markup left in content.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "server/tools.h"

static const char *const k_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";

typedef struct parsed {
    char content[1024], reasoning[1024];
    cJSON *calls;
} parsed;

static void append(char *dst, size_t cap, const srv_text *t) {
    const size_t have = strlen(dst), n = t->n < cap - 1 - have ? t->n : cap - 1 - have;
    if (n) memcpy(dst + have, t->p, n);
    dst[have + n] = 0;
}

static void take(srv_reply *r, parsed *o) {
    append(o->content, sizeof o->content, &r->content_out);
    append(o->reasoning, sizeof o->reasoning, &r->reasoning_out);
    srv_reply_take(r);
}

// Feeds text in pieces of chunk bytes, as a stream would.
static parsed run(const char *text, size_t chunk, bool reasoning, bool tools) {
    cJSON *defs = cJSON_Parse(k_tools);
    srv_request req = {0};
    req.tools = tools ? defs : NULL;
    req.reasoning = reasoning;
    srv_reply r;
    srv_reply_init(&r, &req, false);
    parsed o = {0};
    for (size_t i = 0, n = strlen(text); i < n; i += chunk) {
        srv_reply_feed(&r, text + i, n - i < chunk ? n - i : chunk);
        take(&r, &o);
    }
    o.calls = srv_reply_finish(&r);
    take(&r, &o);
    srv_reply_free(&r);
    cJSON_Delete(defs);
    return o;
}

// The reply parsed whole and in 1, 2, 3, 5 and 7-byte pieces gives content, reasoning and the
// calls (name, then arguments JSON, per call; NULL-terminated) exactly.
static void expect(const char *text, bool reasoning, const char *content, const char *reason, const char *const *calls) {
    static const size_t chunks[] = {100000, 1, 2, 3, 5, 7};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        parsed o = run(text, chunks[c], reasoning, true);
        if (strcmp(o.content, content)) fail_msg("chunk %zu: content '%s', expected '%s'", chunks[c], o.content, content);
        if (strcmp(o.reasoning, reason)) fail_msg("chunk %zu: reasoning '%s', expected '%s'", chunks[c], o.reasoning, reason);
        int n = 0;
        for (const cJSON *call = o.calls ? o.calls->child : NULL; call; call = call->next, n++) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name"), *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
            assert_non_null(calls[2 * n]);
            assert_string_equal(name->valuestring, calls[2 * n]);
            assert_string_equal(args->valuestring, calls[2 * n + 1]);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(call, "type")->valuestring, "function");
        }
        assert_null(calls[2 * n]);
        cJSON_Delete(o.calls);
    }
}

static void test_harmony(void **state) {
    (void)state;
    const char *none[] = {NULL};
    expect("<|channel|>analysis<|message|>Let me think.<|end|><|start|>assistant<|channel|>final<|message|>Hello!", true,
           "Hello!", "Let me think.", none);
    expect("<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
           "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}",
           true, "", "Need the weather.", (const char *[]){"get_weather", "{\"city\":\"Paris\"}", NULL});
    // the recipient in the role part, a terminator, then a second call
    expect("<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Oslo\"}<|call|>"
           "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\":\"Rome\"}<|call|>",
           true, "", "", (const char *[]){"get_weather", "{\"city\":\"Oslo\"}", "get_weather", "{\"city\":\"Rome\"}", NULL});
    // a function the request does not have, arguments that are not JSON: text, never markup
    expect("<|channel|>commentary to=functions.nope<|message|>{\"a\":1}<|call|>", true, "{\"a\":1}", "", none);
    expect("<|channel|>commentary to=functions.get_weather<|message|>{\"city\":<|call|>", true, "{\"city\":", "", none);
    // a commentary preamble is content; reasoning off puts analysis in content
    expect("<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>final<|message|>Done.", true,
           "Checking.Done.", "", none);
    expect("<|channel|>analysis<|message|>hmm<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>", false,
           "hmmok", "", none);
    // an unfinished header at the end is markup, dropped
    expect("<|channel|>final<|message|>Hi<|end|><|start|>assistant<|chan", true, "Hi", "", none);
}

static void test_other_families(void **state) {
    (void)state;
    const char *none[] = {NULL};
    expect("<think>hmm</think>\nHi there", true, "Hi there", "hmm", none);
    expect("<think>hmm</think>Hi", false, "<think>hmm</think>Hi", "", none);
    expect("Sure.<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}</tool_call>", true, "Sure.", "",
           (const char *[]){"get_weather", "{\"city\":\"Rome\"}", NULL});
    expect("[TOOL_CALLS] [{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Bern\"}}]", true, "", "",
           (const char *[]){"get_weather", "{\"city\":\"Bern\"}", NULL});
    expect("{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Nice\"}}", true, "", "",
           (const char *[]){"get_weather", "{\"city\":\"Nice\"}", NULL});
    expect("plain <|channel|> text", true, "plain <|channel|> text", "", none);
    // without tools and reasoning, everything is content as it came
    parsed o = run("<|channel|>final<|message|>x", 1, false, false);
    assert_string_equal(o.content, "<|channel|>final<|message|>x");
    assert_null(o.calls);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_harmony),
        cmocka_unit_test(test_other_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
