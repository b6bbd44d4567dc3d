// server.c — HTTP routing, OpenAI request handling and SSE streaming on libmicrohttpd.
//
// Threads: MHD runs one thread per connection, so a handler may block: a non-streaming request
// waits for its job to finish inside the access handler; a streaming response is a content-reader
// callback that waits for the next delta. Both check every 100 ms whether the client hung up
// (poll POLLRDHUP on the connection's socket) and then release the job, which aborts it.
//
// SSE framing: each event is "data: <json>\n\n"; the stream ends with "data: [DONE]\n\n".
#include "tinyvllm_server.h"

#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "chat.h"
#include "metrics.h"
#include "request.h"
#include "tools.h"
#include "worker.h"

#define WAIT_SLICE_MS 100

struct tv_server {
    tv_model *model;
    tv_engine *engine;
    const tv_tokenizer *tok;      // NULL when the model has none
    srv_worker *worker;
    srv_metrics *metrics;
    srv_chat *chat;
    struct MHD_Daemon *daemon;
    char *model_id;
    char *api_key;                // NULL = open
    size_t max_body;
    int n_ctx;
    int32_t n_vocab;
    tv_sampling_params sampling;   // a request's sampling before its fields: the library's defaults + the model's recommendation
    int port;
    long created;                 // unix seconds at start
    atomic_ullong next_id;
    atomic_bool is_stopping;
    atomic_int n_generating;      // generation requests being answered (blocking or streaming)
};

typedef enum route {
    R_NONE = 0, R_HEALTH, R_MODELS, R_MODEL_ONE, R_METRICS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE
} route;

// Per-connection request state (MHD's con_cls).
typedef struct conn {
    route r;
    const char *allow;            // static: the methods the route takes
    srv_error early;              // status != 0: the answer, sent once the request is read
    bool is_options;
    bool is_head;
    bool has_replied;
    bool is_too_large;
    char *body;                   // (len, cap) the upload so far
    size_t len, cap;
    size_t n_discarded;           // body bytes dropped (after an early answer or over the limit)
    double t_arrival_ms;
} conn;

void tv_server_config_default(tv_server_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->max_queue = 256;
    c->max_body_bytes = 8u << 20;
    c->max_connections = 512;
}

int tv_server_port(const tv_server *s) { return s ? s->port : 0; }

// ---------------------------------------------------------------- replies

static enum MHD_Result queue(tv_server *s, struct MHD_Connection *c, conn *cx, int status, const char *ctype,
                             char *body, size_t len, const char *allow) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) { free(body); return MHD_NO; }
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 429 || status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (cx) cx->has_replied = true;
    srv_metrics_http(s->metrics, status);
    return ok;
}

static enum MHD_Result reply_json(tv_server *s, struct MHD_Connection *c, conn *cx, int status, cJSON *root) {
    char *txt = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) return MHD_NO;
    return queue(s, c, cx, status, "application/json", txt, strlen(txt), NULL);
}

// Copies bytes as valid UTF-8 (each invalid byte becomes U+FFFD) into a malloc'ed string.
static char *utf8_sanitize(const char *s, size_t n) {
    char *out = malloc(3 * n + 1), *w = out;
    if (!out) return NULL;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = k > 0 && i + k <= n;
        for (size_t j = 1; ok && j < k; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        if (ok && k == 2) ok = c >= 0xC2;
        if (ok && k == 3) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
        }
        if (ok && k == 4) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
        }
        if (ok && c != 0) {
            memcpy(w, s + i, k);
            w += k;
            i += k;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        }
    }
    *w = 0;
    return out;
}

static cJSON *error_json(const srv_error *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    char *msg = utf8_sanitize(e->message, strlen(e->message));   // it may quote client bytes
    cJSON_AddStringToObject(o, "message", msg ? msg : "");
    free(msg);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(o, "param", e->param); else cJSON_AddNullToObject(o, "param");
    if (e->code) cJSON_AddStringToObject(o, "code", e->code); else cJSON_AddNullToObject(o, "code");
    return root;
}

static enum MHD_Result reply_error(tv_server *s, struct MHD_Connection *c, conn *cx, const srv_error *e,
                                   const char *allow) {
    char *txt = NULL;
    cJSON *j = error_json(e);
    if (j) txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt) return MHD_NO;
    return queue(s, c, cx, e->status, "application/json", txt, strlen(txt), allow);
}

