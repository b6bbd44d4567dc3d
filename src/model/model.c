// model.c — loads a GGUF or llama2.c model file and binds its weights (used in place from the
// mapping) to its family (family.h): hyperparameters from the family's `<arch>.*` metadata keys or
// the llama2.c header (the llama family), every tensor of the family's table checked for presence,
// type and shape before anything runs.
#include "model/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/sniff.h"
#include "model/family.h"
#include "model/hf.h"
#include "model/weight_cache.h"
#include "tokenizer/tokenizer.h"
#include "util/alloc.h"
#include "util/status.h"

struct tv_model {
    char *path;
    char *name;
    const char *format;
    const model_family *family;
    tv_hparams hp;
    gguf_ctx *gguf;
    tv_llama2c *l2c;
    hf_model *hf;                // a Hugging Face folder (gguf is then its metadata, owned by hf)
    tv_tokenizer *tok;
    char *chat_template;
    int32_t stop_token;          // the file's EOS (run.c's BOS for llama2.c), -1 none: tv_model_is_eog
    tv_weights w;
    tv_layer *layers;            // (n_layers)
    tv_tensor **matrices;        // (n_matrices) the bound weight matrices, pointers into w and layers
    int n_matrices;
    float *rope_inv_freq;        // (n_rot / 2)
    float *rope_inv_freq_long;   // (n_rot / 2) LongRoPE's for contexts above rope_long_ctx, or NULL
    int32_t rope_long_ctx;       // the original context length LongRoPE switches at
    float *rope_inv_freq_swa;    // (n_rot_swa / 2) the sliding layers' (hp.rope_theta_swa), or NULL
    size_t weight_bytes;
    void **packed;               // (n_packed) repacked or quantized weight copies, owned
    int n_packed;
    double repack_ms;
    double quantize_ms;          // --quantize at load: time converting ...
    uint64_t quantize_src_bytes; // ... this many source (F32/F16/BF16) bytes
    int n_load_threads;          // threads of the load-time pool (0: none was needed)
    wcache_map cache;            // the prepared-weight cache file the weights point into, or empty
    char *cache_note;            // what the cache did (tv_model_cache_note), or NULL
    int layer_begin, layer_end;  // the layers this process holds, [begin, end) (pipeline stage; all by default)
    int mtp_layer;               // loaded as an MTP layer (tv_model_params.mtp): the file's index of that layer
                                 // (its tensors are blk.<mtp_layer>.*, bound as layer 0); else 0
    char map_err[512];           // a lazy GGUF's failed tensor mapping (find_gguf), reported by bind
};

void tv_model_params_default(tv_model_params *p) { memset(p, 0, sizeof *p); }

const model_family *model_family_of(const tv_model *m) { return m->family; }
const tv_hparams *model_hparams(const tv_model *m) { return &m->hp; }
const tv_layer *model_layers(const tv_model *m) { return m->layers; }
const tv_tensor *model_tok_embd(const tv_model *m) { return &m->w.tok_embd; }
const tv_tensor *model_output(const tv_model *m) { return &m->w.output; }
const tv_tensor *model_output_norm(const tv_model *m) { return &m->w.output_norm; }
const tv_weights *model_weights(const tv_model *m) { return &m->w; }
int model_n_kv_layers(const tv_model *m) {   // (a model with shared KV or linear layers is never split)
    return (m->hp.n_layer_kv > 0 ? m->hp.n_layer_kv : m->layer_end - m->layer_begin) - m->hp.n_linear;
}
const float *model_rope_inv_freq(const tv_model *m, int n_ctx) {
    return m->rope_inv_freq_long && n_ctx > m->rope_long_ctx ? m->rope_inv_freq_long : m->rope_inv_freq;
}
const float *model_rope_inv_freq_swa(const tv_model *m) { return m->rope_inv_freq_swa; }
const tv_tensor *const *model_matrices(const tv_model *m, int *n) {
    *n = m->n_matrices;
    return (const tv_tensor *const *)m->matrices;
}
size_t model_weight_bytes(const tv_model *m) { return m->weight_bytes; }

// The bytes a decode step reads of t when it holds nbytes: an expert tensor's n_expert_used of its
// n_expert matrices, any other tensor whole (weight_bytes sums these).
static size_t step_read_bytes(const tv_model *m, const tv_tensor *t, size_t nbytes) {
    for (int l = 0; l < m->hp.n_layers && m->hp.n_expert > 1; l++) {
        const tv_layer *L = &m->layers[l];
        if (t == &L->ffn_gate_exps || t == &L->ffn_up_exps || t == &L->ffn_down_exps || t == &L->ffn_gate_up_exps)
            return nbytes / (size_t)m->hp.n_expert * (size_t)m->hp.n_expert_used;
    }
    return nbytes;
}
tv_type model_weight_type(const tv_model *m) {
    int64_t n_elems[TV_TYPE_COUNT] = {0};
    for (int i = 0; i < m->n_matrices; i++) {
        const tv_tensor *t = m->matrices[i];
        if ((unsigned)t->type < TV_TYPE_COUNT) n_elems[t->type] += t->ne[0] * t->ne[1] * t->ne[2];
    }
    int best = TV_TYPE_F32;
    for (int t = 0; t < TV_TYPE_COUNT; t++)
        if (n_elems[t] > n_elems[best]) best = t;
    return (tv_type)best;
}
uint64_t model_quantize_stats(const tv_model *m, double *ms) {
    if (ms) *ms = m->quantize_ms;
    return m->quantize_src_bytes;
}

int model_n_packed(const tv_model *m, double *ms) {
    if (ms) *ms = m->repack_ms;
    return m->n_packed;
}
int model_load_threads(const tv_model *m) { return m->n_load_threads; }
const char *model_format(const tv_model *m) { return m->format; }
const char *model_file_path(const tv_model *m) { return m->path; }
struct gguf_ctx *model_gguf(const tv_model *m) { return m->gguf; }
int32_t tv_model_n_vocab(const tv_model *m) { return m->hp.n_vocab; }
int32_t tv_model_n_ctx(const tv_model *m) { return m->hp.n_ctx_train; }
const struct tv_tokenizer *tv_model_tokenizer(const tv_model *m) { return m->tok; }
const char *tv_model_chat_template(const tv_model *m) { return m->chat_template; }
const char *tv_model_name(const tv_model *m) { return m->name; }
bool tv_model_is_eog(const tv_model *m, int32_t id) {
    if (id < 0) return false;
    if (id == m->stop_token || (m->tok && tv_tokenizer_is_eog(m->tok, id))) return true;
    const int32_t *eos;
    for (int i = m->hf ? hf_eos_ids(m->hf, &eos) : 0; i > 0; i--)
        if (eos[i - 1] == id) return true;
    return false;
}

const char *tv_model_cache_note(const tv_model *m) { return m->cache_note; }
void model_layer_range(const tv_model *m, int *begin, int *end) {
    *begin = m->layer_begin;
    *end = m->layer_end;
}

void tv_model_free(tv_model *m) {
    if (!m) return;
    wcache_unmap(&m->cache);
    free(m->cache_note);
    tv_tokenizer_free(m->tok);
    if (!m->hf) gguf_close(m->gguf);
    hf_close(m->hf);
    llama2c_close(m->l2c);
    for (int i = 0; i < m->n_packed; i++) free(m->packed[i]);
    free(m->packed);
    free(m->layers);
    free(m->matrices);
    free(m->rope_inv_freq);
    free(m->rope_inv_freq_long);
    free(m->rope_inv_freq_swa);
    free(m->chat_template);
    free(m->name);
    free(m->path);
    free(m);
}

// Checks that t exists, has a supported type, and has exactly the shape (ne0, ne1) (ne1 = 1 for vectors).
// ne2 > 1: a 3-D tensor of ne2 matrices: experts (ne2_key "expert_count": a decode step reads
// n_expert_used of them) or one per head ("head_count").
static tv_status bind(tv_model *m, const tv_tensor *src, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                      const char *ne2_key, tv_tensor *dst, tv_error *err) {
    if (!src && m->map_err[0]) return err_fail(err, TV_ERR_IO, "%s", m->map_err);
    if (!src) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
    const tv_type_traits *tr = kern_traits_ref(src->type);
    if (!tr || !tr->is_supported)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which tinyvllm cannot compute with",
                       m->path, name, kern_type_name(src->type));
    int64_t e1 = src->n_dims >= 2 ? src->ne[1] : 1;
    if (ne2 > 1 && src->ne[2] != ne2)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' holds %lld matrices (ne[2]), the metadata's %s is %lld",
                        m->path, name, (long long)src->ne[2], ne2_key, (long long)ne2);
    if (src->ne[0] != ne0 || e1 != ne1 || src->ne[2] != ne2 || src->ne[3] != 1) {
        char want[64];
        if (ne2 > 1) snprintf(want, sizeof want, "[%lld, %lld, %lld]", (long long)ne0, (long long)ne1, (long long)ne2);
        else snprintf(want, sizeof want, "[%lld, %lld]", (long long)ne0, (long long)ne1);
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], the metadata implies %s",
                        m->path, name, (long long)src->ne[0], (long long)src->ne[1], (long long)src->ne[2],
                        (long long)src->ne[3], want);
    }
    if (ne1 == 1 && src->type != TV_TYPE_F32)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: norm tensor '%s' must be F32, it is %s", m->path, name,
                       kern_type_name(src->type));
    *dst = *src;
    dst->name = NULL;   // names point into the container; not needed after binding
    m->weight_bytes += step_read_bytes(m, dst, dst->nbytes);
    return TV_OK;
}

