// test_eog.c — the model families' special tokens end to end, against llama.cpp:
//   * the end-of-generation set, add_bos / add_eos and the special-token tokenization of llama.cpp's
//     vocabularies (../shared/vocab) and of vocabularies shaped like the families' (family_vocab.h):
//     the expected values are what llama.cpp (the pinned oracle build, vocab_only, llama_vocab_is_eog
//     over every id, llama_tokenize with add_special and parse_special) reports for the same files;
//   * chat prompts get exactly one BOS where the vocabulary adds one (llama.cpp's server rule),
//     whether or not the template writes bos_token;
//   * the engine stops on an end-of-generation token that is not the EOS (<|im_end|> in a vocab whose
//     EOS is <|endoftext|>), and so does a chat completion over HTTP (finish_reason "stop").
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

#include "family_vocab.h"
#include "test_util.h"
#include "tinyvllm.h"
#include "tinyvllm_server.h"
#include "tinyvllm_tools.h"

// A vocab file of family_vocab.h written under the build directory; the loaded tokenizer.
static tv_tokenizer *load_family(const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/test_eog_%s.gguf", TV_BINARY_DIR, name);
    assert_true(fv_write(name, path));
    tv_error err = {0};
    tv_tokenizer *t = tv_tokenizer_load(path, 0, &err);
    if (!t) fail_msg("%s: %s", path, err.msg);
    return t;
}

// The end-of-generation ids of t as a space-separated list.
static void eog_list(const tv_tokenizer *t, char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    for (int32_t id = 0; id < tv_tokenizer_n_vocab(t); id++)
        if (tv_tokenizer_is_eog(t, id)) n += (size_t)snprintf(out + n, cap - n, "%s%d", n ? " " : "", id);
}

