// tok_json.c — Hugging Face tokenizer.json (+ tokenizer_config.json) loader for BPE models.
//
// What is read (everything else is ignored or, when it would change the ids, refused):
//   model        : {type "BPE", vocab {piece: id}, merges ["a b" | [a, b]], byte_fallback,
//                   ignore_merges, unk_token}
//   added_tokens : [{id, content, special}] -> special ? control : user-defined (matched in text)
//   normalizer   : null | NFC | Lowercase | Prepend{prepend} | Replace{pattern{String}, content}
//                  | Sequence{normalizers}
//   pre_tokenizer: null | ByteLevel{add_prefix_space, use_regex} | Split{pattern{Regex|String},
//                  behavior "Isolated", invert false} | Digits | Punctuation | Metaspace | Sequence
//   post_processor: TemplateProcessing whose single template starts with a SpecialToken -> BOS
//   decoder      : ByteLevel -> byte-level pieces; a Strip/Metaspace decoder -> leading-space rule
//   tokenizer_config.json: bos_token, eos_token, add_bos_token, add_eos_token
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_impl.h"
#include "util/status.h"

#define RE_HF_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define JSON_MAX_BYTES ((size_t)1 << 30)

static char *slurp(const char *path, size_t *len, tv_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { err_fail(err, TV_ERR_IO, "%s: cannot open", path); return NULL; }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || (size_t)n > JSON_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        err_fail(err, TV_ERR_IO, "%s: cannot size the file (or it is over 1 GiB)", path);
        goto done;
    }
    buf = malloc((size_t)n + 1);
    if (!buf) { err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
        err_fail(err, TV_ERR_IO, "%s: read failed", path);
        goto done;
    }
    buf[n] = '\0';
    if (len) *len = (size_t)n;
done:
    fclose(f);
    return buf;
}

