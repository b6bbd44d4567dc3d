// cmd_bench.c — `tinyvllm bench`: prompt processing (pp), single-stream generation (tg) and batched
// decode throughput through the public engine API, optionally as fractions of the machine's
// measured limits (--roofline) and side by side with a peer's own benchmark (--compare).
//
// What is timed (wall clock, time_ms):
//   pp     one request, P random prompt ids, max_tokens 1: add -> finished. tok/s = P / time.
//   tg     one request, a 1-token prompt, N tokens (ignore_eos, greedy): add -> finished, N
//          forward passes of one token each (as llama-bench's tgN). tok/s = N / time.
//   batch  as llama-batched-bench -npp P -ntg N -npl B (its S_TG): B requests of P random prompt
//          ids (--batch-prompt P, default 128), prefilled together (one step when B * 128 <= BENCH_BATCH_PREFILL_MAX tokens),
//          then N decode steps in which every sequence decodes one token (each request asks for
//          N + 1 tokens: the first comes from the prefill). Only those full-batch decode steps are
//          timed (engine step in -> out, sampling included): tok/s = B * N / their time. A batch
//          whose prompts do not fit one step starts staggered; its steps with fewer than B
//          decoding sequences (before the last prompt is in, after the first sequence ends) are
//          left out the same way, and when no step had all B (the first sequences end before the
//          last prompt is in) every step after the last prompt counts.
//          With --json-schema FILE the same batch runs again right after, every sequence
//          constrained by the schema (token masks from the mask thread, applied in the sampler):
//          the constrained / free ratio is structured output's cost. The schema must not let a
//          sequence end within N tokens (bench/structured_e2e.json cannot), or the runs differ.
//   --prompt-file FILE: tg's prompt is the file's text (tokenized with BOS, special tokens parsed)
//          instead of one random id; tok/s then counts only the tokens after the first, over the
//          time after it (the prompt's prefill is not generation). An input that repeats makes
//          n-gram speculation visible.
// Every repetition uses fresh random prompts (different seeds), so no prefix cache can help.
// One warm-up request runs first (pages the mapped weights in, wakes the threads).
//
// Speculative decoding (--spec, --draft-model): tg and batch run twice per repetition, on a second
// engine with speculation off and on the speculating one, in alternating order, with the same
// prompts (greedy: the same tokens), so the speedup is measured in the same run and on the same
// machine state. The acceptance printed beside it is that of the speculating tg (and batch) runs
// only: accepted / proposed tokens, and the mean acceptance length 1 + accepted / verifications
// (tokens appended per verification, vLLM's mean_acceptance_length).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench_load.h"
#include "cli.h"
#include "cli_dist.h"
#include "cli_opts.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

#define BENCH_BATCH_PROMPT 128   // default prompt tokens per sequence in the batch test (fewer when
                                 // the model's context cannot hold 128 + N + 1; reported as batch_prompt)
#define BENCH_BATCH_PREFILL_MAX 8192   // batch prompt tokens prefilled in one step at most
#define BENCH_MAX_REPS 100
#define BENCH_MAX_PEERS 4

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm bench -m MODEL [options]\n"
            "       tinyvllm bench structured --tokenizer FILE [--corpus DIR] ...  (structured-output mask\n"
            "                    times beside llguidance's MaskBench; see tinyvllm bench structured --help)\n"
            "  -p P              prompt tokens for the pp test (default 512; 0 = skip)\n"
            "  -n N              generated tokens for the tg test, decode steps of the batch test (default\n"
            "                    128; 0 = skip tg)\n"
            "  --batch B         also measure decode throughput of B sequences with P-token prompts: N\n"
            "                    steps after the prompts, as llama-batched-bench -npp P -ntg N -npl B\n"
            "  --batch-prompt P  the batch test's prompt tokens per sequence (default %d)\n"
            "  -r, --reps REPS   repetitions; the median is reported with min and max (default 3)\n"
            "  --roofline        measure the machine's limits with the same threads; report fractions\n"
            "  --compare NAME=CMD  run a peer's benchmark (llama-bench -o json, or its markdown table)\n"
            "                    and print one side-by-side table (repeatable, up to %d)\n"
            "  --prompt-file FILE  tg's prompt: this file's text (tokenized, BOS added) instead of one random\n"
            "                    token; tg then times the tokens after the first (a text that repeats shows\n"
            "                    n-gram speculation). With --spec or --draft-model, tg and --batch also run\n"
            "                    with speculation off in the same run: the speedup and acceptance are printed\n"
            "  --json-schema FILE  with --batch: run the batch again with every sequence constrained by\n"
            "                    this JSON Schema and report constrained / free throughput (the schema\n"
            "                    must not end within -n tokens; bench/structured_e2e.json is one)\n"
            "  --json            print one JSON object instead of the table (also -o json, --output json;\n"
            "                    -o md is the table)\n"
            "  --load            measure loading instead: GB/s of weight bytes reaching the kernels (warm;\n"
            "                    cold where the page cache can be dropped) against the page cache's read\n"
            "                    bandwidth, conversion GB/s at load (--quantize TYPE, default Q8_0), and a\n"
            "                    start from the prepared-weight cache against a cold repack\n",
            BENCH_BATCH_PROMPT, BENCH_MAX_PEERS);
    cli_model_usage(f);
    fputs(CLI_HELP_USAGE, f);
}

// ---- statistics over repetitions ----
typedef struct { double v[BENCH_MAX_REPS]; int n; } series;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double s_median(const series *s) {
    if (s->n == 0) return 0.0;
    double t[BENCH_MAX_REPS];
    memcpy(t, s->v, (size_t)s->n * sizeof *t);
    qsort(t, (size_t)s->n, sizeof *t, cmp_double);
    return s->n % 2 ? t[s->n / 2] : 0.5 * (t[s->n / 2 - 1] + t[s->n / 2]);
}
static double s_min(const series *s) { double m = INFINITY; for (int i = 0; i < s->n; i++) m = fmin(m, s->v[i]); return s->n ? m : 0.0; }
static double s_max(const series *s) { double m = 0.0; for (int i = 0; i < s->n; i++) m = fmax(m, s->v[i]); return m; }

// ---- one timed run of n_req identical-shape requests ----
typedef struct {
    double t_total_ms;         // add -> all finished
    double t_decode_ms;        // summed time of the full-batch decode steps (every request decodes one token)
    uint64_t n_decode_tokens;  // tokens generated in those steps
    uint64_t n_generated;      // tokens generated in all
    // KV snapshot at the last step where all n_req sequences were running
    int64_t kv_slots_alloc, kv_slots_used;
    bool has_kv;
} run_result;

// gen_at_step: n_generated before step `step` (the engine gives one output record per token, so a
// sequence that accepted k speculated tokens, or ran decode_steps rounds, appears k times in a step).
typedef struct { int n_prompt; int n_generated; bool done; uint64_t step; int gen_at_step; } req_state;

