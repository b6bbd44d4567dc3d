// llama2c.c — llama2.c checkpoints (v0 legacy and v1 "ak42"), mapped read-only and exposed as
// GGUF-named F32 tensor views. The grammar is in llama2c.h. Validation: every header field in
// range, the head layout consistent, and the file size exactly what the header implies
// (overflow-checked), so every view lies inside the mapping.
#include "formats/llama2c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llama2c.c maps little-endian floats in place: big-endian hosts are not supported"
#endif

#define V0_HEADER_BYTES 28    // 7 × i32
#define V1_HEADER_BYTES 256
#define NAME_CAP 40           // "blk.1023.attn_output.weight" + NUL fits
#define LAYER_TENSORS 9

// Sanity bounds (far above any llama2.c-format model; they keep every size product in range).
#define MAX_DIM (1 << 16)
#define MAX_HIDDEN (1 << 20)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_SEQ (1 << 24)

struct tv_llama2c {
    char *label;
    void *map;                // owned mapping (NULL for open_memory)
    size_t map_size;
    const uint8_t *base;
    size_t size;
    tv_llama2c_config cfg;
    int n_tensors;
    tv_tensor *tensors;       // n_tensors views; [0..3) globals (2 when shared), then 9 per layer
    int n_global;
    char *names;              // n_tensors × NAME_CAP
};

static const char *const LAYER_NAMES[LAYER_TENSORS] = {
    "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up",
};

static int32_t rd_i32(const uint8_t *p) { int32_t x; memcpy(&x, p, 4); return x; }

// Checked accumulate of a float count (in elements) into *total.
static bool add_elems(uint64_t *total, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t n;
    if (__builtin_mul_overflow(a, b, &n) || __builtin_mul_overflow(n, c, &n)) return false;
    return !__builtin_add_overflow(*total, n, total);
}

static bool parse_header(tv_llama2c *m, tv_error *err, size_t *weights_at) {
    const char *L = m->label;
    tv_llama2c_config *c = &m->cfg;
    const uint8_t *p = m->base;
    if (m->size < V0_HEADER_BYTES)
        return err_fail(err, TV_ERR_FORMAT, "%s: file is %zu bytes, too small for a llama2.c header (28 bytes)", L, m->size), false;
    uint32_t magic;
    memcpy(&magic, p, 4);
    int32_t h[7];
    if (magic == TV_LLAMA2C_MAGIC) {
        if (m->size < V1_HEADER_BYTES)
            return err_fail(err, TV_ERR_FORMAT, "%s: truncated at offset %zu reading the 256-byte v1 header", L, m->size), false;
        int32_t version = rd_i32(p + 4);
        if (version == 2)
            return err_fail(err, TV_ERR_UNSUPPORTED, "%s: llama2.c version 2 (int8-quantized export) is not supported; "
                           "export with --version 1 or 0", L), false;
        if (version != 1)
            return err_fail(err, TV_ERR_UNSUPPORTED, "%s: unsupported llama2.c version %d at offset 4", L, version), false;
        for (int i = 0; i < 7; i++) h[i] = rd_i32(p + 8 + 4 * i);
        uint8_t shared = p[36];
        if (shared > 1)
            return err_fail(err, TV_ERR_FORMAT, "%s: shared_classifier flag %u at offset 36 is not 0 or 1", L, shared), false;
        for (size_t i = 37; i < V1_HEADER_BYTES; i++)
            if (p[i]) return err_fail(err, TV_ERR_FORMAT, "%s: non-zero header padding at offset %zu", L, i), false;
        if (h[5] <= 0) return err_fail(err, TV_ERR_FORMAT, "%s: vocab_size %d at offset 28 is not positive", L, h[5]), false;
        c->shared_classifier = shared;
        c->version = 1;
        *weights_at = V1_HEADER_BYTES;
    } else {
        for (int i = 0; i < 7; i++) h[i] = rd_i32(p + 4 * i);
        c->version = 0;
        c->shared_classifier = h[5] > 0;
        if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5];
        *weights_at = V0_HEADER_BYTES;
    }
    c->dim = h[0]; c->hidden_dim = h[1]; c->n_layers = h[2]; c->n_heads = h[3];
    c->n_kv_heads = h[4]; c->vocab_size = h[5]; c->seq_len = h[6];
    static const char *const FIELD[7] = { "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len" };
    static const int32_t MAX[7] = { MAX_DIM, MAX_HIDDEN, MAX_LAYERS, MAX_HEADS, MAX_HEADS, MAX_VOCAB, MAX_SEQ };
    size_t field0 = c->version == 1 ? 8 : 0;
    for (int i = 0; i < 7; i++)
        if (h[i] <= 0 || h[i] > MAX[i])
            return err_fail(err, TV_ERR_FORMAT, "%s: header field %s = %d at offset %zu is not in 1..%d (not a llama2.c model?)",
                           L, FIELD[i], h[i], field0 + 4 * (size_t)i, MAX[i]), false;
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return err_fail(err, TV_ERR_FORMAT, "%s: n_kv_heads %d does not divide n_heads %d", L, c->n_kv_heads, c->n_heads), false;
    if (c->dim % c->n_heads)
        return err_fail(err, TV_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", L, c->dim, c->n_heads), false;
    if ((c->dim / c->n_heads) % 2)
        return err_fail(err, TV_ERR_FORMAT, "%s: head size %d is odd (RoPE rotates pairs)", L, c->dim / c->n_heads), false;
    return true;
}

