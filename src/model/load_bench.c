// load_bench.c — tv_bench_load (tinyvllm_tools.h): how fast a model's weight bytes get from its files
// to the kernels, against what the machine's page cache delivers, measured in one run.
//
//   read        the model's files (safetensors shards, or the GGUF) read() into a buffer by
//               n_threads threads, each a contiguous stripe: the page cache's read bandwidth.
//   load        tv_model_load with nothing to convert (no repacking, no quantizing, no cache) and then
//               every weight byte read once on n_threads, as the first forward pass would: weight
//               bytes / that time.
//   cold        both again after posix_fadvise(POSIX_FADV_DONTNEED) on every file, when mincore shows
//               the pages really left the page cache (another process mapping them keeps them).
//   convert     tv_model_load with quantize (F32/F16/BF16 matrices -> the type) on n_threads, warm:
//               source bytes converted / the conversion's own time.
//   cache       with a scratch prepared-weight cache folder: the first load (repack/quantize + write
//               the cache file) against the second (maps the cache file), each plus reading every
//               weight byte once: the second start's cost as a fraction of the cold repack.
// Every figure is the best of reps runs.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "model/hf.h"
#include "model/model.h"
#include "tinyvllm_tools.h"
#include "util/status.h"

#define READ_CHUNK ((size_t)8 << 20)

static volatile uint64_t g_sink;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

typedef struct src_files { char **path; int n; uint64_t bytes; } src_files;

static void files_free(src_files *f) {
    for (int i = 0; i < f->n; i++) free(f->path[i]);
    free(f->path);
}

// The files a load reads: a folder's shards (as the loader opens them), else the file itself.
static tv_status files_of(const char *path, src_files *f, tv_error *err) {
    memset(f, 0, sizeof *f);
    st_set *s = NULL;
    int n = 1;
    if (hf_is_model_dir(path)) {
        if (!(s = st_set_open(path, err))) return err ? err->code : TV_ERR_FORMAT;
        n = st_set_n_files(s);
    }
    tv_status st = TV_OK;
    if (!(f->path = calloc((size_t)n, sizeof *f->path))) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !st; i++) {
        struct stat sb;
        const char *p = s ? st_set_file(s, i) : path;
        if (!(f->path[i] = strdup(p))) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
        else if (stat(p, &sb)) st = err_fail(err, TV_ERR_IO, "%s: %s", p, strerror(errno));
        else f->bytes += (uint64_t)sb.st_size;
        f->n = i + 1;
    }
    st_set_close(s);
    if (st) files_free(f);
    return st;
}

// ---- reading the files: thread ith of nth reads stripe ith of every file ----
typedef struct read_job { const src_files *f; uint8_t **buf; bool failed; } read_job;

static void read_part(void *arg, int ith, int nth) {
    read_job *j = arg;
    for (int i = 0; i < j->f->n; i++) {
        int fd = open(j->f->path[i], O_RDONLY);
        if (fd < 0) { j->failed = true; return; }
        struct stat sb;
        if (fstat(fd, &sb)) { close(fd); j->failed = true; return; }
        const off_t size = sb.st_size, lo = size * ith / nth, hi = size * (ith + 1) / nth;
        for (off_t o = lo; o < hi;) {
            ssize_t r = pread(fd, j->buf[ith], (size_t)(hi - o) < READ_CHUNK ? (size_t)(hi - o) : READ_CHUNK, o);
            if (r <= 0) { j->failed = true; break; }
            o += r;
        }
        close(fd);
    }
}

// ---- reading every weight byte once (what the first forward pass does to a mapped weight) ----
typedef struct touch_job { const tv_tensor **t; int n; uint64_t sum[64]; } touch_job;

static void touch_part(void *arg, int ith, int nth) {
    touch_job *j = arg;
    uint64_t acc = 0;
    for (int i = 0; i < j->n; i++) {
        const size_t n = j->t[i]->nbytes / 8, lo = n * (size_t)ith / (size_t)nth, hi = n * (size_t)(ith + 1) / (size_t)nth;
        const uint64_t *w = j->t[i]->data;
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t k = lo;
        for (; k + 4 <= hi; k += 4) { a0 += w[k]; a1 += w[k + 1]; a2 += w[k + 2]; a3 += w[k + 3]; }
        for (; k < hi; k++) a0 += w[k];
        acc += a0 ^ a1 ^ a2 ^ a3;
    }
    j->sum[ith < 64 ? ith : 63] += acc;
}

