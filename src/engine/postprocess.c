// postprocess.c — the step's output table and the per-sequence text pipeline with stop strings.
#include "engine/postprocess.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/status.h"

// ---- output table ----

bool post_outputs_init(post_outputs *o, int cap) {
    memset(o, 0, sizeof *o);
    o->cap = cap;
    o->recs = calloc((size_t)cap, sizeof *o->recs);
    o->ids = calloc((size_t)cap, sizeof *o->ids);
    o->lp = calloc((size_t)cap, sizeof *o->lp);
    o->top = calloc((size_t)cap * POST_MAX_TOP_LOGPROBS, sizeof *o->top);
    return o->recs && o->ids && o->lp && o->top;
}

void post_outputs_clear(post_outputs *o) {
    for (int i = 0; i < o->n; i++)
        if (o->recs[i].text_len) free((char *)o->recs[i].text);
    o->n = 0;
}

void post_outputs_free(post_outputs *o) {
    if (o->recs) post_outputs_clear(o);
    free(o->recs);
    free(o->ids);
    free(o->lp);
    free(o->top);
    memset(o, 0, sizeof *o);
}

tv_request_output *post_output_new(post_outputs *o, const tv_seq *s) {
    TV_CHECK(o->n < o->cap);
    tv_request_output *r = &o->recs[o->n++];
    memset(r, 0, sizeof *r);
    r->req_id = s->id;
    r->user = s->user;
    r->text = "";
    r->stop_token = -1;
    r->n_prompt = s->n_prompt;
    r->n_generated = seq_n_generated(s);
    r->finish = s->finish;
    r->n_cached = s->n_cached;
    return r;
}

// ---- text and stop strings ----

// How much of s->held may be emitted now; *stopped when a stop string matched (the text from it on
// is dropped). Not final: holds back the longest suffix that could start a stop string, never
// splitting a UTF-8 sequence.
static size_t held_emittable(const tv_seq *s, bool is_final, bool *stopped) {
    *stopped = false;
    size_t best = s->held.n;
    for (int i = 0; i < s->n_stop; i++) {
        char *hit = memmem(s->held.p, s->held.n, s->stop[i], strlen(s->stop[i]));
        if (hit && (size_t)(hit - s->held.p) < best) { best = (size_t)(hit - s->held.p); *stopped = true; }
    }
    if (*stopped || is_final) return best;
    size_t keep = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t sl = strlen(s->stop[i]);
        for (size_t k = sl - 1 < s->held.n ? sl - 1 : s->held.n; k > keep; k--)
            if (!memcmp(s->held.p + s->held.n - k, s->stop[i], k)) { keep = k; break; }
    }
    size_t emit = s->held.n - keep;
    while (emit > 0 && emit < s->held.n && ((unsigned char)s->held.p[emit] & 0xC0) == 0x80) emit--;
    return emit;
}

tv_status post_text(tv_seq *s, int32_t tok, bool is_stop_token, bool is_final, char **text, size_t *len,
                    bool *stopped) {
    *text = NULL;
    *len = 0;
    *stopped = false;
    if (!s->detok) return TV_OK;
    const char *d;
    size_t n;
    if (!is_stop_token) {   // the stop token itself contributes no text
        if ((n = tv_detok_push(s->detok, tok, &d)) == TV_DETOK_NOMEM || (n && !strbuf_put(&s->held, d, n))) return TV_ERR_NOMEM;
    }
    if (is_final) {
        if ((n = tv_detok_flush(s->detok, &d)) == TV_DETOK_NOMEM || (n && !strbuf_put(&s->held, d, n))) return TV_ERR_NOMEM;
    }
    size_t emit = held_emittable(s, is_final, stopped);
    if (emit > 0) {
        if (!(*text = mem_malloc(emit + 1))) return TV_ERR_NOMEM;
        memcpy(*text, s->held.p, emit);
        (*text)[emit] = 0;
        *len = emit;
        memmove(s->held.p, s->held.p + emit, s->held.n - emit + 1);   // with the NUL
        s->held.n -= emit;
    }
    if (*stopped && s->held.p) {   // the text from the stop string on is dropped
        s->held.n = 0;
        s->held.p[0] = 0;
    }
    return TV_OK;
}
