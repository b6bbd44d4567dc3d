// tokenizer.c — vocabulary, loaders (GGUF, llama2.c tokenizer.bin), special-token partition,
// SentencePiece-style BPE, WordPiece, decoding and the streaming detokenizer.
//
// Encode pipeline (every family):
//   validate UTF-8 -> [BOS] -> split the text at special tokens (leftmost-longest; control tokens
//   only with parse_special, user-defined always) -> encode each raw fragment with the family's
//   algorithm -> [EOS]   (BOS / EOS with add_special, where the vocabulary asks for them):
//     SPM  : ' ' prefix (first fragment / after a special token), ' ' -> U+2581, one symbol per
//            UTF-8 char, repeatedly merge the adjacent pair whose concatenation is in the vocab with
//            the highest score (leftmost on ties), unknown chars -> <0xXX> byte tokens (or UNK).
//     BPE  : tok_bpe.c (pre-tokenizer regex sequence, byte-level alphabet, merge ranks).
//     WPM  : NFD, drop controls and accents, lowercase, split at whitespace and punctuation,
//            greedy longest-match per word ("▁word" then continuation pieces), UNK for a word
//            with no full cover.
// Decisions (written down): special tokens are matched leftmost-longest (Hugging Face's added-token
// semantics); llama.cpp scans longest-first, which differs only for overlapping special tokens.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "formats/sniff.h"
#include "tokenizer/tok_impl.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

#define TOK_MAX_PIECE_BYTES (1u << 16)   // longest vocab string accepted from a file
#define TOK_MAX_VOCAB (1 << 24)

static const char SPM_SPACE[] = "\xe2\x96\x81";   // U+2581 LOWER ONE EIGHTH BLOCK

// ---------------------------------------------------------------------------------------------
// small utilities

bool tok_ids_push(tok_ids *o, int32_t id) {
    int32_t *v = array_grow(o->v, &o->cap, o->n + 1, sizeof *o->v);
    if (!v) return false;
    o->v = v;
    o->v[o->n++] = id;
    return true;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ull; }
    h ^= h >> 33;   // finalizer: spread the bits over both halves (slot index and fingerprint)
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

// Length of the UTF-8 sequence at s (n bytes available): > 0 complete and valid (cp set),
// 0 a valid but unfinished prefix, < 0 invalid: -(length of the maximal valid prefix, >= 1).
static int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t b = s[i];
        if (b < lo || b > hi) return -i;
        lo = 0x80; hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

// Byte offset of the first invalid UTF-8 byte, or len if valid.
static size_t utf8_first_invalid(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if ((uint8_t)s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        int k = utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Length of the UTF-8 char starting with byte c (1 for stray bytes), as llama.cpp counts it.
static size_t utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

static int parse_byte_piece(const char *s, size_t n) {   // "<0xXX>" -> 0..255, else -1
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// vocabulary

size_t tok_strmap_find(const tok_strmap *m, char *const *pieces, const uint32_t *lens, const char *s, size_t n) {
    if (!m->cap) return 0;
    size_t mask = m->cap - 1;
    uint64_t h = hash_bytes(s, n);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        tok_strslot slot = m->slots[i];
        if (!slot.id1) return 0;
        if (slot.hash != h32) continue;
        uint32_t id = slot.id1 - 1;
        if (lens[id] == n && memcmp(pieces[id], s, n) == 0) return slot.id1;
    }
}

int32_t tok_find(const tv_tokenizer *t, const char *s, size_t n) {
    return (int32_t)tok_strmap_find(&t->map, t->pieces, t->piece_len, s, n) - 1;
}

tv_tokenizer *tok_alloc(int32_t n_vocab, tv_error *err) {
    if (n_vocab <= 0 || n_vocab > TOK_MAX_VOCAB) {
        err_fail(err, TV_ERR_FORMAT, "tokenizer: vocabulary size %d out of range", (int)n_vocab);
        return NULL;
    }
    tv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->n_vocab = n_vocab;
    t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
    t->piece_len = calloc((size_t)n_vocab, sizeof *t->piece_len);
    t->scores = calloc((size_t)n_vocab, sizeof *t->scores);
    t->types = malloc((size_t)n_vocab);
    t->is_eog = calloc((size_t)n_vocab, sizeof *t->is_eog);
    if (!t->pieces || !t->piece_len || !t->scores || !t->types || !t->is_eog) goto nomem;
    memset(t->types, TOK_TYPE_NORMAL, (size_t)n_vocab);
    t->bos = t->eos = t->eot = t->unk = t->sep = t->pad = t->cls = -1;
    t->eom = t->fim_pad = t->fim_rep = t->fim_sep = -1;
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    return t;
nomem:
    tv_tokenizer_free(t);
    err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory for %d tokens", (int)n_vocab);
    return NULL;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tv_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->piece_len[x] != t->piece_len[y]) return t->piece_len[x] > t->piece_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

tv_status tok_finish(tv_tokenizer *t, tv_error *err) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    t->map.slots = calloc(cap, sizeof *t->map.slots);
    if (!t->map.slots) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
    t->map.cap = cap;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->pieces[id]) return err_fail(err, TV_ERR_FORMAT, "tokenizer: token %d has no text", (int)id);
        uint32_t n = t->piece_len[id];
        if (n > t->max_piece_len) t->max_piece_len = n;
        // first occurrence wins for duplicate strings (as a sorted-vocab lookup would find any)
        if (tok_strmap_find(&t->map, t->pieces, t->piece_len, t->pieces[id], n)) continue;
        size_t mask = cap - 1;
        uint64_t h = hash_bytes(t->pieces[id], n);
        size_t i = h & mask;
        while (t->map.slots[i].id1) i = (i + 1) & mask;
        t->map.slots[i] = (tok_strslot){(uint32_t)id + 1, (uint32_t)(h >> 32)};
    }
    if (t->kind == TV_TOK_SPM || (t->kind == TV_TOK_BPE && !t->byte_level)) {
        for (int b = 0; b < 256; b++) {
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_ids[b] = tok_find(t, s, 6);
        }
        for (int32_t id = 0; id < t->n_vocab; id++)   // byte tokens are bytes even if untyped
            if (t->types[id] == TOK_TYPE_NORMAL && parse_byte_piece(t->pieces[id], t->piece_len[id]) >= 0 &&
                (t->kind == TV_TOK_SPM || t->bpe_byte_fallback))
                t->types[id] = TOK_TYPE_BYTE;
    }
    if (t->kind == TV_TOK_BPE && t->byte_level) {
        for (int b = 0; b < 256; b++) {
            char s[4];
            t->byte_ids[b] = tok_find(t, s, utf8_encode(tok_byte_to_cp((uint8_t)b), s));
        }
    }
    if (t->kind == TV_TOK_SPM) {   // can SPM text be cut before word-initial space marks?
        const char *mark = t->escape_spaces ? SPM_SPACE : " ";
        size_t ml = strlen(mark);
        t->spm_split_ok = true;
        for (int32_t id = 0; id < t->n_vocab && t->spm_split_ok; id++) {
            const char *p = t->pieces[id];
            uint32_t n = t->piece_len[id];
            if (t->types[id] != TOK_TYPE_NORMAL && t->types[id] != TOK_TYPE_USER_DEFINED) continue;
            for (uint32_t i = 1; i + ml <= n; i++) {
                if (memcmp(p + i, mark, ml) != 0) continue;
                if (i < ml || memcmp(p + i - ml, mark, ml) != 0) { t->spm_split_ok = false; break; }
            }
        }
    }
    return TV_OK;
}

