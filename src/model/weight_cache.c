// weight_cache.c — the prepared-weight cache file (grammar and contract in weight_cache.h).
#include "model/weight_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/status.h"

#define MAGIC "TVWC"
#define DATA_ALIGN 4096
#define HUGE_ALIGN ((size_t)2 << 20)   // entries of at least this many bytes start on a 2 MiB boundary
#define ENTRY_BYTES 48

typedef struct entry {
    uint32_t slot, type, packed, ne2;   // ne2: the matrices of a 3-D (expert) tensor, else 1
    int64_t ne0, ne1;
    uint64_t offset, nbytes;
} entry;
_Static_assert(sizeof(entry) == ENTRY_BYTES, "cache entries are 48 bytes");

static uint64_t fnv64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
    return h;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

void wcache_unmap(wcache_map *map) {
    if (map && map->base) munmap(map->base, map->size);
    if (map) *map = (wcache_map){0};
}

void wcache_touch(const char *path) { (void)utimensat(AT_FDCWD, path, NULL, 0); }

int wcache_load(const char *path, const char *key, tv_tensor *const *slots, int n, wcache_map *map, char *why,
                size_t why_cap) {
    *map = (wcache_map){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, why_cap, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    void *base = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && sb.st_size >= 32) base = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(why, why_cap, "corrupt (too short or unreadable)");
        return -1;
    }
#ifdef MADV_HUGEPAGE
    // a hint only: pages read in later (after the page cache dropped them) come in 2 MiB folios
    (void)madvise(base, (size_t)sb.st_size, MADV_HUGEPAGE);
#endif
    const size_t size = (size_t)sb.st_size;
    const uint8_t *b = base;
    uint32_t version;
    uint64_t n_entries, key_len;
    memcpy(&version, b + 4, 4);
    memcpy(&n_entries, b + 8, 8);
    memcpy(&key_len, b + 16, 8);
    const char *fail = NULL;
    size_t hdr = 0;
    if (memcmp(b, MAGIC, 4)) fail = "corrupt (not a tinyvllm weight cache)";
    else if (version != WCACHE_LAYOUT_VERSION) fail = "stale (another cache layout version)";
    else if (key_len > 1 << 16 || n_entries > (uint64_t)n)
        fail = "corrupt (header sizes)";
    else if ((hdr = 24 + align_up((size_t)key_len, 8) + (size_t)n_entries * ENTRY_BYTES) + 8 > size)
        fail = "corrupt (truncated header)";
    else {
        uint64_t sum;
        memcpy(&sum, b + hdr, 8);
        if (sum != fnv64(b, hdr)) fail = "corrupt (header checksum)";
        else if (key_len != strlen(key) || memcmp(b + 24, key, (size_t)key_len))
            fail = "stale (the model file, kernel path or quantize type changed)";
    }
    const entry *e = (const entry *)(b + 24 + align_up((size_t)key_len, 8));
    for (uint64_t i = 0; i < n_entries && !fail; i++) {   // every entry checked before any is used
        const tv_tensor *t = e[i].slot < (uint32_t)n ? slots[e[i].slot] : NULL;
        const tv_type_traits *tr = kern_traits_ref((tv_type)e[i].type);
        size_t want = 0;
        if (t && tr && tr->is_supported && e[i].ne0 == t->ne[0] && e[i].ne1 == t->ne[1] && e[i].ne2 == t->ne[2] &&
            e[i].ne0 > 0 && e[i].ne1 > 0 && e[i].ne2 > 0 && e[i].ne0 % tr->blck_size == 0) {
            const int64_t rows = e[i].ne1 * (int64_t)e[i].ne2;   // (expert tensors: every matrix's rows)
            want = e[i].packed ? packed_size((tv_type)e[i].type, e[i].ne0, rows)
                               : kern_row_size((tv_type)e[i].type, e[i].ne0) * (size_t)rows;
        }
        if (!want || want != e[i].nbytes || e[i].offset % 64 || e[i].offset > size || size - e[i].offset < e[i].nbytes)
            fail = "corrupt (an entry does not fit the model or the file)";
    }
    if (fail) {
        snprintf(why, why_cap, "%s", fail);
        munmap(base, size);
        return -1;
    }
    // Every page mapped now, in one sequential pass (file pages the page cache dropped are read
    // here), instead of ~100k faults, and disk reads for dropped pages, during the first requests:
    // with a 32-token warm-up, bench's pp512 of qwen3moe-24l Q8_0 took ~46k of its 99k faults
    // inside the timed prompt (perf stat, -r 1 vs -r 2), and an MoE prompt is where the experts a
    // warm-up missed are first read. Not for correctness: where the kernel lacks it, faults as before.
    (void)mem_populate(base, size, false);
    for (uint64_t i = 0; i < n_entries; i++) {
        tv_tensor *t = slots[e[i].slot];
        t->type = (tv_type)e[i].type;
        t->packed = e[i].packed != 0;
        t->nbytes = (size_t)e[i].nbytes;
        t->data = b + e[i].offset;
    }
    *map = (wcache_map){.base = base, .size = size};
    return 1;
}

