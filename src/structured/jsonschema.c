// jsonschema.c — JSON Schema -> grammar IR (see jsonschema.h).
//
// Every schema node compiles to one rule deriving its JSON text (no surrounding whitespace),
// memoized by node so $ref cycles become grammar recursion. allOf (and $ref with sibling
// keywords, and anyOf/oneOf branches with sibling keywords) are merged into a fresh schema object
// first; the merged objects are owned by the compiler and freed with it.
#include "structured/jsonschema.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "structured/regex.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

#define WS_MAX_INDENT 16
#define NUM_MAX_DIGITS 16     // integer digits generated for unbounded numbers
#define FRAC_MAX_DIGITS 16
#define INT_BOUND 1e15        // integer bounds beyond this are refused

typedef struct memo { const cJSON *node; int32_t rule; } memo;

typedef struct js {
    gram *g;
    tv_error *err;
    bool failed;
    bool lenient;        // "x-guidance": {"lenient": true}: keywords not enforced are ignored
    long oneof_work;     // what a oneOf's disjointness proof may still look at (ONEOF_WORK each)
    cJSON *doc;
    memo *m;
    size_t n_m, cap_m;
    cJSON **owned;
    size_t n_owned, cap_owned;
    int depth;
    char path[512];
    size_t plen;
    int32_t ws, json_char, body_any, never, any[JSON_MAX_FREE_DEPTH + 1], any_obj[JSON_MAX_FREE_DEPTH + 1];
} js;

__attribute__((format(printf, 2, 3))) static int32_t js_fail(js *c, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_fail(c->err, TV_ERR_INVALID, "schema at %s: %s", c->plen ? c->path : "/", msg);
    return -1;
}

// A keyword the grammar does not enforce: false after failing with a message naming it, or true
// (the caller ignores the keyword) when the schema opted out with "x-guidance": {"lenient": true}.
__attribute__((format(printf, 2, 3))) static bool js_unenforced(js *c, const char *fmt, ...) {
    if (c->lenient) return true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    js_fail(c, "%s", msg);
    return false;
}

static bool js_ok(js *c) {
    if (c->g->failed && !c->failed) {
        c->failed = true;
        gram_failure(c->g, c->err);
    }
    return !c->failed;
}

static size_t path_push(js *c, const char *seg) {
    const size_t old = c->plen;
    const int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "/%s", seg);
    if (n > 0) c->plen = c->plen + (size_t)n < sizeof c->path ? c->plen + (size_t)n : sizeof c->path - 1;
    return old;
}
static void path_pop(js *c, size_t old) { c->plen = old; c->path[old] = 0; }

static cJSON *own(js *c, cJSON *o) {
    if (!o) { gram_fail(c->g, TV_ERR_NOMEM); return NULL; }
    cJSON **n = c->n_owned == c->cap_owned ? array_grow(c->owned, &c->cap_owned, c->n_owned + 1, sizeof *n) : c->owned;
    if (!n) { cJSON_Delete(o); gram_fail(c->g, TV_ERR_NOMEM); return NULL; }
    c->owned = n;
    c->owned[c->n_owned++] = o;
    return o;
}

// ---- small grammar helpers ----
static int32_t lit_rule(js *c, const char *s) {
    gram_seq q = {0};
    gram_seq_literal(c->g, &q, s, strlen(s));
    const int32_t r = gram_rule_of(c->g, NULL, &q, 1);
    gram_seq_free(&q);
    return r;
}

static int32_t seq_rule(js *c, const int32_t *syms, size_t n) {
    const int32_t r = gram_new_rule(c->g, NULL);
    gram_add_alt(c->g, r, syms, n);
    return r;
}

static int32_t ws_rule(js *c) {
    if (c->ws) return c->ws;
    const int32_t sp = gram_byte(c->g, ' ');
    const int32_t indent = gram_repeat(c->g, &sp, 1, 0, WS_MAX_INDENT);
    const int32_t r = gram_new_rule(c->g, "ws");
    const int32_t nl[2] = {gram_byte(c->g, '\n'), indent};
    gram_add_alt(c->g, r, NULL, 0);
    gram_add_alt(c->g, r, &sp, 1);
    gram_add_alt(c->g, r, nl, 2);
    return c->ws = r;
}

static int32_t never_rule(js *c) {
    if (c->never) return c->never;
    const int32_t r = gram_new_rule(c->g, "never");   // never ::= "x" never : derives nothing
    const int32_t alt[2] = {gram_byte(c->g, 'x'), r};
    gram_add_alt(c->g, r, alt, 2);
    return c->never = r;
}

static int32_t json_char(js *c) {
    if (c->json_char) return c->json_char;
    const uint32_t lo = 0, hi = 0x10FFFF;
    return c->json_char = regex_codepoint_class(c->g, &lo, &hi, 1, REGEX_JSON_STRING);
}

static int32_t body_any(js *c) {
    if (c->body_any) return c->body_any;
    const int32_t ch = json_char(c);
    return c->body_any = gram_repeat(c->g, &ch, 1, 0, -1);
}

static int32_t quoted(js *c, int32_t body) {
    const int32_t q = gram_byte(c->g, '"');
    const int32_t s[3] = {q, body, q};
    return seq_rule(c, s, 3);
}

static int32_t number_free(js *c, bool integer) {
    const char *re = integer ? "-?(0|[1-9][0-9]{0,15})" : "-?(0|[1-9][0-9]{0,15})(\\.[0-9]{1,16})?([eE][-+]?[0-9]{1,2})?";
    return regex_compile(c->g, re, strlen(re), REGEX_TEXT, false, c->err);
}

// Free JSON values nesting at most JSON_MAX_FREE_DEPTH - d more levels.
static int32_t any_value(js *c, int d);
static int32_t any_object(js *c, int d) {
    if (d > JSON_MAX_FREE_DEPTH) d = JSON_MAX_FREE_DEPTH;
    if (c->any_obj[d]) return c->any_obj[d];
    const int32_t ws = ws_rule(c);
    const int32_t r = c->any_obj[d] = gram_new_rule(c->g, NULL);
    gram_seq s = {0};
    gram_seq_push(c->g, &s, gram_byte(c->g, '{'));
    gram_seq_push(c->g, &s, ws);
    if (d < JSON_MAX_FREE_DEPTH) {
        // kv ::= string ws ":" ws value ws ; more ::= ("," ws kv)*
        const int32_t kv_syms[6] = {quoted(c, body_any(c)), ws, gram_byte(c->g, ':'), ws, any_value(c, d + 1), ws};
        const int32_t kv = seq_rule(c, kv_syms, 6);
        const int32_t more_item[3] = {gram_byte(c->g, ','), ws, kv};
        const int32_t more = gram_repeat(c->g, more_item, 3, 0, -1);
        const int32_t list_syms[2] = {kv, more};
        const int32_t list = seq_rule(c, list_syms, 2);
        const int32_t opt = gram_repeat(c->g, &list, 1, 0, 1);
        gram_seq_push(c->g, &s, opt);
    }
    gram_seq_push(c->g, &s, gram_byte(c->g, '}'));
    gram_add_alt(c->g, r, s.v, s.n);
    gram_seq_free(&s);
    return r;
}

static int32_t any_value(js *c, int d) {
    if (d > JSON_MAX_FREE_DEPTH) d = JSON_MAX_FREE_DEPTH;
    if (c->any[d]) return c->any[d];
    const int32_t ws = ws_rule(c);
    const int32_t r = c->any[d] = gram_new_rule(c->g, NULL);
    const int32_t alts[] = {quoted(c, body_any(c)), number_free(c, false), lit_rule(c, "true"), lit_rule(c, "false"),
                            lit_rule(c, "null"), any_object(c, d)};
    for (size_t i = 0; i < sizeof alts / sizeof alts[0]; i++) gram_add_alt(c->g, r, &alts[i], 1);
    gram_seq s = {0};
    gram_seq_push(c->g, &s, gram_byte(c->g, '['));
    gram_seq_push(c->g, &s, ws);
    if (d < JSON_MAX_FREE_DEPTH) {
        const int32_t item_syms[2] = {any_value(c, d + 1), ws};
        const int32_t item = seq_rule(c, item_syms, 2);
        const int32_t more_item[3] = {gram_byte(c->g, ','), ws, item};
        const int32_t more = gram_repeat(c->g, more_item, 3, 0, -1);
        const int32_t list_syms[2] = {item, more};
        const int32_t list = seq_rule(c, list_syms, 2);
        gram_seq_push(c->g, &s, gram_repeat(c->g, &list, 1, 0, 1));
    }
    gram_seq_push(c->g, &s, gram_byte(c->g, ']'));
    gram_add_alt(c->g, r, s.v, s.n);
    gram_seq_free(&s);
    return r;
}

