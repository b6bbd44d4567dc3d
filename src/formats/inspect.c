// inspect.c — the public file tools of tinyvllm_tools.h over the containers: tv_file (a GGUF or
// llama2.c file, or a Hugging Face folder's safetensors, read without loading a model) and
// tv_convert_llama2c.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "formats/sniff.h"
#include "tinyvllm_tools.h"
#include <sys/stat.h>
#include "util/status.h"

struct tv_file {
    gguf_ctx *gguf;      // exactly one of the three is set
    tv_llama2c *l2c;
    st_set *st;          // a folder's safetensors (model.safetensors or the index's shards)
};

tv_file *tv_file_open(const char *path, tv_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        tv_file *f = calloc(1, sizeof *f);
        if (!f) {
            err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
            return NULL;
        }
        if (!(f->st = st_set_open(path, err))) {
            free(f);
            return NULL;
        }
        return f;
    }
    int is_gguf = gguf_file_has_magic(path, err);
    if (is_gguf < 0) return NULL;
    tv_file *f = calloc(1, sizeof *f);
    if (!f) {
        err_fail(err, TV_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (is_gguf)
        f->gguf = gguf_open(path, err);
    else if (!(f->l2c = llama2c_open(path, err)))
        sniff_explain_model_error(path, err ? err->code : TV_ERR_FORMAT, err);
    if (!f->gguf && !f->l2c) {
        free(f);
        return NULL;
    }
    return f;
}

void tv_file_close(tv_file *f) {
    if (!f) return;
    gguf_close(f->gguf);
    llama2c_close(f->l2c);
    st_set_close(f->st);
    free(f);
}

void tv_file_describe(const tv_file *f, tv_file_desc *d) {
    memset(d, 0, sizeof *d);
    if (f->gguf) {
        d->format = "gguf";
        d->version = gguf_version(f->gguf);
        d->alignment = gguf_alignment(f->gguf);
        d->data_offset = gguf_data_offset(f->gguf);
    } else if (f->st) {
        d->format = "safetensors";
    } else {
        const tv_llama2c_config *c = llama2c_get_config(f->l2c);
        d->format = "llama2c";
        d->version = (uint32_t)c->version;
        d->shared_classifier = c->shared_classifier;
    }
}

int64_t tv_file_n_meta(const tv_file *f) { return f->gguf ? gguf_n_kv(f->gguf) : 0; }

const char *tv_file_meta_key(const tv_file *f, int64_t i) {
    return f->gguf && i >= 0 && i < gguf_n_kv(f->gguf) ? gguf_kv_key(f->gguf, i) : NULL;
}

size_t tv_file_meta_text(const tv_file *f, int64_t i, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!tv_file_meta_key(f, i)) return 0;
    const gguf_value *v = gguf_kv_value(f->gguf, i);
    int n;
    switch (v->type) {
    case GGUF_TYPE_STRING: {
        size_t len = (size_t)v->v.s.len;
        if (cap) {
            size_t k = len < cap - 1 ? len : cap - 1;
            memcpy(buf, v->v.s.ptr, k);
            buf[k] = 0;
        }
        return len;
    }
    case GGUF_TYPE_ARRAY:
        n = snprintf(buf, cap, "[%s × %" PRIu64 "]", gguf_type_name(v->arr_type), v->arr_n);
        break;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: n = snprintf(buf, cap, "%g", v->v.f); break;
    case GGUF_TYPE_BOOL: n = snprintf(buf, cap, "%s", v->v.b ? "true" : "false"); break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64: n = snprintf(buf, cap, "%" PRId64, v->v.i); break;
    default: n = snprintf(buf, cap, "%" PRIu64, v->v.u); break;
    }
    return n > 0 ? (size_t)n : 0;
}

const char *tv_file_meta_str(const tv_file *f, const char *key, size_t *len) {
    gguf_str s;
    if (!f->gguf || !gguf_get_str(f->gguf, key, &s)) return NULL;
    *len = (size_t)s.len;
    return s.ptr;
}

