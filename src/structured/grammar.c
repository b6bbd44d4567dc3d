// grammar.c — the byte-level CFG builder and its checks (see grammar.h).
#include "structured/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

void gram_fail(gram *g, tv_status code) {
    if (!g->failed) { g->failed = true; g->fail_code = code; }
}

tv_status gram_failure(const gram *g, tv_error *err) {
    if (g->fail_code == TV_ERR_RANGE)
        return err_fail(err, TV_ERR_RANGE, "the grammar is too large (more than %zu symbols)", g->max_syms);
    return err_fail(err, TV_ERR_NOMEM, "out of memory building the grammar");
}

bool gram_seq_push(gram *g, gram_seq *s, int32_t sym) {
    if (g->failed) return false;
    if (s->n == s->cap) {
        int32_t *nv = array_grow(s->v, &s->cap, s->n + 1, sizeof *nv);
        if (!nv) { gram_fail(g, TV_ERR_NOMEM); return false; }
        s->v = nv;
    }
    s->v[s->n++] = sym;
    return true;
}

bool gram_seq_literal(gram *g, gram_seq *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!gram_seq_push(g, s, gram_byte(g, (uint8_t)bytes[i]))) return false;
    return true;
}

void gram_seq_free(gram_seq *s) { free(s->v); s->v = NULL; s->n = s->cap = 0; }

gram *gram_create(size_t max_syms) {
    gram *g = mem_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->max_syms = max_syms;
    g->root = -1;
    return g;
}

void gram_free(gram *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_rules; i++) { free(g->rules[i].name); free(g->rules[i].syms); }
    free(g->rules);
    free(g->cls);
    free(g);
}

int32_t gram_new_rule(gram *g, const char *name) {
    if (g->failed) return -1;
    if (g->n_rules >= INT32_MAX / 2 || ++g->n_syms > g->max_syms) { gram_fail(g, TV_ERR_RANGE); return -1; }
    if (g->n_rules == g->cap_rules) {
        gram_rule *nr = array_grow(g->rules, &g->cap_rules, g->n_rules + 1, sizeof *nr);
        if (!nr) { gram_fail(g, TV_ERR_NOMEM); return -1; }
        g->rules = nr;
    }
    char tmp[32];
    if (!name) { snprintf(tmp, sizeof tmp, "_%zu", g->n_rules); name = tmp; }
    gram_rule *r = &g->rules[g->n_rules];
    memset(r, 0, sizeof *r);
    if (!(r->name = mem_strdup(name))) { gram_fail(g, TV_ERR_NOMEM); return -1; }
    return (int32_t)g->n_rules++;
}

int32_t gram_find_rule(const gram *g, const char *name, size_t len) {
    for (size_t i = 0; i < g->n_rules; i++)
        if (strlen(g->rules[i].name) == len && memcmp(g->rules[i].name, name, len) == 0) return (int32_t)i;
    return -1;
}

bool gram_add_alt(gram *g, int32_t rule, const int32_t *syms, size_t n) {
    if (g->failed || rule < 0) return false;
    gram_rule *r = &g->rules[rule];
    const size_t need = r->n + n + (r->defined ? 1 : 0);
    if (g->n_syms + n + 1 > g->max_syms) { gram_fail(g, TV_ERR_RANGE); return false; }
    if (need > r->cap) {
        int32_t *nv = array_grow(r->syms, &r->cap, need, sizeof *nv);
        if (!nv) { gram_fail(g, TV_ERR_NOMEM); return false; }
        r->syms = nv;
    }
    if (r->defined) r->syms[r->n++] = GRAM_ALT;
    if (n) memcpy(r->syms + r->n, syms, n * sizeof *syms);
    r->n += n;
    r->defined = true;
    g->n_syms += n + 1;
    return true;
}

int32_t gram_rule_of(gram *g, const char *name, const gram_seq *alts, size_t n_alts) {
    const int32_t r = gram_new_rule(g, name);
    for (size_t i = 0; r >= 0 && i < n_alts; i++)
        if (!gram_add_alt(g, r, alts[i].v, alts[i].n)) return -1;
    return g->failed ? -1 : r;
}

