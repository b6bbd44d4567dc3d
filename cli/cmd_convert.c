// cmd_convert.c — `tinyvllm convert llama2c MODEL.bin [TOKENIZER.bin] -o OUT.gguf [--name NAME]`:
// a llama2.c checkpoint (v0 or v1) -> a GGUF v3 llama model with F32 tensors that llama.cpp and
// tinyvllm load, through tv_convert_llama2c; `tinyvllm convert hf DIR -o OUT.gguf [--type T]
// [--vocab V.gguf] [--vocab-only]`: a Hugging Face folder -> GGUF through tv_convert_hf (tinyvllm_tools.h);
// `tinyvllm convert layers MODEL.gguf --layers N -o OUT.gguf`: the model's first N layers (a
// speculative-decoding draft with the model's own vocabulary) through tv_convert_first_layers.
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm_tools.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm convert llama2c MODEL.bin [TOKENIZER.bin] -o OUT.gguf [--name NAME]\n"
            "       tinyvllm convert hf DIR -o OUT.gguf [--type TYPE] [--vocab VOCAB.gguf] [--vocab-only] [-t N]\n"
            "       tinyvllm convert layers MODEL.gguf --layers N -o OUT.gguf\n"
            "\n"
            "layers: the model's first N layers, its output norm and head, every other key and tensor as\n"
            "stored: a draft for --draft-model that shares the model's vocabulary.\n"
            "  --layers N          layers to keep (1 .. the model's layers - 1)\n"
            "\n"
            "hf: a Hugging Face folder (config.json + safetensors) -> GGUF with llama.cpp's names, keys and\n"
            "layouts. --type F32|F16|BF16|Q8_0|Q4_0|... converts every matrix (default: as stored).\n"
            "The folder's tokenizer.json (+ tokenizer_config.json) becomes tokenizer.* as llama.cpp's\n"
            "converter writes it (BPE; no tokenizer.json: no vocabulary, ids only); --vocab copies\n"
            "tokenizer.* from a GGUF instead. --vocab-only writes metadata and tokenizer, no tensors.\n"
            "  -t, --threads N     converting and writing threads (default: online cores, at most 16);\n"
            "                      the summary line gives the input's GB/s\n"
            "\n"
            "Converts a llama2.c checkpoint (legacy v0 or v1 \"ak42\", fp32) to a GGUF v3 llama model.\n"
            "TOKENIZER.bin is llama2.c's tokenizer file; without it the model has no vocabulary\n"
            "(tokenizer.ggml.model = \"no_vocab\") and works on token ids only.\n"
            "  -o, --output PATH   where to write the GGUF file (required)\n"
            "  --name NAME         general.name (default: MODEL's file name without .bin)\n"
            "  -q, --quiet         no progress line (it is shown only on a terminal anyway)\n");
    fputs(CLI_HELP_USAGE, f);
}

static int fail_usage(const char *what, const char *arg) {
    fprintf(stderr, "tinyvllm convert: %s%s%s (see tinyvllm convert --help)\n", what, arg ? ": " : "", arg ? arg : "");
    return 2;
}

