// dist.c — pipeline parallelism over MPI (include/tinyvllm_dist.h).
//
// Messages (MPI_COMM_WORLD, one buffer each):
//   TAG_STEP   rank r -> r + 1   a round's batch and hidden state (wire.h), or WIRE_STOP
//   TAG_REPLY  last or failing rank -> 0   reply header {status, n_floats, rank, message}, then the
//              logits rows (n_logits, n_vocab) f32 when status is TV_OK
// Startup: tv_dist_agree's identity records (MPI_Allgather), then tv_dist_engine_create broadcasts
// the pool geometry (stage_cfg) and gathers each stage's result of creating its KV cache and
// forward state.
//
// Waits are MPI_Test / MPI_Iprobe polls with a deadline (sleeping 20 us, doubling to 1 ms, so a
// waiting rank leaves the cores to the computing ones); MPI errors return instead of aborting
// (MPI_ERRORS_RETURN). A stage waits for its next batch without a deadline: an idle server is not a
// fault, and rank 0 is the one that notices a missing answer.
#include "tinyvllm_dist.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "dist/wire.h"
#include "engine/pipeline.h"
#include "model/model.h"
#include "util/status.h"

enum { TAG_STEP = 1, TAG_REPLY = 2 };

typedef struct reply_head {
    int32_t status;     // tv_status of the stage's forward pass
    int32_t n_floats;   // logits floats that follow (status TV_OK)
    int32_t rank;
    char msg[244];
} reply_head;

struct tv_dist {
    int rank, size;
    double timeout_s;
    char host[MPI_MAX_PROCESSOR_NAME];
    void (*on_broken)(void *user, const char *why);
    void *on_broken_user;
    bool is_broken;
    char why[512];
    bool stages_running;     // rank 0: the stages serve (tv_engine_free must stop them)
    int dim, n_vocab, max_seqs, block_size;
    void *send;              // the outgoing message
    size_t send_cap;
    void *recv;              // the incoming one
    size_t recv_cap;
    const int32_t **tables;  // (max_seqs) block-table views of a received batch
    tv_dist_stats stats;
};

// ---- waiting with a deadline ----

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void nap(long *ns) {
    struct timespec t = {0, *ns};
    nanosleep(&t, NULL);
    if (*ns < 1000000) *ns *= 2;
}

static const char *mpi_msg(int rc, char *buf) {
    int len = 0;
    if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) snprintf(buf, MPI_MAX_ERROR_STRING, "MPI error %d", rc);
    return buf;
}

// Marks the pipeline broken (first reason wins) and tells the program once.
static tv_status broken(tv_dist *d, tv_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tv_status broken(tv_dist *d, tv_error *err, const char *fmt, ...) {
    if (!d->is_broken) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->why, sizeof d->why, fmt, ap);
        va_end(ap);
        d->is_broken = true;
        if (d->on_broken) d->on_broken(d->on_broken_user, d->why);
    }
    return err_fail(err, TV_ERR_IO, "%s", d->why);
}

// Sends n bytes to rank `to`, waiting at most the timeout for the send to complete.
static tv_status send_bytes(tv_dist *d, const void *buf, size_t n, int to, int tag, tv_error *err) {
    char m[MPI_MAX_ERROR_STRING];
    MPI_Request rq;
    int rc = MPI_Isend(buf, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &rq);
    if (rc != MPI_SUCCESS) return broken(d, err, "pipeline: sending to rank %d failed: %s", to, mpi_msg(rc, m));
    const double deadline = now_s() + d->timeout_s;
    for (long ns = 20000;;) {
        int done = 0;
        if ((rc = MPI_Test(&rq, &done, MPI_STATUS_IGNORE)) != MPI_SUCCESS)
            return broken(d, err, "pipeline: sending to rank %d failed: %s", to, mpi_msg(rc, m));
        if (done) return TV_OK;
        if (now_s() > deadline)
            return broken(d, err, "pipeline: rank %d took no message for %.0f s (it died or hangs)", to, d->timeout_s);
        nap(&ns);
    }
}

