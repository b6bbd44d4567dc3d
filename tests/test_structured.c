// test_structured.c — the constraint engine (src/structured/): regex, GBNF, JSON Schema and choice
// front-ends accept and reject what they should; token masks from the trie walk equal a brute-force
// check of every token; random generation under the mask yields strings an independent checker
// (PCRE2 for regexes, cJSON + hand checks for schemas) accepts; errors carry positions.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "structured/constraint.h"
#include "structured/grammar.h"
#include "structured/matcher.h"
#include "util/rng.h"
#include "test_util.h"

// A toy vocabulary: ids 0..255 the single bytes, then multi-byte pieces, then EOS, then a control.
static const char *const k_multi[] = {"{\"", "\"}", "\":", "\": ", ", \"", "true", "false", "null", "12", "345", "0.",
                                      "ab", "abc", "abcd", "\n  ", "  ", "\"a\"", "name", "\"name\"", "-1", "\xc3\xa9",
                                      "\xe2\x82\xac", "[1", ",2", "]", "}", "\\\"", "\\n", "2024-", "01-", "T12:"};
#define N_MULTI (sizeof k_multi / sizeof k_multi[0])
#define TOY_EOS (256 + (int32_t)N_MULTI)
#define TOY_CTRL (TOY_EOS + 1)
#define TOY_N (TOY_CTRL + 1)

static matcher_vocab *g_vocab;

static int setup(void **state) {
    (void)state;
    static char bytes[256];
    const char *piece[TOY_N];
    size_t len[TOY_N];
    bool text[TOY_N], eog[TOY_N];
    for (int i = 0; i < TOY_N; i++) {
        text[i] = i < TOY_EOS;
        eog[i] = i == TOY_EOS;
        if (i < 256) { bytes[i] = (char)i; piece[i] = &bytes[i]; len[i] = 1; }
        else if (i < TOY_EOS) { piece[i] = k_multi[i - 256]; len[i] = strlen(k_multi[i - 256]); }
        else { piece[i] = "</s>"; len[i] = 4; }
    }
    tv_error err = {0};
    g_vocab = matcher_vocab_create(TOY_N, piece, len, text, eog, &err);
    return g_vocab ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    matcher_vocab_free(g_vocab);
    return 0;
}

static matcher_grammar *compile(tv_constraint_kind kind, const char *spec) {
    tv_error err = {0};
    gram *g = constraint_parse(kind, spec, strlen(spec), &err);
    if (!g) fail_msg("compile %s: %s", spec, err.msg);
    matcher_grammar *cg = matcher_grammar_compile(g, g_vocab, &err);
    gram_free(g);
    assert_non_null(cg);
    return cg;
}

// Whether the grammar accepts text exactly (fed byte by byte).
static bool accepts(matcher_grammar *cg, const char *text, size_t n) {
    matcher *m = matcher_create(cg, NULL);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) ok = matcher_advance(m, (uint8_t)text[i]);
    ok = ok && matcher_is_accepting(m) && matcher_advance(m, TOY_EOS);
    matcher_free(m);
    return ok;
}

static void expect(tv_constraint_kind kind, const char *spec, const char *const *yes, const char *const *no) {
    matcher_grammar *cg = compile(kind, spec);
    for (; yes && *yes; yes++)
        if (!accepts(cg, *yes, strlen(*yes))) fail_msg("%s should accept '%s'", spec, *yes);
    for (; no && *no; no++)
        if (accepts(cg, *no, strlen(*no))) fail_msg("%s should reject '%s'", spec, *no);
    matcher_grammar_free(cg);
}

static void expect_error(tv_constraint_kind kind, const char *spec, const char *needle) {
    tv_error err = {0};
    assert_int_not_equal(tv_constraint_check(kind, spec, &err), TV_OK);
    if (!strstr(err.msg, needle)) fail_msg("error for %s: '%s' lacks '%s'", spec, err.msg, needle);
}