static enum MHD_Result fail(tv_server *s, struct MHD_Connection *c, conn *cx, int status, const char *type,
                            const char *code, const char *allow, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static enum MHD_Result fail(tv_server *s, struct MHD_Connection *c, conn *cx, int status, const char *type,
                            const char *code, const char *allow, const char *fmt, ...) {
    srv_error e = {.status = status, .type = type, .code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return reply_error(s, c, cx, &e, allow);
}

// A request the engine finished with TV_FINISH_ERROR: 500, the engine's reason in the message; 503
// when the engine cannot compute at all (TV_ERR_IO: a pipeline stage died or hangs, tinyvllm_dist.h).
static srv_error generation_error(const tv_error *why) {
    srv_error e = {.status = why->code == TV_ERR_IO ? 503 : 500, .type = "server_error",
                   .code = why->code == TV_ERR_IO ? "service_unavailable" : NULL};
    snprintf(e.message, sizeof e.message, "generation failed: %s", why->msg);
    return e;
}

// ---------------------------------------------------------------- helpers

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static const char *finish_str(tv_finish_reason r) {
    switch (r) {
    case TV_FINISH_STOP: return "stop";
    case TV_FINISH_LENGTH: return "length";
    case TV_FINISH_ABORT: return "abort";
    default: return NULL;
    }
}

// The token's text (special tokens included) as valid UTF-8, plus its raw bytes.
static char *token_str(const tv_server *s, int32_t id, unsigned char *raw, size_t *n_raw) {
    char buf[256];
    size_t full = 0;
    size_t n = s->tok ? tv_token_to_piece(s->tok, id, true, buf, sizeof buf, &full) : 0;
    if (n > sizeof buf) n = sizeof buf;
    if (raw) { memcpy(raw, buf, n); *n_raw = n; }
    return utf8_sanitize(buf, n);
}

static double finite_lp(float lp) { return lp > -9999.0f ? (double)lp : -9999.0; }

static void make_id(tv_server *s, const char *prefix, char out[64]) {
    unsigned long long k = atomic_fetch_add(&s->next_id, 1);
    snprintf(out, 64, "%s-%08lx%016llx", prefix, (unsigned long)s->created, k * 0x9E3779B97F4A7C15ull);
}

static bool model_ok(const tv_server *s, const char *name) { return !name || strcmp(name, s->model_id) == 0; }

static enum MHD_Result model_not_found(tv_server *s, struct MHD_Connection *c, conn *cx, const char *name) {
    srv_error e = {.status = 404, .type = "invalid_request_error", .code = "model_not_found"};
    snprintf(e.param, sizeof e.param, "model");
    snprintf(e.message, sizeof e.message, "The model '%.200s' does not exist; this server serves '%.200s'.", name,
             s->model_id);
    return reply_error(s, c, cx, &e, NULL);
}

// ---------------------------------------------------------------- prompts -> engine params

// Everything one generation request needs while it is in flight.
typedef struct gen {
    srv_request *req;
    int n_prompts;
    int32_t **ids;          // (n_prompts) token ids per prompt (owned)
    size_t *n_ids;          // (n_prompts)
    char **echo;            // (n_prompts) echo text (completions with echo), owned
    int n_seqs;             // n_prompts * n
    tv_request_params *params;  // (n_seqs)
    const char **stops;     // (req->n_stop + 1): the request's stop strings and the chat format's, or NULL
    int prompt_tokens;      // sum over prompts
    bool opens_think;       // chat: the rendered prompt ends inside <think> (the reply starts as reasoning)
} gen;

static void gen_free(gen *g) {
    if (!g) return;
    for (int i = 0; i < g->n_prompts; i++) {
        if (g->ids) free(g->ids[i]);
        if (g->echo) free(g->echo[i]);
    }
    free(g->ids);
    free(g->n_ids);
    free(g->echo);
    free(g->params);
    free(g->stops);
    srv_request_free(g->req);
    free(g);
}

// Tokenizes the prompts (the chat template first), checks them against the context, and fills
// one tv_request_params per sequence. NULL + err.
static gen *gen_prepare(tv_server *s, srv_request *req, srv_error *err) {
    gen *g = calloc(1, sizeof *g);
    if (!g) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); srv_request_free(req); return NULL; }
    g->req = req;
    char *chat_text = NULL;
    bool is_chat = req->api == SRV_API_CHAT;
    g->n_prompts = is_chat ? 1 : req->n_prompts;
    g->ids = calloc((size_t)g->n_prompts, sizeof *g->ids);
    g->n_ids = calloc((size_t)g->n_prompts, sizeof *g->n_ids);
    g->echo = calloc((size_t)g->n_prompts, sizeof *g->echo);
    if (!g->ids || !g->n_ids || !g->echo) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    if (is_chat) {
        chat_text = srv_chat_render(s->chat, req->messages, req->tools, req->kwargs, req->add_generation_prompt, err);
        if (!chat_text) goto fail;
        size_t cl = strlen(chat_text);
        while (cl && (chat_text[cl - 1] == '\n' || chat_text[cl - 1] == ' ')) cl--;
        g->opens_think = cl >= 7 && !memcmp(chat_text + cl - 7, "<think>", 7);
    }
    for (int p = 0; p < g->n_prompts; p++) {
        const char *text = is_chat ? chat_text : req->prompts[p].text;
        if (text) {
            if (!s->tok) { srv_fail(err, 400, "invalid_request_error", NULL, "prompt", "this model has no tokenizer: send token ids"); goto fail; }
            tv_error terr = {0};
            if (is_chat) {   // the template's prompt: one BOS where the vocabulary adds one, as llama.cpp's server
                if (!srv_chat_tokenize(s->chat, text, &g->ids[p], &g->n_ids[p], err)) goto fail;
            } else if (tv_tokenize(s->tok, text, strlen(text), true, true, &g->ids[p], &g->n_ids[p], &terr) != TV_OK) {
                if (terr.code == TV_ERR_NOMEM) srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
                else srv_fail(err, 400, "invalid_request_error", NULL, "prompt", "%s", terr.msg);
                goto fail;
            }
            if (req->echo && !(g->echo[p] = strdup(text))) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
        } else {
            size_t n = req->prompts[p].n_ids;
            if (!(g->ids[p] = malloc(n * sizeof(int32_t)))) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
            memcpy(g->ids[p], req->prompts[p].ids, n * sizeof(int32_t));
            g->n_ids[p] = n;
            if (req->echo && s->tok) {
                size_t tl = 0;
                tv_error terr = {0};
                char *raw = NULL;
                if (tv_detokenize(s->tok, g->ids[p], n, true, &raw, &tl, &terr) == TV_OK) g->echo[p] = utf8_sanitize(raw, tl);
                free(raw);
            }
        }
        size_t np = g->n_ids[p];
        if (np == 0) { srv_fail(err, 400, "invalid_request_error", NULL, is_chat ? "messages" : "prompt", "the prompt is empty"); goto fail; }
        if (np >= (size_t)s->n_ctx) {
            srv_fail(err, 400, "invalid_request_error", "context_length_exceeded", is_chat ? "messages" : "prompt",
                     "This model's maximum context length is %d tokens. However, your prompt has %zu tokens "
                     "(at least one more is needed for the completion). Please reduce the length of the prompt.",
                     s->n_ctx, np);
            goto fail;
        }
        if (req->max_tokens > 0 && np + (size_t)req->max_tokens > (size_t)s->n_ctx) {
            srv_fail(err, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                     "This model's maximum context length is %d tokens. However, you requested %zu tokens "
                     "(%zu in the prompt, %d in the completion). Please reduce the length of the prompt or completion.",
                     s->n_ctx, np + (size_t)req->max_tokens, np, req->max_tokens);
            goto fail;
        }
        g->prompt_tokens += (int)np;
    }
    free(chat_text);
    chat_text = NULL;

    g->n_seqs = g->n_prompts * req->n;
    g->params = calloc((size_t)g->n_seqs, sizeof *g->params);
    if (!g->params) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    const char *chat_stop = is_chat ? srv_chat_stop(s->chat) : NULL;   // the plain transcript's "\nUser:"
    int n_stop = req->n_stop;
    if (chat_stop) {
        if (!(g->stops = malloc(((size_t)n_stop + 1) * sizeof *g->stops))) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
        for (int i = 0; i < n_stop; i++) g->stops[i] = req->stop[i];
        g->stops[n_stop++] = chat_stop;
    }
    for (int p = 0; p < g->n_prompts; p++) {
        for (int k = 0; k < req->n; k++) {
            tv_request_params *rp = &g->params[p * req->n + k];
            tv_request_params_default(rp);
            rp->prompt_ids = g->ids[p];
            rp->n_prompt = g->n_ids[p];
            rp->sampling = req->sampling;
            if (req->sampling.has_seed) rp->sampling.seed = req->sampling.seed + (uint64_t)k;
            rp->max_tokens = req->max_tokens;
            rp->stop = g->stops ? g->stops : (const char *const *)req->stop;
            rp->n_stop = n_stop;
            rp->ignore_eos = req->ignore_eos;
            rp->constraint = req->constraint;
            rp->constraint_spec = req->constraint_spec;
        }
    }
    return g;
fail:
    free(chat_text);
    gen_free(g);
    return NULL;
}

