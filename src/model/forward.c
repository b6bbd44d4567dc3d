// forward.c — the forward pass over a flat batch, with a paged KV cache, for any model family:
//
//   x = embed(tokens)                                          (T, dim)
//   per layer l:  family->block(x, layer l's weights)          (family_*.c, composed of layers.h)
//   logits = rmsnorm(x[logit_rows])·Wout                       (n_logits, vocab)
//
// Every token's computation depends only on its own row and its sequence's KV, so a request's
// output does not depend on what else is batched (batch invariance), and prefill, chunked prefill
// and decode are one code path. Attention is flash-style (kernels/attention.c): online softmax over
// the key blocks in fixed chunks of positions, no (T × ctx) score buffer; the chunk order depends
// on the position alone, so splitting a long decode over threads does not change a bit.
// Every computation goes through the engine's backend (backend/backend.h): matmuls, attention,
// the row-wise ops, embedding lookup and KV writes run with that backend's kernel path and pool.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "model/family.h"
#include "model/layers.h"
#include "model/model.h"
#include "util/alloc.h"
#include "util/status.h"

// ---------------------------------------------------------------- KV cache

// The largest head size and K (= V) row length (n_kv_heads * head_dim) over the layers: the model's,
// or a layer's own shape (gemma4). Every layer's KV pool and the activations are sized for them.
static void layer_shape_max(const tv_model *m, int *hd_max, size_t *kvd_max) {
    const tv_hparams *h = model_hparams(m);
    const tv_layer *layers = model_layers(m);
    *hd_max = h->head_dim;   // at least the model's: forward_run points the query rows with it
    *kvd_max = 0;
    for (int l = 0; l < h->n_layers; l++) {
        const int hd = layers[l].head_dim ? layers[l].head_dim : h->head_dim;
        const size_t kvd = (size_t)(layers[l].n_kv_heads ? layers[l].n_kv_heads : h->n_kv_heads) * hd;
        if (hd > *hd_max) *hd_max = hd;
        if (kvd > *kvd_max) *kvd_max = kvd;
    }
}

size_t kv_cache_bytes_per_block(const tv_model *m, int block_size, bool is_f32) {
    int hd_max;
    size_t kvd_max;
    layer_shape_max(m, &hd_max, &kvd_max);
    return (model_hparams(m)->n_lora_kv ? 1 : 2) * (size_t)model_n_kv_layers(m) * kvd_max * (size_t)block_size * (is_f32 ? 4 : 2);
}

tv_kv_cache *kv_cache_create(const tv_model *m, int n_blocks, int block_size, bool is_f32, tv_error *err) {
    const tv_hparams *h = model_hparams(m);
    if (n_blocks <= 0 || block_size <= 0 || block_size > 4096) {
        err_fail(err, TV_ERR_INVALID, "KV cache: invalid geometry (%d blocks of %d tokens)", n_blocks, block_size);
        return NULL;
    }
    tv_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) goto oom;
    int l0, l1;
    model_layer_range(m, &l0, &l1);
    kv->n_layers = model_n_kv_layers(m);   // not the linear-attention (state slots) or shared-KV layers
    kv->layer_begin = l0;                   // a pipeline stage's (hybrid models run whole)
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->n_kv_heads = h->n_kv_heads;
    kv->head_dim = h->head_dim;
    kv->is_f32 = is_f32;
    size_t esz = is_f32 ? 4 : 2, total, kvd_max;
    int hd_max;
    layer_shape_max(m, &hd_max, &kvd_max);
    if (!mul_ok((size_t)n_blocks * (size_t)block_size, kvd_max * esz, &kv->layer_bytes) ||
        !mul_ok(kv->layer_bytes, (size_t)(kv->n_layers > 0 ? kv->n_layers : 1), &total)) {
        free(kv);
        err_fail(err, TV_ERR_NOMEM, "KV cache: size overflows");
        return NULL;
    }
    kv->k = calloc(1, total);
    kv->v = h->n_lora_kv ? NULL : calloc(1, total);   // latent attention: values are read from K
    if (!kv->k || (!kv->v && !h->n_lora_kv)) goto oom;
    return kv;
oom:
    kv_cache_free(kv);
    err_fail(err, TV_ERR_NOMEM, "KV cache: cannot allocate %d blocks of %d tokens", n_blocks, block_size);
    return NULL;
}

static void state_cache_free(tv_state_cache *sc) {
    if (!sc) return;
    free(sc->conv);
    free(sc->ssm);
    free(sc->n_pos);
    free(sc);
}

