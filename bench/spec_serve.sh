#!/usr/bin/env bash
# spec_serve.sh — speculative decoding under load: two `tinyvllm serve` processes on the same model,
# one plain and one speculating (its flags given), and bench/serve_bench.mjs against each in
# alternating rounds; prints each round's output tok/s and the median ratio speculating / plain.
# The load gate (docs/architecture.md) should keep the ratio >= 0.98 where speculation does not pay.
#
#   bench/spec_serve.sh [-r ROUNDS] [-c C] [-n N] [-p P] [-o T] [-t THREADS] -m MODEL -- SPEC FLAGS...
#   e.g. bench/spec_serve.sh -m /work/models/tinyllama-deep2-s0.005-q8_0.gguf -- \
#          --draft-model /work/models/tinyllama-deep2-s0.005-first2-q8_0.gguf --spec-tokens 8
#
#   -r rounds (default 2), -c concurrent streams (16), -n requests per round (48), -p prompt tokens
#   (128), -o output tokens (64), -t threads per server (2). TV=path: the tinyvllm binary
#   (default build/tinyvllm). Only one server computes at a time: the other's threads sleep.
#   Round r sends both servers the prompts of seed r: every round is new to the prefix cache (with
#   one seed for all, a round after the first found every prompt cached and ran twice as fast as the
#   first: a different workload, decode only, in every other round). At the end: the speculating
#   server's counters, the load gate's rounds with their predicted tokens per second, and what its
#   speculative rounds realized of its model's predictions (seconds, of which draft passes, and tokens
#   gained: predicted vs realized) with the correction it applied last. Each round's line also gives
#   the gate's decode rounds in it (speculated of decided).
set -euo pipefail
rounds=2 c=16 n=48 p=128 o=64 threads=2 model=""
while getopts "r:c:n:p:o:t:m:" opt; do
  case $opt in
    r) rounds=$OPTARG ;; c) c=$OPTARG ;; n) n=$OPTARG ;; p) p=$OPTARG ;; o) o=$OPTARG ;; t) threads=$OPTARG ;;
    m) model=$OPTARG ;; *) sed -n 2,14p "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ -f "$model" ] && [ $# -gt 0 ] || { sed -n 2,14p "$0" >&2; exit 2; }
TV=${TV:-build/tinyvllm}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
# start() runs in a command substitution (a subshell), so each server's pid goes to a file, not a variable
cleanup() {
  local f pid
  for f in "$W"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$W"
}
trap cleanup EXIT

start() {   # name, extra flags...: starts a server on a free port, prints its URL
  local name=$1
  shift
  "$TV" serve -m "$model" --host 127.0.0.1 --port 0 -t "$threads" --max-num-seqs "$c" "$@" >"$W/$name.log" 2>&1 &
  echo $! >"$W/$name.pid"
  for _ in $(seq 600); do
    grep -q "listening on http://" "$W/$name.log" && break
    sleep 0.5
  done
  grep -o 'listening on http://[^ ]*' "$W/$name.log" | sed 's/listening on //' || { cat "$W/$name.log" >&2; exit 1; }
}
url_plain=$(start plain)
url_spec=$(start spec "$@")

tok_s() {   # url, seed: one serve_bench round's output tok/s
  node "$HERE/serve_bench.mjs" --url "$1" -c "$c" -n "$n" -p "$p" -t "$o" --seed "$2" --json "$W/r.json" >/dev/null
  node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).output_throughput.toFixed(2))' "$W/r.json"
}
gate_rounds() {   # the speculating server's decode rounds so far: "speculated plain"
  curl -s "$url_spec/metrics" | awk '/^tinyvllm:spec_decode_rounds_total/ { if ($0 ~ /"speculate"/) s = $NF; else p = $NF }
    END { print s + 0, p + 0 }'
}
plain=() spec=()
read -r gs0 gp0 < <(gate_rounds)
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then plain+=("$(tok_s "$url_plain" "$r")"); spec+=("$(tok_s "$url_spec" "$r")")
  else spec+=("$(tok_s "$url_spec" "$r")"); plain+=("$(tok_s "$url_plain" "$r")"); fi
  read -r gs gp < <(gate_rounds)
  echo "round $r: plain ${plain[-1]} tok/s, speculating ${spec[-1]} tok/s (gate: $((gs - gs0)) of $((gs - gs0 + gp - gp0)) decode rounds speculated)"
  gs0=$gs gp0=$gp
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mp=$(median "${plain[@]}") ms=$(median "${spec[@]}")
echo "median output tok/s at $c streams: plain $mp, speculating ($*) $ms = $(awk -v a="$ms" -v b="$mp" 'BEGIN { printf "%.3f", a / b }')x"
curl -s "$url_spec/metrics" | grep -E "^(vllm:spec_decode_num_(drafts|draft_tokens|accepted_tokens)_total|tinyvllm:spec_decode_rounds_total|tinyvllm:spec_decode_round_tokens|tinyvllm:spec_decode_predicted_tokens_per_second|tinyvllm:spec_decode_(round_seconds|draft_seconds|gained_tokens)_total|tinyvllm:spec_decode_(cost_factor|margin))" || true
