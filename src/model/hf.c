// hf.c — Hugging Face model folders as GGUF metadata + tensors (see hf.h for the contract).
//
// The mapping follows llama.cpp's convert_hf_to_gguf.py for each architecture tinyvllm supports:
//   config.json key                      -> `<arch>.` key
//   max_position_embeddings              -> context_length
//   hidden_size / num_hidden_layers      -> embedding_length / block_count
//   intermediate_size                    -> feed_forward_length
//   num_attention_heads / num_key_value_heads -> attention.head_count / head_count_kv
//   head_dim                             -> attention.key_length, value_length
//   head_dim * partial_rotary_factor     -> rope.dimension_count
//   rms_norm_eps / rope_theta            -> attention.layer_norm_rms_epsilon / rope.freq_base
//   rope_scaling (or rope_parameters)    -> rope.scaling.* (linear, yarn) or tensors (llama3, longrope)
//   family extras (sliding windows, soft-caps, granite multipliers, mistral3 temperature)
// Tensor names: model.embed_tokens -> token_embd, model.norm -> output_norm, lm_head -> output,
// model.layers.N.<part> -> blk.N.<gguf part> (LAYER_NAMES below); multimodal wrappers'
// language_model prefixes are stripped and their vision tensors skipped. MoE experts, one matrix
// each (EXPERT_NAMES), are stacked into the 3-D blk.N.ffn_{gate,up,down}_exps, or split from
// transformers' fused mlp.experts.gate_up_proj / down_proj (Qwen3.5-MoE; gpt-oss transposed and
// interleaved, or MXFP4 _blocks + _scales; Gemma 4's experts.gate_up_proj kept fused); routers become
// F32; DeepSeek's kv_b_proj is split into attn_k_b / attn_v_b, Qwen3-Next's in_proj_qkvz into
// attn_qkv / attn_gate.
#include "model/hf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "util/status.h"

enum {
    HF_PERMUTE_QK = 1 << 0,   // llama.cpp's LlamaModel.permute on q_proj / k_proj (interleaved RoPE pairs)
    HF_GEMMA = 1 << 1,        // Gemma: norms stored as w (applied as 1 + w), pre/post feed-forward norms
    HF_MOE = 1 << 2,          // mixture of experts: per-expert matrices stacked into 3-D tensors
    HF_POST_ATTN_NORM = 1 << 3,   // post_attention_layernorm (the FFN's input norm) is post_attention_norm (glm4moe)
    HF_MLA = 1 << 4,          // DeepSeek's latent attention: kv_b_proj split into attn_k_b (transposed) and
                              // attn_v_b per head; layers from num_hidden_layers on (MTP) are skipped
    HF_HYBRID = 1 << 5,       // Qwen3.5's Gated DeltaNet (linear_attn): V heads regrouped, A_log -> -exp,
                              // conv1d squeezed, norms (not linear_attn.norm) stored as w (applied as 1 + w)
    HF_QKVZ = 1 << 6,         // Qwen3-Next: in_proj_qkvz split into attn_qkv + attn_gate, in_proj_ba kept
                              // as ssm_ba, V heads left grouped by key head (llama.cpp's qwen3next order)
    HF_GPTOSS = 1 << 7,       // gpt-oss: sinks, router + biases, fused (transposed, interleaved) experts,
                              // MXFP4 expert blocks + scales
    HF_GEMMA4 = 1 << 8,       // Gemma 4 (with HF_GEMMA's names): norms stored as applied (no +1), per-layer
                              // sizes, per-layer inputs, layer_scalar, proportional RoPE factors
};

typedef struct hf_arch {
    const char *model_type;   // config.json model_type (the top-level one, else text_config's)
    const char *arch;         // GGUF general.architecture
    unsigned flags;
} hf_arch;

static const hf_arch ARCHS[] = {
    {"llama", "llama", HF_PERMUTE_QK},       {"mistral", "llama", HF_PERMUTE_QK},
    {"qwen2", "qwen2", 0},                   {"qwen3", "qwen3", 0},
    {"gemma2", "gemma2", HF_GEMMA},          {"gemma3", "gemma3", HF_GEMMA},
    {"gemma3_text", "gemma3", HF_GEMMA},     {"phi3", "phi3", 0},
    {"smollm3", "smollm3", HF_PERMUTE_QK},   {"granite", "granite", HF_PERMUTE_QK},
    {"mistral3", "mistral3", HF_PERMUTE_QK},
    {"qwen2_moe", "qwen2moe", HF_MOE},      {"qwen3_moe", "qwen3moe", HF_MOE},
    {"mixtral", "llama", HF_PERMUTE_QK | HF_MOE},
    {"glm4_moe", "glm4moe", HF_MOE | HF_POST_ATTN_NORM},
    {"deepseek_v3", "deepseek2", HF_MOE | HF_MLA},    {"deepseek_v2", "deepseek2", HF_MOE | HF_MLA},
    {"kimi_k2", "deepseek2", HF_MOE | HF_MLA},
    {"qwen3_5_text", "qwen35", HF_HYBRID | HF_POST_ATTN_NORM}, {"qwen3_5", "qwen35", HF_HYBRID | HF_POST_ATTN_NORM},
    {"qwen3_5_moe", "qwen35moe", HF_HYBRID | HF_POST_ATTN_NORM | HF_MOE},
    {"qwen3_5_moe_text", "qwen35moe", HF_HYBRID | HF_POST_ATTN_NORM | HF_MOE},
    {"qwen3_next", "qwen3next", HF_HYBRID | HF_POST_ATTN_NORM | HF_MOE | HF_QKVZ},
    {"gpt_oss", "gpt-oss", HF_MOE | HF_POST_ATTN_NORM | HF_GPTOSS},
    {"gemma4", "gemma4", HF_GEMMA | HF_GEMMA4},          {"gemma4_text", "gemma4", HF_GEMMA | HF_GEMMA4},
};
#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])