// ---- keyword tables ----
static bool is_annotation(const char *k) {
    static const char *const a[] = {"title", "description", "default", "examples", "$schema", "$id", "id", "$comment",
                                    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "contentMediaType",
                                    "contentEncoding", "$anchor", "$vocabulary", "nullable", "discriminator", "example",
                                    "xml", "externalDocs", "markdownDescription", "errorMessage", "$dynamicAnchor",
                                    "$recursiveAnchor", "x-guidance"};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) if (!strcmp(k, a[i])) return true;
    return false;
}

static bool is_unsupported(const char *k) {
    static const char *const a[] = {"not", "if", "propertyNames", "contains", "minContains", "maxContains",
                                    "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedProperties",
                                    "unevaluatedItems", "$dynamicRef", "$recursiveRef", "contentSchema"};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) if (!strcmp(k, a[i])) return true;
    return false;
}

// Rejects keywords whose constraint is not enforced (trivial forms pass).
static bool check_keywords(js *c, const cJSON *s) {
    for (const cJSON *k = s->child; k; k = k->next) {
        const char *n = k->string;
        if (is_unsupported(n) && !js_unenforced(c, "keyword '%s' is not supported", n)) return false;
        if (!strcmp(n, "uniqueItems") && cJSON_IsTrue(k)) {
            const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
            if (!(cJSON_IsNumber(mx) && mx->valuedouble <= 1) && !js_unenforced(c, "keyword 'uniqueItems' is not supported"))
                return false;
        }
        if (!strcmp(n, "patternProperties") && !(cJSON_IsObject(k) && !k->child) &&
            !js_unenforced(c, "keyword 'patternProperties' is not supported"))
            return false;
    }
    return true;
}

// ---- $ref ----
// The node a local $ref points at, NULL when it is not a resolvable JSON pointer.
static const cJSON *ref_target(const js *c, const char *ref) {
    if (ref[0] != '#' || (ref[1] && ref[1] != '/')) return NULL;
    const cJSON *n = c->doc;
    const char *p = ref + 1;
    while (*p == '/' && n) {
        p++;
        char seg[256];
        size_t k = 0;
        while (*p && *p != '/' && k < sizeof seg - 1) {
            if (p[0] == '~' && p[1] == '0') { seg[k++] = '~'; p += 2; }
            else if (p[0] == '~' && p[1] == '1') { seg[k++] = '/'; p += 2; }
            else if (p[0] == '%' && p[1] && p[2]) {   // percent-encoding
                char hx[3] = {p[1], p[2], 0};
                seg[k++] = (char)strtol(hx, NULL, 16);
                p += 3;
            } else seg[k++] = *p++;
        }
        seg[k] = 0;
        if (cJSON_IsArray(n)) {
            char *end;
            const long i = strtol(seg, &end, 10);
            n = *end ? NULL : cJSON_GetArrayItem(n, (int)i);
        } else n = cJSON_GetObjectItemCaseSensitive(n, seg);
    }
    return n;
}

static const cJSON *resolve_ref(js *c, const char *ref) {
    if (ref[0] != '#') return js_fail(c, "$ref '%s': only local references (#...) are supported", ref), NULL;
    if (ref[1] && ref[1] != '/') return js_fail(c, "$ref '%s': anchors are not supported", ref), NULL;
    const cJSON *n = ref_target(c, ref);
    if (!n) return js_fail(c, "$ref '%s' does not resolve", ref), NULL;
    return n;
}

// ---- merging (allOf) ----
static bool merge_into(js *c, cJSON *dst, const cJSON *src, int depth);

static bool types_of(const cJSON *t, bool out[7]) {   // null boolean object array number string integer
    static const char *const names[7] = {"null", "boolean", "object", "array", "number", "string", "integer"};
    memset(out, 0, 7);
    if (!t) { memset(out, 1, 7); return true; }
    const cJSON *one = t;
    const cJSON *it = cJSON_IsArray(t) ? t->child : NULL;
    for (;;) {
        const cJSON *x = cJSON_IsArray(t) ? it : one;
        if (!x) break;
        if (!cJSON_IsString(x)) return false;
        int k = -1;
        for (int i = 0; i < 7; i++) if (!strcmp(x->valuestring, names[i])) k = i;
        if (k < 0) return false;
        out[k] = true;
        if (k == 4) out[6] = true;   // number includes integer
        if (!cJSON_IsArray(t)) break;
        it = it->next;
    }
    return true;
}

static cJSON *types_json(const bool t[7]) {
    static const char *const names[7] = {"null", "boolean", "object", "array", "number", "string", "integer"};
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < 7; i++) {
        if (!t[i] || (i == 6 && t[4])) continue;
        cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    }
    return a;
}

static bool merge_key(js *c, cJSON *dst, const char *k, const cJSON *v, int depth) {
    cJSON *cur = cJSON_GetObjectItemCaseSensitive(dst, k);
    if (!cur) {
        cJSON *dup = cJSON_Duplicate(v, true);
        if (!dup) { gram_fail(c->g, TV_ERR_NOMEM); return false; }
        cJSON_AddItemToObject(dst, k, dup);
        return true;
    }
    if (cJSON_Compare(cur, v, true)) return true;
    if (!strcmp(k, "properties") && cJSON_IsObject(v) && cJSON_IsObject(cur)) {
        for (const cJSON *p = v->child; p; p = p->next) {
            cJSON *old = cJSON_GetObjectItemCaseSensitive(cur, p->string);
            if (!old) { cJSON_AddItemToObject(cur, p->string, cJSON_Duplicate(p, true)); continue; }
            cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
            if (!both || !arr) { cJSON_Delete(both); cJSON_Delete(arr); gram_fail(c->g, TV_ERR_NOMEM); return false; }
            cJSON_AddItemToArray(arr, cJSON_Duplicate(old, true));
            cJSON_AddItemToArray(arr, cJSON_Duplicate(p, true));
            cJSON_AddItemToObject(both, "allOf", arr);
            cJSON_ReplaceItemInObjectCaseSensitive(cur, p->string, both);
        }
        return true;
    }
    if (!strcmp(k, "required") && cJSON_IsArray(v) && cJSON_IsArray(cur)) {
        for (const cJSON *r = v->child; r; r = r->next) {
            bool have = false;
            for (const cJSON *q = cur->child; q; q = q->next) have |= cJSON_Compare(q, r, true);
            if (!have) cJSON_AddItemToArray(cur, cJSON_Duplicate(r, true));
        }
        return true;
    }
    if (!strcmp(k, "type")) {
        bool a[7], b[7];
        if (!types_of(cur, a) || !types_of(v, b)) return js_fail(c, "bad 'type'"), false;
        for (int i = 0; i < 7; i++) a[i] = a[i] && b[i];
        if (!a[6] || !b[6]) a[6] = a[6] && b[6];
        cJSON_ReplaceItemInObjectCaseSensitive(dst, k, types_json(a));
        return true;
    }
    static const char *const mins[] = {"minimum", "minLength", "minItems", "minProperties"};
    static const char *const maxs[] = {"maximum", "maxLength", "maxItems", "maxProperties"};
    for (int i = 0; i < 4; i++) {
        const bool is_min = !strcmp(k, mins[i]), is_max = !strcmp(k, maxs[i]);
        if ((is_min || is_max) && cJSON_IsNumber(cur) && cJSON_IsNumber(v)) {
            const double x = is_min ? fmax(cur->valuedouble, v->valuedouble) : fmin(cur->valuedouble, v->valuedouble);
            cJSON_SetNumberValue(cur, x);
            return true;
        }
    }
    if ((!strcmp(k, "items") || !strcmp(k, "additionalProperties")) && (cJSON_IsObject(v) || cJSON_IsBool(v))) {
        if (cJSON_IsTrue(v)) return true;
        if (cJSON_IsTrue(cur)) { cJSON_ReplaceItemInObjectCaseSensitive(dst, k, cJSON_Duplicate(v, true)); return true; }
        cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
        if (!both || !arr) { cJSON_Delete(both); cJSON_Delete(arr); gram_fail(c->g, TV_ERR_NOMEM); return false; }
        cJSON_AddItemToArray(arr, cJSON_Duplicate(cur, true));
        cJSON_AddItemToArray(arr, cJSON_Duplicate(v, true));
        cJSON_AddItemToObject(both, "allOf", arr);
        cJSON_ReplaceItemInObjectCaseSensitive(dst, k, both);
        return true;
    }
    (void)depth;
    return js_fail(c, "allOf combines different values of '%s' (not supported)", k), false;
}

