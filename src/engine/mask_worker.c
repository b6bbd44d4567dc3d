// mask_worker.c — the structured-output mask thread (see mask_worker.h).
#include "engine/mask_worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "structured/matcher.h"
#include "util/status.h"

struct mask_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t has_job, job_done;
    struct matcher *const *m;   // the job in flight: (n) each
    uint32_t *const *mask;
    tv_status *st;
    int n;
    bool pending, quit;
};

static void *worker_main(void *arg) {
    mask_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->has_job, &w->mu);
        if (w->quit) break;
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < w->n; i++) w->st[i] = matcher_fill_mask(w->m[i], w->mask[i]);
        pthread_mutex_lock(&w->mu);
        w->pending = false;
        pthread_cond_signal(&w->job_done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

mask_worker *mask_worker_create(tv_error *err) {
    mask_worker *w = calloc(1, sizeof *w);
    if (!w) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->has_job, NULL);
    pthread_cond_init(&w->job_done, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
        pthread_cond_destroy(&w->job_done);
        pthread_cond_destroy(&w->has_job);
        pthread_mutex_destroy(&w->mu);
        free(w);
        err_fail(err, TV_ERR_NOMEM, "cannot start the structured-output mask thread");
        return NULL;
    }
    return w;
}

void mask_worker_free(mask_worker *w) {
    if (!w) return;
    mask_worker_wait(w);
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->has_job);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->job_done);
    pthread_cond_destroy(&w->has_job);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void mask_worker_start(mask_worker *w, struct matcher *const *m, uint32_t *const *mask, tv_status *st, int n) {
    pthread_mutex_lock(&w->mu);
    w->m = m;
    w->mask = mask;
    w->st = st;
    w->n = n;
    w->pending = true;
    pthread_cond_signal(&w->has_job);
    pthread_mutex_unlock(&w->mu);
}

void mask_worker_wait(mask_worker *w) {
    pthread_mutex_lock(&w->mu);
    while (w->pending) pthread_cond_wait(&w->job_done, &w->mu);
    pthread_mutex_unlock(&w->mu);
}
