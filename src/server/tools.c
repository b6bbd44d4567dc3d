// tools.c — reasoning / tool-call parsing of replies and the forced-call schema (see tools.h).
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_START = 0, ST_THINK, ST_CONTENT, ST_CALL, ST_FORCED, ST_H_HEAD, ST_H_BODY };
// gpt-oss harmony: what the current message's body is
enum { H_CONTENT = 0, H_REASONING, H_CALL };

static const char *const k_h_ends[] = {"<|end|>", "<|call|>", "<|return|>", "<|start|>"};
#define N_H_ENDS (sizeof k_h_ends / sizeof k_h_ends[0])

static const char *const k_markers[] = {"<tool_call>", "[TOOL_CALLS]"};

static bool text_put(srv_text *t, const char *p, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t nc = (t->cap + n) * 2 + 64;
        char *q = realloc(t->p, nc);
        if (!q) return false;
        t->p = q;
        t->cap = nc;
    }
    if (n) memcpy(t->p + t->n, p, n);
    t->n += n;
    t->p[t->n] = 0;
    return true;
}

void srv_text_free(srv_text *t) { free(t->p); memset(t, 0, sizeof *t); }

char *srv_tools_schema(const cJSON *tools, const char *named, bool parallel, srv_error *err) {
    cJSON *any = cJSON_CreateArray();
    char *out = NULL;
    int n = 0;
    for (const cJSON *t = tools ? tools->child : NULL; t; t = t->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        if (!cJSON_IsString(name)) { srv_fail(err, 400, "invalid_request_error", NULL, "tools", "every tool needs function.name"); goto done; }
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        cJSON *p = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
        if (!params) cJSON_AddStringToObject(p, "type", "object");
        if (named) {
            if (strcmp(named, name->valuestring) == 0) { out = cJSON_PrintUnformatted(p); cJSON_Delete(p); goto done; }
            cJSON_Delete(p);
            continue;
        }
        cJSON *o = cJSON_CreateObject(), *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "type", "object");
        cJSON *nm = cJSON_CreateObject();
        cJSON_AddStringToObject(nm, "const", name->valuestring);
        cJSON_AddItemToObject(props, "name", nm);
        cJSON_AddItemToObject(props, "parameters", p);
        cJSON_AddItemToObject(o, "properties", props);
        cJSON_AddItemToArray(req, cJSON_CreateString("name"));
        cJSON_AddItemToArray(req, cJSON_CreateString("parameters"));
        cJSON_AddItemToObject(o, "required", req);
        cJSON_AddFalseToObject(o, "additionalProperties");
        cJSON_AddItemToArray(any, o);
        n++;
    }
    if (named) { srv_fail(err, 400, "invalid_request_error", NULL, "tool_choice", "tool_choice names '%.100s', which is not among the tools", named); goto done; }
    if (!n) { srv_fail(err, 400, "invalid_request_error", NULL, "tool_choice", "tool_choice 'required' needs at least one tool"); goto done; }
    cJSON *s = cJSON_CreateObject(), *items = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "array");
    cJSON_AddNumberToObject(s, "minItems", 1);
    if (!parallel) cJSON_AddNumberToObject(s, "maxItems", 1);
    cJSON_AddItemToObject(items, "anyOf", any);
    any = NULL;
    cJSON_AddItemToObject(s, "items", items);
    out = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
done:
    cJSON_Delete(any);
    if (!out && err->status == 0) srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    return out;
}

void srv_reply_init(srv_reply *r, const srv_request *req, bool prompt_opens_think) {
    memset(r, 0, sizeof *r);
    r->reasoning = req->reasoning;
    r->tool_defs = req->tools;
    r->tools = req->tools && req->tool_choice != SRV_TOOLS_NONE;
    r->forced = req->tools && (req->tool_choice == SRV_TOOLS_REQUIRED || req->tool_choice == SRV_TOOLS_NAMED);
    if (req->tool_choice == SRV_TOOLS_NAMED) snprintf(r->forced_name, sizeof r->forced_name, "%s", req->tool_name);
    r->state = r->forced ? ST_FORCED : prompt_opens_think && r->reasoning ? ST_THINK : ST_START;
}