// Receives the next message with tag from `from` (MPI_ANY_SOURCE: anyone) into d->recv; *n its
// size, *src its sender. timeout_s <= 0: no deadline.
static tv_status recv_bytes(tv_dist *d, int from, int tag, double timeout_s, size_t *n, int *src, tv_error *err) {
    char m[MPI_MAX_ERROR_STRING];
    const double deadline = now_s() + timeout_s;
    MPI_Status st;
    int rc;
    for (long ns = 20000;;) {
        int there = 0;
        if ((rc = MPI_Iprobe(from, tag, MPI_COMM_WORLD, &there, &st)) != MPI_SUCCESS)
            return broken(d, err, "pipeline: waiting for rank %d failed: %s", from, mpi_msg(rc, m));
        if (there) break;
        if (timeout_s > 0 && now_s() > deadline)
            return broken(d, err, "pipeline: no answer from the stages within %.0f s (a rank died or hangs)", timeout_s);
        nap(&ns);
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if ((size_t)count > d->recv_cap) {
        void *nb = malloc((size_t)count);
        if (!nb) return broken(d, err, "pipeline: out of memory for a %d-byte message", count);
        free(d->recv);
        d->recv = nb;
        d->recv_cap = (size_t)count;
    }
    if ((rc = MPI_Recv(d->recv, count, MPI_BYTE, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) != MPI_SUCCESS)
        return broken(d, err, "pipeline: receiving from rank %d failed: %s", st.MPI_SOURCE, mpi_msg(rc, m));
    *n = (size_t)count;
    *src = st.MPI_SOURCE;
    return TV_OK;
}

static bool send_room(tv_dist *d, size_t n) {
    if (n <= d->send_cap) return true;
    void *nb = malloc(n);
    if (!nb) return false;
    free(d->send);
    d->send = nb;
    d->send_cap = n;
    return true;
}

// ---- setup ----

tv_dist *tv_dist_init(int *argc, char ***argv, tv_error *err) {
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
        err_fail(err, TV_ERR_IO, "MPI_Init failed (%d)", rc);
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    tv_dist *d = calloc(1, sizeof *d);
    if (!d) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        MPI_Finalize();
        return NULL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    int len = 0;
    if (MPI_Get_processor_name(d->host, &len) != MPI_SUCCESS) snprintf(d->host, sizeof d->host, "?");
    d->timeout_s = 30;
    if (provided < MPI_THREAD_SERIALIZED) {
        err_fail(err, TV_ERR_UNSUPPORTED, "this MPI library gives thread level %d; serving needs MPI_THREAD_SERIALIZED", provided);
        tv_dist_free(d);
        return NULL;
    }
    return d;
}

int tv_dist_rank(const tv_dist *d) { return d->rank; }
int tv_dist_size(const tv_dist *d) { return d->size; }
void tv_dist_set_timeout(tv_dist *d, double seconds) { d->timeout_s = seconds > 0 ? seconds : 30; }
void tv_dist_on_broken(tv_dist *d, void (*fn)(void *, const char *), void *user) {
    d->on_broken = fn;
    d->on_broken_user = user;
}

bool tv_dist_is_broken(const tv_dist *d, const char **why) {
    if (why) *why = d->is_broken ? d->why : NULL;
    return d->is_broken;
}

void tv_dist_get_stats(const tv_dist *d, tv_dist_stats *s) { *s = d->stats; }

void tv_dist_free(tv_dist *d) {
    if (!d) return;
    free(d->send);
    free(d->recv);
    free(d->tables);
    free(d);
    MPI_Finalize();
}

void tv_dist_abort(tv_dist *d, int code) {
    (void)d;
    MPI_Abort(MPI_COMM_WORLD, code);
    abort();   // MPI_Abort does not return; in case it does
}

// What each rank tells the others at startup.
typedef struct identity {
    int32_t status;               // its load's tv_status
    int32_t layer_begin, layer_end, n_layers, dim, n_vocab;
    uint64_t file_size, header_hash;
    char cpu_path[24];
    char host[64];
    char msg[320];                // its load error
} identity;

// FNV-1a of the first MiB of the model file (the GGUF header, metadata and tensor table), and its size.
static bool file_identity(const char *path, uint64_t *size, uint64_t *hash) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    enum { CAP = 1 << 20 };
    unsigned char *buf = malloc(CAP);
    size_t n = buf ? fread(buf, 1, CAP, f) : 0;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= buf[i]; h *= 1099511628211ull; }
    bool ok = buf && fseek(f, 0, SEEK_END) == 0;
    long end = ok ? ftell(f) : -1;
    free(buf);
    fclose(f);
    *size = end > 0 ? (uint64_t)end : 0;
    *hash = h;
    return ok && end >= 0;
}

