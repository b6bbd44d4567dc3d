// tools.c — reasoning / tool-call parsing of replies and the forced-call schema (see tools.h).
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_START = 0, ST_THINK, ST_CONTENT, ST_CALL, ST_FORCED };

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
            if (r->reasoning && n - ws < 7 && memcmp(p + ws, "<think>", n - ws) == 0) return;   // may still be <think>
            if (r->reasoning && n - ws >= 7 && memcmp(p + ws, "<think>", 7) == 0) { used = ws + 7; r->state = ST_THINK; }
            else if (r->tools && ws < n && (p[ws] == '{' || p[ws] == '[')) { r->state = ST_CALL; return; }   // Llama 3 JSON
            else if (r->tools && n - ws < 15 && memcmp(p + ws, "<|python_tag|>", n - ws < 14 ? n - ws : 14) == 0) {
                if (n - ws < 14) return;
                r->state = ST_CALL;
                return;
            } else r->state = ST_CONTENT;
        } else if (r->state == ST_THINK) {
            const char *e = find(p, n, "</think>");
            if (e) {
                text_put(&r->reasoning_out, p, (size_t)(e - p));
                used = (size_t)(e - p) + 8;
                while (used < n && p[used] == '\n') used++;
                r->state = ST_START;
                r->reasoning = false;   // one reasoning block
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