// ---------------------------------------------------------------------------------------------
// end of generation and the special-token list
//
// Which tokens end generation (llama.cpp's rules, so that a GGUF stops where llama.cpp stops):
//   1. eot and eom, when the file names none, are found by their text (first match in the lists
//      below, in list order); fim pad / repo / file-separator ids likewise;
//   2. the set: the fim pad/repo/sep ids, every token whose text is in EOG_TEXT, eos, eot, eom;
//      a token found by text that is not typed control becomes control (a conversion bug in the file);
//   3. harmony-style vocabularies (<|return|> with <|call|>, or <|calls|> with <|flush|>) end a
//      message, not the generation, with <|end|>: it leaves the set (and becomes user-defined);
//      Gemma 4 (<|tool_response>) uses </s> as text: it leaves the set (and becomes normal).

static const char *const EOT_TEXT[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
};
static const char *const EOM_TEXT[] = {"<|eom_id|>"};
static const char *const FIM_PAD_TEXT[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
static const char *const FIM_REP_TEXT[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
static const char *const FIM_SEP_TEXT[] = {"<|file_sep|>"};
static const char *const EOG_TEXT[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
};

static int32_t find_str(const tv_tokenizer *t, const char *s) { return tok_find(t, s, strlen(s)); }

// The first of texts (n of them) in the vocab, as a control token; -1 if none.
static int32_t find_first(tv_tokenizer *t, const char *const *texts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_str(t, texts[i]);
        if (id >= 0) { t->types[id] = TOK_TYPE_CONTROL; return id; }
    }
    return -1;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void set_eog(tv_tokenizer *t) {
    if (t->is_llama2c) {
        // run.c stops when it samples BOS (1); a model trained on "text </s> <s> text" (aidreams260K)
        // writes its EOS "</s>" (2) first, which its GGUF conversion stops at: both end generation
        // here, so the .bin and the .gguf stop at the same token and "</s>" is never shown as text.
        if (t->n_vocab > 2) t->is_eog[1] = t->is_eog[2] = true;
        return;
    }
    if (t->eot < 0) t->eot = find_first(t, EOT_TEXT, N_OF(EOT_TEXT));
    if (t->eom < 0) t->eom = find_first(t, EOM_TEXT, N_OF(EOM_TEXT));
    if (t->fim_pad < 0) t->fim_pad = find_first(t, FIM_PAD_TEXT, N_OF(FIM_PAD_TEXT));
    if (t->fim_rep < 0) t->fim_rep = find_first(t, FIM_REP_TEXT, N_OF(FIM_REP_TEXT));
    if (t->fim_sep < 0) t->fim_sep = find_first(t, FIM_SEP_TEXT, N_OF(FIM_SEP_TEXT));
    for (size_t i = 0; i < N_OF(EOG_TEXT); i++) {
        int32_t id = find_str(t, EOG_TEXT[i]);
        if (id < 0) continue;
        t->is_eog[id] = true;
        t->types[id] = TOK_TYPE_CONTROL;
    }
    const int32_t named[] = {t->fim_pad, t->fim_rep, t->fim_sep, t->eos, t->eot, t->eom};
    for (size_t i = 0; i < N_OF(named); i++)
        if (named[i] >= 0) t->is_eog[named[i]] = true;
    int32_t end = find_str(t, "<|end|>"), ret = find_str(t, "<|return|>"), call = find_str(t, "<|call|>"),
            calls = find_str(t, "<|calls|>"), flush = find_str(t, "<|flush|>");
    bool has_call = (call >= 0 && t->is_eog[call]) || (calls >= 0 && t->is_eog[calls]);
    if (end >= 0 && t->is_eog[end] && has_call && ((ret >= 0 && t->is_eog[ret]) || (flush >= 0 && t->is_eog[flush]))) {
        t->is_eog[end] = false;
        t->types[end] = TOK_TYPE_USER_DEFINED;
    }
    int32_t tool_response = find_str(t, "<|tool_response>"), s_end = find_str(t, "</s>");
    if (tool_response >= 0 && t->is_eog[tool_response] && s_end >= 0 && t->is_eog[s_end]) {
        t->is_eog[s_end] = false;
        t->types[s_end] = TOK_TYPE_NORMAL;
    }
}

static bool is_special_type(uint8_t type) {
    return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED || type == TOK_TYPE_UNKNOWN;
}

tv_status tok_set_specials(tv_tokenizer *t, tv_error *err) {
    set_eog(t);
    free(t->special_ids);
    t->special_ids = NULL;
    t->n_special = 0;
    size_t n_special = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_special_type(t->types[id]) && t->piece_len[id] > 0) n_special++;
    if (n_special) {
        t->special_ids = malloc(n_special * sizeof *t->special_ids);
        if (!t->special_ids) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
        for (int32_t id = 0; id < t->n_vocab; id++)
            if (is_special_type(t->types[id]) && t->piece_len[id] > 0 && tok_find(t, t->pieces[id], t->piece_len[id]) == id)
                t->special_ids[t->n_special++] = id;
        qsort_r(t->special_ids, t->n_special, sizeof *t->special_ids, cmp_special, t);
    }
    free(t->rstrip);
    t->rstrip = NULL;
    if (t->phi3_rstrip) {   // llama.cpp's Phi-3 rule: every special token but <unk> <s> <|endoftext|>
        if (!(t->rstrip = calloc((size_t)t->n_vocab, sizeof *t->rstrip))) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
        for (size_t k = 0; k < t->n_special; k++) t->rstrip[t->special_ids[k]] = true;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < N_OF(keep); i++) {
            int32_t id = find_str(t, keep[i]);
            if (id >= 0) t->rstrip[id] = false;
        }
    }
    return TV_OK;
}