static void test_regex(void **state) {
    (void)state;
    expect(TV_CONSTRAINT_REGEX, "a|bc*", (const char *[]){"a", "b", "bccc", NULL}, (const char *[]){"", "ab", "c", NULL});
    expect(TV_CONSTRAINT_REGEX, "[0-9]{2,3}-x?", (const char *[]){"12-", "123-x", NULL}, (const char *[]){"1-", "1234-", NULL});
    expect(TV_CONSTRAINT_REGEX, "^(?:ab)+$", (const char *[]){"ab", "abab", NULL}, (const char *[]){"a", "aba", NULL});
    expect(TV_CONSTRAINT_REGEX, "[^a-z]\\d\\s.", (const char *[]){"A1 x", "\xc3\xa9" "0\tz", NULL},
           (const char *[]){"a1 x", "A1 \n", NULL});
    expect(TV_CONSTRAINT_REGEX, "\\u00e9|\\x41{2}|[\\u20ac]", (const char *[]){"\xc3\xa9", "AA", "\xe2\x82\xac", NULL},
           (const char *[]){"A", NULL});
    expect_error(TV_CONSTRAINT_REGEX, "ab(c", "offset 2");
    expect_error(TV_CONSTRAINT_REGEX, "a(?=b)", "lookaround");
    expect_error(TV_CONSTRAINT_REGEX, "(a)\\1", "backreference");
    expect_error(TV_CONSTRAINT_REGEX, "[b-a]", "offset 2");
    expect_error(TV_CONSTRAINT_REGEX, "a{3,1}", "offset 1");
    expect_error(TV_CONSTRAINT_REGEX, "*a", "offset 0");
}

static void test_choice_and_gbnf(void **state) {
    (void)state;
    expect(TV_CONSTRAINT_CHOICE, "[\"yes\", \"no\", \"yesterday\", \"\\u00e9t\\u00e9\"]",
           (const char *[]){"yes", "no", "yesterday", "\xc3\xa9t\xc3\xa9", NULL}, (const char *[]){"ye", "yess", "", NULL});
    expect_error(TV_CONSTRAINT_CHOICE, "[1]", "element 0");
    expect_error(TV_CONSTRAINT_CHOICE, "[\"a\",", "byte");
    const char *json_gbnf =
        "# a JSON grammar in llama.cpp's style\n"
        "root   ::= object\n"
        "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
        "object ::=\n"
        "  \"{\" ws (\n"
        "            string \":\" ws value\n"
        "    (\",\" ws string \":\" ws value)*\n"
        "  )? \"}\" ws\n"
        "array  ::=\n"
        "  \"[\" ws (\n"
        "            value\n"
        "    (\",\" ws value)*\n"
        "  )? \"]\" ws\n"
        "string ::=\n"
        "  \"\\\"\" (\n"
        "    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
        "    \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) # escapes\n"
        "  )* \"\\\"\" ws\n"
        "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
        "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";
    expect(TV_CONSTRAINT_GRAMMAR, json_gbnf,
           (const char *[]){"{}", "{\"a\": [1, 2.5, true, null, \"x\\n\"]}", "{\"\xc3\xa9\":{\"b\":-0.5e+3}} ", NULL},
           (const char *[]){"{", "{\"a\"}", "[1]", "{\"a\":01x}", NULL});
    expect(TV_CONSTRAINT_GRAMMAR, "root ::= x{2,} | \"y\"{,2} \"z\"\nx ::= [ab]",
           (const char *[]){"ab", "aaaa", "z", "yyz", NULL}, (const char *[]){"a", "yyyz", NULL});
    expect_error(TV_CONSTRAINT_GRAMMAR, "root ::= \"a\" (\n\"b\"", "line 1, column 14");
    expect_error(TV_CONSTRAINT_GRAMMAR, "root ::= a\n", "'a' is used but not defined");
    expect_error(TV_CONSTRAINT_GRAMMAR, "root ::= root \"a\" | \"b\"", "left-recursive");
    expect_error(TV_CONSTRAINT_GRAMMAR, "root ::= x\nx ::= \"a\" x", "unsatisfiable");
    expect_error(TV_CONSTRAINT_GRAMMAR, "start ::= \"a\"", "no rule named 'root'");
    expect_error(TV_CONSTRAINT_GRAMMAR, "root ::= [a-\n", "line 1, column 10");
}

