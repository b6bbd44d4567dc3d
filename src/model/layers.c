// layers.c — the shared pieces of the per-layer forward pass (layers.h): thin compositions of
// backend calls with the model's shapes, so every family computes through the same kernels.
#include "model/layers.h"

#include <math.h>
#include <stdalign.h>
#include <string.h>

#include "backend/backend.h"
#include "util/status.h"

void layers_rmsnorm(layer_state *s, float *y, const float *x, const tv_tensor *w, int n_rows) {
    backend_rmsnorm(s->be, y, x, w->data, n_rows, (int)w->ne[0], s->h->norm_eps);
}

void layers_rmsnorm_unit(layer_state *s, float *y, const float *x, int n, int n_rows) {
    backend_rmsnorm(s->be, y, x, s->ones, n_rows, n, s->h->norm_eps);
}

void layers_qkv(layer_state *s, const tv_tensor *wq, const tv_tensor *wk, const tv_tensor *wv) {
    const tv_tensor *w[] = {wq, wk, wv};
    float *const y[] = {s->q, s->k, s->v};
    backend_matmul(s->be, w, y, wk ? 3 : 1, s->xb, s->n_tokens);
}

void layers_bias(layer_state *s, float *y, const tv_tensor *b) {
    if (b->data) backend_add_row(s->be, y, b->data, s->n_tokens, (int)b->ne[0]);
}

void layers_qkv_bias(layer_state *s, const tv_tensor *bq, const tv_tensor *bk, const tv_tensor *bv) {
    layers_bias(s, s->q, bq);
    layers_bias(s, s->k, bk);
    layers_bias(s, s->v, bv);
}

void layers_head_norm(layer_state *s, const tv_tensor *q_norm, const tv_tensor *k_norm) {
    layers_rmsnorm(s, s->q, s->q, q_norm, s->n_tokens * s->h->n_heads);
    if (k_norm) layers_rmsnorm(s, s->k, s->k, k_norm, s->n_tokens * s->n_kv_heads);
}

// Rotates s->q and the first n_kv_heads heads of each row of s->k.
static void rope_qk(layer_state *s, const float *cs, int n_kv_heads) {
    const int nh = s->h->n_heads;
    if (s->is_rope_neox)
        backend_rope_neox(s->be, s->q, s->k, cs, s->n_tokens, nh, n_kv_heads, s->head_dim, s->n_rot);
    else
        backend_rope(s->be, s->q, s->k, cs, s->n_tokens, nh, n_kv_heads, s->head_dim, s->n_rot);
}

void layers_rope(layer_state *s, const float *cs) { rope_qk(s, cs, s->n_kv_heads); }

void layers_rope_q(layer_state *s, const float *cs) { rope_qk(s, cs, 0); }

void layers_attn_temperature(layer_state *s) {
    if (s->attn_temp) backend_scale_rows(s->be, s->q, s->attn_temp, s->n_tokens, s->h->n_heads * s->h->head_dim);
}

void layers_scale(layer_state *s, float *y, int n, float f) {
    backend_scale(s->be, y, s->n_tokens, n, f);
}

tv_status layers_attention(layer_state *s, int layer, const tv_tensor *wo, float *out, tv_error *err) {
    return layers_attention_opts(s, layer, NULL, wo, out, err);
}

