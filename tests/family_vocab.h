// family_vocab.h — small vocab-only GGUF files shaped like the model families' vocabularies: the
// same tokenizer model and pre-tokenizer, the same special tokens with the same token types and
// the same bos/eos/add_bos_token metadata as the real files (Qwen2.5/Qwen3, Llama 3.1, Gemma 2/3,
// Phi-3, Phi-4-mini, Granite 3, Mistral 3 (tekken), Gemma 4, a harmony-style set), over a tiny
// base vocabulary (the 256 byte-level characters for byte-level BPE; <0xXX> byte tokens and a few
// "▁" words for SentencePiece and Gemma 4's BPE). The listed tokens (specials, and a few words typed
// normal) follow the base vocabulary, in order; merges are the family's few listed ones.
// For tests (include after <cmocka.h>): fv_write(name, path) writes the file.
#ifndef TV_FAMILY_VOCAB_H
#define TV_FAMILY_VOCAB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

enum { FV_NORMAL = 1, FV_CONTROL = 3, FV_USER = 4 };

typedef struct fv_special { const char *text; int type; } fv_special;

typedef struct family_vocab {
    const char *name;
    const char *model;            // tokenizer.ggml.model: "gpt2" | "llama" | "gemma4"
    const char *pre;              // tokenizer.ggml.pre (gpt2)
    const char *spm_head[4];      // llama: the first tokens (<unk> <s> </s> or Gemma's <pad> <eos> <bos> <unk>)
    const char *bos, *eos, *eot;  // texts of bos_token_id / eos_token_id / eot_token_id (NULL: key absent)
    int add_bos;                  // tokenizer.ggml.add_bos_token: 0 / 1, -1 absent
    int add_space_prefix;         // tokenizer.ggml.add_space_prefix: 0 / 1, -1 absent
    fv_special specials[24];      // appended after the base vocabulary; ends at text NULL
    const char *merges[8];        // BPE merges "a b" (a single harmless one when none); ends at NULL
} family_vocab;