static void test_json_schema(void **state) {
    (void)state;
    const char *person =
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":3},"
        "\"age\":{\"type\":\"integer\",\"minimum\":18,\"maximum\":120},\"tags\":{\"type\":\"array\","
        "\"items\":{\"enum\":[\"a\",\"b\",1]},\"minItems\":1,\"maxItems\":2}},\"required\":[\"name\",\"age\"],"
        "\"additionalProperties\":false}";
    expect(TV_CONSTRAINT_JSON_SCHEMA, person,
           (const char *[]){"{\"name\":\"ab\",\"age\":18}", "{ \"name\": \"\\n\", \"age\": 120, \"tags\": [1, \"b\"] }",
                            "{\"name\":\"\",\"age\":99,\"tags\":[\"a\"]}", NULL},
           (const char *[]){"{\"age\":18,\"name\":\"ab\"}", "{\"name\":\"abcd\",\"age\":18}", "{\"name\":\"a\",\"age\":17}",
                            "{\"name\":\"a\",\"age\":121}", "{\"name\":\"a\",\"age\":20,\"tags\":[]}",
                            "{\"name\":\"a\",\"age\":20,\"x\":1}", "{\"name\":\"a\",\"age\":020}", NULL});
    // $ref recursion, anyOf, const, formats, number bounds, additionalProperties schema
    const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"const\":1},\"kids\":{\"type\":"
                       "\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}";
    expect(TV_CONSTRAINT_JSON_SCHEMA, tree, (const char *[]){"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":1,\"kids\":[]}]}", NULL},
           (const char *[]){"{\"v\":2}", "{\"kids\":[]}", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"string\",\"format\":\"date\"}]}",
           (const char *[]){"null", "\"2024-01-28\"", NULL}, (const char *[]){"\"2024-13-01\"", "1", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":10}",
           (const char *[]){"1", "10", "9.25", NULL}, (const char *[]){"0", "11", "-1", "10.5", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"integer\",\"minimum\":-15,\"maximum\":-3}",
           (const char *[]){"-15", "-3", "-9", NULL}, (const char *[]){"-2", "-16", "0", "3", NULL});
    // ajv-formats' number formats (corpus kb_241 / kb_34 made 11-digit int32 values before)
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"integer\",\"format\":\"int32\"}",
           (const char *[]){"2147483647", "-2147483648", "0", "-7", NULL},
           (const char *[]){"2147483648", "-2147483649", "12345678901", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"integer\",\"format\":\"int32\",\"minimum\":-5}",
           (const char *[]){"-5", "2147483647", NULL}, (const char *[]){"-6", "2147483648", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"number\",\"format\":\"int64\"}",
           (const char *[]){"12", "-9007199254740991", NULL}, (const char *[]){"1.5", "1e3", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":[\"string\",\"number\"],\"format\":\"int32\"}",
           (const char *[]){"\"x\"", "5", NULL}, (const char *[]){"5.5", "4294967296", NULL});
    // oneOf is exact: disjoint kinds, a const discriminator, a branch narrowed to leave out what
    // the other requires; overlapping branches are an error unless the schema opts out (lenient)
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}",
           (const char *[]){"\"a\"", "5", NULL}, (const char *[]){"true", "1.5", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},"
           "\"required\":[\"k\"]},{\"$ref\":\"#/$defs/b\"}],\"$defs\":{\"b\":{\"type\":\"object\",\"properties\":"
           "{\"k\":{\"enum\":[\"b\",\"c\"]},\"y\":{\"type\":\"string\"}},\"required\":[\"k\"]}}}",
           (const char *[]){"{\"k\":\"a\",\"x\":1}", "{\"k\":\"c\",\"y\":\"s\"}", NULL},
           (const char *[]){"{\"k\":\"d\"}", "{\"k\":\"a\",\"y\":\"s\"}", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},"
           "\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}",
           (const char *[]){"{\"a\":1}", "{\"b\":2}", NULL}, (const char *[]){"{\"a\":1,\"b\":2}", "{}", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"oneOf\":[{\"const\":\"a\"},{\"const\":0},{\"enum\":[\"c\",1,null]}]}",
           (const char *[]){"\"a\"", "0", "1", "null", NULL}, (const char *[]){"\"b\"", NULL});
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"oneOf\":[{\"const\":\"a\"},{\"enum\":[\"b\",\"a\"]}]}",
                 "oneOf branches 0 and 1");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}",
                 "oneOf branches 0 and 1 may both match");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"oneOf\":[{\"type\":\"string\"},{\"minimum\":1}]}", "oneOf branches 0 and 1");
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"x-guidance\":{\"lenient\":true},\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}",
           (const char *[]){"1", "1.5", NULL}, (const char *[]){"\"1\"", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"x-guidance\":{\"lenient\":true},\"type\":\"array\",\"uniqueItems\":true,\"items\":{\"type\":\"integer\","
           "\"multipleOf\":3,\"not\":{\"const\":1}}}",
           (const char *[]){"[1,1]", "[]", NULL}, (const char *[]){"[\"a\"]", NULL});
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"x-guidance\":{\"lenient\":false},\"type\":\"array\",\"uniqueItems\":true}",
                 "keyword 'uniqueItems'");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"x-guidance\":{\"whitespace_flexible\":true},\"type\":\"integer\"}",
                 "x-guidance option 'whitespace_flexible'");
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"properties\":{\"a\":{\"type\":\"boolean\"}},\"additionalProperties\":{\"type\":\"null\"}}",
           (const char *[]){"{\"a\":true,\"b\":null}", "{\"ab\":null}", "{}", NULL},
           (const char *[]){"{\"a\":null}", "{\"b\":true}", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA,
           "{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
           "{\"properties\":{\"b\":{\"type\":\"string\",\"pattern\":\"^x+$\"}},\"required\":[\"b\"]}]}",
           (const char *[]){"{\"a\":1,\"b\":\"xx\"}", NULL}, (const char *[]){"{\"a\":1}", "{\"a\":1,\"b\":\"xy\"}", NULL});
    expect(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],"
                                      "\"items\":false,\"minItems\":1}",
           (const char *[]){"[1]", "[1,\"a\"]", NULL}, (const char *[]){"[]", "[1,\"a\",2]", "[\"a\"]", NULL});
    expect(TV_CONSTRAINT_JSON_OBJECT, "", (const char *[]){"{}", "{\"a\":[1,{\"b\":null}]}", NULL},
           (const char *[]){"[]", "1", NULL});
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"x\":{\"not\":{}}}}", "/properties/x: keyword 'not'");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"string\",\"format\":\"ipv6\"}", "format 'ipv6'");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"string\",\"pattern\":\"a(\"}", "offset 1");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\": [}", "byte 10");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"$ref\":\"#/$defs/missing\"}", "does not resolve");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}", "unsatisfiable");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"a\":false},\"required\":[\"a\"]}",
                 "unsatisfiable");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, "{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
                 "unsatisfiable");
}

