// test_gguf.c — GGUF reader/writer: round trips of every value type and several tensor types,
// the writer's exact bytes against a file assembled by hand from the spec, a corpus of hostile
// files built byte by byte here (each must fail with a message naming the file, the problem and
// the offset), truncation at every byte offset, byte flips (no crash), and llama.cpp's real
// vocab files from ../shared (skipped when absent).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "util/status.h"

// ---- a little-endian byte builder (independent of the writer under test) ----
typedef struct { uint8_t *p; size_t n, cap; } buf;

static void b_bytes(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u8(buf *b, uint8_t x) { b_bytes(b, &x, 1); }
static void b_u32(buf *b, uint32_t x) { uint8_t v[4] = { x, x >> 8, x >> 16, x >> 24 }; b_bytes(b, v, 4); }
static void b_u64(buf *b, uint64_t x) { b_u32(b, (uint32_t)x); b_u32(b, (uint32_t)(x >> 32)); }
static void b_str(buf *b, const char *s) { b_u64(b, strlen(s)); b_bytes(b, s, strlen(s)); }
static void b_hdr(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_bytes(b, "GGUF", 4); b_u32(b, version); b_u64(b, n_tensors); b_u64(b, n_kv);
}
static void b_kv_u32(buf *b, const char *key, uint32_t v) { b_str(b, key); b_u32(b, GGUF_TYPE_UINT32); b_u32(b, v); }
static void b_tinfo(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    b_str(b, name); b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type); b_u64(b, off);
}
static void b_pad(buf *b, size_t align) { while (b->n % align) b_u8(b, 0); }
static void b_zeros(buf *b, size_t n) { while (n--) b_u8(b, 0); }

// Opens an exact-size heap copy (so ASan sees any over-read) and expects failure with code and
// every given substring in the message (NULL-terminated list).
static void expect_fail_v(const uint8_t *p, size_t n, tv_status code, va_list ap) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    tv_error err = { 0 };
    gguf_ctx *ctx = gguf_open_memory(copy, n, "bad.gguf", &err);
    if (ctx) { gguf_close(ctx); free(copy); fail_msg("expected a failure, the file loaded"); }
    if (code != TV_OK && err.code != code) fail_msg("expected code %d, got %d: %s", code, err.code, err.msg);
    if (!strstr(err.msg, "bad.gguf")) fail_msg("message does not name the file: %s", err.msg);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err.msg, s)) fail_msg("message lacks '%s': %s", s, err.msg);
    free(copy);
}
static void expect_fail(const buf *b, tv_status code, ...) {
    va_list ap;
    va_start(ap, code);
    expect_fail_v(b->p, b->n, code, ap);
    va_end(ap);
}

// Distinct buffer per call (a small ring), so two paths can be alive at once.
static char *tmp_path(const char *tag) {
    static char ring[4][512];
    static int next;
    char *path = ring[next++ % 4];
    snprintf(path, 512, "%s/test_gguf_%s_%ld.gguf", TV_BINARY_DIR, tag, (long)getpid());
    return path;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)sz + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

// ---- the writer against bytes assembled from the spec ----
static void test_writer_exact_bytes(void **state) {
    (void)state;
    buf e = { 0 };
    b_hdr(&e, 3, 1, 2);
    b_kv_u32(&e, "a", 7);
    b_str(&e, "s"); b_u32(&e, GGUF_TYPE_STRING); b_str(&e, "hi");
    uint64_t ne[1] = { 2 };
    b_tinfo(&e, "t", 1, ne, 0 /* F32 */, 0);
    b_pad(&e, 32);
    float data[2] = { 1.0f, -2.5f };
    b_bytes(&e, data, sizeof data);

    gguf_writer *w = gguf_writer_create();
    gguf_set_u32(w, "a", 7);
    gguf_set_str(w, "s", "hi");
    tv_error err = { 0 };
    int64_t wne[1] = { 2 };
    assert_int_equal(gguf_add_tensor(w, "t", TV_TYPE_F32, 1, wne, data, &err), TV_OK);
    const char *path = tmp_path("exact");
    assert_int_equal(gguf_writer_write(w, path, &err), TV_OK);
    gguf_writer_free(w);
    size_t n;
    uint8_t *got = slurp(path, &n);
    assert_int_equal(n, e.n);
    assert_memory_equal(got, e.p, n);
    free(got);
    unlink(path);
    free(e.p);
}

