// dist.c — pipeline parallelism over MPI (include/tinyvllm_dist.h).
//
// Messages (MPI_COMM_WORLD, one buffer each, wire.h):
//   TAG_STEP   rank r -> r + 1   a round's batch (WIRE_STEP), a failure passed on (WIRE_FAIL), or WIRE_STOP
//   TAG_REPLY  last rank -> 0    the round's reply (WIRE_REPLY): sampled ids and logprobs, logits rows,
//                                or the failure of a stage
// Startup: tv_dist_agree's identity records (MPI_Allgather), then tv_dist_engine_create broadcasts
// the pool geometry (stage_geometry) and gathers each stage's result of creating its KV cache and
// forward state.
//
// Micro-batch pipelining: rank 0's engine submits up to `size` rounds before it collects the oldest
// (engine/pipeline.h); each round's message leaves with MPI_Isend from a buffer of its own (a ring
// of `size` slots), so rank 0 computes the next round while the stages compute the earlier ones. A
// stage receives a round, runs it, and passes it on with MPI_Isend while it waits for the next
// (stage.c alternates two output buffers). A rank completes its pending sends before it computes
// again (rank 0 at the end of collect, a stage once the next round arrived): without a single-copy
// transport a large message moves only while both ranks are inside MPI calls.
// Messages between two ranks arrive in the order sent, so every stage runs the rounds in order, and
// all replies come from the last rank, in order (a failing stage passes a WIRE_FAIL note on).
//
// Waits are MPI_Test / MPI_Iprobe polls with a deadline (sleeping 20 us, doubling up to 250 us, so a
// waiting rank leaves the cores to the computing ones, and a message waits 125 us on average past
// its arrival; MPI's own blocking waits would spin a core); MPI errors return instead of aborting
// (MPI_ERRORS_RETURN). A stage waits for its next batch without a deadline: an idle server is not a
// fault, and rank 0 is the one that notices a missing answer.
#include "tinyvllm_dist.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/stage.h"
#include "dist/wire.h"
#include "engine/pipeline.h"
#include "model/model.h"
#include "util/status.h"

enum { TAG_STEP = 1, TAG_REPLY = 2 };

// Rank 0: one round in flight.
typedef struct flight_slot {
    void *buf;          // its message (kept until the send completes)
    size_t cap;
    MPI_Request rq;
    pipe_row *rows;     // (max_logits) how its logits rows are treated (to read the reply)
    int n_rows;
    int32_t round;
} flight_slot;

struct tv_dist {
    int rank, size;
    double timeout_s;
    char host[MPI_MAX_PROCESSOR_NAME];
    void (*on_broken)(void *user, const char *why);
    void *on_broken_user;
    bool is_broken;
    char why[512];
    bool stages_running;     // rank 0: the stages serve (tv_engine_free must stop them)
    int dim, n_vocab;
    int hidden_bits;         // rank 0: the hidden state on the wire, 32 (f32) or 16 (f16)
    stage_geometry g;
    flight_slot *slots;      // rank 0: (size) rounds in flight, round r in slots[r % size]
    uint32_t next_round;     // rank 0: the round the next submit sends (wraps; int32 on the wire)
    uint32_t oldest;         // rank 0: the round collect waits for (in flight: next_round - oldest)
    pipe_out *drain;         // rank 0: (max_logits) results nobody wants (close)
    void *recv;              // the incoming message
    size_t recv_cap;
    tv_dist_stats stats;
    double t_first;          // rank 0: when the first round was sent (stats.t_span counts from there)
    double cpu_first;        // rank 0: the engine thread's CPU time then
    int last_tokens;         // rank 0: the tokens of the last round sent
};