// The trie walk's mask equals checking every token one by one, along random walks.
static void test_mask_matches_brute_force(void **state) {
    (void)state;
    const char *specs[][2] = {{"s", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"n\":{\"type\":"
                                    "\"integer\"},\"b\":{\"type\":\"boolean\"}},\"required\":[\"name\"]}"},
                              {"r", "(ab|abcd|[0-9]+)(\xc3\xa9|\\.)*"},
                              {"g", "root ::= \"[\" x (\",\" x)* \"]\"\nx ::= [0-9]+ | \"null\""}};
    uint32_t mask[(TOY_N + 31) / 32];
    uint64_t rs = 42;
    for (size_t si = 0; si < 3; si++) {
        const tv_constraint_kind kind = specs[si][0][0] == 's' ? TV_CONSTRAINT_JSON_SCHEMA
                                      : specs[si][0][0] == 'r' ? TV_CONSTRAINT_REGEX : TV_CONSTRAINT_GRAMMAR;
        matcher_grammar *cg = compile(kind, specs[si][1]);
        for (int walk = 0; walk < 20; walk++) {
            matcher *m = matcher_create(cg, NULL);
            for (int step = 0; step < 40; step++) {
                assert_int_equal(matcher_fill_mask(m, mask), TV_OK);
                int32_t allowed[TOY_N];
                int n_allowed = 0;
                for (int32_t t = 0; t < TOY_N; t++) {
                    const bool bit = mask[t >> 5] >> (t & 31) & 1;
                    const bool brute = matcher_check(m, &t, 1) == 1;
                    if (bit != brute) fail_msg("spec %zu token %d: mask %d, check %d", si, t, bit, brute);
                    if (bit) allowed[n_allowed++] = t;
                }
                assert_true(n_allowed > 0);
                assert_false(mask[TOY_CTRL >> 5] >> (TOY_CTRL & 31) & 1);
                const int32_t t = allowed[rng_splitmix64(&rs) % (uint64_t)n_allowed];
                assert_true(matcher_advance(m, t));
                if (t == TOY_EOS) { assert_true(matcher_is_done(m)); break; }
            }
            // rollback + check: the speculative-decoding API
            const size_t n = matcher_n_advanced(m);
            matcher_rollback(m, n);
            assert_int_equal(matcher_n_advanced(m), 0);
            matcher_free(m);
        }
        matcher_grammar_free(cg);
    }
}

