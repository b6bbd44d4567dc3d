// cli_dist.c — pipeline parallelism for the commands (cli_dist.h).
#include "cli_dist.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"

#ifdef TV_MPI
#include "tinyvllm_dist.h"

static tv_dist *g_dist;
static bool g_waiting;       // rank 0: the stages wait for tv_dist_engine_create (the handshake passed)
static const char *g_cmd;

// After a moment (replies of the failed requests go out), serve stops as on SIGTERM.
static void *stop_later(void *arg) {
    (void)arg;
    sleep(1);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void on_broken(void *user, const char *why) {
    (void)user;
    fprintf(stderr, "tinyvllm %s: %s; ending the job\n", g_cmd, why);
    pthread_t t;
    if (!strcmp(g_cmd, "serve") && pthread_create(&t, NULL, stop_later, NULL) == 0) pthread_detach(t);
}

// Where this rank's time went since its first round (stderr, one line): a stage's computing and
// waiting, rank 0's waiting for the later stages (the rest of its time it computes and serves), and
// how much of the time its thread computed it was on a core (the rest other threads had the core:
// the server's, a client's on the same machine, the other ranks').
static void print_timeline(void) {
    tv_dist_stats s;
    tv_dist_get_stats(g_dist, &s);
    if (!s.n_rounds || s.t_span <= 0) return;
    const int rank = tv_dist_rank(g_dist);
    if (rank == 0)
        fprintf(stderr, "tinyvllm %s: pipeline rank 0: %llu rounds in %.1f s, waiting for the later stages %.1f s (%.0f%%), "
                "the engine thread on a core %.1f s of the other %.1f s; %.1f tokens per round, consecutive rounds differ "
                "by %.0f%% of their tokens\n",
                g_cmd, (unsigned long long)s.n_rounds, s.t_span, s.t_wait, 100.0 * s.t_wait / s.t_span, s.t_cpu,
                s.t_span - s.t_wait, (double)s.n_tokens / (double)s.n_rounds,
                100.0 * (double)s.n_tokens_unbalanced / (double)s.n_tokens);
    else
        fprintf(stderr, "tinyvllm %s: pipeline rank %d: %llu rounds in %.1f s, computing %.1f s (%.0f%%; on a core %.1f s), "
                "waiting %.1f s (%.0f%%)\n",
                g_cmd, rank, (unsigned long long)s.n_rounds, s.t_span, s.t_compute, 100.0 * s.t_compute / s.t_span, s.t_cpu,
                s.t_wait, 100.0 * s.t_wait / s.t_span);
}

// Rank 0 at exit: the stages have stopped (tv_engine_free) unless the pipeline broke or the command
// ended before it made its engine; then the job ends with every rank.
static void finish(void) {
    if (!g_dist) return;
    if (tv_dist_is_broken(g_dist, NULL) || g_waiting) tv_dist_abort(g_dist, 1);
    print_timeline();
    tv_dist_free(g_dist);
    g_dist = NULL;
}

// "a,b,c" -> n layer counts; false when it is not n positive integers.
static bool parse_split(const char *s, int n, int *out) {
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 16 || (i < n - 1 ? *end != ',' : *end != 0)) return false;
        out[i] = (int)v;
        s = end + 1;
    }
    return true;
}