void tv_tokenizer_free(tv_tokenizer *t) {
    if (!t) return;
    if (t->pieces)
        for (int32_t i = 0; i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->is_eog);
    free(t->rstrip);
    free(t->map.slots);
    free(t->special_ids);
    free(t->norm_prepend);
    free(t->norm_replace_from);
    free(t->norm_replace_to);
    tok_bpe_free(t);
    free(t);
}

bool tok_set_piece(tv_tokenizer *t, int32_t id, const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return false;
    memcpy(p, s, n);
    p[n] = '\0';
    free(t->pieces[id]);
    t->pieces[id] = p;
    t->piece_len[id] = (uint32_t)n;
    return true;
}

// ---------------------------------------------------------------------------------------------
// loaders

tv_tokenizer *tokenizer_load_llama2c(const char *path, int32_t vocab_size, tv_error *err) {
    tv_tokenizer *t = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) { err_fail(err, TV_ERR_IO, "%s: cannot open", path); return NULL; }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 4 || fseek(f, 0, SEEK_SET) != 0) { err_fail(err, TV_ERR_FORMAT, "%s: too small for a llama2.c tokenizer", path); goto fail; }
    uint8_t *data = malloc((size_t)size);
    if (!data) { err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path); goto fail; }
    if (fread(data, 1, (size_t)size, f) != (size_t)size) { free(data); err_fail(err, TV_ERR_IO, "%s: read failed", path); goto fail; }
    fclose(f);
    f = NULL;
    // count entries when the caller does not know the vocab size
    size_t off = 4, n = 0;
    while (off < (size_t)size && (vocab_size <= 0 || n < (size_t)vocab_size)) {
        int32_t len;
        if ((size_t)size - off < 8) break;
        memcpy(&len, data + off + 4, 4);
        if (len < 0 || (uint32_t)len > TOK_MAX_PIECE_BYTES || (size_t)len > (size_t)size - off - 8) break;
        off += 8 + (size_t)len;
        n++;
    }
    if (vocab_size > 0 && n != (size_t)vocab_size) {
        free(data);
        err_fail(err, TV_ERR_FORMAT, "%s: truncated or corrupt at byte offset %zu reading token %zu of %d", path, off, n, (int)vocab_size);
        goto fail;
    }
    if (vocab_size <= 0 && off != (size_t)size) {
        free(data);
        err_fail(err, TV_ERR_FORMAT, "%s: corrupt token record at byte offset %zu", path, off);
        goto fail;
    }
    t = tok_alloc((int32_t)n, err);
    if (!t) { free(data); goto fail; }
    t->kind = TV_TOK_SPM;
    t->is_llama2c = true;
    off = 4;
    for (size_t i = 0; i < n; i++) {
        float score;
        int32_t len;
        memcpy(&score, data + off, 4);
        memcpy(&len, data + off + 4, 4);
        t->scores[i] = score;
        if (!tok_set_piece(t, (int32_t)i, (const char *)data + off + 8, (size_t)len)) {
            free(data);
            err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        off += 8 + (size_t)len;
        if (parse_byte_piece(t->pieces[i], t->piece_len[i]) >= 0) t->types[i] = TOK_TYPE_BYTE;
    }
    free(data);
    t->unk = 0;
    t->types[0] = TOK_TYPE_UNKNOWN;
    // run.c semantics: BOS (1) starts a text and ends generation (so does EOS: set_eog)
    if (n > 2) { t->bos = 1; t->eos = 2; t->types[1] = TOK_TYPE_CONTROL; }
    t->add_bos = true;
    t->add_space_prefix = true;
    t->escape_spaces = false;
    t->strip_leading_space = true;
    if (tok_finish(t, err) != TV_OK || tok_set_specials(t, err) != TV_OK) goto fail;
    return t;
fail:
    if (f) fclose(f);
    tv_tokenizer_free(t);
    return NULL;
}

// The token id stored under key; dflt when absent or out of range (as llama.cpp reads them).
static int32_t gguf_id(const gguf_ctx *g, const char *key, int32_t dflt, int32_t n_vocab) {
    int64_t v;
    if (!gguf_get_int(g, key, &v) || v < 0 || v >= n_vocab) return dflt;
    return (int32_t)v;
}

