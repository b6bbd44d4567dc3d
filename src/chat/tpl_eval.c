// tpl_eval.c — the interpreter: tagged values, scopes, filters, tests, builtins, rendering.
//
// Every value of one render lives in one arena freed when the render ends (no refcounts; lists,
// dicts and namespaces are shared by reference as in Python/JS). Limits keep hostile templates
// bounded: an arena budget (memory), an output cap, a step counter (loops), an evaluation depth
// (recursion). Semantics mirror @huggingface/jinja; see tpl.h.
#include "chat/tpl_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "util/buf.h"

// ============================== values ==============================

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_TUPLE, V_DICT, V_KWARGS, V_NS, V_FUNC } vtype;

typedef struct tstr { size_t n; char s[]; } tstr;         // UTF-8 bytes, NUL-terminated
typedef struct vlist vlist;
typedef struct vdict vdict;
typedef struct vfunc vfunc;

typedef struct value {
    vtype t;
    union { bool b; int64_t i; double f; const tstr *s; vlist *l; vdict *d; vfunc *fn; } u;
} value;

struct vlist { size_t n, cap; value *v; };
// Insertion-ordered. Keys are strings; ik[i] marks an integer key (an extension: Jinja2 allows
// {0: ...} where HF raises) whose text k[i] is its decimal form.
// Dicts past DICT_HASH_MIN entries also keep an open-addressing index (ht: entry index + 1, 0 empty;
// hcap a power of two >= 2 * cap) so hostile contexts with huge objects stay linear-time.
struct vdict { size_t n, cap; const tstr **k; value *v; uint8_t *ik; uint32_t *ht; size_t hcap; };
#define DICT_HASH_MIN 8

typedef struct env env;
typedef enum { F_BUILTIN, F_MACRO, F_CALLER } fkind;
typedef enum {
    B_NAMESPACE, B_RAISE, B_RANGE, B_STRFTIME,
    B_S_UPPER, B_S_LOWER, B_S_STRIP, B_S_TITLE, B_S_CAPITALIZE, B_S_RSTRIP, B_S_LSTRIP, B_S_STARTSWITH,
    B_S_ENDSWITH, B_S_SPLIT, B_S_REPLACE, B_S_FORMAT,
    B_D_GET, B_D_ITEMS, B_D_KEYS, B_D_VALUES, B_D_DICTSORT,
} builtin_id;
struct vfunc { fkind k; builtin_id id; value self; const tpl_node *node; env *defenv; };

struct env { env *parent; size_t n, cap; const char **names; size_t *lens; value *vals; };

typedef struct interp {
    tpl_arena *a;
    tv_error *err;
    bool failed;
    bool py;                 // a Python-compatible extension was used in this render (see eval_binary)
    int ctl;                 // 0, CTL_BREAK or CTL_CONTINUE while unwinding a loop body
    int depth;
    uint64_t steps;
    const tpl_program *prog;
    env *globals;
} interp;

enum { CTL_BREAK = 1, CTL_CONTINUE = 2 };
#define MAX_DEPTH 600
#define MAX_STEPS 5000000ull
#define MAX_OUTPUT ((size_t)16 << 20)   // bytes: any string, and the rendered prompt
#define MAX_RANGE 1000000

static const value UNDEF = {V_UNDEF, {0}};
static const value NONE = {V_NONE, {0}};

static value vbool(bool b) { value v = {V_BOOL, {0}}; v.u.b = b; return v; }
static value vint(int64_t i) { value v = {V_INT, {0}}; v.u.i = i; return v; }
static value vfloat(double f) { value v = {V_FLOAT, {0}}; v.u.f = f; return v; }

// ---- errors ----
static value fail_at(interp *I, uint32_t pos, tv_status code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static value fail_at(interp *I, uint32_t pos, tv_status code, const char *fmt, ...) {
    if (!I->failed) {
        I->failed = true;
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int line, col;
        tpl_line_col(I->prog->src, I->prog->src_len, pos, &line, &col);
        err_fail(I->err, code, "template line %d, column %d: %s", line, col, msg);
    }
    return UNDEF;
}
#define OOM(I, pos) fail_at((I), (pos), TV_ERR_NOMEM, "template render memory budget exhausted")

static const char *type_name(vtype t) {
    static const char *N[] = {"UndefinedValue", "NullValue", "BooleanValue", "IntegerValue", "FloatValue",
                              "StringValue", "ArrayValue", "TupleValue", "ObjectValue", "KeywordArgumentsValue",
                              "NamespaceValue", "FunctionValue"};
    return N[t];
}

// ---- strings ----
static const tstr *mkstr(interp *I, const char *s, size_t n) {
    tstr *t = tpl_alloc(I->a, sizeof *t + n + 1);
    if (!t) return NULL;
    t->n = n;
    if (n) memcpy(t->s, s, n);
    t->s[n] = 0;
    return t;
}

static value vstr_n(interp *I, const char *s, size_t n, uint32_t pos) {
    const tstr *t = mkstr(I, s, n);
    if (!t) return OOM(I, pos);
    value v = {V_STR, {0}};
    v.u.s = t;
    return v;
}
static value vstr(interp *I, const char *s, uint32_t pos) { return vstr_n(I, s, strlen(s), pos); }

// Growable byte buffer (the interpreter copies results into the arena). Appends never fail on the
// spot: running out of memory or past MAX_OUTPUT sets oom, which sb_finish reports.
typedef struct { strbuf b; bool oom; } sbuf;
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (n >= MAX_OUTPUT - b->b.n || !strbuf_put(&b->b, s, n)) b->oom = true;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static value sb_finish(interp *I, sbuf *b, uint32_t pos) {
    if (b->oom) { strbuf_free(&b->b); return fail_at(I, pos, TV_ERR_RANGE, "template output exceeds %zu bytes", MAX_OUTPUT); }
    value v = vstr_n(I, b->b.p ? b->b.p : "", b->b.n, pos);
    strbuf_free(&b->b);
    return v;
}

// ---- lists and dicts ----
static vlist *list_new(interp *I, size_t cap) {
    vlist *l = tpl_alloc(I->a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->v = tpl_alloc(I->a, cap * sizeof *l->v);
        if (!l->v) return NULL;
        l->cap = cap;
    }
    return l;
}
static bool list_push(interp *I, vlist *l, value v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        value *nv = tpl_alloc(I->a, cap * sizeof *nv);
        if (!nv) return false;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv; l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}
static value vlist_of(vlist *l, vtype t) { value v = {t, {0}}; v.u.l = l; return v; }
static value vdict_of(vdict *d, vtype t) { value v = {t, {0}}; v.u.d = d; return v; }

static vdict *dict_new(interp *I) { return tpl_alloc(I->a, sizeof(vdict)); }
static uint64_t key_hash(const char *k, size_t n, bool is_int) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)is_int;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

static value *dict_find_kind(const vdict *d, const char *k, size_t n, bool is_int) {
    if (d->ht) {
        size_t mask = d->hcap - 1;
        for (size_t h = (size_t)key_hash(k, n, is_int) & mask;; h = (h + 1) & mask) {
            uint32_t e = d->ht[h];
            if (!e) return NULL;
            size_t i = e - 1;
            if ((bool)d->ik[i] == is_int && d->k[i]->n == n && !memcmp(d->k[i]->s, k, n)) return &d->v[i];
        }
    }
    for (size_t i = 0; i < d->n; i++)
        if ((bool)d->ik[i] == is_int && d->k[i]->n == n && !memcmp(d->k[i]->s, k, n)) return &d->v[i];
    return NULL;
}
static value *dict_find(const vdict *d, const char *k, size_t n) { return dict_find_kind(d, k, n, false); }
static value *dict_find_int(const vdict *d, int64_t key) {
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", (long long)key);
    return dict_find_kind(d, b, (size_t)n, true);
}
static bool dict_set_kind(interp *I, vdict *d, const tstr *k, bool is_int, value v) {
    value *slot = dict_find_kind(d, k->s, k->n, is_int);
    if (slot) { *slot = v; return true; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        const tstr **nk = tpl_alloc(I->a, cap * sizeof *nk);
        value *nv = tpl_alloc(I->a, cap * sizeof *nv);
        uint8_t *ni = tpl_alloc(I->a, cap);
        if (!nk || !nv || !ni) return false;
        if (d->n) { memcpy(nk, d->k, d->n * sizeof *nk); memcpy(nv, d->v, d->n * sizeof *nv); memcpy(ni, d->ik, d->n); }
        d->k = nk; d->v = nv; d->ik = ni; d->cap = cap;
    }
    d->k[d->n] = k; d->v[d->n] = v; d->ik[d->n] = is_int; d->n++;
    if (d->n > DICT_HASH_MIN && d->n <= UINT32_MAX / 2) {
        if (!d->ht || d->hcap < 2 * d->cap) {        // (re)build the index for the current capacity
            size_t hcap = 16;
            while (hcap < 2 * d->cap) hcap *= 2;
            uint32_t *ht = tpl_alloc(I->a, hcap * sizeof *ht);
            if (!ht) return false;
            d->ht = ht; d->hcap = hcap;
            for (size_t i = 0; i < d->n; i++) {
                size_t h = (size_t)key_hash(d->k[i]->s, d->k[i]->n, d->ik[i]) & (hcap - 1);
                while (ht[h]) h = (h + 1) & (hcap - 1);
                ht[h] = (uint32_t)(i + 1);
            }
        } else {
            size_t h = (size_t)key_hash(k->s, k->n, is_int) & (d->hcap - 1);
            while (d->ht[h]) h = (h + 1) & (d->hcap - 1);
            d->ht[h] = (uint32_t)d->n;
        }
    }
    return true;
}
static bool dict_set(interp *I, vdict *d, const tstr *k, value v) { return dict_set_kind(I, d, k, false, v); }
// copies entry i of src (keeping its key kind)
static bool dict_copy_entry(interp *I, vdict *dst, const vdict *src, size_t i) { return dict_set_kind(I, dst, src->k[i], src->ik[i], src->v[i]); }
// the key of entry i as a value
static value dict_key(const vdict *d, size_t i) {
    if (d->ik[i]) return vint(strtoll(d->k[i]->s, NULL, 10));
    value k = {V_STR, {0}};
    k.u.s = d->k[i];
    return k;
}
static bool dict_set_c(interp *I, vdict *d, const char *k, value v) {
    const tstr *ks = mkstr(I, k, strlen(k));
    return ks && dict_set(I, d, ks, v);
}

static bool is_list(value v) { return v.t == V_LIST || v.t == V_TUPLE; }          // JS ArrayValue family
static bool is_dict(value v) { return v.t == V_DICT || v.t == V_KWARGS; }         // JS ObjectValue family
static bool is_attr_container(value v) { return is_dict(v) || v.t == V_NS; }
static bool is_num(value v) { return v.t == V_INT || v.t == V_FLOAT; }
static double num(value v) { return v.t == V_INT ? (double)v.u.i : v.t == V_FLOAT ? v.u.f : v.t == V_BOOL ? (double)v.u.b : 0.0; }

static value mkfunc(interp *I, fkind k, builtin_id id, value self, uint32_t pos) {
    vfunc *f = tpl_alloc(I->a, sizeof *f);
    if (!f) return OOM(I, pos);
    f->k = k; f->id = id; f->self = self;
    value v = {V_FUNC, {0}};
    v.u.fn = f;
    return v;
}

// ---- truthiness (Python rules: empty containers are false) ----
static bool truthy(value v) {
    switch (v.t) {
        case V_UNDEF: case V_NONE: return false;
        case V_BOOL: return v.u.b;
        case V_INT: return v.u.i != 0;
        case V_FLOAT: return v.u.f != 0.0 && !isnan(v.u.f);
        case V_STR: return v.u.s->n > 0;
        case V_LIST: case V_TUPLE: return v.u.l->n > 0;
        case V_DICT: case V_KWARGS: return v.u.d->n > 0;
        case V_NS: case V_FUNC: return true;
    }
    return false;
}

// ---- JavaScript number formatting (Number.prototype.toString) ----
static void js_num(double d, char *out, size_t cap) {
    if (isnan(d)) { snprintf(out, cap, "NaN"); return; }
    if (isinf(d)) { snprintf(out, cap, d < 0 ? "-Infinity" : "Infinity"); return; }
    if (d == 0) { snprintf(out, cap, "0"); return; }
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    // buf = [-]d.ddde[+-]xx  -> digits and exponent
    char digits[24];
    int nd = 0, e10;
    const char *q = buf;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++) if (*q != '.') digits[nd++] = *q;
    e10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int n = e10 + 1;   // position of the decimal point
    char *o = out;
    size_t left = cap;
#define PUT(...) do { int w_ = snprintf(o, left, __VA_ARGS__); if (w_ < 0 || (size_t)w_ >= left) return; o += w_; left -= (size_t)w_; } while (0)
    if (neg) PUT("-");
    if (nd <= n && n <= 21) {
        PUT("%s", digits);
        for (int i = nd; i < n; i++) PUT("0");
    } else if (0 < n && n <= 21) {
        PUT("%.*s.%s", n, digits, digits + n);
    } else if (-6 < n && n <= 0) {
        PUT("0.");
        for (int i = 0; i < -n; i++) PUT("0");
        PUT("%s", digits);
    } else {
        if (nd == 1) PUT("%c", digits[0]);
        else PUT("%c.%s", digits[0], digits + 1);
        PUT("e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
#undef PUT
}

// ---- JSON (JSON.stringify rules; python json.dumps separators) ----
typedef struct { int indent; bool ensure_ascii, sort_keys, undef_null; const char *item_sep, *key_sep; } json_opts;

static void json_str(sbuf *b, const char *s, size_t n, bool ensure_ascii) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            char e[8];
            switch (c) {
                case '"': sb_put(b, "\\\"", 2); break;
                case '\\': sb_put(b, "\\\\", 2); break;
                case '\b': sb_put(b, "\\b", 2); break;
                case '\f': sb_put(b, "\\f", 2); break;
                case '\n': sb_put(b, "\\n", 2); break;
                case '\r': sb_put(b, "\\r", 2); break;
                case '\t': sb_put(b, "\\t", 2); break;
                default:
                    if (c < 0x20 || (c == 0x7f && ensure_ascii)) { snprintf(e, sizeof e, "\\u%04x", c); sb_put(b, e, 6); }
                    else sb_put(b, (const char *)&c, 1);
            }
            i++;
            continue;
        }
        size_t st = i;
        uint32_t cp = tpl_utf8_next(s, n, &i);
        if (!ensure_ascii) { sb_put(b, s + st, i - st); continue; }
        char e[16];
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            sb_put(b, e, 12);
        } else {
            snprintf(e, sizeof e, "\\u%04x", cp);
            sb_put(b, e, 6);
        }
    }
    sb_put(b, "\"", 1);
}

