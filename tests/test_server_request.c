// test_server_request.c — the request parser (src/server/request.c) against the OpenAI API
// reference's parameter rules: types, ranges, defaults, prompt forms, chat content parts, and the
// 400 error with the offending `param` for everything else.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "server/request.h"

#define VOCAB 512

static srv_request *parse(srv_api api, const char *body, srv_error *err) {
    memset(err, 0, sizeof *err);
    return srv_request_parse(api, body, strlen(body), VOCAB, NULL, err);
}

// Parses body expecting a 400 naming param (NULL: any/none).
static void expect_400(srv_api api, const char *body, const char *param) {
    srv_error e;
    srv_request *r = parse(api, body, &e);
    if (r) fail_msg("accepted: %s", body);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_true(e.message[0] != 0);
    if (param && strcmp(e.param, param) != 0) fail_msg("%s: param '%s', want '%s' (%s)", body, e.param, param, e.message);
}

static void test_completion_defaults(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"Hello\"}", &e);
    assert_non_null(r);
    assert_string_equal(r->model, "m");
    assert_int_equal(r->n_prompts, 1);
    assert_string_equal(r->prompts[0].text, "Hello");
    assert_null(r->prompts[0].ids);
    assert_int_equal(r->max_tokens, 16);   // OpenAI's completions default
    assert_int_equal(r->n, 1);
    assert_int_equal(r->logprobs, -1);
    assert_int_equal(r->sampling.logprobs, -1);
    assert_false(r->stream);
    assert_false(r->sampling.has_seed);
    assert_int_equal(r->n_stop, 0);
    assert_true(r->sampling.top_p == 1.0f);
    srv_request_free(r);
}

static void test_prompt_forms(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_COMPLETIONS, "{\"prompt\":[\"a\",\"b\",\"c\"]}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_prompts, 3);
    assert_string_equal(r->prompts[2].text, "c");
    srv_request_free(r);

    r = parse(SRV_API_COMPLETIONS, "{\"prompt\":[1, 2, 511]}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_prompts, 1);
    assert_int_equal(r->prompts[0].n_ids, 3);
    assert_int_equal(r->prompts[0].ids[2], 511);
    srv_request_free(r);

    r = parse(SRV_API_COMPLETIONS, "{\"prompt\":[[1, 2], [3], \"x\"]}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_prompts, 3);
    assert_int_equal(r->prompts[0].n_ids, 2);
    assert_int_equal(r->prompts[1].ids[0], 3);
    assert_string_equal(r->prompts[2].text, "x");
    srv_request_free(r);

    expect_400(SRV_API_COMPLETIONS, "{}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":null}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":7}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[]}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[[]]}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[512]}", "prompt");     // == n_vocab
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[-1]}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[1.5]}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[1, \"a\"]}", "prompt");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[{\"a\":1}]}", "prompt");
}

