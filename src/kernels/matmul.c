// matmul.c — y (n_tok, rows) = x (n_tok, n) · Wᵀ, W (rows, n) in any supported weight type.
//
// 1. x is converted once to the weight's vec_dot_type into the caller's workspace (rows of
//    tv_row_size(vec_dot_type, n) bytes; F32 activations are used in place, no copy).
// 2. Weight rows are split across the pool in contiguous, 16-aligned ranges (thread ith of nth;
//    packed weights rely on that alignment);
//    each thread walks its rows in chunks and the tokens in tiles that keep the activation tile
//    in L2, calling traits->gemm when the type has one, else vec_dot per (row, token). A gemm with
//    traits->gemm_rows set blocks rows and tokens itself: it gets all tokens, gemm_rows rows a call.
#include <string.h>

#include "kernels/kernels.h"
#include "util/status.h"

enum {
    MM_ROW_CHUNK = 64,              // weight rows per gemm call
    MM_X_TILE_BYTES = 192 * 1024,   // activation bytes per token tile (fits in L2 with the weights)
    MM_ALIGN = 64,
};

size_t tv_matmul_wsize(tv_type wtype, int64_t n_cols, int64_t n_tok) {
    const tv_type_traits *tt = tv_traits(wtype);
    if (!tt || !tt->vec_dot || n_tok < 0) return 0;
    if (tt->vec_dot_type == TV_TYPE_F32) return 0;
    size_t row = tv_row_size(tt->vec_dot_type, n_cols), out;
    if (!row || !tv_mul_ok(row, (size_t)n_tok, &out) || !tv_add_ok(out, MM_ALIGN, &out)) return 0;
    return out;
}

typedef struct mm_job {
    const tv_type_traits *tt;
    const tv_type_traits *vt;       // activation type traits
    tv_gemm_fn gemm;                // tt->gemm, or tt->gemm_packed for a packed w; NULL: vec_dot
    int64_t gemm_rows;              // rows per gemm call when gemm blocks tokens itself, else 0
    const void *w;                  // (rows, n) in tt's type, or its packed layout
    size_t w_row_bytes;
    const float *x;                 // (n_tok, n) f32
    void *xq;                       // (n_tok, n) in vt's type, or x itself for F32
    size_t x_row_bytes;
    float *y;                       // (n_tok, rows) f32
    int64_t n, rows, n_tok;
} mm_job;

static void mm_quantize(void *arg, int ith, int nth) {
    mm_job *j = arg;
    for (int64_t t = ith; t < j->n_tok; t += nth)
        j->vt->from_float(j->x + t * j->n, (char *)j->xq + (size_t)t * j->x_row_bytes, j->n);
}

static void mm_compute(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t per = (j->rows + nth - 1) / nth;
    per = (per + 15) & ~(int64_t)15;   // whole 16-row groups per thread where possible
    int64_t r_beg = per * ith, r_end = r_beg + per;
    if (r_end > j->rows) r_end = j->rows;
    if (r_beg >= r_end) return;
    int64_t tok_tile = (int64_t)(MM_X_TILE_BYTES / j->x_row_bytes);
    if (tok_tile > 16) tok_tile &= ~(int64_t)15;   // whole token groups for the 8- and 4-token tiles
    if (tok_tile < 1) tok_tile = 1;
    if (j->gemm_rows > 0) tok_tile = j->n_tok;   // that gemm blocks tokens itself
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += tok_tile) {
        int64_t nt = j->n_tok - t0 < tok_tile ? j->n_tok - t0 : tok_tile;
        const char *xt = (const char *)j->xq + (size_t)t0 * j->x_row_bytes;
        float *yt = j->y + t0 * j->rows;
        const int64_t chunk = j->gemm_rows > 0 ? j->gemm_rows : MM_ROW_CHUNK;
        for (int64_t r0 = r_beg; r0 < r_end; r0 += chunk) {
            int64_t r1 = r0 + chunk < r_end ? r0 + chunk : r_end;
            if (j->gemm) {
                j->gemm(j->n, r0, r1, j->w, j->w_row_bytes, nt, xt, j->x_row_bytes, yt, j->rows);
                continue;
            }
            for (int64_t r = r0; r < r1; r++) {
                const char *wr = (const char *)j->w + (size_t)r * j->w_row_bytes;
                for (int64_t t = 0; t < nt; t++)
                    j->tt->vec_dot(j->n, &yt[t * j->rows + r], wr, xt + (size_t)t * j->x_row_bytes);
            }
        }
    }
}

void tv_matmul(const tv_tensor *w, const float *x, int64_t n_tok, float *y, void *wsp, tv_pool *pool) {
    const tv_type_traits *tt = tv_traits(w->type);
    TV_CHECK(tt && tt->vec_dot);
    TV_CHECK(n_tok >= 0 && w->ne[0] % tt->blck_size == 0);
    if (n_tok == 0 || w->ne[1] == 0) return;
    mm_job j = {
        .tt = tt, .vt = tv_traits(tt->vec_dot_type), .w = w->data, .w_row_bytes = tv_row_size(w->type, w->ne[0]),
        .x = x, .y = y, .n = w->ne[0], .rows = w->ne[1], .n_tok = n_tok,
    };
    TV_CHECK(j.vt && j.vt->from_float && j.n % j.vt->blck_size == 0);
    TV_CHECK(w->data != NULL && j.w_row_bytes > 0 && w->nbytes / j.w_row_bytes >= (size_t)j.rows);
    if (w->packed) {   // whole 16-row groups: every chunk and thread range starts at a multiple of 16
        TV_CHECK(tt->gemm_packed && w->nbytes >= tv_packed_size(w->type, j.n, j.rows));
        j.gemm = tt->gemm_packed;
        j.gemm_rows = 1024;
    } else {
        j.gemm = tt->gemm;
        j.gemm_rows = tt->gemm ? tt->gemm_rows : 0;
    }
    if (tt->vec_dot_type == TV_TYPE_F32) {
        j.xq = (void *)x;
        j.x_row_bytes = (size_t)j.n * sizeof(float);
    } else {
        TV_CHECK(wsp != NULL);
        j.xq = (void *)(((uintptr_t)wsp + MM_ALIGN - 1) & ~(uintptr_t)(MM_ALIGN - 1));
        j.x_row_bytes = tv_row_size(tt->vec_dot_type, j.n);
        if (n_tok >= 4 && tv_pool_size(pool) > 1) tv_pool_run(pool, mm_quantize, &j);
        else mm_quantize(&j, 0, 1);
    }
    tv_pool_run(pool, mm_compute, &j);
}