static void pad(sbuf *b, int indent, int depth) {
    sb_put(b, "\n", 1);
    for (int i = 0; i < indent * depth; i++) sb_put(b, " ", 1);
}

static int cmp_keys(const void *x, const void *y) {
    const tstr *a = *(const tstr *const *)x, *c = *(const tstr *const *)y;
    int r = memcmp(a->s, c->s, a->n < c->n ? a->n : c->n);
    return r ? r : (a->n < c->n ? -1 : a->n > c->n);
}

// Returns false (with err) for values JSON cannot hold (functions) or nesting beyond the limit.
static bool to_json(interp *I, sbuf *b, value v, const json_opts *o, int depth, uint32_t pos) {
    if (depth > 200) { fail_at(I, pos, TV_ERR_RANGE, "tojson: nesting too deep"); return false; }
    char nb[64];
    switch (v.t) {
        case V_NONE: sb_puts(b, "null"); return true;
        case V_UNDEF: sb_puts(b, o->undef_null ? "null" : "undefined"); return true;
        case V_BOOL: sb_puts(b, v.u.b ? "true" : "false"); return true;
        case V_INT: snprintf(nb, sizeof nb, "%lld", (long long)v.u.i); sb_puts(b, nb); return true;
        case V_FLOAT:
            if (!isfinite(v.u.f)) { sb_puts(b, "null"); return true; }
            js_num(v.u.f, nb, sizeof nb); sb_puts(b, nb); return true;
        case V_STR: json_str(b, v.u.s->s, v.u.s->n, o->ensure_ascii); return true;
        case V_TUPLE:   // HF's JSON writer has no case for tuples (printing one raises too)
            fail_at(I, pos, TV_ERR_INVALID, "Cannot convert to JSON: TupleValue");
            return false;
        case V_LIST: {
            const vlist *l = v.u.l;
            sb_put(b, "[", 1);
            for (size_t i = 0; i < l->n; i++) {
                if (i) sb_puts(b, o->item_sep);
                if (o->indent) pad(b, o->indent, depth + 1);
                if (!to_json(I, b, l->v[i], o, depth + 1, pos)) return false;
            }
            if (o->indent && l->n) pad(b, o->indent, depth);
            sb_put(b, "]", 1);
            return true;
        }
        case V_DICT: case V_KWARGS: case V_NS: {
            const vdict *d = v.u.d;
            const tstr **keys = NULL;
            if (o->sort_keys && d->n > 1) {
                keys = malloc(d->n * sizeof *keys);
                if (!keys) { OOM(I, pos); return false; }
                memcpy(keys, d->k, d->n * sizeof *keys);
                qsort(keys, d->n, sizeof *keys, cmp_keys);
            }
            sb_put(b, "{", 1);
            for (size_t i = 0; i < d->n; i++) {
                const tstr *k = keys ? keys[i] : d->k[i];
                value val = keys ? *dict_find(d, k->s, k->n) : d->v[i];
                if (i) sb_puts(b, o->item_sep);
                if (o->indent) pad(b, o->indent, depth + 1);
                json_str(b, k->s, k->n, o->ensure_ascii);
                sb_puts(b, o->key_sep);
                if (!to_json(I, b, val, o, depth + 1, pos)) { free(keys); return false; }
            }
            free(keys);
            if (o->indent && d->n) pad(b, o->indent, depth);
            sb_put(b, "}", 1);
            return true;
        }
        case V_FUNC:
            fail_at(I, pos, TV_ERR_INVALID, "Cannot convert to JSON: FunctionValue");
            return false;
    }
    return false;
}

static value json_value(interp *I, value v, json_opts o, uint32_t pos) {
    if (!o.item_sep) o.item_sep = o.indent ? "," : ", ";
    if (!o.key_sep) o.key_sep = ": ";
    sbuf b = {0};
    if (!to_json(I, &b, v, &o, 0, pos)) { strbuf_free(&b.b); return UNDEF; }
    return sb_finish(I, &b, pos);
}

// RuntimeValue.toString(); {{ v }} prints it, except that none/undefined print nothing there
// (rt_string = false) while inside a list's toString they read "null"/"undefined" (rt_string = true).
static bool rt_value_string(interp *I, sbuf *b, value v, uint32_t pos, bool rt_string) {
    char nb[64];
    switch (v.t) {
        case V_UNDEF: if (rt_string) sb_puts(b, "undefined"); return true;
        case V_NONE: if (rt_string) sb_puts(b, "null"); return true;
        case V_BOOL: sb_puts(b, v.u.b ? "true" : "false"); return true;
        case V_INT: snprintf(nb, sizeof nb, "%lld", (long long)v.u.i); sb_puts(b, nb); return true;
        case V_FLOAT:
            if (v.u.f == 0 && signbit(v.u.f)) sb_puts(b, "-0.0");
            else if (isfinite(v.u.f) && v.u.f == floor(v.u.f) && fabs(v.u.f) < 1e21) { snprintf(nb, sizeof nb, "%.1f", v.u.f); sb_puts(b, nb); }
            else { js_num(v.u.f, nb, sizeof nb); sb_puts(b, nb); }
            return true;
        case V_STR: sb_put(b, v.u.s->s, v.u.s->n); return true;
        case V_LIST: case V_TUPLE: case V_DICT: case V_KWARGS: case V_NS: {
            json_opts o = {0, false, false, false, ", ", ": "};
            return to_json(I, b, v, &o, 0, pos);
        }
        case V_FUNC: sb_puts(b, "[function]"); return true;
    }
    return true;
}
static bool print_value(interp *I, sbuf *b, value v, uint32_t pos) { return rt_value_string(I, b, v, pos, false); }

// JS `x.value.toString()` as used by `~`, string `+` and join: a list's raw value is a JS array of
// runtime values, so it reads as their toString()s joined by ","; a dict's raw value is a Map.
static bool js_string(interp *I, sbuf *b, value v, uint32_t pos) {
    char nb[64];
    switch (v.t) {
        case V_UNDEF: sb_puts(b, "undefined"); return true;
        case V_NONE: sb_puts(b, "null"); return true;
        case V_BOOL: sb_puts(b, v.u.b ? "true" : "false"); return true;
        case V_INT: snprintf(nb, sizeof nb, "%lld", (long long)v.u.i); sb_puts(b, nb); return true;
        case V_FLOAT: js_num(v.u.f, nb, sizeof nb); sb_puts(b, nb); return true;
        case V_STR: sb_put(b, v.u.s->s, v.u.s->n); return true;
        case V_LIST: case V_TUPLE:
            for (size_t i = 0; i < v.u.l->n; i++) {
                if (i) sb_puts(b, ",");
                if (!rt_value_string(I, b, v.u.l->v[i], pos, true)) return false;
            }
            return true;
        case V_DICT: case V_KWARGS: case V_NS: sb_puts(b, "[object Map]"); return true;
        case V_FUNC: sb_puts(b, "[function]"); return true;
    }
    return true;
}

// ---- equality ----
static bool js_str_to_num(const tstr *s, double *out) {   // JS Number(string)
    size_t i = 0, n = s->n, e = n;
    while (i < n) { size_t j = i; if (!tpl_is_js_space(tpl_utf8_next(s->s, n, &j))) break; i = j; }
    while (e > i) {
        size_t st = e - 1;
        while (st > i && ((unsigned char)s->s[st] & 0xC0) == 0x80) st--;
        size_t j = st;
        if (!tpl_is_js_space(tpl_utf8_next(s->s, n, &j))) break;
        e = st;
    }
    if (i == e) { *out = 0; return true; }
    char buf[128];
    if (e - i >= sizeof buf) return false;
    memcpy(buf, s->s + i, e - i); buf[e - i] = 0;
    if (!strcmp(buf, "Infinity") || !strcmp(buf, "+Infinity")) { *out = INFINITY; return true; }
    if (!strcmp(buf, "-Infinity")) { *out = -INFINITY; return true; }
    for (char *c = buf; *c; c++) if (!strchr("0123456789+-.eExXabcdefABCDEF", *c)) return false;
    if (strpbrk(buf, "pPnN")) return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == 0;
}

static bool loose_eq(value a, value b) {              // JS `a.value == b.value`
    bool an = a.t == V_UNDEF || a.t == V_NONE, bn = b.t == V_UNDEF || b.t == V_NONE;
    if (an || bn) return an && bn;
    if (a.t == V_STR && b.t == V_STR) return a.u.s->n == b.u.s->n && !memcmp(a.u.s->s, b.u.s->s, a.u.s->n);
    bool ap = is_num(a) || a.t == V_BOOL, bp = is_num(b) || b.t == V_BOOL;
    if (ap && bp) return num(a) == num(b);
    double x;
    if (ap && b.t == V_STR) return js_str_to_num(b.u.s, &x) && x == num(a);
    if (bp && a.t == V_STR) return js_str_to_num(a.u.s, &x) && x == num(b);
    if (a.t != b.t && !((is_list(a) && is_list(b)) || (is_dict(a) && is_dict(b)))) return false;
    switch (a.t) {
        case V_LIST: case V_TUPLE: return a.u.l == b.u.l;
        case V_DICT: case V_KWARGS: case V_NS: return a.u.d == b.u.d;
        case V_FUNC: return a.u.fn == b.u.fn;
        default: return false;
    }
}

static bool strict_eq(value a, value b) {             // JS `a.value === b.value`
    if (is_num(a) && is_num(b)) return num(a) == num(b);
    if (a.t != b.t) {
        if (is_list(a) && is_list(b)) return a.u.l == b.u.l;
        if (is_dict(a) && is_dict(b)) return a.u.d == b.u.d;
        return false;
    }
    switch (a.t) {
        case V_UNDEF: case V_NONE: return true;
        case V_BOOL: return a.u.b == b.u.b;
        case V_STR: return a.u.s->n == b.u.s->n && !memcmp(a.u.s->s, b.u.s->s, a.u.s->n);
        case V_LIST: case V_TUPLE: return a.u.l == b.u.l;
        case V_DICT: case V_KWARGS: case V_NS: return a.u.d == b.u.d;
        case V_FUNC: return a.u.fn == b.u.fn;
        default: return false;
    }
}

// ---- environments ----
static env *env_new(interp *I, env *parent) {
    env *e = tpl_alloc(I->a, sizeof *e);
    if (e) e->parent = parent;
    return e;
}
static bool env_set(interp *I, env *e, const char *name, size_t n, value v) {
    for (size_t i = 0; i < e->n; i++)
        if (e->lens[i] == n && !memcmp(e->names[i], name, n)) { e->vals[i] = v; return true; }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        const char **nn = tpl_alloc(I->a, cap * sizeof *nn);
        size_t *nl = tpl_alloc(I->a, cap * sizeof *nl);
        value *nv = tpl_alloc(I->a, cap * sizeof *nv);
        if (!nn || !nl || !nv) return false;
        if (e->n) { memcpy(nn, e->names, e->n * sizeof *nn); memcpy(nl, e->lens, e->n * sizeof *nl); memcpy(nv, e->vals, e->n * sizeof *nv); }
        e->names = nn; e->lens = nl; e->vals = nv; e->cap = cap;
    }
    char *copy = tpl_strndup(I->a, name, n);
    if (!copy) return false;
    e->names[e->n] = copy; e->lens[e->n] = n; e->vals[e->n] = v; e->n++;
    return true;
}
static value env_get(const env *e, const char *name, size_t n) {
    for (; e; e = e->parent)
        for (size_t i = 0; i < e->n; i++)
            if (e->lens[i] == n && !memcmp(e->names[i], name, n)) return e->vals[i];
    return UNDEF;
}

// ============================== string helpers (code-point based) ==============================

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; c++) tpl_utf8_next(s, n, &i);
    return c;
}

static value str_trim(interp *I, const tstr *s, bool left, bool right, uint32_t pos) {
    size_t i = 0, e = s->n;
    if (left) while (i < e) { size_t j = i; if (!tpl_is_js_space(tpl_utf8_next(s->s, s->n, &j))) break; i = j; }
    if (right) while (e > i) {
        size_t st = e - 1;
        while (st > i && ((unsigned char)s->s[st] & 0xC0) == 0x80) st--;
        size_t j = st;
        if (!tpl_is_js_space(tpl_utf8_next(s->s, s->n, &j)) || j != e) break;
        e = st;
    }
    return vstr_n(I, s->s + i, e - i, pos);
}

static value str_case(interp *I, const tstr *s, int mode, uint32_t pos) {   // 0 upper, 1 lower
    sbuf b = {0};
    for (size_t i = 0; i < s->n;) {
        size_t st = i;
        uint32_t cp = tpl_utf8_next(s->s, s->n, &i);
        if (cp < 0x80 || (i - st) > 1) {
            utf8proc_int32_t m = mode == 0 ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp);
            unsigned char o[4];
            utf8proc_ssize_t w = utf8proc_encode_char(m, o);
            if (w > 0) sb_put(&b, (const char *)o, (size_t)w);
        } else sb_put(&b, s->s + st, i - st);   // invalid byte: keep
    }
    return sb_finish(I, &b, pos);
}

static bool ascii_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

static value str_title(interp *I, const tstr *s, uint32_t pos) {   // /\b\w/g -> upper (ASCII \w)
    char *o = tpl_alloc(I->a, s->n + 1);
    if (!o) return OOM(I, pos);
    for (size_t i = 0; i < s->n; i++) {
        char c = s->s[i];
        bool start = ascii_word(c) && (i == 0 || !ascii_word(s->s[i - 1]));
        o[i] = start && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
    return vstr_n(I, o, s->n, pos);
}

static value str_capitalize(interp *I, const tstr *s, uint32_t pos) {  // first char upper, rest as-is
    if (!s->n) return vstr_n(I, "", 0, pos);
    size_t i = 0;
    tpl_utf8_next(s->s, s->n, &i);
    const tstr *first = mkstr(I, s->s, i);
    if (!first) return OOM(I, pos);
    value up = str_case(I, first, 0, pos);
    if (I->failed) return UNDEF;
    sbuf b = {0};
    sb_put(&b, up.u.s->s, up.u.s->n);
    sb_put(&b, s->s + i, s->n - i);
    return sb_finish(I, &b, pos);
}

static bool has_prefix(const tstr *s, const tstr *p) { return p->n <= s->n && !memcmp(s->s, p->s, p->n); }
static bool has_suffix(const tstr *s, const tstr *p) { return p->n <= s->n && !memcmp(s->s + s->n - p->n, p->s, p->n); }

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++) if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

