// main.c — `tinyvllm <command> [options]`: dispatch to cli/cmd_*.c.
#include <stdio.h>
#include <string.h>

#include "cli.h"

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
    fprintf(f, "usage: tinyvllm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n`tinyvllm <command> --help` for its options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        if (!COMMANDS[i].fn) { fprintf(stderr, "tinyvllm: command '%s' is not available in this build\n", argv[1]); return 2; }
        return COMMANDS[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "tinyvllm: unknown command '%s' (see tinyvllm --help)\n", argv[1]);
    return 2;
}