tv_status wcache_store(const char *path, const char *key, tv_tensor *const *slots, const bool *is_prepared, int n,
                       tv_error *err) {
    size_t key_len = strlen(key), n_entries = 0;
    for (int i = 0; i < n; i++) n_entries += is_prepared[i];
    const size_t hdr = 24 + align_up(key_len, 8) + n_entries * ENTRY_BYTES;
    uint8_t *h = calloc(1, hdr + 8);
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!h || !tmp) {
        free(h);
        free(tmp);
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(h, MAGIC, 4);
    uint32_t version = WCACHE_LAYOUT_VERSION;
    uint64_t ne = n_entries, kl = key_len;
    memcpy(h + 4, &version, 4);
    memcpy(h + 8, &ne, 8);
    memcpy(h + 16, &kl, 8);
    memcpy(h + 24, key, key_len);
    entry *e = (entry *)(h + 24 + align_up(key_len, 8));
    uint64_t off = align_up(hdr + 8, DATA_ALIGN);
    for (int i = 0, k = 0; i < n; i++) {
        if (!is_prepared[i]) continue;
        const tv_tensor *t = slots[i];
        if (t->nbytes >= HUGE_ALIGN) off = align_up(off, HUGE_ALIGN);
        e[k++] = (entry){.slot = (uint32_t)i, .type = (uint32_t)t->type, .packed = t->packed, .ne2 = (uint32_t)t->ne[2],
                         .ne0 = t->ne[0], .ne1 = t->ne[1], .offset = off, .nbytes = t->nbytes};
        off = align_up(off + t->nbytes, 64);
    }
    uint64_t sum = fnv64(h, hdr);
    memcpy(h + hdr, &sum, 8);
    snprintf(tmp, plen, "%s.tmp%ld", path, (long)getpid());
    tv_status st = TV_OK;
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(h, 1, hdr + 8, f) == hdr + 8;
    // the gaps before entries are skipped (holes in the file: no disk blocks, no page-cache pages;
    // they read as zeros)
    for (size_t i = 0, k = 0; ok && i < (size_t)n; i++) {
        if (!is_prepared[i]) continue;
        const entry *x = &e[k++];
        ok = fseeko(f, (off_t)x->offset, SEEK_SET) == 0 &&
             fwrite(slots[i]->data, 1, (size_t)x->nbytes, f) == (size_t)x->nbytes;
    }
    if (!ok) st = err_fail(err, TV_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (f && fclose(f) != 0 && !st) st = err_fail(err, TV_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0) st = err_fail(err, TV_ERR_IO, "%s: cannot rename: %s", path, strerror(errno));
    if (st) unlink(tmp);
    free(tmp);
    free(h);
    return st;
}

typedef struct cfile { char *path; uint64_t size; int64_t mtime_ns; } cfile;

static int cmp_mtime(const void *a, const void *b) {
    const cfile *x = a, *y = b;
    return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

uint64_t wcache_evict(const char *dir, uint64_t max_bytes, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    cfile *files = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0, removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".tvw")) continue;
        char *p = malloc(strlen(dir) + len + 2);
        if (!p) break;
        sprintf(p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0 || (n == cap && !(files = realloc(files, (cap = cap ? 2 * cap : 16) * sizeof *files)))) {
            free(p);
            if (!files) break;
            continue;
        }
        files[n++] = (cfile){p, (uint64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec};
        total += (uint64_t)sb.st_size;
    }
    closedir(d);
    if (files) qsort(files, n, sizeof *files, cmp_mtime);
    for (size_t i = 0; i < n; i++) {
        if (total > max_bytes && (!keep || strcmp(files[i].path, keep)) && unlink(files[i].path) == 0) {
            total -= files[i].size;
            removed += files[i].size;
        }
        free(files[i].path);
    }
    free(files);
    return removed;
}