static tv_status check_hparams(tv_model *m, tv_error *err) {
    tv_hparams *h = &m->hp;
    if (h->n_vocab <= 0 || h->dim <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv_heads <= 0 ||
        h->hidden_dim <= 0 || h->n_ctx_train <= 0 || h->head_dim <= 0)
        return err_fail(err, TV_ERR_FORMAT,
                       "%s: invalid hyperparameters (vocab %d, dim %d, layers %d, heads %d, kv heads %d, ffn %d, ctx %d)",
                       m->path, h->n_vocab, h->dim, h->n_layers, h->n_heads, h->n_kv_heads, h->hidden_dim, h->n_ctx_train);
    if (h->n_vocab > (1 << 24) || h->dim > (1 << 16) || h->n_layers > 1024 || h->n_heads > 1024 ||
        h->hidden_dim > (1 << 20) || h->head_dim > 1024)
        return err_fail(err, TV_ERR_FORMAT, "%s: hyperparameters out of any sane range", m->path);
    if (h->n_heads % h->n_kv_heads != 0)
        return err_fail(err, TV_ERR_FORMAT, "%s: n_kv_heads (%d) does not divide n_heads (%d)", m->path,
                       h->n_kv_heads, h->n_heads);
    if (h->n_rot <= 0 || h->n_rot > h->head_dim || h->n_rot % 2)
        return err_fail(err, TV_ERR_FORMAT, "%s: rope dimension %d invalid for head size %d", m->path, h->n_rot,
                       h->head_dim);
    if (!(h->norm_eps > 0 && h->norm_eps < 1))
        return err_fail(err, TV_ERR_FORMAT, "%s: rms norm epsilon %g invalid", m->path, (double)h->norm_eps);
    if (!(h->rope_theta > 0))
        return err_fail(err, TV_ERR_FORMAT, "%s: rope base %g invalid", m->path, (double)h->rope_theta);
    if (h->n_expert > TV_MAX_EXPERTS || h->n_expert_used < 0 || h->n_expert_used > h->n_expert ||
        (h->n_expert > 0) != (h->n_expert_used > 0))
        return err_fail(err, TV_ERR_FORMAT,
                        "%s: expert_used_count %d does not fit expert_count %d (needs 1 <= used <= count <= %d, or both 0)",
                        m->path, h->n_expert_used, h->n_expert, TV_MAX_EXPERTS);
    return TV_OK;
}

// A tensor by its GGUF name, NULL when absent. data false: its shape and type are enough (a lazily
// opened GGUF then maps nothing).
typedef const tv_tensor *(*find_fn)(void *src, const char *name, bool data, tv_tensor *tmp);

// src: the model (its gguf, opened lazily when it holds a part of the layers)
static const tv_tensor *find_gguf(void *src, const char *name, bool data, tv_tensor *tmp) {
    tv_model *m = src;
    const gguf_tensor_info *ti = gguf_find_tensor(m->gguf, name);
    if (!ti) return NULL;
    tv_error merr = {0};
    if (data && !gguf_map_tensor(m->gguf, ti, &merr)) {
        snprintf(m->map_err, sizeof m->map_err, "%s", merr.msg);
        return NULL;
    }
    *tmp = (tv_tensor){.name = ti->name, .type = ti->type, .n_dims = ti->n_dims, .nbytes = ti->nbytes, .data = ti->data};
    memcpy(tmp->ne, ti->ne, sizeof tmp->ne);
    return tmp;
}

static const tv_tensor *find_l2c(void *src, const char *name, bool data, tv_tensor *tmp) {
    (void)tmp;
    (void)data;
    return llama2c_find((tv_llama2c *)src, name);
}

// A dimension's value for layer L's tensors (its own attention shape when set, gemma4), or for the
// model-wide ones (L NULL).
static int64_t dim_value(const tv_hparams *h, const tv_layer *L, family_dim d) {
    const int64_t hd = L && L->head_dim ? L->head_dim : h->head_dim;
    const int64_t kvh = L && L->n_kv_heads ? L->n_kv_heads : h->n_kv_heads;
    switch (d) {
    case FD_ONE: return 1;
    case FD_EMBD: return h->dim;
    case FD_Q: return (int64_t)h->n_heads * hd;
    case FD_KV: return kvh * hd;
    case FD_FF: return L && L->ff_dim ? L->ff_dim : h->hidden_dim;
    case FD_VOCAB: return h->n_vocab;
    case FD_HEAD: return hd;
    case FD_EXPERT: return h->n_expert;
    case FD_FF_EXP: return h->ff_exp;
    case FD_FF_EXP2: return 2 * (int64_t)h->ff_exp;
    case FD_FF_SHEXP: return h->ff_shexp;
    case FD_HEADS: return h->n_heads;
    case FD_Q_GATED: return 2 * (int64_t)h->n_heads * hd;
    case FD_SSM_CONV: return h->ssm_d_conv;
    case FD_SSM_CONV_DIM: return 2 * (int64_t)h->ssm_n_k_heads * h->ssm_head_dim + h->ssm_d_inner;
    case FD_SSM_INNER: return h->ssm_d_inner;
    case FD_SSM_V_HEADS: return h->ssm_n_v_heads;
    case FD_SSM_BA: return 2 * (int64_t)h->ssm_n_v_heads;
    case FD_SSM_HEAD: return h->ssm_head_dim;
    case FD_PL: return h->n_embd_pl;
    case FD_PL_ALL: return (int64_t)h->n_layers * h->n_embd_pl;
    case FD_LORA_Q: return h->n_lora_q;
    case FD_LORA_KV: return h->n_lora_kv;
    case FD_ROT: return h->n_rot;
    case FD_Q_MLA: return (int64_t)h->n_heads * h->head_dim_k_mla;
    case FD_NOPE: return h->head_dim_k_mla - h->n_rot;
    case FD_V_MLA: return h->head_dim_v_mla;
    case FD_O_MLA: return (int64_t)h->n_heads * h->head_dim_v_mla;
    }
    return 0;
}

// Binds one tensor of the family's table (its layer l's copy when per-layer).
static tv_status bind_one(tv_model *m, const family_tensor *ft, int l, find_fn find, void *src, tv_error *err) {
    char name[96];
    tv_tensor tmp;
    if (ft->is_layer) snprintf(name, sizeof name, "blk.%d.%s", l + m->mtp_layer, ft->name);
    else snprintf(name, sizeof name, "%s", ft->name);
    if (!ft->is_layer && m->mtp_layer) {   // an MTP layer's own embeddings, head norm and head replace the model's
        const char *own = ft->offset == offsetof(tv_weights, tok_embd)      ? "embed_tokens"
                          : ft->offset == offsetof(tv_weights, output_norm) ? "shared_head_norm"
                          : ft->offset == offsetof(tv_weights, output)      ? "shared_head_head"
                                                                            : NULL;
        char nn[96];
        snprintf(nn, sizeof nn, "blk.%d.nextn.%s.weight", m->mtp_layer, own ? own : "");
        if (own && find(src, nn, false, &tmp)) memcpy(name, nn, sizeof name);
    }
    char *base = ft->is_layer ? (char *)&m->layers[l] : (char *)&m->w;
    tv_tensor *dst = (tv_tensor *)(base + ft->offset);
    const bool is_dense = m->hp.n_expert == 0 || (ft->is_layer && l + m->mtp_layer < m->hp.n_dense_lead);
    if ((ft->when == FW_DENSE && !is_dense) || (ft->when == FW_MOE && is_dense) ||
        (ft->when == FW_Q_LORA && m->hp.n_lora_q == 0) || (ft->when == FW_Q_DIRECT && m->hp.n_lora_q > 0))
        return TV_OK;
    if ((ft->when == FW_LINEAR && !m->layers[l].is_linear) || (ft->when == FW_FULL_ATTN && m->layers[l].is_linear) ||
        (ft->when == FW_PER_LAYER_INPUT && m->hp.n_embd_pl == 0) || (ft->when == FW_OWN_KV && l >= m->hp.n_layer_kv && m->hp.n_layer_kv > 0))
        return TV_OK;
    const tv_tensor *t = find(src, name, true, &tmp);
    if (!t && ft->is_optional && !m->map_err[0]) return TV_OK;
    char where[640];   // the GGUF name, and where it came from when the container names it otherwise
    if (t && t->name && strcmp(t->name, name)) snprintf(where, sizeof where, "%s' ('%s", name, t->name);
    else snprintf(where, sizeof where, "%s", name);
    const tv_layer *L = ft->is_layer ? &m->layers[l] : NULL;
    if (ft->n_parts) {   // fused: bind the whole, then each part as a view of its rows
        int64_t rows = 0;
        for (int i = 0; i < ft->n_parts; i++) rows += dim_value(&m->hp, L, ft->parts[i].rows);
        tv_tensor whole;
        tv_status st = bind(m, t, where, dim_value(&m->hp, L, ft->ne0), rows, 1, "", &whole, err);
        if (st) return st;
        const size_t row_bytes = kern_row_size(whole.type, whole.ne[0]);
        int64_t r0 = 0;
        for (int i = 0; i < ft->n_parts; i++) {
            tv_tensor *part = (tv_tensor *)(base + ft->parts[i].offset);
            *part = whole;
            part->ne[1] = dim_value(&m->hp, L, ft->parts[i].rows);
            part->data = (const uint8_t *)whole.data + (size_t)r0 * row_bytes;
            part->nbytes = (size_t)part->ne[1] * row_bytes;
            r0 += part->ne[1];
            m->matrices[m->n_matrices++] = part;
        }
        return TV_OK;
    }
    tv_status st = bind(m, t, where, dim_value(&m->hp, L, ft->ne0), dim_value(&m->hp, L, ft->ne1),
                        dim_value(&m->hp, L, ft->ne2), ft->ne2 == FD_HEADS ? "head_count" : "expert_count", dst, err);
    if (st) return st;
    if (ft->is_direct && dst->type != TV_TYPE_F32)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' must be F32, it is %s", m->path, where,
                        kern_type_name(dst->type));
    if (dst == &m->w.pl_tok_embd) m->weight_bytes -= dst->nbytes;   // a lookup table: one row per token
    else if (ft->ne1 != FD_ONE && !ft->is_direct && dst != &m->w.tok_embd) m->matrices[m->n_matrices++] = dst;
    return TV_OK;
}

