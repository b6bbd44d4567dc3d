// registry.c — the list of model families (family.h). To add one: write src/model/family_NAME.c
// defining `const model_family family_NAME`, and add X(NAME) below.
#include <stdio.h>
#include <string.h>

#include "model/family.h"

#define FAMILIES(X) \
    X(llama) \
    X(qwen2) \
    X(qwen3) \
    X(smollm3) \
    X(granite) \
    X(mistral3) \
    X(phi3)

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