tv_tokenizer *tokenizer_from_gguf(const gguf_ctx *g, tv_error *err) {
    tv_tokenizer *t = NULL;
    gguf_str model;
    if (!gguf_get_str(g, "tokenizer.ggml.model", &model)) {
        err_fail(err, TV_ERR_FORMAT, "GGUF has no tokenizer.ggml.model");
        return NULL;
    }
    tv_tok_kind kind;
    gguf_str pre = {"default", 7};
    gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    // Gemma 4's BPE: SentencePiece-style pieces (U+2581 for spaces, <0xXX> byte tokens), no byte-level map
    bool is_gemma4 = (model.len == 6 && !memcmp(model.ptr, "gemma4", 6)) || (pre.len == 6 && !memcmp(pre.ptr, "gemma4", 6));
    if (model.len == 5 && !memcmp(model.ptr, "llama", 5)) kind = TV_TOK_SPM;
    else if ((model.len == 4 && !memcmp(model.ptr, "gpt2", 4)) || is_gemma4) kind = TV_TOK_BPE;
    else if (model.len == 4 && !memcmp(model.ptr, "bert", 4)) kind = TV_TOK_WPM;
    else if (model.len == 8 && !memcmp(model.ptr, "no_vocab", 8)) {
        err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.ggml.model is \"no_vocab\": the model has no vocabulary (token ids only)");
        return NULL;
    } else {
        err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported (llama, gpt2, gemma4, bert)",
                (int)(model.len > 64 ? 64 : model.len), model.ptr);
        return NULL;
    }
    const gguf_value *tokens = gguf_get(g, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_TYPE_ARRAY || tokens->arr_type != GGUF_TYPE_STRING || tokens->arr_n == 0 ||
        tokens->arr_n > TOK_MAX_VOCAB) {
        err_fail(err, TV_ERR_FORMAT, "GGUF tokenizer.ggml.tokens missing or not a non-empty string array");
        return NULL;
    }
    int32_t n = (int32_t)tokens->arr_n;
    t = tok_alloc(n, err);
    if (!t) return NULL;
    t->kind = kind;
    const gguf_value *scores = gguf_get(g, "tokenizer.ggml.scores");
    const gguf_value *types = gguf_get(g, "tokenizer.ggml.token_type");
    if (scores && (scores->type != GGUF_TYPE_ARRAY || scores->arr_n != (uint64_t)n || scores->arr_items)) {
        err_fail(err, TV_ERR_FORMAT, "GGUF tokenizer.ggml.scores: expected %d numbers", (int)n);
        goto fail;
    }
    if (types && (types->type != GGUF_TYPE_ARRAY || types->arr_n != (uint64_t)n || types->arr_items)) {
        err_fail(err, TV_ERR_FORMAT, "GGUF tokenizer.ggml.token_type: expected %d integers", (int)n);
        goto fail;
    }
    for (int32_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(tokens, (uint64_t)i);
        if (s.len > TOK_MAX_PIECE_BYTES) { err_fail(err, TV_ERR_FORMAT, "GGUF token %d is %llu bytes long", (int)i, (unsigned long long)s.len); goto fail; }
        if (!tok_set_piece(t, i, s.ptr, (size_t)s.len)) { err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory"); goto fail; }
        if (scores) t->scores[i] = (float)gguf_arr_float(scores, (uint64_t)i);
        if (types) {
            int64_t ty = gguf_arr_int(types, (uint64_t)i);
            t->types[i] = (ty >= 0 && ty <= TOK_TYPE_BYTE) ? (uint8_t)ty : TOK_TYPE_NORMAL;
        }
    }
    gguf_str name;   // llama.cpp keys Phi-3's whitespace rule on the model's name
    if (gguf_get_str(g, "general.name", &name)) {
        char low[128];
        size_t nl = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
        for (size_t i = 0; i < nl; i++) low[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
        low[nl] = 0;
        t->phi3_rstrip = strstr(low, "phi-3") || strstr(low, "phi3");
    }
    bool b;
    t->add_space_prefix = kind == TV_TOK_SPM;
    if (gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = b;
    t->add_bos = kind != TV_TOK_BPE;   // the defaults of each kind, as llama.cpp's
    if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = b;
    if (gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b)) t->add_eos = b;
    int32_t d_bos = kind == TV_TOK_SPM ? 1 : -1, d_eos = kind == TV_TOK_SPM ? 2 : -1, d_unk = kind == TV_TOK_SPM ? 0 : -1;
    if (kind == TV_TOK_WPM) { d_bos = 101; d_eos = 102; d_unk = 100; }
    if (d_bos >= n) d_bos = -1;
    if (d_eos >= n) d_eos = -1;
    if (d_unk >= n) d_unk = -1;
    t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", d_bos, n);
    t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", d_eos, n);
    t->unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", d_unk, n);
    t->eot = gguf_id(g, "tokenizer.ggml.eot_token_id", -1, n);
    t->eom = gguf_id(g, "tokenizer.ggml.eom_token_id", -1, n);
    t->fim_pad = gguf_id(g, "tokenizer.ggml.fim_pad_token_id", -1, n);
    t->fim_rep = gguf_id(g, "tokenizer.ggml.fim_rep_token_id", -1, n);
    t->fim_sep = gguf_id(g, "tokenizer.ggml.fim_sep_token_id", -1, n);
    t->sep = gguf_id(g, "tokenizer.ggml.seperator_token_id", -1, n);
    t->pad = gguf_id(g, "tokenizer.ggml.padding_token_id", -1, n);
    t->cls = gguf_id(g, "tokenizer.ggml.cls_token_id", -1, n);
    if (kind == TV_TOK_WPM && t->cls >= 0) t->bos = t->cls;
    if (kind == TV_TOK_WPM && t->sep >= 0) t->eos = t->sep;
    if (kind == TV_TOK_SPM) {
        t->escape_spaces = true;
        t->strip_leading_space = t->add_space_prefix;
    } else if (kind == TV_TOK_WPM) {
        t->strip_leading_space = true;
    } else {
        t->byte_level = !is_gemma4;
        if (is_gemma4) {   // ' ' -> U+2581, split at newline runs, unknown chars as <0xXX> bytes
            t->bpe_byte_fallback = true;
            t->newline_words = true;
            if (!(t->norm_replace_from = strdup(" ")) || !(t->norm_replace_to = strdup(SPM_SPACE))) {
                err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
                goto fail;
            }
            if (!t->add_bos) t->add_bos = true;   // llama.cpp overrides add_bos_token false for Gemma 4
        }
        const gguf_value *merges = gguf_get(g, "tokenizer.ggml.merges");
        if (!merges || merges->type != GGUF_TYPE_ARRAY || merges->arr_type != GGUF_TYPE_STRING) {
            err_fail(err, TV_ERR_FORMAT, "GGUF tokenizer.ggml.merges missing or not a string array");
            goto fail;
        }
        if (tok_finish(t, err) != TV_OK) goto fail;   // merges need the string map
        if (tok_bpe_init_merges(t, (size_t)merges->arr_n, err) != TV_OK) goto fail;
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            gguf_str m = gguf_arr_str(merges, i);
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
            if (!sp) { err_fail(err, TV_ERR_FORMAT, "GGUF merge %llu has no separator", (unsigned long long)i); goto fail; }
            size_t na = (size_t)(sp - m.ptr);
            tok_bpe_add_merge(t, m.ptr, na, sp + 1, (size_t)m.len - na - 1, (int32_t)i);
        }
        if (is_gemma4) {
            if (tok_bpe_add_regex(t, "[^\\n]+|[\\n]+", err) != TV_OK) goto fail;
        } else {
            char pre_name[64];
            snprintf(pre_name, sizeof pre_name, "%.*s", (int)(pre.len > 63 ? 63 : pre.len), pre.ptr);
            if (tok_bpe_set_pre(t, pre_name, err) != TV_OK) goto fail;   // may default add_bos (llama3)
            if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = b;   // the file has the last word
        }
        if (tok_set_specials(t, err) != TV_OK) goto fail;
        return t;
    }
    if (tok_finish(t, err) != TV_OK || tok_set_specials(t, err) != TV_OK) goto fail;
    return t;
fail:
    tv_tokenizer_free(t);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// accessors

tv_tok_kind tv_tokenizer_kind(const tv_tokenizer *t) { return t->kind; }
int32_t tv_tokenizer_n_vocab(const tv_tokenizer *t) { return t->n_vocab; }
int32_t tv_tokenizer_bos(const tv_tokenizer *t) { return t->bos; }
int32_t tv_tokenizer_eos(const tv_tokenizer *t) { return t->eos; }
int32_t tv_tokenizer_eot(const tv_tokenizer *t) { return t->eot; }
bool tv_tokenizer_add_bos_default(const tv_tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool tv_tokenizer_add_eos_default(const tv_tokenizer *t) { return t->add_eos && t->eos >= 0; }
bool tv_tokenizer_is_eog(const tv_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab && t->is_eog[id]; }
bool tv_tokenizer_is_control(const tv_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->types[id] == TOK_TYPE_CONTROL;
}
const char *tv_tokenizer_vocab_piece(const tv_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->piece_len[id];
    return t->pieces[id];
}
int32_t tv_tokenizer_find(const tv_tokenizer *t, const char *piece, size_t len) { return tok_find(t, piece, len); }

// ---------------------------------------------------------------------------------------------
// SentencePiece-style BPE over one (escaped, prefixed) fragment

typedef struct spm_sym { int32_t prev, next; uint32_t off, n; } spm_sym;
typedef struct spm_bigram { int32_t left, right; float score; uint32_t size; } spm_bigram;

static bool spm_better(const spm_bigram *a, const spm_bigram *b) {   // a pops before b
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap { spm_bigram *v; size_t n, cap; } spm_heap;

static bool spm_heap_push(spm_heap *h, spm_bigram x) {
    spm_bigram *v = array_grow(h->v, &h->cap, h->n + 1, sizeof *h->v);
    if (!v) return false;
    h->v = v;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_better(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return true;
}

static spm_bigram spm_heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const spm_bigram *best = &x;
        if (l < h->n && spm_better(&h->v[l], best)) { m = l; best = &h->v[l]; }
        if (r < h->n && spm_better(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = x;
    return top;
}

static bool spm_try_bigram(const tv_tokenizer *t, const char *text, const spm_sym *syms, int32_t left, int32_t right,
                           spm_heap *h) {
    if (left < 0 || right < 0) return true;
    uint32_t off = syms[left].off, size = syms[left].n + syms[right].n;
    int32_t id = tok_find(t, text + off, size);
    if (id < 0) return true;
    spm_bigram b = {left, right, t->scores[id], size};
    return spm_heap_push(h, b);
}

static tv_status spm_encode(const tv_tokenizer *t, const char *text, size_t len, tok_ids *out, tv_error *err) {
    if (len == 0) return TV_OK;
    if (len > UINT32_MAX / 2) return err_fail(err, TV_ERR_RANGE, "tokenizer: text too long");
    tv_status st = TV_OK;
    spm_heap h = {0};
    spm_sym *syms = malloc(len * sizeof *syms);   // (at most len symbols)
    if (!syms) return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
    int32_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t cl = utf8_len((uint8_t)text[off]);
        if (cl > len - off) cl = len - off;
        syms[n] = (spm_sym){n - 1, -1, (uint32_t)off, (uint32_t)cl};
        if (n > 0) syms[n - 1].next = n;
        n++;
        off += cl;
    }
    for (int32_t i = 1; i < n; i++)
        if (!spm_try_bigram(t, text, syms, i - 1, i, &h)) goto nomem;
    while (h.n) {
        spm_bigram b = spm_heap_pop(&h);
        spm_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size || l->next != b.right) continue;   // stale
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = b.left;
        if (!spm_try_bigram(t, text, syms, l->prev, b.left, &h)) goto nomem;
        if (!spm_try_bigram(t, text, syms, b.left, l->next, &h)) goto nomem;
    }
    for (int32_t i = 0; n > 0 && i != -1; i = syms[i].next) {
        const spm_sym *s = &syms[i];
        int32_t id = tok_find(t, text + s->off, s->n);
        if (id >= 0) {
            if (!tok_ids_push(out, id)) goto nomem;
            continue;
        }
        for (uint32_t k = 0; k < s->n; k++) {   // byte fallback
            int32_t bid = t->byte_ids[(uint8_t)text[s->off + k]];
            if (bid < 0) bid = t->unk;
            if (bid >= 0 && !tok_ids_push(out, bid)) goto nomem;
        }
    }
    goto done;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(syms);
    free(h.v);
    return st;
}

// ---------------------------------------------------------------------------------------------
// WordPiece

static bool wpm_is_chinese(uint32_t c) {   // BERT's CJK ideograph blocks
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool cp_is_whitespace(uint32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85) return true;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

static tv_status wpm_word(const tv_tokenizer *t, const char *w, size_t n, tok_ids *out) {
    if (n == 0) return TV_OK;
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > t->max_piece_len ? i + t->max_piece_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_find(t, w + i, j - i)) >= 0) break;
        if (id < 0) { out->n = start; break; }
        if (!tok_ids_push(out, id)) return TV_ERR_NOMEM;
        i = j;
    }
    if (out->n == start && t->unk >= 0 && !tok_ids_push(out, t->unk)) return TV_ERR_NOMEM;
    return TV_OK;
}

static tv_status wpm_encode(const tv_tokenizer *t, const char *text, size_t len, tok_ids *out, tv_error *err) {
    if (len == 0) return TV_OK;
    utf8proc_int32_t *cps = NULL;
    strbuf word = {0};
    tv_status st = TV_OK;
    size_t cap = len + 16;
    for (;;) {   // NFD into codepoints
        utf8proc_int32_t *p = realloc(cps, cap * sizeof *cps);
        if (!p) goto nomem;
        cps = p;
        utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, cps,
                                                (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
        if (r < 0) { st = err_fail(err, TV_ERR_INVALID, "tokenizer: %s", utf8proc_errmsg(r)); goto done; }
        if ((size_t)r <= cap) { cap = (size_t)r; break; }
        cap = (size_t)r;
    }
    if (!strbuf_put(&word, SPM_SPACE, 3)) goto nomem;
    for (size_t i = 0; i <= cap; i++) {
        uint32_t c = i < cap ? (uint32_t)cps[i] : ' ';
        bool ws = cp_is_whitespace(c);
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        bool sym = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
        bool isolate = !ws && (punct || (c < 0x7F && sym) || wpm_is_chinese(c));
        if (ws || isolate) {
            if (word.n > 3 && wpm_word(t, word.p, word.n, out) != TV_OK) goto nomem;
            word.n = 3;
            if (ws) continue;
        }
        if (!ws && !isolate) {
            if (c == 0 || c == 0xFFFD || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CN)
                continue;
            if (cat == UTF8PROC_CATEGORY_MN) continue;   // strip accents (after NFD), as BERT does
        }
        char u[4];
        uint32_t lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        if (!strbuf_put(&word, u, utf8_encode(lc, u))) goto nomem;
        if (isolate) {
            if (wpm_word(t, word.p, word.n, out) != TV_OK) goto nomem;
            word.n = 3;
        }
    }
    goto done;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(cps);
    free(word.p);
    return st;
}

// ---------------------------------------------------------------------------------------------
// fragment encoding and the public tokenize

static bool replace_all(strbuf *dst, const char *s, size_t n, const char *from, size_t nf, const char *to, size_t nt) {
    for (size_t i = 0; i < n;) {
        if (nf && n - i >= nf && memcmp(s + i, from, nf) == 0) {
            if (!strbuf_put(dst, to, nt)) return false;
            i += nf;
        } else {
            size_t j = i + 1;
            while (j < n && (!nf || s[j] != from[0])) j++;
            if (!strbuf_put(dst, s + i, j - i)) return false;
            i = j;
        }
    }
    return true;
}

// NFC of s into dst, normalizing only the non-ASCII runs (each with the ASCII char before it, which a
// combining mark may join): ASCII chars are starters that no composition takes as second char, so
// the result equals NFC of the whole text. Returns 0 or a utf8proc error.
static utf8proc_ssize_t nfc_segments(strbuf *dst, const char *s, size_t n) {
    if (!strbuf_reserve(dst, n)) return UTF8PROC_ERROR_NOMEM;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && (uint8_t)s[j] < 0x80) j++;
        size_t keep = (j < n && j > i) ? j - 1 : j;
        if (!strbuf_put(dst, s + i, keep - i)) return UTF8PROC_ERROR_NOMEM;
        if (j == n) break;
        size_t k = j;
        while (k < n && (uint8_t)s[k] >= 0x80) k++;
        utf8proc_uint8_t *o = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + keep, (utf8proc_ssize_t)(k - keep), &o,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (r < 0) return r;
        bool ok = strbuf_put(dst, (const char *)o, (size_t)r);
        free(o);
        if (!ok) return UTF8PROC_ERROR_NOMEM;
        i = k;
    }
    return 0;
}

