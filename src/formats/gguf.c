// gguf.c — GGUF v2/v3 reader (memory-mapped, every field validated before use) and v3 writer.
//
// Grammar (little-endian; see gguf.h for the full picture):
//   file   = "GGUF" u32:version u64:n_tensors u64:n_kv kv{n_kv} tinfo{n_tensors} pad data
//   kv     = str:key u32:type value(type)
//   value  = scalar | str | u32:elem_type u64:n value(elem_type){n}      (ARRAY, nests)
//   tinfo  = str:name u32:n_dims u64:ne{n_dims} u32:tv_type u64:offset
//   str    = u64:len byte{len}
// Reader policy: every length and count is checked against the bytes that remain before it is
// used or allocated for, so a lying count can never cause an allocation larger than a small
// multiple of the file size; errors name the label, the problem and the byte offset.
#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian fields in place: big-endian hosts are not supported"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_DEPTH 8             // nesting limit for arrays of arrays
#define GGUF_MAX_KEY_LEN 65535       // spec: keys are at most 2^16-1 bytes
#define GGUF_MAX_NAME_LEN 1024       // ggml uses 64; be lenient but bounded
#define GGUF_MAX_ALIGNMENT (1u << 30)
#define GGUF_MIN_KV_BYTES 13         // key len (8) + type (4) + smallest value (1)
#define GGUF_MIN_TINFO_BYTES 32      // name len (8) + n_dims (4) + one ne (8) + type (4) + offset (8)

static const size_t TYPE_SIZE[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1, [GGUF_TYPE_INT8] = 1, [GGUF_TYPE_UINT16] = 2, [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0, [GGUF_TYPE_ARRAY] = 0, [GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

static bool type_is_numeric(gguf_type t) {   // fixed-size scalar (bool included)
    return (unsigned)t < GGUF_TYPE_COUNT && t != GGUF_TYPE_STRING && t != GGUF_TYPE_ARRAY;
}
static bool type_is_int(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64:
        return true;
    default: return false;
    }
}
static bool type_is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

const char *gguf_type_name(gguf_type t) {
    static const char *const NAMES[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? NAMES[t] : "?";
}

// ---- string-keyed index (open addressing, FNV-1a) ----
typedef struct { int64_t *slots; size_t mask; } name_index;   // slots: (mask + 1) entries, -1 empty

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (uint8_t)*s; h *= 1099511628211ull; }
    return h;
}

static bool index_init(name_index *ix, int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return false;
    for (size_t i = 0; i < cap; i++) ix->slots[i] = -1;
    ix->mask = cap - 1;
    return true;
}

// Returns the slot holding name (names[slot] matches) or the empty slot where it would go.
static size_t index_probe(const name_index *ix, char *const *names, const char *name) {
    size_t i = fnv1a(name) & ix->mask;
    while (ix->slots[i] >= 0 && strcmp(names[ix->slots[i]], name)) i = (i + 1) & ix->mask;
    return i;
}

// ---- reader ----
struct gguf_ctx {
    char *label;
    const uint8_t *base;      // the file bytes (mapping or caller buffer)
    size_t size;
    void *map;                // owned mapping (NULL for open_memory)
    void *owned;              // gguf_open_buffer's buffer, freed at close
    size_t map_size;
    // gguf_open_lazy: base holds the header only; tensors are mapped one by one from fd
    int lazy_fd;              // -1 when not lazy
    size_t file_size;         // the whole file's size (the data section is checked against it)
    void **lazy_maps;         // (n_tensors) each mapped tensor's mapping, page-aligned, or NULL
    size_t *lazy_sizes;       // (n_tensors)
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    char **keys;              // n_kv NUL-terminated copies
    gguf_value *values;       // n_kv
    name_index kv_ix;
    int64_t n_tensors;
    gguf_tensor_info *tensors;
    char **tensor_names;      // n_tensors, aliases of tensors[i].name (for the index)
    name_index t_ix;
};

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    const char *label;
    tv_error *err;
    char what[160];           // what is being read, for messages
} reader;

