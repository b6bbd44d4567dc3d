#!/usr/bin/env bash
# tokenizer_cli.sh — `tinyvllm tokenize` / `detokenize` against llama2.c's and llama.cpp's references.
# usage: bash tokenizer_cli.sh <tinyvllm-binary> <shared-dir>; exit 77 = skipped.
set -u
BIN=$1
SHARED=$2
if [ ! -f "$SHARED/models/aidreams260K.tok512.bin" ] || [ ! -f "$SHARED/vocab/ggml-vocab-llama-spm.gguf" ]; then
  echo "SKIP: $SHARED has no tokenizer data"; exit 77
fi
fail=0
check() {   # name, expected, actual
  if [ "$2" != "$3" ]; then echo "FAIL $1: expected '$2' got '$3'"; fail=1; else echo "ok   $1"; fi
}
# llama2.c run.c reference ids (fixtures/llama2c-reference.jsonl)
check "llama2c tokenize" "1 368 430 266 403 440 265 281 269 435 447 431 275" \
  "$("$BIN" tokenize -m "$SHARED/models/aidreams260K.tok512.bin" -p "The silicon dreams of")"
check "llama2c --vocab-size" "1 368 430 266 403 440 265 281 269 435 447 431 275" \
  "$("$BIN" tokenize -m "$SHARED/models/aidreams260K.tok512.bin" --vocab-size 512 -p "The silicon dreams of")"
# llama.cpp's llama-spm vector for " this is 🦙.cpp" (BOS added by the model's default)
check "spm tokenize" "1 29871 445 338 29871 243 162 169 156 29889 8223" \
  "$("$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-llama-spm.gguf" -p " this is 🦙.cpp")"
check "spm --no-bos" "29871 445 338 29871 243 162 169 156 29889 8223" \
  "$("$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-llama-spm.gguf" --no-bos -p " this is 🦙.cpp")"
check "spm detokenize" " this is 🦙.cpp" \
  "$("$BIN" detokenize -m "$SHARED/vocab/ggml-vocab-llama-spm.gguf" --skip-special 1 29871 445 338 29871 243 162 169 156 29889 8223)"
check "gpt2 detokenize list" "Hello, world!" \
  "$("$BIN" detokenize -m "$SHARED/vocab/ggml-vocab-gpt-2.gguf" "[15496, 11, 995, 0]")"
printf 'Hello\nworld' > "${TMPDIR:-/tmp}/tv_tok_cli.$$"
check "gpt2 --file" "15496 198 6894" "$("$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-gpt-2.gguf" --file "${TMPDIR:-/tmp}/tv_tok_cli.$$")"
# invalid UTF-8: one line naming the byte offset, exit 1
printf 'ab\xffcd' > "${TMPDIR:-/tmp}/tv_tok_cli.$$"
err=$("$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-gpt-2.gguf" --file "${TMPDIR:-/tmp}/tv_tok_cli.$$" 2>&1 >/dev/null); rc=$?
rm -f "${TMPDIR:-/tmp}/tv_tok_cli.$$"
check "invalid utf-8 exit" "1" "$rc"
check "invalid utf-8 message" "tinyvllm tokenize: invalid UTF-8 at byte offset 2 (0xFF)" "$err"
"$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-gpt-2.gguf" --bogus >/dev/null 2>&1; check "unknown flag exit" "2" "$?"
"$BIN" tokenize -p x >/dev/null 2>&1; check "missing -m exit" "2" "$?"
"$BIN" detokenize -m "$SHARED/vocab/ggml-vocab-gpt-2.gguf" 50257 >/dev/null 2>&1; check "id out of range exit" "1" "$?"
"$BIN" tokenize -m "$SHARED/no-such-model.gguf" -p x >/dev/null 2>&1; check "missing model exit" "1" "$?"
exit $fail
