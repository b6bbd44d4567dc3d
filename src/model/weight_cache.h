// weight_cache.h — prepared weights (repacked and/or quantized at load) written once to a cache
// file and memory-mapped read-only afterwards, so every process on the machine shares one copy in
// the page cache and a second start skips the preparation.
//
// File grammar (little-endian):
//   "TVWC" u32:version u64:n_entries u64:key_len key[key_len] (padded to 8)
//   n_entries x { u32:slot u32:type u32:packed u32:ne2 i64:ne0 i64:ne1 u64:offset u64:nbytes }
//   (ne2: an expert tensor's matrix count, else 1; the data holds ne1 x ne2 rows of ne0)
//   u64:fnv64 of every byte before it | zero padding to 4096 | data (each entry at its offset, 64-aligned;
//   entries of 2 MiB or more 2 MiB-aligned; the gaps are holes that read as zeros)
// The key names everything the bytes depend on (the source's path, size and modification time, the
// CPU kernel path, the quantize type, the layout version); the file name is a hash of the parts that
// do not change when the source is rewritten, so a rewritten source finds its old entry, sees the
// key differ and rebuilds it.
#ifndef TV_WEIGHT_CACHE_H
#define TV_WEIGHT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tinyvllm.h"

// Bump when a packed layout or what the cache stores changes: old files then read as stale.
// (3: entries carry ne2; version 2 files could not describe 3-D expert tensors and read as corrupt.
// 4: entries of 2 MiB or more start on 2 MiB boundaries of the file, so the page cache can hold and
// map them as 2 MiB folios: decode streams the weights through 2 MiB TLB entries, as the roofline's
// read probe streams its buffer; a version 3 file's entries mostly straddled them. 5: packed Q6_K
// holds its codes as ref_k.c q6k_pack_codes writes them, not ql | qh. 6: packed Q5_K's codes as
// ref_k.c q5k_pack_codes writes them, not qs | qh. 7: packed Q4_K and Q5_K super-blocks carry their f16 d,
// dmin in front of their scales and codes, so a tile reads one stream front to back. 8: packed Q6_K,
// Q3_K and Q2_K super-blocks the same: f16 d [dmin] | scales | codes. 9: packed IQ4_XS the same: f16 d |
// u16 scales_h | scales_l | qs, kernels/pack_layout.h)
#define WCACHE_LAYOUT_VERSION 9

typedef struct wcache_map { void *base; size_t size; } wcache_map;

// Reads path: 1 when it exists, is well-formed and its key equals key; then every entry's slot
// (slots[slot], n slots) is pointed into the read-only shared mapping *map (type, packed, nbytes,
// data) after all entries were checked against their slots' shapes. 0 when the file is absent.
// -1 when it is stale or corrupt: why receives the reason, nothing is changed.
int wcache_load(const char *path, const char *key, tv_tensor *const *slots, int n, wcache_map *map, char *why,
                size_t why_cap);
// Writes the slots whose is_prepared[i] is set to path through a temporary renamed over it (a
// reader never sees a partial file). Errors name the path.
tv_status wcache_store(const char *path, const char *key, tv_tensor *const *slots, const bool *is_prepared, int n,
                       tv_error *err);
// Deletes the least recently used *.tvw files of dir (by modification time; wcache_touch on every
// use) until they total at most max_bytes, never `keep`. Returns the bytes removed.
uint64_t wcache_evict(const char *dir, uint64_t max_bytes, const char *keep);
// Marks path used now (its modification time), for the LRU order.
void wcache_touch(const char *path);
void wcache_unmap(wcache_map *map);

#endif
