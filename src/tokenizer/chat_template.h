// chat_template.h — Jinja chat templates (tokenizer.chat_template / tokenizer_config.json
// "chat_template") rendered byte-identically to Hugging Face's apply_chat_template.
//
// The engine (src/template/) implements the Jinja subset real chat templates use: text, {{ }},
// {% %}, {# #}, whitespace control (-), trim_blocks + lstrip_blocks (always on, as HF sets them);
// statements if/elif/else, for (with `if` filter, else, loop.*, break/continue), set (also
// tuple targets, namespace attributes and {% set x %}...{% endset %}), macro, call, filter blocks;
// all operators; filters and methods as @huggingface/jinja (the reference renderer) supports them.
// Values print as that reference does (true/false, none prints nothing, 1.0 prints "1.0").
// Beyond it, where it can only raise, Python Jinja2 behaviour (what transformers' Python
// apply_chat_template runs) is followed: str.format ("{}", "{0}", "{name}"), tuple unpacking in
// for loops, |min and |max, string filters and |length on undefined ("" / 0), integer dict keys;
// `str + dict` raises (TypeError) instead of printing "[object Map]", and once a render used one of
// these extensions `str + list` raises too (Python is then the reference for that render).
// Hostile templates are bounded: nesting depth, recursion depth, evaluation steps, output size
// (16 MiB) and working memory (128 MiB) — exceeding any is an error, never a crash.
//
// Thread safety: a compiled tv_chat_template is immutable; many threads may render it at once.
// Stack: compile and render recurse (bounded); give rendering threads >= 1 MiB of stack.
#ifndef TV_TOKENIZER_CHAT_TEMPLATE_H
#define TV_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "tinyvllm.h"

typedef struct tv_chat_template tv_chat_template;

// Compiles template source (len bytes; need not be NUL-terminated). Returns NULL on a syntax error,
// with err->msg = "template line L, column C: what" (TV_ERR_FORMAT) or TV_ERR_NOMEM/TV_ERR_RANGE.
tv_chat_template *tv_chat_template_create(const char *src, size_t len, tv_error *err);
void tv_chat_template_free(tv_chat_template *t);   // NULL ok

// Renders with the variables of ctx (a JSON object; NULL = no variables). *out receives a malloc'd
// NUL-terminated string the caller frees (*out_len its length when out_len is not NULL). On error
// (raise_exception, a type error, a limit) returns non-TV_OK, *out = NULL, err->msg says where/what.
tv_status tv_chat_template_render(const tv_chat_template *t, const cJSON *ctx, char **out, size_t *out_len,
                                  tv_error *err);

// Convenience: the context Hugging Face's apply_chat_template builds —
//   { messages, tools (null when tools_json is NULL), documents: null, add_generation_prompt,
//     bos_token, eos_token }
// messages_json: an array of {role, content, ...}; tools_json: an array of tool definitions or NULL.
// bos/eos may be NULL (""). *out as for tv_chat_template_render.
tv_status tv_chat_apply(const tv_chat_template *t, const cJSON *messages_json, const cJSON *tools_json,
                        bool add_generation_prompt, const char *bos, const char *eos, char **out, tv_error *err);

// OpenAI clients send assistant tool_calls[].function.arguments as a JSON *string*; HF templates
// (and vLLM, which feeds them) expect an object (`arguments | tojson` would otherwise double-encode).
// Returns a deep copy of messages (caller cJSON_Delete()s it) where every such string that parses
// to a JSON object is replaced by that object; anything else is copied unchanged. NULL when
// messages is not an array (TV_ERR_INVALID) or on OOM.
cJSON *tv_chat_messages_normalize(const cJSON *messages, tv_error *err);

#endif
