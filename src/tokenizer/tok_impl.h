// tok_impl.h — internals shared by the tokenizer's .c files (tokenizer.c: vocab, loaders, SPM, WPM,
// special-token partition, decoding; tok_bpe.c: byte-level BPE; tok_json.c: tokenizer.json).
// Not part of the public interface: only src/tokenizer/*.c include it.
#ifndef TV_TOK_IMPL_H
#define TV_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

// Token types as GGUF stores them (tokenizer.ggml.token_type).
enum {
    TOK_TYPE_UNDEFINED = 0, TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
};

#define TOK_MAX_REGEX 8

// A growable int32 vector (the output of every encoder).
typedef struct tok_ids { int32_t *v; size_t n, cap; } tok_ids;
bool tok_ids_push(tok_ids *o, int32_t id);

// String -> id open-addressing table over the vocab: a slot holds id+1 (0 = empty) and 32 bits of
// the string's hash, so a probe touches the vocab strings only on a likely match.
typedef struct tok_strslot { uint32_t id1, hash; } tok_strslot;
typedef struct tok_strmap { tok_strslot *slots; size_t cap; } tok_strmap;

// (left id, right id) -> merge rank and result id, open addressing.
typedef struct tok_merge { uint64_t key; int32_t rank; int32_t result; } tok_merge;
typedef struct tok_mergemap { tok_merge *slots; size_t cap; } tok_mergemap;

struct tv_tokenizer {
    tv_tok_kind kind;
    int32_t n_vocab;
    char **pieces;          // (n_vocab) NUL-terminated vocab strings as stored
    uint32_t *piece_len;    // (n_vocab) bytes
    float *scores;          // (n_vocab) SPM scores, 0 elsewhere
    uint8_t *types;         // (n_vocab) TOK_TYPE_*
    tok_strmap map;
    uint32_t max_piece_len; // bytes, longest vocab string

    int32_t bos, eos, eot, unk, sep, pad, cls;   // -1 when absent
    int32_t eom;                      // end of message (<|eom_id|>), -1 when absent
    int32_t fim_pad, fim_rep, fim_sep;   // fill-in-the-middle ids that end generation, -1 when absent
    bool add_bos, add_eos;            // what tv_tokenize's add_special adds
    bool add_space_prefix;  // SPM: prepend ' ' to the first fragment (and after every special token)
    bool is_llama2c;        // SPM pieces use ' ' rather than U+2581
    bool escape_spaces;     // SPM: ' ' -> U+2581 before encoding (GGUF llama, json Metaspace)
    bool strip_leading_space;  // decode: drop a leading space of the first piece (after BOS)
    int32_t byte_ids[256];  // SPM: id of "<0xXX>" (-1 if none); BPE: id of the byte's GPT-2 char
    bool spm_split_ok;      // SPM: no piece holds a space mark right after another char, so text can be
                            // encoded word by word (cut before each space mark that follows a non-mark)

    // special tokens matched in raw text (never split): control and unknown (when parse_special)
    // and user-defined (always); sorted by length, longest first
    int32_t *special_ids;
    size_t n_special;
    bool *is_eog;           // (n_vocab)
    bool phi3_rstrip;       // Phi-3 (general.name): whitespace after a special token is dropped...
    bool *rstrip;           // (n_vocab) or NULL: ...for these ids (set by tok_set_specials)

    // byte-level BPE
    tok_mergemap merges;
    bool ignore_merges;     // a whole pre-token found in the vocab is emitted as is (Llama 3)
    bool byte_level;        // pieces are in GPT-2's byte->unicode alphabet
    void *re[TOK_MAX_REGEX];  // pcre2_code_8 *: the pre-tokenizer regex sequence
    size_t n_re;
    // HF normalizers applied before pre-tokenization (tokenizer.json only)
    bool norm_nfc;
    bool norm_lowercase;
    char *norm_prepend;     // NULL or a string prepended to the text
    char *norm_replace_from, *norm_replace_to;   // NULL or a literal replacement
    bool pre_metaspace;     // Metaspace pre-tokenizer: ' ' -> U+2581 and a prefix U+2581
    bool metaspace_first_only;  // prepend_scheme "first": prefix only the text's first fragment
    bool bl_add_prefix_space;   // ByteLevel add_prefix_space: ' ' before a fragment not starting with one
    bool bpe_byte_fallback; // HF BPE with byte_fallback (SPM-converted vocab): <0xXX> for unknown chars
    bool newline_words;     // Gemma 4: a pre-token of newlines only is one token when the vocab has it
};

// tokenizer.c
size_t tok_strmap_find(const tok_strmap *m, char *const *pieces, const uint32_t *lens, const char *s, size_t n);
int32_t tok_find(const tv_tokenizer *t, const char *s, size_t n);   // -1 if absent
// Copies n bytes as token id's text (replacing any previous one). False when out of memory.
bool tok_set_piece(tv_tokenizer *t, int32_t id, const char *s, size_t n);
// Allocates the per-token arrays for n tokens (zeroed, types NORMAL, ids -1).
tv_tokenizer *tok_alloc(int32_t n_vocab, tv_error *err);
// Builds the string map, special list and byte ids once pieces/types are set.
tv_status tok_finish(tv_tokenizer *t, tv_error *err);
// Once the special ids (bos, eos, eot, ...) are set, after tok_finish: fills is_eog by tokenizer.c's
// end-of-generation rules (which may retype tokens: end-of-generation pieces become control) and
// the list of special tokens matched in text. Every loader calls it last.
tv_status tok_set_specials(tv_tokenizer *t, tv_error *err);

// tok_bpe.c
// The GPT-2 byte <-> unicode-codepoint bijection.
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);   // -1 if cp is not in the map
// Compiles a pre-tokenizer regex (PCRE2, UTF + UCP, JIT) into t->re[t->n_re++].
tv_status tok_bpe_add_regex(tv_tokenizer *t, const char *pattern, tv_error *err);
// Sets the regex sequence for a GGUF tokenizer.ggml.pre name.
tv_status tok_bpe_set_pre(tv_tokenizer *t, const char *pre, tv_error *err);
// Adds merge "a b" (strings, byte-level alphabet) with the given rank; skipped if a piece is unknown.
void tok_bpe_add_merge(tv_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int32_t rank);
tv_status tok_bpe_init_merges(tv_tokenizer *t, size_t n_merges, tv_error *err);
// Encodes one raw-text fragment (no special tokens inside).
tv_status tok_bpe_encode(const tv_tokenizer *t, const char *text, size_t len, tok_ids *out, tv_error *err);
void tok_bpe_free(tv_tokenizer *t);

#endif
