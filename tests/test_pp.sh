#!/usr/bin/env bash
# test_pp.sh — pipeline parallelism over MPI from the command line (mpirun --oversubscribe on this
# host): `generate --pp 2` and `--pp 3` (balanced and --pp-split) print the token ids of one
# process, greedy and seeded; --pp-wire f16 generates; bench --pp reports bytes per generated token
# per stage boundary (halved by f16) and a few bytes back per token (sampled on the last stage); the
# startup handshake refuses a rank with another model file and a job whose rank count is not --pp. Skipped (77) without mpirun or when built without MPI.
#   bash tests/test_pp.sh <tinyvllm-binary> <shared-dir>
set -u
BIN=${1:?usage: test_pp.sh <tinyvllm-binary> <shared-dir>}
SHARED=${2:?shared dir}
M="$SHARED/models/stories260K.gguf"
[ -r "$M" ] || { echo "skipped: $M is absent"; exit 77; }
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (scripts/setup.sh installs openmpi-bin)"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" generate -m "$M" -p x -n 1 --pp 2 >/dev/null 2>"$W/probe"
grep -q "built without MPI" "$W/probe" && { echo "skipped: $(cat "$W/probe")"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# under ASan (make asan) leak checks are off for the MPI processes: Open MPI keeps allocations until
# exit in plugins it has unloaded, which no suppression can name; test_pipeline checks the pipelined
# engine for leaks in one process
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPI=(mpirun --oversubscribe)
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }
ids() { sed -E 's/.*"generated_ids":\[([^]]*)\].*/\1/' "$1"; }

for samp in "--temp 0" "--temp 0.9 --seed 7"; do
  # shellcheck disable=SC2086
  "$BIN" generate -m "$M" -p "Once upon a time" -n 120 -t 1 $samp --no-cache --json >"$W/one.json" 2>"$W/one.err" ||
    fail "one process ($samp): $(cat "$W/one.err")"
  for how in "2" "3" "2 --pp-split 1,4" "3 --pp-split 2,2,1"; do
    set -- $how
    np=$1
    shift
    # shellcheck disable=SC2086
    timeout 120 "${MPI[@]}" -np "$np" "$BIN" generate -m "$M" -p "Once upon a time" -n 120 -t 1 $samp --no-cache --json \
      --pp "$np" "$@" >"$W/pp.json" 2>"$W/pp.err" || fail "--pp $how ($samp): $(cat "$W/pp.err")"
    [ "$(ids "$W/pp.json")" = "$(ids "$W/one.json")" ] && [ -n "$(ids "$W/one.json")" ] ||
      fail "--pp $how ($samp): generated ids differ from one process"
    grep -q "pipeline stage $((np - 1)): layers \[[0-9], 5)" "$W/pp.err" || fail "--pp $how: no stage lines: $(cat "$W/pp.err")"
    # every rank's timeline at exit, over the same rounds: the prompt spread over np rounds in
    # flight at once (an even share each), and one per later token
    rounds=$(sed -nE 's/.*pipeline rank [0-9]+: ([0-9]+) rounds in [0-9.]+ s, .*waiting.*/\1/p' "$W/pp.err" | sort -u)
    [ "$(grep -c 'pipeline rank [0-9]*: [0-9]* rounds' "$W/pp.err")" = "$np" ] && [ "$rounds" = $((119 + np)) ] ||
      fail "--pp $how: not $np timelines of $((119 + np)) rounds: $(grep 'pipeline rank' "$W/pp.err")"
    grep -qE "pipeline rank 0: .* [0-9.]+ tokens per round, consecutive rounds differ by [0-9]+% of their tokens" "$W/pp.err" ||
      fail "--pp $how: no round balance on rank 0: $(grep 'pipeline rank 0' "$W/pp.err")"
    # a stage's thread is on a core at most the wall time it computed (CPU time of one thread)
    sed -nE 's/.*pipeline rank [1-9][0-9]*: .*computing ([0-9.]+) s \([0-9]+%; on a core ([0-9.]+) s\).*/\1 \2/p' "$W/pp.err" |
      awk -v n=$((np - 1)) '$2 <= $1 + 0.05 { ok++ } END { exit ok == n ? 0 : 1 }' ||
      fail "--pp $how: no stage's time on a core within its computing time: $(grep 'pipeline rank' "$W/pp.err")"
    echo "$samp, --pp $how: same ids as one process; $(grep -c 'pipeline stage' "$W/pp.err") stages"
  done