// ---- round trip of every value type, nested arrays, several tensor types, two alignments ----
static void roundtrip(size_t alignment) {
    gguf_writer *w = gguf_writer_create();
    assert_non_null(w);
    if (alignment != GGUF_DEFAULT_ALIGNMENT) gguf_set_u32(w, "general.alignment", (uint32_t)alignment);
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u32(w, "k.u32", 4000000000u);
    gguf_set_i32(w, "k.i32", -123456);
    gguf_set_u64(w, "k.u64", 0xfedcba9876543210ull);
    gguf_set_f32(w, "k.f32", 0.25f);
    gguf_set_bool(w, "k.bool", true);
    gguf_set_str(w, "k.str.empty", "");
    gguf_value v = { .type = GGUF_TYPE_UINT8, .v.u = 200 };
    gguf_set_value(w, "k.u8", &v);
    v = (gguf_value){ .type = GGUF_TYPE_INT8, .v.i = -100 };
    gguf_set_value(w, "k.i8", &v);
    v = (gguf_value){ .type = GGUF_TYPE_UINT16, .v.u = 65000 };
    gguf_set_value(w, "k.u16", &v);
    v = (gguf_value){ .type = GGUF_TYPE_INT16, .v.i = -32000 };
    gguf_set_value(w, "k.i16", &v);
    v = (gguf_value){ .type = GGUF_TYPE_INT64, .v.i = -((int64_t)1 << 60) };
    gguf_set_value(w, "k.i64", &v);
    v = (gguf_value){ .type = GGUF_TYPE_FLOAT64, .v.f = 3.141592653589793 };
    gguf_set_value(w, "k.f64", &v);
    gguf_set_u32(w, "k.replaced", 1);
    gguf_set_u32(w, "k.replaced", 2);   // replaces, keeps position

    // numeric arrays of every element type
    uint8_t a_u8[3] = { 1, 2, 255 };
    int8_t a_i8[3] = { -1, 0, 127 };
    uint16_t a_u16[2] = { 1, 65535 };
    int16_t a_i16[2] = { -32768, 7 };
    uint32_t a_u32[2] = { 0, 0xffffffffu };
    int32_t a_i32[4] = { 1, -2, 3, -4 };
    float a_f32[3] = { 0.5f, -1.5f, 1e30f };
    uint8_t a_bool[3] = { 1, 0, 1 };
    uint64_t a_u64[2] = { 1, 0xffffffffffffffffull };
    int64_t a_i64[2] = { -5, 5 };
    double a_f64[2] = { 1e-300, -2.0 };
    gguf_set_arr_data(w, "a.u8", GGUF_TYPE_UINT8, a_u8, 3);
    gguf_set_arr_data(w, "a.i8", GGUF_TYPE_INT8, a_i8, 3);
    gguf_set_arr_data(w, "a.u16", GGUF_TYPE_UINT16, a_u16, 2);
    gguf_set_arr_data(w, "a.i16", GGUF_TYPE_INT16, a_i16, 2);
    gguf_set_arr_data(w, "a.u32", GGUF_TYPE_UINT32, a_u32, 2);
    gguf_set_arr_data(w, "a.i32", GGUF_TYPE_INT32, a_i32, 4);
    gguf_set_arr_data(w, "a.f32", GGUF_TYPE_FLOAT32, a_f32, 3);
    gguf_set_arr_data(w, "a.bool", GGUF_TYPE_BOOL, a_bool, 3);
    gguf_set_arr_data(w, "a.u64", GGUF_TYPE_UINT64, a_u64, 2);
    gguf_set_arr_data(w, "a.i64", GGUF_TYPE_INT64, a_i64, 2);
    gguf_set_arr_data(w, "a.f64", GGUF_TYPE_FLOAT64, a_f64, 2);
    gguf_set_arr_data(w, "a.empty", GGUF_TYPE_INT32, NULL, 0);
    const char *strs[4] = { "hello", "", "\xe2\x96\x81world", "x" };
    gguf_set_arr_str(w, "a.str", strs, NULL, 4);
    const char nul_str[3] = { 'a', 0, 'b' };
    const char *with_nul[1] = { nul_str };
    uint64_t lens[1] = { 3 };
    gguf_set_arr_str(w, "a.str.nul", with_nul, lens, 1);

    // nested: [[1,2],[3]] of i32, [["a"],["b","c"]] of strings, and three levels [[[9]]]
    int32_t n1[2] = { 1, 2 }, n2[1] = { 3 };
    gguf_value inner[2] = {
        { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT32, .arr_n = 2, .arr_data = n1 },
        { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT32, .arr_n = 1, .arr_data = n2 },
    };
    gguf_value outer = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 2, .arr_items = inner };
    gguf_set_value(w, "n.i32", &outer);
    gguf_value sa[1] = { { .type = GGUF_TYPE_STRING, .v.s = { "a", 1 } } };
    gguf_value sb[2] = { { .type = GGUF_TYPE_STRING, .v.s = { "b", 1 } }, { .type = GGUF_TYPE_STRING, .v.s = { "cc", 2 } } };
    gguf_value sinner[2] = {
        { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING, .arr_n = 1, .arr_items = sa },
        { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING, .arr_n = 2, .arr_items = sb },
    };
    gguf_value souter = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 2, .arr_items = sinner };
    gguf_set_value(w, "n.str", &souter);
    int32_t nine = 9;
    gguf_value l3 = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT32, .arr_n = 1, .arr_data = &nine };
    gguf_value l2 = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 1, .arr_items = &l3 };
    gguf_value l1 = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 1, .arr_items = &l2 };
    gguf_set_value(w, "n.deep", &l1);

    // tensors: sizes from GGUF's block geometry (bytes per block / elements per block)
    struct { const char *name; tv_type type; int n_dims; int64_t ne[4]; size_t nbytes; } T[] = {
        { "f32", TV_TYPE_F32, 2, { 5, 3, 1, 1 }, 5 * 3 * 4 },
        { "f16", TV_TYPE_F16, 1, { 7, 1, 1, 1 }, 14 },
        { "bf16", TV_TYPE_BF16, 3, { 4, 2, 2, 1 }, 32 },
        { "q8_0", TV_TYPE_Q8_0, 2, { 64, 3, 1, 1 }, 2 * 34 * 3 },
        { "q4_0", TV_TYPE_Q4_0, 1, { 32, 1, 1, 1 }, 18 },
        { "q4_k", TV_TYPE_Q4_K, 2, { 256, 2, 1, 1 }, 144 * 2 },
        { "q6_k", TV_TYPE_Q6_K, 4, { 256, 1, 1, 2 }, 210 * 2 },
        { "q5_k_unsupported", TV_TYPE_Q5_K, 1, { 256, 1, 1, 1 }, 176 },
        { "i32", TV_TYPE_I32, 1, { 3, 1, 1, 1 }, 12 },
    };
    enum { NT = sizeof T / sizeof T[0] };
    uint8_t *data[NT];
    tv_error err = { 0 };
    for (int i = 0; i < NT; i++) {
        data[i] = malloc(T[i].nbytes);
        for (size_t k = 0; k < T[i].nbytes; k++) data[i][k] = (uint8_t)(k * 31 + i * 7 + 1);
        assert_int_equal(gguf_add_tensor(w, T[i].name, T[i].type, T[i].n_dims, T[i].ne, data[i], &err), TV_OK);
    }
    const char *path = tmp_path(alignment == 64 ? "rt64" : "rt32");
    if (gguf_writer_write(w, path, &err) != TV_OK) fail_msg("write: %s", err.msg);
    gguf_writer_free(w);

    gguf_ctx *c = gguf_open(path, &err);
    if (!c) fail_msg("open: %s", err.msg);
    assert_int_equal(gguf_version(c), 3);
    assert_int_equal(gguf_alignment(c), alignment);
    assert_int_equal(gguf_data_offset(c) % alignment, 0);
    int64_t i64;
    double f;
    bool b;
    gguf_str s;
    assert_true(gguf_get_str(c, "general.architecture", &s));
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    assert_true(gguf_get_int(c, "k.u32", &i64)); assert_int_equal(i64, 4000000000ll);
    assert_true(gguf_get_int(c, "k.i32", &i64)); assert_int_equal(i64, -123456);
    assert_false(gguf_get_int(c, "k.u64", &i64));   // does not fit in int64
    assert_int_equal(gguf_get(c, "k.u64")->v.u, 0xfedcba9876543210ull);
    assert_true(gguf_get_float(c, "k.f32", &f)); assert_true(f == 0.25);
    assert_true(gguf_get_bool(c, "k.bool", &b)); assert_true(b);
    assert_true(gguf_get_str(c, "k.str.empty", &s)); assert_int_equal(s.len, 0);
    assert_true(gguf_get_int(c, "k.u8", &i64)); assert_int_equal(i64, 200);
    assert_true(gguf_get_int(c, "k.i8", &i64)); assert_int_equal(i64, -100);
    assert_true(gguf_get_int(c, "k.u16", &i64)); assert_int_equal(i64, 65000);
    assert_true(gguf_get_int(c, "k.i16", &i64)); assert_int_equal(i64, -32000);
    assert_true(gguf_get_int(c, "k.i64", &i64)); assert_int_equal(i64, -((int64_t)1 << 60));
    assert_true(gguf_get_float(c, "k.f64", &f)); assert_true(f == 3.141592653589793);
    assert_true(gguf_get_float(c, "k.i32", &f)); assert_true(f == -123456.0);   // ints convert to float
    assert_false(gguf_get_str(c, "k.u32", &s));                                  // wrong type
    assert_false(gguf_get_int(c, "no.such.key", &i64));
    assert_true(gguf_get_int(c, "k.replaced", &i64)); assert_int_equal(i64, 2);
    // key order is the order of first set
    int64_t n_kv = gguf_n_kv(c);
    assert_int_equal(n_kv, 31 + (alignment != GGUF_DEFAULT_ALIGNMENT));
    int64_t first = alignment != GGUF_DEFAULT_ALIGNMENT;
    assert_string_equal(gguf_kv_key(c, first), "general.architecture");
    assert_string_equal(gguf_kv_key(c, first + 13), "k.replaced");

    const gguf_value *a;
    a = gguf_get(c, "a.u8"); assert_int_equal(a->arr_n, 3); assert_int_equal(gguf_arr_int(a, 2), 255);
    a = gguf_get(c, "a.i8"); assert_int_equal(gguf_arr_int(a, 0), -1); assert_int_equal(gguf_arr_int(a, 2), 127);
    a = gguf_get(c, "a.u16"); assert_int_equal(gguf_arr_int(a, 1), 65535);
    a = gguf_get(c, "a.i16"); assert_int_equal(gguf_arr_int(a, 0), -32768);
    a = gguf_get(c, "a.u32"); assert_int_equal(gguf_arr_int(a, 1), 0xffffffffll);
    a = gguf_get(c, "a.i32"); assert_int_equal(a->arr_type, GGUF_TYPE_INT32);
    for (int i = 0; i < 4; i++) assert_int_equal(gguf_arr_int(a, (uint64_t)i), a_i32[i]);
    a = gguf_get(c, "a.f32"); assert_true(gguf_arr_float(a, 1) == -1.5); assert_true(gguf_arr_float(a, 2) == (double)1e30f);
    assert_int_equal(gguf_arr_int(a, 1), -1);          // truncates toward zero
    assert_true(gguf_arr_int(a, 2) == INT64_MAX);      // saturates (no UB on out-of-range floats)
    a = gguf_get(c, "a.bool"); assert_int_equal(gguf_arr_int(a, 0), 1); assert_int_equal(gguf_arr_int(a, 1), 0);
    a = gguf_get(c, "a.u64"); assert_true(gguf_arr_float(a, 1) == 18446744073709551615.0);
    a = gguf_get(c, "a.i64"); assert_int_equal(gguf_arr_int(a, 0), -5);
    a = gguf_get(c, "a.f64"); assert_true(gguf_arr_float(a, 0) == 1e-300);
    a = gguf_get(c, "a.empty"); assert_int_equal(a->type, GGUF_TYPE_ARRAY); assert_int_equal(a->arr_n, 0);
    a = gguf_get(c, "a.str");
    assert_int_equal(a->arr_type, GGUF_TYPE_STRING);
    assert_int_equal(a->arr_n, 4);
    for (int i = 0; i < 4; i++) {
        gguf_str e = gguf_arr_str(a, (uint64_t)i);
        assert_int_equal(e.len, strlen(strs[i]));
        assert_memory_equal(e.ptr, strs[i], e.len);
    }
    a = gguf_get(c, "a.str.nul");
    assert_int_equal(gguf_arr_str(a, 0).len, 3);
    assert_memory_equal(gguf_arr_str(a, 0).ptr, nul_str, 3);
    a = gguf_get(c, "n.i32");
    assert_int_equal(a->arr_type, GGUF_TYPE_ARRAY);
    assert_int_equal(a->arr_n, 2);
    assert_int_equal(a->arr_items[0].arr_n, 2);
    assert_int_equal(gguf_arr_int(&a->arr_items[0], 1), 2);
    assert_int_equal(gguf_arr_int(&a->arr_items[1], 0), 3);
    a = gguf_get(c, "n.str");
    assert_int_equal(a->arr_items[1].arr_n, 2);
    assert_memory_equal(gguf_arr_str(&a->arr_items[1], 1).ptr, "cc", 2);
    a = gguf_get(c, "n.deep");
    assert_int_equal(gguf_arr_int(&a->arr_items[0].arr_items[0], 0), 9);

    assert_int_equal(gguf_n_tensors(c), NT);
    for (int i = 0; i < NT; i++) {
        const gguf_tensor_info *t = gguf_find_tensor(c, T[i].name);
        assert_non_null(t);
        assert_ptr_equal(t, gguf_tensor(c, i));
        assert_int_equal(t->type, T[i].type);
        assert_int_equal(t->n_dims, T[i].n_dims);
        for (int d = 0; d < 4; d++) assert_int_equal(t->ne[d], T[i].ne[d]);
        assert_int_equal(t->nbytes, T[i].nbytes);
        assert_int_equal(t->offset % alignment, 0);
        assert_memory_equal(t->data, data[i], T[i].nbytes);
        free(data[i]);
    }
    assert_null(gguf_find_tensor(c, "nope"));

    // deep copy of every parsed value into a second writer reproduces the same metadata
    gguf_writer *w2 = gguf_writer_create();
    for (int64_t i = 0; i < gguf_n_kv(c); i++) gguf_set_value(w2, gguf_kv_key(c, i), gguf_kv_value(c, i));
    const char *path2 = tmp_path("copy");
    assert_int_equal(gguf_writer_write(w2, path2, &err), TV_OK);
    gguf_writer_free(w2);
    gguf_ctx *c2 = gguf_open(path2, &err);
    assert_non_null(c2);
    assert_int_equal(gguf_n_kv(c2), gguf_n_kv(c));
    // the metadata bytes are identical: file 2 has no tensors, so its kv section ends the file
    size_t n1b, n2b;
    uint8_t *f1 = slurp(path, &n1b), *f2 = slurp(path2, &n2b);
    assert_true(n2b < n1b);
    assert_memory_equal(f1 + 24, f2 + 24, n2b - 24);
    free(f1);
    free(f2);
    gguf_close(c2);
    gguf_close(c);
    unlink(path);
    unlink(path2);
}

