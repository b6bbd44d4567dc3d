// matcher.h — token masks from a grammar: the compiled form of a gram (grammar.h), a token trie
// over a model's vocabulary, and a per-sequence matcher.
//
// The matcher runs the grammar as a pushdown recognizer over bytes (Earley-free: the grammar has no
// left recursion): a state (a "config") is the set of parse stacks alive after the bytes so far,
// each stack a persistent list of grammar positions, its top always a byte class. Stacks and
// configs are hash-consed in the compiled grammar, so a config is an int and stepping a config by
// a byte is memoized (a lazily built DFA over configs, like RE2's). A token mask is a depth-first
// walk of the vocabulary trie that steps configs byte by byte and skips a whole subtree when a
// byte is dead; masks are memoized per config too. EOG tokens are allowed only where the grammar
// accepts; other control tokens never.
//
// Bounds: transition tables and masks are caches, dropped whole when over their budget
// (MATCHER_MAX_TABLES, MATCHER_MAX_MASKS); stacks and configs grow with what the sequences
// explore and stop at MATCHER_MAX_NODES / MATCHER_MAX_CONFIGS (the step then fails with
// TV_ERR_NOMEM and the grammar reports matcher_grammar_exhausted so a cache drops it).
// Token classes: masks are built from per-stack-key token classes (accepted / dependent) computed
// once by a trie walk and shared through the vocabulary by every grammar on it (matcher.c).
// Threading: a vocabulary, the grammars compiled on it and their matchers are used by one thread
// at a time (mask computation writes the vocabulary's class table).
#ifndef TV_STRUCTURED_MATCHER_H
#define TV_STRUCTURED_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "structured/grammar.h"
#include "tinyvllm.h"

#define MATCHER_MAX_TABLES 8192      // 1 KiB transition tables kept at once
#define MATCHER_MAX_MASK_BYTES (64u << 20)  // memoized masks, all together
#define MATCHER_MAX_CLASS_BYTES (64u << 20) // token classes, per table (the vocabulary's, each grammar's)
#define MATCHER_MAX_NODES (4u << 20)
#define MATCHER_MAX_CONFIGS (1u << 20)
#define MATCHER_MAX_VOCAB_CLASSES (1u << 16)  // byte classes numbered per vocabulary (2 MiB)

// ---- vocabulary ----
typedef struct matcher_vocab matcher_vocab;
// From explicit pieces: piece[i] (len[i] bytes) is the text of token i; is_text[i] false for
// control tokens (never allowed), is_eog[i] true for end-of-generation ids (allowed where the
// grammar accepts). n_vocab ids (the mask size).
matcher_vocab *matcher_vocab_create(int32_t n_vocab, const char *const *piece, const size_t *len, const bool *is_text,
                                    const bool *is_eog, tv_error *err);
// From a tokenizer: the bytes tv_token_to_piece gives (control tokens excluded); is_eog may be NULL
// (then tv_tokenizer_is_eog). n_vocab >= the tokenizer's (ids past it are never allowed).
matcher_vocab *matcher_vocab_from_tokenizer(const tv_tokenizer *t, int32_t n_vocab, const bool *is_eog, tv_error *err);
void matcher_vocab_free(matcher_vocab *v);
int32_t matcher_vocab_n(const matcher_vocab *v);
// The token-class tables so far: the vocabulary's shared entries and bytes, trie walks for shared
// keys and for grammars' local ones, and tables dropped whole over MATCHER_MAX_CLASS_BYTES.
typedef struct matcher_class_stats {
    size_t n_entries, bytes;
    uint64_t n_walks, n_local_walks, n_drops;
} matcher_class_stats;
void matcher_vocab_class_stats(const matcher_vocab *v, matcher_class_stats *s);
size_t matcher_vocab_trie_nodes(const matcher_vocab *v);

// ---- compiled grammar ----
typedef struct matcher_grammar matcher_grammar;
// Compiles a checked gram (gram_check passed) for vocabulary v (borrowed; must outlive it).
// Reference-counted: matcher_grammar_free drops one reference.
matcher_grammar *matcher_grammar_compile(const gram *g, const matcher_vocab *v, tv_error *err);
void matcher_grammar_ref(matcher_grammar *cg);
void matcher_grammar_free(matcher_grammar *cg);
bool matcher_grammar_exhausted(const matcher_grammar *cg);
size_t matcher_grammar_bytes(const matcher_grammar *cg);   // memory it holds now

// ---- per-sequence matcher ----
typedef struct matcher matcher;
matcher *matcher_create(matcher_grammar *cg, tv_error *err);   // takes a reference on cg
void matcher_free(matcher *m);
// mask: (ceil(n_vocab / 32)) words, bit id set = allowed. TV_ERR_NOMEM when a budget ran out.
// After the grammar has ended (an EOG was accepted) only EOG tokens are allowed.
tv_status matcher_fill_mask(matcher *m, uint32_t *mask);
// The same mask by a plain walk of the whole vocabulary trie from the matcher's state (no token
// classes, no memo): the reference the tests and the bench check matcher_fill_mask against.
tv_status matcher_fill_mask_walk(matcher *m, uint32_t *mask);
// Advances by one token. false (state unchanged) when the token is not allowed here.
bool matcher_advance(matcher *m, int32_t token);
// How many of tokens[0..n) the matcher would accept in a row from its state (state unchanged):
// the check speculative decoding needs.
size_t matcher_check(matcher *m, const int32_t *tokens, size_t n);
// Undoes the last n advances (n <= matcher_n_advanced).
void matcher_rollback(matcher *m, size_t n);
size_t matcher_n_advanced(const matcher *m);
// Changes with every advance and rollback: a mask filled at version v is the mask for the state
// while matcher_version still returns v.
uint64_t matcher_version(const matcher *m);
bool matcher_is_accepting(const matcher *m);   // the bytes so far are a complete match
bool matcher_is_done(const matcher *m);        // an EOG was accepted, or nothing but EOG may follow
bool matcher_failed(const matcher *m);         // a budget ran out in a step

#endif