// ---- waiting with a deadline ----

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// CPU time of the calling thread.
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void nap(long *ns) {
    struct timespec t = {0, *ns};
    nanosleep(&t, NULL);
    *ns = *ns < 125000 ? *ns * 2 : 250000;
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

// Starts sending n bytes to rank `to` (buf must stay until the send completes).
static tv_status start_send(tv_dist *d, const void *buf, size_t n, int to, int tag, MPI_Request *rq, tv_error *err) {
    char m[MPI_MAX_ERROR_STRING];
    int rc = MPI_Isend(buf, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, rq);
    if (rc != MPI_SUCCESS) return broken(d, err, "pipeline: sending to rank %d failed: %s", to, mpi_msg(rc, m));
    return TV_OK;
}

// Waits at most the timeout for the send rq (to rank `to`) to complete.
static tv_status wait_send(tv_dist *d, MPI_Request *rq, int to, tv_error *err) {
    char m[MPI_MAX_ERROR_STRING];
    const double deadline = now_s() + d->timeout_s;
    for (long ns = 20000;;) {
        int done = 0, rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return broken(d, err, "pipeline: sending to rank %d failed: %s", to, mpi_msg(rc, m));
        if (done) return TV_OK;
        if (now_s() > deadline)
            return broken(d, err, "pipeline: rank %d took no message for %.0f s (it died or hangs)", to, d->timeout_s);
        nap(&ns);
    }
}

// Sends n bytes to rank `to`, waiting at most the timeout for the send to complete.
static tv_status send_bytes(tv_dist *d, const void *buf, size_t n, int to, int tag, tv_error *err) {
    MPI_Request rq;
    tv_status st = start_send(d, buf, n, to, tag, &rq, err);
    return st ? st : wait_send(d, &rq, to, err);
}

// Receives the next message with tag from `from` into d->recv; *n its size. timeout_s <= 0: no deadline.
static tv_status recv_bytes(tv_dist *d, int from, int tag, double timeout_s, size_t *n, tv_error *err) {
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
            return broken(d, err, "pipeline: rank %d sent nothing for %.0f s (it or a rank before it died or hangs)", from,
                          timeout_s);
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
    return TV_OK;
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
    d->hidden_bits = 32;
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
void tv_dist_set_f16_wire(tv_dist *d, bool on) { d->hidden_bits = on ? 16 : 32; }
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
    for (int i = 0; d->slots && i < d->size; i++) {
        free(d->slots[i].buf);
        free(d->slots[i].rows);
    }
    free(d->slots);
    free(d->drain);
    free(d->recv);
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

// Setup: rank 0's engine (ok) and its pool geometry, to every stage.
typedef struct setup_msg {
    int32_t ok;
    stage_geometry g;
} setup_msg;

// Setup: each stage's result of creating its KV cache and forward state, to rank 0.
typedef struct stage_result {
    int32_t status;
    char msg[252];
} stage_result;

// Rank 0 submits a round: the batch, its rows and the hidden state to rank 1, without waiting.
static tv_status downstream_submit(void *ctx, const tv_batch *b, const float *hidden, const pipe_row *rows, tv_error *err) {
    tv_dist *d = ctx;
    if (d->is_broken) return err_fail(err, TV_ERR_IO, "%s", d->why);
    if (d->next_round - d->oldest >= (uint32_t)d->size)
        return err_fail(err, TV_ERR_STATE, "pipeline: %u rounds in flight already", d->next_round - d->oldest);
    flight_slot *f = &d->slots[d->next_round % (uint32_t)d->size];
    const size_t n = wire_size(b, d->g.block_size, d->dim, d->hidden_bits);
    if (n > f->cap) {
        void *nb = malloc(n);
        if (!nb) return err_fail(err, TV_ERR_NOMEM, "pipeline: out of memory for a %zu-byte message", n);
        free(f->buf);
        f->buf = nb;
        f->cap = n;
    }
    wire_pack(f->buf, (int32_t)d->next_round, b, d->g.block_size, rows, hidden, d->dim, d->hidden_bits);
    memcpy(f->rows, rows, (size_t)b->n_logits * sizeof *rows);
    f->n_rows = b->n_logits;
    f->round = (int32_t)d->next_round;
    tv_status st = start_send(d, f->buf, n, 1, TAG_STEP, &f->rq, err);
    if (st) return st;
    if (!d->stats.n_rounds) {
        d->t_first = now_s();
        d->cpu_first = cpu_s();
    }
    d->next_round++;
    if (d->stats.n_rounds) d->stats.n_tokens_unbalanced += (uint64_t)abs(b->n_tokens - d->last_tokens);
    d->last_tokens = b->n_tokens;
    d->stats.n_rounds++;
    d->stats.n_tokens += (uint64_t)b->n_tokens;
    d->stats.bytes_per_boundary += n;
    return TV_OK;
}

// Rank 0 collects the oldest round's reply from the last rank.
static tv_status downstream_collect(void *ctx, pipe_out *outs, tv_error *err) {
    tv_dist *d = ctx;
    if (d->is_broken) return err_fail(err, TV_ERR_IO, "%s", d->why);
    if (d->oldest == d->next_round) return err_fail(err, TV_ERR_STATE, "pipeline: no round in flight");
    flight_slot *f = &d->slots[d->oldest % (uint32_t)d->size];
    size_t n = 0;
    const double t0 = now_s();
    tv_status st = recv_bytes(d, d->size - 1, TAG_REPLY, d->timeout_s, &n, err);
    // Every round still in flight reaches rank 1 before this rank computes again: a send completes
    // only while both ranks are inside MPI (without single-copy transport), and rank 1 takes the
    // next round right after it answers or passes on this one.
    for (uint32_t r = d->oldest; !st && r != d->next_round; r++) st = wait_send(d, &d->slots[r % (uint32_t)d->size].rq, 1, err);
    const double t1 = now_s();
    d->stats.t_wait += t1 - t0;
    d->stats.t_span = t1 - d->t_first;
    d->stats.t_cpu = cpu_s() - d->cpu_first;
    if (st) return st;
    d->oldest++;
    wire_note h;
    if (n >= WIRE_NOTE_HEAD) memcpy(&h, d->recv, WIRE_NOTE_HEAD);
    if (n < WIRE_NOTE_HEAD || h.kind != WIRE_REPLY || h.round != f->round)
        return broken(d, err, "pipeline: rank %d answered with a %zu-byte message that is not the reply to round %d",
                      d->size - 1, n, (int)f->round);
    d->stats.bytes_replies += n;
    return wire_reply_unpack(d->recv, n, f->round, f->rows, f->n_rows, d->n_vocab, outs, err);
}

// tv_engine_free: the rounds still in flight are collected, then the stages stop (the stop travels
// down the chain).
static void downstream_close(void *ctx) {
    tv_dist *d = ctx;
    tv_error err = {0};
    while (d->stages_running && !d->is_broken && d->oldest != d->next_round) (void)downstream_collect(d, d->drain, &err);
    if (!d->stages_running || d->is_broken) return;
    int32_t stop[WIRE_HEADER];
    wire_pack_stop(stop);
    (void)send_bytes(d, stop, sizeof stop, 1, TAG_STEP, &err);
    d->stages_running = false;
}

static void downstream_bytes(void *ctx, uint64_t *boundary, uint64_t *replies) {
    const tv_dist *d = ctx;
    *boundary = d->stats.bytes_per_boundary;
    *replies = d->stats.bytes_replies;
}

tv_engine *tv_dist_engine_create(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err) {
    if (d->rank != 0 || d->size < 2) {
        err_fail(err, TV_ERR_STATE, "pipeline: the engine runs on rank 0 of two or more");
        return NULL;
    }
    engine_downstream down = {.depth = d->size, .submit = downstream_submit, .collect = downstream_collect,
                              .close = downstream_close, .bytes = downstream_bytes, .ctx = d};
    tv_engine *e = engine_create_pipelined(m, c, &down, err);
    setup_msg cfg;
    memset(&cfg, 0, sizeof cfg);
    if (e) {
        cfg.ok = 1;
        stage_geometry_of(e, &cfg.g);
        d->g = cfg.g;
        const size_t L = (size_t)(cfg.g.max_logits > 0 ? cfg.g.max_logits : 1);
        if ((d->slots = calloc((size_t)d->size, sizeof *d->slots)) && (d->drain = malloc(L * sizeof *d->drain)))
            for (int i = 0; i < d->size && cfg.ok; i++)
                if (!(d->slots[i].rows = malloc(L * sizeof *d->slots[i].rows))) cfg.ok = 0;
        if (!d->slots || !d->drain || !cfg.ok) {
            err_fail(err, TV_ERR_NOMEM, "out of memory");
            cfg.ok = 0;
            tv_engine_free(e);   // the stages are not running yet: nothing to stop
            e = NULL;
        }
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

tv_status tv_dist_serve(tv_dist *d, tv_model *m, const tv_engine_config *c, tv_error *err) {
    if (d->rank == 0) return err_fail(err, TV_ERR_STATE, "pipeline: rank 0 runs the engine, not a stage");
    setup_msg cfg;
    char em[MPI_MAX_ERROR_STRING];
    int rc = MPI_Bcast(&cfg, (int)sizeof cfg, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return err_fail(err, TV_ERR_IO, "pipeline setup failed: %s", mpi_msg(rc, em));
    stage *stg = NULL;
    stage_result res = {0};
    tv_error serr = {0};
    if (cfg.ok && !(stg = stage_create(m, &cfg.g, d->rank, c ? c->cpu_path : NULL, c ? c->n_threads : 1, &serr))) {
        res.status = serr.code ? serr.code : TV_ERR_NOMEM;
        snprintf(res.msg, sizeof res.msg, "%s", serr.code ? serr.msg : "out of memory");
    }
    rc = MPI_Gather(&res, (int)sizeof res, MPI_BYTE, NULL, 0, MPI_BYTE, 0, MPI_COMM_WORLD);
    tv_status st = TV_OK;
    if (!cfg.ok) st = err_fail(err, TV_ERR_STATE, "pipeline: rank 0 could not create its engine");
    else if (res.status) st = err_fail(err, (tv_status)res.status, "%s", res.msg);
    else if (rc != MPI_SUCCESS) st = err_fail(err, TV_ERR_IO, "pipeline setup failed: %s", mpi_msg(rc, em));
    const bool is_last = d->rank == d->size - 1;
    const int to = is_last ? 0 : d->rank + 1, tag = is_last ? TAG_REPLY : TAG_STEP;
    MPI_Request rq;
    bool sending = false;   // rq: the last message passed on is still sending
    double t_first = 0;   // when the first batch came (the stage's time counts from there)
    while (!st) {
        size_t n;
        const double t0 = now_s();
        if ((st = recv_bytes(d, d->rank - 1, TAG_STEP, 0, &n, err))) break;
        // the last round passed on reaches the next rank before this one computes (as on rank 0)
        if (sending && (st = wait_send(d, &rq, to, err))) break;
        sending = false;
        const double t1 = now_s();
        if (!d->stats.n_rounds) t_first = t1;
        const void *out;
        size_t n_out;
        const double c1 = cpu_s();
        const int kind = stage_handle(stg, d->recv, n, &out, &n_out);
        if (kind != WIRE_STOP) {   // the time counts from the first batch to the last one's end
            const double t2 = now_s();
            if (d->stats.n_rounds) d->stats.t_wait += t1 - t0;
            d->stats.t_compute += t2 - t1;
            d->stats.t_cpu += cpu_s() - c1;
            d->stats.t_span = t2 - t_first;
            d->stats.n_rounds++;
        }
        if (kind == WIRE_STOP) {
            if (!is_last) st = send_bytes(d, out, n_out, to, TAG_STEP, err);
            break;
        }
        if ((st = start_send(d, out, n_out, to, tag, &rq, err))) break;
        sending = true;
    }
    if (sending && !st) st = wait_send(d, &rq, to, err);
    stage_free(stg);
    return st;
}
