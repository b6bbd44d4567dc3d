// fuzz_template.c — libFuzzer target: arbitrary bytes as a chat template, compiled and rendered with a
// fixed chat context. Any crash, leak, hang or sanitizer report is a bug; errors are expected.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "chat/chat.h"

static cJSON *g_ctx;

static const char CTX[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\","
    "  \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [1.5, true]}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_ctx) g_ctx = cJSON_Parse(CTX);
    if (size > 1 << 16) return 0;
    tv_error err;
    chat_template *t = chat_template_create((const char *)data, size, &err);
    if (!t) return 0;
    char *out = NULL;
    size_t n = 0;
    if (chat_template_render(t, g_ctx, &out, &n, &err) == TV_OK) free(out);
    chat_template_free(t);
    return 0;
}
