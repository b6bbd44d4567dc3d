// gguf.h — GGUF v2/v3 reader (memory-mapped, every field validated) and writer.
//
// File grammar (little-endian):
//   magic "GGUF" | u32 version (2|3) | u64 n_tensors | u64 n_kv
//   n_kv × { str key | u32 type | value }          str = u64 len + bytes (no NUL)
//   value: scalar of type, or ARRAY = u32 elem_type + u64 n + n × value(elem_type) (arrays nest)
//   n_tensors × { str name | u32 n_dims (1..4) | n_dims × u64 ne | u32 tv_type | u64 offset }
//   padding to general.alignment (default 32) | tensor data (offsets relative to here, aligned)
#ifndef TV_GGUF_H
#define TV_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12, GGUF_TYPE_COUNT = 13,
} gguf_type;

#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str { const char *ptr; uint64_t len; } gguf_str;  // not NUL-terminated

typedef struct gguf_value {
    gguf_type type;
    union { uint64_t u; int64_t i; double f; bool b; gguf_str s; } v;  // scalars (ints widened)
    // ARRAY only:
    gguf_type arr_type;
    uint64_t arr_n;
    const void *arr_data;             // numeric/bool elements: raw little-endian bytes in the file
    struct gguf_value *arr_items;     // STRING or ARRAY elements: arr_n parsed values; else NULL
} gguf_value;

typedef struct gguf_tensor_info {
    char *name;                       // NUL-terminated copy
    int n_dims;
    int64_t ne[4];                    // unused dims are 1
    tv_type type;
    uint64_t offset;                  // relative to the data section
    size_t nbytes;
    const void *data;                 // into the mapping; [data, data + nbytes) lies inside the file
} gguf_tensor_info;

typedef struct gguf_ctx gguf_ctx;

// Opens and validates a file; tensor data stays memory-mapped (read-only) and is used in place.
// Checked before use: magic, version (2|3; 1 and big-endian files are refused as unsupported),
// every string/array length and count against the bytes left (so no allocation exceeds a small
// multiple of the file size), value and element types, bools 0/1, array nesting <= 8, keys and
// tensor names without NUL bytes and unique, general.alignment a power of two, n_dims 1..4,
// ne >= 0 with overflow-checked element and byte counts, tensor type known to kern_traits_ref() (known
// types without kernels load: the model loader refuses them), ne[0] a multiple of the block size,
// offsets aligned, and every tensor's bytes inside the file. (Overlapping tensors are not refused.)
// Errors name the file and what is wrong ("model.gguf: truncated at offset 1234 reading tensor info 3").
gguf_ctx *gguf_open(const char *path, tv_error *err);
// Whether the file at path starts with the GGUF magic: 1 yes, 0 no (too short or other bytes), -1 it
// cannot be opened or read (err: "<path>: cannot open: <reason>"). How loaders tell GGUF from llama2.c.
int gguf_file_has_magic(const char *path, tv_error *err);
// Same over a caller-owned buffer (no copy; the buffer must outlive the ctx). For fuzzing and tests.
gguf_ctx *gguf_open_memory(const void *data, size_t size, const char *label, tv_error *err);
// Same over a malloc'd buffer whose ownership passes to the ctx (freed by gguf_close, or at once
// when the open fails). How in-memory metadata (a Hugging Face folder's, model/hf.c) is read.
gguf_ctx *gguf_open_buffer(void *data, size_t size, const char *label, tv_error *err);
// Opens a file reading only its header (metadata and tensor infos, validated as gguf_open does): no
// tensor is mapped and every tensor's data is NULL until gguf_map_tensor maps that one tensor's pages.
// For a process that needs a part of a model (a pipeline stage, tv_model_params.layer_begin/end): its
// address space then holds only the tensors it uses.
gguf_ctx *gguf_open_lazy(const char *path, tv_error *err);
// The data of t (a tensor of ctx): mapped now when ctx is lazy and t not yet mapped; NULL + err when
// that mapping fails. t->data afterwards.
const void *gguf_map_tensor(gguf_ctx *ctx, const gguf_tensor_info *t, tv_error *err);
void gguf_close(gguf_ctx *ctx);

uint32_t gguf_version(const gguf_ctx *ctx);
size_t gguf_alignment(const gguf_ctx *ctx);
size_t gguf_data_offset(const gguf_ctx *ctx);   // file offset of the data section
size_t gguf_file_size(const gguf_ctx *ctx);

int64_t gguf_n_kv(const gguf_ctx *ctx);
const char *gguf_kv_key(const gguf_ctx *ctx, int64_t i);      // NUL-terminated copy
const gguf_value *gguf_kv_value(const gguf_ctx *ctx, int64_t i);
const gguf_value *gguf_get(const gguf_ctx *ctx, const char *key);   // NULL if absent

