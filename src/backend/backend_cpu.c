// backend_cpu.c — the CPU backend: one kernel path's table and ops, a thread pool, and scratch.
//
// Matmuls go through kern_matmul_n with this instance's kern_table (weights of one input share one
// activation quantization when their types allow). The row-wise ops run the path's ops table,
// row-parallel over the pool when the batch is large enough: each row is one call of the op, so
// its bits do not depend on the thread count; small batches (decode) run inline, since waking the
// pool costs more than the work.
#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "util/alloc.h"
#include "util/status.h"

typedef struct cpu_backend {
    backend base;        // first: a backend * is a cpu_backend *
    kern_table kt;       // this instance's kernels (path, traits, ops)
    tv_pool *pool;
    tv_attn_ws *attn_ws;
    void *wsp;           // matmul activation scratch, wsp_size bytes (backend_prepare)
    size_t wsp_size;
} cpu_backend;

static cpu_backend *cpu(backend *be) { return (cpu_backend *)be; }

static void cpu_free(backend *be) {
    cpu_backend *c = cpu(be);
    pool_free(c->pool);
    attn_ws_free(c->attn_ws);
    free(c->wsp);
    free(c);
}

static tv_status cpu_prepare(backend *be, const tv_tensor *const *w, int n_w, int max_tokens, tv_error *err) {
    cpu_backend *c = cpu(be);
    size_t need = 0;
    for (int i = 0; i < n_w; i++) {
        size_t s = w[i]->ne[2] > 1 ? kern_matmul_experts_wsize(w[i]->type, w[i]->ne[0], max_tokens, max_tokens)
                                   : kern_matmul_wsize(w[i]->type, w[i]->ne[0], max_tokens);
        if (s > need) need = s;
    }
    if (need <= c->wsp_size && c->wsp) return TV_OK;
    void *p = mem_scratch(need);
    if (!p) return err_fail(err, TV_ERR_NOMEM, "backend: cannot allocate %zu bytes of matmul scratch", need);
    free(c->wsp);
    c->wsp = p;
    c->wsp_size = need;
    return TV_OK;
}

static void cpu_matmul(backend *be, const tv_tensor *const *w, float *const *y, int n_w, const float *x, int n_tok) {
    cpu_backend *c = cpu(be);
    bool share = true;
    for (int i = 1; i < n_w; i++) share = share && kern_matmul_can_share(w[0], w[i]);
    if (share) {
        kern_matmul_n(&c->kt, w, y, n_w, x, n_tok, c->wsp, c->pool);
        return;
    }
    for (int i = 0; i < n_w; i++) kern_matmul(&c->kt, w[i], x, n_tok, y[i], c->wsp, c->pool);
}

static tv_status cpu_attention(backend *be, const tv_attn_args *a, tv_error *err) {
    cpu_backend *c = cpu(be);
    tv_attn_args args = *a;
    args.ops = c->kt.ops;
    return attn_run(&args, c->attn_ws, c->pool, err);
}

static void cpu_embed(backend *be, const tv_tensor *table, const int32_t *ids, int n, float *x) {
    const tv_type_traits *tt = kern_traits(&cpu(be)->kt, table->type);
    const int64_t dim = table->ne[0];
    const size_t row = kern_row_size(table->type, dim);
    for (int t = 0; t < n; t++) tt->to_float((const uint8_t *)table->data + (size_t)ids[t] * row, x + t * dim, dim);
}

static void cpu_kv_write(backend *be, const tv_attn_geom *g, void *k_pool, void *v_pool, const int64_t *slots,
                         int n_tok, const float *k, const float *v) {
    const int hd = g->head_dim, kvd = g->n_kv_heads * hd;
    const size_t esz = g->kv_is_f32 ? sizeof(float) : sizeof(tv_f16);
    const tv_from_float_fn to_f16 = kern_traits(&cpu(be)->kt, TV_TYPE_F16)->from_float;
    for (int t = 0; t < n_tok; t++) {
        const int64_t block = slots[t] / g->block_size;
        const int off = (int)(slots[t] % g->block_size);
        for (int kvh = 0; kvh < g->n_kv_heads; kvh++) {
            const size_t row = (size_t)t * kvd + (size_t)kvh * hd;
            const size_t at = (((size_t)block * (size_t)g->n_kv_heads + (size_t)kvh) * (size_t)g->block_size +
                               (size_t)off) * (size_t)hd * esz;
            for (int i = 0; i < (v ? 2 : 1); i++) {
                const float *src = (i ? v : k) + row;
                void *dst = (uint8_t *)(i ? v_pool : k_pool) + at;
                if (g->kv_is_f32) memcpy(dst, src, (size_t)hd * sizeof(float));
                else to_f16(src, dst, hd);   // F16 from_float: round-to-nearest-even, bit-exact on every path
            }
        }
    }
}

