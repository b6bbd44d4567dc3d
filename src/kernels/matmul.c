// matmul.c — y (n_tok, rows) = x (n_tok, n) · Wᵀ, W (rows, n) in any supported weight type.
//
// 1. x is converted once to the weight's vec_dot_type into the caller's workspace (rows of
//    kern_row_size(vec_dot_type, n) bytes; F32 activations are used in place, no copy).
// 2. Weight rows are split across the pool in contiguous, 16-aligned ranges (thread ith of nth;
//    packed weights rely on that alignment);
//    each thread walks its rows in chunks and the tokens in tiles that keep the activation tile
//    in L2, calling traits->gemm when the type has one, else vec_dot per (row, token). A gemm with
//    traits->gemm_rows set blocks rows and tokens itself: it gets all tokens, gemm_rows rows a call.
//    Calls of up to MM_STEAL_TOK tokens (decode: memory-bound) take their ranges in ~128 KiB chunks
//    and a thread that is done claims the unclaimed chunks at the end of another's range.
// Mixture-of-experts weights (3-D) go through kern_matmul_experts: the same kernels per element,
// with the rows of a batch grouped by expert and the work split by expert x rows x token tiles.
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/status.h"

enum {
    MM_ROW_CHUNK = 64,              // weight rows per gemm call
    MX_STREAM_TOK = 4,              // experts with at most this many rows are read at memory speed
    MX_SMALL_CONVERT = 1 << 16,     // activation elements converted on the caller's thread alone
    MX_CONV_TOK = 8,                // tokens per claimed block of the conversion
    MM_X_TILE_BYTES = 1024 * 1024,  // activation bytes per token tile: a thread streams its weight rows
                                    // once per tile, so a decode batch of 32 rows of 17408 (an FFN down
                                    // projection, 635 KB) is one tile; with a 64-row chunk of weights it
                                    // still fits a 2 MiB L2 (192 KiB made that four tiles: 1.3x slower)
    MM_ALIGN = 64,
    MM_STEAL_TOK = 4,               // calls of at most this many tokens (memory-bound) share rows by stealing
    MM_STEAL_BYTES = 128 * 1024,    // weight bytes per claimed chunk there (16-row calls: ~1% slower)
    MM_STEAL_MAX = 64,              // threads with a steal slot; larger pools split statically
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
    // Memory-bound calls (n_tok <= MM_STEAL_TOK): thread t's static share (every weight's rows
    // [beg, end) of mm_share, in order) is a list of chunks of steal_rows[wi] rows; slot[t] holds the
    // unclaimed chunks [front, back) as front << 32 | back. t claims from the front (its stream stays
    // contiguous), a thread with nothing left claims from another's back (n_steal > 0 only).
    int n_steal;                    // threads with a slot (0: static split)
    int64_t steal_rows[TV_MATMUL_MAX];
    struct { alignas(64) _Atomic uint64_t word; } slot[MM_STEAL_MAX];
} mm_job;

// Thread ith quantizes a contiguous share of the tokens, the share of the rows the row-wise ops
// (backend ew_worker: norms, GLU) gave it, so it reads the rows its own core just wrote (strided,
// half the reads came from the other core's cache: the quantizers took 1.6-1.8x their time in a loop).
static void mm_quantize(void *arg, int ith, int nth) {
    mm_job *j = arg;
    const int64_t per = (j->n_tok + nth - 1) / nth, t0 = per * ith, t1 = t0 + per < j->n_tok ? t0 + per : j->n_tok;
    for (int64_t t = t0; t < t1; t++) {
        char *row = (char *)j->xq + (size_t)t * j->x_row_bytes;
        if (j->packed_act) packed_act_from_float(j->q8, j->x + t * j->n, row, j->n);
        else j->vt->from_float(j->x + t * j->n, row, j->n);
    }
}

// Thread ith's static share of weight m: whole 16-row groups where possible, each weight split on
// its own so the threads stay balanced.
static void mm_share(const mm_w *m, int ith, int nth, int64_t *r_beg, int64_t *r_end) {
    int64_t per = (m->rows + nth - 1) / nth;
    per = (per + 15) & ~(int64_t)15;
    *r_beg = per * ith < m->rows ? per * ith : m->rows;
    *r_end = *r_beg + per < m->rows ? *r_beg + per : m->rows;
}