// HF normalizers then pre-tokenizer Metaspace, for tokenizer.json BPE models.
static tv_status bpe_fragment(const tv_tokenizer *t, const char *text, size_t len, bool is_first, tok_ids *out,
                              tv_error *err) {
    if (!t->norm_nfc && !t->norm_lowercase && !t->norm_prepend && !t->norm_replace_from && !t->pre_metaspace &&
        !t->bl_add_prefix_space)
        return tok_bpe_encode(t, text, len, out, err);
    if (len == 0) return TV_OK;
    tv_status st = TV_OK;
    strbuf a = {0}, b = {0};
    utf8proc_uint8_t *nfc = NULL;
    if (t->norm_nfc && !t->norm_lowercase) {
        strbuf c = {0};
        utf8proc_ssize_t r = nfc_segments(&c, text, len);
        if (r < 0) {
            free(c.p);
            st = r == UTF8PROC_ERROR_NOMEM ? err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory")
                                           : err_fail(err, TV_ERR_INVALID, "tokenizer: %s", utf8proc_errmsg(r));
            goto done;
        }
        nfc = (utf8proc_uint8_t *)c.p;
        text = c.p ? c.p : "";
        len = c.n;
    } else if (t->norm_nfc || t->norm_lowercase) {
        int opts = UTF8PROC_STABLE | (t->norm_nfc ? UTF8PROC_COMPOSE : 0) | (t->norm_lowercase ? UTF8PROC_CASEFOLD : 0);
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc, (utf8proc_option_t)opts);
        if (r < 0) { st = err_fail(err, TV_ERR_INVALID, "tokenizer: %s", utf8proc_errmsg(r)); goto done; }
        text = (const char *)nfc;
        len = (size_t)r;
    }
    if (t->norm_prepend && !strbuf_put(&a, t->norm_prepend, strlen(t->norm_prepend))) goto nomem;
    if (t->norm_replace_from) {
        if (!replace_all(&a, text, len, t->norm_replace_from, strlen(t->norm_replace_from), t->norm_replace_to,
                         strlen(t->norm_replace_to)))
            goto nomem;
    } else if (!strbuf_put(&a, text, len)) goto nomem;
    const strbuf *src = &a;
    if (t->bl_add_prefix_space && (a.n == 0 || a.p[0] != ' ')) {
        if (!strbuf_put(&b, " ", 1) || !strbuf_put(&b, a.p ? a.p : "", a.n)) goto nomem;
        src = &b;
    } else if (t->pre_metaspace) {
        bool prefix = !t->metaspace_first_only || is_first;
        if (prefix && (a.n < 3 || memcmp(a.p, SPM_SPACE, 3) != 0) && !strbuf_put(&b, SPM_SPACE, 3)) goto nomem;
        if (!replace_all(&b, a.p, a.n, " ", 1, SPM_SPACE, 3)) goto nomem;
        src = &b;
    }
    st = tok_bpe_encode(t, src->p ? src->p : "", src->n, out, err);
    goto done;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(nfc);
    free(a.p);
    free(b.p);
    return st;
}