static void assert_ids(const tv_tokenizer *t, const char *text, bool add_special, bool parse_special, const char *want) {
    int32_t *ids;
    size_t n;
    tv_error err = {0};
    assert_int_equal(tv_tokenize(t, text, strlen(text), add_special, parse_special, &ids, &n, &err), TV_OK);
    char got[2048];
    size_t k = 0;
    got[0] = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(got + k, sizeof got - k, "%s%d", i ? " " : "", ids[i]);
    free(ids);
    if (strcmp(got, want)) fail_msg("tokenize '%s': got [%s], llama.cpp [%s]", text, got, want);
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's own vocabularies

static void test_shared_vocabs(void **state) {
    (void)state;
    static const struct { const char *name, *eog; bool add_bos; } V[] = {
        {"llama-spm", "2", true}, {"gpt-2", "50256", false}, {"mpt", "0", false},
        {"refact", "0 4 18", false},   // <|endoftext|>, <fim_pad>, <reponame>
        {"starcoder", "0 4", false}, {"deepseek-coder", "32014", true},
    };
    int n_run = 0;
    for (size_t i = 0; i < sizeof V / sizeof *V; i++) {
        char path[1200], got[256];
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", shared_dir(), V[i].name);
        if (access(path, R_OK) != 0) continue;
        tv_error err = {0};
        tv_tokenizer *t = tv_tokenizer_load(path, 0, &err);
        if (!t) fail_msg("%s: %s", path, err.msg);
        eog_list(t, got, sizeof got);
        if (strcmp(got, V[i].eog)) fail_msg("%s: end of generation [%s], llama.cpp [%s]", V[i].name, got, V[i].eog);
        assert_int_equal(tv_tokenizer_add_bos_default(t), V[i].add_bos);
        assert_false(tv_tokenizer_add_eos_default(t));
        tv_tokenizer_free(t);
        n_run++;
    }
    if (!n_run) { print_message("skipped: no ../shared/vocab\n"); skip(); }
}

// ---------------------------------------------------------------------------------------------
// the families' vocabularies

static void test_family_vocabs(void **state) {
    (void)state;
    static const struct { const char *name, *eog, *text, *ids; bool add_bos; } F[] = {
        {"qwen2.5", "256 258 262 263 264", "<|im_start|>user\nHi<|im_end|>", "257 117 115 101 114 10 72 105 258", false},
        {"qwen3-base", "256 258 259 260 261", "<|im_start|>user\nHi<|im_end|>", "257 117 115 101 114 10 72 105 258", false},
        {"llama3.1", "257 260 261", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
         "256 256 258 117 115 101 114 259 10 10 72 105 261", true},
        {"granite3", "256 260 262", "<|start_of_role|>user<|end_of_role|>Hi<|end_of_text|>",
         "263 117 115 101 114 264 72 105 256", false},
        {"harmony", "257 262 263", "<|start|>user<|message|>Hi<|end|>", "258 117 115 101 114 260 72 105 259", false},
        {"gemma3", "1 277", "<start_of_turn>user\nHi<end_of_turn>", "2 276 271 14 263 264 277", true},
        // Gemma 4: BPE over U+2581-escaped text, a run of newlines one token; </s> is text; BOS always
        {"gemma4", "1 276 278", "<|turn>user\nHi there<turn|>\n\n<|turn>model\n</s>",
         "2 275 271 14 281 260 120 108 267 268 267 276 280 275 113 115 104 267 112 14 64 51 266 66", true},
        // Mistral 3: tekken splits "HelloWorld" at the case change; pre-tokens in the vocab are tokens
        {"mistral3", "258", "[INST]Hello World HelloWorld \xc3\x89" "coleNormale[/INST]",
         "257 259 263 265 32 72 101 108 108 111 264 32 195 137 99 111 108 101 78 111 114 109 97 108 101 260", true},
        {"phi4-mini", "256 258", "<|user|>Hello World's HeLLo 12345<|end|><|assistant|>",
         "259 262 108 111 32 87 111 114 108 100 39 115 32 261 76 76 111 32 49 50 51 52 53 258 260", false},
        // Phi-3: whitespace after <|user|> / <|end|> is dropped (llama.cpp's rule for this family)
        {"phi3", "2 274 277", "<|user|>\nHi<|end|>\n<|assistant|>", "278 261 277 275", false},
    };
    for (size_t i = 0; i < sizeof F / sizeof *F; i++) {
        char path[1200], got[256];
        tv_tokenizer *t = load_family(F[i].name, path, sizeof path);
        eog_list(t, got, sizeof got);
        if (strcmp(got, F[i].eog)) fail_msg("%s: end of generation [%s], llama.cpp [%s]", F[i].name, got, F[i].eog);
        assert_int_equal(tv_tokenizer_add_bos_default(t), F[i].add_bos);
        assert_ids(t, F[i].text, true, true, F[i].ids);
        tv_tokenizer_free(t);
        unlink(path);
    }
}

// Typed text cannot forge control tokens; user-defined ones (harmony's <|end|> once it is not an end)
// are matched anyway, as llama.cpp does. Gemma 4's </s> is plain text (above: its bytes).
static void test_special_tokens_without_parse_special(void **state) {
    (void)state;
    char path[1200];
    tv_tokenizer *t = load_family("harmony", path, sizeof path);
    assert_ids(t, "Hi<|end|><|return|>", false, false, "72 105 259 60 124 114 101 116 117 114 110 124 62");
    assert_ids(t, "Hi<|end|><|return|>", false, true, "72 105 259 262");
    tv_tokenizer_free(t);
    unlink(path);
}

// ---------------------------------------------------------------------------------------------
// chat prompts: one BOS

static const char CHATML[] =   // with Qwen3's switch: enable_thinking false writes an empty think block
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}";
static const char WITH_BOS[] =   // Gemma's shape: the template writes bos_token
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

// The prompt ids of a one-message chat through template src over family vocab name.
static void chat_ids(const char *name, const char *src, int32_t **ids, size_t *n, tv_tokenizer **t) {
    char path[1200];
    *t = load_family(name, path, sizeof path);
    unlink(path);
    tv_chat_params p = {0};
    p.template_src = src;
    p.template_len = strlen(src);
    p.tokenizer = *t;
    tv_error err = {0};
    tv_chat *c = tv_chat_create(&p, &err);
    if (!c) fail_msg("%s", err.msg);
    if (tv_chat_fit(c, "[{\"role\": \"user\", \"content\": \"Hi\"}]", 1000, NULL, NULL, NULL, ids, n, &err))
        fail_msg("%s", err.msg);
    tv_chat_free(c);
}

