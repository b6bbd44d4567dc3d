// request.c — OpenAI request JSON -> srv_request (see request.h for the accepted grammar).
#include "request.h"
#include "tools.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_INVALID "invalid_request_error"

bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...) {
    if (!e) return false;
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

#define BAD(param, ...) srv_fail(err, 400, T_INVALID, NULL, param, __VA_ARGS__)

void srv_request_free(srv_request *r) {
    if (!r) return;
    free(r->model);
    for (int i = 0; i < r->n_prompts; i++) { free(r->prompts[i].text); free(r->prompts[i].ids); }
    free(r->prompts);
    cJSON_Delete(r->messages);
    cJSON_Delete(r->tools);
    cJSON_Delete(r->kwargs);
    free(r->tokens);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->bias_ids);
    free(r->bias_vals);
    free(r->constraint_spec);
    free(r);
}

static bool is_null_or_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

// A JSON number that is an integer in [lo, hi].
static bool get_int(const cJSON *v, const char *name, int64_t lo, int64_t hi, int64_t *out, srv_error *err) {
    if (!cJSON_IsNumber(v)) return BAD(name, "'%s' must be an integer", name);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return BAD(name, "'%s' must be an integer", name);
    if (d < (double)lo || d > (double)hi)
        return BAD(name, "'%s' must be between %lld and %lld, got %.17g", name, (long long)lo, (long long)hi, d);
    *out = (int64_t)d;
    return true;
}

static bool get_float(const cJSON *v, const char *name, double lo, double hi, bool lo_open, float *out, srv_error *err) {
    if (!cJSON_IsNumber(v)) return BAD(name, "'%s' must be a number", name);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi || (lo_open && d == lo))
        return BAD(name, "'%s' must be in %s%g, %g], got %.17g", name, lo_open ? "(" : "[", lo, hi, d);
    *out = (float)d;
    return true;
}

static bool get_bool(const cJSON *v, const char *name, bool *out, srv_error *err) {
    if (!cJSON_IsBool(v)) return BAD(name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return true;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

// [int, ...] of token ids -> malloc'ed array. Empty arrays are rejected.
static bool get_ids(const cJSON *arr, const char *name, int32_t n_vocab, int32_t **ids, size_t *n_ids, srv_error *err) {
    int n = cJSON_GetArraySize(arr);
    if (n <= 0) return BAD(name, "'%s' must not be empty", name);
    int32_t *v = malloc((size_t)n * sizeof *v);
    if (!v) return srv_fail(err, 500, "server_error", NULL, name, "out of memory");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int64_t x;
        int64_t hi = n_vocab > 0 ? (int64_t)n_vocab - 1 : INT32_MAX;
        if (!get_int(it, name, 0, hi, &x, err)) {
            if (n_vocab > 0 && cJSON_IsNumber(it))
                BAD(name, "token id %.17g in '%s' is out of vocabulary (n_vocab = %d)", it->valuedouble, name, (int)n_vocab);
            free(v);
            return false;
        }
        v[i++] = (int32_t)x;
    }
    *ids = v;
    *n_ids = (size_t)n;
    return true;
}

static bool parse_prompt(srv_request *r, const cJSON *p, int32_t n_vocab, srv_error *err) {
    if (is_null_or_absent(p)) return BAD("prompt", "'prompt' is required");
    if (cJSON_IsString(p)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts || !(r->prompts[0].text = dup_str(p->valuestring)))
            return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_prompts = 1;
        return true;
    }
    if (!cJSON_IsArray(p)) return BAD("prompt", "'prompt' must be a string, an array of strings, or token ids");
    int n = cJSON_GetArraySize(p);
    if (n <= 0) return BAD("prompt", "'prompt' must not be empty");
    const cJSON *first = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsNumber(first)) {  // one prompt of token ids
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_prompts = 1;
        return get_ids(p, "prompt", n_vocab, &r->prompts[0].ids, &r->prompts[0].n_ids, err);
    }
    if (n > SRV_MAX_PROMPTS) return BAD("prompt", "at most %d prompts per request, got %d", SRV_MAX_PROMPTS, n);
    r->prompts = calloc((size_t)n, sizeof *r->prompts);
    if (!r->prompts) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        srv_prompt *sp = &r->prompts[r->n_prompts++];
        if (cJSON_IsString(it)) {
            if (!(sp->text = dup_str(it->valuestring))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        } else if (cJSON_IsArray(it)) {
            if (!get_ids(it, "prompt", n_vocab, &sp->ids, &sp->n_ids, err)) return false;
        } else {
            return BAD("prompt", "'prompt' must be a string, an array of strings, or token ids");
        }
    }
    return true;
}