static tv_status encode_fragment(const tv_tokenizer *t, const char *text, size_t len, bool prev_special, bool is_first,
                                 tok_ids *out, tv_error *err) {
    if (t->kind == TV_TOK_BPE) return bpe_fragment(t, text, len, is_first, out, err);
    if (t->kind == TV_TOK_WPM) return wpm_encode(t, text, len, out, err);
    strbuf b = {0};
    if (t->add_space_prefix && prev_special && !strbuf_put(&b, t->escape_spaces ? SPM_SPACE : " ", t->escape_spaces ? 3 : 1))
        goto nomem;
    if (t->escape_spaces) {
        if (!replace_all(&b, text, len, " ", 1, SPM_SPACE, 3)) goto nomem;
    } else if (!strbuf_put(&b, text, len)) goto nomem;
    tv_status st = TV_OK;
    const char *mark = t->escape_spaces ? SPM_SPACE : " ";
    size_t ml = t->escape_spaces ? 3 : 1;
    if (!t->spm_split_ok) {
        st = spm_encode(t, b.p ? b.p : "", b.n, out, err);
    } else {   // word by word: no vocab piece spans a cut, so the merges cannot differ
        size_t start = 0;
        for (size_t i = ml; i + ml <= b.n && st == TV_OK; i++) {
            if (memcmp(b.p + i, mark, ml) != 0 || memcmp(b.p + i - ml, mark, ml) == 0) continue;
            st = spm_encode(t, b.p + start, i - start, out, err);
            start = i;
        }
        if (st == TV_OK && start < b.n) st = spm_encode(t, b.p + start, b.n - start, out, err);
    }
    free(b.p);
    return st;
nomem:
    free(b.p);
    return err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
}

