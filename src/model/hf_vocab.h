// hf_vocab.h — a Hugging Face folder's tokenizer written as GGUF tokenizer.* keys, the way llama.cpp's
// convert_hf_to_gguf.py (get_vocab_base / LlamaHfVocab + gguf-py's SpecialVocab) writes them.
//
// tokenizer.json kinds:
//   byte-level BPE (model BPE, no byte_fallback) -> tokenizer.ggml.model "gpt2": tokens in id order
//     padded to the model's n_vocab with "[PAD<id>]" (UNUSED); added tokens CONTROL when special or
//     looking special ("<|...|>", ...), else USER_DEFINED (U+2581 -> ' '); merges as "a b";
//     tokenizer.ggml.pre named from the pre-tokenizer (its Split regex and ignore_merges).
//   SentencePiece-style BPE (byte_fallback) -> "llama", pre "default": the vocab, then added ids
//     past it, padded with "[PAD<k>]"; "<0xXX>" BYTE, special tokens CONTROL. Scores: llama.cpp
//     writes -1000 for every token, which makes its SentencePiece merge order leftmost-first; we
//     write -(rank + 1) of the merge that makes a token (0 for tokens no merge makes), so llama.cpp
//     merges in the BPE's order and tokenizes as the folder does.
// Special ids (bos, eos, unk, sep, pad, cls, mask): tokenizer_config.json's `<typ>_token` looked up
// among added_tokens, else config.json's `<typ>_token_id`; add_bos/add_eos from a TemplateProcessing
// post-processor, overridden by tokenizer_config.json's add_<typ>_token.
#ifndef TV_HF_VOCAB_H
#define TV_HF_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "tinyvllm.h"

// Whether dir holds tokenizer.json.
bool hf_vocab_present(const char *dir);
// Sets the tokenizer.* keys (except chat_template, which hf.c writes) on w for dir's tokenizer.json.
// n_vocab: the model's token count (embedding rows); an id at or past it is an error. desc
// (may be NULL) receives e.g. "gpt2/qwen2, 151669 tokens". Errors name the file: an unsupported
// model type or pre-tokenizer (TV_ERR_UNSUPPORTED), malformed JSON or ids (TV_ERR_FORMAT).
tv_status hf_vocab_write(const char *dir, int64_t n_vocab, gguf_writer *w, char *desc, size_t cap, tv_error *err);

#endif