// prompt: NULL (each request gets n_prompt random ids from seed), or n_prompt ids every request
// starts with. schema: NULL, or a JSON Schema every request is constrained by (each must run
// max_tokens).
static tv_status run_requests(tv_engine *e, int n_req, const int32_t *prompt, int n_prompt, int max_tokens, int32_t n_vocab,
                              uint64_t seed, const char *schema, run_result *r, tv_error *err) {
    tv_status st = TV_OK;
    memset(r, 0, sizeof *r);
    int32_t *ids = malloc((size_t)n_prompt * sizeof *ids);   // (n_prompt) prompt of the request being added
    req_state *rs = calloc((size_t)n_req, sizeof *rs);        // (n_req)
    if (!ids || !rs) { st = tv_error_set(err, TV_ERR_NOMEM, "out of memory"); goto cleanup; }
    unsigned rng = (unsigned)seed;   // random prompt ids: no prefix cache can help
    double t0 = cli_time_ms();
    for (int q = 0; q < n_req; q++) {
        for (int i = 0; i < n_prompt; i++) ids[i] = prompt ? prompt[i] : (int32_t)((unsigned)rand_r(&rng) % (unsigned)n_vocab);
        tv_request_params rp;
        tv_request_params_default(&rp);
        rp.prompt_ids = ids;
        rp.n_prompt = (size_t)n_prompt;
        rp.add_special = false;
        rp.sampling.temperature = 0.0f;
        rp.max_tokens = max_tokens;
        rp.ignore_eos = true;
        if (schema) {
            rp.constraint = TV_CONSTRAINT_JSON_SCHEMA;
            rp.constraint_spec = schema;
        }
        rp.user = &rs[q];
        rs[q].n_prompt = n_prompt;
        if ((st = tv_engine_add_request(e, &rp, NULL, err))) goto cleanup;
    }
    int n_done = 0, n_started = 0;
    double t_tail_ms = 0.0;       // steps after every request started (the window of a staggered batch)
    uint64_t n_tail_tokens = 0;
    for (uint64_t step = 1; n_done < n_req; step++) {
        const tv_request_output *outs;
        int n_outs;
        const double ts0 = cli_time_ms();
        if ((st = tv_engine_step(e, &outs, &n_outs, err))) goto cleanup;
        const double ts1 = cli_time_ms();
        bool any_finished = false;
        const bool was_started = n_started == n_req;   // every request had its first token before this step
        int n_decoded = 0;         // requests that decoded (not prefilled) this step, each counted once
        uint64_t n_step_tokens = 0;
        for (int i = 0; i < n_outs; i++) {
            req_state *q = outs[i].user;
            if (!q) continue;
            if (q->step != step) {   // q's first record this step
                q->step = step;
                q->gen_at_step = q->n_generated;
                if (q->n_generated > 0 && outs[i].n_new > 0) n_decoded++;
            }
            if (q->gen_at_step > 0) n_step_tokens += (uint64_t)outs[i].n_new;
            if (q->n_generated == 0 && outs[i].n_generated > 0) n_started++;
            else if (was_started) n_tail_tokens += (uint64_t)outs[i].n_new;
            q->n_generated = outs[i].n_generated;
            if (outs[i].finish != TV_FINISH_NONE && !q->done) {
                q->done = true;
                n_done++;
                any_finished = true;
                if (outs[i].finish == TV_FINISH_ABORT) { st = tv_error_set(err, TV_ERR_STATE, "a benchmark request was aborted"); goto cleanup; }
                if (outs[i].finish == TV_FINISH_ERROR) { st = tv_error_set(err, outs[i].error->code, "%s", outs[i].error->msg); goto cleanup; }
                if (schema && outs[i].n_generated < max_tokens) {   // a smaller batch would not compare
                    st = tv_error_set(err, TV_ERR_STATE, "a constrained request ended after %d of %d tokens (its schema let "
                                      "it end: give one that cannot end within -n)", outs[i].n_generated, max_tokens);
                    goto cleanup;
                }
            }
        }
        if (n_decoded == n_req) {   // a full-batch decode step
            r->t_decode_ms += ts1 - ts0;
            r->n_decode_tokens += n_step_tokens;
        } else if (was_started) {
            t_tail_ms += ts1 - ts0;
        }
        tv_engine_stats es;
        tv_engine_get_stats(e, &es);
        if (!any_finished && es.n_running == n_req) {
            int64_t used = 0;
            for (int q = 0; q < n_req; q++) used += rs[q].n_prompt + rs[q].n_generated;
            r->kv_slots_alloc = (es.n_blocks_total - es.n_blocks_free) * es.block_size;
            r->kv_slots_used = used;
            r->has_kv = true;
        }
        if (!tv_engine_has_work(e) && n_done < n_req) { st = tv_error_set(err, TV_ERR_STATE, "engine idle with requests unfinished"); goto cleanup; }
    }
    double t1 = cli_time_ms();
    r->t_total_ms = t1 - t0;
    if (r->n_decode_tokens == 0 && n_tail_tokens > 0) {   // never a full batch: prompts staggered past -n
        r->t_decode_ms = t_tail_ms;
        r->n_decode_tokens = n_tail_tokens;
    }
    for (int q = 0; q < n_req; q++) r->n_generated += (uint64_t)rs[q].n_generated;
cleanup:
    free(ids);
    free(rs);
    return st;
}

// ---- peers ----
typedef struct {
    char name[64];
    const char *cmd;
    bool ok;
    double pp_tok_s, tg_tok_s;   // 0 when the peer did not report the test
    int pp_n, tg_n;              // the peer's prompt / generation sizes
} peer;

// llama-bench JSON: an array (or one object per line with -o jsonl) of runs with n_prompt, n_gen,
// avg_ts (and n_depth in newer builds). The first pp-only and tg-only runs at depth 0 are taken.
static void peer_take_json_run(peer *p, const cJSON *o) {
    const cJSON *np = cJSON_GetObjectItemCaseSensitive(o, "n_prompt");
    const cJSON *ng = cJSON_GetObjectItemCaseSensitive(o, "n_gen");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "avg_ts");
    const cJSON *depth = cJSON_GetObjectItemCaseSensitive(o, "n_depth");   // absent in older builds
    if (!cJSON_IsNumber(np) || !cJSON_IsNumber(ng) || !cJSON_IsNumber(ts) || !(ts->valuedouble > 0)) return;
    if (cJSON_IsNumber(depth) && depth->valuedouble != 0) return;   // runs at a prefilled depth
    if (np->valuedouble > 0 && ng->valuedouble == 0 && !p->pp_tok_s) { p->pp_tok_s = ts->valuedouble; p->pp_n = np->valueint; p->ok = true; }
    if (np->valuedouble == 0 && ng->valuedouble > 0 && !p->tg_tok_s) { p->tg_tok_s = ts->valuedouble; p->tg_n = ng->valueint; p->ok = true; }
}

static void peer_parse_json(peer *p, const char *text) {
    cJSON *root = cJSON_Parse(text);
    if (root) {
        if (cJSON_IsArray(root)) {
            const cJSON *o;
            cJSON_ArrayForEach(o, root) peer_take_json_run(p, o);
        } else {
            peer_take_json_run(p, root);
        }
        cJSON_Delete(root);
        return;
    }
    // JSON lines
    const char *s = text;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char *line = strndup(s, len);
        if (line) {
            cJSON *o = cJSON_Parse(line);
            if (o) { peer_take_json_run(p, o); cJSON_Delete(o); }
            free(line);
        }
        s += len + (nl ? 1 : 0);
    }
}

