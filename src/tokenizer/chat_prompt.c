// chat_prompt.c — conversation -> prompt (chat template or plain transcript), fitted to a budget.
#include "tokenizer/chat_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"
#include "util/status.h"

#define PLAIN_STOP "\nUser:"

struct tv_chat_prompt {
    const tv_tokenizer *tok;   // borrowed
    tv_chat_template *tpl;     // NULL = plain format
    char *bos, *eos;           // bos_token / eos_token strings for the template ("" when none)
};

// The vocabulary string of id, malloc'd ("" for id < 0 or out of range); NULL on OOM.
static char *piece_dup(const tv_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *s = id >= 0 ? tv_tokenizer_vocab_piece(tok, id, &len) : NULL;
    if (!s) len = 0;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    if (len) memcpy(out, s, len);
    out[len] = 0;
    return out;
}

tv_chat_prompt *tv_chat_prompt_create(const tv_tokenizer *tok, const char *template_src, size_t len, tv_error *err) {
    if (!tok) { err_fail(err, TV_ERR_INVALID, "chat prompt: no tokenizer"); return NULL; }
    tv_chat_prompt *p = calloc(1, sizeof *p);
    if (!p) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    p->tok = tok;
    if (!(p->bos = piece_dup(tok, tv_tokenizer_bos(tok))) || !(p->eos = piece_dup(tok, tv_tokenizer_eos(tok)))) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (template_src && !(p->tpl = tv_chat_template_create(template_src, len, err))) goto fail;
    return p;
fail:
    tv_chat_prompt_free(p);
    return NULL;
}

void tv_chat_prompt_free(tv_chat_prompt *p) {
    if (!p) return;
    tv_chat_template_free(p->tpl);
    free(p->bos);
    free(p->eos);
    free(p);
}

bool tv_chat_prompt_is_plain(const tv_chat_prompt *p) { return !p->tpl; }
const char *tv_chat_prompt_stop(const tv_chat_prompt *p) { return p->tpl ? NULL : PLAIN_STOP; }

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

static bool append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    size_t need;
    if (!add_ok(*len, n, &need) || !add_ok(need, 1, &need)) return false;
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need) {
            if (!mul_ok(c, 2, &c)) return false;
        }
        char *nb = realloc(*buf, c);
        if (!nb) return false;
        *buf = nb;
        *cap = c;
    }
    if (n) memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

static tv_status render_plain(const cJSON *messages, char **out, tv_error *err) {
    char *buf = NULL;
    size_t len = 0, cap = 0, i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role, *content;
        if (!msg_fields(m, i, &role, &content, err)) { free(buf); return err ? err->code : TV_ERR_INVALID; }
        bool ok;
        if (i == 0 && !strcmp(role, "system")) {
            ok = append(&buf, &len, &cap, content, strlen(content)) && append(&buf, &len, &cap, "\n\n", 2);
        } else {
            char head = role[0] >= 'a' && role[0] <= 'z' ? (char)(role[0] - 'a' + 'A') : role[0];
            ok = (!role[0] || (append(&buf, &len, &cap, &head, 1) && append(&buf, &len, &cap, role + 1, strlen(role + 1)))) &&
                 append(&buf, &len, &cap, ": ", 2) && append(&buf, &len, &cap, content, strlen(content)) &&
                 append(&buf, &len, &cap, "\n", 1);
        }
        if (!ok) { free(buf); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        i++;
    }
    if (!append(&buf, &len, &cap, "Assistant:", 10)) { free(buf); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
    *out = buf;
    return TV_OK;
}

tv_status tv_chat_prompt_render(const tv_chat_prompt *p, const cJSON *messages, char **out, tv_error *err) {
    if (!out) return err_fail(err, TV_ERR_INVALID, "out is NULL");
    *out = NULL;
    if (!cJSON_IsArray(messages)) return err_fail(err, TV_ERR_INVALID, "messages must be a JSON array");
    if (!p->tpl) return render_plain(messages, out, err);
    // validate here too: the template would otherwise render a malformed message in its own way
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role, *content;
        if (!msg_fields(m, i++, &role, &content, err)) return err ? err->code : TV_ERR_INVALID;
    }
    tv_status st = tv_chat_apply(p->tpl, messages, NULL, true, p->bos, p->eos, out, err);
    if (st) err_fail_prefix(err, st, "chat template");
    return st;
}

tv_status tv_chat_prompt_encode(const tv_chat_prompt *p, const cJSON *messages, char **text, int32_t **ids,
                                size_t *n_ids, tv_error *err) {
    char *t = NULL;
    if (text) *text = NULL;
    *ids = NULL;
    *n_ids = 0;
    tv_status st = tv_chat_prompt_render(p, messages, &t, err);
    if (st) return st;
    bool add_bos = p->tpl ? false : tv_tokenizer_add_bos_default(p->tok);
    bool parse_special = p->tpl != NULL;
    if ((st = tv_tokenize(p->tok, t, strlen(t), add_bos, parse_special, ids, n_ids, err))) {
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

tv_status tv_chat_prompt_fit(const tv_chat_prompt *p, cJSON *messages, size_t max_tokens, int *n_dropped,
                             char **text, int32_t **ids, size_t *n_ids, tv_error *err) {
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
        st = tv_chat_prompt_encode(p, trial, text ? &t : NULL, &tok_ids, &n, err);
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