// model.layers.N.<hf> -> blk.N.<gguf>; gemma_gguf when the Gemma layout names it differently.
static const struct { const char *hf, *gguf, *gemma_gguf; } LAYER_NAMES[] = {
    {"input_layernorm.weight", "attn_norm.weight", NULL},
    {"self_attn.q_proj.weight", "attn_q.weight", NULL},
    {"self_attn.k_proj.weight", "attn_k.weight", NULL},
    {"self_attn.v_proj.weight", "attn_v.weight", NULL},
    {"self_attn.o_proj.weight", "attn_output.weight", NULL},
    {"self_attn.q_proj.bias", "attn_q.bias", NULL},
    {"self_attn.k_proj.bias", "attn_k.bias", NULL},
    {"self_attn.v_proj.bias", "attn_v.bias", NULL},
    {"self_attn.o_proj.bias", "attn_output.bias", NULL},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight", NULL},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", NULL},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", NULL},
    {"post_attention_layernorm.weight", "ffn_norm.weight", "post_attention_norm.weight"},
    {"pre_feedforward_layernorm.weight", NULL, "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", NULL, "post_ffw_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight", NULL},
    {"mlp.up_proj.weight", "ffn_up.weight", NULL},
    {"mlp.down_proj.weight", "ffn_down.weight", NULL},
    {"mlp.gate_up_proj.weight", "ffn_up.weight", NULL},
    {"mlp.gate.weight", "ffn_gate_inp.weight", NULL},                 // MoE router (Qwen)
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight", NULL},    // (Mixtral)
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", NULL},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", NULL},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", NULL},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", NULL},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight", NULL},   // GLM-4.5, DeepSeek
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight", NULL},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight", NULL},
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias", NULL},         // the routers' selection bias
    {"eh_proj.weight", "nextn.eh_proj.weight", NULL},                        // an MTP layer's own tensors
    {"enorm.weight", "nextn.enorm.weight", NULL},
    {"hnorm.weight", "nextn.hnorm.weight", NULL},
    {"shared_head.norm.weight", "nextn.shared_head_norm.weight", NULL},
    {"shared_head.head.weight", "nextn.shared_head_head.weight", NULL},
    {"embed_tokens.weight", "nextn.embed_tokens.weight", NULL},
    {"self_attn.q_a_proj.weight", "attn_q_a.weight", NULL},                  // DeepSeek's latent attention
    {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight", NULL},
    {"self_attn.q_b_proj.weight", "attn_q_b.weight", NULL},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight", NULL},
    {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight", NULL},
    {"self_attn.kv_b_proj.weight", "attn_kv_b.weight", NULL},                // split by map_tensor
    {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight", NULL},             // Qwen3.5's Gated DeltaNet
    {"linear_attn.in_proj_z.weight", "attn_gate.weight", NULL},
    {"linear_attn.in_proj_b.weight", "ssm_beta.weight", NULL},
    {"linear_attn.in_proj_a.weight", "ssm_alpha.weight", NULL},
    {"linear_attn.conv1d.weight", "ssm_conv1d.weight", NULL},
    {"linear_attn.dt_bias", "ssm_dt.bias", NULL},
    {"linear_attn.A_log", "ssm_a", NULL},
    {"linear_attn.norm.weight", "ssm_norm.weight", NULL},
    {"linear_attn.out_proj.weight", "ssm_out.weight", NULL},
    {"linear_attn.in_proj_qkvz.weight", "attn_qkvz.weight", NULL},           // Qwen3-Next's (split by map_tensor)
    {"linear_attn.in_proj_ba.weight", "ssm_ba.weight", NULL},
    {"mlp.router.weight", "ffn_gate_inp.weight", NULL},                      // gpt-oss
    {"mlp.router.bias", "ffn_gate_inp.bias", NULL},
    {"self_attn.sinks", "attn_sinks.weight", NULL},
    {"per_layer_input_gate.weight", "inp_gate.weight", NULL},              // Gemma 4 E2B/E4B's per-layer inputs
    {"per_layer_projection.weight", "proj.weight", NULL},
    {"post_per_layer_input_norm.weight", "post_norm.weight", NULL},
    {"layer_scalar", "layer_output_scale.weight", NULL},                   // Gemma 4 ([1], a buffer: no .weight)
};
// Gemma 4's per-layer tensors that exist only with enable_moe_block (26B-A4B): model.layers.N.<hf> ->
// blk.N.<gguf> (convert_hf_to_gguf.py's Gemma4Model + tensor_mapping.py); every layer of such a model
// has all of them (check_gemma4_moe). The fused experts (map_fused_experts) keep gate and up together.
static const struct { const char *hf, *gguf; } GEMMA4_MOE[] = {
    {"router.proj.weight", "ffn_gate_inp.weight"},          // [E, dim], F32 as every router
    {"router.scale", "ffn_gate_inp.scale"},                 // [dim] (a parameter: no .weight)
    {"router.per_expert_scale", "ffn_down_exps.scale"},     // [E]: each expert's output scale
    {"pre_feedforward_layernorm_2.weight", "pre_ffw_norm_2.weight"},
    {"post_feedforward_layernorm_1.weight", "post_ffw_norm_1.weight"},
    {"post_feedforward_layernorm_2.weight", "post_ffw_norm_2.weight"},
    {"experts.gate_up_proj", "ffn_gate_up_exps.weight"},    // [E, 2 ff, dim]: gate rows, then up rows
    {"experts.down_proj", "ffn_down_exps.weight"},          // [E, dim, ff]
};
#define N_GEMMA4_MOE (sizeof GEMMA4_MOE / sizeof GEMMA4_MOE[0])
// model.layers.N.<container>.E.<part>: expert E's matrix of blk.N.<gguf> (stacked, ne[2] = E).
static const struct { const char *container, *part, *gguf; } EXPERT_NAMES[] = {
    {"mlp.experts", "gate_proj.weight", "ffn_gate_exps.weight"},
    {"mlp.experts", "up_proj.weight", "ffn_up_exps.weight"},
    {"mlp.experts", "down_proj.weight", "ffn_down_exps.weight"},
    {"block_sparse_moe.experts", "w1.weight", "ffn_gate_exps.weight"},   // Mixtral
    {"block_sparse_moe.experts", "w3.weight", "ffn_up_exps.weight"},
    {"block_sparse_moe.experts", "w2.weight", "ffn_down_exps.weight"},
};
#define N_EXPERT_NAMES (sizeof EXPERT_NAMES / sizeof EXPERT_NAMES[0])
#define N_LAYER_NAMES (sizeof LAYER_NAMES / sizeof LAYER_NAMES[0])

typedef struct hf_tensor {
    char gguf[96];
    tv_tensor t;      // .name -> desc
    char *desc;       // "<hf name> in <file>"
    void *owned;      // a converted copy t.data points to, or NULL (t.data in the mapping)
} hf_tensor;

// A 3-D expert tensor being gathered from its per-expert matrices (map_tensors).
typedef struct hf_stack {
    int idx;             // its entry in hf_model.t
    int n_seen;
    bool *seen;          // (n_expert)
    char hf_before[160]; // the HF name around the expert number, for messages
    char hf_after[64];
} hf_stack;

struct hf_model {
    char *dir;
    int64_t n_main_layers;   // HF_MLA: layers at or past it (MTP) are skipped, else 0
    int64_t mla_nope, mla_v; // HF_MLA: qk_nope_head_dim, v_head_dim (kv_b_proj's per-head rows)
    int64_t lin_k, lin_v, lin_kd, lin_vd;   // HF_HYBRID: linear_num_key/value_heads, linear_key/value_head_dim
    bool lin_grouped;        // HF_QKVZ: V heads stay grouped by key head (no reorder)
    int64_t dim, n_expert, ff_exp;   // hidden_size, the expert count and width (fused expert tensors' checks)
    int64_t gemma4_moe_layers;       // Gemma 4 with enable_moe_block: its layer count (check_gemma4_moe), else 0
    char layer_prefix[96];           // the HF names' text before "layers.N." (messages)
    st_set *st;
    int64_t fp8_block[2];   // quantization_config.weight_block_size (FP8 block scales), or 0
    gguf_ctx *meta;
    hf_tensor *t;     // (n) sorted by gguf name
    int n, cap;
    char *tok_dir;
    int32_t eos[16];
    int n_eos;
};

// ---- config.json access ----
typedef struct cfg {
    const cJSON *root;   // config.json
    const cJSON *text;   // text_config (multimodal wrappers), or NULL
    const char *path;    // for messages
} cfg;

// The key in text_config, else at the top level; NULL when absent or JSON null.
static const cJSON *cfg_get(const cfg *c, const char *key) {
    const cJSON *v = c->text ? cJSON_GetObjectItemCaseSensitive(c->text, key) : NULL;
    if (!v || cJSON_IsNull(v)) v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool cfg_num(const cfg *c, const cJSON *obj, const char *key, double *out) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : cfg_get(c, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = v->valuedouble;
    return true;
}

static tv_status cfg_int(const cfg *c, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                         tv_error *err) {
    const cJSON *v = cfg_get(c, key);
    if (!v && !required) return TV_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return err_fail(err, TV_ERR_FORMAT, "%s: %s is missing or not an integer", c->path, key);
    if (!(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
        return err_fail(err, TV_ERR_FORMAT, "%s: %s = %g is out of range [%lld, %lld]", c->path, key, v->valuedouble,
                        (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return TV_OK;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

// A JSON file of the folder, parsed; NULL with *missing when absent (err untouched), or NULL + err.
cJSON *hf_read_json(const char *dir, const char *name, bool *missing, tv_error *err) {
    char *path = path_join(dir, name);
    *missing = false;
    if (!path) { err_fail(err, TV_ERR_NOMEM, "out of memory"); return NULL; }
    FILE *f = fopen(path, "rb");
    cJSON *j = NULL;
    if (!f) {
        if (errno == ENOENT) *missing = true;
        else err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || n > (64L << 20) || fseek(f, 0, SEEK_SET) != 0) err_fail(err, TV_ERR_IO, "%s: cannot read (or over 64 MiB)", path);
    else if (!(buf = malloc((size_t)n + 1))) err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
    else if (fread(buf, 1, (size_t)n, f) != (size_t)n) err_fail(err, TV_ERR_IO, "%s: read failed", path);
    else if (!(j = cJSON_ParseWithLength(buf, (size_t)n)) || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
        err_fail(err, TV_ERR_FORMAT, "%s: not a JSON object", path);
    }
    fclose(f);
    free(buf);
    free(path);
    return j;
}

// ---- tensors ----
static tv_status add_tensor(hf_model *h, const char *gguf, const tv_tensor *t, const char *desc, void *owned,
                            tv_error *err) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 256;
        hf_tensor *nt = realloc(h->t, (size_t)cap * sizeof *nt);
        if (!nt) { free(owned); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        h->t = nt;
        h->cap = cap;
    }
    hf_tensor *e = &h->t[h->n];
    memset(e, 0, sizeof *e);
    snprintf(e->gguf, sizeof e->gguf, "%s", gguf);
    e->t = *t;
    e->owned = owned;
    if (!(e->desc = strdup(desc))) { free(owned); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
    e->t.name = e->desc;
    h->n++;
    return TV_OK;
}

// An owned F32 vector tensor of n values.
static tv_status add_f32(hf_model *h, const char *gguf, const float *v, int n, const char *desc, tv_error *err) {
    float *d = malloc((size_t)n * sizeof *d);
    if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    memcpy(d, v, (size_t)n * sizeof *d);
    tv_tensor t = {.type = TV_TYPE_F32, .n_dims = 1, .ne = {n, 1, 1, 1}, .nbytes = (size_t)n * 4, .data = d};
    return add_tensor(h, gguf, &t, desc, d, err);
}

static float elem_f32(const st_tensor *s, size_t i) {
    switch (s->dtype) {
    case ST_F32: return ((const float *)s->data)[i];
    case ST_F16: return f16_to_f32(((const tv_f16 *)s->data)[i]);
    case ST_BF16: return bf16_to_f32(((const tv_bf16 *)s->data)[i]);
    default: return 0;
    }
}

// llama.cpp's permute: within each of n_head heads of rows, row 2j + i (GGUF) = row i * half + j (HF).
static size_t perm_row(size_t r, size_t rows_per_head) {
    size_t head = r / rows_per_head, k = r % rows_per_head, half = rows_per_head / 2;
    return head * rows_per_head + (k % 2) * half + k / 2;   // GGUF row r reads this HF row
}

// Maps an HF name to its GGUF name: 1 mapped, 2 a fused expert tensor (out: "blk.N."), 0 to skip
// (vision towers, rotary buffers, a tied lm_head, DeepSeek's MTP layers), -1 unknown. *expert receives the expert number of a per-expert matrix, else -1.
static int map_name(const hf_arch *a, const char *hf, bool tied, int64_t n_main_layers, char *out, size_t cap, int *expert) {
    *expert = -1;
    static const char *const STRIP[][2] = {
        {"model.language_model.", "model."}, {"language_model.model.", "model."}, {"language_model.lm_head.", "lm_head."},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof STRIP / sizeof STRIP[0]; i++) {
        size_t n = strlen(STRIP[i][0]);
        if (!strncmp(hf, STRIP[i][0], n)) {
            snprintf(buf, sizeof buf, "%s%s", STRIP[i][1], hf + n);
            hf = buf;
            break;
        }
    }
    if (strstr(hf, "vision_tower.") || strstr(hf, "multi_modal_projector.") || strstr(hf, "vision_model.") ||
        !strncmp(hf, "model.visual.", 13) || strstr(hf, "rotary_emb.inv_freq") || !strncmp(hf, "mtp.", 4) ||
        strstr(hf, "audio_tower.") || !strncmp(hf, "model.embed_vision.", 19) || !strncmp(hf, "model.embed_audio.", 18))
        return 0;   // (Qwen3.5's mtp.* layers: llama.cpp's qwen35 does not run them; Gemma 4's vision and audio)
    static const char *const TOP[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"}, {"model.norm.weight", "output_norm.weight"},
        {"model.embed_tokens_per_layer.weight", "per_layer_token_embd.weight"},   // Gemma 4 E2B/E4B
        {"model.per_layer_model_projection.weight", "per_layer_model_proj.weight"},
        {"model.per_layer_projection_norm.weight", "per_layer_proj_norm.weight"},
    };
    for (size_t i = 0; i < sizeof TOP / sizeof TOP[0]; i++)
        if (!strcmp(hf, TOP[i][0])) return snprintf(out, cap, "%s", TOP[i][1]), 1;
    if (!strcmp(hf, "lm_head.weight")) {
        if (tied) return 0;
        return snprintf(out, cap, "output.weight"), 1;
    }
    int layer, pos = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &pos) != 1 || pos == 0 || layer < 0) return -1;
    if (n_main_layers && layer >= n_main_layers) return 0;   // DeepSeek's MTP layers: not converted
    const char *r = hf + pos;
    if ((a->flags & HF_MOE) && !strncmp(r, "mlp.experts.", 12) && !(r[12] >= '0' && r[12] <= '9')) {
        snprintf(out, cap, "blk.%d.", layer);   // transformers' fused 3-D experts: map_fused_experts
        return 2;
    }
    for (size_t i = 0; (a->flags & HF_GEMMA4) && i < N_GEMMA4_MOE; i++) {
        if (strcmp(r, GEMMA4_MOE[i].hf)) continue;
        snprintf(out, cap, "blk.%d.", layer);
        if (!strncmp(r, "experts.", 8)) return 2;   // fused 3-D experts: map_fused_experts
        snprintf(out, cap, "blk.%d.%s", layer, GEMMA4_MOE[i].gguf);
        return 1;
    }
    for (size_t i = 0; (a->flags & HF_MOE) && i < N_EXPERT_NAMES; i++) {
        const size_t n = strlen(EXPERT_NAMES[i].container);
        int e = -1, at = 0;
        if (strncmp(r, EXPERT_NAMES[i].container, n) || r[n] != '.' || sscanf(r + n + 1, "%d.%n", &e, &at) != 1 || at == 0 ||
            e < 0 || strcmp(r + n + 1 + at, EXPERT_NAMES[i].part))
            continue;
        *expert = e;
        snprintf(out, cap, "blk.%d.%s", layer, EXPERT_NAMES[i].gguf);
        return 1;
    }
    for (size_t i = 0; i < N_LAYER_NAMES; i++) {
        if (strcmp(hf + pos, LAYER_NAMES[i].hf)) continue;
        const char *g = (a->flags & HF_GEMMA) && LAYER_NAMES[i].gemma_gguf ? LAYER_NAMES[i].gemma_gguf : LAYER_NAMES[i].gguf;
        if ((a->flags & HF_POST_ATTN_NORM) && !strcmp(LAYER_NAMES[i].hf, "post_attention_layernorm.weight")) g = "post_attention_norm.weight";
        if (!g) return -1;
        snprintf(out, cap, "blk.%d.%s", layer, g);
        return 1;
    }
    return -1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static const char *torch_dtype_name(st_dtype t) {
    return t == ST_F32 ? "float32" : t == ST_F16 ? "float16" : t == ST_BF16 ? "bfloat16" : "?";
}

// Binds one safetensors tensor under its GGUF name, converting where the layouts differ.
// FP8 E4M3 ("fn": no infinities; S.EEEE.MMM, bias 7; 0x7F/0xFF are NaN) as f32, exactly.
float hf_e4m3_to_f32(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    float v = e ? ldexpf(1.0f + (float)m / 8.0f, e - 7) : ldexpf((float)m / 8.0f, -6);
    if (e == 15 && m == 7) v = NAN;
    return b & 0x80 ? -v : v;
}

// FP8 weights and their scales (hf.h): *out (rows, cols) f32 = e4m3(w[r][c]) * scale of (r, c), rows in
// GGUF order (row r reads HF row perm(r) when permuted; rows_per_head 1: none). Scales: s->name +
// "_scale_inv" (block-wise, (ceil(rows / bo), ceil(cols / bi)) with the block [bo, bi] of
// quantization_config.weight_block_size, as DeepSeek-V3 / Qwen3 FP8), else s->name + "_scale" (one
// value, or one per row).
static tv_status dequant_fp8(hf_model *h, const st_tensor *s, size_t rows_per_head, float **out, tv_error *err) {
    const int64_t rows = s->shape[0], cols = s->shape[1];
    char name[512];
    snprintf(name, sizeof name, "%s_scale_inv", s->name);
    const st_tensor *sc = st_set_find(h->st, name);
    int64_t bo = 0, bi = 0;
    if (sc) {
        bo = h->fp8_block[0];
        bi = h->fp8_block[1];
        if (bo <= 0 || bi <= 0)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has block scales but config.json has no quantization_config.weight_block_size",
                            s->file, s->name);
        if (sc->n_dims != 2 || sc->shape[0] != (rows + bo - 1) / bo || sc->shape[1] != (cols + bi - 1) / bi)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld, %lld]: the %lldx%lld block scales of a [%lld, %lld] weight",
                            sc->file, name, (long long)((rows + bo - 1) / bo), (long long)((cols + bi - 1) / bi), (long long)bo,
                            (long long)bi, (long long)rows, (long long)cols);
    } else {
        snprintf(name, sizeof name, "%s_scale", s->name);
        if (!(sc = st_set_find(h->st, name)))
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is F8_E4M3 without '%s_scale_inv' or '%s_scale'", s->file, s->name,
                            s->name, s->name);
        const int64_t n = sc->n_dims ? sc->shape[0] * (sc->n_dims > 1 ? sc->shape[1] : 1) : 1;
        if (sc->n_dims > 2 || (n != 1 && n != rows) || (sc->n_dims == 2 && sc->shape[1] != 1))
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has %lld values: a per-tensor scale has 1, a per-row one %lld", sc->file,
                            name, (long long)n, (long long)rows);
        bo = n == 1 ? rows : 1;   // one block per tensor or per row
        bi = cols;
    }
    if (sc->dtype != ST_F32 && sc->dtype != ST_F16 && sc->dtype != ST_BF16)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has dtype %s; scales must be F32, F16 or BF16", sc->file, name, sc->dtype_name);
    float *d = malloc((size_t)rows * (size_t)cols * sizeof *d);
    if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    const int64_t scols = (cols + bi - 1) / bi;
    const uint8_t *w = s->data;
    for (int64_t r = 0; r < rows; r++) {
        const size_t src = rows_per_head > 1 ? perm_row((size_t)r, rows_per_head) : (size_t)r;
        const uint8_t *row = w + src * (size_t)cols;
        for (int64_t c = 0; c < cols; c++)
            d[(size_t)r * (size_t)cols + (size_t)c] = hf_e4m3_to_f32(row[c]) * elem_f32(sc, (size_t)((int64_t)src / bo * scols + c / bi));
    }
    *out = d;
    return TV_OK;
}

// DeepSeek's kv_b_proj [n_head * (nope + v), kv_lora] (per head: nope K rows, then v V rows) as
// llama.cpp's converter splits it: attn_k_b ne {nope, kv_lora, n_head} (each head's K rows
// transposed) and attn_v_b ne {kv_lora, v, n_head} (each head's V rows), in the stored float type
// (FP8: dequantized to F32 first).
static tv_status split_kv_b(hf_model *h, const st_tensor *s, const char *gguf, int n_head, const char *desc, tv_error *err) {
    const int64_t nope = h->mla_nope, v = h->mla_v, per = nope + v;
    if (s->n_dims != 2 || per <= 0 || s->shape[0] != (int64_t)n_head * per)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld, kv_lora_rank]: num_attention_heads %d x "
                        "(qk_nope_head_dim %lld + v_head_dim %lld) rows", s->file, s->name, (long long)((int64_t)n_head * per),
                        n_head, (long long)nope, (long long)v);
    const int64_t lora = s->shape[1];
    const uint8_t *src = s->data;
    float *deq = NULL;
    size_t es = st_dtype_size(s->dtype);
    tv_type type = s->dtype == ST_F32 ? TV_TYPE_F32 : s->dtype == ST_F16 ? TV_TYPE_F16 : TV_TYPE_BF16;
    if (s->dtype == ST_F8_E4M3) {
        tv_status st = dequant_fp8(h, s, 1, &deq, err);
        if (st) return st;
        src = (const uint8_t *)deq;
        es = sizeof(float);
        type = TV_TYPE_F32;
    } else if (s->dtype != ST_F32 && s->dtype != ST_F16 && s->dtype != ST_BF16) {
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s", s->file, s->name, s->dtype_name);
    }
    const size_t kb = (size_t)n_head * (size_t)lora * (size_t)nope * es, vb = (size_t)n_head * (size_t)v * (size_t)lora * es;
    uint8_t *k = malloc(kb + 1), *vv = malloc(vb + 1);
    tv_status st = TV_OK;
    if (!k || !vv) {
        free(k);
        free(vv);
        free(deq);
        return err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    for (int64_t hd = 0; hd < n_head; hd++) {
        const uint8_t *rows = src + (size_t)(hd * per) * (size_t)lora * es;   // this head's nope + v rows
        for (int64_t c = 0; c < lora; c++)       // k_b[hd][c][j] = kv_b[hd * per + j][c]
            for (int64_t j = 0; j < nope; j++)
                memcpy(k + (((size_t)hd * (size_t)lora + (size_t)c) * (size_t)nope + (size_t)j) * es,
                       rows + ((size_t)j * (size_t)lora + (size_t)c) * es, es);
        memcpy(vv + (size_t)hd * (size_t)v * (size_t)lora * es, rows + (size_t)nope * (size_t)lora * es, (size_t)v * (size_t)lora * es);
    }
    free(deq);
    char name[96];
    const size_t base = strlen(gguf) - strlen("attn_kv_b.weight");
    snprintf(name, sizeof name, "%.*sattn_k_b.weight", (int)base, gguf);
    tv_tensor tk = {.type = type, .n_dims = 3, .ne = {nope, lora, n_head, 1}, .nbytes = kb, .data = k};
    st = add_tensor(h, name, &tk, desc, k, err);
    snprintf(name, sizeof name, "%.*sattn_v_b.weight", (int)base, gguf);
    tv_tensor tv = {.type = type, .n_dims = 3, .ne = {lora, v, n_head, 1}, .nbytes = vb, .data = vv};
    if (!st) st = add_tensor(h, name, &tv, desc, vv, err);
    else free(vv);
    return st;
}

// HF_HYBRID: index x of a Gated DeltaNet dimension in llama.cpp's layout (V heads tiled: value head j
// of key head kh at j * n_k + kh, from off on, hd wide) -> the HF index (grouped: kh * (n_v / n_k) + j).
static size_t hy_v_src(const hf_model *h, size_t x, size_t off, size_t hd) {
    if (x < off || h->lin_v == h->lin_k || h->lin_grouped) return x;
    const size_t k = (size_t)h->lin_k, r = (size_t)(h->lin_v / h->lin_k), p = x - off;
    return off + ((p / hd % k) * r + p / (k * hd)) * hd + p % hd;
}

static bool is_hybrid_tensor(const char *gguf) {
    static const char *const NAMES[] = {"attn_qkv.weight", "attn_gate.weight", "ssm_beta.weight", "ssm_alpha.weight",
                                        "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a", "ssm_out.weight"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (ends_with(gguf, NAMES[i])) return true;
    return false;
}

// Qwen3.5's linear_attn tensors as llama.cpp's converter writes them: V heads from grouped-by-key-head
// to tiled order (in_proj_qkv's V rows, in_proj_z's rows, in_proj_b / in_proj_a / A_log / dt_bias per
// head, conv1d's V channels, out_proj's columns), A_log as -exp(A_log), conv1d [C, 1, K] as F32 [C, K].
static tv_status map_hybrid(hf_model *h, const st_tensor *s, const char *gguf, const char *desc, const char *torch_dtype,
                            tv_error *err) {
    const size_t nk = (size_t)h->lin_k, nv = (size_t)h->lin_v, vd = (size_t)h->lin_vd, qk = 2 * nk * (size_t)h->lin_kd;
    const bool conv = ends_with(gguf, "ssm_conv1d.weight"), is_a = ends_with(gguf, "ssm_a");
    const bool vec = is_a || ends_with(gguf, "ssm_dt.bias"), cols = ends_with(gguf, "ssm_out.weight");
    size_t off = 0, hd = vd, want = nv * vd;   // the reordered dimension: where V starts, head size, length
    if (conv || ends_with(gguf, "attn_qkv.weight")) {
        off = qk;
        want = qk + nv * vd;
    } else if (vec || ends_with(gguf, "ssm_beta.weight") || ends_with(gguf, "ssm_alpha.weight")) {
        hd = 1;
        want = nv;
    }
    if (s->dtype != ST_F32 && s->dtype != ST_F16 && s->dtype != ST_BF16)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; linear_attn weights must be F32, F16 or BF16",
                        s->file, s->name, s->dtype_name);
    const int nd = conv && s->n_dims == 3 && s->shape[1] == 1 ? 2 : s->n_dims;   // conv1d squeezed
    const int64_t rows = nd == 2 ? s->shape[0] : 1, n = s->shape[s->n_dims - 1];
    if (nd != (vec ? 1 : 2) || (int64_t)want != (cols || vec ? n : rows))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' does not have %zu %s: config.json's linear_num_key_heads %zu, "
                        "linear_key_head_dim %lld, linear_num_value_heads %zu, linear_value_head_dim %zu give that",
                        s->file, s->name, want, vec ? "values" : cols ? "columns" : conv ? "channels ([C, 1, K])" : "rows", nk,
                        (long long)h->lin_kd, nv, vd);
    const bool to_f32 = conv || vec;   // llama.cpp keeps conv1d (and every vector) F32
    if (!to_f32 && torch_dtype && strcmp(torch_dtype, torch_dtype_name(s->dtype)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s but config.json's torch_dtype is %s", s->file, s->name,
                        s->dtype_name, torch_dtype);
    const size_t es = to_f32 ? sizeof(float) : st_dtype_size(s->dtype);
    uint8_t *d = malloc((size_t)rows * (size_t)n * es + 1);
    if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < (size_t)rows; r++) {
        const size_t sr = cols || vec ? r : hy_v_src(h, r, off, hd);
        for (size_t c = 0; c < (size_t)n; c++) {
            const size_t i = sr * (size_t)n + (cols || vec ? hy_v_src(h, c, 0, hd) : c), o = r * (size_t)n + c;
            if (!to_f32) {
                memcpy(d + o * es, (const uint8_t *)s->data + i * es, es);
                continue;
            }
            const float v = elem_f32(s, i);
            ((float *)d)[o] = is_a ? -expf(v) : v;
        }
    }
    tv_tensor t = {.type = to_f32 || s->dtype == ST_F32 ? TV_TYPE_F32 : s->dtype == ST_F16 ? TV_TYPE_F16 : TV_TYPE_BF16,
                   .n_dims = vec ? 1 : 2, .ne = {n, rows, 1, 1}, .nbytes = (size_t)rows * (size_t)n * es, .data = d};
    return add_tensor(h, gguf, &t, desc, d, err);
}

