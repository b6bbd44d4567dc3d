// cli.h — the tinyvllm subcommands. Each lives in cli/cmd_<name>.c and returns the process exit
// status (0 ok, 1 runtime error, 2 usage error). Errors go to stderr as one line:
// "tinyvllm <cmd>: <what>".
#ifndef TV_CLI_H
#define TV_CLI_H

// The build, for `tinyvllm --version` (generated/cli_version.c, written by cmake/version.cmake).
extern const char cli_git_revision[];   // `git describe --always --dirty`, or why there is none
extern const char cli_git_date[];       // the commit's date (YYYY-MM-DD), or ""
extern const char cli_build_type[];     // CMAKE_BUILD_TYPE

int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_structured(int argc, char **argv);   // `bench structured` (cmd_bench_structured.c)
int cmd_serve(int argc, char **argv);

#endif