static bool rd_fail(reader *r, tv_status code, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool rd_fail(reader *r, tv_status code, size_t at, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_fail(r->err, code, "%s: %s at offset %zu (%s)", r->label, msg, at, r->what);
    return false;
}

static bool rd_need(reader *r, size_t n) {
    if (r->size - r->pos >= n) return true;
    err_fail(r->err, TV_ERR_FORMAT, "%s: truncated at offset %zu reading %s (need %zu bytes, %zu left)",
            r->label, r->pos, r->what, n, r->size - r->pos);
    return false;
}

static bool rd_u32(reader *r, uint32_t *out) {
    if (!rd_need(r, 4)) return false;
    memcpy(out, r->p + r->pos, 4);
    r->pos += 4;
    return true;
}
static bool rd_u64(reader *r, uint64_t *out) {
    if (!rd_need(r, 8)) return false;
    memcpy(out, r->p + r->pos, 8);
    r->pos += 8;
    return true;
}

// A string in place; max_len bounds it (0 = only by the bytes left).
static bool rd_str(reader *r, gguf_str *out, uint64_t max_len) {
    size_t at = r->pos;
    uint64_t len;
    if (!rd_u64(r, &len)) return false;
    if (max_len && len > max_len) return rd_fail(r, TV_ERR_FORMAT, at, "string length %llu exceeds the limit %llu",
                                                 (unsigned long long)len, (unsigned long long)max_len);
    if (len > r->size - r->pos)
        return rd_fail(r, TV_ERR_FORMAT, at, "string length %llu exceeds the %zu bytes left",
                       (unsigned long long)len, r->size - r->pos);
    out->ptr = (const char *)r->p + r->pos;
    out->len = len;
    r->pos += (size_t)len;
    return true;
}

// A NUL-terminated heap copy of a key/name (which must not contain NUL).
static char *rd_name(reader *r, uint64_t max_len) {
    size_t at = r->pos;
    gguf_str s;
    if (!rd_str(r, &s, max_len)) return NULL;
    if (memchr(s.ptr, 0, s.len)) { rd_fail(r, TV_ERR_FORMAT, at, "name contains a NUL byte"); return NULL; }
    char *c = malloc(s.len + 1);
    if (!c) { err_fail(r->err, TV_ERR_NOMEM, "%s: out of memory reading %s", r->label, r->what); return NULL; }
    memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    return c;
}

static void value_free(gguf_value *v) {
    if (v->type != GGUF_TYPE_ARRAY || !v->arr_items) return;
    for (uint64_t i = 0; i < v->arr_n; i++) value_free(&v->arr_items[i]);
    free(v->arr_items);
    v->arr_items = NULL;
}

static bool rd_value(reader *r, gguf_type type, gguf_value *out, int depth) {
    size_t at = r->pos;
    memset(out, 0, sizeof *out);
    out->type = type;
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64: {
        size_t n = TYPE_SIZE[type];
        if (!rd_need(r, n)) return false;
        uint64_t u = 0;
        memcpy(&u, r->p + r->pos, n);
        r->pos += n;
        out->v.u = u;
        return true;
    }
    case GGUF_TYPE_INT8: { if (!rd_need(r, 1)) return false; int8_t x; memcpy(&x, r->p + r->pos, 1); r->pos += 1; out->v.i = x; return true; }
    case GGUF_TYPE_INT16: { if (!rd_need(r, 2)) return false; int16_t x; memcpy(&x, r->p + r->pos, 2); r->pos += 2; out->v.i = x; return true; }
    case GGUF_TYPE_INT32: { if (!rd_need(r, 4)) return false; int32_t x; memcpy(&x, r->p + r->pos, 4); r->pos += 4; out->v.i = x; return true; }
    case GGUF_TYPE_INT64: { if (!rd_need(r, 8)) return false; int64_t x; memcpy(&x, r->p + r->pos, 8); r->pos += 8; out->v.i = x; return true; }
    case GGUF_TYPE_FLOAT32: { if (!rd_need(r, 4)) return false; float x; memcpy(&x, r->p + r->pos, 4); r->pos += 4; out->v.f = x; return true; }
    case GGUF_TYPE_FLOAT64: { if (!rd_need(r, 8)) return false; double x; memcpy(&x, r->p + r->pos, 8); r->pos += 8; out->v.f = x; return true; }
    case GGUF_TYPE_BOOL: {
        if (!rd_need(r, 1)) return false;
        uint8_t b = r->p[r->pos];
        if (b > 1) return rd_fail(r, TV_ERR_FORMAT, at, "bool value %u is not 0 or 1", b);
        r->pos += 1;
        out->v.b = b;
        return true;
    }
    case GGUF_TYPE_STRING: return rd_str(r, &out->v.s, 0);
    case GGUF_TYPE_ARRAY: {
        if (depth >= GGUF_MAX_DEPTH) return rd_fail(r, TV_ERR_FORMAT, at, "arrays nested deeper than %d", GGUF_MAX_DEPTH);
        uint32_t et;
        uint64_t n;
        if (!rd_u32(r, &et) || !rd_u64(r, &n)) return false;
        if (et >= GGUF_TYPE_COUNT) return rd_fail(r, TV_ERR_FORMAT, at, "unknown array element type %u", et);
        out->arr_type = (gguf_type)et;
        size_t left = r->size - r->pos;
        if (type_is_numeric((gguf_type)et)) {
            size_t esz = TYPE_SIZE[et];
            if (n > left / esz)
                return rd_fail(r, TV_ERR_FORMAT, at, "array of %llu %s needs more than the %zu bytes left",
                               (unsigned long long)n, gguf_type_name((gguf_type)et), left);
            if (et == GGUF_TYPE_BOOL)
                for (uint64_t i = 0; i < n; i++)
                    if (r->p[r->pos + i] > 1)
                        return rd_fail(r, TV_ERR_FORMAT, r->pos + (size_t)i, "bool array element %llu is not 0 or 1",
                                       (unsigned long long)i);
            out->arr_n = n;
            out->arr_data = r->p + r->pos;
            r->pos += (size_t)n * esz;
            return true;
        }
        // STRING (>= 8 bytes each) or ARRAY (>= 12 bytes each): bound the count before allocating
        size_t min_elem = et == GGUF_TYPE_STRING ? 8 : 12;
        if (n > left / min_elem)
            return rd_fail(r, TV_ERR_FORMAT, at, "array of %llu %s cannot fit in the %zu bytes left",
                           (unsigned long long)n, gguf_type_name((gguf_type)et), left);
        if (n == 0) return true;
        out->arr_items = calloc((size_t)n, sizeof *out->arr_items);
        if (!out->arr_items) { err_fail(r->err, TV_ERR_NOMEM, "%s: out of memory for an array of %llu at offset %zu",
                                       r->label, (unsigned long long)n, at); return false; }
        out->arr_n = n;   // items past a failure are zeroed: value_free handles them
        for (uint64_t i = 0; i < n; i++)
            if (!rd_value(r, (gguf_type)et, &out->arr_items[i], depth + 1)) return false;
        return true;
    }
    default:
        return rd_fail(r, TV_ERR_FORMAT, at, "unknown value type %u", (unsigned)type);
    }
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }   // a: power of two, no overflow (checked by callers)