// ---------------------------------------------------------------- JSON pieces

static cJSON *usage_json(int prompt, int completion, int cached) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    if (cached > 0) cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens", cached);
    return u;
}

// Completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}; appends to lp (created
// on first use). *offset advances by each token's text length.
static void completion_logprobs_add(const tv_server *s, cJSON *lp, const srv_tok *toks, int n, int k, size_t *offset) {
    cJSON *tokens = cJSON_GetObjectItem(lp, "tokens"), *tlp = cJSON_GetObjectItem(lp, "token_logprobs");
    cJSON *top = cJSON_GetObjectItem(lp, "top_logprobs"), *off = cJSON_GetObjectItem(lp, "text_offset");
    for (int i = 0; i < n; i++) {
        char *ts = token_str(s, toks[i].id, NULL, NULL);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(ts ? ts : ""));
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(finite_lp(toks[i].logprob)));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)*offset));
        *offset += ts ? strlen(ts) : 0;
        free(ts);
        if (k > 0 && cJSON_IsArray(top)) {
            cJSON *d = cJSON_CreateObject();
            for (int t = 0; t < toks[i].n_top; t++) {
                char *as = token_str(s, toks[i].top[t].id, NULL, NULL);
                if (as && !cJSON_GetObjectItemCaseSensitive(d, as))
                    cJSON_AddNumberToObject(d, as, finite_lp(toks[i].top[t].logprob));
                free(as);
            }
            cJSON_AddItemToArray(top, d);
        }
    }
}

static cJSON *completion_logprobs_new(int k) {
    cJSON *lp = cJSON_CreateObject();
    cJSON_AddArrayToObject(lp, "tokens");
    cJSON_AddArrayToObject(lp, "token_logprobs");
    if (k > 0) cJSON_AddArrayToObject(lp, "top_logprobs"); else cJSON_AddNullToObject(lp, "top_logprobs");
    cJSON_AddArrayToObject(lp, "text_offset");
    return lp;
}

static cJSON *bytes_json(const unsigned char *b, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(b[i]));
    return a;
}

// Chat logprobs: content[] of {token, logprob, bytes, top_logprobs[]}.
static void chat_logprobs_add(const tv_server *s, cJSON *content, const srv_tok *toks, int n) {
    for (int i = 0; i < n; i++) {
        unsigned char raw[256];
        size_t nr = 0;
        char *ts = token_str(s, toks[i].id, raw, &nr);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", ts ? ts : "");
        cJSON_AddNumberToObject(e, "logprob", finite_lp(toks[i].logprob));
        cJSON_AddItemToObject(e, "bytes", bytes_json(raw, nr));
        free(ts);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int t = 0; t < toks[i].n_top; t++) {
            char *as = token_str(s, toks[i].top[t].id, raw, &nr);
            cJSON *a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "token", as ? as : "");
            cJSON_AddNumberToObject(a, "logprob", finite_lp(toks[i].top[t].logprob));
            cJSON_AddItemToObject(a, "bytes", bytes_json(raw, nr));
            cJSON_AddItemToArray(top, a);
            free(as);
        }
        cJSON_AddItemToArray(content, e);
    }
}

// ---------------------------------------------------------------- non-streaming

static enum MHD_Result run_blocking(tv_server *s, struct MHD_Connection *c, conn *cx, gen *g, srv_job *job) {
    bool is_chat = g->req->api == SRV_API_CHAT;
    int n = g->n_seqs;
    int fd = conn_fd(c);
    // Accumulate per sequence: text, logprob tokens, finish, counts.
    char **text = calloc((size_t)n, sizeof *text);
    size_t *tlen = calloc((size_t)n, sizeof *tlen);
    srv_delta *last = calloc((size_t)n, sizeof *last);
    cJSON **lps = calloc((size_t)n, sizeof *lps);
    size_t *offs = calloc((size_t)n, sizeof *offs);
    tv_finish_reason *fin = calloc((size_t)n, sizeof *fin);
    bool *fin_tools = calloc((size_t)n, sizeof *fin_tools);   // chat: the reply is tool calls
    enum MHD_Result ret = MHD_NO;
    if (!text || !tlen || !last || !lps || !offs || !fin || !fin_tools) goto out;
    int n_done = 0;
    while (n_done < n) {
        for (int i = 0; i < n; i++) {
            srv_delta d;
            if (!srv_job_take(job, i, &d)) continue;
            if (d.text_len) {
                char *p = realloc(text[i], tlen[i] + d.text_len + 1);
                if (p) {
                    memcpy(p + tlen[i], d.text, d.text_len);
                    tlen[i] += d.text_len;
                    p[tlen[i]] = 0;
                    text[i] = p;
                }
            }
            if (d.n_toks && g->req->logprobs >= 0) {
                if (!lps[i]) lps[i] = is_chat ? cJSON_CreateArray() : completion_logprobs_new(g->req->logprobs);
                if (is_chat) chat_logprobs_add(s, lps[i], d.toks, d.n_toks);
                else completion_logprobs_add(s, lps[i], d.toks, d.n_toks, g->req->logprobs, &offs[i]);
            }
            last[i].n_prompt = d.n_prompt;
            last[i].n_generated = d.n_generated;
            last[i].n_cached = d.n_cached;
            if (d.finish == TV_FINISH_ERROR) {   // the whole answer fails; the caller's release aborts the rest
                srv_error e = generation_error(&d.error);
                srv_delta_clear(&d);
                ret = reply_error(s, c, cx, &e, NULL);
                goto out;
            }
            if (d.finish != TV_FINISH_NONE) { fin[i] = d.finish; n_done++; }
            srv_delta_clear(&d);
        }
        if (n_done == n) break;
        if (client_gone(fd)) goto out;  // the release below aborts the job
        srv_job_wait(job, WAIT_SLICE_MS);
    }
    bool aborted = false;
    for (int i = 0; i < n; i++) aborted |= fin[i] == TV_FINISH_ABORT;
    if (aborted && atomic_load(&s->is_stopping)) {
        ret = fail(s, c, cx, 503, "server_error", "service_unavailable", NULL, "the server is shutting down");
        goto out;
    }

