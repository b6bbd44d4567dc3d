// engine.c — tv_engine_step() = schedule -> build the flat batch -> forward -> sample -> postprocess.
//
// The engine owns the KV pools (through the model's tv_kv_cache), the block manager, the
// scheduler and the sequences; the model sees only struct tv_batch.
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/block_manager.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/status.h"

struct tv_engine {
    tv_engine_config cfg;
    tv_model *model;
    const tv_hparams *hp;
    const tv_tokenizer *tok;
    tv_pool *pool;
    tv_kv_cache *kv;
    tv_forward *fwd;
    kv_block_manager *bm;
    tv_scheduler *sched;
    int max_len;                 // tokens per sequence at most
    uint64_t next_id;
    uint64_t rng;                // seeds for requests without one
    // per-step batch arrays
    tv_sched_item *items;        // (max_num_seqs)
    int32_t *b_tokens, *b_pos;   // (max_batched_tokens)
    int32_t *b_qstart;           // (max_num_seqs + 1)
    int32_t *b_ctx;              // (max_num_seqs)
    const int32_t **b_tables;    // (max_num_seqs)
    int32_t *b_logit_rows;       // (max_num_seqs)
    tv_seq **b_logit_seq;        // (max_num_seqs)
    // outputs of the last step
    tv_request_output *outs;     // (cap_outs)
    int n_outs, cap_outs;
    int32_t *out_ids;            // (cap_outs) the token of each output
    tv_logprob *out_lp;          // (cap_outs) its logprob when requested
    tv_logprob *out_top;         // (cap_outs, TV_MAX_TOP_LOGPROBS) alternatives when requested
    tv_seq **done;               // (cap_done) sequences finished last step, freed at the next
    int n_done, cap_done;
    tv_seq **aborted;            // (cap_aborted) aborted since the last step, reported at the next
    int n_aborted, cap_aborted;
    tv_engine_stats stats;
};

#define TV_MAX_TOP_LOGPROBS 20

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
    p->add_bos = true;
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
    free(s->held);
    free(s);
}

void tv_engine_free(tv_engine *e) {
    if (!e) return;
    for (tv_seq *s; e->sched && (s = sched_first(e->sched));) {   // sequences still queued
        sched_remove(e->sched, s);
        seq_free(s);
    }
    for (int i = 0; i < e->n_outs; i++)
        if (e->outs[i].text_len) free((char *)e->outs[i].text);
    for (int i = 0; i < e->n_done; i++) seq_free(e->done[i]);
    for (int i = 0; i < e->n_aborted; i++) seq_free(e->aborted[i]);
    sched_free(e->sched);
    bm_free(e->bm);
    forward_free(e->fwd);
    kv_cache_free(e->kv);
    pool_free(e->pool);
    free(e->items);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_qstart);
    free(e->b_ctx);
    free(e->b_tables);
    free(e->b_logit_rows);
    free(e->b_logit_seq);
    free(e->outs);
    free(e->done);
    free(e->aborted);
    free(e->out_ids);
    free(e->out_lp);
    free(e->out_top);
    free(e);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

