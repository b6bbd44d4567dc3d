// chat.c — tv_chat: conversation -> prompt (chat template or plain transcript), fitted to a budget;
// the public tv_chat_* functions (JSON text) over the cJSON-level ones of chat.h.
#include "chat/chat.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/status.h"

#define PLAIN_STOP "\nUser:"

struct tv_chat {
    const tv_tokenizer *tok;   // borrowed; NULL: render only
    chat_template *tpl;        // NULL = plain format
    char *bos, *eos;           // bos_token / eos_token strings for the template ("" when none)
    cJSON *kwargs;             // template variables of every render (an object), or NULL
};

// given, else the vocabulary string of id, malloc'd ("" for no tokenizer, id < 0 or out of range);
// NULL on OOM.
static char *token_str(const char *given, const tv_tokenizer *tok, int32_t id) {
    if (given) return strdup(given);
    size_t len = 0;
    const char *s = tok && id >= 0 ? tv_tokenizer_vocab_piece(tok, id, &len) : NULL;
    if (!s) len = 0;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    if (len) memcpy(out, s, len);
    out[len] = 0;
    return out;
}

tv_chat *tv_chat_create(const tv_chat_params *p, tv_error *err) {
    if (!p) { err_fail(err, TV_ERR_INVALID, "chat: no parameters"); return NULL; }
    tv_chat *c = calloc(1, sizeof *c);
    if (!c) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    c->tok = p->tokenizer;
    if (!(c->bos = token_str(p->bos_token, c->tok, c->tok ? tv_tokenizer_bos(c->tok) : -1)) ||
        !(c->eos = token_str(p->eos_token, c->tok, c->tok ? tv_tokenizer_eos(c->tok) : -1))) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (p->template_src && !(c->tpl = chat_template_create(p->template_src, p->template_len, err))) goto fail;
    if (p->kwargs_json && (!(c->kwargs = cJSON_Parse(p->kwargs_json)) || !cJSON_IsObject(c->kwargs))) {
        err_fail(err, TV_ERR_INVALID, "chat template kwargs: expected a JSON object");
        goto fail;
    }
    return c;
fail:
    tv_chat_free(c);
    return NULL;
}

void tv_chat_free(tv_chat *c) {
    if (!c) return;
    chat_template_free(c->tpl);
    cJSON_Delete(c->kwargs);
    free(c->bos);
    free(c->eos);
    free(c);
}

bool tv_chat_has_template(const tv_chat *c) { return c && c->tpl; }
const char *tv_chat_stop(const tv_chat *c) { return c && !c->tpl ? PLAIN_STOP : NULL; }

// role and content strings of message i; false (with err) when malformed.
static bool msg_fields(const cJSON *m, size_t i, const char **role, const char **content, tv_error *err) {
    const cJSON *r = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "role") : NULL;
    const cJSON *c = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "content") : NULL;
    if (!cJSON_IsString(r) || (c && !cJSON_IsString(c) && !cJSON_IsNull(c))) {
        err_fail(err, TV_ERR_INVALID, "message %zu: expected {\"role\": string, \"content\": string}", i);
        return false;
    }
    *role = r->valuestring;
    *content = cJSON_IsString(c) ? c->valuestring : "";
    return true;
}

static bool role_is(const cJSON *m, const char *role) {
    const cJSON *r = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "role") : NULL;
    return cJSON_IsString(r) && !strcmp(r->valuestring, role);
}