// Property names a schema declares (for the additionalProperties check).
static bool same_props(const cJSON *a, const cJSON *b) {
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "properties"), *pb = cJSON_GetObjectItemCaseSensitive(b, "properties");
    for (const cJSON *p = pa ? pa->child : NULL; p; p = p->next) if (!cJSON_GetObjectItemCaseSensitive(pb, p->string)) return false;
    for (const cJSON *p = pb ? pb->child : NULL; p; p = p->next) if (!cJSON_GetObjectItemCaseSensitive(pa, p->string)) return false;
    return true;
}

static bool restricts_extra(const cJSON *s) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    return a && !cJSON_IsTrue(a);
}

static bool merge_into(js *c, cJSON *dst, const cJSON *src, int depth) {
    if (depth > JSON_MAX_DEPTH) return js_fail(c, "allOf / $ref nested too deeply"), false;
    if (cJSON_IsTrue(src)) return true;
    if (cJSON_IsFalse(src)) {
        cJSON_DeleteItemFromObjectCaseSensitive(dst, "type");
        cJSON_AddItemToObject(dst, "type", cJSON_CreateArray());
        return true;
    }
    if (!cJSON_IsObject(src)) return js_fail(c, "a schema must be an object or a boolean"), false;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(src, "$ref");
    if (cJSON_IsString(ref)) {
        const cJSON *t = resolve_ref(c, ref->valuestring);
        if (!t || !merge_into(c, dst, t, depth + 1)) return false;
    }
    if ((cJSON_GetObjectItemCaseSensitive(dst, "properties") || restricts_extra(dst)) &&
        (cJSON_GetObjectItemCaseSensitive(src, "properties") || restricts_extra(src)) &&
        (restricts_extra(dst) || restricts_extra(src)) && !same_props(dst, src))
        return js_fail(c, "allOf combining additionalProperties with other properties is not supported"), false;
    for (const cJSON *k = src->child; k; k = k->next) {
        if (is_annotation(k->string) || !strcmp(k->string, "$ref")) continue;
        if (!strcmp(k->string, "allOf")) {
            if (!cJSON_IsArray(k)) return js_fail(c, "'allOf' must be an array"), false;
            for (const cJSON *s = k->child; s; s = s->next)
                if (!merge_into(c, dst, s, depth + 1)) return false;
            continue;
        }
        if ((!strcmp(k->string, "anyOf") || !strcmp(k->string, "oneOf")) &&
            (cJSON_GetObjectItemCaseSensitive(dst, "anyOf") || cJSON_GetObjectItemCaseSensitive(dst, "oneOf")) &&
            !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(dst, k->string), k, true))
            return js_fail(c, "allOf with several anyOf/oneOf is not supported"), false;
        if (!merge_key(c, dst, k->string, k, depth)) return false;
    }
    return js_ok(c);
}

// ---- values ----
static int32_t js_value(js *c, const cJSON *s);

static bool is_int_value(const cJSON *v) { return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15; }

static bool value_has_type(const cJSON *v, const bool t[7]) {
    if (cJSON_IsNull(v)) return t[0];
    if (cJSON_IsBool(v)) return t[1];
    if (cJSON_IsObject(v)) return t[2];
    if (cJSON_IsArray(v)) return t[3];
    if (cJSON_IsNumber(v)) return t[4] || (t[6] && is_int_value(v));
    if (cJSON_IsString(v)) return t[5];
    return false;
}

static int32_t js_enum(js *c, const cJSON *s, const cJSON *en, const cJSON *cn) {
    bool t[7];
    if (!types_of(cJSON_GetObjectItemCaseSensitive(s, "type"), t)) return js_fail(c, "bad 'type'");
    static const char *const constraining[] = {"properties", "required", "additionalProperties", "items", "prefixItems",
        "additionalItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties", NULL};
    for (const char *const *k = constraining; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(s, *k) && !js_unenforced(c, "'%s' together with enum/const is not supported", *k))
            return -1;
    if (en && !cJSON_IsArray(en)) return js_fail(c, "'enum' must be an array");
    const size_t n = en ? (size_t)cJSON_GetArraySize(en) : 1;
    gram_lit *l = mem_calloc(n + 1, sizeof *l);
    char **txt = mem_calloc(n + 1, sizeof *txt);
    size_t m = 0;
    int32_t r = -1;
    if (!l || !txt) { gram_fail(c->g, TV_ERR_NOMEM); goto done; }
    for (const cJSON *v = en ? en->child : cn; v; v = en ? v->next : NULL) {
        bool dup = false;
        if (cn && en && !cJSON_Compare(v, cn, true)) continue;
        if (!value_has_type(v, t)) continue;
        if (!(txt[m] = cJSON_PrintUnformatted(v))) { gram_fail(c->g, TV_ERR_NOMEM); goto done; }
        for (size_t k = 0; k < m; k++) dup |= !strcmp(txt[k], txt[m]);
        if (dup) { free(txt[m]); txt[m] = NULL; continue; }
        l[m].s = txt[m];
        l[m].n = strlen(txt[m]);
        m++;
    }
    r = m ? gram_literal_set(c->g, l, m) : never_rule(c);
done:
    for (size_t k = 0; txt && k < n + 1; k++) free(txt[k]);
    free(txt);
    free(l);
    return js_ok(c) ? r : -1;
}

// Digits strings of length n between xs and ys (inclusive, same length).
static int32_t digits_range(js *c, const char *xs, const char *ys, size_t n) {
    const int32_t r = gram_new_rule(c->g, NULL);
    if (n == 0) { gram_add_alt(c->g, r, NULL, 0); return r; }
    uint64_t dig[4] = {0};
    for (int d = '0'; d <= '9'; d++) dig[d >> 6] |= 1ull << (d & 63);
    const int32_t any_digit = gram_class(c->g, dig);
    char nines[24], zeros[24];
    memset(nines, '9', n);
    memset(zeros, '0', n);
    if (xs[0] == ys[0]) {
        const int32_t s[2] = {gram_byte(c->g, (uint8_t)xs[0]), digits_range(c, xs + 1, ys + 1, n - 1)};
        gram_add_alt(c->g, r, s, 2);
        return r;
    }
    const bool x_zero = !memcmp(xs + 1, zeros, n - 1), y_nine = !memcmp(ys + 1, nines, n - 1);
    char lo = xs[0], hi = ys[0];
    if (!x_zero) {
        const int32_t s[2] = {gram_byte(c->g, (uint8_t)xs[0]), digits_range(c, xs + 1, nines, n - 1)};
        gram_add_alt(c->g, r, s, 2);
        lo++;
    }
    if (!y_nine) {
        const int32_t s[2] = {gram_byte(c->g, (uint8_t)ys[0]), digits_range(c, zeros, ys + 1, n - 1)};
        gram_add_alt(c->g, r, s, 2);
        hi--;
    }
    if (lo <= hi) {
        uint64_t set[4] = {0};
        for (int d = lo; d <= hi; d++) set[d >> 6] |= 1ull << (d & 63);
        gram_seq s = {0};
        gram_seq_push(c->g, &s, gram_class(c->g, set));
        for (size_t i = 1; i < n; i++) gram_seq_push(c->g, &s, any_digit);
        gram_add_alt(c->g, r, s.v, s.n);
        gram_seq_free(&s);
    }
    return r;
}