// Attention of layer `layer` into s->att: the layer's geometry (s's shape, o's options), s->k and
// s->v written to the tokens' slots (v_is_k: K only, values read from the K rows), then attention.
static tv_status attention_core(layer_state *s, int layer, const layers_attn_opts *o, bool v_is_k, tv_error *err) {
    const tv_kv_cache *kv = s->kv;
    tv_attn_args a = s->attn;   // forward.c's geometry: the model's shape, window and scale, uncapped
    if (s->head_dim != a.geom.head_dim || s->n_kv_heads != a.geom.n_kv_heads) {   // this layer's shape
        const size_t qd0 = (size_t)a.geom.n_heads * a.geom.head_dim, qd = (size_t)a.geom.n_heads * s->head_dim;
        for (int i = 0; i < a.n_seqs; i++) {   // the same token rows at this layer's row length
            const size_t t0 = (size_t)(a.seqs[i].q - s->q) / qd0;
            s->seqs_shaped[i] = a.seqs[i];
            s->seqs_shaped[i].q = s->q + t0 * qd;
            s->seqs_shaped[i].out = s->att + t0 * qd;
        }
        a.seqs = s->seqs_shaped;
        a.geom.head_dim = s->head_dim;
        a.geom.n_kv_heads = s->n_kv_heads;
        if (s->h->attn_scale == 0) a.geom.scale = 1.0f / sqrtf((float)s->head_dim);
    }
    const bool is_reused = o && o->is_kv_reused;
    if (o) {
        if (o->window > 0) a.geom.window = o->window;
        a.geom.softcap = o->softcap;
        if (o->scale > 0) a.geom.scale = o->scale;
        a.geom.sinks = o->sinks;
    }
    a.k_pool = kv->k + (size_t)(layer - kv->layer_begin) * kv->layer_bytes;
    a.v_pool = v_is_k ? a.k_pool : kv->v + (size_t)(layer - kv->layer_begin) * kv->layer_bytes;
    const double t0 = s->state ? time_ms() : 0;   // hybrid models: the kernels' share of the layer (bench)
    if (!is_reused)
        backend_kv_write(s->be, &a.geom, (void *)a.k_pool, v_is_k ? NULL : (void *)a.v_pool, s->slots, s->n_tokens,
                         s->k, v_is_k ? NULL : s->v);
    const tv_status st = backend_attention(s->be, &a, err);
    if (s->state) s->t_attn_kernel_ms += time_ms() - t0;
    return st;
}

tv_status layers_attention_opts(layer_state *s, int layer, const layers_attn_opts *o, const tv_tensor *wo, float *out,
                                tv_error *err) {
    tv_status st = attention_core(s, layer, o, false, err);
    if (st) return st;
    if (o && o->gate) backend_mul_sigmoid(s->be, s->att, o->gate, s->n_tokens, s->h->n_heads * s->head_dim);
    backend_matmul(s->be, &wo, &out, 1, s->att, s->n_tokens);
    return TV_OK;
}

void layers_qkv_gated(layer_state *s, const tv_tensor *wq, const tv_tensor *wk, const tv_tensor *wv) {
    const tv_tensor *w[] = {wq, wk, wv};
    float *const y[] = {s->q_gated, s->k, s->v};
    backend_matmul(s->be, w, y, 3, s->xb, s->n_tokens);
    const int nh = s->h->n_heads, hd = s->head_dim;
    const size_t qd = (size_t)nh * hd;
    for (int t = 0; t < s->n_tokens; t++)
        for (int i = 0; i < nh; i++) {
            const float *src = s->q_gated + (size_t)t * 2 * qd + (size_t)i * 2 * hd;
            memcpy(s->q + (size_t)t * qd + (size_t)i * hd, src, (size_t)hd * sizeof(float));
            memcpy(s->attn_gate + (size_t)t * qd + (size_t)i * hd, src + hd, (size_t)hd * sizeof(float));
        }
}

