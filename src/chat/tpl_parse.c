// tpl_parse.c — Jinja template source -> AST: arena, preprocessing, lexer, recursive-descent parser.
//
// Pipeline (mirrors @huggingface/jinja with HF's trim_blocks=lstrip_blocks=true):
//   preprocess: drop one trailing "\n"; lstrip_blocks: remove [ \t]* at a line start before "{%",
//     "{#", "{-"; trim_blocks: remove the "\n" right after "%}", "#}", "-}"; drop {% generation %} tags.
//   lex:   text | "{{" expr "}}" | "{%" stmt "%}" | "{#" comment "#}"; "-" after an opener or before a
//          closer strips whitespace on that side.
//   parse (lowest to highest precedence):
//     expr     := or ("if" or ("else" expr)?)?
//     or       := and ("or" and)*        and := not ("and" not)*      not := "not" not | cmp
//     cmp      := add (("=="|"!="|"<"|">"|"<="|">="|"in"|"not in") add)*
//     add      := mul (("+"|"-"|"~") mul)*   mul := pow (("*"|"/"|"//"|"%") pow)*
//     pow      := test ("**" test)*        test := filter ("is" "not"? ident)*
//     filter   := unary ("|" ident call-args?)*   unary := ("-"|"+") unary | postfix
//     postfix  := primary ("." ident | "[" slice-or-expr "]" | call-args)*
//     primary  := number | string+ | ident | "(" expr ("," expr)* ")" | "[" ... "]" | "{" k ":" v ... "}"
// Every byte of the source is untrusted: nesting depth is bounded, every token access is bounds-checked.
#include "chat/tpl.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

// ============================== arena ==============================

typedef struct tpl_chunk { struct tpl_chunk *next; size_t cap, used; _Alignas(16) unsigned char data[]; } tpl_chunk;
struct tpl_arena { tpl_chunk *head; size_t total, budget; };

tpl_arena *tpl_arena_create(size_t budget_bytes) {
    tpl_arena *a = calloc(1, sizeof *a);
    if (a) a->budget = budget_bytes;
    return a;
}

void tpl_arena_free(tpl_arena *a) {
    if (!a) return;
    for (tpl_chunk *c = a->head, *n; c; c = n) { n = c->next; free(c); }
    free(a);
}

void *tpl_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    tpl_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > a->budget || a->total > a->budget - cap) return NULL;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap; c->used = 0;
        a->total += cap;
        if (a->head && n > 65536) {        // big one-off block: keep the current chunk in front
            c->next = a->head->next; a->head->next = c;
        } else {
            c->next = a->head; a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *tpl_strndup(tpl_arena *a, const char *s, size_t n) {
    char *p = tpl_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

// ============================== UTF-8 ==============================

uint32_t tpl_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len <= 1 || k + (size_t)len > n) { *i = k + 1; return c; }
    uint32_t cp = c & (0x7F >> len);
    for (int j = 1; j < len; j++) {
        if ((u[k + j] & 0xC0) != 0x80) { *i = k + 1; return c; }
        cp = (cp << 6) | (u[k + j] & 0x3F);
    }
    *i = k + len;
    return cp;
}

bool tpl_is_js_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

void tpl_line_col(const char *src, size_t len, size_t pos, int *line, int *col) {
    int l = 1, c = 1;
    if (pos > len) pos = len;
    for (size_t i = 0; i < pos;) {
        if (src[i] == '\n') { l++; c = 1; i++; continue; }
        tpl_utf8_next(src, len, &i);
        c++;
    }
    *line = l; *col = c;
}

// ============================== preprocessing ==============================

typedef struct { strbuf s; size_t *map; size_t map_cap; } pbuf;   // map[i]: source offset of s.p[i]

static bool pb_push(pbuf *b, char ch, size_t src_pos) {
    size_t *m = array_grow(b->map, &b->map_cap, b->s.n + 1, sizeof *m);
    if (!m) return false;
    b->map = m;
    b->map[b->s.n] = src_pos;
    return strbuf_put(&b->s, &ch, 1);
}

// Width of a JS \s character starting at s[i] (0 if none).
static size_t js_space_at(const char *s, size_t n, size_t i) {
    if (i >= n) return 0;
    size_t j = i;
    uint32_t c = tpl_utf8_next(s, n, &j);
    return tpl_is_js_space(c) ? j - i : 0;
}

// Line terminators for the JS multiline ^ anchor: \n \r U+2028 U+2029.
static bool after_line_start(const char *s, size_t i) {
    if (i == 0) return true;
    if (s[i - 1] == '\n' || s[i - 1] == '\r') return true;
    if (i >= 3 && (unsigned char)s[i - 3] == 0xE2 && (unsigned char)s[i - 2] == 0x80 &&
        ((unsigned char)s[i - 1] == 0xA8 || (unsigned char)s[i - 1] == 0xA9)) return true;
    return false;
}

// Matches `{%-?\s*(end)?generation\s*-?%}` at s[i]; returns its length (0 if none), sets strip flags.
static size_t generation_tag(const char *s, size_t n, size_t i, bool *lstrip, bool *rstrip) {
    size_t k = i;
    if (k + 2 > n || s[k] != '{' || s[k + 1] != '%') return 0;
    k += 2;
    *lstrip = k < n && s[k] == '-';
    if (*lstrip) k++;
    for (size_t w; (w = js_space_at(s, n, k)); ) k += w;
    if (k + 3 <= n && !memcmp(s + k, "end", 3) && k + 13 <= n && !memcmp(s + k + 3, "generation", 10)) k += 13;
    else if (k + 10 <= n && !memcmp(s + k, "generation", 10)) k += 10;
    else return 0;
    for (size_t w; (w = js_space_at(s, n, k)); ) k += w;
    *rstrip = k < n && s[k] == '-';
    if (*rstrip) k++;
    if (k + 2 > n || s[k] != '%' || s[k + 1] != '}') return 0;
    return k + 2 - i;
}

