// cmd_tokenize.c — `tinyvllm tokenize` (text -> ids) and `tinyvllm detokenize` (ids -> text).
//
//   tinyvllm tokenize   -m MODEL [--no-bos] [--special] [--vocab-size N] (-p TEXT | --file PATH|-)
//   tinyvllm detokenize -m MODEL [--skip-special] [--vocab-size N] IDS...
//
// MODEL is a GGUF file (full model or vocab-only), a llama2.c tokenizer.bin, or a Hugging Face
// tokenizer.json (or a directory holding one). The kind is decided by content: "GGUF" magic, a JSON
// object, else llama2.c. For tokenizer.bin the vocabulary size is read from the file (every record
// up to its end); --vocab-size N checks that it holds exactly N.
// tokenize prints the ids on one line, space separated; detokenize prints the text (IDS may be given
// as separate arguments or as one list like "1 2 3" or "[1, 2, 3]"); special tokens are rendered unless
// --skip-special.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"

static const char *const TOKENIZE_VALUE_OPTS[] = {"-m", "--model", "-p", "--prompt", "-f", "--file", "--vocab-size", NULL};
static const char *const DETOKENIZE_VALUE_OPTS[] = {"-m", "--model", "--vocab-size", NULL};

static bool is_known(const char *a, const char *const *opts) {
    for (; *opts; opts++)
        if (!strcmp(a, *opts)) return true;
    return false;
}

// Loads any supported tokenizer; prints the error and returns NULL on failure.
static tv_tokenizer *load_tokenizer(const char *cmd, const char *path, int32_t vocab_size) {
    tv_error err = {0};
    tv_tokenizer *t = tv_tokenizer_load(path, vocab_size, &err);
    if (!t) fprintf(stderr, "tinyvllm %s: %s\n", cmd, err.msg);
    return t;
}

static int parse_vocab_size(const char *cmd, const char *s, int32_t *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (*e || v <= 0 || v > (1 << 24)) {
        fprintf(stderr, "tinyvllm %s: --vocab-size wants a positive integer, got '%s'\n", cmd, s);
        return 2;
    }
    *out = (int32_t)v;
    return 0;
}

static void tokenize_usage(FILE *f) {
    fprintf(f, "usage: tinyvllm tokenize -m MODEL [--no-bos] [--special] [--vocab-size N] (-p TEXT | -f FILE|-)\n"
               "  -m, --model MODEL   GGUF, llama2.c tokenizer.bin or tokenizer.json; prints the ids on one line\n"
               "  -p, --prompt TEXT   the text\n"
               "  -f, --file FILE     read the text from FILE ('-' = stdin)\n"
               "  --no-bos            do not add the BOS (or EOS) the model asks for\n"
               "  --special           recognise special tokens written in the text (e.g. <|eot_id|>)\n"
               "  --vocab-size N      check that a llama2.c tokenizer.bin holds exactly N tokens\n");
    fputs(CLI_HELP_USAGE, f);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool no_bos = false, special = false;
    int32_t vocab_size = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { tokenize_usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) model = argv[++i];
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) prompt = argv[++i];
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) file = argv[++i];
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--vocab-size") && has_val) {
            int rc = parse_vocab_size("tokenize", argv[++i], &vocab_size);
            if (rc) return rc;
        } else if (is_known(a, TOKENIZE_VALUE_OPTS)) {
            return cli_usage_error("tokenize", "%s needs a value", a);
        } else {
            return cli_usage_error("tokenize", "unknown option '%s' (see --help)", a);
        }
    }
    if (!model || (!prompt == !file))
        return cli_usage_error("tokenize", "need -m MODEL and exactly one of -p TEXT / -f FILE (see --help)");
    char *owned = NULL;
    size_t len = 0;
    if (file) {
        owned = cli_read_file("tokenize", file, SIZE_MAX, &len);
        if (!owned) return 1;
    } else {
        len = strlen(prompt);
    }
    tv_tokenizer *t = load_tokenizer("tokenize", model, vocab_size);
    if (!t) { free(owned); return 1; }
    int32_t *ids = NULL;
    size_t n = 0;
    tv_error err = {0};
    int rc = 0;
    if (tv_tokenize(t, owned ? owned : prompt, len, !no_bos, special, &ids, &n, &err) != TV_OK) {
        fprintf(stderr, "tinyvllm tokenize: %s\n", err.msg);
        rc = 1;
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    free(owned);
    tv_tokenizer_free(t);
    return rc;
}