tv_status tv_dist_agree(tv_dist *d, const tv_model *m, const tv_error *load_err, const char *cpu_path, tv_error *err) {
    identity me;
    memset(&me, 0, sizeof me);
    snprintf(me.host, sizeof me.host, "%s", d->host);
    snprintf(me.cpu_path, sizeof me.cpu_path, "%s", cpu_path && *cpu_path ? cpu_path : tv_cpu_best_path());
    if (m) {
        tv_model_info info;
        tv_model_get_info(m, &info);
        me.layer_begin = info.layer_begin;
        me.layer_end = info.layer_end;
        me.n_layers = info.n_layers;
        me.dim = info.dim;
        me.n_vocab = info.n_vocab;
        if (!file_identity(info.path, &me.file_size, &me.header_hash)) {
            me.status = TV_ERR_IO;
            snprintf(me.msg, sizeof me.msg, "%s: cannot read it to check it", info.path);
        }
    } else {
        me.status = load_err && load_err->code ? load_err->code : TV_ERR_IO;
        snprintf(me.msg, sizeof me.msg, "%s", load_err ? load_err->msg : "no model");
    }
    identity *all = calloc((size_t)d->size, sizeof *all);
    if (!all) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    char em[MPI_MAX_ERROR_STRING];
    int rc = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    tv_status st = TV_OK;
    if (rc != MPI_SUCCESS) st = err_fail(err, TV_ERR_IO, "pipeline handshake failed: %s", mpi_msg(rc, em));
    for (int r = 0; r < d->size && !st; r++) {
        const identity *a = &all[r], *z = &all[0];
        if (a->status)
            st = err_fail(err, (tv_status)a->status, "rank %d (%s) could not load the model: %s", r, a->host, a->msg);
        else if (r && (a->file_size != z->file_size || a->header_hash != z->header_hash))
            st = err_fail(err, TV_ERR_INVALID,
                          "rank %d (%s) loaded another model file than rank 0 (%s): %llu bytes, header hash %016llx vs "
                          "%llu bytes, %016llx; every host needs the same file", r, a->host, z->host,
                          (unsigned long long)a->file_size, (unsigned long long)a->header_hash,
                          (unsigned long long)z->file_size, (unsigned long long)z->header_hash);
        else if (strcmp(a->cpu_path, z->cpu_path))
            st = err_fail(err, TV_ERR_INVALID,
                          "rank %d (%s) computes with the %s kernels, rank 0 (%s) with %s: outputs would differ from one "
                          "process; pass --cpu PATH with a path every host has", r, a->host, a->cpu_path, z->host, z->cpu_path);
        else if (a->layer_begin != (r ? all[r - 1].layer_end : 0) || (r == d->size - 1 && a->layer_end != a->n_layers))
            st = err_fail(err, TV_ERR_INVALID, "rank %d (%s) holds layers [%d, %d), which do not continue rank %d's [%d, %d) "
                          "toward the model's %d", r, a->host, a->layer_begin, a->layer_end, r ? r - 1 : 0,
                          r ? all[r - 1].layer_begin : 0, r ? all[r - 1].layer_end : 0, a->n_layers);
    }
    if (!st) {
        d->dim = me.dim;
        d->n_vocab = me.n_vocab;
    }
    free(all);
    return st;
}

// ---- rank 0: the engine's later stages ----

// The pool geometry rank 0's engine decided, for every stage.
typedef struct stage_cfg {
    int32_t ok;
    int32_t n_blocks, block_size, kv_f32, max_tokens, max_logits, max_len, max_seqs;
} stage_cfg;

typedef struct stage_result {
    int32_t status;
    char msg[252];
} stage_result;

