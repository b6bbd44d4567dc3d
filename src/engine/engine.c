// engine.c — tv_engine_step() = schedule -> run -> postprocess, each round:
//   schedule     the scheduler picks sequences and token counts and allocates their blocks
//   run          the flat batch is built and the forward pass computes the logits rows
//   postprocess  each sequence with logits samples a token and appends it with its outputs
//
// Speculative decoding (cfg.spec): after a sequence's token is appended, the proposer writes up
// to k guesses of its next tokens behind it (seq->n_draft): the n-gram proposer (spec.h) at once,
// the self-draft (the model's first draft_layers layers and its head, greedy) or the draft model
// after scheduling, in up to k one-token rounds over every decode item that got guesses (draft();
// the self-draft's K/V for those layers are the whole model's for the same tokens, so it has no
// cache of its own and the verification rewrites them unchanged; the draft model keeps its K/V in
// the same blocks as the target's and catches them up in its first round). The scheduler runs the guesses as
// a verification item: the pending token and the guesses, 1 + n rows of the same flat batch, with
// logits for every row (row j predicts the token after guess j - 1). Postprocess samples row 0 as
// usual; while the sampled token equals the guess at that position, the guess is accepted and the
// next row (whose KV was computed with exactly that token) is sampled too. The first token that
// differs, or the sample of the row after the last guess (the bonus token), ends the item; every
// token is appended one at a time through the same path as a plain decode (penalty history,
// logprobs, stop tokens and strings, max tokens), so the item may finish early. n_computed then
// advances over the accepted guesses only and sched_rollback returns blocks that only rejected
// guesses reached. Because the forward pass is batch invariant and each row is sampled exactly as
// plain decoding would sample it, greedy output is token-identical with speculation on or off.
// Sampled requests follow the target's distribution exactly, by rejection sampling: a guess x drawn
// from the proposal q is kept with probability min(1, p(x)/q(x)), else the token is drawn from
// norm(max(0, p - q)) and the item ends (sampler_verify). The n-gram proposal is deterministic, a
// one-hot q = δ_x: then drawing t ~ p and keeping x iff t == x is that very rule (kept with
// probability p(x); on rejection t ~ p without x), with one RNG draw per appended token as in
// plain decoding, so seeded requests give the same tokens with n-gram speculation on or off. A
// model draft samples its guesses of a sampled request from its own distribution q (the request's
// filters and temperature on the draft's logits, sampler_draft; kept per guess in seq->draft_q),
// which is accepted far more often than its argmax; seeded requests are then reproducible for the
// same rounds, not the same tokens as without speculation.
// Load awareness: unless cfg.spec_always, each round with guesses asks the gate (spec.h) how many
// guesses per sequence to verify (0: plain), from a cost model of the round and draft times
// measured online by rows and the measured acceptance; a plain round drops the guesses and skips
// the draft, and the predicted rates are in the stats (and /metrics).
//
// Pipeline parallelism (pipeline.h): each step submits rounds while fewer than the pipeline's depth
// are in flight and the scheduler finds work (scheduler.h: sequences no round in flight stops, a
// round about as long as the newest in flight), and collects the oldest; run and postprocess are
// split by the trip through the later stages, which sample the rows of plain samplers themselves
// (pipe_rows). A sequence is freed only when no round in flight holds it.
//
// The engine owns the KV pools (through the model's tv_kv_cache), the block manager, the
// scheduler and the sequences; the model sees only struct tv_batch.
//
// Failures inside a step finish requests, never the engine: a failed forward pass finishes every
// sequence of its batch with TV_FINISH_ERROR, a failure while postprocessing one sequence finishes
// that one. A step allocates only through util/alloc.h (its fault hook tests each of those
// points); the output table and the finished list have fixed capacities (see tv_engine_create).
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/block_manager.h"
#include "engine/pipeline.h"
#include "engine/postprocess.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/spec.h"
#include "structured/constraint.h"
#include "structured/matcher.h"
#include "engine/mask_worker.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/rng.h"
#include "util/status.h"

// Pipelined: one batch in flight, kept until its results are collected.
typedef struct flight {
    tv_sched_item *items;        // (max_num_seqs)
    int *start;                  // (max_num_seqs) the position of each item's first token
    tv_seq **logit_seq;          // (max_logits) the sequence of each logits row
    int n_items, n_logits, n_tokens;
} flight;

struct tv_engine {
    tv_engine_config cfg;
    tv_model *model;
    const tv_hparams *hp;
    const tv_tokenizer *tok;
    backend *be;                 // computes the forward pass (kernel path, thread pool)
    tv_kv_cache *kv;
    tv_forward *fwd;
    engine_downstream down;      // the pipeline's later stages (pipeline.h), or submit == NULL
    struct flight *fl;           // (down.depth) pipelined: the batches in flight, a ring, oldest at fl_head
    int fl_head, fl_n;
    pipe_row *b_rows;            // (max_logits) pipelined: how the last stage treats each logits row
    pipe_out *b_outs;            // (max_logits) pipelined: the collected batch's results
    // TV_SPEC_DRAFT_MODEL: the draft's K/V in the same blocks (block b of dkv holds the draft's K/V
    // of the tokens whose target K/V are in block b of kv, so the block manager, prefix cache,
    // preemption and rollback serve both) and its forward state; NULL otherwise
    tv_kv_cache *dkv;
    tv_forward *dfwd;
    int draft_rows;              // rows of a draft-model round at most: max_batched_tokens + max_num_seqs
                                 // (a decode may run one row more than in the target's batch: a last guess)
    // TV_SPEC_MTP (the draft is the target file's MTP layer): the target's final-normed hidden state of
    // every token, in the row of its KV slot (written by each target pass: tv_batch.hidden_cache), so it
    // lives, is shared and rolls back with the blocks; a draft round's input rows; each decode item's
    // MTP output of the last draft round (the input of its next guess). NULL otherwise
    float *mtp_h;                // (n_blocks * block_size, dim)
    float *mtp_in;               // (draft_rows, dim)
    float *mtp_prev;             // (max_num_seqs, dim) by item
    int32_t *mtp_item;           // (max_num_seqs) the item of each logits row of a draft round
    size_t draft_bpb;            // the draft's bytes of a KV block (its K/V; MTP: and the hidden states)
    float *spec_p;               // (n_vocab) model drafts: the target's distribution of a sampled guess's row
    spec_gate *gate;             // load awareness (spec.h); NULL without speculation, with spec_always or pipelined
    spec_choice last_choice;     // with the gate: the round's decision (k 0: plain or undecided), until the round ends
    kv_block_manager *bm;
    state_pool *states;          // hybrid models: the state slots' bookkeeping (kv->state holds them)
    int32_t rb_base;             // hybrid models with speculation: running slot r's rollback points are state
                                 // slots rb_base + r * spec_tokens + j, j < spec_tokens (after a verification's
                                 // pending token, j = 0, and after its guess j); -1 without speculation
    tv_scheduler *sched;
    int max_len;                 // tokens per sequence at most
    uint64_t next_id;
    uint64_t rng;                // seeds for requests without one
    // per-round batch arrays
    tv_sched_item *items;        // (max_num_seqs)
    int32_t *b_tokens, *b_pos;   // (max_batched_tokens, or draft_rows with a draft model)
    int32_t *b_qstart;           // (max_num_seqs + 1)
    int32_t *b_ctx;              // (max_num_seqs)
    const int32_t **b_tables;    // (max_num_seqs)
    int32_t *b_slots;            // (max_num_seqs) each sequence's state slot (hybrid models)
    // hybrid models with prefix caching: per item, its state after b_ckpt_rows tokens (0 = none) goes
    // to checkpoint slot b_ckpt_slots, published under b_ckpt_key (the prefix's chained block hash)
    int32_t *b_ckpt_rows, *b_ckpt_slots;   // (max_num_seqs)
    uint64_t *b_ckpt_key;                  // (max_num_seqs)
    int32_t *b_rollback;         // (max_num_seqs) hybrid models, speculation: a verification item's first
                                 // rollback slot (tv_batch.state_rollback), else -1
    tv_seq **b_seqs;             // (max_num_seqs) the sequence of each item of a draft-model round
    int *b_guesses;              // (max_num_seqs) with the load gate: each decoding item's guesses (spec_round)
    int max_logits;              // logits rows per round: max_num_seqs * (1 + spec_tokens), within the budget
    int32_t *b_logit_rows;       // (max_logits)
    tv_seq **b_logit_seq;        // (max_logits) the sequence of each row (a verification item's rows are consecutive)
    // outputs of the last step: at most max_num_seqs per round plus max_num_seqs abort reports
    post_outputs out;
    tv_seq **done;               // (cap_done) sequences finished, freed at the next step (pipelined: once no
                                 // round in flight holds them; up to depth * max_num_seqs of them wait)
    int n_done, cap_done;
    tv_seq **aborted;            // (cap_aborted) aborted since the last step, reported from the next
    int n_aborted;
    size_t cap_aborted;
    tv_engine_stats stats;
    // structured output, made at the first constrained request
    matcher_vocab *cons_vocab;   // the vocabulary trie
    constraint_cache *cons_cache;  // compiled grammars by (kind, spec)
    uint32_t *cons_mask;         // (ceil(n_vocab / 32)) scratch mask
    mask_worker *mw;             // fills the round's masks while the forward pass runs
    tv_seq **mw_seq;             // (max_num_seqs) the job: sequences, their matchers, masks, results
    struct matcher **mw_m;
    uint32_t **mw_mask;
    tv_status *mw_st;
    int mw_n;                    // sequences in the job in flight (0: none)
};

void tv_engine_config_default(tv_engine_config *c) {
    memset(c, 0, sizeof *c);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->n_threads = n > 0 ? (int)n : 1;
    c->block_size = 16;
    c->max_num_seqs = 64;
    c->max_batched_tokens = 512;
    c->chunked_prefill = true;
    c->prefix_caching = true;
    c->decode_steps = 1;
}

