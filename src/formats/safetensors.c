// safetensors.c — safetensors reader, model-folder shard set and writer (grammar in safetensors.h).
// Reader policy: the header length is checked against the file before anything is parsed, the
// JSON is parsed with cJSON (bounded by ST_MAX_HEADER), and every tensor entry is checked against
// the data size before its pointer is formed; errors name the file and the tensor.
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c uses little-endian data in place: big-endian hosts are not supported"
#endif

static const struct { const char *name; st_dtype dtype; size_t size; } DTYPES[] = {
    {"F32", ST_F32, 4},     {"F16", ST_F16, 2},       {"BF16", ST_BF16, 2}, {"F8_E4M3", ST_F8_E4M3, 1},
    {"F64", ST_OTHER, 8},   {"F8_E5M2", ST_OTHER, 1}, {"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4},
    {"I16", ST_OTHER, 2},   {"I8", ST_OTHER, 1},      {"U64", ST_OTHER, 8}, {"U32", ST_OTHER, 4},
    {"U16", ST_OTHER, 2},   {"U8", ST_U8, 1},      {"BOOL", ST_OTHER, 1},
};
#define N_DTYPES (sizeof DTYPES / sizeof DTYPES[0])

size_t st_dtype_size(st_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (DTYPES[i].dtype == t && t != ST_OTHER) return DTYPES[i].size;
    return 0;
}

struct st_file {
    char *label;
    const uint8_t *base;
    size_t size;
    void *map;                 // owned mapping (NULL for st_open_memory)
    size_t map_size;
    int64_t n;
    st_tensor *tensors;        // (n) header order
    int64_t *by_name;          // (n) indices sorted by name
    cJSON *meta;               // "__metadata__" (detached), or NULL
    int64_t mtime_ns;
};

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const st_tensor *t = ctx;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

// A non-negative integral JSON number below 2^53 (exact in a double) into *out.
static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static tv_status parse_entry(st_file *f, const cJSON *e, st_tensor *t, size_t data_size, tv_error *err) {
    const char *L = f->label, *N = t->name;
    if (!cJSON_IsObject(e)) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': entry is not an object", L, N);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': dtype missing", L, N);
    size_t esize = 0;
    for (size_t i = 0; i < N_DTYPES; i++)
        if (!strcmp(DTYPES[i].name, dt->valuestring)) {
            t->dtype = DTYPES[i].dtype;
            t->dtype_name = DTYPES[i].name;
            esize = DTYPES[i].size;
        }
    if (!esize) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", L, N, dt->valuestring);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ST_MAX_DIMS)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': shape must be an array of at most %d sizes", L, N,
                        ST_MAX_DIMS);
    size_t n_elems = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!json_u64(d, &v) || v > INT64_MAX)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': shape holds a non-integer or negative size", L, N);
        t->shape[t->n_dims++] = (int64_t)v;
        if (!mul_ok(n_elems, (size_t)v, &n_elems))
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': shape overflows", L, N);
    }
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &b) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &en))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers", L, N);
    size_t need;
    if (!mul_ok(n_elems, esize, &need))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': size overflows", L, N);
    if (b > en || en > data_size)
        return err_fail(err, TV_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the %zu data bytes of the file", L, N,
                        (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != need)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] but %s of %zu elements needs %zu bytes",
                        L, N, (unsigned long long)b, (unsigned long long)en, t->dtype_name, n_elems, need);
    t->nbytes = need;
    t->data = f->base + (f->size - data_size) + b;
    if ((uintptr_t)t->data % esize)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s': data at offset %llu is not aligned to its %zu-byte elements",
                        L, N, (unsigned long long)(f->size - data_size + b), esize);
    t->file = f->label;
    return TV_OK;
}

