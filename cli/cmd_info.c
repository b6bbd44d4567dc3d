// cmd_info.c — `tinyvllm info -m MODEL`: architecture, hyperparameters, tensor types and sizes,
// tokenizer and context length. Reads the container directly so it also describes files tinyvllm
// cannot run (it says why).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

static void print_bytes(double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    printf("%.2f %s", b, u[i]);
}

// Prints every metadata value: strings cut at 60 bytes with newlines as spaces, arrays as "[type × n]".
static void print_meta(const tv_file *f) {
    printf("metadata (%lld keys):\n", (long long)tv_file_n_meta(f));
    for (int64_t i = 0; i < tv_file_n_meta(f); i++) {
        char val[64];
        size_t len = tv_file_meta_text(f, i, val, sizeof val);
        size_t str_len;
        bool is_str = tv_file_meta_str(f, tv_file_meta_key(f, i), &str_len) != NULL;
        printf("  %-44s ", tv_file_meta_key(f, i));
        if (!is_str) { printf("%s\n", val); continue; }
        if (len > 60) val[60] = 0;
        for (char *c = val; *c; c++) if (*c == '\n') *c = ' ';
        printf("\"%s%s\"\n", val, len > 60 ? "..." : "");
    }
}

enum { N_TYPE_IDS = 64 };   // GGUF type ids in use are < 40
typedef struct { int64_t n; size_t bytes; int64_t elems; const char *name; } type_sum;

