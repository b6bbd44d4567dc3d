// matcher.c — compiled grammars, the vocabulary trie and token masks (see matcher.h).
//
// Flattened grammar: elem[] holds every productive alternative of every rule as its symbols then
// END; a stack node is (pos, parent): pos indexes elem (the next symbol to match), parent the node
// to return to when the alternative ends (-1: the root's end). A rule reference at pos pushes
// (pos + 1, parent) as the return node, unless elem[pos + 1] is END (tail call: the parent is
// reused, so right recursion runs in constant stack). Node 0 is ACCEPT (an emptied stack).
#include "structured/matcher.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

#define E_END (-1)
#define ACCEPT 0
#define CFG_DEAD (-1)
#define CFG_UNKNOWN (-2)
#define CFG_FAIL (-3)

// ================= vocabulary trie =================
// Preorder arrays over the distinct text pieces: node i has byte[i], depth[i] (1 = a first byte),
// end[i] (one past its subtree) and tokens tok[tok_lo[i] .. tok_lo[i + 1]) spelled exactly by the
// path to it.
struct matcher_vocab {
    int32_t n_vocab;
    size_t n_nodes;
    uint8_t *byte;       // (n_nodes)
    uint16_t *depth;     // (n_nodes)
    uint32_t *end;       // (n_nodes)
    uint32_t *tok_lo;    // (n_nodes + 1)
    int32_t *tok;        // tokens in trie order
    uint16_t max_depth;
    uint64_t (*sub)[4];  // (n_nodes) the bytes on the paths below each node (kc_walk's loop skip)
    uint16_t *maxd;      // (n_nodes) the longest piece through each node (kc_walk's length bounds)
    uint16_t first_maxd[256];  // the longest piece starting with each byte (0: none)
    char *blob;          // all pieces
    uint32_t *off;       // (n_vocab + 1) piece of id i = blob[off[i] .. off[i + 1])
    uint8_t *kind;       // (n_vocab) 0 none, 1 text, 2 eog
    int32_t *eog;        // eog ids
    size_t n_eog;
    struct kc_table *kc; // token classes of small local grammars, shared by every grammar on v
    struct cls_set *cs;  // byte classes seen by its grammars, numbered (keys spell a class by number)
};

#define VOCAB_MAX_PIECE 1024
#define KC_MAX_FRAMES 16     // frames of a parse stack in one key
#define BELOW_MAX_FRAMES 64  // frames below_id spells
#define BELOW_MAX_KEY 16384  // ints of its spelling (classes by id: it stays in the grammar)
#define KC_MAX_KEY 4096      // ints of a canonical key (larger local grammars stay per grammar)
#define KC_SPLIT 16          // a key's tokens up to this many bytes come from its short key (see key_entry)
#define KC_FEW_DEP 64
#define KC_MAX_DEP 4096      // dependent tokens of a key before it takes the next frames too (a JSON
                             // string's key leaves ~1.2k on Llama-3: pieces with bytes after a quote)

// ================= token classes per key =================
// One entry per key (the canonical text of a local grammar, or an abstract stack node): every
// token sorted into accepted / dependent (see "token classes" below); rejected ones are absent.
typedef struct kc_entry {
    int32_t *key;        // (n_key)
    uint64_t h;          // kc_hash of the key
    uint32_t n_key;
    uint32_t *acc_bits;  // (n_words) its own accepted tokens as a bitmap, or NULL when they are a list
    int32_t *acc;        // (n_own) its own accepted tokens when sparse
    uint32_t n_own;
    int32_t base;        // -1, or the entry (same table) whose accepted tokens are this one's too (key_entry)
    uint32_t n_acc;      // accepted tokens in all: its own and base's
    int32_t *dep;        // (n_dep) tokens whose fate the stack below the key decides
    uint32_t n_dep;
    uint32_t seen;       // stamp: already taken for the mask being built
} kc_entry;

typedef struct kc_table {
    kc_entry *e;
    size_t n, cap;
    uint32_t *hash;      // open addressing: entry index + 1, 0 empty
    size_t hcap;
    size_t bytes;        // held by the entries
    uint32_t gen;        // bumped whenever the table is dropped whole (entry indices die with it)
    uint32_t stamp;      // the mask being built takes entries whose seen != stamp
    uint64_t n_walks;    // the vocabulary's table: trie walks for its keys and for every grammar's
    uint64_t n_local_walks, n_drops;   // local keys, and times a table was dropped over budget
} kc_table;

// The byte classes of every grammar compiled on a vocabulary, numbered once (hash-consed), so a
// shared key spells a class as one int. At most MATCHER_MAX_VOCAB_CLASSES; past that a grammar's
// new classes are spelled out in full.
typedef struct cls_set {
    uint64_t (*set)[4];
    size_t n, cap;
    uint32_t *hash;      // open addressing: number + 1, 0 empty
    size_t hcap;
} cls_set;

static uint64_t cls_hash(const uint64_t s[4]) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int w = 0; w < 4; w++) { h ^= s[w]; h *= 0xff51afd7ed558ccdull; h ^= h >> 31; }
    return h;
}

// The number of class s in cs, added when new; -1 when full or out of memory.
static int32_t cls_number(cls_set *cs, const uint64_t s[4]) {
    if ((cs->n + 1) * 2 > cs->hcap && cs->n < MATCHER_MAX_VOCAB_CLASSES) {
        const size_t cap = cs->hcap ? cs->hcap * 2 : 256;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h) return -1;
        for (size_t i = 0; i < cs->n; i++) {
            size_t j = cls_hash(cs->set[i]) & (cap - 1);
            while (h[j]) j = (j + 1) & (cap - 1);
            h[j] = (uint32_t)i + 1;
        }
        free(cs->hash);
        cs->hash = h;
        cs->hcap = cap;
    }
    size_t j = cls_hash(s) & (cs->hcap - 1);
    for (; cs->hash[j]; j = (j + 1) & (cs->hcap - 1))
        if (!memcmp(cs->set[cs->hash[j] - 1], s, sizeof cs->set[0])) return (int32_t)cs->hash[j] - 1;
    if (cs->n >= MATCHER_MAX_VOCAB_CLASSES) return -1;
    if (cs->n == cs->cap) {
        uint64_t (*ns)[4] = array_grow(cs->set, &cs->cap, cs->n + 1, sizeof *ns);
        if (!ns) return -1;
        cs->set = ns;
    }
    memcpy(cs->set[cs->n], s, sizeof cs->set[0]);
    cs->hash[j] = (uint32_t)cs->n + 1;
    return (int32_t)cs->n++;
}

// A new stamp for the next mask (clears the entries' on wrap-around).
static uint32_t kc_next_stamp(kc_table *t) {
    if (++t->stamp == 0) {
        for (size_t i = 0; i < t->n; i++) t->e[i].seen = 0;
        t->stamp = 1;
    }
    return t->stamp;
}

static uint64_t kc_hash(const int32_t *k, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)k[i];
        h *= 0x100000001B3ull;
        h ^= h >> 29;
    }
    return h;
}

static void kc_clear(kc_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        kc_entry *e = &t->e[i];
        free(e->key); free(e->acc_bits); free(e->acc); free(e->dep);
    }
    t->n = 0;
    t->bytes = 0;
    if (t->hash) memset(t->hash, 0, t->hcap * sizeof *t->hash);
    t->gen++;
}

static void kc_free(kc_table *t) {
    if (!t) return;
    kc_clear(t);
    free(t->e);
    free(t->hash);
    free(t);
}

// The entry of key k[0..n): its index, or -1.
static long kc_find(const kc_table *t, const int32_t *k, size_t n) {
    if (!t->hcap) return -1;
    const uint64_t h = kc_hash(k, n);
    for (size_t j = h & (t->hcap - 1); t->hash[j]; j = (j + 1) & (t->hcap - 1)) {
        const kc_entry *e = &t->e[t->hash[j] - 1];
        if (e->h == h && e->n_key == n && memcmp(e->key, k, n * sizeof *k) == 0) return (long)t->hash[j] - 1;
    }
    return -1;
}

// Adds key k[0..n) with its own n_own accepted tokens acc_bits (n_words words; sparse sets become a
// list), the accepted tokens of entry base (-1: none; n_acc counts both) and the dependent tokens
// dep[0..n_dep). Returns the entry index, -1 when out of memory.
static long kc_add(kc_table *t, const int32_t *k, size_t n, const uint32_t *acc_bits, size_t n_own, size_t n_words,
                   long base, size_t n_acc, const int32_t *dep, size_t n_dep) {
    if ((t->n + 1) * 2 > t->hcap) {
        const size_t cap = t->hcap ? t->hcap * 2 : 256;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h) return -1;
        for (size_t i = 0; i < t->n; i++) {
            size_t j = t->e[i].h & (cap - 1);
            while (h[j]) j = (j + 1) & (cap - 1);
            h[j] = (uint32_t)i + 1;
        }
        free(t->hash);
        t->hash = h;
        t->hcap = cap;
    }
    if (t->n == t->cap) {
        kc_entry *ne = array_grow(t->e, &t->cap, t->n + 1, sizeof *ne);
        if (!ne) return -1;
        t->e = ne;
    }
    kc_entry e = {.h = kc_hash(k, n), .n_key = (uint32_t)n, .n_own = (uint32_t)n_own, .base = (int32_t)base,
                  .n_acc = (uint32_t)n_acc, .n_dep = (uint32_t)n_dep};
    e.key = malloc(n * sizeof *k + 1);
    e.dep = malloc(n_dep * sizeof *dep + 1);
    const bool as_list = n_own < n_words;   // a list is smaller than the bitmap
    if (as_list) e.acc = malloc(n_own * sizeof *e.acc + 1);
    else e.acc_bits = malloc(n_words * sizeof *acc_bits);
    if (!e.key || !e.dep || (as_list ? !e.acc : !e.acc_bits)) {
        free(e.key); free(e.dep); free(e.acc); free(e.acc_bits);
        return -1;
    }
    memcpy(e.key, k, n * sizeof *k);
    if (n_dep) memcpy(e.dep, dep, n_dep * sizeof *dep);
    if (as_list) {
        size_t a = 0;
        for (size_t w = 0; w < n_words; w++)
            for (uint32_t b = acc_bits[w]; b; b &= b - 1) e.acc[a++] = (int32_t)(w * 32 + (size_t)__builtin_ctz(b));
    } else memcpy(e.acc_bits, acc_bits, n_words * sizeof *acc_bits);
    t->bytes += n * 4 + n_dep * 4 + (as_list ? n_own * 4 : n_words * 4) + sizeof e;
    size_t j = e.h & (t->hcap - 1);
    while (t->hash[j]) j = (j + 1) & (t->hcap - 1);
    t->hash[j] = (uint32_t)t->n + 1;
    t->e[t->n] = e;
    return (long)t->n++;
}

