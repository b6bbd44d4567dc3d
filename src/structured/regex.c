// regex.c — regular expressions -> grammar IR (see regex.h). A recursive-descent parser that emits
// rules as it goes: alternation = a rule with one alternative per branch, a quantifier =
// gram_repeat, a class = the UTF-8 decomposition of its code-point ranges.
#include "structured/regex.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

#define REGEX_MAX_DEPTH 200
#define REGEX_MAX_COUNT 100000   // {n,m} bounds above this are refused

typedef struct range { uint32_t lo, hi; } range;
typedef struct rset { range *v; size_t n, cap; } rset;

typedef struct rx {
    gram *g;
    const char *p;
    size_t len, pos;
    regex_mode mode;
    tv_error *err;
    bool failed;
    int depth;
} rx;

static bool rx_fail(rx *r, size_t at, const char *what) {
    if (!r->failed) {
        r->failed = true;
        err_fail(r->err, TV_ERR_INVALID, "regex at offset %zu: %s", at, what);
    }
    return false;
}

static bool rset_add(rx *r, rset *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        range *nv = array_grow(s->v, &s->cap, s->n + 1, sizeof *nv);
        if (!nv) { gram_fail(r->g, TV_ERR_NOMEM); return false; }
        s->v = nv;
    }
    s->v[s->n++] = (range){lo, hi};
    return true;
}

static int range_cmp(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void rset_normalize(rset *s) {
    if (!s->n) return;
    qsort(s->v, s->n, sizeof *s->v, range_cmp);
    size_t o = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (s->v[i].lo <= s->v[o].hi + 1) { if (s->v[i].hi > s->v[o].hi) s->v[o].hi = s->v[i].hi; }
        else s->v[++o] = s->v[i];
    }
    s->n = o + 1;
}

static bool rset_negate(rx *r, rset *s) {
    rset_normalize(s);
    rset o = {0};
    uint32_t next = 0;
    bool ok = true;
    for (size_t i = 0; i < s->n && ok; i++) {
        if (s->v[i].lo > next) ok = rset_add(r, &o, next, s->v[i].lo - 1);
        next = s->v[i].hi + 1;
    }
    if (ok && next <= 0x10FFFF) ok = rset_add(r, &o, next, 0x10FFFF);
    free(s->v);
    *s = o;
    return ok;
}

int32_t regex_codepoint_class(gram *g, const uint32_t *lo, const uint32_t *hi, size_t n, regex_mode mode) {
    if (mode == REGEX_TEXT) return gram_codepoints(g, lo, hi, n);
    // JSON string body: plain code points except '"', '\\' and controls, plus escapes for those
    uint32_t *plo = mem_malloc((n * 3 + 1) * sizeof *plo), *phi = mem_malloc((n * 3 + 1) * sizeof *phi);
    if (!plo || !phi) { free(plo); free(phi); gram_fail(g, TV_ERR_NOMEM); return -1; }
    size_t m = 0;
    bool special[0x60] = {0};   // controls, '"' (0x22), '\\' (0x5C) present in the set
    for (size_t i = 0; i < n; i++) {
        uint32_t a = lo[i], b = hi[i];
        for (uint32_t c = a; c <= b && c < 0x60; c++)
            if (c < 0x20 || c == '"' || c == '\\') special[c] = true;
        // cut [a, b] around the specials
        while (a <= b) {
            while (a <= b && a < 0x60 && (a < 0x20 || a == '"' || a == '\\')) a++;
            if (a > b) break;
            uint32_t e = b;
            if (a < '"' && e >= '"') e = '"' - 1;
            else if (a < '\\' && e >= '\\') e = '\\' - 1;
            plo[m] = a; phi[m] = e; m++;
            if (e == 0xFFFFFFFFu) break;
            a = e + 1;
        }
    }
    const int32_t r = gram_new_rule(g, NULL);
    if (r >= 0 && m) {
        const int32_t cp = gram_codepoints(g, plo, phi, m);
        gram_add_alt(g, r, &cp, 1);
    }
    free(plo);
    free(phi);
    // the escapes, factored by their common prefixes (one parse stack for all of them, not one per
    // escape): '\\' then one of the short escape letters, or "u00" then a high hex digit 0/1 and
    // the low digits of the specials under it
    uint64_t one[4] = {0}, low[2][4] = {{0}};
    for (uint32_t c = 0; c < 0x60; c++) {
        if (!special[c]) continue;
        uint8_t letter;
        switch (c) {
        case '"': letter = '"'; break;
        case '\\': letter = '\\'; break;
        case '\n': letter = 'n'; break;
        case '\t': letter = 't'; break;
        case '\r': letter = 'r'; break;
        case '\b': letter = 'b'; break;
        case '\f': letter = 'f'; break;
        default: letter = 0;
        }
        if (letter) one[letter >> 6] |= 1ull << (letter & 63);
        else {
            const uint8_t d = (uint8_t)"0123456789abcdef"[c & 15];
            low[c >> 4][d >> 6] |= 1ull << (d & 63);
        }
    }
    const bool any_one = one[0] | one[1], any_u[2] = {low[0][0] | low[0][1], low[1][0] | low[1][1]};
    if (r >= 0 && (any_one || any_u[0] || any_u[1])) {
        const int32_t esc = gram_new_rule(g, NULL);   // what follows the backslash
        if (any_one) {
            const int32_t c1 = gram_class(g, one);
            gram_add_alt(g, esc, &c1, 1);
        }
        if (any_u[0] || any_u[1]) {
            const int32_t hx = gram_new_rule(g, NULL);   // the last two hex digits
            for (int h = 0; h < 2; h++) {
                if (!any_u[h]) continue;
                const int32_t pair[2] = {gram_byte(g, (uint8_t)('0' + h)), gram_class(g, low[h])};
                gram_add_alt(g, hx, pair, 2);
            }
            const int32_t u[4] = {gram_byte(g, 'u'), gram_byte(g, '0'), gram_byte(g, '0'), hx};
            gram_add_alt(g, esc, u, 4);
        }
        const int32_t alt[2] = {gram_byte(g, '\\'), esc};
        gram_add_alt(g, r, alt, 2);
    }
    return g->failed ? -1 : r;
}