static bool is_float_dtype(st_dtype t) { return t == ST_F32 || t == ST_F16 || t == ST_BF16; }

static tv_type float_type(st_dtype t) { return t == ST_F32 ? TV_TYPE_F32 : t == ST_F16 ? TV_TYPE_F16 : TV_TYPE_BF16; }

// Qwen3-Next's in_proj_qkvz [n_k * (2 kd + 2 r vd), dim] (per key head: its q, k, the v of its r value
// heads, then their z) as llama.cpp's converter splits it: attn_qkv = every key head's q, then every
// k, then every v; attn_gate = every z (rows copied, in the stored float type).
static tv_status split_qkvz(hf_model *h, const st_tensor *s, const char *gguf, const char *desc, const char *torch_dtype,
                            tv_error *err) {
    const size_t nk = (size_t)h->lin_k, kd = (size_t)h->lin_kd, rv = (size_t)(h->lin_v / h->lin_k * h->lin_vd);
    const size_t per = 2 * kd + 2 * rv;
    if (!is_float_dtype(s->dtype) || s->n_dims != 2 || (size_t)s->shape[0] != nk * per)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not a float [%zu, hidden_size] matrix: config.json's "
                        "linear_num_key_heads %zu x (2 x linear_key_head_dim %zu + 2 x %zu value rows) give that", s->file,
                        s->name, nk * per, nk, kd, rv);
    if (torch_dtype && strcmp(torch_dtype, torch_dtype_name(s->dtype)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s but config.json's torch_dtype is %s", s->file, s->name,
                        s->dtype_name, torch_dtype);
    const size_t rb = (size_t)s->shape[1] * st_dtype_size(s->dtype);
    uint8_t *qkv = malloc(nk * (2 * kd + rv) * rb + 1), *z = malloc(nk * rv * rb + 1);
    if (!qkv || !z) {
        free(qkv);
        free(z);
        return err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < nk; k++) {
        const uint8_t *src = (const uint8_t *)s->data + k * per * rb;
        memcpy(qkv + k * kd * rb, src, kd * rb);                                  // q
        memcpy(qkv + (nk * kd + k * kd) * rb, src + kd * rb, kd * rb);            // k
        memcpy(qkv + (2 * nk * kd + k * rv) * rb, src + 2 * kd * rb, rv * rb);    // v
        memcpy(z + k * rv * rb, src + (2 * kd + rv) * rb, rv * rb);               // z
    }
    char name[96];
    const int base = (int)(strlen(gguf) - strlen("attn_qkvz.weight"));
    snprintf(name, sizeof name, "%.*sattn_qkv.weight", base, gguf);
    tv_tensor tq = {.type = float_type(s->dtype), .n_dims = 2, .ne = {s->shape[1], (int64_t)(nk * (2 * kd + rv)), 1, 1},
                    .nbytes = nk * (2 * kd + rv) * rb, .data = qkv};
    tv_status st = add_tensor(h, name, &tq, desc, qkv, err);
    if (st) {
        free(z);
        return st;
    }
    snprintf(name, sizeof name, "%.*sattn_gate.weight", base, gguf);
    tv_tensor tz = {.type = float_type(s->dtype), .n_dims = 2, .ne = {s->shape[1], (int64_t)(nk * rv), 1, 1},
                    .nbytes = nk * rv * rb, .data = z};
    return add_tensor(h, name, &tz, desc, z, err);
}

static tv_status map_tensor(hf_model *h, const hf_arch *a, const st_tensor *s, const char *gguf, int n_head,
                            int n_kv_head, const char *torch_dtype, tv_error *err) {
    char desc[512];
    snprintf(desc, sizeof desc, "%s in %s", s->name, s->file);
    if ((a->flags & HF_QKVZ) && ends_with(gguf, "attn_qkvz.weight")) return split_qkvz(h, s, gguf, desc, torch_dtype, err);
    if ((a->flags & HF_HYBRID) && is_hybrid_tensor(gguf)) return map_hybrid(h, s, gguf, desc, torch_dtype, err);
    if (s->dtype == ST_OTHER || s->dtype == ST_U8 || (s->dtype == ST_F8_E4M3 && s->n_dims != 2))
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or (matrices) F8_E4M3",
                        s->file, s->name, s->dtype_name);
    if (s->n_dims < 1 || s->n_dims > 2)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, a weight has 1 or 2", s->file, s->name,
                        s->n_dims);
    tv_tensor t = {.n_dims = s->n_dims, .ne = {1, 1, 1, 1}, .nbytes = s->nbytes, .data = s->data};
    t.type = s->dtype == ST_F32 ? TV_TYPE_F32 : s->dtype == ST_F16 ? TV_TYPE_F16 : TV_TYPE_BF16;
    t.ne[0] = s->shape[s->n_dims - 1];
    if (s->n_dims == 2) t.ne[1] = s->shape[0];
    const bool is_q = ends_with(gguf, "attn_q.weight") || ends_with(gguf, "attn_q.bias");
    const bool is_k = ends_with(gguf, "attn_k.weight") || ends_with(gguf, "attn_k.bias");
    const bool permute = (a->flags & HF_PERMUTE_QK) && (is_q || is_k);
    const int heads = is_q ? n_head : n_kv_head;
    const int64_t rows = s->n_dims == 2 ? t.ne[1] : t.ne[0];
    if (permute && (rows % (2 * (int64_t)heads)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has %lld rows, not a whole number of %d heads of even size",
                        s->file, s->name, (long long)rows, heads);
    const size_t rows_per_head = permute ? (size_t)(rows / heads) : 1;
    if (s->n_dims == 1) {   // vectors: F32 (Gemma's norms: 1 + w), a bias permuted as its rows
        const bool plus_one = (((a->flags & HF_GEMMA) && !(a->flags & HF_GEMMA4)) ||
                               ((a->flags & HF_HYBRID) && !ends_with(gguf, "ssm_norm.weight"))) &&
                              ends_with(gguf, "norm.weight");
        float *d = malloc((size_t)t.ne[0] * sizeof *d + 1);
        if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < (size_t)t.ne[0]; i++) {
            float v = elem_f32(s, permute ? perm_row(i, rows_per_head) : i);
            d[i] = plus_one ? v + 1.0f : v;
        }
        t.type = TV_TYPE_F32;
        t.nbytes = (size_t)t.ne[0] * 4;
        t.data = d;
        return add_tensor(h, gguf, &t, desc, d, err);
    }
    if (ends_with(gguf, "attn_kv_b.weight")) return split_kv_b(h, s, gguf, n_head, desc, err);
    if (s->dtype == ST_F8_E4M3) {   // dequantized to f32 (permuted on the way)
        float *d = NULL;
        tv_status st = dequant_fp8(h, s, rows_per_head, &d, err);
        if (st) return st;
        t.type = TV_TYPE_F32;
        t.nbytes = (size_t)t.ne[0] * (size_t)t.ne[1] * sizeof *d;
        t.data = d;
        return add_tensor(h, gguf, &t, desc, d, err);
    }
    if (ends_with(gguf, "ffn_gate_inp.weight") || ends_with(gguf, "ffn_gate_inp_shexp.weight")) {
        // MoE routers become F32 (llama.cpp's converter writes them so); a [1, n] gate is the vector (n)
        const size_t n = (size_t)t.ne[0] * (size_t)t.ne[1];
        float *d = malloc(n * sizeof *d + 1);
        if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) d[i] = elem_f32(s, i);
        if (t.ne[1] == 1) t.n_dims = 1;
        t.type = TV_TYPE_F32;
        t.nbytes = n * sizeof *d;
        t.data = d;
        return add_tensor(h, gguf, &t, desc, d, err);
    }
    if (torch_dtype && strcmp(torch_dtype, torch_dtype_name(s->dtype)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s but config.json's torch_dtype is %s", s->file,
                        s->name, s->dtype_name, torch_dtype);
    if (!permute) return add_tensor(h, gguf, &t, desc, NULL, err);
    const size_t row_bytes = (size_t)t.ne[0] * st_dtype_size(s->dtype);
    uint8_t *d = malloc(s->nbytes + 1);
    if (!d) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < (size_t)rows; r++)
        memcpy(d + r * row_bytes, (const uint8_t *)s->data + perm_row(r, rows_per_head) * row_bytes, row_bytes);
    t.data = d;
    return add_tensor(h, gguf, &t, desc, d, err);
}

