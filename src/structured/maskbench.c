// maskbench.c — tv_structured_bench: the constraint engine measured MaskBench-style (the method of
// github.com/guidance-ai/jsonschemabench, maskbench/). For each JSON Schema: compile it (timed) for
// the tokenizer's vocabulary, then time token steps (one thread), each step a mask and the token's
// commit, as MaskBench's runner times compute_mask + commit_token. The tokens come from either
//   instances  (MaskBench's own method) the schema file's valid test instances, serialized as
//              Python's json.dumps does and tokenized; a token the mask refuses ends the instance
//              (counted: a property order or whitespace the grammar does not generate), or
//   random walks  up to max_steps tokens drawn uniformly among the allowed ones: what random
//              weights with random sampling amount to, so the mask alone must keep the output valid.
//              Half the draws prefer single-byte tokens (structure closes sooner) and once the
//              output may end it ends with probability 1/2 (else walks rarely finish).
// A schema file in MaskBench's layout ({"schema": ..., "tests": [...]}) is unwrapped in both modes.
// With options.kind another constraint kind (GBNF grammars, say) takes random walks the same way.
// The vocabulary (and its shared token classes) is built once for all schemas, as a server builds
// it once per model.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "structured/constraint.h"
#include "structured/matcher.h"
#include "tinyvllm_tools.h"
#include "util/rng.h"
#include "util/status.h"

static int dbl_cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double q) {
    if (!n) return 0.0;
    size_t i = (size_t)(q * (double)n);
    return sorted[i < n ? i : n - 1];
}

// Counts a compile failure under the first words of its reason.
static void tally(tv_structured_bench_result *r, const char *msg) {
    const char *m = strstr(msg, ": ") ? strstr(msg, ": ") + 2 : msg;
    char key[sizeof r->reason[0]];
    snprintf(key, sizeof key, "%.48s", m);
    int k = 0;
    while (k < r->n_reasons && strcmp(r->reason[k], key)) k++;
    if (k == r->n_reasons) {
        if (r->n_reasons == TV_STRUCTURED_BENCH_REASONS) return;
        memcpy(r->reason[r->n_reasons++], key, sizeof key);
    }
    r->reason_n[k]++;
}

// ---- Python's json.dumps(v) (separators ", " / ": ", ensure_ascii=False): how MaskBench writes an instance ----
typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        const size_t cap = 2 * (b->n + n) + 64;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        char e[8];
        if (ch == '"' || ch == '\\') { e[0] = '\\'; e[1] = (char)ch; sb_put(b, e, 2); }
        else if (ch == '\n') sb_put(b, "\\n", 2);
        else if (ch == '\r') sb_put(b, "\\r", 2);
        else if (ch == '\t') sb_put(b, "\\t", 2);
        else if (ch == '\b') sb_put(b, "\\b", 2);
        else if (ch == '\f') sb_put(b, "\\f", 2);
        else if (ch < 0x20) { snprintf(e, sizeof e, "\\u%04x", ch); sb_put(b, e, 6); }
        else sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

