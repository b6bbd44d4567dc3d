// chat.h — chat messages -> prompt text through the model's (or the operator's) Jinja template
// (the public tv_chat API), errors as HTTP answers.
#ifndef TV_SERVER_CHAT_H
#define TV_SERVER_CHAT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "request.h"
#include "tinyvllm.h"

typedef struct srv_chat srv_chat;

// Compiles template_src (NULL -> the plain "User: ...\nAssistant:" transcript of tv_chat, whose
// generation stops at srv_chat_stop). kwargs_json: template variables of every render (a JSON object) or NULL. tok (borrowed, may be
// NULL): bos_token / eos_token are its BOS / EOS strings ("" without), and it encodes rendered
// prompts. NULL + err when the template does not compile or kwargs_json is not an object.
srv_chat *srv_chat_create(const char *template_src, const char *kwargs_json, const tv_tokenizer *tok, tv_error *err);
void srv_chat_free(srv_chat *c);
// The stop string a chat generation needs ("\nUser:" for the plain transcript), or NULL.
const char *srv_chat_stop(const srv_chat *c);
// Renders messages (+ tools, + kwargs: extra template variables, an object or NULL) with
// add_generation_prompt. Returns malloc'ed text, or NULL + err (400 for a template that raises or a
// message list it rejects).
char *srv_chat_render(const srv_chat *c, const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                      bool add_generation_prompt, srv_error *err);
// The ids of text srv_chat_render made (tv_chat_tokenize: one BOS where the vocabulary adds one,
// special tokens parsed). false + err (400 for text that does not tokenize or no tokenizer, 500 OOM).
bool srv_chat_tokenize(const srv_chat *c, const char *text, int32_t **ids, size_t *n_ids, srv_error *err);

#endif