// Python/JS str.replace(old, new, count<0 = all). Empty `old` inserts between code points (JS /(?=)/gu).
static value str_replace(interp *I, const tstr *s, const tstr *old, const tstr *nw, int64_t count, uint32_t pos) {
    if (count == 0) return vstr_n(I, s->s, s->n, pos);
    sbuf b = {0};
    int64_t left = count < 0 ? INT64_MAX : count;
    if (old->n == 0) {
        size_t i = 0;
        for (;;) {
            if (left > 0) { sb_put(&b, nw->s, nw->n); left--; }
            if (i >= s->n) break;
            size_t st = i;
            tpl_utf8_next(s->s, s->n, &i);
            sb_put(&b, s->s + st, i - st);
        }
        return sb_finish(I, &b, pos);
    }
    size_t i = 0;
    while (i < s->n) {
        const char *f = left > 0 ? memfind(s->s + i, s->n - i, old->s, old->n) : NULL;
        if (!f) break;
        size_t at = (size_t)(f - s->s);
        sb_put(&b, s->s + i, at - i);
        sb_put(&b, nw->s, nw->n);
        i = at + old->n;
        left--;
    }
    sb_put(&b, s->s + i, s->n - i);
    return sb_finish(I, &b, pos);
}

// ============================== evaluation ==============================

static value eval(interp *I, const tpl_node *n, env *e);
static value exec_block(interp *I, const tpl_nodes *body, env *e, uint32_t pos);

#define CK(v) do { if (I->failed) return UNDEF; (void)(v); } while (0)

static bool step(interp *I, uint32_t pos) {
    if (++I->steps > MAX_STEPS) { fail_at(I, pos, TV_ERR_RANGE, "template evaluation step limit exceeded"); return false; }
    return true;
}

// Positional args + keyword args of a call.
typedef struct { value *pos; size_t n_pos; vdict *kw; } args_t;

static bool eval_args(interp *I, const tpl_nodes *argn, env *e, args_t *out, uint32_t at) {
    vlist *pl = list_new(I, argn->n ? argn->n : 1);
    vdict *kw = dict_new(I);
    if (!pl || !kw) { OOM(I, at); return false; }
    for (size_t i = 0; i < argn->n; i++) {
        const tpl_node *a = argn->v[i];
        if (a->kind == N_SPREAD) {
            value v = eval(I, a->a, e);
            if (I->failed) return false;
            if (!is_list(v)) { fail_at(I, a->pos, TV_ERR_INVALID, "Cannot unpack non-iterable type: %s", type_name(v.t)); return false; }
            for (size_t j = 0; j < v.u.l->n; j++) if (!list_push(I, pl, v.u.l->v[j])) { OOM(I, at); return false; }
        } else if (a->kind != N_KWARG && a->kind != N_KWSPREAD) {
            value v = eval(I, a, e);
            if (I->failed) return false;
            if (!list_push(I, pl, v)) { OOM(I, at); return false; }
        }
    }
    for (size_t i = 0; i < argn->n; i++) {
        const tpl_node *a = argn->v[i];
        if (a->kind == N_KWARG) {
            value v = eval(I, a->b, e);
            if (I->failed) return false;
            if (dict_find(kw, a->a->s, a->a->slen)) { fail_at(I, a->pos, TV_ERR_INVALID, "Got multiple values for keyword argument '%s'", a->a->s); return false; }
            const tstr *k = mkstr(I, a->a->s, a->a->slen);
            if (!k || !dict_set(I, kw, k, v)) { OOM(I, at); return false; }
        } else if (a->kind == N_KWSPREAD) {
            value v = eval(I, a->a, e);
            if (I->failed) return false;
            if (!is_dict(v)) { fail_at(I, a->pos, TV_ERR_INVALID, "Argument after ** must be a mapping, not %s", type_name(v.t)); return false; }
            for (size_t j = 0; j < v.u.d->n; j++) {
                if (dict_find(kw, v.u.d->k[j]->s, v.u.d->k[j]->n)) { fail_at(I, a->pos, TV_ERR_INVALID, "Got multiple values for keyword argument '%s'", v.u.d->k[j]->s); return false; }
                if (!dict_set(I, kw, v.u.d->k[j], v.u.d->v[j])) { OOM(I, at); return false; }
            }
        }
    }
    out->pos = pl->v; out->n_pos = pl->n; out->kw = kw;
    return true;
}

static value kwget(const vdict *kw, const char *k) {
    value *v = kw ? dict_find(kw, k, strlen(k)) : NULL;
    return v ? *v : UNDEF;
}
// first positional i if present, else keyword k, else UNDEF
static value arg_or_kw(const args_t *a, size_t i, const char *k) { return i < a->n_pos ? a->pos[i] : kwget(a->kw, k); }

// ---- comparisons for sort/dictsort ----
static int compare_values(interp *I, value a, value b, bool case_sensitive, uint32_t pos) {
    if (a.t == V_NONE && b.t == V_NONE) return 0;
    if (a.t == V_NONE || b.t == V_NONE || a.t == V_UNDEF || b.t == V_UNDEF) {
        if (a.t == V_UNDEF && b.t == V_UNDEF) return 0;
        fail_at(I, pos, TV_ERR_INVALID, "Cannot compare %s with %s", type_name(a.t), type_name(b.t));
        return 0;
    }
    bool an = is_num(a) || a.t == V_BOOL, bn = is_num(b) || b.t == V_BOOL;
    if (an && bn) { double x = num(a), y = num(b); return x < y ? -1 : x > y ? 1 : 0; }
    if (a.t != b.t) { fail_at(I, pos, TV_ERR_INVALID, "Cannot compare different types: %s and %s", type_name(a.t), type_name(b.t)); return 0; }
    if (a.t == V_STR) {
        const tstr *x = a.u.s, *y = b.u.s;
        if (!case_sensitive) {
            value lx = str_case(I, x, 1, pos), ly = str_case(I, y, 1, pos);
            if (I->failed) return 0;
            x = lx.u.s; y = ly.u.s;
        }
        // JS compares UTF-16 code units; code-point order equals it except for astral vs U+E000..FFFF
        int r = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
        return r < 0 ? -1 : r > 0 ? 1 : (x->n < y->n ? -1 : x->n > y->n);
    }
    fail_at(I, pos, TV_ERR_INVALID, "Cannot compare type: %s", type_name(a.t));
    return 0;
}

typedef struct { value key; value item; } sort_rec;

// stable merge sort with fallible comparator
static void merge_sort(interp *I, sort_rec *v, sort_rec *tmp, size_t n, bool cs, bool rev, uint32_t pos) {
    if (n < 2 || I->failed) return;
    size_t h = n / 2;
    merge_sort(I, v, tmp, h, cs, rev, pos);
    merge_sort(I, v + h, tmp, n - h, cs, rev, pos);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c = compare_values(I, v[j].key, v[i].key, cs, pos);
        if (rev) c = -c;
        if (I->failed) return;
        tmp[k++] = c < 0 ? v[j++] : v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static value get_attr_path(value item, const char *path) {    // "a.b.0"
    value v = item;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (is_attr_container(v)) {
            value *f = dict_find(v.u.d, p, n);
            v = f ? *f : UNDEF;
        } else if (is_list(v)) {
            char buf[24];
            if (n == 0 || n >= sizeof buf) return UNDEF;
            memcpy(buf, p, n); buf[n] = 0;
            char *end;
            long idx = strtol(buf, &end, 10);   // parseInt: leading digits
            if (end == buf || idx < 0 || (size_t)idx >= v.u.l->n) return UNDEF;
            v = v.u.l->v[idx];
        } else return UNDEF;
        if (!dot) return v;
        p = dot + 1;
    }
}

// ---- tests (`x is name`) ----
static value apply_test(interp *I, value v, const tpl_node *n) {
    const char *t = n->s;
    bool r;
    if (!strcmp(t, "boolean")) r = v.t == V_BOOL;
    else if (!strcmp(t, "callable")) r = v.t == V_FUNC;
    else if (!strcmp(t, "odd") || !strcmp(t, "even")) {
        if (v.t != V_INT) return fail_at(I, n->pos, TV_ERR_INVALID, "cannot %s on %s", t, type_name(v.t));
        r = (v.u.i % 2 != 0) == (t[0] == 'o');
    }
    else if (!strcmp(t, "false")) r = v.t == V_BOOL && !v.u.b;
    else if (!strcmp(t, "true")) r = v.t == V_BOOL && v.u.b;
    else if (!strcmp(t, "none")) r = v.t == V_NONE;
    else if (!strcmp(t, "string")) r = v.t == V_STR;
    else if (!strcmp(t, "number")) r = is_num(v);
    else if (!strcmp(t, "integer")) r = v.t == V_INT;
    else if (!strcmp(t, "iterable")) r = v.t == V_LIST || v.t == V_STR;     // HF: tuples/dicts are not
    else if (!strcmp(t, "mapping")) r = is_dict(v);
    else if (!strcmp(t, "sequence")) r = is_list(v) || is_dict(v) || v.t == V_STR;
    else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        if (v.t != V_STR) r = false;
        else {
            value c = str_case(I, v.u.s, t[0] == 'u' ? 0 : 1, n->pos);
            CK(c);
            r = c.u.s->n == v.u.s->n && !memcmp(c.u.s->s, v.u.s->s, v.u.s->n);
        }
    }
    else if (!strcmp(t, "defined")) r = v.t != V_UNDEF;
    else if (!strcmp(t, "undefined")) r = v.t == V_UNDEF;
    else if (!strcmp(t, "equalto") || !strcmp(t, "eq"))   // `is eq` has no argument syntax in HF's grammar
        return fail_at(I, n->pos, TV_ERR_INVALID, "test '%s' needs an argument", t);
    else return fail_at(I, n->pos, TV_ERR_UNSUPPORTED, "Unknown test: %s", t);
    return vbool(n->flag ? !r : r);
}

// Named test with an argument (selectattr/rejectattr): returns -1 on error.
static int named_test2(interp *I, const char *t, value a, value b, uint32_t pos) {
    if (!strcmp(t, "equalto") || !strcmp(t, "eq")) return strict_eq(a, b);
    tpl_node fake = {0};
    fake.kind = N_TEST; fake.s = t; fake.slen = strlen(t); fake.pos = pos;
    value r = apply_test(I, a, &fake);
    if (I->failed) return -1;
    return r.u.b;
}

// The test names apply_test knows (selectattr/rejectattr validate theirs up front).
static bool is_known_test(const char *t) {
    static const char *KNOWN[] = {"boolean", "callable", "odd", "even", "false", "true", "none", "string",
                                  "number", "integer", "iterable", "mapping", "sequence", "lower", "upper",
                                  "defined", "undefined"};
    for (size_t k = 0; k < sizeof KNOWN / sizeof KNOWN[0]; k++)
        if (!strcmp(t, KNOWN[k])) return true;
    return false;
}

// ---- filter helpers ----
static value parse_int_js(interp *I, const tstr *s, value dflt, bool *nan) {   // parseInt(s, 10)
    (void)I;
    size_t i = 0;
    while (i < s->n) { size_t j = i; if (!tpl_is_js_space(tpl_utf8_next(s->s, s->n, &j))) break; i = j; }
    bool neg = false;
    if (i < s->n && (s->s[i] == '+' || s->s[i] == '-')) neg = s->s[i++] == '-';
    size_t st = i;
    double v = 0;
    while (i < s->n && s->s[i] >= '0' && s->s[i] <= '9') v = v * 10 + (s->s[i++] - '0');
    *nan = i == st;
    if (*nan) return dflt;
    if (neg) v = -v;
    if (v > 9.2e18 || v < -9.2e18) return vfloat(v);
    return vint((int64_t)v);
}

static value parse_float_js(const tstr *s, value dflt) {          // parseFloat(s)
    size_t i = 0;
    while (i < s->n) { size_t j = i; if (!tpl_is_js_space(tpl_utf8_next(s->s, s->n, &j))) break; i = j; }
    const char *p = s->s + i;
    if (!strncmp(p, "Infinity", 8) || !strncmp(p, "+Infinity", 9)) return vfloat(INFINITY);
    if (!strncmp(p, "-Infinity", 9)) return vfloat(-INFINITY);
    // decimal only: [+-]digits[.digits][e[+-]digits]
    size_t k = 0, n = s->n - i;
    if (k < n && (p[k] == '+' || p[k] == '-')) k++;
    size_t d0 = k;
    while (k < n && p[k] >= '0' && p[k] <= '9') k++;
    size_t nd = k - d0;
    if (k < n && p[k] == '.') { k++; size_t f0 = k; while (k < n && p[k] >= '0' && p[k] <= '9') k++; nd += k - f0; }
    if (nd == 0) return dflt;
    if (k < n && (p[k] == 'e' || p[k] == 'E')) {
        size_t k2 = k + 1;
        if (k2 < n && (p[k2] == '+' || p[k2] == '-')) k2++;
        size_t e0 = k2;
        while (k2 < n && p[k2] >= '0' && p[k2] <= '9') k2++;
        if (k2 > e0) k = k2;
    }
    char buf[400];
    if (k >= sizeof buf) k = sizeof buf - 1;
    memcpy(buf, p, k); buf[k] = 0;
    return vfloat(strtod(buf, NULL));
}

static value call_builtin(interp *I, const vfunc *f, const args_t *a, uint32_t pos);

static value filter_indent(interp *I, const tstr *s, int64_t width, bool first, bool blank, uint32_t pos) {
    sbuf b = {0};
    size_t line = 0, i = 0;
    for (;;) {
        const char *nl = memchr(s->s + i, '\n', s->n - i);
        size_t e = nl ? (size_t)(nl - s->s) : s->n;
        bool empty = e == i;
        if (!((!first && line == 0) || (!blank && empty)))
            for (int64_t k = 0; k < width && k < 10000; k++) sb_put(&b, " ", 1);
        sb_put(&b, s->s + i, e - i);
        if (!nl) break;
        sb_put(&b, "\n", 1);
        i = e + 1;
        line++;
    }
    return sb_finish(I, &b, pos);
}

static value make_items(interp *I, const vdict *d, uint32_t pos) {
    vlist *l = list_new(I, d->n);
    if (!l) return OOM(I, pos);
    for (size_t i = 0; i < d->n; i++) {
        vlist *pair = list_new(I, 2);
        if (!pair) return OOM(I, pos);
        pair->v[0] = dict_key(d, i); pair->v[1] = d->v[i]; pair->n = 2;
        l->v[i] = vlist_of(pair, V_LIST);
    }
    l->n = d->n;
    return vlist_of(l, V_LIST);
}

// ---- filters: `x | name` (bare) and `x | name(args)` (call), looked up in FILTERS ----
//
// An entry names the form(s) it serves, the value types it accepts (checked before its arguments are
// evaluated, as HF does) and how its arguments arrive: `params` binds positional-or-keyword
// arguments to c->arg[i] (`kw_only` binds keywords only); `raw` hands the handler the unevaluated
// argument nodes. A name the value's type does not accept fails like HF: "Unknown ArrayValue filter:
// x" for the types HF dispatches on in that form, else "Cannot apply filter "x" to type: t".

typedef struct filter_def filter_def;
typedef struct {
    const filter_def *def;
    const char *name;
    uint32_t pos;
    const tpl_nodes *argn;   // call form: the argument nodes; bare form: NULL
    env *e;
    args_t a;                // evaluated arguments (empty for the bare form and for raw entries)
    value arg[4];            // a bound to the entry's params; UNDEF where absent
} filter_call;

