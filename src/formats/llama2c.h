// llama2c.h — llama2.c model checkpoints (`.bin`), memory-mapped and exposed as GGUF-named tensors.
//
// File grammar (little-endian, every weight fp32, matrices (out, in) row-major):
//   v0 (legacy): i32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//                (vocab_size < 0: the classifier is a separate matrix; > 0: shared with the embedding)
//                token_embedding (vocab, dim) | rms_att (L, dim) | wq (L, n_heads*hs, dim)
//                | wk (L, kv_dim, dim) | wv (L, kv_dim, dim) | wo (L, dim, n_heads*hs) | rms_ffn (L, dim)
//                | w1 (L, hidden, dim) | w2 (L, dim, hidden) | w3 (L, hidden, dim) | rms_final (dim)
//                | freq_cis_real (seq_len, hs/2) | freq_cis_imag (seq_len, hs/2) | [wcls (vocab, dim)]
//   v1:          u32 magic 0x616b3432 ("ak42") | i32 version = 1 | the 7 i32 above (vocab_size > 0)
//                | u8 shared_classifier | zero padding to byte 256
//                | rms_att (L, dim) | rms_ffn (L, dim) | rms_final (dim) | token_embedding (vocab, dim)
//                | wq | wk | wv | wo | w1 | w2 | w3 (each all layers, shapes as in v0) | [wcls (vocab, dim)]
//   (hs = dim / n_heads, kv_dim = n_kv_heads * hs.) The file size must equal what the header implies.
//
// Tensors are views into the read-only mapping, named and shaped as in GGUF llama models
// (ne[0] = the contiguous row length = "in"; ne[1] = rows = "out"), all TV_TYPE_F32:
//   token_embd.weight [dim, vocab]           output_norm.weight [dim]
//   output.weight [dim, vocab]               (only when the classifier is not shared: otherwise the
//                                             model ties the output to token_embd.weight)
//   blk.N.attn_norm.weight [dim]             blk.N.ffn_norm.weight [dim]
//   blk.N.attn_q.weight [dim, n_heads*hs]    blk.N.attn_output.weight [n_heads*hs, dim]
//   blk.N.attn_k.weight [dim, kv_dim]        blk.N.attn_v.weight [dim, kv_dim]
//   blk.N.ffn_gate.weight (w1) [dim, hidden] blk.N.ffn_down.weight (w2) [hidden, dim]
//   blk.N.ffn_up.weight (w3) [dim, hidden]
// The freq_cis tables of v0 files are skipped (RoPE is recomputed with theta 10000).
// llama2.c applies RoPE to adjacent pairs (x[2i], x[2i+1]), i.e. the GGUF/llama.cpp "normal"
// layout of LLAMA_ROPE_TYPE_NORM: the weights need no permutation when bound as GGUF llama.
#ifndef TV_LLAMA2C_H
#define TV_LLAMA2C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "tinyvllm.h"

#define TV_LLAMA2C_MAGIC 0x616b3432u   // "ak42" read as a little-endian u32

typedef struct tv_llama2c_config {
    int32_t dim;          // model width
    int32_t hidden_dim;   // FFN width
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;   // divides n_heads (grouped-query attention when smaller)
    int32_t vocab_size;   // always positive here (the v0 sign is decoded into shared_classifier)
    int32_t seq_len;      // trained context length
    bool shared_classifier;   // output projection = token embedding (no output.weight tensor)
    int version;          // 0 (legacy) or 1
} tv_llama2c_config;

typedef struct tv_llama2c tv_llama2c;

// Opens, validates (header ranges, exact file size) and maps a llama2.c checkpoint.
// Returns NULL with "path: what is wrong" in err on failure.
tv_llama2c *llama2c_open(const char *path, tv_error *err);
// Same over a caller-owned buffer that must outlive the handle (tests, fuzzing). label names it
// in error messages. data must be 4-byte aligned for the tensor views to be usable as float*.
tv_llama2c *llama2c_open_memory(const void *data, size_t size, const char *label, tv_error *err);
void llama2c_close(tv_llama2c *m);   // NULL is a no-op

const tv_llama2c_config *llama2c_get_config(const tv_llama2c *m);
int llama2c_n_tensors(const tv_llama2c *m);
const tv_tensor *llama2c_tensor(const tv_llama2c *m, int i);   // NULL when i is out of range
const tv_tensor *llama2c_find(const tv_llama2c *m, const char *name);   // NULL when absent

// ---- llama2.c tokenizer files (tokenizer.bin) ----
// Grammar (little-endian): i32 max_token_length | n_vocab × { f32 score | i32 len | len bytes }.
// The token count is not stored: it is the model's vocab_size, and the file must end exactly
// after the last token. Pieces are stored as llama2.c writes them: ' ' for spaces (where
// SentencePiece writes U+2581), ids 3..258 are "<0xXX>" byte tokens, and <s> / </s> appear as
// "\n<s>\n" / "\n</s>\n". Every length is checked (0 <= len <= max_token_length <= 65536).
typedef struct tv_llama2c_vocab {
    int32_t n_vocab;
    int32_t max_token_length;
    float *scores;        // (n_vocab) merge scores
    char **pieces;        // (n_vocab) NUL-terminated copies of the stored bytes
    uint32_t *lens;       // (n_vocab) byte lengths of the pieces (a piece may contain NUL bytes)
} tv_llama2c_vocab;

tv_llama2c_vocab *llama2c_vocab_open(const char *path, int32_t n_vocab, tv_error *err);
tv_llama2c_vocab *llama2c_vocab_open_memory(const void *data, size_t size, int32_t n_vocab, const char *label,
                                               tv_error *err);
void llama2c_vocab_free(tv_llama2c_vocab *v);   // NULL is a no-op

// ---- conversion to GGUF ----
// Fills w with a llama GGUF equivalent of m: general.architecture = "llama", general.name = name
// (may be NULL), general.file_type = 0 (all F32), the llama.* hyperparameters llama.cpp reads
// (context_length = seq_len, embedding_length, block_count, feed_forward_length,
// attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon = 1e-5 as
// llama2.c, rope.freq_base = 10000, rope.dimension_count = head size, vocab_size) and every tensor
// (F32, data pointing into m: keep m open until the writer has written). output.weight is
// omitted when the classifier is shared (llama.cpp then ties it to token_embd.weight).
// With vocab (n_vocab must equal the model's vocab_size): tokenizer.ggml.model = "llama",
// tokens (' ' -> U+2581, "\n<s>\n" -> "<s>", "\n</s>\n" -> "</s>"), scores, token_type
// (1 normal, 2 unknown, 3 control, 6 byte), bos/eos/unknown ids 1/2/0, add_bos_token true,
// add_eos_token false. Without vocab: tokenizer.ggml.model = "no_vocab" (llama.cpp's marker for a
// model without a tokenizer; token ids only). Setter failures surface at gguf_writer_write.
tv_status llama2c_to_gguf(const tv_llama2c *m, const tv_llama2c_vocab *vocab, const char *name, gguf_writer *w,
                             tv_error *err);

#endif