static void print_tensors(const tv_file *f, bool verbose) {
    type_sum sums[N_TYPE_IDS];
    memset(sums, 0, sizeof sums);
    size_t total = 0;
    int64_t total_elems = 0, n = tv_file_n_tensors(f);
    if (verbose) printf("tensors (%lld):\n", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        tv_tensor_desc t;
        tv_file_tensor(f, i, &t);
        int64_t el = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        if (verbose) {
            printf("  %-32s %-6s [", t.name ? t.name : "?", t.type_name);
            for (int d = 0; d < t.n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t.ne[d]);
            printf("] ");
            print_bytes((double)t.nbytes);
            printf("\n");
        }
        if ((unsigned)t.type < N_TYPE_IDS) {
            sums[t.type].n++;
            sums[t.type].bytes += t.nbytes;
            sums[t.type].elems += el;
            sums[t.type].name = t.type_name;
        }
        total += t.nbytes;
        total_elems += el;
    }
    printf("tensor types:\n");
    for (int ty = 0; ty < N_TYPE_IDS; ty++) {
        if (!sums[ty].n) continue;
        printf("  %-6s %4lld tensors  %12lld params  ", sums[ty].name, (long long)sums[ty].n, (long long)sums[ty].elems);
        print_bytes((double)sums[ty].bytes);
        printf("  (%.2f bits/weight)\n", sums[ty].elems ? 8.0 * (double)sums[ty].bytes / (double)sums[ty].elems : 0);
    }
    printf("total: %lld params, ", (long long)total_elems);
    print_bytes((double)total);
    printf("\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL, *tok_path = NULL;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyvllm info [-m] MODEL [--tokenizer FILE] [-v]\n"
                   "  -m, --model MODEL   a GGUF or llama2.c file, or a Hugging Face folder (also one tinyvllm\n"
                   "                      cannot run: it says why)\n"
                   "  --tokenizer FILE    the tokenizer of a model that has none (as generate takes it)\n"
                   "  -v, --verbose       list every tensor and metadata key\n"
                   CLI_HELP_USAGE);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (++i >= argc) return cli_usage_error("info", "-m needs a value");
            path = argv[i];
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (++i >= argc) return cli_usage_error("info", "--tokenizer needs a value");
            tok_path = argv[i];
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            verbose = true;
        } else if (argv[i][0] != '-' && !path) {   // `tinyvllm info MODEL` as well as -m MODEL
            path = argv[i];
        } else {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        }
    }
    if (!path) return cli_usage_error("info", "-m MODEL is required");
    tv_error err = {0};
    tv_file *f = tv_file_open(path, &err);
    if (!f) { fprintf(stderr, "tinyvllm info: %s\n", err.msg); return 1; }
    tv_file_desc d;
    tv_file_describe(f, &d);
    printf("file: %s\n", path);
    if (!strcmp(d.format, "gguf"))
        printf("format: GGUF v%u, alignment %zu, data at offset %zu\n", d.version, d.alignment, d.data_offset);
    else if (!strcmp(d.format, "safetensors"))
        printf("format: Hugging Face folder (config.json + safetensors; tensors in HF names)\n");
    else
        printf("format: llama2.c checkpoint v%u (%s classifier)\n", d.version, d.shared_classifier ? "shared" : "separate");
    if (verbose) print_meta(f);
    print_tensors(f, verbose);
    tv_file_close(f);
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = tok_path;
    tv_model *m = tv_model_load(path, &mp, &err);
    if (!m) {
        printf("runnable: no — %s\n", err.msg);
        return 1;
    }
    tv_model_info h;
    tv_model_get_info(m, &h);
    printf("name: %s\narchitecture: %s\n", h.name, h.architecture);
    printf("hyperparameters: vocab %d, dim %d, layers %d, heads %d, kv heads %d (group %d), head dim %d, ffn %d\n",
           h.n_vocab, h.dim, h.n_layers, h.n_heads, h.n_kv_heads, h.n_heads / h.n_kv_heads, h.head_dim, h.hidden_dim);
    printf("context length: %d\n", h.n_ctx_train);
    printf("rope: base %g, %d dims, scaling %s; rms eps %g\n", (double)h.rope_theta, h.n_rot, h.rope_scaling, (double)h.norm_eps);
    printf("output: %s\n", h.tied_output ? "tied to token_embd" : "separate");
    if (h.n_expert > 0)
        printf("experts: %d, %d used per token, ffn %d each\n", h.n_expert, h.n_expert_used, h.expert_ff);
    printf("weights read per token: ");
    print_bytes((double)h.weight_bytes);
    printf("\nKV cache per token: ");
    print_bytes((double)h.kv_bytes_per_token);
    printf(" (f16, all layers)\n");
    const char *no_amx = tv_cpu_amx_unavailable();
    printf("cpu kernels: %s%s%s%s\n", tv_cpu_best_path(), no_amx ? " (amx unavailable: " : "", no_amx ? no_amx : "",
           no_amx ? ")" : "");
    const tv_tokenizer *tok = tv_model_tokenizer(m);
    if (tok) {
        const char *kinds[] = {"SentencePiece BPE", "byte-level BPE", "WordPiece"};
        printf("tokenizer: %s, %d tokens, bos %d%s, eos %d%s\n", kinds[tv_tokenizer_kind(tok)], tv_tokenizer_n_vocab(tok),
               tv_tokenizer_bos(tok), tv_tokenizer_add_bos_default(tok) ? " (added)" : "", tv_tokenizer_eos(tok),
               tv_tokenizer_add_eos_default(tok) ? " (added)" : "");
    } else {
        printf("tokenizer: none (use --tokenizer FILE, or token ids)\n");
    }
    printf("end of generation:");   // the ids generation stops at, with their text
    for (int32_t id = 0, n_shown = 0; id < h.n_vocab; id++) {
        if (!tv_model_is_eog(m, id)) continue;
        size_t len = 0;
        const char *p = tok ? tv_tokenizer_vocab_piece(tok, id, &len) : NULL;
        if (n_shown++ == 16) { printf(" ..."); break; }
        if (p) printf(" %d %.*s", id, (int)len, p);
        else printf(" %d", id);
    }
    printf("\nchat template: %s\n", tv_model_chat_template(m) ? "yes" : "no");
    tv_sampling_params sp;   // the recommendation generate/chat/serve use where no flag or field sets a value
    tv_sampling_params_default(&sp);
    unsigned set = tv_model_sampling_defaults(m, 0, &sp);
    printf("recommended sampling:");
    if (!set) printf(" none (generation_config.json / general.sampling.* absent)");
    if (set & TV_SAMPLE_TEMPERATURE) printf(" temperature %g", (double)sp.temperature);
    if (set & TV_SAMPLE_TOP_K) printf(" top_k %d", sp.top_k);
    if (set & TV_SAMPLE_TOP_P) printf(" top_p %g", (double)sp.top_p);
    if (set & TV_SAMPLE_MIN_P) printf(" min_p %g", (double)sp.min_p);
    if (set & TV_SAMPLE_REPETITION_PENALTY) printf(" repetition_penalty %g", (double)sp.repetition_penalty);
    printf("\nrunnable: yes\n");
    tv_model_free(m);
    return 0;
}