// The token-class masks (precomputed per stack key, shared across grammars through the
// vocabulary) equal a plain trie walk from the same state, along random walks over a real
// byte-level BPE vocabulary (GPT-2, 50k tokens: multi-byte UTF-8 pieces, quote-bearing pieces) and
// specs chosen to stress the key cuts: strings with bounds, escapes and UTF-8, formats, enums,
// optional properties, nested and recursive objects, arrays, regexes and a GBNF grammar. The
// specs compile on one vocabulary, so later ones reuse the classes earlier ones computed.
static void test_mask_classes_match_walk(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-gpt-2.gguf", shared_dir());
    tv_error err = {0};
    tv_tokenizer *tok = tv_tokenizer_load(path, 0, &err);
    if (!tok) { print_message("skipped: %s: %s\n", path, err.msg); skip(); }
    const int32_t V = tv_tokenizer_n_vocab(tok);
    matcher_vocab *v = matcher_vocab_from_tokenizer(tok, V, NULL, &err);
    assert_non_null(v);
    static const char *const specs[][2] = {
        {"s", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
              "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":5}}},\"required\":[\"name\"]}"},
        {"s", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":12},"
              "\"b\":{\"enum\":[\"red\",\"green\",\"blue\",1,null]},\"c\":{\"type\":\"number\"}}}"},
        {"s", "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\"},"
              "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}}}},\"$ref\":\"#/$defs/n\"}"},
        {"s", "{\"type\":\"object\",\"properties\":{\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
              "\"id\":{\"type\":\"string\",\"format\":\"uuid\"},\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-[0-9]+$\"}},"
              "\"additionalProperties\":false}"},
        {"s", "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}},{\"type\":\"object\"}]}"},
        {"j", ""},
        {"r", "(ab|abcd|[0-9]+)(\xc3\xa9|\\.|\")*x"},
        {"g", "root ::= \"[\" x (\",\" x)* \"]\"\nx ::= [0-9]+ | \"null\" | \"\\\"\" [^\"]* \"\\\"\""},
        // every position of these strings is within the longest piece of the end: new keys whose
        // short tokens come from a short key by reference, UTF-8 and escape stacks whose keys take
        // the string's frames (their dependent tokens would be most of their tokens)
        {"s", "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":40}}"},
        {"s", "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\",\"pattern\":"
              "\"^[a-z \\u00e9\\u20ac\\u0001\\\"\\\\\\\\]{0,24}$\"},\"n\":{\"type\":\"string\",\"minLength\":3}}}"},
    };
    const size_t nw = ((size_t)V + 31) / 32;
    uint32_t *fast = malloc(nw * 4), *walk = malloc(nw * 4);
    int32_t *allowed = malloc((size_t)V * sizeof *allowed);
    bool *single = calloc((size_t)V, 1);   // one-byte pieces
    assert_non_null(fast); assert_non_null(walk); assert_non_null(allowed); assert_non_null(single);
    for (int32_t t = 0; t < V; t++) {
        size_t full = 0;
        char tmp[8];
        tv_token_to_piece(tok, t, false, tmp, sizeof tmp, &full);
        single[t] = full == 1;
    }
    uint64_t rs = 7;
    size_t n_checked = 0;
    for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
        const tv_constraint_kind kind = specs[si][0][0] == 's' ? TV_CONSTRAINT_JSON_SCHEMA
                                      : specs[si][0][0] == 'j' ? TV_CONSTRAINT_JSON_OBJECT
                                      : specs[si][0][0] == 'r' ? TV_CONSTRAINT_REGEX : TV_CONSTRAINT_GRAMMAR;
        gram *g = constraint_parse(kind, specs[si][1], strlen(specs[si][1]), &err);
        if (!g) fail_msg("spec %zu: %s", si, err.msg);
        matcher_grammar *cg = matcher_grammar_compile(g, v, &err);
        gram_free(g);
        assert_non_null(cg);
        for (int w = 0; w < 6; w++) {
            matcher *m = matcher_create(cg, NULL);
            for (int step = 0; step < 60; step++) {
                assert_int_equal(matcher_fill_mask(m, fast), TV_OK);
                assert_int_equal(matcher_fill_mask_walk(m, walk), TV_OK);
                for (size_t i = 0; i < nw; i++)
                    if (fast[i] != walk[i]) fail_msg("spec %zu walk %d step %d: masks differ at tokens %zu..", si, w, step, i * 32);
                n_checked++;
                int n = 0;
                // half the steps pick among single-byte tokens so structure closes and strings end
                const bool short_only = rng_splitmix64(&rs) % 2;
                for (int32_t t = 0; t < V && short_only; t++)
                    if ((fast[t >> 5] >> (t & 31) & 1) && single[t]) allowed[n++] = t;
                if (!n) for (int32_t t = 0; t < V; t++) if (fast[t >> 5] >> (t & 31) & 1) allowed[n++] = t;
                assert_true(n > 0);
                const int32_t t = allowed[rng_splitmix64(&rs) % (uint64_t)n];
                assert_true(matcher_advance(m, t));
                if (matcher_is_done(m)) break;
            }
            matcher_free(m);
        }
        matcher_grammar_free(cg);
    }
    print_message("%zu masks compared\n", n_checked);
    free(fast); free(walk); free(allowed); free(single);
    matcher_vocab_free(v);
    tv_tokenizer_free(tok);
}