// Messages are copied with content normalized to a string (text parts joined by "\n") so that chat
// templates written for string content work with the array form too.
static bool parse_messages(srv_request *r, const cJSON *msgs, srv_error *err) {
    if (is_null_or_absent(msgs)) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "'messages' must be an array");
    if (cJSON_GetArraySize(msgs) <= 0) return BAD("messages", "'messages' must not be empty");
    r->messages = cJSON_Duplicate(msgs, true);
    if (!r->messages) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    int i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, r->messages) {
        char pname[48];
        snprintf(pname, sizeof pname, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return BAD(pname, "'%s' must be an object", pname);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0]) return BAD(pname, "'%s.role' must be a non-empty string", pname);
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(content)) {
            size_t total = 1;
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsObject(part) || !cJSON_IsString(type))
                    return BAD(pname, "'%s.content' parts must be objects with a 'type'", pname);
                if (strcmp(type->valuestring, "text") != 0)
                    return BAD(pname, "content part type '%s' is not supported (only 'text')", type->valuestring);
                if (!cJSON_IsString(text)) return BAD(pname, "'%s.content' text part needs a string 'text'", pname);
                total += strlen(text->valuestring) + 1;
            }
            char *joined = malloc(total), *w = joined;
            if (!joined) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
            bool first = true;
            cJSON_ArrayForEach(part, content) {
                const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
                if (!first) *w++ = '\n';
                size_t l = strlen(t);
                memcpy(w, t, l);
                w += l;
                first = false;
            }
            *w = 0;
            cJSON *s = cJSON_CreateString(joined);
            free(joined);
            if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(m, "content", s)) {
                cJSON_Delete(s);
                return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
            }
        } else if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
            return BAD(pname, "'%s.content' must be a string, an array of text parts, or null", pname);
        } else if (!content || cJSON_IsNull(content)) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            if (!tc && strcmp(role->valuestring, "assistant") != 0)
                return BAD(pname, "'%s.content' is required", pname);
        }
        i++;
    }
    return true;
}