static tv_status parse(st_file *f, tv_error *err) {
    const char *L = f->label;
    if (f->size < 8)
        return err_fail(err, TV_ERR_FORMAT, "%s: truncated: %zu bytes, a safetensors file starts with an 8-byte header length",
                        L, f->size);
    uint64_t hlen;
    memcpy(&hlen, f->base, 8);
    if (hlen > f->size - 8)
        return err_fail(err, TV_ERR_FORMAT, "%s: header claims %llu bytes but the file has only %zu after the length",
                        L, (unsigned long long)hlen, f->size - 8);
    if (hlen > ST_MAX_HEADER)
        return err_fail(err, TV_ERR_FORMAT, "%s: header of %llu bytes is over the %llu-byte limit", L,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    const char *json = (const char *)f->base + 8;
    cJSON *root = cJSON_ParseWithLength(json, (size_t)hlen);
    tv_status st = TV_OK;
    if (!root || !cJSON_IsObject(root)) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: header is not a JSON object", L);
        goto done;
    }
    const size_t data_size = f->size - 8 - (size_t)hlen;
    int64_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) n++;
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    f->by_name = calloc((size_t)n + 1, sizeof *f->by_name);
    const st_tensor **order = calloc((size_t)n + 1, sizeof *order);
    if (!f->tensors || !f->by_name || !order) {
        free(order);
        st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory", L);
        goto done;
    }
    cJSON_ArrayForEach(e, root) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) {
            if (f->meta) { st = err_fail(err, TV_ERR_FORMAT, "%s: two __metadata__ entries", L); break; }
            if (!cJSON_IsObject(e)) { st = err_fail(err, TV_ERR_FORMAT, "%s: __metadata__ is not an object", L); break; }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) if (!cJSON_IsString(m)) {
                st = err_fail(err, TV_ERR_FORMAT, "%s: __metadata__ value '%.64s' is not a string", L, m->string);
                break;
            }
            if (st || !(f->meta = cJSON_Duplicate(e, true))) {
                if (!st) st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory", L);
                break;
            }
            continue;
        }
        st_tensor *t = &f->tensors[f->n];
        if (!(t->name = strdup(e->string))) { st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory", L); break; }
        if ((st = parse_entry(f, e, t, data_size, err))) { free((char *)t->name); t->name = NULL; break; }
        order[f->n] = t;
        f->by_name[f->n] = f->n;
        f->n++;
    }
    if (!st) {
        qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_idx, f->tensors);
        for (int64_t i = 1; i < f->n && !st; i++)
            if (!strcmp(f->tensors[f->by_name[i]].name, f->tensors[f->by_name[i - 1]].name))
                st = err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is listed twice", L, f->tensors[f->by_name[i]].name);
    }
    if (!st) {
        qsort(order, (size_t)f->n, sizeof *order, cmp_begin);
        for (int64_t i = 1; i < f->n && !st; i++) {
            const st_tensor *a = order[i - 1], *b = order[i];
            if ((const uint8_t *)a->data + a->nbytes > (const uint8_t *)b->data && b->nbytes && a->nbytes)
                st = err_fail(err, TV_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", L, a->name, b->name);
        }
    }
    free(order);
done:
    cJSON_Delete(root);
    return st;
}

static st_file *file_new(const char *label, tv_error *err) {
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->label = strdup(label))) {
        free(f);
        err_fail(err, TV_ERR_NOMEM, "%s: out of memory", label);
        return NULL;
    }
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    cJSON_Delete(f->meta);
    if (f->map) munmap(f->map, f->map_size);
    free(f->label);
    free(f);
}

static st_file *open_parsed(st_file *f, tv_error *err) {
    if (parse(f, err) == TV_OK) return f;
    st_close(f);
    return NULL;
}

st_file *st_open_memory(const void *data, size_t size, const char *label, tv_error *err) {
    st_file *f = file_new(label ? label : "(memory)", err);
    if (!f) return NULL;
    f->base = data;
    f->size = size;
    return open_parsed(f, err);
}

st_file *st_open(const char *path, tv_error *err) {
    st_file *f = file_new(path, err);
    if (!f) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        st_close(f);
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        err_fail(err, TV_ERR_IO, "%s: not a regular file", path);
        close(fd);
        st_close(f);
        return NULL;
    }
    f->size = (size_t)sb.st_size;
    f->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (f->size) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            err_fail(err, TV_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            st_close(f);
            return NULL;
        }
        f->map = p;
        f->map_size = f->size;
        f->base = p;
    }
    close(fd);
    return open_parsed(f, err);
}

int64_t st_n_tensors(const st_file *f) { return f->n; }
const st_tensor *st_tensor_at(const st_file *f, int64_t i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name) {
    int64_t lo = 0, hi = f->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->by_name[mid]].name, name);
        if (!c) return &f->tensors[f->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// ---- shard set ----
struct st_set {
    st_file **files;
    int n_files;
    const st_tensor **all;   // (n) sorted by name
    int64_t n;
    uint64_t data_bytes;
    int64_t mtime_ns;
};

void st_set_close(st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) st_close(s->files[i]);
    free(s->files);
    free(s->all);
    free(s);
}

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *slurp_text(const char *path, size_t max, tv_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || (size_t)n > max || fseek(fp, 0, SEEK_SET) != 0) {
        err_fail(err, TV_ERR_IO, "%s: cannot read (or over %zu bytes)", path, max);
    } else if (!(buf = malloc((size_t)n + 1))) {
        err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
    } else if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        err_fail(err, TV_ERR_IO, "%s: read failed", path);
        free(buf);
        buf = NULL;
    } else {
        buf[n] = 0;
    }
    fclose(fp);
    return buf;
}