tv_model *cli_dist_load(const cli_model_opts *o, tv_model_params *mp, tv_error *err) {
    g_cmd = o->cmd ? o->cmd : "";
    if (!(g_dist = tv_dist_init(NULL, NULL, err))) return NULL;
    const int rank = tv_dist_rank(g_dist), size = tv_dist_size(g_dist);
    if (o->pp_timeout > 0) tv_dist_set_timeout(g_dist, (double)o->pp_timeout);
    tv_dist_set_f16_wire(g_dist, o->pp_wire_f16);
    tv_dist_on_broken(g_dist, on_broken, NULL);
    if (size != o->pp) {   // every rank sees it: rank 0 says it, all leave
        if (rank == 0)
            fprintf(stderr, "tinyvllm %s: --pp %ld needs as many MPI ranks: run it as mpirun -np %ld ... (this job has %d)\n",
                    g_cmd, o->pp, o->pp, size);
        tv_dist_free(g_dist);
        exit(2);
    }
    int split[64], first[65];
    uint64_t bytes[64];
    tv_model *m = NULL;
    tv_error lerr = {0};
    if (o->pp_split && (o->pp > 64 || !parse_split(o->pp_split, (int)o->pp, split)))
        tv_error_set(&lerr, TV_ERR_INVALID, "--pp-split '%s' is not %ld layer counts separated by commas", o->pp_split, o->pp);
    else if (tv_model_plan_stages(o->model_path, (int)o->pp, o->pp_split ? split : NULL, first, bytes, &lerr) == TV_OK) {
        mp->layer_begin = first[rank];
        mp->layer_end = first[rank + 1];
        m = tv_model_load(o->model_path, mp, &lerr);
    }
    tv_status st = tv_dist_agree(g_dist, m, &lerr, mp->cpu_path, err);
    if (st) {
        tv_model_free(m);
        if (rank != 0) {   // the same error on every rank: rank 0 reports it
            tv_dist_free(g_dist);
            exit(1);
        }
        atexit(finish);
        return NULL;
    }
    g_waiting = rank == 0;
    atexit(finish);
    if (rank == 0 && !o->quiet)
        for (int r = 0; r < size; r++)
            fprintf(stderr, "tinyvllm %s: pipeline stage %d: layers [%d, %d), %.1f MiB of weights\n", g_cmd, r, first[r],
                    first[r + 1], (double)bytes[r] / (1 << 20));
    return m;
}

tv_engine *cli_dist_engine(const cli_model_opts *o, tv_model *m, const tv_engine_config *ec, tv_error *err) {
    if (tv_dist_rank(g_dist) == 0) {
        g_waiting = false;
        return tv_dist_engine_create(g_dist, m, ec, err);
    }
    // mpirun forwards SIGINT/SIGTERM to every rank: a stage stops when rank 0's engine tells it
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    tv_error serr = {0};
    tv_status st = tv_dist_serve(g_dist, m, ec, &serr);
    if (st && serr.code != TV_ERR_STATE) fprintf(stderr, "tinyvllm %s (rank %d): %s\n", o->cmd, tv_dist_rank(g_dist), serr.msg);
    if (!st) print_timeline();
    tv_model_free(m);
    if (st && serr.code != TV_ERR_STATE) tv_dist_abort(g_dist, 1);   // else rank 0 failed first and reports it
    tv_dist_free(g_dist);
    g_dist = NULL;
    exit(st ? 1 : 0);
}

bool cli_dist_bytes(double *per_boundary, double *replies, double *n_rounds) {
    if (!g_dist) return false;
    tv_dist_stats s;
    tv_dist_get_stats(g_dist, &s);
    *per_boundary = (double)s.bytes_per_boundary;
    *replies = (double)s.bytes_replies;
    *n_rounds = (double)s.n_rounds;
    return true;
}

#else

tv_model *cli_dist_load(const cli_model_opts *o, tv_model_params *mp, tv_error *err) {
    (void)mp;
    tv_error_set(err, TV_ERR_UNSUPPORTED, "--pp %ld: this tinyvllm was built without MPI (install libopenmpi-dev and "
                 "openmpi-bin, e.g. scripts/setup.sh, and rebuild)", o->pp);
    return NULL;
}

tv_engine *cli_dist_engine(const cli_model_opts *o, tv_model *m, const tv_engine_config *ec, tv_error *err) {
    (void)o, (void)m, (void)ec;
    tv_error_set(err, TV_ERR_UNSUPPORTED, "built without MPI");
    return NULL;
}

bool cli_dist_bytes(double *per_boundary, double *replies, double *n_rounds) {
    (void)per_boundary, (void)replies, (void)n_rounds;
    return false;
}

#endif