// ---- row-wise ops

typedef enum { EW_RMSNORM, EW_ROPE, EW_ROPE_NEOX, EW_SWIGLU, EW_ADD, EW_GEGLU, EW_SOFTCAP, EW_SCALE, EW_SIGMOID, EW_MUL_SIGMOID } ew_kind;

typedef struct ew_args {
    const tv_ops *ops;
    ew_kind kind;
    int n_rows, n;       // rows, elements per row
    float *y;            // (n_rows, n) output (in place for rope/swiglu/add)
    const float *x;      // (n_rows, n) second operand (rmsnorm input, swiglu/geglu up, add addend)
    bool is_x_row;       // x is one row (n) for every row: a bias
    const float *s;      // scale: row r's factor s[r] (NULL: eps for every row)
    const float *w;      // (n) rmsnorm weight
    float eps;           // rmsnorm epsilon; softcap: the cap; scale: the factor
    float *k;            // rope: (n_rows, n_kv_heads*head_dim) rotated with y = q
    const float *cs;     // rope: (n_rows, 2 * n_rot)
    int n_heads, n_kv_heads, head_dim, n_rot;
} ew_args;

static void ew_worker(void *arg, int ith, int nth) {
    const ew_args *a = arg;
    const int per = (a->n_rows + nth - 1) / nth, r0 = per * ith, r1 = r0 + per < a->n_rows ? r0 + per : a->n_rows;
    for (int r = r0; r < r1; r++) {
        float *y = a->y + (size_t)r * a->n;
        const float *x = a->x && !a->is_x_row ? a->x + (size_t)r * a->n : a->x;
        switch (a->kind) {
        case EW_RMSNORM: a->ops->rmsnorm(y, x, a->w, a->n, a->eps); break;
        case EW_ROPE:
        case EW_ROPE_NEOX: {
            const float *cs = a->cs + (size_t)r * 2 * a->n_rot;
            const tv_rope_fn rope = a->kind == EW_ROPE ? a->ops->rope : a->ops->rope_neox;
            rope(y, a->n_heads, a->head_dim, a->n_rot, cs);
            rope(a->k + (size_t)r * a->n_kv_heads * a->head_dim, a->n_kv_heads, a->head_dim, a->n_rot, cs);
            break;
        }
        case EW_SWIGLU: a->ops->swiglu(y, x, a->n); break;
        case EW_ADD: a->ops->add(y, x, a->n); break;
        case EW_GEGLU: a->ops->geglu(y, x, a->n); break;
        case EW_SOFTCAP: a->ops->softcap(y, a->n, a->eps); break;
        case EW_SIGMOID:   // llama.cpp's qwen2moe: ggml_div(ggml_silu(x), x), silu as ggml_silu_f32
            for (int i = 0; i < a->n; i++) y[i] = y[i] / (1.0f + expf(-y[i])) / y[i];
            break;
        case EW_MUL_SIGMOID:
            for (int i = 0; i < a->n; i++) y[i] *= 1.0f / (1.0f + expf(-x[i]));
            break;
        case EW_SCALE: {
            const float f = a->s ? a->s[r] : a->eps;
            for (int i = 0; i < a->n; i++) y[i] *= f;
            break;
        }
        }
    }
}

static void ew_run(backend *be, ew_args *a) {
    cpu_backend *c = cpu(be);
    a->ops = c->kt.ops;
    if ((int64_t)a->n_rows * a->n < 16384 || a->n_rows < 2)
        ew_worker(a, 0, 1);
    else
        pool_run(c->pool, ew_worker, a);
}

