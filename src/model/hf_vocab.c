// hf_vocab.c — tokenizer.json (+ tokenizer_config.json, config.json) -> GGUF tokenizer.* keys, as
// llama.cpp's converter writes them (see hf_vocab.h for the rules and the one deliberate difference).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/hf.h"
#include "model/hf_vocab.h"
#include "util/status.h"

// GGUF token types (tokenizer.ggml.token_type), llama.cpp's values.
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

// Pre-tokenizers llama.cpp knows by name, recognised by their tokenizer.json spelling (the
// signature `sig` builds) and ignore_merges. Each is checked against llama.cpp by the fixtures in
// tests/fixtures/hf/vocab.
#define HF_RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
static const struct { const char *sig; int ignore_merges; const char *pre; } PRE_NAMES[] = {
    {"split(" HF_RE_LLAMA3 ");bytelevel", 1, "llama-bpe"},
    {"split(" HF_RE_QWEN2 ");bytelevel", 0, "qwen2"},
};

typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static const char *jstr(const cJSON *o, const char *key) { return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key)); }
static bool jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}
static bool is_type(const cJSON *o, const char *t) { return jstr(o, "type") && !strcmp(jstr(o, "type"), t); }

// The pre-tokenizer as a comparable string: "split(REGEX)", "bytelevel[+re]", "digits[1]", ... joined by ';'.
static void sig(sbuf *b, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return;
    if (is_type(p, "Sequence")) {
        const cJSON *it;
        bool first = true;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            if (!first) sb_str(b, ";");
            first = false;
            sig(b, it);
        }
    } else if (is_type(p, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        sb_str(b, jstr(pat, "Regex") ? "split(" : "splitstr(");
        sb_str(b, jstr(pat, "Regex") ? jstr(pat, "Regex") : jstr(pat, "String") ? jstr(pat, "String") : "?");
        sb_str(b, ")");
        if (jstr(p, "behavior") && strcmp(jstr(p, "behavior"), "Isolated")) sb_str(b, jstr(p, "behavior"));
        if (jbool(p, "invert", false)) sb_str(b, "!");
    } else if (is_type(p, "ByteLevel")) {
        sb_str(b, jbool(p, "use_regex", true) ? "bytelevel+re" : "bytelevel");
        if (jbool(p, "add_prefix_space", false)) sb_str(b, "+prefix");
    } else if (is_type(p, "Digits")) {
        sb_str(b, jbool(p, "individual_digits", false) ? "digits1" : "digits");
    } else {
        sb_str(b, jstr(p, "type") ? jstr(p, "type") : "?");
    }
}

// does_token_look_special of the converter: added tokens some models forget to mark special.
static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]")) return true;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return true;
    if (n >= 8 && !strncmp(s, "<\xef\xbd\x9c", 4) && !strcmp(s + n - 4, "\xef\xbd\x9c>")) return true;   // <｜...｜>
    return n >= 8 && !strncmp(s, "<unused", 7) && s[n - 1] == '>';
}

// A config token value: "text" or {"content": "text"}.
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_IsObject(v) ? jstr(v, "content") : NULL;
}

// String -> id over the vocab (open addressing, FNV-1a); for merge results of the llama kind.
typedef struct idmap { const char **key; int32_t *id; size_t cap; } idmap;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}
static bool idmap_init(idmap *m, size_t n) {
    m->cap = 16;
    while (m->cap < 2 * n + 16) m->cap *= 2;
    m->key = calloc(m->cap, sizeof *m->key);
    m->id = calloc(m->cap, sizeof *m->id);
    return m->key && m->id;
}
static void idmap_put(idmap *m, const char *k, int32_t id) {
    size_t i = fnv(k) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & (m->cap - 1);
    if (!m->key[i]) { m->key[i] = k; m->id[i] = id; }
}
static int32_t idmap_get(const idmap *m, const char *k) {
    for (size_t i = fnv(k) & (m->cap - 1); m->key[i]; i = (i + 1) & (m->cap - 1))
        if (!strcmp(m->key[i], k)) return m->id[i];
    return -1;
}

// A merge entry as "a b" (a string, or [a, b] with spaces inside the parts written as U+0120, as
// gguf-py does); false when malformed.
static bool merge_text(const cJSON *it, sbuf *b) {
    b->n = 0;
    if (cJSON_IsString(it)) { sb_str(b, it->valuestring); return !b->oom; }
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2) return false;
    for (int k = 0; k < 2; k++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(it, k));
        if (!s) return false;
        if (k) sb_str(b, " ");
        for (; *s; s++) {
            if (*s == ' ') sb_str(b, "\xc4\xa0");
            else sb_put(b, s, 1);
        }
    }
    return !b->oom;
}

bool hf_vocab_present(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return access(path, R_OK) == 0;
}

