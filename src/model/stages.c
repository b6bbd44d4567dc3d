// stages.c — tv_model_plan_stages: a model's layers split into contiguous pipeline stages.
//
// Balanced by bytes, read from the file's tensor table without mapping any tensor: layer l weighs
// the bytes of its blk.l.* tensors; the first stage also holds the embeddings, the last the output
// norm and head (the embeddings again when the head is tied to them). The split minimizes the
// heaviest stage (exact, by dynamic programming over the cut points).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "model/hf.h"
#include "util/status.h"

// Adds a tensor's bytes to its layer (w, n_layers) or to the first / last stage's extras.
static void weigh(const char *name, size_t nbytes, int n_layers, uint64_t *w, uint64_t *first, uint64_t *last,
                  uint64_t *embd) {
    int l, len = 0;
    if (sscanf(name, "blk.%d.%n", &l, &len) == 1 && len > 0) {
        if (l >= 0 && l < n_layers) w[l] += nbytes;
    } else if (!strcmp(name, "token_embd.weight")) {
        *first += nbytes;
        *embd = nbytes;
    } else if (!strcmp(name, "output.weight") || !strcmp(name, "output_norm.weight")) {
        *last += nbytes;
    }
}

// The layer weights of the file at path: *n_layers and w (malloc'd, n_layers), first / last extras.
static tv_status layer_bytes(const char *path, int *n_layers, uint64_t **w, uint64_t *first, uint64_t *last,
                             tv_error *err) {
    *first = *last = 0;
    uint64_t embd = 0;
    bool has_output = false;
    if (hf_is_model_dir(path))
        return err_fail(err, TV_ERR_UNSUPPORTED,
                        "%s: pipeline stages are planned from a GGUF or llama2.c file (convert the folder first)", path);
    int is_gguf = gguf_file_has_magic(path, err);
    if (is_gguf < 0) return err ? err->code : TV_ERR_IO;
    if (is_gguf) {
        gguf_ctx *g = gguf_open_lazy(path, err);
        if (!g) return err ? err->code : TV_ERR_FORMAT;
        int n = 0, l, len;
        for (int64_t i = 0; i < gguf_n_tensors(g); i++)
            if (len = 0, sscanf(gguf_tensor(g, i)->name, "blk.%d.%n", &l, &len) == 1 && len > 0 && l >= n && l < 4096) n = l + 1;
        *n_layers = n;
        *w = calloc(n > 0 ? (size_t)n : 1, sizeof **w);
        if (!*w) { gguf_close(g); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor_info *t = gguf_tensor(g, i);
            weigh(t->name, t->nbytes, n, *w, first, last, &embd);
            has_output |= !strcmp(t->name, "output.weight");
        }
        gguf_close(g);
    } else {
        tv_llama2c *m = llama2c_open(path, err);
        if (!m) return err ? err->code : TV_ERR_FORMAT;
        const int n = llama2c_get_config(m)->n_layers;
        *n_layers = n;
        *w = calloc(n > 0 ? (size_t)n : 1, sizeof **w);
        if (!*w) { llama2c_close(m); return err_fail(err, TV_ERR_NOMEM, "out of memory"); }
        for (int i = 0; i < llama2c_n_tensors(m); i++) {
            const tv_tensor *t = llama2c_tensor(m, i);
            weigh(t->name, t->nbytes, n, *w, first, last, &embd);
            has_output |= !strcmp(t->name, "output.weight");
        }
        llama2c_close(m);
    }
    if (!has_output) *last += embd;   // tied head: the last stage maps the embeddings too
    if (*n_layers <= 0) {
        free(*w);
        *w = NULL;
        return err_fail(err, TV_ERR_FORMAT, "%s: no layers (blk.N.*) found", path);
    }
    return TV_OK;
}

// Each stage's bytes under the plan first[] (bytes may be NULL).
static void stage_bytes(int n_stages, const int *first, const uint64_t *w, uint64_t extra_first, uint64_t extra_last,
                        uint64_t *bytes) {
    for (int k = 0; bytes && k < n_stages; k++) {
        bytes[k] = (k == 0 ? extra_first : 0) + (k == n_stages - 1 ? extra_last : 0);
        for (int l = first[k]; l < first[k + 1]; l++) bytes[k] += w[l];
    }
}

tv_status tv_model_plan_stages(const char *path, int n_stages, const int *split, int *first, uint64_t *bytes,
                               tv_error *err) {
    if (!path || !first || n_stages < 1) return err_fail(err, TV_ERR_INVALID, "plan stages: bad arguments");
    int L = 0;
    uint64_t *w = NULL, extra_first = 0, extra_last = 0;
    tv_status st = layer_bytes(path, &L, &w, &extra_first, &extra_last, err);
    if (st) return st;
    if (n_stages > L) {
        free(w);
        return err_fail(err, TV_ERR_RANGE, "%s: %d pipeline stages for %d layers (at most one stage per layer)", path,
                        n_stages, L);
    }
    if (split) {
        int sum = 0;
        first[0] = 0;
        for (int i = 0; i < n_stages; i++) {
            if (split[i] < 1) {
                free(w);
                return err_fail(err, TV_ERR_INVALID, "--pp-split: stage %d gets %d layers (each needs at least 1)", i, split[i]);
            }
            sum += split[i];
            first[i + 1] = sum;
        }
        if (sum == L) stage_bytes(n_stages, first, w, extra_first, extra_last, bytes);
        free(w);
        if (sum != L) return err_fail(err, TV_ERR_INVALID, "--pp-split: the counts add up to %d layers, the model has %d", sum, L);
        return TV_OK;
    }
    // best[k][j]: the lightest heaviest stage over splits of layers [0, j) into k stages; cut[k][j] its last cut
    uint64_t *pre = calloc((size_t)L + 1, sizeof *pre), *best = calloc((size_t)(n_stages + 1) * (size_t)(L + 1), sizeof *best);
    int *cut = calloc((size_t)(n_stages + 1) * (size_t)(L + 1), sizeof *cut);
    if (!pre || !best || !cut) {
        free(pre), free(best), free(cut), free(w);
        return err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) pre[l + 1] = pre[l] + w[l];
#define BEST(k, j) best[(size_t)(k) * (size_t)(L + 1) + (size_t)(j)]
#define CUT(k, j) cut[(size_t)(k) * (size_t)(L + 1) + (size_t)(j)]
    for (int j = 1; j <= L; j++) BEST(1, j) = extra_first + pre[j] + (n_stages == 1 ? extra_last : 0);
    for (int k = 2; k <= n_stages; k++)
        for (int j = k; j <= L; j++) {
            BEST(k, j) = UINT64_MAX;
            for (int i = k - 1; i < j; i++) {   // stage k holds [i, j)
                uint64_t c = pre[j] - pre[i] + (k == n_stages && j == L ? extra_last : 0);
                uint64_t m = BEST(k - 1, i) > c ? BEST(k - 1, i) : c;
                if (m < BEST(k, j)) { BEST(k, j) = m; CUT(k, j) = i; }
            }
        }
    first[n_stages] = L;
    for (int k = n_stages, j = L; k > 1; k--) j = first[k - 1] = CUT(k, j);
    first[0] = 0;
#undef BEST
#undef CUT
    stage_bytes(n_stages, first, w, extra_first, extra_last, bytes);
    free(pre), free(best), free(cut), free(w);
    return TV_OK;
}