// Longest special token (allowed here) that starts at text[i], or -1.
static int32_t match_special(const tv_tokenizer *t, const char *text, size_t len, size_t i, bool parse_special) {
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        uint32_t n = t->piece_len[id];
        if (n > len - i || t->pieces[id][0] != text[i]) continue;
        if (!parse_special && t->types[id] != TOK_TYPE_USER_DEFINED) continue;
        if (memcmp(t->pieces[id], text + i, n) == 0) return id;
    }
    return -1;
}

tv_status tv_tokenize(const tv_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                      int32_t **ids, size_t *n_ids, tv_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return err_fail(err, TV_ERR_INVALID, "tokenize: NULL text");
    size_t bad = utf8_first_invalid(text, len);
    if (bad < len) return err_fail(err, TV_ERR_INVALID, "invalid UTF-8 at byte offset %zu (0x%02X)", bad, (uint8_t)text[bad]);
    tok_ids out = {0};
    tv_status st = TV_OK;
    if (add_special && t->add_bos && t->bos >= 0 && !tok_ids_push(&out, t->bos)) goto nomem;
    // which first bytes can start a special token (fast skip)
    bool first[256] = {false};
    for (size_t k = 0; k < t->n_special; k++) first[(uint8_t)t->pieces[t->special_ids[k]][0]] = true;
    bool prev_special = true;   // the first fragment is prefixed like one after a special token
    size_t frag = 0;
    for (size_t i = 0; i < len;) {
        int32_t id = first[(uint8_t)text[i]] ? match_special(t, text, len, i, parse_special) : -1;
        if (id < 0) { i++; continue; }
        if (i > frag) {
            if ((st = encode_fragment(t, text + frag, i - frag, prev_special, frag == 0, &out, err)) != TV_OK) goto fail;
        }
        if (!tok_ids_push(&out, id)) goto nomem;
        prev_special = true;
        i += t->piece_len[id];
        if (t->rstrip && t->rstrip[id])
            while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        frag = i;
        continue;
    }
    if (len > frag) {
        if ((st = encode_fragment(t, text + frag, len - frag, prev_special, frag == 0, &out, err)) != TV_OK) goto fail;
    }
    if (add_special && t->add_eos && t->eos >= 0 && !tok_ids_push(&out, t->eos)) goto nomem;
    *ids = out.v;
    *n_ids = out.n;
    if (!out.v) *ids = malloc(sizeof(int32_t));   // never NULL on success
    if (!*ids) goto nomem;
    return TV_OK;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "tokenizer: out of memory");
fail:
    free(out.v);
    *ids = NULL;
    *n_ids = 0;
    return st;
}

// ---------------------------------------------------------------------------------------------
// decoding

static size_t put_out(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap) memcpy(buf + at, s, at + n <= cap ? n : cap - at);
    return at + n;
}

size_t tv_token_to_piece(const tv_tokenizer *t, int32_t id, bool special, char *buf, size_t cap, size_t *full_len) {
    size_t n = 0;
    if (id >= 0 && id < t->n_vocab) {
        const char *p = t->pieces[id];
        size_t pl = t->piece_len[id];
        uint8_t ty = t->types[id];
        if (ty == TOK_TYPE_CONTROL) {
            if (special) n = put_out(buf, cap, n, p, pl);
        } else if (ty == TOK_TYPE_BYTE && parse_byte_piece(p, pl) >= 0) {
            char c = (char)parse_byte_piece(p, pl);
            n = put_out(buf, cap, n, &c, 1);
        } else if (ty == TOK_TYPE_UNKNOWN && t->kind == TV_TOK_SPM && !t->is_llama2c) {
            n = put_out(buf, cap, n, "\xe2\x96\x85", 3);   // as llama.cpp shows <unk>
        } else if (t->kind == TV_TOK_BPE && t->byte_level && ty != TOK_TYPE_USER_DEFINED) {
            for (size_t i = 0; i < pl;) {
                uint32_t cp;
                int k = utf8_decode((const uint8_t *)p + i, pl - i, &cp);
                if (k <= 0) { n = put_out(buf, cap, n, p + i, 1); i++; continue; }
                int byte = tok_cp_to_byte(cp);
                if (byte >= 0) { char c = (char)byte; n = put_out(buf, cap, n, &c, 1); }
                else n = put_out(buf, cap, n, p + i, (size_t)k);
                i += (size_t)k;
            }
        } else if (t->is_llama2c) {
            n = put_out(buf, cap, n, p, pl);
        } else {   // SPM / WPM / metaspace BPE: U+2581 -> ' '
            for (size_t i = 0; i < pl;) {
                if (pl - i >= 3 && memcmp(p + i, SPM_SPACE, 3) == 0) { n = put_out(buf, cap, n, " ", 1); i += 3; continue; }
                n = put_out(buf, cap, n, p + i, 1);
                i++;
            }
        }
    }
    if (full_len) *full_len = n;
    return n < cap ? n : cap;
}