static void test_chat_one_bos(void **state) {
    (void)state;
    int32_t *ids;
    size_t n;
    tv_tokenizer *t;
    // the template writes <bos> and the vocab adds BOS: one
    chat_ids("gemma3", WITH_BOS, &ids, &n, &t);
    assert_true(n > 2);
    assert_int_equal(ids[0], tv_tokenizer_bos(t));
    assert_int_not_equal(ids[1], tv_tokenizer_bos(t));
    assert_int_equal(ids[1], tv_tokenizer_find(t, "<start_of_turn>", 15));
    free(ids);
    tv_tokenizer_free(t);
    // the template writes none and the vocab adds BOS (Llama 3 vocab, ChatML): one, from the tokenizer
    chat_ids("llama3.1", CHATML, &ids, &n, &t);
    assert_int_equal(ids[0], tv_tokenizer_bos(t));
    assert_int_equal(ids[1], '<');   // no <|im_start|> in this vocab: its bytes
    free(ids);
    tv_tokenizer_free(t);
    // Qwen: no BOS at all; the ChatML pieces are single tokens
    chat_ids("qwen2.5", CHATML, &ids, &n, &t);
    static const int32_t want[] = {257, 'u', 's', 'e', 'r', '\n', 'H', 'i', 258, '\n',   // 257 <|im_start|>, 258 <|im_end|>
                                   257, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n'};
    assert_int_equal(n, sizeof want / sizeof *want);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    tv_tokenizer_free(t);
}

// ---------------------------------------------------------------------------------------------
// the engine and the server stop on <|im_end|> where EOS is <|endoftext|>

static tv_model *g_model;   // tiny random llama with the qwen3-base vocab
static int32_t g_im_end, g_eos;

static int setup(void **state) {
    (void)state;
    char vocab[1200], model[1200];
    snprintf(vocab, sizeof vocab, "%s/test_eog_model_vocab.gguf", TV_BINARY_DIR);
    snprintf(model, sizeof model, "%s/test_eog_model.gguf", TV_BINARY_DIR);
    if (!fv_write("qwen3-base", vocab)) return -1;
    tv_synth_options o = {.preset = "tiny", .type = "F32", .seed = 7, .vocab_path = vocab, .n_threads = 1};
    tv_error err = {0};
    if (tv_synth_write(&o, model, &err)) { fprintf(stderr, "synth: %s\n", err.msg); return -1; }
    g_model = tv_model_load(model, NULL, &err);
    unlink(vocab);
    unlink(model);
    if (!g_model) { fprintf(stderr, "load: %s\n", err.msg); return -1; }
    const tv_tokenizer *t = tv_model_tokenizer(g_model);
    g_im_end = tv_tokenizer_find(t, "<|im_end|>", 10);
    g_eos = tv_tokenizer_eos(t);
    return g_im_end < 0 || g_eos < 0 || g_eos == g_im_end ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    tv_model_free(g_model);
    return 0;
}

// Runs one greedy request whose logit bias makes token `forced` the choice; returns its finish.
static tv_finish_reason run_forced(tv_engine *e, int32_t forced, bool ignore_eos, int32_t *stop_token, int *n_gen) {
    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.prompt_text = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    rp.parse_special = true;
    rp.sampling.temperature = 0;
    rp.sampling.n_logit_bias = 1;
    float bias = 100;
    rp.sampling.logit_bias_ids = &forced;
    rp.sampling.logit_bias_vals = &bias;
    rp.max_tokens = 5;
    rp.ignore_eos = ignore_eos;
    tv_error err = {0};
    if (tv_engine_add_request(e, &rp, NULL, &err)) fail_msg("%s", err.msg);
    tv_finish_reason fin = TV_FINISH_NONE;
    while (tv_engine_has_work(e)) {
        const tv_request_output *outs;
        int n;
        assert_int_equal(tv_engine_step(e, &outs, &n, &err), TV_OK);
        for (int i = 0; i < n; i++) {
            if (outs[i].finish) { fin = outs[i].finish; *stop_token = outs[i].stop_token; *n_gen = outs[i].n_generated; }
            if (outs[i].text_len) assert_int_not_equal(fin, TV_FINISH_STOP);   // the end token adds no text
        }
    }
    return fin;
}

static void test_engine_stops_on_im_end(void **state) {
    (void)state;
    assert_true(tv_model_is_eog(g_model, g_im_end));
    assert_true(tv_model_is_eog(g_model, g_eos));
    assert_false(tv_model_is_eog(g_model, 'H'));
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.n_threads = 1;
    ec.cpu_path = test_cpu_path();
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &ec, &err);
    if (!e) fail_msg("%s", err.msg);
    int32_t stop = -2;
    int n_gen = 0;
    assert_int_equal(run_forced(e, g_im_end, false, &stop, &n_gen), TV_FINISH_STOP);
    assert_int_equal(stop, g_im_end);
    assert_int_equal(n_gen, 1);
    // a token outside the set does not stop; ignore_eos ignores the whole set
    assert_int_equal(run_forced(e, 'H', false, &stop, &n_gen), TV_FINISH_LENGTH);
    assert_int_equal(run_forced(e, g_im_end, true, &stop, &n_gen), TV_FINISH_LENGTH);
    assert_int_equal(n_gen, 5);
    tv_engine_free(e);
}

