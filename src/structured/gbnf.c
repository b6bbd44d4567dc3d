// gbnf.c — GBNF -> grammar IR (see gbnf.h): a recursive-descent parser over the source bytes.
#include "structured/gbnf.h"

#include <stdlib.h>
#include <string.h>

#include "structured/regex.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

#define GBNF_MAX_DEPTH 200
#define GBNF_MAX_COUNT 100000

typedef struct gp {
    gram *g;
    const char *s;
    size_t len, pos;
    tv_error *err;
    bool failed;
    int depth;
} gp;

static bool gp_fail(gp *p, size_t at, const char *what) {
    if (p->failed) return false;
    p->failed = true;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n') { line++; col = 1; }
        else col++;
    }
    err_fail(p->err, TV_ERR_INVALID, "grammar line %zu, column %zu: %s", line, col, what);
    return false;
}

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Skips spaces, tabs and comments; newlines too when newline_ok.
static void skip_space(gp *p, bool newline_ok) {
    while (p->pos < p->len) {
        const char c = p->s[p->pos];
        if (c == ' ' || c == '\t') p->pos++;
        else if (c == '#') { while (p->pos < p->len && p->s[p->pos] != '\n') p->pos++; }
        else if ((c == '\n' || c == '\r') && newline_ok) p->pos++;
        else break;
    }
}

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

// One (possibly escaped) code point of a literal or class; false on error.
static bool read_char(gp *p, uint32_t *cp) {
    const size_t at = p->pos;
    if (p->pos >= p->len) return gp_fail(p, at, "unexpected end of input");
    const uint8_t c = (uint8_t)p->s[p->pos];
    if (c == '\\') {
        if (++p->pos >= p->len) return gp_fail(p, at, "unexpected end of input after '\\'");
        const char e = p->s[p->pos++];
        int nd = 0;
        switch (e) {
        case 'n': *cp = '\n'; return true;
        case 'r': *cp = '\r'; return true;
        case 't': *cp = '\t'; return true;
        case 'x': nd = 2; break;
        case 'u': nd = 4; break;
        case 'U': nd = 8; break;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': *cp = (uint8_t)e; return true;
        default: return gp_fail(p, at, "unknown escape");
        }
        uint32_t v = 0;
        for (int i = 0; i < nd; i++) {
            if (p->pos >= p->len || hexv(p->s[p->pos]) < 0) return gp_fail(p, at, "bad hex escape");
            v = v << 4 | (uint32_t)hexv(p->s[p->pos++]);
        }
        if (v > 0x10FFFF) return gp_fail(p, at, "code point out of range");
        *cp = v;
        return true;
    }
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || p->pos + n > p->len) return gp_fail(p, at, "invalid UTF-8");
    uint32_t v = n == 1 ? c : c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        const uint8_t b = (uint8_t)p->s[p->pos + i];
        if ((b & 0xC0) != 0x80) return gp_fail(p, at, "invalid UTF-8");
        v = v << 6 | (b & 0x3F);
    }
    p->pos += n;
    *cp = v;
    return true;
}

static bool push_cp(gp *p, gram_seq *seq, uint32_t cp) {
    const uint32_t one = cp;
    if (cp < 0x80) return gram_seq_push(p->g, seq, gram_byte(p->g, (uint8_t)cp));
    const int32_t s = regex_codepoint_class(p->g, &one, &one, 1, REGEX_TEXT);
    return s != -1 && gram_seq_push(p->g, seq, s);
}

