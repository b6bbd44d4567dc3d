// tok_bpe.c — byte-level BPE (GPT-2 family): pre-tokenizer regex sequence, byte alphabet, merges.
//
// One raw fragment is encoded as:
//   pieces = [fragment]; for each regex of the family: every piece is cut into its matches and the
//   gaps between them (both kept, in order) -> words.
//   word -> (ignore_merges and the whole word, byte-mapped, is a token: that token) else one symbol per
//   byte (its GPT-2 char's token), then repeatedly merge the adjacent pair with the lowest merge rank
//   (leftmost on ties) until no pair has a rank -> the symbols' ids.
// Merge ranks are looked up by (left id, right id) in an open-addressing table; a word is merged with
// a binary heap over a linked list of symbols, O(n log n) per word.
// Regexes are PCRE2 with UTF + UCP (Unicode properties for \p{..}, \s, \d), JIT-compiled.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/buf.h"
#include "util/status.h"

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode map: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.

static bool byte_is_direct(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174); }

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_direct(b)) return b;
    uint32_t k = 0;
    for (unsigned i = 0; i < b; i++) k += !byte_is_direct(i);
    return 256 + k;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_direct(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_direct(b) && k-- == 0) return (int)b;
    return -1;
}

// UTF-8 of each byte's char, precomputed once (process-wide constant table).
typedef struct byte_char { char s[2]; uint8_t n; } byte_char;
static byte_char BYTE_CHARS[256];
static void byte_chars_init(void) {
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        if (cp < 0x80) { BYTE_CHARS[b].s[0] = (char)cp; BYTE_CHARS[b].n = 1; }
        else { BYTE_CHARS[b].s[0] = (char)(0xC0 | (cp >> 6)); BYTE_CHARS[b].s[1] = (char)(0x80 | (cp & 0x3F)); BYTE_CHARS[b].n = 2; }
    }
}
static pthread_once_t BYTE_CHARS_ONCE = PTHREAD_ONCE_INIT;

// ---------------------------------------------------------------------------------------------
// regexes

// Pre-tokenizer regex sequences per GGUF tokenizer.ggml.pre family (the same expressions the
// upstream tokenizers use; the case-insensitive contraction group is spelled out so that Unicode
// case folding cannot match e.g. U+017F for 's').
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3 RE_CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 RE_CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

// Tekken (Mistral 3) and GPT-4o (Phi-4-mini) as llama.cpp spells them: "an upper-case run" is a run
// of letters other than a-z, "a lower-case run" of letters other than A-Z.
#define RE_UPPER "((?=[\\p{L}])([^a-z]))"
#define RE_LOWER "((?=[\\p{L}])([^A-Z]))"
#define RE_TEKKEN "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "*" RE_LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "+" RE_LOWER "*" \
                  "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "*" RE_LOWER "+" RE_CONTR "?|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "+" \
                 RE_LOWER "*" RE_CONTR "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pre_family { const char *names; const char *re[6]; bool ignore_merges; } pre_family;

static const pre_family PRE_FAMILIES[] = {
    {"|llama3|llama-v3|llama-bpe|falcon3|pixtral|", {RE_LLAMA3}, true},
    {"|tekken|", {RE_TEKKEN}, true},
    {"|gpt-4o|llama4|", {RE_GPT4O}, false},
    {"|dbrx|smaug-bpe|chatglm-bpe|", {RE_LLAMA3}, false},
    {"|qwen2|deepseek-r1-qwen|stablelm2|hunyuan|", {RE_QWEN2}, false},
    {"|deepseek-llm|", {"[\\r\\n]",
                        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
                        "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
                        "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"
                        "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"
                        "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
                        "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
                        "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
                        "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
                        "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
                        "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"
                        "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
                        "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"
                        "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
                        "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-"
                        "\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
                        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
                        "\\s+$", RE_CJK, "\\p{N}+"}, false},
    {"|deepseek-coder|", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}, false},
    {"|falcon|", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false},
    {"|starcoder|refact|command-r|smollm|codeshell|exaone|minerva|", {"\\p{N}", RE_GPT2}, false},
    {"|gpt-2|gpt2|mpt|olmo|jais|phi-2|jina-es|jina-de|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|"
     "gpt-neox|trillion|", {RE_GPT2}, false},
    {"|default|", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false},
};

tv_status tok_bpe_add_regex(tv_tokenizer *t, const char *pattern, tv_error *err) {
    if (t->n_re >= TOK_MAX_REGEX) return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer: more than %d pre-tokenizer regexes", TOK_MAX_REGEX);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return err_fail(err, TV_ERR_FORMAT, "tokenizer: pre-tokenizer regex error at offset %zu: %s", (size_t)eo, (char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   // falls back to the interpreter if JIT is unavailable
    t->re[t->n_re++] = re;
    return TV_OK;
}