static tv_tensor *add_view(tv_llama2c *m, const char *name, int64_t ne0, int64_t ne1, const uint8_t *data) {
    tv_tensor *t = &m->tensors[m->n_tensors];
    char *nm = m->names + (size_t)m->n_tensors * NAME_CAP;
    snprintf(nm, NAME_CAP, "%s", name);
    t->name = nm;
    t->type = TV_TYPE_F32;
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0; t->ne[1] = ne1; t->ne[2] = 1; t->ne[3] = 1;
    t->nbytes = (size_t)ne0 * (size_t)ne1 * sizeof(float);
    t->data = data;
    m->n_tensors++;
    return t;
}

static bool build(tv_llama2c *m, tv_error *err) {
    size_t at;
    if (!parse_header(m, err, &at)) return false;
    const tv_llama2c_config *c = &m->cfg;
    uint64_t dim = (uint64_t)c->dim, hid = (uint64_t)c->hidden_dim, nl = (uint64_t)c->n_layers;
    uint64_t vocab = (uint64_t)c->vocab_size, hs = dim / (uint64_t)c->n_heads;
    uint64_t kv_dim = (uint64_t)c->n_kv_heads * hs;   // the query width n_heads*hs is dim

    // expected size in floats, overflow-checked
    uint64_t n = 0;
    bool ok = add_elems(&n, vocab, dim, 1)            // token embedding
           && add_elems(&n, nl, dim, 2)               // rms_att + rms_ffn
           && add_elems(&n, nl, dim, dim * 2)         // wq + wo
           && add_elems(&n, nl, dim, kv_dim * 2)      // wk + wv
           && add_elems(&n, nl, dim, hid * 3)         // w1 w2 w3
           && add_elems(&n, dim, 1, 1)                // rms_final
           && (c->version != 0 || add_elems(&n, (uint64_t)c->seq_len, hs, 1))   // freq_cis real + imag
           && (c->shared_classifier || add_elems(&n, vocab, dim, 1));
    uint64_t expect;
    if (!ok || __builtin_mul_overflow(n, 4u, &expect) || __builtin_add_overflow(expect, (uint64_t)at, &expect))
        return err_fail(err, TV_ERR_FORMAT, "%s: the header's sizes overflow", m->label), false;
    if (expect != (uint64_t)m->size)
        return err_fail(err, TV_ERR_FORMAT,
                       "%s: file is %zu bytes but the v%d header (dim %d, hidden %d, layers %d, heads %d, kv_heads %d, "
                       "vocab %d%s, seq_len %d) implies %llu bytes",
                       m->label, m->size, c->version, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                       c->vocab_size, c->shared_classifier ? " shared" : "", c->seq_len, (unsigned long long)expect), false;

    int n_total = 3 + LAYER_TENSORS * c->n_layers;
    m->tensors = calloc((size_t)n_total, sizeof *m->tensors);
    m->names = calloc((size_t)n_total, NAME_CAP);
    if (!m->tensors || !m->names) return err_fail(err, TV_ERR_NOMEM, "%s: out of memory", m->label), false;

    // region starts (bytes) — every size below was covered by the exact-size check above
    const uint8_t *p = m->base + at;
    size_t f = sizeof(float);
    const uint8_t *emb, *rms_att, *rms_ffn, *rms_final, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *wcls;
    size_t sz_emb = vocab * dim * f, sz_norm = nl * dim * f, sz_q = nl * dim * dim * f, sz_kv = nl * dim * kv_dim * f;
    size_t sz_ffn = nl * dim * hid * f;
    if (c->version == 0) {
        emb = p;                  rms_att = emb + sz_emb;  wq = rms_att + sz_norm; wk = wq + sz_q;
        wv = wk + sz_kv;          wo = wv + sz_kv;         rms_ffn = wo + sz_q;    w1 = rms_ffn + sz_norm;
        w2 = w1 + sz_ffn;         w3 = w2 + sz_ffn;        rms_final = w3 + sz_ffn;
        wcls = rms_final + dim * f + 2 * (size_t)c->seq_len * (hs / 2) * f;
    } else {
        rms_att = p;              rms_ffn = rms_att + sz_norm; rms_final = rms_ffn + sz_norm;
        emb = rms_final + dim * f; wq = emb + sz_emb;      wk = wq + sz_q;         wv = wk + sz_kv;
        wo = wv + sz_kv;          w1 = wo + sz_q;          w2 = w1 + sz_ffn;       w3 = w2 + sz_ffn;
        wcls = w3 + sz_ffn;
    }
    TV_CHECK((size_t)(wcls - m->base) + (c->shared_classifier ? 0 : sz_emb) == m->size);

    add_view(m, "token_embd.weight", (int64_t)dim, (int64_t)vocab, emb);
    add_view(m, "output_norm.weight", (int64_t)dim, 1, rms_final);
    if (!c->shared_classifier) add_view(m, "output.weight", (int64_t)dim, (int64_t)vocab, wcls);
    m->n_global = m->n_tensors;
    for (uint64_t l = 0; l < nl; l++) {
        char name[NAME_CAP];
        // (ne0 = in, ne1 = out); per-layer stride = per-region size / n_layers
        const struct { const uint8_t *base; uint64_t ne0, ne1; } V[LAYER_TENSORS] = {
            { rms_att, dim, 1 }, { wq, dim, dim }, { wk, dim, kv_dim }, { wv, dim, kv_dim }, { wo, dim, dim },
            { rms_ffn, dim, 1 }, { w1, dim, hid }, { w2, hid, dim }, { w3, dim, hid },
        };
        for (int k = 0; k < LAYER_TENSORS; k++) {
            snprintf(name, sizeof name, "blk.%llu.%s.weight", (unsigned long long)l, LAYER_NAMES[k]);
            size_t stride = V[k].ne0 * V[k].ne1 * f;
            add_view(m, name, (int64_t)V[k].ne0, (int64_t)V[k].ne1, V[k].base + l * stride);
        }
    }
    return true;
}