typedef value (*filter_fn)(interp *I, value v, filter_call *c);

enum { FORM_BARE = 1, FORM_CALL = 2, FORM_BOTH = 3 };
#define T_BIT(t) (1u << (t))
#define T_UNDEF T_BIT(V_UNDEF)
#define T_BOOL T_BIT(V_BOOL)
#define T_NUM (T_BIT(V_INT) | T_BIT(V_FLOAT))
#define T_STR T_BIT(V_STR)
#define T_LIST (T_BIT(V_LIST) | T_BIT(V_TUPLE))
#define T_DICT (T_BIT(V_DICT) | T_BIT(V_KWARGS))
#define T_ANY 0xffffffffu

struct filter_def {
    const char *name;
    uint8_t forms;           // FORM_*
    uint32_t types;          // T_* mask of accepted value types
    bool raw, kw_only;
    const char *params[4];   // names of c->arg[0..3]; NULL: unused
    filter_fn fn;
};

static value cannot_apply(interp *I, const filter_call *c, value v) {
    return fail_at(I, c->pos, TV_ERR_UNSUPPORTED, "Cannot apply filter \"%s\" to type: %s", c->name, type_name(v.t));
}

// Evaluates the call's arguments and binds them to the entry's params.
static bool filter_bind(interp *I, filter_call *c) {
    const filter_def *d = c->def;
    if (!eval_args(I, c->argn, c->e, &c->a, c->pos)) return false;
    for (size_t i = 0; i < 4; i++)
        if (d->params[i]) c->arg[i] = d->kw_only ? kwget(c->a.kw, d->params[i]) : arg_or_kw(&c->a, i, d->params[i]);
    return true;
}

// Undefined operands of the string-ish filters read as Jinja2's Undefined: "" (extension: HF raises).
static value undef_as_empty(interp *I, const filter_call *c) {
    I->py = true;
    return vstr_n(I, "", 0, c->pos);
}

static value f_safe(interp *I, value v, filter_call *c) { return v; }

static value f_tojson(interp *I, value v, filter_call *c) {
    value ind = c->arg[0], ea = c->arg[1], sk = c->arg[2], sep = c->arg[3];
    uint32_t pos = c->pos;
    json_opts o = {0, false, false, true, NULL, NULL};
    if (ind.t == V_INT) o.indent = (int)(ind.u.i > 64 ? 64 : ind.u.i < 0 ? 0 : ind.u.i);
    else if (ind.t != V_UNDEF && ind.t != V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "If set, indent must be a number");
    if (ea.t == V_BOOL) o.ensure_ascii = ea.u.b;
    else if (ea.t != V_UNDEF) return fail_at(I, pos, TV_ERR_INVALID, "If set, ensure_ascii must be a boolean");
    if (sk.t == V_BOOL) o.sort_keys = sk.u.b;
    else if (sk.t != V_UNDEF) return fail_at(I, pos, TV_ERR_INVALID, "If set, sort_keys must be a boolean");
    if (is_list(sep)) {
        if (sep.u.l->n != 2 || sep.u.l->v[0].t != V_STR || sep.u.l->v[1].t != V_STR)
            return fail_at(I, pos, TV_ERR_INVALID, "separators must be a tuple of two strings");
        o.item_sep = sep.u.l->v[0].u.s->s; o.key_sep = sep.u.l->v[1].u.s->s;
    } else if (sep.t != V_UNDEF && sep.t != V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "If set, separators must be a tuple of two strings");
    return json_value(I, v, o, pos);
}

static value f_trim(interp *I, value v, filter_call *c) {
    return v.t == V_UNDEF ? undef_as_empty(I, c) : str_trim(I, v.u.s, true, true, c->pos);
}
static value f_upper(interp *I, value v, filter_call *c) {
    return v.t == V_UNDEF ? undef_as_empty(I, c) : str_case(I, v.u.s, 0, c->pos);
}
static value f_lower(interp *I, value v, filter_call *c) {
    return v.t == V_UNDEF ? undef_as_empty(I, c) : str_case(I, v.u.s, 1, c->pos);
}
static value f_title(interp *I, value v, filter_call *c) {
    return v.t == V_UNDEF ? undef_as_empty(I, c) : str_title(I, v.u.s, c->pos);
}
static value f_capitalize(interp *I, value v, filter_call *c) {
    return v.t == V_UNDEF ? undef_as_empty(I, c) : str_capitalize(I, v.u.s, c->pos);
}

static value f_string(interp *I, value v, filter_call *c) {
    switch (v.t) {
        case V_UNDEF: return undef_as_empty(I, c);
        case V_STR: return v;
        case V_BOOL: return vstr(I, v.u.b ? "true" : "false", c->pos);
        case V_INT: case V_FLOAT: { sbuf b = {0}; print_value(I, &b, v, c->pos); return sb_finish(I, &b, c->pos); }
        default: { json_opts o = {0, false, false, false, NULL, NULL}; return json_value(I, v, o, c->pos); }   // lists
    }
}

// Array.join: none/undefined items read as "".
static value join_list(interp *I, const vlist *l, const tstr *sep, uint32_t pos) {
    sbuf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        if (i && sep) sb_put(&b, sep->s, sep->n);
        value x = l->v[i];
        if (x.t != V_NONE && x.t != V_UNDEF && !js_string(I, &b, x, pos)) { strbuf_free(&b.b); return UNDEF; }
    }
    return sb_finish(I, &b, pos);
}

static value f_join(interp *I, value v, filter_call *c) {   // bare: no separator; a string is itself
    if (v.t == V_UNDEF) return undef_as_empty(I, c);
    return v.t == V_STR ? v : join_list(I, v.u.l, NULL, c->pos);
}

static value f_join_call(interp *I, value v, filter_call *c) {   // join(separator=""): raw, HF checks the type first
    if (v.t != V_STR && !is_list(v)) return cannot_apply(I, c, v);
    if (!filter_bind(I, c)) return UNDEF;
    value sep = c->arg[0];
    if (sep.t == V_UNDEF) sep = vstr(I, "", c->pos);
    CK(sep);
    if (sep.t != V_STR) return fail_at(I, c->pos, TV_ERR_INVALID, "separator must be a string");
    if (is_list(v)) return join_list(I, v.u.l, sep.u.s, c->pos);
    sbuf b = {0};   // a string joins its code points
    for (size_t i = 0; i < v.u.s->n;) {
        if (i) sb_put(&b, sep.u.s->s, sep.u.s->n);
        size_t st = i;
        tpl_utf8_next(v.u.s->s, v.u.s->n, &i);
        sb_put(&b, v.u.s->s + st, i - st);
    }
    return sb_finish(I, &b, c->pos);
}

static value f_length(interp *I, value v, filter_call *c) {
    switch (v.t) {
        case V_UNDEF: I->py = true; return vint(0);
        case V_STR: return vint((int64_t)cp_count(v.u.s->s, v.u.s->n));
        case V_DICT: case V_KWARGS: return vint((int64_t)v.u.d->n);
        default: return vint((int64_t)v.u.l->n);
    }
}

static value f_list(interp *I, value v, filter_call *c) {
    if (v.t != V_UNDEF) return v;
    I->py = true;
    vlist *l = list_new(I, 0);
    return l ? vlist_of(l, V_LIST) : OOM(I, c->pos);
}

static value f_first(interp *I, value v, filter_call *c) { return v.u.l->n ? v.u.l->v[0] : UNDEF; }
static value f_last(interp *I, value v, filter_call *c) { return v.u.l->n ? v.u.l->v[v.u.l->n - 1] : UNDEF; }

static value f_reverse(interp *I, value v, filter_call *c) {
    const vlist *l = v.u.l;
    vlist *r = list_new(I, l->n);
    if (!r) return OOM(I, c->pos);
    for (size_t i = 0; i < l->n; i++) r->v[i] = l->v[l->n - 1 - i];
    r->n = l->n;
    return vlist_of(r, V_LIST);
}

static value f_minmax(interp *I, value v, filter_call *c) {   // extension (Jinja2: case-insensitive, empty -> undefined)
    const vlist *l = v.u.l;
    bool is_min = c->name[1] == 'i';
    I->py = true;
    if (l->n == 0) return UNDEF;
    value best = l->v[0];
    for (size_t i = 1; i < l->n; i++) {
        int cmp = compare_values(I, l->v[i], best, false, c->pos);
        if (I->failed) return UNDEF;
        if (is_min ? cmp < 0 : cmp > 0) best = l->v[i];
    }
    return best;
}

static value f_unique(interp *I, value v, filter_call *c) {
    const vlist *l = v.u.l;
    vlist *r = list_new(I, l->n);
    if (!r) return OOM(I, c->pos);
    for (size_t i = 0; i < l->n; i++) {
        if (!step(I, c->pos)) return UNDEF;
        I->steps += r->n / 16;   // quadratic: charge the comparisons
        bool seen = false;
        for (size_t j = 0; j < r->n && !seen; j++) seen = strict_eq(r->v[j], l->v[i]);
        if (!seen) r->v[r->n++] = l->v[i];
    }
    return vlist_of(r, V_LIST);
}

static value f_sort(interp *I, value v, filter_call *c) {   // sort(reverse=false, case_sensitive=false, attribute=none)
    const vlist *l = v.u.l;
    uint32_t pos = c->pos;
    value rev = c->arg[0], cs = c->arg[1], attr = c->arg[2];
    if (rev.t == V_UNDEF) rev = vbool(false);
    if (cs.t == V_UNDEF) cs = vbool(false);
    if (attr.t == V_UNDEF) attr = NONE;
    if (rev.t != V_BOOL) return fail_at(I, pos, TV_ERR_INVALID, "reverse must be a boolean");
    if (cs.t != V_BOOL) return fail_at(I, pos, TV_ERR_INVALID, "case_sensitive must be a boolean");
    if (attr.t != V_STR && attr.t != V_INT && attr.t != V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "attribute must be a string, integer, or null");
    char path[64];
    const char *ap = NULL;
    if (attr.t == V_STR) ap = attr.u.s->s;
    else if (attr.t == V_INT) { snprintf(path, sizeof path, "%lld", (long long)attr.u.i); ap = path; }
    sort_rec *recs = tpl_alloc(I->a, (l->n + 1) * 2 * sizeof *recs);
    if (!recs) return OOM(I, pos);
    for (size_t i = 0; i < l->n; i++) { recs[i].item = l->v[i]; recs[i].key = ap ? get_attr_path(l->v[i], ap) : l->v[i]; }
    merge_sort(I, recs, recs + l->n + 1, l->n, cs.u.b, rev.u.b, pos);
    CK(0);
    vlist *r = list_new(I, l->n);
    if (!r) return OOM(I, pos);
    for (size_t i = 0; i < l->n; i++) r->v[i] = recs[i].item;
    r->n = l->n;
    return vlist_of(r, V_LIST);
}

// selectattr(attr[, test[, value]]) / rejectattr: raw, HF takes the arguments as string literals.
static value f_selectattr(interp *I, value v, filter_call *c) {
    const vlist *l = v.u.l;
    const tpl_nodes *args = c->argn;
    uint32_t pos = c->pos;
    bool sel = c->name[0] == 's';
    for (size_t i = 0; i < l->n; i++)
        if (!is_attr_container(l->v[i])) return fail_at(I, pos, TV_ERR_INVALID, "`%s` can only be applied to array of objects", c->name);
    for (size_t i = 0; i < args->n; i++)
        if (args->v[i]->kind != N_STR) return fail_at(I, pos, TV_ERR_INVALID, "arguments of `%s` must be strings", c->name);
    if (args->n == 0) return fail_at(I, pos, TV_ERR_INVALID, "`%s` needs an attribute name", c->name);
    const tpl_node *an = args->v[0];
    const char *test = args->n > 1 ? args->v[1]->s : NULL;
    value tv = UNDEF;
    if (args->n > 2) tv = vstr_n(I, args->v[2]->s, args->v[2]->slen, pos);
    CK(tv);
    if (test && strcmp(test, "equalto") && strcmp(test, "eq") && !is_known_test(test))   // validate the name once
        return fail_at(I, pos, TV_ERR_UNSUPPORTED, "Unknown test: %s", test);
    vlist *r = list_new(I, l->n);
    if (!r) return OOM(I, pos);
    for (size_t i = 0; i < l->n; i++) {
        value *x = dict_find(l->v[i].u.d, an->s, an->slen);
        bool res = false;
        if (x) {
            if (test) { int t = named_test2(I, test, *x, tv, pos); if (t < 0) return UNDEF; res = t; }
            else res = truthy(*x);
        }
        if (res == sel) r->v[r->n++] = l->v[i];
    }
    return vlist_of(r, V_LIST);
}

static value f_map(interp *I, value v, filter_call *c) {   // map(attribute=..., default=...)
    const vlist *l = v.u.l;
    uint32_t pos = c->pos;
    value *attr = dict_find(c->a.kw, "attribute", 9);
    if (!attr) return fail_at(I, pos, TV_ERR_UNSUPPORTED, "`map` expressions without `attribute` set are not currently supported.");
    if (attr->t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "attribute must be a string");
    value *dflt = dict_find(c->a.kw, "default", 7);
    vlist *r = list_new(I, l->n);
    if (!r) return OOM(I, pos);
    for (size_t i = 0; i < l->n; i++) {
        if (!is_attr_container(l->v[i])) return fail_at(I, pos, TV_ERR_INVALID, "items in map must be an object");
        value x = get_attr_path(l->v[i], attr->u.s->s);
        r->v[i] = x.t == V_UNDEF && dflt ? *dflt : x;
    }
    r->n = l->n;
    return vlist_of(r, V_LIST);
}

static value f_indent(interp *I, value v, filter_call *c) {   // indent(width=4, first=false, blank=false)
    value w = c->arg[0];
    if (w.t == V_UNDEF) w = vint(4);
    if (w.t != V_INT) return fail_at(I, c->pos, TV_ERR_INVALID, "width must be a number");
    return filter_indent(I, v.u.s, w.u.i, truthy(c->arg[1]), truthy(c->arg[2]), c->pos);
}

static value f_replace(interp *I, value v, filter_call *c) {   // str.replace(old, new[, count])
    vfunc fb = {F_BUILTIN, B_S_REPLACE, v, NULL, NULL};
    return call_builtin(I, &fb, &c->a, c->pos);
}

static value f_int(interp *I, value v, filter_call *c) {   // bare: floats floor
    if (v.t == V_STR) { bool nan; return parse_int_js(I, v.u.s, vint(0), &nan); }
    if (v.t == V_BOOL) return vint(v.u.b);
    if (v.t == V_INT) return v;
    double d = floor(v.u.f);
    if (!(d > -9.2e18 && d < 9.2e18)) return fail_at(I, c->pos, TV_ERR_RANGE, "int: value out of range");
    return vint((int64_t)d);
}