static int piece_cmp(const void *a, const void *b, void *ctx) {
    const matcher_vocab *v = ctx;
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const uint32_t lx = v->off[x + 1] - v->off[x], ly = v->off[y + 1] - v->off[y];
    const int c = memcmp(v->blob + v->off[x], v->blob + v->off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

void matcher_vocab_free(matcher_vocab *v) {
    if (!v) return;
    free(v->byte); free(v->depth); free(v->end); free(v->tok_lo); free(v->tok); free(v->sub); free(v->maxd);
    free(v->blob); free(v->off); free(v->kind); free(v->eog);
    kc_free(v->kc);
    if (v->cs) { free(v->cs->set); free(v->cs->hash); free(v->cs); }
    free(v);
}

int32_t matcher_vocab_n(const matcher_vocab *v) { return v->n_vocab; }

void matcher_vocab_class_stats(const matcher_vocab *v, matcher_class_stats *s) {
    *s = (matcher_class_stats){.n_entries = v->kc->n, .bytes = v->kc->bytes, .n_walks = v->kc->n_walks,
                               .n_local_walks = v->kc->n_local_walks, .n_drops = v->kc->n_drops};
}
size_t matcher_vocab_trie_nodes(const matcher_vocab *v) { return v->n_nodes; }

matcher_vocab *matcher_vocab_create(int32_t n_vocab, const char *const *piece, const size_t *len, const bool *is_text,
                                    const bool *is_eog, tv_error *err) {
    if (n_vocab <= 0) { err_fail(err, TV_ERR_INVALID, "empty vocabulary"); return NULL; }
    matcher_vocab *v = calloc(1, sizeof *v);
    int32_t *order = NULL;
    if (!v) goto oom;
    v->n_vocab = n_vocab;
    size_t total = 0, n_text = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (is_eog && is_eog[i]) v->n_eog++;
        if (is_text[i] && len[i] > 0 && len[i] <= VOCAB_MAX_PIECE) { total += len[i]; n_text++; }
    }
    if (total >= UINT32_MAX / 2) { err_fail(err, TV_ERR_RANGE, "vocabulary too large"); goto fail; }
    v->kc = calloc(1, sizeof *v->kc);
    v->cs = calloc(1, sizeof *v->cs);
    v->off = malloc(((size_t)n_vocab + 1) * sizeof *v->off);
    v->kind = calloc((size_t)n_vocab, 1);
    v->blob = malloc(total + 1);
    v->eog = malloc((v->n_eog + 1) * sizeof *v->eog);
    order = malloc((n_text + 1) * sizeof *order);
    if (!v->kc || !v->cs || !v->off || !v->kind || !v->blob || !v->eog || !order) goto oom;
    size_t o = 0, k = 0, e = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        v->off[i] = (uint32_t)o;
        if (is_eog && is_eog[i]) { v->kind[i] = 2; v->eog[e++] = i; }
        else if (is_text[i] && len[i] > 0 && len[i] <= VOCAB_MAX_PIECE) {
            memcpy(v->blob + o, piece[i], len[i]);
            o += len[i];
            v->kind[i] = 1;
            order[k++] = i;
        }
    }
    v->off[n_vocab] = (uint32_t)o;
    qsort_r(order, k, sizeof *order, piece_cmp, v);
    // nodes: each piece adds one node per byte beyond its common prefix with the previous piece
    size_t n_nodes = 0;
    for (size_t i = 0; i < k; i++) {
        const int32_t t = order[i];
        const uint32_t l = v->off[t + 1] - v->off[t];
        uint32_t lcp = 0;
        if (i) {
            const int32_t p = order[i - 1];
            const uint32_t lp = v->off[p + 1] - v->off[p];
            while (lcp < l && lcp < lp && v->blob[v->off[t] + lcp] == v->blob[v->off[p] + lcp]) lcp++;
        }
        n_nodes += l - lcp;
    }
    v->n_nodes = n_nodes;
    v->byte = malloc(n_nodes + 1);
    v->depth = malloc((n_nodes + 1) * sizeof *v->depth);
    v->end = malloc((n_nodes + 1) * sizeof *v->end);
    v->tok_lo = malloc((n_nodes + 2) * sizeof *v->tok_lo);
    v->tok = malloc((k + 1) * sizeof *v->tok);
    uint32_t path[VOCAB_MAX_PIECE + 1];   // node index at each depth of the current path
    if (!v->byte || !v->depth || !v->end || !v->tok_lo || !v->tok) goto oom;
    size_t nn = 0, nt = 0;
    uint32_t path_len = 0;
    for (size_t i = 0; i < k; i++) {
        const int32_t t = order[i];
        const uint32_t l = v->off[t + 1] - v->off[t];
        const uint8_t *s = (const uint8_t *)v->blob + v->off[t];
        uint32_t lcp = 0;
        while (lcp < l && lcp < path_len && v->byte[path[lcp]] == s[lcp]) lcp++;
        for (uint32_t d = lcp; d < path_len; d++) v->end[path[d]] = (uint32_t)nn;   // close the old branch
        path_len = lcp;
        for (uint32_t d = lcp; d < l; d++) {
            v->byte[nn] = s[d];
            v->depth[nn] = (uint16_t)(d + 1);
            v->tok_lo[nn] = (uint32_t)nt;
            if (d + 1 > v->max_depth) v->max_depth = (uint16_t)(d + 1);
            path[path_len++] = (uint32_t)nn++;
        }
        // the token sits at the node of its last byte; pieces with equal bytes are adjacent in
        // order, and their node is the last one made, so tok_lo ranges stay contiguous
        v->tok[nt++] = t;
    }
    for (uint32_t d = 0; d < path_len; d++) v->end[path[d]] = (uint32_t)nn;
    v->tok_lo[nn] = (uint32_t)nt;
    // the bytes below each node: every node adds its byte and its own set to its parent's, children
    // (later in preorder) before parents; order (no longer needed) holds each node's parent
    free(order);
    v->sub = calloc(nn + 1, sizeof *v->sub);
    v->maxd = malloc((nn + 1) * sizeof *v->maxd);
    int32_t *parent = order = malloc((nn + 1) * sizeof *order);
    if (!v->sub || !v->maxd || !parent) goto oom;
    for (size_t j = 0; j < nn; j++) {
        path[v->depth[j]] = (uint32_t)j;
        parent[j] = v->depth[j] > 1 ? (int32_t)path[v->depth[j] - 1] : -1;
        v->maxd[j] = v->depth[j];
    }
    for (size_t j = nn; j-- > 0;) {
        if (parent[j] < 0) continue;
        if (v->maxd[j] > v->maxd[parent[j]]) v->maxd[parent[j]] = v->maxd[j];
        uint64_t *ps = v->sub[parent[j]];
        for (int w = 0; w < 4; w++) ps[w] |= v->sub[j][w];
        ps[v->byte[j] >> 6] |= 1ull << (v->byte[j] & 63);
    }
    for (size_t j = 0; j < nn; j++)
        if (v->depth[j] == 1) v->first_maxd[v->byte[j]] = v->maxd[j];
    free(order);
    return v;
oom:
    err_fail(err, TV_ERR_NOMEM, "out of memory building the vocabulary trie");
fail:
    free(order);
    matcher_vocab_free(v);
    return NULL;
}

matcher_vocab *matcher_vocab_from_tokenizer(const tv_tokenizer *t, int32_t n_vocab, const bool *is_eog, tv_error *err) {
    const int32_t nt = tv_tokenizer_n_vocab(t);
    if (n_vocab < nt) n_vocab = nt;
    char **piece = calloc((size_t)n_vocab, sizeof *piece);
    size_t *len = calloc((size_t)n_vocab, sizeof *len);
    bool *text = calloc((size_t)n_vocab, sizeof *text);
    bool *eog = calloc((size_t)n_vocab, sizeof *eog);
    matcher_vocab *v = NULL;
    if (!piece || !len || !text || !eog) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    for (int32_t i = 0; i < nt; i++) {
        eog[i] = is_eog ? is_eog[i] : tv_tokenizer_is_eog(t, i);
        if (eog[i] || tv_tokenizer_is_control(t, i)) continue;
        size_t full = 0;
        char tmp[64];
        tv_token_to_piece(t, i, false, tmp, sizeof tmp, &full);
        if (!full) continue;
        if (!(piece[i] = malloc(full))) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
        tv_token_to_piece(t, i, false, piece[i], full, NULL);
        len[i] = full;
        text[i] = true;
    }
    for (int32_t i = nt; is_eog && i < n_vocab; i++) eog[i] = is_eog[i];
    v = matcher_vocab_create(n_vocab, (const char *const *)piece, len, text, eog, err);
done:
    for (int32_t i = 0; piece && i < n_vocab; i++) free(piece[i]);
    free(piece); free(len); free(text); free(eog);
    return v;
}

// ================= compiled grammar =================
typedef struct cfg_info {
    uint32_t off, n;     // tops in cg->tops
    int32_t *next;       // (256) transition table or NULL
    uint32_t *mask;      // memoized mask or NULL
    uint64_t *loops;     // (4) the bytes that step the config to itself, NULL until asked (cfg_loops)
} cfg_info;

// Per stack node used as a top: its token-class entry (ent >= 0 in the vocabulary's table, <= -2
// the local entry -ent - 2, -1 unknown; valid while gen is its table's), the node below the key's
// frames, and which of the entry's dependent tokens this very stack accepts (dpool[dlo .. dlo + dn),
// valid while dgen is cg->dgen).
typedef struct top_memo {
    int32_t ent, below;
    uint32_t gen, dlo, dn, dgen;
} top_memo;