// Drops the whole pages of [p, p + n) from this process (a read-only file mapping refaults if read again).
static void drop_pages(const void *p, size_t n) {
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    const uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1), e = ((uintptr_t)p + n) & ~(uintptr_t)(ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

static tv_status expert_copy(hf_model *h, hf_stack **stacks, int *n_stacks, const st_tensor *s, const char *gguf, int e,
                             int64_t n_expert, tv_type type, const void *src, size_t nbytes, tv_error *err);

// Copies expert e's matrix s (n_expert in all) into the 3-D tensor gguf (ne = {cols, rows, n_expert}),
// made at the first of its experts; every expert must agree in dtype and shape. The source pages
// are dropped once copied, so the process holds one copy of the experts.
static tv_status stack_expert(hf_model *h, hf_stack **stacks, int *n_stacks, const st_tensor *s, const char *gguf, int e,
                              int64_t n_expert, const char *torch_dtype, tv_error *err) {
    if (n_expert <= 0)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is an expert's, but config.json has no num_experts / num_local_experts",
                        s->file, s->name);
    if (e >= n_expert)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is expert %d, but config.json has %lld experts", s->file, s->name, e,
                        (long long)n_expert);
    if (s->n_dims != 2 || s->dtype == ST_OTHER || s->dtype == ST_U8)
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' is %s with %d dimensions; an expert's matrix must be 2-D F32, F16, "
                        "BF16 or F8_E4M3", s->file, s->name, s->dtype_name, s->n_dims);
    if (torch_dtype && s->dtype != ST_F8_E4M3 && strcmp(torch_dtype, torch_dtype_name(s->dtype)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s but config.json's torch_dtype is %s", s->file, s->name,
                        s->dtype_name, torch_dtype);
    // FP8 experts (DeepSeek-V3's release) are dequantized to F32 first, as FP8 matrices are
    float *deq = NULL;
    if (s->dtype == ST_F8_E4M3) {
        tv_status st = dequant_fp8(h, s, 1, &deq, err);
        if (st) return st;
    }
    const tv_type type = deq || s->dtype == ST_F32 ? TV_TYPE_F32 : s->dtype == ST_F16 ? TV_TYPE_F16 : TV_TYPE_BF16;
    const void *src = deq ? (const void *)deq : s->data;
    const size_t nbytes = deq ? (size_t)s->shape[0] * (size_t)s->shape[1] * sizeof *deq : s->nbytes;
    tv_status st = expert_copy(h, stacks, n_stacks, s, gguf, e, n_expert, type, src, nbytes, err);
    free(deq);
    return st;
}

// Expert e's matrix (src, nbytes, in type) into its stack (made at the layer's first expert).
static tv_status expert_copy(hf_model *h, hf_stack **stacks, int *n_stacks, const st_tensor *s, const char *gguf, int e,
                             int64_t n_expert, tv_type type, const void *src, size_t nbytes, tv_error *err) {
    hf_stack *k = NULL;
    for (int i = 0; i < *n_stacks && !k; i++)
        if (!strcmp(h->t[(*stacks)[i].idx].gguf, gguf)) k = &(*stacks)[i];
    if (!k) {
        hf_stack *ns = realloc(*stacks, ((size_t)*n_stacks + 1) * sizeof *ns);
        if (!ns) return err_fail(err, TV_ERR_NOMEM, "out of memory");
        *stacks = ns;
        bool *seen = calloc((size_t)n_expert, sizeof *seen);
        uint8_t *data = (size_t)n_expert <= SIZE_MAX / (nbytes + 1) ? malloc((size_t)n_expert * nbytes + 1) : NULL;
        if (!seen || !data) {
            free(seen);
            free(data);
            return err_fail(err, TV_ERR_NOMEM, "%s: out of memory gathering %lld experts of %s", h->dir, (long long)n_expert, gguf);
        }
        k = &ns[*n_stacks];
        *k = (hf_stack){.idx = h->n, .seen = seen};
        const char *num = strstr(s->name, "experts.") + 8;   // map_name matched ".experts.<e>."
        snprintf(k->hf_before, sizeof k->hf_before, "%.*s", (int)(num - s->name), s->name);
        snprintf(k->hf_after, sizeof k->hf_after, "%s", strchr(num, '.'));
        char desc[512];
        snprintf(desc, sizeof desc, "%s*%s in %s", k->hf_before, k->hf_after, h->dir);
        tv_tensor t = {.type = type, .n_dims = 3, .ne = {s->shape[1], s->shape[0], n_expert, 1},
                       .nbytes = (size_t)n_expert * nbytes, .data = data};
        tv_status st = add_tensor(h, gguf, &t, desc, data, err);
        if (st) {
            free(seen);
            return st;
        }
        (*n_stacks)++;
    }
    const hf_tensor *x = &h->t[k->idx];
    if (x->t.type != type || x->t.ne[0] != s->shape[1] || x->t.ne[1] != s->shape[0])
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s [%lld, %lld], the layer's other experts %s [%lld, %lld]", s->file,
                        s->name, s->dtype_name, (long long)s->shape[0], (long long)s->shape[1], kern_type_name(x->t.type),
                        (long long)x->t.ne[1], (long long)x->t.ne[0]);
    if (k->seen[e]) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is listed twice", s->file, s->name);
    memcpy((uint8_t *)x->owned + (size_t)e * nbytes, src, nbytes);
    drop_pages(s->data, s->nbytes);
    k->seen[e] = true;
    k->n_seen++;
    return TV_OK;
}

// Every gathered expert tensor must have all its experts.
static tv_status check_stacks(const hf_model *h, const hf_stack *stacks, int n_stacks, int64_t n_expert, tv_error *err) {
    for (int i = 0; i < n_stacks; i++) {
        if (stacks[i].n_seen == n_expert) continue;
        int e = 0;
        while (stacks[i].seen[e]) e++;
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s%d%s' is missing (%s needs all %lld experts)", h->dir,
                        stacks[i].hf_before, e, stacks[i].hf_after, h->t[stacks[i].idx].gguf, (long long)n_expert);
    }
    return TV_OK;
}

// HF MXFP4 block (16 bytes: element 2i in byte i's low nibble, 2i + 1 in its high one) and its E8M0
// scale -> ggml's block (scale byte, then element j low and j + 16 high in byte j): the FP4 codes and
// the scale are the same numbers (what llama.cpp's converter's transform_nibble_layout does).
static void mxfp4_block(uint8_t scale, const uint8_t *hf, uint8_t *out) {
    uint8_t code[32];
    for (int i = 0; i < 16; i++) {
        code[2 * i] = hf[i] & 15;
        code[2 * i + 1] = hf[i] >> 4;
    }
    out[0] = scale;
    for (int j = 0; j < 16; j++) out[1 + j] = (uint8_t)(code[j] | code[j + 16] << 4);
}

// One expert tensor of map_fused_experts, owned: (n_expert, rows, cols) of type, its rows filled by the caller.
static tv_status fused_add(hf_model *h, const char *blk, const char *part, tv_type type, int64_t cols, int64_t rows,
                           const char *desc, uint8_t **data, tv_error *err) {
    const size_t nbytes = (size_t)h->n_expert * (size_t)rows * kern_row_size(type, cols);
    char name[96];
    snprintf(name, sizeof name, "%s%s", blk, part);
    if (!(*data = malloc(nbytes + 1))) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory for %s", h->dir, name);
    const int n_dims = strstr(part, ".bias") ? 2 : 3;   // a bias per expert: (n_expert, cols)
    tv_tensor t = {.type = type, .n_dims = n_dims, .ne = {cols, n_dims == 2 ? h->n_expert : rows, n_dims == 2 ? 1 : h->n_expert, 1},
                   .nbytes = nbytes, .data = *data};
    return add_tensor(h, name, &t, desc, *data, err);
}

// Transformers' fused 3-D expert tensors model.layers.N.mlp.experts.<part> (Gemma 4: model.layers.N.experts.<part>;
// blk = "blk.N."), split and laid out as llama.cpp's converter writes them (ne = {cols, rows, n_expert}):
//   Qwen3.5-MoE  gate_up_proj [E, 2 ff, dim] (gate rows, then up rows), down_proj [E, dim, ff];
//   Gemma 4      the same two, used in place: gate_up_proj is ffn_gate_up_exps (not split);
//   gpt-oss      gate_up_proj [E, dim, 2 ff] (transposed; gate and up interleaved: columns 2r, 2r + 1)
//                and down_proj [E, ff, dim] (transposed), or its release's MXFP4 form <part>_blocks
//                [E, rows, cols / 32, 16] with <part>_scales [E, rows, cols / 32] (rows interleaved as
//                above), kept MXFP4; gate_up_proj_bias [E, 2 ff] (interleaved) and down_proj_bias [E, dim]
//                become F32.
// Every shape is checked against config.json (hidden_size, the expert count and width).
static tv_status map_fused_experts(hf_model *h, const hf_arch *a, const st_tensor *s, const char *blk, const char *torch_dtype,
                                   tv_error *err) {
    const char *part = strstr(s->name, "experts.") + 8;   // (map_name matched layers.N.[mlp.]experts.)
    char desc[512], other[512];
    snprintf(desc, sizeof desc, "%s in %s", s->name, s->file);
    const bool gptoss = a->flags & HF_GPTOSS, gemma4 = a->flags & HF_GEMMA4, gate_up = !strncmp(part, "gate_up_proj", 12);
    if (!gate_up && strncmp(part, "down_proj", 9))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has no counterpart in the %s architecture", s->file, s->name, a->arch);
    const char *kind = part + (gate_up ? 12 : 9);   // "", ".weight", "_bias", "_blocks", "_scales"
    const int64_t E = h->n_expert, ff = h->ff_exp, dim = h->dim;
    const int64_t rows = gate_up ? 2 * ff : dim, cols = gate_up ? dim : ff;   // the HF matrix, as out x in
    if (E <= 0 || ff <= 0)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' holds experts, but config.json has no expert count or width%s", s->file,
                        s->name, gemma4 ? " (enable_moe_block is not true)" : "");
    if (!strcmp(kind, "_scales")) {   // read with its blocks
        snprintf(other, sizeof other, "%.*s_blocks", (int)(strlen(s->name) - 7), s->name);
        if (!st_set_find(h->st, other))
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has no '%s'", s->file, s->name, other);
        return TV_OK;
    }
    uint8_t *d[2] = {NULL, NULL};
    tv_status st = TV_OK;
    if (!strcmp(kind, "_blocks")) {
        const int64_t nb = cols / 32;
        snprintf(other, sizeof other, "%.*s_scales", (int)(strlen(s->name) - 7), s->name);
        const st_tensor *sc = st_set_find(h->st, other);
        if (!gptoss || cols % 32 || s->dtype != ST_U8 || s->n_dims != 4 || s->shape[0] != E || s->shape[1] != rows ||
            s->shape[2] != nb || s->shape[3] != 16)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not U8 [%lld, %lld, %lld, 16]: MXFP4 blocks of %lld experts' "
                            "[%lld, %lld] matrices (config.json)", s->file, s->name, (long long)E, (long long)rows,
                            (long long)nb, (long long)E, (long long)rows, (long long)cols);
        if (!sc) return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has no '%s'", s->file, s->name, other);
        if (sc->dtype != ST_U8 || sc->n_dims != 3 || sc->shape[0] != E || sc->shape[1] != rows || sc->shape[2] != nb)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not U8 [%lld, %lld, %lld]: the E8M0 scales of '%s'", sc->file,
                            other, (long long)E, (long long)rows, (long long)nb, s->name);
        const int n_out = gate_up ? 2 : 1, out_rows = (int)(gate_up ? ff : dim);
        static const char *const NAMES[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
        for (int o = 0; o < n_out && !st; o++)
            st = fused_add(h, blk, NAMES[gate_up ? o : 2], TV_TYPE_MXFP4, cols, out_rows, desc, &d[o], err);
        if (st) return st;
        const uint8_t *blocks = s->data, *scales = sc->data;
        const size_t orb = (size_t)nb * sizeof(tv_block_mxfp4);
        for (int64_t r = 0; r < E * rows; r++) {   // HF row r = (e, j) -> output o = j % n_out, row j / n_out
            const int64_t e = r / rows, j = r % rows, o = j % n_out;
            uint8_t *dst = d[o] + ((size_t)e * (size_t)out_rows + (size_t)(j / n_out)) * orb;
            for (int64_t b = 0; b < nb; b++)
                mxfp4_block(scales[r * nb + b], blocks + ((size_t)r * (size_t)nb + (size_t)b) * 16, dst + (size_t)b * sizeof(tv_block_mxfp4));
        }
        drop_pages(s->data, s->nbytes);
        drop_pages(sc->data, sc->nbytes);
        return TV_OK;
    }
    if (!is_float_dtype(s->dtype))
        return err_fail(err, TV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; experts must be F32, F16 or BF16 (or gpt-oss's "
                        "MXFP4 _blocks)", s->file, s->name, s->dtype_name);
    if (!strcmp(kind, "_bias")) {   // gpt-oss: [E, rows] -> F32 (n_expert, rows per output)
        if (!gptoss || s->n_dims != 2 || s->shape[0] != E || s->shape[1] != rows)
            return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld, %lld] (config.json's experts)", s->file, s->name,
                            (long long)E, (long long)rows);
        const int n_out = gate_up ? 2 : 1;
        static const char *const NAMES[3] = {"ffn_gate_exps.bias", "ffn_up_exps.bias", "ffn_down_exps.bias"};
        for (int o = 0; o < n_out && !st; o++) st = fused_add(h, blk, NAMES[gate_up ? o : 2], TV_TYPE_F32, rows / n_out, 1, desc, &d[o], err);
        if (st) return st;
        for (int64_t i = 0; i < E * rows; i++) ((float *)d[i % n_out])[i / n_out] = elem_f32(s, (size_t)i);
        return TV_OK;
    }
    if (strcmp(kind, "") && strcmp(kind, ".weight"))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has no counterpart in the %s architecture", s->file, s->name, a->arch);
    if (torch_dtype && strcmp(torch_dtype, torch_dtype_name(s->dtype)))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is %s but config.json's torch_dtype is %s", s->file, s->name,
                        s->dtype_name, torch_dtype);
    // stored as [E, rows, cols] (Qwen) or transposed [E, cols, rows] (gpt-oss)
    const int64_t s1 = gptoss ? cols : rows, s2 = gptoss ? rows : cols;
    if (s->n_dims != 3 || s->shape[0] != E || s->shape[1] != s1 || s->shape[2] != s2)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld, %lld, %lld]: %lld experts of config.json's %s %lld and "
                        "hidden_size %lld", s->file, s->name, (long long)E, (long long)s1, (long long)s2, (long long)E,
                        gptoss ? "intermediate_size" : "moe_intermediate_size", (long long)ff, (long long)dim);
    const tv_type type = float_type(s->dtype);
    const size_t es = st_dtype_size(s->dtype);
    if ((!gate_up || gemma4) && !gptoss) {   // Qwen's down_proj, Gemma 4's both: already ggml's {cols, rows, E}, used in place
        char name[96];
        snprintf(name, sizeof name, "%s%s", blk, gate_up ? "ffn_gate_up_exps.weight" : "ffn_down_exps.weight");
        tv_tensor t = {.type = type, .n_dims = 3, .ne = {cols, rows, E, 1}, .nbytes = s->nbytes, .data = s->data};
        return add_tensor(h, name, &t, desc, NULL, err);
    }
    const int n_out = gate_up ? 2 : 1;
    const int64_t out_rows = rows / n_out;
    static const char *const NAMES[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
    for (int o = 0; o < n_out && !st; o++) st = fused_add(h, blk, NAMES[gate_up ? o : 2], type, cols, out_rows, desc, &d[o], err);
    if (st) return st;
    const uint8_t *src = s->data;
    for (int64_t e = 0; e < E; e++)
        for (int64_t j = 0; j < rows; j++) {   // HF row j: Qwen gate rows then up rows; gpt-oss interleaved
            const int o = gptoss ? (int)(j % n_out) : (int)(j / out_rows);
            const int64_t oj = gptoss ? j / n_out : j % out_rows;
            uint8_t *dst = d[o] + ((size_t)e * (size_t)out_rows + (size_t)oj) * (size_t)cols * es;
            if (!gptoss) {
                memcpy(dst, src + ((size_t)e * (size_t)rows + (size_t)j) * (size_t)cols * es, (size_t)cols * es);
                continue;
            }
            for (int64_t c = 0; c < cols; c++)   // transposed: element (j, c) at [e][c][j]
                memcpy(dst + (size_t)c * es, src + (((size_t)e * (size_t)cols + (size_t)c) * (size_t)rows + (size_t)j) * es, es);
        }
    drop_pages(s->data, s->nbytes);
    return TV_OK;
}

