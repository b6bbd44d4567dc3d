// test_chat_prompt.c — conversation -> prompt (src/chat/chat.h) on the Llama 2 SPM vocab:
//   * a Mistral template renders Mistral's documented v7 prompt bytes, with <s> / </s> taken from
//     the vocabulary, and tokenizes to exactly one BOS (the template writes it, the vocabulary adds it: one);
//   * the plain fallback transcript bytes, its BOS, and typed "<s>" staying text;
//   * fitting: the fewest oldest exchanges go (checked against every budget around the boundaries,
//     the expected history built by hand), the system prompt and the last message stay, an
//     exchange takes along the messages up to the next user message, a hopeless budget leaves the
//     history untouched;
//   * the public JSON-text API (tv_chat_render, tv_chat_fit) agrees with the cJSON-level one, passes
//     extra template variables and OpenAI tool-call arguments through as templates expect them;
//     a chat's own template variables (tv_chat_params.kwargs_json) under a render's.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "chat/chat.h"
#include "tokenizer/tokenizer.h"

#include "test_util.h"

typedef struct fixture {
    gguf_ctx *g;
    tv_tokenizer *tok;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", shared_dir());
    tv_error err = {0};
    if ((fx->g = gguf_open(path, &err))) {
        fx->tok = tokenizer_from_gguf(fx->g, &err);
        assert_non_null(fx->tok);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tv_tokenizer_free(fx->tok);
    gguf_close(fx->g);
    free(fx);
    return 0;
}

static const tv_tokenizer *need_tok(void **state) {
    fixture *fx = *state;
    if (!fx->tok) { printf("SKIP: %s/vocab/ggml-vocab-llama-spm.gguf not found\n", shared_dir()); skip(); }
    return fx->tok;
}

// [{"role": roles[i], "content": contents[i]}...]
static cJSON *msgs(int n, const char *const *roles, const char *const *contents) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", roles[i]);
        cJSON_AddStringToObject(m, "content", contents[i]);
        cJSON_AddItemToArray(a, m);
    }
    return a;
}

static size_t count_id(const int32_t *ids, size_t n, int32_t id) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ids[i] == id;
    return c;
}

// A chat over tok with template src (NULL: plain), bos/eos from the vocabulary.
static tv_chat *chat_create(const tv_tokenizer *tok, const char *src, size_t len, tv_error *err) {
    tv_chat_params p = {0};
    p.template_src = src;
    p.template_len = len;
    p.tokenizer = tok;
    return tv_chat_create(&p, err);
}

static void test_mistral_template(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    char path[1024];
    snprintf(path, sizeof path, "%s/chat-templates/Mistral-Small-3.2-24B-Instruct-2506.jinja", shared_dir());
    size_t len = 0;
    char *src = read_all(path, &len);
    if (!src) { printf("SKIP: %s not found\n", path); skip(); }
    tv_error err = {0};
    tv_chat *p = chat_create(tok, src, len, &err);
    assert_non_null(p);
    assert_true(tv_chat_has_template(p));
    assert_null(tv_chat_stop(p));
    const char *roles[] = {"system", "user", "assistant", "user"};
    const char *texts[] = {"Be brief.", "hello", "hi", "again"};
    cJSON *m = msgs(4, roles, texts);
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(chat_encode(p, m, &text, &ids, &n, &err), TV_OK);
    // Mistral's v7 format (mistral-common): BOS, system prompt block, [INST] turns, EOS after replies
    assert_string_equal(text, "<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]hello[/INST]hi</s>[INST]again[/INST]");
    assert_true(n > 2);
    assert_int_equal(ids[0], 1);                 // <s> of the Llama 2 vocab, written by the template...
    assert_int_equal(count_id(ids, n, 1), 1);    // ...and not doubled
    assert_int_equal(count_id(ids, n, 2), 1);    // </s> parsed as the special token
    free(text);
    free(ids);
    cJSON_Delete(m);
    tv_chat_free(p);
    free(src);
}

static void test_plain_format(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    tv_error err = {0};
    tv_chat *p = chat_create(tok, NULL, 0, &err);
    assert_non_null(p);
    assert_false(tv_chat_has_template(p));
    assert_string_equal(tv_chat_stop(p), "\nUser:");
    const char *roles[] = {"system", "user", "assistant", "user"};
    const char *texts[] = {"Be brief.", "hello", "hi", "say <s> please"};
    cJSON *m = msgs(4, roles, texts);
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(chat_encode(p, m, &text, &ids, &n, &err), TV_OK);
    assert_string_equal(text, "Be brief.\n\nUser: hello\nAssistant: hi\nUser: say <s> please\nAssistant:");
    assert_int_equal(ids[0], 1);                 // the tokenizer's default BOS
    assert_int_equal(count_id(ids, n, 1), 1);    // typed "<s>" stays text
    free(text);
    free(ids);
    cJSON_Delete(m);
    tv_chat_free(p);
}

