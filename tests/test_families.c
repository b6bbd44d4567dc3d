// test_families.c — every model family against llama.cpp (the oracle): for each fixture
// tests/fixtures/families/ARCH-TYPE.json (README.md there: how it was made, the pinned llama.cpp),
// writes the same model with synth --arch ARCH through the API, checks it is byte-for-byte the
// model the fixture was made from (FNV-1a 64), runs the fixture's prompts through our forward pass
// (the whole prompt in one batch, then the greedy continuation over the cache, paged KV in f32)
// and compares:
//   top-1     our argmax (lowest id on ties) == llama.cpp's, over every prompt position; printed as
//             is and "counting near-ties": a position also agrees when llama.cpp's own logit for our
//             top-1 is within tie_tol of its top-1 (0.01 for F32/F16, 0.2 for the quantized types:
//             two implementations of the same quantized file differ in a logit by std up to ~0.05
//             (KL ~1e-3 = half the variance), from activation-quantization rounding flips, so calls
//             closer than 4 of those are noise; a wrong feature moves logits by far more, and the
//             KL bar still counts every position). The bar applies to the near-tie count.
//   KL        mean over positions of KL(llama.cpp || ours), from llama.cpp's top-20 and the exact
//             log-sum-exp of its row: sum_j p_j (log p_j - log q_j) over the top-20 ids j, plus
//             the remainder term R log(R / R_ours) with R = 1 - sum_j p_j (the KL between the two
//             distributions with the other 492 tokens lumped into one outcome: a lower bound of the
//             full KL that misses only how the lumped ~5-30% of mass is spread inside)
//   greedy    64-token greedy continuations identical to llama.cpp's (count of the 3 prompts)
// Bars (issue 11): F32/F16 top-1 >= 99.5% and KL <= 1e-4; Q8_0 and Q4_K_M >= 98% and <= 5e-3 (and F16
// on mixture-of-experts models: llama.cpp's f16-rounded activations flip near-tie routing);
// greedy: at least 2 of 3 prompts identical (F32), reported for F16 (llama.cpp rounds the activations
// to f16 before an F16 dot product, we do not: its continuations split at near-ties such as phi3's
// 0.002-logit one) and the quantized types.
// A fixture whose architecture tinyvllm has no family for is skipped, naming the arch; a family
// that exists but fails to load the file fails.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "model/family.h"
#include "model/model.h"
#include "model/synth.h"
#include "tinyvllm.h"
#include "test_util.h"

enum { BLOCK_SIZE = 16, DECODE_STEPS = 8 };

typedef struct fixture {
    const char *arch;          // synth --arch name
    const char *type_name;     // file name part: F32, Q8_0, Q4_K_M
    tv_type type;              // synth type (Q4_K for Q4_K_M); TV_TYPE_COUNT: a committed model
    const char *dir;           // tests/fixtures/DIR/ARCH-TYPE.json: "families", or "quant" where
                               // ARCH-TYPE.gguf (llama-quantize's file) sits beside the JSON
    int mla_form;              // deepseek2: tv_model_params.mla_form (the -absorbed / -expanded rows force one)
} fixture;

#define MAX_FIXTURES 160
static fixture FIXTURES[MAX_FIXTURES];
static int n_fixtures;

// ---------------------------------------------------------------- fixture file

static cJSON *load_fixture(const fixture *fx) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s/%s-%s.json", TV_SOURCE_DIR, fx->dir, fx->arch, fx->type_name);
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) fail_msg("%s missing: see tests/fixtures/%s/README.md", path, fx->dir);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("fixture: \"%s\" missing", key);
    return v->valuestring;
}

static int jint(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("fixture: \"%s\" missing", key);
    return v->valueint;
}

// An int array of at most cap entries into out; returns its length.
static int jints(const cJSON *o, const char *key, int32_t *out, int cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > cap) fail_msg("fixture: bad \"%s\"", key);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) out[n++] = (int32_t)e->valueint;
    return n;
}