void layers_gdn(layer_state *s, const tv_layer *L, float *out) {
    const tv_hparams *h = s->h;
    const tv_state_cache *sc = s->state;
    const int T = s->n_tokens;
    if (L->ssm_ba.data) {   // qwen3next: beta and alpha fused, per key head g: beta[g*r .. +r), alpha[...]
        const tv_tensor *w[] = {&L->ssm_qkv, &L->ssm_z, &L->ssm_ba};
        float *const y[] = {s->ssm_qkv, s->ssm_z, s->ssm_ba};
        backend_matmul(s->be, w, y, 3, s->xb, T);
        const int nv = h->ssm_n_v_heads, r = nv / h->ssm_n_k_heads;
        for (int t = 0; t < T; t++)
            for (int v = 0; v < nv; v++) {
                const float *row = s->ssm_ba + (size_t)t * 2 * nv + (size_t)(v / r) * 2 * r;
                s->ssm_beta[(size_t)t * nv + v] = row[v % r];
                s->ssm_alpha[(size_t)t * nv + v] = row[r + v % r];
            }
    } else {
        const tv_tensor *w[] = {&L->ssm_qkv, &L->ssm_z, &L->ssm_alpha, &L->ssm_beta};
        float *const y[] = {s->ssm_qkv, s->ssm_z, s->ssm_alpha, s->ssm_beta};
        backend_matmul(s->be, w, y, 4, s->xb, T);
    }
    const size_t li = (size_t)L->kind_index;
    for (int i = 0; i < s->n_seqs; i++) {
        const size_t slot = li * (size_t)sc->n_slots + (size_t)s->state_slots[i];
        s->gdn_conv[i] = sc->conv + slot * sc->conv_floats;
        s->gdn_ssm[i] = sc->ssm + slot * sc->ssm_floats;
        const bool has_ckpt = s->state_ckpt_rows && s->state_ckpt_rows[i] > 0;
        const size_t ckpt = li * (size_t)sc->n_slots + (size_t)(has_ckpt ? s->state_ckpt_slots[i] : 0);
        s->gdn_ckpt_conv[i] = has_ckpt ? sc->conv + ckpt * sc->conv_floats : NULL;
        s->gdn_ckpt_ssm[i] = has_ckpt ? sc->ssm + ckpt * sc->ssm_floats : NULL;
        const bool has_rb = s->state_rollback && s->state_rollback[i] >= 0;
        const size_t rb = li * (size_t)sc->n_slots + (size_t)(has_rb ? s->state_rollback[i] : 0);
        s->gdn_rb_conv[i] = has_rb ? sc->conv + rb * sc->conv_floats : NULL;
        s->gdn_rb_ssm[i] = has_rb ? sc->ssm + rb * sc->ssm_floats : NULL;
    }
    const backend_gdn a = {
        .geom = {.n_k_heads = h->ssm_n_k_heads, .n_v_heads = h->ssm_n_v_heads, .head_dim = h->ssm_head_dim,
                 .d_conv = h->ssm_d_conv, .eps = h->norm_eps,
                 .is_k_grouped = h->ssm_k_grouped != 0},
        .n_seqs = s->n_seqs, .q_start = s->q_start, .positions = s->positions, .conv_state = s->gdn_conv, .ssm_state = s->gdn_ssm,
        .conv_w = L->ssm_conv1d.data, .dt = L->ssm_dt.data, .a = L->ssm_a.data, .qkv = s->ssm_qkv,
        .alpha = s->ssm_alpha, .beta = s->ssm_beta, .out = s->ssm_o,
        .ckpt_rows = s->state_ckpt_rows, .ckpt_conv = s->gdn_ckpt_conv, .ckpt_ssm = s->gdn_ckpt_ssm,
        .rb_conv = s->state_rollback ? s->gdn_rb_conv : NULL, .rb_ssm = s->gdn_rb_ssm};
    const double t0 = time_ms();
    backend_gdn_run(s->be, &a);
    s->t_gdn_ms += time_ms() - t0;
    layers_rmsnorm(s, s->ssm_o, s->ssm_o, &L->ssm_norm, T * h->ssm_n_v_heads);
    backend_swiglu(s->be, s->ssm_z, s->ssm_o, T, h->ssm_d_inner);
    const tv_tensor *wo = &L->ssm_out;
    backend_matmul(s->be, &wo, &out, 1, s->ssm_z, T);
}

bool layers_mla_is_expanded(const tv_hparams *h, int ctx_cap, int n, const int32_t *pos) {
    if (n <= 0) return false;
    int64_t L = 0;   // context keys: up to the last row's (the rows' largest) position
    for (int i = 0; i < n; i++) L = pos[i] + 1 > L ? pos[i] + 1 : L;
    if (h->mla_form == TV_MLA_ABSORBED || L > ctx_cap) return false;
    if (h->mla_form == TV_MLA_EXPANDED) return true;
    if (n < MLA_MIN_ROWS || !h->mla_auto_expands) return false;
    const double r = h->n_lora_kv, dk = h->head_dim_k_mla, nope = dk - h->n_rot, dv = h->head_dim_v_mla;
    double P = 0;   // keys seen, summed over the rows
    for (int i = 0; i < n; i++) P += (double)pos[i] + 1;
    return P * 2 * (r - nope) > (double)(L - n) * (nope + dv) * r;
}