static tv_status set_add_file(st_set *s, const char *dir, const char *name, tv_error *err) {
    if (strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
        return err_fail(err, TV_ERR_FORMAT, "%s: shard name '%s' is not a file in the folder", dir, name);
    for (int i = 0; i < s->n_files; i++) {
        const char *base = strrchr(s->files[i]->label, '/');
        if (!strcmp(base ? base + 1 : s->files[i]->label, name)) return TV_OK;
    }
    char *path = path_join(dir, name);
    if (!path) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    if (access(path, F_OK) != 0) {
        err_fail(err, TV_ERR_FORMAT, "%s: shard %s is listed in model.safetensors.index.json but absent", dir, name);
        free(path);
        return TV_ERR_FORMAT;
    }
    st_file *f = st_open(path, err);
    free(path);
    if (!f) return err ? err->code : TV_ERR_FORMAT;
    st_file **nf = realloc(s->files, ((size_t)s->n_files + 1) * sizeof *nf);
    if (!nf) {
        st_close(f);
        return err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    s->files = nf;
    s->files[s->n_files++] = f;
    return TV_OK;
}

static tv_status set_read_index(st_set *s, const char *dir, const char *index_path, tv_error *err) {
    char *text = slurp_text(index_path, 64u << 20, err);
    if (!text) return err ? err->code : TV_ERR_IO;
    cJSON *root = cJSON_Parse(text);
    free(text);
    tv_status st = TV_OK;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: no weight_map object", index_path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) {
            st = err_fail(err, TV_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", index_path, e->string);
            goto done;
        }
        if ((st = set_add_file(s, dir, e->valuestring, err))) goto done;
    }
    cJSON_ArrayForEach(e, wm) {   // every listed tensor must be in its shard
        const st_file *f = NULL;
        for (int i = 0; i < s->n_files && !f; i++) {
            const char *base = strrchr(s->files[i]->label, '/');
            if (!strcmp(base ? base + 1 : s->files[i]->label, e->valuestring)) f = s->files[i];
        }
        if (!f || !st_find(f, e->string)) {
            st = err_fail(err, TV_ERR_FORMAT, "%s/%s: tensor '%s' is listed in the index but not in this shard", dir,
                          e->valuestring, e->string);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

st_set *st_set_open(const char *dir, tv_error *err) {
    st_set *s = calloc(1, sizeof *s);
    char *index = path_join(dir, "model.safetensors.index.json");
    tv_status st = TV_OK;
    if (!s || !index) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (access(index, F_OK) == 0) st = set_read_index(s, dir, index, err);
    else st = set_add_file(s, dir, "model.safetensors", err);
    if (st) goto fail;
    for (int i = 0; i < s->n_files; i++) {
        s->n += s->files[i]->n;
        if (s->files[i]->mtime_ns > s->mtime_ns) s->mtime_ns = s->files[i]->mtime_ns;
    }
    if (!(s->all = calloc((size_t)s->n + 1, sizeof *s->all))) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int64_t k = 0;
    for (int i = 0; i < s->n_files; i++)
        for (int64_t j = 0; j < s->files[i]->n; j++) {
            s->all[k++] = &s->files[i]->tensors[j];
            s->data_bytes += s->files[i]->tensors[j].nbytes;
        }
    qsort(s->all, (size_t)s->n, sizeof *s->all, cmp_tensor_ptr_name);
    for (int64_t i = 1; i < s->n; i++)
        if (!strcmp(s->all[i]->name, s->all[i - 1]->name)) {
            err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is in both %s and %s", dir, s->all[i]->name,
                     s->all[i - 1]->file, s->all[i]->file);
            goto fail;
        }
    free(index);
    return s;
fail:
    free(index);
    st_set_close(s);
    return NULL;
}

int64_t st_set_n_tensors(const st_set *s) { return s->n; }
const st_tensor *st_set_tensor(const st_set *s, int64_t i) { return i >= 0 && i < s->n ? s->all[i] : NULL; }
int st_set_n_files(const st_set *s) { return s->n_files; }

const char *st_set_file(const st_set *s, int i) { return i >= 0 && i < s->n_files ? s->files[i]->label : NULL; }

uint64_t st_set_data_bytes(const st_set *s) { return s->data_bytes; }
int64_t st_set_mtime_ns(const st_set *s) { return s->mtime_ns; }

const st_tensor *st_set_find(const st_set *s, const char *name) {
    int64_t lo = 0, hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->all[mid]->name, name);
        if (!c) return s->all[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

// ---- writer ----
typedef struct wtensor {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    size_t row_bytes, nbytes;
    int64_t n_rows;
    st_fill_fn fill;
    void *user;
} wtensor;

struct st_writer {
    wtensor *t;
    int n, cap;
};

st_writer *st_writer_create(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    free(w);
}

tv_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int n_dims, const int64_t *shape,
                        st_fill_fn fill, void *user, tv_error *err) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16 && dtype != ST_F8_E4M3 && dtype != ST_U8)
        return err_fail(err, TV_ERR_INVALID, "safetensors writer: '%s': only F32, F16, BF16, F8_E4M3 and U8 are written", name);
    if (n_dims < 1 || n_dims > ST_MAX_DIMS)
        return err_fail(err, TV_ERR_INVALID, "safetensors writer: '%s': %d dimensions", name, n_dims);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return err_fail(err, TV_ERR_NOMEM, "out of memory");
        w->t = nt;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->n_rows = 1;
    for (int d = 0; d < n_dims; d++) {
        t->shape[d] = shape[d];
        if (d < n_dims - 1) t->n_rows *= shape[d];
    }
    t->row_bytes = (size_t)shape[n_dims - 1] * st_dtype_size(dtype);
    t->nbytes = t->row_bytes * (size_t)t->n_rows;
    t->fill = fill;
    t->user = user;
    w->n++;
    return TV_OK;
}

tv_status st_writer_write(st_writer *w, const char *path, tv_error *err) {
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL, *tmp = NULL;
    void *chunk = NULL;
    FILE *fp = NULL;
    tv_status st = TV_OK;
    if (!root) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    uint64_t off = 0;
    for (int i = 0; i < w->n && !st; i++) {
        const wtensor *t = &w->t[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        const char *dn = t->dtype == ST_F32 ? "F32" : t->dtype == ST_F16 ? "F16" : t->dtype == ST_BF16 ? "BF16"
                         : t->dtype == ST_U8 ? "U8" : "F8_E4M3";
        if (!offs || !cJSON_AddStringToObject(e, "dtype", dn)) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        for (int d = 0; d < t->n_dims && !st; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        if (!st) {
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->nbytes)));
        }
        off += t->nbytes;
    }
    if (!st && !(hdr = cJSON_PrintUnformatted(root))) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    if (st) goto done;
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    size_t plen = strlen(path) + 32;
    if (!(tmp = malloc(plen))) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); goto done; }
    snprintf(tmp, plen, "%s.tmp%ld", path, (long)getpid());
    if (!(fp = fopen(tmp, "wb"))) { st = err_fail(err, TV_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    uint64_t h64 = padded;
    bool ok = fwrite(&h64, 8, 1, fp) == 1 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (size_t i = hlen; i < padded && ok; i++) ok = fputc(' ', fp) != EOF;
    size_t cap = 0;
    for (int i = 0; i < w->n && ok && !st; i++) {
        const wtensor *t = &w->t[i];
        int64_t per = t->row_bytes ? (int64_t)((8u << 20) / t->row_bytes) : 1;
        if (per < 1) per = 1;
        if (per > t->n_rows) per = t->n_rows;
        size_t need = (size_t)per * t->row_bytes;
        if (need > cap) {
            free(chunk);
            if (!(chunk = malloc(need))) { st = err_fail(err, TV_ERR_NOMEM, "out of memory"); break; }
            cap = need;
        }
        for (int64_t r = 0; r < t->n_rows && ok && !st; r += per) {
            int64_t nr = t->n_rows - r < per ? t->n_rows - r : per;
            tv_error ferr = {0};
            if (t->fill(t->user, r, nr, chunk, &ferr)) {
                st = err_fail(err, ferr.code ? ferr.code : TV_ERR_INVALID, "%s: tensor '%s': %s", path, t->name, ferr.msg);
                break;
            }
            ok = fwrite(chunk, 1, (size_t)nr * t->row_bytes, fp) == (size_t)nr * t->row_bytes;
        }
    }
    if (!st && !ok) st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(fp) != 0 && !st) st = err_fail(err, TV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    fp = NULL;
    if (!st && rename(tmp, path) != 0) st = err_fail(err, TV_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (st) unlink(tmp);
done:
    if (fp) fclose(fp);
    free(chunk);
    free(tmp);
    free(hdr);
    cJSON_Delete(root);
    return st;
}