static bool preprocess(const char *src, size_t n, pbuf *out) {
    if (n && src[n - 1] == '\n') n--;
    // pass 1: lstrip_blocks and trim_blocks
    pbuf a = {0};
    for (size_t i = 0; i < n;) {
        if (after_line_start(src, i)) {
            size_t k = i;
            while (k < n && (src[k] == ' ' || src[k] == '\t')) k++;
            if (k > i && k + 1 < n && src[k] == '{' && (src[k + 1] == '#' || src[k + 1] == '%' || src[k + 1] == '-')) i = k;
        }
        if (i + 2 < n && (src[i] == '#' || src[i] == '%' || src[i] == '-') && src[i + 1] == '}' && src[i + 2] == '\n') {
            if (!pb_push(&a, src[i], i) || !pb_push(&a, '}', i + 1)) goto oom;
            i += 3;
            continue;
        }
        if (!pb_push(&a, src[i], i)) goto oom;
        i++;
    }
    // pass 2: remove generation tags (with their optional whitespace stripping)
    for (size_t i = 0; i < a.s.n;) {
        bool ls, rs;
        size_t len = a.s.p[i] == '{' ? generation_tag(a.s.p, a.s.n, i, &ls, &rs) : 0;
        if (!len) { if (!pb_push(out, a.s.p[i], a.map[i])) goto oom; i++; continue; }
        if (ls) {       // drop trailing JS whitespace already emitted
            for (;;) {
                size_t k = out->s.n, j = 0;
                // step back over one code point (max 4 bytes) and test it
                size_t st = k;
                while (st > 0 && k - st < 4) { st--; if (((unsigned char)out->s.p[st] & 0xC0) != 0x80) break; }
                if (st == k) break;
                j = st;
                size_t w = js_space_at(out->s.p, k, j);
                if (!w || j + w != k) break;
                out->s.n = st;
                out->s.p[st] = 0;
            }
        }
        i += len;
        if (rs) for (size_t w; (w = js_space_at(a.s.p, a.s.n, i)); ) i += w;
    }
    strbuf_free(&a.s); free(a.map);
    return true;
oom:
    strbuf_free(&a.s); free(a.map);
    return false;
}

// ============================== lexer ==============================

typedef enum {
    T_TEXT, T_NUM, T_STR, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT, T_CLOSE_STMT, T_OPEN_EXPR,
    T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET, T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD,
    T_MUL, T_POW, T_CMP, T_UNARY, T_COMMENT,
} tok_type;

typedef struct { tok_type type; const char *s; size_t n; size_t pos; } token;

typedef struct {
    // lexer
    const char *src; size_t n;        // preprocessed text
    const size_t *map;                // preprocessed offset -> original offset
    token *toks; size_t n_toks, cap_toks;
    // parser
    size_t cur;
    int depth;
    tpl_arena *arena;
    const char *orig; size_t orig_n;
    tv_error *err;
    bool failed;
} pstate;

#define TPL_MAX_DEPTH 200

static void perr(pstate *p, size_t orig_pos, tv_status code, const char *msg, const char *arg) {
    if (p->failed) return;
    p->failed = true;
    int line, col;
    tpl_line_col(p->orig, p->orig_n, orig_pos, &line, &col);
    err_fail(p->err, code, "template line %d, column %d: %s%s%s", line, col, msg, arg ? " " : "", arg ? arg : "");
}

static size_t opos(pstate *p, size_t i) { return i < p->n ? p->map[i] : p->orig_n; }

static bool push_tok(pstate *p, tok_type t, const char *s, size_t n, size_t at) {
    token *nt = array_grow(p->toks, &p->cap_toks, p->n_toks + 1, sizeof *nt);
    if (!nt) { perr(p, 0, TV_ERR_NOMEM, "out of memory", NULL); return false; }
    p->toks = nt;
    p->toks[p->n_toks++] = (token){t, s, n, opos(p, at)};
    return true;
}

static bool is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void strip_trailing_ws(pstate *p) {
    if (!p->n_toks || p->toks[p->n_toks - 1].type != T_TEXT) return;
    token *t = &p->toks[p->n_toks - 1];
    for (;;) {
        size_t k = t->n, st = k;
        while (st > 0 && k - st < 4) { st--; if (((unsigned char)t->s[st] & 0xC0) != 0x80) break; }
        if (st == k) break;
        size_t w = js_space_at(t->s, k, st);
        if (!w || st + w != k) break;
        t->n = st;
    }
    if (t->n == 0) p->n_toks--;
}

static size_t skip_ws(pstate *p, size_t i) {
    for (size_t w; (w = js_space_at(p->src, p->n, i)); ) i += w;
    return i;
}

// Appends UTF-8 of code unit/point cp to buf.
static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// String literal body starting at *i (after the quote) up to quote q; decodes escapes into the arena.
static bool lex_string(pstate *p, size_t *i, char q, size_t start) {
    size_t k = *i, end = k;
    while (end < p->n && p->src[end] != q) end += p->src[end] == '\\' ? 2 : 1;   // bound of the literal
    if (end > p->n) end = p->n;
    char *o = tpl_alloc(p->arena, end - k + 1);   // decoded is never longer than the source
    if (!o) { perr(p, 0, TV_ERR_NOMEM, "out of memory", NULL); return false; }
    size_t on = 0;
    while (k < p->n && p->src[k] != q) {
        if (p->src[k] == '\\') {
            k++;
            if (k >= p->n) { perr(p, opos(p, start), TV_ERR_FORMAT, "unexpected end of input in string literal", NULL); return false; }
            char e = p->src[k++];
            if (e == 'x' || e == 'u') {
                int len = e == 'x' ? 2 : 4;
                uint32_t cp = 0;
                for (int j = 0; j < len; j++) {
                    int h = k + (size_t)j < p->n ? hexval(p->src[k + j]) : -1;
                    if (h < 0) { perr(p, opos(p, k), TV_ERR_FORMAT, "invalid hexadecimal escape sequence", NULL); return false; }
                    cp = cp * 16 + (uint32_t)h;
                }
                k += (size_t)len;
                on += put_utf8(o + on, cp);   // <= 3 bytes for <= 6 source bytes
                continue;
            }
            char u;
            switch (e) {
                case 'n': u = '\n'; break; case 't': u = '\t'; break; case 'r': u = '\r'; break;
                case 'b': u = '\b'; break; case 'f': u = '\f'; break; case 'v': u = '\v'; break;
                case '\'': u = '\''; break; case '"': u = '"'; break; case '\\': u = '\\'; break;
                default: {
                    char b[2] = {e, 0};
                    perr(p, opos(p, k - 1), TV_ERR_FORMAT, "unexpected escaped character", b);
                    return false;
                }
            }
            o[on++] = u;
            continue;
        }
        o[on++] = p->src[k++];
        if (k >= p->n) break;
    }
    if (k >= p->n) { perr(p, opos(p, start), TV_ERR_FORMAT, "unterminated string literal", NULL); return false; }
    o[on] = 0;
    if (!push_tok(p, T_STR, o, on, start)) return false;
    *i = k + 1;
    return true;
}

