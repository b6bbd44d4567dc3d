// registry.c — the list of model families (family.h) and the metadata readers they share. To add
// one: write src/model/family_NAME.c defining `const model_family family_NAME`, and add X(NAME) below.
#include <stdio.h>
#include <string.h>

#include "model/family.h"
#include "util/status.h"

#define FAMILIES(X) \
    X(llama) \
    X(qwen2) \
    X(qwen3) \
    X(smollm3) \
    X(granite) \
    X(mistral3) \
    X(phi3) \
    X(gemma2) \
    X(gemma3) \
    X(gemma4) \
    X(qwen3moe) \
    X(qwen2moe) \
    X(gptoss)

#define DECLARE(n) extern const model_family family_##n;
FAMILIES(DECLARE)
#undef DECLARE
#define ADDRESS(n) &family_##n,
static const model_family *const REGISTRY[] = {FAMILIES(ADDRESS)};
#undef ADDRESS

const model_family *family_find(const char *arch) {
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        for (const char *const *a = REGISTRY[i]->archs; *a; a++)
            if (!strcmp(*a, arch)) return REGISTRY[i];
    return NULL;
}

const model_family *family_by_name(const char *name) {
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        if (!strcmp(REGISTRY[i]->name, name)) return REGISTRY[i];
    return NULL;
}

void family_list_archs(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        for (const char *const *a = REGISTRY[i]->archs; *a && n < cap; a++) {
            int k = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", *a);
            if (k < 0) return;
            n += (size_t)k;
        }
}

tv_status family_swa_pattern(const gguf_ctx *g, const char *arch, int dflt_period, const tv_hparams *h,
                             tv_layer *layers, tv_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const gguf_value *v = gguf_get(g, key);
    if (v && v->type == GGUF_TYPE_ARRAY) {
        if (v->arr_type != GGUF_TYPE_BOOL || v->arr_n != (uint64_t)h->n_layers)
            return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a period or %d bools (one per layer)", key,
                            h->n_layers);
        for (int l = 0; l < h->n_layers; l++) layers[l].is_swa = gguf_arr_int(v, (uint64_t)l) != 0;
        return TV_OK;
    }
    int64_t period = dflt_period;
    if (v && (!gguf_get_int(g, key, &period) || period < 0 || period > h->n_layers))
        return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a period in [0, %d] or one bool per layer", key,
                        h->n_layers);
    for (int l = 0; l < h->n_layers; l++) layers[l].is_swa = period == 0 || l % period < period - 1;
    return TV_OK;
}
