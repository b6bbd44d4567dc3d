// cmd_bench_structured.c — `tinyvllm bench structured`: the constraint engine's per-token mask time
// (mean / p50 / p99 / max, one thread) and schema compile time over a set of JSON Schemas, printed
// beside llguidance's published MaskBench figures (tv_structured_bench has the method).
// The schemas: every *.json under --corpus DIR (or $TV_SCHEMA_CORPUS; e.g. JSONSchemaBench's
// data/, or MaskBench's maskbench/data/ whose files carry test instances: --instances runs those
// as MaskBench does), else a built-in set of everyday shapes (tool arguments, records, enums,
// formats, patterns, nesting, recursion). With --grammars, every *.gbnf under --corpus DIR is a GBNF
// grammar instead (llama.cpp's grammars/ folder, say).
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

// llguidance 0.7.10 on MaskBench (github.com/guidance-ai/jsonschemabench, maskbench/README.md,
// "Performance Metrics"): 11,306 schemas, Llama-3 tokenizer, one thread per sequence.
#define LLG_MASK_MEAN_US 64.0
#define LLG_MASK_P50_US 46.0
#define LLG_MASK_P99_US 533.0
#define LLG_COMPILE_P50_MS 1.037
#define LLG_PASSING_PCT (100.0 * 8909 / 11306)
#define BS_MAX_SCHEMAS 100000

static const char *const k_builtin[] = {
    "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"celsius\","
    "\"fahrenheit\"]}},\"required\":[\"location\"],\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":8}},\"required\":[\"name\",\"age\"]}",
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\"},\"created\":{\"type\":"
    "\"string\",\"format\":\"date-time\"},\"total\":{\"type\":\"number\"},\"items\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"object\",\"properties\":{\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-[0-9]{4}$\"},"
    "\"qty\":{\"type\":\"integer\",\"minimum\":1}},\"required\":[\"sku\",\"qty\"]},\"minItems\":1}},"
    "\"required\":[\"id\",\"items\"]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"value\":{\"type\":\"string\"},\"children\":"
    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"value\"]}},\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"},\"country\":{\"enum\":[\"US\",\"CA\",\"MX\",\"DE\","
    "\"FR\",\"JP\"]}},\"required\":[\"street\",\"city\",\"country\"]}",
    "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"ok\":{\"const\":true},\"data\":{\"type\":\"object\"}},"
    "\"required\":[\"ok\",\"data\"]},{\"type\":\"object\",\"properties\":{\"ok\":{\"const\":false},\"error\":"
    "{\"type\":\"string\"}},\"required\":[\"ok\",\"error\"]}]}",
    "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"date\":{\"type\":\"string\",\"format\":"
    "\"date\"},\"temp\":{\"type\":\"number\"},\"rain\":{\"type\":\"boolean\"}},\"required\":[\"date\",\"temp\"]},"
    "\"maxItems\":7}",
    "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},\"year\":{\"type\":\"integer\"},"
    "\"genres\":{\"type\":\"array\",\"items\":{\"enum\":[\"drama\",\"comedy\",\"action\",\"horror\",\"sci-fi\","
    "\"documentary\"]},\"uniqueItems\":false},\"rating\":{\"type\":[\"number\",\"null\"]},\"cast\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"role\":{\"type\":"
    "\"string\"}}}}},\"required\":[\"title\",\"year\"]}",
    "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"maxLength\":200},\"filters\":{\"type\":"
    "\"object\",\"additionalProperties\":{\"type\":\"string\"}},\"limit\":{\"type\":\"integer\",\"minimum\":1,"
    "\"maximum\":100},\"sort\":{\"enum\":[\"asc\",\"desc\"]}},\"required\":[\"query\"]}",
    "{\"type\":\"object\"}",
};

