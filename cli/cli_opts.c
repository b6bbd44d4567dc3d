// cli_opts.c — the shared model/engine and sampling options (cli_opts.h): one table row per option.
#include "cli_opts.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_dist.h"
#include "cli_util.h"

typedef enum {
    O_MODEL, O_TOKENIZER, O_THREADS, O_CTX, O_KV_BITS, O_CACHE_K, O_CACHE_V, O_CPU, O_SPEC, O_SPEC_TOKENS, O_SPEC_ALWAYS, O_DRAFT_LAYERS, O_DRAFT_MODEL, O_QUANTIZE, O_QUIET,
    O_CACHE_DIR, O_CACHE_SIZE, O_NO_CACHE, O_PP, O_PP_SPLIT, O_PP_TIMEOUT, O_PP_WIRE,
    O_TEMP, O_TOP_K, O_TOP_P, O_MIN_P, O_REPEAT, O_PRESENCE, O_FREQUENCY, O_SEED,
} opt_id;

// One option: up to three spellings (ours first, then llama.cpp's), the value's name (NULL: a flag
// without a value), the help text.
typedef struct opt_row {
    opt_id id;
    const char *names[3];
    const char *value;
    const char *help;
} opt_row;

static const opt_row MODEL_OPTS[] = {
    {O_MODEL, {"-m", "--model"}, "PATH", "GGUF model, llama2.c checkpoint or Hugging Face folder (required)"},
    {O_QUANTIZE, {"--quantize"}, "TYPE",
     "quantize F32/F16/BF16 weights at load: Q8_0 Q4_0 Q4_K Q6_K ... (default: as stored)"},
    {O_QUIET, {"-q", "--quiet"}, NULL, "no progress lines (they are drawn only on a terminal anyway)"},
    {O_CACHE_DIR, {"--cache-dir"}, "DIR",
     "prepared-weight cache: weights repacked or quantized at load are written here once and mapped\n"
     "shared by every later process (default: $TINYVLLM_CACHE_DIR, else ~/.cache/tinyvllm)"},
    {O_CACHE_SIZE, {"--cache-size"}, "MB", "the cache folder's size limit, least recently used files evicted (default 4096)"},
    {O_NO_CACHE, {"--no-cache"}, NULL, "prepare weights in this process only (no cache read or written)"},
    {O_TOKENIZER, {"--tokenizer"}, "FILE",
     "tokenizer when the model has none: llama2.c tokenizer.bin, tokenizer.json or a GGUF holding one"},
    {O_THREADS, {"-t", "--threads"}, "N", "worker threads (default: all online cores; more is capped to them)"},
    {O_CTX, {"-c", "--ctx-size", "--ctx"}, "N", "context length (default and maximum: the model's; 0 = the model's)"},
    {O_KV_BITS, {"--kv-bits"}, "16|32", "KV cache element size (default: 32 for f32 models, else 16)"},
    {O_CACHE_K, {"-ctk", "--cache-type-k"}, "f16|f32", "llama.cpp's spelling of --kv-bits (K and V share one type)"},
    {O_CACHE_V, {"-ctv", "--cache-type-v"}, "f16|f32", "the same, for V"},
    {O_CPU, {"--cpu"}, "PATH",
     "kernel path: generic|avx2|avx2-novnni|avx512|avx512-novnni|amx (default: $TINYVLLM_CPU, else the best\n"
     "this CPU has); TINYVLLM_REPACK=0 keeps weights as stored"},
    {O_SPEC, {"--spec"}, "ngram|draft|mtp",
     "speculative decoding, output unchanged (default: off): propose tokens by prompt lookup (n-grams of\n"
     "the request's own prompt and output), by a self-draft (the model's first --draft-layers layers\n"
     "and its head) or by the file's MTP layer (nextn_predict_layers: deepseek2, glm4moe, qwen35 ...);\n"
     "verified in the batch, and used only while the measured step times say it pays"},
    {O_SPEC_TOKENS, {"--spec-tokens", "--draft-max"}, "K", "tokens proposed per sequence and step at most (1..16, default 4; needs --spec)"},
    {O_SPEC_ALWAYS, {"--spec-always"}, NULL, "speculate in every step, even where plain decoding measured faster (needs --spec)"},
    {O_DRAFT_LAYERS, {"--draft-layers"}, "N", "--spec draft: layers of the self-draft (1 .. the model's layers - 1)"},
    {O_DRAFT_MODEL, {"--draft-model", "-md", "--model-draft"}, "PATH",
     "speculative decoding with a draft model (implies --spec draft): a smaller model with the same\n"
     "vocabulary proposes (its argmax; with sampling, a draw checked by rejection sampling); its KV\n"
     "shares the target's blocks (see info: KV bytes per block)"},
    {O_PP, {"--pp"}, "N",
     "pipeline parallelism over MPI: run as `mpirun -np N tinyvllm ... --pp N`; each rank holds a range of\n"
     "layers (balanced by bytes), only their weights and KV cache; rank 0 prints/serves"},
    {O_PP_SPLIT, {"--pp-split"}, "a,b,...", "--pp: layers per stage, in rank order (default: balanced by bytes)"},
    {O_PP_TIMEOUT, {"--pp-timeout"}, "S", "--pp: seconds to wait for another rank before failing (default 30)"},
    {O_PP_WIRE, {"--pp-wire"}, "f32|f16",
     "--pp: the hidden state between stages (default f32: outputs of one process; f16: half the bytes, may differ)"},
};

