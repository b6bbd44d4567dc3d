// cmd_bench.c — `tinyvllm bench`: prompt processing (pp), single-stream generation (tg) and batched
// decode throughput through the public engine API, optionally as fractions of the machine's
// measured limits (--roofline) and side by side with a peer's own benchmark (--compare).
//
// What is timed (wall clock, time_ms):
//   pp     one request, P random prompt ids, max_tokens 1: add -> finished. tok/s = P / time.
//   tg     one request, a 1-token prompt, N tokens (ignore_eos, greedy): add -> finished, N
//          forward passes of one token each (as llama-bench's tgN). tok/s = N / time.
//   batch  B requests of 128 random prompt ids, N tokens each: only the steps after every
//          request has its first token (all prompts are in) count. tok/s = tokens / time.
// Every repetition uses fresh random prompts (different seeds), so no prefix cache can help.
// One warm-up request runs first (pages the mapped weights in, wakes the threads).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

#define BENCH_BATCH_PROMPT 128   // prompt tokens per sequence in the batch test (fewer when the
                                 // model's context cannot hold 128 + N; reported as batch_prompt)
#define BENCH_MAX_REPS 100
#define BENCH_MAX_PEERS 4

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm bench -m MODEL [options]\n"
            "  -t THREADS        worker threads (default: all cores)\n"
            "  -p P              prompt tokens for the pp test (default 512; 0 = skip)\n"
            "  -n N              generated tokens for the tg and batch tests (default 128; 0 = skip tg)\n"
            "  --batch B         also measure decode throughput of B sequences with %d-token prompts\n"
            "  -r REPS           repetitions; the median is reported with min and max (default 3)\n"
            "  --roofline        measure the machine's limits with the same threads; report fractions\n"
            "  --compare NAME=CMD  run a peer's benchmark (llama-bench -o json, or its markdown table)\n"
            "                    and print one side-by-side table (repeatable, up to %d)\n"
            "  --kv-bits 16|32   KV cache element size (default: auto)\n"
            "  --cpu PATH        force a kernel path: generic|avx2|avx512\n"
            "  --json            print one JSON object instead of the table\n",
            BENCH_BATCH_PROMPT, BENCH_MAX_PEERS);
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
    double t_decode_ms;        // after every request had its first token -> all finished
    uint64_t n_decode_tokens;  // tokens generated in that window
    uint64_t n_generated;      // tokens generated in all
    // KV snapshot at the last step where all n_req sequences were running
    int64_t kv_slots_alloc, kv_slots_used;
    bool has_kv;
} run_result;

