// fuzz_model.c — libFuzzer target for the model loader (model.c with every family of registry.c):
// the input is written to a file and loaded as a model. Whatever the bytes, tv_model_load either
// returns a model (then freed) or fails with a code and a message: never a crash, a read outside
// the file, or a leak. Seeds: fuzz/corpus/model/ (a tiny valid model per family, gen_corpus.c).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tinyvllm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_model-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    tv_model_params p;
    tv_model_params_default(&p);
    p.no_repack = true;   // the loader's checks are the target, not the repacking
    p.n_threads = 1;
    tv_error err = {0};
    tv_model *m = tv_model_load(path, &p, &err);
    if (!m && (err.code == TV_OK || err.msg[0] == 0)) __builtin_trap();   // failures must explain themselves
    tv_model_free(m);
    return 0;
}
