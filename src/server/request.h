// request.h — OpenAI request bodies -> validated parameters, as a pure function (no I/O, no model):
// JSON text in, an owned srv_request or an OpenAI-style error out. Fuzzed by fuzz/fuzz_request.c.
//
// Grammar accepted (unknown keys are ignored, as OpenAI-compatible servers do):
//   completions: { model?: str, prompt: str | [str, ...] | [int, ...] | [[int, ...], ...],
//                  max_tokens?: int>=1|null (default 16), echo?: false, suffix?: null, logprobs?: int 0..20|null, ... }
//   chat:        { model?: str, messages: [{role: str, content: str | [{type:"text", text: str}] | null,
//                  name?, tool_calls?, tool_call_id?}, ...], max_completion_tokens? | max_tokens?,
//                  logprobs?: bool, top_logprobs?: int 0..20, tools?: [...], add_generation_prompt?: bool,
//                  chat_template_kwargs?: {...} (extra template variables, e.g. enable_thinking) }
//   both:        temperature 0..2, top_p (0,1], top_k int >= -1, min_p 0..1, seed int, stop str|[str],
//                n 1..SRV_MAX_N, presence_penalty/frequency_penalty -2..2, repetition_penalty (0,2],
//                logit_bias {"<token id>": -100..100}, ignore_eos bool, user str, stream bool,
//                stream_options {include_usage: bool} (only with stream: true)
//   structured output (at most one of): response_format {type: "text" | "json_object" |
//                "json_schema", json_schema: {name?, schema, strict?}}; structured_outputs (vLLM) or
//                guided_json / guided_regex / guided_choice / guided_grammar (vLLM's older names)
//                {json: schema | str, regex: str, choice: [str], grammar: str (GBNF), json_object: true};
//                grammar: str (GBNF) and json_schema: schema (llama-server). A spec that does not
//                compile (tv_constraint_check) is a 400 naming the field and the position.
//   chat tools:  tool_choice "none" | "auto" | "required" | {type: "function", function: {name}},
//                parallel_tool_calls bool; required / named add a JSON Schema constraint (tools.h);
//                reasoning_format "auto" | "none" | "deepseek", include_reasoning bool.
//   /tokenize:   { model?, prompt: str, add_special_tokens?: bool=true } |
//                { model?, messages: [...], add_generation_prompt?: bool=true, add_special_tokens?: bool=false,
//                  chat_template_kwargs?: {...} }
//                (messages: the ids a chat completion runs; add_special_tokens: the vocabulary's BOS/EOS
//                on top of the rendered text, as vLLM),
//                return_token_strs?: bool
//   /detokenize: { model?, tokens: [int, ...] }
#ifndef TV_SERVER_REQUEST_H
#define TV_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tinyvllm.h"

#define SRV_MAX_N 128          // choices per request
#define SRV_MAX_PROMPTS 256    // prompts in one completions request
#define SRV_MAX_SEQS 256       // n * prompts
#define SRV_MAX_STOP 16        // stop strings
#define SRV_MAX_LOGPROBS 20    // top logprobs
#define SRV_MAX_BIAS 1024      // logit_bias entries

typedef enum srv_api { SRV_API_COMPLETIONS = 0, SRV_API_CHAT, SRV_API_TOKENIZE, SRV_API_DETOKENIZE } srv_api;

// An OpenAI error: {"error": {"message", "type", "param", "code"}} with its HTTP status.
typedef struct srv_error {
    int status;            // HTTP status, e.g. 400
    const char *type;      // static string: "invalid_request_error", ...
    const char *code;      // static string or NULL
    char param[64];        // "" = null
    char message[512];
} srv_error;

// Fills e and returns false (so parsers can `return srv_fail(...)`).
bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

typedef struct srv_prompt {
    char *text;            // UTF-8 text, or NULL when ids are given
    int32_t *ids;          // (n_ids) token ids, or NULL
    size_t n_ids;
} srv_prompt;

typedef enum srv_tool_choice { SRV_TOOLS_AUTO = 0, SRV_TOOLS_NONE, SRV_TOOLS_REQUIRED, SRV_TOOLS_NAMED } srv_tool_choice;

typedef struct srv_request {
    srv_api api;
    char *model;                 // NULL = not given
    srv_prompt *prompts;         // (n_prompts) completions and /tokenize (one)
    int n_prompts;
    cJSON *messages;             // chat and /tokenize: normalized (content flattened to a string)
    cJSON *tools;                // chat: as given, or NULL
    cJSON *kwargs;               // chat, /tokenize: chat_template_kwargs as given, or NULL
    bool add_generation_prompt;  // chat, /tokenize
    bool add_special_tokens;     // /tokenize
    bool return_token_strs;      // /tokenize
    int32_t *tokens;             // (n_tokens) /detokenize
    size_t n_tokens;

    int max_tokens;              // -1 = until the context is full (chat default); completions default 16
    tv_sampling_params sampling; // logit bias points into bias_ids/bias_vals below; logprobs set
    int logprobs;                // -1 none; completions: k alternatives; chat: top_logprobs
    bool echo;                   // completions: prepend the prompt to the text
    char **stop;                 // (n_stop)
    int n_stop;
    int32_t *bias_ids;           // (sampling.n_logit_bias)
    float *bias_vals;            // (sampling.n_logit_bias)
    int n;
    bool stream, include_usage, ignore_eos;
    bool skip_special_tokens;    // default true
    tv_constraint_kind constraint;   // structured output, NONE = free text
    char *constraint_spec;       // the schema / regex / choice array / grammar text, or NULL
    srv_tool_choice tool_choice; // chat with tools: tool_choice (default auto)
    char tool_name[128];         // tool_choice {type: function, function: {name}}
    bool parallel_tool_calls;    // default true
    bool reasoning;              // split <think>...</think> into reasoning_content (default true;
                                 // reasoning_format "none" or include_reasoning false turn it off)
} srv_request;

// Parses and validates one body. n_vocab bounds token ids (<= 0: unchecked). sampling: the values of
// the fields the body does not set (the model's recommended sampling over the library's defaults;
// NULL: tv_sampling_params_default). NULL + *err on failure (err->status 400 for every problem with
// the body itself).
srv_request *srv_request_parse(srv_api api, const char *body, size_t len, int32_t n_vocab, const tv_sampling_params *sampling,
                               srv_error *err);
void srv_request_free(srv_request *r);

#endif