typedef struct { int n_prompt; int n_generated; bool done; } req_state;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static tv_status run_requests(tv_engine *e, int n_req, int n_prompt, int max_tokens, int32_t n_vocab, uint64_t seed,
                              run_result *r, tv_error *err) {
    tv_status st = TV_OK;
    memset(r, 0, sizeof *r);
    int32_t *ids = malloc((size_t)n_prompt * sizeof *ids);   // (n_prompt) prompt of the request being added
    req_state *rs = calloc((size_t)n_req, sizeof *rs);        // (n_req)
    if (!ids || !rs) { st = tv_error_set(err, TV_ERR_NOMEM, "out of memory"); goto cleanup; }
    uint64_t rng = seed;
    double t0 = cli_time_ms();
    for (int q = 0; q < n_req; q++) {
        for (int i = 0; i < n_prompt; i++) ids[i] = (int32_t)(splitmix64(&rng) % (uint64_t)n_vocab);
        tv_request_params rp;
        tv_request_params_default(&rp);
        rp.prompt_ids = ids;
        rp.n_prompt = (size_t)n_prompt;
        rp.add_bos = false;
        rp.sampling.temperature = 0.0f;
        rp.max_tokens = max_tokens;
        rp.ignore_eos = true;
        rp.user = &rs[q];
        rs[q].n_prompt = n_prompt;
        if ((st = tv_engine_add_request(e, &rp, NULL, err))) goto cleanup;
    }
    int n_started = 0, n_done = 0;
    double t_all_started = 0.0;
    while (n_done < n_req) {
        const tv_request_output *outs;
        int n_outs;
        if ((st = tv_engine_step(e, &outs, &n_outs, err))) goto cleanup;
        bool any_finished = false;
        for (int i = 0; i < n_outs; i++) {
            req_state *q = outs[i].user;
            if (!q) continue;
            if (q->n_generated == 0 && outs[i].n_generated > 0) n_started++;
            else if (t_all_started > 0.0) r->n_decode_tokens += (uint64_t)outs[i].n_new;
            q->n_generated = outs[i].n_generated;
            if (outs[i].finish != TV_FINISH_NONE && !q->done) {
                q->done = true;
                n_done++;
                any_finished = true;
                if (outs[i].finish == TV_FINISH_ABORT) { st = tv_error_set(err, TV_ERR_STATE, "a benchmark request was aborted"); goto cleanup; }
                if (outs[i].finish == TV_FINISH_ERROR) { st = tv_error_set(err, outs[i].error->code, "%s", outs[i].error->msg); goto cleanup; }
            }
        }
        if (t_all_started == 0.0 && n_started == n_req) t_all_started = cli_time_ms();
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
    r->t_decode_ms = t_all_started > 0.0 ? t1 - t_all_started : 0.0;
    for (int q = 0; q < n_req; q++) r->n_generated += (uint64_t)rs[q].n_generated;
cleanup:
    free(ids);
    free(rs);
    return st;
}

// ---- peers ----
typedef struct {
    const char *name, *cmd;
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

int cmd_bench(int argc, char **argv) {
    const char *model_path = NULL, *cpu = NULL;
    long threads = 0, n_prompt = 512, n_gen = 128, batch = 0, reps = 3, kv_bits = 0;
    bool json = false, roofline = false;
    peer peers[BENCH_MAX_PEERS];
    int n_peers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!v) return cli_usage_error("bench", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VAL(); model_path = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1024, &threads)) return cli_usage_error("bench", "-t: '%s' is not a valid thread count", v); }
        else if (!strcmp(a, "-p")) { NEED_VAL(); if (!cli_parse_long(v, 0, 1L << 20, &n_prompt)) return cli_usage_error("bench", "-p: '%s' is not a valid token count", v); }
        else if (!strcmp(a, "-n")) { NEED_VAL(); if (!cli_parse_long(v, 0, 1L << 20, &n_gen)) return cli_usage_error("bench", "-n: '%s' is not a valid token count", v); }
        else if (!strcmp(a, "--batch")) { NEED_VAL(); if (!cli_parse_long(v, 1, 4096, &batch)) return cli_usage_error("bench", "--batch: '%s' is not a valid sequence count (1..4096)", v); }
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) { NEED_VAL(); if (!cli_parse_long(v, 1, BENCH_MAX_REPS, &reps)) return cli_usage_error("bench", "-r: '%s' is not a valid count (1..%d)", v, BENCH_MAX_REPS); }
        else if (!strcmp(a, "--kv-bits")) { NEED_VAL(); if (!cli_parse_long(v, 16, 32, &kv_bits) || (kv_bits != 16 && kv_bits != 32)) return cli_usage_error("bench", "--kv-bits: 16 or 32"); }
        else if (!strcmp(a, "--cpu")) { NEED_VAL(); cpu = v; }
        else if (!strcmp(a, "--roofline")) roofline = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--compare")) {
            NEED_VAL();
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) return cli_usage_error("bench", "--compare: expected NAME=CMD, got '%s'", v);
            if (n_peers == BENCH_MAX_PEERS) return cli_usage_error("bench", "--compare: at most %d peers", BENCH_MAX_PEERS);
            peers[n_peers] = (peer){ .cmd = eq + 1 };
            peers[n_peers].name = strndup(v, (size_t)(eq - v));
            if (!peers[n_peers].name) { fprintf(stderr, "tinyvllm bench: out of memory\n"); return 1; }
            n_peers++;
        }
        else return cli_usage_error("bench", "unknown option '%s' (see --help)", a);