static bool parse_stop(srv_request *r, const cJSON *stop, srv_error *err) {
    if (is_null_or_absent(stop)) return true;
    if (cJSON_IsString(stop)) {
        if (!stop->valuestring[0]) return true;
        r->stop = calloc(1, sizeof *r->stop);
        if (!r->stop || !(r->stop[0] = dup_str(stop->valuestring))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stop = 1;
        return true;
    }
    if (!cJSON_IsArray(stop)) return BAD("stop", "'stop' must be a string or an array of strings");
    int n = cJSON_GetArraySize(stop);
    if (n > SRV_MAX_STOP) return BAD("stop", "at most %d stop sequences, got %d", SRV_MAX_STOP, n);
    r->stop = calloc((size_t)n + 1, sizeof *r->stop);
    if (!r->stop) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, stop) {
        if (!cJSON_IsString(it)) return BAD("stop", "'stop' must be a string or an array of strings");
        if (!it->valuestring[0]) continue;
        if (!(r->stop[r->n_stop] = dup_str(it->valuestring))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stop++;
    }
    return true;
}

static bool parse_bias(srv_request *r, const cJSON *lb, int32_t n_vocab, srv_error *err) {
    if (is_null_or_absent(lb)) return true;
    if (!cJSON_IsObject(lb)) return BAD("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    int n = cJSON_GetArraySize(lb);
    if (n > SRV_MAX_BIAS) return BAD("logit_bias", "at most %d logit_bias entries, got %d", SRV_MAX_BIAS, n);
    if (n == 0) return true;
    r->bias_ids = malloc((size_t)n * sizeof *r->bias_ids);
    r->bias_vals = malloc((size_t)n * sizeof *r->bias_vals);
    if (!r->bias_ids || !r->bias_vals) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, lb) {
        const char *k = it->string ? it->string : "";
        char *end = NULL;
        long long id = strtoll(k, &end, 10);
        if (!k[0] || *end || id < 0 || id > INT32_MAX || (n_vocab > 0 && id >= n_vocab))
            return BAD("logit_bias", "logit_bias key '%.64s' is not a token id in [0, %d)", k, (int)(n_vocab > 0 ? n_vocab : INT32_MAX));
        float v;
        if (!get_float(it, "logit_bias", -100, 100, false, &v, err)) return false;
        r->bias_ids[r->sampling.n_logit_bias] = (int32_t)id;
        r->bias_vals[r->sampling.n_logit_bias] = v;
        r->sampling.n_logit_bias++;
    }
    return true;
}

static bool parse_sampling(srv_request *r, const cJSON *root, int32_t n_vocab, srv_error *err) {
    tv_sampling_params *s = &r->sampling;
    const cJSON *v;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "temperature")) &&
        !get_float(v, "temperature", 0, 2, false, &s->temperature, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "top_p")) &&
        !get_float(v, "top_p", 0, 1, true, &s->top_p, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "min_p")) &&
        !get_float(v, "min_p", 0, 1, false, &s->min_p, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "presence_penalty")) &&
        !get_float(v, "presence_penalty", -2, 2, false, &s->presence_penalty, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "frequency_penalty")) &&
        !get_float(v, "frequency_penalty", -2, 2, false, &s->frequency_penalty, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "repetition_penalty")) &&
        !get_float(v, "repetition_penalty", 0, 2, true, &s->repetition_penalty, err)) return false;
    int64_t x;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "top_k"))) {
        if (!get_int(v, "top_k", -1, INT32_MAX, &x, err)) return false;
        s->top_k = (int)x;
    }
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "seed"))) {
        // OpenAI seeds are 64-bit signed; doubles hold integers exactly up to 2^53.
        if (!get_int(v, "seed", -(INT64_C(1) << 53), INT64_C(1) << 53, &x, err)) return false;
        s->seed = (uint64_t)x;
        s->has_seed = true;
    }
    if (!parse_bias(r, cJSON_GetObjectItemCaseSensitive(root, "logit_bias"), n_vocab, err)) return false;
    s->logit_bias_ids = r->bias_ids;
    s->logit_bias_vals = r->bias_vals;
    return true;
}

// Sets r's constraint from one structured-output field; false + err when a second one was given or
// the spec does not compile. spec: a string as given, or JSON to print.
static bool set_constraint(srv_request *r, const char *param, tv_constraint_kind kind, const cJSON *spec, srv_error *err) {
    if (r->constraint != TV_CONSTRAINT_NONE)
        return BAD(param, "give at most one structured-output constraint (response_format, structured_outputs, "
                          "guided_*, grammar, json_schema); '%s' is a second one", param);
    char *text = NULL;
    if (spec) text = cJSON_IsString(spec) ? strdup(spec->valuestring) : cJSON_PrintUnformatted(spec);
    if (spec && !text) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    tv_error terr = {0};
    if (tv_constraint_check(kind, text ? text : "", &terr) != TV_OK) {
        free(text);
        return BAD(param, "'%s': %s", param, terr.msg);
    }
    r->constraint = kind;
    r->constraint_spec = text;
    return true;
}