// The per-layer records (zeroed), before the family configures them and binds their tensors.
static tv_status alloc_layers(tv_model *m, tv_error *err) {
    if (!(m->layers = calloc((size_t)m->hp.n_layers, sizeof *m->layers)))
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    for (int l = 0; l < m->hp.n_layers; l++) m->layers[l].kv_layer = l;
    return TV_OK;
}

// Whether a model-wide tensor of the table is bound by a process holding layers [begin, end): the
// embeddings by the first stage (and by the last when the output is tied to them), the output norm
// and projection by the last, everything else (e.g. RoPE factor tables) by every stage.
static bool stage_binds(const tv_model *m, const family_tensor *ft, bool tied) {
    const bool first = m->layer_begin == 0, last = m->layer_end == m->hp.n_layers;
    if (ft->offset == offsetof(tv_weights, tok_embd)) return first || (last && tied);
    if (ft->offset == offsetof(tv_weights, output) || ft->offset == offsetof(tv_weights, output_norm)) return last;
    return true;
}

// Binds every tensor of the family's table the process's layer range needs: the model-wide ones,
// then layer by layer. An absent output projection is tied to the embeddings.
static tv_status bind_all(tv_model *m, find_fn find, void *src, tv_error *err) {
    const model_family *fam = m->family;
    const int n_layers = m->hp.n_layers;
    if (m->layer_end == 0) m->layer_end = n_layers;
    if (m->layer_begin < 0 || m->layer_begin >= m->layer_end || m->layer_end > n_layers)
        return err_fail(err, TV_ERR_INVALID, "%s: layer range [%d, %d) is not within the model's %d layers", m->path,
                        m->layer_begin, m->layer_end, n_layers);
    if (m->hp.n_linear > 0 && (m->layer_begin > 0 || m->layer_end < n_layers))   // their state slots stay in one process
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: a hybrid (linear-attention) model cannot be split into pipeline stages yet",
                        m->path);
    if ((m->hp.n_embd_pl > 0 || m->hp.n_layer_kv > 0) && (m->layer_begin > 0 || m->layer_end < n_layers))
        return err_fail(err, TV_ERR_UNSUPPORTED,
                        "%s: a model with per-layer inputs or KV shared across layers cannot be split into pipeline stages yet",
                        m->path);
    m->matrices = malloc(((size_t)n_layers + 1) * (size_t)fam->n_tensors * 3 * sizeof *m->matrices);   // 3: parts
    if (!m->matrices) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    tv_tensor tmp;
    char head[96];
    snprintf(head, sizeof head, "blk.%d.nextn.shared_head_head.weight", m->mtp_layer);
    const bool tied = !find(src, "output.weight", false, &tmp) && !(m->mtp_layer && find(src, head, false, &tmp));
    tv_status st;
    for (int i = 0; i < fam->n_tensors; i++)
        if (!fam->tensors[i].is_layer && stage_binds(m, &fam->tensors[i], tied) &&
            (st = bind_one(m, &fam->tensors[i], 0, find, src, err)))
            return st;
    for (int l = m->layer_begin; l < m->layer_end; l++)
        for (int i = 0; i < fam->n_tensors; i++)
            if (fam->tensors[i].is_layer && (st = bind_one(m, &fam->tensors[i], l, find, src, err))) return st;
    static const family_tensor MTP[] = {   // an MTP layer's input projection and norms
        FAMILY_TENSOR("nextn.eh_proj.weight", mtp_eh_proj, FD_EMBD, FD_EMBD),
        FAMILY_TENSOR("nextn.enorm.weight", mtp_enorm, FD_EMBD, FD_ONE),
        FAMILY_TENSOR("nextn.hnorm.weight", mtp_hnorm, FD_EMBD, FD_ONE),
    };
    for (int i = 0; m->mtp_layer && i < FAMILY_COUNT(MTP); i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s", m->mtp_layer, MTP[i].name);
        tv_tensor *dst = (tv_tensor *)((char *)&m->w + MTP[i].offset);
        const int64_t ne0 = i == 0 ? 2 * (int64_t)m->hp.dim : m->hp.dim, ne1 = i == 0 ? m->hp.dim : 1;
        if ((st = bind(m, find(src, name, true, &tmp), name, ne0, ne1, 1, "", dst, err))) return st;
        if (i == 0) m->matrices[m->n_matrices++] = dst;
    }
    if (m->w.tok_embd.data && (m->w.output.data || m->layer_end < n_layers))
        m->weight_bytes -= m->w.tok_embd.nbytes;   // a decode step reads one row of the embeddings
    if (!m->w.output.data && m->layer_end == n_layers)
        m->w.output = m->w.tok_embd;   // tied embeddings
    return TV_OK;
}

// deepseek2's expanded attention needs each head's wk_b transposed: wk_bt[h] (nope rows, n_lora_kv) with
// wk_bt[h][i][j] = wk_b[h][j][i], so K_nope = latent · wk_bt[h]ᵀ runs as an ordinary matmul. Made here,
// from the file's wk_b before --quantize or repacking touch it: F32 from F32 (exact), else F16 (F16 and
// BF16 within f16's rounding, a quantized wk_b dequantized first); a matrix of the model from then on
// (model_matrices: the weight cache stores it, pack_weights may repack it), never --quantize'd.
static tv_status mla_transpose_k(tv_model *m, tv_error *err) {
    const tv_hparams *h = &m->hp;
    const int64_t H = h->n_heads, r = h->n_lora_kv, nope = h->head_dim_k_mla - h->n_rot;
    float *row = malloc((size_t)(r > nope ? r : nope) * (size_t)r * sizeof(float));   // (r, nope) one head
    if (!row) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    if (!m->packed && !(m->packed = calloc((size_t)m->n_matrices + (size_t)(m->layer_end - m->layer_begin) + 3,
                                           sizeof *m->packed))) {
        free(row);
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    }
    tv_status st = TV_OK;
    for (int l = m->layer_begin; l < m->layer_end && !st; l++) {
        tv_layer *L = &m->layers[l];
        const tv_tensor *kb = &L->wk_b;   // (H, r rows, nope)
        const tv_type_traits *tt = kb->data ? kern_traits_ref(kb->type) : NULL;
        if (!tt || !tt->to_float) {
            st = err_fail(err, TV_ERR_UNSUPPORTED, "%s: blk.%d.attn_k_b.weight: type %s cannot be read back to transpose it",
                          m->path, l, kern_type_name(kb->type));
            break;
        }
        const tv_type ty = kb->type == TV_TYPE_F32 ? TV_TYPE_F32 : TV_TYPE_F16;
        const size_t in_row = kern_row_size(kb->type, nope), out_row = kern_row_size(ty, r);
        const size_t sz = out_row * (size_t)(nope * H);
        void *buf = aligned_alloc(64, (sz + 63) & ~(size_t)63);
        if (!buf) {
            st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory transposing attn_k_b (%zu bytes)", m->path, sz);
            break;
        }
        for (int64_t hh = 0; hh < H; hh++) {
            for (int64_t j = 0; j < r; j++)   // row (r, nope) of wk_b[hh] into row[j * nope ..]
                tt->to_float((const uint8_t *)kb->data + (size_t)(hh * r + j) * in_row, row + j * nope, nope);
            for (int64_t i = 0; i < nope; i++) {
                uint8_t *dst = (uint8_t *)buf + (size_t)(hh * nope + i) * out_row;
                for (int64_t j = 0; j < r; j++) {
                    const float v = row[j * nope + i];
                    if (ty == TV_TYPE_F32) ((float *)dst)[j] = v;
                    else ((tv_f16 *)dst)[j] = f32_to_f16(v);
                }
            }
        }
        L->wk_bt = (tv_tensor){.name = "attn_k_b.weight (transposed)", .type = ty, .n_dims = 3, .ne = {r, nope, H, 1},
                               .data = buf, .nbytes = sz};
        m->packed[m->n_packed++] = buf;
        m->matrices[m->n_matrices++] = &L->wk_bt;
    }
    free(row);
    return st;
}

