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
// and decode are one code path. Attention is flash-style: one pass over the key blocks with an
// online softmax, no (T × ctx) score buffer.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/status.h"

// ---------------------------------------------------------------- KV cache

size_t tv_kv_bytes_per_block(const tv_model *m, int block_size, bool is_f32) {
    const tv_hparams *h = tv_model_hparams(m);
    return 2 * (size_t)h->n_layers * (size_t)h->n_kv_heads * (size_t)block_size * (size_t)h->head_dim *
           (is_f32 ? 4 : 2);
}

tv_kv_cache *tv_kv_cache_create(const tv_model *m, int n_blocks, int block_size, bool is_f32, tv_error *err) {
    const tv_hparams *h = tv_model_hparams(m);
    if (n_blocks <= 0 || block_size <= 0 || block_size > 4096) {
        tv_fail(err, TV_ERR_INVALID, "KV cache: invalid geometry (%d blocks of %d tokens)", n_blocks, block_size);
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
    if (!tv_mul_ok((size_t)n_blocks * (size_t)h->n_kv_heads * (size_t)block_size, (size_t)h->head_dim * esz,
                   &kv->layer_bytes) ||
        !tv_mul_ok(kv->layer_bytes, (size_t)h->n_layers, &total)) {
        free(kv);
        tv_fail(err, TV_ERR_NOMEM, "KV cache: size overflows");
        return NULL;
    }
    kv->k = calloc(1, total);
    kv->v = calloc(1, total);
    if (!kv->k || !kv->v) goto oom;
    return kv;
oom:
    tv_kv_cache_free(kv);
    tv_fail(err, TV_ERR_NOMEM, "KV cache: cannot allocate %d blocks of %d tokens", n_blocks, block_size);
    return NULL;
}

void tv_kv_cache_free(tv_kv_cache *kv) {
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
    float *att_scratch;  // (n_threads, block_size_max + head_dim) per-thread attention scratch
    int att_scratch_bs;
};

static size_t max_wsize(const tv_model *m, int64_t n_tok) {
    const tv_hparams *h = tv_model_hparams(m);
    const tv_layer *L = tv_model_layers(m);
    size_t best = tv_matmul_wsize(tv_model_output(m)->type, h->dim, n_tok);
    for (int l = 0; l < h->n_layers; l++) {
        const tv_tensor *ts[] = {&L[l].wq, &L[l].wk, &L[l].wv, &L[l].wo, &L[l].w_gate, &L[l].w_up, &L[l].w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            size_t s = tv_matmul_wsize(ts[i]->type, ts[i]->ne[0], n_tok);
            if (s > best) best = s;
        }
    }
    return best;
}

void tv_forward_free(tv_forward *f) {
    if (!f) return;
    float *bufs[] = {f->x, f->xb, f->xb2, f->q, f->k, f->v, f->att, f->hb, f->hb2, f->lx, f->logits, f->att_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->tok_seq);
    free(f->wsp);
    free(f);
}

tv_forward *tv_forward_create(const tv_model *m, int max_tokens, int max_logits, tv_pool *pool, tv_error *err) {
    const tv_hparams *h = tv_model_hparams(m);
    if (max_tokens <= 0 || max_logits <= 0 || max_logits > max_tokens) {
        tv_fail(err, TV_ERR_INVALID, "forward: invalid sizes (%d tokens, %d logits)", max_tokens, max_logits);
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
        !(f->tok_seq = malloc(T * sizeof(int32_t))))
        goto oom;
    f->wsp_size = max_wsize(m, max_tokens);
    if (!(f->wsp = malloc(f->wsp_size ? f->wsp_size : 1))) goto oom;
    return f;
oom:
    tv_forward_free(f);
    tv_fail(err, TV_ERR_NOMEM, "forward: cannot allocate workspace for %d tokens", max_tokens);
    return NULL;
}

// ---------------------------------------------------------------- elementwise

// out (n) = x (n) / rms(x) * w (n)
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;   // double accumulation: stable for large dims, cheap next to the matmuls
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

// Rotates pairs (2i, 2i+1) of each head's first n_rot dims by pos * inv_freq[i] (GGUF llama /
// llama2.c "normal" RoPE layout).
static void rope(float *v, int n_heads, int head_dim, int n_rot, const float *inv_freq, float pos) {
    for (int i = 0; i < n_rot / 2; i++) {
        float ang = pos * inv_freq[i];
        float c = cosf(ang), s = sinf(ang);
        for (int hh = 0; hh < n_heads; hh++) {
            float *p = v + (size_t)hh * head_dim + 2 * i;
            float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

// ---------------------------------------------------------------- attention

typedef struct {
    tv_forward *f;
    const tv_kv_cache *kv;
    const tv_batch *b;
    int layer;
} att_args;

static inline const void *kv_row(const tv_kv_cache *kv, const uint8_t *pool, int layer, int32_t block, int kvh, int off) {
    size_t esz = kv->is_f32 ? 4 : 2;
    size_t idx = (((size_t)block * kv->n_kv_heads + kvh) * kv->block_size + off) * kv->head_dim;
    return pool + (size_t)layer * kv->layer_bytes + idx * esz;
}

static void att_worker(void *arg, int ith, int nth) {
    att_args *a = arg;
    tv_forward *f = a->f;
    const tv_kv_cache *kv = a->kv;
    const tv_batch *b = a->b;
    const tv_hparams *h = tv_model_hparams(f->m);
    const int hd = h->head_dim, bs = kv->block_size, group = h->n_heads / h->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = f->att_scratch + (size_t)ith * (size_t)(f->att_scratch_bs + 2 * hd);  // (bs)
    float *krow = scores + f->att_scratch_bs;                                               // (hd)
    float *vrow = krow + hd;                                                                // (hd)
    const int64_t n_items = (int64_t)b->n_tokens * h->n_heads;
    const int64_t per = (n_items + nth - 1) / nth;
    const int64_t i0 = per * ith, i1 = i0 + per < n_items ? i0 + per : n_items;
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / h->n_heads), head = (int)(it % h->n_heads), kvh = head / group;
        const int s = f->tok_seq[t];
        const int32_t pos = b->positions[t];
        const int32_t *bt = b->block_tables[s];
        const float *qv = f->q + (size_t)t * h->n_heads * hd + (size_t)head * hd;
        float *out = f->att + (size_t)t * h->n_heads * hd + (size_t)head * hd;
        float mx = -INFINITY, l = 0;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int blk = 0; blk <= pos / bs; blk++) {
            const int n = (blk + 1) * bs <= pos + 1 ? bs : pos + 1 - blk * bs;
            float bm = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kr;
                if (kv->is_f32) {
                    kr = kv_row(kv, kv->k, a->layer, bt[blk], kvh, j);
                } else {
                    const tv_f16 *k16 = kv_row(kv, kv->k, a->layer, bt[blk], kvh, j);
                    for (int d = 0; d < hd; d++) krow[d] = tv_f16_to_f32(k16[d]);
                    kr = krow;
                }
                float dot = 0;
                for (int d = 0; d < hd; d++) dot += qv[d] * kr[d];
                scores[j] = dot * scale;
                if (scores[j] > bm) bm = scores[j];
            }
            const float new_mx = bm > mx ? bm : mx;
            const float corr = expf(mx - new_mx);   // 0 on the first block (mx = -inf)
            l *= corr;
            for (int d = 0; d < hd; d++) out[d] *= corr;
            for (int j = 0; j < n; j++) {
                const float e = expf(scores[j] - new_mx);
                l += e;
                const float *vr;
                if (kv->is_f32) {
                    vr = kv_row(kv, kv->v, a->layer, bt[blk], kvh, j);
                } else {
                    const tv_f16 *v16 = kv_row(kv, kv->v, a->layer, bt[blk], kvh, j);
                    for (int d = 0; d < hd; d++) vrow[d] = tv_f16_to_f32(v16[d]);
                    vr = vrow;
                }
                for (int d = 0; d < hd; d++) out[d] += e * vr[d];
            }
            mx = new_mx;
        }
        const float inv = 1.0f / l;
        for (int d = 0; d < hd; d++) out[d] *= inv;
    }
}