// Decodes one UTF-8 code point at r->pos (advancing); invalid UTF-8 fails.
static bool rx_next_cp(rx *r, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)r->p + r->pos;
    const size_t left = r->len - r->pos;
    if (!left) return rx_fail(r, r->pos, "unexpected end");
    uint32_t c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || n > left) return rx_fail(r, r->pos, "invalid UTF-8");
    if (n > 1) c &= 0x3F >> (n - 1);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return rx_fail(r, r->pos, "invalid UTF-8");
        c = c << 6 | (s[i] & 0x3F);
    }
    r->pos += n;
    *cp = c;
    return true;
}

static bool add_perl_class(rx *r, rset *s, char k) {
    rset t = {0};
    bool ok = true;
    switch (k | 0x20) {
    case 'd': ok = rset_add(r, &t, '0', '9'); break;
    case 'w': ok = rset_add(r, &t, '0', '9') && rset_add(r, &t, 'A', 'Z') && rset_add(r, &t, '_', '_') &&
                   rset_add(r, &t, 'a', 'z'); break;
    default: {   // JavaScript \s
        static const uint32_t ws[][2] = {{9, 13}, {32, 32}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                                         {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
                                         {0xFEFF, 0xFEFF}};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0] && ok; i++) ok = rset_add(r, &t, ws[i][0], ws[i][1]);
    }
    }
    if (ok && k >= 'A' && k <= 'Z') ok = rset_negate(r, &t);
    for (size_t i = 0; ok && i < t.n; i++) ok = rset_add(r, s, t.v[i].lo, t.v[i].hi);
    free(t.v);
    return ok;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