// A number as Python prints it: integers plain, others in repr's shortest round-trip form.
static void sb_num(sbuf *b, double x) {
    char s[40];
    if (x == floor(x) && fabs(x) < 1e16) snprintf(s, sizeof s, "%.0f", x);
    else if (!isfinite(x)) snprintf(s, sizeof s, "%s", isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
    else {
        int p = 1;
        for (; p < 17; p++) {
            snprintf(s, sizeof s, "%.*e", p - 1, x);
            if (strtod(s, NULL) == x) break;
        }
        const int e10 = (int)floor(log10(fabs(x)));
        if (e10 >= -4 && e10 < 16) snprintf(s, sizeof s, "%.*f", p - 1 - e10 > 1 ? p - 1 - e10 : 1, x);
        else snprintf(s, sizeof s, "%.*e", p - 1, x);
    }
    sb_put(b, s, strlen(s));
}

static void py_dumps(sbuf *b, const cJSON *v) {
    if (cJSON_IsNull(v)) sb_put(b, "null", 4);
    else if (cJSON_IsTrue(v)) sb_put(b, "true", 4);
    else if (cJSON_IsFalse(v)) sb_put(b, "false", 5);
    else if (cJSON_IsNumber(v)) sb_num(b, v->valuedouble);
    else if (cJSON_IsString(v)) sb_str(b, v->valuestring);
    else {
        const bool obj = cJSON_IsObject(v);
        sb_put(b, obj ? "{" : "[", 1);
        for (const cJSON *x = v->child; x; x = x->next) {
            if (x != v->child) sb_put(b, ", ", 2);
            if (obj) { sb_str(b, x->string); sb_put(b, ": ", 2); }
            py_dumps(b, x);
        }
        sb_put(b, obj ? "}" : "]", 1);
    }
}

// ---- the run ----
typedef struct run {
    const tv_tokenizer *tok;
    int32_t V;
    size_t nw;
    bool verify;
    uint32_t *mask, *ref;
    double *us;          // (n_us) step times
    size_t n_us, cap_us;
    double walk_us;
    tv_structured_bench_result *r;
} run;

static bool push_us(run *b, double us) {
    if (b->n_us == b->cap_us) {
        const size_t cap = b->cap_us ? 2 * b->cap_us : 4096;
        double *nu = realloc(b->us, cap * sizeof *nu);
        if (!nu) return false;
        b->us = nu;
        b->cap_us = cap;
    }
    b->us[b->n_us++] = us;
    return true;
}

// The mask of m's state into b->mask; false when a matcher budget ran out (counted; the walk stops).
static bool mask_of(run *b, matcher *m) {
    if (matcher_fill_mask(m, b->mask) == TV_OK) return true;
    b->r->n_budget++;
    return false;
}

// With verify, b->mask checked against the plain trie walk (untimed): TV_ERR_NOMEM when a budget
// ran out (counted), TV_ERR_STATE on a mismatch.
static tv_status verify_mask(run *b, matcher *m, int si, int step, tv_error *err) {
    if (!b->verify) return TV_OK;
    const double w0 = time_ms();
    if (matcher_fill_mask_walk(m, b->ref) != TV_OK) { b->r->n_budget++; return TV_ERR_NOMEM; }
    b->walk_us += (time_ms() - w0) * 1000.0;
    if (memcmp(b->mask, b->ref, b->nw * 4))
        return err_fail(err, TV_ERR_STATE, "schema %d step %d: the mask differs from the plain trie walk's", si, step);
    return TV_OK;
}

static bool allowed(const run *b, int32_t t) { return t >= 0 && t < b->V && (b->mask[t >> 5] >> (t & 31) & 1); }

// MaskBench's method: the valid instances' tokens, each step timed as mask + commit.
static tv_status walk_instances(run *b, matcher_grammar *cg, const cJSON *tests, int si, tv_error *err) {
    for (const cJSON *t = tests ? tests->child : NULL; t; t = t->next) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(t, "data");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "valid")) || !data) continue;
        sbuf s = {0};
        py_dumps(&s, data);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        tv_error te = {0};
        const bool tokenized = !s.oom && tv_tokenize(b->tok, s.p ? s.p : "", s.n, false, false, &ids, &n_ids, &te) == TV_OK;
        free(s.p);
        if (s.oom) return err_fail(err, TV_ERR_NOMEM, "out of memory");
        if (!tokenized) continue;   // not UTF-8 the tokenizer takes
        b->r->n_tests++;
        matcher *m = matcher_create(cg, err);
        if (!m) { free(ids); return TV_ERR_NOMEM; }
        tv_status st = TV_OK;
        size_t k = 0;
        for (; k < n_ids; k++) {
            const double s0 = time_ms();
            if (!mask_of(b, m)) break;
            double us = (time_ms() - s0) * 1000.0;
            if ((st = verify_mask(b, m, si, (int)k, err))) { if (st == TV_ERR_NOMEM) st = TV_OK; break; }
            const bool ok = allowed(b, ids[k]);
            const double a0 = time_ms();
            if (ok && !matcher_advance(m, ids[k])) {
                st = err_fail(err, TV_ERR_STATE, "schema %d step %zu: token %d was in the mask but refused", si, k, ids[k]);
                break;
            }
            us += (time_ms() - a0) * 1000.0;   // the commit, as MaskBench times it
            if (!push_us(b, us)) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); break; }
            if (!ok) break;
        }
        if (!st && k == n_ids) {
            if (matcher_is_accepting(m)) b->r->n_tests_ok++;
            else b->r->n_tests_refused++;
        } else if (!st && k < n_ids && !matcher_failed(m)) b->r->n_tests_refused++;
        matcher_free(m);
        free(ids);
        if (st) return st;
    }
    return TV_OK;
}