static void test_sampling_params(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_COMPLETIONS,
                           "{\"prompt\":\"a\",\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,"
                           "\"min_p\":0.05,\"seed\":-3,\"presence_penalty\":1.5,\"frequency_penalty\":-0.5,"
                           "\"repetition_penalty\":1.1,\"n\":3,\"best_of\":3,\"ignore_eos\":true,\"user\":\"u\","
                           "\"logit_bias\":{\"5\":-100,\"7\":2.5},\"logprobs\":3,\"stop\":[\"\\n\",\"\",\"END\"]}",
                           &e);
    if (!r) fail_msg("%s", e.message);
    assert_int_equal(r->max_tokens, 7);
    assert_true(r->sampling.temperature == 0.5f);
    assert_true(r->sampling.top_p == 0.9f);
    assert_int_equal(r->sampling.top_k, 40);
    assert_true(r->sampling.min_p == 0.05f);
    assert_true(r->sampling.has_seed);
    assert_true(r->sampling.seed == (uint64_t)(int64_t)-3);
    assert_true(r->sampling.presence_penalty == 1.5f);
    assert_true(r->sampling.frequency_penalty == -0.5f);
    assert_true(r->sampling.repetition_penalty == 1.1f);
    assert_int_equal(r->n, 3);
    assert_true(r->ignore_eos);
    assert_int_equal(r->sampling.n_logit_bias, 2);
    assert_ptr_equal(r->sampling.logit_bias_ids, r->bias_ids);
    assert_int_equal(r->bias_ids[0], 5);
    assert_true(r->bias_vals[0] == -100.0f);
    assert_int_equal(r->bias_ids[1], 7);
    assert_true(r->bias_vals[1] == 2.5f);
    assert_int_equal(r->logprobs, 3);
    assert_int_equal(r->sampling.logprobs, 3);
    assert_int_equal(r->n_stop, 2);   // the empty stop string is dropped
    assert_string_equal(r->stop[0], "\n");
    assert_string_equal(r->stop[1], "END");
    srv_request_free(r);

    r = parse(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":\"x\",\"temperature\":null,\"max_tokens\":null}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_stop, 1);
    assert_int_equal(r->max_tokens, 16);   // null = the default
    srv_request_free(r);

    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"temperature\":2.5}", "temperature");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"top_p\":0}", "top_p");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"top_p\":1.01}", "top_p");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"top_k\":-2}", "top_k");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"min_p\":2}", "min_p");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"presence_penalty\":3}", "presence_penalty");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"frequency_penalty\":-2.5}", "frequency_penalty");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"repetition_penalty\":0}", "repetition_penalty");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"seed\":1.5}", "seed");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":-5}", "max_tokens");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":1e12}", "max_tokens");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"n\":0}", "n");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"n\":129}", "n");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"n\":2,\"best_of\":3}", "best_of");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":[1]}", "stop");
    expect_400(SRV_API_COMPLETIONS,
               "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
               "\"13\",\"14\",\"15\",\"16\",\"17\"]}", "stop");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logit_bias\":{\"x\":1}}", "logit_bias");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logit_bias\":{\"512\":1}}", "logit_bias");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logit_bias\":{\"1\":101}}", "logit_bias");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logit_bias\":[1]}", "logit_bias");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logprobs\":21}", "logprobs");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"logprobs\":true}", "logprobs");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"ignore_eos\":1}", "ignore_eos");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"user\":5}", "user");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"suffix\":\"b\"}", "suffix");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"echo\":true,\"logprobs\":1}", "echo");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"xml\"}}", "response_format");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"model\":3}", "model");
}

// Structured-output fields: each spelling sets the constraint; bad specs are 400s with positions.
static void test_structured_fields(void **state) {
    (void)state;
    static const struct { const char *body; tv_constraint_kind kind; const char *spec; } ok[] = {
        {"{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_object\"}}", TV_CONSTRAINT_JSON_OBJECT, NULL},
        {"{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"strict\":true,"
         "\"schema\":{\"type\":\"integer\"}}}}", TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"integer\"}"},
        {"{\"prompt\":\"a\",\"structured_outputs\":{\"regex\":\"[ab]+\"}}", TV_CONSTRAINT_REGEX, "[ab]+"},
        {"{\"prompt\":\"a\",\"structured_outputs\":{\"choice\":[\"x\",\"y\"]}}", TV_CONSTRAINT_CHOICE, "[\"x\",\"y\"]"},
        {"{\"prompt\":\"a\",\"structured_outputs\":{\"grammar\":\"root ::= \\\"x\\\"\"}}", TV_CONSTRAINT_GRAMMAR, "root ::= \"x\""},
        {"{\"prompt\":\"a\",\"guided_json\":\"{\\\"type\\\":\\\"null\\\"}\"}", TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"null\"}"},
        {"{\"prompt\":\"a\",\"grammar\":\"root ::= [0-9]\"}", TV_CONSTRAINT_GRAMMAR, "root ::= [0-9]"},
        {"{\"prompt\":\"a\",\"json_schema\":{\"enum\":[1,2]}}", TV_CONSTRAINT_JSON_SCHEMA, "{\"enum\":[1,2]}"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":{\"type\":\"text\"}}", TV_CONSTRAINT_NONE, NULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        srv_error e;
        srv_request *r = parse(strstr(ok[i].body, "messages") ? SRV_API_CHAT : SRV_API_COMPLETIONS, ok[i].body, &e);
        if (!r) fail_msg("%s: %s", ok[i].body, e.message);
        assert_int_equal(r->constraint, ok[i].kind);
        if (ok[i].spec) assert_string_equal(r->constraint_spec, ok[i].spec);
        srv_request_free(r);
    }
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"grammar\":\"root ::= x\",\"structured_outputs\":{\"regex\":\"a\"}}",
               "grammar");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"structured_outputs\":{\"regex\":\"a(b\"}}", "structured_outputs");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"structured_outputs\":{\"choice\":\"a\"}}", "structured_outputs");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"json_schema\":{\"type\":\"integer\",\"minimum\":3,\"maximum\":1}}",
               "json_schema");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"json_schema\":{\"not\":{}}}", "json_schema");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\"}}", "response_format");
    srv_error e;
    assert_null(parse(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"structured_outputs\":{\"regex\":\"a(b\"}}", &e));
    assert_non_null(strstr(e.message, "offset 1"));
    assert_null(parse(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"grammar\":\"root ::= [a-\"}", &e));
    assert_non_null(strstr(e.message, "line 1, column 10"));
}