static void test_roundtrip_align32(void **state) { (void)state; roundtrip(32); }
static void test_roundtrip_align64(void **state) { (void)state; roundtrip(64); }

// ---- streamed tensors ----
typedef struct { int64_t next_row; int calls; } stream_state;
static tv_status fill_rows(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    stream_state *st = user;
    if (row0 != st->next_row) return err_fail(err, TV_ERR_STATE, "rows out of order");
    float *y = dst;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t k = 0; k < 4096; k++) y[r * 4096 + k] = (float)((row0 + r) * 10000 + k);
    st->next_row = row0 + n_rows;
    st->calls++;
    return TV_OK;
}
static tv_status fill_fail(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)user; (void)row0; (void)n_rows; (void)dst;
    return err_fail(err, TV_ERR_INVALID, "source says no");
}

static void test_stream_source(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_create();
    stream_state st = { 0 };
    tv_error err = { 0 };
    int64_t ne[2] = { 4096, 1000 };   // 16 MB: more than one 8 MiB chunk
    assert_int_equal(gguf_add_tensor_source(w, "big", TV_TYPE_F32, 2, ne, fill_rows, &st, &err), TV_OK);
    const char *path = tmp_path("stream");
    assert_int_equal(gguf_writer_write(w, path, &err), TV_OK);
    assert_true(st.calls >= 2);
    assert_int_equal(st.next_row, 1000);
    gguf_ctx *c = gguf_open(path, &err);
    assert_non_null(c);
    const float *y = gguf_find_tensor(c, "big")->data;
    assert_true(y[0] == 0.0f);
    assert_true(y[999 * 4096 + 4095] == 999.0f * 10000 + 4095);
    assert_true(y[517 * 4096 + 3] == 517.0f * 10000 + 3);
    gguf_close(c);
    unlink(path);
    gguf_writer_free(w);

    // a failing source abandons the write, leaves no file and reports the tensor
    w = gguf_writer_create();
    assert_int_equal(gguf_add_tensor_source(w, "bad", TV_TYPE_F32, 1, ne, fill_fail, NULL, &err), TV_OK);
    assert_int_not_equal(gguf_writer_write(w, path, &err), TV_OK);
    assert_non_null(strstr(err.msg, "source says no"));
    assert_non_null(strstr(err.msg, "'bad'"));
    assert_int_equal(access(path, F_OK), -1);
    gguf_writer_free(w);
}