static bool parse(gguf_ctx *ctx, tv_error *err) {
    reader rd = { .p = ctx->base, .size = ctx->size, .pos = 0, .label = ctx->label, .err = err };
    reader *r = &rd;
    snprintf(r->what, sizeof r->what, "the magic");
    if (!rd_need(r, 4)) return false;
    if (memcmp(r->p, GGUF_MAGIC, 4))
        return rd_fail(r, TV_ERR_FORMAT, 0, "not a GGUF file: magic is %02x %02x %02x %02x, expected \"GGUF\"",
                       r->p[0], r->p[1], r->p[2], r->p[3]);
    r->pos = 4;
    snprintf(r->what, sizeof r->what, "the version");
    if (!rd_u32(r, &ctx->version)) return false;
    if (ctx->version == 1)
        return rd_fail(r, TV_ERR_UNSUPPORTED, 4, "unsupported GGUF version 1 (only versions 2 and 3 are supported)");
    if (ctx->version != 2 && ctx->version != 3) {
        if (ctx->version == 0x02000000u || ctx->version == 0x03000000u)
            return rd_fail(r, TV_ERR_UNSUPPORTED, 4, "big-endian GGUF files are not supported");
        return rd_fail(r, TV_ERR_UNSUPPORTED, 4, "unsupported GGUF version %u (only versions 2 and 3 are supported)",
                       ctx->version);
    }
    uint64_t n_tensors, n_kv;
    snprintf(r->what, sizeof r->what, "the tensor count");
    if (!rd_u64(r, &n_tensors)) return false;
    snprintf(r->what, sizeof r->what, "the metadata count");
    if (!rd_u64(r, &n_kv)) return false;
    size_t left = r->size - r->pos;
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return rd_fail(r, TV_ERR_FORMAT, 16, "metadata count %llu cannot fit in the %zu bytes left",
                       (unsigned long long)n_kv, left);
    if (n_tensors > left / GGUF_MIN_TINFO_BYTES)
        return rd_fail(r, TV_ERR_FORMAT, 8, "tensor count %llu cannot fit in the %zu bytes left",
                       (unsigned long long)n_tensors, left);

    // ---- metadata ----
    ctx->keys = calloc(n_kv ? (size_t)n_kv : 1, sizeof *ctx->keys);
    ctx->values = calloc(n_kv ? (size_t)n_kv : 1, sizeof *ctx->values);
    if (!ctx->keys || !ctx->values || !index_init(&ctx->kv_ix, (int64_t)n_kv))
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory for %llu metadata entries", ctx->label,
                       (unsigned long long)n_kv), false;
    for (uint64_t i = 0; i < n_kv; i++) {
        size_t at = r->pos;
        snprintf(r->what, sizeof r->what, "the key of metadata entry %llu", (unsigned long long)i);
        char *key = rd_name(r, GGUF_MAX_KEY_LEN);
        if (!key) return false;
        ctx->keys[i] = key;
        ctx->n_kv = (int64_t)i + 1;   // keys[0..n_kv) and values[0..n_kv) are owned from here on
        size_t slot = index_probe(&ctx->kv_ix, ctx->keys, key);
        if (ctx->kv_ix.slots[slot] >= 0) return rd_fail(r, TV_ERR_FORMAT, at, "duplicate key '%s'", key);
        ctx->kv_ix.slots[slot] = (int64_t)i;
        snprintf(r->what, sizeof r->what, "the value of '%.100s'", key);
        uint32_t type;
        size_t type_at = r->pos;
        if (!rd_u32(r, &type)) return false;
        if (type >= GGUF_TYPE_COUNT) return rd_fail(r, TV_ERR_FORMAT, type_at, "unknown value type %u", type);
        if (!rd_value(r, (gguf_type)type, &ctx->values[i], 0)) return false;
    }

    // ---- alignment ----
    ctx->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_value *al = gguf_get(ctx, "general.alignment");
    if (al) {
        snprintf(r->what, sizeof r->what, "general.alignment");
        if (!type_is_int(al->type) || (type_is_signed(al->type) && al->v.i < 0))
            return rd_fail(r, TV_ERR_FORMAT, r->pos, "general.alignment must be an unsigned integer, not %s",
                           gguf_type_name(al->type));
        uint64_t a = al->v.u;
        if (a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
            return rd_fail(r, TV_ERR_FORMAT, r->pos, "general.alignment %llu is not a power of two in 1..2^30",
                           (unsigned long long)a);
        ctx->alignment = (size_t)a;
    }

    // ---- tensor infos ----
    ctx->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *ctx->tensors);
    ctx->tensor_names = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *ctx->tensor_names);
    if (!ctx->tensors || !ctx->tensor_names || !index_init(&ctx->t_ix, (int64_t)n_tensors))
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory for %llu tensor infos", ctx->label,
                       (unsigned long long)n_tensors), false;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor_info *t = &ctx->tensors[i];
        size_t at = r->pos;
        snprintf(r->what, sizeof r->what, "the name of tensor info %llu", (unsigned long long)i);
        t->name = rd_name(r, GGUF_MAX_NAME_LEN);
        if (!t->name) return false;
        ctx->tensor_names[i] = t->name;
        ctx->n_tensors = (int64_t)i + 1;
        snprintf(r->what, sizeof r->what, "tensor info %llu ('%.100s')", (unsigned long long)i, t->name);
        size_t slot = index_probe(&ctx->t_ix, ctx->tensor_names, t->name);
        if (ctx->t_ix.slots[slot] >= 0) return rd_fail(r, TV_ERR_FORMAT, at, "duplicate tensor name");
        ctx->t_ix.slots[slot] = (int64_t)i;
        uint32_t n_dims;
        size_t dims_at = r->pos;
        if (!rd_u32(r, &n_dims)) return false;
        if (n_dims < 1 || n_dims > 4) return rd_fail(r, TV_ERR_FORMAT, dims_at, "n_dims %u is not in 1..4", n_dims);
        t->n_dims = (int)n_dims;
        int64_t n_elems = 1;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            size_t ne_at = r->pos;
            if (!rd_u64(r, &ne)) return false;
            if (ne > (uint64_t)INT64_MAX) return rd_fail(r, TV_ERR_FORMAT, ne_at, "ne[%u] is negative", d);
            t->ne[d] = (int64_t)ne;
            if (__builtin_mul_overflow(n_elems, t->ne[d], &n_elems))
                return rd_fail(r, TV_ERR_FORMAT, ne_at, "element count overflows at ne[%u] = %llu", d,
                               (unsigned long long)ne);
        }
        uint32_t type;
        size_t type_at = r->pos;
        if (!rd_u32(r, &type)) return false;
        const tv_type_traits *tr = type < TV_TYPE_COUNT ? kern_traits_ref((tv_type)type) : NULL;
        if (!tr || tr->blck_size <= 0 || tr->type_size == 0)
            return rd_fail(r, TV_ERR_UNSUPPORTED, type_at, "unknown tensor type id %u", type);
        t->type = (tv_type)type;
        if (t->ne[0] % tr->blck_size)
            return rd_fail(r, TV_ERR_FORMAT, dims_at, "ne[0] = %lld is not a multiple of the %s block size %lld",
                           (long long)t->ne[0], tr->name, (long long)tr->blck_size);
        // nbytes = ne[0]/blck * type_size * ne[1] * ne[2] * ne[3]
        size_t nb = (size_t)(t->ne[0] / tr->blck_size);
        bool ok = mul_ok(nb, tr->type_size, &nb);
        for (int d = 1; d < 4 && ok; d++) ok = mul_ok(nb, (size_t)t->ne[d], &nb);
        if (!ok) return rd_fail(r, TV_ERR_FORMAT, dims_at, "byte size overflows");
        t->nbytes = nb;
        size_t off_at = r->pos;
        if (!rd_u64(r, &t->offset)) return false;
        if (t->offset % ctx->alignment)
            return rd_fail(r, TV_ERR_FORMAT, off_at, "data offset %llu is not a multiple of the alignment %zu",
                           (unsigned long long)t->offset, ctx->alignment);
    }

    // ---- data section ----
    size_t end_of_infos = r->pos;
    if (end_of_infos > SIZE_MAX - ctx->alignment) return rd_fail(r, TV_ERR_FORMAT, end_of_infos, "offset overflow");
    ctx->data_offset = align_up(end_of_infos, ctx->alignment);
    const size_t fsize = ctx->lazy_fd >= 0 ? ctx->file_size : ctx->size;
    size_t data_size = ctx->data_offset <= fsize ? fsize - ctx->data_offset : 0;
    for (int64_t i = 0; i < ctx->n_tensors; i++) {
        gguf_tensor_info *t = &ctx->tensors[i];
        snprintf(r->what, sizeof r->what, "the data of tensor '%.100s'", t->name);
        if (ctx->data_offset > fsize || t->offset > data_size || t->nbytes > data_size - t->offset)
            return rd_fail(r, TV_ERR_FORMAT, ctx->data_offset,
                           "tensor data [%llu, +%zu) of the data section lies outside the file (%zu bytes of data)",
                           (unsigned long long)t->offset, t->nbytes, data_size);
        t->data = ctx->lazy_fd >= 0 ? NULL : ctx->base + ctx->data_offset + t->offset;   // lazy: gguf_map_tensor
    }
    return true;
}

static gguf_ctx *ctx_new(const char *label, tv_error *err) {
    gguf_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx) ctx->lazy_fd = -1;
    if (ctx) ctx->label = strdup(label ? label : "<memory>");
    if (!ctx || !ctx->label) {
        free(ctx);
        err_fail(err, TV_ERR_NOMEM, "%s: out of memory", label ? label : "<memory>");
        return NULL;
    }
    return ctx;
}

gguf_ctx *gguf_open_buffer(void *data, size_t size, const char *label, tv_error *err) {
    gguf_ctx *ctx = gguf_open_memory(data, size, label, err);
    if (ctx) ctx->owned = data;
    else free(data);
    return ctx;
}

gguf_ctx *gguf_open_memory(const void *data, size_t size, const char *label, tv_error *err) {
    gguf_ctx *ctx = ctx_new(label, err);
    if (!ctx) return NULL;
    ctx->base = data;
    ctx->size = data ? size : 0;
    if (!parse(ctx, err)) { gguf_close(ctx); return NULL; }
    return ctx;
}

