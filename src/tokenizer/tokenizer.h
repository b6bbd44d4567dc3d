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

typedef struct tv_tokenizer tv_tokenizer;

typedef enum tv_tok_kind { TV_TOK_SPM = 0, TV_TOK_BPE, TV_TOK_WPM } tv_tok_kind;

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
void tv_tokenizer_free(tv_tokenizer *t);

tv_tok_kind tv_tokenizer_kind(const tv_tokenizer *t);
int32_t tv_tokenizer_n_vocab(const tv_tokenizer *t);
int32_t tv_tokenizer_bos(const tv_tokenizer *t);        // -1 if none
int32_t tv_tokenizer_eos(const tv_tokenizer *t);        // -1 if none
int32_t tv_tokenizer_eot(const tv_tokenizer *t);        // end-of-turn (e.g. <|eot_id|>), -1 if none
bool tv_tokenizer_add_bos_default(const tv_tokenizer *t);
// True for ids that end generation (eos, eot and other end-of-generation tokens the vocab marks).
bool tv_tokenizer_is_eog(const tv_tokenizer *t, int32_t id);
bool tv_tokenizer_is_control(const tv_tokenizer *t, int32_t id);
// The vocabulary entry as stored (e.g. "▁the", "Ġthe", "<0x0A>"); NULL if id out of range.
const char *tv_tokenizer_vocab_piece(const tv_tokenizer *t, int32_t id, size_t *len);
// Token id of an exact vocabulary string, -1 if absent.
int32_t tv_tokenizer_find(const tv_tokenizer *t, const char *piece, size_t len);

// Encode len bytes of UTF-8 text. Invalid UTF-8 is an error (TV_ERR_INVALID, the byte offset in
// the message). parse_special: recognise special/control tokens written in the text.
// *ids is malloc'ed (caller frees), *n_ids its length.
tv_status tv_tokenize(const tv_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids, tv_error *err);

// The bytes a token contributes to text (byte tokens decoded, '▁' -> ' ', byte-level BPE unmapped).
// Control tokens give "" unless special is true. May be partial UTF-8. Returns the length written
// (at most cap; the full length is returned in *full_len if not NULL).
size_t tv_token_to_piece(const tv_tokenizer *t, int32_t id, bool special, char *buf, size_t cap, size_t *full_len);

// Whole-sequence decode with SentencePiece's rule (a leading space of the first piece after BOS
// is dropped: for a sequence that opens with BOS, the first piece that produces text loses one
// leading space, as Hugging Face's decode does; a sequence without a leading BOS keeps its spaces,
// so generated text decodes as a continuation).
// Bytes are returned as the tokens make them (may be invalid UTF-8 if the ids split a character).
// *out is malloc'ed and NUL-terminated.
tv_status tv_detokenize(const tv_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        char **out, size_t *out_len, tv_error *err);

// Streaming detokenizer: feed ids one at a time, get only complete UTF-8 back; the leading-space
// rule is applied as in tv_detokenize. Text held back (an unfinished UTF-8 sequence) comes out with
// the next token or at flush (flush emits U+FFFD for a sequence that never completed).
typedef struct tv_detok tv_detok;
tv_detok *tv_detok_create(const tv_tokenizer *t, bool skip_special);
void tv_detok_free(tv_detok *d);
// Appends the newly complete text to *out (NUL-terminated); returns its length. *out is owned by d
// and valid until the next call.
size_t tv_detok_push(tv_detok *d, int32_t id, const char **out);
size_t tv_detok_flush(tv_detok *d, const char **out);
void tv_detok_reset(tv_detok *d);

#endif
