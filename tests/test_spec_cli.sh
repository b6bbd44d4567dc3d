#!/usr/bin/env bash
# test_spec_cli.sh — speculative decoding from the command line: `generate --spec ngram` and
# `--spec draft --draft-layers N` and `--draft-model FILE` (the model's first layers, written by
# `convert layers`) print the same token ids as without (greedy; seeded sampling with n-gram
# proposals: a model draft's sampled guesses are checked by rejection sampling, other draws),
# report their acceptance, and bad values are rejected; `bench --spec ngram` and `bench
# --draft-model` report it in their JSON, run plain decoding beside it (speedup, acceptance, mean
# acceptance length; --prompt-file); `synth --deep-from N --deep-scale S` makes a model whose first
# N layers are a draft that agrees with it.
#   bash tests/test_spec_cli.sh <tinyvllm-binary> <shared-dir>
set -u
BIN=${1:?usage: test_spec_cli.sh <tinyvllm-binary> <shared-dir>}
SHARED=${2:?shared dir}
M="$SHARED/models/stories260K.gguf"
[ -r "$M" ] || { echo "skipped: $M is absent"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }
ids() { sed -E 's/.*"generated_ids":\[([^]]*)\].*/\1/' "$1"; }

"$BIN" convert layers "$M" --layers 3 -o "$W/draft3.gguf" >"$W/conv.out" 2>&1 || fail "convert layers: $(cat "$W/conv.out")"
grep -q "3 of 5 layers" "$W/conv.out" || fail "convert layers: $(cat "$W/conv.out")"
for samp in "--temp 0" "--temp 0.9 --seed 5"; do
  # shellcheck disable=SC2086
  "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp --json >"$W/plain.json" 2>"$W/plain.err" ||
    fail "plain generate ($samp): $(cat "$W/plain.err")"
  for how in "ngram 1" "ngram 4" "ngram 16" "draft 4 --draft-layers 3" "draft 2 --draft-layers 1" \
             "draft-model 4 --draft-model $W/draft3.gguf" "draft-model 3 --spec draft --draft-model $W/draft3.gguf"; do
    set -- $how
    method=$1 k=$2
    shift 2
    spec=(--spec "$method")
    [ "$method" = draft-model ] && spec=()
    # shellcheck disable=SC2086
    "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp "${spec[@]}" --spec-tokens $k "$@" --json \
      >"$W/spec.json" 2>"$W/spec.err" || fail "generate --spec $how ($samp): $(cat "$W/spec.err")"
    if [ "$samp" = "--temp 0" ] || [ "$method" = ngram ]; then
      [ "$(ids "$W/spec.json")" = "$(ids "$W/plain.json")" ] ||
        fail "--spec $how ($samp): generated ids differ from plain decoding"
    else   # the same seed twice: the same draws
      # shellcheck disable=SC2086
      "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp "${spec[@]}" --spec-tokens $k "$@" --spec-always --json \
        >"$W/spec2.json" 2>/dev/null && "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp "${spec[@]}" --spec-tokens $k "$@" \
        --spec-always --json >"$W/spec3.json" 2>/dev/null || fail "--spec $how ($samp) --spec-always failed"
      [ "$(ids "$W/spec2.json")" = "$(ids "$W/spec3.json")" ] || fail "--spec $how ($samp): a seed gave two outputs"
    fi
    grep -q '"acceptance_rate"' "$W/spec.json" || fail "--spec $how: no acceptance rate in the JSON"
    grep -qE 'speculation '"$method"', up to '"$k"' tokens \| [0-9]+ verifications \| accepted [0-9]+ of [0-9]+ proposed' "$W/spec.err" ||
      fail "--spec $how: no acceptance line on stderr: $(cat "$W/spec.err")"
    echo "$samp, --spec $how: $(grep speculation "$W/spec.err")"
  done
done