// Writes the batch's new K/V rows (post-RoPE K) into their slots.
static void kv_store(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, int layer) {
    const tv_hparams *h = tv_model_hparams(f->m);
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
            } else {
                tv_f16 *k16 = kd, *v16 = vd;
                for (int d = 0; d < hd; d++) {
                    k16[d] = tv_f32_to_f16(ks[d]);
                    v16[d] = tv_f32_to_f16(vs[d]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- forward

static tv_status check_batch(tv_forward *f, const tv_kv_cache *kv, const tv_batch *b, tv_error *err) {
    const tv_hparams *h = tv_model_hparams(f->m);
    if (b->n_tokens <= 0 || b->n_tokens > f->max_tokens || b->n_logits < 0 || b->n_logits > f->max_logits ||
        b->n_seqs <= 0 || b->q_start[0] != 0 || b->q_start[b->n_seqs] != b->n_tokens)
        return tv_fail(err, TV_ERR_INVALID, "forward: malformed batch (%d tokens, %d seqs, %d logits)", b->n_tokens,
                       b->n_seqs, b->n_logits);
    if (kv->n_layers != h->n_layers || kv->n_kv_heads != h->n_kv_heads || kv->head_dim != h->head_dim)
        return tv_fail(err, TV_ERR_INVALID, "forward: KV cache geometry does not match the model");
    if (kv->block_size > f->att_scratch_bs) {
        free(f->att_scratch);
        int nth = tv_pool_size(f->pool);
        f->att_scratch = malloc((size_t)nth * (size_t)(kv->block_size + 2 * h->head_dim) * sizeof(float));
        if (!f->att_scratch) {
            f->att_scratch_bs = 0;
            return tv_fail(err, TV_ERR_NOMEM, "forward: out of memory");
        }
        f->att_scratch_bs = kv->block_size;
    }
    for (int s = 0; s < b->n_seqs; s++) {
        if (b->q_start[s + 1] < b->q_start[s] || b->ctx_len[s] <= 0 || b->ctx_len[s] > h->n_ctx_train)
            return tv_fail(err, TV_ERR_INVALID, "forward: sequence %d has an invalid range or context length %d", s,
                           b->ctx_len[s]);
        int n_bt = (b->ctx_len[s] + kv->block_size - 1) / kv->block_size;
        for (int i = 0; i < n_bt; i++)
            if (b->block_tables[s][i] < 0 || b->block_tables[s][i] >= kv->n_blocks)
                return tv_fail(err, TV_ERR_INVALID, "forward: block %d of sequence %d out of range", i, s);
        for (int t = b->q_start[s]; t < b->q_start[s + 1]; t++) {
            f->tok_seq[t] = s;
            if (b->positions[t] < 0 || b->positions[t] >= b->ctx_len[s])
                return tv_fail(err, TV_ERR_INVALID, "forward: token %d position %d outside its context of %d", t,
                               b->positions[t], b->ctx_len[s]);
            if (b->tokens[t] < 0 || b->tokens[t] >= h->n_vocab)
                return tv_fail(err, TV_ERR_INVALID, "token id %d is out of the vocabulary (0..%d)", b->tokens[t],
                               h->n_vocab - 1);
        }
    }
    for (int i = 0; i < b->n_logits; i++)
        if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tokens)
            return tv_fail(err, TV_ERR_INVALID, "forward: logit row %d out of range", b->logit_rows[i]);
    return TV_OK;
}

static void matmul(tv_forward *f, const tv_tensor *w, const float *x, int n_tok, float *y) {
    tv_matmul(w, x, n_tok, y, f->wsp, f->pool);
}

tv_status tv_forward_run(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, float **logits, tv_error *err) {
    tv_status st = check_batch(f, kv, b, err);
    if (st) return st;
    const tv_model *m = f->m;
    const tv_hparams *h = tv_model_hparams(m);
    const tv_layer *layers = tv_model_layers(m);
    const float *inv_freq = tv_model_rope_inv_freq(m);
    const int T = b->n_tokens, dim = h->dim, hd = h->head_dim, hidden = h->hidden_dim;
    const int qd = h->n_heads * hd, kvd = h->n_kv_heads * hd;

    // embeddings: dequantize each token's row of token_embd
    const tv_tensor *emb = tv_model_tok_embd(m);
    const tv_type_traits *et = tv_traits(emb->type);
    const size_t emb_row = tv_row_size(emb->type, dim);
    for (int t = 0; t < T; t++)
        et->to_float((const uint8_t *)emb->data + (size_t)b->tokens[t] * emb_row, f->x + (size_t)t * dim, dim);

    for (int l = 0; l < h->n_layers; l++) {
        const tv_layer *L = &layers[l];
        for (int t = 0; t < T; t++)
            rmsnorm(f->xb + (size_t)t * dim, f->x + (size_t)t * dim, L->attn_norm.data, dim, h->norm_eps);
        matmul(f, &L->wq, f->xb, T, f->q);
        matmul(f, &L->wk, f->xb, T, f->k);
        matmul(f, &L->wv, f->xb, T, f->v);
        for (int t = 0; t < T; t++) {
            float pos = (float)b->positions[t] * h->rope_linear_scale;
            rope(f->q + (size_t)t * qd, h->n_heads, hd, h->n_rot, inv_freq, pos);
            rope(f->k + (size_t)t * kvd, h->n_kv_heads, hd, h->n_rot, inv_freq, pos);
        }
        kv_store(f, kv, b, l);
        att_args aa = {f, kv, b, l};
        tv_pool_run(f->pool, att_worker, &aa);
        matmul(f, &L->wo, f->att, T, f->xb2);
        for (size_t i = 0; i < (size_t)T * dim; i++) f->x[i] += f->xb2[i];

        for (int t = 0; t < T; t++)
            rmsnorm(f->xb + (size_t)t * dim, f->x + (size_t)t * dim, L->ffn_norm.data, dim, h->norm_eps);
        matmul(f, &L->w_gate, f->xb, T, f->hb);
        matmul(f, &L->w_up, f->xb, T, f->hb2);
        for (size_t i = 0; i < (size_t)T * hidden; i++) {
            float g = f->hb[i];
            f->hb[i] = g / (1.0f + expf(-g)) * f->hb2[i];
        }
        matmul(f, &L->w_down, f->hb, T, f->xb2);
        for (size_t i = 0; i < (size_t)T * dim; i++) f->x[i] += f->xb2[i];
    }

    for (int i = 0; i < b->n_logits; i++)
        rmsnorm(f->lx + (size_t)i * dim, f->x + (size_t)b->logit_rows[i] * dim, tv_model_output_norm(m)->data, dim,
                h->norm_eps);
    if (b->n_logits > 0) matmul(f, tv_model_output(m), f->lx, b->n_logits, f->logits);
    *logits = f->logits;
    return TV_OK;
}