// After a backslash: a single code point (*cp, returns 1), a class added to s (returns 2), or 0 on error.
static int rx_escape(rx *r, rset *s, uint32_t *cp, bool in_class) {
    const size_t at = r->pos - 1;
    if (r->pos >= r->len) return rx_fail(r, at, "trailing backslash"), 0;
    const char c = r->p[r->pos++];
    switch (c) {
    case 'd': case 'w': case 's': case 'D': case 'W': case 'S':
        return add_perl_class(r, s, c) ? 2 : 0;
    case 'n': *cp = '\n'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case '0': *cp = 0; return 1;
    case 'b':
        if (in_class) { *cp = '\b'; return 1; }
        return rx_fail(r, at, "word boundaries (\\b) are not supported"), 0;
    case 'x': case 'u': {
        uint32_t v = 0;
        size_t nd = c == 'x' ? 2 : 4;
        bool braced = c == 'u' && r->pos < r->len && r->p[r->pos] == '{';
        if (braced) r->pos++, nd = 6;
        size_t k = 0;
        for (; k < nd && r->pos < r->len && hexval(r->p[r->pos]) >= 0; k++) v = v << 4 | (uint32_t)hexval(r->p[r->pos++]);
        if (braced) {
            if (!k || r->pos >= r->len || r->p[r->pos] != '}') return rx_fail(r, at, "bad \\u{...} escape"), 0;
            r->pos++;
        } else if (k != nd) return rx_fail(r, at, "bad hex escape"), 0;
        if (v > 0x10FFFF) return rx_fail(r, at, "code point out of range"), 0;
        *cp = v;
        return 1;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9'))
            return rx_fail(r, at, c >= '1' && c <= '9' ? "backreferences are not supported"
                                                       : "unknown escape (\\B, \\c, \\p, \\k ... are not supported)"), 0;
        r->pos--;
        return rx_next_cp(r, cp) ? 1 : 0;
    }
}

static int32_t rset_sym(rx *r, rset *s) {
    rset_normalize(s);
    uint32_t *lo = mem_malloc((s->n + 1) * sizeof *lo), *hi = mem_malloc((s->n + 1) * sizeof *hi);
    if (!lo || !hi) { free(lo); free(hi); gram_fail(r->g, TV_ERR_NOMEM); return -1; }
    for (size_t i = 0; i < s->n; i++) { lo[i] = s->v[i].lo; hi[i] = s->v[i].hi; }
    const int32_t sym = regex_codepoint_class(r->g, lo, hi, s->n, r->mode);
    free(lo);
    free(hi);
    return sym;
}

// One literal code point appended to seq.
static bool push_cp(rx *r, gram_seq *seq, uint32_t cp) {
    if (r->mode == REGEX_TEXT || (cp >= 0x20 && cp != '"' && cp != '\\')) {
        uint8_t b[4];
        int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n == 1) b[0] = (uint8_t)cp;
        else if (n == 2) { b[0] = (uint8_t)(0xC0 | cp >> 6); b[1] = (uint8_t)(0x80 | (cp & 63)); }
        else if (n == 3) { b[0] = (uint8_t)(0xE0 | cp >> 12); b[1] = (uint8_t)(0x80 | ((cp >> 6) & 63)); b[2] = (uint8_t)(0x80 | (cp & 63)); }
        else { b[0] = (uint8_t)(0xF0 | cp >> 18); b[1] = (uint8_t)(0x80 | ((cp >> 12) & 63)); b[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); b[3] = (uint8_t)(0x80 | (cp & 63)); }
        return gram_seq_literal(r->g, seq, (const char *)b, (size_t)n);
    }
    const uint32_t one = cp;
    const int32_t sym = regex_codepoint_class(r->g, &one, &one, 1, r->mode);
    return sym != -1 && gram_seq_push(r->g, seq, sym);
}

static int32_t rx_alt(rx *r);

// A bracket class after '['.
static int32_t rx_class(rx *r) {
    const size_t at = r->pos - 1;
    rset s = {0};
    bool neg = r->pos < r->len && r->p[r->pos] == '^';
    if (neg) r->pos++;
    bool first = true;
    while (!r->failed) {
        if (r->pos >= r->len) { rx_fail(r, at, "unterminated character class"); break; }
        if (r->p[r->pos] == ']' && !first) { r->pos++; break; }
        first = false;
        uint32_t lo;
        int kind = 1;
        if (r->p[r->pos] == '\\') { r->pos++; kind = rx_escape(r, &s, &lo, true); }
        else if (r->p[r->pos] == ']') { r->pos++; lo = ']'; }
        else if (!rx_next_cp(r, &lo)) kind = 0;
        if (kind != 1) { if (!kind) break; continue; }
        uint32_t hi = lo;
        if (r->pos + 1 < r->len && r->p[r->pos] == '-' && r->p[r->pos + 1] != ']') {
            const size_t dash = r->pos++;
            int k2 = 1;
            if (r->p[r->pos] == '\\') { r->pos++; rset tmp = {0}; k2 = rx_escape(r, &tmp, &hi, true); free(tmp.v); }
            else if (!rx_next_cp(r, &hi)) k2 = 0;
            if (k2 != 1) { if (k2 == 2) rx_fail(r, dash, "class escape as a range end"); break; }
            if (hi < lo) { rx_fail(r, dash, "range out of order"); break; }
        }
        if (!rset_add(r, &s, lo, hi)) break;
    }
    int32_t sym = -1;
    if (!r->failed && !r->g->failed && (!neg || rset_negate(r, &s))) sym = rset_sym(r, &s);
    free(s.v);
    return sym;
}

