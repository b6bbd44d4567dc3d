// cmd_synth.c — `tinyvllm synth --preset NAME [--type T] [--vocab VOCAB.gguf] [--seed S]
// [--threads N] -o OUT.gguf`: a deterministic random-weight llama GGUF (src/model/synth.h); or
// `--arch NAME` instead of --preset: a small model of that family's llama.cpp layout.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm_tools.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm synth --preset NAME [--type TYPE] [--vocab VOCAB.gguf] [--seed S] [--threads N]\n"
            "                      [--deep-from N --deep-scale S] -o OUT.gguf\n"
            "       tinyvllm synth --arch NAME [--type TYPE] [--seed S] [--threads N] [--format gguf|hf] [--mtp] -o OUT\n"
            "\n"
            "Writes a GGUF with deterministic RANDOM weights (same preset or arch, type, seed and vocab ->\n"
            "identical bytes). For demos, tests and benchmarks: its text is gibberish.\n"
            "  --preset NAME   a llama model: %s\n"
            "  --arch NAME     a small model in that family's llama.cpp layout and metadata, every family\n"
            "                  feature active (512-token synthetic vocab): %s\n"
            "  --type TYPE     F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K (default F32; Q4_K is a Q4_K_M-style mix),\n"
            "                  or MXFP4 for an arch with experts (experts MXFP4, the rest Q8_0, as gpt-oss ships)\n"
            "  --vocab PATH    copy tokenizer.* from this GGUF (vocab size = its token count);\n"
            "                  default: a synthetic SentencePiece vocab of the preset's size\n"
            "  --format F      gguf (default), or hf (--arch only): OUT becomes a Hugging Face folder\n"
            "                  (config.json + model.safetensors with the family's HF names; F32 F16 BF16)\n"
            "  --deep-from N   (--preset) layers N.. write --deep-scale S (0 < S <= 1) times as much into the\n"
            "  --deep-scale S  residual (attn_output, ffn_down scaled): deep layers refine instead of overwrite,\n"
            "                  so the first N layers (`convert layers --layers N`) make a draft that agrees\n"
            "                  with the model: a speculative decoding pair (docs/architecture.md)\n"
            "  --mtp           (--arch qwen35|qwen35moe|qwen3next) one more layer, an MTP (nextn) layer, for\n"
            "                  `--spec mtp` (glm4moe files always have one)\n"
            "  --seed S        random seed (default 1)\n"
            "  --threads N     quantization threads (default: online CPUs)\n"
            "  -o, --output PATH  where to write the GGUF file (required)\n"
            "  -q, --quiet     no progress line (it is shown only on a terminal anyway)\n",
            tv_synth_preset_names(), tv_synth_arch_names());
    fputs(CLI_HELP_USAGE, f);
}

static int fail_usage(const char *what, const char *arg) {
    fprintf(stderr, "tinyvllm synth: %s%s%s (see tinyvllm synth --help)\n", what, arg ? ": " : "", arg ? arg : "");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return false;
    *out = v;
    return true;
}

int cmd_synth(int argc, char **argv) {
    tv_synth_options p = { .type = "F32", .seed = 1 };
    const char *out = NULL;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    p.n_threads = n_cpu > 0 ? (int)n_cpu : 1;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = true; continue; }
        if (!strcmp(a, "--mtp")) { p.mtp = true; continue; }
        bool takes = !strcmp(a, "--preset") || !strcmp(a, "--arch") || !strcmp(a, "--type") || !strcmp(a, "--vocab") || !strcmp(a, "--seed") ||
                     !strcmp(a, "--threads") || !strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--format") ||
                     !strcmp(a, "--deep-from") || !strcmp(a, "--deep-scale");
        if (!takes) return fail_usage(a[0] == '-' ? "unknown option" : "unexpected argument", a);
        if (i + 1 >= argc) return fail_usage("missing value for", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) {
            if (!tv_synth_find_preset(v)) return fail_usage("unknown preset", v);
            p.preset = v;
        } else if (!strcmp(a, "--arch")) {
            p.arch = v;
        } else if (!strcmp(a, "--type")) {
            p.type = v;
        } else if (!strcmp(a, "--format")) {
            p.format = v;
        } else if (!strcmp(a, "--vocab")) {
            p.vocab_path = v;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, &p.seed)) return fail_usage("bad seed", v);
        } else if (!strcmp(a, "--deep-from")) {
            uint64_t n;
            if (!parse_u64(v, &n) || n < 1 || n > 4096) return fail_usage("bad layer", v);
            p.deep_from = (int)n;
        } else if (!strcmp(a, "--deep-scale")) {
            char *end;
            errno = 0;
            const double d = strtod(v, &end);
            if (errno || end == v || *end || !(d > 0.0 && d <= 1.0)) return fail_usage("bad scale (0 < S <= 1)", v);
            p.deep_scale = (float)d;
        } else if (!strcmp(a, "--threads")) {
            uint64_t t;
            if (!parse_u64(v, &t) || t < 1 || t > 256) return fail_usage("bad thread count", v);
            p.n_threads = (int)t;
        } else {
            out = v;
        }
    }
    if (!p.preset == !p.arch) return fail_usage("give one of --preset and --arch", NULL);
    if (!out) return fail_usage("missing -o OUT.gguf", NULL);
    if ((p.deep_from > 0) != (p.deep_scale > 0.0f)) return fail_usage("--deep-from and --deep-scale go together", NULL);

    tv_error err = { 0 };
    double t0 = cli_time_ms();
    char what[300];
    snprintf(what, sizeof what, "synth: writing %s", out);
    cli_write_progress wp = {.what = what, .t0_ms = t0};
    cli_progress_begin(&wp.bar, quiet);
    p.progress = cli_write_progress_fn;
    p.progress_user = &wp;
    tv_status st = tv_synth_write(&p, out, &err);
    cli_progress_end(&wp.bar);
    if (st != TV_OK) {
        fprintf(stderr, "tinyvllm synth: %s\n", err.msg);
        return err.code == TV_ERR_INVALID ? 2 : 1;
    }
    struct stat sb;
    char weights[4200];
    snprintf(weights, sizeof weights, "%s/model.safetensors", out);
    long long size = stat(p.format && !strcmp(p.format, "hf") ? weights : out, &sb) == 0 ? (long long)sb.st_size : -1;
    const tv_synth_shape *ps = p.preset ? tv_synth_find_preset(p.preset) : NULL;
    char deep[96] = "";
    if (p.deep_from) snprintf(deep, sizeof deep, "; layers %d.. write %g times as much into the residual", p.deep_from, (double)p.deep_scale);
    if (ps)
        printf("wrote %s: preset %s (dim %d, layers %d, heads %d/%d kv, ffn %d, ctx %d), %s, seed %llu, %s, "
               "%.1f MiB in %.1f s (RANDOM weights%s)\n",
               out, ps->name, ps->dim, ps->n_layers, ps->n_heads, ps->n_kv_heads, ps->hidden_dim, ps->ctx,
               p.type, (unsigned long long)p.seed, p.vocab_path ? p.vocab_path : "synthetic vocab",
               (double)size / (1024.0 * 1024.0), (cli_time_ms() - t0) / 1e3, deep);
    else
        printf("wrote %s: arch %s, %s, seed %llu, %.1f MiB in %.1f s (RANDOM weights)\n", out, p.arch, p.type,
               (unsigned long long)p.seed, (double)size / (1024.0 * 1024.0), (cli_time_ms() - t0) / 1e3);
    return 0;
}