static value f_float(interp *I, value v, filter_call *c) {
    if (v.t == V_STR) return parse_float_js(v.u.s, vfloat(0));
    return vfloat(v.t == V_BOOL ? (double)v.u.b : num(v));
}

static value f_int_float_call(interp *I, value v, filter_call *c) {   // int(default=0) / float(default=0.0): numbers pass through
    bool is_int = c->name[0] == 'i';
    value d = c->arg[0];
    if (d.t == V_UNDEF) d = is_int ? vint(0) : vfloat(0);
    if (v.t == V_STR) {
        if (is_int) { bool nan; return parse_int_js(I, v.u.s, d, &nan); }
        return parse_float_js(v.u.s, d);
    }
    if (is_num(v)) return v;
    if (v.t == V_BOOL) return is_int ? vint(v.u.b) : vfloat(v.u.b);
    return cannot_apply(I, c, v);
}

static value f_abs(interp *I, value v, filter_call *c) {
    return v.t == V_INT ? vint(v.u.i < 0 ? -v.u.i : v.u.i) : vfloat(fabs(v.u.f));
}

static value f_bool(interp *I, value v, filter_call *c) { return v; }

static value f_default(interp *I, value v, filter_call *c) {   // default(value="", boolean=false)
    value d = c->a.n_pos > 0 ? c->a.pos[0] : vstr(I, "", c->pos);
    CK(d);
    value bv = c->arg[1];
    if (bv.t == V_UNDEF) bv = vbool(false);
    if (bv.t != V_BOOL) return fail_at(I, c->pos, TV_ERR_INVALID, "`default` filter flag must be a boolean");
    if (v.t == V_UNDEF || (bv.u.b && !truthy(v))) return d;
    return v;
}

// The dict methods (d.get(...), d.items(), ...), also reachable as filters.
static const struct { const char *name; builtin_id id; } DICT_METHODS[] = {
    {"get", B_D_GET}, {"items", B_D_ITEMS}, {"keys", B_D_KEYS}, {"values", B_D_VALUES}, {"dictsort", B_D_DICTSORT}};

static bool dict_method(const char *name, builtin_id *id) {
    for (size_t i = 0; i < sizeof DICT_METHODS / sizeof DICT_METHODS[0]; i++)
        if (!strcmp(name, DICT_METHODS[i].name)) { *id = DICT_METHODS[i].id; return true; }
    return false;
}

static value f_dict_method(interp *I, value v, filter_call *c) {
    builtin_id id = B_D_GET;
    dict_method(c->name, &id);
    vfunc fb = {F_BUILTIN, id, v, NULL, NULL};
    return call_builtin(I, &fb, &c->a, c->pos);
}

static const filter_def FILTERS[] = {
    // name          forms      accepts                                   raw    kw_only params                                                fn
    {"safe",         FORM_BARE, T_ANY,                                    false, false, {0},                                                   f_safe},
    {"tojson",       FORM_BOTH, T_ANY,                                    false, true,  {"indent", "ensure_ascii", "sort_keys", "separators"}, f_tojson},
    {"default",      FORM_CALL, T_ANY,                                    false, false, {NULL, "boolean"},                                     f_default},
    {"trim",         FORM_BARE, T_UNDEF | T_STR,                          false, false, {0},                                                   f_trim},
    {"upper",        FORM_BARE, T_UNDEF | T_STR,                          false, false, {0},                                                   f_upper},
    {"lower",        FORM_BARE, T_UNDEF | T_STR,                          false, false, {0},                                                   f_lower},
    {"title",        FORM_BARE, T_UNDEF | T_STR,                          false, false, {0},                                                   f_title},
    {"capitalize",   FORM_BARE, T_UNDEF | T_STR,                          false, false, {0},                                                   f_capitalize},
    {"string",       FORM_BARE, T_UNDEF | T_LIST | T_STR | T_NUM | T_BOOL, false, false, {0},                                                  f_string},
    {"join",         FORM_BARE, T_UNDEF | T_LIST | T_STR,                 false, false, {0},                                                   f_join},
    {"join",         FORM_CALL, T_ANY,                                    true,  false, {"separator"},                                         f_join_call},
    {"length",       FORM_BARE, T_UNDEF | T_LIST | T_STR | T_DICT,        false, false, {0},                                                   f_length},
    {"list",         FORM_BARE, T_UNDEF | T_LIST,                         false, false, {0},                                                   f_list},
    {"first",        FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_first},
    {"last",         FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_last},
    {"reverse",      FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_reverse},
    {"min",          FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_minmax},
    {"max",          FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_minmax},
    {"unique",       FORM_BARE, T_LIST,                                   false, false, {0},                                                   f_unique},
    {"sort",         FORM_BOTH, T_LIST,                                   false, false, {"reverse", "case_sensitive", "attribute"},            f_sort},
    {"selectattr",   FORM_CALL, T_LIST,                                   true,  false, {0},                                                   f_selectattr},
    {"rejectattr",   FORM_CALL, T_LIST,                                   true,  false, {0},                                                   f_selectattr},
    {"map",          FORM_CALL, T_LIST,                                   false, false, {0},                                                   f_map},
    {"indent",       FORM_BOTH, T_STR,                                    false, false, {"width", "first", "blank"},                           f_indent},
    {"replace",      FORM_CALL, T_STR,                                    false, false, {0},                                                   f_replace},
    {"int",          FORM_BARE, T_STR | T_NUM | T_BOOL,                   false, false, {0},                                                   f_int},
    {"float",        FORM_BARE, T_STR | T_NUM | T_BOOL,                   false, false, {0},                                                   f_float},
    {"int",          FORM_CALL, T_ANY,                                    false, false, {"default"},                                           f_int_float_call},
    {"float",        FORM_CALL, T_ANY,                                    false, false, {"default"},                                           f_int_float_call},
    {"abs",          FORM_BARE, T_NUM,                                    false, false, {0},                                                   f_abs},
    {"bool",         FORM_BARE, T_BOOL,                                   false, false, {0},                                                   f_bool},
    {"get",          FORM_BOTH, T_DICT,                                   false, false, {0},                                                   f_dict_method},
    {"items",        FORM_BOTH, T_DICT,                                   false, false, {0},                                                   f_dict_method},
    {"keys",         FORM_BOTH, T_DICT,                                   false, false, {0},                                                   f_dict_method},
    {"values",       FORM_BOTH, T_DICT,                                   false, false, {0},                                                   f_dict_method},
    {"dictsort",     FORM_BOTH, T_DICT,                                   false, false, {0},                                                   f_dict_method},
};

// The value families HF dispatches filters on ("ArrayValue", ...); NULL where it has none in that form.
static const char *filter_family(vtype t, bool is_call) {
    if (t == V_LIST || t == V_TUPLE) return "ArrayValue";
    if (t == V_STR) return "StringValue";
    if (t == V_DICT || t == V_KWARGS) return "ObjectValue";
    if (is_call) return NULL;
    if (t == V_INT || t == V_FLOAT) return "NumericValue";
    if (t == V_BOOL) return "BooleanValue";
    return NULL;
}

static value apply_filter(interp *I, value v, const tpl_node *fn, env *e) {
    bool is_call = fn->kind == N_CALL;
    if (is_call ? fn->a->kind != N_IDENT : fn->kind != N_IDENT) return fail_at(I, fn->pos, TV_ERR_UNSUPPORTED, "Unknown filter");
    filter_call c = {NULL, is_call ? fn->a->s : fn->s, fn->pos, is_call ? &fn->list : NULL, e, {NULL, 0, NULL}, {UNDEF, UNDEF, UNDEF, UNDEF}};
    const filter_def *d = NULL;
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0] && !d; i++)
        if ((FILTERS[i].forms & (is_call ? FORM_CALL : FORM_BARE)) && !strcmp(FILTERS[i].name, c.name)) d = &FILTERS[i];
    c.def = d;
    if (!d || !(d->types & T_BIT(v.t))) {
        const char *family = filter_family(v.t, is_call);
        if (family) return fail_at(I, c.pos, TV_ERR_UNSUPPORTED, "Unknown %s filter: %s", family, c.name);
        return cannot_apply(I, &c, v);
    }
    if (is_call && !d->raw && !filter_bind(I, &c)) return UNDEF;
    return d->fn(I, v, &c);
}

// ---- builtin functions and methods ----
static value strftime_now(interp *I, const tstr *fmt, uint32_t pos) {
    static const char *MON[] = {"January", "February", "March", "April", "May", "June", "July", "August",
                                "September", "October", "November", "December"};
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    sbuf b = {0};
    char nb[32];
    for (size_t i = 0; i < fmt->n; i++) {
        char c = fmt->s[i];
        if (c != '%' || i + 1 >= fmt->n) { sb_put(&b, &c, 1); continue; }
        char d = fmt->s[i + 1];
        switch (d) {
            case 'Y': snprintf(nb, sizeof nb, "%d", tm.tm_year + 1900); break;
            case 'm': snprintf(nb, sizeof nb, "%02d", tm.tm_mon + 1); break;
            case 'd': snprintf(nb, sizeof nb, "%02d", tm.tm_mday); break;
            case 'b': snprintf(nb, sizeof nb, "%.3s", MON[tm.tm_mon]); break;
            case 'B': snprintf(nb, sizeof nb, "%s", MON[tm.tm_mon]); break;
            case 'H': snprintf(nb, sizeof nb, "%02d", tm.tm_hour); break;
            case 'M': snprintf(nb, sizeof nb, "%02d", tm.tm_min); break;
            case '%': snprintf(nb, sizeof nb, "%%"); break;
            default: nb[0] = '%'; nb[1] = d; nb[2] = 0; break;
        }
        sb_puts(&b, nb);
        i++;
    }
    return sb_finish(I, &b, pos);
}

// Python str.format (extension: @huggingface/jinja has no str.format): "{}", "{0}", "{name}",
// "{{" and "}}"; no format specs or conversions. Values print as {{ }} prints them.
static value str_format(interp *I, const tstr *s, const args_t *a, uint32_t pos) {
    I->py = true;
    sbuf b = {0};
    size_t auto_idx = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c = s->s[i];
        if (c == '}') {
            if (i + 1 < s->n && s->s[i + 1] == '}') { sb_put(&b, "}", 1); i++; continue; }
            strbuf_free(&b.b);
            return fail_at(I, pos, TV_ERR_INVALID, "str.format: single '}' encountered in format string");
        }
        if (c != '{') { sb_put(&b, &c, 1); continue; }
        if (i + 1 < s->n && s->s[i + 1] == '{') { sb_put(&b, "{", 1); i++; continue; }
        const char *close = memchr(s->s + i + 1, '}', s->n - i - 1);
        if (!close) { strbuf_free(&b.b); return fail_at(I, pos, TV_ERR_INVALID, "str.format: single '{' encountered in format string"); }
        const char *f = s->s + i + 1;
        size_t fl = (size_t)(close - f);
        if (memchr(f, ':', fl) || memchr(f, '!', fl) || memchr(f, '[', fl) || memchr(f, '.', fl)) {
            strbuf_free(&b.b);
            return fail_at(I, pos, TV_ERR_UNSUPPORTED, "str.format: format specs and conversions are not supported");
        }
        value v;
        bool digits = fl > 0;
        for (size_t k = 0; k < fl; k++) digits &= f[k] >= '0' && f[k] <= '9';
        if (fl == 0 || digits) {
            size_t idx = fl == 0 ? auto_idx++ : (size_t)strtoul(f, NULL, 10);
            if (idx >= a->n_pos) { strbuf_free(&b.b); return fail_at(I, pos, TV_ERR_INVALID, "str.format: replacement index %zu out of range", idx); }
            v = a->pos[idx];
        } else {
            value *x = a->kw ? dict_find(a->kw, f, fl) : NULL;
            if (!x) { strbuf_free(&b.b); return fail_at(I, pos, TV_ERR_INVALID, "str.format: missing keyword argument '%.*s'", (int)fl, f); }
            v = *x;
        }
        if (!print_value(I, &b, v, pos)) { strbuf_free(&b.b); return UNDEF; }
        i = (size_t)(close - s->s);
    }
    return sb_finish(I, &b, pos);
}

