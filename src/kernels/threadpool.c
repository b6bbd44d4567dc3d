// threadpool.c — persistent worker threads with a spin-then-sleep fork/join.
//
// pool_run publishes (fn, arg) by bumping a generation counter; workers spin on it (cheap wake-up
// between the back-to-back matmuls and row-wise ops of a forward pass: ~450 pool_runs per decode
// step of a 26-layer model), then sleep on a condition variable. Completion is an atomic counter
// the caller (thread 0) spins on the same way, then sleeps until the last worker signals.
// The spin lasts POOL_SPIN_NS of wall time, yielding the CPU every few microseconds:
//  - on a virtual machine a thread that sleeps idles its vCPU, and waking it again (an IPI through
//    the hypervisor, which may have given the core to another guest meanwhile) costs tens to
//    hundreds of microseconds. A forward pass whose threads fall asleep at every join pays that
//    hundreds of times per step: a 70 us spin made batched decode swing 1.7x run to run on a quiet
//    2-vCPU VM (the step time depended on how often the partner was asleep). A spin that outlasts
//    every gap inside a forward pass (an unbalanced matmul half, the caller's glue code) keeps
//    both threads awake through the step; they sleep between steps (sampling, scheduling);
//  - on a shared or oversubscribed machine the partner may be descheduled: sched_yield() in the
//    spin hands this CPU to it (or to anyone else runnable) instead of burning the time slice
//    it needs. With nothing else runnable it returns at once and the spin goes on.
// pool_run_any is for jobs that any subset of the threads completes (work claimed from shared
// counters: the decode matmul's stealing, the expert items): when the caller has finished the job,
// it closes the generation, and a worker that has not entered it by then skips it instead of being
// waited for. On a shared machine or a VM whose other vCPU was descheduled, the caller otherwise
// finished every row by stealing and then waited for the partner to be scheduled again merely to
// report that there was nothing left (under load 10, 2 of every 3 ms of a decode matmul's join).
// One caller at a time: a pool is driven by one thread (the engine's step loop).
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/kernels.h"
#include "util/status.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

// Spin budget before sleeping (wall time), and pauses between clock reads / yields (~2-4 us).
enum { POOL_SPIN_NS = 2000000, POOL_SPIN_PAUSES = 32 };
#define POOL_CLOSED ((uint64_t)1 << 31)   // gate: the caller finished a pool_run_any job; no more entries

static int64_t pool_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Spins until *word != old (want_change) or *word >= old (!want_change) or the budget is spent.
// Returns whether the condition holds.
static bool pool_spin(_Atomic unsigned *word, unsigned old, bool want_change) {
    const int64_t t_end = pool_now_ns() + POOL_SPIN_NS;
    for (;;) {
        for (int i = 0; i < POOL_SPIN_PAUSES; i++) {
            const unsigned v = atomic_load_explicit(word, memory_order_acquire);
            if (want_change ? v != old : v >= old) return true;
            cpu_relax();
        }
        if (pool_now_ns() > t_end) return false;
        sched_yield();
    }
}

typedef struct pool_worker {
    tv_pool *pool;
    int ith;
    pthread_t thread;
} pool_worker;

struct tv_pool {
    int n_threads;                 // including the caller
    pool_worker *workers;          // n_threads - 1
    int n_started;                 // workers actually created
    void (*fn)(void *arg, int ith, int nth);
    void *arg;
    _Atomic unsigned gen;          // bumped once per pool_run
    _Atomic uint64_t gate;         // gen << 32 | POOL_CLOSED | workers that entered generation gen
    _Atomic unsigned n_done;       // workers finished with the current generation
    _Atomic bool stop;
    _Atomic bool caller_waiting;   // the caller sleeps on done_cv (under mu)
    pthread_mutex_t mu;
    pthread_cond_t cv;             // workers wait here for a new generation
    pthread_cond_t done_cv;        // the caller waits here for n_done
};

