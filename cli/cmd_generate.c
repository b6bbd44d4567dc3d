// cmd_generate.c — `tinyvllm generate`: one prompt through the engine, text streamed to stdout,
// one timing line on stderr (or one JSON object with --json). A model without a tokenizer streams
// the generated ids instead of text.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_util.h"
#include "tinyvllm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm generate -m MODEL (-p TEXT | -f FILE | --prompt-ids 1,2,3) [options]\n"
            "  -p, --prompt TEXT              the prompt\n"
            "  -f, --file FILE                read the prompt from FILE ('-' = stdin)\n"
            "  --prompt-ids 1,2,3             the prompt as token ids\n"
            "  -n, --n-predict, --predict N   max new tokens (default 256; -1 or -2 = until the context is full)\n"
            "  --stop TEXT                    stop string (repeatable; also -r, --reverse-prompt)\n"
            "  -r, --reverse-prompt TEXT      llama.cpp's spelling of --stop\n"
            "  --stop-id ID                   extra stop token (repeatable)\n"
            "  --ignore-eos                   don't stop at the end-of-generation tokens\n"
            "  --no-bos                       don't add the BOS (or EOS) the model asks for when tokenizing -p\n"
            "  --json                         print one JSON object instead of streaming text\n"
            "  --json-schema FILE             constrain the output to JSON matching the schema in FILE\n"
            "  --grammar FILE                 constrain the output to a GBNF grammar (llama.cpp syntax) in FILE\n"
            "  --regex R                      constrain the output to match the regular expression R\n");
    cli_model_usage(f);
    cli_sampling_usage(f);
    fputs(CLI_HELP_USAGE, f);
}

#define MAX_STOPS 16

typedef struct gen_args {
    cli_model_opts mo;
    tv_sampling_params sp;
    unsigned sp_given;   // TV_SAMPLE_* bits set by flags
    const char *prompt, *prompt_file, *prompt_ids;
    long n_new;
    bool json, no_bos, ignore_eos, n_given;
    const char *stops[MAX_STOPS];
    int n_stops;
    int32_t stop_ids[MAX_STOPS];
    int n_stop_ids;
    const char *schema_file, *grammar_file, *regex;   // structured output (at most one)
} gen_args;

// Fills g from the command line; 0, or the exit status (usage printed).
static int parse_args(int argc, char **argv, gen_args *g) {
    cli_sampling_defaults(&g->sp);
    g->n_new = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r;
        if ((r = cli_model_opt("generate", argc, argv, &i, &g->mo)) || (r = cli_sampling_opt("generate", argc, argv, &i, &g->sp, &g->sp_given))) {
            if (r == 2) return 2;
            continue;
        }
#define NEED_VAL() do { if (!v) return cli_usage_error("generate", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { NEED_VAL(); g->prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { NEED_VAL(); g->prompt_file = v; }
        else if (!strcmp(a, "--prompt-ids")) { NEED_VAL(); g->prompt_ids = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict") || !strcmp(a, "--predict")) {
            NEED_VAL();
            if (!cli_parse_long(v, -2, 1L << 30, &g->n_new)) return cli_usage_error("generate", "%s: '%s' is not a valid count", a, v);
            if (g->n_new < 0) g->n_new = -1;   // llama.cpp's -1 (infinite) and -2 (until the context is full)
            g->n_given = true;
        }
        else if (!strcmp(a, "--stop") || !strcmp(a, "-r") || !strcmp(a, "--reverse-prompt")) { NEED_VAL(); if (g->n_stops == MAX_STOPS) return cli_usage_error("generate", "at most %d --stop strings", MAX_STOPS); g->stops[g->n_stops++] = v; }
        else if (!strcmp(a, "--stop-id")) { NEED_VAL(); long id; if (!cli_parse_long(v, 0, INT32_MAX, &id) || g->n_stop_ids == MAX_STOPS) return cli_usage_error("generate", "--stop-id: '%s' invalid", v); g->stop_ids[g->n_stop_ids++] = (int32_t)id; }
        else if (!strcmp(a, "--ignore-eos")) g->ignore_eos = true;
        else if (!strcmp(a, "--no-bos")) g->no_bos = true;
        else if (!strcmp(a, "--json")) g->json = true;
        else if (!strcmp(a, "--json-schema")) { NEED_VAL(); g->schema_file = v; }
        else if (!strcmp(a, "--grammar")) { NEED_VAL(); g->grammar_file = v; }
        else if (!strcmp(a, "--regex")) { NEED_VAL(); g->regex = v; }
        else return cli_usage_error("generate", "unknown option '%s' (see --help)", a);
#undef NEED_VAL
    }
    if (!g->mo.model_path) return cli_usage_error("generate", "-m MODEL is required");
    if (!!g->prompt + !!g->prompt_file + !!g->prompt_ids != 1)
        return cli_usage_error("generate", "give exactly one of -p TEXT, -f FILE or --prompt-ids");
    if (!!g->schema_file + !!g->grammar_file + !!g->regex > 1)
        return cli_usage_error("generate", "give at most one of --json-schema, --grammar, --regex");
    return 0;
}

