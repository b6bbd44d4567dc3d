// chat.c — renders chat messages through a Jinja chat template (src/tokenizer/chat_template.h).
#include "server/chat.h"

#include <stdlib.h>
#include <string.h>

#include "util/status.h"

struct srv_chat {
    char *src;    // template source, NULL = none
    char *bos, *eos;
};

srv_chat *srv_chat_create(const char *template_src, const char *bos, const char *eos, tv_error *err) {
    srv_chat *c = calloc(1, sizeof *c);
    if (!c) { tv_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    c->bos = strdup(bos ? bos : "");
    c->eos = strdup(eos ? eos : "");
    if (!c->bos || !c->eos || (template_src && !(c->src = strdup(template_src)))) {
        srv_chat_free(c);
        tv_fail(err, TV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return c;
}

void srv_chat_free(srv_chat *c) {
    if (!c) return;
    free(c->src);
    free(c->bos);
    free(c->eos);
    free(c);
}

bool srv_chat_has_template(const srv_chat *c) { return c && c->src; }

char *srv_chat_render(const srv_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                      srv_error *err) {
    srv_fail(err, 400, "invalid_request_error", NULL, "messages", "chat templates are not available in this build");
    return NULL;
}