void tv_request_params_default(tv_request_params *p) {
    memset(p, 0, sizeof *p);
    tv_sampling_params_default(&p->sampling);
    p->max_tokens = -1;
    p->add_special = true;
}

static void seq_free(tv_seq *s) {
    if (!s) return;
    free(s->tokens);
    free(s->blocks);
    sampler_free(s->sampler);
    tv_detok_free(s->detok);
    free(s->stop_ids);
    for (int i = 0; i < s->n_stop; i++) free(s->stop[i]);
    free(s->stop);
    strbuf_free(&s->held);
    matcher_free(s->matcher);
    free(s->pre_mask);
    free(s->draft_q);
    free(s);
}

void tv_engine_free(tv_engine *e) {
    if (!e) return;
    if (e->down.close) e->down.close(e->down.ctx);
    for (tv_seq *s; e->sched && (s = sched_first(e->sched));) {   // sequences still queued
        sched_remove(e->sched, s);
        seq_free(s);
    }
    post_outputs_free(&e->out);
    mask_worker_free(e->mw);
    free(e->mw_seq); free(e->mw_m); free(e->mw_mask); free(e->mw_st);
    constraint_cache_free(e->cons_cache);
    matcher_vocab_free(e->cons_vocab);
    free(e->cons_mask);
    for (int i = 0; i < e->n_done; i++) seq_free(e->done[i]);
    for (int i = 0; i < e->n_aborted; i++) seq_free(e->aborted[i]);
    sched_free(e->sched);
    bm_free(e->bm);
    spool_free(e->states);
    forward_free(e->fwd);
    kv_cache_free(e->kv);
    forward_free(e->dfwd);
    kv_cache_free(e->dkv);
    backend_free(e->be);
    free(e->items);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_qstart);
    free(e->b_ctx);
    free(e->b_tables);
    free(e->b_slots);
    free(e->b_ckpt_rows);
    free(e->b_ckpt_slots);
    free(e->b_ckpt_key);
    free(e->b_rollback);
    free(e->b_seqs);
    free(e->b_guesses);
    free(e->b_logit_rows);
    free(e->b_logit_seq);
    for (int i = 0; e->fl && i < e->down.depth; i++) {
        free(e->fl[i].items);
        free(e->fl[i].start);
        free(e->fl[i].logit_seq);
    }
    free(e->fl);
    free(e->b_rows);
    free(e->b_outs);
    free(e->spec_p);
    free(e->mtp_h);
    free(e->mtp_in);
    free(e->mtp_prev);
    free(e->mtp_item);
    spec_gate_free(e->gate);
    free(e->done);
    free(e->aborted);
    free(e);
}

// Whether c's proposer is a second model with K/V of its own (a draft model or the MTP layer).
static bool own_draft(const tv_engine_config *c) { return c->spec == TV_SPEC_DRAFT_MODEL || c->spec == TV_SPEC_MTP; }
// Whether c's proposer is a model (the self-draft, a draft model, the MTP layer), whose guesses sampled requests sample.
static bool model_draft(const tv_engine_config *c) { return c->spec == TV_SPEC_SELF_DRAFT || own_draft(c); }

// What a draft pass costs relative to a target round of the same rows, as the load gate assumes
// until it measures one: the draft model's share of the weights, the self-draft's of the layers.
static double draft_share(const tv_model *m, const tv_engine_config *c) {
    if (own_draft(c)) return (double)model_weight_bytes(c->draft_model) / (double)model_weight_bytes(m);
    return c->spec == TV_SPEC_SELF_DRAFT ? (double)c->draft_layers / model_hparams(m)->n_layers : 0.0;
}

tv_engine *tv_engine_create(tv_model *m, const tv_engine_config *cfg, tv_error *err) {
    return engine_create_pipelined(m, cfg, NULL, err);
}