typedef struct { const char *seq; tok_type type; } tok_rule;
static const tok_rule RULES[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR},
    {"(", T_LPAREN}, {")", T_RPAREN}, {"{", T_LBRACE}, {"}", T_RBRACE}, {"[", T_LBRACKET},
    {"]", T_RBRACKET}, {",", T_COMMA}, {".", T_DOT}, {":", T_COLON}, {"|", T_PIPE},
    {"<=", T_CMP}, {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP}, {">", T_CMP},
    {"+", T_ADD}, {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL}, {"//", T_MUL},
    {"/", T_MUL}, {"%", T_MUL}, {"=", T_EQUALS},
};

static bool lex(pstate *p) {
    const char *s = p->src;
    size_t n = p->n, i = 0;
    int curly = 0;
    while (i < n) {
        tok_type last = p->n_toks ? p->toks[p->n_toks - 1].type : T_TEXT;
        bool none = p->n_toks == 0;
        if (none || last == T_CLOSE_STMT || last == T_CLOSE_EXPR || last == T_COMMENT) {
            size_t st = i;
            while (i < n && !(s[i] == '{' && i + 1 < n && (s[i + 1] == '%' || s[i + 1] == '{' || s[i + 1] == '#'))) i++;
            if (i > st) { if (!push_tok(p, T_TEXT, s + st, i - st, st)) return false; continue; }
        }
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '#') {
            size_t st = i;
            i += 2;
            bool strip_before = i < n && s[i] == '-';
            if (strip_before) i++;
            size_t cs = i;
            while (!(i + 1 < n && s[i] == '#' && s[i + 1] == '}')) {
                if (i + 2 >= n) { perr(p, opos(p, st), TV_ERR_FORMAT, "missing end of comment tag", NULL); return false; }
                i++;
            }
            size_t ce = i;
            bool strip_after = ce > cs && s[ce - 1] == '-';
            if (strip_after) ce--;
            if (strip_before) strip_trailing_ws(p);
            if (!push_tok(p, T_COMMENT, s + cs, ce - cs, st)) return false;
            i += 2;
            if (strip_after) i = skip_ws(p, i);
            continue;
        }
        if (i + 2 < n && s[i] == '{' && s[i + 1] == '%' && s[i + 2] == '-') {
            strip_trailing_ws(p);
            if (!push_tok(p, T_OPEN_STMT, "{%", 2, i)) return false;
            i += 3;
            continue;
        }
        if (i + 2 < n && s[i] == '{' && s[i + 1] == '{' && s[i + 2] == '-') {
            strip_trailing_ws(p);
            if (!push_tok(p, T_OPEN_EXPR, "{{", 2, i)) return false;
            curly = 0;
            i += 3;
            continue;
        }
        {
            size_t st = i;
            i = skip_ws(p, i);
            if (i > st && i >= n) { perr(p, opos(p, st), TV_ERR_FORMAT, "unexpected end of input", NULL); return false; }
        }
        if (i >= n) break;
        if (i + 2 < n && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') {
            if (!push_tok(p, T_CLOSE_STMT, "%}", 2, i)) return false;
            i = skip_ws(p, i + 3);
            continue;
        }
        if (i + 2 < n && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') {
            if (!push_tok(p, T_CLOSE_EXPR, "}}", 2, i)) return false;
            i = skip_ws(p, i + 3);
            continue;
        }
        char c = s[i];
        if (c == '-' || c == '+') {
            last = p->n_toks ? p->toks[p->n_toks - 1].type : T_TEXT;
            if (!p->n_toks || last == T_TEXT) {
                char b[2] = {c, 0};
                perr(p, opos(p, i), TV_ERR_FORMAT, "unexpected character", b);
                return false;
            }
            if (!(last == T_IDENT || last == T_NUM || last == T_STR || last == T_RPAREN || last == T_RBRACKET)) {
                size_t st = i++;
                while (i < n && is_digit(s[i])) i++;
                if (i > st + 1 && i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                    i++;
                    while (i < n && is_digit(s[i])) i++;
                }
                if (!push_tok(p, i > st + 1 ? T_NUM : T_UNARY, s + st, i - st, st)) return false;
                continue;
            }
        }
        bool matched = false;
        for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++) {
            size_t L = strlen(RULES[r].seq);
            if (RULES[r].type == T_CLOSE_EXPR && curly > 0) continue;
            if (i + L <= n && !memcmp(s + i, RULES[r].seq, L)) {
                if (!push_tok(p, RULES[r].type, s + i, L, i)) return false;
                if (RULES[r].type == T_OPEN_EXPR) curly = 0;
                else if (RULES[r].type == T_LBRACE) curly++;
                else if (RULES[r].type == T_RBRACE) curly--;
                i += L;
                matched = true;
                break;
            }
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            size_t st = i++;
            if (!lex_string(p, &i, c, st)) return false;
            continue;
        }
        if (is_digit(c)) {
            size_t st = i;
            while (i < n && is_digit(s[i])) i++;
            bool after_dot = p->n_toks && p->toks[p->n_toks - 1].type == T_DOT;
            if (!after_dot && i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                i++;
                while (i < n && is_digit(s[i])) i++;
            }
            if (!push_tok(p, T_NUM, s + st, i - st, st)) return false;
            continue;
        }
        if (is_word(c)) {
            size_t st = i;
            while (i < n && is_word(s[i])) i++;
            if (!push_tok(p, T_IDENT, s + st, i - st, st)) return false;
            continue;
        }
        char b[8] = {0};
        size_t j = i;
        tpl_utf8_next(s, n, &j);
        memcpy(b, s + i, j - i < 4 ? j - i : 4);
        perr(p, opos(p, i), TV_ERR_FORMAT, "unexpected character", b);
        return false;
    }
    return true;
}

