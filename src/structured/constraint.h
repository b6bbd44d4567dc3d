// constraint.h — the front door of src/structured/: a constraint (JSON Schema, any JSON object,
// regex, choice list, GBNF) compiled for a vocabulary, and a bounded cache of compiled grammars
// keyed by (kind, spec) for one vocabulary (an engine owns one per model).
#ifndef TV_STRUCTURED_CONSTRAINT_H
#define TV_STRUCTURED_CONSTRAINT_H

#include <stddef.h>

#include "structured/grammar.h"
#include "structured/matcher.h"
#include "tinyvllm.h"

#define CONSTRAINT_MAX_SYMS (1u << 21)   // grammar budget per spec (~8 MiB of IR)
#define CONSTRAINT_MAX_SPEC (1u << 20)   // spec text bytes
#define CONSTRAINT_CACHE_SIZE 32         // compiled grammars kept per vocabulary

// Parses and checks a spec into a new gram (caller frees). Errors carry the position.
gram *constraint_parse(tv_constraint_kind kind, const char *spec, size_t len, tv_error *err);

typedef struct constraint_cache constraint_cache;
constraint_cache *constraint_cache_create(const matcher_vocab *v);   // v borrowed
void constraint_cache_free(constraint_cache *c);
// The compiled grammar for (kind, spec): from the cache or compiled now (evicting the least
// recently used). The caller gets its own reference (matcher_grammar_free it).
matcher_grammar *constraint_cache_get(constraint_cache *c, tv_constraint_kind kind, const char *spec, size_t len,
                                      tv_error *err);
size_t constraint_cache_n(const constraint_cache *c);

#endif
