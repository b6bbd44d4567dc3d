// spec.c — the n-gram prompt-lookup proposer (spec.h).
#include "engine/spec.h"

#include <string.h>

int spec_ngram_propose(const int32_t *tokens, int n, int k, int32_t *out) {
    if (k <= 0) return 0;
    for (int g = SPEC_NGRAM_MAX; g >= SPEC_NGRAM_MIN; g--) {
        if (g >= n) continue;
        const int32_t *suffix = tokens + n - g;
        // most recent earlier occurrence tokens[i, i + g), i + g < n + 0 so one token follows it
        for (int i = n - g - 1; i >= 0; i--) {
            if (tokens[i + g - 1] != suffix[g - 1] || memcmp(tokens + i, suffix, (size_t)g * sizeof *tokens)) continue;
            // continuation: position t of the sequence extended by the proposal (t - n < j when t >= n)
            for (int j = 0; j < k; j++) {
                const int t = i + g + j;
                out[j] = t < n ? tokens[t] : out[t - n];
            }
            return k;
        }
    }
    return 0;
}