static const opt_row SAMPLING_OPTS[] = {
    {O_TEMP, {"--temp", "--temperature"}, "T", "temperature (default 0.8; 0 = greedy)"},
    {O_TOP_K, {"--top-k"}, "K", "keep the K most likely tokens (default 40; 0 = off)"},
    {O_TOP_P, {"--top-p"}, "P", "nucleus sampling (default 0.95; 1 = off)"},
    {O_MIN_P, {"--min-p"}, "P", "drop tokens below P times the top probability (default 0.05; 0 = off)"},
    {O_REPEAT, {"--repeat-penalty"}, "R", "penalize repeated tokens (default 1.0 = off)"},
    {O_PRESENCE, {"--presence-penalty"}, "P", "OpenAI presence penalty over the generated tokens (default 0 = off)"},
    {O_FREQUENCY, {"--frequency-penalty"}, "F", "OpenAI frequency penalty (default 0 = off)"},
    {O_SEED, {"-s", "--seed"}, "S", "RNG seed (default: random; -1 = random, as llama.cpp)"},
};

#define N_ROWS(t) (sizeof(t) / sizeof((t)[0]))

static void print_rows(FILE *f, const opt_row *rows, size_t n) {
    for (size_t r = 0; r < n; r++) {
        char left[96];
        int len = snprintf(left, sizeof left, "  ");
        for (int k = 0; k < 3 && rows[r].names[k]; k++)
            len += snprintf(left + len, sizeof left - (size_t)len, "%s%s", k ? ", " : "", rows[r].names[k]);
        if (rows[r].value) snprintf(left + len, sizeof left - (size_t)len, " %s", rows[r].value);
        fprintf(f, "%-30s ", left);
        for (const char *p = rows[r].help; *p; p++) {   // continuation lines line up with the first
            fputc(*p, f);
            if (*p == '\n') fprintf(f, "%-30s ", "");
        }
        fputc('\n', f);
    }
}

void cli_model_usage(FILE *f) { print_rows(f, MODEL_OPTS, N_ROWS(MODEL_OPTS)); }
void cli_sampling_usage(FILE *f) { print_rows(f, SAMPLING_OPTS, N_ROWS(SAMPLING_OPTS)); }

// The row whose spelling a is, or NULL.
static const opt_row *find_row(const opt_row *rows, size_t n, const char *a) {
    for (size_t r = 0; r < n; r++)
        for (int k = 0; k < 3 && rows[r].names[k]; k++)
            if (!strcmp(a, rows[r].names[k])) return &rows[r];
    return NULL;
}