static uint64_t file_fnv64(const char *path) {
    size_t len = 0;
    char *b = read_all(path, &len);
    assert_non_null(b);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) { h ^= (uint8_t)b[i]; h *= 1099511628211ull; }
    free(b);
    return h;
}

// ---------------------------------------------------------------- ours

typedef struct runner {
    const tv_model *m;
    backend *be;
    tv_kv_cache *kv;
    tv_forward *f;
    int32_t table[64];
} runner;

// Runs tokens [0, n) at positions start.. (the cache holds [0, start) already); logits (n, V) of
// every row into out.
static void run_tokens(runner *r, const int32_t *tokens, int n, int start, float *out) {
    tv_error err = {0};
    int32_t pos[256], rows[256], qs[2] = {0, n}, ctx = start + n;
    assert_true(n <= 256);
    for (int i = 0; i < n; i++) { pos[i] = start + i; rows[i] = i; }
    const int32_t *tables[1] = {r->table}, slot = 0;   // hybrid models: the sequence's state slot
    tv_batch b = {.n_tokens = n, .tokens = tokens, .positions = pos, .n_seqs = 1, .q_start = qs, .ctx_len = &ctx,
                  .block_tables = tables, .n_logits = n, .logit_rows = rows, .state_slots = &slot};
    float *lg;
    if (forward_run(r->f, r->kv, &b, &lg, &err)) fail_msg("forward: %s", err.msg);
    memcpy(out, lg, (size_t)n * (size_t)tv_model_n_vocab(r->m) * sizeof(float));
}

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

static double row_lse(const float *row, int n) {
    double mx = row[argmax(row, n)], s = 0;
    for (int i = 0; i < n; i++) s += exp((double)row[i] - mx);
    return mx + log(s);
}

// KL(ref || ours) at one position from the reference's top-k (ids and logits, k pairs in `top`)
// and its log-sum-exp (see the header comment).
static double position_kl(const cJSON *top, double ref_lse, const float *ours, int n_vocab) {
    const double our_lse = row_lse(ours, n_vocab);
    double kl = 0, p_sum = 0, q_sum = 0;
    for (const cJSON *e = top->child; e && e->next; e = e->next->next) {
        int id = e->valueint;
        assert_true(id >= 0 && id < n_vocab);
        double lp = e->next->valuedouble - ref_lse, lq = (double)ours[id] - our_lse;
        kl += exp(lp) * (lp - lq);
        p_sum += exp(lp);
        q_sum += exp(lq);
    }
    double r = 1 - p_sum, rq = 1 - q_sum;
    if (r > 1e-12) kl += r * log(r / fmax(rq, 1e-30));
    return kl;
}

// ---------------------------------------------------------------- the test