static const family_vocab FAMILY_VOCABS[] = {
    {"qwen2.5", "gpt2", "qwen2", {0}, "<|endoftext|>", "<|im_end|>", NULL, 0, -1,
     {{"<|endoftext|>", FV_CONTROL}, {"<|im_start|>", FV_CONTROL}, {"<|im_end|>", FV_CONTROL},
      {"<|fim_prefix|>", FV_CONTROL}, {"<|fim_middle|>", FV_CONTROL}, {"<|fim_suffix|>", FV_CONTROL},
      {"<|fim_pad|>", FV_CONTROL}, {"<|repo_name|>", FV_CONTROL}, {"<|file_sep|>", FV_CONTROL},
      {"<tool_call>", FV_USER}, {"</tool_call>", FV_USER}, {NULL, 0}}, {NULL}},
    // a base (not instruct) Qwen3: EOS is <|endoftext|>, the chat turn still ends at <|im_end|>
    {"qwen3-base", "gpt2", "qwen2", {0}, "<|endoftext|>", "<|endoftext|>", NULL, 0, -1,
     {{"<|endoftext|>", FV_CONTROL}, {"<|im_start|>", FV_CONTROL}, {"<|im_end|>", FV_CONTROL},
      {"<|fim_pad|>", FV_CONTROL}, {"<|repo_name|>", FV_CONTROL}, {"<|file_sep|>", FV_CONTROL},
      {"<tool_call>", FV_USER}, {"</tool_call>", FV_USER}, {"<think>", FV_USER}, {"</think>", FV_USER}, {NULL, 0}}, {NULL}},
    {"llama3.1", "gpt2", "llama-bpe", {0}, "<|begin_of_text|>", "<|eot_id|>", NULL, 1, -1,
     {{"<|begin_of_text|>", FV_CONTROL}, {"<|end_of_text|>", FV_CONTROL}, {"<|start_header_id|>", FV_CONTROL},
      {"<|end_header_id|>", FV_CONTROL}, {"<|eom_id|>", FV_CONTROL}, {"<|eot_id|>", FV_CONTROL},
      {"<|python_tag|>", FV_CONTROL}, {NULL, 0}}, {NULL}},
    {"granite3", "gpt2", "refact", {0}, "<|end_of_text|>", "<|end_of_text|>", NULL, 0, -1,
     {{"<|end_of_text|>", FV_CONTROL}, {"<fim_prefix>", FV_CONTROL}, {"<fim_middle>", FV_CONTROL},
      {"<fim_suffix>", FV_CONTROL}, {"<fim_pad>", FV_CONTROL}, {"<filename>", FV_CONTROL}, {"<reponame>", FV_CONTROL},
      {"<|start_of_role|>", FV_CONTROL}, {"<|end_of_role|>", FV_CONTROL}, {"<|tool_call|>", FV_CONTROL}, {NULL, 0}}, {NULL}},
    // harmony (gpt-oss): <|end|> ends a message, <|return|> / <|call|> end the generation
    {"harmony", "gpt2", "qwen2", {0}, "<|startoftext|>", "<|return|>", NULL, 0, -1,
     {{"<|startoftext|>", FV_CONTROL}, {"<|endoftext|>", FV_CONTROL}, {"<|start|>", FV_CONTROL},
      {"<|end|>", FV_CONTROL}, {"<|message|>", FV_CONTROL}, {"<|channel|>", FV_CONTROL}, {"<|return|>", FV_CONTROL},
      {"<|call|>", FV_CONTROL}, {NULL, 0}}, {NULL}},
    {"gemma3", "llama", NULL, {"<pad>", "<eos>", "<bos>", "<unk>"}, "<bos>", "<eos>", NULL, 1, 0,
     {{"<mask>", FV_USER}, {"<start_of_turn>", FV_CONTROL}, {"<end_of_turn>", FV_CONTROL}, {NULL, 0}}, {NULL}},
    // Gemma 4's BPE (U+2581 for spaces, <0xXX> bytes; add_bos_token false in the file, true in llama.cpp);
    // </s> is text there, not an end
    {"gemma4", "gemma4", "gemma4", {"<pad>", "<eos>", "<bos>", "<unk>"}, "<bos>", "<eos>", NULL, 0, -1,
     {{"<|turn>", FV_CONTROL}, {"<turn|>", FV_CONTROL}, {"<|tool_call>", FV_CONTROL}, {"<|tool_response>", FV_CONTROL},
      {"</s>", FV_USER}, {"\n\n", FV_NORMAL}, {"Hi", FV_NORMAL}, {NULL, 0}},
     {"H i", "\xe2\x96\x81 Hi", "u s", "us e", "use r", NULL}},
    // Mistral 3 (tekken): whole pre-tokens found in the vocab are tokens (ignore_merges); BOS added
    {"mistral3", "gpt2", "tekken", {0}, "<s>", "</s>", NULL, -1, -1,
     {{"<unk>", FV_CONTROL}, {"<s>", FV_CONTROL}, {"</s>", FV_CONTROL}, {"[INST]", FV_CONTROL}, {"[/INST]", FV_CONTROL},
      {"[SYSTEM_PROMPT]", FV_CONTROL}, {"[/SYSTEM_PROMPT]", FV_CONTROL}, {"Hello", FV_NORMAL}, {"World", FV_NORMAL},
      {"\xc4\xa0World", FV_NORMAL}, {NULL, 0}}, {NULL}},
    // Phi-4-mini (GPT-4o's o200k pre-tokenizer): <|end|> ends a turn
    {"phi4-mini", "gpt2", "gpt-4o", {0}, "<|endoftext|>", "<|endoftext|>", NULL, 0, -1,
     {{"<|endoftext|>", FV_CONTROL}, {"<|system|>", FV_CONTROL}, {"<|end|>", FV_CONTROL}, {"<|user|>", FV_CONTROL},
      {"<|assistant|>", FV_CONTROL}, {"He", FV_NORMAL}, {"Hel", FV_NORMAL}, {"World", FV_NORMAL}, {NULL, 0}},
     {"H e", "He l", "W o", NULL}},
    // Phi-3 mini: EOS <|endoftext|>; a turn ends at <|end|>
    {"phi3", "llama", NULL, {"<unk>", "<s>", "</s>", NULL}, "<s>", "<|endoftext|>", NULL, 0, -1,
     {{"<|endoftext|>", FV_CONTROL}, {"<|assistant|>", FV_CONTROL}, {"<|system|>", FV_CONTROL},
      {"<|end|>", FV_CONTROL}, {"<|user|>", FV_CONTROL}, {NULL, 0}}, {NULL}},
};
#define N_FAMILY_VOCABS (sizeof FAMILY_VOCABS / sizeof FAMILY_VOCABS[0])