int32_t gram_class(gram *g, const uint64_t set[4]) {
    if (g->failed) return -1;
    for (size_t i = 0; i < g->n_cls; i++)
        if (memcmp(g->cls[i], set, sizeof g->cls[i]) == 0) return gram_class_sym((int32_t)i);
    if (g->n_cls == g->cap_cls) {
        uint64_t (*nc)[4] = array_grow(g->cls, &g->cap_cls, g->n_cls + 1, sizeof *nc);
        if (!nc) { gram_fail(g, TV_ERR_NOMEM); return -1; }
        g->cls = nc;
    }
    memcpy(g->cls[g->n_cls], set, sizeof g->cls[0]);
    return gram_class_sym((int32_t)g->n_cls++);
}

int32_t gram_byte(gram *g, uint8_t b) {
    if (g->byte_sym[b]) return g->byte_sym[b];
    if (g->failed) return -1;
    // single bytes skip the deduplicating search: they are made once each
    if (g->n_cls == g->cap_cls) {
        uint64_t (*nc)[4] = array_grow(g->cls, &g->cap_cls, g->n_cls + 1, sizeof *nc);
        if (!nc) { gram_fail(g, TV_ERR_NOMEM); return -1; }
        g->cls = nc;
    }
    memset(g->cls[g->n_cls], 0, sizeof g->cls[0]);
    g->cls[g->n_cls][b >> 6] |= 1ull << (b & 63);
    return g->byte_sym[b] = gram_class_sym((int32_t)g->n_cls++);
}

// ---- UTF-8 ranges -> byte-class sequences ----
static int utf8_len(uint32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

static void utf8_encode(uint32_t c, uint8_t *o) {
    switch (utf8_len(c)) {
    case 1: o[0] = (uint8_t)c; break;
    case 2: o[0] = (uint8_t)(0xC0 | c >> 6); o[1] = (uint8_t)(0x80 | (c & 63)); break;
    case 3: o[0] = (uint8_t)(0xE0 | c >> 12); o[1] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[2] = (uint8_t)(0x80 | (c & 63)); break;
    default:
        o[0] = (uint8_t)(0xF0 | c >> 18); o[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
        o[2] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[3] = (uint8_t)(0x80 | (c & 63));
    }
}

static void set_range(uint64_t s[4], unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi; b++) s[b >> 6] |= 1ull << (b & 63);
}

// Adds to rule r the alternatives for [lo, hi] (same encoded length, no surrogates), splitting it
// until every byte position is one contiguous range (the classic UTF-8 range decomposition).
static void utf8_split(gram *g, int32_t r, uint64_t ascii[4], uint32_t lo, uint32_t hi) {
    if (g->failed || lo > hi) return;
    static const uint32_t len_max[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i]) {
            utf8_split(g, r, ascii, lo, len_max[i]);
            utf8_split(g, r, ascii, len_max[i] + 1, hi);
            return;
        }
    if (hi < 0x80) { set_range(ascii, lo, hi); return; }
    const int n = utf8_len(lo);
    for (int i = 1; i < n; i++) {
        const uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) { utf8_split(g, r, ascii, lo, lo | m); utf8_split(g, r, ascii, (lo | m) + 1, hi); return; }
            if ((hi & m) != m) { utf8_split(g, r, ascii, lo, (hi & ~m) - 1); utf8_split(g, r, ascii, hi & ~m, hi); return; }
        }
    }
    uint8_t a[4], b[4];
    utf8_encode(lo, a);
    utf8_encode(hi, b);
    int32_t seq[4];
    for (int i = 0; i < n; i++) {
        uint64_t s[4] = {0};
        set_range(s, a[i], b[i]);
        seq[i] = gram_class(g, s);
    }
    gram_add_alt(g, r, seq, (size_t)n);
}