tv_engine *engine_create_pipelined(tv_model *m, const tv_engine_config *cfg, const engine_downstream *down, tv_error *err) {
    tv_engine_config c;
    if (cfg) c = *cfg; else tv_engine_config_default(&c);
    if (!m) { err_fail(err, TV_ERR_INVALID, "engine: no model"); return NULL; }
    const tv_hparams *hp = model_hparams(m);
    if (c.n_threads <= 0) c.n_threads = 1;
    if (c.block_size <= 0 || c.block_size > 1024) { err_fail(err, TV_ERR_INVALID, "engine: block size %d invalid", c.block_size); return NULL; }
    if (c.max_num_seqs <= 0 || c.max_num_seqs > 4096) { err_fail(err, TV_ERR_INVALID, "engine: max_num_seqs %d invalid", c.max_num_seqs); return NULL; }
    if (c.max_batched_tokens <= 0) { err_fail(err, TV_ERR_INVALID, "engine: max_batched_tokens %d invalid", c.max_batched_tokens); return NULL; }
    int max_len = c.max_model_len > 0 && c.max_model_len < hp->n_ctx_train ? c.max_model_len : hp->n_ctx_train;
    // Without chunked prefill a whole prompt must fit one step (as vLLM requires).
    if (!c.chunked_prefill && c.max_batched_tokens < max_len) c.max_batched_tokens = max_len;
    if (c.max_num_seqs > c.max_batched_tokens) c.max_num_seqs = c.max_batched_tokens;
    if (c.decode_steps <= 0) c.decode_steps = 1;
    if (c.decode_steps > 64) { err_fail(err, TV_ERR_INVALID, "engine: decode_steps %d invalid (1..64)", c.decode_steps); return NULL; }
    if (c.kv_bits == 0) c.kv_bits = model_weight_type(m) == TV_TYPE_F32 ? 32 : 16;
    if (c.kv_bits != 16 && c.kv_bits != 32) { err_fail(err, TV_ERR_INVALID, "engine: KV element bits %d invalid (16 or 32)", c.kv_bits); return NULL; }
    if (c.spec != TV_SPEC_NONE && c.spec != TV_SPEC_NGRAM && c.spec != TV_SPEC_SELF_DRAFT && !own_draft(&c)) { err_fail(err, TV_ERR_INVALID, "engine: unknown speculative decoding method %d", (int)c.spec); return NULL; }
    int l0, l1;
    model_layer_range(m, &l0, &l1);
    if (l0 != 0 || (l1 != hp->n_layers) != (down != NULL)) {
        err_fail(err, TV_ERR_INVALID, "engine: the model holds layers [%d, %d) of %d: %s", l0, l1, hp->n_layers,
                 l0 ? "an engine runs the first pipeline stage" : down ? "the pipeline has no later stage" : "the later stages are missing");
        return NULL;
    }
    if (down && (down->depth < 1 || !down->submit || !down->collect)) {
        err_fail(err, TV_ERR_INVALID, "engine: a pipeline needs submit, collect and a depth of 1 or more");
        return NULL;
    }
    if (down && c.spec == TV_SPEC_SELF_DRAFT) {
        err_fail(err, TV_ERR_INVALID, "engine: the self-draft needs every layer in one process (not with pipeline parallelism)");
        return NULL;
    }
    if (down && own_draft(&c)) {
        err_fail(err, TV_ERR_INVALID, "engine: a draft model or MTP layer is not supported with pipeline parallelism");
        return NULL;
    }
    if (!own_draft(&c)) c.draft_model = NULL;
    else if (!c.draft_model) {
        err_fail(err, TV_ERR_INVALID, "engine: speculative decoding with %s needs it loaded (tv_engine_config.draft_model)",
                 c.spec == TV_SPEC_MTP ? "the MTP layer" : "a draft model");
        return NULL;
    } else {
        // an MTP layer reads the target's hidden states: it must be one (tv_model_params.mtp), as wide as the target
        const bool is_mtp_layer = model_weights(c.draft_model)->mtp_eh_proj.data != NULL;
        if (is_mtp_layer != (c.spec == TV_SPEC_MTP) ||
            (is_mtp_layer && model_hparams(c.draft_model)->dim != hp->dim)) {
            err_fail(err, TV_ERR_INVALID, "engine: %s", c.spec != TV_SPEC_MTP ? "an MTP layer proposes with --spec mtp only"
                                                     : !is_mtp_layer ? "--spec mtp needs the model's MTP layer (loaded with tv_model_params.mtp)"
                                                                     : "the MTP layer is not as wide as the model");
            return NULL;
        }
        if (spec_check_vocab(m, c.draft_model, err) != TV_OK) return NULL;
        if (model_hparams(c.draft_model)->n_linear > 0) {   // its proposals would need a state rollback
            err_fail(err, TV_ERR_UNSUPPORTED, "engine: a hybrid (linear-attention) model cannot be a draft model yet");
            return NULL;
        }
        // the scheduler releases blocks that fall out of the target's window: the draft may not look further back
        const int dw = model_hparams(c.draft_model)->kv_window;
        if (hp->kv_window > 0 && !(dw > 0 && dw <= hp->kv_window)) {
            err_fail(err, TV_ERR_INVALID, "engine: the draft model attends %s%d keys back but the target only %d: its KV would be released under it",
                     dw > 0 ? "" : "all its context, more than ", dw > 0 ? dw : hp->kv_window, hp->kv_window);
            return NULL;
        }
    }
    if (c.spec != TV_SPEC_SELF_DRAFT) c.draft_layers = 0;
    else if (c.draft_layers < 1 || c.draft_layers >= hp->n_layers) {
        err_fail(err, TV_ERR_INVALID, "engine: a self-draft of %d layers is invalid (1..%d: fewer than the model's %d)",
                 c.draft_layers, hp->n_layers - 1, hp->n_layers);
        return NULL;
    }
    if (c.spec == TV_SPEC_NONE) c.spec_tokens = 0;
    else if (c.spec_tokens == 0) c.spec_tokens = 4;
    if (c.spec_tokens < 0 || c.spec_tokens > TV_SPEC_MAX_TOKENS) {
        err_fail(err, TV_ERR_INVALID, "engine: speculative tokens %d invalid (1..%d)", c.spec_tokens, TV_SPEC_MAX_TOKENS);
        return NULL;
    }
    // hybrid models: a state slot per sequence slot; with prefix caching checkpoint slots (the state
    // after every state_ckpt_blocks-th block boundary, kept with the cached blocks); with speculative
    // decoding spec_tokens rollback slots per sequence slot (a verification's state after its pending
    // token and each guess but the last, so a rejection restores the state of the accepted position).
    // A self-draft would advance its layers' state with its guesses: refused
    const bool is_hybrid = hp->n_linear > 0;
    if (is_hybrid && c.spec == TV_SPEC_SELF_DRAFT) {
        err_fail(err, TV_ERR_UNSUPPORTED, "engine: a hybrid model cannot draft for itself (its first layers' "
                                          "linear-attention state would advance with the guesses); use n-gram "
                                          "speculation or a draft model");
        return NULL;
    }
    if (c.state_ckpt_slots < 0 || c.state_ckpt_blocks < 0) {
        err_fail(err, TV_ERR_INVALID, "engine: state checkpoints %d every %d blocks invalid", c.state_ckpt_slots,
                 c.state_ckpt_blocks);
        return NULL;
    }
    if (is_hybrid && c.prefix_caching) {
        if (c.state_ckpt_slots == 0) c.state_ckpt_slots = c.max_num_seqs / 4 > 0 ? c.max_num_seqs / 4 : 1;
        if (c.state_ckpt_blocks == 0) c.state_ckpt_blocks = 4;
    } else {
        c.state_ckpt_slots = c.state_ckpt_blocks = 0;
    }
    const int n_state_slots = is_hybrid ? c.max_num_seqs * (1 + c.spec_tokens) + c.state_ckpt_slots : 0;
    const int64_t state_bytes = (int64_t)n_state_slots * (int64_t)kv_cache_state_bytes_per_slot(m);
    const bool kv_f32 = c.kv_bits == 32;
    // a block holds the target's K/V of block_size tokens and, with a draft model, the draft's of the same tokens
    // (and with an MTP layer the target's hidden state of each token, f32)
    const size_t dbpb = c.draft_model ? kv_cache_bytes_per_block(c.draft_model, c.block_size, kv_f32) +
                                            (c.spec == TV_SPEC_MTP ? (size_t)c.block_size * (size_t)hp->dim * sizeof(float) : 0)
                                      : 0;
    const size_t bpb = kv_cache_bytes_per_block(m, c.block_size, kv_f32) + dbpb;
    int64_t n_blocks = c.n_blocks;
    if (n_blocks <= 0) {   // a given memory budget holds the state slots too (the default 1 GiB is the blocks')
        int64_t want = (int64_t)c.max_num_seqs * ((max_len + c.block_size - 1) / c.block_size);
        int64_t budget = (c.kv_mem_mb > 0 ? (c.kv_mem_mb << 20) - state_bytes : INT64_C(1) << 30) / (int64_t)bpb;
        n_blocks = c.kv_mem_mb > 0 ? budget : (want < budget ? want : budget);
    }
    int64_t one_seq = (max_len + c.block_size - 1) / c.block_size;
    if (n_blocks < 1 || n_blocks > INT32_MAX) {
        err_fail(err, TV_ERR_INVALID, "engine: KV pool of %lld blocks is invalid", (long long)n_blocks);
        return NULL;
    }
    if (c.n_blocks <= 0 && c.kv_mem_mb <= 0 && n_blocks < one_seq) n_blocks = one_seq;
    tv_engine *e = calloc(1, sizeof *e);
    if (!e) { err_fail(err, TV_ERR_NOMEM, "engine: out of memory"); return NULL; }
    e->cfg = c;
    e->cfg.n_blocks = n_blocks;
    if (down) e->down = *down;
    e->model = m;
    e->hp = hp;
    e->tok = tv_model_tokenizer(m);
    // a sequence can never outgrow the pool: cap its length there
    e->max_len = max_len < n_blocks * c.block_size ? max_len : (int)(n_blocks * c.block_size);
    e->next_id = 1;
    e->rb_base = is_hybrid && c.spec != TV_SPEC_NONE ? c.max_num_seqs + c.state_ckpt_slots : -1;
    e->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)e;
    if (!(e->be = backend_cpu_create(c.cpu_path, c.n_threads, err))) goto fail;
    if (!(e->kv = kv_cache_create(m, (int)n_blocks, c.block_size, kv_f32, err))) goto fail;
    if (is_hybrid && (kv_cache_add_state(e->kv, m, n_state_slots, err) ||
                      !(e->states = spool_create(c.max_num_seqs, c.state_ckpt_slots)))) {
        if (e->kv->state && !e->states) err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        goto fail;
    }
    int64_t max_logits = (int64_t)c.max_num_seqs * (1 + c.spec_tokens);
    e->max_logits = max_logits < c.max_batched_tokens ? (int)max_logits : c.max_batched_tokens;
    if (!(e->fwd = forward_create(m, e->max_len, c.max_batched_tokens, e->max_logits, e->be, err))) goto fail;
    // the draft model runs what the target runs (catching its K/V up) with one logits row per decode
    e->draft_rows = c.draft_model ? c.max_batched_tokens + c.max_num_seqs : 0;
    if (c.draft_model && (!(e->dkv = kv_cache_create(c.draft_model, (int)n_blocks, c.block_size, kv_f32, err)) ||
                          !(e->dfwd = forward_create(c.draft_model, e->max_len, e->draft_rows, c.max_num_seqs, e->be, err)))) {
        err_fail_prefix(err, err ? err->code : TV_ERR_NOMEM, "draft model");
        goto fail;
    }
    if (c.spec == TV_SPEC_MTP &&
        (!(e->mtp_h = malloc((size_t)n_blocks * (size_t)c.block_size * (size_t)hp->dim * sizeof(float))) ||
         !(e->mtp_in = malloc((size_t)e->draft_rows * (size_t)hp->dim * sizeof(float))) ||
         !(e->mtp_prev = malloc((size_t)c.max_num_seqs * (size_t)hp->dim * sizeof(float))) ||
         !(e->mtp_item = malloc((size_t)c.max_num_seqs * sizeof(int32_t))))) {
        err_fail(err, TV_ERR_NOMEM, "engine: cannot allocate the MTP layer's hidden states for %lld blocks", (long long)n_blocks);
        goto fail;
    }
    e->bm = bm_create((int)n_blocks, c.block_size);
    tv_sched_config sc = {.max_num_seqs = c.max_num_seqs, .max_batched_tokens = c.max_batched_tokens,
                          .chunked_prefill = c.chunked_prefill, .prefix_caching = c.prefix_caching,
                          .window = hp->kv_window, .states = e->states, .n_lanes = down ? down->depth : 1};
    e->sched = e->bm ? sched_create(&sc, e->bm) : NULL;
    size_t S = (size_t)c.max_num_seqs, T = (size_t)(c.draft_model ? e->draft_rows : c.max_batched_tokens), L = (size_t)e->max_logits;
    // output records per step: each round appends up to 1 + spec_tokens tokens per sequence, one
    // record each, plus up to max_num_seqs abort reports
    const int n_recs = (int)S * (c.decode_steps * (1 + c.spec_tokens) + 1);
    e->cap_done = (2 + (down ? down->depth : 0)) * (int)S;
    if (!e->sched || !(e->items = malloc(S * sizeof *e->items)) || !(e->b_tokens = malloc(T * sizeof(int32_t))) ||
        !(e->b_pos = malloc(T * sizeof(int32_t))) || !(e->b_qstart = malloc((S + 1) * sizeof(int32_t))) ||
        !(e->b_ctx = malloc(S * sizeof(int32_t))) || !(e->b_tables = malloc(S * sizeof *e->b_tables)) ||
        !(e->b_slots = malloc(S * sizeof(int32_t))) || !(e->b_ckpt_rows = calloc(S, sizeof(int32_t))) ||
        !(e->b_ckpt_slots = malloc(S * sizeof(int32_t))) || !(e->b_ckpt_key = malloc(S * sizeof(uint64_t))) ||
        !(e->b_rollback = malloc(S * sizeof(int32_t))) ||
        !(e->b_seqs = malloc(S * sizeof *e->b_seqs)) ||
        !(e->b_logit_rows = malloc(L * sizeof(int32_t))) || !(e->b_logit_seq = malloc(L * sizeof *e->b_logit_seq)) ||
        !post_outputs_init(&e->out, n_recs) || !(e->done = malloc((size_t)e->cap_done * sizeof *e->done)) ||
        (model_draft(&c) && !(e->spec_p = malloc((size_t)hp->n_vocab * sizeof *e->spec_p))) ||
        (c.spec != TV_SPEC_NONE && !c.spec_always && !down &&
         (!(e->gate = spec_gate_create(draft_share(m, &c))) || !(e->b_guesses = malloc(S * sizeof *e->b_guesses))))) {
        err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        goto fail;
    }
    if (e->gate) e->stats.spec_cost_factor = 1.0, e->stats.spec_margin = SPEC_GATE_ERR_FLOOR;
    if (down) {
        bool ok = (e->fl = calloc((size_t)down->depth, sizeof *e->fl)) && (e->b_rows = malloc(L * sizeof *e->b_rows)) &&
                  (e->b_outs = malloc(L * sizeof *e->b_outs));
        for (int i = 0; ok && i < down->depth; i++)
            ok = (e->fl[i].items = malloc(S * sizeof *e->fl[i].items)) && (e->fl[i].start = malloc(S * sizeof *e->fl[i].start)) &&
                 (e->fl[i].logit_seq = malloc(L * sizeof *e->fl[i].logit_seq));
        if (!ok) {
            err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
            goto fail;
        }
    }
    e->stats.n_blocks_total = n_blocks;
    e->stats.block_size = c.block_size;
    e->stats.kv_bytes_per_block = (double)bpb;
    e->draft_bpb = dbpb;
    return e;
fail:
    tv_engine_free(e);
    return NULL;
}

const char *tv_engine_cpu_path(const tv_engine *e) { return backend_name(e->be); }

tv_model *tv_engine_draft_model(const tv_engine *e) { return e->cfg.draft_model; }