// ---- writer errors ----
static void test_writer_errors(void **state) {
    (void)state;
    tv_error err = { 0 };
    gguf_writer *w = gguf_writer_create();
    float d[64] = { 0 };
    int64_t ne_bad[1] = { 30 }, ne_ok[1] = { 32 }, ne_neg[2] = { 32, -1 };
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_Q8_0, 1, ne_bad, d, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "block size"));
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_F32, 0, ne_ok, d, &err), TV_ERR_INVALID);
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_F32, 5, ne_ok, d, &err), TV_ERR_INVALID);
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_F32, 2, ne_neg, d, &err), TV_ERR_INVALID);
    assert_int_equal(gguf_add_tensor(w, "q", (tv_type)4, 1, ne_ok, d, &err), TV_ERR_INVALID);
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_F32, 1, ne_ok, d, &err), TV_OK);
    assert_int_equal(gguf_add_tensor(w, "q", TV_TYPE_F32, 1, ne_ok, d, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "duplicate"));
    // unwritable path: the error names it
    assert_int_equal(gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err), TV_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.gguf"));
    // a non-power-of-two alignment is refused at write time
    gguf_set_u32(w, "general.alignment", 48);
    assert_int_equal(gguf_writer_write(w, tmp_path("align48"), &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "alignment"));
    gguf_writer_free(w);
    // a malformed value is recorded by the setter and reported by write
    w = gguf_writer_create();
    gguf_value bad = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING, .arr_n = 3, .arr_items = NULL };
    gguf_set_value(w, "bad.value", &bad);
    gguf_set_u32(w, "fine", 1);
    assert_int_equal(gguf_writer_write(w, tmp_path("badval"), &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "bad.value"));
    gguf_writer_free(w);
    gguf_writer_free(NULL);
    gguf_close(NULL);
    // a NULL writer (failed create) is tolerated by setters and refused by add/write
    gguf_set_u32(NULL, "a", 1);
    gguf_set_str(NULL, "s", "x");
    gguf_set_arr_data(NULL, "d", GGUF_TYPE_UINT8, "ab", 2);
    assert_int_not_equal(gguf_add_tensor(NULL, "q", TV_TYPE_F32, 1, ne_ok, d, &err), TV_OK);
    assert_int_not_equal(gguf_writer_write(NULL, tmp_path("null"), &err), TV_OK);
}