static value call_builtin(interp *I, const vfunc *f, const args_t *a, uint32_t pos) {
    value self = f->self;
    value a0 = a->n_pos > 0 ? a->pos[0] : UNDEF;
    switch (f->id) {
        case B_NAMESPACE: {
            if (a->n_pos > 1) return fail_at(I, pos, TV_ERR_INVALID, "namespace expected at most 1 argument, got %zu", a->n_pos);
            vdict *d = dict_new(I);
            if (!d) return OOM(I, pos);
            if (a->n_pos == 1) {
                if (is_dict(a0)) { for (size_t i = 0; i < a0.u.d->n; i++) if (!dict_copy_entry(I, d, a0.u.d, i)) return OOM(I, pos); }
                else if (is_list(a0)) {
                    for (size_t i = 0; i < a0.u.l->n; i++) {
                        value pr = a0.u.l->v[i];
                        if (!is_list(pr) || pr.u.l->n != 2) return fail_at(I, pos, TV_ERR_INVALID, "namespace expected an object or an iterable of [key, value] pairs");
                        if (pr.u.l->v[0].t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "namespace keys must be strings");
                        if (!dict_set(I, d, pr.u.l->v[0].u.s, pr.u.l->v[1])) return OOM(I, pos);
                    }
                } else return fail_at(I, pos, TV_ERR_INVALID, "'%s' object is not iterable", type_name(a0.t));
            }
            if (a->kw) for (size_t i = 0; i < a->kw->n; i++) if (!dict_set(I, d, a->kw->k[i], a->kw->v[i])) return OOM(I, pos);
            return vdict_of(d, V_NS);
        }
        case B_RAISE: {
            sbuf b = {0};
            if (a0.t != V_UNDEF) js_string(I, &b, a0, pos);   // new Error(undefined) has an empty message
            fail_at(I, pos, TV_ERR_INVALID, "raise_exception: %s", b.b.p ? b.b.p : "");
            strbuf_free(&b.b);
            return UNDEF;
        }
        case B_RANGE: {
            value x = a0, y = a->n_pos > 1 ? a->pos[1] : UNDEF, z = a->n_pos > 2 ? a->pos[2] : UNDEF;
            if (!is_num(x) || (y.t != V_UNDEF && !is_num(y)) || (z.t != V_UNDEF && !is_num(z)))
                return fail_at(I, pos, TV_ERR_INVALID, "range() arguments must be numbers");
            double start = 0, stop, st = 1;
            if (y.t == V_UNDEF) stop = num(x); else { start = num(x); stop = num(y); }
            if (z.t != V_UNDEF) st = num(z);
            if (st == 0) return fail_at(I, pos, TV_ERR_INVALID, "range() step must not be zero");
            vlist *l = list_new(I, 0);
            if (!l) return OOM(I, pos);
            for (double i = start; st > 0 ? i < stop : i > stop; i += st) {
                if (l->n >= MAX_RANGE) return fail_at(I, pos, TV_ERR_RANGE, "range() longer than %d", MAX_RANGE);
                value iv = i == floor(i) && fabs(i) < 9e15 ? vint((int64_t)i) : vfloat(i);
                if (!list_push(I, l, iv)) return OOM(I, pos);
            }
            return vlist_of(l, V_LIST);
        }
        case B_STRFTIME:
            if (a0.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "strftime_now() needs a format string");
            return strftime_now(I, a0.u.s, pos);
        default: break;
    }
    if (f->id >= B_S_UPPER && f->id <= B_S_FORMAT) {
        const tstr *s = self.u.s;
        switch (f->id) {
            case B_S_UPPER: return str_case(I, s, 0, pos);
            case B_S_LOWER: return str_case(I, s, 1, pos);
            case B_S_STRIP: return str_trim(I, s, true, true, pos);
            case B_S_LSTRIP: return str_trim(I, s, true, false, pos);
            case B_S_RSTRIP: return str_trim(I, s, false, true, pos);
            case B_S_TITLE: return str_title(I, s, pos);
            case B_S_CAPITALIZE: return str_capitalize(I, s, pos);
            case B_S_STARTSWITH: case B_S_ENDSWITH: {
                bool sw = f->id == B_S_STARTSWITH;
                if (a->n_pos == 0) return fail_at(I, pos, TV_ERR_INVALID, "%s() requires at least one argument", sw ? "startswith" : "endswith");
                if (a0.t == V_STR) return vbool(sw ? has_prefix(s, a0.u.s) : has_suffix(s, a0.u.s));
                if (is_list(a0)) {
                    for (size_t i = 0; i < a0.u.l->n; i++) {
                        value it = a0.u.l->v[i];
                        if (it.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "%s() tuple elements must be strings", sw ? "startswith" : "endswith");
                        if (sw ? has_prefix(s, it.u.s) : has_suffix(s, it.u.s)) return vbool(true);
                    }
                    return vbool(false);
                }
                return fail_at(I, pos, TV_ERR_INVALID, "%s() argument must be a string or tuple of strings", sw ? "startswith" : "endswith");
            }
            case B_S_SPLIT: {
                value sep = a->n_pos > 0 ? a0 : NONE;
                value ms = a->n_pos > 1 ? a->pos[1] : vint(-1);
                if (sep.t != V_STR && sep.t != V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "sep argument must be a string or null");
                if (ms.t != V_INT) return fail_at(I, pos, TV_ERR_INVALID, "maxsplit argument must be a number");
                vlist *l = list_new(I, 0);
                if (!l) return OOM(I, pos);
                if (sep.t == V_NONE) {
                    size_t i = 0, n = s->n;
                    for (;;) {
                        while (i < n) { size_t j = i; if (!tpl_is_js_space(tpl_utf8_next(s->s, n, &j))) break; i = j; }
                        if (i >= n) break;
                        if (ms.u.i != -1 && (int64_t)l->n >= ms.u.i) {
                            value rest = vstr_n(I, s->s + i, n - i, pos);
                            CK(rest);
                            if (!list_push(I, l, rest)) return OOM(I, pos);
                            break;
                        }
                        size_t st = i;
                        while (i < n) { size_t j = i; if (tpl_is_js_space(tpl_utf8_next(s->s, n, &j))) break; i = j; }
                        value w = vstr_n(I, s->s + st, i - st, pos);
                        CK(w);
                        if (!list_push(I, l, w)) return OOM(I, pos);
                    }
                } else {
                    const tstr *p = sep.u.s;
                    if (p->n == 0) return fail_at(I, pos, TV_ERR_INVALID, "empty separator");
                    size_t i = 0;
                    for (;;) {
                        if (!step(I, pos)) return UNDEF;
                        const char *hit = (ms.u.i == -1 || (int64_t)l->n < ms.u.i) ? memfind(s->s + i, s->n - i, p->s, p->n) : NULL;
                        size_t e = hit ? (size_t)(hit - s->s) : s->n;
                        value w = vstr_n(I, s->s + i, e - i, pos);
                        CK(w);
                        if (!list_push(I, l, w)) return OOM(I, pos);
                        if (!hit) break;
                        i = e + p->n;
                    }
                }
                return vlist_of(l, V_LIST);
            }
            case B_S_FORMAT: return str_format(I, s, a, pos);
            case B_S_REPLACE: {
                if (a->n_pos < 2) return fail_at(I, pos, TV_ERR_INVALID, "replace() requires at least two arguments");
                value o = a->pos[0], nw = a->pos[1];
                if (o.t != V_STR || nw.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "replace() arguments must be strings");
                value cnt = a->n_pos > 2 ? a->pos[2] : kwget(a->kw, "count");
                if (cnt.t == V_UNDEF) cnt = NONE;
                if (cnt.t != V_INT && cnt.t != V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "replace() count argument must be a number or null");
                return str_replace(I, s, o.u.s, nw.u.s, cnt.t == V_INT ? cnt.u.i : -1, pos);
            }
            default: break;
        }
    }
    const vdict *d = self.u.d;
    switch (f->id) {
        case B_D_GET: {
            if (a0.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "Object key must be a string: got %s", type_name(a0.t));
            value *x = dict_find(d, a0.u.s->s, a0.u.s->n);
            if (x) return *x;
            return a->n_pos > 1 ? a->pos[1] : (a->kw && a->kw->n && a->n_pos == 1 ? vdict_of(a->kw, V_KWARGS) : NONE);
        }
        case B_D_ITEMS: return make_items(I, d, pos);
        case B_D_KEYS: {
            vlist *l = list_new(I, d->n);
            if (!l) return OOM(I, pos);
            for (size_t i = 0; i < d->n; i++) l->v[i] = dict_key(d, i);
            l->n = d->n;
            return vlist_of(l, V_LIST);
        }
        case B_D_VALUES: {
            vlist *l = list_new(I, d->n);
            if (!l) return OOM(I, pos);
            for (size_t i = 0; i < d->n; i++) l->v[i] = d->v[i];
            l->n = d->n;
            return vlist_of(l, V_LIST);
        }
        case B_D_DICTSORT: {
            value cs = arg_or_kw(a, 0, "case_sensitive"), by = arg_or_kw(a, 1, "by"), rev = arg_or_kw(a, 2, "reverse");
            if (cs.t == V_UNDEF) cs = vbool(false);
            if (rev.t == V_UNDEF) rev = vbool(false);
            bool by_value = false;
            if (cs.t != V_BOOL) return fail_at(I, pos, TV_ERR_INVALID, "case_sensitive must be a boolean");
            if (by.t != V_UNDEF) {
                if (by.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "by must be a string");
                if (!strcmp(by.u.s->s, "value")) by_value = true;
                else if (strcmp(by.u.s->s, "key")) return fail_at(I, pos, TV_ERR_INVALID, "by must be either 'key' or 'value'");
            }
            if (rev.t != V_BOOL) return fail_at(I, pos, TV_ERR_INVALID, "reverse must be a boolean");
            value items = make_items(I, d, pos);
            CK(items);
            size_t n = d->n;
            sort_rec *recs = tpl_alloc(I->a, (n + 1) * 2 * sizeof *recs);
            if (!recs) return OOM(I, pos);
            for (size_t i = 0; i < n; i++) { recs[i].item = items.u.l->v[i]; recs[i].key = items.u.l->v[i].u.l->v[by_value ? 1 : 0]; }
            merge_sort(I, recs, recs + n + 1, n, cs.u.b, rev.u.b, pos);
            CK(0);
            for (size_t i = 0; i < n; i++) items.u.l->v[i] = recs[i].item;
            return items;
        }
        default: break;
    }
    return fail_at(I, pos, TV_ERR_STATE, "internal: unknown builtin");
}

// ---- macros ----
static bool body_uses(const tpl_node *n, const char *name, int depth) {
    if (!n || depth > 400) return false;
    if (n->kind == N_IDENT) return !strcmp(n->s, name);
    if (body_uses(n->a, name, depth + 1) || body_uses(n->b, name, depth + 1) || body_uses(n->c, name, depth + 1)) return true;
    const tpl_nodes *ls[3] = {&n->list, &n->body, &n->alt};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < ls[k]->n; i++) if (body_uses(ls[k]->v[i], name, depth + 1)) return true;
    return false;
}

static bool params_have(const tpl_nodes *params, const char *name) {
    for (size_t i = 0; i < params->n; i++) {
        const tpl_node *p = params->v[i]->kind == N_IDENT ? params->v[i] : params->v[i]->a;
        if (!strcmp(p->s, name)) return true;
    }
    return false;
}

static bool uses_special(const tpl_nodes *params, const tpl_nodes *body, const char *name) {
    if (params_have(params, name)) return false;
    for (size_t i = 0; i < body->n; i++) if (body_uses(body->v[i], name, 0)) return true;
    return false;
}

static bool bind_macro_args(interp *I, const char *display, const tpl_nodes *params, const tpl_nodes *body,
                            const args_t *a, env *scope, uint32_t pos) {
    vdict *kw = dict_new(I);
    if (!kw) { OOM(I, pos); return false; }
    if (a->kw) for (size_t i = 0; i < a->kw->n; i++) if (!dict_set(I, kw, a->kw->k[i], a->kw->v[i])) { OOM(I, pos); return false; }
    const tpl_node *pending[256];
    size_t n_pending = 0;
    for (size_t i = 0; i < params->n; i++) {
        const tpl_node *p = params->v[i];
        const tpl_node *name = p->kind == N_IDENT ? p : p->a;
        value v = UNDEF;
        bool have = false;
        if (i < a->n_pos) { v = a->pos[i]; have = true; }
        if (!have) {
            value *x = dict_find(kw, name->s, name->slen);
            if (x) {
                v = *x; have = true;
                // remove from kw
                size_t k = (size_t)(x - kw->v);
                memmove(&kw->k[k], &kw->k[k + 1], (kw->n - k - 1) * sizeof *kw->k);
                memmove(&kw->v[k], &kw->v[k + 1], (kw->n - k - 1) * sizeof *kw->v);
                memmove(&kw->ik[k], &kw->ik[k + 1], kw->n - k - 1);
                kw->ht = NULL; kw->hcap = 0;   // indices moved: fall back to a scan (rebuilt on the next insert)
                kw->n--;
            }
        }
        if (!have && p->kind == N_KWARG) {
            if (n_pending >= 256) { fail_at(I, pos, TV_ERR_RANGE, "too many macro parameters"); return false; }
            pending[n_pending++] = p;
        }
        if (!env_set(I, scope, name->s, name->slen, v)) { OOM(I, pos); return false; }
    }
    if (uses_special(params, body, "kwargs")) {
        if (!env_set(I, scope, "kwargs", 6, vdict_of(kw, V_DICT))) { OOM(I, pos); return false; }
    } else if (kw->n > 0) {
        fail_at(I, pos, TV_ERR_INVALID, "macro %s takes no keyword argument '%s'", display, kw->k[0]->s);
        return false;
    }
    if (uses_special(params, body, "varargs")) {
        vlist *l = list_new(I, 0);
        if (!l) { OOM(I, pos); return false; }
        for (size_t i = params->n; i < a->n_pos; i++) if (!list_push(I, l, a->pos[i])) { OOM(I, pos); return false; }
        if (!env_set(I, scope, "varargs", 7, vlist_of(l, V_LIST))) { OOM(I, pos); return false; }
    } else if (a->n_pos > params->n) {
        fail_at(I, pos, TV_ERR_INVALID, "macro %s takes not more than %zu argument(s)", display, params->n);
        return false;
    }
    for (size_t i = 0; i < n_pending; i++) {
        value v = eval(I, pending[i]->b, scope);
        if (I->failed) return false;
        if (!env_set(I, scope, pending[i]->a->s, pending[i]->a->slen, v)) { OOM(I, pos); return false; }
    }
    return true;
}

// Calls fn with args; `callenv` is the environment at the call site (macros scope dynamically, as HF does).
static value call_value(interp *I, value fv, const args_t *a, env *callenv, uint32_t pos) {
    if (fv.t != V_FUNC) return fail_at(I, pos, TV_ERR_INVALID, "Cannot call something that is not a function: got %s", type_name(fv.t));
    const vfunc *f = fv.u.fn;
    if (f->k == F_BUILTIN) return call_builtin(I, f, a, pos);
    if (++I->depth > MAX_DEPTH) { I->depth--; return fail_at(I, pos, TV_ERR_RANGE, "template recursion too deep"); }
    value r;
    if (f->k == F_MACRO) {
        env *scope = env_new(I, callenv);
        if (!scope) { I->depth--; return OOM(I, pos); }
        char disp[80];
        snprintf(disp, sizeof disp, "'%s'", f->node->a->s);
        if (!bind_macro_args(I, disp, &f->node->list, &f->node->body, a, scope, pos)) { I->depth--; return UNDEF; }
        r = exec_block(I, &f->node->body, scope, pos);
    } else {   // caller() of a call block
        env *scope = env_new(I, f->defenv);
        if (!scope) { I->depth--; return OOM(I, pos); }
        if (!bind_macro_args(I, "None", &f->node->list, &f->node->body, a, scope, pos)) { I->depth--; return UNDEF; }
        r = exec_block(I, &f->node->body, scope, pos);
    }
    I->depth--;
    if (!I->failed && I->ctl) { I->ctl = 0; return fail_at(I, pos, TV_ERR_INVALID, "break/continue outside of a loop"); }
    return r;
}