int gguf_file_has_magic(const char *path, tv_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char magic[4] = {0};
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == sizeof magic && !memcmp(magic, GGUF_MAGIC, sizeof magic);
}

gguf_ctx *gguf_open(const char *path, tv_error *err) {
    gguf_ctx *ctx = ctx_new(path, err);
    if (!ctx) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) { err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    if (fstat(fd, &st) != 0) { err_fail(err, TV_ERR_IO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
    if (!S_ISREG(st.st_mode)) { err_fail(err, TV_ERR_IO, "%s: not a regular file", path); goto fail; }
    if (st.st_size < 24) {
        err_fail(err, TV_ERR_FORMAT, "%s: file is %lld bytes, too small for a GGUF header (24 bytes)", path,
                (long long)st.st_size);
        goto fail;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) { err_fail(err, TV_ERR_IO, "%s: file too large to map", path); goto fail; }
    ctx->map_size = (size_t)st.st_size;
    ctx->map = mmap(NULL, ctx->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (ctx->map == MAP_FAILED) {
        ctx->map = NULL;
        err_fail(err, TV_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    ctx->base = ctx->map;
    ctx->size = ctx->map_size;
    if (!parse(ctx, err)) goto fail;
    return ctx;
fail:
    if (fd >= 0) close(fd);
    gguf_close(ctx);
    return NULL;
}

gguf_ctx *gguf_open_lazy(const char *path, tv_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) { err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SIZE_MAX) {
        err_fail(err, TV_ERR_IO, "%s: not a readable regular file", path);
        close(fd);
        return NULL;
    }
    const size_t fsize = (size_t)st.st_size;
    // the header's length is known only once parsed: read a prefix, growing it until it parses
    for (size_t n = fsize < ((size_t)1 << 20) ? fsize : (size_t)1 << 20;; n = n > fsize / 4 ? fsize : n * 4) {
        uint8_t *buf = malloc(n ? n : 1);
        ssize_t got = buf ? pread(fd, buf, n, 0) : -1;
        if (got < 0 || (size_t)got != n) {
            free(buf);
            err_fail(err, buf ? TV_ERR_IO : TV_ERR_NOMEM, "%s: cannot read the header: %s", path,
                     buf ? strerror(errno) : "out of memory");
            close(fd);
            return NULL;
        }
        gguf_ctx *ctx = ctx_new(path, err);
        if (!ctx) { free(buf); close(fd); return NULL; }
        ctx->owned = buf;
        ctx->base = buf;
        ctx->size = n;
        ctx->lazy_fd = fd;
        ctx->file_size = fsize;
        tv_error perr = {0};
        if (parse(ctx, &perr)) {
            ctx->lazy_maps = calloc((size_t)ctx->n_tensors + 1, sizeof *ctx->lazy_maps);
            ctx->lazy_sizes = calloc((size_t)ctx->n_tensors + 1, sizeof *ctx->lazy_sizes);
            if (ctx->lazy_maps && ctx->lazy_sizes) return ctx;
            err_fail(&perr, TV_ERR_NOMEM, "%s: out of memory", path);
        }
        ctx->lazy_fd = -1;   // the fd stays ours for the next try
        gguf_close(ctx);
        if (n == fsize || perr.code == TV_ERR_NOMEM) {
            if (err) *err = perr;
            close(fd);
            return NULL;
        }
    }
}

const void *gguf_map_tensor(gguf_ctx *ctx, const gguf_tensor_info *t, tv_error *err) {
    if (t->data || ctx->lazy_fd < 0) return t->data;
    const int64_t i = t - ctx->tensors;
    long ps = sysconf(_SC_PAGESIZE);
    const size_t page = ps > 0 ? (size_t)ps : 4096, at = ctx->data_offset + (size_t)t->offset;
    const size_t start = at & ~(page - 1), len = at + t->nbytes - start;
    void *p = mmap(NULL, len ? len : 1, PROT_READ, MAP_PRIVATE, ctx->lazy_fd, (off_t)start);
    if (p == MAP_FAILED) {
        err_fail(err, TV_ERR_IO, "%s: mmap of tensor '%s' (%zu bytes) failed: %s", ctx->label, t->name, t->nbytes,
                 strerror(errno));
        return NULL;
    }
    ctx->lazy_maps[i] = p;
    ctx->lazy_sizes[i] = len ? len : 1;
    ctx->tensors[i].data = (const uint8_t *)p + (at - start);
    return t->data;
}

void gguf_close(gguf_ctx *ctx) {
    if (!ctx) return;
    for (int64_t i = 0; i < ctx->n_kv; i++) {
        free(ctx->keys[i]);
        value_free(&ctx->values[i]);
    }
    free(ctx->keys);
    free(ctx->values);
    free(ctx->kv_ix.slots);
    for (int64_t i = 0; i < ctx->n_tensors; i++) free(ctx->tensors[i].name);
    free(ctx->tensors);
    free(ctx->tensor_names);
    free(ctx->t_ix.slots);
    if (ctx->map) munmap(ctx->map, ctx->map_size);
    for (int64_t i = 0; ctx->lazy_maps && i < ctx->n_tensors; i++)
        if (ctx->lazy_maps[i]) munmap(ctx->lazy_maps[i], ctx->lazy_sizes[i]);
    free(ctx->lazy_maps);
    free(ctx->lazy_sizes);
    if (ctx->lazy_fd >= 0) close(ctx->lazy_fd);
    free(ctx->owned);
    free(ctx->label);
    free(ctx);
}

uint32_t gguf_version(const gguf_ctx *ctx) { return ctx->version; }
size_t gguf_alignment(const gguf_ctx *ctx) { return ctx->alignment; }
size_t gguf_data_offset(const gguf_ctx *ctx) { return ctx->data_offset; }
size_t gguf_file_size(const gguf_ctx *ctx) { return ctx->size; }
int64_t gguf_n_kv(const gguf_ctx *ctx) { return ctx->n_kv; }

const char *gguf_kv_key(const gguf_ctx *ctx, int64_t i) {
    return i >= 0 && i < ctx->n_kv ? ctx->keys[i] : NULL;
}
const gguf_value *gguf_kv_value(const gguf_ctx *ctx, int64_t i) {
    return i >= 0 && i < ctx->n_kv ? &ctx->values[i] : NULL;
}

const gguf_value *gguf_get(const gguf_ctx *ctx, const char *key) {
    if (!ctx->kv_ix.slots || !key) return NULL;
    int64_t i = ctx->kv_ix.slots[index_probe(&ctx->kv_ix, ctx->keys, key)];
    return i >= 0 ? &ctx->values[i] : NULL;
}

bool gguf_get_int(const gguf_ctx *ctx, const char *key, int64_t *out) {
    const gguf_value *v = gguf_get(ctx, key);
    if (!v || !type_is_int(v->type)) return false;
    if (!type_is_signed(v->type) && v->v.u > (uint64_t)INT64_MAX) return false;
    *out = type_is_signed(v->type) ? v->v.i : (int64_t)v->v.u;
    return true;
}

bool gguf_get_float(const gguf_ctx *ctx, const char *key, double *out) {
    const gguf_value *v = gguf_get(ctx, key);
    if (!v) return false;
    if (v->type == GGUF_TYPE_FLOAT32 || v->type == GGUF_TYPE_FLOAT64) { *out = v->v.f; return true; }
    if (!type_is_int(v->type)) return false;
    *out = type_is_signed(v->type) ? (double)v->v.i : (double)v->v.u;
    return true;
}

bool gguf_get_bool(const gguf_ctx *ctx, const char *key, bool *out) {
    const gguf_value *v = gguf_get(ctx, key);
    if (!v || v->type != GGUF_TYPE_BOOL) return false;
    *out = v->v.b;
    return true;
}

bool gguf_get_str(const gguf_ctx *ctx, const char *key, gguf_str *out) {
    const gguf_value *v = gguf_get(ctx, key);
    if (!v || v->type != GGUF_TYPE_STRING) return false;
    *out = v->v.s;
    return true;
}

// Truncates toward zero, saturating (NaN -> 0): a float from the file may be anything.
static int64_t float_to_i64(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

int64_t gguf_arr_int(const gguf_value *v, uint64_t i) {
    if (v->type != GGUF_TYPE_ARRAY || i >= v->arr_n || !v->arr_data) return 0;
    const uint8_t *p = (const uint8_t *)v->arr_data + i * TYPE_SIZE[v->arr_type];
    switch (v->arr_type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: return *p;
    case GGUF_TYPE_INT8: return (int8_t)*p;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, p, 8); return x; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); return float_to_i64(x); }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); return float_to_i64(x); }
    default: return 0;
    }
}

