#!/usr/bin/env bash
# spec_pair.sh — speculative decoding on a TinyLlama-1.1B-shape Q8_0 target with a draft that
# agrees with it: makes the pair (once), then measures single-stream greedy decode plain and with
# the draft in one `tinyvllm bench` run (speedup and acceptance printed), and, given its binary,
# llama.cpp's llama-speculative on the same two files with the same prompt.
#
#   bench/spec_pair.sh [-d DIR] [-k K] [-n N] [-r REPS] [-t THREADS] [-s SCALE] [LLAMA_SPECULATIVE]
#
#   -d DIR     where the pair is written / found (default /work/models): tinyllama-deep2-s<S>-q8_0.gguf
#              (1.1 GB) and its first 2 layers, ...-first2.gguf (0.23 GB)
#   -s SCALE   --deep-scale of the target's layers 2.. (default 0.003; larger = less acceptance)
#   -k K       tokens proposed per verification at most (default 8), -n tokens (128), -r reps (3),
#   -t         threads (2)
#   TV=path    the tinyvllm binary (default build/tinyvllm)
#
# How the pair is made (docs/architecture.md, speculative decoding): `synth --deep-from 2
# --deep-scale S` writes random weights whose layers 2..21 write S times the usual amount into the
# residual (every layer is still read and computed), and `convert layers --layers 2` cuts its first
# two layers, norm and head into the draft. A random model's first layers otherwise predict it no
# better than chance (0% acceptance).
set -euo pipefail
dir=/work/models k=8 n=128 reps=3 threads=2 scale=0.003
while getopts "d:k:n:r:t:s:" o; do
  case $o in
    d) dir=$OPTARG ;; k) k=$OPTARG ;; n) n=$OPTARG ;; r) reps=$OPTARG ;; t) threads=$OPTARG ;; s) scale=$OPTARG ;;
    *) sed -n 2,21p "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
peer=${1:-}
TV=${TV:-build/tinyvllm}
[ -x "$TV" ] || { echo "spec_pair.sh: no tinyvllm binary at $TV (set TV=...)" >&2; exit 2; }
vocab=$(cd "$(dirname "$0")/.." && pwd)/../shared/vocab/ggml-vocab-llama-spm.gguf
target=$dir/tinyllama-deep2-s$scale-q8_0.gguf
draft=$dir/tinyllama-deep2-s$scale-first2-q8_0.gguf
prompt="Once upon a time"
if [ ! -f "$target" ]; then
  "$TV" synth --preset tinyllama-1.1b --type Q8_0 --vocab "$vocab" --deep-from 2 --deep-scale "$scale" -q -o "$target"
fi
[ -f "$draft" ] || "$TV" convert layers "$target" --layers 2 -o "$draft"
pf=$(mktemp)
trap 'rm -f "$pf"' EXIT
printf '%s' "$prompt" >"$pf"
echo "== tinyvllm: plain vs --draft-model, same run (prompt \"$prompt\", greedy, -t $threads)"
"$TV" bench -m "$target" -p 0 -n "$n" -r "$reps" -t "$threads" --draft-model "$draft" --spec-tokens "$k" --prompt-file "$pf"
if [ -n "$peer" ]; then
  echo "== llama-speculative, same pair and prompt"
  "$peer" -m "$target" -md "$draft" -p "$prompt" -n "$n" -t "$threads" -td "$threads" --temp 0 \
    --spec-draft-n-max "$k" -s 1 2>&1 | grep -E "decoded|n_draft|n_drafted|n_accept|accept +="
fi