static int cmp_hf_tensor(const void *a, const void *b) {
    return strcmp(((const hf_tensor *)a)->gguf, ((const hf_tensor *)b)->gguf);
}

void hf_llama3_rope_factors(float *out, int n_half, int head_dim, double theta, double factor, double low,
                            double high, double orig) {
    for (int i = 0; i < n_half; i++) {
        double freq = pow(theta, -2.0 * i / head_dim);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < orig / high) out[i] = 1.0f;
        else if (wavelen > orig / low) out[i] = (float)factor;
        else {
            double smooth = (orig / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

// ---- metadata ----
typedef struct meta_ctx {
    hf_model *h;
    const cfg *c;
    gguf_writer *w;
    const char *arch;
    unsigned flags;   // the hf_arch's
    tv_error *err;
} meta_ctx;

#define KEY(buf, arch, suffix) (snprintf(buf, sizeof buf, "%s.%s", arch, suffix), buf)

// An optional float config key into `<arch>.<gguf_key>`.
static void opt_f32(meta_ctx *m, const cJSON *obj, const char *key, const char *gguf_key) {
    double v;
    char k[160];
    if (cfg_num(m->c, obj, key, &v)) gguf_set_f32(m->w, KEY(k, m->arch, gguf_key), (float)v);
}

// A list of n_half positive factors (LongRoPE short_factor / long_factor) into an F32 tensor.
static tv_status rope_list(meta_ctx *m, const cJSON *rs, const char *key, const char *gguf, int n_half) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(rs, key);
    float v[512];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n_half || n_half > 512)
        return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_scaling.%s must be a list of %d numbers (rotary dims / 2)",
                        m->c->path, key, n_half);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0))
            return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_scaling.%s[%d] is not a positive number", m->c->path, key, i);
        v[i++] = (float)e->valuedouble;
    }
    char desc[300];
    snprintf(desc, sizeof desc, "rope_scaling.%s of %s", key, m->c->path);
    return add_f32(m->h, gguf, v, n_half, desc, m->err);
}

// rope_scaling (or transformers 5's rope_parameters): linear, yarn (keys), llama3, longrope (tensors).
static tv_status rope_scaling(meta_ctx *m, int64_t n_ctx, int64_t head_dim, int64_t n_rot, double theta) {
    const cfg *c = m->c;
    char k[160];
    const cJSON *rs = cfg_get(c, "rope_scaling");
    if (!rs) rs = cfg_get(c, "rope_parameters");
    if (!rs) return TV_OK;
    if (!cJSON_IsObject(rs)) return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_scaling is not an object", c->path);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(ty)) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(ty) ? ty->valuestring : "default";
    double factor = 1, orig = (double)n_ctx, v;
    cfg_num(c, rs, "factor", &factor);
    if (!cfg_num(c, rs, "original_max_position_embeddings", &orig)) cfg_num(c, NULL, "original_max_position_embeddings", &orig);
    if (!(factor > 0 && orig >= 1))
        return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_scaling factor / original_max_position_embeddings invalid", c->path);
    if (!strcmp(type, "default")) return TV_OK;
    if (!strcmp(type, "linear")) {
        gguf_set_str(m->w, KEY(k, m->arch, "rope.scaling.type"), "linear");
        gguf_set_f32(m->w, KEY(k, m->arch, "rope.scaling.factor"), (float)factor);
        return TV_OK;
    }
    if (!strcmp(type, "yarn")) {
        gguf_set_str(m->w, KEY(k, m->arch, "rope.scaling.type"), "yarn");
        gguf_set_f32(m->w, KEY(k, m->arch, "rope.scaling.factor"), (float)factor);
        gguf_set_u32(m->w, KEY(k, m->arch, "rope.scaling.original_context_length"), (uint32_t)orig);
        opt_f32(m, rs, "beta_fast", "rope.scaling.yarn_beta_fast");
        opt_f32(m, rs, "beta_slow", "rope.scaling.yarn_beta_slow");
        opt_f32(m, rs, "mscale_all_dim", "rope.scaling.yarn_log_multiplier");
        opt_f32(m, rs, "attention_factor", "rope.scaling.attn_factor");
        opt_f32(m, rs, "llama_4_scaling_beta", "attention.temperature_scale");
        return TV_OK;
    }
    if (!strcmp(type, "llama3")) {
        double low = 1, high = 4;
        cfg_num(c, rs, "low_freq_factor", &low);
        cfg_num(c, rs, "high_freq_factor", &high);
        if (!(low > 0 && high > low) || n_rot / 2 > 512)
            return err_fail(m->err, TV_ERR_FORMAT, "%s: llama3 rope_scaling parameters invalid", c->path);
        float f[512];
        hf_llama3_rope_factors(f, (int)(n_rot / 2), (int)n_rot, theta, factor, low, high, orig);
        (void)head_dim;
        char desc[300];
        snprintf(desc, sizeof desc, "rope_scaling (llama3) of %s", c->path);
        return add_f32(m->h, "rope_freqs.weight", f, (int)(n_rot / 2), desc, m->err);
    }
    if (!strcmp(type, "longrope") || !strcmp(type, "su")) {
        tv_status st;
        if ((st = rope_list(m, rs, "short_factor", "rope_factors_short.weight", (int)(n_rot / 2))) ||
            (st = rope_list(m, rs, "long_factor", "rope_factors_long.weight", (int)(n_rot / 2))))
            return st;
        gguf_set_u32(m->w, KEY(k, m->arch, "rope.scaling.original_context_length"), (uint32_t)orig);
        double scale = (double)n_ctx / orig, attn = scale > 1 ? sqrt(1 + log(scale) / log(orig)) : 1;
        if (cfg_num(c, rs, "attention_factor", &v)) attn = v;
        gguf_set_f32(m->w, KEY(k, m->arch, "rope.scaling.attn_factor"), (float)attn);
        return TV_OK;
    }
    return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (linear, yarn, llama3, longrope)",
                    c->path, type);
}

// Gemma 3's sliding layers: layer_types (one per layer) or sliding_window_pattern (a period).
static tv_status gemma3_pattern(meta_ctx *m, int64_t n_layers) {
    char k[160];
    const cJSON *lt = cfg_get(m->c, "layer_types");
    double period;
    if (cJSON_IsArray(lt)) {
        if (cJSON_GetArraySize(lt) != n_layers || n_layers > 1024)
            return err_fail(m->err, TV_ERR_FORMAT, "%s: layer_types must list %lld layers", m->c->path, (long long)n_layers);
        bool swa[1024];
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) swa[i++] = cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
        gguf_set_arr_data(m->w, KEY(k, m->arch, "attention.sliding_window_pattern"), GGUF_TYPE_BOOL, swa, (uint64_t)n_layers);
    } else if (cfg_num(m->c, NULL, "sliding_window_pattern", &period)) {
        gguf_set_u32(m->w, KEY(k, m->arch, "attention.sliding_window_pattern"), (uint32_t)period);
    }
    return TV_OK;
}

// DeepSeek-V2/V3 (deepseek2): the latent attention's ranks and head sizes (one KV head of kv_lora +
// rope dims), dense leading layers, shared experts, routing (scoring_func, grouped top-k, scaled and
// normalized weights), YaRN's mscale_all_dim stored as 0.1 x (llama.cpp's DeepSeek rule).
static tv_status mla_metadata(meta_ctx *m) {
    const cfg *c = m->c;
    char k[160];
    int64_t q_lora = 0, kv_lora = 0, nope = 0, rope = 0, v = 0, n_shared = 0, n_dense = 0, n_layers = 0, n_group = 1, n_group_used = 1;
    tv_status st;
    if ((st = cfg_int(c, "q_lora_rank", false, 1, 1 << 16, &q_lora, m->err)) ||
        (st = cfg_int(c, "kv_lora_rank", true, 1, 1 << 16, &kv_lora, m->err)) ||
        (st = cfg_int(c, "qk_nope_head_dim", true, 1, 1024, &nope, m->err)) ||
        (st = cfg_int(c, "qk_rope_head_dim", true, 2, 1024, &rope, m->err)) ||
        (st = cfg_int(c, "v_head_dim", true, 1, 1024, &v, m->err)) ||
        (st = cfg_int(c, "n_shared_experts", false, 0, 64, &n_shared, m->err)) ||
        (st = cfg_int(c, "first_k_dense_replace", false, 0, 1024, &n_dense, m->err)) ||
        (st = cfg_int(c, "num_hidden_layers", true, 1, 1024, &n_layers, m->err)) ||
        (st = cfg_int(c, "n_group", false, 1, 1024, &n_group, m->err)) ||
        (st = cfg_int(c, "topk_group", false, 1, n_group, &n_group_used, m->err)))
        return st;
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.head_count_kv"), 1);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.key_length"), (uint32_t)(kv_lora + rope));
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.value_length"), (uint32_t)kv_lora);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.key_length_mla"), (uint32_t)(nope + rope));
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.value_length_mla"), (uint32_t)v);
    // q_lora_rank null (V2-Lite: queries projected directly) is written as 0: llama.cpp requires the key
    // unless it guesses "lite" from the layer count
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.q_lora_rank"), (uint32_t)q_lora);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.kv_lora_rank"), (uint32_t)kv_lora);
    gguf_set_u32(m->w, KEY(k, m->arch, "rope.dimension_count"), (uint32_t)rope);
    gguf_set_u32(m->w, KEY(k, m->arch, "leading_dense_block_count"), (uint32_t)n_dense);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_shared_count"), (uint32_t)n_shared);
    opt_f32(m, NULL, "routed_scaling_factor", "expert_weights_scale");
    if (cJSON_IsTrue(cfg_get(c, "norm_topk_prob"))) gguf_set_bool(m->w, KEY(k, m->arch, "expert_weights_norm"), true);
    const cJSON *sf = cfg_get(c, "scoring_func");
    if (sf) {
        if (!cJSON_IsString(sf) || (strcmp(sf->valuestring, "sigmoid") && strcmp(sf->valuestring, "softmax")))
            return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: scoring_func must be \"sigmoid\" or \"softmax\"", c->path);
        gguf_set_u32(m->w, KEY(k, m->arch, "expert_gating_func"), strcmp(sf->valuestring, "sigmoid") ? 1 : 2);
    }
    if (n_group > 1) {   // one group is no grouping
        gguf_set_u32(m->w, KEY(k, m->arch, "expert_group_count"), (uint32_t)n_group);
        gguf_set_u32(m->w, KEY(k, m->arch, "expert_group_used_count"), (uint32_t)n_group_used);
    }
    const cJSON *rs = cfg_get(c, "rope_scaling");
    double mscale_all;
    if (cJSON_IsObject(rs) && cfg_num(c, rs, "mscale_all_dim", &mscale_all))
        gguf_set_f32(m->w, KEY(k, m->arch, "rope.scaling.yarn_log_multiplier"), (float)(0.1 * mscale_all));
    m->h->n_main_layers = n_layers;
    m->h->mla_nope = nope;
    m->h->mla_v = v;
    return TV_OK;
}

