// chat_template.c — the template engine behind chat.h: compile, render, apply_chat_template context.
#include "chat/chat.h"

#include <stdlib.h>

#include "chat/tpl.h"
#include "chat/tpl_eval.h"
#include "util/status.h"

struct chat_template { tpl_program *prog; };

chat_template *chat_template_create(const char *src, size_t len, tv_error *err) {
    if (!src && len) { err_fail(err, TV_ERR_INVALID, "template source is NULL"); return NULL; }
    // real chat templates are a few KiB; parsing keeps ~10 bytes of bookkeeping per source byte
    if (len > ((size_t)4 << 20)) { err_fail(err, TV_ERR_RANGE, "template source larger than 4 MiB"); return NULL; }
    chat_template *t = calloc(1, sizeof *t);
    if (!t) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    t->prog = tpl_parse(src ? src : "", len, err);
    if (!t->prog) { free(t); return NULL; }
    return t;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    tpl_program_free(t->prog);
    free(t);
}

tv_status chat_template_render(const chat_template *t, const cJSON *ctx, char **out, size_t *out_len,
                                  tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!t) return err_fail(err, TV_ERR_INVALID, "template is NULL");
    return tpl_render(t->prog, ctx, 0, out, out_len, err);
}

tv_status chat_apply(const chat_template *t, const cJSON *messages_json, const cJSON *tools_json, const cJSON *kwargs,
                     bool add_generation_prompt, const char *bos, const char *eos, char **out, tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!cJSON_IsArray(messages_json)) return err_fail(err, TV_ERR_INVALID, "messages must be a JSON array");
    if (tools_json && !cJSON_IsArray(tools_json) && !cJSON_IsNull(tools_json))
        return err_fail(err, TV_ERR_INVALID, "tools must be a JSON array");
    if (kwargs && !cJSON_IsObject(kwargs)) return err_fail(err, TV_ERR_INVALID, "template kwargs must be a JSON object");
    tv_status st = TV_OK;
    cJSON *ctx = cJSON_CreateObject();
    if (!ctx) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    // The context borrows messages/tools through references: no deep copy.
    cJSON *m = cJSON_CreateArrayReference(messages_json->child);
    cJSON *tl = tools_json && cJSON_IsArray(tools_json) ? cJSON_CreateArrayReference(tools_json->child) : cJSON_CreateNull();
    if (!m || !tl || !cJSON_AddItemToObject(ctx, "messages", m)) { cJSON_Delete(m); cJSON_Delete(tl); st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    if (!cJSON_AddItemToObject(ctx, "tools", tl)) { cJSON_Delete(tl); st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    if (!cJSON_AddNullToObject(ctx, "documents") ||
        !cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt) ||
        !cJSON_AddStringToObject(ctx, "bos_token", bos ? bos : "") ||
        !cJSON_AddStringToObject(ctx, "eos_token", eos ? eos : "")) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto done;
    }
    const cJSON *kw;
    cJSON_ArrayForEach(kw, kwargs) {   // extra variables, by reference; they override the standard ones
        cJSON *v = cJSON_IsObject(kw) ? cJSON_CreateObjectReference(kw->child)
                 : cJSON_IsArray(kw) ? cJSON_CreateArrayReference(kw->child) : cJSON_Duplicate(kw, false);
        bool ok = v && (cJSON_GetObjectItemCaseSensitive(ctx, kw->string) ? cJSON_ReplaceItemInObjectCaseSensitive(ctx, kw->string, v)
                                                                          : cJSON_AddItemToObject(ctx, kw->string, v));
        if (!ok) { cJSON_Delete(v); st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    }
    st = chat_template_render(t, ctx, out, NULL, err);
done:
    cJSON_Delete(ctx);
    return st;
}

cJSON *chat_messages_normalize(const cJSON *messages, tv_error *err) {
    if (!cJSON_IsArray(messages)) { err_fail(err, TV_ERR_INVALID, "messages must be a JSON array"); return NULL; }
    cJSON *copy = cJSON_Duplicate(messages, true);
    if (!copy) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    const cJSON *m;
    cJSON_ArrayForEach(m, copy) {
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (!cJSON_IsArray(calls)) continue;
        const cJSON *call;
        cJSON_ArrayForEach(call, calls) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
            cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
            if (!cJSON_IsString(args) || !args->valuestring) continue;
            cJSON *parsed = cJSON_Parse(args->valuestring);
            if (!cJSON_IsObject(parsed)) { cJSON_Delete(parsed); continue; }
            if (!cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", parsed)) {   // keeps the key name
                cJSON_Delete(parsed);
                cJSON_Delete(copy);
                err_fail(err, TV_ERR_NOMEM, "out of memory");
                return NULL;
            }
        }
    }
    return copy;
}