// One linear layer's state of one slot, in floats: the conv window and the matrices.
static void state_floats(const tv_hparams *h, size_t *conv, size_t *ssm) {
    const size_t conv_dim = 2 * (size_t)h->ssm_n_k_heads * h->ssm_head_dim + (size_t)h->ssm_d_inner;
    *conv = (size_t)(h->ssm_d_conv - 1) * conv_dim;
    *ssm = (size_t)h->ssm_n_v_heads * kern_gdn_head_floats(h->ssm_head_dim);
}

size_t kv_cache_state_bytes_per_slot(const tv_model *m) {
    const tv_hparams *h = model_hparams(m);
    size_t conv, ssm;
    state_floats(h, &conv, &ssm);
    return h->n_linear > 0 ? (size_t)h->n_linear * (conv + ssm) * sizeof(float) : 0;
}

tv_status kv_cache_add_state(tv_kv_cache *kv, const tv_model *m, int n_slots, tv_error *err) {
    const tv_hparams *h = model_hparams(m);
    if (h->n_linear <= 0 || n_slots < 1 || kv->state)
        return err_fail(err, TV_ERR_INVALID, "KV cache: state slots are for hybrid models, once, at least one (%d)",
                        n_slots);
    tv_state_cache *sc = calloc(1, sizeof *sc);
    if (!sc) return err_fail(err, TV_ERR_NOMEM, "KV cache: out of memory");
    sc->n_slots = n_slots;
    sc->n_linear = h->n_linear;
    state_floats(h, &sc->conv_floats, &sc->ssm_floats);
    const size_t per_layer = (size_t)n_slots * (size_t)h->n_linear;
    sc->conv = calloc(per_layer, sc->conv_floats * sizeof(float));
    sc->ssm = calloc(per_layer, sc->ssm_floats * sizeof(float));
    sc->n_pos = calloc((size_t)n_slots, sizeof(int32_t));
    if (!sc->conv || !sc->ssm || !sc->n_pos) {
        state_cache_free(sc);
        return err_fail(err, TV_ERR_NOMEM, "KV cache: cannot allocate %d state slots of %zu bytes", n_slots,
                        kv_cache_state_bytes_per_slot(m));
    }
    kv->state = sc;
    return TV_OK;
}

void kv_cache_state_copy(tv_kv_cache *kv, int32_t dst, int32_t src) {
    tv_state_cache *sc = kv->state;
    TV_CHECK(sc && dst >= 0 && dst < sc->n_slots && src >= 0 && src < sc->n_slots);
    if (dst == src) return;
    for (int li = 0; li < sc->n_linear; li++) {
        const size_t d = (size_t)li * (size_t)sc->n_slots + (size_t)dst, o = (size_t)li * (size_t)sc->n_slots + (size_t)src;
        memcpy(sc->conv + d * sc->conv_floats, sc->conv + o * sc->conv_floats, sc->conv_floats * sizeof(float));
        memcpy(sc->ssm + d * sc->ssm_floats, sc->ssm + o * sc->ssm_floats, sc->ssm_floats * sizeof(float));
    }
    sc->n_pos[dst] = sc->n_pos[src];
}

void kv_cache_free(tv_kv_cache *kv) {
    if (!kv) return;
    state_cache_free(kv->state);
    free(kv->k);
    free(kv->v);
    free(kv);
}

// ---------------------------------------------------------------- forward state

struct tv_forward {
    const tv_model *m;
    backend *be;
    int layer_begin, layer_end;   // the model's layers (model_layer_range); is_last: end == n_layers
    bool is_last;
    int max_tokens, max_logits;
    const float *rope_inv_freq;   // (n_rot / 2) the model's, for the context it runs with
    layer_state s;       // the blocks' view: activation buffers (owned) sized for max_tokens, batch fields per run
    float *lx;           // (L, dim) rows that need logits
    float *logits;       // (L, vocab)
    int32_t *tok_seq;    // (T) sequence index of each token
    int64_t *slots;      // (T) KV slot of each token: block * block_size + offset
    double t_linear_ms, t_full_ms;   // hybrid models: time in each kind of layer (forward_layer_times)
    float *rope_cs;      // (T, 2 * n_rot) per-token RoPE table (rope_table)
    float *rope_cs_swa;  // (T, 2 * n_rot_swa) the sliding layers' table, when the model has one
    float *ones;         // (max head_dim) 1.0
    tv_attn_seq *seqs;   // (T) attention's view of each sequence of the batch
    tv_attn_seq *seqs_shaped;   // (T) scratch of layers with their own shape
    float *attn_temp;    // (T) per-token query temperature, when h->attn_temp_scale is set
    float *mtp_cat;      // (T, 2 * dim) an MTP layer's input rows [normed embedding, normed hidden state]
};

