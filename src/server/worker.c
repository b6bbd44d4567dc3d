// worker.c — the engine thread: admit queued jobs, apply aborts, step, fan outputs out to jobs.
//
// Locking: one mutex (w->mu) guards the hand-off queue, every job's state and pending buffers, and
// the counters. The engine thread never holds it during tv_engine_step. Each job has a condvar
// the HTTP thread waits on; w->wake is the engine thread's.
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


enum { JOB_QUEUED = 0, JOB_ADMITTED, JOB_FAILED };

typedef struct srv_seq {
    srv_job *job;
    int index;
    uint64_t req_id;
    bool is_live;              // in the engine and in w->active
    bool is_finished;          // finish recorded (taken or not)
    bool finish_taken;
    tv_finish_reason finish;
    tv_error error;            // finish ERROR: why
    char *text;                // pending text (len, cap)
    size_t len, cap;
    srv_tok *toks;             // pending tokens (n_toks, cap_toks)
    int n_toks, cap_toks;
    int n_prompt, n_generated, n_cached;
    double t_first_ms;         // 0 until the first token
    double t_last_ms;          // when the latest token arrived
} srv_seq;

struct srv_job {
    srv_worker *w;
    int refs;                  // HTTP side + engine side
    int state;
    srv_error err;
    bool is_cancelled;
    bool has_news;
    bool want_logprobs;
    int n_seqs, n_live;
    srv_seq *seqs;             // (n_seqs)
    const tv_request_params *params;  // (n_seqs) borrowed until admitted
    double t_arrival_ms;
    pthread_cond_t cv;
    srv_job *next;             // hand-off queue link
};

struct srv_worker {
    tv_engine *engine;
    srv_metrics *metrics;
    pthread_t thread;
    bool has_thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool is_stopping;
    srv_job *inbox_head, *inbox_tail;
    int n_inbox;
    int n_cancels;             // cancel requests not yet applied
    int n_inflight;            // sequences accepted and not finished
    int max_inflight;
    srv_seq **active;          // (n_active, cap_active) live sequences; engine thread only
    int n_active, cap_active;
};

static void job_unref_locked(srv_job *j) {
    if (--j->refs > 0) return;
    for (int i = 0; i < j->n_seqs; i++) { free(j->seqs[i].text); free(j->seqs[i].toks); }
    free(j->seqs);
    pthread_cond_destroy(&j->cv);
    free(j);
}

// ---- engine-thread helpers (w->mu held unless noted) ----

static void seq_finish_locked(srv_worker *w, srv_seq *s, tv_finish_reason r) {
    if (s->is_finished) return;
    s->is_finished = true;
    s->finish = r;
    s->is_live = false;
    srv_job *j = s->job;
    j->has_news = true;
    w->n_inflight--;
    if (--j->n_live == 0) {
        pthread_cond_broadcast(&j->cv);
        job_unref_locked(j);   // the engine side's reference
    } else {
        pthread_cond_broadcast(&j->cv);
    }
}

static void active_remove(srv_worker *w, int i) { w->active[i] = w->active[--w->n_active]; }

static bool append_text(srv_seq *s, const char *t, size_t n) {
    if (n == 0) return true;
    if (s->len + n + 1 > s->cap) {
        size_t nc = (s->cap ? s->cap * 2 : 64) + n + 1;
        char *p = realloc(s->text, nc);
        if (!p) return false;
        s->text = p;
        s->cap = nc;
    }
    memcpy(s->text + s->len, t, n);
    s->len += n;
    s->text[s->len] = 0;
    return true;
}