    char id[64];
    make_id(s, is_chat ? "chatcmpl" : "cmpl", id);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", is_chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)time(NULL));
    cJSON_AddStringToObject(root, "model", s->model_id);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    int completion = 0, cached = 0;
    for (int i = 0; i < n; i++) {
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        const char *t = text[i] ? text[i] : "";
        if (is_chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            srv_reply rp;
            srv_reply_init(&rp, g->req, g->opens_think);
            srv_reply_feed(&rp, t, tlen[i]);
            cJSON *calls = srv_reply_finish(&rp);
            if (calls && !rp.content_out.n) cJSON_AddNullToObject(msg, "content");
            else cJSON_AddStringToObject(msg, "content", rp.content_out.p ? rp.content_out.p : "");
            if (rp.reasoning_out.n) cJSON_AddStringToObject(msg, "reasoning_content", rp.reasoning_out.p);
            if (calls) {
                cJSON_AddItemToObject(msg, "tool_calls", calls);
                if (fin[i] == TV_FINISH_STOP) fin_tools[i] = true;
            }
            srv_reply_free(&rp);
            cJSON_AddNullToObject(msg, "refusal");
            if (lps[i]) {
                cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
                cJSON_AddItemToObject(lp, "content", lps[i]);
                cJSON_AddNullToObject(lp, "refusal");
                lps[i] = NULL;
            } else if (g->req->logprobs >= 0) {
                cJSON_AddArrayToObject(cJSON_AddObjectToObject(ch, "logprobs"), "content");
            } else {
                cJSON_AddNullToObject(ch, "logprobs");
            }
        } else {
            int p = i / g->req->n;
            if (g->echo[p]) {
                size_t el = strlen(g->echo[p]);
                char *full = malloc(el + tlen[i] + 1);
                if (full) {
                    memcpy(full, g->echo[p], el);
                    memcpy(full + el, t, tlen[i]);
                    full[el + tlen[i]] = 0;
                    cJSON_AddStringToObject(ch, "text", full);
                    free(full);
                }
            } else {
                cJSON_AddStringToObject(ch, "text", t);
            }
            if (lps[i]) { cJSON_AddItemToObject(ch, "logprobs", lps[i]); lps[i] = NULL; }
            else if (g->req->logprobs >= 0) cJSON_AddItemToObject(ch, "logprobs", completion_logprobs_new(g->req->logprobs));
            else cJSON_AddNullToObject(ch, "logprobs");
        }
        cJSON_AddStringToObject(ch, "finish_reason", fin_tools[i] ? "tool_calls" : finish_str(fin[i]));
        cJSON_AddItemToArray(choices, ch);
        completion += last[i].n_generated;
        if (i % g->req->n == 0) cached += last[i].n_cached;
    }
    cJSON_AddItemToObject(root, "usage", usage_json(g->prompt_tokens, completion, cached));
    ret = reply_json(s, c, cx, 200, root);
out:
    for (int i = 0; i < n; i++) {
        if (text) free(text[i]);
        if (lps) cJSON_Delete(lps[i]);
    }
    free(text);
    free(tlen);
    free(last);
    free(lps);
    free(offs);
    free(fin);
    free(fin_tools);
    return ret;
}

// ---------------------------------------------------------------- streaming

typedef struct stream {
    tv_server *s;
    gen *g;
    srv_job *job;
    int fd;
    bool is_chat;
    char id[64];
    long created;
    bool *role_sent;        // (n_seqs) chat: the first delta carries the role
    bool *echo_sent;        // (n_seqs) completions echo
    size_t *offs;           // (n_seqs) completions logprobs text offsets
    srv_reply *reply;       // (n_seqs) chat: reasoning / tool-call splitting of each choice
    int g_n_seqs;           // entries of reply
    int n_finished;
    int completion_tokens, cached_tokens;
    char *out;              // (out_len, out_cap) SSE bytes not yet handed to MHD, from out_off
    size_t out_len, out_cap, out_off;
    bool is_over;           // [DONE] queued
} stream;

static void out_append(stream *st, const char *p, size_t n) {
    if (st->out_len + n > st->out_cap) {
        size_t nc = st->out_cap * 2 + n + 256;
        char *q = realloc(st->out, nc);
        if (!q) return;
        st->out = q;
        st->out_cap = nc;
    }
    memcpy(st->out + st->out_len, p, n);
    st->out_len += n;
}

static void out_event(stream *st, cJSON *obj) {
    char *txt = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!txt) return;
    out_append(st, "data: ", 6);
    out_append(st, txt, strlen(txt));
    out_append(st, "\n\n", 2);
    free(txt);
}

static cJSON *chunk_new(stream *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "object", st->is_chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)st->created);
    cJSON_AddStringToObject(o, "model", st->s->model_id);
    return o;
}

