// gen_corpus.c — regenerates the fuzz seed corpora in fuzz/corpus/ (small valid files).
// Not part of the build; run from the repository root after building the library:
//   cc -std=c17 -D_GNU_SOURCE -Iinclude -Isrc fuzz/gen_corpus.c build/libtinyvllm_core.a
//      $(pkg-config --libs libcjson libpcre2-8 libutf8proc) -lm -lpthread -o /tmp/gen_corpus && /tmp/gen_corpus
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/llama2c.h"

static void check(tv_status st, const tv_error *err) {
    if (st != TV_OK) { fprintf(stderr, "gen_corpus: %s\n", err->msg); exit(1); }
}

// Every metadata shape, several tensor types, alignment 64.
static void seed_all_types(const char *path) {
    gguf_writer *w = gguf_writer_create();
    tv_error err = { 0 };
    gguf_set_u32(w, "general.alignment", 64);
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_i32(w, "i", -7);
    gguf_set_u64(w, "u", 1ull << 40);
    gguf_set_f32(w, "f", 0.5f);
    gguf_set_bool(w, "b", true);
    gguf_value v = { .type = GGUF_TYPE_INT16, .v.i = -3 };
    gguf_set_value(w, "i16", &v);
    v = (gguf_value){ .type = GGUF_TYPE_FLOAT64, .v.f = 2.5 };
    gguf_set_value(w, "f64", &v);
    uint8_t bools[3] = { 1, 0, 1 };
    gguf_set_arr_data(w, "ab", GGUF_TYPE_BOOL, bools, 3);
    float fl[4] = { 1, 2, 3, 4 };
    gguf_set_arr_data(w, "af", GGUF_TYPE_FLOAT32, fl, 4);
    const char *strs[3] = { "x", "", "yz" };
    gguf_set_arr_str(w, "as", strs, NULL, 3);
    int32_t n1[2] = { 1, 2 };
    gguf_value inner = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT32, .arr_n = 2, .arr_data = n1 };
    gguf_value outer = { .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_ARRAY, .arr_n = 1, .arr_items = &inner };
    gguf_set_value(w, "nested", &outer);
    static uint8_t d[1024];
    for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)(i * 7);
    int64_t a[2] = { 4, 2 }, b[1] = { 32 }, c[1] = { 256 }, e[2] = { 8, 1 };
    check(gguf_add_tensor(w, "a", TV_TYPE_F32, 2, a, d, &err), &err);
    check(gguf_add_tensor(w, "b", TV_TYPE_Q8_0, 1, b, d, &err), &err);
    check(gguf_add_tensor(w, "c", TV_TYPE_Q4_K, 1, c, d, &err), &err);
    check(gguf_add_tensor(w, "e", TV_TYPE_F16, 2, e, d, &err), &err);
    check(gguf_writer_write(w, path, &err), &err);
    gguf_writer_free(w);
}

// A vocab-only file shaped like llama.cpp's (tokens, scores, token types, merges, special ids).
static void seed_vocab(const char *path) {
    gguf_writer *w = gguf_writer_create();
    tv_error err = { 0 };
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u32(w, "llama.vocab_size", 6);
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    const char *toks[6] = { "<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81" "a", "b" };
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    float sc[6] = { 0, 0, 0, 0, -1, -2 };
    gguf_set_arr_data(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, sc, 6);
    int32_t tt[6] = { 2, 3, 3, 6, 1, 1 };
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, tt, 6);
    const char *merges[1] = { "\xe2\x96\x81 a" };
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    check(gguf_writer_write(w, path, &err), &err);
    gguf_writer_free(w);
}