// Adds to rule r the decimal forms of the integers in [a, b] (a >= 0; b < 0: unbounded up to
// NUM_MAX_DIGITS digits), no leading zeros.
static void nonneg_range(js *c, int32_t r, int64_t a, int64_t b) {
    char as[24], bs[24];
    const int la = snprintf(as, sizeof as, "%lld", (long long)a);
    const int lb = b >= 0 ? snprintf(bs, sizeof bs, "%lld", (long long)b) : NUM_MAX_DIGITS;
    int64_t p10 = 1;
    for (int i = 1; i < la; i++) p10 *= 10;
    for (int len = la; len <= lb; len++, p10 *= 10) {
        const int64_t lo = len == 1 ? 0 : p10;
        const int64_t hi_len = p10 * 10 - 1;
        const int64_t x = a > lo ? a : lo;
        const int64_t y = b >= 0 && b < hi_len ? b : hi_len;
        if (x > y) continue;
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%lld", (long long)x);
        snprintf(ys, sizeof ys, "%lld", (long long)y);
        const int32_t d = digits_range(c, xs, ys, (size_t)len);
        gram_add_alt(c->g, r, &d, 1);
    }
}

// Integers in [lo, hi] (has_lo / has_hi false: unbounded that side).
static int32_t int_range(js *c, bool has_lo, int64_t lo, bool has_hi, int64_t hi) {
    const int32_t r = gram_new_rule(c->g, NULL);
    if (has_lo && has_hi && lo > hi) return never_rule(c);
    if (!has_lo || lo < 0) {   // negatives: "-" [max(1, -hi) .. -lo]
        const int64_t a = has_hi && hi < 0 ? -hi : 1;
        const int32_t neg = gram_new_rule(c->g, NULL);
        nonneg_range(c, neg, a, has_lo ? -lo : -1);
        const int32_t s[2] = {gram_byte(c->g, '-'), neg};
        gram_add_alt(c->g, r, s, 2);
    }
    if (!has_hi || hi >= 0) {
        const int32_t pos = gram_new_rule(c->g, NULL);
        nonneg_range(c, pos, has_lo && lo > 0 ? lo : 0, has_hi ? hi : -1);
        gram_add_alt(c->g, r, &pos, 1);
    }
    return r;
}

static int32_t js_number(js *c, const cJSON *s, bool integer) {
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(s, "multipleOf");
    if (mo && !(integer && cJSON_IsNumber(mo) && mo->valuedouble == 1) &&
        !js_unenforced(c, "keyword 'multipleOf' is not supported (except 1 on integers)"))
        return -1;
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");
    const cJSON *emn = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum"), *emx = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    bool has_lo = false, has_hi = false;
    double lo = 0, hi = 0;   // integer bounds, inclusive
    if (cJSON_IsNumber(mn)) { has_lo = true; lo = ceil(mn->valuedouble); if (cJSON_IsTrue(emn) && lo == mn->valuedouble) lo += 1; }
    if (cJSON_IsNumber(emn)) { const double v = floor(emn->valuedouble) + 1; if (!has_lo || v > lo) lo = v; has_lo = true; }
    if (cJSON_IsNumber(mx)) { has_hi = true; hi = floor(mx->valuedouble); if (cJSON_IsTrue(emx) && hi == mx->valuedouble) hi -= 1; }
    if (cJSON_IsNumber(emx)) { const double v = ceil(emx->valuedouble) - 1; if (!has_hi || v < hi) hi = v; has_hi = true; }
    if ((mn && !cJSON_IsNumber(mn)) || (mx && !cJSON_IsNumber(mx)) || (emn && !cJSON_IsNumber(emn) && !cJSON_IsBool(emn)) ||
        (emx && !cJSON_IsNumber(emx) && !cJSON_IsBool(emx)))
        return js_fail(c, "numeric bounds must be numbers");
    // ajv-formats' number formats: int32 and int64 values are integers, int32 within 32 bits
    // (float / double admit any number; string formats say nothing about numbers)
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    const bool int32 = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "int32");
    if (int32 || (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "int64"))) integer = true;
    if (int32) {
        if (!has_lo || lo < INT32_MIN) lo = INT32_MIN;
        if (!has_hi || hi > INT32_MAX) hi = INT32_MAX;
        has_lo = has_hi = true;
    }
    if (!has_lo && !has_hi) return number_free(c, integer);
    if ((has_lo && fabs(lo) > INT_BOUND) || (has_hi && fabs(hi) > INT_BOUND))
        return js_fail(c, "numeric bounds beyond 1e15 are not supported");
    if (has_lo && has_hi && lo > hi) {
        if (integer) return never_rule(c);
        return js_fail(c, "number bounds that contain no integer are not supported");
    }
    const int32_t ints = int_range(c, has_lo, (int64_t)lo, has_hi, (int64_t)hi);
    if (integer || !has_lo || lo < 0 || (has_hi && hi <= lo)) return ints;
    // fractions: integer part in [lo, hi - 1] then "." digits
    const int32_t r = gram_new_rule(c->g, NULL);
    gram_add_alt(c->g, r, &ints, 1);
    const int32_t ip = int_range(c, true, (int64_t)lo, has_hi, (int64_t)hi - 1);
    uint64_t dig[4] = {0};
    for (int d = '0'; d <= '9'; d++) dig[d >> 6] |= 1ull << (d & 63);
    const int32_t dsym = gram_class(c->g, dig);
    const int32_t frac = gram_repeat(c->g, &dsym, 1, 1, FRAC_MAX_DIGITS);
    const int32_t sq[3] = {ip, gram_byte(c->g, '.'), frac};
    gram_add_alt(c->g, r, sq, 3);
    return r;
}

