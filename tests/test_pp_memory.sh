#!/usr/bin/env bash
# test_pp_memory.sh — each rank of `mpirun -np 2 tinyvllm generate --pp 2` holds its share only:
#   - resident memory per rank (max RSS) <= a process's baseline + its stage's weights x 1.1 + the
#     KV budget, measured on a synthesized TinyLlama-1.1B-shaped Q8_0 model (1.1 GiB, weights
#     used in place: TINYVLLM_REPACK=0), the baseline being the same command on a 1 MiB model;
#   - under a per-process address-space limit (ulimit -v) that one process cannot load the model
#     in, two ranks serve it, with the token ids of an unlimited single process.
# Skipped (77) without mpirun or python3, or when built without MPI. Takes about a minute (synth).
#   bash tests/test_pp_memory.sh <tinyvllm-binary> <shared-dir>
set -u
BIN=${1:?usage: test_pp_memory.sh <tinyvllm-binary> <shared-dir>}
SHARED=${2:?shared dir}
SMALL="$SHARED/models/stories260K.gguf"
[ -r "$SMALL" ] || { echo "skipped: $SMALL is absent"; exit 77; }
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (scripts/setup.sh installs openmpi-bin)"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" generate -m "$SMALL" -p x -n 1 --pp 2 >/dev/null 2>"$W/probe"
grep -q "built without MPI" "$W/probe" && { echo "skipped: $(cat "$W/probe")"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TINYVLLM_REPACK=0
# under ASan (make asan) leak checks are off for the MPI processes: Open MPI keeps allocations until
# exit in plugins it has unloaded, which no suppression can name; test_pipeline checks the pipelined
# engine for leaks in one process
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
nm "$BIN" 2>/dev/null | grep -q __asan_init &&
  { echo "skipped: a sanitizer build reserves terabytes of address space, which ulimit -v and max RSS cannot bound"; exit 77; }
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }
ids() { sed -E 's/.*"generated_ids":\[([^]]*)\].*/\1/' "$1"; }
# the command after it, then its max RSS in KiB written to $RSS_DIR/rank.R (R: its MPI rank, - without
# mpirun): a file per rank, because mpirun may interleave the ranks' stderr within a line
MAXRSS=(python3 -c 'import os, resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
with open(os.path.join(os.environ["RSS_DIR"], "rank." + os.environ.get("OMPI_COMM_WORLD_RANK", "-")), "w") as f:
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=f)
sys.exit(rc)')
mkdir -p "$W/base" "$W/pp"
M=$W/tl.gguf
"$BIN" synth --preset tinyllama-1.1b --type Q8_0 -q -o "$M" >/dev/null || { fail "synth"; exit 1; }
GEN=(generate -p "Once upon a time" -n 8 -t 1 --temp 0 -c 256 --no-cache --json)   # KV: 256 tokens, < 6 MiB

RSS_DIR=$W/base mpirun --oversubscribe -x RSS_DIR -np 2 "${MAXRSS[@]}" "$BIN" "${GEN[@]}" -m "$SMALL" --pp 2 >/dev/null 2>"$W/base.err" ||
  fail "baseline run: $(cat "$W/base.err")"
RSS_DIR=$W/pp mpirun --oversubscribe -x RSS_DIR -np 2 "${MAXRSS[@]}" "$BIN" "${GEN[@]}" -m "$M" --pp 2 >"$W/pp.json" 2>"$W/pp.err" ||
  fail "--pp 2 run: $(cat "$W/pp.err")"
"$BIN" "${GEN[@]}" -m "$M" >"$W/one.json" 2>"$W/one.err" || fail "one process: $(cat "$W/one.err")"
[ "$(ids "$W/pp.json")" = "$(ids "$W/one.json")" ] && [ -n "$(ids "$W/one.json")" ] || fail "--pp 2 ids differ from one process"
for r in 0 1; do
  base=$(cat "$W/base/rank.$r" 2>/dev/null)
  got=$(cat "$W/pp/rank.$r" 2>/dev/null)
  mib=$(sed -nE "s/.*pipeline stage $r: layers \[[0-9]+, [0-9]+\), ([0-9.]+) MiB of weights.*/\1/p" "$W/pp.err")
  [ -n "$base" ] && [ -n "$got" ] && [ -n "$mib" ] || { fail "rank $r: no measurement ($base, $got, $mib)"; continue; }
  limit=$(awk -v b="$base" -v w="$mib" 'BEGIN { printf "%d", b + (w * 1.1 + 16) * 1024 }')
  echo "rank $r: max RSS $((got / 1024)) MiB; baseline $((base / 1024)) MiB + its weights $mib MiB x 1.1 + 16 MiB (KV and slack) = $((limit / 1024)) MiB"
  [ "$got" -le "$limit" ] || fail "rank $r holds more than its share"
done

# the address-space limit: above one rank's needs, below one process's
one_vm=$(python3 -c 'import sys; print(sum(int(x) for x in sys.argv[1:]))' $(stat -c %s "$M")) # bytes of the file
lim=$(( (one_vm / 1024) * 85 / 100 ))   # KiB: 85% of the model file
( ulimit -v "$lim"; "$BIN" "${GEN[@]}" -m "$M" >/dev/null 2>"$W/lim1.err" ); rc=$?
[ $rc != 0 ] || fail "one process loaded the model under ulimit -v $lim"
( ulimit -v "$lim"; mpirun --oversubscribe -np 2 "$BIN" "${GEN[@]}" -m "$M" --pp 2 >"$W/lim2.json" 2>"$W/lim2.err" ); rc=$?
[ $rc = 0 ] || fail "two ranks under ulimit -v $lim: rc $rc, $(tail -3 "$W/lim2.err")"
[ "$(ids "$W/lim2.json")" = "$(ids "$W/one.json")" ] || fail "two ranks under ulimit -v: ids differ from one process"
echo "ulimit -v $lim KiB: one process fails ($(head -c 100 "$W/lim1.err")), two ranks serve it with the same ids"

[ $bad = 0 ] && echo "test_pp_memory: ok" || echo "test_pp_memory: $bad failures"
exit $((bad > 0))