// The expert counts and widths (convert_hf_to_gguf.py's keys): num_local_experts (Mixtral) or
// num_experts, num_experts_per_tok, moe_intermediate_size, shared_expert_intermediate_size.
// Qwen's decoder_sparse_step / mlp_only_layers (dense layers between MoE ones) are refused:
// llama.cpp's qwen2moe / qwen3moe have experts in every layer.
static tv_status moe_metadata(meta_ctx *m) {
    const cfg *c = m->c;
    char k[160];
    int64_t n_expert = 0, n_used = 0, ff_exp = 0, ff_shexp = 0, step = 1;
    const char *count_key = cfg_get(c, "num_local_experts") ? "num_local_experts" : cfg_get(c, "n_routed_experts") ? "n_routed_experts" : "num_experts";
    tv_status st;
    if ((st = cfg_int(c, count_key, true, 1, 1 << 16, &n_expert, m->err)) ||
        (st = cfg_int(c, "num_experts_per_tok", true, 1, n_expert, &n_used, m->err)) ||
        (st = cfg_int(c, "moe_intermediate_size", false, 1, 1 << 20, &ff_exp, m->err)) ||
        (st = cfg_int(c, "shared_expert_intermediate_size", false, 1, 1 << 20, &ff_shexp, m->err)) ||
        (st = cfg_int(c, "decoder_sparse_step", false, 1, 1024, &step, m->err)))
        return st;
    const cJSON *dense = cfg_get(c, "mlp_only_layers");
    if (step != 1 || cJSON_GetArraySize(dense) > 0)
        return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: dense layers between the MoE ones (decoder_sparse_step %lld, mlp_only_layers) "
                        "are not supported (llama.cpp's %s has experts in every layer)", c->path, (long long)step, m->arch);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_count"), (uint32_t)n_expert);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_used_count"), (uint32_t)n_used);
    if (ff_exp) gguf_set_u32(m->w, KEY(k, m->arch, "expert_feed_forward_length"), (uint32_t)ff_exp);
    if (ff_exp) m->h->ff_exp = ff_exp;
    if (ff_shexp) gguf_set_u32(m->w, KEY(k, m->arch, "expert_shared_feed_forward_length"), (uint32_t)ff_shexp);
    if (m->flags & HF_MLA) return mla_metadata(m);
    if (strcmp(m->arch, "glm4moe")) return TV_OK;
    // GLM-4.5: shared experts, dense leading layers, sigmoid routing with a selection bias, scaled
    // and normalized weights, the MTP layers after num_hidden_layers (counted in block_count)
    int64_t n_shared = 0, n_dense = 0, n_nextn = 0, n_layers = 0, n_group = 1, n_group_used = 1;
    if ((st = cfg_int(c, "n_shared_experts", false, 0, 64, &n_shared, m->err)) ||
        (st = cfg_int(c, "first_k_dense_replace", false, 0, 1024, &n_dense, m->err)) ||
        (st = cfg_int(c, "num_nextn_predict_layers", false, 0, 16, &n_nextn, m->err)) ||
        (st = cfg_int(c, "num_hidden_layers", true, 1, 1024, &n_layers, m->err)) ||
        (st = cfg_int(c, "n_group", false, 1, 1024, &n_group, m->err)) ||
        (st = cfg_int(c, "topk_group", false, 1, n_group, &n_group_used, m->err)))
        return st;
    gguf_set_u32(m->w, KEY(k, m->arch, "block_count"), (uint32_t)(n_layers + n_nextn));
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_shared_count"), (uint32_t)n_shared);
    gguf_set_u32(m->w, KEY(k, m->arch, "leading_dense_block_count"), (uint32_t)n_dense);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_gating_func"), 2);   // sigmoid
    opt_f32(m, NULL, "routed_scaling_factor", "expert_weights_scale");
    const cJSON *norm = cfg_get(c, "norm_topk_prob");
    if (cJSON_IsBool(norm)) gguf_set_bool(m->w, KEY(k, m->arch, "expert_weights_norm"), cJSON_IsTrue(norm));
    if (n_nextn) gguf_set_u32(m->w, KEY(k, m->arch, "nextn_predict_layers"), (uint32_t)n_nextn);
    if (n_group > 1) {   // one group is no grouping
        gguf_set_u32(m->w, KEY(k, m->arch, "expert_group_count"), (uint32_t)n_group);
        gguf_set_u32(m->w, KEY(k, m->arch, "expert_group_used_count"), (uint32_t)n_group_used);
    }
    return TV_OK;
}

// Qwen3.5 (qwen35): the Gated DeltaNet's sizes, the full-attention period (layer_types must be
// linear_attention but every full_attention_interval-th), the M-RoPE sections (llama.cpp's default
// [11, 11, 10] when rope_parameters has none).
static tv_status hybrid_metadata(meta_ctx *m, int64_t n_layers) {
    const cfg *c = m->c;
    char k[160];
    int64_t conv = 0, kd = 0, vd = 0, nk = 0, nv = 0, interval = 4;
    tv_status st;
    if ((st = cfg_int(c, "linear_conv_kernel_dim", true, 1, 64, &conv, m->err)) ||
        (st = cfg_int(c, "linear_key_head_dim", true, 1, 4096, &kd, m->err)) ||
        (st = cfg_int(c, "linear_value_head_dim", true, 1, 4096, &vd, m->err)) ||
        (st = cfg_int(c, "linear_num_key_heads", true, 1, 1024, &nk, m->err)) ||
        (st = cfg_int(c, "linear_num_value_heads", true, 1, 1024, &nv, m->err)) ||
        (st = cfg_int(c, "full_attention_interval", false, 1, 1024, &interval, m->err)))
        return st;
    if (nv % nk)
        return err_fail(m->err, TV_ERR_FORMAT, "%s: linear_num_value_heads %lld is not a multiple of linear_num_key_heads %lld",
                        c->path, (long long)nv, (long long)nk);
    const cJSON *lt = cfg_get(c, "layer_types");
    if (lt) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != n_layers)
            return err_fail(m->err, TV_ERR_FORMAT, "%s: layer_types must list %lld layers", c->path, (long long)n_layers);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            const char *want = (i + 1) % interval ? "linear_attention" : "full_attention";
            if (!cJSON_IsString(e) || strcmp(e->valuestring, want))
                return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: layer_types[%d] is not \"%s\": llama.cpp's qwen35 has full attention "
                                "exactly every full_attention_interval (%lld)-th layer", c->path, i, want, (long long)interval);
            i++;
        }
    }
    gguf_set_u32(m->w, KEY(k, m->arch, "ssm.conv_kernel"), (uint32_t)conv);
    gguf_set_u32(m->w, KEY(k, m->arch, "ssm.state_size"), (uint32_t)kd);
    gguf_set_u32(m->w, KEY(k, m->arch, "ssm.group_count"), (uint32_t)nk);
    gguf_set_u32(m->w, KEY(k, m->arch, "ssm.time_step_rank"), (uint32_t)nv);
    gguf_set_u32(m->w, KEY(k, m->arch, "ssm.inner_size"), (uint32_t)(vd * nv));
    gguf_set_u32(m->w, KEY(k, m->arch, "full_attention_interval"), (uint32_t)interval);
    int32_t sections[4] = {11, 11, 10, 0};
    const cJSON *rp = cfg_get(c, "rope_parameters");
    if (!rp) rp = cfg_get(c, "rope_scaling");
    const cJSON *ms = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "mrope_section") : NULL;
    if (ms) {
        if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) < 1 || cJSON_GetArraySize(ms) > 4)
            return err_fail(m->err, TV_ERR_FORMAT, "%s: mrope_section must list 1 to 4 integers", c->path);
        memset(sections, 0, sizeof sections);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ms) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1024 || e->valuedouble != floor(e->valuedouble))
                return err_fail(m->err, TV_ERR_FORMAT, "%s: mrope_section[%d] is not an integer in [0, 1024]", c->path, i);
            sections[i++] = (int32_t)e->valuedouble;
        }
    }
    if (!(m->flags & HF_QKVZ))   // (Qwen3-Next: plain NeoX RoPE, no sections)
        gguf_set_arr_data(m->w, KEY(k, m->arch, "rope.dimension_sections"), GGUF_TYPE_INT32, sections, 4);
    m->h->lin_grouped = (m->flags & HF_QKVZ) != 0;
    m->h->lin_k = nk;
    m->h->lin_v = nv;
    m->h->lin_kd = kd;
    m->h->lin_vd = vd;
    return TV_OK;
}

// gpt-oss: its sliding window (llama.cpp's gpt-oss slides on even layers: layer_types, when given, must
// say so) and the experts' width, intermediate_size (convert_hf_to_gguf.py's GptOssModel).
static tv_status gptoss_metadata(meta_ctx *m, int64_t n_layers, int64_t ff) {
    char k[160];
    int64_t win = 0;
    tv_status st = cfg_int(m->c, "sliding_window", true, 1, INT32_MAX, &win, m->err);
    if (st) return st;
    const cJSON *lt = cfg_get(m->c, "layer_types"), *e;
    if (lt && (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != n_layers))
        return err_fail(m->err, TV_ERR_FORMAT, "%s: layer_types must list %lld layers", m->c->path, (long long)n_layers);
    int i = 0;
    cJSON_ArrayForEach(e, lt) {
        const char *want = i % 2 ? "full_attention" : "sliding_attention";
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want))
            return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: layer_types[%d] is not \"%s\": llama.cpp's gpt-oss slides on the "
                            "even layers", m->c->path, i, want);
        i++;
    }
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.sliding_window"), (uint32_t)win);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_feed_forward_length"), (uint32_t)ff);
    m->h->ff_exp = ff;
    return TV_OK;
}

// One of Gemma 4's rope_parameters: rope_parameters.<layer_type> (transformers' defaults when config.json
// has no rope_parameters: full_attention proportional over a quarter at theta 1e6, sliding_attention
// default at 1e4); *type must be want, theta and factor are read when present.
static tv_status gemma4_rope(meta_ctx *m, const char *layer_type, const char *want, double *theta, double *prf) {
    const cJSON *rp = cfg_get(m->c, "rope_parameters");
    if (!rp) return TV_OK;
    const cJSON *o = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, layer_type) : NULL;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "rope_type");
    if (!cJSON_IsObject(o) || !cJSON_IsString(ty))
        return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_parameters.%s.rope_type is missing (Gemma 4 has RoPE per layer type)",
                        m->c->path, layer_type);
    if (strcmp(ty->valuestring, want))
        return err_fail(m->err, TV_ERR_UNSUPPORTED, "%s: rope_parameters.%s.rope_type '%s' is not supported (Gemma 4's is '%s')",
                        m->c->path, layer_type, ty->valuestring, want);
    cfg_num(m->c, o, "rope_theta", theta);
    if (prf) cfg_num(m->c, o, "partial_rotary_factor", prf);
    if (!(*theta > 0) || (prf && !(*prf > 0 && *prf <= 1)))
        return err_fail(m->err, TV_ERR_FORMAT, "%s: rope_parameters.%s: rope_theta / partial_rotary_factor out of range", m->c->path,
                        layer_type);
    return TV_OK;
}

// Gemma 4 with experts (enable_moe_block: 26B-A4B): every layer runs them beside its dense MLP. The keys
// as convert_hf_to_gguf.py finds them: the count (num_local_experts, num_experts, n_routed_experts), the
// experts per token (num_experts_per_tok, num_experts_per_token, top_k_experts) and their width
// (expert_intermediate_size, moe_intermediate_size) -> expert_count, expert_used_count,
// expert_feed_forward_length. llama.cpp's gemma4 routes by softmax, top-k weights divided by their sum.
static tv_status gemma4_moe_metadata(meta_ctx *m, int64_t n_layers) {
    const cfg *c = m->c;
    static const char *const COUNT[] = {"num_local_experts", "num_experts", "n_routed_experts"};
    static const char *const USED[] = {"num_experts_per_tok", "num_experts_per_token", "top_k_experts"};
    static const char *const WIDTH[] = {"expert_intermediate_size", "moe_intermediate_size"};
    const char *count_key = COUNT[1], *used_key = USED[2], *width_key = WIDTH[1];   // (Gemma 4's own, for messages)
    for (int i = 2; i >= 0; i--) if (cfg_get(c, COUNT[i])) count_key = COUNT[i];
    for (int i = 2; i >= 0; i--) if (cfg_get(c, USED[i])) used_key = USED[i];
    for (int i = 1; i >= 0; i--) if (cfg_get(c, WIDTH[i])) width_key = WIDTH[i];
    int64_t n_expert = 0, n_used = 0, ff_exp = 0;
    char k[160];
    tv_status st;
    if ((st = cfg_int(c, count_key, true, 1, 1 << 16, &n_expert, m->err)) ||
        (st = cfg_int(c, used_key, true, 1, n_expert, &n_used, m->err)) ||
        (st = cfg_int(c, width_key, true, 1, 1 << 20, &ff_exp, m->err)))
        return st;
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_count"), (uint32_t)n_expert);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_used_count"), (uint32_t)n_used);
    gguf_set_u32(m->w, KEY(k, m->arch, "expert_feed_forward_length"), (uint32_t)ff_exp);
    m->h->n_expert = n_expert;
    m->h->ff_exp = ff_exp;
    m->h->gemma4_moe_layers = n_layers;
    return TV_OK;
}