// The vocabulary trie and grammar cache, made on first use.
static tv_status constraint_init(tv_engine *e, tv_error *err) {
    if (e->cons_cache) return TV_OK;
    if (!e->tok) return err_fail(err, TV_ERR_INVALID, "structured output needs a model with a tokenizer");
    const int32_t V = e->hp->n_vocab;
    bool *eog = mem_calloc((size_t)V, sizeof *eog);
    if (!eog) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < V; i++) eog[i] = tv_model_is_eog(e->model, i);
    e->cons_vocab = matcher_vocab_from_tokenizer(e->tok, V, eog, err);
    free(eog);
    if (!e->cons_vocab) return err ? err->code : TV_ERR_NOMEM;
    e->cons_mask = mem_malloc(((size_t)V + 31) / 32 * sizeof *e->cons_mask);
    const size_t S = (size_t)e->cfg.max_num_seqs;
    e->mw_seq = mem_malloc(S * sizeof *e->mw_seq);
    e->mw_m = mem_malloc(S * sizeof *e->mw_m);
    e->mw_mask = mem_malloc(S * sizeof *e->mw_mask);
    e->mw_st = mem_malloc(S * sizeof *e->mw_st);
    e->cons_cache = constraint_cache_create(e->cons_vocab);
    if (!e->cons_mask || !e->cons_cache || !e->mw_seq || !e->mw_m || !e->mw_mask || !e->mw_st ||
        !(e->mw = mask_worker_create(err))) {
        constraint_cache_free(e->cons_cache);
        e->cons_cache = NULL;
        return err && err->code ? err->code : err_fail(err, TV_ERR_NOMEM, "out of memory");
    }
    return TV_OK;
}

// Compiles (or finds cached) the request's constraint and gives s its matcher.
static tv_status attach_constraint(tv_engine *e, tv_seq *s, const tv_request_params *p, tv_error *err) {
    tv_status st = constraint_init(e, err);
    if (st) return st;
    const char *spec = p->constraint_spec ? p->constraint_spec : "";
    matcher_grammar *cg = constraint_cache_get(e->cons_cache, p->constraint, spec, strlen(spec), err);
    if (!cg) return err ? err->code : TV_ERR_INVALID;
    s->matcher = matcher_create(cg, err);
    matcher_grammar_free(cg);
    return s->matcher ? TV_OK : TV_ERR_NOMEM;
}

tv_status tv_engine_add_request(tv_engine *e, const tv_request_params *p, uint64_t *req_id, tv_error *err) {
    const tv_sampling_params *sp = &p->sampling;
    if (!(sp->temperature >= 0) || !(sp->top_p > 0 && sp->top_p <= 1) || !(sp->min_p >= 0 && sp->min_p <= 1) ||
        !(sp->repetition_penalty > 0) || sp->logprobs > POST_MAX_TOP_LOGPROBS || sp->n_logit_bias < 0)
        return err_fail(err, TV_ERR_INVALID,
                       "invalid sampling parameters (temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, "
                       "repetition_penalty > 0, logprobs <= %d)", POST_MAX_TOP_LOGPROBS);
    if (p->n_stop < 0 || p->n_stop_ids < 0) return err_fail(err, TV_ERR_INVALID, "invalid stop lists");
    tv_seq *s = mem_calloc(1, sizeof *s);
    if (!s) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    tv_status st = TV_OK;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (p->prompt_ids) {
        ids = (int32_t *)p->prompt_ids;
        n_ids = p->n_prompt;
    } else if (p->prompt_text) {
        if (!e->tok) { st = err_fail(err, TV_ERR_INVALID, "this model has no tokenizer: give prompt token ids"); goto fail; }
        if ((st = tv_tokenize(e->tok, p->prompt_text, strlen(p->prompt_text), p->add_special, p->parse_special, &ids,
                              &n_ids, err)))
            goto fail;
    }
    if (n_ids == 0) { st = err_fail(err, TV_ERR_INVALID, "the prompt is empty"); goto fail; }
    if (n_ids >= (size_t)e->max_len) {
        st = err_fail(err, TV_ERR_RANGE,
                     "the prompt has %zu tokens but the context holds %d (prompt plus at least one generated token)",
                     n_ids, e->max_len);
        goto fail;
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= e->hp->n_vocab) {
            st = err_fail(err, TV_ERR_INVALID, "prompt token %zu is %d, outside the vocabulary (0..%d)", i, ids[i],
                         e->hp->n_vocab - 1);
            goto fail;
        }
    s->cap = (int)n_ids + 16;
    if (!(s->tokens = mem_malloc((size_t)s->cap * sizeof(int32_t)))) goto oom;
    memcpy(s->tokens, ids, n_ids * sizeof(int32_t));
    s->n_tokens = s->n_prompt = (int)n_ids;
    s->max_len = e->max_len;
    if (p->max_tokens >= 0 && (int64_t)n_ids + p->max_tokens < s->max_len) s->max_len = (int)n_ids + p->max_tokens;
    // the block table never grows inside a step (the scheduler then cannot fail on memory)
    s->blocks_cap = (s->max_len + e->cfg.block_size - 1) / e->cfg.block_size;
    if (!(s->blocks = mem_malloc((size_t)s->blocks_cap * sizeof(int32_t)))) goto oom;
    s->max_new = p->max_tokens;
    s->spec_k = e->cfg.spec_tokens;
    s->ignore_eos = p->ignore_eos;
    s->logprobs = sp->logprobs;
    s->stop_token = -1;
    s->user = p->user;
    uint64_t seed = sp->has_seed ? sp->seed : rng_splitmix64(&e->rng);
    if (!(s->sampler = sampler_create(sp, e->hp->n_vocab, seed, err))) { st = err ? err->code : TV_ERR_NOMEM; goto fail; }
    if (model_draft(&e->cfg) && !sampler_is_greedy(s->sampler) &&
        !(s->draft_q = mem_malloc((size_t)e->cfg.spec_tokens * (size_t)e->hp->n_vocab * sizeof *s->draft_q)))
        goto oom;
    for (int i = 0; i < s->n_prompt; i++) sampler_accept(s->sampler, s->tokens[i], true);
    if (p->constraint != TV_CONSTRAINT_NONE && (st = attach_constraint(e, s, p, err))) goto fail;
    if (e->tok) {
        // prime the detokenizer with the prompt so the first generated piece continues the text
        // (SentencePiece's leading-space rule applies to the start of the prompt, not here)
        if (!(s->detok = tv_detok_create(e->tok, true))) goto oom;
        const char *discard;
        for (int i = 0; i < s->n_prompt; i++)
            if (tv_detok_push(s->detok, s->tokens[i], &discard) == TV_DETOK_NOMEM) goto oom;
    }
    if (p->n_stop_ids > 0) {
        if (!(s->stop_ids = mem_malloc((size_t)p->n_stop_ids * sizeof(int32_t)))) goto oom;
        memcpy(s->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof(int32_t));
        s->n_stop_ids = p->n_stop_ids;
    }
    if (p->n_stop > 0) {
        if (!(s->stop = mem_calloc((size_t)p->n_stop, sizeof(char *)))) goto oom;
        for (int i = 0; i < p->n_stop; i++) {
            if (!p->stop[i] || !p->stop[i][0]) continue;
            if (!(s->stop[s->n_stop] = mem_strdup(p->stop[i]))) goto oom;
            size_t l = strlen(p->stop[i]);
            if (l > s->stop_max_len) s->stop_max_len = l;
            s->n_stop++;
        }
    }
    s->id = e->next_id++;
    if (!sched_add(e->sched, s)) goto oom;
    if (ids != p->prompt_ids) free(ids);
    if (req_id) *req_id = s->id;
    return TV_OK;
oom:
    st = err_fail(err, TV_ERR_NOMEM, "out of memory");
fail:
    if (ids != p->prompt_ids) free(ids);
    seq_free(s);
    return st;
}

tv_status tv_engine_abort(tv_engine *e, uint64_t req_id) {
    tv_seq *s = sched_find(e->sched, req_id);
    if (!s) return TV_ERR_INVALID;
    tv_seq **grown = array_grow(e->aborted, &e->cap_aborted, (size_t)e->n_aborted + 1, sizeof *grown);
    if (!grown) return TV_ERR_NOMEM;
    e->aborted = grown;
    e->aborted[e->n_aborted++] = s;   // still running
    sched_remove(e->sched, s);
    s->status = SEQ_FINISHED;
    s->finish = TV_FINISH_ABORT;
    e->stats.n_aborted++;
    return TV_OK;
}

bool tv_engine_has_work(const tv_engine *e) {
    return sched_n_running(e->sched) + sched_n_waiting(e->sched) + e->n_aborted + e->fl_n > 0;
}

void tv_engine_get_limits(const tv_engine *e, tv_engine_limits *l) {
    *l = (tv_engine_limits){.max_model_len = e->max_len, .max_num_seqs = e->cfg.max_num_seqs,
                            .max_batched_tokens = e->cfg.max_batched_tokens, .block_size = e->cfg.block_size,
                            .n_blocks = e->cfg.n_blocks, .kv_bits = e->cfg.kv_bits,
                            .decode_steps = e->cfg.decode_steps, .n_threads = e->cfg.n_threads,
                            .spec = e->cfg.spec, .spec_tokens = e->cfg.spec_tokens, .draft_layers = e->cfg.draft_layers,
                            .draft_kv_bytes_per_block = (double)e->draft_bpb};
}

void tv_engine_get_stats(const tv_engine *e, tv_engine_stats *s) {
    *s = e->stats;
    s->n_running = sched_n_running(e->sched);
    s->n_waiting = sched_n_waiting(e->sched);
    s->n_blocks_free = bm_n_free(e->bm);
    s->n_state_slots_total = e->states ? spool_n_slots(e->states) : 0;
    s->n_state_slots_free = e->states ? spool_n_free(e->states) : 0;
    s->state_bytes_per_slot = (double)kv_cache_state_bytes_per_slot(e->model);
    s->n_state_ckpt_total = e->states ? spool_n_ckpt(e->states) : 0;
    s->n_state_ckpt_held = e->states ? spool_n_ckpt_held(e->states) : 0;
    const forward_times ft = forward_layer_times(e->fwd);
    s->t_linear_layers_ms = ft.linear_ms;
    s->t_attn_layers_ms = ft.full_ms;
    s->t_gdn_kernels_ms = ft.gdn_ms;
    s->t_attn_kernels_ms = ft.attn_kernel_ms;
    s->n_blocks_cached = bm_n_cached(e->bm);
    if (e->down.bytes) e->down.bytes(e->down.ctx, &s->n_pipeline_boundary_bytes, &s->n_pipeline_reply_bytes);
}