// ---- hostile files ----
static void test_missing_and_empty(void **state) {
    (void)state;
    tv_error err = { 0 };
    assert_null(gguf_open("/nonexistent/model.gguf", &err));
    assert_int_equal(err.code, TV_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
    const char *path = tmp_path("empty");
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_null(gguf_open(path, &err));
    assert_int_equal(err.code, TV_ERR_FORMAT);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    assert_null(gguf_open(TV_BINARY_DIR, &err));   // a directory
    assert_int_equal(err.code, TV_ERR_IO);
    buf b = { 0 };
    expect_fail(&b, TV_ERR_FORMAT, "truncated", "offset 0", NULL);
}

static void test_bad_header(void **state) {
    (void)state;
    buf b = { 0 };
    b_bytes(&b, "GGUX", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 0);
    expect_fail(&b, TV_ERR_FORMAT, "magic", "offset 0", NULL);
    b.n = 0; b_hdr(&b, 1, 0, 0);
    expect_fail(&b, TV_ERR_UNSUPPORTED, "version 1", "offset 4", NULL);
    b.n = 0; b_hdr(&b, 4, 0, 0);
    expect_fail(&b, TV_ERR_UNSUPPORTED, "version 4", NULL);
    b.n = 0; b_hdr(&b, 0x03000000u, 0, 0);
    expect_fail(&b, TV_ERR_UNSUPPORTED, "big-endian", NULL);
    b.n = 0; b_hdr(&b, 3, 0, 1ull << 40);
    expect_fail(&b, TV_ERR_FORMAT, "metadata count", NULL);
    b.n = 0; b_hdr(&b, 3, 1ull << 40, 0);
    expect_fail(&b, TV_ERR_FORMAT, "tensor count", NULL);
    b.n = 0; b_hdr(&b, 3, UINT64_MAX, UINT64_MAX);
    expect_fail(&b, TV_ERR_FORMAT, NULL);
    // v2 is accepted
    b.n = 0; b_hdr(&b, 2, 0, 1); b_kv_u32(&b, "a", 1);
    tv_error err = { 0 };
    gguf_ctx *c = gguf_open_memory(b.p, b.n, "v2", &err);
    assert_non_null(c);
    assert_int_equal(gguf_version(c), 2);
    gguf_close(c);
    free(b.p);
}

static void test_bad_metadata(void **state) {
    (void)state;
    buf b = { 0 };
    // huge key length
    b_hdr(&b, 3, 0, 1); b_u64(&b, 1ull << 62); b_bytes(&b, "abcdefghijklmnop", 16);
    expect_fail(&b, TV_ERR_FORMAT, "string length", "offset 24", NULL);
    // huge string value length
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_STRING); b_u64(&b, UINT64_MAX - 3); b_u8(&b, 'x');
    expect_fail(&b, TV_ERR_FORMAT, "string length", "'k'", NULL);
    // huge numeric array count (count × 4 would overflow 64 bits)
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_ARRAY); b_u32(&b, GGUF_TYPE_UINT32); b_u64(&b, 1ull << 62);
    b_zeros(&b, 64);
    expect_fail(&b, TV_ERR_FORMAT, "array of", NULL);
    // huge string array count: refused before allocating
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_ARRAY); b_u32(&b, GGUF_TYPE_STRING); b_u64(&b, 1ull << 60);
    b_zeros(&b, 64);
    expect_fail(&b, TV_ERR_FORMAT, "cannot fit", NULL);
    // duplicate key
    b.n = 0; b_hdr(&b, 3, 0, 2); b_kv_u32(&b, "dup.key", 1); b_kv_u32(&b, "dup.key", 2);
    expect_fail(&b, TV_ERR_FORMAT, "duplicate key 'dup.key'", "offset 47", NULL);
    // unknown value type
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, 13); b_u32(&b, 0);
    expect_fail(&b, TV_ERR_FORMAT, "unknown value type 13", "offset 33", NULL);
    // unknown array element type
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_ARRAY); b_u32(&b, 99); b_u64(&b, 0);
    expect_fail(&b, TV_ERR_FORMAT, "element type 99", NULL);
    // bool that is not 0/1, scalar and in an array
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_BOOL); b_u8(&b, 2);
    expect_fail(&b, TV_ERR_FORMAT, "bool", NULL);
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_TYPE_ARRAY); b_u32(&b, GGUF_TYPE_BOOL); b_u64(&b, 2);
    b_u8(&b, 1); b_u8(&b, 7);
    expect_fail(&b, TV_ERR_FORMAT, "bool", NULL);
    // NUL inside a key
    b.n = 0; b_hdr(&b, 3, 0, 1); b_u64(&b, 3); b_bytes(&b, "a\0b", 3); b_u32(&b, GGUF_TYPE_UINT8); b_u8(&b, 0);
    expect_fail(&b, TV_ERR_FORMAT, "NUL", NULL);
    // nesting deeper than the limit: 9 arrays of one array each
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "deep"); b_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 9; i++) { b_u32(&b, GGUF_TYPE_ARRAY); b_u64(&b, 1); }
    b_u32(&b, GGUF_TYPE_UINT8); b_u64(&b, 0);
    expect_fail(&b, TV_ERR_FORMAT, "nested deeper", NULL);
    // ... while 8 levels are fine
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "deep"); b_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 7; i++) { b_u32(&b, GGUF_TYPE_ARRAY); b_u64(&b, 1); }
    b_u32(&b, GGUF_TYPE_UINT8); b_u64(&b, 0);
    tv_error err = { 0 };
    gguf_ctx *c = gguf_open_memory(b.p, b.n, "deep8", &err);
    if (!c) fail_msg("%s", err.msg);
    gguf_close(c);
    // alignment: not a power of two, zero, wrong type
    b.n = 0; b_hdr(&b, 3, 0, 1); b_kv_u32(&b, "general.alignment", 48);
    expect_fail(&b, TV_ERR_FORMAT, "power of two", NULL);
    b.n = 0; b_hdr(&b, 3, 0, 1); b_kv_u32(&b, "general.alignment", 0);
    expect_fail(&b, TV_ERR_FORMAT, "power of two", NULL);
    b.n = 0; b_hdr(&b, 3, 0, 1); b_str(&b, "general.alignment"); b_u32(&b, GGUF_TYPE_STRING); b_str(&b, "32");
    expect_fail(&b, TV_ERR_FORMAT, "unsigned integer", NULL);
    free(b.p);
}