// The plain transcript; "Assistant:" closes it when add_generation_prompt.
static tv_status render_plain(const cJSON *messages, bool add_generation_prompt, char **out, tv_error *err) {
    strbuf b = {0};
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role, *content;
        if (!msg_fields(m, i, &role, &content, err)) { strbuf_free(&b); return err ? err->code : TV_ERR_INVALID; }
        bool ok;
        if (i == 0 && !strcmp(role, "system")) {
            ok = strbuf_puts(&b, content) && strbuf_puts(&b, "\n\n");
        } else {
            char head = role[0] >= 'a' && role[0] <= 'z' ? (char)(role[0] - 'a' + 'A') : role[0];
            ok = (!role[0] || (strbuf_put(&b, &head, 1) && strbuf_puts(&b, role + 1))) && strbuf_puts(&b, ": ") &&
                 strbuf_puts(&b, content) && strbuf_puts(&b, "\n");
        }
        if (!ok) { strbuf_free(&b); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        i++;
    }
    if (!strbuf_puts(&b, add_generation_prompt ? "Assistant:" : "")) {
        strbuf_free(&b);
        return err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    *out = b.p;
    return TV_OK;
}

tv_status chat_render(const tv_chat *c, const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                      bool add_generation_prompt, char **out, tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!c) return err_fail(err, TV_ERR_INVALID, "chat is NULL");
    if (!cJSON_IsArray(messages)) return err_fail(err, TV_ERR_INVALID, "messages must be a JSON array");
    if (!c->tpl) return render_plain(messages, add_generation_prompt, out, err);
    if (!c->kwargs || !kwargs) return chat_apply(c->tpl, messages, tools, kwargs ? kwargs : c->kwargs, add_generation_prompt,
                                                 c->bos, c->eos, out, err);
    cJSON *all = cJSON_Duplicate(c->kwargs, true);   // the chat's variables, the call's over them
    const cJSON *kv;
    cJSON_ArrayForEach(kv, kwargs) {
        cJSON *v = all ? cJSON_Duplicate(kv, true) : NULL;
        if (!v) { cJSON_Delete(all); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        cJSON_DeleteItemFromObjectCaseSensitive(all, kv->string);
        cJSON_AddItemToObject(all, kv->string, v);
    }
    tv_status st = chat_apply(c->tpl, messages, tools, all, add_generation_prompt, c->bos, c->eos, out, err);
    cJSON_Delete(all);
    return st;
}

tv_status chat_prompt_render(const tv_chat *c, const cJSON *messages, char **out, tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!cJSON_IsArray(messages)) return err_fail(err, TV_ERR_INVALID, "messages must be a JSON array");
    // validate here too: the template would otherwise render a malformed message in its own way
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role, *content;
        if (!msg_fields(m, i++, &role, &content, err)) return err ? err->code : TV_ERR_INVALID;
    }
    tv_status st = chat_render(c, messages, NULL, NULL, true, out, err);
    if (st && c && c->tpl) err_fail_prefix(err, st, "chat template");
    return st;
}

tv_status tv_chat_tokenize(const tv_chat *c, const char *text, int32_t **ids, size_t *n_ids, tv_error *err) {
    if (!ids || !n_ids) return err_fail(err, TV_ERR_INVALID, "ids or n_ids is NULL");
    *ids = NULL;
    *n_ids = 0;
    if (!c || !c->tok) return err_fail(err, TV_ERR_STATE, "chat: no tokenizer to encode the prompt with");
    if (!text) return err_fail(err, TV_ERR_INVALID, "text is NULL");
    size_t len = strlen(text);
    if (c->tpl) {   // the tokenizer adds BOS/EOS: the template's own copies go (exactly one each)
        size_t nb = strlen(c->bos), ne = strlen(c->eos);
        if (nb && tv_tokenizer_add_bos_default(c->tok) && len >= nb && !memcmp(text, c->bos, nb)) { text += nb; len -= nb; }
        if (ne && tv_tokenizer_add_eos_default(c->tok) && len >= ne && !memcmp(text + len - ne, c->eos, ne)) len -= ne;
    }
    return tv_tokenize(c->tok, text, len, true, c->tpl != NULL, ids, n_ids, err);
}

tv_status chat_encode(const tv_chat *c, const cJSON *messages, char **text, int32_t **ids, size_t *n_ids, tv_error *err) {
    char *t = NULL;
    if (text) *text = NULL;
    *ids = NULL;
    *n_ids = 0;
    if (!c || !c->tok) return err_fail(err, TV_ERR_STATE, "chat: no tokenizer to encode the prompt with");
    tv_status st = chat_prompt_render(c, messages, &t, err);
    if (st) return st;
    if ((st = tv_chat_tokenize(c, t, ids, n_ids, err))) {
        free(t);
        return st;
    }
    if (text) *text = t;
    else free(t);
    return TV_OK;
}

// Removes n items of arr starting at index first.
static void drop_items(cJSON *arr, int first, int n) {
    for (int i = 0; i < n; i++) cJSON_DeleteItemFromArray(arr, first);
}