// llama-bench markdown: | model | size | params | backend | threads | test | t/s |, where test is
// "pp512" / "tg128" ("pp 512" in older builds; " @ dN" with a prefilled depth) and t/s is
// "123.45 ± 1.23". The first pp and tg rows at depth 0 are taken.
static void peer_parse_markdown(peer *p, const char *text) {
    const char *s = text;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char *line = strndup(s, len);
        s += len + (nl ? 1 : 0);
        if (!line) return;
        char *cells[32];
        int n_cells = 0;
        char *c = line;
        while (*c == ' ') c++;
        if (*c == '|') {
            for (char *tok = strtok(c + 1, "|"); tok && n_cells < 32; tok = strtok(NULL, "|")) {
                while (*tok == ' ') tok++;
                char *end = tok + strlen(tok);
                while (end > tok && (end[-1] == ' ' || end[-1] == '\r')) *--end = 0;
                cells[n_cells++] = tok;
            }
        }
        for (int i = 0; i + 1 < n_cells; i++) {
            const char *t = cells[i];
            bool is_pp = !strncmp(t, "pp", 2), is_tg = !strncmp(t, "tg", 2);
            if (!is_pp && !is_tg) continue;
            const char *d = t + 2;
            while (*d == ' ') d++;             // older builds print "pp 512"
            if (*d < '0' || *d > '9') continue;
            char *rest;
            long n = strtol(d, &rest, 10);
            while (*rest == ' ') rest++;
            // skip combined tests ("pp512+tg128") and ones at a prefilled depth ("pp512 @ d512")
            if (*rest == '+' || (*rest == '@' && strcmp(rest, "@ d0") != 0)) break;
            char *end;
            double v = strtod(cells[n_cells - 1], &end);
            if (end == cells[n_cells - 1] || !(v > 0)) break;
            if (is_pp && !p->pp_tok_s) { p->pp_tok_s = v; p->pp_n = (int)n; p->ok = true; }
            if (is_tg && !p->tg_tok_s) { p->tg_tok_s = v; p->tg_n = (int)n; p->ok = true; }
            break;
        }
        free(line);
    }
}

// Runs the peer's command through the shell (the user's own command line), parses its stdout.
static bool peer_run(peer *p, tv_error *err) {
    FILE *f = popen(p->cmd, "r");
    if (!f) { tv_error_set(err, TV_ERR_IO, "--compare %s: cannot run '%s'", p->name, p->cmd); return false; }
    char *out = NULL;
    size_t len = 0, cap = 0;
    char buf[4096];
    size_t n;
    bool ok = true;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (!cli_append(&out, &len, &cap, buf, n)) { ok = false; break; }
    int status = pclose(f);
    if (!ok) { free(out); tv_error_set(err, TV_ERR_NOMEM, "--compare %s: out of memory", p->name); return false; }
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(out);
        tv_error_set(err, TV_ERR_IO, "--compare %s: '%s' failed (exit status %d)", p->name, p->cmd,
                status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    const char *t = out ? out : "";
    while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r') t++;
    if (*t == '[' || *t == '{') peer_parse_json(p, t);
    else peer_parse_markdown(p, t);
    free(out);
    if (!p->ok) { tv_error_set(err, TV_ERR_FORMAT, "--compare %s: no pp/tg results found in its output", p->name); return false; }
    return true;
}

static cJSON *num_or_null(bool has, double v) { return has ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

typedef struct bench_args {
    cli_model_opts mo;
    long n_prompt, n_gen, batch, batch_prompt, reps;
    bool json, roofline, load;
    const char *schema_path;   // --json-schema
    char *schema;              // its text
    const char *prompt_path;   // --prompt-file
    char *prompt_text;         // its text (prompt_len bytes)
    size_t prompt_len;
    peer peers[BENCH_MAX_PEERS];
    int n_peers;
} bench_args;

// Fills a from the command line; 0, -1 after --help, or the exit status of a usage error.
static int parse_args(int argc, char **argv, bench_args *a) {
    a->n_prompt = 512;
    a->n_gen = 128;
    a->batch_prompt = BENCH_BATCH_PROMPT;
    a->reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = cli_model_opt("bench", argc, argv, &i, &a->mo);
        if (r == 2) return 2;
        if (r) continue;
#define NEED_VAL() do { if (!v) return cli_usage_error("bench", "%s needs a value", o); i++; } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(o, "-p")) { NEED_VAL(); if (!cli_parse_long(v, 0, 1L << 20, &a->n_prompt)) return cli_usage_error("bench", "-p: '%s' is not a valid token count", v); }
        else if (!strcmp(o, "-n")) { NEED_VAL(); if (!cli_parse_long(v, 0, 1L << 20, &a->n_gen)) return cli_usage_error("bench", "-n: '%s' is not a valid token count", v); }
        else if (!strcmp(o, "--batch")) { NEED_VAL(); if (!cli_parse_long(v, 1, 4096, &a->batch)) return cli_usage_error("bench", "--batch: '%s' is not a valid sequence count (1..4096)", v); }
        else if (!strcmp(o, "--batch-prompt")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1L << 20, &a->batch_prompt)) return cli_usage_error("bench", "--batch-prompt: '%s' is not a valid token count", v); }
        else if (!strcmp(o, "-r") || !strcmp(o, "--reps")) { NEED_VAL(); if (!cli_parse_long(v, 1, BENCH_MAX_REPS, &a->reps)) return cli_usage_error("bench", "-r: '%s' is not a valid count (1..%d)", v, BENCH_MAX_REPS); }
        else if (!strcmp(o, "--json-schema")) { NEED_VAL(); a->schema_path = v; }
        else if (!strcmp(o, "--prompt-file")) { NEED_VAL(); a->prompt_path = v; }
        else if (!strcmp(o, "--roofline")) a->roofline = true;
        else if (!strcmp(o, "--load")) a->load = true;
        else if (!strcmp(o, "--json")) a->json = true;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            NEED_VAL();
            if (strcmp(v, "json") && strcmp(v, "md")) return cli_usage_error("bench", "%s: '%s' (json or md)", o, v);
            a->json = !strcmp(v, "json");
        }
        else if (!strcmp(o, "--compare")) {
            NEED_VAL();
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) return cli_usage_error("bench", "--compare: expected NAME=CMD, got '%s'", v);
            if (a->n_peers == BENCH_MAX_PEERS) return cli_usage_error("bench", "--compare: at most %d peers", BENCH_MAX_PEERS);
            if (eq - v >= (long)sizeof a->peers[0].name) return cli_usage_error("bench", "--compare: name too long in '%s'", v);
            peer *p = &a->peers[a->n_peers++];
            *p = (peer){ .cmd = eq + 1 };
            memcpy(p->name, v, (size_t)(eq - v));
        }
        else return cli_usage_error("bench", "unknown option '%s' (see --help)", o);
#undef NEED_VAL
    }
    if (!a->mo.model_path) return cli_usage_error("bench", "-m MODEL is required");
    if (a->batch > 0 && a->n_gen < 2) return cli_usage_error("bench", "--batch needs -n >= 2 (decode steps to time)");
    if (a->schema_path && a->batch == 0) return cli_usage_error("bench", "--json-schema needs --batch B");
    if (a->batch_prompt != BENCH_BATCH_PROMPT && a->batch == 0) return cli_usage_error("bench", "--batch-prompt needs --batch B");
    if (a->prompt_path && a->n_gen < 2) return cli_usage_error("bench", "--prompt-file needs -n >= 2 (tokens after the first to time)");
    if (a->schema_path) {
        size_t n;
        if (!(a->schema = cli_read_file("bench", a->schema_path, CLI_MAX_JSON, &n))) return 1;
        tv_error err = {0};
        if (tv_constraint_check(TV_CONSTRAINT_JSON_SCHEMA, a->schema, &err) != TV_OK) {
            free(a->schema);
            a->schema = NULL;
            return cli_usage_error("bench", "--json-schema %s: %s", a->schema_path, err.msg);
        }
    }
    if (a->prompt_path && !(a->prompt_text = cli_read_file("bench", a->prompt_path, CLI_MAX_JSON, &a->prompt_len))) {
        free(a->schema);
        a->schema = NULL;
        return 1;
    }
    return 0;
}

// Speculation in the runs that count: the engine's counters over them.
typedef struct spec_tally {
    uint64_t drafts, proposed, accepted;   // verifications run, tokens proposed, tokens accepted
    uint64_t rounds_spec, rounds_plain;    // decode rounds the load gate let speculate / kept plain
    double pred_s, real_s;                 // the speculative rounds' seconds as the gate's model predicted / as taken
    uint64_t timed_tokens;                 // tokens the tok/s were measured over (run_result.n_decode_tokens)
} spec_tally;