// A tiny llama2.c model: dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab 8, seq_len 4.
static void seed_llama2c(const char *path, int version, bool shared) {
    int32_t h[7] = { 8, 16, 1, 2, 1, shared ? 8 : -8, 4 };
    size_t n = 8 * 8 + 8 + 8 * 8 + 8 * 4 * 2 + 8 * 8 + 8 + 3 * 8 * 16 + 8 + (version == 0 ? 4 * 4 : 0) + (shared ? 0 : 64);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (version == 1) {
        uint8_t hdr[256] = { 0 };
        uint32_t magic = TV_LLAMA2C_MAGIC;
        int32_t ver = 1;
        h[5] = 8;
        memcpy(hdr, &magic, 4);
        memcpy(hdr + 4, &ver, 4);
        memcpy(hdr + 8, h, 28);
        hdr[36] = shared;
        fwrite(hdr, 1, 256, f);
    } else {
        fwrite(h, 4, 7, f);
    }
    for (size_t i = 0; i < n; i++) { float x = (float)((i * 37) % 17) / 17.0f - 0.5f; fwrite(&x, 4, 1, f); }
    fclose(f);
}

// A llama2.c tokenizer.bin with 8 tokens: max_token_length 7 (the fuzzer takes 1 + byte0 % 64 tokens).
static void seed_tokenizer(const char *path) {
    static const char *const PIECES[8] = { "<unk>", "\n<s>\n", "\n</s>\n", "<0x00>", " a", "b", "ab", " ab" };
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    int32_t max_len = 7;
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < 8; i++) {
        float score = -(float)i;
        int32_t len = (int32_t)strlen(PIECES[i]);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(PIECES[i], 1, (size_t)len, f);
    }
    fclose(f);
}

// A tiny valid model of arch (dim 8, 2 heads of 4, 1 KV head, ffn 16, 1 layer, vocab 8) with the
// family's tensors and keys: the loader fuzzer's seeds.
static void seed_family(const char *path, const char *arch) {
    gguf_writer *w = gguf_writer_create();
    tv_error err = { 0 };
    char k[96];
#define KEY(name) (snprintf(k, sizeof k, "%s.%s", arch, name), k)
    gguf_set_str(w, "general.architecture", arch);
    gguf_set_u32(w, KEY("context_length"), 16);
    gguf_set_u32(w, KEY("embedding_length"), 8);
    gguf_set_u32(w, KEY("block_count"), 1);
    gguf_set_u32(w, KEY("feed_forward_length"), 16);
    gguf_set_u32(w, KEY("attention.head_count"), 2);
    gguf_set_u32(w, KEY("attention.head_count_kv"), 1);
    gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (!strcmp(arch, "granite")) {
        gguf_set_f32(w, KEY("logit_scale"), 8.0f);
        gguf_set_f32(w, KEY("residual_scale"), 0.25f);
        gguf_set_f32(w, KEY("embedding_scale"), 12.0f);
        gguf_set_f32(w, KEY("attention.scale"), 0.125f);
    }
    if (!strcmp(arch, "mistral3")) {
        gguf_set_str(w, KEY("rope.scaling.type"), "yarn");
        gguf_set_f32(w, KEY("rope.scaling.factor"), 4.0f);
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), 8);
        gguf_set_f32(w, KEY("attention.temperature_scale"), 0.1f);
    }
    const bool is_phi3 = !strcmp(arch, "phi3");
    if (is_phi3) gguf_set_u32(w, KEY("rope.scaling.original_context_length"), 8);