double gguf_arr_float(const gguf_value *v, uint64_t i) {
    if (v->type != GGUF_TYPE_ARRAY || i >= v->arr_n || !v->arr_data) return 0;
    const uint8_t *p = (const uint8_t *)v->arr_data + i * TYPE_SIZE[v->arr_type];
    switch (v->arr_type) {
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
    default: return (double)gguf_arr_int(v, i);
    }
}

gguf_str gguf_arr_str(const gguf_value *v, uint64_t i) {
    gguf_str none = { "", 0 };
    if (v->type != GGUF_TYPE_ARRAY || v->arr_type != GGUF_TYPE_STRING || i >= v->arr_n || !v->arr_items) return none;
    return v->arr_items[i].v.s;
}

int64_t gguf_n_tensors(const gguf_ctx *ctx) { return ctx->n_tensors; }
const gguf_tensor_info *gguf_tensor(const gguf_ctx *ctx, int64_t i) {
    return i >= 0 && i < ctx->n_tensors ? &ctx->tensors[i] : NULL;
}
const gguf_tensor_info *gguf_find_tensor(const gguf_ctx *ctx, const char *name) {
    if (!ctx->t_ix.slots || !name) return NULL;
    int64_t i = ctx->t_ix.slots[index_probe(&ctx->t_ix, ctx->tensor_names, name)];
    return i >= 0 ? &ctx->tensors[i] : NULL;
}

// ---- writer ----
typedef struct wtensor {
    char *name;
    tv_type type;
    int n_dims;
    int64_t ne[4];
    size_t nbytes;
    size_t row_bytes;         // bytes of one row of ne[0] elements
    int64_t n_rows;           // ne[1] * ne[2] * ne[3]
    const void *data;         // in-memory source, or NULL with fill set
    gguf_tensor_source_fn fill;
    void *fill_user;
    uint64_t offset;          // assigned at write time
} wtensor;

struct gguf_writer {
    char **keys;              // n_kv owned copies
    gguf_value *vals;         // n_kv owned deep copies (strings/arrays malloc'ed)
    int64_t n_kv;
    size_t cap_keys, cap_vals;
    wtensor *tensors;
    int64_t n_tensors;
    size_t cap_tensors;
    tv_status failed;         // first setter failure, reported by gguf_writer_write
    char fail_msg[256];
    tv_progress_fn progress;  // NULL, or told the tensor bytes written (gguf_writer_set_progress)
    void *progress_user;
    int n_threads;            // gguf_writer_set_threads: > 1 fills and writes the data on a pool
};

gguf_writer *gguf_writer_create(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_set_progress(gguf_writer *w, tv_progress_fn fn, void *user) {
    if (!w) return;
    w->progress = fn;
    w->progress_user = user;
}

void gguf_writer_set_threads(gguf_writer *w, int n_threads) {
    if (w) w->n_threads = n_threads;
}

// Frees the owned buffers of a writer value (the value struct itself is not freed).
static void wvalue_free(gguf_value *v) {
    if (v->type == GGUF_TYPE_STRING) free((void *)v->v.s.ptr);
    if (v->type == GGUF_TYPE_ARRAY) {
        free((void *)v->arr_data);
        if (v->arr_items) for (uint64_t i = 0; i < v->arr_n; i++) wvalue_free(&v->arr_items[i]);
        free(v->arr_items);
    }
    memset(v, 0, sizeof *v);
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) { free(w->keys[i]); wvalue_free(&w->vals[i]); }
    free(w->keys);
    free(w->vals);
    for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

static void w_fail(gguf_writer *w, tv_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void w_fail(gguf_writer *w, tv_status code, const char *fmt, ...) {
    if (w->failed) return;   // keep the first failure
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->fail_msg, sizeof w->fail_msg, fmt, ap);
    va_end(ap);
    w->failed = code;
}

static char *dup_bytes(const void *p, size_t n) {   // NUL-terminated copy of n bytes
    char *c = malloc(n + 1);
    if (c) { if (n) memcpy(c, p, n); c[n] = 0; }
    return c;
}

// Deep copy src into dst (owned). False on allocation failure or a malformed src.
static bool wvalue_clone(gguf_value *dst, const gguf_value *src, int depth, tv_status *why) {
    memset(dst, 0, sizeof *dst);
    if ((unsigned)src->type >= GGUF_TYPE_COUNT) { *why = TV_ERR_INVALID; return false; }
    dst->type = src->type;
    if (type_is_numeric(src->type)) { dst->v = src->v; return true; }
    if (src->type == GGUF_TYPE_STRING) {
        if (!src->v.s.ptr && src->v.s.len) { *why = TV_ERR_INVALID; return false; }
        char *c = dup_bytes(src->v.s.ptr, (size_t)src->v.s.len);
        if (!c) { *why = TV_ERR_NOMEM; return false; }
        dst->v.s.ptr = c;
        dst->v.s.len = src->v.s.len;
        return true;
    }
    // ARRAY
    if (depth >= GGUF_MAX_DEPTH || (unsigned)src->arr_type >= GGUF_TYPE_COUNT) { *why = TV_ERR_INVALID; return false; }
    dst->arr_type = src->arr_type;
    if (src->arr_n == 0) return true;
    if (type_is_numeric(src->arr_type)) {
        size_t nb;
        if (!src->arr_data || !mul_ok((size_t)src->arr_n, TYPE_SIZE[src->arr_type], &nb)) { *why = TV_ERR_INVALID; return false; }
        void *c = malloc(nb);
        if (!c) { *why = TV_ERR_NOMEM; return false; }
        memcpy(c, src->arr_data, nb);
        dst->arr_data = c;
        dst->arr_n = src->arr_n;
        return true;
    }
    if (!src->arr_items || src->arr_n > SIZE_MAX / sizeof(gguf_value)) { *why = TV_ERR_INVALID; return false; }
    dst->arr_items = calloc((size_t)src->arr_n, sizeof *dst->arr_items);
    if (!dst->arr_items) { *why = TV_ERR_NOMEM; return false; }
    dst->arr_n = src->arr_n;
    for (uint64_t i = 0; i < src->arr_n; i++) {
        if (src->arr_items[i].type != src->arr_type) { *why = TV_ERR_INVALID; return false; }
        if (!wvalue_clone(&dst->arr_items[i], &src->arr_items[i], depth + 1, why)) return false;
    }
    return true;
}

// Takes ownership of *v (which must be an owned writer value) and stores it under key.
static void w_put(gguf_writer *w, const char *key, gguf_value *v) {
    if (!w) { wvalue_free(v); return; }   // a failed gguf_writer_create: write reports it
    if (!key) { wvalue_free(v); w_fail(w, TV_ERR_INVALID, "NULL metadata key"); return; }
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->keys[i], key)) continue;
        wvalue_free(&w->vals[i]);
        w->vals[i] = *v;
        return;
    }
    char **k = array_grow(w->keys, &w->cap_keys, (size_t)w->n_kv + 1, sizeof *k);
    if (k) w->keys = k;
    gguf_value *vv = k ? array_grow(w->vals, &w->cap_vals, (size_t)w->n_kv + 1, sizeof *vv) : NULL;
    if (vv) w->vals = vv;
    if (!k || !vv) { wvalue_free(v); w_fail(w, TV_ERR_NOMEM, "out of memory setting '%s'", key); return; }
    char *kc = strdup(key);
    if (!kc) { wvalue_free(v); w_fail(w, TV_ERR_NOMEM, "out of memory setting '%s'", key); return; }
    w->keys[w->n_kv] = kc;
    w->vals[w->n_kv] = *v;
    w->n_kv++;
}

