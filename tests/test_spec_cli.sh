#!/usr/bin/env bash
# test_spec_cli.sh — speculative decoding from the command line: `generate --spec ngram` prints the
# same text and token ids as without it (greedy and seeded sampling), reports its acceptance, and
# rejects bad values; `bench --spec ngram` reports it in its JSON.
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

for samp in "--temp 0" "--temp 0.9 --seed 5"; do
  # shellcheck disable=SC2086
  "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp --json >"$W/plain.json" 2>"$W/plain.err" ||
    fail "plain generate ($samp): $(cat "$W/plain.err")"
  for k in 1 4 16; do
    # shellcheck disable=SC2086
    "$BIN" generate -m "$M" -p "Once upon a time" -n 160 -t 1 $samp --spec ngram --spec-tokens $k --json \
      >"$W/spec.json" 2>"$W/spec.err" || fail "generate --spec ngram --spec-tokens $k ($samp): $(cat "$W/spec.err")"
    [ "$(ids "$W/spec.json")" = "$(ids "$W/plain.json")" ] ||
      fail "--spec-tokens $k ($samp): generated ids differ from plain decoding"
    grep -q '"acceptance_rate"' "$W/spec.json" || fail "--spec-tokens $k: no acceptance rate in the JSON"
    grep -qE 'speculation ngram, up to '"$k"' tokens \| [0-9]+ verifications \| accepted [0-9]+ of [0-9]+ proposed' "$W/spec.err" ||
      fail "--spec-tokens $k: no acceptance line on stderr: $(cat "$W/spec.err")"
  done
done
echo "generate: same ids with and without --spec ngram; $(grep speculation "$W/spec.err")"

"$BIN" generate -m "$M" -p "x" -n 4 --spec draft >/dev/null 2>"$W/e1"; rc=$?
[ $rc = 2 ] && grep -q "not a proposer" "$W/e1" || fail "--spec draft: rc $rc, $(cat "$W/e1")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec ngram --spec-tokens 17 >/dev/null 2>"$W/e2"; rc=$?
[ $rc = 2 ] && grep -q "1..16" "$W/e2" || fail "--spec-tokens 17: rc $rc, $(cat "$W/e2")"
"$BIN" generate -m "$M" -p "x" -n 4 --spec-tokens 3 >/dev/null 2>"$W/e3"; rc=$?
[ $rc != 0 ] && grep -q "needs --spec ngram" "$W/e3" || fail "--spec-tokens without --spec: rc $rc, $(cat "$W/e3")"

"$BIN" bench -m "$M" -p 16 -n 32 -r 1 -t 1 --spec ngram --json >"$W/b.json" 2>"$W/b.err" || fail "bench --spec ngram: $(cat "$W/b.err")"
grep -q '"speculation":{"method":"ngram","verifications":' "$W/b.json" || fail "bench --json has no speculation object: $(cat "$W/b.json")"

[ $bad = 0 ] && echo "spec cli: ok"
exit $((bad > 0))