const float *forward_logit_hidden(const tv_forward *f) { return f->lx; }

forward_times forward_layer_times(const tv_forward *f) {
    return (forward_times){f->t_linear_ms, f->t_full_ms, f->s.t_gdn_ms, f->s.t_attn_kernel_ms};
}

void forward_free(tv_forward *f) {
    if (!f) return;
    layer_state *s = &f->s;
    float *bufs[] = {s->x, s->xb, s->xb2, s->q, s->k, s->v, s->att, s->hb, s->hb2, f->lx, f->logits, f->rope_cs,
                    f->rope_cs_swa, f->ones, s->moe_logits, s->moe_w, s->moe_g, s->moe_u, s->moe_y,
                    s->q_gated, s->attn_gate, s->ssm_qkv, s->ssm_z, s->ssm_alpha, s->ssm_beta, s->ssm_ba, s->ssm_o,
                    s->pl_inp, s->pl_buf,
                    s->mla_q, s->mla_qa, s->mla_c, s->mla_pe, s->mla_x, s->mla_y, s->mla_o, s->mla_cc, s->mla_cpe,
                    s->mla_ky, s->mla_kp, s->mla_vp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s->moe_ids);
    free(s->moe_x_row);
    free(s->moe_pos);
    free(s->moe_off);
    free(s->mla_row);
    free(s->mla_off);
    free(s->mla_tok);
    free(s->mla_seqs);
    free(s->mla_crow);
    free(s->mla_tbl);
    free(f->tok_seq);
    free(f->slots);
    free(f->seqs);
    free(f->seqs_shaped);
    free(f->attn_temp);
    free(f->mtp_cat);
    free(s->gdn_conv);
    free(s->gdn_ssm);
    free(s->gdn_ckpt_conv);
    free(s->gdn_ckpt_ssm);
    free(s->gdn_rb_conv);
    free(s->gdn_rb_ssm);
    free(f);
}

