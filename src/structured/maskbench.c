// maskbench.c — tv_structured_bench: the constraint engine measured MaskBench-style (the method of
// github.com/guidance-ai/jsonschemabench, maskbench/): for each JSON Schema, compile it (timed) for
// the tokenizer's vocabulary, then walk up to max_steps tokens, each step one token mask (timed,
// one thread) and a uniform draw among the allowed tokens: what random weights with random
// sampling amount to, so the mask alone must keep the output valid. Half the draws prefer
// single-byte tokens (structure closes sooner) and once the output may end it ends with
// probability 1/2 (else walks rarely finish). The vocabulary (and its shared token classes) is
// built once for all schemas, as a server builds it once per model.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "structured/constraint.h"
#include "structured/matcher.h"
#include "tinyvllm_tools.h"
#include "util/rng.h"
#include "util/status.h"

static int dbl_cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double q) {
    if (!n) return 0.0;
    size_t i = (size_t)(q * (double)n);
    return sorted[i < n ? i : n - 1];
}

// Counts a compile failure under the first words of its reason.
static void tally(tv_structured_bench_result *r, const char *msg) {
    const char *m = strstr(msg, ": ") ? strstr(msg, ": ") + 2 : msg;
    char key[sizeof r->reason[0]];
    snprintf(key, sizeof key, "%.48s", m);
    int k = 0;
    while (k < r->n_reasons && strcmp(r->reason[k], key)) k++;
    if (k == r->n_reasons) {
        if (r->n_reasons == TV_STRUCTURED_BENCH_REASONS) return;
        memcpy(r->reason[r->n_reasons++], key, sizeof key);
    }
    r->reason_n[k]++;
}