static void dispatch_output(srv_worker *w, const tv_request_output *o, double now_ms) {
    int k = 0;
    while (k < w->n_active && w->active[k]->req_id != o->req_id) k++;
    if (k == w->n_active) return;  // aborted or rejected earlier: nobody listens
    srv_seq *s = w->active[k];
    srv_job *j = s->job;
    if (o->n_new > 0 && s->t_first_ms == 0) {
        s->t_first_ms = now_ms;
        srv_metrics_observe(w->metrics, SRV_H_TTFT, (now_ms - j->t_arrival_ms) / 1000.0);
    } else if (o->n_new > 0) {
        double per_token = (now_ms - s->t_last_ms) / 1000.0 / o->n_new;
        for (int i = 0; i < o->n_new; i++) srv_metrics_observe(w->metrics, SRV_H_ITL, per_token);
    }
    if (o->n_new > 0) s->t_last_ms = now_ms;
    append_text(s, o->text, o->text ? o->text_len : 0);
    if (j->want_logprobs && o->logprobs && o->n_new > 0) {
        if (s->n_toks + o->n_new > s->cap_toks) {
            int nc = s->cap_toks * 2 + o->n_new + 8;
            srv_tok *p = realloc(s->toks, (size_t)nc * sizeof *p);
            if (p) { s->toks = p; s->cap_toks = nc; }
        }
        for (int i = 0; i < o->n_new && s->n_toks < s->cap_toks; i++) {
            srv_tok *t = &s->toks[s->n_toks++];
            t->id = o->logprobs[i].id;
            t->logprob = o->logprobs[i].logprob;
            t->n_top = 0;
            if (o->top_logprobs && o->n_top > 0) {
                t->n_top = o->n_top < SRV_MAX_LOGPROBS ? o->n_top : SRV_MAX_LOGPROBS;
                memcpy(t->top, o->top_logprobs + (size_t)i * (size_t)o->n_top, (size_t)t->n_top * sizeof *t->top);
            }
        }
    }
    s->n_prompt = o->n_prompt;
    s->n_generated = o->n_generated;
    s->n_cached = o->n_cached;
    j->has_news = true;
    pthread_cond_broadcast(&j->cv);
    if (o->finish == TV_FINISH_ERROR) {
        s->error = *o->error;
        tv_log(TV_LOG_WARN, "server: request %llu failed: %s", (unsigned long long)o->req_id, o->error->msg);
    }
    if (o->finish != TV_FINISH_NONE) {
        srv_metrics_finished(w->metrics, o->finish);
    }
    if (o->finish == TV_FINISH_STOP || o->finish == TV_FINISH_LENGTH) {  // latencies of completed requests only
        double e2e = (now_ms - j->t_arrival_ms) / 1000.0;
        srv_metrics_observe(w->metrics, SRV_H_E2E, e2e);
        srv_metrics_observe(w->metrics, SRV_H_PROMPT_TOKENS, o->n_prompt);
        srv_metrics_observe(w->metrics, SRV_H_GEN_TOKENS, o->n_generated);
        if (o->n_generated > 1 && s->t_first_ms > 0)
            srv_metrics_observe(w->metrics, SRV_H_TPOT, (now_ms - s->t_first_ms) / 1000.0 / (o->n_generated - 1));
    }
    if (o->finish != TV_FINISH_NONE) {
        active_remove(w, k);
        seq_finish_locked(w, s, o->finish);
    }
}

// Room for n more active sequences (w->mu held); false when out of memory.
static bool active_reserve(srv_worker *w, int n) {
    if (w->n_active + n <= w->cap_active) return true;
    int nc = w->cap_active * 2 + n + 16;
    srv_seq **p = realloc(w->active, (size_t)nc * sizeof *p);
    if (!p) return false;
    w->active = p;
    w->cap_active = nc;
    return true;
}