done

# --pp-wire f16: the hidden state travels as f16 (outputs may differ from one process: only the count
# is checked); bench --pp reports the bytes per generated token per stage boundary, half with f16
timeout 120 "${MPI[@]}" -np 2 "$BIN" generate -m "$M" -p "Once upon a time" -n 40 -t 1 --temp 0 --no-cache --json \
  --pp 2 --pp-wire f16 >"$W/f16.json" 2>"$W/f16.err" || fail "--pp-wire f16: $(cat "$W/f16.err")"
[ "$(ids "$W/f16.json" | tr ',' '\n' | grep -c .)" = 40 ] || fail "--pp-wire f16: not 40 ids: $(ids "$W/f16.json")"
for wire in f32 f16; do
  timeout 120 "${MPI[@]}" -np 2 "$BIN" bench -m "$M" -t 1 -p 16 -n 8 --batch 4 -r 1 --json --no-cache --pp 2 \
    --pp-wire $wire >"$W/bench.$wire.json" 2>"$W/bench.err" || fail "bench --pp 2 --pp-wire $wire: $(cat "$W/bench.err")"
done
python3 - "$W/bench.f32.json" "$W/bench.f16.json" <<'PY' || fail "bench --pp: the bytes per token per boundary"
import json, sys
a, b = (json.load(open(f))["pipeline"] for f in sys.argv[1:])
print("bench --pp 2: %.0f bytes per generated token per boundary (f32), %.0f (f16), %.0f back to rank 0"
      % (a["bytes_per_token_per_boundary"], b["bytes_per_token_per_boundary"], a["reply_bytes_per_token"]))
assert a["wire"] == "f32" and b["wire"] == "f16"
assert 0 < b["bytes_per_token_per_boundary"] < a["bytes_per_token_per_boundary"]
assert 0 < a["reply_bytes_per_token"] < 64   # sampled ids on the last stage, not logits rows (512 x 4 bytes)
PY

# the handshake: every rank must load the same file
cp "$M" "$W/other.gguf"
printf 'x' | dd of="$W/other.gguf" bs=1 seek=300 conv=notrunc 2>/dev/null
timeout 60 "${MPI[@]}" -np 1 "$BIN" generate -m "$M" -p x -n 2 --pp 2 --no-cache : \
  -np 1 "$BIN" generate -m "$W/other.gguf" -p x -n 2 --pp 2 --no-cache >/dev/null 2>"$W/e1"; rc=$?
[ $rc != 0 ] && grep -q "rank 1 (.*) loaded another model file than rank 0" "$W/e1" ||
  fail "different files: rc $rc, $(head -3 "$W/e1")"
timeout 60 "${MPI[@]}" -np 2 "$BIN" generate -m "$M" -p x -n 2 --pp 3 --no-cache >/dev/null 2>"$W/e2"; rc=$?
[ $rc != 0 ] && grep -q -- "--pp 3 needs as many MPI ranks" "$W/e2" || fail "-np 2 --pp 3: rc $rc, $(head -3 "$W/e2")"
timeout 60 "${MPI[@]}" -np 2 "$BIN" generate -m "$M" -p x -n 2 --pp 2 --pp-split 1,1 --no-cache >/dev/null 2>"$W/e3"; rc=$?
[ $rc != 0 ] && grep -q "add up to 2 layers, the model has 5" "$W/e3" || fail "--pp-split 1,1: rc $rc, $(head -3 "$W/e3")"
"$BIN" generate -m "$M" -p x -n 2 --pp-split 1,4 >/dev/null 2>"$W/e4"; rc=$?
[ $rc != 0 ] && grep -q -- "--pp-split needs --pp" "$W/e4" || fail "--pp-split alone: rc $rc, $(cat "$W/e4")"
"$BIN" generate -m "$M" -p x -n 2 --pp-wire f16 >/dev/null 2>"$W/e5"; rc=$?
[ $rc != 0 ] && grep -q -- "--pp-wire needs --pp" "$W/e5" || fail "--pp-wire alone: rc $rc, $(cat "$W/e5")"

[ $bad = 0 ] && echo "test_pp: ok" || echo "test_pp: $bad failures"
exit $((bad > 0))