static bool parse_constraint(srv_request *r, const cJSON *root, srv_error *err) {
    const cJSON *v;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "response_format"))) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
        if (!cJSON_IsObject(v) || !cJSON_IsString(t)) return BAD("response_format", "'response_format' must be an object with a 'type'");
        if (!strcmp(t->valuestring, "json_object")) {
            if (!set_constraint(r, "response_format", TV_CONSTRAINT_JSON_OBJECT, NULL, err)) return false;
        } else if (!strcmp(t->valuestring, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "json_schema");
            const cJSON *sch = cJSON_IsObject(js) ? cJSON_GetObjectItemCaseSensitive(js, "schema") : NULL;
            if (!sch) return BAD("response_format", "response_format json_schema needs 'json_schema': {'name', 'schema'}");
            if (!cJSON_IsObject(sch) && !cJSON_IsBool(sch)) return BAD("response_format", "'json_schema.schema' must be a JSON Schema object");
            if (!set_constraint(r, "response_format", TV_CONSTRAINT_JSON_SCHEMA, sch, err)) return false;
        } else if (strcmp(t->valuestring, "text") != 0)
            return BAD("response_format", "response_format type '%.64s' is not supported ('text', 'json_object', 'json_schema')",
                       t->valuestring);
    }
    // vLLM: structured_outputs {json, regex, choice, grammar, json_object}; the older guided_* fields
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "structured_outputs");
    if (!is_null_or_absent(so) && !cJSON_IsObject(so)) return BAD("structured_outputs", "'structured_outputs' must be an object");
    static const struct { const char *key, *legacy; tv_constraint_kind kind; } f[] = {
        {"json", "guided_json", TV_CONSTRAINT_JSON_SCHEMA}, {"regex", "guided_regex", TV_CONSTRAINT_REGEX},
        {"choice", "guided_choice", TV_CONSTRAINT_CHOICE}, {"grammar", "guided_grammar", TV_CONSTRAINT_GRAMMAR}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        const cJSON *x = cJSON_IsObject(so) ? cJSON_GetObjectItemCaseSensitive(so, f[i].key) : NULL;
        const char *param = "structured_outputs";
        if (is_null_or_absent(x)) { x = cJSON_GetObjectItemCaseSensitive(root, f[i].legacy); param = f[i].legacy; }
        if (is_null_or_absent(x)) continue;
        if (f[i].kind == TV_CONSTRAINT_CHOICE ? !cJSON_IsArray(x)
            : f[i].kind == TV_CONSTRAINT_JSON_SCHEMA ? !(cJSON_IsObject(x) || cJSON_IsString(x) || cJSON_IsBool(x))
                                                     : !cJSON_IsString(x))
            return BAD(param, "'%s' has the wrong type for '%s'", param, f[i].key);
        if (!set_constraint(r, param, f[i].kind, x, err)) return false;
    }
    if (cJSON_IsObject(so) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "json_object")) &&
        !set_constraint(r, "structured_outputs", TV_CONSTRAINT_JSON_OBJECT, NULL, err)) return false;
    // llama-server: grammar (GBNF) and json_schema
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "grammar"))) {
        if (!cJSON_IsString(v)) return BAD("grammar", "'grammar' must be a string (GBNF)");
        if (v->valuestring[0] && !set_constraint(r, "grammar", TV_CONSTRAINT_GRAMMAR, v, err)) return false;
    }
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "json_schema"))) {
        if (!cJSON_IsObject(v) && !cJSON_IsBool(v)) return BAD("json_schema", "'json_schema' must be a JSON Schema object");
        if (!set_constraint(r, "json_schema", TV_CONSTRAINT_JSON_SCHEMA, v, err)) return false;
    }
    return true;
}

static bool parse_tool_choice(srv_request *r, const cJSON *root, srv_error *err) {
    const cJSON *v;
    r->parallel_tool_calls = true;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "parallel_tool_calls")) &&
        !get_bool(v, "parallel_tool_calls", &r->parallel_tool_calls, err)) return false;
    r->reasoning = true;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "reasoning_format"))) {
        if (!cJSON_IsString(v)) return BAD("reasoning_format", "'reasoning_format' must be a string");
        r->reasoning = strcmp(v->valuestring, "none") != 0;
    }
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "include_reasoning")) && cJSON_IsFalse(v)) r->reasoning = false;
    v = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    if (is_null_or_absent(v)) return true;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "none")) r->tool_choice = SRV_TOOLS_NONE;
        else if (!strcmp(v->valuestring, "auto")) r->tool_choice = SRV_TOOLS_AUTO;
        else if (!strcmp(v->valuestring, "required")) r->tool_choice = SRV_TOOLS_REQUIRED;
        else return BAD("tool_choice", "tool_choice '%.64s' is not one of none, auto, required", v->valuestring);
    } else {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "function"), "name");
        if (!cJSON_IsString(nm)) return BAD("tool_choice", "tool_choice must be a string or {type: 'function', function: {name}}");
        r->tool_choice = SRV_TOOLS_NAMED;
        snprintf(r->tool_name, sizeof r->tool_name, "%s", nm->valuestring);
    }
    if (r->tool_choice == SRV_TOOLS_REQUIRED || r->tool_choice == SRV_TOOLS_NAMED) {
        if (!r->tools) return BAD("tool_choice", "tool_choice '%s' needs 'tools'", r->tool_choice == SRV_TOOLS_NAMED ? r->tool_name : "required");
        char *schema = srv_tools_schema(r->tools, r->tool_choice == SRV_TOOLS_NAMED ? r->tool_name : NULL, r->parallel_tool_calls, err);
        if (!schema) return false;
        cJSON *js = cJSON_CreateString(schema);
        free(schema);
        const bool ok = js && set_constraint(r, "tool_choice", TV_CONSTRAINT_JSON_SCHEMA, js, err);
        cJSON_Delete(js);
        if (!ok) return false;
    }
    return true;
}

