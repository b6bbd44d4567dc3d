// main.c — `tinyvllm <command> [options]`: dispatch to cli/cmd_*.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyvllm_tools.h"

// Commands land one file at a time; a command whose file is not built yet is reported, not linked.
#pragma weak cmd_generate
#pragma weak cmd_info
#pragma weak cmd_convert
#pragma weak cmd_synth
#pragma weak cmd_tokenize
#pragma weak cmd_detokenize
#pragma weak cmd_template
#pragma weak cmd_chat
#pragma weak cmd_bench
#pragma weak cmd_serve

typedef struct { const char *name; int (*fn)(int, char **); const char *help; } command;

static const command COMMANDS[] = {
    {"generate", cmd_generate, "generate text from a prompt"},
    {"chat", cmd_chat, "interactive chat with the model's template"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server"},
    {"bench", cmd_bench, "benchmark prompt/generation/batched throughput"},
    {"info", cmd_info, "print a model's architecture, hyperparameters and tensors"},
    {"tokenize", cmd_tokenize, "text -> token ids"},
    {"detokenize", cmd_detokenize, "token ids -> text"},
    {"template", cmd_template, "render a chat template"},
    {"convert", cmd_convert, "convert a llama2.c model to GGUF"},
    {"synth", cmd_synth, "write a deterministic random-weight llama GGUF"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tinyvllm <command> [options]\n       tinyvllm --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n`tinyvllm <command> --help` for its options; `tinyvllm --version` for the build.\n");
}

// The build (git revision, compiler) and the kernel path this CPU gets, with $TINYVLLM_CPU applied.
static int version(void) {
    printf("tinyvllm %s (%s)\n", cli_git_revision, cli_git_date[0] ? cli_git_date : "no date");
#ifdef __clang__
    printf("built with clang %s, %s\n", __clang_version__, cli_build_type);
#else
    printf("built with gcc %s, %s\n", __VERSION__, cli_build_type);
#endif
    tv_error err = {0};
    const char *best = tv_kernel_path(NULL, &err);
    const char *env = getenv("TINYVLLM_CPU");
    if (env && *env) {
        tv_error env_err = {0};
        const char *chosen = tv_kernel_path(env, &env_err);
        if (chosen) printf("kernels: %s (TINYVLLM_CPU=%s; the best on this CPU: %s)\n", chosen, env, best ? best : "?");
        else printf("kernels: TINYVLLM_CPU=%s is not usable here (%s); the best on this CPU: %s\n", env, env_err.msg, best ? best : "?");
    } else {
        printf("kernels: %s (the best on this CPU; --cpu or TINYVLLM_CPU choose another)\n", best ? best : err.msg);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) return version();
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        if (!COMMANDS[i].fn) { fprintf(stderr, "tinyvllm: command '%s' is not available in this build\n", argv[1]); return 2; }
        return COMMANDS[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "tinyvllm: unknown command '%s' (see tinyvllm --help)\n", argv[1]);
    return 2;
}