"$BIN" generate -m "$M" -p "x" -n 4 --spec draft >/dev/null 2>"$W/e1"; rc=$?
[ $rc != 0 ] && grep -q "needs --draft-layers N (self-draft) or --draft-model" "$W/e1" || fail "--spec draft without --draft-layers: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec ngram --draft-model "$W/draft3.gguf" >/dev/null 2>"$W/e1"; rc=$?
[ $rc != 0 ] && grep -q "one proposer at a time" "$W/e1" || fail "--spec ngram --draft-model: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --draft-model "$W/absent.gguf" >/dev/null 2>"$W/e1"; rc=$?
[ $rc != 0 ] && grep -q "draft model: .*absent.gguf" "$W/e1" || fail "--draft-model absent: rc $rc, $(cat "$W/e1")"
"$BIN" convert layers "$M" --layers 5 -o "$W/d5.gguf" >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 2 ] && grep -q "first 5 is invalid (1..4)" "$W/e1" || fail "convert layers 5 of 5: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec draft --draft-layers 5 >/dev/null 2>"$W/e1"; rc=$?
[ $rc != 0 ] && grep -q "self-draft of 5 layers is invalid" "$W/e1" || fail "--draft-layers 5 of 5: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec mtp >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 1 ] && grep -q "has no MTP layer (llama.nextn_predict_layers is absent)" "$W/e1" || fail "--spec mtp without one: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec eagle >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 2 ] && grep -q "not a proposer (ngram, draft or mtp)" "$W/e1" || fail "--spec eagle: rc $rc, $(cat "$W/e1")"
# the file's MTP layer proposes: synth --mtp writes one; the greedy text is plain decoding's
"$BIN" synth --arch qwen35 --mtp -q -o "$W/q35mtp.gguf" >/dev/null || fail "synth --arch qwen35 --mtp"
"$BIN" generate -m "$W/q35mtp.gguf" -p "hello world" -n 24 --temp 0 --ignore-eos -t 1 >"$W/plain.txt" 2>/dev/null || fail "generate qwen35 plain"
"$BIN" generate -m "$W/q35mtp.gguf" -p "hello world" -n 24 --temp 0 --ignore-eos -t 1 --spec mtp --spec-always >"$W/mtp.txt" 2>"$W/e1" || fail "generate --spec mtp: $(cat "$W/e1")"
cmp -s "$W/plain.txt" "$W/mtp.txt" || fail "--spec mtp changed the greedy text"
grep -q "speculation mtp, up to 4 tokens | [1-9][0-9]* verifications" "$W/e1" || fail "--spec mtp: no verifications: $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec ngram --spec-tokens 17 >/dev/null 2>"$W/e2"; rc=$?
[ $rc = 2 ] && grep -q "1..16" "$W/e2" || fail "--spec-tokens 17: rc $rc, $(cat "$W/e2")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec-tokens 3 >/dev/null 2>"$W/e3"; rc=$?
[ $rc != 0 ] && grep -q "needs --spec ngram" "$W/e3" || fail "--spec-tokens without --spec: rc $rc, $(cat "$W/e3")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec-always >/dev/null 2>"$W/e3"; rc=$?
[ $rc != 0 ] && grep -q "spec-always needs --spec" "$W/e3" || fail "--spec-always without --spec: rc $rc, $(cat "$W/e3")"

"$BIN" bench -m "$M" -p 16 -n 32 -r 1 -t 1 --spec ngram --json >"$W/b.json" 2>"$W/b.err" || fail "bench --spec ngram: $(cat "$W/b.err")"
grep -q '"speculation":{"method":"ngram","verifications":' "$W/b.json" || fail "bench --json has no speculation object: $(cat "$W/b.json")"
"$BIN" bench -m "$M" -p 16 -n 32 -r 1 -t 1 --draft-model "$W/draft3.gguf" --spec-always --json >"$W/b.json" 2>"$W/b.err" || fail "bench --draft-model: $(cat "$W/b.err")"
grep -q '"speculation":{"method":"draft-model","verifications":' "$W/b.json" || fail "bench --draft-model --json: $(cat "$W/b.json")"

# bench: speculation beside plain decoding in the same run, with its acceptance (text and JSON)
jnum() { grep -oE "\"$2\":[0-9.e+-]+" "$1" | head -1 | cut -d: -f2; }   # the first "key":number in a JSON file
{ printf 'Once upon a time'; "$BIN" generate -m "$M" -p "Once upon a time" -n 120 -t 1 --temp 0 2>/dev/null
  printf '\n\nOnce upon a time'; } >"$W/own.txt"
"$BIN" bench -m "$M" -p 0 -n 48 -r 2 -t 1 --spec ngram --spec-always --prompt-file "$W/own.txt" >"$W/b.txt" 2>"$W/b.err" ||
  fail "bench --prompt-file: $(cat "$W/b.err")"
grep -qE '^tg48 plain +[0-9.]+ ' "$W/b.txt" || fail "bench --spec: no plain tg row: $(cat "$W/b.txt")"
grep -qE '^\(tg48: prompt .*own.txt, [0-9]+ tokens' "$W/b.txt" || fail "bench --prompt-file: not reported: $(cat "$W/b.txt")"
grep -qE '^tg48: [0-9.]+ tok/s vs [0-9.]+ plain = [0-9.]+x \| accepted [1-9][0-9]* of [0-9]+ proposed \([0-9.]+%\) \| mean acceptance length [0-9.]+ \(tokens per verification\)' \
  "$W/b.txt" || fail "bench --spec ngram on its own output: no speedup/acceptance line with accepted tokens: $(cat "$W/b.txt")"
"$BIN" bench -m "$M" -p 0 -n 48 -r 2 -t 1 --batch 3 --spec ngram --prompt-file "$W/own.txt" --json >"$W/b.json" 2>"$W/b.err" ||
  fail "bench --json --prompt-file: $(cat "$W/b.err")"