int cmd_generate(int argc, char **argv) {
    gen_args g = {0};
    int st = parse_args(argc, argv, &g);
    if (st) return st < 0 ? 0 : st;
    int rc = 1;
    tv_error err = {0};
    tv_model *m = NULL;
    tv_engine *e = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0, n_gen = 0, cap_gen = 0;
    char *text = NULL, *file_prompt = NULL, *constraint = NULL;
    size_t text_len = 0, text_cap = 0, prompt_len = 0;
    cJSON *out = NULL;
    if (g.prompt_file) {
        if (!(file_prompt = cli_read_file("generate", g.prompt_file, CLI_MAX_JSON, &prompt_len))) return 1;
        g.prompt = file_prompt;
    } else if (g.prompt) {
        prompt_len = strlen(g.prompt);
    }
    if (g.prompt_ids && !(ids = cli_parse_ids(g.prompt_ids, &n_ids)))
        { free(file_prompt); return cli_usage_error("generate", "--prompt-ids: '%s' is not a comma-separated list of token ids", g.prompt_ids); }

    double t0 = cli_time_ms();
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.max_num_seqs = 1;
    if (cli_open(&g.mo, &ec, &m, &e, &err)) goto fail;
    cli_sampling_from_model("generate", m, g.sp_given, g.mo.quiet, &g.sp);
    double t_load = cli_time_ms() - t0;

    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.sampling = g.sp;
    rp.max_tokens = (int)g.n_new;
    rp.ignore_eos = g.ignore_eos;
    rp.stop = g.stops;
    rp.n_stop = g.n_stops;
    rp.stop_ids = g.stop_ids;
    rp.n_stop_ids = g.n_stop_ids;
    if (g.schema_file || g.grammar_file) {
        size_t n;
        if (!(constraint = cli_read_file("generate", g.schema_file ? g.schema_file : g.grammar_file, CLI_MAX_JSON, &n))) goto done;
        rp.constraint = g.schema_file ? TV_CONSTRAINT_JSON_SCHEMA : TV_CONSTRAINT_GRAMMAR;
        rp.constraint_spec = constraint;
    } else if (g.regex) {
        rp.constraint = TV_CONSTRAINT_REGEX;
        rp.constraint_spec = g.regex;
    }
    if (g.prompt) {
        if (!tv_model_tokenizer(m)) {
            tv_error_set(&err, TV_ERR_INVALID, "%s has no tokenizer: pass --tokenizer FILE or use --prompt-ids", g.mo.model_path);
            goto fail;
        }
        // special tokens written in the prompt (<|im_start|>, <start_of_turn>, ...) are parsed, as llama.cpp does
        if (tv_tokenize(tv_model_tokenizer(m), g.prompt, prompt_len, !g.no_bos, true, &ids, &n_ids, &err))
            goto fail;
    }
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    if (g.n_given && g.n_new > 0 && n_ids < (size_t)lim.max_model_len && n_ids + (size_t)g.n_new > (size_t)lim.max_model_len)
        cli_note("generate", "-n %ld: the prompt's %zu tokens leave room for %zu new tokens in the context of %d; "
                 "generating at most %zu", g.n_new, n_ids, (size_t)lim.max_model_len - n_ids, lim.max_model_len,
                 (size_t)lim.max_model_len - n_ids);
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
            if (!g.json && !tv_model_tokenizer(m)) {   // no text without a tokenizer: the ids, as they come
                for (int j = 0; j < o->n_new; j++) printf("%s%d", n_gen - (size_t)o->n_new + (size_t)j ? " " : "", o->new_ids[j]);
                fflush(stdout);
            }
            if (o->text_len) {
                if (g.json) {
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
    tv_engine_stats es;
    tv_engine_get_stats(e, &es);
    const double accept = es.n_spec_draft_tokens ? (double)es.n_spec_accepted_tokens / (double)es.n_spec_draft_tokens : 0;
    if (g.json) {
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
        if (lim.spec != TV_SPEC_NONE) {
            cJSON *sp = cJSON_AddObjectToObject(out, "speculation");
            cJSON_AddStringToObject(sp, "method", cli_spec_name(lim.spec));
            cJSON_AddNumberToObject(sp, "tokens", lim.spec_tokens);
            if (lim.draft_layers) cJSON_AddNumberToObject(sp, "draft_layers", lim.draft_layers);
            cJSON_AddNumberToObject(sp, "verifications", (double)es.n_spec_drafts);
            cJSON_AddNumberToObject(sp, "proposed_tokens", (double)es.n_spec_draft_tokens);
            cJSON_AddNumberToObject(sp, "accepted_tokens", (double)es.n_spec_accepted_tokens);
            cJSON_AddNumberToObject(sp, "acceptance_rate", accept);
            cJSON_AddNumberToObject(sp, "rounds_speculated", (double)es.n_spec_rounds);
            cJSON_AddNumberToObject(sp, "rounds_plain", (double)es.n_spec_rounds_plain);
        }
        char *s = cJSON_PrintUnformatted(out);
        if (!s) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        puts(s);
        free(s);
    } else {
        printf("\n");
    }
    fflush(stdout);   // the text's last line before the timing line, when both go to one pipe
    fprintf(stderr, "tinyvllm: load %.0f ms | prompt %zu tok, %.1f tok/s | generation %zu tok, %.1f tok/s | finish %s | cpu %s\n",
            t_load, n_ids, pp_tps, n_gen, tg_tps, fin, tv_engine_cpu_path(e));
    if (lim.spec != TV_SPEC_NONE)
        fprintf(stderr, "tinyvllm: speculation %s, up to %d tokens | %llu verifications | accepted %llu of %llu proposed "
                        "(%.1f%%) | %.2f tokens per verification | %llu rounds speculated, %llu plain (load gate)\n",
                cli_spec_name(lim.spec), lim.spec_tokens, (unsigned long long)es.n_spec_drafts,
                (unsigned long long)es.n_spec_accepted_tokens, (unsigned long long)es.n_spec_draft_tokens, 100 * accept,
                es.n_spec_drafts ? 1.0 + (double)es.n_spec_accepted_tokens / (double)es.n_spec_drafts : 0.0,
                (unsigned long long)es.n_spec_rounds, (unsigned long long)es.n_spec_rounds_plain);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "tinyvllm generate: %s\n", err.msg[0] ? err.msg : tv_status_str(err.code));
done:
    cJSON_Delete(out);
    free(text);
    free(file_prompt);
    free(constraint);
    free(gen);
    free(ids);
    cli_free_engine(e);
    tv_model_free(m);
    return rc;
}
