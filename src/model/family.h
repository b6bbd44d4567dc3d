// family.h — the model-family registry: what a GGUF `general.architecture` means to tinyvllm.
//
// A family is data plus one function:
//   archs    the `general.architecture` values it answers to ("llama", "mistral")
//   keys     its hyperparameters: metadata key (after "<arch>."), the tv_hparams field it sets,
//            required or defaulted, and the accepted range; model.c reads and checks every one
//   tensors  its weights: GGUF name, the slot it binds to (tv_weights or tv_layer), the expected
//            shape in hyperparameter terms, required or optional; model.c binds and checks them
//   block    the per-layer forward pass, composed of the shared pieces in layers.h
// Adding a family is one file (src/model/family_NAME.c defining `const model_family family_NAME`)
// and one line in registry.c's FAMILIES list.
#ifndef TV_FAMILY_H
#define TV_FAMILY_H

#include <stdbool.h>
#include <stddef.h>

#include "model/layers.h"
#include "model/model.h"

// One hyperparameter: `<arch>.<key>` in GGUF metadata, into the int32_t or float field at `offset`
// of tv_hparams. Present: must lie in [lo, hi]. Absent: an error naming the key if required, else
// dflt. A default of 0 for head_count_kv, key_length and rope.dimension_count means "derived"
// (n_heads, dim / n_heads, head_dim), so families share those rules.
typedef struct family_key {
    const char *key;
    size_t offset;
    bool is_float;      // float field, else int32_t
    bool is_required;
    double lo, hi;      // accepted range, inclusive
    double dflt;
} family_key;

#define FAMILY_INT(key, field, lo, hi) {key, offsetof(tv_hparams, field), false, true, lo, hi, 0}
#define FAMILY_INT_OPT(key, field, lo, hi, dflt) {key, offsetof(tv_hparams, field), false, false, lo, hi, dflt}
#define FAMILY_FLOAT_OPT(key, field, lo, hi, dflt) {key, offsetof(tv_hparams, field), true, false, lo, hi, dflt}

// A tensor dimension, in terms of the hyperparameters.
typedef enum family_dim {
    FD_ONE,     // 1: a vector
    FD_EMBD,    // dim
    FD_Q,       // n_heads * head_dim
    FD_KV,      // n_kv_heads * head_dim
    FD_FF,      // hidden_dim
    FD_VOCAB,   // n_vocab
} family_dim;

// One weight: `name` (per-layer tensors are "blk.<l>." + name) bound to the tv_tensor at `offset` of
// tv_weights (model-wide) or tv_layer (per layer), with shape [ne0 (row length), ne1 (rows)].
// Vectors (ne1 = FD_ONE) must be F32. An optional tensor that is absent leaves its slot empty
// (data NULL); the block checks. Model-wide "output" absent means tied to token_embd.
typedef struct family_tensor {
    const char *name;
    bool is_layer;
    size_t offset;
    family_dim ne0, ne1;
    bool is_optional;
} family_tensor;

#define FAMILY_TENSOR(name, slot, ne0, ne1) {name, false, offsetof(tv_weights, slot), ne0, ne1, false}
#define FAMILY_TENSOR_OPT(name, slot, ne0, ne1) {name, false, offsetof(tv_weights, slot), ne0, ne1, true}
#define FAMILY_LAYER(name, slot, ne0, ne1) {name, true, offsetof(tv_layer, slot), ne0, ne1, false}
#define FAMILY_LAYER_OPT(name, slot, ne0, ne1) {name, true, offsetof(tv_layer, slot), ne0, ne1, true}

// Layer l of the forward pass: reads and updates the residual stream s->x (T, dim) in place,
// composed of the shared pieces (layers.h). Returns TV_OK or a failed piece's status (err set).
typedef tv_status (*family_block_fn)(layer_state *s, const tv_layer *L, int l, tv_error *err);

typedef struct model_family {
    const char *name;
    const char *const *archs;        // NULL-terminated
    const family_key *keys;
    int n_keys;
    const family_tensor *tensors;
    int n_tensors;
    family_block_fn block;
} model_family;

#define FAMILY_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

// The family whose archs include `arch`, or NULL.
const model_family *family_find(const char *arch);
// The family by name (the llama2.c format maps to "llama"), or NULL.
const model_family *family_by_name(const char *name);
// Writes every supported architecture name, comma-separated, into buf (always terminated).
void family_list_archs(char *buf, size_t cap);

#endif