// Made at load from another matrix (mla_transpose_k): --quantize leaves it as made.
static bool is_derived_matrix(const tv_model *m, const tv_tensor *t) {
    for (int l = m->layer_begin; m->hp.n_lora_kv > 0 && l < m->layer_end; l++)
        if (t == &m->layers[l].wk_bt) return true;
    return false;
}

// RoPE scaling as the file asks for it (read_rope_scaling).
typedef struct rope_scaling {
    double factor;                   // > 1 stretches the context ("llama3", "yarn"; "linear" is rope_linear_scale)
    double l3_low, l3_high;          // llama3: frequency-band factors
    double orig_ctx;                 // llama3 / yarn: the pre-training context length
    double beta_fast, beta_slow;     // yarn: correction range, in rotations over orig_ctx
    bool is_llama3, is_yarn;
    const float *freq_factors;       // (n_rot/2) rope_freqs.weight or rope_factors_short.weight divisors, or NULL
    const float *freq_factors_long;  // (n_rot/2) rope_factors_long.weight (LongRoPE), or NULL
    double long_ctx;                 // LongRoPE: contexts above this use freq_factors_long
} rope_scaling;

// Inverse RoPE frequencies, scaling applied: explicit freq factors (rope_freqs.weight) divide them;
// llama-3 style bands (Meta's recipe: wavelengths longer than orig_ctx/low_freq_factor are divided
// by factor, shorter than orig_ctx/high_freq_factor kept, the band between interpolated smoothly);
// YaRN (ggml's rope_yarn: pair i blends the interpolated inv/factor and the original inv by a ramp
// that is 1 below the fast correction dim and 0 above the slow one; the mix is linear in the
// position, so it folds into the frequency).
// LongRoPE (Phi-3) keeps two tables, divided by its short and long factors; the forward pass
// takes the long one when its context exceeds the original one (llama.cpp's get_rope_factors).
static tv_status make_rope_table(tv_model *m, const rope_scaling *rs, const float *freq_factors, float **out,
                                 tv_error *err);

static tv_status make_rope(tv_model *m, const rope_scaling *rs, tv_error *err) {
    tv_status st = make_rope_table(m, rs, rs->freq_factors, &m->rope_inv_freq, err);
    if (st || !rs->freq_factors_long) return st;
    m->rope_long_ctx = (int32_t)rs->long_ctx;
    return make_rope_table(m, rs, rs->freq_factors_long, &m->rope_inv_freq_long, err);
}

static tv_status make_rope_table(tv_model *m, const rope_scaling *rs, const float *freq_factors, float **out,
                                 tv_error *err) {
    const tv_hparams *h = &m->hp;
    int n = h->n_rot / 2;
    float *inv_freq = *out = malloc((size_t)n * sizeof(float));
    if (!inv_freq) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    double corr_lo = 0, corr_hi = 0;
    if (rs->is_yarn) {   // ggml_rope_yarn_corr_dims
        const double base_log = 2 * log((double)h->rope_theta);
        corr_lo = floor(h->n_rot * log(rs->orig_ctx / (rs->beta_fast * 2 * M_PI)) / base_log);
        corr_hi = ceil(h->n_rot * log(rs->orig_ctx / (rs->beta_slow * 2 * M_PI)) / base_log);
        corr_lo = corr_lo > 0 ? corr_lo : 0;
        corr_hi = corr_hi < h->n_rot - 1 ? corr_hi : h->n_rot - 1;
    }
    for (int i = 0; i < n; i++) {
        double inv = pow((double)h->rope_theta, -2.0 * i / h->n_rot);
        if (freq_factors) inv /= freq_factors[i];
        if (rs->is_yarn) {
            double y = (i - corr_lo) / (corr_hi - corr_lo > 0.001 ? corr_hi - corr_lo : 0.001);
            double mix = 1 - (y < 0 ? 0 : y > 1 ? 1 : y);
            inv *= (1 - mix) / rs->factor + mix;
        } else if (rs->is_llama3 && !freq_factors) {
            double wavelen = 2 * M_PI / inv;
            double low_wl = rs->orig_ctx / rs->l3_low, high_wl = rs->orig_ctx / rs->l3_high;
            if (wavelen > low_wl) {
                inv /= rs->factor;
            } else if (wavelen >= high_wl) {
                double smooth = (rs->orig_ctx / wavelen - rs->l3_low) / (rs->l3_high - rs->l3_low);
                inv = (1 - smooth) * inv / rs->factor + smooth * inv;
            }
        }
        inv_freq[i] = (float)inv;
    }
    if (h->rope_theta_swa > 0) {   // the sliding layers' table: their own base and dims, no scaling
        const int n_swa = h->n_rot_swa / 2;
        if (!(m->rope_inv_freq_swa = malloc((size_t)n_swa * sizeof(float))))
            return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
        for (int i = 0; i < n_swa; i++)
            m->rope_inv_freq_swa[i] = (float)pow((double)h->rope_theta_swa, -2.0 * i / h->n_rot_swa);
    }
    return TV_OK;
}

static bool get_arch_int(const gguf_ctx *g, const char *arch, const char *key, int64_t *out) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_int(g, k, out);
}

static bool get_arch_float(const gguf_ctx *g, const char *arch, const char *key, double *out) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_float(g, k, out);
}

static char *dup_str(gguf_str s) {
    char *r = malloc(s.len + 1);
    if (!r) return NULL;
    memcpy(r, s.ptr, s.len);
    r[s.len] = 0;
    return r;
}

// A per-layer key given as an array (family_key.is_per_layer): block_count integers, each in the
// key's range; *iv gets layer 0's and *found is set. Absent or not an array: nothing.
static tv_status read_per_layer(tv_model *m, const char *key, const family_key *k, int64_t *iv, bool *found,
                                tv_error *err) {
    const gguf_value *v = gguf_get(m->gguf, key);
    if (!v || v->type != GGUF_TYPE_ARRAY) return TV_OK;
    const gguf_type et = v->arr_type;
    const bool is_int = et <= GGUF_TYPE_INT32 || et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64;
    if (!is_int || m->hp.n_layers < 1 || v->arr_n != (uint64_t)m->hp.n_layers)
        return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s must be an integer or %d integers (one per layer)",
                        m->path, key, m->hp.n_layers);
    for (uint64_t l = 0; l < v->arr_n; l++) {
        const int64_t x = gguf_arr_int(v, l);
        if (!((double)x >= k->lo && (double)x <= k->hi))
            return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s[%llu] = %lld is out of range [%g, %g]", m->path, key,
                            (unsigned long long)l, (long long)x, k->lo, k->hi);
    }
    *iv = gguf_arr_int(v, 0);
    *found = true;
    return TV_OK;
}

// Reads the family's hyperparameter keys (family.h, family_key) into m->hp, each checked against
// its range, then the shared derivations: kv heads = heads, head_dim = dim / heads, n_rot = head_dim.
static tv_status read_keys(tv_model *m, const char *arch, tv_error *err) {
    const model_family *fam = m->family;
    tv_hparams *h = &m->hp;
    for (int i = 0; i < fam->n_keys; i++) {
        const family_key *k = &fam->keys[i];
        char key[160];
        snprintf(key, sizeof key, "%s.%s", arch, k->key);
        double v = k->dflt;
        int64_t iv;
        bool b;
        bool found = k->is_float ? gguf_get_float(m->gguf, key, &v) : gguf_get_int(m->gguf, key, &iv);
        if (!found && !k->is_float && gguf_get_bool(m->gguf, key, &b)) {
            found = true;
            iv = b;
        }
        tv_status st = TV_OK;
        if (!found && k->is_per_layer && (st = read_per_layer(m, key, k, &iv, &found, err))) return st;
        if (found && !k->is_float) v = (double)iv;
        if (!found && k->is_required)
            return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s is missing or not %s (the %s family requires it)",
                            m->path, key, k->is_float ? "a number" : "an integer", fam->name);
        if (found && !(v >= k->lo && v <= k->hi))
            return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s = %g is out of range [%g, %g]", m->path, key, v,
                            k->lo, k->hi);
        char *field = (char *)h + k->offset;
        if (k->is_float) *(float *)field = (float)v;
        else *(int32_t *)field = (int32_t)v;
    }
    if (!h->n_kv_heads) h->n_kv_heads = h->n_heads;
    if (!h->head_dim) {
        if (h->dim % h->n_heads)
            return err_fail(err, TV_ERR_FORMAT, "%s: head count %d does not divide embedding length %d", m->path,
                            h->n_heads, h->dim);
        h->head_dim = h->dim / h->n_heads;
    }
    if (!h->n_rot) h->n_rot = h->head_dim;
    char key[160];
    int64_t v_len;
    snprintf(key, sizeof key, "%s.attention.value_length", arch);
    if (h->n_lora_kv > 0) {   // latent attention: the values are the latents
        if (gguf_get_int(m->gguf, key, &v_len) && v_len != h->n_lora_kv)
            return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s = %lld, latent attention needs kv_lora_rank %d",
                            m->path, key, (long long)v_len, h->n_lora_kv);
    } else if (gguf_get_int(m->gguf, key, &v_len) && v_len != h->head_dim) {
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: metadata %s = %lld, tinyvllm needs it equal to the key length %d",
                        m->path, key, (long long)v_len, h->head_dim);
    }
    return TV_OK;
}