// ---- member access ----
static value member_of(interp *I, value obj, value prop, uint32_t pos) {
    static const struct { const char *name; builtin_id id; } SB[] = {
        {"upper", B_S_UPPER}, {"lower", B_S_LOWER}, {"strip", B_S_STRIP}, {"title", B_S_TITLE},
        {"capitalize", B_S_CAPITALIZE}, {"rstrip", B_S_RSTRIP}, {"lstrip", B_S_LSTRIP},
        {"startswith", B_S_STARTSWITH}, {"endswith", B_S_ENDSWITH}, {"split", B_S_SPLIT}, {"replace", B_S_REPLACE},
        {"format", B_S_FORMAT}};
    if (is_attr_container(obj)) {
        if (prop.t == V_INT) { I->py = true; value *x = dict_find_int(obj.u.d, prop.u.i); return x ? *x : UNDEF; }   // extension
        if (prop.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "Cannot access property with non-string: got %s", type_name(prop.t));
        value *x = dict_find(obj.u.d, prop.u.s->s, prop.u.s->n);
        if (x) return *x;
        builtin_id id;
        if (obj.t != V_NS && dict_method(prop.u.s->s, &id)) return mkfunc(I, F_BUILTIN, id, obj, pos);
        return UNDEF;
    }
    if (is_list(obj) || obj.t == V_STR) {
        if (prop.t == V_INT) {
            int64_t i = prop.u.i;
            if (obj.t == V_STR) {
                int64_t n = (int64_t)cp_count(obj.u.s->s, obj.u.s->n);
                if (i < 0) i += n;
                if (i < 0 || i >= n) return UNDEF;
                size_t k = 0;
                for (int64_t c = 0; c < i; c++) tpl_utf8_next(obj.u.s->s, obj.u.s->n, &k);
                size_t st = k;
                tpl_utf8_next(obj.u.s->s, obj.u.s->n, &k);
                return vstr_n(I, obj.u.s->s + st, k - st, pos);
            }
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i < 0 || i >= n) return UNDEF;
            return obj.u.l->v[i];
        }
        if (prop.t == V_STR) {
            if (!strcmp(prop.u.s->s, "length"))
                return vint(obj.t == V_STR ? (int64_t)cp_count(obj.u.s->s, obj.u.s->n) : (int64_t)obj.u.l->n);
            if (obj.t == V_STR)
                for (size_t i = 0; i < sizeof SB / sizeof SB[0]; i++)
                    if (!strcmp(prop.u.s->s, SB[i].name)) return mkfunc(I, F_BUILTIN, SB[i].id, obj, pos);
            return UNDEF;
        }
        return fail_at(I, pos, TV_ERR_INVALID, "Cannot access property with non-string/non-number: got %s", type_name(prop.t));
    }
    if (prop.t != V_STR) return fail_at(I, pos, TV_ERR_INVALID, "Cannot access property with non-string: got %s", type_name(prop.t));
    return UNDEF;
}

static value eval_slice(interp *I, value obj, const tpl_node *sl, env *e) {
    if (!is_list(obj) && obj.t != V_STR) return fail_at(I, sl->pos, TV_ERR_INVALID, "Slice object must be an array or string");
    value sv[3];
    const tpl_node *sn[3] = {sl->a, sl->b, sl->c};
    for (int k = 0; k < 3; k++) {
        sv[k] = sn[k] ? eval(I, sn[k], e) : UNDEF;
        CK(0);
        if (sv[k].t != V_INT && sv[k].t != V_UNDEF)
            return fail_at(I, sl->pos, TV_ERR_INVALID, "Slice %s must be numeric or undefined", k == 0 ? "start" : k == 1 ? "stop" : "step");
    }
    // element offsets: for strings, code-point byte offsets
    size_t n;
    size_t *offs = NULL;
    if (obj.t == V_STR) {
        n = cp_count(obj.u.s->s, obj.u.s->n);
        offs = tpl_alloc(I->a, (n + 1) * sizeof *offs);
        if (!offs) return OOM(I, sl->pos);
        size_t k = 0;
        for (size_t c = 0; c < n; c++) { offs[c] = k; tpl_utf8_next(obj.u.s->s, obj.u.s->n, &k); }
        offs[n] = obj.u.s->n;
    } else n = obj.u.l->n;
    int64_t len = (int64_t)n, st = sv[2].t == V_INT ? sv[2].u.i : 1;
    int64_t start, stop;
    if (st >= 0) {
        start = sv[0].t == V_INT ? sv[0].u.i : 0;
        start = start < 0 ? (len + start > 0 ? len + start : 0) : (start < len ? start : len);
        stop = sv[1].t == V_INT ? sv[1].u.i : len;
        stop = stop < 0 ? (len + stop > 0 ? len + stop : 0) : (stop < len ? stop : len);
        if (st == 0) {   // JS: direction 0 -> loop never advances; HF would hang. Reject.
            return fail_at(I, sl->pos, TV_ERR_INVALID, "slice step cannot be zero");
        }
    } else {
        start = sv[0].t == V_INT ? sv[0].u.i : len - 1;
        start = start < 0 ? (len + start > -1 ? len + start : -1) : (start < len - 1 ? start : len - 1);
        stop = sv[1].t == V_INT ? sv[1].u.i : -1;
        stop = stop < -1 ? (len + stop > -1 ? len + stop : -1) : (stop < len - 1 ? stop : len - 1);
    }
    int64_t dir = st > 0 ? 1 : -1;
    if (obj.t == V_STR) {
        sbuf b = {0};
        for (int64_t i = start; dir * i < dir * stop; i += st) sb_put(&b, obj.u.s->s + offs[i], offs[i + 1] - offs[i]);
        return sb_finish(I, &b, sl->pos);
    }
    vlist *l = list_new(I, 0);
    if (!l) return OOM(I, sl->pos);
    for (int64_t i = start; dir * i < dir * stop; i += st) if (!list_push(I, l, obj.u.l->v[i])) return OOM(I, sl->pos);
    return vlist_of(l, V_LIST);
}

static value eval_binary(interp *I, const tpl_node *n, env *e) {
    value l = eval(I, n->a, e);
    CK(l);
    if (n->op == OP_AND) return truthy(l) ? eval(I, n->b, e) : l;
    if (n->op == OP_OR) return truthy(l) ? l : eval(I, n->b, e);
    value r = eval(I, n->b, e);
    CK(r);
    uint32_t pos = n->pos;
    if (n->op == OP_EQ) return vbool(loose_eq(l, r));
    if (n->op == OP_NE) return vbool(!loose_eq(l, r));
    static const char *OPS[] = {"", "and", "or", "not", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "+", "-", "~", "*", "/", "//", "%", "**"};
    const char *opname = OPS[n->op];
    if (l.t == V_UNDEF || r.t == V_UNDEF) {
        if (r.t == V_UNDEF && (n->op == OP_IN || n->op == OP_NOTIN)) return vbool(n->op == OP_NOTIN);
        return fail_at(I, pos, TV_ERR_INVALID, "Cannot perform operation %s on undefined values", opname);
    }
    if (l.t == V_NONE || r.t == V_NONE) return fail_at(I, pos, TV_ERR_INVALID, "Cannot perform operation on null values");
    if (n->op == OP_CONCAT) {
        sbuf b = {0};
        if (!js_string(I, &b, l, pos) || !js_string(I, &b, r, pos)) { strbuf_free(&b.b); return UNDEF; }
        return sb_finish(I, &b, pos);
    }
    bool ln = is_num(l) || l.t == V_BOOL, rn = is_num(r) || r.t == V_BOOL;
    if (n->op == OP_POW && ln && rn) {
        double a = num(l), b = num(r);
        if (a == 0 && b < 0) return fail_at(I, pos, TV_ERR_INVALID, "0.0 cannot be raised to a negative power");
        double res = pow(a, b);
        if (!isfinite(res)) return fail_at(I, pos, TV_ERR_INVALID, "Exponentiation result is not a finite real number");
        bool isf = l.t == V_FLOAT || r.t == V_FLOAT || b < 0;
        if (!isf && fabs(res) < 9.2e18) return vint((int64_t)res);
        return vfloat(res);
    }
    if (is_num(l) && is_num(r)) {
        bool isf = l.t == V_FLOAT || r.t == V_FLOAT;
        double a = num(l), b = num(r);
        switch (n->op) {
            case OP_ADD: case OP_SUB: case OP_MUL: {
                if (!isf) {
                    int64_t out;
                    bool ovf = n->op == OP_ADD ? __builtin_add_overflow(l.u.i, r.u.i, &out)
                             : n->op == OP_SUB ? __builtin_sub_overflow(l.u.i, r.u.i, &out)
                                               : __builtin_mul_overflow(l.u.i, r.u.i, &out);
                    if (!ovf) return vint(out);
                    return fail_at(I, pos, TV_ERR_RANGE, "integer overflow");
                }
                return vfloat(n->op == OP_ADD ? a + b : n->op == OP_SUB ? a - b : a * b);
            }
            case OP_DIV:
                if (b == 0) return fail_at(I, pos, TV_ERR_INVALID, "division by zero");
                return vfloat(a / b);
            case OP_FLOORDIV: {
                if (b == 0) return fail_at(I, pos, TV_ERR_INVALID, "division by zero");
                double q = floor(a / b);
                if (!isf && fabs(q) < 9.2e18) return vint((int64_t)q);
                return vfloat(q);
            }
            case OP_MOD: {
                if (b == 0) return fail_at(I, pos, TV_ERR_INVALID, "modulo by zero");
                if (!isf) return vint(r.u.i == -1 ? 0 : l.u.i % r.u.i);   // JS % keeps the dividend's sign
                return vfloat(fmod(a, b));
            }
            case OP_LT: return vbool(a < b);
            case OP_GT: return vbool(a > b);
            case OP_LE: return vbool(a <= b);
            case OP_GE: return vbool(a >= b);
            default: break;
        }
    } else if (is_list(l) && is_list(r)) {
        if (n->op == OP_ADD) {
            vlist *c = list_new(I, l.u.l->n + r.u.l->n);
            if (!c) return OOM(I, pos);
            if (l.u.l->n) memcpy(c->v, l.u.l->v, l.u.l->n * sizeof *c->v);
            if (r.u.l->n) memcpy(c->v + l.u.l->n, r.u.l->v, r.u.l->n * sizeof *c->v);
            c->n = l.u.l->n + r.u.l->n;
            return vlist_of(c, V_LIST);
        }
    } else if (is_list(r)) {
        if (n->op == OP_IN || n->op == OP_NOTIN) {
            I->steps += r.u.l->n / 16;   // charge the scan
            bool m = false;
            for (size_t i = 0; i < r.u.l->n && !m; i++) m = strict_eq(r.u.l->v[i], l);
            return vbool(n->op == OP_IN ? m : !m);
        }
    }
    if ((l.t == V_STR || r.t == V_STR) && n->op == OP_ADD) {
        // HF would splice in "[object Map]"; Python raises TypeError. We raise (never useful text).
        // Once a render relied on a Python-only extension, Python is its reference: str + list raises too.
        if (is_attr_container(l) || is_attr_container(r) || (I->py && (is_list(l) || is_list(r))))
            return fail_at(I, pos, TV_ERR_INVALID, "can only concatenate str (not \"dict\") to str");
        sbuf b = {0};
        if (!js_string(I, &b, l, pos) || !js_string(I, &b, r, pos)) { strbuf_free(&b.b); return UNDEF; }
        return sb_finish(I, &b, pos);
    }
    if (l.t == V_STR && r.t == V_STR && (n->op == OP_IN || n->op == OP_NOTIN)) {
        bool m = memfind(r.u.s->s, r.u.s->n, l.u.s->s, l.u.s->n) != NULL;
        return vbool(n->op == OP_IN ? m : !m);
    }
    if (l.t == V_STR && is_dict(r) && (n->op == OP_IN || n->op == OP_NOTIN)) {
        bool m = dict_find(r.u.d, l.u.s->s, l.u.s->n) != NULL;
        return vbool(n->op == OP_IN ? m : !m);
    }
    return fail_at(I, pos, TV_ERR_INVALID, "Unknown operator \"%s\" between %s and %s", opname, type_name(l.t), type_name(r.t));
}

static value eval(interp *I, const tpl_node *n, env *e) {
    if (I->failed) return UNDEF;
    if (!step(I, n->pos)) return UNDEF;
    if (++I->depth > MAX_DEPTH) { I->depth--; return fail_at(I, n->pos, TV_ERR_RANGE, "template evaluation too deep"); }
    value r = UNDEF;
    switch (n->kind) {
        case N_INT: r = vint(n->i); break;
        case N_FLOAT: r = vfloat(n->f); break;
        case N_STR: r = vstr_n(I, n->s, n->slen, n->pos); break;
        case N_IDENT: r = env_get(e, n->s, n->slen); break;
        case N_ARRAY: case N_TUPLE: {
            vlist *l = list_new(I, n->list.n);
            if (!l) { r = OOM(I, n->pos); break; }
            for (size_t i = 0; i < n->list.n && !I->failed; i++) l->v[l->n++] = eval(I, n->list.v[i], e);
            r = vlist_of(l, n->kind == N_ARRAY ? V_LIST : V_TUPLE);
            break;
        }
        case N_OBJECT: {
            vdict *d = dict_new(I);
            if (!d) { r = OOM(I, n->pos); break; }
            for (size_t i = 0; i < n->list.n && !I->failed; i++) {
                value k = eval(I, n->list.v[i], e);
                if (I->failed) break;
                if (k.t != V_STR && k.t != V_INT) { fail_at(I, n->list.v[i]->pos, TV_ERR_INVALID, "Object keys must be strings: got %s", type_name(k.t)); break; }
                value v = eval(I, n->alt.v[i], e);
                if (I->failed) break;
                const tstr *ks = k.u.s;
                if (k.t == V_INT) {   // extension: integer keys as in Jinja2 (HF raises)
                    I->py = true;
                    char nb[32];
                    int len = snprintf(nb, sizeof nb, "%lld", (long long)k.u.i);
                    if (!(ks = mkstr(I, nb, (size_t)len))) { OOM(I, n->pos); break; }
                }
                if (!dict_set_kind(I, d, ks, k.t == V_INT, v)) { OOM(I, n->pos); break; }
            }
            r = vdict_of(d, V_DICT);
            break;
        }
        case N_MEMBER: {
            value obj = eval(I, n->a, e);
            if (I->failed) break;
            if (n->flag && n->b->kind == N_SLICE) { r = eval_slice(I, obj, n->b, e); break; }
            value prop;
            if (n->flag) prop = eval(I, n->b, e);
            else if (n->b->kind == N_INT) prop = vint(n->b->i);
            else prop = vstr_n(I, n->b->s, n->b->slen, n->pos);
            if (I->failed) break;
            r = member_of(I, obj, prop, n->pos);
            break;
        }
        case N_CALL: {
            args_t a;
            if (!eval_args(I, &n->list, e, &a, n->pos)) break;
            value fv = eval(I, n->a, e);
            if (I->failed) break;
            r = call_value(I, fv, &a, e, n->pos);
            break;
        }
        case N_UNARY: {
            value v = eval(I, n->a, e);
            if (I->failed) break;
            if (n->op == OP_NOT) { r = vbool(!truthy(v)); break; }
            if (v.t == V_INT) {
                if (n->op == OP_SUB && v.u.i == INT64_MIN) { r = fail_at(I, n->pos, TV_ERR_RANGE, "integer overflow"); break; }
                r = vint(n->op == OP_SUB ? -v.u.i : v.u.i);
            } else if (v.t == V_FLOAT) r = vfloat(n->op == OP_SUB ? -v.u.f : v.u.f);
            else if (v.t == V_BOOL) r = vint(n->op == OP_SUB ? -(int64_t)v.u.b : v.u.b);
            else r = fail_at(I, n->pos, TV_ERR_INVALID, "Unknown operator \"%s\" for %s", n->op == OP_SUB ? "-" : "+", type_name(v.t));
            break;
        }
        case N_BINARY: r = eval_binary(I, n, e); break;
        case N_FILTER: {
            value v = eval(I, n->a, e);
            if (I->failed) break;
            r = apply_filter(I, v, n->b, e);
            break;
        }
        case N_TEST: {
            value v = eval(I, n->a, e);
            if (I->failed) break;
            r = apply_test(I, v, n);
            break;
        }
        case N_SELECT: {
            value t = eval(I, n->b, e);
            if (I->failed) break;
            r = truthy(t) ? eval(I, n->a, e) : UNDEF;
            break;
        }
        case N_TERNARY: {
            value c = eval(I, n->a, e);
            if (I->failed) break;
            r = truthy(c) ? eval(I, n->b, e) : eval(I, n->c, e);
            break;
        }
        case N_SLICE: r = fail_at(I, n->pos, TV_ERR_INVALID, "slice outside of a subscript"); break;
        case N_KWARG: case N_SPREAD: case N_KWSPREAD:
            r = fail_at(I, n->pos, TV_ERR_INVALID, "unexpected argument expression"); break;
        default: r = fail_at(I, n->pos, TV_ERR_INVALID, "statement used as an expression"); break;
    }
    I->depth--;
    return I->failed ? UNDEF : r;
}