static void stream_delta(stream *st, int i, srv_delta *d) {
    const srv_request *req = st->g->req;
    bool lp = req->logprobs >= 0 && d->n_toks > 0;
    bool has_text = d->text_len > 0 || lp;
    bool tool_finish = false;
    if (st->is_chat) {
        srv_reply *rp = &st->reply[i];
        srv_reply_feed(rp, d->text ? d->text : "", d->text_len);
        cJSON *calls = d->finish != TV_FINISH_NONE && d->finish != TV_FINISH_ERROR ? srv_reply_finish(rp) : NULL;
        if (!st->role_sent[i] || rp->content_out.n || rp->reasoning_out.n || lp) {
            cJSON *o = chunk_new(st);
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", i);
            cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
            const bool first = !st->role_sent[i];
            if (first) { cJSON_AddStringToObject(delta, "role", "assistant"); st->role_sent[i] = true; }
            if (first || rp->content_out.n || !rp->reasoning_out.n)
                cJSON_AddStringToObject(delta, "content", rp->content_out.n ? rp->content_out.p : "");
            if (rp->reasoning_out.n) cJSON_AddStringToObject(delta, "reasoning_content", rp->reasoning_out.p);
            if (lp) {
                cJSON *l = cJSON_AddObjectToObject(ch, "logprobs");
                chat_logprobs_add(st->s, cJSON_AddArrayToObject(l, "content"), d->toks, d->n_toks);
                cJSON_AddNullToObject(l, "refusal");
            } else {
                cJSON_AddNullToObject(ch, "logprobs");
            }
            cJSON_AddNullToObject(ch, "finish_reason");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
            if (req->include_usage) cJSON_AddNullToObject(o, "usage");
            out_event(st, o);
        }
        srv_reply_take(rp);
        // tool calls, by index: id, type and name once, then the arguments as a fragment
        int k = 0;
        for (const cJSON *call = calls ? calls->child : NULL; call; call = call->next, k++) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
            for (int part = 0; part < 2; part++) {
                cJSON *o = chunk_new(st);
                cJSON *ch = cJSON_CreateObject();
                cJSON_AddNumberToObject(ch, "index", i);
                cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
                cJSON_AddNumberToObject(tc, "index", k);
                if (part == 0) {
                    cJSON_AddStringToObject(tc, "id", cJSON_GetObjectItemCaseSensitive(call, "id")->valuestring);
                    cJSON_AddStringToObject(tc, "type", "function");
                    cJSON_AddStringToObject(fn, "name", cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring);
                    cJSON_AddStringToObject(fn, "arguments", "");
                } else {
                    cJSON_AddStringToObject(fn, "arguments", cJSON_GetObjectItemCaseSensitive(f, "arguments")->valuestring);
                }
                cJSON_AddItemToObject(tc, "function", fn);
                cJSON *arr = cJSON_CreateArray();
                cJSON_AddItemToArray(arr, tc);
                cJSON_AddItemToObject(cJSON_AddObjectToObject(ch, "delta"), "tool_calls", arr);
                cJSON_AddNullToObject(ch, "logprobs");
                cJSON_AddNullToObject(ch, "finish_reason");
                cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
                if (req->include_usage) cJSON_AddNullToObject(o, "usage");
                out_event(st, o);
            }
        }
        tool_finish = calls && d->finish == TV_FINISH_STOP;
        cJSON_Delete(calls);
    } else {
        int p = i / req->n;
        const char *echo = !st->echo_sent[i] ? st->g->echo[p] : NULL;
        st->echo_sent[i] = true;
        if (has_text || echo) {
            cJSON *o = chunk_new(st);
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", i);
            if (echo) {
                size_t el = strlen(echo);
                char *full = malloc(el + d->text_len + 1);
                if (full) {
                    memcpy(full, echo, el);
                    if (d->text_len) memcpy(full + el, d->text, d->text_len);
                    full[el + d->text_len] = 0;
                    cJSON_AddStringToObject(ch, "text", full);
                    free(full);
                }
            } else {
                cJSON_AddStringToObject(ch, "text", d->text ? d->text : "");
            }
            if (lp) {
                cJSON *l = completion_logprobs_new(req->logprobs);
                completion_logprobs_add(st->s, l, d->toks, d->n_toks, req->logprobs, &st->offs[i]);
                cJSON_AddItemToObject(ch, "logprobs", l);
            } else {
                cJSON_AddNullToObject(ch, "logprobs");
            }
            cJSON_AddNullToObject(ch, "finish_reason");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
            if (req->include_usage) cJSON_AddNullToObject(o, "usage");
            out_event(st, o);
        }
    }
    if (d->finish != TV_FINISH_NONE) {
        cJSON *o = chunk_new(st);
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        if (st->is_chat) cJSON_AddObjectToObject(ch, "delta"); else cJSON_AddStringToObject(ch, "text", "");
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddStringToObject(ch, "finish_reason", tool_finish ? "tool_calls" : finish_str(d->finish));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
        if (req->include_usage) cJSON_AddNullToObject(o, "usage");
        out_event(st, o);
        st->n_finished++;
        st->completion_tokens += d->n_generated;
        if (i % req->n == 0) st->cached_tokens += d->n_cached;
    }
}