// ============================== parser ==============================

static token *tk(pstate *p, size_t k) { return p->cur + k < p->n_toks ? &p->toks[p->cur + k] : NULL; }
static bool is_t(pstate *p, tok_type t) { token *x = tk(p, 0); return x && x->type == t; }
static bool tok_is(token *t, const char *word) { return t && t->type == T_IDENT && t->n == strlen(word) && !memcmp(t->s, word, t->n); }
static bool is_ident(pstate *p, const char *w) { return tok_is(tk(p, 0), w); }
static size_t here(pstate *p) { token *t = tk(p, 0); return t ? t->pos : p->orig_n; }

static bool is_stmt(pstate *p, const char *w1, const char *w2, const char *w3) {
    token *a = tk(p, 0), *b = tk(p, 1);
    if (!a || a->type != T_OPEN_STMT || !b) return false;
    return tok_is(b, w1) || (w2 && tok_is(b, w2)) || (w3 && tok_is(b, w3));
}

static bool expect(pstate *p, tok_type t, const char *what) {
    if (p->failed) return false;
    token *x = tk(p, 0);
    if (!x || x->type != t) { perr(p, here(p), TV_ERR_FORMAT, x ? "expected" : "unexpected end of template, expected", what); return false; }
    p->cur++;
    return true;
}

static bool expect_word(pstate *p, const char *w) {
    if (p->failed) return false;
    if (!is_ident(p, w)) { perr(p, here(p), TV_ERR_FORMAT, tk(p, 0) ? "expected" : "unexpected end of template, expected", w); return false; }
    p->cur++;
    return true;
}

static tpl_node *mk(pstate *p, tpl_kind k, size_t pos) {
    tpl_node *nd = tpl_alloc(p->arena, sizeof *nd);
    if (!nd) { perr(p, pos, TV_ERR_NOMEM, "out of memory", NULL); return NULL; }
    nd->kind = k;
    nd->pos = (uint32_t)(pos > UINT32_MAX ? UINT32_MAX : pos);
    return nd;
}

static bool nodes_push(pstate *p, tpl_nodes *l, tpl_node *nd) {
    if (!nd) return false;
    if ((l->n & (l->n - 1)) == 0) {      // grow at powers of two (0, 1, 2, 4, ...)
        size_t cap = l->n ? l->n * 2 : 1;
        tpl_node **v = tpl_alloc(p->arena, cap * sizeof *v);
        if (!v) { perr(p, nd->pos, TV_ERR_NOMEM, "out of memory", NULL); return false; }
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
    }
    l->v[l->n++] = nd;
    return true;
}

static tpl_node *parse_expr(pstate *p);
static tpl_node *parse_any(pstate *p);
static tpl_node *parse_primary(pstate *p);

static bool enter(pstate *p) {
    if (++p->depth > TPL_MAX_DEPTH) { perr(p, here(p), TV_ERR_RANGE, "template nesting too deep", NULL); return false; }
    return true;
}
#define LEAVE(x) do { p->depth--; return (x); } while (0)

static tpl_node *parse_args_into(pstate *p, tpl_nodes *out, bool params) {
    // "(" already expected by caller? no: we consume it here.
    if (!expect(p, T_LPAREN, "'('")) return NULL;
    bool saw_kw = false, saw_spread = false;
    while (!is_t(p, T_RPAREN)) {
        if (p->failed) return NULL;
        if (!tk(p, 0)) { perr(p, here(p), TV_ERR_FORMAT, "unexpected end of template in argument list", NULL); return NULL; }
        bool kwspread = is_t(p, T_POW);
        bool spread = is_t(p, T_MUL) && tk(p, 0)->n == 1 && tk(p, 0)->s[0] == '*';
        if (params && (kwspread || spread)) { perr(p, here(p), TV_ERR_FORMAT, "argument unpacking is not allowed in parameter declarations", NULL); return NULL; }
        if (kwspread) {
            size_t at = here(p);
            p->cur++;
            tpl_node *e = mk(p, N_KWSPREAD, at);
            if (!e || !(e->a = parse_expr(p))) return NULL;
            if (!nodes_push(p, out, e)) return NULL;
            if (is_t(p, T_COMMA)) p->cur++;
            if (!is_t(p, T_RPAREN)) { perr(p, here(p), TV_ERR_FORMAT, "`**` must be applied to the final argument", NULL); return NULL; }
            break;
        }
        tpl_node *arg;
        if (spread) {
            if (saw_spread) { perr(p, here(p), TV_ERR_FORMAT, "only one `*` argument unpacking is allowed", NULL); return NULL; }
            saw_spread = true;
            size_t at = here(p);
            p->cur++;
            arg = mk(p, N_SPREAD, at);
            if (!arg || !(arg->a = parse_expr(p))) return NULL;
        } else {
            arg = parse_expr(p);
            if (!arg) return NULL;
            if (is_t(p, T_EQUALS)) {
                p->cur++;
                if (arg->kind != N_IDENT) { perr(p, arg->pos, TV_ERR_FORMAT, params ? "expected identifier for parameter declaration" : "expected identifier for keyword argument", NULL); return NULL; }
                tpl_node *kw = mk(p, N_KWARG, arg->pos);
                if (!kw) return NULL;
                kw->a = arg;
                if (!(kw->b = parse_expr(p))) return NULL;
                arg = kw;
            }
            if (params) {
                if (arg->kind != N_IDENT && arg->kind != N_KWARG) { perr(p, arg->pos, TV_ERR_FORMAT, "expected identifier for parameter declaration", NULL); return NULL; }
                const tpl_node *nm = arg->kind == N_IDENT ? arg : arg->a;
                for (size_t j = 0; j < out->n; j++) {
                    const tpl_node *o = out->v[j]->kind == N_IDENT ? out->v[j] : out->v[j]->a;
                    if (o->slen == nm->slen && !memcmp(o->s, nm->s, nm->slen)) { perr(p, arg->pos, TV_ERR_FORMAT, "duplicate parameter name", nm->s); return NULL; }
                }
            }
            if (arg->kind == N_KWARG) saw_kw = true;
            else if (saw_kw) { perr(p, arg->pos, TV_ERR_FORMAT, params ? "non-default argument follows default argument" : "positional arguments must come before keyword arguments", NULL); return NULL; }
            else if (saw_spread) { perr(p, arg->pos, TV_ERR_FORMAT, "positional arguments must not follow `*` argument unpacking", NULL); return NULL; }
        }
        if (!nodes_push(p, out, arg)) return NULL;
        if (is_t(p, T_COMMA)) p->cur++;
    }
    if (!expect(p, T_RPAREN, "')'")) return NULL;
    return (tpl_node *)1;   // non-NULL success marker
}