static void cpu_rmsnorm(backend *be, float *y, const float *x, const float *w, int n_rows, int n, float eps) {
    ew_run(be, &(ew_args){.kind = EW_RMSNORM, .n_rows = n_rows, .n = n, .y = y, .x = x, .w = w, .eps = eps});
}

static void cpu_rope(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads, int n_kv_heads,
                     int head_dim, int n_rot) {
    ew_run(be, &(ew_args){.kind = EW_ROPE, .n_rows = n_rows, .n = n_heads * head_dim, .y = q, .k = k, .cs = cs,
                          .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .n_rot = n_rot});
}

static void cpu_rope_neox(backend *be, float *q, float *k, const float *cs, int n_rows, int n_heads, int n_kv_heads,
                          int head_dim, int n_rot) {
    ew_run(be, &(ew_args){.kind = EW_ROPE_NEOX, .n_rows = n_rows, .n = n_heads * head_dim, .y = q, .k = k, .cs = cs,
                          .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .n_rot = n_rot});
}

static void cpu_swiglu(backend *be, float *g, const float *u, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_SWIGLU, .n_rows = n_rows, .n = n, .y = g, .x = u});
}

static void cpu_add(backend *be, float *y, const float *x, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_ADD, .n_rows = n_rows, .n = n, .y = y, .x = x});
}

static void cpu_geglu(backend *be, float *g, const float *u, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_GEGLU, .n_rows = n_rows, .n = n, .y = g, .x = u});
}

static void cpu_softcap(backend *be, float *y, int n_rows, int n, float cap) {
    ew_run(be, &(ew_args){.kind = EW_SOFTCAP, .n_rows = n_rows, .n = n, .y = y, .eps = cap});
}

static void cpu_scale(backend *be, float *y, int n_rows, int n, float factor) {
    ew_run(be, &(ew_args){.kind = EW_SCALE, .n_rows = n_rows, .n = n, .y = y, .eps = factor});
}

static void cpu_add_row(backend *be, float *y, const float *b, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_ADD, .n_rows = n_rows, .n = n, .y = y, .x = b, .is_x_row = true});
}

static void cpu_scale_rows(backend *be, float *y, const float *s, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_SCALE, .n_rows = n_rows, .n = n, .y = y, .s = s});
}

static void cpu_sigmoid(backend *be, float *y, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_SIGMOID, .n_rows = n_rows, .n = n, .y = y});
}

static void cpu_mul_sigmoid(backend *be, float *y, const float *g, int n_rows, int n) {
    ew_run(be, &(ew_args){.kind = EW_MUL_SIGMOID, .n_rows = n_rows, .n = n, .y = y, .x = g});
}

// ---- Gated DeltaNet: the conv per sequence, then the delta rule per (sequence, value head) with
// the path's chunked kernel, whose chunks sit at absolute positions (deltanet.h): a token's bits do
// not depend on how the engine split the sequence into calls. Each item runs on one thread, so the
// bits do not depend on the thread count either.

// Sequence s's rows before its checkpoint: 0 when it has none.
static int gdn_ckpt_rows(const backend_gdn *a, int s) { return a->ckpt_rows ? a->ckpt_rows[s] : 0; }

// The end of the run of sequence s's rows that starts at row r (of n): the next row after which
// its state is saved (its checkpoint; with rollback points every row), else n.
static int gdn_run_end(const backend_gdn *a, int s, int r, int n) {
    const int c = gdn_ckpt_rows(a, s);
    const int end = a->rb_conv && a->rb_conv[s] ? r + 1 : n;
    return c > r && c < end ? c : end;
}

// A sequence's rows run in runs between the rows after which its state is saved: the same
// operations in the same order as one call (the conv window and the recurrence carry across), so
// a saved state changes no bit.
static void gdn_conv_worker(void *arg, int ith, int nth) {
    const backend_gdn *a = arg;
    const size_t cd = (size_t)kern_gdn_conv_dim(&a->geom), win = (size_t)(a->geom.d_conv - 1) * cd;
    for (int s = ith; s < a->n_seqs; s += nth) {
        const int n = a->q_start[s + 1] - a->q_start[s], c = gdn_ckpt_rows(a, s);
        float *x = a->qkv + (size_t)a->q_start[s] * cd;
        for (int r = 0, e; r < n; r = e) {
            e = gdn_run_end(a, s, r, n);
            ref_gdn_conv(&a->geom, a->conv_state[s], a->conv_w, x + (size_t)r * cd, e - r);
            if (e == c) memcpy(a->ckpt_conv[s], a->conv_state[s], win * sizeof(float));
            if (e < n && a->rb_conv && a->rb_conv[s])
                memcpy(a->rb_conv[s] + (size_t)(e - 1) * win, a->conv_state[s], win * sizeof(float));
        }
    }
}

