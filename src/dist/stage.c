// stage.c — one later stage of a pipeline (stage.h).
#include "dist/stage.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "dist/wire.h"
#include "engine/sampler.h"
#include "util/alloc.h"
#include "util/status.h"

struct stage {
    int rank;
    bool is_last;
    int dim, n_vocab;
    stage_geometry g;
    backend *be;
    tv_kv_cache *kv;
    tv_forward *fwd;
    tv_sampler *scratch;     // the last stage: sampler_sample_plain's scratch
    const int32_t **tables;  // (max_seqs) block-table views of a received batch
    pipe_row *rows;          // (max_logits) its rows
    float *hidden;           // (max_tokens, dim) a received f16 hidden state, widened
    void *out[2];            // the messages passed on, alternately (one may still be sending)
    size_t out_cap[2];
    wire_note note[2];       // a failure passed on, alternately
    int turn;
};

void stage_geometry_of(const tv_engine *e, stage_geometry *g) {
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    const int64_t ml = (int64_t)lim.max_num_seqs * (1 + lim.spec_tokens);
    *g = (stage_geometry){.n_blocks = (int32_t)lim.n_blocks, .block_size = lim.block_size, .kv_f32 = lim.kv_bits == 32,
                          .max_tokens = lim.max_batched_tokens,
                          .max_logits = ml < lim.max_batched_tokens ? (int32_t)ml : lim.max_batched_tokens,
                          .max_len = lim.max_model_len, .max_seqs = lim.max_num_seqs};
}

stage *stage_create(tv_model *m, const stage_geometry *g, int rank, const char *cpu_path, int n_threads, tv_error *err) {
    stage *st = calloc(1, sizeof *st);
    if (!st) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    const tv_hparams *hp = model_hparams(m);
    int l0, l1;
    model_layer_range(m, &l0, &l1);
    st->rank = rank;
    st->is_last = l1 == hp->n_layers;
    st->dim = hp->dim;
    st->n_vocab = hp->n_vocab;
    st->g = *g;
    tv_sampling_params sp;
    tv_sampling_params_default(&sp);   // temperature 1, top_k 0: the scratch space is made
    if (!(st->be = backend_cpu_create(cpu_path, n_threads > 0 ? n_threads : 1, err)) ||
        !(st->kv = kv_cache_create(m, g->n_blocks, g->block_size, g->kv_f32, err)) ||
        !(st->fwd = forward_create(m, g->max_len, g->max_tokens, g->max_logits, st->be, err)) ||
        (st->is_last && !(st->scratch = sampler_create(&sp, hp->n_vocab, 0, err))))
        goto fail;
    if (!(st->tables = malloc((size_t)g->max_seqs * sizeof *st->tables)) ||
        !(st->rows = malloc((size_t)(g->max_logits > 0 ? g->max_logits : 1) * sizeof *st->rows)) ||
        !(st->hidden = malloc((size_t)g->max_tokens * (size_t)st->dim * sizeof *st->hidden))) {
        err_fail(err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    return st;
fail:
    stage_free(st);
    return NULL;
}

void stage_free(stage *st) {
    if (!st) return;
    forward_free(st->fwd);
    kv_cache_free(st->kv);
    backend_free(st->be);
    sampler_free(st->scratch);
    free(st->tables);
    free(st->rows);
    free(st->hidden);
    free(st->out[0]);
    free(st->out[1]);
    free(st);
}

int stage_is_last(const stage *st) { return st->is_last; }

// out[turn] with room for n bytes; NULL when out of memory.
static void *room(stage *st, size_t n) {
    const int t = st->turn;
    if (n > st->out_cap[t]) {
        void *nb = mem_malloc(n);
        if (!nb) return NULL;
        free(st->out[t]);
        st->out[t] = nb;
        st->out_cap[t] = n;
    }
    return st->out[t];
}

int stage_handle(stage *st, const void *msg, size_t n, const void **out, size_t *n_out) {
    st->turn ^= 1;
    wire_note *note = &st->note[st->turn];
    wire_msg w;
    tv_error err = {0};
    tv_status fs = wire_unpack(msg, n, st->dim, st->g.max_seqs, st->g.max_logits, st->g.max_tokens, st->hidden,
                               st->tables, st->rows, &w, &err);
    if (!fs && w.kind == WIRE_STOP) {
        *out = msg;
        *n_out = n;
        return WIRE_STOP;
    }
    if (!fs && w.kind == WIRE_FAIL) {   // failed before: passes on
        *note = w.note;
        if (st->is_last) note->kind = WIRE_REPLY;
        *out = note;
        *n_out = sizeof *note;
        return WIRE_FAIL;
    }
    if (!fs && w.block_size != st->g.block_size)
        fs = err_fail(&err, TV_ERR_FORMAT, "a batch with blocks of %d tokens for a pool of %d", w.block_size, st->g.block_size);
    float *res = NULL;
    if (!fs) fs = forward_run(st->fwd, st->kv, &w.b, &res, &err);
    if (!fs) {
        const size_t sn = st->is_last ? wire_reply_size(w.rows, w.b.n_logits, st->n_vocab)
                                      : wire_size(&w.b, w.block_size, st->dim, w.hidden_bits);
        void *buf = room(st, sn);
        if (buf) {
            if (st->is_last) wire_reply_pack(buf, w.round, st->rank, w.rows, w.b.n_logits, res, st->n_vocab, st->scratch);
            else wire_pack(buf, w.round, &w.b, w.block_size, w.rows, res, st->dim, w.hidden_bits);
            *out = buf;
            *n_out = sn;
            return WIRE_STEP;
        }
        fs = err_fail(&err, TV_ERR_NOMEM, "out of memory for a %zu-byte message", sn);
    }
    wire_note_set(note, st->is_last ? WIRE_REPLY : WIRE_FAIL, w.round, fs, st->rank, err.msg);
    *out = note;
    *n_out = sizeof *note;
    return WIRE_STEP;
}
