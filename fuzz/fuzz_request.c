// fuzz_request.c — libFuzzer target for the OpenAI request parser (src/server/request.c): any bytes,
// for every API kind, must give either a request that obeys the documented bounds or a 4xx/5xx
// error with a message, without crashing, leaking or reading out of bounds.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

#define FUZZ_VOCAB 1000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_api api = (srv_api)(data[0] % 4);
    // a copy without a terminating NUL, so reads past `size` are caught by ASan
    char *body = malloc(size - 1 ? size - 1 : 1);
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    srv_error err;
    memset(&err, 0, sizeof err);
    srv_request *r = srv_request_parse(api, body, size - 1, FUZZ_VOCAB, NULL, &err);
    if (r) {
        if (r->n < 1 || r->n > SRV_MAX_N) abort();
        if (r->n_stop < 0 || r->n_stop > SRV_MAX_STOP) abort();
        if (r->logprobs < -1 || r->logprobs > SRV_MAX_LOGPROBS) abort();
        if (r->max_tokens == 0 || r->max_tokens < -1) abort();
        if ((int64_t)r->n * (r->n_prompts ? r->n_prompts : 1) > SRV_MAX_SEQS) abort();
        for (int i = 0; i < r->n_prompts; i++) {
            if (!r->prompts[i].text && !r->prompts[i].n_ids) abort();
            for (size_t k = 0; k < r->prompts[i].n_ids; k++)
                if (r->prompts[i].ids[k] < 0 || r->prompts[i].ids[k] >= FUZZ_VOCAB) abort();
        }
        for (int i = 0; i < r->sampling.n_logit_bias; i++)
            if (r->bias_ids[i] < 0 || r->bias_ids[i] >= FUZZ_VOCAB || r->bias_vals[i] < -100 || r->bias_vals[i] > 100) abort();
        for (size_t k = 0; k < r->n_tokens; k++)
            if (r->tokens[k] < 0 || r->tokens[k] >= FUZZ_VOCAB) abort();
        if (api == SRV_API_CHAT && !cJSON_IsArray(r->messages)) abort();
        srv_request_free(r);
    } else {
        if (err.status < 400 || err.status > 599 || !err.message[0] || !err.type) abort();
    }
    free(body);
    return 0;
}