// Every distinct weight tensor of m (the matrices, the embeddings, a separate output); their bytes.
static uint64_t weights_of(const tv_model *m, const tv_tensor ***out, int *n_out) {
    int n_mat;
    const tv_tensor *const *mat = model_matrices(m, &n_mat);
    const tv_tensor **t = malloc(((size_t)n_mat + 2) * sizeof *t);
    *out = t;
    *n_out = 0;
    if (!t) return 0;
    uint64_t bytes = 0;
    const tv_tensor *extra[2] = {model_tok_embd(m), model_output(m)};
    for (int i = 0; i < n_mat + 2; i++) {
        const tv_tensor *x = i < n_mat ? mat[i] : extra[i - n_mat];
        bool seen = !x->data;
        for (int k = 0; k < *n_out && !seen; k++) seen = t[k]->data == x->data;
        if (seen) continue;
        t[(*n_out)++] = x;
        bytes += x->nbytes;
    }
    return bytes;
}

// Loads path with p, reads every weight byte on pool; *ms: load + read; *bytes: the weight bytes.
static tv_status load_and_touch(const char *path, const tv_model_params *p, tv_pool *pool, double *ms, uint64_t *bytes,
                                tv_model **keep, tv_error *err) {
    const double t0 = now_ms();
    tv_model *m = tv_model_load(path, p, err);
    if (!m) return err ? err->code : TV_ERR_FORMAT;
    const tv_tensor **t;
    int n;
    *bytes = weights_of(m, &t, &n);
    if (!t) { tv_model_free(m); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
    touch_job j = {.t = t, .n = n};
    pool_run(pool, touch_part, &j);
    *ms = now_ms() - t0;
    free(t);
    uint64_t sum = 0;
    for (int i = 0; i < 64; i++) sum += j.sum[i];
    g_sink = sum;   // the reads are the point: keep them
    if (keep) *keep = m;
    else tv_model_free(m);
    return TV_OK;
}

// Drops the files from the page cache; the fraction of their pages still resident afterwards.
static double drop_cache(const src_files *f) {
    const long ps = sysconf(_SC_PAGESIZE);
    uint64_t pages = 0, resident = 0;
    for (int i = 0; i < f->n; i++) {
        int fd = open(f->path[i], O_RDONLY);
        if (fd < 0) continue;
        struct stat sb;
        if (!fstat(fd, &sb) && sb.st_size > 0) {
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
            const size_t np = ((size_t)sb.st_size + (size_t)ps - 1) / (size_t)ps;
            unsigned char *vec = map != MAP_FAILED ? malloc(np) : NULL;
            if (vec && !mincore(map, (size_t)sb.st_size, vec))
                for (size_t k = 0; k < np; k++) resident += vec[k] & 1;
            pages += np;
            free(vec);
            if (map != MAP_FAILED) munmap(map, (size_t)sb.st_size);
        }
        close(fd);
    }
    return pages ? (double)resident / (double)pages : 1.0;
}

static double gbs(uint64_t bytes, double ms) { return ms > 0 ? (double)bytes / (ms * 1e6) : 0; }

// Reads the files on pool reps times (after one untimed pass when warm); the best time.
static tv_status time_read(const src_files *f, tv_pool *pool, int reps, bool cold, double *best, tv_error *err) {
    const int nth = pool_size(pool);
    uint8_t **buf = calloc((size_t)nth, sizeof *buf);
    tv_status st = buf ? TV_OK : err_fail(err, TV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nth && !st; i++)
        if (!(buf[i] = aligned_alloc(4096, READ_CHUNK))) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    *best = 0;
    for (int r = cold ? 0 : -1; r < reps && !st; r++) {
        if (cold) drop_cache(f);
        read_job j = {.f = f, .buf = buf};
        const double t0 = now_ms();
        pool_run(pool, read_part, &j);
        const double ms = now_ms() - t0;
        if (j.failed) st = err_fail(err, TV_ERR_IO, "%s: read failed", f->path[0]);
        else if (r >= 0 && (*best == 0 || ms < *best)) *best = ms;
    }
    for (int i = 0; buf && i < nth; i++) free(buf[i]);
    free(buf);
    return st;
}

tv_status tv_bench_load(const char *path, const tv_load_bench_params *p, tv_load_bench_result *r, tv_error *err) {
    memset(r, 0, sizeof *r);
    tv_load_bench_params dflt = {0};
    if (!p) p = &dflt;
    const int reps = p->reps > 0 ? p->reps : 3;
    src_files f;
    tv_status st = files_of(path, &f, err);
    if (st) return st;
    r->file_bytes = f.bytes;
    r->n_files = f.n;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    tv_pool *pool = pool_create(p->n_threads > 0 ? p->n_threads : n_cpu > 1 ? (int)(n_cpu < 16 ? n_cpu : 16) : 1, err);
    if (!pool) { files_free(&f); return err ? err->code : TV_ERR_NOMEM; }
    r->n_threads = pool_size(pool);
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = p->cpu_path;
    mp.n_threads = r->n_threads;
    mp.no_repack = true;   // nothing to convert: the bytes go from the mapping to the kernels

    double ms;
    if ((st = time_read(&f, pool, reps, false, &ms, err))) goto done;
    r->read_warm_gbs = gbs(f.bytes, ms);
    for (int i = 0; i < reps && !st; i++) {   // the first load also warms what the reads did not
        uint64_t bytes;
        if ((st = load_and_touch(path, &mp, pool, &ms, &bytes, NULL, err))) goto done;
        r->weight_bytes = bytes;
        if (r->load_warm_ms == 0 || ms < r->load_warm_ms) r->load_warm_ms = ms;
    }
    r->load_warm_gbs = gbs(r->weight_bytes, r->load_warm_ms);

    // cold: only when dropping the pages works here
    const double left = drop_cache(&f);
    if (left > 0.05) {
        snprintf(r->cold_note, sizeof r->cold_note, "%.0f%% of the pages stay cached after POSIX_FADV_DONTNEED", left * 100);
    } else {
        r->has_cold = true;
        if ((st = time_read(&f, pool, reps, true, &ms, err))) goto done;
        r->read_cold_gbs = gbs(f.bytes, ms);
        double best = 0;
        for (int i = 0; i < reps && !st; i++) {
            uint64_t bytes;
            drop_cache(&f);
            if ((st = load_and_touch(path, &mp, pool, &ms, &bytes, NULL, err))) goto done;
            if (best == 0 || ms < best) best = ms;
        }
        r->load_cold_gbs = gbs(r->weight_bytes, best);
        time_read(&f, pool, 1, false, &ms, NULL);   // warm again for what follows
    }

    // conversion at load (warm), when the model has float weights
    const char *type = p->convert_type ? p->convert_type : "Q8_0";
    snprintf(r->convert_type, sizeof r->convert_type, "%s", type);
    for (int i = 0; i < reps && !st; i++) {
        tv_model_params qp = mp;
        qp.quantize = type;
        tv_model *m = tv_model_load(path, &qp, err);
        if (!m) { st = err ? err->code : TV_ERR_FORMAT; goto done; }
        double qms;
        const uint64_t src = model_quantize_stats(m, &qms);
        tv_model_free(m);
        if (!src) break;   // nothing in a float type: no conversion to measure
        r->convert_src_bytes = src;
        if (r->convert_ms == 0 || qms < r->convert_ms) r->convert_ms = qms;
    }
    r->convert_gbs = gbs(r->convert_src_bytes, r->convert_ms);

    // the prepared-weight cache: a cold start that prepares and writes it, then a start that maps it
    if (p->cache_dir) {
        tv_model_params cp = mp;
        cp.no_repack = false;
        cp.quantize = p->cache_quantize ? p->cache_quantize : r->convert_src_bytes ? type : NULL;
        cp.cache_dir = p->cache_dir;
        uint64_t bytes;
        tv_model *m = NULL;
        if ((st = load_and_touch(path, &cp, pool, &r->cache_cold_ms, &bytes, &m, err))) goto done;
        const char *note = tv_model_cache_note(m);
        const bool wrote = note && (!strncmp(note, "wrote", 5) || !strncmp(note, "rebuilt", 7));
        tv_model_free(m);
        if (!wrote) {
            snprintf(r->cache_note, sizeof r->cache_note, "no prepared weights to cache (%s)", note ? note : "nothing repacked or quantized");
            r->cache_cold_ms = 0;
        } else {
            for (int i = 0; i < reps && !st; i++) {
                m = NULL;
                if ((st = load_and_touch(path, &cp, pool, &ms, &bytes, &m, err))) goto done;
                note = tv_model_cache_note(m);
                if (!note || strncmp(note, "hit", 3)) {
                    snprintf(r->cache_note, sizeof r->cache_note, "the second load did not hit the cache (%s)", note ? note : "no note");
                    tv_model_free(m);
                    break;
                }
                tv_model_free(m);
                if (r->cache_hit_ms == 0 || ms < r->cache_hit_ms) r->cache_hit_ms = ms;
            }
        }
    }
done:
    pool_free(pool);
    files_free(&f);
    return st;
}