static tpl_node *parse_member(pstate *p, tpl_node *obj);

static tpl_node *parse_call(pstate *p, tpl_node *callee) {
    if (!enter(p)) return NULL;
    tpl_node *c = mk(p, N_CALL, callee->pos);
    if (!c) LEAVE(NULL);
    c->a = callee;
    if (!parse_args_into(p, &c->list, false)) LEAVE(NULL);
    tpl_node *e = parse_member(p, c);
    if (e && is_t(p, T_LPAREN)) e = parse_call(p, e);
    LEAVE(e);
}

static tpl_node *parse_member_args(pstate *p) {
    tpl_node *sl[4] = {0};
    size_t ns = 0;
    bool is_slice = false;
    size_t at = here(p);
    while (!is_t(p, T_RBRACKET)) {
        if (p->failed) return NULL;
        if (!tk(p, 0)) { perr(p, at, TV_ERR_FORMAT, "unexpected end of template in subscript", NULL); return NULL; }
        if (ns >= 4) { perr(p, at, TV_ERR_FORMAT, "expected 0-3 arguments for slice expression", NULL); return NULL; }
        if (is_t(p, T_COLON)) { sl[ns++] = NULL; p->cur++; is_slice = true; }
        else {
            if (!(sl[ns++] = parse_expr(p))) return NULL;
            if (is_t(p, T_COLON)) { p->cur++; is_slice = true; }
        }
    }
    if (ns == 0) { perr(p, at, TV_ERR_FORMAT, "expected at least one argument for member/slice expression", NULL); return NULL; }
    if (is_slice) {
        if (ns > 3) { perr(p, at, TV_ERR_FORMAT, "expected 0-3 arguments for slice expression", NULL); return NULL; }
        tpl_node *s = mk(p, N_SLICE, at);
        if (!s) return NULL;
        s->a = sl[0]; s->b = ns > 1 ? sl[1] : NULL; s->c = ns > 2 ? sl[2] : NULL;
        return s;
    }
    return sl[0];
}

static tpl_node *parse_member(pstate *p, tpl_node *obj) {
    while (obj && (is_t(p, T_DOT) || is_t(p, T_LBRACKET))) {
        bool computed = is_t(p, T_LBRACKET);
        size_t at = here(p);
        p->cur++;
        tpl_node *prop;
        if (computed) {
            if (!enter(p)) return NULL;
            prop = parse_member_args(p);
            p->depth--;
            if (!prop || !expect(p, T_RBRACKET, "']'")) return NULL;
        } else {
            prop = parse_primary(p);
            if (!prop) return NULL;
            if (prop->kind != N_IDENT && prop->kind != N_INT) { perr(p, prop->pos, TV_ERR_FORMAT, "expected identifier or integer following dot operator", NULL); return NULL; }
        }
        tpl_node *m = mk(p, N_MEMBER, at);
        if (!m) return NULL;
        m->a = obj; m->b = prop; m->flag = computed;
        obj = m;
    }
    return obj;
}

static tpl_node *parse_postfix(pstate *p) {
    tpl_node *m = parse_member(p, parse_primary(p));
    if (m && is_t(p, T_LPAREN)) return parse_call(p, m);
    return m;
}

static tpl_node *parse_unary_sign(pstate *p) {
    token *t = tk(p, 0);
    if (t && (t->type == T_UNARY || t->type == T_ADD) && t->n == 1 && (t->s[0] == '-' || t->s[0] == '+')) {
        if (!enter(p)) return NULL;
        p->cur++;
        tpl_node *u = mk(p, N_UNARY, t->pos);
        if (!u) LEAVE(NULL);
        u->op = t->s[0] == '-' ? OP_SUB : OP_ADD;
        if (!(u->a = parse_unary_sign(p))) LEAVE(NULL);
        LEAVE(u);
    }
    return parse_postfix(p);
}

static tpl_node *parse_filter(pstate *p) {
    tpl_node *operand = parse_unary_sign(p);
    while (operand && is_t(p, T_PIPE)) {
        p->cur++;
        tpl_node *f = parse_primary(p);
        if (!f) return NULL;
        if (f->kind != N_IDENT) { perr(p, f->pos, TV_ERR_FORMAT, "expected identifier for the filter", NULL); return NULL; }
        if (is_t(p, T_LPAREN) && !(f = parse_call(p, f))) return NULL;
        tpl_node *fe = mk(p, N_FILTER, f->pos);
        if (!fe) return NULL;
        fe->a = operand; fe->b = f;
        operand = fe;
    }
    return operand;
}

static tpl_node *parse_test(pstate *p) {
    tpl_node *operand = parse_filter(p);
    while (operand && is_ident(p, "is")) {
        p->cur++;
        bool neg = is_ident(p, "not");
        if (neg) p->cur++;
        tpl_node *t = parse_primary(p);
        if (!t) return NULL;
        if (t->kind != N_IDENT) { perr(p, t->pos, TV_ERR_FORMAT, "expected identifier for the test", NULL); return NULL; }
        tpl_node *te = mk(p, N_TEST, t->pos);
        if (!te) return NULL;
        te->a = operand; te->s = t->s; te->slen = t->slen; te->flag = neg;
        operand = te;
    }
    return operand;
}

static tpl_node *binary(pstate *p, tpl_op op, size_t at, tpl_node *l, tpl_node *r) {
    if (!l || !r) return NULL;
    tpl_node *b = mk(p, N_BINARY, at);
    if (!b) return NULL;
    b->op = op; b->a = l; b->b = r;
    return b;
}

