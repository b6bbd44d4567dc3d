// chat.c — renders chat messages through a Jinja chat template (src/tokenizer/chat_template.h).
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"
#include "util/status.h"

struct srv_chat {
    tv_chat_template *tpl;   // NULL = no template
    char *bos, *eos;         // bos_token / eos_token strings
};

srv_chat *srv_chat_create(const char *template_src, const char *bos, const char *eos, tv_error *err) {
    srv_chat *c = calloc(1, sizeof *c);
    if (!c) { tv_error_set(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    c->bos = strdup(bos ? bos : "");
    c->eos = strdup(eos ? eos : "");
    if (!c->bos || !c->eos) {
        srv_chat_free(c);
        tv_error_set(err, TV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (template_src && !(c->tpl = tv_chat_template_create(template_src, strlen(template_src), err))) {
        srv_chat_free(c);
        return NULL;
    }
    return c;
}

void srv_chat_free(srv_chat *c) {
    if (!c) return;
    tv_chat_template_free(c->tpl);
    free(c->bos);
    free(c->eos);
    free(c);
}

bool srv_chat_has_template(const srv_chat *c) { return c && c->tpl; }

char *srv_chat_render(const srv_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                      srv_error *err) {
    if (!srv_chat_has_template(c)) {
        srv_fail(err, 400, "invalid_request_error", NULL, "messages",
                 "this model has no chat template; start the server with --chat-template FILE");
        return NULL;
    }
    char *out = NULL;
    tv_error terr = {0};
    // tool_calls[].function.arguments arrive as JSON strings; templates expect objects
    cJSON *norm = tv_chat_messages_normalize(messages, &terr);
    if (!norm) {
        srv_fail(err, terr.code == TV_ERR_NOMEM ? 500 : 400, "invalid_request_error", NULL, "messages", "%s", terr.msg);
        return NULL;
    }
    tv_status st = tv_chat_apply(c->tpl, norm, tools, add_generation_prompt, c->bos, c->eos, &out, &terr);
    cJSON_Delete(norm);
    if (st != TV_OK) {
        // A template that raises (e.g. "roles must alternate") rejects the conversation: a client error.
        int status = terr.code == TV_ERR_NOMEM ? 500 : 400;
        srv_fail(err, status, status == 400 ? "invalid_request_error" : "server_error", NULL, "messages",
                 "chat template: %s", terr.msg);
        free(out);
        return NULL;
    }
    return out;
}
