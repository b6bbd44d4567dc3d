// tinyvllm_tools.h — the second public header: model-file inspection, conversion, synthetic models
// and the machine's measured limits. What `tinyvllm info | convert | synth | bench` are built on;
// programs that only serve or generate need tinyvllm.h alone.
//
// Same conventions as tinyvllm.h: opaque handles with create/free (free(NULL) is a no-op), tv_status
// plus a caller-owned tv_error, the library never prints and never exits.
#ifndef TINYVLLM_TOOLS_H
#define TINYVLLM_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyvllm.h"

#ifdef __cplusplus
extern "C" {
#endif

// ============================ model files, read without loading ============================
// A GGUF or llama2.c file, or a Hugging Face folder (its safetensors: model.safetensors or the
// index's shards), opened for inspection: container facts, metadata and tensor list, also for
// files tinyvllm cannot run. Nothing is loaded or repacked; GGUF and safetensors are memory-mapped.
typedef struct tv_file tv_file;

typedef struct tv_file_desc {
    const char *format;          // "gguf" | "llama2c" | "safetensors" (a folder: its tensors in HF names)
    uint32_t version;            // GGUF version, or llama2.c checkpoint version (0, 1)
    size_t alignment;            // GGUF tensor data alignment (0 for llama2.c)
    size_t data_offset;          // GGUF: offset of the tensor data (0 for llama2.c)
    bool shared_classifier;      // llama2.c: the output projection is the token embedding
} tv_file_desc;

// Decides the format by content ("GGUF" magic, else llama2.c; a directory: safetensors). NULL + err
// (naming the file) on failure.
tv_file *tv_file_open(const char *path, tv_error *err);
void tv_file_close(tv_file *f);
void tv_file_describe(const tv_file *f, tv_file_desc *d);

// Metadata (GGUF only; 0 keys for llama2.c). Key i in file order; its value as text: strings as
// stored, integers in decimal, floats with %g, booleans true/false, arrays "[TYPE × n]". Writes at
// most cap bytes (NUL-terminated when cap > 0) and returns the full length, like snprintf.
int64_t tv_file_n_meta(const tv_file *f);
const char *tv_file_meta_key(const tv_file *f, int64_t i);
size_t tv_file_meta_text(const tv_file *f, int64_t i, char *buf, size_t cap);
// A string value by key (not NUL-terminated: *len bytes); NULL when absent or not a string.
const char *tv_file_meta_str(const tv_file *f, const char *key, size_t *len);
// The vocabulary string of the token id that metadata key (e.g. "tokenizer.ggml.bos_token_id")
// names, from tokenizer.ggml.tokens; NULL when either is absent or out of range. *len bytes.
const char *tv_file_token_of(const tv_file *f, const char *id_key, size_t *len);

typedef struct tv_tensor_desc {
    const char *name;
    int type;                    // GGUF/ggml type id
    const char *type_name;       // "Q4_K", "F32", ... ("?" when unknown)
    int n_dims;
    int64_t ne[4];               // ne[0] = elements per row
    size_t nbytes;
} tv_tensor_desc;
int64_t tv_file_n_tensors(const tv_file *f);
// false when i is out of range.
bool tv_file_tensor(const tv_file *f, int64_t i, tv_tensor_desc *out);

// Progress of a long operation (writing a model file): done of total bytes, called on the calling
// thread after each tensor or 8 MiB of one, and once at the end (done == total). user is the caller's.
typedef void (*tv_progress_fn)(void *user, uint64_t done, uint64_t total);

// ============================ conversion ============================
// A Hugging Face folder (config.json + safetensors, as tv_model_load reads it) -> a GGUF v3 file
// with llama.cpp's names, metadata keys and layouts that llama.cpp and tinyvllm load.
typedef struct tv_convert_hf_options {
    const char *type;        // NULL keeps each weight's type (F32/F16/BF16); else every matrix becomes
                             // type ("F16", "Q8_0", "Q4_0", ...; a matrix whose rows do not fit its
                             // blocks: Q8_0, else F16), vectors stay F32
    const char *vocab_path;  // a GGUF whose tokenizer.* keys are copied (its token count must fit the
                             // embeddings), or NULL: the folder's tokenizer.json written as llama.cpp's
                             // converter writes it (byte-level BPE -> "gpt2" with the pre-tokenizer's
                             // llama.cpp name, SentencePiece-style BPE -> "llama"; merges, token types,
                             // special ids, add_bos/add_eos, chat template); a folder without one gets
                             // tokenizer.ggml.model "no_vocab" (ids only)
    bool vocab_only;         // metadata and tokenizer only, no tensors (llama.cpp's --vocab-only): the
                             // folder needs config.json (with vocab_size) and tokenizer.json, no weights
    tv_progress_fn progress;  // NULL: none; else told the tensor bytes written as the file is written
    void *progress_user;
    int n_threads;           // converting and writing threads (<= 0: online cores, at most 16)
} tv_convert_hf_options;

// Written through a temporary renamed over out_path; tensors are converted row chunk by row chunk on
// n_threads threads, so memory stays small. o may be NULL (all defaults). summary (may be NULL) receives a one-line
// description. Errors name the file: an unknown type (TV_ERR_INVALID), a tokenizer.json kind or
// pre-tokenizer llama.cpp has no name for (TV_ERR_UNSUPPORTED), the folder's own errors (hf_open).
tv_status tv_convert_hf(const char *dir, const tv_convert_hf_options *o, const char *out_path, char *summary, size_t cap,
                        tv_error *err);

// Writes a GGUF of the model in_path's first n_layers layers (1 .. its layers - 1) followed by its
// output norm and head, every other key and tensor as stored, per-layer arrays cut to n_layers: a
// draft model for speculative decoding (tv_engine_config.draft_model) with the model's own
// vocabulary. summary (may be NULL): one line (architecture, layers and tensors kept), at most cap bytes.
tv_status tv_convert_first_layers(const char *in_path, int n_layers, const char *out_path, char *summary, size_t cap,
                                  tv_error *err);

// Converts a llama2.c checkpoint (and optionally its tokenizer.bin) to a GGUF that llama.cpp also
// loads (F32 weights as stored). name: general.name. summary (may be NULL): one line describing
// the source (version, shape, tensor count), at most cap bytes. progress (may be NULL) follows the write.
tv_status tv_convert_llama2c(const char *model_path, const char *tokenizer_path, const char *name,
                             const char *out_path, char *summary, size_t cap, tv_progress_fn progress,
                             void *progress_user, tv_error *err);

// ============================ synthetic models ============================
// Deterministic random-weight llama GGUF files for demos, tests and benchmarks: same preset, type,
// seed and vocab file give a byte-identical file on every machine.
typedef struct tv_synth_shape {
    const char *name;
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, ctx;
    float rope_theta;
    float norm_eps;
    bool tied_output;            // no output.weight (tied to token_embd)
    bool llama3_rope;            // write rope_freqs.weight (llama 3.1+ frequency factors)
} tv_synth_shape;

// The preset of that name, or NULL; and the names, comma-separated, for help texts.
const tv_synth_shape *tv_synth_find_preset(const char *name);
const char *tv_synth_preset_names(void);

// Family architectures (--arch): one small model per family (dim 256, ffn 768, 4-8 layers, GQA,
// 512-token synthetic vocab) in that family's real llama.cpp tensor layout and metadata, with
// values that make each family feature change the logits (the tests/fixtures/families oracle).
// "llama3" is llama with rope_freqs and tied embeddings. Names, comma-separated, then after "; "
// the benchmark shapes (real dims and vocab sizes: qwen3-1.7b, gemma3-1b, phi4-mini):
const char *tv_synth_arch_names(void);

typedef struct tv_synth_options {
    const char *preset;          // a preset name; or NULL and:
    const char *arch;            // a family architecture (then no vocab_path)
    const char *type;            // "F32" "F16" "BF16" "Q8_0" "Q4_0" "Q4_K" "Q6_K" (llama.cpp's mixes)
    uint64_t seed;
    const char *vocab_path;      // a GGUF to copy tokenizer.* from, or NULL for a synthetic vocab
    int n_threads;               // quantization threads (<= 1: the calling thread only)
    const char *format;          // NULL/"gguf": a GGUF file; "hf" (with arch): out_path becomes a Hugging
                                 // Face folder (config.json + model.safetensors, the family's HF names)
    int deep_from;               // --preset only, 0 = off: layers deep_from.. write deep_scale times less into
    float deep_scale;            // the residual (attn_output and ffn_down scaled, in (0, 1]): deep layers that
                                 // refine rather than overwrite, so the first deep_from layers (a self-draft,
                                 // `convert layers`) predict the model well (a speculative decoding pair)
    bool mtp;                    // --arch qwen35 / qwen35moe / qwen3next: one more layer after the model's, an MTP
                                 // (nextn) layer (nextn_predict_layers 1: full attention, its FFN, nextn.eh_proj,
                                 // enorm, hnorm, shared_head_norm), as glm4moe always has
    tv_progress_fn progress;     // NULL: none; else called as the file is written
    void *progress_user;
} tv_synth_options;

// Writes the model to out_path atomically. TV_ERR_INVALID for an unknown preset, arch or type.
tv_status tv_synth_write(const tv_synth_options *o, const char *out_path, tv_error *err);

// ============================ load speed ============================
// How fast weight bytes get from a model's files to the kernels, against the machine's page-cache
// read bandwidth measured in the same run (`tinyvllm bench --load`). Each figure is the best of reps.
typedef struct tv_load_bench_params {
    int n_threads;              // reading, touching and converting threads (0: online cores, at most 16)
    const char *cpu_path;       // kernel path deciding repacking (NULL: the best)
    const char *convert_type;   // the conversion at load measured (NULL: "Q8_0")
    const char *cache_dir;      // an empty scratch folder for the prepared-weight cache test (NULL: skipped)
    const char *cache_quantize; // quantize type of that test (NULL: convert_type when the model has float
                                // weights, else its own types, repacked where that pays)
    int reps;                   // 0: 3
} tv_load_bench_params;

typedef struct tv_load_bench_result {
    int n_threads, n_files;
    uint64_t file_bytes;        // the files' sizes (safetensors shards or the GGUF)
    uint64_t weight_bytes;      // the weight tensors' bytes a forward pass reads
    double read_warm_gbs;       // the files read() into a buffer, warm page cache (file bytes / time)
    double load_warm_ms;        // tv_model_load with nothing to convert + every weight byte read once, warm
    double load_warm_gbs;       // weight bytes / load_warm_ms
    bool has_cold;              // posix_fadvise(DONTNEED) emptied the page cache of the files
    double read_cold_gbs, load_cold_gbs;   // the same, each run after dropping the files' pages
    char cold_note[96];         // why there is no cold figure
    char convert_type[16];
    uint64_t convert_src_bytes; // F32/F16/BF16 bytes converted at load (0: nothing to convert)
    double convert_ms;          // the conversion's own time
    double convert_gbs;         // convert_src_bytes / convert_ms
    double cache_cold_ms;       // first load with the cache: prepare + write it + read every weight (0: not measured)
    double cache_hit_ms;        // a later load mapping the cache file + read every weight (0: not measured)
    char cache_note[160];       // why the cache figures are missing
} tv_load_bench_result;

tv_status tv_bench_load(const char *path, const tv_load_bench_params *p, tv_load_bench_result *r, tv_error *err);

// ============================ the machine's limits ============================
// Measured in about a second with n_threads threads (<= 0: online cores), so benchmarks report
// fractions of what this CPU and its memory can do:
//   mem_bw_gbs   streaming read bandwidth, GB/s, best of 5 over a buffer far beyond the LLC
//   int8_gops    int8 dot-product peak (VNNI where present), GOPS, 2 ops per multiply-accumulate
//   fp32_gflops  fp32 FMA peak, GFLOPS
//   amx_int8_gops, amx_bf16_gflops  AMX tile peaks (tdpbssd, tdpbf16ps; 2 ops per multiply-add), 0
//                when the "amx" kernel path cannot run here (tv_cpu_amx_unavailable says why)
typedef struct tv_roofline {
    double mem_bw_gbs;
    double int8_gops;
    double fp32_gflops;
    const char *isa;             // "avx512-vnni" | "avx-vnni" | "avx2" | "generic" (static string)
    double amx_int8_gops;
    double amx_bf16_gflops;
} tv_roofline;
// Allocates and touches a 1 GiB buffer (256 MiB when 1 GiB is not available); TV_ERR_NOMEM when
// neither can be had.
tv_status tv_roofline_measure(int n_threads, tv_roofline *out, tv_error *err);

// The kernel path a model or engine given cpu_path would run (NULL/"" = the best this CPU and OS
// support): "generic" | "avx2" | "avx512" ..., a static string. NULL + err when this CPU lacks that
// path or the name is unknown.
const char *tv_kernel_path(const char *cpu_path, tv_error *err);

#ifdef __cplusplus
}
#endif
// ============================ structured output: mask benchmark ============================
// MaskBench's method (github.com/guidance-ai/jsonschemabench, maskbench/) over JSON Schemas: each
// schema is compiled for tok's vocabulary (timed), then token steps are timed (one thread), each a
// mask and the token's commit. The tokens: with instances, the valid test instances of a schema
// file in MaskBench's layout ({"schema", "tests": [{"data", "valid"}]}), as MaskBench runs them;
// else a random walk of up to max_steps tokens drawn uniformly among the allowed ones (random
// weights: the mask alone keeps the output valid). The vocabulary is built once for all schemas.
#define TV_STRUCTURED_BENCH_REASONS 32
typedef struct tv_structured_bench_options {
    int max_steps;               // tokens per walk (<= 0: 200)
    uint64_t seed;               // 0: a fixed default
    bool verify;                 // check every mask against a plain trie walk (slow); a mismatch fails
    bool instances;              // MaskBench's test instances instead of random walks
    tv_constraint_kind kind;     // the specs' kind (TV_CONSTRAINT_NONE: JSON Schemas); instances need schemas
    // called with each completed output (NUL-terminated) of schema index i; may be NULL
    void (*on_output)(void *user, int i, const char *text, size_t len);
    void *user;
} tv_structured_bench_options;