static void tally_add(spec_tally *t, const tv_engine_stats *before, const tv_engine_stats *after) {
    t->drafts += after->n_spec_drafts - before->n_spec_drafts;
    t->proposed += after->n_spec_draft_tokens - before->n_spec_draft_tokens;
    t->accepted += after->n_spec_accepted_tokens - before->n_spec_accepted_tokens;
    t->rounds_spec += after->n_spec_rounds - before->n_spec_rounds;
    t->rounds_plain += after->n_spec_rounds_plain - before->n_spec_rounds_plain;
    t->pred_s += after->spec_predicted_s - before->spec_predicted_s;
    t->real_s += after->spec_realized_s - before->spec_realized_s;
}

// One test's shape: n_req requests of n_prompt tokens (prompt, or random ids from seed), n_gen
// tokens each; tok/s over all generated tokens and the whole time, or (after_first) over the tokens
// of the steps in which every request decodes and those steps' time (run_requests' decode window).
typedef struct bench_test {
    int n_req, n_prompt, n_gen;
    const int32_t *prompt;
    uint64_t seed;
    bool after_first;
} bench_test;

// Runs t on e: its tok/s into s, e's speculation counters over the run added to tally (NULL: not kept).
static tv_status run_test(tv_engine *e, const bench_test *t, int32_t n_vocab, series *s, spec_tally *tally, run_result *rr,
                          tv_error *err) {
    tv_engine_stats before, after;
    tv_engine_get_stats(e, &before);
    tv_status st = run_requests(e, t->n_req, t->prompt, t->n_prompt, t->n_gen, n_vocab, t->seed, NULL, rr, err);
    if (st) return st;
    tv_engine_get_stats(e, &after);
    if (tally) {
        tally_add(tally, &before, &after);
        tally->timed_tokens += rr->n_decode_tokens;
    }
    s->v[s->n++] = t->after_first ? (rr->t_decode_ms > 0 ? (double)rr->n_decode_tokens / (rr->t_decode_ms * 1e-3) : 0.0)
                                  : (double)rr->n_generated / (rr->t_total_ms * 1e-3);
    return TV_OK;
}

// Repetition rep of t on e and, when plain is not NULL (speculation on), on plain too: plain first
// in even repetitions, second in odd ones (drift of the machine falls on both alike). rr: e's run.
static tv_status run_pair(tv_engine *plain, tv_engine *e, long rep, const bench_test *t, int32_t n_vocab, series *s_plain,
                          series *s, spec_tally *tally, run_result *rr, tv_error *err) {
    run_result rp;
    tv_status st;
    if (plain && rep % 2 == 0 && (st = run_test(plain, t, n_vocab, s_plain, NULL, &rp, err))) return st;
    if ((st = run_test(e, t, n_vocab, s, tally, rr, err))) return st;
    if (plain && rep % 2 == 1 && (st = run_test(plain, t, n_vocab, s_plain, NULL, &rp, err))) return st;
    return TV_OK;
}

// Everything a run measured.
typedef struct bench_results {
    tv_model_info info;
    const char *model_name;
    double load_ms, peak_rss_mb;
    double pp_boundary_bytes, pp_reply_bytes;   // --pp: bytes per generated token per stage boundary, of replies to rank 0
    int n_threads, n_ctx, batch_prompt;
    char kernels[32];
    tv_spec_method spec;      // the engine's speculative decoding proposer (--spec, --draft-model)
    int spec_tokens;          // ... its tokens per verification at most
    int n_prompt_file;        // --prompt-file: its tokens (tg's prompt)
    series pp, tg, bd;          // tok/s per repetition
    series tg_plain, bd_plain;  // with speculation: the same tests on an engine without it
    spec_tally tg_spec, bd_spec;   // with speculation: the counters over the speculating tg / batch runs
    double pp_linear_ms, pp_attn_ms;   // hybrid models: the pp runs' time in linear-attention / full-attention layers (sum)
    double pp_gdn_ms, pp_attn_kernel_ms;   // within them: the DeltaNet kernels (conv + delta rule), the attention kernels
    series bc;                  // --json-schema: the constrained batch's tok/s per repetition
    uint64_t n_masks, n_masks_overlapped;   // its token masks, and those filled during the forward pass
    run_result kv_run;          // the batch run whose KV snapshot is reported
    tv_engine_stats es;
    tv_roofline rl;             // when --roofline
    double pp_bound, tg_bound;  // tok/s the roofline allows (0 without it)
} bench_results;

// The progress line before a test of repetition rep: which test, and the medians so far.
static void show_step(cli_progress *bar, const bench_args *a, const bench_results *r, long rep, const char *test) {
    char sofar[96] = "";
    int n = 0;
    if (r->pp.n) n += snprintf(sofar + n, sizeof sofar - (size_t)n, ", pp %.1f", s_median(&r->pp));
    if (r->tg.n) n += snprintf(sofar + n, sizeof sofar - (size_t)n, ", tg %.1f", s_median(&r->tg));
    if (r->bd.n) snprintf(sofar + n, sizeof sofar - (size_t)n, ", batch %.1f", s_median(&r->bd));
    long size = !strcmp(test, "pp") ? a->n_prompt : !strcmp(test, "tg") ? a->n_gen : a->batch;   // batch, constrained batch
    cli_progress_show(bar, "bench: rep %ld/%ld: running %s%ld%s%s%s", rep + 1, a->reps, test, size,
                      *sofar ? " | so far: " : "", *sofar ? sofar + 2 : "", *sofar ? " tok/s" : "");
}