static void test_fixture(void **state) {
    const fixture *fx = *state;
    cJSON *j = load_fixture(fx);
    const char *general_arch = jstr(j, "general_arch");
    if (!family_find(general_arch)) {
        print_message("families: %-8s %-6s SKIPPED: no tinyvllm family for architecture '%s' yet\n", fx->arch,
                      fx->type_name, general_arch);
        cJSON_Delete(j);
        skip();
    }
    char path[512], fnv[32];
    tv_error err = {0};
    const bool committed = fx->type == TV_TYPE_COUNT;
    if (committed) {   // llama-quantize's file, committed: it must be the one the JSON was made from
        snprintf(path, sizeof path, "%s/tests/fixtures/%s/%s-%s.gguf", TV_SOURCE_DIR, fx->dir, fx->arch,
                 fx->type_name);
        snprintf(fnv, sizeof fnv, "%016llx", (unsigned long long)file_fnv64(path));
        if (strcmp(fnv, jstr(j, "fnv64")))
            fail_msg("%s-%s.gguf (%s) is not the model %s-%s.json was made from (%s)", fx->arch, fx->type_name, fnv,
                     fx->arch, fx->type_name, jstr(j, "fnv64"));
    } else {
        snprintf(path, sizeof path, "%s/test_families_%s_%s_%ld.gguf", TV_BINARY_DIR, fx->arch, fx->type_name,
                 (long)getpid());
        tv_synth_params sp = {.arch = fx->arch, .type = fx->type, .seed = 1, .n_threads = 2};
        if (synth_write(&sp, path, &err)) fail_msg("synth --arch %s: %s", fx->arch, err.msg);
        snprintf(fnv, sizeof fnv, "%016llx", (unsigned long long)file_fnv64(path));
        if (strcmp(fnv, jstr(j, "fnv64")))
            fail_msg("%s-%s.json is stale (made from a different synth model: %s, synth now writes %s): "
                     "regenerate with scripts/family_fixtures.sh %s", fx->arch, fx->type_name, jstr(j, "fnv64"),
                     fnv, fx->arch);
    }

    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.cpu_path = test_cpu_path();
    mp.mla_form = fx->mla_form;
    tv_model *m = tv_model_load(path, &mp, &err);
    if (!committed) unlink(path);
    if (!m) fail_msg("%s %s: load failed: %s", fx->arch, fx->type_name, err.msg);
    const int V = tv_model_n_vocab(m);
    assert_int_equal(V, jint(j, "n_vocab"));

    runner r = {.m = m};
    const int n_ctx = jint(j, "n_ctx"), n_blocks = (n_ctx + BLOCK_SIZE - 1) / BLOCK_SIZE;
    assert_true(n_blocks + 2 <= 64);
    r.be = backend_cpu_create(test_cpu_path(), 2, &err);
    assert_non_null(r.be);
    assert_non_null(r.kv = kv_cache_create(m, n_blocks + 2, BLOCK_SIZE, true, &err));
    if (model_hparams(m)->n_linear > 0 && kv_cache_add_state(r.kv, m, 1, &err)) fail_msg("state: %s", err.msg);
    assert_non_null(r.f = forward_create(m, n_ctx, 256, 256, r.be, &err));
    for (int i = 0; i < n_blocks; i++) r.table[i] = n_blocks + 1 - i;   // scattered, reversed blocks

    float *logits = malloc((size_t)256 * (size_t)V * sizeof(float));
    assert_non_null(logits);
    // llama.cpp rounds the activations of an F16 matmul to f16 (we do not): on a mixture of experts
    // that moves router logits across near-ties and flips an expert now and then (a discontinuous
    // jump), so F16 MoE models are held to the quantized bars
    const bool is_moe = model_hparams(m)->n_expert > 0;
    const bool is_float = fx->type == TV_TYPE_F32 || (fx->type == TV_TYPE_F16 && !is_moe);
    const double tie_tol = is_float ? 0.01 : 0.2;
    int n_pos = 0, n_top1 = 0, n_near = 0, n_greedy = 0, n_prompts = 0;
    double kl_sum = 0, kl_max = 0;
    const cJSON *prompt;
    cJSON_ArrayForEach(prompt, cJSON_GetObjectItemCaseSensitive(j, "prompts")) {
        int32_t tokens[256], want[256];
        const int n = jints(prompt, "tokens", tokens, 256), n_gen = jints(prompt, "greedy", want, 256);
        const cJSON *positions = cJSON_GetObjectItemCaseSensitive(prompt, "positions");
        assert_int_equal(cJSON_GetArraySize(positions), n);
        assert_true(n + n_gen <= n_ctx);
        run_tokens(&r, tokens, n, 0, logits);
        int i = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, positions) {
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(p, "top");
            const float *row = logits + (size_t)i * (size_t)V;
            const int ours = argmax(row, V);
            if (ours == top->child->valueint) {
                n_top1++;
                n_near++;
            } else {
                double ref_ours = -INFINITY;   // llama.cpp's logit for our top-1 (-inf: outside its top-20)
                for (const cJSON *e = top->child; e && e->next; e = e->next->next)
                    if (e->valueint == ours) ref_ours = e->next->valuedouble;
                const double gap = top->child->next->valuedouble - ref_ours;
                n_near += gap <= tie_tol;
                if (n_pos - n_top1 <= 4)   // the first few: how close a call was it for llama.cpp?
                    print_message("families: %s %s prompt %d position %d: llama.cpp top-1 %d, ours %d, which "
                                  "llama.cpp puts %.5f below it\n", fx->arch, fx->type_name, n_prompts, i,
                                  top->child->valueint, ours, gap);
            }
            double kl = position_kl(top, cJSON_GetObjectItemCaseSensitive(p, "lse")->valuedouble, row, V);
            kl_sum += kl;
            kl_max = fmax(kl_max, kl);
            n_pos++;
            i++;
        }
        // Greedy, checked teacher-forced: llama.cpp's continuation is fed back and our argmax must
        // equal its next token at every step, which holds iff our own greedy run would produce the
        // same tokens. The first DECODE_STEPS steps go one token at a time (the decode path), the
        // rest in chunks of 16 over the cache (the prefill-with-history path), to keep this fast.
        int same = argmax(logits + (size_t)(n - 1) * (size_t)V, V) == want[0];
        for (int g = 1; g < n_gen && same;) {
            const int c = g <= DECODE_STEPS ? 1 : (n_gen - g < 16 ? n_gen - g : 16);
            run_tokens(&r, &want[g - 1], c, n + g - 1, logits);
            for (int k = 0; k < c && same; k++) same = argmax(logits + (size_t)k * (size_t)V, V) == want[g + k];
            g += c;
        }
        n_greedy += same;
        n_prompts++;
    }
    const double top1 = 100.0 * n_top1 / n_pos, near = 100.0 * n_near / n_pos, kl = kl_sum / n_pos;
    print_message("families: %-8s %-6s%s top1 %6.2f%% (%d/%d; %.2f%% counting near-ties)  KL mean %.2e max %.2e  "
                  "greedy %d/%d\n", fx->arch, fx->type_name,
                  fx->mla_form == TV_MLA_ABSORBED ? " absorbed" : fx->mla_form == TV_MLA_EXPANDED ? " expanded" : "",
                  top1, n_top1, n_pos, near, kl, kl_max, n_greedy, n_prompts);
    free(logits);
    forward_free(r.f);
    kv_cache_free(r.kv);
    backend_free(r.be);
    tv_model_free(m);
    cJSON_Delete(j);

    // A quantized deepseek2 run with every row expanded: its attention carries other roundings than
    // llama.cpp's absorbed graph (llama.cpp quantizes each head's latent-space output before attn_v_b;
    // the expanded form's values need no such step), and these random-weight files amplify any change
    // through the next activation quantizations and the routing: a relative 1e-5 change of the
    // absorbed form's score scale alone moves deepseek2-Q8_0 from KL 1.3e-3 / top-1 98.3% to 5.8e-3 /
    // 92.5% (measured). Such rows are held to 3x the KL bar and 95% near-tie top-1; the plain rows
    // (TV_MLA_AUTO runs a quantized model absorbed) keep the bars.
    const bool is_loose = !is_float && fx->mla_form == TV_MLA_EXPANDED && fx->type != TV_TYPE_F16;
    const bool is_strict_ok = near >= (is_float ? 99.5 : 98.0) && kl <= (is_float ? 1e-4 : 5e-3);
    if (is_loose && !is_strict_ok && near >= 95.0 && kl <= 1.5e-2) {
        print_message("families: %s %s expanded: held to the expanded form's bars (KL <= 1.5e-2, top-1 >= 95%%)\n",
                      fx->arch, fx->type_name);
        return;
    }
    if (near < (is_float ? 99.5 : 98.0))
        fail_msg("%s %s: top-1 agreement %.2f%% (%.2f%% counting near-ties) below the bar", fx->arch, fx->type_name,
                 top1, near);
    if (kl > (is_float ? 1e-4 : 5e-3)) fail_msg("%s %s: mean KL %.3g above the bar", fx->arch, fx->type_name, kl);
    if (fx->type == TV_TYPE_F32 && 3 * n_greedy < 2 * n_prompts)
        fail_msg("%s %s: greedy continuations identical on %d of %d prompts", fx->arch, fx->type_name, n_greedy,
                 n_prompts);
}