// A float `<arch>.<key>` in [lo, hi], or dflt when absent; an error naming the key when out of range.
static tv_status get_arch_float_in(tv_model *m, const char *arch, const char *key, double lo, double hi, double dflt,
                                   double *out, tv_error *err) {
    *out = dflt;
    if (get_arch_float(m->gguf, arch, key, out) && !(*out >= lo && *out <= hi))
        return err_fail(err, TV_ERR_FORMAT, "%s: metadata %s.%s = %g is out of range [%g, %g]", m->path, arch, key,
                        *out, lo, hi);
    return TV_OK;
}

// RoPE frequency divisors: the F32 [n_rot/2] tensor `name`, every entry positive; *out NULL when absent.
static tv_status rope_factors(tv_model *m, find_fn find, void *src, const char *name, const float **out,
                              tv_error *err) {
    const int n = m->hp.n_rot / 2;
    tv_tensor tmp;
    const tv_tensor *rf = find(src, name, true, &tmp);
    *out = NULL;
    if (!rf) return TV_OK;
    if (rf->type != TV_TYPE_F32 || rf->ne[0] != n || rf->n_dims != 1)
        return err_fail(err, TV_ERR_FORMAT, "%s: %s must be F32 [%d]", m->path, name, n);
    const float *f = rf->data;
    for (int i = 0; i < n; i++)
        if (!(f[i] > 0)) return err_fail(err, TV_ERR_FORMAT, "%s: %s[%d] is not positive", m->path, name, i);
    *out = f;
    return TV_OK;
}

// RoPE scaling from llama.cpp's keys: rope.scaling.type "none", "linear" (the default when only a
// factor is given: positions / factor), "yarn" (with original_context_length, yarn_beta_fast/slow,
// yarn_log_multiplier) or "llama3" (low/high_freq_factor); rope.scaling.attn_factor; a
// rope_freqs.weight tensor (Llama 3.x) or LongRoPE's rope_factors_short / rope_factors_long
// (Phi-3: two tables, make_rope). Sets h->rope_scaling, rope_linear_scale, rope_mscale and
// attn_temp_floor; *rs for make_rope.
static tv_status read_rope_scaling(tv_model *m, const char *arch, find_fn find, void *src, rope_scaling *rs,
                                   tv_error *err) {
    tv_hparams *h = &m->hp;
    gguf_ctx *g = m->gguf;
    *rs = (rope_scaling){.factor = 1, .l3_low = 1, .l3_high = 4, .orig_ctx = 8192, .beta_fast = 32, .beta_slow = 1};
    h->rope_scaling = "none";
    h->rope_linear_scale = 1.0f;
    h->rope_mscale = 1.0f;
    double factor, attn_factor, orig_ctx, log_mul;
    tv_status st;
    if ((st = get_arch_float_in(m, arch, "rope.scaling.factor", 0, 1e6, 0, &factor, err)) ||
        (st = get_arch_float_in(m, arch, "rope.scaling.attn_factor", 1e-6, 1e3, 1, &attn_factor, err)) ||
        (st = get_arch_float_in(m, arch, "rope.scaling.original_context_length", 1, INT32_MAX, h->n_ctx_train,
                                &orig_ctx, err)))
        return st;
    if (factor == 0) factor = 1;   // llama.cpp: 0 means none
    char key[160];
    gguf_str s = {0};
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    bool has_type = gguf_get_str(g, key, &s);
    if (!has_type || (s.len == 6 && !memcmp(s.ptr, "linear", 6))) {
        if (factor != 1) {
            h->rope_scaling = "linear";
            h->rope_linear_scale = (float)(1.0 / factor);
        }
    } else if (s.len == 6 && !memcmp(s.ptr, "llama3", 6)) {
        h->rope_scaling = "llama3";
        rs->is_llama3 = true;
        rs->factor = factor;
        double f;
        if (get_arch_float(g, arch, "rope.scaling.low_freq_factor", &f)) rs->l3_low = f;
        if (get_arch_float(g, arch, "rope.scaling.high_freq_factor", &f)) rs->l3_high = f;
        if (get_arch_float(g, arch, "rope.scaling.original_context_length", &f)) rs->orig_ctx = f;
        if (!(rs->l3_low > 0 && rs->l3_high > rs->l3_low && rs->orig_ctx > 0))
            return err_fail(err, TV_ERR_FORMAT, "%s: llama3 rope scaling parameters invalid", m->path);
    } else if (s.len == 4 && !memcmp(s.ptr, "yarn", 4)) {
        h->rope_scaling = "yarn";
        rs->is_yarn = true;
        rs->factor = factor;
        rs->orig_ctx = orig_ctx;
        if ((st = get_arch_float_in(m, arch, "rope.scaling.yarn_beta_fast", 1e-3, 1e4, 32, &rs->beta_fast, err)) ||
            (st = get_arch_float_in(m, arch, "rope.scaling.yarn_beta_slow", 1e-3, 1e4, 1, &rs->beta_slow, err)) ||
            (st = get_arch_float_in(m, arch, "rope.scaling.yarn_log_multiplier", 0, 100, 0, &log_mul, err)))
            return st;
        // llama.cpp's magnitude: mscale(f, 1) [/ mscale(f, log_mul)], mscale(f, k) = 1 + 0.1 k ln f (f > 1)
        double ms = factor > 1 ? 1 + 0.1 * log(factor) : 1;
        if (log_mul != 0 && factor > 1) ms /= 1 + 0.1 * log_mul * log(factor);
        h->rope_mscale = (float)ms;
    } else if (!(s.len == 4 && !memcmp(s.ptr, "none", 4))) {
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: rope scaling '%.*s' not supported (none, linear, yarn, llama3)",
                        m->path, (int)s.len, s.ptr);
    }
    h->rope_mscale *= (float)attn_factor;
    if (h->attn_temp_scale != 0) h->attn_temp_floor = (int32_t)orig_ctx;

    const float *rope_freqs, *f_short, *f_long;
    if ((st = rope_factors(m, find, src, "rope_freqs.weight", &rope_freqs, err)) ||
        (st = rope_factors(m, find, src, "rope_factors_short.weight", &f_short, err)) ||
        (st = rope_factors(m, find, src, "rope_factors_long.weight", &f_long, err)))
        return st;
    if (rope_freqs) {   // llama.cpp: rope_freqs wins over LongRoPE's factors
        rs->freq_factors = rope_freqs;
        if (!rs->is_yarn) h->rope_scaling = "llama3";
    } else if (f_short || f_long) {
        h->rope_scaling = "longrope";
        rs->freq_factors = f_short;
        rs->freq_factors_long = f_long;
        rs->long_ctx = orig_ctx;
    }
    return TV_OK;
}

// Everything after the container is open: metadata in m->gguf (a GGUF's, or a Hugging Face
// folder's as hf.c maps it), tensors through find(src), the tokenizer from tokenizer.json in
// tok_dir (a folder's) or the GGUF's tokenizer.* keys.
// Makes m (keys read, configured) the view of its first MTP layer: one layer, the file's layer
// n_layers, a full-attention layer with the family's block (its K/V the only pool, no recurrent
// state), bound from blk.<n_layers>.* by bind_all. TV_ERR_UNSUPPORTED when the file has none.
static tv_status mtp_view(tv_model *m, const char *arch, tv_error *err) {
    tv_hparams *h = &m->hp;
    if (h->n_nextn < 1)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: the model has no MTP layer (%s.nextn_predict_layers is %s)", m->path,
                        arch, h->n_nextn ? "0" : "absent");
    if (m->layer_end)
        return err_fail(err, TV_ERR_INVALID, "%s: an MTP layer is loaded whole, not as a pipeline stage", m->path);
    m->mtp_layer = h->n_layers;
    m->layers[0] = (tv_layer){.kv_layer = 0};
    h->n_layers = 1;
    h->n_linear = 0;
    return TV_OK;
}

