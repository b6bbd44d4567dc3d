#!/usr/bin/env bash
# family_fixtures.sh — regenerates the model-family fixtures tests/fixtures/families/ARCH-TYPE.json
# (llama.cpp's logits on `tinyvllm synth --arch ARCH` models; tests/test_families.c checks ours
# against them). See tests/fixtures/families/README.md.
#
#   scripts/family_fixtures.sh [ARCH ...]        # default: every arch `tinyvllm synth` knows
#
# Environment:
#   TINYVLLM       the tinyvllm binary (default: build/tinyvllm)
#   LLAMA_CPP_DIR  a llama.cpp checkout built with `cmake --build build --target llama` (needed only
#                  to build DUMP when it does not exist yet)
#   DUMP           the dump tool (default: $LLAMA_CPP_DIR/../dump/dump_logits; built from
#                  tests/fixtures/families/dump_logits.c when missing)
#   TYPES          weight types (default: "F32 F16 Q8_0 Q4_K"; Q4_K is synth's Q4_K_M mix, saved as Q4_K_M)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TINYVLLM=${TINYVLLM:-$ROOT/build/tinyvllm}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-}
DUMP=${DUMP:-${LLAMA_CPP_DIR:+$LLAMA_CPP_DIR/../dump/dump_logits}}
TYPES=${TYPES:-F32 F16 Q8_0 Q4_K}
OUT=$ROOT/tests/fixtures/families
[ -x "$TINYVLLM" ] || { echo "family_fixtures: no tinyvllm binary at $TINYVLLM (build first or set TINYVLLM)" >&2; exit 1; }
[ -n "$DUMP" ] || { echo "family_fixtures: set DUMP or LLAMA_CPP_DIR" >&2; exit 1; }
if [ ! -x "$DUMP" ]; then
    [ -n "$LLAMA_CPP_DIR" ] || { echo "family_fixtures: $DUMP missing and no LLAMA_CPP_DIR to build it" >&2; exit 1; }
    mkdir -p "$(dirname "$DUMP")"
    cc -O2 -std=c11 -Wall -Wextra -Werror -I"$LLAMA_CPP_DIR/include" -I"$LLAMA_CPP_DIR/ggml/include" \
       "$OUT/dump_logits.c" -L"$LLAMA_CPP_DIR/build/bin" -lllama -lggml -lggml-base \
       -Wl,-rpath,"$LLAMA_CPP_DIR/build/bin" -lm -o "$DUMP"
fi
if [ $# -gt 0 ]; then ARCHS=("$@"); else
    IFS=', ' read -r -a ARCHS <<<"$("$TINYVLLM" synth --help | sed -n 's/.*feature active (512-token synthetic vocab): //p' | sed 's/;.*//')"
fi
[ ${#ARCHS[@]} -gt 0 ] || { echo "family_fixtures: no arch list from '$TINYVLLM synth --help'" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for arch in "${ARCHS[@]}"; do
    for type in $TYPES; do
        name=$type; [ "$type" = Q4_K ] && name=Q4_K_M
        "$TINYVLLM" synth --arch "$arch" --type "$type" --threads 1 -o "$TMP/$arch-$name.gguf" >/dev/null
        "$DUMP" "$TMP/$arch-$name.gguf" "$arch" "$name" >"$TMP/$arch-$name.json"
        mv "$TMP/$arch-$name.json" "$OUT/$arch-$name.json"
        echo "$OUT/$arch-$name.json"
    done
done