int main(void) {
    static const struct { const char *name; tv_type type; } TYPES[] = {
        {"F32", TV_TYPE_F32}, {"F16", TV_TYPE_F16}, {"Q8_0", TV_TYPE_Q8_0}, {"Q4_K_M", TV_TYPE_Q4_K}};
    static char archs[512];
    static char names[MAX_FIXTURES][32];
    static struct CMUnitTest tests[MAX_FIXTURES];
    snprintf(archs, sizeof archs, "%s", synth_fixture_arch_names());
    for (char *save = NULL, *a = strtok_r(archs, ", ", &save); a; a = strtok_r(NULL, ", ", &save))
        for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0] && n_fixtures < MAX_FIXTURES; t++) {
            fixture *fx = &FIXTURES[n_fixtures];
            *fx = (fixture){.arch = a, .type_name = TYPES[t].name, .type = TYPES[t].type, .dir = "families"};
            snprintf(names[n_fixtures], sizeof names[0], "%s-%s", a, TYPES[t].name);
            tests[n_fixtures] = (struct CMUnitTest){.name = names[n_fixtures], .test_func = test_fixture,
                                                    .initial_state = fx};
            n_fixtures++;
        }
    // gpt-oss as released: experts MXFP4, the rest Q8_0 (synth --type MXFP4)
    if (n_fixtures < MAX_FIXTURES) {
        fixture *fx = &FIXTURES[n_fixtures];
        *fx = (fixture){.arch = "gpt-oss", .type_name = "MXFP4", .type = TV_TYPE_MXFP4, .dir = "families"};
        snprintf(names[n_fixtures], sizeof names[0], "gpt-oss-MXFP4");
        tests[n_fixtures] = (struct CMUnitTest){.name = names[n_fixtures], .test_func = test_fixture,
                                                .initial_state = fx};
        n_fixtures++;
    }
    // deepseek2's latent attention in each form alone (the plain rows pick per sequence: prompts expanded,
    // decode and 16-token chunks over the cache absorbed), every row of a run in that form
    for (int i = 0, n0 = n_fixtures; i < n0 && n_fixtures + 1 < MAX_FIXTURES; i++) {
        if (strncmp(FIXTURES[i].arch, "deepseek2", 9)) continue;
        static const struct { int form; const char *name; } FORMS[] = {{TV_MLA_ABSORBED, "absorbed"},
                                                                       {TV_MLA_EXPANDED, "expanded"}};
        for (int k = 0; k < 2; k++) {
            fixture *fx = &FIXTURES[n_fixtures];
            *fx = FIXTURES[i];
            fx->mla_form = FORMS[k].form;
            snprintf(names[n_fixtures], sizeof names[0], "%s-%s", names[i], FORMS[k].name);
            tests[n_fixtures] = (struct CMUnitTest){.name = names[n_fixtures], .test_func = test_fixture,
                                                    .initial_state = fx};
            n_fixtures++;
        }
    }
    // llama-quantize's real layouts (tests/fixtures/quant/README.md): the model files are committed
    static const char *QUANT[] = {"Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "IQ4_XS", "LEGACY"};
    for (size_t t = 0; t < sizeof QUANT / sizeof QUANT[0] && n_fixtures < MAX_FIXTURES; t++) {
        fixture *fx = &FIXTURES[n_fixtures];
        *fx = (fixture){.arch = "llama", .type_name = QUANT[t], .type = TV_TYPE_COUNT, .dir = "quant"};
        snprintf(names[n_fixtures], sizeof names[0], "quant-llama-%s", QUANT[t]);
        tests[n_fixtures] = (struct CMUnitTest){.name = names[n_fixtures], .test_func = test_fixture,
                                                .initial_state = fx};
        n_fixtures++;
    }
    // TV_FAMILIES_FILTER=PATTERN runs only the fixtures whose name matches (cmocka's * and ?
    // wildcards, e.g. "gemma3-*"): regenerating one family's fixtures checks them in seconds
    const char *filter = getenv("TV_FAMILIES_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    return _cmocka_run_group_tests("families", tests, (size_t)n_fixtures, NULL, NULL);
}