static void test_malformed_messages(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    tv_error err = {0};
    tv_chat *p = chat_create(tok, NULL, 0, &err);
    assert_non_null(p);
    cJSON *m = cJSON_Parse("[{\"role\":\"user\",\"content\":3}]");
    char *out = (char *)1;
    assert_int_equal(chat_prompt_render(p, m, &out, &err), TV_ERR_INVALID);
    assert_null(out);
    assert_non_null(strstr(err.msg, "message 0"));
    cJSON_Delete(m);
    m = cJSON_Parse("{\"role\":\"user\"}");
    assert_int_equal(chat_prompt_render(p, m, &out, &err), TV_ERR_INVALID);
    cJSON_Delete(m);
    tv_chat_free(p);
}

static size_t n_tokens(const tv_chat *p, const cJSON *m) {
    int32_t *ids = NULL;
    size_t n = 0;
    tv_error err = {0};
    assert_int_equal(chat_encode(p, m, NULL, &ids, &n, &err), TV_OK);
    free(ids);
    return n;
}

// Every budget from "only the last exchange fits" to "everything fits": fit drops the fewest
// exchanges, and leaves exactly the hand-built expected history.
static void test_fit_fewest_oldest(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    tv_error err = {0};
    tv_chat *p = chat_create(tok, NULL, 0, &err);
    assert_non_null(p);
    // system, then 4 exchanges; exchange 1 has an assistant greeting before it, exchange 2 a tool
    // message inside it
    const char *roles[] = {"system", "assistant", "user", "assistant", "user", "assistant", "tool",
                           "user", "assistant", "user"};
    const char *texts[] = {"You are terse.", "Welcome!", "first question about rivers", "rivers flow",
                           "second question about mountains", "calling a tool", "tool says: tall",
                           "third question about oceans", "oceans are deep", "fourth question"};
    const int n_msgs = 10;
    // expected[k]: the history after dropping k exchanges (indices kept), built by hand
    const int keep[4][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
        {0, 4, 5, 6, 7, 8, 9, -1},
        {0, 7, 8, 9, -1},
        {0, 9, -1},
    };
    cJSON *expected[4];
    size_t need[4];
    for (int k = 0; k < 4; k++) {
        const char *r[10], *t[10];
        int n = 0;
        for (int i = 0; i < 10 && keep[k][i] >= 0; i++) { r[n] = roles[keep[k][i]]; t[n] = texts[keep[k][i]]; n++; }
        expected[k] = msgs(n, r, t);
        need[k] = n_tokens(p, expected[k]);
        if (k) assert_true(need[k] < need[k - 1]);
    }
    for (size_t budget = need[3]; budget <= need[0] + 1; budget++) {
        int want = 0;
        while (need[want] > budget) want++;
        cJSON *h = msgs(n_msgs, roles, texts);
        int n_dropped = -1;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        char *text = NULL;
        assert_int_equal(chat_fit(p, h, budget, &n_dropped, &text, &ids, &n_ids, &err), TV_OK);
        assert_int_equal(n_dropped, want);
        assert_true(cJSON_Compare(h, expected[want], true));
        assert_int_equal(n_ids, need[want]);
        assert_true(n_ids <= budget);
        assert_non_null(strstr(text, "You are terse."));
        assert_non_null(strstr(text, "fourth question"));
        free(ids);
        free(text);
        cJSON_Delete(h);
    }
    // below the last exchange alone: TV_ERR_RANGE with the numbers, history untouched
    cJSON *h = msgs(n_msgs, roles, texts);
    cJSON *orig = cJSON_Duplicate(h, true);
    int32_t *ids = (int32_t *)1;
    size_t n_ids = 7;
    assert_int_equal(chat_fit(p, h, need[3] - 1, NULL, NULL, &ids, &n_ids, &err), TV_ERR_RANGE);
    assert_null(ids);
    assert_int_equal(n_ids, 0);
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, "needs %zu tokens", need[3]);
    assert_non_null(strstr(err.msg, want_msg));
    assert_true(cJSON_Compare(h, orig, true));
    cJSON_Delete(h);
    cJSON_Delete(orig);
    for (int k = 0; k < 4; k++) cJSON_Delete(expected[k]);
    tv_chat_free(p);
}

// Without a system message the first exchange starts at index 0; a lone message never drops.
static void test_fit_no_system(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    tv_error err = {0};
    tv_chat *p = chat_create(tok, NULL, 0, &err);
    assert_non_null(p);
    const char *roles[] = {"user", "assistant", "user"};
    const char *texts[] = {"one two three four five", "six seven", "eight"};
    cJSON *h = msgs(3, roles, texts);
    cJSON *last = msgs(1, roles + 2, texts + 2);
    size_t n_last = n_tokens(p, last);
    int n_dropped = -1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(chat_fit(p, h, n_last, &n_dropped, NULL, &ids, &n_ids, &err), TV_OK);
    assert_int_equal(n_dropped, 1);
    assert_true(cJSON_Compare(h, last, true));
    assert_int_equal(n_ids, n_last);
    free(ids);
    assert_int_equal(chat_fit(p, h, n_last - 1, &n_dropped, NULL, &ids, &n_ids, &err), TV_ERR_RANGE);
    assert_true(cJSON_Compare(h, last, true));
    cJSON_Delete(h);
    cJSON_Delete(last);
    tv_chat_free(p);
}