static const char *format_regex(const char *f) {
    static const char *const tab[][2] = {
        {"date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"},
        {"time", "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
        {"date-time", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
        {"uuid", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"},
        {"email", "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}@[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}\\.[a-z]{2,6}"},
        {"ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"},
        {"hostname", "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,4}"},
        // hosts end in an alphabetic top-level label, as ajv's url format requires
        {"uri", "https?://([a-z0-9]{1,20}\\.){1,3}[a-z]{2,6}(/[a-zA-Z0-9._~-]{1,20}){0,6}"},
        {"url", "https?://([a-z0-9]{1,20}\\.){1,3}[a-z]{2,6}(/[a-zA-Z0-9._~-]{1,20}){0,6}"},
        {"uri-reference", "(https?://([a-z0-9]{1,20}\\.){1,3}[a-z]{2,6})?(/[a-zA-Z0-9._~-]{1,20}){0,6}"},
        {"byte", "([A-Za-z0-9+/]{4}){0,64}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"},
        {"password", NULL}, {"binary", NULL}, {"regex", NULL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(f, tab[i][0])) return tab[i][1] ? tab[i][1] : "";
    // standard formats not enforced are errors; others (custom names, and the number formats
    // int32 / int64 / float / double, which say nothing about strings) carry no validation
    static const char *const standard[] = {"duration", "idn-email", "idn-hostname", "ipv6", "iri", "iri-reference",
                                           "uri-template", "json-pointer", "relative-json-pointer", NULL};
    for (const char *const *k = standard; *k; k++) if (!strcmp(f, *k)) return NULL;
    return "";
}

static int32_t js_string(js *c, const cJSON *s) {
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minLength"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern"), *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    if ((mn && !cJSON_IsNumber(mn)) || (mx && !cJSON_IsNumber(mx))) return js_fail(c, "string lengths must be numbers");
    const int64_t lo = mn ? (int64_t)ceil(mn->valuedouble) : 0, hi = mx ? (int64_t)floor(mx->valuedouble) : -1;
    bool has_len = lo > 0 || hi >= 0;
    const char *fre = NULL;
    if (fmt) {
        if (!cJSON_IsString(fmt)) return js_fail(c, "'format' must be a string");
        if (!(fre = format_regex(fmt->valuestring)) && !js_unenforced(c, "format '%s' is not supported", fmt->valuestring))
            return -1;
        if (fre && !*fre) fre = NULL;
    }
    if (fre && pat) {   // lenient: the pattern is kept
        if (!js_unenforced(c, "format '%s' together with pattern is not supported", fmt->valuestring)) return -1;
        fre = NULL;
    }
    if ((fre || pat) && has_len) {   // lenient: the lengths are ignored
        if (!js_unenforced(c, "'%s' together with minLength/maxLength is not supported", fre ? "format" : "pattern")) return -1;
        has_len = false;
    }
    int32_t body;
    if (fre) body = regex_compile(c->g, fre, strlen(fre), REGEX_JSON_STRING, false, c->err);
    else if (pat) {
        if (!cJSON_IsString(pat)) return js_fail(c, "'pattern' must be a string");
        tv_error e = {0};
        body = regex_compile(c->g, pat->valuestring, strlen(pat->valuestring), REGEX_JSON_STRING, true, &e);
        if (body < 0) return js_fail(c, "pattern: %s", e.msg);
    } else {
        if (hi >= 0 && lo > hi) return never_rule(c);
        if (lo > 10000 || hi > 10000) return js_fail(c, "string lengths above 10000 are not supported");
        const int32_t ch = json_char(c);
        body = has_len ? gram_repeat(c->g, &ch, 1, lo, hi) : body_any(c);
    }
    if (body < 0) { if (!c->failed) c->failed = true; return -1; }
    return quoted(c, body);
}

// Any JSON string body that is none of the (ASCII, escape-free) names[0..n), sorted.
static int32_t body_except(js *c, const gram_lit *l, size_t n, size_t d) {
    const int32_t r = gram_new_rule(c->g, NULL);
    bool ends_here = false;
    size_t i = 0;
    while (i < n && l[i].n == d) { ends_here = true; i++; }
    if (!ends_here) gram_add_alt(c->g, r, NULL, 0);
    uint32_t lo[130], hi[130];
    size_t m = 0;
    uint32_t next = 0;
    while (i < n && js_ok(c)) {
        size_t j = i + 1;
        const uint8_t b = (uint8_t)l[i].s[d];
        while (j < n && (uint8_t)l[j].s[d] == b) j++;
        const int32_t s[2] = {gram_byte(c->g, b), body_except(c, l + i, j - i, d + 1)};
        gram_add_alt(c->g, r, s, 2);
        if (b > next) { lo[m] = next; hi[m++] = b - 1; }
        next = b + 1u;
        i = j;
    }
    lo[m] = next; hi[m++] = 0x10FFFF;
    // a different character here, then anything
    const int32_t other = regex_codepoint_class(c->g, lo, hi, m, REGEX_JSON_STRING);
    const int32_t s[2] = {other, body_any(c)};
    gram_add_alt(c->g, r, s, 2);
    return r;
}

static int32_t js_object(js *c, const cJSON *s) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *minp = cJSON_GetObjectItemCaseSensitive(s, "minProperties"), *maxp = cJSON_GetObjectItemCaseSensitive(s, "maxProperties");
    if (props && !cJSON_IsObject(props)) return js_fail(c, "'properties' must be an object");
    if (req && !cJSON_IsArray(req)) return js_fail(c, "'required' must be an array");
    if (addl && !cJSON_IsBool(addl) && !cJSON_IsObject(addl)) return js_fail(c, "'additionalProperties' must be a schema");
    // the property list: declared ones in order, then required names not declared
    size_t n = 0;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) n++;
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) n++;
    const char **name = mem_calloc(n + 1, sizeof *name);
    const cJSON **sch = mem_calloc(n + 1, sizeof *sch);
    bool *must = mem_calloc(n + 1, sizeof *must);
    int32_t result = -1;
    if (!name || !sch || !must) { gram_fail(c->g, TV_ERR_NOMEM); goto done; }
    size_t k = 0, n_req = 0;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) { name[k] = p->string; sch[k++] = p; }
    const size_t n_decl = k;
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r)) { js_fail(c, "'required' must list strings"); goto done; }
        size_t i = 0;
        while (i < k && strcmp(name[i], r->valuestring)) i++;
        if (i == k) {   // required but not declared: its schema is additionalProperties'
            name[k] = r->valuestring;
            sch[k++] = addl ? addl : NULL;
        }
        if (!must[i]) { must[i] = true; n_req++; }
    }
    n = k;
    const bool extras = addl ? !cJSON_IsFalse(addl) && (cJSON_IsObject(addl) || n_decl == 0) : n_decl == 0;
    if (minp) {
        if (!cJSON_IsNumber(minp)) { js_fail(c, "'minProperties' must be a number"); goto done; }
        for (size_t i = 0; i < n && (double)n_req < minp->valuedouble; i++)   // promote optional ones
            if (!must[i] && !cJSON_IsFalse(sch[i])) { must[i] = true; n_req++; }
        if ((double)n_req < minp->valuedouble && !js_unenforced(c, "keyword 'minProperties' is not supported here")) goto done;
    }
    if (maxp && (!cJSON_IsNumber(maxp) || extras || (double)n > maxp->valuedouble)) {
        if (cJSON_IsNumber(maxp) && !extras && (double)n_req == maxp->valuedouble) {
            for (size_t i = 0; i < n; i++) if (!must[i]) sch[i] = NULL, name[i] = NULL;   // only the required ones
        } else if (!js_unenforced(c, "keyword 'maxProperties' is not supported here")) goto done;
    }
    const int32_t ws = ws_rule(c);
    const int32_t comma = gram_byte(c->g, ',');
    // extras: first / next forms
    int32_t ext_f = -1, ext_n = -1;
    {
        ext_f = gram_new_rule(c->g, NULL);
        ext_n = gram_new_rule(c->g, NULL);
        gram_add_alt(c->g, ext_f, NULL, 0);
        gram_add_alt(c->g, ext_n, NULL, 0);
        if (extras) {
            int32_t key_body;
            if (n_decl) {
                gram_lit *l = mem_calloc(n_decl, sizeof *l);
                if (!l) { gram_fail(c->g, TV_ERR_NOMEM); goto done; }
                size_t m = 0;
                for (size_t i = 0; i < n_decl; i++) {
                    for (const char *q = name[i]; q && *q; q++)
                        if ((uint8_t)*q < 0x20 || (uint8_t)*q >= 0x80 || *q == '"' || *q == '\\') {
                            free(l);
                            js_fail(c, "additionalProperties beside non-ASCII property names is not supported");
                            goto done;
                        }
                    if (name[i]) { l[m].s = name[i]; l[m++].n = strlen(name[i]); }
                }
                gram_lit_sort(l, m);
                key_body = body_except(c, l, m, 0);
                free(l);
            } else key_body = body_any(c);
            const size_t old = path_push(c, "additionalProperties");
            const int32_t v = cJSON_IsObject(addl) ? js_value(c, addl) : any_value(c, 1);
            path_pop(c, old);
            const int32_t kv_s[6] = {quoted(c, key_body), ws, gram_byte(c->g, ':'), ws, v, ws};
            const int32_t kv = seq_rule(c, kv_s, 6);
            const int32_t n_s[4] = {comma, ws, kv, ext_n};
            gram_add_alt(c->g, ext_n, n_s, 4);
            const int32_t f_s[2] = {kv, ext_n};
            gram_add_alt(c->g, ext_f, f_s, 2);
        }
    }
    // R_i (first) / R_i (next), built from the end
    int32_t nxt_f = ext_f, nxt_n = ext_n;
    for (size_t ii = n; ii-- > 0 && js_ok(c);) {
        if (!name[ii]) continue;
        if (cJSON_IsFalse(sch[ii])) {
            if (must[ii]) { result = never_rule(c); goto done; }
            continue;
        }
        char *key = NULL;
        cJSON *ks = cJSON_CreateString(name[ii]);
        if (ks) key = cJSON_PrintUnformatted(ks);
        cJSON_Delete(ks);
        if (!key) { gram_fail(c->g, TV_ERR_NOMEM); goto done; }
        char seg[300];
        snprintf(seg, sizeof seg, "%s/%s", ii < n_decl ? "properties" : "required", name[ii]);
        const size_t old = path_push(c, seg);
        const int32_t v = sch[ii] ? js_value(c, sch[ii]) : any_value(c, 1);
        path_pop(c, old);
        gram_seq kv = {0};
        gram_seq_literal(c->g, &kv, key, strlen(key));
        free(key);
        gram_seq_push(c->g, &kv, ws);
        gram_seq_push(c->g, &kv, gram_byte(c->g, ':'));
        gram_seq_push(c->g, &kv, ws);
        gram_seq_push(c->g, &kv, v);
        gram_seq_push(c->g, &kv, ws);
        const int32_t kvr = gram_rule_of(c->g, NULL, &kv, 1);
        gram_seq_free(&kv);
        const int32_t rf = gram_new_rule(c->g, NULL), rn = gram_new_rule(c->g, NULL);
        const int32_t f_s[2] = {kvr, nxt_n};
        const int32_t n_s[4] = {comma, ws, kvr, nxt_n};
        gram_add_alt(c->g, rf, f_s, 2);
        gram_add_alt(c->g, rn, n_s, 4);
        if (!must[ii]) {
            gram_add_alt(c->g, rf, &nxt_f, 1);
            gram_add_alt(c->g, rn, &nxt_n, 1);
        }
        nxt_f = rf;
        nxt_n = rn;
    }
    const int32_t o[4] = {gram_byte(c->g, '{'), ws, nxt_f, gram_byte(c->g, '}')};
    result = seq_rule(c, o, 4);