// The piece of id appended to b. *strip_pending: the sequence opened with BOS and no text came out
// since, so the leading-space rule applies to this piece (SentencePiece families); cleared by the
// first piece that produces text.
static bool append_piece(const tv_tokenizer *t, int32_t id, bool *strip_pending, bool special, strbuf *b) {
    char small[256];
    size_t full;
    tv_token_to_piece(t, id, special, small, sizeof small, &full);
    const char *p = small;
    char *big = NULL;
    if (full > sizeof small) {
        big = mem_malloc(full);
        if (!big) return false;
        tv_token_to_piece(t, id, special, big, full, NULL);
        p = big;
    }
    if (full > 0 && *strip_pending) {
        if (p[0] == ' ') { p++; full--; }
        *strip_pending = false;
    }
    bool ok = strbuf_put(b, p, full);
    free(big);
    return ok;
}

tv_status tv_detokenize(const tv_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                        size_t *out_len, tv_error *err) {
    strbuf b = {0};
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!strbuf_reserve(&b, 16)) goto nomem;
    b.p[0] = '\0';
    bool strip_pending = false;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(b.p);
            return err_fail(err, TV_ERR_RANGE, "token id %d out of range [0, %d)", (int)ids[i], (int)t->n_vocab);
        }
        size_t before = b.n;
        if (!append_piece(t, ids[i], &strip_pending, !skip_special, &b)) goto nomem;
        if (i == 0 && ids[0] == t->bos && t->strip_leading_space && b.n == before) strip_pending = true;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return TV_OK;
nomem:
    free(b.p);
    return err_fail(err, TV_ERR_NOMEM, "out of memory");
}

// ---------------------------------------------------------------------------------------------
// streaming detokenizer

struct tv_detok {
    const tv_tokenizer *t;
    bool skip_special;
    int32_t prev;       // previous id, -1 at start
    size_t n_pushed;    // ids pushed since create/reset
    bool strip_pending; // opened with BOS, no text yet: the next text loses a leading space
    strbuf pending;    // bytes of an unfinished UTF-8 sequence (< 4)
    strbuf out;        // returned text
};

tv_detok *tv_detok_create(const tv_tokenizer *t, bool skip_special) {
    tv_detok *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->t = t;
    d->skip_special = skip_special;
    d->prev = -1;
    return d;
}

void tv_detok_free(tv_detok *d) {
    if (!d) return;
    free(d->pending.p);
    free(d->out.p);
    free(d);
}

void tv_detok_reset(tv_detok *d) {
    d->prev = -1;
    d->n_pushed = 0;
    d->strip_pending = false;
    d->pending.n = 0;
    d->out.n = 0;
}

// Moves the complete prefix of pending into out (invalid sequences -> U+FFFD); keeps an unfinished tail
// unless final.
static bool detok_drain(tv_detok *d, bool final) {
    const uint8_t *s = (const uint8_t *)d->pending.p;
    size_t n = d->pending.n, i = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_decode(s + i, n - i, &cp);
        if (k > 0) {
            if (!strbuf_put(&d->out, (const char *)s + i, (size_t)k)) return false;
            i += (size_t)k;
        } else if (k == 0 && !final) {
            break;
        } else {
            if (!strbuf_put(&d->out, "\xef\xbf\xbd", 3)) return false;
            i += k == 0 ? n - i : (size_t)-k;
        }
    }
    memmove(d->pending.p, d->pending.p + i, n - i);
    d->pending.n = n - i;
    return true;
}

size_t tv_detok_push(tv_detok *d, int32_t id, const char **out) {
    *out = "";
    d->out.n = 0;
    if (!strbuf_reserve(&d->out, 0)) return TV_DETOK_NOMEM;
    d->out.p[0] = '\0';
    if (id >= 0 && id < d->t->n_vocab) {
        size_t before = d->pending.n;
        if (!append_piece(d->t, id, &d->strip_pending, !d->skip_special, &d->pending)) return TV_DETOK_NOMEM;
        if (d->n_pushed == 0 && id == d->t->bos && d->t->strip_leading_space && d->pending.n == before)
            d->strip_pending = true;
        if (!detok_drain(d, false)) return TV_DETOK_NOMEM;
        d->prev = id;
        d->n_pushed++;
    }
    *out = d->out.p;
    return d->out.n;
}

size_t tv_detok_flush(tv_detok *d, const char **out) {
    *out = "";
    d->out.n = 0;
    if (!strbuf_reserve(&d->out, 0)) return TV_DETOK_NOMEM;
    d->out.p[0] = '\0';
    if (d->pending.n && !detok_drain(d, true)) return TV_DETOK_NOMEM;
    *out = d->out.p;
    return d->out.n;
}

// ---------------------------------------------------------------- tv_tokenizer_load

tv_tokenizer *tv_tokenizer_load(const char *path, int32_t vocab_size, tv_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        err_fail(err, TV_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(sb.st_mode)) return tokenizer_load_json(path, err);
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_fail(err, TV_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char head[64];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n >= 4 && !memcmp(head, "GGUF", 4)) {
        gguf_ctx *g = gguf_open(path, err);
        if (!g) return NULL;
        tv_tokenizer *t = tokenizer_from_gguf(g, err);
        gguf_close(g);
        if (!t) sniff_explain_tokenizer_error(path, err ? err->code : TV_ERR_FORMAT, err);
        return t;
    }
    for (size_t i = 0; i < n; i++) {   // a JSON object: tokenizer.json
        if (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t') continue;
        if (head[i] == '{') return tokenizer_load_json(path, err);
        break;
    }
    tv_tokenizer *t = tokenizer_load_llama2c(path, vocab_size, err);
    if (!t) sniff_explain_tokenizer_error(path, err ? err->code : TV_ERR_FORMAT, err);
    return t;
}
