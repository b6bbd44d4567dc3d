// fuzz_reply.c — libFuzzer target for the reply parser (src/server/tools.c): reasoning, tool calls
// (Hermes, Mistral, Llama 3, gpt-oss harmony) and content split out of any generated text, fed in
// pieces as a stream would. The first byte picks reasoning on/off, tools on/off and the piece size;
// every call returned must name one of the request's tools and carry its arguments as a string.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/tools.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static cJSON *tools;
    if (!tools)
        tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{}}},"
                            "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]");
    srv_request req;
    memset(&req, 0, sizeof req);
    req.reasoning = data[0] & 1;
    req.tools = data[0] & 2 ? tools : NULL;
    const size_t chunk = 1 + (data[0] >> 2);
    srv_reply r;
    srv_reply_init(&r, &req, data[0] & 128);
    const char *text = (const char *)data + 1;
    const size_t n = size - 1;
    for (size_t i = 0; i < n; i += chunk) {
        srv_reply_feed(&r, text + i, n - i < chunk ? n - i : chunk);
        srv_reply_take(&r);
    }
    cJSON *calls = srv_reply_finish(&r);
    for (const cJSON *c = calls ? calls->child : NULL; c; c = c->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name"), *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        if (!cJSON_IsString(name) || !cJSON_IsString(args)) abort();
        if (strcmp(name->valuestring, "get_weather") && strcmp(name->valuestring, "f")) abort();
    }
    if (calls && !req.tools) abort();
    cJSON_Delete(calls);
    srv_reply_free(&r);
    return 0;
}
