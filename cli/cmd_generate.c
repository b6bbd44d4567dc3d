// cmd_generate.c — `tinyvllm generate`: one prompt through the engine, text streamed to stdout,
// one timing line on stderr (or one JSON object with --json).
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm generate -m MODEL [--tokenizer FILE] (-p TEXT | --prompt-ids 1,2,3) [options]\n"
            "  -n N              max new tokens (default 256; -1 = until the context is full)\n"
            "  --temp T          temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K         (default 40; 0 = off)    --top-p P (default 0.95)   --min-p P (default 0.05)\n"
            "  --repeat-penalty R  (default 1.0 = off)\n"
            "  --seed S          RNG seed (default: random)\n"
            "  --stop-id ID      extra stop token (repeatable)   --stop TEXT  stop string (repeatable)\n"
            "  --ignore-eos      don't stop at the end-of-sequence token\n"
            "  --no-bos          don't add BOS when tokenizing -p\n"
            "  -t THREADS        worker threads (default: all cores)\n"
            "  --ctx N           cap the context length\n"
            "  --kv-bits 16|32   KV cache element size (default: 32 for f32 models, else 16)\n"
            "  --cpu PATH        force a kernel path: generic|avx2|avx512\n"
            "  --json            print one JSON object instead of streaming text\n");
}

int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *prompt_ids_s = NULL, *cpu = NULL;
    long n_new = 256, threads = 0, ctx = 0;
    bool json = false, no_bos = false, ignore_eos = false;
    long kv_bits = 0;
    tv_sampling_params sp;
    tv_sampling_params_default(&sp);
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.min_p = 0.05f;
    const char *stops[16];
    int n_stops = 0;
    int32_t stop_ids[16];
    int n_stop_ids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!v) return cli_usage_error("generate", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VAL(); model_path = v; }
        else if (!strcmp(a, "--tokenizer")) { NEED_VAL(); tok_path = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { NEED_VAL(); prompt = v; }
        else if (!strcmp(a, "--prompt-ids")) { NEED_VAL(); prompt_ids_s = v; }
        else if (!strcmp(a, "-n")) { NEED_VAL(); if (!cli_parse_long(v, -1, 1L << 30, &n_new)) return cli_usage_error("generate", "-n: '%s' is not a valid count", v); }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1024, &threads)) return cli_usage_error("generate", "-t: '%s' is not a valid thread count", v); }
        else if (!strcmp(a, "--ctx")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1L << 24, &ctx)) return cli_usage_error("generate", "--ctx: '%s' invalid", v); }
        else if (!strcmp(a, "--temp")) { NEED_VAL(); if (!cli_parse_float(v, 0, 100, &sp.temperature)) return cli_usage_error("generate", "--temp: '%s' invalid", v); }
        else if (!strcmp(a, "--top-k")) { NEED_VAL(); long k; if (!cli_parse_long(v, 0, 1L << 24, &k)) return cli_usage_error("generate", "--top-k: '%s' invalid", v); sp.top_k = (int)k; }
        else if (!strcmp(a, "--top-p")) { NEED_VAL(); if (!cli_parse_float(v, 1e-6f, 1, &sp.top_p)) return cli_usage_error("generate", "--top-p: '%s' must be in (0, 1]", v); }
        else if (!strcmp(a, "--min-p")) { NEED_VAL(); if (!cli_parse_float(v, 0, 1, &sp.min_p)) return cli_usage_error("generate", "--min-p: '%s' must be in [0, 1]", v); }
        else if (!strcmp(a, "--repeat-penalty")) { NEED_VAL(); if (!cli_parse_float(v, 1e-3f, 100, &sp.repetition_penalty)) return cli_usage_error("generate", "--repeat-penalty: '%s' invalid", v); }
        else if (!strcmp(a, "--seed")) { NEED_VAL(); char *end; errno = 0; unsigned long long s = strtoull(v, &end, 10); if (errno || *end || end == v) return cli_usage_error("generate", "--seed: '%s' invalid", v); sp.seed = s; sp.has_seed = true; }
        else if (!strcmp(a, "--stop")) { NEED_VAL(); if (n_stops == 16) return cli_usage_error("generate", "at most 16 --stop strings"); stops[n_stops++] = v; }
        else if (!strcmp(a, "--stop-id")) { NEED_VAL(); long id; if (!cli_parse_long(v, 0, INT32_MAX, &id) || n_stop_ids == 16) return cli_usage_error("generate", "--stop-id: '%s' invalid", v); stop_ids[n_stop_ids++] = (int32_t)id; }
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--kv-bits")) { NEED_VAL(); if (!cli_parse_long(v, 16, 32, &kv_bits) || (kv_bits != 16 && kv_bits != 32)) return cli_usage_error("generate", "--kv-bits: 16 or 32"); }
        else if (!strcmp(a, "--cpu")) { NEED_VAL(); cpu = v; }
        else if (!strcmp(a, "--json")) json = true;
        else return cli_usage_error("generate", "unknown option '%s' (see --help)", a);
