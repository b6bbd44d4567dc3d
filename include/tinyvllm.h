// tinyvllm.h — the public C API of tinyvllm.
//
// Conventions: opaque handles with create/free pairs (free(NULL) is a no-op); functions that can
// fail return tv_status and fill a caller-owned tv_error with one line saying what went wrong.
// The library never prints and never exits.
#ifndef TINYVLLM_H
#define TINYVLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tv_status {
    TV_OK = 0,
    TV_ERR_IO,           // file missing, unreadable, mmap failed
    TV_ERR_FORMAT,       // bytes that do not follow the format (bad magic, truncation, bad offsets)
    TV_ERR_UNSUPPORTED,  // valid but not supported (unknown tensor type, architecture)
    TV_ERR_INVALID,      // bad argument or inconsistent values (shapes, hyperparameters)
    TV_ERR_NOMEM,        // allocation failed or a budget is exhausted
    TV_ERR_RANGE,        // a request exceeds a limit (prompt longer than the context)
    TV_ERR_STATE,        // call not valid in the current state
} tv_status;

typedef struct tv_error {
    tv_status code;
    char msg[512];
} tv_error;

const char *tv_status_str(tv_status s);
// Fills err (when not NULL) with code and a printf-style message; returns code. For front-ends that
// report their own failures in the library's convention.
tv_status tv_error_set(tv_error *err, tv_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// ============================ logging ============================
// The library never prints: what it has to say goes to one process-wide callback (default: none).
typedef enum tv_log_level { TV_LOG_DEBUG = 0, TV_LOG_INFO, TV_LOG_WARN, TV_LOG_ERROR } tv_log_level;
typedef void (*tv_log_fn)(tv_log_level level, const char *msg, void *user);
// fn NULL silences. Set it before other threads use the library.
void tv_log_set(tv_log_fn fn, void *user);
// Sends a message through the same callback (front-ends use it so all logging has one sink).
void tv_log(tv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ============================ model ============================
// A loaded model: weights (memory-mapped, used in place), hyperparameters, tokenizer and chat
// template. Immutable after load; one model can back several engines.
typedef struct tv_model tv_model;
typedef struct tv_tokenizer tv_tokenizer;

typedef struct tv_model_params {
    const char *tokenizer_path;  // llama2.c tokenizer.bin or tokenizer.json; NULL = from the model file
    bool no_repack;              // keep matmul weights as stored; default: Q8_0/Q4_0 weights are
                                 // repacked at load into 16-row interleaved copies where cpu_path's
                                 // kernels run faster on them (AVX2, AVX-512), and their pages of the
                                 // file mapping are released. Packed weights run on every CPU path.
    const char *cpu_path;        // the CPU kernel path that decides repacking: NULL/"" = the best this
                                 // CPU supports, or "generic" | "avx2" | "avx512" (as tv_engine_config)
    int n_threads;               // threads for load-time work (repacking); 0 = online cores, at most 16
    const char *quantize;        // NULL: weights as stored; else a type name ("Q8_0", "Q4_0", "Q4_K", ...):
                                 // every F32/F16/BF16 weight matrix (embeddings included) is quantized to
                                 // it at load, tensor by tensor on n_threads (a matrix whose rows do not
                                 // fit the type's blocks: Q8_0, else F16), the source pages released
    void (*progress)(void *user, const char *what, double frac);   // load-time work (quantizing,
    void *progress_user;                                          // repacking): frac in [0, 1]; or NULL
    const char *cache_dir;       // prepared-weight cache (NULL: none): weights repacked or quantized at
                                 // load are written once to DIR/<hash>.tvw and later loads map that file
                                 // read-only and shared (every process on the machine one copy); a stale
                                 // or corrupt file is rebuilt (tv_model_cache_note says so)
    uint64_t cache_max_bytes;    // the cache folder's size limit, least recently used files evicted (0: none)
    int layer_begin, layer_end;  // pipeline stage: hold only layers [layer_begin, layer_end) (layer_end 0:
                                 // all): only their tensors are bound (a GGUF is then mapped tensor by
                                 // tensor), the embeddings on the first stage, the output norm and head on
                                 // the last; engines on such a model compute that range (tv_stage_*)
    bool mtp;                    // load the file's first next-token-prediction layer (`<arch>.nextn_predict_layers`,
                                 // blk.N.nextn.*) as a one-layer model: the proposer of TV_SPEC_MTP (its own
                                 // embeddings, norm and head where the file has them, else the model's)
    int mla_form;                // deepseek2's latent attention (TV_MLA_*): AUTO (0) picks per sequence and
                                 // chunk the form with fewer multiply-adds where attn_k_b/attn_v_b are
                                 // F32/F16/BF16, else absorbed (docs/architecture.md, "Latent attention");
                                 // ABSORBED runs every row absorbed (no transposed attn_k_b is prepared);
                                 // EXPANDED runs every sequence expanded, decode rows too (tests, measuring)
} tv_model_params;
enum { TV_MLA_AUTO = 0, TV_MLA_ABSORBED = 1, TV_MLA_EXPANDED = 2 };

void tv_model_params_default(tv_model_params *p);
// Loads a GGUF or llama2.c .bin file (detected by content). NULL + err on failure; the message
// names the file and the problem.
tv_model *tv_model_load(const char *path, const tv_model_params *p, tv_error *err);
void tv_model_free(tv_model *m);
int32_t tv_model_n_vocab(const tv_model *m);
int32_t tv_model_n_ctx(const tv_model *m);                         // trained context (an engine may cap it)
const tv_tokenizer *tv_model_tokenizer(const tv_model *m);         // NULL when the file has none
const char *tv_model_chat_template(const tv_model *m);             // NULL when none
const char *tv_model_name(const tv_model *m);                      // general.name or file stem
// True for the ids that end generation by default: the tokenizer's end-of-generation set
// (tv_tokenizer_is_eog: eos, eot, eom, <|im_end|>, <end_of_turn>, ... as llama.cpp decides) and the
// file's tokenizer.ggml.eos_token_id; BOS for llama2.c checkpoints, as run.c. Engines stop on them
// unless a request sets ignore_eos.
bool tv_model_is_eog(const tv_model *m, int32_t id);
// Pipeline parallelism: splits the layers of the model file at path into n_stages contiguous ranges,
// stage i holding [first[i], first[i + 1]) (first: n_stages + 1 entries). split (n_stages layer
// counts that add up to the model's layers) overrides; NULL balances by bytes, read from the tensor
// table without mapping weights: the embeddings count on the first stage, the output norm and head
// (the embeddings when tied) on the last, and the heaviest stage is as light as possible.
// GGUF and llama2.c files. bytes (n_stages entries, may be NULL): each stage's weight bytes.
// TV_ERR_RANGE for more stages than layers.
tv_status tv_model_plan_stages(const char *path, int n_stages, const int *split, int *first, uint64_t *bytes,
                               tv_error *err);
// What the prepared-weight cache did at load ("hit DIR/x.tvw", "wrote ...", "rebuilt ... (stale: ...)",
// "not written: <error>"), or NULL when no cache was used.
const char *tv_model_cache_note(const tv_model *m);

// What a loaded model is: its shape and what a forward pass costs. Strings are owned by the model.
typedef struct tv_model_info {
    const char *name;            // general.name or the file stem
    const char *path;            // the file it was loaded from
    const char *format;          // "gguf" | "llama2c"
    const char *architecture;    // the model family ("llama", ...)
    int32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim;
    int32_t n_ctx_train;         // context length the model was trained for
    int32_t n_rot;               // rotated dims per head
    float rope_theta, norm_eps;
    const char *rope_scaling;    // "none" | "linear" | "llama3"
    bool tied_output;            // the output projection is the token embedding
    int64_t n_params;            // parameters of the per-token matmuls (layers + output), for FLOP counts
    size_t weight_bytes;         // bytes of weights one decode step reads
    int n_packed;                // weight tensors repacked at load for the CPU path's kernels
    double repack_ms;            // time that took
    int32_t n_expert, n_expert_used, expert_ff;   // mixture of experts (0: dense): experts, used per token, FFN rows
    size_t kv_bytes_per_token;   // KV cache bytes one token takes over all layers (f16 cache)
    int32_t layer_begin, layer_end;   // the layers this process holds: [0, n_layers) unless a pipeline stage
} tv_model_info;
void tv_model_get_info(const tv_model *m, tv_model_info *info);

// ============================ tokenizer ============================
// Text <-> token ids. Families: SentencePiece-style BPE with scores and byte fallback, byte-level
// BPE with a per-family pre-tokenizer, WordPiece. Immutable after load; safe from several threads.
typedef enum tv_tok_kind { TV_TOK_SPM = 0, TV_TOK_BPE, TV_TOK_WPM } tv_tok_kind;

// Loads a tokenizer on its own (no weights), deciding the kind by content: a GGUF file (a model or
// vocab-only), a Hugging Face tokenizer.json or a directory holding one, else a llama2.c
// tokenizer.bin. vocab_size: for tokenizer.bin, the size it must have (0 = every record in the file).
tv_tokenizer *tv_tokenizer_load(const char *path, int32_t vocab_size, tv_error *err);
void tv_tokenizer_free(tv_tokenizer *t);   // only for tokenizers from tv_tokenizer_load

tv_tok_kind tv_tokenizer_kind(const tv_tokenizer *t);
int32_t tv_tokenizer_n_vocab(const tv_tokenizer *t);
int32_t tv_tokenizer_bos(const tv_tokenizer *t);        // -1 if none
int32_t tv_tokenizer_eos(const tv_tokenizer *t);        // -1 if none
int32_t tv_tokenizer_eot(const tv_tokenizer *t);        // end-of-turn (e.g. <|eot_id|>), -1 if none
// Whether encoding with add_special adds BOS / EOS: tokenizer.ggml.add_bos_token / add_eos_token
// (tokenizer_config.json's), else the default of the kind as llama.cpp's (SentencePiece and
// WordPiece: BOS; byte-level BPE: none, BOS for the Llama 3 pre-tokenizers); false without the token.
bool tv_tokenizer_add_bos_default(const tv_tokenizer *t);
bool tv_tokenizer_add_eos_default(const tv_tokenizer *t);
// True for ids that end generation, as llama.cpp decides: eos, eot (tokenizer.ggml.eot_token_id or,
// absent, the first of <|eot_id|> <|im_end|> <|end|> <end_of_turn> <|endoftext|> ... in the vocab),
// eom (<|eom_id|>), the FIM pad / repo / file-separator tokens, and every token spelled as one of
// the families' end pieces: <|eot_id|> <|eom_id|> <|im_end|> <|end|> <|endoftext|> <|end_of_text|>
// <end_of_turn> </s> <eos> <|return|> <|call|> <turn|> <EOT> ... (harmony vocabularies keep
// <|end|> out: it ends a message there; Gemma 4's keep </s> out). For llama2.c tokenizers: BOS (1).
bool tv_tokenizer_is_eog(const tv_tokenizer *t, int32_t id);
bool tv_tokenizer_is_control(const tv_tokenizer *t, int32_t id);
// The vocabulary entry as stored (e.g. "▁the", "Ġthe", "<0x0A>"); NULL if id out of range.
const char *tv_tokenizer_vocab_piece(const tv_tokenizer *t, int32_t id, size_t *len);
// Token id of an exact vocabulary string, -1 if absent.
int32_t tv_tokenizer_find(const tv_tokenizer *t, const char *piece, size_t len);

// Encode len bytes of UTF-8 text. Invalid UTF-8 is an error (TV_ERR_INVALID, the byte offset in
// the message). add_special: add the BOS / EOS the vocabulary asks for (tv_tokenizer_add_bos_default /
// _add_eos_default; llama.cpp's add_special). parse_special: recognise special/control tokens written
// in the text (user-defined ones are always recognised). *ids is malloc'ed (caller frees), *n_ids its length.
tv_status tv_tokenize(const tv_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                      int32_t **ids, size_t *n_ids, tv_error *err);

// The bytes a token contributes to text (byte tokens decoded, '▁' -> ' ', byte-level BPE unmapped).
// Control tokens give "" unless special is true. May be partial UTF-8. Returns the length written
// (at most cap; the full length is returned in *full_len if not NULL).
size_t tv_token_to_piece(const tv_tokenizer *t, int32_t id, bool special, char *buf, size_t cap, size_t *full_len);

// Whole-sequence decode with SentencePiece's rule (a leading space of the first piece after BOS
// is dropped: for a sequence that opens with BOS, the first piece that produces text loses one
// leading space, as Hugging Face's decode does; a sequence without a leading BOS keeps its spaces,
// so generated text decodes as a continuation).
// Bytes are returned as the tokens make them (may be invalid UTF-8 if the ids split a character).
// *out is malloc'ed and NUL-terminated.
tv_status tv_detokenize(const tv_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        char **out, size_t *out_len, tv_error *err);

// Streaming detokenizer: feed ids one at a time, get only complete UTF-8 back; the leading-space
// rule is applied as in tv_detokenize. Text held back (an unfinished UTF-8 sequence) comes out with
// the next token or at flush (flush emits U+FFFD for a sequence that never completed).
typedef struct tv_detok tv_detok;
tv_detok *tv_detok_create(const tv_tokenizer *t, bool skip_special);
void tv_detok_free(tv_detok *d);
// Appends the newly complete text to *out (NUL-terminated); returns its length. *out is owned by d
// and valid until the next call. TV_DETOK_NOMEM when memory ran out: *out is "" and the text of
// this id is lost (reset or free the detokenizer).
#define TV_DETOK_NOMEM ((size_t)-1)
size_t tv_detok_push(tv_detok *d, int32_t id, const char **out);
size_t tv_detok_flush(tv_detok *d, const char **out);
void tv_detok_reset(tv_detok *d);

// ============================ chat ============================
// A conversation (OpenAI-style messages as JSON text) -> the prompt text and token ids a model
// expects, through its Jinja chat template rendered byte-identically to Hugging Face's
// apply_chat_template (context: messages, tools, documents = none, add_generation_prompt, bos_token,
// eos_token, plus any extra variables), or, for models without a template, a plain transcript:
//     [SYSTEM "\n\n"] (Role ": " content "\n")* "Assistant:"     (roles capitalized)
// whose generation should stop at tv_chat_stop(). Immutable after create; safe from several threads
// (rendering recurses: give rendering threads >= 1 MiB of stack). Hostile templates are bounded
// (nesting, recursion, steps, 16 MiB output, 128 MiB working memory): exceeding a bound is an error.
typedef struct tv_chat tv_chat;

typedef struct tv_chat_params {     // zero-initialized = plain transcript, no tokenizer
    const char *template_src;       // Jinja source (template_len bytes, need not be NUL-terminated); NULL = plain
    size_t template_len;
    const tv_tokenizer *tokenizer;  // borrowed, must outlive the chat; needed by tv_chat_fit / _tokenize
    const char *bos_token;          // value of bos_token / eos_token; NULL = the tokenizer's BOS / EOS
    const char *eos_token;          // vocabulary string ("" without a tokenizer or such a token)
    const char *kwargs_json;        // JSON object of template variables every render gets (e.g.
                                    // {"enable_thinking": false}); a render's own kwargs override them
} tv_chat_params;

// NULL + err when the template does not compile ("template line L, column C: what"), kwargs_json
// is not a JSON object (TV_ERR_INVALID), or on OOM.
tv_chat *tv_chat_create(const tv_chat_params *p, tv_error *err);
void tv_chat_free(tv_chat *c);
bool tv_chat_has_template(const tv_chat *c);   // false: the plain transcript format
const char *tv_chat_stop(const tv_chat *c);     // stop string generation needs: "\nUser:" for plain, else NULL

typedef struct tv_chat_input {
    const char *messages_json;   // JSON array of {role, content, ...}
    const char *tools_json;      // JSON array of tool definitions; NULL: tools = none
    const char *kwargs_json;     // JSON object of extra template variables (chat_template_kwargs); NULL: none
    bool add_generation_prompt;
    bool openai;                 // first turn OpenAI's tool_calls[].function.arguments JSON strings into
                                 // objects, as templates expect (vLLM does the same)
} tv_chat_input;

// Renders a conversation. *out: malloc'd, NUL-terminated. Errors: TV_ERR_INVALID for malformed JSON
// or a template that raises (the message says what it raised), TV_ERR_RANGE/NOMEM for its bounds.
// The plain format ignores tools and kwargs, and needs every message to be {role: string,
// content: string|null}.
tv_status tv_chat_render(const tv_chat *c, const tv_chat_input *in, char **out, tv_error *err);

// The token ids of prompt text this chat rendered, as llama.cpp's server makes them. Template: a
// leading bos_token is dropped when the tokenizer adds BOS (a trailing eos_token when it adds EOS),
// then tv_tokenize with add_special and parse_special, so the prompt has exactly one BOS whether the
// template writes it or not. Plain format: add_special, special tokens not parsed (typed text cannot
// forge control tokens). *ids malloc'd. TV_ERR_STATE without a tokenizer.
tv_status tv_chat_tokenize(const tv_chat *c, const char *text, int32_t **ids, size_t *n_ids, tv_error *err);

// The prompt for the next reply to messages_json, in at most max_tokens tokens: renders with the
// generation prompt and tokenizes (tv_chat_tokenize), dropping the fewest oldest
// exchanges that make it fit. An exchange is a "user" message and what follows it up to the next;
// a leading "system" message and the last exchange are always kept. Messages must be {role: string,
// content: string|null}.
// On TV_OK: *ids / *n_ids the prompt (malloc'd), *n_dropped (may be NULL) exchanges dropped,
// *kept_json (may be NULL) the messages kept as a JSON array and *text (may be NULL) the prompt
// text, both malloc'd. TV_ERR_RANGE (the token counts in the message) when even the last exchange
// alone does not fit; TV_ERR_STATE without a tokenizer.
tv_status tv_chat_fit(const tv_chat *c, const char *messages_json, size_t max_tokens, int *n_dropped, char **kept_json,
                      char **text, int32_t **ids, size_t *n_ids, tv_error *err);

// ============================ engine ============================
// Continuous-batching engine over a paged KV cache. Single-threaded: one thread calls add/step/
// abort (the server wraps it with queues). tv_engine_step() runs one scheduling round: it picks
// running decodes first, then prompt chunks, within the token budget, runs one forward pass over
// the flat batch, samples, and reports per-request deltas.
typedef struct tv_engine tv_engine;

// Speculative decoding (engine.c, "speculative decoding"): a proposer guesses up to spec_tokens
// next tokens of each decoding sequence; the target model scores them in the same flat batch and
// keeps the prefix its own sampling agrees with. Outputs are those of plain decoding (greedy: the
// same tokens; sampled: the same distribution, by rejection sampling; with a seed and n-gram
// proposals the same tokens).
typedef enum tv_spec_method {
    TV_SPEC_NONE = 0,
    TV_SPEC_NGRAM,             // prompt lookup: continue an n-gram of the sequence's own tokens
    TV_SPEC_SELF_DRAFT,        // the model's own first draft_layers layers and its head (their K/V are the
                               // model's own for those layers: no second cache); greedy requests get its
                               // argmax, sampled ones a draw with the request's sampling parameters
    TV_SPEC_DRAFT_MODEL,       // a second, smaller model with the same vocabulary (draft_model), proposing
                               // as the self-draft does; its K/V live in the same KV blocks as the
                               // target's (each block holds both)
    TV_SPEC_MTP,               // the target file's own next-token-prediction layer (nextn, MTP): draft_model
                               // is that layer loaded as a model (tv_model_params.mtp). A row at position p
                               // reads the embedding of token p and the target's final-normed hidden state
                               // at p - 1 (its own output's for its next guesses); its K/V live in the same
                               // blocks as the draft model's, the target's hidden states beside them
} tv_spec_method;

#define TV_SPEC_MAX_TOKENS 16  // spec_tokens at most

typedef struct tv_engine_config {
    int n_threads;             // worker threads for kernels (default: online cores)
    const char *cpu_path;      // CPU kernel path: NULL/"" = the best this CPU supports (default), or
                               // "generic" | "avx2" | "avx512" | "amx"; "avx2-novnni" | "avx512-novnni"
                               // skip the VNNI instructions. Each engine computes with its own path.
    int block_size;            // KV tokens per block (default 16)
    int64_t n_blocks;          // KV blocks in the pool; 0 = derive from kv_mem_mb
    int64_t kv_mem_mb;         // KV budget in MiB when n_blocks == 0 (default: enough for max_num_seqs × ctx, capped)
    int max_num_seqs;          // running sequences at most (default 64)
    int max_batched_tokens;    // tokens per step at most (default 512)
    bool chunked_prefill;      // split long prompts across steps (default true)
    bool prefix_caching;       // reuse the KV of full blocks shared with earlier prompts (default true)
    int state_ckpt_blocks;     // hybrid models with prefix caching: keep the recurrent state after every
                               // state_ckpt_blocks-th block boundary (0 = 4), so a prefix is reused up to
                               // its last checkpoint
    int state_ckpt_slots;      // ... in at most this many checkpoints (0 = max_num_seqs / 4, at least 1),
                               // each the size of a sequence's state, out of the KV memory budget
    int max_model_len;         // tokens per sequence (prompt + generated); 0 = the model's context
    int decode_steps;          // multi-step decoding: decode rounds per schedule (default 1)
    int kv_bits;               // KV cache element: 16 (f16), 32 (f32), 0 = auto: f32 when the
                               // model's weights are f32, else f16
    tv_spec_method spec;       // speculative decoding proposer (default TV_SPEC_NONE)
    int spec_tokens;           // tokens proposed per sequence and round at most, 1..TV_SPEC_MAX_TOKENS
                               // (0 with a proposer = 4). A hybrid model (linear-attention layers) keeps
                               // spec_tokens rollback states per sequence slot (the state after each row
                               // of a verification), out of the KV memory budget; it cannot self-draft
    int draft_layers;          // TV_SPEC_SELF_DRAFT: layers of the draft, 1 .. the model's layers - 1
    tv_model *draft_model;     // TV_SPEC_DRAFT_MODEL: the draft (borrowed: it must outlive the engine). Its
                               // vocabulary must be the target's: the same size and, where both models
                               // carry a tokenizer, the same text for every id (checked at create).
                               // TV_SPEC_MTP: the target file's MTP layer (tv_model_params.mtp), borrowed
    bool spec_always;          // speculate in every round (default false: only while the measured round
                               // times say it pays at the round's load; see engine.c, "load awareness")
} tv_engine_config;

void tv_engine_config_default(tv_engine_config *c);
tv_engine *tv_engine_create(tv_model *m, const tv_engine_config *c, tv_error *err);
void tv_engine_free(tv_engine *e);
// The draft model the engine was created with (tv_engine_config.draft_model; borrowed, still the
// caller's to free after the engine), NULL without one.
tv_model *tv_engine_draft_model(const tv_engine *e);
// The CPU kernel path this engine computes with: "generic" | "avx2" | "avx512" | "amx" (a static string).
const char *tv_engine_cpu_path(const tv_engine *e);
// The path NULL/"" selects on this machine ("amx" | "avx512" | "avx2" | "generic"), and why the
// "amx" path (AVX-512 plus AMX tiles for prefill and batched decode) cannot run here: a static
// sentence, or NULL when it can. These ask the CPU (and, for AMX, the OS) on every call.
const char *tv_cpu_best_path(void);
const char *tv_cpu_amx_unavailable(void);

// What an engine was created with, after defaults and clamping: the one source of these numbers
// (callers ask instead of re-deriving them from the config or the model). Fixed at creation, so
// safe to read from any thread.
typedef struct tv_engine_limits {
    int max_model_len;         // tokens per sequence at most: min(max_model_len, model context, KV pool)
    int max_num_seqs;          // sequences running at once
    int max_batched_tokens;    // tokens per step
    int block_size;            // KV tokens per block
    int64_t n_blocks;          // KV blocks in the pool
    int kv_bits;               // KV element: 16 (f16) or 32 (f32)
    int decode_steps;          // decode rounds per step
    int n_threads;             // kernel threads
    tv_spec_method spec;       // speculative decoding proposer
    int spec_tokens;           // its tokens per sequence and round at most (0 without a proposer)
    int draft_layers;          // TV_SPEC_SELF_DRAFT: the draft's layers, else 0
    double draft_kv_bytes_per_block;  // TV_SPEC_DRAFT_MODEL / TV_SPEC_MTP: the draft's share of kv_bytes_per_block
                                      // (MTP: its K/V and the target's hidden state per token), else 0
} tv_engine_limits;

void tv_engine_get_limits(const tv_engine *e, tv_engine_limits *l);

typedef struct tv_sampling_params {
    float temperature;         // 0 = greedy (default 1.0)
    int top_k;                 // <= 0: off
    float top_p;               // 1 = off
    float min_p;               // 0 = off
    float repetition_penalty;  // 1 = off (CTRL-style, over prompt + generated)
    float presence_penalty;    // 0 = off (OpenAI, over generated)
    float frequency_penalty;   // 0 = off (OpenAI, over generated)
    uint64_t seed;             // used when has_seed; else drawn from the engine's RNG
    bool has_seed;
    int n_logit_bias;
    const int32_t *logit_bias_ids;   // (n_logit_bias), copied at add time
    const float *logit_bias_vals;    // (n_logit_bias)
    int logprobs;              // -1: none; 0: chosen token's logprob; k > 0: also top-k alternatives
} tv_sampling_params;

void tv_sampling_params_default(tv_sampling_params *p);

// Sampling fields a caller set itself (tv_model_sampling_defaults leaves those alone).
enum {
    TV_SAMPLE_TEMPERATURE = 1 << 0, TV_SAMPLE_TOP_K = 1 << 1, TV_SAMPLE_TOP_P = 1 << 2, TV_SAMPLE_MIN_P = 1 << 3,
    TV_SAMPLE_REPETITION_PENALTY = 1 << 4,
};
// The model's recommended sampling: a Hugging Face folder's generation_config.json (temperature,
// top_p, top_k, min_p, repetition_penalty), a GGUF's general.sampling.* keys (llama.cpp's: temp,
// top_p, top_k, min_p, penalty_repeat; `convert hf` writes them from generation_config.json).
// Writes each one the model has into *p unless its bit is in `given`; returns the bits written
// (0: the model recommends nothing, *p untouched).
unsigned tv_model_sampling_defaults(const tv_model *m, unsigned given, tv_sampling_params *p);

// Structured output: what the generated text must match, enforced token by token (a mask over the
// vocabulary before sampling; end-of-generation tokens only where the text is complete).
typedef enum tv_constraint_kind {
    TV_CONSTRAINT_NONE = 0,
    TV_CONSTRAINT_JSON_OBJECT,   // any JSON object (spec unused)
    TV_CONSTRAINT_JSON_SCHEMA,   // spec: a JSON Schema; a keyword it cannot enforce is an error naming it
    TV_CONSTRAINT_REGEX,         // spec: a regular expression (JavaScript syntax) the whole output matches
    TV_CONSTRAINT_CHOICE,        // spec: a JSON array of strings; the output is one of them
    TV_CONSTRAINT_GRAMMAR,       // spec: a GBNF grammar (llama.cpp syntax, start rule "root")
} tv_constraint_kind;

// Whether spec compiles for kind: TV_OK, or TV_ERR_INVALID (TV_ERR_RANGE for a spec over the
// size bounds) with the position of the problem in the message (byte offset, grammar line and
// column, or the schema's JSON pointer and keyword). An unsatisfiable spec is TV_ERR_INVALID.
tv_status tv_constraint_check(tv_constraint_kind kind, const char *spec, tv_error *err);

typedef struct tv_request_params {
    const int32_t *prompt_ids;   // (n_prompt) used as given; or NULL to tokenize prompt_text
    size_t n_prompt;
    const char *prompt_text;     // UTF-8; tokenized with add_special / parse_special (tv_tokenize)
    bool add_special;            // the BOS / EOS the vocabulary asks for (default true)
    bool parse_special;
    tv_sampling_params sampling;
    int max_tokens;              // -1: until the context is full
    const char *const *stop;     // (n_stop) stop strings, matched on the text, not emitted
    int n_stop;
    const int32_t *stop_ids;     // (n_stop_ids) extra stop tokens
    int n_stop_ids;
    bool ignore_eos;
    tv_constraint_kind constraint;   // NONE (default): free text
    const char *constraint_spec;     // NUL-terminated, copied at add time
    void *user;                  // returned in outputs
} tv_request_params;

void tv_request_params_default(tv_request_params *p);
// Queues a request (copies everything it needs). Rejects, with the numbers in the message
// (TV_ERR_RANGE), a prompt that can never fit the context or the KV pool.
tv_status tv_engine_add_request(tv_engine *e, const tv_request_params *p, uint64_t *req_id, tv_error *err);
// Aborts a waiting or running request: its blocks return to the pool at once and the next step
// reports it finished with TV_FINISH_ABORT (up to max_num_seqs aborts a step; the rest follow).
// TV_ERR_INVALID for an unknown id; TV_ERR_NOMEM: nothing changed, the request goes on.
tv_status tv_engine_abort(tv_engine *e, uint64_t req_id);

// ERROR: the request could not go on (out of memory inside a step, a failed forward pass); its
// output's error says why. The engine stays usable and the other requests are not affected, unless
// the failure hit the whole batch (then every request in it finishes with the error).
typedef enum tv_finish_reason {
    TV_FINISH_NONE = 0, TV_FINISH_STOP, TV_FINISH_LENGTH, TV_FINISH_ABORT, TV_FINISH_ERROR
} tv_finish_reason;

typedef struct tv_logprob { int32_t id; float logprob; } tv_logprob;

typedef struct tv_request_output {
    uint64_t req_id;
    void *user;
    const int32_t *new_ids;      // (n_new) tokens sampled this step
    int n_new;
    const char *text;            // complete UTF-8 text of this step's tokens (stop strings withheld), NUL-terminated
    size_t text_len;
    const tv_logprob *logprobs;  // (n_new) chosen tokens' logprobs when requested, else NULL
    const tv_logprob *top_logprobs;  // (n_new, n_top) when logprobs > 0, else NULL
    int n_top;
    tv_finish_reason finish;     // NONE while running
    const tv_error *error;       // finish ERROR: code and message (valid until the next step), else NULL
    int32_t stop_token;          // the token that stopped it (finish STOP by token), else -1
    int n_prompt;                // prompt tokens
    int n_generated;             // generated so far (cumulative)
    int n_cached;                // prompt tokens whose KV was reused (prefix caching), else 0
} tv_request_output;

// One step: schedule -> run (one forward pass over the flat batch) -> postprocess (sample, detokenize,
// stop checks); with decode_steps > 1, more rounds while the batch is pure decode. *outs lists every
// request with news this step (valid until the next call). A sequence's step is all-or-nothing: its
// sampled token is appended with all its outputs, or the request finishes with TV_FINISH_ERROR and
// nothing of this step. Such failures never stop the engine: the step still returns TV_OK, with
// those records; TV_ERR_INVALID only for bad arguments.
tv_status tv_engine_step(tv_engine *e, const tv_request_output **outs, int *n_outs, tv_error *err);
bool tv_engine_has_work(const tv_engine *e);

typedef struct tv_engine_stats {
    int n_running, n_waiting;
    int64_t n_blocks_total, n_blocks_free;   // free includes cached blocks (reclaimable)
    int64_t n_blocks_cached;     // free blocks still holding a reusable prompt prefix
    uint64_t n_prefix_hit_tokens;  // prompt tokens served from the prefix cache
    int block_size;
    uint64_t n_prompt_tokens, n_generated_tokens;  // processed since creation
    uint64_t n_batched_tokens;   // tokens run through the model (prompt chunks, recompute, decodes)
    int last_step_tokens;        // tokens in the last step's batch
    uint64_t n_steps, n_preemptions, n_finished, n_aborted;
    double kv_bytes_per_block;   // all of a block: the target's K/V and, with a draft model, the draft's
    // hybrid models (Gated DeltaNet layers): fixed-size recurrent-state slots, one per running
    // sequence (0 for other models)
    int n_state_slots_total, n_state_slots_free;
    double state_bytes_per_slot;
    int n_state_ckpt_total, n_state_ckpt_held;   // prefix caching's state checkpoints (slots, in use)
    double t_linear_layers_ms, t_attn_layers_ms;  // forward time in the linear-attention layers and in the
                                                  // full-attention ones, since creation (FFNs included)
    double t_gdn_kernels_ms, t_attn_kernels_ms;   // within them: the Gated DeltaNet kernels (conv + delta
                                                  // rule) and the attention kernels (KV write + attention)
    // speculative decoding (vLLM's vllm:spec_decode_* counters): verification items run, tokens
    // proposed, proposed tokens accepted, and accepted at each proposal position
    uint64_t n_spec_drafts, n_spec_draft_tokens, n_spec_accepted_tokens;
    uint64_t n_spec_accepted_per_pos[TV_SPEC_MAX_TOKENS];
    uint64_t n_spec_draft_rows;   // rows the proposer's forward passes ran (self-draft, draft model, MTP layer; catch-up included)
    // load awareness (speculation on, spec_always off): rounds with guesses that speculated and that
    // ran plain because the cost model (measured round and draft costs, acceptance) predicted plain
    // decoding faster; at the last such round: the decoding rates it predicted (tokens/s, speculating
    // with the best cap and plain; 0 while unknown), its decision (1 speculated) and the guesses per
    // sequence it verified at most (0 plain)
    uint64_t n_spec_rounds, n_spec_rounds_plain;
    double spec_rate_tok_s, spec_plain_rate_tok_s;
    // over the rounds that speculated: the seconds (draft passes, target round, sampling; of which the
    // draft passes) and the tokens gained (accepted guesses) the cost model predicted (catch-up in
    // full, before the gate's correction), and what they took and gained; spec_cost_factor: the
    // correction (realized / predicted seconds) the last decided round applied (1 before any);
    // spec_margin: the relative gain over plain it required (the predictions' measured error, at
    // least 0.02)
    double spec_predicted_s, spec_predicted_draft_s, spec_predicted_gain;
    double spec_realized_s, spec_realized_draft_s, spec_realized_gain;
    double spec_cost_factor, spec_margin;
    int spec_enabled;
    int spec_round_tokens;
    // structured output: token masks applied, and how many of them the mask thread filled while
    // the forward pass ran (the rest were filled in line: a verification's later tokens, a retry)
    uint64_t n_masks, n_masks_overlapped;
    // pipeline parallelism (tinyvllm_dist.h; 0 otherwise): bytes rank 0 sent to the second stage
    // (every stage boundary carries the same batch and a hidden state of the same size) and bytes
    // the last stage returned (sampled ids and logprobs, logits rows of requests sampled on rank 0)
    uint64_t n_pipeline_boundary_bytes, n_pipeline_reply_bytes;
} tv_engine_stats;

void tv_engine_get_stats(const tv_engine *e, tv_engine_stats *s);

#ifdef __cplusplus
}
#endif
#endif
