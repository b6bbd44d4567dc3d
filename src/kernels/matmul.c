// matmul.c — y (n_tok, rows) = x (n_tok, n) · Wᵀ, W (rows, n) in any supported weight type.
//
// 1. x is converted once to the weight's vec_dot_type into the caller's workspace (rows of
//    kern_row_size(vec_dot_type, n) bytes; F32 activations are used in place, no copy).
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

// Activation types and packed layouts are the same on every path: the reference table answers.
size_t kern_matmul_wsize(tv_type wtype, int64_t n_cols, int64_t n_tok) {
    const tv_type_traits *tt = kern_traits_ref(wtype);
    if (!tt || !tt->vec_dot || n_tok < 0) return 0;
    if (tt->vec_dot_type == TV_TYPE_F32) return 0;
    size_t row = kern_row_size(tt->vec_dot_type, n_cols), out;
    if (tt->repack && packed_act_row_size(wtype, n_cols) > row) row = packed_act_row_size(wtype, n_cols);
    if (!row || !mul_ok(row, (size_t)n_tok, &out) || !add_ok(out, MM_ALIGN, &out)) return 0;
    return out;
}

typedef struct mm_w {               // one weight of the call
    const tv_type_traits *tt;
    tv_gemm_fn gemm;                // tt->gemm, or tt->gemm_packed for a packed w; NULL: vec_dot
    int64_t gemm_rows;              // rows per gemm call when gemm blocks tokens itself, else 0
    const void *w;                  // (rows, n) in tt's type, or its packed layout
    size_t w_row_bytes;
    float *y;                       // (n_tok, rows) f32
    int64_t rows;
} mm_w;

typedef struct mm_job {
    const tv_type_traits *vt;       // activation type traits (shared by every weight)
    tv_from_float_fn q8;            // the path's Q8_0 quantizer (packed activations)
    bool packed_act;                // packed Q8_0-activation weights: x goes to the packed act layout
    const float *x;                 // (n_tok, n) f32
    void *xq;                       // (n_tok, n) in vt's type, or x itself for F32
    size_t x_row_bytes;
    int64_t n, n_tok;
    int n_w;
    mm_w w[TV_MATMUL_MAX];
} mm_job;

static void mm_quantize(void *arg, int ith, int nth) {
    mm_job *j = arg;
    for (int64_t t = ith; t < j->n_tok; t += nth) {
        char *row = (char *)j->xq + (size_t)t * j->x_row_bytes;
        if (j->packed_act) packed_act_from_float(j->q8, j->x + t * j->n, row, j->n);
        else j->vt->from_float(j->x + t * j->n, row, j->n);
    }
}

// Thread ith's share of every weight (each split on its own, so the threads stay balanced).
static void mm_compute(void *arg, int ith, int nth) {
    mm_job *j = arg;
    for (int wi = 0; wi < j->n_w; wi++) {
        const mm_w *m = &j->w[wi];
        int64_t per = (m->rows + nth - 1) / nth;
        per = (per + 15) & ~(int64_t)15;   // whole 16-row groups per thread where possible
        int64_t r_beg = per * ith, r_end = r_beg + per;
        if (r_end > m->rows) r_end = m->rows;
        if (r_beg >= r_end) continue;
        int64_t tok_tile = (int64_t)(MM_X_TILE_BYTES / j->x_row_bytes);
        if (tok_tile > 16) tok_tile &= ~(int64_t)15;   // whole token groups for the 8- and 4-token tiles
        if (tok_tile < 1) tok_tile = 1;
        if (m->gemm_rows > 0) tok_tile = j->n_tok;   // that gemm blocks tokens itself
        for (int64_t t0 = 0; t0 < j->n_tok; t0 += tok_tile) {
            int64_t nt = j->n_tok - t0 < tok_tile ? j->n_tok - t0 : tok_tile;
            const char *xt = (const char *)j->xq + (size_t)t0 * j->x_row_bytes;
            float *yt = m->y + t0 * m->rows;
            const int64_t chunk = m->gemm_rows > 0 ? m->gemm_rows : MM_ROW_CHUNK;
            for (int64_t r0 = r_beg; r0 < r_end; r0 += chunk) {
                int64_t r1 = r0 + chunk < r_end ? r0 + chunk : r_end;
                if (m->gemm) {
                    m->gemm(j->n, r0, r1, m->w, m->w_row_bytes, nt, xt, j->x_row_bytes, yt, m->rows);
                    continue;
                }
                for (int64_t r = r0; r < r1; r++) {
                    const char *wr = (const char *)m->w + (size_t)r * m->w_row_bytes;
                    for (int64_t t = 0; t < nt; t++)
                        m->tt->vec_dot(j->n, &yt[t * m->rows + r], wr, xt + (size_t)t * j->x_row_bytes);
                }
            }
        }
    }
}

