// constraint.c — spec kinds -> grammar, the compiled-grammar cache, tv_constraint_check.
#include "structured/constraint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "structured/gbnf.h"
#include "structured/jsonschema.h"
#include "structured/regex.h"
#include "util/alloc.h"
#include "util/status.h"

static tv_status parse_choice(gram *g, const char *spec, size_t len, tv_error *err) {
    const char *end = NULL;
    cJSON *a = cJSON_ParseWithLengthOpts(spec, len, &end, false);
    if (!a) return err_fail(err, TV_ERR_INVALID, "choice: invalid JSON at byte %zu", end && end >= spec ? (size_t)(end - spec) : 0);
    tv_status st = TV_OK;
    const int n = cJSON_GetArraySize(a);
    gram_lit *l = cJSON_IsArray(a) && n > 0 ? mem_calloc((size_t)n, sizeof *l) : NULL;
    if (!cJSON_IsArray(a) || n == 0) st = err_fail(err, TV_ERR_INVALID, "choice: expected a non-empty JSON array of strings");
    else if (!l) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *x = a->child; !st && x; x = x->next, i++) {
        if (!cJSON_IsString(x)) { st = err_fail(err, TV_ERR_INVALID, "choice: element %d is not a string", i); break; }
        l[i] = (gram_lit){x->valuestring, strlen(x->valuestring)};
    }
    if (!st && (g->root = gram_literal_set(g, l, (size_t)n)) < 0) st = gram_failure(g, err);
    free(l);
    cJSON_Delete(a);
    return st;
}

gram *constraint_parse(tv_constraint_kind kind, const char *spec, size_t len, tv_error *err) {
    if (len > CONSTRAINT_MAX_SPEC) {
        err_fail(err, TV_ERR_RANGE, "the constraint is %zu bytes; at most %u", len, CONSTRAINT_MAX_SPEC);
        return NULL;
    }
    gram *g = gram_create(CONSTRAINT_MAX_SYMS);
    if (!g) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    tv_status st;
    switch (kind) {
    case TV_CONSTRAINT_JSON_OBJECT: st = jsonschema_any_object(g, err); break;
    case TV_CONSTRAINT_JSON_SCHEMA: st = jsonschema_compile(g, spec, len, err); break;
    case TV_CONSTRAINT_REGEX:
        st = (g->root = regex_compile(g, spec, len, REGEX_TEXT, false, err)) < 0 ? (err ? err->code : TV_ERR_INVALID) : TV_OK;
        break;
    case TV_CONSTRAINT_CHOICE: st = parse_choice(g, spec, len, err); break;
    case TV_CONSTRAINT_GRAMMAR: st = gbnf_parse(g, spec, len, err); break;
    default: st = err_fail(err, TV_ERR_INVALID, "unknown constraint kind %d", (int)kind);
    }
    if (!st) st = gram_check(g, err);
    if (st) { gram_free(g); return NULL; }
    return g;
}

tv_status tv_constraint_check(tv_constraint_kind kind, const char *spec, tv_error *err) {
    gram *g = constraint_parse(kind, spec ? spec : "", spec ? strlen(spec) : 0, err);
    if (!g) return err && err->code ? err->code : TV_ERR_INVALID;
    gram_free(g);
    return TV_OK;
}

typedef struct centry {
    tv_constraint_kind kind;
    char *spec;
    size_t len;
    matcher_grammar *cg;
    uint64_t used;
} centry;

struct constraint_cache {
    const matcher_vocab *v;
    centry e[CONSTRAINT_CACHE_SIZE];
    size_t n;
    uint64_t clock;
};

constraint_cache *constraint_cache_create(const matcher_vocab *v) {
    constraint_cache *c = mem_calloc(1, sizeof *c);
    if (c) c->v = v;
    return c;
}

static void centry_clear(centry *e) {
    matcher_grammar_free(e->cg);
    free(e->spec);
    memset(e, 0, sizeof *e);
}

void constraint_cache_free(constraint_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) centry_clear(&c->e[i]);
    free(c);
}

size_t constraint_cache_n(const constraint_cache *c) { return c->n; }

matcher_grammar *constraint_cache_get(constraint_cache *c, tv_constraint_kind kind, const char *spec, size_t len,
                                      tv_error *err) {
    for (size_t i = 0; i < c->n; i++) {
        centry *e = &c->e[i];
        if (e->kind != kind || e->len != len || memcmp(e->spec, spec, len) != 0) continue;
        if (matcher_grammar_exhausted(e->cg)) {   // its state budget ran out: start it afresh
            centry_clear(e);
            c->e[i] = c->e[--c->n];
            break;
        }
        e->used = ++c->clock;
        matcher_grammar_ref(e->cg);
        return e->cg;
    }
    gram *g = constraint_parse(kind, spec, len, err);
    if (!g) return NULL;
    matcher_grammar *cg = matcher_grammar_compile(g, c->v, err);
    gram_free(g);
    if (!cg) return NULL;
    char *copy = mem_malloc(len + 1);
    if (!copy) return cg;   // works uncached
    memcpy(copy, spec, len);
    copy[len] = 0;
    size_t slot = c->n;
    if (c->n == CONSTRAINT_CACHE_SIZE) {
        slot = 0;
        for (size_t i = 1; i < c->n; i++) if (c->e[i].used < c->e[slot].used) slot = i;
        centry_clear(&c->e[slot]);
    } else c->n++;
    c->e[slot] = (centry){kind, copy, len, cg, ++c->clock};
    matcher_grammar_ref(cg);
    return cg;
}