void srv_reply_free(srv_reply *r) {
    cJSON_Delete(r->h_calls);
    srv_text_free(&r->h_args);
    srv_text_free(&r->hold);
    srv_text_free(&r->reasoning_out);
    srv_text_free(&r->content_out);
}

void srv_reply_take(srv_reply *r) { r->reasoning_out.n = r->content_out.n = 0; }

// Length of the longest suffix of p[0..n) that is a proper prefix of m.
static size_t partial_suffix(const char *p, size_t n, const char *m) {
    const size_t ml = strlen(m);
    for (size_t k = ml - 1 < n ? ml - 1 : n; k > 0; k--)
        if (memcmp(p + n - k, m, k) == 0) return k;
    return 0;
}

static const char *find(const char *p, size_t n, const char *m) {
    const size_t ml = strlen(m);
    for (size_t i = 0; i + ml <= n; i++) if (memcmp(p + i, m, ml) == 0) return p + i;
    return NULL;
}

// Whether p[0..n) opens with marker m: 0 no, 1 not yet known (p is a proper prefix of m), 2 yes.
static int opens(const char *p, size_t n, const char *m) {
    const size_t ml = strlen(m);
    if (n < ml) return memcmp(p, m, n) == 0 ? 1 : 0;
    return memcmp(p, m, ml) == 0 ? 2 : 0;
}

static bool add_call(srv_reply *r, cJSON *calls, const char *name, const cJSON *args);

// The word after key in h[0..n) (up to a space or '<') into out; "" when key is absent.
static void h_word(const char *h, size_t n, const char *key, char *out, size_t cap) {
    const char *k = find(h, n, key);
    size_t w = 0;
    if (k)
        for (const char *q = k + strlen(key); q < h + n && *q != ' ' && *q != '<' && w + 1 < cap; q++) out[w++] = *q;
    out[w] = 0;
}

// A harmony header ("<|start|>assistant to=functions.NAME<|channel|>commentary <|constrain|>json"):
// what its body is. analysis is reasoning (content when reasoning is off), a recipient
// functions.NAME a tool call, anything else (final, a commentary preamble) content.
static void h_header(srv_reply *r, const char *h, size_t n) {
    char chan[32], to[160];
    h_word(h, n, "<|channel|>", chan, sizeof chan);
    h_word(h, n, "to=", to, sizeof to);
    r->h_kind = H_CONTENT;
    if (r->tools && !strncmp(to, "functions.", 10) && to[10]) {
        r->h_kind = H_CALL;
        snprintf(r->h_name, sizeof r->h_name, "%s", to + 10);
        r->h_args.n = 0;
    } else if (r->reasoning && !strcmp(chan, "analysis")) r->h_kind = H_REASONING;
}

static void h_body(srv_reply *r, const char *p, size_t n) {
    text_put(r->h_kind == H_REASONING ? &r->reasoning_out : r->h_kind == H_CALL ? &r->h_args : &r->content_out, p, n);
}

// The end of a harmony message: a tool call's arguments become a call (text when they are not one).
static void h_end(srv_reply *r) {
    if (r->h_kind != H_CALL) return;
    cJSON *v = cJSON_ParseWithLength(r->h_args.p ? r->h_args.p : "", r->h_args.n);
    if (!r->h_calls) r->h_calls = cJSON_CreateArray();
    if (!(v && cJSON_IsObject(v) && r->h_calls && add_call(r, r->h_calls, r->h_name, v)))
        text_put(&r->content_out, r->h_args.p ? r->h_args.p : "", r->h_args.n);
    cJSON_Delete(v);
    r->h_args.n = 0;
    r->h_kind = H_CONTENT;
}

