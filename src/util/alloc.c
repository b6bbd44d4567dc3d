// alloc.c — request-path allocation wrappers and their fault-injection hook.
#include "util/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

bool mem_populate(const void *p, size_t n, bool write) {
#if defined(MADV_POPULATE_READ) && defined(MADV_POPULATE_WRITE)
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || !n) return false;
    const uintptr_t a = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    return madvise((void *)a, (uintptr_t)p + n - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0;
#else
    (void)p;
    (void)n;
    (void)write;
    return false;
#endif
}

void *mem_scratch(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    const long pg = sysconf(_SC_PAGESIZE);
    if (!p || pg <= 0 || n < 16 * (size_t)pg) return p;   // small: faults are few, and the page may be shared
    if (!mem_populate(p, n, true))
        for (size_t i = 0; i < n; i += (size_t)pg) ((volatile uint8_t *)p)[i] = 0;
    return p;
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
