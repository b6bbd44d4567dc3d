// buf.c — growable buffers (see buf.h).
#include "util/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define MIN_BYTES 64
#define MIN_ELEMS 16

void *array_grow(void *v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return v;
    size_t c = *cap >= MIN_ELEMS ? *cap : MIN_ELEMS;
    while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
    if (elem && c > SIZE_MAX / elem) return NULL;
    void *q = mem_realloc(v, c * elem);
    if (!q) return NULL;
    *cap = c;
    return q;
}

bool strbuf_reserve(strbuf *b, size_t extra) {
    if (extra > SIZE_MAX - 1 - b->n) return false;
    size_t need = b->n + extra + 1;   // + NUL
    if (need <= b->cap) return true;
    size_t c = b->cap >= MIN_BYTES ? b->cap : MIN_BYTES;
    while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
    char *p = mem_realloc(b->p, c);
    if (!p) return false;
    if (!b->p) p[0] = 0;
    b->p = p;
    b->cap = c;
    return true;
}

bool strbuf_put(strbuf *b, const void *s, size_t n) {
    if (!strbuf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

bool strbuf_puts(strbuf *b, const char *s) { return strbuf_put(b, s, strlen(s)); }

void strbuf_free(strbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