tv_status hf_vocab_write(const char *dir, int64_t n_vocab, gguf_writer *w, char *desc, size_t cap, tv_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    bool missing;
    tv_status st = TV_OK;
    cJSON *tj = NULL, *tc = NULL, *cj = NULL;
    const char **text = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    char **owned = NULL;     // (n_vocab) strings we made ([PAD..], spaces restored), else NULL
    const char **merges = NULL;
    sbuf b = {0};
    idmap map = {0};
    int64_t n_merges = 0;
    if (n_vocab <= 0 || n_vocab > (1 << 24)) return err_fail(err, TV_ERR_FORMAT, "%s: the model has %lld tokens", dir, (long long)n_vocab);
    if (!(tj = hf_read_json(dir, "tokenizer.json", &missing, err))) {
        if (missing) err_fail(err, TV_ERR_IO, "%s: missing", path);
        return err ? err->code : TV_ERR_IO;
    }
    if (!(tc = hf_read_json(dir, "tokenizer_config.json", &missing, err)) && !missing) { st = err->code; goto done; }
    if (!(cj = hf_read_json(dir, "config.json", &missing, err)) && !missing) { st = err->code; goto done; }

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *mlist = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    if (!cJSON_IsObject(model) || !is_type(model, "BPE")) {
        st = err_fail(err, TV_ERR_UNSUPPORTED, "%s: model type '%s' cannot be written as a GGUF vocabulary (BPE only; use --vocab)", path,
                      jstr(model, "type") ? jstr(model, "type") : "?");
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(mlist)) {
        st = err_fail(err, TV_ERR_FORMAT, "%s: a BPE model needs a vocab object and a merges array", path);
        goto done;
    }
    const bool spm = jbool(model, "byte_fallback", false);   // SentencePiece-style: "llama"
    const char *pre = "default";
    if (!spm) {
        sig(&b, cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"));
        const int im = jbool(model, "ignore_merges", false);
        pre = NULL;
        for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0] && !pre && !b.oom; i++)
            if (!strcmp(b.p, PRE_NAMES[i].sig) && PRE_NAMES[i].ignore_merges == im) pre = PRE_NAMES[i].pre;
        if (!pre) {
            st = err_fail(err, TV_ERR_UNSUPPORTED, "%s: pre-tokenizer '%.200s'%s has no llama.cpp name we know (known: llama-bpe, qwen2; use --vocab)",
                          path, b.p ? b.p : "", im ? " with ignore_merges" : "");
            goto done;
        }
    }

    text = calloc((size_t)n_vocab, sizeof *text);
    types = malloc((size_t)n_vocab * sizeof *types);
    scores = calloc((size_t)n_vocab, sizeof *scores);
    owned = calloc((size_t)n_vocab, sizeof *owned);
    if (!text || !types || !scores || !owned || !idmap_init(&map, (size_t)n_vocab)) goto nomem;
    int64_t n_base = 0;   // the vocab's own ids: 0..n_base-1 (SentencePiece-style layout)
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        double id = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (id < 0 || id >= (double)n_vocab || id != (double)(int64_t)id) {
            st = err_fail(err, TV_ERR_FORMAT, "%s: token '%.40s' has id %g, outside the model's %lld tokens", path, it->string, id,
                          (long long)n_vocab);
            goto done;
        }
        text[(int64_t)id] = it->string;
        types[(int64_t)id] = TT_NORMAL;
        idmap_put(&map, it->string, (int32_t)id);
        if ((int64_t)id + 1 > n_base) n_base = (int64_t)id + 1;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *c = jstr(it, "content");
        double id = cJSON_IsNumber(jid) ? jid->valuedouble : -1;
        if (!c || id < 0 || id >= (double)n_vocab || id != (double)(int64_t)id) {
            st = err_fail(err, TV_ERR_FORMAT, "%s: added token '%.40s' has id %g, outside the model's %lld tokens", path, c ? c : "?", id,
                          (long long)n_vocab);
            goto done;
        }
        int64_t i = (int64_t)id;
        bool special = jbool(it, "special", false);
        if (spm && i < n_base) {   // LlamaHfVocab keeps the vocab's piece; specials are CONTROL
            if (special) types[i] = TT_CONTROL;
            continue;
        }
        text[i] = c;
        if (spm) {   // LlamaHfVocab: added ids past the vocab, CONTROL when special
            types[i] = special ? TT_CONTROL : TT_USER_DEFINED;
            scores[i] = -1000.0f;
        } else if (special || looks_special(c)) {
            types[i] = TT_CONTROL;
        } else {   // user-defined: get_vocab_base writes U+2581 as a space
            b.n = 0;
            for (const char *s = c; *s; s++) {
                if (!strncmp(s, "\xe2\x96\x81", 3)) {
                    sb_str(&b, " ");
                    s += 2;
                } else {
                    sb_put(&b, s, 1);
                }
            }
            if (b.oom || !(owned[i] = strdup(b.n ? b.p : ""))) goto nomem;
            text[i] = owned[i];
            types[i] = TT_USER_DEFINED;
        }
    }
    int64_t n_pad = 0;
    for (int64_t i = 0; i < n_vocab; i++) {
        if (text[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", spm ? (long long)++n_pad : (long long)i);
        if (!(owned[i] = strdup(pad))) goto nomem;
        text[i] = owned[i];
        types[i] = TT_UNUSED;
        if (spm) scores[i] = -1000.0f;
    }
    if (spm) {
        for (int64_t i = 0; i < n_base; i++) {
            const char *s = text[i];
            if (types[i] == TT_NORMAL && strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
                strspn(s + 3, "0123456789abcdefABCDEF") >= 2)
                types[i] = TT_BYTE;
        }
        // SentencePiece scores from the merge order: the first merge making a token ranks it
        int64_t rank = 0;
        cJSON_ArrayForEach(it, mlist) {
            if (!merge_text(it, &b)) goto bad_merge;
            char *sp = strchr(b.p, ' ');
            if (!sp) goto bad_merge;
            memmove(sp, sp + 1, strlen(sp + 1) + 1);   // "a b" -> "ab"
            int32_t id = idmap_get(&map, b.p);
            if (id >= 0 && scores[id] == 0.0f) scores[id] = -(float)(rank + 1);
            rank++;
        }
    } else {
        n_merges = cJSON_GetArraySize(mlist);
        if (!(merges = calloc((size_t)n_merges + 1, sizeof *merges))) goto nomem;
        int64_t k = 0;
        cJSON_ArrayForEach(it, mlist) {
            if (!merge_text(it, &b)) goto bad_merge;
            if (!(merges[k++] = strdup(b.p))) goto nomem;
        }
    }

    // special ids: tokenizer_config.json's <typ>_token among added_tokens, else config.json's <typ>_token_id
    static const struct { const char *typ, *key; } SPECIAL[] = {
        {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
        {"pad", "padding_token_id"}, {"cls", "cls_token_id"}, {"mask", "mask_token_id"},
    };
    int64_t sid[7];
    for (int k = 0; k < 7; k++) {
        char key[32];
        sid[k] = -1;
        snprintf(key, sizeof key, "%s_token", SPECIAL[k].typ);
        const char *want = token_text(cJSON_GetObjectItemCaseSensitive(tc, key));
        if (want)
            cJSON_ArrayForEach(it, added) if (sid[k] < 0 && jstr(it, "content") && !strcmp(jstr(it, "content"), want))
                sid[k] = (int64_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        if (sid[k] < 0) {
            snprintf(key, sizeof key, "%s_token_id", SPECIAL[k].typ);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cj, key);
            const cJSON *text_cfg = cJSON_GetObjectItemCaseSensitive(cj, "text_config");
            if (!v && text_cfg) v = cJSON_GetObjectItemCaseSensitive(text_cfg, key);
            if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == (double)(int64_t)v->valuedouble) sid[k] = (int64_t)v->valuedouble;
        }
        if (sid[k] >= n_vocab) sid[k] = -1;   // out of range: skipped, as SpecialVocab does
    }
    // add_bos / add_eos: a TemplateProcessing post-processor's leading/trailing special token,
    // then tokenizer_config.json's add_<typ>_token
    int add_bos = -1, add_eos = -1;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tj, "post_processor");
    const cJSON *procs = cJSON_GetObjectItemCaseSensitive(pp, "processors");
    for (const cJSON *p = procs ? procs->child : pp; p; p = procs ? p->next : NULL) {
        if (!is_type(p, "TemplateProcessing")) continue;
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        if (cJSON_GetArraySize(single) <= 1) continue;
        const char *first = jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken"), "id");
        const char *last = jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, cJSON_GetArraySize(single) - 1), "SpecialToken"), "id");
        const char *bos = token_text(cJSON_GetObjectItemCaseSensitive(tc, "bos_token"));
        const char *eos = token_text(cJSON_GetObjectItemCaseSensitive(tc, "eos_token"));
        if (first) add_bos = bos && !strcmp(first, bos);
        if (last) add_eos = eos && !strcmp(last, eos);
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(tc, "add_bos_token"), *ae = cJSON_GetObjectItemCaseSensitive(tc, "add_eos_token");
    if (cJSON_IsBool(ab)) add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) add_eos = cJSON_IsTrue(ae);

    gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", text, NULL, (uint64_t)n_vocab);
    if (spm) gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (uint64_t)n_vocab);
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n_vocab);
    if (!spm) gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, (uint64_t)n_merges);
    for (int k = 0; k < 7; k++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s", SPECIAL[k].key);
        if (sid[k] >= 0) gguf_set_u32(w, key, (uint32_t)sid[k]);
    }
    if (add_bos >= 0) gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    if (add_eos >= 0) gguf_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    if (desc && cap) snprintf(desc, cap, "%s/%s, %lld tokens", spm ? "llama" : "gpt2", pre, (long long)n_vocab);
    goto done;
bad_merge:
    st = err_fail(err, TV_ERR_FORMAT, "%s: a merge is neither \"a b\" nor [a, b]", path);
    goto done;
nomem:
    st = err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
done:
    for (int64_t i = 0; owned && i < n_vocab; i++) free(owned[i]);
    for (int64_t i = 0; merges && i < n_merges; i++) free((char *)merges[i]);
    free(owned);
    free(merges);
    free(text);
    free(types);
    free(scores);
    free(map.key);
    free(map.id);
    free(b.p);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    cJSON_Delete(cj);
    return st;
}