static inline const family_vocab *fv_find(const char *name) {
    for (size_t i = 0; i < N_FAMILY_VOCABS; i++)
        if (!strcmp(FAMILY_VOCABS[i].name, name)) return &FAMILY_VOCABS[i];
    return NULL;
}

// GPT-2's byte -> printable-codepoint map, UTF-8 encoded into out (NUL-terminated).
static inline void fv_byte_char(unsigned b, char out[4]) {
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        unsigned n = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

// Writes family vocabulary `name` as a vocab-only GGUF at path; false when unknown or unwritable.
static inline bool fv_write(const char *name, const char *path) {
    const family_vocab *f = fv_find(name);
    if (!f) return false;
    enum { CAP = 512 };
    char *toks[CAP];
    int32_t types[CAP];
    float scores[CAP];
    int n = 0;
    bool spm = !strcmp(f->model, "llama"), gemma4 = !strcmp(f->model, "gemma4");
    if (spm || gemma4) {
        for (int i = 0; i < 4 && f->spm_head[i]; i++) {
            toks[n] = strdup(f->spm_head[i]);
            types[n] = !strcmp(f->spm_head[i], "<unk>") ? 2 : FV_CONTROL;
            scores[n++] = 0;
        }
        for (int b = 0; b < 256; b++) {
            toks[n] = malloc(8);
            snprintf(toks[n], 8, "<0x%02X>", b);
            types[n] = 6;
            scores[n++] = 0;
        }
        static const char *words[] = {"\xe2\x96\x81", "\xe2\x96\x81H", "\xe2\x96\x81Hi", "H", "i", "u", "s", "e", "r",
                                      "us", "use", "user", "\xe2\x96\x81user", "model", "\xe2\x96\x81model"};
        for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
            toks[n] = strdup(words[i]);
            types[n] = 1;
            scores[n++] = -(float)i;
        }
    } else {
        for (unsigned b = 0; b < 256; b++) {
            char c[4];
            fv_byte_char(b, c);
            toks[n] = strdup(c);
            types[n] = 1;
            scores[n++] = 0;
        }
    }
    int first_special = n;
    for (int i = 0; f->specials[i].text; i++) {
        toks[n] = strdup(f->specials[i].text);
        types[n] = f->specials[i].type;
        scores[n++] = 0;
    }
    gguf_writer *w = gguf_writer_create();
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_str(w, "general.name", f->name);
    gguf_set_str(w, "tokenizer.ggml.model", f->model);
    if (f->pre) gguf_set_str(w, "tokenizer.ggml.pre", f->pre);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n);
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n);
    if (spm) gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (uint64_t)n);
    else if (f->merges[0]) {
        uint64_t n_merges = 0;
        while (n_merges < 8 && f->merges[n_merges]) n_merges++;
        gguf_set_arr_str(w, "tokenizer.ggml.merges", f->merges, NULL, n_merges);
    } else {   // "¡ ¢": never met in the tests' ASCII text
        gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const[]){"\xc2\xa1 \xc2\xa2"}, NULL, 1);
    }
    const char *keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    const char *texts[3] = {f->bos, f->eos, f->eot};
    for (int k = 0; k < 3; k++) {
        if (!texts[k]) continue;
        for (int i = 0; i < n; i++)
            // byte-level BPE: the special, not a base character of the same spelling
            if (!strcmp(toks[i], texts[k]) && (i >= first_special || strcmp(f->model, "gpt2") != 0)) {
                gguf_set_u32(w, keys[k], (uint32_t)i);
                break;
            }
    }
    if (f->add_bos >= 0) gguf_set_bool(w, "tokenizer.ggml.add_bos_token", f->add_bos);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (f->add_space_prefix >= 0) gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", f->add_space_prefix);
    tv_error err = {0};
    bool ok = gguf_writer_write(w, path, &err) == TV_OK;
    if (!ok) fprintf(stderr, "fv_write %s: %s\n", path, err.msg);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(toks[i]);
    return ok;
}

#endif