// ---- finishing ----

// Moves s to the finished list (freed at the next step) and releases its blocks.
static void finish_seq(tv_engine *e, tv_seq *s, tv_finish_reason why) {
    s->finish = why;
    s->status = SEQ_FINISHED;
    sched_remove(e->sched, s);
    TV_CHECK(e->n_done < e->cap_done);   // a step finishes at most its running + reported aborts, plus those rounds in flight hold
    e->done[e->n_done++] = s;
    e->stats.n_finished++;
}

// Finishes s with TV_FINISH_ERROR and the reason in why, reported in rec (a new record when NULL)
// with no token and no text of this step.
static void fail_seq(tv_engine *e, tv_seq *s, tv_request_output *rec, const tv_error *why) {
    s->err = *why;
    if (!rec) rec = post_output_new(&e->out, s);
    rec->n_new = 0;
    rec->new_ids = NULL;
    rec->logprobs = rec->top_logprobs = NULL;
    rec->n_top = 0;
    rec->text = "";
    rec->text_len = 0;
    rec->n_generated = seq_n_generated(s);
    rec->finish = TV_FINISH_ERROR;
    rec->error = &s->err;
    finish_seq(e, s, TV_FINISH_ERROR);
}

// ---- schedule ----

// Plans one round into e->items (balance: sched_schedule's); returns how many sequences run.
static int schedule(tv_engine *e, int balance) {
    int n_pre = 0;
    int n_items = sched_schedule(e->sched, balance, e->items, &n_pre);
    e->stats.n_preemptions += (uint64_t)n_pre;
    e->stats.last_step_tokens = 0;
    return n_items;
}

// ---- run ----

// Hybrid models with prefix caching: copies each prefix-cache hit's checkpoint into its sequence's
// state slot, then reserves one checkpoint for each item whose tokens cross checkpoint boundaries
// (every state_ckpt_blocks blocks): at the last one whose block is already in the prefix cache (a
// prefix shared with an earlier prompt, such as a system prompt), which may take the least recently
// used checkpoint; else at the last one, only into a free slot (a prefix nobody shares yet never
// pushes out one that is shared); none when one is kept for that prefix. All restores come first: a
// reservation may take a checkpoint that a restore of this round reads.
static void plan_checkpoints(tv_engine *e, int n_items) {
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        if (s->state_restore < 0) continue;
        kv_cache_state_copy(e->kv, s->state_slot, s->state_restore);
        s->state_restore = -1;
    }
    const int bs = e->cfg.block_size, every = e->cfg.state_ckpt_blocks * bs;
    for (int i = 0; i < n_items; i++) {
        const tv_seq *s = e->items[i].seq;
        const int end = s->n_computed + e->items[i].n_tokens - s->n_draft;
        // the chained hashes of the blocks this item fills, as sched_computed will register them
        uint64_t h = s->hash_last, key = 0, key_shared = 0;
        int at = 0, at_shared = 0;
        for (int k = s->n_hashed; (k + 1) * bs <= end; k++) {
            const int32_t *toks = s->tokens + (size_t)k * bs;
            h = bm_chain_hash(h, toks, bs);
            if ((k + 1) * bs % every) continue;
            at = (k + 1) * bs;
            key = h;
            if (bm_is_cached(e->bm, h, toks)) at_shared = at, key_shared = h;
        }
        if (at_shared) at = at_shared, key = key_shared;
        e->b_ckpt_rows[i] = 0;
        if (!at || spool_ckpt_find(e->states, key) >= 0 ||
            (e->b_ckpt_slots[i] = spool_ckpt_reserve(e->states, at == at_shared)) < 0)
            continue;
        e->b_ckpt_rows[i] = at - s->n_computed;
        e->b_ckpt_key[i] = key;
    }
}

// Lays the scheduled items out as one flat batch (tokens, positions, query ranges, block tables,
// logits rows) in the engine's batch arrays. *decode_only: every item is a plain decode.
static tv_batch build_batch(tv_engine *e, int n_items, bool *decode_only) {
    const bool has_ckpt = e->cfg.state_ckpt_slots > 0;
    if (has_ckpt) plan_checkpoints(e, n_items);
    int T = 0, L = 0;
    *decode_only = true;
    e->b_qstart[0] = 0;
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        int n = e->items[i].n_tokens;
        TV_CHECK(n >= 1 && s->n_computed + n <= s->n_tokens + s->n_draft);
        TV_CHECK(s->n_draft == 0 || n == 1 + s->n_draft);
        TV_CHECK(s->n_blocks * e->cfg.block_size >= s->n_computed + n);
        for (int j = 0; j < n; j++) {
            e->b_tokens[T + j] = s->tokens[s->n_computed + j];
            e->b_pos[T + j] = s->n_computed + j;
        }
        T += n;
        e->b_qstart[i + 1] = T;
        e->b_ctx[i] = s->n_computed + n;
        e->b_tables[i] = s->blocks;
        e->b_slots[i] = s->state_slot;
        e->b_rollback[i] = s->n_draft > 0 && e->rb_base >= 0 ? e->rb_base + s->state_slot * e->cfg.spec_tokens : -1;
        if (s->n_computed + 1 != s->n_tokens) *decode_only = false;
        if (s->n_computed + n >= s->n_tokens) {   // its last pending token (and its guesses): sample after each
            for (int j = s->n_tokens - 1 - s->n_computed; j < n; j++) {
                e->b_logit_rows[L] = T - n + j;
                e->b_logit_seq[L++] = s;
            }
        }
    }
    TV_CHECK(T <= e->cfg.max_batched_tokens && L <= e->max_logits);
    return (tv_batch){.n_tokens = T, .tokens = e->b_tokens, .positions = e->b_pos, .n_seqs = n_items,
                      .q_start = e->b_qstart, .ctx_len = e->b_ctx, .block_tables = e->b_tables, .n_logits = L,
                      .logit_rows = e->b_logit_rows, .state_slots = e->b_slots,
                      .state_ckpt_rows = has_ckpt ? e->b_ckpt_rows : NULL, .state_ckpt_slots = e->b_ckpt_slots,
                      .state_rollback = e->rb_base >= 0 ? e->b_rollback : NULL, .hidden_cache = e->mtp_h};
}

// Counts a successful round of items: steps, tokens, prompt tokens and prefix-cache hits (of the
// items still running: an abort while in flight counts nothing). start: the position of each
// item's first token (pipelined), NULL: its n_computed.
static void account_round(tv_engine *e, const tv_sched_item *items, const int *start, int n_items, int n_tokens) {
    e->stats.n_steps++;
    e->stats.n_batched_tokens += (uint64_t)n_tokens;
    e->stats.last_step_tokens = n_tokens;
    for (int i = 0; i < n_items; i++) {
        const tv_seq *s = items[i].seq;
        if (s->status != SEQ_RUNNING) continue;
        const int at = start ? start[i] : s->n_computed;
        if (at == s->n_cached && s->n_cached > 0) e->stats.n_prefix_hit_tokens += (uint64_t)s->n_cached;
        if (at < s->n_prompt) {
            int np = items[i].n_tokens;
            if (at + np > s->n_prompt) np = s->n_prompt - at;
            e->stats.n_prompt_tokens += (uint64_t)np;
        }
    }
}

// Runs the scheduled items through the model. TV_OK: their K/V are in the cache (n_computed
// advanced) and *logits holds one row per sequence to sample, (b->n_logits, n_vocab). Else every
// item finished with the error (a failure of the whole batch) and nothing advanced.
static tv_status run(tv_engine *e, int n_items, const tv_batch *b, float **logits) {
    tv_error ferr = {0};
    tv_status st = forward_run(e->fwd, e->kv, b, logits, &ferr);
    for (int i = 0; b->state_ckpt_rows && i < n_items; i++)   // a failed batch fills no checkpoint
        if (b->state_ckpt_rows[i] > 0 && st != TV_OK) spool_ckpt_drop(e->states, b->state_ckpt_slots[i]);
    if (st != TV_OK) {
        err_fail_prefix(&ferr, ferr.code, "forward pass of a %d-token batch", b->n_tokens);
        for (int i = 0; i < n_items; i++) fail_seq(e, e->items[i].seq, NULL, &ferr);
        return ferr.code;
    }
    account_round(e, e->items, NULL, n_items, b->n_tokens);
    // a verification item's guesses count once postprocess knows which were accepted
    for (int i = 0; i < n_items; i++) sched_computed(e->sched, e->items[i].seq, e->items[i].n_tokens - e->items[i].seq->n_draft);
    // the checkpoints' blocks are registered now: they become findable with them
    for (int i = 0; b->state_ckpt_rows && i < n_items; i++)
        if (b->state_ckpt_rows[i] > 0) spool_ckpt_publish(e->states, b->state_ckpt_slots[i], e->b_ckpt_key[i]);
    return TV_OK;
}

// ---- postprocess ----

static bool is_stop_token(const tv_engine *e, const tv_seq *s, int32_t tok) {
    for (int i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == tok) return true;
    if (s->ignore_eos) return false;
    return tv_model_is_eog(e->model, tok);
}

// Room for one more token in s->tokens and n_guesses proposed ones behind it. false (s unchanged)
// when out of memory.
static bool reserve_token(tv_seq *s, int n_guesses) {
    size_t cap = (size_t)s->cap;
    int32_t *nt = array_grow(s->tokens, &cap, (size_t)s->n_tokens + 1 + (size_t)n_guesses, sizeof *nt);
    if (!nt) return false;
    s->tokens = nt;
    s->cap = (int)cap;
    return true;
}