static void detokenize_usage(FILE *f) {
    fprintf(f, "usage: tinyvllm detokenize -m MODEL [--skip-special] [--vocab-size N] IDS...\n"
               "  IDS: integers as separate arguments or one list (\"1 2 3\", \"[1, 2, 3]\"); at least one\n"
               "  -m, --model MODEL   GGUF, llama2.c tokenizer.bin or tokenizer.json\n"
               "  --skip-special      hide control tokens (BOS, EOS, <|eot_id|>, ...)\n"
               "  --vocab-size N      check that a llama2.c tokenizer.bin holds exactly N tokens\n");
    fputs(CLI_HELP_USAGE, f);
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    bool skip_special = false;
    int32_t vocab_size = 0;
    size_t n = 0, cap = 64;
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = 0;
    if (!ids) { fprintf(stderr, "tinyvllm detokenize: out of memory\n"); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { detokenize_usage(stdout); free(ids); return 0; }
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) { model = argv[++i]; continue; }
        if (!strcmp(a, "--skip-special")) { skip_special = true; continue; }
        if (!strcmp(a, "--vocab-size") && i + 1 < argc) {
            if ((rc = parse_vocab_size("detokenize", argv[++i], &vocab_size)) != 0) goto done;
            continue;
        }
        if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
            if (is_known(a, DETOKENIZE_VALUE_OPTS)) rc = cli_usage_error("detokenize", "%s needs a value", a);
            else rc = cli_usage_error("detokenize", "unknown option '%s' (see --help)", a);
            goto done;
        }
        for (const char *p = a; *p;) {   // a list of ids: separators are spaces, commas, brackets
            if (strchr(" \t\n,[]", *p)) { p++; continue; }
            char *e;
            errno = 0;
            long v = strtol(p, &e, 10);
            if (e == p || errno || v < INT32_MIN || v > INT32_MAX || (*e && !strchr(" \t\n,[]", *e))) {
                fprintf(stderr, "tinyvllm detokenize: '%s' is not a token id\n", a);
                rc = 2;
                goto done;
            }
            if (n == cap) {
                int32_t *nv = realloc(ids, cap * 2 * sizeof *ids);
                if (!nv) { fprintf(stderr, "tinyvllm detokenize: out of memory\n"); rc = 1; goto done; }
                ids = nv;
                cap *= 2;
            }
            ids[n++] = (int32_t)v;
            p = e;
        }
    }
    if (!model) {
        rc = cli_usage_error("detokenize", "need -m MODEL (see --help)");
        goto done;
    }
    if (n == 0) {
        rc = cli_usage_error("detokenize", "no token ids given (e.g. tinyvllm detokenize -m MODEL 1 2 3)");
        goto done;
    }
    tv_tokenizer *t = load_tokenizer("detokenize", model, vocab_size);
    if (!t) { rc = 1; goto done; }
    char *text = NULL;
    size_t len = 0;
    tv_error err = {0};
    if (tv_detokenize(t, ids, n, skip_special, &text, &len, &err) != TV_OK) {
        fprintf(stderr, "tinyvllm detokenize: %s\n", err.msg);
        rc = 1;
    } else {
        fwrite(text, 1, len, stdout);
        printf("\n");
    }
    free(text);
    tv_tokenizer_free(t);
done:
    free(ids);
    return rc;
}