tv_engine *tv_engine_create(tv_model *m, const tv_engine_config *cfg, tv_error *err) {
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
    if (c.kv_bits == 0) c.kv_bits = model_layers(m)[0].wq.type == TV_TYPE_F32 ? 32 : 16;
    if (c.kv_bits != 16 && c.kv_bits != 32) { err_fail(err, TV_ERR_INVALID, "engine: KV element bits %d invalid (16 or 32)", c.kv_bits); return NULL; }
    const bool kv_f32 = c.kv_bits == 32;
    size_t bpb = kv_cache_bytes_per_block(m, c.block_size, kv_f32);
    int64_t n_blocks = c.n_blocks;
    if (n_blocks <= 0) {
        int64_t want = (int64_t)c.max_num_seqs * ((max_len + c.block_size - 1) / c.block_size);
        int64_t budget = c.kv_mem_mb > 0 ? (c.kv_mem_mb << 20) / (int64_t)bpb : (INT64_C(1) << 30) / (int64_t)bpb;
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
    e->model = m;
    e->hp = hp;
    e->tok = tv_model_tokenizer(m);
    // a sequence can never outgrow the pool: cap its length there
    e->max_len = max_len < n_blocks * c.block_size ? max_len : (int)(n_blocks * c.block_size);
    e->next_id = 1;
    e->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)e;
    (void)kern_traits(TV_TYPE_F32);   // fills the kernel table on first use; keeps a path forced earlier
    if (!(e->pool = pool_create(c.n_threads, err))) goto fail;
    if (!(e->kv = kv_cache_create(m, (int)n_blocks, c.block_size, kv_f32, err))) goto fail;
    if (!(e->fwd = forward_create(m, c.max_batched_tokens, c.max_num_seqs, e->pool, err))) goto fail;
    e->bm = bm_create((int)n_blocks, c.block_size);
    tv_sched_config sc = {c.max_num_seqs, c.max_batched_tokens, c.chunked_prefill, c.prefix_caching};
    e->sched = e->bm ? sched_create(&sc, e->bm) : NULL;
    size_t S = (size_t)c.max_num_seqs, T = (size_t)c.max_batched_tokens;
    e->cap_outs = (int)S * 2;
    if (!e->sched || !(e->items = malloc(S * sizeof *e->items)) || !(e->b_tokens = malloc(T * sizeof(int32_t))) ||
        !(e->b_pos = malloc(T * sizeof(int32_t))) || !(e->b_qstart = malloc((S + 1) * sizeof(int32_t))) ||
        !(e->b_ctx = malloc(S * sizeof(int32_t))) || !(e->b_tables = malloc(S * sizeof *e->b_tables)) ||
        !(e->b_logit_rows = malloc(S * sizeof(int32_t))) || !(e->b_logit_seq = malloc(S * sizeof *e->b_logit_seq)) ||
        !(e->outs = malloc((size_t)e->cap_outs * sizeof *e->outs)) ||
        !(e->out_ids = malloc((size_t)e->cap_outs * sizeof *e->out_ids)) ||
        !(e->out_lp = malloc((size_t)e->cap_outs * sizeof *e->out_lp)) ||
        !(e->out_top = malloc((size_t)e->cap_outs * TV_MAX_TOP_LOGPROBS * sizeof *e->out_top))) {
        err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        goto fail;
    }
    e->stats.n_blocks_total = n_blocks;
    e->stats.block_size = c.block_size;
    e->stats.kv_bytes_per_block = (double)bpb;
    return e;
fail:
    tv_engine_free(e);
    return NULL;
}

static bool push_ptr(tv_seq ***arr, int *n, int *cap, tv_seq *s) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        tv_seq **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = s;
    return true;
}

