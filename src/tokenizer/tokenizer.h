// tokenizer.h — text <-> token ids for every tokenizer family tinyvllm loads.
//
// Families: SentencePiece-style BPE with scores and byte fallback (llama2.c tokenizer.bin, GGUF
// tokenizer.ggml.model = "llama"), byte-level BPE with merge ranks and a per-family pre-tokenizer
// regex (GGUF "gpt2", HF tokenizer.json), WordPiece (GGUF "bert").
// A tokenizer is immutable after load and safe to use from several threads at once.
#ifndef TV_TOKENIZER_H
#define TV_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "tinyvllm.h"

// The public part (kinds, encode/decode, streaming detokenizer, tv_tokenizer_load) is in tinyvllm.h;
// these are the loaders the model and tv_tokenizer_load use.

// From GGUF tokenizer.ggml.* metadata (model, tokens, scores, token_type, merges, bos/eos/...,
// add_bos_token, add_space_prefix, pre). NULL + err when absent or malformed; a "no_vocab" model
// (llama.cpp's marker for ids-only models) gives NULL + TV_ERR_UNSUPPORTED: callers that accept
// ids-only models check tokenizer.ggml.model themselves.
tv_tokenizer *tokenizer_from_gguf(const gguf_ctx *g, tv_error *err);
// llama2.c tokenizer.bin: i32 max_token_length, then vocab_size × { f32 score, i32 len, bytes }.
// BOS = 1, EOS = 2, pieces use ' ' not '▁', byte tokens "<0xXX>" at ids 3..258.
tv_tokenizer *tokenizer_load_llama2c(const char *path, int32_t vocab_size, tv_error *err);
// Hugging Face tokenizer.json (a file, or a directory holding tokenizer.json and optionally
// tokenizer_config.json).
tv_tokenizer *tokenizer_load_json(const char *path, tv_error *err);

#endif