static const char *jstr(const cJSON *o, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

// A config token value: "text" or {"content": "text"}.
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static bool is_type(const cJSON *o, const char *type) {
    const char *t = jstr(o, "type");
    return t && !strcmp(t, type);
}

static char *dupstr(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static tv_status load_normalizer(tv_tokenizer *t, const cJSON *n, tv_error *err) {
    if (!n || cJSON_IsNull(n)) return TV_OK;
    if (is_type(n, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            tv_status st = load_normalizer(t, it, err);
            if (st != TV_OK) return st;
        }
        return TV_OK;
    }
    if (is_type(n, "NFC")) { t->norm_nfc = true; return TV_OK; }
    if (is_type(n, "Lowercase")) { t->norm_lowercase = true; return TV_OK; }
    if (is_type(n, "Prepend") && jstr(n, "prepend")) {
        free(t->norm_prepend);
        t->norm_prepend = dupstr(jstr(n, "prepend"));
        return t->norm_prepend ? TV_OK : err_fail(err, TV_ERR_NOMEM, "tokenizer.json: out of memory");
    }
    if (is_type(n, "Replace")) {
        const char *from = jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
        const char *to = jstr(n, "content");
        if (!from || !to || !*from) return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: Replace normalizer needs a String pattern");
        free(t->norm_replace_from);
        free(t->norm_replace_to);
        t->norm_replace_from = dupstr(from);
        t->norm_replace_to = dupstr(to);
        return t->norm_replace_from && t->norm_replace_to ? TV_OK : err_fail(err, TV_ERR_NOMEM, "tokenizer.json: out of memory");
    }
    return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: normalizer '%s' is not supported", jstr(n, "type") ? jstr(n, "type") : "?");
}

// Quotes s as a PCRE2 literal.
static tv_status add_literal_regex(tv_tokenizer *t, const char *s, tv_error *err) {
    size_t n = strlen(s);
    char *re = malloc(4 * n + 1);
    if (!re) return err_fail(err, TV_ERR_NOMEM, "tokenizer.json: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ')) re[k++] = '\\';
        re[k++] = (char)c;
    }
    re[k] = '\0';
    tv_status st = tok_bpe_add_regex(t, re, err);
    free(re);
    return st;
}

static tv_status load_pre(tv_tokenizer *t, const cJSON *p, tv_error *err) {
    if (!p || cJSON_IsNull(p)) return TV_OK;
    if (is_type(p, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            tv_status st = load_pre(t, it, err);
            if (st != TV_OK) return st;
        }
        return TV_OK;
    }
    if (is_type(p, "ByteLevel")) {
        t->byte_level = true;
        t->bl_add_prefix_space = jbool(p, "add_prefix_space", false);
        if (jbool(p, "use_regex", true)) return tok_bpe_add_regex(t, RE_HF_GPT2, err);
        return TV_OK;
    }
    if (is_type(p, "Split")) {
        const char *behavior = jstr(p, "behavior");
        if (jbool(p, "invert", false) || !behavior || strcmp(behavior, "Isolated"))
            return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: Split pre-tokenizer with behavior '%s'%s is not supported",
                           behavior ? behavior : "?", jbool(p, "invert", false) ? " (inverted)" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        if (jstr(pat, "Regex")) return tok_bpe_add_regex(t, jstr(pat, "Regex"), err);
        if (jstr(pat, "String")) return add_literal_regex(t, jstr(pat, "String"), err);
        return err_fail(err, TV_ERR_FORMAT, "tokenizer.json: Split pre-tokenizer without a pattern");
    }
    if (is_type(p, "Digits")) return tok_bpe_add_regex(t, jbool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", err);
    if (is_type(p, "Punctuation")) return tok_bpe_add_regex(t, "[\\p{P}!-/:-@\\[-`{-~]", err);
    if (is_type(p, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        if (rep && strcmp(rep, "\xe2\x96\x81"))
            return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: Metaspace replacement other than U+2581");
        const char *scheme = jstr(p, "prepend_scheme");
        bool add_prefix = jbool(p, "add_prefix_space", true);
        if (scheme && !strcmp(scheme, "never")) add_prefix = false;
        t->pre_metaspace = true;
        t->metaspace_first_only = scheme && !strcmp(scheme, "first");
        if (!add_prefix) return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: Metaspace without a prefix is not supported");
        if (jbool(p, "split", true)) return tok_bpe_add_regex(t, "\xe2\x96\x81[^\xe2\x96\x81]*|[^\xe2\x96\x81]+", err);
        return TV_OK;
    }
    return err_fail(err, TV_ERR_UNSUPPORTED, "tokenizer.json: pre-tokenizer '%s' is not supported", jstr(p, "type") ? jstr(p, "type") : "?");
}

static bool decoder_has(const cJSON *d, const char *type) {
    if (!d || cJSON_IsNull(d)) return false;
    if (is_type(d, type)) return true;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(d, "decoders"))
        if (decoder_has(it, type)) return true;
    return false;
}

// BOS from a TemplateProcessing post-processor (possibly inside a Sequence); -1 if none.
static int32_t template_bos(const tv_tokenizer *t, const cJSON *pp) {
    if (!pp || cJSON_IsNull(pp)) return -1;
    if (is_type(pp, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            int32_t id = template_bos(t, it);
            if (id >= 0) return id;
        }
        return -1;
    }
    if (!is_type(pp, "TemplateProcessing")) return -1;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const char *name = jstr(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    return name ? tok_find(t, name, strlen(name)) : -1;
}

tv_tokenizer *tokenizer_load_json(const char *path, tv_error *err) {
    tv_tokenizer *t = NULL;
    cJSON *root = NULL, *cfg = NULL;
    char *text = NULL, *ctext = NULL;
    char jpath[4096], cpath[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(jpath, sizeof jpath, "%s/tokenizer.json", path);
        snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", path);
    } else {
        snprintf(jpath, sizeof jpath, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(cpath, sizeof cpath, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    }
    text = slurp(jpath, NULL, err);
    if (!text) return NULL;
    root = cJSON_Parse(text);
    if (!root) { err_fail(err, TV_ERR_FORMAT, "%s: not valid JSON", jpath); goto fail; }
    if (stat(cpath, &sb) == 0 && (ctext = slurp(cpath, NULL, NULL)) != NULL) cfg = cJSON_Parse(ctext);

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model)) { err_fail(err, TV_ERR_FORMAT, "%s: no \"model\" object", jpath); goto fail; }
    if (jstr(model, "type") && strcmp(jstr(model, "type"), "BPE")) {
        err_fail(err, TV_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (BPE only)", jpath, jstr(model, "type"));
        goto fail;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        err_fail(err, TV_ERR_FORMAT, "%s: BPE model needs a vocab object and a merges array", jpath);
        goto fail;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int64_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 24)) {
            err_fail(err, TV_ERR_FORMAT, "%s: vocab entry '%.40s' has a bad id", jpath, it->string ? it->string : "?");
            goto fail;
        }
        if (it->valueint > max_id) max_id = it->valueint;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 24) || !jstr(it, "content")) {
            err_fail(err, TV_ERR_FORMAT, "%s: added token without a valid id/content", jpath);
            goto fail;
        }
        if (id->valueint > max_id) max_id = id->valueint;
    }
    t = tok_alloc((int32_t)(max_id + 1), err);
    if (!t) goto fail;
    t->kind = TV_TOK_BPE;
    cJSON_ArrayForEach(it, vocab)
        if (!tok_set_piece(t, it->valueint, it->string, strlen(it->string))) goto nomem;
    cJSON_ArrayForEach(it, added) {
        int32_t id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char *c = jstr(it, "content");
        if (!tok_set_piece(t, id, c, strlen(c))) goto nomem;
        t->types[id] = jbool(it, "special", false) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }
    for (int32_t i = 0; i < t->n_vocab; i++)   // ids nobody defined
        if (!t->pieces[i]) {
            if (!tok_set_piece(t, i, "", 0)) goto nomem;
            t->types[i] = TOK_TYPE_UNUSED;
        }

    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err) != TV_OK) goto fail;
    if (load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err) != TV_OK) goto fail;
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (decoder_has(decoder, "ByteLevel")) t->byte_level = true;
    t->ignore_merges = jbool(model, "ignore_merges", false);
    t->bpe_byte_fallback = jbool(model, "byte_fallback", false);
    t->strip_leading_space = !t->byte_level && (decoder_has(decoder, "Strip") || decoder_has(decoder, "Metaspace"));
    if (tok_finish(t, err) != TV_OK) goto fail;
    if (tok_bpe_init_merges(t, (size_t)cJSON_GetArraySize(merges), err) != TV_OK) goto fail;
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = *s ? strchr(s + 1, ' ') : NULL;
            if (!sp) { err_fail(err, TV_ERR_FORMAT, "%s: merge %d '%.40s' has no space", jpath, (int)rank, s); goto fail; }
            tok_bpe_add_merge(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
            tok_bpe_add_merge(t, a, strlen(a), b, strlen(b), rank);
        } else {
            err_fail(err, TV_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", jpath, (int)rank);
            goto fail;
        }
        rank++;
    }
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = tok_find(t, unk, strlen(unk));
    // BOS/EOS: the post-processor's template, else tokenizer_config.json
    t->bos = template_bos(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    t->add_bos = t->bos >= 0;
    const char *cb = token_text(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
    const char *ce = token_text(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
    if (t->bos < 0 && cb) t->bos = tok_find(t, cb, strlen(cb));
    if (ce) t->eos = tok_find(t, ce, strlen(ce));
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    if (cJSON_IsBool(ab)) t->add_bos = cJSON_IsTrue(ab) && t->bos >= 0;
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(ae)) t->add_eos = cJSON_IsTrue(ae) && t->eos >= 0;
    if (tok_set_specials(t, err) != TV_OK) goto fail;
    goto done;
nomem:
    err_fail(err, TV_ERR_NOMEM, "%s: out of memory", jpath);
fail:
    tv_tokenizer_free(t);
    t = NULL;
done:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(text);
    free(ctext);
    return t;
}
