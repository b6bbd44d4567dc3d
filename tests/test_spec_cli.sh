#!/usr/bin/env bash
# test_spec_cli.sh — speculative decoding from the command line: `generate --spec ngram` and
# `--spec draft --draft-layers N` and `--draft-model FILE` (the model's first layers, written by
# `convert layers`) print the same token ids as without (greedy; seeded sampling with n-gram
# proposals: a model draft's sampled guesses are checked by rejection sampling, other draws),
# report their acceptance, and bad values are rejected; `bench --spec ngram` and `bench
# --draft-model` report it in their JSON.
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
[ $rc = 2 ] && grep -q "not a proposer" "$W/e1" || fail "--spec mtp: rc $rc, $(cat "$W/e1")"
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
[ $bad = 0 ] && echo "spec cli: ok"
exit $((bad > 0))