tv_forward *forward_create(const tv_model *m, int n_ctx, int max_tokens, int max_logits, backend *be, tv_error *err) {
    const tv_hparams *h = model_hparams(m);
    if (max_tokens <= 0 || max_logits <= 0 || max_logits > max_tokens) {
        err_fail(err, TV_ERR_INVALID, "forward: invalid sizes (%d tokens, %d logits)", max_tokens, max_logits);
        return NULL;
    }
    tv_forward *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->m = m;
    f->be = be;
    model_layer_range(m, &f->layer_begin, &f->layer_end);
    f->is_last = f->layer_end == h->n_layers;
    f->rope_inv_freq = model_rope_inv_freq(m, n_ctx);
    f->max_tokens = max_tokens;
    f->max_logits = max_logits;
    layer_state *s = &f->s;
    s->h = h;
    s->be = be;
    int hd_max;
    size_t kvd;
    layer_shape_max(m, &hd_max, &kvd);
    size_t T = (size_t)max_tokens, qd = (size_t)h->n_heads * hd_max;
    const size_t ff = (size_t)(h->ff_shexp > h->hidden_dim ? h->ff_shexp : h->hidden_dim);
    if (!(s->x = mem_scratch(T * h->dim * sizeof(float))) || !(s->xb = mem_scratch(T * h->dim * sizeof(float))) ||
        !(s->xb2 = mem_scratch(T * h->dim * sizeof(float))) || !(s->q = mem_scratch(T * qd * sizeof(float))) ||
        !(s->k = mem_scratch(T * kvd * sizeof(float))) || !(s->v = mem_scratch(T * kvd * sizeof(float))) ||
        !(s->att = mem_scratch(T * qd * sizeof(float))) || !(s->hb = mem_scratch(T * ff * sizeof(float))) ||
        !(s->hb2 = mem_scratch(T * ff * sizeof(float))) ||
        (f->is_last && !(f->lx = malloc((size_t)max_logits * h->dim * sizeof(float)))) ||
        (f->is_last && !(f->logits = malloc((size_t)max_logits * h->n_vocab * sizeof(float)))) ||
        !(f->tok_seq = malloc(T * sizeof(int32_t))) || !(f->slots = malloc(T * sizeof(int64_t))) ||
        !(f->rope_cs = malloc(T * 2 * (size_t)(h->n_rot > 0 ? h->n_rot : 1) * sizeof(float))) ||
        !(f->seqs = malloc(T * sizeof(tv_attn_seq))) || !(f->seqs_shaped = malloc(T * sizeof(tv_attn_seq))) ||
        !(f->ones = malloc((size_t)hd_max * sizeof(float))) ||
        (model_rope_inv_freq_swa(m) && !(f->rope_cs_swa = malloc(T * 2 * (size_t)h->n_rot_swa * sizeof(float)))) ||
        (h->attn_temp_scale != 0 && !(f->attn_temp = malloc(T * sizeof(float)))) ||
        (model_weights(m)->mtp_eh_proj.data && !(f->mtp_cat = malloc(T * 2 * h->dim * sizeof(float)))))
        goto oom;
    if (h->n_expert > 0) {   // the experts' grouped rows: T * k
        const size_t TK = T * (size_t)h->n_expert_used;
        if (!(s->moe_logits = mem_scratch(T * (size_t)h->n_expert * sizeof(float))) ||
            !(s->moe_ids = malloc(TK * sizeof(int32_t))) || !(s->moe_w = malloc(TK * sizeof(float))) ||
            !(s->moe_x_row = malloc(TK * sizeof(int32_t))) || !(s->moe_pos = malloc(TK * sizeof(int32_t))) ||
            !(s->moe_off = malloc(((size_t)h->n_expert + 1) * sizeof(int32_t))) ||
            !(s->moe_g = mem_scratch(TK * (size_t)h->ff_exp * sizeof(float))) ||
            !(s->moe_u = mem_scratch(TK * (size_t)h->ff_exp * sizeof(float))) ||
            !(s->moe_y = mem_scratch(TK * (size_t)h->dim * sizeof(float))))
            goto oom;
    }
    if (h->ssm_d_inner > 0 &&   // hybrid (or its MTP layer): the gated query of the attention layers
        (!(s->q_gated = mem_scratch(T * 2 * qd * sizeof(float))) || !(s->attn_gate = mem_scratch(T * qd * sizeof(float)))))
        goto oom;
    if (h->n_linear > 0) {   // hybrid: the linear layers' rows
        const size_t conv_dim = 2 * (size_t)h->ssm_n_k_heads * h->ssm_head_dim + (size_t)h->ssm_d_inner;
        const size_t nv = (size_t)h->ssm_n_v_heads, inner = (size_t)h->ssm_d_inner;
        if (!(s->ssm_qkv = mem_scratch(T * conv_dim * sizeof(float))) || !(s->ssm_z = mem_scratch(T * inner * sizeof(float))) ||
            !(s->ssm_alpha = malloc(T * nv * sizeof(float))) || !(s->ssm_beta = malloc(T * nv * sizeof(float))) ||
            !(s->ssm_ba = malloc(T * 2 * nv * sizeof(float))) ||
            !(s->ssm_o = mem_scratch(T * inner * sizeof(float))) || !(s->gdn_conv = malloc(T * sizeof(float *))) ||
            !(s->gdn_ssm = malloc(T * sizeof(float *))) || !(s->gdn_ckpt_conv = malloc(T * sizeof(float *))) ||
            !(s->gdn_ckpt_ssm = malloc(T * sizeof(float *))) || !(s->gdn_rb_conv = malloc(T * sizeof(float *))) ||
            !(s->gdn_rb_ssm = malloc(T * sizeof(float *))))
            goto oom;
    }
    if (h->n_embd_pl > 0) {   // per-layer inputs: (n_layers, T, P) and a scratch of the same size
        const size_t n_pl = T * (size_t)h->n_layers * (size_t)h->n_embd_pl;
        if (!(s->pl_inp = mem_scratch(n_pl * sizeof(float))) || !(s->pl_buf = mem_scratch(n_pl * sizeof(float)))) goto oom;
    }
    if (h->n_lora_kv > 0) {   // latent attention: per-head rows T * n_heads, grouped by head
        const size_t TH = T * (size_t)h->n_heads, r = (size_t)h->n_lora_kv, dk = (size_t)h->head_dim_k_mla,
                     dv = (size_t)h->head_dim_v_mla, xr = r > dk ? r : dk, yr = r > dv ? r : dv;
        if (!(s->mla_q = mem_scratch(TH * dk * sizeof(float))) ||
            (h->n_lora_q && !(s->mla_qa = malloc(T * (size_t)h->n_lora_q * sizeof(float)))) ||
            !(s->mla_c = malloc(T * r * sizeof(float))) || !(s->mla_pe = malloc(T * (size_t)h->n_rot * sizeof(float))) ||
            !(s->mla_x = mem_scratch(TH * xr * sizeof(float))) || !(s->mla_y = mem_scratch(TH * yr * sizeof(float))) ||
            !(s->mla_o = mem_scratch(TH * dv * sizeof(float))) || !(s->mla_row = malloc(TH * sizeof(int32_t))) ||
            !(s->mla_off = malloc(((size_t)h->n_heads + 1) * sizeof(int32_t))) ||
            !(s->mla_tok = malloc(T * sizeof(int32_t))) || !(s->mla_seqs = malloc(T * sizeof(tv_attn_seq))))
            goto oom;
        if (model_mla_may_expand(h)) {   // the expanded form: a context of up to n_ctx keys, heads in
            // groups whose decompressed rows and K/V pools take at most MLA_X_BUDGET floats (at least one head)
            enum { MLA_X_BUDGET = 16 << 20 };
            const size_t nope = dk - (size_t)h->n_rot, ky = nope > dv ? nope : dv, per = ky + 2 * dk + 1;
            // (contexts past 32768 keys run absorbed: the scratch would outweigh the gain)
            const size_t ctx = n_ctx <= 0 ? 1 : n_ctx > 32768 ? 32768 : (size_t)n_ctx;
            const size_t cap = (ctx + MLA_XBS - 1) / MLA_XBS * MLA_XBS;
            size_t heads = MLA_X_BUDGET / (cap * per);
            heads = heads < 1 ? 1 : heads > (size_t)h->n_heads ? (size_t)h->n_heads : heads;
            s->mla_ctx_cap = (int)cap;
            s->mla_heads_cap = (int)heads;
            if (!(s->mla_cc = malloc(cap * r * sizeof(float))) ||
                !(s->mla_cpe = malloc(cap * (size_t)h->n_rot * sizeof(float))) ||
                !(s->mla_ky = malloc(heads * cap * ky * sizeof(float))) ||
                !(s->mla_kp = calloc(heads * cap * dk, sizeof(float))) ||
                !(s->mla_vp = calloc(heads * cap * dk, sizeof(float))) ||   // V's padding stays 0
                !(s->mla_crow = malloc(heads * cap * sizeof(int32_t))) ||
                !(s->mla_tbl = malloc(cap / MLA_XBS * sizeof(int32_t))))
                goto oom;
            for (size_t i = 0; i < cap / MLA_XBS; i++) s->mla_tbl[i] = (int32_t)i;
        }
    }
    for (int i = 0; i < hd_max; i++) f->ones[i] = 1.0f;
    s->ones = f->ones;
    s->seqs_shaped = f->seqs_shaped;
    s->rope_cs = f->rope_cs;
    s->rope_cs_swa = f->rope_cs_swa;
    s->is_rope_neox = model_family_of(m)->is_rope_neox;
    s->attn_temp = f->attn_temp;
    s->slots = f->slots;
    int n_mats;
    const tv_tensor *const *mats = model_matrices(m, &n_mats), *out = model_output(m);
    if (backend_prepare(be, mats, n_mats, max_tokens, err) || (f->is_last && backend_prepare(be, &out, 1, max_logits, err))) {
        forward_free(f);
        return NULL;
    }
    // 3-D tensors: experts up to T * k grouped rows, per-head matrices (latent attention) T * n_heads
    const int per_tok = h->n_lora_kv && h->n_heads > h->n_expert_used ? h->n_heads : h->n_expert_used;
    for (int i = 0; i < n_mats; i++)
        if (mats[i]->ne[2] > 1 && backend_prepare(be, &mats[i], 1, max_tokens * per_tok, err)) {
            forward_free(f);
            return NULL;
        }
    // the expanded form's decompression: every context row for heads_cap heads
    for (int l = f->layer_begin; s->mla_ctx_cap && l < f->layer_end; l++) {
        const tv_layer *L = &model_layers(m)[l];
        const tv_tensor *w[] = {&L->wk_bt, &L->wv_b};
        for (int i = 0; i < 2; i++)
            if (w[i]->data && backend_prepare(be, &w[i], 1, s->mla_heads_cap * s->mla_ctx_cap, err)) {
                forward_free(f);
                return NULL;
            }
    }
    return f;
oom:
    forward_free(f);
    err_fail(err, TV_ERR_NOMEM, "forward: cannot allocate workspace for %d tokens", max_tokens);
    return NULL;
}