tv_status tok_bpe_set_pre(tv_tokenizer *t, const char *pre, tv_error *err) {
    char key[80];
    snprintf(key, sizeof key, "|%s|", pre);
    for (size_t f = 0; f < sizeof PRE_FAMILIES / sizeof PRE_FAMILIES[0]; f++) {
        if (!strstr(PRE_FAMILIES[f].names, key)) continue;
        for (int i = 0; i < 6 && PRE_FAMILIES[f].re[i]; i++) {
            tv_status st = tok_bpe_add_regex(t, PRE_FAMILIES[f].re[i], err);
            if (st != TV_OK) return st;
        }
        t->ignore_merges = PRE_FAMILIES[f].ignore_merges;
        if (t->ignore_merges && t->bos >= 0) t->add_bos = true;
        return TV_OK;
    }
    return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", pre);
}

void tok_bpe_free(tv_tokenizer *t) {
    for (size_t i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    t->n_re = 0;
    free(t->merges.slots);
    t->merges.slots = NULL;
}

// ---------------------------------------------------------------------------------------------
// merges

static inline size_t merge_hash(uint64_t key, size_t mask) { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & mask; }

tv_status tok_bpe_init_merges(tv_tokenizer *t, size_t n_merges, tv_error *err) {
    size_t cap = 16;
    while (cap < n_merges + n_merges / 2 + 16) cap *= 2;   // load factor <= 2/3
    free(t->merges.slots);
    t->merges.slots = malloc(cap * sizeof *t->merges.slots);
    if (!t->merges.slots) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory for %zu merges", n_merges);
    for (size_t i = 0; i < cap; i++) t->merges.slots[i] = (tok_merge){0, -1, -1};
    t->merges.cap = cap;
    return TV_OK;
}

static inline const tok_merge *merge_find(const tok_mergemap *m, int32_t a, int32_t b) {
    if (a < 0 || b < 0 || !m->cap) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->cap - 1;
    for (size_t i = merge_hash(key, mask);; i = (i + 1) & mask) {
        const tok_merge *s = &m->slots[i];
        if (s->rank < 0) return NULL;
        if (s->key == key) return s;
    }
}

void tok_bpe_add_merge(tv_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int32_t rank) {
    int32_t ia = tok_find(t, a, na), ib = tok_find(t, b, nb);
    if (ia < 0 || ib < 0 || na + nb > 4096) return;
    char cat[4096];
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t r = tok_find(t, cat, na + nb);
    if (r < 0 || merge_find(&t->merges, ia, ib)) return;   // first (lowest) rank wins
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    size_t mask = t->merges.cap - 1;
    size_t i = merge_hash(key, mask);
    while (t->merges.slots[i].rank >= 0) i = (i + 1) & mask;
    t->merges.slots[i] = (tok_merge){key, rank, r};
}

// ---------------------------------------------------------------------------------------------
// encoding

typedef struct bpe_sym { int32_t id, prev, next; } bpe_sym;
typedef struct bpe_pair { int32_t rank, left, right, left_id, right_id; } bpe_pair;

typedef struct bpe_scratch {
    bpe_sym *syms; size_t syms_cap;
    bpe_pair *heap; size_t heap_n, heap_cap;
    char *word; size_t word_cap;           // byte-mapped word (ignore_merges lookup)
    size_t *spans, *spans2; size_t spans_n, spans2_n, spans_cap, spans2_cap;   // (off, len) pairs
    // word cache for one call (long texts only): word bytes (in the caller's text) -> ids
    uint32_t *cslots; size_t ccap;        // entry index + 1, 0 = empty
    struct bpe_centry { const char *w; uint32_t len, ids_off, n_ids; } *cent; size_t cent_n, cent_cap;
    int32_t *cids; size_t cids_n, cids_cap;
} bpe_scratch;

#define CACHE_MIN_TEXT 2048         // bytes: shorter fragments are not worth a cache
#define CACHE_MAX_WORD 128          // bytes
#define CACHE_MAX_ENTRIES (1u << 18)

static uint64_t word_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 31);
}

static bool pair_before(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(bpe_scratch *s, bpe_pair p) {
    bpe_pair *v = array_grow(s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap);
    if (!v) return false;
    s->heap = v;
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!pair_before(&p, &s->heap[par])) break;
        s->heap[i] = s->heap[par];
        i = par;
    }
    s->heap[i] = p;
    return true;
}