// Samples s's next token from its logits row (n_vocab, modified), or takes the one the pipeline's
// last stage sampled (pre, logits NULL), and appends it with its outputs: a record with the token,
// logprobs and text, and the finish when it ends here. q: NULL, or the row verifies the sampled
// guess x drawn from the draft's distribution q (n_vocab): the token is x or a rejection's draw
// (sampler_verify). All or nothing: everything that can fail runs before the first change that
// is reported; on failure s finishes with TV_FINISH_ERROR and none of this token. Returns the
// token appended, -1 when s failed.
static int32_t emit_token(tv_engine *e, tv_seq *s, float *logits, const pipe_out *pre, const float *q, int32_t x) {
    tv_request_output *rec = post_output_new(&e->out, s);
    const int ri = (int)(rec - e->out.recs);
    const int n_top = s->logprobs > 0 ? s->logprobs : 0;
    tv_logprob *chosen = s->logprobs >= 0 ? &e->out.lp[ri] : NULL;
    tv_logprob *top = n_top ? &e->out.top[(size_t)ri * POST_MAX_TOP_LOGPROBS] : NULL;
    tv_error why = {0};
    if (!reserve_token(s, e->cfg.spec_tokens)) {
        err_fail(&why, TV_ERR_NOMEM, "out of memory growing the token list");
        fail_seq(e, s, rec, &why);
        return -1;
    }
    TV_CHECK(logits || (pre && !s->matcher));   // a grammar masks the logits here
    if (s->matcher) {   // structured output: only what the grammar allows here
        const uint32_t *mask = e->cons_mask;
        if (s->pre_ready && s->pre_version == matcher_version(s->matcher)) {   // filled during the forward pass
            mask = s->pre_mask;
            e->stats.n_masks_overlapped++;
        } else if (matcher_fill_mask(s->matcher, e->cons_mask) != TV_OK) {
            err_fail(&why, TV_ERR_NOMEM, "structured output: the grammar's state budget ran out");
            fail_seq(e, s, rec, &why);
            return -1;
        }
        s->pre_ready = false;
        e->stats.n_masks++;
        sampler_apply_mask(logits, e->hp->n_vocab, mask);
    }
    int32_t tok;
    if (logits) {
        tok = q ? sampler_verify(s->sampler, logits, q, x, e->spec_p, chosen, top, n_top)
                : sampler_sample(s->sampler, logits, chosen, top, n_top);
    } else {   // sampled on the last stage with this request's parameters and draw
        tok = pre->id;
        if (chosen) *chosen = pre->chosen;
        if (n_top) memcpy(top, pre->top, (size_t)n_top * sizeof *top);
    }
    if (s->matcher && !matcher_advance(s->matcher, tok)) {
        err_fail(&why, matcher_failed(s->matcher) ? TV_ERR_NOMEM : TV_ERR_STATE,
                 "structured output: token %d is not allowed here (the logits banned every allowed token)", tok);
        fail_seq(e, s, rec, &why);
        return -1;
    }
    const bool stop_tok = is_stop_token(e, s, tok);
    tv_finish_reason fin = TV_FINISH_NONE;
    if (stop_tok || (s->matcher && matcher_is_done(s->matcher))) fin = TV_FINISH_STOP;
    else if (s->n_tokens + 1 >= s->max_len || (s->max_new >= 0 && seq_n_generated(s) + 1 >= s->max_new)) fin = TV_FINISH_LENGTH;
    char *text;
    size_t text_len;
    bool stopped;
    if (post_text(s, tok, stop_tok, fin != TV_FINISH_NONE, &text, &text_len, &stopped) != TV_OK) {
        if (s->matcher) matcher_rollback(s->matcher, 1);
        err_fail(&why, TV_ERR_NOMEM, "out of memory detokenizing");
        fail_seq(e, s, rec, &why);
        return -1;
    }
    // commit: nothing below fails
    s->tokens[s->n_tokens++] = tok;
    sampler_accept(s->sampler, tok, false);
    e->stats.n_generated_tokens++;
    if (stopped) fin = TV_FINISH_STOP;
    if (stop_tok) s->stop_token = tok;
    e->out.ids[ri] = tok;
    rec->new_ids = &e->out.ids[ri];
    rec->n_new = 1;
    rec->logprobs = chosen;
    rec->top_logprobs = top;
    rec->n_top = n_top;
    if (text) { rec->text = text; rec->text_len = text_len; }
    rec->n_generated = seq_n_generated(s);
    rec->finish = fin;
    rec->stop_token = stop_tok ? tok : -1;
    if (fin != TV_FINISH_NONE) finish_seq(e, s, fin);
    return tok;
}

// Proposes the next tokens of s (running, decoding; emit_token reserved their room) behind its
// last one: at most spec_tokens and one less than it may still generate (the item's bonus token
// is the last it may append).
static void propose(tv_engine *e, tv_seq *s) {
    s->n_draft = 0;
    int room = s->max_len - s->n_tokens;
    if (s->max_new >= 0 && s->max_new - seq_n_generated(s) < room) room = s->max_new - seq_n_generated(s);
    const int k = s->spec_k < room - 1 ? s->spec_k : room - 1;
    if (k <= 0) return;
    TV_CHECK(s->n_tokens + k <= s->cap);
    if (e->cfg.spec != TV_SPEC_NGRAM) {
        s->n_draft = k;   // the drafts make what the scheduler grants, in draft()
        return;
    }
    s->n_draft = spec_ngram_propose(s->tokens, s->n_tokens, k, s->tokens + s->n_tokens);
    // structured output: guesses the grammar would refuse are not worth verifying
    if (s->matcher) s->n_draft = (int)matcher_check(s->matcher, s->tokens + s->n_tokens, (size_t)s->n_draft);
}

// The lowest id of a maximal value of x (n).
static int32_t argmax_row(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double clock_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The positions [*from, *to) a draft model's pass 0 runs for s (scheduled with n_tokens): from the
// first token without its draft K/V (where every query's window is still whole) through the
// pending token (a decode with guesses) or the item's tokens (prompt chunks, decodes without). The
// MTP layer runs a position once the target has computed the one before (its input): through the
// item's first token.
static void draft_span0(const tv_engine *e, const tv_seq *s, int n_tokens, int *from, int *to) {
    const int bs = e->cfg.block_size, dwin = model_hparams(e->cfg.draft_model)->kv_window;
    int f = s->n_draft_computed < s->n_computed ? s->n_draft_computed : s->n_computed;
    // keys that fell out of the window are gone: start where every query's window is whole
    if (s->n_released > 0 && f < s->n_released * bs + dwin - 1) f = s->n_released * bs + dwin - 1;
    *from = f > s->n_computed ? s->n_computed : f;
    *to = s->n_computed + (s->n_draft || e->cfg.spec == TV_SPEC_MTP ? 1 : n_tokens);
}

// The MTP layer's input row for token p of s in draft round d: the target's final-normed hidden
// state at p - 1 (round 0; zeros at position 0) or the MTP layer's own output of round d - 1 for
// item i (a guess it made).
static void mtp_input(const tv_engine *e, const tv_seq *s, int i, int d, int p, float *row) {
    const size_t dim = (size_t)e->hp->dim, bs = (size_t)e->cfg.block_size;
    if (d > 0) memcpy(row, e->mtp_prev + (size_t)i * dim, dim * sizeof(float));
    else if (p == 0) memset(row, 0, dim * sizeof(float));
    else memcpy(row, e->mtp_h + ((size_t)s->blocks[(size_t)(p - 1) / bs] * bs + (size_t)(p - 1) % bs) * dim, dim * sizeof(float));
}

// Drafting for the scheduled items (before their batch is built). The draft is the
// model's own first draft_layers layers and its head (self-draft: it reads and writes the model's
// K/V of those layers, which are the whole model's for the same tokens) or the draft model (its
// own K/V, in the same blocks: e->dkv). Round d runs, for every decode item granted more than d
// guesses, the token at position n_computed + d (its pending token, then guess d - 1), one row
// each, and writes guess d: the argmax of its logits, or for a sampled request a draw from the
// distribution its sampler makes of them (kept in draft_q for the verification). The draft
// model's round 0 also catches its K/V up with the target's: each item runs its tokens from
// n_draft_computed on (prompt chunks: the tokens the target runs this round, in a round that drafts
// (with the load gate: one that decided to speculate; gate_round); decodes: a last guess that was accepted and never drafted
// from, then the pending token), and one more round runs the last guesses that end a block: so
// every block the target fills (and the prefix cache may share) holds the draft's K/V too, except
// after a failed draft round (a draft only proposes: that costs acceptance, never output; it also
// catches up in parts of at most draft_rows when it fell behind). A failed round keeps the
// guesses made so far (the items shrink to them): drafting never fails a request. Structured
// output: the guesses are cut where the grammar would refuse them (as the n-gram proposer's; a
// sampled request's after the first refused one). Each forward pass is timed for the load gate.
// The MTP layer (e->mtp_h set) drafts as a draft model, with each row's previous hidden state as
// input (mtp_input); its K/V count as computed only from the target's hidden states (round 0), so
// the K/V of guesses it made from its own output are rewritten once accepted, and a last guess
// that ends a block waits for the next round 0 too.
static void draft(tv_engine *e, int n_items) {
    const size_t V = (size_t)e->hp->n_vocab, dim = (size_t)e->hp->dim;
    const bool own = e->dfwd != NULL, is_mtp = e->mtp_h != NULL;
    const int bs = e->cfg.block_size;
    for (int d = 0;; d++) {
        int n = 0, ns = 0, nl = 0;
        e->b_qstart[0] = 0;
        for (int i = 0; i < n_items; i++) {
            tv_seq *s = e->items[i].seq;
            int from = s->n_computed + d, to = from + 1;   // the positions s runs this round
            if (own && d == 0) {
                draft_span0(e, s, e->items[i].n_tokens, &from, &to);
                if (to - from > e->draft_rows - n) {   // a draft that fell behind catches up in parts
                    to = from + e->draft_rows - n;
                    e->items[i].n_tokens -= s->n_draft;
                    s->n_draft = 0;
                }
                if (from >= to) continue;
            } else if (s->n_draft <= d) {   // prompt chunks have none
                // the draft model's K/V of the last guess: only where it ends a block (which the
                // prefix cache registers once that guess is accepted); else the next round 0 runs it
                if (!own || is_mtp || d != s->n_draft || (s->n_computed + d + 1) % bs) continue;
            }
            for (int p = from; p < to; p++) {
                if (is_mtp) mtp_input(e, s, i, d, p, e->mtp_in + (size_t)n * dim);
                e->b_tokens[n] = s->tokens[p];
                e->b_pos[n++] = p;
            }
            e->b_ctx[ns] = to;
            e->b_tables[ns] = s->blocks;
            e->b_seqs[ns++] = s;
            e->b_qstart[ns] = n;
            if (s->n_draft > d) {
                if (is_mtp) e->mtp_item[nl] = i;
                e->b_logit_rows[nl] = n - 1;
                e->b_logit_seq[nl++] = s;
            }
        }
        if (n == 0) break;
        tv_batch b = {.n_tokens = n, .tokens = e->b_tokens, .positions = e->b_pos, .n_seqs = ns, .q_start = e->b_qstart,
                      .ctx_len = e->b_ctx, .block_tables = e->b_tables, .n_logits = nl, .logit_rows = e->b_logit_rows,
                      .n_layers = e->cfg.draft_layers, .mtp_hidden = is_mtp ? e->mtp_in : NULL};
        float *logits = NULL;
        tv_error ferr = {0};
        const double t0 = e->gate ? clock_s() : 0.0;
        const tv_status st = forward_run(own ? e->dfwd : e->fwd, own ? e->dkv : e->kv, &b, &logits, &ferr);
        if (e->gate && st == TV_OK) spec_gate_time_draft(e->gate, n, clock_s() - t0);
        if (st == TV_OK) e->stats.n_spec_draft_rows += (uint64_t)n;
        if (st != TV_OK) {
            for (int i = 0; i < n_items; i++) {
                tv_seq *s = e->items[i].seq;
                if (s->n_draft <= d) continue;
                e->items[i].n_tokens -= s->n_draft - d;
                s->n_draft = d;
            }
            break;
        }
        if (own && (d == 0 || !is_mtp))
            for (int j = 0; j < ns; j++) e->b_seqs[j]->n_draft_computed = e->b_ctx[j];
        for (int r = 0; is_mtp && r < nl; r++)   // the input of each item's next guess
            memcpy(e->mtp_prev + (size_t)e->mtp_item[r] * dim, forward_logit_hidden(e->dfwd) + (size_t)r * dim,
                   dim * sizeof(float));
        for (int r = 0; r < nl; r++) {
            tv_seq *s = e->b_logit_seq[r];
            float *row = logits + (size_t)r * V;
            s->tokens[s->n_tokens + d] = s->draft_q ? sampler_draft(s->sampler, row, s->draft_q + (size_t)d * V)
                                                    : argmax_row(row, (int32_t)V);
        }
    }
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        if (!s->matcher || !s->n_draft) continue;
        int ok = (int)matcher_check(s->matcher, s->tokens + s->n_tokens, (size_t)s->n_draft);
        // a sampled guess stays when refused (the mask gives it p = 0: rejected, and the token drawn
        // from norm(max(0, p - q))): cutting it would make whether a row is verified depend on the draw
        if (s->draft_q && ok < s->n_draft) ok++;
        e->items[i].n_tokens -= s->n_draft - ok;
        s->n_draft = ok;
    }
}