// tv_chat_render / tv_chat_fit take and give JSON text; kwargs become template variables (and
// override the standard ones); openai turns tool-call argument strings into objects.
static void test_public_api(void **state) {
    const tv_tokenizer *tok = need_tok(state);
    tv_error err = {0};
    static const char TPL[] =
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}"
        "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments | tojson }}{% endif %}{% endfor %}"
        "{% if enable_thinking is defined %}<think={{ enable_thinking }}>{% endif %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}";
    tv_chat *c = chat_create(tok, TPL, sizeof TPL - 1, &err);
    assert_non_null(c);
    char *out = NULL;
    tv_chat_input in = {0};
    in.messages_json = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    in.add_generation_prompt = true;
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "<s>[user]hi[assistant]");
    free(out);
    in.kwargs_json = "{\"enable_thinking\": false, \"bos_token\": \"B\"}";
    in.add_generation_prompt = false;
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "B[user]hi<think=false>");
    free(out);
    in.kwargs_json = "[1]";
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_ERR_INVALID);
    assert_null(out);
    in.kwargs_json = NULL;
    in.messages_json = "[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\": 1}\"}}]}]";
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "<s>[assistant]\"{\\\"x\\\": 1}\"");   // as sent: a string, double-encoded
    free(out);
    in.openai = true;
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "<s>[assistant]{\"x\": 1}");
    free(out);
    in.messages_json = "[{";
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_ERR_INVALID);
    tv_chat_free(c);

    // fit: the same prompt and history as chat_fit, as JSON text
    c = chat_create(tok, NULL, 0, &err);
    assert_non_null(c);
    const char *roles[] = {"system", "user", "assistant", "user"};
    const char *texts[] = {"sys", "one two three four five", "six seven", "eight"};
    cJSON *h = msgs(4, roles, texts);
    char *h_json = cJSON_PrintUnformatted(h);
    size_t budget = n_tokens(c, h) - 1;   // one exchange must go
    int n_dropped = -1;
    char *kept = NULL, *text = NULL;
    int32_t *ids = NULL, *ids2 = NULL;
    size_t n_ids = 0, n_ids2 = 0;
    assert_int_equal(tv_chat_fit(c, h_json, budget, &n_dropped, &kept, &text, &ids, &n_ids, &err), TV_OK);
    assert_int_equal(chat_fit(c, h, budget, NULL, NULL, &ids2, &n_ids2, &err), TV_OK);
    assert_int_equal(n_dropped, 1);
    cJSON *kept_j = cJSON_Parse(kept);
    assert_true(cJSON_Compare(kept_j, h, true));
    assert_int_equal(n_ids, n_ids2);
    assert_memory_equal(ids, ids2, n_ids * sizeof *ids);
    assert_string_equal(text, "sys\n\nUser: eight\nAssistant:");
    cJSON_Delete(kept_j);
    free(kept); free(text); free(ids); free(ids2); free(h_json);
    cJSON_Delete(h);
    tv_chat_params none = {0};   // no tokenizer: render only
    tv_chat *r = tv_chat_create(&none, &err);
    assert_non_null(r);
    assert_int_equal(tv_chat_fit(r, "[]", 100, NULL, NULL, NULL, &ids, &n_ids, &err), TV_ERR_STATE);
    assert_int_equal(tv_chat_tokenize(r, "x", &ids, &n_ids, &err), TV_ERR_STATE);
    tv_chat_free(r);
    tv_chat_free(c);
}

// tv_chat_params.kwargs_json: variables of every render; a render's own kwargs win; not an object: refused.
static void test_chat_kwargs(void **state) {
    (void)state;
    static const char src[] = "{{ a }}{{ b }}{% if enable_thinking is defined %}{{ enable_thinking }}{% endif %}";
    tv_chat_params p = {0};
    p.template_src = src;
    p.template_len = sizeof src - 1;
    p.kwargs_json = "{\"a\": \"1\", \"b\": \"2\"}";
    tv_error err = {0};
    tv_chat *c = tv_chat_create(&p, &err);
    if (!c) fail_msg("%s", err.msg);
    tv_chat_input in = {0};
    in.messages_json = "[]";
    char *out = NULL;
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "12");
    free(out);
    in.kwargs_json = "{\"b\": \"3\", \"enable_thinking\": false}";
    assert_int_equal(tv_chat_render(c, &in, &out, &err), TV_OK);
    assert_string_equal(out, "13false");
    free(out);
    tv_chat_free(c);
    p.kwargs_json = "[1]";
    assert_null(tv_chat_create(&p, &err));
    assert_int_equal(err.code, TV_ERR_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mistral_template),
        cmocka_unit_test(test_plain_format),
        cmocka_unit_test(test_malformed_messages),
        cmocka_unit_test(test_fit_fewest_oldest),
        cmocka_unit_test(test_fit_no_system),
        cmocka_unit_test(test_public_api),
        cmocka_unit_test(test_chat_kwargs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
