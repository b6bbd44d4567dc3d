// attention.c — causal attention over a paged KV cache and the fused elementwise ops: the driver
// (work planning, threads, split-K merge), the scalar reference ops, and the per-path ops tables.
//
// Numerics contract (batch invariance): for one (token, head) the result is
//   chunks c = lo/S .. pos/S   (S = TV_ATTN_SPLIT rounded to the block size, lo = attn_key_lo(pos):
//                               0, or the sliding window's first key)
//   (m_c, l_c, acc_c) = online softmax over the chunk's keys in [lo, pos], fresh state, block by block
//   state = fold_left(merge, chunk states) ;  out = acc / l
// computed by the same kernel code whatever the tile, item, thread or batch it lands in. A tile
// of query tokens shares each K/V block load (converted to f32 once) among its rows and the whole
// group of query heads of a KV head (GQA), but every row keeps its own key range and state.
// Work items: (sequence, KV head, tile of <= att_tile_rows(G) tokens) doing all chunks, or, for
// sequences with few queries (decode), one item per chunk whose states a second pass merges (split-K).
// A tile holds about ATT_TILE_PAIRS (token, head) pairs: the AVX-512 kernel's lane groups of 16
// pairs then share each K/V step it converts (the tiling changes no bit: see the contract above).
// Threads claim items one at a time from the last (a causal prefill's longest tiles first, the short
// ones fill in at the end); a thread that has not started when none are left is not waited for.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_impl.h"
#include "util/alloc.h"
#include "util/status.h"

#ifndef ATT_TILE_PAIRS
#define ATT_TILE_PAIRS 64   // (token, head) pairs per tile
#endif
#define ATT_FEW_Q 4         // sequences with at most this many queries may be split over their chunks

static int att_tile_rows(int G) { return ATT_TILE_PAIRS / G > 1 ? ATT_TILE_PAIRS / G : 1; }

// ---------------------------------------------------------------- scalar reference ops

void ref_op_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;   // double accumulation: stable for large dims
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

void rope_table(float *cs, int n_rot, const float *inv_freq, float pos, float mscale) {
    for (int i = 0; i < n_rot / 2; i++) {
        float ang = pos * inv_freq[i];
        float c = cosf(ang) * mscale, s = sinf(ang) * mscale;
        cs[2 * i] = c;
        cs[2 * i + 1] = c;
        cs[n_rot + 2 * i] = -s;
        cs[n_rot + 2 * i + 1] = s;
    }
}

void rope_table_neox(float *cs, int n_rot, const float *inv_freq, float pos, float mscale) {
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        float ang = pos * inv_freq[i];
        float c = cosf(ang) * mscale, s = sinf(ang) * mscale;
        cs[i] = c;
        cs[half + i] = c;
        cs[n_rot + i] = -s;
        cs[n_rot + half + i] = s;
    }
}

// (a, b) -> (a c - b s, b c + a s), written as v * cos + swap(v) * signed_sin like the SIMD twins.
void ref_op_rope(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    const float *cd = cs, *sd = cs + n_rot;
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < n_rot; i += 2) {
            float a = p[i], b = p[i + 1];
            p[i] = a * cd[i] + b * sd[i];
            p[i + 1] = b * cd[i + 1] + a * sd[i + 1];
        }
    }
}

// (a, b) = (v[i], v[i + n_rot/2]) -> (a c - b s, b c + a s), in the same v * cos + partner * signed_sin form.
void ref_op_rope_neox(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    const float *cd = cs, *sd = cs + n_rot;
    const int half = n_rot / 2;
    for (int hh = 0; hh < n_heads; hh++) {
        float *p = v + (size_t)hh * head_dim;
        for (int i = 0; i < half; i++) {
            float a = p[i], b = p[half + i];
            p[i] = a * cd[i] + b * sd[i];
            p[half + i] = b * cd[half + i] + a * sd[half + i];
        }
    }
}