// y rows [r_beg, r_end) of weight m for every token. A row's result does not depend on the range it
// is computed in (ranges start at multiples of 16), so any split gives the same bits.
static void mm_rows(const mm_job *j, const mm_w *m, int64_t r_beg, int64_t r_end) {
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

// Runs chunk `chunk` of thread t's share and returns it; a chunk past the share's end (-1: count
// them) runs nothing and returns the share's number of chunks.
static int64_t mm_share_chunk(const mm_job *j, int t, int nth, int64_t chunk) {
    int64_t n = 0;
    for (int wi = 0; wi < j->n_w; wi++) {
        int64_t beg, end;
        mm_share(&j->w[wi], t, nth, &beg, &end);
        const int64_t cr = j->steal_rows[wi], nc = (end - beg + cr - 1) / cr;
        if (chunk >= n && chunk < n + nc) {
            const int64_t r0 = beg + (chunk - n) * cr;
            mm_rows(j, &j->w[wi], r0, r0 + cr < end ? r0 + cr : end);
            return chunk;
        }
        n += nc;
    }
    return n;
}

// Claims the front (or back) chunk of a slot: its index, or -1 when none is left.
static int64_t mm_claim(_Atomic uint64_t *word, bool from_back) {
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
    for (;;) {
        const uint64_t front = w >> 32, back = w & 0xFFFFFFFFu;
        if (front >= back) return -1;
        const uint64_t nw = from_back ? (front << 32 | (back - 1)) : ((front + 1) << 32 | back);
        if (atomic_compare_exchange_weak_explicit(word, &w, nw, memory_order_relaxed, memory_order_relaxed))
            return (int64_t)(from_back ? back - 1 : front);
    }
}

// Thread ith's share of every weight; with steal slots, then the other threads' unclaimed chunks
// (on a shared or virtual machine a thread can lose its CPU for tens of microseconds: the other
// finishes its rows instead of waiting at the join).
static void mm_compute(void *arg, int ith, int nth) {
    mm_job *j = arg;
    if (j->n_steal != nth) {
        for (int wi = 0; wi < j->n_w; wi++) {
            int64_t beg, end;
            mm_share(&j->w[wi], ith, nth, &beg, &end);
            mm_rows(j, &j->w[wi], beg, end);
        }
        return;
    }
    for (int64_t c; (c = mm_claim(&j->slot[ith].word, false)) >= 0;) mm_share_chunk(j, ith, nth, c);
    for (int v = 1; v < nth; v++) {
        const int t = (ith + v) % nth;
        for (int64_t c; (c = mm_claim(&j->slot[t].word, true)) >= 0;) mm_share_chunk(j, t, nth, c);
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
    const int nth = pool_size(pool);
    if (n_tok <= MM_STEAL_TOK && nth > 1 && nth <= MM_STEAL_MAX) {
        for (int wi = 0; wi < j.n_w; wi++) {   // ~MM_STEAL_BYTES, whole 16-row groups
            const int64_t r = (int64_t)(MM_STEAL_BYTES / j.w[wi].w_row_bytes + 8) & ~(int64_t)15;
            j.steal_rows[wi] = r < 16 ? 16 : r;
        }
        for (int t = 0; t < nth; t++)
            atomic_init(&j.slot[t].word, (uint64_t)mm_share_chunk(&j, t, nth, -1));
        j.n_steal = nth;
    }
    // with steal slots every thread drains every slot: the caller alone completes the job
    if (j.n_steal) pool_run_any(pool, mm_compute, &j);
    else pool_run(pool, mm_compute, &j);
}

void kern_matmul(const kern_table *kt, const tv_tensor *w, const float *x, int64_t n_tok, float *y, void *wsp,
                 tv_pool *pool) {
    kern_matmul_n(kt, &w, &y, 1, x, n_tok, wsp, pool);
}

// ---------------------------------------------------------------- expert-grouped matmul (MoE)

size_t kern_matmul_experts_wsize(tv_type wtype, int64_t n_cols, int64_t n_x, int64_t n_rows) {
    const tv_type_traits *tt = kern_traits_ref(wtype);
    if (!tt || !tt->vec_dot || n_x < 0 || n_rows < 0) return 0;
    size_t row = kern_row_size(tt->vec_dot_type, n_cols), out, conv;
    if (tt->repack && packed_act_row_size(wtype, n_cols) > row) row = packed_act_row_size(wtype, n_cols);
    // the grouped rows (converted in place), then each token's rows (n_x + 1 offsets, n_rows ids)
    const int64_t n = n_rows > n_x ? n_rows : n_x;
    if (!row || !mul_ok(row, (size_t)n, &conv) || !add_ok(conv, 2 * MM_ALIGN, &out)) return 0;
    if (!add_ok(out, sizeof(int32_t) * ((size_t)n_x + 1 + (size_t)n_rows), &out)) return 0;
    return out;
}

typedef struct mx_job {
    tv_from_float_fn from_float;    // activation conversion (the vec_dot type's quantizer)
    tv_from_float_fn q8;            // the path's Q8_0 quantizer (packed activations)
    bool packed, is_f32;
    bool packed_act;                // packed Q8_0-activation weights: x goes to the packed act layout
    const float *x;                 // (n_x, n) f32
    int64_t n, n_x, n_rows;
    void *xg;                       // (n_rows, x_row_bytes) grouped activations (x itself: F32, no x_row)
    size_t x_row_bytes;
    const int32_t *x_row, *off;
    const int32_t *tok_off, *tok_pos;   // with x_row: token t's grouped rows tok_pos[tok_off[t] .. tok_off[t + 1])
    int n_w;
    mm_w w[2];                      // expert 0 of each weight; expert e at e * expert_bytes
    const float *bias[2];           // (n_expert, rows) or NULL
    size_t expert_bytes;
    tv_glu_fn act;
    tv_add_fn add;                  // the path's y += x: the biases (elementwise: the same bits on every path)
    int64_t tok_tile;               // tokens per item
    int n_active;
    int32_t active[TV_MAX_EXPERTS];       // experts with rows: the streamed ones, then the others, each in id order
    int32_t row_chunk[TV_MAX_EXPERTS];    // rows per item of active[i]
    int32_t n_chunks[TV_MAX_EXPERTS];     // its row chunks
    int64_t item_end[TV_MAX_EXPERTS];     // items of active[0..i] (prefix sums)
    int64_t n_items;
    alignas(64) atomic_int_fast64_t next;   // the next item to take (on a cache line of its own: every thread writes it)
    alignas(64) atomic_int_fast64_t next_tok;   // the next token block to convert
} mx_job;

// Converts token blocks of MX_CONV_TOK rows, claimed from a counter (any subset of the threads
// finishes the job: pool_run_any): each token once, into its first grouped row, then copied to its
// other rows (gathered while hot, in the same pass: one join instead of two).
static void mx_convert(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    mx_job *j = arg;
    const size_t rb = j->x_row_bytes;
    for (;;) {
        const int64_t t0 = atomic_fetch_add_explicit(&j->next_tok, MX_CONV_TOK, memory_order_relaxed);
        if (t0 >= j->n_x) return;
        const int64_t t1 = t0 + MX_CONV_TOK < j->n_x ? t0 + MX_CONV_TOK : j->n_x;
        for (int64_t t = t0; t < t1; t++) {
            const int32_t *pos = j->x_row ? j->tok_pos + j->tok_off[t] : NULL;
            const int64_t n_pos = j->x_row ? j->tok_off[t + 1] - j->tok_off[t] : 1;
            if (n_pos == 0) continue;
            char *row = (char *)j->xg + (size_t)(pos ? pos[0] : t) * rb;
            if (j->is_f32) memcpy(row, j->x + t * j->n, rb);
            else if (j->packed_act) packed_act_from_float(j->q8, j->x + t * j->n, row, j->n);
            else j->from_float(j->x + t * j->n, row, j->n);
            for (int64_t i = 1; i < n_pos; i++) memcpy((char *)j->xg + (size_t)pos[i] * rb, row, rb);
        }
    }
}

static void mx_compute(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    mx_job *j = arg;
    for (;;) {
        const int64_t it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= j->n_items) return;
        int a = 0;
        while (j->item_end[a] <= it) a++;
        const int e = j->active[a];
        const int64_t local = it - (a ? j->item_end[a - 1] : 0);
        const int64_t rows = j->w[0].rows, r0 = local % j->n_chunks[a] * j->row_chunk[a];
        const int64_t r1 = r0 + j->row_chunk[a] < rows ? r0 + j->row_chunk[a] : rows;
        const int64_t p0 = j->off[e] + local / j->n_chunks[a] * j->tok_tile;
        const int64_t nt = j->off[e + 1] - p0 < j->tok_tile ? j->off[e + 1] - p0 : j->tok_tile;
        const char *xt = (const char *)j->xg + (size_t)p0 * j->x_row_bytes;
        for (int wi = 0; wi < j->n_w; wi++) {
            const mm_w *m = &j->w[wi];
            const char *we = (const char *)m->w + (size_t)e * j->expert_bytes;
            float *yt = m->y + p0 * rows;
            if (m->gemm)
                m->gemm(j->n, r0, r1, we, m->w_row_bytes, nt, xt, j->x_row_bytes, yt, rows);
            else
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t t = 0; t < nt; t++)
                        m->tt->vec_dot(j->n, &yt[t * rows + r], we + (size_t)r * m->w_row_bytes,
                                       xt + (size_t)t * j->x_row_bytes);
            if (j->bias[wi])   // a plain loop here ran scalar (~2% of a gpt-oss-20b prefill)
                for (int64_t t = 0; t < nt; t++) j->add(yt + t * rows + r0, j->bias[wi] + (size_t)e * rows + r0, r1 - r0);
        }
        if (j->act)
            for (int64_t t = 0; t < nt; t++)
                j->act(j->w[0].y + (p0 + t) * rows + r0, j->w[1].y + (p0 + t) * rows + r0, r1 - r0);
    }
}