// Random generation under the mask matches PCRE2's full match of the same regex.
static void test_regex_vs_pcre2(void **state) {
    (void)state;
    const char *pats[] = {"[a-c]{1,4}(x|yz)*\\d", "(\\d+\\.)?[A-F]{2}|\xc3\xa9+", "(?:ab|a)(?:bc|c)?[^a-y]{0,3}",
                          "[\\w.-]{1,8}@[a-z]{2,4}\\.(com|org)"};
    uint32_t mask[(TOY_N + 31) / 32];
    uint64_t rs = 7;
    for (size_t pi = 0; pi < sizeof pats / sizeof pats[0]; pi++) {
        char anchored[256];
        snprintf(anchored, sizeof anchored, "^(?:%s)$", pats[pi]);
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)anchored, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
        assert_non_null(re);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        matcher_grammar *cg = compile(TV_CONSTRAINT_REGEX, pats[pi]);
        int completed = 0;
        for (int walk = 0; walk < 200; walk++) {
            matcher *m = matcher_create(cg, NULL);
            char out[512];
            size_t n = 0;
            bool done = false;
            for (int step = 0; step < 60 && !done; step++) {
                assert_int_equal(matcher_fill_mask(m, mask), TV_OK);
                int32_t allowed[TOY_N];
                int k = 0;
                for (int32_t t = 0; t < TOY_N; t++) if (mask[t >> 5] >> (t & 31) & 1) allowed[k++] = t;
                assert_true(k > 0);
                // prefer ending sometimes so walks complete
                int32_t t = allowed[rng_splitmix64(&rs) % (uint64_t)k];
                if ((mask[TOY_EOS >> 5] >> (TOY_EOS & 31) & 1) && rng_splitmix64(&rs) % 4 == 0) t = TOY_EOS;
                assert_true(matcher_advance(m, t));
                if (t == TOY_EOS) { done = true; break; }
                const char *p = t < 256 ? (const char[]){(char)t} : k_multi[t - 256];
                const size_t pl = t < 256 ? 1 : strlen(p);
                memcpy(out + n, p, pl);
                n += pl;
            }
            if (done) {
                completed++;
                const int rc = pcre2_match(re, (PCRE2_SPTR)out, n, 0, 0, md, NULL);
                if (rc < 0) fail_msg("pattern %s generated '%.*s' which PCRE2 rejects", pats[pi], (int)n, out);
            }
            matcher_free(m);
        }
        assert_true(completed > 50);
        matcher_grammar_free(cg);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
}

static void test_cache(void **state) {
    (void)state;
    constraint_cache *c = constraint_cache_create(g_vocab);
    tv_error err = {0};
    matcher_grammar *a = constraint_cache_get(c, TV_CONSTRAINT_REGEX, "ab", 2, &err);
    matcher_grammar *b = constraint_cache_get(c, TV_CONSTRAINT_REGEX, "ab", 2, &err);
    assert_ptr_equal(a, b);
    assert_null(constraint_cache_get(c, TV_CONSTRAINT_REGEX, "(", 1, &err));
    assert_non_null(strstr(err.msg, "offset"));
    for (int i = 0; i < CONSTRAINT_CACHE_SIZE + 5; i++) {
        char spec[16];
        snprintf(spec, sizeof spec, "x%d", i);
        matcher_grammar *g = constraint_cache_get(c, TV_CONSTRAINT_REGEX, spec, strlen(spec), &err);
        assert_non_null(g);
        matcher_grammar_free(g);
    }
    assert_int_equal(constraint_cache_n(c), CONSTRAINT_CACHE_SIZE);
    // a and b still usable after eviction (they hold references)
    assert_true(accepts(a, "ab", 2));
    matcher_grammar_free(a);
    matcher_grammar_free(b);
    constraint_cache_free(c);
}