static void w_scalar(gguf_writer *w, const char *key, gguf_type t, gguf_value v) {
    v.type = t;
    w_put(w, key, &v);
}

void gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { w_scalar(w, key, GGUF_TYPE_UINT32, (gguf_value){ .v.u = v }); }
void gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { w_scalar(w, key, GGUF_TYPE_INT32, (gguf_value){ .v.i = v }); }
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { w_scalar(w, key, GGUF_TYPE_UINT64, (gguf_value){ .v.u = v }); }
void gguf_set_f32(gguf_writer *w, const char *key, float v) { w_scalar(w, key, GGUF_TYPE_FLOAT32, (gguf_value){ .v.f = v }); }
void gguf_set_bool(gguf_writer *w, const char *key, bool v) { w_scalar(w, key, GGUF_TYPE_BOOL, (gguf_value){ .v.b = v }); }

void gguf_set_str(gguf_writer *w, const char *key, const char *v) {
    gguf_value src = { .type = GGUF_TYPE_STRING, .v.s = { v ? v : "", v ? strlen(v) : 0 } };
    gguf_set_value(w, key, &src);
}

void gguf_set_arr_data(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n) {
    if (!w) return;
    if (!type_is_numeric(elem)) { w_fail(w, TV_ERR_INVALID, "'%s': gguf_set_arr_data needs a numeric element type", key ? key : "?"); return; }
    gguf_value src = { .type = GGUF_TYPE_ARRAY, .arr_type = elem, .arr_n = n, .arr_data = data };
    gguf_set_value(w, key, &src);
}

void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n) {
    if (!w) return;
    gguf_value v = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING };
    if (n) {
        if (!strs || n > SIZE_MAX / sizeof(gguf_value)) { w_fail(w, TV_ERR_INVALID, "'%s': bad string array", key ? key : "?"); return; }
        v.arr_items = calloc((size_t)n, sizeof *v.arr_items);
        if (!v.arr_items) { w_fail(w, TV_ERR_NOMEM, "out of memory setting '%s'", key ? key : "?"); return; }
        v.arr_n = n;
        for (uint64_t i = 0; i < n; i++) {
            size_t len = lens ? (size_t)lens[i] : (strs[i] ? strlen(strs[i]) : 0);
            char *c = dup_bytes(strs[i] ? strs[i] : "", len);
            if (!c) { wvalue_free(&v); w_fail(w, TV_ERR_NOMEM, "out of memory setting '%s'", key ? key : "?"); return; }
            v.arr_items[i].type = GGUF_TYPE_STRING;
            v.arr_items[i].v.s.ptr = c;
            v.arr_items[i].v.s.len = len;
        }
    }
    w_put(w, key, &v);
}

void gguf_set_value(gguf_writer *w, const char *key, const gguf_value *v) {
    if (!w) return;
    gguf_value c;
    tv_status why = TV_ERR_NOMEM;
    if (!v || !wvalue_clone(&c, v, 0, &why)) {
        if (v) wvalue_free(&c);
        w_fail(w, v ? why : TV_ERR_INVALID, "%s setting '%s'", why == TV_ERR_NOMEM ? "out of memory" : "malformed value",
               key ? key : "?");
        return;
    }
    w_put(w, key, &c);
}

static tv_status add_tensor(gguf_writer *w, const char *name, tv_type type, int n_dims, const int64_t *ne,
                            const void *data, gguf_tensor_source_fn fill, void *user, tv_error *err) {
    if (!w) return err_fail(err, TV_ERR_NOMEM, "gguf writer: NULL writer (creation failed?)");
    if (!name || !*name || strlen(name) > GGUF_MAX_NAME_LEN)
        return err_fail(err, TV_ERR_INVALID, "gguf writer: bad tensor name");
    if (n_dims < 1 || n_dims > 4 || !ne) return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: n_dims %d is not in 1..4", name, n_dims);
    const tv_type_traits *tr = (unsigned)type < TV_TYPE_COUNT ? kern_traits_ref(type) : NULL;
    if (!tr || tr->blck_size <= 0) return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: unknown type %d", name, (int)type);
    wtensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 }, .data = data, .fill = fill, .fill_user = user };
    int64_t n_rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: ne[%d] < 0", name, d);
        t.ne[d] = ne[d];
        if (d > 0 && __builtin_mul_overflow(n_rows, ne[d], &n_rows))
            return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: shape overflows", name);
    }
    if (t.ne[0] % tr->blck_size)
        return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: ne[0] = %lld is not a multiple of the %s block size %lld",
                       name, (long long)t.ne[0], tr->name, (long long)tr->blck_size);
    if (!mul_ok((size_t)(t.ne[0] / tr->blck_size), tr->type_size, &t.row_bytes) ||
        !mul_ok(t.row_bytes, (size_t)n_rows, &t.nbytes))
        return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: byte size overflows", name);
    t.n_rows = n_rows;
    if (!data && !fill && t.nbytes) return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: no data", name);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) return err_fail(err, TV_ERR_INVALID, "gguf writer: duplicate tensor '%s'", name);
    wtensor *nt = array_grow(w->tensors, &w->cap_tensors, (size_t)w->n_tensors + 1, sizeof *nt);
    if (!nt) return err_fail(err, TV_ERR_NOMEM, "gguf writer: out of memory adding '%s'", name);
    w->tensors = nt;
    t.name = strdup(name);
    if (!t.name) return err_fail(err, TV_ERR_NOMEM, "gguf writer: out of memory adding '%s'", name);
    w->tensors[w->n_tensors++] = t;
    return TV_OK;
}