static tv_llama2c *l2c_new(const char *label, tv_error *err) {
    tv_llama2c *m = calloc(1, sizeof *m);
    if (m) m->label = strdup(label ? label : "<memory>");
    if (!m || !m->label) { free(m); err_fail(err, TV_ERR_NOMEM, "%s: out of memory", label ? label : "<memory>"); return NULL; }
    return m;
}

tv_llama2c *llama2c_open_memory(const void *data, size_t size, const char *label, tv_error *err) {
    tv_llama2c *m = l2c_new(label, err);
    if (!m) return NULL;
    m->base = data;
    m->size = data ? size : 0;
    if (!build(m, err)) { llama2c_close(m); return NULL; }
    return m;
}

tv_llama2c *llama2c_open(const char *path, tv_error *err) {
    tv_llama2c *m = l2c_new(path, err);
    if (!m) return NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    if (fstat(fd, &st) != 0) { err_fail(err, TV_ERR_IO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
    if (!S_ISREG(st.st_mode)) { err_fail(err, TV_ERR_IO, "%s: not a regular file", path); goto fail; }
    if (st.st_size < V0_HEADER_BYTES) {
        err_fail(err, TV_ERR_FORMAT, "%s: file is %lld bytes, too small for a llama2.c header (28 bytes)", path,
                (long long)st.st_size);
        goto fail;
    }
    m->map_size = (size_t)st.st_size;
    m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        err_fail(err, TV_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    m->base = m->map;
    m->size = m->map_size;
    if (!build(m, err)) goto fail;
    return m;
fail:
    if (fd >= 0) close(fd);
    llama2c_close(m);
    return NULL;
}

void llama2c_close(tv_llama2c *m) {
    if (!m) return;
    if (m->map) munmap(m->map, m->map_size);
    free(m->tensors);
    free(m->names);
    free(m->label);
    free(m);
}

const tv_llama2c_config *llama2c_get_config(const tv_llama2c *m) { return &m->cfg; }
int llama2c_n_tensors(const tv_llama2c *m) { return m->n_tensors; }

const tv_tensor *llama2c_tensor(const tv_llama2c *m, int i) {
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

const tv_tensor *llama2c_find(const tv_llama2c *m, const char *name) {
    if (!name) return NULL;
    if (!strncmp(name, "blk.", 4)) {   // jump to the layer's 9 tensors
        char *end;
        long l = strtol(name + 4, &end, 10);
        if (end == name + 4 || *end != '.' || l < 0 || l >= m->cfg.n_layers) return NULL;
        for (int k = 0; k < LAYER_TENSORS; k++) {
            const tv_tensor *t = &m->tensors[m->n_global + (int)l * LAYER_TENSORS + k];
            if (!strcmp(t->name, name)) return t;
        }
        return NULL;
    }
    for (int i = 0; i < m->n_global; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

// ---- tokenizer.bin ----
#define MAX_TOKEN_LEN 65536

void llama2c_vocab_free(tv_llama2c_vocab *v) {
    if (!v) return;
    if (v->pieces) for (int32_t i = 0; i < v->n_vocab; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->lens);
    free(v);
}

tv_llama2c_vocab *llama2c_vocab_open_memory(const void *data, size_t size, int32_t n_vocab, const char *label,
                                               tv_error *err) {
    const uint8_t *p = data;
    const char *L = label ? label : "<memory>";
    if (n_vocab <= 0 || n_vocab > MAX_VOCAB) { err_fail(err, TV_ERR_INVALID, "%s: vocab size %d out of range", L, n_vocab); return NULL; }
    if (!p || size < 4) { err_fail(err, TV_ERR_FORMAT, "%s: truncated at offset 0 reading max_token_length", L); return NULL; }
    // each token takes at least 8 bytes: refuse a vocab size the file cannot hold before allocating
    if ((size - 4) / 8 < (size_t)n_vocab) {
        err_fail(err, TV_ERR_FORMAT, "%s: %zu bytes cannot hold %d tokens (wrong tokenizer for this model?)", L, size, n_vocab);
        return NULL;
    }
    tv_llama2c_vocab *v = calloc(1, sizeof *v);
    if (!v) goto nomem;
    v->n_vocab = 0;
    v->scores = calloc((size_t)n_vocab, sizeof *v->scores);
    v->pieces = calloc((size_t)n_vocab, sizeof *v->pieces);
    v->lens = calloc((size_t)n_vocab, sizeof *v->lens);
    if (!v->scores || !v->pieces || !v->lens) goto nomem;
    v->max_token_length = rd_i32(p);
    if (v->max_token_length < 0 || v->max_token_length > MAX_TOKEN_LEN) {
        err_fail(err, TV_ERR_FORMAT, "%s: max_token_length %d at offset 0 is not in 0..%d", L, v->max_token_length, MAX_TOKEN_LEN);
        goto fail;
    }
    size_t pos = 4;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (size - pos < 8) {
            err_fail(err, TV_ERR_FORMAT, "%s: truncated at offset %zu reading token %d of %d", L, pos, i, n_vocab);
            goto fail;
        }
        memcpy(&v->scores[i], p + pos, 4);
        int32_t len = rd_i32(p + pos + 4);
        if (len < 0 || len > v->max_token_length) {
            err_fail(err, TV_ERR_FORMAT, "%s: token %d length %d at offset %zu is not in 0..max_token_length %d", L, i, len,
                    pos + 4, v->max_token_length);
            goto fail;
        }
        pos += 8;
        if (size - pos < (size_t)len) {
            err_fail(err, TV_ERR_FORMAT, "%s: truncated at offset %zu reading the %d bytes of token %d", L, pos, len, i);
            goto fail;
        }
        v->pieces[i] = malloc((size_t)len + 1);
        if (!v->pieces[i]) goto nomem;
        v->n_vocab = i + 1;
        memcpy(v->pieces[i], p + pos, (size_t)len);
        v->pieces[i][len] = 0;
        v->lens[i] = (uint32_t)len;
        pos += (size_t)len;
    }
    if (pos != size) {
        err_fail(err, TV_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens at offset %zu (wrong tokenizer for this model?)",
                L, size - pos, n_vocab, pos);
        goto fail;
    }
    return v;
nomem:
    err_fail(err, TV_ERR_NOMEM, "%s: out of memory", L);
fail:
    llama2c_vocab_free(v);
    return NULL;
}

tv_llama2c_vocab *llama2c_vocab_open(const char *path, int32_t n_vocab, tv_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { err_fail(err, TV_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        err_fail(err, TV_ERR_IO, "%s: not a readable non-empty regular file", path);
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { err_fail(err, TV_ERR_IO, "%s: mmap failed: %s", path, strerror(errno)); return NULL; }
    tv_llama2c_vocab *v = llama2c_vocab_open_memory(map, (size_t)st.st_size, n_vocab, path, err);
    munmap(map, (size_t)st.st_size);
    return v;
}

// ---- conversion to GGUF ----
// Is piece "<0xXX>" with two uppercase hex digits?
static bool is_byte_piece(const char *s, uint32_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return false;
    for (int i = 3; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) return false;
    return true;
}

static tv_status vocab_to_gguf(const tv_llama2c_vocab *v, gguf_writer *w, tv_error *err) {
    tv_status st = TV_OK;
    size_t n = (size_t)v->n_vocab;
    char **toks = calloc(n, sizeof *toks);
    uint64_t *lens = calloc(n, sizeof *lens);
    int32_t *types = calloc(n, sizeof *types);
    if (!toks || !lens || !types) { st = err_fail(err, TV_ERR_NOMEM, "out of memory converting the vocab"); goto done; }
    for (size_t i = 0; i < n; i++) {
        const char *p = v->pieces[i];
        uint32_t len = v->lens[i];
        if (i == 1 && len == 5 && !memcmp(p, "\n<s>\n", 5)) { p = "<s>"; len = 3; }
        if (i == 2 && len == 6 && !memcmp(p, "\n</s>\n", 6)) { p = "</s>"; len = 4; }
        types[i] = i == 0 ? 2 : (i == 1 || i == 2) ? 3 : is_byte_piece(p, len) ? 6 : 1;
        size_t n_sp = 0;
        for (uint32_t k = 0; k < len; k++) n_sp += p[k] == ' ';
        toks[i] = malloc(len + 2 * n_sp + 1);   // ' ' (1 byte) -> U+2581 (3 bytes)
        if (!toks[i]) { st = err_fail(err, TV_ERR_NOMEM, "out of memory converting the vocab"); goto done; }
        size_t o = 0;
        for (uint32_t k = 0; k < len; k++) {
            if (p[k] == ' ' && types[i] == 1) { memcpy(toks[i] + o, "\xe2\x96\x81", 3); o += 3; }
            else toks[i][o++] = p[k];
        }
        toks[i][o] = 0;
        lens[i] = o;
    }
    gguf_set_spm_vocab(w, (const char *const *)toks, lens, v->scores, types, n);
done:
    if (toks) for (size_t i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(lens);
    free(types);
    return st;
}

tv_status llama2c_to_gguf(const tv_llama2c *m, const tv_llama2c_vocab *vocab, const char *name, gguf_writer *w,
                             tv_error *err) {
    const tv_llama2c_config *c = &m->cfg;
    if (vocab && vocab->n_vocab != c->vocab_size)
        return err_fail(err, TV_ERR_INVALID, "%s: the tokenizer has %d tokens but the model's vocab_size is %d", m->label,
                       vocab->n_vocab, c->vocab_size);
    gguf_set_str(w, "general.architecture", "llama");
    if (name) gguf_set_str(w, "general.name", name);
    gguf_set_u32(w, "general.file_type", 0);   // LLAMA_FTYPE_ALL_F32
    gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    if (vocab) {
        tv_status st = vocab_to_gguf(vocab, w, err);
        if (st != TV_OK) return st;
    } else {
        gguf_set_str(w, "tokenizer.ggml.model", "no_vocab");
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const tv_tensor *t = &m->tensors[i];
        tv_status st = gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, err);
        if (st != TV_OK) return st;
    }
    return TV_OK;
}