// The absorbed form multiplies q_nope into wk_b as activations of wk_b's vec_dot type (a quantized
// wk_b: Q8_0 blocks), as llama.cpp's graph does; the expanded form rounds the rows t0 .. t0 + n of
// q_nope (in s->mla_q) the same way, so both forms carry that rounding of the query (the deepseek2
// Q8_0 fixture run expanded: mean KL 9.5e-3 from llama.cpp without it, 6.1e-3 with; absorbed 1.3e-3).
// Conversions are the same bits on every path. (An F16 copy of a quantized wv_b, so the values skip
// the rounding of each latent, was tried: 6.9e-3, no better; not kept.)
static void mla_round_q_nope(layer_state *s, const tv_layer *L, int t0, int n) {
    const tv_hparams *h = s->h;
    const int H = h->n_heads, dk = h->head_dim_k_mla, nope = dk - h->n_rot;
    const tv_type_traits *wt = kern_traits_ref(L->wk_b.type);
    const tv_type_traits *vt = wt ? kern_traits_ref(wt->vec_dot_type) : NULL;
    alignas(64) uint8_t row[4 * 1024 + 256];
    if (!vt || vt->blck_size <= 0 || nope % vt->blck_size || !vt->from_float || !vt->to_float ||
        wt->vec_dot_type == TV_TYPE_F32 || kern_row_size(wt->vec_dot_type, nope) > sizeof row)
        return;
    for (size_t i = (size_t)t0 * H; i < (size_t)(t0 + n) * H; i++) {
        float *q = s->mla_q + i * dk;
        vt->from_float(q, row, nope);
        vt->to_float(row, q, nope);
    }
}

// Latent attention of sequence sq (rows t0 .. t0 + sq->n_q of the batch) in the expanded form into
// s->mla_o. s->mla_q holds its queries with rope(q_pe); the cache holds its context's K rows.
static tv_status mla_expanded(layer_state *s, const tv_layer *L, const tv_attn_args *cache, const tv_attn_seq *sq,
                              int t0, tv_error *err) {
    const tv_hparams *h = s->h;
    const int H = h->n_heads, r = h->n_lora_kv, rot = h->n_rot, hd = r + rot;
    const int dk = h->head_dim_k_mla, nope = dk - rot, dv = h->head_dim_v_mla;
    int ctx = 0;
    for (int i = 0; i < sq->n_q; i++) ctx = sq->pos[i] + 1 > ctx ? sq->pos[i] + 1 : ctx;
    const int n = sq->n_q, ctx_r = (ctx + MLA_XBS - 1) / MLA_XBS * MLA_XBS;
    const tv_attn_geom *cg = &cache->geom;
    // the context's latents and RoPE keys, read back from the cache (what decode reads): (ctx, r), (ctx, rot)
    for (int p = 0; p < ctx; p++) {
        const size_t row = ((size_t)sq->block_table[p / cg->block_size] * cg->block_size + (size_t)(p % cg->block_size)) * hd;
        float *c = s->mla_cc + (size_t)p * r, *pe = s->mla_cpe + (size_t)p * rot;
        if (cg->kv_is_f32) {
            const float *k = (const float *)cache->k_pool + row;
            memcpy(c, k, (size_t)r * sizeof(float));
            memcpy(pe, k + r, (size_t)rot * sizeof(float));
        } else {
            const tv_f16 *k = (const tv_f16 *)cache->k_pool + row;
            for (int i = 0; i < r; i++) c[i] = f16_to_f32(k[i]);
            for (int i = 0; i < rot; i++) pe[i] = f16_to_f32(k[r + i]);
        }
    }
    // heads in groups whose K/V fit the scratch
    int G = (int)((int64_t)s->mla_heads_cap * s->mla_ctx_cap / ctx_r);
    if (G > H) G = H;
    tv_attn_geom g = {.n_heads = 0, .n_kv_heads = 0, .head_dim = dk, .block_size = MLA_XBS, .kv_is_f32 = true,
                      .scale = cg->scale};
    for (int h0 = 0; h0 < H; h0 += G) {
        const int ng = H - h0 < G ? H - h0 : G;
        // decompress: grouped row j * ctx + p (head h0 + j) reads latent p
        for (int hh = 0; hh <= H; hh++) s->mla_off[hh] = hh <= h0 ? 0 : (hh - h0 < ng ? hh - h0 : ng) * ctx;
        for (int j = 0; j < ng; j++)
            for (int p = 0; p < ctx; p++) s->mla_crow[j * ctx + p] = p;
        // K pool (ctx_r / XBS, ng, XBS, dk): [wk_bt[h] · latent, rope(k_pe)]
        backend_matmul_grouped(s->be, &L->wk_bt, s->mla_ky, s->mla_cc, ctx, s->mla_crow, s->mla_off);
        for (int j = 0; j < ng; j++)
            for (int p = 0; p < ctx; p++) {
                float *kr = s->mla_kp + (((size_t)(p / MLA_XBS) * ng + j) * MLA_XBS + p % MLA_XBS) * dk;
                memcpy(kr, s->mla_ky + ((size_t)j * ctx + p) * nope, (size_t)nope * sizeof(float));
                memcpy(kr + nope, s->mla_cpe + (size_t)p * rot, (size_t)rot * sizeof(float));
            }
        // V pool, same layout: wv_b[h] · latent in the first dv of each row (the rest stays 0)
        backend_matmul_grouped(s->be, &L->wv_b, s->mla_ky, s->mla_cc, ctx, s->mla_crow, s->mla_off);
        for (int j = 0; j < ng; j++)
            for (int p = 0; p < ctx; p++)
                memcpy(s->mla_vp + (((size_t)(p / MLA_XBS) * ng + j) * MLA_XBS + p % MLA_XBS) * dk,
                       s->mla_ky + ((size_t)j * ctx + p) * dv, (size_t)dv * sizeof(float));
        // queries (n, ng * dk) of these heads into mla_x, outputs into s->att (both this sequence's rows)
        float *q = s->mla_x + (size_t)t0 * H * (r > dk ? r : dk), *o = s->att + (size_t)t0 * H * hd;
        for (int i = 0; i < n; i++)
            memcpy(q + (size_t)i * ng * dk, s->mla_q + ((size_t)(t0 + i) * H + h0) * dk, (size_t)ng * dk * sizeof(float));
        g.n_heads = g.n_kv_heads = ng;
        const tv_attn_seq one = {.n_q = n, .q = q, .out = o, .pos = sq->pos, .block_table = s->mla_tbl};
        const tv_attn_args a = {.geom = g, .k_pool = s->mla_kp, .v_pool = s->mla_vp, .n_seqs = 1, .seqs = &one};
        tv_status st = backend_attention(s->be, &a, err);
        if (st) return st;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < ng; j++)
                memcpy(s->mla_o + ((size_t)(t0 + i) * H + h0 + j) * dv, o + ((size_t)i * ng + j) * dk,
                       (size_t)dv * sizeof(float));
    }
    return TV_OK;
}