tv_status gguf_add_tensor(gguf_writer *w, const char *name, tv_type type, int n_dims, const int64_t *ne,
                          const void *data, tv_error *err) {
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL, err);
}

tv_status gguf_add_tensor_source(gguf_writer *w, const char *name, tv_type type, int n_dims, const int64_t *ne,
                                 gguf_tensor_source_fn fill, void *user, tv_error *err) {
    if (!fill) return err_fail(err, TV_ERR_INVALID, "gguf writer: %s: NULL source", name ? name : "?");
    return add_tensor(w, name, type, n_dims, ne, NULL, fill, user, err);
}

// Buffered output that remembers the first error.
typedef struct wout { FILE *f; bool failed; uint64_t pos; } wout;

static void out_bytes(wout *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->failed = true;
    o->pos += n;
}
static void out_u32(wout *o, uint32_t x) { out_bytes(o, &x, 4); }
static void out_u64(wout *o, uint64_t x) { out_bytes(o, &x, 8); }
static void out_str(wout *o, const char *p, uint64_t len) { out_u64(o, len); out_bytes(o, p, (size_t)len); }
static void out_zeros(wout *o, size_t n) {
    static const uint8_t Z[64];
    while (n) { size_t k = n < sizeof Z ? n : sizeof Z; out_bytes(o, Z, k); n -= k; }
}

static void out_value(wout *o, const gguf_value *v) {   // v is a validated writer value
    switch (v->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        out_bytes(o, &v->v.u, TYPE_SIZE[v->type]);   // little-endian: low bytes first
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        out_bytes(o, &v->v.i, TYPE_SIZE[v->type]);
        break;
    case GGUF_TYPE_FLOAT32: { float f = (float)v->v.f; out_bytes(o, &f, 4); break; }
    case GGUF_TYPE_FLOAT64: out_bytes(o, &v->v.f, 8); break;
    case GGUF_TYPE_BOOL: { uint8_t b = v->v.b ? 1 : 0; out_bytes(o, &b, 1); break; }
    case GGUF_TYPE_STRING: out_str(o, v->v.s.ptr, v->v.s.len); break;
    case GGUF_TYPE_ARRAY:
        out_u32(o, (uint32_t)v->arr_type);
        out_u64(o, v->arr_n);
        if (type_is_numeric(v->arr_type)) out_bytes(o, v->arr_data, (size_t)v->arr_n * TYPE_SIZE[v->arr_type]);
        else for (uint64_t i = 0; i < v->arr_n; i++) out_value(o, &v->arr_items[i]);
        break;
    default: o->failed = true; break;
    }
}

// Checks general.alignment and assigns the tensors' offsets; *alignment receives it.
static tv_status writer_layout(gguf_writer *w, const char *label, size_t *alignment, tv_error *err) {
    if (w->failed) return err_fail(err, w->failed, "%s: %s", label, w->fail_msg);
    *alignment = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->keys[i], "general.alignment")) continue;
        const gguf_value *v = &w->vals[i];
        uint64_t a = type_is_int(v->type) && !(type_is_signed(v->type) && v->v.i < 0) ? v->v.u : 0;
        if (v->type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
            return err_fail(err, TV_ERR_INVALID, "%s: general.alignment must be a u32 power of two", label);
        *alignment = (size_t)a;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        off = align_up(off, *alignment);
        w->tensors[i].offset = off;
        off += w->tensors[i].nbytes;
    }
    return TV_OK;
}

// Writes the header, metadata and tensor infos (up to the aligned start of the data) to o.
static void write_header(gguf_writer *w, wout *o, size_t alignment) {
    out_bytes(o, GGUF_MAGIC, 4);
    out_u32(o, 3);
    out_u64(o, (uint64_t)w->n_tensors);
    out_u64(o, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        out_str(o, w->keys[i], strlen(w->keys[i]));
        out_u32(o, (uint32_t)w->vals[i].type);
        out_value(o, &w->vals[i]);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        out_str(o, t->name, strlen(t->name));
        out_u32(o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) out_u64(o, (uint64_t)t->ne[d]);
        out_u32(o, (uint32_t)t->type);
        out_u64(o, t->offset);
    }
    if (w->n_tensors) out_zeros(o, align_up((size_t)o->pos, alignment) - (size_t)o->pos);
}

static uint64_t data_total(const gguf_writer *w) {
    return w->n_tensors ? w->tensors[w->n_tensors - 1].offset + w->tensors[w->n_tensors - 1].nbytes : 0;
}

// Writes the whole file (header, metadata, tensor infos, data) to o on the caller's thread; label
// names it in messages. An output error is left in o->failed for the caller to report.
static tv_status write_all(gguf_writer *w, wout *o, size_t alignment, const char *label, tv_error *err) {
    write_header(w, o, alignment);
    uint64_t data_start = o->pos;
    const uint64_t total = data_total(w);
    size_t chunk_cap = 0;
    void *chunk = NULL;
    tv_status st = TV_OK;
    for (int64_t i = 0; i < w->n_tensors && !o->failed && !st; i++) {
        const wtensor *t = &w->tensors[i];
        out_zeros(o, (size_t)(data_start + t->offset - o->pos));   // padding between tensors
        if (w->progress) w->progress(w->progress_user, t->offset, total);   // data bytes written, of total
        if (t->data) { out_bytes(o, t->data, t->nbytes); continue; }
        if (!t->nbytes) continue;
        // streamed: whole rows, about 8 MiB at a time
        int64_t rows_per = (int64_t)((8u << 20) / t->row_bytes);
        if (rows_per < 1) rows_per = 1;
        if (rows_per > t->n_rows) rows_per = t->n_rows;
        size_t need = (size_t)rows_per * t->row_bytes;
        if (need > chunk_cap) {
            free(chunk);
            chunk = malloc(need);
            chunk_cap = chunk ? need : 0;
            if (!chunk) { st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory streaming '%s'", label, t->name); break; }
        }
        for (int64_t r0 = 0; r0 < t->n_rows && !o->failed; r0 += rows_per) {
            int64_t nr = t->n_rows - r0 < rows_per ? t->n_rows - r0 : rows_per;
            tv_error ferr = { 0 };
            if (t->fill(t->fill_user, r0, nr, chunk, &ferr) != TV_OK) {
                st = err_fail(err, ferr.code ? ferr.code : TV_ERR_INVALID, "%s: tensor '%s': %s", label, t->name, ferr.msg);
                break;
            }
            out_bytes(o, chunk, (size_t)nr * t->row_bytes);
            if (w->progress) w->progress(w->progress_user, t->offset + (uint64_t)(r0 + nr) * t->row_bytes, total);
        }
    }
    if (w->progress && !st && !o->failed) w->progress(w->progress_user, total, total);
    free(chunk);
    return st;
}

// ---- the data on several threads (gguf_writer_set_threads) ----
// Chunks of whole rows (about 8 MiB each) are taken in file order by the pool's threads; each is
// filled into its thread's buffer (an in-memory tensor is written from where it lies, no copy) and
// pwrite()n at its offset. The alignment padding between tensors is left a hole (zeros when read),
// so the file holds exactly the serial writer's bytes.
typedef struct pchunk { int64_t tensor, row0, n_rows; } pchunk;

typedef struct pwrite_job {
    const gguf_writer *w;
    const pchunk *chunks;     // (n_chunks) in file order
    int64_t n_chunks;
    int fd;
    uint64_t data_start, total;
    size_t buf_bytes;         // the largest streamed chunk
    const char *label;
    atomic_llong next;        // the next chunk to take
    atomic_ullong done;       // data bytes written
    atomic_int failed;        // the first failure wins the message below
    tv_status code;
    char msg[400];
} pwrite_job;

static void pwrite_fail(pwrite_job *j, tv_status code, const char *what, const char *name, const char *why) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&j->failed, &expected, 1)) return;
    j->code = code;
    snprintf(j->msg, sizeof j->msg, "%s: %s '%s': %s", j->label, what, name, why);
}