// The accepted dependent tokens of (entry, the stack below its frames): stacks with equal keys over
// equally spelled stacks (below_id) accept the same tokens, so e.g. every position of a string with
// maxLength shares one list. Open addressing; emptied with dpool.
typedef struct dep_list {
    int32_t ent, below;  // ent -1: an empty slot; below: below_id's
    uint32_t gen, dlo, dn;
} dep_list;

// below_id's memo of a node: valid while gen is cg->dgen.
typedef struct below_memo { int32_t id; uint32_t gen; } below_memo;

struct matcher_grammar {
    int refs;
    const matcher_vocab *v;
    int32_t *elem;       // (n_elem) flattened alternatives
    size_t n_elem;
    uint64_t (*cls)[4];  // byte classes
    uint8_t byte_rep[256];  // the least byte in exactly the same classes as this one (they step alike)
    int32_t *cnum;       // (n_cls + 1) each class's number in the vocabulary's cls_set, -1 if none
    int32_t *alt;        // alternative start offsets, rule r's at alt[alt_lo[r] .. alt_lo[r + 1])
    int32_t *alt_lo;     // (n_rules + 1)
    size_t n_rules;
    uint8_t *nullable;   // (n_rules) the rule derives the empty string
    uint32_t *minb;      // (n_rules) a lower bound of the bytes the rule derives, saturated at key_reach
    uint32_t key_reach;  // the vocabulary's longest piece: no token sees further into a key's grammar
    uint16_t *cls_reach; // (n_cls + 1) the longest piece whose first byte is in the class (at least 1):
                         // how far a token sees into a key whose top is that class
    int32_t ctx_node;    // CTX: a stack whose top matches no byte (stands for the frames below a key)
    // stack nodes
    int32_t *npos, *npar;
    uint32_t *stamp;
    size_t n_nodes, cap_nodes;
    uint32_t *nhash;     // open addressing: node id + 1, 0 empty
    size_t nhash_cap;
    // configs
    cfg_info *cfg;
    size_t n_cfg, cap_cfg;
    int32_t *tops;       // concatenated sorted tops
    size_t n_tops, cap_tops;
    uint32_t *chash;
    size_t chash_cap;
    size_t n_tables, n_masks;
    uint32_t gen;
    bool exhausted;
    int32_t init;        // the start config
    // scratch for a step
    int32_t *work, *out;
    size_t cap_work, cap_out;
    int32_t *walk;       // (max_depth + 1) configs along the trie path
    uint8_t *walk_ctx;   // (max_depth + 1) some config on the path so far holds CTX
    // token classes: keys too large to share live here; node -> entry memo for real tops
    kc_table local;
    struct top_memo *tm; // (cap_top) per node used as a top: its entry and accepted dependent tokens
    size_t cap_top;
    int32_t *dpool;      // (n_dpool) the memos' accepted dependent tokens
    size_t n_dpool, cap_dpool;
    uint32_t dgen;       // bumped when dpool is dropped (its lists die with it)
    dep_list *dl;        // (dl_cap) the lists by (entry, below)
    size_t n_dl, dl_cap;
    kc_table spell;      // below_id's spellings (entries without tokens); emptied with dpool
    below_memo *bm;      // (cap_bm) per node
    size_t cap_bm;
    int32_t *ser;        // (BELOW_MAX_KEY) key scratch: the canonical local grammar, n_ser used
    size_t ser_max;      // spell's limit
    uint32_t ser_reach;  // spell's reach: a key's top class's cls_reach, KC_SPLIT for a short key, key_reach for below_id
    bool ser_by_id;      // spell writes classes by id
    int32_t *key;        // (KC_MAX_KEY) key_entry's copy of a key while it spells the short one
    uint8_t *ser_big;    // (n_elem) a key whose top frame rests at this position outgrows KC_MAX_KEY
    size_t n_ser;
    int32_t *rloc;       // (n_rules) local number of a rule in the key being built (-1: not yet)
    uint32_t *rdist;     // (n_rules) the least bytes before a token can enter the rule (spell)
    uint32_t *rgen;      // (n_rules) key generation rloc and rdist belong to
    int32_t *rqueue;     // (n_rules) rules numbered, in order
    int32_t *rwork;      // (BELOW_MAX_KEY) spell's work stack
    uint32_t rgen_cur;
    uint32_t *acc_scratch;  // (n_words)
    int32_t *dep_scratch;
    size_t cap_dep;
};

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

static bool nhash_grow(matcher_grammar *cg) {
    const size_t cap = cg->nhash_cap ? cg->nhash_cap * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h) return false;
    for (size_t i = 0; i < cg->n_nodes; i++) {
        size_t j = mix64((uint64_t)(uint32_t)cg->npos[i] << 32 | (uint32_t)cg->npar[i]) & (cap - 1);
        while (h[j]) j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(cg->nhash);
    cg->nhash = h;
    cg->nhash_cap = cap;
    return true;
}

// The node (pos, parent); -1 when the budget or memory ran out.
static int32_t node_get(matcher_grammar *cg, int32_t pos, int32_t parent) {
    if ((cg->n_nodes + 1) * 2 > cg->nhash_cap && !nhash_grow(cg)) return -1;
    size_t j = mix64((uint64_t)(uint32_t)pos << 32 | (uint32_t)parent) & (cg->nhash_cap - 1);
    for (; cg->nhash[j]; j = (j + 1) & (cg->nhash_cap - 1)) {
        const uint32_t id = cg->nhash[j] - 1;
        if (cg->npos[id] == pos && cg->npar[id] == parent) return (int32_t)id;
    }
    if (cg->n_nodes >= MATCHER_MAX_NODES) { cg->exhausted = true; return -1; }
    if (cg->n_nodes == cg->cap_nodes) {
        size_t cap = cg->cap_nodes;
        int32_t *np = array_grow(cg->npos, &cap, cg->n_nodes + 1, sizeof *np);
        if (!np) return -1;
        cg->npos = np;
        cap = cg->cap_nodes;
        int32_t *nq = array_grow(cg->npar, &cap, cg->n_nodes + 1, sizeof *nq);
        if (!nq) return -1;
        cg->npar = nq;
        cap = cg->cap_nodes;
        uint32_t *ns = array_grow(cg->stamp, &cap, cg->n_nodes + 1, sizeof *ns);
        if (!ns) return -1;
        cg->stamp = ns;
        cg->cap_nodes = cap;
    }
    const int32_t id = (int32_t)cg->n_nodes++;
    cg->npos[id] = pos;
    cg->npar[id] = parent;
    cg->stamp[id] = 0;
    cg->nhash[j] = (uint32_t)id + 1;
    return id;
}

static uint64_t tops_hash(const int32_t *t, size_t n) {
    uint64_t h = n * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (uint32_t)t[i]);
    return h;
}

static bool chash_grow(matcher_grammar *cg) {
    const size_t cap = cg->chash_cap ? cg->chash_cap * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h) return false;
    for (size_t i = 0; i < cg->n_cfg; i++) {
        size_t j = tops_hash(cg->tops + cg->cfg[i].off, cg->cfg[i].n) & (cap - 1);
        while (h[j]) j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(cg->chash);
    cg->chash = h;
    cg->chash_cap = cap;
    return true;
}

// The config of the sorted unique tops t[0..n); CFG_FAIL when out of budget / memory.
static int32_t cfg_get(matcher_grammar *cg, const int32_t *t, size_t n) {
    if ((cg->n_cfg + 1) * 2 > cg->chash_cap && !chash_grow(cg)) return CFG_FAIL;
    size_t j = tops_hash(t, n) & (cg->chash_cap - 1);
    for (; cg->chash[j]; j = (j + 1) & (cg->chash_cap - 1)) {
        const cfg_info *c = &cg->cfg[cg->chash[j] - 1];
        if (c->n == n && memcmp(cg->tops + c->off, t, n * sizeof *t) == 0) return (int32_t)(cg->chash[j] - 1);
    }
    if (cg->n_cfg >= MATCHER_MAX_CONFIGS || cg->n_tops + n >= UINT32_MAX) { cg->exhausted = true; return CFG_FAIL; }
    if (cg->n_cfg == cg->cap_cfg) {
        cfg_info *nc = array_grow(cg->cfg, &cg->cap_cfg, cg->n_cfg + 1, sizeof *nc);
        if (!nc) return CFG_FAIL;
        cg->cfg = nc;
    }
    if (cg->n_tops + n > cg->cap_tops) {
        int32_t *nt = array_grow(cg->tops, &cg->cap_tops, cg->n_tops + n, sizeof *nt);
        if (!nt) return CFG_FAIL;
        cg->tops = nt;
    }
    memcpy(cg->tops + cg->n_tops, t, n * sizeof *t);
    const int32_t id = (int32_t)cg->n_cfg++;
    cg->cfg[id] = (cfg_info){.off = (uint32_t)cg->n_tops, .n = (uint32_t)n};
    cg->n_tops += n;
    cg->chash[j] = (uint32_t)id + 1;
    return id;
}

static bool push_i32(int32_t **v, size_t *cap, size_t n, int32_t x) {
    if (n == *cap) {
        int32_t *nv = array_grow(*v, cap, n + 1, sizeof *nv);
        if (!nv) return false;
        *v = nv;
    }
    (*v)[n] = x;
    return true;
}