typedef struct walk_state {
    int32_t *allowed;    // (V)
    bool *single;        // (V) one-byte pieces
    char *text;
    size_t cap_text;
    uint64_t rs;
} walk_state;

// A random walk of up to max_steps tokens; a completed output goes to o->on_output.
static tv_status walk_random(run *b, walk_state *w, matcher_grammar *cg, int max_steps, int si,
                             const tv_structured_bench_options *o, tv_error *err) {
    matcher *m = matcher_create(cg, err);
    if (!m) return TV_ERR_NOMEM;
    tv_status st = TV_OK;
    size_t tl = 0;
    bool done = false;
    for (int step = 0; step < max_steps && !done; step++) {
        const double s0 = time_ms();
        if (!mask_of(b, m)) break;   // a budget ran out
        double us = (time_ms() - s0) * 1000.0;
        if ((st = verify_mask(b, m, si, step, err))) { if (st == TV_ERR_NOMEM) st = TV_OK; break; }
        const bool short_only = rng_splitmix64(&w->rs) % 2;
        int na = 0;
        for (int32_t t = 0; t < b->V && short_only; t++) if (allowed(b, t) && w->single[t]) w->allowed[na++] = t;
        if (!na) for (int32_t t = 0; t < b->V; t++) if (allowed(b, t)) w->allowed[na++] = t;
        if (!na) { st = err_fail(err, TV_ERR_STATE, "schema %d step %d: empty mask", si, step); break; }
        int32_t t = w->allowed[rng_splitmix64(&w->rs) % (uint64_t)na];
        if (matcher_is_accepting(m) && rng_splitmix64(&w->rs) % 2) t = -1;
        if (t < 0 || tv_tokenizer_is_eog(b->tok, t)) {
            if (!push_us(b, us)) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
            done = true;
            break;
        }
        const double a0 = time_ms();
        if (!matcher_advance(m, t)) {
            st = err_fail(err, TV_ERR_STATE, "schema %d step %d: token %d was in the mask but refused", si, step, t);
            break;
        }
        us += (time_ms() - a0) * 1000.0;   // the commit, as MaskBench times it
        if (!push_us(b, us)) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); break; }
        size_t full = 0;
        tv_token_to_piece(b->tok, t, false, w->text + tl, w->cap_text - tl, &full);
        if (tl + full >= w->cap_text) {   // grow and write the piece again
            char *nt = realloc(w->text, 2 * (tl + full) + 1);
            if (!nt) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); break; }
            w->text = nt;
            w->cap_text = 2 * (tl + full) + 1;
            tv_token_to_piece(b->tok, t, false, w->text + tl, w->cap_text - tl, NULL);
        }
        tl += full;
        if (matcher_is_done(m)) done = true;
    }
    matcher_free(m);
    if (!st && done) {
        b->r->n_completed++;
        w->text[tl] = 0;
        if (o && o->on_output) o->on_output(o->user, si, w->text, tl);
    }
    return st;
}