typedef struct { uint32_t lo, hi; } cprange;
static int cpr_cmp(const void *a, const void *b) {
    const cprange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

// A class after '['.
static int32_t parse_class(gp *p) {
    const size_t at = p->pos - 1;
    bool neg = p->pos < p->len && p->s[p->pos] == '^';
    if (neg) p->pos++;
    cprange *r = NULL;
    size_t n = 0, cap = 0;
    int32_t sym = -1;
    for (;;) {
        if (p->pos >= p->len) { gp_fail(p, at, "unterminated character class"); goto done; }
        if (p->s[p->pos] == ']') { p->pos++; break; }
        uint32_t lo, hi;
        if (!read_char(p, &lo)) goto done;
        hi = lo;
        if (p->pos + 1 < p->len && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
            p->pos++;
            if (!read_char(p, &hi)) goto done;
            if (hi < lo) { gp_fail(p, at, "range out of order in character class"); goto done; }
        }
        cprange *nr = array_grow(r, &cap, n + 1, sizeof *r);
        if (!nr) { gram_fail(p->g, TV_ERR_NOMEM); goto done; }
        r = nr;
        r[n++] = (cprange){lo, hi};
    }
    if (n) qsort(r, n, sizeof *r, cpr_cmp);
    size_t m = 0;   // merge
    for (size_t i = 0; i < n; i++) {
        if (m && r[i].lo <= r[m - 1].hi + 1) { if (r[i].hi > r[m - 1].hi) r[m - 1].hi = r[i].hi; }
        else r[m++] = r[i];
    }
    uint32_t *lo = mem_malloc((m + 2) * sizeof *lo), *hi = mem_malloc((m + 2) * sizeof *hi);
    size_t k = 0;
    if (!lo || !hi) { free(lo); free(hi); gram_fail(p->g, TV_ERR_NOMEM); goto done; }
    if (!neg) for (size_t i = 0; i < m; i++) { lo[k] = r[i].lo; hi[k++] = r[i].hi; }
    else {
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (r[i].lo > next) { lo[k] = next; hi[k++] = r[i].lo - 1; }
            next = r[i].hi + 1;
        }
        if (next <= 0x10FFFF) { lo[k] = next; hi[k++] = 0x10FFFF; }
    }
    // a pure-ASCII class is one byte class
    if (k && hi[k - 1] < 0x80) {
        uint64_t set[4] = {0};
        for (size_t i = 0; i < k; i++)
            for (uint32_t c = lo[i]; c <= hi[i]; c++) set[c >> 6] |= 1ull << (c & 63);
        sym = gram_class(p->g, set);
    } else sym = regex_codepoint_class(p->g, lo, hi, k, REGEX_TEXT);
    free(lo);
    free(hi);
done:
    free(r);
    return p->failed ? -1 : sym;
}

static int32_t parse_alts(gp *p, int32_t rule, bool nested);

static bool read_count(gp *p, int64_t *v) {
    size_t d = 0;
    *v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9' && d < 10) *v = *v * 10 + (p->s[p->pos++] - '0'), d++;
    return d > 0;
}

static bool parse_seq(gp *p, gram_seq *seq, bool nested) {
    for (;;) {
        skip_space(p, nested);
        if (p->pos >= p->len) return true;
        const char c = p->s[p->pos];
        const size_t at = p->pos;
        const size_t start = seq->n;
        if (c == '"') {
            p->pos++;
            for (;;) {
                if (p->pos >= p->len) return gp_fail(p, at, "unterminated literal");
                if (p->s[p->pos] == '"') { p->pos++; break; }
                uint32_t cp;
                if (!read_char(p, &cp) || !push_cp(p, seq, cp)) return false;
            }
            if (seq->n == start) {   // "" : an empty item, which a quantifier may still follow
                const int32_t e = gram_new_rule(p->g, NULL);
                if (!gram_add_alt(p->g, e, NULL, 0) || !gram_seq_push(p->g, seq, e)) return false;
            }
        } else if (c == '[') {
            p->pos++;
            const int32_t s = parse_class(p);
            if (s == -1 || !gram_seq_push(p->g, seq, s)) return false;
        } else if (c == '.') {
            p->pos++;
            const uint32_t lo = 0, hi = 0x10FFFF;
            const int32_t s = regex_codepoint_class(p->g, &lo, &hi, 1, REGEX_TEXT);
            if (s == -1 || !gram_seq_push(p->g, seq, s)) return false;
        } else if (c == '(') {
            p->pos++;
            if (++p->depth > GBNF_MAX_DEPTH) return gp_fail(p, at, "parentheses nested too deeply");
            const int32_t r = gram_new_rule(p->g, NULL);
            if (r < 0 || parse_alts(p, r, true) < 0) return false;
            p->depth--;
            skip_space(p, true);
            if (p->pos >= p->len || p->s[p->pos] != ')') return gp_fail(p, at, "expected ')' to close this '('");
            p->pos++;
            if (!gram_seq_push(p->g, seq, r)) return false;
        } else if (is_name_char(c)) {
            size_t e = p->pos;
            while (e < p->len && is_name_char(p->s[e])) e++;
            // a name followed by ::= starts the next rule: this sequence ends here
            size_t k = e;
            while (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t')) k++;
            if (k + 3 <= p->len && memcmp(p->s + k, "::=", 3) == 0) {
                if (nested) return gp_fail(p, at, "a rule definition inside parentheses");
                return true;
            }
            int32_t r = gram_find_rule(p->g, p->s + p->pos, e - p->pos);
            if (r < 0) {
                char name[128];
                const size_t nl = e - p->pos < sizeof name - 1 ? e - p->pos : sizeof name - 1;
                memcpy(name, p->s + p->pos, nl);
                name[nl] = 0;
                r = gram_new_rule(p->g, name);
            }
            p->pos = e;
            if (r < 0 || !gram_seq_push(p->g, seq, r)) return false;
        } else if (c == '<') {
            return gp_fail(p, at, "token references (<...>) are not supported");
        } else {
            return true;   // '|', ')', newline or something the caller judges
        }
        // quantifier
        skip_space(p, nested);
        if (p->pos >= p->len) return true;
        const char q = p->s[p->pos];
        int64_t mn, mx;
        const size_t qat = p->pos;
        if (q == '*') { mn = 0; mx = -1; p->pos++; }
        else if (q == '+') { mn = 1; mx = -1; p->pos++; }
        else if (q == '?') { mn = 0; mx = 1; p->pos++; }
        else if (q == '{') {
            p->pos++;
            skip_space(p, true);
            bool has_min = read_count(p, &mn);
            if (!has_min) mn = 0;
            skip_space(p, true);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                skip_space(p, true);
                if (!read_count(p, &mx)) mx = -1;
            } else {
                if (!has_min) return gp_fail(p, qat, "expected a count in {...}");
                mx = mn;
            }
            skip_space(p, true);
            if (p->pos >= p->len || p->s[p->pos] != '}') return gp_fail(p, qat, "expected '}'");
            p->pos++;
            if (mn > GBNF_MAX_COUNT || mx > GBNF_MAX_COUNT) return gp_fail(p, qat, "repetition count too large");
            if (mx >= 0 && mx < mn) return gp_fail(p, qat, "repetition {m,n} with n < m");
        } else continue;
        const int32_t rep = gram_repeat(p->g, seq->v + start, seq->n - start, mn, mx);
        if (rep < 0) return p->g->fail_code == TV_ERR_RANGE ? gp_fail(p, qat, "the grammar is too large") : false;
        seq->n = start;
        if (!gram_seq_push(p->g, seq, rep)) return false;
    }
}