int cmd_convert(int argc, char **argv) {
    const char *format = NULL, *model_path = NULL, *tok_path = NULL, *out = NULL, *name = NULL, *type = NULL,
               *vocab = NULL, *layers = NULL, *threads = NULL;
    bool quiet = false, vocab_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = true; continue; }
        if (!strcmp(a, "--vocab-only")) { vocab_only = true; continue; }
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--name") || !strcmp(a, "--type") ||
            !strcmp(a, "--vocab") || !strcmp(a, "--layers") || !strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc) return fail_usage("missing value for", a);
            if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { threads = argv[++i]; continue; }
            if (!strcmp(a, "--name")) name = argv[++i];
            else if (!strcmp(a, "--type")) type = argv[++i];
            else if (!strcmp(a, "--vocab")) vocab = argv[++i];
            else if (!strcmp(a, "--layers")) layers = argv[++i];
            else out = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) return fail_usage("unknown option", a);
        if (!format) format = a;
        else if (!model_path) model_path = a;
        else if (!tok_path) tok_path = a;
        else return fail_usage("unexpected argument", a);
    }
    if (!format) return fail_usage("missing the source format (llama2c, hf, layers)", NULL);
    if (!strcmp(format, "layers")) {
        if (!model_path) return fail_usage("missing MODEL.gguf", NULL);
        if (!out) return fail_usage("missing -o OUT.gguf", NULL);
        if (!layers) return fail_usage("missing --layers N", NULL);
        if (tok_path || name || type || vocab || vocab_only || threads)
            return fail_usage("layers takes one MODEL.gguf and --layers N", tok_path ? tok_path : name ? name : type ? type : vocab ? vocab : threads);
        char *end = NULL;
        long n = strtol(layers, &end, 10);
        if (end == layers || *end || n < 1 || n > 1 << 16) return fail_usage("--layers: not a layer count", layers);
        tv_error err = {0};
        char summary[256];
        if (tv_convert_first_layers(model_path, (int)n, out, summary, sizeof summary, &err) != TV_OK) {
            fprintf(stderr, "tinyvllm convert: %s\n", err.msg);
            return err.code == TV_ERR_INVALID ? 2 : 1;
        }
        printf("wrote %s: %s\n", out, summary);
        return 0;
    }
    if (layers) return fail_usage("--layers is for layers", layers);
    long n_threads = 0;
    if (threads) {
        char *end = NULL;
        n_threads = strtol(threads, &end, 10);
        if (end == threads || *end || n_threads < 1 || n_threads > 1024) return fail_usage("--threads: not a thread count", threads);
        if (strcmp(format, "hf")) return fail_usage("--threads is for hf", threads);
    }
    if (!strcmp(format, "hf")) {
        if (!model_path) return fail_usage("missing DIR", NULL);
        if (!out) return fail_usage("missing -o OUT.gguf", NULL);
        if (tok_path || name) return fail_usage("hf takes one DIR (and no --name)", tok_path ? tok_path : name);
        tv_error err = {0};
        char summary[512];
        char what[300];
        snprintf(what, sizeof what, "convert: writing %s", out);
        cli_write_progress wp = {.what = what, .t0_ms = cli_time_ms()};
        tv_convert_hf_options o = {.type = type, .vocab_path = vocab, .vocab_only = vocab_only, .progress = cli_write_progress_fn,
                                   .progress_user = &wp, .n_threads = (int)n_threads};
        cli_progress_begin(&wp.bar, quiet);
        tv_status st = tv_convert_hf(model_path, &o, out, summary, sizeof summary, &err);
        cli_progress_end(&wp.bar);
        if (st != TV_OK) {
            fprintf(stderr, "tinyvllm convert: %s\n", err.msg);
            return err.code == TV_ERR_INVALID ? 2 : 1;
        }
        printf("wrote %s: %s\n", out, summary);
        return 0;
    }
    if (type || vocab || vocab_only) return fail_usage("--type, --vocab and --vocab-only are for hf", type ? type : vocab);
    if (strcmp(format, "llama2c")) return fail_usage("unknown source format (supported: llama2c, hf, layers)", format);
    if (!model_path) return fail_usage("missing MODEL.bin", NULL);
    if (!out) return fail_usage("missing -o OUT.gguf", NULL);

    char default_name[256];
    if (!name) {
        const char *base = strrchr(model_path, '/');
        base = base ? base + 1 : model_path;
        snprintf(default_name, sizeof default_name, "%s", base);
        size_t n = strlen(default_name);
        if (n > 4 && !strcmp(default_name + n - 4, ".bin")) default_name[n - 4] = 0;
        name = default_name;
    }

    tv_error err = { 0 };
    char summary[256];
    char what[300];
    snprintf(what, sizeof what, "convert: writing %s", out);
    cli_write_progress wp = {.what = what, .t0_ms = cli_time_ms()};
    cli_progress_begin(&wp.bar, quiet);
    tv_status st = tv_convert_llama2c(model_path, tok_path, name, out, summary, sizeof summary, cli_write_progress_fn, &wp, &err);
    cli_progress_end(&wp.bar);
    if (st != TV_OK) {
        fprintf(stderr, "tinyvllm convert: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: %s\n", out, summary);
    return 0;
}