// Expands the nodes in cg->work[0..n_work) (already stamped) to class tops / ACCEPT in cg->out;
// returns the count of tops, or -1 on failure.
static long expand(matcher_grammar *cg, size_t n_work) {
    size_t n_out = 0;
    const uint32_t gen = cg->gen;
    while (n_work) {
        const int32_t nd = cg->work[--n_work];
        const int32_t pos = cg->npos[nd], par = cg->npar[nd];
        const int32_t e = cg->elem[pos];
        if (e <= -2) {
            if (!push_i32(&cg->out, &cg->cap_out, n_out++, nd)) return -1;
            continue;
        }
        if (e == E_END) {
            if (par < 0) {
                if (cg->stamp[ACCEPT] != gen) {
                    cg->stamp[ACCEPT] = gen;
                    if (!push_i32(&cg->out, &cg->cap_out, n_out++, ACCEPT)) return -1;
                }
                continue;
            }
            if (cg->stamp[par] != gen) {
                cg->stamp[par] = gen;
                if (!push_i32(&cg->work, &cg->cap_work, n_work++, par)) return -1;
            }
            continue;
        }
        // a rule reference
        int32_t ret = par;
        if (cg->elem[pos + 1] != E_END && (ret = node_get(cg, pos + 1, par)) < 0) return -1;
        for (int32_t a = cg->alt_lo[e]; a < cg->alt_lo[e + 1]; a++) {
            const int32_t c = node_get(cg, cg->alt[a], ret);
            if (c < 0) return -1;
            if (cg->stamp[c] == gen) continue;
            cg->stamp[c] = gen;
            if (!push_i32(&cg->work, &cg->cap_work, n_work++, c)) return -1;
        }
    }
    return (long)n_out;
}

