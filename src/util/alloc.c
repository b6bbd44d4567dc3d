// alloc.c — request-path allocation wrappers and their fault-injection hook.
#include "util/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong g_n_allocs;
static atomic_bool g_armed;            // fast path: false = never fail
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_n_ok, g_n_fail;          // guarded by g_mu while armed

// True when this allocation is to fail (counts it either way).
static bool fault_now(void) {
    atomic_fetch_add_explicit(&g_n_allocs, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&g_armed, memory_order_acquire)) return false;
    bool fail = false;
    pthread_mutex_lock(&g_mu);
    if (g_n_ok > 0) {
        g_n_ok--;
    } else if (g_n_fail != 0) {
        fail = true;
        if (g_n_fail > 0 && --g_n_fail == 0) atomic_store(&g_armed, false);
    }
    pthread_mutex_unlock(&g_mu);
    return fail;
}

void *mem_malloc(size_t n) { return fault_now() ? NULL : malloc(n); }
void *mem_calloc(size_t n, size_t size) { return fault_now() ? NULL : calloc(n, size); }
void *mem_realloc(void *p, size_t n) { return fault_now() ? NULL : realloc(p, n); }

char *mem_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mem_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void mem_fault_inject(long n_ok, long n_fail) {
    pthread_mutex_lock(&g_mu);
    g_n_ok = n_ok > 0 ? n_ok : 0;
    g_n_fail = n_fail;
    atomic_store(&g_armed, n_fail != 0);
    pthread_mutex_unlock(&g_mu);
}

void mem_fault_clear(void) { mem_fault_inject(0, 0); }

unsigned long mem_n_allocs(void) { return atomic_load(&g_n_allocs); }
