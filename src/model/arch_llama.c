// arch_llama.c — the LLaMA forward pass over a flat batch, with a paged KV cache.
//
//   x = embed(tokens)                                         (T, dim)
//   per layer:  h = rmsnorm(x) ; q,k,v = h·Wq, h·Wk, h·Wv ; rope(q, k) at each token's position
//               write k, v into the sequence's KV slots ; a = attention(q, KV blocks 0..pos)
//               x += a·Wo ; h = rmsnorm(x) ; x += (silu(h·Wgate) * (h·Wup))·Wdown
//   logits = rmsnorm(x[logit_rows])·Wout                        (n_logits, vocab)
//
// Every token's computation depends only on its own row and its sequence's KV, so a request's
// output does not depend on what else is batched (batch invariance), and prefill, chunked prefill
// and decode are one code path. Attention is flash-style (kernels/attention.c): online softmax over
// the key blocks in fixed chunks of positions, no (T × ctx) score buffer; the chunk order depends
// on the position alone, so splitting a long decode over threads does not change a bit.
// Attention and the elementwise ops go through the ops table of the active kernel path
// (ops_active(): TINYVLLM_CPU=generic runs the scalar twins), row-parallel where it pays.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/status.h"

// ---------------------------------------------------------------- KV cache

size_t kv_cache_bytes_per_block(const tv_model *m, int block_size, bool is_f32) {
    const tv_hparams *h = model_hparams(m);
    return 2 * (size_t)h->n_layers * (size_t)h->n_kv_heads * (size_t)block_size * (size_t)h->head_dim *
           (is_f32 ? 4 : 2);
}

tv_kv_cache *kv_cache_create(const tv_model *m, int n_blocks, int block_size, bool is_f32, tv_error *err) {
    const tv_hparams *h = model_hparams(m);
    if (n_blocks <= 0 || block_size <= 0 || block_size > 4096) {
        err_fail(err, TV_ERR_INVALID, "KV cache: invalid geometry (%d blocks of %d tokens)", n_blocks, block_size);
        return NULL;
    }
    tv_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) goto oom;
    kv->n_layers = h->n_layers;
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->n_kv_heads = h->n_kv_heads;
    kv->head_dim = h->head_dim;
    kv->is_f32 = is_f32;
    size_t esz = is_f32 ? 4 : 2, total;
    if (!mul_ok((size_t)n_blocks * (size_t)h->n_kv_heads * (size_t)block_size, (size_t)h->head_dim * esz,
                   &kv->layer_bytes) ||
        !mul_ok(kv->layer_bytes, (size_t)h->n_layers, &total)) {
        free(kv);
        err_fail(err, TV_ERR_NOMEM, "KV cache: size overflows");
        return NULL;
    }
    kv->k = calloc(1, total);
    kv->v = calloc(1, total);
    if (!kv->k || !kv->v) goto oom;
    return kv;
oom:
    kv_cache_free(kv);
    err_fail(err, TV_ERR_NOMEM, "KV cache: cannot allocate %d blocks of %d tokens", n_blocks, block_size);
    return NULL;
}