// ---------------------------------------------------------------- forward

static tv_status check_batch(tv_forward *f, const tv_kv_cache *kv, const tv_batch *b, tv_error *err) {
    const tv_hparams *h = model_hparams(f->m);
    if (b->n_tokens <= 0 || b->n_tokens > f->max_tokens || b->n_logits < 0 || b->n_logits > f->max_logits || b->n_layers < 0 ||
        b->n_seqs <= 0 || b->q_start[0] != 0 || b->q_start[b->n_seqs] != b->n_tokens)
        return err_fail(err, TV_ERR_INVALID, "forward: malformed batch (%d tokens, %d seqs, %d logits)", b->n_tokens,
                       b->n_seqs, b->n_logits);
    if (kv->layer_begin != f->layer_begin || kv->n_layers != model_n_kv_layers(f->m) ||
        kv->n_kv_heads != h->n_kv_heads || kv->head_dim != h->head_dim)
        return err_fail(err, TV_ERR_INVALID, "forward: KV cache geometry does not match the model");
    if ((f->layer_begin > 0) != (b->hidden != NULL) || (b->n_layers > 0 && (f->layer_begin > 0 || !f->is_last)))
        return err_fail(err, TV_ERR_INVALID, "forward: a stage from layer %d needs %s hidden state%s", f->layer_begin,
                        f->layer_begin > 0 ? "the previous stage's" : "no", b->n_layers > 0 ? " and runs no draft" : "");
    if (!model_weights(f->m)->mtp_eh_proj.data != !b->mtp_hidden || (b->hidden_cache && !f->is_last))
        return err_fail(err, TV_ERR_INVALID, "forward: %s", b->mtp_hidden ? "only an MTP layer reads previous hidden states"
                                                         : b->hidden_cache ? "a stage before the last has no final hidden state"
                                                                           : "an MTP layer needs each row's previous hidden state");
    if (h->n_linear > 0) {   // hybrid: every sequence continues its own state slot
        const tv_state_cache *sc = kv->state;
        if (!sc || !b->state_slots)
            return err_fail(err, TV_ERR_INVALID, "forward: a hybrid model's batch needs state slots");
        if (b->n_layers > 0 && b->n_layers < h->n_layers)
            return err_fail(err, TV_ERR_INVALID, "forward: a hybrid model runs whole (its linear layers' state)");
        for (int s = 0; s < b->n_seqs; s++) {
            const int32_t slot = b->state_slots[s];
            if (slot < 0 || slot >= sc->n_slots)
                return err_fail(err, TV_ERR_INVALID, "forward: state slot %d of sequence %d out of range", slot, s);
            for (int o = 0; o < s; o++)
                if (b->state_slots[o] == slot)
                    return err_fail(err, TV_ERR_INVALID, "forward: sequences %d and %d share state slot %d", o, s,
                                    slot);
            const int t0 = b->q_start[s], p0 = b->positions[t0];
            if (p0 != 0 && p0 != sc->n_pos[slot])
                return err_fail(err, TV_ERR_INVALID,
                                "forward: sequence %d continues at position %d but its state slot %d holds %d tokens", s,
                                p0, slot, sc->n_pos[slot]);
            for (int t = t0 + 1; t < b->q_start[s + 1]; t++)
                if (b->positions[t] != p0 + (t - t0))
                    return err_fail(err, TV_ERR_INVALID, "forward: sequence %d's positions are not consecutive", s);
            const int32_t r0 = b->state_rollback ? b->state_rollback[s] : -1, n_rb = b->q_start[s + 1] - t0 - 1;
            if (r0 >= 0 && n_rb > 0) {   // rollback points: slots [r0, r0 + n_rb) no other role uses
                bool is_bad = r0 + n_rb > sc->n_slots;
                for (int o = 0; o < b->n_seqs && !is_bad; o++) {
                    const int32_t o0 = o != s && b->state_rollback[o] >= 0 ? b->state_rollback[o] : -1;
                    const int n_o = o0 >= 0 ? b->q_start[o + 1] - b->q_start[o] - 1 : 0;
                    const int32_t c = b->state_ckpt_rows && b->state_ckpt_rows[o] ? b->state_ckpt_slots[o] : -1;
                    is_bad = (b->state_slots[o] >= r0 && b->state_slots[o] < r0 + n_rb) || (c >= r0 && c < r0 + n_rb) ||
                             (n_o > 0 && o0 < r0 + n_rb && r0 < o0 + n_o);
                }
                if (is_bad)
                    return err_fail(err, TV_ERR_INVALID, "forward: rollback points of sequence %d (slots %d..%d) invalid",
                                    s, r0, r0 + n_rb - 1);
            }
            if (!b->state_ckpt_rows || b->state_ckpt_rows[s] == 0) continue;
            const int32_t c = b->state_ckpt_slots[s];
            bool is_bad = c < 0 || c >= sc->n_slots || b->state_ckpt_rows[s] < 0 ||
                           b->state_ckpt_rows[s] > b->q_start[s + 1] - t0;
            for (int o = 0; o < b->n_seqs && !is_bad; o++)
                is_bad = b->state_slots[o] == c || (o != s && b->state_ckpt_rows[o] && b->state_ckpt_slots[o] == c);
            if (is_bad)
                return err_fail(err, TV_ERR_INVALID, "forward: checkpoint of sequence %d (slot %d after %d rows) invalid",
                                s, c, b->state_ckpt_rows[s]);
        }
    }
    for (int s = 0; s < b->n_seqs; s++) {
        if (b->q_start[s + 1] < b->q_start[s] || b->ctx_len[s] <= 0 || b->ctx_len[s] > h->n_ctx_train)
            return err_fail(err, TV_ERR_INVALID, "forward: sequence %d has an invalid range or context length %d", s,
                           b->ctx_len[s]);
        // the blocks some query of the sequence sees: with a model-wide sliding window, from the
        // block of the earliest query's first key (the engine releases the ones before it)
        int p_min = b->ctx_len[s];
        for (int t = b->q_start[s]; t < b->q_start[s + 1]; t++) p_min = b->positions[t] < p_min ? b->positions[t] : p_min;
        const int first_key = h->kv_window > 0 && p_min >= h->kv_window ? p_min - h->kv_window + 1 : 0;
        int n_bt = (b->ctx_len[s] + kv->block_size - 1) / kv->block_size;
        for (int i = first_key / kv->block_size; i < n_bt; i++)
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

tv_status forward_run(tv_forward *f, tv_kv_cache *kv, const tv_batch *b, float **logits, tv_error *err) {
    tv_status st = check_batch(f, kv, b, err);
    if (st) return st;
    const tv_model *m = f->m;
    const tv_hparams *h = model_hparams(m);
    const tv_layer *layers = model_layers(m);
    const model_family *fam = model_family_of(m);
    const float *inv_freq = f->rope_inv_freq, *inv_freq_swa = model_rope_inv_freq_swa(m);
    const int T = b->n_tokens, hd = h->head_dim, qd = h->n_heads * hd;
    layer_state *s = &f->s;
    s->kv = kv;
    s->n_tokens = T;
    s->n_kv_heads = h->n_kv_heads;
    s->head_dim = hd;
    s->n_rot = h->n_rot;

    if (b->hidden) {   // a later pipeline stage: the previous stage's residual stream
        memcpy(s->x, b->hidden, (size_t)T * h->dim * sizeof(float));
    } else {
        layers_embed(s, model_tok_embd(m), b->tokens, T, s->x);
        if (h->embd_scale != 0) layers_scale(s, s->x, h->dim, h->embd_scale);
        if (fam->prologue) fam->prologue(s, model_weights(m), b->tokens);
    }
    if (b->mtp_hidden) {   // an MTP layer: x = eh_proj · [rmsnorm(x) * enorm, rmsnorm(h) * hnorm]
        const tv_weights *w = model_weights(m);
        const size_t dim = (size_t)h->dim;
        layers_rmsnorm(s, s->xb, s->x, &w->mtp_enorm, T);
        layers_rmsnorm(s, s->xb2, b->mtp_hidden, &w->mtp_hnorm, T);
        for (int t = 0; t < T; t++) {
            memcpy(f->mtp_cat + 2 * dim * (size_t)t, s->xb + dim * (size_t)t, dim * sizeof(float));
            memcpy(f->mtp_cat + 2 * dim * (size_t)t + dim, s->xb2 + dim * (size_t)t, dim * sizeof(float));
        }
        const tv_tensor *eh = &w->mtp_eh_proj;
        backend_matmul(f->be, &eh, &s->x, 1, f->mtp_cat, T);
    }
    // RoPE cos/sin per token, once for all layers; the query temperature; each token's KV slot
    for (int t = 0; t < T; t++) {
        const int32_t pos = b->positions[t];
        void (*const table)(float *, int, const float *, float, float) =
            fam->is_rope_neox ? rope_table_neox : rope_table;
        table(f->rope_cs + (size_t)t * 2 * h->n_rot, h->n_rot, inv_freq, (float)pos * h->rope_linear_scale,
              h->rope_mscale);
        if (f->rope_cs_swa)
            table(f->rope_cs_swa + (size_t)t * 2 * h->n_rot_swa, h->n_rot_swa, inv_freq_swa,
                  (float)pos * h->rope_scale_swa, h->rope_mscale);
        if (f->attn_temp)   // llama.cpp's llm_graph_input_attn_temp
            f->attn_temp[t] = (float)(log(floor((double)pos / h->attn_temp_floor) + 1.0) * h->attn_temp_scale + 1.0);
        f->slots[t] = (int64_t)b->block_tables[f->tok_seq[t]][pos / kv->block_size] * kv->block_size +
                      pos % kv->block_size;
    }
    // attention's view of the batch: each sequence's query rows, positions and block table
    for (int i = 0; i < b->n_seqs; i++) {
        const int t0 = b->q_start[i];
        f->seqs[i] = (tv_attn_seq){.n_q = b->q_start[i + 1] - t0, .q = s->q + (size_t)t0 * qd,
                                   .out = s->att + (size_t)t0 * qd, .pos = b->positions + t0,
                                   .block_table = b->block_tables[i]};
    }
    // the model's window (0: global), uncapped, scaled by h->attn_scale (Granite) or 1/sqrt(head_dim);
    // a block may set other options per layer
    const tv_attn_geom geom = {.n_heads = h->n_heads, .n_kv_heads = h->n_kv_heads, .head_dim = hd,
                               .block_size = kv->block_size, .kv_is_f32 = kv->is_f32,
                               .scale = h->attn_scale != 0 ? h->attn_scale : 1.0f / sqrtf((float)hd),
                               .window = h->kv_window};
    s->attn = (tv_attn_args){.geom = geom, .n_seqs = b->n_seqs, .seqs = f->seqs};

    tv_state_cache *sc = h->n_linear > 0 ? kv->state : NULL;
    s->state = sc;
    s->state_slots = b->state_slots;
    s->state_ckpt_rows = b->state_ckpt_rows;
    s->state_ckpt_slots = b->state_ckpt_slots;
    s->state_rollback = b->state_rollback;
    s->n_seqs = b->n_seqs;
    s->q_start = b->q_start;
    s->positions = b->positions;
    for (int i = 0; sc && i < b->n_seqs; i++) {   // a sequence at position 0 starts from a zero state
        const int32_t slot = b->state_slots[i];
        if (b->positions[b->q_start[i]] != 0) continue;
        for (int li = 0; li < sc->n_linear; li++) {
            const size_t at = (size_t)li * (size_t)sc->n_slots + (size_t)slot;
            memset(sc->conv + at * sc->conv_floats, 0, sc->conv_floats * sizeof(float));
            memset(sc->ssm + at * sc->ssm_floats, 0, sc->ssm_floats * sizeof(float));
        }
    }

    const int n_layers = b->n_layers > 0 && b->n_layers < f->layer_end ? b->n_layers : f->layer_end;
    for (int l = f->layer_begin; l < n_layers && !st; l++) {
        if (!sc) {
            st = fam->block(s, &layers[l], l, err);
            continue;
        }
        struct timespec t0, t1;   // hybrid: each kind of layer timed (the bench reports them apart)
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = fam->block(s, &layers[l], l, err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
        *(layers[l].is_linear ? &f->t_linear_ms : &f->t_full_ms) += ms;
    }
    for (int i = 0; sc && i < b->n_seqs; i++) {   // a failed batch leaves its states half advanced: invalid
        sc->n_pos[b->state_slots[i]] = st ? -1 : b->positions[b->q_start[i + 1] - 1] + 1;
        if (b->state_ckpt_rows && b->state_ckpt_rows[i] > 0)
            sc->n_pos[b->state_ckpt_slots[i]] = st ? -1 : b->positions[b->q_start[i] + b->state_ckpt_rows[i] - 1] + 1;
        for (int t = b->q_start[i]; b->state_rollback && b->state_rollback[i] >= 0 && t < b->q_start[i + 1] - 1; t++)
            sc->n_pos[b->state_rollback[i] + t - b->q_start[i]] = st ? -1 : b->positions[t] + 1;
    }
    if (st) return st;
    if (!f->is_last) {   // a pipeline stage before the last: the residual stream goes on
        *logits = s->x;
        return TV_OK;
    }

    for (int t = 0; b->hidden_cache && t < T; t++)   // each token's final-normed state, for the MTP layer
        backend_rmsnorm(f->be, b->hidden_cache + (size_t)f->slots[t] * h->dim, s->x + (size_t)t * h->dim,
                        model_output_norm(m)->data, 1, h->dim, h->norm_eps);
    layers_logits(s, b->logit_rows, b->n_logits, model_output_norm(m), model_output(m), f->lx, f->logits);
    *logits = f->logits;
    return TV_OK;
}