static void *pool_main(void *p) {
    pool_worker *w = p;
    tv_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = seen;
        if (pool_spin(&pool->gen, seen, true)) {
            g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        } else {
            pthread_mutex_lock(&pool->mu);
            while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen &&
                   !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = g;
        // enter generation g, unless the caller closed it (or has moved on: g was a closed one)
        uint64_t gw = atomic_load_explicit(&pool->gate, memory_order_acquire);
        bool is_in = false;
        while (!is_in && (unsigned)(gw >> 32) == g && !(gw & POOL_CLOSED))
            is_in = atomic_compare_exchange_weak_explicit(&pool->gate, &gw, gw + 1, memory_order_acq_rel,
                                                          memory_order_acquire);
        if (!is_in) continue;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        atomic_fetch_add(&pool->n_done, 1);
        if (atomic_load(&pool->caller_waiting)) {
            pthread_mutex_lock(&pool->mu);   // the caller checks n_done under mu before it sleeps
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

tv_pool *pool_create(int n_threads, tv_error *err) {
    if (n_threads < 1 || n_threads > 1024) {
        err_fail(err, TV_ERR_INVALID, "thread pool: bad thread count %d", n_threads);
        return NULL;
    }
    tv_pool *pool = calloc(1, sizeof *pool);
    if (!pool) goto nomem;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) goto nomem;
        for (int i = 0; i < n_threads - 1; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].ith = i + 1;
            if (pthread_create(&pool->workers[i].thread, NULL, pool_main, &pool->workers[i]) != 0) {
                err_fail(err, TV_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i + 1, n_threads);
                goto fail;
            }
            pool->n_started++;
        }
    }
    return pool;
nomem:
    err_fail(err, TV_ERR_NOMEM, "thread pool: out of memory");
fail:
    pool_free(pool);
    return NULL;
}

void pool_free(tv_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->gen, 1);   // ends a spinning worker's wait too
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_started; i++) pthread_join(pool->workers[i].thread, NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    pthread_cond_destroy(&pool->done_cv);
    free(pool->workers);
    free(pool);
}

int pool_size(const tv_pool *pool) { return pool ? pool->n_threads : 1; }

static void pool_dispatch(tv_pool *pool, void (*fn)(void *arg, int ith, int nth), void *arg, bool is_any) {
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->n_done, 0, memory_order_relaxed);
    const unsigned g = atomic_load_explicit(&pool->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool->gate, (uint64_t)g << 32, memory_order_relaxed);   // open, nobody in
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);                // publishes all of the above
    pthread_mutex_lock(&pool->mu);     // wakes sleepers; a worker between its check and its wait
    pthread_cond_broadcast(&pool->cv); // holds the mutex, so the wake-up cannot be lost
    pthread_mutex_unlock(&pool->mu);
    fn(arg, 0, pool->n_threads);
    // pool_run: every worker enters and is waited for; pool_run_any: those that entered before the
    // gate closed (the count in the gate is final once it is closed)
    const unsigned want = is_any ? (unsigned)(atomic_fetch_or(&pool->gate, POOL_CLOSED) & (POOL_CLOSED - 1))
                                 : (unsigned)pool->n_threads - 1;
    if (pool_spin(&pool->n_done, want, false)) return;
    // Sleep. caller_waiting is set before n_done is re-checked, both seq_cst, so a worker that
    // finishes after the check sees the flag and signals under mu, which we hold until cond_wait.
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->caller_waiting, true);
    while (atomic_load(&pool->n_done) < want) pthread_cond_wait(&pool->done_cv, &pool->mu);
    atomic_store(&pool->caller_waiting, false);
    pthread_mutex_unlock(&pool->mu);
}

void pool_run(tv_pool *pool, void (*fn)(void *arg, int ith, int nth), void *arg) {
    if (!pool || pool->n_threads == 1) fn(arg, 0, 1);
    else pool_dispatch(pool, fn, arg, false);
}

void pool_run_any(tv_pool *pool, void (*fn)(void *arg, int ith, int nth), void *arg) {
    if (!pool || pool->n_threads == 1) fn(arg, 0, 1);
    else pool_dispatch(pool, fn, arg, true);
}