// Adds every sequence of j to the engine (w->mu NOT held: the engine copies params).
static void admit(srv_worker *w, srv_job *j) {
    tv_error terr = {0};
    int added = 0;
    for (; added < j->n_seqs; added++) {
        if (tv_engine_add_request(w->engine, &j->params[added], &j->seqs[added].req_id, &terr) != TV_OK) break;
    }
    pthread_mutex_lock(&w->mu);
    bool ok = added == j->n_seqs;
    if (ok && !active_reserve(w, j->n_seqs)) ok = tv_error_set(&terr, TV_ERR_NOMEM, "server: out of memory") == TV_OK;
    if (!ok) {
        for (int i = 0; i < added; i++) tv_engine_abort(w->engine, j->seqs[i].req_id);
        int status = terr.code == TV_ERR_NOMEM ? 503 : (terr.code == TV_ERR_RANGE || terr.code == TV_ERR_INVALID) ? 400 : 500;
        srv_fail(&j->err, status, status == 400 ? "invalid_request_error" : "server_error",
                 status == 503 ? "service_unavailable" : NULL, NULL, "%s", terr.msg);
        j->state = JOB_FAILED;
        w->n_inflight -= j->n_seqs;
        for (int i = 0; i < j->n_seqs; i++) { j->seqs[i].is_finished = true; j->seqs[i].finish_taken = true; }
        j->n_live = 0;
        pthread_cond_broadcast(&j->cv);
        job_unref_locked(j);
    } else {
        srv_metrics_observe(w->metrics, SRV_H_QUEUE, (srv_time_ms() - j->t_arrival_ms) / 1000.0);
        for (int i = 0; i < j->n_seqs; i++) {
            j->seqs[i].is_live = true;
            w->active[w->n_active++] = &j->seqs[i];
        }
        j->state = JOB_ADMITTED;
        j->params = NULL;
        if (j->is_cancelled) w->n_cancels++;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

static void apply_cancels_locked(srv_worker *w, bool abort_all) {
    for (int k = 0; k < w->n_active;) {
        srv_seq *s = w->active[k];
        if (abort_all || s->job->is_cancelled) {
            tv_engine_abort(w->engine, s->req_id);
            srv_metrics_finished(w->metrics, TV_FINISH_ABORT);
            active_remove(w, k);
            seq_finish_locked(w, s, TV_FINISH_ABORT);
        } else {
            k++;
        }
    }
    w->n_cancels = 0;
}

static void publish_stats(srv_worker *w) {
    tv_engine_stats st;
    tv_engine_get_stats(w->engine, &st);
    srv_metrics_engine(w->metrics, &st, w->n_inbox);
}

static void *engine_main(void *arg) {
    srv_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    publish_stats(w);
    for (;;) {
        while (!w->is_stopping && !w->inbox_head && !w->n_cancels && !tv_engine_has_work(w->engine))
            pthread_cond_wait(&w->wake, &w->mu);
        if (w->is_stopping) break;
        srv_job *inbox = w->inbox_head;
        w->inbox_head = w->inbox_tail = NULL;
        w->n_inbox = 0;
        if (w->n_cancels) apply_cancels_locked(w, false);
        pthread_mutex_unlock(&w->mu);

        while (inbox) {
            srv_job *j = inbox;
            inbox = j->next;
            admit(w, j);
        }
        const tv_request_output *outs = NULL;
        int n_outs = 0;
        tv_error terr = {0};
        tv_status st = TV_OK;
        if (tv_engine_has_work(w->engine)) st = tv_engine_step(w->engine, &outs, &n_outs, &terr);
        double now = srv_time_ms();

        pthread_mutex_lock(&w->mu);
        if (st != TV_OK) {
            // A failed step leaves the engine's requests in an unknown state: end them all.
            tv_log(TV_LOG_ERROR, "server: engine step failed: %s", terr.msg);
            apply_cancels_locked(w, true);
        } else {
            for (int i = 0; i < n_outs; i++) dispatch_output(w, &outs[i], now);
        }
        publish_stats(w);
    }
    // Shutdown: fail what was never admitted, abort what runs.
    for (srv_job *j = w->inbox_head; j;) {
        srv_job *next = j->next;
        srv_fail(&j->err, 503, "server_error", "service_unavailable", NULL, "the server is shutting down");
        j->state = JOB_FAILED;
        w->n_inflight -= j->n_seqs;
        j->n_live = 0;
        for (int i = 0; i < j->n_seqs; i++) { j->seqs[i].is_finished = true; j->seqs[i].finish_taken = true; }
        pthread_cond_broadcast(&j->cv);
        job_unref_locked(j);
        j = next;
    }
    w->inbox_head = w->inbox_tail = NULL;
    w->n_inbox = 0;
    apply_cancels_locked(w, true);
    publish_stats(w);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

srv_worker *srv_worker_create(tv_engine *e, srv_metrics *metrics, int max_inflight, tv_error *err) {
    srv_worker *w = calloc(1, sizeof *w);
    if (!w) { tv_error_set(err, TV_ERR_NOMEM, "server: out of memory"); return NULL; }
    w->engine = e;
    w->metrics = metrics;
    w->max_inflight = max_inflight > 0 ? max_inflight : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, engine_main, w) != 0) {
        tv_error_set(err, TV_ERR_STATE, "server: cannot start the engine thread: %s", strerror(errno));
        srv_worker_free(w);
        return NULL;
    }
    w->has_thread = true;
    return w;
}

void srv_worker_shutdown(srv_worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->is_stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

void srv_worker_free(srv_worker *w) {
    if (!w) return;
    srv_worker_shutdown(w);
    if (w->has_thread) pthread_join(w->thread, NULL);
    free(w->active);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

srv_job *srv_job_submit(srv_worker *w, const tv_request_params *params, int n_seqs, bool want_logprobs,
                        double t_arrival_ms, srv_error *err) {
    if (n_seqs <= 0) { srv_fail(err, 400, "invalid_request_error", NULL, NULL, "no sequences to generate"); return NULL; }
    if (n_seqs > w->max_inflight) {
        srv_fail(err, 400, "invalid_request_error", NULL, "n",
                 "the request asks for %d sequences (n x prompts) but the server runs at most %d at once", n_seqs,
                 w->max_inflight);
        return NULL;
    }
    srv_job *j = calloc(1, sizeof *j);
    srv_seq *seqs = calloc((size_t)n_seqs, sizeof *seqs);
    if (!j || !seqs) {
        free(j);
        free(seqs);
        srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    j->w = w;
    j->refs = 2;
    j->n_seqs = j->n_live = n_seqs;
    j->seqs = seqs;
    j->params = params;
    j->want_logprobs = want_logprobs;
    j->t_arrival_ms = t_arrival_ms;
    pthread_cond_init(&j->cv, NULL);
    for (int i = 0; i < n_seqs; i++) { seqs[i].job = j; seqs[i].index = i; }

    pthread_mutex_lock(&w->mu);
    if (w->is_stopping) {
        pthread_mutex_unlock(&w->mu);
        srv_fail(err, 503, "server_error", "service_unavailable", NULL, "the server is shutting down");
        goto fail;
    }
    if (w->n_inflight + n_seqs > w->max_inflight) {
        int n = w->n_inflight;
        pthread_mutex_unlock(&w->mu);
        srv_fail(err, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                 "the server is at capacity (%d sequences in flight, limit %d); retry later", n, w->max_inflight);
        goto fail;
    }
    w->n_inflight += n_seqs;
    if (w->inbox_tail) w->inbox_tail->next = j; else w->inbox_head = j;
    w->inbox_tail = j;
    w->n_inbox++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    return j;
fail:
    pthread_cond_destroy(&j->cv);
    free(seqs);
    free(j);
    return NULL;
}

bool srv_job_wait_admitted(srv_job *j, srv_error *err) {
    srv_worker *w = j->w;
    pthread_mutex_lock(&w->mu);
    while (j->state == JOB_QUEUED) pthread_cond_wait(&j->cv, &w->mu);
    bool ok = j->state == JOB_ADMITTED;
    if (!ok && err) *err = j->err;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

bool srv_job_wait(srv_job *j, int timeout_ms) {
    srv_worker *w = j->w;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&w->mu);
    while (!j->has_news && j->state != JOB_FAILED) {
        if (pthread_cond_timedwait(&j->cv, &w->mu, &ts) == ETIMEDOUT) break;
    }
    bool news = j->has_news || j->state == JOB_FAILED;
    pthread_mutex_unlock(&w->mu);
    return news;
}

void srv_delta_clear(srv_delta *d) {
    if (!d) return;
    free(d->text);
    free(d->toks);
    memset(d, 0, sizeof *d);
}

bool srv_job_take(srv_job *j, int i, srv_delta *d) {
    memset(d, 0, sizeof *d);
    if (i < 0 || i >= j->n_seqs) return false;
    srv_worker *w = j->w;
    pthread_mutex_lock(&w->mu);
    srv_seq *s = &j->seqs[i];
    bool any = false;
    if (s->len) { d->text = s->text; d->text_len = s->len; s->text = NULL; s->len = s->cap = 0; any = true; }
    if (s->n_toks) { d->toks = s->toks; d->n_toks = s->n_toks; s->toks = NULL; s->n_toks = s->cap_toks = 0; any = true; }
    if (s->is_finished && !s->finish_taken) {
        d->finish = s->finish;
        d->error = s->error;
        s->finish_taken = true;
        any = true;
    }
    d->n_prompt = s->n_prompt;
    d->n_generated = s->n_generated;
    d->n_cached = s->n_cached;
    bool more = false;
    for (int k = 0; k < j->n_seqs && !more; k++) {
        const srv_seq *q = &j->seqs[k];
        more = q->len || q->n_toks || (q->is_finished && !q->finish_taken);
    }
    j->has_news = more;
    pthread_mutex_unlock(&w->mu);
    return any;
}

bool srv_job_done(srv_job *j) {
    srv_worker *w = j->w;
    pthread_mutex_lock(&w->mu);
    bool done = true;
    for (int k = 0; k < j->n_seqs && done; k++) {
        const srv_seq *q = &j->seqs[k];
        done = q->is_finished && q->finish_taken && !q->len && !q->n_toks;
    }
    pthread_mutex_unlock(&w->mu);
    return done;
}

void srv_job_release(srv_job *j) {
    if (!j) return;
    srv_worker *w = j->w;
    pthread_mutex_lock(&w->mu);
    if (j->n_live > 0 && !j->is_cancelled) {
        j->is_cancelled = true;
        w->n_cancels++;
        pthread_cond_signal(&w->wake);
    }
    job_unref_locked(j);
    pthread_mutex_unlock(&w->mu);
}

double srv_time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
