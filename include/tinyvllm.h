// tinyvllm.h — the public C API of tinyvllm.
//
// Conventions: opaque handles with create/free pairs (free(NULL) is a no-op); functions that can
// fail return tv_status and fill a caller-owned tv_error with one line saying what went wrong.
// The library never prints and never exits.
#ifndef TINYVLLM_H
#define TINYVLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tv_status {
    TV_OK = 0,
    TV_ERR_IO,           // file missing, unreadable, mmap failed
    TV_ERR_FORMAT,       // bytes that do not follow the format (bad magic, truncation, bad offsets)
    TV_ERR_UNSUPPORTED,  // valid but not supported (unknown tensor type, architecture)
    TV_ERR_INVALID,      // bad argument or inconsistent values (shapes, hyperparameters)
    TV_ERR_NOMEM,        // allocation failed or a budget is exhausted
    TV_ERR_RANGE,        // a request exceeds a limit (prompt longer than the context)
    TV_ERR_STATE,        // call not valid in the current state
} tv_status;

typedef struct tv_error {
    tv_status code;
    char msg[512];
} tv_error;

const char *tv_status_str(tv_status s);

#ifdef __cplusplus
}
#endif
#endif