// Gemma 4 (convert_hf_to_gguf.py's Gemma4Model): sliding layers from layer_types (transformers'
// default: every sixth global, the last always), global layers with global_head_dim, their own KV
// heads (num_global_key_value_heads) and proportional RoPE (rope_freqs: 1 for the rotated quarter's
// pairs, 1e30 holding the rest still), sliding ones with head_dim at rope_parameters.sliding_attention's
// base; the last num_kv_shared_layers layers reuse earlier KV, with use_double_wide_mlp twice the FFN;
// per-layer inputs of hidden_size_per_layer_input; experts beside the dense MLP (gemma4_moe_metadata).
static tv_status gemma4_metadata(meta_ctx *m, int64_t n_layers, int64_t ff, int64_t kv_heads, int64_t head_dim) {
    const cfg *c = m->c;
    char k[160];
    int64_t global_hd = 0, n_shared = 0, n_pl = 0, kv_global = 0, win = 0;
    tv_status st;
    if (cJSON_IsTrue(cfg_get(c, "enable_moe_block")) && (st = gemma4_moe_metadata(m, n_layers))) return st;
    if (!cfg_get(c, "head_dim")) return err_fail(m->err, TV_ERR_FORMAT, "%s: head_dim is missing or not an integer", c->path);
    if ((st = cfg_int(c, "global_head_dim", true, 2, 1024, &global_hd, m->err)) ||
        (st = cfg_int(c, "num_kv_shared_layers", false, 0, n_layers - 1, &n_shared, m->err)) ||
        (st = cfg_int(c, "hidden_size_per_layer_input", false, 0, 1 << 16, &n_pl, m->err)) ||
        (st = cfg_int(c, "num_global_key_value_heads", false, 1, 1024, &kv_global, m->err)) ||
        (st = cfg_int(c, "sliding_window", true, 1, INT32_MAX, &win, m->err)))
        return st;
    if (n_layers > 1024) return err_fail(m->err, TV_ERR_FORMAT, "%s: num_hidden_layers %lld: at most 1024", c->path, (long long)n_layers);
    bool swa[1024];
    const cJSON *lt = cfg_get(c, "layer_types"), *e;
    if (lt && (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != n_layers))
        return err_fail(m->err, TV_ERR_FORMAT, "%s: layer_types must list %lld layers", c->path, (long long)n_layers);
    for (int64_t l = 0; l < n_layers; l++) swa[l] = (l + 1) % 6 != 0;   // transformers' default
    int i = 0;
    cJSON_ArrayForEach(e, lt) {
        if (!cJSON_IsString(e) || (strcmp(e->valuestring, "sliding_attention") && strcmp(e->valuestring, "full_attention")))
            return err_fail(m->err, TV_ERR_FORMAT, "%s: layer_types[%d] is not \"sliding_attention\" or \"full_attention\"", c->path, i);
        swa[i++] = !strcmp(e->valuestring, "sliding_attention");
    }
    swa[n_layers - 1] = false;   // (transformers forces the last layer global)
    double theta = 1000000.0, theta_swa = 10000.0, prf = 0.25;
    if ((st = gemma4_rope(m, "full_attention", "proportional", &theta, &prf)) ||
        (st = gemma4_rope(m, "sliding_attention", "default", &theta_swa, NULL)))
        return st;
    gguf_set_arr_data(m->w, KEY(k, m->arch, "attention.sliding_window_pattern"), GGUF_TYPE_BOOL, swa, (uint64_t)n_layers);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.sliding_window"), (uint32_t)win);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.key_length"), (uint32_t)global_hd);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.value_length"), (uint32_t)global_hd);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.key_length_swa"), (uint32_t)head_dim);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.value_length_swa"), (uint32_t)head_dim);
    gguf_set_u32(m->w, KEY(k, m->arch, "rope.dimension_count"), (uint32_t)global_hd);
    gguf_set_u32(m->w, KEY(k, m->arch, "rope.dimension_count_swa"), (uint32_t)head_dim);
    gguf_set_f32(m->w, KEY(k, m->arch, "rope.freq_base"), (float)theta);
    gguf_set_f32(m->w, KEY(k, m->arch, "rope.freq_base_swa"), (float)theta_swa);
    gguf_set_u32(m->w, KEY(k, m->arch, "attention.shared_kv_layers"), (uint32_t)n_shared);
    gguf_set_u32(m->w, KEY(k, m->arch, "embedding_length_per_layer_input"), (uint32_t)n_pl);
    opt_f32(m, NULL, "final_logit_softcapping", "final_logit_softcapping");
    if (cJSON_IsTrue(cfg_get(c, "use_double_wide_mlp"))) {
        uint32_t ffs[1024];
        for (int64_t l = 0; l < n_layers; l++) ffs[l] = (uint32_t)(l < n_layers - n_shared ? ff : 2 * ff);
        gguf_set_arr_data(m->w, KEY(k, m->arch, "feed_forward_length"), GGUF_TYPE_UINT32, ffs, (uint64_t)n_layers);
    }
    if (kv_global) {
        int32_t kv[1024];
        for (int64_t l = 0; l < n_layers; l++) kv[l] = (int32_t)(swa[l] ? kv_heads : kv_global);
        gguf_set_arr_data(m->w, KEY(k, m->arch, "attention.head_count_kv"), GGUF_TYPE_INT32, kv, (uint64_t)n_layers);
    }
    float f[512];
    const int n_half = (int)(global_hd / 2), n_rot = (int)((double)global_hd * prf / 2);
    for (int j = 0; j < n_half; j++) f[j] = j < n_rot ? 1.0f : 1e30f;
    char desc[300];
    snprintf(desc, sizeof desc, "rope_parameters.full_attention (proportional) of %s", c->path);
    return add_f32(m->h, "rope_freqs.weight", f, n_half, desc, m->err);
}

static tv_status build_metadata(meta_ctx *m, const char *model_type) {
    const cfg *c = m->c;
    gguf_writer *w = m->w;
    tv_error *err = m->err;
    char k[160];
    int64_t dim = 0, n_layers = 0, ff = 0, heads = 0, kv_heads = 0, ctx = 0, head_dim = 0, vocab = 0;
    tv_status st;
    if ((st = cfg_int(c, "hidden_size", true, 1, 1 << 16, &dim, err)) ||
        (st = cfg_int(c, "num_hidden_layers", true, 1, 1024, &n_layers, err)) ||
        (st = cfg_int(c, "intermediate_size", true, 1, 1 << 20, &ff, err)) ||
        (st = cfg_int(c, "num_attention_heads", true, 1, 1024, &heads, err)) ||
        (st = cfg_int(c, "max_position_embeddings", true, 1, INT32_MAX, &ctx, err)) ||
        (st = cfg_int(c, "num_key_value_heads", false, 1, 1024, &kv_heads, err)) ||
        (st = cfg_int(c, "head_dim", false, 1, 1024, &head_dim, err)) ||
        (st = cfg_int(c, "vocab_size", false, 1, 1 << 24, &vocab, err)))
        return st;
    gguf_set_str(w, "general.architecture", m->arch);
    gguf_set_u32(w, KEY(k, m->arch, "context_length"), (uint32_t)ctx);
    gguf_set_u32(w, KEY(k, m->arch, "embedding_length"), (uint32_t)dim);
    gguf_set_u32(w, KEY(k, m->arch, "block_count"), (uint32_t)n_layers);
    gguf_set_u32(w, KEY(k, m->arch, "feed_forward_length"), (uint32_t)ff);
    gguf_set_u32(w, KEY(k, m->arch, "attention.head_count"), (uint32_t)heads);
    gguf_set_u32(w, KEY(k, m->arch, "attention.head_count_kv"), (uint32_t)(kv_heads ? kv_heads : heads));
    if (head_dim) {
        gguf_set_u32(w, KEY(k, m->arch, "attention.key_length"), (uint32_t)head_dim);
        gguf_set_u32(w, KEY(k, m->arch, "attention.value_length"), (uint32_t)head_dim);
    } else {
        head_dim = dim / heads;
    }
    if (vocab) gguf_set_u32(w, KEY(k, m->arch, "vocab_size"), (uint32_t)vocab);
    double prf = (m->flags & HF_HYBRID) ? 0.25 : 1, eps, theta = 10000;   // (Qwen3.5 rotates a quarter by default)
    const cJSON *rp = cfg_get(c, "rope_parameters");
    if (!cfg_num(c, NULL, "partial_rotary_factor", &prf) && cJSON_IsObject(rp)) cfg_num(c, rp, "partial_rotary_factor", &prf);
    if (!cfg_num(c, NULL, "rope_theta", &theta) && cJSON_IsObject(rp)) cfg_num(c, rp, "rope_theta", &theta);
    const int64_t n_rot = (int64_t)(prf * (double)head_dim);
    if (!(prf > 0 && prf <= 1) || n_rot < 2 || n_rot % 2)
        return err_fail(err, TV_ERR_FORMAT, "%s: partial_rotary_factor %g gives %lld rotary dims", c->path, prf, (long long)n_rot);
    gguf_set_u32(w, KEY(k, m->arch, "rope.dimension_count"), (uint32_t)n_rot);
    gguf_set_f32(w, KEY(k, m->arch, "rope.freq_base"), (float)theta);
    if (cfg_num(c, NULL, "rms_norm_eps", &eps)) gguf_set_f32(w, KEY(k, m->arch, "attention.layer_norm_rms_epsilon"), (float)eps);
    if ((st = rope_scaling(m, ctx, head_dim, n_rot, theta))) return st;

    if (!strcmp(m->arch, "gemma2") || !strcmp(m->arch, "gemma3")) {
        int64_t win = 0;
        if ((st = cfg_int(c, "sliding_window", false, 1, INT32_MAX, &win, err))) return st;
        if (win) gguf_set_u32(w, KEY(k, m->arch, "attention.sliding_window"), (uint32_t)win);
        opt_f32(m, NULL, "final_logit_softcapping", "final_logit_softcapping");
        if (!strcmp(m->arch, "gemma2")) opt_f32(m, NULL, "attn_logit_softcapping", "attn_logit_softcapping");
        else {
            opt_f32(m, NULL, "rope_local_base_freq", "rope.freq_base_swa");
            if ((st = gemma3_pattern(m, n_layers))) return st;
        }
    } else if (!strcmp(m->arch, "gemma4")) {
        if ((st = gemma4_metadata(m, n_layers, ff, kv_heads ? kv_heads : heads, head_dim))) return st;
    } else if (!strcmp(m->arch, "gpt-oss")) {
        if ((st = gptoss_metadata(m, n_layers, ff))) return st;
    } else if (!strcmp(m->arch, "granite")) {
        opt_f32(m, NULL, "embedding_multiplier", "embedding_scale");
        opt_f32(m, NULL, "residual_multiplier", "residual_scale");
        opt_f32(m, NULL, "attention_multiplier", "attention.scale");
        opt_f32(m, NULL, "logits_scaling", "logit_scale");
    }
    (void)model_type;
    m->h->dim = dim;
    if ((m->flags & HF_HYBRID) && (st = hybrid_metadata(m, n_layers))) return st;
    return (m->flags & HF_MOE) ? moe_metadata(m) : TV_OK;
}

// tokenizer_config.json's chat_template (a string, or a list of {name, template}: "default" or the
// first), else chat_template.jinja.
static tv_status chat_template(hf_model *h, gguf_writer *w, tv_error *err) {
    bool missing;
    cJSON *tc = hf_read_json(h->dir, "tokenizer_config.json", &missing, err);
    if (!tc && !missing) return err->code;
    const cJSON *ct = tc ? cJSON_GetObjectItemCaseSensitive(tc, "chat_template") : NULL;
    const char *tpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name"), *t = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(t)) continue;
            if (!tpl || (cJSON_IsString(n) && !strcmp(n->valuestring, "default"))) tpl = t->valuestring;
        }
    }
    if (tpl) gguf_set_str(w, "tokenizer.chat_template", tpl);
    cJSON_Delete(tc);
    if (tpl) return TV_OK;
    char *path = path_join(h->dir, "chat_template.jinja");
    FILE *f = path ? fopen(path, "rb") : NULL;
    free(path);
    if (!f) return TV_OK;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    buf[n] = 0;
    gguf_set_str(w, "tokenizer.chat_template", buf);
    free(buf);
    return TV_OK;
}

// generation_config.json's sampling defaults as llama.cpp's general.sampling.* keys (what a GGUF
// carries and tv_model_sampling_defaults reads): name, GGUF key, accepted range, integer or not.
static const struct { const char *name, *key; double lo, hi; bool is_int, lo_open; } GEN_SAMPLING[] = {
    {"temperature", "general.sampling.temp", 0, 100, false, false},
    {"top_p", "general.sampling.top_p", 0, 1, false, true},
    {"top_k", "general.sampling.top_k", 0, 1 << 30, true, false},
    {"min_p", "general.sampling.min_p", 0, 1, false, false},
    {"repetition_penalty", "general.sampling.penalty_repeat", 0, 100, false, true},
};