// Parses a {n}, {n,}, {n,m} quantifier at r->pos ('{' there). false when the text is not one (the
// '{' is then a literal, as JavaScript reads it).
static bool rx_braces(rx *r, int64_t *mn, int64_t *mx) {
    size_t i = r->pos + 1;
    int64_t a = 0, b = -1;
    size_t d = 0;
    while (i < r->len && r->p[i] >= '0' && r->p[i] <= '9' && d < 12) a = a * 10 + (r->p[i++] - '0'), d++;
    if (!d) return false;
    if (i < r->len && r->p[i] == ',') {
        i++;
        size_t d2 = 0;
        int64_t v = 0;
        while (i < r->len && r->p[i] >= '0' && r->p[i] <= '9' && d2 < 12) v = v * 10 + (r->p[i++] - '0'), d2++;
        b = d2 ? v : -1;
    } else b = a;
    if (i >= r->len || r->p[i] != '}') return false;
    r->pos = i + 1;
    *mn = a;
    *mx = b;
    return true;
}

// concat: appends the branch's symbols to seq.
static bool rx_concat(rx *r, gram_seq *seq) {
    while (!r->failed && !r->g->failed && r->pos < r->len) {
        const char c = r->p[r->pos];
        if (c == '|' || c == ')') return true;
        const size_t at = r->pos;
        const size_t start = seq->n;
        if (c == '(') {
            r->pos++;
            if (r->pos < r->len && r->p[r->pos] == '?') {
                if (r->pos + 1 < r->len && r->p[r->pos + 1] == ':') r->pos += 2;
                else if (r->pos + 1 < r->len && r->p[r->pos + 1] == '<' && r->pos + 2 < r->len &&
                         r->p[r->pos + 2] != '=' && r->p[r->pos + 2] != '!') {
                    const char *e = memchr(r->p + r->pos, '>', r->len - r->pos);
                    if (!e) return rx_fail(r, at, "unterminated group name");
                    r->pos = (size_t)(e - r->p) + 1;
                } else if (r->pos + 1 < r->len && r->p[r->pos + 1] == 'P' && r->pos + 2 < r->len && r->p[r->pos + 2] == '<') {
                    const char *e = memchr(r->p + r->pos, '>', r->len - r->pos);
                    if (!e) return rx_fail(r, at, "unterminated group name");
                    r->pos = (size_t)(e - r->p) + 1;
                } else return rx_fail(r, at, "lookarounds and inline flags are not supported");
            }
            if (++r->depth > REGEX_MAX_DEPTH) return rx_fail(r, at, "groups nested too deeply");
            const int32_t g = rx_alt(r);
            r->depth--;
            if (g < 0) return false;
            if (r->pos >= r->len || r->p[r->pos] != ')') return rx_fail(r, at, "unclosed group");
            r->pos++;
            if (!gram_seq_push(r->g, seq, g)) return false;
        } else if (c == '[') {
            r->pos++;
            const int32_t s = rx_class(r);
            if (s == -1 || !gram_seq_push(r->g, seq, s)) return false;
        } else if (c == '.') {
            r->pos++;
            rset s = {0};
            bool ok = rset_add(r, &s, '\n', '\n') && rset_add(r, &s, '\r', '\r') && rset_add(r, &s, 0x2028, 0x2029) &&
                      rset_negate(r, &s);
            const int32_t sym = ok ? rset_sym(r, &s) : -1;
            free(s.v);
            if (sym == -1 || !gram_seq_push(r->g, seq, sym)) return false;
        } else if (c == '\\') {
            r->pos++;
            rset s = {0};
            uint32_t cp;
            const int k = rx_escape(r, &s, &cp, false);
            int32_t sym = 0;
            if (k == 2) sym = rset_sym(r, &s);
            free(s.v);
            if (!k || sym == -1) return false;
            if (k == 2 ? !gram_seq_push(r->g, seq, sym) : !push_cp(r, seq, cp)) return false;
        } else if (c == '*' || c == '+' || c == '?') {
            return rx_fail(r, at, "quantifier without anything to repeat");
        } else if (c == '^' || c == '$') {
            return rx_fail(r, at, "anchors are only supported at the start (^) and end ($)");
        } else {
            uint32_t cp;
            if (!rx_next_cp(r, &cp) || !push_cp(r, seq, cp)) return false;
        }
        // quantifiers on the atom just added (seq[start..])
        while (r->pos < r->len && !r->failed) {
            const char q = r->p[r->pos];
            int64_t mn, mx;
            const size_t qat = r->pos;
            if (q == '*') { mn = 0; mx = -1; r->pos++; }
            else if (q == '+') { mn = 1; mx = -1; r->pos++; }
            else if (q == '?') { mn = 0; mx = 1; r->pos++; }
            else if (q == '{' && rx_braces(r, &mn, &mx)) {
                if (mn > REGEX_MAX_COUNT || mx > REGEX_MAX_COUNT) return rx_fail(r, qat, "repetition count too large");
                if (mx >= 0 && mx < mn) return rx_fail(r, qat, "repetition {n,m} with m < n");
            } else break;
            if (r->pos < r->len && r->p[r->pos] == '?') r->pos++;
            else if (r->pos < r->len && r->p[r->pos] == '+') return rx_fail(r, r->pos, "possessive quantifiers are not supported");
            const int32_t rep = gram_repeat(r->g, seq->v + start, seq->n - start, mn, mx);
            if (rep < 0) return r->g->fail_code == TV_ERR_RANGE ? rx_fail(r, qat, "the regex is too large") : false;
            seq->n = start;
            if (!gram_seq_push(r->g, seq, rep)) return false;
        }
    }
    return !r->failed && !r->g->failed;
}

