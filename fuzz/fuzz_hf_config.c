// fuzz_hf_config.c — libFuzzer target for a Hugging Face folder's config.json (model/hf.c): the
// input is written as config.json next to a fixed small model.safetensors (an embedding, a norm
// and a Q projection, so the name map, the Q/K permutation with fuzzed head counts and the
// vector conversions run), then the folder is opened; a success must give metadata and tensors
// that look up, a failure a message.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "model/hf.h"

static char g_dir[64];
static float g_zeros[64];

static tv_status fill_zeros(void *user, int64_t row0, int64_t n_rows, void *dst, tv_error *err) {
    (void)row0;
    (void)err;
    memset(dst, 0, (size_t)n_rows * (size_t)(intptr_t)user);
    return TV_OK;
}

static int setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_hf_config.%ld", (long)getpid());
    if (mkdir(g_dir, 0777) != 0) return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    st_writer *w = st_writer_create();
    tv_error err = {0};
    const int64_t emb[2] = {16, 8}, q[2] = {8, 8}, norm[1] = {8};
    st_writer_add(w, "model.embed_tokens.weight", ST_F32, 2, emb, fill_zeros, (void *)(intptr_t)32, &err);
    st_writer_add(w, "model.norm.weight", ST_BF16, 1, norm, fill_zeros, (void *)(intptr_t)16, &err);
    st_writer_add(w, "model.layers.0.self_attn.q_proj.weight", ST_F16, 2, q, fill_zeros, (void *)(intptr_t)16, &err);
    st_writer_add(w, "model.layers.0.self_attn.k_proj.bias", ST_F32, 1, norm, fill_zeros, (void *)(intptr_t)32, &err);
    tv_status st = st_writer_write(w, path, &err);
    st_writer_free(w);
    (void)g_zeros;
    return st ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = -2;
    if (ready == -2) ready = setup();
    if (ready) return 0;
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tv_error err = {0};
    hf_model *h = hf_open(g_dir, &err);
    if (!h) {
        if (err.code == TV_OK || err.msg[0] == 0) __builtin_trap();
        return 0;
    }
    if (!hf_metadata(h)) __builtin_trap();
    const tv_tensor *t = hf_find_tensor(h, "token_embd.weight");
    if (t && (t->ne[0] != 8 || t->ne[1] != 16)) __builtin_trap();
    const tv_tensor *n = hf_find_tensor(h, "output_norm.weight");
    if (n && n->type != TV_TYPE_F32) __builtin_trap();
    hf_close(h);
    return 0;
}
