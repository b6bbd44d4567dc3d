// chat.h — the chat module's whole interface: conversations (OpenAI-style messages) -> prompt text
// and token ids, through a Jinja chat template or a plain transcript. The public face is the tv_chat
// section of include/tinyvllm.h (JSON text in and out); this header adds the cJSON-level functions
// the library and the tests use. The Jinja engine (tpl.h, tpl_parse.c, tpl_eval.c) is private to it.
//
// Templates (tokenizer.chat_template / tokenizer_config.json "chat_template") render byte-identically
// to Hugging Face's apply_chat_template. The engine implements the Jinja subset real chat templates
// use: text, {{ }}, {% %}, {# #}, whitespace control (-), trim_blocks + lstrip_blocks (always on, as
// HF sets them); statements if/elif/else, for (with `if` filter, else, loop.*, break/continue), set
// (also tuple targets, namespace attributes and {% set x %}...{% endset %}), macro, call, filter
// blocks; all operators; filters and methods as @huggingface/jinja (the reference renderer) supports
// them. Values print as that reference does (true/false, none prints nothing, 1.0 prints "1.0").
// Beyond it, where it can only raise, Python Jinja2 behaviour (what transformers' Python
// apply_chat_template runs) is followed: str.format ("{}", "{0}", "{name}"), tuple unpacking in for
// loops, |min and |max, string filters and |length on undefined ("" / 0), integer dict keys;
// `str + dict` raises (TypeError) instead of printing "[object Map]", and once a render used one of
// these extensions `str + list` raises too (Python is then the reference for that render).
// Hostile templates are bounded: nesting depth, recursion depth, evaluation steps, output size
// (16 MiB) and working memory (128 MiB) — exceeding any is an error, never a crash.
//
// Prompts come in two formats:
//   template  rendered as above with bos_token / eos_token = the vocabulary strings of the tokenizer's
//             BOS / EOS (unless given), then tokenized as llama.cpp's server does (tv_chat_tokenize):
//             a leading bos_token dropped when the tokenizer adds BOS (a trailing eos_token when it
//             adds EOS), then tokenized with add_special and parse_special: exactly one BOS whether
//             or not the template writes one (Gemma, Llama 3 and Mistral templates do; Qwen's vocab
//             adds none).
//   plain     for models without a template:
//                 [SYSTEM "\n\n"] ("User: " U "\n" | "Assistant: " A "\n" | Role ": " X "\n")* "Assistant:"
//             tokenized with add_special and no special-token parsing (typed text cannot forge
//             control tokens). Generation should stop at tv_chat_stop().
//
// Thread safety: compiled templates and tv_chat objects are immutable; many threads may render at
// once. Stack: compile and render recurse (bounded); give rendering threads >= 1 MiB of stack.
#ifndef TV_CHAT_CHAT_H
#define TV_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tinyvllm.h"

// ---- Jinja templates ----
typedef struct chat_template chat_template;

// Compiles template source (len bytes; need not be NUL-terminated). Returns NULL on a syntax error,
// with err->msg = "template line L, column C: what" (TV_ERR_FORMAT) or TV_ERR_NOMEM/TV_ERR_RANGE.
chat_template *chat_template_create(const char *src, size_t len, tv_error *err);
void chat_template_free(chat_template *t);   // NULL ok

// Renders with the variables of ctx (a JSON object; NULL = no variables). *out receives a malloc'd
// NUL-terminated string the caller frees (*out_len its length when out_len is not NULL). On error
// (raise_exception, a type error, a limit) returns non-TV_OK, *out = NULL, err->msg says where/what.
tv_status chat_template_render(const chat_template *t, const cJSON *ctx, char **out, size_t *out_len, tv_error *err);

// The context Hugging Face's apply_chat_template builds, rendered —
//   { messages, tools (null when tools is NULL), documents: null, add_generation_prompt,
//     bos_token, eos_token, ...kwargs }
// messages: an array of {role, content, ...}; tools: an array of tool definitions or NULL; kwargs:
// an object of extra variables or NULL (they override the ones above, as in transformers).
// bos/eos may be NULL (""). *out as for chat_template_render.
tv_status chat_apply(const chat_template *t, const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                     bool add_generation_prompt, const char *bos, const char *eos, char **out, tv_error *err);

// OpenAI clients send assistant tool_calls[].function.arguments as a JSON *string*; HF templates
// (and vLLM, which feeds them) expect an object (`arguments | tojson` would otherwise double-encode).
// Returns a deep copy of messages (caller cJSON_Delete()s it) where every such string that parses
// to a JSON object is replaced by that object; anything else is copied unchanged. NULL when
// messages is not an array (TV_ERR_INVALID) or on OOM.
cJSON *chat_messages_normalize(const cJSON *messages, tv_error *err);

// ---- conversations -> prompts (tv_chat, created by tv_chat_create) ----

// tv_chat_render on parsed JSON (tools, kwargs may be NULL): no normalization, no validation of
// template messages (the template decides what it accepts).
tv_status chat_render(const tv_chat *c, const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                      bool add_generation_prompt, char **out, tv_error *err);

// Renders messages with the generation prompt after checking each is {role: string, content:
// string|null} (TV_ERR_INVALID naming the message otherwise); template errors are prefixed
// "chat template: ". *out: malloc'd, NUL-terminated.
tv_status chat_prompt_render(const tv_chat *c, const cJSON *messages, char **out, tv_error *err);

// chat_prompt_render + tokenize. *text (if text is not NULL) and *ids are malloc'd; caller frees.
tv_status chat_encode(const tv_chat *c, const cJSON *messages, char **text, int32_t **ids, size_t *n_ids, tv_error *err);

// tv_chat_fit on a parsed array: on TV_OK the dropped messages are removed from messages in place.
// On any error messages is left untouched.
tv_status chat_fit(const tv_chat *c, cJSON *messages, size_t max_tokens, int *n_dropped, char **text, int32_t **ids,
                   size_t *n_ids, tv_error *err);

#endif
