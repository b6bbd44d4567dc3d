// cmd_template.c — `tinyvllm template`: render a chat template the way /v1/chat/completions does.
//
//   tinyvllm template (-m MODEL.gguf | --template FILE.jinja) --messages FILE.json [--tools FILE.json]
//                     [--no-generation-prompt] [--bos-token T] [--eos-token T] [--kwargs FILE.json]
//
// --messages: an OpenAI-style messages array, or an object with "messages" (and optionally "tools").
// With -m the template is the GGUF's tokenizer.chat_template and bos/eos default to the strings of
// tokenizer.ggml.bos_token_id / eos_token_id. --kwargs: a JSON object of extra template variables
// (chat_template_kwargs, e.g. {"enable_thinking": false}). The rendered prompt goes to stdout, nothing else.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

#define CMD "template"

static void usage(FILE *f) {
    fprintf(f, "usage: tinyvllm template (-m MODEL.gguf | --template FILE.jinja) --messages FILE.json\n"
               "                         [--tools FILE.json] [--no-generation-prompt] [--bos-token T] [--eos-token T]\n"
               "                         [--kwargs FILE.json]\n");
    fputs(CLI_HELP_USAGE, f);
}

static cJSON *read_json(const char *path) {
    size_t n;
    char *s = cli_read_file(CMD, path, CLI_MAX_JSON, &n);
    if (!s) return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    if (!j) fprintf(stderr, "tinyvllm %s: %s: invalid JSON\n", CMD, path);
    return j;
}

// A malloc'd NUL-terminated copy of len bytes (NULL for NULL or out of memory).
static char *dup_n(const char *p, size_t len) {
    char *out = p ? malloc(len + 1) : NULL;
    if (!out) return NULL;
    memcpy(out, p, len);
    out[len] = 0;
    return out;
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *tpl_path = NULL, *msg_path = NULL, *tools_path = NULL, *bos = NULL, *eos = NULL,
               *kwargs_path = NULL;
    bool gen_prompt = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) model = argv[++i];
        else if (!strcmp(a, "--template") && has_val) tpl_path = argv[++i];
        else if (!strcmp(a, "--messages") && has_val) msg_path = argv[++i];
        else if (!strcmp(a, "--tools") && has_val) tools_path = argv[++i];
        else if (!strcmp(a, "--kwargs") && has_val) kwargs_path = argv[++i];
        else if (!strcmp(a, "--bos-token") && has_val) bos = argv[++i];
        else if (!strcmp(a, "--eos-token") && has_val) eos = argv[++i];
        else if (!strcmp(a, "--no-generation-prompt")) gen_prompt = false;
        else return cli_usage_error(CMD, "unknown or incomplete option '%s'", a);
    }
    if (!model == !tpl_path) return cli_usage_error(CMD, "give exactly one of -m MODEL.gguf or --template FILE.jinja");
    if (!msg_path) return cli_usage_error(CMD, "--messages FILE.json is required");

    int rc = 1;
    char *src = NULL, *gguf_bos = NULL, *gguf_eos = NULL, *out = NULL, *msgs_json = NULL, *tools_json = NULL,
         *kwargs_json = NULL;
    size_t src_len = 0;
    cJSON *msgs_doc = NULL, *tools_doc = NULL, *kwargs_doc = NULL;
    tv_chat *chat = NULL;
    tv_error err = {0};

    if (model) {
        tv_file *f = tv_file_open(model, &err);
        if (!f) { fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg); goto done; }
        size_t len;
        const char *s = tv_file_meta_str(f, "tokenizer.chat_template", &len);
        if (!s) {
            fprintf(stderr, "tinyvllm %s: %s has no tokenizer.chat_template\n", CMD, model);
            tv_file_close(f);
            goto done;
        }
        src = dup_n(s, len);
        src_len = len;
        const char *piece = tv_file_token_of(f, "tokenizer.ggml.bos_token_id", &len);
        gguf_bos = dup_n(piece, len);
        piece = tv_file_token_of(f, "tokenizer.ggml.eos_token_id", &len);
        gguf_eos = dup_n(piece, len);
        tv_file_close(f);
        if (!src) { fprintf(stderr, "tinyvllm %s: out of memory\n", CMD); goto done; }
        if (!bos) bos = gguf_bos;
        if (!eos) eos = gguf_eos;
    } else if (!(src = cli_read_file(CMD, tpl_path, CLI_MAX_TEMPLATE, &src_len))) goto done;

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
    if (kwargs_path) {
        if (!(kwargs_doc = read_json(kwargs_path))) goto done;
        if (!cJSON_IsObject(kwargs_doc)) { fprintf(stderr, "tinyvllm %s: %s: expected a JSON object\n", CMD, kwargs_path); goto done; }
        if (!(kwargs_json = cJSON_PrintUnformatted(kwargs_doc))) { fprintf(stderr, "tinyvllm %s: out of memory\n", CMD); goto done; }
    }

    tv_chat_params cp = {0};
    cp.template_src = src;
    cp.template_len = src_len;
    cp.bos_token = bos ? bos : "";
    cp.eos_token = eos ? eos : "";
    if (!(chat = tv_chat_create(&cp, &err))) { fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg); goto done; }
    if (!(msgs_json = cJSON_PrintUnformatted(messages)) || (tools && !(tools_json = cJSON_PrintUnformatted(tools)))) {
        fprintf(stderr, "tinyvllm %s: out of memory\n", CMD);
        goto done;
    }
    tv_chat_input in = {0};
    in.messages_json = msgs_json;
    in.tools_json = tools_json;
    in.kwargs_json = kwargs_json;
    in.add_generation_prompt = gen_prompt;
    if (tv_chat_render(chat, &in, &out, &err) != TV_OK) {
        fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg);
        goto done;
    }
    size_t n = strlen(out);
    if (fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0) { fprintf(stderr, "tinyvllm %s: write error\n", CMD); goto done; }
    rc = 0;
done:
    free(out);
    tv_chat_free(chat);
    free(msgs_json);
    free(tools_json);
    free(kwargs_json);
    cJSON_Delete(msgs_doc);
    cJSON_Delete(tools_doc);
    cJSON_Delete(kwargs_doc);
    free(src);
    free(gguf_bos);
    free(gguf_eos);
    return rc;
}