// Samples the rows of s's item (1 + n_draft of them, (n_rows, n_vocab) in logits; pipelined: rows[j].logits) as described at
// the top: appends tokens while they match s's guesses, then advances n_computed over the accepted
// guesses (postprocess then returns the blocks that only rejected ones reached). A hybrid model's
// linear layers ran over every guess: after a rejection the state after the last accepted row
// comes back from its rollback point (the next round continues from there). Adaptive k: all
// accepted, the next proposal may be one longer (up to spec_tokens); else it is the accepted run
// plus one, so a sequence whose guesses keep failing spends one row per round on them.
static void verify(tv_engine *e, tv_seq *s, float *logits, const pipe_out *rows) {
    const size_t V = (size_t)e->hp->n_vocab;
    const int n_draft = s->n_draft;
    int32_t guess[TV_SPEC_MAX_TOKENS];
    memcpy(guess, s->tokens + s->n_tokens, (size_t)n_draft * sizeof *guess);   // appending overwrites them
    s->n_draft = 0;
    int n_accepted = 0;
    for (int j = 0; j <= n_draft; j++) {
        const float *q = j < n_draft && s->draft_q ? s->draft_q + (size_t)j * V : NULL;
        const int32_t tok = emit_token(e, s, rows ? rows[j].logits : logits + (size_t)j * V, NULL, q, j < n_draft ? guess[j] : -1);
        if (j == n_draft || tok != guess[j]) break;
        e->stats.n_spec_accepted_per_pos[j]++;
        n_accepted++;
        if (s->status != SEQ_RUNNING) break;   // finished on an accepted guess
    }
    e->stats.n_spec_drafts++;
    e->stats.n_spec_draft_tokens += (uint64_t)n_draft;
    e->stats.n_spec_accepted_tokens += (uint64_t)n_accepted;
    if (e->gate) spec_gate_accepted(e->gate, n_draft, n_accepted);
    if (n_accepted == n_draft) s->spec_k = s->spec_k < e->cfg.spec_tokens ? s->spec_k + 1 : e->cfg.spec_tokens;
    else s->spec_k = n_accepted + 1;
    if (s->status != SEQ_RUNNING) return;   // its blocks and state slot went back
    if (e->rb_base >= 0 && n_accepted < n_draft)
        kv_cache_state_copy(e->kv, s->state_slot, e->rb_base + s->state_slot * e->cfg.spec_tokens + n_accepted);
    sched_computed(e->sched, s, n_accepted);
}

// The rows of logit_seq (n) from r that belong to logit_seq[r] (a verification item's are consecutive).
static int rows_of(tv_seq *const *logit_seq, int n, int r) {
    int k = 1;
    while (r + k < n && logit_seq[r + k] == logit_seq[r]) k++;
    return k;
}

// Samples and appends the tokens of a round's logits rows: (n_logits, n_vocab) in logits, or
// (pipelined) outs[r] for row r. A sequence aborted while its batch was in flight is skipped.
static void postprocess(tv_engine *e, tv_seq *const *logit_seq, int n_logits, float *logits, const pipe_out *outs) {
    const size_t V = (size_t)e->hp->n_vocab;
    for (int r = 0, n_rows; r < n_logits; r += n_rows) {
        tv_seq *s = logit_seq[r];
        n_rows = rows_of(logit_seq, n_logits, r);
        if (s->status != SEQ_RUNNING) continue;
        TV_CHECK(n_rows == 1 + s->n_draft);
        if (s->n_draft) verify(e, s, logits ? logits + (size_t)r * V : NULL, outs ? outs + r : NULL);
        else emit_token(e, s, outs ? outs[r].logits : logits + (size_t)r * V, outs ? &outs[r] : NULL, NULL, -1);
        if (e->cfg.spec_tokens && s->status == SEQ_RUNNING) {
            sched_rollback(e->sched, s);   // blocks only rejected guesses (or ungranted drafts) reached
            propose(e, s);
        }
    }
}

// ---- masks off the critical path ----

// Hands the mask thread the matchers of the constrained sequences this round samples (rows
// logit_seq (n_logits); their first sample: a verification's later ones are filled in line), to
// fill while the forward runs.
static void masks_start(tv_engine *e, tv_seq *const *logit_seq, int n_logits) {
    if (!e->mw) return;
    const size_t bytes = ((size_t)e->hp->n_vocab + 31) / 32 * sizeof(uint32_t);
    int n = 0;
    for (int r = 0; r < n_logits; r += rows_of(logit_seq, n_logits, r)) {
        tv_seq *s = logit_seq[r];
        s->pre_ready = false;
        if (s->status != SEQ_RUNNING || !s->matcher || matcher_is_done(s->matcher)) continue;
        if (!s->pre_mask && !(s->pre_mask = mem_malloc(bytes))) continue;   // then filled in line
        s->pre_version = matcher_version(s->matcher);
        e->mw_seq[n] = s;
        e->mw_m[n] = s->matcher;
        e->mw_mask[n] = s->pre_mask;
        n++;
    }
    if (n) mask_worker_start(e->mw, e->mw_m, e->mw_mask, e->mw_st, n);
    e->mw_n = n;
}

// Waits for the masks started by masks_start; a mask that failed (a budget) is refilled in line,
// where the failure is reported.
static void masks_wait(tv_engine *e) {
    if (!e->mw_n) return;
    mask_worker_wait(e->mw);
    for (int i = 0; i < e->mw_n; i++) e->mw_seq[i]->pre_ready = e->mw_st[i] == TV_OK;
    e->mw_n = 0;
}

// ---- micro-batch pipelining (pipeline.h) ----

// How the last stage treats each logits row of b: sampled there when its request's sampler is
// plain (no bias, no penalties), it has no grammar and it is not a verification row (the draw is
// taken from the request's RNG now, where sampler_sample would take it); else its logits come back.
static void pipe_rows(tv_engine *e, const tv_batch *b) {
    for (int r = 0; r < b->n_logits; r++) {
        tv_seq *s = e->b_logit_seq[r];
        pipe_row *row = &e->b_rows[r];
        memset(row, 0, sizeof *row);
        row->mode = PIPE_ROW_LOGITS;
        if (s->matcher || s->n_draft || !sampler_is_plain(s->sampler)) continue;
        row->mode = PIPE_ROW_SAMPLE;
        row->n_top = s->logprobs;   // -1 none, else how many alternatives (0: the chosen token's only)
        sampler_take_plain(s->sampler, &row->plain);
    }
}