// Adds alternatives to rule; returns rule or -1.
static int32_t parse_alts(gp *p, int32_t rule, bool nested) {
    for (;;) {
        gram_seq seq = {0};
        const bool ok = parse_seq(p, &seq, nested) && gram_add_alt(p->g, rule, seq.v, seq.n);
        gram_seq_free(&seq);
        if (!ok) {
            if (!p->failed) gp_fail(p, p->pos, p->g->fail_code == TV_ERR_RANGE ? "the grammar is too large" : "out of memory");
            return -1;
        }
        if (p->pos < p->len && p->s[p->pos] == '|') {
            p->pos++;
            skip_space(p, true);
            continue;
        }
        return rule;
    }
}

tv_status gbnf_parse(gram *g, const char *src, size_t len, tv_error *err) {
    gp p = {.g = g, .s = src, .len = len, .err = err};
    for (;;) {
        skip_space(&p, true);
        if (p.pos >= p.len) break;
        const size_t at = p.pos;
        size_t e = p.pos;
        while (e < p.len && is_name_char(p.s[e])) e++;
        if (e == p.pos) return gp_fail(&p, at, "expected a rule name"), TV_ERR_INVALID;
        const size_t name_end = e;
        while (e < p.len && (p.s[e] == ' ' || p.s[e] == '\t')) e++;
        if (e + 3 > p.len || memcmp(p.s + e, "::=", 3) != 0) return gp_fail(&p, e, "expected '::='"), TV_ERR_INVALID;
        int32_t r = gram_find_rule(g, p.s + p.pos, name_end - p.pos);
        if (r >= 0 && g->rules[r].defined) return gp_fail(&p, at, "rule defined twice"), TV_ERR_INVALID;
        if (r < 0) {
            char name[128];
            const size_t nl = name_end - p.pos < sizeof name - 1 ? name_end - p.pos : sizeof name - 1;
            memcpy(name, p.s + p.pos, nl);
            name[nl] = 0;
            if ((r = gram_new_rule(g, name)) < 0) return gram_failure(g, err);
        }
        p.pos = e + 3;
        skip_space(&p, true);
        if (parse_alts(&p, r, false) < 0) return err ? err->code : TV_ERR_INVALID;
        skip_space(&p, false);
        if (p.pos < p.len && p.s[p.pos] != '\n' && p.s[p.pos] != '\r' && !is_name_char(p.s[p.pos]))
            return gp_fail(&p, p.pos, p.s[p.pos] == ')' ? "unmatched ')'" : "unexpected character"), TV_ERR_INVALID;
    }
    const int32_t root = gram_find_rule(g, "root", 4);
    if (root < 0) return err_fail(err, TV_ERR_INVALID, "grammar: no rule named 'root'");
    g->root = root;
    return TV_OK;
}