void ref_op_swiglu(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void ref_op_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void ref_op_wsum(float *out, const float *const *rows, const float *w, const float *s, int k, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float o = 0.0f;
        for (int j = 0; j < k; j++) {
            const float v = s ? (rows[j][i] * s[j]) * w[j] : rows[j][i] * w[j];
            o = j ? o + v : v;
        }
        out[i] = o;
    }
}

// llama.cpp's CPU GELU, the oracle of the Gemma families: the tanh form through an f16 table (the
// input rounded to f16, the result rounded to f16), 0 for x <= -10 and x for x >= 10. The tanh form
// as 0.5 x (1 + tanh(z)) = x * sigmoid(2z): the SwiGLU form with the argument 2z.
void ref_op_geglu(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i], xh = f16_to_f32(f32_to_f16(x));
        const float gl = f16_to_f32(f32_to_f16(xh / (1.0f + expf(-GELU_TANH_K * xh * (1.0f + GELU_TANH_A * xh * xh)))));
        g[i] = (x <= -10.0f ? 0.0f : x >= 10.0f ? x : gl) * u[i];
    }
}

void ref_op_softcap(float *y, int64_t n, float cap) {
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; i++) y[i] = cap * tanhf(y[i] * inv);
}

static void load_rows(const tv_attn_geom *g, const void *pool, int32_t block, int kvh, int n, float *dst) {
    const size_t off = attn_row(g, block, kvh, 0), cnt = (size_t)n * g->head_dim;
    if (g->kv_is_f32) {
        memcpy(dst, (const float *)pool + off, cnt * sizeof(float));
    } else {
        const tv_f16 *src = (const tv_f16 *)pool + off;
        for (size_t i = 0; i < cnt; i++) dst[i] = f16_to_f32(src[i]);
    }
}

void attn_chunk_ref(const tv_attn_geom *g, const void *k_pool, const void *v_pool, const int32_t *block_table,
                       int kvh, int n_rows, const float *q, const int32_t *pos, int k0, int k1, float *m, float *l,
                       float *acc, float *work) {
    const int hd = g->head_dim, bs = g->block_size, G = g->n_heads / g->n_kv_heads, qd = g->n_heads * hd;
    float *kf = work;                               // (bs, hd)
    float *vf = kf + attn_bs4(bs) * hd;          // (bs, hd)
    float *s = vf + attn_bs4(bs) * hd;           // (bs)
    const float sc = attn_score_scale(g), cap = g->softcap;
    int kbeg, kend;
    attn_chunk_range(g, pos, n_rows, k0, k1, &kbeg, &kend);
    for (int i = 0; i < n_rows * G; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
    }
    memset(acc, 0, (size_t)n_rows * G * hd * sizeof(float));
    for (int b0 = kbeg; b0 < kend; b0 += bs) {
        const int32_t blk = block_table[b0 / bs];
        const int nb = kend - b0 < bs ? kend - b0 : bs;
        load_rows(g, k_pool, blk, kvh, nb, kf);
        load_rows(g, v_pool, blk, kvh, nb, vf);
        for (int r = 0; r < n_rows; r++) {
            const int nv = pos[r] + 1 - b0 < nb ? pos[r] + 1 - b0 : nb;   // keys j0 <= j < nv this row sees here
            const int j0 = attn_key_lo(g, pos[r]) > b0 ? attn_key_lo(g, pos[r]) - b0 : 0;
            if (nv <= j0) continue;
            for (int gi = 0; gi < G; gi++) {
                const float *qv = q + (size_t)r * qd + (size_t)(kvh * G + gi) * hd;
                const int si = r * G + gi;
                float *ac = acc + (size_t)si * hd;
                float bm = -INFINITY;
                for (int j = j0; j < nv; j++) {
                    float dot = 0;
                    for (int d = 0; d < hd; d++) dot += qv[d] * kf[(size_t)j * hd + d];
                    s[j] = dot * sc;
                    if (cap > 0) s[j] = cap * tanhf(s[j]);
                    if (s[j] > bm) bm = s[j];
                }
                const float nm = bm > m[si] ? bm : m[si];
                const float corr = expf(m[si] - nm);   // 0 on the first block (m = -inf)
                l[si] *= corr;
                for (int d = 0; d < hd; d++) ac[d] *= corr;
                for (int j = j0; j < nv; j++) {
                    const float e = expf(s[j] - nm);
                    l[si] += e;
                    for (int d = 0; d < hd; d++) ac[d] += e * vf[(size_t)j * hd + d];
                }
                m[si] = nm;
            }
        }
    }
}