for key in plain_tok_s speedup acceptance_rate mean_acceptance_length prompt_file_tokens; do
  [ -n "$(jnum "$W/b.json" $key)" ] || fail "bench --json: no number for $key: $(cat "$W/b.json")"
done
grep -qE '"tg":\{"plain_tok_s":[0-9.e+-]+,"tok_s":[0-9.e+-]+,"speedup":[0-9.e+-]+' "$W/b.json" || fail "bench --json: no speculation.tg: $(cat "$W/b.json")"
grep -qE '"batch":\{"plain_tok_s":[0-9.e+-]+,' "$W/b.json" || fail "bench --json: no speculation.batch: $(cat "$W/b.json")"
# a draft model of the first 3 layers proposes what the 3-layer self-draft proposes: the same counts
"$BIN" bench -m "$M" -p 0 -n 48 -r 1 -t 1 --draft-model "$W/draft3.gguf" --spec-always --json >"$W/bd.json" 2>"$W/b.err" || fail "bench --draft-model: $(cat "$W/b.err")"
"$BIN" bench -m "$M" -p 0 -n 48 -r 1 -t 1 --spec draft --draft-layers 3 --spec-always --json >"$W/bs.json" 2>"$W/b.err" || fail "bench --draft-layers: $(cat "$W/b.err")"
tg_counts() { grep -oE '"tg":\{[^}]*\}' "$1" | grep -oE '"(verifications|proposed_tokens|accepted_tokens)":[0-9]+'; }
[ -n "$(tg_counts "$W/bd.json")" ] && [ "$(tg_counts "$W/bd.json")" = "$(tg_counts "$W/bs.json")" ] ||
  fail "bench: the draft model and the self-draft of its layers counted differently: $(tg_counts "$W/bd.json") / $(tg_counts "$W/bs.json")"
# tg's tok/s is timed over every token after the first, also when a step brings several tokens of the
# sequence (one output record each: accepted guesses) beside steps that bring one (all guesses rejected)
timed() { grep -oE '"tg":\{[^}]*\}' "$1" | grep -oE '"timed_tokens":[0-9]+' | cut -d: -f2; }
[ "$(timed "$W/bd.json")" = 47 ] || fail "bench --draft-model -n 48: tg timed over '$(timed "$W/bd.json")' tokens, not 47: $(cat "$W/bd.json")"
"$BIN" bench -m "$M" -p 0 -n 1 --prompt-file "$W/own.txt" >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 2 ] && grep -q "needs -n >= 2" "$W/e1" || fail "bench --prompt-file -n 1: rc $rc, $(cat "$W/e1")"

# synth --deep-from/--deep-scale: deep layers that refine make the first layers a draft that agrees
rate() {   # acceptance of a first-layer draft of a tiny synth model made with "$@"
  "$BIN" synth --preset tiny --type Q8_0 "$@" -q -o "$W/t.gguf" >/dev/null && "$BIN" convert layers "$W/t.gguf" --layers 1 -o "$W/t1.gguf" >/dev/null &&
    "$BIN" bench -m "$W/t.gguf" -p 0 -n 96 -r 1 -t 1 --draft-model "$W/t1.gguf" --spec-always --json 2>/dev/null >"$W/t.json" &&
    grep -oE '"tg":\{[^}]*\}' "$W/t.json" | grep -oE '"acceptance_rate":[0-9.e+-]+' | cut -d: -f2
}
r_plain=$(rate) r_deep=$(rate --deep-from 1 --deep-scale 0.05)
awk -v a="$r_plain" -v b="$r_deep" 'BEGIN { exit !(a != "" && b >= 0.8 && b > a + 0.2) }' ||
  fail "synth --deep-scale 0.05: a 1-layer draft accepts '$r_deep' (plain model '$r_plain'); expected >= 0.8 and far above"
echo "synth tiny: a first-layer draft accepts $r_plain; with --deep-from 1 --deep-scale 0.05: $r_deep"
for opts in "--deep-from 2 --deep-scale 0.5" "--deep-from 1 --deep-scale 0" "--deep-from 1 --deep-scale 1.5" "--deep-from 1"; do
  # shellcheck disable=SC2086
  "$BIN" synth --preset tiny $opts -o "$W/x.gguf" >/dev/null 2>"$W/e1"; rc=$?
  [ $rc = 2 ] || fail "synth $opts: rc $rc (expected 2): $(cat "$W/e1")"
done
"$BIN" synth --arch llama --deep-from 1 --deep-scale 0.5 -o "$W/x.gguf" >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 2 ] && grep -q "is for --preset models" "$W/e1" || fail "synth --arch --deep-from: rc $rc, $(cat "$W/e1")"

[ $bad = 0 ] && echo "spec cli: ok"
exit $((bad > 0))