// Rank 0's half of a round: the batch and hidden state to rank 1, then the reply of the last rank
// (or of a stage that failed).
static tv_status downstream_run(void *ctx, const tv_batch *b, const float *hidden, float **logits, tv_error *err) {
    tv_dist *d = ctx;
    if (d->is_broken) return err_fail(err, TV_ERR_IO, "%s", d->why);
    const size_t n = wire_size(b, d->block_size, d->dim);
    if (!send_room(d, n)) return err_fail(err, TV_ERR_NOMEM, "pipeline: out of memory for a %zu-byte message", n);
    wire_pack(d->send, b, d->block_size, hidden, d->dim);
    tv_status st = send_bytes(d, d->send, n, 1, TAG_STEP, err);
    size_t got;
    int src;
    if (!st) st = recv_bytes(d, MPI_ANY_SOURCE, TAG_REPLY, d->timeout_s, &got, &src, err);
    if (st) return st;
    reply_head h;
    if (got < sizeof h) return broken(d, err, "pipeline: rank %d sent a %zu-byte reply", src, got);
    memcpy(&h, d->recv, sizeof h);
    h.msg[sizeof h.msg - 1] = 0;
    if (h.status != TV_OK) return err_fail(err, (tv_status)h.status, "pipeline stage on rank %d: %s", h.rank, h.msg);
    const size_t want = (size_t)b->n_logits * (size_t)d->n_vocab;
    if (h.n_floats < 0 || (size_t)h.n_floats != want || got != sizeof h + want * sizeof(float))
        return broken(d, err, "pipeline: rank %d returned %d logits for %zu", src, h.n_floats, want);
    *logits = (float *)((char *)d->recv + sizeof h);
    d->stats.n_rounds++;
    d->stats.bytes_per_boundary += n;
    d->stats.bytes_logits += want * sizeof(float);
    return TV_OK;
}

// tv_engine_free: the stages stop (the stop travels down the chain).
static void downstream_close(void *ctx) {
    tv_dist *d = ctx;
    if (!d->stages_running || d->is_broken) return;
    int32_t stop[WIRE_HEADER];
    wire_pack_stop(stop);
    tv_error err = {0};
    (void)send_bytes(d, stop, sizeof stop, 1, TAG_STEP, &err);
    d->stages_running = false;
}

tv_engine *tv_dist_engine_create(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err) {
    if (d->rank != 0 || d->size < 2) {
        err_fail(err, TV_ERR_STATE, "pipeline: the engine runs on rank 0 of two or more");
        return NULL;
    }
    engine_downstream down = {.run = downstream_run, .close = downstream_close, .ctx = d};
    tv_engine *e = engine_create_pipelined(m, c, &down, err);
    stage_cfg cfg = {0};
    if (e) {
        tv_engine_limits lim;
        tv_engine_get_limits(e, &lim);
        const int64_t ml = (int64_t)lim.max_num_seqs * (1 + lim.spec_tokens);
        cfg = (stage_cfg){.ok = 1, .n_blocks = (int32_t)lim.n_blocks, .block_size = lim.block_size, .kv_f32 = lim.kv_bits == 32,
                          .max_tokens = lim.max_batched_tokens, .max_logits = ml < lim.max_batched_tokens ? (int32_t)ml : lim.max_batched_tokens,
                          .max_len = lim.max_model_len, .max_seqs = lim.max_num_seqs};
        d->block_size = lim.block_size;
        d->max_seqs = lim.max_num_seqs;
    }
    char em[MPI_MAX_ERROR_STRING];
    int rc = MPI_Bcast(&cfg, (int)sizeof cfg, MPI_BYTE, 0, MPI_COMM_WORLD);
    stage_result *res = calloc((size_t)d->size, sizeof *res), mine = {0};
    if (rc == MPI_SUCCESS && res)
        rc = MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, res, (int)sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!e) {   // the stages were told (cfg.ok 0) and went home
        free(res);
        return NULL;
    }
    tv_status st = TV_OK;
    if (!res) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    else if (rc != MPI_SUCCESS) st = err_fail(err, TV_ERR_IO, "pipeline setup failed: %s", mpi_msg(rc, em));
    for (int r = 1; r < d->size && !st; r++)
        if (res[r].status) {
            res[r].msg[sizeof res[r].msg - 1] = 0;
            st = err_fail(err, (tv_status)res[r].status, "pipeline stage on rank %d: %s", r, res[r].msg);
        }
    free(res);
    d->stages_running = true;   // the ones that failed left; the others wait for the stop
    if (st) {
        tv_engine_free(e);
        return NULL;
    }
    return e;
}

// ---- ranks > 0: a stage ----