static void usage(FILE *f) {
    fputs("usage: tinyvllm bench structured --tokenizer FILE [options]\n"
          "  --tokenizer FILE  the vocabulary: tokenizer.json, a GGUF model or vocab, a llama2.c tokenizer\n"
          "                    (also -m FILE); MaskBench uses Llama-3's (128k tokens)\n"
          "  --corpus DIR      every *.json under DIR is a schema (default $TV_SCHEMA_CORPUS; without\n"
          "                    either, a built-in set of 10)\n"
          "  --grammars        the corpus is GBNF grammars (llama.cpp syntax): every *.gbnf under --corpus DIR\n"
          "  --max-schemas N   at most N schemas (sorted by path; default all)\n"
          "  --instances       MaskBench's method: step through each file's valid test instances\n"
          "                    (MaskBench's layout {\"schema\", \"tests\"}) instead of random walks\n"
          "  --steps N         tokens per schema walk (default 200)\n"
          "  --seed N          the walks' random seed\n"
          "  --verify          check every mask against a plain trie walk (slow)\n"
          "  --out FILE        completed outputs as JSON lines {\"schema\": path, \"output\": text} (for a validator)\n"
          "  --json            print one JSON object instead of the text report\n",
          f);
    fputs(CLI_HELP_USAGE, f);
}

typedef struct { char **v; size_t n, cap; } strvec;

static bool strvec_push(strvec *s, const char *x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) return false;
        s->v = nv;
        s->cap = cap;
    }
    return (s->v[s->n] = strdup(x)) && ++s->n;
}

static int path_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Appends every file named *ext under dir (recursively) to out; false on an unreadable directory / OOM.
static bool find_files(const char *dir, const char *ext, strvec *out, int depth) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool ok = true;
    for (struct dirent *e; ok && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (stat(path, &st)) continue;
        const size_t n = strlen(e->d_name), ne = strlen(ext);
        if (S_ISDIR(st.st_mode) && depth < 8) ok = find_files(path, ext, out, depth + 1);
        else if (S_ISREG(st.st_mode) && n > ne && !strcmp(e->d_name + n - ne, ext)) ok = strvec_push(out, path);
    }
    closedir(d);
    return ok;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *p = NULL;
    long len;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)len + 1))) {
        if (fread(p, 1, (size_t)len, f) != (size_t)len) { free(p); p = NULL; }
        else { p[len] = 0; *n = (size_t)len; }
    }
    fclose(f);
    return p;
}

typedef struct { FILE *f; char **names; } out_ctx;

static void write_output(void *user, int i, const char *text, size_t len) {
    (void)len;
    out_ctx *o = user;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "schema", o->names[i]);
    cJSON_AddStringToObject(j, "output", text);
    char *line = cJSON_PrintUnformatted(j);
    if (line) fprintf(o->f, "%s\n", line);
    free(line);
    cJSON_Delete(j);
}

int cmd_bench_structured(int argc, char **argv) {
    const char *tok_path = NULL, *corpus = getenv("TV_SCHEMA_CORPUS"), *out_path = NULL;
    long max_schemas = BS_MAX_SCHEMAS, steps = 200, seed = 0;
    bool verify = false, json = false, instances = false, grammars = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!v) return cli_usage_error("bench structured", "%s needs a value", o); i++; } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(o, "--tokenizer") || !strcmp(o, "-m")) { NEED_VAL(); tok_path = v; }
        else if (!strcmp(o, "--corpus")) { NEED_VAL(); corpus = v; }
        else if (!strcmp(o, "--out")) { NEED_VAL(); out_path = v; }
        else if (!strcmp(o, "--max-schemas")) { NEED_VAL(); if (!cli_parse_long(v, 1, BS_MAX_SCHEMAS, &max_schemas)) return cli_usage_error("bench structured", "--max-schemas: '%s' (1..%d)", v, BS_MAX_SCHEMAS); }
        else if (!strcmp(o, "--steps")) { NEED_VAL(); if (!cli_parse_long(v, 1, 100000, &steps)) return cli_usage_error("bench structured", "--steps: '%s' (1..100000)", v); }
        else if (!strcmp(o, "--seed")) { NEED_VAL(); if (!cli_parse_long(v, 0, 1L << 62, &seed)) return cli_usage_error("bench structured", "--seed: '%s' is not a valid seed", v); }
        else if (!strcmp(o, "--verify")) verify = true;
        else if (!strcmp(o, "--instances")) instances = true;
        else if (!strcmp(o, "--grammars")) grammars = true;
        else if (!strcmp(o, "--json")) json = true;
        else return cli_usage_error("bench structured", "unknown option '%s' (see --help)", o);
