// cli_opts.h — the options every model-running command (generate, chat, bench, serve) shares, parsed
// and applied in one place, so a flag means the same everywhere and each setting has one owner.
// Each option is one row of a table (cli_opts.c): its spellings (ours and llama.cpp's), its value and
// its help line; parsing and --help both read the table, so they cannot disagree.
//
//   model:    -m/--model PATH  --tokenizer FILE  -t/--threads N  -c/--ctx-size N  --kv-bits 16|32
//             (-ctk/-ctv f16|f32)  --cpu PATH  --spec ngram|draft  --spec-tokens K  --spec-always
//             --draft-layers N  --draft-model PATH  --quantize TYPE  -q/--quiet  --cache-dir DIR  --cache-size MB
//             --no-cache  --pp N  --pp-split a,b,...  --pp-timeout S
//   sampling: --temp T  --top-k K  --top-p P  --min-p P  --repeat-penalty R  --presence-penalty P
//             --frequency-penalty F  -s/--seed S
// The environment is read here, never by the library: TINYVLLM_CPU (when --cpu is absent) and
// TINYVLLM_REPACK=0 (keep weights as stored), TINYVLLM_CACHE_DIR / XDG_CACHE_HOME / HOME (the
// prepared-weight cache's default folder).
#ifndef TV_CLI_OPTS_H
#define TV_CLI_OPTS_H

#include <stdio.h>

#include "tinyvllm.h"

typedef struct cli_model_opts {
    const char *model_path;   // required by every command
    const char *tok_path;     // NULL: the model file's own tokenizer
    const char *cpu;          // NULL: $TINYVLLM_CPU, else the best path this CPU supports
    long threads;             // 0: all cores
    long ctx;                 // 0: the model's context length
    long kv_bits;             // 0: auto (32 for f32 models, else 16)
    tv_spec_method spec;      // speculative decoding proposer (TV_SPEC_NONE: off)
    long spec_tokens;         // 0: the engine's default with a proposer
    bool spec_always;         // --spec-always: no load gate (tv_engine_config.spec_always)
    long draft_layers;        // --spec draft: layers of the self-draft
    const char *draft_path;   // --draft-model PATH: the draft model (NULL: none)
    const char *cmd;          // the command, for the notes cli_open prints (set by cli_model_opt)
    const char *quantize;     // --quantize TYPE: quantize F32/F16/BF16 weights at load (NULL: as stored)
    bool quiet;               // -q/--quiet: no progress lines
    const char *cache_dir;    // --cache-dir DIR (NULL: $TINYVLLM_CACHE_DIR, else ~/.cache/tinyvllm)
    long cache_mb;            // --cache-size MB (0: 4096)
    bool no_cache;            // --no-cache: prepare weights in this process only
    long pp;                  // --pp N: pipeline stages, one per MPI rank (0/1: none; cli_dist.h)
    const char *pp_split;     // --pp-split a,b,...: layers per stage (NULL: balanced by bytes)
    long pp_timeout;          // --pp-timeout S: the longest wait for another rank (0: 30 s)
    bool pp_wire_f16;         // --pp-wire f16: the hidden state between stages as f16
} cli_model_opts;

// Prints the shared options' help lines (every spelling, the value, the text) for a command's --help.
void cli_model_usage(FILE *f);
void cli_sampling_usage(FILE *f);

// Parses the option at argv[*i] if it is one of these (its value too: *i is advanced past it).
// Returns 1 when consumed, 0 when it is not one of these options, 2 after printing a usage error.
int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);
// *given collects the TV_SAMPLE_* bits of the sampling flags seen.
int cli_sampling_opt(const char *cmd, int argc, char **argv, int *i, tv_sampling_params *sp, unsigned *given);
// The interactive commands' sampling defaults (llama.cpp's): temperature 0.8, top-k 40, top-p 0.95, min-p 0.05.
void cli_sampling_defaults(tv_sampling_params *sp);
// Once the model is loaded: its recommended sampling (generation_config.json, general.sampling.*)
// replaces the defaults for every field no flag set (given), with a note on stderr unless quiet.
void cli_sampling_from_model(const char *cmd, const tv_model *m, unsigned given, bool quiet, tv_sampling_params *sp);

// The two halves of cli_open, for a command that sizes its engine from the model. Both print a note
// on stderr when they clamp a value the user gave (-t above the online cores, -c above the model's
// context).
tv_status cli_load_model(const cli_model_opts *o, tv_model **m, tv_error *err);
// With --draft-model, cli_create_engine also loads the draft (as the model: same kernel path, threads,
// cache, --quantize) and hands it to the engine, which borrows it: free such an engine with
// cli_free_engine, which frees the draft after it.
tv_status cli_create_engine(const cli_model_opts *o, tv_model *m, tv_engine_config *ec, tv_engine **e, tv_error *err);
void cli_free_engine(tv_engine *e);
// Loads o->model_path and creates an engine: the model parameters and *ec (the command's own
// settings, e.g. max_num_seqs) get the shared options. On failure *m and *e are NULL and err says why.
// The speculative decoding method's name as --spec spells it ("ngram", "draft"; "off" for none).
const char *cli_spec_name(tv_spec_method m);
tv_status cli_open(const cli_model_opts *o, tv_engine_config *ec, tv_model **m, tv_engine **e, tv_error *err);

#endif