bool kern_matmul_can_share(const tv_tensor *a, const tv_tensor *b) {
    const tv_type_traits *ta = kern_traits_ref(a->type), *tb = kern_traits_ref(b->type);
    return ta && tb && ta->vec_dot_type == tb->vec_dot_type && a->ne[0] == b->ne[0] && a->packed == b->packed;
}

void kern_matmul_n(const kern_table *kt, const tv_tensor *const *w, float *const *y, int n_w, const float *x,
                   int64_t n_tok, void *wsp, tv_pool *pool) {
    TV_CHECK(n_w >= 1 && n_w <= TV_MATMUL_MAX && n_tok >= 0);
    const tv_type_traits *tt0 = kern_traits(kt, w[0]->type);
    TV_CHECK(tt0 && tt0->vec_dot);
    mm_job j = { .vt = kern_traits(kt, tt0->vec_dot_type), .q8 = kt->traits[TV_TYPE_Q8_0].from_float,
                 .x = x, .n = w[0]->ne[0], .n_tok = n_tok };
    const bool packed = w[0]->packed;
    TV_CHECK(j.vt && j.vt->from_float && j.n % j.vt->blck_size == 0);
    for (int i = 0; i < n_w; i++) {
        const tv_type_traits *tt = kern_traits(kt, w[i]->type);
        TV_CHECK(tt && tt->vec_dot && tt->vec_dot_type == tt0->vec_dot_type && w[i]->ne[0] == j.n);
        TV_CHECK(w[i]->packed == packed);
        TV_CHECK(j.n % tt->blck_size == 0);
        if (w[i]->ne[1] == 0) continue;
        mm_w m = { .tt = tt, .w = w[i]->data, .w_row_bytes = kern_row_size(w[i]->type, j.n), .y = y[i],
                   .rows = w[i]->ne[1] };
        TV_CHECK(m.w != NULL && m.w_row_bytes > 0 && w[i]->nbytes / m.w_row_bytes >= (size_t)m.rows);
        if (w[i]->packed) {   // whole 16-row groups: every chunk and thread range starts at a multiple of 16
            TV_CHECK(tt->gemm_packed && w[i]->nbytes >= packed_size(w[i]->type, j.n, m.rows));
            m.gemm = tt->gemm_packed;
            m.gemm_rows = 1024;
        } else {
            m.gemm = tt->gemm;
            m.gemm_rows = tt->gemm ? tt->gemm_rows : 0;
        }
        j.w[j.n_w++] = m;
    }
    if (n_tok == 0 || j.n_w == 0) return;
    if (tt0->vec_dot_type == TV_TYPE_F32) {
        j.xq = (void *)x;
        j.x_row_bytes = (size_t)j.n * sizeof(float);
    } else {
        TV_CHECK(wsp != NULL);
        j.xq = (void *)(((uintptr_t)wsp + MM_ALIGN - 1) & ~(uintptr_t)(MM_ALIGN - 1));
        j.packed_act = packed && tt0->vec_dot_type == TV_TYPE_Q8_0;
        j.x_row_bytes = packed ? packed_act_row_size(w[0]->type, j.n) : kern_row_size(tt0->vec_dot_type, j.n);
        if (n_tok >= 4 && pool_size(pool) > 1) pool_run(pool, mm_quantize, &j);
        else mm_quantize(&j, 0, 1);
    }
    pool_run(pool, mm_compute, &j);
}

void kern_matmul(const kern_table *kt, const tv_tensor *w, const float *x, int64_t n_tok, float *y, void *wsp,
                 tv_pool *pool) {
    kern_matmul_n(kt, &w, &y, 1, x, n_tok, wsp, pool);
}