static tpl_node *parse_pow(pstate *p) {
    tpl_node *l = parse_test(p);
    while (l && is_t(p, T_POW)) { size_t at = here(p); p->cur++; l = binary(p, OP_POW, at, l, parse_test(p)); }
    return l;
}

static tpl_node *parse_mul(pstate *p) {
    tpl_node *l = parse_pow(p);
    while (l && is_t(p, T_MUL)) {
        token *t = tk(p, 0);
        tpl_op op = t->n == 2 ? OP_FLOORDIV : t->s[0] == '*' ? OP_MUL : t->s[0] == '/' ? OP_DIV : OP_MOD;
        p->cur++;
        l = binary(p, op, t->pos, l, parse_pow(p));
    }
    return l;
}

static tpl_node *parse_add(pstate *p) {
    tpl_node *l = parse_mul(p);
    while (l && is_t(p, T_ADD)) {
        token *t = tk(p, 0);
        tpl_op op = t->s[0] == '+' ? OP_ADD : t->s[0] == '-' ? OP_SUB : OP_CONCAT;
        p->cur++;
        l = binary(p, op, t->pos, l, parse_mul(p));
    }
    return l;
}

static tpl_node *parse_cmp(pstate *p) {
    tpl_node *l = parse_add(p);
    while (l) {
        tpl_op op;
        size_t at = here(p);
        if (is_ident(p, "not") && tok_is(tk(p, 1), "in")) { op = OP_NOTIN; p->cur += 2; }
        else if (is_ident(p, "in")) { op = OP_IN; p->cur++; }
        else if (is_t(p, T_CMP)) {
            token *t = tk(p, 0);
            if (t->n == 2) op = t->s[0] == '<' ? OP_LE : t->s[0] == '>' ? OP_GE : t->s[0] == '=' ? OP_EQ : OP_NE;
            else op = t->s[0] == '<' ? OP_LT : OP_GT;
            p->cur++;
        } else break;
        l = binary(p, op, at, l, parse_add(p));
    }
    return l;
}

static tpl_node *parse_not(pstate *p) {
    tpl_node *u = NULL;
    if (is_ident(p, "not")) {     // `not not x` nests; the innermost operand binds as a comparison
        if (!enter(p)) return NULL;
        size_t at = here(p);
        p->cur++;
        tpl_node *arg = parse_not(p);
        p->depth--;
        if (!arg) return NULL;
        if (!(u = mk(p, N_UNARY, at))) return NULL;
        u->op = OP_NOT; u->a = arg;
        return u;
    }
    return parse_cmp(p);
}

static tpl_node *parse_and(pstate *p) {
    tpl_node *l = parse_not(p);
    while (l && is_ident(p, "and")) { size_t at = here(p); p->cur++; l = binary(p, OP_AND, at, l, parse_not(p)); }
    return l;
}

static tpl_node *parse_or(pstate *p) {
    tpl_node *l = parse_and(p);
    while (l && is_ident(p, "or")) { size_t at = here(p); p->cur++; l = binary(p, OP_OR, at, l, parse_and(p)); }
    return l;
}

static tpl_node *parse_expr(pstate *p) {
    if (!enter(p)) return NULL;
    tpl_node *a = parse_or(p);
    if (a && is_ident(p, "if")) {
        size_t at = here(p);
        p->cur++;
        tpl_node *test = parse_or(p);
        if (!test) LEAVE(NULL);
        if (is_ident(p, "else")) {
            p->cur++;
            tpl_node *t = mk(p, N_TERNARY, at);
            if (!t) LEAVE(NULL);
            t->a = test; t->b = a;
            if (!(t->c = parse_expr(p))) LEAVE(NULL);
            LEAVE(t);
        }
        tpl_node *s = mk(p, N_SELECT, at);
        if (!s) LEAVE(NULL);
        s->a = a; s->b = test;
        LEAVE(s);
    }
    LEAVE(a);
}

// expr ("," expr)* -> a tuple when there is a comma. primary_only: loop variables.
static tpl_node *parse_seq(pstate *p, bool primary_only) {
    size_t at = here(p);
    tpl_node *first = primary_only ? parse_primary(p) : parse_expr(p);
    if (!first || !is_t(p, T_COMMA)) return first;
    tpl_node *t = mk(p, N_TUPLE, at);
    if (!t || !nodes_push(p, &t->list, first)) return NULL;
    while (is_t(p, T_COMMA)) {
        p->cur++;
        if (!nodes_push(p, &t->list, primary_only ? parse_primary(p) : parse_expr(p))) return NULL;
        if (!is_t(p, T_COMMA)) break;
    }
    return t;
}