#undef KEY
    static float d[8 * 32];
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) d[i] = (float)((int)(i * 37 % 17) - 8) / 64;
    struct { const char *name; int64_t ne0, ne1; } t[] = {
        {"token_embd.weight", 8, 8}, {"output_norm.weight", 8, 1}, {"blk.0.attn_norm.weight", 8, 1},
        {"blk.0.attn_q.weight", 8, 8}, {"blk.0.attn_k.weight", 8, 4}, {"blk.0.attn_v.weight", 8, 4},
        {"blk.0.attn_output.weight", 8, 8}, {"blk.0.ffn_norm.weight", 8, 1}, {"blk.0.ffn_gate.weight", 8, 16},
        {"blk.0.ffn_up.weight", 8, 16}, {"blk.0.ffn_down.weight", 16, 8},
        {"blk.0.attn_q.bias", 8, 1}, {"blk.0.attn_k.bias", 4, 1}, {"blk.0.attn_v.bias", 4, 1},   // qwen2
        {"blk.0.attn_q_norm.weight", 4, 1}, {"blk.0.attn_k_norm.weight", 4, 1},                 // qwen3
    };
    const int n = !strcmp(arch, "qwen2") ? 14 : !strcmp(arch, "qwen3") ? 16 : 11;
    for (int i = 0; i < n; i++) {
        if (i >= 11 && i < 14 && strcmp(arch, "qwen2")) continue;
        if (is_phi3 && (i == 3 || i == 4 || i == 5 || i == 8 || i == 9)) continue;   // fused below
        int64_t ne[2] = { t[i].ne0, t[i].ne1 };
        check(gguf_add_tensor(w, t[i].name, TV_TYPE_F32, t[i].ne1 > 1 ? 2 : 1, ne, d, &err), &err);
    }
    if (is_phi3) {   // fused Q, K, V and gate, up; LongRoPE factors (n_rot / 2 = 2)
        static const float factors[2] = { 1.0f, 2.0f };
        const int64_t qkv[2] = { 8, 16 }, up[2] = { 8, 32 }, rf[1] = { 2 };
        check(gguf_add_tensor(w, "blk.0.attn_qkv.weight", TV_TYPE_F32, 2, qkv, d, &err), &err);
        check(gguf_add_tensor(w, "blk.0.ffn_up.weight", TV_TYPE_F32, 2, up, d, &err), &err);
        check(gguf_add_tensor(w, "rope_factors_short.weight", TV_TYPE_F32, 1, rf, factors, &err), &err);
        check(gguf_add_tensor(w, "rope_factors_long.weight", TV_TYPE_F32, 1, rf, factors, &err), &err);
    }
    check(gguf_writer_write(w, path, &err), &err);
    gguf_writer_free(w);
}

// A tiny valid Gemma model (dim 8, 2 heads of 4, 1 KV head, ffn 16, 3 layers, vocab 8, tied output)
// with the family's tensors and keys: post-norms, soft-caps and a sliding window (gemma2); q/k norms,
// freq_base_swa and a sliding-window period (gemma3); gemma4's per-layer pattern, per-layer KV
// heads, the global layer's rope_freqs and V = K, and with is_e2b its E2B/E4B parts: per-layer inputs
// of 4 and the last layer sharing layer 0's KV.
static void seed_gemma(const char *path, const char *arch, bool is_e2b) {
    gguf_writer *w = gguf_writer_create();
    tv_error err = { 0 };
    char k[96], name[64];
    const bool g3 = !strcmp(arch, "gemma3"), g4 = !strcmp(arch, "gemma4");
#define KEY(name) (snprintf(k, sizeof k, "%s.%s", arch, name), k)
    gguf_set_str(w, "general.architecture", arch);
    gguf_set_u32(w, KEY("context_length"), 16);
    gguf_set_u32(w, KEY("embedding_length"), 8);
    gguf_set_u32(w, KEY("block_count"), 3);
    gguf_set_u32(w, KEY("feed_forward_length"), 16);
    gguf_set_u32(w, KEY("attention.head_count"), 2);
    gguf_set_u32(w, KEY("attention.key_length"), 4);
    gguf_set_u32(w, KEY("attention.value_length"), 4);
    gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    gguf_set_u32(w, KEY("attention.sliding_window"), 4);
    if (!g4) gguf_set_u32(w, KEY("attention.head_count_kv"), 1);
    if (!strcmp(arch, "gemma2")) {
        gguf_set_f32(w, KEY("attn_logit_softcapping"), 50.0f);
        gguf_set_f32(w, KEY("final_logit_softcapping"), 30.0f);
    }
    if (g3) {
        gguf_set_u32(w, KEY("attention.sliding_window_pattern"), 3);
        gguf_set_f32(w, KEY("rope.freq_base_swa"), 10000.0f);
    }
    if (g4) {
        const bool pattern[3] = { true, false, true };
        const int32_t kv[3] = { 1, 1, 1 };
        gguf_set_arr_data(w, KEY("attention.sliding_window_pattern"), GGUF_TYPE_BOOL, pattern, 3);
        gguf_set_arr_data(w, KEY("attention.head_count_kv"), GGUF_TYPE_INT32, kv, 3);
        gguf_set_u32(w, KEY("attention.key_length_swa"), 4);
        gguf_set_u32(w, KEY("attention.value_length_swa"), 4);
        gguf_set_f32(w, KEY("final_logit_softcapping"), 30.0f);
        gguf_set_u32(w, KEY("embedding_length_per_layer_input"), is_e2b ? 4 : 0);
        if (is_e2b) gguf_set_u32(w, KEY("attention.shared_kv_layers"), 1);
    }
#undef KEY
    static float d[8 * 32];
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) d[i] = (float)((int)(i * 37 % 17) - 8) / 64;
    static const float rope_freqs[2] = { 1.0f, 1e30f };