typedef struct gdn_job {
    const backend_gdn *a;
    kern_gdn_head_fn head;   // this path's kernel
} gdn_job;

static void gdn_head_worker(void *arg, int ith, int nth) {
    const gdn_job *j = arg;
    const backend_gdn *a = j->a;
    const int H = a->geom.n_v_heads, hd = a->geom.head_dim;
    const size_t cd = (size_t)kern_gdn_conv_dim(&a->geom), hh = kern_gdn_head_floats(hd), per_slot = (size_t)H * hh;
    for (int i = ith; i < a->n_seqs * H; i += nth) {
        const int s = i / H, h = i % H;
        const int n = a->q_start[s + 1] - a->q_start[s], c = gdn_ckpt_rows(a, s);
        const size_t hs = (size_t)h * hh;
        float *st = a->ssm_state[s] + hs;
        for (int r = 0, e; r < n; r = e) {
            e = gdn_run_end(a, s, r, n);
            const size_t t = (size_t)(a->q_start[s] + r);
            j->head(&a->geom, h, st, a->positions[t], a->qkv + t * cd, a->alpha + t * H, a->beta + t * H, a->dt,
                    a->a, a->out + t * H * hd, e - r);
            if (e == c) memcpy(a->ckpt_ssm[s] + hs, st, hh * sizeof(float));
            if (e < n && a->rb_conv && a->rb_conv[s])
                memcpy(a->rb_ssm[s] + (size_t)(e - 1) * per_slot + hs, st, hh * sizeof(float));
        }
    }
}

static void cpu_gdn(backend *be, const backend_gdn *a) {
    cpu_backend *c = cpu(be);
    pool_run(a->n_seqs > 1 ? c->pool : NULL, gdn_conv_worker, (void *)a);
    gdn_job j = {a, kern_gdn_ops_for(c->kt.path)->head};
    pool_run(c->pool, gdn_head_worker, &j);
}

// ---- mixture of experts

static void cpu_moe_route(backend *be, const tv_route_opts *o, float *logits, int n_rows, int32_t *ids, float *w) {
    for (int t = 0; t < n_rows; t++)
        kern_route(o, logits + (size_t)t * o->n_expert, ids + (size_t)t * o->n_used, w + (size_t)t * o->n_used);
}

enum { MOE_COMBINE_TOK = 8 };   // tokens per claimed block of the combine

typedef struct moe_combine {
    const backend_moe *a;
    int dim;
    tv_wsum_fn wsum;
    _Atomic int next;   // the next token block to combine
} moe_combine;

// out row t = ((y_0 w_0 + y_1 w_1) + y_2 w_2) + ...: llama.cpp's order (each expert's output times
// its weight, then the adds from the first expert on), one rounding per operation; with per-expert
// scales y_j is first multiplied by its expert's (llama.cpp's ffn_moe_down_scaled). ops.wsum: a
// token's k rows in one pass, vectorized (a plain loop here compiled to scalar code: ~2.5% of a
// qwen3moe-24l Q8_0 prefill). Blocks of tokens are claimed from a counter, so any subset of the
// threads finishes the job (pool_run_any: a descheduled partner is not waited for).
static void moe_combine_rows(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    moe_combine *c = arg;
    const backend_moe *a = c->a;
    const int k = a->n_used, dim = c->dim;
    const float *rows[TV_MAX_EXPERTS];
    float sc[TV_MAX_EXPERTS];
    for (;;) {
        const int t0 = atomic_fetch_add_explicit(&c->next, MOE_COMBINE_TOK, memory_order_relaxed);
        if (t0 >= a->n_tok) return;
        const int t1 = t0 + MOE_COMBINE_TOK < a->n_tok ? t0 + MOE_COMBINE_TOK : a->n_tok;
        for (int t = t0; t < t1; t++) {
            for (int j = 0; j < k; j++) {
                rows[j] = a->y + (size_t)a->pos[t * k + j] * dim;
                if (a->down_s) sc[j] = a->down_s[a->ids[t * k + j]];
            }
            c->wsum(a->out + (size_t)t * dim, rows, a->w + (size_t)t * k, a->down_s ? sc : NULL, k, dim);
        }
    }
}