static bool parse_generation(srv_request *r, const cJSON *root, int32_t n_vocab, srv_error *err) {
    const cJSON *v;
    int64_t x;
    bool chat = r->api == SRV_API_CHAT;
    if (!parse_sampling(r, root, n_vocab, err)) return false;

    v = chat ? cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens") : NULL;
    const char *mt_name = "max_completion_tokens";
    if (is_null_or_absent(v)) { v = cJSON_GetObjectItemCaseSensitive(root, "max_tokens"); mt_name = "max_tokens"; }
    if (!is_null_or_absent(v)) {
        if (!get_int(v, mt_name, 1, INT32_MAX, &x, err)) return false;
        r->max_tokens = (int)x;
    }
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "n"))) {
        if (!get_int(v, "n", 1, SRV_MAX_N, &x, err)) return false;
        r->n = (int)x;
    }
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "best_of"))) {
        if (!get_int(v, "best_of", 1, SRV_MAX_N, &x, err)) return false;
        if (x != r->n) return BAD("best_of", "best_of != n is not supported");
    }
    if (!parse_stop(r, cJSON_GetObjectItemCaseSensitive(root, "stop"), err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "ignore_eos")) &&
        !get_bool(v, "ignore_eos", &r->ignore_eos, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "skip_special_tokens")) &&
        !get_bool(v, "skip_special_tokens", &r->skip_special_tokens, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "user")) && !cJSON_IsString(v))
        return BAD("user", "'user' must be a string");
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "stream")) &&
        !get_bool(v, "stream", &r->stream, err)) return false;
    if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "stream_options"))) {
        if (!cJSON_IsObject(v)) return BAD("stream_options", "'stream_options' must be an object");
        if (!r->stream) return BAD("stream_options", "'stream_options' is only allowed when 'stream' is true");
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (!is_null_or_absent(iu) && !get_bool(iu, "stream_options.include_usage", &r->include_usage, err)) return false;
    }
    if (!parse_constraint(r, root, err)) return false;

    if (chat) {
        bool lp = false;
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "logprobs")) && !get_bool(v, "logprobs", &lp, err))
            return false;
        int top = 0;
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs"))) {
            if (!get_int(v, "top_logprobs", 0, SRV_MAX_LOGPROBS, &x, err)) return false;
            if (!lp) return BAD("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
            top = (int)x;
        }
        r->logprobs = lp ? top : -1;
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "tools"))) {
            if (!cJSON_IsArray(v)) return BAD("tools", "'tools' must be an array");
            if (!(r->tools = cJSON_Duplicate(v, true))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        }
        if (!parse_tool_choice(r, root, err)) return false;
    } else {
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "logprobs"))) {
            if (!get_int(v, "logprobs", 0, SRV_MAX_LOGPROBS, &x, err)) return false;
            r->logprobs = (int)x;
        }
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "echo")) && !get_bool(v, "echo", &r->echo, err))
            return false;
        if (r->echo && r->logprobs >= 0) return BAD("echo", "'echo' together with 'logprobs' is not supported");
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "suffix")))
            return BAD("suffix", "'suffix' is not supported");
    }
    r->sampling.logprobs = r->logprobs;
    if ((int64_t)r->n * (r->n_prompts > 0 ? r->n_prompts : 1) > SRV_MAX_SEQS)
        return BAD("n", "n x prompts must be at most %d", SRV_MAX_SEQS);
    return true;
}