static tpl_node *parse_primary(pstate *p) {
    if (p->failed) return NULL;
    token *t = tk(p, 0);
    if (!t) { perr(p, p->orig_n, TV_ERR_FORMAT, "unexpected end of template in expression", NULL); return NULL; }
    p->cur++;
    switch (t->type) {
        case T_NUM: {
            char buf[64];
            if (t->n >= sizeof buf) { perr(p, t->pos, TV_ERR_FORMAT, "numeric literal too long", NULL); return NULL; }
            memcpy(buf, t->s, t->n); buf[t->n] = 0;
            bool is_float = memchr(t->s, '.', t->n) != NULL;
            tpl_node *nd = mk(p, is_float ? N_FLOAT : N_INT, t->pos);
            if (!nd) return NULL;
            if (is_float) nd->f = strtod(buf, NULL);
            else {
                double d = strtod(buf, NULL);   // JS numbers: integers beyond 2^53 lose precision
                if (d > 9.2e18 || d < -9.2e18) { perr(p, t->pos, TV_ERR_RANGE, "integer literal out of range", NULL); return NULL; }
                nd->i = strtoll(buf, NULL, 10);
            }
            return nd;
        }
        case T_STR: {
            size_t total = t->n, k = p->cur;
            while (k < p->n_toks && p->toks[k].type == T_STR) total += p->toks[k++].n;
            tpl_node *nd = mk(p, N_STR, t->pos);
            if (!nd) return NULL;
            if (k == p->cur) { nd->s = t->s; nd->slen = t->n; return nd; }
            char *buf = tpl_alloc(p->arena, total + 1);
            if (!buf) { perr(p, t->pos, TV_ERR_NOMEM, "out of memory", NULL); return NULL; }
            size_t o = 0;
            memcpy(buf, t->s, t->n); o = t->n;
            for (; p->cur < k; p->cur++) { memcpy(buf + o, p->toks[p->cur].s, p->toks[p->cur].n); o += p->toks[p->cur].n; }
            buf[o] = 0;
            nd->s = buf; nd->slen = o;
            return nd;
        }
        case T_IDENT: {
            tpl_node *nd = mk(p, N_IDENT, t->pos);
            if (!nd) return NULL;
            if (!(nd->s = tpl_strndup(p->arena, t->s, t->n))) { perr(p, t->pos, TV_ERR_NOMEM, "out of memory", NULL); return NULL; }
            nd->slen = t->n;
            return nd;
        }
        case T_LPAREN: {
            if (!enter(p)) return NULL;
            tpl_node *e = parse_seq(p, false);
            if (!e || !expect(p, T_RPAREN, "')'")) LEAVE(NULL);
            LEAVE(e);
        }
        case T_LBRACKET: {
            if (!enter(p)) return NULL;
            tpl_node *a = mk(p, N_ARRAY, t->pos);
            if (!a) LEAVE(NULL);
            while (!is_t(p, T_RBRACKET)) {
                if (!tk(p, 0)) { perr(p, t->pos, TV_ERR_FORMAT, "unterminated list literal", NULL); LEAVE(NULL); }
                if (!nodes_push(p, &a->list, parse_expr(p))) LEAVE(NULL);
                if (is_t(p, T_COMMA)) p->cur++;
            }
            p->cur++;
            LEAVE(a);
        }
        case T_LBRACE: {
            if (!enter(p)) return NULL;
            tpl_node *o = mk(p, N_OBJECT, t->pos);
            if (!o) LEAVE(NULL);
            while (!is_t(p, T_RBRACE)) {
                if (!tk(p, 0)) { perr(p, t->pos, TV_ERR_FORMAT, "unterminated dict literal", NULL); LEAVE(NULL); }
                if (!nodes_push(p, &o->list, parse_expr(p))) LEAVE(NULL);
                if (!expect(p, T_COLON, "':' between key and value in dict literal")) LEAVE(NULL);
                if (!nodes_push(p, &o->alt, parse_expr(p))) LEAVE(NULL);
                if (is_t(p, T_COMMA)) p->cur++;
            }
            p->cur++;
            LEAVE(o);
        }
        default: {
            char b[40];
            size_t m = t->n < 32 ? t->n : 32;
            memcpy(b, t->s, m); b[m] = 0;
            perr(p, t->pos, TV_ERR_FORMAT, "unexpected token", b);
            return NULL;
        }
    }
}

// Parses statements until one of the given block keywords opens a tag (left unconsumed).
static bool parse_body(pstate *p, tpl_nodes *body, const char *w1, const char *w2, const char *w3, size_t open_pos, const char *what) {
    while (!is_stmt(p, w1, w2, w3)) {
        if (p->failed) return false;
        if (!tk(p, 0)) { perr(p, open_pos, TV_ERR_FORMAT, "unclosed block, missing", what); return false; }
        if (!nodes_push(p, body, parse_any(p))) return false;
    }
    return true;
}

static tpl_node *parse_if(pstate *p, size_t at) {
    if (!enter(p)) return NULL;
    tpl_node *n = mk(p, N_IF, at);
    if (!n || !(n->a = parse_expr(p)) || !expect(p, T_CLOSE_STMT, "'%}'")) LEAVE(NULL);
    if (!parse_body(p, &n->body, "elif", "else", "endif", at, "{% endif %}")) LEAVE(NULL);
    if (is_stmt(p, "elif", NULL, NULL)) {
        size_t at2 = tk(p, 1)->pos;
        p->cur += 2;
        if (!nodes_push(p, &n->alt, parse_if(p, at2))) LEAVE(NULL);
    } else if (is_stmt(p, "else", NULL, NULL)) {
        p->cur += 2;
        if (!expect(p, T_CLOSE_STMT, "'%}'")) LEAVE(NULL);
        if (!parse_body(p, &n->alt, "endif", NULL, NULL, at, "{% endif %}")) LEAVE(NULL);
    }
    LEAVE(n);
}

static bool expect_end(pstate *p, const char *word) {
    return expect(p, T_OPEN_STMT, "'{%'") && expect_word(p, word) && expect(p, T_CLOSE_STMT, "'%}'");
}