// A sequence the engine finished with TV_FINISH_ERROR ends the stream: the text so far was sent, so
// the error comes as an event with the body a non-streaming request gets ({"error": {...}}), then
// [DONE]; stream_free's release aborts the other sequences.
static void stream_error(stream *st, const tv_error *why) {
    srv_error e = generation_error(why);
    out_event(st, error_json(&e));
    out_append(st, "data: [DONE]\n\n", 14);
    st->is_over = true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *st = cls;
    for (;;) {
        if (st->out_off < st->out_len) {
            size_t n = st->out_len - st->out_off;
            if (n > max) n = max;
            memcpy(buf, st->out + st->out_off, n);
            st->out_off += n;
            return (ssize_t)n;
        }
        st->out_len = st->out_off = 0;
        if (st->is_over) return MHD_CONTENT_READER_END_OF_STREAM;
        for (int i = 0; i < st->g->n_seqs && !st->is_over; i++) {
            srv_delta d;
            if (srv_job_take(st->job, i, &d)) {
                tv_finish_reason fin = d.finish;
                if (fin == TV_FINISH_ERROR) d.finish = TV_FINISH_NONE;   // its text so far, then the error
                stream_delta(st, i, &d);
                if (fin == TV_FINISH_ERROR) stream_error(st, &d.error);
            }
            srv_delta_clear(&d);
        }
        if (!st->is_over && st->n_finished == st->g->n_seqs) {
            if (st->g->req->include_usage) {
                cJSON *o = chunk_new(st);
                cJSON_AddArrayToObject(o, "choices");
                cJSON_AddItemToObject(o, "usage", usage_json(st->g->prompt_tokens, st->completion_tokens, st->cached_tokens));
                out_event(st, o);
            }
            out_append(st, "data: [DONE]\n\n", 14);
            st->is_over = true;
        }
        if (st->out_len) continue;
        if (client_gone(st->fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
        srv_job_wait(st->job, WAIT_SLICE_MS);
    }
}

static void stream_free(void *cls) {
    stream *st = cls;
    if (!st) return;
    srv_job_release(st->job);   // aborts whatever still runs: the client is gone or we are done
    atomic_fetch_sub(&st->s->n_generating, 1);
    gen_free(st->g);
    free(st->role_sent);
    free(st->echo_sent);
    free(st->offs);
    for (int i = 0; st->reply && i < st->g_n_seqs; i++) srv_reply_free(&st->reply[i]);
    free(st->reply);
    free(st->out);
    free(st);
}

static enum MHD_Result start_stream(tv_server *s, struct MHD_Connection *c, conn *cx, gen *g, srv_job *job) {
    stream *st = calloc(1, sizeof *st);
    if (st) {
        st->role_sent = calloc((size_t)g->n_seqs, sizeof *st->role_sent);
        st->echo_sent = calloc((size_t)g->n_seqs, sizeof *st->echo_sent);
        st->offs = calloc((size_t)g->n_seqs, sizeof *st->offs);
        st->reply = calloc((size_t)g->n_seqs, sizeof *st->reply);
        st->g_n_seqs = g->n_seqs;
        for (int i = 0; st->reply && i < g->n_seqs; i++) srv_reply_init(&st->reply[i], g->req, g->opens_think);
    }
    if (!st || !st->role_sent || !st->echo_sent || !st->offs || !st->reply) {
        if (st) { free(st->role_sent); free(st->echo_sent); free(st->offs); free(st->reply); free(st); }
        srv_job_release(job);
        gen_free(g);
        atomic_fetch_sub(&s->n_generating, 1);   // no stream_free will run
        return fail(s, c, cx, 500, "server_error", NULL, NULL, "out of memory");
    }
    st->s = s;
    st->g = g;
    st->job = job;
    st->fd = conn_fd(c);
    st->is_chat = g->req->api == SRV_API_CHAT;
    st->created = (long)time(NULL);
    make_id(s, st->is_chat ? "chatcmpl" : "cmpl", st->id);
    if (st->is_chat) {  // as OpenAI and vLLM do: each choice opens with {"role": "assistant", "content": ""}
        for (int i = 0; i < g->n_seqs; i++) {
            srv_delta none = {0};
            stream_delta(st, i, &none);
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    if (!resp) { stream_free(st); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    cx->has_replied = true;
    srv_metrics_http(s->metrics, 200);
    return ok;
}

// ---------------------------------------------------------------- handlers

static enum MHD_Result generate(tv_server *s, struct MHD_Connection *c, conn *cx, srv_api api, bool *is_streaming) {
    srv_error err = {0};
    srv_request *req = srv_request_parse(api, cx->body, cx->len, s->n_vocab, &s->sampling, &err);
    if (!req) return reply_error(s, c, cx, &err, NULL);
    if (!model_ok(s, req->model)) {
        enum MHD_Result r = model_not_found(s, c, cx, req->model);
        srv_request_free(req);
        return r;
    }
    gen *g = gen_prepare(s, req, &err);
    if (!g) return reply_error(s, c, cx, &err, NULL);
    srv_job *job = srv_job_submit(s->worker, g->params, g->n_seqs, g->req->logprobs >= 0, cx->t_arrival_ms, &err);
    if (!job) { gen_free(g); return reply_error(s, c, cx, &err, NULL); }
    if (!srv_job_wait_admitted(job, &err)) {
        srv_job_release(job);
        gen_free(g);
        return reply_error(s, c, cx, &err, NULL);
    }
    if (g->req->stream) {
        *is_streaming = true;   // stream_free ends it
        return start_stream(s, c, cx, g, job);
    }
    enum MHD_Result r = run_blocking(s, c, cx, g, job);
    srv_job_release(job);
    gen_free(g);
    return r;
}

// Counts the request in n_generating until its answer is complete, so that a shutdown can let
// aborted streams send their last chunk and [DONE] before the connections close.
static enum MHD_Result handle_generate(tv_server *s, struct MHD_Connection *c, conn *cx, srv_api api) {
    bool is_streaming = false;
    atomic_fetch_add(&s->n_generating, 1);
    enum MHD_Result r = generate(s, c, cx, api, &is_streaming);
    if (!is_streaming) atomic_fetch_sub(&s->n_generating, 1);
    return r;
}

static enum MHD_Result handle_tokenize(tv_server *s, struct MHD_Connection *c, conn *cx) {
    srv_error err = {0};
    srv_request *req = srv_request_parse(SRV_API_TOKENIZE, cx->body, cx->len, s->n_vocab, &s->sampling, &err);
    if (!req) return reply_error(s, c, cx, &err, NULL);
    enum MHD_Result r;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!model_ok(s, req->model)) { r = model_not_found(s, c, cx, req->model); goto out; }
    if (!s->tok) { r = fail(s, c, cx, 400, "invalid_request_error", NULL, NULL, "this model has no tokenizer"); goto out; }
    if (req->messages) {
        if (!(text = srv_chat_render(s->chat, req->messages, NULL, req->kwargs, req->add_generation_prompt, &err))) {
            r = reply_error(s, c, cx, &err, NULL);
            goto out;
        }
    }
    const char *src = text ? text : req->prompts[0].text;
    tv_error terr = {0};
    if (text && !req->add_special_tokens) {   // the ids a chat completion of these messages runs
        if (!srv_chat_tokenize(s->chat, text, &ids, &n, &err)) {
            r = reply_error(s, c, cx, &err, NULL);
            goto out;
        }
    } else if (tv_tokenize(s->tok, src, strlen(src), req->add_special_tokens, true, &ids, &n, &terr) != TV_OK) {
        r = fail(s, c, cx, 400, "invalid_request_error", NULL, NULL, "%s", terr.msg);
        goto out;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "count", (double)n);
    cJSON_AddNumberToObject(root, "max_model_len", s->n_ctx);
    cJSON *toks = cJSON_AddArrayToObject(root, "tokens");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(toks, cJSON_CreateNumber(ids[i]));
    if (req->return_token_strs) {
        cJSON *strs = cJSON_AddArrayToObject(root, "token_strs");
        for (size_t i = 0; i < n; i++) {
            char *ts = token_str(s, ids[i], NULL, NULL);
            cJSON_AddItemToArray(strs, cJSON_CreateString(ts ? ts : ""));
            free(ts);
        }
    }
    r = reply_json(s, c, cx, 200, root);
out:
    free(ids);
    free(text);
    srv_request_free(req);
    return r;
}

static enum MHD_Result handle_detokenize(tv_server *s, struct MHD_Connection *c, conn *cx) {
    srv_error err = {0};
    srv_request *req = srv_request_parse(SRV_API_DETOKENIZE, cx->body, cx->len, s->n_vocab, &s->sampling, &err);
    if (!req) return reply_error(s, c, cx, &err, NULL);
    enum MHD_Result r;
    char *text = NULL;
    size_t n = 0;
    if (!model_ok(s, req->model)) { r = model_not_found(s, c, cx, req->model); goto out; }
    if (!s->tok) { r = fail(s, c, cx, 400, "invalid_request_error", NULL, NULL, "this model has no tokenizer"); goto out; }
    tv_error terr = {0};
    if (req->n_tokens && tv_detokenize(s->tok, req->tokens, req->n_tokens, false, &text, &n, &terr) != TV_OK) {
        r = fail(s, c, cx, 400, "invalid_request_error", NULL, "tokens", "%s", terr.msg);
        goto out;
    }
    char *clean = utf8_sanitize(text ? text : "", n);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "prompt", clean ? clean : "");
    free(clean);
    r = reply_json(s, c, cx, 200, root);
out:
    free(text);
    srv_request_free(req);
    return r;
}

static cJSON *model_card(const tv_server *s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "tinyvllm");
    cJSON_AddStringToObject(m, "root", s->model_id);
    cJSON_AddNumberToObject(m, "max_model_len", s->n_ctx);
    return m;
}

static enum MHD_Result handle_get(tv_server *s, struct MHD_Connection *c, conn *cx, const char *url) {
    switch (cx->r) {
    case R_HEALTH: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", atomic_load(&s->is_stopping) ? "stopping" : "ok");
        return reply_json(s, c, cx, atomic_load(&s->is_stopping) ? 503 : 200, o);
    }
    case R_MODELS: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), model_card(s));
        return reply_json(s, c, cx, 200, o);
    }
    case R_MODEL_ONE: {
        const char *name = url + strlen("/v1/models/");
        if (strcmp(name, s->model_id) != 0) return model_not_found(s, c, cx, name);
        return reply_json(s, c, cx, 200, model_card(s));
    }
    case R_METRICS: {
        size_t n = 0;
        char *txt = srv_metrics_render(s->metrics, &n);
        if (!txt) return MHD_NO;
        return queue(s, c, cx, 200, "text/plain; version=0.0.4; charset=utf-8", txt, n, NULL);
    }
    default:
        return MHD_NO;
    }
}

