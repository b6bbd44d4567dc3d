// chat.c — renders chat messages through the model's (or the operator's) chat template: the
// public tv_chat API, with its errors mapped to HTTP answers.
#include "chat.h"

#include <stdlib.h>
#include <string.h>

struct srv_chat {
    tv_chat *chat;   // the template's, or the plain transcript (tv_chat_has_template false)
};

srv_chat *srv_chat_create(const char *template_src, const char *kwargs_json, const tv_tokenizer *tok, tv_error *err) {
    srv_chat *c = calloc(1, sizeof *c);
    if (!c) { tv_error_set(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    tv_chat_params p = {0};
    p.template_src = template_src;   // NULL: the plain transcript, as `tinyvllm chat` uses
    p.template_len = template_src ? strlen(template_src) : 0;
    p.tokenizer = tok;   // bos_token / eos_token: its BOS / EOS strings ("" without)
    p.kwargs_json = kwargs_json;
    if (!(c->chat = tv_chat_create(&p, err))) {
        free(c);
        return NULL;
    }
    return c;
}

void srv_chat_free(srv_chat *c) {
    if (!c) return;
    tv_chat_free(c->chat);
    free(c);
}

const char *srv_chat_stop(const srv_chat *c) { return tv_chat_stop(c->chat); }

char *srv_chat_render(const srv_chat *c, const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                      bool add_generation_prompt, srv_error *err) {
    char *out = NULL;
    tv_error terr = {0};
    char *msgs = cJSON_PrintUnformatted(messages), *tl = tools ? cJSON_PrintUnformatted(tools) : NULL;
    char *kw = kwargs ? cJSON_PrintUnformatted(kwargs) : NULL;
    tv_chat_input in = {0};
    in.messages_json = msgs;
    in.tools_json = tl;
    in.kwargs_json = kw;
    in.add_generation_prompt = add_generation_prompt;
    in.openai = true;   // tool_calls[].function.arguments arrive as JSON strings; templates expect objects
    tv_status st = !msgs || (tools && !tl) || (kwargs && !kw) ? tv_error_set(&terr, TV_ERR_NOMEM, "out of memory")
                                                              : tv_chat_render(c->chat, &in, &out, &terr);
    free(msgs);
    free(tl);
    free(kw);
    if (st != TV_OK) {
        // A template that raises (e.g. "roles must alternate") rejects the conversation: a client error.
        int status = terr.code == TV_ERR_NOMEM ? 500 : 400;
        srv_fail(err, status, status == 400 ? "invalid_request_error" : "server_error", NULL, "messages",
                 "chat template: %s", terr.msg);
        return NULL;
    }
    return out;
}

bool srv_chat_tokenize(const srv_chat *c, const char *text, int32_t **ids, size_t *n_ids, srv_error *err) {
    tv_error terr = {0};
    tv_status st = tv_chat_tokenize(c->chat, text, ids, n_ids, &terr);
    if (st == TV_OK) return true;
    if (st == TV_ERR_NOMEM) srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    else if (st == TV_ERR_STATE) srv_fail(err, 400, "invalid_request_error", NULL, "messages", "this model has no tokenizer: send token ids");
    else srv_fail(err, 400, "invalid_request_error", NULL, "messages", "%s", terr.msg);
    return false;
}