static tpl_node *parse_stmt(pstate *p) {
    size_t open_pos = here(p);
    if (!expect(p, T_OPEN_STMT, "'{%'")) return NULL;
    token *t = tk(p, 0);
    if (!t) { perr(p, open_pos, TV_ERR_FORMAT, "unexpected end of template in statement", NULL); return NULL; }
    if (t->type != T_IDENT) { perr(p, t->pos, TV_ERR_FORMAT, "unknown statement", NULL); return NULL; }
    size_t at = t->pos;
    if (tok_is(t, "set")) {
        p->cur++;
        tpl_node *n = mk(p, N_SET, at);
        if (!n || !(n->a = parse_seq(p, false))) return NULL;
        if (is_t(p, T_EQUALS)) {
            p->cur++;
            if (!(n->b = parse_seq(p, false))) return NULL;
        } else {
            if (!expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
            if (!parse_body(p, &n->body, "endset", NULL, NULL, at, "{% endset %}")) return NULL;
            if (!expect(p, T_OPEN_STMT, "'{%'") || !expect_word(p, "endset")) return NULL;
        }
        if (!expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        return n;
    }
    if (tok_is(t, "if")) {
        p->cur++;
        tpl_node *n = parse_if(p, at);
        if (!n || !expect_end(p, "endif")) return NULL;
        return n;
    }
    if (tok_is(t, "macro")) {
        p->cur++;
        tpl_node *n = mk(p, N_MACRO, at);
        if (!n || !(n->a = parse_primary(p))) return NULL;
        if (n->a->kind != N_IDENT) { perr(p, n->a->pos, TV_ERR_FORMAT, "expected identifier following macro statement", NULL); return NULL; }
        if (!parse_args_into(p, &n->list, true) || !expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        if (!parse_body(p, &n->body, "endmacro", NULL, NULL, at, "{% endmacro %}") || !expect_end(p, "endmacro")) return NULL;
        return n;
    }
    if (tok_is(t, "for")) {
        p->cur++;
        tpl_node *n = mk(p, N_FOR, at);
        if (!n || !(n->a = parse_seq(p, true))) return NULL;
        if (n->a->kind != N_IDENT && n->a->kind != N_TUPLE) { perr(p, n->a->pos, TV_ERR_FORMAT, "expected identifier/tuple for the loop variable", NULL); return NULL; }
        if (!expect_word(p, "in")) return NULL;
        tpl_node *it = parse_expr(p);
        if (!it) return NULL;
        if (it->kind == N_SELECT) { n->b = it->a; n->c = it->b; } else n->b = it;
        if (!expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        if (!parse_body(p, &n->body, "endfor", "else", NULL, at, "{% endfor %}")) return NULL;
        if (is_stmt(p, "else", NULL, NULL)) {
            p->cur += 2;
            if (!expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
            if (!parse_body(p, &n->alt, "endfor", NULL, NULL, at, "{% endfor %}")) return NULL;
        }
        if (!expect_end(p, "endfor")) return NULL;
        return n;
    }
    if (tok_is(t, "call")) {
        p->cur++;
        tpl_node *n = mk(p, N_CALLBLOCK, at);
        if (!n) return NULL;
        if (is_t(p, T_LPAREN)) {
            n->has_list = true;
            if (!parse_args_into(p, &n->list, true)) return NULL;
        }
        tpl_node *callee = parse_primary(p);
        if (!callee) return NULL;
        if (callee->kind != N_IDENT) { perr(p, callee->pos, TV_ERR_FORMAT, "expected identifier following call statement", NULL); return NULL; }
        tpl_node *call = mk(p, N_CALL, callee->pos);
        if (!call) return NULL;
        call->a = callee;
        if (!parse_args_into(p, &call->list, false) || !expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        n->a = call;
        if (!parse_body(p, &n->body, "endcall", NULL, NULL, at, "{% endcall %}") || !expect_end(p, "endcall")) return NULL;
        return n;
    }
    if (tok_is(t, "break") || tok_is(t, "continue")) {
        p->cur++;
        tpl_node *n = mk(p, tok_is(t, "break") ? N_BREAK : N_CONTINUE, at);
        if (!n || !expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        return n;
    }
    if (tok_is(t, "filter")) {
        p->cur++;
        tpl_node *n = mk(p, N_FILTERBLOCK, at);
        if (!n || !(n->a = parse_primary(p))) return NULL;
        if (n->a->kind == N_IDENT && is_t(p, T_LPAREN) && !(n->a = parse_call(p, n->a))) return NULL;
        if (n->a->kind != N_IDENT && n->a->kind != N_CALL) { perr(p, n->a->pos, TV_ERR_FORMAT, "expected a filter name", NULL); return NULL; }
        if (!expect(p, T_CLOSE_STMT, "'%}'")) return NULL;
        if (!parse_body(p, &n->body, "endfilter", NULL, NULL, at, "{% endfilter %}") || !expect_end(p, "endfilter")) return NULL;
        return n;
    }
    char b[40];
    size_t m = t->n < 32 ? t->n : 32;
    memcpy(b, t->s, m); b[m] = 0;
    perr(p, at, TV_ERR_FORMAT, "unknown statement", b);
    return NULL;
}

static tpl_node *parse_any(pstate *p) {
    token *t = tk(p, 0);
    if (!t || p->failed) return NULL;
    if (!enter(p)) return NULL;
    tpl_node *r = NULL;
    switch (t->type) {
        case T_COMMENT:
            p->cur++;
            r = mk(p, N_COMMENT, t->pos);
            break;
        case T_TEXT:
            p->cur++;
            if ((r = mk(p, N_TEXT, t->pos))) { r->s = t->s; r->slen = t->n; }
            break;
        case T_OPEN_STMT:
            r = parse_stmt(p);
            break;
        case T_OPEN_EXPR:
            p->cur++;
            r = parse_expr(p);
            if (r && !expect(p, T_CLOSE_EXPR, "'}}'")) r = NULL;
            break;
        default: {
            char b[40];
            size_t m = t->n < 32 ? t->n : 32;
            memcpy(b, t->s, m); b[m] = 0;
            perr(p, t->pos, TV_ERR_FORMAT, "unexpected token", b);
            break;
        }
    }
    LEAVE(r);
}

tpl_program *tpl_parse(const char *src, size_t len, tv_error *err) {
    tpl_arena *arena = tpl_arena_create((size_t)1 << 30);
    tpl_program *prog = NULL;
    pbuf pre = {0};
    pstate p = {0};
    if (!arena) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    prog = tpl_alloc(arena, sizeof *prog);
    char *orig = tpl_strndup(arena, src, len);
    if (!prog || !orig) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    prog->arena = arena; prog->src = orig; prog->src_len = len;
    if (!preprocess(src, len, &pre)) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    // the preprocessed text must outlive the tokens (text tokens point into it)
    char *text = tpl_strndup(arena, pre.s.p ? pre.s.p : "", pre.s.n);
    if (!text) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    p.src = text; p.n = pre.s.n; p.map = pre.map;
    p.arena = arena; p.orig = orig; p.orig_n = len; p.err = err;
    if (!lex(&p)) goto fail;
    while (p.cur < p.n_toks) {
        if (!nodes_push(&p, &prog->body, parse_any(&p))) {
            if (!p.failed) perr(&p, here(&p), TV_ERR_FORMAT, "invalid template", NULL);
            goto fail;
        }
    }
    free(p.toks); strbuf_free(&pre.s); free(pre.map);
    return prog;
fail:
    free(p.toks); strbuf_free(&pre.s); free(pre.map);
    tpl_arena_free(arena);
    return NULL;
}

void tpl_program_free(tpl_program *prog) {
    if (prog) tpl_arena_free(prog->arena);
}