void kern_matmul_experts(const kern_table *kt, const tv_tensor *const *w, const float *const *bias, float *const *y,
                         int n_w, tv_glu_fn act, const float *x, int64_t n_x, const int32_t *x_row,
                         const int32_t *off, void *wsp, tv_pool *pool) {
    TV_CHECK(n_w >= 1 && n_w <= 2 && n_x >= 0);
    const bool is_fused = n_w == 1 && act;   // one weight of gate rows then up rows per expert
    const int n_expert = (int)w[0]->ne[2];
    TV_CHECK(n_expert >= 1 && n_expert <= TV_MAX_EXPERTS && off[0] == 0);
    const tv_type_traits *tt0 = kern_traits(kt, w[0]->type);
    TV_CHECK(tt0 && tt0->vec_dot);
    const tv_type_traits *vt = kern_traits(kt, tt0->vec_dot_type);
    mx_job job, *j = &job;   // ~10 KiB of item bookkeeping, on the caller's stack
    *j = (mx_job){.from_float = vt ? vt->from_float : NULL, .q8 = kt->traits[TV_TYPE_Q8_0].from_float,
                  .packed = w[0]->packed, .is_f32 = tt0->vec_dot_type == TV_TYPE_F32, .x = x, .n = w[0]->ne[0],
                  .n_x = n_x, .n_rows = off[n_expert], .x_row = x_row, .off = off, .act = act, .add = kt->ops->add};
    TV_CHECK(vt && vt->from_float && j->n % vt->blck_size == 0 && (x_row || n_x == j->n_rows));
    const size_t row_bytes = kern_row_size(w[0]->type, j->n);
    j->expert_bytes = (size_t)w[0]->ne[1] * row_bytes;
    if (is_fused) {   // two views of the one weight: each expert's first half of rows, its second half
        const int64_t half = w[0]->ne[1] / 2;
        const tv_type_traits *tt = tt0;
        TV_CHECK(w[0]->ne[1] % 2 == 0 && w[0]->data != NULL && (!bias || !bias[0]) &&
                 w[0]->nbytes >= j->expert_bytes * (size_t)n_expert);
        TV_CHECK(!w[0]->packed || (tt->gemm_packed && half % TV_PACK_ROWS == 0));
        for (int i = 0; i < 2; i++)
            j->w[j->n_w++] = (mm_w){.tt = tt, .w = (const uint8_t *)w[0]->data + (size_t)(i * half) * row_bytes,
                                    .w_row_bytes = row_bytes, .y = y[i], .rows = half,
                                    .gemm = w[0]->packed ? tt->gemm_packed : tt->gemm};
    }
    for (int i = 0; i < n_w && !is_fused; i++) {
        const tv_type_traits *tt = kern_traits(kt, w[i]->type);
        TV_CHECK(tt && tt->vec_dot && w[i]->type == w[0]->type && w[i]->ne[0] == j->n && w[i]->ne[1] == w[0]->ne[1] &&
                 w[i]->ne[2] == n_expert && w[i]->packed == j->packed && w[i]->data != NULL);
        TV_CHECK(w[i]->nbytes >= j->expert_bytes * (size_t)n_expert);
        mm_w m = {.tt = tt, .w = w[i]->data, .w_row_bytes = row_bytes, .y = y[i], .rows = w[i]->ne[1]};
        if (w[i]->packed) {
            TV_CHECK(tt->gemm_packed && m.rows % TV_PACK_ROWS == 0);
            m.gemm = tt->gemm_packed;
        } else {
            m.gemm = tt->gemm;
        }
        j->bias[j->n_w] = bias ? bias[i] : NULL;
        j->w[j->n_w++] = m;
    }
    if (j->n_rows == 0 || w[0]->ne[1] == 0) return;
    // activations: each token converted once, into its grouped rows (expert order)
    uint8_t *base = (uint8_t *)(((uintptr_t)wsp + MM_ALIGN - 1) & ~(uintptr_t)(MM_ALIGN - 1));
    j->packed_act = j->packed && tt0->vec_dot_type == TV_TYPE_Q8_0;
    j->x_row_bytes = j->is_f32 ? (size_t)j->n * sizeof(float) : j->packed ? packed_act_row_size(w[0]->type, j->n)
                                                                           : kern_row_size(tt0->vec_dot_type, j->n);
    if (j->is_f32 && !x_row) {
        j->xg = (void *)x;   // used in place
    } else {
        TV_CHECK(wsp != NULL);
        j->xg = base;
        if (x_row) {   // the inverse of x_row: each token's grouped rows, in order (counting sort)
            const size_t xg_bytes = ((size_t)j->n_rows * j->x_row_bytes + MM_ALIGN - 1) & ~(size_t)(MM_ALIGN - 1);
            int32_t *tok_off = (int32_t *)(base + xg_bytes), *tok_pos = tok_off + n_x + 1;
            for (int64_t t = 0; t <= n_x; t++) tok_off[t] = 0;
            for (int64_t p = 0; p < j->n_rows; p++) {
                TV_CHECK(x_row[p] >= 0 && x_row[p] < n_x);
                tok_off[x_row[p] + 1]++;
            }
            for (int64_t t = 0; t < n_x; t++) tok_off[t + 1] += tok_off[t];
            for (int64_t p = 0; p < j->n_rows; p++) tok_pos[tok_off[x_row[p]]++] = (int32_t)p;   // tok_off[t]: t's end
            for (int64_t t = n_x; t > 0; t--) tok_off[t] = tok_off[t - 1];
            tok_off[0] = 0;
            j->tok_off = tok_off;
            j->tok_pos = tok_pos;
        }
        atomic_init(&j->next_tok, 0);
        if (pool_size(pool) > 1 && n_x >= 4 && n_x * j->n >= MX_SMALL_CONVERT) pool_run_any(pool, mx_convert, j);
        else mx_convert(j, 0, 1);
    }
    // work items: (active expert, row chunk, token tile). An expert with a few rows (decode; in a
    // prefill, the experts few tokens picked) is read at memory speed: it gets one chunk per thread,
    // so a thread streams a long contiguous run of it (as kern_matmul splits a matrix; the 1-2 token
    // kernels prefetch only inside their call) instead of hopping between 64-row chunks; those
    // experts go first, so the items left at the end are the short compute-bound ones.
    const int64_t rows = j->w[0].rows;
    const int64_t share = ((rows + pool_size(pool) - 1) / pool_size(pool) + 15) & ~(int64_t)15;
    const int64_t stream_chunk = share > MM_ROW_CHUNK ? share : MM_ROW_CHUNK;
    TV_CHECK(rows <= INT32_MAX);
    j->tok_tile = (int64_t)(MM_X_TILE_BYTES / j->x_row_bytes);
    if (j->tok_tile > 16) j->tok_tile &= ~(int64_t)15;
    if (j->tok_tile < 1) j->tok_tile = 1;
    for (int pass = 0; pass < 2; pass++)   // 0: the streamed experts, 1: the others
        for (int e = 0; e < n_expert; e++) {
            const int64_t c = off[e + 1] - off[e];
            TV_CHECK(c >= 0);
            if (!c || (c <= MX_STREAM_TOK) != (pass == 0)) continue;
            const int a = j->n_active++;
            const int64_t chunk = pass == 0 ? stream_chunk : MM_ROW_CHUNK;
            j->active[a] = e;
            j->row_chunk[a] = (int32_t)chunk;
            j->n_chunks[a] = (int32_t)((rows + chunk - 1) / chunk);
            j->n_items += j->n_chunks[a] * ((c + j->tok_tile - 1) / j->tok_tile);
            j->item_end[a] = j->n_items;
        }
    atomic_init(&j->next, 0);
    if (j->n_items > 1) pool_run_any(pool, mx_compute, j);   // items from one counter: any subset finishes them
    else mx_compute(j, 0, 1);
}