tv_status layers_mla_attention(layer_state *s, const tv_layer *L, int layer, float *out, tv_error *err) {
    const tv_hparams *h = s->h;
    const int T = s->n_tokens, H = h->n_heads, r = h->n_lora_kv, rot = h->n_rot, hd = r + rot;
    const int dk = h->head_dim_k_mla, nope = dk - rot, dv = h->head_dim_v_mla;
    // queries (T, H * dk), each head [nope part, RoPE part]
    if (L->wq_a.data) {
        const tv_tensor *wa = &L->wq_a, *wb = &L->wq_b;
        backend_matmul(s->be, &wa, &s->mla_qa, 1, s->xb, T);
        layers_rmsnorm(s, s->mla_qa, s->mla_qa, &L->q_a_norm, T);
        backend_matmul(s->be, &wb, &s->mla_q, 1, s->mla_qa, T);
    } else {
        const tv_tensor *wq = &L->wq;
        backend_matmul(s->be, &wq, &s->mla_q, 1, s->xb, T);
    }
    // latent (normed) and RoPE key of each token: one activation quantization for both
    const tv_tensor *wkv[] = {&L->wkv_a_c, &L->wkv_a_pe};
    float *const ykv[] = {s->mla_c, s->mla_pe};
    backend_matmul(s->be, wkv, ykv, 2, s->xb, T);
    layers_rmsnorm(s, s->mla_c, s->mla_c, &L->kv_a_norm, T);
    // s->k (T, hd) = [latent, rope(k_pe)]; rope(q_pe) in place in s->mla_q
    for (int t = 0; t < T; t++) {
        memcpy(s->k + (size_t)t * hd, s->mla_c + (size_t)t * r, (size_t)r * sizeof(float));
        memcpy(s->k + (size_t)t * hd + r, s->mla_pe + (size_t)t * rot, (size_t)rot * sizeof(float));
    }
    backend_rope(s->be, s->mla_q + nope, s->k, s->rope_cs, T, H, 0, dk, rot);
    backend_rope(s->be, s->k + r, s->k, s->rope_cs, T, 1, 0, hd, rot);
    // which sequences run absorbed: their rows (Ta of them, in batch order) and attention views
    const tv_attn_args all = s->attn;
    int Ta = 0, n_abs = 0;
    for (int i = 0; i < all.n_seqs; i++) {
        const tv_attn_seq *sq = &all.seqs[i];
        if (layers_mla_is_expanded(h, s->mla_ctx_cap, sq->n_q, sq->pos)) continue;
        s->mla_seqs[n_abs++] = *sq;
        const int t0 = s->q_start[i];
        for (int t = t0; t < t0 + sq->n_q; t++) s->mla_tok[Ta++] = t;
    }
    // absorbed queries: latent-space query of head h = wk_b[h] · q_nope[h]; per-head rows a * H + hh
    // (the a-th absorbed row's head hh) in mla_x, grouped row hh * Ta + a reads row a * H + hh
    for (int hh = 0; hh <= H; hh++) s->mla_off[hh] = hh * Ta;
    for (int hh = 0; hh < H; hh++)
        for (int a = 0; a < Ta; a++) s->mla_row[hh * Ta + a] = a * H + hh;
    for (int a = 0; a < Ta; a++)
        for (int hh = 0; hh < H; hh++)
            memcpy(s->mla_x + ((size_t)a * H + hh) * nope, s->mla_q + ((size_t)s->mla_tok[a] * H + hh) * dk,
                   (size_t)nope * sizeof(float));
    if (Ta) backend_matmul_grouped(s->be, &L->wk_b, s->mla_y, s->mla_x, Ta * H, s->mla_row, s->mla_off);
    // s->q (T, H, hd) = [absorbed query, rope(q_pe)] for those rows
    for (int a = 0; a < Ta; a++) {
        const int t = s->mla_tok[a];
        for (int hh = 0; hh < H; hh++) {
            float *q = s->q + ((size_t)t * H + hh) * hd;
            memcpy(q, s->mla_y + ((size_t)hh * Ta + a) * r, (size_t)r * sizeof(float));
            memcpy(q + r, s->mla_q + ((size_t)t * H + hh) * dk + nope, (size_t)rot * sizeof(float));
        }
    }
    // every row's K into the cache, then the absorbed sequences' attention: one KV head of [latent,
    // k_pe]; each head's output is a latent-space row (plus rot ignored dims)
    s->attn.n_seqs = n_abs;
    s->attn.seqs = s->mla_seqs;
    tv_status st = attention_core(s, layer, NULL, true, err);
    s->attn = all;
    if (st) return st;
    // expand: head h's value = wv_b[h] · (its attention output's latent part)
    for (int a = 0; a < Ta; a++)
        for (int hh = 0; hh < H; hh++)
            memcpy(s->mla_x + ((size_t)a * H + hh) * r, s->att + ((size_t)s->mla_tok[a] * H + hh) * hd,
                   (size_t)r * sizeof(float));
    if (Ta) backend_matmul_grouped(s->be, &L->wv_b, s->mla_y, s->mla_x, Ta * H, s->mla_row, s->mla_off);
    for (int a = 0; a < Ta; a++) {
        const int t = s->mla_tok[a];
        for (int hh = 0; hh < H; hh++)
            memcpy(s->mla_o + ((size_t)t * H + hh) * dv, s->mla_y + ((size_t)hh * Ta + a) * dv, (size_t)dv * sizeof(float));
    }
    // the other sequences, expanded, one at a time over the K rows just written
    if (Ta < T) {
        tv_attn_args cache = all;
        const tv_kv_cache *kv = s->kv;
        cache.k_pool = kv->k + (size_t)(layer - kv->layer_begin) * kv->layer_bytes;
        for (int i = 0; i < all.n_seqs; i++) {
            const tv_attn_seq *sq = &all.seqs[i];
            if (!layers_mla_is_expanded(h, s->mla_ctx_cap, sq->n_q, sq->pos)) continue;
            mla_round_q_nope(s, L, s->q_start[i], sq->n_q);
            if ((st = mla_expanded(s, L, &cache, sq, s->q_start[i], err))) return st;
        }
    }
    const tv_tensor *wo = &L->wo;
    backend_matmul(s->be, &wo, &out, 1, s->mla_o, T);
    return TV_OK;
}