// Processes r->hold as far as it can be classified.
static void advance(srv_reply *r) {
    for (;;) {
        char *p = r->hold.p;
        const size_t n = r->hold.n;
        size_t used = 0;
        if (r->state == ST_FORCED || r->state == ST_CALL || !n) return;
        if (r->state == ST_START) {
            size_t ws = 0;
            while (ws < n && (p[ws] == ' ' || p[ws] == '\n')) ws++;
            const char *q = p + ws;
            const size_t m = n - ws;
            const bool split = r->reasoning || r->tools;
            const int ch = split ? opens(q, m, "<|channel|>") : 0, sta = split ? opens(q, m, "<|start|>") : 0;
            const int th = r->reasoning ? opens(q, m, "<think>") : 0, py = r->tools ? opens(q, m, "<|python_tag|>") : 0;
            if (ch == 1 || sta == 1 || th == 1 || py == 1 || (!m && split)) return;   // may still become a marker
            if (ch == 2 || sta == 2) { used = ws; r->state = ST_H_HEAD; }   // gpt-oss harmony
            else if (th == 2) { used = ws + 7; r->state = ST_THINK; }
            else if (py == 2 || (r->tools && (q[0] == '{' || q[0] == '['))) { r->state = ST_CALL; return; }   // Llama 3 JSON
            else {
                r->state = ST_CONTENT;
                if (r->after_think) while (used < n && p[used] == '\n') used++;   // as when </think> and they came together
            }
        } else if (r->state == ST_H_HEAD) {   // up to <|message|>: held whole (headers are short)
            const char *e = find(p, n, "<|message|>");
            if (!e) return;
            h_header(r, p, (size_t)(e - p));
            used = (size_t)(e - p) + 11;
            r->state = ST_H_BODY;
        } else if (r->state == ST_H_BODY) {   // to the first terminator; <|start|> opens the next header
            const char *first = NULL;
            size_t k_first = 0, hold = 0;
            for (size_t k = 0; k < N_H_ENDS; k++) {
                const char *m = find(p, n, k_h_ends[k]);
                if (m && (!first || m < first)) { first = m; k_first = k; }
                const size_t h = partial_suffix(p, n, k_h_ends[k]);
                if (h > hold) hold = h;
            }
            used = first ? (size_t)(first - p) : n - hold;
            h_body(r, p, used);
            if (first) {
                h_end(r);
                if (strcmp(k_h_ends[k_first], "<|start|>")) used += strlen(k_h_ends[k_first]);
                r->state = ST_H_HEAD;
            } else if (!used) return;
        } else if (r->state == ST_THINK) {
            const char *e = find(p, n, "</think>");
            if (e) {
                text_put(&r->reasoning_out, p, (size_t)(e - p));
                used = (size_t)(e - p) + 8;
                while (used < n && p[used] == '\n') used++;
                r->state = ST_START;
                r->reasoning = false;   // one reasoning block
                r->after_think = true;
            } else {
                used = n - partial_suffix(p, n, "</think>");
                text_put(&r->reasoning_out, p, used);
                if (!used) return;
            }
        } else {   // ST_CONTENT
            const char *first = NULL;
            for (size_t k = 0; r->tools && k < 2; k++) {
                const char *m = find(p, n, k_markers[k]);
                if (m && (!first || m < first)) first = m;
            }
            if (first) {
                text_put(&r->content_out, p, (size_t)(first - p));
                used = (size_t)(first - p);
                r->state = ST_CALL;
            } else {
                size_t hold = 0;
                for (size_t k = 0; r->tools && k < 2; k++) {
                    const size_t h = partial_suffix(p, n, k_markers[k]);
                    if (h > hold) hold = h;
                }
                used = n - hold;
                text_put(&r->content_out, p, used);
                if (!used) return;
            }
        }
        memmove(r->hold.p, r->hold.p + used, n - used);
        r->hold.n = n - used;
        r->hold.p[r->hold.n] = 0;
    }
}

void srv_reply_feed(srv_reply *r, const char *text, size_t n) {
    if (!n) return;
    text_put(&r->hold, text, n);
    advance(r);
}

static bool tool_known(const srv_reply *r, const char *name) {
    for (const cJSON *t = r->tool_defs ? r->tool_defs->child : NULL; t; t = t->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name)) return true;
    }
    return false;
}

static unsigned long g_call_seq;