tv_status tv_engine_add_request(tv_engine *e, const tv_request_params *p, uint64_t *req_id, tv_error *err) {
    const tv_sampling_params *sp = &p->sampling;
    if (!(sp->temperature >= 0) || !(sp->top_p > 0 && sp->top_p <= 1) || !(sp->min_p >= 0 && sp->min_p <= 1) ||
        !(sp->repetition_penalty > 0) || sp->logprobs > TV_MAX_TOP_LOGPROBS || sp->n_logit_bias < 0)
        return err_fail(err, TV_ERR_INVALID,
                       "invalid sampling parameters (temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, "
                       "repetition_penalty > 0, logprobs <= %d)", TV_MAX_TOP_LOGPROBS);
    if (p->n_stop < 0 || p->n_stop_ids < 0) return err_fail(err, TV_ERR_INVALID, "invalid stop lists");
    tv_seq *s = calloc(1, sizeof *s);
    if (!s) return err_fail(err, TV_ERR_NOMEM, "out of memory");
    tv_status st = TV_OK;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (p->prompt_ids) {
        ids = (int32_t *)p->prompt_ids;
        n_ids = p->n_prompt;
    } else if (p->prompt_text) {
        if (!e->tok) { st = err_fail(err, TV_ERR_INVALID, "this model has no tokenizer: give prompt token ids"); goto fail; }
        if ((st = tv_tokenize(e->tok, p->prompt_text, strlen(p->prompt_text), p->add_bos, p->parse_special, &ids,
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
    if (!(s->tokens = malloc((size_t)s->cap * sizeof(int32_t)))) goto oom;
    memcpy(s->tokens, ids, n_ids * sizeof(int32_t));
    s->n_tokens = s->n_prompt = (int)n_ids;
    s->max_len = e->max_len;
    if (p->max_tokens >= 0 && (int64_t)n_ids + p->max_tokens < s->max_len) s->max_len = (int)n_ids + p->max_tokens;
    s->max_new = p->max_tokens;
    s->ignore_eos = p->ignore_eos;
    s->logprobs = sp->logprobs;
    s->stop_token = -1;
    s->user = p->user;
    uint64_t seed = sp->has_seed ? sp->seed : splitmix64(&e->rng);
    if (!(s->sampler = sampler_create(sp, e->hp->n_vocab, seed, err))) { st = err ? err->code : TV_ERR_NOMEM; goto fail; }
    for (int i = 0; i < s->n_prompt; i++) sampler_accept(s->sampler, s->tokens[i], true);
    if (e->tok) {
        // prime the detokenizer with the prompt so the first generated piece continues the text
        // (SentencePiece's leading-space rule applies to the start of the prompt, not here)
        if (!(s->detok = tv_detok_create(e->tok, true))) goto oom;
        const char *discard;
        for (int i = 0; i < s->n_prompt; i++) tv_detok_push(s->detok, s->tokens[i], &discard);
    }
    if (p->n_stop_ids > 0) {
        if (!(s->stop_ids = malloc((size_t)p->n_stop_ids * sizeof(int32_t)))) goto oom;
        memcpy(s->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof(int32_t));
        s->n_stop_ids = p->n_stop_ids;
    }
    if (p->n_stop > 0) {
        if (!(s->stop = calloc((size_t)p->n_stop, sizeof(char *)))) goto oom;
        for (int i = 0; i < p->n_stop; i++) {
            if (!p->stop[i] || !p->stop[i][0]) continue;
            if (!(s->stop[s->n_stop] = strdup(p->stop[i]))) goto oom;
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
    sched_remove(e->sched, s);
    s->status = SEQ_FINISHED;
    s->finish = TV_FINISH_ABORT;
    if (!push_ptr(&e->aborted, &e->n_aborted, &e->cap_aborted, s)) {
        seq_free(s);   // can't report it; at least free it
        return TV_ERR_NOMEM;
    }
    e->stats.n_aborted++;
    return TV_OK;
}

bool tv_engine_has_work(const tv_engine *e) {
    return sched_n_running(e->sched) + sched_n_waiting(e->sched) + e->n_aborted > 0;
}

void tv_engine_get_stats(const tv_engine *e, tv_engine_stats *s) {
    *s = e->stats;
    s->n_running = sched_n_running(e->sched);
    s->n_waiting = sched_n_waiting(e->sched);
    s->n_blocks_free = bm_n_free(e->bm);
    s->n_blocks_cached = bm_n_cached(e->bm);
}

// ---- text and stop handling ----

static bool held_append(tv_seq *s, const char *txt, size_t n) {
    if (s->held_len + n + 1 > s->held_cap) {
        size_t nc = s->held_cap ? s->held_cap * 2 : 64;
        while (nc < s->held_len + n + 1) nc *= 2;
        char *nh = realloc(s->held, nc);
        if (!nh) return false;
        s->held = nh;
        s->held_cap = nc;
    }
    memcpy(s->held + s->held_len, txt, n);
    s->held_len += n;
    s->held[s->held_len] = 0;
    return true;
}

// Decides how much of s->held may be emitted now: returns the length to emit; sets *stopped when a
// stop string matched (the text from it on is dropped).
static size_t held_emittable(tv_seq *s, bool final, bool *stopped) {
    *stopped = false;
    size_t best = s->held_len;
    for (int i = 0; i < s->n_stop; i++) {
        char *hit = memmem(s->held, s->held_len, s->stop[i], strlen(s->stop[i]));
        if (hit && (size_t)(hit - s->held) < best) { best = (size_t)(hit - s->held); *stopped = true; }
    }
    if (*stopped || final) return best;
    // hold back the longest suffix that is a prefix of a stop string
    size_t keep = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t sl = strlen(s->stop[i]);
        for (size_t k = sl - 1 < s->held_len ? sl - 1 : s->held_len; k > keep; k--)
            if (!memcmp(s->held + s->held_len - k, s->stop[i], k)) { keep = k; break; }
    }
    // never split a UTF-8 sequence when holding back
    size_t emit = s->held_len - keep;
    while (emit > 0 && emit < s->held_len && ((unsigned char)s->held[emit] & 0xC0) == 0x80) emit--;
    return emit;
}

// Appends an output record. Its id/logprob slots live in side arrays that may move when they
// grow, so the pointers in the records are set once, at the end of the step (link_outputs).
static tv_request_output *new_out(tv_engine *e, tv_seq *s) {
    if (e->n_outs == e->cap_outs) {
        int nc = e->cap_outs * 2;
        tv_request_output *no = realloc(e->outs, (size_t)nc * sizeof *no);
        if (no) e->outs = no;
        int32_t *ni = realloc(e->out_ids, (size_t)nc * sizeof *ni);
        if (ni) e->out_ids = ni;
        tv_logprob *nl = realloc(e->out_lp, (size_t)nc * sizeof *nl);
        if (nl) e->out_lp = nl;
        tv_logprob *nt = realloc(e->out_top, (size_t)nc * TV_MAX_TOP_LOGPROBS * sizeof *nt);
        if (nt) e->out_top = nt;
        if (!no || !ni || !nl || !nt) return NULL;
        e->cap_outs = nc;
    }
    tv_request_output *o = &e->outs[e->n_outs++];
    memset(o, 0, sizeof *o);
    o->req_id = s->id;
    o->user = s->user;
    o->text = "";
    o->stop_token = -1;
    o->n_prompt = s->n_prompt;
    o->n_generated = seq_n_generated(s);
    o->finish = s->finish;
    o->n_cached = s->n_cached;
    return o;
}

static void finish_seq(tv_engine *e, tv_seq *s, tv_finish_reason why) {
    s->finish = why;
    s->status = SEQ_FINISHED;
    sched_remove(e->sched, s);
    if (!push_ptr(&e->done, &e->n_done, &e->cap_done, s)) TV_CHECK(!"out of memory tracking finished sequences");
    e->stats.n_finished++;
}

static bool is_stop_token(const tv_engine *e, const tv_seq *s, int32_t tok) {
    for (int i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == tok) return true;
    if (s->ignore_eos) return false;
    if (tok == tv_model_stop_token(e->model)) return true;
    return e->tok && tv_tokenizer_is_eog(e->tok, tok);
}

// Registers the blocks that this step filled with the prefix cache (chained hashes).
static void register_full_blocks(tv_engine *e, tv_seq *s) {
    const int bs = e->cfg.block_size;
    for (; (s->n_hashed + 1) * bs <= s->n_computed; s->n_hashed++) {
        const int b = s->n_hashed;
        const uint64_t prev = b ? bm_hash(e->bm, s->blocks[b - 1]) : 0;
        const int32_t *toks = s->tokens + (size_t)b * bs;
        bm_register_full(e->bm, s->blocks[b], bm_chain_hash(prev, toks, bs), toks);
    }
}

// One round: schedule, build the flat batch, forward, sample, postprocess. *decode_only says
// whether every scheduled sequence was a plain decode (multi-step decoding may then go on).
static tv_status run_round(tv_engine *e, bool *decode_only, tv_error *err) {
    int n_pre = 0;
    int n_items = sched_schedule(e->sched, e->items, &n_pre);
    e->stats.n_preemptions += (uint64_t)n_pre;
    e->stats.last_step_tokens = 0;
    *decode_only = n_items > 0;
    if (n_items == 0) return TV_OK;
    // build the flat batch
    int T = 0, L = 0;
    e->b_qstart[0] = 0;
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        int n = e->items[i].n_tokens;
        TV_CHECK(n >= 1 && s->n_computed + n <= s->n_tokens);
        TV_CHECK(s->n_blocks * e->cfg.block_size >= s->n_computed + n);
        for (int j = 0; j < n; j++) {
            e->b_tokens[T + j] = s->tokens[s->n_computed + j];
            e->b_pos[T + j] = s->n_computed + j;
        }
        T += n;
        e->b_qstart[i + 1] = T;
        e->b_ctx[i] = s->n_computed + n;
        e->b_tables[i] = s->blocks;
        if (n != 1 || s->n_computed + 1 != s->n_tokens) *decode_only = false;
        if (s->n_computed + n == s->n_tokens) {
            e->b_logit_rows[L] = T - 1;
            e->b_logit_seq[L++] = s;
        }
    }
    TV_CHECK(T <= e->cfg.max_batched_tokens);
    tv_batch b = {.n_tokens = T, .tokens = e->b_tokens, .positions = e->b_pos, .n_seqs = n_items,
                  .q_start = e->b_qstart, .ctx_len = e->b_ctx, .block_tables = e->b_tables, .n_logits = L,
                  .logit_rows = e->b_logit_rows};
    float *logits = NULL;
    tv_status st = forward_run(e->fwd, e->kv, &b, &logits, err);
    if (st) return st;
    e->stats.n_steps++;
    e->stats.n_batched_tokens += (uint64_t)T;
    e->stats.last_step_tokens = T;
    for (int i = 0; i < n_items; i++) {
        tv_seq *s = e->items[i].seq;
        if (s->n_computed == s->n_cached && s->n_cached > 0) e->stats.n_prefix_hit_tokens += (uint64_t)s->n_cached;
        if (s->n_computed < s->n_prompt) {
            int np = e->items[i].n_tokens;
            if (s->n_computed + np > s->n_prompt) np = s->n_prompt - s->n_computed;
            e->stats.n_prompt_tokens += (uint64_t)np;
        }
        s->n_computed += e->items[i].n_tokens;
        if (e->cfg.prefix_caching) register_full_blocks(e, s);
    }
    // sample
    const int V = e->hp->n_vocab;
    for (int r = 0; r < L; r++) {
        tv_seq *s = e->b_logit_seq[r];
        tv_request_output *o = new_out(e, s);
        if (!o) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        const int oi = e->n_outs - 1;
        tv_logprob *chosen = s->logprobs >= 0 ? &e->out_lp[oi] : NULL;
        tv_logprob *top = s->logprobs > 0 ? &e->out_top[(size_t)oi * TV_MAX_TOP_LOGPROBS] : NULL;
        int32_t tok = sampler_sample(s->sampler, logits + (size_t)r * V, chosen, top, s->logprobs > 0 ? s->logprobs : 0);
        e->out_ids[oi] = tok;
        if (!chosen) e->out_lp[oi].id = -1;
        if (s->n_tokens == s->cap) {
            int nc = s->cap * 2;
            int32_t *nt = realloc(s->tokens, (size_t)nc * sizeof(int32_t));
            if (!nt) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
            s->tokens = nt;
            s->cap = nc;
        }
        s->tokens[s->n_tokens++] = tok;
        sampler_accept(s->sampler, tok, false);
        e->stats.n_generated_tokens++;
        tv_finish_reason why = TV_FINISH_NONE;
        bool stop_tok = is_stop_token(e, s, tok);
        if (stop_tok) {
            why = TV_FINISH_STOP;
            s->stop_token = tok;
        } else if (s->n_tokens >= s->max_len || (s->max_new >= 0 && seq_n_generated(s) >= s->max_new)) {
            why = TV_FINISH_LENGTH;
        }
        // text: the stop token itself contributes none
        if (s->detok && !stop_tok) {
            const char *d;
            size_t n = tv_detok_push(s->detok, tok, &d);
            if (n && !held_append(s, d, n)) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        }
        if (s->detok && why != TV_FINISH_NONE) {
            const char *d;
            size_t n = tv_detok_flush(s->detok, &d);
            if (n && !held_append(s, d, n)) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        }
        bool stopped = false;
        size_t emit = held_emittable(s, why != TV_FINISH_NONE, &stopped);
        if (stopped) why = TV_FINISH_STOP;
        o->n_new = 1;
        o->n_generated = seq_n_generated(s);
        o->finish = why;
        o->stop_token = stop_tok ? tok : -1;
        o->n_top = s->logprobs > 0 ? s->logprobs : 0;
        if (emit > 0) {
            char *txt = malloc(emit + 1);
            if (!txt) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
            memcpy(txt, s->held, emit);
            txt[emit] = 0;
            o->text = txt;
            o->text_len = emit;
            memmove(s->held, s->held + emit, s->held_len - emit + 1);
            s->held_len -= emit;
        }
        if (stopped) s->held_len = 0;
        if (why != TV_FINISH_NONE) finish_seq(e, s, why);
    }
    return TV_OK;
}

// Points each output at its slots in the side arrays (stable until the next step).
static void link_outputs(tv_engine *e) {
    for (int i = 0; i < e->n_outs; i++) {
        tv_request_output *o = &e->outs[i];
        if (!o->n_new) continue;
        o->new_ids = &e->out_ids[i];
        if (e->out_lp[i].id >= 0) {   // logprobs were requested
            o->logprobs = &e->out_lp[i];
            o->top_logprobs = o->n_top > 0 ? &e->out_top[(size_t)i * TV_MAX_TOP_LOGPROBS] : NULL;
        }
    }
}

// Each output's text is a malloc'd copy, freed at the next step (or by tv_engine_free).
tv_status tv_engine_step(tv_engine *e, const tv_request_output **outs, int *n_outs, tv_error *err) {
    // free what finished last step, and last step's text copies
    for (int i = 0; i < e->n_outs; i++)
        if (e->outs[i].text_len) free((char *)e->outs[i].text);
    for (int i = 0; i < e->n_done; i++) seq_free(e->done[i]);
    e->n_done = 0;
    e->n_outs = 0;
    *outs = NULL;
    *n_outs = 0;
    // report aborts
    for (int i = 0; i < e->n_aborted; i++) {
        tv_seq *s = e->aborted[i];
        if (!new_out(e, s)) return err_fail(err, TV_ERR_NOMEM, "engine: out of memory");
        push_ptr(&e->done, &e->n_done, &e->cap_done, s);
    }
    e->n_aborted = 0;

    // one scheduling round, then (multi-step decoding) more rounds while the batch is pure decode
    bool decode_only = false;
    tv_status st = run_round(e, &decode_only, err);
    for (int r = 1; st == TV_OK && r < e->cfg.decode_steps && decode_only && sched_n_waiting(e->sched) == 0; r++)
        st = run_round(e, &decode_only, err);
    if (st) return st;
    link_outputs(e);
    *outs = e->outs;
    *n_outs = e->n_outs;
    return TV_OK;
}
