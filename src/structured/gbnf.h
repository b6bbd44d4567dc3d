// gbnf.h — llama.cpp's GBNF grammar syntax compiled into the grammar IR.
//
//   grammar := (rule | comment | blank line)*          rule := name '::=' alts   (one per line;
//   alts := seq ('|' seq)*                              newlines allowed after '::=', after '|' and
//   seq := (item quantifier?)*                          inside parentheses)
//   item := '"' literal '"' | '[' '^'? class ']' | '.' | name | '(' alts ')'
//   quantifier := '*' | '+' | '?' | '{' m '}' | '{' m ',' '}' | '{' m ',' n '}' | '{' ',' n '}'
//   escapes (in literals and classes): \n \r \t \\ \" \] \[ \- \xHH \uHHHH \UHHHHHHHH
//   comment := '#' to end of line;  name := [A-Za-z0-9_-]+;  the start rule is "root".
// Classes and '.' are over UTF-8 code points. Errors: "grammar line L, column C: what".
#ifndef TV_STRUCTURED_GBNF_H
#define TV_STRUCTURED_GBNF_H

#include <stddef.h>

#include "structured/grammar.h"

// Parses src (len bytes) into g and sets g->root. TV_OK, or TV_ERR_INVALID with the position.
tv_status gbnf_parse(gram *g, const char *src, size_t len, tv_error *err);

#endif
