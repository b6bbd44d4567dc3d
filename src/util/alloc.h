// alloc.h — allocation on the request path (engine steps, scheduler, sampler, detokenizer, server
// replies), with a fault-injection hook so tests can make any one of those allocations fail.
//
// Contract: mem_malloc/mem_calloc/mem_realloc behave as malloc/calloc/realloc (NULL on failure, a
// failed realloc leaves the old block untouched); memory is released with free(). Model loading
// and engine creation use plain malloc: the hook is about surviving failures while serving.
#ifndef TV_UTIL_ALLOC_H
#define TV_UTIL_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *mem_malloc(size_t n);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s);

// Maps every page of [p, p + n) into the page tables in one call (MADV_POPULATE_READ, or _WRITE when
// write) instead of a fault per 4 KiB page at first touch. False where the kernel lacks it (Linux
// < 5.14) or refuses: the pages then fault on first touch as before.
bool mem_populate(const void *p, size_t n, bool write);

// Scratch the forward pass writes on every request (activation rows, matmul workspaces): malloc,
// then every page of it mapped now, so the first request does not take the buffers' page faults. A qwen3moe-24l pp512 took
// 27-40k of them in its first call, 3-8% of that call. Contents are unspecified; free() releases.
// For engine creation, like plain malloc (no fault-injection hook). NULL on failure.
void *mem_scratch(size_t n);

// ---- test hook (thread-safe; never armed outside tests) ----
// After n_ok more allocations through this module succeed, the next n_fail fail (n_fail < 0: every
// later one) until mem_fault_clear().
void mem_fault_inject(long n_ok, long n_fail);
void mem_fault_clear(void);
// Allocations attempted through this module since the process started (failed ones included).
unsigned long mem_n_allocs(void);

#endif