// One tensor "t" after a header with n_kv = 0; data section of data_bytes zeros.
static void one_tensor(buf *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data_bytes) {
    b->n = 0;
    b_hdr(b, 3, 1, 0);
    b_tinfo(b, "t", n_dims, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data_bytes);
}

static void test_bad_tensors(void **state) {
    (void)state;
    buf b = { 0 };
    uint64_t ne4[4] = { 4, 1, 1, 1 };
    tv_error err = { 0 };
    one_tensor(&b, 1, ne4, TV_TYPE_F32, 0, 16);
    gguf_ctx *c = gguf_open_memory(b.p, b.n, "ok", &err);   // the template itself is valid
    if (!c) fail_msg("%s", err.msg);
    gguf_close(c);
    one_tensor(&b, 0, ne4, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "n_dims 0", "offset 33", NULL);
    uint64_t ne5[5] = { 4, 1, 1, 1, 1 };
    one_tensor(&b, 5, ne5, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "n_dims 5", NULL);
    one_tensor(&b, 1, ne4, 1000, 0, 16);
    expect_fail(&b, TV_ERR_UNSUPPORTED, "unknown tensor type id 1000", "'t'", NULL);
    one_tensor(&b, 1, ne4, 4, 0, 16);   // id 4 (Q4_2) was removed from ggml long ago
    expect_fail(&b, TV_ERR_UNSUPPORTED, "unknown tensor type id 4", NULL);
    uint64_t ovf[3] = { 1ull << 32, 1ull << 32, 1ull << 32 };
    one_tensor(&b, 3, ovf, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "overflow", NULL);
    uint64_t ovf_bytes[2] = { 1ull << 31, 1ull << 31 };   // 2^62 elements fit int64, 2^64 bytes do not
    one_tensor(&b, 2, ovf_bytes, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "overflow", NULL);
    uint64_t neg[1] = { 1ull << 63 };
    one_tensor(&b, 1, neg, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "negative", NULL);
    uint64_t q[1] = { 30 };
    one_tensor(&b, 1, q, TV_TYPE_Q8_0, 0, 64);
    expect_fail(&b, TV_ERR_FORMAT, "block size", NULL);
    one_tensor(&b, 1, ne4, TV_TYPE_F32, 4, 64);
    expect_fail(&b, TV_ERR_FORMAT, "not a multiple of the alignment", "offset 49", NULL);
    one_tensor(&b, 1, ne4, TV_TYPE_F32, 32, 40);   // 16 bytes at 32 of a 40-byte data section
    expect_fail(&b, TV_ERR_FORMAT, "outside the file", NULL);
    one_tensor(&b, 1, ne4, TV_TYPE_F32, 0, 15);    // one byte short
    expect_fail(&b, TV_ERR_FORMAT, "outside the file", NULL);
    one_tensor(&b, 1, ne4, TV_TYPE_F32, UINT64_MAX - 31, 16);
    expect_fail(&b, TV_ERR_FORMAT, "outside the file", NULL);
    uint64_t big[2] = { 1024, 1024 };   // 4 MiB claimed, 16 bytes present
    one_tensor(&b, 2, big, TV_TYPE_F32, 0, 16);
    expect_fail(&b, TV_ERR_FORMAT, "outside the file", NULL);
    // duplicate tensor name
    b.n = 0; b_hdr(&b, 3, 2, 0); b_tinfo(&b, "t", 1, ne4, 0, 0); b_tinfo(&b, "t", 1, ne4, 0, 32); b_pad(&b, 32); b_zeros(&b, 64);
    expect_fail(&b, TV_ERR_FORMAT, "duplicate tensor name", NULL);
    // a known type without kernels still loads (info shows it; the model loader refuses it)
    uint64_t iq[1] = { 256 };
    one_tensor(&b, 1, iq, TV_TYPE_IQ2_XXS, 0, 66);
    c = gguf_open_memory(b.p, b.n, "iq", &err);
    if (!c) fail_msg("%s", err.msg);
    assert_int_equal(gguf_tensor(c, 0)->type, TV_TYPE_IQ2_XXS);
    assert_int_equal(gguf_tensor(c, 0)->nbytes, 66);
    gguf_close(c);
    free(b.p);
}

