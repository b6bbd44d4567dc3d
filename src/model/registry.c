// registry.c — the list of model families (family.h) and the metadata readers they share. To add
// one: write src/model/family_NAME.c defining `const model_family family_NAME`, and add X(NAME) below.
#include <stdio.h>
#include <string.h>

#include "model/family.h"
#include "util/status.h"

#define FAMILIES(X) \
    X(llama) \
    X(qwen2) \
    X(qwen3) \
    X(smollm3) \
    X(granite) \
    X(mistral3) \
    X(phi3) \
    X(gemma2) \
    X(gemma3) \
    X(gemma4) \
    X(qwen3moe) \
    X(qwen2moe) \
    X(gptoss) \
    X(qwen35) \
    X(qwen35moe) \
    X(qwen3next) \
    X(deepseek2) \
    X(glm4moe)

#define DECLARE(n) extern const model_family family_##n;
FAMILIES(DECLARE)
#undef DECLARE
#define ADDRESS(n) &family_##n,
static const model_family *const REGISTRY[] = {FAMILIES(ADDRESS)};
#undef ADDRESS

const model_family *family_find(const char *arch) {
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        for (const char *const *a = REGISTRY[i]->archs; *a; a++)
            if (!strcmp(*a, arch)) return REGISTRY[i];
    return NULL;
}

const model_family *family_by_name(const char *name) {
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        if (!strcmp(REGISTRY[i]->name, name)) return REGISTRY[i];
    return NULL;
}

void family_list_archs(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < FAMILY_COUNT(REGISTRY); i++)
        for (const char *const *a = REGISTRY[i]->archs; *a && n < cap; a++) {
            int k = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", *a);
            if (k < 0) return;
            n += (size_t)k;
        }
}

tv_status family_swa_pattern(const gguf_ctx *g, const char *arch, int dflt_period, const tv_hparams *h,
                             tv_layer *layers, tv_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const gguf_value *v = gguf_get(g, key);
    if (v && v->type == GGUF_TYPE_ARRAY) {
        if (v->arr_type != GGUF_TYPE_BOOL || v->arr_n != (uint64_t)h->n_layers)
            return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a period or %d bools (one per layer)", key,
                            h->n_layers);
        for (int l = 0; l < h->n_layers; l++) layers[l].is_swa = gguf_arr_int(v, (uint64_t)l) != 0;
        return TV_OK;
    }
    int64_t period = dflt_period;
    if (v && (!gguf_get_int(g, key, &period) || period < 0 || period > h->n_layers))
        return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a period in [0, %d] or one bool per layer", key,
                        h->n_layers);
    for (int l = 0; l < h->n_layers; l++) layers[l].is_swa = period == 0 || l % period < period - 1;
    return TV_OK;
}

tv_status family_hybrid_layers(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers, tv_error *err) {
    char key[160];
    const int n_all = h->n_layers;   // with the MTP layers, which recurrent_layers covers too
    tv_status st = family_drop_nextn(g, arch, h, err);
    if (st) return st;
    snprintf(key, sizeof key, "%s.attention.recurrent_layers", arch);
    const gguf_value *v = gguf_get(g, key);
    if (v) {
        if (v->type != GGUF_TYPE_ARRAY || v->arr_type != GGUF_TYPE_BOOL || v->arr_n != (uint64_t)n_all)
            return err_fail(err, TV_ERR_FORMAT, "metadata %s must be %d bools (one per layer)", key, n_all);
        for (int l = 0; l < h->n_layers; l++) layers[l].is_linear = gguf_arr_int(v, (uint64_t)l) != 0;
    } else {
        snprintf(key, sizeof key, "%s.full_attention_interval", arch);
        int64_t period = 4;
        if (gguf_get(g, key) && (!gguf_get_int(g, key, &period) || period < 1 || period > h->n_layers))
            return err_fail(err, TV_ERR_FORMAT, "metadata %s must be a period in [1, %d]", key, h->n_layers);
        for (int l = 0; l < h->n_layers; l++) layers[l].is_linear = (l + 1) % period != 0;
    }
    int n_kind[2] = {0, 0};
    for (int l = 0; l < h->n_layers; l++) layers[l].kind_index = n_kind[layers[l].is_linear]++;
    h->n_linear = n_kind[1];
    if (!n_kind[0])
        return err_fail(err, TV_ERR_FORMAT, "metadata %s leaves no full-attention layer", key);
    if (h->ssm_n_v_heads % h->ssm_n_k_heads)
        return err_fail(err, TV_ERR_FORMAT, "metadata %s.ssm.group_count (%d) does not divide %s.ssm.time_step_rank (%d)",
                        arch, h->ssm_n_k_heads, arch, h->ssm_n_v_heads);
    if (h->ssm_d_inner != h->ssm_n_v_heads * h->ssm_head_dim)
        return err_fail(err, TV_ERR_FORMAT,
                        "metadata %s.ssm.inner_size (%d) must be ssm.time_step_rank x ssm.state_size (%d x %d)", arch,
                        h->ssm_d_inner, h->ssm_n_v_heads, h->ssm_head_dim);
    return TV_OK;
}