// Typed lookups: false if absent or of an incompatible type (ints convert if the value fits).
bool gguf_get_int(const gguf_ctx *ctx, const char *key, int64_t *out);
bool gguf_get_float(const gguf_ctx *ctx, const char *key, double *out);   // float or int
bool gguf_get_bool(const gguf_ctx *ctx, const char *key, bool *out);
bool gguf_get_str(const gguf_ctx *ctx, const char *key, gguf_str *out);
// Array element access (i < v->arr_n checked by caller): numeric elements widened.
int64_t gguf_arr_int(const gguf_value *v, uint64_t i);
double gguf_arr_float(const gguf_value *v, uint64_t i);
gguf_str gguf_arr_str(const gguf_value *v, uint64_t i);
const char *gguf_type_name(gguf_type t);

int64_t gguf_n_tensors(const gguf_ctx *ctx);
const gguf_tensor_info *gguf_tensor(const gguf_ctx *ctx, int64_t i);
const gguf_tensor_info *gguf_find_tensor(const gguf_ctx *ctx, const char *name);

// ---- writer ----
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_create(void);   // NULL when out of memory; setters then do nothing and write fails
void gguf_writer_free(gguf_writer *w);
// Setters copy key and value; setting an existing key replaces it (order of first set is kept).
void gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_set_f32(gguf_writer *w, const char *key, float v);
void gguf_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_set_str(gguf_writer *w, const char *key, const char *v);
// Numeric/bool array: n elements of elem (not STRING/ARRAY), data copied.
void gguf_set_arr_data(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n);
// String array (each NUL-terminated, or with lens != NULL explicit lengths).
void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n);
// Writes a SentencePiece ("llama") vocabulary as GGUF's tokenizer.ggml.* keys: model, pre
// ("default"), tokens (lens NULL = NUL-terminated), scores, token_type, bos 1 / eos 2 / unk 0,
// add_bos_token true, add_eos_token false (the llama2.c / Llama-2 conventions).
void gguf_set_spm_vocab(gguf_writer *w, const char *const *tokens, const uint64_t *lens, const float *scores,
                        const int32_t *types, uint64_t n);
// Deep-copies a parsed value (any type, nested arrays included) from a reader.
void gguf_set_value(gguf_writer *w, const char *key, const gguf_value *v);
// Adds a tensor; data is NOT copied and must stay valid until gguf_writer_write returns.
// ne[0] must be a multiple of the type's block size.
tv_status gguf_add_tensor(gguf_writer *w, const char *name, tv_type type, int n_dims, const int64_t *ne,
                          const void *data, tv_error *err);
// Streamed tensor data: fills rows [row0, row0 + n_rows) of the tensor (a row = ne[0] elements,
// rows counted over ne[1]*ne[2]*ne[3]) into dst, already in the tensor's type
// (n_rows * row-size bytes). Called in increasing row order with chunks of about 8 MiB, during
// gguf_writer_write (with gguf_writer_set_threads > 1: concurrently, in any order). Returns TV_OK
// or fails with err filled (the write is then abandoned).
typedef tv_status (*gguf_tensor_source_fn)(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err);
// Adds a tensor whose data is produced by fill at write time (user must stay valid until then),
// so files larger than memory can be written tensor by tensor.
tv_status gguf_add_tensor_source(gguf_writer *w, const char *name, tv_type type, int n_dims, const int64_t *ne,
                                 gguf_tensor_source_fn fill, void *user, tv_error *err);
// Writes the file (version 3, general.alignment honoured: it must be a u32 power of two) to a
// temporary next to path, renamed over path on success (no partial file on failure). Setter
// failures (out of memory, malformed values) recorded earlier are reported here. Errors name the path.
tv_status gguf_writer_write(gguf_writer *w, const char *path, tv_error *err);
// Same into a malloc'd buffer (*out, *size; the caller frees it).
tv_status gguf_writer_write_memory(gguf_writer *w, void **out, size_t *size, tv_error *err);
// gguf_writer_write fills and writes the tensor data on n_threads threads (> 1): every source's fill
// is then called concurrently for disjoint row chunks, in no particular order, so it must be safe
// to call from several threads (and must not run a pool of its own). 1 (the default): the caller's
// thread, in row order. gguf_writer_write_memory always writes on the caller's thread.
void gguf_writer_set_threads(gguf_writer *w, int n_threads);
// fn (NULL: none) is told the tensor bytes written so far of their total during gguf_writer_write
// (with threads: from one of them).
void gguf_writer_set_progress(gguf_writer *w, tv_progress_fn fn, void *user);

#endif