// A small valid file with metadata of every shape and three tensors, written by the writer.
static uint8_t *small_valid_file(size_t *n) {
    gguf_writer *w = gguf_writer_create();
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u32(w, "general.alignment", 64);
    gguf_set_f32(w, "f", 1.5f);
    const char *strs[3] = { "a", "bc", "" };
    gguf_set_arr_str(w, "s", strs, NULL, 3);
    int16_t v[3] = { 1, 2, 3 };
    gguf_set_arr_data(w, "v", GGUF_TYPE_INT16, v, 3);
    gguf_value inner = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT16, .arr_n = 3, .arr_data = v };
    gguf_value outer = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 1, .arr_items = &inner };
    gguf_set_value(w, "nested", &outer);
    static uint8_t d[512];
    for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)i;
    tv_error err = { 0 };
    int64_t ne1[2] = { 8, 2 }, ne2[1] = { 32 }, ne3[1] = { 3 };
    assert_int_equal(gguf_add_tensor(w, "a", TV_TYPE_F32, 2, ne1, d, &err), TV_OK);
    assert_int_equal(gguf_add_tensor(w, "b", TV_TYPE_Q8_0, 1, ne2, d, &err), TV_OK);
    assert_int_equal(gguf_add_tensor(w, "c", TV_TYPE_F16, 1, ne3, d, &err), TV_OK);
    const char *path = tmp_path("small");
    assert_int_equal(gguf_writer_write(w, path, &err), TV_OK);
    gguf_writer_free(w);
    uint8_t *p = slurp(path, n);
    unlink(path);
    return p;
}

static void test_truncation_every_offset(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = small_valid_file(&n);
    tv_error err = { 0 };
    gguf_ctx *c = gguf_open_memory(p, n, "full", &err);
    if (!c) fail_msg("%s", err.msg);
    assert_int_equal(gguf_n_tensors(c), 3);
    gguf_close(c);
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, p, k);
        memset(&err, 0, sizeof err);
        c = gguf_open_memory(copy, k, "bad.gguf", &err);
        if (c) fail_msg("truncated to %zu of %zu bytes, still loads", k, n);
        if (err.code == TV_OK || !strstr(err.msg, "bad.gguf") || !strstr(err.msg, "offset"))
            fail_msg("truncated to %zu: bad error: %s", k, err.msg);
        free(copy);
    }
    free(p);
}