tv_status tv_structured_bench(const tv_tokenizer *tok, const char *const *schemas, const size_t *lens, int n,
                              const tv_structured_bench_options *o, tv_structured_bench_result *r, tv_error *err) {
    memset(r, 0, sizeof *r);
    const int max_steps = o && o->max_steps > 0 ? o->max_steps : 200;
    const bool verify = o && o->verify;
    uint64_t rs = o && o->seed ? o->seed : 1234;
    const int32_t V = tv_tokenizer_n_vocab(tok);
    const size_t nw = ((size_t)V + 31) / 32;
    tv_status st = TV_OK;
    const double v0 = time_ms();
    matcher_vocab *v = matcher_vocab_from_tokenizer(tok, V, NULL, err);
    if (!v) return err && err->code ? err->code : TV_ERR_NOMEM;
    r->vocab_ms = time_ms() - v0;
    r->n_vocab = V;
    size_t cap_mask = 4096, n_mask = 0;
    double *mask_us = malloc(cap_mask * sizeof *mask_us), *compile_ms = malloc(((size_t)n + 1) * sizeof *compile_ms);
    uint32_t *mask = malloc(nw * 4), *ref = malloc(nw * 4);
    int32_t *allowed = malloc((size_t)V * sizeof *allowed);
    bool *single = calloc((size_t)V, 1);   // one-byte pieces
    size_t cap_text = 1 << 16;
    char *text = malloc(cap_text);
    if (!mask_us || !compile_ms || !mask || !ref || !allowed || !single || !text) {
        st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t t = 0; t < V; t++) {
        size_t full = 0;
        char tmp[8];
        tv_token_to_piece(tok, t, false, tmp, sizeof tmp, &full);
        single[t] = full == 1;
    }
    double walk_us = 0.0;
    r->n_schemas = n;
    for (int si = 0; si < n; si++) {
        tv_error e = {0};
        const double c0 = time_ms();
        gram *g = constraint_parse(TV_CONSTRAINT_JSON_SCHEMA, schemas[si], lens[si], &e);
        matcher_grammar *cg = g ? matcher_grammar_compile(g, v, &e) : NULL;
        const double c_ms = time_ms() - c0;
        gram_free(g);
        if (!cg) { tally(r, e.msg); continue; }
        compile_ms[r->n_compiled++] = c_ms;
        matcher *m = matcher_create(cg, &e);
        matcher_grammar_free(cg);
        if (!m) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
        size_t tl = 0;
        bool done = false;
        for (int step = 0; step < max_steps && !done; step++) {
            const double s0 = time_ms();
            if (matcher_fill_mask(m, mask) != TV_OK) { r->n_budget++; break; }   // a budget ran out
            const double us = (time_ms() - s0) * 1000.0;
            if (n_mask == cap_mask) {
                double *nm = realloc(mask_us, 2 * cap_mask * sizeof *nm);
                if (!nm) { matcher_free(m); st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
                mask_us = nm;
                cap_mask *= 2;
            }
            mask_us[n_mask++] = us;
            if (verify) {
                const double w0 = time_ms();
                if (matcher_fill_mask_walk(m, ref) != TV_OK) { r->n_budget++; break; }
                walk_us += (time_ms() - w0) * 1000.0;
                if (memcmp(mask, ref, nw * 4)) {
                    matcher_free(m);
                    st = err_fail(err, TV_ERR_STATE, "schema %d step %d: the mask differs from the plain trie walk's", si, step);
                    goto done;
                }
            }
            const bool short_only = rng_splitmix64(&rs) % 2;
            int na = 0;
            for (int32_t t = 0; t < V && short_only; t++) if ((mask[t >> 5] >> (t & 31) & 1) && single[t]) allowed[na++] = t;
            if (!na) for (int32_t t = 0; t < V; t++) if (mask[t >> 5] >> (t & 31) & 1) allowed[na++] = t;
            if (!na) {
                matcher_free(m);
                st = err_fail(err, TV_ERR_STATE, "schema %d step %d: empty mask", si, step);
                goto done;
            }
            int32_t t = allowed[rng_splitmix64(&rs) % (uint64_t)na];
            if (matcher_is_accepting(m) && rng_splitmix64(&rs) % 2) t = -1;
            if (t < 0 || tv_tokenizer_is_eog(tok, t)) { done = true; break; }
            if (!matcher_advance(m, t)) {
                matcher_free(m);
                st = err_fail(err, TV_ERR_STATE, "schema %d step %d: token %d was in the mask but refused", si, step, t);
                goto done;
            }
            size_t full = 0;
            tv_token_to_piece(tok, t, false, text + tl, cap_text - tl, &full);
            if (tl + full >= cap_text) {   // grow and write the piece again
                char *nt = realloc(text, 2 * (tl + full) + 1);
                if (!nt) { matcher_free(m); st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
                text = nt;
                cap_text = 2 * (tl + full) + 1;
                tv_token_to_piece(tok, t, false, text + tl, cap_text - tl, NULL);
            }
            tl += full;
            if (matcher_is_done(m)) done = true;
        }
        matcher_free(m);
        if (done) {
            r->n_completed++;
            text[tl] = 0;
            if (o && o->on_output) o->on_output(o->user, si, text, tl);
        }
    }
    qsort(compile_ms, (size_t)r->n_compiled, sizeof *compile_ms, dbl_cmp);
    qsort(mask_us, n_mask, sizeof *mask_us, dbl_cmp);
    double sum = 0.0;
    for (size_t i = 0; i < n_mask; i++) sum += mask_us[i];
    r->n_masks = n_mask;
    r->mask_mean_us = n_mask ? sum / (double)n_mask : 0.0;
    r->mask_p50_us = pct(mask_us, n_mask, 0.50);
    r->mask_p99_us = pct(mask_us, n_mask, 0.99);
    r->mask_max_us = n_mask ? mask_us[n_mask - 1] : 0.0;
    r->walk_mean_us = verify && n_mask ? walk_us / (double)n_mask : 0.0;
    r->compile_p50_ms = pct(compile_ms, (size_t)r->n_compiled, 0.50);
    r->compile_p90_ms = pct(compile_ms, (size_t)r->n_compiled, 0.90);
    r->compile_max_ms = r->n_compiled ? compile_ms[r->n_compiled - 1] : 0.0;
done:
    free(mask_us); free(compile_ms); free(mask); free(ref); free(allowed); free(single); free(text);
    matcher_vocab_free(v);
    return st;
}