void layers_glu_mlp(layer_state *s, layers_act act, const tv_tensor *gate, const tv_tensor *up,
                    const tv_tensor *down, float *out) {
    const tv_tensor *w[] = {gate, up};
    float *const y[] = {s->hb, s->hb2};
    backend_matmul(s->be, w, y, 2, s->xb, s->n_tokens);
    switch (act) {
    case LAYERS_ACT_SILU: backend_swiglu(s->be, s->hb, s->hb2, s->n_tokens, (int)gate->ne[1]); break;
    case LAYERS_ACT_GELU_TANH: backend_geglu(s->be, s->hb, s->hb2, s->n_tokens, (int)gate->ne[1]); break;
    case LAYERS_ACT_SWIGLU_OAI: TV_CHECK(!"the clamped SwiGLU is an experts-only activation"); break;
    }
    backend_matmul(s->be, &down, &out, 1, s->hb, s->n_tokens);
}

void layers_moe(layer_state *s, layers_act act, const tv_layer *L, float *out) {
    layers_moe_routed(s, act, L, s->xb, out);
}

void layers_moe_routed(layer_state *s, layers_act act, const tv_layer *L, const float *router_x, float *out) {
    const tv_hparams *h = s->h;
    const int T = s->n_tokens;
    const tv_tensor *router = &L->ffn_gate_inp;
    backend_matmul(s->be, &router, &s->moe_logits, 1, router_x, T);
    layers_bias(s, s->moe_logits, &L->ffn_gate_inp_b);
    const tv_route_opts o = {.n_expert = h->n_expert, .n_used = h->n_expert_used, .gating = (tv_gating)h->moe_gating,
                             .bias = L->exp_probs_b.data, .norm = h->moe_norm_w != 0, .scale = h->moe_w_scale,
                             .n_group = h->moe_n_group, .n_group_used = h->moe_n_group_used};
    backend_moe_route(s->be, &o, s->moe_logits, T, s->moe_ids, s->moe_w);
    const backend_moe a = {.n_tok = T, .n_used = h->n_expert_used, .x = s->xb, .ids = s->moe_ids, .w = s->moe_w,
                           .gate = L->ffn_gate_up_exps.data ? NULL : &L->ffn_gate_exps,
                           .up = L->ffn_gate_up_exps.data ? NULL : &L->ffn_up_exps,
                           .gate_up = L->ffn_gate_up_exps.data ? &L->ffn_gate_up_exps : NULL,
                           .down = &L->ffn_down_exps, .down_s = L->ffn_down_exps_s.data,
                           .gate_b = L->ffn_gate_exps_b.data, .up_b = L->ffn_up_exps_b.data,
                           .down_b = L->ffn_down_exps_b.data,
                           .act = act == LAYERS_ACT_SILU        ? BACKEND_GLU_SILU
                                  : act == LAYERS_ACT_GELU_TANH ? BACKEND_GLU_GELU_TANH
                                                                : BACKEND_GLU_SWIGLU_OAI,
                           .out = out,
                           .x_row = s->moe_x_row, .pos = s->moe_pos, .off = s->moe_off, .g = s->moe_g,
                           .u = s->moe_u, .y = s->moe_y};
    backend_moe_ffn(s->be, &a);
    if (!L->ffn_up_shexp.data) return;
    float *shared = s->moe_y, *gate = s->moe_logits;   // (T, dim), (T): free once the experts are summed
    layers_glu_mlp(s, act, &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp, shared);
    if (!L->ffn_gate_inp_shexp.data) {   // deepseek2: ungated
        layers_add(s, out, shared);
        return;
    }
    const tv_tensor *gi = &L->ffn_gate_inp_shexp;
    backend_matmul(s->be, &gi, &gate, 1, s->xb, T);
    backend_sigmoid(s->be, gate, T, 1);
    backend_scale_rows(s->be, shared, gate, T, h->dim);
    layers_add(s, out, shared);
}

