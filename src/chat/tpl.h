// tpl.h — internals of the Jinja chat-template engine shared by tpl_parse.c (preprocess, lexer,
// parser) and tpl_eval.c (values, interpreter). The module interface is src/chat/chat.h;
// nothing outside src/chat/ includes this header.
//
// Semantics follow @huggingface/jinja (the renderer transformers.js uses for apply_chat_template),
// which is the oracle our tests compare against byte for byte: its preprocessing (trim_blocks,
// lstrip_blocks, one trailing newline dropped), its grammar and precedence (tests bind tighter than
// `*`), its value printing (true/false, none prints nothing, 1.0 prints "1.0", lists print as JSON)
// and its filter set. Strings are UTF-8; string lengths and indices count code points.
// Extensions where the reference can only raise follow Python Jinja2 (see chat.h).
#ifndef TV_CHAT_TPL_H
#define TV_CHAT_TPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

// ---- arena: bump allocator freed all at once (one per compiled template, one per render) ----
typedef struct tpl_arena tpl_arena;
tpl_arena *tpl_arena_create(size_t budget_bytes);   // NULL on OOM
void tpl_arena_free(tpl_arena *a);                  // NULL ok
void *tpl_alloc(tpl_arena *a, size_t n);            // zeroed, 16-aligned; NULL when over budget/OOM
char *tpl_strndup(tpl_arena *a, const char *s, size_t n);  // NUL-terminated copy

// ---- AST ----
typedef enum {
    // statements
    N_TEXT, N_COMMENT, N_SET, N_IF, N_FOR, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_BREAK, N_CONTINUE,
    // expressions
    N_INT, N_FLOAT, N_STR, N_IDENT, N_ARRAY, N_TUPLE, N_OBJECT, N_MEMBER, N_SLICE, N_CALL, N_KWARG,
    N_SPREAD, N_KWSPREAD, N_UNARY, N_BINARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY,
} tpl_kind;

typedef enum {
    OP_NONE, OP_AND, OP_OR, OP_NOT, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN,
    OP_ADD, OP_SUB, OP_CONCAT, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
} tpl_op;

typedef struct tpl_node tpl_node;
typedef struct { tpl_node **v; size_t n; } tpl_nodes;

// One node type for everything; which fields mean what depends on kind:
//   N_TEXT/N_STR/N_IDENT/N_COMMENT: s,slen.  N_INT: i.  N_FLOAT: f.
//   N_SET: a = assignee, b = value or NULL, body = block body.
//   N_IF: a = test, body, alt.   N_FOR: a = loopvar, b = iterable, c = select test or NULL, body, alt.
//   N_MACRO: a = name (ident), list = params, body.   N_CALLBLOCK: a = call expr, list = caller params
//   (has_list says present), body.   N_FILTERBLOCK: a = filter (ident or call), body.
//   N_ARRAY/N_TUPLE: list.  N_OBJECT: list = keys, alt = values.  N_MEMBER: a = object, b = property,
//   flag = computed.  N_SLICE: a,b,c = start/stop/step (each may be NULL).  N_CALL: a = callee,
//   list = args.  N_KWARG: a = key ident, b = value.  N_SPREAD/N_KWSPREAD: a.  N_UNARY: op, a.
//   N_BINARY: op, a, b.  N_FILTER: a = operand, b = filter (ident or call).  N_TEST: a = operand,
//   s = test name, flag = negated.  N_SELECT: a = lhs, b = test.  N_TERNARY: a = cond, b = true, c = false.
struct tpl_node {
    tpl_kind kind;
    tpl_op op;
    bool flag, has_list;
    uint32_t pos;            // byte offset in the original template source
    tpl_node *a, *b, *c;
    tpl_nodes list, body, alt;
    const char *s; size_t slen;
    int64_t i;
    double f;
};

typedef struct tpl_program {
    tpl_arena *arena;        // owns every node and string below
    tpl_nodes body;
    const char *src;         // the original source (arena copy) for line/column of errors
    size_t src_len;
} tpl_program;

// Parses src into a program. NULL on error with "line L, column C: what" in err.
tpl_program *tpl_parse(const char *src, size_t len, tv_error *err);
void tpl_program_free(tpl_program *p);
// 1-based line and column (in code points) of byte offset pos of src.
void tpl_line_col(const char *src, size_t len, size_t pos, int *line, int *col);

// ---- UTF-8 helpers shared by both files ----
// Decodes one code point at s[*i] (advancing *i); invalid bytes decode as themselves (Latin-1).
uint32_t tpl_utf8_next(const char *s, size_t n, size_t *i);
bool tpl_is_js_space(uint32_t cp);     // JavaScript's \s / String.prototype.trim set

#endif