static int32_t rx_alt(rx *r) {
    const int32_t rule = gram_new_rule(r->g, NULL);
    if (rule < 0) return -1;
    for (;;) {
        gram_seq seq = {0};
        const bool ok = rx_concat(r, &seq) && gram_add_alt(r->g, rule, seq.v, seq.n);
        gram_seq_free(&seq);
        if (!ok) return -1;
        if (r->pos < r->len && r->p[r->pos] == '|') { r->pos++; continue; }
        return rule;
    }
}

int32_t regex_compile(gram *g, const char *pat, size_t len, regex_mode mode, bool search, tv_error *err) {
    rx r = {.g = g, .p = pat, .len = len, .mode = mode, .err = err};
    bool anchored_start = len && pat[0] == '^';
    bool anchored_end = false;
    if (len && pat[len - 1] == '$') {   // a '$' that is not escaped
        size_t bs = 0;
        while (bs + 1 < len && pat[len - 2 - bs] == '\\') bs++;
        anchored_end = bs % 2 == 0;
    }
    if (anchored_start) r.pos = 1;
    if (anchored_end) r.len = len - 1;
    if (r.pos > r.len) r.len = r.pos;
    const int32_t body = rx_alt(&r);
    if (body >= 0 && r.pos < r.len) {
        rx_fail(&r, r.pos, r.p[r.pos] == ')' ? "unmatched ')'" : "unexpected character");
        return -1;
    }
    if (body < 0) {
        if (!r.failed) gram_failure(g, err);
        return -1;
    }
    if (!search || (anchored_start && anchored_end)) return body;
    // unanchored side: any code points there
    rset all = {0};
    int32_t any = -1, star = -1;
    if (rset_add(&r, &all, 0, 0x10FFFF) && (any = rset_sym(&r, &all)) >= 0) star = gram_repeat(g, &any, 1, 0, -1);
    free(all.v);
    gram_seq s = {0};
    if (star >= 0 && !anchored_start) gram_seq_push(g, &s, star);
    gram_seq_push(g, &s, body);
    if (star >= 0 && !anchored_end) gram_seq_push(g, &s, star);
    const int32_t rule = gram_rule_of(g, NULL, &s, 1);
    gram_seq_free(&s);
    if (rule < 0) gram_failure(g, err);
    return rule;
}