// The failure or the logits of this round, to rank 0.
static tv_status reply(tv_dist *d, tv_status status, const char *msg, const float *logits, int n_floats, tv_error *err) {
    reply_head h = {.status = status, .n_floats = status ? 0 : n_floats, .rank = d->rank};
    snprintf(h.msg, sizeof h.msg, "%s", msg ? msg : "");
    const size_t n = sizeof h + (size_t)h.n_floats * sizeof(float);
    if (!send_room(d, n)) return err_fail(err, TV_ERR_NOMEM, "pipeline: out of memory for a %zu-byte reply", n);
    memcpy(d->send, &h, sizeof h);
    if (h.n_floats) memcpy((char *)d->send + sizeof h, logits, (size_t)h.n_floats * sizeof(float));
    return send_bytes(d, d->send, n, 0, TAG_REPLY, err);
}

tv_status tv_dist_serve(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err) {
    if (d->rank == 0) return err_fail(err, TV_ERR_STATE, "pipeline: rank 0 runs the engine, not a stage");
    stage_cfg cfg;
    char em[MPI_MAX_ERROR_STRING];
    int rc = MPI_Bcast(&cfg, (int)sizeof cfg, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return err_fail(err, TV_ERR_IO, "pipeline setup failed: %s", mpi_msg(rc, em));
    backend *be = NULL;
    tv_kv_cache *kv = NULL;
    tv_forward *fwd = NULL;
    stage_result res = {0};
    tv_error serr = {0};
    if (cfg.ok) {
        d->block_size = cfg.block_size;
        d->max_seqs = cfg.max_seqs;
        if (!(be = backend_cpu_create(c ? c->cpu_path : NULL, c && c->n_threads > 0 ? c->n_threads : 1, &serr)) ||
            !(kv = kv_cache_create(m, cfg.n_blocks, cfg.block_size, cfg.kv_f32, &serr)) ||
            !(fwd = forward_create(m, cfg.max_len, cfg.max_tokens, cfg.max_logits, be, &serr)) ||
            !(d->tables = malloc((size_t)cfg.max_seqs * sizeof *d->tables))) {
            res.status = serr.code ? serr.code : TV_ERR_NOMEM;
            snprintf(res.msg, sizeof res.msg, "%s", serr.code ? serr.msg : "out of memory");
        }
    }
    rc = MPI_Gather(&res, (int)sizeof res, MPI_BYTE, NULL, 0, MPI_BYTE, 0, MPI_COMM_WORLD);
    tv_status st = TV_OK;
    if (!cfg.ok) st = err_fail(err, TV_ERR_STATE, "pipeline: rank 0 could not create its engine");
    else if (res.status) st = err_fail(err, (tv_status)res.status, "%s", res.msg);
    else if (rc != MPI_SUCCESS) st = err_fail(err, TV_ERR_IO, "pipeline setup failed: %s", mpi_msg(rc, em));
    const bool is_last = d->rank == d->size - 1;
    while (!st) {
        size_t n;
        int src;
        if ((st = recv_bytes(d, d->rank - 1, TAG_STEP, 0, &n, &src, err))) break;
        wire_msg w;
        tv_error ferr = {0};
        tv_status fs = wire_unpack(d->recv, n, d->dim, d->max_seqs, d->tables, &w, &ferr);
        if (!fs && w.kind == WIRE_STOP) {
            if (!is_last) st = send_bytes(d, d->recv, n, d->rank + 1, TAG_STEP, err);
            break;
        }
        float *out = NULL;
        if (!fs) fs = forward_run(fwd, kv, &w.b, &out, &ferr);
        if (fs || is_last) {
            st = reply(d, fs, ferr.msg, out, fs ? 0 : w.b.n_logits * d->n_vocab, err);
            continue;
        }
        const size_t sn = wire_size(&w.b, d->block_size, d->dim);
        if (!send_room(d, sn)) {
            st = reply(d, TV_ERR_NOMEM, "out of memory for the next stage's message", NULL, 0, err);
            continue;
        }
        wire_pack(d->send, &w.b, d->block_size, out, d->dim);
        st = send_bytes(d, d->send, sn, d->rank + 1, TAG_STEP, err);
    }
    forward_free(fwd);
    kv_cache_free(kv);
    backend_free(be);
    return st;
}