// ---------------------------------------------------------------- MHD glue

static route find_route(const char *url, const char **allow, bool *needs_auth) {
    *needs_auth = true;
    if (!strcmp(url, "/health")) { *allow = "GET, HEAD, OPTIONS"; *needs_auth = false; return R_HEALTH; }
    if (!strcmp(url, "/metrics")) { *allow = "GET, HEAD, OPTIONS"; *needs_auth = false; return R_METRICS; }
    if (!strcmp(url, "/v1/models")) { *allow = "GET, HEAD, OPTIONS"; return R_MODELS; }
    if (!strncmp(url, "/v1/models/", 11) && url[11]) { *allow = "GET, HEAD, OPTIONS"; return R_MODEL_ONE; }
    *allow = "POST, OPTIONS";
    if (!strcmp(url, "/v1/completions")) return R_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/tokenize")) return R_TOKENIZE;
    if (!strcmp(url, "/detokenize")) return R_DETOKENIZE;
    *allow = NULL;
    return R_NONE;
}

static bool auth_ok(const tv_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned)(h[i] ^ s->api_key[i]);  // no early exit
    return diff == 0;
}

// Answers known at the first call (404, 405, 401, OPTIONS) are sent at the last one, after the
// (discarded) body: a response queued before the request is fully read forces MHD to close the
// connection, and keep-alive clients should keep theirs. Only a declared oversized body is answered
// at once (and the connection closed) so that it is never read.
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    tv_server *s = cls;
    conn *cx = *con_cls;
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *con_cls = cx;
        cx->t_arrival_ms = srv_time_ms();
        bool needs_auth = true;
        cx->r = find_route(url, &cx->allow, &needs_auth);
        if (cx->r == R_NONE) {
            srv_fail(&cx->early, 404, "invalid_request_error", "not_found", NULL, "no route for %.10s %.200s", method, url);
            return MHD_YES;
        }
        if (!strcmp(method, MHD_HTTP_METHOD_OPTIONS)) { cx->is_options = true; return MHD_YES; }
        bool is_get_route = cx->r == R_HEALTH || cx->r == R_METRICS || cx->r == R_MODELS || cx->r == R_MODEL_ONE;
        cx->is_head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
        bool method_ok = is_get_route ? (!strcmp(method, MHD_HTTP_METHOD_GET) || cx->is_head)
                                      : !strcmp(method, MHD_HTTP_METHOD_POST);
        if (!method_ok) {
            srv_fail(&cx->early, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "method %.10s is not allowed on %.200s (allowed: %s)", method, url, cx->allow);
            return MHD_YES;
        }
        if (needs_auth && !auth_ok(s, c)) {
            srv_fail(&cx->early, 401, "invalid_request_error", "invalid_api_key", NULL,
                     "Incorrect or missing API key: send 'Authorization: Bearer <key>'.");
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && n > s->max_body)
                return fail(s, c, cx, 413, "invalid_request_error", "request_too_large", NULL,
                            "the request body is %llu bytes; the limit is %zu", n, s->max_body);
        }
        return MHD_YES;
    }
    if (cx->has_replied) {  // a response was queued early; drop whatever body still arrives
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cx->early.status || cx->is_options || cx->is_too_large) {  // discarded, but bounded
            cx->n_discarded += n;
            return cx->n_discarded > 4 * s->max_body ? MHD_NO : MHD_YES;
        }
        if (cx->len + n > s->max_body) {
            cx->is_too_large = true;
            cx->n_discarded = cx->len + n;
            free(cx->body);
            cx->body = NULL;
            cx->len = cx->cap = 0;
            return MHD_YES;
        }
        if (cx->len + n + 1 > cx->cap) {
            size_t nc = cx->cap ? cx->cap * 2 : 4096;
            while (nc < cx->len + n + 1) nc *= 2;
            if (nc > s->max_body + 1) nc = s->max_body + 1;
            char *p = realloc(cx->body, nc);
            if (!p) return MHD_NO;
            cx->body = p;
            cx->cap = nc;
        }
        memcpy(cx->body + cx->len, upload, n);
        cx->len += n;
        cx->body[cx->len] = 0;
        return MHD_YES;
    }
    if (cx->early.status) return reply_error(s, c, cx, &cx->early, cx->early.status == 405 ? cx->allow : NULL);
    if (cx->is_options) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, cx->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", cx->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, resp);
        MHD_destroy_response(resp);
        cx->has_replied = true;
        srv_metrics_http(s->metrics, 204);
        return ok;
    }
    if (cx->is_too_large)
        return fail(s, c, cx, 413, "invalid_request_error", "request_too_large", NULL,
                    "the request body exceeds the limit of %zu bytes", s->max_body);
    // The 30 s idle timeout guards slow or stalled uploads. Once a generation request is complete it
    // may wait in the queue or for its first token far longer (long prompts, a full server) with
    // no bytes flowing: lift the timeout; client hang-ups are still noticed within 100 ms.
    if (cx->r == R_COMPLETIONS || cx->r == R_CHAT) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    switch (cx->r) {
    case R_HEALTH: case R_MODELS: case R_MODEL_ONE: case R_METRICS: return handle_get(s, c, cx, url);
    case R_COMPLETIONS: return handle_generate(s, c, cx, SRV_API_COMPLETIONS);
    case R_CHAT: return handle_generate(s, c, cx, SRV_API_CHAT);
    case R_TOKENIZE: return handle_tokenize(s, c, cx);
    case R_DETOKENIZE: return handle_detokenize(s, c, cx);
    default: return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    conn *cx = *con_cls;
    if (!cx) return;
    free(cx->body);
    free(cx);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    tv_log(TV_LOG_WARN, "http: %s", msg);
}