static void pwrite_part(void *arg, int ith, int nth) {
    (void)nth;
    pwrite_job *j = arg;
    uint8_t *buf = NULL;
    while (!atomic_load_explicit(&j->failed, memory_order_relaxed)) {
        const int64_t k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (k >= j->n_chunks) break;
        const pchunk *c = &j->chunks[k];
        const wtensor *t = &j->w->tensors[c->tensor];
        const size_t len = (size_t)c->n_rows * t->row_bytes;
        const uint8_t *src = t->data ? (const uint8_t *)t->data + (size_t)c->row0 * t->row_bytes : NULL;
        if (!src) {
            tv_error ferr = {0};
            if (!buf && !(buf = malloc(j->buf_bytes))) {
                pwrite_fail(j, TV_ERR_NOMEM, "streaming", t->name, "out of memory");
                break;
            }
            if (t->fill(t->fill_user, c->row0, c->n_rows, buf, &ferr) != TV_OK) {
                pwrite_fail(j, ferr.code ? ferr.code : TV_ERR_INVALID, "tensor", t->name, ferr.msg);
                break;
            }
            src = buf;
        }
        const off_t off = (off_t)(j->data_start + t->offset + (uint64_t)c->row0 * t->row_bytes);
        for (size_t put = 0; put < len;) {
            const ssize_t r = pwrite(j->fd, src + put, len - put, off + (off_t)put);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                pwrite_fail(j, TV_ERR_IO, "writing", t->name, r < 0 ? strerror(errno) : "no progress");
                break;
            }
            put += (size_t)r;
        }
        const uint64_t done = atomic_fetch_add_explicit(&j->done, len, memory_order_relaxed) + len;
        if (ith == 0 && j->w->progress) j->w->progress(j->w->progress_user, done, j->total);   // one thread reports
    }
    free(buf);
}

// Writes the tensors' data at data_start of fd on w->n_threads threads, then sizes the file.
static tv_status write_data_parallel(const gguf_writer *w, int fd, uint64_t data_start, const char *label, tv_error *err) {
    int64_t n_chunks = 0;
    size_t buf_bytes = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!t->nbytes) continue;
        const int64_t per = t->row_bytes >= (8u << 20) ? 1 : (int64_t)((8u << 20) / t->row_bytes);
        n_chunks += (t->n_rows + per - 1) / per;
        const size_t b = (size_t)(per < t->n_rows ? per : t->n_rows) * t->row_bytes;
        if (!t->data && b > buf_bytes) buf_bytes = b;
    }
    pchunk *chunks = malloc((size_t)(n_chunks ? n_chunks : 1) * sizeof *chunks);
    if (!chunks) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", label);
    int64_t k = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!t->nbytes) continue;
        const int64_t per = t->row_bytes >= (8u << 20) ? 1 : (int64_t)((8u << 20) / t->row_bytes);
        for (int64_t r0 = 0; r0 < t->n_rows; r0 += per)
            chunks[k++] = (pchunk){i, r0, t->n_rows - r0 < per ? t->n_rows - r0 : per};
    }
    tv_pool *pool = pool_create(w->n_threads, err);
    if (!pool) {
        free(chunks);
        return err ? err->code : TV_ERR_NOMEM;
    }
    pwrite_job j = {.w = w, .chunks = chunks, .n_chunks = n_chunks, .fd = fd, .data_start = data_start,
                    .total = data_total(w), .buf_bytes = buf_bytes, .label = label};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    atomic_init(&j.failed, 0);
    pool_run(pool, pwrite_part, &j);
    pool_free(pool);
    free(chunks);
    if (atomic_load(&j.failed)) return err_fail(err, j.code, "%s", j.msg);
    if (ftruncate(fd, (off_t)(data_start + j.total)) != 0)   // a trailing empty tensor's padding
        return err_fail(err, TV_ERR_IO, "%s: write failed: %s", label, strerror(errno));
    if (w->progress) w->progress(w->progress_user, j.total, j.total);
    return TV_OK;
}

tv_status gguf_writer_write(gguf_writer *w, const char *path, tv_error *err) {
    if (!w || !path) return err_fail(err, TV_ERR_INVALID, "gguf writer: NULL writer or path");
    size_t alignment;
    tv_status st = writer_layout(w, path, &alignment, err);
    if (st) return st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    wout o = { .f = fopen(tmp, "wb") };
    if (!o.f) { st = err_fail(err, TV_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);
    if (w->n_threads > 1) {
        write_header(w, &o, alignment);
        if (!o.failed && fflush(o.f) != 0) o.failed = true;
        if (!o.failed && (st = write_data_parallel(w, fileno(o.f), o.pos, path, err))) goto done;
    } else if ((st = write_all(w, &o, alignment, path, err))) {
        goto done;
    }
    if (o.failed) { st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno)); goto done; }
    FILE *f = o.f;
    o.f = NULL;
    if (fclose(f) != 0) { st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno)); goto done; }
    if (rename(tmp, path) != 0) { st = err_fail(err, TV_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno)); goto done; }
done:
    if (o.f) fclose(o.f);
    if (st != TV_OK) unlink(tmp);
    free(tmp);
    return st;
}

tv_status gguf_writer_write_memory(gguf_writer *w, void **out, size_t *size, tv_error *err) {
    *out = NULL;
    *size = 0;
    if (!w) return err_fail(err, TV_ERR_INVALID, "gguf writer: NULL writer");
    size_t alignment;
    tv_status st = writer_layout(w, "(memory)", &alignment, err);
    if (st) return st;
    char *buf = NULL;
    size_t len = 0;
    wout o = { .f = open_memstream(&buf, &len) };
    if (!o.f) return err_fail(err, TV_ERR_NOMEM, "gguf writer: out of memory");
    st = write_all(w, &o, alignment, "(memory)", err);
    if (fclose(o.f) != 0 || (!st && o.failed)) st = err_fail(err, TV_ERR_NOMEM, "gguf writer: out of memory");
    if (st) { free(buf); return st; }
    *out = buf;
    *size = len;
    return TV_OK;
}

void gguf_set_spm_vocab(gguf_writer *w, const char *const *tokens, const uint64_t *lens, const float *scores,
                        const int32_t *types, uint64_t n) {
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, lens, n);
    gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n);
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
}
