// cli_opts.c — the shared model/engine and sampling options (cli_opts.h).
#include "cli_opts.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

const char CLI_MODEL_USAGE[] =
    "  -m, --model PATH    GGUF model or llama2.c checkpoint (required)\n"
    "  --tokenizer FILE    llama2.c tokenizer.bin or tokenizer.json, when the model has none\n"
    "  -t, --threads N     worker threads (default: all cores)\n"
    "  --ctx N             cap the context length (default: the model's)\n"
    "  --kv-bits 16|32     KV cache element size (default: 32 for f32 models, else 16)\n"
    "  --cpu PATH          kernel path: generic|avx2|avx2-novnni|avx512|avx512-novnni (default: $TINYVLLM_CPU,\n"
    "                      else the best this CPU has); TINYVLLM_REPACK=0 keeps weights as stored\n"
    "  --spec ngram        speculative decoding: propose tokens by prompt lookup (n-grams of the request's\n"
    "                      own prompt and output), verified in the batch; output unchanged (default: off)\n"
    "  --spec-tokens K     tokens proposed per sequence and step at most (1..16, default 4; needs --spec)\n";

const char CLI_SAMPLING_USAGE[] =
    "  --temp T            temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K (default 40; 0 = off)   --top-p P (default 0.95)   --min-p P (default 0.05)\n"
    "  --repeat-penalty R  (default 1.0 = off)\n"
    "  --seed S            RNG seed (default: random)\n";

// The value of the option at argv[*i] (advancing *i), or NULL after printing that it is missing.
static const char *value_of(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool is_opt(const char *a, const char *s, const char *l) { return !strcmp(a, s) || (l && !strcmp(a, l)); }

int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o) {
    const char *a = argv[*i], *v;
    if (is_opt(a, "-m", "--model")) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        o->model_path = v;
    } else if (is_opt(a, "--tokenizer", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        o->tok_path = v;
    } else if (is_opt(a, "--cpu", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        o->cpu = v;
    } else if (is_opt(a, "-t", "--threads")) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_long(v, 1, 1024, &o->threads)) return cli_usage_error(cmd, "%s: '%s' is not a valid thread count", a, v);
    } else if (is_opt(a, "--ctx", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_long(v, 2, 1L << 24, &o->ctx)) return cli_usage_error(cmd, "--ctx: '%s' is not a valid length (>= 2)", v);
    } else if (is_opt(a, "--kv-bits", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_long(v, 16, 32, &o->kv_bits) || (o->kv_bits != 16 && o->kv_bits != 32))
            return cli_usage_error(cmd, "--kv-bits: 16 or 32");
    } else if (is_opt(a, "--spec", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (strcmp(v, "ngram")) return cli_usage_error(cmd, "--spec: '%s' is not a proposer (ngram)", v);
        o->spec = TV_SPEC_NGRAM;
    } else if (is_opt(a, "--spec-tokens", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_long(v, 1, TV_SPEC_MAX_TOKENS, &o->spec_tokens))
            return cli_usage_error(cmd, "--spec-tokens: '%s' is not a count in 1..%d", v, TV_SPEC_MAX_TOKENS);
    } else {
        return 0;
    }
    return 1;
}

int cli_sampling_opt(const char *cmd, int argc, char **argv, int *i, tv_sampling_params *sp) {
    const char *a = argv[*i], *v;
    if (is_opt(a, "--temp", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_float(v, 0, 100, &sp->temperature)) return cli_usage_error(cmd, "--temp: '%s' invalid", v);
    } else if (is_opt(a, "--top-k", NULL)) {
        long k;
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_long(v, 0, 1L << 24, &k)) return cli_usage_error(cmd, "--top-k: '%s' invalid", v);
        sp->top_k = (int)k;
    } else if (is_opt(a, "--top-p", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_float(v, 1e-6f, 1, &sp->top_p)) return cli_usage_error(cmd, "--top-p: '%s' must be in (0, 1]", v);
    } else if (is_opt(a, "--min-p", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_float(v, 0, 1, &sp->min_p)) return cli_usage_error(cmd, "--min-p: '%s' must be in [0, 1]", v);
    } else if (is_opt(a, "--repeat-penalty", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        if (!cli_parse_float(v, 1e-3f, 100, &sp->repetition_penalty))
            return cli_usage_error(cmd, "--repeat-penalty: '%s' invalid", v);
    } else if (is_opt(a, "--seed", NULL)) {
        if (!(v = value_of(cmd, argc, argv, i))) return 2;
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || *end || end == v || *v == '-') return cli_usage_error(cmd, "--seed: '%s' invalid", v);
        sp->seed = s;
        sp->has_seed = true;
    } else {
        return 0;
    }
    return 1;
}

void cli_sampling_defaults(tv_sampling_params *sp) {
    tv_sampling_params_default(sp);
    sp->temperature = 0.8f;
    sp->top_k = 40;
    sp->top_p = 0.95f;
    sp->min_p = 0.05f;
}

tv_status cli_load_model(const cli_model_opts *o, tv_model **m, tv_error *err) {
    const char *cpu = o->cpu && *o->cpu ? o->cpu : getenv("TINYVLLM_CPU");
    const char *repack = getenv("TINYVLLM_REPACK");
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = o->tok_path;
    mp.cpu_path = cpu && *cpu ? cpu : NULL;
    mp.no_repack = repack && !strcmp(repack, "0");
    mp.n_threads = (int)o->threads;
    return (*m = tv_model_load(o->model_path, &mp, err)) ? TV_OK : err->code;
}

tv_status cli_create_engine(const cli_model_opts *o, tv_model *m, tv_engine_config *ec, tv_engine **e, tv_error *err) {
    const char *cpu = o->cpu && *o->cpu ? o->cpu : getenv("TINYVLLM_CPU");
    if (o->threads > 0) ec->n_threads = (int)o->threads;
    ec->cpu_path = cpu && *cpu ? cpu : NULL;
    if (o->ctx > 0) ec->max_model_len = (int)o->ctx;
    if (o->kv_bits) ec->kv_bits = (int)o->kv_bits;
    if (o->spec_tokens && o->spec == TV_SPEC_NONE) {
        *e = NULL;
        return tv_error_set(err, TV_ERR_INVALID, "--spec-tokens needs --spec ngram");
    }
    ec->spec = o->spec;
    ec->spec_tokens = (int)o->spec_tokens;
    return (*e = tv_engine_create(m, ec, err)) ? TV_OK : err->code;
}

tv_status cli_open(const cli_model_opts *o, tv_engine_config *ec, tv_model **m, tv_engine **e, tv_error *err) {
    *e = NULL;
    tv_status st = cli_load_model(o, m, err);
    if (st) return st;
    if ((st = cli_create_engine(o, *m, ec, e, err))) {
        tv_model_free(*m);
        *m = NULL;
    }
    return st;
}