void kv_cache_free(tv_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

// ---------------------------------------------------------------- forward state

struct tv_forward {
    const tv_model *m;
    tv_pool *pool;
    int max_tokens, max_logits;
    float *x;       // (T, dim) residual stream
    float *xb;      // (T, dim) normed input of a sublayer
    float *xb2;     // (T, dim) sublayer output
    float *q;       // (T, n_heads * head_dim)
    float *k;       // (T, n_kv_heads * head_dim)
    float *v;       // (T, n_kv_heads * head_dim)
    float *att;     // (T, n_heads * head_dim) attention output
    float *hb;      // (T, hidden)
    float *hb2;     // (T, hidden)
    float *lx;      // (L, dim) rows that need logits
    float *logits;  // (L, vocab)
    int32_t *tok_seq;  // (T) sequence index of each token
    void *wsp;      // matmul activation quantization scratch
    size_t wsp_size;
    float *rope_cs;      // (T, 2 * n_rot) per-token RoPE table (rope_table)
    tv_attn_seq *seqs;   // (T) attention's view of each sequence of the batch
    tv_attn_ws *attn_ws; // attention work planning and split-K scratch
};

static size_t max_wsize(const tv_model *m, int64_t n_tok) {
    const tv_hparams *h = model_hparams(m);
    const tv_layer *L = model_layers(m);
    size_t best = kern_matmul_wsize(model_output(m)->type, h->dim, n_tok);
    for (int l = 0; l < h->n_layers; l++) {
        const tv_tensor *ts[] = {&L[l].wq, &L[l].wk, &L[l].wv, &L[l].wo, &L[l].w_gate, &L[l].w_up, &L[l].w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            size_t s = kern_matmul_wsize(ts[i]->type, ts[i]->ne[0], n_tok);
            if (s > best) best = s;
        }
    }
    return best;
}

void forward_free(tv_forward *f) {
    if (!f) return;
    float *bufs[] = {f->x, f->xb, f->xb2, f->q, f->k, f->v, f->att, f->hb, f->hb2, f->lx, f->logits, f->rope_cs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->tok_seq);
    free(f->seqs);
    attn_ws_free(f->attn_ws);
    free(f->wsp);
    free(f);
}

tv_forward *forward_create(const tv_model *m, int max_tokens, int max_logits, tv_pool *pool, tv_error *err) {
    const tv_hparams *h = model_hparams(m);
    if (max_tokens <= 0 || max_logits <= 0 || max_logits > max_tokens) {
        err_fail(err, TV_ERR_INVALID, "forward: invalid sizes (%d tokens, %d logits)", max_tokens, max_logits);
        return NULL;
    }
    tv_forward *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->m = m;
    f->pool = pool;
    f->max_tokens = max_tokens;
    f->max_logits = max_logits;
    size_t T = (size_t)max_tokens, qd = (size_t)h->n_heads * h->head_dim, kvd = (size_t)h->n_kv_heads * h->head_dim;
    if (!(f->x = malloc(T * h->dim * sizeof(float))) || !(f->xb = malloc(T * h->dim * sizeof(float))) ||
        !(f->xb2 = malloc(T * h->dim * sizeof(float))) || !(f->q = malloc(T * qd * sizeof(float))) ||
        !(f->k = malloc(T * kvd * sizeof(float))) || !(f->v = malloc(T * kvd * sizeof(float))) ||
        !(f->att = malloc(T * qd * sizeof(float))) || !(f->hb = malloc(T * h->hidden_dim * sizeof(float))) ||
        !(f->hb2 = malloc(T * h->hidden_dim * sizeof(float))) ||
        !(f->lx = malloc((size_t)max_logits * h->dim * sizeof(float))) ||
        !(f->logits = malloc((size_t)max_logits * h->n_vocab * sizeof(float))) ||
        !(f->tok_seq = malloc(T * sizeof(int32_t))) ||
        !(f->rope_cs = malloc(T * 2 * (size_t)(h->n_rot > 0 ? h->n_rot : 1) * sizeof(float))) ||
        !(f->seqs = malloc(T * sizeof(tv_attn_seq))) || !(f->attn_ws = attn_ws_create(NULL)))
        goto oom;
    f->wsp_size = max_wsize(m, max_tokens);
    if (!(f->wsp = malloc(f->wsp_size ? f->wsp_size : 1))) goto oom;
    return f;
oom:
    forward_free(f);
    err_fail(err, TV_ERR_NOMEM, "forward: cannot allocate workspace for %d tokens", max_tokens);
    return NULL;
}

// ---------------------------------------------------------------- elementwise

// Row-parallel elementwise ops: each row is computed by one call of the op, so the bits do not
// depend on the thread count. Small batches (decode) run inline: waking the pool costs more.
typedef enum { EW_RMSNORM, EW_ROPE, EW_SWIGLU, EW_ADD } ew_kind;

typedef struct ew_args {
    const tv_ops *ops;
    ew_kind kind;
    int n_rows, n;       // rows, elements per row
    float *y;            // (n_rows, n) output (in place for rope/swiglu/add)
    const float *x;      // (n_rows, n) second operand (rmsnorm input, swiglu up, add addend)
    const float *w;      // (n) rmsnorm weight
    float eps;
    float *k;            // rope: (n_rows, n_kv_heads*head_dim) rotated with y = q
    const float *cs;     // rope: (n_rows, 2 * n_rot)
    const tv_hparams *h;
} ew_args;

static void ew_worker(void *arg, int ith, int nth) {
    const ew_args *a = arg;
    const int per = (a->n_rows + nth - 1) / nth, r0 = per * ith, r1 = r0 + per < a->n_rows ? r0 + per : a->n_rows;
    for (int r = r0; r < r1; r++) {
        float *y = a->y + (size_t)r * a->n;
        const float *x = a->x ? a->x + (size_t)r * a->n : NULL;
        switch (a->kind) {
        case EW_RMSNORM: a->ops->rmsnorm(y, x, a->w, a->n, a->eps); break;
        case EW_ROPE: {
            const tv_hparams *h = a->h;
            const float *cs = a->cs + (size_t)r * 2 * h->n_rot;
            a->ops->rope(y, h->n_heads, h->head_dim, h->n_rot, cs);
            a->ops->rope(a->k + (size_t)r * h->n_kv_heads * h->head_dim, h->n_kv_heads, h->head_dim, h->n_rot, cs);
            break;
        }
        case EW_SWIGLU: a->ops->swiglu(y, x, a->n); break;
        case EW_ADD: a->ops->add(y, x, a->n); break;
        }
    }
}

static void ew_run(tv_forward *f, const ew_args *a) {
    if ((int64_t)a->n_rows * a->n < 16384 || a->n_rows < 2)
        ew_worker((void *)a, 0, 1);
    else
        pool_run(f->pool, ew_worker, (void *)a);
}

// ---------------------------------------------------------------- attention

static inline const void *kv_row(const tv_kv_cache *kv, const uint8_t *pool, int layer, int32_t block, int kvh, int off) {
    size_t esz = kv->is_f32 ? 4 : 2;
    size_t idx = (((size_t)block * kv->n_kv_heads + kvh) * kv->block_size + off) * kv->head_dim;
    return pool + (size_t)layer * kv->layer_bytes + idx * esz;
}

// Writes the batch's new K/V rows (post-RoPE K) into their slots.
static void kv_store(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, int layer) {
    const tv_hparams *h = model_hparams(f->m);
    const int hd = h->head_dim, kvd = h->n_kv_heads * hd;
    for (int t = 0; t < b->n_tokens; t++) {
        const int32_t pos = b->positions[t];
        const int32_t block = b->block_tables[f->tok_seq[t]][pos / kv->block_size];
        const int off = pos % kv->block_size;
        for (int kvh = 0; kvh < h->n_kv_heads; kvh++) {
            const float *ks = f->k + (size_t)t * kvd + (size_t)kvh * hd, *vs = f->v + (size_t)t * kvd + (size_t)kvh * hd;
            void *kd = (void *)kv_row(kv, kv->k, layer, block, kvh, off);
            void *vd = (void *)kv_row(kv, kv->v, layer, block, kvh, off);
            if (kv->is_f32) {
                memcpy(kd, ks, (size_t)hd * sizeof(float));
                memcpy(vd, vs, (size_t)hd * sizeof(float));
            } else {   // F16 from_float: round-to-nearest-even, bit-exact on every path
                const tv_type_traits *t16 = kern_traits(TV_TYPE_F16);
                t16->from_float(ks, kd, hd);
                t16->from_float(vs, vd, hd);
            }
        }
    }
}

// ---------------------------------------------------------------- forward

static tv_status check_batch(tv_forward *f, const tv_kv_cache *kv, const tv_batch *b, tv_error *err) {
    const tv_hparams *h = model_hparams(f->m);
    if (b->n_tokens <= 0 || b->n_tokens > f->max_tokens || b->n_logits < 0 || b->n_logits > f->max_logits ||
        b->n_seqs <= 0 || b->q_start[0] != 0 || b->q_start[b->n_seqs] != b->n_tokens)
        return err_fail(err, TV_ERR_INVALID, "forward: malformed batch (%d tokens, %d seqs, %d logits)", b->n_tokens,
                       b->n_seqs, b->n_logits);
    if (kv->n_layers != h->n_layers || kv->n_kv_heads != h->n_kv_heads || kv->head_dim != h->head_dim)
        return err_fail(err, TV_ERR_INVALID, "forward: KV cache geometry does not match the model");
    for (int s = 0; s < b->n_seqs; s++) {
        if (b->q_start[s + 1] < b->q_start[s] || b->ctx_len[s] <= 0 || b->ctx_len[s] > h->n_ctx_train)
            return err_fail(err, TV_ERR_INVALID, "forward: sequence %d has an invalid range or context length %d", s,
                           b->ctx_len[s]);
        int n_bt = (b->ctx_len[s] + kv->block_size - 1) / kv->block_size;
        for (int i = 0; i < n_bt; i++)
            if (b->block_tables[s][i] < 0 || b->block_tables[s][i] >= kv->n_blocks)
                return err_fail(err, TV_ERR_INVALID, "forward: block %d of sequence %d out of range", i, s);
        for (int t = b->q_start[s]; t < b->q_start[s + 1]; t++) {
            f->tok_seq[t] = s;
            if (b->positions[t] < 0 || b->positions[t] >= b->ctx_len[s])
                return err_fail(err, TV_ERR_INVALID, "forward: token %d position %d outside its context of %d", t,
                               b->positions[t], b->ctx_len[s]);
            if (b->tokens[t] < 0 || b->tokens[t] >= h->n_vocab)
                return err_fail(err, TV_ERR_INVALID, "token id %d is out of the vocabulary (0..%d)", b->tokens[t],
                               h->n_vocab - 1);
        }
    }
    for (int i = 0; i < b->n_logits; i++)
        if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tokens)
            return err_fail(err, TV_ERR_INVALID, "forward: logit row %d out of range", b->logit_rows[i]);
    return TV_OK;
}