void layers_ffn(layer_state *s, layers_act act, const tv_layer *L, float *out) {
    if (L->ffn_gate_inp.data) layers_moe(s, act, L, out);
    else layers_glu_mlp(s, act, &L->w_gate, &L->w_up, &L->w_down, out);
}

void layers_per_layer_inputs(layer_state *s, const tv_weights *w, const int32_t *tokens) {
    const tv_hparams *h = s->h;
    const int T = s->n_tokens, P = h->n_embd_pl, n_all = h->n_layers * P;
    float *tok = s->pl_buf, *proj = s->pl_inp;   // (T, n_layers, P) each, token-major
    backend_embed(s->be, &w->pl_tok_embd, tokens, T, tok);
    backend_scale(s->be, tok, T, n_all, sqrtf((float)P));
    const tv_tensor *wp = &w->pl_model_proj;
    backend_matmul(s->be, &wp, &proj, 1, s->x, T);
    backend_scale(s->be, proj, T, n_all, 1.0f / sqrtf((float)h->dim));
    backend_rmsnorm(s->be, proj, proj, w->pl_proj_norm.data, T * h->n_layers, P, h->norm_eps);
    backend_add(s->be, tok, proj, T, n_all);
    backend_scale(s->be, tok, T, n_all, 1.0f / sqrtf(2.0f));
    for (int t = 0; t < T; t++)   // layer-major, so each layer's rows are contiguous
        for (int l = 0; l < h->n_layers; l++)
            memcpy(s->pl_inp + ((size_t)l * T + t) * P, tok + ((size_t)t * h->n_layers + l) * P, (size_t)P * sizeof(float));
}