int32_t gram_codepoints(gram *g, const uint32_t *lo, const uint32_t *hi, size_t n) {
    const int32_t r = gram_new_rule(g, NULL);
    if (r < 0) return -1;
    uint64_t ascii[4] = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t a = lo[i], b = hi[i] > 0x10FFFF ? 0x10FFFF : hi[i];
        if (a > b) continue;
        if (a < 0xD800 && b >= 0xD800) {
            utf8_split(g, r, ascii, a, 0xD7FF);
            a = 0xE000;
        } else if (a >= 0xD800 && a <= 0xDFFF) a = 0xE000;
        if (a <= b) utf8_split(g, r, ascii, a, b);
    }
    if (ascii[0] | ascii[1]) {
        const int32_t c = gram_class(g, ascii);
        gram_add_alt(g, r, &c, 1);
    }
    return g->failed ? -1 : r;
}

int32_t gram_repeat(gram *g, const int32_t *item, size_t n, int64_t min, int64_t max) {
    if (g->failed) return -1;
    if (max >= 0 && max < min) { gram_fail(g, TV_ERR_INVALID); return -1; }
    if ((uint64_t)min * (n + 1) > g->max_syms || (max > 0 && (uint64_t)max * (n + 2) > g->max_syms)) {
        gram_fail(g, TV_ERR_RANGE);
        return -1;
    }
    int32_t one;  // the item as one symbol
    if (n == 1) one = item[0];
    else {
        one = gram_new_rule(g, NULL);
        if (!gram_add_alt(g, one, item, n)) return -1;
    }
    // tail: what may follow the min mandatory copies
    int32_t tail = -1;
    if (max < 0) {          // star ::= one star | ""
        tail = gram_new_rule(g, NULL);
        const int32_t alt[2] = {one, tail};
        gram_add_alt(g, tail, alt, 2);
        gram_add_alt(g, tail, NULL, 0);
    } else {                // opt_k ::= one opt_{k-1} | ""
        for (int64_t k = 0; k < max - min; k++) {
            const int32_t r = gram_new_rule(g, NULL);
            const int32_t alt[2] = {one, tail};
            gram_add_alt(g, r, alt, tail >= 0 ? 2 : 1);
            gram_add_alt(g, r, NULL, 0);
            tail = r;
        }
    }
    const int32_t r = gram_new_rule(g, NULL);
    if (r < 0) return -1;
    gram_seq s = {0};
    for (int64_t k = 0; k < min; k++) gram_seq_push(g, &s, one);
    if (tail >= 0) gram_seq_push(g, &s, tail);
    gram_add_alt(g, r, s.v, s.n);
    gram_seq_free(&s);
    return g->failed ? -1 : r;
}