// Schedules the next round (balance: sched_schedule's), runs this process's layers and submits it
// to the later stages; it is in flight until pipe_collect. Its prompt chunks that sample nothing
// advance n_computed now (the next chunk may go in the next round); its sequences that sample wait
// for it. A failure finishes its requests. false: nothing to run.
static bool pipe_submit(tv_engine *e, int balance) {
    const int n_items = schedule(e, balance);
    if (n_items == 0) return false;
    bool decode_only;
    const tv_batch b = build_batch(e, n_items, &decode_only);
    pipe_rows(e, &b);
    float *hidden = NULL;
    tv_error ferr = {0};
    tv_status st = forward_run(e->fwd, e->kv, &b, &hidden, &ferr);
    if (st == TV_OK) st = e->down.submit(e->down.ctx, &b, hidden, e->b_rows, &ferr);
    if (st != TV_OK) {
        err_fail_prefix(&ferr, ferr.code, "forward pass of a %d-token batch", b.n_tokens);
        for (int i = 0; i < n_items; i++) fail_seq(e, e->items[i].seq, NULL, &ferr);
        return true;
    }
    flight *f = &e->fl[(e->fl_head + e->fl_n++) % e->down.depth];
    memcpy(f->items, e->items, (size_t)n_items * sizeof *f->items);
    memcpy(f->logit_seq, e->b_logit_seq, (size_t)b.n_logits * sizeof *f->logit_seq);
    f->n_items = n_items;
    f->n_logits = b.n_logits;
    f->n_tokens = b.n_tokens;
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        const int n = e->items[i].n_tokens;
        f->start[i] = s->n_computed;
        s->n_flights++;
        if (s->n_computed + n >= s->n_tokens) s->sample_in_flight = true;
        else sched_submitted(e->sched, s, n);
    }
    return true;
}

// Collects the oldest batch in flight and postprocesses it: its tokens' K/V are now in every
// stage's cache (n_computed advances, or advanced at submit for a chunk that samples nothing;
// full blocks go to the prefix cache) and its rows are sampled (or were, on the last stage). A
// failure finishes its requests (those aborted or failed meanwhile are skipped: begin_step reports
// an abort once no round holds it).
static void pipe_collect(tv_engine *e) {
    flight *f = &e->fl[e->fl_head];
    masks_start(e, f->logit_seq, f->n_logits);   // while the stages finish it
    tv_error ferr = {0};
    const tv_status st = e->down.collect(e->down.ctx, e->b_outs, &ferr);
    masks_wait(e);
    e->fl_head = (e->fl_head + 1) % e->down.depth;
    e->fl_n--;
    for (int i = 0; i < f->n_items; i++) {
        tv_seq *s = f->items[i].seq;
        s->n_flights--;
        if (f->start[i] + f->items[i].n_tokens >= s->n_tokens) s->sample_in_flight = false;
    }
    if (st != TV_OK) {
        err_fail_prefix(&ferr, ferr.code, "forward pass of a %d-token batch", f->n_tokens);
        for (int i = 0; i < f->n_items; i++)
            if (f->items[i].seq->status == SEQ_RUNNING) fail_seq(e, f->items[i].seq, NULL, &ferr);
        return;
    }
    account_round(e, f->items, f->start, f->n_items, f->n_tokens);
    for (int i = 0; i < f->n_items; i++) {
        tv_seq *s = f->items[i].seq;
        if (s->status != SEQ_RUNNING) continue;
        const int end = f->start[i] + f->items[i].n_tokens;
        if (end >= s->n_tokens) sched_computed(e->sched, s, f->items[i].n_tokens - s->n_draft);
        else sched_confirmed(e->sched, s, end);
    }
    postprocess(e, f->logit_seq, f->n_logits, NULL, e->b_outs);
}

// One pipelined step: rounds while fewer than depth are in flight and there is work (each about as
// long as the newest in flight), then the oldest comes back. In steady state each step submits one
// round and collects one, and every stage computes a different round.
static void pipe_step(tv_engine *e) {
    const int depth = e->down.depth;
    while (e->fl_n < depth) {
        const int newest = e->fl_n ? e->fl[(e->fl_head + e->fl_n - 1) % depth].n_tokens : 0;
        if (!pipe_submit(e, newest)) break;
    }
    if (e->fl_n) pipe_collect(e);
}

// ---- load awareness ----

// The load gate's decision for the scheduled items (spec.h's cost model): how many guesses each
// decoding item verifies at most this round; the items' guesses past it are dropped (the blocks
// the scheduler gave them go back at postprocess's rollback), all of them in a plain round, which
// also skips drafting: a draft model does no work while the gate keeps speculation off and
// catches up (charged by the gate) when it resumes. Returns whether the round speculates (drafts).
// A round without guesses (prompt chunks only, or decodes granted none) has no decision and runs
// no draft pass: a draft model's K/V of its prompt chunks catch up in the next round that decides
// to speculate for the sequence, where the gate predicts them (draft_catchup_rows) and times them
// (the realized sample). Run eagerly here, they were seconds in no prediction and no sample that a
// plain server never pays (a few percent at 16 streams of 128-token prompts).
static bool gate_round(tv_engine *e, int n_items) {
    int n_decode = 0, n_other = 0, n_catchup = 0, n_guessing = 0;
    for (int i = 0; i < n_items; i++) {
        const tv_seq *s = e->items[i].seq;
        if (seq_n_pending(s) == 1) e->b_guesses[n_decode++] = s->n_draft;
        else n_other += e->items[i].n_tokens;
        n_guessing += s->n_draft > 0;
        if (e->dfwd) {
            int from, to;
            draft_span0(e, s, e->items[i].n_tokens, &from, &to);
            n_catchup += to - from - (s->n_draft > 0);
        }
    }
    if (n_guessing == 0) return false;
    if (n_catchup > e->draft_rows - n_guessing) n_catchup = e->draft_rows - n_guessing;
    const spec_round r = {.n_decode = n_decode, .n_other_rows = n_other, .guesses = e->b_guesses,
                          .draft_passes = model_draft(&e->cfg), .draft_catchup_rows = n_catchup};
    spec_choice ch;
    const int k = spec_gate_decide(e->gate, &r, &ch);
    e->last_choice = ch;
    e->stats.spec_cost_factor = ch.cost_factor;
    e->stats.spec_margin = ch.margin;
    e->stats.spec_enabled = k > 0;
    e->stats.spec_round_tokens = k;
    e->stats.spec_plain_rate_tok_s = ch.plain_tok_s;
    e->stats.spec_rate_tok_s = ch.spec_tok_s;
    if (k > 0) e->stats.n_spec_rounds++;
    else e->stats.n_spec_rounds_plain++;
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        if (s->n_draft <= k) continue;
        e->items[i].n_tokens -= s->n_draft - k;
        s->n_draft = k;
    }
    return k > 0;
}

// ---- step ----

// Frees what finished last step and its outputs, then reports pending aborts (up to
// max_num_seqs; the rest wait for the next step).
static void begin_step(tv_engine *e) {
    post_outputs_clear(&e->out);
    int held = 0;   // (pipelined: one a round in flight holds waits until it is back)
    for (int i = 0; i < e->n_done; i++) {
        if (e->done[i]->n_flights > 0) e->done[held++] = e->done[i];
        else seq_free(e->done[i]);
    }
    e->n_done = held;
    int n = 0, kept = 0;
    for (int i = 0; i < e->n_aborted; i++) {
        tv_seq *s = e->aborted[i];
        if (n == e->cfg.max_num_seqs || s->n_flights > 0) {
            e->aborted[kept++] = s;
            continue;
        }
        post_output_new(&e->out, s);
        e->done[e->n_done++] = s;
        n++;
    }
    e->n_aborted = kept;
}

tv_status tv_engine_step(tv_engine *e, const tv_request_output **outs, int *n_outs, tv_error *err) {
    if (!e || !outs || !n_outs) return err_fail(err, TV_ERR_INVALID, "engine step: NULL argument");
    begin_step(e);
    if (e->down.submit) pipe_step(e);
    // one round, then (multi-step decoding) more while the batch is pure decode and nobody waits
    bool decode_only = true;
    for (int r = 0; !e->down.submit && r < e->cfg.decode_steps && decode_only && (r == 0 || sched_n_waiting(e->sched) == 0); r++) {
        int n_items = schedule(e, 0);
        if (n_items == 0) break;
        const double t_decided = e->gate ? clock_s() : 0.0;   // the realized round: decision, draft, target round
        const uint64_t n_acc0 = e->stats.n_spec_accepted_tokens;
        e->last_choice = (spec_choice){0};
        const bool speculate = !e->gate || gate_round(e, n_items);
        if (model_draft(&e->cfg) && speculate) draft(e, n_items);
        const double t0 = e->gate ? clock_s() : 0.0;   // the target's round: batch, forward pass, sampling
        tv_batch b = build_batch(e, n_items, &decode_only);
        float *logits = NULL;
        masks_start(e, e->b_logit_seq, b.n_logits);
        const tv_status st = run(e, n_items, &b, &logits);
        masks_wait(e);
        if (st != TV_OK) break;
        postprocess(e, e->b_logit_seq, b.n_logits, logits, NULL);
        if (e->gate) {
            const double t1 = clock_s();
            spec_gate_time_round(e->gate, b.n_tokens, t1 - t0);
            if (e->last_choice.k > 0) {
                spec_gate_realized(e->gate, t1 - t_decided);
                e->stats.spec_predicted_s += e->last_choice.pred_s;
                e->stats.spec_predicted_draft_s += e->last_choice.pred_draft_s;
                e->stats.spec_predicted_gain += e->last_choice.pred_gain;
                e->stats.spec_realized_s += t1 - t_decided;
                e->stats.spec_realized_draft_s += t0 - t_decided;
                e->stats.spec_realized_gain += (double)(e->stats.n_spec_accepted_tokens - n_acc0);
            }
        }
    }
    *outs = e->out.recs;
    *n_outs = e->out.n;
    return TV_OK;
}