void family_ff_per_layer(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_layer *layers) {
    char key[160];
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    const gguf_value *v = gguf_get(g, key);
    if (!v || v->type != GGUF_TYPE_ARRAY) return;
    for (int l = 0; l < h->n_layers; l++) {
        layers[l].ff_dim = (int32_t)gguf_arr_int(v, (uint64_t)l);
        if (layers[l].ff_dim > h->hidden_dim) h->hidden_dim = layers[l].ff_dim;
    }
}

const family_moe family_hybrid_moe = {.norm = FAMILY_NORM_ON, .is_ff_exp_per_used = true, .is_ff_shexp_ff = true};

tv_status family_drop_nextn(const gguf_ctx *g, const char *arch, tv_hparams *h, tv_error *err) {
    char k[160];
    int64_t n_nextn = 0;
    snprintf(k, sizeof k, "%s.nextn_predict_layers", arch);
    if (gguf_get_int(g, k, &n_nextn) && (n_nextn < 0 || n_nextn >= h->n_layers))
        return err_fail(err, TV_ERR_FORMAT, "%s.nextn_predict_layers %lld does not fit block_count %d", arch,
                        (long long)n_nextn, h->n_layers);
    h->n_layers -= (int32_t)n_nextn;
    h->n_nextn = (int32_t)n_nextn;
    return TV_OK;
}

tv_status family_moe_setup(const char *arch, tv_hparams *h, const family_moe *moe, tv_error *err) {
    const family_moe none = {0};
    if (!moe) moe = &none;
    if (h->n_dense_lead > h->n_layers)
        return err_fail(err, TV_ERR_FORMAT, "%s.leading_dense_block_count %d exceeds block_count %d", arch,
                        h->n_dense_lead, h->n_layers);
    if (h->moe_n_group > 1) {
        const int per = h->n_expert / h->moe_n_group;
        if (h->n_expert % h->moe_n_group || per < 2)
            return err_fail(err, TV_ERR_FORMAT, "%s.expert_group_count %d does not split expert_count %d into groups of 2 or more",
                            arch, h->moe_n_group, h->n_expert);
        if (h->moe_n_group_used < 1 || h->moe_n_group_used >= h->moe_n_group || h->moe_n_group_used * per < h->n_expert_used)
            return err_fail(err, TV_ERR_FORMAT,
                            "%s.expert_group_used_count %d does not fit expert_group_count %d and expert_used_count %d",
                            arch, h->moe_n_group_used, h->moe_n_group, h->n_expert_used);
    }
    if (!h->ff_exp) h->ff_exp = moe->is_ff_exp_per_used ? h->hidden_dim / h->n_expert_used : h->hidden_dim;
    if (h->n_expert_shared > 0) h->ff_shexp = h->ff_exp * h->n_expert_shared;
    else if (!h->ff_shexp && moe->is_ff_shexp_ff) h->ff_shexp = h->hidden_dim;
    if (!h->moe_gating) h->moe_gating = moe->gating ? moe->gating : TV_GATING_SOFTMAX;
    if (moe->norm != FAMILY_NORM_FILE) h->moe_norm_w = moe->norm == FAMILY_NORM_ON;
    return TV_OK;
}