#define ADD(nm, ne0, ne1, data)                                                                           \
    do {                                                                                                  \
        const int64_t ne_[2] = { ne0, ne1 };                                                              \
        check(gguf_add_tensor(w, nm, TV_TYPE_F32, ne1 > 1 ? 2 : 1, ne_, data, &err), &err);               \
    } while (0)
    ADD("token_embd.weight", 8, 8, d);
    ADD("output_norm.weight", 8, 1, d);
    if (g4) ADD("rope_freqs.weight", 2, 1, rope_freqs);
    if (is_e2b) {
        ADD("per_layer_token_embd.weight", 12, 8, d);
        ADD("per_layer_model_proj.weight", 8, 12, d);
        ADD("per_layer_proj_norm.weight", 4, 1, d);
    }
    for (int l = 0; l < 3; l++) {
        const bool own_kv = !is_e2b || l < 2;
#define L(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        ADD(L("attn_norm.weight"), 8, 1, d);
        ADD(L("attn_q.weight"), 8, 8, d);
        if (own_kv) ADD(L("attn_k.weight"), 8, 4, d);
        if (own_kv && !(g4 && l == 1)) ADD(L("attn_v.weight"), 8, 4, d);   // gemma4's global layer: V = K
        ADD(L("attn_output.weight"), 8, 8, d);
        if (g3 || g4) ADD(L("attn_q_norm.weight"), 4, 1, d);
        if ((g3 || g4) && own_kv) ADD(L("attn_k_norm.weight"), 4, 1, d);
        ADD(L("post_attention_norm.weight"), 8, 1, d);
        ADD(L("ffn_norm.weight"), 8, 1, d);
        ADD(L("ffn_gate.weight"), 8, 16, d);
        ADD(L("ffn_up.weight"), 8, 16, d);
        ADD(L("ffn_down.weight"), 16, 8, d);
        ADD(L("post_ffw_norm.weight"), 8, 1, d);
        if (g4) ADD(L("layer_output_scale.weight"), 1, 1, d);
        if (is_e2b) {
            ADD(L("inp_gate.weight"), 8, 4, d);
            ADD(L("proj.weight"), 4, 8, d);
            ADD(L("post_norm.weight"), 8, 1, d);
        }
#undef L
    }
#undef ADD
    check(gguf_writer_write(w, path, &err), &err);
    gguf_writer_free(w);
}

int main(void) {
    seed_all_types("fuzz/corpus/gguf/all-types");
    seed_vocab("fuzz/corpus/gguf/vocab");
    seed_llama2c("fuzz/corpus/llama2c/v0-shared", 0, true);
    seed_llama2c("fuzz/corpus/llama2c/v0-separate", 0, false);
    seed_llama2c("fuzz/corpus/llama2c/v1-separate", 1, false);
    seed_tokenizer("fuzz/corpus/llama2c/tokenizer-8");
    static const char *const FAMILIES[] = { "llama", "qwen2", "qwen3", "smollm3", "granite", "mistral3", "phi3" };
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++) {
        char path[96];
        snprintf(path, sizeof path, "fuzz/corpus/model/%s", FAMILIES[i]);
        seed_family(path, FAMILIES[i]);
    }
    seed_gemma("fuzz/corpus/model/gemma2", "gemma2", false);
    seed_gemma("fuzz/corpus/model/gemma3", "gemma3", false);
    seed_gemma("fuzz/corpus/model/gemma4", "gemma4", false);
    seed_gemma("fuzz/corpus/model/gemma4-e2b", "gemma4", true);
    return 0;
}
