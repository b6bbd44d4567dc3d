// sniff.c — what a file looks like (sniff.h): GGUF (model or vocabulary), llama2.c checkpoint or
// tokenizer.bin, JSON, text, or unknown binary. Decided by content, cheapest test first; only error
// paths call it, so clarity beats speed.
#include "sniff.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "util/status.h"

#define SNIFF_HEAD 512   // bytes looked at for text / JSON

// A llama2.c tokenizer.bin: int32 max_token_length, then (float score, int32 len, len bytes)
// records that end exactly at the end of the file. *n gets the record count.
static bool is_llama2c_tokenizer(FILE *f, long size, long *n) {
    int32_t max_len;
    if (size < 12 || fseek(f, 0, SEEK_SET) || fread(&max_len, 4, 1, f) != 1 || max_len < 1 || max_len > 4096) return false;
    long off = 4;
    *n = 0;
    while (off < size) {
        unsigned char rec[8];
        int32_t len;
        if (size - off < 8 || fread(rec, 1, 8, f) != 8) return false;
        memcpy(&len, rec + 4, 4);
        if (len < 0 || len > max_len || len > size - off - 8 || fseek(f, len, SEEK_CUR)) return false;
        off += 8 + len;
        ++*n;
    }
    return *n > 0;
}

// true when head[0, n) is UTF-8 text without control bytes other than tab, CR, LF, FF.
static bool is_text(const unsigned char *head, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = head[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') return false;
            i++;
            continue;
        }
        size_t k = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
        if (!k) return false;
        if (i + k > n) return true;   // a character cut by the end of the sample
        for (size_t j = 1; j < k; j++)
            if ((head[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static sniff_kind sniff_gguf(const char *path, char *desc, size_t cap) {
    tv_error err = {0};
    gguf_ctx *g = gguf_open(path, &err);
    if (!g) { snprintf(desc, cap, "a damaged GGUF file (%s)", err.msg); return SNIFF_GGUF_BROKEN; }
    gguf_str arch = {0}, tok = {0};
    bool has_arch = gguf_get_str(g, "general.architecture", &arch);
    bool has_tok = gguf_get_str(g, "tokenizer.ggml.model", &tok) && !(tok.len == 8 && !memcmp(tok.ptr, "no_vocab", 8));
    int64_t n_tensors = gguf_n_tensors(g);
    sniff_kind kind = n_tensors > 0 ? SNIFF_GGUF_MODEL : SNIFF_GGUF_VOCAB;
    if (kind == SNIFF_GGUF_MODEL)
        snprintf(desc, cap, "a GGUF model (%.*s, %lld tensors, %s)", has_arch ? (int)arch.len : 7, has_arch ? arch.ptr : "unknown",
                 (long long)n_tensors, has_tok ? "with a tokenizer" : "without a tokenizer");
    else
        snprintf(desc, cap, "a GGUF file without tensors (%s)", has_tok ? "a vocabulary" : "and without a vocabulary");
    gguf_close(g);
    return kind;
}

sniff_kind sniff_file(const char *path, char *desc, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(desc, cap, "unreadable"); return SNIFF_UNREADABLE; }
    unsigned char head[SNIFF_HEAD];
    size_t n = fread(head, 1, sizeof head, f);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    sniff_kind kind = SNIFF_BINARY;
    long n_tokens = 0;
    tv_llama2c *l2c = NULL;
    if (n == 0) {
        snprintf(desc, cap, "an empty file");
        kind = SNIFF_EMPTY;
    } else if (n >= 4 && !memcmp(head, "GGUF", 4)) {
        kind = sniff_gguf(path, desc, cap);
    } else if (n >= 28 && (l2c = llama2c_open(path, &(tv_error){0}))) {
        const tv_llama2c_config *c = llama2c_get_config(l2c);
        snprintf(desc, cap, "a llama2.c model checkpoint (dim %d, %d layers, vocab %d)", c->dim, c->n_layers, c->vocab_size);
        kind = SNIFF_LLAMA2C_MODEL;
        llama2c_close(l2c);
    } else if (is_llama2c_tokenizer(f, size, &n_tokens)) {
        snprintf(desc, cap, "a llama2.c tokenizer (%ld tokens)", n_tokens);
        kind = SNIFF_LLAMA2C_TOKENIZER;
    } else if (is_text(head, n)) {
        size_t i = 0;
        while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) i++;
        if (i < n && (head[i] == '{' || head[i] == '[')) {
            snprintf(desc, cap, "a JSON file");
            kind = SNIFF_JSON;
        } else {
            size_t e = i;
            while (e < n && e - i < 40 && head[e] != '\n' && head[e] != '\r') e++;
            while (e > i && e < n && (head[e] & 0xC0) == 0x80) e--;   // not inside a character
            snprintf(desc, cap, "a text file (starts \"%.*s\")", (int)(e - i), (const char *)head + i);
            kind = SNIFF_TEXT;
        }
    } else {
        snprintf(desc, cap, "binary data of no format tinyvllm knows (%ld bytes)", size);
    }
    fclose(f);
    return kind;
}

tv_status sniff_explain_model_error(const char *path, tv_status st, tv_error *err) {
    if (st == TV_ERR_NOMEM || st == TV_ERR_IO) return st;
    char desc[200];
    switch (sniff_file(path, desc, sizeof desc)) {
    case SNIFF_LLAMA2C_TOKENIZER:
    case SNIFF_GGUF_VOCAB:
        return err_fail(err, st, "%s is %s, not a model: give it as --tokenizer, and the model as -m", path, desc);
    case SNIFF_EMPTY:
    case SNIFF_JSON:
    case SNIFF_TEXT:
        return err_fail(err, st, "%s is %s, not a model (tinyvllm runs GGUF files and llama2.c checkpoints)", path, desc);
    default:
        return st;
    }
}

tv_status sniff_explain_tokenizer_error(const char *path, tv_status st, tv_error *err) {
    if (st == TV_ERR_NOMEM || st == TV_ERR_IO) return st;
    char desc[200];
    switch (sniff_file(path, desc, sizeof desc)) {
    case SNIFF_LLAMA2C_MODEL:
        return err_fail(err, st, "%s is %s, not a tokenizer: a llama2.c model keeps its vocabulary in a separate "
                        "tokenizer.bin (or use a GGUF that holds one)", path, desc);
    case SNIFF_GGUF_MODEL:
        return err_fail(err, st, "%s is %s, not a tokenizer file: it holds no vocabulary to use", path, desc);
    case SNIFF_EMPTY:
    case SNIFF_TEXT:
    case SNIFF_BINARY:
        return err_fail(err, st, "%s is %s, not a tokenizer (a llama2.c tokenizer.bin, a tokenizer.json or a GGUF "
                        "holding a vocabulary)", path, desc);
    default:
        return st;
    }
}
