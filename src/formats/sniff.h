// sniff.h — what a file looks like, in words, for the error messages of loaders that were given the
// wrong kind of file (a model as a tokenizer, a tokenizer as a model, a text file renamed .gguf).
#ifndef TV_FORMATS_SNIFF_H
#define TV_FORMATS_SNIFF_H

#include <stddef.h>

#include "tinyvllm.h"

typedef enum {
    SNIFF_UNREADABLE,      // cannot be opened or read
    SNIFF_EMPTY,
    SNIFF_GGUF_MODEL,      // GGUF with tensors
    SNIFF_GGUF_VOCAB,      // GGUF without tensors (a vocabulary-only file)
    SNIFF_GGUF_BROKEN,     // GGUF magic, but the header does not parse
    SNIFF_LLAMA2C_MODEL,   // a llama2.c checkpoint whose header and size agree
    SNIFF_LLAMA2C_TOKENIZER,
    SNIFF_JSON,
    SNIFF_TEXT,
    SNIFF_BINARY,          // none of the above
} sniff_kind;

// Reads path and returns its kind; desc (cap bytes, NUL-terminated) gets a phrase that can follow
// "is": "a GGUF model (llama, 5 layers, with a tokenizer)", "a llama2.c model checkpoint (dim 64,
// 4 layers, vocab 512)", "a text file (starts \"# tinyvllm\")", ...
sniff_kind sniff_file(const char *path, char *desc, size_t cap);

// After a loader failed with st on path: when the file is clearly another kind (a tokenizer or text
// given as a model; a model given as a tokenizer), err is rewritten to say so ("PATH is a llama2.c
// model checkpoint (...), not a tokenizer: ..."); otherwise err is left as the loader wrote it.
// Returns st.
tv_status sniff_explain_model_error(const char *path, tv_status st, tv_error *err);
tv_status sniff_explain_tokenizer_error(const char *path, tv_status st, tv_error *err);

#endif