// Pathological specs are refused quickly instead of compiling for ever.
static void test_bounds(void **state) {
    (void)state;
    expect_error(TV_CONSTRAINT_REGEX, "((((((((a{0,99999}){0,99999}){0,99999}){0,99999}){0,99999}){0,99999}){0,99999}){0,99999})",
                 "too large");
    expect_error(TV_CONSTRAINT_REGEX, "a{100001}", "count too large");
    char deep[4096] = "";
    for (int i = 0; i < 300; i++) strcat(deep, "(");
    expect_error(TV_CONSTRAINT_REGEX, deep, "nested too deeply");
    strcpy(deep, "");
    for (int i = 0; i < 100; i++) strcat(deep, "{\"type\":\"array\",\"items\":");
    strcat(deep, "true");
    for (int i = 0; i < 100; i++) strcat(deep, "}");
    expect_error(TV_CONSTRAINT_JSON_SCHEMA, deep, "deeper than");
    // a huge enum compiles (trie of literals) and constrains
    {
        size_t cap = 400000;
        char *big = malloc(cap), *p = big;
        p += sprintf(p, "{\"enum\":[");
        for (int i = 0; i < 20000; i++) p += sprintf(p, "%s\"v%d\"", i ? "," : "", i * 7);
        sprintf(p, "]}");
        matcher_grammar *cg = compile(TV_CONSTRAINT_JSON_SCHEMA, big);
        assert_true(accepts(cg, "\"v139993\"", 9));
        assert_false(accepts(cg, "\"v139994\"", 9));
        matcher_grammar_free(cg);
        free(big);
    }
}