const char *tv_file_token_of(const tv_file *f, const char *id_key, size_t *len) {
    int64_t id;
    if (!f->gguf || !gguf_get_int(f->gguf, id_key, &id)) return NULL;
    const gguf_value *toks = gguf_get(f->gguf, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_TYPE_ARRAY || toks->arr_type != GGUF_TYPE_STRING || id < 0 ||
        (uint64_t)id >= toks->arr_n)
        return NULL;
    gguf_str s = gguf_arr_str(toks, (uint64_t)id);
    *len = (size_t)s.len;
    return s.ptr;
}

int64_t tv_file_n_tensors(const tv_file *f) {
    return f->gguf ? gguf_n_tensors(f->gguf) : f->st ? st_set_n_tensors(f->st) : llama2c_n_tensors(f->l2c);
}

bool tv_file_tensor(const tv_file *f, int64_t i, tv_tensor_desc *out) {
    if (i < 0 || i >= tv_file_n_tensors(f)) return false;
    if (f->gguf) {
        const gguf_tensor_info *t = gguf_tensor(f->gguf, i);
        *out = (tv_tensor_desc){.name = t->name, .type = (int)t->type, .n_dims = t->n_dims, .nbytes = t->nbytes};
        memcpy(out->ne, t->ne, sizeof out->ne);
    } else if (f->st) {   // shapes reversed into ne order (ne[0] fastest); dims past 4 folded into ne[3]
        const st_tensor *t = st_set_tensor(f->st, i);
        static const int TYPE[] = {[ST_F32] = TV_TYPE_F32, [ST_F16] = TV_TYPE_F16, [ST_BF16] = TV_TYPE_BF16,
                                   [ST_F8_E4M3] = -1, [ST_U8] = -1, [ST_OTHER] = -1};
        *out = (tv_tensor_desc){.name = t->name, .type = TYPE[t->dtype], .n_dims = t->n_dims < 4 ? t->n_dims : 4,
                                .ne = {1, 1, 1, 1}, .nbytes = t->nbytes};
        for (int d = 0; d < t->n_dims; d++) {
            int k = t->n_dims - 1 - d < 3 ? t->n_dims - 1 - d : 3;
            out->ne[k] *= t->shape[d];
        }
        out->type_name = t->dtype_name;
        return true;
    } else {
        const tv_tensor *t = llama2c_tensor(f->l2c, (int)i);
        *out = (tv_tensor_desc){.name = t->name, .type = (int)t->type, .n_dims = t->n_dims, .nbytes = t->nbytes};
        memcpy(out->ne, t->ne, sizeof out->ne);
    }
    out->type_name = kern_type_name((tv_type)out->type);
    return true;
}

tv_status tv_convert_llama2c(const char *model_path, const char *tokenizer_path, const char *name,
                             const char *out_path, char *summary, size_t cap, tv_progress_fn progress,
                             void *progress_user, tv_error *err) {
    tv_status st;
    tv_llama2c_vocab *vocab = NULL;
    gguf_writer *w = NULL;
    tv_llama2c *m = llama2c_open(model_path, err);
    if (!m) return err ? err->code : TV_ERR_IO;
    const tv_llama2c_config *c = llama2c_get_config(m);
    if (tokenizer_path && !(vocab = llama2c_vocab_open(tokenizer_path, c->vocab_size, err))) {
        st = err ? err->code : TV_ERR_IO;
        goto done;
    }
    if (!(w = gguf_writer_create())) {
        st = err_fail(err, TV_ERR_NOMEM, "convert: out of memory");
        goto done;
    }
    if ((st = llama2c_to_gguf(m, vocab, name, w, err)) != TV_OK) goto done;
    gguf_writer_set_progress(w, progress, progress_user);
    if ((st = gguf_writer_write(w, out_path, err)) != TV_OK) goto done;
    if (summary && cap)
        snprintf(summary, cap, "llama2.c v%d, dim %d, hidden %d, layers %d, heads %d/%d kv, vocab %d%s, ctx %d, %d tensors (F32)%s",
                 c->version, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                 c->shared_classifier ? " (tied output)" : "", c->seq_len, llama2c_n_tensors(m),
                 vocab ? ", with tokenizer" : ", no tokenizer");
done:
    gguf_writer_free(w);
    llama2c_vocab_free(vocab);
    llama2c_close(m);
    return st;
}
