// tok_json.c — Hugging Face tokenizer.json loader (placeholder until implemented).
#include "tokenizer/tok_impl.h"
#include "util/status.h"

tv_tokenizer *tv_tokenizer_load_json(const char *path, tv_error *err) {
    tv_fail(err, TV_ERR_UNSUPPORTED, "%s: tokenizer.json loading is not implemented yet", path);
    return NULL;
}