// A batch mixing constrained and free requests on a real model (stories260K, 512-token vocabulary)
// with random sampling: every constrained output that finishes by STOP validates; free ones run.
static void test_engine_mixed_batch(void **state) {
    (void)state;
    tv_model *m = NULL;
    assert_int_equal(test_load_shared_model("stories260K.gguf", &m), 0);
    SKIP_IF_NO(m, "stories260K.gguf");
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.n_threads = 1;
    ec.cpu_path = test_cpu_path();
    tv_error err = {0};
    tv_engine *e = tv_engine_create(m, &ec, &err);
    assert_non_null(e);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\",\"minimum\":1,"
                         "\"maximum\":500},\"ok\":{\"type\":\"boolean\"},\"w\":{\"enum\":[\"red\",\"green\"]}},"
                         "\"required\":[\"id\",\"ok\",\"w\"],\"additionalProperties\":false}";
    const char *regex = "(cat|dog)s? [0-9]{1,3}!";
    enum { N = 24 };
    char *text[N] = {0};
    size_t len[N] = {0};
    tv_finish_reason fin[N] = {0};
    for (int i = 0; i < N; i++) {
        tv_request_params rp;
        tv_request_params_default(&rp);
        rp.prompt_text = "Once upon a time";
        rp.max_tokens = 120;
        rp.sampling.temperature = 1.0f;
        rp.sampling.seed = (uint64_t)i;
        rp.sampling.has_seed = true;
        rp.user = (void *)(intptr_t)i;
        if (i % 3 == 0) { rp.constraint = TV_CONSTRAINT_JSON_SCHEMA; rp.constraint_spec = schema; }
        else if (i % 3 == 1) { rp.constraint = TV_CONSTRAINT_REGEX; rp.constraint_spec = regex; }
        assert_int_equal(tv_engine_add_request(e, &rp, NULL, &err), TV_OK);
    }
    while (tv_engine_has_work(e)) {
        const tv_request_output *outs;
        int n;
        assert_int_equal(tv_engine_step(e, &outs, &n, &err), TV_OK);
        for (int k = 0; k < n; k++) {
            const int i = (int)(intptr_t)outs[k].user;
            text[i] = realloc(text[i], len[i] + outs[k].text_len + 1);
            memcpy(text[i] + len[i], outs[k].text, outs[k].text_len);
            len[i] += outs[k].text_len;
            text[i][len[i]] = 0;
            if (outs[k].finish) fin[i] = outs[k].finish;
        }
    }
    int n_checked = 0;
    int ec2;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "^(?:(cat|dog)s? [0-9]{1,3}!)$", PCRE2_ZERO_TERMINATED, 0, &ec2, &eo, NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    for (int i = 0; i < N; i++) {
        assert_true(fin[i] == TV_FINISH_STOP || fin[i] == TV_FINISH_LENGTH);
        if (i % 3 == 2 || fin[i] != TV_FINISH_STOP) continue;
        n_checked++;
        if (i % 3 == 1) {
            if (pcre2_match(re, (PCRE2_SPTR)text[i], len[i], 0, 0, md, NULL) < 0) fail_msg("regex output '%s'", text[i]);
            continue;
        }
        cJSON *j = cJSON_Parse(text[i]);
        if (!j) fail_msg("schema output is not JSON: '%s'", text[i]);
        const cJSON *id = cJSON_GetObjectItem(j, "id"), *ok = cJSON_GetObjectItem(j, "ok"), *w = cJSON_GetObjectItem(j, "w");
        assert_true(cJSON_IsNumber(id) && id->valuedouble >= 1 && id->valuedouble <= 500);
        assert_true(cJSON_IsBool(ok));
        assert_true(cJSON_IsString(w) && (!strcmp(w->valuestring, "red") || !strcmp(w->valuestring, "green")));
        assert_int_equal(cJSON_GetArraySize(j), 3);
        cJSON_Delete(j);
    }
    assert_true(n_checked >= 12);
    // every mask was filled by the mask thread while the forward pass ran
    tv_engine_stats st;
    tv_engine_get_stats(e, &st);
    assert_true(st.n_masks > 0);
    assert_int_equal(st.n_masks_overlapped, st.n_masks);
    // the free requests generate what they generate in a batch of their own
    tv_engine *e2 = tv_engine_create(m, &ec, &err);
    assert_non_null(e2);
    char *alone[N] = {0};
    size_t alone_len[N] = {0};
    for (int i = 2; i < N; i += 3) {
        tv_request_params rp;
        tv_request_params_default(&rp);
        rp.prompt_text = "Once upon a time";
        rp.max_tokens = 120;
        rp.sampling.temperature = 1.0f;
        rp.sampling.seed = (uint64_t)i;
        rp.sampling.has_seed = true;
        rp.user = (void *)(intptr_t)i;
        assert_int_equal(tv_engine_add_request(e2, &rp, NULL, &err), TV_OK);
    }
    while (tv_engine_has_work(e2)) {
        const tv_request_output *outs;
        int n;
        assert_int_equal(tv_engine_step(e2, &outs, &n, &err), TV_OK);
        for (int k = 0; k < n; k++) {
            const int i = (int)(intptr_t)outs[k].user;
            alone[i] = realloc(alone[i], alone_len[i] + outs[k].text_len + 1);
            memcpy(alone[i] + alone_len[i], outs[k].text, outs[k].text_len);
            alone_len[i] += outs[k].text_len;
            alone[i][alone_len[i]] = 0;
        }
    }
    for (int i = 2; i < N; i += 3) {
        if (alone_len[i] != len[i] || memcmp(alone[i], text[i], len[i])) fail_msg("free request %d differs beside constrained ones", i);
        free(alone[i]);
    }
    tv_engine_free(e2);
    // a bad spec is refused at add time with its position
    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.prompt_text = "x";
    rp.constraint = TV_CONSTRAINT_GRAMMAR;
    rp.constraint_spec = "root ::= [a-";
    assert_int_equal(tv_engine_add_request(e, &rp, NULL, &err), TV_ERR_INVALID);
    assert_non_null(strstr(err.msg, "line 1, column 10"));
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    for (int i = 0; i < N; i++) free(text[i]);
    tv_engine_free(e);
    tv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_choice_and_gbnf),
        cmocka_unit_test(test_json_schema),
        cmocka_unit_test(test_mask_matches_brute_force),
        cmocka_unit_test(test_mask_classes_match_walk),
        cmocka_unit_test(test_regex_vs_pcre2),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_engine_mixed_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