static void test_streaming_options(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", &e);
    assert_non_null(r);
    assert_true(r->stream);
    assert_true(r->include_usage);
    srv_request_free(r);
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "stream_options");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stream\":\"yes\"}", "stream");
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
               "stream_options.include_usage");
}

static void test_chat(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_CHAT,
                           "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                           "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}],"
                           "\"max_tokens\":5,\"max_completion_tokens\":9,\"logprobs\":true,\"top_logprobs\":4,"
                           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
                           &e);
    if (!r) fail_msg("%s", e.message);
    assert_int_equal(cJSON_GetArraySize(r->messages), 3);
    const cJSON *m1 = cJSON_GetArrayItem(r->messages, 1);
    assert_string_equal(cJSON_GetObjectItem(m1, "content")->valuestring, "a\nb");
    assert_int_equal(r->max_tokens, 9);   // max_completion_tokens wins
    assert_int_equal(r->logprobs, 4);
    assert_int_equal(r->sampling.logprobs, 4);
    assert_non_null(r->tools);
    assert_true(r->add_generation_prompt);
    srv_request_free(r);

    r = parse(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", &e);
    assert_non_null(r);
    assert_int_equal(r->logprobs, 0);   // chosen token only
    assert_int_equal(r->max_tokens, -1);  // chat: until the context is full
    srv_request_free(r);

    expect_400(SRV_API_CHAT, "{}", "messages");
    expect_400(SRV_API_CHAT, "{\"messages\":[]}", "messages");
    expect_400(SRV_API_CHAT, "{\"messages\":{}}", "messages");
    expect_400(SRV_API_CHAT, "{\"messages\":[\"hi\"]}", "messages[0]");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", "messages[0]");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0]");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":1}]}", "messages[0]");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
               "messages[1]");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}", "logprobs");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}",
               "top_logprobs");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":0}",
               "max_completion_tokens");
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "tools");
    // chat_template_kwargs: an object of template variables
    r = parse(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                            "\"chat_template_kwargs\":{\"enable_thinking\":false}}", &e);
    if (!r) fail_msg("%s", e.message);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r->kwargs, "enable_thinking")));
    srv_request_free(r);
    expect_400(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":[]}",
               "chat_template_kwargs");
}