// ---- statements ----
static bool assign(interp *I, const tpl_node *target, value v, env *e) {
    if (target->kind == N_IDENT) {
        if (!env_set(I, e, target->s, target->slen, v)) { OOM(I, target->pos); return false; }
        return true;
    }
    if (target->kind == N_TUPLE) {
        if (!is_list(v)) { fail_at(I, target->pos, TV_ERR_INVALID, "Cannot unpack non-iterable type in set: %s", type_name(v.t)); return false; }
        if (v.u.l->n != target->list.n) { fail_at(I, target->pos, TV_ERR_INVALID, "Too %s items to unpack in set", target->list.n > v.u.l->n ? "few" : "many"); return false; }
        for (size_t i = 0; i < target->list.n; i++) {
            if (target->list.v[i]->kind != N_IDENT) { fail_at(I, target->pos, TV_ERR_INVALID, "Cannot unpack to non-identifier in set"); return false; }
            if (!env_set(I, e, target->list.v[i]->s, target->list.v[i]->slen, v.u.l->v[i])) { OOM(I, target->pos); return false; }
        }
        return true;
    }
    if (target->kind == N_MEMBER) {
        value obj = eval(I, target->a, e);
        if (I->failed) return false;
        if (obj.t != V_NS) { fail_at(I, target->pos, TV_ERR_INVALID, "cannot assign attribute on non-namespace object"); return false; }
        if (target->flag || target->b->kind != N_IDENT) { fail_at(I, target->pos, TV_ERR_INVALID, "Cannot assign to member with non-identifier property"); return false; }
        const tstr *k = mkstr(I, target->b->s, target->b->slen);
        if (!k || !dict_set(I, obj.u.d, k, v)) { OOM(I, target->pos); return false; }
        return true;
    }
    fail_at(I, target->pos, TV_ERR_INVALID, "Invalid LHS inside assignment expression");
    return false;
}

static bool exec_node(interp *I, const tpl_node *n, env *e, sbuf *out);

// Renders body into a string value; while a break/continue unwinds, the partial output is dropped.
static value exec_block(interp *I, const tpl_nodes *body, env *e, uint32_t pos) {
    sbuf b = {0};
    for (size_t i = 0; i < body->n; i++) {
        if (!exec_node(I, body->v[i], e, &b) || I->ctl) { strbuf_free(&b.b); return UNDEF; }
    }
    return sb_finish(I, &b, pos);
}

static bool exec_for(interp *I, const tpl_node *n, env *e, sbuf *out) {
    env *scope = env_new(I, e);
    if (!scope) { OOM(I, n->pos); return false; }
    value it = eval(I, n->b, scope);
    if (I->failed) return false;
    if (!is_list(it) && !is_dict(it)) {
        fail_at(I, n->pos, TV_ERR_INVALID, "Expected iterable or object type in for loop: got %s", type_name(it.t));
        return false;
    }
    vlist *src;
    if (is_dict(it)) {
        src = list_new(I, it.u.d->n);
        if (!src) { OOM(I, n->pos); return false; }
        for (size_t i = 0; i < it.u.d->n; i++) src->v[src->n++] = dict_key(it.u.d, i);
    } else src = it.u.l;
    const tpl_node *lv = n->a;
    // unpacking checks and the optional `if` filter run before the body, as in HF
    vlist *items = list_new(I, src->n);
    if (!items) { OOM(I, n->pos); return false; }
    for (size_t i = 0; i < src->n; i++) {
        value cur = src->v[i];
        if (lv->kind == N_TUPLE) {
            // extension: HF unpacks only lists; Jinja2 unpacks tuples too
            if (!is_list(cur)) { fail_at(I, n->pos, TV_ERR_INVALID, "Cannot unpack non-iterable type: %s", type_name(cur.t)); return false; }
            if (cur.t == V_TUPLE) I->py = true;
            if (cur.u.l->n != lv->list.n) { fail_at(I, n->pos, TV_ERR_INVALID, "Too %s items to unpack", lv->list.n > cur.u.l->n ? "few" : "many"); return false; }
        }
        if (n->c) {
            env *ls = env_new(I, scope);
            if (!ls) { OOM(I, n->pos); return false; }
            if (!assign(I, lv, cur, ls)) return false;
            value t = eval(I, n->c, ls);
            if (I->failed) return false;
            if (!truthy(t)) continue;
        }
        items->v[items->n++] = cur;
    }
    bool no_iteration = true;
    for (size_t i = 0; i < items->n; i++) {
        if (!step(I, n->pos)) return false;
        vdict *loop = dict_new(I);
        if (!loop) { OOM(I, n->pos); return false; }
        int64_t len = (int64_t)items->n, k = (int64_t)i;
        if (!dict_set_c(I, loop, "index", vint(k + 1)) || !dict_set_c(I, loop, "index0", vint(k)) ||
            !dict_set_c(I, loop, "revindex", vint(len - k)) || !dict_set_c(I, loop, "revindex0", vint(len - k - 1)) ||
            !dict_set_c(I, loop, "first", vbool(k == 0)) || !dict_set_c(I, loop, "last", vbool(k == len - 1)) ||
            !dict_set_c(I, loop, "length", vint(len)) ||
            !dict_set_c(I, loop, "previtem", k > 0 ? items->v[i - 1] : UNDEF) ||
            !dict_set_c(I, loop, "nextitem", k < len - 1 ? items->v[i + 1] : UNDEF) ||
            !env_set(I, scope, "loop", 4, vdict_of(loop, V_DICT))) { OOM(I, n->pos); return false; }
        if (!assign(I, lv, items->v[i], scope)) return false;
        value r = exec_block(I, &n->body, scope, n->pos);
        if (I->failed) return false;
        if (I->ctl == CTL_CONTINUE) { I->ctl = 0; continue; }
        if (I->ctl == CTL_BREAK) { I->ctl = 0; break; }
        sb_put(out, r.u.s->s, r.u.s->n);
        no_iteration = false;
    }
    if (no_iteration) {
        value r = exec_block(I, &n->alt, scope, n->pos);
        if (I->failed) return false;
        if (I->ctl) return true;          // propagate to an enclosing loop
        sb_put(out, r.u.s->s, r.u.s->n);
    }
    return true;
}

static bool emit(interp *I, sbuf *out, value v, uint32_t pos) {
    if (!print_value(I, out, v, pos)) return false;
    if (out->oom) { fail_at(I, pos, TV_ERR_RANGE, "template output exceeds %zu bytes", MAX_OUTPUT); return false; }
    return true;
}

static bool exec_node(interp *I, const tpl_node *n, env *e, sbuf *out) {
    if (I->failed) return false;
    if (!step(I, n->pos)) return false;
    if (++I->depth > MAX_DEPTH) { I->depth--; fail_at(I, n->pos, TV_ERR_RANGE, "template nesting too deep"); return false; }
    bool ok = true;
    switch (n->kind) {
        case N_TEXT: sb_put(out, n->s, n->slen); break;
        case N_COMMENT: break;
        case N_SET: {
            value v = n->b ? eval(I, n->b, e) : exec_block(I, &n->body, e, n->pos);
            if (I->failed || I->ctl) { ok = !I->failed; break; }
            ok = assign(I, n->a, v, e);
            break;
        }
        case N_IF: {
            value t = eval(I, n->a, e);
            if (I->failed) { ok = false; break; }
            value r = exec_block(I, truthy(t) ? &n->body : &n->alt, e, n->pos);
            if (I->failed) { ok = false; break; }
            if (!I->ctl) sb_put(out, r.u.s->s, r.u.s->n);
            break;
        }
        case N_FOR: ok = exec_for(I, n, e, out); break;
        case N_MACRO: {
            value f = mkfunc(I, F_MACRO, B_NAMESPACE, UNDEF, n->pos);
            if (I->failed) { ok = false; break; }
            f.u.fn->node = n;
            if (!env_set(I, e, n->a->s, n->a->slen, f)) { OOM(I, n->pos); ok = false; }
            break;
        }
        case N_CALLBLOCK: {
            value caller = mkfunc(I, F_CALLER, B_NAMESPACE, UNDEF, n->pos);
            if (I->failed) { ok = false; break; }
            caller.u.fn->node = n;
            caller.u.fn->defenv = e;
            args_t a;
            if (!eval_args(I, &n->a->list, e, &a, n->pos)) { ok = false; break; }
            value fv = eval(I, n->a->a, e);
            if (I->failed) { ok = false; break; }
            env *ne = env_new(I, e);
            if (!ne || !env_set(I, ne, "caller", 6, caller)) { OOM(I, n->pos); ok = false; break; }
            value r = call_value(I, fv, &a, ne, n->pos);
            if (I->failed) { ok = false; break; }
            ok = emit(I, out, r, n->pos);
            break;
        }
        case N_FILTERBLOCK: {
            value body = exec_block(I, &n->body, e, n->pos);
            if (I->failed || I->ctl) { ok = !I->failed; break; }
            value r = apply_filter(I, body, n->a, e);
            if (I->failed) { ok = false; break; }
            ok = emit(I, out, r, n->pos);
            break;
        }
        case N_BREAK: I->ctl = CTL_BREAK; break;
        case N_CONTINUE: I->ctl = CTL_CONTINUE; break;
        default: {
            value v = eval(I, n, e);
            if (I->failed) { ok = false; break; }
            ok = emit(I, out, v, n->pos);
            break;
        }
    }
    I->depth--;
    if (ok && out->oom) { fail_at(I, n->pos, TV_ERR_RANGE, "template output exceeds %zu bytes", MAX_OUTPUT); ok = false; }
    return ok && !I->failed;
}

// ============================== context conversion and entry point ==============================

static value from_json(interp *I, const cJSON *j, int depth) {
    if (depth > 200) return fail_at(I, 0, TV_ERR_RANGE, "context JSON nested too deeply");
    if (!j || cJSON_IsNull(j)) return NONE;
    if (cJSON_IsFalse(j)) return vbool(false);
    if (cJSON_IsTrue(j)) return vbool(true);
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.2e18) return vint((int64_t)d);
        return vfloat(d);
    }
    if (cJSON_IsString(j)) return vstr(I, j->valuestring ? j->valuestring : "", 0);
    if (cJSON_IsArray(j)) {
        vlist *l = list_new(I, 0);
        if (!l) return OOM(I, 0);
        for (const cJSON *c = j->child; c; c = c->next) {
            value v = from_json(I, c, depth + 1);
            CK(v);
            if (!list_push(I, l, v)) return OOM(I, 0);
        }
        return vlist_of(l, V_LIST);
    }
    if (cJSON_IsObject(j)) {
        vdict *d = dict_new(I);
        if (!d) return OOM(I, 0);
        for (const cJSON *c = j->child; c; c = c->next) {
            value v = from_json(I, c, depth + 1);
            CK(v);
            const tstr *k = mkstr(I, c->string ? c->string : "", c->string ? strlen(c->string) : 0);
            if (!k || !dict_set(I, d, k, v)) return OOM(I, 0);
        }
        return vdict_of(d, V_DICT);
    }
    return UNDEF;
}

static bool set_global_fn(interp *I, const char *name, builtin_id id) {
    value f = mkfunc(I, F_BUILTIN, id, UNDEF, 0);
    return !I->failed && env_set(I, I->globals, name, strlen(name), f);
}

tv_status tpl_render(const tpl_program *prog, const cJSON *ctx, size_t mem_budget, char **out, size_t *out_len, tv_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (ctx && !cJSON_IsObject(ctx)) return err_fail(err, TV_ERR_INVALID, "template context must be a JSON object");
    interp I_ = {0};
    interp *I = &I_;
    I->prog = prog;
    I->err = err;
    I->a = tpl_arena_create(mem_budget ? mem_budget : ((size_t)128 << 20));
    tv_status st = TV_OK;
    if (!I->a) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    I->globals = env_new(I, NULL);
    if (!I->globals) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    if (!env_set(I, I->globals, "false", 5, vbool(false)) || !env_set(I, I->globals, "true", 4, vbool(true)) ||
        !env_set(I, I->globals, "none", 4, NONE) || !env_set(I, I->globals, "False", 5, vbool(false)) ||
        !env_set(I, I->globals, "True", 4, vbool(true)) || !env_set(I, I->globals, "None", 4, NONE) ||
        !set_global_fn(I, "namespace", B_NAMESPACE) || !set_global_fn(I, "raise_exception", B_RAISE) ||
        !set_global_fn(I, "range", B_RANGE) || !set_global_fn(I, "strftime_now", B_STRFTIME)) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (ctx) {
        for (const cJSON *c = ctx->child; c; c = c->next) {
            if (!c->string) continue;
            value v = from_json(I, c, 0);
            if (I->failed) { st = err ? err->code : TV_ERR_INVALID; goto done; }
            if (!env_set(I, I->globals, c->string, strlen(c->string), v)) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
        }
    }
    {
        sbuf b = {0};
        for (size_t i = 0; i < prog->body.n; i++) {
            if (!exec_node(I, prog->body.v[i], I->globals, &b)) break;
            if (I->ctl) { fail_at(I, prog->body.v[i]->pos, TV_ERR_INVALID, "break/continue outside of a loop"); break; }
        }
        if (I->failed) { strbuf_free(&b.b); st = err ? err->code : TV_ERR_INVALID; goto done; }
        if (b.oom) { strbuf_free(&b.b); st = err_fail(err, TV_ERR_RANGE, "template output exceeds %zu bytes", MAX_OUTPUT); goto done; }
        if (!strbuf_reserve(&b.b, 0)) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }   // "" for no output
        *out = b.b.p;
        if (out_len) *out_len = b.b.n;
    }
done:
    if (st != TV_OK && err && err->code == TV_OK) err->code = st;
    tpl_arena_free(I->a);
    return st;
}