// The value of the option at argv[*i] (advancing *i), or NULL after printing that it is missing.
static const char *value_of(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o) {
    const char *a = argv[*i], *v;
    const opt_row *row = find_row(MODEL_OPTS, N_ROWS(MODEL_OPTS), a);
    if (!row) return 0;
    o->cmd = cmd;
    if (row->id == O_QUIET) { o->quiet = true; return 1; }
    if (row->id == O_NO_CACHE) { o->no_cache = true; return 1; }
    if (row->id == O_SPEC_ALWAYS) { o->spec_always = true; return 1; }
    if (!(v = value_of(cmd, argc, argv, i))) return 2;
    switch (row->id) {
    case O_MODEL: o->model_path = v; break;
    case O_DRAFT_MODEL: o->draft_path = v; break;
    case O_TOKENIZER: o->tok_path = v; break;
    case O_CPU: o->cpu = v; break;
    case O_QUANTIZE: o->quantize = v; break;
    case O_CACHE_DIR: o->cache_dir = v; break;
    case O_CACHE_SIZE:
        if (!cli_parse_long(v, 1, 1L << 30, &o->cache_mb)) return cli_usage_error(cmd, "%s: '%s' is not a size in MB", a, v);
        break;
    case O_THREADS:
        if (!cli_parse_long(v, 1, 1024, &o->threads)) return cli_usage_error(cmd, "%s: '%s' is not a valid thread count", a, v);
        break;
    case O_CTX:
        if (!cli_parse_long(v, 0, 1L << 24, &o->ctx) || o->ctx == 1)
            return cli_usage_error(cmd, "%s: '%s' is not a valid context length (>= 2, or 0 for the model's)", a, v);
        break;
    case O_KV_BITS:
        if (!cli_parse_long(v, 16, 32, &o->kv_bits) || (o->kv_bits != 16 && o->kv_bits != 32))
            return cli_usage_error(cmd, "%s: 16 or 32", a);
        break;
    case O_CACHE_K:
    case O_CACHE_V: {
        long bits = !strcmp(v, "f16") ? 16 : !strcmp(v, "f32") ? 32 : 0;
        if (!bits) return cli_usage_error(cmd, "%s: '%s' is not supported here (f16 or f32)", a, v);
        if (o->kv_bits && o->kv_bits != bits)
            return cli_usage_error(cmd, "%s %s: K and V share one cache type here (already %s)", a, v, o->kv_bits == 16 ? "f16" : "f32");
        o->kv_bits = bits;
        break;
    }
    case O_SPEC:
        if (!strcmp(v, "ngram")) o->spec = TV_SPEC_NGRAM;
        else if (!strcmp(v, "draft")) o->spec = TV_SPEC_SELF_DRAFT;
        else if (!strcmp(v, "mtp")) o->spec = TV_SPEC_MTP;
        else return cli_usage_error(cmd, "%s: '%s' is not a proposer (ngram, draft or mtp)", a, v);
        break;
    case O_DRAFT_LAYERS:
        if (!cli_parse_long(v, 1, 1 << 16, &o->draft_layers)) return cli_usage_error(cmd, "%s: '%s' is not a layer count", a, v);
        break;
    case O_PP:
        if (!cli_parse_long(v, 1, 64, &o->pp)) return cli_usage_error(cmd, "%s: '%s' is not a stage count (1..64)", a, v);
        break;
    case O_PP_SPLIT: o->pp_split = v; break;
    case O_PP_WIRE:
        if (strcmp(v, "f32") && strcmp(v, "f16")) return cli_usage_error(cmd, "%s: '%s' is not f32 or f16", a, v);
        o->pp_wire_f16 = !strcmp(v, "f16");
        break;
    case O_PP_TIMEOUT:
        if (!cli_parse_long(v, 1, 86400, &o->pp_timeout)) return cli_usage_error(cmd, "%s: '%s' is not a number of seconds", a, v);
        break;
    case O_SPEC_TOKENS:
        if (!cli_parse_long(v, 1, TV_SPEC_MAX_TOKENS, &o->spec_tokens))
            return cli_usage_error(cmd, "%s: '%s' is not a count in 1..%d", a, v, TV_SPEC_MAX_TOKENS);
        break;
    default: return 0;
    }
    return 1;
}

