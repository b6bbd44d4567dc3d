#!/usr/bin/env bash
# hf_fixtures.sh — the oracle fixtures of `tinyvllm convert hf` (tests/fixtures/hf/README.md): for each
# arch, the random model of `synth --arch ARCH --format hf` (seed 1, F32) converted to GGUF by
# tinyvllm (--type TYPE; tokenizer.* from the same arch's synth GGUF), then run by the pinned
# llama.cpp through dump_logits (tests/fixtures/families/dump_logits.c). Run outside CI:
#
#   LLAMA_CPP_DIR=/work/peers/oracle scripts/hf_fixtures.sh [ARCH ...]
#
#   TINYVLLM   the binary (default: build/tinyvllm)
#   DUMP       the dump tool (default: $LLAMA_CPP_DIR/../dump/dump_logits)
#   TYPES      converted types (default: F32 Q8_0)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TINYVLLM=${TINYVLLM:-$ROOT/build/tinyvllm}
DUMP=${DUMP:-${LLAMA_CPP_DIR:+$LLAMA_CPP_DIR/../dump/dump_logits}}
TYPES=${TYPES:-F32 Q8_0}
OUT=$ROOT/tests/fixtures/hf
[ -x "$TINYVLLM" ] || { echo "hf_fixtures: no tinyvllm binary at $TINYVLLM" >&2; exit 1; }
[ -n "$DUMP" ] && [ -x "$DUMP" ] || { echo "hf_fixtures: set DUMP or LLAMA_CPP_DIR (build dump_logits with scripts/family_fixtures.sh)" >&2; exit 1; }
if [ $# -gt 0 ]; then ARCHS=("$@"); else
    ARCHS=(llama llama3 qwen2 qwen3 gemma2 gemma3 phi3 mistral3 smollm3 granite qwen3moe qwen2moe mixtral glm4moe
           deepseek2 deepseek2-lite qwen35 qwen35moe qwen3next gpt-oss gemma4 gemma4e gemma4moe)
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for arch in "${ARCHS[@]}"; do
    "$TINYVLLM" synth --arch "$arch" --seed 1 --threads 1 -o "$TMP/$arch-vocab.gguf" >/dev/null
    # (the folder's name becomes general.name: no family name in it, llama.cpp keys vocab rules off it)
    rm -rf "$TMP/synth-hf"
    "$TINYVLLM" synth --arch "$arch" --seed 1 --threads 1 --format hf -o "$TMP/synth-hf" >/dev/null
    for type in $TYPES; do
        "$TINYVLLM" convert hf "$TMP/synth-hf" --type "$type" --vocab "$TMP/$arch-vocab.gguf" -o "$TMP/$arch-$type.gguf" >/dev/null
        "$DUMP" "$TMP/$arch-$type.gguf" "$arch" "$type" >"$TMP/$arch-$type.json"
        mv "$TMP/$arch-$type.json" "$OUT/$arch-$type.json"
        echo "$OUT/$arch-$type.json"
    done
done