void layers_per_layer_add(layer_state *s, const tv_layer *L, int l) {
    const int T = s->n_tokens, P = s->h->n_embd_pl;
    const tv_tensor *gate = &L->pl_gate, *proj = &L->pl_proj;
    float *g = s->pl_buf;   // (T, P)
    backend_matmul(s->be, &gate, &g, 1, s->x, T);
    backend_geglu(s->be, g, s->pl_inp + (size_t)l * T * P, T, P);   // gelu(g) * input: ggml's gelu, then mul
    backend_matmul(s->be, &proj, &s->xb, 1, g, T);
    layers_rmsnorm(s, s->xb, s->xb, &L->pl_post_norm, T);
    layers_add(s, s->x, s->xb);
}

void layers_add(layer_state *s, float *y, const float *x) {
    backend_add(s->be, y, x, s->n_tokens, s->h->dim);
}

void layers_embed(layer_state *s, const tv_tensor *table, const int32_t *ids, int n, float *x) {
    backend_embed(s->be, table, ids, n, x);
}

void layers_logits(layer_state *s, const int32_t *rows, int n, const tv_tensor *norm, const tv_tensor *output,
                   float *lx, float *logits) {
    const int dim = s->h->dim;
    for (int i = 0; i < n; i++)
        backend_rmsnorm(s->be, lx + (size_t)i * dim, s->x + (size_t)rows[i] * dim, norm->data, 1, dim,
                        s->h->norm_eps);
    if (n > 0) backend_matmul(s->be, &output, &logits, 1, lx, n);
    if (n > 0 && s->h->logit_scale != 0) backend_scale(s->be, logits, n, (int)output->ne[1], 1.0f / s->h->logit_scale);
    if (n > 0 && s->h->final_softcap > 0) backend_softcap(s->be, logits, n, (int)output->ne[1], s->h->final_softcap);
}

tv_status layers_prenorm_block_rope(layer_state *s, const tv_layer *L, int l, const float *rope_cs, tv_error *err) {
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    layers_qkv(s, &L->wq, &L->wk, &L->wv);
    layers_qkv_bias(s, &L->bq, &L->bk, &L->bv);
    if (L->q_norm.data) layers_head_norm(s, &L->q_norm, &L->k_norm);
    if (rope_cs) layers_rope(s, rope_cs);
    tv_status st = layers_attention(s, l, &L->wo, s->xb2, err);
    if (st) return st;
    layers_bias(s, s->xb2, &L->bo);
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_ffn(s, LAYERS_ACT_SILU, L, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}

tv_status layers_prenorm_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    return layers_prenorm_block_rope(s, L, l, s->rope_cs, err);
}

tv_status layers_hybrid_block(layer_state *s, const tv_layer *L, int l, tv_error *err) {
    (void)l;   // a hybrid layer's KV pool or state is its index among its kind
    layers_rmsnorm(s, s->xb, s->x, &L->attn_norm, s->n_tokens);
    if (L->is_linear) {
        layers_gdn(s, L, s->xb2);
    } else {
        layers_qkv_gated(s, &L->wq, &L->wk, &L->wv);
        layers_head_norm(s, &L->q_norm, &L->k_norm);
        layers_rope(s, s->rope_cs);
        const layers_attn_opts o = {.gate = s->attn_gate};
        tv_status st = layers_attention_opts(s, L->kind_index, &o, &L->wo, s->xb2, err);
        if (st) return st;
    }
    layers_add(s, s->x, s->xb2);
    layers_rmsnorm(s, s->xb, s->x, &L->ffn_norm, s->n_tokens);
    layers_ffn(s, LAYERS_ACT_SILU, L, s->xb2);
    layers_add(s, s->x, s->xb2);
    return TV_OK;
}