int cli_sampling_opt(const char *cmd, int argc, char **argv, int *i, tv_sampling_params *sp, unsigned *given) {
    const char *a = argv[*i], *v;
    const opt_row *row = find_row(SAMPLING_OPTS, N_ROWS(SAMPLING_OPTS), a);
    if (!row) return 0;
    if (!(v = value_of(cmd, argc, argv, i))) return 2;
    long k;
    switch (row->id) {
    case O_TEMP:
        *given |= TV_SAMPLE_TEMPERATURE;
        if (!cli_parse_float(v, 0, 100, &sp->temperature)) return cli_usage_error(cmd, "%s: '%s' invalid (0 = greedy)", a, v);
        break;
    case O_TOP_K:
        *given |= TV_SAMPLE_TOP_K;
        if (!cli_parse_long(v, 0, 1L << 24, &k)) return cli_usage_error(cmd, "%s: '%s' invalid", a, v);
        sp->top_k = (int)k;
        break;
    case O_TOP_P:
        *given |= TV_SAMPLE_TOP_P;
        if (!cli_parse_float(v, 1e-6f, 1, &sp->top_p)) return cli_usage_error(cmd, "%s: '%s' must be in (0, 1]", a, v);
        break;
    case O_MIN_P:
        *given |= TV_SAMPLE_MIN_P;
        if (!cli_parse_float(v, 0, 1, &sp->min_p)) return cli_usage_error(cmd, "%s: '%s' must be in [0, 1]", a, v);
        break;
    case O_REPEAT:
        *given |= TV_SAMPLE_REPETITION_PENALTY;
        if (!cli_parse_float(v, 1e-3f, 100, &sp->repetition_penalty)) return cli_usage_error(cmd, "%s: '%s' invalid", a, v);
        break;
    case O_PRESENCE:
        if (!cli_parse_float(v, -2, 2, &sp->presence_penalty)) return cli_usage_error(cmd, "%s: '%s' must be in [-2, 2]", a, v);
        break;
    case O_FREQUENCY:
        if (!cli_parse_float(v, -2, 2, &sp->frequency_penalty)) return cli_usage_error(cmd, "%s: '%s' must be in [-2, 2]", a, v);
        break;
    case O_SEED: {
        if (!strcmp(v, "-1")) { sp->has_seed = false; break; }   // llama.cpp's "random"
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || *end || end == v || *v == '-') return cli_usage_error(cmd, "%s: '%s' invalid", a, v);
        sp->seed = s;
        sp->has_seed = true;
        break;
    }
    default: return 0;
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

void cli_sampling_from_model(const char *cmd, const tv_model *m, unsigned given, bool quiet, tv_sampling_params *sp) {
    unsigned set = tv_model_sampling_defaults(m, given, sp);
    if (!set || quiet) return;
    char buf[200];
    size_t n = 0;
    if (set & TV_SAMPLE_TEMPERATURE) n += (size_t)snprintf(buf + n, sizeof buf - n, " --temp %g", (double)sp->temperature);
    if (set & TV_SAMPLE_TOP_K) n += (size_t)snprintf(buf + n, sizeof buf - n, " --top-k %d", sp->top_k);
    if (set & TV_SAMPLE_TOP_P) n += (size_t)snprintf(buf + n, sizeof buf - n, " --top-p %g", (double)sp->top_p);
    if (set & TV_SAMPLE_MIN_P) n += (size_t)snprintf(buf + n, sizeof buf - n, " --min-p %g", (double)sp->min_p);
    if (set & TV_SAMPLE_REPETITION_PENALTY) snprintf(buf + n, sizeof buf - n, " --repeat-penalty %g", (double)sp->repetition_penalty);
    cli_note(cmd, "the model's recommended sampling:%s (a flag overrides it)", buf);
}

// -t N capped to the online cores (more threads than cores only wait on each other), with a note.
static long capped_threads(const cli_model_opts *o) {
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (o->threads <= 0 || n_cpu <= 0 || o->threads <= n_cpu) return o->threads;
    cli_note(o->cmd, "-t %ld is more than the %ld online cores; using %ld threads", o->threads, n_cpu, n_cpu);
    return n_cpu;
}

// Load-time work (quantizing, repacking) on a terminal: "quantizing 42%" redrawn in place on stderr;
// user is a cli_progress.
static void show_progress(void *user, const char *what, double frac) {
    cli_progress_update(user, "%s %3.0f%%", what, frac * 100);
}

// The prepared-weight cache folder (created): --cache-dir, $TINYVLLM_CACHE_DIR, $XDG_CACHE_HOME/tinyvllm,
// ~/.cache/tinyvllm; NULL with --no-cache or when none can be made (the load then prepares privately).
static const char *cache_dir(const cli_model_opts *o, char *buf, size_t cap) {
    if (o->no_cache) return NULL;
    const char *d = o->cache_dir ? o->cache_dir : getenv("TINYVLLM_CACHE_DIR");
    if (d && *d) snprintf(buf, cap, "%s", d);
    else if ((d = getenv("XDG_CACHE_HOME")) && *d) snprintf(buf, cap, "%s/tinyvllm", d);
    else if ((d = getenv("HOME")) && *d) snprintf(buf, cap, "%s/.cache/tinyvllm", d);
    else return NULL;
    for (char *p = buf + 1; *p; p++) {   // mkdir -p
        if (*p != '/') continue;
        *p = 0;
        (void)mkdir(buf, 0777);
        *p = '/';
    }
    return mkdir(buf, 0777) == 0 || errno == EEXIST ? buf : NULL;
}

// Loads path with the options' load parameters (kernel path, threads, cache, --quantize); the model
// itself (path == o->model_path) with --pp through the pipeline's loader (this rank's layers).
// is_mtp: its MTP layer (tv_model_params.mtp).
static tv_model *load_with(const cli_model_opts *o, const char *path, bool is_mtp, tv_error *err) {
    const char *cpu = o->cpu && *o->cpu ? o->cpu : getenv("TINYVLLM_CPU");
    const char *repack = getenv("TINYVLLM_REPACK");
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = o->tok_path;
    mp.cpu_path = cpu && *cpu ? cpu : NULL;
    mp.no_repack = repack && !strcmp(repack, "0");
    const char *mla = getenv("TINYVLLM_MLA");   // deepseek2: "absorbed" | "expanded" forces a latent attention form
    mp.mla_form = mla && !strcmp(mla, "absorbed") ? TV_MLA_ABSORBED : mla && !strcmp(mla, "expanded") ? TV_MLA_EXPANDED
                                                                                                     : TV_MLA_AUTO;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    mp.n_threads = (int)(o->threads > 0 && n_cpu > 0 && o->threads > n_cpu ? n_cpu : o->threads);
    mp.quantize = o->quantize;
    mp.mtp = is_mtp;
    char dir[4096];
    mp.cache_dir = cache_dir(o, dir, sizeof dir);
    mp.cache_max_bytes = (uint64_t)(o->cache_mb ? o->cache_mb : 4096) << 20;
    cli_progress bar;
    cli_progress_begin(&bar, o->quiet);
    mp.progress = show_progress;
    mp.progress_user = &bar;
    if ((o->pp_split || o->pp_wire_f16) && o->pp < 2 && path == o->model_path) {
        cli_progress_end(&bar);
        tv_error_set(err, TV_ERR_INVALID, "%s needs --pp N (N > 1)", o->pp_split ? "--pp-split" : "--pp-wire");
        return NULL;
    }
    tv_model *m = o->pp > 1 && path == o->model_path && !is_mtp ? cli_dist_load(o, &mp, err) : tv_model_load(path, &mp, err);
    cli_progress_end(&bar);
    if (!m) return NULL;
    const char *note = tv_model_cache_note(m);
    if (note && strncmp(note, "hit ", 4) && strncmp(note, "wrote ", 6))   // rebuilt or not written: say so
        fprintf(stderr, "tinyvllm %s: weight cache %s\n", o->cmd ? o->cmd : "", note);
    return m;
}

tv_status cli_load_model(const cli_model_opts *o, tv_model **m, tv_error *err) {
    return (*m = load_with(o, o->model_path, false, err)) ? TV_OK : err->code;
}

tv_status cli_create_engine(const cli_model_opts *o, tv_model *m, tv_engine_config *ec, tv_engine **e, tv_error *err) {
    const char *cpu = o->cpu && *o->cpu ? o->cpu : getenv("TINYVLLM_CPU");
    long threads = capped_threads(o);
    if (threads > 0) ec->n_threads = (int)threads;
    ec->cpu_path = cpu && *cpu ? cpu : NULL;
    if (o->ctx > 0) {
        int n_ctx = tv_model_n_ctx(m);
        if (o->ctx > n_ctx) cli_note(o->cmd, "-c %ld is above the model's context of %d tokens; using %d", o->ctx, n_ctx, n_ctx);
        ec->max_model_len = (int)(o->ctx < n_ctx ? o->ctx : n_ctx);
    }
    if (o->kv_bits) ec->kv_bits = (int)o->kv_bits;
    *e = NULL;
    if (o->spec_tokens && o->spec == TV_SPEC_NONE && !o->draft_path)
        return tv_error_set(err, TV_ERR_INVALID, "--spec-tokens needs --spec ngram|draft|mtp or --draft-model");
    if (o->spec_always && o->spec == TV_SPEC_NONE && !o->draft_path)
        return tv_error_set(err, TV_ERR_INVALID, "--spec-always needs --spec ngram|draft|mtp or --draft-model");
    if (o->draft_path && (o->spec == TV_SPEC_NGRAM || o->spec == TV_SPEC_MTP || o->draft_layers))
        return tv_error_set(err, TV_ERR_INVALID, "--draft-model goes with neither --spec ngram|mtp nor --draft-layers (one proposer at a time)");
    if (!o->draft_path && (o->spec == TV_SPEC_SELF_DRAFT) != (o->draft_layers > 0))
        return tv_error_set(err, TV_ERR_INVALID, "--spec draft needs --draft-layers N (self-draft) or --draft-model PATH");
    ec->spec = o->draft_path ? TV_SPEC_DRAFT_MODEL : o->spec;
    ec->spec_tokens = (int)o->spec_tokens;
    ec->spec_always = o->spec_always;
    ec->draft_layers = (int)o->draft_layers;
    ec->draft_model = NULL;
    if ((o->draft_path || o->spec == TV_SPEC_MTP) && o->pp > 1)
        return tv_error_set(err, TV_ERR_INVALID, "%s does not go with --pp (pipeline parallelism)", o->draft_path ? "--draft-model" : "--spec mtp");
    if (o->draft_path && !(ec->draft_model = load_with(o, o->draft_path, false, err))) {
        cli_error_prefix(err, "draft model");
        return err->code;
    }
    if (o->spec == TV_SPEC_MTP && !(ec->draft_model = load_with(o, o->model_path, true, err))) {
        cli_error_prefix(err, "--spec mtp");
        return err->code;
    }
    if (!(*e = o->pp > 1 ? cli_dist_engine(o, m, ec, err) : tv_engine_create(m, ec, err))) {
        tv_model_free(ec->draft_model);
        ec->draft_model = NULL;
        return err->code;
    }
    return TV_OK;
}

void cli_free_engine(tv_engine *e) {
    if (!e) return;
    tv_model *draft = tv_engine_draft_model(e);
    tv_engine_free(e);
    tv_model_free(draft);
}

const char *cli_spec_name(tv_spec_method m) {
    return m == TV_SPEC_NGRAM ? "ngram" : m == TV_SPEC_SELF_DRAFT ? "draft" : m == TV_SPEC_DRAFT_MODEL ? "draft-model" : m == TV_SPEC_MTP ? "mtp" : "off";
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
