#!/usr/bin/env bash
# test_hf_cli.sh — Hugging Face folders through the command line (the library side is test_hf.c):
#   generation_config.json's sampling is shown by `info` and used by `generate` for every value no
#   flag sets (a note says so; a flag wins); a folder without one recommends nothing.
#   `convert hf` and `--quantize` show a progress line on a terminal only; `convert hf -t N` writes
#   the same bytes on any number of threads and reports the input's GB/s.
#   `bench --load` reports every figure (page cache, load, conversion, cache start vs cold start).
#   bash tests/test_hf_cli.sh <tinyvllm-binary> [shared-dir]      (exit 77 = skipped)
set -u
BIN=${1:?usage: test_hf_cli.sh <tinyvllm-binary> [shared-dir]}
[ -x "$BIN" ] || { echo "SKIP: $BIN is not executable"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

D=$TMP/q3
"$BIN" synth --arch qwen3 --format hf -o "$D" >/dev/null || { echo "FAIL: synth"; exit 1; }
"$BIN" info "$D" >"$TMP/info0" 2>&1
grep -q '^recommended sampling: none' "$TMP/info0" && ok "info: no generation_config.json, nothing recommended" ||
    bad "info without generation_config.json: $(grep sampling "$TMP/info0")"

echo '{"temperature": 0.6, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.1}' >"$D/generation_config.json"
"$BIN" info "$D" >"$TMP/info1" 2>&1
grep -q '^recommended sampling: temperature 0.6 top_k 20 top_p 0.95 repetition_penalty 1.1$' "$TMP/info1" &&
    ok "info: shows generation_config.json's sampling" || bad "info: $(grep sampling "$TMP/info1")"

# generate: the note lists what the model set, not what a flag set; the run uses the flag's value
"$BIN" generate -m "$D" --prompt-ids 1,2,3 -n 2 --top-k 5 --seed 1 --no-cache >"$TMP/gen" 2>&1
grep -q "note: the model's recommended sampling: --temp 0.6 --top-p 0.95 --repeat-penalty 1.1 (a flag overrides it)" "$TMP/gen" &&
    ok "generate: notes the model's values for the unset flags (--top-k given: not listed)" || bad "generate note: $(cat "$TMP/gen")"
# same tokens as spelling the recommendation out as flags
a=$("$BIN" generate -m "$D" --prompt-ids 1,2,3 -n 8 --seed 3 --no-cache -q --json 2>/dev/null)
b=$("$BIN" generate -m "$D" --prompt-ids 1,2,3 -n 8 --seed 3 --no-cache -q --json --temp 0.6 --top-k 20 --top-p 0.95 \
    --repeat-penalty 1.1 2>/dev/null)
c=$("$BIN" generate -m "$D" --prompt-ids 1,2,3 -n 8 --seed 3 --no-cache -q --json --temp 0.8 --top-k 40 --top-p 0.95 \
    --min-p 0.05 2>/dev/null)
ids() { echo "$1" | sed -n 's/.*"generated_ids":\[\([0-9,]*\)\].*/\1/p' | head -1; }
if [ -n "$(ids "$a")" ] && [ "$(ids "$a")" = "$(ids "$b")" ]; then ok "generate: the recommendation samples as the same values given as flags"
else bad "generate with the recommendation: '$(ids "$a")' vs flags '$(ids "$b")'"; fi
[ "$(ids "$a")" != "$(ids "$c")" ] && ok "generate: and differently from the CLI's own defaults" ||
    echo "note: the CLI defaults happened to give the same 8 tokens"

# progress lines: on a terminal (script gives the command a pty) convert hf and --quantize show one;
# with stderr not a terminal, nothing
if command -v script >/dev/null; then
    script -qec "'$BIN' convert hf '$D' --type Q8_0 -o '$TMP/c.gguf'" /dev/null >"$TMP/tty1" 2>&1
    grep -q "convert: writing $TMP/c.gguf: *[0-9]*% (" "$TMP/tty1" && ok "convert hf: progress line on a terminal" ||
        bad "convert hf on a terminal: $(tr '\r' '\n' <"$TMP/tty1" | head -5)"
    script -qec "'$BIN' generate -m '$D' --prompt-ids 1,2 -n 1 --quantize Q8_0 --no-cache" /dev/null >"$TMP/tty2" 2>&1
    grep -q "quantizing *[0-9]*%" "$TMP/tty2" && ok "--quantize: progress line on a terminal" ||
        bad "--quantize on a terminal: $(tr '\r' '\n' <"$TMP/tty2" | head -5)"
else
    echo "skip: no script(1) for a pty"
fi
"$BIN" convert hf "$D" --type Q8_0 -o "$TMP/c2.gguf" >"$TMP/out" 2>"$TMP/err"
[ ! -s "$TMP/err" ] && grep -q "^wrote $TMP/c2.gguf" "$TMP/out" && ok "convert hf: no progress line off a terminal" ||
    bad "convert hf off a terminal: $(cat "$TMP/err")"

# bench --load on an F16 folder: every figure present and positive, the cache start faster than the cold one
F=$TMP/f16
"$BIN" synth --arch qwen3 --format hf --type F16 -o "$F" >/dev/null || bad "synth F16 folder"

# convert hf on 1 and 3 threads (chunks filled and written out of order): the same bytes, as stored
# (written from the mapping) and converted; the summary gives the input's GB/s
for t in "" Q8_0 Q4_0; do
    "$BIN" convert hf "$F" ${t:+--type $t} -t 1 -o "$TMP/t1.gguf" >/dev/null 2>&1 &&
        "$BIN" convert hf "$F" ${t:+--type $t} -t 3 -o "$TMP/t3.gguf" >"$TMP/t3.out" 2>&1 || { bad "convert hf ${t:-as stored}: $(cat "$TMP/t3.out")"; continue; }
    cmp -s "$TMP/t1.gguf" "$TMP/t3.gguf" && ok "convert hf ${t:-as stored}: 3 threads write the 1-thread file's bytes" ||
        bad "convert hf ${t:-as stored}: 1 and 3 threads differ"
done
grep -q "on 3 threads ([0-9.]* GB/s of input)" "$TMP/t3.out" && ok "convert hf: the summary gives the input rate" ||
    bad "convert hf summary: $(cat "$TMP/t3.out")"
if j=$("$BIN" bench --load -m "$F" -t 2 -r 1 --json -q 2>"$TMP/bl.err"); then
    num() { echo "$j" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
    pos=1
    for k in read_warm_gbs load_warm_gbs convert_gbs cache_cold_ms cache_hit_ms; do
        v=$(num $k); awk -v v="$v" 'BEGIN{exit !(v > 0)}' || { bad "bench --load: $k = '$v'"; pos=0; }
    done
    [ $pos = 1 ] && ok "bench --load: page cache $(num read_warm_gbs) GB/s, load $(num load_warm_gbs) GB/s, convert $(num convert_gbs) GB/s"
    awk -v h="$(num cache_hit_ms)" -v c="$(num cache_cold_ms)" 'BEGIN{exit !(h < c)}' &&
        ok "bench --load: a start from the cache ($(num cache_hit_ms) ms) beats the cold quantize ($(num cache_cold_ms) ms)" ||
        bad "bench --load: cache start $(num cache_hit_ms) ms vs cold $(num cache_cold_ms) ms"
    "$BIN" bench --load -m "$F" -t 2 -r 1 -q >"$TMP/bl.txt" 2>&1 && grep -q '% of the page cache' "$TMP/bl.txt" &&
        ok "bench --load: the table" || bad "bench --load table: $(cat "$TMP/bl.txt")"
else
    bad "bench --load: $(cat "$TMP/bl.err")"
fi

[ $fails -eq 0 ] && exit 0 || exit 1
