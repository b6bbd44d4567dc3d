// regex.h — regular expressions (the JavaScript / JSON Schema dialect) compiled into the grammar IR.
//
//   alt := concat ('|' concat)*        concat := (atom quantifier*)*
//   atom := char | '.' | '[' '^'? (char | char '-' char | \d \w \s \D \W \S)* ']' | '(' ('?:' | '?<name>')? alt ')'
//           | '\' (d w s D W S n r t f v 0 xHH uHHHH u{H+} or an escaped punctuation char)
//   quantifier := ('*' | '+' | '?' | '{n}' | '{n,}' | '{n,m}') '?'?      (lazy = same language)
// '^' first and '$' last anchor; anywhere else, and lookarounds, backreferences, \b, \B, flags:
// errors naming the construct and its byte offset. '.' is any code point except \n \r U+2028 U+2029
// (JavaScript's). Matching is over UTF-8 code points; \s is JavaScript's whitespace set.
#ifndef TV_STRUCTURED_REGEX_H
#define TV_STRUCTURED_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "structured/grammar.h"

typedef enum regex_mode {
    REGEX_TEXT = 0,     // the strings as UTF-8 bytes
    REGEX_JSON_STRING,  // the body of a JSON string literal whose decoded value matches: '"', '\\'
                        // and control characters appear as escapes (\" \\ \n \t \r \b \f \u00XX)
} regex_mode;

// Compiles pat (len bytes) to a rule of g. search: JSON Schema's "pattern" semantics (the regex
// may match anywhere unless anchored by ^ / $), else the whole string must match. Returns the rule
// id, or -1 with err ("regex at offset N: what").
int32_t regex_compile(gram *g, const char *pat, size_t len, regex_mode mode, bool search, tv_error *err);

// One code point of the sorted disjoint ranges [lo[i], hi[i]] as mode writes it. -1 on failure.
int32_t regex_codepoint_class(gram *g, const uint32_t *lo, const uint32_t *hi, size_t n, regex_mode mode);

#endif
