// cmd_template.c — `tinyvllm template`: render a chat template the way /v1/chat/completions does.
//
//   tinyvllm template (-m MODEL.gguf | --template FILE.jinja) --messages FILE.json [--tools FILE.json]
//                     [--no-generation-prompt] [--bos-token T] [--eos-token T]
//
// --messages: an OpenAI-style messages array, or an object with "messages" (and optionally "tools").
// With -m the template is the GGUF's tokenizer.chat_template and bos/eos default to the strings of
// tokenizer.ggml.bos_token_id / eos_token_id. The rendered prompt goes to stdout, nothing else.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_util.h"
#include "formats/gguf.h"
#include "tokenizer/chat_template.h"

#define CMD "template"

static void usage(FILE *f) {
    fprintf(f, "usage: tinyvllm template (-m MODEL.gguf | --template FILE.jinja) --messages FILE.json\n"
               "                         [--tools FILE.json] [--no-generation-prompt] [--bos-token T] [--eos-token T]\n");
}

// Reads a whole file (NUL-terminated); NULL on error with a message printed.
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "tinyvllm %s: cannot open %s\n", CMD, path); return NULL; }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!cli_append(&buf, &n, &cap, chunk, r)) { fprintf(stderr, "tinyvllm %s: out of memory reading %s\n", CMD, path); free(buf); fclose(f); return NULL; }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) { fprintf(stderr, "tinyvllm %s: error reading %s\n", CMD, path); free(buf); return NULL; }
    if (!buf && !cli_append(&buf, &n, &cap, "", 0)) { fprintf(stderr, "tinyvllm %s: out of memory\n", CMD); return NULL; }
    if (len) *len = n;
    return buf;
}

static cJSON *read_json(const char *path) {
    size_t n;
    char *s = read_file(path, &n);
    if (!s) return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    if (!j) fprintf(stderr, "tinyvllm %s: %s: invalid JSON\n", CMD, path);
    return j;
}

// GGUF token string for the id stored under key (malloc'd), or NULL when absent.
static char *gguf_token_str(const gguf_ctx *g, const char *key) {
    int64_t id;
    const gguf_value *toks = gguf_get(g, "tokenizer.ggml.tokens");
    if (!gguf_get_int(g, key, &id) || !toks || toks->type != GGUF_TYPE_ARRAY || toks->arr_type != GGUF_TYPE_STRING ||
        id < 0 || (uint64_t)id >= toks->arr_n) return NULL;
    gguf_str s = gguf_arr_str(toks, (uint64_t)id);
    char *out = malloc(s.len + 1);
    if (!out) return NULL;
    memcpy(out, s.ptr, s.len);
    out[s.len] = 0;
    return out;
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *tpl_path = NULL, *msg_path = NULL, *tools_path = NULL, *bos = NULL, *eos = NULL;
    bool gen_prompt = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) model = argv[++i];
        else if (!strcmp(a, "--template") && has_val) tpl_path = argv[++i];
        else if (!strcmp(a, "--messages") && has_val) msg_path = argv[++i];
        else if (!strcmp(a, "--tools") && has_val) tools_path = argv[++i];
        else if (!strcmp(a, "--bos-token") && has_val) bos = argv[++i];
        else if (!strcmp(a, "--eos-token") && has_val) eos = argv[++i];
        else if (!strcmp(a, "--no-generation-prompt")) gen_prompt = false;
        else return cli_usage_error(CMD, "unknown or incomplete option '%s'", a);
    }
    if (!model == !tpl_path) return cli_usage_error(CMD, "give exactly one of -m MODEL.gguf or --template FILE.jinja");
    if (!msg_path) return cli_usage_error(CMD, "--messages FILE.json is required");

    int rc = 1;
    char *src = NULL, *gguf_bos = NULL, *gguf_eos = NULL, *out = NULL;
    size_t src_len = 0;
    cJSON *msgs_doc = NULL, *tools_doc = NULL;
    tv_chat_template *t = NULL;
    tv_error err = {0};

    if (model) {
        gguf_ctx *g = gguf_open(model, &err);
        if (!g) { fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg); goto done; }
        gguf_str s;
        if (!gguf_get_str(g, "tokenizer.chat_template", &s)) {
            fprintf(stderr, "tinyvllm %s: %s has no tokenizer.chat_template\n", CMD, model);
            gguf_close(g);
            goto done;
        }
        src = malloc(s.len + 1);
        if (src) { memcpy(src, s.ptr, s.len); src[s.len] = 0; src_len = s.len; }
        gguf_bos = gguf_token_str(g, "tokenizer.ggml.bos_token_id");
        gguf_eos = gguf_token_str(g, "tokenizer.ggml.eos_token_id");
        gguf_close(g);
        if (!src) { fprintf(stderr, "tinyvllm %s: out of memory\n", CMD); goto done; }
        if (!bos) bos = gguf_bos;
        if (!eos) eos = gguf_eos;
    } else if (!(src = read_file(tpl_path, &src_len))) goto done;

    if (!(msgs_doc = read_json(msg_path))) goto done;
    const cJSON *messages = msgs_doc, *tools = NULL;
    if (cJSON_IsObject(msgs_doc)) {
        messages = cJSON_GetObjectItemCaseSensitive(msgs_doc, "messages");
        tools = cJSON_GetObjectItemCaseSensitive(msgs_doc, "tools");
    }
    if (!cJSON_IsArray(messages)) { fprintf(stderr, "tinyvllm %s: %s: expected a messages array or {\"messages\": [...]}\n", CMD, msg_path); goto done; }
    if (tools_path) {
        if (!(tools_doc = read_json(tools_path))) goto done;
        tools = tools_doc;
        if (cJSON_IsObject(tools_doc)) tools = cJSON_GetObjectItemCaseSensitive(tools_doc, "tools");
    }
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools)) { fprintf(stderr, "tinyvllm %s: tools must be a JSON array\n", CMD); goto done; }

    if (!(t = tv_chat_template_create(src, src_len, &err))) { fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg); goto done; }
    if (tv_chat_apply(t, messages, tools, gen_prompt, bos, eos, &out, &err) != TV_OK) {
        fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg);
        goto done;
    }
    size_t n = strlen(out);
    if (fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0) { fprintf(stderr, "tinyvllm %s: write error\n", CMD); goto done; }
    rc = 0;
done:
    free(out);
    tv_chat_template_free(t);
    cJSON_Delete(msgs_doc);
    cJSON_Delete(tools_doc);
    free(src);
    free(gguf_bos);
    free(gguf_eos);
    return rc;
}