tv_status chat_fit(const tv_chat *c, cJSON *messages, size_t max_tokens, int *n_dropped, char **text, int32_t **ids,
                   size_t *n_ids, tv_error *err) {
    if (text) *text = NULL;
    *ids = NULL;
    *n_ids = 0;
    if (n_dropped) *n_dropped = 0;
    if (!cJSON_IsArray(messages)) return err_fail(err, TV_ERR_INVALID, "messages must be a JSON array");
    int n_msgs = cJSON_GetArraySize(messages);
    int first = n_msgs > 0 && role_is(cJSON_GetArrayItem(messages, 0), "system") ? 1 : 0;
    // user_at[k]: index of the k-th user message at or after first (the start of exchange k)
    int *user_at = malloc((size_t)(n_msgs + 1) * sizeof *user_at);   // (n_users)
    if (!user_at) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    int n_users = 0, idx = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        if (idx >= first && role_is(m, "user")) user_at[n_users++] = idx;
        idx++;
    }
    // k = exchanges dropped: removes messages [first, user_at[k]) for k >= 1; the last exchange stays
    int max_k = n_users > 0 ? n_users - 1 : 0;
    tv_status st = TV_OK;
    size_t n_last = 0;
    for (int k = 0; k <= max_k; k++) {
        cJSON *trial = messages;
        int n_rm = k > 0 ? user_at[k] - first : 0;
        if (n_rm > 0) {
            if (!(trial = cJSON_Duplicate(messages, true))) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
            drop_items(trial, first, n_rm);
        }
        char *t = NULL;
        int32_t *tok_ids = NULL;
        size_t n = 0;
        st = chat_encode(c, trial, text ? &t : NULL, &tok_ids, &n, err);
        if (trial != messages) cJSON_Delete(trial);
        if (st) goto done;
        if (n <= max_tokens) {
            drop_items(messages, first, n_rm);
            if (n_dropped) *n_dropped = k;
            if (text) *text = t;
            *ids = tok_ids;
            *n_ids = n;
            goto done;
        }
        free(t);
        free(tok_ids);
        n_last = n;
    }
    st = err_fail(err, TV_ERR_RANGE, "the prompt needs %zu tokens with only the last message kept; at most %zu fit", n_last,
                 max_tokens);
done:
    free(user_at);
    return st;
}

// ---- public API: JSON text in and out ----

// Parses JSON text (NULL -> NULL, no error); false with err when malformed.
static bool parse_json(const char *what, const char *text, cJSON **out, tv_error *err) {
    *out = NULL;
    if (!text) return true;
    if (!(*out = cJSON_Parse(text))) {
        err_fail(err, TV_ERR_INVALID, "%s: invalid JSON", what);
        return false;
    }
    return true;
}

tv_status tv_chat_render(const tv_chat *c, const tv_chat_input *in, char **out, tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!in || !in->messages_json) return err_fail(err, TV_ERR_INVALID, "chat: no messages");
    cJSON *messages = NULL, *tools = NULL, *kwargs = NULL, *norm = NULL;
    tv_status st = TV_ERR_INVALID;
    if (!parse_json("messages", in->messages_json, &messages, err) || !parse_json("tools", in->tools_json, &tools, err) ||
        !parse_json("template kwargs", in->kwargs_json, &kwargs, err))
        goto done;
    if (in->openai && !(norm = chat_messages_normalize(messages, err))) { st = err ? err->code : TV_ERR_INVALID; goto done; }
    st = chat_render(c, norm ? norm : messages, tools, kwargs, in->add_generation_prompt, out, err);
done:
    cJSON_Delete(messages);
    cJSON_Delete(tools);
    cJSON_Delete(kwargs);
    cJSON_Delete(norm);
    return st;
}

tv_status tv_chat_fit(const tv_chat *c, const char *messages_json, size_t max_tokens, int *n_dropped, char **kept_json,
                      char **text, int32_t **ids, size_t *n_ids, tv_error *err) {
    if (kept_json) *kept_json = NULL;
    if (text) *text = NULL;
    *ids = NULL;
    *n_ids = 0;
    cJSON *messages = NULL;
    if (!messages_json) return err_fail(err, TV_ERR_INVALID, "chat: no messages");
    if (!parse_json("messages", messages_json, &messages, err)) return TV_ERR_INVALID;
    tv_status st = chat_fit(c, messages, max_tokens, n_dropped, text, ids, n_ids, err);
    if (!st && kept_json && !(*kept_json = cJSON_PrintUnformatted(messages))) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        if (text) { free(*text); *text = NULL; }
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    cJSON_Delete(messages);
    return st;
}