#undef NEED_VAL
    }
    int rc = 1;
    tv_model *m = NULL;
    tv_engine *e = NULL;
    cJSON *jo = NULL;
    tv_error err = {0};
    if (!model_path) { rc = cli_usage_error("bench", "-m MODEL is required"); goto done; }
    if (batch > 0 && n_gen < 2) { rc = cli_usage_error("bench", "--batch needs -n >= 2 (decode steps to time)"); goto done; }

    // ---- load ----
    double t0 = cli_time_ms();
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = cli_cpu_path(cpu);
    mp.no_repack = cli_no_repack();
    mp.n_threads = (int)threads;
    if (!(m = tv_model_load(model_path, &mp, &err))) goto fail;
    const double load_ms = cli_time_ms() - t0;
    tv_model_info info;
    tv_model_get_info(m, &info);
    const double repack_ms = info.repack_ms;
    const int n_packed = info.n_packed;
    const int32_t n_vocab = tv_model_n_vocab(m);
    const int n_ctx = tv_model_n_ctx(m);
    int batch_prompt = BENCH_BATCH_PROMPT;
    if (batch > 0 && batch_prompt + n_gen + 1 > n_ctx) batch_prompt = (int)(n_ctx - n_gen - 1);
    if (batch > 0 && batch_prompt < 1) {
        tv_error_set(&err, TV_ERR_RANGE, "--batch: -n %ld leaves no room for a prompt in the model's context of %d tokens", n_gen, n_ctx);
        goto fail;
    }
    const int longest = (int)(n_prompt > batch_prompt || batch == 0 ? n_prompt : batch_prompt);
    if ((long)longest + (n_gen > 1 ? n_gen : 1) + 1 > n_ctx || n_gen + 2 > n_ctx) {
        tv_error_set(&err, TV_ERR_RANGE, "-p %ld / -n %ld do not fit the model's context of %d tokens", n_prompt, n_gen, n_ctx);
        goto fail;
    }

    tv_engine_config ec;
    tv_engine_config_default(&ec);
    if (threads > 0) ec.n_threads = (int)threads;
    ec.cpu_path = mp.cpu_path;
    ec.max_num_seqs = batch > 1 ? (int)batch : 1;
    ec.max_batched_tokens = n_prompt > 512 ? (int)n_prompt : 512;   // a P-token prompt in one step
    ec.max_model_len = longest + (int)(n_gen > 1 ? n_gen : 1) + 1;
    ec.kv_bits = (int)kv_bits;
    if (!(e = tv_engine_create(m, &ec, &err))) goto fail;
    const int n_threads = ec.n_threads;
    const char *kernels = tv_engine_cpu_path(e);

    // ---- warm-up: pages the weights in, wakes the pool ----
    run_result rr;
    int n_warm = longest < 32 ? longest : 32;
    if (n_warm < 1) n_warm = 1;
    if (run_requests(e, 1, n_warm, 2, n_vocab, 1, &rr, &err)) goto fail;

    series pp = {0}, tg = {0}, bd = {0};
    run_result kv_run = {0};
    for (long r = 0; r < reps; r++) {
        uint64_t seed = 1000 + 17 * (uint64_t)r;
        if (n_prompt > 0) {
            if (run_requests(e, 1, (int)n_prompt, 1, n_vocab, seed, &rr, &err)) goto fail;
            pp.v[pp.n++] = (double)n_prompt / (rr.t_total_ms * 1e-3);
        }
        if (n_gen > 0) {
            if (run_requests(e, 1, 1, (int)n_gen, n_vocab, seed + 1, &rr, &err)) goto fail;
            tg.v[tg.n++] = (double)rr.n_generated / (rr.t_total_ms * 1e-3);
        }
        if (batch > 0) {
            if (run_requests(e, (int)batch, batch_prompt, (int)n_gen, n_vocab, seed + 2, &rr, &err)) goto fail;
            bd.v[bd.n++] = rr.t_decode_ms > 0 ? (double)rr.n_decode_tokens / (rr.t_decode_ms * 1e-3) : 0.0;
            if (rr.has_kv) kv_run = rr;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak_rss_mb = (double)ru.ru_maxrss / 1024.0;   // ru_maxrss is KiB on Linux
    tv_engine_stats es;
    tv_engine_get_stats(e, &es);
    tv_engine_free(e);   // its pool would compete with the roofline probes
    e = NULL;

    const size_t wbytes = info.weight_bytes;
    const double n_params = (double)info.n_params;
    tv_roofline rl = {0};
    if (roofline && tv_roofline_measure(n_threads, &rl, &err)) goto fail;
    const double tg_med = s_median(&tg), pp_med = s_median(&pp), bd_med = s_median(&bd);
    const double tg_bound = roofline && wbytes ? rl.mem_bw_gbs * 1e9 / (double)wbytes : 0.0;      // tok/s
    const double pp_bound = roofline && n_params > 0 ? rl.int8_gops * 1e9 / (2.0 * n_params) : 0.0;  // tok/s
    const double kv_waste = kv_run.has_kv && batch > 0 ? (double)(kv_run.kv_slots_alloc - kv_run.kv_slots_used) / (double)batch : 0.0;

    bool peers_ok = true;
    for (int i = 0; i < n_peers; i++) {
        tv_error perr = {0};
        if (!peer_run(&peers[i], &perr)) { fprintf(stderr, "tinyvllm bench: %s\n", perr.msg); peers_ok = false; }
    }

    if (json) {
        jo = cJSON_CreateObject();
        if (!jo) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        cJSON_AddStringToObject(jo, "model", model_path);
        cJSON_AddNumberToObject(jo, "threads", n_threads);
        cJSON_AddStringToObject(jo, "kernels", kernels);
        cJSON_AddNumberToObject(jo, "n_prompt", (double)n_prompt);
        cJSON_AddNumberToObject(jo, "n_gen", (double)n_gen);
        cJSON_AddNumberToObject(jo, "reps", (double)reps);
        cJSON_AddItemToObject(jo, "pp_tok_s", num_or_null(pp.n > 0, pp_med));
        cJSON_AddItemToObject(jo, "pp_tok_s_min", num_or_null(pp.n > 0, s_min(&pp)));
        cJSON_AddItemToObject(jo, "pp_tok_s_max", num_or_null(pp.n > 0, s_max(&pp)));
        cJSON_AddItemToObject(jo, "tg_tok_s", num_or_null(tg.n > 0, tg_med));
        cJSON_AddItemToObject(jo, "tg_tok_s_min", num_or_null(tg.n > 0, s_min(&tg)));
        cJSON_AddItemToObject(jo, "tg_tok_s_max", num_or_null(tg.n > 0, s_max(&tg)));
        cJSON_AddNumberToObject(jo, "batch", (double)batch);
        cJSON_AddNumberToObject(jo, "batch_prompt", batch > 0 ? batch_prompt : 0);
        cJSON_AddItemToObject(jo, "batch_decode_tok_s", num_or_null(bd.n > 0, bd_med));
        cJSON_AddItemToObject(jo, "batch_decode_tok_s_min", num_or_null(bd.n > 0, s_min(&bd)));
        cJSON_AddItemToObject(jo, "batch_decode_tok_s_max", num_or_null(bd.n > 0, s_max(&bd)));
        cJSON_AddNumberToObject(jo, "load_ms", load_ms);
        cJSON_AddNumberToObject(jo, "repack_ms", repack_ms);
        cJSON_AddNumberToObject(jo, "repacked_tensors", n_packed);
        cJSON_AddNumberToObject(jo, "peak_rss_mb", peak_rss_mb);
        cJSON_AddNumberToObject(jo, "weight_bytes_per_token", (double)wbytes);
        cJSON_AddNumberToObject(jo, "matmul_params", n_params);
        cJSON_AddItemToObject(jo, "mem_bw_gbs", num_or_null(roofline, rl.mem_bw_gbs));
        cJSON_AddItemToObject(jo, "int8_peak_gops", num_or_null(roofline, rl.int8_gops));
        cJSON_AddItemToObject(jo, "fp32_peak_gflops", num_or_null(roofline, rl.fp32_gflops));
        cJSON_AddItemToObject(jo, "roofline_isa", roofline ? cJSON_CreateString(rl.isa) : cJSON_CreateNull());
        cJSON_AddItemToObject(jo, "tg_frac_of_bw", num_or_null(roofline && tg.n > 0 && tg_bound > 0, tg_med / tg_bound));
        cJSON_AddItemToObject(jo, "pp_frac_of_int8_peak", num_or_null(roofline && pp.n > 0 && pp_bound > 0, pp_med / pp_bound));
        cJSON_AddItemToObject(jo, "kv_wasted_slots_per_seq", num_or_null(kv_run.has_kv, kv_waste));
        cJSON_AddItemToObject(jo, "kv_slots_allocated", num_or_null(kv_run.has_kv, (double)kv_run.kv_slots_alloc));
        cJSON_AddItemToObject(jo, "kv_slots_used", num_or_null(kv_run.has_kv, (double)kv_run.kv_slots_used));
        cJSON_AddNumberToObject(jo, "kv_block_size", es.block_size);
        cJSON_AddNumberToObject(jo, "kv_blocks_total", (double)es.n_blocks_total);
        cJSON_AddNumberToObject(jo, "kv_bytes_per_block", es.kv_bytes_per_block);
        cJSON *jp = cJSON_AddArrayToObject(jo, "peers");
        for (int i = 0; jp && i < n_peers; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o) continue;
            cJSON_AddStringToObject(o, "name", peers[i].name);
            cJSON_AddBoolToObject(o, "ok", peers[i].ok);
            cJSON_AddItemToObject(o, "pp_tok_s", num_or_null(peers[i].pp_tok_s > 0, peers[i].pp_tok_s));
            cJSON_AddItemToObject(o, "pp_n", num_or_null(peers[i].pp_tok_s > 0, peers[i].pp_n));
            cJSON_AddItemToObject(o, "tg_tok_s", num_or_null(peers[i].tg_tok_s > 0, peers[i].tg_tok_s));
            cJSON_AddItemToObject(o, "tg_n", num_or_null(peers[i].tg_tok_s > 0, peers[i].tg_n));
            // tinyvllm / peer (null when either side lacks the test)
            cJSON_AddItemToObject(o, "pp_ratio", num_or_null(peers[i].pp_tok_s > 0 && pp.n > 0, pp_med / peers[i].pp_tok_s));
            cJSON_AddItemToObject(o, "tg_ratio", num_or_null(peers[i].tg_tok_s > 0 && tg.n > 0, tg_med / peers[i].tg_tok_s));
            cJSON_AddItemToArray(jp, o);
        }
        char *txt = cJSON_PrintUnformatted(jo);
        if (!txt) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("model %s: %.2f M matmul params, %.1f MiB weights read per token | %d threads | kernels %s | %ld reps\n",
               tv_model_name(m) ? tv_model_name(m) : model_path, n_params * 1e-6, (double)wbytes / (1 << 20), n_threads, kernels, reps);
        printf("load %.0f ms (%d weight tensors repacked in %.0f ms) | peak RSS %.0f MB\n\n", load_ms, n_packed,
               repack_ms, peak_rss_mb);
        printf("%-16s %12s %12s %12s\n", "test", "tok/s", "min", "max");
        char name[64];
        if (pp.n) { snprintf(name, sizeof name, "pp%ld", n_prompt); printf("%-16s %12.2f %12.2f %12.2f\n", name, pp_med, s_min(&pp), s_max(&pp)); }
        if (tg.n) { snprintf(name, sizeof name, "tg%ld", n_gen); printf("%-16s %12.2f %12.2f %12.2f\n", name, tg_med, s_min(&tg), s_max(&tg)); }
        if (bd.n && batch_prompt != BENCH_BATCH_PROMPT)
            printf("(batch prompts of %d tokens: the context holds %d)\n", batch_prompt, n_ctx);
        if (bd.n) { snprintf(name, sizeof name, "batch%ld decode", batch); printf("%-16s %12.2f %12.2f %12.2f\n", name, bd_med, s_min(&bd), s_max(&bd)); }
        if (kv_run.has_kv)
            printf("KV at full batch: %lld slots allocated, %lld used, %.1f wasted per sequence (block size %d)\n",
                   (long long)kv_run.kv_slots_alloc, (long long)kv_run.kv_slots_used, kv_waste, es.block_size);
        if (roofline) {
            printf("\nroofline (%s, %d threads): read %.1f GB/s | int8 %.0f GOPS | fp32 %.0f GFLOPS\n", rl.isa, n_threads,
                   rl.mem_bw_gbs, rl.int8_gops, rl.fp32_gflops);
            if (tg.n && tg_bound > 0)
                printf("  tg%ld: %.2f tok/s = %.1f GB/s of weights = %.1f%% of read bandwidth (bound %.2f tok/s)\n", n_gen,
                       tg_med, tg_med * (double)wbytes * 1e-9, 100.0 * tg_med / tg_bound, tg_bound);
            if (pp.n && pp_bound > 0)
                printf("  pp%ld: %.2f tok/s = %.0f GOPS = %.1f%% of int8 peak (bound %.2f tok/s)\n", n_prompt, pp_med,
                       pp_med * 2.0 * n_params * 1e-9, 100.0 * pp_med / pp_bound, pp_bound);
        }
        if (n_peers) {
            printf("\n%-16s %12s", "test", "tinyvllm");
            for (int i = 0; i < n_peers; i++) printf(" %14.14s %8s", peers[i].name, "ratio");
            printf("\n");
            for (int row = 0; row < 2; row++) {
                const bool is_pp = row == 0;
                const series *ours = is_pp ? &pp : &tg;
                if (!ours->n) continue;
                snprintf(name, sizeof name, "%s%ld", is_pp ? "pp" : "tg", is_pp ? n_prompt : n_gen);
                printf("%-16s %12.2f", name, s_median(ours));
                for (int i = 0; i < n_peers; i++) {
                    double v = is_pp ? peers[i].pp_tok_s : peers[i].tg_tok_s;
                    int pn = is_pp ? peers[i].pp_n : peers[i].tg_n;
                    if (v > 0) {
                        char cell[32];
                        snprintf(cell, sizeof cell, pn == (is_pp ? n_prompt : n_gen) ? "%.2f" : "%.2f*", v);
                        printf(" %14s %7.2fx", cell, s_median(ours) / v);
                    } else {
                        printf(" %14s %8s", "-", "-");
                    }
                }
                printf("\n");
            }
            printf("(ratio = tinyvllm / peer; * = the peer ran a different size)\n");
        }
    }
    rc = peers_ok ? 0 : 1;
    goto done;

fail:
    fprintf(stderr, "tinyvllm bench: %s\n", err.msg);
    rc = 1;
done:
    cJSON_Delete(jo);
    tv_engine_free(e);
    tv_model_free(m);
    for (int i = 0; i < n_peers; i++) free((char *)peers[i].name);
    return rc;
}