tv_server *tv_server_start(tv_model *m, tv_engine *e, const tv_server_config *cfg, tv_error *err) {
    tv_server_config defaults;
    tv_server_config_default(&defaults);
    const tv_server_config *c = cfg ? cfg : &defaults;
    struct addrinfo *ai = NULL;
    tv_server *s = calloc(1, sizeof *s);
    if (!s) { tv_error_set(err, TV_ERR_NOMEM, "server: out of memory"); return NULL; }
    s->model = m;
    s->engine = e;
    s->tok = tv_model_tokenizer(m);
    s->n_vocab = tv_model_n_vocab(m);
    tv_sampling_params_default(&s->sampling);
    tv_model_sampling_defaults(m, 0, &s->sampling);
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    s->n_ctx = lim.max_model_len;
    s->max_body = c->max_body_bytes ? c->max_body_bytes : (8u << 20);
    s->created = (long)time(NULL);
    atomic_init(&s->next_id, (unsigned long long)time(NULL) << 20);
    atomic_init(&s->is_stopping, false);
    atomic_init(&s->n_generating, 0);
    const char *name = c->model_alias && c->model_alias[0] ? c->model_alias : tv_model_name(m);
    if (!name) name = "tinyvllm";
    if (!(s->model_id = utf8_sanitize(name, strlen(name)))) goto oom;   // it goes into every JSON answer
    if (c->api_key && c->api_key[0] && !(s->api_key = strdup(c->api_key))) goto oom;
    if (!(s->metrics = srv_metrics_create(s->model_id))) goto oom;

    const char *tpl = c->chat_template ? c->chat_template : tv_model_chat_template(m);
    if (!(s->chat = srv_chat_create(tpl, c->chat_template_kwargs, s->tok, err))) {
        if (err) {
            char old[sizeof err->msg];
            memcpy(old, err->msg, sizeof old);
            tv_error_set(err, err->code ? err->code : TV_ERR_FORMAT, "chat template: %s", old);
        }
        goto fail;
    }

    int max_queue = c->max_queue >= 0 ? c->max_queue : 0;
    if (!(s->worker = srv_worker_create(e, s->metrics, lim.max_num_seqs + max_queue, err))) goto fail;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    const char *host = c->host && c->host[0] ? c->host : "127.0.0.1";
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        tv_error_set(err, TV_ERR_INVALID, "server: cannot resolve host '%s': %s", host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,   // must come first
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)(c->max_connections > 0 ? c->max_connections : 512),
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                                 MHD_OPTION_END);
    if (!s->daemon) {
        tv_error_set(err, TV_ERR_IO, "server: cannot listen on %s:%d (in use, or not a local address?)", host, c->port);
        goto fail;
    }
    freeaddrinfo(ai);
    ai = NULL;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    return s;
oom:
    tv_error_set(err, TV_ERR_NOMEM, "server: out of memory");
fail:
    if (ai) freeaddrinfo(ai);
    tv_server_stop(s);
    return NULL;
}

void tv_server_stop(tv_server *s) {
    if (!s) return;
    atomic_store(&s->is_stopping, true);
    MHD_socket lsock = s->daemon ? MHD_quiesce_daemon(s->daemon) : MHD_INVALID_SOCKET;  // no new connections
    srv_worker_shutdown(s->worker);                   // abort in flight: streams end, handlers return
    // Let aborted answers finish ("abort" finish chunk and [DONE]) before MHD closes every
    // connection; readers notice within WAIT_SLICE_MS. Bounded: a client that stopped reading
    // cannot hold the shutdown.
    for (int i = 0; i < 1000 && atomic_load(&s->n_generating) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (s->daemon) MHD_stop_daemon(s->daemon);        // joins the connection threads
    if (lsock != MHD_INVALID_SOCKET) close(lsock);    // quiesce hands the listening socket to us
    srv_worker_free(s->worker);
    srv_chat_free(s->chat);
    srv_metrics_free(s->metrics);
    free(s->model_id);
    free(s->api_key);
    free(s);
}
