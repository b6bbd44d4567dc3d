// chat_prompt.h — a conversation (OpenAI-style messages) -> prompt text and token ids, fitted to a
// token budget by dropping the oldest exchanges.
//
// Two formats:
//   template  a Jinja chat template (chat_template.h) rendered as Hugging Face's apply_chat_template
//             does, with bos_token / eos_token = the vocabulary strings of the tokenizer's BOS / EOS
//             (as the server does), then tokenized with parse_special and WITHOUT an added BOS:
//             templates write bos_token themselves, adding one would double it (vLLM and the
//             server tokenize chat prompts the same way).
//   plain     for models without a template:
//                 [SYSTEM "\n\n"] ("User: " U "\n" | "Assistant: " A "\n" | Role ": " X "\n")* "Assistant:"
//             tokenized with the tokenizer's default BOS and no special-token parsing (typed text
//             cannot forge control tokens). Generation should stop at tv_chat_prompt_stop().
// Message content must be a string (or null = ""); roles are free-form strings.
#ifndef TV_TOKENIZER_CHAT_PROMPT_H
#define TV_TOKENIZER_CHAT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tinyvllm.h"
#include "tokenizer/tokenizer.h"

typedef struct tv_chat_prompt tv_chat_prompt;

// tok is borrowed (must outlive the result). template_src (len bytes, need not be NUL-terminated)
// NULL -> the plain format. NULL + err when the template does not compile or memory runs out.
tv_chat_prompt *tv_chat_prompt_create(const tv_tokenizer *tok, const char *template_src, size_t len, tv_error *err);
void tv_chat_prompt_free(tv_chat_prompt *p);   // NULL ok

bool tv_chat_prompt_is_plain(const tv_chat_prompt *p);
// Stop string generation needs in this format ("\nUser:" for plain), NULL for templates.
const char *tv_chat_prompt_stop(const tv_chat_prompt *p);

// Renders messages (a JSON array) with the generation prompt. *out: malloc'd, NUL-terminated.
// Errors: TV_ERR_INVALID (not an array, a message that is not {role: string, content: string|null}),
// template errors as chat_template.h reports them (a template that raises, limits).
tv_status tv_chat_prompt_render(const tv_chat_prompt *p, const cJSON *messages, char **out, tv_error *err);

// Render + tokenize. *text (if text is not NULL) and *ids are malloc'd; caller frees.
tv_status tv_chat_prompt_encode(const tv_chat_prompt *p, const cJSON *messages, char **text, int32_t **ids,
                                size_t *n_ids, tv_error *err);

// Fits messages into max_tokens prompt tokens by dropping the fewest oldest exchanges. An exchange
// is a "user" message and everything after it up to the next "user" message; a leading "system"
// message is always kept, and so is the last exchange (the one being answered); messages between the
// system message and the first user message go with the first exchange.
// On TV_OK the dropped messages are removed from messages (in place), *n_dropped (if not NULL) says
// how many exchanges went, and *text / *ids / *n_ids are as for tv_chat_prompt_encode.
// When even the last exchange alone does not fit: TV_ERR_RANGE with the token counts in the
// message, and messages is left untouched. Other render/tokenize errors leave it untouched too.
tv_status tv_chat_prompt_fit(const tv_chat_prompt *p, cJSON *messages, size_t max_tokens, int *n_dropped,
                             char **text, int32_t **ids, size_t *n_ids, tv_error *err);

#endif
