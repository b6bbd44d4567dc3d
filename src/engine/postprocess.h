// postprocess.h — what a step hands back: its output records, and each sequence's text pipeline
// (detokenize the sampled token, hold back what could start a stop string, cut at a stop string).
//
// The output table has a fixed capacity chosen at engine creation (the engine bounds how many
// records one step makes), so adding a record never allocates and a failure can always be
// reported. A record's token and logprob slots live in side arrays at the same index; its text is
// a malloc'd copy owned by the table until post_outputs_clear.
#ifndef TV_ENGINE_POSTPROCESS_H
#define TV_ENGINE_POSTPROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/sequence.h"
#include "tinyvllm.h"

#define POST_MAX_TOP_LOGPROBS 20

typedef struct post_outputs {
    tv_request_output *recs;   // (cap)
    int32_t *ids;              // (cap) the token of each record
    tv_logprob *lp;            // (cap) its logprob when requested
    tv_logprob *top;           // (cap, POST_MAX_TOP_LOGPROBS) alternatives when requested
    int n, cap;
} post_outputs;

// Allocates the table for cap records. false when out of memory (free it either way).
bool post_outputs_init(post_outputs *o, int cap);
void post_outputs_free(post_outputs *o);
// Frees the records' text copies and empties the table.
void post_outputs_clear(post_outputs *o);
// A new record for s: no token, no text, s's finish reason and counters. The table must have room
// (an invariant of the engine's capacity bound).
tv_request_output *post_output_new(post_outputs *o, const tv_seq *s);

// Text for tok, the token just sampled for s (not yet in s->tokens): pushes it through s's
// detokenizer (a stop token adds no text), flushes the detokenizer when is_final, and appends to
// the held-back text, which is cut at the first stop string. On TV_OK, *text is a malloc'd
// NUL-terminated copy of what may be emitted now, or NULL when nothing (*len its length), and
// *stopped says a stop string matched (the held text from it on is dropped). TV_ERR_NOMEM: s's
// text state is no longer usable and s must finish (nothing was handed out).
tv_status post_text(tv_seq *s, int32_t tok, bool is_stop_token, bool is_final, char **text, size_t *len,
                    bool *stopped);

#endif
