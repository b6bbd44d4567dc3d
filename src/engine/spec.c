// spec.c — the n-gram prompt-lookup proposer, the draft model's vocabulary check and the load
// gate (spec.h).
#include "engine/spec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/status.h"

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

// The text of id (special tokens included) into *buf (grown as needed, NUL-terminated); its
// length, or SIZE_MAX when out of memory.
static size_t piece_of(const tv_tokenizer *t, int32_t id, char **buf, size_t *cap) {
    size_t full = 0;
    size_t n = tv_token_to_piece(t, id, true, *buf, *cap, &full);
    if (full >= *cap) {
        char *grown = mem_malloc(full + 1);
        if (!grown) return SIZE_MAX;
        free(*buf);
        *buf = grown;
        *cap = full + 1;
        n = tv_token_to_piece(t, id, true, *buf, *cap, &full);
    }
    (*buf)[n] = 0;
    return n;
}

tv_status spec_check_vocab(const tv_model *target, const tv_model *draft, tv_error *err) {
    const int32_t nt = tv_model_n_vocab(target), nd = tv_model_n_vocab(draft);
    if (nt != nd)
        return err_fail(err, TV_ERR_INVALID, "draft model: its vocabulary has %d tokens, the target's %d (they must be the same)",
                        nd, nt);
    const tv_tokenizer *tt = tv_model_tokenizer(target), *td = tv_model_tokenizer(draft);
    if (!tt || !td) return TV_OK;
    size_t ca = 64, cb = 64;
    char *a = mem_malloc(ca), *b = mem_malloc(cb);
    tv_status st = TV_OK;
    if (!a || !b) st = err_fail(err, TV_ERR_NOMEM, "draft model: out of memory comparing vocabularies");
    for (int32_t id = 0; id < nt && !st; id++) {
        const size_t la = piece_of(tt, id, &a, &ca), lb = piece_of(td, id, &b, &cb);
        if (la == SIZE_MAX || lb == SIZE_MAX) st = err_fail(err, TV_ERR_NOMEM, "draft model: out of memory comparing vocabularies");
        else if (la != lb || memcmp(a, b, la))
            st = err_fail(err, TV_ERR_INVALID, "draft model: token %d is \"%.40s\" in the draft's vocabulary but \"%.40s\" in the target's "
                          "(the vocabularies must be the same)", id, b, a);
    }
    free(a);
    free(b);
    return st;
}

// One decode load's measurements: [0] rounds without speculation, [1] with.
typedef struct {
    double rate[2];      // tokens/s, moving average
    uint64_t n[2];       // rounds measured
    uint64_t n_decided;  // decisions taken at this load
    int trying;          // 0, or 1 + the way an exploring decision took, kept until a round of it is measured
} gate_load;

struct spec_gate {
    int max_load;
    gate_load *loads;    // (max_load + 1), [0] unused
};

spec_gate *spec_gate_create(int max_load) {
    if (max_load < 1) max_load = 1;
    spec_gate *g = mem_calloc(1, sizeof *g);
    if (!g || !(g->loads = mem_calloc((size_t)max_load + 1, sizeof *g->loads))) {
        spec_gate_free(g);
        return NULL;
    }
    g->max_load = max_load;
    return g;
}

void spec_gate_free(spec_gate *g) {
    if (!g) return;
    free(g->loads);
    free(g);
}

static gate_load *load_of(const spec_gate *g, int load) {
    return &g->loads[load < 1 ? 1 : load > g->max_load ? g->max_load : load];
}

bool spec_gate_decide(spec_gate *g, int load) {
    gate_load *l = load_of(g, load);
    if (l->n[1] <= SPEC_GATE_WARMUP) return true;    // not measured past its warm-up yet: try it
    if (l->n[0] <= SPEC_GATE_WARMUP) return false;
    if (l->trying) return l->trying - 1;
    const bool better = l->rate[1] >= l->rate[0];
    if (++l->n_decided % SPEC_GATE_EXPLORE) return better;
    l->trying = 1 + !better;
    return !better;
}

void spec_gate_record(spec_gate *g, int load, bool speculated, int n_tokens, double seconds) {
    if (!(seconds > 0.0) || n_tokens < 0) return;
    gate_load *l = load_of(g, load);
    const int k = speculated;
    if (l->trying == 1 + k) l->trying = 0;
    if (++l->n[k] <= SPEC_GATE_WARMUP) return;   // a warm-up round: not averaged
    double w = 1.0 / (double)(l->n[k] - SPEC_GATE_WARMUP);
    if (w < SPEC_GATE_EMA) w = SPEC_GATE_EMA;
    l->rate[k] += w * ((double)n_tokens / seconds - l->rate[k]);
}

void spec_gate_rates(const spec_gate *g, int load, double *plain, double *spec) {
    const gate_load *l = load_of(g, load);
    *plain = l->rate[0];
    *spec = l->rate[1];
}