#undef NEED_VAL
    }
    if (!tok_path) return cli_usage_error("bench structured", "--tokenizer FILE is required");
    if (corpus && !*corpus) corpus = NULL;
    if (grammars && (!corpus || instances)) return cli_usage_error("bench structured", "--grammars needs --corpus DIR and random walks");
    const char *ext = grammars ? ".gbnf" : ".json";
    strvec names = {0};
    char **texts = NULL;
    size_t *lens = NULL;
    FILE *of = NULL;
    tv_tokenizer *tok = NULL;
    int rc = 1;
    if (corpus) {
        if (!find_files(corpus, ext, &names, 0)) { fprintf(stderr, "tinyvllm bench structured: cannot read %s\n", corpus); goto done; }
        if (!names.n) { fprintf(stderr, "tinyvllm bench structured: no *%s under %s\n", ext, corpus); goto done; }
        qsort(names.v, names.n, sizeof *names.v, path_cmp);
    } else {
        for (size_t i = 0; i < sizeof k_builtin / sizeof *k_builtin; i++) {
            char name[32];
            snprintf(name, sizeof name, "builtin-%zu", i);
            if (!strvec_push(&names, name)) goto oom;
        }
    }
    while (names.n > (size_t)max_schemas) free(names.v[--names.n]);
    texts = calloc(names.n, sizeof *texts);
    lens = calloc(names.n, sizeof *lens);
    if (!texts || !lens) goto oom;
    for (size_t i = 0; i < names.n; i++) {
        if (!corpus) { texts[i] = strdup(k_builtin[i]); lens[i] = strlen(k_builtin[i]); }
        else if (!(texts[i] = slurp(names.v[i], &lens[i]))) { fprintf(stderr, "tinyvllm bench structured: cannot read %s\n", names.v[i]); goto done; }
        if (!texts[i]) goto oom;
    }
    tv_error err = {0};
    if (!(tok = tv_tokenizer_load(tok_path, 0, &err))) { fprintf(stderr, "tinyvllm bench structured: %s\n", err.msg); goto done; }
    if (out_path && !(of = fopen(out_path, "w"))) { fprintf(stderr, "tinyvllm bench structured: cannot write %s\n", out_path); goto done; }
    out_ctx oc = {.f = of, .names = names.v};
    const tv_structured_bench_options bo = {.max_steps = (int)steps, .seed = (uint64_t)seed, .verify = verify, .instances = instances,
                                            .kind = grammars ? TV_CONSTRAINT_GRAMMAR : TV_CONSTRAINT_JSON_SCHEMA,
                                            .on_output = of ? write_output : NULL, .user = &oc};
    tv_structured_bench_result r;
    if (tv_structured_bench(tok, (const char *const *)texts, lens, (int)names.n, &bo, &r, &err)) {
        fprintf(stderr, "tinyvllm bench structured: %s\n", err.msg);
        goto done;
    }
    const double cov = r.n_schemas ? 100.0 * r.n_compiled / r.n_schemas : 0.0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "tokenizer", tok_path);
        cJSON_AddStringToObject(j, "schemas_from", corpus ? corpus : "builtin");
        cJSON_AddNumberToObject(j, "n_vocab", r.n_vocab);
        cJSON_AddNumberToObject(j, "schemas", r.n_schemas);
        cJSON_AddNumberToObject(j, "compiled", r.n_compiled);
        cJSON_AddNumberToObject(j, "completed", r.n_completed);
        cJSON_AddNumberToObject(j, "budget_cut", r.n_budget);
        cJSON_AddStringToObject(j, "tokens_from", instances ? "instances" : "random walks");
        if (instances) {
            cJSON_AddNumberToObject(j, "instances", r.n_tests);
            cJSON_AddNumberToObject(j, "instances_whole", r.n_tests_ok);
            cJSON_AddNumberToObject(j, "instances_refused", r.n_tests_refused);
        }
        cJSON_AddNumberToObject(j, "masks", (double)r.n_masks);
        cJSON_AddNumberToObject(j, "mask_mean_us", r.mask_mean_us);
        cJSON_AddNumberToObject(j, "mask_p50_us", r.mask_p50_us);
        cJSON_AddNumberToObject(j, "mask_p99_us", r.mask_p99_us);
        cJSON_AddNumberToObject(j, "mask_max_us", r.mask_max_us);
        cJSON_AddNumberToObject(j, "compile_p50_ms", r.compile_p50_ms);
        cJSON_AddNumberToObject(j, "compile_p90_ms", r.compile_p90_ms);
        cJSON_AddNumberToObject(j, "class_walks", (double)r.class_walks);
        cJSON_AddNumberToObject(j, "class_local_walks", (double)r.class_local_walks);
        cJSON_AddNumberToObject(j, "class_drops", (double)r.class_drops);
        cJSON_AddNumberToObject(j, "class_entries", (double)r.class_entries);
        cJSON_AddNumberToObject(j, "class_mib", (double)r.class_bytes / (1 << 20));
        if (verify) cJSON_AddNumberToObject(j, "plain_walk_mean_us", r.walk_mean_us);
        cJSON *l = cJSON_AddObjectToObject(j, "llguidance_maskbench");
        cJSON_AddNumberToObject(l, "mask_mean_us", LLG_MASK_MEAN_US);
        cJSON_AddNumberToObject(l, "mask_p50_us", LLG_MASK_P50_US);
        cJSON_AddNumberToObject(l, "mask_p99_us", LLG_MASK_P99_US);
        cJSON_AddNumberToObject(l, "compile_p50_ms", LLG_COMPILE_P50_MS);
        cJSON_AddNumberToObject(l, "passing_pct", LLG_PASSING_PCT);
        char *s = cJSON_Print(j);
        if (s) puts(s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("vocabulary: %d tokens (%s), trie built in %.0f ms\n", r.n_vocab, tok_path, r.vocab_ms);
        printf("schemas: %d (%s), compiled %d (%.1f%%), cut by a budget %d\n", r.n_schemas,
               corpus ? corpus : "built-in set", r.n_compiled, cov, r.n_budget);
        if (instances)
            printf("tokens: MaskBench's valid instances: %d run, %d taken whole, %d stopped at a token outside the mask\n"
                   "  (a property order or spacing the grammar does not generate)\n", r.n_tests, r.n_tests_ok, r.n_tests_refused);
        else printf("tokens: random walks of up to %ld steps, %d completed\n", steps, r.n_completed);
        if (r.n_reasons) printf("not compiled, by reason:\n");
        for (int k = 0; k < r.n_reasons; k++) printf("  %5d  %s\n", r.reason_n[k], r.reason[k]);
        printf("\n%-22s %12s %14s\n", "", "tinyvllm", "llguidance*");
        printf("%-22s %12.1f %14.0f\n", "mask mean (us)", r.mask_mean_us, LLG_MASK_MEAN_US);
        printf("%-22s %12.1f %14.0f\n", "mask p50 (us)", r.mask_p50_us, LLG_MASK_P50_US);
        printf("%-22s %12.1f %14.0f\n", "mask p99 (us)", r.mask_p99_us, LLG_MASK_P99_US);
        printf("%-22s %12.1f %14s\n", "mask max (us)", r.mask_max_us, "");
        printf("%-22s %12.2f %14.2f\n", "compile p50 (ms)", r.compile_p50_ms, LLG_COMPILE_P50_MS);
        printf("%-22s %11.1f%% %13.1f%%\n", "schemas compiled", cov, LLG_PASSING_PCT);
        printf("token steps (mask + commit): %zu, one thread%s\n", r.n_masks, verify ? "; every mask equal to the plain trie walk's" : "");
        if (verify) printf("plain trie walk (no token classes): mean %.1f us\n", r.walk_mean_us);
        printf("token classes: %llu trie walks for shared keys, %llu for grammars' own; %zu shared entries (%.1f MiB); "
               "%llu tables dropped over budget\n", (unsigned long long)r.class_walks, (unsigned long long)r.class_local_walks,
               r.class_entries, (double)r.class_bytes / (1 << 20), (unsigned long long)r.class_drops);
        printf("* llguidance 0.7.10 on MaskBench (11,306 JSONSchemaBench schemas, Llama-3 vocabulary), from\n"
               "  github.com/guidance-ai/jsonschemabench maskbench/README.md; compare on the same corpus and vocabulary.\n");
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "tinyvllm bench structured: out of memory\n");
done:
    if (of && fclose(of) && !rc) { fprintf(stderr, "tinyvllm bench structured: writing %s failed\n", out_path); rc = 1; }
    tv_tokenizer_free(tok);
    for (size_t i = 0; texts && i < names.n; i++) free(texts[i]);
    free(texts); free(lens);
    for (size_t i = 0; i < names.n; i++) free(names.v[i]);
    free(names.v);
    return rc;
}