static bpe_pair heap_pop(bpe_scratch *s) {
    bpe_pair top = s->heap[0], x = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_pair *best = &x;
        if (l < n && pair_before(&s->heap[l], best)) { m = l; best = &s->heap[l]; }
        if (r < n && pair_before(&s->heap[r], best)) m = r;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n) s->heap[i] = x;
    return top;
}

static bool try_pair(const tv_tokenizer *t, bpe_scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const tok_merge *m = merge_find(&t->merges, s->syms[left].id, s->syms[right].id);
    if (!m) return true;
    bpe_pair p = {m->rank, left, right, s->syms[left].id, s->syms[right].id};
    return heap_push(s, p);
}

// Grows a word cache array with plain realloc, off the request-path fault hook: the cache is an
// optimisation whose allocation failures are silent by design (no memory, no caching).
static void *cache_grow(void *v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return v;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(v, c * elem);
    if (q) *cap = c;
    return q;
}

static size_t utf8_char_len(uint8_t c) {
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
}

// Encodes one pre-tokenized word.
static bool bpe_word_uncached(const tv_tokenizer *t, bpe_scratch *s, const char *w, size_t n, tok_ids *out) {
    if (n == 0) return true;
    if (t->newline_words && w[0] == '\n') {
        size_t k = 0;
        while (k < n && w[k] == '\n') k++;
        int32_t id = k == n ? tok_find(t, w, n) : -1;
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (t->ignore_merges) {
        const char *key = w;
        size_t kn = n;
        if (t->byte_level) {
            char *word = array_grow(s->word, &s->word_cap, 2 * n, 1);
            if (!word) return false;
            s->word = word;
            kn = 0;
            for (size_t i = 0; i < n; i++) {
                const byte_char *bc = &BYTE_CHARS[(uint8_t)w[i]];
                memcpy(s->word + kn, bc->s, bc->n);
                kn += bc->n;
            }
            key = s->word;
        }
        int32_t id = tok_find(t, key, kn);
        if (id >= 0) return tok_ids_push(out, id);
    }
    bpe_sym *syms = array_grow(s->syms, &s->syms_cap, 4 * n, sizeof *s->syms);
    if (!syms) return false;
    s->syms = syms;
    int32_t m = 0;
    for (size_t i = 0; i < n;) {
        if (t->byte_level) {
            s->syms[m] = (bpe_sym){t->byte_ids[(uint8_t)w[i]], m - 1, m + 1};
            m++;
            i++;
            continue;
        }
        size_t cl = utf8_char_len((uint8_t)w[i]);
        if (cl > n - i) cl = n - i;
        int32_t id = tok_find(t, w + i, cl);
        if (id >= 0 || !t->bpe_byte_fallback) {
            s->syms[m] = (bpe_sym){id >= 0 ? id : t->unk, m - 1, m + 1};
            m++;
        } else {
            for (size_t k = 0; k < cl; k++) {
                int32_t b = t->byte_ids[(uint8_t)w[i + k]];
                s->syms[m] = (bpe_sym){b >= 0 ? b : t->unk, m - 1, m + 1};
                m++;
            }
        }
        i += cl;
    }
    s->syms[m - 1].next = -1;
    s->heap_n = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        if (!try_pair(t, s, i, i + 1)) return false;
    while (s->heap_n) {
        bpe_pair p = heap_pop(s);
        bpe_sym *l = &s->syms[p.left], *r = &s->syms[p.right];
        if (l->id != p.left_id || r->id != p.right_id || l->next != p.right || r->id < 0) continue;   // stale
        const tok_merge *mg = merge_find(&t->merges, l->id, r->id);
        l->id = mg->result;
        l->next = r->next;
        if (r->next >= 0) s->syms[r->next].prev = p.left;
        r->id = -2;   // dead
        if (!try_pair(t, s, l->prev, p.left) || !try_pair(t, s, p.left, l->next)) return false;
    }
    for (int32_t i = 0; i != -1; i = s->syms[i].next)
        if (s->syms[i].id >= 0 && !tok_ids_push(out, s->syms[i].id)) return false;
    return true;
}

// bpe_word_uncached through the call's word cache (when enabled).
static bool bpe_word(const tv_tokenizer *t, bpe_scratch *s, const char *w, size_t n, tok_ids *out) {
    if (!s->ccap || n > CACHE_MAX_WORD || n == 0) return bpe_word_uncached(t, s, w, n, out);
    size_t mask = s->ccap - 1, i = word_hash(w, n) & mask;
    for (; s->cslots[i]; i = (i + 1) & mask) {
        const struct bpe_centry *e = &s->cent[s->cslots[i] - 1];
        if (e->len == n && memcmp(e->w, w, n) == 0) {
            for (uint32_t k = 0; k < e->n_ids; k++)
                if (!tok_ids_push(out, s->cids[e->ids_off + k])) return false;
            return true;
        }
    }
    size_t before = out->n;
    if (!bpe_word_uncached(t, s, w, n, out)) return false;
    if (s->cent_n >= CACHE_MAX_ENTRIES || s->cent_n * 2 >= s->ccap) return true;   // full: no more inserts
    size_t k = out->n - before;
    struct bpe_centry *cent = cache_grow(s->cent, &s->cent_cap, s->cent_n + 1, sizeof *s->cent);
    if (cent) s->cent = cent;
    int32_t *cids = cent ? cache_grow(s->cids, &s->cids_cap, s->cids_n + k, sizeof *s->cids) : NULL;
    if (!cids) return true;   // the cache is an optimisation: no memory, no caching
    s->cids = cids;
    memcpy(s->cids + s->cids_n, out->v + before, k * sizeof *s->cids);
    s->cent[s->cent_n] = (struct bpe_centry){w, (uint32_t)n, (uint32_t)s->cids_n, (uint32_t)k};
    s->cids_n += k;
    s->cslots[i] = (uint32_t)++s->cent_n;
    return true;
}

// Splits every span of in with re: matches and the gaps between them, in order.
static tv_status split_spans(const pcre2_code *re, pcre2_match_data *md, pcre2_match_context *mc, const char *text,
                             const size_t *in, size_t n_in, size_t **out, size_t *n_out, size_t *cap_out, tv_error *err) {
    size_t k = 0;
#define PUSH_SPAN(o, l)                                                                              \
    do {                                                                                             \
        size_t *grown = array_grow(*out, cap_out, 2 * (k + 1), sizeof **out);                       \
        if (!grown) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");                  \
        *out = grown;                                                                                \
        (*out)[2 * k] = (o); (*out)[2 * k + 1] = (l); k++;                                           \
    } while (0)
    for (size_t s = 0; s < n_in; s++) {
        size_t off = in[2 * s], len = in[2 * s + 1];
        const char *sub = text + off;
        size_t pos = 0, last = 0;
        while (pos < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)sub, len, pos, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return err_fail(err, TV_ERR_RANGE, "tokenizer: regex match failed: %s", (char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) {   // empty match: move on by one char
                pos = ms + utf8_char_len((uint8_t)sub[ms]);
                continue;
            }
            if (ms > last) PUSH_SPAN(off + last, ms - last);
            PUSH_SPAN(off + ms, me - ms);
            last = pos = me;
        }
        if (last < len) PUSH_SPAN(off + last, len - last);
    }
#undef PUSH_SPAN
    *n_out = k;
    return TV_OK;
}

tv_status tok_bpe_encode(const tv_tokenizer *t, const char *text, size_t len, tok_ids *out, tv_error *err) {
    if (len == 0) return TV_OK;
    pthread_once(&BYTE_CHARS_ONCE, byte_chars_init);
    tv_status st = TV_OK;
    bpe_scratch s = {0};
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    pcre2_jit_stack *js = NULL;
    if (!(s.spans = array_grow(NULL, &s.spans_cap, 2, sizeof *s.spans))) goto nomem;
    s.spans[0] = 0;
    s.spans[1] = len;
    s.spans_n = 1;
    if (t->n_re) {
        md = pcre2_match_data_create(1, NULL);
        mc = pcre2_match_context_create(NULL);
        js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!md || !mc || !js) goto nomem;
        pcre2_jit_stack_assign(mc, NULL, js);
    }
    for (size_t r = 0; r < t->n_re; r++) {
        st = split_spans(t->re[r], md, mc, text, s.spans, s.spans_n, &s.spans2, &s.spans2_n, &s.spans2_cap, err);
        if (st != TV_OK) goto done;
        size_t *tp = s.spans; s.spans = s.spans2; s.spans2 = tp;
        size_t tc = s.spans_cap; s.spans_cap = s.spans2_cap; s.spans2_cap = tc;
        s.spans_n = s.spans2_n;
    }
    if (len >= CACHE_MIN_TEXT) {
        s.ccap = 1u << 12;
        while (s.ccap < 2 * CACHE_MAX_ENTRIES && s.ccap < len / 4) s.ccap *= 2;
        s.cslots = calloc(s.ccap, sizeof *s.cslots);
        if (!s.cslots) s.ccap = 0;
    }
    for (size_t i = 0; i < s.spans_n; i++)
        if (!bpe_word(t, &s, text + s.spans[2 * i], s.spans[2 * i + 1], out)) goto nomem;
    goto done;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
done:
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(js);
    free(s.syms);
    free(s.heap);
    free(s.word);
    free(s.spans);
    free(s.spans2);
    free(s.cslots);
    free(s.cent);
    free(s.cids);
    return st;
}