// POSTs body to path on 127.0.0.1:port; the whole response into resp. Returns the HTTP status.
static int post(int port, const char *path, const char *body, char *resp, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
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

static void test_server_chat_stops_on_im_end(void **state) {
    (void)state;
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.n_threads = 1;
    ec.cpu_path = test_cpu_path();
    tv_error err = {0};
    tv_engine *e = tv_engine_create(g_model, &ec, &err);
    if (!e) fail_msg("%s", err.msg);
    tv_server_config sc;
    tv_server_config_default(&sc);
    sc.port = 0;
    sc.chat_template = CHATML;
    tv_server *s = tv_server_start(g_model, e, &sc, &err);
    if (!s) fail_msg("%s", err.msg);
    char body[512], resp[8192];
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 5, \"temperature\": 0, "
             "\"logit_bias\": {\"%d\": 100}}", (int)g_im_end);
    assert_int_equal(post(tv_server_port(s), "/v1/chat/completions", body, resp, sizeof resp), 200);
    if (!strstr(resp, "\"finish_reason\":\"stop\"")) fail_msg("no finish_reason stop in %s", resp);
    assert_non_null(strstr(resp, "\"content\":\"\""));
    assert_non_null(strstr(resp, "\"completion_tokens\":1"));
    // the same prompt counts the same over /tokenize (ChatML, no BOS: Qwen's vocab adds none)
    assert_int_equal(post(tv_server_port(s), "/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}",
                          resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"tokens\":[257,"));
    assert_non_null(strstr(resp, "\"count\":21,"));
    // chat_template_kwargs reach the template: Qwen3's empty think block, <think> and </think> single tokens
    assert_int_equal(post(tv_server_port(s), "/tokenize",
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                          "\"chat_template_kwargs\": {\"enable_thinking\": false}}", resp, sizeof resp), 200);
    if (!strstr(resp, "\"count\":27,")) fail_msg("expected 21 + <think> \\n\\n </think> \\n\\n = 27 tokens: %s", resp);
    tv_server_stop(s);
    // the server's own chat_template_kwargs (serve --chat-template-kwargs), a request's over them
    sc.chat_template_kwargs = "{\"enable_thinking\": false}";
    if (!(s = tv_server_start(g_model, e, &sc, &err))) fail_msg("%s", err.msg);
    assert_int_equal(post(tv_server_port(s), "/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}",
                          resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"count\":27,"));
    assert_int_equal(post(tv_server_port(s), "/tokenize",
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                          "\"chat_template_kwargs\": {\"enable_thinking\": true}}", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\"count\":21,"));
    tv_server_stop(s);
    tv_engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_vocabs),
        cmocka_unit_test(test_family_vocabs),
        cmocka_unit_test(test_special_tokens_without_parse_special),
        cmocka_unit_test(test_chat_one_bos),
        cmocka_unit_test(test_engine_stops_on_im_end),
        cmocka_unit_test(test_server_chat_stops_on_im_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