static void cpu_moe_ffn(backend *be, const backend_moe *a) {
    cpu_backend *c = cpu(be);
    const int T = a->n_tok, k = a->n_used, n_expert = (int)a->down->ne[2], dim = (int)a->down->ne[1];
    // group the rows by expert (counting sort; within an expert in (token, slot) order)
    for (int e = 0; e <= n_expert; e++) a->off[e] = 0;
    for (int i = 0; i < T * k; i++) a->off[a->ids[i] + 1]++;
    for (int e = 0; e < n_expert; e++) a->off[e + 1] += a->off[e];
    int32_t cursor[TV_MAX_EXPERTS];
    for (int e = 0; e < n_expert; e++) cursor[e] = a->off[e];
    for (int i = 0; i < T * k; i++) {
        const int p = cursor[a->ids[i]]++;
        a->x_row[p] = i / k;
        a->pos[i] = p;
    }
    const tv_tensor *gu[] = {a->gate, a->up};
    float *const gu_y[] = {a->g, a->u};
    const tv_glu_fn act = a->act == BACKEND_GLU_SILU        ? c->kt.ops->swiglu
                          : a->act == BACKEND_GLU_GELU_TANH ? c->kt.ops->geglu
                                                            : c->kt.ops->swiglu_oai;
    const float *gu_b[] = {a->gate_b, a->up_b};
    if (a->gate_up) kern_matmul_experts(&c->kt, &a->gate_up, NULL, gu_y, 1, act, a->x, T, a->x_row, a->off, c->wsp, c->pool);
    else kern_matmul_experts(&c->kt, gu, gu_b, gu_y, 2, act, a->x, T, a->x_row, a->off, c->wsp, c->pool);
    kern_matmul_experts(&c->kt, &a->down, &a->down_b, &a->y, 1, NULL, a->g, (int64_t)T * k, NULL, a->off, c->wsp,
                        c->pool);
    moe_combine mc = {.a = a, .dim = dim, .wsum = c->kt.ops->wsum};
    atomic_init(&mc.next, 0);
    if ((int64_t)T * k * dim < 16384 || T < 2) moe_combine_rows(&mc, 0, 1);
    else pool_run_any(c->pool, moe_combine_rows, &mc);
}

static void cpu_matmul_grouped(backend *be, const tv_tensor *w, float *y, const float *x, int n_x,
                               const int32_t *x_row, const int32_t *off) {
    cpu_backend *c = cpu(be);
    kern_matmul_experts(&c->kt, &w, NULL, &y, 1, NULL, x, n_x, x_row, off, c->wsp, c->pool);
}

static const backend_vtbl cpu_vtbl = {
    .free = cpu_free,
    .prepare = cpu_prepare,
    .matmul = cpu_matmul,
    .attention = cpu_attention,
    .embed = cpu_embed,
    .kv_write = cpu_kv_write,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .geglu = cpu_geglu,
    .softcap = cpu_softcap,
    .scale = cpu_scale,
    .rope_neox = cpu_rope_neox,
    .add_row = cpu_add_row,
    .scale_rows = cpu_scale_rows,
    .moe_route = cpu_moe_route,
    .moe_ffn = cpu_moe_ffn,
    .sigmoid = cpu_sigmoid,
    .mul_sigmoid = cpu_mul_sigmoid,
    .gdn = cpu_gdn,
    .matmul_grouped = cpu_matmul_grouped,
};

backend *backend_cpu_create(const char *cpu_path, int n_threads, tv_error *err) {
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) {
        err_fail(err, TV_ERR_NOMEM, "backend: out of memory");
        return NULL;
    }
    c->base.vt = &cpu_vtbl;
    if (kern_table_init(&c->kt, cpu_path, err) || !(c->pool = pool_create(n_threads, err)) ||
        !(c->attn_ws = attn_ws_create(err))) {
        cpu_free(&c->base);
        return NULL;
    }
    c->base.name = c->kt.path;
    return &c->base;
}
