// model_info.c — tv_model_get_info, tv_model_sampling_defaults: the public description of a loaded
// model (tinyvllm.h).
#include <string.h>

#include "formats/gguf.h"
#include "model/family.h"
#include "model/model.h"

// Parameters that take part in matmuls per token (every bound weight matrix, of an expert tensor
// the n_expert_used experts a token runs, and the output; attention score/value products are not
// counted).
static int64_t matmul_params(const tv_model *m) {
    int n_mat;
    const tv_tensor *const *mat = model_matrices(m, &n_mat);
    int64_t n = 0;
    for (int i = 0; i < n_mat; i++)
        n += mat[i]->ne[0] * mat[i]->ne[1] * (mat[i]->ne[2] > 1 ? model_hparams(m)->n_expert_used : 1);
    const tv_tensor *out = model_output(m);
    if (out->data == model_tok_embd(m)->data) n += out->ne[0] * out->ne[1];   // tied: not among the matrices
    return n;
}

void tv_model_get_info(const tv_model *m, tv_model_info *info) {
    const tv_hparams *h = model_hparams(m);
    memset(info, 0, sizeof *info);
    info->name = tv_model_name(m);
    info->path = model_file_path(m);
    info->format = model_format(m);
    info->architecture = model_family_of(m)->name;
    info->n_vocab = h->n_vocab;
    info->dim = h->dim;
    info->n_layers = h->n_layers;
    info->n_heads = h->n_heads;
    info->n_kv_heads = h->n_kv_heads;
    info->head_dim = h->head_dim;
    info->hidden_dim = h->hidden_dim;
    info->n_ctx_train = h->n_ctx_train;
    info->n_rot = h->n_rot;
    info->rope_theta = h->rope_theta;
    info->norm_eps = h->norm_eps;
    info->rope_scaling = h->rope_scaling;
    info->tied_output = model_output(m)->data == model_tok_embd(m)->data;
    info->n_params = matmul_params(m);
    info->weight_bytes = model_weight_bytes(m);
    info->n_packed = model_n_packed(m, &info->repack_ms);
    info->n_expert = h->n_expert;
    info->n_expert_used = h->n_expert_used;
    info->expert_ff = h->ff_exp;
    info->kv_bytes_per_token = kv_cache_bytes_per_block(m, 1, false);
    int b, e;
    model_layer_range(m, &b, &e);
    info->layer_begin = b;
    info->layer_end = e;
}

unsigned tv_model_sampling_defaults(const tv_model *m, unsigned given, tv_sampling_params *p) {
    const gguf_ctx *g = model_gguf(m);
    if (!g) return 0;
    unsigned set = 0;
    double d;
    int64_t k;
    // each value as the loader accepts it from a request (out-of-range keys are ignored, as llama.cpp's)
    if (!(given & TV_SAMPLE_TEMPERATURE) && gguf_get_float(g, "general.sampling.temp", &d) && d >= 0 && d <= 100) {
        p->temperature = (float)d;
        set |= TV_SAMPLE_TEMPERATURE;
    }
    if (!(given & TV_SAMPLE_TOP_K) && gguf_get_int(g, "general.sampling.top_k", &k) && k >= 0 && k <= (1 << 30)) {
        p->top_k = (int)k;
        set |= TV_SAMPLE_TOP_K;
    }
    if (!(given & TV_SAMPLE_TOP_P) && gguf_get_float(g, "general.sampling.top_p", &d) && d > 0 && d <= 1) {
        p->top_p = (float)d;
        set |= TV_SAMPLE_TOP_P;
    }
    if (!(given & TV_SAMPLE_MIN_P) && gguf_get_float(g, "general.sampling.min_p", &d) && d >= 0 && d <= 1) {
        p->min_p = (float)d;
        set |= TV_SAMPLE_MIN_P;
    }
    if (!(given & TV_SAMPLE_REPETITION_PENALTY) && gguf_get_float(g, "general.sampling.penalty_repeat", &d) && d > 0 && d <= 100) {
        p->repetition_penalty = (float)d;
        set |= TV_SAMPLE_REPETITION_PENALTY;
    }
    return set;
}