static tv_status load_meta(tv_model *m, const tv_model_params *p, find_fn find, void *src, const char *tok_dir,
                           tv_error *err) {
    gguf_ctx *g = m->gguf;
    gguf_str s;
    char arch[64];
    if (!gguf_get_str(g, "general.architecture", &s))
        return err_fail(err, TV_ERR_FORMAT, "%s: general.architecture is missing", m->path);
    snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    if (!(m->family = family_find(arch))) {
        char list[256];
        family_list_archs(list, sizeof list);
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", m->path,
                        arch, list);
    }
    if (gguf_get_str(g, "general.name", &s)) m->name = dup_str(s);
    tv_hparams *h = &m->hp;
    int64_t v;
    tv_status st = read_keys(m, arch, err);
    if (st) return st;
    tv_tensor te_tmp;
    const tv_tensor *te = find(src, "token_embd.weight", false, &te_tmp);
    h->n_vocab = te ? (int32_t)te->ne[1] : 0;
    if (get_arch_int(g, arch, "vocab_size", &v) && te && v != te->ne[1])
        return err_fail(err, TV_ERR_FORMAT, "%s: %s.vocab_size %lld but token_embd.weight has %lld rows", m->path,
                       arch, (long long)v, (long long)te->ne[1]);
    if ((st = check_hparams(m, err))) return st;

    rope_scaling rs;
    if ((st = read_rope_scaling(m, arch, find, src, &rs, err)) || (st = alloc_layers(m, err))) return st;
    if (m->family->configure && (st = m->family->configure(g, arch, h, m->layers, err)))
        return err_fail_prefix(err, st, "%s", m->path);
    if (!h->n_rot_swa) h->n_rot_swa = h->n_rot;
    if (h->n_expert > 0 && (st = family_moe_setup(arch, h, m->family->moe, err)))
        return err_fail_prefix(err, st, "%s", m->path);
    if (p->mtp && (st = mtp_view(m, arch, err))) return st;
    if ((st = bind_all(m, find, src, err))) return st;
    h->mla_form = p->mla_form;
    if (h->n_lora_kv > 0) {   // (every layer's attn_k_b / attn_v_b: a pipeline stage judges its own)
        h->mla_auto_expands = !p->quantize;   // (--quantize makes them quantized)
        for (int l = m->layer_begin; l < m->layer_end; l++)
            for (int i = 0; i < 2; i++) {
                const tv_type ty = i ? m->layers[l].wv_b.type : m->layers[l].wk_b.type;
                h->mla_auto_expands &= ty == TV_TYPE_F32 || ty == TV_TYPE_F16 || ty == TV_TYPE_BF16;
            }
    }
    // a quantized model's transposes are made only when asked for (TV_MLA_EXPANDED)
    if (h->n_lora_kv > 0 && model_mla_may_expand(h) && (st = mla_transpose_k(m, err)))
        return st;
    if ((st = make_rope(m, &rs, err))) return st;

    if (gguf_get_str(g, "tokenizer.chat_template", &s) && !(m->chat_template = dup_str(s)))
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    if (p->tokenizer_path) {   // any kind tv_tokenizer_load reads; a llama2.c tokenizer.bin holds exactly n_vocab
        m->tok = tv_tokenizer_load(p->tokenizer_path, h->n_vocab, err);
        if (!m->tok) return err ? err->code : TV_ERR_FORMAT;
    } else if (tok_dir) {
        m->tok = tokenizer_load_json(tok_dir, err);
        if (!m->tok) return err ? err->code : TV_ERR_FORMAT;
    } else if (gguf_get_str(g, "tokenizer.ggml.model", &s) && !(s.len == 8 && !memcmp(s.ptr, "no_vocab", 8))) {
        m->tok = tokenizer_from_gguf(g, err);
        if (!m->tok) return err_fail_prefix(err, TV_ERR_FORMAT, "%s: tokenizer", m->path);
    }
    if (m->tok && tv_tokenizer_n_vocab(m->tok) > h->n_vocab)
        return err_fail(err, TV_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d", m->path,
                       tv_tokenizer_n_vocab(m->tok), h->n_vocab);
    int64_t eos;
    m->stop_token = gguf_get_int(g, "tokenizer.ggml.eos_token_id", &eos) && eos >= 0 && eos < h->n_vocab
                        ? (int32_t)eos
                        : (m->tok ? tv_tokenizer_eos(m->tok) : -1);
    return TV_OK;
}

// A process holding a part of the layers opens the file lazily: only its tensors are mapped.
static tv_status load_gguf(tv_model *m, const tv_model_params *p, tv_error *err) {
    m->gguf = p->layer_end > 0 ? gguf_open_lazy(m->path, err) : gguf_open(m->path, err);
    if (!m->gguf) return err ? err->code : TV_ERR_FORMAT;
    m->format = "gguf";
    return load_meta(m, p, find_gguf, m, NULL, err);
}

static const tv_tensor *find_hf(void *src, const char *name, bool data, tv_tensor *tmp) {
    (void)tmp;
    (void)data;
    return hf_find_tensor((const hf_model *)src, name);
}

static tv_status load_hf(tv_model *m, const tv_model_params *p, tv_error *err) {
    if (!(m->hf = hf_open(m->path, err))) return err ? err->code : TV_ERR_FORMAT;
    m->gguf = hf_metadata(m->hf);
    m->format = "hf";
    return load_meta(m, p, find_hf, m->hf, hf_tokenizer_dir(m->hf), err);
}

static tv_status load_llama2c(tv_model *m, const tv_model_params *p, tv_error *err) {
    tv_llama2c *l = m->l2c = llama2c_open(m->path, err);
    if (!l) return sniff_explain_model_error(m->path, err ? err->code : TV_ERR_FORMAT, err);
    m->format = "llama2c";
    m->family = family_by_name("llama");   // llama2.c checkpoints are LLaMA models
    const tv_llama2c_config *c = llama2c_get_config(l);
    tv_hparams *h = &m->hp;
    h->n_vocab = c->vocab_size;
    h->dim = c->dim;
    h->n_layers = c->n_layers;
    h->n_heads = c->n_heads;
    h->n_kv_heads = c->n_kv_heads;
    h->hidden_dim = c->hidden_dim;
    h->n_ctx_train = c->seq_len;
    h->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    h->n_rot = h->head_dim;
    h->norm_eps = 1e-5f;
    h->rope_theta = 10000.0f;
    h->rope_linear_scale = 1.0f;
    h->rope_mscale = 1.0f;
    h->rope_scaling = "none";
    tv_status st = check_hparams(m, err);
    if (st) return st;
    if ((st = alloc_layers(m, err)) || (st = bind_all(m, find_l2c, l, err))) return st;
    if ((st = make_rope(m, &(rope_scaling){0}, err))) return st;
    if (p->tokenizer_path) {   // a tokenizer.bin, or any other kind tv_tokenizer_load reads (a GGUF holding one)
        m->tok = tv_tokenizer_load(p->tokenizer_path, h->n_vocab, err);
        if (!m->tok) return err ? err->code : TV_ERR_FORMAT;
        if (tv_tokenizer_n_vocab(m->tok) > h->n_vocab)
            return err_fail(err, TV_ERR_FORMAT, "%s: tokenizer %s has %d tokens but the model only %d", m->path,
                            p->tokenizer_path, tv_tokenizer_n_vocab(m->tok), h->n_vocab);
    }
    m->stop_token = 1;   // llama2.c's run.c stops when it samples BOS
    return TV_OK;
}

// Drops the pages of [p, p + n) from this process (the mapping stays valid: a private read-only file
// mapping refaults from the page cache if touched again). Only whole pages inside the range.
static void release_mapped(const void *p, size_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1), e = ((uintptr_t)p + n) & ~(uintptr_t)(ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

// Repacks every matmul weight whose type's packed kernel pays on the caller's CPU path (kernels.h,
// "packed weights"): the copy replaces the tensor's data, the file pages it came from are released,
// so memory stays at one copy of the weights. The embedding table is never packed (rows are read
// one at a time); a tied output projection, which is that same table, gets a packed copy of its
// own, so the logits (a third of the FLOPs of a batched decode step on gemma3-1b's 262k
// vocabulary) run the packed kernels like every other matrix, and the lookups keep reading the
// table in place (its file pages are released after the copy: only the rows of the tokens seen
// come back).
typedef struct repack_job {
    const tv_type_traits *tt;
    const void *src;
    void *dst;
    size_t row_bytes;
    int64_t n, rows;
} repack_job;

// Thread ith of nth repacks a contiguous range of 16-row groups.
static void repack_part(void *arg, int ith, int nth) {
    const repack_job *j = arg;
    const int64_t groups = (j->rows + TV_PACK_ROWS - 1) / TV_PACK_ROWS;
    const int64_t g0 = groups * ith / nth, g1 = groups * (ith + 1) / nth;
    if (g0 >= g1) return;
    const int64_t r0 = g0 * TV_PACK_ROWS, r1 = g1 * TV_PACK_ROWS < j->rows ? g1 * TV_PACK_ROWS : j->rows;
    j->tt->repack((const uint8_t *)j->src + (size_t)r0 * j->row_bytes, j->row_bytes, j->n, r1 - r0,
                  (uint8_t *)j->dst + (size_t)r0 * j->row_bytes);
}

tv_type model_quant_type(tv_type target, int64_t ne0) {
    const tv_type_traits *tr = kern_traits_ref(target);
    if (tr && ne0 % tr->blck_size == 0) return target;
    return ne0 % TV_QK8_0 == 0 ? TV_TYPE_Q8_0 : TV_TYPE_F16;
}

// Quantizing one matrix: thread ith of nth converts a contiguous range of rows through f32, with the
// load path's conversion kernels (every path's to_float / from_float gives the reference's bits:
// test_kernels), so the result is the offline converter's byte for byte.
typedef struct quant_job {
    const kern_table *kt;
    const tv_tensor *src;
    void *dst;
    tv_type type;
    float *scratch;              // (nth, ne0)
} quant_job;

static void quant_part(void *arg, int ith, int nth) {
    const quant_job *j = arg;
    const int64_t n = j->src->ne[0], rows = j->src->ne[1] * j->src->ne[2], r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
    const tv_type_traits *from = kern_traits(j->kt, j->src->type), *to = kern_traits(j->kt, j->type);
    const size_t sb = kern_row_size(j->src->type, n), db = kern_row_size(j->type, n);
    float *tmp = j->scratch + (size_t)ith * (size_t)n;
    // the source (mapped file pages) and the new buffer: without it a fault per 4 KiB page; F16 -> Q8_0
    // of a 2.2 GB GGUF ran 1.2-1.5x faster with it (3 interleaved A/B rounds, bench --load, 2 threads)
    (void)mem_populate((const uint8_t *)j->src->data + (size_t)r0 * sb, (size_t)(r1 - r0) * sb, false);
    (void)mem_populate((uint8_t *)j->dst + (size_t)r0 * db, (size_t)(r1 - r0) * db, true);
    for (int64_t r = r0; r < r1; r++) {
        from->to_float((const uint8_t *)j->src->data + (size_t)r * sb, tmp, n);
        to->from_float(tmp, (uint8_t *)j->dst + (size_t)r * db, n);
    }
}

static int64_t worker_count(const tv_model_params *p) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return p->n_threads > 0 ? p->n_threads : ncpu > 1 ? (ncpu < 16 ? ncpu : 16) : 1;
}