done:
    free(name);
    free(sch);
    free(must);
    return js_ok(c) ? result : -1;
}

static int32_t js_array(js *c, const cJSON *s) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    const cJSON *addi = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    if ((mn && !cJSON_IsNumber(mn)) || (mx && !cJSON_IsNumber(mx))) return js_fail(c, "item counts must be numbers");
    const cJSON *rest = NULL;
    if (prefix) {
        if (!cJSON_IsArray(prefix)) return js_fail(c, "'prefixItems' must be an array");
        rest = items;
    } else if (cJSON_IsArray(items)) {
        prefix = items;
        rest = addi;
    } else rest = items;
    const size_t p = prefix ? (size_t)cJSON_GetArraySize(prefix) : 0;
    int64_t lo = mn ? (int64_t)ceil(mn->valuedouble) : 0, hi = mx ? (int64_t)floor(mx->valuedouble) : -1;
    if (cJSON_IsFalse(rest) && (hi < 0 || hi > (int64_t)p)) hi = (int64_t)p;
    if (hi >= 0 && lo > hi) return never_rule(c);
    if (lo > 10000 || hi > 10000) return js_fail(c, "item counts above 10000 are not supported");
    const int32_t ws = ws_rule(c), comma = gram_byte(c->g, ',');
    int32_t *elem = mem_calloc(p + 1, sizeof *elem);
    if (!elem) { gram_fail(c->g, TV_ERR_NOMEM); return -1; }
    size_t i = 0;
    for (const cJSON *it = prefix ? prefix->child : NULL; it; it = it->next, i++) {
        char seg[40];
        snprintf(seg, sizeof seg, "%s/%zu", prefix == items ? "items" : "prefixItems", i);
        const size_t old = path_push(c, seg);
        const int32_t v[2] = {js_value(c, it), ws};
        path_pop(c, old);
        elem[i] = seq_rule(c, v, 2);
    }
    int32_t rest_elem = -1;
    if (!cJSON_IsFalse(rest) && (hi < 0 || hi > (int64_t)p)) {
        const size_t old = path_push(c, rest == addi && rest ? "additionalItems" : "items");
        const int32_t v[2] = {rest ? js_value(c, rest) : any_value(c, 1), ws};
        path_pop(c, old);
        rest_elem = seq_rule(c, v, 2);
    }
    // tail after k elements: T_k
    int32_t tail;
    {
        const int64_t k = (int64_t)p;   // rest part after the prefix
        if (rest_elem >= 0) {
            const int64_t rmin = lo > k ? lo - k : 0, rmax = hi < 0 ? -1 : hi - k;
            const int32_t item[3] = {comma, ws, rest_elem};
            tail = gram_repeat(c->g, item, 3, rmin, rmax);
        } else {
            tail = gram_new_rule(c->g, NULL);
            if (lo <= k) gram_add_alt(c->g, tail, NULL, 0);
        }
    }
    for (size_t k = p; k-- > 1 && js_ok(c);) {   // T_k for k = p-1 .. 1 : "," ws elem_k T_{k+1} | "" if k >= lo
        const int32_t r = gram_new_rule(c->g, NULL);
        const int32_t sq[4] = {comma, ws, elem[k], tail};
        gram_add_alt(c->g, r, sq, 4);
        if ((int64_t)k >= lo) gram_add_alt(c->g, r, NULL, 0);
        tail = r;
    }
    const int32_t body = gram_new_rule(c->g, NULL);
    if (lo == 0) gram_add_alt(c->g, body, NULL, 0);
    if (p > 0) {
        const int32_t sq[2] = {elem[0], tail};
        if (!(hi == 0)) gram_add_alt(c->g, body, sq, 2);
    } else if (rest_elem >= 0 && hi != 0) {
        const int64_t rmin = lo > 1 ? lo - 1 : 0, rmax = hi < 0 ? -1 : hi - 1;
        const int32_t item[3] = {comma, ws, rest_elem};
        const int32_t more = gram_repeat(c->g, item, 3, rmin, rmax);
        const int32_t sq[2] = {rest_elem, more};
        gram_add_alt(c->g, body, sq, 2);
    }
    free(elem);
    const int32_t a[4] = {gram_byte(c->g, '['), ws, body, gram_byte(c->g, ']')};
    return js_ok(c) ? seq_rule(c, a, 4) : -1;
}

static bool has_any(const cJSON *s, const char *const *keys) {
    for (; *keys; keys++) if (cJSON_GetObjectItemCaseSensitive(s, *keys)) return true;
    return false;
}

// ---- oneOf: exactly one branch may match ----
// A oneOf compiles as the union of its branches, which is exact when no value the grammar derives
// from one branch validates against another. That is proven pairwise (otherwise an error naming
// the branches, or anyOf semantics under x-guidance lenient): by the kinds of JSON value (what
// branch i derives against what branch j admits), by disjoint enum/const sets, and for objects by
// a required property whose values cannot match j's, a required property j's additionalProperties
// false forbids, or a property j requires: then branch i is narrowed to never emit it.
enum { K_NULL = 1, K_BOOL = 2, K_OBJ = 4, K_ARR = 8, K_NUM = 16, K_STR = 32, K_ALL = 63 };
#define ONEOF_MAX_DEPTH 8
#define ONEOF_WORK 200000    // schema nodes and enum comparisons per oneOf (then: not proven)

static int value_kind(const cJSON *v) {
    return cJSON_IsNull(v) ? K_NULL : cJSON_IsBool(v) ? K_BOOL : cJSON_IsObject(v) ? K_OBJ : cJSON_IsArray(v) ? K_ARR
         : cJSON_IsNumber(v) ? K_NUM : K_STR;
}

