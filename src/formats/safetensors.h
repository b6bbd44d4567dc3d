// safetensors.h — Hugging Face safetensors reader (memory-mapped, every field validated), the
// tensor set of a model folder (one file or index-listed shards), and a streaming writer.
//
// File grammar (little-endian):
//   u64 N | N bytes of JSON header | data
//   header = { "__metadata__": {str: str} (optional),
//              NAME: {"dtype": D, "shape": [n, ...], "data_offsets": [begin, end]}, ... }
//   offsets are relative to the data start (8 + N); end - begin = prod(shape) * size(D).
// Folder: model.safetensors, or model.safetensors.index.json = {"weight_map": {NAME: FILE}, ...}
// naming the shard of every tensor (files in the same folder).
#ifndef TV_SAFETENSORS_H
#define TV_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((uint64_t)100 << 20)   // the reference implementation's limit

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F8_E4M3,   // the float types tinyvllm computes with (F8: with scales)
    ST_U8,                                 // bytes: gpt-oss's MXFP4 expert blocks (2 FP4 codes each) and E8M0 scales
    ST_OTHER,                              // a known dtype tinyvllm does not compute with (I64, I8, ...)
} st_dtype;

typedef struct st_tensor {
    const char *name;          // NUL-terminated
    const char *file;          // the path (or label) of the file holding it, for messages
    st_dtype dtype;
    const char *dtype_name;    // as in the header ("BF16")
    int n_dims;                // 0 .. ST_MAX_DIMS (0: a scalar)
    int64_t shape[ST_MAX_DIMS];   // row-major: shape[n_dims - 1] varies fastest
    size_t nbytes;
    const void *data;          // into the mapping, aligned to the element size
} st_tensor;

typedef struct st_file st_file;

// Opens and validates one file; the data stays mapped read-only and is used in place. Checked
// before use: the header length against the file ("header claims N bytes, the file has M"),
// the JSON, every entry's dtype (known), shape (non-negative, overflow-checked), data_offsets
// (integers, begin <= end <= data size, end - begin = the shape's bytes, begin aligned to the
// element size), no two tensors overlapping, no duplicate names. Errors name the file and the
// tensor ("shard.safetensors: tensor 'x': data_offsets [0, 10] but F32 [3] needs 12 bytes").
st_file *st_open(const char *path, tv_error *err);
// Same over a caller-owned buffer (no copy; it must outlive the handle). For fuzzing and tests.
st_file *st_open_memory(const void *data, size_t size, const char *label, tv_error *err);
void st_close(st_file *f);
int64_t st_n_tensors(const st_file *f);
const st_tensor *st_tensor_at(const st_file *f, int64_t i);   // in header order
const st_tensor *st_find(const st_file *f, const char *name);   // NULL if absent
// A "__metadata__" string value, or NULL.
const char *st_metadata(const st_file *f, const char *key);

// A model folder's tensors: the shards of model.safetensors.index.json (each listed shard must
// exist, every weight_map entry must be in its shard, no tensor in two shards), else the single
// model.safetensors. Errors name the folder, file and tensor.
typedef struct st_set st_set;
st_set *st_set_open(const char *dir, tv_error *err);
void st_set_close(st_set *s);
int64_t st_set_n_tensors(const st_set *s);
const st_tensor *st_set_tensor(const st_set *s, int64_t i);   // sorted by name
const st_tensor *st_set_find(const st_set *s, const char *name);
// Bytes of tensor data over every shard, and the newest modification time of a shard (ns), the
// folder's identity for caches.
uint64_t st_set_data_bytes(const st_set *s);
// The shard files (i < st_set_n_files), as opened.
int st_set_n_files(const st_set *s);
const char *st_set_file(const st_set *s, int i);
int64_t st_set_mtime_ns(const st_set *s);

size_t st_dtype_size(st_dtype t);   // bytes per element (ST_OTHER: 0)

// ---- writer ----
// Rows: a tensor's elements in runs of shape[n_dims - 1] (one row for a vector), counted over the
// other dimensions. fill writes rows [row0, row0 + n_rows) in the tensor's dtype into dst, in
// increasing order, during st_writer_write.
typedef tv_status (*st_fill_fn)(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err);
typedef struct st_writer st_writer;
st_writer *st_writer_create(void);   // NULL when out of memory
void st_writer_free(st_writer *w);
// Adds a tensor (dtype F32, F16, BF16, F8_E4M3 or U8; name copied; user must stay valid until the write).
tv_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int n_dims, const int64_t *shape,
                        st_fill_fn fill, void *user, tv_error *err);
// Writes the file (header padded to 8 bytes, tensors in the order added) to a temporary renamed
// over path on success.
tv_status st_writer_write(st_writer *w, const char *path, tv_error *err);

#endif