static bool is_float_matrix(const tv_tensor *t) {
    return t->data && !t->packed && t->ne[1] > 1 &&
           (t->type == TV_TYPE_F32 || t->type == TV_TYPE_F16 || t->type == TV_TYPE_BF16);
}

// A MoE router or gpt-oss's per-expert biases (2-D, not multiplied): left in their float type by
// --quantize, as llama-quantize leaves ffn_gate_inp and every tensor not named *weight.
static bool is_router(const tv_model *m, const tv_tensor *t) {
    for (int l = 0; l < m->hp.n_layers; l++) {
        const tv_layer *L = &m->layers[l];
        if (t == &L->ffn_gate_inp || t == &L->ffn_gate_exps_b || t == &L->ffn_up_exps_b || t == &L->ffn_down_exps_b) return true;
    }
    return false;
}

// A fused gate+up expert tensor (Gemma 4's ffn_gate_up_exps).
static bool is_fused_gate_up(const tv_model *m, const tv_tensor *t) {
    for (int l = 0; l < m->hp.n_layers; l++)
        if (t == &m->layers[l].ffn_gate_up_exps) return true;
    return false;
}

// --quantize: every F32/F16/BF16 matrix (the bound ones, the embeddings and Gemma 4's per-layer table) into
// model_quant_type(target), one tensor at a time (the pool splits its rows), each source's file
// pages released as soon as its copy exists, so memory holds one copy of the weights.
static tv_status quantize_weights(tv_model *m, const tv_model_params *p, tv_error *err) {
    if (!p->quantize) return TV_OK;
    tv_type target;
    const tv_type_traits *tt = kern_type_from_name(p->quantize, &target) ? kern_traits_ref(target) : NULL;
    if (!tt || !tt->is_supported || !tt->from_float || !tt->vec_dot)
        return err_fail(err, TV_ERR_INVALID, "--quantize: '%s' is not a type tinyvllm can quantize to and compute with",
                        p->quantize);
    kern_table kt;
    tv_status kst = kern_table_init(&kt, p->cpu_path, err);
    if (kst) return err_fail_prefix(err, kst, "%s", m->path);
    const bool tied = m->w.output.data == m->w.tok_embd.data;
    tv_tensor **list = malloc(((size_t)m->n_matrices + 2) * sizeof *list);
    if (!list) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    int n = 0;
    size_t total = 0, done = 0;
    int64_t max_ne0 = 1;
    if (is_float_matrix(&m->w.tok_embd)) list[n++] = &m->w.tok_embd;
    if (is_float_matrix(&m->w.pl_tok_embd)) list[n++] = &m->w.pl_tok_embd;   // (llama.cpp's converter quantizes it too)
    for (int i = 0; i < m->n_matrices; i++)
        if (is_float_matrix(m->matrices[i]) && m->matrices[i] != &m->w.tok_embd && !is_router(m, m->matrices[i]) &&
            !is_derived_matrix(m, m->matrices[i]))
            list[n++] = m->matrices[i];
    for (int i = 0; i < n; i++) {
        total += list[i]->nbytes;
        if (list[i]->ne[0] > max_ne0) max_ne0 = list[i]->ne[0];
    }
    tv_status st = TV_OK;
    tv_pool *pool = n ? pool_create((int)worker_count(p), err) : NULL;
    float *scratch = pool ? malloc((size_t)pool_size(pool) * (size_t)max_ne0 * sizeof *scratch) : NULL;
    // m->packed holds at most one buffer per matrix, the two embedding tables and a tied output's packed
    // copy (pack_weights replaces ours)
    if (n && !m->packed) m->packed = calloc((size_t)m->n_matrices + 3, sizeof *m->packed);
    if (n && (!pool || !scratch || !m->packed)) {
        st = pool ? err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path) : err_fail_prefix(err, TV_ERR_NOMEM, "%s", m->path);
        n = 0;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n && !st; i++) {
        tv_tensor *t = list[i];
        const tv_type ty = model_quant_type(target, t->ne[0]);
        if (ty == t->type) continue;
        const size_t sz = kern_row_size(ty, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2]);   // experts: every matrix
        void *buf = aligned_alloc(64, (sz + 63) & ~(size_t)63);
        if (!buf) {
            st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory quantizing a %zu-byte tensor", m->path, sz);
            break;
        }
        quant_job job = {.kt = &kt, .src = t, .dst = buf, .type = ty, .scratch = scratch};
        pool_run(pool, quant_part, &job);
        if (!m->hf || !hf_release(m->hf, t->data)) release_mapped(t->data, t->nbytes);
        done += t->nbytes;
        m->quantize_src_bytes += t->nbytes;
        const size_t was = step_read_bytes(m, t, t->nbytes);
        m->packed[m->n_packed++] = buf;
        t->data = buf;
        t->type = ty;
        t->nbytes = sz;
        if ((t != &m->w.tok_embd || tied) && t != &m->w.pl_tok_embd)   // (lookup tables: not read per token)
            m->weight_bytes += step_read_bytes(m, t, t->nbytes) - was;
        if (p->progress) p->progress(p->progress_user, "quantizing", (double)done / (double)total);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    m->quantize_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (tied) m->w.output = m->w.tok_embd;
    if (pool) m->n_load_threads = pool_size(pool);
    free(scratch);
    pool_free(pool);
    free(list);
    return st;
}

// The index of buffer p in m->packed (a copy made at load), or -1 (file pages or a cache mapping).
static int packed_index(const tv_model *m, const void *p) {
    for (int k = 0; k < m->n_packed; k++)
        if (m->packed[k] == p) return k;
    return -1;
}

// Repacks t into a new buffer with path tables tt over *pool (created on first use); t keeps its data.
static tv_status repack_copy(tv_model *m, const tv_type_traits *tt, const tv_tensor *t, int n_threads, tv_pool **pool,
                             void **out, size_t *out_bytes, tv_error *err) {
    const int64_t rows = t->ne[1] * t->ne[2];
    if (!*pool && !(*pool = pool_create(n_threads, err))) return err_fail_prefix(err, TV_ERR_NOMEM, "%s", m->path);
    m->n_load_threads = pool_size(*pool);
    // (MADV_HUGEPAGE measured: no decode gain, load 0.8 -> 1.8 s from synchronous compaction)
    const size_t sz = packed_size(t->type, t->ne[0], rows);
    void *buf = sz ? aligned_alloc(64, (sz + 63) & ~(size_t)63) : NULL;
    if (!buf)
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory repacking a %lld x %lld matrix (%zu bytes)", m->path,
                        (long long)t->ne[0], (long long)rows, sz);
    repack_job job = { .tt = tt, .src = t->data, .dst = buf, .row_bytes = kern_row_size(t->type, t->ne[0]),
                       .n = t->ne[0], .rows = rows };
    pool_run(*pool, repack_part, &job);
    *out = buf;
    *out_bytes = sz;
    return TV_OK;
}