static const tv_ops g_ops_ref = {"generic", attn_chunk_ref, ref_op_rmsnorm, ref_op_rope, ref_op_swiglu, ref_op_add,
                                 ref_op_geglu, ref_op_softcap, ref_op_rope_neox, kern_swiglu_oai, ref_op_wsum};

const tv_ops *ops_ref(void) { return &g_ops_ref; }

const tv_ops *ops_for_path(const char *path) {
    if (!path || !strcmp(path, "generic")) return &g_ops_ref;
#if defined(__x86_64__)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (!strncmp(path, "avx512", 6)) return avx512 ? &ops_avx512 : NULL;
    if (!strncmp(path, "avx2", 4)) return avx2 ? &ops_avx2 : NULL;
#endif
    return NULL;
}

// ---------------------------------------------------------------- driver

size_t attn_work_floats(const tv_attn_geom *g) {
    const size_t G = (size_t)(g->n_kv_heads > 0 ? g->n_heads / g->n_kv_heads : 1);
    const size_t rows = 2 * attn_bs4(g->block_size) * (size_t)g->head_dim + (G + 1) * (attn_bs16(g->block_size) + 16) + G;
    const size_t lanes = attn_lanes_work_floats(g->head_dim);   // the AVX-512 kernel's
    return rows > lanes ? rows : lanes;
}

typedef struct att_item {
    int seq, kvh, row0, n_rows;
    int chunk;          // -1: all chunks, final output; else this chunk only, into part
    size_t part;        // split items: offset (floats) of this chunk's states in ws->part
} att_item;

typedef struct att_tile {   // a split tile awaiting its merge
    int seq, kvh, row0, n_rows, c0;
    size_t part;            // offset of chunk c0's states; chunk c at part + (c - c0) * stride
} att_tile;

struct tv_attn_ws {
    att_item *items;
    size_t cap_items;
    att_tile *tiles;
    size_t cap_tiles;
    float *part;         // split partial states: per chunk (R) m, (R) l, (R, hd) acc
    size_t cap_part;
    float *thr;          // per thread: work + 2 states of att_tile_rows(G)*G rows
    size_t cap_thr;
};

tv_attn_ws *attn_ws_create(tv_error *err) {
    tv_attn_ws *ws = calloc(1, sizeof *ws);
    if (!ws) err_fail(err, TV_ERR_NOMEM, "attention: out of memory");
    return ws;
}