// The kinds of value schema s admits (a validator's view; K_ALL when unsure). gen: only the kinds
// js_body derives for it, which for a bare schema without 'type' is those its keywords talk about.
static int schema_kinds(js *c, const cJSON *s, bool gen, int depth) {
    if (cJSON_IsTrue(s)) return K_ALL;
    if (cJSON_IsFalse(s)) return 0;
    if (!cJSON_IsObject(s) || depth > ONEOF_MAX_DEPTH || --c->oneof_work < 0) return K_ALL;
    int k = K_ALL;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type"), *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(s, "const"), *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf"), *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    bool t[7];
    if (ty && types_of(ty, t))
        k = (t[0] ? K_NULL : 0) | (t[1] ? K_BOOL : 0) | (t[2] ? K_OBJ : 0) | (t[3] ? K_ARR : 0) | (t[4] || t[6] ? K_NUM : 0) |
            (t[5] ? K_STR : 0);
    if (cJSON_IsArray(en)) {
        int e = 0;
        for (const cJSON *v = en->child; v; v = v->next) e |= value_kind(v);
        k &= e;
    }
    if (cn) k &= value_kind(cn);
    const cJSON *target = cJSON_IsString(ref) ? ref_target(c, ref->valuestring) : NULL;
    if (target) k &= schema_kinds(c, target, false, depth + 1);
    for (const cJSON *p = cJSON_IsArray(all) ? all->child : NULL; p; p = p->next) k &= schema_kinds(c, p, false, depth + 1);
    const cJSON *br = cJSON_IsArray(any) ? any : cJSON_IsArray(one) ? one : NULL;
    if (br) {
        int u = 0;
        for (const cJSON *p = br->child; p; p = p->next) u |= schema_kinds(c, p, false, depth + 1);
        k &= u;
    }
    if (gen && !ty && !en && !cn && !ref && !all && !any && !one) {
        static const char *const ok[] = {"properties", "required", "additionalProperties", "minProperties", "maxProperties", NULL};
        static const char *const ak[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems", NULL};
        static const char *const sk[] = {"minLength", "maxLength", "pattern", "format", NULL};
        static const char *const nk[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", NULL};
        const int inferred = (has_any(s, ok) ? K_OBJ : 0) | (has_any(s, ak) ? K_ARR : 0) | (has_any(s, sk) ? K_STR : 0) |
                             (has_any(s, nk) ? K_NUM : 0);
        if (inferred) k &= inferred;
    }
    return k;
}

// s itself, or what it refers to when it is a bare $ref (a few hops).
static const cJSON *bare_deref(const js *c, const cJSON *s) {
    for (int hop = 0; hop < ONEOF_MAX_DEPTH && cJSON_IsObject(s); hop++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
        if (!cJSON_IsString(ref)) return s;
        for (const cJSON *k = s->child; k; k = k->next)
            if (!is_annotation(k->string) && strcmp(k->string, "$ref")) return s;
        const cJSON *t = ref_target(c, ref->valuestring);
        if (!t) return s;
        s = t;
    }
    return s;
}

// No value of a's enum/const set (all of a's values) is in b's.
static bool enums_disjoint(js *c, const cJSON *a, const cJSON *b) {
    const cJSON *ea = cJSON_GetObjectItemCaseSensitive(a, "enum"), *ca = cJSON_GetObjectItemCaseSensitive(a, "const");
    const cJSON *eb = cJSON_GetObjectItemCaseSensitive(b, "enum"), *cb = cJSON_GetObjectItemCaseSensitive(b, "const");
    if (!(ca || cJSON_IsArray(ea)) || !(cb || cJSON_IsArray(eb))) return false;
    for (const cJSON *x = ca ? ca : ea->child; x; x = ca ? NULL : x->next) {
        if (ca && cJSON_IsArray(ea)) {   // const and enum both: the const when the enum lists it
            bool in = false;
            for (const cJSON *y = ea->child; y; y = y->next) in |= cJSON_Compare(x, y, true);
            if (!in) continue;
        }
        for (const cJSON *y = cb ? cb : eb->child; y; y = cb ? NULL : y->next)
            if (--c->oneof_work < 0 || cJSON_Compare(x, y, true)) return false;
    }
    return true;
}

// No value the grammar derives from a validates against b (a proof, or false).
static bool values_exclude(js *c, const cJSON *a, const cJSON *b, int depth) {
    a = bare_deref(c, a);
    b = bare_deref(c, b);
    if (!(schema_kinds(c, a, true, depth) & schema_kinds(c, b, false, depth))) return true;
    return cJSON_IsObject(a) && cJSON_IsObject(b) && enums_disjoint(c, a, b);
}

static bool lists_name(const cJSON *arr, const char *name) {
    for (const cJSON *x = cJSON_IsArray(arr) ? arr->child : NULL; x; x = x->next)
        if (cJSON_IsString(x) && !strcmp(x->valuestring, name)) return true;
    return false;
}

// Whether no value derived from branch a validates against branch b; when it takes that, the
// names of properties b requires that a must not emit are added to forbid (a JSON array).
static bool branch_excludes(js *c, const cJSON *a, const cJSON *b, cJSON *forbid) {
    a = bare_deref(c, a);
    b = bare_deref(c, b);
    const int ka = schema_kinds(c, a, true, 0), kb = schema_kinds(c, b, false, 0);
    if (!(ka & kb)) return true;
    if (cJSON_IsObject(a) && cJSON_IsObject(b) && enums_disjoint(c, a, b)) return true;
    if ((ka & kb) != K_OBJ || !cJSON_IsObject(a) || !cJSON_IsObject(b)) return false;
    // objects only: a property of every a-object that makes it fail b
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(a, "required"), *rb = cJSON_GetObjectItemCaseSensitive(b, "required");
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "properties"), *pb = cJSON_GetObjectItemCaseSensitive(b, "properties");
    const bool b_closed = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "additionalProperties"));
    for (const cJSON *x = cJSON_IsArray(ra) ? ra->child : NULL; x; x = x->next) {
        if (!cJSON_IsString(x)) continue;
        const cJSON *sb = cJSON_IsObject(pb) ? cJSON_GetObjectItemCaseSensitive(pb, x->valuestring) : NULL;
        if (!sb && b_closed) return true;
        const cJSON *sa = cJSON_IsObject(pa) ? cJSON_GetObjectItemCaseSensitive(pa, x->valuestring) : NULL;
        if (sa && sb && values_exclude(c, sa, sb, 1)) return true;
    }
    // a property b requires that a does not: a is narrowed to leave it out
    for (const cJSON *x = cJSON_IsArray(rb) ? rb->child : NULL; x; x = x->next) {
        if (!cJSON_IsString(x) || lists_name(ra, x->valuestring)) continue;
        if (!lists_name(forbid, x->valuestring)) cJSON_AddItemToArray(forbid, cJSON_CreateString(x->valuestring));
        return true;
    }
    return false;
}

typedef struct scalar_of { char *text; size_t branch; } scalar_of;

static int scalar_cmp(const void *a, const void *b) {
    return strcmp(((const scalar_of *)a)->text, ((const scalar_of *)b)->text);
}

// Every branch an enum / const of scalars and no scalar in two of them (sorted once, as a oneOf of
// thousands of constants would take too long pairwise): the branches are disjoint.
static bool scalar_enums_disjoint(js *c, const cJSON *const *bs, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *b = bare_deref(c, bs[i]);
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(b, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(b, "const");
        if (!cJSON_IsObject(b) || (!cn && !cJSON_IsArray(en))) return false;
        total += cn ? 1 : (size_t)cJSON_GetArraySize(en);
    }
    scalar_of *v = mem_calloc(total + 1, sizeof *v);
    size_t m = 0;
    bool ok = v != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        const cJSON *b = bare_deref(c, bs[i]);
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(b, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(b, "const");
        for (const cJSON *x = cn ? cn : en->child; ok && x; x = cn ? NULL : x->next) {
            char num[40];   // numbers by value (0 and -0 are one)
            if (cJSON_IsNumber(x)) snprintf(num, sizeof num, "%.17g", x->valuedouble == 0 ? 0.0 : x->valuedouble);
            ok = !cJSON_IsObject(x) && !cJSON_IsArray(x) && (v[m].text = cJSON_IsNumber(x) ? strdup(num) : cJSON_PrintUnformatted(x));
            v[m++].branch = i;
        }
    }
    if (ok) {
        qsort(v, m, sizeof *v, scalar_cmp);
        for (size_t k = 1; ok && k < m; k++) ok = strcmp(v[k - 1].text, v[k].text) || v[k - 1].branch == v[k].branch;
    }
    for (size_t k = 0; v && k < m; k++) free(v[k].text);
    free(v);
    return ok;
}

// Branch a (owned by the compiler) without the properties named in forbid: NULL on OOM.
static const cJSON *branch_without(js *c, const cJSON *a, const cJSON *forbid) {
    cJSON *m = own(c, cJSON_Duplicate(bare_deref(c, a), true));
    if (!m) return NULL;
    cJSON *props = cJSON_GetObjectItemCaseSensitive(m, "properties");
    if (!cJSON_IsObject(props)) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "properties");
        if (!(props = cJSON_AddObjectToObject(m, "properties"))) { gram_fail(c->g, TV_ERR_NOMEM); return NULL; }
    }
    for (const cJSON *x = forbid->child; x; x = x->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(props, x->valuestring);
        if (!cJSON_AddFalseToObject(props, x->valuestring)) { gram_fail(c->g, TV_ERR_NOMEM); return NULL; }
    }
    return m;
}