// generation_config.json: eos_token_id (int or list; else config.json's) and the sampling defaults.
static tv_status generation_config(hf_model *h, const cfg *c, gguf_writer *w, tv_error *err) {
    bool missing;
    cJSON *gc = hf_read_json(h->dir, "generation_config.json", &missing, err);
    if (!gc && !missing) return err->code;
    const cJSON *e = gc ? cJSON_GetObjectItemCaseSensitive(gc, "eos_token_id") : NULL;
    if (!e || cJSON_IsNull(e)) e = cfg_get(c, "eos_token_id");
    const cJSON *x;
    if (cJSON_IsNumber(e) && e->valueint >= 0) h->eos[h->n_eos++] = e->valueint;
    else if (cJSON_IsArray(e))
        cJSON_ArrayForEach(x, e) if (cJSON_IsNumber(x) && x->valueint >= 0 && h->n_eos < 16) h->eos[h->n_eos++] = x->valueint;
    if (h->n_eos) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)h->eos[0]);
    tv_status st = TV_OK;
    for (size_t i = 0; gc && i < sizeof GEN_SAMPLING / sizeof GEN_SAMPLING[0] && !st; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(gc, GEN_SAMPLING[i].name);
        if (!v || cJSON_IsNull(v)) continue;
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!cJSON_IsNumber(v) || !(d >= GEN_SAMPLING[i].lo && d <= GEN_SAMPLING[i].hi) || (GEN_SAMPLING[i].lo_open && d == GEN_SAMPLING[i].lo) ||
            (GEN_SAMPLING[i].is_int && d != floor(d))) {
            st = err_fail(err, TV_ERR_FORMAT, "%s/generation_config.json: %s is not %s in %c%g, %g]", h->dir, GEN_SAMPLING[i].name,
                          GEN_SAMPLING[i].is_int ? "an integer" : "a number", GEN_SAMPLING[i].lo_open ? '(' : '[', GEN_SAMPLING[i].lo,
                          GEN_SAMPLING[i].hi);
        } else if (GEN_SAMPLING[i].is_int) {
            gguf_set_i32(w, GEN_SAMPLING[i].key, (int32_t)d);
        } else {
            gguf_set_f32(w, GEN_SAMPLING[i].key, (float)d);
        }
    }
    cJSON_Delete(gc);
    return st;
}

bool hf_is_model_dir(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return false;
    char *cfg_path = path_join(path, "config.json");
    bool ok = cfg_path && access(cfg_path, R_OK) == 0;
    free(cfg_path);
    return ok;
}

void hf_close(hf_model *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) {
        free(h->t[i].owned);
        free(h->t[i].desc);
    }
    free(h->t);
    gguf_close(h->meta);
    st_set_close(h->st);
    free(h->tok_dir);
    free(h->dir);
    free(h);
}

// A scale of an FP8 weight ("X.weight_scale_inv", "X.weight_scale") or its static activation scale
// ("X.input_scale"), when X.weight is F8_E4M3.
static bool is_fp8_companion(const st_set *set, const char *name) {
    static const char *const SUFFIX[] = {"_scale_inv", "_scale"};
    char base[512];
    size_t n = strlen(name);
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(SUFFIX[i]);
        if (n > k && n - k + 2 < sizeof base && !strcmp(name + n - k, SUFFIX[i])) {
            memcpy(base, name, n - k);
            base[n - k] = 0;
            if (ends_with(base, ".input")) memcpy(base + n - k - 5, "weight", 7);   // X.input_scale -> X.weight
            const st_tensor *w = st_set_find(set, base);
            return w && w->dtype == ST_F8_E4M3;
        }
    }
    return false;
}

// Gemma 4's router and expert-side vectors (GEMMA4_MOE) against config.json: router.proj [E, dim],
// router.scale and the three norms [dim], router.per_expert_scale [E]; none without enable_moe_block.
static tv_status check_gemma4_router(const hf_model *h, const st_tensor *s, const char *gguf, tv_error *err) {
    const char *part = strchr(gguf + 4, '.');   // "blk.N.<part>"
    size_t i = 0;
    while (i < N_GEMMA4_MOE && (!part || strcmp(part + 1, GEMMA4_MOE[i].gguf))) i++;
    if (i == N_GEMMA4_MOE) return TV_OK;
    if (!h->n_expert)
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' belongs to the experts, but config.json's enable_moe_block is not true",
                        s->file, s->name);
    const bool router = !strcmp(GEMMA4_MOE[i].gguf, "ffn_gate_inp.weight"), per_expert = !strcmp(GEMMA4_MOE[i].gguf, "ffn_down_exps.scale");
    if (router && (s->n_dims != 2 || s->shape[0] != h->n_expert || s->shape[1] != h->dim))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld, %lld]: config.json's %lld experts by hidden_size %lld",
                        s->file, s->name, (long long)h->n_expert, (long long)h->dim, (long long)h->n_expert, (long long)h->dim);
    const int64_t n = per_expert ? h->n_expert : h->dim;   // (the fused experts are map_fused_experts')
    if (!router && (s->n_dims != 1 || s->shape[0] != n))
        return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' is not [%lld]: config.json's %s %lld", s->file, s->name, (long long)n,
                        per_expert ? "expert count" : "hidden_size", (long long)n);
    return TV_OK;
}

// Gemma 4 with experts: every layer has every GEMMA4_MOE tensor (an absent one named as the folder's).
static tv_status check_gemma4_moe(const hf_model *h, tv_error *err) {
    char gguf[96];
    for (int64_t l = 0; l < h->gemma4_moe_layers; l++)
        for (size_t i = 0; i < N_GEMMA4_MOE; i++) {
            snprintf(gguf, sizeof gguf, "blk.%lld.%s", (long long)l, GEMMA4_MOE[i].gguf);
            if (!hf_find_tensor(h, gguf))
                return err_fail(err, TV_ERR_FORMAT, "%s: tensor '%slayers.%lld.%s' is missing (%s; config.json's enable_moe_block: "
                                "every layer has experts)", h->dir, h->layer_prefix, (long long)l, GEMMA4_MOE[i].hf, gguf);
        }
    return TV_OK;
}

// Opens the safetensors and maps every tensor to its GGUF name (h->t, sorted by that name).
static tv_status map_tensors(hf_model *h, const hf_arch *a, const cfg *cp, tv_error *err) {
    if (!(h->st = st_set_open(h->dir, err))) return err ? err->code : TV_ERR_FORMAT;
    const cJSON *tie = cfg_get(cp, "tie_word_embeddings");
    const bool tied = cJSON_IsTrue(tie);
    const cJSON *td = cfg_get(cp, "torch_dtype");
    if (!td) td = cfg_get(cp, "dtype");
    const char *torch_dtype = cJSON_IsString(td) && (!strcmp(td->valuestring, "float32") || !strcmp(td->valuestring, "float16") ||
                                                     !strcmp(td->valuestring, "bfloat16"))
                                  ? td->valuestring
                                  : NULL;
    int64_t heads = 0, kv_heads = 0, n_expert = 0;
    cfg_int(cp, "num_attention_heads", true, 1, 1024, &heads, NULL);
    static const char *const COUNT_KEYS[] = {"num_local_experts", "n_routed_experts", "num_experts"};
    for (size_t i = 0; i < 3 && !n_expert; i++) cfg_int(cp, COUNT_KEYS[i], false, 1, 1 << 16, &n_expert, NULL);
    if (!(a->flags & HF_GEMMA4)) h->n_expert = n_expert;   // (Gemma 4's only with enable_moe_block: gemma4_moe_metadata)
    cfg_int(cp, "num_key_value_heads", false, 1, 1024, &kv_heads, NULL);
    if (!kv_heads) kv_heads = heads;
    const cJSON *qc = cfg_get(cp, "quantization_config");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(qc, "weight_block_size");
    if (cJSON_GetArraySize(bs) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(bs, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(bs, 1))) {
        h->fp8_block[0] = (int64_t)cJSON_GetArrayItem(bs, 0)->valuedouble;
        h->fp8_block[1] = (int64_t)cJSON_GetArrayItem(bs, 1)->valuedouble;
    }
    hf_stack *stacks = NULL;   // the 3-D expert tensors being gathered
    int n_stacks = 0;
    tv_status st = TV_OK;
    for (int64_t i = 0; i < st_set_n_tensors(h->st) && !st; i++) {
        const st_tensor *s = st_set_tensor(h->st, i);
        if (is_fp8_companion(h->st, s->name)) continue;   // read with its weight
        char gguf[96];
        int expert;
        int r = map_name(a, s->name, tied, h->n_main_layers, gguf, sizeof gguf, &expert);
        if (r == 0) continue;
        const char *at = strstr(s->name, "layers.");
        if (!h->layer_prefix[0] && at && (size_t)(at - s->name) < sizeof h->layer_prefix)
            snprintf(h->layer_prefix, sizeof h->layer_prefix, "%.*s", (int)(at - s->name), s->name);
        if (r < 0) st = err_fail(err, TV_ERR_FORMAT, "%s: tensor '%s' has no counterpart in the %s architecture", s->file, s->name, a->arch);
        else if (r == 2) st = map_fused_experts(h, a, s, gguf, torch_dtype, err);
        else if ((a->flags & HF_GEMMA4) && (st = check_gemma4_router(h, s, gguf, err))) break;
        else if (expert >= 0) st = stack_expert(h, &stacks, &n_stacks, s, gguf, expert, n_expert, torch_dtype, err);
        else st = map_tensor(h, a, s, gguf, (int)heads, (int)kv_heads, torch_dtype, err);
    }
    if (!st) st = check_stacks(h, stacks, n_stacks, n_expert, err);
    for (int i = 0; i < n_stacks; i++) free(stacks[i].seen);
    free(stacks);
    if (st) return st;
    qsort(h->t, (size_t)h->n, sizeof *h->t, cmp_hf_tensor);
    for (int i = 1; i < h->n; i++)
        if (!strcmp(h->t[i].gguf, h->t[i - 1].gguf))
            return err_fail(err, TV_ERR_FORMAT, "%s: tensors '%s' and '%s' both map to %s", h->dir, h->t[i - 1].desc, h->t[i].desc,
                            h->t[i].gguf);
    return check_gemma4_moe(h, err);
}

static hf_model *open_folder(const char *dir, bool with_tensors, tv_error *err) {
    hf_model *h = calloc(1, sizeof *h);
    cJSON *root = NULL;
    gguf_writer *w = NULL;
    char *cfg_path = NULL;
    tv_status st = TV_OK;
    if (!h || !(h->dir = strdup(dir)) || !(cfg_path = path_join(dir, "config.json"))) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t dl = strlen(h->dir);
    while (dl > 1 && h->dir[dl - 1] == '/') h->dir[--dl] = 0;
    bool missing;
    if (!(root = hf_read_json(h->dir, "config.json", &missing, err))) {
        if (missing) err_fail(err, TV_ERR_FORMAT, "%s: missing (a Hugging Face model folder needs config.json)", cfg_path);
        goto fail;
    }
    cfg c = {.root = root, .text = cJSON_GetObjectItemCaseSensitive(root, "text_config"), .path = cfg_path};
    if (!cJSON_IsObject(c.text)) c.text = NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *tmt = c.text ? cJSON_GetObjectItemCaseSensitive(c.text, "model_type") : NULL;
    const hf_arch *a = NULL;
    for (size_t i = 0; i < N_ARCHS && !a; i++)
        if (cJSON_IsString(mt) && !strcmp(mt->valuestring, ARCHS[i].model_type)) a = &ARCHS[i];
    for (size_t i = 0; i < N_ARCHS && !a; i++)
        if (cJSON_IsString(tmt) && !strcmp(tmt->valuestring, ARCHS[i].model_type)) a = &ARCHS[i];
    if (!a) {
        char list[400];
        size_t n = 0;
        list[0] = 0;
        for (size_t i = 0; i < N_ARCHS; i++) n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", ARCHS[i].model_type);
        err_fail(err, TV_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (supported: %s)", cfg_path,
                 cJSON_IsString(mt) ? mt->valuestring : "(missing)", list);
        goto fail;
    }
    if (!(w = gguf_writer_create())) { err_fail(err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    const char *base = strrchr(h->dir, '/');
    gguf_set_str(w, "general.name", base ? base + 1 : h->dir);
    meta_ctx m = {.h = h, .c = &c, .w = w, .arch = a->arch, .flags = a->flags, .err = err};
    if ((st = build_metadata(&m, a->model_type)) || (st = chat_template(h, w, err)) || (st = generation_config(h, &c, w, err)))
        goto fail;

    if (with_tensors && (st = map_tensors(h, a, &c, err))) goto fail;
    char *tok = path_join(h->dir, "tokenizer.json");
    if (tok && access(tok, R_OK) == 0) h->tok_dir = strdup(h->dir);
    free(tok);

    void *buf;
    size_t size;
    if ((st = gguf_writer_write_memory(w, &buf, &size, err))) goto fail;
    if (!(h->meta = gguf_open_buffer(buf, size, cfg_path, err))) goto fail;
    gguf_writer_free(w);
    cJSON_Delete(root);
    free(cfg_path);
    return h;
fail:
    gguf_writer_free(w);
    cJSON_Delete(root);
    free(cfg_path);
    hf_close(h);
    return NULL;
}

hf_model *hf_open(const char *dir, tv_error *err) { return open_folder(dir, true, err); }

hf_model *hf_open_metadata(const char *dir, tv_error *err) { return open_folder(dir, false, err); }

gguf_ctx *hf_metadata(const hf_model *h) { return h->meta; }

int hf_n_tensors(const hf_model *h) { return h->n; }

const tv_tensor *hf_tensor_at(const hf_model *h, int i, const char **gguf_name) {
    if (i < 0 || i >= h->n) return NULL;
    *gguf_name = h->t[i].gguf;
    return &h->t[i].t;
}

bool hf_release(hf_model *h, const void *data) {
    for (int i = 0; i < h->n; i++)
        if (h->t[i].owned && h->t[i].owned == data) {
            free(h->t[i].owned);
            h->t[i].owned = NULL;
            h->t[i].t.data = NULL;
            return true;
        }
    return false;
}
const char *hf_tokenizer_dir(const hf_model *h) { return h->tok_dir; }

int hf_eos_ids(const hf_model *h, const int32_t **ids) {
    *ids = h->eos;
    return h->n_eos;
}

void hf_identity(const hf_model *h, uint64_t *bytes, int64_t *mtime_ns) {
    *bytes = st_set_data_bytes(h->st);
    *mtime_ns = st_set_mtime_ns(h->st);
}

const tv_tensor *hf_find_tensor(const hf_model *h, const char *gguf_name) {
    int lo = 0, hi = h->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(h->t[mid].gguf, gguf_name);
        if (!c) return &h->t[mid].t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
