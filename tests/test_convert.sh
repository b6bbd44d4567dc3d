#!/usr/bin/env bash
# test_convert.sh — `tinyvllm convert` and `tinyvllm synth` end to end.
#   bash tests/test_convert.sh <tinyvllm-binary> <shared-dir>      (exit 77 = skipped)
# convert: the GGUF made from aidreams260K.bin + its tokenizer must reproduce the llama2.c
# reference's greedy tokens and text (fixtures/llama2c-reference.jsonl); stories260K (no tokenizer)
# must convert to a loadable vocab-less model that reproduces its reference tokens too.
# synth: byte-identical output for the same preset/type/seed whatever the thread count, different
# bytes for another seed; --vocab copies a real tokenizer (checked with llama.cpp's test vectors).
set -u
BIN=${1:?usage: test_convert.sh <tinyvllm-binary> <shared-dir>}
SHARED=${2:-}
[ -x "$BIN" ] || { echo "SKIP: $BIN is not executable"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# generated_ids of a --json line, as "a,b,c"
ids_of() { sed -n 's/.*"generated_ids":\[\([0-9,]*\)\].*/\1/p' | head -1; }
# the first n ids of a fixture line's generated_ids
fixture_ids() { sed -n "$1p" "$SHARED/fixtures/llama2c-reference.jsonl" |
                sed -n 's/.*"generated_ids": \[\([0-9, ]*\)\].*/\1/p' | tr -d ' ' | cut -d, -f1-"$2"; }

# ---- usage errors ----
"$BIN" convert >/dev/null 2>&1; [ $? -eq 2 ] && ok "convert without args: exit 2" || bad "convert without args"
"$BIN" convert llama2c x.bin -o "$TMP/x.gguf" --bogus >/dev/null 2>&1; [ $? -eq 2 ] && ok "unknown flag: exit 2" || bad "unknown flag"
"$BIN" convert llama2c "$TMP/missing.bin" -o "$TMP/x.gguf" 2>"$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "^tinyvllm convert: .*missing.bin" "$TMP/err"; then ok "missing model: exit 1 naming it"
else bad "missing model: rc=$rc $(cat "$TMP/err")"; fi
[ -e "$TMP/x.gguf" ] && bad "a failed convert left an output file"
"$BIN" synth --preset nope -o "$TMP/x.gguf" >/dev/null 2>&1; [ $? -eq 2 ] && ok "synth unknown preset: exit 2" || bad "synth unknown preset"
"$BIN" synth --preset tiny --type Q5_K -o "$TMP/x.gguf" >/dev/null 2>&1; [ $? -eq 2 ] && ok "synth unsupported type: exit 2" || bad "synth Q5_K"
"$BIN" synth --arch falcon -o "$TMP/x.gguf" 2>"$TMP/err" >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "falcon" "$TMP/err" && ok "synth unknown arch: exit 2 naming it" || bad "synth --arch falcon: rc=$rc"
"$BIN" synth --preset tiny --arch qwen3 -o "$TMP/x.gguf" >/dev/null 2>&1; [ $? -eq 2 ] && ok "synth --preset with --arch: exit 2" || bad "synth --preset --arch"
if "$BIN" synth --arch qwen3 --type Q8_0 -o "$TMP/q3.gguf" >/dev/null && "$BIN" info -m "$TMP/q3.gguf" -v >"$TMP/q3.txt" 2>&1 &&
   grep -q "qwen3" "$TMP/q3.txt" && grep -q "attn_q_norm" "$TMP/q3.txt"; then ok "synth --arch qwen3: a qwen3 model with q/k norms"
else bad "synth --arch qwen3: $(head -c 300 "$TMP/q3.txt" 2>/dev/null)"; fi

# ---- synth determinism ----
if "$BIN" synth --preset tiny --type Q4_K --seed 7 --threads 1 -o "$TMP/s1.gguf" >/dev/null &&
   "$BIN" synth --preset tiny --type Q4_K --seed 7 --threads 2 -o "$TMP/s2.gguf" >/dev/null &&
   "$BIN" synth --preset tiny --type Q4_K --seed 8 -o "$TMP/s3.gguf" >/dev/null; then
    h1=$(sha256sum < "$TMP/s1.gguf"); h2=$(sha256sum < "$TMP/s2.gguf"); h3=$(sha256sum < "$TMP/s3.gguf")
    [ "$h1" = "$h2" ] && ok "synth: same seed, 1 vs 2 threads -> identical sha256" || bad "synth not deterministic"
    [ "$h1" != "$h3" ] && ok "synth: another seed -> different bytes" || bad "synth ignores the seed"
    [ "$(head -c 4 "$TMP/s1.gguf")" = "GGUF" ] && ok "synth: GGUF magic" || bad "synth: no GGUF magic"
else
    bad "synth tiny Q4_K failed"
fi
for t in F32 F16 BF16 Q8_0 Q4_0 Q6_K; do
    "$BIN" synth --preset tiny --type $t -o "$TMP/t-$t.gguf" >/dev/null || bad "synth tiny $t"
done
# the synthetic vocab makes text prompts work
out=$("$BIN" generate -m "$TMP/s1.gguf" -p "Once upon a time" -n 4 --temp 0 --json 2>/dev/null)
if [ $? -eq 0 ] && [ -n "$(echo "$out" | ids_of)" ]; then ok "synth tiny (synthetic vocab) generates from text"
else bad "generate on synth tiny: $out"; fi

[ -n "$SHARED" ] && [ -d "$SHARED/models" ] || { echo "SKIP: $SHARED/models absent (convert and --vocab checks)"; [ $fails -eq 0 ] && exit 77 || exit 1; }

# ---- synth --vocab: the llama SPM tokenizer comes along ("Hello world" -> 15043 3186 per llama.cpp's vectors) ----
VOCAB="$SHARED/vocab/ggml-vocab-llama-spm.gguf"
if [ -f "$VOCAB" ]; then
    if "$BIN" synth --preset tiny --vocab "$VOCAB" -o "$TMP/v.gguf" >/dev/null; then
        out=$("$BIN" generate -m "$TMP/v.gguf" -p "Hello world" -n 1 --temp 0 --json 2>/dev/null)
        echo "$out" | grep -q '"prompt_ids":\[1,15043,3186\]' && ok "synth --vocab: 'Hello world' -> [1,15043,3186]" ||
            bad "synth --vocab tokenization: $out"
    else
        bad "synth --vocab failed"
    fi
else
    echo "skip: $VOCAB absent"
fi

# ---- convert aidreams260K (+ tokenizer): reference tokens and text ----
M="$SHARED/models"
if "$BIN" convert llama2c "$M/aidreams260K.bin" "$M/aidreams260K.tok512.bin" -o "$TMP/aid.gguf" >/dev/null; then
    ok "convert aidreams260K with tokenizer"
    out=$("$BIN" generate -m "$TMP/aid.gguf" --prompt-ids 1 -n 24 --temp 0 --ignore-eos --json 2>/dev/null)
    got=$(echo "$out" | ids_of); want=$(fixture_ids 1 24)
    [ -n "$want" ] && [ "$got" = "$want" ] && ok "aidreams GGUF: greedy ids match llama2.c reference" ||
        bad "aidreams GGUF ids: got '$got' want '$want'"
    echo "$out" | grep -q 'Echoes of vectors unfold' && ok "aidreams GGUF: text decodes via the converted vocab" ||
        bad "aidreams GGUF text: $out"
else
    bad "convert aidreams260K"
fi

# ---- convert stories260K (GQA, no tokenizer): loadable, reference tokens from ids ----
if "$BIN" convert llama2c "$M/stories260K.bin" -o "$TMP/st.gguf" >/dev/null; then
    ok "convert stories260K without tokenizer"
    line=$(grep -n '"models/stories260K.bin"' "$SHARED/fixtures/llama2c-reference.jsonl" | head -1 | cut -d: -f1)
    pids=$(sed -n "${line}p" "$SHARED/fixtures/llama2c-reference.jsonl" | sed -n 's/.*"prompt_ids": \[\([0-9, ]*\)\].*/\1/p' | tr -d ' ')
    out=$("$BIN" generate -m "$TMP/st.gguf" --prompt-ids "$pids" -n 16 --temp 0 --ignore-eos --json 2>&1)
    got=$(echo "$out" | ids_of); want=$(fixture_ids "$line" 16)
    [ -n "$want" ] && [ "$got" = "$want" ] && ok "stories GGUF: greedy ids match llama2.c reference" ||
        bad "stories GGUF ids: got '$got' want '$want' ($out)"
else
    bad "convert stories260K"
fi
# stories260K with a borrowed 512-token vocab (aidreams'): the GQA weights alone, whatever the vocab
if "$BIN" convert llama2c "$M/stories260K.bin" "$M/aidreams260K.tok512.bin" -o "$TMP/stv.gguf" >/dev/null 2>&1; then
    out=$("$BIN" generate -m "$TMP/stv.gguf" --prompt-ids "$pids" -n 16 --temp 0 --ignore-eos --json 2>&1)
    got=$(echo "$out" | ids_of)
    [ -n "$want" ] && [ "$got" = "$want" ] && ok "stories GGUF (GQA) with a 512-token vocab: greedy ids match llama2.c reference" ||
        bad "stories+vocab GGUF ids: got '$got' want '$want' ($out)"
else
    bad "stories + 512-token tokenizer should convert (same vocab size)"
fi
head -c 3000 "$M/aidreams260K.tok512.bin" > "$TMP/short.tok"
"$BIN" convert llama2c "$M/aidreams260K.bin" "$TMP/short.tok" -o "$TMP/bad.gguf" 2>"$TMP/err"; rc=$?
[ $rc -eq 1 ] && grep -q "short.tok" "$TMP/err" && ok "truncated tokenizer: exit 1 naming it" || bad "truncated tokenizer rc=$rc"

echo "test_convert: $fails failure(s)"
[ $fails -eq 0 ]
