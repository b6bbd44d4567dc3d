// bench_structured.c — the constraint engine over a schema corpus, MaskBench-style:
//   bench_structured [--steps N] [--verify] TOKENIZER OUT.jsonl SCHEMA_FILE...
// For each schema: compile (timed), then up to N tokens (default 200; 0 = compile only) of a random walk, each step one
// token mask (timed) and a uniform draw among the allowed tokens (what random weights with random
// sampling amount to: the mask alone must keep the output valid). Completed outputs go to
// OUT.jsonl as {"schema": path, "output": text} for an independent validator
// (tests/js/validate_corpus.mjs runs ajv over them). Prints coverage, mask time mean / p50 / p99
// (one thread) and compile time p50 / p90, beside llguidance's published MaskBench numbers.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "structured/constraint.h"
#include "structured/matcher.h"
#include "util/rng.h"
#include "util/status.h"


static int dcmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[len] = 0; *n = (size_t)len; }
    return p;
}

int main(int argc, char **argv) {
    int max_steps = 200;
    bool verify = false;
    for (;;) {
        if (argc > 2 && !strcmp(argv[1], "--steps")) {
            max_steps = atoi(argv[2]);
            argv += 2;
            argc -= 2;
        } else if (argc > 1 && !strcmp(argv[1], "--verify")) {
            verify = true;
            argv++;
            argc--;
        } else break;
    }
    if (argc < 4) { fprintf(stderr, "usage: bench_structured TOKENIZER OUT.jsonl SCHEMA...\n"); return 2; }
    tv_error err = {0};
    tv_tokenizer *tok = tv_tokenizer_load(argv[1], 0, &err);
    if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
    const int32_t V = tv_tokenizer_n_vocab(tok);
    double t0 = time_ms();
    matcher_vocab *v = matcher_vocab_from_tokenizer(tok, V, NULL, &err);
    if (!v) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("vocabulary: %d tokens, trie %zu nodes, built in %.0f ms\n", V, matcher_vocab_trie_nodes(v), time_ms() - t0);
    FILE *out = fopen(argv[2], "w");
    if (!out) { perror(argv[2]); return 1; }
    const int n_files = argc - 3;
    double *compile_ms = calloc((size_t)n_files, sizeof *compile_ms);
    size_t cap_mask = 1 << 20, n_mask = 0;
    double *mask_us = malloc(cap_mask * sizeof *mask_us);
    uint32_t *mask = malloc(((size_t)V + 31) / 32 * 4);
    uint32_t *ref = malloc(((size_t)V + 31) / 32 * 4);
    double walk_us = 0;
    int32_t *allowed = malloc((size_t)V * sizeof *allowed);
    uint8_t *tok_len = malloc((size_t)V);
    for (int32_t t = 0; t < V; t++) {
        size_t full = 0;
        char tmp[8];
        tv_token_to_piece(tok, t, false, tmp, sizeof tmp, &full);
        tok_len[t] = (uint8_t)(full > 255 ? 255 : full);
    }
    char *text = malloc(1 << 20);
    int n_ok = 0, n_done = 0, n_bad = 0;
    char reason[64][96];
    int reason_n[64] = {0}, n_reasons = 0;
    uint64_t rs = 1234;
    for (int fi = 0; fi < n_files; fi++) {
        size_t len = 0;
        char *spec = slurp(argv[3 + fi], &len);
        if (!spec) { n_bad++; continue; }
        double c0 = time_ms();
        gram *g = constraint_parse(TV_CONSTRAINT_JSON_SCHEMA, spec, len, &err);
        matcher_grammar *cg = g ? matcher_grammar_compile(g, v, &err) : NULL;
        compile_ms[n_ok] = time_ms() - c0;
        gram_free(g);
        free(spec);
        if (!cg) {   // tally the first words of the reason
            const char *m = strstr(err.msg, ": ") ? strstr(err.msg, ": ") + 2 : err.msg;
            char key[96];
            snprintf(key, sizeof key, "%.40s", m);
            int k = 0;
            while (k < n_reasons && strcmp(reason[k], key)) k++;
            if (k == n_reasons && n_reasons < 64) strcpy(reason[n_reasons++], key);
            if (k < 64) reason_n[k]++;
            continue;
        }
        n_ok++;
        if (!max_steps) { matcher_grammar_free(cg); continue; }
        matcher *m = matcher_create(cg, &err);
        size_t tl = 0;
        bool done = false;
        for (int step = 0; step < max_steps && !done; step++) {
            double s0 = time_ms();
            if (matcher_fill_mask(m, mask) != TV_OK) { fprintf(stderr, "%s: mask failed at step %d (a budget ran out)\n", argv[3 + fi], step); break; }
            double us = (time_ms() - s0) * 1000.0;
            if (n_mask == cap_mask) { cap_mask *= 2; mask_us = realloc(mask_us, cap_mask * sizeof *mask_us); }
            mask_us[n_mask++] = us;
            if (verify) {   // the plain trie walk must give the same mask
                s0 = time_ms();
                if (matcher_fill_mask_walk(m, ref) != TV_OK) break;
                walk_us += (time_ms() - s0) * 1000.0;
                if (memcmp(mask, ref, ((size_t)V + 31) / 32 * 4)) {
                    for (int32_t t = 0; t < V; t++)
                        if ((mask[t >> 5] ^ ref[t >> 5]) >> (t & 31) & 1)
                            fprintf(stderr, "%s step %d: token %d mask %u walk %u\n", argv[3 + fi], step, t,
                                    mask[t >> 5] >> (t & 31) & 1, ref[t >> 5] >> (t & 31) & 1);
                    return 1;
                }
            }
            // half the draws among the allowed single-byte tokens (when any): structure closes sooner
            const bool short_only = rng_splitmix64(&rs) % 2;
            int n = 0;
            for (int32_t t = 0; t < V && short_only; t++) if ((mask[t >> 5] >> (t & 31) & 1) && tok_len[t] == 1) allowed[n++] = t;
            if (!n) for (int32_t t = 0; t < V; t++) if (mask[t >> 5] >> (t & 31) & 1) allowed[n++] = t;
            if (!n) { fprintf(stderr, "%s: empty mask\n", argv[3 + fi]); return 1; }
            int32_t t = allowed[rng_splitmix64(&rs) % (uint64_t)n];
            // once the output could end, end it with probability 1/2 (else walks rarely finish)
            if (matcher_is_accepting(m) && rng_splitmix64(&rs) % 2) t = -1;
            if (t < 0 || tv_tokenizer_is_eog(tok, t)) { done = true; break; }
            if (!matcher_advance(m, t)) { fprintf(stderr, "advance refused an allowed token\n"); return 1; }
            tl += tv_token_to_piece(tok, t, false, text + tl, (1 << 20) - 1 - tl, NULL);
            if (matcher_is_done(m)) done = true;
        }
        if (done) {
            n_done++;
            text[tl] = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "schema", argv[3 + fi]);
            cJSON_AddStringToObject(o, "output", text);
            char *line = cJSON_PrintUnformatted(o);
            fprintf(out, "%s\n", line);
            free(line);
            cJSON_Delete(o);
        }
        matcher_free(m);
        matcher_grammar_free(cg);
    }
    fclose(out);
    qsort(compile_ms, (size_t)n_ok, sizeof *compile_ms, dcmp);
    qsort(mask_us, n_mask, sizeof *mask_us, dcmp);
    double sum = 0;
    for (size_t i = 0; i < n_mask; i++) sum += mask_us[i];
    printf("schemas: %d, compiled %d (%.1f%%), walks completed %d, unreadable %d\n", n_files, n_ok,
           100.0 * n_ok / (n_files ? n_files : 1), n_done, n_bad);
    printf("not compiled, by reason:\n");
    for (int k = 0; k < n_reasons; k++) printf("  %5d  %s\n", reason_n[k], reason[k]);
    if (n_mask)
        printf("mask: %zu masks, mean %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us   (llguidance MaskBench: mean 47 us, p99 460 us)\n",
               n_mask, sum / (double)n_mask, mask_us[n_mask / 2], mask_us[(size_t)((double)n_mask * 0.99)], mask_us[n_mask - 1]);
    if (verify && n_mask) printf("verified: every mask equals the plain trie walk's (walk mean %.1f us)\n", walk_us / (double)n_mask);
    if (n_ok)
        printf("compile: p50 %.2f ms, p90 %.2f ms, max %.2f ms   (llguidance MaskBench: ~1.6 ms)\n", compile_ms[n_ok / 2],
               compile_ms[(size_t)(n_ok * 0.9)], compile_ms[n_ok - 1]);
    free(compile_ms); free(mask_us); free(mask); free(ref); free(allowed); free(text); free(tok_len);
    matcher_vocab_free(v);
    tv_tokenizer_free(tok);
    return 0;
}