static void matmul(tv_forward *f, const tv_tensor *w, const float *x, int n_tok, float *y) {
    kern_matmul(w, x, n_tok, y, f->wsp, f->pool);
}

// Several projections of the same input (Q, K, V; gate, up): one activation quantization and one
// pool pass when their types allow it, else one matmul each.
static void matmul_shared(tv_forward *f, const tv_tensor *const *w, float *const *y, int n, const float *x, int n_tok) {
    bool share = true;
    for (int i = 1; i < n; i++) share = share && kern_matmul_can_share(w[0], w[i]);
    if (share) {
        kern_matmul_n(w, y, n, x, n_tok, f->wsp, f->pool);
        return;
    }
    for (int i = 0; i < n; i++) matmul(f, w[i], x, n_tok, y[i]);
}

tv_status forward_run(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, float **logits, tv_error *err) {
    tv_status st = check_batch(f, kv, b, err);
    if (st) return st;
    const tv_model *m = f->m;
    const tv_hparams *h = model_hparams(m);
    const tv_layer *layers = model_layers(m);
    const float *inv_freq = model_rope_inv_freq(m);
    const int T = b->n_tokens, dim = h->dim, hd = h->head_dim, hidden = h->hidden_dim;
    const int qd = h->n_heads * hd;
    const tv_ops *ops = ops_active();

    // embeddings: dequantize each token's row of token_embd
    const tv_tensor *emb = model_tok_embd(m);
    const tv_type_traits *et = kern_traits(emb->type);
    const size_t emb_row = kern_row_size(emb->type, dim);
    for (int t = 0; t < T; t++)
        et->to_float((const uint8_t *)emb->data + (size_t)b->tokens[t] * emb_row, f->x + (size_t)t * dim, dim);
    // RoPE cos/sin per token, once for all layers
    for (int t = 0; t < T; t++)
        rope_table(f->rope_cs + (size_t)t * 2 * h->n_rot, h->n_rot, inv_freq,
                      (float)b->positions[t] * h->rope_linear_scale);
    // attention's view of the batch: each sequence's query rows, positions and block table
    for (int s = 0; s < b->n_seqs; s++) {
        const int t0 = b->q_start[s];
        f->seqs[s] = (tv_attn_seq){.n_q = b->q_start[s + 1] - t0, .q = f->q + (size_t)t0 * qd,
                                   .out = f->att + (size_t)t0 * qd, .pos = b->positions + t0,
                                   .block_table = b->block_tables[s]};
    }
    tv_attn_args aa = {.ops = ops,
                       .geom = {h->n_heads, h->n_kv_heads, hd, kv->block_size, kv->is_f32, 1.0f / sqrtf((float)hd)},
                       .n_seqs = b->n_seqs,
                       .seqs = f->seqs};
    const ew_args norm = {.ops = ops, .kind = EW_RMSNORM, .n_rows = T, .n = dim, .y = f->xb, .x = f->x,
                          .eps = h->norm_eps};
    const ew_args rot = {.ops = ops, .kind = EW_ROPE, .n_rows = T, .n = qd, .y = f->q, .k = f->k, .cs = f->rope_cs,
                         .h = h};
    const ew_args resid = {.ops = ops, .kind = EW_ADD, .n_rows = T, .n = dim, .y = f->x, .x = f->xb2};
    const ew_args glu = {.ops = ops, .kind = EW_SWIGLU, .n_rows = T, .n = hidden, .y = f->hb, .x = f->hb2};

    for (int l = 0; l < h->n_layers; l++) {
        const tv_layer *L = &layers[l];
        ew_args an = norm;
        an.w = L->attn_norm.data;
        ew_run(f, &an);
        const tv_tensor *qkv[] = {&L->wq, &L->wk, &L->wv};
        float *const qkv_out[] = {f->q, f->k, f->v};
        matmul_shared(f, qkv, qkv_out, 3, f->xb, T);
        ew_run(f, &rot);
        kv_store(f, kv, b, l);
        aa.k_pool = kv->k + (size_t)l * kv->layer_bytes;
        aa.v_pool = kv->v + (size_t)l * kv->layer_bytes;
        if ((st = attn_run(&aa, f->attn_ws, f->pool, err))) return st;
        matmul(f, &L->wo, f->att, T, f->xb2);
        ew_run(f, &resid);

        ew_args fn = norm;
        fn.w = L->ffn_norm.data;
        ew_run(f, &fn);
        const tv_tensor *gu[] = {&L->w_gate, &L->w_up};
        float *const gu_out[] = {f->hb, f->hb2};
        matmul_shared(f, gu, gu_out, 2, f->xb, T);
        ew_run(f, &glu);
        matmul(f, &L->w_down, f->hb, T, f->xb2);
        ew_run(f, &resid);
    }

    for (int i = 0; i < b->n_logits; i++)
        ops->rmsnorm(f->lx + (size_t)i * dim, f->x + (size_t)b->logit_rows[i] * dim, model_output_norm(m)->data, dim,
                     h->norm_eps);
    if (b->n_logits > 0) matmul(f, model_output(m), f->lx, b->n_logits, f->logits);
    *logits = f->logits;
    return TV_OK;
}
