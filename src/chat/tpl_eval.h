// tpl_eval.h — the interpreter half of the template engine (see tpl.h for the semantics).
#ifndef TV_CHAT_TPL_EVAL_H
#define TV_CHAT_TPL_EVAL_H

#include <cjson/cJSON.h>

#include "chat/tpl.h"

// Renders prog with the variables of ctx (a JSON object, or NULL for none) into *out (malloc'd,
// NUL-terminated; *out_len bytes without the NUL when out_len is not NULL). mem_budget bounds the
// render's working memory in bytes (0: 128 MiB). On error *out is NULL and err says
// "template line L, column C: what".
tv_status tpl_render(const tpl_program *prog, const cJSON *ctx, size_t mem_budget, char **out, size_t *out_len,
                     tv_error *err);

#endif
