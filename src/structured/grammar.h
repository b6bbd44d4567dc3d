// grammar.h — the grammar IR every constraint compiles to (JSON Schema, regex, choice list, GBNF):
// a context-free grammar over bytes.
//
//   rule := alt ('|' alt)*      alt := sym*      sym := a rule reference | a byte class (256-bit set)
//
// Symbols are int32: >= 0 a rule id, GRAM_ALT (-1) separates alternatives inside a rule's list,
// <= -2 the byte class -sym-2. Front-ends build rules with the helpers below, then gram_check
// validates the whole (every referenced rule defined, no left recursion, the root derives some
// finite string) and marks the rules that derive nothing so the matcher skips them.
// Bounded: at most max_syms symbols in all (a budget against pathological specs); the builders
// record out-of-budget / out-of-memory in g->failed and the front-end reports it once.
#ifndef TV_STRUCTURED_GRAMMAR_H
#define TV_STRUCTURED_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

#define GRAM_ALT (-1)
static inline bool gram_is_class(int32_t s) { return s <= -2; }
static inline int32_t gram_class_sym(int32_t id) { return -id - 2; }
static inline int32_t gram_class_id(int32_t s) { return -s - 2; }

typedef struct gram_rule {
    char *name;          // for messages ("root", "value", "_12" for anonymous ones)
    int32_t *syms;       // (n) alternatives separated by GRAM_ALT
    size_t n, cap;
    bool defined;        // got at least one alternative (GBNF: an undefined reference is an error)
    bool productive;     // derives some finite byte string (gram_check)
    bool nullable;       // derives the empty string (gram_check)
} gram_rule;

typedef struct gram {
    uint64_t (*cls)[4];  // (n_cls) byte sets
    size_t n_cls, cap_cls;
    int32_t byte_sym[256];  // class symbol of each single byte, 0 until made
    gram_rule *rules;
    size_t n_rules, cap_rules;
    size_t n_syms, max_syms;
    int32_t root;
    bool failed;         // out of memory or over max_syms; why in fail_code
    tv_status fail_code;
} gram;

// A growable symbol sequence the builders fill.
typedef struct gram_seq { int32_t *v; size_t n, cap; } gram_seq;
bool gram_seq_push(gram *g, gram_seq *s, int32_t sym);           // false (g->failed) on OOM
bool gram_seq_literal(gram *g, gram_seq *s, const char *bytes, size_t n);
void gram_seq_free(gram_seq *s);

gram *gram_create(size_t max_syms);
void gram_free(gram *g);

int32_t gram_new_rule(gram *g, const char *name);                 // -1 when g->failed
int32_t gram_find_rule(const gram *g, const char *name, size_t len);  // -1 when absent
bool gram_add_alt(gram *g, int32_t rule, const int32_t *syms, size_t n);
// A rule with one alternative per sequence given as (n_alts) arrays; returns its id, -1 on failure.
int32_t gram_rule_of(gram *g, const char *name, const gram_seq *alts, size_t n_alts);

int32_t gram_class(gram *g, const uint64_t set[4]);               // symbol of a byte set (deduplicated)
int32_t gram_byte(gram *g, uint8_t b);
// The symbol (a rule) matching one UTF-8 encoded code point in the sorted, disjoint ranges
// [lo[i], hi[i]] (surrogates excluded). n == 0 gives a rule that matches nothing.
int32_t gram_codepoints(gram *g, const uint32_t *lo, const uint32_t *hi, size_t n);
// A rule deriving item (n symbols) repeated min..max times (max < 0: unbounded). Right-recursive,
// so the matcher's stacks stay flat.
int32_t gram_repeat(gram *g, const int32_t *item, size_t n, int64_t min, int64_t max);

// A rule deriving exactly the byte strings l[0..n) (sorted in place), shared prefixes factored
// into a trie of rules so a matcher state holds one stack per distinct next byte.
typedef struct gram_lit { const char *s; size_t n; } gram_lit;
void gram_lit_sort(gram_lit *l, size_t n);
int32_t gram_literal_set(gram *g, gram_lit *l, size_t n);

// Validates; on success the root is productive and every rule is marked. Errors name the rule.
tv_status gram_check(gram *g, tv_error *err);

// Fails the builder (first cause wins).
void gram_fail(gram *g, tv_status code);
// The message for g->failed.
tv_status gram_failure(const gram *g, tv_error *err);

#endif
