// synth.h — deterministic random-weight llama GGUF files (for demos, tests and benchmarks).
//
// Same preset + type + seed (+ the same --vocab file) -> byte-identical output on every machine:
// weights come from a counter-based hash of (seed, tensor name, element index), quantized with the
// scalar reference kernels (kern_traits_ref), and tensor data is streamed to the file row by row so
// the 1B presets never hold more than a few MiB of weights in memory.
//
// Weights: matrices uniform with standard deviation 0.02 (the usual init scale; activations stay
// sane through every layer), norms exactly 1. Types follow llama.cpp's mixes: F32/F16/BF16/Q8_0/Q6_K
// everywhere; Q4_0 with a Q6_K output; Q4_K as Q4_K_M (Q6_K output, Q6_K attn_v/ffn_down on the
// "more bits" layers); a tied output (llama-3.2-1b) puts token_embd in the output's type. A matrix
// whose rows do not fit the block size falls back to Q8_0 (or F16).
// Without a vocab file the model gets a synthetic SentencePiece vocab ("llama" model with byte
// fallback: <unk> <s> </s>, 256 <0xXX> byte tokens, printable ASCII, then letter strings with and
// without the U+2581 word prefix), so text prompts work; with one, every tokenizer.* key is copied
// and the vocab size is its token count.
#ifndef TV_SYNTH_H
#define TV_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

// Presets and their shape (tv_synth_shape, tv_synth_find_preset, tv_synth_preset_names) and the
// public writer tv_synth_write are in tinyvllm_tools.h; these are the internal parameters (tests
// also write custom shapes and pure types).

typedef struct tv_synth_params {
    const char *preset;       // a preset name, or NULL with arch
    const char *arch;         // a family architecture (tv_synth_arch_names) instead of a preset, or NULL
    tv_type type;             // F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K
    uint64_t seed;
    const char *vocab_path;   // a GGUF to copy tokenizer.* from, or NULL for the synthetic vocab
    int n_threads;            // quantization threads (<= 1: the calling thread only)
    const tv_synth_shape *shape;  // a custom shape instead of the named preset (tests), or NULL
    bool pure;                // every matrix in `type` (no llama.cpp-style mix); rows must fit its block
    bool hf;                  // --arch only: out_path is a Hugging Face folder (config.json +
                              // model.safetensors, the family's HF names and keys; F32/F16/BF16, or
                              // gpt-oss's release: MXFP4 experts, the rest BF16)
    bool hf_exact;            // the GGUF llama.cpp's converter makes of the HF folder: Gemma 2/3 / Qwen3.5 norms
                              // stored as (w - 1) + 1 (of the folder's w - 1), MXFP4's other matrices BF16,
                              // Gemma 4's per_layer_model_proj in the file's type (llama-quantize keeps it F16)
    int deep_from;            // preset models, 0 = off: layers deep_from.. (1 .. n_layers - 1) have attn_output and
    float deep_scale;         // ffn_down deep_scale (0, 1] times the usual size (tv_synth_options)
    bool mtp;                 // --arch hybrid qwen families: an MTP layer after the model's (tv_synth_options)
    tv_progress_fn progress;  // NULL, or told the bytes written as the file is written
    void *progress_user;
} tv_synth_params;

// Llama 3.1+ RoPE frequency factors (what rope_freqs.weight holds: each inverse frequency
// theta^(-2i/head_dim) is divided by out[i]) for factor 32, low_freq_factor 1, high_freq_factor 4
// and original context orig (8192 in Llama 3.1+): 1 for wavelengths below orig/4, 32 above orig,
// smooth in between.
void synth_llama3_rope_factors(float *out, int n_half, int head_dim, double theta, double orig);

// The small archs of the llama.cpp fixtures (tests/fixtures/families), comma-separated; the
// public tv_synth_arch_names() adds the benchmark shapes.
const char *synth_fixture_arch_names(void);

// Writes the model to out_path (atomically: a temporary renamed on success).
// Errors: unknown preset/arch/type, an arch with a preset/shape/vocab (TV_ERR_INVALID), unreadable vocab (its loader's code), I/O.
tv_status synth_write(const tv_synth_params *p, const char *out_path, tv_error *err);

#endif