static int i32_cmp(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_small(int32_t *v, size_t n) {
    if (n > 16) { qsort(v, n, sizeof *v, i32_cmp); return; }
    for (size_t i = 1; i < n; i++) {
        const int32_t x = v[i];
        size_t j = i;
        while (j && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
        v[j] = x;
    }
}

// The config after byte b from config c (uncached): CFG_DEAD, CFG_FAIL or an id.
static int32_t step_slow(matcher_grammar *cg, int32_t c, uint8_t b) {
    if (++cg->gen == 0) {   // stamps wrapped: clear them
        memset(cg->stamp, 0, cg->n_nodes * sizeof *cg->stamp);
        cg->gen = 1;
    }
    size_t n_work = 0;
    const cfg_info ci = cg->cfg[c];
    for (uint32_t i = 0; i < ci.n; i++) {
        const int32_t t = cg->tops[ci.off + i];
        if (t == ACCEPT) continue;
        const int32_t pos = cg->npos[t];
        const uint64_t *set = cg->cls[-cg->elem[pos] - 2];
        if (!(set[b >> 6] >> (b & 63) & 1)) continue;
        const int32_t nd = node_get(cg, pos + 1, cg->npar[t]);
        if (nd < 0) return CFG_FAIL;
        if (cg->stamp[nd] == cg->gen) continue;
        cg->stamp[nd] = cg->gen;
        if (!push_i32(&cg->work, &cg->cap_work, n_work++, nd)) return CFG_FAIL;
    }
    if (!n_work) return CFG_DEAD;
    const long n = expand(cg, n_work);
    if (n < 0) return CFG_FAIL;
    if (n == 0) return CFG_DEAD;
    sort_small(cg->out, (size_t)n);
    return cfg_get(cg, cg->out, (size_t)n);
}

static void drop_tables(matcher_grammar *cg) {
    for (size_t i = 0; i < cg->n_cfg; i++) { free(cg->cfg[i].next); cg->cfg[i].next = NULL; }
    cg->n_tables = 0;
}

static void drop_masks(matcher_grammar *cg) {
    for (size_t i = 0; i < cg->n_cfg; i++) { free(cg->cfg[i].mask); cg->cfg[i].mask = NULL; }
    cg->n_masks = 0;
}

// Memoized step.
static inline int32_t step(matcher_grammar *cg, int32_t c, uint8_t b) {
    int32_t *t = cg->cfg[c].next;
    if (__builtin_expect(t != NULL, 1) && t[b] != CFG_UNKNOWN) return t[b];
    if (!t) {
        if (cg->n_tables >= MATCHER_MAX_TABLES) drop_tables(cg);
        if ((t = malloc(256 * sizeof *t))) {
            for (int i = 0; i < 256; i++) t[i] = CFG_UNKNOWN;
            cg->cfg[c].next = t;
            cg->n_tables++;
        }
    }
    // bytes no class tells apart step alike: one step_slow for all of them
    const uint8_t rb = cg->byte_rep[b];
    const int32_t r = t && rb != b && t[rb] != CFG_UNKNOWN ? t[rb] : step_slow(cg, c, rb);
    // step_slow may have grown cg->cfg: reload the table pointer
    if (r != CFG_FAIL && cg->cfg[c].next) cg->cfg[c].next[b] = cg->cfg[c].next[rb] = r;
    return r;
}

static bool cfg_accepting(const matcher_grammar *cg, int32_t c) {
    return cg->cfg[c].n && cg->tops[cg->cfg[c].off] == ACCEPT;
}

size_t matcher_grammar_bytes(const matcher_grammar *cg) {
    const size_t mask_bytes = ((size_t)cg->v->n_vocab + 31) / 32 * 4;
    return cg->n_elem * 4 + cg->cap_nodes * 12 + cg->nhash_cap * 4 + cg->cap_cfg * sizeof(cfg_info) +
           cg->cap_tops * 4 + cg->chash_cap * 4 + cg->n_tables * 1024 + cg->n_masks * mask_bytes;
}

void matcher_grammar_ref(matcher_grammar *cg) { cg->refs++; }
bool matcher_grammar_exhausted(const matcher_grammar *cg) { return cg->exhausted; }

void matcher_grammar_free(matcher_grammar *cg) {
    if (!cg || --cg->refs > 0) return;
    if (cg->cfg) { drop_tables(cg); drop_masks(cg); }
    for (size_t i = 0; i < cg->n_cfg; i++) free(cg->cfg[i].loops);
    free(cg->elem); free(cg->cls); free(cg->cnum); free(cg->cls_reach); free(cg->alt); free(cg->alt_lo);
    free(cg->npos); free(cg->npar); free(cg->stamp); free(cg->nhash);
    free(cg->cfg); free(cg->tops); free(cg->chash);
    free(cg->work); free(cg->out); free(cg->walk); free(cg->walk_ctx);
    kc_clear(&cg->local);
    free(cg->local.e); free(cg->local.hash);
    free(cg->nullable); free(cg->minb); free(cg->rdist); free(cg->rwork); free(cg->tm); free(cg->dl); free(cg->bm);
    kc_clear(&cg->spell);
    free(cg->spell.e); free(cg->spell.hash); free(cg->dpool); free(cg->ser); free(cg->key); free(cg->ser_big);
    free(cg->rloc); free(cg->rgen); free(cg->rqueue); free(cg->acc_scratch); free(cg->dep_scratch);
    free(cg);
}

// cg->byte_rep: the classes cls[0..n) split the bytes into groups of bytes in exactly the same
// classes (partition refinement, class by class); each byte maps to its group's least byte.
static void byte_groups(const uint64_t (*cls)[4], size_t n, uint8_t rep[256]) {
    uint8_t grp[256] = {0};
    int n_grp = 1;
    for (size_t k = 0; k < n && n_grp < 256; k++) {
        int size[256] = {0}, in[256] = {0}, split[256];
        for (int b = 0; b < 256; b++) {
            size[grp[b]]++;
            in[grp[b]] += (int)(cls[k][b >> 6] >> (b & 63) & 1);
        }
        for (int g = 0; g < n_grp; g++) split[g] = in[g] && in[g] < size[g] ? n_grp++ : -1;   // (< 256 groups)
        for (int b = 0; b < 256; b++)
            if (split[grp[b]] >= 0 && (cls[k][b >> 6] >> (b & 63) & 1)) grp[b] = (uint8_t)split[grp[b]];
    }
    int first[256];
    for (int g = 0; g < 256; g++) first[g] = -1;
    for (int b = 0; b < 256; b++) {
        if (first[grp[b]] < 0) first[grp[b]] = b;
        rep[b] = (uint8_t)first[grp[b]];
    }
}

// cg->minb: lower bounds of the bytes each rule derives (see "token classes"), iterated up from 0
// (so every pass gives lower bounds) and saturated at key_reach, past which no token sees.
static void rule_minb(matcher_grammar *cg) {
    const uint32_t sat = cg->key_reach;
    for (int pass = 0; pass < 64; pass++) {
        bool changed = false;
        for (size_t r = 0; r < cg->n_rules; r++) {
            uint32_t best = sat;
            for (int32_t a = cg->alt_lo[r]; a < cg->alt_lo[r + 1] && best; a++) {
                uint32_t sum = 0;
                for (int32_t p = cg->alt[a]; cg->elem[p] != E_END && sum < sat; p++)
                    sum += cg->elem[p] <= -2 ? 1 : cg->minb[cg->elem[p]];
                if (sum < best) best = sum;
            }
            if (best > sat) best = sat;
            if (best != cg->minb[r]) { cg->minb[r] = best; changed = true; }
        }
        if (!changed) break;
    }
}

matcher_grammar *matcher_grammar_compile(const gram *g, const matcher_vocab *v, tv_error *err) {
    matcher_grammar *cg = calloc(1, sizeof *cg);
    if (!cg) goto oom;
    cg->refs = 1;
    cg->v = v;
    cg->key_reach = v->max_depth ? v->max_depth : 1;
    const size_t nr = g->n_rules;
    size_t n_elem = 3, n_alt = 0;   // elem[0]: a sentinel END, so no position is 0; 2 for CTX
    for (size_t r = 0; r < nr; r++) {
        n_elem += g->rules[r].n + 2;
        n_alt++;
        for (size_t k = 0; k < g->rules[r].n; k++) n_alt += g->rules[r].syms[k] == GRAM_ALT;
    }
    cg->elem = malloc(n_elem * sizeof *cg->elem);
    cg->alt = malloc((n_alt + 1) * sizeof *cg->alt);
    cg->alt_lo = malloc((nr + 2) * sizeof *cg->alt_lo);
    cg->cls = calloc(g->n_cls + 1, sizeof *cg->cls);   // the last one, empty, is CTX's
    cg->cnum = malloc((g->n_cls + 1) * sizeof *cg->cnum);
    cg->cls_reach = malloc((g->n_cls + 1) * sizeof *cg->cls_reach);
    cg->walk = malloc(((size_t)v->max_depth + 2) * sizeof *cg->walk);
    cg->walk_ctx = malloc((size_t)v->max_depth + 2);
    cg->n_rules = nr;
    cg->nullable = malloc(nr + 1);
    cg->minb = calloc(nr + 1, sizeof *cg->minb);
    cg->rdist = malloc((nr + 1) * sizeof *cg->rdist);
    cg->rwork = malloc(BELOW_MAX_KEY * sizeof *cg->rwork);
    cg->rloc = malloc((nr + 1) * sizeof *cg->rloc);
    cg->rgen = calloc(nr + 1, sizeof *cg->rgen);
    cg->rqueue = malloc((nr + 1) * sizeof *cg->rqueue);
    cg->acc_scratch = malloc(((size_t)v->n_vocab + 31) / 32 * sizeof *cg->acc_scratch);
    cg->ser = malloc(BELOW_MAX_KEY * sizeof *cg->ser);
    cg->key = malloc(KC_MAX_KEY * sizeof *cg->key);
    cg->ser_big = calloc(n_elem, 1);
    cg->dgen = 1;
    if (!cg->cnum || !cg->cls_reach || !cg->ser || !cg->key || !cg->ser_big || !cg->elem || !cg->alt || !cg->alt_lo || !cg->cls || !cg->walk || !cg->walk_ctx || !cg->nullable || !cg->minb || !cg->rdist || !cg->rwork || !cg->rloc ||
        !cg->rgen || !cg->rqueue || !cg->acc_scratch)
        goto oom;
    if (g->n_cls) memcpy(cg->cls, g->cls, g->n_cls * sizeof *cg->cls);
    for (size_t k = 0; k <= g->n_cls; k++) {
        cg->cnum[k] = cls_number(v->cs, cg->cls[k]);
        uint16_t reach = 1;
        for (int b = 0; b < 256; b++)
            if (cg->cls[k][b >> 6] >> (b & 63) & 1 && v->first_maxd[b] > reach) reach = v->first_maxd[b];
        cg->cls_reach[k] = reach;
    }
    for (size_t r = 0; r < nr; r++) cg->nullable[r] = g->rules[r].nullable;
    size_t ne = 0, na = 0;
    cg->elem[ne++] = E_END;
    for (size_t r = 0; r < nr; r++) {
        const gram_rule *rule = &g->rules[r];
        cg->alt_lo[r] = (int32_t)na;
        size_t s = 0;
        for (size_t i = 0; i <= rule->n; i++) {
            if (i < rule->n && rule->syms[i] != GRAM_ALT) continue;
            bool productive = true;
            for (size_t k = s; k < i; k++)
                if (rule->syms[k] >= 0 && !g->rules[rule->syms[k]].productive) productive = false;
            if (productive) {
                cg->alt[na++] = (int32_t)ne;
                for (size_t k = s; k < i; k++) cg->elem[ne++] = rule->syms[k];
                cg->elem[ne++] = E_END;
            }
            s = i + 1;
        }
    }
    cg->alt_lo[nr] = (int32_t)na;
    rule_minb(cg);
    byte_groups(cg->cls, g->n_cls, cg->byte_rep);
    const int32_t ctx_pos = (int32_t)ne;
    cg->elem[ne++] = gram_class_sym((int32_t)g->n_cls);
    cg->elem[ne++] = E_END;
    cg->n_elem = ne;
    // node 0 = ACCEPT (pos 0 is the sentinel END, never a real position), node 1 = CTX
    if (node_get(cg, 0, -2) != ACCEPT || (cg->ctx_node = node_get(cg, ctx_pos, -1)) != 1) goto oom;
    size_t n_work = 0;
    cg->gen = 1;
    for (int32_t a = cg->alt_lo[g->root]; a < cg->alt_lo[g->root + 1]; a++) {
        const int32_t nd = node_get(cg, cg->alt[a], -1);
        if (nd < 0) goto oom;
        if (cg->stamp[nd] == cg->gen) continue;
        cg->stamp[nd] = cg->gen;
        if (!push_i32(&cg->work, &cg->cap_work, n_work++, nd)) goto oom;
    }
    const long n = expand(cg, n_work);
    if (n < 0) goto oom;
    sort_small(cg->out, (size_t)n);
    if ((cg->init = cfg_get(cg, cg->out, (size_t)n)) < 0) goto oom;
    return cg;
oom:
    err_fail(err, TV_ERR_NOMEM, "out of memory compiling the grammar");
    matcher_grammar_free(cg);
    return NULL;
}

// ================= token classes =================
// The precomputed layer (XGrammar's adaptive token mask cache, carried over to parse stacks).
// A mask is the union over its config's tops (parse stacks) of the tokens each stack accepts, and
// a stack's verdict on most tokens depends only on its top few frames. So for a top node the key
// keeps frames from the top down to the first whose rest must consume a byte before it could pop
// (a JSON string's character, its loop and its closing quote: KC_MAX_FRAMES at most) and puts CTX,
// a stack that matches nothing, below them. One trie walk from that abstract stack sorts every
// token: accepted (alive after its last byte: the real stack, which only adds paths, accepts it
// too), dependent (it died after the walk had reached CTX on its path: the frames below decide)
// or rejected (it died without touching CTX: the real stack rejects it as well). A config's mask
// is then the OR over its tops of the key's accepted set and of the dependent tokens that stack
// accepts (checked one by one from the one-stack config, once per stack: stacks are hash-consed
// and recur across configs): exactly the mask a full trie walk from the config gives.
// A key spells its local grammar as far as a token sees it (spell): the frames' rests and the rules
// they reach, each cut where key_reach bytes (the longest piece) have been consumed at least (by
// lower bounds of what each rule derives), rules numbered in discovery order, classes by their
// number in the vocabulary (cls_set). So keys that differ only out of every token's reach are one
// key: every position of a string with maxLength 4096 is the same key until the last key_reach
// characters. A key spelled within
// KC_MAX_KEY ints lives in the vocabulary's table, shared by every grammar on it (the walks for
// JSON strings, numbers and whitespace are done once per vocabulary); larger keys are the abstract
// node itself, in the grammar's own table. A new key takes its tokens of at most KC_SPLIT bytes
// from its short key (spelled for that reach: the last key_reach positions of a string share it)
// and walks only the paths to longer pieces. The dependent tokens a stack accepts are kept per
// (entry, the rest of the stack as tokens see it: below_id), so equal stacks share the list. Both
// tables are caches bounded by MATCHER_MAX_CLASS_BYTES, dropped whole between masks when over.
#define KC_FRAME (-3)
#define KC_RULE (-4)
#define KC_ALT (-5)
#define KC_BOTTOM_CTX (-6)
#define KC_BOTTOM_ROOT (-7)
#define KC_TRUNC (-8)
#define KC_SHORT (-10)       // ends a short key (key_entry)
#define KC_CLASS (-11)       // KC_CLASS - n: class number n (the vocabulary's, or the grammar's by_id)

static bool cfg_has_ctx(const matcher_grammar *cg, int32_t c) {   // tops are sorted: ACCEPT (0), CTX (1), ...
    const cfg_info *ci = &cg->cfg[c];
    return ci->n && (cg->tops[ci->off] == 1 || (ci->n > 1 && cg->tops[ci->off + 1] == 1));
}

static bool seq_nullable(const matcher_grammar *cg, int32_t pos) {
    for (; cg->elem[pos] != E_END; pos++)
        if (cg->elem[pos] <= -2 || !cg->nullable[cg->elem[pos]]) return false;
    return true;
}

// The bytes the symbols from pos to the alternative's END derive at least (saturated at reach).
static uint32_t seq_minb(const matcher_grammar *cg, int32_t pos, uint32_t reach) {
    uint32_t d = 0;
    for (; cg->elem[pos] != E_END && d < reach; pos++) d += cg->elem[pos] <= -2 ? 1 : cg->minb[cg->elem[pos]];
    return d;
}

// Spelling, first pass: the rules the symbols from pos (reached after d bytes at least) reach before
// ser_reach bytes, each with the least such distance (rdist, valid where rgen is rgen_cur; rloc -1
// until numbered); rules whose distance dropped go on rwork (*n_work). False when that outgrows
// ser_max (the spelling would too).
static bool reach_seq(matcher_grammar *cg, int32_t pos, uint32_t d, size_t *n_work) {
    for (; cg->elem[pos] != E_END && d < cg->ser_reach; pos++) {
        const int32_t e = cg->elem[pos];
        if (e <= -2) { d++; continue; }
        if (cg->rgen[e] != cg->rgen_cur || d < cg->rdist[e]) {
            if (cg->rgen[e] != cg->rgen_cur) { cg->rgen[e] = cg->rgen_cur; cg->rloc[e] = -1; }
            cg->rdist[e] = d;
            if (*n_work == cg->ser_max) return false;
            cg->rwork[(*n_work)++] = e;
        }
        d += cg->minb[e];
    }
    return true;
}

static bool ser_push(matcher_grammar *cg, int32_t x) {
    if (cg->n_ser >= cg->ser_max - 2) return false;   // room for the bottom marks
    cg->ser[cg->n_ser++] = x;
    return true;
}

// Second pass: appends the symbols from pos (reached after d bytes) to the alternative's END,
// numbering new rules (queued in rqueue); the symbols from where d reaches ser_reach on become one
// KC_TRUNC (no token gets there).
static bool ser_seq(matcher_grammar *cg, int32_t pos, uint32_t d, size_t *n_loc) {
    for (;; pos++) {
        const int32_t e = cg->elem[pos];
        if (e == E_END) return ser_push(cg, E_END);
        if (d >= cg->ser_reach) return ser_push(cg, KC_TRUNC);
        if (e <= -2) {
            d++;
            const int32_t c = -e - 2, id = cg->ser_by_id ? c : cg->cnum[c];
            if (id < 0) {   // a class the vocabulary has no number for: its bytes
                const uint64_t *set = cg->cls[c];
                if (!ser_push(cg, -2)) return false;
                for (int w = 0; w < 4; w++)
                    if (!ser_push(cg, (int32_t)(uint32_t)set[w]) || !ser_push(cg, (int32_t)(uint32_t)(set[w] >> 32))) return false;
            } else if (!ser_push(cg, KC_CLASS - id)) return false;   // (below every mark)
            continue;
        }
        if (cg->rloc[e] < 0) {
            cg->rloc[e] = (int32_t)*n_loc;
            cg->rqueue[(*n_loc)++] = e;
        }
        if (!ser_push(cg, cg->rloc[e])) return false;
        d += cg->minb[e];
    }
}

// Spells into cg->ser (n_ser ints, two left free for the caller's bottom marks) the stack of frames
// resting at fpos[0..n) (top first) as far as a token of at most reach bytes sees it: the frames and
// the rules they reach, each cut where reach bytes have been consumed at least (the frames below the
// first frame so reached are left out: *cut). Canonical: rules numbered in the order they are first
// spelled; classes by their number in the vocabulary (a key shared by every grammar; spelled out
// when it has none) or, by_id, in this grammar. Equal spellings, equal verdicts on every token of at most reach bytes. False when over
// KC_MAX_KEY ints (BELOW_MAX_KEY by_id).
static bool spell(matcher_grammar *cg, const int32_t *fpos, size_t n, uint32_t reach, bool by_id, bool *cut) {
    cg->ser_by_id = by_id;
    cg->ser_max = by_id ? BELOW_MAX_KEY : KC_MAX_KEY;
    cg->ser_reach = reach;
    if (++cg->rgen_cur == 0) { memset(cg->rgen, 0, cg->n_rules * sizeof *cg->rgen); cg->rgen_cur = 1; }
    size_t n_work = 0, n_vis = 0;
    for (uint32_t d = 0; n_vis < n && d < reach; d += seq_minb(cg, fpos[n_vis++], reach))
        if (!reach_seq(cg, fpos[n_vis], d, &n_work)) return false;
    while (n_work) {
        const int32_t r = cg->rwork[--n_work];
        for (int32_t a = cg->alt_lo[r]; a < cg->alt_lo[r + 1]; a++)
            if (!reach_seq(cg, cg->alt[a], cg->rdist[r], &n_work)) return false;
    }
    cg->n_ser = 0;
    size_t n_loc = 0, n_done = 0;
    uint32_t d = 0;
    for (size_t i = 0; i < n_vis; d += seq_minb(cg, fpos[i++], reach)) {
        if (!ser_push(cg, KC_FRAME) || !ser_seq(cg, fpos[i], d, &n_loc)) return false;
        for (; n_done < n_loc; n_done++) {
            const int32_t r = cg->rqueue[n_done];
            if (!ser_push(cg, KC_RULE)) return false;
            for (int32_t a = cg->alt_lo[r]; a < cg->alt_lo[r + 1]; a++)
                if (!ser_push(cg, KC_ALT) || !ser_seq(cg, cg->alt[a], cg->rdist[r], &n_loc)) return false;
        }
    }
    *cut = n_vis < n;
    return true;
}

// The bytes that step config x to itself (4 words), computed once per config; NULL when a budget or
// memory ran out.
static const uint64_t *cfg_loops(matcher_grammar *cg, int32_t x) {
    if (cg->cfg[x].loops) return cg->cfg[x].loops;
    uint64_t l[4] = {0};
    for (int b = 0; b < 256; b++) {
        const int32_t y = step(cg, x, (uint8_t)b);   // (may grow cg->cfg)
        if (y == CFG_FAIL) return NULL;
        if (y == x) l[b >> 6] |= 1ull << (b & 63);
    }
    uint64_t *p = malloc(sizeof l);
    if (!p) return NULL;
    memcpy(p, l, sizeof l);
    return cg->cfg[x].loops = p;
}

static uint32_t piece_len(const matcher_vocab *v, int32_t tok) { return v->off[tok + 1] - v->off[tok]; }

// Walks the vocabulary trie from config c0 over the tokens of more than lo and at most hi bytes:
// accepted ones into acc (n_words, zeroed here; *n_acc of them), the dependent ones (c0 abstract)
// appended to cg->dep_scratch (*n_dep, zeroed here). TV_ERR_NOMEM on a budget. skip_loops: where a
// byte stepped a config to itself and every byte below the node does too (a string's characters,
// a pattern's loop), the whole subtree is accepted without stepping it.
static tv_status kc_walk(matcher_grammar *cg, int32_t c0, uint32_t lo_len, uint32_t hi_len, uint32_t *acc, size_t *n_acc,
                         size_t *n_dep, bool skip_loops) {
    const matcher_vocab *v = cg->v;
    memset(acc, 0, ((size_t)v->n_vocab + 31) / 32 * sizeof *acc);
    *n_dep = *n_acc = 0;
    const bool every = lo_len == 0 && hi_len >= v->max_depth;   // no token left out
    int32_t *walk = cg->walk;
    uint8_t *wctx = cg->walk_ctx;
    walk[0] = c0;
    wctx[0] = cfg_has_ctx(cg, c0);
    const size_t nn = v->n_nodes;
    for (size_t i = 0; i < nn;) {
        const uint16_t d = v->depth[i];
        if (d > hi_len || v->maxd[i] <= lo_len) { i = v->end[i]; continue; }   // no token of the lengths below
        const int32_t nx = step(cg, walk[d - 1], v->byte[i]);
        if (nx < 0) {
            if (nx == CFG_FAIL) return TV_ERR_NOMEM;
            if (wctx[d - 1]) {   // the stack below might have gone on: the subtree's tokens are dependent
                const uint32_t lo = v->tok_lo[i], hi = v->tok_lo[v->end[i]];
                if (*n_dep + (hi - lo) > cg->cap_dep) {
                    int32_t *nd = array_grow(cg->dep_scratch, &cg->cap_dep, *n_dep + (hi - lo), sizeof *nd);
                    if (!nd) return TV_ERR_NOMEM;
                    cg->dep_scratch = nd;
                }
                for (uint32_t k = lo; k < hi; k++) {
                    const uint32_t l = piece_len(v, v->tok[k]);
                    if (every || (l > lo_len && l <= hi_len)) cg->dep_scratch[(*n_dep)++] = v->tok[k];
                }
            }
            i = v->end[i];
            continue;
        }
        if (skip_loops && nx == walk[d - 1] && v->end[i] > i + 1) {
            const uint64_t *l = cfg_loops(cg, nx), *sb = v->sub[i];
            if (l && !(sb[0] & ~l[0]) && !(sb[1] & ~l[1]) && !(sb[2] & ~l[2]) && !(sb[3] & ~l[3])) {
                const uint32_t lo = v->tok_lo[i], hi = v->tok_lo[v->end[i]];
                for (uint32_t k = lo; k < hi; k++) {
                    const int32_t t = v->tok[k];
                    const uint32_t pl = piece_len(v, t);
                    if (!every && (pl <= lo_len || pl > hi_len)) continue;
                    acc[t >> 5] |= 1u << (t & 31);
                    ++*n_acc;
                }
                i = v->end[i];
                continue;
            }
        }
        if (d > lo_len) {   // (the tokens at node i are d bytes long)
            for (uint32_t k = v->tok_lo[i]; k < v->tok_lo[i + 1]; k++) acc[v->tok[k] >> 5] |= 1u << (v->tok[k] & 31);
            *n_acc += v->tok_lo[i + 1] - v->tok_lo[i];
        }
        walk[d] = nx;
        wctx[d] = wctx[d - 1] || cfg_has_ctx(cg, nx);
        i++;
    }
    return TV_OK;
}

static kc_entry *kc_entry_of(const matcher_grammar *cg, int32_t ref) {
    return ref >= 0 ? &cg->v->kc->e[ref] : &((matcher_grammar *)cg)->local.e[-ref - 2];
}

// The entry for the abstract stack of frames fr[0..n_fr) (top first) over CTX, or over the root's
// end when fr[n_fr - 1] is the bottom: found or walked now. -1 when a budget or memory ran out.
// A key walked now takes its tokens of at most KC_SPLIT bytes from its short key (the stack spelled
// for tokens that long, in the vocabulary's table: keys that differ only further on, such as the
// positions of a string with maxLength, share it) and walks the trie for the longer tokens only.
static int32_t key_entry(matcher_grammar *cg, const int32_t *fr, size_t n_fr) {
    kc_table *shared = cg->v->kc;
    const size_t n_words = ((size_t)cg->v->n_vocab + 31) / 32;
    int32_t fpos[KC_MAX_FRAMES] = {0};   // (n_fr >= 1)
    for (size_t i = 0; i < n_fr; i++) fpos[i] = cg->npos[fr[i]];
    const int32_t bottom = cg->npar[fr[n_fr - 1]] >= 0 ? KC_BOTTOM_CTX : KC_BOTTOM_ROOT;
    // the canonical key, when it fits, spelled as far as the tokens that may start it reach (its top
    // class tells: the key's text starts with it, so equal keys were spelled alike)
    const uint32_t reach = cg->cls_reach[-cg->elem[fpos[0]] - 2];
    bool share = false, cut = false;
    if (!cg->ser_big[fpos[0]]) {   // (the top frame alone decides that the same way every time)
        share = spell(cg, fpos, n_fr, reach, false, &cut);
        if (!share && n_fr == 1) cg->ser_big[fpos[0]] = 1;
    }
    size_t n_key = 1;
    if (share) {
        cg->ser[cg->n_ser++] = cut ? KC_TRUNC : bottom;   // (room left)
        const long idx = kc_find(shared, cg->ser, cg->n_ser);
        if (idx >= 0) return (int32_t)idx;
        memcpy(cg->key, cg->ser, cg->n_ser * sizeof *cg->key);
        n_key = cg->n_ser;
    }
    // the abstract stack (the local key)
    int32_t node = bottom == KC_BOTTOM_CTX ? cg->ctx_node : -1;
    for (size_t i = n_fr; i-- > 0;)
        if ((node = node_get(cg, fpos[i], node)) < 0) return -1;
    if (!share) {
        const long idx = kc_find(&cg->local, &node, 1);
        if (idx >= 0) return (int32_t)(-idx - 2);
    }
    const int32_t c0 = cfg_get(cg, &node, 1);
    if (c0 < 0) return -1;
    size_t n_acc = 0, n_dep = 0;
    long sidx = -1;   // the short key's entry
    if (reach > KC_SPLIT && spell(cg, fpos, n_fr, KC_SPLIT, false, &cut)) {
        cg->ser[cg->n_ser++] = cut ? KC_TRUNC : bottom;
        cg->ser[cg->n_ser++] = KC_SHORT;
        if ((sidx = kc_find(shared, cg->ser, cg->n_ser)) < 0) {
            if (kc_walk(cg, c0, 0, KC_SPLIT, cg->acc_scratch, &n_acc, &n_dep, true) != TV_OK) return -1;
            shared->n_walks++;
            sidx = kc_add(shared, cg->ser, cg->n_ser, cg->acc_scratch, n_acc, n_words, -1, n_acc, cg->dep_scratch, n_dep);
            if (sidx < 0) return -1;
        }
    }
    if (kc_walk(cg, c0, sidx >= 0 ? KC_SPLIT : 0, UINT32_MAX, cg->acc_scratch, &n_acc, &n_dep, true) != TV_OK) return -1;
    if (share) shared->n_walks++;
    else shared->n_local_walks++;
    // the short tokens' verdicts (disjoint from the walk's): a shared entry takes the short entry's
    // accepted tokens by reference (its own are the few long ones), a local one copies them
    size_t n_own = n_acc;
    if (sidx >= 0) {
        const kc_entry *se = &shared->e[sidx];
        if (!share) {
            if (se->acc_bits) for (size_t w = 0; w < n_words; w++) cg->acc_scratch[w] |= se->acc_bits[w];
            else for (uint32_t k = 0; k < se->n_own; k++) cg->acc_scratch[se->acc[k] >> 5] |= 1u << (se->acc[k] & 31);
            n_own += se->n_own;
        }
        n_acc += se->n_acc;
        if (n_dep + se->n_dep > cg->cap_dep) {
            int32_t *nd = array_grow(cg->dep_scratch, &cg->cap_dep, n_dep + se->n_dep, sizeof *nd);
            if (!nd) return -1;
            cg->dep_scratch = nd;
        }
        if (se->n_dep) memcpy(cg->dep_scratch + n_dep, se->dep, se->n_dep * sizeof *se->dep);
        n_dep += se->n_dep;
    }
    const long idx = kc_add(share ? shared : &cg->local, share ? cg->key : &node, n_key, cg->acc_scratch, n_own, n_words,
                            share ? sidx : -1, n_acc, cg->dep_scratch, n_dep);
    if (idx < 0) return -1;
    return share ? (int32_t)idx : (int32_t)(-idx - 2);
}

// The entry of top node t (see above): >= 0 an index in the vocabulary's table, <= -2 the local
// entry -ref - 2; -1 when a budget or memory ran out.
static int32_t top_entry(matcher_grammar *cg, int32_t t) {
    kc_table *shared = cg->v->kc;
    if ((size_t)t >= cg->cap_top) {
        const size_t old = cg->cap_top;
        top_memo *nm = array_grow(cg->tm, &cg->cap_top, (size_t)t + 1, sizeof *nm);
        if (!nm) return -1;
        cg->tm = nm;
        for (size_t i = old; i < cg->cap_top; i++) cg->tm[i] = (top_memo){.ent = -1};
    }
    const int32_t memo = cg->tm[t].ent;
    if (memo != -1 && cg->tm[t].gen == (memo >= 0 ? shared->gen : cg->local.gen)) return memo;
    int32_t fr[KC_MAX_FRAMES];   // the stack's frames from the top
    size_t n_chain = 0;
    for (int32_t nd = t; nd >= 0 && n_chain < KC_MAX_FRAMES; nd = cg->npar[nd]) fr[n_chain++] = nd;
    // cut below the first frame whose rest must consume a byte before it pops; while that leaves
    // too many tokens dependent (a UTF-8 continuation byte, an escape), cut at the next such frame
    size_t n_fr = 0;
    int32_t ref;
    for (;;) {
        while (n_fr < n_chain && seq_nullable(cg, cg->npos[fr[n_fr]] + (n_fr == 0))) n_fr++;
        if (n_fr < n_chain) n_fr++;
        if ((ref = key_entry(cg, fr, n_fr)) == -1) return -1;
        const kc_entry *e = kc_entry_of(cg, ref);
        if (n_fr == n_chain || (e->n_dep <= KC_MAX_DEP && (e->n_dep <= KC_FEW_DEP || e->n_dep <= e->n_acc / 2))) break;
    }
    cg->tm[t] = (top_memo){.ent = ref, .below = cg->npar[fr[n_fr - 1]], .gen = ref >= 0 ? shared->gen : cg->local.gen};
    // (dgen 0: no list yet)
    return ref;
}

// The config after the text token tok from config c: CFG_DEAD, CFG_FAIL or an id.
static int32_t text_step(matcher_grammar *cg, int32_t c, int32_t tok) {
    const matcher_vocab *v = cg->v;
    for (uint32_t i = v->off[tok]; i < v->off[tok + 1] && c >= 0; i++) c = step(cg, c, (uint8_t)v->blob[i]);
    return c;
}

static size_t dl_slot(const matcher_grammar *cg, int32_t ent, uint32_t gen, int32_t below) {
    size_t j = mix64((uint64_t)(uint32_t)ent << 32 ^ (uint64_t)gen << 20 ^ (uint32_t)below) & (cg->dl_cap - 1);
    for (; cg->dl[j].ent != -1; j = (j + 1) & (cg->dl_cap - 1))
        if (cg->dl[j].ent == ent && cg->dl[j].gen == gen && cg->dl[j].below == below) break;
    return j;
}

// The id of the stack from node nd down (-1: the root's end) as tokens see it: its frames spelled
// (spell, classes by id) down to where their rests add up to key_reach bytes (no token reaches
// below) or to the bottom. Equal ids, equal verdicts on every token. Hash-consed in cg->spell; a
// stack deeper than BELOW_MAX_FRAMES or spelled over BELOW_MAX_KEY is its own id (-2 - nd).
// Memoized per node; -1 when out of memory.
static int32_t below_id(matcher_grammar *cg, int32_t nd) {
    if (nd >= 0 && (size_t)nd < cg->cap_bm && cg->bm[nd].gen == cg->dgen) return cg->bm[nd].id;
    int32_t fpos[BELOW_MAX_FRAMES], f = nd, id;
    size_t n = 0;
    for (uint32_t d = 0; f >= 0 && n < BELOW_MAX_FRAMES && d < cg->key_reach; f = cg->npar[f]) {
        fpos[n++] = cg->npos[f];
        d += seq_minb(cg, cg->npos[f], cg->key_reach);
    }
    bool cut = false;
    if (f >= 0 && n == BELOW_MAX_FRAMES) id = -2 - nd;   // too deep to tell
    else if (!spell(cg, fpos, n, cg->key_reach, true, &cut)) id = -2 - nd;   // over BELOW_MAX_KEY
    else {
        cg->ser[cg->n_ser++] = cut || f >= 0 ? KC_TRUNC : KC_BOTTOM_ROOT;   // (room left)
        long idx = kc_find(&cg->spell, cg->ser, cg->n_ser);
        static const uint32_t none = 0;
        if (idx < 0 && (idx = kc_add(&cg->spell, cg->ser, cg->n_ser, &none, 0, 1, -1, 0, NULL, 0)) < 0) return -1;
        id = (int32_t)idx;
    }
    if (nd < 0) return id;
    if ((size_t)nd >= cg->cap_bm) {
        const size_t old = cg->cap_bm;
        below_memo *nb = array_grow(cg->bm, &cg->cap_bm, (size_t)nd + 1, sizeof *nb);
        if (!nb) return -1;
        cg->bm = nb;
        for (size_t i = old; i < cg->cap_bm; i++) cg->bm[i] = (below_memo){.gen = 0};
    }
    cg->bm[nd] = (below_memo){.id = id, .gen = cg->dgen};
    return id;
}

// The list of top t's (entry, below_id bid) into cg->tm[t] when one was made; false if none.
static bool dl_find(matcher_grammar *cg, int32_t t, int32_t bid) {
    if (!cg->n_dl) return false;
    const top_memo *m = &cg->tm[t];
    const dep_list *d = &cg->dl[dl_slot(cg, m->ent, m->gen, bid)];
    if (d->ent == -1) return false;
    cg->tm[t].dlo = d->dlo;
    cg->tm[t].dn = d->dn;
    cg->tm[t].dgen = cg->dgen;
    return true;
}

// Records top t's list (cg->tm[t], just made) under (its entry, bid); false when out of memory.
static bool dl_add(matcher_grammar *cg, int32_t t, int32_t bid) {
    if ((cg->n_dl + 1) * 2 > cg->dl_cap) {
        const size_t cap = cg->dl_cap ? cg->dl_cap * 2 : 256;
        dep_list *nd = malloc(cap * sizeof *nd);
        if (!nd) return false;
        for (size_t j = 0; j < cap; j++) nd[j].ent = -1;
        dep_list *old = cg->dl;
        const size_t old_cap = cg->dl_cap;
        cg->dl = nd;
        cg->dl_cap = cap;
        for (size_t j = 0; j < old_cap; j++)
            if (old[j].ent != -1) cg->dl[dl_slot(cg, old[j].ent, old[j].gen, old[j].below)] = old[j];
        free(old);
    }
    const top_memo *m = &cg->tm[t];
    cg->dl[dl_slot(cg, m->ent, m->gen, bid)] = (dep_list){.ent = m->ent, .below = bid, .gen = m->gen, .dlo = m->dlo, .dn = m->dn};
    cg->n_dl++;
    return true;
}

// Which of entry e's dependent tokens the stack of top t itself accepts: into cg->dpool, memoized in
// cg->tm[t]. The tokens are stepped from the one-stack config {t} (its steps are few and memoized)
// in the trie order kc_walk listed them, so a token resumes from the config after its common prefix
// with the one before (cg->walk holds the configs along that token) and a token extending a prefix
// that already died is rejected without a step.
static tv_status top_dep_accepted(matcher_grammar *cg, int32_t t, const kc_entry *e) {
    const matcher_vocab *v = cg->v;
    int32_t *path = cg->walk;   // path[i]: the config after the previous token's first i bytes
    if ((path[0] = cfg_get(cg, &t, 1)) < 0) return TV_ERR_NOMEM;
    const size_t lo = cg->n_dpool;
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0, n_live = 0;   // path[0 .. n_live] are live; prev died at byte n_live if < prev_len
    for (uint32_t k = 0; k < e->n_dep; k++) {
        const int32_t tok = e->dep[k];
        const uint8_t *p = (const uint8_t *)v->blob + v->off[tok];
        const uint32_t len = v->off[tok + 1] - v->off[tok];
        uint32_t l = 0;
        const uint32_t lim = len < prev_len ? len : prev_len;
        while (l < lim && p[l] == prev[l]) l++;
        prev = p;
        prev_len = len;
        if (l > n_live) continue;   // it shares the byte prev died at (n_live stays: same bytes before it)
        uint32_t i = l;
        for (; i < len; i++) {
            const int32_t c = step(cg, path[i], p[i]);
            if (c == CFG_FAIL) { cg->n_dpool = lo; return TV_ERR_NOMEM; }
            if (c < 0) break;
            path[i + 1] = c;
        }
        n_live = i;
        if (i < len) continue;
        if (cg->n_dpool == cg->cap_dpool) {
            int32_t *np = array_grow(cg->dpool, &cg->cap_dpool, cg->n_dpool + 1, sizeof *np);
            if (!np) { cg->n_dpool = lo; return TV_ERR_NOMEM; }
            cg->dpool = np;
        }
        cg->dpool[cg->n_dpool++] = tok;
    }
    cg->tm[t].dlo = (uint32_t)lo;
    cg->tm[t].dn = (uint32_t)(cg->n_dpool - lo);
    cg->tm[t].dgen = cg->dgen;
    return TV_OK;
}

static void set_eog(const matcher_vocab *v, uint32_t *out) {
    for (size_t i = 0; i < v->n_eog; i++) out[v->eog[i] >> 5] |= 1u << (v->eog[i] & 31);
}

// ORs entry e's own accepted tokens into out (nw words).
static void or_accepted(const kc_entry *e, uint32_t *out, size_t nw) {
    if (e->acc_bits) for (size_t w = 0; w < nw; w++) out[w] |= e->acc_bits[w];
    else for (uint32_t k = 0; k < e->n_own; k++) out[e->acc[k] >> 5] |= 1u << (e->acc[k] & 31);
}

// The mask of config c into out (words): memoized per config, else built from its tops' classes.
static tv_status cfg_mask(matcher_grammar *cg, int32_t c, uint32_t *out) {
    const matcher_vocab *v = cg->v;
    const size_t nw = ((size_t)v->n_vocab + 31) / 32;
    if (cg->cfg[c].mask) { memcpy(out, cg->cfg[c].mask, nw * 4); return TV_OK; }
    // entries are taken by index below: drop over-budget tables now, never mid-mask
    if (v->kc->bytes > MATCHER_MAX_CLASS_BYTES) { kc_clear(v->kc); v->kc->n_drops++; }
    if (cg->local.bytes > MATCHER_MAX_CLASS_BYTES) { kc_clear(&cg->local); v->kc->n_drops++; }
    if (cg->n_dpool * sizeof *cg->dpool + cg->dl_cap * sizeof *cg->dl + cg->spell.bytes > MATCHER_MAX_CLASS_BYTES) {
        cg->n_dpool = 0;
        cg->dgen++;
        for (size_t j = 0; j < cg->dl_cap; j++) cg->dl[j].ent = -1;
        cg->n_dl = 0;
        kc_clear(&cg->spell);
    }
    memset(out, 0, nw * 4);
    if (cfg_accepting(cg, c)) set_eog(v, out);
    const uint32_t stamp_shared = kc_next_stamp(v->kc), stamp_local = kc_next_stamp(&cg->local);
    for (uint32_t i = 0; i < cg->cfg[c].n; i++) {
        const int32_t t = cg->tops[cg->cfg[c].off + i];   // re-read: walks grow cg->tops
        if (t == ACCEPT) continue;
        const int32_t ref = top_entry(cg, t);
        if (ref == -1) return TV_ERR_NOMEM;
        kc_entry *e = kc_entry_of(cg, ref);
        const uint32_t stamp = ref >= 0 ? stamp_shared : stamp_local;
        if (e->seen != stamp) {   // several tops may share an entry: OR its accepted set once
            e->seen = stamp;
            or_accepted(e, out, nw);
            kc_entry *b = e->base >= 0 ? &v->kc->e[e->base] : NULL;   // (a base is a shared entry)
            if (b && b->seen != stamp_shared) {
                b->seen = stamp_shared;
                or_accepted(b, out, nw);
            }
        }
        if (!e->n_dep) continue;
        if (cg->tm[t].dgen != cg->dgen) {
            const int32_t bid = below_id(cg, cg->tm[t].below);
            if (bid == -1) return TV_ERR_NOMEM;
            if (!dl_find(cg, t, bid) && (top_dep_accepted(cg, t, e) != TV_OK || !dl_add(cg, t, bid))) return TV_ERR_NOMEM;
        }
        if (!cg->tm[t].dn) continue;   // (dpool may still be NULL)
        const int32_t *d = cg->dpool + cg->tm[t].dlo;
        for (uint32_t k = 0; k < cg->tm[t].dn; k++) out[d[k] >> 5] |= 1u << (d[k] & 31);
    }
    const size_t mask_bytes = nw * 4;
    if ((cg->n_masks + 1) * mask_bytes > MATCHER_MAX_MASK_BYTES) drop_masks(cg);
    if ((cg->cfg[c].mask = malloc(mask_bytes))) {
        memcpy(cg->cfg[c].mask, out, mask_bytes);
        cg->n_masks++;
    }
    return TV_OK;
}

// ================= matcher =================
struct matcher {
    matcher_grammar *cg;
    int32_t *hist;       // (n_hist + 1) configs; hist[n_hist] is the current one; -1 = ended (EOG taken)
    size_t n_hist, cap_hist;
    uint64_t version;    // advances + rollbacks so far
    bool failed;
};

matcher *matcher_create(matcher_grammar *cg, tv_error *err) {
    matcher *m = mem_calloc(1, sizeof *m);
    if (!m || !(m->hist = mem_malloc(16 * sizeof *m->hist))) {
        free(m);
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->cap_hist = 16;
    m->hist[0] = cg->init;
    m->cg = cg;
    matcher_grammar_ref(cg);
    return m;
}

void matcher_free(matcher *m) {
    if (!m) return;
    matcher_grammar_free(m->cg);
    free(m->hist);
    free(m);
}

static int32_t cur(const matcher *m) { return m->hist[m->n_hist]; }

tv_status matcher_fill_mask(matcher *m, uint32_t *mask) {
    const matcher_vocab *v = m->cg->v;
    if (cur(m) < 0) {
        memset(mask, 0, ((size_t)v->n_vocab + 31) / 32 * 4);
        set_eog(v, mask);
        return TV_OK;
    }
    const tv_status st = cfg_mask(m->cg, cur(m), mask);
    if (st) m->failed = true;
    return st;
}

tv_status matcher_fill_mask_walk(matcher *m, uint32_t *mask) {
    const matcher_vocab *v = m->cg->v;
    if (cur(m) < 0) {
        memset(mask, 0, ((size_t)v->n_vocab + 31) / 32 * 4);
        set_eog(v, mask);
        return TV_OK;
    }
    size_t n_acc = 0, n_dep = 0;   // a real config holds no CTX: nothing is dependent
    const tv_status st = kc_walk(m->cg, cur(m), 0, UINT32_MAX, mask, &n_acc, &n_dep, false);
    if (st) { m->failed = true; return st; }
    if (cfg_accepting(m->cg, cur(m))) set_eog(v, mask);
    return TV_OK;
}

// The config after token tok from config c: CFG_DEAD / CFG_FAIL, -4 for an accepted EOG.
static int32_t token_step(matcher *m, int32_t c, int32_t tok) {
    const matcher_vocab *v = m->cg->v;
    if (tok < 0 || tok >= v->n_vocab) return CFG_DEAD;
    if (v->kind[tok] == 2) return c < 0 || cfg_accepting(m->cg, c) ? -4 : CFG_DEAD;
    if (c < 0 || v->kind[tok] != 1) return CFG_DEAD;
    return text_step(m->cg, c, tok);
}

bool matcher_advance(matcher *m, int32_t tok) {
    int32_t c = token_step(m, cur(m), tok);
    if (c == CFG_FAIL) m->failed = true;
    if (c < 0 && c != -4) return false;
    if (c == -4) c = -1;
    if (m->n_hist + 2 > m->cap_hist) {
        int32_t *nh = array_grow(m->hist, &m->cap_hist, m->n_hist + 2, sizeof *nh);
        if (!nh) { m->failed = true; return false; }
        m->hist = nh;
    }
    m->hist[++m->n_hist] = c;
    m->version++;
    return true;
}

size_t matcher_check(matcher *m, const int32_t *tokens, size_t n) {
    int32_t c = cur(m);
    for (size_t i = 0; i < n; i++) {
        c = token_step(m, c, tokens[i]);
        if (c == -4) c = -1;
        else if (c < 0) return i;
    }
    return n;
}

void matcher_rollback(matcher *m, size_t n) {
    m->n_hist = n > m->n_hist ? 0 : m->n_hist - n;
    m->version++;
}
uint64_t matcher_version(const matcher *m) { return m->version; }
size_t matcher_n_advanced(const matcher *m) { return m->n_hist; }
bool matcher_is_accepting(const matcher *m) { return cur(m) < 0 || cfg_accepting(m->cg, cur(m)); }
bool matcher_failed(const matcher *m) { return m->failed; }

bool matcher_is_done(const matcher *m) {
    const int32_t c = cur(m);
    return c < 0 || (m->cg->cfg[c].n == 1 && m->cg->tops[m->cg->cfg[c].off] == ACCEPT);
}