// Appends {id, type, function: {name, arguments}} to calls; false when obj is not a known call.
static bool add_call(srv_reply *r, cJSON *calls, const char *name, const cJSON *args) {
    if (!name || !tool_known(r, name)) return false;
    char *a = args ? (cJSON_IsString(args) ? strdup(args->valuestring) : cJSON_PrintUnformatted(args)) : strdup("{}");
    if (!a) return false;
    char id[40];
    snprintf(id, sizeof id, "call_%08lx%06lx", (unsigned long)rand() & 0xffffffffUL, __atomic_add_fetch(&g_call_seq, 1, __ATOMIC_RELAXED) & 0xffffffUL);
    cJSON *c = cJSON_CreateObject(), *f = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "type", "function");
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", a);
    cJSON_AddItemToObject(c, "function", f);
    cJSON_AddItemToArray(calls, c);
    free(a);
    return true;
}

static bool add_json_calls(srv_reply *r, cJSON *calls, const cJSON *v, const char *args_key) {
    const cJSON *one = cJSON_IsArray(v) ? v->child : v;
    if (!one) return false;
    for (; one; one = cJSON_IsArray(v) ? one->next : NULL) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(one, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(one, args_key);
        if (!args) args = cJSON_GetObjectItemCaseSensitive(one, "arguments");
        if (!cJSON_IsString(nm) || !add_call(r, calls, nm->valuestring, args)) return false;
    }
    return true;
}

cJSON *srv_reply_finish(srv_reply *r) {
    if (r->state == ST_H_HEAD || r->state == ST_H_BODY) {   // harmony: calls were taken message by message
        if (r->state == ST_H_BODY) {
            h_body(r, r->hold.p ? r->hold.p : "", r->hold.n);
            h_end(r);
        }
        r->hold.n = 0;   // an unfinished header is markup
        cJSON *calls = r->h_calls;
        r->h_calls = NULL;
        if (calls && !cJSON_GetArraySize(calls)) { cJSON_Delete(calls); calls = NULL; }
        return calls;
    }
    cJSON *calls = cJSON_CreateArray();
    char *p = r->hold.p ? r->hold.p : (char *)"";
    const size_t n = r->hold.n;
    bool ok = false;
    if (r->state == ST_FORCED) {
        cJSON *v = cJSON_ParseWithLength(p, n);
        if (r->forced_name[0]) ok = v && add_call(r, calls, r->forced_name, v);
        else ok = v && add_json_calls(r, calls, v, "parameters");
        cJSON_Delete(v);
    } else if (r->state == ST_CALL) {
        const char *q = p;
        if (!strncmp(q, "<|python_tag|>", 14)) q += 14;
        if (!strncmp(q, "[TOOL_CALLS]", 12)) {
            cJSON *v = cJSON_Parse(q + 12);
            ok = v && add_json_calls(r, calls, v, "arguments");
            cJSON_Delete(v);
        } else if (!strncmp(q, "<tool_call>", 11)) {   // blocks, text between them kept as content
            srv_text rest = {0};
            ok = true;
            while (ok && q && *q) {
                const char *b = strstr(q, "<tool_call>");
                if (!b) { text_put(&rest, q, strlen(q)); break; }
                text_put(&rest, q, (size_t)(b - q));
                const char *e = strstr(b, "</tool_call>");
                const size_t jl = e ? (size_t)(e - b - 11) : strlen(b + 11);
                cJSON *v = cJSON_ParseWithLength(b + 11, jl);
                ok = v && add_json_calls(r, calls, v, "arguments");
                cJSON_Delete(v);
                q = e ? e + 12 : NULL;
            }
            if (ok) {
                size_t s = 0;
                while (s < rest.n && (rest.p[s] == ' ' || rest.p[s] == '\n')) s++;
                if (rest.n > s) text_put(&r->content_out, rest.p + s, rest.n - s);
            }
            srv_text_free(&rest);
        } else {   // Llama 3 JSON
            cJSON *v = cJSON_Parse(q);
            ok = v && add_json_calls(r, calls, v, "parameters");
            cJSON_Delete(v);
        }
    }
    if (!ok || !cJSON_GetArraySize(calls)) {   // not calls after all: it is text
        cJSON_Delete(calls);
        calls = NULL;
        if (r->state == ST_THINK) text_put(&r->reasoning_out, p, n);
        else text_put(&r->content_out, p, n);
    }
    r->hold.n = 0;
    return calls;
}
