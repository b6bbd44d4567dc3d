// hf.h — a Hugging Face model folder seen as the GGUF llama.cpp's converter would make of it.
//
// Folder: config.json (required), model.safetensors or model.safetensors.index.json + shards,
// optionally tokenizer.json + tokenizer_config.json (chat_template, special tokens),
// chat_template.jinja, generation_config.json (eos_token_id).
// hf_open reads config.json into the family's GGUF metadata keys (`<arch>.*`, what
// convert_hf_to_gguf.py writes: sizes, RoPE base and scaling, sliding windows, soft-caps, granite's
// multipliers, ...) and maps every tensor to its GGUF name, so model.c binds a folder exactly as a
// GGUF and each family's loader is unchanged. Weights stay in the safetensors mapping except where
// the layouts differ: Q/K rows of llama-type models are permuted to llama.cpp's interleaved RoPE
// order, vectors (norms, biases) become F32, Gemma 2/3's norms get llama.cpp's +1, and RoPE factor
// tensors (llama3 rope_freqs, LongRoPE short/long, Gemma 4's proportional rope_freqs) are computed
// from config.json; those are copies the handle owns.
#ifndef TV_HF_H
#define TV_HF_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "tinyvllm.h"

typedef struct hf_model hf_model;

// Whether path is a directory holding config.json.
bool hf_is_model_dir(const char *path);
// Opens the folder. Errors name the file and what is wrong: a missing or malformed config key
// ("DIR/config.json: hidden_size is missing or not an integer"), an unsupported model_type or
// RoPE scaling, a shard listed in the index but absent, a tensor with no GGUF counterpart, a
// tensor whose dtype is not a float type or disagrees with config.json's torch_dtype, and the
// safetensors reader's own checks (truncated header, offsets outside the file, ...).
hf_model *hf_open(const char *dir, tv_error *err);
// config.json and the tokenizer files only (a vocabulary-only conversion): no safetensors are
// opened, hf_n_tensors is 0 and hf_identity must not be called.
hf_model *hf_open_metadata(const char *dir, tv_error *err);
void hf_close(hf_model *h);
// The metadata as GGUF keys (general.architecture, general.name, `<arch>.*`, tokenizer.chat_template,
// tokenizer.ggml.eos_token_id); owned by the handle, has no tensors.
gguf_ctx *hf_metadata(const hf_model *h);
// The tensor llama.cpp would name gguf_name, or NULL. Its .name says where it came from
// ("model.layers.0.self_attn.q_proj.weight in DIR/model.safetensors") for messages.
const tv_tensor *hf_find_tensor(const hf_model *h, const char *gguf_name);
// Every tensor in GGUF-name order (i < hf_n_tensors): *gguf_name receives its GGUF name.
int hf_n_tensors(const hf_model *h);
const tv_tensor *hf_tensor_at(const hf_model *h, int i, const char **gguf_name);
// Frees the converted copy (a permuted Q/K, ...) whose data is `data` once the caller made its own
// (quantized at load); true when it was such a copy. Its tensor must not be used afterwards.
bool hf_release(hf_model *h, const void *data);
// The folder's tokenizer.json directory (the folder), or NULL when it has none.
const char *hf_tokenizer_dir(const hf_model *h);
// End-of-generation ids of generation_config.json / config.json (eos_token_id, int or list).
int hf_eos_ids(const hf_model *h, const int32_t **ids);
// Identity of the weights for caches: total safetensors data bytes and newest shard mtime (ns).
void hf_identity(const hf_model *h, uint64_t *bytes, int64_t *mtime_ns);

// The folder's JSON file `name`, parsed (the caller frees it with cJSON_Delete); NULL with *missing
// when it does not exist (err untouched), or NULL + err (unreadable, over 64 MiB, not an object).
struct cJSON *hf_read_json(const char *dir, const char *name, bool *missing, tv_error *err);

// FP8 E4M3 (the "fn" variant of FP8 checkpoints: no infinities, 0x7F/0xFF NaN) as f32, exactly.
// FP8 matrices of a folder are dequantized at load to F32: e4m3(w) * scale, the scale from
// "<name>_scale_inv" (block-wise, quantization_config.weight_block_size, DeepSeek-V3 / Qwen3 FP8) or
// "<name>_scale" (per tensor or per row); "<name>_scale*" and "*.input_scale" are not weights.
float hf_e4m3_to_f32(uint8_t b);

// Llama 3.1+ RoPE frequency factors (rope_freqs.weight: each inverse frequency theta^(-2i/head_dim)
// is divided by out[i]): factor for wavelengths above orig/low, 1 below orig/high, smooth between
// (Meta's recipe, as convert_hf_to_gguf.py computes it).
void hf_llama3_rope_factors(float *out, int n_half, int head_dim, double theta, double factor, double low,
                            double high, double orig);

#endif