// chat_template_kwargs (vLLM's and llama.cpp's name): extra template variables, e.g.
// {"enable_thinking": false} for Qwen3. false + err when present but not an object.
static bool parse_template_kwargs(srv_request *r, const cJSON *root, srv_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "chat_template_kwargs");
    if (is_null_or_absent(v)) return true;
    if (!cJSON_IsObject(v)) return BAD("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    if (!(r->kwargs = cJSON_Duplicate(v, true))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

srv_request *srv_request_parse(srv_api api, const char *body, size_t len, int32_t n_vocab, const tv_sampling_params *sampling,
                               srv_error *err) {
    srv_request *r = NULL;
    cJSON *root = NULL;
    if (!body || len == 0) { BAD(NULL, "the request body is empty; expected a JSON object"); goto fail; }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        BAD(NULL, "malformed JSON in the request body near byte %zu", off);
        goto fail;
    }
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') { BAD(NULL, "trailing data after the JSON body"); goto fail; }
    }
    if (!cJSON_IsObject(root)) { BAD(NULL, "the request body must be a JSON object"); goto fail; }

    r = calloc(1, sizeof *r);
    if (!r) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    r->api = api;
    r->max_tokens = -1;
    r->logprobs = -1;
    r->n = 1;
    r->skip_special_tokens = true;
    r->add_generation_prompt = true;
    if (sampling) r->sampling = *sampling;
    else tv_sampling_params_default(&r->sampling);

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!is_null_or_absent(v)) {
        if (!cJSON_IsString(v)) { BAD("model", "'model' must be a string"); goto fail; }
        if (!(r->model = dup_str(v->valuestring))) { srv_fail(err, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    }

    switch (api) {
    case SRV_API_COMPLETIONS:
        r->max_tokens = 16;   // OpenAI's (and vLLM's) default for completions; chat has none
        if (!parse_prompt(r, cJSON_GetObjectItemCaseSensitive(root, "prompt"), n_vocab, err)) goto fail;
        if (!parse_generation(r, root, n_vocab, err)) goto fail;
        break;
    case SRV_API_CHAT:
        if (!parse_messages(r, cJSON_GetObjectItemCaseSensitive(root, "messages"), err)) goto fail;
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "add_generation_prompt")) &&
            !get_bool(v, "add_generation_prompt", &r->add_generation_prompt, err)) goto fail;
        if (!parse_template_kwargs(r, root, err)) goto fail;
        if (!parse_generation(r, root, n_vocab, err)) goto fail;
        break;
    case SRV_API_TOKENIZE: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!is_null_or_absent(p) == !is_null_or_absent(m)) { BAD("prompt", "give exactly one of 'prompt' or 'messages'"); goto fail; }
        if (!is_null_or_absent(p)) {
            if (!cJSON_IsString(p)) { BAD("prompt", "'prompt' must be a string"); goto fail; }
            if (!parse_prompt(r, p, n_vocab, err)) goto fail;
            r->add_special_tokens = true;
        } else {
            if (!parse_messages(r, m, err)) goto fail;
            r->add_special_tokens = false;
            if (!parse_template_kwargs(r, root, err)) goto fail;
            if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "add_generation_prompt")) &&
                !get_bool(v, "add_generation_prompt", &r->add_generation_prompt, err)) goto fail;
        }
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "add_special_tokens")) &&
            !get_bool(v, "add_special_tokens", &r->add_special_tokens, err)) goto fail;
        if (!is_null_or_absent(v = cJSON_GetObjectItemCaseSensitive(root, "return_token_strs")) &&
            !get_bool(v, "return_token_strs", &r->return_token_strs, err)) goto fail;
        break;
    }
    case SRV_API_DETOKENIZE: {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens");
        if (is_null_or_absent(t)) { BAD("tokens", "'tokens' is required"); goto fail; }
        if (!cJSON_IsArray(t)) { BAD("tokens", "'tokens' must be an array of token ids"); goto fail; }
        if (cJSON_GetArraySize(t) == 0) break;
        if (!get_ids(t, "tokens", n_vocab, &r->tokens, &r->n_tokens, err)) goto fail;
        break;
    }
    default:
        BAD(NULL, "unknown API");
        goto fail;
    }
    cJSON_Delete(root);
    return r;
fail:
    cJSON_Delete(root);
    srv_request_free(r);
    return NULL;
}