tv_status tv_structured_bench(const tv_tokenizer *tok, const char *const *schemas, const size_t *lens, int n,
                              const tv_structured_bench_options *o, tv_structured_bench_result *r, tv_error *err) {
    memset(r, 0, sizeof *r);
    const int max_steps = o && o->max_steps > 0 ? o->max_steps : 200;
    const tv_constraint_kind kind = o && o->kind ? o->kind : TV_CONSTRAINT_JSON_SCHEMA;
    if (o && o->instances && kind != TV_CONSTRAINT_JSON_SCHEMA) return err_fail(err, TV_ERR_INVALID, "instances need JSON Schemas");
    run b = {.tok = tok, .V = tv_tokenizer_n_vocab(tok), .verify = o && o->verify, .r = r};
    b.nw = ((size_t)b.V + 31) / 32;
    walk_state w = {.rs = o && o->seed ? o->seed : 1234, .cap_text = 1 << 16};
    tv_status st = TV_OK;
    const double v0 = time_ms();
    matcher_vocab *v = matcher_vocab_from_tokenizer(tok, b.V, NULL, err);
    if (!v) return err && err->code ? err->code : TV_ERR_NOMEM;
    r->vocab_ms = time_ms() - v0;
    r->n_vocab = b.V;
    double *compile_ms = malloc(((size_t)n + 1) * sizeof *compile_ms);
    b.mask = malloc(b.nw * 4);
    b.ref = malloc(b.nw * 4);
    w.allowed = malloc((size_t)b.V * sizeof *w.allowed);
    w.single = calloc((size_t)b.V, 1);
    w.text = malloc(w.cap_text);
    if (!compile_ms || !b.mask || !b.ref || !w.allowed || !w.single || !w.text) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t t = 0; t < b.V; t++) {
        size_t full = 0;
        char tmp[8];
        tv_token_to_piece(tok, t, false, tmp, sizeof tmp, &full);
        w.single[t] = full == 1;
    }
    r->n_schemas = n;
    for (int si = 0; si < n && !st; si++) {
        // MaskBench's layout: the schema and its test instances
        cJSON *doc = kind == TV_CONSTRAINT_JSON_SCHEMA ? cJSON_ParseWithLength(schemas[si], lens[si]) : NULL;
        const cJSON *sch = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "schema") : NULL;
        const cJSON *tests = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "tests") : NULL;
        char *unwrapped = sch && cJSON_IsArray(tests) ? cJSON_PrintUnformatted(sch) : NULL;
        const char *spec = unwrapped ? unwrapped : schemas[si];
        const size_t spec_len = unwrapped ? strlen(unwrapped) : lens[si];
        tv_error e = {0};
        const double c0 = time_ms();
        gram *g = constraint_parse(kind, spec, spec_len, &e);
        matcher_grammar *cg = g ? matcher_grammar_compile(g, v, &e) : NULL;
        const double c_ms = time_ms() - c0;
        gram_free(g);
        if (cg) {
            compile_ms[r->n_compiled++] = c_ms;
            st = o && o->instances ? walk_instances(&b, cg, unwrapped ? tests : NULL, si, err)
                                   : walk_random(&b, &w, cg, max_steps, si, o, err);
            matcher_grammar_free(cg);
        } else tally(r, e.msg);
        free(unwrapped);
        cJSON_Delete(doc);
    }
    if (st) goto done;
    matcher_class_stats cs;
    matcher_vocab_class_stats(v, &cs);
    r->class_walks = cs.n_walks;
    r->class_local_walks = cs.n_local_walks;
    r->class_drops = cs.n_drops;
    r->class_entries = cs.n_entries;
    r->class_bytes = cs.bytes;
    qsort(compile_ms, (size_t)r->n_compiled, sizeof *compile_ms, dbl_cmp);
    qsort(b.us, b.n_us, sizeof *b.us, dbl_cmp);
    double sum = 0.0;
    for (size_t i = 0; i < b.n_us; i++) sum += b.us[i];
    r->n_masks = b.n_us;
    r->mask_mean_us = b.n_us ? sum / (double)b.n_us : 0.0;
    r->mask_p50_us = pct(b.us, b.n_us, 0.50);
    r->mask_p99_us = pct(b.us, b.n_us, 0.99);
    r->mask_max_us = b.n_us ? b.us[b.n_us - 1] : 0.0;
    r->walk_mean_us = b.verify && b.n_us ? b.walk_us / (double)b.n_us : 0.0;
    r->compile_p50_ms = pct(compile_ms, (size_t)r->n_compiled, 0.50);
    r->compile_p90_ms = pct(compile_ms, (size_t)r->n_compiled, 0.90);
    r->compile_max_ms = r->n_compiled ? compile_ms[r->n_compiled - 1] : 0.0;
done:
    free(b.us); free(compile_ms); free(b.mask); free(b.ref); free(w.allowed); free(w.single); free(w.text);
    matcher_vocab_free(v);
    return st;
}
