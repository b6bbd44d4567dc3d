// chat.h — chat messages -> prompt text through the model's (or the operator's) Jinja template
// (the public tv_chat API), errors as HTTP answers.
#ifndef TV_SERVER_CHAT_H
#define TV_SERVER_CHAT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "request.h"
#include "tinyvllm.h"

typedef struct srv_chat srv_chat;

// Compiles template_src (NULL -> srv_chat with no template: every render fails with a 400 that says
// so). bos/eos: the strings passed as bos_token / eos_token (NULL -> ""). NULL + err when the
// template does not compile.
srv_chat *srv_chat_create(const char *template_src, const char *bos, const char *eos, tv_error *err);
void srv_chat_free(srv_chat *c);
bool srv_chat_has_template(const srv_chat *c);
// Renders messages (+ tools) with add_generation_prompt. Returns malloc'ed text, or NULL + err (400
// for a template that raises or a message list it rejects).
char *srv_chat_render(const srv_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                      srv_error *err);

#endif