// Loads the model, runs the warm-up and the repetitions, then (--roofline) the machine's probes.
static tv_status measure(const bench_args *a, bench_results *r, tv_model **m, tv_error *err) {
    tv_engine *e = NULL, *plain = NULL;   // plain: speculation's baseline (only with speculation)
    int32_t *prompt = NULL;               // (n_prompt_file) --prompt-file's tokens
    size_t n_prompt_file = 0;
    tv_status st;
    cli_progress bar;
    cli_progress_begin(&bar, a->mo.quiet);
    cli_progress_show(&bar, "bench: loading %s", a->mo.model_path);
    double t0 = cli_time_ms();
    if ((st = cli_load_model(&a->mo, m, err))) goto done;
    r->load_ms = cli_time_ms() - t0;
    tv_model_get_info(*m, &r->info);
    r->model_name = tv_model_name(*m) ? tv_model_name(*m) : a->mo.model_path;
    const int32_t n_vocab = tv_model_n_vocab(*m);
    r->n_ctx = tv_model_n_ctx(*m);
    if (a->prompt_text) {
        if (!tv_model_tokenizer(*m)) {
            st = tv_error_set(err, TV_ERR_INVALID, "--prompt-file: %s has no tokenizer (pass --tokenizer FILE)", a->mo.model_path);
            goto done;
        }
        if ((st = tv_tokenize(tv_model_tokenizer(*m), a->prompt_text, a->prompt_len, true, true, &prompt, &n_prompt_file, err)))
            goto done;
        if (n_prompt_file == 0 || n_prompt_file > (size_t)r->n_ctx) {
            st = tv_error_set(err, TV_ERR_RANGE, "--prompt-file %s: %zu tokens (the model's context holds %d)", a->prompt_path,
                              n_prompt_file, r->n_ctx);
            goto done;
        }
        r->n_prompt_file = (int)n_prompt_file;
    }
    const int tg_prompt = prompt ? r->n_prompt_file : 1;
    r->batch_prompt = (int)a->batch_prompt;
    if (a->batch > 0 && r->batch_prompt + a->n_gen + 2 > r->n_ctx) r->batch_prompt = (int)(r->n_ctx - a->n_gen - 2);
    if (a->batch > 0 && r->batch_prompt < 1) {
        st = tv_error_set(err, TV_ERR_RANGE, "--batch: -n %ld leaves no room for a prompt in the model's context of %d tokens", a->n_gen, r->n_ctx);
        goto done;
    }
    int longest = (int)(a->n_prompt > r->batch_prompt || a->batch == 0 ? a->n_prompt : r->batch_prompt);
    if (a->n_gen > 0 && tg_prompt > longest) longest = tg_prompt;
    if ((long)longest + (a->n_gen > 1 ? a->n_gen : 1) + 2 > r->n_ctx || a->n_gen + 3 > r->n_ctx) {
        st = tv_error_set(err, TV_ERR_RANGE, "-p %ld / -n %ld do not fit the model's context of %d tokens", a->n_prompt, a->n_gen, r->n_ctx);
        goto done;
    }
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.max_num_seqs = a->batch > 1 ? (int)a->batch : 1;
    ec.max_batched_tokens = a->n_prompt > 512 ? (int)a->n_prompt : 512;   // a P-token prompt in one step
    if (a->batch * r->batch_prompt > ec.max_batched_tokens && a->batch * r->batch_prompt <= BENCH_BATCH_PREFILL_MAX)
        ec.max_batched_tokens = (int)a->batch * r->batch_prompt;           // the batch's prompts in one step
    ec.max_model_len = longest + (int)(a->n_gen > 1 ? a->n_gen : 1) + 2;
    tv_engine_config ec_plain = ec;
    if ((st = cli_create_engine(&a->mo, *m, &ec, &e, err))) goto done;
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    r->n_threads = lim.n_threads;
    r->spec = lim.spec;
    r->spec_tokens = lim.spec_tokens;
    snprintf(r->kernels, sizeof r->kernels, "%s", tv_engine_cpu_path(e));
    if (r->spec != TV_SPEC_NONE && a->mo.pp <= 1 && (a->n_gen > 0 || a->batch > 0)) {   // the baseline, same model
        cli_model_opts po = a->mo;
        po.spec = TV_SPEC_NONE;
        po.spec_tokens = 0;
        po.spec_always = false;
        po.draft_layers = 0;
        po.draft_path = NULL;
        if ((st = cli_create_engine(&po, *m, &ec_plain, &plain, err))) goto done;
    }

    run_result rr;   // warm-up: pages the weights in, wakes the pool
    int n_warm = longest < 32 ? longest : 32;
    cli_progress_show(&bar, "bench: warm-up");
    if ((st = run_requests(e, 1, NULL, n_warm < 1 ? 1 : n_warm, 2, n_vocab, 1, NULL, &rr, err))) goto done;
    if (plain && (st = run_requests(plain, 1, NULL, n_warm < 1 ? 1 : n_warm, 2, n_vocab, 1, NULL, &rr, err))) goto done;
    for (long rep = 0; rep < a->reps; rep++) {
        uint64_t seed = 1000 + 17 * (uint64_t)rep;
        if (a->n_prompt > 0) {
            show_step(&bar, a, r, rep, "pp");
            tv_engine_stats s0, s1;
            tv_engine_get_stats(e, &s0);
            if ((st = run_requests(e, 1, NULL, (int)a->n_prompt, 1, n_vocab, seed, NULL, &rr, err))) goto done;
            tv_engine_get_stats(e, &s1);
            r->pp.v[r->pp.n++] = (double)a->n_prompt / (rr.t_total_ms * 1e-3);
            r->pp_linear_ms += s1.t_linear_layers_ms - s0.t_linear_layers_ms;
            r->pp_attn_ms += s1.t_attn_layers_ms - s0.t_attn_layers_ms;
            r->pp_gdn_ms += s1.t_gdn_kernels_ms - s0.t_gdn_kernels_ms;
            r->pp_attn_kernel_ms += s1.t_attn_kernels_ms - s0.t_attn_kernels_ms;
        }
        if (a->n_gen > 0) {
            show_step(&bar, a, r, rep, "tg");
            const bench_test t = {1, tg_prompt, (int)a->n_gen, prompt, seed + 1, prompt != NULL};
            if ((st = run_pair(plain, e, rep, &t, n_vocab, &r->tg_plain, &r->tg, &r->tg_spec, &rr, err))) goto done;
        }
        if (a->batch > 0) {
            show_step(&bar, a, r, rep, "batch");
            const bench_test t = {(int)a->batch, r->batch_prompt, (int)a->n_gen + 1, NULL, seed + 2, true};
            if ((st = run_pair(plain, e, rep, &t, n_vocab, &r->bd_plain, &r->bd, &r->bd_spec, &rr, err))) goto done;
            if (rr.has_kv) r->kv_run = rr;
        }
        if (a->batch > 0 && a->schema) {   // the same batch (same prompts), every sequence constrained
            show_step(&bar, a, r, rep, "constrained batch");
            tv_engine_stats before, after;
            tv_engine_get_stats(e, &before);
            if ((st = run_requests(e, (int)a->batch, NULL, r->batch_prompt, (int)a->n_gen + 1, n_vocab, seed + 2, a->schema, &rr, err))) goto done;
            tv_engine_get_stats(e, &after);
            r->bc.v[r->bc.n++] = rr.t_decode_ms > 0 ? (double)rr.n_decode_tokens / (rr.t_decode_ms * 1e-3) : 0.0;
            r->n_masks += after.n_masks - before.n_masks;
            r->n_masks_overlapped += after.n_masks_overlapped - before.n_masks_overlapped;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;   // ru_maxrss is KiB on Linux
    tv_engine_get_stats(e, &r->es);
    double pp_bytes, pp_replies, pp_rounds;   // the pipeline's traffic over every run (warm-up included)
    if (cli_dist_bytes(&pp_bytes, &pp_replies, &pp_rounds) && r->es.n_generated_tokens) {
        r->pp_boundary_bytes = pp_bytes / (double)r->es.n_generated_tokens;
        r->pp_reply_bytes = pp_replies / (double)r->es.n_generated_tokens;
    }
    cli_free_engine(e);   // their pools would compete with the roofline probes
    cli_free_engine(plain);
    e = plain = NULL;
    if (a->roofline) cli_progress_show(&bar, "bench: measuring the machine's limits (roofline)");
    if (a->roofline && (st = tv_roofline_measure(r->n_threads, &r->rl, err))) goto done;
    const double n_params = (double)r->info.n_params;
    r->tg_bound = a->roofline && r->info.weight_bytes ? r->rl.mem_bw_gbs * 1e9 / (double)r->info.weight_bytes : 0.0;
    // the int8 peak of the units prefill runs on: AMX tiles on the amx path, else the vector units
    const double int8_peak = !strcmp(r->kernels, "amx") && r->rl.amx_int8_gops > 0 ? r->rl.amx_int8_gops : r->rl.int8_gops;
    r->pp_bound = a->roofline && n_params > 0 ? int8_peak * 1e9 / (2.0 * n_params) : 0.0;
done:
    cli_progress_end(&bar);
    cli_free_engine(e);
    cli_free_engine(plain);
    free(prompt);
    return st;
}

static double ratio_or_0(double a, double b) { return b > 0 ? a / b : 0.0; }

// The speculating runs of one test beside the plain ones: {"plain_tok_s", "tok_s", "speedup",
// "verifications", "proposed_tokens", "accepted_tokens", "acceptance_rate", "mean_acceptance_length",
// "rounds_speculated", "rounds_plain", "timed_tokens"} (medians; null where the plain engine did not run).
static void add_spec_test(cJSON *sp, const char *name, const series *s, const series *s_plain, const spec_tally *t) {
    cJSON *o = cJSON_AddObjectToObject(sp, name);
    if (!o) return;
    const bool has_plain = s_plain->n > 0;
    cJSON_AddItemToObject(o, "plain_tok_s", num_or_null(has_plain, s_median(s_plain)));
    cJSON_AddNumberToObject(o, "tok_s", s_median(s));
    cJSON_AddItemToObject(o, "speedup", num_or_null(has_plain && s_median(s_plain) > 0, ratio_or_0(s_median(s), s_median(s_plain))));
    cJSON_AddNumberToObject(o, "verifications", (double)t->drafts);
    cJSON_AddNumberToObject(o, "proposed_tokens", (double)t->proposed);
    cJSON_AddNumberToObject(o, "accepted_tokens", (double)t->accepted);
    cJSON_AddItemToObject(o, "acceptance_rate", num_or_null(t->proposed > 0, ratio_or_0((double)t->accepted, (double)t->proposed)));
    cJSON_AddItemToObject(o, "mean_acceptance_length", num_or_null(t->drafts > 0, 1.0 + ratio_or_0((double)t->accepted, (double)t->drafts)));
    cJSON_AddNumberToObject(o, "rounds_speculated", (double)t->rounds_spec);
    cJSON_AddNumberToObject(o, "rounds_plain", (double)t->rounds_plain);
    cJSON_AddNumberToObject(o, "timed_tokens", (double)t->timed_tokens);
}

static tv_status print_json(const bench_args *a, const bench_results *r) {
    const double pp_med = s_median(&r->pp), tg_med = s_median(&r->tg), bd_med = s_median(&r->bd);
    const bool rl = a->roofline;
    const double kv_waste = r->kv_run.has_kv && a->batch > 0 ? (double)(r->kv_run.kv_slots_alloc - r->kv_run.kv_slots_used) / (double)a->batch : 0.0;
    cJSON *jo = cJSON_CreateObject();
    if (!jo) return TV_ERR_NOMEM;
    cJSON_AddStringToObject(jo, "model", a->mo.model_path);
    cJSON_AddNumberToObject(jo, "threads", r->n_threads);
    cJSON_AddStringToObject(jo, "kernels", r->kernels);
    const char *no_amx = tv_cpu_amx_unavailable();   // why the amx path is not in use (null when it can run)
    cJSON_AddItemToObject(jo, "amx_unavailable", no_amx ? cJSON_CreateString(no_amx) : cJSON_CreateNull());
    cJSON_AddNumberToObject(jo, "n_prompt", (double)a->n_prompt);
    cJSON_AddNumberToObject(jo, "n_gen", (double)a->n_gen);
    if (r->spec != TV_SPEC_NONE) {
        cJSON *sp = cJSON_AddObjectToObject(jo, "speculation");
        cJSON_AddStringToObject(sp, "method", cli_spec_name(r->spec));
        cJSON_AddNumberToObject(sp, "verifications", (double)r->es.n_spec_drafts);   // all runs, warm-up included
        cJSON_AddNumberToObject(sp, "proposed_tokens", (double)r->es.n_spec_draft_tokens);
        cJSON_AddNumberToObject(sp, "accepted_tokens", (double)r->es.n_spec_accepted_tokens);
        cJSON_AddNumberToObject(sp, "spec_tokens", r->spec_tokens);
        if (r->tg.n) add_spec_test(sp, "tg", &r->tg, &r->tg_plain, &r->tg_spec);
        if (r->bd.n) add_spec_test(sp, "batch", &r->bd, &r->bd_plain, &r->bd_spec);
    }
    cJSON_AddItemToObject(jo, "prompt_file", a->prompt_path ? cJSON_CreateString(a->prompt_path) : cJSON_CreateNull());
    cJSON_AddItemToObject(jo, "prompt_file_tokens", num_or_null(a->prompt_path != NULL, r->n_prompt_file));
    cJSON_AddNumberToObject(jo, "reps", (double)a->reps);
    cJSON_AddItemToObject(jo, "pp_tok_s", num_or_null(r->pp.n > 0, pp_med));
    cJSON_AddItemToObject(jo, "pp_tok_s_min", num_or_null(r->pp.n > 0, s_min(&r->pp)));
    cJSON_AddItemToObject(jo, "pp_tok_s_max", num_or_null(r->pp.n > 0, s_max(&r->pp)));
    cJSON_AddItemToObject(jo, "pp_linear_layers_ms", num_or_null(r->pp.n > 0 && r->pp_linear_ms > 0, r->pp_linear_ms / (r->pp.n ? r->pp.n : 1)));
    cJSON_AddItemToObject(jo, "pp_attn_layers_ms", num_or_null(r->pp.n > 0 && r->pp_linear_ms > 0, r->pp_attn_ms / (r->pp.n ? r->pp.n : 1)));
    cJSON_AddItemToObject(jo, "pp_deltanet_kernels_ms", num_or_null(r->pp.n > 0 && r->pp_linear_ms > 0, r->pp_gdn_ms / (r->pp.n ? r->pp.n : 1)));
    cJSON_AddItemToObject(jo, "pp_attn_kernels_ms", num_or_null(r->pp.n > 0 && r->pp_linear_ms > 0, r->pp_attn_kernel_ms / (r->pp.n ? r->pp.n : 1)));
    cJSON_AddItemToObject(jo, "tg_tok_s", num_or_null(r->tg.n > 0, tg_med));
    cJSON_AddItemToObject(jo, "tg_tok_s_min", num_or_null(r->tg.n > 0, s_min(&r->tg)));
    cJSON_AddItemToObject(jo, "tg_tok_s_max", num_or_null(r->tg.n > 0, s_max(&r->tg)));
    cJSON_AddNumberToObject(jo, "batch", (double)a->batch);
    cJSON_AddNumberToObject(jo, "batch_prompt", a->batch > 0 ? r->batch_prompt : 0);
    cJSON_AddItemToObject(jo, "batch_decode_tok_s", num_or_null(r->bd.n > 0, bd_med));
    cJSON_AddItemToObject(jo, "batch_decode_tok_s_min", num_or_null(r->bd.n > 0, s_min(&r->bd)));
    cJSON_AddItemToObject(jo, "batch_decode_tok_s_max", num_or_null(r->bd.n > 0, s_max(&r->bd)));
    if (a->schema_path) {
        cJSON *sj = cJSON_AddObjectToObject(jo, "structured");
        cJSON_AddStringToObject(sj, "json_schema", a->schema_path);
        cJSON_AddItemToObject(sj, "batch_decode_tok_s", num_or_null(r->bc.n > 0, s_median(&r->bc)));
        cJSON_AddItemToObject(sj, "batch_decode_tok_s_min", num_or_null(r->bc.n > 0, s_min(&r->bc)));
        cJSON_AddItemToObject(sj, "batch_decode_tok_s_max", num_or_null(r->bc.n > 0, s_max(&r->bc)));
        cJSON_AddItemToObject(sj, "ratio_to_free", num_or_null(r->bc.n > 0 && bd_med > 0, s_median(&r->bc) / bd_med));
        cJSON_AddNumberToObject(sj, "masks", (double)r->n_masks);
        cJSON_AddNumberToObject(sj, "masks_overlapped", (double)r->n_masks_overlapped);
    }
    cJSON_AddNumberToObject(jo, "load_ms", r->load_ms);
    if (a->mo.pp > 1) {
        cJSON *pj = cJSON_AddObjectToObject(jo, "pipeline");
        cJSON_AddNumberToObject(pj, "stages", (double)a->mo.pp);
        cJSON_AddNumberToObject(pj, "bytes_per_token_per_boundary", r->pp_boundary_bytes);
        cJSON_AddNumberToObject(pj, "reply_bytes_per_token", r->pp_reply_bytes);
        cJSON_AddStringToObject(pj, "wire", a->mo.pp_wire_f16 ? "f16" : "f32");
    }
    cJSON_AddNumberToObject(jo, "repack_ms", r->info.repack_ms);
    cJSON_AddNumberToObject(jo, "repacked_tensors", r->info.n_packed);
    cJSON_AddNumberToObject(jo, "peak_rss_mb", r->peak_rss_mb);
    cJSON_AddNumberToObject(jo, "weight_bytes_per_token", (double)r->info.weight_bytes);
    cJSON_AddNumberToObject(jo, "matmul_params", (double)r->info.n_params);
    cJSON_AddItemToObject(jo, "mem_bw_gbs", num_or_null(rl, r->rl.mem_bw_gbs));
    cJSON_AddItemToObject(jo, "int8_peak_gops", num_or_null(rl, r->rl.int8_gops));
    cJSON_AddItemToObject(jo, "fp32_peak_gflops", num_or_null(rl, r->rl.fp32_gflops));
    cJSON_AddItemToObject(jo, "roofline_isa", rl ? cJSON_CreateString(r->rl.isa) : cJSON_CreateNull());
    cJSON_AddItemToObject(jo, "amx_int8_peak_gops", num_or_null(rl && r->rl.amx_int8_gops > 0, r->rl.amx_int8_gops));
    cJSON_AddItemToObject(jo, "amx_bf16_peak_gflops", num_or_null(rl && r->rl.amx_bf16_gflops > 0, r->rl.amx_bf16_gflops));
    cJSON_AddItemToObject(jo, "tg_frac_of_bw", num_or_null(rl && r->tg.n > 0 && r->tg_bound > 0, tg_med / r->tg_bound));
    cJSON_AddItemToObject(jo, "pp_frac_of_int8_peak", num_or_null(rl && r->pp.n > 0 && r->pp_bound > 0, pp_med / r->pp_bound));
    cJSON_AddItemToObject(jo, "kv_wasted_slots_per_seq", num_or_null(r->kv_run.has_kv, kv_waste));
    cJSON_AddItemToObject(jo, "kv_slots_allocated", num_or_null(r->kv_run.has_kv, (double)r->kv_run.kv_slots_alloc));
    cJSON_AddItemToObject(jo, "kv_slots_used", num_or_null(r->kv_run.has_kv, (double)r->kv_run.kv_slots_used));
    cJSON_AddNumberToObject(jo, "kv_block_size", r->es.block_size);
    cJSON_AddNumberToObject(jo, "kv_blocks_total", (double)r->es.n_blocks_total);
    cJSON_AddNumberToObject(jo, "kv_bytes_per_block", r->es.kv_bytes_per_block);
    if (r->es.block_size > 0) cJSON_AddNumberToObject(jo, "kv_bytes_per_token", r->es.kv_bytes_per_block / r->es.block_size);
    cJSON *jp = cJSON_AddArrayToObject(jo, "peers");
    for (int i = 0; jp && i < a->n_peers; i++) {
        const peer *p = &a->peers[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) continue;
        cJSON_AddItemToObject(o, "name", cJSON_CreateString(p->name));
        cJSON_AddBoolToObject(o, "ok", p->ok);
        cJSON_AddItemToObject(o, "pp_tok_s", num_or_null(p->pp_tok_s > 0, p->pp_tok_s));
        cJSON_AddItemToObject(o, "pp_n", num_or_null(p->pp_tok_s > 0, p->pp_n));
        cJSON_AddItemToObject(o, "tg_tok_s", num_or_null(p->tg_tok_s > 0, p->tg_tok_s));
        cJSON_AddItemToObject(o, "tg_n", num_or_null(p->tg_tok_s > 0, p->tg_n));
        // tinyvllm / peer (null when either side lacks the test)
        cJSON_AddItemToObject(o, "pp_ratio", num_or_null(p->pp_tok_s > 0 && r->pp.n > 0, pp_med / p->pp_tok_s));
        cJSON_AddItemToObject(o, "tg_ratio", num_or_null(p->tg_tok_s > 0 && r->tg.n > 0, tg_med / p->tg_tok_s));
        cJSON_AddItemToArray(jp, o);
    }
    char *txt = cJSON_PrintUnformatted(jo);
    cJSON_Delete(jo);
    if (!txt) return TV_ERR_NOMEM;
    printf("%s\n", txt);
    free(txt);
    return TV_OK;
}

// One row of the side-by-side table: ours, then each peer's value and ratio.
static void print_peer_row(const bench_args *a, bool is_pp, const series *ours) {
    char name[64];
    snprintf(name, sizeof name, "%s%ld", is_pp ? "pp" : "tg", is_pp ? a->n_prompt : a->n_gen);
    printf("%-16s %12.2f", name, s_median(ours));
    for (int i = 0; i < a->n_peers; i++) {
        const peer *p = &a->peers[i];
        double v = is_pp ? p->pp_tok_s : p->tg_tok_s;
        int pn = is_pp ? p->pp_n : p->tg_n;
        if (v > 0) {
            char cell[32];
            snprintf(cell, sizeof cell, pn == (is_pp ? a->n_prompt : a->n_gen) ? "%.2f" : "%.2f*", v);
            printf(" %14s %7.2fx", cell, s_median(ours) / v);
        } else {
            printf(" %14s %8s", "-", "-");
        }
    }
    printf("\n");
}

// "tg128: 41.20 tok/s vs 20.10 plain = 2.05x | accepted 380 of 412 proposed (92.2%) | mean
// acceptance length 4.61 (tokens per verification) | 27 verifications | load gate: 27 of 28 decode rounds
// speculated, taking 1.04x the seconds its model predicted" (the gate's part only where it decided: not
// with --spec-always)
static void print_spec_test(const char *name, const series *s, const series *s_plain, const spec_tally *t) {
    printf("%s: %.2f tok/s", name, s_median(s));
    if (s_plain->n) printf(" vs %.2f plain = %.2fx", s_median(s_plain), ratio_or_0(s_median(s), s_median(s_plain)));
    printf(" | accepted %llu of %llu proposed (%.1f%%) | mean acceptance length %.2f (tokens per verification) | %llu "
           "verifications", (unsigned long long)t->accepted, (unsigned long long)t->proposed,
           100.0 * ratio_or_0((double)t->accepted, (double)t->proposed), 1.0 + ratio_or_0((double)t->accepted, (double)t->drafts),
           (unsigned long long)t->drafts);
    if (t->rounds_spec + t->rounds_plain)   // the load gate decided (not --spec-always)
        printf(" | load gate: %llu of %llu decode rounds speculated, taking %.2fx the seconds its model predicted",
               (unsigned long long)t->rounds_spec, (unsigned long long)(t->rounds_spec + t->rounds_plain),
               ratio_or_0(t->real_s, t->pred_s));
    printf("\n");
}

static void print_text(const bench_args *a, const bench_results *r) {
    const double pp_med = s_median(&r->pp), tg_med = s_median(&r->tg), bd_med = s_median(&r->bd);
    const double wbytes = (double)r->info.weight_bytes, n_params = (double)r->info.n_params;
    printf("model %s: %.2f M matmul params, %.1f MiB weights read per token | %d threads | kernels %s | %ld reps\n",
           r->model_name, n_params * 1e-6, wbytes / (1 << 20), r->n_threads, r->kernels, a->reps);
    const char *no_amx = tv_cpu_amx_unavailable();
    if (no_amx && strcmp(r->kernels, "amx") != 0) printf("(amx path unavailable: %s)\n", no_amx);
    if (a->mo.pp > 1)
        printf("pipeline: %ld stages | %.0f bytes per generated token per stage boundary (%s hidden state + batch) | "
               "%.0f bytes per token back to rank 0 (sampled on the last stage)\n", a->mo.pp, r->pp_boundary_bytes,
               a->mo.pp_wire_f16 ? "f16" : "f32", r->pp_reply_bytes);
    printf("load %.0f ms (%d weight tensors repacked in %.0f ms) | peak RSS %.0f MB\n\n", r->load_ms, r->info.n_packed,
           r->info.repack_ms, r->peak_rss_mb);
    printf("%-16s %12s %12s %12s\n", "test", "tok/s", "min", "max");
    char name[64];
    if (r->pp.n) { snprintf(name, sizeof name, "pp%ld", a->n_prompt); printf("%-16s %12.2f %12.2f %12.2f\n", name, pp_med, s_min(&r->pp), s_max(&r->pp)); }
    if (r->pp.n && r->pp_linear_ms > 0)   // hybrid models: where the prefill time goes
        printf("  (%s per run: linear-attention layers %.0f ms, of it DeltaNet conv + delta rule %.1f ms; full-attention "
               "layers %.0f ms, of it attention %.1f ms; %.1f%% in linear layers; FFNs and projections in the layers)\n",
               name, r->pp_linear_ms / r->pp.n, r->pp_gdn_ms / r->pp.n, r->pp_attn_ms / r->pp.n,
               r->pp_attn_kernel_ms / r->pp.n, 100.0 * r->pp_linear_ms / (r->pp_linear_ms + r->pp_attn_ms));
    if (r->tg.n) { snprintf(name, sizeof name, "tg%ld", a->n_gen); printf("%-16s %12.2f %12.2f %12.2f\n", name, tg_med, s_min(&r->tg), s_max(&r->tg)); }
    if (r->tg_plain.n) { snprintf(name, sizeof name, "tg%ld plain", a->n_gen); printf("%-16s %12.2f %12.2f %12.2f\n", name, s_median(&r->tg_plain), s_min(&r->tg_plain), s_max(&r->tg_plain)); }
    if (r->tg.n && a->prompt_path)
        printf("(tg%ld: prompt %s, %d tokens; the tokens after the first, timed from the first)\n", a->n_gen, a->prompt_path, r->n_prompt_file);
    if (r->bd.n && r->batch_prompt != a->batch_prompt)
        printf("(batch prompts of %d tokens: the context holds %d)\n", r->batch_prompt, r->n_ctx);
    if (r->bd.n) { snprintf(name, sizeof name, "batch%ld decode", a->batch); printf("%-16s %12.2f %12.2f %12.2f\n", name, bd_med, s_min(&r->bd), s_max(&r->bd)); }
    if (r->bd_plain.n) { snprintf(name, sizeof name, "batch%ld plain", a->batch); printf("%-16s %12.2f %12.2f %12.2f\n", name, s_median(&r->bd_plain), s_min(&r->bd_plain), s_max(&r->bd_plain)); }
    if (r->bc.n) {
        snprintf(name, sizeof name, "batch%ld schema", a->batch);
        printf("%-16s %12.2f %12.2f %12.2f\n", name, s_median(&r->bc), s_min(&r->bc), s_max(&r->bc));
        printf("(every sequence constrained by %s: %.1f%% of the free batch's throughput; %llu token masks, %llu "
               "filled during the forward pass)\n", a->schema_path, bd_med > 0 ? 100.0 * s_median(&r->bc) / bd_med : 0.0,
               (unsigned long long)r->n_masks, (unsigned long long)r->n_masks_overlapped);
    }
    if (r->spec != TV_SPEC_NONE) {
        printf("\nspeculation %s, up to %d tokens per verification (same run; plain = an engine without speculation)\n",
               cli_spec_name(r->spec), r->spec_tokens);
        if (r->tg.n) {
            snprintf(name, sizeof name, "tg%ld", a->n_gen);
            print_spec_test(name, &r->tg, &r->tg_plain, &r->tg_spec);
        }
        if (r->bd.n) {
            snprintf(name, sizeof name, "batch%ld decode", a->batch);
            print_spec_test(name, &r->bd, &r->bd_plain, &r->bd_spec);
        }
    }
    if (r->es.block_size > 0)
        printf("KV cache: %.0f bytes per token (all layers)\n", r->es.kv_bytes_per_block / r->es.block_size);
    if (r->kv_run.has_kv)
        printf("KV at full batch: %lld slots allocated, %lld used, %.1f wasted per sequence (block size %d)\n",
               (long long)r->kv_run.kv_slots_alloc, (long long)r->kv_run.kv_slots_used,
               (double)(r->kv_run.kv_slots_alloc - r->kv_run.kv_slots_used) / (double)a->batch, r->es.block_size);
    if (a->roofline) {
        printf("\nroofline (%s, %d threads): read %.1f GB/s | int8 %.0f GOPS | fp32 %.0f GFLOPS\n", r->rl.isa, r->n_threads,
               r->rl.mem_bw_gbs, r->rl.int8_gops, r->rl.fp32_gflops);
        if (r->rl.amx_int8_gops > 0)
            printf("  amx tiles: int8 %.0f GOPS | bf16 %.0f GFLOPS\n", r->rl.amx_int8_gops, r->rl.amx_bf16_gflops);
        if (r->tg.n && r->tg_bound > 0)
            printf("  tg%ld: %.2f tok/s = %.1f GB/s of weights = %.1f%% of read bandwidth (bound %.2f tok/s)\n", a->n_gen,
                   tg_med, tg_med * wbytes * 1e-9, 100.0 * tg_med / r->tg_bound, r->tg_bound);
        if (r->pp.n && r->pp_bound > 0)
            printf("  pp%ld: %.2f tok/s = %.0f GOPS = %.1f%% of %sint8 peak (bound %.2f tok/s)\n", a->n_prompt, pp_med,
                   pp_med * 2.0 * n_params * 1e-9, 100.0 * pp_med / r->pp_bound,
                   !strcmp(r->kernels, "amx") && r->rl.amx_int8_gops > 0 ? "AMX " : "", r->pp_bound);
    }
    if (a->n_peers) {
        printf("\n%-16s %12s", "test", "tinyvllm");
        for (int i = 0; i < a->n_peers; i++) printf(" %14.14s %8s", a->peers[i].name, "ratio");
        printf("\n");
        if (r->pp.n) print_peer_row(a, true, &r->pp);
        if (r->tg.n) print_peer_row(a, false, &r->tg);
        printf("(ratio = tinyvllm / peer; * = the peer ran a different size)\n");
    }
}

int cmd_bench(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "structured")) return cmd_bench_structured(argc - 1, argv + 1);
    bench_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (a.load) { free(a.schema); free(a.prompt_text); return cli_bench_load(&a.mo, a.reps, a.json); }
    bench_results r = {0};
    tv_model *m = NULL;
    tv_error err = {0};
    if (measure(&a, &r, &m, &err)) {
        fprintf(stderr, "tinyvllm bench: %s\n", err.msg);
        tv_model_free(m);
        free(a.schema);
        free(a.prompt_text);
        return 1;
    }
    bool peers_ok = true;
    for (int i = 0; i < a.n_peers; i++) {
        tv_error perr = {0};
        if (!peer_run(&a.peers[i], &perr)) { fprintf(stderr, "tinyvllm bench: %s\n", perr.msg); peers_ok = false; }
    }
    if (a.json) {
        if (print_json(&a, &r)) { fprintf(stderr, "tinyvllm bench: out of memory\n"); peers_ok = false; }
    } else {
        print_text(&a, &r);
    }
    tv_model_free(m);
    free(a.schema);
    free(a.prompt_text);
    return peers_ok ? 0 : 1;
}