// ---- checks ----
tv_status gram_check(gram *g, tv_error *err) {
    if (g->failed) return gram_failure(g, err);
    if (g->root < 0 || (size_t)g->root >= g->n_rules) return err_fail(err, TV_ERR_INVALID, "the grammar has no root rule");
    const size_t nr = g->n_rules;
    for (size_t i = 0; i < nr; i++) {
        if (!g->rules[i].defined) return err_fail(err, TV_ERR_INVALID, "rule '%s' is used but not defined", g->rules[i].name);
        for (size_t k = 0; k < g->rules[i].n; k++)
            if (g->rules[i].syms[k] >= (int32_t)nr) return err_fail(err, TV_ERR_INVALID, "bad rule reference");
    }
    bool *nullable = mem_calloc(nr ? nr : 1, sizeof *nullable);
    uint8_t *mark = mem_calloc(nr ? nr : 1, 1);
    int32_t *stack = mem_malloc((nr ? nr : 1) * 2 * sizeof *stack);
    tv_status st = TV_OK;
    if (!nullable || !mark || !stack) { st = err_fail(err, TV_ERR_NOMEM, "out of memory checking the grammar"); goto done; }
    for (size_t i = 0; i < nr; i++) g->rules[i].productive = false;
    for (bool changed = true; changed;) {   // fixpoints: productive and nullable
        changed = false;
        for (size_t i = 0; i < nr; i++) {
            gram_rule *r = &g->rules[i];
            bool prod = true, nul = true;
            for (size_t k = 0; k <= r->n; k++) {
                if (k == r->n || r->syms[k] == GRAM_ALT) {   // end of an alternative
                    if (prod && !r->productive) { r->productive = true; changed = true; }
                    if (nul && !nullable[i]) { nullable[i] = true; changed = true; }
                    prod = nul = true;
                    continue;
                }
                const int32_t s = r->syms[k];
                if (gram_is_class(s)) { nul = false; continue; }
                if (!g->rules[s].productive) prod = false;
                if (!nullable[s]) nul = false;
            }
        }
    }
    if (!g->rules[g->root].productive) {
        st = err_fail(err, TV_ERR_INVALID, "the grammar cannot match anything (unsatisfiable)");
        goto done;
    }
    // left recursion: a cycle in "r may begin with s" (through nullable prefixes); iterative DFS
    // with mark 0 = new, 1 = on the path, 2 = done
    for (size_t root = 0; root < nr; root++) {
        if (mark[root]) continue;
        size_t sp = 0;
        stack[sp++] = (int32_t)root; stack[sp++] = 0;   // (rule, next symbol index to scan)
        mark[root] = 1;
        while (sp) {
            const int32_t ri = stack[sp - 2];
            gram_rule *r = &g->rules[ri];
            size_t k = (size_t)stack[sp - 1];
            int32_t next = -1;
            // scan symbols from k: a reference at an alternative start or after nullable refs
            while (k < r->n) {
                size_t j = k;
                while (j > 0 && r->syms[j - 1] != GRAM_ALT) {   // is every symbol before j in this alt nullable?
                    const int32_t p = r->syms[j - 1];
                    if (gram_is_class(p) || !nullable[p]) break;
                    j--;
                }
                const bool at_start = j == 0 || r->syms[j - 1] == GRAM_ALT;
                const int32_t s = r->syms[k++];
                if (at_start && s >= 0 && g->rules[s].productive) { next = s; break; }
            }
            stack[sp - 1] = (int32_t)k;
            if (next < 0) { mark[ri] = 2; sp -= 2; continue; }
            if (mark[next] == 1) {
                st = err_fail(err, TV_ERR_INVALID, "rule '%s' is left-recursive", g->rules[next].name);
                goto done;
            }
            if (mark[next] == 0) { mark[next] = 1; stack[sp++] = next; stack[sp++] = 0; }
        }
    }
    for (size_t i = 0; i < nr; i++) g->rules[i].nullable = nullable[i];
done:
    free(nullable);
    free(mark);
    free(stack);
    return st;
}

// ---- literal sets ----
static int lit_cmp(const void *a, const void *b) {
    const gram_lit *x = a, *y = b;
    const int r = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

void gram_lit_sort(gram_lit *l, size_t n) { if (n) qsort(l, n, sizeof *l, lit_cmp); }

// Rule deriving the suffixes from byte d of l[0..n) (sorted, sharing their first d bytes).
static int32_t lit_trie(gram *g, const gram_lit *l, size_t n, size_t d) {
    const int32_t r = gram_new_rule(g, NULL);
    size_t i = 0;
    if (i < n && l[i].n == d) {   // one ends here (duplicates too)
        gram_add_alt(g, r, NULL, 0);
        while (i < n && l[i].n == d) i++;
    }
    while (i < n && !g->failed) {
        size_t j = i + 1;
        while (j < n && l[j].s[d] == l[i].s[d]) j++;
        // the run of bytes every one of l[i..j) shares (sorted: the first and last decide, as
        // long as none ends inside it)
        size_t e = d + 1;
        for (;;) {
            bool all = true;
            for (size_t k = i; k < j && all; k++) all = l[k].n > e && l[k].s[e] == l[i].s[e];
            if (!all) break;
            e++;
        }
        gram_seq s = {0};
        gram_seq_literal(g, &s, l[i].s + d, e - d);
        gram_seq_push(g, &s, lit_trie(g, l + i, j - i, e));
        gram_add_alt(g, r, s.v, s.n);
        gram_seq_free(&s);
        i = j;
    }
    return g->failed ? -1 : r;
}

int32_t gram_literal_set(gram *g, gram_lit *l, size_t n) {
    gram_lit_sort(l, n);
    return lit_trie(g, l, n, 0);
}