typedef struct tv_structured_bench_result {
    int n_vocab;
    double vocab_ms;             // building the vocabulary trie
    int n_schemas, n_compiled, n_completed;  // completed: walks that ended where the schema may end
    int n_budget;                // walks cut short by a matcher budget (matcher.h bounds)
    int n_tests, n_tests_ok;     // instances: valid instances run, those the grammar took whole
    int n_tests_refused;         // instances: a token outside the mask (an order or spacing not generated)
    size_t n_masks;
    double mask_mean_us, mask_p50_us, mask_p99_us, mask_max_us;   // per token: mask + commit
    double walk_mean_us;         // verify: the plain trie walk's mean for the same masks
    double compile_p50_ms, compile_p90_ms, compile_max_ms;
    // token classes (matcher.h): trie walks for keys shared through the vocabulary and for keys
    // local to a grammar, tables dropped whole over their budget, the shared table at the end
    uint64_t class_walks, class_local_walks, class_drops;
    size_t class_entries, class_bytes;
    int n_reasons;               // why schemas did not compile: the first words, with counts
    char reason[TV_STRUCTURED_BENCH_REASONS][64];
    int reason_n[TV_STRUCTURED_BENCH_REASONS];
} tv_structured_bench_result;

// schemas[i] (lens[i] bytes) for i < n. Errors: out of memory, or (TV_ERR_STATE) an engine fault:
// an empty mask, a masked token refused, a mask that differs from the plain walk (verify).
tv_status tv_structured_bench(const tv_tokenizer *tok, const char *const *schemas, const size_t *lens, int n,
                              const tv_structured_bench_options *o, tv_structured_bench_result *r, tv_error *err);

#endif