// Adds s's alternatives to rule r.
static void js_body(js *c, const cJSON *s, int32_t r) {
    if (!check_keywords(c, s)) return;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    bool other = false;   // constraining keywords beside $ref
    for (const cJSON *k = s->child; k; k = k->next)
        if (!is_annotation(k->string) && strcmp(k->string, "$ref")) other = true;
    if (all || (ref && other)) {
        cJSON *m = own(c, cJSON_CreateObject());
        if (!m || !merge_into(c, m, s, c->depth)) return;
        cJSON_DeleteItemFromObjectCaseSensitive(m, "allOf");
        const int32_t v = js_value(c, m);
        gram_add_alt(c->g, r, &v, 1);
        return;
    }
    if (ref) {
        if (!cJSON_IsString(ref)) { js_fail(c, "'$ref' must be a string"); return; }
        const cJSON *t = resolve_ref(c, ref->valuestring);
        if (!t) return;
        const int32_t v = js_value(c, t);
        gram_add_alt(c->g, r, &v, 1);
        return;
    }
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf"), *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    if (any && one) { js_fail(c, "anyOf together with oneOf is not supported"); return; }
    if (any || one) {
        const cJSON *br = any ? any : one;
        if (!cJSON_IsArray(br)) { js_fail(c, "'%s' must be an array", any ? "anyOf" : "oneOf"); return; }
        bool sib = false;
        for (const cJSON *k = s->child; k; k = k->next)
            if (!is_annotation(k->string) && k != br) sib = true;
        const size_t n = (size_t)cJSON_GetArraySize(br);
        const cJSON **bs = mem_calloc(2 * n + 1, sizeof *bs);   // (n) the branches, merged with their siblings
        const cJSON **gen = bs + n;                              // (n) what each generates (oneOf: narrowed)
        if (!bs) { gram_fail(c->g, TV_ERR_NOMEM); return; }
        size_t i = 0;
        for (const cJSON *b = br->child; b && js_ok(c); b = b->next, i++) {
            bs[i] = b;
            if (!sib) continue;
            cJSON *m = own(c, cJSON_CreateObject());
            if (!m) break;
            for (const cJSON *k = s->child; k; k = k->next)
                if (k != br && !is_annotation(k->string)) cJSON_AddItemToObject(m, k->string, cJSON_Duplicate(k, true));
            if (!merge_into(c, m, b, c->depth)) break;
            bs[i] = m;
        }
        for (i = 0; i < n; i++) gen[i] = bs[i];
        c->oneof_work = ONEOF_WORK;
        const bool proven = one && !c->lenient && scalar_enums_disjoint(c, bs, n);
        for (i = 0; one && !c->lenient && !proven && i < n && js_ok(c); i++) {   // oneOf: no value may match two
            cJSON *forbid = own(c, cJSON_CreateArray());
            for (size_t j = 0; forbid && j < n && js_ok(c); j++)
                if (j != i && !branch_excludes(c, bs[i], bs[j], forbid))
                    js_fail(c, "oneOf branches %zu and %zu may both match a value (exactly one must); not supported "
                               "(anyOf allows that, or opt out with \"x-guidance\": {\"lenient\": true})", i, j);
            if (js_ok(c) && forbid->child) gen[i] = branch_without(c, bs[i], forbid);
        }
        for (i = 0; i < n && js_ok(c); i++) {
            char seg[40];
            snprintf(seg, sizeof seg, "%s/%zu", any ? "anyOf" : "oneOf", i);
            const size_t old = path_push(c, seg);
            const int32_t v = js_value(c, gen[i]);
            path_pop(c, old);
            gram_add_alt(c->g, r, &v, 1);
        }
        free(bs);
        return;
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (en || cn) {
        const int32_t v = js_enum(c, s, en, cn);
        gram_add_alt(c->g, r, &v, 1);
        return;
    }
    bool t[7];
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!types_of(ty, t)) { js_fail(c, "bad 'type'"); return; }
    if (!ty) {   // no type: generate the types the keywords talk about (a subset of the valid values)
        static const char *const ok[] = {"properties", "required", "additionalProperties", "minProperties", "maxProperties", NULL};
        static const char *const ak[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems", NULL};
        static const char *const sk[] = {"minLength", "maxLength", "pattern", "format", NULL};
        static const char *const nk[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", NULL};
        const bool o = has_any(s, ok), a = has_any(s, ak), st = has_any(s, sk), nu = has_any(s, nk);
        if (o || a || st || nu) {
            memset(t, 0, sizeof t);
            t[2] = o; t[3] = a; t[5] = st; t[4] = nu;
        } else {
            const int32_t v = any_value(c, 0);
            gram_add_alt(c->g, r, &v, 1);
            return;
        }
    }
    if (t[0]) { const int32_t v = lit_rule(c, "null"); gram_add_alt(c->g, r, &v, 1); }
    if (t[1]) {
        const int32_t a = lit_rule(c, "true"), b = lit_rule(c, "false");
        gram_add_alt(c->g, r, &a, 1);
        gram_add_alt(c->g, r, &b, 1);
    }
    if (t[2]) { const int32_t v = js_object(c, s); gram_add_alt(c->g, r, &v, 1); }
    if (t[3]) { const int32_t v = js_array(c, s); gram_add_alt(c->g, r, &v, 1); }
    if (t[4] || t[6]) { const int32_t v = js_number(c, s, !t[4]); gram_add_alt(c->g, r, &v, 1); }
    if (t[5]) { const int32_t v = js_string(c, s); gram_add_alt(c->g, r, &v, 1); }
    if (!t[0] && !t[1] && !t[2] && !t[3] && !t[4] && !t[5] && !t[6]) {
        const int32_t v = never_rule(c);
        gram_add_alt(c->g, r, &v, 1);
    }
}

static int32_t js_value(js *c, const cJSON *s) {
    if (!js_ok(c)) return -1;
    if (cJSON_IsTrue(s)) return any_value(c, 0);
    if (cJSON_IsFalse(s)) return never_rule(c);
    if (!cJSON_IsObject(s)) return js_fail(c, "a schema must be an object or a boolean");
    for (size_t i = 0; i < c->n_m; i++) if (c->m[i].node == s) return c->m[i].rule;
    if (c->depth >= JSON_MAX_DEPTH) return js_fail(c, "the schema nests deeper than %d levels", JSON_MAX_DEPTH);
    const int32_t r = gram_new_rule(c->g, NULL);
    if (r < 0) return js_ok(c), -1;
    memo *nm = c->n_m == c->cap_m ? array_grow(c->m, &c->cap_m, c->n_m + 1, sizeof *nm) : c->m;
    if (!nm) { gram_fail(c->g, TV_ERR_NOMEM); return js_ok(c), -1; }
    c->m = nm;
    c->m[c->n_m++] = (memo){s, r};
    c->depth++;
    js_body(c, s, r);
    c->depth--;
    return js_ok(c) ? r : -1;
}

static void js_free(js *c) {
    for (size_t i = 0; i < c->n_owned; i++) cJSON_Delete(c->owned[i]);
    free(c->owned);
    free(c->m);
    cJSON_Delete(c->doc);
}

tv_status jsonschema_compile(gram *g, const char *schema, size_t len, tv_error *err) {
    js c = {.g = g, .err = err};
    const char *end = NULL;
    c.doc = cJSON_ParseWithLengthOpts(schema, len, &end, false);
    if (!c.doc) {
        const size_t at = end && end >= schema ? (size_t)(end - schema) : 0;
        return err_fail(err, TV_ERR_INVALID, "schema: invalid JSON at byte %zu", at);
    }
    // llguidance's options object at the root; "lenient" is the one taken (nothing is silently dropped)
    const cJSON *xg = cJSON_IsObject(c.doc) ? cJSON_GetObjectItemCaseSensitive(c.doc, "x-guidance") : NULL;
    for (const cJSON *o = cJSON_IsObject(xg) ? xg->child : NULL; o; o = o->next) {
        if (!strcmp(o->string, "lenient") && cJSON_IsBool(o)) c.lenient = cJSON_IsTrue(o);
        else js_fail(&c, "x-guidance option '%.64s' is not supported (only \"lenient\": true / false)", o->string);
    }
    if (xg && !cJSON_IsObject(xg)) js_fail(&c, "'x-guidance' must be an object");
    const int32_t root = js_ok(&c) ? js_value(&c, c.doc) : -1;
    tv_status st = TV_OK;
    if (root < 0 || !js_ok(&c)) st = err ? err->code : TV_ERR_INVALID;
    else g->root = root;
    js_free(&c);
    return st;
}

tv_status jsonschema_any_object(gram *g, tv_error *err) {
    js c = {.g = g, .err = err};
    const int32_t r = any_object(&c, 0);
    if (r < 0 || !js_ok(&c)) return err ? err->code : TV_ERR_NOMEM;
    g->root = r;
    return TV_OK;
}