// Every byte xor'ed with 0xff and with 0x01: any result is fine as long as it is clean (ASan).
static void test_byte_flips(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = small_valid_file(&n);
    uint8_t *copy = malloc(n);
    int n_ok = 0;
    for (size_t k = 0; k < n; k++) {
        for (int m = 0; m < 2; m++) {
            memcpy(copy, p, n);
            copy[k] ^= m ? 0x01 : 0xff;
            tv_error err = { 0 };
            gguf_ctx *c = gguf_open_memory(copy, n, "flip", &err);
            if (c) {
                n_ok++;
                for (int64_t i = 0; i < gguf_n_tensors(c); i++) {
                    const gguf_tensor_info *t = gguf_tensor(c, i);
                    volatile uint8_t x = t->nbytes ? ((const uint8_t *)t->data)[t->nbytes - 1] : 0;
                    (void)x;
                }
                gguf_close(c);
            } else {
                assert_int_not_equal(err.code, TV_OK);
                assert_true(strlen(err.msg) > 0);
            }
        }
    }
    assert_true(n_ok > 0);   // flips inside tensor data stay valid
    free(copy);
    free(p);
}

// ---- llama.cpp's vocab files ----
static void test_real_vocab_files(void **state) {
    (void)state;
    const char *shared = getenv("TV_SHARED_DIR") ? getenv("TV_SHARED_DIR") : TV_SHARED_DIR;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/vocab", shared);
    DIR *d = opendir(dir);
    if (!d) { printf("SKIP: %s absent\n", dir); skip(); return; }
    int n_files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "ggml-vocab-", 11) || len < 5 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tv_error err = { 0 };
        gguf_ctx *c = gguf_open(path, &err);
        if (!c) fail_msg("%s", err.msg);
        n_files++;
        gguf_str arch, model;
        assert_true(gguf_get_str(c, "general.architecture", &arch));
        assert_true(gguf_get_str(c, "tokenizer.ggml.model", &model));
        const gguf_value *tok = gguf_get(c, "tokenizer.ggml.tokens");
        assert_non_null(tok);
        assert_int_equal(tok->type, GGUF_TYPE_ARRAY);
        assert_int_equal(tok->arr_type, GGUF_TYPE_STRING);
        const gguf_value *tt = gguf_get(c, "tokenizer.ggml.token_type");
        if (tt) assert_int_equal(tt->arr_n, tok->arr_n);
        const gguf_value *sc = gguf_get(c, "tokenizer.ggml.scores");
        if (sc) assert_int_equal(sc->arr_n, tok->arr_n);
        char key[160];
        snprintf(key, sizeof key, "%.*s.vocab_size", (int)arch.len, arch.ptr);
        int64_t vs;
        if (gguf_get_int(c, key, &vs)) assert_int_equal(vs, (int64_t)tok->arr_n);
        // facts about these tokenizers that do not come from our code
        if (!strcmp(e->d_name, "ggml-vocab-llama-spm.gguf")) {
            assert_int_equal(tok->arr_n, 32000);
            gguf_str t0 = gguf_arr_str(tok, 0), t1 = gguf_arr_str(tok, 1), t3 = gguf_arr_str(tok, 3);
            assert_int_equal(t0.len, 5); assert_memory_equal(t0.ptr, "<unk>", 5);
            assert_int_equal(t1.len, 3); assert_memory_equal(t1.ptr, "<s>", 3);
            assert_int_equal(t3.len, 6); assert_memory_equal(t3.ptr, "<0x00>", 6);
            assert_int_equal(gguf_arr_int(tt, 3), 6);   // byte token
            assert_int_equal(gguf_arr_int(tt, 1), 3);   // control
            int64_t bos;
            assert_true(gguf_get_int(c, "tokenizer.ggml.bos_token_id", &bos));
            assert_int_equal(bos, 1);
        }
        if (!strcmp(e->d_name, "ggml-vocab-gpt-2.gguf")) {
            assert_int_equal(tok->arr_n, 50257);
            gguf_str last = gguf_arr_str(tok, 50256);
            assert_int_equal(last.len, 13);
            assert_memory_equal(last.ptr, "<|endoftext|>", 13);
            const gguf_value *merges = gguf_get(c, "tokenizer.ggml.merges");
            assert_non_null(merges);
            assert_int_equal(merges->arr_n, 50000);
        }
        if (!strcmp(e->d_name, "ggml-vocab-bert-bge.gguf")) assert_int_equal(tok->arr_n, 30522);
        assert_int_equal(gguf_n_tensors(c), 0);
        gguf_close(c);
    }
    closedir(d);
    if (n_files == 0) { printf("SKIP: no ggml-vocab-*.gguf in %s\n", dir); skip(); }
    printf("read %d vocab files\n", n_files);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_exact_bytes),
        cmocka_unit_test(test_roundtrip_align32),
        cmocka_unit_test(test_roundtrip_align64),
        cmocka_unit_test(test_stream_source),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_missing_and_empty),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_real_vocab_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