static void test_malformed(void **state) {
    (void)state;
    expect_400(SRV_API_COMPLETIONS, "", NULL);
    expect_400(SRV_API_COMPLETIONS, "{", NULL);
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\"", NULL);
    expect_400(SRV_API_COMPLETIONS, "[1]", NULL);
    expect_400(SRV_API_COMPLETIONS, "\"prompt\"", NULL);
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\"} {}", NULL);
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":\"a\",}", NULL);
    expect_400(SRV_API_COMPLETIONS, "{'prompt':'a'}", NULL);
    srv_error e;
    // length-delimited: bytes after len are not part of the body
    const char *body = "{\"prompt\":\"a\"}GARBAGE";
    srv_request *r = srv_request_parse(SRV_API_COMPLETIONS, body, 14, VOCAB, NULL, &e);
    assert_non_null(r);
    srv_request_free(r);
    // nesting far beyond any real request is refused, not a stack overflow
    char deep[5000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    expect_400(SRV_API_COMPLETIONS, deep, NULL);
    // trailing whitespace is fine
    r = parse(SRV_API_COMPLETIONS, "{\"prompt\":\"a\"} \r\n", &e);
    assert_non_null(r);
    srv_request_free(r);
}

static void test_n_times_prompts_cap(void **state) {
    (void)state;
    // 3 prompts x n=100 = 300 > SRV_MAX_SEQS
    expect_400(SRV_API_COMPLETIONS, "{\"prompt\":[\"a\",\"b\",\"c\"],\"n\":100}", "n");
}

static void test_tokenize_detokenize(void **state) {
    (void)state;
    srv_error e;
    srv_request *r = parse(SRV_API_TOKENIZE, "{\"prompt\":\"hi\",\"return_token_strs\":true}", &e);
    assert_non_null(r);
    assert_string_equal(r->prompts[0].text, "hi");
    assert_true(r->add_special_tokens);
    assert_true(r->return_token_strs);
    srv_request_free(r);
    r = parse(SRV_API_TOKENIZE, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"add_generation_prompt\":false}", &e);
    assert_non_null(r);
    assert_false(r->add_special_tokens);
    assert_false(r->add_generation_prompt);
    assert_null(r->kwargs);
    srv_request_free(r);
    expect_400(SRV_API_TOKENIZE, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":1}",
               "chat_template_kwargs");
    expect_400(SRV_API_TOKENIZE, "{}", "prompt");
    expect_400(SRV_API_TOKENIZE, "{\"prompt\":\"a\",\"messages\":[]}", "prompt");
    expect_400(SRV_API_TOKENIZE, "{\"prompt\":[1,2]}", "prompt");

    r = parse(SRV_API_DETOKENIZE, "{\"tokens\":[1,2,3]}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_tokens, 3);
    assert_int_equal(r->tokens[1], 2);
    srv_request_free(r);
    r = parse(SRV_API_DETOKENIZE, "{\"tokens\":[]}", &e);
    assert_non_null(r);
    assert_int_equal(r->n_tokens, 0);
    srv_request_free(r);
    expect_400(SRV_API_DETOKENIZE, "{}", "tokens");
    expect_400(SRV_API_DETOKENIZE, "{\"tokens\":[9999]}", "tokens");
    expect_400(SRV_API_DETOKENIZE, "{\"tokens\":\"1 2\"}", "tokens");
}

// The model's recommended sampling is what a request gets for the fields it does not set.
static void test_model_sampling_defaults(void **state) {
    (void)state;
    tv_sampling_params rec;
    tv_sampling_params_default(&rec);
    rec.temperature = 0.6f;
    rec.top_k = 20;
    rec.top_p = 0.9f;
    srv_error e;
    const char *body = "{\"model\":\"m\",\"prompt\":\"Hi\",\"temperature\":1.5}";
    srv_request *r = srv_request_parse(SRV_API_COMPLETIONS, body, strlen(body), VOCAB, &rec, &e);
    assert_non_null(r);
    assert_true(r->sampling.temperature == 1.5f && r->sampling.top_k == 20 && r->sampling.top_p == 0.9f);
    srv_request_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_sampling_defaults),
        cmocka_unit_test(test_completion_defaults), cmocka_unit_test(test_prompt_forms),
        cmocka_unit_test(test_sampling_params),     cmocka_unit_test(test_streaming_options),
        cmocka_unit_test(test_chat),                cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_n_times_prompts_cap), cmocka_unit_test(test_tokenize_detokenize),
        cmocka_unit_test(test_structured_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
