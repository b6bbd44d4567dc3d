#!/usr/bin/env bash
# interleave.sh — tinyvllm vs peers, one round at a time, medians at the end.
#
#   bench/interleave.sh [-r ROUNDS] -m MODEL -a "BENCH ARGS" [NAME=LLAMA_BENCH_CMD ...]
#
#   -m MODEL   GGUF file, the same for every engine
#   -a ARGS    test arguments shared by `tinyvllm bench` and llama-bench, e.g. "-t 2 -p 0 -n 128"
#   -r N       rounds (default 4); each engine runs once per round with -r 1
#   NAME=CMD   a peer's llama-bench (or compatible) binary plus its own extra flags, e.g.
#              llama.cpp=/opt/llama.cpp/bin/llama-bench  ik-rtr="/opt/ik/bin/llama-bench -rtr 1"
#   NAME=tv:PATH  another tinyvllm binary (e.g. a build of an earlier commit: before/after comparisons)
#   TV=path    environment: the tinyvllm binary (default: build/tinyvllm)
#
# Why: on a shared or virtualized machine throughput drifts by tens of percent over minutes, in step
# for every engine. One long run per engine compares different machine states; alternating rounds
# (each starting one engine later than the last) and comparing medians does not. Prints one line
# per engine: median tok/s of each test (pp, then tg, then batched decode for tinyvllm binaries)
# and the rounds' values. Needs python3 for JSON.
set -euo pipefail

rounds=4 model="" args=""
while getopts "r:m:a:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    m) model=$OPTARG ;;
    a) args=$OPTARG ;;
    *) sed -n 2,15p "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ -n "$model" ] && [ -f "$model" ] || { echo "interleave.sh: -m MODEL (an existing GGUF file) is required" >&2; exit 2; }
TV=${TV:-build/tinyvllm}
[ -x "$TV" ] || { echo "interleave.sh: no tinyvllm binary at $TV (set TV=...)" >&2; exit 2; }

tv_round() {   # binary; prints the "pp tg batch_decode" values present
  # shellcheck disable=SC2086
  "$1" bench -m "$model" $args -r 1 --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join("%.2f" % d[k] for k in ("pp_tok_s", "tg_tok_s", "batch_decode_tok_s") if d.get(k)))'
}
peer_round() {   # cmd
  # shellcheck disable=SC2086
  $1 -m "$model" $args -r 1 -o json 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join("%.2f" % x["avg_ts"] for x in json.load(sys.stdin)))'
}

engines=("tinyvllm=tv:$TV" "$@")
{
  for ((i = 0; i < rounds; i++)); do
    # each round starts one engine later, so no engine always runs right after the same one: the
    # run after a peer that read a whole model into its own memory (-mmp 0) found the weight cache's
    # pages evicted and read 0.75-0.9x (qwen3moe-24l pp512, 2026-12-07: the same binary first
    # 152.8-171.6 and second 168.7-176.5 in the same rounds)
    for ((k = 0; k < ${#engines[@]}; k++)); do
      p=${engines[(i + k) % ${#engines[@]}]}
      cmd=${p#*=}
      case "$cmd" in
        tv:*) echo "${p%%=*} $(tv_round "${cmd#tv:}")" ;;
        *) echo "${p%%=*} $(peer_round "$cmd")" ;;
      esac
    done
  done
} | python3 -c '
import statistics, sys
rows = {}
for line in sys.stdin:
    parts = line.split()
    if len(parts) > 1: rows.setdefault(parts[0], []).append([float(v) for v in parts[1:]])
for name, vals in rows.items():
    cols = list(zip(*vals))
    print("%-12s" % name, "   ".join("median %8.2f  %s" % (statistics.median(c), " ".join("%.1f" % v for v in c)) for c in cols))
'