void attn_ws_free(tv_attn_ws *ws) {
    if (!ws) return;
    free(ws->items);
    free(ws->tiles);
    free(ws->part);
    free(ws->thr);
    free(ws);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = need + need / 2 + 16;
    if (n < need || n > SIZE_MAX / elem) return false;
    void *q = mem_realloc(*p, n * elem);   // in a forward pass: through the request-path hook
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

// Fold chunk state (m2, l2, acc2) into (m, l, acc). The one merge used by every path.
// (The loops go 4 dims at a time so that the compiler packs them into vector ops: the same IEEE
// operations per element as the scalar tail, so the same bits.)
static void merge_state(float *m, float *l, float *restrict acc, float m2, float l2, const float *restrict acc2,
                        int hd) {
    const float mn = m2 > *m ? m2 : *m;
    const float c1 = expf(*m - mn), c2 = expf(m2 - mn);
    *l = *l * c1 + l2 * c2;
    int d = 0;
    for (; d + 4 <= hd; d += 4) {
        acc[d] = acc[d] * c1 + acc2[d] * c2;
        acc[d + 1] = acc[d + 1] * c1 + acc2[d + 1] * c2;
        acc[d + 2] = acc[d + 2] * c1 + acc2[d + 2] * c2;
        acc[d + 3] = acc[d + 3] * c1 + acc2[d + 3] * c2;
    }
    for (; d < hd; d++) acc[d] = acc[d] * c1 + acc2[d] * c2;
    *m = mn;
}

// out = acc / l, l counting the head's sink exp(sink - m) when the layer has sinks (m: the state's max).
static void finish(float *restrict out, const float *restrict acc, float l, float m, const float *sink, int hd) {
    const float inv = 1.0f / (sink ? l + expf(*sink - m) : l);
    int d = 0;
    for (; d + 4 <= hd; d += 4) {
        out[d] = acc[d] * inv;
        out[d + 1] = acc[d + 1] * inv;
        out[d + 2] = acc[d + 2] * inv;
        out[d + 3] = acc[d + 3] * inv;
    }
    for (; d < hd; d++) out[d] = acc[d] * inv;
}

typedef struct att_run {
    const tv_attn_args *a;
    const tv_ops *ops;
    tv_attn_ws *ws;
    int n_items, n_tiles, split_len;
    size_t thr_stride;
    int next_item, next_tile;   // the next item / tile to claim (atomic): any subset of the pool's threads finishes a phase
} att_run;

// The chunks [*c0, *c0 + n) some row of the tile sees (from the one holding the earliest window
// start to the one holding the last position); returns n.
static int tile_chunks(const tv_attn_geom *g, const tv_attn_seq *s, int row0, int n_rows, int split_len, int *c0) {
    int mx = 0, mn = INT32_MAX;
    for (int r = row0; r < row0 + n_rows; r++) {
        mx = s->pos[r] > mx ? s->pos[r] : mx;
        mn = attn_key_lo(g, s->pos[r]) < mn ? attn_key_lo(g, s->pos[r]) : mn;
    }
    *c0 = mn / split_len;
    return mx / split_len + 1 - *c0;
}

static void copy_state(float *m, float *l, float *acc, float m2, float l2, const float *acc2, int hd) {
    *m = m2;
    *l = l2;
    memcpy(acc, acc2, (size_t)hd * sizeof(float));
}

// Whether a tile's chunks become separate items merged afterwards (split-K): forced by a->split, or
// automatic for sequences with few queries when there is more than one thread.
static bool tile_split(const tv_attn_args *a, const tv_attn_seq *s, int n_chunks, int nth) {
    return n_chunks > 1 && (a->split > 0 || (a->split == 0 && nth > 1 && s->n_q <= ATT_FEW_Q));
}

static void att_phase1(void *arg, int ith, int nth) {
    att_run *ar = arg;
    const tv_attn_args *a = ar->a;
    const tv_attn_geom *g = &a->geom;
    const int hd = g->head_dim, G = g->n_heads / g->n_kv_heads, qd = g->n_heads * hd, S = ar->split_len;
    const int R = att_tile_rows(G) * G;
    float *work = ar->ws->thr + (size_t)ith * ar->thr_stride;
    float *cm = work + attn_work_floats(g), *cl = cm + R, *cacc = cl + R;   // chunk state
    float *tm = cacc + (size_t)R * hd, *tl = tm + R, *tacc = tl + R;            // running total
    (void)nth;
    for (int k; (k = __atomic_fetch_add(&ar->next_item, 1, __ATOMIC_RELAXED)) < ar->n_items;) {
        const att_item *item = &ar->ws->items[ar->n_items - 1 - k];   // the last first
        const tv_attn_seq *s = &a->seqs[item->seq];
        const float *q = s->q + (size_t)item->row0 * qd;
        const int32_t *pos = s->pos + item->row0;
        const int nr = item->n_rows, nrg = nr * G;
        if (item->chunk >= 0) {
            float *pm = ar->ws->part + item->part, *pl = pm + nrg, *pacc = pl + nrg;
            ar->ops->attn_chunk(g, a->k_pool, a->v_pool, s->block_table, item->kvh, nr, q, pos, item->chunk * S,
                                (item->chunk + 1) * S, pm, pl, pacc, work);
            continue;
        }
        // a row's state starts at the chunk of its first key (copied; the tile's first chunk is
        // computed in place) and folds in each later chunk up to its own position's
        int c0;
        const int n_chunks = tile_chunks(g, s, item->row0, nr, S, &c0), c1 = c0 + n_chunks;
        for (int c = c0; c < c1; c++) {
            float *dm = c > c0 ? cm : tm, *dl = c > c0 ? cl : tl, *dacc = c > c0 ? cacc : tacc;
            ar->ops->attn_chunk(g, a->k_pool, a->v_pool, s->block_table, item->kvh, nr, q, pos, c * S, (c + 1) * S,
                                dm, dl, dacc, work);
            if (c == c0) continue;
            for (int r = 0; r < nr; r++) {
                const int first = attn_key_lo(g, pos[r]) / S;
                if (pos[r] < c * S || c < first) continue;
                for (int gi = 0; gi < G; gi++) {
                    const int si = r * G + gi;
                    (c == first ? copy_state : merge_state)(&tm[si], &tl[si], tacc + (size_t)si * hd, cm[si], cl[si],
                                                            cacc + (size_t)si * hd, hd);
                }
            }
        }
        for (int r = 0; r < nr; r++)
            for (int gi = 0; gi < G; gi++) {
                const int si = r * G + gi;
                finish(s->out + (size_t)(item->row0 + r) * qd + (size_t)(item->kvh * G + gi) * hd,
                       tacc + (size_t)si * hd, tl[si], tm[si], g->sinks ? g->sinks + item->kvh * G + gi : NULL, hd);
            }
    }
}

// Merges the chunk states of split tiles, left to right, exactly as att_phase1 does in-item.
static void att_phase2(void *arg, int ith, int nth) {
    att_run *ar = arg;
    const tv_attn_args *a = ar->a;
    const tv_attn_geom *g = &a->geom;
    const int hd = g->head_dim, G = g->n_heads / g->n_kv_heads, qd = g->n_heads * hd, S = ar->split_len;
    float *tacc = ar->ws->thr + (size_t)ith * ar->thr_stride;   // (hd)
    (void)nth;
    for (int ti; (ti = __atomic_fetch_add(&ar->next_tile, 1, __ATOMIC_RELAXED)) < ar->n_tiles;) {
        const att_tile *t = &ar->ws->tiles[ti];
        const tv_attn_seq *s = &a->seqs[t->seq];
        const int nrg = t->n_rows * G;
        const size_t stride = (size_t)nrg * (hd + 2);
        for (int r = 0; r < t->n_rows; r++) {
            const int p = s->pos[t->row0 + r], first = attn_key_lo(g, p) / S;
            for (int gi = 0; gi < G; gi++) {
                const int si = r * G + gi;
                const float *base = ar->ws->part + t->part + (size_t)(first - t->c0) * stride;
                float tm = base[si], tl = base[nrg + si];
                memcpy(tacc, base + 2 * nrg + (size_t)si * hd, (size_t)hd * sizeof(float));
                for (int c = first + 1; c <= p / S; c++) {
                    const float *cb = base + (size_t)(c - first) * stride;
                    merge_state(&tm, &tl, tacc, cb[si], cb[nrg + si], cb + 2 * nrg + (size_t)si * hd, hd);
                }
                finish(s->out + (size_t)(t->row0 + r) * qd + (size_t)(t->kvh * G + gi) * hd, tacc, tl, tm,
                       g->sinks ? g->sinks + t->kvh * G + gi : NULL, hd);
            }
        }
    }
}

tv_status attn_run(const tv_attn_args *a, tv_attn_ws *ws, tv_pool *pool, tv_error *err) {
    const tv_attn_geom *g = &a->geom;
    if (!a->ops) return err_fail(err, TV_ERR_INVALID, "attention: no ops table");
    if (g->n_heads <= 0 || g->n_kv_heads <= 0 || g->n_heads % g->n_kv_heads || g->head_dim <= 0 ||
        g->block_size <= 0 || a->n_seqs < 0 || g->window < 0 || !(g->softcap >= 0 && g->softcap < INFINITY))
        return err_fail(err, TV_ERR_INVALID,
                        "attention: invalid geometry (%d heads, %d KV heads, head dim %d, block %d, window %d, softcap %g)",
                        g->n_heads, g->n_kv_heads, g->head_dim, g->block_size, g->window, (double)g->softcap);
    att_run ar = {.a = a, .ops = a->ops, .ws = ws};
    const int bs = g->block_size, G = g->n_heads / g->n_kv_heads, hd = g->head_dim, nth = pool_size(pool);
    const int QT = att_tile_rows(G);
    ar.split_len = TV_ATTN_SPLIT >= bs ? TV_ATTN_SPLIT / bs * bs : bs;
    // plan: count items and split storage
    size_t n_items = 0, n_tiles = 0, part = 0;
    for (int si = 0; si < a->n_seqs; si++) {
        const tv_attn_seq *s = &a->seqs[si];
        for (int r0 = 0; r0 < s->n_q; r0 += QT) {
            const int nr = s->n_q - r0 < QT ? s->n_q - r0 : QT;
            int c0;
            const int nc = tile_chunks(g, s, r0, nr, ar.split_len, &c0);
            const bool split = tile_split(a, s, nc, nth);
            n_items += (size_t)g->n_kv_heads * (split ? (size_t)nc : 1);
            if (split) {
                n_tiles += (size_t)g->n_kv_heads;
                part += (size_t)g->n_kv_heads * nc * (size_t)nr * G * (hd + 2);
            }
        }
    }
    ar.thr_stride = attn_work_floats(g) + 2 * (size_t)QT * G * (hd + 2);
    if (n_items > (size_t)INT32_MAX || !grow((void **)&ws->items, &ws->cap_items, n_items, sizeof(att_item)) ||
        !grow((void **)&ws->tiles, &ws->cap_tiles, n_tiles, sizeof(att_tile)) ||
        !grow((void **)&ws->part, &ws->cap_part, part, sizeof(float)) ||
        !grow((void **)&ws->thr, &ws->cap_thr, (size_t)nth * ar.thr_stride, sizeof(float)))
        return err_fail(err, TV_ERR_NOMEM, "attention: cannot allocate the workspace");
    // fill: items in (sequence, tile, KV head, chunk) order
    part = 0;
    for (int si = 0; si < a->n_seqs; si++) {
        const tv_attn_seq *s = &a->seqs[si];
        for (int r0 = 0; r0 < s->n_q; r0 += QT) {
            const int nr = s->n_q - r0 < QT ? s->n_q - r0 : QT;
            int c0;
            const int nc = tile_chunks(g, s, r0, nr, ar.split_len, &c0);
            const bool split = tile_split(a, s, nc, nth);
            for (int kvh = 0; kvh < g->n_kv_heads; kvh++) {
                if (split) ws->tiles[ar.n_tiles++] = (att_tile){si, kvh, r0, nr, c0, part};
                for (int c = c0; c < (split ? c0 + nc : c0 + 1); c++) {
                    ws->items[ar.n_items++] = (att_item){si, kvh, r0, nr, split ? c : -1, part};
                    if (split) part += (size_t)nr * G * (hd + 2);
                }
            }
        }
    }
    // items and tiles are claimed one at a time (each is computed the same way by whichever thread
    // takes it): a worker that has not started when the caller ran out of them is not waited for
    pool_run_any(pool, att_phase1, &ar);
    if (ar.n_tiles) pool_run_any(pool, att_phase2, &ar);
    return TV_OK;
}
