// test_buf.c — util/buf.h: appends keep the NUL and the bytes, growth is amortized (capacity at
// least doubles), a failed allocation or an overflowing size reports false / NULL and leaves the
// buffer or array exactly as it was. util/alloc.h: mem_scratch's pages are all resident when it returns.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/buf.h"

static void test_strbuf_appends(void **state) {
    (void)state;
    strbuf b = {0};
    assert_true(strbuf_reserve(&b, 0));   // an empty string that exists
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    size_t n_grow = 0, last_cap = b.cap;
    char expect[5000];
    for (int i = 0; i < 1000; i++) {
        assert_true(strbuf_puts(&b, "abcd"));
        memcpy(expect + 4 * i, "abcd", 4);
        if (b.cap != last_cap) { assert_true(b.cap >= 2 * last_cap); n_grow++; last_cap = b.cap; }
    }
    expect[4000] = 0;
    assert_int_equal(b.n, 4000);
    assert_string_equal(b.p, expect);
    assert_true(n_grow <= 7);
    assert_true(strbuf_put(&b, NULL, 0));
    assert_int_equal(b.n, 4000);
    strbuf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.n + b.cap, 0);
    strbuf_free(&b);   // twice: a no-op
}

static void test_strbuf_failure_keeps_contents(void **state) {
    (void)state;
    strbuf b = {0};
    assert_true(strbuf_puts(&b, "hello"));
    char *p = b.p;
    size_t cap = b.cap;
    char big[200];
    memset(big, 'x', sizeof big);
    mem_fault_inject(0, 1);
    assert_false(strbuf_put(&b, big, sizeof big));   // needs to grow: the allocation fails
    mem_fault_clear();
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.n, 5);
    assert_string_equal(b.p, "hello");
    assert_false(strbuf_reserve(&b, SIZE_MAX - 2));   // n + extra + NUL overflows
    assert_string_equal(b.p, "hello");
    strbuf_free(&b);
}

static void test_array_grow(void **state) {
    (void)state;
    size_t cap = 0;
    int64_t *v = NULL;
    for (size_t n = 0; n < 1000; n++) {
        int64_t *nv = array_grow(v, &cap, n + 1, sizeof *v);
        assert_non_null(nv);
        assert_true(cap >= n + 1);
        v = nv;
        v[n] = (int64_t)n * 3;
    }
    for (size_t n = 0; n < 1000; n++) assert_int_equal(v[n], (int64_t)n * 3);
    assert_ptr_equal(array_grow(v, &cap, cap, sizeof *v), v);   // room already: no change
    size_t before = cap;
    assert_null(array_grow(v, &cap, SIZE_MAX / 4, sizeof *v));   // bytes overflow size_t
    assert_int_equal(cap, before);
    mem_fault_inject(0, 1);
    assert_null(array_grow(v, &cap, cap + 1, sizeof *v));
    mem_fault_clear();
    assert_int_equal(cap, before);
    assert_int_equal(v[999], 2997);
    free(v);
}

// Pages of [p, p + n) that mincore reports resident, counting whole pages only.
static size_t resident_pages(const void *p, size_t n, size_t *n_pages) {
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1), e = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
    *n_pages = (e - a) / pg;
    unsigned char *v = malloc(*n_pages);
    assert_non_null(v);
    assert_int_equal(mincore((void *)a, e - a, v), 0);
    size_t r = 0;
    for (size_t i = 0; i < *n_pages; i++) r += v[i] & 1;
    free(v);
    return r;
}

static void test_scratch_resident(void **state) {
    (void)state;
    const size_t n = 8u << 20;
    size_t pages;
    // the check can fail: a fresh anonymous mapping has no resident page until written
    void *fresh = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(fresh != MAP_FAILED);
    assert_int_equal(resident_pages(fresh, n, &pages), 0);
    assert_true(pages >= 2047);
    munmap(fresh, n);
    uint8_t *s = mem_scratch(n);
    assert_non_null(s);
    const size_t resident = resident_pages(s, n, &pages);
    assert_int_equal(resident, pages);
    assert_true(pages >= 2047);
    memset(s, 0x5A, n);   // usable to its last byte
    assert_int_equal(s[n - 1], 0x5A);
    free(s);
    uint8_t *small = mem_scratch(100), *none = mem_scratch(0);
    assert_non_null(small);
    assert_non_null(none);
    small[99] = 1;
    free(small);
    free(none);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strbuf_appends),
        cmocka_unit_test(test_strbuf_failure_keeps_contents),
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_scratch_resident),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