#undef NEED_VAL
    }
    if (!model_path) return cli_usage_error("generate", "-m MODEL is required");
    if (!prompt == !prompt_ids_s) return cli_usage_error("generate", "give exactly one of -p TEXT or --prompt-ids");

    int rc = 1;
    tv_error err = {0};
    tv_model *m = NULL;
    tv_engine *e = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0, n_gen = 0, cap_gen = 0;
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    cJSON *out = NULL;
    if (prompt_ids_s && !(ids = cli_parse_ids(prompt_ids_s, &n_ids)))
        return cli_usage_error("generate", "--prompt-ids: '%s' is not a comma-separated list of token ids", prompt_ids_s);

    double t0 = cli_time_ms();
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = tok_path;
    mp.cpu_path = cli_cpu_path(cpu);
    mp.no_repack = cli_no_repack();
    mp.n_threads = (int)threads;
    if (!(m = tv_model_load(model_path, &mp, &err))) goto fail;
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    if (threads > 0) ec.n_threads = (int)threads;
    ec.cpu_path = mp.cpu_path;
    ec.max_num_seqs = 1;
    ec.max_model_len = (int)ctx;
    ec.kv_bits = (int)kv_bits;
    if (!(e = tv_engine_create(m, &ec, &err))) goto fail;
    double t_load = cli_time_ms() - t0;

    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.sampling = sp;
    rp.max_tokens = (int)n_new;
    rp.ignore_eos = ignore_eos;
    rp.stop = stops;
    rp.n_stop = n_stops;
    rp.stop_ids = stop_ids;
    rp.n_stop_ids = n_stop_ids;
    if (prompt) {
        if (!tv_model_tokenizer(m)) {
            tv_error_set(&err, TV_ERR_INVALID, "%s has no tokenizer: pass --tokenizer FILE or use --prompt-ids", model_path);
            goto fail;
        }
        if (tv_tokenize(tv_model_tokenizer(m), prompt, strlen(prompt), !no_bos && tv_tokenizer_add_bos_default(tv_model_tokenizer(m)),
                        false, &ids, &n_ids, &err))
            goto fail;
    }
    rp.prompt_ids = ids;
    rp.n_prompt = n_ids;
    if (tv_engine_add_request(e, &rp, NULL, &err)) goto fail;

    double t_start = cli_time_ms(), t_first = 0;
    tv_finish_reason finish = TV_FINISH_NONE;
    while (tv_engine_has_work(e)) {
        const tv_request_output *outs;
        int n_outs;
        if (tv_engine_step(e, &outs, &n_outs, &err)) goto fail;
        for (int i = 0; i < n_outs; i++) {
            const tv_request_output *o = &outs[i];
            if (o->n_new && !t_first) t_first = cli_time_ms();
            for (int j = 0; j < o->n_new; j++) {
                if (n_gen == cap_gen) {
                    cap_gen = cap_gen ? cap_gen * 2 : 256;
                    int32_t *ng = realloc(gen, cap_gen * sizeof *gen);
                    if (!ng) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
                    gen = ng;
                }
                gen[n_gen++] = o->new_ids[j];
            }
            if (o->text_len) {
                if (json) {
                    if (!cli_append(&text, &text_len, &text_cap, o->text, o->text_len)) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
                } else {
                    fwrite(o->text, 1, o->text_len, stdout);
                    fflush(stdout);
                }
            }
            if (o->finish == TV_FINISH_ERROR) { err = *o->error; goto fail; }
            if (o->finish) finish = o->finish;
        }
    }
    double t_end = cli_time_ms();
    if (!t_first) t_first = t_end;
    double prompt_ms = t_first - t_start, gen_ms = t_end - t_first;
    double pp_tps = prompt_ms > 0 ? n_ids / (prompt_ms / 1e3) : 0;
    double tg_tps = n_gen > 1 && gen_ms > 0 ? (n_gen - 1) / (gen_ms / 1e3) : 0;
    const char *fin = finish == TV_FINISH_STOP ? "stop" : finish == TV_FINISH_LENGTH ? "length" : "abort";
    if (json) {
        out = cJSON_CreateObject();
        cJSON *pa = cJSON_AddArrayToObject(out, "prompt_ids");
        for (size_t i = 0; i < n_ids; i++) cJSON_AddItemToArray(pa, cJSON_CreateNumber(ids[i]));
        cJSON *ga = cJSON_AddArrayToObject(out, "generated_ids");
        for (size_t i = 0; i < n_gen; i++) cJSON_AddItemToArray(ga, cJSON_CreateNumber(gen[i]));
        cJSON_AddStringToObject(out, "text", text ? text : "");
        cJSON_AddStringToObject(out, "finish_reason", fin);
        cJSON *t = cJSON_AddObjectToObject(out, "timings");
        cJSON_AddNumberToObject(t, "load_ms", t_load);
        cJSON_AddNumberToObject(t, "prompt_tokens", (double)n_ids);
        cJSON_AddNumberToObject(t, "prompt_ms", prompt_ms);
        cJSON_AddNumberToObject(t, "prompt_tok_s", pp_tps);
        cJSON_AddNumberToObject(t, "generated_tokens", (double)n_gen);
        cJSON_AddNumberToObject(t, "generation_ms", gen_ms);
        cJSON_AddNumberToObject(t, "generation_tok_s", tg_tps);
        char *s = cJSON_PrintUnformatted(out);
        if (!s) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        puts(s);
        free(s);
    } else {
        printf("\n");
    }
    fprintf(stderr, "tinyvllm: load %.0f ms | prompt %zu tok, %.1f tok/s | generation %zu tok, %.1f tok/s | finish %s | cpu %s\n",
            t_load, n_ids, pp_tps, n_gen, tg_tps, fin, tv_engine_cpu_path(e));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "tinyvllm generate: %s\n", err.msg[0] ? err.msg : tv_status_str(err.code));
done:
    cJSON_Delete(out);
    free(text);
    free(gen);
    free(ids);
    tv_engine_free(e);
    tv_model_free(m);
    return rc;
}
