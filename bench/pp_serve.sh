#!/usr/bin/env bash
# pp_serve.sh — issue 18's serving bar: one process x T threads against `mpirun -np N tinyvllm serve
# --pp N -t 1` on the same model, bench/serve_bench.mjs against each in alternating rounds (the VM runs
# in phases: only a ratio within one round pair means much); prints each round's output tok/s, every
# rank's timeline line of each pipelined round (docs/architecture.md, "Where the time goes") and the
# median ratio pipelined / one process. Each server starts fresh for its round and stops after it, so a
# rank's line covers that round only (the bench's warmup request included).
#
#   bench/pp_serve.sh [-r ROUNDS] [-c C] [-n N] [-p P] [-o T] [-t THREADS] [-N RANKS] -m MODEL [-- PP FLAGS...]
#   e.g. bench/pp_serve.sh -r 3 -m /work/models/tinyllama-Q8_0.gguf
#
#   -r rounds (default 3), -c concurrent streams (16), -n requests per round (64), -p prompt tokens
#   (128), -o output tokens (64), -t the one process's threads (2), -N ranks (2, one thread each).
#   Flags after -- go to the pipelined server only (--pp-split 12,10, --pp-wire f16 ...).
#   TV=path: the tinyvllm binary (default build/tinyvllm); MPIRUN (default "mpirun --oversubscribe").
set -euo pipefail
rounds=3 c=16 n=64 p=128 o=64 threads=2 np=2 model=""
while getopts "r:c:n:p:o:t:N:m:" opt; do
  case $opt in
    r) rounds=$OPTARG ;; c) c=$OPTARG ;; n) n=$OPTARG ;; p) p=$OPTARG ;; o) o=$OPTARG ;; t) threads=$OPTARG ;;
    N) np=$OPTARG ;; m) model=$OPTARG ;; *) sed -n 2,16p "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ -f "$model" ] || { sed -n 2,16p "$0" >&2; exit 2; }
TV=${TV:-build/tinyvllm}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # containers
read -r -a MPI <<<"${MPIRUN:-mpirun --oversubscribe}"
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
# run() runs in a command substitution (a subshell): the server's pid goes to a file, not a variable
cleanup() {
  local pid
  if [ -f "$W/pid" ]; then
    pid=$(cat "$W/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# run NAME CMD...: starts a server (CMD, listening on a free port), one bench round against it, stops
# it (SIGTERM; mpirun forwards it and the ranks print their lines); prints the round's output tok/s
run() {
  local name=$1 url PID
  shift
  "$@" >"$W/$name.log" 2>&1 &
  PID=$!
  echo "$PID" >"$W/pid"
  for _ in $(seq 1200); do
    grep -q "listening on http://" "$W/$name.log" && break
    kill -0 "$PID" 2>/dev/null || { cat "$W/$name.log" >&2; exit 1; }
    sleep 0.25
  done
  url=$(grep -o 'listening on http://[^ ]*' "$W/$name.log" | sed 's/listening on //')
  node "$HERE/serve_bench.mjs" --url "$url" -c "$c" -n "$n" -p "$p" -t "$o" --json "$W/r.json" >/dev/null
  kill -TERM "$PID"
  for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && { echo "$name: the server did not stop 30 s after SIGTERM" >&2; kill -KILL "$PID"; }
  wait "$PID" 2>/dev/null || true
  rm -f "$W/pid"
  node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).output_throughput.toFixed(2))' "$W/r.json"
}
one() { run one "$TV" serve -m "$model" --host 127.0.0.1 --port 0 -t "$threads" --max-num-seqs "$c"; }
pp() {
  run pp "${MPI[@]}" -np "$np" "$TV" serve -m "$model" --host 127.0.0.1 --port 0 -t 1 --max-num-seqs "$c" --pp "$np" "$@"
}
ones=() pps=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then ones+=("$(one)"); pps+=("$(pp "$@")")
  else pps+=("$(pp "$@")"); ones+=("$(one)"); fi
  echo "round $r: one process x $threads threads ${ones[-1]} tok/s, $np ranks x 1 thread ${pps[-1]} tok/s" \
    "($(awk -v a="${pps[-1]}" -v b="${ones[-1]}" 'BEGIN { printf "%.3f", a / b }')x)"
  grep -E "pipeline rank [0-9]+:" "$W/pp.log" | sed 's/^/  /' || true
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
m1=$(median "${ones[@]}") mp=$(median "${pps[@]}")
echo "median output tok/s at $c streams ($n requests, $p + $o tokens): one process x $threads threads $m1," \
  "$np ranks x 1 thread${*:+ ($*)} $mp = $(awk -v a="$mp" -v b="$m1" 'BEGIN { printf "%.3f", a / b }')x"
