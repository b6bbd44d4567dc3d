// buf.h — growable buffers: a byte string and a growth helper for typed arrays. Growth doubles the
// capacity (amortized O(1) appends) with every size computation checked for overflow; a failure
// returns false / NULL and leaves the buffer as it was: nothing aborts. Memory comes from
// mem_realloc (util/alloc.h), so request-path users can be failed in tests; release it with free().
#ifndef TV_UTIL_BUF_H
#define TV_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>

// A byte string: p holds n bytes plus a NUL (p[n] == 0) once anything was reserved; {0} is empty.
typedef struct strbuf { char *p; size_t n, cap; } strbuf;

bool strbuf_reserve(strbuf *b, size_t extra);          // room for n + extra bytes and the NUL
bool strbuf_put(strbuf *b, const void *s, size_t n);   // appends n bytes (s may be NULL when n == 0)
bool strbuf_puts(strbuf *b, const char *s);            // appends a NUL-terminated string
void strbuf_free(strbuf *b);                           // frees p; b is empty again

// Makes room in the array v (elements of elem bytes, *cap of them) for at least need elements
// (need >= 1). Returns the array to use from now on (v itself when it had room) with *cap updated,
// or NULL with v and *cap untouched (out of memory, or a size that overflows).
void *array_grow(void *v, size_t *cap, size_t need, size_t elem);

#endif