static tv_status pack_weights(tv_model *m, const tv_model_params *p, tv_error *err) {
    if (p->no_repack) return TV_OK;
    kern_table kt;
    tv_status st = kern_table_init(&kt, p->cpu_path, err);
    if (st) return err_fail_prefix(err, st, "%s", m->path);
    const int n = m->n_matrices;
    // the copy is memory-bound work: spread it over the caller's threads (a pool only for the load)
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = p->n_threads > 0 ? p->n_threads : ncpu > 1 ? (ncpu < 16 ? (int)ncpu : 16) : 1;
    tv_pool *pool = NULL;
    // m->packed holds at most one buffer per matrix, the embeddings and a tied output's copy
    if (!m->packed && !(m->packed = calloc((size_t)n + 2, sizeof *m->packed)))
        return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n && st == TV_OK; i++) {
        tv_tensor *t = m->matrices[i];
        const tv_type_traits *tt = kern_traits(&kt, t->type);
        if (!tt || !tt->pack_pays || !tt->repack || t->packed) continue;
        // an expert tensor packs as ne[2] * ne[1] rows: each expert's whole 16-row groups stay at its
        // offset (a fused gate+up's halves too: its gate and up views start on a group)
        if (t->ne[2] > 1 && t->ne[1] % (is_fused_gate_up(m, t) ? 2 * TV_PACK_ROWS : TV_PACK_ROWS)) continue;
        void *buf;
        size_t sz;
        if ((st = repack_copy(m, tt, t, n_threads, &pool, &buf, &sz, err))) break;
        const int k = packed_index(m, t->data);   // a copy quantized at load is replaced; file pages are released
        if (k >= 0) {
            free(m->packed[k]);
            m->packed[k] = buf;
        } else {
            release_mapped(t->data, t->nbytes);
            m->packed[m->n_packed++] = buf;
        }
        t->data = buf;
        t->nbytes = sz;
        t->packed = true;
    }
    tv_tensor *out = &m->w.output;
    const tv_type_traits *ot = out->data ? kern_traits(&kt, out->type) : NULL;
    if (!st && out->data == m->w.tok_embd.data && ot && ot->pack_pays && ot->repack && !out->packed) {
        void *buf;
        size_t sz;
        if (!(st = repack_copy(m, ot, out, n_threads, &pool, &buf, &sz, err))) {
            if (!m->hf && packed_index(m, out->data) < 0) release_mapped(out->data, out->nbytes);
            m->packed[m->n_packed++] = buf;
            m->weight_bytes += sz - out->nbytes;
            out->data = buf;
            out->nbytes = sz;
            out->packed = true;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    m->repack_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    pool_free(pool);
    return st;
}

// ---- the prepared-weight cache (weight_cache.h) ----
// Whether the output projection is the embedding table (before pack_weights gives it a copy).
static bool output_is_tied(const tv_model *m) { return m->w.output.data && m->w.output.data == m->w.tok_embd.data; }

// The slots a cache file fills: the embeddings (and Gemma 4's per-layer table), then every bound matrix
// (model_matrices order), then a tied output projection (its packed copy).
static tv_tensor **cache_slots(tv_model *m, int *n) {
    tv_tensor **slots = malloc(((size_t)m->n_matrices + 3) * sizeof *slots);
    if (!slots) return NULL;
    int k = 0;
    if (m->w.tok_embd.data) slots[k++] = &m->w.tok_embd;   // a middle pipeline stage has none
    if (m->w.pl_tok_embd.data) slots[k++] = &m->w.pl_tok_embd;
    for (int i = 0; i < m->n_matrices; i++) slots[k++] = m->matrices[i];
    if (output_is_tied(m)) slots[k++] = &m->w.output;
    *n = k;
    return slots;
}

// The file (DIR/<hash of the stable parts>.tvw) and the full key of this load.
static bool cache_key(tv_model *m, const tv_model_params *p, int n_slots, char *file, size_t fcap, char *key,
                      size_t kcap) {
    char real[4096];
    if (!realpath(m->path, real)) return false;
    uint64_t bytes;
    int64_t mtime;
    struct stat sb;
    if (m->hf) hf_identity(m->hf, &bytes, &mtime);
    else if (stat(real, &sb) == 0) {
        bytes = (uint64_t)sb.st_size;
        mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    } else {
        return false;
    }
    kern_table kt;
    if (kern_table_init(&kt, p->cpu_path, NULL)) return false;
    char stable[4400];
    snprintf(stable, sizeof stable, "%s|cpu=%s/%s|quantize=%s|repack=%d|layout=%d/%d|layers=%d-%d|mtp=%d%s", real,
             p->cpu_path && *p->cpu_path ? p->cpu_path : "best", kt.path, p->quantize ? p->quantize : "-", !p->no_repack,
             WCACHE_LAYOUT_VERSION, TV_PACK_ROWS, m->layer_begin, m->layer_end, m->mtp_layer,
             m->hp.n_lora_kv > 0 && !model_mla_may_expand(&m->hp) ? "|mla=absorbed" : "");   // (no attn_k_b transposes)
    uint64_t h = 1469598103934665603ull;
    for (const char *c = stable; *c; c++) { h ^= (uint8_t)*c; h *= 1099511628211ull; }
    snprintf(file, fcap, "%s/%016llx.tvw", p->cache_dir, (unsigned long long)h);
    snprintf(key, kcap, "tinyvllm weight cache|%s|bytes=%llu|mtime=%lld|slots=%d", stable, (unsigned long long)bytes,
             (long long)mtime, n_slots);
    return true;
}

// Points the slots into the cache file at path; the sources they replace are released (file pages
// dropped, converted copies and buffers prepared at load freed). 1 attached, 0 absent, -1 stale/corrupt.
static int cache_attach(tv_model *m, tv_tensor **slots, int n, const char *path, const char *key, char *why,
                        size_t why_cap) {
    const void **old = malloc((size_t)n * sizeof *old);
    size_t *old_bytes = malloc((size_t)n * sizeof *old_bytes);
    if (!old || !old_bytes) {
        free(old);
        free(old_bytes);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        old[i] = slots[i]->data;
        old_bytes[i] = slots[i]->nbytes;
    }
    const bool tied = n > 0 && slots[n - 1] == &m->w.output;   // cache_slots lists a tied output last
    wcache_map map;
    int r = wcache_load(path, key, slots, n, &map, why, why_cap);
    if (r == 1) {
        m->cache = map;
        for (int i = 0; i < n; i++) {
            bool is_shared = false;   // a tied output's source is the table's: released once, with it
            for (int j = 0; j < i && !is_shared; j++) is_shared = old[j] == old[i];
            if (slots[i]->data == old[i] || is_shared) continue;
            const int k = packed_index(m, old[i]);
            if (k >= 0) {   // a buffer prepared at load
                free(m->packed[k]);
                m->packed[k] = m->packed[--m->n_packed];
            } else if (!m->hf || !hf_release(m->hf, old[i])) {
                release_mapped(old[i], old_bytes[i]);
            }
        }
        if (tied && !m->w.output.packed) m->w.output = m->w.tok_embd;   // no packed copy: the table itself
        // what a decode step reads changes with the matrices' (and a tied output's) prepared sizes; the
        // lookup tables are not read per token
        for (int i = 0; i < n; i++) {
            bool read = tied && i == n - 1;
            for (int j = 0; j < m->n_matrices && !read; j++) read = m->matrices[j] == slots[i];
            if (read)
                m->weight_bytes += step_read_bytes(m, slots[i], slots[i]->nbytes) - step_read_bytes(m, slots[i], old_bytes[i]);
        }
    }
    free(old);
    free(old_bytes);
    return r;
}

// Quantize (--quantize) and repack, through the cache when params ask for one: a valid file is
// mapped instead of preparing; otherwise the prepared weights are written and then mapped, so this
// process shares the page cache with the next ones too.
static tv_status prepare_weights(tv_model *m, const tv_model_params *p, tv_error *err) {
    char file[4200], key[4800], why[160], note[4400];
    int n = 0;
    tv_tensor **slots = p->cache_dir ? cache_slots(m, &n) : NULL;
    const bool use_cache = slots && cache_key(m, p, n, file, sizeof file, key, sizeof key);
    tv_status st = TV_OK;
    int r = use_cache ? cache_attach(m, slots, n, file, key, why, sizeof why) : 0;
    note[0] = 0;
    if (r == 1) {
        wcache_touch(file);
        snprintf(note, sizeof note, "hit %s", file);
    } else {
        if (r < 0) log_msg(TV_LOG_WARN, "%s: weight cache %s: %s; rebuilding it", m->path, file, why);
        if (!(st = quantize_weights(m, p, err))) st = pack_weights(m, p, err);
        if (!st && use_cache && m->n_packed > 0) {
            bool *prepared = calloc((size_t)n, sizeof *prepared);
            tv_error werr = {0};
            for (int i = 0; prepared && i < n; i++)
                for (int k = 0; k < m->n_packed && !prepared[i]; k++) prepared[i] = m->packed[k] == slots[i]->data;
            if (!prepared || wcache_store(file, key, slots, prepared, n, &werr)) {
                snprintf(note, sizeof note, "not written: %s", prepared ? werr.msg : "out of memory");
                log_msg(TV_LOG_WARN, "%s: weight cache %s", m->path, note);
            } else {
                if (p->cache_max_bytes) wcache_evict(p->cache_dir, p->cache_max_bytes, file);
                char why2[160];
                (void)cache_attach(m, slots, n, file, key, why2, sizeof why2);   // share from now on
                snprintf(note, sizeof note, "%s %s%s%s", r < 0 ? "rebuilt" : "wrote", file, r < 0 ? ": it was " : "",
                         r < 0 ? why : "");
            }
            free(prepared);
        }
    }
    if (note[0] && !(m->cache_note = strdup(note))) st = err_fail(err, TV_ERR_NOMEM, "out of memory");
    free(slots);
    return st;
}

tv_model *tv_model_load(const char *path, const tv_model_params *params, tv_error *err) {
    tv_model_params defaults;
    if (!params) { tv_model_params_default(&defaults); params = &defaults; }
    if (!path) { err_fail(err, TV_ERR_INVALID, "no model path given"); return NULL; }
    const bool is_hf = hf_is_model_dir(path);
    int is_gguf = is_hf ? 0 : gguf_file_has_magic(path, err);
    if (is_gguf < 0) return NULL;
    if (params->layer_begin < 0 || params->layer_end < 0 || (params->layer_end && params->layer_begin >= params->layer_end)) {
        err_fail(err, TV_ERR_INVALID, "%s: layer range [%d, %d) is empty or negative", path, params->layer_begin,
                 params->layer_end);
        return NULL;
    }
    tv_model *m = calloc(1, sizeof *m);
    if (m) {
        m->layer_begin = params->layer_end ? params->layer_begin : 0;
        m->layer_end = params->layer_end;   // 0: all (bind_all)
    }
    if (!m || !(m->path = strdup(path))) {
        free(m);
        err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    tv_status st = is_hf ? load_hf(m, params, err) : is_gguf ? load_gguf(m, params, err) : load_llama2c(m, params, err);
    if (!st) st = prepare_weights(m, params, err);
    if (st) { tv_model_free(m); return NULL; }
    if (!m->name) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        m->name = strdup(base);
        char *dot = m->name ? strrchr(m->name, '.') : NULL;
        if (dot && dot != m->name) *dot = 0;
    }
    return m;
}
